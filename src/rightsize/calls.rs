//! The role's own calls as the events consumer sees them (CloudTrail through EventBridge):
//! counted per role and service, so a service used where Access Advisor lags is not proposed.
//!
//! Kept in the cache per account (`rightsize:calls:{account}`), like the Access Advisor data: a
//! hint that can only keep a permission, never remove one. The consumer runs on the leader
//! replica only, so one writer updates each entry.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::events::parse::ApiCall;

fn key(account_id: &str) -> String {
    format!("rightsize:calls:{account_id}")
}

/// How long counts are kept without a new call.
const KEEP: Duration = Duration::from_secs(400 * 24 * 3600);

/// One successful call of a synced role's session.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub account_id: String,
    /// Lower-case role name.
    pub role: String,
    pub service: String,
    pub at: DateTime<Utc>,
}

/// Calls of one service by one role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceCalls {
    pub count: u64,
    pub last_at: Option<DateTime<Utc>>,
}

/// Lower-case role name → service → calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountCalls {
    pub roles: BTreeMap<String, BTreeMap<String, ServiceCalls>>,
}

impl AccountCalls {
    /// A role's calls per service made at or after `since` (the count is of all calls kept).
    pub fn since(&self, role: &str, since: DateTime<Utc>) -> BTreeMap<String, u64> {
        self.roles
            .get(&role.to_ascii_lowercase())
            .map(|services| {
                services
                    .iter()
                    .filter(|(_, c)| c.last_at.is_some_and(|t| t >= since))
                    .map(|(s, c)| (s.clone(), c.count))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The call, if it is a successful one by a session of a role in a synced account.
pub fn seen(synced: &[(String, String)], call: &ApiCall) -> Option<Seen> {
    if call.error_code.is_some() || call.caller.kind != "AssumedRole" {
        return None;
    }
    let role_arn = call.caller.role_arn.as_deref()?;
    let (account_id, resource) = role_arn.strip_prefix("arn:aws:iam::")?.split_once(':')?;
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    if name.is_empty() || !synced.iter().any(|(id, _)| id == account_id) {
        return None;
    }
    Some(Seen {
        account_id: account_id.to_string(),
        role: name.to_ascii_lowercase(),
        service: crate::events::denies::service_prefix(&call.source),
        at: call.at,
    })
}

pub async fn load(cache: &dyn Cache, account_id: &str) -> AccountCalls {
    match cache.get(&key(account_id)).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Ok(None) => AccountCalls::default(),
        Err(e) => {
            tracing::warn!(account = account_id, error = %e, "cannot read the role calls");
            AccountCalls::default()
        }
    }
}

/// Add a batch's calls. Best effort: a cache failure is logged, the events still handled.
pub async fn record(cache: &dyn Cache, calls: &[Seen]) {
    let mut by_account: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for c in calls {
        by_account.entry(&c.account_id).or_default().push(c);
    }
    for (account_id, calls) in by_account {
        let mut stored = load(cache, account_id).await;
        for c in calls {
            let entry = stored
                .roles
                .entry(c.role.clone())
                .or_default()
                .entry(c.service.clone())
                .or_default();
            entry.count += 1;
            entry.last_at = entry.last_at.max(Some(c.at));
        }
        match serde_json::to_vec(&stored) {
            Ok(bytes) => {
                if let Err(e) = cache.set(&key(account_id), &bytes, KEEP).await {
                    tracing::warn!(account = account_id, error = %e, "cannot store the role calls");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode the role calls"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse::Caller;

    fn call(error: Option<&str>, kind: &str) -> ApiCall {
        ApiCall {
            event_id: "e".into(),
            source: "sqs.amazonaws.com".into(),
            name: "SendMessage".into(),
            at: Utc::now(),
            account_id: "123456789012".into(),
            read_only: Some(false),
            error_code: error.map(str::to_string),
            error_message: None,
            request: serde_json::Value::Null,
            resources: vec![],
            caller: Caller {
                kind: kind.into(),
                arn: None,
                role_arn: Some("arn:aws:iam::123456789012:role/team/App".into()),
                role_name: Some("App".into()),
                role_account: Some("123456789012".into()),
            },
        }
    }

    #[test]
    fn only_successful_calls_of_synced_role_sessions_count() {
        let synced = vec![("123456789012".to_string(), "prod".to_string())];
        let s = seen(&synced, &call(None, "AssumedRole")).expect("counted");
        assert_eq!((s.role.as_str(), s.service.as_str()), ("app", "sqs"));
        assert!(seen(&synced, &call(Some("AccessDenied"), "AssumedRole")).is_none());
        assert!(seen(&synced, &call(None, "IAMUser")).is_none());
        assert!(seen(&[], &call(None, "AssumedRole")).is_none());
    }

    #[tokio::test]
    async fn calls_add_up_per_role_and_service() {
        let cache = crate::cache::memory::MemoryCache::new(100);
        let synced = vec![("123456789012".to_string(), "prod".to_string())];
        let s = seen(&synced, &call(None, "AssumedRole")).expect("counted");
        record(&cache, &[s.clone(), s.clone()]).await;
        record(&cache, &[s]).await;
        let calls = load(&cache, "123456789012").await;
        let recent = calls.since("App", Utc::now() - chrono::Duration::days(1));
        assert_eq!(recent.get("sqs"), Some(&3));
        assert!(
            calls
                .since("App", Utc::now() + chrono::Duration::days(1))
                .is_empty()
        );
    }
}
