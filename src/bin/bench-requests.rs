//! Request-path benchmark (issue 17 items 4 and 5), run by `scripts/bench-requests` (built only
//! with the `bench-tools` feature): the release
//! `iamdesk serve` binary on the embedded store and the sandbox cloud, with generated data (5k
//! and 100k roles in the demo accounts, 10k stored requests), measured from outside over
//! keep-alive HTTP:
//!
//! - p50/p99 of create request, approve + apply, request page, `/requests`, `/api/v2/policies`
//!   first page, role page, and a bare axum "hello" route (same client, same run: the ceiling);
//! - cold start to the first 200, RSS idle and with each data set, RSS over 1,000 approvals;
//! - with `--load`: 200 concurrent clients mixing search, pages and creation for 60 s.
//!
//! Writes `target/bench/requests.json` and `target/bench/requests.md`. Measures, never asserts.
//! Environment: `ROLES` (default `5000,100000`), `REQUESTS` (10000), `RUNS` (300 per figure),
//! `APPROVALS` (1000), `CLIENTS` (200), `LOAD_SECONDS` (60), `IAMDESK_BIN`, `KEEP_DB=1` (keep
//! each data set's folder under `target/bench/` for profiling; `BENCH_AS_IAMDESK=1` then makes
//! this binary `iamdesk` on the system allocator, for `valgrind --tool=massif`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamdesk::cloud::sandbox::SandboxCloud;
use iamdesk::resources::demo::DEMO_ACCOUNTS;
use iamdesk::resources::model::{AccountSnapshot, InlinePolicy, Principal, ResourceKind, Tag};
use iamdesk::resources::service::Resources;
use iamdesk::resources::sync;
use iamdesk::store::conformance::{sample_changes, sample_request};
use iamdesk::store::embedded::EmbeddedStore;
use iamdesk::store::{AuditEvent, Store};
use serde_json::{Value, json};

const SECRET: &str = "bench-requests-secret-0123456789abcdef0123456789";
const DEV: &str = "dev@example.com";
const ADMIN: &str = "admin@example.com";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn role_name(i: usize) -> String {
    let teams = ["billing", "search", "payments", "ml", "infra", "data"];
    format!("{}-service-{i:06}", teams[i % teams.len()])
}

fn account_of(i: usize) -> &'static str {
    DEMO_ACCOUNTS[i % DEMO_ACCOUNTS.len()].0
}

fn arn(i: usize) -> String {
    format!("arn:aws:iam::{}:role/{}", account_of(i), role_name(i))
}

/// `roles` generated roles spread over the sandbox's demo accounts.
fn snapshots(roles: usize) -> Vec<AccountSnapshot> {
    let services = [
        "s3", "sqs", "sns", "dynamodb", "kms", "ec2", "lambda", "logs",
    ];
    let verbs = ["Get*", "Put*", "List*", "Describe*", "Publish", "Decrypt"];
    let mut snaps: Vec<AccountSnapshot> = DEMO_ACCOUNTS
        .iter()
        .map(|(id, name)| AccountSnapshot {
            account_id: id.to_string(),
            account_name: name.to_string(),
            ..Default::default()
        })
        .collect();
    for i in 0..roles {
        let snap = &mut snaps[i % DEMO_ACCOUNTS.len()];
        let actions: Vec<String> = (0..4)
            .map(|k| {
                format!(
                    "{}:{}",
                    services[(i + k) % services.len()],
                    verbs[(i / 7 + k) % verbs.len()]
                )
            })
            .collect();
        snap.principals.push(Principal {
            kind: ResourceKind::Role,
            account_id: snap.account_id.clone(),
            arn: arn(i),
            name: role_name(i),
            path: "/".into(),
            id: format!("AROA{i:016}"),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: Some(3600),
            trust_policy: Some(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            ),
            inline_policies: vec![InlinePolicy {
                name: "main".into(),
                document: json!({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}),
            }],
            managed_policies: vec![],
            permissions_boundary: None,
            tags: vec![Tag {
                key: "team".into(),
                value: "bench".into(),
            }],
        });
    }
    snaps
}

