//! Redis cache through the `redis` crate's async `ConnectionManager`. Created lazily: iamdesk
//! starts and serves while Redis is down, and the manager reconnects by itself when it is back.
//! Every call is bounded by short timeouts so a dead Redis costs milliseconds, never a hang.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheError, CacheResult};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Hard cap per call, whatever the manager does inside (reconnect attempts included).
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisCache {
    manager: ConnectionManager,
    prefix: String,
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://<redacted>@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl RedisCache {
    /// Parse the URL and prepare the connection manager without connecting. An invalid URL is
    /// an error; an unreachable server is not.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisCache, CacheError> {
        let client = redis::Client::open(url).map_err(|e| {
            CacheError::Unavailable(format!("invalid redis.url {}: {e}", redact_url(url)))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            CacheError::Unavailable(format!("cannot set up redis {}: {e}", redact_url(url)))
        })?;
        Ok(RedisCache {
            manager,
            prefix: key_prefix.to_string(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn run<T, F>(&self, f: F) -> CacheResult<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CacheError::Unavailable(format!("redis: {e}"))),
            Err(_) => Err(CacheError::Unavailable("redis: timed out".into())),
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        let mut conn = self.manager.clone();
        let key = self.key(key);
        self.run(async move { conn.get::<_, Option<Vec<u8>>>(key).await })
            .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let mut conn = self.manager.clone();
        let key = self.key(key);
        let ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let value = value.to_vec();
        self.run(async move { conn.pset_ex::<_, _, ()>(key, value, ms).await })
            .await
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        let mut conn = self.manager.clone();
        let key = self.key(key);
        self.run(async move { conn.del::<_, ()>(key).await }).await
    }

    async fn ping(&self) -> CacheResult<()> {
        let mut conn = self.manager.clone();
        self.run(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("redis://user:s3cret@cache.internal:6379/0"),
            "redis://<redacted>@cache.internal:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
