//! Resource sync against moto: a central identity assumes a spoke role in each account and reads
//! IAM with GetAccountAuthorizationDetails.

use std::collections::BTreeMap;

use aws_sdk_iam::Client as Iam;
use iamdesk::app::App;
use iamdesk::config::{AwsMode, Config};
use iamdesk::resources::model::ResourceKind;
use iamdesk::resources::sync;

use crate::support::{account_id, iam_in, moto_endpoint};

async fn create_role(iam: &Iam, name: &str, inline: Option<&str>) {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .tags(aws_sdk_iam::types::Tag::builder().key("team").value("billing").build().expect("tag"))
        .send()
        .await
        .expect("create role");
    if let Some(doc) = inline {
        iam.put_role_policy()
            .role_name(name)
            .policy_name("inline-one")
            .policy_document(doc)
            .send()
            .await
            .expect("put role policy");
    }
}

fn config(accounts: &[&str], dir: &tempfile::TempDir) -> Config {
    let mut c = Config {
        environment: iamdesk::config::Environment::Dev,
        ..Config::default()
    };
    c.aws.mode = AwsMode::Aws;
    c.account_ids_to_name = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.to_string(), format!("acct-{i}")))
        .collect::<BTreeMap<_, _>>();
    c.policies.role_name = "iamdesk-spoke".into();
    c.storage.path = dir.path().join("iamdesk.db");
    c
}

