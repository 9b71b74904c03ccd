//! Credentials, console sign-in, "My roles" and the profile page (API tokens).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Json, Path, Query};
use super::identity::CurrentUser;
use super::signout::NoticePage;
use super::view::{Layout, Page, human_time};
use crate::app::AppState;
use crate::credentials::{self, Access, Purpose, federation, tokens};
use crate::error::AppError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CredentialsBody {
    /// The role's ARN.
    requested_role: Option<String>,
    /// Lifetime of the credentials (STS limits apply).
    duration_seconds: Option<i64>,
}

/// `POST /api/v2/credentials {"requested_role": arn, "duration_seconds": n}`.
#[utoipa::path(post, path = "/api/v2/credentials", tag = "credentials", request_body = CredentialsBody,
    responses((status = 200, description = "Short-lived STS credentials (with session token) for an entitled role", body = Object), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody)))]
pub async fn api_credentials(
    user: CurrentUser,
    State(state): State<AppState>,
    Json(body): Json<CredentialsBody>,
) -> Result<Response, AppError> {
    let arn = body
        .requested_role
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::BadRequest(
                "requested_role is required: the ARN of the role you want credentials for".into(),
            )
        })?;
    let (role, creds) = credentials::issue(
        &state,
        &user.email,
        &user.groups,
        arn,
        body.duration_seconds,
        Purpose::Api,
    )
    .await?;
    Ok(no_store(
        axum::Json(json!({
            "Credentials": creds,
            "RoleArn": role.arn,
            "SessionName": credentials::session_name(&user.email),
        }))
        .into_response(),
    ))
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    resp
}

#[derive(Debug, Deserialize)]
pub struct ConsoleQuery {
    redirect: Option<String>,
}

/// Whether a `GET /role/{arn}` is a navigation the person made from the portal itself (or typed,
/// bookmarked, opened from another program): `Sec-Fetch-Site` `same-origin` or `none`; without
/// that header (older browsers), a `Referer` on the portal's own origin. Another site, even a
/// sibling on the same host, gets the confirmation page instead.
fn same_site_navigation(state: &AppState, headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| reqwest::Url::parse(r).ok())
            .zip(reqwest::Url::parse(&state.config.url).ok())
            .is_some_and(|(referer, own)| referer.origin() == own.origin()),
    }
}

/// `GET /role/{arn}`: sign in to the AWS console as the role (302 to AWS, never cached). A link
/// from elsewhere first shows a confirmation page whose button POSTs here with the CSRF token:
/// a cross-site link alone never signs anybody in (AssumeRole, console session, audit event).
pub async fn console(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    headers: HeaderMap,
    uri: Uri,
    Path(arn): Path<String>,
    Query(q): Query<ConsoleQuery>,
) -> Result<Response, AppError> {
    // Check the destination first: a bad redirect costs no AssumeRole.
    let destination = federation::destination(q.redirect.as_deref())?;
    if !same_site_navigation(&state, &headers) {
        credentials::find_role(&state, &arn)?;
        return Ok(NoticePage {
            layout,
            heading: "Sign in to the AWS console?",
            message: format!(
                "You followed a link to sign in to the AWS console as {arn}. Continue only if \
                 you meant to."
            ),
            confirm_action: Some(uri.to_string()),
            confirm_label: "Sign in to the console",
        }
        .into_response());
    }
    console_sign_in(&state, &user, layout, &arn, &destination).await
}

/// `POST /role/{arn}`: the confirmation page's button (CSRF-checked).
pub async fn console_confirmed(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path(arn): Path<String>,
    Query(q): Query<ConsoleQuery>,
) -> Result<Response, AppError> {
    let destination = federation::destination(q.redirect.as_deref())?;
    console_sign_in(&state, &user, layout, &arn, &destination).await
}

async fn console_sign_in(
    state: &AppState,
    user: &CurrentUser,
    layout: Layout,
    arn: &str,
    destination: &str,
) -> Result<Response, AppError> {
    let url =
        match credentials::console_url(state, &user.email, &user.groups, arn, destination).await {
            Ok((_, url)) => url,
            Err(AppError::Conflict(message)) if credentials::simulated(state) => {
                return Ok(simulated_page(layout, message));
            }
            Err(e) => return Err(e),
        };
    let location = HeaderValue::from_str(&url)
        .map_err(|_| AppError::Upstream("the console sign-in address is not usable".into()))?;
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(no_store(resp))
}

