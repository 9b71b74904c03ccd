//! Who may do what: header sign-in (trusted proxy mode), admin rights by exact group match,
//! 401 for strangers, 403 for non-admins on admin pages, rate limits.

use serde_json::Value;

use crate::support::TestApp;

async fn header_app(api_per_minute: u32) -> TestApp {
    let (mut config, dir) = TestApp::demo_config();
    config.auth.get_user_by_header = true;
    config.auth.get_groups_by_header = true;
    config.auth.user_header_name = "x-user".into();
    config.auth.groups_header_name = "x-groups".into();
    config.groups.can_admin = vec!["admins".into()];
    config.rate_limit.api_per_minute = api_per_minute;
    let mut app = TestApp::spawn(config).await;
    app.keep(dir);
    app
}

async fn get_as(app: &TestApp, path: &str, user: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some((u, g)) = user {
        req = req.header("x-user", u).header("x-groups", g);
    }
    req.send().await.expect("GET")
}

#[tokio::test]
async fn user_endpoint_reports_identity_and_exact_admin_match() {
    let app = header_app(600).await;
    let me: Value = get_as(
        &app,
        "/api/v2/user",
        Some(("ann@example.com", "dev, admins")),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(me["user"], "ann@example.com");
    assert_eq!(me["groups"], serde_json::json!(["dev", "admins"]));
    assert_eq!(me["is_admin"], true);

    let me: Value = get_as(
        &app,
        "/api/v2/user",
        Some(("bob@example.com", "admins-not,not-admins")),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        me["is_admin"], false,
        "no substring match: admins-not is not admins"
    );
}

#[tokio::test]
async fn strangers_get_401_and_non_admins_get_403_on_admin_pages() {
    let app = header_app(600).await;
    let resp = get_as(&app, "/api/v2/policies", None).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("not signed in"),
        "{body}"
    );

    let resp = get_as(&app, "/", None).await;
    assert_eq!(resp.status(), 401);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("You are not signed in"),
        "a page that says how to sign in"
    );

    for page in [
        "/admin/audit",
        "/admin/audit.jsonl",
        "/admin/outbox",
        "/admin/accounts",
    ] {
        let resp = get_as(&app, page, Some(("bob@example.com", "dev"))).await;
        assert_eq!(resp.status(), 403, "{page}");
        let resp = get_as(&app, page, Some(("ann@example.com", "admins"))).await;
        assert_eq!(resp.status(), 200, "{page}");
    }
    let html = get_as(&app, "/", Some(("bob@example.com", "dev")))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("bob@example.com"),
        "the page shows who is signed in"
    );
    assert!(
        !html.contains("Demo mode"),
        "header sign-in is not demo mode"
    );
    assert_eq!(
        get_as(&app, "/healthcheck", None).await.status(),
        200,
        "health stays public"
    );
}

#[tokio::test]
async fn api_is_rate_limited_per_user_with_retry_after() {
    let app = header_app(5).await;
    for _ in 0..5 {
        let resp = get_as(&app, "/api/v2/user", Some(("busy@example.com", ""))).await;
        assert_eq!(resp.status(), 200);
    }
    let resp = get_as(&app, "/api/v2/user", Some(("busy@example.com", ""))).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("Try again in")
    );
    // Another user is not affected.
    let resp = get_as(&app, "/api/v2/user", Some(("calm@example.com", ""))).await;
    assert_eq!(resp.status(), 200);
}

mod alb {
    //! ALB sign-in end to end: a local key server on a free port, tokens signed like the ALB.

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::elliptic_curve::rand_core::OsRng;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use serde_json::{Value, json};

    use crate::support::TestApp;

    const ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/iamdesk/0123456789abcdef";
    const KID: &str = "5e8a0c1d-2b3c-4d5e-8f90-123456789abc";

    pub struct Alb {
        pub app: TestApp,
        key: SigningKey,
    }

    impl Alb {
        pub async fn start(set_cookie: bool) -> Alb {
            Self::start_with(set_cookie, |_| {}).await
        }

        /// Another server (a replica) on the same database and configuration.
        pub async fn replica(&self) -> TestApp {
            TestApp::spawn(self.app.state.config.clone()).await
        }

