//! Read-through cache in front of a Store. The Store stays the truth: writes always go to it
//! (so version checks can never be bypassed by a stale cache) and then invalidate the cached
//! copy. A cache failure is logged — at most once per [`WARN_EVERY`] while it lasts — and the
//! read falls through to the Store; a write never fails because of the cache.
//!
//! Staleness: a read that misses fetches from the Store and then fills the cache. If a write
//! invalidated the key in between, the fill is skipped, so a slow reader cannot put back the
//! value a writer just replaced — on every replica: the miss reads the key's invalidation stamp
//! together with the entry ([`Cache::get_stamped`]), every write moves the stamp
//! ([`Cache::invalidate`]), and the fill is a compare-and-set on it ([`Cache::fill`], one
//! script in Redis). A write that lands after the fill deletes the entry itself. So a read on
//! any replica never returns a copy older than the last write committed before it began.
//!
//! A failed invalidation (Redis unreachable during a write) would leave the old copy in Redis if
//! Redis comes back with its data (a network partition rather than a restart). So after one,
//! reads bypass the cache for a full TTL: every copy cached before the write has expired by then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Cache, CacheError};
use crate::resources::model::{AccountStatus, ResourceKey};
use crate::resources::stored::{
    ResourceAccount, ResourceChange, ResourceItem, ResourceStamp, ResourceWrite, WriteOutcome,
};
use crate::store::*;
use crate::telemetry::metrics;

/// Minimum time between two "cache unavailable" warnings.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

pub struct CachedStore {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    ttl: Duration,
    /// Origin of the millisecond clocks below (monotonic).
    started: Instant,
    /// Millis since `started` of the last "cache unavailable" warning.
    last_warning: AtomicI64,
    /// Millis since `started` before which reads must not trust the cache (failed invalidation).
    distrust_until: AtomicI64,
    /// A cache call failed and no call succeeded since: the next success is logged.
    degraded: AtomicBool,
    /// Bumped before every invalidation; a read-through fill is skipped when it moved.
    invalidations: AtomicU64,
}

