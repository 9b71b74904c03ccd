//! From a stored (already validated) ConsoleMe v2 change to the IAM writes that apply it.

use serde_json::Value;

use crate::cloud::IamOp;
use crate::resources::model::Tag;

/// Where a change applies: account id and role name, from `principal.principal_arn`
/// (`arn:aws:iam::<account>:role/<path/>name`) or, for `create_role`, `account_id` + `role_name`.
pub fn target(change: &Value) -> Option<(String, String)> {
    if change.get("change_type").and_then(Value::as_str) == Some("create_role") {
        let account = change.get("account_id")?.as_str()?.to_string();
        let name = change.get("role_name")?.as_str()?.to_string();
        return Some((account, name));
    }
    let arn = change.pointer("/principal/principal_arn")?.as_str()?;
    parse_role_arn(arn)
}

/// `arn:aws:iam::123456789012:role/path/name` → (`123456789012`, `name`).
pub fn parse_role_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then(|| (account.to_string(), name.to_string()))
}

fn text(change: &Value, key: &str) -> Option<String> {
    change.get(key).and_then(Value::as_str).map(str::to_string)
}

fn document(change: &Value) -> Option<Value> {
    change.pointer("/policy/policy_document").cloned()
}

/// The IAM writes for one change, or a message saying what is missing.
pub fn ops_for(change: &Value) -> Result<Vec<IamOp>, String> {
    let (_, role) = target(change).ok_or("the change names no role (principal_arn)")?;
    let kind = text(change, "change_type").unwrap_or_default();
    let action = text(change, "action").unwrap_or_else(|| "attach".into());
    let missing = |what: &str| format!("{kind} change without {what}");
    let ops = match (kind.as_str(), action.as_str()) {
        ("inline_policy", "attach") => vec![IamOp::PutRolePolicy {
            role,
            policy_name: text(change, "policy_name").ok_or_else(|| missing("policy_name"))?,
            document: document(change).ok_or_else(|| missing("policy_document"))?,
        }],
        ("inline_policy", "detach") => vec![IamOp::DeleteRolePolicy {
            role,
            policy_name: text(change, "policy_name").ok_or_else(|| missing("policy_name"))?,
        }],
        ("managed_policy", "attach") => vec![IamOp::AttachRolePolicy {
            role,
            policy_arn: text(change, "arn").ok_or_else(|| missing("arn"))?,
        }],
        ("managed_policy", "detach") => vec![IamOp::DetachRolePolicy {
            role,
            policy_arn: text(change, "arn").ok_or_else(|| missing("arn"))?,
        }],
        ("permissions_boundary", "attach") => vec![IamOp::PutRolePermissionsBoundary {
            role,
            policy_arn: text(change, "arn").ok_or_else(|| missing("arn"))?,
        }],
        ("permissions_boundary", "detach") => vec![IamOp::DeleteRolePermissionsBoundary { role }],
        ("assume_role_policy", _) => vec![IamOp::UpdateAssumeRolePolicy {
            role,
            document: document(change).ok_or_else(|| missing("policy_document"))?,
        }],
        ("resource_tag", _) => {
            let key = text(change, "key").ok_or_else(|| missing("key"))?;
            match text(change, "tag_action").as_deref().unwrap_or("create") {
                "delete" => vec![IamOp::UntagRole {
                    role,
                    keys: vec![key],
                }],
                _ => vec![IamOp::TagRole {
                    role,
                    tags: vec![Tag {
                        key,
                        value: text(change, "value").unwrap_or_default(),
                    }],
                }],
            }
        }
        ("create_role", _) => {
            // What a clone copies was pinned at creation (`resolved_clone`); given values win.
            let resolved = change.get("resolved_clone").cloned().unwrap_or(Value::Null);
            let trust = document(change)
                .or_else(|| {
                    resolved
                        .get("trust_policy")
                        .filter(|v| !v.is_null())
                        .cloned()
                })
                .ok_or_else(|| missing("a trust policy_document"))?;
            let tags = resolved
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(Tag {
                        key: text(t, "key")?,
                        value: text(t, "value").unwrap_or_default(),
                    })
                })
                .collect();
            let mut ops = vec![IamOp::CreateRole {
                role: role.clone(),
                path: text(change, "path").unwrap_or_else(|| "/".into()),
                description: text(change, "description"),
                trust,
                tags,
            }];
            let inline = [
                change.get("inline_policies"),
                resolved.get("inline_policies"),
            ];
            for p in inline
                .into_iter()
                .flatten()
                .filter_map(Value::as_array)
                .flatten()
            {
                ops.push(IamOp::PutRolePolicy {
                    role: role.clone(),
                    policy_name: text(p, "policy_name").ok_or_else(|| missing("policy_name"))?,
                    document: p
                        .get("policy_document")
                        .cloned()
                        .ok_or_else(|| missing("policy_document"))?,
                });
            }
            for arn in resolved
                .get("managed_policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                ops.push(IamOp::AttachRolePolicy {
                    role: role.clone(),
                    policy_arn: arn.to_string(),
                });
            }
            if let Some(b) = resolved.get("permissions_boundary").and_then(Value::as_str) {
                ops.push(IamOp::PutRolePermissionsBoundary {
                    role: role.clone(),
                    policy_arn: b.to_string(),
                });
            }
            ops
        }
        (other, act) => return Err(format!("unsupported change: {other} / {act}")),
    };
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_arns_are_parsed_with_paths() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/service/app"),
            Some(("123456789012".into(), "app".into()))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::1234:role/app"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/app"), None);
    }

    #[test]
    fn changes_map_to_iam_writes() {
        let principal = json!({"principal_type": "AwsResource", "principal_arn": "arn:aws:iam::123456789012:role/app"});
        let inline = json!({"change_type": "inline_policy", "principal": principal, "policy_name": "p",
                            "action": "attach", "policy": {"policy_document": {"Statement": []}}});
        assert_eq!(
            ops_for(&inline),
            Ok(vec![IamOp::PutRolePolicy {
                role: "app".into(),
                policy_name: "p".into(),
                document: json!({"Statement": []})
            }])
        );
        let tag = json!({"change_type": "resource_tag", "principal": principal, "key": "k", "tag_action": "delete"});
        assert_eq!(
            ops_for(&tag),
            Ok(vec![IamOp::UntagRole {
                role: "app".into(),
                keys: vec!["k".into()]
            }])
        );
        let bad =
            json!({"change_type": "inline_policy", "principal": principal, "action": "attach"});
        assert!(ops_for(&bad).is_err_and(|e| e.contains("policy_name")));
    }
}
