//! In-process cache (moka), each entry with its own TTL. The default: no server needed.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;

use super::{Cache, CacheResult};

#[derive(Clone)]
struct Entry {
    value: Vec<u8>,
    ttl: Duration,
}

/// Expires each entry after the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct MemoryCache {
    inner: moka::future::Cache<String, Entry>,
}

impl MemoryCache {
    /// A cache holding at most `max_entries` entries (moka evicts the least useful first).
    pub fn new(max_entries: u64) -> Self {
        MemoryCache {
            inner: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        Ok(self.inner.get(key).await.map(|e| e.value))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let entry = Entry {
            value: value.to_vec(),
            ttl,
        };
        self.inner.insert(key.to_string(), entry).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        self.inner.invalidate(key).await;
        Ok(())
    }

    async fn ping(&self) -> CacheResult<()> {
        Ok(())
    }

    /// One process, one replica: the lock is always ours.
    async fn try_lock(&self, _key: &str, _owner: &str, _ttl: Duration) -> CacheResult<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn set_get_delete_and_expire() {
        let c = MemoryCache::new(100);
        c.set("a", b"1", Duration::from_secs(60))
            .await
            .expect("set");
        c.set("short", b"2", Duration::from_millis(50))
            .await
            .expect("set");
        assert_eq!(c.get("a").await.expect("get").as_deref(), Some(&b"1"[..]));
        c.delete("a").await.expect("delete");
        assert_eq!(c.get("a").await.expect("get"), None);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            c.get("short").await.expect("get"),
            None,
            "expired after its own TTL"
        );
    }
}
