//! The Store conformance suite (`iamdesk::store::conformance`) against every backend.

use std::sync::Arc;

use iamdesk::store::conformance;
use iamdesk::store::embedded::EmbeddedStore;

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("data/iamdesk.db")).expect("open");
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn embedded_store_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iamdesk.db");
    let r = conformance::sample_request("persist@example.com", 0);
    {
        let store = EmbeddedStore::open(&path).expect("open");
        let ev = iamdesk::store::AuditEvent::new(
            "persist",
            "request.created",
            Some(&r.id),
            serde_json::json!({}),
        );
        iamdesk::store::Store::create_request(&store, &r, &ev, &[])
            .await
            .expect("create");
    }
    let store = EmbeddedStore::open(&path).expect("reopen");
    let got = iamdesk::store::Store::get_request(&store, &r.id)
        .await
        .expect("get");
    assert_eq!(got, Some(r));
}

fn token(user: &str, expires_in_days: i64) -> iamdesk::store::ApiToken {
    let hash = format!("{:0>64}", uuid::Uuid::new_v4().simple());
    let now = chrono::Utc::now();
    iamdesk::store::ApiToken {
        id: hash[..12].to_string(),
        hash,
        user: user.into(),
        groups: vec![],
        name: "ci".into(),
        created_at: now - chrono::Duration::days(90),
        expires_at: now + chrono::Duration::days(expires_in_days),
        revoked_at: None,
        scopes: iamdesk::store::TokenScope::legacy(),
    }
}

/// An outbox message stored, then finished (`sent`) with its last attempt `days_ago`.
async fn finished_message(
    store: &dyn iamdesk::store::Store,
    status: iamdesk::store::OutboxStatus,
    days_ago: i64,
) -> iamdesk::store::OutboxMessage {
    let mut m = iamdesk::store::OutboxMessage::new("email", serde_json::json!({"to": ["a@x"]}));
    store.enqueue_outbox(&m).await.expect("enqueue");
    m.status = status;
    m.version += 1;
    m.next_attempt_at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    store.update_outbox(&m).await.expect("finish");
    m
}

#[tokio::test]
async fn embedded_store_removes_finished_messages_and_ended_tokens_after_30_days() {
    use iamdesk::store::{OutboxStatus, Purged, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("iamdesk.db")).expect("open");
    let old_sent = finished_message(&store, OutboxStatus::Sent, 31).await;
    let old_dead = finished_message(&store, OutboxStatus::Dead, 45).await;
    let recent = finished_message(&store, OutboxStatus::Sent, 2).await;
    let mut waiting = iamdesk::store::OutboxMessage::new("slack", serde_json::json!({}));
    waiting.next_attempt_at = chrono::Utc::now() - chrono::Duration::days(60);
    store.enqueue_outbox(&waiting).await.expect("enqueue");
    let ended = token("t@example.com", -31);
    let live = token("t@example.com", 10);
    let mut revoked = token("t@example.com", 10);
    revoked.revoked_at = Some(chrono::Utc::now() - chrono::Duration::days(40));
    for t in [&ended, &live, &revoked] {
        let ev = iamdesk::store::AuditEvent::new("t", "token.created", None, serde_json::json!({}));
        store.create_api_token(t, &ev).await.expect("token");
    }

    let purged = store
        .purge_finished(chrono::Utc::now())
        .await
        .expect("purge");
    assert_eq!(
        purged,
        Purged {
            outbox: 2,
            tokens: 2
        }
    );
    for gone in [&old_sent, &old_dead] {
        assert_eq!(store.get_outbox(&gone.id).await.expect("get"), None);
    }
    for kept in [&recent, &waiting] {
        assert!(
            store.get_outbox(&kept.id).await.expect("get").is_some(),
            "{kept:?}"
        );
    }
    assert!(
        store
            .get_api_token(&ended.hash)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get_api_token(&revoked.hash)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get_api_token(&live.hash)
            .await
            .expect("get")
            .is_some()
    );
    // The audit log keeps everything.
    let audit = store
        .list_audit(None, &iamdesk::store::PageRequest::first(100))
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 3);
    assert_eq!(
        store
            .purge_finished(chrono::Utc::now())
            .await
            .expect("again"),
        Purged::default()
    );
}

mod dynamo {
    //! The DynamoDB backend against moto: `migrate` and the conformance suite.

    use std::sync::Arc;

    use iamdesk::store::conformance;
    use iamdesk::store::dynamo::DynamoStore;

    use crate::support::{moto_endpoint, unique};

