//! The self-service wizard: templates → one policy request with the expected statements, for an
//! existing role and a new one; bad input re-renders with the problem and stores nothing; a
//! browser drives it from "My roles".

use iamdesk::store::PageRequest;
use serde_json::{Value, json};

use crate::browser::Act;
use crate::support::{
    TestApp, account_id, create_role, csrf_for, iam_in, moto_endpoint, spoke_app,
};

const DEV: &str = "dev@example.com";

struct World {
    app: TestApp,
    account: String,
    csrf: (String, String),
}

async fn world(header_sign_in: bool) -> Option<World> {
    moto_endpoint()?;
    let account = account_id();
    let tag = format!("{DEV}:demo-admin@iamdesk.local");
    create_role(
        &iam_in(&account).await,
        "app",
        &[("consoleme-authorized", tag.as_str())],
    )
    .await;
    let app = spoke_app(&account, |config| {
        config.auth.get_user_by_header = header_sign_in;
        config.auth.get_groups_by_header = header_sign_in;
    })
    .await;
    let csrf = csrf_for(&app).await;
    Some(World { app, account, csrf })
}

impl World {
    fn arn(&self) -> String {
        format!("arn:aws:iam::{}:role/app", self.account)
    }

    async fn post(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = vec![("csrf_token", self.csrf.1.as_str())];
        fields.extend_from_slice(form);
        self.app
            .client
            .post(self.app.url("/selfservice"))
            .header("x-user", DEV)
            .header("cookie", &self.csrf.0)
            .form(&fields)
            .send()
            .await
            .expect("POST")
    }

    async fn requests(&self) -> Vec<iamdesk::store::PolicyRequest> {
        self.app
            .state
            .store
            .list_requests(&Default::default(), &PageRequest::first(100))
            .await
            .expect("list")
            .items
    }
}

