//! How risky a change is: low, medium, high or critical, with every reason, computed from the
//! typed change (`src/requests/model.rs`) and a little of the installation (which accounts are
//! ours, which are sensitive, which tags grant credentials). Shown on the request page, in the
//! list and the API, matched by approval rules and by `policies.require_expiration`.
//!
//! The privilege-escalation actions are the known IAM escalation paths published by Rhino
//! Security Labs ("AWS IAM Privilege Escalation – Methods and Mitigation", 21 methods) and kept
//! current in Bishop Fox's `iam-vulnerable` and in `pmapper`'s escalation checks: a principal that
//! may call one of them can usually give itself more than it was granted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{AttachAction, BoundaryEdit, Change, CreateRoleChange, InlineEdit, TagEdit};
use crate::resources::model::action_matches;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Low, Level::Medium, Level::High, Level::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason, with the level it alone gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable name (`full_admin`, `privilege_escalation`, …), documented in the README.
    pub code: String,
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub level: Level,
    pub reasons: Vec<Reason>,
}

impl Risk {
    fn from_reasons(mut reasons: Vec<Reason>) -> Risk {
        reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
        reasons.dedup_by(|a, b| a.code == b.code && a.message == b.message);
        Risk {
            level: reasons.iter().map(|r| r.level).max().unwrap_or(Level::Low),
            reasons,
        }
    }
}

/// What the assessment knows of the installation.
pub struct Context<'a> {
    /// `account_ids_to_name`: the accounts that are ours.
    pub accounts: &'a BTreeMap<String, String>,
    /// Account ids or name globs whose changes are sensitive (`accounts.sensitive`).
    pub sensitive: &'a [String],
    /// Tag keys that grant credentials for a role (`cloud_credential_authorization_mapping`).
    pub entitlement_tags: Vec<String>,
    /// The document of a customer-managed policy, when synced.
    pub managed_document: &'a dyn Fn(&str) -> Option<Value>,
}

impl<'a> Context<'a> {
    pub fn of_config(
        config: &'a crate::config::Config,
        managed_document: &'a dyn Fn(&str) -> Option<Value>,
    ) -> Self {
        let tags = &config.cloud_credential_authorization_mapping.role_tags;
        Context {
            accounts: &config.account_ids_to_name,
            sensitive: &config.sensitive_accounts,
            entitlement_tags: tags
                .authorized_groups_tags
                .iter()
                .chain(&tags.authorized_groups_cli_only_tags)
                .cloned()
                .collect(),
            managed_document,
        }
    }

    /// Whether `account` is sensitive by id or by a glob on its name.
    pub fn is_sensitive(&self, account: &str) -> bool {
        let name = self.accounts.get(account).map(String::as_str).unwrap_or("");
        self.sensitive
            .iter()
            .any(|s| s == account || (!name.is_empty() && action_matches(s, name)))
    }
}

/// The known IAM privilege-escalation actions (see the module doc for the sources).
const ESCALATION: &[&str] = &[
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:PassRole",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AttachUserPolicy",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:PutUserPolicy",
    "iam:PutGroupPolicy",
    "iam:PutRolePolicy",
    "iam:AddUserToGroup",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreateRole",
    "lambda:UpdateFunctionCode",
    "lambda:CreateFunction",
    "glue:UpdateDevEndpoint",
    "glue:CreateDevEndpoint",
    "cloudformation:CreateStack",
    "datapipeline:CreatePipeline",
    "sts:AssumeRole",
];

/// AWS managed policies that are administrator access in all but name.
const ADMIN_MANAGED: &[(&str, Level)] = &[
    (
        "arn:aws:iam::aws:policy/AdministratorAccess",
        Level::Critical,
    ),
    ("arn:aws:iam::aws:policy/IAMFullAccess", Level::Critical),
    ("arn:aws:iam::aws:policy/PowerUserAccess", Level::High),
];

/// Condition keys whose literal values keep an open trust policy closed.
const CLOSING_KEYS: &[&str] = &[
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:sourceaccount",
    "aws:sourceorgid",
    "sts:externalid",
];

fn reason(code: &str, level: Level, message: impl Into<String>) -> Reason {
    Reason {
        code: code.into(),
        level,
        message: message.into(),
    }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(st @ Value::Object(_)) => vec![st],
        _ => vec![],
    }
}

fn wild(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'*' || b == b'?')
}

