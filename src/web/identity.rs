//! Who is asking: the signed-in user, resolved once per request by [`authenticate`] and read by
//! handlers through the [`CurrentUser`] / [`AdminUser`] extractors.
//!
//! Order of sign-in methods: the ALB's `x-amzn-oidc-data` token (when enabled), the session
//! cookie, the trusted-proxy headers (when enabled), and finally demo mode (no method configured:
//! the demo persona chosen from the banner, announced on every page).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::AuthError;
use crate::config::Config;
use crate::error::AppError;

pub const ALB_HEADER: &str = "x-amzn-oidc-data";
pub const DEMO_USER: &str = "demo-admin@iamdesk.local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Alb,
    Cookie,
    Header,
    Demo,
    /// A personal API token (`Authorization: Bearer iamdesk_...`), for the credentials API only.
    ApiToken,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentUser {
    pub email: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
    #[serde(skip)]
    pub method: AuthMethod,
}

impl CurrentUser {
    pub fn new(config: &Config, email: String, groups: Vec<String>, method: AuthMethod) -> Self {
        let is_admin = is_admin(config, &email, &groups);
        CurrentUser {
            email,
            groups,
            is_admin,
            method,
        }
    }
}

/// Admin when the user or one of their groups is exactly (never a substring) an entry of
/// `groups.can_admin`, `groups.can_admin_policies` or `application_admin`.
pub fn is_admin(config: &Config, email: &str, groups: &[String]) -> bool {
    let admins = config
        .groups
        .can_admin
        .iter()
        .chain(&config.groups.can_admin_policies)
        .chain(config.application_admin.iter())
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    admins
        .into_iter()
        .any(|a| a == email || groups.iter().any(|g| g == a))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = header_str(headers, header::AUTHORIZATION.as_str())?;
    v.get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .map(|_| v[7..].trim())
        .filter(|t| !t.is_empty())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The value of the cookie `name`, from any `Cookie` header.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn split_groups(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Resolve the user (if any) and put it in the request extensions; count the request against
/// the rate limits; set the session cookie after an ALB sign-in when configured.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let config = &state.config;

    let mut set_cookie = None;
    let mut user = None;

    // A personal API token: checked first, and when presented it is the only method tried.
    if let Some(presented) =
        bearer_token(req.headers()).filter(|t| t.starts_with(crate::credentials::tokens::PREFIX))
    {
        if let Err(e) = state
            .login_limiter
            .check(&format!("ip:{}", client_ip(&req)))
        {
            return e.into_response();
        }
        if !crate::credentials::tokens::TOKEN_PATHS.contains(&req.uri().path()) {
            return AppError::Forbidden(format!(
                "API tokens only work for {}; sign in through the portal for everything else.",
                crate::credentials::tokens::TOKEN_PATHS.join(" and ")
            ))
            .into_response();
        }
        match crate::credentials::tokens::authenticate(&state, presented).await {
            Ok(t) => {
                user = Some(CurrentUser::new(
                    config,
                    t.user,
                    t.groups,
                    AuthMethod::ApiToken,
                ));
            }
            Err(e) => {
                tracing::info!(reason = %e, "API token refused");
                return e.into_response();
            }
        }
    }

    if user.is_none()
        && let Some(alb) = &state.alb
        && let Some(token) = header_str(req.headers(), ALB_HEADER)
    {
        // Every token verification is a sign-in attempt: limited per client IP.
        if let Err(e) = state
            .login_limiter
            .check(&format!("ip:{}", client_ip(&req)))
        {
            return e.into_response();
        }
        match alb.verify(token).await {
            Ok(id) => {
                tracing::info!(user = %id.email, "signed in through the ALB");
                if config.auth.set_auth_cookie {
                    set_cookie = session_cookie(&state, &id.email, &id.groups);
                }
                user = Some(CurrentUser::new(
                    config,
                    id.email,
                    id.groups,
                    AuthMethod::Alb,
                ));
            }
            Err(e) => {
                tracing::warn!(reason = %e, "ALB token rejected");
                return auth_failed(&e).into_response();
            }
        }
    }
    if user.is_none()
        && let Some(token) = cookie(req.headers(), &config.auth.cookie_name)
    {
        match state.sessions.verify(token) {
            Ok(claims) => {
                user = Some(CurrentUser::new(
                    config,
                    claims.sub,
                    claims.groups,
                    AuthMethod::Cookie,
                ));
            }
            // A stale or forged cookie is ignored, not fatal: the next sign-in replaces it.
            Err(e) => tracing::info!(reason = %e, "session cookie rejected"),
        }
    }
    if user.is_none()
        && config.auth.get_user_by_header
        && let Some(email) = header_str(req.headers(), &config.auth.user_header_name)
    {
        let groups = if config.auth.get_groups_by_header {
            header_str(req.headers(), &config.auth.groups_header_name)
                .map(split_groups)
                .unwrap_or_default()
        } else {
            vec![]
        };
        user = Some(CurrentUser::new(
            config,
            email.to_string(),
            groups,
            AuthMethod::Header,
        ));
    }
    if user.is_none() && state.demo_mode {
        // The persona chosen from the banner (src/web/demo.rs): requester or admin.
        user = Some(super::demo::current_user(config, req.headers()));
    }

    if req.uri().path().starts_with("/api/") {
        let key = match &user {
            Some(u) => format!("user:{}", u.email),
            None => format!("ip:{}", client_ip(&req)),
        };
        if let Err(e) = state.api_limiter.check(&key) {
            return e.into_response();
        }
    }

    if let Some(u) = user {
        req.extensions_mut().insert(u);
    }
    let mut resp = next.run(req).await;
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `Set-Cookie` for a new session, or `None` (logged) when it cannot be made or would not fit.
fn session_cookie(state: &AppState, email: &str, groups: &[String]) -> Option<String> {
    let config = &state.config;
    let minutes = config.auth.session_minutes.max(1);
    let token =
        match state
            .sessions
            .issue(email, groups, std::time::Duration::from_secs(minutes * 60))
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot issue a session cookie");
                return None;
            }
        };
    // Browsers drop cookies over 4 KiB (users in hundreds of groups): keep using the ALB token.
    if token.len() > 3800 {
        tracing::warn!(user = %email, "session too large for a cookie; relying on the ALB token");
        return None;
    }
    let secure = if config.is_dev() { "" } else { "; Secure" };
    Some(format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        config.auth.cookie_name,
        minutes * 60
    ))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(state: &AppState) -> String {
    let secure = if state.config.is_dev() {
        ""
    } else {
        "; Secure"
    };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        state.config.auth.cookie_name
    )
}

