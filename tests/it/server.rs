//! The real server on a free port: health, pages, errors, limits, headers, API listing, the
//! binary's lifecycle (SIGTERM) and its config errors.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iamdesk::store::conformance::sample_request;
use iamdesk::store::{AuditEvent, RequestStatus};
use serde_json::{Value, json};

use crate::support::{TestApp, free_port};

async fn seed(app: &TestApp, requester: &str, age_secs: i64, status: RequestStatus) -> String {
    let mut r = sample_request(requester, age_secs);
    r.status = status;
    let ev = AuditEvent::new(requester, "request.created", Some(&r.id), json!({}));
    app.state
        .store
        .create_request(&r, &ev, &[])
        .await
        .expect("seed request");
    r.id
}

#[tokio::test]
async fn healthcheck_reports_ok_when_the_store_answers() {
    let app = TestApp::demo().await;
    let resp = app.get("/healthcheck").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn home_page_renders_layout_navigation_and_security_headers() {
    let app = TestApp::demo().await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    let csp = h["content-security-policy"].to_str().unwrap_or("");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h.contains_key("x-request-id"),
        "every response carries its request id"
    );
    let html = resp.text().await.expect("body");
    for link in [
        "/policies",
        "/requests",
        "/selfservice",
        "/admin/audit",
        "/admin/outbox",
    ] {
        assert!(
            html.contains(&format!("href=\"{link}\"")),
            "nav links to {link}"
        );
    }
    assert!(
        html.contains("Demo mode"),
        "demo mode is announced on every page"
    );
    // Assets by content hash, cached for a year; the plain name answers too, briefly.
    let css = html
        .split("href=\"/static/app.")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("hashed stylesheet link");
    assert!(css.ends_with(".css"), "{css}");
    let resp = app.get(&format!("/static/app.{css}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(html.contains("<script src=\"/static/app."));
}

#[tokio::test]
async fn static_assets_are_embedded() {
    let app = TestApp::demo().await;
    let resp = app.get("/static/app.css").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/css")
    );
    assert!(resp.text().await.unwrap_or_default().contains(".topbar"));
    assert_eq!(app.get("/static/nope.js").await.status(), 404);
}

#[tokio::test]
async fn unknown_page_is_a_404_page_not_a_500() {
    let app = TestApp::demo().await;
    let resp = app.get("/no/such/page").await;
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    let html = resp.text().await.expect("body");
    assert!(
        html.contains("There is nothing at /no/such/page."),
        "{html}"
    );
    assert!(
        html.contains("request id"),
        "the error page shows the request id"
    );
}

#[tokio::test]
async fn unknown_api_route_and_wrong_method_get_json_errors() {
    let app = TestApp::demo().await;
    let resp = app.get("/api/v2/nothing").await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "error");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("/api/v2/nothing")
    );

    // With a valid CSRF cookie and header, as the portal's own JavaScript would send it.
    let (cookie, token) =
        crate::support::form_token(&app, "/policies/edit/111122223333/iamrole/payments-api").await;
    let resp = app
        .client
        .delete(app.url("/api/v2/requests"))
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("does not accept DELETE")
    );
}

