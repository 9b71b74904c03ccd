//! The typed change model: what a request asks for, parsed once.
//!
//! A request's changes are a `Vec<Change>`. The validator (`src/requests/validate/`) is the only
//! way from a client's JSON to these types; the same values are stored, rendered on the request
//! page, put in notifications and applied, so what a reviewer approves is what AWS receives.
//!
//! On the wire and in the Store a change keeps ConsoleMe's v2 shape (`change_type`,
//! `principal.principal_arn`, `policy.policy_document`, ...) through [`ChangeWire`], which refuses
//! unknown keys. Server-owned fields (`id`, `resolved_clone`) are never taken from a client: the
//! validator refuses them and fills them itself.
//!
//! [`Change::calls`] lists the exact IAM calls an approval makes; the request page shows that
//! list and `src/requests/lifecycle/approve.rs` executes it, call by call.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::resource_change::{PolicyStep, ResourceChange, ResourceEdit, ResourceRef};
use super::validate::names;
use crate::cloud::IamOp;
use crate::resources::model::{ResourceKind, Tag};

// ---------------------------------------------------------------------------------------------
// Domain values: each parses once and is valid from then on.

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if names::is_account_id(s) {
            Ok(AccountId(s.to_string()))
        } else {
            Err(format!("account `{s}` is not 12 digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A bucket's account before the validator found it among the synced buckets (an S3 ARN
    /// names no account): `src/requests/validate/state.rs` replaces it or refuses the change.
    pub(crate) fn unresolved() -> Self {
        AccountId(String::new())
    }

    pub fn is_unresolved(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<String> for AccountId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        AccountId::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `arn:aws:iam::<account>:role<path><name>`: a role, with its path and name exactly as IAM
/// holds them once the validator has matched it against the synced role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleArn {
    account: AccountId,
    path: String,
    name: String,
}

impl RoleArn {
    /// The shape only (account, path, name rules); whether the role exists is the validator's
    /// business.
    pub fn parse(arn: &str) -> Result<Self, String> {
        let (account, kind, path, name) = names::parse_principal_arn(arn)?;
        if kind != crate::resources::model::ResourceKind::Role {
            return Err(format!(
                "`{arn}` is a user; iamdesk changes roles only (ask an administrator to change \
                 IAM users in the AWS console)"
            ));
        }
        Ok(RoleArn {
            account: AccountId(account),
            path,
            name: name.to_string(),
        })
    }

    /// From parts the caller has already checked (a new role's account, path and name).
    pub fn from_parts(account: AccountId, path: &str, name: &str) -> Self {
        RoleArn {
            account,
            path: path.to_string(),
            name: name.to_string(),
        }
    }

    pub fn account(&self) -> &AccountId {
        &self.account
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:aws:iam::{}:role{}{}",
            self.account, self.path, self.name
        )
    }
}

impl TryFrom<String> for RoleArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RoleArn::parse(&s)
    }
}

impl From<RoleArn> for String {
    fn from(a: RoleArn) -> String {
        a.to_string()
    }
}

/// An inline policy name: `[\w+=,.@-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyName(String);

