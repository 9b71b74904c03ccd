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

/// 200 `{"status":"ok"}` when the Store answers, 503 otherwise.
pub async fn healthcheck(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => {
            Json(json!({"status": "ok", "store": state.store.backend_name()})).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            unhealthy("the store does not answer")
        }
        Err(_) => {
            tracing::warn!("health check: store timed out");
            unhealthy("the store did not answer within 5 seconds")
        }
    }
}

fn unhealthy(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "message": reason})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub requester: Option<String>,
    pub account: Option<String>,
    /// Free text: id, requester, justification, ARNs, role and policy names.
    pub q: Option<String>,
    /// Only requests whose risk is at least this (`low`, `medium`, `high`, `critical`).
    pub risk: Option<String>,
    /// `1`/`true`: only break-glass requests still to be reviewed.
    pub needs_review: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Serialize)]
pub struct ListResponse {
    pub requests: Vec<PolicyRequest>,
    pub next_cursor: Option<String>,
    /// One table row per request, in the same order (principal, account name, change kinds,
    /// age): what the requests page shows, for its search as you type.
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
#[derive(serde::Serialize)]
pub struct RequestView {
    #[serde(flatten)]
    request: PolicyRequest,
    plan: Vec<crate::requests::review::PlannedChange>,
    /// The highest risk of its changes.
    risk: crate::requests::risk::Level,
    /// The approval rule that applies and each requirement's approvals so far.
    approval: crate::requests::approvals::RuleState,
}

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
#[derive(Debug, Serialize)]
pub struct WhoAmI {
    pub user: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<super::identity::TokenGrant>,
}

pub async fn current_user(user: super::identity::CurrentUser) -> Json<WhoAmI> {
    Json(WhoAmI {
        user: user.email,
        groups: user.groups,
        is_admin: user.is_admin,
        token: user.token,
    })
}

/// `PUT /api/v2/requests/{id}` — `{"modification_model": {"command": ...}}`.
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
