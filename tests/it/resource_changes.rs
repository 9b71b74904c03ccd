//! Changes to buckets, queues, topics and customer-managed policies (issue 14 items 3 and 4)
//! against moto: each change type applied and read back from AWS, the five-version rule with the
//! DeletePolicyVersion the review listed being the one moto recorded, bad input refused with
//! nothing applied, and a cross-account grant that brings its bucket policy along.

use iamdesk::cloud::IamOp;
use iamdesk::resources::model::{ResourceKey, ResourceKind};
use iamdesk::store::RequestStatus;
use serde_json::{Value, json};

use crate::browser::Act;
use crate::expiry::approve;
use crate::requests::{
    Backends, DEV, OTHER_ADMIN, World, count_requests, create_ok, post_request, world_tuned,
};
use crate::support::{account_id, iam_in, moto_endpoint, services_in};

fn body(changes: Vec<Value>) -> Value {
    json!({"justification": "ticket RES-14: the export job", "changes": {"changes": changes}})
}

fn doc(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn read_statement(principal: &str, action: &str, resource: &str) -> Value {
    json!({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": action,
           "Resource": resource})
}

fn resource_policy(arn: &str, policy: Option<Value>) -> Value {
    let mut c = json!({"change_type": "resource_policy",
        "principal": {"principal_type": "AwsResource", "principal_arn": arn}, "arn": arn});
    match policy {
        Some(p) => c["policy"] = json!({"policy_document": p}),
        None => c["action"] = json!("detach"),
    }
    c
}

fn resource_tag(arn: &str, action: &str, key: &str, value: &str) -> Value {
    json!({"change_type": "resource_tag",
        "principal": {"principal_type": "AwsResource", "principal_arn": arn},
        "key": key, "value": value, "tag_action": action})
}

/// A world (role `app` in account A, admins may approve) with `extra` accounts configured too.
async fn world_with(extra: &[&str]) -> Option<World> {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    world_tuned(Backends::Embedded, move |c| {
        for (i, a) in extra.iter().enumerate() {
            c.account_ids_to_name.insert(a.clone(), format!("other{i}"));
        }
    })
    .await
}

/// A world whose role `app` is in account A, and a second configured account B holding the
/// synced bucket `{prefix}-{B}`: (world, B, bucket, B's S3 client).
async fn with_bucket_in_another_account(
    prefix: &str,
) -> Option<(World, String, String, aws_sdk_s3::Client)> {
    moto_endpoint()?;
    let b = account_id();
    let w = world_with(&[b.as_str()]).await?;
    let (s3, _, _) = services_in(&b).await;
    let bucket = format!("{prefix}-{b}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    resync(&w).await;
    Some((w, b, bucket, s3))
}

async fn resync(w: &World) {
    iamdesk::resources::sync::run(&w.app.state.resource_deps())
        .await
        .expect("sync");
}

/// Create as the developer, approve as another admin; the request as stored after.
async fn request_and_approve(w: &World, changes: Vec<Value>) -> iamdesk::store::PolicyRequest {
    let id = create_ok(w, DEV, "dev", body(changes)).await;
    approve(w, &id).await;
    let done = w.request(&id).await;
    assert_eq!(done.status, RequestStatus::Approved, "{:?}", done.results);
    done
}

/// The reviewed calls of a request (the API's `plan`), every change.
async fn planned_calls(w: &World, id: &str) -> (Value, Vec<IamOp>) {
    let view: Value = w
        .get_as(OTHER_ADMIN, "admins", &format!("/api/v2/requests/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let mut calls = vec![];
    for p in view["plan"].as_array().cloned().unwrap_or_default() {
        let more: Vec<IamOp> = serde_json::from_value(p["calls"].clone()).expect("calls");
        calls.extend(more);
    }
    (view, calls)
}

fn synced_policy(w: &World, account: &str, key: ResourceKey) -> Option<Value> {
    let accounts = w.app.state.resources.snapshots();
    let acct = accounts.iter().find(|x| x.account_id == account)?;
    acct.service(&key).and_then(|r| r.policy.clone())
}

#[tokio::test]
async fn resource_policies_and_tags_are_applied_and_read_back() {
    let Some(w) = world_with(&[]).await else {
        return;
    };
    let a = w.account.clone();
    let (s3, sqs, sns) = services_in(&a).await;
    let reader = format!("arn:aws:iam::{a}:role/app");
    let with_policy = format!("data-{a}");
    let bare = format!("bare-{a}");
    for b in [&with_policy, &bare] {
        s3.create_bucket().bucket(b).send().await.expect("bucket");
    }
    let old = doc(json!([read_statement(
        &reader,
        "s3:ListBucket",
        &format!("arn:aws:s3:::{with_policy}")
    )]));
    s3.put_bucket_policy()
        .bucket(&with_policy)
        .policy(old.to_string())
        .send()
        .await
        .expect("policy");
    let queue_url = sqs
        .create_queue()
        .queue_name("jobs")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_string();
    let topic_arn = sns
        .create_topic()
        .name("alerts")
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("arn")
        .to_string();
    resync(&w).await;

    // Replace an existing bucket policy, and set one where there was none.
    let bucket_arn = format!("arn:aws:s3:::{with_policy}");
    let new = doc(json!([read_statement(
        &reader,
        "s3:GetObject",
        &format!("{bucket_arn}/exports/*")
    )]));
    let bare_arn = format!("arn:aws:s3:::{bare}");
    let first = doc(json!([read_statement(&reader, "s3:ListBucket", &bare_arn)]));
    let done = request_and_approve(
        &w,
        vec![
            resource_policy(&bucket_arn, Some(new.clone())),
            resource_policy(&bare_arn, Some(first.clone())),
        ],
    )
    .await;
    assert_eq!(done.changes.len(), 2);
    let read = |b: String| {
        let s3 = s3.clone();
        async move {
            let text = s3
                .get_bucket_policy()
                .bucket(b)
                .send()
                .await
                .expect("policy")
                .policy()
                .unwrap_or_default()
                .to_string();
            serde_json::from_str::<Value>(&text).expect("json")
        }
    };
    assert_eq!(read(with_policy.clone()).await, new);
    assert_eq!(read(bare.clone()).await, first);
    assert_eq!(
        synced_policy(&w, &a, ResourceKey::new(ResourceKind::S3, &with_policy)),
        Some(new),
        "the bucket is re-read into the index after the apply"
    );

    // Remove it again.
    request_and_approve(&w, vec![resource_policy(&bare_arn, None)]).await;
    let gone = s3.get_bucket_policy().bucket(&bare).send().await;
    assert!(gone.is_err(), "the bucket policy is removed");
    assert_eq!(
        synced_policy(&w, &a, ResourceKey::new(ResourceKind::S3, &bare)),
        None
    );

    // A queue without a policy gets one; the topic's policy is replaced.
    let queue_arn = format!("arn:aws:sqs:us-east-1:{a}:jobs");
    let queue_doc = doc(json!([read_statement(
        &reader,
        "sqs:SendMessage",
        &queue_arn
    )]));
    let topic_doc = doc(json!([read_statement(&reader, "sns:Publish", &topic_arn)]));
    request_and_approve(
        &w,
        vec![
            resource_policy(&queue_arn, Some(queue_doc.clone())),
            resource_policy(&topic_arn, Some(topic_doc.clone())),
        ],
    )
    .await;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .expect("attributes");
    let text = attrs
        .attributes()
        .and_then(|m| m.get(&aws_sdk_sqs::types::QueueAttributeName::Policy))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        queue_doc
    );
    let attrs = sns
        .get_topic_attributes()
        .topic_arn(&topic_arn)
        .send()
        .await
        .expect("topic attributes");
    let text = attrs
        .attributes()
        .and_then(|m| m.get("Policy"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        topic_doc
    );

    // Tags: the bucket keeps its other tags (S3 replaces the whole set), queue and topic too.
    request_and_approve(
        &w,
        vec![
            resource_tag(&bucket_arn, "create", "team", "data"),
            resource_tag(&queue_arn, "create", "team", "jobs"),
            resource_tag(&topic_arn, "create", "team", "sre"),
        ],
    )
    .await;
    request_and_approve(&w, vec![resource_tag(&bucket_arn, "create", "cost", "42")]).await;
    let tags = s3
        .get_bucket_tagging()
        .bucket(&with_policy)
        .send()
        .await
        .expect("tags");
    let mut keys: Vec<&str> = tags.tag_set().iter().map(|t| t.key()).collect();
    keys.sort();
    assert_eq!(keys, ["cost", "team"]);
    let qtags = sqs
        .list_queue_tags()
        .queue_url(&queue_url)
        .send()
        .await
        .expect("queue tags");
    assert_eq!(
        qtags.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("jobs")
    );
    let ttags = sns
        .list_tags_for_resource()
        .resource_arn(&topic_arn)
        .send()
        .await
        .expect("topic tags");
    assert!(
        ttags
            .tags()
            .iter()
            .any(|t| t.key() == "team" && t.value() == "sre")
    );
}

#[tokio::test]
async fn a_managed_policy_is_created_then_its_sixth_version_deletes_the_oldest_first() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let Some(w) = world_with(&[]).await else {
        return;
    };
    let a = w.account.clone();
    let name = format!(
        "reports-read-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let arn = format!("arn:aws:iam::{a}:policy/{name}");
    let version = |n: u32| {
        doc(json!([{"Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": format!("arn:aws:s3:::reports/v{n}/*")}]))
    };
    let change = |d: Value| {
        json!({"change_type": "managed_policy_resource",
               "principal": {"principal_type": "AwsResource", "principal_arn": arn},
               "policy": {"policy_document": d}})
    };
    // Not synced yet: the change creates it.
    let done = request_and_approve(&w, vec![change(version(1))]).await;
    let (_, calls) = planned_calls(&w, &done.id).await;
    assert!(
        matches!(&calls[..], [IamOp::CreatePolicy { policy_name, .. }] if *policy_name == name)
    );
    let iam = iam_in(&a).await;
    iam.get_policy()
        .policy_arn(&arn)
        .send()
        .await
        .expect("created in AWS");

    // Four more versions made outside iamdesk: IAM now holds five.
    for n in 2..=5 {
        iam.create_policy_version()
            .policy_arn(&arn)
            .policy_document(version(n).to_string())
            .set_as_default(true)
            .send()
            .await
            .expect("version");
    }
    resync(&w).await;

    let id = create_ok(&w, DEV, "dev", body(vec![change(version(6))])).await;
    let (view, calls) = planned_calls(&w, &id).await;
    assert_eq!(
        calls,
        vec![
            IamOp::DeletePolicyVersion {
                policy_arn: arn.clone(),
                version_id: "v1".into()
            },
            IamOp::CreatePolicyVersion {
                policy_arn: arn.clone(),
                document: version(6)
            },
        ],
        "the oldest non-default version is deleted first, and the review says so"
    );
    let page = w.page(OTHER_ADMIN, "admins", &id).await;
    assert!(
        page.contains("iam:DeletePolicyVersion"),
        "the page lists the deletion"
    );

    let http = reqwest::Client::new();
    http.post(format!("{endpoint}/moto-api/recorder/start-recording"))
        .send()
        .await
        .expect("start recording");
    assert_eq!(view["version"], w.request(&id).await.version);
    approve(&w, &id).await;
    let recording = http
        .get(format!("{endpoint}/moto-api/recorder/download-recording"))
        .send()
        .await
        .expect("download")
        .text()
        .await
        .expect("text");
    let _ = http
        .post(format!("{endpoint}/moto-api/recorder/stop-recording"))
        .send()
        .await;
    assert_eq!(recorded_policy_writes(&recording, &arn), calls);
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);

    let versions = iam
        .list_policy_versions()
        .policy_arn(&arn)
        .send()
        .await
        .expect("versions");
    let ids: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert!(!ids.contains(&"v1"), "{ids:?}");
    let default = versions
        .versions()
        .iter()
        .find(|v| v.is_default_version())
        .and_then(|v| v.version_id())
        .expect("default");
    assert_eq!(default, "v6");
}

/// The policy-version writes moto recorded for `arn`, as `IamOp`s.
fn recorded_policy_writes(recording: &str, arn: &str) -> Vec<IamOp> {
    let mut out = vec![];
    for form in crate::support::recorded_forms(recording) {
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if get("PolicyArn").as_deref() != Some(arn) {
            continue;
        }
        match get("Action").as_deref() {
            Some("DeletePolicyVersion") => out.push(IamOp::DeletePolicyVersion {
                policy_arn: arn.to_string(),
                version_id: get("VersionId").unwrap_or_default(),
            }),
            Some("CreatePolicyVersion") => out.push(IamOp::CreatePolicyVersion {
                policy_arn: arn.to_string(),
                document: serde_json::from_str(&get("PolicyDocument").unwrap_or_default())
                    .expect("document"),
            }),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn bad_resource_changes_are_refused_with_the_problem_and_nothing_is_applied() {
    let Some(w) = world_with(&[]).await else {
        return;
    };
    let a = w.account.clone();
    let (s3, _, _) = services_in(&a).await;
    let bucket = format!("guarded-{a}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    resync(&w).await;
    let arn = format!("arn:aws:s3:::{bucket}");
    let reader = format!("arn:aws:iam::{a}:role/app");
    let before = count_requests(&w).await;

    let refused = |field: &'static str, needle: &'static str, change: Value| {
        let w = &w;
        async move {
            let resp = post_request(w, DEV, "dev", body(vec![change])).await;
            assert_eq!(resp.status(), 400, "{field}");
            let v: Value = resp.json().await.expect("json");
            let text = v.to_string();
            assert!(
                text.contains(field) && text.contains(needle),
                "expected {field} / {needle} in {text}"
            );
        }
    };
    // A Resource outside the bucket.
    refused(
        "Statement[0].Resource",
        "is not inside bucket",
        resource_policy(
            &arn,
            Some(doc(json!([read_statement(
                &reader,
                "s3:GetObject",
                "arn:aws:s3:::somebody-elses/*"
            )]))),
        ),
    )
    .await;
    // No Principal.
    refused(
        "Statement[0].Principal",
        "Principal (or NotPrincipal) is required",
        resource_policy(
            &arn,
            Some(doc(json!([{"Effect": "Allow", "Action": "s3:GetObject",
                             "Resource": format!("{arn}/*")}]))),
        ),
    )
    .await;
    // Over S3's 20 KB.
    let many: Vec<String> = (0..800).map(|i| format!("{arn}/prefix-{i:04}/*")).collect();
    refused(
        "changes[0].policy.policy_document",
        "20 KB",
        resource_policy(
            &arn,
            Some(doc(
                json!([{"Effect": "Allow", "Principal": {"AWS": reader},
                             "Action": "s3:GetObject", "Resource": many}]),
            )),
        ),
    )
    .await;
    // A managed policy one character over 6,144.
    let mut padded = doc(json!([{"Effect": "Allow", "Action": "s3:GetObject",
                                 "Resource": "arn:aws:s3:::x"}]));
    let base = serde_json::to_string(&padded).expect("json").len();
    padded["Statement"][0]["Resource"] =
        json!(format!("arn:aws:s3:::x{}", "y".repeat(6_145 - base)));
    assert_eq!(serde_json::to_string(&padded).expect("json").len(), 6_145);
    refused(
        "changes[0].policy.policy_document",
        "6145 characters",
        json!({"change_type": "managed_policy_resource",
               "principal": {"principal_type": "AwsResource",
                             "principal_arn": format!("arn:aws:iam::{a}:policy/too-big")},
               "policy": {"policy_document": padded}}),
    )
    .await;
    // A client may not pass its change off as iamdesk's own.
    let mut forged = resource_policy(
        &arn,
        Some(doc(json!([read_statement(
            &reader,
            "s3:GetObject",
            &format!("{arn}/*")
        )]))),
    );
    forged["autogenerated"] = json!(true);
    refused("changes[0].autogenerated", "set by iamdesk", forged).await;

    // A new version of a policy iamdesk's own role carries would widen iamdesk itself.
    let iam = iam_in(&a).await;
    crate::support::create_role(&iam, "iamdesk-spoke", &[]).await;
    let own = iam
        .create_policy()
        .policy_name("spoke-extra")
        .policy_document(
            doc(json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]))
                .to_string(),
        )
        .send()
        .await
        .expect("policy")
        .policy()
        .and_then(|p| p.arn())
        .expect("arn")
        .to_string();
    iam.attach_role_policy()
        .role_name("iamdesk-spoke")
        .policy_arn(&own)
        .send()
        .await
        .expect("attach");
    resync(&w).await;
    refused(
        "changes[0].principal.principal_arn",
        "iamdesk's own role",
        json!({"change_type": "managed_policy_resource",
               "principal": {"principal_type": "AwsResource", "principal_arn": own},
               "policy": {"policy_document": doc(json!([{"Effect": "Allow", "Action": "*",
                                                          "Resource": "*"}]))}}),
    )
    .await;

    assert_eq!(count_requests(&w).await, before, "nothing was stored");
    assert!(
        s3.get_bucket_policy().bucket(&bucket).send().await.is_err(),
        "nothing was applied"
    );
}

#[tokio::test]
async fn a_cross_account_bucket_grant_brings_its_bucket_policy_and_one_approval_applies_both() {
    let Some((w, b, bucket, s3)) = with_bucket_in_another_account("shared").await else {
        return;
    };
    let role = w.arn();
    let grant = json!({"change_type": "inline_policy",
        "principal": {"principal_type": "AwsResource", "principal_arn": role},
        "policy_name": "read-shared", "action": "attach",
        "policy": {"policy_document": doc(json!([{"Effect": "Allow", "Action": ["s3:GetObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/*")}]))}});
    let id = create_ok(&w, DEV, "dev", body(vec![grant])).await;
    let stored = w.request(&id).await;
    assert_eq!(stored.changes.len(), 2, "the bucket policy is added");
    let extra = serde_json::to_value(&stored.changes.changes[1]).expect("json");
    assert_eq!(extra["change_type"], "resource_policy");
    assert_eq!(extra["autogenerated"], true);
    assert_eq!(extra["account_id"], b.as_str());
    assert_eq!(
        extra["source_change_id"],
        stored.changes.changes[0].id(),
        "it says which grant it completes"
    );
    let statement = &extra["policy"]["policy_document"]["Statement"][0];
    assert_eq!(statement["Principal"]["AWS"], role.as_str());
    assert_eq!(statement["Resource"], format!("arn:aws:s3:::{bucket}/*"));

    // Reviewers see both diffs and both calls.
    let page = w.page(OTHER_ADMIN, "admins", &id).await;
    assert!(page.contains("s3:PutBucketPolicy") && page.contains("iam:PutRolePolicy"));
    assert!(page.contains("cross-account grant works"));
    approve(&w, &id).await;
    assert_eq!(w.request(&id).await.status, RequestStatus::Approved);
    w.iam
        .get_role_policy()
        .role_name("app")
        .policy_name("read-shared")
        .send()
        .await
        .expect("the inline policy is in account A");
    let text = s3
        .get_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .expect("the bucket policy is in account B")
        .policy()
        .unwrap_or_default()
        .to_string();
    assert!(text.contains(&role), "{text}");
}

/// The loop in a real browser, in the demo: search buckets by an action in their policy, open
/// one, request a new policy from its page as the requester, approve it as the admin, and see
/// the new policy on the bucket's page.
#[tokio::test]
async fn a_bucket_policy_change_requested_and_approved_in_a_real_browser() {
    use fantoccini::Locator;
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let app = crate::support::TestApp::demo().await;
    let c = &browser.client;
    let bucket = "demo-prod-reports-111122223333";
    c.goto(&app.url("/policies?type=s3")).await.expect("open");
    let q = c.find(Locator::Css("input[name=q]")).await.expect("box");
    q.send_keys("s3:GetObject").await.expect("type");
    c.click_on("form.filters button").await;
    let link = c
        .wait()
        .for_element(Locator::LinkText(bucket))
        .await
        .expect("the bucket whose policy allows s3:GetObject");
    browser.screenshot("resource-search").await;
    link.click().await.expect("open bucket");
    c.wait_for_xpath(&format!("//h1[.='{bucket}']"), "bucket page")
        .await;

    // The admin may not approve their own request: ask as the requester.
    let switch = |who: &'static str| async move {
        c.find(Locator::XPath(&format!(
            "//form[@class='persona-switch']//button[contains(., '{who}')]"
        )))
        .await
        .unwrap_or_else(|e| panic!("switch to {who}: {e}"))
        .click()
        .await
        .expect("switch");
        c.wait()
            .for_element(Locator::XPath(&format!(
                "//form[@class='persona-switch']//button[not(contains(., '{who}'))]"
            )))
            .await
            .expect("switched");
    };
    switch("requester").await;
    let new_policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Uploads",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/ml-training"},
        "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/uploads/*")}]});
    let area = c
        .find(Locator::Id("f-policy_document"))
        .await
        .expect("policy box");
    area.clear().await.expect("clear");
    area.send_keys(&new_policy.to_string())
        .await
        .expect("policy");
    c.type_in("#f-justification", "ML uploads land in this bucket")
        .await;
    browser.screenshot("resource-request-form").await;
    c.click_on("#submit-change").await;
    c.wait_for_xpath(
        "//*[contains(., 's3:PutBucketPolicy')]",
        "the request page lists the call",
    )
    .await;
    let request_url = c.current_url().await.expect("url").to_string();
    assert!(request_url.contains("/policies/request/"), "{request_url}");

    switch("admin").await;
    c.click_on("input[name=confirm]").await;
    browser.screenshot("resource-request-review").await;
    c.click_on("button.approve").await;
    c.wait_for_xpath(
        "//*[contains(@class,'status') and contains(., 'approved')]",
        "approved",
    )
    .await;

    c.goto(&app.url(&format!("/policies/edit/111122223333/s3/{bucket}")))
        .await
        .expect("bucket page again");
    let shown = c
        .find(Locator::Id("policy"))
        .await
        .expect("policy")
        .text()
        .await
        .expect("text");
    browser.screenshot("resource-after").await;
    assert!(
        shown.contains("s3:PutObject") && shown.contains("uploads"),
        "the new policy is shown: {shown}"
    );
    browser.close().await;
}

