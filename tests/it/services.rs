//! Buckets, queues, topics and managed-policy versions synced from moto through the spoke role
//! (issue 14), each service on its own.

use std::collections::BTreeMap;

use iamdesk::app::App;
use iamdesk::config::{AwsMode, Config};
use iamdesk::resources::model::{ResourceKey, ResourceKind};
use iamdesk::resources::sync;

use crate::support::{account_id, iam_in, moto_endpoint, services_in};

fn config(account: &str, regions: &[&str], dir: &tempfile::TempDir) -> Config {
    let mut c = Config {
        environment: iamdesk::config::Environment::Dev,
        ..Config::default()
    };
    c.aws.mode = AwsMode::Aws;
    c.aws.region = "us-east-1".into();
    c.aws.regions = regions.iter().map(|r| r.to_string()).collect();
    c.account_ids_to_name = BTreeMap::from([(account.to_string(), "svc".to_string())]);
    c.policies.role_name = "iamdesk-spoke".into();
    c.storage.path = dir.path().join("iamdesk.db");
    c
}

fn policy(principal: &str, action: &str, resource: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
            "Action": action, "Resource": resource}]
    })
    .to_string()
}

/// A bucket, queue and topic with a policy and tags, one of each without, and a managed policy
/// with two versions attached to a role: all in account `a`. Returns the queue URL.
async fn seed(a: &str) -> String {
    let (s3, sqs, sns) = services_in(a).await;
    let reader = format!("arn:aws:iam::{a}:role/reader");
    let bucket = format!("reports-{a}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    s3.put_bucket_policy()
        .bucket(&bucket)
        .policy(policy(
            &reader,
            "s3:GetObject",
            &format!("arn:aws:s3:::{bucket}/*"),
        ))
        .send()
        .await
        .expect("bucket policy");
    s3.put_bucket_tagging()
        .bucket(&bucket)
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("team")
                        .value("analytics")
                        .build()
                        .expect("tag"),
                )
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("bucket tags");
    s3.create_bucket()
        .bucket(format!("scratch-{a}"))
        .send()
        .await
        .expect("bare bucket");

    let url = sqs
        .create_queue()
        .queue_name("orders")
        .tags("team", "payments")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_string();
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy(
                &reader,
                "sqs:SendMessage",
                &format!("arn:aws:sqs:us-east-1:{a}:orders"),
            ),
        )
        .send()
        .await
        .expect("queue policy");
    sqs.create_queue()
        .queue_name("Bare")
        .send()
        .await
        .expect("bare queue");

    let topic = sns
        .create_topic()
        .name("alerts")
        .tags(
            aws_sdk_sns::types::Tag::builder()
                .key("team")
                .value("sre")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("arn")
        .to_string();
    sns.set_topic_attributes()
        .topic_arn(&topic)
        .attribute_name("Policy")
        .attribute_value(policy(&reader, "sns:Publish", &topic))
        .send()
        .await
        .expect("topic policy");

    let iam = iam_in(a).await;
    let arn = iam
        .create_policy()
        .policy_name("logs-read")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:GetLogEvents","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("managed policy")
        .policy()
        .and_then(|p| p.arn())
        .expect("policy arn")
        .to_string();
    iam.create_policy_version()
        .policy_arn(&arn)
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:GetLogEvents","logs:FilterLogEvents"],"Resource":"*"}]}"#,
        )
        .set_as_default(true)
        .send()
        .await
        .expect("policy version");
    iam.create_role()
        .role_name("reader")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("role");
    iam.attach_role_policy()
        .role_name("reader")
        .policy_arn(&arn)
        .send()
        .await
        .expect("attach");
    url
}

