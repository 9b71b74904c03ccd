//! Reading buckets, queues and topics through the spoke role (issue 14): the calls of the
//! spoke-role policy in ConsoleMe's seed 003 (`s3:ListAllMyBuckets`, `s3:GetBucketLocation`,
//! `s3:GetBucketPolicy`, `s3:GetBucketTagging`, `sqs:ListQueues`, `sqs:GetQueueAttributes`,
//! `sqs:ListQueueTags`, `sns:ListTopics`, `sns:GetTopicAttributes`,
//! `sns:ListTagsForResource`).
//!
//! "No policy" and "no tags" are answers, not errors: S3 says `NoSuchBucketPolicy` /
//! `NoSuchTagSet`, SQS and SNS leave the attribute out. A resource deleted between the listing
//! and its reads is skipped. Any other failure fails the whole service read, so the sync keeps
//! what it had stored rather than storing a partial list.

use aws_sdk_s3::error::ProvideErrorMetadata;
use serde_json::Value;

use super::aws::{AwsCloud, aws_error};
use super::{CloudError, IamOp};
use crate::resources::model::{ResourceKind, ServiceResource, Tag};

pub(super) struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
}

/// How many resources of one service are read at once.
const CONCURRENCY: usize = 8;

/// A policy as AWS returns it (JSON text), parsed; empty text is no policy.
fn policy_of(text: Option<&str>) -> Option<Value> {
    let text = text.map(str::trim).filter(|t| !t.is_empty())?;
    Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

fn code_is<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

/// Read each of `keys` with `read`, `CONCURRENCY` at once: what is gone by then is left out;
/// any other failure fails the whole read.
async fn read_each<K, F, Fut>(keys: Vec<K>, read: F) -> Result<Vec<ServiceResource>, CloudError>
where
    F: Fn(K) -> Fut,
    Fut: std::future::Future<Output = Result<Option<ServiceResource>, CloudError>>,
{
    use futures::StreamExt;
    let found: Vec<Result<Option<ServiceResource>, CloudError>> =
        futures::stream::iter(keys.into_iter().map(read))
            .buffered(CONCURRENCY)
            .collect()
            .await;
    Ok(found
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// Every bucket of the account, each with its region, policy and tags.
pub(super) async fn buckets(
    cloud: &AwsCloud,
    account_id: &str,
    clients: &Clients,
) -> Result<Vec<ServiceResource>, CloudError> {
    let names: Vec<String> = clients
        .s3
        .list_buckets()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error)?
        .into_iter()
        .filter_map(|b| b.name)
        .collect();
    read_each(names, |name| bucket(cloud, account_id, clients, name)).await
}

/// One bucket by name, with its region, policy and tags; `None` when it does not exist.
pub(super) async fn bucket(
    cloud: &AwsCloud,
    account_id: &str,
    clients: &Clients,
    name: String,
) -> Result<Option<ServiceResource>, CloudError> {
    const GONE: &[&str] = &["NoSuchBucket"];
    let region = match clients.s3.get_bucket_location().bucket(&name).send().await {
        // An empty location constraint is us-east-1 (S3's oldest region).
        Ok(out) => out
            .location_constraint()
            .map(|c| c.as_str().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string()),
        Err(e) if code_is(&e, GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    // The bucket's own region answers for it (real S3 redirects otherwise).
    let s3 = cloud.service_clients(account_id, &region).await?.s3;
    let policy = match s3.get_bucket_policy().bucket(&name).send().await {
        Ok(out) => policy_of(out.policy()),
        Err(e) if code_is(&e, &["NoSuchBucketPolicy"]) => None,
        Err(e) if code_is(&e, GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    let tags = match s3.get_bucket_tagging().bucket(&name).send().await {
        Ok(out) => out
            .tag_set()
            .iter()
            .map(|t| Tag {
                key: t.key().to_string(),
                value: t.value().to_string(),
            })
            .collect(),
        Err(e) if code_is(&e, &["NoSuchTagSet", "NoSuchTagSetError"]) => vec![],
        Err(e) if code_is(&e, GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    Ok(Some(ServiceResource {
        kind: ResourceKind::S3,
        account_id: account_id.to_string(),
        region,
        arn: format!("arn:aws:s3:::{name}"),
        name,
        url: None,
        policy,
        tags,
    }))
}

const QUEUE_GONE: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];

/// Every queue of the account in `region`, with its ARN, policy and tags.
pub(super) async fn queues(
    account_id: &str,
    region: &str,
    clients: &Clients,
) -> Result<Vec<ServiceResource>, CloudError> {
    let urls: Vec<String> = clients
        .sqs
        .list_queues()
        .into_paginator()
        .page_size(1000)
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error)?;
    read_each(urls, |url| queue(account_id, region, clients, url)).await
}

/// One queue of `region` by name; `None` when it does not exist.
pub(super) async fn queue_named(
    account_id: &str,
    region: &str,
    clients: &Clients,
    name: &str,
) -> Result<Option<ServiceResource>, CloudError> {
    match clients.sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => match out.queue_url() {
            Some(url) => queue(account_id, region, clients, url.to_string()).await,
            None => Ok(None),
        },
        Err(e) if code_is(&e, QUEUE_GONE) => Ok(None),
        Err(e) => Err(aws_error(e)),
    }
}

async fn queue(
    account_id: &str,
    region: &str,
    clients: &Clients,
    url: String,
) -> Result<Option<ServiceResource>, CloudError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = match clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
    {
        Ok(out) => out.attributes().cloned().unwrap_or_default(),
        Err(e) if code_is(&e, QUEUE_GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    let tags = match clients.sqs.list_queue_tags().queue_url(&url).send().await {
        Ok(out) => out
            .tags()
            .map(|t| {
                let mut tags: Vec<Tag> = t
                    .iter()
                    .map(|(k, v)| Tag {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect();
                tags.sort_by(|a, b| a.key.cmp(&b.key));
                tags
            })
            .unwrap_or_default(),
        Err(e) if code_is(&e, QUEUE_GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    let name = url.rsplit('/').next().unwrap_or_default().to_string();
    let arn = attrs
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .unwrap_or_else(|| format!("arn:aws:sqs:{region}:{account_id}:{name}"));
    Ok(Some(ServiceResource {
        kind: ResourceKind::Sqs,
        account_id: account_id.to_string(),
        region: region.to_string(),
        name,
        arn,
        policy: policy_of(attrs.get(&QueueAttributeName::Policy).map(String::as_str)),
        url: Some(url),
        tags,
    }))
}

/// Every topic of the account in `region`, with its policy and tags.
pub(super) async fn topics(
    account_id: &str,
    region: &str,
    clients: &Clients,
) -> Result<Vec<ServiceResource>, CloudError> {
    let arns: Vec<String> = clients
        .sns
        .list_topics()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error)?
        .into_iter()
        .filter_map(|t| t.topic_arn)
        .collect();
    read_each(arns, |arn| topic(account_id, region, clients, arn)).await
}

/// One topic of `region` by name (its ARN is made from the account and region); `None` when it
/// does not exist.
pub(super) async fn topic_named(
    account_id: &str,
    region: &str,
    clients: &Clients,
    name: &str,
) -> Result<Option<ServiceResource>, CloudError> {
    let arn = format!("arn:aws:sns:{region}:{account_id}:{name}");
    topic(account_id, region, clients, arn).await
}

async fn topic(
    account_id: &str,
    region: &str,
    clients: &Clients,
    arn: String,
) -> Result<Option<ServiceResource>, CloudError> {
    const GONE: &[&str] = &["NotFound", "ResourceNotFound"];
    let attrs = match clients
        .sns
        .get_topic_attributes()
        .topic_arn(&arn)
        .send()
        .await
    {
        Ok(out) => out.attributes().cloned().unwrap_or_default(),
        Err(e) if code_is(&e, GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    let tags = match clients
        .sns
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
    {
        Ok(out) => out
            .tags()
            .iter()
            .map(|t| Tag {
                key: t.key().to_string(),
                value: t.value().to_string(),
            })
            .collect(),
        Err(e) if code_is(&e, GONE) => return Ok(None),
        Err(e) => return Err(aws_error(e)),
    };
    Ok(Some(ServiceResource {
        kind: ResourceKind::Sns,
        account_id: account_id.to_string(),
        region: region.to_string(),
        name: arn.rsplit(':').next().unwrap_or_default().to_string(),
        policy: policy_of(attrs.get("Policy").map(String::as_str)),
        arn,
        url: None,
        tags,
    }))
}

/// Apply one write to a bucket, queue or topic (`IamOp`s of `src/requests/resource_change.rs`);
/// `None` when `op` is not one of them.
pub(super) async fn apply(clients: &Clients, op: &IamOp) -> Option<Result<(), CloudError>> {
    Some(match op {
        IamOp::PutBucketPolicy { bucket, policy, .. } => clients
            .s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy.to_string())
            .send()
            .await
            .map(drop)
            .map_err(aws_error),
        IamOp::DeleteBucketPolicy { bucket, .. } => clients
            .s3
            .delete_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map(drop)
            .map_err(aws_error),
        IamOp::PutBucketTagging { bucket, tags, .. } => {
            let tagging = s3_tags(tags);
            match tagging {
                Ok(t) => clients
                    .s3
                    .put_bucket_tagging()
                    .bucket(bucket)
                    .tagging(t)
                    .send()
                    .await
                    .map(drop)
                    .map_err(aws_error),
                Err(e) => Err(e),
            }
        }
        IamOp::DeleteBucketTagging { bucket, .. } => clients
            .s3
            .delete_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map(drop)
            .map_err(aws_error),
        IamOp::SetQueueAttributes { queue, policy, .. } => match queue_url(clients, queue).await {
            Ok(url) => clients
                .sqs
                .set_queue_attributes()
                .queue_url(url)
                .attributes(
                    aws_sdk_sqs::types::QueueAttributeName::Policy,
                    policy.as_ref().map(Value::to_string).unwrap_or_default(),
                )
                .send()
                .await
                .map(drop)
                .map_err(aws_error),
            Err(e) => Err(e),
        },
        IamOp::TagQueue { queue, tags, .. } => match queue_url(clients, queue).await {
            Ok(url) => clients
                .sqs
                .tag_queue()
                .queue_url(url)
                .set_tags(Some(
                    tags.iter()
                        .map(|t| (t.key.clone(), t.value.clone()))
                        .collect(),
                ))
                .send()
                .await
                .map(drop)
                .map_err(aws_error),
            Err(e) => Err(e),
        },
        IamOp::UntagQueue { queue, keys, .. } => match queue_url(clients, queue).await {
            Ok(url) => clients
                .sqs
                .untag_queue()
                .queue_url(url)
                .set_tag_keys(Some(keys.clone()))
                .send()
                .await
                .map(drop)
                .map_err(aws_error),
            Err(e) => Err(e),
        },
        IamOp::SetTopicAttributes { topic, policy, .. } => clients
            .sns
            .set_topic_attributes()
            .topic_arn(topic)
            .attribute_name("Policy")
            .attribute_value(policy.to_string())
            .send()
            .await
            .map(drop)
            .map_err(aws_error),
        IamOp::TagTopic { topic, tags, .. } => {
            let tags: Result<Vec<_>, _> = tags
                .iter()
                .map(|t| {
                    aws_sdk_sns::types::Tag::builder()
                        .key(&t.key)
                        .value(&t.value)
                        .build()
                        .map_err(invalid_tag)
                })
                .collect();
            match tags {
                Ok(tags) => clients
                    .sns
                    .tag_resource()
                    .resource_arn(topic)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map(drop)
                    .map_err(aws_error),
                Err(e) => Err(e),
            }
        }
        IamOp::UntagTopic { topic, keys, .. } => clients
            .sns
            .untag_resource()
            .resource_arn(topic)
            .set_tag_keys(Some(keys.clone()))
            .send()
            .await
            .map(drop)
            .map_err(aws_error),
        _ => return None,
    })
}

fn invalid_tag(e: impl std::fmt::Display) -> CloudError {
    CloudError::Aws {
        code: None,
        message: format!("invalid tag: {e}"),
    }
}

fn s3_tags(tags: &[Tag]) -> Result<aws_sdk_s3::types::Tagging, CloudError> {
    let set = tags
        .iter()
        .map(|t| {
            aws_sdk_s3::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(invalid_tag)
        })
        .collect::<Result<Vec<_>, _>>()?;
    aws_sdk_s3::types::Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(invalid_tag)
}

/// SQS calls take the queue URL; the change names the queue (its URL is the endpoint's business).
async fn queue_url(clients: &Clients, queue: &str) -> Result<String, CloudError> {
    let out = clients
        .sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .map_err(aws_error)?;
    out.queue_url().map(str::to_string).ok_or(CloudError::Aws {
        code: Some("QueueDoesNotExist".into()),
        message: format!("no URL for queue {queue}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_policy_text_is_no_policy() {
        assert_eq!(policy_of(None), None);
        assert_eq!(policy_of(Some("  ")), None);
        assert_eq!(
            policy_of(Some(r#"{"Version":"2012-10-17"}"#)),
            Some(serde_json::json!({"Version": "2012-10-17"}))
        );
    }
}
