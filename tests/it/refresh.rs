//! After an approval, only the touched roles are re-read from AWS and written to the Store, the
//! search index and "my roles" change for those roles alone, and another replica follows by
//! reading the change log and those items, not the whole account. On both stores, against
//! moto (and a real Redis with DynamoDB).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use iamdesk::app::App;
use iamdesk::resources::index::Query;
use iamdesk::resources::model::{AccountStatus, ResourceKey, ResourceKind};
use iamdesk::resources::stored::{
    ResourceAccount, ResourceChange, ResourceItem, ResourceStamp, ResourceWrite, WriteOutcome,
};
use iamdesk::resources::sync;
use iamdesk::store::*;
use serde_json::{Value, json};

use crate::support::{
    TestApp, account_id, create_role, csrf_for, iam_in, moto_endpoint, spoke_app,
};

const ADMIN: &str = "admin@example.com";
const DEV: &str = "dev@example.com";

/// A Store that counts the calls made through it, by method.
struct Counting {
    inner: Arc<dyn Store>,
    calls: Mutex<HashMap<&'static str, usize>>,
}

impl Counting {
    fn new(inner: Arc<dyn Store>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            calls: Mutex::new(HashMap::new()),
        })
    }

    fn count(&self, method: &'static str) {
        *self.calls.lock().expect("lock").entry(method).or_default() += 1;
    }

    fn take(&self) -> HashMap<&'static str, usize> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }
}

