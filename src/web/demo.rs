//! Demo personas: in demo mode (no sign-in method configured) the browser acts as one of two
//! made-up people, switchable from the banner, so a newcomer can play both sides of a review
//! and the self-approval rule stays real: the requester asks for a change, the admin approves.
//!
//! The choice is a plain cookie. It grants nothing an anonymous visitor of a demo portal does
//! not already have (both personas are one click away for everybody), and it is read only in
//! demo mode: [`current_user`] is called from the demo branch of
//! `identity::authenticate` alone, and [`switch`] answers 404 outside demo mode.

use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::identity::{AuthMethod, CurrentUser, DEMO_USER};
use super::view::Layout;
use crate::app::AppState;
use crate::config::Config;
use crate::error::AppError;

/// Remembers the chosen persona.
pub const COOKIE: &str = "iamdesk_demo_persona";
pub const REQUESTER_EMAIL: &str = "demo-requester@iamdesk.local";
/// A month: the choice outlives a browser restart, like a sign-in would.
const COOKIE_MAX_AGE: u32 = 30 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// An engineer who requests changes; not an administrator.
    Requester,
    /// An administrator who reviews and approves (the default, as before personas existed).
    Admin,
}

impl Persona {
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Requester => "requester",
            Persona::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Persona> {
        match s {
            "requester" => Some(Persona::Requester),
            "admin" => Some(Persona::Admin),
            _ => None,
        }
    }

    pub fn email(self) -> &'static str {
        match self {
            Persona::Requester => REQUESTER_EMAIL,
            Persona::Admin => DEMO_USER,
        }
    }

    /// The persona a demo user's email belongs to.
    pub fn of_email(email: &str) -> Option<Persona> {
        [Persona::Requester, Persona::Admin]
            .into_iter()
            .find(|p| p.email() == email)
    }

    pub fn other(self) -> Persona {
        match self {
            Persona::Requester => Persona::Admin,
            Persona::Admin => Persona::Requester,
        }
    }

    /// How the banner names the persona.
    pub fn title(self) -> &'static str {
        match self {
            Persona::Requester => "the requester",
            Persona::Admin => "the admin",
        }
    }

    /// What the persona is for, in the banner ("You are the admin (email), ...").
    pub fn role(self) -> &'static str {
        match self {
            Persona::Requester => "an engineer who requests changes for an admin to approve",
            Persona::Admin => {
                "an administrator who approves other people's requests (never your own)"
            }
        }
    }

    /// The persona this browser chose, the admin when it chose none (or sent nonsense).
    pub fn from_headers(headers: &HeaderMap) -> Persona {
        super::identity::cookie(headers, COOKIE)
            .and_then(Persona::parse)
            .unwrap_or(Persona::Admin)
    }
}

/// The demo user of this request. Only for demo mode: the caller checks `demo_mode`.
pub fn current_user(config: &Config, headers: &HeaderMap) -> CurrentUser {
    let persona = Persona::from_headers(headers);
    let mut user = CurrentUser::new(
        config,
        persona.email().to_string(),
        vec![],
        AuthMethod::Demo,
    );
    // Whatever `groups.*` say: the requester must never be able to approve.
    user.is_admin = persona == Persona::Admin;
    user
}

/// The banner of an error page. Error pages are rendered around the handlers (src/web/errors.rs),
/// without the signed-in user, so what the banner needs is taken from the request beforehand.
pub struct ErrorPageBanner {
    persona: Persona,
    csrf_token: String,
    path: String,
}

impl ErrorPageBanner {
    /// `None` outside demo mode.
    pub fn capture(state: &AppState, req: &Request) -> Option<ErrorPageBanner> {
        if !state.demo_mode {
            return None;
        }
        // The form works only for a browser that already has its CSRF cookie.
        let name = super::identity::cookie_name(&state.config, super::csrf::COOKIE);
        let csrf_token = super::identity::cookie(req.headers(), &name)
            .map(|c| super::csrf::token_for(&state.secret, c, None))
            .unwrap_or_default();
        let path = match (req.method(), req.uri().path_and_query()) {
            (&Method::GET, Some(pq)) => pq.as_str().to_string(),
            _ => "/".to_string(),
        };
        Some(ErrorPageBanner {
            persona: Persona::from_headers(req.headers()),
            csrf_token,
            path,
        })
    }

    pub fn apply(banner: Option<ErrorPageBanner>, layout: Layout) -> Layout {
        match banner {
            None => layout,
            Some(b) => {
                let mut layout = layout.persona(b.persona);
                layout.csrf_token = b.csrf_token;
                layout.path = b.path;
                layout
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    persona: String,
    /// Where to go back to: a path on this portal.
    #[serde(default)]
    next: String,
}

/// A path on this portal (never `//host` or `/\host`, which browsers treat as another site),
/// in printable ASCII as a page's own URI is, so it is always a valid `Location` header.
pub(super) fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.chars().all(|c| c.is_ascii_graphic());
    ok.then_some(next)
}

/// `POST /demo/persona` (banner form, CSRF-checked like every form): remember the persona and
/// go back to the page it was chosen on (home when that page is for admins only).
pub async fn switch(
    State(state): State<AppState>,
    Form(form): Form<SwitchForm>,
) -> Result<Response, AppError> {
    if !state.demo_mode {
        return Err(AppError::NotFound(
            "There is nothing at /demo/persona: personas exist only in demo mode.".into(),
        ));
    }
    let persona = Persona::parse(form.persona.trim()).ok_or_else(|| {
        AppError::BadRequest(format!(
            "persona '{}' is not one of requester, admin",
            form.persona
        ))
    })?;
    let next = local_path(&form.next)
        .filter(|p| persona == Persona::Admin || !p.starts_with("/admin"))
        .unwrap_or("/");
    let secure = if state.config.is_dev() {
        ""
    } else {
        "; Secure"
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE}{secure}",
        persona.as_str()
    );
    tracing::info!(persona = persona.as_str(), "demo persona chosen");
    let mut resp = Redirect::to(next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie).expect("header"),
        );
        h
    }

    #[test]
    fn the_cookie_picks_the_persona_and_nonsense_means_admin() {
        let config = Config::default();
        let u = current_user(&config, &headers("iamdesk_demo_persona=requester"));
        assert_eq!(u.email, REQUESTER_EMAIL);
        assert!(!u.is_admin);
        assert_eq!(u.method, AuthMethod::Demo);
        for c in [
            "iamdesk_demo_persona=admin",
            "iamdesk_demo_persona=root",
            "x=1",
        ] {
            let u = current_user(&config, &headers(c));
            assert_eq!(u.email, DEMO_USER, "{c}");
            assert!(u.is_admin, "{c}");
        }
        assert_eq!(current_user(&config, &HeaderMap::new()).email, DEMO_USER);
    }

    #[test]
    fn the_requester_is_never_admin_even_if_configured_so() {
        let mut config = Config::default();
        config.groups.can_admin = vec![REQUESTER_EMAIL.into()];
        let u = current_user(&config, &headers("iamdesk_demo_persona=requester"));
        assert!(!u.is_admin);
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path("/policies?q=x"), Some("/policies?q=x"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "/a\nb",
            "/a b",
            "/é",
        ] {
            assert_eq!(local_path(bad), None, "{bad}");
        }
    }
}
