//! Who is asking: the signed-in user, resolved once per request by [`authenticate`] and read by
//! handlers through the [`CurrentUser`] / [`AdminUser`] extractors.
//!
//! Order of sign-in methods: a personal API token (`Authorization: Bearer iamdesk_…`, only for
//! the routes its scopes open: `scopes.rs`), the ALB's `x-amzn-oidc-data` token (when enabled), the session cookie, the
//! proxy headers (when enabled, never when ALB sign-in is on, and only from
//! `auth.trusted_proxies`), and finally demo mode (no method configured: the demo persona chosen
//! from the banner, announced on every page).
//!
//! Only *failed* verifications count against a client address's sign-in budget
//! ([`crate::ratelimit::FailureLimiter`]); a valid credential is always checked and accepted, so
//! nobody's failures slow a signed-in user down. Over the budget, a failing client gets 429,
//! and costly work for it (fetching an unknown ALB key) is skipped.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::client::ClientAddr;
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
    /// A personal API token (`Authorization: Bearer iamdesk_...`), for the routes its scopes
    /// open (`scopes.rs`).
    ApiToken,
}

/// The session cookie behind a request, when there is one (issued now or earlier).
#[derive(Debug, Clone)]
pub struct Session {
    pub sid: String,
    /// Per-session seed the CSRF tokens of this session are bound to.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentUser {
    pub email: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
    #[serde(skip)]
    pub method: AuthMethod,
    #[serde(skip)]
    pub session: Option<Session>,
    /// The API token this request came with (`AuthMethod::ApiToken` only).
    #[serde(skip)]
    pub token: Option<TokenGrant>,
}

/// What a verified API token grants, for the handlers and the audit trail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenGrant {
    /// The token's public id (never the token).
    pub id: String,
    pub name: String,
    /// `credentials`, `read`, `requests`.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<crate::credentials::tokens::Scope>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl CurrentUser {
    /// Who acts on a request: this user, with their groups (approval rules judge them).
    pub fn actor(&self) -> crate::requests::lifecycle::Actor {
        crate::requests::lifecycle::Actor {
            email: self.email.clone(),
            is_admin: self.is_admin,
            groups: self.groups.clone(),
            token: self.token.as_ref().map(|t| t.id.clone()),
        }
    }

    pub fn new(config: &Config, email: String, groups: Vec<String>, method: AuthMethod) -> Self {
        let is_admin = is_admin(config, &email, &groups);
        CurrentUser {
            email,
            groups,
            is_admin,
            method,
            session: None,
            token: None,
        }
    }
}