#[async_trait]
impl Store for Counting {
    async fn ping(&self) -> StoreResult<()> {
        self.count("ping");
        self.inner.ping().await
    }
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    async fn create_request(
        &self,
        r: &PolicyRequest,
        e: &AuditEvent,
        o: &[OutboxMessage],
    ) -> StoreResult<()> {
        self.count("create_request");
        self.inner.create_request(r, e, o).await
    }
    async fn update_request(
        &self,
        r: &PolicyRequest,
        e: &AuditEvent,
        o: &[OutboxMessage],
    ) -> StoreResult<()> {
        self.count("update_request");
        self.inner.update_request(r, e, o).await
    }
    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>> {
        self.count("get_request");
        self.inner.get_request(id).await
    }
    async fn list_requests(
        &self,
        f: &RequestFilter,
        p: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>> {
        self.count("list_requests");
        self.inner.list_requests(f, p).await
    }
    async fn request_postings(
        &self,
        k: &iamdesk::store::RequestKey,
        p: &PageRequest,
    ) -> StoreResult<Page<iamdesk::store::Posting>> {
        self.count("request_postings");
        self.inner.request_postings(k, p).await
    }
    async fn get_requests(&self, ids: &[String]) -> StoreResult<Vec<PolicyRequest>> {
        self.count("get_requests");
        self.inner.get_requests(ids).await
    }
    async fn append_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        self.count("append_audit");
        self.inner.append_audit(e).await
    }
    async fn list_audit(&self, r: Option<&str>, p: &PageRequest) -> StoreResult<Page<AuditEvent>> {
        self.count("list_audit");
        self.inner.list_audit(r, p).await
    }
    async fn get_outbox(&self, id: &str) -> StoreResult<Option<OutboxMessage>> {
        self.count("get_outbox");
        self.inner.get_outbox(id).await
    }
    async fn list_outbox(
        &self,
        s: Option<OutboxStatus>,
        p: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>> {
        self.count("list_outbox");
        self.inner.list_outbox(s, p).await
    }
    async fn due_outbox(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.count("due_outbox");
        self.inner.due_outbox(channel, now, limit).await
    }
    async fn enqueue_outbox(&self, m: &OutboxMessage) -> StoreResult<()> {
        self.count("enqueue_outbox");
        self.inner.enqueue_outbox(m).await
    }
    async fn add_comment(
        &self,
        id: &str,
        c: &iamdesk::store::Comment,
        max: usize,
        e: &AuditEvent,
        o: &[OutboxMessage],
    ) -> StoreResult<()> {
        self.count("add_comment");
        self.inner.add_comment(id, c, max, e, o).await
    }
    async fn update_outbox(&self, m: &OutboxMessage) -> StoreResult<()> {
        self.count("update_outbox");
        self.inner.update_outbox(m).await
    }
    async fn resource_accounts(&self) -> StoreResult<Vec<ResourceAccount>> {
        self.count("resource_accounts");
        self.inner.resource_accounts().await
    }
    async fn resource_account(&self, id: &str) -> StoreResult<Option<ResourceAccount>> {
        self.count("resource_account");
        self.inner.resource_account(id).await
    }
    async fn resource_stamps(&self, id: &str) -> StoreResult<Vec<ResourceStamp>> {
        self.count("resource_stamps");
        self.inner.resource_stamps(id).await
    }
    async fn list_resources(&self, id: &str) -> StoreResult<Vec<ResourceItem>> {
        self.count("list_resources");
        self.inner.list_resources(id).await
    }
    async fn get_resources(
        &self,
        id: &str,
        keys: &[ResourceKey],
    ) -> StoreResult<Vec<ResourceItem>> {
        self.count("get_resources");
        self.inner.get_resources(id, keys).await
    }
    async fn resource_changes(&self, id: &str, after: u64) -> StoreResult<Vec<ResourceChange>> {
        self.count("resource_changes");
        self.inner.resource_changes(id, after).await
    }
    async fn write_resources(&self, w: &ResourceWrite) -> StoreResult<WriteOutcome> {
        self.count("write_resources");
        self.inner.write_resources(w).await
    }
    async fn put_account_status(&self, s: &AccountStatus) -> StoreResult<()> {
        self.count("put_account_status");
        self.inner.put_account_status(s).await
    }
    async fn list_account_status(&self) -> StoreResult<Vec<AccountStatus>> {
        self.count("list_account_status");
        self.inner.list_account_status().await
    }
}

struct World {
    app: TestApp,
    account: String,
    iam: aws_sdk_iam::Client,
    csrf: (String, String),
}

/// A moto spoke account with `app` and a few other roles, synced into a portal on the embedded
/// store, or on DynamoDB behind Redis when `dynamo`.
async fn world(dynamo: bool) -> Option<World> {
    moto_endpoint()?;
    let redis = if dynamo {
        Some(crate::support::redis_url()?)
    } else {
        None
    };
    let account = account_id();
    let iam = iam_in(&account).await;
    create_role(&iam, "app", &[]).await;
    for i in 0..4 {
        create_role(
            &iam,
            &format!("other-{i}"),
            &[("consoleme-authorized", "dev@example.com")],
        )
        .await;
    }
    let prefix = if dynamo {
        let prefix = crate::support::unique("rf");
        let client = iamdesk::aws::dynamodb_client(&Default::default()).await;
        iamdesk::migrate::run(&client, &prefix)
            .await
            .expect("migrate");
        Some(prefix)
    } else {
        None
    };
    let app = spoke_app(&account, |config| {
        config.groups.can_admin = vec!["admins".into()];
        if let Some(prefix) = prefix {
            config.storage.backend = iamdesk::config::StorageBackend::Dynamodb;
            config.storage.dynamodb.table_prefix = prefix;
            config.redis.url = redis;
        }
    })
    .await;
    let csrf = csrf_for(&app).await;
    Some(World {
        app,
        account,
        iam,
        csrf,
    })
}

impl World {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &str,
        groups: &str,
        body: Value,
    ) -> Value {
        let resp = self
            .app
            .send_as(method, path, (who, groups), Some(&self.csrf), Some(&body))
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn items(&self) -> BTreeMap<ResourceKey, ResourceItem> {
        self.app
            .state
            .store
            .list_resources(&self.account)
            .await
            .expect("items")
            .into_iter()
            .map(|i| (i.key(), i))
            .collect()
    }

    async fn generation(&self) -> u64 {
        self.app
            .state
            .store
            .resource_account(&self.account)
            .await
            .expect("account")
            .map_or(0, |a| a.generation)
    }

    fn found(&self, action: &str) -> Vec<String> {
        self.app
            .state
            .resources
            .index()
            .search(&Query {
                action: Some(action.into()),
                kind: Some(ResourceKind::Role),
                limit: 50,
                ..Default::default()
            })
            .items
            .into_iter()
            .map(|s| s.name)
            .collect()
    }
}

#[tokio::test]
async fn an_approval_writes_only_the_role_it_changed() {
    let Some(w) = world(false).await else { return };
    approval_writes_only_the_role_it_changed(w).await;
}

#[tokio::test]
async fn an_approval_writes_only_the_role_it_changed_on_dynamodb_and_redis() {
    let Some(w) = world(true).await else { return };
    approval_writes_only_the_role_it_changed(w).await;
}

async fn approval_writes_only_the_role_it_changed(w: World) {
    // A second replica on the same Store and cache, counting what it reads.
    let config = w.app.state.config.clone();
    let replica = App::build(config).await.expect("second replica");
    let counting = Counting::new(replica.store.clone());
    let replica_deps = sync::Deps {
        store: counting.clone(),
        ..replica.resource_deps()
    };

    let before = w.items().await;
    let generation = w.generation().await;
    assert_eq!(before.len(), 5, "one item per role");
    assert!(w.found("s3:GetObject").is_empty());
    let mine = |app: &App| -> Vec<String> {
        iamdesk::credentials::entitled_roles(app, DEV, &[])
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    // Built now (first use); from here on kept up to date role by role.
    assert_eq!(
        mine(&w.app.state),
        ["other-0", "other-1", "other-2", "other-3"]
    );
    assert_eq!(mine(&replica), ["other-0", "other-1", "other-2", "other-3"]);

    let arn = format!("arn:aws:iam::{}:role/app", w.account);
    let principal = json!({"principal_type": "AwsResource", "principal_arn": arn});
    let created = w
        .call(
            reqwest::Method::POST,
            "/api/v2/request",
            DEV,
            "dev",
            json!({"justification": "reports and access", "changes": {"changes": [
                {"change_type": "inline_policy", "principal": principal, "policy_name": "reports",
                 "action": "attach", "policy": {"policy_document": {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                                "Resource": "arn:aws:s3:::reports/*"}]}}},
                {"change_type": "resource_tag", "principal": principal,
                 "key": "consoleme-authorized", "value": DEV, "tag_action": "create"}]}}),
        )
        .await;
    let id = created["request_id"].as_str().expect("id").to_string();
    w.call(
        reqwest::Method::PUT,
        &format!("/api/v2/requests/{id}"),
        ADMIN,
        "admins",
        json!({"modification_model": {"command": "approve_request"}}),
    )
    .await;
    w.iam
        .get_role_policy()
        .role_name("app")
        .policy_name("reports")
        .send()
        .await
        .expect("applied in AWS");

