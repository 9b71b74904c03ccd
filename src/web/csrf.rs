//! CSRF defence for every state-changing request, in two independent checks:
//!
//! 1. Origin: tower-http's `CsrfLayer` (see [`origin_layer`]): `Sec-Fetch-Site` must be
//!    `same-origin` (or `none`), else `Origin` must be the portal's own (`url`) or match `Host`;
//!    requests with neither header (non-browser clients) pass on to the token check.
//! 2. Token, bound to the browser and the session: each browser gets a random `iamdesk_csrf`
//!    cookie; forms carry `csrf_token` = HMAC(server key, cookie, session seed) and JavaScript
//!    sends it as `X-CSRF-Token`. The session seed is the random `csrf` claim of the session
//!    cookie, so a token from another session (or from before signing in again) is refused. A
//!    cross-site page can neither read the cookies nor compute the HMAC.
//!
//! Requests authenticated by a personal API token skip the token check: a browser never adds an
//! `Authorization` header to a cross-site request, so there is no ambient credential to
//! borrow. What a token may change is bounded by its scopes (`scopes.rs`).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tower_http::csrf::{CsrfLayer, ProtectionError};

use super::MAX_BODY_BYTES;
use super::identity::{AuthMethod, CurrentUser, cookie_name, secure_attr};
use crate::app::AppState;
use crate::config::Config;
use crate::error::AppError;

pub const COOKIE: &str = "iamdesk_csrf";
pub const HEADER: &str = "x-csrf-token";
pub const FORM_FIELD: &str = "csrf_token";

/// The token to embed in this request's forms, put in the request extensions by [`protect`].
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

fn sign(key: &[u8], cookie: &str, session: Option<&str>) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(b"iamdesk-csrf:");
    mac.update(cookie.as_bytes());
    if let Some(seed) = session {
        mac.update(b"|session:");
        mac.update(seed.as_bytes());
    }
    Some(mac)
}

/// The token for a browser's CSRF cookie and, when signed in with a session cookie, that
/// session's seed.
pub fn token_for(key: &[u8], cookie: &str, session: Option<&str>) -> String {
    sign(key, cookie, session)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Constant-time check of a submitted token against the cookie and session.
pub fn verify(key: &[u8], cookie: &str, session: Option<&str>, submitted: &str) -> bool {
    let Ok(raw) = hex::decode(submitted.trim()) else {
        return false;
    };
    sign(key, cookie, session).is_some_and(|m| m.verify_slice(&raw).is_ok())
}

/// The Origin check: tower-http's `CsrfLayer` trusting the portal's own origin (`url`).
pub fn origin_layer(
    config: &Config,
) -> CsrfLayer<fn(ProtectionError) -> axum::http::Response<Body>> {
    let layer = CsrfLayer::new();
    let layer = match origin_of(&config.url) {
        Some(origin) => match layer.clone().add_trusted_origin(&origin) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "url is not usable as a trusted origin");
                layer
            }
        },
        None => layer,
    };
    layer.with_rejection_response(cross_site as fn(ProtectionError) -> axum::http::Response<Body>)
}

fn cross_site(err: ProtectionError) -> axum::http::Response<Body> {
    tracing::info!(reason = %err, "cross-site request refused");
    AppError::Forbidden(
        "Cross-site request refused: this form or call did not come from iamdesk's own pages. \
         Open iamdesk and try again from there."
            .into(),
    )
    .into_response()
}

/// `scheme://host[:port]` of a URL as a browser sends it in `Origin`: lowercased, without a
/// default port.
fn origin_of(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let origin = url.origin();
    origin
        .is_tuple()
        .then(|| origin.ascii_serialization().to_ascii_lowercase())
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    super::identity::cookie(headers, name)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

fn new_cookie_value() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness is a broken host; a UUIDv4 (also OS-random) is the fallback.
        return format!(
            "{:032x}{:032x}",
            uuid::Uuid::new_v4().as_u128(),
            uuid::Uuid::new_v4().as_u128()
        );
    }
    hex::encode(bytes)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn csrf_failed() -> AppError {
    AppError::Forbidden(
        "The CSRF check failed: this form has expired or was not sent from iamdesk. Reload the \
         page and try again."
            .into(),
    )
}

pub async fn protect(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let name = cookie_name(&state.config, COOKIE);
    let existing = cookie_value(req.headers(), &name);
    let cookie = existing.clone().unwrap_or_else(new_cookie_value);
    let key = state.secret.as_slice();
    let user = req.extensions().get::<CurrentUser>();
    let session = user
        .and_then(|u| u.session.as_ref())
        .map(|s| s.csrf.clone());
    let by_token = user.is_some_and(|u| u.method == AuthMethod::ApiToken);

    if is_unsafe(req.method()) && !by_token {
        let Some(cookie) = existing.as_deref() else {
            return csrf_failed().into_response();
        };
        let header_token = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let token = match header_token {
            Some(t) => Some(t),
            None if is_form(req.headers()) => {
                let (parts, body) = req.into_parts();
                let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
                    Ok(b) => b,
                    Err(_) => {
                        return AppError::PayloadTooLarge("the form is too large".into())
                            .into_response();
                    }
                };
                let token = form_field(&bytes, FORM_FIELD);
                req = Request::from_parts(parts, Body::from(bytes));
                token
            }
            None => None,
        };
        if !token.is_some_and(|t| verify(key, cookie, session.as_deref(), &t)) {
            tracing::info!("CSRF check failed");
            return csrf_failed().into_response();
        }
    }

    req.extensions_mut()
        .insert(CsrfToken(token_for(key, &cookie, session.as_deref())));
    let mut resp = next.run(req).await;
    if existing.is_none() {
        let value = format!(
            "{name}={cookie}; Path=/; HttpOnly; SameSite=Strict{}",
            secure_attr(&state.config)
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_verifies_only_for_its_cookie_session_and_key() {
        let t = token_for(b"key-1", "cookie-a", None);
        assert!(verify(b"key-1", "cookie-a", None, &t));
        assert!(!verify(b"key-1", "cookie-b", None, &t));
        assert!(!verify(b"key-2", "cookie-a", None, &t));
        assert!(!verify(b"key-1", "cookie-a", None, "not-hex"));
        assert!(!verify(b"key-1", "cookie-a", None, ""));
        // Bound to the session: not valid in another session, nor without one.
        let s = token_for(b"key-1", "cookie-a", Some("seed-1"));
        assert!(verify(b"key-1", "cookie-a", Some("seed-1"), &s));
        assert!(!verify(b"key-1", "cookie-a", Some("seed-2"), &s));
        assert!(!verify(b"key-1", "cookie-a", None, &s));
        assert!(!verify(b"key-1", "cookie-a", Some("seed-1"), &t));
    }

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        assert_eq!(
            origin_of("https://IAM.example.com/x?y").as_deref(),
            Some("https://iam.example.com")
        );
        assert_eq!(
            origin_of("https://iam.example.com:443/").as_deref(),
            Some("https://iam.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8081").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(origin_of("nonsense"), None);
    }

    #[test]
    fn form_field_is_found_among_others() {
        assert_eq!(
            form_field(b"a=1&csrf_token=abc%20d", "csrf_token").as_deref(),
            Some("abc d")
        );
        assert_eq!(form_field(b"a=1", "csrf_token"), None);
    }
}