/// The hidden `permissions` field of a wizard page, unescaped.
fn permissions_of(html: &str) -> String {
    html.split("id=\"permissions\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("[]")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_wizard_turns_templates_into_one_request_with_the_expected_statements() {
    let Some(w) = world(true).await else { return };
    let arn = w.arn();
    let page = w
        .app
        .client
        .get(w.app.url("/selfservice?q=app"))
        .header("x-user", DEV)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(&arn) && page.contains(">mine<"),
        "my role first"
    );

    // Add S3 read on a bucket and prefix.
    let resp = w
        .post(&[
            ("role", &arn),
            ("permissions", "[]"),
            ("template", "s3_read"),
            ("v_bucket", "reports-bucket"),
            ("v_prefix", "2026/"),
            ("action", "add"),
        ])
        .await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    let perms = permissions_of(&html);
    assert!(perms.contains("reports-bucket"), "{perms}");
    assert!(
        html.contains("arn:aws:s3:::reports-bucket/2026/*"),
        "the preview"
    );

    // A bad queue ARN: 400, the problem named, nothing added.
    let resp = w
        .post(&[
            ("role", &arn),
            ("permissions", &perms),
            ("template", "sqs_send"),
            ("v_queue_arn", "not-an-arn"),
            ("action", "add"),
        ])
        .await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(html.contains("queue_arn"), "the field is named");
    assert_eq!(permissions_of(&html), perms, "nothing added");

    // Add SQS send; submit without a justification: 400, nothing stored.
    let queue = format!("arn:aws:sqs:us-east-1:{}:jobs", w.account);
    let html = w
        .post(&[
            ("role", &arn),
            ("permissions", &perms),
            ("template", "sqs_send"),
            ("v_queue_arn", &queue),
            ("action", "add"),
        ])
        .await
        .text()
        .await
        .expect("html");
    let perms = permissions_of(&html);
    let resp = w
        .post(&[
            ("role", &arn),
            ("permissions", &perms),
            ("justification", ""),
            ("action", "submit"),
        ])
        .await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("justification")
    );
    assert!(w.requests().await.is_empty(), "nothing stored");

    // Submit: one request, one inline policy with exactly the template statements.
    let resp = w
        .post(&[
            ("role", &arn),
            ("permissions", &perms),
            ("justification", "the nightly report job"),
            ("action", "submit"),
        ])
        .await;
    assert_eq!(resp.status(), 303);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let stored = w.requests().await;
    assert_eq!(stored.len(), 1);
    let r = &stored[0];
    assert_eq!(location, format!("/policies/request/{}", r.id));
    assert_eq!(r.requester, DEV);
    let changes = serde_json::to_value(&r.changes).expect("json");
    let change = &changes["changes"][0];
    assert_eq!(change["change_type"], "inline_policy");
    assert_eq!(change["principal"]["principal_arn"], json!(arn));
    assert!(
        change["policy_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("selfservice-dev-"))
    );
    let statements = change["policy"]["policy_document"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let without_sid: Vec<Value> = statements
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                o.remove("Sid");
            }
            s
        })
        .collect();
    assert_eq!(
        without_sid,
        vec![
            json!({"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                   "Resource": "arn:aws:s3:::reports-bucket/2026/*"}),
            json!({"Effect": "Allow", "Action": ["s3:ListBucket"],
                   "Resource": "arn:aws:s3:::reports-bucket",
                   "Condition": {"StringLike": {"s3:prefix": ["2026/*"]}}}),
            json!({"Effect": "Allow",
                   "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                   "Resource": queue}),
        ]
    );
}

#[tokio::test]
async fn the_wizard_can_ask_for_a_new_role_and_previews_through_the_api() {
    let Some(w) = world(true).await else { return };
    let perms = json!([{"template": "dynamodb_read",
                        "values": {"table_arn": format!("arn:aws:dynamodb:us-east-1:{}:table/orders", w.account)}}])
    .to_string();
    // The preview API answers the same document, and names problems.
    let resp = w
        .app
        .client
        .post(w.app.url("/api/v2/selfservice/preview"))
        .header("x-user", DEV)
        .header("cookie", &w.csrf.0)
        .header("x-csrf-token", &w.csrf.1)
        .json(
            &json!({"permissions": serde_json::from_str::<Value>(&perms).expect("json"),
                      "pending": {"template": "s3_read", "values": {"bucket": "Bad_Bucket"}}}),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(body.to_string().contains("bucket"), "{body}");

    let resp = w
        .post(&[
            ("new_account", &w.account),
            ("new_name", "orders-reader"),
            ("new_trust", "lambda"),
            ("new_description", "reads orders"),
            ("permissions", &perms),
            ("justification", "a new lambda reads orders"),
            ("action", "submit"),
        ])
        .await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    let stored = w.requests().await;
    let changes = serde_json::to_value(&stored[0].changes).expect("json");
    let change = &changes["changes"][0];
    assert_eq!(change["change_type"], "create_role");
    assert_eq!(change["role_name"], "orders-reader");
    assert_eq!(
        change["policy"]["policy_document"]["Statement"][0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    let doc = &change["inline_policies"][0]["policy_document"];
    assert_eq!(
        doc["Statement"][0]["Resource"][0],
        format!("arn:aws:dynamodb:us-east-1:{}:table/orders", w.account)
    );
}

#[tokio::test]
async fn a_user_requests_s3_read_through_the_wizard_in_a_real_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    // Demo sign-in: the browser is the demo user, entitled to `app` by its tag.
    let Some(w) = world(false).await else { return };
    use fantoccini::Locator::{Css, XPath};
    let c = &browser.client;
    c.goto(&w.app.url("/")).await.expect("home");
    c.find(XPath("//h2[.='My roles']"))
        .await
        .expect("My roles on the home page");
    c.find(XPath(&format!("//code[.='{}']", w.arn())))
        .await
        .expect("my role is listed");
    c.click_on("nav a[href='/selfservice']").await;
    c.click_on("a[href*='/selfservice?role=']").await;
    c.find(Css("select#template"))
        .await
        .expect("templates")
        .select_by_value("s3_read")
        .await
        .expect("S3 read");
    c.wait()
        .for_element(Css("input[name=v_bucket]"))
        .await
        .expect("bucket field")
        .send_keys("finance-reports")
        .await
        .expect("type");
    // The live preview shows the statement before it is added.
    c.wait_for_xpath(
        "//pre[@id='preview'][contains(., 'arn:aws:s3:::finance-reports/*')]",
        "live preview",
    )
    .await;
    c.click_on("button[value=add]").await;
    c.wait_for_xpath(
        "//ol[@class='permissions']/li[contains(., 'finance-reports')]",
        "added",
    )
    .await;
    c.type_in(
        "textarea[name=justification]",
        "monthly close reads the finance reports",
    )
    .await;
    browser.screenshot("selfservice-before-submit").await;
    c.click_on("button[value=submit]").await;
    c.wait_for_xpath("//h1/span[contains(., 'pending')]", "the request page")
        .await;
    browser.screenshot("selfservice-request").await;
    browser.close().await;
    let stored = w.requests().await;
    assert_eq!(stored.len(), 1);
    let changes = serde_json::to_string(&stored[0].changes).expect("json");
    assert!(
        changes.contains("arn:aws:s3:::finance-reports/*"),
        "{changes}"
    );
}
