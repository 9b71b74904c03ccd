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

/// A character IAM allows in role, policy and session names: `[\w+=,.@-]`.
pub fn is_name_char(c: char) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::model::{AttachedPolicy, InlinePolicy, Tag};
    use serde_json::json;

    const ACCT: &str = "123456789012";

    fn role_arn(name: &str) -> String {
        format!("arn:aws:iam::{ACCT}:role/{name}")
    }

    fn principal_of(name: &str) -> Value {
        json!({"principal_type": "AwsResource", "principal_arn": role_arn(name)})
    }

    fn trust() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
               "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    }

    fn s3_read() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "Read", "Effect": "Allow",
               "Action": ["s3:GetObject", "s3:ListBucket"],
               "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]}]})
    }

    fn role(name: &str) -> Principal {
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
    fn app() -> Principal {
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

    fn body_of(changes: Vec<Value>) -> Value {
        json!({"justification": "ticket DATA-42: nightly export", "admin_auto_approve": false,
               "changes": {"changes": changes}})
    }

    fn run_with(
        body: &Value,
        principals: Vec<Principal>,
        limits: &Limits,
    ) -> Result<Validated, Vec<Problem>> {
        let lookup = move |arn: &str| principals.iter().find(|p| p.arn == arn).cloned();
        validate_request(body, &lookup, limits)
    }

    fn run(changes: Vec<Value>, principals: Vec<Principal>) -> Result<Validated, Vec<Problem>> {
        run_with(&body_of(changes), principals, &Limits::default())
    }

    #[track_caller]
    fn ok(r: Result<Validated, Vec<Problem>>) -> Validated {
        match r {
            Ok(v) => v,
            Err(p) => panic!("expected success, got {p:#?}"),
        }
    }

    /// The problems, asserting there is one at `field` whose message contains `needle`.
    #[track_caller]
    fn fails(r: Result<Validated, Vec<Problem>>, field: &str, needle: &str) -> Vec<Problem> {
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

    #[track_caller]
    fn doc_fails(doc: Value, kind: DocKind, field: &str, needle: &str) {
        let p = validate_policy_document(&doc, kind, "doc");
        assert!(
            p.iter()
                .any(|x| x.field == field && x.message.contains(needle)),
            "no problem at {field} containing {needle:?} in {p:#?}"
        );
    }

    #[track_caller]
    fn doc_ok(doc: Value, kind: DocKind) {
        let p = validate_policy_document(&doc, kind, "doc");
        assert!(p.is_empty(), "unexpected problems {p:#?}");
    }

    fn inline_attach(role: &str, name: &str, doc: Value) -> Value {
        json!({"change_type": "inline_policy", "principal": principal_of(role), "policy_name": name,
               "action": "attach", "policy": {"policy_document": doc}})
    }

    fn managed(role: &str, arn: &str, action: &str) -> Value {
        json!({"change_type": "managed_policy", "principal": principal_of(role), "arn": arn,
               "action": action})
    }

    fn tag(role: &str, key: &str, value: &str, action: &str) -> Value {
        json!({"change_type": "resource_tag", "principal": principal_of(role), "key": key,
               "value": value, "tag_action": action})
    }

    fn identity(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [statement]})
    }

    fn allow(action: Value, resource: Value) -> Value {
        identity(json!({"Effect": "Allow", "Action": action, "Resource": resource}))
    }

    /// An identity document of exactly `len` characters without whitespace.
    fn identity_doc_of(len: usize) -> Value {
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
    fn trust_doc_of(len: usize) -> Value {
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

    #[test]
    fn a_realistic_request_of_every_change_type_passes() {
        let mut bounded = role("bounded");
        bounded.permissions_boundary = Some(format!("arn:aws:iam::{ACCT}:policy/boundary"));
        let changes = vec![
            inline_attach(
                "app",
                "export",
                identity(json!({"Sid": "Export1", "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": "arn:aws:s3:::exports/${aws:username}/*",
                "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]},
                              "Bool": {"aws:SecureTransport": true}}})),
            ),
            json!({"change_type": "inline_policy", "principal": principal_of("app"),
                   "policy_name": "read", "action": "detach"}),
            managed(
                "app",
                "arn:aws:iam::aws:policy/service-role/AWSGlueServiceRole",
                "attach",
            ),
            managed("app", "arn:aws:iam::aws:policy/ReadOnlyAccess", "detach"),
            json!({"change_type": "permissions_boundary", "principal": principal_of("app"),
                   "arn": format!("arn:aws:iam::{ACCT}:policy/org/boundary"), "action": "attach"}),
            json!({"change_type": "permissions_boundary", "principal": principal_of("bounded"),
                   "action": "detach"}),
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                   "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "glue.amazonaws.com"]},
                        "Action": "sts:AssumeRole"},
                       {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCT}:role/ci")},
                        "Action": ["sts:AssumeRole", "sts:TagSession"],
                        "Condition": {"StringEquals": {"sts:ExternalId": "x1"}}}]}}}),
            tag("app", "owner", "data-eng@example.com", "create"),
            tag("app", "team", "data platform", "update"),
            json!({"change_type": "resource_tag", "principal": principal_of("bounded"), "key": "cost",
                   "tag_action": "create", "value": ""}),
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "export-worker",
                   "path": "/service/", "description": "Runs the nightly export",
                   "policy": {"policy_document": trust()},
                   "inline_policies": [{"policy_name": "s3", "policy_document": s3_read()}]}),
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "app2",
                   "clone_from": role_arn("app"), "copy_trust": true, "copy_inline": true,
                   "copy_managed": true, "copy_tags": true}),
        ];
        let v = ok(run(changes, vec![app(), bounded]));
        assert_eq!(v.changes.len(), 12);
        assert!(v.warnings.is_empty(), "{:#?}", v.warnings);
        assert_eq!(v.changes[0].change_type, ChangeType::InlinePolicy);
        assert_eq!(v.changes[0].policy_name.as_deref(), Some("export"));
        assert_eq!(v.changes[7].tag_action, Some(TagAction::Create));
        assert_eq!(
            v.changes[10].target_arn().as_deref(),
            Some("arn:aws:iam::123456789012:role/service/export-worker")
        );
        assert!(v.changes[11].copy_inline && v.changes[11].copy_tags);
        assert_eq!(v.changes[11].path.as_deref(), Some("/"));
    }

    #[test]
    fn defaults_are_filled_and_the_change_round_trips() {
        let change = json!({"change_type": "managed_policy", "principal": principal_of("app"),
                            "arn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
                            "id": "c1", "status": "not_applied"});
        let v = ok(run(vec![change], vec![app()]));
        let c = &v.changes[0];
        assert_eq!(c.action, Some(AttachAction::Attach));
        assert_eq!(c.target_arn(), Some(role_arn("app")));
        let wire = serde_json::to_value(c).unwrap();
        assert_eq!(wire["change_type"], "managed_policy");
        assert_eq!(wire["action"], "attach");
        assert!(wire.get("copy_trust").is_none() && wire.get("key").is_none());
        assert_eq!(Change::deserialize(&wire).unwrap(), *c);
    }

    #[test]
    fn a_new_role_can_be_changed_later_in_the_same_request() {
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "fresh",
                            "policy": {"policy_document": trust()}});
        let tagged = tag("fresh", "team", "x", "create");
        ok(run(vec![create, tagged], vec![]));
    }

    // ---------------------------------------------------------------- body

    #[test]
    fn justification_is_required_non_blank_and_bounded() {
        let change = tag("app", "k", "v", "create");
        let mut body = body_of(vec![change.clone()]);
        body.as_object_mut().unwrap().remove("justification");
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "required",
        );
        body["justification"] = json!("   \n");
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "blank",
        );
        body["justification"] = json!(42);
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "string",
        );
        body["justification"] = json!("é".repeat(MAX_JUSTIFICATION_CHARS));
        ok(run_with(&body, vec![app()], &Limits::default()));
        body["justification"] = json!("é".repeat(MAX_JUSTIFICATION_CHARS + 1));
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "2001 characters",
        );
    }

    #[test]
    fn changes_must_be_a_non_empty_list_of_at_most_25() {
        fails(run(vec![], vec![]), "changes.changes", "no changes");
        let many = |n: usize| {
            (0..n)
                .map(|k| tag("app", &format!("k{k}"), "v", "create"))
                .collect::<Vec<_>>()
        };
        ok(run(many(MAX_CHANGES), vec![app()]));
        fails(
            run(many(MAX_CHANGES + 1), vec![app()]),
            "changes.changes",
            "26 changes",
        );
        let lim = Limits::default();
        fails(
            run_with(&json!({"justification": "x"}), vec![], &lim),
            "changes",
            "required",
        );
        fails(
            run_with(&json!({"justification": "x", "changes": []}), vec![], &lim),
            "changes",
            "object",
        );
        fails(
            run_with(&json!({"justification": "x", "changes": {}}), vec![], &lim),
            "changes.changes",
            "required",
        );
        fails(
            run_with(
                &json!({"justification": "x", "changes": {"changes": {}}}),
                vec![],
                &lim,
            ),
            "changes.changes",
            "list",
        );
        fails(
            run_with(&json!([1, 2]), vec![], &lim),
            "body",
            "JSON object",
        );
        let mut body = body_of(vec![tag("app", "k", "v", "create")]);
        body["admin_auto_approve"] = json!("yes");
        fails(
            run_with(&body, vec![app()], &lim),
            "admin_auto_approve",
            "true or false",
        );
    }

    #[test]
    fn every_problem_is_collected_not_just_the_first() {
        let mut body = body_of(vec![
            json!({"change_type": "nope"}),
            json!(7),
            inline_attach(
                "app",
                "bad name!",
                json!({"Statement": {"Effect": "Maybe"}}),
            ),
        ]);
        body["justification"] = json!("");
        let p = fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "blank",
        );
        let fields: Vec<&str> = p.iter().map(|x| x.field.as_str()).collect();
        for f in [
            "changes[0].change_type",
            "changes[1]",
            "changes[2].policy_name",
            "changes[2].policy.policy_document.Statement.Effect",
            "changes[2].policy.policy_document.Statement.Action",
            "changes[2].policy.policy_document.Statement.Resource",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    // ---------------------------------------------------------------- policy grammar

    #[test]
    fn problems_name_the_exact_field_path() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let p = fails(
            run(vec![inline_attach("app", "p", doc)], vec![app()]),
            "changes[0].policy.policy_document.Statement[1].Effect",
            "\"Allow\" or \"Deny\"",
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(
            p[0].to_string(),
            format!(
                "changes[0].policy.policy_document.Statement[1].Effect: {}",
                p[0].message
            )
        );
    }

    #[test]
    fn document_shape_version_and_statement() {
        use DocKind::Identity as I;
        doc_fails(json!([]), I, "doc", "JSON object");
        doc_fails(json!("{\"Statement\": []}"), I, "doc", "JSON object");
        doc_fails(
            json!({"Version": "2020-01-01", "Statement": []}),
            I,
            "doc.Version",
            "2012-10-17",
        );
        doc_fails(json!({"Version": 2012}), I, "doc.Version", "2012-10-17");
        doc_fails(
            json!({"Version": "2012-10-17"}),
            I,
            "doc.Statement",
            "required",
        );
        doc_fails(json!({"Statement": []}), I, "doc.Statement", "empty");
        doc_fails(
            json!({"Statement": "x"}),
            I,
            "doc.Statement",
            "object or a list",
        );
        doc_fails(
            json!({"Statement": [1]}),
            I,
            "doc.Statement[0]",
            "must be an object",
        );
        doc_fails(json!({"Statement": [], "Id": 3}), I, "doc.Id", "string");
        doc_fails(
            json!({"Statement": [], "statement": []}),
            I,
            "doc.statement",
            "did you mean `Statement`",
        );
        doc_ok(
            json!({"Version": "2008-10-17", "Id": "x",
                      "Statement": {"Effect": "Deny", "NotAction": "iam:*", "NotResource": "*"}}),
            I,
        );
        doc_ok(
            json!({"Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}),
            I,
        );
    }

    #[test]
    fn statement_keys_sid_and_effect() {
        use DocKind::Identity as I;
        let st = |extra: Value| {
            let mut s = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            identity(s)
        };
        doc_fails(
            st(json!({"Sid": "read-bucket"})),
            I,
            "doc.Statement[0].Sid",
            "letters",
        );
        doc_fails(
            st(json!({"Sid": ""})),
            I,
            "doc.Statement[0].Sid",
            "non-empty",
        );
        doc_fails(st(json!({"Sid": 1})), I, "doc.Statement[0].Sid", "string");
        doc_ok(st(json!({"Sid": "ReadBucket2"})), I);
        let dup = json!({"Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "A", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]});
        doc_fails(dup, I, "doc.Statement[1].Sid", "unique");
        doc_fails(
            st(json!({"Effect": "ALLOW"})),
            I,
            "doc.Statement[0].Effect",
            "exactly",
        );
        doc_fails(
            identity(json!({"Action": "s3:GetObject", "Resource": "*"})),
            I,
            "doc.Statement[0].Effect",
            "required",
        );
        doc_fails(
            st(json!({"Effects": "Allow"})),
            I,
            "doc.Statement[0].Effects",
            "unknown statement key",
        );
        doc_fails(
            st(json!({"effect": "Allow"})),
            I,
            "doc.Statement[0].effect",
            "did you mean `Effect`",
        );
        doc_fails(
            st(json!({"Principal": "*"})),
            I,
            "doc.Statement[0].Principal",
            "not allowed in an identity policy",
        );
    }

    #[test]
    fn action_rules() {
        use DocKind::Identity as I;
        let with = |a: Value| identity(json!({"Effect": "Allow", "Action": a, "Resource": "*"}));
        for good in [
            "*",
            "*:*",
            "s3:GetObject",
            "s3:Get*",
            "ec2:Describe?nstances",
            "aws-portal:ViewBilling",
            "s3:*",
        ] {
            doc_ok(with(json!(good)), I);
        }
        for bad in [
            "",
            "s3",
            "S3:GetObject",
            "s3:",
            ":GetObject",
            "s3:Get-Object",
            "s3 :Get",
            "s3:Get:Object",
            "s_3:Get",
        ] {
            doc_fails(
                with(json!(bad)),
                I,
                "doc.Statement[0].Action",
                "service:Action",
            );
        }
        doc_fails(
            with(json!(["s3:GetObject", "nope"])),
            I,
            "doc.Statement[0].Action[1]",
            "service:Action",
        );
        doc_fails(
            with(json!(["s3:GetObject", 5])),
            I,
            "doc.Statement[0].Action[1]",
            "must be a string",
        );
        doc_fails(with(json!([])), I, "doc.Statement[0].Action", "empty");
        doc_fails(
            with(json!({"s3": "Get"})),
            I,
            "doc.Statement[0].Action",
            "string or a list",
        );
        doc_fails(
            identity(json!({"Effect": "Allow", "Resource": "*"})),
            I,
            "doc.Statement[0].Action",
            "required",
        );
        doc_fails(
            identity(
                json!({"Effect": "Allow", "Action": "s3:GetObject", "NotAction": "s3:PutObject", "Resource": "*"}),
            ),
            I,
            "doc.Statement[0].NotAction",
            "not both",
        );
    }

    #[test]
    fn resource_rules() {
        use DocKind::Identity as I;
        let with = |r: Value| {
            identity(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": r}))
        };
        for good in [
            "*",
            "arn:aws:s3:::bucket",
            "arn:aws:s3:::bucket/*",
            "arn:*:ec2:*:*:instance/*",
            "arn:aws:iam::123456789012:role/a/b",
            "arn:aws:s3:::b/${aws:username}/*",
            "arn:aws-cn:sqs:cn-north-1:123456789012:q",
        ] {
            doc_ok(with(json!(good)), I);
        }
        for bad in [
            "bucket",
            "arn:aws:s3::bucket",
            "arn::s3:::b",
            "arn:aws::::b",
            "ARN:aws:s3:::b",
            "s3://bucket",
        ] {
            doc_fails(with(json!(bad)), I, "doc.Statement[0].Resource", "ARN");
        }
        doc_fails(
            with(json!(["*", "x"])),
            I,
            "doc.Statement[0].Resource[1]",
            "ARN",
        );
        doc_fails(with(json!([])), I, "doc.Statement[0].Resource", "empty");
        doc_fails(
            with(json!(null)),
            I,
            "doc.Statement[0].Resource",
            "string or a list",
        );
        doc_fails(
            identity(json!({"Effect": "Allow", "Action": "s3:GetObject"})),
            I,
            "doc.Statement[0].Resource",
            "required",
        );
        doc_fails(
            identity(
                json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "NotResource": "*"}),
            ),
            I,
            "doc.Statement[0].NotResource",
            "not both",
        );
    }

    #[test]
    fn trust_policy_principal_rules() {
        use DocKind::Trust as T;
        let with = |p: Value| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"}]});
        doc_ok(trust(), T);
        doc_ok(with(json!("*")), T);
        doc_ok(
            with(json!({"AWS": ["123456789012", "arn:aws:iam::123456789012:root", "*"]})),
            T,
        );
        doc_ok(
            with(json!({"Federated": "cognito-identity.amazonaws.com"})),
            T,
        );
        doc_ok(
            with(
                json!({"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}),
            ),
            T,
        );
        doc_fails(
            with(json!("ec2.amazonaws.com")),
            T,
            "doc.Statement[0].Principal",
            "\"*\" or an object",
        );
        doc_fails(
            with(json!({})),
            T,
            "doc.Statement[0].Principal",
            "names no principal",
        );
        doc_fails(
            with(json!({"User": "bob"})),
            T,
            "doc.Statement[0].Principal.User",
            "unknown principal type",
        );
        doc_fails(
            with(json!({"AWS": "bob"})),
            T,
            "doc.Statement[0].Principal.AWS",
            "12-digit account",
        );
        doc_fails(
            with(json!({"Service": []})),
            T,
            "doc.Statement[0].Principal.Service",
            "empty",
        );
        doc_fails(
            with(json!({"Service": [""]})),
            T,
            "doc.Statement[0].Principal.Service[0]",
            "empty",
        );
        doc_fails(
            with(json!(7)),
            T,
            "doc.Statement[0].Principal",
            "\"*\" or an object",
        );
        let no_principal = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]});
        doc_fails(no_principal, T, "doc.Statement[0].Principal", "required");
        let both = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "NotPrincipal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
        doc_fails(both, T, "doc.Statement[0].NotPrincipal", "not both");
        let resource = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Resource": "*"}]});
        doc_fails(
            resource,
            T,
            "doc.Statement[0].Resource",
            "not allowed in a trust policy",
        );
    }

    #[test]
    fn condition_rules() {
        use DocKind::Identity as I;
        let with = |c: Value| {
            identity(
                json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": c}),
            )
        };
        for op in [
            "StringEquals",
            "ForAllValues:StringLike",
            "ForAnyValue:StringNotEqualsIgnoreCase",
            "StringEqualsIfExists",
            "ForAnyValue:ArnLikeIfExists",
            "NumericLessThanEquals",
            "DateGreaterThan",
            "Bool",
            "BinaryEquals",
            "NotIpAddress",
            "Null",
            "ForAllValues:Null",
        ] {
            doc_ok(with(json!({op: {"aws:SomeKey": "v"}})), I);
        }
        doc_ok(
            with(
                json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                           "NumericLessThan": {"s3:max-keys": 10}, "Bool": {"aws:MultiFactorAuthPresent": false}}),
            ),
            I,
        );
        for bad in [
            "StringEqual",
            "stringequals",
            "NullIfExists",
            "ForEveryValue:StringLike",
            "IfExists",
            "ForAllValues:",
        ] {
            doc_fails(
                with(json!({bad: {"k": "v"}})),
                I,
                &format!("doc.Statement[0].Condition.{bad}"),
                "unknown condition operator",
            );
        }
        doc_fails(
            with(json!("aws:SecureTransport")),
            I,
            "doc.Statement[0].Condition",
            "must be an object",
        );
        doc_fails(
            with(json!({"Bool": true})),
            I,
            "doc.Statement[0].Condition.Bool",
            "maps condition keys",
        );
        doc_fails(
            with(json!({"Bool": {}})),
            I,
            "doc.Statement[0].Condition.Bool",
            "at least one",
        );
        doc_fails(
            with(json!({"StringEquals": {"aws:x": null}})),
            I,
            "doc.Statement[0].Condition.StringEquals.aws:x",
            "condition value",
        );
        doc_fails(
            with(json!({"StringEquals": {"aws:x": []}})),
            I,
            "doc.Statement[0].Condition.StringEquals.aws:x",
            "non-empty",
        );
        doc_fails(
            with(json!({"StringEquals": {"aws:x": [{"a": 1}]}})),
            I,
            "doc.Statement[0].Condition.StringEquals.aws:x",
            "condition value",
        );
        doc_fails(
            with(json!({"StringEquals": {"": "v"}})),
            I,
            "doc.Statement[0].Condition.StringEquals.",
            "empty",
        );
    }

    #[test]
    fn document_problems_in_a_change_are_prefixed_with_the_change_path() {
        let doc = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "bucket"}]});
        fails(
            run(vec![inline_attach("app", "p", doc)], vec![app()]),
            "changes[0].policy.policy_document.Statement[0].Resource",
            "ARN",
        );
        let no_doc = json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "p", "action": "attach"});
        fails(
            run(vec![no_doc], vec![app()]),
            "changes[0].policy.policy_document",
            "required",
        );
        let bad_policy = json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "p", "policy": "x"});
        fails(
            run(vec![bad_policy], vec![app()]),
            "changes[0].policy",
            "must be an object",
        );
        let trust_in_identity = json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                                       "policy": {"policy_document": s3_read()}});
        fails(
            run(vec![trust_in_identity], vec![app()]),
            "changes[0].policy.policy_document.Statement[0].Resource",
            "trust policy",
        );
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "n",
                            "policy": {"policy_document": trust()},
                            "inline_policies": [{"policy_name": "p", "policy_document": {"Statement": {"Effect": "Allow"}}}]});
        fails(
            run(vec![create], vec![]),
            "changes[0].inline_policies[0].policy_document.Statement.Action",
            "required",
        );
    }

    // ---------------------------------------------------------------- ARNs and names

    #[test]
    fn principal_arn_rules() {
        let with = |arn: &str| {
            json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                                      "principal": {"principal_type": "AwsResource", "principal_arn": arn}})
        };
        for bad in [
            "arn:aws:iam::12345678901:role/app",
            "arn:aws:iam::12345678901a:role/app",
            "arn:aws:iam::123456789012:group/app",
            "arn:aws:s3:::app",
            "role/app",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role//app",
            "arn:aws:iam::123456789012:role/a pp",
            "arn:aws-cn:iam::123456789012:role/app",
        ] {
            fails(
                run(vec![with(bad)], vec![app()]),
                "changes[0].principal.principal_arn",
                "arn:aws:iam::123456789012:role/",
            );
        }
        let long = format!("arn:aws:iam::{ACCT}:role/{}", "r".repeat(65));
        fails(
            run(vec![with(&long)], vec![]),
            "changes[0].principal.principal_arn",
            "at most 64",
        );
        let mut pathed = role("svc");
        pathed.arn = format!("arn:aws:iam::{ACCT}:role/team/data/svc");
        let mut user = role("bob");
        user.kind = ResourceKind::User;
        user.arn = format!("arn:aws:iam::{ACCT}:user/bob");
        ok(run(
            vec![with(&pathed.arn.clone()), with(&user.arn.clone())],
            vec![pathed, user],
        ));
        let wrong_type = json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                                "principal": {"principal_type": "HoneybeeAwsResourceTemplate", "principal_arn": role_arn("app")}});
        fails(
            run(vec![wrong_type], vec![app()]),
            "changes[0].principal.principal_type",
            "AwsResource",
        );
        let no_principal = json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create"});
        fails(
            run(vec![no_principal], vec![app()]),
            "changes[0].principal",
            "required",
        );
        let no_arn = json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                            "principal": {"principal_type": "AwsResource"}});
        fails(
            run(vec![no_arn], vec![app()]),
            "changes[0].principal.principal_arn",
            "required",
        );
    }

    #[test]
    fn managed_policy_arn_rules() {
        for good in [
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::aws:policy/service-role/AWSGlueServiceRole",
            "arn:aws:iam::123456789012:policy/team/x.y@z",
        ] {
            ok(run(vec![managed("app", good, "attach")], vec![app()]));
        }
        for bad in [
            "arn:aws:iam::amazon:policy/X",
            "arn:aws:iam::123:policy/X",
            "arn:aws:iam::aws:role/X",
            "arn:aws:iam::aws:policy/",
            "arn:aws:iam::aws:policy/bad name",
            "ReadOnlyAccess",
        ] {
            fails(
                run(vec![managed("app", bad, "attach")], vec![app()]),
                "changes[0].arn",
                "managed policy ARN",
            );
        }
        let name129 = format!("arn:aws:iam::aws:policy/{}", "p".repeat(129));
        fails(
            run(vec![managed("app", &name129, "attach")], vec![app()]),
            "changes[0].arn",
            "at most 128",
        );
        fails(
            run(
                vec![managed(
                    "app",
                    "arn:aws:iam::999999999999:policy/X",
                    "attach",
                )],
                vec![app()],
            ),
            "changes[0].arn",
            "same account",
        );
        let no_arn = json!({"change_type": "managed_policy", "principal": principal_of("app"), "action": "attach"});
        fails(run(vec![no_arn], vec![app()]), "changes[0].arn", "required");
        fails(
            run(
                vec![managed("app", "arn:aws:iam::aws:policy/X", "remove")],
                vec![app()],
            ),
            "changes[0].action",
            "\"attach\" or \"detach\"",
        );
    }

    #[test]
    fn name_and_path_rules() {
        assert_eq!(
            name_problem(&"a".repeat(64), "role name", ROLE_NAME_CHARS),
            None
        );
        assert!(
            name_problem(&"a".repeat(65), "role name", ROLE_NAME_CHARS)
                .is_some_and(|m| m.contains("at most 64"))
        );
        assert_eq!(
            name_problem("a+b=c,d.e@f_g-h", "role name", ROLE_NAME_CHARS),
            None
        );
        for bad in ["", "a b", "a/b", "é", "a:b", "a*"] {
            assert!(
                name_problem(bad, "role name", ROLE_NAME_CHARS).is_some(),
                "{bad}"
            );
        }
        for good in ["/", "/a/", "/a/b-c/", "/a.b@c/"] {
            assert_eq!(path_problem(good), None, "{good}");
        }
        for bad in ["", "a", "/a", "a/", "//", "/a//b/", "/a b/", "/é/"] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
        assert!(path_problem(&format!("/{}/", "p".repeat(511))).is_some());

        let create = |name: &str, path: Value| {
            json!({"change_type": "create_role", "account_id": ACCT,
            "role_name": name, "path": path, "policy": {"policy_document": trust()}})
        };
        ok(run(vec![create(&"r".repeat(64), json!("/x/"))], vec![]));
        fails(
            run(vec![create(&"r".repeat(65), json!("/"))], vec![]),
            "changes[0].role_name",
            "at most 64",
        );
        fails(
            run(vec![create("r r", json!("/"))], vec![]),
            "changes[0].role_name",
            "contains ` `",
        );
        fails(
            run(vec![create("r", json!("x"))], vec![]),
            "changes[0].path",
            "path",
        );
        fails(
            run(vec![create("r", json!(1))], vec![]),
            "changes[0].path",
            "string",
        );

        ok(run(
            vec![inline_attach("app", &"p".repeat(128), s3_read())],
            vec![app()],
        ));
        fails(
            run(
                vec![inline_attach("app", &"p".repeat(129), s3_read())],
                vec![app()],
            ),
            "changes[0].policy_name",
            "at most 128",
        );
        fails(
            run(vec![inline_attach("app", "p/q", s3_read())], vec![app()]),
            "changes[0].policy_name",
            "contains `/`",
        );
    }

    // ---------------------------------------------------------------- quotas

    #[test]
    fn inline_policies_of_a_role_sum_to_at_most_10240_after_the_change() {
        let existing = doc_chars(&s3_read());
        let at_limit = identity_doc_of(ROLE_INLINE_POLICY_CHARS - existing);
        ok(run(
            vec![inline_attach("app", "big", at_limit)],
            vec![app()],
        ));
        let over = identity_doc_of(ROLE_INLINE_POLICY_CHARS - existing + 1);
        fails(
            run(vec![inline_attach("app", "big", over.clone())], vec![app()]),
            "changes[0].policy.policy_document",
            "10241 characters",
        );
        // Replacing the existing policy counts the new size only.
        ok(run(
            vec![inline_attach(
                "app",
                "read",
                identity_doc_of(ROLE_INLINE_POLICY_CHARS),
            )],
            vec![app()],
        ));
        fails(
            run(
                vec![inline_attach(
                    "app",
                    "read",
                    identity_doc_of(ROLE_INLINE_POLICY_CHARS + 1),
                )],
                vec![app()],
            ),
            "changes[0].policy.policy_document",
            "10241",
        );
        // Detaching in the same request makes room.
        let detach = json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "read", "action": "detach"});
        ok(run(
            vec![
                detach,
                inline_attach("app", "big", identity_doc_of(ROLE_INLINE_POLICY_CHARS)),
            ],
            vec![app()],
        ));
        // Two new policies on the same role add up; the last one is named.
        let half = ROLE_INLINE_POLICY_CHARS / 2;
        let p = fails(
            run(
                vec![
                    inline_attach("app", "a", identity_doc_of(half)),
                    inline_attach("app", "b", identity_doc_of(half)),
                ],
                vec![app()],
            ),
            "changes[1].policy.policy_document",
            "AWS allows 10240",
        );
        assert_eq!(p.len(), 1);
        // Whitespace does not count: the document is measured compact.
        let pretty: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&identity_doc_of(300)).unwrap())
                .unwrap();
        assert_eq!(doc_chars(&pretty), 300);
    }

    #[test]
    fn inline_policies_of_a_user_sum_to_at_most_2048() {
        let mut user = role("bob");
        user.kind = ResourceKind::User;
        user.arn = format!("arn:aws:iam::{ACCT}:user/bob");
        let change = |doc: Value| {
            json!({"change_type": "inline_policy", "policy_name": "p", "action": "attach",
            "principal": {"principal_type": "AwsResource", "principal_arn": format!("arn:aws:iam::{ACCT}:user/bob")},
            "policy": {"policy_document": doc}})
        };
        ok(run(
            vec![change(identity_doc_of(USER_INLINE_POLICY_CHARS))],
            vec![user.clone()],
        ));
        fails(
            run(
                vec![change(identity_doc_of(USER_INLINE_POLICY_CHARS + 1))],
                vec![user],
            ),
            "changes[0].policy.policy_document",
            "2048 per user",
        );
    }

    #[test]
    fn a_role_already_over_the_inline_quota_may_shrink() {
        let mut fat = app();
        fat.inline_policies.push(InlinePolicy {
            name: "huge".into(),
            document: identity_doc_of(ROLE_INLINE_POLICY_CHARS),
        });
        ok(run(
            vec![inline_attach("app", "huge", identity_doc_of(5000))],
            vec![fat.clone()],
        ));
        fails(
            run(vec![inline_attach("app", "more", s3_read())], vec![fat]),
            "changes[0].policy.policy_document",
            "would total",
        );
    }

    #[test]
    fn trust_policy_is_at_most_2048_characters() {
        let change = |doc: Value| {
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                                         "policy": {"policy_document": doc}})
        };
        ok(run(
            vec![change(trust_doc_of(TRUST_POLICY_CHARS))],
            vec![app()],
        ));
        fails(
            run(
                vec![change(trust_doc_of(TRUST_POLICY_CHARS + 1))],
                vec![app()],
            ),
            "changes[0].policy.policy_document",
            "2049 characters",
        );
        let create = |doc: Value| {
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "n",
                                         "policy": {"policy_document": doc}})
        };
        ok(run(vec![create(trust_doc_of(TRUST_POLICY_CHARS))], vec![]));
        fails(
            run(vec![create(trust_doc_of(TRUST_POLICY_CHARS + 1))], vec![]),
            "changes[0].policy.policy_document",
            "AWS allows 2048",
        );
    }

    #[test]
    fn managed_policies_attached_are_at_most_the_limit_after_the_change() {
        let arn = |k: usize| format!("arn:aws:iam::{ACCT}:policy/p{k}");
        let mut full = role("app");
        full.managed_policies = (0..9)
            .map(|k| AttachedPolicy {
                name: format!("p{k}"),
                arn: arn(k),
            })
            .collect();
        ok(run(
            vec![managed("app", &arn(9), "attach")],
            vec![full.clone()],
        ));
        fails(
            run(
                vec![
                    managed("app", &arn(9), "attach"),
                    managed("app", &arn(10), "attach"),
                ],
                vec![full.clone()],
            ),
            "changes[1].arn",
            "11 managed policies",
        );
        ok(run(
            vec![
                managed("app", &arn(0), "detach"),
                managed("app", &arn(9), "attach"),
                managed("app", &arn(10), "attach"),
            ],
            vec![full.clone()],
        ));
        let lim = Limits {
            max_managed_policies: 20,
            ..Limits::default()
        };
        ok(run_with(
            &body_of(vec![
                managed("app", &arn(9), "attach"),
                managed("app", &arn(10), "attach"),
            ]),
            vec![full],
            &lim,
        ));
    }

    #[test]
    fn tags_are_at_most_the_limit_after_the_change() {
        let mut tagged = role("app");
        tagged.tags = (0..49)
            .map(|k| Tag {
                key: format!("k{k}"),
                value: "v".into(),
            })
            .collect();
        ok(run(
            vec![tag("app", "new", "v", "create")],
            vec![tagged.clone()],
        ));
        fails(
            run(
                vec![
                    tag("app", "new", "v", "create"),
                    tag("app", "new2", "v", "create"),
                ],
                vec![tagged.clone()],
            ),
            "changes[1].key",
            "51 tags",
        );
        ok(run(
            vec![
                tag("app", "k0", "", "delete"),
                tag("app", "new", "v", "create"),
                tag("app", "new2", "v", "create"),
            ],
            vec![tagged.clone()],
        ));
        let lim = Limits {
            max_tags: 49,
            ..Limits::default()
        };
        fails(
            run_with(
                &body_of(vec![tag("app", "new", "v", "create")]),
                vec![tagged.clone()],
                &lim,
            ),
            "changes[0].key",
            "limit is 49",
        );
        // Updating an existing tag does not add one.
        ok(run_with(
            &body_of(vec![tag("app", "k1", "w", "update")]),
            vec![tagged],
            &lim,
        ));
    }

    #[test]
    fn tag_key_and_value_lengths_and_characters() {
        ok(run(
            vec![tag("app", &"k".repeat(128), &"v".repeat(256), "create")],
            vec![app()],
        ));
        fails(
            run(
                vec![tag("app", &"k".repeat(129), "v", "create")],
                vec![app()],
            ),
            "changes[0].key",
            "129 characters",
        );
        fails(
            run(vec![tag("app", "", "v", "create")], vec![app()]),
            "changes[0].key",
            "1 to 128",
        );
        fails(
            run(
                vec![tag("app", "k", &"v".repeat(257), "create")],
                vec![app()],
            ),
            "changes[0].value",
            "257 characters",
        );
        fails(
            run(
                vec![tag("app", "aws:cloudformation", "v", "create")],
                vec![app()],
            ),
            "changes[0].key",
            "reserved",
        );
        fails(
            run(vec![tag("app", "a#b", "v", "create")], vec![app()]),
            "changes[0].key",
            "contains `#`",
        );
        fails(
            run(vec![tag("app", "k", "a;b", "create")], vec![app()]),
            "changes[0].value",
            "contains `;`",
        );
        ok(run(
            vec![tag("app", "Équipe 1/2", "dönüş-x@y.z:+=", "create")],
            vec![app()],
        ));
        let no_value = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "k", "tag_action": "create"});
        fails(
            run(vec![no_value], vec![app()]),
            "changes[0].value",
            "required",
        );
        let bad_action = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "k", "value": "v", "tag_action": "upsert"});
        fails(
            run(vec![bad_action], vec![app()]),
            "changes[0].tag_action",
            "create, update or delete",
        );
        let no_action = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "k", "value": "v"});
        fails(
            run(vec![no_action], vec![app()]),
            "changes[0].tag_action",
            "required",
        );
    }

    // ---------------------------------------------------------------- current state

    #[test]
    fn the_principal_must_be_synced() {
        let p = fails(
            run(vec![tag("ghost", "k", "v", "create")], vec![app()]),
            "changes[0].principal.principal_arn",
            "not a synced role",
        );
        assert_eq!(p.len(), 1);
        fails(
            run(vec![inline_attach("ghost", "p", s3_read())], vec![]),
            "changes[0].principal.principal_arn",
            "not a synced",
        );
        fails(
            run(
                vec![managed("ghost", "arn:aws:iam::aws:policy/X", "attach")],
                vec![],
            ),
            "changes[0].principal.principal_arn",
            "not a synced",
        );
    }

    #[test]
    fn detaching_what_is_not_there_is_a_problem() {
        let detach = |name: &str| {
            json!({"change_type": "inline_policy", "principal": principal_of("app"),
                                         "policy_name": name, "action": "detach"})
        };
        ok(run(vec![detach("read")], vec![app()]));
        fails(
            run(vec![detach("Read")], vec![app()]),
            "changes[0].policy_name",
            "no inline policy named `Read`",
        );
        fails(
            run(vec![detach("read"), detach("read")], vec![app()]),
            "changes[1].policy_name",
            "nothing to detach",
        );
        fails(
            run(
                vec![managed(
                    "app",
                    "arn:aws:iam::aws:policy/AdministratorAccess",
                    "detach",
                )],
                vec![app()],
            ),
            "changes[0].arn",
            "not attached",
        );
        let v = ok(run(
            vec![managed(
                "app",
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "attach",
            )],
            vec![app()],
        ));
        assert!(v.warnings[0].message.contains("already attached"));
        let boundary = json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "action": "detach"});
        fails(
            run(vec![boundary], vec![app()]),
            "changes[0].action",
            "no permissions boundary",
        );
        let mut bounded = app();
        bounded.permissions_boundary = Some(format!("arn:aws:iam::{ACCT}:policy/b1"));
        let other = json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "action": "detach",
                           "arn": format!("arn:aws:iam::{ACCT}:policy/b2")});
        fails(
            run(vec![other], vec![bounded]),
            "changes[0].arn",
            "not arn:aws:iam::123456789012:policy/b2",
        );
        let attach_no_arn = json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "action": "attach"});
        fails(
            run(vec![attach_no_arn], vec![app()]),
            "changes[0].arn",
            "required",
        );
    }

    #[test]
    fn tag_actions_must_match_existing_tags() {
        fails(
            run(vec![tag("app", "team", "x", "create")], vec![app()]),
            "changes[0].key",
            "use tag_action \"update\"",
        );
        fails(
            run(vec![tag("app", "owner", "x", "update")], vec![app()]),
            "changes[0].key",
            "use tag_action \"create\"",
        );
        fails(
            run(vec![tag("app", "owner", "", "delete")], vec![app()]),
            "changes[0].key",
            "nothing to delete",
        );
        ok(run(
            vec![
                tag("app", "team", "", "delete"),
                tag("app", "team", "new", "create"),
            ],
            vec![app()],
        ));
        let delete_without_value = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "team", "tag_action": "delete"});
        ok(run(vec![delete_without_value], vec![app()]));
    }

    #[test]
    fn trust_policies_are_for_roles_only() {
        let mut user = role("bob");
        user.kind = ResourceKind::User;
        user.arn = format!("arn:aws:iam::{ACCT}:user/bob");
        let change = json!({"change_type": "assume_role_policy", "policy": {"policy_document": trust()},
            "principal": {"principal_type": "AwsResource", "principal_arn": format!("arn:aws:iam::{ACCT}:user/bob")}});
        fails(
            run(vec![change], vec![user]),
            "changes[0].principal.principal_arn",
            "not a role",
        );
        let no_doc = json!({"change_type": "assume_role_policy", "principal": principal_of("app")});
        fails(
            run(vec![no_doc], vec![app()]),
            "changes[0].policy.policy_document",
            "required",
        );
    }

    #[test]
    fn create_role_rules() {
        let base = || {
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "new",
                             "policy": {"policy_document": trust()}})
        };
        ok(run(vec![base()], vec![app()]));
        let with = |k: &str, v: Value| {
            let mut c = base();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = base();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        fails(
            run(vec![with("role_name", json!("app"))], vec![app()]),
            "changes[0].role_name",
            "already exists",
        );
        fails(
            run(vec![base(), base()], vec![]),
            "changes[1].role_name",
            "already creates it",
        );
        fails(
            run(vec![without("account_id")], vec![]),
            "changes[0].account_id",
            "required",
        );
        fails(
            run(vec![with("account_id", json!("1234"))], vec![]),
            "changes[0].account_id",
            "12 digits",
        );
        fails(
            run(vec![with("account_id", json!(123456789012u64))], vec![]),
            "changes[0].account_id",
            "string",
        );
        fails(
            run(vec![without("role_name")], vec![]),
            "changes[0].role_name",
            "required",
        );
        fails(
            run(vec![without("policy")], vec![]),
            "changes[0].policy.policy_document",
            "required",
        );
        fails(
            run(vec![with("description", json!("d".repeat(1001)))], vec![]),
            "changes[0].description",
            "1000",
        );
        fails(
            run(vec![with("copy_tags", json!(true))], vec![]),
            "changes[0].copy_tags",
            "needs clone_from",
        );
        fails(
            run(vec![with("copy_trust", json!("yes"))], vec![]),
            "changes[0].copy_trust",
            "true or false",
        );
        fails(
            run(vec![with("clone_from", json!(role_arn("ghost")))], vec![]),
            "changes[0].clone_from",
            "not a synced role",
        );
        fails(
            run(vec![with("clone_from", json!("app"))], vec![]),
            "changes[0].clone_from",
            "clone_from must look like",
        );
        let mut both = with("clone_from", json!(role_arn("app")));
        both["copy_trust"] = json!(true);
        fails(
            run(vec![both], vec![app()]),
            "changes[0].policy.policy_document",
            "not both",
        );
        fails(
            run(vec![with("principal", principal_of("other"))], vec![]),
            "changes[0].principal.principal_arn",
            "new role's ARN",
        );
        ok(run(vec![with("principal", principal_of("new"))], vec![]));
        let dup = with(
            "inline_policies",
            json!([{"policy_name": "a", "policy_document": s3_read()},
                                                 {"policy_name": "a", "policy_document": s3_read()}]),
        );
        fails(
            run(vec![dup], vec![]),
            "changes[0].inline_policies[1].policy_name",
            "twice",
        );
        fails(
            run(vec![with("inline_policies", json!({}))], vec![]),
            "changes[0].inline_policies",
            "list",
        );
        fails(
            run(
                vec![with("inline_policies", json!([{"policy_name": "a"}]))],
                vec![],
            ),
            "changes[0].inline_policies[0].policy_document",
            "required",
        );
    }

    #[test]
    fn create_role_name_must_be_free_whatever_the_path() {
        let mut svc = role("svc");
        svc.arn = format!("arn:aws:iam::{ACCT}:role/team/svc");
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "svc", "path": "/team/",
                            "policy": {"policy_document": trust()}});
        fails(
            run(vec![create], vec![svc.clone()]),
            "changes[0].role_name",
            "already exists",
        );
        let create_plain = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "svc",
                                  "policy": {"policy_document": trust()}});
        // The path-less ARN is what lookup is asked for; a differently pathed role is found too
        // when lookup resolves by name, which the sync store does.
        let by_name = move |arn: &str| (arn == role_arn("svc")).then(|| svc.clone());
        let r = validate_request(&body_of(vec![create_plain]), &by_name, &Limits::default());
        fails(r, "changes[0].role_name", "already exists");
    }

    #[test]
    fn create_role_quotas_count_copied_and_new_policies() {
        let mut src = app();
        src.inline_policies = vec![InlinePolicy {
            name: "big".into(),
            document: identity_doc_of(ROLE_INLINE_POLICY_CHARS - 300),
        }];
        src.managed_policies = (0..10)
            .map(|k| AttachedPolicy {
                name: format!("p{k}"),
                arn: format!("arn:aws:iam::{ACCT}:policy/p{k}"),
            })
            .collect();
        src.tags = (0..50)
            .map(|k| Tag {
                key: format!("k{k}"),
                value: "v".into(),
            })
            .collect();
        let clone = |extra: Value| {
            let mut c = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "copy",
                               "clone_from": role_arn("app"), "copy_trust": true, "copy_inline": true,
                               "copy_managed": true, "copy_tags": true});
            if !extra.is_null() {
                c["inline_policies"] = extra;
            }
            c
        };
        ok(run(vec![clone(Value::Null)], vec![src.clone()]));
        ok(run(
            vec![clone(
                json!([{"policy_name": "small", "policy_document": identity_doc_of(300)}]),
            )],
            vec![src.clone()],
        ));
        fails(
            run(
                vec![clone(
                    json!([{"policy_name": "small", "policy_document": identity_doc_of(301)}]),
                )],
                vec![src.clone()],
            ),
            "changes[0].inline_policies",
            "10241",
        );
        let then_attach = managed("copy", &format!("arn:aws:iam::{ACCT}:policy/p10"), "attach");
        fails(
            run(vec![clone(Value::Null), then_attach], vec![src.clone()]),
            "changes[1].arn",
            "11 managed",
        );
        let then_tag = tag("copy", "extra", "v", "create");
        fails(
            run(vec![clone(Value::Null), then_tag], vec![src.clone()]),
            "changes[1].key",
            "51 tags",
        );
        let mut no_trust = src;
        no_trust.trust_policy = None;
        fails(
            run(vec![clone(Value::Null)], vec![no_trust]),
            "changes[0].copy_trust",
            "no trust policy",
        );
    }

    // ---------------------------------------------------------------- warnings

    fn warnings_for(doc: Value) -> Vec<Warning> {
        ok(run(vec![inline_attach("app", "p", doc)], vec![app()])).warnings
    }

    #[test]
    fn risky_grants_are_warned_about() {
        let w = warnings_for(allow(json!("*"), json!("*")));
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(w[0].change, 0);
        assert!(w[0].message.contains("full administrator"));
        assert!(
            w[0].message
                .starts_with("changes[0].policy.policy_document.Statement[0]")
        );
        assert!(
            warnings_for(allow(json!("*:*"), json!(["*"])))[0]
                .message
                .contains("full administrator")
        );
        let w = warnings_for(allow(json!("iam:PassRole"), json!("*")));
        assert!(
            w.len() == 1 && w[0].message.contains("privilege escalation"),
            "{w:#?}"
        );
        let w = warnings_for(allow(json!(["iam:*"]), json!("*")));
        assert!(
            w.iter().any(|w| w.message.contains("iam:PassRole"))
                && w.iter().any(|w| w.message.contains("`iam:*`")),
            "{w:#?}"
        );
        let w = warnings_for(allow(json!("sts:AssumeRole"), json!("*")));
        assert!(
            w.len() == 1 && w[0].message.contains("sts:AssumeRole"),
            "{w:#?}"
        );
        let w = warnings_for(allow(json!(["s3:*", "ec2:DescribeInstances"]), json!("*")));
        assert!(w.len() == 1 && w[0].message.contains("`s3:*`"), "{w:#?}");
        // Scoped or denied: no warning.
        assert!(warnings_for(allow(json!("s3:*"), json!("arn:aws:s3:::b/*"))).is_empty());
        assert!(warnings_for(allow(json!("iam:PassRole"), json!(role_arn("worker")))).is_empty());
        assert!(
            warnings_for(identity(
                json!({"Effect": "Deny", "Action": "*", "Resource": "*"})
            ))
            .is_empty()
        );
        assert!(warnings_for(allow(json!("ec2:Describe*"), json!("*"))).is_empty());
    }

    #[test]
    fn open_trust_policies_are_warned_about() {
        let trust_change = |p: Value, cond: Option<Value>| {
            let mut st = json!({"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"});
            if let Some(c) = cond {
                st["Condition"] = c;
            }
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                   "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [st]}}})
        };
        for p in [
            json!("*"),
            json!({"AWS": "*"}),
            json!({"AWS": ["123456789012", "*"]}),
        ] {
            let w = ok(run(vec![trust_change(p, None)], vec![app()])).warnings;
            assert!(
                w.len() == 1 && w[0].message.contains("anyone in any AWS account"),
                "{w:#?}"
            );
        }
        let cond = json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}});
        assert!(
            ok(run(vec![trust_change(json!("*"), Some(cond))], vec![app()]))
                .warnings
                .is_empty()
        );
        assert!(
            ok(run(
                vec![trust_change(json!({"AWS": ACCT}), None)],
                vec![app()]
            ))
            .warnings
            .is_empty()
        );
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "open",
            "policy": {"policy_document": {"Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}}}});
        let w = ok(run(
            vec![tag("app", "k", "v", "create"), create],
            vec![app()],
        ))
        .warnings;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].change, 1);
        assert!(
            w[0].message
                .starts_with("changes[1].policy.policy_document.Statement:")
        );
    }

    // ---------------------------------------------------------------- robustness

    fn deep(depth: usize, array: bool) -> Value {
        let mut v = json!("leaf");
        for _ in 0..depth {
            v = if array {
                json!([v])
            } else {
                json!({"Statement": [v], "Effect": "Allow"})
            };
        }
        v
    }

    #[test]
    fn odd_json_shapes_never_panic() {
        let odd = vec![
            Value::Null,
            json!(true),
            json!(0),
            json!(-1.5),
            json!(u64::MAX),
            json!(""),
            json!("x"),
            json!("*"),
            json!([]),
            json!({}),
            json!([null]),
            json!([[]]),
            json!({"": null}),
            json!([1, "a", {}]),
            json!({"Effect": "Allow"}),
            deep(300, true),
            deep(300, false),
        ];
        let templates = vec![
            inline_attach("app", "p", s3_read()),
            json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "read", "action": "detach"}),
            managed("app", "arn:aws:iam::aws:policy/ReadOnlyAccess", "detach"),
            json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "arn": "arn:aws:iam::aws:policy/X", "action": "attach"}),
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                   "policy": {"policy_document": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
                              "Condition": {"StringEquals": {"k": "v"}}}]}}}),
            tag("app", "team", "v", "update"),
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "n", "path": "/", "description": "d",
                   "policy": {"policy_document": trust()}, "clone_from": role_arn("app"), "copy_inline": true,
                   "inline_policies": [{"policy_name": "a", "policy_document": s3_read()}]}),
        ];
        let pointers = [
            "",
            "/change_type",
            "/principal",
            "/principal/principal_arn",
            "/principal/principal_type",
            "/policy_name",
            "/action",
            "/arn",
            "/policy",
            "/policy/policy_document",
            "/policy/policy_document/Version",
            "/policy/policy_document/Statement",
            "/policy/policy_document/Statement/0",
            "/policy/policy_document/Statement/0/Effect",
            "/policy/policy_document/Statement/0/Action",
            "/policy/policy_document/Statement/0/Resource",
            "/policy/policy_document/Statement/0/Principal",
            "/policy/policy_document/Statement/0/Principal/AWS",
            "/policy/policy_document/Statement/0/Condition",
            "/policy/policy_document/Statement/0/Condition/StringEquals",
            "/policy/policy_document/Statement/0/Condition/StringEquals/k",
            "/key",
            "/value",
            "/tag_action",
            "/account_id",
            "/role_name",
            "/path",
            "/description",
            "/inline_policies",
            "/inline_policies/0",
            "/inline_policies/0/policy_document",
            "/inline_policies/0/policy_document/Statement",
            "/clone_from",
            "/copy_inline",
            "/copy_trust",
        ];
        let lookup = |arn: &str| (arn == role_arn("app")).then(app);
        let limits = Limits::default();
        let mut runs = 0;
        for o in &odd {
            // The whole body, the changes wrapper, the list and a change.
            for body in [
                o.clone(),
                json!({"justification": o, "changes": o}),
                json!({"justification": "j", "admin_auto_approve": o, "changes": {"changes": o}}),
                body_of(vec![o.clone(), o.clone()]),
            ] {
                let _ = validate_request(&body, &lookup, &limits);
                runs += 1;
            }
            for kind in [DocKind::Identity, DocKind::Trust] {
                let _ = validate_policy_document(o, kind, "");
                let _ = policy_warnings(o, kind, "");
                let _ = validate_policy_document(&json!({"Statement": o}), kind, "");
                let _ = validate_policy_document(
                    &json!({"Statement": [{"Effect": "Allow", "Action": o, "Resource": o,
                    "Principal": o, "Condition": o, "Sid": o}]}),
                    kind,
                    "",
                );
            }
            for t in &templates {
                for p in pointers {
                    let mut change = t.clone();
                    match change.pointer_mut(p) {
                        Some(slot) => *slot = o.clone(),
                        None => continue,
                    }
                    let r =
                        validate_request(&body_of(vec![change.clone(), change]), &lookup, &limits);
                    if let Err(problems) = r {
                        assert!(problems.iter().all(|x| !x.message.is_empty()));
                    }
                    runs += 1;
                }
            }
        }
        assert!(runs > 1000, "{runs}");
        // A deep document is reported, not recursed into.
        let p = validate_policy_document(&deep(300, false), DocKind::Identity, "d");
        assert!(!p.is_empty());
    }
}
