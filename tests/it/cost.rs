//! The cost model (issue 22 item 7, `docs/cost-model.md`): DynamoDB calls and bytes of each
//! operation, counted by the AWS call interceptor (`src/telemetry/aws.rs`, a tally of this
//! test's table prefix) against moto, at a small and a large data size. The large one has three
//! times the requests and four times the roles; no operation may cost more calls or
//! noticeably more bytes there.

use std::collections::BTreeMap;

use iamdesk::resources::model::{AccountSnapshot, InlinePolicy, Principal, ResourceKind};
use iamdesk::store::conformance::{sample_changes, sample_request};
use iamdesk::store::dynamo::DynamoStore;
use iamdesk::store::{OutboxMessage, PolicyRequest, RequestStatus};
use iamdesk::telemetry::aws::{Cost, Tally};
use serde_json::json;

use crate::requests::{ADMIN, DEV, World, create_ok};
use crate::support::{account_id, create_role, csrf_for, free_port, iam_in, spoke_app, unique};

/// Requests and roles stored before each measurement.
const SIZES: [(usize, usize); 2] = [(600, 1_000), (1_800, 4_000)];
/// Roles of the account whose sync is measured (the same at both sizes: a sync's cost is its
/// account's, the estate around it grows).
const MEASURED_ROLES: usize = 100;

fn role(account: &str, i: usize, doc_version: usize) -> Principal {
    Principal {
        kind: ResourceKind::Role,
        account_id: account.to_string(),
        arn: format!("arn:aws:iam::{account}:role/svc-{i:05}"),
        name: format!("svc-{i:05}"),
        path: "/".into(),
        id: format!("AROA{i:016}"),
        description: None,
        created_at: None,
        last_used_at: None,
        max_session_duration: Some(3600),
        trust_policy: Some(json!({"Version": "2012-10-17", "Statement": []})),
        inline_policies: vec![InlinePolicy {
            name: "main".into(),
            document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": [format!("s3:GetObject{doc_version}")], "Resource": "*"}]}),
        }],
        managed_policies: vec![],
        permissions_boundary: None,
        tags: vec![],
    }
}

/// A replica's copy of a stored account, at its stored generation.
async fn current_copy(
    store: &dyn iamdesk::store::Store,
    id: &str,
) -> iamdesk::resources::account::Account {
    let entry = store
        .resource_account(id)
        .await
        .expect("entry")
        .expect("stored");
    let items = store.list_resources(id).await.expect("items");
    iamdesk::resources::account::Account::new(
        id,
        &entry.account_name,
        entry.synced_at,
        entry.generation,
        items.into_iter().map(|i| i.resource),
    )
}

fn account(id: &str, roles: std::ops::Range<usize>, changed: Option<usize>) -> AccountSnapshot {
    AccountSnapshot {
        account_id: id.to_string(),
        account_name: format!("acct-{id}"),
        principals: roles
            .map(|i| role(id, i, usize::from(changed == Some(i))))
            .collect(),
        ..Default::default()
    }
}

/// `n` requests of the past on the world's account: half pending (more than a home page reads
/// at either size), half approved.
fn history(w: &World, from: usize, n: usize) -> Vec<PolicyRequest> {
    (from..from + n)
        .map(|i| {
            let mut r = sample_request(&format!("eng{}@example.com", i % 40), 3_600 + i as i64);
            r.changes = sample_changes(&format!("arn:aws:iam::{}:role/team-{}", w.account, i % 60));
            r.justification = "quarterly access for the reporting pipeline".into();
            if i % 2 == 1 {
                r.status = RequestStatus::Approved;
            }
            r
        })
        .collect()
}

/// One operation's cost: the total, and the calls by DynamoDB operation (`Query 16, ...`).
type Measured = (Cost, String);

