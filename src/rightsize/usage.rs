//! Usage data: IAM Access Advisor per role, collected on its own schedule.
//!
//! A **refresh** ([`refresh`]) walks every synced account; for each role whose last attempt is
//! older than `rightsize.refresh_hours` it starts an Access Advisor job and polls it with
//! backoff ([`collect`]). Roles of one account run at most `rightsize.concurrency_per_account`
//! at a time (IAM throttles per account), accounts a few at a time. A failure (throttling that
//! outlasts the retries, a FAILED job, a job that never completes) is recorded on that role,
//! with its last good report kept, and never stops the other roles or the resource sync, which
//! this does not touch.
//!
//! Where it is kept: one entry per account in the Cache (`rightsize:usage:{account}`), written
//! by the one replica that holds the refresh lock. Usage is re-readable from AWS at any time, so
//! it is cache data in the GUIDE's sense: losing it costs one refresh, never a decision (a role
//! with no report gets no proposal).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::cloud::{AdvisorJob, Cloud, CloudError, ServiceAccess};
use crate::resources::model::ResourceKind;
use crate::resources::service::Resources;

/// Key of one account's usage in the cache.
pub fn key(account_id: &str) -> String {
    format!("rightsize:usage:{account_id}")
}

/// Key of the refresh lock (one replica refreshes).
pub const LOCK: &str = "rightsize-leader";

/// Polls of one job before it is given up (with the backoff below, about two minutes).
const MAX_POLLS: u32 = 16;
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL_WAIT: Duration = Duration::from_secs(15);
/// Tries of one AWS call when it is throttled.
const CALL_ATTEMPTS: u32 = 4;

/// One role's Access Advisor state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleUsage {
    /// Last time a report was asked for.
    pub attempted_at: Option<DateTime<Utc>>,
    /// Time of the report in `services` (the last one that succeeded).
    pub fetched_at: Option<DateTime<Utc>>,
    pub services: Vec<ServiceAccess>,
    /// Why the last attempt failed (cleared by a success).
    pub error: Option<String>,
}

/// Every role of one account, by lower-case role name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountUsage {
    pub roles: BTreeMap<String, RoleUsage>,
}

impl AccountUsage {
    pub fn role(&self, name: &str) -> Option<&RoleUsage> {
        self.roles.get(&name.to_ascii_lowercase())
    }
}

/// What refreshing reads and writes.
#[derive(Clone)]
pub struct Deps {
    pub cloud: Arc<dyn Cloud>,
    pub cache: Arc<dyn Cache>,
    pub resources: Arc<Resources>,
    pub config: super::RightsizeConfig,
}

/// The stored usage of one account (empty when there is none or the cache cannot be read).
pub async fn load(cache: &dyn Cache, account_id: &str) -> AccountUsage {
    match cache.get(&key(account_id)).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(account = account_id, error = %e, "unreadable right-size usage; ignored");
            AccountUsage::default()
        }),
        Ok(None) => AccountUsage::default(),
        Err(e) => {
            tracing::warn!(account = account_id, error = %e, "cannot read right-size usage");
            AccountUsage::default()
        }
    }
}

async fn save(deps: &Deps, account_id: &str, usage: &AccountUsage) {
    // Kept well past the next refresh so a missed refresh does not blank the page.
    let ttl = Duration::from_secs(deps.config.refresh_hours.max(1) * 3600 * 4)
        .max(Duration::from_secs(7 * 24 * 3600));
    let bytes = match serde_json::to_vec(usage) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode right-size usage");
            return;
        }
    };
    if let Err(e) = deps.cache.set(&key(account_id), &bytes, ttl).await {
        tracing::warn!(account = account_id, error = %e, "cannot store right-size usage");
    }
}

/// An AWS call, retried with backoff while it is throttled.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut wait = FIRST_POLL;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < CALL_ATTEMPTS => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Start one role's Access Advisor job and wait for it (polling with exponential backoff).
pub async fn collect(
    cloud: &dyn Cloud,
    account_id: &str,
    role_arn: &str,
) -> Result<Vec<ServiceAccess>, String> {
    let job = retried(|| cloud.start_access_advisor(account_id, role_arn))
        .await
        .map_err(|e| format!("GenerateServiceLastAccessedDetails: {e}"))?;
    let mut wait = FIRST_POLL;
    for _ in 0..MAX_POLLS {
        match retried(|| cloud.poll_access_advisor(account_id, &job))
            .await
            .map_err(|e| format!("GetServiceLastAccessedDetails: {e}"))?
        {
            AdvisorJob::Completed(services) => return Ok(services),
            AdvisorJob::Failed(why) => return Err(format!("Access Advisor job failed: {why}")),
            AdvisorJob::InProgress => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_POLL_WAIT);
            }
        }
    }
    Err(format!(
        "Access Advisor job {job} was still in progress after {MAX_POLLS} polls"
    ))
}

