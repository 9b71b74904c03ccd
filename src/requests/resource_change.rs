//! Changes to what is not a role (issue 14): the resource policy of a bucket, queue or topic
//! (`resource_policy`), their tags (`resource_tag` whose principal is the resource), and
//! customer-managed policies (`managed_policy_resource`: create one, or publish a new default
//! version). ConsoleMe's names and wire shape (`consoleme/models.py`: ResourcePolicyChangeModel,
//! ResourceTagChangeModel, ManagedPolicyResourceChangeModel).
//!
//! Like every change, [`ResourceChange::calls`] is the exact list approval executes
//! (`src/requests/lifecycle/approve.rs`) and the request page shows. What depends on AWS's state
//! (a bucket's whole tag set, which policy version is deleted to make room) is pinned by the
//! validator (`src/requests/validate/state.rs`) when the request is created, so the reviewer
//! sees the very calls that run.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{AccountId, Expiry, PolicyDocument, TagEdit};
use super::validate::names;
use crate::cloud::IamOp;
use crate::resources::model::{ResourceKind, Tag};

/// AWS: a bucket policy is at most 20 KB ("Bucket policies are limited to 20 KB in size", Amazon
/// S3 User Guide, "Bucket policies and user policies").
pub const S3_POLICY_BYTES: usize = 20 * 1024;
/// AWS: an SQS queue policy is at most 8,192 bytes (Amazon SQS Developer Guide, "Amazon SQS
/// policy quotas").
pub const SQS_POLICY_BYTES: usize = 8_192;
/// AWS: an SNS topic policy is at most 30 KB (Amazon SNS Developer Guide, "Amazon SNS API
/// permissions: Actions and resources reference", Policy quotas).
pub const SNS_POLICY_BYTES: usize = 30 * 1024;
/// AWS: a managed policy document is at most 6,144 characters, whitespace not counted (IAM User
/// Guide, "IAM and AWS STS quotas": managed policy size).
pub const MANAGED_POLICY_CHARS: usize = 6_144;
/// AWS: IAM keeps at most five versions of a managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;

/// A bucket, queue, topic or customer-managed policy: the thing a resource change targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// [`ResourceKind::S3`], `Sqs`, `Sns` or `ManagedPolicy`.
    pub kind: ResourceKind,
    pub account: AccountId,
    /// Where it lives (a bucket's own region; empty for a managed policy: IAM is global).
    pub region: String,
    pub name: String,
    /// A managed policy's path (`/` for the others).
    pub path: String,
}

/// What an ARN says of a resource; S3 ARNs carry neither account nor region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArn {
    pub kind: ResourceKind,
    pub account: Option<String>,
    pub region: Option<String>,
    pub name: String,
    pub path: String,
}

impl ResourceRef {
    /// `arn:aws:s3:::bucket`, `arn:aws:sqs:region:account:queue`,
    /// `arn:aws:sns:region:account:topic` or `arn:aws:iam::account:policy/path/name`.
    pub fn parse_arn(arn: &str) -> Result<ParsedArn, String> {
        let shape = "the ARN of a bucket (arn:aws:s3:::name), queue \
                     (arn:aws:sqs:region:account:name), topic (arn:aws:sns:region:account:name) \
                     or customer-managed policy (arn:aws:iam::account:policy/name)";
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [arn_, partition, service, region, account, rest] = parts[..] else {
            return Err(format!("`{arn}` is not {shape}"));
        };
        if arn_ != "arn" || partition != "aws" {
            return Err(format!("`{arn}` is not {shape}"));
        }
        let named = |kind: ResourceKind, name: &str| -> Result<ParsedArn, String> {
            if name.is_empty() || name.contains(['/', '*', '?']) {
                return Err(format!(
                    "`{arn}` names no single {}; give {shape}",
                    kind.as_str()
                ));
            }
            Ok(ParsedArn {
                kind,
                account: (!account.is_empty()).then(|| account.to_string()),
                region: (!region.is_empty()).then(|| region.to_string()),
                name: name.to_string(),
                path: "/".into(),
            })
        };
        let regional = |kind| {
            if region.is_empty() || !names::is_account_id(account) {
                Err(format!(
                    "`{arn}` needs a region and a 12-digit account: {shape}"
                ))
            } else {
                named(kind, rest)
            }
        };
        match service {
            "s3" if region.is_empty() && account.is_empty() => named(ResourceKind::S3, rest),
            "s3" => Err(format!(
                "`{arn}`: a bucket ARN has no region or account (arn:aws:s3:::name)"
            )),
            "sqs" => regional(ResourceKind::Sqs),
            "sns" => regional(ResourceKind::Sns),
            "iam" => {
                let Some(path_name) = rest.strip_prefix("policy/") else {
                    return Err(format!("`{arn}` is not {shape}"));
                };
                if !names::is_account_id(account) {
                    return Err(format!(
                        "`{arn}`: only customer-managed policies (in a 12-digit account) can be \
                         created or changed; AWS managed policies belong to AWS"
                    ));
                }
                let (path, name) = names::split_path_name(path_name);
                if let Some(p) = names::path_problem(&path) {
                    return Err(p);
                }
                if let Some(p) = names::name_problem(name, "policy name", names::POLICY_NAME_CHARS)
                {
                    return Err(p);
                }
                Ok(ParsedArn {
                    kind: ResourceKind::ManagedPolicy,
                    account: Some(account.to_string()),
                    region: None,
                    name: name.to_string(),
                    path,
                })
            }
            _ => Err(format!("`{arn}` is not {shape}")),
        }
    }

