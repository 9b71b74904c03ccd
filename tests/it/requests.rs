//! The request lifecycle against moto: approve applies in the spoke account, reject/cancel,
//! self-approval, illegal transitions, failed applies, concurrent approvals.

use iamdesk::store::{AuditEvent, PageRequest, PolicyRequest, RequestStatus};
use serde_json::{Value, json};

use crate::browser::Act;
use crate::support::{
    TestApp, account_id, create_role, csrf_for, iam_in, moto_endpoint, spoke_app,
};

pub(crate) const ADMIN: &str = "admin@example.com";
pub(crate) const OTHER_ADMIN: &str = "admin2@example.com";
pub(crate) const DEV: &str = "dev@example.com";

pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) account: String,
    pub(crate) iam: aws_sdk_iam::Client,
    /// CSRF cookie and token for API calls.
    pub(crate) csrf: (String, String),
}

/// Where requests live in a test world.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Backends {
    /// The embedded store (SQLite) and the in-process cache: the defaults.
    Embedded,
    /// DynamoDB (moto) behind a real Redis cache: production's pair.
    DynamoRedis,
}

pub(crate) async fn world() -> Option<World> {
    world_on(Backends::Embedded).await
}

pub(crate) async fn world_on(backends: Backends) -> Option<World> {
    world_tuned(backends, |_| {}).await
}

fn backends_of(w: &World) -> Backends {
    if w.app.state.store.backend_name() == "dynamodb" {
        Backends::DynamoRedis
    } else {
        Backends::Embedded
    }
}

pub(crate) async fn world_tuned(
    backends: Backends,
    tune: impl FnOnce(&mut iamdesk::config::Config),
) -> Option<World> {
    moto_endpoint()?;
    let redis = match backends {
        Backends::Embedded => None,
        Backends::DynamoRedis => Some(crate::support::redis_url()?),
    };
    let account = account_id();
    let iam = iam_in(&account).await;
    create_role(&iam, "app", &[]).await;
    let prefix = match backends {
        Backends::Embedded => None,
        Backends::DynamoRedis => {
            let prefix = crate::support::unique("rq");
            let client = iamdesk::aws::dynamodb_client(&Default::default()).await;
            iamdesk::migrate::run(&client, &prefix)
                .await
                .expect("migrate");
            Some(prefix)
        }
    };
    let app = spoke_app(&account, |config| {
        tune(config);
        config.groups.can_admin = vec!["admins".into()];
        if let Some(prefix) = prefix {
            config.storage.backend = iamdesk::config::StorageBackend::Dynamodb;
            config.storage.dynamodb.table_prefix = prefix;
            config.redis.url = redis;
        }
    })
    .await;
    assert_eq!(
        app.state.store.backend_name(),
        match backends {
            Backends::Embedded => "embedded",
            Backends::DynamoRedis => "dynamodb",
        }
    );
    let csrf = csrf_for(&app).await;
    Some(World {
        app,
        account,
        iam,
        csrf,
    })
}

/// Changes as a validated request holds them (each with its id), for seeding the Store.
pub(crate) fn typed(changes: Vec<Value>) -> iamdesk::requests::ChangeList {
    let changes: Vec<Value> = changes
        .into_iter()
        .map(|mut c| {
            if c.get("id").is_none() {
                c["id"] = json!(uuid::Uuid::new_v4().to_string());
            }
            c
        })
        .collect();
    serde_json::from_value(json!({ "changes": changes })).expect("seeded changes parse")
}

impl World {
    pub(crate) async fn seed(&self, requester: &str, changes: Vec<Value>) -> String {
        let now = chrono::Utc::now();
        let r = PolicyRequest {
            id: uuid::Uuid::new_v4().to_string(),
            status: RequestStatus::Pending,
            requester: requester.into(),
            justification: "the export job reads reports".into(),
            changes: typed(changes),
            comments: vec![],
            created_at: now,
            updated_at: now,
            version: 1,
            results: vec![],
            applying: None,
            warnings: vec![],
            edits: vec![],
            grant_outcomes: vec![],
            approvals: vec![],
            break_glass: None,
            imported: None,
        };
        let ev = AuditEvent::new(requester, "request.created", Some(&r.id), json!({}));
        self.app
            .state
            .store
            .create_request(&r, &ev, &[])
            .await
            .expect("seed");
        r.id
    }