/// A resource pattern that matches any resource of its kind: `*`, or an ARN whose service,
/// region+account+name, or name is a wildcard (`arn:*:*:*:*:*`, `arn:aws:*:*:*:*/*`,
/// `arn:aws:s3:::*`, `arn:aws:iam::*:role/*`).
pub fn any_resource(r: &str) -> bool {
    if wild(r) {
        return true;
    }
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return false;
    }
    let (service, account, resource) = (parts[2], parts[4], parts[5]);
    let last = resource.rsplit(['/', ':']).next().unwrap_or(resource);
    wild(service) || wild(resource) || (wild(account) && wild(last))
}

/// A role pattern that names every role (of an account or of all): `*`, `arn:aws:iam::*:role/*`,
/// `arn:aws:iam::123456789012:role/*`.
fn any_role(r: &str) -> bool {
    if any_resource(r) {
        return true;
    }
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    parts.len() == 6
        && parts[2] == "iam"
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|rest| wild(rest.rsplit('/').next().unwrap_or(rest)))
}

const DESTRUCTIVE_VERBS: &[&str] = &["Delete", "Terminate", "Destroy", "Purge", "Remove"];

/// Actions a pattern reaches among `list` (`iam:*Policy*` reaches `iam:PutRolePolicy`, …).
fn reaches<'l>(pattern: &str, list: &[&'l str]) -> Vec<&'l str> {
    list.iter()
        .copied()
        .filter(|a| action_matches(pattern, a))
        .collect()
}

/// Reasons from a permissions (identity) document.
fn identity(doc: &Value, what: &str, out: &mut Vec<Reason>) {
    for st in statements(doc) {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        if st.get("NotAction").is_some() {
            out.push(reason(
                "not_action",
                Level::High,
                format!(
                    "{what}: Allow with NotAction grants every action of every service except \
                     those listed"
                ),
            ));
        }
        if st.get("NotResource").is_some() {
            out.push(reason(
                "not_resource",
                Level::High,
                format!(
                    "{what}: Allow with NotResource grants on every resource except those listed"
                ),
            ));
        }
        let actions = strings(st.get("Action"));
        let resources = strings(st.get("Resource"));
        let anywhere = resources.iter().any(|r| any_resource(r));
        let all_actions = actions.iter().any(|a| wild(a) || *a == "*:*");
        if all_actions && anywhere {
            out.push(reason(
                "full_admin",
                Level::Critical,
                format!("{what}: allows every action on every resource (full administrator)"),
            ));
            continue;
        }
        if all_actions {
            out.push(reason(
                "all_actions",
                Level::Medium,
                format!("{what}: allows every action on {}", resources.join(", ")),
            ));
        }
        // An escalation action counts where it can act: on any resource, or on a resource of
        // its own service (`*` on one S3 bucket reaches no IAM action).
        let applies = |action: &str| {
            let svc = action.split(':').next().unwrap_or_default();
            anywhere
                || resources
                    .iter()
                    .any(|r| r.split(':').nth(2).is_some_and(|rs| wild(rs) || rs == svc))
        };
        let mut escalation: Vec<&str> = actions
            .iter()
            .flat_map(|a| reaches(a, ESCALATION))
            .filter(|a| !matches!(*a, "iam:PassRole" | "sts:AssumeRole"))
            .filter(|a| applies(a))
            .collect();
        escalation.sort_unstable();
        escalation.dedup();
        if !escalation.is_empty() {
            let level = if anywhere {
                Level::Critical
            } else {
                Level::High
            };
            out.push(reason(
                "privilege_escalation",
                level,
                format!(
                    "{what}: allows {} — known ways to grant oneself more permissions",
                    escalation.join(", ")
                ),
            ));
        }
        for hop in ["iam:PassRole", "sts:AssumeRole"] {
            if actions.iter().any(|a| action_matches(a, hop))
                && resources.iter().any(|r| any_role(r))
            {
                out.push(reason(
                    "pass_or_assume_any_role",
                    Level::High,
                    format!(
                        "{what}: allows {hop} on every role ({}), admin roles included",
                        resources.join(", ")
                    ),
                ));
            }
        }
        if anywhere {
            for a in &actions {
                let (svc, name) = a.split_once(':').unwrap_or(("", a));
                if name == "*" && !svc.is_empty() && !wild(svc) {
                    out.push(reason(
                        "service_wildcard",
                        Level::Medium,
                        format!("{what}: `{a}` allows every action of {svc} on every resource"),
                    ));
                }
                let destructive = DESTRUCTIVE_VERBS
                    .iter()
                    .any(|v| action_matches(a, &format!("{svc}:{v}X")) || name.starts_with(v));
                if destructive && !svc.is_empty() {
                    out.push(reason(
                        "destructive_anywhere",
                        Level::High,
                        format!("{what}: `{a}` can delete or destroy on every resource"),
                    ));
                }
            }
        }
    }
}