#[tokio::test]
async fn sync_reads_every_account_decodes_policies_and_reuses_credentials() {
    if moto_endpoint().is_none() {
        return;
    }
    let (a, b) = (account_id(), account_id());
    let iam_a = iam_in(&a).await;
    let iam_b = iam_in(&b).await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::reports/*"}]}"#;
    create_role(&iam_a, "reports-reader", Some(doc)).await;
    create_role(&iam_a, "to-be-deleted", None).await;
    create_role(&iam_b, "queue-worker", None).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::build(config(&[&a, &b], &dir)).await.expect("app");
    let deps = app.resource_deps();
    let outcome = sync::run(&deps).await.expect("sync");
    assert_eq!(outcome.failed(), 0, "{:?}", outcome.statuses);

    let (_, role) = app
        .resources
        .role(&a, "reports-reader")
        .expect("synced role");
    assert_eq!(role.arn, format!("arn:aws:iam::{a}:role/reports-reader"));
    assert_eq!(role.inline_policies[0].name, "inline-one");
    assert_eq!(
        role.inline_policies[0].document["Statement"][0]["Action"][0], "s3:GetObject",
        "inline policy URL-decoded into JSON"
    );
    assert_eq!(
        role.trust_policy
            .as_ref()
            .map(|t| t["Statement"][0]["Principal"]["Service"].clone()),
        Some(serde_json::json!("ec2.amazonaws.com"))
    );
    assert_eq!(role.tag("team"), Some("billing"));
    assert!(app.resources.role(&b, "queue-worker").is_some());
    let stored = app.store.resource_accounts().await.expect("accounts");
    assert_eq!(stored.len(), 2, "both accounts are in the store");
    let generation = |id: &str| {
        stored
            .iter()
            .find(|s| s.account_id == id)
            .map(|s| s.generation)
            .expect("stored account")
    };
    let (gen_a, gen_b) = (generation(&a), generation(&b));
    let mut names: Vec<String> = app
        .store
        .list_resources(&a)
        .await
        .expect("items")
        .iter()
        .map(|i| i.key().name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["reports-reader", "to-be-deleted"],
        "one item per role"
    );

    // Search sees them too.
    let found = app
        .resources
        .index()
        .search(&iamdesk::resources::index::Query {
            action: Some("s3:GetObject".into()),
            kind: Some(ResourceKind::Role),
            limit: 10,
            ..Default::default()
        });
    assert_eq!(
        found
            .items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["reports-reader"]
    );

    let cloud = app.cloud.clone();
    let calls = |c: &std::sync::Arc<dyn iamdesk::cloud::Cloud>| {
        c.as_any()
            .downcast_ref::<iamdesk::cloud::aws::AwsCloud>()
            .map(|a| a.assume_role_calls())
    };
    assert_eq!(calls(&cloud), Some(2), "one AssumeRole per account");

    // A role deleted in AWS disappears after the next sync, without a new AssumeRole.
    iam_a
        .delete_role()
        .role_name("to-be-deleted")
        .send()
        .await
        .expect("delete role");
    assert!(app.resources.role(&a, "to-be-deleted").is_some());
    let outcome = sync::run(&deps).await.expect("second sync");
    assert_eq!(outcome.failed(), 0);
    // Only what changed was written: one deletion in `a`, nothing in `b`.
    let stored = app.store.resource_accounts().await.expect("accounts");
    let now = |id: &str| {
        stored
            .iter()
            .find(|s| s.account_id == id)
            .map(|s| s.generation)
    };
    assert_eq!(now(&a), Some(gen_a + 1));
    assert_eq!(now(&b), Some(gen_b), "an unchanged account is not written");
    let log = app.store.resource_changes(&a, gen_a).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].keys,
        [iamdesk::resources::model::ResourceKey::role(
            "to-be-deleted"
        )]
    );
    assert!(
        app.resources.role(&a, "to-be-deleted").is_none(),
        "deleted role gone"
    );
    assert!(app.resources.role(&a, "reports-reader").is_some());
    assert_eq!(
        calls(&cloud),
        Some(2),
        "credentials reused within their lifetime"
    );
}

/// A moto_server of this test's own that enforces IAM authorization after the first
/// `free_actions` requests (the test's setup), so an account without the spoke role really fails.
struct AuthMoto {
    child: std::process::Child,
    endpoint: String,
}

impl AuthMoto {
    fn start(free_actions: u32) -> Option<AuthMoto> {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        if !bin.exists() {
            assert!(
                !crate::support::strict(),
                "{} missing: run scripts/test",
                bin.display()
            );
            return None;
        }
        let port = crate::support::free_port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free_actions.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(AuthMoto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_failing_account_is_marked_failed_and_the_others_still_sync() {
    if moto_endpoint().is_none() {
        return;
    }
    // Exactly the setup below runs unauthenticated; everything after is checked by moto's IAM.
    let Some(moto) = AuthMoto::start(8) else {
        return;
    };
    let (good, bad) = (account_id(), account_id());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .load()
        .await;
    let central = Iam::new(&sdk);
    let allow_all =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    central
        .create_user()
        .user_name("iamdesk-central")
        .send()
        .await
        .expect("user"); // 1
    central
        .put_user_policy()
        .user_name("iamdesk-central")
        .policy_name("all")
        .policy_document(allow_all)
        .send()
        .await
        .expect("user policy"); // 2
    let key = central
        .create_access_key()
        .user_name("iamdesk-central")
        .send()
        .await
        .expect("key") // 3
        .access_key
        .expect("access key");
    let provider =
        aws_config::sts::AssumeRoleProvider::builder(format!("arn:aws:iam::{good}:role/setup"))
            .session_name("test-setup")
            .configure(&sdk)
            .build()
            .await;
    let spoke = Iam::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .credentials_provider(provider)
            .build(),
    );
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    // 4 (AssumeRole) + 5
    spoke
        .create_role()
        .role_name("iamdesk-spoke")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("spoke role");
    spoke
        .put_role_policy()
        .role_name("iamdesk-spoke")
        .policy_name("all")
        .policy_document(allow_all)
        .send()
        .await
        .expect("spoke policy"); // 6
    create_role(&spoke, "payments-api", Some(allow_all)).await; // 7, 8

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("iamdesk.yaml");
    std::fs::write(
        &cfg,
        format!(
            "environment: dev\naccount_ids_to_name:\n  {good}: good\n  {bad}: bad\npolicies:\n  role_name: iamdesk-spoke\nstorage:\n  path: {}/iamdesk.db\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iamdesk"))
        .args(["--config", cfg.to_str().unwrap_or_default(), "sync"])
        .env_remove("CONFIG_LOCATION")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", key.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key())
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("run sync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "partial failure exit code; stdout: {stdout}"
    );
    assert!(
        stdout.contains(&format!("ok      {good} (good): 2 roles")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("FAILED  {bad} (bad): ")),
        "{stdout}"
    );
    assert!(stdout.contains("synced 1 of 2 accounts"), "{stdout}");

    // The good account's roles and the bad account's error are in the store.
    let mut config = iamdesk::config::load_file(&cfg).expect("config").config;
    config.aws.mode = AwsMode::Aws;
    let store = iamdesk::store::embedded::EmbeddedStore::open(&config.storage.path).expect("store");
    let accounts = iamdesk::store::Store::resource_accounts(&store)
        .await
        .expect("accounts");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].account_id, good);
    let items = iamdesk::store::Store::list_resources(&store, &good)
        .await
        .expect("items");
    assert!(items.iter().any(|i| i.key().name == "payments-api"));
    let statuses = iamdesk::store::Store::list_account_status(&store)
        .await
        .expect("statuses");
    let failed = statuses
        .iter()
        .find(|s| s.account_id == bad)
        .expect("bad account status");
    assert!(failed.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(statuses.iter().any(|s| s.account_id == good && s.ok()));
}

#[tokio::test]
async fn every_iam_write_is_applied_through_the_spoke_role() {
    use iamdesk::cloud::{Cloud, IamOp};
    use iamdesk::resources::model::Tag;
    use serde_json::json;

    if moto_endpoint().is_none() {
        return;
    }
    let acct = account_id();
    let setup = iam_in(&acct).await;
    create_role(&setup, "app", None).await;
    let managed = setup
        .create_policy()
        .policy_name("read-logs")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:Get*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("managed policy")
        .policy
        .and_then(|p| p.arn)
        .expect("arn");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&[&acct], &dir);
    let cloud = iamdesk::cloud::aws::AwsCloud::new(&config).await;
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::reports/*"}]});
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = "app".to_string();
    for op in [
        IamOp::PutRolePolicy {
            role: role.clone(),
            policy_name: "reports".into(),
            document: doc.clone(),
        },
        IamOp::AttachRolePolicy {
            role: role.clone(),
            policy_arn: managed.clone(),
        },
        IamOp::PutRolePermissionsBoundary {
            role: role.clone(),
            policy_arn: managed.clone(),
        },
        IamOp::UpdateAssumeRolePolicy {
            role: role.clone(),
            document: trust.clone(),
        },
        IamOp::TagRole {
            role: role.clone(),
            tags: vec![Tag {
                key: "owner".into(),
                value: "team-a".into(),
            }],
        },
        IamOp::CreateRole {
            role: "brand-new".into(),
            path: "/apps/".into(),
            description: Some("made by iamdesk".into()),
            trust: trust.clone(),
            tags: vec![Tag {
                key: "created-by".into(),
                value: "iamdesk".into(),
            }],
        },
    ] {
        cloud
            .apply(&acct, &op)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", op.action()));
    }
    let r = cloud
        .fetch_role(&acct, "app")
        .await
        .expect("fetch")
        .expect("role");
    assert_eq!(r.inline_policies[0].name, "reports");
    assert_eq!(
        r.inline_policies[0].document["Statement"][0]["Action"][0],
        "s3:GetObject"
    );
    assert_eq!(r.managed_policies[0].arn, managed);
    assert_eq!(r.permissions_boundary.as_deref(), Some(managed.as_str()));
    assert_eq!(
        r.trust_policy
            .as_ref()
            .map(|t| t["Statement"][0]["Principal"]["Service"].clone()),
        Some(json!("lambda.amazonaws.com"))
    );
    assert_eq!(r.tag("owner"), Some("team-a"));
    let created = cloud
        .fetch_role(&acct, "brand-new")
        .await
        .expect("fetch")
        .expect("created role");
    assert_eq!(created.path, "/apps/");
    assert_eq!(created.tag("created-by"), Some("iamdesk"));

    // And back out again.
    for op in [
        IamOp::DeleteRolePolicy {
            role: role.clone(),
            policy_name: "reports".into(),
        },
        IamOp::DetachRolePolicy {
            role: role.clone(),
            policy_arn: managed.clone(),
        },
        IamOp::DeleteRolePermissionsBoundary { role: role.clone() },
        IamOp::UntagRole {
            role: role.clone(),
            keys: vec!["owner".into()],
        },
    ] {
        cloud
            .apply(&acct, &op)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", op.action()));
    }
    let r = cloud
        .fetch_role(&acct, "app")
        .await
        .expect("fetch")
        .expect("role");
    assert!(r.inline_policies.is_empty() && r.managed_policies.is_empty());
    assert!(r.permissions_boundary.is_none());
    assert_eq!(r.tag("owner"), None);

    // A failing call reports AWS's own error.
    let err = cloud
        .apply(
            &acct,
            &IamOp::DeleteRolePolicy {
                role: role.clone(),
                policy_name: "nope".into(),
            },
        )
        .await
        .expect_err("no such policy");
    assert!(err.to_string().contains("NoSuchEntity"), "{err}");
    assert_eq!(cloud.fetch_role(&acct, "ghost").await.expect("fetch"), None);
}
