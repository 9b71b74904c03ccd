//! Credentials, console sign-in and the CLI against moto STS: entitlement by role tags,
//! working credentials with a session token, CLI-only roles, federation through a local stub,
//! API tokens and `credential_process` read by boto3.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{
    Captured, TestApp, account_id, create_role, csrf_for, free_port, iam_in, moto_endpoint,
    spoke_app,
};

const DEV: &str = "dev@example.com";

struct World {
    app: TestApp,
    account: String,
    csrf: (String, String),
    /// `Session` parameters the federation stub received.
    sessions: Arc<Mutex<Vec<Value>>>,
}

/// A stub of `https://signin.aws.amazon.com/federation` on a free port.
async fn federation_stub(sessions: Arc<Mutex<Vec<Value>>>) -> String {
    let router = axum::Router::new().route(
        "/federation",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>| {
                let sessions = sessions.clone();
                async move {
                    if q.get("Action").map(String::as_str) != Some("getSigninToken") {
                        return (
                            axum::http::StatusCode::BAD_REQUEST,
                            "bad action".to_string(),
                        );
                    }
                    let session: Value = q
                        .get("Session")
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(Value::Null);
                    if let Ok(mut v) = sessions.lock() {
                        v.push(session);
                    }
                    (
                        axum::http::StatusCode::OK,
                        json!({"SigninToken": "stub-signin-token-123"}).to_string(),
                    )
                }
            },
        ),
    );
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://127.0.0.1:{port}/federation")
}

async fn world() -> Option<World> {
    moto_endpoint()?;
    let account = account_id();
    let iam = iam_in(&account).await;
    create_role(
        &iam,
        "app",
        &[("consoleme-authorized", "eng:someone@example.com")],
    )
    .await;
    create_role(&iam, "cli", &[("consoleme-authorized-cli-only", DEV)]).await;
    create_role(&iam, "other", &[("consoleme-authorized", "engineering")]).await;
    let sessions: Arc<Mutex<Vec<Value>>> = Arc::default();
    let federation = federation_stub(sessions.clone()).await;
    let app = spoke_app(&account, |config| {
        config.url = "https://iamdesk.example.com".into();
        config.aws.federation_url = federation;
    })
    .await;
    let csrf = csrf_for(&app).await;
    Some(World {
        app,
        account,
        csrf,
        sessions,
    })
}

impl World {
    fn arn(&self, role: &str) -> String {
        format!("arn:aws:iam::{}:role/{role}", self.account)
    }

    async fn credentials(&self, who: &str, groups: &str, body: Value) -> reqwest::Response {
        self.app
            .send_as(
                reqwest::Method::POST,
                "/api/v2/credentials",
                (who, groups),
                Some(&self.csrf),
                Some(&body),
            )
            .await
    }

    /// A page or console link opened from the portal itself (`Sec-Fetch-Site: same-origin`).
    async fn console(&self, who: &str, groups: &str, path: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url(path))
            .header("x-user", who)
            .header("x-groups", groups)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .expect("GET")
    }
}

