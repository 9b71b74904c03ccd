//! Fuzzing the front door: generated malformed paths, query strings, bodies, headers, cookies and
//! tokens sent to every route of `iamdesk::web::routes()` (the same list the router serves, so
//! a new route is fuzzed without touching this file). Nothing may answer 5xx (a panic is a
//! 500), and the Store must not change.
//!
//! The seed is fixed, so CI runs the same 1,000 cases every time; a longer run:
//! `IAMDESK_FUZZ_CASES=50000 IAMDESK_FUZZ_SEED=7 scripts/test fuzz`.

use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

use crate::support::{TestApp, csrf_for};

const ADMIN: &str = "fuzz-admin@example.com";
const USER: &str = "fuzz-user@example.com";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One generated request.
#[derive(Debug, Clone)]
struct Case {
    /// Most cases use a method the route answers (learnt from its `Allow` header), so the
    /// handler, not the router, meets the bad input.
    allowed_method: bool,
    method_pick: usize,
    method: &'static str,
    route: usize,
    params: Vec<String>,
    query: Option<String>,
    /// 0 anonymous, 1 user, 2 admin (trusted-proxy header sign-in).
    who: u8,
    valid_csrf: bool,
    headers: Vec<(&'static str, String)>,
    cookie: Option<String>,
    body: Vec<u8>,
}

/// Strings that are wrong where an id, a name, an ARN or a number is expected.
fn bad_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\0".to_string()),
        Just("..".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("-1".repeat(3)),
        Just("99999999999999999999999999".to_string()),
        Just("1e999".to_string()),
        Just("NaN".to_string()),
        Just("<script>alert(1)</script>\u{0007}".to_string()),
        Just("\u{202e}\u{fffd}\u{1F600}".to_string()),
        Just("arn:aws:iam::111122223333:role/".to_string()),
        Just("arn:aws:iam::1:role/x\ny".to_string()),
        Just("a".repeat(6000)),
        Just("%zz%".to_string()),
        Just("{\"$ne\": null}".to_string()),
        "[\\x00-\\x1f]{1,8}".prop_map(|s| s),
        "\\PC{0,40}\\x00".prop_map(|s| s),
    ]
}

/// Bodies: bytes, broken JSON, JSON of the wrong shape, broken forms.
fn bad_body() -> impl Strategy<Value = Vec<u8>> {
    let keys = prop_oneof![
        Just("csrf_token"),
        Just("name"),
        Just("days"),
        Just("role"),
        Just("duration_seconds"),
        Just("justification"),
        Just("comment_text"),
        Just("command"),
        Just("policy_document"),
        Just("template"),
        Just("step"),
        Just("changes"),
        Just("requested_role"),
        Just("zz"),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(b"{".to_vec()),
        Just(b"{\"justification\": \"x\", \"changes\": {\"changes\": [".to_vec()),
        Just(b"{\"changes\": 5, \"justification\": []}".to_vec()),
        Just(b"{\"modification_model\": {\"command\": \"approve_request\"}}".to_vec()),
        Just(b"{\"requested_role\": 12, \"duration_seconds\": \"x\"}".to_vec()),
        Just(b"null".to_vec()),
        Just(b"1e99999".to_vec()),
        Just(vec![0xff, 0xfe, 0xfd]),
        Just("[".repeat(5000).into_bytes()),
        Just(format!("{{\"q\": \"{}\"}}", "x".repeat(200_000)).into_bytes()),
        proptest::collection::vec((keys, bad_text()), 0..6).prop_map(|pairs| {
            let mut s = String::new();
            for (k, v) in pairs {
                let _ = write!(s, "{k}={}&", urlencoding::encode(&v));
            }
            s.push_str("%zz=%&&=");
            s.into_bytes()
        }),
    ]
}