        pub async fn start_with(
            set_cookie: bool,
            tune: impl FnOnce(&mut iamdesk::config::Config),
        ) -> Alb {
            let key = SigningKey::random(&mut OsRng);
            let pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .expect("pem");
            let keys = axum::Router::new().route(
                "/{kid}",
                axum::routing::get(
                    move |axum::extract::Path(kid): axum::extract::Path<String>| {
                        let pem = pem.clone();
                        async move {
                            if kid == KID {
                                (axum::http::StatusCode::OK, pem)
                            } else {
                                (axum::http::StatusCode::NOT_FOUND, String::new())
                            }
                        }
                    },
                ),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(async move {
                let _ = axum::serve(listener, keys).await;
            });
            let (mut config, dir) = TestApp::demo_config();
            config.environment = iamdesk::config::Environment::Prod;
            config.jwt_secret = Some("an-integration-test-secret-of-decent-length".into());
            config.auth.get_user_by_aws_alb_auth = true;
            config.auth.set_auth_cookie = set_cookie;
            config.auth.alb.arns = vec![ARN.into()];
            config.auth.alb.public_key_url = format!("http://127.0.0.1:{port}/{{kid}}");
            config.groups.can_admin = vec!["iam-admins".into()];
            tune(&mut config);
            let mut app = TestApp::spawn(config).await;
            app.keep(dir);
            Alb { app, key }
        }

        pub fn token(&self, email: &str, groups: &[&str], exp_in: i64) -> String {
            self.token_with_kid(KID, email, groups, exp_in)
        }

        pub fn token_with_kid(
            &self,
            kid: &str,
            email: &str,
            groups: &[&str],
            exp_in: i64,
        ) -> String {
            let header = json!({"typ": "JWT", "kid": kid, "alg": "ES256", "iss": "https://idp.example.com",
                                "client": "iamdesk", "signer": ARN,
                                "exp": chrono::Utc::now().timestamp() + exp_in});
            let payload = json!({"sub": "00u123", "email": email, "groups": groups});
            let input = format!(
                "{}.{}",
                URL_SAFE.encode(serde_json::to_vec(&header).expect("json")),
                URL_SAFE.encode(serde_json::to_vec(&payload).expect("json"))
            );
            let sig: Signature = self.key.sign(input.as_bytes());
            format!("{input}.{}", URL_SAFE.encode(sig.to_bytes()))
        }
    }

    #[tokio::test]
    async fn alb_token_signs_in_and_sets_a_session_cookie() {
        let alb = Alb::start(true).await;
        let app = &alb.app;
        let token = alb.token("alice@example.com", &["engineering", "iam-admins"], 120);
        let resp = app
            .client
            .get(app.url("/api/v2/user"))
            .header("x-amzn-oidc-data", &token)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("iamdesk_auth="))
            .map(str::to_string)
            .expect("session cookie set");
        for flag in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=3600",
        ] {
            assert!(cookie.contains(flag), "cookie flag {flag}: {cookie}");
        }
        let me: Value = resp.json().await.expect("json");
        assert_eq!(me["user"], "alice@example.com");
        assert_eq!(me["is_admin"], true);

        // The cookie alone signs in afterwards.
        let session = cookie.split(';').next().unwrap_or_default().to_string();
        let me: Value = app
            .client
            .get(app.url("/api/v2/user"))
            .header("cookie", &session)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(me["user"], "alice@example.com");
        assert_eq!(me["groups"], json!(["engineering", "iam-admins"]));

