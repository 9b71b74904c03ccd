//! Validation of a proposed policy request (ConsoleMe v2 shape) before anything is stored.
//!
//! Pure: the request body is checked for shape, IAM policy grammar, ARNs and names, the AWS
//! quotas as they would stand after the request, and against the current synced state of each
//! principal (detaching something absent, creating a tag that exists). The only outside input
//! is `lookup`, which returns the synced principal for an ARN.
//!
//! Every problem is collected (nothing stops at the first), each naming the field it is about
//! (`changes[0].policy.policy_document.Statement[1].Effect`) and how to fix it. Risky but legal
//! grants come back as [`Warning`]s for the reviewer.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::resources::model::{Principal, ResourceKind, action_matches};

/// Longest justification accepted, in characters.
pub const MAX_JUSTIFICATION_CHARS: usize = 2000;
/// Most changes in one request.
pub const MAX_CHANGES: usize = 25;
/// AWS: a role's inline policies together, characters without whitespace.
pub const ROLE_INLINE_POLICY_CHARS: usize = 10_240;
/// AWS: a user's inline policies together, characters without whitespace.
pub const USER_INLINE_POLICY_CHARS: usize = 2_048;
/// AWS: a role trust policy, characters without whitespace.
pub const TRUST_POLICY_CHARS: usize = 2_048;
/// AWS: tag key length.
pub const TAG_KEY_CHARS: usize = 128;
/// AWS: tag value length.
pub const TAG_VALUE_CHARS: usize = 256;
const ROLE_NAME_CHARS: usize = 64;
const POLICY_NAME_CHARS: usize = 128;
const PATH_CHARS: usize = 512;
const DESCRIPTION_CHARS: usize = 1000;

/// Account quotas that differ per installation (AWS lets them be raised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Managed policies attached to one role or user.
    pub max_managed_policies: usize,
    /// Tags on one role or user.
    pub max_tags: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_managed_policies: 10,
            max_tags: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    InlinePolicy,
    ManagedPolicy,
    PermissionsBoundary,
    AssumeRolePolicy,
    ResourceTag,
    CreateRole,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::InlinePolicy => "inline_policy",
            ChangeType::ManagedPolicy => "managed_policy",
            ChangeType::PermissionsBoundary => "permissions_boundary",
            ChangeType::AssumeRolePolicy => "assume_role_policy",
            ChangeType::ResourceTag => "resource_tag",
            ChangeType::CreateRole => "create_role",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inline_policy" => ChangeType::InlinePolicy,
            "managed_policy" => ChangeType::ManagedPolicy,
            "permissions_boundary" => ChangeType::PermissionsBoundary,
            "assume_role_policy" => ChangeType::AssumeRolePolicy,
            "resource_tag" => ChangeType::ResourceTag,
            "create_role" => ChangeType::CreateRole,
            _ => return None,
        })
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

/// `principal` of a change: the role or user it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalRef {
    #[serde(default = "aws_resource")]
    pub principal_type: String,
    pub principal_arn: String,
}

fn aws_resource() -> String {
    "AwsResource".into()
}

/// `policy` of a change: `{"policy_document": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyBody {
    pub policy_document: Value,
}

/// One entry of `create_role.inline_policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInlinePolicy {
    pub policy_name: String,
    pub policy_document: Value,
}

/// One ConsoleMe v2 change, as validated. Fields a change type does not use are `None`.
/// After [`validate_request`], `action` is filled (default `attach`) for inline, managed and
/// boundary changes, and `path` (default `/`) for `create_role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub change_type: ChangeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AttachAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyBody>,
    /// Managed policy or permissions boundary ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_action: Option<TagAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_policies: Option<Vec<NewInlinePolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_from: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_false",
        skip_serializing_if = "is_false"
    )]
    pub copy_trust: bool,
    #[serde(
        default,
        deserialize_with = "null_as_false",
        skip_serializing_if = "is_false"
    )]
    pub copy_inline: bool,
    #[serde(
        default,
        deserialize_with = "null_as_false",
        skip_serializing_if = "is_false"
    )]
    pub copy_managed: bool,
    #[serde(
        default,
        deserialize_with = "null_as_false",
        skip_serializing_if = "is_false"
    )]
    pub copy_tags: bool,
}

