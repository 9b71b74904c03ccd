//! Resources as synced from each account: IAM roles, users and customer-managed policies, and
//! the resources that carry their own policy: S3 buckets, SQS queues and SNS topics.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Role,
    User,
    ManagedPolicy,
    /// An S3 bucket (names are global and lower case).
    S3,
    /// An SQS queue (names are per region and case-sensitive).
    Sqs,
    /// An SNS topic (names are per region and case-sensitive).
    Sns,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Role => "role",
            ResourceKind::User => "user",
            ResourceKind::ManagedPolicy => "managed_policy",
            ResourceKind::S3 => "s3",
            ResourceKind::Sqs => "sqs",
            ResourceKind::Sns => "sns",
        }
    }

    /// Kinds synced from IAM (one `GetAccountAuthorizationDetails`), as opposed to the services
    /// that hold resource policies.
    pub fn is_iam(self) -> bool {
        matches!(
            self,
            ResourceKind::Role | ResourceKind::User | ResourceKind::ManagedPolicy
        )
    }

    /// The services beyond IAM, in the order a sync reads them.
    pub const SERVICES: [ResourceKind; 3] =
        [ResourceKind::S3, ResourceKind::Sqs, ResourceKind::Sns];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "role" | "iamrole" => Some(ResourceKind::Role),
            "user" | "iamuser" => Some(ResourceKind::User),
            "managed_policy" | "policy" => Some(ResourceKind::ManagedPolicy),
            "s3" | "s3_bucket" | "bucket" => Some(ResourceKind::S3),
            "sqs" | "sqs_queue" | "queue" => Some(ResourceKind::Sqs),
            "sns" | "sns_topic" | "topic" => Some(ResourceKind::Sns),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlinePolicy {
    pub name: String,
    /// The policy document, URL-decoded and parsed.
    pub document: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

/// A role or a user: both carry inline and attached policies and tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub kind: ResourceKind,
    pub account_id: String,
    pub name: String,
    pub arn: String,
    pub path: String,
    pub id: String,
    pub description: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub max_session_duration: Option<i32>,
    /// Roles only.
    pub trust_policy: Option<Value>,
    pub inline_policies: Vec<InlinePolicy>,
    pub managed_policies: Vec<AttachedPolicy>,
    pub permissions_boundary: Option<String>,
    pub tags: Vec<Tag>,
}

impl Principal {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub account_id: String,
    pub name: String,
    pub arn: String,
    pub path: String,
    pub description: Option<String>,
    pub attachment_count: i32,
    /// The default version's document.
    pub document: Value,
    /// Every version IAM keeps (at most 5), newest first.
    #[serde(default)]
    pub versions: Vec<PolicyVersion>,
    /// ARNs of the synced roles and users that attach the policy.
    #[serde(default)]
    pub attached_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `v1`, `v2`, ...
    pub id: String,
    pub is_default: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub document: Value,
}

/// A bucket, queue or topic: a resource with its own resource policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceResource {
    /// [`ResourceKind::S3`], [`ResourceKind::Sqs`] or [`ResourceKind::Sns`].
    pub kind: ResourceKind,
    pub account_id: String,
    /// Where it lives (for a bucket: its `GetBucketLocation`).
    pub region: String,
    pub name: String,
    pub arn: String,
    /// SQS only: the queue URL every SQS call takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The resource policy; `None` when it has none (`NoSuchBucketPolicy`, empty attribute).
    pub policy: Option<Value>,
    pub tags: Vec<Tag>,
}

impl ServiceResource {
    pub fn key(&self) -> ResourceKey {
        ResourceKey::service(self.kind, &self.region, &self.name)
    }
}

/// One synced resource on its own: a role or user, or a customer-managed policy. What the Store
/// keeps one item of, and what a change to one role touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "resource", rename_all = "snake_case")]
pub enum Resource {
    Principal(Principal),
    Policy(ManagedPolicy),
    Service(ServiceResource),
}

