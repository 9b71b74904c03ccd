//! Prometheus metrics (`metrics.listen`, off by default): the `metrics` crate's macros record
//! wherever something happens, and this module installs the Prometheus recorder, samples the
//! gauges that are cheaper to read at scrape time than to keep up to date, and serves
//! `/metrics` on its own listener, never the public one.
//!
//! Every series and its labels are named here, once, so the call sites stay one line each and
//! label sets stay bounded: routes are the router's patterns (never raw paths holding ARNs or
//! ids), accounts are the configured ones, AWS operations are the SDK's names.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

pub const HTTP_REQUESTS: &str = "iamdesk_http_requests_total";
pub const HTTP_DURATION: &str = "iamdesk_http_request_duration_seconds";
pub const SYNC_DURATION: &str = "iamdesk_sync_duration_seconds";
pub const AWS_CALLS: &str = "iamdesk_aws_calls_total";
pub const AWS_BYTES: &str = "iamdesk_aws_bytes_total";
pub const OUTBOX_PENDING: &str = "iamdesk_outbox_pending";
pub const OUTBOX_OLDEST_AGE: &str = "iamdesk_outbox_oldest_pending_age_seconds";
pub const CACHE_LOOKUPS: &str = "iamdesk_cache_lookups_total";
pub const CACHE_BREAKER_OPEN: &str = "iamdesk_cache_breaker_open";
pub const INDEX_ENTRIES: &str = "iamdesk_index_entries";
pub const SIGN_IN_FAILURES: &str = "iamdesk_sign_in_failures_total";

/// Latency buckets (seconds) for HTTP requests and account syncs: 1 ms to 5 min.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The one Prometheus recorder of this process (the `metrics` facade is process-global).
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct InstallError(String);

/// Install the recorder (once per process; later calls return the same handle). Until this
/// runs, every `counter!`/`gauge!`/`histogram!` is a no-op, which is what "off" costs.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| InstallError(e.to_string()))?
        .install_recorder()
        .map_err(|e| InstallError(e.to_string()))?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    describe_counter!(
        AWS_BYTES,
        ::metrics::Unit::Bytes,
        "Bytes of AWS calls by service, operation and direction (sent request bodies, received \
         response bodies)"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by matched route pattern, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        ::metrics::Unit::Seconds,
        "HTTP request latency by matched route pattern, method and status"
    );
    describe_histogram!(
        SYNC_DURATION,
        ::metrics::Unit::Seconds,
        "Resource sync of one account and service, by result (ok or error)"
    );
    describe_counter!(
        AWS_CALLS,
        "AWS API calls (after the SDK's retries) by service, operation and outcome"
    );
    describe_gauge!(
        OUTBOX_PENDING,
        "Outbox messages not yet delivered (on DynamoDB counted up to 10,000)"
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        ::metrics::Unit::Seconds,
        "Age of the oldest undelivered outbox message (0 when none)"
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Read-through cache lookups by backend and result (hit, miss, error)"
    );
    describe_gauge!(
        CACHE_BREAKER_OPEN,
        "1 while the Redis circuit breaker is open (calls fail fast), else 0"
    );
    describe_gauge!(
        INDEX_ENTRIES,
        "Roles, users and managed policies in this replica's search index"
    );
    describe_counter!(
        SIGN_IN_FAILURES,
        "Failed sign-ins by method (token, cookie, alb, header)"
    );
}

/// One HTTP request: `route` is the matched pattern (`/api/v2/requests/{id}`), or
/// `unmatched` for a 404 of the fallback.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    let labels = [
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(took.as_secs_f64());
}

/// One account's sync of one service (`iam` today), `ok` or `error`.
pub fn sync_account(account: &str, service: &'static str, ok: bool, took: Duration) {
    histogram!(
        SYNC_DURATION,
        "account" => account.to_string(),
        "service" => service,
        "result" => if ok { "ok" } else { "error" },
    )
    .record(took.as_secs_f64());
}

/// One AWS call as the SDK finished it.
pub fn aws_call(service: &str, operation: &str, outcome: &'static str) {
    counter!(
        AWS_CALLS,
        // The SDK says `IAM`, `STS`, `DynamoDB`: lower case, like the AWS CLI's service names.
        "service" => service.to_ascii_lowercase(),
        "operation" => operation.to_string(),
        "outcome" => outcome,
    )
    .increment(1);
}

/// Bytes of one AWS call: the request body sent (`direction="sent"`) or the response body
/// received as its `Content-Length` says (`"received"`).
pub fn aws_bytes(service: &str, operation: &str, direction: &'static str, bytes: u64) {
    counter!(
        AWS_BYTES,
        "service" => service.to_ascii_lowercase(),
        "operation" => operation.to_string(),
        "direction" => direction,
    )
    .increment(bytes);
}

/// A read-through cache lookup: `hit`, `miss` or `error`.
pub fn cache_lookup(backend: &'static str, result: &'static str) {
    counter!(CACHE_LOOKUPS, "backend" => backend, "result" => result).increment(1);
}

/// The Redis breaker opened (`true`) or closed again.
pub fn cache_breaker(open: bool) {
    gauge!(CACHE_BREAKER_OPEN, "backend" => "redis").set(if open { 1.0 } else { 0.0 });
}

/// A sign-in that failed verification: `token`, `cookie`, `alb` or `header`.
pub fn sign_in_failed(method: &'static str) {
    counter!(SIGN_IN_FAILURES, "method" => method).increment(1);
}

/// Gauges read at scrape time: the outbox backlog (one Store query) and the index size.
async fn sample(state: &AppState) {
    gauge!(INDEX_ENTRIES).set(state.resources.index().len() as f64);
    match state.store.outbox_backlog().await {
        Ok(backlog) => {
            gauge!(OUTBOX_PENDING).set(backlog.pending as f64);
            let age = backlog
                .oldest
                .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            gauge!(OUTBOX_OLDEST_AGE).set(age);
        }
        // The scrape still answers with everything else; the stale gauges say less than a 500.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox backlog"),
    }
}

#[derive(Clone)]
struct Scrape {
    state: AppState,
    handle: PrometheusHandle,
}

async fn scrape(State(s): State<Scrape>) -> Response {
    sample(&s.state).await;
    s.handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.handle.render(),
    )
        .into_response()
}

/// The private listener's router: `/metrics` and nothing else.
pub fn router(state: AppState, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape { state, handle })
}

/// Serve `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, handle))
        .with_graceful_shutdown(shutdown)
        .await
}
