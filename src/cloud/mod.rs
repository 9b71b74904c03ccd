//! Where IAM lives (GUIDE §1): the real AWS through the SDK, or the in-process sandbox with demo
//! accounts. Both implement [`Cloud`].

pub mod aws;
mod aws_services;
pub mod sandbox;
mod sandbox_resources;

use async_trait::async_trait;

use crate::resources::model::{AccountSnapshot, Principal, ResourceKind, ServiceResource, Tag};

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("account {0} is not configured in account_ids_to_name")]
    UnknownAccount(String),
    /// The cloud cannot do this at all (the sandbox has no real AWS behind it).
    #[error("{0}")]
    Unsupported(String),
    /// An AWS call failed; `message` carries AWS's own words (code: message).
    #[error("{message}")]
    Aws {
        code: Option<String>,
        message: String,
    },
}

impl CloudError {
    /// Throttling and transient errors worth retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudError::Aws { code: Some(c), .. } => matches!(
                c.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
                    | "InternalFailure"
                    | "RequestExpired"
            ),
            _ => false,
        }
    }
}

/// One IAM write, as approved changes are applied through the spoke role. A request's change
/// becomes one or more of these (`Change::calls` in `src/requests/model.rs`); each is applied and
/// reported on its own. Serialized as `{"action": "PutRolePolicy", "role": ..., ...}` for the
/// API's `plan`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action")]
pub enum IamOp {
    PutRolePolicy {
        role: String,
        policy_name: String,
        document: serde_json::Value,
    },
    DeleteRolePolicy {
        role: String,
        policy_name: String,
    },
    AttachRolePolicy {
        role: String,
        policy_arn: String,
    },
    DetachRolePolicy {
        role: String,
        policy_arn: String,
    },
    PutRolePermissionsBoundary {
        role: String,
        policy_arn: String,
    },
    DeleteRolePermissionsBoundary {
        role: String,
    },
    UpdateAssumeRolePolicy {
        role: String,
        document: serde_json::Value,
    },
    TagRole {
        role: String,
        tags: Vec<Tag>,
    },
    UntagRole {
        role: String,
        keys: Vec<String>,
    },
    CreateRole {
        role: String,
        path: String,
        description: Option<String>,
        trust: serde_json::Value,
        tags: Vec<Tag>,
    },
    // ---- Buckets, queues, topics and customer-managed policies (issue 14) ------------------
    // `Change::calls` of `src/requests/resource_change.rs`. Queues and topics are named by
    // region and name (the AWS cloud looks the queue URL up); buckets carry their region so the
    // S3 client talks to the bucket's own endpoint.
    PutBucketPolicy {
        bucket: String,
        region: String,
        policy: serde_json::Value,
    },
    DeleteBucketPolicy {
        bucket: String,
        region: String,
    },
    /// S3 replaces a bucket's whole tag set: `tags` is every tag the bucket keeps.
    PutBucketTagging {
        bucket: String,
        region: String,
        tags: Vec<Tag>,
    },
    DeleteBucketTagging {
        bucket: String,
        region: String,
    },
    /// `Attributes: {Policy: ...}`; `None` sets the empty policy, which removes it.
    SetQueueAttributes {
        queue: String,
        region: String,
        policy: Option<serde_json::Value>,
    },
    TagQueue {
        queue: String,
        region: String,
        tags: Vec<Tag>,
    },
    UntagQueue {
        queue: String,
        region: String,
        keys: Vec<String>,
    },
    /// `AttributeName: Policy`.
    SetTopicAttributes {
        topic: String,
        region: String,
        policy: serde_json::Value,
    },
    /// SNS `TagResource` on a topic.
    TagTopic {
        topic: String,
        region: String,
        tags: Vec<Tag>,
    },
    /// SNS `UntagResource` on a topic.
    UntagTopic {
        topic: String,
        region: String,
        keys: Vec<String>,
    },
    CreatePolicy {
        policy_name: String,
        path: String,
        description: Option<String>,
        document: serde_json::Value,
    },
    /// Always published as the default version.
    CreatePolicyVersion {
        policy_arn: String,
        document: serde_json::Value,
    },
    DeletePolicyVersion {
        policy_arn: String,
        version_id: String,
    },
}

