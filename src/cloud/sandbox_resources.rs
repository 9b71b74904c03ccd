//! The sandbox's buckets, queues, topics and customer-managed policies: the writes of
//! `src/requests/resource_change.rs` with the AWS rules a demo would otherwise skip (S3's
//! `NoSuchBucket`, SQS's `QueueDoesNotExist`, SNS's `NotFound`, IAM's five policy versions,
//! `EntityAlreadyExists`, `DeleteConflict` on the default version).

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use super::sandbox::{check_document, iam_error};
use super::{CloudError, IamOp};
use crate::resources::account::{Account, Item};
use crate::resources::model::{ManagedPolicy, PolicyVersion, ResourceKind, ServiceResource, Tag};

/// What `op` changes when it is a resource write, as the new version of the one resource it
/// changes (built beside the current one, as `src/cloud/sandbox.rs::changed_by` does for roles:
/// on error nothing changed); `None` when `op` is not a resource write (an IAM role call).
pub(super) fn changed_by(account: &Account, op: &IamOp) -> Option<Result<Vec<Item>, CloudError>> {
    let account_id = account.account_id.clone();
    let done = match op {
        IamOp::PutBucketPolicy { bucket, policy, .. } => {
            edit(account, ResourceKind::S3, bucket, None, |b| {
                check_document(policy)?;
                b.policy = Some(policy.clone());
                Ok(())
            })
        }
        IamOp::DeleteBucketPolicy { bucket, .. } => {
            edit(account, ResourceKind::S3, bucket, None, |b| {
                b.policy = None;
                Ok(())
            })
        }
        IamOp::PutBucketTagging { bucket, tags, .. } => {
            edit(account, ResourceKind::S3, bucket, None, |b| {
                b.tags = tags.clone();
                Ok(())
            })
        }
        IamOp::DeleteBucketTagging { bucket, .. } => {
            edit(account, ResourceKind::S3, bucket, None, |b| {
                b.tags.clear();
                Ok(())
            })
        }
        IamOp::SetQueueAttributes {
            queue,
            region,
            policy,
        } => edit(account, ResourceKind::Sqs, queue, Some(region), |q| {
            q.policy = policy.clone();
            Ok(())
        }),
        IamOp::TagQueue {
            queue,
            region,
            tags,
        } => edit(account, ResourceKind::Sqs, queue, Some(region), |q| {
            merge(q, tags);
            Ok(())
        }),
        IamOp::UntagQueue {
            queue,
            region,
            keys,
        } => edit(account, ResourceKind::Sqs, queue, Some(region), |q| {
            q.tags.retain(|t| !keys.contains(&t.key));
            Ok(())
        }),
        IamOp::SetTopicAttributes {
            topic,
            region,
            policy,
        } => topic_name(topic).and_then(|name| {
            edit(account, ResourceKind::Sns, name, Some(region), |t| {
                t.policy = Some(policy.clone()).filter(|p| !p.is_null());
                Ok(())
            })
        }),
        IamOp::TagTopic {
            topic,
            region,
            tags,
        } => topic_name(topic).and_then(|name| {
            edit(account, ResourceKind::Sns, name, Some(region), |t| {
                merge(t, tags);
                Ok(())
            })
        }),
        IamOp::UntagTopic {
            topic,
            region,
            keys,
        } => topic_name(topic).and_then(|name| {
            edit(account, ResourceKind::Sns, name, Some(region), |t| {
                t.tags.retain(|t| !keys.contains(&t.key));
                Ok(())
            })
        }),
        IamOp::CreatePolicy {
            policy_name,
            path,
            description,
            document,
        } => {
            let arn = format!("arn:aws:iam::{account_id}:policy{path}{policy_name}");
            if account.policy_by_arn(&arn).is_some() {
                Err(iam_error(
                    "EntityAlreadyExists",
                    format!("A policy called {policy_name} already exists."),
                ))
            } else {
                check_document(document).map(|()| {
                    Item::Policy(Arc::new(ManagedPolicy {
                        account_id,
                        name: policy_name.clone(),
                        arn,
                        path: path.clone(),
                        description: description.clone(),
                        attachment_count: 0,
                        document: document.clone(),
                        versions: vec![version("v1", document)],
                        attached_to: vec![],
                    }))
                })
            }
        }
        IamOp::CreatePolicyVersion {
            policy_arn,
            document,
        } => policy(account, policy_arn).and_then(|mut p| {
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
            Ok(Item::Policy(Arc::new(p)))
        }),
        IamOp::DeletePolicyVersion {
            policy_arn,
            version_id,
        } => policy(account, policy_arn).and_then(|mut p| {
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
                    Ok(Item::Policy(Arc::new(p)))
                }
            }
        }),
        _ => return None,
    };
    Some(done.map(|item| vec![item]))
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

/// The bucket, queue or topic `name` changed by `change`, as a new version.
fn edit(
    account: &Account,
    kind: ResourceKind,
    name: &str,
    region: Option<&str>,
    change: impl FnOnce(&mut ServiceResource) -> Result<(), CloudError>,
) -> Result<Item, CloudError> {
    let mut resource = service(account, kind, name, region)?;
    change(&mut resource)?;
    Ok(Item::Service(Arc::new(resource)))
}

/// A copy of the bucket, queue or topic `name` (in `region` when given), to change.
fn service(
    account: &Account,
    kind: ResourceKind,
    name: &str,
    region: Option<&str>,
) -> Result<ServiceResource, CloudError> {
    account
        .services
        .iter()
        .find(|r| r.kind == kind && r.name == name && region.is_none_or(|g| g == r.region))
        .map(|r| (**r).clone())
        .ok_or_else(|| match kind {
            ResourceKind::S3 => iam_error("NoSuchBucket", "The specified bucket does not exist"),
            ResourceKind::Sqs => iam_error(
                "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist.",
            ),
            _ => iam_error("NotFound", "Topic does not exist"),
        })
}

/// A copy of the account's managed policy `arn`, to change.
fn policy(account: &Account, arn: &str) -> Result<ManagedPolicy, CloudError> {
    account
        .policy_by_arn(arn)
        .map(|p| (**p).clone())
        .ok_or_else(|| iam_error("NoSuchEntity", format!("Policy {arn} was not found.")))
}