#[tokio::test]
async fn oversized_body_is_rejected_with_413() {
    let app = TestApp::demo().await;
    let big = vec![b'x'; iamdesk::web::MAX_BODY_BYTES + 1];
    let resp = app
        .client
        .post(app.url("/api/v2/requests"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"].as_str().unwrap_or("").contains("limit"),
        "{body}"
    );
}

#[tokio::test]
async fn request_listing_api_paginates_and_filters() {
    let app = TestApp::demo().await;
    let mut ids = vec![];
    for i in 0..5 {
        let status = if i == 2 {
            RequestStatus::Rejected
        } else {
            RequestStatus::Pending
        };
        ids.push(seed(&app, "lister@example.com", 50 - i, status).await);
    }
    let mut seen = vec![];
    let mut url = "/api/v2/requests?limit=2".to_string();
    loop {
        let body: Value = app.get(&url).await.json().await.expect("json");
        let page = body["requests"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string)),
        );
        match body["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v2/requests?limit=2&cursor={c}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let body: Value = app
        .get("/api/v2/requests?status=rejected")
        .await
        .json()
        .await
        .expect("json");
    let rejected: Vec<&str> = body["requests"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(rejected, [ids[2].as_str()]);

    let one: Value = app
        .get(&format!("/api/v2/requests/{}", ids[0]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(one["requester"], "lister@example.com");
    assert_eq!(one["version"], 1);
}

#[tokio::test]
async fn bad_listing_input_gets_a_400_that_says_what_to_fix() {
    let app = TestApp::demo().await;
    for (query, needle) in [
        ("status=approvd", "not one of pending"),
        ("cursor=zzzz", "cursor"),
        ("limit=0", "limit must be between"),
        ("limit=abc", "invalid query string"),
    ] {
        let resp = app.get(&format!("/api/v2/requests?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.expect("json");
        let msg = body["message"].as_str().unwrap_or("");
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    let resp = app.get("/api/v2/requests/does-not-exist").await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn request_pages_render_from_the_store() {
    let app = TestApp::demo().await;
    let id = seed(&app, "pager@example.com", 0, RequestStatus::Pending).await;
    let html = app.get("/requests").await.text().await.expect("body");
    assert!(html.contains("pager@example.com"));
    assert!(html.contains(&format!("/policies/request/{id}")));
    let html = app
        .get(&format!("/policies/request/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(html.contains("needed for the nightly export job"));
    let resp = app.get("/policies/request/unknown-id").await;
    assert_eq!(resp.status(), 404);
    let resp = app.get("/requests?status=bogus").await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("not one of pending")
    );
    for page in ["/admin/audit", "/admin/outbox", "/policies", "/selfservice"] {
        assert_eq!(app.get(page).await.status(), 200, "{page}");
    }
}

/// Status code of a plain blocking GET (no async runtime in these process tests).
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iamdesk"));
    cmd.env_remove("CONFIG_LOCATION").env("RUST_LOG", "info");
    cmd
}

#[test]
fn binary_serves_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = dir.path().join("iamdesk.yaml");
    std::fs::write(
        &cfg,
        format!(
            "environment: dev\nlisten: 127.0.0.1:{port}\nstorage:\n  path: {}/db/iamdesk.db\n",
            dir.path().display()
        ),
    )
    .expect("write config");
    let mut child = bin()
        .args(["--config", cfg.to_str().unwrap_or_default(), "serve"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iamdesk");
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        let ok = http_status(port, "/healthcheck") == Some(200);
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(healthy, "the binary answered /healthcheck");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit after SIGTERM: {exit:?}"
    );
}

#[test]
fn binary_refuses_to_start_on_a_duplicate_key_and_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("dup.yaml");
    std::fs::write(
        &cfg,
        "policies:\n  role_name: consoleme-spoke-role-A\n  role_name: consoleme-spoke-role-B\n",
    )
    .expect("write config");
    for sub in ["serve", "check-config"] {
        let out = bin()
            .args(["--config", cfg.to_str().unwrap_or_default(), sub])
            .output()
            .expect("run iamdesk");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{sub} exits with the config error code"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("role_name"), "{sub}: {stderr}");
        assert!(stderr.contains("dup.yaml"), "{sub}: {stderr}");
        assert!(stderr.contains('3'), "{sub} names line 3: {stderr}");
    }
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("iamdesk.yaml");
    std::fs::write(
        &cfg,
        concat!(
            "jwt_secret: hunter2-very-secret\nurl: https://iam.example.com\n",
            "auth:\n  get_user_by_aws_alb_auth: true\n  alb:\n    arns: [arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1]\n"
        ),
    )
    .expect("write config");
    let out = bin()
        .args(["--config", cfg.to_str().unwrap_or_default(), "check-config"])
        .output()
        .expect("run iamdesk");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("https://iam.example.com"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "secret leaked: {stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

#[tokio::test]
async fn home_page_in_a_real_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = TestApp::demo().await;
    browser.client.goto(&app.url("/")).await.expect("open home");
    let h1 = browser
        .client
        .find(fantoccini::Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("text");
    assert_eq!(h1, "Welcome to iamdesk");
    let shot = browser.screenshot("home").await;
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000));
    browser.close().await;
}

/// A private redis-server this test may stop.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(OwnRedis { child, port })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn portal_keeps_answering_from_the_store_when_redis_stops() {
    if !std::path::Path::new("/usr/bin/redis-server").exists()
        && crate::support::redis_url().is_none()
    {
        return;
    }
    let Some(mut redis) = OwnRedis::start(free_port()) else {
        assert!(!crate::support::strict(), "cannot start redis-server");
        return;
    };
    let (mut config, dir) = TestApp::demo_config();
    config.redis.url = Some(format!("redis://127.0.0.1:{}/0", redis.port));
    let app = TestApp::spawn(config).await;
    assert_eq!(app.state.cache.backend_name(), "redis");
    let id = seed(&app, "cache@example.com", 0, RequestStatus::Pending).await;
    let path = format!("/api/v2/requests/{id}");
    assert_eq!(app.get(&path).await.status(), 200, "read through Redis");

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let resp = app.get(&path).await;
        assert_eq!(
            resp.status(),
            200,
            "answered from the store while Redis is down"
        );
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["requester"], "cache@example.com");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no hang on a dead Redis"
        );
    }
    assert_eq!(
        app.get("/healthcheck").await.status(),
        200,
        "health is the store's"
    );
    assert_eq!(app.get("/").await.status(), 200);
    drop(dir);
}

#[tokio::test]
async fn home_lists_my_requests_only() {
    let app = TestApp::demo().await;
    let mine = seed(&app, "demo-admin@iamdesk.local", 5, RequestStatus::Pending).await;
    let theirs = seed(&app, "someone-else@example.com", 1, RequestStatus::Pending).await;
    let html = app.get("/").await.text().await.expect("html");
    assert!(html.contains("My requests"));
    assert!(html.contains(&format!("/policies/request/{mine}")));
    assert!(!html.contains(&format!("/policies/request/{theirs}")));
    assert!(
        html.contains("2</p>") || html.contains(">2<"),
        "pending count covers everybody's"
    );
}

#[tokio::test]
async fn audit_log_filters_by_request_and_exports_json_lines() {
    let app = TestApp::demo().await;
    let a = seed(&app, "a@example.com", 2, RequestStatus::Pending).await;
    let b = seed(&app, "b@example.com", 1, RequestStatus::Pending).await;
    let html = app
        .get(&format!("/admin/audit?request_id={a}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains(&a) && !html.contains(&b),
        "filtered to one request"
    );

    let resp = app.get("/admin/audit.jsonl").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let body = resp.text().await.expect("body");
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(events.len() >= 2);
    assert!(events.iter().any(|e| e["request_id"] == a.as_str()));
    let only_b = app
        .get(&format!("/admin/audit.jsonl?request_id={b}"))
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(only_b.lines().count(), 1);

    // A date range: today holds them all, a past month none; a bad bound is a 400 naming it.
    let today = chrono::Utc::now().date_naive();
    let in_range = app
        .get(&format!("/admin/audit.jsonl?from={today}&to={today}"))
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(in_range.lines().count(), events.len());
    let past = app
        .get("/admin/audit.jsonl?from=2020-01-01&to=2020-01-31")
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(past.lines().count(), 0, "{past}");
    let since_now = app
        .get(&format!(
            "/admin/audit.jsonl?from={}",
            (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(since_now.lines().count(), 0);
    let bad = app.get("/admin/audit.jsonl?from=yesterday").await;
    assert_eq!(bad.status(), 400);
    let msg = bad.text().await.expect("body");
    assert!(msg.contains("from must be a date"), "{msg}");
    let backwards = app
        .get("/admin/audit.jsonl?from=2026-02-01&to=2026-01-01")
        .await;
    assert_eq!(backwards.status(), 400);

    // Several pages stream whole, in order, newest first.
    for i in 0..1100 {
        let e = iamdesk::store::AuditEvent::new("bulk", "test.bulk", None, json!({ "i": i }));
        app.state.store.append_audit(&e).await.expect("append");
    }
    let all = app
        .get("/admin/audit.jsonl")
        .await
        .text()
        .await
        .expect("body");
    let bulk: Vec<i64> = all
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|e| e["action"] == "test.bulk")
        .filter_map(|e| e["detail"]["i"].as_i64())
        .collect();
    assert_eq!(bulk.len(), 1100, "every page is streamed");
    assert_eq!(all.lines().count(), events.len() + 1100);
}
