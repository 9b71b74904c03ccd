//! Approval rules: which approvals a request needs before it applies (`approvals.rules`, first
//! match wins; no rule: one administrator, as ConsoleMe did).
//!
//! A rule's `require` lists groups and counts: `[{groups: [security], count: 1}, {groups:
//! [admins], count: 1}]` needs one approval from a member of `security` and another from a
//! *different* person in `admins`. Approvals are recorded on the request with the version they
//! approved and the approver's groups at the time; only approvals of the current content count
//! (an edit after them voids them). The requester never counts (unless
//! `policies.allow_self_approval`), nor does anybody who edited a change.

use serde::{Deserialize, Serialize};

use super::model::Change;
use super::risk::Level;
use crate::config::{ApprovalRule, Config, Requirement};
use crate::store::PolicyRequest;

/// One approval, as recorded on the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    /// The approver's groups when they approved (eligibility is judged on these).
    #[serde(default)]
    pub groups: Vec<String>,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The request version the approver reviewed.
    pub version: u64,
    /// Whether the approver was an administrator (the default rule's requirement).
    #[serde(default)]
    pub admin: bool,
}

/// How far a request is: per requirement, who approved, and what is still needed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleState {
    pub rule: String,
    pub requirements: Vec<RequirementState>,
    pub satisfied: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequirementState {
    pub groups: Vec<String>,
    pub count: usize,
    pub approved_by: Vec<String>,
}

impl RequirementState {
    pub fn met(&self) -> bool {
        self.approved_by.len() >= self.count
    }

    /// `1 of 2 from security`.
    pub fn describe(&self) -> String {
        format!(
            "{} of {} from {}",
            self.approved_by.len().min(self.count),
            self.count,
            self.groups.join(", ")
        )
    }
}

impl RuleState {
    /// What is still missing, for people: `1 more from security`.
    pub fn still_needed(&self) -> Vec<String> {
        self.requirements
            .iter()
            .filter(|r| !r.met())
            .map(|r| {
                format!(
                    "{} more from {}",
                    r.count - r.approved_by.len(),
                    r.groups.join(", ")
                )
            })
            .collect()
    }
}

/// The default rule's requirement: one administrator (`groups.can_admin`,
/// `groups.can_admin_policies`, `application_admin`, or the demo's admin persona). Written as
/// a requirement without groups.
fn default_requirement(_config: &Config) -> Requirement {
    Requirement {
        groups: vec![],
        count: 1,
    }
}

/// `administrators` for the default requirement, else its groups.
pub fn who(req: &Requirement) -> String {
    if req.groups.is_empty() {
        "administrators".into()
    } else {
        req.groups.join(", ")
    }
}

/// Whether the request fits the rule's `match`.
fn matches(
    rule: &ApprovalRule,
    config: &Config,
    r: &PolicyRequest,
    level: Level,
    role_of: &dyn Fn(&Change) -> Option<crate::resources::model::Principal>,
) -> bool {
    let m = &rule.matches;
    let glob = crate::resources::model::action_matches;
    let account_ok = m.accounts.is_empty()
        || r.changes.iter().any(|c| {
            let id = c.target().account().as_str();
            let name = config
                .account_ids_to_name
                .get(id)
                .map(String::as_str)
                .unwrap_or("");
            m.accounts
                .iter()
                .any(|a| a == id || (!name.is_empty() && glob(a, name)))
        });
    let type_ok = m.change_types.is_empty()
        || r.changes
            .iter()
            .any(|c| m.change_types.iter().any(|t| t == c.kind().as_str()));
    let risk_ok = m.min_risk.is_none_or(|min| level >= min);
    let tags_ok = m.principal_tags.is_empty()
        || r.changes.iter().any(|c| {
            role_of(c).is_some_and(|role| {
                m.principal_tags
                    .iter()
                    .all(|(k, v)| role.tag(k).is_some_and(|have| glob(v, have)))
            })
        });
    let path_ok = m.principal_paths.is_empty()
        || r.changes
            .iter()
            .any(|c| m.principal_paths.iter().any(|p| glob(p, c.target().path())));
    account_ok && type_ok && risk_ok && tags_ok && path_ok
}