impl Resource {
    pub fn key(&self) -> ResourceKey {
        match self {
            Resource::Principal(p) => ResourceKey::new(p.kind, &p.name),
            Resource::Policy(p) => ResourceKey::new(ResourceKind::ManagedPolicy, &p.name),
            Resource::Service(r) => r.key(),
        }
    }

    pub fn account_id(&self) -> &str {
        match self {
            Resource::Principal(p) => &p.account_id,
            Resource::Policy(p) => &p.account_id,
            Resource::Service(r) => &r.account_id,
        }
    }

    /// Hex SHA-256 of what the resource says, so a sync can tell what changed without comparing
    /// bodies. `last_used_at` is left out: AWS moves it whenever a role is used, and a write per
    /// used role per sync would cost more than the field is worth (nothing displays it).
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = match self {
            Resource::Principal(p) if p.last_used_at.is_some() => {
                let mut p = p.clone();
                p.last_used_at = None;
                serde_json::to_vec(&Resource::Principal(p))
            }
            other => serde_json::to_vec(other),
        }
        .unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// Which resource of an account: its kind and its IAM name in lower case (IAM names are unique
/// regardless of case, so `App` and `app` are one role). Queues and topics are named
/// `region/name` as written (their names are per region and case-sensitive); buckets by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    pub kind: ResourceKind,
    pub name: String,
}

impl ResourceKey {
    pub fn new(kind: ResourceKind, name: &str) -> Self {
        ResourceKey {
            kind,
            name: match kind {
                ResourceKind::Sqs | ResourceKind::Sns => name.to_string(),
                _ => name.to_ascii_lowercase(),
            },
        }
    }

    /// A bucket by name (global), a queue or topic by region and name.
    pub fn service(kind: ResourceKind, region: &str, name: &str) -> Self {
        match kind {
            ResourceKind::Sqs | ResourceKind::Sns => Self::new(kind, &format!("{region}/{name}")),
            _ => Self::new(kind, name),
        }
    }

    pub fn role(name: &str) -> Self {
        Self::new(ResourceKind::Role, name)
    }

    /// `kind#name`, as the stores write it (IAM, bucket, queue and topic names never contain `#`).
    pub fn encode(&self) -> String {
        format!("{}#{}", self.kind.as_str(), self.name)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (kind, name) = s.split_once('#')?;
        Some(ResourceKey {
            kind: ResourceKind::parse(kind)?,
            name: name.to_string(),
        })
    }
}

/// The outcome of the last sync of one account, shown at `/admin/accounts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub account_id: String,
    pub account_name: String,
    pub last_attempt_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// AWS's own error text when the last attempt failed.
    pub last_error: Option<String>,
    pub roles: usize,
    pub users: usize,
    pub policies: usize,
    pub duration_ms: u64,
    /// Buckets, queues and topics: one line per service and region, each on its own.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
}

/// How the last sync of one service (in one region) of an account went. A denied or failing
/// service keeps what was stored of it and never fails the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub service: ResourceKind,
    pub region: String,
    /// AWS's own error text when the last attempt failed.
    pub error: Option<String>,
    /// Resources read (the stored count is kept when the attempt failed).
    pub count: usize,
}

impl AccountStatus {
    pub fn ok(&self) -> bool {
        self.last_error.is_none()
    }
}

/// Everything synced from one account at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub account_id: String,
    pub account_name: String,
    pub synced_at: Option<DateTime<Utc>>,
    pub principals: Vec<Principal>,
    pub policies: Vec<ManagedPolicy>,
    /// Buckets, queues and topics.
    #[serde(default)]
    pub services: Vec<ServiceResource>,
}

/// Every action pattern (`s3:Get*`, `*`) a policy document allows or denies through `Action`.
/// `NotAction` statements are skipped: they grant "everything but", which a search by action
/// cannot express honestly.
pub fn actions_in(document: &Value, out: &mut Vec<String>) {
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => return,
    };
    for st in statements {
        match st.get("Action") {
            Some(Value::String(a)) => out.push(a.clone()),
            Some(Value::Array(list)) => {
                out.extend(list.iter().filter_map(|a| a.as_str().map(str::to_string)));
            }
            _ => {}
        }
    }
}