/// The sandbox's answer for a page: plain words, no error, nothing to configure.
fn simulated_page(layout: Layout, message: String) -> Response {
    no_store(
        NoticePage {
            layout,
            heading: "Demo accounts are simulated",
            message,
            confirm_action: None,
            confirm_label: "",
        }
        .into_response(),
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsoleUrlQuery {
    /// The role's ARN.
    role: Option<String>,
    redirect: Option<String>,
}

/// `GET /api/v2/console_url?role=ARN[&redirect=URL]`: the federation sign-in URL as JSON, for
/// scripts (API tokens work here), with the same entitlement rules as the console button.
#[utoipa::path(get, path = "/api/v2/console_url", tag = "credentials", params(ConsoleUrlQuery),
    responses((status = 200, description = "The AWS console federation sign-in URL", body = Object), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody)))]
pub async fn api_console_url(
    user: CurrentUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConsoleUrlQuery>,
) -> Result<Response, AppError> {
    // A GET with side effects: a page on another site must not be able to trigger it.
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| !matches!(s, "same-origin" | "none"))
    {
        return Err(AppError::Forbidden(
            "Cross-site request refused: ask for a console URL from a script or from iamdesk's \
             own pages."
                .into(),
        ));
    }
    let arn = q
        .role
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::BadRequest(
                "role is required: ?role=<the ARN of the role to sign in as>".into(),
            )
        })?;
    let destination = federation::destination(q.redirect.as_deref())?;
    let (role, url) =
        credentials::console_url(&state, &user.email, &user.groups, arn, &destination).await?;
    Ok(no_store(
        axum::Json(json!({"status": "ok", "role": role.arn, "console_url": url})).into_response(),
    ))
}

pub struct RoleRow {
    pub arn: String,
    pub name: String,
    pub account_id: String,
    pub account_name: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "roles.html")]
