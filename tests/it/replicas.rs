//! Two `iamdesk serve` processes (the real binary) on one DynamoDB (moto) and one Redis, as in
//! the README's deployment (issue 17 item 3): what one replica writes the other reads and acts
//! on; ten approvals raced across both apply once; one replica syncs per interval; each outbox
//! mail goes out once; the sync leader killed with SIGKILL hands over within its lock's TTL; and
//! a read on either replica is never older than the last write committed on the other.
//!
//! AWS calls are counted from `scripts/moto_server.py`'s IAM write log, mails from moto's SES
//! state, audit events and outbox messages from the shared DynamoDB tables.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iamdesk::store::dynamo::DynamoStore;
use iamdesk::store::{OutboxStatus, PageRequest, Store};
use serde_json::{Value, json};

use crate::support::{
    account_id, create_role, free_port, iam_in, iamdesk_csrf_token, is_csrf_cookie, moto_endpoint,
    redis_url, unique,
};

const DEV: &str = "dev@example.com";
const BOSS: &str = "boss@example.com";
const SECRET: &str = "replicas-test-secret-0123456789abcdef0123456789";
/// Short, so the test sees several intervals and a handover in seconds.
const SYNC_INTERVAL: Duration = Duration::from_secs(2);
const LOCK_TTL: Duration = Duration::from_secs(4);

/// One `iamdesk serve` child process; SIGKILLed on drop.
struct Replica {
    name: &'static str,
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(name: &'static str, dir: &Path, config: &str) -> Replica {
        let port = free_port();
        let cfg = dir.join(format!("{name}.yaml"));
        std::fs::write(&cfg, format!("listen: 127.0.0.1:{port}\n{config}")).expect("config");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_iamdesk"))
            .arg("--config")
            .arg(&cfg)
            .arg("serve")
            .current_dir(dir)
            .env_remove("CONFIG_LOCATION")
            .env("IAMDESK_LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                "info,aws_config=warn,aws_smithy_runtime=warn,iamdesk::resources=debug",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn iamdesk serve");
        Replica {
            name,
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The JSON log lines whose message is `message`.
    fn logged(&self, message: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// What the test talks to: both replicas, one HTTP client, the CSRF pair both accept (same
/// `jwt_secret`), the shared Store, the spoke role.
struct Cluster {
    a: Replica,
    b: Replica,
    http: reqwest::Client,
    csrf: (String, String),
    store: DynamoStore,
    redis: redis::Client,
    key_prefix: String,
    account: String,
    role: String,
    _dir: tempfile::TempDir,
}

async fn wait_for(what: &str, within: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cluster() -> Option<Cluster> {
    let endpoint = moto_endpoint()?;
    let redis_url = redis_url()?;
    let _ = endpoint;
    let dir = tempfile::tempdir().expect("tempdir");
    let account = account_id();
    let role = unique("replicas-");
    let iam = iam_in(&account).await;
    create_role(&iam, &role, &[]).await;
    // Some bulk, so a sync takes long enough to be killed in the middle of.
    for i in 0..60 {
        create_role(&iam, &format!("{role}-filler-{i}"), &[]).await;
    }
    let domain = format!("{}.example.org", unique("replicas"));
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(&domain)
        .send()
        .await
        .expect("verify the sender's domain");
    let table_prefix = format!("{}-", unique("rep"));
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    iamdesk::migrate::run(&dynamo, &table_prefix)
        .await
        .expect("migrate");
    let key_prefix = format!("{}:", unique("replicas-"));
    let config = format!(
        "environment: dev\n\
         url: https://iamdesk.example.com\n\
         jwt_secret: {SECRET}\n\
         aws:\n  mode: aws\n  region: us-east-1\n\
         account_ids_to_name:\n  \"{account}\": spoke\n\
         policies:\n  role_name: iamdesk-spoke\n\
         auth:\n  get_user_by_header: true\n  get_groups_by_header: true\n\
         groups:\n  can_admin: [admins]\n\
         storage:\n  backend: dynamodb\n  dynamodb:\n    table_prefix: {table_prefix}\n\
         redis:\n  url: {redis_url}\n  key_prefix: \"{key_prefix}\"\n\
         sync:\n  interval_seconds: {}\n  leader_lock_seconds: {}\n\
         ses:\n  region: us-east-1\n  consoleme:\n    name: Replicas\n    sender: iamdesk@{domain}\n\
         outbox:\n  poll_seconds: 1\n",
        SYNC_INTERVAL.as_secs(),
        LOCK_TTL.as_secs(),
    );
    let a = Replica::start("a", dir.path(), &config);
    let b = Replica::start("b", dir.path(), &config);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    for r in [&a, &b] {
        // Ready, not only live: `serve` loads the synced accounts after opening its port.
        let (http, url) = (http.clone(), r.url("/readyz"));
        let log = r.log.clone();
        wait_for(
            &format!("replica {} ready", r.name),
            Duration::from_secs(20),
            async || {
                let ok = http.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                if !ok && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("\"ERROR\"")) {
                    panic!("{}", std::fs::read_to_string(&log).unwrap_or_default());
                }
                ok
            },
        )
        .await;
    }
    let resp = http
        .get(a.url("/requests"))
        .header("x-user", DEV)
        .send()
        .await
        .expect("GET /requests");
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| is_csrf_cookie(c))
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_string();
    let value = cookie.split_once('=').map(|(_, v)| v).unwrap_or_default();
    let token = iamdesk_csrf_token(SECRET.as_bytes(), value);
    let cluster = Cluster {
        a,
        b,
        http,
        csrf: (cookie, token),
        store: DynamoStore::new(dynamo, &table_prefix),
        redis: redis::Client::open(redis_url.as_str()).expect("redis url"),
        key_prefix,
        account,
        role,
        _dir: dir,
    };
    // The first sync (by whichever replica leads) and the follower's catch-up: both know the role.
    let path = format!("/api/v2/roles/{}/{}", cluster.account, cluster.role);
    for r in [&cluster.a, &cluster.b] {
        let (http, url) = (cluster.http.clone(), r.url(&path));
        wait_for(
            &format!("replica {} knows the synced role", r.name),
            Duration::from_secs(20),
            async || {
                http.get(&url)
                    .header("x-user", DEV)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
    }
    Some(cluster)
}

impl Cluster {
    fn arn(&self) -> String {
        format!("arn:aws:iam::{}:role/{}", self.account, self.role)
    }

    async fn create(&self, on: &Replica, policy: &str) -> String {
        let body = json!({"justification": "two replicas", "changes": {"changes": [{
            "change_type": "inline_policy",
            "principal": {"principal_type": "AwsResource", "principal_arn": self.arn()},
            "policy_name": policy, "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::r/*"}]}}}]}});
        let resp = self
            .http
            .post(on.url("/api/v2/request"))
            .header("x-user", DEV)
            .header("x-groups", "dev")
            .header("cookie", &self.csrf.0)
            .header("x-csrf-token", &self.csrf.1)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = resp.status();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "create on {}: {v}", on.name);
        v["request_id"].as_str().expect("id").to_string()
    }