impl IamOp {
    /// What the operation changes: a role name, bucket, queue, topic or policy.
    pub fn subject(&self) -> &str {
        match self {
            IamOp::PutBucketPolicy { bucket, .. }
            | IamOp::DeleteBucketPolicy { bucket, .. }
            | IamOp::PutBucketTagging { bucket, .. }
            | IamOp::DeleteBucketTagging { bucket, .. } => bucket,
            IamOp::SetQueueAttributes { queue, .. }
            | IamOp::TagQueue { queue, .. }
            | IamOp::UntagQueue { queue, .. } => queue,
            IamOp::SetTopicAttributes { topic, .. }
            | IamOp::TagTopic { topic, .. }
            | IamOp::UntagTopic { topic, .. } => topic,
            IamOp::CreatePolicy { policy_name, .. } => policy_name,
            IamOp::CreatePolicyVersion { policy_arn, .. }
            | IamOp::DeletePolicyVersion { policy_arn, .. } => policy_arn,
            IamOp::PutRolePolicy { role, .. }
            | IamOp::DeleteRolePolicy { role, .. }
            | IamOp::AttachRolePolicy { role, .. }
            | IamOp::DetachRolePolicy { role, .. }
            | IamOp::PutRolePermissionsBoundary { role, .. }
            | IamOp::DeleteRolePermissionsBoundary { role }
            | IamOp::UpdateAssumeRolePolicy { role, .. }
            | IamOp::TagRole { role, .. }
            | IamOp::UntagRole { role, .. }
            | IamOp::CreateRole { role, .. } => role,
        }
    }

    /// The region of a bucket, queue or topic write (`None`: an IAM call, global).
    pub fn region(&self) -> Option<&str> {
        match self {
            IamOp::PutBucketPolicy { region, .. }
            | IamOp::DeleteBucketPolicy { region, .. }
            | IamOp::PutBucketTagging { region, .. }
            | IamOp::DeleteBucketTagging { region, .. }
            | IamOp::SetQueueAttributes { region, .. }
            | IamOp::TagQueue { region, .. }
            | IamOp::UntagQueue { region, .. }
            | IamOp::SetTopicAttributes { region, .. }
            | IamOp::TagTopic { region, .. }
            | IamOp::UntagTopic { region, .. } => Some(region),
            _ => None,
        }
    }

    /// The IAM API action, for results and the audit log.
    pub fn action(&self) -> &'static str {
        match self {
            IamOp::PutRolePolicy { .. } => "iam:PutRolePolicy",
            IamOp::DeleteRolePolicy { .. } => "iam:DeleteRolePolicy",
            IamOp::AttachRolePolicy { .. } => "iam:AttachRolePolicy",
            IamOp::DetachRolePolicy { .. } => "iam:DetachRolePolicy",
            IamOp::PutRolePermissionsBoundary { .. } => "iam:PutRolePermissionsBoundary",
            IamOp::DeleteRolePermissionsBoundary { .. } => "iam:DeleteRolePermissionsBoundary",
            IamOp::UpdateAssumeRolePolicy { .. } => "iam:UpdateAssumeRolePolicy",
            IamOp::TagRole { .. } => "iam:TagRole",
            IamOp::UntagRole { .. } => "iam:UntagRole",
            IamOp::CreateRole { .. } => "iam:CreateRole",
            IamOp::PutBucketPolicy { .. } => "s3:PutBucketPolicy",
            IamOp::DeleteBucketPolicy { .. } => "s3:DeleteBucketPolicy",
            IamOp::PutBucketTagging { .. } => "s3:PutBucketTagging",
            IamOp::DeleteBucketTagging { .. } => "s3:DeleteBucketTagging",
            IamOp::SetQueueAttributes { .. } => "sqs:SetQueueAttributes",
            IamOp::TagQueue { .. } => "sqs:TagQueue",
            IamOp::UntagQueue { .. } => "sqs:UntagQueue",
            IamOp::SetTopicAttributes { .. } => "sns:SetTopicAttributes",
            IamOp::TagTopic { .. } => "sns:TagResource",
            IamOp::UntagTopic { .. } => "sns:UntagResource",
            IamOp::CreatePolicy { .. } => "iam:CreatePolicy",
            IamOp::CreatePolicyVersion { .. } => "iam:CreatePolicyVersion",
            IamOp::DeletePolicyVersion { .. } => "iam:DeletePolicyVersion",
        }
    }
}

