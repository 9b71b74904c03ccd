//! IAM changed outside iamdesk: a CloudTrail write call to `iam.amazonaws.com` names what to
//! re-read (a role, or the account for users and managed policies) and becomes a line of the
//! resource's history, "changed outside iamdesk by {caller}: {eventName}". iamdesk's own writes
//! (its spoke role's `iamdesk` session) are re-read too but are not "outside" changes: the
//! request that made them is their history.

use super::model::{OutsideChange, resource_key, role_key};
use super::parse::ApiCall;
use crate::config::Config;

/// What a change asks to re-read. Ordered, so a batch refreshes each one once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Role { account_id: String, name: String },
    Account(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub target: Target,
    /// `None` for iamdesk's own writes.
    pub history: Option<OutsideChange>,
}

/// Read-only IAM calls by name (CloudTrail's `readOnly` says so too, when present).
fn is_read(name: &str) -> bool {
    ["Get", "List", "Generate", "Simulate", "Decode"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn param<'a>(call: &'a ApiCall, key: &str) -> Option<&'a str> {
    call.request
        .get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

/// Whether `call` was made by iamdesk itself through the account's spoke role.
pub fn by_iamdesk(config: &Config, call: &ApiCall) -> bool {
    let spoke = config.spoke_role_name(&call.account_id);
    call.caller
        .role_name
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case(spoke))
        && call
            .caller
            .arn
            .as_deref()
            .is_some_and(|a| a.ends_with(&format!("/{}", crate::cloud::aws::SESSION_NAME)))
}

/// The plan for a successful IAM write in a synced account; `None` for anything else.
pub fn plan(config: &Config, synced: &[(String, String)], call: &ApiCall) -> Option<Plan> {
    if call.source != "iam.amazonaws.com"
        || call.error_code.is_some()
        || call.read_only == Some(true)
        || is_read(&call.name)
        || !synced.iter().any(|(id, _)| *id == call.account_id)
    {
        return None;
    }
    let account_id = call.account_id.clone();
    let (target, resource) = if let Some(role) = param(call, "roleName") {
        (
            Target::Role {
                account_id: account_id.clone(),
                name: role.to_string(),
            },
            role_key(&account_id, role),
        )
    } else if let Some(user) = param(call, "userName") {
        (
            Target::Account(account_id.clone()),
            resource_key("user", &account_id, user),
        )
    } else if let Some(arn) = param(call, "policyArn") {
        let name = arn.rsplit('/').next().unwrap_or(arn);
        (
            Target::Account(account_id.clone()),
            resource_key("policy", &account_id, name),
        )
    } else {
        // Groups, instance profiles without a role, account settings: nothing iamdesk shows.
        return None;
    };
    let history = (!by_iamdesk(config, call)).then(|| OutsideChange {
        event_id: call.event_id.clone(),
        resource,
        account_id,
        by: call
            .caller
            .arn
            .clone()
            .unwrap_or_else(|| call.caller.kind.clone()),
        event_name: call.name.clone(),
        at: call.at,
    });
    Some(Plan { target, history })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse::{ApiCall, Caller};
    use serde_json::json;

    fn call(name: &str, request: serde_json::Value, caller_arn: &str) -> ApiCall {
        ApiCall {
            event_id: "ev-1".into(),
            source: "iam.amazonaws.com".into(),
            name: name.into(),
            at: chrono::Utc::now(),
            account_id: "123456789012".into(),
            read_only: None,
            error_code: None,
            error_message: None,
            request,
            resources: vec![],
            caller: Caller {
                kind: "AssumedRole".into(),
                arn: Some(caller_arn.into()),
                role_arn: None,
                role_name: caller_arn.split('/').nth(1).map(str::to_string),
                role_account: None,
            },
        }
    }

    fn synced() -> Vec<(String, String)> {
        vec![("123456789012".into(), "prod".into())]
    }

    #[test]
    fn role_writes_refresh_the_role_and_are_history() {
        let config = Config::default();
        let c = call(
            "PutRolePolicy",
            json!({"roleName": "App", "policyName": "p"}),
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
        );
        let p = plan(&config, &synced(), &c).expect("plan");
        assert_eq!(
            p.target,
            Target::Role {
                account_id: "123456789012".into(),
                name: "App".into()
            }
        );
        let h = p.history.expect("outside");
        assert_eq!(h.resource, "role/123456789012/app");
        assert_eq!(h.by, "arn:aws:sts::123456789012:assumed-role/Admin/alice");
        assert_eq!(h.event_name, "PutRolePolicy");
    }

    #[test]
    fn users_and_policies_refresh_the_account() {
        let config = Config::default();
        let by = "arn:aws:iam::123456789012:user/bob";
        let u = plan(
            &config,
            &synced(),
            &call(
                "AttachUserPolicy",
                json!({"userName": "bob",
            "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
                by,
            ),
        )
        .expect("user");
        assert_eq!(u.target, Target::Account("123456789012".into()));
        let p = plan(
            &config,
            &synced(),
            &call(
                "CreatePolicyVersion",
                json!({"policyArn": "arn:aws:iam::123456789012:policy/team/Reports"}),
                by,
            ),
        )
        .expect("policy");
        assert_eq!(
            p.history.expect("h").resource,
            "policy/123456789012/reports"
        );
    }

    #[test]
    fn reads_failures_foreign_accounts_and_own_writes() {
        let config = Config {
            policies: crate::config::PoliciesConfig {
                role_name: "iamdesk-spoke".into(),
                ..Default::default()
            },
            ..Config::default()
        };
        let by = "arn:aws:sts::123456789012:assumed-role/Admin/alice";
        assert!(
            plan(
                &config,
                &synced(),
                &call("GetRole", json!({"roleName": "a"}), by)
            )
            .is_none()
        );
        let mut failed = call("DeleteRole", json!({"roleName": "a"}), by);
        failed.error_code = Some("AccessDenied".into());
        assert!(plan(&config, &synced(), &failed).is_none());
        let mut foreign = call("DeleteRole", json!({"roleName": "a"}), by);
        foreign.account_id = "999999999999".into();
        assert!(plan(&config, &synced(), &foreign).is_none());
        let own = call(
            "PutRolePolicy",
            json!({"roleName": "a"}),
            "arn:aws:sts::123456789012:assumed-role/iamdesk-spoke/iamdesk",
        );
        let p = plan(&config, &synced(), &own).expect("still refreshed");
        assert!(p.history.is_none(), "iamdesk's own change is not outside");
    }
}