/// The caller identity of a set of credentials, asked of moto STS.
async fn caller_arn(c: &Value) -> String {
    let creds = aws_credential_types::Credentials::new(
        c["AccessKeyId"].as_str().unwrap_or_default(),
        c["SecretAccessKey"].as_str().unwrap_or_default(),
        c["SessionToken"].as_str().map(str::to_string),
        None,
        "iamdesk-test",
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(creds)
        .load()
        .await;
    aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity")
        .arn()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_entitled_user_gets_working_credentials_with_a_session_token() {
    let Some(w) = world().await else { return };
    let resp = w
        .credentials(
            DEV,
            "eng",
            json!({"requested_role": w.arn("app"), "duration_seconds": 60}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store"))
    );
    let body: Value = resp.json().await.expect("json");
    let c = &body["Credentials"];
    assert!(
        c["SessionToken"].as_str().is_some_and(|t| !t.is_empty()),
        "role credentials always carry a session token"
    );
    assert_eq!(body["SessionName"], DEV);
    let expires: chrono::DateTime<chrono::Utc> = c["Expiration"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("expiration");
    let lifetime = (expires - chrono::Utc::now()).num_seconds();
    assert!(
        (800..=960).contains(&lifetime),
        "60 s is raised to 900: {lifetime}"
    );
    assert_eq!(
        caller_arn(c).await,
        format!("arn:aws:sts::{}:assumed-role/app/{DEV}", w.account),
        "the credentials work and carry the user's session name"
    );

    // A CLI-only role gives API credentials too.
    let resp = w
        .credentials(DEV, "", json!({"requested_role": w.arn("cli")}))
        .await;
    assert_eq!(resp.status(), 200);

    // Not entitled: 403 that says why; `engineering` is not `eng`.
    for (who, groups, role) in [
        ("stranger@example.com", "ops", "app"),
        (DEV, "eng", "other"),
        ("stranger@example.com", "", "cli"),
    ] {
        let resp = w
            .credentials(who, groups, json!({"requested_role": w.arn(role)}))
            .await;
        assert_eq!(resp.status(), 403, "{who} on {role}");
        let body: Value = resp.json().await.expect("json");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("consoleme-authorized")),
            "{body}"
        );
    }
    // Unknown role, bad ARN, missing field.
    let resp = w
        .credentials(DEV, "eng", json!({"requested_role": w.arn("ghost")}))
        .await;
    assert_eq!(resp.status(), 404);
    let resp = w
        .credentials(DEV, "eng", json!({"requested_role": "app"}))
        .await;
    assert_eq!(resp.status(), 400);
    let resp = w.credentials(DEV, "eng", json!({})).await;
    assert_eq!(resp.status(), 400);

    // Every issuance is audited, never with the secret.
    let audit = w
        .app
        .state
        .store
        .list_audit(None, &iamdesk::store::PageRequest::first(100))
        .await
        .expect("audit");
    let issued: Vec<_> = audit
        .items
        .iter()
        .filter(|e| e.action == "credentials.issued")
        .collect();
    assert_eq!(issued.len(), 2);
    let all = serde_json::to_string(&audit.items).unwrap_or_default();
    assert!(!all.contains(c["SecretAccessKey"].as_str().unwrap_or("???")));
    assert!(!all.contains(c["SessionToken"].as_str().unwrap_or("???")));
}

#[tokio::test]
async fn console_sign_in_goes_through_federation_and_cli_only_roles_are_refused() {
    let Some(w) = world().await else { return };
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let resp = w
        .console(DEV, "eng", &format!("/role/{}", w.arn("app")))
        .await;
    assert_eq!(resp.status(), 302);
    assert!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store"))
    );
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let url = reqwest::Url::parse(&location).expect("url");
    assert!(location.starts_with(&w.app.state.config.aws.federation_url));
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q.get("Action").map(String::as_str), Some("login"));
    assert_eq!(
        q.get("SigninToken").map(String::as_str),
        Some("stub-signin-token-123")
    );
    assert_eq!(
        q.get("Destination").map(String::as_str),
        Some("https://console.aws.amazon.com/")
    );
    assert_eq!(
        q.get("Issuer").map(String::as_str),
        Some("https://iamdesk.example.com")
    );
    let session = w.sessions.lock().map(|v| v[0].clone()).unwrap_or_default();
    assert!(
        session["sessionToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    // A console region as redirect is kept; anything else is refused.
    let resp = w
        .console(
            DEV,
            "eng",
            &format!(
                "/role/{}?redirect=https%3A%2F%2Fus-west-2.console.aws.amazon.com%2Fs3%2Fhome",
                w.arn("app")
            ),
        )
        .await;
    assert_eq!(resp.status(), 302);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.contains("Destination=https%3A%2F%2Fus-west-2.console.aws.amazon.com%2Fs3%2Fhome")
    );
    let resp = w
        .console(
            DEV,
            "eng",
            &format!(
                "/role/{}?redirect=https%3A%2F%2Fevil.example.com%2F",
                w.arn("app")
            ),
        )
        .await;
    assert_eq!(resp.status(), 400);

    // CLI-only: no console. Not entitled: no console.
    let resp = w.console(DEV, "", &format!("/role/{}", w.arn("cli"))).await;
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap_or_default();
    assert!(page.contains("CLI credentials only"), "{page}");
    let resp = w
        .console(
            "stranger@example.com",
            "",
            &format!("/role/{}", w.arn("app")),
        )
        .await;
    assert_eq!(resp.status(), 403);

    // Neither the sign-in token nor the credentials ever reach the log.
    let text = logs.text();
    assert!(
        text.contains("credentials issued"),
        "the issuance is logged"
    );
    assert!(!text.contains("stub-signin-token-123"));
    assert!(!text.contains(session["sessionKey"].as_str().unwrap_or("???")));

    // My roles lists the console role, not the CLI-only one.
    let html = w
        .console(DEV, "eng", "/roles")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(html.contains(&w.arn("app")));
    assert!(!html.contains(&w.arn("cli")));
    assert!(html.contains("CLI-only access to 1 role"));
    let html = w
        .console(DEV, "eng", "/roles?q=nothing-matches")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert!(!html.contains(&w.arn("app")));
}

/// Create an API token through the profile page; returns (token, public id).
async fn make_token(w: &World, who: &str, groups: &str) -> (String, String) {
    let resp = w
        .app
        .client
        .post(w.app.url("/profile/tokens"))
        .header("x-user", who)
        .header("x-groups", groups)
        .header("cookie", &w.csrf.0)
        .form(&[
            ("csrf_token", w.csrf.1.as_str()),
            ("name", "laptop"),
            ("days", "7"),
            ("scope", "credentials"),
        ])
        .send()
        .await
        .expect("POST");
    // Post, redirect, get: the token waits sealed in a cookie for the profile page, once.
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/profile#new-token");
    let sealed = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("iamdesk_once_token="))
        .expect("the sealed token")
        .to_string();
    assert!(
        sealed.contains("Path=/profile") && sealed.contains("HttpOnly"),
        "{sealed}"
    );
    assert!(!sealed.contains("idt_"), "sealed, not in clear: {sealed}");
    let cookie = format!(
        "{}; {}",
        w.csrf.0,
        sealed.split(';').next().unwrap_or_default()
    );
    let profile = |cookie: String| {
        w.app
            .client
            .get(w.app.url("/profile"))
            .header("x-user", who)
            .header("x-groups", groups)
            .header("cookie", cookie)
            .send()
    };
    let html = profile(cookie.clone())
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    let token = html
        .split("id=\"new-token\"")
        .nth(1)
        .and_then(|r| r.split_once('>'))
        .and_then(|(_, r)| r.split('<').next())
        .expect("the token is shown once")
        .to_string();
    // Another user holding the same cookie sees nothing.
    let other = w
        .app
        .client
        .get(w.app.url("/profile"))
        .header("x-user", "mallory@example.com")
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(!other.contains(&token) && !other.contains("id=\"new-token\""));
    let stored = w
        .app
        .state
        .store
        .list_api_tokens(who)
        .await
        .expect("tokens");
    assert!(
        !serde_json::to_string(&stored)
            .unwrap_or_default()
            .contains(&token),
        "only the hash is stored"
    );
    (token, stored[0].id.clone())
}

