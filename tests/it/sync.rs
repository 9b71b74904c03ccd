//! Resource sync against moto: a central identity assumes a spoke role in each account and reads
//! IAM with GetAccountAuthorizationDetails.

use std::collections::BTreeMap;

use aws_sdk_iam::Client as Iam;
use iamdesk::app::App;
use iamdesk::config::{AwsMode, Config};
use iamdesk::resources::model::ResourceKind;
use iamdesk::resources::sync;

use crate::support::moto_endpoint;

/// A fresh random 12-digit account id, so tests sharing one moto never see each other.
fn account_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000;
    n.to_string()
}

/// An IAM client acting inside `account` (moto maps assumed-role credentials to the role's
/// account).
async fn iam_in(account: &str) -> Iam {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let provider = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/test-setup"
    ))
    .session_name("test-setup")
    .configure(&sdk)
    .build()
    .await;
    let conf = aws_sdk_iam::config::Builder::from(&sdk)
        .credentials_provider(provider)
        .build();
    Iam::from_conf(conf)
}

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
    let outcome = sync::run(&app).await.expect("sync");
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
    let stored = app.store.list_snapshots().await.expect("snapshots");
    assert_eq!(stored.len(), 2, "both snapshots are in the store");

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
    let outcome = sync::run(&app).await.expect("second sync");
    assert_eq!(outcome.failed(), 0);
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
