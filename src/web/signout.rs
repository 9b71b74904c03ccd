//! Signing out: `POST /logout` (CSRF-checked like every form) revokes the session id until it
//! would have expired, on every replica (`auth::revocation`), and clears the cookie. `GET
//! /logout` only shows the button, so a link or an image elsewhere cannot sign anybody out.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::header;
use serde_json::json;

use super::identity::{AuthMethod, CurrentUser, clear_session_cookie};
use super::view::{Layout, Page};
use crate::app::AppState;
use crate::error::AppError;
use crate::store::AuditEvent;

/// A message, optionally with one confirmation button (a POST form with the CSRF token).
#[derive(Template, WebTemplate)]
#[template(path = "notice.html")]
pub struct NoticePage {
    pub layout: Layout,
    pub heading: &'static str,
    pub message: String,
    pub confirm_action: Option<String>,
    pub confirm_label: &'static str,
}

/// `GET /logout`: a "Sign out" button.
pub async fn page(user: Option<CurrentUser>, Page(layout): Page) -> NoticePage {
    let signed_in = user.is_some_and(|u| u.session.is_some());
    NoticePage {
        layout,
        heading: "Sign out",
        message: if signed_in {
            "End your iamdesk session on this browser?".into()
        } else {
            "You have no iamdesk session on this browser.".into()
        },
        confirm_action: signed_in.then(|| "/logout".to_string()),
        confirm_label: "Sign out",
    }
}

/// `POST /logout`: revoke the session everywhere, clear the cookie.
pub async fn sign_out(
    user: Option<CurrentUser>,
    State(state): State<AppState>,
    Page(mut layout): Page,
) -> Result<([(header::HeaderName, String); 1], NoticePage), AppError> {
    if let Some(u) = &user
        && let Some(session) = &u.session
    {
        let until = chrono::DateTime::from_timestamp(session.expires_at, 0)
            .unwrap_or_else(chrono::Utc::now);
        crate::auth::revocation::revoke(
            state.store.as_ref(),
            state.cache.as_ref(),
            &session.sid,
            until,
        )
        .await?;
        // The sid names the session in the log; it is useless without the signed cookie.
        state
            .store
            .append_audit(&AuditEvent::new(
                &u.email,
                "session.revoked",
                None,
                json!({"sid": session.sid, "until": until}),
            ))
            .await?;
        tracing::info!(user = %u.email, "signed out");
    }
    let message = if state.config.auth.get_user_by_aws_alb_auth {
        "Your iamdesk session has ended. To sign out of single sign-on as well, sign out at your \
         identity provider (the load balancer signs you in again while that session lasts)."
    } else if user.is_some_and(|u| u.method == AuthMethod::Header) {
        "Your iamdesk session has ended. The proxy in front of iamdesk signs you in: sign out \
         there to end that."
    } else {
        "Your iamdesk session has ended."
    };
    layout.user = None;
    layout.has_session = false;
    Ok((
        [(header::SET_COOKIE, clear_session_cookie(&state.config))],
        NoticePage {
            layout,
            heading: "Signed out",
            message: message.into(),
            confirm_action: None,
            confirm_label: "",
        },
    ))
}
