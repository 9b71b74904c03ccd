//! Cache backends and the read-through `CachedStore`, against real servers: the shared test
//! redis-server (`REDIS_URL`) and, for outage tests, a private `redis-server` child process this
//! module starts, stops and restarts itself.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use iamdesk::cache::memory::MemoryCache;
use iamdesk::cache::redis::RedisCache;
use iamdesk::cache::{Cache, CacheError, CacheResult, CachedStore};
use iamdesk::store::conformance::sample_request;
use iamdesk::store::*;

use crate::support::{free_port, redis_url, strict, unique};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// What any call may take while Redis is dead.
const FAST: Duration = Duration::from_secs(2);

// --- test doubles -----------------------------------------------------------------------------

/// The inner Store for `CachedStore` tests: requests in a map, with a read counter so a test
/// can tell a cache hit (no store read) from a miss. Everything else is unsupported.
#[derive(Default)]
struct MapStore {
    requests: Mutex<HashMap<String, PolicyRequest>>,
    reads: AtomicUsize,
    /// When set, the next `get_request` takes it: reads its value, says so, then waits to be
    /// let go before returning (a slow reader, for the refill race).
    gate: Mutex<Option<Arc<Gate>>>,
}

#[derive(Default)]
struct Gate {
    read: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

impl MapStore {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, PolicyRequest>> {
        self.requests.lock().expect("map store lock")
    }
}

fn unsupported<T>() -> StoreResult<T> {
    Err(StoreError::Backend("unsupported".into()))
}

#[async_trait]
impl Store for MapStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "map"
    }

    async fn create_request(
        &self,
        request: &PolicyRequest,
        _event: &AuditEvent,
        _outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let mut map = self.map();
        if map.contains_key(&request.id) {
            return Err(StoreError::Conflict(request.id.clone()));
        }
        map.insert(request.id.clone(), request.clone());
        Ok(())
    }

    async fn update_request(
        &self,
        request: &PolicyRequest,
        _event: &AuditEvent,
        _outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let mut map = self.map();
        let stored = map
            .get_mut(&request.id)
            .ok_or_else(|| StoreError::NotFound(request.id.clone()))?;
        if stored.version + 1 != request.version {
            return Err(StoreError::Conflict(format!(
                "stored version {} is not {}",
                stored.version,
                request.version - 1
            )));
        }
        *stored = request.clone();
        Ok(())
    }

    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let found = self.map().get(id).cloned();
        let gate = self.gate.lock().expect("gate lock").take();
        if let Some(gate) = gate {
            gate.read.notify_one();
            gate.go.notified().await;
        }
        Ok(found)
    }

    async fn add_comment(
        &self,
        request_id: &str,
        comment: &iamdesk::store::Comment,
        _max: usize,
        _event: &AuditEvent,
        _outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let mut map = self.map();
        let stored = map
            .get_mut(request_id)
            .ok_or_else(|| StoreError::NotFound(request_id.to_string()))?;
        stored.comments.push(comment.clone());
        Ok(())
    }

    async fn list_requests(
        &self,
        _filter: &RequestFilter,
        _page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>> {
        unsupported()
    }

    async fn request_postings(
        &self,
        _key: &iamdesk::store::RequestKey,
        _page: &PageRequest,
    ) -> StoreResult<Page<iamdesk::store::Posting>> {
        unsupported()
    }

    async fn get_requests(&self, _ids: &[String]) -> StoreResult<Vec<PolicyRequest>> {
        unsupported()
    }

    async fn append_audit(&self, _event: &AuditEvent) -> StoreResult<()> {
        unsupported()
    }

    async fn list_audit(
        &self,
        _request_id: Option<&str>,
        _page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        unsupported()
    }

    async fn get_outbox(&self, _id: &str) -> StoreResult<Option<OutboxMessage>> {
        unsupported()
    }

    async fn list_outbox(
        &self,
        _status: Option<OutboxStatus>,
        _page: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>> {
        unsupported()
    }

    async fn enqueue_outbox(&self, _message: &OutboxMessage) -> StoreResult<()> {
        unsupported()
    }

    async fn due_outbox(
        &self,
        _channel: &str,
        _now: DateTime<Utc>,
        _limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        unsupported()
    }

    async fn update_outbox(&self, _message: &OutboxMessage) -> StoreResult<()> {
        unsupported()
    }
}

/// A MemoryCache that can be switched into failing every call, like an unreachable Redis that
/// keeps its data (a network partition).
struct SwitchCache {
    inner: MemoryCache,
    down: AtomicBool,
}

impl SwitchCache {
    fn new() -> Self {
        SwitchCache {
            inner: MemoryCache::new(1000),
            down: AtomicBool::new(false),
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> CacheResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(CacheError::Unavailable("switched off".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Cache for SwitchCache {
    fn backend_name(&self) -> &'static str {
        "switch"
    }

    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        self.check()?;
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        self.check()?;
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        self.check()?;
        self.inner.delete(key).await
    }

    async fn ping(&self) -> CacheResult<()> {
        self.check()
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> CacheResult<bool> {
        self.check()?;
        self.inner.try_lock(key, owner, ttl).await
    }
}

/// A private redis-server on a fixed port, killed when dropped.
struct OwnRedis {
    child: Option<Child>,
    port: u16,
}

impl OwnRedis {
    /// `None` (test skipped) when there is no redis-server binary, unless the run is strict.
    fn available() -> bool {
        let found = std::path::Path::new(REDIS_SERVER).exists();
        assert!(found || !strict(), "{REDIS_SERVER} is required");
        if !found {
            eprintln!("skipping: {REDIS_SERVER} not found");
        }
        found
    }

    fn new(port: u16) -> OwnRedis {
        OwnRedis { child: None, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Start the server and wait until it accepts connections.
    fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it (SIGKILL: no goodbye to connected clients) and wait until it is gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

// --- helpers ----------------------------------------------------------------------------------

fn event(r: &PolicyRequest) -> AuditEvent {
    AuditEvent::new(
        &r.requester,
        "request.test",
        Some(&r.id),
        serde_json::json!({}),
    )
}

async fn create(store: &dyn Store, r: &PolicyRequest) {
    store
        .create_request(r, &event(r), &[])
        .await
        .expect("create_request");
}

/// `r` with one more comment-less change: a new justification and the next version.
fn next_version(r: &PolicyRequest, justification: &str) -> PolicyRequest {
    let mut next = r.clone();
    next.justification = justification.to_string();
    next.version += 1;
    next.updated_at = Utc::now();
    next
}

async fn get(store: &dyn Store, id: &str) -> PolicyRequest {
    match store.get_request(id).await {
        Ok(Some(r)) => r,
        other => panic!("get_request({id}) = {other:?}"),
    }
}

/// A `get_request` that must answer correctly and within [`FAST`].
async fn get_fast(store: &dyn Store, id: &str) -> PolicyRequest {
    let started = Instant::now();
    let r = get(store, id).await;
    let took = started.elapsed();
    assert!(took < FAST, "get_request took {took:?}");
    r
}

fn cached_over(cache: Arc<dyn Cache>, ttl: Duration) -> (Arc<MapStore>, CachedStore) {
    let inner = Arc::new(MapStore::default());
    let store = CachedStore::new(inner.clone(), cache, ttl);
    (inner, store)
}

async fn exercise_get_set_delete_ttl(cache: &dyn Cache, key: &str) {
    assert_eq!(cache.get(key).await.expect("get"), None, "absent at first");
    cache
        .set(key, b"\x00binary\xffvalue", Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        cache.get(key).await.expect("get").as_deref(),
        Some(&b"\x00binary\xffvalue"[..])
    );
    cache
        .set(key, b"second", Duration::from_secs(60))
        .await
        .expect("overwrite");
    assert_eq!(
        cache.get(key).await.expect("get").as_deref(),
        Some(&b"second"[..])
    );
    cache.delete(key).await.expect("delete");
    assert_eq!(cache.get(key).await.expect("get"), None, "deleted");
    cache
        .delete(key)
        .await
        .expect("deleting a missing key is fine");

    let short = format!("{key}:short");
    cache
        .set(&short, b"soon gone", Duration::from_millis(300))
        .await
        .expect("set");
    cache
        .set(key, b"stays", Duration::from_secs(60))
        .await
        .expect("set");
    assert!(cache.get(&short).await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        cache.get(&short).await.expect("get"),
        None,
        "expired after its own TTL"
    );
    assert_eq!(
        cache.get(key).await.expect("get").as_deref(),
        Some(&b"stays"[..]),
        "a longer TTL is not cut short"
    );
    cache.ping().await.expect("ping");
}

// --- MemoryCache ------------------------------------------------------------------------------

#[tokio::test]
async fn memory_cache_get_set_delete_and_ttl() {
    let cache = MemoryCache::new(100);
    assert_eq!(cache.backend_name(), "memory");
    exercise_get_set_delete_ttl(&cache, "k").await;
}

#[tokio::test]
async fn memory_cache_overwrite_takes_the_new_ttl() {
    let cache = MemoryCache::new(100);
    cache
        .set("k", b"long", Duration::from_secs(60))
        .await
        .expect("set");
    cache
        .set("k", b"short", Duration::from_millis(200))
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cache.get("k").await.expect("get"), None);
}

// --- RedisCache on the shared test server -----------------------------------------------------

#[tokio::test]
async fn redis_cache_get_set_delete_and_ttl() {
    let Some(url) = redis_url() else { return };
    let prefix = unique("it-cache-");
    let cache = RedisCache::connect(&url, &prefix).await.expect("connect");
    assert_eq!(cache.backend_name(), "redis");
    cache.ping().await.expect("the shared redis answers");
    exercise_get_set_delete_ttl(&cache, "k").await;
}

#[tokio::test]
async fn redis_cache_keys_carry_the_prefix_and_expire_in_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = unique("it-prefix-");
    let cache = RedisCache::connect(&url, &format!("{prefix}:"))
        .await
        .expect("connect");
    let other = RedisCache::connect(&url, &format!("{prefix}-other:"))
        .await
        .expect("connect");
    let raw = RedisCache::connect(&url, "").await.expect("connect");
    cache
        .set("request:1", b"mine", Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        raw.get(&format!("{prefix}:request:1"))
            .await
            .expect("get")
            .as_deref(),
        Some(&b"mine"[..]),
        "stored under the prefix"
    );
    assert_eq!(
        other.get("request:1").await.expect("get"),
        None,
        "another prefix does not see it"
    );
    // The TTL is Redis's own (SET ... PX), not a client-side one.
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:request:1"))
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!((50_000..=60_000).contains(&pttl), "PTTL {pttl}");
    cache.delete("request:1").await.expect("delete");
}

#[tokio::test]
async fn redis_cache_rejects_an_invalid_url_without_echoing_the_password() {
    for url in [
        "redis://user:s3cret@host:notaport/0",
        "http://user:s3cret@host/",
        "s3cret",
    ] {
        match RedisCache::connect(url, "p:").await {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
        }
    }
}

// --- CachedStore on two replicas sharing one Redis ---------------------------------------------

/// Issue 22 item 5: replica B misses, reads v1 from the Store and is slow to fill; meanwhile
/// replica A commits v2 and invalidates. B's fill must not put v1 back, or every replica would
/// read v1 until the TTL.
#[tokio::test]
async fn a_slow_refill_on_one_replica_never_puts_back_what_another_replica_replaced() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("{}:", unique("it-refill-"));
    let inner = Arc::new(MapStore::default());
    let replica = |cache: RedisCache| {
        Arc::new(CachedStore::new(
            inner.clone(),
            Arc::new(cache),
            Duration::from_secs(60),
        ))
    };
    let a = replica(RedisCache::connect(&url, &prefix).await.expect("connect"));
    let b = replica(RedisCache::connect(&url, &prefix).await.expect("connect"));

    let r = sample_request("racer@example.com", 0);
    create(a.as_ref(), &r).await;
    let gate = Arc::new(Gate::default());
    *inner.gate.lock().expect("gate lock") = Some(gate.clone());
    let slow = tokio::spawn({
        let b = b.clone();
        let id = r.id.clone();
        async move { get(b.as_ref(), &id).await }
    });
    gate.read.notified().await;
    // B holds v1, not yet cached. A commits v2.
    let v2 = next_version(&r, "replaced on replica A");
    a.update_request(&v2, &event(&v2), &[])
        .await
        .expect("update on A");
    gate.go.notify_one();
    assert_eq!(
        slow.await.expect("join"),
        r,
        "B's read began before the write"
    );
    for (name, replica) in [("A", &a), ("B", &b)] {
        assert_eq!(
            get(replica.as_ref(), &r.id).await,
            v2,
            "replica {name} reads the committed write, not B's late refill"
        );
    }
    // And the fill that was allowed is a real cache hit on both replicas.
    let reads = inner.reads();
    assert_eq!(get(a.as_ref(), &r.id).await, v2);
    assert_eq!(get(b.as_ref(), &r.id).await, v2);
    assert_eq!(inner.reads(), reads, "served from Redis");
}

#[tokio::test]
async fn redis_fill_is_refused_after_an_invalidation_by_another_client() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("{}:", unique("it-stamp-"));
    let a = RedisCache::connect(&url, &prefix).await.expect("connect");
    let b = RedisCache::connect(&url, &prefix).await.expect("connect");
    let ttl = Duration::from_secs(60);
    let (none, stamp) = b.get_stamped("k").await.expect("get_stamped");
    assert_eq!(none, None);
    a.invalidate("k").await.expect("invalidate");
    assert!(
        !b.fill("k", b"old", ttl, stamp).await.expect("fill"),
        "refused"
    );
    assert_eq!(b.get("k").await.expect("get"), None);
    let (_, stamp) = b.get_stamped("k").await.expect("get_stamped");
    assert!(
        b.fill("k", b"new", ttl, stamp).await.expect("fill"),
        "accepted"
    );
    assert_eq!(a.get("k").await.expect("get").as_deref(), Some(&b"new"[..]));
}

// --- CachedStore over MemoryCache -------------------------------------------------------------

#[tokio::test]
async fn cached_store_reads_through_and_invalidates_on_write() {
    let cache = Arc::new(MemoryCache::new(100));
    let (inner, store) = cached_over(cache.clone(), Duration::from_secs(60));
    assert_eq!(store.backend_name(), "map", "the inner store's name");
    store.ping().await.expect("ping is the store's");
    assert_eq!(store.cache().backend_name(), "memory");
    assert_eq!(store.inner().backend_name(), "map");

    let r = sample_request("reader@example.com", 0);
    create(&store, &r).await;
    assert_eq!(get(&store, &r.id).await, r);
    assert_eq!(inner.reads(), 1, "first read misses");
    assert_eq!(get(&store, &r.id).await, r);
    assert_eq!(inner.reads(), 1, "second read is a hit");
    let key = format!("request:{}", r.id);
    let cached = cache.get(&key).await.expect("get").expect("cached");
    let decoded: PolicyRequest = serde_json::from_slice(&cached).expect("JSON PolicyRequest");
    assert_eq!(decoded, r);

    let v2 = next_version(&r, "updated");
    store
        .update_request(&v2, &event(&v2), &[])
        .await
        .expect("update");
    assert_eq!(
        get(&store, &r.id).await,
        v2,
        "the write invalidated the copy"
    );
    assert_eq!(inner.reads(), 2);

    assert_eq!(store.get_request("missing").await.expect("get"), None);
    assert_eq!(
        cache.get("request:missing").await.expect("get"),
        None,
        "absence is not cached"
    );
}

#[tokio::test]
async fn cached_store_never_lets_a_stale_copy_win_a_write() {
    let cache = Arc::new(MemoryCache::new(100));
    let (inner, store) = cached_over(cache, Duration::from_secs(60));
    let r = sample_request("writer@example.com", 0);
    create(&store, &r).await;
    let seen = get(&store, &r.id).await; // cached at version 1

    // Somebody writes behind the cache's back (another replica, say).
    let theirs = next_version(&r, "theirs");
    inner
        .update_request(&theirs, &event(&theirs), &[])
        .await
        .expect("update the inner store directly");
    assert_eq!(get(&store, &r.id).await.version, 1, "still the stale copy");

    let mine = next_version(&seen, "mine");
    let err = store
        .update_request(&mine, &event(&mine), &[])
        .await
        .expect_err("the stale version must conflict");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let now = get(&store, &r.id).await;
    assert_eq!(
        (now.version, now.justification.as_str()),
        (2, "theirs"),
        "the conflict dropped the stale copy"
    );
}

#[tokio::test]
async fn cached_store_treats_a_corrupt_entry_as_a_miss() {
    let cache = Arc::new(MemoryCache::new(100));
    let (inner, store) = cached_over(cache.clone(), Duration::from_secs(60));
    let r = sample_request("corrupt@example.com", 0);
    create(&store, &r).await;
    let key = format!("request:{}", r.id);
    for garbage in [&b"not json"[..], b"{\"id\": 1}", b""] {
        cache
            .set(&key, garbage, Duration::from_secs(60))
            .await
            .expect("set");
        assert_eq!(get(&store, &r.id).await, r);
    }
    assert_eq!(inner.reads(), 3, "each corrupt entry was a miss");
    assert_eq!(get(&store, &r.id).await, r);
    assert_eq!(inner.reads(), 3, "and was replaced by a good copy");
}

#[tokio::test]
async fn cached_store_survives_a_failing_cache_and_never_serves_what_a_failed_invalidation_left() {
    let cache = Arc::new(SwitchCache::new());
    let ttl = Duration::from_millis(800);
    let (inner, store) = cached_over(cache.clone(), ttl);
    let r = sample_request("partition@example.com", 0);
    create(&store, &r).await;
    get(&store, &r.id).await; // cached at version 1

    // The cache becomes unreachable but keeps its data.
    cache.set_down(true);
    assert_eq!(
        get(&store, &r.id).await,
        r,
        "read falls through to the store"
    );
    let v2 = next_version(&r, "written during the outage");
    store
        .update_request(&v2, &event(&v2), &[])
        .await
        .expect("a cache failure never fails a write");
    let v3 = sample_request("partition@example.com", 0);
    create(&store, &v3).await;
    assert_eq!(get(&store, &r.id).await, v2);

    // Back again, still holding version 1: it must not be served.
    cache.set_down(false);
    let reads = inner.reads();
    assert_eq!(
        get(&store, &r.id).await,
        v2,
        "no stale copy after the outage"
    );
    assert_eq!(get(&store, &r.id).await, v2);
    assert_eq!(inner.reads(), reads + 2, "reads bypass the cache for a TTL");

    // After one TTL every pre-outage copy has expired: caching resumes.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(get(&store, &r.id).await, v2);
    let reads = inner.reads();
    assert_eq!(get(&store, &r.id).await, v2);
    assert_eq!(inner.reads(), reads, "a hit again");
}

#[tokio::test]
async fn cached_store_passes_the_store_conformance_suite_over_memory() {
    let inner = Arc::new(iamdesk::store::embedded::EmbeddedStore::in_memory().expect("store"));
    let store = Arc::new(CachedStore::new(
        inner,
        Arc::new(MemoryCache::new(1000)),
        Duration::from_secs(60),
    ));
    iamdesk::store::conformance::run_all(store).await;
}

// --- Redis outages, with a private redis-server ----------------------------------------------

/// Until `deadline`, read twice and return once the second read was a cache hit.
async fn wait_for_cache_hits(
    store: &CachedStore,
    inner: &MapStore,
    id: &str,
    expect: &PolicyRequest,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(&get_fast(store, id).await, expect);
        let reads = inner.reads();
        assert_eq!(&get_fast(store, id).await, expect);
        if inner.reads() == reads {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cache was not used again after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn redis_stopped_mid_test_reads_fall_through_and_the_cache_reconnects() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::new(free_port());
    redis.start();
    let cache: Arc<dyn Cache> = Arc::new(
        RedisCache::connect(&redis.url(), &unique("it-outage-"))
            .await
            .expect("connect"),
    );
    let ttl = Duration::from_secs(2);
    let (inner, store) = cached_over(cache.clone(), ttl);
    let r = sample_request("outage@example.com", 0);
    create(&store, &r).await;
    assert_eq!(get_fast(&store, &r.id).await, r);
    assert_eq!(get_fast(&store, &r.id).await, r);
    assert_eq!(inner.reads(), 1, "the second read came from Redis");

    redis.stop();
    for n in 1..=5 {
        assert_eq!(
            get_fast(&store, &r.id).await,
            r,
            "read {n} answered by the store"
        );
    }
    assert_eq!(inner.reads(), 6);
    let started = Instant::now();
    assert!(cache.ping().await.is_err(), "the cache knows Redis is gone");
    assert!(started.elapsed() < FAST);
    store
        .ping()
        .await
        .expect("health is the store's, not Redis's");

    // A write while Redis is down succeeds, quickly.
    let v2 = next_version(&r, "written while Redis was down");
    let started = Instant::now();
    store
        .update_request(&v2, &event(&v2), &[])
        .await
        .expect("write");
    assert!(started.elapsed() < FAST);
    assert_eq!(get_fast(&store, &r.id).await, v2);

    // Same port, fresh server: the cache reconnects and is used again.
    redis.start();
    wait_for_cache_hits(&store, &inner, &r.id, &v2).await;
    cache.ping().await.expect("reconnected");
}

#[tokio::test]
async fn redis_cache_created_while_redis_is_down_works_once_it_starts() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::new(free_port());
    let started = Instant::now();
    let cache = RedisCache::connect(&redis.url(), &unique("it-late-"))
        .await
        .expect("an unreachable Redis is not a startup error");
    assert!(started.elapsed() < FAST, "connect does not wait for Redis");
    assert!(cache.get("k").await.is_err());
    assert!(cache.set("k", b"v", Duration::from_secs(60)).await.is_err());

    let cache: Arc<dyn Cache> = Arc::new(cache);
    let (inner, store) = cached_over(cache.clone(), Duration::from_secs(60));
    let r = sample_request("late@example.com", 0);
    create(&store, &r).await;
    assert_eq!(get_fast(&store, &r.id).await, r, "served without Redis");

    redis.start();
    wait_for_cache_hits(&store, &inner, &r.id, &r).await;
    cache
        .set("k", b"v", Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        cache.get("k").await.expect("get").as_deref(),
        Some(&b"v"[..])
    );
}

/// Log lines written while the guard lives (on this thread: `#[tokio::test]` is single-threaded).
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().expect("log lock"))
            .matches(needle)
            .count()
    }
}

#[tokio::test]
async fn a_cache_outage_is_one_warning_not_one_per_request() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let cache = Arc::new(SwitchCache::new());
    let (_inner, store) = cached_over(cache.clone(), Duration::from_secs(60));
    let r = sample_request("quiet@example.com", 0);
    create(&store, &r).await;

    cache.set_down(true);
    for _ in 0..50 {
        assert_eq!(get(&store, &r.id).await, r);
    }
    let v2 = next_version(&r, "during the outage");
    store
        .update_request(&v2, &event(&v2), &[])
        .await
        .expect("update");
    assert_eq!(
        logs.count("WARN"),
        1,
        "one warning for 50 failed reads and a write"
    );
    assert_eq!(logs.count("serving from the store"), 1);

    cache.set_down(false);
    let r2 = sample_request("quiet@example.com", 0);
    create(&store, &r2).await;
    assert_eq!(logs.count("cache available again"), 1);
}

