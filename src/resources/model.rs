//! IAM resources as synced from each account: roles, users, customer-managed policies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Role,
    User,
    ManagedPolicy,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Role => "role",
            ResourceKind::User => "user",
            ResourceKind::ManagedPolicy => "managed_policy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "role" | "iamrole" => Some(ResourceKind::Role),
            "user" | "iamuser" => Some(ResourceKind::User),
            "managed_policy" | "policy" => Some(ResourceKind::ManagedPolicy),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlinePolicy {
    pub name: String,
    /// The policy document, URL-decoded and parsed.
    pub document: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

/// A role or a user: both carry inline and attached policies and tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub kind: ResourceKind,
    pub account_id: String,
    pub name: String,
    pub arn: String,
    pub path: String,
    pub id: String,
    pub description: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub max_session_duration: Option<i32>,
    /// Roles only.
    pub trust_policy: Option<Value>,
    pub inline_policies: Vec<InlinePolicy>,
    pub managed_policies: Vec<AttachedPolicy>,
    pub permissions_boundary: Option<String>,
    pub tags: Vec<Tag>,
}

impl Principal {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub account_id: String,
    pub name: String,
    pub arn: String,
    pub path: String,
    pub description: Option<String>,
    pub attachment_count: i32,
    /// The default version's document.
    pub document: Value,
}

/// Everything synced from one account at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub account_id: String,
    pub account_name: String,
    pub synced_at: Option<DateTime<Utc>>,
    pub principals: Vec<Principal>,
    pub policies: Vec<ManagedPolicy>,
}

/// Every action pattern (`s3:Get*`, `*`) a policy document allows or denies through `Action`.
/// `NotAction` statements are skipped: they grant "everything but", which a search by action
/// cannot express honestly.
pub fn actions_in(document: &Value, out: &mut Vec<String>) {
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => return,
    };
    for st in statements {
        match st.get("Action") {
            Some(Value::String(a)) => out.push(a.clone()),
            Some(Value::Array(list)) => {
                out.extend(list.iter().filter_map(|a| a.as_str().map(str::to_string)));
            }
            _ => {}
        }
    }
}

/// IAM action matching: case-insensitive, `*` any run of characters, `?` one character.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        // Iterative glob with backtracking to the last star: linear in practice.
        let (mut pi, mut ai) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while ai < a.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&a[ai])) {
                pi += 1;
                ai += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some(pi);
                mark = ai;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ai = mark;
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == b'*' {
            pi += 1;
        }
        pi == p.len()
    }
    go(pattern.as_bytes(), action.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_globs_match_like_iam() {
        assert!(action_matches("s3:GetObject", "s3:getobject"));
        assert!(action_matches("s3:Get*", "s3:GetObject"));
        assert!(action_matches("*", "iam:PassRole"));
        assert!(action_matches("s3:*Object", "s3:PutObject"));
        assert!(action_matches("s3:Get?bject", "s3:GetObject"));
        assert!(!action_matches("s3:Get*", "s3:PutObject"));
        assert!(!action_matches("s3:GetObject", "s3:GetObjectAcl"));
        assert!(!action_matches("sqs:*", "s3:GetObject"));
    }

    #[test]
    fn actions_are_collected_from_lists_strings_and_single_statements() {
        let mut out = vec![];
        actions_in(
            &json!({"Statement": [{"Action": "s3:GetObject"}, {"Action": ["sqs:*", "sns:Publish"]},
                                   {"NotAction": "iam:*"}]}),
            &mut out,
        );
        actions_in(&json!({"Statement": {"Action": "kms:Decrypt"}}), &mut out);
        assert_eq!(out, ["s3:GetObject", "sqs:*", "sns:Publish", "kms:Decrypt"]);
    }
}