    async fn get(&self, on: &Replica, id: &str) -> Value {
        let resp = self
            .http
            .get(on.url(&format!("/api/v2/requests/{id}")))
            .header("x-user", BOSS)
            .header("x-groups", "admins")
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200, "GET {id} on {}", on.name);
        resp.json().await.expect("json")
    }

    async fn modify(&self, on: &Replica, who: &str, id: &str, model: Value) -> reqwest::Response {
        self.http
            .put(on.url(&format!("/api/v2/requests/{id}")))
            .header("x-user", who)
            .header("x-groups", if who == BOSS { "admins" } else { "dev" })
            .header("cookie", &self.csrf.0)
            .header("x-csrf-token", &self.csrf.1)
            .json(&json!({ "modification_model": model }))
            .send()
            .await
            .expect("PUT")
    }

    async fn approved_audits(&self, id: &str) -> usize {
        self.store
            .list_audit(Some(id), &PageRequest::first(100))
            .await
            .expect("audit")
            .items
            .iter()
            .filter(|e| e.action == "request.approved")
            .count()
    }

    /// PutRolePolicy calls moto received for our role, by policy name.
    async fn puts(&self) -> BTreeMap<String, usize> {
        let endpoint = moto_endpoint().expect("moto");
        let writes: Vec<Value> = self
            .http
            .get(format!("{endpoint}/moto-api/iamdesk/iam-writes"))
            .send()
            .await
            .expect("iam-writes")
            .json()
            .await
            .expect("json");
        let mut by_policy = BTreeMap::new();
        for w in writes {
            if w["role"] == self.role.as_str() && w["action"] == "PutRolePolicy" {
                let name = w["policy"].as_str().unwrap_or_default().to_string();
                *by_policy.entry(name).or_insert(0) += 1;
            }
        }
        by_policy
    }

    /// The sync leader lock's holder, as stored in Redis (`pid<N>-...`).
    async fn lock_holder(&self) -> Option<String> {
        let mut conn = self
            .redis
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd("GET")
            .arg(format!(
                "{}{}",
                self.key_prefix,
                iamdesk::resources::sync::LEADER_LOCK
            ))
            .query_async::<Option<String>>(&mut conn)
            .await
            .expect("GET lock")
    }
}

