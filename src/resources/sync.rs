//! Resource sync: every configured account read through the [`Cloud`], in parallel with bounded
//! concurrency. One failing account (AccessDenied, missing spoke role, throttling that outlasts
//! the retries) never stops the others; its previous snapshot is kept and its status says why.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::model::{AccountSnapshot, ResourceKind};
use crate::cloud::{Cloud, CloudError};

/// Accounts read at the same time: enough to hide latency, few enough not to be throttled.
pub const CONCURRENCY: usize = 8;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The outcome of the last sync of one account, shown at `/admin/accounts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub account_id: String,
    pub account_name: String,
    pub last_attempt_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// AWS's own error text when the last attempt failed.
    pub last_error: Option<String>,
    pub roles: usize,
    pub users: usize,
    pub policies: usize,
    pub duration_ms: u64,
}

impl AccountStatus {
    pub fn ok(&self) -> bool {
        self.last_error.is_none()
    }
}

pub struct AccountResult {
    pub status: AccountStatus,
    /// `None` when the account failed.
    pub snapshot: Option<AccountSnapshot>,
}

async fn fetch_with_retries(
    cloud: &dyn Cloud,
    account_id: &str,
    account_name: &str,
) -> Result<AccountSnapshot, CloudError> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match cloud.fetch_account(account_id, account_name).await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::warn!(account = account_id, attempt, error = %e, "sync throttled; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Sync one account; `previous` is its last known status (to keep `last_success_at`).
pub async fn sync_account(
    cloud: &dyn Cloud,
    account_id: &str,
    account_name: &str,
    previous: Option<&AccountStatus>,
) -> AccountResult {
    let started = Instant::now();
    let at = Utc::now();
    let result = fetch_with_retries(cloud, account_id, account_name).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(snapshot) => {
            let count = |k| snapshot.principals.iter().filter(|p| p.kind == k).count();
            let status = AccountStatus {
                account_id: account_id.to_string(),
                account_name: account_name.to_string(),
                last_attempt_at: at,
                last_success_at: Some(at),
                last_error: None,
                roles: count(ResourceKind::Role),
                users: count(ResourceKind::User),
                policies: snapshot.policies.len(),
                duration_ms,
            };
            tracing::info!(
                account = account_id,
                roles = status.roles,
                duration_ms,
                "account synced"
            );
            AccountResult {
                status,
                snapshot: Some(snapshot),
            }
        }
        Err(e) => {
            tracing::warn!(account = account_id, error = %e, "account sync failed");
            AccountResult {
                status: AccountStatus {
                    account_id: account_id.to_string(),
                    account_name: account_name.to_string(),
                    last_attempt_at: at,
                    last_success_at: previous.and_then(|p| p.last_success_at),
                    last_error: Some(e.to_string()),
                    roles: previous.map_or(0, |p| p.roles),
                    users: previous.map_or(0, |p| p.users),
                    policies: previous.map_or(0, |p| p.policies),
                    duration_ms,
                },
                snapshot: None,
            }
        }
    }
}

/// Sync every account, at most [`CONCURRENCY`] at a time. Results come back in account order.
pub async fn sync_accounts(
    cloud: &dyn Cloud,
    accounts: &[(String, String)],
    previous: &[AccountStatus],
) -> Vec<AccountResult> {
    let mut results: Vec<(usize, AccountResult)> =
        futures::stream::iter(accounts.iter().enumerate())
            .map(|(i, (id, name))| async move {
                let prev = previous.iter().find(|p| &p.account_id == id);
                (i, sync_account(cloud, id, name, prev).await)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
