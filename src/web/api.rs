//! JSON API (ConsoleMe v2 shapes, GUIDE §3) and the health check.

use axum::Json;
use axum::extract::State;

use super::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::error::AppError;
use crate::store::{PageRequest, PolicyRequest, RequestFilter, RequestStatus};

/// Liveness: 200 `{"status":"ok"}` whenever the process serves HTTP. No backend call, so a
/// load balancer's or Docker's frequent probes cost nothing and a slow Store never gets a
/// healthy process restarted; whether it can do its work is [`readyz`].
pub async fn healthcheck(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "store": state.store.backend_name()}))
}

/// How long readiness waits for each backend.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Readiness: 200 when this replica has loaded the synced accounts (`iamdesk serve` loads
/// them after opening its port) and the Store and the cache both answer (each within 5 s,
/// asked at once), else 503 naming what is not ready, so a load balancer sends no traffic to a
/// replica that cannot work.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (store, cache) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, state.store.ping()),
        tokio::time::timeout(READY_TIMEOUT, state.cache.ping()),
    );
    let verdict = |name: &str, backend: &str, result: Result<Result<(), String>, _>| match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: {name} ({backend}) unavailable");
            Some(format!("the {name} ({backend}) does not answer"))
        }
        Err(_) => {
            tracing::warn!("readiness: {name} ({backend}) timed out");
            Some(format!(
                "the {name} ({backend}) did not answer within {} seconds",
                READY_TIMEOUT.as_secs()
            ))
        }
    };
    let store_backend = state.store.backend_name();
    let cache_backend = state.cache.backend_name();
    let loading =
        (!state.resources.is_loaded()).then(|| "the synced accounts are still loading".to_string());
    let problems: Vec<(&str, String)> = [
        ("resources", loading),
        (
            "store",
            verdict(
                "store",
                store_backend,
                store.map(|r| r.map_err(|e| e.to_string())),
            ),
        ),
        (
            "cache",
            verdict(
                "cache",
                cache_backend,
                cache.map(|r| r.map_err(|e| e.to_string())),
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(name, p)| p.map(|p| (name, p)))
    .collect();
    if problems.is_empty() {
        return Json(json!({"status": "ready", "store": store_backend, "cache": cache_backend}))
            .into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": "unavailable",
            "failed": problems.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            "message": format!("not ready: {}", problems.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join("; ")),
        })),
    )
        .into_response()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending`, `approved`, `rejected` or `cancelled`.
    pub status: Option<String>,
    /// The requester's e-mail.
    pub requester: Option<String>,
    /// A 12-digit account id.
    pub account: Option<String>,
    /// Free text: id, requester, justification, ARNs, role and policy names.
    pub q: Option<String>,
    /// Only requests whose risk is at least this (`low`, `medium`, `high`, `critical`).
    pub risk: Option<String>,
    /// `1`/`true`: only break-glass requests still to be reviewed.
    pub needs_review: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListResponse {
    /// The requests, newest first, as `GET /api/v2/requests/{id}` shows them (without `plan`).
    pub requests: Vec<PolicyRequest>,
    pub next_cursor: Option<String>,
    /// One table row per request, in the same order (principal, account name, change kinds,
    /// age): what the requests page shows, for its search as you type.
    #[schema(value_type = Vec<Object>)]
    pub summaries: Vec<super::view::RequestRow>,
}

pub const DEFAULT_PAGE: usize = 50;

/// Parse the shared listing query into a filter and a page, with errors that say how to fix it.
pub fn parse_list_query(q: &ListQuery) -> Result<(RequestFilter, PageRequest), AppError> {
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(RequestStatus::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!(
                "status '{s}' is not one of pending, approved, rejected, cancelled"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > PageRequest::MAX_LIMIT {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {}",
            PageRequest::MAX_LIMIT
        )));
    }
    let account = match q
        .account
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(a) => Some(crate::config::normalize_account_id(a).ok_or_else(|| {
            AppError::BadRequest(format!("account '{a}' is not a 12-digit AWS account id"))
        })?),
    };
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(200).collect::<String>());
    let min_risk = match q.risk.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(r) => Some(crate::requests::risk::Level::parse(r).ok_or_else(|| {
            AppError::BadRequest(format!(
                "risk '{r}' is not one of low, medium, high, critical"
            ))
        })?),
    };
    let requester = q
        .requester
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok((
        RequestFilter {
            status,
            requester,
            account,
            text,
            min_risk,
            needs_review: matches!(q.needs_review.as_deref(), Some("1" | "true" | "on")),
        },
        PageRequest {
            limit,
            cursor: q.cursor.clone().filter(|c| !c.is_empty()),
        },
    ))
}

/// Policy requests, newest first, filtered and paginated.
#[utoipa::path(get, path = "/api/v2/requests", tag = "requests", params(ListQuery),
    responses((status = 200, body = ListResponse), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn list_requests(
    _user: super::identity::CurrentUser,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListResponse>, AppError> {
    let (filter, page) = parse_list_query(&q)?;
    let page = crate::store::search_requests(state.store.as_ref(), &filter, &page, &|r| {
        crate::requests::synced::request_risk(&state, r)
    })
    .await?;
    Ok(Json(ListResponse {
        summaries: page
            .items
            .iter()
            .map(|r| {
                super::view::RequestRow::new(r, &state.resources)
                    .with_risk(crate::requests::synced::request_risk(&state, r))
            })
            .collect(),
        requests: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A request as `GET /api/v2/requests/{id}` shows it: the stored request and, per change, the
/// exact AWS calls approving it makes.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RequestView {
    /// The stored request: id, status, requester, justification, changes, comments,
    /// timestamps, version.
    #[serde(flatten)]
    request: PolicyRequest,
    /// Per change: `{change_id, account_id, role_arn, calls: [{action, ...}], risk}`.
    #[schema(value_type = Vec<Object>)]
    plan: Vec<crate::requests::review::PlannedChange>,
    /// The highest risk of its changes: `low`, `medium`, `high` or `critical`.
    #[schema(value_type = String)]
    risk: crate::requests::risk::Level,
    /// The approval rule that applies and each requirement's approvals so far.
    #[schema(value_type = Object)]
    approval: crate::requests::approvals::RuleState,
}

/// One request with the exact AWS calls approving it makes.
#[utoipa::path(get, path = "/api/v2/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses((status = 200, body = RequestView), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody)))]
pub async fn get_request(
    _user: super::identity::CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, AppError> {
    let request =
        state.store.get_request(&id).await?.ok_or_else(|| {
            AppError::NotFound(format!("there is no policy request with id '{id}'"))
        })?;
    let plan = crate::requests::synced::with_risk(&state, |ctx| {
        crate::requests::review::plan(&request.changes, ctx)
    });
    let risk = plan
        .iter()
        .map(|p| p.risk.level)
        .max()
        .unwrap_or(crate::requests::risk::Level::Low);
    let approval = crate::requests::lifecycle::approval_state(&state, &request);
    Ok(Json(RequestView {
        request,
        plan,
        risk,
        approval,
    }))
}

/// `GET /api/v2/user`: who is signed in (ConsoleMe's shape) and, when an API token is used,
/// which one and what it may do (`iamdesk whoami`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub user: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
    /// Only when called with an API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<super::identity::TokenGrant>,
}

#[utoipa::path(get, path = "/api/v2/user", tag = "identity",
    responses((status = 200, body = WhoAmI), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn current_user(user: super::identity::CurrentUser) -> Json<WhoAmI> {
    Json(WhoAmI {
        user: user.email,
        groups: user.groups,
        is_admin: user.is_admin,
        token: user.token,
    })
}

/// `PUT /api/v2/requests/{id}` — `{"modification_model": {"command": ...}}`.
#[utoipa::path(put, path = "/api/v2/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body(content = Object, description = "`{\"modification_model\": {\"command\": C, ...}}` with C one of `add_comment` (`comment_text`), `approve_request` / `reject_request` (optional `version`), `cancel_request`, `move_back_to_pending`, `update_change` (`change_id`, `policy_document`)"),
    responses((status = 200, description = "`{\"status\": \"success\", \"request\": ...}`", body = Object), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Illegal transition or stale version", body = super::openapi::ErrorBody)))]
pub async fn modify_request(
    user: super::identity::CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::extract::Json(body): super::extract::Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, AppError> {
    let command = crate::requests::lifecycle::parse_command(&body)?;
    let actor = user.actor();
    let request = crate::requests::lifecycle::modify(&state, &id, &actor, command).await?;
    Ok(Json(json!({"status": "success", "request": request})))
}

/// `POST /api/v2/request` (ConsoleMe v2): validate, store, and for admins with
/// `admin_auto_approve` apply at once.
#[utoipa::path(post, path = "/api/v2/request", tag = "requests",
    request_body(content = Object, description = "ConsoleMe v2: `{\"justification\": str, \"admin_auto_approve\": bool, \"dry_run\": bool, \"changes\": {\"changes\": [Change, ...]}}`; every problem comes back at once as `errors: [{field, message}]`"),
    responses((status = 200, body = crate::requests::create::Created), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody)))]
pub async fn create_request(
    user: super::identity::CurrentUser,
    State(state): State<AppState>,
    super::extract::Json(body): super::extract::Json<serde_json::Value>,
) -> Result<Json<crate::requests::create::Created>, AppError> {
    let actor = user.actor();
    crate::requests::create::create(&state, &actor, &body)
        .await
        .map(Json)
}
