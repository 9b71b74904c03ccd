//! The Policies browser on the sandbox cloud's demo accounts: API, pages, browser.

use serde_json::Value;

use crate::support::{TestApp, form_token};

async fn json(app: &TestApp, path: &str) -> Value {
    let resp = app.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("json")
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    format!(
                        "{}/{}",
                        i["account_name"].as_str().unwrap_or(""),
                        i["name"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn policies_api_searches_filters_and_paginates() {
    let app = TestApp::demo().await;
    let all = json(&app, "/api/v2/policies?type=role&per_page=200").await;
    assert_eq!(all["total"], 30, "10 demo roles in each of 3 accounts");

    let r = json(&app, "/api/v2/policies?q=payments&account=demo-prod").await;
    // The payments team's queue (tag team=payments) matches too.
    assert_eq!(
        names(&r),
        ["demo-prod/demo-prod-orders", "demo-prod/payments-api"]
    );

    // Action search follows wildcards: breakglass-admin has "*".
    let r = json(
        &app,
        "/api/v2/policies?action=kms:Decrypt&account=111122223333&type=role",
    )
    .await;
    assert_eq!(
        names(&r),
        [
            "demo-prod/breakglass-admin",
            "demo-prod/data-warehouse-loader",
            "demo-prod/payments-api"
        ]
    );
    let r = json(&app, "/api/v2/policies?tag=team=ml").await;
    assert_eq!(r["total"], 3);

    // Pages cover everything exactly once.
    let mut seen = vec![];
    for page in 1..=4 {
        let r = json(
            &app,
            &format!("/api/v2/policies?type=role&per_page=8&page={page}"),
        )
        .await;
        seen.extend(names(&r));
    }
    assert_eq!(seen.len(), 30);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 30);

    for (q, needle) in [
        (
            "type=ec2",
            "not one of role, user, managed_policy, s3, sqs, sns",
        ),
        ("sort=size", "not one of name"),
        ("page=0", "page starts at 1"),
        ("per_page=1000", "per_page must be between"),
    ] {
        let resp = app.get(&format!("/api/v2/policies?{q}")).await;
        assert_eq!(resp.status(), 400, "{q}");
        let body: Value = resp.json().await.expect("json");
        assert!(
            body["message"].as_str().unwrap_or("").contains(needle),
            "{q}: {body}"
        );
    }
}

#[tokio::test]
async fn role_api_and_page_show_policies_and_tags() {
    let app = TestApp::demo().await;
    let r = json(&app, "/api/v2/roles/444455556666/billing-reports").await;
    assert_eq!(r["arn"], "arn:aws:iam::444455556666:role/billing-reports");
    assert_eq!(r["account_name"], "demo-staging");
    assert_eq!(
        r["inline_policies"][0]["document"]["Statement"][0]["Action"][0],
        "s3:GetObject"
    );
    let resp = app.get("/api/v2/roles/444455556666/nope").await;
    assert_eq!(resp.status(), 404);

    let html = app
        .get("/policies/edit/444455556666/iamrole/billing-reports")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("arn:aws:iam::444455556666:role/billing-reports"));
    assert!(html.contains("read-cur"), "inline policy name");
    assert!(html.contains("ecs-tasks.amazonaws.com"), "trust policy");
    assert!(html.contains("ReadOnlyLogs"), "managed policy");
    assert!(html.contains("consoleme-authorized"), "tags");
    assert!(
        html.contains("<title>billing-reports · iamdesk</title>"),
        "a plain page title"
    );

    let html = app
        .get("/policies?q=search-indexer&type=role")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("3 results"), "{html}");
    assert!(html.contains("/policies/edit/111122223333/iamrole/search-indexer"));
}