/// The embedded database the portal will open: the roles synced in, `requests` stored requests.
async fn seed(db: &Path, roles: usize, requests: usize) -> Vec<String> {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(db).expect("open the store"));
    let deps = sync::Deps {
        store: store.clone(),
        cloud: Arc::new(SandboxCloud::new(snapshots(roles), 10)),
        resources: Arc::new(Resources::new(
            DEMO_ACCOUNTS
                .iter()
                .map(|(id, name)| (id.to_string(), name.to_string()))
                .collect(),
        )),
    };
    sync::run(&deps).await.expect("store the generated roles");
    let mut ids = Vec::with_capacity(requests);
    for i in 0..requests {
        let mut r = sample_request(
            &format!("user{}@example.com", i % 50),
            ((requests - i) * 60) as i64,
        );
        r.changes = sample_changes(&arn(i * 7 % roles));
        let event = AuditEvent::new(&r.requester, "request.created", Some(&r.id), json!({}));
        store
            .create_request(&r, &event, &[])
            .await
            .expect("store a request");
        ids.push(r.id);
    }
    ids
}

/// A scratch folder under `target/bench/`, removed afterwards (tempfile is a dev-dependency).
struct BenchDir(PathBuf);

impl BenchDir {
    fn new(roles: usize) -> BenchDir {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join(format!(
            "target/bench/requests-{roles}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir bench dir");
        BenchDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        // `KEEP_DB=1` keeps the database (and config) to profile `iamdesk serve` on it.
        if std::env::var("KEEP_DB").is_ok_and(|v| v == "1") {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

struct Portal {
    child: Child,
    base: String,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Portal {
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Start the portal on `dir`'s database; the time until `/healthcheck` first answers 200 (the
/// port is open: liveness), and until `/readyz` does (the synced accounts are loaded and every
/// route answers).
async fn start(bin: &Path, dir: &Path, http: &reqwest::Client) -> (Portal, Duration, Duration) {
    let port = free_port();
    let cfg = dir.join("iamdesk.yaml");
    std::fs::write(
        &cfg,
        format!(
            "environment: dev\nlisten: 127.0.0.1:{port}\njwt_secret: {SECRET}\n\
             storage:\n  path: {}\n\
             auth:\n  get_user_by_header: true\n  get_groups_by_header: true\n\
             groups:\n  can_admin: [admins]\n\
             rate_limit:\n  api_per_minute: 1000000000\n  login_per_minute: 1000000000\n",
            dir.join("iamdesk.db").display()
        ),
    )
    .expect("config");
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iamdesk");
    let portal = Portal {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let mut at = vec![];
    for path in ["/healthcheck", "/readyz"] {
        let url = format!("{}{path}", portal.base);
        loop {
            if http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the portal did not answer {path}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        at.push(started.elapsed());
    }
    (portal, at[0], at[1])
}

/// A CSRF cookie from a page, and its token (as a browser's form would carry it).
async fn csrf(http: &reqwest::Client, base: &str) -> (String, String) {
    use hmac::{Hmac, KeyInit, Mac};
    let resp = http
        .get(format!("{base}/requests"))
        .header("x-user", DEV)
        .send()
        .await
        .expect("GET /requests");
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("iamdesk_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_string();
    let value = cookie.split_once('=').map(|(_, v)| v).unwrap_or_default();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(b"iamdesk-csrf:");
    mac.update(value.as_bytes());
    (cookie, hex::encode(mac.finalize().into_bytes()))
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    csrf: (String, String),
}

impl Client {
    async fn get(&self, path: &str, user: &str) -> Result<(), String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-user", user)
            .header("x-groups", if user == ADMIN { "admins" } else { "eng" })
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!(
                "GET {path}: {status} {}",
                String::from_utf8_lossy(&body)
            ))
        }
    }

    async fn create(&self, i: usize, roles: usize) -> Result<String, String> {
        let body = json!({"justification": "bench", "changes": {"changes": [{
            "change_type": "inline_policy",
            "principal": {"principal_type": "AwsResource", "principal_arn": arn(i % roles)},
            "policy_name": format!("bench-{i}"), "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}}}]}});
        let resp = self
            .http
            .post(format!("{}/api/v2/request", self.base))
            .header("x-user", DEV)
            .header("x-groups", "eng")
            .header("cookie", &self.csrf.0)
            .header("x-csrf-token", &self.csrf.1)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| e.to_string())?;
        match v["request_id"].as_str() {
            Some(id) if status == 200 => Ok(id.to_string()),
            _ => Err(format!("create: {status} {v}")),
        }
    }

    async fn approve(&self, id: &str) -> Result<(), String> {
        let resp = self
            .http
            .put(format!("{}/api/v2/requests/{id}", self.base))
            .header("x-user", ADMIN)
            .header("x-groups", "admins")
            .header("cookie", &self.csrf.0)
            .header("x-csrf-token", &self.csrf.1)
            .json(&json!({"modification_model": {"command": "approve_request", "version": 1}}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("approve: {status} {v}"))
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(serde::Serialize)]
struct Figure {
    name: String,
    p50_ms: f64,
    p99_ms: f64,
    runs: usize,
}

fn figure(name: &str, mut ms: Vec<f64>) -> Figure {
    ms.sort_by(f64::total_cmp);
    Figure {
        name: name.to_string(),
        p50_ms: pct(&ms, 0.5),
        p99_ms: pct(&ms, 0.99),
        runs: ms.len(),
    }
}

async fn time<F, Fut>(runs: usize, mut f: F) -> Vec<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        if let Err(e) = f(i).await {
            panic!("{e}");
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

/// A bare axum route on its own port: what HTTP through this client costs at the least.
async fn hello_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[derive(serde::Serialize)]
struct Run {
    roles: usize,
    requests: usize,
    seed_seconds: f64,
    cold_start_ms: f64,
    /// Until `/readyz` answers 200: the synced accounts loaded.
    ready_ms: f64,
    rss_idle_mib: f64,
    rss_after_mib: f64,
    figures: Vec<Figure>,
    rss_over_approvals_mib: Vec<(usize, f64)>,
    load: Option<Load>,
}

#[derive(serde::Serialize)]
struct Load {
    clients: usize,
    seconds: f64,
    requests: usize,
    errors: usize,
    first_errors: Vec<String>,
    throughput_per_s: f64,
    figures: Vec<Figure>,
    rss_mib: f64,
}

async fn load(c: &Client, roles: usize, ids: &[String], clients: usize, secs: u64) -> Load {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let ids = Arc::new(ids.to_vec());
    let mut tasks = vec![];
    for k in 0..clients {
        let (c, ids) = (c.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<(usize, f64)> = vec![];
            let mut errors = vec![];
            let mut i = k * 7919;
            while Instant::now() < deadline {
                i += 1;
                let op = i % 10;
                let t = Instant::now();
                let r = match op {
                    0..=2 => {
                        c.get(&format!("/api/v2/policies?q=service-{:03}", i % 1000), DEV)
                            .await
                    }
                    3 => c.get("/api/v2/policies", DEV).await,
                    4 => {
                        c.get(&format!("/policies/request/{}", ids[i % ids.len()]), ADMIN)
                            .await
                    }
                    5 => {
                        let n = i % roles;
                        c.get(
                            &format!("/policies/edit/{}/iamrole/{}", account_of(n), role_name(n)),
                            DEV,
                        )
                        .await
                    }
                    6 => c.get("/requests", ADMIN).await,
                    7 => c.get("/policies?q=payments", DEV).await,
                    _ => c.create(1_000_000 + k * 100_000 + i, roles).await.map(drop),
                };
                let kind = match op {
                    0..=3 | 7 => 0,
                    4..=6 => 1,
                    _ => 2,
                };
                lat.push((kind, t.elapsed().as_secs_f64() * 1000.0));
                if let Err(e) = r {
                    errors.push(e);
                }
            }
            (lat, errors)
        }));
    }
    let mut all: Vec<(usize, f64)> = vec![];
    let mut errors = vec![];
    for t in tasks {
        let (lat, errs) = t.await.expect("client task");
        all.extend(lat);
        errors.extend(errs);
    }
    let seconds = started.elapsed().as_secs_f64();
    let pick = |kind: usize| {
        all.iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, ms)| *ms)
            .collect()
    };
    Load {
        clients,
        seconds,
        requests: all.len(),
        errors: errors.len(),
        first_errors: errors.into_iter().take(5).collect(),
        throughput_per_s: all.len() as f64 / seconds,
        figures: vec![
            figure("all", all.iter().map(|(_, ms)| *ms).collect()),
            figure("search (API + page)", pick(0)),
            figure("pages (request, role, list)", pick(1)),
            figure("create request", pick(2)),
        ],
        rss_mib: 0.0,
    }
}

fn main() -> std::process::ExitCode {
    // `BENCH_AS_IAMDESK=1 bench-requests --config F serve` is `iamdesk` itself on the system
    // allocator (the real binary's mimalloc maps memory itself, out of heap profilers' sight):
    // what `valgrind --tool=massif` profiles.
    if std::env::var("BENCH_AS_IAMDESK").is_ok_and(|v| v == "1") {
        return iamdesk::cli::main();
    }
    bench();
    std::process::ExitCode::SUCCESS
}

#[tokio::main]
async fn bench() {
    let with_load = std::env::args().any(|a| a == "--load");
    let roles_list: Vec<usize> = std::env::var("ROLES")
        .unwrap_or_else(|_| "5000,100000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let requests = env_num("REQUESTS", 10_000);
    let runs = env_num("RUNS", 300);
    let approvals = env_num("APPROVALS", 1000);
    let clients = env_num("CLIENTS", 200);
    let load_secs = env_num("LOAD_SECONDS", 60) as u64;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::var("IAMDESK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/iamdesk"));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release",
        bin.display()
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(8))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let hello = hello_server().await;
    let mut results = vec![];
    let mut hello_figure = None;
    for &roles in &roles_list {
        let dir = BenchDir::new(roles);
        let t = Instant::now();
        let ids = seed(&dir.path().join("iamdesk.db"), roles, requests).await;
        let seed_seconds = t.elapsed().as_secs_f64();
        eprintln!("{roles} roles, {requests} requests stored in {seed_seconds:.1} s");
        let (portal, cold, ready) = start(&bin, dir.path(), &http).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_idle = portal.rss_mib();
        let (cookie, token) = csrf(&http, &portal.base).await;
        let c = Client {
            http: http.clone(),
            base: portal.base.clone(),
            csrf: (cookie, token),
        };
        if hello_figure.is_none() {
            let h = http.clone();
            let url = hello.clone();
            let ms = time(runs, |_| {
                let (h, url) = (h.clone(), url.clone());
                async move {
                    h.get(&url).send().await.map_err(|e| e.to_string())?;
                    Ok(())
                }
            })
            .await;
            hello_figure = Some(figure("bare axum hello (ceiling)", ms));
        }
        let mut created = vec![];
        let mut create_ms = vec![];
        for i in 0..runs {
            let t = Instant::now();
            created.push(c.create(i, roles).await.expect("create"));
            create_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let approve_ms = time(runs, |i| {
            let (c, id) = (c.clone(), created[i].clone());
            async move { c.approve(&id).await }
        })
        .await;
        let page_ms = time(runs, |i| {
            let (c, id) = (c.clone(), ids[(i * 31) % ids.len()].clone());
            async move { c.get(&format!("/policies/request/{id}"), ADMIN).await }
        })
        .await;
        let list_ms = time(runs, |_| {
            let c = c.clone();
            async move { c.get("/requests", ADMIN).await }
        })
        .await;
        let api_ms = time(runs, |_| {
            let c = c.clone();
            async move { c.get("/api/v2/policies", DEV).await }
        })
        .await;
        let role_ms = time(runs, |i| {
            let c = c.clone();
            let n = (i * 131) % roles;
            async move {
                c.get(
                    &format!("/policies/edit/{}/iamrole/{}", account_of(n), role_name(n)),
                    DEV,
                )
                .await
            }
        })
        .await;
        let mut rss_over = vec![(0, portal.rss_mib())];
        if roles == roles_list[0] {
            for i in 0..approvals {
                let id = c.create(500_000 + i, roles).await.expect("create");
                c.approve(&id).await.expect("approve");
                if (i + 1) % 100 == 0 {
                    rss_over.push((i + 1, portal.rss_mib()));
                }
            }
        }
        let load = if with_load && roles == *roles_list.last().unwrap_or(&roles) {
            eprintln!("load: {clients} clients for {load_secs} s on {roles} roles");
            let mut l = load(&c, roles, &ids, clients, load_secs).await;
            l.rss_mib = portal.rss_mib();
            Some(l)
        } else {
            None
        };
        let mut figures = vec![
            figure("create request", create_ms),
            figure("approve + apply (sandbox)", approve_ms),
            figure("request page (HTML)", page_ms),
            figure("/requests list page", list_ms),
            figure("/api/v2/policies first page", api_ms),
            figure("role page", role_ms),
        ];
        if let Some(h) = &hello_figure
            && results.is_empty()
        {
            figures.push(Figure {
                name: h.name.clone(),
                p50_ms: h.p50_ms,
                p99_ms: h.p99_ms,
                runs: h.runs,
            });
        }
        results.push(Run {
            roles,
            requests,
            seed_seconds,
            cold_start_ms: cold.as_secs_f64() * 1000.0,
            ready_ms: ready.as_secs_f64() * 1000.0,
            rss_idle_mib: rss_idle,
            rss_after_mib: portal.rss_mib(),
            figures,
            rss_over_approvals_mib: rss_over,
            load,
        });
        drop(portal);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let md = report(&results, cores);
    print!("{md}");
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).expect("mkdir target/bench");
    std::fs::write(out.join("requests.md"), &md).expect("write md");
    std::fs::write(
        out.join("requests.json"),
        serde_json::to_string_pretty(&json!({"cores": cores, "runs": results})).expect("json"),
    )
    .expect("write json");
    eprintln!("written: target/bench/requests.md, target/bench/requests.json");
}

fn report(results: &[Run], cores: usize) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# bench-requests ({cores} cores; release; embedded store, sandbox cloud)\n"
    );
    let hello = results
        .first()
        .and_then(|r| r.figures.iter().find(|f| f.name.starts_with("bare axum")))
        .map_or(f64::NAN, |f| f.p50_ms);
    for r in results {
        let _ = writeln!(
            md,
            "## {} roles, {} stored requests\n\ncold start to first 200: {:.0} ms (`/healthcheck`), to ready: {:.0} ms (`/readyz`, accounts loaded) · RSS idle {:.1} MiB, after the run {:.1} MiB · seeding {:.1} s\n",
            r.roles,
            r.requests,
            r.cold_start_ms,
            r.ready_ms,
            r.rss_idle_mib,
            r.rss_after_mib,
            r.seed_seconds
        );
        let _ = writeln!(
            md,
            "| path | p50 ms | p99 ms | p50 / hello p50 |\n|---|---|---|---|"
        );
        for f in &r.figures {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.1}× |",
                f.name,
                f.p50_ms,
                f.p99_ms,
                f.p50_ms / hello
            );
        }
        if r.rss_over_approvals_mib.len() > 1 {
            let series: Vec<String> = r
                .rss_over_approvals_mib
                .iter()
                .map(|(n, mib)| format!("{n}: {mib:.1}"))
                .collect();
            let _ = writeln!(md, "\nRSS (MiB) over approvals: {}", series.join(" · "));
        }
        if let Some(l) = &r.load {
            let _ = writeln!(
                md,
                "\n### Load: {} clients, {:.0} s\n\n{} requests, {} errors, {:.0} requests/s, RSS {:.1} MiB\n",
                l.clients, l.seconds, l.requests, l.errors, l.throughput_per_s, l.rss_mib
            );
            let _ = writeln!(md, "| mix | p50 ms | p99 ms | count |\n|---|---|---|---|");
            for f in &l.figures {
                let _ = writeln!(
                    md,
                    "| {} | {:.2} | {:.2} | {} |",
                    f.name, f.p50_ms, f.p99_ms, f.runs
                );
            }
            for e in &l.first_errors {
                let _ = writeln!(md, "\nerror: {e}");
            }
        }
        let _ = writeln!(md);
    }
    md
}
