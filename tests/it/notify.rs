//! Notifications against moto SES and a local Slack receiver: exact texts, the right
//! recipients, retries to dead, an admin's retry, and delivery after a restart.

use std::sync::{Arc, Mutex};

use iamdesk::notify::worker;
use iamdesk::store::{OutboxMessage, OutboxStatus, PageRequest, RequestStatus};
use serde_json::{Value, json};

use crate::support::{
    Captured, TestApp, account_id, create_role, csrf_for, free_port, iam_in, moto_endpoint,
    spoke_app, unique,
};

const DEV: &str = "dev@example.com";
const REVIEWER: &str = "reviewer@example.com";
const APP_ADMIN: &str = "appadmin@example.com";
const SUPPORT: &str =
    "Please contact us at consoleme@example.com if you have any questions or concerns.";

struct World {
    app: TestApp,
    account: String,
    /// The sender's domain (verified or not, per test).
    domain: String,
    csrf: (String, String),
}

/// A spoke account with role `app`, header sign-in, SES sender `iamdesk@<unique domain>`.
async fn world(verified: bool, tune: impl FnOnce(&mut iamdesk::config::Config)) -> Option<World> {
    moto_endpoint()?;
    let account = account_id();
    create_role(&iam_in(&account).await, "app", &[]).await;
    let domain = format!("{}.example.org", unique("mail"));
    if verified {
        verify(&domain).await;
    }
    let sender = format!("iamdesk@{domain}");
    let app = spoke_app(&account, |config| {
        config.url = "https://iamdesk.example.com".into();
        config.application_admin = Some(APP_ADMIN.into());
        config.groups.can_admin = vec!["admins".into(), REVIEWER.into()];
        config.ses.consoleme.name = "ConsoleMe".into();
        config.ses.consoleme.sender = Some(sender);
        config.ses.region = "us-east-1".into();
        config.ses.support_reference = SUPPORT.into();
        config.outbox.max_attempts = 3;
        tune(config);
    })
    .await;
    let csrf = csrf_for(&app).await;
    Some(World {
        app,
        account,
        domain,
        csrf,
    })
}

async fn verify(domain: &str) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(domain)
        .send()
        .await
        .expect("verify the sender's domain");
}

/// Every message moto SES accepted whose subject names `needle`.
async fn sent(needle: &str) -> Vec<Value> {
    let endpoint = moto_endpoint().expect("moto");
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("data.json")
        .json()
        .await
        .expect("json");
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(needle)))
        .cloned()
        .collect()
}