        // The same person with the same groups keeps the session: no new cookie per request.
        let resp = app
            .client
            .get(app.url("/api/v2/user"))
            .header("x-amzn-oidc-data", &token)
            .header("cookie", &session)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        assert!(
            !resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|c| c.starts_with("iamdesk_auth=")),
            "the session is kept"
        );
    }

    /// The session cookie, the CSRF cookie and the page's form token, for a page seen with
    /// `session`.
    pub async fn page_tokens(app: &TestApp, session: &str) -> (String, String) {
        let resp = app
            .client
            .get(app.url("/profile"))
            .header("cookie", session)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let csrf = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| crate::support::is_csrf_cookie(c))
            .and_then(|c| c.split(';').next())
            .expect("csrf cookie")
            .to_string();
        let html = resp.text().await.expect("html");
        let token = html
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a form token")
            .to_string();
        (format!("{session}; {csrf}"), token)
    }

    async fn session_of(alb: &Alb, email: &str) -> String {
        let resp = alb
            .app
            .client
            .get(alb.app.url("/api/v2/user"))
            .header("x-amzn-oidc-data", alb.token(email, &["engineering"], 120))
            .send()
            .await
            .expect("GET");
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.contains("iamdesk_auth="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_string()
    }

    #[tokio::test]
    async fn logout_is_a_csrf_checked_post_and_a_revoked_session_gets_401_on_another_replica() {
        let alb = Alb::start(true).await;
        let app = &alb.app;
        let replica = alb.replica().await;
        let session = session_of(&alb, "alice@example.com").await;
        let user = |app: &TestApp, cookies: String| {
            let req = app
                .client
                .get(app.url("/api/v2/user"))
                .header("cookie", cookies);
            async move { req.send().await.expect("GET").status() }
        };
        assert_eq!(user(app, session.clone()).await, 200);
        assert_eq!(user(&replica, session.clone()).await, 200, "both replicas");

        // GET /logout only shows the button; it revokes nothing.
        let resp = app
            .client
            .get(app.url("/logout"))
            .header("cookie", &session)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        assert!(
            resp.text()
                .await
                .unwrap_or_default()
                .contains("action=\"/logout\"")
        );
        assert_eq!(user(app, session.clone()).await, 200);

        // POST without the CSRF token: refused, nothing revoked.
        let (cookies, token) = page_tokens(app, &session).await;
        let resp = app
            .client
            .post(app.url("/logout"))
            .header("cookie", &cookies)
            .form(&[("csrf_token", "00")])
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 403);
        assert_eq!(user(&replica, session.clone()).await, 200);

        let resp = app
            .client
            .post(app.url("/logout"))
            .header("cookie", &cookies)
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200);
        let cleared = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("iamdesk_auth="))
            .unwrap_or_default()
            .to_string();
        assert!(
            cleared.starts_with("iamdesk_auth=;") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
        // A copy of the cookie is worthless now, on this replica and on the other one.
        assert_eq!(user(app, session.clone()).await, 401);
        assert_eq!(user(&replica, session.clone()).await, 401);
        let audit = app
            .state
            .store
            .list_audit(None, &iamdesk::store::PageRequest::first(20))
            .await
            .expect("audit");
        assert!(audit.items.iter().any(|e| e.action == "session.revoked"));
    }

    #[tokio::test]
    async fn with_redis_a_revoked_session_is_refused_at_once_by_a_replica_that_knew_it() {
        let Some(url) = crate::support::redis_url() else {
            return;
        };
        let alb = Alb::start_with(true, |c| c.redis.url = Some(url.clone())).await;
        let replica = alb.replica().await;
        let session = session_of(&alb, "bob@example.com").await;
        let status = |app: &TestApp| {
            let req = app
                .client
                .get(app.url("/api/v2/user"))
                .header("cookie", session.clone());
            async move { req.send().await.expect("GET").status() }
        };
        // The replica has seen (and, with a shared cache, remembered) the session as valid.
        assert_eq!(status(&replica).await, 200);
        let (cookies, token) = page_tokens(&alb.app, &session).await;
        let resp = alb
            .app
            .client
            .post(alb.app.url("/logout"))
            .header("cookie", &cookies)
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200);
        assert_eq!(status(&replica).await, 401);
    }

    #[tokio::test]
    async fn the_csrf_token_is_bound_to_the_session() {
        let alb = Alb::start(true).await;
        let app = &alb.app;
        let first = session_of(&alb, "carol@example.com").await;
        let second = session_of(&alb, "carol@example.com").await;
        assert_ne!(first, second, "two browsers, two sessions");
        let (cookies, token) = page_tokens(app, &first).await;
        let csrf_cookie = cookies.rsplit("; ").next().unwrap_or_default().to_string();
        let post = |cookies: String, token: String| {
            let req = app
                .client
                .post(app.url("/logout"))
                .header("cookie", cookies)
                .form(&[("csrf_token", token)]);
            async move { req.send().await.expect("POST").status() }
        };
        // The first session's token does not work with the second session's cookie.
        assert_eq!(
            post(format!("{second}; {csrf_cookie}"), token.clone()).await,
            403
        );
        assert_eq!(post(cookies, token).await, 200);
    }

    #[tokio::test]
    async fn over_https_cookies_carry_the_host_prefix() {
        let alb = Alb::start_with(true, |c| c.url = "https://iamdesk.example.com".into()).await;
        let resp = alb
            .app
            .client
            .get(alb.app.url("/profile"))
            .header(
                "x-amzn-oidc-data",
                alb.token("dan@example.com", &["engineering"], 120),
            )
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        for name in ["__Host-iamdesk_auth=", "__Host-iamdesk_csrf="] {
            let c = cookies
                .iter()
                .find(|c| c.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {cookies:?}"));
            assert!(c.contains("; Secure") && c.contains("Path=/"), "{c}");
            assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
        }
        // The unprefixed name (which a sibling subdomain could plant) is not read.
        let session = cookies
            .iter()
            .find(|c| c.starts_with("__Host-iamdesk_auth="))
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_string();
        let status = |cookie: String| {
            let req = alb
                .app
                .client
                .get(alb.app.url("/api/v2/user"))
                .header("cookie", cookie);
            async move { req.send().await.expect("GET").status() }
        };
        assert_eq!(status(session.clone()).await, 200);
        assert_eq!(status(session.replacen("__Host-", "", 1)).await, 401);
    }

    #[tokio::test]
    async fn bad_alb_tokens_and_forged_cookies_are_refused() {
        let alb = Alb::start(true).await;
        let app = &alb.app;
        let expired = alb.token("alice@example.com", &[], -600);
        let mut tampered = alb.token("alice@example.com", &[], 120);
        let other = URL_SAFE
            .encode(br#"{"sub":"x","email":"mallory@example.com","groups":["iam-admins"]}"#);
        let parts: Vec<&str> = tampered.split('.').collect();
        tampered = format!("{}.{other}.{}", parts[0], parts[2]);
        for (what, token) in [
            ("expired", expired),
            ("tampered", tampered),
            ("garbage", "a.b.c".to_string()),
        ] {
            let resp = app
                .client
                .get(app.url("/api/v2/user"))
                .header("x-amzn-oidc-data", &token)
                .send()
                .await
                .expect("GET");
            assert_eq!(resp.status(), 401, "{what}");
            let body: Value = resp.json().await.expect("json");
            let msg = body["message"].as_str().unwrap_or_default();
            assert!(msg.contains("could not be verified"), "{what}: {msg}");
            assert!(!msg.contains(&token), "the token is never echoed");
        }

        // A session cookie signed with another secret is ignored: not signed in.
        let forged = iamdesk::auth::SessionKeys::new(b"some-other-secret-entirely")
            .expect("keys")
            .issue(
                "mallory@example.com",
                &["iam-admins".to_string()],
                std::time::Duration::from_secs(600),
            )
            .expect("issue");
        let resp = app
            .client
            .get(app.url("/api/v2/user"))
            .header("cookie", format!("iamdesk_auth={forged}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 401);
    }

    #[tokio::test]
    async fn a_client_over_its_failures_costs_no_key_fetch_and_valid_tokens_still_pass() {
        let alb = Alb::start(false).await;
        let app = &alb.app;
        let valid = alb.token("erin@example.com", &["engineering"], 120);
        let get = |token: String| {
            let req = app
                .client
                .get(app.url("/api/v2/user"))
                .header("x-amzn-oidc-data", token);
            async move { req.send().await.expect("GET").status().as_u16() }
        };
        assert_eq!(get(valid.clone()).await, 200, "the kid's key is now cached");
        let verifier = app.state.alb.as_ref().expect("alb verifier");
        let limit = app.state.config.rate_limit.login_per_minute;
        for _ in 0..=limit {
            let _ = get("a.b.c".into()).await;
        }
        let fetches = verifier.key_fetches();
        // Well-formed, signed by a listed ALB, but with kids nobody has: each would be a fetch.
        for i in 0..20 {
            let forged = alb.token_with_kid(&format!("kid-{i}"), "mallory@example.com", &[], 120);
            assert_eq!(get(forged).await, 429);
        }
        assert_eq!(
            verifier.key_fetches(),
            fetches,
            "no fetch for a blocked client"
        );
        assert_eq!(
            get(valid).await,
            200,
            "a valid token from the same address passes"
        );
    }

    #[tokio::test]
    async fn sign_in_attempts_are_rate_limited_per_ip() {
        let alb = Alb::start(false).await;
        let app = &alb.app;
        let limit = app.state.config.rate_limit.login_per_minute;
        let mut limited = false;
        for _ in 0..=limit {
            let resp = app
                .client
                .get(app.url("/"))
                .header("x-amzn-oidc-data", "a.b.c")
                .send()
                .await
                .expect("GET");
            if resp.status() == 429 {
                assert!(resp.headers().contains_key("retry-after"));
                limited = true;
                break;
            }
        }
        assert!(limited, "sign-in attempts beyond login_per_minute get 429");
    }
}

#[tokio::test]
async fn header_sign_in_in_a_real_browser_shows_the_user() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    // A trusted proxy sets the identity headers; here a tiny proxy on loopback does it.
    let app = header_app(600).await;
    let upstream = app.base.clone();
    let proxy = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let upstream = upstream.clone();
        async move {
            let client = reqwest::Client::new();
            let url = format!(
                "{upstream}{}",
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            );
            match client
                .get(url)
                .header("x-user", "grace@example.com")
                .header("x-groups", "engineering")
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ctype = r
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("text/html")
                        .to_string();
                    let body = r.bytes().await.unwrap_or_default();
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", ctype)
                        .body(axum::body::Body::from(body))
                        .unwrap_or_default()
                }
                Err(_) => axum::response::Response::default(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, proxy).await;
    });
    browser
        .client
        .goto(&format!("{proxy_url}/"))
        .await
        .expect("open home");
    let who = browser
        .client
        .find(fantoccini::Locator::Css(".who"))
        .await
        .expect("user name in the header")
        .text()
        .await
        .expect("text");
    assert_eq!(who, "grace@example.com");
    browser.screenshot("signed-in-home").await;
    browser.close().await;
}
