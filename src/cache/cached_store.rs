//! Read-through cache in front of a Store. The Store stays the truth: writes always go to it
//! (so version checks can never be bypassed by a stale cache) and then invalidate the cached
//! copy. A cache failure is logged — at most once per interval while it lasts — and the read
//! falls through to the Store.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Cache, CacheError};
use crate::resources::model::AccountSnapshot;
use crate::resources::sync::AccountStatus;
use crate::store::*;

/// Minimum seconds between two "cache unavailable" warnings.
const WARN_EVERY_SECS: i64 = 30;

pub struct CachedStore {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    ttl: Duration,
    last_warning: AtomicI64,
}

impl CachedStore {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        CachedStore {
            store,
            cache,
            ttl,
            last_warning: AtomicI64::new(i64::MIN),
        }
    }

    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn warn(&self, op: &str, e: &CacheError) {
        let now = Utc::now().timestamp();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                cache = self.cache.backend_name(),
                op,
                error = %e,
                "cache unavailable: serving from the store"
            );
        }
    }

    async fn invalidate(&self, id: &str) {
        if let Err(e) = self.cache.delete(&request_key(id)).await {
            self.warn("invalidate", &e);
        }
    }
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
        self.invalidate(&request.id).await;
        Ok(())
    }

    async fn update_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let result = self.store.update_request(request, event, outbox).await;
        // Invalidate on conflict too: the cached copy may be the stale one that lost.
        self.invalidate(&request.id).await;
        result
    }

    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>> {
        let key = request_key(id);
        match self.cache.get(&key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<PolicyRequest>(&bytes) {
                Ok(r) => return Ok(Some(r)),
                Err(e) => tracing::debug!(error = %e, "corrupt cache entry treated as a miss"),
            },
            Ok(None) => {}
            Err(e) => {
                self.warn("get", &e);
                return self.store.get_request(id).await;
            }
        }
        let found = self.store.get_request(id).await?;
        if let Some(r) = &found
            && let Ok(bytes) = serde_json::to_vec(r)
            && let Err(e) = self.cache.set(&key, &bytes, self.ttl).await
        {
            self.warn("set", &e);
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
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.store.due_outbox(now, limit).await
    }

    async fn update_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        self.store.update_outbox(message).await
    }

    async fn put_snapshot(&self, snapshot: &AccountSnapshot) -> StoreResult<u64> {
        self.store.put_snapshot(snapshot).await
    }

    async fn list_snapshots(&self) -> StoreResult<Vec<AccountSnapshot>> {
        self.store.list_snapshots().await
    }

    async fn resource_generation(&self) -> StoreResult<u64> {
        self.store.resource_generation().await
    }

    async fn put_account_status(&self, status: &AccountStatus) -> StoreResult<()> {
        self.store.put_account_status(status).await
    }

    async fn list_account_status(&self) -> StoreResult<Vec<AccountStatus>> {
        self.store.list_account_status().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::memory::MemoryCache;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn cached_store_passes_the_store_conformance_suite() {
        let inner = Arc::new(EmbeddedStore::in_memory().expect("store"));
        let cache = Arc::new(MemoryCache::new(1000));
        let store = Arc::new(CachedStore::new(inner, cache, Duration::from_secs(60)));
        crate::store::conformance::run_all(store).await;
    }
}
