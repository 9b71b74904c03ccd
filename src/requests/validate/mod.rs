//! Validation of a proposed policy request (ConsoleMe v2 shape) before anything is stored: the
//! one way from a client's JSON to the typed changes of `src/requests/model.rs`.
//!
//! Two steps, both collecting every problem (nothing stops at the first), each naming the field
//! it is about (`changes[0].policy.policy_document.Statement[1].Effect`) and how to fix it:
//!
//! 1. [`parse`](changes): the body's shape, IAM policy grammar (`grammar.rs`), ARNs and names
//!    (`names.rs`), unknown and server-owned keys. Pure. Out come typed [`Change`]s.
//! 2. [`check_against`](state): the typed changes against the synced accounts: each principal is
//!    the synced role exactly (path and case), iamdesk's own roles are off limits, detaching
//!    something absent or creating a tag that exists is refused, the AWS quotas as they would
//!    stand after the request (`quotas.rs`), and what a clone copies is pinned. Risky but legal
//!    grants come back as [`Warning`]s for the reviewer.
//!
//! Creating a request runs both; editing one (`update_change`) parses the new document and runs
//! step 2 on the whole edited list, so an edit is held to the same rules as a new request.

mod changes;
mod cross_account;
mod grammar;
pub mod names;
mod quotas;
mod state;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::model::Change;
use crate::resources::model::Principal;

pub use grammar::{policy_warnings, validate_policy_document};
pub use names::{
    MAX_CHANGES, MAX_JUSTIFICATION_CHARS, ROLE_INLINE_POLICY_CHARS, TAG_KEY_CHARS, TAG_VALUE_CHARS,
    TRUST_POLICY_CHARS, is_name_char,
};

/// Quotas and bounds that differ per installation (AWS lets its quotas be raised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Managed policies attached to one role.
    pub max_managed_policies: usize,
    /// Tags on one role.
    pub max_tags: usize,
    /// How far ahead an `expiration_date` may be.
    pub max_expiration_days: u32,
    /// The time `expiration_date`s are checked against.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_managed_policies: 10,
            max_tags: 50,
            max_expiration_days: 90,
            now: chrono::Utc::now(),
        }
    }
}

/// What validation needs to know about the synced accounts.
pub trait Synced {
    /// The synced role of `account` whose name is `name` ignoring case: IAM role names are
    /// unique per account whatever their case and path.
    fn role_named(&self, account: &str, name: &str) -> Option<Principal>;

    /// Why iamdesk must never change the role `name` of `account` (its own roles), if so.
    fn protected(&self, account: &str, name: &str) -> Option<String>;

    /// A synced bucket, queue, topic or customer-managed policy. `account: None` (a bucket ARN
    /// names no account) looks in every account; `region: None` takes any region.
    fn resource(
        &self,
        account: Option<&str>,
        kind: crate::resources::model::ResourceKind,
        region: Option<&str>,
        name: &str,
    ) -> Option<crate::resources::model::Resource> {
        let _ = (account, kind, region, name);
        None
    }

    /// The configured accounts' ids.
    fn accounts(&self) -> Vec<String> {
        vec![]
    }
}

/// Why a request cannot be accepted: the field (`changes[0].policy_name`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A legal but risky grant, shown to the reviewer: `change` is the index in `changes.changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub change: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "change {}: {}", self.change + 1, self.message)
    }
}

/// Which grammar a policy document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Inline or managed permissions policy: Action + Resource, no Principal.
    Identity,
    /// Role trust (assume-role) policy: Action + Principal, no Resource.
    Trust,
    /// Resource policy of a bucket, queue or topic: Action + Principal + Resource.
    Resource,
}

/// A request body that passed both steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub justification: String,
    pub admin_auto_approve: bool,
    /// `break_glass.reason`: apply at once (the caller checks who may).
    pub break_glass: Option<String>,
    /// Typed, with fresh ids, canonical principals and clones pinned.
    pub changes: Vec<Change>,
    pub warnings: Vec<Warning>,
}