pub struct RolesPage {
    layout: Layout,
    q: String,
    roles: Vec<RoleRow>,
    total: usize,
    cli_only: usize,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RolesQuery {
    /// Part of a role's name, ARN or account.
    q: Option<String>,
}

/// The user's roles matching `q` (name, ARN, account), console roles only (CLI-only roles are
/// not listed in the UI); and how many CLI-only ones there are.
pub fn my_roles(state: &AppState, user: &CurrentUser, q: &str) -> (Vec<RoleRow>, usize) {
    let q = q.trim().to_lowercase();
    let all = credentials::entitled_roles(state, &user.email, &user.groups);
    let cli_only = all.iter().filter(|r| r.access == Access::CliOnly).count();
    let rows = all
        .into_iter()
        .filter(|r| r.access == Access::Console)
        .filter(|r| {
            q.is_empty()
                || r.arn.to_lowercase().contains(&q)
                || r.account_name.to_lowercase().contains(&q)
        })
        .map(|r| RoleRow {
            arn: r.arn,
            name: r.name,
            account_id: r.account_id,
            account_name: r.account_name,
        })
        .collect();
    (rows, cli_only)
}

/// `GET /roles`: "My roles" with search.
pub async fn roles_page(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Query(q): Query<RolesQuery>,
) -> RolesPage {
    let q = q.q.unwrap_or_default();
    let (roles, cli_only) = my_roles(&state, &user, &q);
    RolesPage {
        layout: layout.nav("roles"),
        total: roles.len(),
        roles,
        cli_only,
        q,
    }
}

/// `GET /api/v2/eligible_roles?q=`: "My roles" as JSON (ConsoleMe's name for the list), for the
/// page's search as you type and for scripts: console roles with their pages, and how many
/// CLI-only roles there are besides.
#[utoipa::path(get, path = "/api/v2/eligible_roles", tag = "credentials", params(RolesQuery),
    responses((status = 200, description = "The roles you may get credentials for", body = Object), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn api_eligible_roles(
    user: CurrentUser,
    State(state): State<AppState>,
    Query(q): Query<RolesQuery>,
) -> axum::Json<serde_json::Value> {
    let q = q.q.unwrap_or_default();
    let (roles, cli_only) = my_roles(&state, &user, &q);
    let roles: Vec<serde_json::Value> = roles
        .into_iter()
        .map(|r| {
            json!({
                "url": format!("/policies/edit/{}/iamrole/{}", r.account_id, r.name),
                "console_url": format!("/role/{}", r.arn),
                "arn": r.arn, "name": r.name,
                "account_id": r.account_id, "account_name": r.account_name,
            })
        })
        .collect();
    axum::Json(json!({"total": roles.len(), "roles": roles, "cli_only": cli_only}))
}

#[derive(Debug, Deserialize)]
pub struct CredentialsForm {
    role: String,
    duration_seconds: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "role_credentials.html")]
pub struct CredentialsPage {
    layout: Layout,
    role_arn: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    server: String,
    /// A profile name for `~/.aws/config`: the role's account and name.
    profile_name: String,
}

/// What the credentials page shows, carried sealed from the POST to the GET (src/web/flash.rs).
#[derive(serde::Serialize, Deserialize)]
struct Issued {
    role_arn: String,
    account_id: String,
    role_name: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

const CREDENTIALS_PATH: &str = "/roles/credentials";

/// `POST /roles/credentials`: issue credentials, then show them once at `GET
/// /roles/credentials`, so a reload never issues (and audits) another set.
pub async fn credentials_page(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    axum::Form(form): axum::Form<CredentialsForm>,
) -> Result<Response, AppError> {
    let (role, creds) = match credentials::issue(
        &state,
        &user.email,
        &user.groups,
        &form.role,
        form.duration_seconds,
        Purpose::Api,
    )
    .await
    {
        Ok(issued) => issued,
        Err(AppError::Conflict(message)) if credentials::simulated(&state) => {
            return Ok(simulated_page(layout, message));
        }
        Err(e) => return Err(e),
    };
    let issued = Issued {
        role_arn: role.arn,
        account_id: role.account_id,
        role_name: role.name,
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key,
        session_token: creds.session_token,
        expiration: creds.expiration.to_rfc3339(),
    };
    let sealed = serde_json::to_string(&issued).unwrap_or_default();
    let cookie = super::flash::set_cookie(
        &state,
        "credentials",
        CREDENTIALS_PATH,
        &user.email,
        &sealed,
    )
    .ok_or_else(|| AppError::Internal("cannot seal the credentials for the page".into()))?;
    Ok(no_store(super::flash::with_cookie(
        axum::response::Redirect::to(CREDENTIALS_PATH).into_response(),
        Some(cookie),
    )))
}

/// `GET /roles/credentials`: the credentials just issued, once.
pub async fn credentials_shown(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (sealed, clear) = super::flash::take(
        &state,
        &headers,
        "credentials",
        CREDENTIALS_PATH,
        &user.email,
    );
    let Some(issued) = sealed.and_then(|s| serde_json::from_str::<Issued>(&s).ok()) else {
        let page = NoticePage {
            layout: layout.nav("roles"),
            heading: "Credentials are shown once",
            message: "These credentials were already shown (or never issued to you here). Get \
                      a new set from My roles: nothing is stored."
                .into(),
            confirm_action: None,
            confirm_label: "",
        };
        return Ok(no_store(super::flash::with_cookie(
            page.into_response(),
            clear,
        )));
    };
    let page = CredentialsPage {
        profile_name: format!("{}-{}", issued.account_id, issued.role_name),
        layout: layout.nav("roles"),
        role_arn: issued.role_arn,
        access_key_id: issued.access_key_id,
        secret_access_key: issued.secret_access_key,
        session_token: issued.session_token,
        expiration: issued.expiration,
        server: state.config.url.trim_end_matches('/').to_string(),
    };
    Ok(no_store(super::flash::with_cookie(
        page.into_response(),
        clear,
    )))
}

pub struct TokenRow {
    id: String,
    name: String,
    scopes: String,
    created: String,
    expires: String,
    state: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    layout: Layout,
    email: String,
    groups: Vec<String>,
    is_admin: bool,
    tokens: Vec<TokenRow>,
    /// A token just made: shown this once.
    new_token: Option<String>,
    entitled: usize,
    server: String,
    max_days: i64,
    max_idle_days: u32,
    last_sign_in: Option<String>,
    tokens_work_until: String,
}

async fn profile_page(
    state: &AppState,
    user: &CurrentUser,
    layout: Layout,
    new_token: Option<String>,
) -> Result<ProfilePage, AppError> {
    let now = chrono::Utc::now();
    let tokens = state
        .store
        .list_api_tokens(&user.email)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            state: super::tokens::state_of(&t, now),
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            id: t.id,
            name: t.name,
            created: human_time(t.created_at),
            expires: human_time(t.expires_at),
        })
        .collect();
    let until = tokens::working_until(state, &user.email).await?;
    Ok(ProfilePage {
        max_idle_days: state.config.auth.api_token_max_idle_days,
        last_sign_in: until.map(|(last, _)| human_time(last)),
        tokens_work_until: until.map(|(_, u)| human_time(u)).unwrap_or_default(),
        layout: layout.nav("profile"),
        email: user.email.clone(),
        groups: user.groups.clone(),
        is_admin: user.is_admin,
        tokens,
        new_token,
        entitled: credentials::entitled_roles(state, &user.email, &user.groups).len(),
        server: state.config.url.trim_end_matches('/').to_string(),
        max_days: tokens::MAX_DAYS,
    })
}