    pub fn arn(&self) -> String {
        match self.kind {
            ResourceKind::S3 => format!("arn:aws:s3:::{}", self.name),
            ResourceKind::ManagedPolicy => format!(
                "arn:aws:iam::{}:policy{}{}",
                self.account, self.path, self.name
            ),
            kind => format!(
                "arn:aws:{}:{}:{}:{}",
                kind.as_str(),
                self.region,
                self.account,
                self.name
            ),
        }
    }

    /// What a person calls it: "bucket reports", "queue jobs (us-east-1)".
    pub fn label(&self) -> String {
        match self.kind {
            ResourceKind::S3 => format!("bucket {}", self.name),
            ResourceKind::Sqs => format!("queue {} ({})", self.name, self.region),
            ResourceKind::Sns => format!("topic {} ({})", self.name, self.region),
            _ => format!("managed policy {}", self.name),
        }
    }

    /// Its page (`src/web/service_resources.rs`, ConsoleMe's URL shape).
    pub fn page_url(&self) -> String {
        let enc = |v: &str| urlencoding::encode(v).into_owned();
        match self.kind {
            ResourceKind::Sqs | ResourceKind::Sns => format!(
                "/policies/edit/{}/{}/{}/{}",
                self.account,
                self.kind.as_str(),
                enc(&self.region),
                enc(&self.name)
            ),
            kind => format!(
                "/policies/edit/{}/{}/{}",
                self.account,
                kind.as_str(),
                enc(&self.name)
            ),
        }
    }

    /// The largest resource policy the service takes, in bytes, with the words for a problem.
    pub fn policy_limit(&self) -> Option<(usize, &'static str)> {
        match self.kind {
            ResourceKind::S3 => Some((S3_POLICY_BYTES, "a bucket policy is at most 20 KB")),
            ResourceKind::Sqs => Some((SQS_POLICY_BYTES, "a queue policy is at most 8,192 bytes")),
            ResourceKind::Sns => Some((SNS_POLICY_BYTES, "a topic policy is at most 30 KB")),
            _ => None,
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn())
    }
}

