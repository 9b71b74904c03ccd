//! The pages as people meet them, in a real browser (issue 19): axe-core on every page in the
//! light and the dark theme, every page at 420 px without sideways scrolling, each page's
//! weight (HTML + CSS + JS under 100 KB), search as you type, and a request made and approved
//! with the keyboard alone. Screenshots of every page, in both themes and at 420 px, go to
//! `target/screenshots/pages/`; the sizes and axe results to `target/screenshots/pages/report.md`.
//!
//! One browser session visits everything (the suite runs on 2 cores). axe-core comes from
//! `node_modules/` (`scripts/test` installs it with npm from `package-lock.json`) and is
//! injected through WebDriver, which the page's CSP does not govern.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use fantoccini::Locator::{Css, XPath};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::browser::Act;
use crate::support::{TestApp, form_token, strict};

const ACCOUNT: &str = "111122223333";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/billing-reports";
const MAX_PAGE_BYTES: u64 = 100 * 1024;

fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(_) => {
            assert!(
                !strict(),
                "{} is missing: scripts/test installs axe-core with npm",
                path.display()
            );
            eprintln!("skipping: axe-core not installed (run scripts/test)");
            None
        }
    }
}

/// A pending request by the demo requester (for the request page, outbox and audit log).
async fn seed_request(app: &TestApp, policy: &str) -> String {
    let (cookie, token) = form_token(app, "/").await;
    let resp = app
        .client
        .post(app.url("/api/v2/request"))
        .header(
            "cookie",
            format!("{cookie}; iamdesk_demo_persona=requester"),
        )
        .header("x-csrf-token", token)
        .json(&json!({"justification": "invoices for the monthly close",
            "changes": {"changes": [{"change_type": "inline_policy",
                "principal": {"principal_type": "AwsResource", "principal_arn": ROLE_ARN},
                "policy_name": policy, "action": "attach",
                "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                    {"Sid": "ReadInvoices", "Effect": "Allow", "Action": "s3:GetObject",
                     "Resource": "arn:aws:s3:::invoices/*"}]}}}]}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["request_id"].as_str().expect("id").to_string()
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/pages");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

/// axe's serious and critical violations on the current page, as readable lines.
async fn axe_violations(c: &fantoccini::Client, axe: &str) -> (Vec<String>, usize) {
    c.execute(axe, vec![]).await.expect("inject axe-core");
    let result = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document).then(r => done({passes: r.passes.length, violations: r.violations.map(v =>
               ({id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' +
                   (n.failureSummary || '').replace(/\\s+/g, ' '))}))}))
               .catch(e => done({passes: 0, violations: [{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]}));",
            vec![],
        )
        .await
        .expect("axe.run");
    assert!(
        result["passes"].as_u64().unwrap_or_default() > 10,
        "axe-core checked the page: {result}"
    );
    let all = result["violations"].as_array().cloned().unwrap_or_default();
    let bad = all
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            format!(
                "{} ({}): {} {}",
                v["id"], v["impact"], v["help"], v["nodes"]
            )
        })
        .collect();
    for v in all
        .iter()
        .filter(|v| !matches!(v["impact"].as_str(), Some("serious" | "critical")))
    {
        eprintln!("axe (minor): {} {} {}", v["id"], v["help"], v["nodes"]);
    }
    (bad, all.len())
}

/// HTML (as received) plus the stylesheets and scripts the page links.
async fn page_bytes(c: &fantoccini::Client, assets: &BTreeMap<String, u64>) -> u64 {
    let v = c
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             const links = [...document.querySelectorAll('link[rel=stylesheet], script[src]')]
               .map(e => new URL(e.href || e.src).pathname);
             return {html: nav ? nav.decodedBodySize : document.documentElement.outerHTML.length,
                     links: links};",
            vec![],
        )
        .await
        .expect("sizes");
    let html = v["html"].as_u64().unwrap_or_default();
    let linked: u64 = v["links"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(|p| assets.get(p).copied().unwrap_or_default())
                .sum()
        })
        .unwrap_or_default();
    html + linked
}

