//! What the event consumer remembers, in both Stores: open AWS Config findings, access denials
//! grouped per role, action and resource, and IAM changes made outside iamdesk.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Config's compliance types (`newEvaluationResult.complianceType`).
pub const NON_COMPLIANT: &str = "NON_COMPLIANT";
pub const COMPLIANT: &str = "COMPLIANT";

/// The latest known state of one Config rule on one resource. Open while `compliance` is
/// `NON_COMPLIANT`. Written with optimistic concurrency (`version`), together with the Slack
/// message it caused, so two replicas never post the same alert twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// [`Finding::key_of`]: account, region, rule, resource type and id.
    pub key: String,
    pub rule: String,
    pub account_id: String,
    pub region: String,
    pub resource_type: String,
    pub resource_id: String,
    /// `NON_COMPLIANT`, `COMPLIANT`, `NOT_APPLICABLE`, `INSUFFICIENT_DATA`.
    pub compliance: String,
    /// When the resource entered this compliance state (Config's evaluation time).
    pub since: DateTime<Utc>,
    /// `notificationCreationTime` of the newest notification seen: older ones are stale.
    pub last_seen: DateTime<Utc>,
    /// When Slack was last told, and what (the compliance type posted).
    pub last_posted_at: Option<DateTime<Utc>>,
    pub last_posted: Option<String>,
    /// 1 for a new finding, one more on every write.
    pub version: u64,
}

impl Finding {
    pub fn key_of(
        account_id: &str,
        region: &str,
        rule: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> String {
        format!("{account_id}/{region}/{rule}/{resource_type}/{resource_id}")
    }

    pub fn is_open(&self) -> bool {
        self.compliance == NON_COMPLIANT
    }
}

/// Access denied to a role session, grouped per role, action and resource. The Store adds
/// `count` to what it holds and widens `first_seen`/`last_seen`, so the same group reported by
/// several batches (or replicas) adds up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Denial {
    /// [`role_key`] of the role whose session was denied.
    pub role: String,
    /// The role's ARN as CloudTrail named it (with its path).
    pub role_arn: String,
    /// e.g. `s3:GetObject`.
    pub action: String,
    /// An ARN, or `*` when the event named none.
    pub resource: String,
    /// The last error code seen (`AccessDenied`, `UnauthorizedOperation`, ...).
    pub error_code: String,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A change to an IAM resource made by somebody else than iamdesk, from CloudTrail. Keyed by
/// CloudTrail's event id, so a redelivered event is recorded once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutsideChange {
    pub event_id: String,
    /// [`role_key`] (or the same shape for users and policies) of the changed resource.
    pub resource: String,
    pub account_id: String,
    /// `userIdentity.arn` of the caller.
    pub by: String,
    /// e.g. `PutRolePolicy`.
    pub event_name: String,
    /// CloudTrail's `eventTime`.
    pub at: DateTime<Utc>,
}

impl OutsideChange {
    pub fn sort_key(&self) -> String {
        crate::store::sort_key(self.at, &self.event_id)
    }
}

/// How denials and history are filed for a role: `role/{account}/{name}`, the name lowercased
/// because IAM role names are unique regardless of case and CloudTrail spells them as the
/// caller did.
pub fn role_key(account_id: &str, role_name: &str) -> String {
    format!("role/{account_id}/{}", role_name.to_lowercase())
}

/// The same for users (`user/...`) and customer-managed policies (`policy/...`).
pub fn resource_key(kind: &str, account_id: &str, name: &str) -> String {
    format!("{kind}/{account_id}/{}", name.to_lowercase())
}