async fn measure(w: &World, tally: &Tally, rare: &str) -> BTreeMap<&'static str, Measured> {
    let sum = |t: BTreeMap<String, Cost>| {
        let total = t.values().fold(Cost::default(), |a, c| Cost {
            calls: a.calls + c.calls,
            sent: a.sent + c.sent,
            received: a.received + c.received,
        });
        let by_op: Vec<String> = t
            .iter()
            .map(|(op, c)| format!("{op} {}", c.calls))
            .collect();
        (total, by_op.join(", "))
    };
    let mut out = BTreeMap::new();
    let get = |path: String| async move {
        let resp = w
            .app
            .client
            .get(w.app.url(&path))
            .header("x-user", ADMIN)
            .header("x-groups", "admins")
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.expect("body")
    };
    tally.take();
    let id = create_ok(
        w,
        DEV,
        "dev",
        json!({"justification": format!("{rare} access"), "changes": {"changes": [w.inline(rare, "attach")]}}),
    )
    .await;
    out.insert("create", sum(tally.take()));
    // The first read after a write fills the cache: what a reader on another replica pays.
    get(format!("/api/v2/requests/{id}")).await;
    out.insert("get", sum(tally.take()));
    get("/requests".into()).await;
    out.insert("list page", sum(tally.take()));
    get("/".into()).await;
    out.insert("home page", sum(tally.take()));
    let found = get(format!("/requests?q={rare}")).await;
    assert!(found.contains(&id[..8]), "the rare word finds its request");
    out.insert("search", sum(tally.take()));
    let resp = w
        .act(
            ADMIN,
            "admins",
            &id,
            json!({"command": "add_comment", "comment_text": "looks fine"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    out.insert("comment", sum(tally.take()));
    let resp = w
        .act(ADMIN, "admins", &id, json!({"command": "approve_request"}))
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    out.insert("approve", sum(tally.take()));

    let store = w.app.state.store.as_ref();
    let measured = "444455556666";
    let now = chrono::Utc::now();
    iamdesk::resources::sync::store_account(store, account(measured, 0..MEASURED_ROLES, None), now)
        .await
        .expect("sync");
    // As the sync leader does it: with its own copy of the account, at the stored generation
    // (src/resources/sync.rs::store_account_known), read before the tally starts.
    let copy = current_copy(store, measured).await;
    tally.take();
    let same = iamdesk::resources::sync::store_account_known(
        store,
        account(measured, 0..MEASURED_ROLES, None),
        now + chrono::Duration::seconds(1),
        &|_| false,
        Some(&copy),
    )
    .await
    .expect("sync");
    assert_eq!(same.changed, 0);
    let cost = tally.take();
    assert!(
        !cost.contains_key("Query"),
        "an unchanged account with a current copy reads no stamps: {cost:?}"
    );
    out.insert("sync, unchanged account", sum(cost));
    let copy = current_copy(store, measured).await;
    tally.take();
    let one = iamdesk::resources::sync::store_account_known(
        store,
        account(measured, 0..MEASURED_ROLES, Some(7)),
        now + chrono::Duration::seconds(2),
        &|_| false,
        Some(&copy),
    )
    .await
    .expect("sync");
    assert_eq!(one.changed, 1);
    out.insert("sync, one role changed", sum(tally.take()));

    let m = OutboxMessage::new("slack", json!({"text": rare}));
    store.enqueue_outbox(&m).await.expect("enqueue");
    tally.take();
    let due = store
        .due_outbox("slack", chrono::Utc::now(), 10)
        .await
        .expect("due");
    let mut claimed = due
        .into_iter()
        .find(|d| d.id == m.id)
        .expect("the message is due");
    claimed.attempts += 1;
    claimed.version += 1;
    store.update_outbox(&claimed).await.expect("claim");
    out.insert("outbox claim", sum(tally.take()));
    // What every Prometheus scrape asks (src/telemetry/metrics.rs): the backlog of messages
    // nobody here can deliver grows between the sizes (see the seeding below).
    let backlog = store.outbox_backlog().await.expect("backlog");
    assert!(
        backlog.pending > 0 && backlog.oldest.is_some(),
        "{backlog:?}"
    );
    out.insert("metrics scrape (outbox backlog)", sum(tally.take()));
    out
}

/// A moto_server of this test's own (`scripts/moto_server.py`, as `scripts/test` starts the
/// shared one) for DynamoDB: seeding thousands of items into the one-request-at-a-time shared
/// moto would slow every other test down. Stopped when dropped.
struct OwnMoto(std::process::Child);

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn own_moto() -> (OwnMoto, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = free_port();
    let child = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto_server (scripts/test creates .venv)");
    let moto = OwnMoto(child);
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (moto, format!("http://127.0.0.1:{port}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start on port {port}");
}

#[tokio::test]
async fn dynamodb_cost_per_operation_does_not_grow_with_the_data() {
    let (Some(_), Some(redis)) = (crate::support::moto_endpoint(), crate::support::redis_url())
    else {
        return;
    };
    let (_moto, endpoint) = own_moto().await;
    let config = iamdesk::config::Config {
        dynamodb_server: Some(endpoint.clone()),
        ..Default::default()
    };
    let client = iamdesk::aws::dynamodb_client(&config).await;
    let prefix = unique("cost");
    iamdesk::migrate::run(&client, &prefix)
        .await
        .expect("migrate");
    let spoke = account_id();
    let iam = iam_in(&spoke).await;
    create_role(&iam, "app", &[]).await;
    let app = spoke_app(&spoke, |config| {
        config.groups.can_admin = vec!["admins".into()];
        config.storage.backend = iamdesk::config::StorageBackend::Dynamodb;
        config.storage.dynamodb.table_prefix = prefix.clone();
        config.dynamodb_server = Some(endpoint.clone());
        config.redis.url = Some(redis);
    })
    .await;
    let csrf = csrf_for(&app).await;
    let w = World {
        app,
        account: spoke,
        iam,
        csrf,
    };
    let tally = iamdesk::telemetry::aws::watch(&prefix);
    let seeder = DynamoStore::new(client, &prefix);
    let mut results = vec![];
    let (mut requests, mut roles) = (0, 0);
    for (i, (want_requests, want_roles)) in SIZES.into_iter().enumerate() {
        seeder
            .load_requests(&history(&w, requests, want_requests - requests))
            .await
            .expect("seed requests");
        // The estate around the measured account: accounts of 1,000 roles each.
        for n in roles / 1_000..want_roles / 1_000 {
            let id = format!("9{n:011}");
            iamdesk::resources::sync::store_account(
                &seeder,
                account(&id, 0..1_000, None),
                chrono::Utc::now(),
            )
            .await
            .expect("seed roles");
        }
        // Emails nobody can send here (no SES sender): a pending backlog of a tenth of the
        // requests.
        for _ in requests / 10..want_requests / 10 {
            let m = OutboxMessage::new(
                "email",
                json!({"to": ["x@example.com"], "subject": "s",
                "text": "a pending message of some length ".repeat(20)}),
            );
            iamdesk::store::Store::enqueue_outbox(&seeder, &m)
                .await
                .expect("backlog");
        }
        (requests, roles) = (want_requests, want_roles);
        let rare = format!("rare{i}{}", uuid::Uuid::new_v4().simple());
        results.push(measure(&w, &tally, &rare).await);
    }
    let (small, large) = (&results[0], &results[1]);
    let mut table = String::from(
        "| operation | calls (small) | bytes (small) | calls (large) | bytes (large) | calls (large) by operation |\n|---|---|---|---|---|---|\n",
    );
    for (op, (s, _)) in small {
        let (l, by_op) = &large[op];
        table.push_str(&format!(
            "| {op} | {} | {} | {} | {} | {by_op} |\n",
            s.calls,
            s.bytes(),
            l.calls,
            l.bytes()
        ));
    }
    eprintln!("{table}");
    for (op, (s, _)) in small {
        let (l, _) = &large[op];
        assert!(s.calls > 0, "{op} costs something\n{table}");
        // A sharded page may ask one partition again now and then (src/store/dynamo.rs).
        assert!(l.calls <= s.calls + 2, "{op}: calls grew\n{table}");
        assert!(
            l.bytes() <= s.bytes() + s.bytes() / 4 + 2_048,
            "{op}: bytes grew\n{table}"
        );
    }
}