/// What one refresh did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Outcome {
    pub refreshed: usize,
    pub failed: usize,
    /// Skipped: refreshed less than `refresh_hours` ago.
    pub fresh: usize,
}

/// Refresh the roles of one account that are due (all of them with `force`).
pub async fn refresh_account(deps: &Deps, account_id: &str, force: bool) -> Outcome {
    let Some(account) = deps
        .resources
        .snapshots()
        .iter()
        .find(|a| a.account_id == account_id)
        .cloned()
    else {
        return Outcome::default();
    };
    let mut usage = load(deps.cache.as_ref(), account_id).await;
    let now = Utc::now();
    let due_after = chrono::Duration::hours(deps.config.refresh_hours as i64);
    let mut outcome = Outcome::default();
    let roles: Vec<(String, String)> = account
        .principals
        .iter()
        .filter(|p| p.kind == ResourceKind::Role)
        .filter(|p| {
            let due = force
                || usage
                    .role(&p.name)
                    .and_then(|u| u.attempted_at)
                    .is_none_or(|t| now - t >= due_after);
            if !due {
                outcome.fresh += 1;
            }
            due
        })
        .map(|p| (p.name.to_ascii_lowercase(), p.arn.clone()))
        .collect();
    let cloud = deps.cloud.clone();
    let results: Vec<(String, Result<Vec<ServiceAccess>, String>)> =
        futures::stream::iter(roles.into_iter().map(|(name, arn)| {
            let cloud = cloud.clone();
            let account_id = account_id.to_string();
            async move {
                let result = collect(cloud.as_ref(), &account_id, &arn).await;
                (name, result)
            }
        }))
        .buffer_unordered(deps.config.concurrency_per_account.max(1))
        .collect()
        .await;
    // Roles gone since the last refresh are dropped.
    usage
        .roles
        .retain(|name, _| account.principal(ResourceKind::Role, name).is_some());
    for (name, result) in results {
        let entry = usage.roles.entry(name.clone()).or_default();
        entry.attempted_at = Some(now);
        match result {
            Ok(services) => {
                entry.fetched_at = Some(now);
                entry.services = services;
                entry.error = None;
                outcome.refreshed += 1;
            }
            Err(e) => {
                tracing::warn!(account = account_id, role = name, error = %e, "Access Advisor failed for a role");
                entry.error = Some(e);
                outcome.failed += 1;
            }
        }
    }
    save(deps, account_id, &usage).await;
    tracing::info!(
        account = account_id,
        refreshed = outcome.refreshed,
        failed = outcome.failed,
        fresh = outcome.fresh,
        "right-size usage refreshed"
    );
    outcome
}

/// Accounts refreshed at the same time.
const ACCOUNTS_AT_ONCE: usize = 4;

/// Refresh every synced account (see the module doc).
pub async fn refresh(deps: &Deps, force: bool) -> Outcome {
    let accounts: Vec<String> = deps
        .resources
        .accounts()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let outcomes: Vec<Outcome> = futures::stream::iter(accounts.into_iter().map(|id| {
        let deps = deps.clone();
        async move { refresh_account(&deps, &id, force).await }
    }))
    .buffer_unordered(ACCOUNTS_AT_ONCE)
    .collect()
    .await;
    outcomes.into_iter().fold(Outcome::default(), |mut all, o| {
        all.refreshed += o.refreshed;
        all.failed += o.failed;
        all.fresh += o.fresh;
        all
    })
}

/// How often the background job looks for roles due a refresh.
const CHECK_EVERY: Duration = Duration::from_secs(600);

/// Background job: every [`CHECK_EVERY`], the replica holding [`LOCK`] refreshes the roles due.
pub async fn background(deps: Deps) {
    let replica = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        match deps
            .cache
            .try_lock(LOCK, &replica, CHECK_EVERY + Duration::from_secs(60))
            .await
        {
            Ok(true) => {
                refresh(&deps, false).await;
            }
            Ok(false) => tracing::debug!("another replica refreshes right-size usage"),
            Err(e) => tracing::warn!(error = %e, "cannot reach the cache for the right-size lock"),
        }
    }
}