/// The account an AWS principal names (`123456789012`, `arn:aws:iam::123456789012:…`), or `*`.
/// The `AWS` principals of a statement (`"*"` alone counts as one).
fn aws_principals(st: &Value) -> Vec<&str> {
    match st.get("Principal") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Object(m)) => strings(m.get("AWS")),
        _ => vec![],
    }
}

/// `*`, or an ARN of any account (`arn:aws:iam::*:root`).
fn anyone(p: &str) -> bool {
    wild(p) || principal_account(p).is_some_and(wild)
}

fn principal_account(p: &str) -> Option<&str> {
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Some(p);
    }
    p.strip_prefix("arn:")?.split(':').nth(3)
}

/// Whether a statement's Condition limits who may assume to a literal organisation, account or
/// external id (a wildcard value, a `Null` check or `aws:SecureTransport` close nothing).
fn closed_by_condition(st: &Value) -> bool {
    let Some(Value::Object(ops)) = st.get("Condition") else {
        return false;
    };
    ops.iter().any(|(op, keys)| {
        let op = op
            .trim_start_matches("ForAnyValue:")
            .trim_start_matches("ForAllValues:");
        let positive = matches!(
            op,
            "StringEquals" | "StringEqualsIgnoreCase" | "StringLike" | "ArnEquals" | "ArnLike"
        );
        positive
            && keys.as_object().is_some_and(|keys| {
                keys.iter().any(|(k, v)| {
                    CLOSING_KEYS.contains(&k.to_ascii_lowercase().as_str()) && {
                        let vals = strings(Some(v));
                        !vals.is_empty() && vals.iter().all(|s| !s.contains(['*', '?']))
                    }
                })
            })
    })
}

fn has_condition_key(st: &Value, suffixes: &[&str]) -> bool {
    let Some(Value::Object(ops)) = st.get("Condition") else {
        return false;
    };
    ops.iter()
        .filter(|(op, _)| !op.starts_with("Null"))
        .filter_map(|(_, keys)| keys.as_object())
        .flat_map(|keys| keys.keys())
        .any(|k| suffixes.iter().any(|s| k.to_ascii_lowercase().ends_with(s)))
}

/// Reasons from a trust (assume-role) policy.
fn trust(doc: &Value, what: &str, ctx: &Context<'_>, out: &mut Vec<Reason>) {
    for st in statements(doc) {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let principal = st.get("Principal");
        let aws = aws_principals(st);
        let closed = closed_by_condition(st);
        for p in &aws {
            let account = principal_account(p);
            if anyone(p) {
                if !closed {
                    out.push(reason(
                        "trust_anyone",
                        Level::Critical,
                        format!(
                            "{what}: `{p}` lets any AWS account assume the role, and no Condition \
                             limits it to your organisation or accounts"
                        ),
                    ));
                }
            } else if let Some(a) = account.filter(|a| !ctx.accounts.contains_key(*a)) {
                out.push(reason(
                    "trust_external_account",
                    Level::High,
                    format!("{what}: account {a} is not one of yours (account_ids_to_name)"),
                ));
            }
        }
        let federated = match principal {
            Some(Value::Object(m)) => strings(m.get("Federated")),
            _ => vec![],
        };
        let web_identity = strings(st.get("Action"))
            .iter()
            .any(|a| action_matches(a, "sts:AssumeRoleWithWebIdentity"));
        if !federated.is_empty() && web_identity && !has_condition_key(st, &[":sub", ":aud"]) {
            out.push(reason(
                "web_identity_unrestricted",
                Level::Critical,
                format!(
                    "{what}: web identity from {} without a condition on its `sub` or `aud`: \
                     any identity of that provider (e.g. every GitHub repository) may assume the \
                     role",
                    federated.join(", ")
                ),
            ));
        }
    }
}

