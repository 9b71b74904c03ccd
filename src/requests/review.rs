//! What a reviewer sees for each change: current state (latest synced role) vs proposed.

use serde_json::Value;

use super::diff::{Diff, diff_json, diff_text};
use super::ops::target;
use crate::resources::model::Principal;

/// The diff of one stored change against the role as last synced (`None` when the role is not
/// known, e.g. a new role).
pub fn change_diff(change: &Value, current: Option<&Principal>) -> Diff {
    let get = |k: &str| change.get(k).and_then(Value::as_str).unwrap_or("");
    let proposed = change.pointer("/policy/policy_document");
    let detach = get("action") == "detach";
    match get("change_type") {
        "inline_policy" => {
            let name = get("policy_name");
            let before = current.and_then(|r| {
                r.inline_policies
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| &p.document)
            });
            diff_json(before, if detach { None } else { proposed })
        }
        "assume_role_policy" => diff_json(current.and_then(|r| r.trust_policy.as_ref()), proposed),
        "create_role" => diff_json(None, proposed),
        "managed_policy" => {
            let before: Vec<String> = current
                .map(|r| r.managed_policies.iter().map(|m| m.arn.clone()).collect())
                .unwrap_or_default();
            let mut after = before.clone();
            let arn = get("arn").to_string();
            if detach {
                after.retain(|a| *a != arn);
            } else if !after.contains(&arn) {
                after.push(arn);
            }
            diff_text(&lines(&before), &lines(&after))
        }
        "permissions_boundary" => {
            let before = current
                .and_then(|r| r.permissions_boundary.clone())
                .unwrap_or_default();
            let after = if detach {
                String::new()
            } else {
                get("arn").to_string()
            };
            diff_text(&before, &after)
        }
        "resource_tag" => {
            let before: Vec<String> = current
                .map(|r| {
                    r.tags
                        .iter()
                        .map(|t| format!("{}={}", t.key, t.value))
                        .collect()
                })
                .unwrap_or_default();
            let key = get("key");
            let mut after: Vec<String> = before
                .iter()
                .filter(|t| t.split_once('=').map(|(k, _)| k) != Some(key))
                .cloned()
                .collect();
            if get("tag_action") != "delete" {
                after.push(format!("{key}={}", get("value")));
            }
            diff_text(&lines(&before), &lines(&after))
        }
        _ => Diff::default(),
    }
}

fn lines(items: &[String]) -> String {
    let mut sorted = items.to_vec();
    sorted.sort();
    sorted.join("\n")
}

/// The role a change targets, from the synced resources.
pub fn current_role(
    resources: &crate::resources::service::Resources,
    change: &Value,
) -> Option<Principal> {
    let (account, name) = target(change)?;
    resources.role(&account, &name).map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::demo;
    use serde_json::json;

    #[test]
    fn inline_attach_diffs_against_the_current_document() {
        let snap = demo::account("111122223333", "demo");
        let role = snap
            .principals
            .iter()
            .find(|p| p.name == "billing-reports")
            .expect("role");
        let change = json!({"change_type": "inline_policy", "policy_name": "read-cur", "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::cur-reports/*"]}]}}});
        let d = change_diff(&change, Some(role));
        assert!(d.removed > 0 && d.added > 0, "{d:?}");
        let tag = json!({"change_type": "resource_tag", "key": "team", "value": "finance", "tag_action": "update"});
        let d = change_diff(&tag, Some(role));
        assert_eq!((d.added, d.removed), (1, 1));
    }
}