#[tokio::test]
async fn credential_process_output_is_read_by_boto3() {
    let Some(w) = world().await else { return };
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let (token, id) = make_token(&w, DEV, "eng").await;
    // Without an entitlement there is no credentials token; without a scope no token at all.
    let post = |scope: &'static str| {
        w.app
            .client
            .post(w.app.url("/profile/tokens"))
            .header("x-user", "stranger@example.com")
            .header("cookie", &w.csrf.0)
            .form(&[
                ("csrf_token", w.csrf.1.as_str()),
                ("name", "x"),
                ("scope", scope),
            ])
            .send()
    };
    assert_eq!(post("credentials").await.expect("POST").status(), 403);
    assert_eq!(post("").await.expect("POST").status(), 400);

    // The token authenticates the credentials API, and nothing else.
    let resp = w
        .app
        .client
        .get(w.app.url("/api/v2/requests"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 403);

    let dir = tempfile::tempdir().expect("tempdir");
    let aws_config = dir.path().join("config");
    std::fs::write(
        &aws_config,
        format!(
            "[profile iamdesk]\nregion = us-east-1\ncredential_process = {} credentials --role {} --server {}\n",
            env!("CARGO_BIN_EXE_iamdesk"),
            w.arn("app"),
            w.app.base
        ),
    )
    .expect("write config");
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let none = dir.path().join("none");
    let boto3 = move |token: &str| {
        std::process::Command::new(&python)
            .args([
                "-c",
                "import boto3; s = boto3.Session(profile_name='iamdesk'); \
                 print(s.client('sts').get_caller_identity()['Arn'])",
            ])
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &none)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("IAMDESK_API_TOKEN", token)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run python")
    };
    let out = tokio::task::spawn_blocking({
        let token = token.clone();
        move || boto3(&token)
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("arn:aws:sts::{}:assumed-role/app/{DEV}", w.account)
    );

    // The CLI's own output is the credential_process JSON.
    let (arn, base) = (w.arn("app"), w.app.base.clone());
    let cli = |token: &str| {
        let (arn, base, token) = (arn.clone(), base.clone(), token.to_string());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_iamdesk"))
                .args(["credentials", "--role", &arn, "--server", &base])
                .env("IAMDESK_API_TOKEN", token)
                .output()
                .expect("run cli")
        })
    };
    let out = cli(&token).await.expect("join");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["Version"], 1);
    for k in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }

    // Revoked: the CLI fails with a message on stderr and nothing on stdout.
    let resp = w
        .app
        .client
        .post(w.app.url(&format!("/profile/tokens/{id}/revoke")))
        .header("x-user", DEV)
        .header("x-groups", "eng")
        .header("cookie", &w.csrf.0)
        .form(&[("csrf_token", w.csrf.1.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 303);
    let out = cli(&token).await.expect("join");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli("iamdesk_not-a-token").await.expect("join");
    assert!(!out.status.success());
}

#[tokio::test]
async fn the_demo_lists_my_roles_and_says_plainly_that_they_are_simulated() {
    let app = TestApp::demo().await;
    let html = app.get("/roles").await.text().await.unwrap_or_default();
    let arn = "arn:aws:iam::111122223333:role/billing-reports";
    assert!(html.contains(arn), "the demo admin has demo roles");
    assert!(
        html.contains("Demo accounts are simulated"),
        "said by the buttons"
    );
    let resp = app
        .client
        .get(app.url(&format!("/role/{arn}")))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "not an error: the demo has no AWS");
    let page = resp.text().await.unwrap_or_default();
    assert!(page.contains("Demo accounts are simulated"), "{page}");
    // "Bad Gateway", not "502": the footer's random request id may contain those digits.
    for operator_words in [
        "aws.mode",
        "account_ids_to_name",
        "AWS refused",
        "Bad Gateway",
    ] {
        assert!(!page.contains(operator_words), "{operator_words}: {page}");
    }
    let (cookie, token) = crate::support::form_token(&app, "/roles").await;
    let resp = app
        .client
        .post(app.url("/roles/credentials"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", token.as_str()), ("role", arn)])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("Demo accounts are simulated")
    );
    let resp = app
        .client
        .post(app.url("/api/v2/credentials"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &token)
        .json(&json!({"requested_role": arn}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("simulated")),
        "{body}"
    );

    // Every attempt is audited as a failure, none as an issuance.
    let audit = app
        .state
        .store
        .list_audit(None, &iamdesk::store::PageRequest::first(100))
        .await
        .expect("audit");
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert!(!actions.contains(&"credentials.issued"), "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "credentials.failed")
            .count(),
        3,
        "{actions:?}"
    );
    let failed = audit
        .items
        .iter()
        .find(|e| e.action == "credentials.failed")
        .expect("failure");
    assert_eq!(failed.detail["result"], "failed");
    assert_eq!(failed.detail["role"], arn);
}

#[tokio::test]
async fn a_console_link_from_another_site_asks_first_and_the_portal_links_go_straight() {
    let Some(w) = world().await else { return };
    let path = format!("/role/{}", w.arn("app"));
    let get = |site: Option<&'static str>, referer: Option<&'static str>| {
        let mut req = w
            .app
            .client
            .get(w.app.url(&path))
            .header("x-user", DEV)
            .header("x-groups", "eng");
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.send()
    };
    for (site, referer) in [
        (Some("cross-site"), None),
        // Another port on the same host is the same site, not the same origin.
        (Some("same-site"), None),
        (None, None),
        (None, Some("https://evil.example.com/")),
    ] {
        let resp = get(site, referer).await.expect("GET");
        assert_eq!(
            resp.status(),
            200,
            "{site:?} {referer:?}: a page, no redirect"
        );
        let html = resp.text().await.unwrap_or_default();
        assert!(html.contains("Sign in to the AWS console?"), "{html}");
        assert!(
            html.contains(&format!("action=\"{path}\"")),
            "a POST button: {html}"
        );
    }
    assert!(
        w.sessions.lock().map(|v| v.is_empty()).unwrap_or(false),
        "no AssumeRole, no federation call for a link from elsewhere"
    );
    let audit = w
        .app
        .state
        .store
        .list_audit(None, &iamdesk::store::PageRequest::first(50))
        .await
        .expect("audit");
    assert!(
        audit
            .items
            .iter()
            .all(|e| !e.action.starts_with("credentials.")),
        "nothing audited: nothing happened"
    );

    // The confirmation's button (CSRF-checked) signs in; without the token it does not.
    let post = |token: &str| {
        w.app
            .client
            .post(w.app.url(&path))
            .header("x-user", DEV)
            .header("x-groups", "eng")
            .header("cookie", &w.csrf.0)
            .form(&[("csrf_token", token)])
            .send()
    };
    assert_eq!(post("00").await.expect("POST").status(), 403);
    let resp = post(&w.csrf.1).await.expect("POST");
    assert_eq!(resp.status(), 302);

    // Links inside the portal (same origin, or an old browser's same-origin Referer) go straight.
    for (site, referer) in [
        (Some("same-origin"), None),
        (Some("none"), None),
        (None, Some("https://iamdesk.example.com/roles")),
    ] {
        let resp = get(site, referer).await.expect("GET");
        assert_eq!(resp.status(), 302, "{site:?} {referer:?}");
    }
}

#[tokio::test]
async fn console_url_api_returns_the_federation_url_with_the_same_rules() {
    let Some(w) = world().await else { return };
    let api = |who: &str, groups: &str, role: &str| {
        w.app
            .client
            .get(w.app.url("/api/v2/console_url"))
            .query(&[("role", role)])
            .header("x-user", who)
            .header("x-groups", groups)
            .send()
    };
    let resp = api(DEV, "eng", &w.arn("app")).await.expect("GET");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store"))
    );
    let body: Value = resp.json().await.expect("json");
    let url = body["console_url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with(&w.app.state.config.aws.federation_url) && url.contains("Action=login"),
        "{body}"
    );
    assert_eq!(body["role"], w.arn("app"));
    // CLI-only: no console. Not entitled: no console. Missing role: 400.
    assert_eq!(
        api(DEV, "", &w.arn("cli")).await.expect("GET").status(),
        403
    );
    assert_eq!(
        api("stranger@example.com", "", &w.arn("app"))
            .await
            .expect("GET")
            .status(),
        403
    );
    let resp = w
        .app
        .client
        .get(w.app.url("/api/v2/console_url"))
        .header("x-user", DEV)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 400);
    // A page on another site cannot make a browser ask for one.
    let resp = w
        .app
        .client
        .get(w.app.url("/api/v2/console_url"))
        .query(&[("role", w.arn("app"))])
        .header("x-user", DEV)
        .header("x-groups", "eng")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 403);

    // Scripts use an API token.
    let (token, _) = make_token(&w, DEV, "eng").await;
    let resp = w
        .app
        .client
        .get(w.app.url("/api/v2/console_url"))
        .query(&[("role", w.arn("app"))])
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let audit = w
        .app
        .state
        .store
        .list_audit(None, &iamdesk::store::PageRequest::first(100))
        .await
        .expect("audit");
    let console: Vec<_> = audit
        .items
        .iter()
        .filter(|e| e.detail["purpose"] == "console")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        console
            .iter()
            .filter(|a| **a == "credentials.issued")
            .count(),
        2,
        "{console:?}"
    );
    assert_eq!(
        console
            .iter()
            .filter(|a| **a == "credentials.failed")
            .count(),
        2,
        "the refusals are audited as failures: {console:?}"
    );
}