fn bad_headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let one = prop_oneof![
        prop_oneof![
            Just("application/json".to_string()),
            Just("application/x-www-form-urlencoded".to_string()),
            Just("text/plain".to_string()),
            Just("multipart/form-data; boundary=".to_string()),
            Just("application/json; charset=utf-16".to_string()),
        ]
        .prop_map(|v| ("content-type", v)),
        prop_oneof![
            Just("Bearer iamdesk_".to_string()),
            Just(format!("Bearer iamdesk_{}", "0".repeat(64))),
            Just(format!("Bearer iamdesk_{}", "G".repeat(64))),
            Just("Bearer".to_string()),
            Just("Basic Og==".to_string()),
            "Bearer [ -~]{0,80}".prop_map(|s| s),
        ]
        .prop_map(|v| ("authorization", v)),
        prop_oneof![
            Just("a.b.c".to_string()),
            Just("e30=.e30=.AAAA".to_string()),
            "[A-Za-z0-9_=.-]{0,120}".prop_map(|s| s),
        ]
        .prop_map(|v| ("x-amzn-oidc-data", v)),
        prop_oneof![
            Just("cross-site".to_string()),
            Just("same-site".to_string()),
            Just("same-origin".to_string()),
            Just("none".to_string()),
            Just("SAME-ORIGIN".to_string()),
        ]
        .prop_map(|v| ("sec-fetch-site", v)),
        prop_oneof![
            Just("null".to_string()),
            Just("https://evil.example.com".to_string()),
            Just("http://127.0.0.1".to_string()),
            Just("not a url".to_string()),
        ]
        .prop_map(|v| ("origin", v)),
        prop_oneof![
            Just("garbage, 1.2.3.4".to_string()),
            Just("[::1]:80, 999.1.1.1".to_string()),
            "[0-9., :a-f]{0,60}".prop_map(|s| s),
        ]
        .prop_map(|v| ("x-forwarded-for", v)),
        "[ -~]{0,70}".prop_map(|v| ("x-csrf-token", v)),
        "[ -~]{0,70}".prop_map(|v| ("referer", v)),
    ];
    proptest::collection::vec(one, 0..4)
}

fn bad_cookie() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("iamdesk_auth=eyJhbGciOiJub25lIn0.e30.".to_string()),
        Just("iamdesk_auth=a.b.c; iamdesk_auth=d.e.f".to_string()),
        Just(format!("iamdesk_csrf={}", "0".repeat(64))),
        Just("iamdesk_csrf=zz; =; ;;".to_string()),
        Just("__Host-iamdesk_auth=x".to_string()),
        "[ -~]{0,100}".prop_map(|s| s),
    ])
}

fn cases(routes: usize) -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH"),
        Just("HEAD"),
        Just("OPTIONS"),
    ];
    let query = proptest::option::of(
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("q"),
                    Just("page"),
                    Just("per_page"),
                    Just("cursor"),
                    Just("status"),
                    Just("account"),
                    Just("redirect"),
                    Just("role"),
                    Just("sort"),
                    Just("zz"),
                ],
                bad_text(),
            ),
            0..4,
        )
        .prop_map(|pairs| {
            let mut q = String::new();
            for (k, v) in pairs {
                let _ = write!(q, "{k}={}&", urlencoding::encode(&v));
            }
            q.push_str("%zz");
            q
        }),
    );
    (
        (
            method,
            0..routes,
            proptest::collection::vec(bad_text(), 3),
            query,
        ),
        (
            0u8..3,
            proptest::bool::weighted(0.8),
            bad_headers(),
            bad_cookie(),
            bad_body(),
        ),
        (proptest::bool::weighted(0.8), any::<usize>()),
    )
        .prop_map(
            |(
                (method, route, params, query),
                (who, valid_csrf, headers, cookie, body),
                (allowed_method, method_pick),
            )| Case {
                allowed_method,
                method_pick,
                method,
                route,
                params,
                query,
                who,
                valid_csrf,
                headers,
                cookie,
                body,
            },
        )
}