/// A bucket, queue or topic policy: who it lets in. Public (`"*"` without a Condition that
/// closes it), outside your accounts, or another of your accounts.
fn resource_policy(doc: &Value, what: &str, own: &str, ctx: &Context<'_>, out: &mut Vec<Reason>) {
    for st in statements(doc) {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let aws = aws_principals(st);
        if st.get("NotPrincipal").is_some() {
            out.push(reason(
                "resource_public",
                Level::Critical,
                format!("{what}: Allow with NotPrincipal lets in everyone except those listed"),
            ));
        }
        let closed = closed_by_condition(st);
        for p in &aws {
            let account = principal_account(p);
            if anyone(p) {
                if !closed {
                    out.push(reason(
                        "resource_public",
                        Level::Critical,
                        format!(
                            "{what}: Principal `{p}` opens it to anyone, in any AWS account or \
                             none, and no Condition limits it"
                        ),
                    ));
                }
            } else if let Some(a) = account.filter(|a| !ctx.accounts.contains_key(*a)) {
                out.push(reason(
                    "resource_external_account",
                    Level::High,
                    format!("{what}: account {a} is not one of yours (account_ids_to_name)"),
                ));
            } else if let Some(a) = account.filter(|a| *a != own) {
                let name = ctx.accounts.get(a).map(String::as_str).unwrap_or("");
                out.push(reason(
                    "resource_cross_account",
                    Level::Medium,
                    format!("{what}: grants access to another of your accounts, {a} {name}"),
                ));
            }
        }
    }
}

fn resource_change(
    c: &super::resource_change::ResourceChange,
    ctx: &Context<'_>,
    out: &mut Vec<Reason>,
) {
    use super::resource_change::{PolicyStep, ResourceEdit};
    let what = format!("resource policy of {}", c.resource.label());
    match &c.edit {
        ResourceEdit::Policy(Some(doc)) => {
            resource_policy(doc.as_value(), &what, c.resource.account.as_str(), ctx, out)
        }
        ResourceEdit::Policy(None) => out.push(reason(
            "resource_policy_removed",
            Level::Medium,
            format!(
                "removes the {what}: every grant and every Deny in it goes (Deny statements often \
                 guard against public access or unencrypted uploads)"
            ),
        )),
        ResourceEdit::Tag { .. } => {}
        ResourceEdit::ManagedPolicy { document, step } => {
            let what = c.resource.label();
            identity(document.as_value(), &what, out);
            if let PolicyStep::Publish { .. } = step {
                out.push(reason(
                    "managed_policy_version",
                    Level::Medium,
                    format!(
                        "{what}: a new default version changes what every role and user it is \
                         attached to may do, at once"
                    ),
                ));
            }
        }
    }
}

fn managed(arn: &str, what: &str, ctx: &Context<'_>, out: &mut Vec<Reason>) {
    if let Some((_, level)) = ADMIN_MANAGED.iter().find(|(a, _)| *a == arn) {
        out.push(reason(
            "admin_managed_policy",
            *level,
            format!("{what}: {arn} is administrator access in all but name"),
        ));
    } else if let Some(doc) = (ctx.managed_document)(arn) {
        identity(&doc, what, out);
    }
}

fn entitlement(key: &str, value: &str, what: &str, ctx: &Context<'_>, out: &mut Vec<Reason>) {
    if ctx.entitlement_tags.iter().any(|t| t == key) {
        out.push(reason(
            "entitlement_tag",
            Level::High,
            format!(
                "{what}: tag `{key}` grants credentials for the role to `{value}` \
                 (cloud_credential_authorization_mapping)"
            ),
        ));
    }
}

fn new_role(c: &CreateRoleChange, ctx: &Context<'_>, out: &mut Vec<Reason>) {
    let name = c.role.name();
    if let Some(t) = c.trust_policy() {
        trust(
            t.as_value(),
            &format!("trust policy of new role {name}"),
            ctx,
            out,
        );
    }
    for p in c.all_inline_policies() {
        identity(
            p.policy_document.as_value(),
            &format!("inline policy {} of new role {name}", p.policy_name),
            out,
        );
    }
    for arn in c.managed_policies() {
        managed(arn.as_str(), &format!("new role {name}"), ctx, out);
    }
    for t in c.tags() {
        entitlement(&t.key, &t.value, &format!("new role {name}"), ctx, out);
    }
}

