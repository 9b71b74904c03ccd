//! Operating the portal (issue 17): Prometheus metrics on their own listener, the OpenAPI
//! document of `/api/v2`, liveness and readiness, and `iamdesk healthcheck`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{account_id, free_port, iam_in, moto_endpoint, redis_url, strict};

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parse of Prometheus' text format 0.0.4: `# HELP`/`# TYPE` comments and
/// `name{label="value",...} value` lines; anything else fails the test with the line.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            assert!(matches!(kind, "HELP" | "TYPE"), "comment: {line}");
            let name = parts.next().unwrap_or_default();
            assert!(valid_name(name), "metric name in: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    matches!(t, "counter" | "gauge" | "histogram" | "summary" | "untyped"),
                    "type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(valid_name(name), "metric name in: {line}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn parse_labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in: {line}"));
        assert!(valid_name(key), "label name {key:?} in: {line}");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("escape {other:?} in: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in: {line}"),
            }
        };
        labels.insert(key.to_string(), value);
        body = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    labels
}

/// The samples named `name` whose labels include every pair of `with`.
fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .collect()
}

/// The `iamdesk` binary, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path, dir: &std::path::Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_iamdesk"))
        .env_remove("CONFIG_LOCATION")
        .env("RUST_LOG", "warn")
        .args(["--config", config.to_str().unwrap_or_default(), "serve"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iamdesk");
    Server(child)
}

async fn wait_for_200(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_are_scraped_from_their_own_listener_with_bounded_labels() {
    let (Some(_), Some(redis)) = (moto_endpoint(), redis_url()) else {
        assert!(!strict(), "moto and redis are required");
        return;
    };
    let account = account_id();
    crate::support::create_role(&iam_in(&account).await, "metrics-app", &[]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics_port) = (free_port(), free_port());
    let cfg = dir.path().join("iamdesk.yaml");
    std::fs::write(
        &cfg,
        format!(
            "environment: dev\nlisten: 127.0.0.1:{port}\nmetrics:\n  listen: 127.0.0.1:{metrics_port}\n\
             storage:\n  path: {db}/db/iamdesk.db\nredis:\n  url: {redis}\n\
             aws:\n  mode: aws\naccount_ids_to_name:\n  '{account}': spoke\n\
             policies:\n  role_name: iamdesk-spoke\n\
             auth:\n  get_user_by_header: true\n  get_groups_by_header: true\n",
            db = dir.path().display()
        ),
    )
    .expect("write config");
    let _server = serve(&cfg, dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let public = format!("http://127.0.0.1:{port}");
    let private = format!("http://127.0.0.1:{metrics_port}");
    // Ready, not only live: `serve` loads the synced accounts after opening its port.
    wait_for_200(&client, &format!("{public}/readyz")).await;

    // A few requests: a request id in the path, an unknown path, a forged API token.
    let id = "0190f5c2-0000-7000-8000-00000000abcd";
    let r = client
        .get(format!("{public}/api/v2/requests/{id}"))
        .header("x-user", "ops@example.com")
        .send()
        .await
        .expect("GET request");
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!(
            "{public}/no/such/page/arn:aws:iam::{account}:role/x"
        ))
        .send()
        .await
        .expect("GET unknown");
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!("{public}/api/v2/user"))
        .bearer_auth(format!(
            "{}forged-token",
            iamdesk::credentials::tokens::PREFIX
        ))
        .send()
        .await
        .expect("GET with a forged token");
    assert_eq!(r.status(), 401);

    // Never on the public port; and the private one serves nothing else.
    let r = client
        .get(format!("{public}/metrics"))
        .send()
        .await
        .expect("GET public /metrics");
    assert_eq!(r.status(), 404, "/metrics is not on the public port");
    let body = r.text().await.unwrap_or_default();
    assert!(!body.contains("iamdesk_http_requests_total"), "{body}");
    let r = client
        .get(format!("{private}/healthcheck"))
        .send()
        .await
        .expect("GET private /healthcheck");
    assert_eq!(r.status(), 404, "the metrics listener serves /metrics only");

    // The startup sync of the moto account is counted once it is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let r = client
            .get(format!("{private}/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(r.status(), 200);
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let samples = parse_exposition(&r.text().await.expect("body"));
        let synced = !find(
            &samples,
            "iamdesk_sync_duration_seconds_count",
            &[("account", &account)],
        )
        .is_empty();
        if synced {
            break samples;
        }
        assert!(Instant::now() < deadline, "no sync series within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // HTTP: matched route pattern, method, status, with a latency histogram.
    let by_route = [
        ("route", "/api/v2/requests/{id}"),
        ("method", "GET"),
        ("status", "404"),
    ];
    let hits = find(&samples, "iamdesk_http_requests_total", &by_route);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].value >= 1.0);
    assert!(
        !find(
            &samples,
            "iamdesk_http_request_duration_seconds_bucket",
            &by_route
        )
        .is_empty()
    );
    assert!(
        !find(
            &samples,
            "iamdesk_http_request_duration_seconds_sum",
            &by_route
        )
        .is_empty()
    );
    assert!(
        !find(
            &samples,
            "iamdesk_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_empty()
    );
    for s in &samples {
        for v in s.labels.values() {
            assert!(
                !v.contains(id) && !v.contains("arn:aws"),
                "a raw path or ARN in a label: {s:?}"
            );
        }
    }
    // Sync per account and service; the AWS calls it made.
    assert!(
        !find(
            &samples,
            "iamdesk_sync_duration_seconds_count",
            &[("account", &account), ("service", "iam"), ("result", "ok")]
        )
        .is_empty(),
        "sync ok for {account}"
    );
    for (service, operation) in [
        ("iam", "GetAccountAuthorizationDetails"),
        ("sts", "AssumeRole"),
    ] {
        assert!(
            !find(
                &samples,
                "iamdesk_aws_calls_total",
                &[
                    ("service", service),
                    ("operation", operation),
                    ("outcome", "ok")
                ]
            )
            .is_empty(),
            "{service} {operation} counted: {:?}",
            find(&samples, "iamdesk_aws_calls_total", &[])
        );
    }
    // Outbox, cache, breaker, index, sign-in failures.
    assert_eq!(find(&samples, "iamdesk_outbox_pending", &[]).len(), 1);
    assert_eq!(
        find(&samples, "iamdesk_outbox_oldest_pending_age_seconds", &[]).len(),
        1
    );
    assert!(
        !find(
            &samples,
            "iamdesk_cache_lookups_total",
            &[("backend", "redis"), ("result", "miss")]
        )
        .is_empty(),
        "the 404 lookup missed the cache"
    );
    let breaker = find(
        &samples,
        "iamdesk_cache_breaker_open",
        &[("backend", "redis")],
    );
    assert_eq!(breaker.len(), 1);
    assert!(breaker[0].value == 0.0, "redis answers: closed");
    let index = find(&samples, "iamdesk_index_entries", &[]);
    assert!(index.len() == 1 && index[0].value >= 1.0, "{index:?}");
    assert!(
        !find(
            &samples,
            "iamdesk_sign_in_failures_total",
            &[("method", "token")]
        )
        .is_empty()
    );
}

#[test]
fn the_exposition_parser_is_strict() {
    let ok = parse_exposition(
        "# HELP a_total A.\n# TYPE a_total counter\na_total{route=\"/x/{id}\",q=\"a\\\"b\"} 3\nb 1.5e3\n",
    );
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].labels["q"], "a\"b");
    assert_eq!(ok[1].value, 1500.0);
    for bad in ["a{x=1} 1", "9a 1", "a{x=\"1\" 1", "a notanumber"] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "{bad} accepted"
        );
    }
}

