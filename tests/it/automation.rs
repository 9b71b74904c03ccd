//! Scripts and CI pipelines (issue 18): scoped API tokens, the route table that says which scope
//! each route needs, dry runs that store nothing, and the `iamdesk request` / `iamdesk whoami`
//! client run as the real binary against a real server over moto.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use iamdesk::store::{PageRequest, RequestStatus};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::requests::{ADMIN, Backends, DEV, World, count_requests, world_on, world_tuned};
use crate::support::TestApp;

/// Make a token for `who` through `POST /api/v2/tokens`, signed in by the proxy header with a
/// CSRF token, as the profile page's script would; returns the token.
async fn token(w: &World, who: &str, groups: &str, scopes: &[&str]) -> String {
    let resp = w
        .app
        .client
        .post(w.app.url("/api/v2/tokens"))
        .header("x-user", who)
        .header("x-groups", groups)
        .header("cookie", &w.csrf.0)
        .header("x-csrf-token", &w.csrf.1)
        .json(&json!({"name": "pipeline", "days": 1, "scopes": scopes}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(
        resp.headers()["cache-control"],
        "no-store, max-age=0",
        "the token is never cached"
    );
    let made: Value = resp.json().await.expect("json");
    assert_eq!(made["scopes"], json!(scopes));
    made["token"].as_str().expect("token").to_string()
}

/// A request sent with nothing but the token: no cookie, no CSRF token, no user header.
async fn bearer(
    w: &World,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = w
        .app
        .client
        .request(method, w.app.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("send")
}

fn message(v: &Value) -> String {
    v["message"].as_str().unwrap_or_default().to_string()
}

async fn audit_count(w: &World) -> usize {
    w.app
        .state
        .store
        .list_audit(None, &PageRequest::first(500))
        .await
        .expect("audit")
        .items
        .len()
}

async fn outbox_count(w: &World) -> usize {
    w.app
        .state
        .store
        .list_outbox(None, &PageRequest::first(500))
        .await
        .expect("outbox")
        .items
        .len()
}

#[tokio::test]
async fn every_route_and_method_has_exactly_one_access_entry() {
    let app = TestApp::demo().await;
    let routes = iamdesk::web::routes();
    let mut served = BTreeSet::new();
    for path in routes.paths() {
        let url = app.url(&path.replace("{*", "{").replace(['{', '}'], "x"));
        let resp = app
            .client
            .request(reqwest::Method::TRACE, url)
            .send()
            .await
            .expect("TRACE");
        assert_eq!(resp.status(), 405, "{path}");
        let allow = resp.headers()["allow"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        for method in allow.split(',').map(str::trim).filter(|m| *m != "HEAD") {
            served.insert((method.to_string(), path.to_string()));
        }
    }
    let listed: BTreeSet<(String, String)> = iamdesk::web::scopes::ACCESS
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        listed.len(),
        iamdesk::web::scopes::ACCESS.len(),
        "no pair twice"
    );
    let missing: Vec<_> = served.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in src/web/scopes.rs: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "entries in src/web/scopes.rs no route serves: {stale:?}"
    );
}

#[tokio::test]
async fn a_requests_token_files_a_request_with_no_cookie_and_no_csrf_token() {
    let Some(w) = world_on(Backends::Embedded).await else {
        return;
    };
    let requests = token(&w, DEV, "dev", &["requests"]).await;
    let body = json!({"justification": "the nightly export reads reports",
                      "changes": {"changes": [w.inline("export-read", "attach")]}});
    let resp = bearer(
        &w,
        reqwest::Method::POST,
        "/api/v2/request",
        &requests,
        Some(body.clone()),
    )
    .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let created: Value = resp.json().await.expect("json");
    let id = created["request_id"].as_str().expect("id").to_string();
    let stored = w.request(&id).await;
    assert_eq!(stored.requester, DEV);
    assert_eq!(stored.status, RequestStatus::Pending);
    // The audit trail says a script did it, and which token.
    let trail = w
        .app
        .state
        .store
        .list_audit(Some(&id), &PageRequest::first(10))
        .await
        .expect("audit");
    let made = trail
        .items
        .iter()
        .find(|e| e.action == "request.created")
        .expect("request.created");
    let token_id = &iamdesk::credentials::tokens::hash(&requests)[..12];
    assert_eq!(made.detail["via_token"], token_id);

    // The same token reads nothing: that is the read scope, and the 403 names it.
    let resp = bearer(
        &w,
        reqwest::Method::GET,
        &format!("/api/v2/requests/{id}"),
        &requests,
        None,
    )
    .await;
    assert_eq!(resp.status(), 403);
    let m = message(&resp.json().await.expect("json"));
    assert!(m.contains("'read' scope"), "{m}");

    // A token of before scopes existed keeps exactly `credentials`: it files nothing.
    let legacy = format!("iamdesk_{}", "cd".repeat(32));
    let hash = iamdesk::credentials::tokens::hash(&legacy);
    let now = chrono::Utc::now();
    let old = iamdesk::store::ApiToken {
        id: hash[..12].to_string(),
        hash,
        user: DEV.into(),
        groups: vec![],
        name: "old laptop".into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(1),
        revoked_at: None,
        scopes: iamdesk::store::TokenScope::legacy(),
    };
    let ev = iamdesk::store::AuditEvent::new(DEV, "token.created", None, Value::Null);
    w.app
        .state
        .store
        .create_api_token(&old, &ev)
        .await
        .expect("store");
    let before = count_requests(&w).await;
    let resp = bearer(
        &w,
        reqwest::Method::POST,
        "/api/v2/request",
        &legacy,
        Some(body),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let m = message(&resp.json().await.expect("json"));
    assert!(
        m.contains("lacks the 'requests' scope") && m.contains("it has: credentials"),
        "{m}"
    );
    assert_eq!(count_requests(&w).await, before, "nothing filed");
    // Its own route still works for it (who am I), and pages are never a token's.
    let resp = bearer(&w, reqwest::Method::GET, "/api/v2/user", &legacy, None).await;
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.expect("json");
    assert_eq!(me["user"], DEV);
    assert_eq!(me["token"]["scopes"], json!(["credentials"]));
    for (method, path) in [
        (reqwest::Method::GET, "/requests".to_string()),
        (reqwest::Method::GET, format!("/policies/request/{id}")),
        (reqwest::Method::GET, "/api/v2/tokens".to_string()),
        (reqwest::Method::POST, "/api/v2/tokens".to_string()),
    ] {
        let resp = bearer(&w, method.clone(), &path, &requests, Some(json!({}))).await;
        assert_eq!(resp.status(), 403, "{method} {path}");
    }

    // Scopes are checked where tokens are made, too.
    let resp = w
        .app
        .client
        .post(w.app.url("/api/v2/tokens"))
        .header("x-user", DEV)
        .header("cookie", &w.csrf.0)
        .header("x-csrf-token", &w.csrf.1)
        .json(&json!({"name": "x", "scopes": ["approve"]}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 400);
    let listed: Value = w
        .get_as(DEV, "", "/api/v2/tokens")
        .await
        .json()
        .await
        .expect("json");
    let tokens = listed["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2);
    assert!(
        !listed.to_string().contains(&requests) && !listed.to_string().contains(&old.hash),
        "never the token nor its hash"
    );
    // Revoked through the API: 401 at once.
    let resp = w
        .app
        .client
        .delete(w.app.url(&format!("/api/v2/tokens/{token_id}")))
        .header("x-user", DEV)
        .header("cookie", &w.csrf.0)
        .header("x-csrf-token", &w.csrf.1)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 200);
    let resp = bearer(&w, reqwest::Method::GET, "/api/v2/user", &requests, None).await;
    assert_eq!(resp.status(), 401);
}

fn break_glass(c: &mut iamdesk::config::Config) {
    c.groups.can_break_glass = vec!["oncall".into()];
    c.groups.can_admin_policies = vec![ADMIN.into()];
}

#[tokio::test]
async fn no_token_can_approve_reject_or_touch_another_persons_request() {
    let Some(w) = world_tuned(Backends::Embedded, |c| {
        break_glass(c);
        c.policies.allow_self_approval = true;
    })
    .await
    else {
        return;
    };
    let id = w.seed(DEV, vec![w.inline("reports-read", "attach")]).await;
    // An administrator's token with every scope it can have.
    let admin = token(&w, ADMIN, "admins,oncall", &["read", "requests"]).await;
    let path = format!("/api/v2/requests/{id}");
    let put = |model: Value| {
        bearer(
            &w,
            reqwest::Method::PUT,
            &path,
            &admin,
            Some(json!({"modification_model": model})),
        )
    };
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]});
    let change_id = w.request(&id).await.changes.changes[0].id().to_string();
    for model in [
        json!({"command": "approve_request"}),
        json!({"command": "approve_request", "version": 1}),
        json!({"command": "reject_request"}),
        json!({"command": "move_back_to_pending"}),
        json!({"command": "mark_reviewed"}),
        json!({"command": "revoke_now"}),
        json!({"command": "update_change", "change_id": change_id, "policy_document": doc}),
        json!({"command": "add_comment", "comment_text": "lgtm"}),
        json!({"command": "cancel_request"}),
    ] {
        let resp = put(model.clone()).await;
        assert_eq!(resp.status(), 403, "{model}");
        let m = message(&resp.json().await.expect("json"));
        assert!(
            m.contains("API tokens cannot") || m.contains("your own requests only"),
            "{model}: {m}"
        );
    }
    // Nor through the page's form (a browser-only route).
    let resp = w
        .app
        .client
        .post(w.app.url(&format!("/policies/request/{id}/act")))
        .bearer_auth(&admin)
        .form(&[
            ("command", "approve_request"),
            ("confirm", "yes"),
            ("version", "1"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
    let r = w.request(&id).await;
    assert_eq!(r.status, RequestStatus::Pending);
    assert!(r.comments.is_empty() && r.edits.is_empty() && r.approvals.is_empty());
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("reports-read")
            .send()
            .await
            .is_err(),
        "nothing applied"
    );

    // Not even one's own: admin_auto_approve and break-glass need the person, signed in.
    let before = count_requests(&w).await;
    let auto = json!({"justification": "hotfix", "admin_auto_approve": true,
                      "changes": {"changes": [w.inline("hotfix", "attach")]}});
    let resp = bearer(
        &w,
        reqwest::Method::POST,
        "/api/v2/request",
        &admin,
        Some(auto),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(message(&resp.json().await.expect("json")).contains("admin_auto_approve"));
    let mut change = w.inline("glass", "attach");
    change["expiration_date"] = json!(
        (chrono::Utc::now() + chrono::Duration::hours(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let glass = json!({"justification": "payments down",
                       "break_glass": {"reason": "INC-1: payments failing"},
                       "changes": {"changes": [change]}});
    let resp = bearer(
        &w,
        reqwest::Method::POST,
        "/api/v2/request",
        &admin,
        Some(glass),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(message(&resp.json().await.expect("json")).contains("Break-glass"));
    assert_eq!(count_requests(&w).await, before, "nothing filed");

    // The requester's own token does the requester's bookkeeping: comment, edit, cancel.
    let dev = token(&w, DEV, "dev", &["requests"]).await;
    let own = |model: Value| {
        bearer(
            &w,
            reqwest::Method::PUT,
            &path,
            &dev,
            Some(json!({"modification_model": model})),
        )
    };
    let narrower = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::reports/2024/*"}]});
    for model in [
        json!({"command": "add_comment", "comment_text": "needed for the nightly job"}),
        json!({"command": "update_change", "change_id": change_id, "policy_document": narrower}),
        json!({"command": "approve_request"}),
    ] {
        let resp = own(model.clone()).await;
        let expected = if model["command"] == "approve_request" {
            403
        } else {
            200
        };
        assert_eq!(resp.status(), expected, "{model}: {:?}", resp.text().await);
    }
    let resp = own(json!({"command": "cancel_request"})).await;
    assert_eq!(resp.status(), 200);
    let r = w.request(&id).await;
    assert_eq!(r.status, RequestStatus::Cancelled);
    assert_eq!((r.comments.len(), r.edits.len()), (1, 1));
}

#[tokio::test]
async fn a_dry_run_returns_diff_warnings_and_calls_and_stores_nothing() {
    let Some(w) = world_on(Backends::Embedded).await else {
        return;
    };
    dry_run_stores_nothing(w).await;
}

#[tokio::test]
async fn a_dry_run_stores_nothing_on_dynamodb_and_redis() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    dry_run_stores_nothing(w).await;
}

async fn dry_run_stores_nothing(w: World) {
    let requests = token(&w, DEV, "dev", &["requests"]).await;
    let (requests_before, audit_before, outbox_before) = (
        count_requests(&w).await,
        audit_count(&w).await,
        outbox_count(&w).await,
    );
    let mut wide = w.inline("everything", "attach");
    wide["policy"]["policy_document"]["Statement"][0]["Action"] = json!(["s3:*"]);
    wide["policy"]["policy_document"]["Statement"][0]["Resource"] = json!("*");
    let body = json!({"justification": "try it first", "dry_run": true,
                      "changes": {"changes": [wide]}});
    let resp = bearer(
        &w,
        reqwest::Method::POST,
        "/api/v2/request",
        &requests,
        Some(body),
    )
    .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["request_created"], false);
    assert!(answer.get("request_id").is_none());
    assert!(
        !answer["warnings"].as_array().expect("warnings").is_empty(),
        "s3:* on * is worth a warning: {answer}"
    );
    let diff = &answer["diff"][0];
    assert!(
        diff["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("add inline policy 'everything'")),
        "{diff}"
    );
    let section = &diff["sections"][0];
    assert_eq!(section["label"], "Inline policy everything");
    assert!(section["added"].as_u64().unwrap_or_default() > 0);
    assert!(
        section["text"].as_str().is_some_and(|t| t
            .lines()
            .any(|l| l.starts_with('+') && l.contains("\"Resource\": \"*\""))),
        "{section}"
    );
    let calls = &answer["plan"][0]["calls"];
    assert!(calls.to_string().contains("PutRolePolicy"), "{calls}");
    assert_eq!(count_requests(&w).await, requests_before, "no request");
    assert_eq!(audit_count(&w).await, audit_before, "no audit event");
    assert_eq!(outbox_count(&w).await, outbox_before, "no notification");
}

// --- the client: the real binary against the test server ------------------------------------

/// `iamdesk <args>` with `token`, talking to the test server; stdout and stderr piped.
fn cli(w: &World, token: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamdesk"));
    cmd.args(args)
        .arg("--server")
        .arg(&w.app.base)
        .env("IAMDESK_API_TOKEN", token)
        .env("IAMDESK_POLL_INTERVAL", "50ms")
        .env_remove("IAMDESK_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: tokio::process::Command) -> Ran {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finished")
        .expect("the CLI ran");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn request_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// `create --wait` until an admin decides (`decide` runs once the CLI printed the URL):
/// what the CLI printed and its exit code.
async fn create_and_wait<F, Fut>(w: &World, token: &str, file: &str, decide: F) -> Ran
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut child = cli(
        w,
        token,
        &[
            "request",
            "create",
            "--file",
            file,
            "--wait",
            "--timeout",
            "60s",
        ],
    )
    .spawn()
    .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the URL comes first")
        .expect("read")
        .expect("a line");
    let id = url
        .rsplit('/')
        .next()
        .expect("the URL ends with the id")
        .to_string();
    assert_eq!(url, w.app.url(&format!("/policies/request/{id}")));
    decide(id).await;
    let mut stdout = vec![url];
    while let Ok(Some(line)) = lines.next_line().await {
        stdout.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the CLI ends after the decision")
        .expect("wait");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    Ran {
        code: status.code(),
        stdout: stdout.join("\n"),
        stderr,
    }
}

#[tokio::test]
async fn the_cli_files_waits_and_exits_0_when_approved_and_1_when_rejected() {
    let Some(world) = world_on(Backends::Embedded).await else {
        return;
    };
    let w = &world;
    let pipeline = token(w, DEV, "dev", &["read", "requests"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "justification: the nightly export reads reports\nchanges:\n  - change_type: inline_policy\n    principal:\n      principal_type: AwsResource\n      principal_arn: {}\n    policy_name: cli-export\n    action: attach\n    policy:\n      policy_document:\n        Version: '2012-10-17'\n        Statement:\n          - Effect: Allow\n            Action: ['s3:GetObject']\n            Resource: 'arn:aws:s3:::reports/*'\n",
        w.arn()
    );
    let file = request_file(&dir, "changes.yaml", &yaml);

    // whoami: the token's person and scopes.
    let ran = run(cli(w, &pipeline, &["whoami"])).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        ran.stdout.contains(DEV) && ran.stdout.contains("read, requests"),
        "{}",
        ran.stdout
    );

    // Dry run: the diff and the calls, and nothing filed.
    let before = count_requests(w).await;
    let ran = run(cli(
        w,
        &pipeline,
        &["request", "create", "--file", &file, "--dry-run"],
    ))
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        ran.stdout.contains("dry run: valid, nothing filed"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("--- Inline policy cli-export"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with('+') && l.contains("\"s3:GetObject\"")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("iam:PutRolePolicy role=app policy=cli-export"),
        "{}",
        ran.stdout
    );
    assert_eq!(count_requests(w).await, before);

    // Approved after a comment: the comment is printed as it arrives, exit 0.
    let ran = create_and_wait(w, &pipeline, &file, |id| async move {
        let resp = w
            .act(
                ADMIN,
                "admins",
                &id,
                json!({"command": "add_comment", "comment_text": "reports only, fine"}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        // Let the CLI see the comment before the decision (it would also print it after).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resp = w
            .act(ADMIN, "admins", &id, json!({"command": "approve_request"}))
            .await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    })
    .await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .contains("comment by admin@example.com: reports only, fine"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.ends_with("approved by admin@example.com"),
        "{}",
        ran.stdout
    );
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("cli-export")
            .send()
            .await
            .is_ok(),
        "applied in the spoke account"
    );

    // Rejected: exit 1.
    let ran = create_and_wait(w, &pipeline, &file, |id| async move {
        let resp = w
            .act(ADMIN, "admins", &id, json!({"command": "reject_request"}))
            .await;
        assert_eq!(resp.status(), 200);
    })
    .await;
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.ends_with("rejected"), "{}", ran.stdout);

    // Nobody decides: exit 3 at the timeout, the request left open.
    let ran = run(cli(
        w,
        &pipeline,
        &[
            "request",
            "create",
            "--file",
            &file,
            "--wait",
            "--timeout",
            "1s",
        ],
    ))
    .await;
    assert_eq!(ran.code, Some(3), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("no decision within 1s"),
        "{}",
        ran.stderr
    );

    // Status and list of one's own, as text and JSON.
    let id = ran
        .stdout
        .trim()
        .rsplit('/')
        .next()
        .expect("id")
        .to_string();
    let out = run(cli(w, &pipeline, &["request", "status", &id])).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("status:        pending"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("iam:PutRolePolicy"), "{}", out.stdout);
    let out = run(cli(
        w,
        &pipeline,
        &["request", "list", "--mine", "--status", "pending", "--json"],
    ))
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let listed: Value = serde_json::from_str(&out.stdout).expect("json");
    let ids: Vec<&str> = listed["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "only mine and pending");
    let out = run(cli(w, &pipeline, &["request", "list", "--mine"])).await;
    assert!(out.stdout.starts_with("ID "), "{}", out.stdout);
    assert_eq!(
        out.stdout.lines().count(),
        4,
        "a header and three rows: {}",
        out.stdout
    );
}

#[tokio::test]
async fn the_cli_prints_each_problem_with_its_field_and_exits_2() {
    let Some(w) = world_on(Backends::Embedded).await else {
        return;
    };
    let pipeline = token(&w, DEV, "dev", &["requests"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bad = w.inline("broken", "attach");
    bad["policy"]["policy_document"]["Statement"][0]["Effect"] = json!("Maybe");
    // Just the changes, as JSON; no justification.
    let file = request_file(&dir, "changes.json", &json!([bad]).to_string());
    let before = count_requests(&w).await;
    let ran = run(cli(&w, &pipeline, &["request", "create", "--file", &file])).await;
    assert_eq!(ran.code, Some(2), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("justification: ")),
        "{}",
        ran.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Effect: ") || l.contains(".Effect")),
        "{}",
        ran.stderr
    );
    // --justification fills it in; the Effect is still wrong.
    let ran = run(cli(
        &w,
        &pipeline,
        &[
            "request",
            "create",
            "--file",
            &file,
            "--justification",
            "export",
        ],
    ))
    .await;
    assert_eq!(ran.code, Some(2));
    assert!(!ran.stderr.contains("justification: "), "{}", ran.stderr);
    assert_eq!(count_requests(&w).await, before, "nothing filed");

    // A file that is not a request: exit 2 before anything is sent.
    let file = request_file(&dir, "notes.yaml", "just: words\n");
    let ran = run(cli(&w, &pipeline, &["request", "create", "--file", &file])).await;
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("has no \"changes\""), "{}", ran.stderr);

    // --wait with a token that cannot read: refused up front (exit 4), nothing filed.
    let good = request_file(
        &dir,
        "good.json",
        &json!({"justification": "j", "changes": [w.inline("fine", "attach")]}).to_string(),
    );
    let ran = run(cli(
        &w,
        &pipeline,
        &["request", "create", "--file", &good, "--wait"],
    ))
    .await;
    assert_eq!(ran.code, Some(4), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("read scope"), "{}", ran.stderr);
    assert_eq!(count_requests(&w).await, before, "nothing filed");
    // A wrong token: exit 4 with the server's reason.
    let ran = run(cli(&w, "iamdesk_nope", &["whoami"])).await;
    assert_eq!(ran.code, Some(4));
    assert!(ran.stderr.contains("401"), "{}", ran.stderr);
}
