//! `/api/v2/tokens`: list, make and revoke your API tokens as JSON (the profile page does the
//! same with forms). People only (`scopes.rs`): a token never manages tokens.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path};
use super::identity::CurrentUser;
use crate::app::AppState;
use crate::credentials::tokens::{self, Scope};
use crate::error::AppError;
use crate::store::ApiToken;

/// A token as listed: never the token itself, nor its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

impl TokenView {
    pub fn of(t: ApiToken, now: DateTime<Utc>) -> Self {
        TokenView {
            state: state_of(&t, now),
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// `active`, `expired` or `revoked`.
pub fn state_of(t: &ApiToken, now: DateTime<Utc>) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.is_active(now) {
        "active"
    } else {
        "expired"
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// `POST /api/v2/tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    pub name: String,
    /// Days until it expires (1 to 90, default 30).
    pub days: Option<i64>,
    /// At least one of `credentials`, `read`, `requests`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The answer to `POST /api/v2/tokens`: the token, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedToken {
    pub status: &'static str,
    pub token: TokenView,
}

/// `GET /api/v2/tokens`: your tokens, newest first.
#[utoipa::path(get, path = "/api/v2/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody)))]
pub async fn list(
    user: CurrentUser,
    State(state): State<AppState>,
) -> Result<axum::Json<TokenList>, AppError> {
    let now = Utc::now();
    let tokens = state
        .store
        .list_api_tokens(&user.email)
        .await?
        .into_iter()
        .map(|t| TokenView::of(t, now))
        .collect();
    Ok(axum::Json(TokenList { tokens }))
}

/// `POST /api/v2/tokens {"name", "days", "scopes"}`.
#[utoipa::path(post, path = "/api/v2/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 200, description = "The token, shown this once", body = CreatedToken), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody)))]
pub async fn create(
    user: CurrentUser,
    State(state): State<AppState>,
    Json(body): Json<NewToken>,
) -> Result<Response, AppError> {
    let scopes = tokens::parse_scopes(body.scopes.iter().map(String::as_str))?;
    let (token, stored) = tokens::create(
        &state,
        &user.email,
        &user.groups,
        &body.name,
        body.days,
        &scopes,
    )
    .await?;
    let mut resp = axum::Json(CreatedToken {
        token,
        info: TokenView::of(stored, Utc::now()),
    })
    .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    Ok(resp)
}

/// `DELETE /api/v2/tokens/{id}`.
#[utoipa::path(delete, path = "/api/v2/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's public id")),
    responses((status = 200, body = RevokedToken), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody)))]
pub async fn revoke(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RevokedToken>, AppError> {
    let token = tokens::revoke(&state, &user.email, &id).await?;
    Ok(axum::Json(RevokedToken {
        status: "success",
        token: TokenView::of(token, Utc::now()),
    }))
}
