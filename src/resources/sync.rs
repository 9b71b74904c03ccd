//! Resource sync and refresh: from the Cloud into the Store, and from the Store into this
//! replica's in-memory view.
//!
//! - A **sync pass** ([`run`]) reads every configured account through the [`Cloud`], in parallel
//!   with bounded concurrency. One failing account (AccessDenied, missing spoke role, throttling
//!   that outlasts the retries) never stops the others; its stored resources are kept and its
//!   status says why. For each account read, only what changed is written: the content hash of
//!   every resource is compared with the stored one, changed resources are put, vanished ones
//!   deleted, and the account's generation moves forward by one ([`store_account`]).
//! - Buckets, queues and topics are read service by service (and queues and topics region by
//!   region, `aws.regions`) beside IAM. Each read stands alone: a denied or failing service
//!   keeps what was stored of it, gets its own line in the account's status, and never fails
//!   the others or IAM. When IAM itself fails nothing of the account is written (as before).
//! - A **refresh** ([`refresh_roles`]) re-reads named roles (after an approval applied changes,
//!   or "refresh this role") and writes just those.
//! - Every replica, the writer included, then **follows the Store** ([`catch_up`]): for each
//!   account whose generation moved it reads the change-log entries and re-reads only the items
//!   they name, and updates its index for those items alone; only a sync pass, a first load or a
//!   replica too far behind rebuilds the whole index.
//!
//! Two writers on one account (the sync leader and an approval on another replica, or the CLI's
//! `iamdesk sync` beside a running leader): each write names the generation it read and the
//! loser re-reads and tries again, so no write is lost and no generation is reused; and an item
//! is never replaced by one read from AWS earlier (`resources::stored`), so a sync that read the
//! account before an approval cannot put the role back as it was. Readers always see complete
//! items: there is no pointer to chunks that a concurrent writer could delete.
//!
//! Nothing here knows the `App`: callers pass the parts used ([`Deps`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;

use super::account::Account;
use super::model::{
    AccountSnapshot, AccountStatus, Resource, ResourceKey, ResourceKind, ServiceResource,
    ServiceStatus,
};
use super::service::{Outcome, Resources, Update};
use super::stored::{ResourceAccount, ResourceDelete, ResourceItem, ResourceStamp, ResourceWrite};
use crate::cache::Cache;
use crate::cloud::{Cloud, CloudError};
use crate::store::{Store, StoreError};

/// Accounts read at the same time: enough to hide latency, few enough not to be throttled.
pub const CONCURRENCY: usize = 8;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Writes of one account retried after losing to a concurrent writer.
const WRITE_ATTEMPTS: u32 = 5;

/// What syncing and refreshing use: the Store (the truth every replica reads), the Cloud (IAM),
/// and this replica's view (which also knows the configured accounts).
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub cloud: Arc<dyn Cloud>,
    pub resources: Arc<Resources>,
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn fetch_with_retries(
    cloud: &dyn Cloud,
    account_id: &str,
    account_name: &str,
) -> Result<AccountSnapshot, CloudError> {
    with_retries(account_id, || cloud.fetch_account(account_id, account_name)).await
}