/// Validate a whole request body `{"justification", "admin_auto_approve", "changes":
/// {"changes": [...]}}` against the synced accounts. Ok carries the typed changes and the
/// warnings for the reviewer; Err every problem found.
pub fn validate_request(
    body: &Value,
    synced: &dyn Synced,
    limits: &Limits,
) -> Result<Validated, Vec<Problem>> {
    let parsed = changes::parse(body)?;
    let (mut changes, mut warnings) =
        state::check_against(parsed.changes, synced, limits, state::Clones::Resolve)?;
    // The other half of cross-account grants, checked like the rest; its problems and warnings
    // are numbered where the changes land in the request.
    let extra = cross_account::generate(&changes, synced);
    if !extra.is_empty() {
        let base = changes.len();
        let renumber = |field: String| match field
            .strip_prefix("changes[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(n, rest)| Some((n.parse::<usize>().ok()?, rest)))
        {
            Some((n, rest)) => format!("changes[{}]{rest}", n + base),
            None => field,
        };
        match state::check_against(extra, synced, limits, state::Clones::Resolve) {
            Ok((extra, more)) => {
                changes.extend(extra);
                warnings.extend(more.into_iter().map(|w| Warning {
                    change: w.change + base,
                    message: w.message,
                }));
            }
            Err(problems) => {
                return Err(problems
                    .into_iter()
                    .map(|p| Problem {
                        field: renumber(p.field),
                        message: format!(
                            "{} (in the change iamdesk adds so the cross-account grant works)",
                            p.message
                        ),
                    })
                    .collect());
            }
        }
    }
    Ok(Validated {
        justification: parsed.justification,
        admin_auto_approve: parsed.admin_auto_approve,
        break_glass: parsed.break_glass,
        changes,
        warnings,
    })
}

/// Step 1 for one change (`field` names it in the problems): its shape, names and policy
/// grammar, exactly as in a request body. Used by the ConsoleMe import (`src/import/`).
pub fn parse_change(raw: &Value, field: &str) -> Result<Change, Vec<Problem>> {
    changes::parse_one(raw, field)
}

/// Step 2 alone, for changes already typed (an edited request): clones stay as pinned.
pub fn check_changes(
    changes: Vec<Change>,
    synced: &dyn Synced,
    limits: &Limits,
) -> Result<(Vec<Change>, Vec<Warning>), Vec<Problem>> {
    state::check_against(changes, synced, limits, state::Clones::KeepPinned)
}

/// Grammar of one document that replaces the one at `field` (`update_change`).
pub fn parse_document(
    doc: &Value,
    kind: DocKind,
    field: &str,
) -> Result<super::model::PolicyDocument, Vec<Problem>> {
    let problems = validate_policy_document(doc, kind, field);
    if problems.is_empty() {
        Ok(super::model::PolicyDocument::checked(doc.clone()))
    } else {
        Err(problems)
    }
}

/// What a request granting `doc` to the role `role` would get added (the self-service wizard's
/// review step says so before it is submitted): one line per autogenerated change.
pub fn cross_account_additions(role: &str, doc: &Value, synced: &dyn Synced) -> Vec<String> {
    use super::model::{InlineEdit, InlinePolicyChange, PolicyName, PrincipalRef, RoleArn};
    let (Ok(arn), Ok(name)) = (RoleArn::parse(role), PolicyName::parse("preview")) else {
        return vec![];
    };
    let grant = Change::InlinePolicy(InlinePolicyChange {
        id: "preview".into(),
        principal: PrincipalRef::new(arn),
        policy_name: name,
        edit: InlineEdit::Put(super::model::PolicyDocument::checked(doc.clone())),
        expires: None,
    });
    cross_account::generate(&[grant], synced)
        .iter()
        .map(|c| match c {
            Change::Resource(r) => {
                let region = Some(r.resource.region.as_str());
                let account = Some(r.resource.account.as_str());
                let has_policy = matches!(
                    synced.resource(account, r.resource.kind, region, &r.resource.name),
                    Some(crate::resources::model::Resource::Service(s)) if s.policy.is_some()
                );
                r.summary(has_policy)
            }
            other => format!(
                "replace the trust policy of {} (added by iamdesk so the cross-account grant \
                 works)",
                other.target()
            ),
        })
        .collect()
}

/// A new document for a resource change (`update_change`): the grammar of its kind, and for a
/// resource policy the resource it may name and the service's size limit, for a managed policy
/// the 6,144-character quota.
pub fn parse_resource_document(
    change: &super::resource_change::ResourceChange,
    doc: &Value,
    field: &str,
) -> Result<super::model::PolicyDocument, Vec<Problem>> {
    use super::resource_change::{MANAGED_POLICY_CHARS, ResourceEdit};
    let mut problems = match change.edit {
        ResourceEdit::Policy(_) => {
            let mut p = validate_policy_document(doc, DocKind::Resource, field);
            p.extend(grammar::resource_policy_problems(
                doc,
                &change.resource,
                field,
            ));
            p
        }
        _ => validate_policy_document(doc, DocKind::Identity, field),
    };
    if let ResourceEdit::ManagedPolicy { .. } = change.edit {
        let n = names::doc_chars(doc);
        if n > MANAGED_POLICY_CHARS {
            problems.push(Problem::new(
                field,
                format!(
                    "the managed policy is {n} characters without whitespace; AWS allows \
                     {MANAGED_POLICY_CHARS}"
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(super::model::PolicyDocument::checked(doc.clone()))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A synced account for the unit tests of this folder.
    use super::names::doc_chars;
    use super::*;
    use crate::resources::model::{AttachedPolicy, InlinePolicy, ResourceKind, Tag};
    use serde_json::json;

    pub const ACCT: &str = "123456789012";

    pub fn role_arn(name: &str) -> String {
        format!("arn:aws:iam::{ACCT}:role/{name}")
    }

    pub fn principal_of(name: &str) -> Value {
        json!({"principal_type": "AwsResource", "principal_arn": role_arn(name)})
    }

    pub fn trust() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
               "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    }

    pub fn s3_read() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "Read", "Effect": "Allow",
               "Action": ["s3:GetObject", "s3:ListBucket"],
               "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]}]})
    }

    pub fn role(name: &str) -> Principal {
        Principal {
            kind: ResourceKind::Role,
            account_id: ACCT.into(),
            name: name.into(),
            arn: role_arn(name),
            path: "/".into(),
            id: "AROAEXAMPLE".into(),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: None,
            trust_policy: Some(trust()),
            inline_policies: vec![],
            managed_policies: vec![],
            permissions_boundary: None,
            tags: vec![],
        }
    }

    /// The synced role `app`: one inline policy `read`, one managed policy, one tag `team`.
    pub fn app() -> Principal {
        let mut p = role("app");
        p.inline_policies = vec![InlinePolicy {
            name: "read".into(),
            document: s3_read(),
        }];
        p.managed_policies = vec![AttachedPolicy {
            name: "ReadOnlyAccess".into(),
            arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
        }];
        p.tags = vec![Tag {
            key: "team".into(),
            value: "data".into(),
        }];
        p
    }

    /// Synced roles, with `spoke` as iamdesk's own role.
    pub struct Roles(pub Vec<Principal>);

    impl Synced for Roles {
        fn role_named(&self, account: &str, name: &str) -> Option<Principal> {
            self.0
                .iter()
                .find(|p| p.account_id == account && p.name.eq_ignore_ascii_case(name))
                .cloned()
        }

        fn protected(&self, _account: &str, name: &str) -> Option<String> {
            name.eq_ignore_ascii_case("spoke")
                .then(|| "`spoke` is the role iamdesk itself uses in this account".to_string())
        }
    }

    pub fn body_of(changes: Vec<Value>) -> Value {
        json!({"justification": "ticket DATA-42: nightly export", "admin_auto_approve": false,
               "changes": {"changes": changes}})
    }

    pub fn run_with(
        body: &Value,
        principals: Vec<Principal>,
        limits: &Limits,
    ) -> Result<Validated, Vec<Problem>> {
        validate_request(body, &Roles(principals), limits)
    }

    pub fn run(changes: Vec<Value>, principals: Vec<Principal>) -> Result<Validated, Vec<Problem>> {
        run_with(&body_of(changes), principals, &Limits::default())
    }

    #[track_caller]
    pub fn ok(r: Result<Validated, Vec<Problem>>) -> Validated {
        match r {
            Ok(v) => v,
            Err(p) => panic!("expected success, got {p:#?}"),
        }
    }

    /// The problems, asserting there is one at `field` whose message contains `needle`.
    #[track_caller]
    pub fn fails(r: Result<Validated, Vec<Problem>>, field: &str, needle: &str) -> Vec<Problem> {
        match r {
            Ok(v) => panic!("expected a problem at {field}, got success {v:#?}"),
            Err(p) => {
                assert!(
                    p.iter()
                        .any(|x| x.field == field && x.message.contains(needle)),
                    "no problem at {field} containing {needle:?} in {p:#?}"
                );
                p
            }
        }
    }

    pub fn warnings_for(doc: Value) -> Vec<Warning> {
        ok(run(vec![inline_attach("app", "p", doc)], vec![app()])).warnings
    }

    pub fn inline_attach(role: &str, name: &str, doc: Value) -> Value {
        json!({"change_type": "inline_policy", "principal": principal_of(role), "policy_name": name,
               "action": "attach", "policy": {"policy_document": doc}})
    }

    pub fn managed(role: &str, arn: &str, action: &str) -> Value {
        json!({"change_type": "managed_policy", "principal": principal_of(role), "arn": arn,
               "action": action})
    }

    pub fn tag(role: &str, key: &str, value: &str, action: &str) -> Value {
        json!({"change_type": "resource_tag", "principal": principal_of(role), "key": key,
               "value": value, "tag_action": action})
    }

    pub fn identity(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [statement]})
    }

    #[track_caller]
    pub fn doc_fails(doc: Value, kind: DocKind, field: &str, needle: &str) {
        let p = validate_policy_document(&doc, kind, "doc");
        assert!(
            p.iter()
                .any(|x| x.field == field && x.message.contains(needle)),
            "no problem at {field} containing {needle:?} in {p:#?}"
        );
    }

    #[track_caller]
    pub fn doc_ok(doc: Value, kind: DocKind) {
        let p = validate_policy_document(&doc, kind, "doc");
        assert!(p.is_empty(), "unexpected problems {p:#?}");
    }

    pub fn allow(action: Value, resource: Value) -> Value {
        identity(json!({"Effect": "Allow", "Action": action, "Resource": resource}))
    }

    /// An identity document of exactly `len` characters without whitespace.
    pub fn identity_doc_of(len: usize) -> Value {
        let make = |pad: usize| {
            allow(
                json!("s3:GetObject"),
                json!(format!("arn:aws:s3:::b/{}", "a".repeat(pad))),
            )
        };
        let doc = make(len - doc_chars(&make(0)));
        assert_eq!(doc_chars(&doc), len);
        doc
    }

    /// A trust document of exactly `len` characters without whitespace.
    pub fn trust_doc_of(len: usize) -> Value {
        let make = |pad: usize| {
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                   "Principal": {"AWS": format!("arn:aws:iam::{ACCT}:role/{}", "r".repeat(pad))},
                   "Action": "sts:AssumeRole"}]})
        };
        let doc = make(len - doc_chars(&make(0)));
        assert_eq!(doc_chars(&doc), len);
        doc
    }

    // ---------------------------------------------------------------- valid requests
}