    // The Store: `app` rewritten, every other item exactly as it was, one generation on, one
    // log entry naming `app`.
    let after = w.items().await;
    let app_key = ResourceKey::role("app");
    assert_eq!(after.len(), before.len());
    for (key, item) in &after {
        if *key == app_key {
            assert_ne!(item.hash, before[key].hash, "app changed");
            assert!(item.fetched_at > before[key].fetched_at, "app re-read");
        } else {
            assert_eq!(item, &before[key], "{key:?} untouched");
        }
    }
    assert_eq!(w.generation().await, generation + 1);
    let log = w
        .app
        .state
        .store
        .resource_changes(&w.account, generation)
        .await
        .expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].full, log[0].keys.clone()),
        (false, vec![app_key.clone()])
    );

    // This replica: search and "my roles" show it at once.
    assert_eq!(w.found("s3:GetObject"), ["app"]);
    assert_eq!(
        w.app.state.resources.account_generation(&w.account),
        Some(generation + 1)
    );
    assert_eq!(
        mine(&w.app.state),
        ["app", "other-0", "other-1", "other-2", "other-3"]
    );

    // The other replica follows: the log and the one item, never the whole account.
    assert!(sync::catch_up(&replica_deps, false).await.expect("follow"));
    let calls = counting.take();
    assert_eq!(calls.get("list_resources"), None, "{calls:?}");
    assert_eq!(calls.get("get_resources"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("resource_changes"), Some(&1), "{calls:?}");
    let (_, role) = replica.resources.role(&w.account, "app").expect("role");
    assert!(role.inline_policies.iter().any(|p| p.name == "reports"));
    assert_eq!(
        mine(&replica),
        ["app", "other-0", "other-1", "other-2", "other-3"]
    );
    // Nothing new: one cheap read of the generations, nothing else.
    assert!(!sync::catch_up(&replica_deps, false).await.expect("follow"));
    let calls = counting.take();
    assert_eq!(
        calls.into_iter().collect::<Vec<_>>(),
        [("resource_accounts", 1)]
    );
}