    pub(crate) fn arn(&self) -> String {
        self.role_arn("app")
    }

    pub(crate) fn role_arn(&self, role: &str) -> String {
        format!("arn:aws:iam::{}:role/{role}", self.account)
    }

    /// `GET path` as `who` (header sign-in).
    pub(crate) async fn get_as(&self, who: &str, groups: &str, path: &str) -> reqwest::Response {
        self.app
            .send_as(reqwest::Method::GET, path, (who, groups), None, None)
            .await
    }

    /// `POST path` with a JSON body as `who`, CSRF included.
    pub(crate) async fn post(
        &self,
        who: &str,
        groups: &str,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.app
            .send_as(
                reqwest::Method::POST,
                path,
                (who, groups),
                Some(&self.csrf),
                Some(&body),
            )
            .await
    }

    /// An administrator (`ADMIN` in `admins`) approves `id`; anything but 200 fails the test.
    pub(crate) async fn approve(&self, id: &str) {
        let resp = self
            .act(ADMIN, "admins", id, json!({"command": "approve_request"}))
            .await;
        let status = resp.status();
        assert_eq!(status, 200, "{}", resp.text().await.unwrap_or_default());
    }

    /// The actions of an inline policy of `role` as moto holds it now, sorted.
    pub(crate) async fn actions(&self, role: &str, policy: &str) -> Vec<String> {
        let out = self
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .expect("get role policy");
        let raw = urlencoding::decode(out.policy_document())
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| out.policy_document().to_string());
        let doc: Value = serde_json::from_str(&raw).expect("document");
        let mut actions = vec![];
        iamdesk::resources::model::actions_in(&doc, &mut actions);
        actions.sort();
        actions
    }

    pub(crate) fn inline(&self, name: &str, action: &str) -> Value {
        json!({"change_type": "inline_policy",
               "principal": {"principal_type": "AwsResource", "principal_arn": self.arn()},
               "policy_name": name, "action": action,
               "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                   {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::reports/*"}]}}})
    }

    pub(crate) async fn act(
        &self,
        who: &str,
        groups: &str,
        id: &str,
        model: Value,
    ) -> reqwest::Response {
        self.app
            .send_as(
                reqwest::Method::PUT,
                &format!("/api/v2/requests/{id}"),
                (who, groups),
                Some(&self.csrf),
                Some(&json!({"modification_model": model})),
            )
            .await
    }

    /// The request page as `who` sees it.
    pub(crate) async fn page(&self, who: &str, groups: &str, id: &str) -> String {
        self.get_as(who, groups, &format!("/policies/request/{id}"))
            .await
            .text()
            .await
            .expect("html")
    }

    pub(crate) async fn request(&self, id: &str) -> PolicyRequest {
        self.app
            .state
            .store
            .get_request(id)
            .await
            .expect("get")
            .expect("request")
    }
}

#[tokio::test]
async fn comment_then_approve_applies_the_change_in_the_spoke_account() {
    let Some(w) = world().await else { return };
    comment_then_approve(w).await;
}

#[tokio::test]
async fn comment_then_approve_on_dynamodb_and_redis() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    assert_eq!(w.app.state.cache.backend_name(), "redis");
    comment_then_approve(w).await;
}