/// The page's width beyond the window (0 = no sideways scrolling).
async fn overflow(c: &fantoccini::Client) -> i64 {
    c.execute(
        "return document.documentElement.scrollWidth - window.innerWidth;",
        vec![],
    )
    .await
    .expect("width")
    .as_i64()
    .unwrap_or_default()
}

#[tokio::test]
async fn every_page_passes_axe_in_both_themes_fits_420px_and_weighs_under_100kb() {
    let Some(axe) = axe_source() else { return };
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = TestApp::demo().await;
    let id = seed_request(&app, "read-invoices").await;
    let c = &browser.client;

    // The hashed assets' sizes, once (the wizard adds its own script).
    let mut assets = BTreeMap::new();
    let wizard_path = format!(
        "/selfservice?role={}",
        ROLE_ARN.replace(':', "%3A").replace('/', "%2F")
    );
    for page in ["/", wizard_path.as_str()] {
        let html = app.get(page).await.text().await.expect("html");
        for part in html.split("\"/static/").skip(1) {
            let path = format!("/static/{}", part.split('"').next().unwrap_or_default());
            let body = app.get(&path).await.bytes().await.expect("asset");
            assets.insert(path, body.len() as u64);
        }
    }

    let role = format!("/policies/edit/{ACCOUNT}/iamrole/billing-reports");
    let pages: Vec<(&str, String)> = vec![
        ("home", "/".into()),
        ("my-roles", "/roles".into()),
        ("policies", "/policies".into()),
        ("policies-search", "/policies?q=s3%3AGetObject".into()),
        ("role", format!("{role}?from=q%3Ds3%253AGetObject")),
        ("requests", "/requests".into()),
        ("rightsize", "/rightsize".into()),
        ("request", format!("/policies/request/{id}")),
        ("selfservice", "/selfservice".into()),
        (
            "selfservice-build",
            format!(
                "/selfservice?role={}",
                ROLE_ARN.replace(':', "%3A").replace('/', "%2F")
            ),
        ),
        ("profile", "/profile".into()),
        ("credentials-once", "/roles/credentials".into()),
        ("audit", "/admin/audit".into()),
        ("outbox", "/admin/outbox".into()),
        ("accounts", "/admin/accounts".into()),
        ("not-found", "/no/such/page".into()),
    ];

    let mut report = String::from(
        "| page | theme | width | bytes (HTML+CSS+JS) | axe: serious/critical | axe: all |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = vec![];
    // axe-core finds what it should: an unlabelled input added to a page is critical.
    c.goto(&app.url("/")).await.expect("home");
    c.execute(
        "const i = document.createElement('input'); i.type = 'text'; \
         document.querySelector('main').appendChild(i);",
        vec![],
    )
    .await
    .expect("canary");
    let (bad, _) = axe_violations(c, &axe).await;
    assert!(
        bad.iter().any(|v| v.contains("\"label\"")),
        "axe-core reports an unlabelled input: {bad:?}"
    );
    c.goto(&app.url("/")).await.expect("home");
    for theme in ["light", "dark"] {
        if theme == "dark" {
            // The footer's theme choice, as a person makes it (it submits itself).
            c.set_window_size(1280, 900).await.expect("size");
            c.goto(&app.url("/")).await.expect("home");
            c.find(Css("#theme-choice"))
                .await
                .expect("theme choice")
                .select_by_value("dark")
                .await
                .expect("dark");
            c.wait()
                .for_element(Css("html[data-theme=dark]"))
                .await
                .expect("dark theme applied");
        }
        for width in [1280u32, 420] {
            c.set_window_size(width, 900).await.expect("window size");
            for (name, path) in &pages {
                c.goto(&app.url(path)).await.expect("open page");
                c.find(Css("h1")).await.expect("every page has a heading");
                let label = format!("{name}-{theme}-{width}");
                let (bad, all) = axe_violations(c, &axe).await;
                let bytes = page_bytes(c, &assets).await;
                let wide = overflow(c).await;
                shot(c, &label).await;
                let _ = writeln!(
                    report,
                    "| {name} | {theme} | {width} | {bytes} | {} | {all} |",
                    bad.len()
                );
                if !bad.is_empty() {
                    failures.push(format!("{label}: {}", bad.join("\n  ")));
                }
                if bytes > MAX_PAGE_BYTES {
                    failures.push(format!("{label}: {bytes} bytes, over 100 KB"));
                }
                if width == 420 && wide > 0 {
                    failures.push(format!("{label}: {wide} px wider than the window"));
                }
            }
            // A form with problems: the summary and the highlighted fields.
            c.goto(&app.url(&role)).await.expect("role page");
            c.type_in("#f-policy_name", "broken").await;
            c.type_in("#f-policy_document", r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}]}"#).await;
            c.click_on("form.change-form button[type=submit]").await;
            c.wait()
                .for_element(Css("#form-errors"))
                .await
                .expect("the error summary");
            let label = format!("role-form-errors-{theme}-{width}");
            let (bad, all) = axe_violations(c, &axe).await;
            shot(c, &label).await;
            let _ = writeln!(
                report,
                "| role-form-errors | {theme} | {width} | - | {} | {all} |",
                bad.len()
            );
            if !bad.is_empty() {
                failures.push(format!("{label}: {}", bad.join("\n  ")));
            }
        }
    }
    std::fs::write(shots_dir().join("report.md"), &report).expect("report");
    eprintln!("{report}");
    browser.close().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn typing_in_policies_narrows_the_results_in_place_and_keeps_the_url() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = TestApp::demo().await;
    let c = &browser.client;
    c.goto(&app.url("/policies")).await.expect("policies");
    let rows = |c: &fantoccini::Client| {
        let c = c.clone();
        async move {
            c.find_all(Css("#results tbody tr"))
                .await
                .expect("rows")
                .len()
        }
    };
    let before = rows(c).await;
    assert!(before > 3, "{before} rows unfiltered");
    // A marker that a page load would wipe out.
    c.execute("window.__stillHere = 'yes';", vec![])
        .await
        .expect("marker");
    let search = c.find(Css("input[name=q]")).await.expect("search box");
    search.send_keys("s3:PutObject").await.expect("type");
    c.wait()
        .for_element(XPath(
            "//p[@data-live-status][starts-with(normalize-space(.), '6 results')]",
        ))
        .await
        .expect("the results narrowed");
    assert_eq!(rows(c).await, 6);
    let marker = c
        .execute("return window.__stillHere || null;", vec![])
        .await
        .expect("marker");
    assert_eq!(marker, json!("yes"), "no page load happened");
    let url = c.current_url().await.expect("url");
    assert_eq!(url.path(), "/policies");
    assert!(
        url.query()
            .unwrap_or_default()
            .split('&')
            .any(|p| p == "q=s3%3APutObject"),
        "the URL follows the search: {url}"
    );
    let why = c
        .find(XPath("//tr[.//a[.='ml-training']]//span[@class='matched']"))
        .await
        .expect("matched because")
        .text()
        .await
        .expect("text");
    assert!(why.starts_with("matched because:"), "{why}");
    assert!(why.contains("allows s3:"), "{why}");
    shot(c, "live-search-policies").await;

    // The role page marks the statement, and "← Policies" (or Back) returns to the search.
    c.find(XPath("//a[.='ml-training']"))
        .await
        .expect("link")
        .click()
        .await
        .expect("open");
    c.wait()
        .for_element(Css("mark.match"))
        .await
        .expect("the matching statement is marked");
    shot(c, "role-matching-statement").await;
    c.back().await.expect("back");
    c.wait()
        .for_element(XPath(
            "//p[@data-live-status][starts-with(normalize-space(.), '6 results')]",
        ))
        .await
        .expect("back on the search");
    let value = c
        .find(Css("input[name=q]"))
        .await
        .expect("box")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(value.as_deref(), Some("s3:PutObject"));
    // "/" jumps to the search box.
    c.click_on("h1").await;
    press(c, '/').await;
    let focused = c
        .execute("return document.activeElement.name;", vec![])
        .await
        .expect("focus");
    assert_eq!(focused, json!("q"));

    // The same on My roles and the requests list.
    for (page, text, expect) in [
        ("/roles", "zzz-no-such-role", "0 results"),
        ("/requests", "no-such-request-anywhere", "0 results"),
    ] {
        c.goto(&app.url(page)).await.expect("page");
        c.execute("window.__stillHere = 'yes';", vec![])
            .await
            .expect("marker");
        c.type_in("input[name=q]", text).await;
        c.wait()
            .for_element(XPath(&format!(
                "//p[@data-live-status][starts-with(normalize-space(.), '{expect}')]"
            )))
            .await
            .expect("narrowed");
        let marker = c
            .execute("return window.__stillHere || null;", vec![])
            .await
            .expect("marker");
        assert_eq!(marker, json!("yes"), "{page}: no page load");
        let url = c.current_url().await.expect("url");
        assert!(url.as_str().contains(&format!("q={text}")), "{url}");
    }

    // The role page's form shows the fields of the chosen change only.
    c.goto(&app.url(&format!("/policies/edit/{ACCOUNT}/iamrole/billing-reports")))
        .await
        .expect("role");
    assert!(
        c.find(Css("#f-policy_document"))
            .await
            .expect("doc")
            .is_displayed()
            .await
            .expect("shown")
    );
    assert!(
        !c.find(Css("#f-tag_key"))
            .await
            .expect("tag")
            .is_displayed()
            .await
            .expect("hidden")
    );
    c.find(Css("#f-kind"))
        .await
        .expect("kind")
        .select_by_value("resource_tag:create")
        .await
        .expect("select");
    assert!(
        c.find(Css("#f-tag_key"))
            .await
            .expect("tag")
            .is_displayed()
            .await
            .expect("shown")
    );
    assert!(
        !c.find(Css("#f-policy_document"))
            .await
            .expect("doc")
            .is_displayed()
            .await
            .expect("hidden")
    );
    assert!(
        c.find(Css("button.copy"))
            .await
            .expect("copy")
            .is_displayed()
            .await
            .expect("copy shown"),
        "the copy button appears with JavaScript"
    );
    browser.close().await;
}