fn null_as_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Change {
    /// The role or user the change applies to; for `create_role`, the ARN of the new role.
    pub fn target_arn(&self) -> Option<String> {
        if self.change_type == ChangeType::CreateRole {
            let account = self.account_id.as_deref()?;
            let name = self.role_name.as_deref()?;
            let path = self.path.as_deref().unwrap_or("/");
            return Some(format!("arn:aws:iam::{account}:role{path}{name}"));
        }
        self.principal.as_ref().map(|p| p.principal_arn.clone())
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

#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub changes: Vec<Change>,
    pub warnings: Vec<Warning>,
}

/// Which grammar a policy document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Inline or managed permissions policy: Action + Resource, no Principal.
    Identity,
    /// Role trust (assume-role) policy: Action + Principal, no Resource.
    Trust,
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn at(field: &str, i: usize) -> String {
    format!("{field}[{i}]")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Characters of the compact JSON serialization: how AWS counts policy size.
fn doc_chars(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.chars().count())
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// IAM role, user and policy names: `[\w+=,.@-]{1,max}`.
fn name_problem(name: &str, what: &str, max: usize) -> Option<String> {
    let len = name.chars().count();
    if len == 0 {
        return Some(format!("{what} must not be empty"));
    }
    if len > max {
        return Some(format!(
            "{what} `{name}` is {len} characters; AWS allows at most {max}"
        ));
    }
    if let Some(c) = name.chars().find(|&c| !is_name_char(c)) {
        return Some(format!(
            "{what} `{name}` contains `{c}`; use only letters, digits and _+=,.@-"
        ));
    }
    None
}

/// IAM paths: `/` or `/x/y/`, printable ASCII, at most 512 characters.
fn path_problem(path: &str) -> Option<String> {
    let fix = "a path is `/` or `/segment/segment/` (starts and ends with `/`, no empty segments, \
               printable ASCII without spaces)";
    if path.chars().count() > PATH_CHARS {
        return Some(format!(
            "path is longer than {PATH_CHARS} characters; {fix}"
        ));
    }
    if path == "/" {
        return None;
    }
    let ok = path.len() > 2
        && path.starts_with('/')
        && path.ends_with('/')
        && path[1..path.len() - 1]
            .split('/')
            .all(|seg| !seg.is_empty() && seg.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    (!ok).then(|| format!("path `{path}` is not valid: {fix}"))
}

/// `arn:aws:iam::<12 digits>:role/<path/>name` (or `:user/`).
fn parse_principal_arn(arn: &str) -> Result<ResourceKind, String> {
    let shape = "principal_arn must look like arn:aws:iam::123456789012:role/<path/>name \
                 (or :user/<path/>name)";
    let bad = |why: &str| format!("{why}; {shape}");
    let rest = arn
        .strip_prefix("arn:aws:iam::")
        .ok_or_else(|| bad(&format!("`{arn}` is not an IAM ARN")))?;
    let (account, resource) = rest
        .split_once(':')
        .ok_or_else(|| bad(&format!("`{arn}` has no resource part")))?;
    if !is_account_id(account) {
        return Err(bad(&format!("account `{account}` is not 12 digits")));
    }
    let (kind, path_and_name) = if let Some(r) = resource.strip_prefix("role/") {
        (ResourceKind::Role, r)
    } else if let Some(u) = resource.strip_prefix("user/") {
        (ResourceKind::User, u)
    } else {
        return Err(bad(&format!("`{resource}` is neither a role nor a user")));
    };
    let (path, name) = split_path_name(path_and_name);
    if let Some(p) = path_problem(&path) {
        return Err(bad(&p));
    }
    if let Some(p) = name_problem(name, "name", ROLE_NAME_CHARS) {
        return Err(bad(&p));
    }
    Ok(kind)
}

/// `a/b/name` → (`/a/b/`, `name`); `name` → (`/`, `name`).
fn split_path_name(s: &str) -> (String, &str) {
    match s.rfind('/') {
        Some(i) => (format!("/{}", &s[..=i]), &s[i + 1..]),
        None => ("/".to_string(), s),
    }
}

/// `arn:aws:iam::(aws|<12 digits>):policy/<path/>name` → the owner (`aws` or the account).
fn parse_policy_arn(arn: &str) -> Result<String, String> {
    let shape = "a managed policy ARN looks like arn:aws:iam::aws:policy/ReadOnlyAccess or \
                 arn:aws:iam::123456789012:policy/<path/>name";
    let bad = |why: &str| format!("{why}; {shape}");
    let rest = arn
        .strip_prefix("arn:aws:iam::")
        .ok_or_else(|| bad(&format!("`{arn}` is not an IAM ARN")))?;
    let (owner, resource) = rest
        .split_once(':')
        .ok_or_else(|| bad(&format!("`{arn}` has no resource part")))?;
    if owner != "aws" && !is_account_id(owner) {
        return Err(bad(&format!(
            "owner `{owner}` is neither `aws` nor a 12-digit account"
        )));
    }
    let path_and_name = resource
        .strip_prefix("policy/")
        .ok_or_else(|| bad(&format!("`{resource}` is not a policy")))?;
    let (path, name) = split_path_name(path_and_name);
    if let Some(p) = path_problem(&path) {
        return Err(bad(&p));
    }
    if let Some(p) = name_problem(name, "policy name", POLICY_NAME_CHARS) {
        return Err(bad(&p));
    }
    Ok(owner.to_string())
}

fn tag_text_problem(s: &str, what: &str) -> Option<String> {
    s.chars()
        .find(|&c| !(c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)))
        .map(|c| format!("{what} contains `{c}`; tags allow letters, digits, spaces and _.:/=+-@"))
}

// ---------------------------------------------------------------------------------------------
// Policy grammar

const TOP_KEYS: &[&str] = &["Version", "Id", "Statement"];
const IDENTITY_STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
const TRUST_STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Principal",
    "NotPrincipal",
    "Condition",
];
const PRINCIPAL_KEYS: &[&str] = &["AWS", "Service", "Federated", "CanonicalUser"];
const CONDITION_OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
];

fn unknown_key(what: &str, key: &str, allowed: &[&str]) -> String {
    let hint = allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(key))
        .map(|a| format!(" (keys are case-sensitive: did you mean `{a}`?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} key `{key}`{hint}; allowed keys are {}",
        allowed.join(", ")
    )
}

/// The statements of a document with their field paths (list or single object).
fn statements<'v>(doc: &'v Value, field: &str) -> Vec<(String, &'v Value)> {
    let sf = join(field, "Statement");
    match doc.get("Statement") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(j, st)| (at(&sf, j), st))
            .collect(),
        Some(st @ Value::Object(_)) => vec![(sf, st)],
        _ => vec![],
    }
}

/// Grammar of an IAM policy document (and, for trust policies, the 2,048-character quota).
/// `field` is the path of `doc` itself, prefixed to every problem's field.
pub fn validate_policy_document(doc: &Value, kind: DocKind, field: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(obj) = doc.as_object() else {
        out.push(Problem::new(
            field,
            format!(
                "a policy document must be a JSON object like {{\"Version\": \"2012-10-17\", \
                 \"Statement\": [...]}}, not {}",
                type_name(doc)
            ),
        ));
        return out;
    };
    for key in obj.keys() {
        if !TOP_KEYS.contains(&key.as_str()) {
            out.push(Problem::new(
                join(field, key),
                unknown_key("policy document", key, TOP_KEYS),
            ));
        }
    }
    match obj.get("Version") {
        None => {}
        Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
        Some(_) => out.push(Problem::new(
            join(field, "Version"),
            "Version must be \"2012-10-17\" (or the legacy \"2008-10-17\"); it is a fixed \
             grammar version, not a date of your choosing",
        )),
    }
    if let Some(id) = obj.get("Id")
        && !id.is_string()
    {
        out.push(Problem::new(join(field, "Id"), "Id must be a string"));
    }
    let sf = join(field, "Statement");
    let mut sids: Vec<String> = Vec::new();
    match obj.get("Statement") {
        None => out.push(Problem::new(
            &sf,
            "Statement is required: an object or a list of statement objects",
        )),
        Some(Value::Object(st)) => check_statement(st, kind, &sf, &mut sids, &mut out),
        Some(Value::Array(list)) if list.is_empty() => out.push(Problem::new(
            &sf,
            "Statement must not be an empty list; add at least one statement",
        )),
        Some(Value::Array(list)) => {
            for (j, st) in list.iter().enumerate() {
                match st {
                    Value::Object(st) => {
                        check_statement(st, kind, &at(&sf, j), &mut sids, &mut out)
                    }
                    other => out.push(Problem::new(
                        at(&sf, j),
                        format!("each statement must be an object, not {}", type_name(other)),
                    )),
                }
            }
        }
        Some(other) => out.push(Problem::new(
            &sf,
            format!(
                "Statement must be an object or a list of objects, not {}",
                type_name(other)
            ),
        )),
    }
    if kind == DocKind::Trust {
        let n = doc_chars(doc);
        if n > TRUST_POLICY_CHARS {
            out.push(Problem::new(
                field,
                format!(
                    "the trust policy is {n} characters without whitespace; AWS allows \
                     {TRUST_POLICY_CHARS}. Merge statements or list fewer principals"
                ),
            ));
        }
    }
    out
}