async fn comment_then_approve(w: World) {
    let id = w.seed(DEV, vec![w.inline("reports-read", "attach")]).await;
    let html = w.page(ADMIN, "admins", &id).await;
    assert!(
        html.contains("<table class=\"diff\""),
        "the reviewer sees a diff"
    );
    assert!(
        html.contains("class=\"add\""),
        "with the proposed lines added"
    );
    assert!(html.contains("Approve and apply") && html.contains("name=\"confirm\""));

    let resp = w
        .act(
            ADMIN,
            "admins",
            &id,
            json!({"command": "add_comment", "comment_text": "Only reports/*? fine."}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = w
        .act(ADMIN, "admins", &id, json!({"command": "approve_request"}))
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    let r = w.request(&id).await;
    assert_eq!(r.status, RequestStatus::Approved);
    assert_eq!(r.comments.len(), 1);
    assert!(r.applying.is_none());
    let doc = w
        .iam
        .get_role_policy()
        .role_name("app")
        .policy_name("reports-read")
        .send()
        .await
        .expect("the inline policy exists in AWS");
    assert!(
        doc.policy_document().contains("s3:GetObject")
            || doc.policy_document().contains("s3%3AGetObject")
    );
    // The Policies page shows the new state at once.
    let (_, role) = w.app.state.resources.role(&w.account, "app").expect("role");
    assert!(
        role.inline_policies
            .iter()
            .any(|p| p.name == "reports-read")
    );
    // Audit: created, commented, approval started, approved.
    let trail = w
        .app
        .state
        .store
        .list_audit(Some(&id), &PageRequest::first(50))
        .await
        .expect("audit");
    let actions: Vec<&str> = trail
        .items
        .iter()
        .rev()
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "request.created",
            "request.commented",
            "request.approval_started",
            "request.approved"
        ]
    );
    // Approving again is an illegal transition.
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request"}),
        )
        .await;
    assert_eq!(resp.status(), 409);
}

#[tokio::test]
async fn who_may_do_what() {
    let Some(w) = world().await else { return };
    who_may_do_what_in(w).await;
}

#[tokio::test]
async fn who_may_do_what_on_dynamodb_and_redis() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    who_may_do_what_in(w).await;
}