// --- OpenAPI -----------------------------------------------------------------------------------

/// Every `(METHOD, path)` the running router serves under `/api/v2`, asked of the router itself
/// (a TRACE answers 405 with the methods the route has), as `automation.rs` does for scopes.
async fn served_api_v2(app: &crate::support::TestApp) -> Vec<(String, String)> {
    let routes = iamdesk::web::routes();
    let mut served = vec![];
    let paths = routes
        .paths()
        .iter()
        .chain(iamdesk::web::UNSIGNED_ROUTES)
        .filter(|p| p.starts_with("/api/v2/"));
    for path in paths {
        let url = app.url(&path.replace("{*", "{").replace(['{', '}'], "x"));
        let resp = app
            .client
            .request(reqwest::Method::TRACE, url)
            .send()
            .await
            .expect("TRACE");
        assert_eq!(resp.status(), 405, "{path}");
        let allow = resp.headers()["allow"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        // OpenAPI has no catch-all segment: `{*rest}` is documented as `{rest}`.
        let documented = path.replace("{*", "{");
        for method in allow.split(',').map(str::trim).filter(|m| *m != "HEAD") {
            served.push((method.to_string(), documented.clone()));
        }
    }
    served
}

async fn openapi(app: &crate::support::TestApp) -> serde_json::Value {
    let resp = app.get("/api/v2/openapi.json").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("application/json"))
    );
    resp.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn every_api_v2_route_is_in_the_openapi_document() {
    let app = crate::support::TestApp::demo().await;
    let doc = openapi(&app).await;
    let served = served_api_v2(&app).await;
    assert!(served.len() >= 15, "{served:?}");
    let missing: Vec<String> = served
        .iter()
        .filter(|(m, p)| !doc["paths"][p.as_str()][m.to_lowercase()].is_object())
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "these /api/v2 routes are missing from the OpenAPI document: {missing:?}.\n\
         To document one: put #[utoipa::path(<method>, path = \"<path>\", tag = ..., params(...), \
         responses(...))] on its handler (copy a neighbour's), derive utoipa::ToSchema on its \
         request and response types (IntoParams on a query struct), and list the handler in \
         `paths(...)` of `ApiDoc` in src/web/openapi.rs."
    );
    // And nothing documented that the router does not serve.
    let mut stale = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if !served
                .iter()
                .any(|(m, p)| p == path && m.eq_ignore_ascii_case(method))
            {
                stale.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "documented but not served (remove from src/web/openapi.rs or fix the path): {stale:?}"
    );
}