/// `kill -STOP` / `kill -CONT` a process we started.
fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} failed");
}

#[tokio::test]
async fn a_hung_redis_costs_bounded_time_never_a_hang() {
    if !OwnRedis::available() {
        return;
    }
    let mut redis = OwnRedis::new(free_port());
    redis.start();
    let cache: Arc<dyn Cache> = Arc::new(
        RedisCache::connect(&redis.url(), &unique("it-hung-"))
            .await
            .expect("connect"),
    );
    let (inner, store) = cached_over(cache.clone(), Duration::from_secs(60));
    let r = sample_request("hung@example.com", 0);
    create(&store, &r).await;
    get_fast(&store, &r.id).await;
    get_fast(&store, &r.id).await;
    assert_eq!(inner.reads(), 1, "cached");

    // Stopped, not dead: connections are accepted by the kernel but nothing ever answers.
    let child = redis.child.as_ref().expect("running");
    signal(child, "-STOP");
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(5) {
        assert_eq!(get_fast(&store, &r.id).await, r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads_while_hung = inner.reads() - 1;
    assert!(reads_while_hung >= 10, "{reads_while_hung} reads in 5 s");

    signal(child, "-CONT");
    wait_for_cache_hits(&store, &inner, &r.id, &r).await;
}

#[tokio::test]
async fn redis_sync_lock_has_one_holder_until_it_expires() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = format!("{}:", unique("lock"));
    let cache = RedisCache::connect(&url, &prefix).await.expect("connect");
    let ttl = Duration::from_millis(300);
    assert!(
        cache
            .try_lock("sync", "replica-a", ttl)
            .await
            .expect("lock")
    );
    assert!(
        !cache
            .try_lock("sync", "replica-b", ttl)
            .await
            .expect("lock"),
        "b must wait"
    );
    assert!(
        cache
            .try_lock("sync", "replica-a", ttl)
            .await
            .expect("renew"),
        "a renews"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        cache
            .try_lock("sync", "replica-b", ttl)
            .await
            .expect("lock"),
        "expired: b takes over"
    );
    assert!(
        !cache
            .try_lock("sync", "replica-a", ttl)
            .await
            .expect("lock")
    );
}