/// The wizard's review step says that a bucket in another account brings its bucket policy.
#[tokio::test]
async fn the_wizard_says_a_cross_account_bucket_brings_its_bucket_policy() {
    let Some((w, _, bucket, _)) = with_bucket_in_another_account("wizard").await else {
        return;
    };
    let arn = w.arn();
    let resp = w
        .app
        .client
        .post(w.app.url("/selfservice"))
        .header("x-user", DEV)
        .header("cookie", &w.csrf.0)
        .form(&[
            ("csrf_token", w.csrf.1.as_str()),
            ("role", arn.as_str()),
            ("permissions", "[]"),
            ("template", "s3_read"),
            ("v_bucket", bucket.as_str()),
            ("v_prefix", "2026/"),
            ("action", "add"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains(&format!(
            "The request will also set the resource policy of bucket {bucket}"
        )),
        "the review step names the bucket policy change"
    );
}

/// An expiring bucket policy is put back as it was (or removed where there was none) on time,
/// and one changed outside iamdesk meanwhile is left alone as drift.
#[tokio::test]
async fn an_expiring_bucket_policy_goes_back_on_time_unless_it_drifted() {
    let Some(w) = world_with(&[]).await else {
        return;
    };
    let a = w.account.clone();
    let (s3, _, _) = services_in(&a).await;
    let reader = format!("arn:aws:iam::{a}:role/app");
    let names: Vec<String> = ["had", "none", "drift"]
        .iter()
        .map(|n| format!("exp-{n}-{a}"))
        .collect();
    for b in &names {
        s3.create_bucket().bucket(b).send().await.expect("bucket");
    }
    let arn = |b: &str| format!("arn:aws:s3:::{b}");
    let old = doc(json!([read_statement(
        &reader,
        "s3:ListBucket",
        &arn(&names[0])
    )]));
    s3.put_bucket_policy()
        .bucket(&names[0])
        .policy(old.to_string())
        .send()
        .await
        .expect("old policy");
    resync(&w).await;
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(120))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let changes: Vec<Value> = names
        .iter()
        .map(|b| {
            let mut c = resource_policy(
                &arn(b),
                Some(doc(json!([read_statement(
                    &reader,
                    "s3:GetObject",
                    &format!("{}/*", arn(b))
                )]))),
            );
            c["expiration_date"] = json!(expires);
            c
        })
        .collect();
    let done = request_and_approve(&w, changes).await;
    assert!(done.changes.iter().all(|c| c.expires().is_some()));
    let drifted = doc(json!([read_statement(
        &reader,
        "s3:*",
        &format!("{}/*", arn(&names[2]))
    )]));
    s3.put_bucket_policy()
        .bucket(&names[2])
        .policy(drifted.to_string())
        .send()
        .await
        .expect("changed outside iamdesk");

    crate::expiry::later(&w, 121).await;
    let policy_of = |b: String| {
        let s3 = s3.clone();
        async move {
            let out = s3.get_bucket_policy().bucket(b).send().await.ok()?;
            serde_json::from_str::<Value>(out.policy()?).ok()
        }
    };
    assert_eq!(policy_of(names[0].clone()).await, Some(old), "put back");
    assert_eq!(policy_of(names[1].clone()).await, None, "removed again");
    assert_eq!(
        policy_of(names[2].clone()).await,
        Some(drifted),
        "left alone"
    );
    let r = w.request(&done.id).await;
    let outcomes: Vec<&str> = r
        .grant_outcomes
        .iter()
        .map(|o| o.outcome.as_str())
        .collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["drift", "expired", "expired"],
        "{:?}",
        r.grant_outcomes
    );
}
