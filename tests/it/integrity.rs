//! Request integrity: what a reviewer approves is exactly what gets applied. Each attack a plain
//! user (or an admin deciding alone) could try is refused on both stores, and for every change
//! type the IAM calls moto received equal the calls the review showed.

use iamdesk::cloud::IamOp;
use iamdesk::resources::model::Tag;
use iamdesk::store::{PageRequest, RequestStatus};
use serde_json::{Value, json};

use crate::requests::{
    ADMIN, Backends, DEV, OTHER_ADMIN, World, count_requests, create_ok, post_request, world_on,
    world_tuned,
};
use crate::support::{create_role, moto_endpoint};

fn body(changes: Vec<Value>) -> Value {
    json!({"justification": "ticket OPS-7", "changes": {"changes": changes}})
}

/// The 400's `errors[].field`s.
async fn refused_fields(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["message"]))
                .collect()
        })
        .unwrap_or_default()
}

async fn policy_exists(w: &World, role: &str, name: &str) -> bool {
    w.iam
        .get_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn attacks_on_the_change_model_are_refused() {
    let Some(w) = world_tuned(Backends::Embedded, with_reviewers).await else {
        return;
    };
    attacks(w).await;
}

#[tokio::test]
async fn attacks_on_the_change_model_are_refused_on_dynamodb_and_redis() {
    let Some(w) = world_tuned(Backends::DynamoRedis, with_reviewers).await else {
        return;
    };
    attacks(w).await;
}

/// Reviewers with an address, so notifications have somebody to go to.
fn with_reviewers(c: &mut iamdesk::config::Config) {
    c.groups.fallback_policy_request_reviewers = vec!["reviewers@example.com".into()];
}

async fn attacks(w: World) {
    let before = count_requests(&w).await;
    let account = w.account.clone();

    // 1. A create_role carrying its own resolved_clone (with or without clone_from).
    let hidden = json!({"change_type": "create_role", "account_id": account,
        "role_name": "innocent", "policy": {"policy_document": {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}},
        "resolved_clone": {"from": w.arn(),
            "managed_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"],
            "tags": [{"key": "consoleme-authorized", "value": DEV}]}});
    let fields =
        refused_fields(post_request(&w, DEV, "dev", body(vec![hidden.clone()])).await).await;
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("changes[0].resolved_clone: ")),
        "{fields:?}"
    );
    let mut with_clone = hidden.clone();
    with_clone["clone_from"] = json!(w.arn());
    with_clone["copy_tags"] = json!(true);
    with_clone.as_object_mut().map(|o| o.remove("policy"));
    with_clone["copy_trust"] = json!(true);
    let fields = refused_fields(post_request(&w, DEV, "dev", body(vec![with_clone])).await).await;
    assert!(
        fields.iter().any(|f| f.contains("resolved_clone")),
        "{fields:?}"
    );

    // 2. An unknown key, and a server-owned one.
    let mut unknown = w.inline("x", "attach");
    unknown["apply_also"] = json!("arn:aws:iam::aws:policy/AdministratorAccess");
    unknown["status"] = json!("applied");
    let fields = refused_fields(post_request(&w, DEV, "dev", body(vec![unknown])).await).await;
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("changes[0].apply_also: ")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("changes[0].status: ")),
        "{fields:?}"
    );

    // 3. A made-up path or another case for a synced role.
    for arn in [
        format!("arn:aws:iam::{account}:role/ops/app"),
        format!("arn:aws:iam::{account}:role/APP"),
    ] {
        let mut change = w.inline("x", "attach");
        change["principal"]["principal_arn"] = json!(arn);
        let fields = refused_fields(post_request(&w, DEV, "dev", body(vec![change])).await).await;
        assert!(
            fields
                .iter()
                .any(|f| f.contains("does not match the synced role") && f.contains(&w.arn())),
            "{arn}: {fields:?}"
        );
    }

    // 4. iamdesk's own spoke role, named plainly or as if it were a sub-part of `app`.
    create_role(&w.iam, "iamdesk-spoke", &[]).await;
    iamdesk::resources::sync::run(&w.app.state.resource_deps())
        .await
        .expect("sync");
    for arn in [
        format!("arn:aws:iam::{account}:role/iamdesk-spoke"),
        format!("arn:aws:iam::{account}:role/app/iamdesk-spoke"),
    ] {
        let mut change = w.inline("x", "attach");
        change["principal"]["principal_arn"] = json!(arn);
        let fields = refused_fields(post_request(&w, DEV, "dev", body(vec![change])).await).await;
        assert!(
            fields
                .iter()
                .any(|f| f.contains("never changes its own roles")),
            "{arn}: {fields:?}"
        );
    }
    assert_eq!(count_requests(&w).await, before, "nothing was stored");
    assert!(!policy_exists(&w, "iamdesk-spoke", "x").await);

    // 5. Edit after the reviewer opened the request: the reviewer's approval is refused.
    let id = create_ok(&w, DEV, "dev", body(vec![w.inline("reports", "attach")])).await;
    let seen = w.request(&id).await.version;
    let change_id = w.request(&id).await.changes.changes[0].id().to_string();
    let admin_doc = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let resp = w
        .act(
            DEV,
            "dev",
            &id,
            json!({"command": "update_change", "change_id": change_id,
                                      "policy_document": admin_doc}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request", "version": seen}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("changed since you opened it"),
        "the 409 says why"
    );
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request"}),
        )
        .await;
    assert_eq!(resp.status(), 409, "no version after an edit: refused");
    assert!(
        !policy_exists(&w, "app", "reports").await,
        "nothing applied"
    );
    assert_eq!(w.request(&id).await.status, RequestStatus::Pending);
    // The edit is in the history and the reviewers were told.
    let page = w.page(OTHER_ADMIN, "admins", &id).await;
    assert!(page.contains("edited change 1"), "history shows the edit");
    let mail = w
        .app
        .state
        .store
        .list_outbox(None, &PageRequest::first(100))
        .await
        .expect("outbox")
        .items;
    assert!(
        mail.iter().any(|m| m.payload["request_id"] == id.as_str()
            && m.payload["subject"]
                .as_str()
                .is_some_and(|s| s.ends_with("has been updated"))),
        "reviewers are notified of the edit"
    );

    // 6. An admin edits someone else's request, then approves it: 403, audited. Another admin,
    // with the version they reviewed, may.
    let id = create_ok(&w, DEV, "dev", body(vec![w.inline("narrow", "attach")])).await;
    let change_id = w.request(&id).await.changes.changes[0].id().to_string();
    let narrow = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports"}]});
    let resp = w
        .act(
            ADMIN,
            "admins",
            &id,
            json!({"command": "update_change", "change_id": change_id,
                                           "policy_document": narrow}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let version = w.request(&id).await.version;
    for command in ["approve_request", "reject_request"] {
        let resp = w
            .act(
                ADMIN,
                "admins",
                &id,
                json!({"command": command, "version": version}),
            )
            .await;
        assert_eq!(resp.status(), 403, "{command}");
    }
    let refused = w
        .app
        .state
        .store
        .list_audit(Some(&id), &PageRequest::first(50))
        .await
        .expect("audit")
        .items
        .iter()
        .filter(|e| e.action == "request.self_approval_refused" && e.actor == ADMIN)
        .count();
    assert_eq!(refused, 2, "both refusals are audited");
    assert!(!policy_exists(&w, "app", "narrow").await);
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request", "version": version}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(policy_exists(&w, "app", "narrow").await);

    // 7. While an approval applies: cancel and edit get 409, a comment is kept, and what AWS
    // applied is recorded with its audit event.
    cancel_during_apply(&w).await;
}

async fn cancel_during_apply(w: &World) {
    for attempt in 0..5 {
        let changes: Vec<Value> = (0..25)
            .map(|i| w.inline(&format!("bulk{attempt}-{i}"), "attach"))
            .collect();
        let id = create_ok(w, DEV, "dev", body(changes)).await;
        let version = w.request(&id).await.version;
        let change_id = w.request(&id).await.changes.changes[0].id().to_string();
        let approve = {
            let (client, url) = (
                w.app.client.clone(),
                w.app.url(&format!("/api/v2/requests/{id}")),
            );
            let csrf = w.csrf.clone();
            tokio::spawn(async move {
                client
                    .put(url)
                    .header("x-user", OTHER_ADMIN)
                    .header("x-groups", "admins")
                    .header("cookie", &csrf.0)
                    .header("x-csrf-token", &csrf.1)
                    .json(&json!({"modification_model":
                        {"command": "approve_request", "version": version}}))
                    .send()
                    .await
                    .expect("PUT")
                    .status()
            })
        };
        // Wait for the claim.
        let mut claimed = false;
        for _ in 0..2000 {
            let r = w.request(&id).await;
            if r.applying.is_some() {
                claimed = true;
                break;
            }
            if r.status != RequestStatus::Pending {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if !claimed || w.request(&id).await.applying.is_none() {
            // The approval finished before we looked: try again with a fresh request.
            assert_eq!(approve.await.expect("join"), 200);
            continue;
        }
        let cancel = w
            .act(DEV, "dev", &id, json!({"command": "cancel_request"}))
            .await;
        let edit = w
            .act(
                DEV,
                "dev",
                &id,
                json!({"command": "update_change", "change_id": change_id,
                "policy_document": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*"}]}}),
            )
            .await;
        let comment = w
            .act(
                DEV,
                "dev",
                &id,
                json!({"command": "add_comment", "comment_text": "while applying"}),
            )
            .await;
        let finished = approve.await.expect("join");
        let r = w.request(&id).await;
        if r.status == RequestStatus::Approved && cancel.status() == 200 {
            panic!("a cancel during the apply succeeded");
        }
        assert_eq!(cancel.status(), 409, "cancel while applying");
        assert_eq!(edit.status(), 409, "edit while applying");
        assert_eq!(comment.status(), 200, "comments are taken while applying");
        assert_eq!(finished, 200);
        assert_eq!(r.status, RequestStatus::Approved);
        assert!(r.applying.is_none());
        assert_eq!(r.results.len(), 25);
        assert!(
            r.comments.iter().any(|c| c.text == "while applying"),
            "the comment is kept"
        );
        let audit = w
            .app
            .state
            .store
            .list_audit(Some(&id), &PageRequest::first(50))
            .await
            .expect("audit")
            .items;
        assert!(audit.iter().any(|e| e.action == "request.approved"));
        assert!(policy_exists(w, "app", &format!("bulk{attempt}-24")).await);
        return;
    }
    panic!("never caught an approval while it applied");
}

// ------------------------------------------------------------------------------------------
// Review equals apply

/// The IAM writes moto recorded for `roles`, in order, as `IamOp`s.
fn recorded_writes(recording: &str, roles: &[String]) -> Vec<IamOp> {
    let mut out = vec![];
    for form in crate::support::recorded_forms(recording) {
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let Some(role) = get("RoleName").filter(|r| roles.contains(r)) else {
            continue;
        };
        let doc = |k: &str| -> Value {
            serde_json::from_str(&get(k).unwrap_or_default()).expect("a JSON document")
        };
        let list = |prefix: &str| -> Vec<(String, String)> {
            let mut items = vec![];
            for n in 1.. {
                let key = get(&format!("{prefix}.member.{n}.Key"));
                let plain = get(&format!("{prefix}.member.{n}"));
                match (key, plain) {
                    (Some(k), _) => items.push((
                        k,
                        get(&format!("{prefix}.member.{n}.Value")).unwrap_or_default(),
                    )),
                    (None, Some(v)) => items.push((v, String::new())),
                    (None, None) => break,
                }
            }
            items
        };
        let tags = |prefix: &str| -> Vec<Tag> {
            list(prefix)
                .into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect()
        };
        let op = match get("Action").unwrap_or_default().as_str() {
            "PutRolePolicy" => IamOp::PutRolePolicy {
                role,
                policy_name: get("PolicyName").unwrap_or_default(),
                document: doc("PolicyDocument"),
            },
            "DeleteRolePolicy" => IamOp::DeleteRolePolicy {
                role,
                policy_name: get("PolicyName").unwrap_or_default(),
            },
            "AttachRolePolicy" => IamOp::AttachRolePolicy {
                role,
                policy_arn: get("PolicyArn").unwrap_or_default(),
            },
            "DetachRolePolicy" => IamOp::DetachRolePolicy {
                role,
                policy_arn: get("PolicyArn").unwrap_or_default(),
            },
            "PutRolePermissionsBoundary" => IamOp::PutRolePermissionsBoundary {
                role,
                policy_arn: get("PermissionsBoundary").unwrap_or_default(),
            },
            "DeleteRolePermissionsBoundary" => IamOp::DeleteRolePermissionsBoundary { role },
            "UpdateAssumeRolePolicy" => IamOp::UpdateAssumeRolePolicy {
                role,
                document: doc("PolicyDocument"),
            },
            "TagRole" => IamOp::TagRole {
                role,
                tags: tags("Tags"),
            },
            "UntagRole" => IamOp::UntagRole {
                role,
                keys: list("TagKeys").into_iter().map(|(k, _)| k).collect(),
            },
            "CreateRole" => IamOp::CreateRole {
                role,
                path: get("Path").unwrap_or_else(|| "/".into()),
                description: get("Description"),
                trust: doc("AssumeRolePolicyDocument"),
                tags: tags("Tags"),
            },
            _ => continue, // reads (sync, refresh) are not writes
        };
        out.push(op);
    }
    out
}

#[tokio::test]
async fn every_change_type_applies_exactly_the_calls_the_review_shows() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let Some(w) = world_on(Backends::Embedded).await else {
        return;
    };
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let target = format!("rea-{suffix}");
    let source = format!("src-{suffix}");
    let copy = format!("copy-{suffix}");
    let fresh = format!("new-{suffix}");
    let account = w.account.clone();
    let arn = |name: &str| format!("arn:aws:iam::{account}:role/{name}");
    create_role(&w.iam, &target, &[("owner", "data"), ("stale", "x")]).await;
    create_role(
        &w.iam,
        &source,
        &[("team", "data"), ("consoleme-authorized", "data-eng")],
    )
    .await;
    let mut managed = vec![];
    for name in ["boundary", "extra", "more"] {
        let p = w
            .iam
            .create_policy()
            .policy_name(format!("{name}-{suffix}"))
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
            .send()
            .await
            .expect("policy");
        managed.push(p.policy().and_then(|p| p.arn()).expect("arn").to_string());
    }
    let (boundary, extra, more) = (managed[0].clone(), managed[1].clone(), managed[2].clone());
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"}]}"#;
    for role in [&target, &source] {
        w.iam
            .put_role_policy()
            .role_name(role)
            .policy_name("old")
            .policy_document(doc)
            .send()
            .await
            .expect("put");
        w.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(&extra)
            .send()
            .await
            .expect("attach");
        w.iam
            .put_role_permissions_boundary()
            .role_name(role)
            .permissions_boundary(&boundary)
            .send()
            .await
            .expect("boundary");
    }
    iamdesk::resources::sync::run(&w.app.state.resource_deps())
        .await
        .expect("sync");

    let principal = json!({"principal_type": "AwsResource", "principal_arn": arn(&target)});
    let read = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::r/*"}]});
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let requests: Vec<(&str, Value)> = vec![
        (
            "inline put",
            json!({"change_type": "inline_policy", "principal": principal,
            "policy_name": "read", "action": "attach", "policy": {"policy_document": read}}),
        ),
        (
            "inline delete",
            json!({"change_type": "inline_policy", "principal": principal,
            "policy_name": "old", "action": "detach"}),
        ),
        (
            "managed attach",
            json!({"change_type": "managed_policy", "principal": principal,
            "arn": more, "action": "attach"}),
        ),
        (
            "managed detach",
            json!({"change_type": "managed_policy", "principal": principal,
            "arn": extra, "action": "detach"}),
        ),
        (
            "boundary delete",
            json!({"change_type": "permissions_boundary", "principal": principal,
            "action": "detach"}),
        ),
        (
            "boundary put",
            json!({"change_type": "permissions_boundary", "principal": principal,
            "arn": boundary, "action": "attach"}),
        ),
        (
            "trust",
            json!({"change_type": "assume_role_policy", "principal": principal,
            "policy": {"policy_document": trust}}),
        ),
        (
            "tag create",
            json!({"change_type": "resource_tag", "principal": principal,
            "key": "cost", "value": "42", "tag_action": "create"}),
        ),
        (
            "tag update",
            json!({"change_type": "resource_tag", "principal": principal,
            "key": "owner", "value": "platform", "tag_action": "update"}),
        ),
        (
            "tag delete",
            json!({"change_type": "resource_tag", "principal": principal,
            "key": "stale", "tag_action": "delete"}),
        ),
        (
            "create role",
            json!({"change_type": "create_role", "account_id": account,
            "role_name": fresh, "path": "/svc/", "description": "made by the test",
            "policy": {"policy_document": trust},
            "inline_policies": [{"policy_name": "read", "policy_document": read}]}),
        ),
        (
            "clone",
            json!({"change_type": "create_role", "account_id": account,
            "role_name": copy, "clone_from": arn(&source), "copy_trust": true,
            "copy_inline": true, "copy_managed": true, "copy_tags": true}),
        ),
    ];

    let http = reqwest::Client::new();
    http.post(format!("{endpoint}/moto-api/recorder/start-recording"))
        .send()
        .await
        .expect("start recording");
    let mut shown: Vec<IamOp> = vec![];
    for (what, change) in requests {
        let id = create_ok(&w, DEV, "dev", body(vec![change])).await;
        let view: Value = w
            .get_as(OTHER_ADMIN, "admins", &format!("/api/v2/requests/{id}"))
            .await
            .json()
            .await
            .expect("json");
        let calls: Vec<IamOp> =
            serde_json::from_value(view["plan"][0]["calls"].clone()).expect("plan calls");
        assert!(!calls.is_empty(), "{what}: the review lists its calls");
        // The page shows the same calls.
        let page = w.page(OTHER_ADMIN, "admins", &id).await;
        for call in &calls {
            assert!(
                page.contains(call.action()),
                "{what}: the page shows {}",
                call.action()
            );
        }
        let resp = w
            .act(
                OTHER_ADMIN,
                "admins",
                &id,
                json!({"command": "approve_request", "version": view["version"]}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{what}");
        let done = w.request(&id).await;
        assert_eq!(
            done.status,
            RequestStatus::Approved,
            "{what}: {:?}",
            done.results
        );
        shown.extend(calls);
    }
    let recording = http
        .get(format!("{endpoint}/moto-api/recorder/download-recording"))
        .send()
        .await
        .expect("download")
        .text()
        .await
        .expect("text");
    // Other tests share this moto: stop recording for them (best effort).
    let _ = http
        .post(format!("{endpoint}/moto-api/recorder/stop-recording"))
        .send()
        .await;
    let made = recorded_writes(&recording, &[target.clone(), copy.clone(), fresh.clone()]);
    assert_eq!(made, shown, "the calls made are exactly the calls shown");
    // Every kind of call was exercised.
    let kinds: std::collections::BTreeSet<&str> = made.iter().map(IamOp::action).collect();
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    // The clone's copies are among them.
    assert!(made.iter().any(|op| matches!(op,
        IamOp::CreateRole { role, tags, .. } if *role == copy
            && tags.iter().any(|t| t.key == "consoleme-authorized"))));
    assert!(made.iter().any(|op| matches!(op,
        IamOp::AttachRolePolicy { role, policy_arn } if *role == copy && *policy_arn == extra)));
}

// ------------------------------------------------------------------------------------------
// Comments

#[tokio::test]
async fn a_full_comment_thread_never_stops_an_approval_on_dynamodb() {
    // 90 comments of 5,000 characters: 450 KB of discussion, past DynamoDB's 400 KB item limit
    // (the default limit, 200, only takes longer to fill).
    let Some(w) = world_tuned(Backends::DynamoRedis, |c| c.policies.max_comments = 90).await else {
        return;
    };
    let id = create_ok(
        &w,
        DEV,
        "dev",
        body(vec![w.inline("talked-about", "attach")]),
    )
    .await;
    let version = w.request(&id).await.version;
    let long = "x".repeat(5000);
    for i in 0..90 {
        let who = if i % 2 == 0 { DEV } else { ADMIN };
        let resp = w
            .act(
                who,
                "dev",
                &id,
                json!({"command": "add_comment", "comment_text": long}),
            )
            .await;
        assert_eq!(resp.status(), 200, "comment {i}");
    }
    let resp = w
        .act(
            DEV,
            "dev",
            &id,
            json!({"command": "add_comment", "comment_text": "one more"}),
        )
        .await;
    assert_eq!(resp.status(), 409, "the 91st comment");
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("policies.max_comments"),
        "the 409 names the limit"
    );
    let too_long = "y".repeat(5001);
    let resp = w
        .act(
            DEV,
            "dev",
            &id,
            json!({"command": "add_comment", "comment_text": too_long}),
        )
        .await;
    assert_eq!(resp.status(), 400, "5,001 characters");
    let r = w.request(&id).await;
    assert_eq!(r.comments.len(), 90);
    assert_eq!(
        r.version, version,
        "comments never move the version a reviewer saw"
    );
    let resp = w
        .act(
            OTHER_ADMIN,
            "admins",
            &id,
            json!({"command": "approve_request", "version": version}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);
    assert!(policy_exists(&w, "app", "talked-about").await);
}

// ------------------------------------------------------------------------------------------
// The record step: AWS was changed, the Store refuses the write (issue 22 item 4)

/// Arm a DynamoDB fault in moto (scripts/moto_server.py, 6.): `operation` calls whose body holds
/// every string of `contains` are answered with `error`, `times` times (None: until cleared).
async fn arm_fault(operation: &str, contains: &[&str], error: &str, times: Option<u32>) {
    let moto = moto_endpoint().expect("moto");
    let resp = reqwest::Client::new()
        .post(format!("{moto}/iamdesk-test/dynamodb-faults"))
        .json(
            &json!({"operation": operation, "contains": contains, "error": error, "times": times}),
        )
        .send()
        .await
        .expect("arm a fault");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

/// Clear the faults armed for `key`; the number of calls they refused.
async fn clear_faults(key: &str) -> u64 {
    let moto = moto_endpoint().expect("moto");
    let http = reqwest::Client::new();
    let armed: Vec<Value> = http
        .get(format!("{moto}/iamdesk-test/dynamodb-faults"))
        .send()
        .await
        .expect("faults")
        .json()
        .await
        .expect("faults json");
    let hits = armed
        .iter()
        .filter(|f| {
            f["contains"]
                .as_array()
                .is_some_and(|c| c.iter().any(|s| s == key))
        })
        .filter_map(|f| f["hits"].as_u64())
        .sum();
    http.delete(format!(
        "{moto}/iamdesk-test/dynamodb-faults?contains={key}"
    ))
    .send()
    .await
    .expect("clear faults");
    hits
}

async fn approvals_recorded(w: &World, id: &str) -> usize {
    crate::expiry::audit_actions(w, id)
        .await
        .iter()
        .filter(|a| *a == "request.approved")
        .count()
}

/// A pending request for a new inline policy `policy` on `app`, with the write that records its
/// approval refused by moto with `error` (`times`: None = until cleared); its id and version.
async fn refused_record(w: &World, policy: &str, error: &str, times: Option<u32>) -> (String, u64) {
    let id = create_ok(w, DEV, "dev", body(vec![w.inline(policy, "attach")])).await;
    let version = w.request(&id).await.version;
    // The record is one transaction: the request, its `request.approved` audit event, the outbox.
    arm_fault(
        "TransactWriteItems",
        &[&id, "request.approved"],
        error,
        times,
    )
    .await;
    (id, version)
}

fn approve_at(version: u64) -> Value {
    json!({"command": "approve_request", "version": version})
}

/// Wait until the request is recorded approved (claim released), then check it was recorded
/// once and the policy is in IAM.
async fn recorded_once(w: &World, id: &str, policy: &str) {
    let started = std::time::Instant::now();
    loop {
        let r = w.request(id).await;
        if r.status == RequestStatus::Approved {
            assert!(r.applying.is_none(), "the claim is released");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the applied approval was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(policy_exists(w, "app", policy).await);
    assert_eq!(approvals_recorded(w, id).await, 1, "recorded once");
}

#[tokio::test]
async fn a_throttled_record_step_is_retried_while_the_approver_waits() {
    let Some(w) = world_on(Backends::DynamoRedis).await else {
        return;
    };
    // Throttled four times: the SDK's own three attempts, then one of iamdesk's retries.
    let (id, version) =
        refused_record(&w, "throttled-record", "ThrottlingException", Some(4)).await;
    let resp = w.act(ADMIN, "admins", &id, approve_at(version)).await;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(clear_faults(&id).await, 4, "every armed refusal was met");
    assert_eq!(status, 200, "{text}");
    recorded_once(&w, &id, "throttled-record").await;
}

#[tokio::test]
async fn an_applied_approval_the_store_refuses_is_recorded_once_it_accepts_again() {
    let Some(w) = world_tuned(Backends::DynamoRedis, |c| c.outbox.poll_seconds = 1).await else {
        return;
    };
    // The central role loses dynamodb:TransactWriteItems on the record for longer than the
    // approver waits (not an error the SDK retries, so the test waits iamdesk's own 10 s).
    let (id, version) = refused_record(&w, "late-record", "AccessDeniedException", None).await;
    let resp = w.act(ADMIN, "admins", &id, approve_at(version)).await;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("applied in AWS") && text.contains("keeps trying"),
        "the approver is told what happened: {text}"
    );
    assert!(
        policy_exists(&w, "app", "late-record").await,
        "AWS was changed"
    );
    assert_eq!(
        w.request(&id).await.status,
        RequestStatus::Pending,
        "not recorded yet"
    );
    // A second approver is not let to apply it again meanwhile: the claim still holds.
    let again = w.act(OTHER_ADMIN, "admins", &id, approve_at(version)).await;
    assert_ne!(
        again.status(),
        200,
        "no second apply while the first is unrecorded"
    );
    assert!(
        clear_faults(&id).await >= 5,
        "iamdesk kept trying while the approver waited"
    );
    // The outbox worker (a pass every second here) records it now that the Store accepts.
    let worker = tokio::spawn(iamdesk::notify::worker::run(w.app.state.0.clone()));
    recorded_once(&w, &id, "late-record").await;
    worker.abort();
}

#[tokio::test]
async fn an_approver_who_hangs_up_mid_record_loses_nothing() {
    let Some(w) = world_tuned(Backends::DynamoRedis, |c| c.outbox.poll_seconds = 1).await else {
        return;
    };
    let (id, version) = refused_record(&w, "hung-up", "AccessDeniedException", None).await;
    // The approver's connection closes while iamdesk retries the record (a closed tab, a proxy's
    // timeout): the server drops the request, not the work.
    let (cookie, token) = &w.csrf;
    let hung_up = reqwest::Client::new()
        .put(w.app.url(&format!("/api/v2/requests/{id}")))
        .header("x-user", ADMIN)
        .header("x-groups", "admins")
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .json(&json!({"modification_model": approve_at(version)}))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    if let Ok(resp) = hung_up {
        panic!(
            "the client gave up first: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    assert!(policy_exists(&w, "app", "hung-up").await, "AWS was changed");
    assert!(clear_faults(&id).await >= 1);
    // The approval's own task lands it once the Store accepts (or, on a slow machine past its
    // 10 s, hands it to the outbox worker). Without that task nothing would: the work died
    // with the connection.
    let worker = tokio::spawn(iamdesk::notify::worker::run(w.app.state.0.clone()));
    recorded_once(&w, &id, "hung-up").await;
    worker.abort();
}