#[tokio::test]
async fn browse_policies_in_a_real_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = TestApp::demo().await;
    let c = &browser.client;
    c.goto(&app.url("/policies")).await.expect("open policies");
    let input = c
        .find(fantoccini::Locator::Css("input[name=q]"))
        .await
        .expect("search box");
    input.send_keys("s3:PutObject").await.expect("type");
    c.find(fantoccini::Locator::Css("form.filters button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("search");
    // Wait for the results of this search, not the unfiltered list it replaces.
    c.wait()
        .for_element(fantoccini::Locator::XPath("//p[contains(., '6 results')]"))
        .await
        .expect("search results");
    let link = c
        .find(fantoccini::Locator::LinkText("ml-training"))
        .await
        .expect("ml-training can s3:PutObject");
    browser.screenshot("policies-search").await;
    link.click().await.expect("open role");
    let h1 = c
        .wait()
        .for_element(fantoccini::Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("text");
    assert_eq!(h1, "ml-training");
    browser.screenshot("role-page").await;
    browser.close().await;
}

#[tokio::test]
async fn accounts_page_shows_sync_status_per_account() {
    let app = TestApp::demo().await;
    let html = app.get("/admin/accounts").await.text().await.expect("html");
    for (id, name) in iamdesk::resources::demo::DEMO_ACCOUNTS {
        assert!(html.contains(id) && html.contains(name), "{name} listed");
    }
    assert_eq!(html.matches("status-approved\">ok").count(), 3, "{html}");
}

#[tokio::test]
async fn refresh_role_requires_csrf_and_rereads_the_role() {
    let app = TestApp::demo().await;
    let page = "/policies/edit/111122223333/iamrole/payments-api";
    let post = format!("{page}/refresh");

    // No token, no cookie: refused, nothing happens.
    let resp = app
        .client
        .post(app.url(&post))
        .form(&[("x", "1")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap_or_default().contains("CSRF"));

    let (cookie, token) = form_token(&app, page).await;
    // Wrong token with the right cookie: refused.
    let resp = app
        .client
        .post(app.url(&post))
        .header("cookie", &cookie)
        .form(&[("csrf_token", "00")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
    // Cross-site origin: refused even with a valid token.
    let resp = app
        .client
        .post(app.url(&post))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example.com")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("Cross-site request refused")
    );

    let generation = || async {
        app.state
            .store
            .resource_account("111122223333")
            .await
            .expect("generation")
            .map_or(0, |a| a.generation)
    };
    let before = generation().await;
    let resp = app
        .client
        .post(app.url(&post))
        .header("cookie", &cookie)
        .header("origin", &app.base)
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], format!("{page}?refreshed=1"));
    // The sandbox's demo role reads the same as synced: written again all the same (a refresh
    // writes what it read), alone, one generation on.
    assert_eq!(generation().await, before + 1);
    let log = app
        .state
        .store
        .resource_changes("111122223333", before)
        .await
        .expect("changes");
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].keys,
        [iamdesk::resources::model::ResourceKey::role("payments-api")]
    );
    assert_eq!(
        app.state.resources.account_generation("111122223333"),
        Some(before + 1),
        "this replica applied its own write"
    );
    let html = app
        .get(&format!("{page}?refreshed=1"))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("Refreshed from AWS just now."));
}

#[tokio::test]
async fn role_page_form_creates_a_request_or_says_what_to_fix() {
    let app = TestApp::demo().await;
    let page = "/policies/edit/111122223333/iamrole/payments-api";
    let (cookie, token) = form_token(&app, page).await;
    let post = |fields: Vec<(&'static str, String)>| {
        let mut fields = fields;
        fields.push(("csrf_token", token.clone()));
        app.client
            .post(app.url(&format!("{page}/request")))
            .header("cookie", &cookie)
            .form(&fields)
            .send()
    };
    // Broken JSON: the form comes back with the problem and the input kept.
    let resp = post(vec![
        ("kind", "inline_policy:attach".into()),
        ("policy_name", "reports".into()),
        ("policy_document", "{not json".into()),
        ("justification", "keep me".into()),
    ])
    .await
    .expect("POST");
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("not valid JSON") && html.contains("keep me"),
        "{html}"
    );

    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;
    let resp = post(vec![
        ("kind", "inline_policy:attach".into()),
        ("policy_name", "reports".into()),
        ("policy_document", doc.into()),
        ("justification", "monthly reports".into()),
    ])
    .await
    .expect("POST");
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(location.starts_with("/policies/request/"), "{location}");
    let html = app.get(&location).await.text().await.expect("html");
    assert!(html.contains("monthly reports") && html.contains("table class=\"diff\""));
}
