//! Conformance suite shared by every [`Store`] backend. `tests/it/store.rs` runs [`run_all`]
//! against the embedded store and against DynamoDB (moto). Each check uses its own unique
//! requesters and ids, so the checks do not depend on each other or on an empty store.
#![doc(hidden)]
#![allow(clippy::missing_panics_doc)]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;

use super::*;
use crate::resources::stored::{ResourceChange, ResourceItem, ResourceWrite, WriteOutcome};

/// Run every check, in order, against one store.
pub async fn run_all(store: Arc<dyn Store>) {
    ping(store.as_ref()).await;
    create_get_round_trip(store.as_ref()).await;
    imported_request_round_trips(store.as_ref()).await;
    duplicate_create_conflicts(store.as_ref()).await;
    update_checks_version(store.as_ref()).await;
    update_missing_is_not_found(store.as_ref()).await;
    concurrent_updates_exactly_one_wins(store.clone()).await;
    list_requests_paginates_and_filters(store.as_ref()).await;
    search_by_account_and_text(store.as_ref()).await;
    postings_find_requests_by_principal_word_and_status(store.as_ref()).await;
    bad_cursor_is_invalid(store.as_ref()).await;
    audit_is_listed_newest_first(store.as_ref()).await;
    outbox_lifecycle(store.as_ref()).await;
    resources_round_trip(store.as_ref()).await;
    resource_writes_touch_only_their_items(store.as_ref()).await;
    older_reads_never_replace_newer_ones(store.as_ref()).await;
    change_log_keeps_the_last_entries(store.as_ref()).await;
    concurrent_resource_writers_never_break_readers(store.clone()).await;
    account_status_round_trip(store.as_ref()).await;
    api_tokens_round_trip(store.as_ref()).await;
    events_round_trip(store.as_ref()).await;
    comments_live_apart_from_the_request(store.as_ref()).await;
    sign_ins_and_revoked_sessions(store.as_ref()).await;
}

fn comment_by(author: &str, text: &str, age_secs: i64) -> Comment {
    Comment {
        id: uuid::Uuid::now_v7().to_string(),
        author: author.into(),
        text: text.into(),
        created_at: Utc::now() - Duration::seconds(age_secs),
    }
}

/// Comments are added one by one, up to a limit, without moving the request's version; a
/// request comes back with them in order, a listing without them.
pub async fn comments_live_apart_from_the_request(store: &dyn Store) {
    let who = uniq("talker");
    let r = sample_request(&who, 0);
    create(store, &r).await;
    let event = |c: &Comment| {
        AuditEvent::new(
            &c.author,
            "request.commented",
            Some(&r.id),
            json!({"comment_id": c.id}),
        )
    };
    let mut added = vec![];
    for (i, text) in ["first", "second", "third"].into_iter().enumerate() {
        let c = comment_by("bob@example.com", text, 10 - i as i64);
        let note = OutboxMessage::new("email", json!({"subject": text}));
        store
            .add_comment(&r.id, &c, 3, &event(&c), std::slice::from_ref(&note))
            .await
            .unwrap_or_else(|e| panic!("add_comment: {e}"));
        assert!(store.get_outbox(&note.id).await.expect("outbox").is_some());
        added.push(c);
    }
    let got = get(store, &r.id).await;
    assert_eq!(got.comments, added, "every comment, oldest first");
    assert_eq!(got.version, 1, "comments never move the version");
    assert_eq!(
        audit_of(store, &r.id)
            .await
            .iter()
            .filter(|e| e.action == "request.commented")
            .count(),
        3
    );

    // The limit: refused, nothing written.
    let over = comment_by("bob@example.com", "fourth", 0);
    let note = OutboxMessage::new("email", json!({"subject": "fourth"}));
    let res = store
        .add_comment(&r.id, &over, 3, &event(&over), std::slice::from_ref(&note))
        .await;
    assert!(matches!(res, Err(StoreError::Conflict(_))), "{res:?}");
    assert_eq!(get(store, &r.id).await.comments.len(), 3);
    assert!(store.get_outbox(&note.id).await.expect("outbox").is_none());

    // No such request.
    let ghost = comment_by("bob@example.com", "hello?", 0);
    let res = store
        .add_comment("no-such-request", &ghost, 3, &event(&ghost), &[])
        .await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "{res:?}");

    // A status change keeps them; a listing carries none.
    let mut next = got.clone();
    next.version += 1;
    next.status = RequestStatus::Rejected;
    let ev = AuditEvent::new(
        "admin@example.com",
        "request.rejected",
        Some(&r.id),
        json!({}),
    );
    store
        .update_request(&next, &ev, &[])
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(get(store, &r.id).await.comments, added);
    let listed = store
        .list_requests(
            &RequestFilter {
                requester: Some(who.clone()),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(listed.items[0].comments.is_empty());

    // A new request may bring comments (an import).
    let mut imported = sample_request(&who, 5);
    imported.comments = vec![
        comment_by("carol@example.com", "old one", 100),
        comment_by("dave@example.com", "older reply", 50),
    ];
    create(store, &imported).await;
    assert_eq!(get(store, &imported.id).await.comments, imported.comments);
}

async fn sign_ins_and_revoked_sessions(store: &dyn Store) {
    let user = format!("{}@example.com", uniq("signin"));
    assert_eq!(store.get_sign_in(&user).await.expect("get"), None);
    let first = SignIn {
        user: user.clone(),
        groups: vec!["eng".into(), "ops".into()],
        at: Utc::now() - Duration::days(3),
    };
    store.record_sign_in(&first).await.expect("record");
    let later = SignIn {
        groups: vec!["eng".into()],
        at: Utc::now(),
        ..first.clone()
    };
    store.record_sign_in(&later).await.expect("record again");
    let got = store
        .get_sign_in(&user)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got.groups, ["eng"], "the last sign-in replaces the first");
    assert_eq!(got.at.timestamp_millis(), later.at.timestamp_millis());

    let sid = uniq("sid");
    assert!(!store.is_session_revoked(&sid).await.expect("check"));
    let until = Utc::now() + Duration::minutes(30);
    store.revoke_session(&sid, until).await.expect("revoke");
    store
        .revoke_session(&sid, until - Duration::minutes(20))
        .await
        .expect("revoking again is fine");
    assert!(store.is_session_revoked(&sid).await.expect("check"));
    let other = uniq("sid");
    assert!(!store.is_session_revoked(&other).await.expect("check"));
    // A revocation that ran out (the session had expired anyway) no longer counts.
    let old = uniq("sid");
    store
        .revoke_session(&old, Utc::now() - Duration::seconds(1))
        .await
        .expect("revoke");
    assert!(!store.is_session_revoked(&old).await.expect("check"));
}