/// The risk of one change.
pub fn assess(change: &Change, ctx: &Context<'_>) -> Risk {
    let mut out = vec![];
    match change {
        Change::InlinePolicy(c) => match &c.edit {
            InlineEdit::Put(doc) => identity(
                doc.as_value(),
                &format!("inline policy {}", c.policy_name),
                &mut out,
            ),
            InlineEdit::Delete => {}
        },
        Change::ManagedPolicy(c) => {
            if c.action == AttachAction::Attach {
                managed(c.arn.as_str(), "managed policy", ctx, &mut out);
            }
        }
        Change::PermissionsBoundary(c) => {
            if let BoundaryEdit::Delete(_) = c.edit {
                out.push(reason(
                    "boundary_removed",
                    Level::Medium,
                    "removes the permissions boundary: the role's own policies then apply in full",
                ));
            }
        }
        Change::AssumeRolePolicy(c) => trust(c.document.as_value(), "trust policy", ctx, &mut out),
        Change::ResourceTag(c) => {
            if let TagEdit::Create(v) | TagEdit::Update(v) = &c.edit {
                entitlement(&c.key, v, "tag", ctx, &mut out);
            }
        }
        Change::CreateRole(c) => new_role(c, ctx, &mut out),
        Change::Resource(c) => resource_change(c, ctx, &mut out),
    }
    let account = change.target().account().as_str();
    if ctx.is_sensitive(account) {
        let name = ctx.accounts.get(account).map(String::as_str).unwrap_or("");
        out.push(reason(
            "sensitive_account",
            Level::High,
            format!("account {account} {name} is sensitive (accounts.sensitive)"),
        ));
    }
    let adds_access = matches!(
        change,
        Change::InlinePolicy(_) | Change::ManagedPolicy(_) | Change::ResourceTag(_)
    ) && change.grants();
    if adds_access && change.expires().is_none() {
        out.push(reason(
            "permanent",
            Level::Low,
            "a permanent grant: it stays until somebody removes it (set expiration_date)",
        ));
    }
    Risk::from_reasons(out)
}

