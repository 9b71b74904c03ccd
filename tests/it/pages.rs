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
            c.find(Css("#f-policy_name"))
                .await
                .expect("name")
                .send_keys("broken")
                .await
                .expect("type");
            c.find(Css("#f-policy_document"))
                .await
                .expect("doc")
                .send_keys(r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}]}"#)
                .await
                .expect("type");
            c.find(Css("form.change-form button[type=submit]"))
                .await
                .expect("submit")
                .click()
                .await
                .expect("submit");
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
    c.find(Css("h1"))
        .await
        .expect("h1")
        .click()
        .await
        .expect("click");
    press(c, '/').await;
    let focused = c
        .execute("return document.activeElement.name;", vec![])
        .await
        .expect("focus");
    assert_eq!(focused, json!("q"));
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
    c.wait()
        .for_element(XPath("//strong[@class='persona'][.='the requester']"))
        .await
        .expect("the requester");

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
    c.wait()
        .for_element(XPath("//h1/span[contains(., 'pending')]"))
        .await
        .expect("the request page");

    // Become the admin, tick the box, approve.
    tab_to(c, "aside.banner form.persona-switch button").await;
    press(c, Key::Enter.into()).await;
    c.wait()
        .for_element(XPath("//strong[@class='persona'][.='the admin']"))
        .await
        .expect("the admin");
    tab_to(c, "form input[name=confirm]").await;
    press(c, Key::Space.into()).await;
    tab_to(c, "button.approve").await;
    shot(c, "keyboard-2-approve").await;
    press(c, Key::Enter.into()).await;
    c.wait()
        .for_element(XPath("//h1/span[contains(., 'approved')]"))
        .await
        .expect("approved");
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
