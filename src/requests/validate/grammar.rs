//! The grammar of IAM policy documents (identity and trust policies) and the risky-but-legal
//! grants reviewers are warned about. Pure: a document in, problems and warnings out.

use serde_json::{Map, Value};

use super::names::{TRUST_POLICY_CHARS, at, doc_chars, is_account_id, join, type_name};
use super::{DocKind, Problem};
use crate::resources::model::action_matches;
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
    "Condition",
];
const RESOURCE_STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Principal",
    "NotPrincipal",
    "Resource",
    "NotResource",
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

pub(super) fn unknown_key(what: &str, key: &str, allowed: &[&str]) -> String {
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
        DocKind::Resource => RESOURCE_STATEMENT_KEYS,
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
            (DocKind::Trust, "NotPrincipal") => "NotPrincipal is refused in a trust policy: with \
                 Allow it lets every principal in the world assume the role except those listed. \
                 Name who may assume it with Principal"
                .to_string(),
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
            match st.get("Principal") {
                Some(v) => check_principal(v, &join(field, "Principal"), out),
                None if st.contains_key("NotPrincipal") => {} // refused above
                None => out.push(Problem::new(
                    join(field, "Principal"),
                    "Principal is required in every statement of a trust policy",
                )),
            }
        }
        DocKind::Resource => {
            if let Some((key, v)) = exactly_one(st, "Principal", "NotPrincipal", field, out) {
                check_principal(v, &join(field, key), out);
            }
            if let Some((key, v)) = exactly_one(st, "Resource", "NotResource", field, out) {
                check_strings(v, &join(field, key), "resource", resource_problem, out);
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
    if !ok {
        return Some(format!(
            "action `{a}` must be \"*\" or service:Action with a lower-case service prefix \
             (e.g. s3:GetObject, ec2:Describe*)"
        ));
    }
    // An unknown service is an error, an unknown action a warning (src/iam_actions.rs says why).
    match crate::iam_actions::check(a) {
        crate::iam_actions::Verdict::UnknownService(near) => Some(format!(
            "`{a}`: there is no AWS service `{}`{}",
            a.split(':').next().unwrap_or_default(),
            match crate::iam_actions::did_you_mean(&near) {
                d if d.is_empty() => String::new(),
                d => format!("; {d}"),
            }
        )),
        _ => None,
    }
}

/// Warnings for actions the list of known IAM actions lacks (`src/iam_actions.rs`).
fn unknown_action_warnings(st: &Value, sf: &str, out: &mut Vec<String>) {
    use crate::iam_actions::{Verdict, check, did_you_mean};
    for a in strings_of(st.get("Action"))
        .into_iter()
        .chain(strings_of(st.get("NotAction")))
    {
        match check(a) {
            Verdict::UnknownAction(near) => {
                let hint = match did_you_mean(&near) {
                    d if d.is_empty() => String::new(),
                    d => format!(": {d}"),
                };
                out.push(format!(
                    "{sf}: `{a}` is not a known action of its service{hint} (a misspelled action \
                     grants nothing; newer actions than iamdesk's list are fine)"
                ));
            }
            Verdict::MatchesNothing => out.push(format!(
                "{sf}: `{a}` matches none of its service's known actions"
            )),
            _ => {}
        }
    }
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

/// Whether a statement's Principal is everyone (`"*"` or `{"AWS": "*"}`).
pub(crate) fn open_principal(st: &Value) -> bool {
    match st.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(p @ Value::Object(_)) => strings_of(p.get("AWS")).contains(&"*"),
        _ => false,
    }
}

/// What a resource policy may name as its Resource: the resource itself, and for a bucket its
/// objects (`arn:aws:s3:::bucket/...`). S3 and SNS refuse policies about other resources
/// ("Each policy must cover only a single bucket and resources within that bucket", Amazon S3
/// policy restrictions; "The value must match the ARN of the policy's topic", SNS policy quotas),
/// and the service's size limit (`src/requests/resource_change.rs`).
pub(crate) fn resource_policy_problems(
    doc: &Value,
    resource: &crate::requests::resource_change::ResourceRef,
    field: &str,
) -> Vec<Problem> {
    use crate::resources::model::ResourceKind;
    let mut out = Vec::new();
    let arn = resource.arn();
    let inside = |r: &str| match resource.kind {
        ResourceKind::S3 => {
            r == arn
                || r.strip_prefix(arn.as_str())
                    .is_some_and(|t| t.starts_with('/'))
        }
        _ => r == arn,
    };
    for (sf, st) in statements(doc, field) {
        for key in ["Resource", "NotResource"] {
            let rf = join(&sf, key);
            for r in strings_of(st.get(key)) {
                if !inside(r) {
                    let allowed = if resource.kind == ResourceKind::S3 {
                        format!("{arn} or {arn}/<key or prefix>")
                    } else {
                        arn.clone()
                    };
                    out.push(Problem::new(
                        &rf,
                        format!(
                            "`{r}` is not inside {}; a resource policy may only name {allowed}",
                            resource.label()
                        ),
                    ));
                }
            }
        }
    }
    if let Some((limit, words)) = resource.policy_limit() {
        let n = serde_json::to_string(doc).map_or(0, |s| s.len());
        if n > limit {
            out.push(Problem::new(
                field,
                format!(
                    "the policy is {n} bytes; AWS refuses more than {limit} ({words}). Merge \
                     statements or list principals by account"
                ),
            ));
        }
    }
    out
}

/// Risky but legal grants in a document: one message per risk per statement. `field` is the
/// document's path, used to say which statement.
pub fn policy_warnings(doc: &Value, kind: DocKind, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (sf, st) in statements(doc, field) {
        unknown_action_warnings(st, &sf, &mut out);
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
            DocKind::Resource => {
                if open_principal(st) && st.get("Condition").is_none() {
                    out.push(format!(
                        "{sf}: Principal \"*\" without a Condition opens this resource to \
                         anyone, in any AWS account or none; name the accounts or roles, or add \
                         a Condition such as aws:PrincipalOrgID"
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

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::super::names::*;
    use super::super::test_support::*;
    use super::super::*;
    #[allow(unused_imports)]
    use crate::requests::model::*;
    #[allow(unused_imports)]
    use crate::resources::model::{AttachedPolicy, InlinePolicy, Principal, ResourceKind, Tag};
    #[allow(unused_imports)]
    use serde_json::{Value, json};

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
        doc_fails(
            both,
            T,
            "doc.Statement[0].NotPrincipal",
            "refused in a trust policy",
        );
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
}
