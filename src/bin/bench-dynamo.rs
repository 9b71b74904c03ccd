//! DynamoDB at scale (issue 22), run by `scripts/bench-dynamo` (built only with the
//! `bench-tools` feature), which starts moto_server and redis-server and sets
//! `AWS_ENDPOINT_URL` and `REDIS_URL`. Tables with a fresh prefix are migrated and seeded with
//! `ROLES` roles (stored through the real per-item path, in the sandbox's demo accounts) and
//! `REQUESTS` requests (`DynamoStore::load_requests`, a third pending). Two `iamdesk serve`
//! replicas then share the tables and Redis. Measured, per operation, the DynamoDB calls and
//! bytes (median per run, from the replicas' `/metrics`, or the in-process tally for the sync)
//! and the latency p50/p99:
//!
//! - sync of the unchanged estate (`resources::sync::run` in this process, sandbox cloud);
//! - one approval (created on replica A, untimed; approved on replica B);
//! - the home page and `/requests?q=<rare word>`, alternating between the replicas.
//!
//! Writes `OUT` (default `target/bench/dynamo.md`) and the same as JSON beside it. Measures,
//! never asserts. Environment: `ROLES` (50000), `REQUESTS` (50000), `RUNS` (30), `SYNC_RUNS`
//! (3), `IAMDESK_BIN`, `OUT`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamdesk::resources::demo::DEMO_ACCOUNTS;
use iamdesk::resources::model::{AccountSnapshot, InlinePolicy, Principal, ResourceKind};
use iamdesk::resources::service::Resources;
use iamdesk::resources::sync;
use iamdesk::store::RequestStatus;
use iamdesk::store::conformance::{sample_changes, sample_request};
use iamdesk::store::dynamo::DynamoStore;
use serde_json::{Value, json};

const SECRET: &str = "bench-dynamo-secret-0123456789abcdef0123456789ab";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn role_arn(i: usize) -> (String, String) {
    let account = DEMO_ACCOUNTS[i % DEMO_ACCOUNTS.len()].0;
    let name = format!("team{}-role-{i:06}", i % 50);
    (format!("arn:aws:iam::{account}:role/{name}"), name)
}

/// `roles` roles with one small inline policy each, spread over the demo accounts.
fn estate(roles: usize) -> Vec<AccountSnapshot> {
    let mut accounts: Vec<AccountSnapshot> = DEMO_ACCOUNTS
        .iter()
        .map(|(id, name)| AccountSnapshot {
            account_id: id.to_string(),
            account_name: name.to_string(),
            ..Default::default()
        })
        .collect();
    for i in 0..roles {
        let (arn, name) = role_arn(i);
        let account = &mut accounts[i % DEMO_ACCOUNTS.len()];
        account.principals.push(Principal {
            kind: ResourceKind::Role,
            account_id: account.account_id.clone(),
            arn,
            name,
            path: "/".into(),
            id: format!("AROA{i:016}"),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: Some(3600),
            trust_policy: Some(json!({"Version": "2012-10-17", "Statement": []})),
            inline_policies: vec![InlinePolicy {
                name: "main".into(),
                document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": ["s3:GetObject", "sqs:SendMessage"], "Resource": "*"}]}),
            }],
            managed_policies: vec![],
            permissions_boundary: None,
            tags: vec![],
        });
    }
    accounts
}

