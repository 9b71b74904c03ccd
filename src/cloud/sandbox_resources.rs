//! The sandbox's buckets, queues, topics and customer-managed policies: the writes of
//! `src/requests/resource_change.rs` with the AWS rules a demo would otherwise skip (S3's
//! `NoSuchBucket`, SQS's `QueueDoesNotExist`, SNS's `NotFound`, IAM's five policy versions,
//! `EntityAlreadyExists`, `DeleteConflict` on the default version).

use chrono::Utc;
use serde_json::Value;

use super::sandbox::{check_document, iam_error};
use super::{CloudError, IamOp};
use crate::resources::model::{
    AccountSnapshot, ManagedPolicy, PolicyVersion, ResourceKind, ServiceResource, Tag,
};

/// Apply `op` when it is a resource write; `None` otherwise (an IAM role call).
pub(super) fn apply(account: &mut AccountSnapshot, op: &IamOp) -> Option<Result<(), CloudError>> {
    let account_id = account.account_id.clone();
    Some(match op {
        IamOp::PutBucketPolicy { bucket, policy, .. } => {
            service(account, ResourceKind::S3, bucket, None).and_then(|b| {
                check_document(policy)?;
                b.policy = Some(policy.clone());
                Ok(())
            })
        }
        IamOp::DeleteBucketPolicy { bucket, .. } => {
            service(account, ResourceKind::S3, bucket, None).map(|b| b.policy = None)
        }
        IamOp::PutBucketTagging { bucket, tags, .. } => {
            service(account, ResourceKind::S3, bucket, None).map(|b| b.tags = tags.clone())
        }
        IamOp::DeleteBucketTagging { bucket, .. } => {
            service(account, ResourceKind::S3, bucket, None).map(|b| b.tags.clear())
        }
        IamOp::SetQueueAttributes {
            queue,
            region,
            policy,
        } => service(account, ResourceKind::Sqs, queue, Some(region)).map(|q| {
            q.policy = policy.clone();
        }),
        IamOp::TagQueue {
            queue,
            region,
            tags,
        } => service(account, ResourceKind::Sqs, queue, Some(region)).map(|q| merge(q, tags)),
        IamOp::UntagQueue {
            queue,
            region,
            keys,
        } => service(account, ResourceKind::Sqs, queue, Some(region))
            .map(|q| q.tags.retain(|t| !keys.contains(&t.key))),
        IamOp::SetTopicAttributes {
            topic,
            region,
            policy,
        } => topic_name(topic).and_then(|name| {
            service(account, ResourceKind::Sns, name, Some(region)).map(|t| {
                t.policy = Some(policy.clone()).filter(|p| !p.is_null());
            })
        }),
        IamOp::TagTopic {
            topic,
            region,
            tags,
        } => topic_name(topic).and_then(|name| {
            service(account, ResourceKind::Sns, name, Some(region)).map(|t| merge(t, tags))
        }),
        IamOp::UntagTopic {
            topic,
            region,
            keys,
        } => topic_name(topic).and_then(|name| {
            service(account, ResourceKind::Sns, name, Some(region))
                .map(|t| t.tags.retain(|t| !keys.contains(&t.key)))
        }),
        IamOp::CreatePolicy {
            policy_name,
            path,
            description,
            document,
        } => {
            let arn = format!("arn:aws:iam::{account_id}:policy{path}{policy_name}");
            if account.policies.iter().any(|p| p.arn == arn) {
                Err(iam_error(
                    "EntityAlreadyExists",
                    format!("A policy called {policy_name} already exists."),
                ))
            } else {
                check_document(document).map(|()| {
                    account.policies.push(ManagedPolicy {
                        account_id,
                        name: policy_name.clone(),
                        arn,
                        path: path.clone(),
                        description: description.clone(),
                        attachment_count: 0,
                        document: document.clone(),
                        versions: vec![version("v1", document)],
                        attached_to: vec![],
                    });
                })
            }
        }
        IamOp::CreatePolicyVersion {
            policy_arn,
            document,
        } => policy(account, policy_arn).and_then(|p| {
            check_document(document)?;
            if p.versions.len() >= 5 {
                return Err(iam_error(
                    "LimitExceeded",
                    "A managed policy can have up to 5 versions.",
                ));
            }
            let next = p
                .versions
                .iter()
                .filter_map(|v| v.id.strip_prefix('v')?.parse::<u32>().ok())
                .max()
                .unwrap_or(0)
                + 1;
            for v in &mut p.versions {
                v.is_default = false;
            }
            p.versions.insert(0, version(&format!("v{next}"), document));
            p.document = document.clone();
            Ok(())
        }),
        IamOp::DeletePolicyVersion {
            policy_arn,
            version_id,
        } => policy(account, policy_arn).and_then(|p| {
            match p.versions.iter().position(|v| v.id == *version_id) {
                None => Err(iam_error(
                    "NoSuchEntity",
                    format!("Policy {policy_arn} version {version_id} does not exist."),
                )),
                Some(i) if p.versions[i].is_default => Err(iam_error(
                    "DeleteConflict",
                    "Cannot delete the default version of a policy.",
                )),
                Some(i) => {
                    p.versions.remove(i);
                    Ok(())
                }
            }
        }),
        _ => return None,
    })
}

fn version(id: &str, document: &Value) -> PolicyVersion {
    PolicyVersion {
        id: id.to_string(),
        is_default: true,
        created_at: Some(Utc::now()),
        document: document.clone(),
    }
}

fn merge(resource: &mut ServiceResource, tags: &[Tag]) {
    for t in tags {
        match resource.tags.iter_mut().find(|c| c.key == t.key) {
            Some(c) => c.value = t.value.clone(),
            None => resource.tags.push(t.clone()),
        }
    }
}

fn topic_name(arn: &str) -> Result<&str, CloudError> {
    arn.rsplit(':')
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| iam_error("InvalidParameter", format!("{arn} is not a topic ARN")))
}

fn service<'a>(
    account: &'a mut AccountSnapshot,
    kind: ResourceKind,
    name: &str,
    region: Option<&str>,
) -> Result<&'a mut ServiceResource, CloudError> {
    account
        .services
        .iter_mut()
        .find(|r| r.kind == kind && r.name == name && region.is_none_or(|g| g == r.region))
        .ok_or_else(|| match kind {
            ResourceKind::S3 => iam_error("NoSuchBucket", "The specified bucket does not exist"),
            ResourceKind::Sqs => iam_error(
                "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist.",
            ),
            _ => iam_error("NotFound", "Topic does not exist"),
        })
}

fn policy<'a>(
    account: &'a mut AccountSnapshot,
    arn: &str,
) -> Result<&'a mut ManagedPolicy, CloudError> {
    account
        .policies
        .iter_mut()
        .find(|p| p.arn == arn)
        .ok_or_else(|| iam_error("NoSuchEntity", format!("Policy {arn} was not found.")))
}
