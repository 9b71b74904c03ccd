//! What a role never uses, decided from its policies and its usage: pure functions, no I/O.
//!
//! Everything is judged per **service** first: a role's policies
//! allow a set of services (wildcards in the service part, `*` included, expanded over the
//! action catalogue `src/iam_actions.rs`), and each allowed service is
//!
//! - *used*: authenticated to within `rightsize.unused_days`, or seen in the role's own
//!   CloudTrail calls within that time;
//! - *kept*: named in `rightsize.keep` (a service, or an action of it);
//! - *recent*: granted by an approved iamdesk request less than `unused_days` ago (it has not
//!   had the time to be used);
//! - *untracked*: Access Advisor said nothing about it, so there is no evidence either way;
//! - otherwise *unused*, and proposed for removal.
//!
//! **Actions.** For a *used* service that Access Advisor tracks at action level (its
//! `TrackedActionsLastAccessed`), each tracked action not used within `unused_days` (and not
//! kept by a `rightsize.keep` entry naming it, nor granted recently with its service) is
//! removed from the inline policies' `Action` lists. A wildcard of such a service
//! (`s3:Put*`) reaching a removed action is expanded over the action catalogue
//! (`src/iam_actions.rs`) into the actions it keeps when that list is at most
//! [`MAX_EXPANSION`] long (a note says so in the evidence); otherwise the wildcard stays, also
//! with a note. Actions AWS does not track are never removed. Managed policies are judged per
//! service only.
//!
//! Removal rewrites each inline policy without the unused services' grants (`Deny` and
//! `NotAction` statements are left exactly as they are) and detaches customer-managed policies
//! that grant only unused services. A managed policy that also grants used services is shared
//! by other roles and cannot be rewritten for one: its unused services are reported, not removed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::cloud::ServiceAccess;
use crate::iam_actions;
use crate::resources::model::{Principal, action_matches};

/// How far back AWS's Access Advisor tracks (days).
pub const TRACKING_DAYS: i64 = 400;

/// The statements of a policy document, whether `Statement` is a list or one object.
fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => vec![],
    }
}

fn is_allow(statement: &Value) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

