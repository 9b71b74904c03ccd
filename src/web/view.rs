//! What every page shares (the layout) and small formatting helpers for templates.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};

use super::REQUEST_ID_HEADER;
use crate::app::AppState;
use crate::store::{AuditEvent, OutboxMessage, PolicyRequest};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The base layout's data: navigation, demo banner, signed-in user, request id.
#[derive(Debug, Clone)]
pub struct Layout {
    pub nav: &'static str,
    pub demo_mode: bool,
    pub user: Option<String>,
    /// Shows the admin pages in the navigation.
    pub is_admin: bool,
    pub version: &'static str,
    pub request_id: Option<String>,
    /// CSRF token for this page's forms (`csrf_token` field).
    pub csrf_token: String,
    /// Demo mode: who the browser is acting as (the banner offers the other persona).
    pub persona: Option<super::demo::Persona>,
    /// This page's path and query, for forms that come back here (the persona switch).
    pub path: String,
    /// Signed in with an iamdesk session cookie (so "Sign out" ends something).
    pub has_session: bool,
    /// The sandbox cloud: its accounts are simulated (no real console or credentials).
    pub simulated_cloud: bool,
}

impl Layout {
    pub fn new(state: &AppState, request_id: Option<String>) -> Self {
        let layout = Layout {
            csrf_token: String::new(),
            has_session: false,
            simulated_cloud: state.config.aws.mode == crate::config::AwsMode::Sandbox,
            nav: "",
            demo_mode: state.demo_mode,
            user: None,
            is_admin: false,
            version: VERSION,
            request_id,
            persona: None,
            path: "/".into(),
        };
        if state.demo_mode {
            layout.persona(super::demo::Persona::Admin)
        } else {
            layout
        }
    }

    /// Acting as a demo persona.
    pub fn persona(mut self, persona: super::demo::Persona) -> Self {
        self.user = Some(persona.email().to_string());
        self.is_admin = persona == super::demo::Persona::Admin;
        self.persona = Some(persona);
        self
    }

    pub fn nav(mut self, nav: &'static str) -> Self {
        self.nav = nav;
        self
    }
}

/// Extractor giving a page handler its [`Layout`].
pub struct Page(pub Layout);

impl FromRequestParts<AppState> for Page {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut layout = Layout::new(state, request_id);
        if let Some(u) = parts.extensions.get::<super::identity::CurrentUser>() {
            layout.user = Some(u.email.clone());
            layout.is_admin = u.is_admin;
            layout.has_session = u.session.is_some();
            layout.persona = (u.method == super::identity::AuthMethod::Demo)
                .then(|| super::demo::Persona::of_email(&u.email))
                .flatten();
        }
        // A page rendered by a POST (a form with errors) cannot be reloaded by a GET.
        if parts.method == axum::http::Method::GET
            && let Some(pq) = parts.uri.path_and_query()
        {
            layout.path = pq.as_str().to_string();
        }
        if let Some(t) = parts.extensions.get::<super::csrf::CsrfToken>() {
            layout.csrf_token = t.0.clone();
        }
        Ok(Page(layout))
    }
}

pub fn human_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// One row of a request table.
pub struct RequestRow {
    pub id: String,
    pub short_id: String,
    pub requester: String,
    pub status: &'static str,
    pub justification: String,
    pub created: String,
    pub created_iso: String,
    /// The highest risk of its changes (`low` … `critical`).
    pub risk: &'static str,
}

impl RequestRow {
    pub fn with_risk(mut self, level: crate::requests::risk::Level) -> Self {
        self.risk = level.as_str();
        self
    }
}

impl From<&PolicyRequest> for RequestRow {
    fn from(r: &PolicyRequest) -> Self {
        RequestRow {
            id: r.id.clone(),
            short_id: r.id.chars().take(8).collect(),
            requester: r.requester.clone(),
            status: r.status.as_str(),
            justification: truncate(&r.justification, 120),
            created: human_time(r.created_at),
            created_iso: r.created_at.to_rfc3339(),
            risk: "",
        }
    }
}

pub struct AuditRow {
    pub at: String,
    pub at_iso: String,
    pub actor: String,
    pub action: String,
    pub request_id: Option<String>,
    pub detail: String,
}

impl From<&AuditEvent> for AuditRow {
    fn from(e: &AuditEvent) -> Self {
        AuditRow {
            at: human_time(e.at),
            at_iso: e.at.to_rfc3339(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            request_id: e.request_id.clone(),
            detail: truncate(&e.detail.to_string(), 200),
        }
    }
}

pub struct OutboxRow {
    pub id: String,
    pub request_id: String,
    /// Email recipients, comma-separated (empty for Slack).
    pub to: String,
    pub next_attempt: String,
    pub retryable: bool,
    pub created: String,
    pub channel: String,
    pub status: &'static str,
    pub attempts: u32,
    pub summary: String,
    /// The whole subject (the summary is cut).
    pub subject: String,
    /// What the recipient reads: an email's plain-text part, or a Slack webhook body.
    pub body: String,
    pub last_error: String,
}

impl From<&OutboxMessage> for OutboxRow {
    fn from(m: &OutboxMessage) -> Self {
        let summary = m
            .payload
            .get("subject")
            .or_else(|| m.payload.get("text"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let to = m
            .payload
            .get("to")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let body = match m.payload.get("text") {
            Some(serde_json::Value::String(text)) => text.clone(),
            // Slack: the webhook body as it is posted.
            _ => m
                .payload
                .get("body")
                .and_then(|b| serde_json::to_string_pretty(b).ok())
                .unwrap_or_default(),
        };
        OutboxRow {
            subject: m
                .payload
                .get("subject")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            body,
            id: m.id.clone(),
            request_id: m
                .payload
                .get("request_id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            to,
            next_attempt: if m.status == crate::store::OutboxStatus::Pending && m.attempts > 0 {
                human_time(m.next_attempt_at)
            } else {
                String::new()
            },
            retryable: m.status != crate::store::OutboxStatus::Sent,
            created: human_time(m.created_at),
            channel: m.channel.clone(),
            status: m.status.as_str(),
            attempts: m.attempts,
            summary: truncate(&summary, 160),
            last_error: m.last_error.clone().unwrap_or_default(),
        }
    }
}

/// At most `max` characters, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
    }
}