async fn who_may_do_what_in(w: World) {
    let own = w.seed(ADMIN, vec![w.inline("mine", "attach")]).await;
    let resp = w
        .act(ADMIN, "admins", &own, json!({"command": "approve_request"}))
        .await;
    assert_eq!(resp.status(), 403, "no self-approval");
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("own request")
    );

    let id = w.seed(DEV, vec![w.inline("theirs", "attach")]).await;
    assert_eq!(
        w.act(DEV, "dev", &id, json!({"command": "approve_request"}))
            .await
            .status(),
        403,
        "not an admin"
    );
    assert_eq!(
        w.act(
            "x@example.com",
            "admins-not",
            &id,
            json!({"command": "reject_request"})
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        w.act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "cancel_request"})
        )
        .await
        .status(),
        403,
        "only the requester cancels"
    );
    assert_eq!(
        w.act(DEV, "dev", &id, json!({"command": "cancel_request"}))
            .await
            .status(),
        200
    );
    assert_eq!(w.request(&id).await.status, RequestStatus::Cancelled);
    assert_eq!(
        w.act(ADMIN, "admins", &id, json!({"command": "reject_request"}))
            .await
            .status(),
        409,
        "cancelled cannot be rejected"
    );
    assert_eq!(
        w.act(
            ADMIN,
            "admins",
            &id,
            json!({"command": "move_back_to_pending"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        w.act(ADMIN, "admins", &id, json!({"command": "reject_request"}))
            .await
            .status(),
        200
    );
    assert_eq!(w.request(&id).await.status, RequestStatus::Rejected);
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("theirs")
            .send()
            .await
            .is_err(),
        "nothing applied"
    );

    for (model, needle) in [
        (json!({"command": "launch_rockets"}), "is not one of"),
        (
            json!({"command": "add_comment", "comment_text": "  "}),
            "must not be empty",
        ),
        (json!({}), "command is required"),
    ] {
        let resp = w.act(DEV, "dev", &id, model).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.expect("json");
        assert!(
            body["message"].as_str().unwrap_or("").contains(needle),
            "{body}"
        );
    }
    let resp = w
        .act(
            DEV,
            "dev",
            "no-such-request",
            json!({"command": "cancel_request"}),
        )
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_failing_aws_call_leaves_the_request_pending_with_the_error() {
    let Some(w) = world().await else { return };
    a_failing_aws_call_leaves_the_request_pending_with_the_error_in(w).await;
}

#[tokio::test]
async fn a_failing_aws_call_leaves_the_request_pending_with_the_error_on_dynamodb_and_redis() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    a_failing_aws_call_leaves_the_request_pending_with_the_error_in(w).await;
}

async fn a_failing_aws_call_leaves_the_request_pending_with_the_error_in(w: World) {
    // First change works, second fails (no such inline policy to delete).
    let id = w
        .seed(
            DEV,
            vec![
                w.inline("ok-one", "attach"),
                w.inline("does-not-exist", "detach"),
            ],
        )
        .await;
    let resp = w
        .act(ADMIN, "admins", &id, json!({"command": "approve_request"}))
        .await;
    assert_eq!(resp.status(), 200);
    let r = w.request(&id).await;
    assert_eq!(
        r.status,
        RequestStatus::Pending,
        "not approved while a change failed"
    );
    assert_eq!(r.results[0].status, iamdesk::store::ChangeStatus::Applied);
    assert_eq!(r.results[1].status, iamdesk::store::ChangeStatus::Failed);
    assert!(
        r.results[1]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("NoSuchEntity"),
        "{:?}",
        r.results[1]
    );
    assert!(r.applying.is_none(), "the claim is released");
    let html = w.page(ADMIN, "admins", &id).await;
    assert!(
        html.contains("NoSuchEntity"),
        "the page shows the AWS error"
    );

    // Fix the world, retry: only the failed change is applied now.
    w.iam
        .put_role_policy()
        .role_name("app")
        .policy_name("does-not-exist")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#)
        .send()
        .await
        .expect("create it");
    let resp = w
        .act(ADMIN, "admins", &id, json!({"command": "approve_request"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);
}

#[tokio::test]
async fn ten_concurrent_approvals_apply_once() {
    let Some(w) = world().await else { return };
    ten_concurrent_approvals_apply_once_in(w).await;
}

#[tokio::test]
async fn ten_concurrent_approvals_apply_once_on_dynamodb_and_redis() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    ten_concurrent_approvals_apply_once_in(w).await;
}

async fn ten_concurrent_approvals_apply_once_in(w: World) {
    let id = w.seed(DEV, vec![w.inline("race", "attach")]).await;
    let w = std::sync::Arc::new(w);
    let mut tasks = vec![];
    for i in 0..10 {
        let w = w.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            w.act(
                &format!("admin{i}@example.com"),
                "admins",
                &id,
                json!({"command": "approve_request"}),
            )
            .await
            .status()
            .as_u16()
        }));
    }
    let mut codes = vec![];
    for t in tasks {
        codes.push(t.await.expect("task"));
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 409), "{codes:?}");
    let trail = w
        .app
        .state
        .store
        .list_audit(Some(&id), &PageRequest::first(50))
        .await
        .expect("audit");
    let starts = trail
        .items
        .iter()
        .filter(|e| e.action == "request.approval_started")
        .count();
    assert_eq!(starts, 1, "exactly one apply");
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);
}

#[tokio::test]
async fn admin_reviews_the_diff_and_approves_in_a_real_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let Some(w) = world().await else { return };
    // Demo sign-in for the browser: no proxy needed to be the admin.
    let app = spoke_app(&w.account, |config| {
        config.auth.get_user_by_header = false;
        config.auth.get_groups_by_header = false;
    })
    .await;
    let w = World { app, ..w };
    let id = w
        .seed(DEV, vec![w.inline("browser-approved", "attach")])
        .await;

    let c = &browser.client;
    c.goto(&w.app.url(&format!("/policies/request/{id}")))
        .await
        .expect("open request");
    c.find(fantoccini::Locator::Css("table.diff tr.add"))
        .await
        .expect("the diff is shown");
    browser.screenshot("request-before-approval").await;
    c.click_on("form input[name=confirm]").await;
    c.click_on("button.approve").await;
    c.wait_for_xpath(
        "//h1/span[contains(., 'approved')]",
        "the request is approved",
    )
    .await;
    browser.screenshot("request-after-approval").await;
    browser.close().await;
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("browser-approved")
            .send()
            .await
            .is_ok(),
        "applied in the spoke account"
    );
}

