//! Right-sizing (issue 21) against moto, with the Access Advisor stand-in of
//! `scripts/moto_server.py` (the only two IAM actions moto lacks); everything else is real moto.

use serde_json::{Value, json};

use crate::requests::{DEV, World};
use crate::support::{
    TestApp, account_id, create_role, csrf_for, iam_in, moto_endpoint, spoke_app,
};

fn allow(actions: &[&str]) -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": "*"}]})
    .to_string()
}

/// Tell the stand-in what Access Advisor says about roles (by ARN).
async fn advisor(spec: Value) {
    let endpoint = moto_endpoint().expect("moto");
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/iamdesk-test/access-advisor"))
        .json(&spec)
        .send()
        .await
        .expect("stand-in reachable");
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

/// A moto account with `roles` (name, inline policy name, actions), a portal over it (synced).
async fn world(
    roles: &[(&str, &str, &[&str])],
    tune: impl FnOnce(&mut iamdesk::config::Config),
) -> Option<World> {
    moto_endpoint()?;
    let account = account_id();
    let iam = iam_in(&account).await;
    for (name, policy, actions) in roles {
        create_role(&iam, name, &[]).await;
        iam.put_role_policy()
            .role_name(*name)
            .policy_name(*policy)
            .policy_document(allow(actions))
            .send()
            .await
            .expect("put role policy");
    }
    let app = spoke_app(&account, |c| {
        c.groups.can_admin = vec!["admins".into()];
        tune(c);
    })
    .await;
    let csrf = csrf_for(&app).await;
    Some(World {
        app,
        account,
        iam,
        csrf,
    })
}

/// Right-sizing's own calls on the shared request world (`tests/it/requests.rs`).
impl World {
    async fn refresh_usage(&self) -> iamdesk::rightsize::usage::Outcome {
        iamdesk::rightsize::usage::refresh(&iamdesk::rightsize::usage_deps(&self.app.state), true)
            .await
    }

    async fn report(&self, role: &str) -> Value {
        let resp = self
            .get_as(
                DEV,
                "",
                &format!("/api/v2/roles/{}/{role}/rightsize", self.account),
            )
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }

    async fn propose(&self, role: &str) -> reqwest::Response {
        self.post(
            DEV,
            "",
            &format!("/api/v2/roles/{}/{role}/rightsize", self.account),
            json!({}),
        )
        .await
    }
}

fn verdict(report: &Value, service: &str) -> String {
    report["services"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["namespace"] == service))
        .map(|s| s["verdict"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("{service} is not in {report}"))
}

#[tokio::test]
async fn unused_sqs_is_proposed_removed_on_approval_and_rolled_back() {
    let Some(w) = world(
        &[("app", "app-access", &["s3:GetObject", "sqs:SendMessage"])],
        |_| {},
    )
    .await
    else {
        return;
    };
    advisor(
        json!({ w.role_arn("app"): {"in_progress_polls": 2, "services": [
        {"ServiceNamespace": "s3", "ServiceName": "Amazon S3", "LastAuthenticated": days_ago(2)},
        {"ServiceNamespace": "sqs", "ServiceName": "Amazon SQS", "LastAuthenticated": null}]}}),
    )
    .await;
    let outcome = w.refresh_usage().await;
    assert_eq!((outcome.refreshed, outcome.failed), (1, 0));

    let report = w.report("app").await;
    assert_eq!(report["removable"], json!(["sqs"]), "{report}");
    assert_eq!(verdict(&report, "s3"), "used");
    assert_eq!(verdict(&report, "sqs"), "unused");
    assert!(report["role_age_days"].is_number(), "{report}");
    assert_eq!(report["tracking_days"], 400);
    let justification = report["justification"].as_str().expect("justification");
    assert!(
        justification.contains("sqs (last used: never)"),
        "{justification}"
    );
    assert!(justification.contains("days old"), "{justification}");

    // The role page and the fleet view show it.
    let page = w
        .get_as(
            DEV,
            "",
            &format!("/policies/edit/{}/iamrole/app", w.account),
        )
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Propose removal"),
        "the role page offers the proposal"
    );
    let fleet: Value = w
        .get_as(DEV, "", &format!("/api/v2/rightsize?account={}", w.account))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fleet["rows"][0]["role_name"], "app", "{fleet}");
    assert_eq!(fleet["rows"][0]["unused"], json!(["sqs"]));
    let fleet_page = w.get_as(DEV, "", "/rightsize").await;
    assert_eq!(fleet_page.status(), 200);

    // Filing changes nothing in AWS: it is a pending request like any other.
    let resp = w.propose("app").await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    let id = created["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    assert_eq!(
        w.actions("app", "app-access").await,
        vec!["s3:GetObject", "sqs:SendMessage"]
    );
    let request: Value = w
        .get_as(DEV, "", &format!("/api/v2/requests/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(request["status"], "pending");
    assert!(
        request["justification"]
            .as_str()
            .is_some_and(|j| j.starts_with("Right-size:")),
        "{request}"
    );

    w.approve(&id).await;
    assert_eq!(w.actions("app", "app-access").await, vec!["s3:GetObject"]);
    // Nothing left to remove.
    assert_eq!(w.propose("app").await.status(), 409);

    // Rollback: a pending request restoring the pinned document, applied on approval.
    let pending = w
        .post(
            DEV,
            "",
            &format!("/api/v2/rightsize/{}/rollback", "no-such-request"),
            json!({}),
        )
        .await;
    assert_eq!(pending.status(), 404);
    let resp = w
        .post(
            DEV,
            "",
            &format!("/api/v2/rightsize/{id}/rollback"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let back: Value = resp.json().await.expect("json");
    let back_id = back["request_id"].as_str().expect("id").to_string();
    assert_eq!(w.actions("app", "app-access").await, vec!["s3:GetObject"]);
    w.approve(&back_id).await;
    assert_eq!(
        w.actions("app", "app-access").await,
        vec!["s3:GetObject", "sqs:SendMessage"]
    );
    // A rollback is not itself a right-size request.
    let again = w
        .post(
            DEV,
            "",
            &format!("/api/v2/rightsize/{back_id}/rollback"),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn a_recent_grant_and_kept_services_are_not_proposed() {
    let Some(w) = world(
        &[(
            "app",
            "base",
            &["s3:GetObject", "sns:Publish", "ec2:DescribeInstances"],
        )],
        |c| c.rightsize.keep = vec!["sns:Publish".into()],
    )
    .await
    else {
        return;
    };
    // sqs granted through iamdesk now (well within the 90 days).
    let resp = w
        .post(
            DEV,
            "",
            "/api/v2/request",
            json!({"justification": "the worker reads its queue", "changes": {"changes": [
                {"change_type": "inline_policy",
                 "principal": {"principal_type": "AwsResource", "principal_arn": w.role_arn("app")},
                 "policy_name": "queue", "action": "attach",
                 "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                     {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "Resource": "*"}]}}}]}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let granted: Value = resp.json().await.expect("json");
    w.approve(granted["request_id"].as_str().expect("id")).await;

    advisor(json!({ w.role_arn("app"): {"services": [
        {"ServiceNamespace": "s3", "LastAuthenticated": days_ago(1)},
        {"ServiceNamespace": "sqs", "LastAuthenticated": null},
        {"ServiceNamespace": "sns", "LastAuthenticated": null},
        {"ServiceNamespace": "ec2", "LastAuthenticated": days_ago(200)}]}}))
    .await;
    w.refresh_usage().await;
    let report = w.report("app").await;
    assert_eq!(verdict(&report, "sqs"), "recent", "{report}");
    assert_eq!(verdict(&report, "sns"), "kept");
    assert_eq!(verdict(&report, "ec2"), "unused");
    assert_eq!(report["removable"], json!(["ec2"]));

    let resp = w.propose("app").await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    w.approve(created["request_id"].as_str().expect("id")).await;
    assert_eq!(
        w.actions("app", "base").await,
        vec!["s3:GetObject", "sns:Publish"]
    );
    assert_eq!(w.actions("app", "queue").await, vec!["sqs:ReceiveMessage"]);
}

#[tokio::test]
async fn an_access_advisor_failure_stays_with_its_role() {
    let Some(w) = world(
        &[
            ("good", "p", &["s3:GetObject", "sqs:SendMessage"]),
            ("broken", "p", &["s3:GetObject", "sqs:SendMessage"]),
        ],
        |_| {},
    )
    .await
    else {
        return;
    };
    advisor(json!({
        w.role_arn("good"): {"in_progress_polls": 1, "services": [
            {"ServiceNamespace": "s3", "LastAuthenticated": days_ago(3)},
            {"ServiceNamespace": "sqs", "LastAuthenticated": null}]},
        w.role_arn("broken"): {"fail": true}}))
    .await;
    let outcome = w.refresh_usage().await;
    assert_eq!((outcome.refreshed, outcome.failed), (1, 1));

    let good = w.report("good").await;
    assert_eq!(good["removable"], json!(["sqs"]));
    let broken = w.report("broken").await;
    assert!(
        broken["usage_error"]
            .as_str()
            .is_some_and(|e| e.contains("failed")),
        "{broken}"
    );
    assert_eq!(broken["removals"], json!([]));
    assert_eq!(w.propose("broken").await.status(), 409);

    // The resource sync is untouched by it.
    let sync = iamdesk::resources::sync::run(&w.app.state.resource_deps())
        .await
        .expect("sync");
    assert_eq!(sync.failed(), 0);
    assert!(w.app.state.resources.role(&w.account, "broken").is_some());
}

#[tokio::test]
async fn the_roles_own_cloudtrail_calls_count_as_use() {
    let Some(w) = world(
        &[("app", "p", &["s3:GetObject", "sqs:SendMessage"])],
        |_| {},
    )
    .await
    else {
        return;
    };
    advisor(json!({ w.role_arn("app"): {"services": [
        {"ServiceNamespace": "s3", "LastAuthenticated": days_ago(3)},
        {"ServiceNamespace": "sqs", "LastAuthenticated": null}]}}))
    .await;
    w.refresh_usage().await;
    assert_eq!(w.report("app").await["removable"], json!(["sqs"]));

    // Access Advisor lags; the events consumer saw the role send a message just now.
    let event = json!({"version": "0", "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.sqs", "account": w.account,
        "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventID": uuid::Uuid::new_v4().to_string(),
            "eventTime": chrono::Utc::now().to_rfc3339(),
            "eventSource": "sqs.amazonaws.com", "eventName": "SendMessage",
            "recipientAccountId": w.account,
            "userIdentity": {"type": "AssumedRole",
                "arn": format!("arn:aws:sts::{}:assumed-role/app/i-0abc", w.account),
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "app",
                    "arn": w.role_arn("app"), "accountId": w.account}}},
            "requestParameters": {"queueUrl": "https://sqs.us-east-1.amazonaws.com/1/q"}}})
    .to_string();
    let outcomes = iamdesk::events::handle::handle_batch(&w.app.state, &[event]).await;
    assert_eq!(outcomes, vec![iamdesk::events::handle::Outcome::Handled]);
    let report = w.report("app").await;
    assert_eq!(verdict(&report, "sqs"), "used", "{report}");
    assert_eq!(report["removable"], json!([]));
    assert_eq!(w.propose("app").await.status(), 409);
}

/// `cargo run` (the sandbox) shows right-sizing: made-up but stable usage for the demo roles.
#[tokio::test]
async fn the_sandbox_demo_has_usage_and_proposals() {
    let app = TestApp::demo().await;
    let outcome =
        iamdesk::rightsize::usage::refresh(&iamdesk::rightsize::usage_deps(&app.state), true).await;
    assert!(outcome.refreshed > 0 && outcome.failed == 0, "{outcome:?}");
    let fleet: Value = app
        .get("/api/v2/rightsize")
        .await
        .json()
        .await
        .expect("json");
    let top = &fleet["rows"][0];
    assert!(
        top["unused"].as_array().is_some_and(|u| !u.is_empty()),
        "the demo has something to right-size: {fleet}"
    );
    let page = app
        .get(&format!(
            "/policies/edit/{}/iamrole/{}",
            top["account_id"].as_str().expect("account"),
            top["role_name"].as_str().expect("role")
        ))
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("Propose removal"), "{page}");
}

#[tokio::test]
async fn an_unused_action_of_a_used_service_is_proposed_and_removed() {
    let Some(w) = world(
        &[(
            "app",
            "objects",
            &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        )],
        |c| c.rightsize.keep = vec!["s3:DeleteObject".into()],
    )
    .await
    else {
        return;
    };
    advisor(json!({ w.role_arn("app"): {"services": [
        {"ServiceNamespace": "s3", "ServiceName": "Amazon S3", "LastAuthenticated": days_ago(2),
         "TrackedActionsLastAccessed": [
            {"ActionName": "GetObject", "LastAccessedTime": days_ago(2)},
            {"ActionName": "PutObject", "LastAccessedTime": days_ago(200)},
            {"ActionName": "DeleteObject"}]}]}}))
    .await;
    assert_eq!(w.refresh_usage().await.refreshed, 1);

    let report = w.report("app").await;
    assert_eq!(verdict(&report, "s3"), "used");
    assert_eq!(report["removable"], json!([]), "{report}");
    // DeleteObject was never used either, but `rightsize.keep` names it.
    assert_eq!(
        report["removable_actions"],
        json!(["s3:PutObject"]),
        "{report}"
    );
    let justification = report["justification"].as_str().expect("justification");
    assert!(justification.contains("s3:PutObject"), "{justification}");

    let resp = w.propose("app").await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    let id = created["request_id"].as_str().expect("id").to_string();
    w.approve(&id).await;
    assert_eq!(
        w.actions("app", "objects").await,
        vec!["s3:DeleteObject", "s3:GetObject"]
    );
    assert_eq!(w.propose("app").await.status(), 409);
}

#[tokio::test]
async fn rollback_restores_the_documents_as_they_were_at_approval() {
    let Some(w) = world(
        &[("app", "app-access", &["s3:GetObject", "sqs:SendMessage"])],
        |_| {},
    )
    .await
    else {
        return;
    };
    advisor(json!({ w.role_arn("app"): {"services": [
        {"ServiceNamespace": "s3", "ServiceName": "Amazon S3", "LastAuthenticated": days_ago(2)},
        {"ServiceNamespace": "sqs", "ServiceName": "Amazon SQS", "LastAuthenticated": null}]}}))
    .await;
    w.refresh_usage().await;
    let resp = w.propose("app").await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    let id = created["request_id"].as_str().expect("id").to_string();

    // Between filing and approval, the policy gains a statement in AWS.
    let grown = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "sqs:SendMessage"], "Resource": "*"},
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]});
    w.iam
        .put_role_policy()
        .role_name("app")
        .policy_name("app-access")
        .policy_document(grown.to_string())
        .send()
        .await
        .expect("put role policy");
    // What the reviewer approved is what is applied.
    w.approve(&id).await;
    assert_eq!(w.actions("app", "app-access").await, vec!["s3:GetObject"]);

    // The request page offers the rollback (a form with CSRF).
    let page = w
        .get_as(DEV, "", &format!("/policies/request/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(&format!("action=\"/rightsize/{id}/rollback\"")),
        "the request page offers the rollback"
    );

    let resp = w
        .post(
            DEV,
            "",
            &format!("/api/v2/rightsize/{id}/rollback"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let back: Value = resp.json().await.expect("json");
    w.approve(back["request_id"].as_str().expect("id")).await;
    assert_eq!(
        w.actions("app", "app-access").await,
        vec!["s3:GetObject", "sns:Publish", "sqs:SendMessage"]
    );
}

/// A plain user's ordinary request dressed as a right-size one ("Right-size:" justification)
/// gains nothing: once approved it cannot be "rolled back" (which would file a request
/// restoring documents of the user's choosing), and nothing but what was reviewed is applied.
#[tokio::test]
async fn a_look_alike_right_size_request_cannot_be_rolled_back() {
    let Some(w) = world(&[("app", "base", &["s3:GetObject"])], |_| {}).await else {
        return;
    };
    let resp = w
        .post(
            DEV,
            "",
            "/api/v2/request",
            json!({"justification": "Right-size: remove nothing, add sqs", "changes": {"changes": [
                {"change_type": "inline_policy",
                 "principal": {"principal_type": "AwsResource", "principal_arn": w.role_arn("app")},
                 "policy_name": "queue", "action": "attach",
                 "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                     {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "Resource": "*"}]}}}]}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    let id = created["request_id"].as_str().expect("id").to_string();
    w.approve(&id).await;
    assert_eq!(w.actions("app", "queue").await, vec!["sqs:ReceiveMessage"]);
    assert_eq!(w.actions("app", "base").await, vec!["s3:GetObject"]);

    let resp = w
        .post(
            DEV,
            "",
            &format!("/api/v2/rightsize/{id}/rollback"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let body = resp.text().await.unwrap_or_default();
    assert!(body.contains("not a right-size proposal"), "{body}");
}
