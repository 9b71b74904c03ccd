//! Show-once secrets across a redirect (POST, then 303, then GET), so that reloading the page
//! that shows a new API token or new credentials never makes another one.
//!
//! The POST puts the secret in a short-lived cookie, sealed with AES-256-GCM under a key derived
//! from the portal's secret and bound to the user and the page (the AAD): another user, another
//! page or a tampered cookie opens nothing, and the browser's cookie store never holds the
//! secret in clear. The GET opens it once and clears the cookie. The cookie is HttpOnly,
//! `SameSite=Strict`, limited to the one page's path, and lives two minutes. It works across
//! replicas (no server-side state).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::app::AppState;

const MAX_AGE_SECS: u32 = 120;

fn key(secret: &[u8]) -> Option<LessSafeKey> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(b"iamdesk-show-once-v1");
    let bytes = mac.finalize().into_bytes();
    UnboundKey::new(&AES_256_GCM, &bytes)
        .ok()
        .map(LessSafeKey::new)
}

fn aad(purpose: &str, email: &str) -> Vec<u8> {
    format!("{purpose}\0{}", email.to_ascii_lowercase()).into_bytes()
}

fn cookie_name(purpose: &str) -> String {
    format!("iamdesk_once_{purpose}")
}

/// Sealed `plaintext` for `email` on page `purpose`.
pub fn seal(secret: &[u8], purpose: &str, email: &str, plaintext: &str) -> Option<String> {
    let key = key(secret)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).ok()?;
    let mut data = plaintext.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(purpose, email)),
        &mut data,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend(data);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// What [`seal`] sealed, if `value` was sealed for this user and page with this secret.
pub fn open(secret: &[u8], purpose: &str, email: &str, value: &str) -> Option<String> {
    let key = key(secret)?;
    let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
    if raw.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad(purpose, email)), &mut data)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// The `Set-Cookie` carrying a sealed secret to the page at `path`.
pub fn set_cookie(
    state: &AppState,
    purpose: &str,
    path: &str,
    email: &str,
    plaintext: &str,
) -> Option<HeaderValue> {
    let sealed = seal(&state.secret, purpose, email, plaintext)?;
    let secure = super::identity::secure_attr(&state.config);
    HeaderValue::from_str(&format!(
        "{}={sealed}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}{secure}",
        cookie_name(purpose)
    ))
    .ok()
}

/// The secret waiting for this user on this page (if any), and the `Set-Cookie` clearing it.
pub fn take(
    state: &AppState,
    headers: &HeaderMap,
    purpose: &str,
    path: &str,
    email: &str,
) -> (Option<String>, Option<HeaderValue>) {
    let name = cookie_name(purpose);
    let Some(value) = super::identity::cookie(headers, &name) else {
        return (None, None);
    };
    let secure = super::identity::secure_attr(&state.config);
    let clear = HeaderValue::from_str(&format!(
        "{name}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .ok();
    (open(&state.secret, purpose, email, value), clear)
}

/// Add a `Set-Cookie` to a response.
pub fn with_cookie(
    mut resp: axum::response::Response,
    cookie: Option<HeaderValue>,
) -> axum::response::Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_user_page_and_secret_open_it() {
        let k = b"0123456789abcdef0123456789abcdef".to_vec();
        let sealed = seal(&k, "token", "Ann@x.com", "idt_secret").expect("seal");
        assert!(!sealed.contains("idt_secret"));
        assert_eq!(
            open(&k, "token", "ann@x.com", &sealed).as_deref(),
            Some("idt_secret")
        );
        assert_eq!(open(&k, "token", "bob@x.com", &sealed), None);
        assert_eq!(open(&k, "credentials", "ann@x.com", &sealed), None);
        assert_eq!(open(b"another key", "token", "ann@x.com", &sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(open(&k, "token", "ann@x.com", &tampered), None);
        assert_eq!(open(&k, "token", "ann@x.com", "short"), None);
    }
}
