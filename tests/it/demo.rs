//! The demo from `cargo run` defaults (`TestApp::demo`): two personas switched from the banner,
//! the sandbox cloud applying approved changes, the outbox showing the mail. No AWS, no Redis:
//! the demo needs neither, so neither do these tests (except the browser).

use serde_json::{Value, json};

use crate::browser::Act;
use crate::support::{TestApp, form_token};

const ACCOUNT: &str = "111122223333";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/billing-reports";
const REQUESTER: &str = "demo-requester@iamdesk.local";
const ADMIN: &str = "demo-admin@iamdesk.local";

/// A browser-like client of the demo: its CSRF cookie and token, and the persona it acts as.
struct Visitor<'a> {
    app: &'a TestApp,
    csrf_cookie: String,
    token: String,
}

impl<'a> Visitor<'a> {
    async fn new(app: &'a TestApp) -> Visitor<'a> {
        let (csrf_cookie, token) = form_token(app, "/").await;
        Visitor {
            app,
            csrf_cookie,
            token,
        }
    }

    fn cookies(&self, persona: Option<&str>) -> String {
        match persona {
            Some(p) => format!("{}; iamdesk_demo_persona={p}", self.csrf_cookie),
            None => self.csrf_cookie.clone(),
        }
    }

    async fn get(&self, persona: &str, path: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookies(Some(persona)))
            .send()
            .await
            .expect("GET")
    }