#[tokio::test]
async fn the_openapi_document_has_the_3_1_shape() {
    let app = crate::support::TestApp::demo().await;
    let doc = openapi(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    assert!(
        doc["components"]["securitySchemes"]["api_token"]["scheme"] == "bearer",
        "{}",
        doc["components"]
    );
    for name in [
        "ListResponse",
        "RequestView",
        "PolicyRequest",
        "RequestStatus",
        "WhoAmI",
        "Created",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    // Generated from the types: a request's fields and its status' values.
    let request = &schemas["PolicyRequest"];
    for field in [
        "id",
        "status",
        "requester",
        "justification",
        "changes",
        "version",
    ] {
        assert!(
            request["properties"][field].is_object(),
            "PolicyRequest.{field}"
        );
    }
    assert_eq!(
        schemas["RequestStatus"]["enum"],
        serde_json::json!(["pending", "approved", "rejected", "cancelled"])
    );
    // Every operation answers something, and every $ref resolves.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has responses"
            );
        }
    }
    let mut refs = vec![];
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "$ref {r} resolves");
    }
    // The listing's query parameters come from its query struct.
    let params = doc["paths"]["/api/v2/requests"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    for p in ["status", "requester", "account", "q", "cursor", "limit"] {
        assert!(
            params.iter().any(|x| x["name"] == p && x["in"] == "query"),
            "{p}"
        );
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

// --- Liveness, readiness, `iamdesk healthcheck` --------------------------------------------

/// `iamdesk serve` opens its port before it loads the synced accounts: meanwhile liveness
/// answers, readiness says what is missing, and the other routes answer 503 with
/// `Retry-After` instead of empty or wrong pages; once loaded, everything answers.
#[tokio::test]
async fn until_the_accounts_are_loaded_routes_answer_503_and_readiness_says_why() {
    let (config, dir) = crate::support::TestApp::demo_config();
    let opened = iamdesk::app::App::open(config).await.expect("open");
    let mut app = crate::support::TestApp::serve(opened).await;
    app.keep(dir);
    assert_eq!(app.get("/healthcheck").await.status(), 200);
    assert_eq!(app.get("/api/v2/openapi.json").await.status(), 200);
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["failed"], serde_json::json!(["resources"]), "{body}");
    for path in ["/api/v2/policies", "/policies", "/requests"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 503, "{path}");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("2"),
            "{path}"
        );
        let text = resp.text().await.expect("body");
        assert!(
            text.contains("still loading the synced accounts"),
            "{path}: {text}"
        );
    }

    app.state.load_resources().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let resp = app.get("/api/v2/policies?q=billing").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert!(body["total"].as_u64().is_some_and(|n| n > 0), "{body}");
}

#[tokio::test]
async fn liveness_asks_no_backend_and_readiness_names_what_failed() {
    // Healthy: both answer.
    let app = crate::support::TestApp::demo().await;
    assert_eq!(app.get("/healthcheck").await.status(), 200);
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ready");

    // A cache nobody answers for (nothing listens on a fresh free port): alive, not ready.
    let (mut config, dir) = crate::support::TestApp::demo_config();
    config.redis.url = Some(format!("redis://127.0.0.1:{}/0", free_port()));
    let mut app = crate::support::TestApp::spawn(config).await;
    app.keep(dir);
    let started = Instant::now();
    assert_eq!(app.get("/healthcheck").await.status(), 200);
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["failed"], serde_json::json!(["cache"]), "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("cache (redis)")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
}

async fn healthcheck_cli(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamdesk"))
        .env_remove("CONFIG_LOCATION")
        .arg("healthcheck")
        .args(args)
        .output()
        .await
        .expect("run iamdesk healthcheck");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn healthcheck_subcommand_exits_0_on_a_live_server_and_1_with_a_reason_otherwise() {
    let app = crate::support::TestApp::demo().await;

    let (code, err) = healthcheck_cli(&["--url", &app.url("/healthcheck")]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");

    // The default URL comes from the configuration's listen address.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("iamdesk.yaml");
    std::fs::write(&cfg, format!("environment: dev\nlisten: {}\n", app.addr)).expect("write");
    let cfg = cfg.to_str().unwrap_or_default().to_string();
    let (code, err) = healthcheck_cli(&["--config", &cfg]).await;
    assert_eq!(code, Some(0), "{err}");

    // A closed port: exit 1, one line saying why.
    let closed = format!("http://127.0.0.1:{}/healthcheck", free_port());
    let (code, err) = healthcheck_cli(&["--url", &closed]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&closed) && err.contains("connection refused"),
        "{err}"
    );

    // A non-200 answer: exit 1 naming the status.
    let (code, err) = healthcheck_cli(&["--url", &app.url("/no-such-page")]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404"), "{err}");

    // A configuration that cannot be read: exit 2.
    let (code, err) = healthcheck_cli(&["--config", "/nonexistent/iamdesk.yaml"]).await;
    assert_eq!(code, Some(2), "{err}");
}