/// `GET /profile`: who you are, your API tokens; a token just made, once.
pub async fn profile(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (token, clear) = super::flash::take(&state, &headers, "token", "/profile", &user.email);
    let page = profile_page(&state, &user, layout, token).await?;
    Ok(no_store(super::flash::with_cookie(
        page.into_response(),
        clear,
    )))
}

/// `POST /profile/tokens` (`name`, `days`, one `scope` field per ticked box): make a token,
/// then show it once on `GET /profile` (a reload of that page makes no second token).
pub async fn create_token(
    user: CurrentUser,
    State(state): State<AppState>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let name = field("name").unwrap_or_default();
    let days = match field("days") {
        None => None,
        Some(d) => Some(d.parse::<i64>().map_err(|_| {
            AppError::Invalid(vec![(
                "days".into(),
                format!("'{d}' is not a number of days (1 to {})", tokens::MAX_DAYS),
            )])
        })?),
    };
    let scopes = tokens::parse_scopes(
        form.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )?;
    let (token, _) = tokens::create(&state, &user.email, &user.groups, name, days, &scopes).await?;
    let cookie = super::flash::set_cookie(&state, "token", "/profile", &user.email, &token)
        .ok_or_else(|| AppError::Internal("cannot seal the new token for the page".into()))?;
    Ok(no_store(super::flash::with_cookie(
        axum::response::Redirect::to("/profile#new-token").into_response(),
        Some(cookie),
    )))
}

/// `GET /profile/tokens/{id}/revoke`: are you sure? (The button on the profile leads here.)
pub async fn revoke_confirm(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path(id): Path<String>,
) -> Result<NoticePage, AppError> {
    let token = state
        .store
        .list_api_tokens(&user.email)
        .await?
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
        .ok_or_else(|| AppError::NotFound(format!("You have no active token with id '{id}'.")))?;
    Ok(NoticePage {
        layout: layout.nav("profile"),
        heading: "Revoke this API token?",
        message: format!(
            "“{}” stops working at once: every script and credential_process using it gets \
             401 from then on. This cannot be undone (you can make a new token).",
            token.name
        ),
        confirm_action: Some(format!("/profile/tokens/{id}/revoke")),
        confirm_label: "Revoke the token",
    })
}

/// `POST /profile/tokens/{id}/revoke`.
pub async fn revoke_token(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::response::Redirect, AppError> {
    tokens::revoke(&state, &user.email, &id).await?;
    Ok(axum::response::Redirect::to("/profile"))
}