#[tokio::test]
async fn a_refresh_overlapping_a_sync_never_breaks_readers() {
    if moto_endpoint().is_none() {
        return;
    }
    for dynamo in [false, true] {
        let Some(w) = world(dynamo).await else { return };
        // More roles than one DynamoDB transaction holds, so the sync writes in several steps.
        for i in 0..110 {
            create_role(&w.iam, &format!("bulk-{i:03}"), &[]).await;
        }
        w.iam
            .put_role_policy()
            .role_name("app")
            .policy_name("late")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*"}]}"#)
            .send()
            .await
            .expect("policy");
        let deps = w.app.state.resource_deps();
        let sync_run = {
            let deps = deps.clone();
            tokio::spawn(async move { sync::run(&deps).await })
        };
        let mut refreshes = vec![];
        for _ in 0..5 {
            let deps = deps.clone();
            let role = (w.account.clone(), "app".to_string());
            refreshes.push(tokio::spawn(async move {
                sync::refresh_roles(&deps, &[role]).await
            }));
            tokio::task::yield_now().await;
        }
        // A reader loading the account all along never fails.
        let store = w.app.state.store.clone();
        let account = w.account.clone();
        let reader = tokio::spawn(async move {
            for _ in 0..20 {
                store
                    .list_resources(&account)
                    .await
                    .expect("a load never fails");
                tokio::task::yield_now().await;
            }
        });
        let outcome = sync_run.await.expect("task").expect("sync");
        assert_eq!(outcome.failed(), 0);
        for r in refreshes {
            assert_eq!(r.await.expect("task").expect("refresh"), [true]);
        }
        reader.await.expect("reader");

        // A fresh replica loads every account, and it matches the Store and AWS.
        let replica = App::build(w.app.state.config.clone())
            .await
            .expect("replica");
        let (_, role) = replica.resources.role(&w.account, "app").expect("app");
        assert!(
            role.inline_policies.iter().any(|p| p.name == "late"),
            "the latest read of app"
        );
        assert_eq!(
            replica.resources.snapshots()[0].principals.len(),
            w.items().await.len()
        );
        assert!(replica.resources.role(&w.account, "bulk-109").is_some());
        // And the writing replica, having followed its own writes, agrees.
        sync::catch_up(&deps, false).await.expect("follow");
        let (_, mine) = w.app.state.resources.role(&w.account, "app").expect("app");
        assert_eq!(mine, role);
        assert_eq!(
            w.app.state.resources.account_generation(&w.account),
            Some(w.generation().await)
        );
    }
}

#[tokio::test]
async fn a_refresh_deletes_a_vanished_role_and_one_bad_account_stops_nothing() {
    let Some(w) = world(false).await else { return };
    let deps = w.app.state.resource_deps();
    w.iam
        .delete_role()
        .role_name("other-3")
        .send()
        .await
        .expect("delete role");
    w.iam
        .put_role_policy()
        .role_name("app")
        .policy_name("later")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}"#)
        .send()
        .await
        .expect("policy");
    let before = w.generation().await;
    let result = sync::refresh_roles(
        &deps,
        &[
            ("000000000000".to_string(), "ghost".to_string()),
            (w.account.clone(), "other-3".to_string()),
            (w.account.clone(), "app".to_string()),
        ],
    )
    .await;
    assert!(result.is_err(), "the unknown account is reported");
    // The configured account was refreshed all the same, in one write.
    assert_eq!(w.generation().await, before + 1);
    let items = w.items().await;
    assert!(
        !items.contains_key(&ResourceKey::role("other-3")),
        "gone from the Store"
    );
    assert!(
        w.app.state.resources.role(&w.account, "other-3").is_none(),
        "and from the view"
    );
    assert_eq!(w.found("kms:Decrypt"), ["app"], "the index follows");
    assert_eq!(
        sync::refresh_roles(&deps, &[(w.account.clone(), "other-3".to_string())])
            .await
            .expect("refresh"),
        [false]
    );
}