fn check_statement(
    st: &Map<String, Value>,
    kind: DocKind,
    field: &str,
    sids: &mut Vec<String>,
    out: &mut Vec<Problem>,
) {
    let allowed = match kind {
        DocKind::Identity => IDENTITY_STATEMENT_KEYS,
        DocKind::Trust => TRUST_STATEMENT_KEYS,
    };
    for key in st.keys() {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        let message = match (kind, key.as_str()) {
            (DocKind::Identity, "Principal" | "NotPrincipal") => format!(
                "{key} is not allowed in an identity policy (it applies to the role or user it \
                 is attached to); remove it"
            ),
            (DocKind::Trust, "Resource" | "NotResource") => format!(
                "{key} is not allowed in a trust policy (the resource is the role itself); \
                 remove it"
            ),
            _ => unknown_key("statement", key, allowed),
        };
        out.push(Problem::new(join(field, key), message));
    }

    if let Some(sid) = st.get("Sid") {
        let f = join(field, "Sid");
        match sid {
            Value::String(s) if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                out.push(Problem::new(
                    f,
                    format!("Sid `{s}` must be non-empty and use only letters A-Z, a-z and digits"),
                ));
            }
            Value::String(s) if sids.contains(s) => out.push(Problem::new(
                f,
                format!("Sid `{s}` is used by another statement; Sids must be unique in a policy"),
            )),
            Value::String(s) => sids.push(s.clone()),
            other => out.push(Problem::new(
                f,
                format!("Sid must be a string, not {}", type_name(other)),
            )),
        }
    }

    match st.get("Effect") {
        Some(Value::String(e)) if e == "Allow" || e == "Deny" => {}
        None => out.push(Problem::new(
            join(field, "Effect"),
            "Effect is required: \"Allow\" or \"Deny\"",
        )),
        Some(_) => out.push(Problem::new(
            join(field, "Effect"),
            "Effect must be exactly \"Allow\" or \"Deny\" (case-sensitive)",
        )),
    }

    if let Some((key, v)) = exactly_one(st, "Action", "NotAction", field, out) {
        check_strings(v, &join(field, key), "action", action_problem, out);
    }
    match kind {
        DocKind::Identity => {
            if let Some((key, v)) = exactly_one(st, "Resource", "NotResource", field, out) {
                check_strings(v, &join(field, key), "resource", resource_problem, out);
            }
        }
        DocKind::Trust => {
            if let Some((key, v)) = exactly_one(st, "Principal", "NotPrincipal", field, out) {
                check_principal(v, &join(field, key), out);
            }
        }
    }
    if let Some(c) = st.get("Condition") {
        check_condition(c, &join(field, "Condition"), out);
    }
}

/// Exactly one of `a` / `b` present: returns which, with its value.
fn exactly_one<'v>(
    st: &'v Map<String, Value>,
    a: &'static str,
    b: &'static str,
    field: &str,
    out: &mut Vec<Problem>,
) -> Option<(&'static str, &'v Value)> {
    match (st.get(a), st.get(b)) {
        (Some(v), None) => Some((a, v)),
        (None, Some(v)) => Some((b, v)),
        (Some(_), Some(_)) => {
            out.push(Problem::new(
                join(field, b),
                format!("a statement has exactly one of {a} or {b}, not both; remove one"),
            ));
            None
        }
        (None, None) => {
            out.push(Problem::new(
                join(field, a),
                format!("{a} (or {b}) is required in every statement"),
            ));
            None
        }
    }
}

/// A string or a non-empty list of strings, each checked by `check`.
fn check_strings(
    v: &Value,
    field: &str,
    what: &str,
    check: fn(&str) -> Option<String>,
    out: &mut Vec<Problem>,
) {
    match v {
        Value::String(s) => {
            if let Some(m) = check(s) {
                out.push(Problem::new(field, m));
            }
        }
        Value::Array(list) if list.is_empty() => out.push(Problem::new(
            field,
            format!("the {what} list must not be empty"),
        )),
        Value::Array(list) => {
            for (k, item) in list.iter().enumerate() {
                match item {
                    Value::String(s) => {
                        if let Some(m) = check(s) {
                            out.push(Problem::new(at(field, k), m));
                        }
                    }
                    other => out.push(Problem::new(
                        at(field, k),
                        format!("each {what} must be a string, not {}", type_name(other)),
                    )),
                }
            }
        }
        other => out.push(Problem::new(
            field,
            format!(
                "{what} must be a string or a list of strings, not {}",
                type_name(other)
            ),
        )),
    }
}

/// `*` or `service:Action` (service `[a-z0-9-]+`, action `[A-Za-z0-9*?]+`).
fn action_problem(a: &str) -> Option<String> {
    if a == "*" || a == "*:*" {
        return None;
    }
    let ok = a.split_once(':').is_some_and(|(svc, act)| {
        !svc.is_empty()
            && svc
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !act.is_empty()
            && act
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
    });
    (!ok).then(|| {
        format!(
            "action `{a}` must be \"*\" or service:Action with a lower-case service prefix \
             (e.g. s3:GetObject, ec2:Describe*)"
        )
    })
}

/// `*` or `arn:partition:service:region:account:resource` (wildcards allowed).
fn resource_problem(r: &str) -> Option<String> {
    if r == "*" {
        return None;
    }
    let mut parts = r.splitn(6, ':');
    let ok = parts.next() == Some("arn")
        && parts.next().is_some_and(|p| !p.is_empty())
        && parts.next().is_some_and(|s| !s.is_empty())
        && parts.count() == 3;
    (!ok).then(|| {
        format!(
            "resource `{r}` must be \"*\" or an ARN arn:partition:service:region:account:resource \
             (e.g. arn:aws:s3:::my-bucket/*)"
        )
    })
}

