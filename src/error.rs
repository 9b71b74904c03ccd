//! One error type for every handler; maps to an HTTP response. Internal errors are logged with
//! the request id and rendered generically: the client never sees backend details.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    /// Input with several problems, each `(field, message)`; nothing was changed.
    #[error("{} problem(s) in the request: {}", .0.len(), .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The message and the seconds to wait (`Retry-After`).
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// AWS (or another upstream) refused or failed; the message is theirs and safe to show.
    #[error("{0}")]
    Upstream(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A backend is over its capacity for a moment (`Retry-After` seconds); nothing changed.
    #[error("{0}")]
    Busy(String, u64),
    /// This replica is still loading the synced accounts (`src/web/loading.rs`); `Retry-After`
    /// is [`STARTING_RETRY_SECONDS`].
    #[error(
        "iamdesk is starting: it is still loading the synced accounts. Try again in a few seconds."
    )]
    Starting,
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Retry-After` of [`AppError::Starting`].
pub const STARTING_RETRY_SECONDS: u64 = 2;

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) | AppError::Invalid(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) | AppError::Busy(..) | AppError::Starting => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a person may see. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "Something went wrong on our side. Quote the request id to your administrators."
                    .to_string()
            }
            AppError::Unavailable(_) => {
                "A backend iamdesk depends on is unavailable. Try again in a moment.".to_string()
            }
            AppError::Busy(_, secs) => format!(
                "iamdesk's database is busy right now and nothing was changed. Try again in \
                 {secs} seconds."
            ),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AppError::Conflict(format!(
                "{m}. Somebody else changed it first: reload and try again."
            )),
            StoreError::NotFound(m) => AppError::NotFound(m),
            StoreError::Invalid(m) => AppError::BadRequest(m),
            StoreError::Throttled(m) => AppError::Busy(m, 2),
            StoreError::TooLarge(m) => AppError::BadRequest(format!(
                "{m}: make it smaller (fewer or shorter changes, comments or documents)."
            )),
            StoreError::Backend(m) => AppError::Unavailable(m),
        }
    }
}

impl IntoResponse for AppError {
    /// JSON by default; the page layer (`web::errors`) renders HTML for browsers by inspecting
    /// this error, which it finds in the response extensions.
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, AppError::Starting) {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, "request rejected");
        }
        let mut body = serde_json::json!({"status": "error", "message": self.public_message()});
        if let AppError::Invalid(problems) = &self {
            body["errors"] = problems
                .iter()
                .map(|(field, message)| serde_json::json!({"field": field, "message": message}))
                .collect();
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let AppError::TooManyRequests(_, secs) | AppError::Busy(_, secs) = &self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*secs).into());
        }
        if let AppError::Starting = &self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                STARTING_RETRY_SECONDS.into(),
            );
        }
        resp.extensions_mut()
            .insert(ErrorMarker(self.public_message()));
        resp
    }
}

/// Put on error responses so the HTML layer can render a page with the same message.
#[derive(Debug, Clone)]
pub struct ErrorMarker(pub String);

impl From<crate::resources::sync::RefreshError> for AppError {
    fn from(e: crate::resources::sync::RefreshError) -> Self {
        match e {
            crate::resources::sync::RefreshError::Cloud(e) => e.into(),
            crate::resources::sync::RefreshError::Store(e) => e.into(),
        }
    }
}

impl From<crate::cloud::CloudError> for AppError {
    fn from(e: crate::cloud::CloudError) -> Self {
        match e {
            crate::cloud::CloudError::UnknownAccount(_) => AppError::NotFound(e.to_string()),
            // Not AWS's words: the cloud (the sandbox) cannot do this at all.
            crate::cloud::CloudError::Unsupported(message) => AppError::Upstream(message),
            crate::cloud::CloudError::Aws { message, .. } => {
                AppError::Upstream(format!("AWS refused the call: {message}"))
            }
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        AppError::BadRequest(format!("invalid query string: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match e {
            J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::PayloadTooLarge("the request body is too large".into())
            }
            J::MissingJsonContentType(_) => AppError::BadRequest(
                "send the body as JSON with the header Content-Type: application/json".into(),
            ),
            other => AppError::BadRequest(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        AppError::BadRequest(format!("invalid path: {}", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_are_told_apart() {
        let busy = AppError::from(StoreError::Throttled(
            "DynamoDB is throttling the write".into(),
        ));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.public_message().contains("nothing was changed"));
        let resp = busy.into_response();
        assert_eq!(
            resp.headers()
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("2")
        );

        let big = AppError::from(StoreError::TooLarge(
            "the write would exceed DynamoDB's limit of 400 KB per item".into(),
        ));
        assert_eq!(big.status(), StatusCode::BAD_REQUEST);
        assert!(big.public_message().contains("400 KB"));

        let conflict = AppError::from(StoreError::Conflict("transaction cancelled".into()));
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert!(conflict.public_message().contains("Somebody else"));
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let resp = AppError::TooManyRequests("slow down".into(), 7).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[axum::http::header::RETRY_AFTER], "7");
    }

    #[test]
    fn internal_details_never_reach_the_client() {
        let e = AppError::Internal("sqlite: disk I/O error at /secret/path".into());
        assert!(!e.public_message().contains("/secret/path"));
    }
}
