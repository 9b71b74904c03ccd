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