/// A replica's DynamoDB calls and bytes so far, by operation, from its Prometheus text.
fn dynamo_counters(metrics: &str) -> Counters {
    let mut by_op = Counters::new();
    for line in metrics.lines() {
        let calls = line.starts_with("iamdesk_aws_calls_total{");
        if !(calls || line.starts_with("iamdesk_aws_bytes_total{"))
            || !line.contains("service=\"dynamodb\"")
        {
            continue;
        }
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let op = line
            .split("operation=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_string();
        let entry = by_op.entry(op).or_default();
        if calls {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    by_op
}

/// (calls, bytes) by DynamoDB operation.
type Counters = BTreeMap<String, (f64, f64)>;

fn add(total: &mut Counters, other: &Counters, sign: f64) {
    for (op, (c, b)) in other {
        let e = total.entry(op.clone()).or_default();
        e.0 += sign * c;
        e.1 += sign * b;
    }
}

struct Replica {
    child: Child,
    base: String,
    metrics: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start_replica(
    bin: &str,
    dir: &std::path::Path,
    n: usize,
    prefix: &str,
    redis: &str,
) -> Replica {
    let (port, mport) = (free_port(), free_port());
    let cfg = dir.join(format!("replica{n}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "environment: dev\nlisten: 127.0.0.1:{port}\njwt_secret: {SECRET}\n\
             aws:\n  mode: sandbox\n\
             storage:\n  backend: dynamodb\n  dynamodb:\n    table_prefix: {prefix}\n\
             redis:\n  url: {redis}\n\
             metrics:\n  listen: 127.0.0.1:{mport}\n\
             auth:\n  get_user_by_header: true\n  get_groups_by_header: true\n\
             groups:\n  can_admin: [admins]\n\
             sync:\n  interval_seconds: 86400\n\
             rate_limit:\n  api_per_minute: 1000000000\n  login_per_minute: 1000000000\n"
        ),
    )
    .expect("config");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start iamdesk");
    let replica = Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
        metrics: format!("http://127.0.0.1:{mport}/metrics"),
    };
    let http = reqwest::Client::new();
    let started = Instant::now();
    // Ready, not only live: `serve` opens its port before it has loaded the synced accounts
    // (src/web/loading.rs), and answers 503 until then.
    while !http
        .get(format!("{}/readyz", replica.base))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "replica {n} did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    replica
}

/// Latencies and per-run DynamoDB costs of one operation.
#[derive(Default, serde::Serialize)]
struct Figure {
    runs: usize,
    p50_ms: f64,
    p99_ms: f64,
    /// Medians per run.
    calls: f64,
    bytes: f64,
    /// Means per run, by DynamoDB operation: (calls, bytes).
    by_operation: BTreeMap<String, (f64, f64)>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn figure(ms: Vec<f64>, calls: Vec<f64>, bytes: Vec<f64>, total: &Counters) -> Figure {
    let runs = ms.len().max(1) as f64;
    let by_operation = total
        .iter()
        .filter(|(_, (c, _))| *c > 0.0)
        .map(|(op, (c, b))| (op.clone(), (c / runs, b / runs)))
        .collect();
    Figure {
        by_operation,
        ..medians(ms, calls, bytes)
    }
}

fn medians(mut ms: Vec<f64>, mut calls: Vec<f64>, mut bytes: Vec<f64>) -> Figure {
    for v in [&mut ms, &mut calls, &mut bytes] {
        v.sort_by(f64::total_cmp);
    }
    Figure {
        runs: ms.len(),
        p50_ms: pct(&ms, 0.5),
        p99_ms: pct(&ms, 0.99),
        calls: pct(&calls, 0.5),
        bytes: pct(&bytes, 0.5),
        by_operation: BTreeMap::new(),
    }
}

struct Portal {
    http: reqwest::Client,
    replicas: Vec<Replica>,
    csrf: (String, String),
}

impl Portal {
    async fn counters(&self) -> Counters {
        let mut total = Counters::new();
        for r in &self.replicas {
            let text = self
                .http
                .get(&r.metrics)
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            add(&mut total, &dynamo_counters(&text), 1.0);
        }
        total
    }

    async fn send(&self, req: reqwest::RequestBuilder, admin: bool) -> Value {
        let (user, groups) = if admin {
            ("admin@example.com", "admins")
        } else {
            ("dev@example.com", "eng")
        };
        let resp = req
            .header("x-user", user)
            .header("x-groups", groups)
            .header("cookie", format!("iamdesk_csrf={}", self.csrf.0))
            .header("x-csrf-token", &self.csrf.1)
            .send()
            .await
            .expect("HTTP");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// `runs` times `op(run)`, each timed and costed from the replicas' counters.
    async fn measure<F, Fut>(&self, runs: usize, mut op: F) -> Figure
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (mut ms, mut calls, mut bytes) = (vec![], vec![], vec![]);
        let mut total = Counters::new();
        for run in 0..runs {
            // A scrape costs calls of its own (the outbox backlog gauge, src/telemetry/
            // metrics.rs): two scrapes in a row measure it, and it is taken off the operation's.
            let first = self.counters().await;
            let before = self.counters().await;
            let mut scrape = before.clone();
            add(&mut scrape, &first, -1.0);
            let started = Instant::now();
            op(run).await;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            let mut delta = self.counters().await;
            add(&mut delta, &before, -1.0);
            add(&mut delta, &scrape, -1.0);
            calls.push(delta.values().map(|v| v.0).sum());
            bytes.push(delta.values().map(|v| v.1).sum());
            add(&mut total, &delta, 1.0);
        }
        figure(ms, calls, bytes, &total)
    }
}

#[tokio::main]
async fn main() {
    let roles = env_num("ROLES", 50_000);
    let requests = env_num("REQUESTS", 50_000);
    let runs = env_num("RUNS", 30);
    let sync_runs = env_num("SYNC_RUNS", 3);
    let bin = std::env::var("IAMDESK_BIN").expect("IAMDESK_BIN");
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL");
    let out = std::env::var("OUT").unwrap_or_else(|_| "target/bench/dynamo.md".into());
    let prefix = format!("bench{}-", chrono::Utc::now().timestamp());
    let client = iamdesk::aws::dynamodb_client(&Default::default()).await;
    iamdesk::migrate::run(&client, &prefix)
        .await
        .expect("migrate");
    let store = Arc::new(DynamoStore::new(client, &prefix));
    let tally = iamdesk::telemetry::aws::watch(&prefix);

    let t = Instant::now();
    for account in estate(roles) {
        sync::store_account(store.as_ref(), account, chrono::Utc::now())
            .await
            .expect("seed roles");
    }
    eprintln!("bench-dynamo: {roles} roles stored in {:?}", t.elapsed());
    let t = Instant::now();
    let rare = format!("rare{}", uuid::Uuid::new_v4().simple());
    let mut batch = Vec::new();
    for i in 0..requests {
        let mut r = sample_request(&format!("eng{}@example.com", i % 1000), 60 + i as i64);
        r.changes = sample_changes(&role_arn(i % roles.max(1)).0);
        r.justification = if i == requests / 2 {
            format!("{rare} one-off access")
        } else {
            "quarterly access for the reporting pipeline".into()
        };
        if i % 3 != 0 {
            r.status = RequestStatus::Approved;
        }
        batch.push(r);
        if batch.len() == 1_000 || i + 1 == requests {
            store.load_requests(&batch).await.expect("seed requests");
            batch.clear();
        }
    }
    eprintln!(
        "bench-dynamo: {requests} requests stored in {:?}",
        t.elapsed()
    );

    // Sync of the unchanged estate, in this process (the sandbox holds what is stored).
    let deps = sync::Deps {
        store: store.clone(),
        cloud: Arc::new(iamdesk::cloud::sandbox::SandboxCloud::new(
            sync::stored_snapshots(store.as_ref())
                .await
                .expect("snapshots"),
            10,
        )),
        resources: Arc::new(Resources::new(
            DEMO_ACCOUNTS
                .iter()
                .map(|(id, name)| (id.to_string(), name.to_string()))
                .collect(),
        )),
    };
    sync::run(&deps).await.expect("first sync");
    let (mut ms, mut calls, mut bytes) = (vec![], vec![], vec![]);
    let mut total = Counters::new();
    for _ in 0..sync_runs {
        tally.take();
        let started = Instant::now();
        sync::run(&deps).await.expect("sync");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let cost = tally.take();
        calls.push(cost.values().map(|c| c.calls as f64).sum());
        bytes.push(cost.values().map(|c| c.bytes() as f64).sum());
        for (op, c) in cost {
            let e = total.entry(op).or_default();
            e.0 += c.calls as f64;
            e.1 += c.bytes() as f64;
        }
    }
    let mut figures: BTreeMap<&str, Figure> = BTreeMap::new();
    figures.insert("sync, unchanged estate", figure(ms, calls, bytes, &total));
    drop(deps);
    eprintln!("bench-dynamo: sync measured; starting two replicas");

    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).expect("work folder");
    let a = start_replica(&bin, &dir, 0, &prefix, &redis).await;
    let b = start_replica(&bin, &dir, 1, &prefix, &redis).await;
    let http = reqwest::Client::new();
    // A CSRF cookie as a page hands it out, and its token (the replicas share jwt_secret).
    let page = http
        .get(format!("{}/requests", a.base))
        .header("x-user", "dev@example.com")
        .send()
        .await
        .expect("GET /requests");
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("iamdesk_csrf="))
        .filter_map(|c| c.split(';').next())
        .next()
        .expect("a CSRF cookie")
        .to_string();
    let token = iamdesk::web::csrf::token_for(SECRET.as_bytes(), &cookie, None);
    let portal = Portal {
        http,
        replicas: vec![a, b],
        csrf: (cookie, token),
    };
    let base = |run: usize| portal.replicas[run % 2].base.clone();

    let home = portal
        .measure(runs, |run| {
            let req = portal.http.get(format!("{}/", base(run)));
            async { drop(portal.send(req, true).await) }
        })
        .await;
    figures.insert("home page", home);
    let search = portal
        .measure(runs, |run| {
            let req = portal.http.get(format!("{}/requests?q={rare}", base(run)));
            async { drop(portal.send(req, true).await) }
        })
        .await;
    figures.insert("/requests?q=rare", search);
    let mut ids = vec![];
    for i in 0..runs {
        let body = json!({"justification": "bench", "changes": {"changes": [{
            "change_type": "inline_policy",
            "principal": {"principal_type": "AwsResource", "principal_arn": role_arn(i % roles.max(1)).0},
            "policy_name": format!("bench-{i}"), "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}}}]}});
        let req = portal
            .http
            .post(format!("{}/api/v2/request", base(0)))
            .json(&body);
        let created = portal.send(req, false).await;
        ids.push(
            created["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let approve = portal
        .measure(runs, |run| {
            let req = portal
                .http
                .put(format!("{}/api/v2/requests/{}", base(1), ids[run]))
                .json(&json!({"modification_model": {"command": "approve_request"}}));
            async { drop(portal.send(req, true).await) }
        })
        .await;
    figures.insert("one approval", approve);

    let mut md = format!(
        "DynamoDB (moto) + Redis, two replicas, {roles} roles, {requests} requests \
         ({} cores). Calls and bytes are DynamoDB's, median per run.\n\n\
         | operation | runs | p50 ms | p99 ms | calls | bytes |\n|---|---|---|---|---|---|\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, f) in &figures {
        md.push_str(&format!(
            "| {name} | {} | {:.1} | {:.1} | {} | {} |\n",
            f.runs, f.p50_ms, f.p99_ms, f.calls, f.bytes
        ));
    }
    md.push_str("\nBy DynamoDB operation, mean per run (calls / bytes):\n\n");
    for (name, f) in &figures {
        let ops: Vec<String> = f
            .by_operation
            .iter()
            .map(|(op, (c, b))| format!("{op} {c:.1} / {b:.0}"))
            .collect();
        md.push_str(&format!("- {name}: {}\n", ops.join(", ")));
    }
    print!("{md}");
    if let Some(parent) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(parent).expect("output folder");
    }
    std::fs::write(&out, &md).expect("write results");
    std::fs::write(
        std::path::Path::new(&out).with_extension("json"),
        serde_json::to_string_pretty(
            &json!({"roles": roles, "requests": requests, "figures": figures}),
        )
        .expect("json"),
    )
    .expect("write json");
}