async fn api_tokens_round_trip(store: &dyn Store) {
    let user = format!("{}@example.com", uniq("tok"));
    let mut made = vec![];
    for i in 0..3i64 {
        let hash = format!("{:0>64}", uniq("h").replace('-', ""));
        let at = Utc::now() - Duration::seconds(100 - i);
        let t = crate::store::ApiToken {
            id: hash[..12].to_string(),
            hash,
            user: user.clone(),
            groups: vec!["eng".into()],
            name: format!("laptop {i}"),
            created_at: at,
            expires_at: at + Duration::days(30),
            revoked_at: None,
            // Scopes round-trip: the middle token (read back below) has two.
            scopes: if i == 1 {
                vec![TokenScope::Read, TokenScope::Requests]
            } else {
                TokenScope::legacy()
            },
        };
        let ev = AuditEvent::new(&user, "token.created", None, json!({"id": t.id}));
        store.create_api_token(&t, &ev).await.expect("create token");
        made.push(t);
    }
    let dup = AuditEvent::new(&user, "token.created", None, json!({}));
    assert!(matches!(
        store.create_api_token(&made[0], &dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_api_token(&made[1].hash).await.expect("get"),
        Some(made[1].clone())
    );
    assert_eq!(store.get_api_token("nope").await.expect("get"), None);
    let listed = store.list_api_tokens(&user).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["laptop 2", "laptop 1", "laptop 0"], "newest first");
    let mut revoked = made[0].clone();
    revoked.revoked_at = Some(Utc::now());
    let ev = AuditEvent::new(&user, "token.revoked", None, json!({}));
    store.update_api_token(&revoked, &ev).await.expect("revoke");
    let got = store
        .get_api_token(&revoked.hash)
        .await
        .expect("get")
        .expect("token");
    assert!(got.revoked_at.is_some() && !got.is_active(Utc::now()));
    let mut ghost = revoked.clone();
    ghost.hash = "0".repeat(64);
    let ev = AuditEvent::new(&user, "token.revoked", None, json!({}));
    assert!(matches!(
        store.update_api_token(&ghost, &ev).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_api_tokens("nobody@example.com")
            .await
            .expect("list")
            .is_empty()
    );
}

/// Posting lists (`src/store/request_index.rs`): a request is found by each of its principals,
/// accounts and words, newest first; by status as its status moves; `q` matches whole words in
/// any order, never a fragment of a word; the page's requests come back by id.
async fn postings_find_requests_by_principal_word_and_status(store: &dyn Store) {
    use crate::store::request_index::requests_of_principal;
    let who = format!("{}@example.com", uniq("poster"));
    let role = format!("arn:aws:iam::123456789012:role/{}", uniq("Ledger"));
    let word = uniq("zebra").replace('-', "");
    let mut mine = vec![];
    for i in 0..3i64 {
        let mut r = sample_request(&who, 50 - i);
        r.changes = sample_changes(&role);
        r.justification = format!("{word} migration step {i}");
        create(store, &r).await;
        mine.push(r);
    }
    let other = sample_request(&who, 10);
    create(store, &other).await;

    let ids = |v: &[PolicyRequest]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let newest_first: Vec<String> = mine.iter().rev().map(|r| r.id.clone()).collect();
    let of_role = requests_of_principal(store, &role.to_uppercase())
        .await
        .expect("principal");
    assert_eq!(ids(&of_role), newest_first, "by principal, any case");

    let key = crate::store::RequestKey::Principal(role.to_lowercase());
    let first = store
        .request_postings(&key, &PageRequest::first(2))
        .await
        .expect("postings");
    assert_eq!(first.items.len(), 2);
    let rest = store
        .request_postings(
            &key,
            &PageRequest {
                limit: 2,
                cursor: first.next_cursor.clone(),
            },
        )
        .await
        .expect("postings");
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());
    assert_eq!(rest.items[0].id, mine[0].id);

    let search = |text: String| async move {
        crate::store::search_requests(
            store,
            &RequestFilter {
                text: Some(text),
                ..Default::default()
            },
            &PageRequest::first(10),
            &|_| crate::requests::risk::Level::Low,
        )
        .await
        .expect("search")
        .items
    };
    assert_eq!(ids(&search(word.to_uppercase()).await), newest_first);
    assert_eq!(
        ids(&search(format!("step 1 {word}")).await),
        [mine[1].id.clone()],
        "every word, in any order"
    );
    assert!(
        search(word[1..].to_string()).await.is_empty(),
        "a fragment of a word is not a word"
    );
    assert_eq!(
        ids(&search(mine[2].id[..8].to_string()).await),
        [mine[2].id.clone()],
        "the short id shown in listings"
    );
    assert!(search("--".into()).await.is_empty(), "no words, no matches");

    let got = store
        .get_requests(&[other.id.clone(), "no-such-id".into(), mine[0].id.clone()])
        .await
        .expect("get_requests");
    let mut got = ids(&got);
    got.sort();
    let mut want = vec![other.id.clone(), mine[0].id.clone()];
    want.sort();
    assert_eq!(got, want, "what exists, by id");

    // Status lists follow the request.
    let pending = RequestKey::Status(RequestStatus::Pending);
    let approved = RequestKey::Status(RequestStatus::Approved);
    let lists = |key: RequestKey| async move {
        let mut all = vec![];
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let p = store.request_postings(&key, &page).await.expect("postings");
            all.extend(p.items.into_iter().map(|p| p.id));
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => break all,
            }
        }
    };
    assert!(lists(pending.clone()).await.contains(&other.id));
    let mut next = other.clone();
    next.status = RequestStatus::Approved;
    next.version = 2;
    store
        .update_request(&next, &created_event(&next), &[])
        .await
        .expect("approve");
    assert!(!lists(pending).await.contains(&other.id));
    assert!(lists(approved).await.contains(&other.id));
}