/// The rule that decides for `r`: its name and requirements.
pub fn rule_for(
    config: &Config,
    r: &PolicyRequest,
    level: Level,
    role_of: &dyn Fn(&Change) -> Option<crate::resources::model::Principal>,
) -> (String, Vec<Requirement>) {
    config
        .approvals
        .rules
        .iter()
        .find(|rule| matches(rule, config, r, level, role_of))
        .map(|rule| (rule.name.clone(), rule.require.clone()))
        .unwrap_or_else(|| ("default".into(), vec![default_requirement(config)]))
}

/// Whether `email` (with `groups`, an administrator or not) belongs to the requirement.
pub fn eligible(req: &Requirement, email: &str, groups: &[String], admin: bool) -> bool {
    if req.groups.is_empty() {
        return admin;
    }
    req.groups
        .iter()
        .any(|g| crate::auth::access::names(g, email, groups))
}

/// The version of the request's current content: that of its last edit, else 1.
pub fn content_version(r: &PolicyRequest) -> u64 {
    r.edits.last().map_or(1, |e| e.version)
}

/// Who may not count towards `r`'s approvals: the requester (unless self-approval is allowed)
/// and every editor.
pub fn excluded(config: &Config, r: &PolicyRequest, email: &str) -> Option<&'static str> {
    if r.requester.eq_ignore_ascii_case(email) && !config.policies.allow_self_approval {
        return Some("the requester");
    }
    if r.edits.iter().any(|e| e.by.eq_ignore_ascii_case(email)) {
        return Some("an editor of its changes");
    }
    None
}

/// The state of `requirements` given the request's valid approvals: each approver fills at
/// most one requirement, the first unmet one they belong to.
pub fn state(
    config: &Config,
    r: &PolicyRequest,
    rule: &str,
    requirements: &[Requirement],
) -> RuleState {
    let current = content_version(r);
    let mut reqs: Vec<RequirementState> = requirements
        .iter()
        .map(|q| RequirementState {
            groups: if q.groups.is_empty() {
                vec![who(q)]
            } else {
                q.groups.clone()
            },
            count: q.count.max(1),
            approved_by: vec![],
        })
        .collect();
    let mut seen: Vec<String> = vec![];
    for a in r.approvals.iter().filter(|a| a.version >= current) {
        let who = a.by.to_lowercase();
        if seen.contains(&who) || excluded(config, r, &a.by).is_some() {
            continue;
        }
        let slot = requirements
            .iter()
            .zip(reqs.iter_mut())
            .find(|(q, st)| !st.met() && eligible(q, &a.by, &a.groups, a.admin));
        if let Some((_, st)) = slot {
            st.approved_by.push(a.by.clone());
            seen.push(who);
        }
    }
    RuleState {
        rule: rule.to_string(),
        satisfied: reqs.iter().all(RequirementState::met),
        requirements: reqs,
    }
}