fn check_principal(v: &Value, field: &str, out: &mut Vec<Problem>) {
    let shape = "Principal must be \"*\" or an object such as {\"AWS\": \
                 \"arn:aws:iam::123456789012:root\"} or {\"Service\": \"ec2.amazonaws.com\"}";
    match v {
        Value::String(s) if s == "*" => {}
        Value::Object(m) if m.is_empty() => out.push(Problem::new(
            field,
            format!("{shape}; this object names no principal"),
        )),
        Value::Object(m) => {
            for (k, val) in m {
                let f = join(field, k);
                if PRINCIPAL_KEYS.contains(&k.as_str()) {
                    let check: fn(&str) -> Option<String> = if k == "AWS" {
                        aws_principal_problem
                    } else {
                        nonempty_problem
                    };
                    check_strings(val, &f, "principal", check, out);
                } else {
                    out.push(Problem::new(
                        f,
                        format!(
                            "unknown principal type `{k}`; use {}",
                            PRINCIPAL_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        _ => out.push(Problem::new(field, shape)),
    }
}

fn nonempty_problem(s: &str) -> Option<String> {
    s.is_empty()
        .then(|| "a principal must not be empty".to_string())
}

fn aws_principal_problem(s: &str) -> Option<String> {
    (!(s == "*" || is_account_id(s) || s.starts_with("arn:"))).then(|| {
        format!(
            "AWS principal `{s}` must be \"*\", a 12-digit account id or an ARN \
             (arn:aws:iam::123456789012:root, ...:role/name)"
        )
    })
}

fn condition_operator_known(op: &str) -> bool {
    let base = op
        .strip_prefix("ForAllValues:")
        .or_else(|| op.strip_prefix("ForAnyValue:"))
        .unwrap_or(op);
    if base == "Null" {
        return true;
    }
    let base = base.strip_suffix("IfExists").unwrap_or(base);
    base != "Null" && CONDITION_OPERATORS.contains(&base)
}

fn check_condition(v: &Value, field: &str, out: &mut Vec<Problem>) {
    let Some(ops) = v.as_object() else {
        out.push(Problem::new(
            field,
            format!(
                "Condition must be an object of operator → {{key: value}}, e.g. \
                 {{\"StringEquals\": {{\"aws:PrincipalOrgID\": \"o-abc\"}}}}, not {}",
                type_name(v)
            ),
        ));
        return;
    };
    for (op, body) in ops {
        let f = join(field, op);
        if !condition_operator_known(op) {
            out.push(Problem::new(
                &f,
                format!(
                    "unknown condition operator `{op}`; use one of {} (optionally prefixed \
                     ForAllValues: or ForAnyValue:, or suffixed IfExists, except Null)",
                    CONDITION_OPERATORS.join(", ")
                ),
            ));
        }
        match body {
            Value::Object(keys) if keys.is_empty() => out.push(Problem::new(
                &f,
                "a condition operator needs at least one condition key",
            )),
            Value::Object(keys) => {
                for (k, val) in keys {
                    let kf = join(&f, k);
                    if k.is_empty() {
                        out.push(Problem::new(&kf, "a condition key must not be empty"));
                    }
                    let scalar = |x: &Value| {
                        matches!(x, Value::String(_) | Value::Number(_) | Value::Bool(_))
                    };
                    let ok = match val {
                        Value::Array(list) => !list.is_empty() && list.iter().all(scalar),
                        other => scalar(other),
                    };
                    if !ok {
                        out.push(Problem::new(
                            kf,
                            "a condition value must be a string, number or boolean, or a \
                             non-empty list of them",
                        ));
                    }
                }
            }
            other => out.push(Problem::new(
                f,
                format!(
                    "a condition operator maps condition keys to values ({{\"aws:SourceAccount\": \
                     \"123456789012\"}}), not {}",
                    type_name(other)
                ),
            )),
        }
    }
}

fn strings_of(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// Risky but legal grants in a document: one message per risk per statement. `field` is the
/// document's path, used to say which statement.
pub fn policy_warnings(doc: &Value, kind: DocKind, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (sf, st) in statements(doc, field) {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        match kind {
            DocKind::Identity => {
                if !strings_of(st.get("Resource")).contains(&"*") {
                    continue;
                }
                let actions = strings_of(st.get("Action"));
                if actions.iter().any(|a| *a == "*" || *a == "*:*") {
                    out.push(format!(
                        "{sf}: allows every action on every resource (full administrator); \
                         grant only the actions and resources the role needs"
                    ));
                    continue;
                }
                if actions.iter().any(|a| action_matches(a, "iam:PassRole")) {
                    out.push(format!(
                        "{sf}: allows iam:PassRole on Resource \"*\": the principal can hand any \
                         role, admin roles included, to a service it controls (privilege \
                         escalation); list the role ARNs it must pass"
                    ));
                }
                if actions.iter().any(|a| action_matches(a, "sts:AssumeRole")) {
                    out.push(format!(
                        "{sf}: allows sts:AssumeRole on Resource \"*\": the principal can assume \
                         every role whose trust policy admits its account; list the role ARNs"
                    ));
                }
                for a in actions.iter().filter(|a| a.ends_with(":*")) {
                    out.push(format!(
                        "{sf}: `{a}` allows every action of the service on every resource, \
                         including destructive and permission-changing ones; list the actions \
                         and resources needed"
                    ));
                }
            }
            DocKind::Trust => {
                let open = match st.get("Principal") {
                    Some(Value::String(s)) => s == "*",
                    Some(p @ Value::Object(_)) => strings_of(p.get("AWS")).contains(&"*"),
                    _ => false,
                };
                if open && st.get("Condition").is_none() {
                    out.push(format!(
                        "{sf}: Principal \"*\" without a Condition lets anyone in any AWS account \
                         assume this role; name the accounts or roles, or add a Condition such as \
                         aws:PrincipalOrgID"
                    ));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The request

/// A principal as it would stand after the changes seen so far.
struct Target {
    kind: ResourceKind,
    account: String,
    label: String,
    trust_chars: Option<usize>,
    /// Inline policy name → size in characters.
    inline: BTreeMap<String, usize>,
    managed: Vec<String>,
    boundary: Option<String>,
    tags: BTreeMap<String, String>,
    created: bool,
    before_inline: usize,
    before_managed: usize,
    before_tags: usize,
    /// Field of the last change touching each quota; quotas are checked only when touched.
    inline_touch: Option<String>,
    managed_touch: Option<String>,
    tags_touch: Option<String>,
}

impl Target {
    fn from_principal(p: &Principal) -> Self {
        let inline: BTreeMap<String, usize> = p
            .inline_policies
            .iter()
            .map(|ip| (ip.name.clone(), doc_chars(&ip.document)))
            .collect();
        let tags: BTreeMap<String, String> = p
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Target {
            kind: p.kind,
            account: p.account_id.clone(),
            label: format!("{} `{}`", p.kind.as_str(), p.name),
            trust_chars: p.trust_policy.as_ref().map(doc_chars),
            before_inline: inline.values().sum(),
            before_managed: p.managed_policies.len(),
            before_tags: tags.len(),
            inline,
            managed: p.managed_policies.iter().map(|m| m.arn.clone()).collect(),
            boundary: p.permissions_boundary.clone(),
            tags,
            created: false,
            inline_touch: None,
            managed_touch: None,
            tags_touch: None,
        }
    }
}

struct Checker<'a> {
    lookup: &'a dyn Fn(&str) -> Option<Principal>,
    limits: &'a Limits,
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
    targets: BTreeMap<String, Target>,
}

/// Validate a whole request body `{"justification", "admin_auto_approve", "changes":
/// {"changes": [...]}}` against the synced principals `lookup` knows. Ok carries the typed
/// changes (defaults filled) and the warnings for the reviewer; Err every problem found.
pub fn validate_request(
    body: &Value,
    lookup: &dyn Fn(&str) -> Option<Principal>,
    limits: &Limits,
) -> Result<Validated, Vec<Problem>> {
    let mut c = Checker {
        lookup,
        limits,
        problems: Vec::new(),
        warnings: Vec::new(),
        targets: BTreeMap::new(),
    };
    let changes = c.body(body);
    c.quotas();
    if c.problems.is_empty() {
        Ok(Validated {
            changes,
            warnings: c.warnings,
        })
    } else {
        Err(c.problems)
    }
}

impl Checker<'_> {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(field, message));
    }

    fn body(&mut self, body: &Value) -> Vec<Change> {
        let Some(obj) = body.as_object() else {
            self.problem(
                "body",
                format!(
                    "the request body must be a JSON object {{\"justification\": ..., \
                     \"changes\": {{\"changes\": [...]}}}}, not {}",
                    type_name(body)
                ),
            );
            return vec![];
        };
        match obj.get("justification") {
            None | Some(Value::Null) => self.problem(
                "justification",
                "justification is required: say why the change is needed",
            ),
            Some(Value::String(j)) if j.trim().is_empty() => self.problem(
                "justification",
                "justification must not be blank: say why the change is needed",
            ),
            Some(Value::String(j)) if j.chars().count() > MAX_JUSTIFICATION_CHARS => self.problem(
                "justification",
                format!(
                    "justification is {} characters; shorten it to at most \
                     {MAX_JUSTIFICATION_CHARS} (link to a ticket for details)",
                    j.chars().count()
                ),
            ),
            Some(Value::String(_)) => {}
            Some(other) => self.problem(
                "justification",
                format!("justification must be a string, not {}", type_name(other)),
            ),
        }
        if let Some(a) = obj.get("admin_auto_approve")
            && !a.is_boolean()
            && !a.is_null()
        {
            self.problem(
                "admin_auto_approve",
                "admin_auto_approve must be true or false",
            );
        }
        let list = match obj.get("changes") {
            Some(Value::Object(inner)) => match inner.get("changes") {
                Some(Value::Array(list)) => list,
                None | Some(Value::Null) => {
                    self.problem(
                        "changes.changes",
                        "changes.changes is required: the list of changes",
                    );
                    return vec![];
                }
                Some(other) => {
                    self.problem(
                        "changes.changes",
                        format!("changes.changes must be a list, not {}", type_name(other)),
                    );
                    return vec![];
                }
            },
            None | Some(Value::Null) => {
                self.problem(
                    "changes",
                    "changes is required: {\"changes\": [change, ...]}",
                );
                return vec![];
            }
            Some(other) => {
                self.problem(
                    "changes",
                    format!(
                        "changes must be an object {{\"changes\": [change, ...]}}, not {}",
                        type_name(other)
                    ),
                );
                return vec![];
            }
        };
        if list.is_empty() {
            self.problem(
                "changes.changes",
                "the request has no changes; add at least one",
            );
        }
        if list.len() > MAX_CHANGES {
            self.problem(
                "changes.changes",
                format!(
                    "the request has {} changes; at most {MAX_CHANGES} are allowed: split it into \
                     several requests",
                    list.len()
                ),
            );
        }
        let mut out = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let field = format!("changes[{i}]");
            let before = self.problems.len();
            self.change(i, raw, &field);
            if self.problems.len() != before {
                continue;
            }
            match Change::deserialize(raw) {
                Ok(mut change) => {
                    normalize(&mut change);
                    out.push(change);
                }
                Err(e) => self.problem(field, format!("the change does not parse: {e}")),
            }
        }
        out
    }

    /// Optional string field: `None` when absent or null (a problem if not a string).
    fn opt_str<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Option<&'v str> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.problem(
                    join(field, key),
                    format!("{key} must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Required string field: a problem (with `hint`) when absent.
    fn req_str<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
        hint: &str,
    ) -> Option<&'v str> {
        if matches!(obj.get(key), None | Some(Value::Null)) {
            self.problem(join(field, key), format!("{key} is required: {hint}"));
            return None;
        }
        self.opt_str(obj, key, field)
    }

    fn opt_bool(&mut self, obj: &Map<String, Value>, key: &str, field: &str) -> bool {
        match obj.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problem(
                    join(field, key),
                    format!("{key} must be true or false, not {}", type_name(other)),
                );
                false
            }
        }
    }

    /// `action`: `attach` (default) or `detach`.
    fn attach_action(&mut self, obj: &Map<String, Value>, field: &str) -> Option<AttachAction> {
        match self.opt_str(obj, "action", field) {
            None if matches!(obj.get("action"), None | Some(Value::Null)) => {
                Some(AttachAction::Attach)
            }
            None => None,
            Some("attach") => Some(AttachAction::Attach),
            Some("detach") => Some(AttachAction::Detach),
            Some(other) => {
                self.problem(
                    join(field, "action"),
                    format!("action `{other}` is not \"attach\" or \"detach\""),
                );
                None
            }
        }
    }

    /// `policy.policy_document`, required.
    fn policy_document<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        field: &str,
        what: &str,
    ) -> Option<&'v Value> {
        let pf = join(field, "policy");
        match obj.get("policy") {
            Some(Value::Object(p)) => match p.get("policy_document") {
                None | Some(Value::Null) => {
                    self.problem(
                        join(&pf, "policy_document"),
                        format!("policy.policy_document is required: the {what}"),
                    );
                    None
                }
                Some(doc) => Some(doc),
            },
            None | Some(Value::Null) => {
                self.problem(
                    join(&pf, "policy_document"),
                    format!("policy.policy_document is required: the {what}"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    pf,
                    format!(
                        "policy must be an object {{\"policy_document\": {{...}}}}, not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// Grammar problems and warnings of a document at `field` of change `i`.
    fn document(&mut self, i: usize, doc: &Value, kind: DocKind, field: &str) {
        self.problems
            .extend(validate_policy_document(doc, kind, field));
        self.warnings.extend(
            policy_warnings(doc, kind, field)
                .into_iter()
                .map(|message| Warning { change: i, message }),
        );
    }

    /// `principal.principal_arn`, checked for shape.
    fn principal_arn<'v>(&mut self, obj: &'v Map<String, Value>, field: &str) -> Option<&'v str> {
        let pf = join(field, "principal");
        let example = "{\"principal_type\": \"AwsResource\", \"principal_arn\": \
                       \"arn:aws:iam::123456789012:role/name\"}";
        let p = match obj.get("principal") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => {
                self.problem(pf, format!("principal is required: {example}"));
                return None;
            }
            Some(other) => {
                self.problem(
                    pf,
                    format!(
                        "principal must be an object {example}, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        match p.get("principal_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "AwsResource" => {}
            Some(_) => self.problem(
                join(&pf, "principal_type"),
                "principal_type must be \"AwsResource\"",
            ),
        }
        let arn = self.req_str(p, "principal_arn", &pf, "the ARN of the role or user")?;
        if let Err(m) = parse_principal_arn(arn) {
            self.problem(join(&pf, "principal_arn"), m);
            return None;
        }
        Some(arn)
    }

    /// Loads the principal into the simulation; a problem if it is not synced.
    fn known(&mut self, arn: Option<&str>, field: &str) -> Option<String> {
        let arn = arn?;
        if !self.targets.contains_key(arn) {
            match (self.lookup)(arn) {
                Some(p) if p.kind != ResourceKind::ManagedPolicy => {
                    self.targets
                        .insert(arn.to_string(), Target::from_principal(&p));
                }
                _ => {
                    self.problem(
                        join(field, "principal.principal_arn"),
                        format!(
                            "`{arn}` is not a synced role or user in a configured account; check \
                             the ARN, or wait for the next sync if it was just created"
                        ),
                    );
                    return None;
                }
            }
        }
        Some(arn.to_string())
    }

    fn change(&mut self, i: usize, raw: &Value, field: &str) {
        let Some(obj) = raw.as_object() else {
            self.problem(
                field,
                format!(
                    "each change must be an object with change_type and principal, not {}",
                    type_name(raw)
                ),
            );
            return;
        };
        let tf = join(field, "change_type");
        let types = "inline_policy, managed_policy, permissions_boundary, assume_role_policy, \
                     resource_tag, create_role";
        let ct = match obj.get("change_type") {
            Some(Value::String(s)) => match ChangeType::parse(s) {
                Some(ct) => ct,
                None => {
                    self.problem(tf, format!("unknown change_type `{s}`; use one of {types}"));
                    return;
                }
            },
            None | Some(Value::Null) => {
                self.problem(tf, format!("change_type is required: one of {types}"));
                return;
            }
            Some(other) => {
                self.problem(
                    tf,
                    format!(
                        "change_type must be a string ({types}), not {}",
                        type_name(other)
                    ),
                );
                return;
            }
        };
        match ct {
            ChangeType::InlinePolicy => self.inline_policy(i, obj, field),
            ChangeType::ManagedPolicy => self.managed_policy(i, obj, field),
            ChangeType::PermissionsBoundary => self.boundary(obj, field),
            ChangeType::AssumeRolePolicy => self.assume_role_policy(i, obj, field),
            ChangeType::ResourceTag => self.resource_tag(obj, field),
            ChangeType::CreateRole => self.create_role(i, obj, field),
        }
    }

    fn policy_name<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Option<&'v str> {
        let name = self.req_str(obj, key, field, "the inline policy's name")?;
        if let Some(m) = name_problem(name, "policy name", POLICY_NAME_CHARS) {
            self.problem(join(field, key), m);
            return None;
        }
        Some(name)
    }

    fn inline_policy(&mut self, i: usize, obj: &Map<String, Value>, field: &str) {
        let arn = self.principal_arn(obj, field);
        let name = self.policy_name(obj, "policy_name", field);
        let action = self.attach_action(obj, field);
        let doc_field = join(field, "policy.policy_document");
        let mut size = None;
        if action == Some(AttachAction::Attach)
            && let Some(doc) = self.policy_document(obj, field, "inline policy")
        {
            self.document(i, doc, DocKind::Identity, &doc_field);
            size = Some(doc_chars(doc));
        }
        let Some(arn) = self.known(arn, field) else {
            return;
        };
        let (Some(name), Some(action)) = (name, action) else {
            return;
        };
        let Some(t) = self.targets.get_mut(&arn) else {
            return;
        };
        match action {
            AttachAction::Attach => {
                if let Some(size) = size {
                    t.inline.insert(name.to_string(), size);
                    t.inline_touch = Some(doc_field);
                }
            }
            AttachAction::Detach => {
                if t.inline.remove(name).is_some() {
                    t.inline_touch = Some(join(field, "policy_name"));
                } else {
                    let message = format!(
                        "{} has no inline policy named `{name}` (names are case-sensitive); \
                         nothing to detach",
                        t.label
                    );
                    self.problem(join(field, "policy_name"), message);
                }
            }
        }
    }

    /// `arn` of a managed policy or boundary: shape, and the same account as the principal.
    fn policy_arn<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        field: &str,
        required: bool,
    ) -> Option<(&'v str, String)> {
        let hint = "the managed policy ARN, e.g. arn:aws:iam::aws:policy/ReadOnlyAccess";
        let arn = if required {
            self.req_str(obj, "arn", field, hint)?
        } else {
            self.opt_str(obj, "arn", field)?
        };
        match parse_policy_arn(arn) {
            Ok(owner) => Some((arn, owner)),
            Err(m) => {
                self.problem(join(field, "arn"), m);
                None
            }
        }
    }

    fn check_owner(&mut self, target: &str, owner: &str, field: &str) {
        let Some(t) = self.targets.get(target) else {
            return;
        };
        if owner != "aws" && owner != t.account {
            let message = format!(
                "the policy belongs to account {owner} but {} is in account {}; attach a policy \
                 from the same account or an AWS managed policy",
                t.label, t.account
            );
            self.problem(join(field, "arn"), message);
        }
    }

    fn managed_policy(&mut self, i: usize, obj: &Map<String, Value>, field: &str) {
        let arn = self.principal_arn(obj, field);
        let action = self.attach_action(obj, field);
        let policy = self.policy_arn(obj, field, true);
        let Some(target) = self.known(arn, field) else {
            return;
        };
        let (Some(action), Some((policy, owner))) = (action, policy) else {
            return;
        };
        self.check_owner(&target, &owner, field);
        let Some(t) = self.targets.get_mut(&target) else {
            return;
        };
        let attached = t.managed.iter().position(|m| m == policy);
        match (action, attached) {
            (AttachAction::Attach, Some(_)) => {
                let message = format!("{policy} is already attached to {}; no effect", t.label);
                self.warnings.push(Warning { change: i, message });
            }
            (AttachAction::Attach, None) => {
                t.managed.push(policy.to_string());
                t.managed_touch = Some(join(field, "arn"));
            }
            (AttachAction::Detach, Some(k)) => {
                t.managed.remove(k);
                t.managed_touch = Some(join(field, "arn"));
            }
            (AttachAction::Detach, None) => {
                let message = format!("{policy} is not attached to {}; nothing to detach", t.label);
                self.problem(join(field, "arn"), message);
            }
        }
    }

    fn boundary(&mut self, obj: &Map<String, Value>, field: &str) {
        let arn = self.principal_arn(obj, field);
        let action = self.attach_action(obj, field);
        let policy = self.policy_arn(obj, field, action != Some(AttachAction::Detach));
        let Some(target) = self.known(arn, field) else {
            return;
        };
        let Some(action) = action else {
            return;
        };
        if let Some((_, owner)) = &policy {
            self.check_owner(&target, owner, field);
        }
        let Some(t) = self.targets.get_mut(&target) else {
            return;
        };
        match action {
            AttachAction::Attach => {
                if let Some((policy, _)) = policy {
                    t.boundary = Some(policy.to_string());
                }
            }
            AttachAction::Detach => match (&t.boundary, policy) {
                (None, _) => {
                    let message = format!("{} has no permissions boundary to detach", t.label);
                    self.problem(join(field, "action"), message);
                }
                (Some(current), Some((policy, _))) if current != policy => {
                    let message = format!(
                        "the permissions boundary of {} is {current}, not {policy}",
                        t.label
                    );
                    self.problem(join(field, "arn"), message);
                }
                _ => t.boundary = None,
            },
        }
    }

    fn assume_role_policy(&mut self, i: usize, obj: &Map<String, Value>, field: &str) {
        let arn = self.principal_arn(obj, field);
        if let Some(doc) = self.policy_document(obj, field, "trust policy") {
            self.document(
                i,
                doc,
                DocKind::Trust,
                &join(field, "policy.policy_document"),
            );
        }
        let Some(target) = self.known(arn, field) else {
            return;
        };
        if let Some(t) = self.targets.get(&target)
            && t.kind != ResourceKind::Role
        {
            let message = format!(
                "{} is not a role: only roles have a trust (assume-role) policy",
                t.label
            );
            self.problem(join(field, "principal.principal_arn"), message);
        }
    }

    fn resource_tag(&mut self, obj: &Map<String, Value>, field: &str) {
        let arn = self.principal_arn(obj, field);
        let kf = join(field, "key");
        let key = self
            .req_str(obj, "key", field, "the tag key")
            .filter(|key| {
                let n = key.chars().count();
                let problem = if n == 0 || n > TAG_KEY_CHARS {
                    Some(format!(
                        "tag key is {n} characters; it must be 1 to {TAG_KEY_CHARS}"
                    ))
                } else if key.to_ascii_lowercase().starts_with("aws:") {
                    Some("tag keys starting with `aws:` are reserved for AWS".to_string())
                } else {
                    tag_text_problem(key, "tag key")
                };
                problem.map(|m| self.problem(&kf, m)).is_none()
            });
        let tag_action = match self.req_str(obj, "tag_action", field, "create, update or delete") {
            Some("create") => Some(TagAction::Create),
            Some("update") => Some(TagAction::Update),
            Some("delete") => Some(TagAction::Delete),
            Some(other) => {
                self.problem(
                    join(field, "tag_action"),
                    format!("tag_action `{other}` is not create, update or delete"),
                );
                None
            }
            None => None,
        };
        let vf = join(field, "value");
        let value = if tag_action == Some(TagAction::Delete) {
            self.opt_str(obj, "value", field) // type-checked, unused
        } else {
            self.req_str(obj, "value", field, "the tag value (may be empty)")
                .filter(|value| {
                    let n = value.chars().count();
                    let problem = if n > TAG_VALUE_CHARS {
                        Some(format!(
                            "tag value is {n} characters; at most {TAG_VALUE_CHARS} are allowed"
                        ))
                    } else {
                        tag_text_problem(value, "tag value")
                    };
                    problem.map(|m| self.problem(&vf, m)).is_none()
                })
        };
        let Some(target) = self.known(arn, field) else {
            return;
        };
        let (Some(key), Some(action)) = (key, tag_action) else {
            return;
        };
        let Some(t) = self.targets.get_mut(&target) else {
            return;
        };
        let exists = t.tags.contains_key(key);
        let message = match (action, exists) {
            (TagAction::Create, true) => format!(
                "{} already has a tag `{key}`; use tag_action \"update\" to change its value",
                t.label
            ),
            (TagAction::Update, false) => format!(
                "{} has no tag `{key}` to update; use tag_action \"create\"",
                t.label
            ),
            (TagAction::Delete, false) => {
                format!("{} has no tag `{key}`; nothing to delete", t.label)
            }
            (TagAction::Delete, true) => {
                t.tags.remove(key);
                t.tags_touch = Some(kf);
                return;
            }
            (TagAction::Create | TagAction::Update, _) => {
                if let Some(value) = value {
                    t.tags.insert(key.to_string(), value.to_string());
                    t.tags_touch = Some(kf);
                }
                return;
            }
        };
        self.problem(kf, message);
    }

    fn create_role(&mut self, i: usize, obj: &Map<String, Value>, field: &str) {
        let account = match self.req_str(
            obj,
            "account_id",
            field,
            "the 12-digit account to create the role in",
        ) {
            Some(a) if !is_account_id(a) => {
                self.problem(
                    join(field, "account_id"),
                    format!("account_id `{a}` must be 12 digits"),
                );
                None
            }
            other => other,
        };
        // An optional principal must name the new role (compared below).
        let principal = if obj.get("principal").is_some_and(|p| !p.is_null()) {
            self.principal_arn(obj, field)
        } else {
            None
        };
        let name = self
            .req_str(obj, "role_name", field, "the new role's name")
            .filter(|n| match name_problem(n, "role name", ROLE_NAME_CHARS) {
                Some(m) => {
                    self.problem(join(field, "role_name"), m);
                    false
                }
                None => true,
            });
        let path = match self.opt_str(obj, "path", field) {
            Some(p) => match path_problem(p) {
                Some(m) => {
                    self.problem(join(field, "path"), m);
                    None
                }
                None => Some(p),
            },
            None => Some("/"),
        };
        if let Some(d) = self.opt_str(obj, "description", field)
            && d.chars().count() > DESCRIPTION_CHARS
        {
            self.problem(
                join(field, "description"),
                format!("description is longer than {DESCRIPTION_CHARS} characters; shorten it"),
            );
        }

        // Cloning.
        let copy_trust = self.opt_bool(obj, "copy_trust", field);
        let copy_inline = self.opt_bool(obj, "copy_inline", field);
        let copy_managed = self.opt_bool(obj, "copy_managed", field);
        let copy_tags = self.opt_bool(obj, "copy_tags", field);
        let cf = join(field, "clone_from");
        let mut source = None;
        match self.opt_str(obj, "clone_from", field) {
            Some(src) => match parse_principal_arn(src) {
                Ok(ResourceKind::Role) => {
                    if self.targets.contains_key(src) {
                        source = Some(src.to_string());
                    } else if let Some(p) = (self.lookup)(src)
                        && p.kind == ResourceKind::Role
                    {
                        self.targets
                            .insert(src.to_string(), Target::from_principal(&p));
                        source = Some(src.to_string());
                    } else {
                        self.problem(
                            &cf,
                            format!("`{src}` is not a synced role; clone from an existing role"),
                        );
                    }
                }
                Ok(_) => self.problem(&cf, "clone_from must be a role ARN, not a user"),
                Err(m) => self.problem(&cf, m.replace("principal_arn", "clone_from")),
            },
            None => {
                for (flag, on) in [
                    ("copy_trust", copy_trust),
                    ("copy_inline", copy_inline),
                    ("copy_managed", copy_managed),
                    ("copy_tags", copy_tags),
                ] {
                    if on {
                        self.problem(
                            join(field, flag),
                            format!("{flag} needs clone_from: the ARN of the role to copy from"),
                        );
                    }
                }
            }
        }
        let cloning = obj.get("clone_from").is_some_and(|v| !v.is_null());

        // Trust policy: given, or copied.
        let doc_field = join(field, "policy.policy_document");
        let given = obj.get("policy").is_some_and(|p| !p.is_null());
        let mut trust_chars = None;
        if given && copy_trust && cloning {
            self.problem(
                &doc_field,
                "give either a trust policy (policy.policy_document) or copy_trust, not both",
            );
        } else if !(copy_trust && cloning) {
            if let Some(doc) = self.policy_document(obj, field, "trust policy of the new role") {
                self.document(i, doc, DocKind::Trust, &doc_field);
                trust_chars = Some(doc_chars(doc));
            }
        } else if let Some(src) = source.as_deref().and_then(|s| self.targets.get(s)) {
            match src.trust_chars {
                Some(n) => trust_chars = Some(n),
                None => {
                    let message = format!("{} has no trust policy to copy", src.label);
                    self.problem(join(field, "copy_trust"), message);
                }
            }
        }

        // New inline policies.
        let ipf = join(field, "inline_policies");
        let mut inline: BTreeMap<String, usize> = BTreeMap::new();
        if copy_inline && let Some(src) = source.as_deref().and_then(|s| self.targets.get(s)) {
            inline.extend(src.inline.iter().map(|(k, v)| (k.clone(), *v)));
        }
        match obj.get("inline_policies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                let mut seen: Vec<&str> = Vec::new();
                for (k, p) in list.iter().enumerate() {
                    let pf = at(&ipf, k);
                    let Some(p) = p.as_object() else {
                        self.problem(
                            pf,
                            format!(
                                "each inline policy must be an object {{\"policy_name\", \
                                 \"policy_document\"}}, not {}",
                                type_name(p)
                            ),
                        );
                        continue;
                    };
                    let pname = self.policy_name(p, "policy_name", &pf);
                    if let Some(n) = pname {
                        if seen.contains(&n) {
                            self.problem(
                                join(&pf, "policy_name"),
                                format!("inline policy `{n}` is given twice; names must be unique"),
                            );
                        }
                        seen.push(n);
                    }
                    let df = join(&pf, "policy_document");
                    match p.get("policy_document") {
                        None | Some(Value::Null) => self.problem(
                            &df,
                            "policy_document is required: the inline policy document",
                        ),
                        Some(doc) => {
                            self.document(i, doc, DocKind::Identity, &df);
                            if let Some(n) = pname {
                                inline.insert(n.to_string(), doc_chars(doc));
                            }
                        }
                    }
                }
            }
            Some(other) => self.problem(
                &ipf,
                format!(
                    "inline_policies must be a list of {{\"policy_name\", \"policy_document\"}}, \
                     not {}",
                    type_name(other)
                ),
            ),
        }

        let (Some(account), Some(name), Some(path)) = (account, name, path) else {
            return;
        };
        let plain = format!("arn:aws:iam::{account}:role/{name}");
        let full = format!("arn:aws:iam::{account}:role{path}{name}");

        if let Some(arn) = principal
            && arn != full
        {
            self.problem(
                join(field, "principal.principal_arn"),
                format!("for create_role, principal_arn must be the new role's ARN {full} (or be left out)"),
            );
        }

        let taken_here = [&plain, &full]
            .iter()
            .filter_map(|a| self.targets.get(a.as_str()))
            .find(|t| t.created)
            .is_some();
        let exists = taken_here
            || [&plain, &full]
                .iter()
                .any(|a| self.targets.contains_key(a.as_str()) || (self.lookup)(a).is_some());
        if exists {
            let why = if taken_here {
                "another change in this request already creates it"
            } else {
                "a role with this name already exists"
            };
            self.problem(
                join(field, "role_name"),
                format!(
                    "role name `{name}` is taken in account {account} ({why}; role names are \
                     unique per account whatever the path); pick another name"
                ),
            );
            return;
        }

        let src = source.as_deref().and_then(|s| self.targets.get(s));
        let managed = match src {
            Some(s) if copy_managed => s.managed.clone(),
            _ => vec![],
        };
        let boundary = src
            .filter(|_| copy_managed)
            .and_then(|s| s.boundary.clone());
        let tags = match src {
            Some(s) if copy_tags => s.tags.clone(),
            _ => BTreeMap::new(),
        };
        let target = Target {
            kind: ResourceKind::Role,
            account: account.to_string(),
            label: format!("new role `{name}`"),
            trust_chars,
            inline,
            managed,
            boundary,
            tags,
            created: true,
            before_inline: 0,
            before_managed: 0,
            before_tags: 0,
            inline_touch: Some(ipf),
            managed_touch: Some(join(field, "copy_managed")),
            tags_touch: Some(join(field, "copy_tags")),
        };
        self.targets.insert(full, target);
    }

    /// Quotas after all changes, for every principal a change touched: only growth past a
    /// limit is a problem (a change that shrinks an already over-limit principal is fine).
    fn quotas(&mut self) {
        let mut found = Vec::new();
        for t in self.targets.values() {
            let (limit, per) = match t.kind {
                ResourceKind::User => (USER_INLINE_POLICY_CHARS, "user"),
                _ => (ROLE_INLINE_POLICY_CHARS, "role"),
            };
            let inline: usize = t.inline.values().sum();
            if let Some(f) = &t.inline_touch
                && inline > limit
                && inline > t.before_inline
            {
                found.push(Problem::new(
                    f,
                    format!(
                        "after this request the inline policies of {} would total {inline} \
                         characters without whitespace; AWS allows {limit} per {per}. Shorten \
                         them (merge statements) or move permissions into a managed policy",
                        t.label
                    ),
                ));
            }
            let max = self.limits.max_managed_policies;
            if let Some(f) = &t.managed_touch
                && t.managed.len() > max
                && t.managed.len() > t.before_managed
            {
                found.push(Problem::new(
                    f,
                    format!(
                        "after this request {} would have {} managed policies attached; the \
                         limit is {max}. Detach one in the same request or combine policies",
                        t.label,
                        t.managed.len()
                    ),
                ));
            }
            let max = self.limits.max_tags;
            if let Some(f) = &t.tags_touch
                && t.tags.len() > max
                && t.tags.len() > t.before_tags
            {
                found.push(Problem::new(
                    f,
                    format!(
                        "after this request {} would have {} tags; the limit is {max}. Delete \
                         unused tags in the same request",
                        t.label,
                        t.tags.len()
                    ),
                ));
            }
        }
        self.problems.extend(found);
    }
}

/// Fill the defaults the wire format leaves implicit.
fn normalize(change: &mut Change) {
    match change.change_type {
        ChangeType::InlinePolicy | ChangeType::ManagedPolicy | ChangeType::PermissionsBoundary => {
            change.action.get_or_insert(AttachAction::Attach);
        }
        ChangeType::CreateRole => {
            change.path.get_or_insert_with(|| "/".to_string());
        }
        ChangeType::AssumeRolePolicy | ChangeType::ResourceTag => {}
    }
}