/// What a managed-policy change publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyStep {
    /// `iam:CreatePolicy`: the policy does not exist yet.
    Create { description: Option<String> },
    /// `iam:CreatePolicyVersion` as the default; when IAM already keeps five versions, the oldest
    /// non-default one (pinned here) is deleted first.
    Publish { delete_first: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResourceEdit {
    /// Replace the resource policy (`None`: remove it).
    Policy(Option<PolicyDocument>),
    /// One tag. For a bucket, `bucket_tags` is the whole tag set after the change (S3 replaces
    /// the set at once), pinned from the synced bucket.
    Tag {
        key: String,
        edit: TagEdit,
        bucket_tags: Vec<Tag>,
    },
    ManagedPolicy {
        document: PolicyDocument,
        step: PolicyStep,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceChange {
    pub id: String,
    /// ConsoleMe's `principal.principal_arn`: the resource itself, or for a resource policy
    /// generated from a grant, the role that is granted.
    pub principal: String,
    pub resource: ResourceRef,
    pub edit: ResourceEdit,
    /// Added by iamdesk to make a cross-account grant work (never taken from a client).
    pub autogenerated: bool,
    /// The change an autogenerated change completes.
    pub source_change_id: Option<String>,
    /// A resource policy that is taken away again at this time: the policy is put back as it
    /// was when the request was created (`previous_policy`).
    pub expires: Option<Expiry>,
    /// The resource policy before this change, pinned by the validator for an expiring change
    /// (`None`: the resource had none).
    pub previous_policy: Option<serde_json::Value>,
}

impl ResourceChange {
    pub fn grants(&self) -> bool {
        match &self.edit {
            ResourceEdit::Policy(p) => p.is_some(),
            ResourceEdit::Tag { edit, .. } => !matches!(edit, TagEdit::Delete),
            ResourceEdit::ManagedPolicy { .. } => true,
        }
    }

    /// The calls that take an expiring resource policy away again: the pinned previous policy
    /// back, or no policy when there was none.
    pub fn revoke_calls(&self) -> Vec<IamOp> {
        if self.expires.is_none() || !matches!(self.edit, ResourceEdit::Policy(Some(_))) {
            return vec![];
        }
        let back = ResourceChange {
            edit: ResourceEdit::Policy(self.previous_policy.clone().map(PolicyDocument::checked)),
            ..self.clone()
        };
        back.calls()
    }

    pub fn editable_document(&self) -> Option<&PolicyDocument> {
        match &self.edit {
            ResourceEdit::Policy(Some(d)) | ResourceEdit::ManagedPolicy { document: d, .. } => {
                Some(d)
            }
            _ => None,
        }
    }

    pub(crate) fn set_document(&mut self, doc: PolicyDocument) {
        match &mut self.edit {
            ResourceEdit::Policy(Some(d)) | ResourceEdit::ManagedPolicy { document: d, .. } => {
                *d = doc
            }
            _ => {}
        }
    }

    /// One line saying what the change does.
    pub fn summary(&self, has_policy: bool) -> String {
        let what = self.resource.label();
        let auto = if self.autogenerated {
            " (added by iamdesk so the cross-account grant works)"
        } else {
            ""
        };
        match &self.edit {
            ResourceEdit::Policy(Some(_)) if has_policy => {
                format!("replace the resource policy of {what}{auto}")
            }
            ResourceEdit::Policy(Some(_)) => format!("set the resource policy of {what}{auto}"),
            ResourceEdit::Policy(None) => format!("remove the resource policy of {what}"),
            ResourceEdit::Tag { key, edit, .. } => match edit {
                TagEdit::Create(v) => format!("add tag '{key}' = '{v}' to {what}"),
                TagEdit::Update(v) => format!("set tag '{key}' to '{v}' on {what}"),
                TagEdit::Delete => format!("delete tag '{key}' from {what}"),
            },
            ResourceEdit::ManagedPolicy { step, .. } => match step {
                PolicyStep::Create { .. } => {
                    format!("create {what} in account {}", self.resource.account)
                }
                PolicyStep::Publish { delete_first: None } => {
                    format!("publish a new default version of {what}")
                }
                PolicyStep::Publish {
                    delete_first: Some(v),
                } => format!(
                    "publish a new default version of {what}, deleting its oldest version {v} \
                     first (IAM keeps {MAX_POLICY_VERSIONS})"
                ),
            },
        }
    }

    /// The exact calls approving this change makes, in order, in the resource's account.
    pub fn calls(&self) -> Vec<IamOp> {
        let r = &self.resource;
        let (name, region) = (r.name.clone(), r.region.clone());
        match (&self.edit, r.kind) {
            (ResourceEdit::Policy(Some(doc)), ResourceKind::S3) => vec![IamOp::PutBucketPolicy {
                bucket: name,
                region,
                policy: doc.as_value().clone(),
            }],
            (ResourceEdit::Policy(None), ResourceKind::S3) => {
                vec![IamOp::DeleteBucketPolicy {
                    bucket: name,
                    region,
                }]
            }
            (ResourceEdit::Policy(doc), ResourceKind::Sqs) => vec![IamOp::SetQueueAttributes {
                queue: name,
                region,
                policy: doc.as_ref().map(|d| d.as_value().clone()),
            }],
            (ResourceEdit::Policy(doc), _) => vec![IamOp::SetTopicAttributes {
                topic: r.arn(),
                region,
                policy: doc
                    .as_ref()
                    .map(|d| d.as_value().clone())
                    .unwrap_or_default(),
            }],
            (ResourceEdit::Tag { bucket_tags, .. }, ResourceKind::S3) => {
                if bucket_tags.is_empty() {
                    vec![IamOp::DeleteBucketTagging {
                        bucket: name,
                        region,
                    }]
                } else {
                    vec![IamOp::PutBucketTagging {
                        bucket: name,
                        region,
                        tags: bucket_tags.clone(),
                    }]
                }
            }
            (ResourceEdit::Tag { key, edit, .. }, kind) => {
                let tags = |v: &String| {
                    vec![Tag {
                        key: key.clone(),
                        value: v.clone(),
                    }]
                };
                let keys = vec![key.clone()];
                match (edit, kind) {
                    (TagEdit::Create(v) | TagEdit::Update(v), ResourceKind::Sqs) => {
                        vec![IamOp::TagQueue {
                            queue: name,
                            region,
                            tags: tags(v),
                        }]
                    }
                    (TagEdit::Delete, ResourceKind::Sqs) => vec![IamOp::UntagQueue {
                        queue: name,
                        region,
                        keys,
                    }],
                    (TagEdit::Create(v) | TagEdit::Update(v), _) => vec![IamOp::TagTopic {
                        topic: r.arn(),
                        region,
                        tags: tags(v),
                    }],
                    (TagEdit::Delete, _) => vec![IamOp::UntagTopic {
                        topic: r.arn(),
                        region,
                        keys,
                    }],
                }
            }
            (ResourceEdit::ManagedPolicy { document, step }, _) => match step {
                PolicyStep::Create { description } => vec![IamOp::CreatePolicy {
                    policy_name: name,
                    path: r.path.clone(),
                    description: description.clone(),
                    document: document.as_value().clone(),
                }],
                PolicyStep::Publish { delete_first } => {
                    let mut calls = Vec::new();
                    if let Some(v) = delete_first {
                        calls.push(IamOp::DeletePolicyVersion {
                            policy_arn: r.arn(),
                            version_id: v.clone(),
                        });
                    }
                    calls.push(IamOp::CreatePolicyVersion {
                        policy_arn: r.arn(),
                        document: document.as_value().clone(),
                    });
                    calls
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_buckets_queues_topics_and_policies() {
        let b = ResourceRef::parse_arn("arn:aws:s3:::reports").expect("bucket");
        assert_eq!(
            (b.kind, b.account, b.name.as_str()),
            (ResourceKind::S3, None, "reports")
        );
        let q = ResourceRef::parse_arn("arn:aws:sqs:us-east-1:123456789012:jobs").expect("queue");
        assert_eq!(q.region.as_deref(), Some("us-east-1"));
        let p =
            ResourceRef::parse_arn("arn:aws:iam::123456789012:policy/team/read").expect("policy");
        assert_eq!((p.path.as_str(), p.name.as_str()), ("/team/", "read"));
        assert!(ResourceRef::parse_arn("arn:aws:s3:::reports/*").is_err());
        assert!(ResourceRef::parse_arn("arn:aws:iam::aws:policy/ReadOnlyAccess").is_err());
        assert!(ResourceRef::parse_arn("arn:aws:sqs:us-east-1:1234:jobs").is_err());
    }

    #[test]
    fn five_versions_delete_the_pinned_oldest_first() {
        let change = ResourceChange {
            id: "c".into(),
            principal: "arn:aws:iam::123456789012:policy/read".into(),
            resource: ResourceRef {
                kind: ResourceKind::ManagedPolicy,
                account: AccountId::parse("123456789012").expect("id"),
                region: String::new(),
                name: "read".into(),
                path: "/".into(),
            },
            edit: ResourceEdit::ManagedPolicy {
                document: PolicyDocument::checked(serde_json::json!({"Statement": []})),
                step: PolicyStep::Publish {
                    delete_first: Some("v2".into()),
                },
            },
            autogenerated: false,
            source_change_id: None,
            expires: None,
            previous_policy: None,
        };
        let actions: Vec<&str> = change.calls().iter().map(IamOp::action).collect();
        assert_eq!(
            actions,
            ["iam:DeletePolicyVersion", "iam:CreatePolicyVersion"]
        );
    }
}
