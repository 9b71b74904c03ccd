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

    for page in ["/admin/audit", "/admin/outbox", "/admin/accounts"] {
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
