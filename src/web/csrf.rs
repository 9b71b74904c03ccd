//! CSRF defence for every state-changing request, in two independent checks:
//!
//! 1. Origin: a browser's `Origin` (or, without it, `Referer`) must be this portal's own origin.
//! 2. Token: a signed double-submit token. Each browser gets a random `iamdesk_csrf` cookie;
//!    forms carry `csrf_token` = HMAC(server key, cookie) and JavaScript sends it as
//!    `X-CSRF-Token`. A cross-site page can neither read the cookie nor compute the HMAC.
//!
//! Clients that authenticate with a bearer API token (no cookie, no ambient credentials) are
//! exempt: a browser never attaches such a header to a cross-site request.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::MAX_BODY_BYTES;
use crate::app::AppState;
use crate::error::AppError;

pub const COOKIE: &str = "iamdesk_csrf";
pub const HEADER: &str = "x-csrf-token";
pub const FORM_FIELD: &str = "csrf_token";

/// The token to embed in this request's forms, put in the request extensions by [`protect`].
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

fn sign(key: &[u8], cookie: &str) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(b"iamdesk-csrf:");
    mac.update(cookie.as_bytes());
    Some(mac)
}

pub fn token_for(key: &[u8], cookie: &str) -> String {
    sign(key, cookie)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Constant-time check of a submitted token against the cookie.
pub fn verify(key: &[u8], cookie: &str, submitted: &str) -> bool {
    let Ok(raw) = hex::decode(submitted.trim()) else {
        return false;
    };
    sign(key, cookie).is_some_and(|m| m.verify_slice(&raw).is_ok())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    super::identity::cookie(headers, COOKIE)
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

fn uses_bearer_token(headers: &HeaderMap) -> bool {
    super::identity::bearer_token(headers).is_some() && !headers.contains_key(header::COOKIE)
}

/// `scheme://host[:port]` of a URL, lowercased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    })
}

/// The origins this portal answers on: the configured public `url`, and the Host the request
/// came in on (so a portal reached by another name still works for its own pages).
fn allowed_origins(state: &AppState, headers: &HeaderMap) -> Vec<String> {
    let mut out = vec![];
    if let Some(o) = origin_of(&state.config.url) {
        out.push(o);
    }
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        let host = host.to_ascii_lowercase();
        out.push(format!("http://{host}"));
        out.push(format!("https://{host}"));
    }
    out
}

fn origin_ok(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let claimed = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(origin_of)
        });
    match claimed {
        // Non-browser clients send neither; the token check still applies to them.
        None => Ok(()),
        Some(o) if allowed_origins(state, headers).contains(&o.to_ascii_lowercase()) => Ok(()),
        Some(o) => Err(AppError::Forbidden(format!(
            "Cross-site request refused: it came from {o}, not from this portal."
        ))),
    }
}

fn csrf_failed() -> AppError {
    AppError::Forbidden(
        "The CSRF check failed: this form has expired or was not sent from iamdesk. Reload the \
         page and try again."
            .into(),
    )
}

pub async fn protect(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let existing = cookie_value(req.headers());
    let cookie = existing.clone().unwrap_or_else(new_cookie_value);
    let key = state.secret.as_slice();

    if is_unsafe(req.method()) && !uses_bearer_token(req.headers()) {
        if let Err(e) = origin_ok(&state, req.headers()) {
            return e.into_response();
        }
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
        if !token.is_some_and(|t| verify(key, cookie, &t)) {
            tracing::info!("CSRF check failed");
            return csrf_failed().into_response();
        }
    }

    req.extensions_mut()
        .insert(CsrfToken(token_for(key, &cookie)));
    let mut resp = next.run(req).await;
    if existing.is_none() {
        let secure = if state.config.is_dev() {
            ""
        } else {
            "; Secure"
        };
        let value = format!("{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict{secure}");
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
    fn token_verifies_only_for_its_cookie_and_key() {
        let t = token_for(b"key-1", "cookie-a");
        assert!(verify(b"key-1", "cookie-a", &t));
        assert!(!verify(b"key-1", "cookie-b", &t));
        assert!(!verify(b"key-2", "cookie-a", &t));
        assert!(!verify(b"key-1", "cookie-a", "not-hex"));
        assert!(!verify(b"key-1", "cookie-a", ""));
    }

    #[test]
    fn origins_are_compared_by_scheme_and_host() {
        assert_eq!(
            origin_of("https://IAM.example.com/x?y").as_deref(),
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
