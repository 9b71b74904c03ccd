//! Break-glass against moto: only members, only temporary grants within `break_glass.max_hours`,
//! applied at once with an alert to every admin, queued for review, revocable early, capped
//! per day.

use iamdesk::store::{PageRequest, RequestStatus};
use serde_json::{Value, json};

use crate::requests::{ADMIN, Backends, World, count_requests, post_request, world_tuned};

const ONCALL: &str = "oncall@example.com";
const ADMIN2: &str = "admin2@example.com";

fn tune(c: &mut iamdesk::config::Config) {
    c.groups.can_break_glass = vec!["oncall".into()];
    c.groups.can_admin_policies = vec![ADMIN.into(), ADMIN2.into()];
    c.break_glass.max_per_day = 2;
    c.slack.notifications_enabled = true;
    c.slack.webhook_url = Some("http://127.0.0.1:9/hook".into());
}

fn in_hours(h: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(h))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn glass(w: &World, name: &str, expires: &str) -> Value {
    let mut change = w.inline(name, "attach");
    change["expiration_date"] = json!(expires);
    json!({"justification": "payments are failing in production",
           "break_glass": {"reason": "INC-4711: payments failing, need to read the queue now"},
           "changes": {"changes": [change]}})
}

async fn applied(w: &World, name: &str) -> bool {
    w.iam
        .get_role_policy()
        .role_name("app")
        .policy_name(name)
        .send()
        .await
        .is_ok()
}

async fn queue(w: &World) -> Vec<String> {
    let listed: Value = w
        .get_as(ADMIN, "admins", "/api/v2/requests?needs_review=1")
        .await
        .json()
        .await
        .expect("json");
    listed["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn break_glass_applies_at_once_alerts_admins_and_waits_for_review() {
    let Some(w) = world_tuned(Backends::Embedded, tune).await else {
        return;
    };
    let before = count_requests(&w).await;

    // Not a member: 403, nothing stored or applied, the attempt audited.
    let resp = post_request(
        &w,
        "dev@example.com",
        "dev",
        glass(&w, "bg-dev", &in_hours(2)),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(count_requests(&w).await, before);
    assert!(!applied(&w, "bg-dev").await);
    let refused = w
        .app
        .state
        .store
        .list_audit(None, &PageRequest::first(50))
        .await
        .expect("audit")
        .items
        .iter()
        .any(|e| e.action == "break_glass.refused" && e.actor == "dev@example.com");
    assert!(refused);

    // A member, but too long or not a temporary grant: 400 naming the field.
    let resp = post_request(&w, ONCALL, "oncall", glass(&w, "bg-long", &in_hours(8))).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("break_glass.max_hours")
    );
    let mut trust = glass(&w, "x", &in_hours(1));
    trust["changes"]["changes"][0] = json!({"change_type": "assume_role_policy",
        "principal": {"principal_type": "AwsResource", "principal_arn": w.arn()},
        "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}});
    assert_eq!(
        post_request(&w, ONCALL, "oncall", trust).await.status(),
        400
    );
    let mut short = glass(&w, "bg-short", &in_hours(1));
    short["break_glass"]["reason"] = json!("urgent");
    assert_eq!(
        post_request(&w, ONCALL, "oncall", short).await.status(),
        400
    );
    assert_eq!(count_requests(&w).await, before);

    // The real thing: applied at once, every admin alerted by mail and Slack.
    let resp = post_request(&w, ONCALL, "oncall", glass(&w, "bg-read", &in_hours(2))).await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.expect("json");
    assert_eq!(created["status"], "approved");
    let id = created["request_id"].as_str().expect("id").to_string();
    assert!(applied(&w, "bg-read").await);
    let outbox = w
        .app
        .state
        .store
        .list_outbox(None, &PageRequest::first(100))
        .await
        .expect("outbox")
        .items;
    let alert = outbox
        .iter()
        .find(|m| {
            m.channel == "email"
                && m.payload["request_id"] == id.as_str()
                && m.payload["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("BREAK-GLASS"))
        })
        .expect("a BREAK-GLASS mail");
    let to: Vec<&str> = alert.payload["to"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(to.contains(&ADMIN) && to.contains(&ADMIN2), "{to:?}");
    assert!(
        outbox.iter().any(|m| m.channel == "slack"
            && m.payload["request_id"] == id.as_str()
            && m.payload["body"].to_string().contains("BREAK-GLASS")),
        "and Slack"
    );

    // In the queue until an admin (not the requester) marks it reviewed.
    assert!(queue(&w).await.contains(&id));
    let page = w.page(ADMIN, "admins", &id).await;
    assert!(page.contains("BREAK-GLASS") && page.contains("Mark reviewed"));
    let resp = w
        .act(
            ONCALL,
            "oncall,admins",
            &id,
            json!({"command": "mark_reviewed"}),
        )
        .await;
    assert_eq!(resp.status(), 403, "not one's own");
    let resp = w
        .act(ADMIN, "admins", &id, json!({"command": "mark_reviewed"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(!queue(&w).await.contains(&id));
    assert!(
        applied(&w, "bg-read").await,
        "reviewed, still there until it expires"
    );

    // Revoked early: the grant is taken away now.
    let resp = post_request(&w, ONCALL, "oncall", glass(&w, "bg-early", &in_hours(3))).await;
    assert_eq!(resp.status(), 200);
    let id2: Value = resp.json().await.expect("json");
    let id2 = id2["request_id"].as_str().expect("id").to_string();
    assert!(applied(&w, "bg-early").await);
    let resp = w
        .act(ADMIN2, "admins", &id2, json!({"command": "revoke_now"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(!applied(&w, "bg-early").await, "revoked early");
    let r = w.request(&id2).await;
    assert_eq!(r.status, RequestStatus::Approved);
    assert_eq!(r.grant_outcomes[0].outcome, "expired");
    assert_eq!(
        r.break_glass.and_then(|b| b.reviewed_by).as_deref(),
        Some(ADMIN2)
    );

    // At most two a day per person.
    let resp = post_request(&w, ONCALL, "oncall", glass(&w, "bg-third", &in_hours(1))).await;
    assert_eq!(resp.status(), 429);
    assert!(!applied(&w, "bg-third").await);
}
