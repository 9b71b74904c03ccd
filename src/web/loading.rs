//! Until this replica has loaded the synced accounts, routes that read them answer 503 with
//! `Retry-After` (`AppError::Starting`; the error layer renders it as a page for browsers).
//! `iamdesk serve` opens its port before loading (`src/cli.rs::serve`), so liveness answers at
//! once while the load runs; readiness (`/readyz`, `src/web/api.rs`) says not ready until it is
//! done, so a load balancer sends no traffic before then. Tests build the App loaded
//! (`App::build`) and never see this.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::AppError;

/// Routes that read nothing synced: health, static files, the API description.
fn needs_no_accounts(path: &str) -> bool {
    matches!(path, "/healthcheck" | "/readyz" | "/api/v2/openapi.json")
        || path.starts_with("/static/")
}

pub async fn until_loaded(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.resources.is_loaded() || needs_no_accounts(req.uri().path()) {
        return next.run(req).await;
    }
    AppError::Starting.into_response()
}