/// `/policies/edit/{account_id}/iamrole/{role_name}` with the placeholders filled in.
fn fill(template: &str, params: &[String]) -> String {
    let mut out = String::new();
    let mut next = params.iter().cycle();
    for segment in template.split('/').skip(1) {
        out.push('/');
        if segment.starts_with('{') {
            let value = next.next().map(String::as_str).unwrap_or("x");
            let value = if value.is_empty() { "x" } else { value };
            out.push_str(&urlencoding::encode(value));
        } else {
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Everything the fuzzed requests could have changed.
async fn store_state(app: &TestApp) -> String {
    use iamdesk::store::{PageRequest, RequestFilter};
    let store = &app.state.store;
    let requests = store
        .list_requests(&RequestFilter::default(), &PageRequest::first(500))
        .await
        .expect("requests");
    let audit = store
        .list_audit(None, &PageRequest::first(500))
        .await
        .expect("audit");
    let outbox = store
        .list_outbox(None, &PageRequest::first(500))
        .await
        .expect("outbox");
    let mut tokens = vec![];
    let mut sign_ins = vec![];
    for who in [ADMIN, USER] {
        tokens.extend(store.list_api_tokens(who).await.expect("tokens"));
        sign_ins.push(store.get_sign_in(who).await.expect("sign-in"));
    }
    serde_json::json!({
        "requests": requests.items,
        "audit": audit.items,
        "outbox": outbox.items,
        "tokens": tokens,
        "sign_ins": sign_ins,
        "resources": store
            .resource_accounts()
            .await
            .expect("resource accounts")
            .iter()
            .map(|a| format!("{}:{}", a.account_id, a.generation))
            .collect::<Vec<_>>(),
    })
    .to_string()
}

#[tokio::test]
async fn malformed_input_to_every_route_never_gets_a_5xx_nor_changes_the_store() {
    let (mut config, dir) = TestApp::demo_config();
    config.auth.get_user_by_header = true;
    config.auth.get_groups_by_header = true;
    config.groups.can_admin = vec!["fuzz-admins".into()];
    config.rate_limit.api_per_minute = 1_000_000;
    config.rate_limit.login_per_minute = 1_000_000;
    let mut app = TestApp::spawn(config).await;
    app.keep(dir);
    let routes = iamdesk::web::routes();
    let paths: Vec<&str> = routes.paths().to_vec();
    assert!(paths.len() >= 30, "every route is listed: {paths:?}");
    let csrf = csrf_for(&app).await;
    // Sign both identities in once, so their sign-in records exist before the snapshot.
    for (who, groups) in [(ADMIN, "fuzz-admins"), (USER, "")] {
        let resp = app
            .client
            .get(app.url("/"))
            .header("x-user", who)
            .header("x-groups", groups)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
    }
    // The methods each route answers, from the `Allow` header of a 405 to a method none uses.
    let mut allowed: Vec<Vec<String>> = vec![];
    for path in &paths {
        let resp = app
            .client
            .request(reqwest::Method::TRACE, app.url(&fill(path, &["x".into()])))
            .send()
            .await
            .expect("TRACE");
        assert_eq!(resp.status(), 405, "{path}");
        let allow = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>();
        assert!(!allow.is_empty(), "{path} says what it allows");
        allowed.push(allow);
    }
    let before = store_state(&app).await;

    let n = env_u64("IAMDESK_FUZZ_CASES", 1000);
    let seed = env_u64("IAMDESK_FUZZ_SEED", 13);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = cases(paths.len());
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    let mut covered = std::collections::BTreeSet::new();
    for i in 0..n {
        let case = strategy
            .new_tree(&mut runner)
            .expect("generate a case")
            .current();
        covered.insert(case.route);
        let path = fill(paths[case.route], &case.params);
        let url = match &case.query {
            Some(q) => format!("{}{path}?{q}", app.base),
            None => format!("{}{path}", app.base),
        };
        let allow = &allowed[case.route];
        let method_name = if case.allowed_method {
            allow[case.method_pick % allow.len()].as_str()
        } else {
            case.method
        };
        let method = reqwest::Method::from_bytes(method_name.as_bytes()).expect("method");
        let mut req = app.client.request(method, &url).body(case.body.clone());
        match case.who {
            1 => req = req.header("x-user", USER),
            2 => {
                req = req
                    .header("x-user", ADMIN)
                    .header("x-groups", "fuzz-admins")
            }
            _ => {}
        }
        let mut cookies: Vec<String> = case.cookie.iter().cloned().collect();
        if case.valid_csrf {
            cookies.push(csrf.0.clone());
            req = req.header("x-csrf-token", &csrf.1);
        }
        for (name, value) in &case.headers {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
                req = req.header(*name, v);
            }
        }
        if !cookies.is_empty()
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&cookies.join("; "))
        {
            req = req.header("cookie", v);
        }
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!(
                "case {i}: no answer ({e}) to {} {url}: {case:?}",
                case.method
            )
        });
        let status = resp.status().as_u16();
        *by_status.entry(status).or_default() += 1;
        assert!(
            status < 500,
            "case {i}: {status} for {method_name} {url}\n{case:?}\n{}",
            resp.text().await.unwrap_or_default()
        );
    }
    if n >= 1000 {
        assert_eq!(covered.len(), paths.len(), "every route got cases");
    }
    eprintln!("fuzz: {n} cases (seed {seed}), statuses {by_status:?}");
    assert_eq!(
        store_state(&app).await,
        before,
        "malformed input changed the Store"
    );
    assert_eq!(app.get("/healthcheck").await.status(), 200, "still serving");
}
