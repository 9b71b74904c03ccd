//! Expiring grants against moto: taken away on time, drift left alone, ConsoleMe's temporary
//! policies honoured, expirations required where configured. Time is moved with the app's clock
//! skew (`App::clock_skew_seconds`), never slept.

use iamdesk::store::{PageRequest, RequestStatus};
use serde_json::{Value, json};

use crate::requests::{Backends, DEV, OTHER_ADMIN, World, create_ok, post_request, world_tuned};

fn in_minutes(m: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(m))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn doc(action: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": "arn:aws:s3:::reports/*"}]})
}

fn expiring_inline(w: &World, name: &str, expires: &str) -> Value {
    json!({"justification": "on-call access for the night", "changes": {"changes": [
        {"change_type": "inline_policy", "policy_name": name, "action": "attach",
         "principal": {"principal_type": "AwsResource", "principal_arn": w.arn()},
         "policy": {"policy_document": doc("s3:GetObject")}, "expiration_date": expires}]}})
}

/// Approve the version stored now, as another admin: 200, and the request is approved.
pub(crate) async fn approve(w: &World, id: &str) {
    let version = w.request(id).await.version;
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            id,
            json!({"command": "approve_request", "version": version}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(w.request(id).await.status, RequestStatus::Approved);
}

async fn inline_doc(w: &World, name: &str) -> Option<Value> {
    let got = w
        .iam
        .get_role_policy()
        .role_name("app")
        .policy_name(name)
        .send()
        .await
        .ok()?;
    serde_json::from_str(&urlencoding::decode(got.policy_document()).ok()?).ok()
}

/// Move the background jobs' clock forward and run one outbox pass (what the worker does every
/// `outbox.poll_seconds`).
pub(crate) async fn later(w: &World, minutes: i64) {
    w.app
        .state
        .clock_skew_seconds
        .fetch_add(minutes * 60, std::sync::atomic::Ordering::Relaxed);
    iamdesk::notify::worker::deliver_due(&w.app.state)
        .await
        .expect("outbox pass");
}

/// A request's audit actions, newest first.
pub(crate) async fn audit_actions(w: &World, id: &str) -> Vec<String> {
    w.app
        .state
        .store
        .list_audit(Some(id), &PageRequest::first(100))
        .await
        .expect("audit")
        .items
        .into_iter()
        .map(|e| e.action)
        .collect()
}

fn reviewers(c: &mut iamdesk::config::Config) {
    c.groups.fallback_policy_request_reviewers = vec!["reviewers@example.com".into()];
    c.policies.expiry_reminder_hours = 1;
}

#[tokio::test]
async fn an_expiring_grant_is_taken_away_on_time() {
    let Some(w) = world_tuned(Backends::Embedded, reviewers).await else {
        return;
    };
    expires_on_time(w).await;
}

#[tokio::test]
async fn an_expiring_grant_is_taken_away_on_time_on_dynamodb_and_redis() {
    let Some(w) = world_tuned(Backends::DynamoRedis, reviewers).await else {
        return;
    };
    expires_on_time(w).await;
}

async fn expires_on_time(w: World) {
    let id = create_ok(
        &w,
        DEV,
        "dev",
        expiring_inline(&w, "night-shift", &in_minutes(120)),
    )
    .await;
    // The review shows when it goes.
    let page = w.page(OTHER_ADMIN, "admins", &id).await;
    assert!(
        page.contains("expires "),
        "the request page shows the expiry"
    );
    approve(&w, &id).await;
    assert!(inline_doc(&w, "night-shift").await.is_some(), "applied");
    // The role page says it expires.
    let role_page = w
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
        role_page.contains("inline policy night-shift — expires"),
        "{role_page}"
    );

    // An hour early: still there. Past its time: gone within one worker pass.
    later(&w, 60).await;
    assert!(
        inline_doc(&w, "night-shift").await.is_some(),
        "not before its time"
    );
    later(&w, 61).await;
    assert!(
        inline_doc(&w, "night-shift").await.is_none(),
        "taken away on time"
    );
    let r = w.request(&id).await;
    assert_eq!(r.grant_outcomes.len(), 1);
    assert_eq!(r.grant_outcomes[0].outcome, "expired");
    assert!(
        audit_actions(&w, &id)
            .await
            .contains(&"grant.expired".to_string())
    );
    // The requester is told (and was reminded before).
    let mail: Vec<Value> = w
        .app
        .state
        .store
        .list_outbox(None, &PageRequest::first(200))
        .await
        .expect("outbox")
        .items
        .into_iter()
        .filter(|m| m.channel == "email" && m.payload["request_id"] == id.as_str())
        .map(|m| m.payload)
        .collect();
    let subjects: Vec<&str> = mail.iter().filter_map(|m| m["subject"].as_str()).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("has expired and was removed")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("expires soon")),
        "{subjects:?}"
    );
    // Running the pass again changes nothing.
    later(&w, 1).await;
    assert_eq!(w.request(&id).await.grant_outcomes.len(), 1);
}

#[tokio::test]
async fn a_grant_changed_outside_iamdesk_is_flagged_not_clobbered() {
    let Some(w) = world_tuned(Backends::Embedded, reviewers).await else {
        return;
    };
    let id = create_ok(
        &w,
        DEV,
        "dev",
        expiring_inline(&w, "drifted", &in_minutes(120)),
    )
    .await;
    approve(&w, &id).await;
    // Somebody widens the policy directly in AWS.
    w.iam
        .put_role_policy()
        .role_name("app")
        .policy_name("drifted")
        .policy_document(doc("s3:*").to_string())
        .send()
        .await
        .expect("put");
    later(&w, 121).await;
    let left = inline_doc(&w, "drifted").await.expect("left alone");
    assert_eq!(left["Statement"][0]["Action"], "s3:*");
    let r = w.request(&id).await;
    assert_eq!(r.grant_outcomes[0].outcome, "drift");
    assert!(
        r.grant_outcomes[0].detail.contains("changed outside"),
        "{:?}",
        r.grant_outcomes
    );
    assert!(
        audit_actions(&w, &id)
            .await
            .contains(&"grant.drift".to_string())
    );
    let page = w.page(DEV, "dev", &id).await;
    assert!(
        page.contains("drift: inline policy drifted was changed outside"),
        "shown on the request"
    );
}

#[tokio::test]
async fn consolemes_temporary_policies_are_deleted_on_their_day() {
    let Some(w) = world_tuned(Backends::Embedded, |c| {
        c.policies.temp_policy_support = true;
    })
    .await
    else {
        return;
    };
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y%m%d");
    let next_week = (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y%m%d");
    for name in [
        format!("cm_delete-on_{yesterday}_dev_s3"),
        format!("cm_delete-on_{next_week}_dev_sqs"),
    ] {
        w.iam
            .put_role_policy()
            .role_name("app")
            .policy_name(&name)
            .policy_document(doc("s3:GetObject").to_string())
            .send()
            .await
            .expect("put");
    }
    iamdesk::resources::sync::run(&w.app.state.resource_deps())
        .await
        .expect("sync");
    let done =
        iamdesk::requests::expiry::sweep_consoleme_temp_policies(&w.app.state, chrono::Utc::now())
            .await;
    assert_eq!(done, 1);
    assert!(
        inline_doc(&w, &format!("cm_delete-on_{yesterday}_dev_s3"))
            .await
            .is_none()
    );
    assert!(
        inline_doc(&w, &format!("cm_delete-on_{next_week}_dev_sqs"))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn expirations_are_checked_and_required_where_configured() {
    let Some(w) = world_tuned(Backends::Embedded, |c| {
        c.policies.require_expiration.accounts = vec!["spo*".into()];
        c.policies.max_expiration_days = 30;
    })
    .await
    else {
        return;
    };
    let field_of = |v: &Value| -> Vec<String> {
        v["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| format!("{}: {}", e["field"], e["message"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Required in this account (named `spoke`): a permanent grant is refused, naming the field.
    let mut permanent = expiring_inline(&w, "p", "");
    permanent["changes"]["changes"][0]
        .as_object_mut()
        .map(|o| o.remove("expiration_date"));
    let resp = post_request(&w, DEV, "dev", permanent).await;
    assert_eq!(resp.status(), 400);
    let errors = field_of(&resp.json().await.expect("json"));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("expiration_date") && e.contains("must expire")),
        "{errors:?}"
    );
    // In the past, too far, or nonsense: 400.
    for (when, needle) in [
        (in_minutes(-5), "not in the future"),
        (in_minutes(60 * 24 * 40), "more than 30 days"),
        ("soon".to_string(), "YYYYmmdd"),
    ] {
        let resp = post_request(&w, DEV, "dev", expiring_inline(&w, "p", &when)).await;
        assert_eq!(resp.status(), 400, "{when}");
        let errors = field_of(&resp.json().await.expect("json"));
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{when}: {errors:?}"
        );
    }
    // ConsoleMe's integer form works: that day at 00:00 UTC.
    let day: u64 = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y%m%d")
        .to_string()
        .parse()
        .expect("digits");
    let mut body = expiring_inline(&w, "p", "");
    body["changes"]["changes"][0]["expiration_date"] = json!(day);
    let id = create_ok(&w, DEV, "dev", body).await;
    let view: Value = w
        .get_as(DEV, "", &format!("/api/v2/requests/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let stored = view["changes"]["changes"][0]["expiration_date"]
        .as_str()
        .expect("rfc 3339");
    assert!(stored.ends_with("T00:00:00Z"), "{stored}");
    assert_eq!(view["plan"][0]["expires"], stored);
    assert!(view["plan"][0]["risk"]["level"].is_string());
}