pub(crate) async fn post_request(
    w: &World,
    who: &str,
    groups: &str,
    body: Value,
) -> reqwest::Response {
    w.post(who, groups, "/api/v2/request", body).await
}

pub(crate) async fn count_requests(w: &World) -> usize {
    w.app
        .state
        .store
        .list_requests(&Default::default(), &PageRequest::first(500))
        .await
        .expect("list")
        .items
        .len()
}

#[tokio::test]
async fn create_validates_stores_and_can_auto_approve() {
    let Some(w) = world().await else { return };
    create_validates_stores_and_can_auto_approve_in(w).await;
}

#[tokio::test]
async fn create_validates_stores_and_can_auto_approve_on_dynamodb_and_redis() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    create_validates_stores_and_can_auto_approve_in(w).await;
}

async fn create_validates_stores_and_can_auto_approve_in(w: World) {
    let body = json!({"justification": "reports for the finance close",
                      "changes": {"changes": [w.inline("finance-reports", "attach")]}});
    let resp = post_request(&w, DEV, "dev", body.clone()).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let created: Value = post_request(&w, DEV, "dev", body.clone())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(created["request_created"], true);
    assert_eq!(created["errors"], 0);
    let id = created["request_id"].as_str().expect("id").to_string();
    assert_eq!(created["request_url"], format!("/policies/request/{id}"));
    let stored = w.request(&id).await;
    assert_eq!(stored.status, RequestStatus::Pending);
    assert_eq!(stored.requester, DEV);

    // Bad input: 400 naming each field, and nothing stored.
    let before = count_requests(&w).await;
    let mut bad = w.inline("broken", "attach");
    bad["policy"]["policy_document"]["Statement"][0]["Effect"] = json!("Maybe");
    let resp = post_request(
        &w,
        DEV,
        "dev",
        json!({"justification": " ", "changes": {"changes": [bad]}}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    let fields: Vec<String> = body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(fields.iter().any(|f| f.contains("justification")), "{body}");
    assert!(fields.iter().any(|f| f.contains("Effect")), "{body}");
    assert_eq!(count_requests(&w).await, before, "nothing stored");

    // Unknown principal.
    let mut ghost = w.inline("x", "attach");
    ghost["principal"]["principal_arn"] = json!(format!("arn:aws:iam::{}:role/ghost", w.account));
    let resp = post_request(
        &w,
        DEV,
        "dev",
        json!({"justification": "j", "changes": {"changes": [ghost]}}),
    )
    .await;
    assert_eq!(resp.status(), 400);

    // Only admins may auto-approve, and only where self-approval is allowed (it is not here):
    // 403 and nothing stored.
    let auto = json!({"justification": "hotfix", "admin_auto_approve": true,
                      "changes": {"changes": [w.inline("hotfix", "attach")]}});
    let before = count_requests(&w).await;
    assert_eq!(
        post_request(&w, DEV, "dev", auto.clone()).await.status(),
        403
    );
    let resp = post_request(&w, ADMIN, "admins", auto.clone()).await;
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap_or_default();
    assert!(body.contains("allow_self_approval"), "{body}");
    assert_eq!(count_requests(&w).await, before, "nothing stored");
    let refused = w
        .app
        .state
        .store
        .list_audit(None, &PageRequest::first(100))
        .await
        .expect("audit")
        .items
        .into_iter()
        .filter(|e| e.action == "request.self_approval_refused" && e.actor == ADMIN)
        .count();
    assert_eq!(refused, 1, "the refusal is audited");
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("hotfix")
            .send()
            .await
            .is_err(),
        "nothing applied"
    );

    // Where self-approval is allowed, an admin's auto-approve applies at once.
    let Some(w) = world_tuned(backends_of(&w), |c| c.policies.allow_self_approval = true).await
    else {
        return;
    };
    let auto = json!({"justification": "hotfix", "admin_auto_approve": true,
                      "changes": {"changes": [w.inline("hotfix", "attach")]}});
    let resp = post_request(&w, ADMIN, "admins", auto).await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    assert_eq!(created["status"], "approved");
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("hotfix")
            .send()
            .await
            .is_ok()
    );
}