fn auth_failed(e: &AuthError) -> AppError {
    match e {
        AuthError::KeyUnavailable => AppError::Unavailable(
            "the sign-in keys of the load balancer cannot be fetched right now".into(),
        ),
        other => AppError::Unauthorized(format!(
            "Your sign-in could not be verified ({other}). Reload the page to sign in again."
        )),
    }
}

fn sign_in_hint(parts: &Parts, state: &AppState) -> AppError {
    let _ = parts;
    let how = if state.config.auth.get_user_by_aws_alb_auth {
        format!(
            "Sign in through your company's single sign-on at {}.",
            state.config.url
        )
    } else if state.config.auth.get_user_by_header {
        "Sign in through the proxy in front of iamdesk.".to_string()
    } else {
        "Ask your administrators how to sign in.".to_string()
    };
    AppError::Unauthorized(format!("You are not signed in. {how}"))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or_else(|| sign_in_hint(parts, state))
    }
}

/// A signed-in administrator; anybody else gets 403.
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_admin {
            tracing::info!(user = %user.email, path = %parts.uri.path(), "admin page refused");
            return Err(AppError::Forbidden(
                "This page is for iamdesk administrators (groups.can_admin).".into(),
            ));
        }
        Ok(AdminUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_match_is_exact_never_substring() {
        let mut config = Config::default();
        config.groups.can_admin = vec!["admins".into()];
        config.groups.can_admin_policies = vec!["iam@example.com".into()];
        assert!(is_admin(&config, "x@example.com", &["admins".into()]));
        assert!(!is_admin(&config, "x@example.com", &["admins-not".into()]));
        assert!(!is_admin(
            &config,
            "x@example.com",
            &["not-admins".into(), "admin".into()]
        ));
        assert!(is_admin(&config, "iam@example.com", &[]));
        assert!(!is_admin(&config, "iam@example.com.evil", &[]));
    }

    #[test]
    fn groups_header_is_comma_separated() {
        assert_eq!(split_groups(" a, b ,,c "), ["a", "b", "c"]);
    }
}