#[tokio::test]
async fn sync_reads_buckets_queues_topics_and_policy_versions() {
    if moto_endpoint().is_none() {
        return;
    }
    let a = account_id();
    let url = seed(&a).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::build(config(&a, &[], &dir)).await.expect("app");
    let outcome = sync::run(&app.resource_deps()).await.expect("sync");
    let status = &outcome.statuses[0];
    assert!(status.ok(), "{status:?}");
    assert_eq!(status.services.len(), 3, "{:?}", status.services);
    assert!(status.services.iter().all(|s| s.error.is_none()));

    let accounts = app.resources.snapshots();
    let account = accounts
        .iter()
        .find(|x| x.account_id == a)
        .expect("account");
    let bucket = account
        .service(&ResourceKey::new(ResourceKind::S3, &format!("reports-{a}")))
        .expect("bucket synced");
    assert_eq!(bucket.region, "us-east-1");
    assert_eq!(bucket.tags[0].key, "team");
    assert_eq!(
        bucket.policy.as_ref().expect("policy")["Statement"][0]["Action"],
        "s3:GetObject"
    );
    let bare = account
        .service(&ResourceKey::new(ResourceKind::S3, &format!("scratch-{a}")))
        .expect("bare bucket synced");
    assert_eq!(
        bare.policy, None,
        "no bucket policy is no policy, not an error"
    );

    let queue = account
        .service(&ResourceKey::service(
            ResourceKind::Sqs,
            "us-east-1",
            "orders",
        ))
        .expect("queue synced");
    assert_eq!(queue.url.as_deref(), Some(url.as_str()));
    assert_eq!(queue.arn, format!("arn:aws:sqs:us-east-1:{a}:orders"));
    assert!(queue.policy.is_some());
    assert_eq!(queue.tags[0].value, "payments");
    let bare = account
        .service(&ResourceKey::service(
            ResourceKind::Sqs,
            "us-east-1",
            "Bare",
        ))
        .expect("queue names keep their case");
    assert_eq!(bare.policy, None);

    let topic = account
        .service(&ResourceKey::service(
            ResourceKind::Sns,
            "us-east-1",
            "alerts",
        ))
        .expect("topic synced");
    assert_eq!(
        topic.policy.as_ref().expect("policy")["Statement"][0]["Action"],
        "sns:Publish"
    );
    assert_eq!(topic.tags[0].value, "sre");

    let mp = account
        .policies
        .iter()
        .find(|p| p.name == "logs-read")
        .unwrap_or_else(|| panic!("managed policy: {:?}", account.policies));
    assert_eq!(mp.versions.len(), 2, "{:?}", mp.versions);
    assert_eq!(mp.versions[0].id, "v2");
    assert!(mp.versions[0].is_default);
    assert_eq!(
        mp.document["Statement"][0]["Action"][1],
        "logs:FilterLogEvents"
    );
    assert_eq!(
        mp.attached_to,
        vec![format!("arn:aws:iam::{a}:role/reader")]
    );

    // Search: the action inside a bucket policy finds the bucket, with who is granted.
    let found = app
        .resources
        .index()
        .search(&iamdesk::resources::index::Query {
            action: Some("s3:GetObject".into()),
            kind: Some(ResourceKind::S3),
            limit: 10,
            ..Default::default()
        });
    assert_eq!(found.total, 1, "{:?}", found.items);
    assert_eq!(found.items[0].name, format!("reports-{a}"));
    assert_eq!(
        found.items[0].principals,
        vec![format!("arn:aws:iam::{a}:role/reader")]
    );
}

/// moto does not enforce IAM policies unless the whole server is told to (and then for every
/// test at once), so a denied service cannot be made with a spoke-role policy here. What a
/// denial does to a sync, a failing read of one service, is made real with a region moto does
/// not serve: its SQS and SNS calls fail (moto knows no such region) while S3 and IAM, global
/// services, answer. The sync must report exactly those two reads as failed, and store
/// everything else.
#[tokio::test]
async fn a_failing_service_is_reported_alone_and_the_rest_syncs() {
    if moto_endpoint().is_none() {
        return;
    }
    let a = account_id();
    seed(&a).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::build(config(&a, &["us-east-1", "xx-nowhere-1"], &dir))
        .await
        .expect("app");
    let outcome = sync::run(&app.resource_deps()).await.expect("sync");
    let status = &outcome.statuses[0];
    assert!(status.ok(), "IAM synced: {status:?}");
    assert!(status.roles >= 1);
    let failed: Vec<(ResourceKind, &str)> = status
        .services
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| (s.service, s.region.as_str()))
        .collect();
    assert_eq!(
        failed,
        vec![
            (ResourceKind::Sqs, "xx-nowhere-1"),
            (ResourceKind::Sns, "xx-nowhere-1")
        ],
        "{:?}",
        status.services
    );
    let accounts = app.resources.snapshots();
    let account = accounts
        .iter()
        .find(|x| x.account_id == a)
        .expect("account");
    assert_eq!(account.count(ResourceKind::S3), 2);
    assert_eq!(account.count(ResourceKind::Sqs), 2);
    assert_eq!(account.count(ResourceKind::Sns), 1);

    // The admin page shows each service's line.
    let stored = app.store.list_account_status().await.expect("status");
    let mine = stored
        .iter()
        .find(|s| s.account_id == a)
        .expect("stored status");
    assert_eq!(mine.services, status.services);
}

async fn json(app: &crate::support::TestApp, path: &str) -> serde_json::Value {
    let resp = app.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("json")
}

