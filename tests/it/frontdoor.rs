//! The front door (issue "Front door"): unsafe configurations never serve, client addresses
//! from trusted proxies only, failed sign-ins limited per address without slowing anybody
//! signed in, header sign-in only from trusted proxies, per-user limits on every form, the
//! access-list `@` rule, and the CLI's refusal of plain http.

use std::process::Command;

use serde_json::Value;

use crate::support::{TestApp, csrf_for};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iamdesk"));
    cmd.env_remove("CONFIG_LOCATION").env("RUST_LOG", "error");
    cmd
}

#[test]
fn unsafe_configurations_stop_the_binary_with_exit_2_naming_the_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db/iamdesk.db");
    let cases = [
        (
            "prod-demo.yaml",
            "url: https://iam.example.com\njwt_secret: a-secret-of-enough-length-1234\n",
            vec![
                "environment is prod",
                "auth.get_user_by_aws_alb_auth",
                "auth.get_user_by_header",
            ],
        ),
        (
            "aws-demo.yaml",
            "environment: dev\naws:\n  mode: aws\n",
            vec!["aws.mode", "auth.get_user_by_aws_alb_auth"],
        ),
        (
            "accounts-demo.yaml",
            "environment: dev\naws:\n  mode: sandbox\naccount_ids_to_name:\n  123456789012: prod\n",
            vec!["account_ids_to_name", "auth.get_user_by_aws_alb_auth"],
        ),
        (
            "accounts-default.yaml",
            "development: true\naccount_ids_to_name:\n  123456789012: prod\n",
            vec!["aws.mode"],
        ),
        (
            "prod-header.yaml",
            "jwt_secret: a-secret-of-enough-length-1234\nauth:\n  get_user_by_header: true\n",
            vec!["auth.trusted_proxies"],
        ),
    ];
    for (name, yaml, keys) in cases {
        let cfg = dir.path().join(name);
        std::fs::write(&cfg, format!("{yaml}storage:\n  path: {}\n", db.display())).expect("write");
        for sub in ["serve", "check-config"] {
            let out = bin()
                .args(["--config", cfg.to_str().unwrap_or_default(), sub])
                .output()
                .expect("run iamdesk");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {sub}: {stderr}");
            assert!(stderr.contains("must not serve"), "{name} {sub}: {stderr}");
            for key in &keys {
                assert!(stderr.contains(key), "{name} {sub} names {key}: {stderr}");
            }
        }
    }
    assert!(!db.exists(), "nothing was opened, let alone served");

    // Safe: the same with a sign-in method, and the bare demo (no file at all).
    let ok = dir.path().join("prod-alb.yaml");
    std::fs::write(
        &ok,
        "url: https://iam.example.com\njwt_secret: a-secret-of-enough-length-1234\nauth:\n  get_user_by_aws_alb_auth: true\n  alb:\n    arns: [arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1]\n",
    )
    .expect("write");
    let out = bin()
        .args(["--config", ok.to_str().unwrap_or_default(), "check-config"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The production example in the repository is a safe one.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let out = bin()
        .args([
            "--config",
            example.to_str().unwrap_or_default(),
            "check-config",
        ])
        .env("IAMDESK_JWT_SECRET", "an-example-secret-of-enough-length")
        .env("IAMDESK_REDIS_URL", "redis://127.0.0.1:6379/0")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let home = tempfile::tempdir().expect("home");
    let out = bin()
        .arg("check-config")
        .current_dir(home.path())
        .env("HOME", home.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "a bare run is the demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("built-in demo defaults"));
}

/// Header sign-in from loopback, `X-Forwarded-For` believed from loopback, a small sign-in
/// budget and a large API budget.
async fn proxied_app(tune: impl FnOnce(&mut iamdesk::config::Config)) -> TestApp {
    let (mut config, dir) = TestApp::demo_config();
    config.auth.get_user_by_header = true;
    config.auth.get_groups_by_header = true;
    config.auth.remote_ip.trusted_remote_ip_header = Some("X-Forwarded-For".into());
    config.rate_limit.login_per_minute = 10;
    config.rate_limit.api_per_minute = 10_000;
    tune(&mut config);
    let mut app = TestApp::spawn(config).await;
    app.keep(dir);
    app
}

fn bogus_token(i: usize) -> String {
    format!("iamdesk_{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15 + 1)
}

/// A valid API token for `user`, stored directly, and a recent interactive sign-in.
async fn valid_token(app: &TestApp, user: &str) -> String {
    let token = format!("iamdesk_{}", "ab".repeat(32));
    let hash = iamdesk::credentials::tokens::hash(&token);
    let now = chrono::Utc::now();
    let stored = iamdesk::store::ApiToken {
        id: hash[..12].to_string(),
        hash,
        user: user.into(),
        groups: vec![],
        name: "script".into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(7),
        revoked_at: None,
        scopes: iamdesk::store::TokenScope::legacy(),
    };
    let event = iamdesk::store::AuditEvent::new(user, "token.created", None, Value::Null);
    app.state
        .store
        .create_api_token(&stored, &event)
        .await
        .expect("token");
    app.state
        .store
        .record_sign_in(&iamdesk::store::SignIn {
            user: user.into(),
            groups: vec![],
            at: now,
        })
        .await
        .expect("sign-in");
    token
}

#[tokio::test]
async fn a_hundred_bogus_bearer_tokens_do_not_slow_a_signed_in_user() {
    let app = proxied_app(|_| {}).await;
    let token = valid_token(&app, "script@example.com").await;
    let bogus = |i: usize, from: &'static str| {
        app.client
            .get(app.url("/api/v2/user"))
            .bearer_auth(bogus_token(i))
            .header("x-forwarded-for", from)
            .send()
    };
    let user = |from: &'static str| {
        app.client
            .get(app.url("/api/v2/user"))
            .header("x-user", "ann@example.com")
            .header("x-forwarded-for", from)
            .send()
    };
    let script = |from: &'static str| {
        app.client
            .get(app.url("/api/v2/user"))
            .bearer_auth(&token)
            .header("x-forwarded-for", from)
            .send()
    };
    // Everyone shares one address (an office NAT): the attacker's failures, then the users.
    let shared = "198.51.100.7";
    let mut refused = [0u32; 2];
    for i in 0..100 {
        let status = bogus(i, shared).await.expect("GET").status();
        match status.as_u16() {
            401 => refused[0] += 1,
            429 => refused[1] += 1,
            other => panic!("bogus token got {other}"),
        }
        if i % 10 == 0 {
            assert_eq!(user(shared).await.expect("GET").status(), 200, "after {i}");
            assert_eq!(
                script(shared).await.expect("GET").status(),
                200,
                "after {i}"
            );
        }
    }
    // login_per_minute (10) failures answered 401 (one more per 6 s the loop takes), the rest 429.
    assert!((10..=15).contains(&refused[0]), "{refused:?}");
    assert!(refused[1] >= 85, "{refused:?}");
    // From another address: the same.
    for i in 0..100 {
        let _ = bogus(1000 + i, "203.0.113.66").await.expect("GET");
    }
    for from in [shared, "203.0.113.66", "192.0.2.1"] {
        assert_eq!(user(from).await.expect("GET").status(), 200, "{from}");
        assert_eq!(script(from).await.expect("GET").status(), 200, "{from}");
    }
    // Addresses are told apart: a fresh one still gets its own failures answered 401.
    assert_eq!(bogus(5000, "192.0.2.1").await.expect("GET").status(), 401);
    // A client cannot pick its address: without a trusted proxy the header is ignored, so an
    // attacker rotating X-Forwarded-For from an untrusted peer stays one address.
    let c = &app.state.config;
    let peer: std::net::IpAddr = "203.0.113.1".parse().expect("ip");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-forwarded-for", "1.2.3.4".parse().expect("value"));
    assert_eq!(
        iamdesk::web::client::client_of(c, Some(peer), &headers),
        Some(peer)
    );
}