fn action_entries(statement: &Value) -> Vec<&str> {
    match statement.get("Action") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// `(service pattern, action pattern)` of one `Action` entry; `*` is `("*", "*")`.
fn split(entry: &str) -> (String, &str) {
    match entry.split_once(':') {
        Some((service, action)) => (service.to_ascii_lowercase(), action),
        None => (entry.to_ascii_lowercase(), "*"),
    }
}

fn is_pattern(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

/// The services one `Action` entry reaches.
fn services_of_entry(entry: &str, catalogue: &[&str]) -> Vec<String> {
    let (service, _) = split(entry);
    if is_pattern(&service) {
        catalogue
            .iter()
            .filter(|s| action_matches(&service, s))
            .map(|s| s.to_string())
            .collect()
    } else {
        vec![service]
    }
}

/// The services a policy document allows (through `Allow` + `Action`).
pub fn allowed_services(doc: &Value, catalogue: &[&str]) -> BTreeSet<String> {
    statements(doc)
        .into_iter()
        .filter(|s| is_allow(s))
        .flat_map(action_entries)
        .flat_map(|e| services_of_entry(e, catalogue))
        .collect()
}

/// The document without any grant of the `remove` services; `None` when no statement is left
/// (the policy should be deleted). A wildcard service part is expanded into the services it
/// keeps (`*` becomes `s3:*`, `ec2:*`, ... without the removed ones).
pub fn without_services(
    doc: &Value,
    remove: &BTreeSet<String>,
    catalogue: &[&str],
) -> Option<Value> {
    let mut kept_statements = Vec::new();
    for statement in statements(doc) {
        if !is_allow(statement) || statement.get("Action").is_none() {
            kept_statements.push(statement.clone());
            continue;
        }
        let mut entries: Vec<String> = Vec::new();
        for entry in action_entries(statement) {
            let (service, action) = split(entry);
            if is_pattern(&service) {
                let reached = services_of_entry(entry, catalogue);
                if reached.iter().any(|s| remove.contains(s)) {
                    entries.extend(
                        reached
                            .into_iter()
                            .filter(|s| !remove.contains(s))
                            .map(|s| format!("{s}:{action}")),
                    );
                } else {
                    entries.push(entry.to_string());
                }
            } else if !remove.contains(&service) {
                entries.push(entry.to_string());
            }
        }
        if entries.is_empty() {
            continue;
        }
        let mut rewritten = statement.clone();
        rewritten["Action"] = match (&statement["Action"], entries.as_slice()) {
            (Value::String(_), [one]) => Value::String(one.clone()),
            _ => Value::from(entries),
        };
        kept_statements.push(rewritten);
    }
    if kept_statements.is_empty() {
        return None;
    }
    let mut out = doc.clone();
    out["Statement"] = Value::from(kept_statements);
    Some(out)
}

/// Longest list of actions a wildcard is expanded into when some of its actions are removed.
pub const MAX_EXPANSION: usize = 60;

/// What [`without_actions`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRewrite {
    /// The rewritten document; `None` when no statement is left.
    pub document: Option<Value>,
    /// The actions taken away (`s3:PutObject`).
    pub removed: BTreeSet<String>,
    /// Wildcards expanded, or kept because expanding them was too long.
    pub notes: Vec<String>,
}

/// The document without the `remove` actions (service → lower-case action names). Statements
/// that grant none of them are left exactly as they are; see the module doc for wildcards.
pub fn without_actions(doc: &Value, remove: &BTreeMap<String, BTreeSet<String>>) -> ActionRewrite {
    let mut kept_statements = Vec::new();
    let mut removed = BTreeSet::new();
    let mut notes = Vec::new();
    for statement in statements(doc) {
        if !is_allow(statement) || statement.get("Action").is_none() {
            kept_statements.push(statement.clone());
            continue;
        }
        let mut entries: Vec<String> = Vec::new();
        let mut changed = false;
        for entry in action_entries(statement) {
            let (service, action) = split(entry);
            let Some(gone) = remove.get(&service) else {
                entries.push(entry.to_string());
                continue;
            };
            if is_pattern(action) {
                let reached: Vec<&str> = iam_actions::actions_of(&service)
                    .into_iter()
                    .filter(|a| action_matches(action, a))
                    .collect();
                let (dropped, left): (Vec<&str>, Vec<&str>) = reached
                    .into_iter()
                    .partition(|a| gone.contains(&a.to_ascii_lowercase()));
                if dropped.is_empty() {
                    entries.push(entry.to_string());
                    continue;
                }
                let dropped: Vec<String> =
                    dropped.iter().map(|a| format!("{service}:{a}")).collect();
                if left.len() > MAX_EXPANSION {
                    notes.push(format!(
                        "{entry} stays as it is although it reaches unused {}: without them it \
                         would be {} actions, too many to list.",
                        dropped.join(", "),
                        left.len()
                    ));
                    entries.push(entry.to_string());
                    continue;
                }
                notes.push(format!(
                    "{entry} is replaced by the {} actions of it that iamdesk's action list \
                     knows, without {}: Access Advisor tracks {service} at action level.",
                    left.len(),
                    dropped.join(", ")
                ));
                changed = true;
                removed.extend(dropped);
                entries.extend(left.into_iter().map(|a| format!("{service}:{a}")));
            } else if gone.contains(&action.to_ascii_lowercase()) {
                changed = true;
                removed.insert(format!("{service}:{action}"));
            } else {
                entries.push(entry.to_string());
            }
        }
        if !changed {
            kept_statements.push(statement.clone());
            continue;
        }
        if entries.is_empty() {
            continue;
        }
        let mut rewritten = statement.clone();
        rewritten["Action"] = match (&statement["Action"], entries.as_slice()) {
            (Value::String(_), [one]) => Value::String(one.clone()),
            _ => Value::from(entries),
        };
        kept_statements.push(rewritten);
    }
    let document = (!kept_statements.is_empty()).then(|| {
        let mut out = doc.clone();
        out["Statement"] = Value::from(kept_statements);
        out
    });
    ActionRewrite {
        document,
        removed,
        notes,
    }
}

/// Whether a `rightsize.keep` entry protects one action: `s3`, `s3:*`, `s3:Put*`,
/// `s3:PutObject` all keep `s3:PutObject`.
pub fn kept_action(keep: &[String], service: &str, action: &str) -> bool {
    keep.iter().any(|k| {
        let (ks, ka) = split(k.trim());
        action_matches(&ks, service) && action_matches(ka, action)
    })
}

/// Whether a `rightsize.keep` entry protects `service`: `sqs`, `sqs:*`, `sqs:SendMessage`
/// (for a service unused as a whole, keeping one of its actions keeps the service).
pub fn kept(keep: &[String], service: &str) -> bool {
    keep.iter()
        .any(|k| action_matches(&split(k.trim()).0, service))
}

/// What right-sizing knows of a service of the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Used,
    Unused,
    Kept,
    Recent,
    Untracked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Used => "used",
            Verdict::Unused => "unused",
            Verdict::Kept => "kept",
            Verdict::Recent => "granted recently",
            Verdict::Untracked => "not tracked",
        }
    }
}

