//! Names, ARNs and paths as IAM accepts them, and the AWS limits on them. Pure functions; the
//! domain newtypes of `src/requests/model.rs` parse through these.

use serde_json::Value;

use crate::resources::model::ResourceKind;

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
pub const ROLE_NAME_CHARS: usize = 64;
pub const POLICY_NAME_CHARS: usize = 128;
pub const PATH_CHARS: usize = 512;
pub const DESCRIPTION_CHARS: usize = 1000;

// Field paths and JSON

pub fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

pub fn at(field: &str, i: usize) -> String {
    format!("{field}[{i}]")
}

pub fn type_name(v: &Value) -> &'static str {
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
pub fn doc_chars(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.chars().count())
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A character IAM allows in role, policy and session names: `[\w+=,.@-]`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// IAM role, user and policy names: `[\w+=,.@-]{1,max}`.
pub fn name_problem(name: &str, what: &str, max: usize) -> Option<String> {
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
pub fn path_problem(path: &str) -> Option<String> {
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

/// `arn:aws:iam::<12 digits>:role/<path/>name` (or `:user/`) → (account, kind, path, name).
pub fn parse_principal_arn(arn: &str) -> Result<(String, ResourceKind, String, &str), String> {
    let shape = "principal_arn must look like arn:aws:iam::123456789012:role/<path/>name";
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
    Ok((account.to_string(), kind, path, name))
}

/// `a/b/name` → (`/a/b/`, `name`); `name` → (`/`, `name`).
pub fn split_path_name(s: &str) -> (String, &str) {
    match s.rfind('/') {
        Some(i) => (format!("/{}", &s[..=i]), &s[i + 1..]),
        None => ("/".to_string(), s),
    }
}

/// `arn:aws:iam::(aws|<12 digits>):policy/<path/>name` → the owner (`aws` or the account).
pub fn parse_policy_arn(arn: &str) -> Result<String, String> {
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

pub fn tag_text_problem(s: &str, what: &str) -> Option<String> {
    s.chars()
        .find(|&c| !(c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)))
        .map(|c| format!("{what} contains `{c}`; tags allow letters, digits, spaces and _.:/=+-@"))
}

// ---------------------------------------------------------------------------------------------
// Policy grammar