/// Startup check of `approvals.rules` (every problem, named by rule).
pub fn check_rules(config: &Config) -> Result<(), Vec<String>> {
    let mut problems = vec![];
    let mut names: Vec<&str> = vec![];
    for (i, rule) in config.approvals.rules.iter().enumerate() {
        let label = if rule.name.is_empty() {
            format!("rule {}", i + 1)
        } else {
            format!("rule '{}'", rule.name)
        };
        if rule.name.is_empty() {
            problems.push(format!(
                "{label} needs a name (it is shown on the request page)"
            ));
        } else if names.contains(&rule.name.as_str()) {
            problems.push(format!("{label} is named twice"));
        }
        names.push(&rule.name);
        if rule.require.is_empty() {
            problems.push(format!(
                "{label}: require lists no approvals; give at least one {{groups: [...], count: N}}"
            ));
        }
        for (k, q) in rule.require.iter().enumerate() {
            if q.groups.is_empty() {
                problems.push(format!("{label}: require[{k}] names no groups"));
            }
            if q.count == 0 {
                problems.push(format!("{label}: require[{k}].count must be at least 1"));
            }
        }
        for t in &rule.matches.change_types {
            if super::model::ChangeType::parse(t).is_none() {
                problems.push(format!("{label}: match.change_types has unknown `{t}`"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChangeEdit;
    use chrono::Utc;

    fn config() -> Config {
        let mut c = Config::default();
        c.groups.can_admin = vec!["admins".into()];
        c
    }

    fn approval(by: &str, groups: &[&str], version: u64) -> Approval {
        Approval {
            by: by.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            at: Utc::now(),
            version,
            admin: groups.contains(&"admins"),
        }
    }

    fn two_of_security() -> Vec<Requirement> {
        vec![Requirement {
            groups: vec!["security".into()],
            count: 2,
        }]
    }

    #[test]
    fn two_distinct_eligible_people_and_never_the_requester_or_an_editor() {
        let c = config();
        let mut r = crate::store::conformance::sample_request("dev@example.com", 0);
        let reqs = two_of_security();
        r.approvals = vec![
            approval("alice@example.com", &["security"], 1),
            approval("ALICE@example.com", &["security"], 1),
            approval("dev@example.com", &["security"], 1),
            approval("bob@example.com", &["admins"], 1),
        ];
        let st = state(&c, &r, "two", &reqs);
        assert_eq!(st.requirements[0].approved_by, ["alice@example.com"]);
        assert!(!st.satisfied);
        assert_eq!(st.still_needed(), ["1 more from security"]);
        // An editor does not count either; then a second member does.
        r.edits.push(ChangeEdit {
            change_id: "c".into(),
            by: "carol@example.com".into(),
            at: Utc::now(),
            version: 1,
        });
        r.approvals
            .push(approval("carol@example.com", &["security"], 1));
        assert!(!state(&c, &r, "two", &reqs).satisfied);
        r.approvals
            .push(approval("dave@example.com", &["security"], 1));
        let st = state(&c, &r, "two", &reqs);
        assert!(st.satisfied, "{st:?}");
        assert_eq!(st.requirements[0].describe(), "2 of 2 from security");
    }

    #[test]
    fn an_edit_voids_earlier_approvals() {
        let c = config();
        let mut r = crate::store::conformance::sample_request("dev@example.com", 0);
        r.approvals = vec![approval("alice@example.com", &["admins"], 1)];
        let reqs = vec![default_requirement(&c)];
        assert!(state(&c, &r, "default", &reqs).satisfied);
        r.edits.push(ChangeEdit {
            change_id: "c".into(),
            by: "dev@example.com".into(),
            at: Utc::now(),
            version: 3,
        });
        assert!(!state(&c, &r, "default", &reqs).satisfied);
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let mut c = config();
        c.account_ids_to_name
            .insert("123456789012".into(), "prod-payments".into());
        c.approvals.rules = vec![
            ApprovalRule {
                name: "prod-risky".into(),
                matches: crate::config::RuleMatch {
                    accounts: vec!["prod-*".into()],
                    min_risk: Some(Level::High),
                    ..Default::default()
                },
                require: two_of_security(),
            },
            ApprovalRule {
                name: "prod".into(),
                matches: crate::config::RuleMatch {
                    accounts: vec!["123456789012".into()],
                    ..Default::default()
                },
                require: vec![Requirement {
                    groups: vec!["owners".into()],
                    count: 1,
                }],
            },
        ];
        let r = crate::store::conformance::sample_request("dev@example.com", 0);
        let none = |_: &Change| None;
        assert_eq!(rule_for(&c, &r, Level::Critical, &none).0, "prod-risky");
        assert_eq!(rule_for(&c, &r, Level::Low, &none).0, "prod");
        c.account_ids_to_name.clear();
        c.approvals.rules.truncate(1);
        assert_eq!(rule_for(&c, &r, Level::Critical, &none).0, "default");
    }

    #[test]
    fn rules_are_checked_at_startup() {
        let mut c = config();
        c.approvals.rules = vec![ApprovalRule {
            name: String::new(),
            matches: crate::config::RuleMatch {
                change_types: vec!["inline".into()],
                ..Default::default()
            },
            require: vec![Requirement {
                groups: vec![],
                count: 0,
            }],
        }];
        let problems = check_rules(&c).expect_err("problems");
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
