//! Speed, never truth (GUIDE §1). `memory` (moka, TTL) by default, `redis` when `redis.url` is
//! set. [`CachedStore`] wraps any [`Store`](crate::store::Store) with read-through caching of
//! requests; a cache failure is logged and the read falls through to the Store.

mod cached_store;
pub mod memory;
pub mod redis;

pub use cached_store::CachedStore;

use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

pub type CacheResult<T> = Result<T, CacheError>;

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    fn backend_name(&self) -> &'static str;
    /// Whether every replica sees the same entries (Redis), so a "no" may be cached too.
    fn is_shared(&self) -> bool {
        false
    }
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()>;
    async fn delete(&self, key: &str) -> CacheResult<()>;
    async fn ping(&self) -> CacheResult<()>;

    /// The entry under `key` and its invalidation stamp, read together: pass the stamp to
    /// [`fill`](Cache::fill) after reading the truth from the Store.
    async fn get_stamped(&self, key: &str) -> CacheResult<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        Ok((self.get(key).await?, None))
    }

    /// A read-through fill: store `value` unless `key` was [`invalidate`](Cache::invalidate)d,
    /// by this or any other replica, since [`get_stamped`](Cache::get_stamped) returned `stamp`
    /// (the value may then be older than the write that invalidated). `false` when refused.
    /// A private cache has no other writers: its owner's own bookkeeping is enough there.
    async fn fill(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        stamp: Option<Vec<u8>>,
    ) -> CacheResult<bool> {
        let _ = stamp;
        self.set(key, value, ttl).await.map(|()| true)
    }

    /// Drop `key` after a write to what it caches, and move its stamp so that fills begun
    /// before the write are refused everywhere.
    async fn invalidate(&self, key: &str) -> CacheResult<()> {
        self.delete(key).await
    }

    /// Take (or renew) a lock held by `owner` for `ttl`; `true` when `owner` holds it now.
    /// Used so that with several replicas only one runs the resource sync.
    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> CacheResult<bool>;
}