#[async_trait]
pub trait Cloud: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// For tests and metrics that need the concrete cloud (e.g. AssumeRole counts).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Every role, user and customer-managed policy of one account, policies decoded.
    async fn fetch_account(
        &self,
        account_id: &str,
        account_name: &str,
    ) -> Result<AccountSnapshot, CloudError>;

    /// One role, fresh (for "refresh this role" and after applying a change). `None` if gone.
    async fn fetch_role(
        &self,
        account_id: &str,
        role_name: &str,
    ) -> Result<Option<Principal>, CloudError>;

    /// The role iamdesk itself runs as in the central account (account id, role name), when
    /// known: it must never be the target of a request.
    fn central_role(&self) -> Option<(String, String)> {
        None
    }

    /// Apply one IAM write in a spoke account.
    async fn apply(&self, account_id: &str, op: &IamOp) -> Result<(), CloudError>;

    /// Short-lived credentials for `role_arn`, assumed from the central account with
    /// `RoleSessionName` and `SourceIdentity` = `session_name`.
    async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        duration_seconds: i32,
    ) -> Result<RoleCredentials, CloudError>;

    // ---- Buckets, queues and topics (issue 14) --------------------------------------------
    // Kept together so that other additions to the trait merge beside, not inside, this block.

    /// The regions whose queues and topics a sync reads (`aws.regions`).
    fn regions(&self) -> Vec<String>;

    /// Every bucket (`S3`), queue (`Sqs`) or topic (`Sns`) of one account with its policy and
    /// tags. Queues and topics are read in `region`; buckets are listed once per account
    /// (called with the first region) and each carries its own region. A resource without a
    /// policy has `policy: None`; only a failure of the service itself is an error.
    async fn fetch_service(
        &self,
        account_id: &str,
        service: ResourceKind,
        region: &str,
    ) -> Result<Vec<ServiceResource>, CloudError>;

    /// One bucket, queue, topic (`region`: where it lives) or customer-managed policy, fresh,
    /// after a change to it was applied. `None` when it is gone. A policy is picked out of the
    /// account's IAM details (its `attached_to` comes from the same read).
    async fn fetch_resource(
        &self,
        account_id: &str,
        kind: ResourceKind,
        region: &str,
        name: &str,
    ) -> Result<Option<crate::resources::model::Resource>, CloudError> {
        use crate::resources::model::Resource;
        if kind == ResourceKind::ManagedPolicy {
            let snap = self.fetch_account(account_id, "").await?;
            return Ok(snap
                .policies
                .into_iter()
                .find(|p| p.name == name)
                .map(Resource::Policy));
        }
        Ok(self
            .fetch_service_resource(account_id, kind, region, name)
            .await?
            .map(Resource::Service))
    }

    /// One bucket, queue or topic, fresh (`None`: gone). The default reads the whole service
    /// listing and picks it out; the AWS cloud reads just the one (`src/cloud/aws_services.rs`).
    async fn fetch_service_resource(
        &self,
        account_id: &str,
        kind: ResourceKind,
        region: &str,
        name: &str,
    ) -> Result<Option<ServiceResource>, CloudError> {
        let listing_region = if kind == ResourceKind::S3 {
            self.regions().into_iter().next().unwrap_or_default()
        } else {
            region.to_string()
        };
        Ok(self
            .fetch_service(account_id, kind, &listing_region)
            .await?
            .into_iter()
            .find(|r| r.name == name && (kind == ResourceKind::S3 || r.region == region)))
    }

    // --- Right-sizing (`src/rightsize/`): IAM Access Advisor, action level. -----------------
    // Two calls, as AWS has them: start a job, then poll it (the caller backs off between polls).

    /// `iam:GenerateServiceLastAccessedDetails` for one role: the job id.
    async fn start_access_advisor(
        &self,
        account_id: &str,
        role_arn: &str,
    ) -> Result<String, CloudError> {
        let _ = (account_id, role_arn);
        Err(CloudError::Unsupported(
            "this cloud has no IAM Access Advisor".into(),
        ))
    }

    /// `iam:GetServiceLastAccessedDetails`: one poll of a job started above.
    async fn poll_access_advisor(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> Result<AdvisorJob, CloudError> {
        let _ = (account_id, job_id);
        Err(CloudError::Unsupported(
            "this cloud has no IAM Access Advisor".into(),
        ))
    }
}

/// One Access Advisor job as a poll finds it.
#[derive(Debug, Clone, PartialEq)]
pub enum AdvisorJob {
    InProgress,
    Completed(Vec<ServiceAccess>),
    Failed(String),
}

/// One service of an Access Advisor report: when the role last authenticated to it (`None`:
/// not within AWS's tracking period).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceAccess {
    /// Lower-case service prefix (`s3`).
    pub namespace: String,
    pub name: String,
    pub last_authenticated: Option<chrono::DateTime<chrono::Utc>>,
    /// The actions AWS tracks for this service (`TrackedActionsLastAccessed` of an
    /// `ACTION_LEVEL` job); empty when the service is not tracked at action level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracked_actions: Vec<ActionAccess>,
}

/// One tracked action of an Access Advisor report (`None`: not used within the tracking period).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActionAccess {
    /// The action name as AWS writes it, without the service prefix (`GetObject`).
    pub action: String,
    pub last_accessed: Option<chrono::DateTime<chrono::Utc>>,
}

/// Temporary credentials of an assumed role. Always with a session token. `Debug` hides the
/// secrets so they cannot reach a log by accident.
#[derive(Clone, serde::Serialize)]
pub struct RoleCredentials {
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    pub secret_access_key: String,
    #[serde(rename = "SessionToken")]
    pub session_token: String,
    #[serde(rename = "Expiration")]
    pub expiration: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}