impl PolicyName {
    pub fn parse(s: &str) -> Result<Self, String> {
        match names::name_problem(s, "policy name", names::POLICY_NAME_CHARS) {
            Some(m) => Err(m),
            None => Ok(PolicyName(s.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PolicyName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PolicyName::parse(&s)
    }
}

impl From<PolicyName> for String {
    fn from(p: PolicyName) -> String {
        p.0
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A managed policy ARN: `arn:aws:iam::aws:policy/...` or `arn:aws:iam::<account>:policy/...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ManagedPolicyArn {
    arn: String,
    owner: String,
}

impl ManagedPolicyArn {
    pub fn parse(s: &str) -> Result<Self, String> {
        let owner = names::parse_policy_arn(s)?;
        Ok(ManagedPolicyArn {
            arn: s.to_string(),
            owner,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// `aws` for an AWS managed policy, else the account that owns it.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

impl TryFrom<String> for ManagedPolicyArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ManagedPolicyArn::parse(&s)
    }
}

impl From<ManagedPolicyArn> for String {
    fn from(p: ManagedPolicyArn) -> String {
        p.arn
    }
}

impl fmt::Display for ManagedPolicyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// An IAM policy document that passed the grammar of `src/requests/validate/grammar.rs`.
/// Kept as JSON, in the key order the requester wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyDocument(Value);

impl PolicyDocument {
    /// Only the validator (which checked the grammar) and the sync (AWS's own documents) build
    /// documents.
    pub(crate) fn checked(v: Value) -> Self {
        PolicyDocument(v)
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

/// When an expiring grant is taken away again. On the wire: ConsoleMe's `YYYYmmdd` (an integer
/// or a string; the grant goes at 00:00 UTC that day, as ConsoleMe's `cm_delete-on_{date}`
/// policies did), a date `YYYY-MM-DD` (same), or an RFC 3339 time. Stored as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry(pub chrono::DateTime<chrono::Utc>);

impl Expiry {
    pub fn parse(v: &Value) -> Result<Expiry, String> {
        use chrono::{NaiveDate, TimeZone, Utc};
        let day = |y: i32, m: u32, d: u32| {
            NaiveDate::from_ymd_opt(y, m, d)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| Expiry(Utc.from_utc_datetime(&t)))
        };
        let compact = |s: &str| -> Option<Expiry> {
            (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
            day(
                s[..4].parse().ok()?,
                s[4..6].parse().ok()?,
                s[6..].parse().ok()?,
            )
        };
        let bad = || {
            "expiration_date must be a date YYYYmmdd (e.g. 20261231), YYYY-MM-DD, or an RFC 3339 \
             time such as 2026-12-31T18:00:00Z"
                .to_string()
        };
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| compact(&n.to_string()))
                .ok_or_else(bad),
            Value::String(s) => {
                let s = s.trim();
                if let Some(e) = compact(s) {
                    return Ok(e);
                }
                if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    return day(
                        chrono::Datelike::year(&d),
                        chrono::Datelike::month(&d),
                        chrono::Datelike::day(&d),
                    )
                    .ok_or_else(bad);
                }
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| Expiry(t.with_timezone(&Utc)))
                    .map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }

    pub fn at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Expiry::parse(&v).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// The change model.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    InlinePolicy,
    ManagedPolicy,
    PermissionsBoundary,
    AssumeRolePolicy,
    ResourceTag,
    CreateRole,
    ResourcePolicy,
    ManagedPolicyResource,
}

impl ChangeType {
    pub const ALL: [ChangeType; 8] = [
        ChangeType::InlinePolicy,
        ChangeType::ManagedPolicy,
        ChangeType::PermissionsBoundary,
        ChangeType::AssumeRolePolicy,
        ChangeType::ResourceTag,
        ChangeType::CreateRole,
        ChangeType::ResourcePolicy,
        ChangeType::ManagedPolicyResource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::InlinePolicy => "inline_policy",
            ChangeType::ManagedPolicy => "managed_policy",
            ChangeType::PermissionsBoundary => "permissions_boundary",
            ChangeType::AssumeRolePolicy => "assume_role_policy",
            ChangeType::ResourceTag => "resource_tag",
            ChangeType::CreateRole => "create_role",
            ChangeType::ResourcePolicy => "resource_policy",
            ChangeType::ManagedPolicyResource => "managed_policy_resource",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// `attach` creates or replaces, `detach` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachAction {
    Attach,
    Detach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagAction {
    Create,
    Update,
    Delete,
}

/// `principal`: the role a change applies to, canonical (as synced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalRef {
    pub principal_type: PrincipalType,
    pub principal_arn: RoleArn,
}

impl PrincipalRef {
    pub fn new(arn: RoleArn) -> Self {
        PrincipalRef {
            principal_type: PrincipalType::AwsResource,
            principal_arn: arn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalType {
    AwsResource,
}

/// What an inline-policy change does.
#[derive(Debug, Clone, PartialEq)]
pub enum InlineEdit {
    /// Create the policy, or replace it when one of that name exists.
    Put(PolicyDocument),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InlinePolicyChange {
    pub id: String,
    pub principal: PrincipalRef,
    pub policy_name: PolicyName,
    pub edit: InlineEdit,
    /// A `Put` that is taken away again at this time.
    pub expires: Option<Expiry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManagedPolicyChange {
    pub id: String,
    pub principal: PrincipalRef,
    pub action: AttachAction,
    pub arn: ManagedPolicyArn,
    /// An attachment that is detached again at this time.
    pub expires: Option<Expiry>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BoundaryEdit {
    Put(ManagedPolicyArn),
    /// Remove the boundary; the ARN, when given, is the one the requester expects to remove.
    Delete(Option<ManagedPolicyArn>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoundaryChange {
    pub id: String,
    pub principal: PrincipalRef,
    pub edit: BoundaryEdit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrustPolicyChange {
    pub id: String,
    pub principal: PrincipalRef,
    pub document: PolicyDocument,
    /// Added by iamdesk so that a cross-account `sts:AssumeRole` grant works (never taken from
    /// a client); `source_change_id` is the grant it completes.
    pub autogenerated: bool,
    pub source_change_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TagEdit {
    Create(String),
    Update(String),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagChange {
    pub id: String,
    pub principal: PrincipalRef,
    pub key: String,
    pub edit: TagEdit,
    /// A tag that is removed again at this time.
    pub expires: Option<Expiry>,
}

/// One inline policy of a new role (given by the requester, or copied from a clone source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInlinePolicy {
    pub policy_name: PolicyName,
    pub policy_document: PolicyDocument,
}

/// What a clone copies, pinned from the source role as synced when the request was created.
/// Computed by the validator, never taken from a client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedClone {
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_policy: Option<PolicyDocument>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inline_policies: Vec<NewInlinePolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policies: Vec<ManagedPolicyArn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<ManagedPolicyArn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloneSpec {
    pub from: RoleArn,
    pub copy_trust: bool,
    pub copy_inline: bool,
    pub copy_managed: bool,
    pub copy_tags: bool,
    pub resolved: ResolvedClone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateRoleChange {
    pub id: String,
    /// The new role: account, path and name.
    pub role: RoleArn,
    pub description: Option<String>,
    /// The trust policy given by the requester (absent when it is copied from the clone source).
    pub trust: Option<PolicyDocument>,
    pub inline_policies: Vec<NewInlinePolicy>,
    pub clone: Option<CloneSpec>,
}

impl CreateRoleChange {
    /// The trust policy the role is created with: given, else copied.
    pub fn trust_policy(&self) -> Option<&PolicyDocument> {
        self.trust.as_ref().or_else(|| {
            self.clone
                .as_ref()
                .and_then(|c| c.resolved.trust_policy.as_ref())
        })
    }

    /// Every inline policy the role gets: copied ones the requester did not override, then the
    /// requester's own.
    pub fn all_inline_policies(&self) -> Vec<&NewInlinePolicy> {
        let copied = self
            .clone
            .as_ref()
            .map(|c| c.resolved.inline_policies.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|p| {
                !self
                    .inline_policies
                    .iter()
                    .any(|g| g.policy_name == p.policy_name)
            });
        copied.chain(self.inline_policies.iter()).collect()
    }

    pub fn managed_policies(&self) -> &[ManagedPolicyArn] {
        self.clone
            .as_ref()
            .map(|c| c.resolved.managed_policies.as_slice())
            .unwrap_or_default()
    }

    pub fn permissions_boundary(&self) -> Option<&ManagedPolicyArn> {
        self.clone
            .as_ref()
            .and_then(|c| c.resolved.permissions_boundary.as_ref())
    }

    pub fn tags(&self) -> &[Tag] {
        self.clone
            .as_ref()
            .map(|c| c.resolved.tags.as_slice())
            .unwrap_or_default()
    }
}

/// One requested change. Stored, shown and applied as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ChangeWire", into = "ChangeWire")]
pub enum Change {
    InlinePolicy(InlinePolicyChange),
    ManagedPolicy(ManagedPolicyChange),
    PermissionsBoundary(BoundaryChange),
    AssumeRolePolicy(TrustPolicyChange),
    ResourceTag(TagChange),
    CreateRole(Box<CreateRoleChange>),
    /// A bucket, queue, topic or customer-managed policy (`resource_policy`, `resource_tag` on
    /// a resource, `managed_policy_resource`): `src/requests/resource_change.rs`.
    Resource(Box<ResourceChange>),
}

/// What a change targets: a role, or a bucket, queue, topic or managed policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target<'a> {
    Role(&'a RoleArn),
    Resource(&'a ResourceRef),
}

impl<'a> Target<'a> {
    pub fn account(&self) -> &'a AccountId {
        match self {
            Target::Role(r) => r.account(),
            Target::Resource(r) => &r.account,
        }
    }

    pub fn name(&self) -> &'a str {
        match self {
            Target::Role(r) => r.name(),
            Target::Resource(r) => &r.name,
        }
    }

    pub fn path(&self) -> &'a str {
        match self {
            Target::Role(r) => r.path(),
            Target::Resource(r) => &r.path,
        }
    }

    pub fn as_role(&self) -> Option<&'a RoleArn> {
        match self {
            Target::Role(r) => Some(r),
            Target::Resource(_) => None,
        }
    }

    pub fn as_resource(&self) -> Option<&'a ResourceRef> {
        match self {
            Target::Role(_) => None,
            Target::Resource(r) => Some(r),
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Role(r) => r.fmt(f),
            Target::Resource(r) => r.fmt(f),
        }
    }
}

impl Change {
    pub fn kind(&self) -> ChangeType {
        match self {
            Change::InlinePolicy(_) => ChangeType::InlinePolicy,
            Change::ManagedPolicy(_) => ChangeType::ManagedPolicy,
            Change::PermissionsBoundary(_) => ChangeType::PermissionsBoundary,
            Change::AssumeRolePolicy(_) => ChangeType::AssumeRolePolicy,
            Change::ResourceTag(_) => ChangeType::ResourceTag,
            Change::CreateRole(_) => ChangeType::CreateRole,
            Change::Resource(c) => match c.edit {
                ResourceEdit::Policy(_) => ChangeType::ResourcePolicy,
                ResourceEdit::Tag { .. } => ChangeType::ResourceTag,
                ResourceEdit::ManagedPolicy { .. } => ChangeType::ManagedPolicyResource,
            },
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Change::InlinePolicy(c) => &c.id,
            Change::ManagedPolicy(c) => &c.id,
            Change::PermissionsBoundary(c) => &c.id,
            Change::AssumeRolePolicy(c) => &c.id,
            Change::ResourceTag(c) => &c.id,
            Change::CreateRole(c) => &c.id,
            Change::Resource(c) => &c.id,
        }
    }

    pub(crate) fn set_id(&mut self, id: String) {
        match self {
            Change::InlinePolicy(c) => c.id = id,
            Change::ManagedPolicy(c) => c.id = id,
            Change::PermissionsBoundary(c) => c.id = id,
            Change::AssumeRolePolicy(c) => c.id = id,
            Change::ResourceTag(c) => c.id = id,
            Change::CreateRole(c) => c.id = id,
            Change::Resource(c) => c.id = id,
        }
    }

    /// What the change applies to: a role (for `create_role`, the new role), or a bucket,
    /// queue, topic or managed policy.
    pub fn target(&self) -> Target<'_> {
        match self {
            Change::InlinePolicy(c) => Target::Role(&c.principal.principal_arn),
            Change::ManagedPolicy(c) => Target::Role(&c.principal.principal_arn),
            Change::PermissionsBoundary(c) => Target::Role(&c.principal.principal_arn),
            Change::AssumeRolePolicy(c) => Target::Role(&c.principal.principal_arn),
            Change::ResourceTag(c) => Target::Role(&c.principal.principal_arn),
            Change::CreateRole(c) => Target::Role(&c.role),
            Change::Resource(c) => Target::Resource(&c.resource),
        }
    }

    /// Whether iamdesk added this change itself (a cross-account grant's other half).
    pub fn autogenerated(&self) -> bool {
        match self {
            Change::AssumeRolePolicy(c) => c.autogenerated,
            Change::Resource(c) => c.autogenerated,
            _ => false,
        }
    }

    /// When the grant this change makes is taken away again, if it expires.
    pub fn expires(&self) -> Option<Expiry> {
        match self {
            Change::InlinePolicy(c) => c.expires,
            Change::ManagedPolicy(c) => c.expires,
            Change::ResourceTag(c) => c.expires,
            Change::Resource(c) => c.expires,
            _ => None,
        }
    }

    /// Whether the change gives something (a policy, an attachment, a tag, a role) rather than
    /// taking it away.
    pub fn grants(&self) -> bool {
        match self {
            Change::InlinePolicy(c) => matches!(c.edit, InlineEdit::Put(_)),
            Change::ManagedPolicy(c) => c.action == AttachAction::Attach,
            Change::PermissionsBoundary(_) => false,
            Change::AssumeRolePolicy(_) | Change::CreateRole(_) => true,
            Change::ResourceTag(c) => !matches!(c.edit, TagEdit::Delete),
            Change::Resource(c) => c.grants(),
        }
    }

    /// The calls that take an expiring grant away again (the reverse of [`Change::calls`]).
    pub fn revoke_calls(&self) -> Vec<IamOp> {
        let role = self.target().name().to_string();
        if let Change::Resource(c) = self {
            return c.revoke_calls();
        }
        match self {
            Change::InlinePolicy(c) if matches!(c.edit, InlineEdit::Put(_)) => {
                vec![IamOp::DeleteRolePolicy {
                    role,
                    policy_name: c.policy_name.to_string(),
                }]
            }
            Change::ManagedPolicy(c) if c.action == AttachAction::Attach => {
                vec![IamOp::DetachRolePolicy {
                    role,
                    policy_arn: c.arn.to_string(),
                }]
            }
            Change::ResourceTag(c) if !matches!(c.edit, TagEdit::Delete) => {
                vec![IamOp::UntagRole {
                    role,
                    keys: vec![c.key.clone()],
                }]
            }
            _ => vec![],
        }
    }

    /// The policy document a requester or reviewer may edit with `update_change`, if any.
    pub fn editable_document(&self) -> Option<&PolicyDocument> {
        match self {
            Change::InlinePolicy(InlinePolicyChange {
                edit: InlineEdit::Put(d),
                ..
            }) => Some(d),
            Change::AssumeRolePolicy(c) => Some(&c.document),
            Change::CreateRole(c) => c.trust.as_ref(),
            Change::Resource(c) => c.editable_document(),
            _ => None,
        }
    }

    /// The exact IAM calls approving this change makes, in order, in the target's account.
    pub fn calls(&self) -> Vec<IamOp> {
        let role = self.target().name().to_string();
        match self {
            Change::InlinePolicy(c) => match &c.edit {
                InlineEdit::Put(doc) => vec![IamOp::PutRolePolicy {
                    role,
                    policy_name: c.policy_name.to_string(),
                    document: doc.as_value().clone(),
                }],
                InlineEdit::Delete => vec![IamOp::DeleteRolePolicy {
                    role,
                    policy_name: c.policy_name.to_string(),
                }],
            },
            Change::ManagedPolicy(c) => match c.action {
                AttachAction::Attach => vec![IamOp::AttachRolePolicy {
                    role,
                    policy_arn: c.arn.to_string(),
                }],
                AttachAction::Detach => vec![IamOp::DetachRolePolicy {
                    role,
                    policy_arn: c.arn.to_string(),
                }],
            },
            Change::PermissionsBoundary(c) => match &c.edit {
                BoundaryEdit::Put(arn) => vec![IamOp::PutRolePermissionsBoundary {
                    role,
                    policy_arn: arn.to_string(),
                }],
                BoundaryEdit::Delete(_) => vec![IamOp::DeleteRolePermissionsBoundary { role }],
            },
            Change::AssumeRolePolicy(c) => vec![IamOp::UpdateAssumeRolePolicy {
                role,
                document: c.document.as_value().clone(),
            }],
            Change::ResourceTag(c) => match &c.edit {
                TagEdit::Create(value) | TagEdit::Update(value) => vec![IamOp::TagRole {
                    role,
                    tags: vec![Tag {
                        key: c.key.clone(),
                        value: value.clone(),
                    }],
                }],
                TagEdit::Delete => vec![IamOp::UntagRole {
                    role,
                    keys: vec![c.key.clone()],
                }],
            },
            Change::CreateRole(c) => {
                let mut calls = vec![IamOp::CreateRole {
                    role: role.clone(),
                    path: c.role.path().to_string(),
                    description: c.description.clone(),
                    trust: c
                        .trust_policy()
                        .map(|d| d.as_value().clone())
                        .unwrap_or(Value::Null),
                    tags: c.tags().to_vec(),
                }];
                for p in c.all_inline_policies() {
                    calls.push(IamOp::PutRolePolicy {
                        role: role.clone(),
                        policy_name: p.policy_name.to_string(),
                        document: p.policy_document.as_value().clone(),
                    });
                }
                for arn in c.managed_policies() {
                    calls.push(IamOp::AttachRolePolicy {
                        role: role.clone(),
                        policy_arn: arn.to_string(),
                    });
                }
                if let Some(b) = c.permissions_boundary() {
                    calls.push(IamOp::PutRolePermissionsBoundary {
                        role: role.clone(),
                        policy_arn: b.to_string(),
                    });
                }
                calls
            }
            Change::Resource(c) => c.calls(),
        }
    }
}

/// A request's changes, serialized as ConsoleMe's `{"changes": [...]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeList {
    pub changes: Vec<Change>,
}

impl ChangeList {
    pub fn iter(&self) -> std::slice::Iter<'_, Change> {
        self.changes.iter()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Everything the changes touch, in order, without repeats.
    pub fn targets(&self) -> Vec<Target<'_>> {
        let mut out: Vec<Target<'_>> = Vec::new();
        for c in &self.changes {
            if !out.contains(&c.target()) {
                out.push(c.target());
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Drafts: what a form proposes, in plain values, for the validator to check.

/// A change as a page's form proposes it. Plain values in the v2 wire shape: the validator
/// (`src/requests/validate/`) checks them exactly as it checks a client's JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChangeDraft {
    change_type: Option<ChangeType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<AttachAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag_action: Option<TagAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_policies: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_date: Option<String>,
}

impl ChangeDraft {
    /// The same change, taken away again at `when` (RFC 3339 or `YYYYmmdd`), if given.
    pub fn expiring(mut self, when: Option<String>) -> Self {
        self.expiration_date = when;
        self
    }

    fn on(kind: ChangeType, role_arn: &str) -> Self {
        ChangeDraft {
            change_type: Some(kind),
            principal: Some(
                serde_json::json!({"principal_type": "AwsResource", "principal_arn": role_arn}),
            ),
            ..ChangeDraft::default()
        }
    }

    fn document(doc: Value) -> Option<Value> {
        Some(serde_json::json!({ "policy_document": doc }))
    }

    pub fn inline_put(role_arn: &str, name: &str, doc: Value) -> Self {
        ChangeDraft {
            policy_name: Some(name.into()),
            action: Some(AttachAction::Attach),
            policy: Self::document(doc),
            ..Self::on(ChangeType::InlinePolicy, role_arn)
        }
    }

    pub fn inline_delete(role_arn: &str, name: &str) -> Self {
        ChangeDraft {
            policy_name: Some(name.into()),
            action: Some(AttachAction::Detach),
            ..Self::on(ChangeType::InlinePolicy, role_arn)
        }
    }

    /// A managed policy (`boundary` false) or the permissions boundary (true).
    pub fn managed(role_arn: &str, boundary: bool, action: AttachAction, arn: &str) -> Self {
        let kind = if boundary {
            ChangeType::PermissionsBoundary
        } else {
            ChangeType::ManagedPolicy
        };
        ChangeDraft {
            action: Some(action),
            arn: (!arn.is_empty()).then(|| arn.to_string()),
            ..Self::on(kind, role_arn)
        }
    }

    pub fn trust(role_arn: &str, doc: Value) -> Self {
        ChangeDraft {
            policy: Self::document(doc),
            ..Self::on(ChangeType::AssumeRolePolicy, role_arn)
        }
    }

    pub fn tag(role_arn: &str, action: TagAction, key: &str, value: &str) -> Self {
        ChangeDraft {
            key: Some(key.into()),
            value: (action != TagAction::Delete).then(|| value.to_string()),
            tag_action: Some(action),
            ..Self::on(ChangeType::ResourceTag, role_arn)
        }
    }

    /// Replace (`Some`) or remove (`None`) the policy of a bucket, queue or topic.
    pub fn resource_policy(resource_arn: &str, account_id: &str, doc: Option<Value>) -> Self {
        ChangeDraft {
            change_type: Some(ChangeType::ResourcePolicy),
            principal: Some(serde_json::json!({"principal_type": "AwsResource",
                                               "principal_arn": resource_arn})),
            arn: Some(resource_arn.to_string()),
            account_id: Some(account_id.to_string()),
            action: Some(if doc.is_some() {
                AttachAction::Attach
            } else {
                AttachAction::Detach
            }),
            policy: doc.and_then(Self::document),
            ..ChangeDraft::default()
        }
    }

    /// A new default version of a customer-managed policy (or the policy itself when new).
    pub fn managed_policy_resource(policy_arn: &str, doc: Value) -> Self {
        ChangeDraft {
            change_type: Some(ChangeType::ManagedPolicyResource),
            principal: Some(serde_json::json!({"principal_type": "AwsResource",
                                               "principal_arn": policy_arn})),
            policy: Self::document(doc),
            ..ChangeDraft::default()
        }
    }

    /// A new role with its trust policy and inline policies (name, document).
    pub fn create_role(
        account_id: &str,
        role_name: &str,
        description: &str,
        trust: Value,
        inline: Vec<(String, Value)>,
    ) -> Self {
        ChangeDraft {
            change_type: Some(ChangeType::CreateRole),
            account_id: Some(account_id.into()),
            role_name: Some(role_name.into()),
            description: (!description.is_empty()).then(|| description.to_string()),
            policy: Self::document(trust),
            inline_policies: Some(
                inline
                    .into_iter()
                    .map(|(n, d)| serde_json::json!({"policy_name": n, "policy_document": d}))
                    .collect(),
            ),
            ..ChangeDraft::default()
        }
    }
}

/// A request as a page's form proposes it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestDraft {
    pub justification: String,
    pub changes: Vec<ChangeDraft>,
}

impl RequestDraft {
    /// The v2 body the validator reads.
    pub fn to_body(&self) -> Value {
        serde_json::json!({"justification": self.justification,
                           "changes": {"changes": self.changes}})
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format (ConsoleMe v2), used for the Store and the API.

/// `policy` of a change: `{"policy_document": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub policy_document: PolicyDocument,
}

/// Every key any change type uses. [`Change`]'s `TryFrom` says which belong to which type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeWire {
    pub change_type: Option<ChangeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<PolicyName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AttachAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyBody>,
    /// A managed policy (`managed_policy`, `permissions_boundary`) or the resource whose policy
    /// changes (`resource_policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_action: Option<TagAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_policies: Option<Vec<NewInlinePolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_from: Option<RoleArn>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_trust: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_inline: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_managed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_tags: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_clone: Option<ResolvedClone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<Expiry>,
    // ---- Resource changes (`src/requests/resource_change.rs`); all but the first two are
    // server-owned: pinned by the validator, never taken from a client.
    /// Where the bucket, queue or topic lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autogenerated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_change_id: Option<String>,
    /// ConsoleMe's `new` of `managed_policy_resource`: create the policy (true) or publish a
    /// new version (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
    /// The policy version deleted before a new one is published (IAM keeps five).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_version: Option<String>,
    /// A bucket's whole tag set after a `resource_tag` change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_tags: Option<Vec<Tag>>,
    /// An expiring `resource_policy`'s policy before it, put back at the expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_policy: Option<Value>,
}

/// `principal` on the wire: a role's ARN, or for resource changes the resource's (or the
/// granted role's) ARN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalWire {
    pub principal_type: PrincipalType,
    pub principal_arn: String,
}

impl From<PrincipalRef> for PrincipalWire {
    fn from(p: PrincipalRef) -> Self {
        PrincipalWire {
            principal_type: p.principal_type,
            principal_arn: p.principal_arn.to_string(),
        }
    }
}

impl PrincipalWire {
    fn of(arn: String) -> Self {
        PrincipalWire {
            principal_type: PrincipalType::AwsResource,
            principal_arn: arn,
        }
    }
}

impl From<Change> for ChangeWire {
    fn from(change: Change) -> ChangeWire {
        let kind = change.kind();
        let mut w = ChangeWire {
            change_type: Some(kind),
            id: Some(change.id().to_string()),
            ..ChangeWire::default()
        };
        match change {
            Change::InlinePolicy(c) => {
                w.principal = Some(c.principal.into());
                w.policy_name = Some(c.policy_name);
                w.expiration_date = c.expires;
                match c.edit {
                    InlineEdit::Put(doc) => {
                        w.action = Some(AttachAction::Attach);
                        w.policy = Some(PolicyBody {
                            policy_document: doc,
                        });
                    }
                    InlineEdit::Delete => w.action = Some(AttachAction::Detach),
                }
            }
            Change::ManagedPolicy(c) => {
                w.principal = Some(c.principal.into());
                w.action = Some(c.action);
                w.arn = Some(c.arn.to_string());
                w.expiration_date = c.expires;
            }
            Change::PermissionsBoundary(c) => {
                w.principal = Some(c.principal.into());
                match c.edit {
                    BoundaryEdit::Put(arn) => {
                        w.action = Some(AttachAction::Attach);
                        w.arn = Some(arn.to_string());
                    }
                    BoundaryEdit::Delete(arn) => {
                        w.action = Some(AttachAction::Detach);
                        w.arn = arn.map(|a| a.to_string());
                    }
                }
            }
            Change::AssumeRolePolicy(c) => {
                w.principal = Some(c.principal.into());
                w.policy = Some(PolicyBody {
                    policy_document: c.document,
                });
                w.autogenerated = c.autogenerated;
                w.source_change_id = c.source_change_id;
            }
            Change::ResourceTag(c) => {
                w.principal = Some(c.principal.into());
                w.key = Some(c.key);
                w.expiration_date = c.expires;
                let (action, value) = match c.edit {
                    TagEdit::Create(v) => (TagAction::Create, Some(v)),
                    TagEdit::Update(v) => (TagAction::Update, Some(v)),
                    TagEdit::Delete => (TagAction::Delete, None),
                };
                w.tag_action = Some(action);
                w.value = value;
            }
            Change::CreateRole(c) => {
                w.account_id = Some(c.role.account().clone());
                w.role_name = Some(c.role.name().to_string());
                w.path = Some(c.role.path().to_string());
                w.description = c.description;
                w.policy = c.trust.map(|d| PolicyBody { policy_document: d });
                w.inline_policies = (!c.inline_policies.is_empty()).then_some(c.inline_policies);
                if let Some(clone) = c.clone {
                    w.clone_from = Some(clone.from);
                    w.copy_trust = clone.copy_trust;
                    w.copy_inline = clone.copy_inline;
                    w.copy_managed = clone.copy_managed;
                    w.copy_tags = clone.copy_tags;
                    w.resolved_clone = Some(clone.resolved);
                }
            }
            Change::Resource(c) => resource_to_wire(*c, &mut w),
        }
        w
    }
}

fn resource_to_wire(c: ResourceChange, w: &mut ChangeWire) {
    let r = c.resource;
    w.principal = Some(PrincipalWire::of(c.principal));
    w.account_id = Some(r.account.clone());
    w.region = (!r.region.is_empty()).then(|| r.region.clone());
    w.autogenerated = c.autogenerated;
    w.source_change_id = c.source_change_id;
    w.expiration_date = c.expires;
    w.previous_policy = c.previous_policy;
    match c.edit {
        ResourceEdit::Policy(doc) => {
            w.arn = Some(r.arn());
            w.action = Some(if doc.is_some() {
                AttachAction::Attach
            } else {
                AttachAction::Detach
            });
            w.policy = doc.map(|d| PolicyBody { policy_document: d });
        }
        ResourceEdit::Tag {
            key,
            edit,
            bucket_tags,
        } => {
            w.key = Some(key);
            let (action, value) = match edit {
                TagEdit::Create(v) => (TagAction::Create, Some(v)),
                TagEdit::Update(v) => (TagAction::Update, Some(v)),
                TagEdit::Delete => (TagAction::Delete, None),
            };
            w.tag_action = Some(action);
            w.value = value;
            w.bucket_tags = (r.kind == ResourceKind::S3).then_some(bucket_tags);
        }
        ResourceEdit::ManagedPolicy { document, step } => {
            w.policy = Some(PolicyBody {
                policy_document: document,
            });
            match step {
                PolicyStep::Create { description } => {
                    w.new = Some(true);
                    w.description = description;
                }
                PolicyStep::Publish { delete_first } => {
                    w.new = Some(false);
                    w.delete_version = delete_first;
                }
            }
        }
    }
}

/// The resource of a stored resource change: its ARN with the pinned account and region.
fn stored_resource(w: &ChangeWire, arn: &str) -> Result<ResourceRef, String> {
    let parsed = ResourceRef::parse_arn(arn)?;
    let account = match (&w.account_id, parsed.account) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) => AccountId::parse(&a)?,
        (None, None) => return Err(format!("a stored change on {arn} has no account_id")),
    };
    Ok(ResourceRef {
        kind: parsed.kind,
        account,
        region: w.region.clone().or(parsed.region).unwrap_or_default(),
        name: parsed.name,
        path: parsed.path,
    })
}

/// Which wire keys a change type uses (besides `change_type` and `id`).
pub fn wire_keys(kind: ChangeType) -> &'static [&'static str] {
    match kind {
        ChangeType::InlinePolicy => &[
            "principal",
            "policy_name",
            "action",
            "policy",
            "expiration_date",
        ],
        ChangeType::ManagedPolicy => &["principal", "action", "arn", "expiration_date"],
        ChangeType::PermissionsBoundary => &["principal", "action", "arn"],
        ChangeType::AssumeRolePolicy => &["principal", "policy"],
        ChangeType::ResourceTag => &[
            "principal",
            "key",
            "value",
            "tag_action",
            "expiration_date",
            "account_id",
        ],
        ChangeType::ResourcePolicy => &[
            "principal",
            "arn",
            "account_id",
            "action",
            "policy",
            "expiration_date",
        ],
        ChangeType::ManagedPolicyResource => &["principal", "policy", "description"],
        ChangeType::CreateRole => &[
            "principal",
            "account_id",
            "role_name",
            "path",
            "description",
            "policy",
            "inline_policies",
            "clone_from",
            "copy_trust",
            "copy_inline",
            "copy_managed",
            "copy_tags",
        ],
    }
}

/// Rebuild a typed change from its stored form. Everything stored was validated on the way in,
/// so an error here means the stored item was altered: it is reported, never guessed at.
impl TryFrom<ChangeWire> for Change {
    type Error = String;

    fn try_from(w: ChangeWire) -> Result<Change, String> {
        let kind = w.change_type.ok_or("a stored change has no change_type")?;
        let missing = |what: &str| format!("a stored {} change has no {what}", kind.as_str());
        let id = w.id.clone().ok_or_else(|| missing("id"))?;
        let principal_arn = || {
            w.principal
                .as_ref()
                .map(|p| p.principal_arn.clone())
                .ok_or_else(|| missing("principal"))
        };
        let principal = || principal_arn().and_then(|a| RoleArn::parse(&a).map(PrincipalRef::new));
        let policy_arn = || w.arn.as_deref().map(ManagedPolicyArn::parse).transpose();
        let resource_change = |resource: ResourceRef, edit| {
            Ok::<_, String>(Change::Resource(Box::new(ResourceChange {
                id: id.clone(),
                principal: principal_arn()?,
                resource,
                edit,
                autogenerated: w.autogenerated,
                source_change_id: w.source_change_id.clone(),
                expires: w.expiration_date,
                previous_policy: w.previous_policy.clone(),
            })))
        };
        let document = || {
            w.policy
                .clone()
                .map(|p| p.policy_document)
                .ok_or_else(|| missing("policy.policy_document"))
        };
        Ok(match kind {
            ChangeType::InlinePolicy => Change::InlinePolicy(InlinePolicyChange {
                id,
                principal: principal()?,
                policy_name: w
                    .policy_name
                    .clone()
                    .ok_or_else(|| missing("policy_name"))?,
                edit: match w.action.unwrap_or(AttachAction::Attach) {
                    AttachAction::Attach => InlineEdit::Put(document()?),
                    AttachAction::Detach => InlineEdit::Delete,
                },
                expires: w.expiration_date,
            }),
            ChangeType::ManagedPolicy => Change::ManagedPolicy(ManagedPolicyChange {
                id,
                principal: principal()?,
                action: w.action.unwrap_or(AttachAction::Attach),
                arn: policy_arn()?.ok_or_else(|| missing("arn"))?,
                expires: w.expiration_date,
            }),
            ChangeType::PermissionsBoundary => Change::PermissionsBoundary(BoundaryChange {
                id,
                principal: principal()?,
                edit: match w.action.unwrap_or(AttachAction::Attach) {
                    AttachAction::Attach => {
                        BoundaryEdit::Put(policy_arn()?.ok_or_else(|| missing("arn"))?)
                    }
                    AttachAction::Detach => BoundaryEdit::Delete(policy_arn()?),
                },
            }),
            ChangeType::AssumeRolePolicy => Change::AssumeRolePolicy(TrustPolicyChange {
                id,
                principal: principal()?,
                document: document()?,
                autogenerated: w.autogenerated,
                source_change_id: w.source_change_id.clone(),
            }),
            ChangeType::ResourceTag => {
                let value = || w.value.clone().ok_or_else(|| missing("value"));
                let key = w.key.clone().ok_or_else(|| missing("key"))?;
                let edit = match w.tag_action.ok_or_else(|| missing("tag_action"))? {
                    TagAction::Create => TagEdit::Create(value()?),
                    TagAction::Update => TagEdit::Update(value()?),
                    TagAction::Delete => TagEdit::Delete,
                };
                let arn = principal_arn()?;
                if arn.starts_with("arn:aws:iam::") {
                    Change::ResourceTag(TagChange {
                        id,
                        principal: principal()?,
                        key,
                        edit,
                        expires: w.expiration_date,
                    })
                } else {
                    let bucket_tags = w.bucket_tags.clone().unwrap_or_default();
                    let edit = ResourceEdit::Tag {
                        key,
                        edit,
                        bucket_tags,
                    };
                    resource_change(stored_resource(&w, &arn)?, edit)?
                }
            }
            ChangeType::ResourcePolicy => {
                let arn = w.arn.clone().ok_or_else(|| missing("arn"))?;
                let doc = match w.action.unwrap_or(AttachAction::Attach) {
                    AttachAction::Attach => Some(document()?),
                    AttachAction::Detach => None,
                };
                resource_change(stored_resource(&w, &arn)?, ResourceEdit::Policy(doc))?
            }
            ChangeType::ManagedPolicyResource => {
                let arn = principal_arn()?;
                let step = if w.new.unwrap_or(false) {
                    PolicyStep::Create {
                        description: w.description.clone(),
                    }
                } else {
                    PolicyStep::Publish {
                        delete_first: w.delete_version.clone(),
                    }
                };
                let edit = ResourceEdit::ManagedPolicy {
                    document: document()?,
                    step,
                };
                resource_change(stored_resource(&w, &arn)?, edit)?
            }
            ChangeType::CreateRole => {
                let account = w.account_id.clone().ok_or_else(|| missing("account_id"))?;
                let name = w.role_name.clone().ok_or_else(|| missing("role_name"))?;
                let path = w.path.clone().unwrap_or_else(|| "/".into());
                let clone = match (w.clone_from.clone(), w.resolved_clone.clone()) {
                    (Some(from), Some(resolved)) => Some(CloneSpec {
                        from,
                        copy_trust: w.copy_trust,
                        copy_inline: w.copy_inline,
                        copy_managed: w.copy_managed,
                        copy_tags: w.copy_tags,
                        resolved,
                    }),
                    (None, None) => None,
                    _ => return Err(missing("clone_from with its resolved_clone")),
                };
                let role = RoleArn::from_parts(account, &path, &name);
                let change = CreateRoleChange {
                    id,
                    role,
                    description: w.description.clone(),
                    trust: w.policy.clone().map(|p| p.policy_document),
                    inline_policies: w.inline_policies.clone().unwrap_or_default(),
                    clone,
                };
                if change.trust_policy().is_none() {
                    return Err(missing("trust policy"));
                }
                Change::CreateRole(Box::new(change))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_arns_keep_path_and_name() {
        let arn = RoleArn::parse("arn:aws:iam::123456789012:role/service/app").expect("arn");
        assert_eq!(arn.account().as_str(), "123456789012");
        assert_eq!(arn.path(), "/service/");
        assert_eq!(arn.name(), "app");
        assert_eq!(
            arn.to_string(),
            "arn:aws:iam::123456789012:role/service/app"
        );
        assert!(RoleArn::parse("arn:aws:iam::1234:role/app").is_err());
        assert!(
            RoleArn::parse("arn:aws:iam::123456789012:user/app")
                .is_err_and(|e| e.contains("roles only"))
        );
    }

    #[test]
    fn stored_changes_round_trip_and_refuse_unknown_keys() {
        let stored = json!({"change_type": "inline_policy", "id": "c1",
            "principal": {"principal_type": "AwsResource",
                          "principal_arn": "arn:aws:iam::123456789012:role/app"},
            "policy_name": "p", "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": []}}});
        let change: Change = serde_json::from_value(stored.clone()).expect("parses");
        assert_eq!(serde_json::to_value(&change).expect("serializes"), stored);
        let mut extra = stored.clone();
        extra["resolved_clone"] = json!({"from": "x"});
        extra["surprise"] = json!(1);
        assert!(serde_json::from_value::<Change>(extra).is_err());
    }

    #[test]
    fn calls_are_what_the_change_says() {
        let change: Change = serde_json::from_value(json!({"change_type": "resource_tag",
            "id": "c1", "principal": {"principal_type": "AwsResource",
            "principal_arn": "arn:aws:iam::123456789012:role/app"},
            "key": "team", "tag_action": "delete"}))
        .expect("parses");
        assert_eq!(
            change.calls(),
            vec![IamOp::UntagRole {
                role: "app".into(),
                keys: vec!["team".into()]
            }]
        );
    }
}
