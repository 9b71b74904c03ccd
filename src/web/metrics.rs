//! HTTP metrics middleware: one count and one latency sample per request, labelled by the
//! route *pattern* axum matched (`/api/v2/requests/{id}`), never the raw path, so ARNs and ids
//! cannot multiply the series. Requests no route matched are `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let resp = next.run(req).await;
    crate::telemetry::metrics::http_request(
        &route,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