    async fn client() -> aws_sdk_dynamodb::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&sdk)
    }

    /// The global secondary indexes of `table`, sorted.
    async fn index_names(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
        let desc = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("describe");
        let mut names: Vec<String> = desc
            .table()
            .map(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .filter_map(|i| i.index_name().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn migrate_creates_tables_with_indexes_and_is_idempotent() {
        if moto_endpoint().is_none() {
            return;
        }
        let client = client().await;
        let prefix = unique("m");
        let first = iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate");
        assert_eq!(first.len(), iamdesk::migrate::MIGRATIONS.len());
        assert!(
            first.iter().all(|l| l.starts_with("created table")),
            "{first:?}"
        );
        assert_eq!(
            index_names(&client, &format!("{prefix}requests")).await,
            ["by_done", "by_shard", "by_user", "pending"]
        );

        for (table, on) in [("outbox", true), ("tokens", true), ("requests", false)] {
            let ttl = client
                .describe_time_to_live()
                .table_name(format!("{prefix}{table}"))
                .send()
                .await
                .expect("describe ttl");
            let d = ttl.time_to_live_description();
            assert_eq!(
                d.and_then(|d| d.time_to_live_status())
                    .is_some_and(|s| s.as_str() == "ENABLED"),
                on,
                "{table}: {d:?}"
            );
            if on {
                assert_eq!(d.and_then(|d| d.attribute_name()), Some("ttl"));
            }
        }
        // A finished message carries its removal time; a pending one does not.
        let store = DynamoStore::new(client.clone(), &prefix);
        let sent = super::finished_message(&store, iamdesk::store::OutboxStatus::Sent, 1).await;
        let pending = iamdesk::store::OutboxMessage::new("email", serde_json::json!({}));
        iamdesk::store::Store::enqueue_outbox(&store, &pending)
            .await
            .expect("enqueue");
        let ttl_of = |id: String| {
            let client = client.clone();
            let table = format!("{prefix}outbox");
            async move {
                client
                    .get_item()
                    .table_name(table)
                    .key("id", aws_sdk_dynamodb::types::AttributeValue::S(id))
                    .send()
                    .await
                    .expect("get item")
                    .item()
                    .and_then(|i| i.get("ttl"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
            }
        };
        assert_eq!(
            ttl_of(sent.id.clone()).await,
            sent.purge_at().map(|t| t.timestamp())
        );
        assert_eq!(ttl_of(pending.id.clone()).await, None);

        let second = iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate again");
        assert!(
            second.iter().all(|l| l.ends_with("already up to date")),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn dynamodb_store_conforms() {
        if moto_endpoint().is_none() {
            return;
        }
        let client = client().await;
        let prefix = unique("c");
        iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate");
        conformance::run_all(Arc::new(DynamoStore::new(client, &prefix))).await;
    }

    /// A table as versions before issue 22 made it: `requests` and `audit` with their old
    /// ALL-projected single-partition indexes, holding one request and its audit event written
    /// the old way. `migrate` adds the new indexes, indexes what is there, removes the old
    /// indexes, and the old request is listed, searched and found by its principal.
    #[tokio::test]
    async fn migrate_upgrades_tables_of_earlier_versions_and_indexes_what_they_hold() {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex,
            KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
        };
        use iamdesk::store::{PageRequest, RequestFilter, RequestStatus, Store};
        if moto_endpoint().is_none() {
            return;
        }
        let client = client().await;
        let prefix = unique("up");
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key")
        };
        let old_index = |name: &str, hash: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("index")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute")
        };
        let old_tables = [
            (
                "requests",
                vec![
                    ("by_status", "status"),
                    ("by_requester", "requester"),
                    ("by_created", "entity"),
                ],
            ),
            (
                "audit",
                vec![("by_time", "entity"), ("by_request", "request_id")],
            ),
        ];
        for (table, indexes) in &old_tables {
            let mut create = client
                .create_table()
                .table_name(format!("{prefix}{table}"))
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key("id", KeyType::Hash))
                .attribute_definitions(attr("id"))
                .attribute_definitions(attr("sk"));
            for (name, hash) in indexes {
                create = create
                    .attribute_definitions(attr(hash))
                    .global_secondary_indexes(old_index(name, hash));
            }
            create.send().await.expect("old table");
        }
        let r = conformance::sample_request("old@example.com", 60);
        let s = |v: &str| AttributeValue::S(v.to_string());
        client
            .put_item()
            .table_name(format!("{prefix}requests"))
            .item("id", s(&r.id))
            .item("status", s("pending"))
            .item("requester", s(&r.requester))
            .item("sk", s(&r.sort_key()))
            .item("entity", s("request"))
            .item("version", AttributeValue::N("1".into()))
            .item("body", s(&serde_json::to_string(&r).expect("json")))
            .send()
            .await
            .expect("old request");
        let ev = iamdesk::store::AuditEvent::new(
            "old",
            "request.created",
            Some(&r.id),
            serde_json::json!({}),
        );
        client
            .put_item()
            .table_name(format!("{prefix}audit"))
            .item("id", s(&ev.id))
            .item("sk", s(&ev.sort_key()))
            .item("entity", s("audit"))
            .item("request_id", s(&r.id))
            .item("body", s(&serde_json::to_string(&ev).expect("json")))
            .send()
            .await
            .expect("old audit event");

        let report = iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate");
        let text = report.join("\n");
        for line in [
            "added index by_shard",
            "added index pending",
            "indexed 1 request(s) and 1 audit event(s)",
            "removed retired index by_created",
            "removed retired index by_time",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert_eq!(
            index_names(&client, &format!("{prefix}requests")).await,
            ["by_done", "by_shard", "by_user", "pending"]
        );

        let store = DynamoStore::new(client.clone(), &prefix);
        let pending = store
            .list_requests(
                &RequestFilter {
                    status: Some(RequestStatus::Pending),
                    ..Default::default()
                },
                &PageRequest::first(10),
            )
            .await
            .expect("list");
        assert_eq!(pending.items.len(), 1);
        assert_eq!(pending.items[0].id, r.id);
        let found = iamdesk::store::search_requests(
            &store,
            &RequestFilter {
                text: Some("nightly EXPORT".into()),
                account: Some("123456789012".into()),
                ..Default::default()
            },
            &PageRequest::first(10),
            &|_| iamdesk::requests::risk::Level::Low,
        )
        .await
        .expect("search");
        assert_eq!(found.items.len(), 1);
        let audit = store
            .list_audit(None, &PageRequest::first(10))
            .await
            .expect("audit");
        assert_eq!(audit.items, [ev]);

        let again = iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate again");
        assert!(
            again.iter().all(|l| l.ends_with("already up to date")),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn an_item_over_dynamodbs_400_kb_is_too_large_not_a_conflict_and_nothing_is_written() {
        if moto_endpoint().is_none() {
            return;
        }
        let client = client().await;
        let prefix = unique("big");
        iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate");
        let store = DynamoStore::new(client, &prefix);
        let mut r = conformance::sample_request("big@example.com", 0);
        r.justification = "x".repeat(450_000);
        let ev = iamdesk::store::AuditEvent::new(
            "big",
            "request.created",
            Some(&r.id),
            serde_json::json!({}),
        );
        let res = iamdesk::store::Store::create_request(&store, &r, &ev, &[]).await;
        let Err(e) = res else {
            panic!("a 450 KB item was stored");
        };
        assert!(
            matches!(e, iamdesk::store::StoreError::TooLarge(_)),
            "{e:?}"
        );
        let app_error = iamdesk::error::AppError::from(e);
        assert_eq!(app_error.status(), 400);
        assert!(
            app_error.public_message().contains("400 KB"),
            "{}",
            app_error.public_message()
        );
        let got = iamdesk::store::Store::get_request(&store, &r.id)
            .await
            .expect("get");
        assert_eq!(got, None, "nothing is written");
    }

    #[tokio::test]
    async fn readiness_is_503_naming_the_store_when_dynamodb_is_unreachable() {
        let (mut config, dir) = crate::support::TestApp::demo_config();
        config.storage.backend = iamdesk::config::StorageBackend::Dynamodb;
        // Nothing listens on the discard port: every call fails fast.
        config.dynamodb_server = Some("http://127.0.0.1:9".into());
        let mut app = crate::support::TestApp::spawn(config).await;
        app.keep(dir);
        // Alive (liveness asks no backend), not ready.
        assert_eq!(app.get("/healthcheck").await.status(), 200);
        let resp = app.get("/readyz").await;
        assert_eq!(resp.status(), 503);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["failed"], serde_json::json!(["store"]));
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("store (dynamodb)")),
            "{body}"
        );
    }

    #[test]
    fn migrate_command_says_what_it_did_and_is_a_no_op_the_second_time() {
        if moto_endpoint().is_none() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("iamdesk.yaml");
        let prefix = unique("cli");
        std::fs::write(
            &cfg,
            format!("environment: dev\nstorage:\n  backend: dynamodb\n  dynamodb:\n    table_prefix: {prefix}\n"),
        )
        .expect("config");
        let run = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_iamdesk"))
                .args(["--config", cfg.to_str().unwrap_or_default(), "migrate"])
                .env_remove("CONFIG_LOCATION")
                .output()
                .expect("run migrate")
        };
        let first = run();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let out = String::from_utf8_lossy(&first.stdout);
        assert!(
            out.contains(&format!("created table {prefix}requests")),
            "{out}"
        );
        let second = run();
        assert!(second.status.success());
        let out = String::from_utf8_lossy(&second.stdout);
        assert_eq!(
            out.matches("already up to date").count(),
            iamdesk::migrate::MIGRATIONS.len(),
            "{out}"
        );
    }
}