fn to_of(m: &Value) -> Vec<String> {
    m["destinations"]["ToAddresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

impl World {
    fn arn(&self) -> String {
        format!("arn:aws:iam::{}:role/app", self.account)
    }

    fn link(&self, id: &str) -> String {
        format!("https://iamdesk.example.com/policies/request/{id}")
    }

    async fn create(&self, name: &str) -> String {
        let body = json!({"justification": "reports for the close", "changes": {"changes": [{
            "change_type": "inline_policy",
            "principal": {"principal_type": "AwsResource", "principal_arn": self.arn()},
            "policy_name": name, "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}]}}}]}});
        let resp = self
            .app
            .client
            .post(self.app.url("/api/v2/request"))
            .header("x-user", DEV)
            .header("x-groups", "dev")
            .header("cookie", &self.csrf.0)
            .header("x-csrf-token", &self.csrf.1)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.expect("json");
        v["request_id"].as_str().expect("id").to_string()
    }

    async fn act(&self, who: &str, groups: &str, id: &str, model: Value) {
        let resp = self
            .app
            .client
            .put(self.app.url(&format!("/api/v2/requests/{id}")))
            .header("x-user", who)
            .header("x-groups", groups)
            .header("cookie", &self.csrf.0)
            .header("x-csrf-token", &self.csrf.1)
            .json(&json!({ "modification_model": model }))
            .send()
            .await
            .expect("PUT");
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }

    async fn outbox(&self) -> Vec<OutboxMessage> {
        self.app
            .state
            .store
            .list_outbox(None, &PageRequest::first(500))
            .await
            .expect("outbox")
            .items
    }

    async fn deliver(&self) -> worker::Pass {
        worker::deliver_due(&self.app.state).await.expect("deliver")
    }
}

#[tokio::test]
async fn each_event_mails_the_right_people_word_for_word() {
    let Some(w) = world(true, |_| {}).await else {
        return;
    };
    let arn = w.arn();

    // New request: a receipt to the requester and a notice to the reviewers, one message.
    let id = w.create("mail-test").await;
    assert_eq!(w.deliver().await.sent, 1);
    let created = sent(&format!("{arn} has been created")).await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["subject"],
        format!("ConsoleMe: Policy change request for {arn} has been created")
    );
    assert_eq!(to_of(&created[0]), [DEV, APP_ADMIN, REVIEWER]);
    assert_eq!(created[0]["source"], format!("iamdesk@{}", w.domain));

    // A comment by the reviewer: everyone but the reviewer.
    w.act(
        REVIEWER,
        "admins",
        &id,
        json!({"command": "add_comment", "comment_text": "why reports/*?"}),
    )
    .await;
    w.deliver().await;
    let comment = sent(&format!("Policy Change request for {arn}")).await;
    assert_eq!(comment.len(), 1);
    assert_eq!(
        comment[0]["subject"],
        format!("ConsoleMe: A new comment has been added to Policy Change request for {arn}")
    );
    let text = format!(
        "A new comment has been added to the policy change request for {arn} by {REVIEWER}\n\n\
         See the request here: {}.\n\n\n{SUPPORT}",
        w.link(&id)
    );
    let body = comment[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains(&text),
        "the exact text is in the mail: {body}"
    );
    assert!(
        body.contains(&format!("href=\"{}\"", w.link(&id))),
        "a button link"
    );
    assert_eq!(to_of(&comment[0]), [DEV, APP_ADMIN]);
    // The stored plain-text part is exactly the text.
    let stored = w
        .outbox()
        .await
        .into_iter()
        .find(|m| {
            m.payload["subject"]
                .as_str()
                .is_some_and(|s| s.contains("new comment"))
        })
        .expect("stored");
    assert_eq!(stored.payload["text"], text);
    assert_eq!(stored.status, OutboxStatus::Sent);

    // Approval by the reviewer.
    w.act(
        REVIEWER,
        "admins",
        &id,
        json!({"command": "approve_request"}),
    )
    .await;
    w.deliver().await;
    let approved = sent(&format!("{arn} has been updated to approved and committed")).await;
    assert_eq!(approved.len(), 1);
    assert_eq!(
        approved[0]["subject"],
        format!(
            "ConsoleMe: Policy change request for {arn} has been updated to approved and committed"
        )
    );
    let body = approved[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains(&format!(
        "A policy change request for {arn} has been updated to approved and committed\n\n\
         See the request here: {}.\n\n\n{SUPPORT}",
        w.link(&id)
    )));
    assert_eq!(to_of(&approved[0]), [DEV, APP_ADMIN]);

    // Rejection by the application admin; cancellation by the requester.
    let rejected_id = w.create("mail-reject").await;
    w.act(
        APP_ADMIN,
        "",
        &rejected_id,
        json!({"command": "reject_request"}),
    )
    .await;
    let cancelled_id = w.create("mail-cancel").await;
    w.act(
        DEV,
        "dev",
        &cancelled_id,
        json!({"command": "cancel_request"}),
    )
    .await;
    w.deliver().await;
    let rejected = sent(&format!("{arn} has been updated to rejected")).await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(to_of(&rejected[0]), [DEV, REVIEWER]);
    let cancelled = sent(&format!("{arn} has been updated to cancelled")).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(
        to_of(&cancelled[0]),
        [APP_ADMIN, REVIEWER],
        "not the requester who cancelled"
    );
    assert!(
        cancelled[0]["body"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!(
                "A policy change request for {arn} has been updated to cancelled\n\n"
            ))
    );
    assert_eq!(sent(&format!("{arn} has been created")).await.len(), 3);
}

#[tokio::test]
async fn no_reviewers_means_the_fallback_list() {
    let Some(w) = world(true, |c| {
        c.application_admin = None;
        c.groups.can_admin = vec!["admins".into()];
        c.groups.fallback_policy_request_reviewers = vec![
            "fallback1@example.com".into(),
            "fallback2@example.com".into(),
        ];
    })
    .await
    else {
        return;
    };
    let id = w.create("fallback").await;
    w.act(
        DEV,
        "dev",
        &id,
        json!({"command": "add_comment", "comment_text": "ping"}),
    )
    .await;
    w.deliver().await;
    let comment = sent(&format!("Policy Change request for {}", w.arn())).await;
    assert_eq!(comment.len(), 1);
    assert_eq!(
        to_of(&comment[0]),
        ["fallback1@example.com", "fallback2@example.com"],
        "the commenting requester is not mailed; the fallback reviewers are"
    );
}

#[tokio::test]
async fn an_unverified_sender_never_blocks_approval_and_ends_dead_until_an_admin_retries() {
    let Some(w) = world(false, |_| {}).await else {
        return;
    };
    let id = w.create("unverified").await;
    // Deliveries fail; the request is not affected.
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(logs.clone())
        .finish();
    let pass = {
        let _guard = tracing::subscriber::set_default(subscriber);
        w.act(
            REVIEWER,
            "admins",
            &id,
            json!({"command": "approve_request"}),
        )
        .await;
        w.deliver().await
    };
    assert_eq!(pass.failed, 2, "the 'created' and 'approved' mails failed");
    let r = w
        .app
        .state
        .store
        .get_request(&id)
        .await
        .expect("get")
        .expect("request");
    assert_eq!(r.status, RequestStatus::Approved, "the approval committed");

    // One structured error per failure with ConsoleMe's fields, and the AWS error.
    let text =
        String::from_utf8(logs.0.lock().map(|v| v.clone()).unwrap_or_default()).expect("utf8");
    let errors: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "Exception sending email")
        .collect();
    assert_eq!(errors.len(), 2, "{text}");
    let approved_subject = format!(
        "ConsoleMe: Policy change request for {} has been updated to approved and committed",
        w.arn()
    );
    let e = errors
        .iter()
        .find(|e| e["fields"]["subject"] == approved_subject)
        .expect("the approval mail's error");
    assert_eq!(e["level"], "ERROR");
    assert_eq!(e["fields"]["region"], "us-east-1");
    assert_eq!(e["fields"]["sender"], format!("iamdesk@{}", w.domain));
    assert!(
        e["fields"]["to_user"]
            .as_str()
            .unwrap_or_default()
            .contains(DEV)
    );
    assert!(
        e["fields"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not verified"),
        "{e}"
    );

    // Retried with backoff: not due again at once; after max attempts, dead.
    assert_eq!(w.deliver().await, worker::Pass::default(), "backing off");
    let approval_mail = || async {
        w.outbox()
            .await
            .into_iter()
            .find(|m| m.payload["subject"] == approved_subject)
            .expect("stored")
    };
    let m = approval_mail().await;
    assert_eq!((m.status, m.attempts), (OutboxStatus::Pending, 1));
    assert!(m.next_attempt_at > chrono::Utc::now());
    assert!(
        m.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("not verified")
    );
    for _ in 0..2 {
        worker::deliver_one(&w.app.state, approval_mail().await)
            .await
            .expect("attempt");
    }
    let m = approval_mail().await;
    assert_eq!((m.status, m.attempts), (OutboxStatus::Dead, 3));

    // The sender is verified; an admin retries from /admin/outbox; it is delivered.
    verify(&w.domain).await;
    let page = w
        .app
        .client
        .get(w.app.url("/admin/outbox?status=dead"))
        .header("x-user", REVIEWER)
        .header("x-groups", "admins")
        .send()
        .await
        .expect("GET");
    let html = page.text().await.expect("html");
    assert!(
        html.contains(&format!("/admin/outbox/{}/retry", m.id)),
        "a retry button"
    );
    let retry = |who: &'static str, groups: &'static str| {
        let (app, csrf, id) = (&w.app, &w.csrf, m.id.clone());
        async move {
            app.client
                .post(app.url(&format!("/admin/outbox/{id}/retry")))
                .header("x-user", who)
                .header("x-groups", groups)
                .header("cookie", &csrf.0)
                .form(&[("csrf_token", csrf.1.as_str())])
                .send()
                .await
                .expect("POST")
        }
    };
    assert_eq!(retry(DEV, "dev").await.status(), 403, "admins only");
    let resp = retry(REVIEWER, "admins").await;
    assert_eq!(resp.status(), 303);
    let m = approval_mail().await;
    assert_eq!(m.status, OutboxStatus::Sent);
    assert_eq!(sent(&approved_subject).await.len(), 1);
    assert_eq!(
        retry(REVIEWER, "admins").await.status(),
        409,
        "sent is final"
    );
}

#[tokio::test]
async fn a_pending_message_is_sent_after_a_restart() {
    if moto_endpoint().is_none() {
        return;
    }
    // First life: no sender configured, so the message waits in the (embedded) store.
    let Some(w) = world(true, |c| c.ses.consoleme.sender = None).await else {
        return;
    };
    let id = w.create("restart").await;
    assert_eq!(w.deliver().await, worker::Pass::default());
    let waiting = w.outbox().await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].status, OutboxStatus::Pending);
    let page = w
        .app
        .client
        .get(w.app.url("/admin/outbox"))
        .header("x-user", REVIEWER)
        .header("x-groups", "admins")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("No sender is configured"),
        "the page says why"
    );
    let mut config = w.app.state.config.clone();
    let arn = w.arn();
    let World {
        mut app, domain, ..
    } = w;
    let dir = app.take_dir();
    drop(app);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Second life on the same database, now with a sender: the worker delivers it.
    config.ses.consoleme.sender = Some(format!("iamdesk@{domain}"));
    let mut again = TestApp::spawn(config).await;
    if let Some(dir) = dir {
        again.keep(dir);
    }
    let job = tokio::spawn(worker::run(again.state.0.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let m = again
            .state
            .store
            .get_outbox(&waiting[0].id)
            .await
            .expect("get")
            .expect("message");
        if m.status == OutboxStatus::Sent {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not sent: {m:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    job.abort();
    let mails = sent(&format!("{arn} has been created")).await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]["body"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("/policies/request/{id}"))
    );
}

#[tokio::test]
async fn slack_gets_new_requests_and_status_changes_with_retries() {
    // A local incoming-webhook receiver: fails the first post, then records them.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (rx, n) = (received.clone(), calls.clone());
    let receiver = axum::Router::new().route(
        "/hook/secret-part",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let (rx, n) = (rx.clone(), n.clone());
            async move {
                if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "try later");
                }
                if let Ok(mut v) = rx.lock() {
                    v.push(body);
                }
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    let Some(w) = world(true, |c| {
        c.ses.consoleme.sender = None;
        c.slack.notifications_enabled = true;
        c.slack.webhook_url = Some(format!("http://127.0.0.1:{port}/hook/secret-part"));
    })
    .await
    else {
        return;
    };
    let id = w.create("slack").await;
    let first = w.deliver().await;
    assert_eq!(first.failed, 1, "the receiver failed the first post");
    let slack = w
        .outbox()
        .await
        .into_iter()
        .find(|m| m.channel == "slack")
        .expect("slack message");
    assert!(
        !slack
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("secret-part"),
        "the webhook URL is never shown"
    );
    assert!(
        slack
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("500")
    );
    worker::deliver_one(&w.app.state, slack)
        .await
        .expect("retry");
    w.act(
        REVIEWER,
        "admins",
        &id,
        json!({"command": "reject_request"}),
    )
    .await;
    w.deliver().await;
    let got = received.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(got.len(), 2, "{got:?}");
    let link = w.link(&id);
    let created = &got[0]["attachments"][0];
    assert_eq!(created["title_link"], link);
    assert_eq!(created["fields"][0]["value"], w.arn());
    assert_eq!(created["fields"][1]["value"], DEV);
    assert_eq!(created["fields"][2]["value"], "pending");
    let rejected = &got[1]["attachments"][0];
    assert_eq!(rejected["fields"][2]["value"], "rejected");
    assert_eq!(rejected["color"], "#D50200");
    assert!(
        got[1]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("has been updated to rejected")
    );
    // Email is not configured here: those messages wait in the outbox.
    assert!(
        w.outbox()
            .await
            .iter()
            .filter(|m| m.channel == "email")
            .all(|m| m.status == OutboxStatus::Pending && m.attempts == 0)
    );
}
