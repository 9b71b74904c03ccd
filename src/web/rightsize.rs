//! Right-sizing pages and API (`src/rightsize/`): thin handlers, one domain call each.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::identity::CurrentUser;
use super::view::{Layout, Page};
use crate::app::AppState;
use crate::error::AppError;
use crate::rightsize::{self, Fleet};

/// `GET /api/v2/roles/{account}/{name}/rightsize`: used and unused services, the proposal.
#[utoipa::path(get, path = "/api/v2/roles/{account_id}/{role_name}/rightsize", tag = "rightsize",
    params(("account_id" = String, Path, description = "12-digit account id"), ("role_name" = String, Path, description = "Role name")),
    responses((status = 200, description = "The role's age and tracking period, each service allowed with its last use and verdict (used, unused, kept, recent, untracked), and the changes a proposal would make", body = Object), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such role", body = super::openapi::ErrorBody)))]
pub async fn api_report(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Json<rightsize::Report>, AppError> {
    Ok(Json(rightsize::report(&state, &account_id, &name).await?))
}

/// `POST /api/v2/roles/{account}/{name}/rightsize`: file the proposal (409: nothing to remove).
#[utoipa::path(post, path = "/api/v2/roles/{account_id}/{role_name}/rightsize", tag = "rightsize",
    params(("account_id" = String, Path, description = "12-digit account id"), ("role_name" = String, Path, description = "Role name")),
    responses((status = 200, description = "The proposal, filed as an ordinary policy request", body = crate::requests::create::Created), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such role", body = super::openapi::ErrorBody), (status = 409, description = "Nothing to remove", body = super::openapi::ErrorBody)))]
pub async fn api_propose(
    user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Json<crate::requests::create::Created>, AppError> {
    Ok(Json(
        rightsize::propose(&state, &user.actor(), &account_id, &name).await?,
    ))
}

/// `POST /api/v2/rightsize/{id}/rollback`: file the inverse of an approved right-size request.
#[utoipa::path(post, path = "/api/v2/rightsize/{id}/rollback", tag = "rightsize",
    params(("id" = String, Path, description = "The approved right-size request")),
    responses((status = 200, description = "The inverse request, filed for review", body = crate::requests::create::Created), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "No such request", body = super::openapi::ErrorBody), (status = 409, description = "Not an approved right-size request", body = super::openapi::ErrorBody)))]
pub async fn api_rollback(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::requests::create::Created>, AppError> {
    Ok(Json(rightsize::rollback(&state, &user.actor(), &id).await?))
}

fn to_request_page(created: crate::requests::create::Created) -> Result<Response, AppError> {
    let url = created
        .request_url
        .ok_or_else(|| AppError::Internal("a created request has no URL".into()))?;
    Ok(Redirect::to(&url).into_response())
}

/// The role page's "Propose removal" form.
pub async fn propose_form(
    user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    to_request_page(rightsize::propose(&state, &user.actor(), &account_id, &name).await?)
}

/// The role page's "Roll back" button.
pub async fn rollback_form(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    to_request_page(rightsize::rollback(&state, &user.actor(), &id).await?)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct FleetQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    page: Option<usize>,
}

#[derive(Template, WebTemplate)]
#[template(path = "rightsize.html")]
pub struct FleetPage {
    layout: Layout,
    fleet: Fleet,
    account: String,
    accounts: Vec<(String, String)>,
    unused_days: u64,
}

impl FleetPage {
    fn page_url(&self, page: usize) -> String {
        let q = serde_urlencoded::to_string([
            ("account", self.account.as_str()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default();
        format!("/rightsize?{q}")
    }
}

/// `GET /rightsize`: roles ranked by unused services, filter by account, paginated.
pub async fn fleet_page(
    _user: CurrentUser,
    State(state): State<AppState>,
    Page(mut layout): Page,
    Query(q): Query<FleetQuery>,
) -> Result<FleetPage, AppError> {
    layout.nav = "rightsize";
    let account = q.account.trim().to_string();
    let filter = (!account.is_empty()).then_some(account.as_str());
    let fleet = rightsize::fleet(&state, filter, q.page.unwrap_or(1)).await?;
    Ok(FleetPage {
        layout,
        fleet,
        accounts: state.resources.accounts(),
        account,
        unused_days: state.config.rightsize.unused_days,
    })
}

/// `GET /api/v2/rightsize?account=&page=`: the fleet ranking as JSON.
#[utoipa::path(get, path = "/api/v2/rightsize", tag = "rightsize",
    params(("account" = Option<String>, Query, description = "Only this account id"), ("page" = Option<usize>, Query, description = "Page, from 1 (50 roles a page)")),
    responses((status = 200, description = "Roles ranked by unused services", body = Object), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn api_fleet(
    _user: CurrentUser,
    State(state): State<AppState>,
    Query(q): Query<FleetQuery>,
) -> Result<Json<Fleet>, AppError> {
    let account = q.account.trim();
    let filter = (!account.is_empty()).then_some(account);
    Ok(Json(
        rightsize::fleet(&state, filter, q.page.unwrap_or(1)).await?,
    ))
}