impl CachedStore {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        CachedStore {
            store,
            cache,
            ttl,
            started: Instant::now(),
            last_warning: AtomicI64::new(i64::MIN),
            distrust_until: AtomicI64::new(i64::MIN),
            degraded: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
        }
    }

    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A cache call failed: warn, unless we already did within [`WARN_EVERY`].
    fn cache_failed(&self, op: &str, e: &CacheError) {
        self.degraded.store(true, Ordering::Relaxed);
        let now = self.now_ms();
        let every = millis(WARN_EVERY);
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= every
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                cache = self.cache.backend_name(),
                op,
                error = %e,
                "cache unavailable: serving from the store (next warning in {} s at the earliest)",
                WARN_EVERY.as_secs()
            );
        }
    }

    /// A cache call succeeded: say so once after an outage.
    fn cache_ok(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(cache = self.cache.backend_name(), "cache available again");
        }
    }

    fn now_ms(&self) -> i64 {
        millis(self.started.elapsed())
    }

    /// Drop the cached copy of request `id` after a write. When that fails and `may_be_stale`
    /// (an older copy may be cached), stop trusting the cache for one TTL.
    async fn invalidate(&self, id: &str, may_be_stale: bool) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        match self.cache.invalidate(&request_key(id)).await {
            Ok(()) => self.cache_ok(),
            Err(e) if !may_be_stale => self.cache_failed("invalidate", &e),
            Err(e) => {
                let until = self.now_ms().saturating_add(millis(self.ttl));
                self.distrust_until.fetch_max(until, Ordering::SeqCst);
                tracing::debug!(
                    request_id = id,
                    "cache invalidation failed: reads bypass the cache for the next {} s",
                    self.ttl.as_secs()
                );
                // The (rate-limited) warning; `op = invalidate` tells why hits stop for a while.
                self.cache_failed("invalidate", &e);
            }
        }
    }

    /// True while a failed invalidation may have left a stale copy in the cache.
    fn distrusted(&self) -> bool {
        self.now_ms() < self.distrust_until.load(Ordering::SeqCst)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn request_key(id: &str) -> String {
    format!("request:{id}")
}

#[async_trait]
impl Store for CachedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }

    fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    async fn create_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        self.store.create_request(request, event, outbox).await?;
        // Absence is never cached, so a new id has no copy that could be stale: this delete is
        // belt and braces, and its failure does not make the cache untrustworthy.
        self.invalidate(&request.id, false).await;
        Ok(())
    }

    async fn update_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let result = self.store.update_request(request, event, outbox).await;
        // Invalidate on conflict too (the cached copy may be the stale one that lost) and on a
        // backend error (the write may have landed anyway).
        self.invalidate(&request.id, true).await;
        result
    }

    async fn add_comment(
        &self,
        request_id: &str,
        comment: &Comment,
        max: usize,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let result = self
            .store
            .add_comment(request_id, comment, max, event, outbox)
            .await;
        self.invalidate(request_id, true).await;
        result
    }

    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>> {
        if self.distrusted() {
            return self.store.get_request(id).await;
        }
        let key = request_key(id);
        let backend = self.cache.backend_name();
        let stamp = match self.cache.get_stamped(&key).await {
            Ok((Some(bytes), _)) => {
                self.cache_ok();
                match serde_json::from_slice::<PolicyRequest>(&bytes) {
                    Ok(r) if r.id == id => {
                        metrics::cache_lookup(backend, "hit");
                        return Ok(Some(r));
                    }
                    Ok(_) => tracing::debug!(key, "cache entry for another id treated as a miss"),
                    Err(e) => {
                        tracing::debug!(key, error = %e, "corrupt cache entry treated as a miss")
                    }
                }
                metrics::cache_lookup(backend, "miss");
                // Not usable: refill only if nobody invalidated since (the stamp as of now).
                match self.cache.get_stamped(&key).await {
                    Ok((_, stamp)) => stamp,
                    Err(e) => {
                        self.cache_failed("get", &e);
                        return self.store.get_request(id).await;
                    }
                }
            }
            Ok((None, stamp)) => {
                self.cache_ok();
                metrics::cache_lookup(backend, "miss");
                stamp
            }
            Err(e) => {
                metrics::cache_lookup(backend, "error");
                // Redis is down or slow: do not pay for it a second time with a fill.
                self.cache_failed("get", &e);
                return self.store.get_request(id).await;
            }
        };
        let epoch = self.invalidations.load(Ordering::SeqCst);
        let found = self.store.get_request(id).await?;
        if let Some(r) = &found
            && self.invalidations.load(Ordering::SeqCst) == epoch
        {
            match serde_json::to_vec(r) {
                Ok(bytes) => match self.cache.fill(&key, &bytes, self.ttl, stamp).await {
                    Ok(false) => {
                        self.cache_ok();
                        tracing::debug!(key, "a write invalidated during the read: not cached");
                    }
                    Ok(true) => {
                        self.cache_ok();
                        // A write that invalidated while our SET was in flight may have deleted
                        // before it landed: delete again so the older copy does not stay.
                        if self.invalidations.load(Ordering::SeqCst) != epoch {
                            self.invalidate(id, true).await;
                        }
                    }
                    Err(e) => self.cache_failed("set", &e),
                },
                Err(e) => tracing::debug!(key, error = %e, "request not cacheable"),
            }
        }
        Ok(found)
    }

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>> {
        self.store.list_requests(filter, page).await
    }

    async fn request_postings(
        &self,
        key: &RequestKey,
        page: &PageRequest,
    ) -> StoreResult<Page<Posting>> {
        self.store.request_postings(key, page).await
    }

    async fn get_requests(&self, ids: &[String]) -> StoreResult<Vec<PolicyRequest>> {
        self.store.get_requests(ids).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.store.append_audit(event).await
    }

    async fn list_audit(
        &self,
        request_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.store.list_audit(request_id, page).await
    }

    async fn enqueue_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        self.store.enqueue_outbox(message).await
    }

    async fn get_outbox(&self, id: &str) -> StoreResult<Option<OutboxMessage>> {
        self.store.get_outbox(id).await
    }

    async fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>> {
        self.store.list_outbox(status, page).await
    }

    async fn due_outbox(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.store.due_outbox(channel, now, limit).await
    }

    async fn update_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        self.store.update_outbox(message).await
    }

    async fn outbox_backlog(&self) -> StoreResult<crate::store::OutboxBacklog> {
        self.store.outbox_backlog().await
    }

    // Synced resources are not cached here: each replica keeps them in memory and follows the
    // Store's change log, so Redis never holds them.

    async fn resource_accounts(&self) -> StoreResult<Vec<ResourceAccount>> {
        self.store.resource_accounts().await
    }

    async fn resource_account(&self, account_id: &str) -> StoreResult<Option<ResourceAccount>> {
        self.store.resource_account(account_id).await
    }

    async fn resource_stamps(&self, account_id: &str) -> StoreResult<Vec<ResourceStamp>> {
        self.store.resource_stamps(account_id).await
    }

    async fn list_resources(&self, account_id: &str) -> StoreResult<Vec<ResourceItem>> {
        self.store.list_resources(account_id).await
    }

    async fn get_resources(
        &self,
        account_id: &str,
        keys: &[ResourceKey],
    ) -> StoreResult<Vec<ResourceItem>> {
        self.store.get_resources(account_id, keys).await
    }

    async fn resource_changes(
        &self,
        account_id: &str,
        after: u64,
    ) -> StoreResult<Vec<ResourceChange>> {
        self.store.resource_changes(account_id, after).await
    }

    async fn write_resources(&self, write: &ResourceWrite) -> StoreResult<WriteOutcome> {
        self.store.write_resources(write).await
    }

    async fn put_account_status(&self, status: &AccountStatus) -> StoreResult<()> {
        self.store.put_account_status(status).await
    }

    async fn list_account_status(&self) -> StoreResult<Vec<AccountStatus>> {
        self.store.list_account_status().await
    }

    async fn create_api_token(
        &self,
        token: &crate::store::ApiToken,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        self.store.create_api_token(token, event).await
    }

    async fn get_api_token(&self, hash: &str) -> StoreResult<Option<crate::store::ApiToken>> {
        self.store.get_api_token(hash).await
    }

    async fn list_api_tokens(&self, user: &str) -> StoreResult<Vec<crate::store::ApiToken>> {
        self.store.list_api_tokens(user).await
    }

    async fn update_api_token(
        &self,
        token: &crate::store::ApiToken,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        self.store.update_api_token(token, event).await
    }

    async fn record_sign_in(&self, sign_in: &crate::store::SignIn) -> StoreResult<()> {
        self.store.record_sign_in(sign_in).await
    }

    async fn get_sign_in(&self, user: &str) -> StoreResult<Option<crate::store::SignIn>> {
        self.store.get_sign_in(user).await
    }

    async fn revoke_session(
        &self,
        sid: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.store.revoke_session(sid, until).await
    }

    async fn is_session_revoked(&self, sid: &str) -> StoreResult<bool> {
        self.store.is_session_revoked(sid).await
    }

    // Events from AWS: not cached (read by admins and role pages, written by the consumer).

    async fn get_finding(&self, key: &str) -> StoreResult<Option<Finding>> {
        self.store.get_finding(key).await
    }

    async fn put_finding(&self, finding: &Finding, outbox: &[OutboxMessage]) -> StoreResult<()> {
        self.store.put_finding(finding, outbox).await
    }

    async fn list_open_findings(&self, limit: usize) -> StoreResult<Vec<Finding>> {
        self.store.list_open_findings(limit).await
    }

    async fn record_denials(&self, denials: &[Denial]) -> StoreResult<()> {
        self.store.record_denials(denials).await
    }

    async fn list_denials(&self, role: &str, since: DateTime<Utc>) -> StoreResult<Vec<Denial>> {
        self.store.list_denials(role, since).await
    }

    async fn add_outside_change(&self, change: &OutsideChange) -> StoreResult<bool> {
        self.store.add_outside_change(change).await
    }

    async fn list_outside_changes(
        &self,
        resource: &str,
        limit: usize,
    ) -> StoreResult<Vec<OutsideChange>> {
        self.store.list_outside_changes(resource, limit).await
    }
}