/// `read` again after throttling, with exponential backoff, up to [`ATTEMPTS`] times.
async fn with_retries<T, F, Fut>(account_id: &str, mut read: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match read().await {
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

/// What [`store_account`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub generation: u64,
    /// Resources put or deleted.
    pub changed: usize,
    /// Resources left alone because the Store holds a later read of them.
    pub skipped: usize,
}

/// Write one account as just read from the Cloud (at `fetched_at`), changing only what differs
/// from the Store. A concurrent writer makes it read the Store and compare again.
pub async fn store_account(
    store: &dyn Store,
    snapshot: AccountSnapshot,
    fetched_at: DateTime<Utc>,
) -> Result<Stored, StoreError> {
    store_account_keeping(store, snapshot, fetched_at, &|_| false).await
}

/// [`store_account`], leaving alone the stored resources `keep` names that the snapshot lacks
/// (those of a service that could not be read: absent from the read is not gone from AWS).
pub async fn store_account_keeping(
    store: &dyn Store,
    snapshot: AccountSnapshot,
    fetched_at: DateTime<Utc>,
    keep: &(dyn Fn(&ResourceKey) -> bool + Sync),
) -> Result<Stored, StoreError> {
    store_account_known(store, snapshot, fetched_at, keep, None).await
}

/// [`store_account_keeping`] by a replica that holds the account (`known`, its view). When
/// that copy is at the stored generation, its resources stand in for the stored stamps, so a
/// sync of an unchanged account reads its entry, not one stamp per resource (issue 22: 11 MB
/// at 50,000 roles). Whatever was written since moved the generation: the conditional write
/// then fails and the next attempt compares with the stamps as stored.
pub async fn store_account_known(
    store: &dyn Store,
    snapshot: AccountSnapshot,
    fetched_at: DateTime<Utc>,
    keep: &(dyn Fn(&ResourceKey) -> bool + Sync),
    known: Option<&Account>,
) -> Result<Stored, StoreError> {
    let (account_id, account_name) = (snapshot.account_id.clone(), snapshot.account_name.clone());
    // The precision the stores compare at (as `ResourceItem::new` keeps it).
    let fetched_at = fetched_at.trunc_subsecs(6);
    let fresh: BTreeMap<ResourceKey, ResourceItem> = snapshot
        .into_resources()
        .map(|r| ResourceItem::new(r, fetched_at))
        .map(|i| (i.key(), i))
        .collect();
    for attempt in 0..WRITE_ATTEMPTS {
        let stored = store.resource_account(&account_id).await?;
        let (expected, incomplete) = stored
            .as_ref()
            .map_or((0, false), |a| (a.generation, a.incomplete));
        let current = known.filter(|k| {
            attempt == 0 && stored.is_some() && !incomplete && k.generation == expected
        });
        let stamps: HashMap<ResourceKey, ResourceStamp> = match current {
            // Older than any read: a later write would have moved the generation.
            Some(view) => view
                .hashes()
                .map(|(key, hash)| {
                    let stamp = ResourceStamp {
                        key: key.clone(),
                        hash,
                        fetched_at: DateTime::<Utc>::MIN_UTC,
                    };
                    (key, stamp)
                })
                .collect(),
            None => store
                .resource_stamps(&account_id)
                .await?
                .into_iter()
                .map(|s| (s.key.clone(), s))
                .collect(),
        };
        // A stamp read after our read is newer than what we hold: leave it.
        let puts = fresh
            .values()
            .filter(|i| {
                stamps
                    .get(&i.key())
                    .is_none_or(|s| s.hash != i.hash && s.fetched_at <= i.fetched_at)
            })
            .cloned()
            .collect();
        let deletes = stamps
            .values()
            .filter(|s| !fresh.contains_key(&s.key) && s.fetched_at <= fetched_at && !keep(&s.key))
            .map(|s| ResourceDelete {
                key: s.key.clone(),
                fetched_at,
            })
            .collect();
        let write = ResourceWrite {
            account_id: account_id.clone(),
            account_name: account_name.clone(),
            expected_generation: expected,
            synced_at: Some(fetched_at),
            puts,
            deletes,
            // The first write, or the repair of an interrupted one: readers load it whole.
            full: stored.is_none() || incomplete,
        };
        match store.write_resources(&write).await {
            Ok(out) => {
                return Ok(Stored {
                    generation: out.generation,
                    changed: out.applied.len(),
                    skipped: out.skipped.len(),
                });
            }
            Err(StoreError::Conflict(why)) => {
                tracing::debug!(account = %account_id, why, "resources written concurrently; comparing again");
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "the resources of account {account_id} kept changing while this sync wrote them"
    )))
}

/// What a sync read of one account's buckets, queues and topics: the resources, each service's
/// status, and which (service, region) could not be read.
struct ServicesRead {
    resources: Vec<ServiceResource>,
    statuses: Vec<ServiceStatus>,
    failed: Vec<(ResourceKind, Option<String>)>,
}

/// Read every service of one account, each on its own: buckets once, queues and topics in each
/// of the Cloud's regions.
async fn read_services(
    cloud: &dyn Cloud,
    account_id: &str,
    previous: Option<&AccountStatus>,
) -> ServicesRead {
    let regions = cloud.regions();
    let first = regions.first().cloned().unwrap_or_default();
    let mut reads = vec![(ResourceKind::S3, first)];
    for service in [ResourceKind::Sqs, ResourceKind::Sns] {
        reads.extend(regions.iter().map(|r| (service, r.clone())));
    }
    let results = futures::future::join_all(reads.iter().map(|(service, region)| {
        with_retries(account_id, move || {
            cloud.fetch_service(account_id, *service, region)
        })
    }))
    .await;
    let mut out = ServicesRead {
        resources: vec![],
        statuses: vec![],
        failed: vec![],
    };
    for ((service, region), result) in reads.into_iter().zip(results) {
        // A bucket's status is per account: the region read is only where it was listed from.
        let region_shown = if service == ResourceKind::S3 {
            "all".to_string()
        } else {
            region.clone()
        };
        match result {
            Ok(found) => {
                out.statuses.push(ServiceStatus {
                    service,
                    region: region_shown,
                    error: None,
                    count: found.len(),
                });
                out.resources.extend(found);
            }
            Err(e) => {
                tracing::warn!(account = account_id, service = service.as_str(), region, error = %e, "service sync failed");
                let count = previous
                    .and_then(|p| {
                        p.services
                            .iter()
                            .find(|s| s.service == service && s.region == region_shown)
                    })
                    .map_or(0, |s| s.count);
                out.statuses.push(ServiceStatus {
                    service,
                    region: region_shown,
                    error: Some(e.to_string()),
                    count,
                });
                out.failed
                    .push((service, (service != ResourceKind::S3).then_some(region)));
            }
        }
    }
    out
}

/// Sync one account: read it, store what changed, record its status. `previous` is its last
/// status (to keep `last_success_at` when this attempt fails). IAM and each service are read on
/// their own: what could not be read keeps its stored resources.
pub async fn sync_account(
    deps: &Deps,
    account_id: &str,
    account_name: &str,
    previous: Option<&AccountStatus>,
) -> Result<AccountStatus, StoreError> {
    let started = Instant::now();
    let at = Utc::now();
    let cloud = deps.cloud.as_ref();
    let (iam, services) = tokio::join!(
        fetch_with_retries(cloud, account_id, account_name),
        read_services(cloud, account_id, previous)
    );
    let iam_ok = iam.is_ok();
    let (mut snapshot, iam_error) = match iam {
        Ok(mut snapshot) => {
            snapshot.link_attachments();
            (snapshot, None)
        }
        Err(e) => {
            tracing::warn!(account = account_id, error = %e, "account sync failed");
            let empty = AccountSnapshot {
                account_id: account_id.to_string(),
                account_name: account_name.to_string(),
                ..Default::default()
            };
            (empty, Some(e.to_string()))
        }
    };
    let count = |k| snapshot.principals.iter().filter(|p| p.kind == k).count();
    let (roles, users, policies) = match iam_ok {
        true => (
            count(ResourceKind::Role),
            count(ResourceKind::User),
            snapshot.policies.len(),
        ),
        false => (
            previous.map_or(0, |p| p.roles),
            previous.map_or(0, |p| p.users),
            previous.map_or(0, |p| p.policies),
        ),
    };
    snapshot.services = services.resources;
    let failed = services.failed;
    let keep = move |key: &ResourceKey| {
        (!iam_ok && key.kind.is_iam())
            || failed.iter().any(|(kind, region)| {
                *kind == key.kind
                    && region
                        .as_ref()
                        .is_none_or(|r| key.name.starts_with(&format!("{r}/")))
            })
    };
    // Without IAM nothing is written: the account keeps what it had (and its `synced_at`, which
    // must not claim a read that failed); the services' statuses still say what they found.
    let stored = match iam_ok {
        true => {
            let known = deps.resources.account(account_id);
            store_account_known(deps.store.as_ref(), snapshot, at, &keep, known.as_deref()).await?
        }
        false => Stored::default(),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    if iam_ok {
        tracing::info!(
            account = account_id,
            roles,
            changed = stored.changed,
            generation = stored.generation,
            duration_ms,
            "account synced"
        );
    }
    let status = AccountStatus {
        account_id: account_id.to_string(),
        account_name: account_name.to_string(),
        last_attempt_at: at,
        last_success_at: match iam_ok {
            true => Some(at),
            false => previous.and_then(|p| p.last_success_at),
        },
        last_error: iam_error,
        roles,
        users,
        policies,
        duration_ms,
        services: services.statuses,
    };
    crate::telemetry::metrics::sync_account(
        account_id,
        "iam",
        status.last_error.is_none(),
        started.elapsed(),
    );
    for sv in &status.services {
        // One account's whole pass is timed; each service adds its result.
        crate::telemetry::metrics::sync_account(
            account_id,
            sv.service.as_str(),
            sv.error.is_none(),
            started.elapsed(),
        );
    }
    deps.store.put_account_status(&status).await?;
    Ok(status)
}

/// What one sync pass did, for the CLI and the logs.
pub struct SyncOutcome {
    pub statuses: Vec<AccountStatus>,
    /// [`Resources::generation`] afterwards.
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

/// One full pass: read and store every configured account (at most [`CONCURRENCY`] at a time,
/// each written as soon as it is read, so only that many accounts are in memory at once), then
/// follow the Store with a full index rebuild. Statuses come back in account order.
pub async fn run(deps: &Deps) -> Result<SyncOutcome, StoreError> {
    let previous = deps.store.list_account_status().await.unwrap_or_default();
    // Owned inputs, collected first, so the futures are `Send` whatever task runs the pass.
    let jobs: Vec<_> = deps
        .resources
        .configured()
        .iter()
        .map(|(id, name)| {
            let prev = previous.iter().find(|p| p.account_id == *id).cloned();
            let (deps, id, name) = (deps.clone(), id.clone(), name.clone());
            async move { sync_account(&deps, &id, &name, prev.as_ref()).await }
        })
        .collect();
    let results: Vec<Result<AccountStatus, StoreError>> = futures::stream::iter(jobs)
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let statuses = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    catch_up(deps, true).await?;
    Ok(SyncOutcome {
        statuses,
        generation: deps.resources.generation(),
    })
}

/// An account as stored now: its entry is read first, so the items are at least that new.
async fn load_account(store: &dyn Store, account: &ResourceAccount) -> Result<Account, StoreError> {
    let items = store.list_resources(&account.account_id).await?;
    Ok(Account::new(
        &account.account_id,
        &account.account_name,
        account.synced_at,
        account.generation,
        items.into_iter().map(|i| i.resource),
    ))
}

/// The change from generation `known` to the newest, from the change log; `None` when the log
/// does not reach back to `known` or says to reload.
async fn delta(
    store: &dyn Store,
    account_id: &str,
    known: u64,
) -> Result<Option<Update>, StoreError> {
    let changes = store.resource_changes(account_id, known).await?;
    let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
        return Ok(None);
    };
    if first.generation != known + 1 || changes.iter().any(|c| c.full) {
        return Ok(None);
    }
    let keys: BTreeSet<ResourceKey> = changes.iter().flat_map(|c| c.keys.clone()).collect();
    let keys: Vec<ResourceKey> = keys.into_iter().collect();
    let mut found: HashMap<ResourceKey, Resource> = store
        .get_resources(account_id, &keys)
        .await?
        .into_iter()
        .map(|i| (i.key(), i.resource))
        .collect();
    Ok(Some(Update::Delta {
        account_id: account_id.to_string(),
        from: known,
        to: last.generation,
        items: keys
            .into_iter()
            .map(|k| {
                let r = found.remove(&k);
                (k, r)
            })
            .collect(),
    }))
}

/// Bring this replica's view of `accounts` (as just read from the Store) up to date.
async fn follow(
    deps: &Deps,
    accounts: Vec<ResourceAccount>,
    rebuild: bool,
) -> Result<bool, StoreError> {
    let store = deps.store.as_ref();
    let view = deps.resources.snapshots();
    let mut updates = vec![];
    for stored in accounts {
        if !deps
            .resources
            .configured()
            .iter()
            .any(|(id, _)| *id == stored.account_id)
        {
            continue;
        }
        let held = view.iter().find(|a| a.account_id == stored.account_id);
        let update = match held {
            Some(a) if a.generation >= stored.generation => {
                match stored.synced_at.filter(|at| a.synced_at < Some(*at)) {
                    Some(at) => Update::SyncedAt {
                        account_id: stored.account_id.clone(),
                        at,
                    },
                    None => continue,
                }
            }
            Some(a) => match delta(store, &stored.account_id, a.generation).await? {
                Some(d) => d,
                None => Update::Full(load_account(store, &stored).await?),
            },
            None => Update::Full(load_account(store, &stored).await?),
        };
        updates.push(update);
    }
    if updates.is_empty() {
        return Ok(false);
    }
    let gaps: Vec<String> = updates
        .iter()
        .zip(deps.resources.update(updates.clone(), rebuild))
        .filter(|(_, o)| *o == Outcome::Gap)
        .filter_map(|(u, _)| match u {
            Update::Delta { account_id, .. } => Some(account_id.clone()),
            _ => None,
        })
        .collect();
    // Another writer in this process moved the copy meanwhile: load those accounts whole.
    let mut reloads = vec![];
    for id in gaps {
        if let Some(stored) = store.resource_account(&id).await? {
            reloads.push(Update::Full(load_account(store, &stored).await?));
        }
    }
    if !reloads.is_empty() {
        deps.resources.update(reloads, false);
    }
    Ok(!updates.is_empty())
}

/// Follow the Store: for every configured account whose generation moved, apply its change-log
/// entries (reading only the items they name) or load it whole when the log does not reach
/// back far enough. With `rebuild` (after a sync pass) the index is rebuilt if anything
/// changed, instead of updated. Returns whether anything changed.
pub async fn catch_up(deps: &Deps, rebuild: bool) -> Result<bool, StoreError> {
    let accounts = deps.store.resource_accounts().await?;
    follow(deps, accounts, rebuild).await
}

/// Every stored account as a snapshot (the sandbox starts from the demo accounts as last
/// stored, so changes approved before a restart stay).
pub async fn stored_snapshots(store: &dyn Store) -> Result<Vec<AccountSnapshot>, StoreError> {
    let mut out = vec![];
    for account in store.resource_accounts().await? {
        let mut snap = AccountSnapshot {
            account_id: account.account_id.clone(),
            account_name: account.account_name.clone(),
            synced_at: account.synced_at,
            ..Default::default()
        };
        for item in store.list_resources(&account.account_id).await? {
            match item.resource {
                Resource::Principal(p) => snap.principals.push(p),
                Resource::Policy(p) => snap.policies.push(p),
                Resource::Service(r) => snap.services.push(r),
            }
        }
        out.push(snap);
    }
    Ok(out)
}

/// Load every configured account from the Store (at startup). Returns the generation.
pub async fn load(deps: &Deps) -> Result<u64, StoreError> {
    catch_up(deps, true).await?;
    Ok(deps.resources.generation())
}

/// Re-read `roles` (account id, role name) from the Cloud and write each alone to the Store,
/// one write per account; then update this replica's view and index for those roles only.
/// Returns, per role, whether it still exists (a role gone from AWS is deleted). An account
/// that fails does not stop the others; the first failure is returned after all were tried.
pub async fn refresh_roles(
    deps: &Deps,
    roles: &[(String, String)],
) -> Result<Vec<bool>, RefreshError> {
    let mut exists = vec![false; roles.len()];
    let mut by_account: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (account, _)) in roles.iter().enumerate() {
        by_account.entry(account.as_str()).or_default().push(i);
    }
    let mut first_error = None;
    for (account, positions) in by_account {
        if let Err(e) = refresh_account(deps, account, roles, &positions, &mut exists).await {
            tracing::warn!(account, error = %e, "cannot refresh roles");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(exists),
    }
}

async fn refresh_account(
    deps: &Deps,
    account: &str,
    roles: &[(String, String)],
    positions: &[usize],
    exists: &mut [bool],
) -> Result<(), RefreshError> {
    let fetched_at = Utc::now();
    let mut fresh: BTreeMap<ResourceKey, Option<Resource>> = BTreeMap::new();
    for &i in positions {
        let name = &roles[i].1;
        let role = deps.cloud.fetch_role(account, name).await?;
        exists[i] = role.is_some();
        fresh.insert(ResourceKey::role(name), role.map(Resource::Principal));
    }
    write_fresh(deps, account, fresh, fetched_at).await?;
    Ok(())
}

/// A bucket, queue, topic or managed policy to re-read: (account, kind, region, name).
pub type ResourceAt = (String, ResourceKind, String, String);

/// Re-read buckets, queues, topics and managed policies after a change to them was applied,
/// like [`refresh_roles`]: each account in one write, this replica's view and index updated.
pub async fn refresh_resources(deps: &Deps, touched: &[ResourceAt]) -> Result<(), RefreshError> {
    let mut by_account: BTreeMap<&str, Vec<&ResourceAt>> = BTreeMap::new();
    for t in touched {
        by_account.entry(t.0.as_str()).or_default().push(t);
    }
    let mut first_error = None;
    for (account, items) in by_account {
        let fetched_at = Utc::now();
        let mut fresh: BTreeMap<ResourceKey, Option<Resource>> = BTreeMap::new();
        let mut failed = None;
        for (_, kind, region, name) in items {
            match deps
                .cloud
                .fetch_resource(account, *kind, region, name)
                .await
            {
                Ok(found) => {
                    let key = match &found {
                        Some(r) => r.key(),
                        None if *kind == ResourceKind::ManagedPolicy => {
                            ResourceKey::new(*kind, name)
                        }
                        None => ResourceKey::service(*kind, region, name),
                    };
                    fresh.insert(key, found);
                }
                Err(e) => failed = Some(RefreshError::from(e)),
            }
        }
        let written = write_fresh(deps, account, fresh, fetched_at)
            .await
            .map_err(RefreshError::from);
        if let Some(e) = failed.or(written.err()) {
            tracing::warn!(account, error = %e, "cannot refresh resources");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// [`refresh_roles`] for one role.
pub async fn refresh_role(deps: &Deps, account_id: &str, name: &str) -> Result<bool, RefreshError> {
    let exists = refresh_roles(deps, &[(account_id.to_string(), name.to_string())]).await?;
    Ok(exists.first().copied().unwrap_or(false))
}

/// Write a few resources of one account read at `fetched_at` (`None`: gone), then apply the
/// same change to this replica's view when it holds the generation the write started from;
/// otherwise (it is behind, or the Store kept a later read) follow the Store for this account.
async fn write_fresh(
    deps: &Deps,
    account_id: &str,
    fresh: BTreeMap<ResourceKey, Option<Resource>>,
    fetched_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let store = deps.store.as_ref();
    let account_name = deps
        .resources
        .configured()
        .iter()
        .find(|(id, _)| id == account_id)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    let mut write = ResourceWrite {
        account_id: account_id.to_string(),
        account_name,
        ..Default::default()
    };
    for (key, resource) in &fresh {
        match resource {
            Some(r) => write.puts.push(ResourceItem::new(r.clone(), fetched_at)),
            None => write.deletes.push(ResourceDelete {
                key: key.clone(),
                fetched_at,
            }),
        }
    }
    // This replica's copy usually is the Store's generation: no read needed.
    let mut expected = match deps.resources.account_generation(account_id) {
        Some(g) => g,
        None => store
            .resource_account(account_id)
            .await?
            .map_or(0, |a| a.generation),
    };
    for _ in 0..WRITE_ATTEMPTS {
        write.expected_generation = expected;
        match store.write_resources(&write).await {
            Ok(out) => {
                let mut follow_store = !out.skipped.is_empty();
                if out.generation > expected {
                    let items = out
                        .applied
                        .iter()
                        .map(|k| (k.clone(), fresh.get(k).cloned().flatten()))
                        .collect();
                    let applied = deps.resources.update(
                        vec![Update::Delta {
                            account_id: account_id.to_string(),
                            from: expected,
                            to: out.generation,
                            items,
                        }],
                        false,
                    );
                    follow_store |= applied.first() == Some(&Outcome::Gap);
                }
                if follow_store {
                    let stored = store.resource_account(account_id).await?;
                    follow(deps, stored.into_iter().collect(), false).await?;
                }
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => {
                expected = store
                    .resource_account(account_id)
                    .await?
                    .map_or(0, |a| a.generation);
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "the resources of account {account_id} kept changing; try again"
    )))
}

/// Key of the sync leader lock in the cache (Redis with several replicas).
pub const LEADER_LOCK: &str = "sync-leader";

/// How often every replica checks the Store for other replicas' writes.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(10);

/// Who this process is in the leader lock's value: the pid makes the holder findable by an
/// operator (and by the multi-replica test), the random part keeps two hosts' pids apart.
pub fn replica_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("pid{}-{}", std::process::id(), &id[..12])
}

/// How often the background job wakes: [`FOLLOW_EVERY`], or a quarter of a shorter interval.
pub fn tick_for(interval: Duration) -> Duration {
    FOLLOW_EVERY
        .min(interval / 4)
        .max(Duration::from_millis(100))
}

/// How long the sync leader lock lives unrenewed: `lock` when set, else the interval plus a
/// minute. Never less than the interval plus a tick plus a second: the leader renews it at each
/// sync, which starts on the first tick after the interval, and a lock lapsing between two
/// syncs of a live leader would let a second replica sync in the same interval.
pub fn leader_lock_ttl(interval: Duration, lock: Duration) -> Duration {
    if lock.is_zero() {
        interval + Duration::from_secs(60)
    } else {
        lock.max(interval + tick_for(interval) + Duration::from_secs(1))
    }
}

/// Background job: a sync every `interval` by whichever replica holds the leader lock (at once
/// when a configured account has nothing stored yet), and on every tick ([`tick_for`]) a cheap
/// read of the accounts' generations so every replica follows the others' writes. The lock
/// lives `lock_ttl` ([`leader_lock_ttl`]); a follower asks for it on every tick, so when a
/// leader dies (even mid-sync) another replica takes over within a tick of the lock lapsing.
/// Only the holder syncs, and a live leader's lock never lapses, so no interval has two syncs.
pub async fn background(deps: Deps, cache: Arc<dyn Cache>, interval: Duration, lock_ttl: Duration) {
    let every = interval.max(Duration::from_secs(1));
    let lock_ttl = leader_lock_ttl(every, lock_ttl);
    let replica = replica_id();
    let missing = deps
        .resources
        .configured()
        .iter()
        .any(|(id, _)| deps.resources.account_generation(id).is_none());
    let mut next_sync = tokio::time::Instant::now() + if missing { Duration::ZERO } else { every };
    let mut tick = tokio::time::interval(tick_for(every));
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= next_sync {
            next_sync = tokio::time::Instant::now() + every;
            let leads = match cache.try_lock(LEADER_LOCK, &replica, lock_ttl).await {
                Ok(held) => {
                    if !held {
                        tracing::debug!("another replica leads the sync");
                        // Ask again at the next tick: the leader may be gone.
                        next_sync = tokio::time::Instant::now();
                    }
                    held
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the cache for the sync lock; skipping");
                    false
                }
            };
            if leads {
                tracing::info!(replica = %replica, "sync started");
                // A sync may outlast the lock (500 accounts, a slow spoke): keep it while the
                // sync runs, so no other replica starts one beside it. A killed leader's keeper
                // dies with it and the lock lapses as before.
                let keeper = tokio::spawn(keep_lock(cache.clone(), replica.clone(), lock_ttl));
                let outcome = run(&deps).await;
                keeper.abort();
                match outcome {
                    Ok(o) => tracing::info!(
                        replica = %replica,
                        generation = o.generation,
                        failed = o.failed(),
                        "sync finished"
                    ),
                    Err(e) => tracing::warn!(error = %e, "sync could not store its results"),
                }
                continue;
            }
        }
        if let Err(e) = catch_up(&deps, false).await {
            tracing::warn!(error = %e, "cannot follow the synced resources");
        }
    }
}

/// Renew the leader lock every third of its lifetime, until aborted or it is lost.
async fn keep_lock(cache: Arc<dyn Cache>, replica: String, ttl: Duration) {
    let mut every = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
    // The first tick is immediate; the lock was just taken.
    every.tick().await;
    loop {
        every.tick().await;
        match cache.try_lock(LEADER_LOCK, &replica, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(replica = %replica, "the sync leader lock was lost during a sync");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the sync leader lock"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    /// A leader whose sync outlasts the lock keeps it (real Redis from `scripts/test`); once
    /// the keeper stops, as when the leader dies, the lock lapses and another replica takes it.
    #[tokio::test]
    async fn a_long_sync_keeps_the_leader_lock_until_it_ends() {
        let Ok(url) = std::env::var("REDIS_URL") else {
            eprintln!("skipping: REDIS_URL not set (scripts/test sets it)");
            return;
        };
        let prefix = format!("keep-{}:", uuid::Uuid::new_v4().simple());
        let cache: Arc<dyn Cache> = Arc::new(
            crate::cache::redis::RedisCache::connect(&url, &prefix)
                .await
                .expect("redis"),
        );
        let ttl = Duration::from_millis(300);
        assert!(
            cache
                .try_lock(LEADER_LOCK, "leader", ttl)
                .await
                .expect("lock")
        );
        let keeper = tokio::spawn(keep_lock(cache.clone(), "leader".into(), ttl));
        // Three lifetimes of the lock: without the keeper it would have lapsed twice.
        tokio::time::sleep(ttl * 3).await;
        assert!(
            !cache
                .try_lock(LEADER_LOCK, "other", ttl)
                .await
                .expect("lock"),
            "the lock is still the leader's"
        );
        keeper.abort();
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        assert!(
            cache
                .try_lock(LEADER_LOCK, "other", ttl)
                .await
                .expect("lock"),
            "lapsed once nobody keeps it"
        );
    }

    /// A service that could not be read keeps what was stored of it; what a read service no
    /// longer lists is deleted.
    #[tokio::test]
    async fn what_could_not_be_read_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("db")).expect("store");
        let first = super::super::demo::account("111122223333", "demo");
        let t0 = Utc::now();
        store_account(&store, first.clone(), t0)
            .await
            .expect("first");
        let mut second = first;
        // The queues' read failed; the buckets are gone from AWS; the topic is still there.
        second.services.retain(|r| r.kind == ResourceKind::Sns);
        let keep =
            |k: &ResourceKey| k.kind == ResourceKind::Sqs && k.name.starts_with("us-east-1/");
        store_account_keeping(&store, second, t0 + chrono::Duration::seconds(1), &keep)
            .await
            .expect("second");
        let items = store.list_resources("111122223333").await.expect("items");
        let count = |kind| items.iter().filter(|i| i.key().kind == kind).count();
        assert_eq!(count(ResourceKind::Sqs), 1, "kept");
        assert_eq!(count(ResourceKind::S3), 0, "deleted");
        assert_eq!(count(ResourceKind::Sns), 1);
        assert_eq!(count(ResourceKind::Role), 10);
    }

    /// A replica's copy at the stored generation stands in for the stamps: an unchanged demo
    /// account (roles, users, policies, buckets, queues, topics) writes nothing, one changed role
    /// is one write, a disappeared one is deleted; a copy behind the Store is not trusted.
    #[tokio::test]
    async fn a_current_copy_stands_in_for_the_stored_stamps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("db")).expect("store");
        let id = "111122223333";
        let first = super::super::demo::account(id, "demo");
        let t0 = Utc::now();
        store_account(&store, first.clone(), t0)
            .await
            .expect("first");
        let store = &store;
        let view = |generation| async move {
            let items = store.list_resources(id).await.expect("items");
            Account::new(
                id,
                "demo",
                None,
                generation,
                items.into_iter().map(|i| i.resource),
            )
        };
        let at = |s| t0 + chrono::Duration::seconds(s);
        let stored = store
            .resource_account(id)
            .await
            .expect("entry")
            .expect("stored");
        let copy = view(stored.generation).await;
        let keep = |_: &ResourceKey| false;
        let same = store_account_known(store, first.clone(), at(1), &keep, Some(&copy))
            .await
            .expect("unchanged");
        assert_eq!(
            same.changed, 0,
            "what the Store holds hashes the same from the copy"
        );
        assert_eq!(same.generation, stored.generation);

        let mut second = first.clone();
        second.principals[0].description = Some("changed".into());
        let gone = second.principals.pop().expect("a principal");
        let one = store_account_known(store, second.clone(), at(2), &keep, Some(&copy))
            .await
            .expect("changed");
        assert_eq!(one.changed, 2, "one put, one delete");
        let items = store.list_resources(id).await.expect("items");
        assert!(
            !items
                .iter()
                .any(|i| i.key() == Resource::Principal(gone.clone()).key())
        );

        // The copy is now a generation behind: the stamps are read, nothing is rewritten.
        let again = store_account_known(store, second, at(3), &keep, Some(&copy))
            .await
            .expect("stale copy");
        assert_eq!(again.changed, 0, "a stale copy is not trusted");
    }
}
