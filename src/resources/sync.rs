//! Resource sync: every configured account read through the [`Cloud`], in parallel with bounded
//! concurrency. One failing account (AccessDenied, missing spoke role, throttling that outlasts
//! the retries) never stops the others; its previous snapshot is kept and its status says why.

use std::sync::Arc;
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
/// Takes owned inputs so the futures are `'static` and the job can run on any task.
pub async fn sync_accounts(
    cloud: Arc<dyn Cloud>,
    accounts: Vec<(String, String)>,
    previous: Vec<AccountStatus>,
) -> Vec<AccountResult> {
    let jobs = accounts.into_iter().enumerate().map(|(i, (id, name))| {
        let cloud = cloud.clone();
        let prev = previous.iter().find(|p| p.account_id == id).cloned();
        async move {
            (
                i,
                sync_account(cloud.as_ref(), &id, &name, prev.as_ref()).await,
            )
        }
    });
    let mut results: Vec<(usize, AccountResult)> = futures::stream::iter(jobs)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// What one sync pass did, for the CLI and the logs.
pub struct SyncOutcome {
    pub statuses: Vec<AccountStatus>,
    pub generation: u64,
}

impl SyncOutcome {
    pub fn failed(&self) -> usize {
        self.statuses.iter().filter(|s| !s.ok()).count()
    }
}

/// The accounts a sync covers: `account_ids_to_name`, or the demo accounts in sandbox mode.
pub fn configured_accounts(config: &crate::config::Config) -> Vec<(String, String)> {
    match config.aws.mode {
        crate::config::AwsMode::Aws => config
            .account_ids_to_name
            .iter()
            .map(|(id, name)| (id.clone(), name.clone()))
            .collect(),
        crate::config::AwsMode::Sandbox => super::demo::DEMO_ACCOUNTS
            .iter()
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect(),
    }
}

/// One full pass: read every account, store good snapshots and every status, then rebuild this
/// replica's index from the Store (the truth other replicas read too).
pub async fn run(app: &crate::app::App) -> Result<SyncOutcome, crate::store::StoreError> {
    let accounts = configured_accounts(&app.config);
    let previous = app.store.list_account_status().await.unwrap_or_default();
    let results = sync_accounts(app.cloud.clone(), accounts, previous).await;
    let mut statuses = Vec::with_capacity(results.len());
    for r in results {
        if let Some(snapshot) = &r.snapshot {
            app.store.put_snapshot(snapshot).await?;
        }
        app.store.put_account_status(&r.status).await?;
        statuses.push(r.status);
    }
    let generation = reload(app).await?;
    cache_snapshots(app, generation).await;
    Ok(SyncOutcome {
        statuses,
        generation,
    })
}

/// Cache key of one account's snapshot at one generation.
pub fn snapshot_key(account_id: &str, generation: u64) -> String {
    format!("snapshot:{generation}:{account_id}")
}

/// Keep a copy of this generation in the cache so other replicas rebuild their index without
/// reading every snapshot from the Store. Best effort: the Store stays the truth.
async fn cache_snapshots(app: &crate::app::App, generation: u64) {
    let ttl = Duration::from_secs(app.config.sync.interval_seconds.max(60) * 2);
    for snapshot in app.resources.snapshots().iter() {
        let Ok(bytes) = serde_json::to_vec(snapshot.as_ref()) else {
            continue;
        };
        let key = snapshot_key(&snapshot.account_id, generation);
        if let Err(e) = app.cache.set(&key, &bytes, ttl).await {
            tracing::debug!(error = %e, "snapshot not cached");
            return;
        }
    }
}

/// The snapshots of `wanted` accounts at `generation` from the cache, if every one is there.
async fn cached_snapshots(
    app: &crate::app::App,
    wanted: &[(String, String)],
    generation: u64,
) -> Option<Vec<AccountSnapshot>> {
    let mut out = Vec::with_capacity(wanted.len());
    for (id, _) in wanted {
        let bytes = app.cache.get(&snapshot_key(id, generation)).await.ok()??;
        out.push(serde_json::from_slice(&bytes).ok()?);
    }
    Some(out)
}

/// Rebuild the in-memory index: from the cache when it holds this generation of every account,
/// else from the Store's snapshots of the configured accounts.
pub async fn reload(app: &crate::app::App) -> Result<u64, crate::store::StoreError> {
    let generation = app.store.resource_generation().await?;
    let wanted = configured_accounts(&app.config);
    let snapshots = match cached_snapshots(app, &wanted, generation).await {
        Some(s) => s,
        None => app.store.list_snapshots().await?,
    };
    let snapshots = snapshots
        .into_iter()
        .filter(|s| wanted.iter().any(|(id, _)| *id == s.account_id))
        .map(|mut s| {
            // The configured name wins over the one stored at sync time.
            if let Some((_, name)) = wanted.iter().find(|(id, _)| *id == s.account_id) {
                s.account_name = name.clone();
            }
            s
        })
        .collect();
    app.resources.replace(snapshots, generation);
    Ok(generation)
}

/// Key of the sync leader lock in the cache (Redis with several replicas).
pub const LEADER_LOCK: &str = "sync-leader";

/// Background job: a sync every `sync.interval_seconds` by whichever replica holds the leader
/// lock, and a cheap generation check every few seconds so the other replicas pick up its
/// results.
pub async fn background(app: std::sync::Arc<crate::app::App>) {
    let every = Duration::from_secs(app.config.sync.interval_seconds.max(60));
    let replica = uuid::Uuid::new_v4().to_string();
    let mut next_sync = tokio::time::Instant::now() + every;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= next_sync {
            next_sync = tokio::time::Instant::now() + every;
            // Held a little longer than the interval, renewed by the leader at each sync.
            match app
                .cache
                .try_lock(LEADER_LOCK, &replica, every + Duration::from_secs(60))
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("another replica leads the sync");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the cache for the sync lock; skipping");
                    continue;
                }
            }
            match run(&app).await {
                Ok(o) => tracing::info!(
                    generation = o.generation,
                    failed = o.failed(),
                    "sync finished"
                ),
                Err(e) => tracing::warn!(error = %e, "sync could not store its results"),
            }
            continue;
        }
        match app.store.resource_generation().await {
            Ok(g) if g > app.resources.generation() => {
                if let Err(e) = reload(&app).await {
                    tracing::warn!(error = %e, "cannot reload synced resources");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "generation check failed"),
        }
    }
}

/// Re-read one role from the Cloud into its account's stored snapshot and the index (after an
/// approved change, or "refresh this role"). `Ok(false)` when the role no longer exists.
pub async fn refresh_role(
    app: &crate::app::App,
    account_id: &str,
    name: &str,
) -> Result<bool, crate::error::AppError> {
    let fresh = app.cloud.fetch_role(account_id, name).await?;
    let snapshots = app.resources.snapshots();
    let mut updated = match snapshots.iter().find(|s| s.account_id == account_id) {
        Some(s) => (**s).clone(),
        None => AccountSnapshot {
            account_id: account_id.to_string(),
            account_name: app
                .config
                .account_ids_to_name
                .get(account_id)
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        },
    };
    updated
        .principals
        .retain(|p| !(p.kind == ResourceKind::Role && p.name.eq_ignore_ascii_case(name)));
    let exists = fresh.is_some();
    updated.principals.extend(fresh);
    app.store.put_snapshot(&updated).await?;
    reload(app).await?;
    Ok(exists)
}