#[tokio::test]
async fn demo_buckets_queues_topics_are_searchable_and_have_pages() {
    let app = crate::support::TestApp::demo().await;
    let prod = "111122223333";
    let bucket = format!("demo-prod-reports-{prod}");

    // Filter by type, and find a bucket by an action its policy allows, with the principal.
    let r = json(&app, &format!("/api/v2/policies?type=s3&account={prod}")).await;
    assert_eq!(r["total"], 2, "{r}");
    let r = json(
        &app,
        &format!("/api/v2/policies?q=s3:GetObject&type=s3&account={prod}"),
    )
    .await;
    assert_eq!(r["total"], 1, "{r}");
    let item = &r["items"][0];
    assert_eq!(item["name"], bucket.as_str());
    assert_eq!(item["url"], format!("/policies/edit/{prod}/s3/{bucket}?from=q%3Ds3%253AGetObject%26account%3D{prod}%26type%3Ds3").as_str(), "{item}");
    assert_eq!(
        item["principals"][0],
        format!("arn:aws:iam::{prod}:role/data-warehouse-loader").as_str()
    );
    assert!(
        item["matched"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("resource policy:")),
        "{item}"
    );
    for (kind, n) in [("sqs", 1), ("sns", 1), ("managed_policy", 2)] {
        let r = json(
            &app,
            &format!("/api/v2/policies?type={kind}&account={prod}"),
        )
        .await;
        assert_eq!(r["total"], n, "{kind}: {r}");
    }
    let resp = app.get("/api/v2/policies?type=bucketz").await;
    assert_eq!(resp.status(), 400);

    // The API per resource, at ConsoleMe's path shapes.
    let r = json(&app, &format!("/api/v2/resources/{prod}/s3/{bucket}")).await;
    assert_eq!(r["resource_type"], "s3");
    assert_eq!(r["resource"]["region"], "us-east-1");
    assert_eq!(r["resource"]["tags"][0]["key"], "team");
    let r = json(
        &app,
        &format!("/api/v2/resources/{prod}/sqs/us-east-1/demo-prod-orders"),
    )
    .await;
    assert_eq!(
        r["resource"]["policy"]["Statement"][0]["Action"][0],
        "sqs:SendMessage"
    );
    let r = json(
        &app,
        &format!("/api/v2/resources/{prod}/managed_policy/ReadOnlyLogs"),
    )
    .await;
    assert_eq!(r["resource"]["versions"].as_array().map(Vec::len), Some(2));
    assert!(
        r["resource"]["attached_to"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{r}"
    );
    let resp = app
        .get(&format!(
            "/api/v2/resources/{prod}/sqs/eu-west-1/demo-prod-orders"
        ))
        .await;
    assert_eq!(resp.status(), 404);
    let resp = app.get(&format!("/api/v2/resources/{prod}/ec2/x")).await;
    assert_eq!(resp.status(), 404);

    // The pages.
    let resp = app.get(&format!("/policies/edit/{prod}/s3/{bucket}")).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("s3:GetObject") && html.contains("analytics"),
        "{html}"
    );
    let html = app
        .get(&format!(
            "/policies/edit/{prod}/s3/demo-prod-scratch-{prod}"
        ))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("id=\"no-policy\""), "{html}");
    let html = app
        .get(&format!(
            "/policies/edit/{prod}/sns/us-east-1/demo-prod-alerts"
        ))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("sns:Publish"), "{html}");
    let html = app
        .get(&format!(
            "/policies/edit/{prod}/managed_policy/KmsUseDefault"
        ))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("v1") && html.contains("(default)"), "{html}");

    // Each service has its own line on /admin/accounts.
    let statuses = app
        .state
        .0
        .store
        .list_account_status()
        .await
        .expect("status");
    let mine = statuses
        .iter()
        .find(|s| s.account_id == prod)
        .expect("status");
    assert_eq!(mine.services.len(), 3, "{:?}", mine.services);
    assert!(mine.services.iter().all(|s| s.error.is_none()));
}

#[tokio::test]
async fn typeahead_suggests_synced_buckets_queues_and_topics() {
    let app = crate::support::TestApp::demo().await;
    let prod = "111122223333";
    let r = json(
        &app,
        &format!("/api/v2/typeahead/self_service_resources?resource_type=s3&typeahead=REPORTS&account_id={prod}"),
    )
    .await;
    assert_eq!(
        r,
        serde_json::json!([format!("arn:aws:s3:::demo-prod-reports-{prod}")])
    );
    let r = json(
        &app,
        "/api/v2/typeahead/resources?resource_type=sqs&typeahead=orders",
    )
    .await;
    assert_eq!(
        r.as_array().map(Vec::len),
        Some(3),
        "one queue per demo account: {r}"
    );
    let r = json(
        &app,
        "/api/v2/typeahead/self_service_resources?typeahead=alerts&limit=2",
    )
    .await;
    assert_eq!(r.as_array().map(Vec::len), Some(2), "{r}");
    for bad in ["resource_type=ec2", "limit=0"] {
        let resp = app
            .get(&format!("/api/v2/typeahead/self_service_resources?{bad}"))
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    // The wizard's bucket field asks for suggestions.
    let html = app
        .get("/selfservice?role=arn:aws:iam::111122223333:role/payments-api&template=s3_read")
        .await
        .text()
        .await
        .expect("html");
    if html.contains("v-bucket") {
        assert!(html.contains("data-typeahead=\"s3\""), "{html}");
    }
}