/// The highest level of a request's changes.
pub fn request_level(changes: &super::model::ChangeList, ctx: &Context<'_>) -> Level {
    changes
        .iter()
        .map(|c| assess(c, ctx).level)
        .max()
        .unwrap_or(Level::Low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OURS: &str = "111111111111";

    fn change(v: Value) -> Change {
        let mut v = v;
        v["id"] = json!("c");
        match serde_json::from_value(v) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn principal() -> Value {
        json!({"principal_type": "AwsResource", "principal_arn": format!("arn:aws:iam::{OURS}:role/app")})
    }

    fn inline(statement: Value) -> Change {
        change(
            json!({"change_type": "inline_policy", "principal": principal(),
            "policy_name": "p", "action": "attach",
            "expiration_date": "2099-01-01T00:00:00Z",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [statement]}}}),
        )
    }

    fn allow(action: Value, resource: Value) -> Change {
        inline(json!({"Effect": "Allow", "Action": action, "Resource": resource}))
    }

    fn trusting(statement: Value) -> Change {
        change(
            json!({"change_type": "assume_role_policy", "principal": principal(),
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [statement]}}}),
        )
    }

    fn assess_with(c: &Change, sensitive: &[String]) -> Risk {
        let accounts = BTreeMap::from([(OURS.to_string(), "prod-payments".to_string())]);
        let docs = |arn: &str| {
            (arn == "arn:aws:iam::111111111111:policy/wide").then(
                || json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            )
        };
        let ctx = Context {
            accounts: &accounts,
            sensitive,
            entitlement_tags: vec!["consoleme-authorized".into()],
            managed_document: &docs,
        };
        assess(c, &ctx)
    }

    /// One row per reason: the change, the reason code it must give, the level that follows.
    #[test]
    fn every_reason_in_one_table() {
        let any_assume =
            || json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"});
        let rows: Vec<(&str, Change, &str, Level)> = vec![
            (
                "star on star",
                allow(json!("*"), json!("*")),
                "full_admin",
                Level::Critical,
            ),
            (
                "star on any-ARN",
                allow(json!("*"), json!("arn:*:*:*:*:*")),
                "full_admin",
                Level::Critical,
            ),
            (
                "star on any name",
                allow(json!("*:*"), json!("arn:aws:*:*:*:*/*")),
                "full_admin",
                Level::Critical,
            ),
            (
                "star on one bucket",
                allow(json!("*"), json!("arn:aws:s3:::b/*")),
                "all_actions",
                Level::Medium,
            ),
            (
                "NotAction",
                inline(json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})),
                "not_action",
                Level::High,
            ),
            (
                "NotResource",
                inline(
                    json!({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::x"}),
                ),
                "not_resource",
                Level::High,
            ),
            (
                "PassRole on every role",
                allow(json!("iam:PassRole"), json!("arn:aws:iam::*:role/*")),
                "pass_or_assume_any_role",
                Level::High,
            ),
            (
                "AssumeRole on every role",
                allow(
                    json!("sts:AssumeRole"),
                    json!("arn:aws:iam::111111111111:role/*"),
                ),
                "pass_or_assume_any_role",
                Level::High,
            ),
            (
                "iam:*Policy*",
                allow(json!("iam:*Policy*"), json!("*")),
                "privilege_escalation",
                Level::Critical,
            ),
            (
                "17 question marks",
                allow(json!("iam:?????????????????"), json!("*")),
                "privilege_escalation",
                Level::Critical,
            ),
            (
                "explicit AttachRolePolicy",
                allow(
                    json!("iam:AttachRolePolicy"),
                    json!("arn:aws:iam::111111111111:role/app"),
                ),
                "privilege_escalation",
                Level::High,
            ),
            (
                "explicit PutRolePolicy",
                allow(json!("iam:PutRolePolicy"), json!("*")),
                "privilege_escalation",
                Level::Critical,
            ),
            (
                "explicit CreateAccessKey",
                allow(json!("iam:CreateAccessKey"), json!("*")),
                "privilege_escalation",
                Level::Critical,
            ),
            (
                "delete everything",
                allow(json!("s3:DeleteObject"), json!("*")),
                "destructive_anywhere",
                Level::High,
            ),
            (
                "service wildcard (deletes too)",
                allow(json!("dynamodb:*"), json!("*")),
                "service_wildcard",
                Level::High,
            ),
            (
                "trust open to *",
                trusting(any_assume()),
                "trust_anyone",
                Level::Critical,
            ),
            (
                "trust open, SecureTransport",
                trusting(
                    json!({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}}}),
                ),
                "trust_anyone",
                Level::Critical,
            ),
            (
                "trust open, OrgID like *",
                trusting(
                    json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
                "Condition": {"StringLike": {"aws:PrincipalOrgID": "*"}}}),
                ),
                "trust_anyone",
                Level::Critical,
            ),
            (
                "trust open, Null check",
                trusting(
                    json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
                "Condition": {"Null": {"aws:PrincipalOrgID": "false"}}}),
                ),
                "trust_anyone",
                Level::Critical,
            ),
            (
                "trust any root",
                trusting(
                    json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::*:root"}, "Action": "sts:AssumeRole"}),
                ),
                "trust_anyone",
                Level::Critical,
            ),
            (
                "trust outside account",
                trusting(
                    json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}),
                ),
                "trust_external_account",
                Level::High,
            ),
            (
                "web identity, no sub",
                trusting(json!({"Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"},
                "Action": "sts:AssumeRoleWithWebIdentity"})),
                "web_identity_unrestricted",
                Level::Critical,
            ),
            (
                "entitlement tag",
                change(
                    json!({"change_type": "resource_tag", "principal": principal(),
                "key": "consoleme-authorized", "value": "mallory@example.com", "tag_action": "create",
                "expiration_date": "2099-01-01T00:00:00Z"}),
                ),
                "entitlement_tag",
                Level::High,
            ),
            (
                "AdministratorAccess",
                change(
                    json!({"change_type": "managed_policy", "principal": principal(),
                "arn": "arn:aws:iam::aws:policy/AdministratorAccess", "action": "attach"}),
                ),
                "admin_managed_policy",
                Level::Critical,
            ),
            (
                "a wide customer policy",
                change(
                    json!({"change_type": "managed_policy", "principal": principal(),
                "arn": "arn:aws:iam::111111111111:policy/wide", "action": "attach"}),
                ),
                "full_admin",
                Level::Critical,
            ),
            (
                "boundary removed",
                change(
                    json!({"change_type": "permissions_boundary", "principal": principal(),
                "action": "detach"}),
                ),
                "boundary_removed",
                Level::Medium,
            ),
            (
                "permanent grant",
                change(
                    json!({"change_type": "inline_policy", "principal": principal(),
                "policy_name": "p", "action": "attach", "policy": {"policy_document": {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}}}),
                ),
                "permanent",
                Level::Low,
            ),
        ];
        for (name, c, code, level) in rows {
            let risk = assess_with(&c, &[]);
            assert!(
                risk.reasons.iter().any(|r| r.code == code),
                "{name}: no `{code}` in {risk:#?}"
            );
            assert_eq!(risk.level, level, "{name}: {risk:#?}");
        }
    }

    #[test]
    fn what_is_not_risky_says_so() {
        let narrow = allow(json!(["s3:GetObject"]), json!("arn:aws:s3:::reports/*"));
        let risk = assess_with(&narrow, &[]);
        assert_eq!(risk.level, Level::Low);
        assert!(risk.reasons.is_empty(), "{risk:#?}");
        let closed = trusting(
            json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}}),
        );
        assert_eq!(assess_with(&closed, &[]).level, Level::Low);
        let github = trusting(json!({"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/app:*"}}}));
        assert_eq!(assess_with(&github, &[]).level, Level::Low);
        let ours = trusting(
            json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
            "Action": "sts:AssumeRole"}),
        );
        assert_eq!(assess_with(&ours, &[]).level, Level::Low);
    }

    #[test]
    fn sensitive_accounts_by_id_or_name_glob() {
        let narrow = allow(json!(["s3:GetObject"]), json!("arn:aws:s3:::reports/*"));
        for s in [OURS, "prod-*"] {
            let risk = assess_with(&narrow, &[s.to_string()]);
            assert_eq!(risk.level, Level::High, "{s}");
            assert_eq!(risk.reasons[0].code, "sensitive_account");
        }
        assert_eq!(assess_with(&narrow, &["dev-*".into()]).level, Level::Low);
    }
    fn bucket_policy(statement: Value) -> Change {
        change(json!({"change_type": "resource_policy", "account_id": OURS,
            "principal": {"principal_type": "AwsResource", "principal_arn": "arn:aws:s3:::reports"},
            "arn": "arn:aws:s3:::reports", "region": "us-east-1",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [statement]}}}))
    }

    /// The resource-policy rows of the risk table (issue 14), with a second account of ours.
    #[test]
    fn resource_policy_reasons() {
        let accounts = BTreeMap::from([
            (OURS.to_string(), "prod-payments".to_string()),
            ("222222222222".to_string(), "analytics".to_string()),
        ]);
        let docs = |_: &str| None;
        let ctx = Context {
            accounts: &accounts,
            sensitive: &[],
            entitlement_tags: vec![],
            managed_document: &docs,
        };
        let grant = |principal: Value, condition: Option<Value>| {
            let mut st = json!({"Effect": "Allow", "Principal": principal,
                                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"});
            if let Some(c) = condition {
                st["Condition"] = c;
            }
            bucket_policy(st)
        };
        let org = json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}});
        let rows: Vec<(&str, Change, Option<&str>, Level)> = vec![
            (
                "public",
                grant(json!("*"), None),
                Some("resource_public"),
                Level::Critical,
            ),
            (
                "public AWS",
                grant(json!({"AWS": "*"}), None),
                Some("resource_public"),
                Level::Critical,
            ),
            (
                "public in the org",
                grant(json!("*"), Some(org)),
                None,
                Level::Low,
            ),
            (
                "outside",
                grant(json!({"AWS": "arn:aws:iam::999999999999:root"}), None),
                Some("resource_external_account"),
                Level::High,
            ),
            (
                "another of ours",
                grant(json!({"AWS": "arn:aws:iam::222222222222:role/etl"}), None),
                Some("resource_cross_account"),
                Level::Medium,
            ),
            (
                "same account",
                grant(
                    json!({"AWS": format!("arn:aws:iam::{OURS}:role/app")}),
                    None,
                ),
                None,
                Level::Low,
            ),
            (
                "removed",
                change(json!({"change_type": "resource_policy", "account_id": OURS,
                    "principal": {"principal_type": "AwsResource",
                                  "principal_arn": "arn:aws:s3:::reports"},
                    "arn": "arn:aws:s3:::reports", "action": "detach"})),
                Some("resource_policy_removed"),
                Level::Medium,
            ),
        ];
        for (name, c, code, level) in rows {
            let risk = assess(&c, &ctx);
            if let Some(code) = code {
                assert!(
                    risk.reasons.iter().any(|r| r.code == code),
                    "{name}: no `{code}` in {risk:#?}"
                );
            }
            assert_eq!(risk.level, level, "{name}: {risk:#?}");
        }
    }
}
