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

    /// Take (or renew) a lock held by `owner` for `ttl`; `true` when `owner` holds it now.
    /// Used so that with several replicas only one runs the resource sync.
    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> CacheResult<bool>;
}
