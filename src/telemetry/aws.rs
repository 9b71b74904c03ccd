//! Every AWS call, counted where the SDK finishes it: an interceptor that each client of
//! iamdesk (IAM, STS, DynamoDB, SESv2, SQS) carries, so no call site can forget it. It counts
//! calls and their bytes (request body sent, response `Content-Length` received) into the
//! Prometheus metrics, and into any [`Tally`] watching a DynamoDB table prefix: how the cost
//! model test (`tests/it/cost.rs`) and `scripts/bench-dynamo` count what one operation costs
//! without a mock and without other tests' calls mixed in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Counts each operation once, after the SDK's own retries, by service, operation and outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallMetrics;

/// Calls and bytes of one operation name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub calls: u64,
    pub sent: u64,
    pub received: u64,
}

impl Cost {
    pub fn bytes(&self) -> u64 {
        self.sent + self.received
    }
}

/// The calls whose request names a table starting with a prefix, by operation (each attempt
/// counts, retries included: what DynamoDB bills).
#[derive(Debug, Default)]
pub struct Tally {
    needle: String,
    by_operation: Mutex<BTreeMap<String, Cost>>,
}

impl Tally {
    /// Everything counted since the last call, and start again from zero.
    pub fn take(&self) -> BTreeMap<String, Cost> {
        std::mem::take(&mut *self.by_operation.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn add(&self, operation: &str, f: impl FnOnce(&mut Cost)) {
        let mut map = self.by_operation.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(operation.to_string()).or_default());
    }
}

static WATCHING: AtomicBool = AtomicBool::new(false);
static TALLIES: Mutex<Vec<Arc<Tally>>> = Mutex::new(Vec::new());

/// Count every call of this process that names a table of `table_prefix` (the JSON body of a
/// DynamoDB request carries `"<table name>"`). Prefixes should be unique, like tests' tables.
pub fn watch(table_prefix: &str) -> Arc<Tally> {
    let tally = Arc::new(Tally {
        needle: format!("\"{table_prefix}"),
        by_operation: Mutex::default(),
    });
    TALLIES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(tally.clone());
    WATCHING.store(true, Ordering::Relaxed);
    tally
}

/// The tally an attempt was counted in, for its response bytes.
#[derive(Debug, Clone)]
struct Counted(Arc<Tally>);

impl Storable for Counted {
    type Storer = StoreReplace<Self>;
}

fn names(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>()
        .map_or(("unknown".to_string(), "unknown".to_string()), |m| {
            (m.service().to_string(), m.name().to_string())
        })
}

impl Intercept for CallMetrics {
    fn name(&self) -> &'static str {
        "iamdesk-call-metrics"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        let (service, operation) = names(cfg);
        super::metrics::aws_bytes(&service, &operation, "sent", body.len() as u64);
        if WATCHING.load(Ordering::Relaxed) {
            let text = String::from_utf8_lossy(body);
            let found = TALLIES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|t| text.contains(&t.needle))
                .cloned();
            if let Some(tally) = found {
                tally.add(&operation, |c| {
                    c.calls += 1;
                    c.sent += body.len() as u64;
                });
                cfg.interceptor_state().store_put(Counted(tally));
            }
        }
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let len = response
            .body()
            .bytes()
            .map(|b| b.len() as u64)
            .or_else(|| {
                response
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        let (service, operation) = names(cfg);
        super::metrics::aws_bytes(&service, &operation, "received", len);
        if let Some(Counted(tally)) = cfg.load::<Counted>().cloned() {
            tally.add(&operation, |c| c.received += len);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "ok",
            Some(Err(e)) if e.is_operation_error() => "service_error",
            Some(Err(e)) if e.is_timeout_error() => "timeout",
            Some(Err(e)) if e.is_connector_error() => "connection_error",
            Some(Err(_)) | None => "error",
        };
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("unknown", "unknown"), |m| (m.service(), m.name()));
        super::metrics::aws_call(service, operation, outcome);
        Ok(())
    }
}
