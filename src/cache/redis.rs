//! Redis cache through the `redis` crate's async [`ConnectionManager`].
//!
//! Redis is a cache (GUIDE §1): iamdesk must start and serve while it is down, and a dead or
//! unreachable Redis must cost milliseconds per call, never a hang. So:
//!
//! - [`RedisCache::connect`] only parses the URL (a bad URL is the one error a person must fix)
//!   and tries one warm-up PING; an unreachable server is logged, not an error.
//! - Connections are made lazily by a [`ConnectionManager`] configured with a connection
//!   timeout, a response timeout and one bounded reconnect retry, and every call is additionally
//!   capped by [`CALL_TIMEOUT`].
//! - A small circuit breaker sits in front of the manager: the first failed call drops the
//!   manager and, for [`RETRY_EVERY`], every call fails at once without touching the network.
//!   Then one call (the probe) tries a fresh manager, i.e. reconnects, while the others keep
//!   failing fast; if the probe succeeds its manager serves everybody, if not the circuit stays
//!   open for another [`RETRY_EVERY`]. So a hung Redis costs at most one [`CALL_TIMEOUT`] per
//!   window, for one caller. Dropping the manager (rather than relying on its own reconnect
//!   only) also recovers from failures the manager does not retry by itself, such as a server
//!   answering `LOADING` during the handshake.
//!
//! No message produced here contains the URL's credentials: servers are named by
//! [`redacted_url`].

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheError, CacheResult};

/// One TCP connect (+ handshake) attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// One command round trip.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Hard cap per call, whatever the manager does inside (connect attempts included).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an invalidation stamp outlives its last invalidation: far longer than any read
/// between `get_stamped` and `fill`, so an expired stamp cannot make an old fill look current.
pub const STAMP_TTL: Duration = Duration::from_secs(24 * 3600);
/// After a failure, calls fail fast for this long before the next connection attempt.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

pub struct RedisCache {
    client: redis::Client,
    config: ConnectionManagerConfig,
    prefix: String,
    /// The server without credentials, for messages and logs.
    server: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The manager in use and its generation (so a late failure report from an older manager
    /// cannot drop a newer one).
    manager: Option<(u64, ConnectionManager)>,
    generation: u64,
    /// While the circuit is open: no connection attempt before this instant.
    retry_at: Option<Instant>,
    /// Why the circuit opened, repeated in fail-fast errors.
    last_error: String,
}

/// A Redis URL reduced to `scheme://host[:port][/db]`: user, password and query string (which
/// may also carry a password) removed. Anything that does not look like a URL is not echoed.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redis.url>".to_string();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

impl RedisCache {
    /// Prepare a cache on `url` whose keys all start with `key_prefix`. An invalid URL is an
    /// error; an unreachable server is not (it is logged, and the cache connects when Redis
    /// answers). Takes at most about [`CALL_TIMEOUT`].
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisCache, CacheError> {
        let cache = Self::new_lazy(url, key_prefix)?;
        match cache.ping().await {
            Ok(()) => tracing::info!(server = %cache.server, "cache: redis is answering"),
            Err(e) => tracing::warn!(
                server = %cache.server,
                error = %e,
                "cache: redis is not answering; serving from the store until it does"
            ),
        }
        Ok(cache)
    }