#[tokio::test]
async fn header_sign_in_only_from_trusted_proxies_and_never_beside_alb() {
    let get = |app: &TestApp| {
        app.client
            .get(app.url("/api/v2/user"))
            .header("x-user", "eve@example.com")
            .header("x-groups", "admins")
            .send()
    };
    // Default: loopback is the trusted proxy (the tests connect from loopback).
    let app = proxied_app(|_| {}).await;
    assert_eq!(get(&app).await.expect("GET").status(), 200);
    // A proxy list without loopback: the same header from here is ignored.
    let app =
        proxied_app(|c| c.auth.trusted_proxies = vec!["10.0.0.0/8".parse().expect("cidr")]).await;
    let resp = get(&app).await.expect("GET");
    assert_eq!(resp.status(), 401);
    // ALB sign-in on as well: a request without the ALB token cannot name its user.
    let app = proxied_app(|c| {
        c.auth.get_user_by_aws_alb_auth = true;
        c.auth.alb.arns =
            vec!["arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1".into()];
        c.auth.alb.public_key_url = "http://127.0.0.1:9/{kid}".into();
    })
    .await;
    assert_eq!(get(&app).await.expect("GET").status(), 401);
}

#[tokio::test]
async fn every_state_changing_form_is_limited_per_user() {
    let app = proxied_app(|c| c.rate_limit.api_per_minute = 3).await;
    let csrf = csrf_for(&app).await; // one request of csrf@example.com's own budget
    let post = |who: &'static str| {
        app.client
            .post(app.url("/logout"))
            .header("x-user", who)
            .header("cookie", &csrf.0)
            .form(&[("csrf_token", csrf.1.as_str())])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(post("busy@example.com").await.expect("POST").status(), 200);
    }
    let resp = post("busy@example.com").await.expect("POST");
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        post("calm@example.com").await.expect("POST").status(),
        200,
        "per user"
    );
    // Page views are not counted.
    for _ in 0..5 {
        let resp = app
            .client
            .get(app.url("/"))
            .header("x-user", "busy@example.com")
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test]
async fn a_group_named_like_an_admins_address_grants_nothing() {
    let app = proxied_app(|c| {
        c.groups.can_admin = vec!["boss@example.com".into(), "group:iam@example.com".into()];
        c.application_admin = Some("admins".into());
    })
    .await;
    let me = |who: &'static str, groups: &'static str| {
        let req = app
            .client
            .get(app.url("/api/v2/user"))
            .header("x-user", who)
            .header("x-groups", groups);
        async move {
            let v: Value = req.send().await.expect("GET").json().await.expect("json");
            v["is_admin"].as_bool().unwrap_or(false)
        }
    };
    assert!(me("boss@example.com", "").await);
    assert!(!me("mallory@example.com", "boss@example.com").await);
    assert!(
        me("mallory@example.com", "iam@example.com").await,
        "group: names a group"
    );
    assert!(!me("iam@example.com", "").await);
    assert!(me("x@example.com", "admins").await);
    assert!(
        !me("admins", "").await,
        "a user named like a group is not in it"
    );
}

#[test]
fn the_cli_never_sends_its_token_over_plain_http_to_another_host() {
    let out = bin()
        .args([
            "credentials",
            "--role",
            "arn:aws:iam::123456789012:role/app",
            "--server",
            "http://iam.example.com",
        ])
        .env("IAMDESK_API_TOKEN", format!("iamdesk_{}", "cd".repeat(32)))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain http"), "{stderr}");
    assert!(
        !stderr.contains("cdcd"),
        "the token is not echoed: {stderr}"
    );
}