#[tokio::test]
async fn api_tokens_follow_their_owner_groups_and_rest_when_they_stop_signing_in() {
    let Some(w) = world().await else { return };
    let (token, _) = make_token(&w, DEV, "eng").await;
    let creds = |token: String| {
        let w = &w;
        async move {
            w.app
                .client
                .post(w.app.url("/api/v2/credentials"))
                .bearer_auth(token)
                .json(&json!({"requested_role": w.arn("app")}))
                .send()
                .await
                .expect("POST")
        }
    };
    assert_eq!(creds(token.clone()).await.status(), 200, "eng grants app");

    // The owner leaves the eng group: their next sign-in says so, and the token follows.
    let page = w.console(DEV, "", "/profile").await;
    assert_eq!(page.status(), 200);
    let resp = creds(token.clone()).await;
    assert_eq!(resp.status(), 403, "the token lost what eng granted");
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not authorized")),
        "{body}"
    );
    // Back in the group: back in business.
    let html = w
        .console(DEV, "eng", "/profile")
        .await
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(creds(token.clone()).await.status(), 200);
    assert!(
        html.contains("Your tokens work until"),
        "the profile says how long: {html}"
    );

    // No interactive sign-in for longer than auth.api_token_max_idle_days: the token rests.
    let idle = w.app.state.config.auth.api_token_max_idle_days;
    w.app
        .state
        .store
        .record_sign_in(&iamdesk::store::SignIn {
            user: DEV.into(),
            groups: vec!["eng".into()],
            at: chrono::Utc::now() - chrono::Duration::days(i64::from(idle) + 1),
        })
        .await
        .expect("age the sign-in");
    let resp = creds(token.clone()).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("has not signed in") && m.contains(&idle.to_string())),
        "{body}"
    );
}