    /// Like [`connect`](Self::connect) without the warm-up PING: no network I/O at all.
    pub fn new_lazy(url: &str, key_prefix: &str) -> Result<RedisCache, CacheError> {
        let server = redacted_url(url);
        // The crate's parse errors do not echo the URL; `server` carries no credentials.
        let client = redis::Client::open(url)
            .map_err(|e| CacheError::Unavailable(format!("invalid redis.url {server}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        Ok(RedisCache {
            client,
            config,
            prefix: key_prefix.to_string(),
            server,
            state: Mutex::new(State::default()),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The invalidation counter of `key` (see [`Cache::fill`]).
    fn stamp_key(&self, key: &str) -> String {
        format!("{}stamp:{key}", self.prefix)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after every statement: poison is harmless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live manager; or, when the circuit allows an attempt, a new one to probe with (`None`
    /// generation); or an immediate error.
    fn manager(&self) -> CacheResult<(Option<u64>, ConnectionManager)> {
        let mut state = self.state();
        if let Some((generation, manager)) = &state.manager {
            return Ok((Some(*generation), manager.clone()));
        }
        let now = Instant::now();
        if let Some(at) = state.retry_at
            && now < at
        {
            return Err(CacheError::Unavailable(format!(
                "redis {} unavailable ({}); next attempt in {} ms",
                self.server,
                state.last_error,
                at.duration_since(now).as_millis()
            )));
        }
        // Half-open: this caller probes; everybody else keeps failing fast until the probe has
        // succeeded (and published the manager) or the next window.
        state.retry_at = Some(now + RETRY_EVERY);
        // Lazy: connects on first use, so this never blocks while holding the lock.
        let manager =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                .map_err(|e| CacheError::Unavailable(format!("redis {}: {e}", self.server)))?;
        Ok((None, manager))
    }

    /// A probe succeeded: its manager serves everybody from now on.
    fn publish(&self, manager: ConnectionManager) {
        let mut state = self.state();
        if state.manager.is_none() {
            state.generation += 1;
            state.manager = Some((state.generation, manager));
            state.retry_at = None;
            crate::telemetry::metrics::cache_breaker(false);
            tracing::debug!(server = %self.server, "cache: connected to redis");
        }
    }

    /// A call failed. A live manager is dropped and the circuit opens: calls fail fast until
    /// [`RETRY_EVERY`] has passed. A failed probe only records why (its window is already set).
    fn failed(&self, generation: Option<u64>, error: &str) {
        let mut state = self.state();
        match generation {
            Some(generation) if matches!(state.manager, Some((g, _)) if g == generation) => {
                tracing::debug!(server = %self.server, error, "cache: redis call failed; backing off");
                state.manager = None;
                state.retry_at = Some(Instant::now() + RETRY_EVERY);
                state.last_error = error.to_string();
                crate::telemetry::metrics::cache_breaker(true);
            }
            Some(_) => {} // an older manager, already replaced
            None => {
                state.last_error = error.to_string();
                crate::telemetry::metrics::cache_breaker(true);
            }
        }
    }

    /// Run one command with the hard time cap; any failure opens the circuit.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> CacheResult<T> {
        let (generation, mut manager) = self.manager()?;
        let error =
            match tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut manager)).await {
                Ok(Ok(value)) => {
                    if generation.is_none() {
                        self.publish(manager);
                    }
                    return Ok(value);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} ms", CALL_TIMEOUT.as_millis()),
            };
        self.failed(generation, &error);
        Err(CacheError::Unavailable(format!(
            "redis {}: {error}",
            self.server
        )))
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.run::<Option<Vec<u8>>>(cmd).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        // PX in milliseconds, at least 1 (0 is an error for Redis).
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(ms);
        self.run::<()>(cmd).await
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        self.run::<()>(cmd).await
    }

    async fn ping(&self) -> CacheResult<()> {
        self.run::<()>(redis::cmd("PING")).await
    }

    async fn get_stamped(&self, key: &str) -> CacheResult<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        // One MGET: the entry and its stamp as of the same instant.
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.key(key)).arg(self.stamp_key(key));
        let mut got = self.run::<Vec<Option<Vec<u8>>>>(cmd).await?.into_iter();
        let value = got.next().flatten();
        Ok((value, got.next().flatten()))
    }

    async fn fill(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        stamp: Option<Vec<u8>>,
    ) -> CacheResult<bool> {
        // Compare-and-set on the stamp, atomically: an invalidation by any replica between the
        // caller's `get_stamped` and now has moved it, and the (possibly older) value stays out.
        const SCRIPT: &str = "if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end \
                              redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) \
                              return 1";
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(2)
            .arg(self.key(key))
            .arg(self.stamp_key(key))
            .arg(stamp.unwrap_or_default())
            .arg(value)
            .arg(ms);
        self.run::<i64>(cmd).await.map(|done| done == 1)
    }

    async fn invalidate(&self, key: &str) -> CacheResult<()> {
        const SCRIPT: &str = "redis.call('INCR', KEYS[2]) \
                              redis.call('PEXPIRE', KEYS[2], ARGV[1]) \
                              return redis.call('DEL', KEYS[1])";
        let ms = u64::try_from(STAMP_TTL.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(2)
            .arg(self.key(key))
            .arg(self.stamp_key(key))
            .arg(ms);
        self.run::<i64>(cmd).await.map(|_| ())
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> CacheResult<bool> {
        // Renew when we already hold it, else take it only if free: atomically, in one script.
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                                return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
                              elseif redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
                                return 1 \
                              else return 0 end";
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT).arg(1).arg(self.key(key)).arg(owner).arg(ms);
        self.run::<i64>(cmd).await.map(|held| held == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redacted_url("redis://user:s3cret@cache.internal:6379/0"),
            "redis://cache.internal:6379/0"
        );
        assert_eq!(redacted_url("rediss://:p@ss@h:6380/1"), "rediss://h:6380/1");
        assert_eq!(redacted_url("redis://h/0?password=x"), "redis://h/0");
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redacted_url("s3cret"), "<redis.url>");
    }

    #[test]
    fn invalid_url_is_an_error_without_the_password() {
        for url in ["redis://user:s3cret@host:notaport/0", "nonsense:s3cret", ""] {
            match RedisCache::new_lazy(url, "p:") {
                Ok(_) => panic!("{url} accepted"),
                Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
            }
        }
    }

    #[tokio::test]
    async fn dead_server_fails_fast_then_backs_off() {
        // Port 1 on loopback: nothing listens, connections are refused.
        let cache = RedisCache::new_lazy("redis://:s3cret@127.0.0.1:1/0", "p:").expect("url");
        let started = Instant::now();
        let first = cache.get("k").await;
        assert!(started.elapsed() < CALL_TIMEOUT + Duration::from_millis(200));
        let e = first.expect_err("nothing listens on port 1");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        // The circuit is open: the next call does not even try.
        let started = Instant::now();
        let second = cache.set("k", b"v", Duration::from_secs(1)).await;
        assert!(second.is_err());
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_server_costs_one_bounded_probe_while_others_fail_fast() {
        // Accepts connections and never answers: a hung Redis.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let cache = std::sync::Arc::new(
            RedisCache::new_lazy(&format!("redis://127.0.0.1:{port}/0"), "p:").expect("url"),
        );
        let probe = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = cache.get("k").await;
                (result.is_err(), started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        assert!(cache.get("k").await.is_err(), "nobody answers");
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "others fail fast while the probe waits"
        );
        let (failed, took) = probe.await.expect("probe task");
        assert!(failed);
        assert!(took < CALL_TIMEOUT + Duration::from_millis(300), "{took:?}");
    }
}