async fn press(c: &fantoccini::Client, key: char) {
    c.perform_actions(
        KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key }),
    )
    .await
    .expect("key press");
}

async fn type_text(c: &fantoccini::Client, text: &str) {
    let mut keys = KeyActions::new("keyboard".into());
    for ch in text.chars() {
        keys = keys
            .then(KeyAction::Down { value: ch })
            .then(KeyAction::Up { value: ch });
    }
    c.perform_actions(keys).await.expect("typing");
}

/// Press Tab until the focused element matches `css`; the focus must be visible there.
async fn tab_to(c: &fantoccini::Client, css: &str) {
    for _ in 0..150 {
        press(c, Key::Tab.into()).await;
        let here = c
            .execute(
                "const e = document.activeElement;
                 if (!e || !e.matches(arguments[0])) return null;
                 const s = getComputedStyle(e);
                 return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;",
                vec![json!(css)],
            )
            .await
            .expect("focus");
        if let Some(visible) = here.as_bool() {
            assert!(visible, "the focus on {css} is visible");
            return;
        }
    }
    panic!("Tab never reached {css}");
}

#[tokio::test]
async fn a_request_is_made_and_approved_with_the_keyboard_alone() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = TestApp::demo().await;
    let c = &browser.client;
    let role = app.url(&format!("/policies/edit/{ACCOUNT}/iamrole/billing-reports"));
    c.goto(&role).await.expect("role page");

    // Become the requester: the banner's button.
    tab_to(c, "aside.banner form.persona-switch button").await;
    press(c, Key::Enter.into()).await;
    c.wait_for_xpath(
        "//strong[@class='persona'][.='the requester']",
        "the requester",
    )
    .await;

    // "Request a change" jumps to the form; fill it in field by field.
    tab_to(c, "a[href='#request-change']").await;
    press(c, Key::Enter.into()).await;
    tab_to(c, "#f-kind").await;
    tab_to(c, "#f-policy_name").await;
    type_text(c, "keyboard-journey").await;
    tab_to(c, "#f-policy_document").await;
    type_text(
        c,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::keys/*"}]}"#,
    )
    .await;
    tab_to(c, "#f-justification").await;
    type_text(c, "made without a mouse").await;
    tab_to(c, "form.change-form button[type=submit]").await;
    shot(c, "keyboard-1-form").await;
    press(c, Key::Enter.into()).await;
    c.wait_for_xpath("//h1/span[contains(., 'pending')]", "the request page")
        .await;

    // Become the admin, tick the box, approve.
    tab_to(c, "aside.banner form.persona-switch button").await;
    press(c, Key::Enter.into()).await;
    c.wait_for_xpath("//strong[@class='persona'][.='the admin']", "the admin")
        .await;
    tab_to(c, "form input[name=confirm]").await;
    press(c, Key::Space.into()).await;
    tab_to(c, "button.approve").await;
    shot(c, "keyboard-2-approve").await;
    press(c, Key::Enter.into()).await;
    c.wait_for_xpath("//h1/span[contains(., 'approved')]", "approved")
        .await;
    shot(c, "keyboard-3-approved").await;
    browser.close().await;
    let role = app
        .state
        .cloud
        .fetch_role(ACCOUNT, "billing-reports")
        .await
        .expect("fetch")
        .expect("role");
    assert!(
        role.inline_policies
            .iter()
            .any(|p| p.name == "keyboard-journey"),
        "applied in the sandbox"
    );
}

// ---- The forms' answers, over HTTP -------------------------------------------------------------

/// A demo visitor posting forms as `persona`.
struct Forms<'a> {
    app: &'a TestApp,
    cookie: String,
    token: String,
}

impl<'a> Forms<'a> {
    async fn new(app: &'a TestApp) -> Forms<'a> {
        let (cookie, token) = form_token(app, "/").await;
        Forms { app, cookie, token }
    }

    async fn post(&self, persona: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = fields.to_vec();
        fields.push(("csrf_token", self.token.as_str()));
        self.app
            .client
            .post(self.app.url(path))
            .header(
                "cookie",
                format!("{}; iamdesk_demo_persona={persona}", self.cookie),
            )
            .header("origin", &self.app.base)
            .form(&fields)
            .send()
            .await
            .expect("POST")
    }

    async fn get(&self, persona: &str, path: &str) -> String {
        self.app
            .client
            .get(self.app.url(path))
            .header(
                "cookie",
                format!("{}; iamdesk_demo_persona={persona}", self.cookie),
            )
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("html")
    }
}

async fn stored(app: &TestApp) -> Vec<iamdesk::store::PolicyRequest> {
    app.state
        .store
        .list_requests(
            &Default::default(),
            &iamdesk::store::PageRequest::first(100),
        )
        .await
        .expect("list")
        .items
}

fn doc_with(action: &str, effect: &str) -> String {
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "{effect}", "Action": "{action}", "Resource": "arn:aws:s3:::invoices/*"}}]}}"#
    )
}

#[tokio::test]
async fn the_role_form_speaks_in_its_labels_and_asks_about_unknown_actions() {
    let app = TestApp::demo().await;
    let f = Forms::new(&app).await;
    let path = format!("/policies/edit/{ACCOUNT}/iamrole/billing-reports/request");
    let submit = |doc: String, justification: &'static str, accept: &'static str| {
        let path = path.clone();
        let f = &f;
        async move {
            f.post(
                "requester",
                &path,
                &[
                    ("kind", "inline_policy:attach"),
                    ("policy_name", "read-invoices"),
                    ("policy_document", &doc),
                    ("justification", justification),
                    ("accept_unknown", accept),
                ],
            )
            .await
        }
    };

    // Problems: summary first, each linked to its field by the form's label, API path kept.
    let resp = submit(doc_with("s3:GetObject", "Maybe"), "", "").await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("Nothing was submitted: 2 problems to fix"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"#f-policy_document\">Policy document</a> (statement 1 › Effect)"),
        "{html}"
    );
    assert!(html.contains("<code>changes[0].policy.policy_document.Statement[0].Effect</code>"));
    assert!(html.contains("<a href=\"#f-justification\">Justification</a>"));
    assert!(
        html.contains("aria-invalid=\"true\""),
        "the fields are marked"
    );
    let summary = html.find("id=\"form-errors\"").expect("summary");
    let form = html.find("class=\"change-form\"").expect("form");
    assert!(summary < form, "the summary comes first on the page");

    // A typo in an action: asked once, with the suggestion; nothing stored.
    let resp = submit(doc_with("s3:GetObjekt", "Allow"), "monthly close", "").await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(html.contains("did you mean s3:GetObject"), "{html}");
    assert!(html.contains("name=\"accept_unknown\""), "{html}");
    assert!(stored(&app).await.is_empty(), "nothing stored yet");
    // ... submitted when the requester insists; the reviewer sees the warning.
    let resp = submit(doc_with("s3:GetObjekt", "Allow"), "monthly close", "yes").await;
    assert_eq!(resp.status(), 303);
    let requests = stored(&app).await;
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0]
            .warnings
            .iter()
            .any(|w| w.contains("did you mean s3:GetObject")),
        "{:?}",
        requests[0].warnings
    );

    // An unknown service is an error (the API says the same).
    let resp = submit(doc_with("s4:GetObject", "Allow"), "monthly close", "yes").await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("there is no AWS service `s4`; did you mean s3"),
        "{html}"
    );
    assert_eq!(stored(&app).await.len(), 1);
}

#[tokio::test]
async fn the_wizard_submits_the_entry_being_filled_in_and_warns_about_bare_prefixes() {
    let app = TestApp::demo().await;
    let f = Forms::new(&app).await;
    let base = [
        ("role", ROLE_ARN),
        ("permissions", "[]"),
        ("template", "s3_read"),
        ("v_bucket", "invoices"),
        ("justification", "read the weekly invoices"),
    ];
    // "Add" with a prefix lacking its slash: added, with a plain warning.
    let mut add = base.to_vec();
    add.extend([("v_prefix", "weekly"), ("action", "add")]);
    let resp = f.post("requester", "/selfservice", &add).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Check before submitting"), "{html}");
    assert!(html.contains("Write “weekly/”"), "{html}");

    // A broken entry filled in but not added: said plainly, nothing submitted.
    let mut broken = base.to_vec();
    broken.retain(|(k, _)| *k != "v_bucket");
    broken.extend([("v_bucket", "Not A Bucket!"), ("action", "submit")]);
    let resp = f.post("requester", "/selfservice", &broken).await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("html");
    assert!(html.contains("is not added yet"), "{html}");
    assert!(html.contains("<a href=\"#v-bucket\">"), "{html}");
    assert!(stored(&app).await.is_empty());

    // A good entry filled in but not added: "Submit" includes it, as the preview showed.
    let mut submit = base.to_vec();
    submit.extend([("v_prefix", "weekly/"), ("action", "submit")]);
    let resp = f.post("requester", "/selfservice", &submit).await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    let requests = stored(&app).await;
    assert_eq!(requests.len(), 1);
    let changes = serde_json::to_string(&requests[0].changes).expect("json");
    assert!(
        changes.contains("arn:aws:s3:::invoices/weekly/*"),
        "{changes}"
    );
}

#[tokio::test]
async fn rejecting_says_why_and_reopening_asks_first() {
    let app = TestApp::demo().await;
    let id = seed_request(&app, "read-invoices").await;
    let f = Forms::new(&app).await;
    let act = format!("/policies/request/{id}/act");
    let version = app
        .state
        .store
        .get_request(&id)
        .await
        .expect("get")
        .expect("request")
        .version
        .to_string();
    let resp = f
        .post(
            "admin",
            &act,
            &[
                ("command", "reject_request"),
                ("confirm", "yes"),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("Say why you reject")
    );
    let resp = f
        .post(
            "admin",
            &act,
            &[
                ("command", "reject_request"),
                ("confirm", "yes"),
                ("version", &version),
                ("reason", "Resource * is too broad: name the bucket."),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let html = f.get("requester", &format!("/policies/request/{id}")).await;
    let timeline = html
        .split("<ol class=\"timeline\">")
        .nth(1)
        .expect("timeline");
    let rejected = timeline.find("rejected the request").expect("rejection");
    let reason = timeline
        .find("Rejected: Resource * is too broad: name the bucket.")
        .expect("the reason");
    assert!(rejected < reason, "the reason follows the rejection");
    assert!(timeline.contains("class=\"t-rejected\""));
    assert!(html.contains(&format!(
        "<a href=\"/policies/edit/{ACCOUNT}/iamrole/billing-reports\"><code>{ROLE_ARN}</code></a>"
    )));
    assert!(html.contains("account demo-prod (111122223333)"), "{html}");

    // Moving it back needs the box ticked.
    let resp = f
        .post("admin", &act, &[("command", "move_back_to_pending")])
        .await;
    assert_eq!(resp.status(), 400);
    let resp = f
        .post(
            "admin",
            &act,
            &[("command", "move_back_to_pending"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(resp.status(), 303);

    // The list shows role, account and kinds; its JSON carries the same rows.
    let html = f.get("admin", "/requests").await;
    assert!(html.contains("billing-reports</a>") && html.contains("demo-prod (111122223333)"));
    assert!(html.contains("<td>inline policy</td>"), "{html}");
    let list: Value = app
        .client
        .get(app.url("/api/v2/requests"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(list["summaries"][0]["principal_name"], "billing-reports");
    assert_eq!(list["summaries"][0]["account_name"], "demo-prod");
    assert_eq!(list["summaries"][0]["kinds"], "inline policy");
}

#[tokio::test]
async fn the_theme_is_a_csrf_checked_choice_remembered_in_a_cookie() {
    let app = TestApp::demo().await;
    let f = Forms::new(&app).await;
    let resp = f
        .post(
            "admin",
            "/preferences/theme",
            &[("theme", "dark"), ("next", "/policies")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/policies");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.starts_with("iamdesk_theme=dark;"), "{cookie}");
    let html = app
        .client
        .get(app.url("/policies"))
        .header("cookie", "iamdesk_theme=dark")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(html.contains("<html lang=\"en\" data-theme=\"dark\">"));
    assert!(html.contains("<option value=\"dark\" selected>"));
    let resp = f
        .post("admin", "/preferences/theme", &[("theme", "pink")])
        .await;
    assert_eq!(resp.status(), 400);
    let resp = f
        .post(
            "admin",
            "/preferences/theme",
            &[("theme", "light"), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(resp.headers()["location"], "/", "only local pages");
    // Without the CSRF token: refused.
    let resp = app
        .client
        .post(app.url("/preferences/theme"))
        .form(&[("theme", "dark")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn policies_search_explains_its_matches_and_the_role_page_marks_them() {
    let app = TestApp::demo().await;
    let body: Value = app
        .get("/api/v2/policies?q=s3:GetObject&type=role")
        .await
        .json()
        .await
        .expect("json");
    let billing = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "billing-reports" && i["account_id"] == ACCOUNT)
        .expect("billing-reports allows s3:GetObject")
        .clone();
    assert_eq!(
        billing["matched"][0],
        "inline policy read-cur: statement 1 allows s3:GetObject"
    );
    let url = billing["url"].as_str().expect("url");
    assert!(url.contains("from=q%3Ds3%253AGetObject"), "{url}");
    let html = app.get(url).await.text().await.expect("html");
    assert!(html.contains("<mark class=\"match\">"), "{html}");
    assert!(
        html.contains("href=\"/policies?q=s3%3AGetObject&#38;type=role\""),
        "{html}"
    );
    // The document keeps its own key order (Version first), coloured by the server.
    let pre = html
        .split("aria-label=\"Inline policy read-cur\">")
        .nth(1)
        .expect("policy");
    assert!(pre.find("Version").expect("Version") < pre.find("Statement").expect("Statement"));
    assert!(pre.contains("<span class=\"k\">"));
}