/// Admin when an entry of `groups.can_admin`, `groups.can_admin_policies` or
/// `application_admin` names the user (an entry with `@`) or one of their groups (without `@`,
/// or `group:NAME`); exact, never a substring (see `auth::access`).
pub fn is_admin(config: &Config, email: &str, groups: &[String]) -> bool {
    config
        .groups
        .can_admin
        .iter()
        .chain(&config.groups.can_admin_policies)
        .chain(config.application_admin.iter())
        .any(|entry| crate::auth::access::names(entry, email, groups))
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

/// A cookie's name as set and read: with the `__Host-` prefix when served over https (the
/// browser then refuses it unless it is Secure, for this host only, on `/`: a sibling
/// subdomain cannot plant one).
pub fn cookie_name(config: &Config, base: &str) -> String {
    if config.is_https() {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// `; Secure` where cookies must only travel over https.
pub(super) fn secure_attr(config: &Config) -> &'static str {
    if config.is_https() || !config.is_dev() {
        "; Secure"
    } else {
        ""
    }
}

fn split_groups(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What sign-in found, and the cookies to set on the way out.
struct Found {
    user: Option<CurrentUser>,
    set_cookies: Vec<String>,
}

/// A failed verification by `method` from `ip`: counted; 429 once over the budget, else
/// `refusal`.
fn failed(state: &AppState, method: &'static str, ip: &str, refusal: AppError) -> Response {
    crate::telemetry::metrics::sign_in_failed(method);
    match state.login_limiter.record(ip) {
        Ok(()) => refusal.into_response(),
        Err(too_many) => too_many.into_response(),
    }
}

/// Resolve the user (if any) and put it in the request extensions; count the request against
/// the per-user limit; set or clear the session cookie.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr {
            peer: None,
            client: None,
        });
    // The route as listed in `routes()` (placeholders, not values): what scopes are keyed by.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let found = match identify(&state, req.headers(), req.method(), &route, &addr).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };

    if let Some(u) = &found.user
        && matches!(
            u.method,
            AuthMethod::Alb | AuthMethod::Header | AuthMethod::Demo
        )
        && let Err(e) = state
            .sign_ins
            .touch(state.store.as_ref(), &u.email, &u.groups)
            .await
    {
        tracing::warn!(error = %e, "cannot record an interactive sign-in");
    }

    // The API and every state-changing request: per user, like the API (per address when
    // anonymous). Page views and static files are not counted.
    if req.uri().path().starts_with("/api/") || is_state_changing(req.method()) {
        let key = match &found.user {
            Some(u) => format!("user:{}", u.email),
            None => format!("ip:{}", addr.key()),
        };
        if let Err(e) = state.api_limiter.check(&key) {
            return e.into_response();
        }
    }

    if let Some(u) = found.user {
        req.extensions_mut().insert(u);
    }
    let mut resp = next.run(req).await;
    for c in found.set_cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    route: &str,
    addr: &ClientAddr,
) -> Result<Found, Response> {
    let config = &state.config;
    let ip = addr.key();
    let mut found = Found {
        user: None,
        set_cookies: vec![],
    };

    // A personal API token: when presented it is the only method tried, and it opens only the
    // routes its scopes name (a valid token without the scope is not a failed sign-in).
    if let Some(presented) =
        bearer_token(headers).filter(|t| t.starts_with(crate::credentials::tokens::PREFIX))
    {
        return match crate::credentials::tokens::authenticate(state, presented).await {
            Ok(t) => {
                if let Err(e) = super::scopes::check(&t.scopes, method, route) {
                    tracing::info!(token_id = %t.id, %method, route, "API token lacks the scope");
                    // Refusals count against the owner's API budget like any other call.
                    if let Err(too_many) = state.api_limiter.check(&format!("user:{}", t.user)) {
                        return Err(too_many.into_response());
                    }
                    return Err(e.into_response());
                }
                let mut user = CurrentUser::new(config, t.user, t.groups, AuthMethod::ApiToken);
                user.token = Some(TokenGrant {
                    id: t.id,
                    name: t.name,
                    scopes: t.scopes,
                    expires_at: t.expires_at,
                });
                found.user = Some(user);
                Ok(found)
            }
            Err(e @ AppError::Unauthorized(_)) => {
                tracing::info!(reason = %e, "API token refused");
                Err(failed(state, "token", &ip, e))
            }
            Err(e) => Err(e.into_response()),
        };
    }

    let cookie_name = cookie_name(config, &config.auth.cookie_name);
    // The session cookie, checked (signature, expiry, not signed out) once for every path below.
    let session = match cookie(headers, &cookie_name) {
        None => None,
        Some(raw) => match valid_session(state, raw).await? {
            Ok(claims) => Some(claims),
            Err(e) => {
                found.set_cookies.push(clear_session_cookie(config));
                if !matches!(e, AuthError::SessionExpired) {
                    tracing::info!(reason = %e, "session cookie rejected");
                    // A forged or signed-out cookie is a failed sign-in, but not fatal: the
                    // request goes on without it.
                    crate::telemetry::metrics::sign_in_failed("cookie");
                    if let Err(too_many) = state.login_limiter.record(&ip) {
                        return Err(too_many.into_response());
                    }
                }
                None
            }
        },
    };

    if let Some(alb) = &state.alb
        && let Some(token) = header_str(headers, ALB_HEADER)
    {
        let may_fetch = state.login_limiter.blocked(&ip).is_none();
        let id = match alb.verify_with(token, may_fetch).await {
            Ok(id) => id,
            Err(AuthError::KeyUnavailable) => {
                return Err(auth_failed(&AuthError::KeyUnavailable).into_response());
            }
            Err(AuthError::NotNow) => {
                let secs = state.login_limiter.blocked(&ip).unwrap_or(60);
                return Err(AppError::TooManyRequests(
                    format!("Too many failed sign-ins. Try again in {secs} second(s)."),
                    secs,
                )
                .into_response());
            }
            Err(e) => {
                tracing::warn!(reason = %e, "ALB token rejected");
                return Err(failed(state, "alb", &ip, auth_failed(&e)));
            }
        };
        let mut user = CurrentUser::new(config, id.email, id.groups, AuthMethod::Alb);
        // Keep the session this browser has for the same person and groups (its CSRF
        // tokens stay valid); otherwise start one when configured.
        user.session = match session {
            Some(c) if c.sub == user.email && c.groups == user.groups => Some(session_of(&c)),
            _ if config.auth.set_auth_cookie => {
                tracing::info!(user = %user.email, "signed in through the ALB");
                new_session(state, &user.email, &user.groups).map(|(cookie, s)| {
                    found.set_cookies.push(cookie);
                    s
                })
            }
            _ => None,
        };
        found.user = Some(user);
        return Ok(found);
    }
    if let Some(claims) = session {
        let mut user = CurrentUser::new(
            config,
            claims.sub.clone(),
            claims.groups.clone(),
            AuthMethod::Cookie,
        );
        user.session = Some(session_of(&claims));
        found.user = Some(user);
        return Ok(found);
    }
    // Never a fallback for the ALB: a request that bypassed the ALB must not name its user.
    if config.auth.get_user_by_header
        && state.alb.is_none()
        && let Some(email) = header_str(headers, &config.auth.user_header_name)
    {
        if !addr.peer_is_trusted(config) {
            tracing::warn!(
                peer = ?addr.peer,
                "user header from an address not in auth.trusted_proxies ignored"
            );
            crate::telemetry::metrics::sign_in_failed("header");
            if let Err(too_many) = state.login_limiter.record(&ip) {
                return Err(too_many.into_response());
            }
            return Ok(found);
        }
        let groups = if config.auth.get_groups_by_header {
            header_str(headers, &config.auth.groups_header_name)
                .map(split_groups)
                .unwrap_or_default()
        } else {
            vec![]
        };
        found.user = Some(CurrentUser::new(
            config,
            email.to_string(),
            groups,
            AuthMethod::Header,
        ));
        return Ok(found);
    }
    if state.demo_mode {
        // The persona chosen from the banner (src/web/demo.rs): requester or admin.
        found.user = Some(super::demo::current_user(config, headers));
    }
    Ok(found)
}