pub(crate) async fn create_ok(w: &World, who: &str, groups: &str, body: Value) -> String {
    let resp = post_request(w, who, groups, body).await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    created["request_id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn update_change_is_revalidated_and_the_edit_is_what_gets_applied() {
    let Some(w) = world().await else { return };
    let id = create_ok(
        &w,
        DEV,
        "dev",
        json!({"justification": "reports", "changes": {"changes": [w.inline("edited", "attach")]}}),
    )
    .await;
    let stored = w.request(&id).await;
    let change_id = stored.changes.changes[0].id().to_string();
    let new_doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports"}]});
    let edit = |doc: Value| json!({"command": "update_change", "change_id": change_id, "policy_document": doc});

    // Somebody else: 403. Unknown change: 404. Invalid document: 400 naming the field.
    let resp = w
        .act("stranger@example.com", "dev", &id, edit(new_doc.clone()))
        .await;
    assert_eq!(resp.status(), 403);
    let resp = w
        .act(
            DEV,
            "dev",
            &id,
            json!({"command": "update_change", "change_id": "nope", "policy_document": new_doc}),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let mut bad = new_doc.clone();
    bad["Statement"][0]["Effect"] = json!("Perhaps");
    let resp = w.act(DEV, "dev", &id, edit(bad)).await;
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.unwrap_or_default();
    assert!(body.contains("Effect"), "{body}");
    let mut risky = new_doc.clone();
    risky["Statement"][0]["Action"] = json!("*");
    risky["Statement"][0]["Resource"] = json!("*");
    assert_eq!(
        w.request(&id).await.version,
        stored.version,
        "nothing changed"
    );

    // The requester edits: stored, version moves, warnings recomputed.
    let resp = w.act(DEV, "dev", &id, edit(risky)).await;
    assert_eq!(resp.status(), 200);
    let after = w.request(&id).await;
    assert_eq!(after.version, stored.version + 1);
    assert!(!after.warnings.is_empty(), "a full-admin grant warns");
    // An admin edits back to the narrow document, then another admin approves.
    let resp = w.act(ADMIN, "admins", &id, edit(new_doc.clone())).await;
    assert_eq!(resp.status(), 200);
    assert!(w.request(&id).await.warnings.is_empty());
    // Without the version reviewed, an edited request is not approved; with it, it is.
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request"}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let body = resp.text().await.unwrap_or_default();
    assert!(body.contains("edited"), "{body}");
    let version = w.request(&id).await.version;
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request", "version": version}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let got = w
        .iam
        .get_role_policy()
        .role_name("app")
        .policy_name("edited")
        .send()
        .await
        .expect("policy exists");
    let doc: Value =
        serde_json::from_str(&urlencoding::decode(got.policy_document()).expect("decode"))
            .expect("json");
    assert_eq!(doc["Statement"][0]["Action"], "s3:ListBucket");
    // Approved: no more edits.
    let resp = w.act(DEV, "dev", &id, edit(new_doc)).await;
    assert_eq!(resp.status(), 409);
    let audit = w
        .app
        .state
        .store
        .list_audit(Some(&id), &PageRequest::first(50))
        .await
        .expect("audit");
    assert_eq!(
        audit
            .items
            .iter()
            .filter(|e| e.action == "request.change_updated")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_clone_copies_trust_inline_managed_and_tags_into_the_new_role() {
    let Some(w) = world().await else { return };
    w.iam
        .put_role_policy()
        .role_name("app")
        .policy_name("read-reports")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#)
        .send()
        .await
        .expect("inline");
    let managed = w
        .iam
        .create_policy()
        .policy_name("shared-read")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#)
        .send()
        .await
        .expect("managed");
    let managed_arn = managed
        .policy()
        .and_then(|p| p.arn())
        .expect("arn")
        .to_string();
    w.iam
        .attach_role_policy()
        .role_name("app")
        .policy_arn(&managed_arn)
        .send()
        .await
        .expect("attach");
    w.iam
        .tag_role()
        .role_name("app")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("finance")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("tag");
    iamdesk::resources::sync::run(&w.app.state.resource_deps())
        .await
        .expect("sync");

    let body = json!({"justification": "a copy for the staging pipeline", "changes": {"changes": [{
        "change_type": "create_role", "account_id": w.account, "role_name": "app-copy",
        "description": "copy of app", "clone_from": w.arn(),
        "copy_trust": true, "copy_inline": true, "copy_managed": true, "copy_tags": true}]}});
    let id = create_ok(&w, DEV, "dev", body).await;
    let stored = w.request(&id).await;
    assert_eq!(
        serde_json::to_value(&stored.changes).expect("json")["changes"][0]["resolved_clone"]["from"],
        json!(w.arn()),
        "what the clone copies is pinned at creation"
    );
    let resp = w
        .act(ADMIN, "admins", &id, json!({"command": "approve_request"}))
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);

    let role = w
        .iam
        .get_role()
        .role_name("app-copy")
        .send()
        .await
        .expect("the new role exists");
    let role = role.role().expect("role");
    let trust = urlencoding::decode(role.assume_role_policy_document().unwrap_or_default())
        .expect("decode")
        .into_owned();
    assert!(trust.contains("ec2.amazonaws.com"), "trust copied: {trust}");
    assert!(
        role.tags()
            .iter()
            .any(|t| t.key() == "team" && t.value() == "finance"),
        "tags copied"
    );
    let inline = w
        .iam
        .list_role_policies()
        .role_name("app-copy")
        .send()
        .await
        .expect("inline");
    assert_eq!(inline.policy_names(), ["read-reports"]);
    let attached = w
        .iam
        .list_attached_role_policies()
        .role_name("app-copy")
        .send()
        .await
        .expect("managed");
    assert_eq!(
        attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .collect::<Vec<_>>(),
        [managed_arn.as_str()]
    );
}

#[tokio::test]
async fn the_requests_page_filters_by_account_and_text() {
    let Some(w) = world().await else { return };
    let id = create_ok(
        &w,
        DEV,
        "dev",
        json!({"justification": "zebra migration", "changes": {"changes": [w.inline("zebra", "attach")]}}),
    )
    .await;
    let other = create_ok(
        &w,
        DEV,
        "dev",
        json!({"justification": "yak shaving", "changes": {"changes": [w.inline("yak", "attach")]}}),
    )
    .await;
    let get = |q: String| {
        let app = &w.app;
        async move {
            app.client
                .get(app.url(&format!("/requests?{q}")))
                .header("x-user", DEV)
                .send()
                .await
                .expect("GET")
        }
    };
    let page = get("q=ZEBRA".into()).await.text().await.expect("body");
    assert!(
        page.contains(&id[..8]) && !page.contains(&other[..8]),
        "text filter"
    );
    let page = get(format!("account={}&q=yak", w.account))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains(&other[..8]) && !page.contains(&id[..8]));
    let page = get("account=000000000001".into())
        .await
        .text()
        .await
        .expect("body");
    assert!(!page.contains(&other[..8]) && !page.contains(&id[..8]));
    let resp = get("account=not-an-account".into()).await;
    assert_eq!(resp.status(), 400);
    // The API takes the same filters.
    let api: Value = w
        .get_as(DEV, "", "/api/v2/requests?q=zebra")
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = api["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
}

/// Sign the browser in as `email` with a session cookie the server issued (as after an SSO
/// sign-in), replacing whoever was signed in.
async fn browser_sign_in(c: &fantoccini::Client, app: &TestApp, email: &str, groups: &[&str]) {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let token = app
        .state
        .sessions
        .issue(email, &groups, std::time::Duration::from_secs(3600))
        .expect("session");
    c.goto(&app.url("/healthcheck")).await.expect("open");
    c.delete_all_cookies().await.expect("sign out");
    // WebDriver's AddCookie refuses IP-address domains; set it from the page instead.
    c.execute(
        "document.cookie = arguments[0] + '=' + arguments[1] + '; path=/';",
        vec![json!(app.state.config.auth.cookie_name), json!(token)],
    )
    .await
    .expect("cookie");
}

#[tokio::test]
async fn requester_fills_the_form_and_another_admin_approves_in_a_real_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let Some(w) = world().await else { return };
    let app = spoke_app(&w.account, |config| {
        config.auth.get_user_by_header = false;
        config.auth.get_groups_by_header = false;
        config.groups.can_admin = vec!["admins".into()];
    })
    .await;
    let w = World { app, ..w };
    let c = &browser.client;
    use fantoccini::Locator::{Css, XPath};

    // The requester fills the role page's form.
    browser_sign_in(c, &w.app, DEV, &["dev"]).await;
    c.goto(&w.app.url(&format!(
        "/policies/edit/{}/iamrole/app#request-change",
        w.account
    )))
    .await
    .expect("role page");
    c.find(Css("select[name=kind]"))
        .await
        .expect("kind")
        .select_by_value("inline_policy:attach")
        .await
        .expect("select");
    c.type_in("input[name=policy_name]", "browser-journey")
        .await;
    let doc = c
        .find(Css("textarea[name=policy_document]"))
        .await
        .expect("document");
    doc.clear().await.expect("clear");
    doc.send_keys(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::journey/*"}]}"#)
        .await
        .expect("type");
    c.type_in(
        "textarea[name=justification]",
        "the journey test reads its bucket",
    )
    .await;
    c.find(XPath(
        "//form[contains(@class,'change-form')]//button[@type='submit']",
    ))
    .await
    .expect("submit")
    .click()
    .await
    .expect("submit");
    c.wait_for_xpath(
        "//h1/span[contains(., 'pending')]",
        "the new request's page",
    )
    .await;
    let url = c.current_url().await.expect("url").to_string();
    let id = url
        .rsplit('/')
        .next()
        .expect("id")
        .split(['#', '?'])
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(w.request(&id).await.requester, DEV);
    // The requester sees no approve button.
    assert!(c.find(Css("button.approve")).await.is_err());

    // An admin opens it, sees the diff, approves.
    browser_sign_in(c, &w.app, ADMIN, &["admins"]).await;
    c.goto(&w.app.url(&format!("/policies/request/{id}")))
        .await
        .expect("open request");
    c.find(Css("table.diff tr.add"))
        .await
        .expect("the diff is shown");
    browser.screenshot("journey-request-before-approval").await;
    c.approve_this_request().await;
    browser.screenshot("journey-request-after-approval").await;
    browser.close().await;
    assert!(
        w.iam
            .get_role_policy()
            .role_name("app")
            .policy_name("browser-journey")
            .send()
            .await
            .is_ok(),
        "applied in the spoke account"
    );
}

#[tokio::test]
async fn the_managed_policy_quota_comes_from_the_config() {
    let Some(w) = world().await else { return };
    let app = spoke_app(&w.account, |config| {
        config.policies.max_managed_policies = 1;
    })
    .await;
    let csrf = csrf_for(&app).await;
    let w = World { app, csrf, ..w };
    let attach = |arn: &str| {
        json!({"change_type": "managed_policy",
               "principal": {"principal_type": "AwsResource", "principal_arn": w.arn()},
               "action": "attach", "arn": arn})
    };
    let two = json!({"justification": "read everything", "changes": {"changes": [
        attach("arn:aws:iam::aws:policy/ReadOnlyAccess"),
        attach("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")]}});
    let resp = post_request(&w, DEV, "dev", two).await;
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.unwrap_or_default();
    assert!(body.contains("the limit is 1"), "{body}");
    assert_eq!(count_requests(&w).await, 0, "nothing stored");
    let one = json!({"justification": "read everything", "changes": {"changes": [
        attach("arn:aws:iam::aws:policy/ReadOnlyAccess")]}});
    assert_eq!(post_request(&w, DEV, "dev", one).await.status(), 200);
}