    async fn switch(&self, persona: &str, next: &str) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/demo/persona"))
            .header("cookie", self.cookies(None))
            .header("origin", &self.app.base)
            .form(&[
                ("csrf_token", self.token.as_str()),
                ("persona", persona),
                ("next", next),
            ])
            .send()
            .await
            .expect("POST")
    }

    async fn send(
        &self,
        persona: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.app
            .client
            .request(method, self.app.url(path))
            .header("cookie", self.cookies(Some(persona)))
            .header("x-csrf-token", &self.token)
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    async fn create(&self, persona: &str, change: Value) -> String {
        let resp = self
            .send(
                persona,
                reqwest::Method::POST,
                "/api/v2/request",
                json!({"justification": "invoices for the monthly close",
                       "changes": {"changes": [change]}}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        body["request_id"].as_str().expect("id").to_string()
    }

    async fn act(&self, persona: &str, id: &str, command: &str) -> reqwest::Response {
        self.send(
            persona,
            reqwest::Method::PUT,
            &format!("/api/v2/requests/{id}"),
            json!({"modification_model": {"command": command}}),
        )
        .await
    }

    async fn role(&self) -> Value {
        self.get(ADMIN, &format!("/api/v2/roles/{ACCOUNT}/billing-reports"))
            .await
            .json()
            .await
            .expect("json")
    }
}

fn inline(name: &str) -> Value {
    json!({"change_type": "inline_policy",
           "principal": {"principal_type": "AwsResource", "principal_arn": ROLE_ARN},
           "policy_name": name, "action": "attach",
           "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
               {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::invoices/*"}]}}})
}

fn delete_inline(name: &str) -> Value {
    json!({"change_type": "inline_policy",
           "principal": {"principal_type": "AwsResource", "principal_arn": ROLE_ARN},
           "policy_name": name, "action": "detach"})
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_banner_switches_personas_with_a_csrf_checked_form() {
    let app = TestApp::demo().await;
    let v = Visitor::new(&app).await;
    let html = app.get("/policies").await.text().await.expect("html");
    assert!(html.contains("Demo mode"));
    assert!(
        html.contains("You are <strong class=\"persona\">the admin</strong>"),
        "the admin by default"
    );
    assert!(html.contains("action=\"/demo/persona\""));
    assert!(html.contains("name=\"next\" value=\"/policies\""));
    assert!(html.contains("Switch to the requester"));

    // Without the token: refused, nothing remembered.
    let resp = app
        .client
        .post(app.url("/demo/persona"))
        .header("cookie", v.cookies(None))
        .form(&[("persona", "requester")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("set-cookie").is_none());

    let resp = v.switch("requester", "/policies?q=billing").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/policies?q=billing");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.starts_with("iamdesk_demo_persona=requester;"),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let me: Value = v
        .get("requester", "/api/v2/user")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"], REQUESTER);
    assert_eq!(me["is_admin"], false);
    let html = v.get("requester", "/").await.text().await.expect("html");
    assert!(html.contains("Switch to the admin"));
    assert!(
        !html.contains("href=\"/admin/outbox\""),
        "no admin pages in the navigation"
    );
    assert!(html.contains(ROLE_ARN), "the requester has demo roles too");

    // An admin page refuses the requester, and its error page still offers the switch back.
    let resp = v.get("requester", "/admin/outbox").await;
    assert_eq!(resp.status(), 403);
    let html = resp.text().await.expect("html");
    assert!(html.contains(REQUESTER), "the error page shows who you are");
    assert!(html.contains("Switch to the admin"), "{html}");
    assert!(html.contains("name=\"next\" value=\"/admin/outbox\""));

    // Bad input: a clear 400; nowhere but this portal to go back to.
    let resp = v.switch("root", "/").await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("not one of requester, admin")
    );
    for next in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "",
    ] {
        assert_eq!(location(&v.switch("admin", next).await), "/", "{next}");
    }
    assert_eq!(
        location(&v.switch("requester", "/admin/audit").await),
        "/",
        "the requester is not sent to a page it may not see"
    );
    assert_eq!(
        location(&v.switch("admin", "/admin/audit").await),
        "/admin/audit"
    );
}

#[tokio::test]
async fn the_requester_creates_the_admin_approves_and_the_sandbox_role_changes() {
    let app = TestApp::demo().await;
    let v = Visitor::new(&app).await;
    let id = v.create("requester", inline("read-invoices")).await;

    // The requester cannot approve; the admin cannot approve their own request either.
    assert_eq!(
        v.act("requester", &id, "approve_request").await.status(),
        403
    );
    let own = v.create("admin", inline("admin-own")).await;
    let resp = v.act("admin", &own, "approve_request").await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("your own request")
    );

    let resp = v.act("admin", &id, "approve_request").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["request"]["status"], "approved", "{body}");

    let role = v.role().await;
    let names: Vec<&str> = role["inline_policies"]
        .as_array()
        .expect("inline policies")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["read-cur", "read-invoices"], "{role}");
    let html = v
        .get(
            "requester",
            &format!("/policies/edit/{ACCOUNT}/iamrole/billing-reports"),
        )
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("read-invoices") && html.contains("arn:aws:s3:::invoices/*"));

    // The mail is in the outbox, readable: subject, recipient and the plain-text body.
    let html = v
        .get("admin", "/admin/outbox")
        .await
        .text()
        .await
        .expect("html");
    let subject = format!(
        "iamdesk: Policy change request for {ROLE_ARN} has been updated to approved and committed"
    );
    assert!(html.contains(&subject), "{html}");
    assert!(html.contains("<details class=\"message\">"));
    assert!(html.contains(&format!(
        "A policy change request for {ROLE_ARN} has been updated to approved and committed\n\nSee the request here: http://127.0.0.1:8081/policies/request/{id}."
    )), "{html}");
    assert!(
        html.contains(&format!("<dd class=\"to\">{REQUESTER}</dd>")),
        "{html}"
    );
}

#[tokio::test]
async fn the_sandbox_refuses_like_aws_and_the_request_stays_pending() {
    let app = TestApp::demo().await;
    let v = Visitor::new(&app).await;
    // Both valid when made; once the first is applied the policy is gone for the second.
    let first = v.create("requester", delete_inline("read-cur")).await;
    let second = v.create("requester", delete_inline("read-cur")).await;
    assert_eq!(
        v.act("admin", &first, "approve_request").await.status(),
        200
    );
    assert_eq!(v.role().await["inline_policies"], json!([]));

    let resp = v.act("admin", &second, "approve_request").await;
    let body: Value = resp.json().await.expect("json");
    let request = &body["request"];
    assert_eq!(request["status"], "pending", "{body}");
    let message = request["results"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("NoSuchEntity: The role policy with name read-cur cannot be found."),
        "{body}"
    );
}

#[tokio::test]
async fn approved_sandbox_changes_survive_a_restart() {
    let mut app = TestApp::demo().await;
    let v = Visitor::new(&app).await;
    let id = v.create("requester", inline("kept")).await;
    assert_eq!(v.act("admin", &id, "approve_request").await.status(), 200);
    let dir = app.take_dir().expect("dir");
    let config = app.state.config.clone();
    drop(app);

    let mut app = TestApp::spawn(config).await;
    app.keep(dir);
    let role = app
        .state
        .cloud
        .fetch_role(ACCOUNT, "billing-reports")
        .await
        .expect("fetch")
        .expect("role");
    assert!(
        role.inline_policies.iter().any(|p| p.name == "kept"),
        "the sandbox agrees with the stored snapshot"
    );
}

#[tokio::test]
async fn personas_exist_only_in_demo_mode() {
    let (mut config, dir) = TestApp::demo_config();
    config.auth.get_user_by_header = true;
    let mut app = TestApp::spawn(config).await;
    app.keep(dir);
    let resp = app
        .client
        .get(app.url("/"))
        .header("x-user", "bob@example.com")
        .send()
        .await
        .expect("GET");
    let csrf = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|c| c.starts_with("iamdesk_csrf="))
        })
        .expect("csrf cookie")
        .to_string();
    let html = resp.text().await.expect("html");
    assert!(
        !html.contains("/demo/persona"),
        "no persona switch outside demo mode"
    );
    let token = crate::support::iamdesk_csrf_token(
        &app.state.secret,
        csrf.trim_start_matches("iamdesk_csrf="),
    );

    let resp = app
        .client
        .post(app.url("/demo/persona"))
        .header("x-user", "bob@example.com")
        .header("cookie", &csrf)
        .form(&[("csrf_token", token.as_str()), ("persona", "admin")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("set-cookie").is_none());

    // A persona cookie is nobody outside demo mode, and changes nobody's rights.
    let cookie = format!("{csrf}; iamdesk_demo_persona=admin");
    let resp = app
        .client
        .get(app.url("/api/v2/user"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 401);
    let me: Value = app
        .client
        .get(app.url("/api/v2/user"))
        .header("cookie", &cookie)
        .header("x-user", "bob@example.com")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"], "bob@example.com");
    assert_eq!(me["is_admin"], false);
}

/// The newcomer's journey from `cargo run` defaults, in a real browser: request a change as the
/// requester on a role page, switch to the admin from the banner, approve, see the role changed,
/// read the mail in the outbox.
#[tokio::test]
async fn the_demo_completes_the_loop_in_a_real_browser() {
    use fantoccini::Locator::{Css, XPath};
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = TestApp::demo().await;
    let c = &browser.client;
    let role_page = app.url(&format!("/policies/edit/{ACCOUNT}/iamrole/billing-reports"));
    let persona =
        |who: &str| format!("//aside[@class='banner']//strong[@class='persona'][.='{who}']");
    let switch = || Css("aside.banner form.persona-switch button");

    c.goto(&role_page).await.expect("role page");
    c.find(XPath(&persona("the admin")))
        .await
        .expect("the admin by default");
    c.find(switch())
        .await
        .expect("switch")
        .click()
        .await
        .expect("click");
    c.wait_for_xpath(&persona("the requester"), "now the requester")
        .await;
    assert_eq!(
        c.current_url().await.expect("url").as_str(),
        role_page,
        "back on the role page"
    );

    c.type_in("input[name=policy_name]", "read-invoices").await;
    c.type_in("textarea[name=policy_document]", r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::invoices/*"}]}"#,).await;
    c.type_in(
        "textarea[name=justification]",
        "billing reads the invoices for the monthly close",
    )
    .await;
    browser.screenshot("demo-1-requester-asks").await;
    c.click_on("form.change-form button[type=submit]").await;
    c.wait_for_xpath(
        "//h1/span[contains(., 'pending')]",
        "the request page, pending",
    )
    .await;
    let request_url = c.current_url().await.expect("url").to_string();
    assert!(
        c.find(Css("button.approve")).await.is_err(),
        "the requester cannot approve"
    );
    browser.screenshot("demo-2-request-pending").await;

    c.find(switch())
        .await
        .expect("switch")
        .click()
        .await
        .expect("click");
    c.wait_for_xpath(&persona("the admin"), "now the admin")
        .await;
    assert_eq!(
        c.current_url().await.expect("url").as_str(),
        request_url,
        "back on the request"
    );
    c.approve_this_request().await;
    browser.screenshot("demo-3-approved").await;

    c.goto(&role_page).await.expect("role page");
    let heading = c
        .find(XPath("//h3[.='read-invoices']"))
        .await
        .expect("the new inline policy is on the role page");
    scroll_to(c, &heading).await;
    let pre = c
        .find(XPath("//h3[.='read-invoices']/following-sibling::pre[1]"))
        .await
        .expect("its document")
        .text()
        .await
        .expect("text");
    assert!(pre.contains("arn:aws:s3:::invoices/*"), "{pre}");
    browser.screenshot("demo-4-role-changed").await;

    c.click_on("nav a[href='/admin/outbox']").await;
    let approved_mail = "//details[@class='message'][.//dd[@class='subject'][contains(., 'approved and committed')]]";
    c.wait()
        .for_element(XPath(&format!("{approved_mail}/summary")))
        .await
        .expect("the approval mail")
        .click()
        .await
        .expect("open it");
    let body = c
        .find(XPath(&format!(
            "{approved_mail}//pre[@class='message-body']"
        )))
        .await
        .expect("its text")
        .text()
        .await
        .expect("text");
    assert!(
        body.contains(&format!(
            "A policy change request for {ROLE_ARN} has been updated to approved and committed"
        )),
        "{body}"
    );
    assert!(body.contains("See the request here:"), "{body}");
    let to = c
        .find(XPath(&format!("{approved_mail}//dd[@class='to']")))
        .await
        .expect("recipients")
        .text()
        .await
        .expect("text");
    assert_eq!(to, REQUESTER);
    let opened = c
        .find(XPath(&format!("{approved_mail}/summary")))
        .await
        .expect("summary");
    scroll_to(c, &opened).await;
    browser.screenshot("demo-5-outbox-mail").await;
    browser.close().await;
}

/// Bring `element` to the top of the viewport, so the screenshot shows it.
async fn scroll_to(c: &fantoccini::Client, element: &fantoccini::elements::Element) {
    let arg = serde_json::to_value(element).expect("element reference");
    c.execute("arguments[0].scrollIntoView();", vec![arg])
        .await
        .expect("scroll");
}