/// One allowed service of the role.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    pub namespace: String,
    pub verdict: Verdict,
    /// Last authentication Access Advisor reported.
    pub last_authenticated: Option<DateTime<Utc>>,
    /// The role's own calls the events consumer counted within the window.
    pub cloudtrail_calls: u64,
    /// When iamdesk granted it (for `Recent`).
    pub granted_at: Option<DateTime<Utc>>,
    /// The policies (inline names, managed ARNs) that allow it.
    pub granted_by: Vec<String>,
    /// Of a used service tracked at action level: allowed actions unused for the period,
    /// which the proposal removes (`s3:PutObject`).
    pub unused_actions: Vec<String>,
}

/// A managed policy attached to the role, with its document when iamdesk syncs it
/// (customer-managed); AWS-managed policies have none and are not analysed.
#[derive(Debug, Clone)]
pub struct Attached {
    pub arn: String,
    pub document: Option<Value>,
}

/// Everything the analysis reads.
pub struct Inputs<'a> {
    pub role: &'a Principal,
    pub managed: Vec<Attached>,
    /// Access Advisor's report, `None` when there is none yet.
    pub usage: Option<&'a [ServiceAccess]>,
    /// Calls per service seen in the role's own CloudTrail events within the window.
    pub cloudtrail: BTreeMap<String, u64>,
    /// Service → when an approved iamdesk request last granted it.
    pub granted: BTreeMap<String, DateTime<Utc>>,
    pub keep: &'a [String],
    pub unused_days: i64,
    pub now: DateTime<Utc>,
}

/// One change of a proposal, before it becomes a request draft.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Removal {
    /// Replace the inline policy with `document` (`previous` is pinned for rollback).
    RewriteInline {
        policy_name: String,
        document: Value,
        previous: Value,
    },
    /// Delete the inline policy: it granted only unused services.
    DeleteInline {
        policy_name: String,
        previous: Value,
    },
    /// Detach the customer-managed policy: it grants only unused services.
    DetachManaged { arn: String },
}

/// The analysis of one role.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub services: Vec<ServiceRow>,
    /// Unused services the proposal removes.
    pub removable: Vec<String>,
    /// Unused actions of used services the proposal removes (`s3:PutObject`).
    pub removable_actions: Vec<String>,
    pub removals: Vec<Removal>,
    /// Why some unused services stay (shared managed policies) and what was not analysed.
    pub notes: Vec<String>,
}