/// Every principal an `Allow` statement of a resource policy names (`"*"`, account and role
/// ARNs, service names), for "who may" in search results.
pub fn principals_in(document: &Value, out: &mut Vec<String>) {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(list) => list.iter().for_each(|x| strings(x, out)),
            Value::Object(map) => map.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => return,
    };
    for st in statements {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        if let Some(p) = st.get("Principal") {
            strings(p, out);
        }
    }
}

/// IAM action matching: case-insensitive, `*` any run of characters, `?` one character.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        // Iterative glob with backtracking to the last star: linear in practice.
        let (mut pi, mut ai) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while ai < a.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&a[ai])) {
                pi += 1;
                ai += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some(pi);
                mark = ai;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ai = mark;
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == b'*' {
            pi += 1;
        }
        pi == p.len()
    }
    go(pattern.as_bytes(), action.as_bytes())
}

impl AccountSnapshot {
    /// Every resource of the snapshot, each on its own.
    pub fn into_resources(self) -> impl Iterator<Item = Resource> {
        self.principals
            .into_iter()
            .map(Resource::Principal)
            .chain(self.policies.into_iter().map(Resource::Policy))
            .chain(self.services.into_iter().map(Resource::Service))
    }

    /// Fill each managed policy's `attached_to` from the principals that attach it.
    pub fn link_attachments(&mut self) {
        for mp in &mut self.policies {
            mp.attached_to = self
                .principals
                .iter()
                .filter(|p| p.managed_policies.iter().any(|m| m.arn == mp.arn))
                .map(|p| p.arn.clone())
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_ignore_case_and_round_trip() {
        let k = ResourceKey::role("Billing-Reader");
        assert_eq!(k, ResourceKey::role("billing-reader"));
        assert_eq!(k.encode(), "role#billing-reader");
        assert_eq!(ResourceKey::decode(&k.encode()), Some(k));
        assert_eq!(ResourceKey::decode("ec2#x"), None);
        assert_eq!(ResourceKey::decode("role"), None);
    }

    #[test]
    fn the_content_hash_follows_content_but_not_last_use() {
        let snap = crate::resources::demo::account("111122223333", "demo");
        let p = snap.principals[0].clone();
        let a = Resource::Principal(p.clone());
        let mut used = p.clone();
        used.last_used_at = Some(Utc::now());
        assert_eq!(a.content_hash(), Resource::Principal(used).content_hash());
        let mut tagged = p;
        tagged.tags.push(Tag {
            key: "owner".into(),
            value: "x".into(),
        });
        assert_ne!(a.content_hash(), Resource::Principal(tagged).content_hash());
        assert_eq!(a.content_hash().len(), 64);
    }

    #[test]
    fn action_globs_match_like_iam() {
        assert!(action_matches("s3:GetObject", "s3:getobject"));
        assert!(action_matches("s3:Get*", "s3:GetObject"));
        assert!(action_matches("*", "iam:PassRole"));
        assert!(action_matches("s3:*Object", "s3:PutObject"));
        assert!(action_matches("s3:Get?bject", "s3:GetObject"));
        assert!(!action_matches("s3:Get*", "s3:PutObject"));
        assert!(!action_matches("s3:GetObject", "s3:GetObjectAcl"));
        assert!(!action_matches("sqs:*", "s3:GetObject"));
    }

    #[test]
    fn actions_are_collected_from_lists_strings_and_single_statements() {
        let mut out = vec![];
        actions_in(
            &json!({"Statement": [{"Action": "s3:GetObject"}, {"Action": ["sqs:*", "sns:Publish"]},
                                   {"NotAction": "iam:*"}]}),
            &mut out,
        );
        actions_in(&json!({"Statement": {"Action": "kms:Decrypt"}}), &mut out);
        assert_eq!(out, ["s3:GetObject", "sqs:*", "sns:Publish", "kms:Decrypt"]);
    }
}