/// `account` and `text` filters (answered from posting lists by `search_requests`), across
/// several pages.
async fn search_by_account_and_text(store: &dyn Store) {
    let who = format!("{}@example.com", uniq("searcher"));
    let mut made = vec![];
    for i in 0..7i64 {
        let mut r = sample_request(&who, 100 - i);
        if i % 2 == 0 {
            r.changes = sample_changes("arn:aws:iam::210987654321:role/billing-export");
        }
        if i == 5 {
            r.justification = "Quarterly AUDIT of the ledger".into();
        }
        create(store, &r).await;
        made.push(r);
    }
    let collect = |filter: RequestFilter, limit: usize| async move {
        let mut ids = vec![];
        let mut page = PageRequest::first(limit);
        loop {
            let p = crate::store::search_requests(store, &filter, &page, &|_| {
                crate::requests::risk::Level::Low
            })
            .await
            .expect("search");
            assert!(p.items.len() <= limit);
            ids.extend(p.items.into_iter().map(|r| r.id));
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => break ids,
            }
        }
    };
    let by_account = collect(
        RequestFilter {
            requester: Some(who.clone()),
            account: Some("210987654321".into()),
            ..Default::default()
        },
        2,
    )
    .await;
    let want: Vec<String> = [6, 4, 2, 0].iter().map(|&i| made[i].id.clone()).collect();
    assert_eq!(by_account, want, "account filter, newest first, each once");

    let by_text = collect(
        RequestFilter {
            requester: Some(who.clone()),
            text: Some("audit".into()),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(by_text, [made[5].id.clone()], "text is case-insensitive");

    let by_name = collect(
        RequestFilter {
            requester: Some(who.clone()),
            account: Some("123456789012".into()),
            text: Some("role/APP".into()),
            ..Default::default()
        },
        10,
    )
    .await;
    let want: Vec<String> = [5, 3, 1].iter().map(|&i| made[i].id.clone()).collect();
    assert_eq!(by_name, want, "both filters together");

    let none = collect(
        RequestFilter {
            requester: Some(who),
            text: Some("no such thing".into()),
            ..Default::default()
        },
        10,
    )
    .await;
    assert!(none.is_empty());
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A pending request by `requester`, created `age_secs` seconds ago.
pub fn sample_request(requester: &str, age_secs: i64) -> PolicyRequest {
    let at = Utc::now() - Duration::seconds(age_secs);
    PolicyRequest {
        id: uuid::Uuid::new_v4().to_string(),
        status: RequestStatus::Pending,
        requester: requester.to_string(),
        justification: "needed for the nightly export job".into(),
        changes: sample_changes("arn:aws:iam::123456789012:role/app"),
        comments: vec![],
        created_at: at,
        updated_at: at,
        version: 1,
        results: vec![],
        applying: None,
        warnings: vec![],
        edits: vec![],
        grant_outcomes: vec![],
        approvals: vec![],
        break_glass: None,
        imported: None,
    }
}

/// One inline-policy change on `role_arn`, as a validated request holds it.
pub fn sample_changes(role_arn: &str) -> crate::requests::ChangeList {
    let change = json!({
        "change_type": "inline_policy",
        "id": uuid::Uuid::new_v4().to_string(),
        "principal": {"principal_type": "AwsResource", "principal_arn": role_arn},
        "policy_name": "export",
        "action": "attach",
        "policy": {"policy_document": {"Version": "2012-10-17", "Statement": []}}
    });
    match serde_json::from_value(json!({ "changes": [change] })) {
        Ok(list) => list,
        Err(e) => panic!("the sample change does not parse: {e}"),
    }
}

fn created_event(r: &PolicyRequest) -> AuditEvent {
    AuditEvent::new(
        &r.requester,
        "request.created",
        Some(&r.id),
        json!({"status": "pending"}),
    )
}

async fn create(store: &dyn Store, r: &PolicyRequest) {
    if let Err(e) = store.create_request(r, &created_event(r), &[]).await {
        panic!("create_request failed: {e}");
    }
}

async fn get(store: &dyn Store, id: &str) -> PolicyRequest {
    match store.get_request(id).await {
        Ok(Some(r)) => r,
        other => panic!("get_request({id}) = {other:?}"),
    }
}

/// Everything of one request's audit trail, following cursors.
async fn audit_of(store: &dyn Store, request_id: &str) -> Vec<AuditEvent> {
    let mut out = vec![];
    let mut page = PageRequest::first(2);
    loop {
        let p = store
            .list_audit(Some(request_id), &page)
            .await
            .unwrap_or_else(|e| panic!("list_audit: {e}"));
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return out,
        }
    }
}

pub async fn ping(store: &dyn Store) {
    store.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}

/// A request imported from ConsoleMe keeps its provenance and its read-only changes, raw JSON
/// included, and its old creation time sorts it among the old requests.
pub async fn imported_request_round_trips(store: &dyn Store) {
    use crate::requests::imported::{Imported, ReadOnlyChange};
    let mut r = sample_request(&uniq("carol"), 3 * 365 * 86_400);
    r.imported = Some(Imported {
        source: "consoleme".into(),
        imported_at: Utc::now(),
        imported_by: "ops@example.com".into(),
        version: 1,
        consoleme_status: "expired".into(),
        consoleme_version: "2".into(),
        reviewer: Some("admin@example.com".into()),
        principal: Some("arn:aws:iam::123456789012:role/app".into()),
        read_only: vec![ReadOnlyChange {
            position: 1,
            change_type: "resource_policy".into(),
            principal: None,
            consoleme_status: "not_applied".into(),
            optional: true,
            reason: "not applied by iamdesk".into(),
            raw: json!({"arn": "arn:aws:s3:::reports", "policy": {"policy_document": {
                "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]}},
                "empty": "", "nested": [1, 2.5, null, true]}),
        }],
    });
    create(store, &r).await;
    assert_eq!(get(store, &r.id).await, r);
}

pub async fn create_get_round_trip(store: &dyn Store) {
    let r = sample_request(&uniq("alice"), 0);
    let msg = OutboxMessage::new("email", json!({"subject": "created"}));
    store
        .create_request(&r, &created_event(&r), std::slice::from_ref(&msg))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let got = get(store, &r.id).await;
    // Timestamps survive with at least microsecond precision.
    assert_eq!(got.id, r.id);
    assert_eq!(got.status, RequestStatus::Pending);
    assert_eq!(got.requester, r.requester);
    assert_eq!(got.justification, r.justification);
    assert_eq!(got.changes, r.changes);
    assert_eq!(got.version, 1);
    assert_eq!(got.sort_key(), r.sort_key());
    assert!(
        store
            .get_request(&uniq("missing"))
            .await
            .expect("get missing")
            .is_none()
    );
    // The outbox message was written in the same transaction.
    let stored = store.get_outbox(&msg.id).await.expect("get_outbox");
    assert_eq!(stored.map(|m| m.payload), Some(msg.payload));
    assert_eq!(audit_of(store, &r.id).await.len(), 1);
}

pub async fn duplicate_create_conflicts(store: &dyn Store) {
    let r = sample_request(&uniq("bob"), 0);
    create(store, &r).await;
    let mut again = r.clone();
    again.justification = "overwrite attempt".into();
    let res = store
        .create_request(&again, &created_event(&again), &[])
        .await;
    assert!(
        matches!(res, Err(StoreError::Conflict(_))),
        "duplicate id must conflict: {res:?}"
    );
    assert_eq!(get(store, &r.id).await.justification, r.justification);
    assert_eq!(
        audit_of(store, &r.id).await.len(),
        1,
        "a failed write leaves no audit event"
    );
}

pub async fn update_checks_version(store: &dyn Store) {
    let r = sample_request(&uniq("carol"), 0);
    create(store, &r).await;

    let mut v2 = get(store, &r.id).await;
    v2.version += 1;
    v2.status = RequestStatus::Approved;
    v2.comments.push(Comment {
        id: uuid::Uuid::new_v4().to_string(),
        author: "admin@example.com".into(),
        text: "looks fine".into(),
        created_at: Utc::now(),
    });
    v2.updated_at = Utc::now();
    let note = OutboxMessage::new("email", json!({"subject": "approved"}));
    let ev = AuditEvent::new(
        "admin@example.com",
        "request.approved",
        Some(&r.id),
        json!({}),
    );
    store
        .update_request(&v2, &ev, std::slice::from_ref(&note))
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    let got = get(store, &r.id).await;
    assert_eq!(got.version, 2);
    assert_eq!(got.status, RequestStatus::Approved);
    assert!(
        got.comments.is_empty(),
        "update_request never writes comments: they are only added with add_comment"
    );
    assert!(store.get_outbox(&note.id).await.expect("outbox").is_some());

    // A writer still holding version 1 loses and changes nothing.
    let mut stale = r.clone();
    stale.version = 2;
    stale.status = RequestStatus::Rejected;
    let stale_note = OutboxMessage::new("email", json!({"subject": "rejected"}));
    let ev = AuditEvent::new(
        "other@example.com",
        "request.rejected",
        Some(&r.id),
        json!({}),
    );
    let res = store
        .update_request(&stale, &ev, std::slice::from_ref(&stale_note))
        .await;
    assert!(
        matches!(res, Err(StoreError::Conflict(_))),
        "stale write must conflict: {res:?}"
    );
    assert_eq!(
        get(store, &r.id).await,
        got,
        "a conflicting write changes nothing"
    );
    assert!(
        store
            .get_outbox(&stale_note.id)
            .await
            .expect("outbox")
            .is_none(),
        "a conflicting write enqueues nothing"
    );
    let trail = audit_of(store, &r.id).await;
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["request.approved", "request.created"],
        "newest first, no stale event"
    );
}

pub async fn update_missing_is_not_found(store: &dyn Store) {
    let mut r = sample_request(&uniq("dave"), 0);
    r.version = 2;
    let ev = AuditEvent::new("dave", "request.updated", Some(&r.id), json!({}));
    let res = store.update_request(&r, &ev, &[]).await;
    assert!(
        matches!(res, Err(StoreError::NotFound(_))),
        "missing request: {res:?}"
    );
}

pub async fn concurrent_updates_exactly_one_wins(store: Arc<dyn Store>) {
    let r = sample_request(&uniq("erin"), 0);
    create(store.as_ref(), &r).await;
    let base = get(store.as_ref(), &r.id).await;
    let mut tasks = vec![];
    for i in 0..10 {
        let store = store.clone();
        let mut next = base.clone();
        tasks.push(tokio::spawn(async move {
            next.version += 1;
            next.status = RequestStatus::Approved;
            next.justification = format!("writer {i}");
            let ev = AuditEvent::new(
                &format!("admin{i}"),
                "request.approved",
                Some(&next.id),
                json!({}),
            );
            store.update_request(&next, &ev, &[]).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task panicked") {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error from a concurrent writer: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent writer wins");
    assert_eq!(get(store.as_ref(), &r.id).await.version, 2);
    assert_eq!(
        audit_of(store.as_ref(), &r.id).await.len(),
        2,
        "one event per successful write"
    );
}

pub async fn list_requests_paginates_and_filters(store: &dyn Store) {
    let alice = uniq("list-alice");
    let bob = uniq("list-bob");
    let mut made = vec![];
    for i in 0..7i64 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        let mut r = sample_request(who, 100 - i); // later i = newer
        if i == 3 || i == 4 {
            r.status = RequestStatus::Rejected;
        }
        create(store, &r).await;
        made.push(r);
    }

    // By requester, paginated newest first.
    let mut seen = vec![];
    let mut page = PageRequest::first(2);
    let filter = RequestFilter {
        requester: Some(alice.clone()),
        ..Default::default()
    };
    loop {
        let p = store.list_requests(&filter, &page).await.expect("list");
        assert!(p.items.len() <= 2);
        seen.extend(p.items.iter().map(|r| r.id.clone()));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = made
        .iter()
        .rev()
        .filter(|r| r.requester == alice)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(seen, want, "alice's requests, newest first, each once");

    // Status + requester.
    let filter = RequestFilter {
        status: Some(RequestStatus::Rejected),
        requester: Some(bob.clone()),
        ..Default::default()
    };
    let p = store
        .list_requests(&filter, &PageRequest::first(50))
        .await
        .expect("list");
    let ids: Vec<&str> = p.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [made[3].id.as_str()]);

    // By status alone: contains both rejected ones, newest first, and nothing pending.
    let mut rejected = vec![];
    let mut page = PageRequest::first(1);
    let filter = RequestFilter {
        status: Some(RequestStatus::Rejected),
        ..Default::default()
    };
    loop {
        let p = store.list_requests(&filter, &page).await.expect("list");
        assert!(p.items.iter().all(|r| r.status == RequestStatus::Rejected));
        rejected.extend(p.items.into_iter().map(|r| r.id));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    let pos = |id: &str| rejected.iter().position(|x| x == id);
    let (p4, p3) = (pos(&made[4].id), pos(&made[3].id));
    assert!(
        p4.is_some() && p3.is_some() && p4 < p3,
        "rejected listing: {rejected:?}"
    );

    // Unfiltered: everything, newest first, no duplicates.
    let mut all = vec![];
    let mut page = PageRequest::first(3);
    loop {
        let p = store
            .list_requests(&RequestFilter::default(), &page)
            .await
            .expect("list");
        all.extend(p.items);
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    let keys: Vec<String> = all.iter().map(|r| r.sort_key()).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "unfiltered listing is newest first");
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no duplicates across pages");
    for r in &made {
        assert!(
            all.iter().any(|x| x.id == r.id),
            "unfiltered listing misses {}",
            r.id
        );
    }
}

pub async fn bad_cursor_is_invalid(store: &dyn Store) {
    let page = PageRequest {
        limit: 5,
        cursor: Some("not-a-cursor".into()),
    };
    let res = store.list_requests(&RequestFilter::default(), &page).await;
    assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
}

pub async fn audit_is_listed_newest_first(store: &dyn Store) {
    let actor = uniq("auditor");
    let mut ids = vec![];
    for i in 0..3i64 {
        let mut ev = AuditEvent::new(&actor, "credentials.issued", None, json!({"n": i}));
        ev.at = Utc::now() - Duration::seconds(10 - i);
        store.append_audit(&ev).await.expect("append_audit");
        ids.push(ev.id);
    }
    // Same id twice is refused: events are never overwritten.
    let mut dup = AuditEvent::new(&actor, "tamper", None, json!({}));
    dup.id = ids[0].clone();
    assert!(
        store.append_audit(&dup).await.is_err(),
        "an audit event cannot be overwritten"
    );

    let p = store
        .list_audit(None, &PageRequest::first(500))
        .await
        .expect("list_audit");
    let mine: Vec<&str> = p
        .items
        .iter()
        .filter(|e| e.actor == actor)
        .map(|e| e.id.as_str())
        .collect();
    let want: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(mine, want);
    assert!(p.items.iter().all(|e| e.action != "tamper"));
}

pub async fn outbox_lifecycle(store: &dyn Store) {
    let r = sample_request(&uniq("frank"), 0);
    let now = Utc::now();
    let mut due = OutboxMessage::new("email", json!({"to": ["a@example.com"]}));
    due.next_attempt_at = now - Duration::seconds(5);
    let mut later = OutboxMessage::new("slack", json!({"text": "later"}));
    later.next_attempt_at = now + Duration::hours(1);
    let mut other = OutboxMessage::new("slack", json!({"text": "due, on another channel"}));
    other.next_attempt_at = now - Duration::seconds(10);
    store
        .create_request(
            &r,
            &created_event(&r),
            &[due.clone(), later.clone(), other.clone()],
        )
        .await
        .expect("create with outbox");

    // The backlog counts them (other suites may share the store: at least these three).
    let backlog = store.outbox_backlog().await.expect("outbox_backlog");
    assert!(backlog.pending >= 3, "{backlog:?}");
    let oldest = backlog.oldest.expect("an oldest pending message");
    let first = [&due, &later, &other]
        .iter()
        .map(|m| m.created_at)
        .min()
        .unwrap_or(now);
    assert!(
        oldest <= first + Duration::milliseconds(1),
        "{oldest} is not older than {first}"
    );

    let ready = store
        .due_outbox("email", now, 1000)
        .await
        .expect("due_outbox");
    assert!(
        !ready.iter().any(|m| m.id == other.id),
        "another channel's message is not listed"
    );
    let slack = store
        .due_outbox("slack", now, 1000)
        .await
        .expect("due_outbox");
    assert!(
        slack.iter().any(|m| m.id == other.id),
        "listed on its channel"
    );
    assert!(!slack.iter().any(|m| m.id == later.id));
    assert!(ready.iter().any(|m| m.id == due.id), "due message listed");
    assert!(
        !ready.iter().any(|m| m.id == later.id),
        "future message not listed yet"
    );
    let order: Vec<_> = ready.iter().map(|m| m.next_attempt_at).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "due messages oldest first");

    // Delivery attempt recorded with optimistic concurrency.
    let mut attempt = due.clone();
    attempt.attempts = 1;
    attempt.last_error = Some("MessageRejected: Email address is not verified".into());
    attempt.next_attempt_at = now + Duration::seconds(30);
    attempt.version = 2;
    store.update_outbox(&attempt).await.expect("update_outbox");
    let res = store.update_outbox(&attempt).await;
    assert!(
        matches!(res, Err(StoreError::Conflict(_))),
        "stale outbox write: {res:?}"
    );
    let ready = store
        .due_outbox("email", now, 1000)
        .await
        .expect("due_outbox");
    assert!(
        !ready.iter().any(|m| m.id == due.id),
        "rescheduled message not due"
    );

    let mut dead = attempt.clone();
    dead.status = OutboxStatus::Dead;
    dead.version = 3;
    store.update_outbox(&dead).await.expect("mark dead");
    let p = store
        .list_outbox(Some(OutboxStatus::Dead), &PageRequest::first(500))
        .await
        .expect("list_outbox");
    assert!(p.items.iter().any(|m| m.id == due.id && m.attempts == 1));
    assert!(p.items.iter().all(|m| m.status == OutboxStatus::Dead));
    let p = store
        .list_outbox(Some(OutboxStatus::Pending), &PageRequest::first(500))
        .await
        .expect("list_outbox");
    assert!(p.items.iter().any(|m| m.id == later.id));
    assert!(!p.items.iter().any(|m| m.id == due.id));
}

fn account_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000;
    n.to_string()
}

/// The demo account under `id`, with `extra` more roles whose long descriptions make it large
/// (more items than one DynamoDB transaction holds when `extra` is over 100).
fn big_account(id: &str, extra: usize) -> crate::resources::model::AccountSnapshot {
    let mut snap = crate::resources::demo::account(id, "conformance");
    let filler = "x".repeat(2000);
    for p in snap.principals.iter_mut() {
        p.description = Some(filler.clone());
    }
    for i in 0..extra {
        let mut r = snap.principals[0].clone();
        r.name = format!("extra-{i}");
        r.arn = format!("arn:aws:iam::{id}:role/extra-{i}");
        snap.principals.push(r);
    }
    snap
}

fn items_of(
    snap: crate::resources::model::AccountSnapshot,
    at: chrono::DateTime<Utc>,
) -> Vec<ResourceItem> {
    let mut items: Vec<ResourceItem> = snap
        .into_resources()
        .map(|r| ResourceItem::new(r, at))
        .collect();
    items.sort_by_key(ResourceItem::key);
    items
}

async fn stored_items(store: &dyn Store, id: &str) -> Vec<ResourceItem> {
    let mut items = store.list_resources(id).await.expect("list_resources");
    items.sort_by_key(ResourceItem::key);
    items
}

fn first_write(id: &str, items: Vec<ResourceItem>) -> ResourceWrite {
    ResourceWrite {
        account_id: id.to_string(),
        account_name: "conformance".into(),
        expected_generation: 0,
        synced_at: Some(Utc::now()),
        puts: items,
        deletes: vec![],
        full: true,
    }
}

/// A write of `items` on top of generation `expected`, as a refresh makes it.
fn next_write(id: &str, expected: u64, items: Vec<ResourceItem>) -> ResourceWrite {
    ResourceWrite {
        expected_generation: expected,
        synced_at: None,
        full: false,
        ..first_write(id, items)
    }
}

/// Retry a write on `Conflict` from the generation now stored (what every writer does).
async fn write_retrying(store: &dyn Store, mut write: ResourceWrite) -> WriteOutcome {
    for _ in 0..50 {
        match store.write_resources(&write).await {
            Ok(out) => return out,
            Err(StoreError::Conflict(_)) => {
                write.expected_generation = store
                    .resource_account(&write.account_id)
                    .await
                    .expect("resource_account")
                    .map_or(0, |a| a.generation);
            }
            Err(e) => panic!("write_resources: {e}"),
        }
    }
    panic!("write_resources kept conflicting");
}

pub async fn resources_round_trip(store: &dyn Store) {
    let id = account_id();
    assert_eq!(store.resource_account(&id).await.expect("account"), None);
    let at = Utc::now() - Duration::seconds(30);
    let items = items_of(big_account(&id, 150), at);
    assert!(items.len() > 150);
    let mut write = first_write(&id, items.clone());
    write.synced_at = Some(at);
    let out = store.write_resources(&write).await.expect("write");
    assert_eq!(out.generation, 1);
    assert_eq!(out.applied.len(), items.len());
    assert!(out.skipped.is_empty());

    let account = store
        .resource_account(&id)
        .await
        .expect("account")
        .expect("stored");
    assert_eq!(account.generation, 1);
    assert_eq!(account.account_name, "conformance");
    assert!(
        !account.incomplete,
        "a finished write leaves nothing to repair"
    );
    assert_eq!(
        account.synced_at.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros())
    );
    let all = store.resource_accounts().await.expect("accounts");
    assert_eq!(all.iter().filter(|a| a.account_id == id).count(), 1);

    assert_eq!(
        stored_items(store, &id).await,
        items,
        "items round-trip exactly"
    );
    let mut stamps = store.resource_stamps(&id).await.expect("stamps");
    stamps.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(stamps.len(), items.len());
    for (s, i) in stamps.iter().zip(&items) {
        assert_eq!(
            (&s.key, &s.hash, s.fetched_at),
            (&i.key(), &i.hash, i.fetched_at)
        );
    }
    let wanted = [
        items[3].key(),
        items[0].key(),
        crate::resources::model::ResourceKey::role("not-there"),
    ];
    let mut got = store.get_resources(&id, &wanted).await.expect("get");
    got.sort_by_key(ResourceItem::key);
    assert_eq!(got, vec![items[0].clone(), items[3].clone()]);
    assert_eq!(
        store.resource_changes(&id, 0).await.expect("changes"),
        [ResourceChange {
            generation: 1,
            full: true,
            keys: vec![]
        }]
    );

    // A writer still at generation 0 loses and changes nothing.
    let mut stale = first_write(&id, items[..1].to_vec());
    stale.puts[0].hash = "0".repeat(64);
    assert!(matches!(
        store.write_resources(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(stored_items(store, &id).await, items);

    // Nothing to change but the sync time: the generation stays, no log entry.
    let later = Utc::now();
    let touch = ResourceWrite {
        synced_at: Some(later),
        ..next_write(&id, 1, vec![])
    };
    let out = store.write_resources(&touch).await.expect("touch");
    assert_eq!(out.generation, 1);
    let account = store
        .resource_account(&id)
        .await
        .expect("account")
        .expect("stored");
    assert_eq!(account.generation, 1);
    assert_eq!(
        account.synced_at.map(|t| t.timestamp_micros()),
        Some(later.timestamp_micros())
    );
    assert_eq!(store.resource_changes(&id, 1).await.expect("changes"), []);
}

/// What an approval relies on: one role written alone leaves every other item as it was, moves
/// the generation by one and logs just that key.
pub async fn resource_writes_touch_only_their_items(store: &dyn Store) {
    use crate::resources::model::Resource;
    let id = account_id();
    let t0 = Utc::now() - Duration::seconds(60);
    let items = items_of(crate::resources::demo::account(&id, "conformance"), t0);
    store
        .write_resources(&first_write(&id, items.clone()))
        .await
        .expect("first write");

    let Resource::Principal(mut role) = items[2].resource.clone() else {
        panic!("the demo account starts with principals");
    };
    role.tags.push(crate::resources::model::Tag {
        key: "owner".into(),
        value: "payments".into(),
    });
    let t1 = Utc::now();
    let changed = ResourceItem::new(Resource::Principal(role), t1);
    let out = store
        .write_resources(&next_write(&id, 1, vec![changed.clone()]))
        .await
        .expect("one role");
    assert_eq!(out.generation, 2);
    assert_eq!(out.applied, [changed.key()]);
    let now = stored_items(store, &id).await;
    for (before, after) in items.iter().zip(&now) {
        if before.key() == changed.key() {
            assert_eq!(after, &changed);
        } else {
            assert_eq!(after, before, "an untouched item is left exactly as it was");
        }
    }
    assert_eq!(
        store.resource_changes(&id, 1).await.expect("changes"),
        [ResourceChange {
            generation: 2,
            full: false,
            keys: vec![changed.key()]
        }]
    );

    // A role gone from AWS is deleted, and logged.
    let gone = items[4].key();
    let out = store
        .write_resources(&ResourceWrite {
            deletes: vec![crate::resources::stored::ResourceDelete {
                key: gone.clone(),
                fetched_at: t1,
            }],
            ..next_write(&id, 2, vec![])
        })
        .await
        .expect("delete");
    assert_eq!(
        (out.generation, out.applied.clone()),
        (3, vec![gone.clone()])
    );
    assert!(
        store
            .get_resources(&id, std::slice::from_ref(&gone))
            .await
            .expect("get")
            .is_empty()
    );
    let log = store.resource_changes(&id, 1).await.expect("changes");
    let generations: Vec<u64> = log.iter().map(|c| c.generation).collect();
    assert_eq!(generations, [2, 3]);
    assert_eq!(log[1].keys, [gone]);
    assert_eq!(stored_items(store, &id).await.len(), items.len() - 1);
}

/// An item read from AWS later is never replaced or deleted by a write that read it earlier.
pub async fn older_reads_never_replace_newer_ones(store: &dyn Store) {
    let id = account_id();
    let t2 = Utc::now();
    let items = items_of(crate::resources::demo::account(&id, "conformance"), t2);
    store
        .write_resources(&first_write(&id, items.clone()))
        .await
        .expect("first write");
    let t1 = t2 - Duration::seconds(5);
    let mut older = ResourceItem::new(items[1].resource.clone(), t1);
    older.hash = "0".repeat(64);
    let out = store
        .write_resources(&ResourceWrite {
            deletes: vec![crate::resources::stored::ResourceDelete {
                key: items[2].key(),
                fetched_at: t1,
            }],
            ..next_write(&id, 1, vec![older])
        })
        .await
        .expect("write");
    assert_eq!(out.generation, 1, "nothing changed, the generation stays");
    assert!(out.applied.is_empty());
    let mut skipped = out.skipped.clone();
    skipped.sort();
    assert_eq!(skipped, [items[1].key(), items[2].key()]);
    assert_eq!(stored_items(store, &id).await, items);

    let newer = ResourceItem::new(items[1].resource.clone(), t2 + Duration::seconds(1));
    let out = store
        .write_resources(&next_write(&id, 1, vec![newer.clone()]))
        .await
        .expect("write");
    assert_eq!((out.generation, out.applied), (2, vec![newer.key()]));
}

/// The log keeps the last `LOG_KEEP` entries: a reader further behind sees the gap.
pub async fn change_log_keeps_the_last_entries(store: &dyn Store) {
    use crate::resources::stored::LOG_KEEP;
    let id = account_id();
    let items = items_of(
        crate::resources::demo::account(&id, "conformance"),
        Utc::now(),
    );
    store
        .write_resources(&first_write(&id, items.clone()))
        .await
        .expect("first write");
    let writes = LOG_KEEP + 4;
    for g in 1..writes {
        let item = ResourceItem::new(items[0].resource.clone(), Utc::now());
        let out = store
            .write_resources(&next_write(&id, g, vec![item]))
            .await
            .expect("write");
        assert_eq!(out.generation, g + 1);
    }
    let log = store.resource_changes(&id, 0).await.expect("changes");
    let generations: Vec<u64> = log.iter().map(|c| c.generation).collect();
    let want: Vec<u64> = (writes - LOG_KEEP + 1..=writes).collect();
    assert_eq!(generations, want, "the last {LOG_KEEP}, oldest first");
    let tail = store
        .resource_changes(&id, writes - 2)
        .await
        .expect("changes");
    assert_eq!(tail.len(), 2);
}

/// Issue 22's race: a refresh writing one role while a sync rewrites the whole account (larger
/// than one DynamoDB transaction), and a reader loading the account all along. Every load
/// succeeds and is complete, every write gets its own generation, the log has no gap, and the
/// role holds the latest read of it.
pub async fn concurrent_resource_writers_never_break_readers(store: Arc<dyn Store>) {
    use crate::resources::model::Resource;
    let id = account_id();
    let t0 = Utc::now() - Duration::seconds(600);
    let items = items_of(big_account(&id, 120), t0);
    let total = items.len();
    store
        .write_resources(&first_write(&id, items.clone()))
        .await
        .expect("first write");
    let role_key = items[0].key();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let described = |item: &ResourceItem, text: String, at| {
        let mut r = item.resource.clone();
        if let Resource::Principal(p) = &mut r {
            p.description = Some(text);
        }
        ResourceItem::new(r, at)
    };

    let sync = {
        let (store, id, items) = (store.clone(), id.clone(), items.clone());
        tokio::spawn(async move {
            let mut out = vec![];
            for round in 0..3 {
                let at = Utc::now();
                let puts = items
                    .iter()
                    .map(|i| described(i, format!("sync round {round}"), at))
                    .collect();
                let w = ResourceWrite {
                    synced_at: Some(at),
                    ..next_write(&id, 1, puts)
                };
                out.push((write_retrying(store.as_ref(), w).await, at));
            }
            out
        })
    };
    let refresh = {
        let (store, id, item) = (store.clone(), id.clone(), items[0].clone());
        tokio::spawn(async move {
            let mut out = vec![];
            for n in 0..15 {
                let at = Utc::now();
                let w = next_write(&id, 1, vec![described(&item, format!("refresh {n}"), at)]);
                out.push((write_retrying(store.as_ref(), w).await, at));
                tokio::task::yield_now().await;
            }
            out
        })
    };
    let reader = {
        let (store, id, done) = (store.clone(), id.clone(), done.clone());
        tokio::spawn(async move {
            let mut loads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || loads == 0 {
                let account = store.resource_account(&id).await.expect("account entry");
                assert!(account.is_some());
                let items = store
                    .list_resources(&id)
                    .await
                    .expect("every load succeeds");
                assert_eq!(items.len(), total, "an account never loads partly");
                store.resource_changes(&id, 0).await.expect("changes");
                loads += 1;
            }
            loads
        })
    };
    let sync = sync.await.expect("sync task");
    let refresh = refresh.await.expect("refresh task");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.await.expect("reader task") > 0);

    let mut generations: Vec<u64> = sync
        .iter()
        .chain(&refresh)
        .filter(|(o, _)| !o.applied.is_empty())
        .map(|(o, _)| o.generation)
        .collect();
    let writes = generations.len();
    generations.sort_unstable();
    generations.dedup();
    assert_eq!(generations.len(), writes, "no generation is given twice");
    let last = store
        .resource_account(&id)
        .await
        .expect("account")
        .expect("stored")
        .generation;
    assert_eq!(
        last,
        1 + writes as u64,
        "one generation per write that changed something"
    );
    let latest = sync
        .iter()
        .chain(&refresh)
        .map(|(_, at)| at.timestamp_micros())
        .max();
    let role = store
        .get_resources(&id, std::slice::from_ref(&role_key))
        .await
        .expect("get")
        .pop()
        .expect("role");
    assert_eq!(
        Some(role.fetched_at.timestamp_micros()),
        latest,
        "the role holds the latest read"
    );
    let log = store.resource_changes(&id, 1).await.expect("changes");
    let logged: Vec<u64> = log.iter().map(|c| c.generation).collect();
    assert_eq!(logged, (2..=last).collect::<Vec<u64>>(), "a gap-free log");
}

pub async fn account_status_round_trip(store: &dyn Store) {
    use crate::resources::model::AccountStatus;
    let status = AccountStatus {
        account_id: "123412341234".into(),
        account_name: "conformance".into(),
        last_attempt_at: Utc::now(),
        last_success_at: None,
        last_error: Some("AccessDenied: not authorized to perform sts:AssumeRole".into()),
        roles: 3,
        users: 0,
        policies: 2,
        duration_ms: 12,
        services: vec![],
    };
    store.put_account_status(&status).await.expect("put status");
    let all = store.list_account_status().await.expect("list status");
    assert!(all.iter().any(|s| s == &status));
}

/// Findings (versioned, written with their outbox message), denial groups (counts add up,
/// windows widen, expired ones vanish) and outside changes (once per event id).
pub async fn events_round_trip(store: &dyn Store) {
    use crate::events::model::{Denial, Finding, OutsideChange, role_key};

    use chrono::SubsecRound;
    let rule = uniq("rule");
    // Stores keep microseconds.
    let now = Utc::now().trunc_subsecs(6);
    let key = Finding::key_of(
        "123456789012",
        "us-east-1",
        &rule,
        "AWS::IAM::Role",
        "AROA1",
    );
    assert_eq!(store.get_finding(&key).await.expect("get"), None);
    let mut f = Finding {
        key: key.clone(),
        rule: rule.clone(),
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        resource_type: "AWS::IAM::Role".into(),
        resource_id: "AROA1".into(),
        compliance: "NON_COMPLIANT".into(),
        since: now - Duration::minutes(5),
        last_seen: now,
        last_posted_at: Some(now),
        last_posted: Some("NON_COMPLIANT".into()),
        version: 1,
    };
    let alert = OutboxMessage::new("slack", json!({"subject": rule.clone(), "body": {}}));
    store
        .put_finding(&f, std::slice::from_ref(&alert))
        .await
        .expect("new finding");
    assert!(
        matches!(
            store.put_finding(&f, &[]).await,
            Err(StoreError::Conflict(_))
        ),
        "a second version 1 conflicts"
    );
    assert_eq!(store.get_finding(&key).await.expect("get"), Some(f.clone()));
    assert_eq!(
        store
            .get_outbox(&alert.id)
            .await
            .expect("outbox")
            .map(|m| m.id),
        Some(alert.id.clone()),
        "the alert was written with the finding"
    );
    let open = store.list_open_findings(500).await.expect("open");
    assert!(open.iter().any(|o| o.key == key));

    // A stale write changes nothing, its outbox message included.
    let mut stale = f.clone();
    stale.version = 3;
    let lost = OutboxMessage::new("slack", json!({"subject": "lost"}));
    assert!(matches!(
        store.put_finding(&stale, std::slice::from_ref(&lost)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_outbox(&lost.id).await.expect("outbox"), None);

    f.version = 2;
    f.compliance = "COMPLIANT".into();
    store.put_finding(&f, &[]).await.expect("resolve");
    let open = store.list_open_findings(500).await.expect("open");
    assert!(!open.iter().any(|o| o.key == key), "resolved is not open");
    assert_eq!(
        store
            .get_finding(&key)
            .await
            .expect("get")
            .map(|g| g.version),
        Some(2)
    );

    // Denials: counts add up and the window widens in both directions.
    let role = role_key("123456789012", &uniq("Denied-Role"));
    let d = |count: u64, first: i64, last: i64, action: &str| Denial {
        role: role.clone(),
        role_arn: "arn:aws:iam::123456789012:role/app/Denied-Role".into(),
        action: action.into(),
        resource: "arn:aws:s3:::bucket/key#1".into(),
        error_code: "AccessDenied".into(),
        count,
        first_seen: now - Duration::minutes(first),
        last_seen: now - Duration::minutes(last),
    };
    store
        .record_denials(&[d(2, 10, 8, "s3:GetObject"), d(1, 3, 3, "s3:PutObject")])
        .await
        .expect("record");
    store
        .record_denials(&[d(3, 20, 1, "s3:GetObject")])
        .await
        .expect("record again");
    store
        .record_denials(&[d(1, 9, 9, "s3:GetObject")])
        .await
        .expect("record inside the window");
    let got = store
        .list_denials(&role, now - Duration::hours(1))
        .await
        .expect("list");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].action, "s3:GetObject", "most recent first");
    assert_eq!(got[0].count, 6);
    assert_eq!(got[0].first_seen, now - Duration::minutes(20));
    assert_eq!(got[0].last_seen, now - Duration::minutes(1));
    assert_eq!(got[1].count, 1);
    assert_eq!(
        got[1].role_arn,
        "arn:aws:iam::123456789012:role/app/Denied-Role"
    );
    // Past the keep window: gone.
    let got = store
        .list_denials(&role, now - Duration::minutes(2))
        .await
        .expect("list");
    assert_eq!(
        got.iter().map(|d| d.action.as_str()).collect::<Vec<_>>(),
        ["s3:GetObject"]
    );
    assert!(
        store
            .list_denials(
                &role_key("123456789012", "nobody"),
                now - Duration::hours(1)
            )
            .await
            .expect("list")
            .is_empty()
    );

    // Outside changes: once per event id, newest first.
    let resource = role_key("123456789012", &uniq("Changed"));
    let change = |id: &str, age: i64| OutsideChange {
        event_id: format!("{id}-{resource}"),
        resource: resource.clone(),
        account_id: "123456789012".into(),
        by: "arn:aws:sts::123456789012:assumed-role/Admin/alice".into(),
        event_name: "PutRolePolicy".into(),
        at: now - Duration::seconds(age),
    };
    assert!(
        store
            .add_outside_change(&change("a", 30))
            .await
            .expect("add")
    );
    assert!(
        store
            .add_outside_change(&change("b", 10))
            .await
            .expect("add")
    );
    assert!(
        !store
            .add_outside_change(&change("a", 30))
            .await
            .expect("again"),
        "a redelivered event is recorded once"
    );
    let listed = store
        .list_outside_changes(&resource, 10)
        .await
        .expect("list");
    assert_eq!(listed, [change("b", 10), change("a", 30)]);
    assert_eq!(
        store
            .list_outside_changes(&resource, 1)
            .await
            .expect("list")
            .len(),
        1
    );
}