/// Decide what is unused and how to remove it.
pub fn analyse(input: &Inputs<'_>, catalogue: &[&str]) -> Analysis {
    let (services, mut notes) = verdicts(input, catalogue);
    let unused: BTreeSet<String> = services
        .iter()
        .filter(|s| s.verdict == Verdict::Unused)
        .map(|s| s.namespace.clone())
        .collect();
    let candidates = unused_actions(input, &services);
    let (removals, removable, removable_actions) =
        removals(input, &unused, &candidates, &mut notes, catalogue);
    let mut services = services;
    for row in &mut services {
        let prefix = format!("{}:", row.namespace);
        row.unused_actions = removable_actions
            .iter()
            .filter(|a| a.to_ascii_lowercase().starts_with(&prefix))
            .cloned()
            .collect();
    }
    Analysis {
        services,
        removable,
        removable_actions,
        removals,
        notes,
    }
}

/// Of each used service tracked at action level, the tracked actions unused for the period and
/// not kept (service → lower-case action names). A service used only according to CloudTrail
/// (per service, not per action) or granted recently is left out.
fn unused_actions(input: &Inputs<'_>, rows: &[ServiceRow]) -> BTreeMap<String, BTreeSet<String>> {
    let cutoff = input.now - Duration::days(input.unused_days);
    let mut out = BTreeMap::new();
    for row in rows {
        if row.verdict != Verdict::Used
            || row.last_authenticated.is_none_or(|t| t < cutoff)
            || row.granted_at.is_some_and(|t| t >= cutoff)
        {
            continue;
        }
        let Some(access) = input
            .usage
            .unwrap_or_default()
            .iter()
            .find(|s| s.namespace == row.namespace)
        else {
            continue;
        };
        let gone: BTreeSet<String> = access
            .tracked_actions
            .iter()
            .filter(|a| a.last_accessed.is_none_or(|t| t < cutoff))
            .filter(|a| !kept_action(input.keep, &row.namespace, &a.action))
            .map(|a| a.action.to_ascii_lowercase())
            .collect();
        if !gone.is_empty() {
            out.insert(row.namespace.clone(), gone);
        }
    }
    out
}

/// Every service the role's policies allow, with its verdict; notes on what was not analysed.
fn verdicts(input: &Inputs<'_>, catalogue: &[&str]) -> (Vec<ServiceRow>, Vec<String>) {
    let cutoff = input.now - Duration::days(input.unused_days);
    let mut granted_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &input.role.inline_policies {
        for s in allowed_services(&p.document, catalogue) {
            granted_by.entry(s).or_default().push(p.name.clone());
        }
    }
    let mut notes = Vec::new();
    for m in &input.managed {
        match &m.document {
            Some(doc) => {
                for s in allowed_services(doc, catalogue) {
                    granted_by.entry(s).or_default().push(m.arn.clone());
                }
            }
            None => notes.push(format!(
                "{} is AWS managed: its permissions are not analysed and it stays attached.",
                m.arn
            )),
        }
    }
    let reported: BTreeMap<&str, Option<DateTime<Utc>>> = input
        .usage
        .unwrap_or_default()
        .iter()
        .map(|s| (s.namespace.as_str(), s.last_authenticated))
        .collect();
    let rows = granted_by
        .into_iter()
        .map(|(namespace, by)| {
            let last = reported.get(namespace.as_str()).copied().flatten();
            let calls = input.cloudtrail.get(&namespace).copied().unwrap_or(0);
            let granted_at = input.granted.get(&namespace).copied();
            let verdict = if last.is_some_and(|t| t >= cutoff) || calls > 0 {
                Verdict::Used
            } else if kept(input.keep, &namespace) {
                Verdict::Kept
            } else if granted_at.is_some_and(|t| t >= cutoff) {
                Verdict::Recent
            } else if input.usage.is_none() || !reported.contains_key(namespace.as_str()) {
                Verdict::Untracked
            } else {
                Verdict::Unused
            };
            ServiceRow {
                namespace,
                verdict,
                last_authenticated: last,
                cloudtrail_calls: calls,
                granted_at,
                granted_by: by,
                unused_actions: vec![],
            }
        })
        .collect();
    (rows, notes)
}