/// The claims of a session cookie that verifies and was not signed out; the outer `Err` is a
/// response to give at once (the Store cannot say whether it was signed out).
async fn valid_session(
    state: &AppState,
    raw: &str,
) -> Result<Result<crate::auth::SessionClaims, AuthError>, Response> {
    let claims = match state.sessions.verify(raw) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
    match crate::auth::revocation::is_revoked(
        state.store.as_ref(),
        state.cache.as_ref(),
        &claims.sid,
        expires,
    )
    .await
    {
        Ok(false) => Ok(Ok(claims)),
        Ok(true) => Ok(Err(AuthError::SessionRevoked)),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

fn session_of(c: &crate::auth::SessionClaims) -> Session {
    Session {
        sid: c.sid.clone(),
        csrf: c.csrf.clone(),
        expires_at: c.exp,
    }
}

/// A new session: its `Set-Cookie` and what it is, or `None` (logged) when it cannot be made or
/// would not fit in a cookie.
fn new_session(state: &AppState, email: &str, groups: &[String]) -> Option<(String, Session)> {
    let config = &state.config;
    let minutes = config.auth.session_minutes.max(1);
    let (token, claims) = match state.sessions.issue_session(
        email,
        groups,
        std::time::Duration::from_secs(minutes * 60),
    ) {
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
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        cookie_name(config, &config.auth.cookie_name),
        minutes * 60,
        secure_attr(config)
    );
    Some((cookie, session_of(&claims)))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(config: &Config) -> String {
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        cookie_name(config, &config.auth.cookie_name),
        secure_attr(config)
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

impl axum::extract::OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<CurrentUser>().cloned())
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
