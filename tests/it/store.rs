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
        let desc = client
            .describe_table()
            .table_name(format!("{prefix}requests"))
            .send()
            .await
            .expect("describe");
        let mut indexes: Vec<String> = desc
            .table()
            .map(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .filter_map(|i| i.index_name().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        indexes.sort();
        assert_eq!(indexes, ["by_created", "by_requester", "by_status"]);

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