/// The changes that take the `unused` services and the `actions` away, the services they
/// really remove (a service still granted by a managed policy that stays is not removed) and
/// the actions they remove.
fn removals(
    input: &Inputs<'_>,
    unused: &BTreeSet<String>,
    actions: &BTreeMap<String, BTreeSet<String>>,
    notes: &mut Vec<String>,
    catalogue: &[&str],
) -> (Vec<Removal>, Vec<String>, Vec<String>) {
    let mut removals = Vec::new();
    let mut removable = BTreeSet::new();
    let mut removable_actions = BTreeSet::new();
    if unused.is_empty() && actions.is_empty() {
        return (removals, vec![], vec![]);
    }
    for p in &input.role.inline_policies {
        let hit: Vec<String> = allowed_services(&p.document, catalogue)
            .intersection(unused)
            .cloned()
            .collect();
        let without = if hit.is_empty() {
            Some(p.document.clone())
        } else {
            without_services(&p.document, unused, catalogue)
        };
        let rewrite = match &without {
            Some(doc) if !actions.is_empty() => without_actions(doc, actions),
            _ => ActionRewrite {
                document: without,
                removed: BTreeSet::new(),
                notes: vec![],
            },
        };
        if hit.is_empty() && rewrite.removed.is_empty() {
            notes.extend(rewrite.notes);
            continue;
        }
        removable.extend(hit);
        removable_actions.extend(rewrite.removed);
        notes.extend(rewrite.notes);
        removals.push(match rewrite.document {
            Some(document) => Removal::RewriteInline {
                policy_name: p.name.clone(),
                document,
                previous: p.document.clone(),
            },
            None => Removal::DeleteInline {
                policy_name: p.name.clone(),
                previous: p.document.clone(),
            },
        });
    }
    let mut still = BTreeSet::new();
    for m in &input.managed {
        let Some(doc) = &m.document else { continue };
        let allows = allowed_services(doc, catalogue);
        let hit: Vec<String> = allows.intersection(unused).cloned().collect();
        if !hit.is_empty() && hit.len() == allows.len() {
            removable.extend(hit);
            removals.push(Removal::DetachManaged { arn: m.arn.clone() });
            continue;
        }
        if !hit.is_empty() {
            notes.push(format!(
                "{} also grants services the role uses; a managed policy is shared, so it stays \
                 (unused through it: {}).",
                m.arn,
                hit.join(", ")
            ));
        }
        still.extend(allows);
    }
    (
        removals,
        removable.difference(&still).cloned().collect(),
        removable_actions.into_iter().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::model::{InlinePolicy, ResourceKind};
    use serde_json::json;

    const CAT: &[&str] = &["ec2", "s3", "sqs", "sns"];

    fn allow(actions: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}]})
    }

    fn role(policies: Vec<(&str, Value)>) -> Principal {
        Principal {
            kind: ResourceKind::Role,
            account_id: "123456789012".into(),
            name: "app".into(),
            arn: "arn:aws:iam::123456789012:role/app".into(),
            path: "/".into(),
            id: "AROA".into(),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: None,
            trust_policy: None,
            inline_policies: policies
                .into_iter()
                .map(|(n, d)| InlinePolicy {
                    name: n.into(),
                    document: d,
                })
                .collect(),
            managed_policies: vec![],
            permissions_boundary: None,
            tags: vec![],
        }
    }

    fn used(ns: &str, days_ago: Option<i64>) -> ServiceAccess {
        ServiceAccess {
            namespace: ns.into(),
            name: ns.into(),
            last_authenticated: days_ago.map(|d| Utc::now() - Duration::days(d)),
            tracked_actions: vec![],
        }
    }

    fn inputs<'a>(r: &'a Principal, usage: &'a [ServiceAccess], keep: &'a [String]) -> Inputs<'a> {
        Inputs {
            role: r,
            managed: vec![],
            usage: Some(usage),
            cloudtrail: BTreeMap::new(),
            granted: BTreeMap::new(),
            keep,
            unused_days: 90,
            now: Utc::now(),
        }
    }

    #[test]
    fn wildcards_are_expanded_per_service() {
        assert_eq!(
            allowed_services(&allow(json!(["s3:Get*", "sqs:SendMessage"])), CAT),
            BTreeSet::from(["s3".to_string(), "sqs".to_string()])
        );
        assert_eq!(allowed_services(&allow(json!("*")), CAT).len(), 4);
        assert_eq!(
            allowed_services(&allow(json!("s*:List*")), CAT),
            BTreeSet::from(["s3".into(), "sns".into(), "sqs".into()])
        );
    }

    #[test]
    fn rewriting_drops_services_keeps_denies_and_expands_star() {
        let remove = BTreeSet::from(["sqs".to_string()]);
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "sqs:SendMessage"], "Resource": "*"},
            {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*"}]});
        let out = without_services(&doc, &remove, CAT).expect("something is left");
        assert_eq!(
            out["Statement"],
            json!([
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
                {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*"}])
        );
        let star = without_services(&allow(json!("*")), &remove, CAT).expect("left");
        assert_eq!(
            star["Statement"][0]["Action"],
            json!(["ec2:*", "s3:*", "sns:*"])
        );
        assert!(without_services(&allow(json!("sqs:*")), &remove, CAT).is_none());
    }

    #[test]
    fn unused_services_are_proposed_and_used_ones_stay() {
        let r = role(vec![(
            "p",
            allow(json!(["s3:GetObject", "sqs:SendMessage"])),
        )]);
        let usage = [used("s3", Some(3)), used("sqs", None)];
        let a = analyse(&inputs(&r, &usage, &[]), CAT);
        assert_eq!(a.removable, vec!["sqs".to_string()]);
        assert!(
            matches!(&a.removals[..], [Removal::RewriteInline { document, .. }]
            if document["Statement"][0]["Action"] == json!(["s3:GetObject"]))
        );
    }

    #[test]
    fn old_use_counts_as_unused_but_keep_recent_and_untracked_do_not() {
        let r = role(vec![(
            "p",
            allow(json!(["s3:*", "sqs:*", "sns:Publish", "ec2:Describe*"])),
        )]);
        let usage = [used("s3", Some(120)), used("sqs", None), used("sns", None)];
        let keep = vec!["sqs:SendMessage".to_string()];
        let mut input = inputs(&r, &usage, &keep);
        input.granted = BTreeMap::from([("sns".to_string(), Utc::now() - Duration::days(7))]);
        let a = analyse(&input, CAT);
        let verdict = |ns: &str| {
            a.services
                .iter()
                .find(|s| s.namespace == ns)
                .map(|s| s.verdict)
        };
        assert_eq!(verdict("s3"), Some(Verdict::Unused));
        assert_eq!(verdict("sqs"), Some(Verdict::Kept));
        assert_eq!(verdict("sns"), Some(Verdict::Recent));
        assert_eq!(verdict("ec2"), Some(Verdict::Untracked));
        assert_eq!(a.removable, vec!["s3".to_string()]);
    }

    #[test]
    fn cloudtrail_calls_count_as_use() {
        let r = role(vec![("p", allow(json!(["sqs:*"])))]);
        let usage = [used("sqs", None)];
        let mut input = inputs(&r, &usage, &[]);
        input.cloudtrail = BTreeMap::from([("sqs".to_string(), 3)]);
        assert!(analyse(&input, CAT).removals.is_empty());
    }

    #[test]
    fn managed_policies_are_detached_only_when_wholly_unused() {
        let r = role(vec![]);
        let usage = [used("s3", Some(1)), used("sqs", None), used("sns", None)];
        let mut input = inputs(&r, &usage, &[]);
        input.managed = vec![
            Attached {
                arn: "arn:aws:iam::123456789012:policy/queues".into(),
                document: Some(allow(json!(["sqs:*"]))),
            },
            Attached {
                arn: "arn:aws:iam::123456789012:policy/mixed".into(),
                document: Some(allow(json!(["s3:*", "sns:*"]))),
            },
            Attached {
                arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
                document: None,
            },
        ];
        let a = analyse(&input, CAT);
        assert_eq!(
            a.removals,
            vec![Removal::DetachManaged {
                arn: "arn:aws:iam::123456789012:policy/queues".into()
            }]
        );
        assert_eq!(a.removable, vec!["sqs".to_string()]);
        assert_eq!(a.notes.len(), 2);
    }

    fn tracked(ns: &str, actions: &[(&str, Option<i64>)]) -> ServiceAccess {
        let mut s = used(ns, Some(1));
        s.tracked_actions = actions
            .iter()
            .map(|(a, d)| crate::cloud::ActionAccess {
                action: a.to_string(),
                last_accessed: d.map(|d| Utc::now() - Duration::days(d)),
            })
            .collect();
        s
    }

    #[test]
    fn unused_tracked_actions_of_a_used_service_are_removed_and_kept_ones_stay() {
        let r = role(vec![(
            "p",
            allow(json!([
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:ListBucket"
            ])),
        )]);
        // ListBucket is not tracked: no evidence, it stays.
        let usage = [tracked(
            "s3",
            &[
                ("GetObject", Some(1)),
                ("PutObject", Some(300)),
                ("DeleteObject", None),
            ],
        )];
        let keep = vec!["s3:DeleteObject".to_string()];
        let a = analyse(&inputs(&r, &usage, &keep), CAT);
        assert_eq!(a.removable, Vec::<String>::new());
        assert_eq!(a.removable_actions, vec!["s3:PutObject".to_string()]);
        assert!(
            matches!(&a.removals[..], [Removal::RewriteInline { document, .. }]
            if document["Statement"][0]["Action"]
                == json!(["s3:GetObject", "s3:DeleteObject", "s3:ListBucket"])),
            "{:?}",
            a.removals
        );
        assert_eq!(
            a.services[0].unused_actions,
            vec!["s3:PutObject".to_string()]
        );
    }

    #[test]
    fn a_short_wildcard_is_expanded_and_a_long_one_kept() {
        let remove =
            BTreeMap::from([("s3".to_string(), BTreeSet::from(["putobject".to_string()]))]);
        let short = without_actions(&allow(json!("s3:PutObject*")), &remove);
        let actions = short.document.expect("left")["Statement"][0]["Action"].clone();
        let list: Vec<&str> = actions
            .as_array()
            .expect("expanded")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !list.contains(&"s3:PutObject") && list.contains(&"s3:PutObjectAcl"),
            "{list:?}"
        );
        assert_eq!(short.removed, BTreeSet::from(["s3:PutObject".to_string()]));
        assert_eq!(short.notes.len(), 1);

        let long = without_actions(&allow(json!(["s3:*"])), &remove);
        assert_eq!(long.document, Some(allow(json!(["s3:*"]))));
        assert!(long.removed.is_empty());
        assert!(long.notes[0].contains("too many"), "{:?}", long.notes);
        // Nothing of the service: the statement is untouched.
        let other = without_actions(&allow(json!("sqs:SendMessage")), &remove);
        assert_eq!(other.document, Some(allow(json!("sqs:SendMessage"))));
    }
}