fn holder_pid(holder: &str) -> Option<u32> {
    holder.strip_prefix("pid")?.split('-').next()?.parse().ok()
}

/// The request id in a mail's "See the request here: {url}/policies/request/{id}." line.
fn request_in(text: &str) -> String {
    text.split("/policies/request/")
        .nth(1)
        .and_then(|rest| rest.split(['.', '"']).next())
        .unwrap_or_default()
        .to_string()
}

/// Every message moto SES accepted whose subject names `needle`.
async fn mails(needle: &str) -> Vec<Value> {
    let endpoint = moto_endpoint().expect("moto");
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("data.json")
        .json()
        .await
        .expect("json");
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(needle)))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_dynamodb_and_redis_act_as_one_portal() {
    let started = Instant::now();
    let Some(cluster) = cluster().await else {
        return;
    };
    let c = &cluster;
    let (a, b) = (&c.a, &c.b);
    eprintln!("two replicas up and synced in {:?}", started.elapsed());

    // 1. Created on A, seen and approved on B, approved as seen from A.
    let first = c.create(a, "seen-on-b").await;
    let on_b = c.get(b, &first).await;
    assert_eq!(on_b["status"], "pending", "{on_b}");
    let resp = c
        .modify(
            b,
            BOSS,
            &first,
            json!({"command": "approve_request", "version": on_b["version"]}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(c.get(a, &first).await["status"], "approved");

    // 2. Ten requests, each approved on both replicas at once: one approval wins, once.
    let mut ids = vec![];
    for i in 0..10 {
        let on = if i % 2 == 0 { a } else { b };
        ids.push(c.create(on, &format!("raced-{i}")).await);
    }
    let mut races = vec![];
    for id in &ids {
        for on in [a, b] {
            let model = json!({"command": "approve_request", "version": 1});
            races.push(async move {
                let resp = c.modify(on, BOSS, id, model).await;
                (
                    id.clone(),
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default(),
                )
            });
        }
    }
    let outcomes = futures::future::join_all(races).await;
    let mut wins: HashMap<String, usize> = HashMap::new();
    for (id, status, text) in &outcomes {
        match status {
            200 => *wins.entry(id.clone()).or_default() += 1,
            409 => {}
            other => panic!("approval of {id}: {other} {text}"),
        }
    }
    for id in &ids {
        assert_eq!(
            wins.get(id),
            Some(&1),
            "exactly one approval of {id} won: {outcomes:?}"
        );
        assert_eq!(c.get(b, id).await["status"], "approved");
        assert_eq!(
            c.approved_audits(id).await,
            1,
            "one request.approved audit for {id}"
        );
    }
    let puts = c.puts().await;
    let expected: BTreeMap<String, usize> = std::iter::once("seen-on-b".to_string())
        .chain((0..10).map(|i| format!("raced-{i}")))
        .map(|p| (p, 1))
        .collect();
    assert_eq!(puts, expected, "each approved policy was put into AWS once");

    // 3. Reads on either replica never older than the last committed write on the other, while
    //    readers on both keep missing and refilling the shared cache.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut hammers = vec![];
    for base in [a.base.clone(), b.base.clone()] {
        let (http, stop, reads, id) = (c.http.clone(), stop.clone(), reads.clone(), first.clone());
        hammers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = http
                    .get(format!("{base}/api/v2/requests/{id}"))
                    .header("x-user", BOSS)
                    .header("x-groups", "admins")
                    .send()
                    .await;
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..8 {
        for (writer, reader) in [(a, b), (b, a)] {
            let text = format!("comment {i} written on {}", writer.name);
            let resp = c
                .modify(
                    writer,
                    BOSS,
                    &first,
                    json!({"command": "add_comment", "comment_text": text}),
                )
                .await;
            assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
            let seen = c.get(reader, &first).await.to_string();
            assert!(
                seen.contains(&text),
                "{} reads what {} committed: {text}",
                reader.name,
                writer.name
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.await.expect("reader");
    }
    eprintln!(
        "read-your-writes across replicas held over {} concurrent reads",
        reads.load(Ordering::Relaxed)
    );

    // 4. Each outbox mail sent once, whichever replica's worker claimed it.
    let store = &c.store;
    wait_for("the outbox drained", Duration::from_secs(20), async || {
        store
            .list_outbox(Some(OutboxStatus::Pending), &PageRequest::first(500))
            .await
            .is_ok_and(|p| p.items.is_empty())
    })
    .await;
    // What the Store says was sent, per (subject, request), against what SES received.
    let outbox = store
        .list_outbox(None, &PageRequest::first(1000))
        .await
        .expect("outbox")
        .items;
    let mut stored: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in outbox.iter().filter(|m| m.channel == "email") {
        assert_eq!(m.status, OutboxStatus::Sent, "{m:?}");
        let subject = m.payload["subject"].as_str().unwrap_or_default();
        let text = m.payload["text"].as_str().unwrap_or_default();
        *stored
            .entry((subject.to_string(), request_in(text)))
            .or_default() += 1;
    }
    let mut received: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in mails(&c.arn()).await {
        let subject = m["subject"].as_str().unwrap_or_default();
        let body = m["body"].as_str().unwrap_or_default();
        *received
            .entry((subject.to_string(), request_in(body)))
            .or_default() += 1;
    }
    assert_eq!(
        received, stored,
        "every stored mail reached SES exactly once"
    );
    for id in std::iter::once(&first).chain(&ids) {
        let with = |s: &str| {
            stored
                .iter()
                .filter(|((subject, r), _)| r == id && subject.contains(s))
                .map(|(_, n)| n)
                .sum::<usize>()
        };
        assert_eq!(with("has been created"), 1, "{id}: {stored:?}");
        assert_eq!(with("approved and committed"), 1, "{id}: {stored:?}");
    }
    assert_eq!(
        stored
            .iter()
            .filter(|((s, _), _)| s.contains("new comment"))
            .map(|(_, n)| n)
            .sum::<usize>(),
        16,
        "one mail per comment"
    );

    // 5. Sync: one replica per interval, the lock holder; the other never syncs.
    let holder = c.lock_holder().await.expect("a sync leader");
    let leader_pid = holder_pid(&holder).expect("pid in the lock");
    let (leader, follower) = if leader_pid == a.pid() {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(
        leader.pid(),
        leader_pid,
        "the lock names a replica: {holder}"
    );
    let by_leader = leader.logged("sync finished");
    assert!(
        by_leader.len() >= 2,
        "the leader synced every {SYNC_INTERVAL:?} ({:?} so far): {}",
        started.elapsed(),
        leader.log_text()
    );
    assert!(
        by_leader.iter().all(|l| l["replica"] == holder.as_str()),
        "{by_leader:?}"
    );
    // Once per interval: consecutive syncs start an interval apart (give or take a tick).
    let starts: Vec<chrono::DateTime<chrono::FixedOffset>> = leader
        .logged("sync started")
        .iter()
        .filter_map(|l| chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str()?).ok())
        .collect();
    for pair in starts.windows(2) {
        let gap = (pair[1] - pair[0]).to_std().unwrap_or_default();
        assert!(
            gap + Duration::from_millis(100) >= SYNC_INTERVAL,
            "two syncs {gap:?} apart: {starts:?}"
        );
    }
    assert!(
        follower.logged("sync started").is_empty(),
        "{}",
        follower.log_text()
    );

    // 6. The leader killed with SIGKILL in the middle of a sync: the follower takes over.
    let before = leader.logged("sync started").len();
    let deadline = Instant::now() + SYNC_INTERVAL * 3;
    while leader.logged("sync started").len() == before {
        assert!(Instant::now() < deadline, "the leader syncs again");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let finished_before = leader.logged("sync finished").len();
    let killed_at = Instant::now();
    let killed = Command::new("kill")
        .args(["-KILL", &leader.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success(), "SIGKILL the leader");
    // Whatever the dead leader wrote before the signal is in its log by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mid_sync = leader.logged("sync finished").len() == finished_before;
    eprintln!(
        "leader {} killed {} a sync",
        leader.name,
        if mid_sync {
            "in the middle of"
        } else {
            "just after"
        }
    );
    let follower_pid = follower.pid();
    let takeover = loop {
        let holder = c.lock_holder().await;
        if holder.as_deref().and_then(holder_pid) == Some(follower_pid) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < LOCK_TTL + SYNC_INTERVAL * 2,
            "no takeover: lock {holder:?}\n{}",
            follower.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The lock lapses LOCK_TTL after the dead leader's last renewal (at the start of the sync it
    // died in); a follower asks on every tick (a quarter of the interval here).
    assert!(
        takeover <= LOCK_TTL + Duration::from_secs(1),
        "took over after {takeover:?}"
    );
    wait_for(
        "the new leader finished a sync",
        SYNC_INTERVAL * 3,
        async || !follower.logged("sync finished").is_empty(),
    )
    .await;
    eprintln!(
        "replica {} took over the sync lock {takeover:?} after the SIGKILL (TTL {LOCK_TTL:?}); test wall time {:?}",
        follower.name,
        started.elapsed()
    );
}
