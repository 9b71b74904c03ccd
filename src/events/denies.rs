//! Access denied → a request in one click. A CloudTrail record with `AccessDenied` or
//! `UnauthorizedOperation` whose caller is a role session becomes a [`Denial`] of that role,
//! action and resource; the role page lists the recent ones, each with the statement that would
//! have allowed it, as a link that opens the role's "Request a change" form prefilled. Nothing
//! is requested until the person submits that form, which goes through the validator like any
//! other.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::model::{Denial, role_key};
use super::parse::ApiCall;

/// Error codes of a refused call (EC2's is prefixed with `Client.` in CloudTrail).
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "Client.UnauthorizedOperation",
];

const MAX_ACTION: usize = 128;
const MAX_RESOURCE: usize = 1024;

/// Event sources whose IAM action prefix is not the host's first label.
pub fn service_prefix(source: &str) -> String {
    let host = source.strip_suffix(".amazonaws.com").unwrap_or(source);
    match host {
        "monitoring" => "cloudwatch",
        "email" => "ses",
        "elasticmapreduce" => "elasticmapreduce",
        other => other,
    }
    .to_string()
}

fn is_action(a: &str) -> bool {
    let Some((service, name)) = a.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && !name.is_empty()
        && a.len() <= MAX_ACTION
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `... is not authorized to perform: s3:GetObject on resource: "arn:..." because ...`: the
/// action and resource AWS named, when it did.
fn from_message(message: &str) -> (Option<String>, Option<String>) {
    let action = message
        .split_once("perform: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(|a| a.trim_end_matches(['.', ',']).to_string())
        .filter(|a| is_action(a));
    let resource = message
        .split_once("on resource: ")
        .map(|(_, rest)| rest.split(" because").next().unwrap_or(rest))
        .map(|r| {
            r.trim()
                .trim_end_matches('.')
                .trim_matches(['"', '\''])
                .to_string()
        })
        .filter(|r| {
            r.starts_with("arn:") && r.len() <= MAX_RESOURCE && !r.contains(char::is_whitespace)
        });
    (action, resource)
}

/// The denial group for `call`, when it is a refused call by a role session in a synced account.
pub fn denial(synced: &[(String, String)], call: &ApiCall) -> Option<Denial> {
    let code = call.error_code.as_deref()?;
    if !DENIED.contains(&code) || call.caller.kind != "AssumedRole" {
        return None;
    }
    let role_arn = call.caller.role_arn.clone()?;
    // arn:aws:iam::<account>:role/<path/>name
    let rest = role_arn.strip_prefix("arn:aws:iam::")?;
    let (account_id, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    if name.is_empty() || !synced.iter().any(|(id, _)| id == account_id) {
        return None;
    }
    let (named_action, named_resource) = call
        .error_message
        .as_deref()
        .map(from_message)
        .unwrap_or_default();
    let fallback = format!("{}:{}", service_prefix(&call.source), call.name);
    let action = named_action.or_else(|| is_action(&fallback).then_some(fallback))?;
    let resource = named_resource
        .or_else(|| {
            call.resources
                .iter()
                .find(|r| r.len() <= MAX_RESOURCE)
                .cloned()
        })
        .unwrap_or_else(|| "*".to_string());
    Some(Denial {
        role: role_key(account_id, name),
        role_arn,
        action,
        resource,
        error_code: code.to_string(),
        count: 1,
        first_seen: call.at,
        last_seen: call.at,
    })
}

/// Add `d` to the batch's groups (same role, action and resource: one group).
pub fn merge(groups: &mut Vec<Denial>, d: Denial) -> usize {
    match groups
        .iter()
        .position(|g| g.role == d.role && g.action == d.action && g.resource == d.resource)
    {
        Some(i) => {
            let g = &mut groups[i];
            g.count += d.count;
            g.first_seen = g.first_seen.min(d.first_seen);
            g.last_seen = g.last_seen.max(d.last_seen);
            g.error_code = d.error_code;
            i
        }
        None => {
            groups.push(d);
            groups.len() - 1
        }
    }
}

/// The request a denial suggests: an inline policy allowing exactly the denied action on the
/// denied resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub policy_name: String,
    pub policy_document: String,
    pub justification: String,
}

fn human(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn suggestion(d: &Denial) -> Suggestion {
    let name: String = format!("iamdesk-allow-{}", d.action.replace(':', "-"))
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c))
        .take(128)
        .collect();
    let document = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": [d.action], "Resource": [d.resource]}]
    });
    let times = if d.count == 1 {
        format!("once, at {}", human(d.last_seen))
    } else {
        format!(
            "{} times between {} and {}",
            d.count,
            human(d.first_seen),
            human(d.last_seen)
        )
    };
    Suggestion {
        policy_name: name,
        policy_document: serde_json::to_string_pretty(&document).unwrap_or_default(),
        justification: format!("{} on {} was denied {times}.", d.action, d.resource),
    }
}

