//! Approval rules against moto: a 2-of-group rule needs two distinct eligible people (never the
//! requester nor an editor), and two final approvals racing apply once, on both stores.

use iamdesk::store::{PageRequest, RequestStatus};
use serde_json::{Value, json};

use crate::requests::{Backends, DEV, World, create_ok, world_tuned};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const OUTSIDER: &str = "admin-only@example.com";

fn two_of_security(c: &mut iamdesk::config::Config) {
    c.approvals.rules = vec![iamdesk::config::ApprovalRule {
        name: "two-security".into(),
        matches: Default::default(),
        require: vec![iamdesk::config::Requirement {
            groups: vec!["security".into()],
            count: 2,
        }],
    }];
}

fn body(w: &World, name: &str) -> Value {
    json!({"justification": "reports for the audit", "changes": {"changes": [w.inline(name, "attach")]}})
}

async fn approve(w: &World, who: &str, groups: &str, id: &str) -> reqwest::Response {
    let version = w.request(id).await.version;
    w.act(
        who,
        groups,
        id,
        json!({"command": "approve_request", "version": version}),
    )
    .await
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

#[tokio::test]
async fn a_two_of_group_rule_needs_two_distinct_eligible_people() {
    let Some(w) = world_tuned(Backends::Embedded, two_of_security).await else {
        return;
    };
    let id = create_ok(&w, DEV, "dev,security", body(&w, "audited")).await;

    // The requester, even in the group, and an admin outside it: no.
    assert_eq!(approve(&w, DEV, "dev,security", &id).await.status(), 403);
    let resp = approve(&w, OUTSIDER, "admins", &id).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("2 more from security")
    );

    // One member: recorded, not applied; the page and the API say what is missing.
    assert_eq!(approve(&w, ALICE, "security", &id).await.status(), 200);
    assert_eq!(w.request(&id).await.status, RequestStatus::Pending);
    assert!(!applied(&w, "audited").await);
    assert_eq!(
        approve(&w, ALICE, "security", &id).await.status(),
        409,
        "twice"
    );
    let view: Value = w
        .get_as(DEV, "", &format!("/api/v2/requests/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["approval"]["rule"], "two-security");
    assert_eq!(
        view["approval"]["requirements"][0]["approved_by"],
        json!([ALICE])
    );
    assert_eq!(view["approval"]["satisfied"], false);
    let page = w.page(BOB, "security", &id).await;
    assert!(
        page.contains("1 of 2 from security"),
        "the page shows the progress"
    );
    assert!(page.contains("Still needed: 1 more from security"));

    // An admin in the group edits the change: their approval does not count, and the edit
    // voids Alice's.
    let change_id = w.request(&id).await.changes.changes[0].id().to_string();
    let narrower = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports"}]});
    let resp = w
        .act(
            BOB,
            "admins,security",
            &id,
            json!({"command": "update_change",
            "change_id": change_id, "policy_document": narrower}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        approve(&w, BOB, "admins,security", &id).await.status(),
        403,
        "the editor"
    );
    assert_eq!(
        approve(&w, ALICE, "security", &id).await.status(),
        200,
        "Alice again"
    );
    assert!(!applied(&w, "audited").await, "one valid approval so far");
    assert_eq!(approve(&w, CAROL, "security", &id).await.status(), 200);
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);
    assert!(applied(&w, "audited").await);
    let actions = crate::expiry::audit_actions(&w, &id).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "request.approved").count(),
        1
    );
    assert!(actions.iter().any(|a| a == "request.approval_recorded"));
}

#[tokio::test]
async fn two_final_approvals_racing_apply_once() {
    let Some(w) = world_tuned(Backends::Embedded, two_of_security).await else {
        return;
    };
    race(w).await;
}

#[tokio::test]
async fn two_final_approvals_racing_apply_once_on_dynamodb_and_redis() {
    let Some(w) = world_tuned(Backends::DynamoRedis, two_of_security).await else {
        return;
    };
    race(w).await;
}

async fn race(w: World) {
    for round in 0..3 {
        let name = format!("raced-{round}");
        let id = create_ok(&w, DEV, "dev", body(&w, &name)).await;
        // One approval in; the last two race.
        assert_eq!(approve(&w, ALICE, "security", &id).await.status(), 200);
        let (b, c) = tokio::join!(
            approve(&w, BOB, "security", &id),
            approve(&w, CAROL, "security", &id)
        );
        let mut statuses = [b.status().as_u16(), c.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: one completes, the other is told"
        );
        let r = w.request(&id).await;
        assert_eq!(r.status, RequestStatus::Approved, "round {round}");
        let approved = w
            .app
            .state
            .store
            .list_audit(Some(&id), &PageRequest::first(100))
            .await
            .expect("audit")
            .items
            .into_iter()
            .filter(|e| e.action == "request.approved")
            .count();
        assert_eq!(approved, 1, "round {round}: applied exactly once");
        assert!(applied(&w, &name).await);
    }
}