/// `POST /roles/credentials` issues once, then `GET /roles/credentials` shows them once: a
/// reload never issues (nor audits) another set, and the secret never travels in a URL.
#[tokio::test]
async fn the_credentials_page_shows_them_once_after_a_redirect() {
    let Some(w) = world().await else { return };
    let resp = w
        .app
        .client
        .post(w.app.url("/roles/credentials"))
        .header("x-user", DEV)
        .header("x-groups", "eng")
        .header("cookie", &w.csrf.0)
        .form(&[("csrf_token", w.csrf.1.as_str()), ("role", &w.arn("app"))])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/roles/credentials");
    let sealed = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("iamdesk_once_credentials="))
        .expect("sealed credentials")
        .to_string();
    assert!(
        sealed.contains("Path=/roles/credentials") && sealed.contains("SameSite=Strict"),
        "{sealed}"
    );
    assert!(
        !sealed.contains("AKIA") && !sealed.contains("ASIA"),
        "{sealed}"
    );
    let show = |cookie: String| {
        w.app
            .client
            .get(w.app.url("/roles/credentials"))
            .header("x-user", DEV)
            .header("x-groups", "eng")
            .header("cookie", cookie)
            .send()
    };
    let cookie = sealed.split(';').next().unwrap_or_default().to_string();
    let resp = show(cookie.clone()).await.expect("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store, max-age=0");
    let cleared = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("iamdesk_once_credentials=;") && c.contains("Max-Age=0"));
    assert!(cleared, "the cookie is cleared once read");
    let html = resp.text().await.expect("html");
    assert!(html.contains("export AWS_SESSION_TOKEN="), "{html}");
    // The browser no longer has the cookie: a reload says they were shown.
    let html = show(String::new())
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Credentials are shown once"), "{html}");
    assert!(!html.contains("AWS_SESSION_TOKEN="));
    let issued = w
        .app
        .state
        .store
        .list_audit(None, &iamdesk::store::PageRequest::first(200))
        .await
        .expect("audit")
        .items
        .iter()
        .filter(|e| e.action == "credentials.issued")
        .count();
    assert_eq!(issued, 1, "one issuance for one click");
}