/// The role page with its change form prefilled with `d`'s suggestion.
pub fn request_link(account_id: &str, role_name: &str, d: &Denial) -> String {
    let s = suggestion(d);
    let query = serde_urlencoded::to_string([
        ("kind", "inline_policy:attach"),
        ("policy_name", s.policy_name.as_str()),
        ("policy_document", s.policy_document.as_str()),
        ("justification", s.justification.as_str()),
    ])
    .unwrap_or_default();
    format!(
        "/policies/edit/{account_id}/iamrole/{}?{query}#request-change",
        urlencoding::encode(role_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse::Caller;

    fn call(code: &str, message: Option<&str>) -> ApiCall {
        ApiCall {
            event_id: "e".into(),
            source: "s3.amazonaws.com".into(),
            name: "GetObject".into(),
            at: Utc::now(),
            account_id: "123456789012".into(),
            read_only: Some(true),
            error_code: Some(code.into()),
            error_message: message.map(str::to_string),
            request: serde_json::Value::Null,
            resources: vec!["arn:aws:s3:::reports/2024.csv".into()],
            caller: Caller {
                kind: "AssumedRole".into(),
                arn: Some("arn:aws:sts::123456789012:assumed-role/App/i-1".into()),
                role_arn: Some("arn:aws:iam::123456789012:role/svc/App".into()),
                role_name: Some("App".into()),
                role_account: Some("123456789012".into()),
            },
        }
    }

    fn synced() -> Vec<(String, String)> {
        vec![("123456789012".into(), "prod".into())]
    }

    #[test]
    fn action_and_resource_from_the_error_message_or_the_record() {
        let d = denial(&synced(), &call("AccessDenied", Some(
            "User: arn:aws:sts::123456789012:assumed-role/App/i-1 is not authorized to perform: \
             kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/k1 because no \
             identity-based policy allows the kms:Decrypt action"))).expect("denial");
        assert_eq!(d.action, "kms:Decrypt");
        assert_eq!(d.resource, "arn:aws:kms:us-east-1:123456789012:key/k1");
        assert_eq!(d.role, "role/123456789012/app");
        let d = denial(&synced(), &call("AccessDenied", Some("Access Denied"))).expect("denial");
        assert_eq!(d.action, "s3:GetObject");
        assert_eq!(d.resource, "arn:aws:s3:::reports/2024.csv");
        let mut c = call("Client.UnauthorizedOperation", None);
        c.source = "ec2.amazonaws.com".into();
        c.name = "RunInstances".into();
        c.resources.clear();
        let d = denial(&synced(), &c).expect("ec2");
        assert_eq!(
            (d.action.as_str(), d.resource.as_str()),
            ("ec2:RunInstances", "*")
        );
    }

    #[test]
    fn only_role_sessions_in_synced_accounts_and_denied_codes() {
        assert!(denial(&synced(), &call("NoSuchBucket", None)).is_none());
        let mut user = call("AccessDenied", None);
        user.caller.kind = "IAMUser".into();
        assert!(denial(&synced(), &user).is_none());
        assert!(denial(&[], &call("AccessDenied", None)).is_none());
    }

    #[test]
    fn groups_merge_and_the_suggestion_is_one_statement() {
        let mut groups = vec![];
        let a = denial(&synced(), &call("AccessDenied", None)).expect("a");
        let mut b = a.clone();
        b.first_seen -= chrono::Duration::minutes(5);
        assert_eq!(merge(&mut groups, a), 0);
        assert_eq!(merge(&mut groups, b), 0);
        assert_eq!(groups[0].count, 2);
        let s = suggestion(&groups[0]);
        assert_eq!(s.policy_name, "iamdesk-allow-s3-GetObject");
        let doc: serde_json::Value = serde_json::from_str(&s.policy_document).expect("json");
        assert_eq!(doc["Statement"][0]["Action"][0], "s3:GetObject");
        assert_eq!(
            doc["Statement"][0]["Resource"][0],
            "arn:aws:s3:::reports/2024.csv"
        );
        assert!(s.justification.contains("2 times"));
        let link = request_link("123456789012", "App", &groups[0]);
        assert!(
            link.starts_with("/policies/edit/123456789012/iamrole/App?kind=inline_policy%3Aattach")
        );
        assert!(link.ends_with("#request-change"));
    }
}
