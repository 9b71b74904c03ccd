//! Error responses people can act on: an HTML page for browsers, `{"status":"error","message"}`
//! JSON for the API. Covers handler errors ([`AppError`]) and the ones produced by routing and
//! middleware (404, 405, 413, timeouts, panics) alike.

use std::any::Any;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::view::Layout;
use super::{MAX_BODY_BYTES, REQUEST_ID_HEADER};
use crate::app::AppState;
use crate::error::{AppError, ErrorMarker};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status_code: u16,
    reason: String,
    message: String,
}

pub async fn not_found(req: Request) -> AppError {
    AppError::NotFound(format!("There is nothing at {}.", req.uri().path()))
}

/// A panic is a bug: log it (without the request) and answer 500 without details.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    AppError::Internal(format!("handler panicked: {detail}")).into_response()
}

fn default_message(status: StatusCode, method: &Method, path: &str) -> String {
    match status {
        StatusCode::NOT_FOUND => format!("There is nothing at {path}."),
        StatusCode::METHOD_NOT_ALLOWED => format!("{path} does not accept {method} requests."),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "The request body is larger than the {} KiB limit. Send a smaller document.",
            MAX_BODY_BYTES / 1024
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            "The request took too long or a backend is unavailable. Try again in a moment.".into()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "Send the body as JSON with the header Content-Type: application/json.".into()
        }
        s if s.is_server_error() => {
            "Something went wrong on our side. Quote the request id to your administrators.".into()
        }
        s => s.canonical_reason().unwrap_or("Request failed").to_string(),
    }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/healthcheck" || path == "/readyz"
}

/// Rewrites every error response into the right shape for its caller.
pub async fn render(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let demo = super::demo::ErrorPageBanner::capture(&state, &req);
    let theme = super::view::theme_of(req.headers());
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let marker = resp.extensions().get::<ErrorMarker>().map(|m| m.0.clone());
    if is_api(&path) {
        if marker.is_some() || is_json {
            return resp; // Already JSON (an AppError, or a handler's own shape).
        }
        let message = default_message(status, &method, &path);
        return rebuild(
            resp,
            status,
            axum::Json(serde_json::json!({"status": "error", "message": message})).into_response(),
        );
    }
    if is_html {
        return resp;
    }
    let message = marker.unwrap_or_else(|| default_message(status, &method, &path));
    let mut layout = super::demo::ErrorPageBanner::apply(demo, Layout::new(&state, request_id));
    layout.theme = theme;
    let page = ErrorPage {
        layout,
        status_code: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_string(),
        message,
    };
    match page.render() {
        Ok(html) => rebuild(resp, status, axum::response::Html(html).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the error page");
            resp
        }
    }
}

/// The new body with the original status and the original headers that still apply
/// (`Retry-After`, `Allow`, ...).
fn rebuild(original: Response, status: StatusCode, new: Response) -> Response {
    let (orig_parts, _) = original.into_parts();
    let (mut parts, body): (_, Body) = new.into_parts();
    for (name, value) in &orig_parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            parts.headers.insert(name.clone(), value.clone());
        }
    }
    parts.status = status;
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, body)
}
