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
    /// `light` or `dark` when the visitor chose one (cookie [`THEME_COOKIE`]); empty: follow the
    /// system's `prefers-color-scheme`.
    pub theme: &'static str,
}

/// Remembers the colour theme chosen in the footer (`POST /preferences/theme`).
pub const THEME_COOKIE: &str = "iamdesk_theme";

/// The theme a request's cookie asks for: `light`, `dark`, or "" (the system's).
pub fn theme_of(headers: &axum::http::HeaderMap) -> &'static str {
    match super::identity::cookie(headers, THEME_COOKIE) {
        Some("light") => "light",
        Some("dark") => "dark",
        _ => "",
    }
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
            theme: "",
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

    pub fn css_url(&self) -> &'static str {
        super::assets::url("app.css")
    }

    pub fn js_url(&self) -> &'static str {
        super::assets::url("app.js")
    }

    pub fn selfservice_js_url(&self) -> &'static str {
        super::assets::url("selfservice.js")
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
        layout.theme = theme_of(&parts.headers);
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

/// A moment as pages show it: relative ("3 h ago"), the exact time on hover, machine-readable
/// in `datetime`. Rendered on the server (pages are never cached), so no script is needed.
#[derive(Debug, Clone, Default)]
pub struct When {
    pub iso: String,
    pub exact: String,
    pub ago: String,
}

impl When {
    pub fn of(at: DateTime<Utc>) -> When {
        When::at(at, Utc::now())
    }

    pub fn at(at: DateTime<Utc>, now: DateTime<Utc>) -> When {
        When {
            iso: at.to_rfc3339(),
            exact: human_time(at),
            ago: ago(at, now),
        }
    }
}

impl std::fmt::Display for When {
    /// `<time>` HTML. Every part is made by chrono formats above: no character needs escaping.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<time datetime=\"{}\" title=\"{}\">{}</time>",
            self.iso, self.exact, self.ago
        )
    }
}

/// "just now", "5 min ago", "3 h ago", "2 d ago", then the date.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    match secs {
        s if s < -60 => human_time(at),
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s if s < 30 * 86_400 => format!("{} d ago", s / 86_400),
        _ => at.format("%Y-%m-%d").to_string(),
    }
}

/// One row of a request table (and of `GET /api/v2/requests`'s `summaries`, for the page's
/// search as you type).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestRow {
    pub id: String,
    pub short_id: String,
    pub url: String,
    pub requester: String,
    pub status: &'static str,
    pub justification: String,
    pub created: String,
    pub created_iso: String,
    /// "3 h ago".
    pub age: String,
    /// The first principal the request changes, and how many others.
    pub principal: String,
    pub principal_name: String,
    /// Its role page, when the role is synced.
    pub principal_url: Option<String>,
    pub more_principals: usize,
    pub account_id: String,
    pub account_name: String,
    /// "inline policy, tag".
    pub kinds: String,
    /// The highest risk of its changes (`low` … `critical`).
    pub risk: &'static str,
}

impl RequestRow {
    pub fn with_risk(mut self, level: crate::requests::risk::Level) -> Self {
        self.risk = level.as_str();
        self
    }
}

impl RequestRow {
    pub fn new(r: &PolicyRequest, resources: &crate::resources::service::Resources) -> Self {
        let targets = r.changes.targets();
        let first = targets.first();
        let account_id = first
            .map(|t| t.account().as_str().to_string())
            .unwrap_or_default();
        let principal_name = first.map(|t| t.name().to_string()).unwrap_or_default();
        let principal_url = first
            .filter(|t| resources.role(t.account().as_str(), t.name()).is_some())
            .map(|t| {
                format!(
                    "/policies/edit/{}/iamrole/{}",
                    t.account().as_str(),
                    t.name()
                )
            });
        let account_name = resources
            .accounts()
            .into_iter()
            .find(|(id, _)| *id == account_id)
            .map(|(_, name)| name)
            .unwrap_or_default();
        let mut kinds: Vec<String> = vec![];
        for c in r.changes.iter() {
            let k = c.kind().as_str().replace('_', " ");
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        let when = When::of(r.created_at);
        RequestRow {
            id: r.id.clone(),
            short_id: r.id.chars().take(8).collect(),
            url: format!("/policies/request/{}", r.id),
            requester: r.requester.clone(),
            status: r.status.as_str(),
            justification: truncate(&r.justification, 120),
            created: when.exact,
            created_iso: when.iso,
            age: when.ago,
            principal: first.map(|t| t.to_string()).unwrap_or_default(),
            principal_name,
            principal_url,
            more_principals: targets.len().saturating_sub(1),
            account_id,
            account_name,
            kinds: kinds.join(", "),
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
    fn relative_times_read_like_people_speak() {
        use chrono::{Duration, TimeZone, Utc};
        let now = Utc
            .with_ymd_and_hms(2026, 5, 4, 12, 0, 0)
            .single()
            .expect("date");
        let ago = |s: i64| super::ago(now - Duration::seconds(s), now);
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(5 * 60), "5 min ago");
        assert_eq!(ago(3 * 3600 + 50), "3 h ago");
        assert_eq!(ago(2 * 86_400), "2 d ago");
        assert_eq!(ago(90 * 86_400), "2026-02-03");
        let w = super::When::at(now - Duration::seconds(7200), now);
        assert_eq!(
            w.to_string(),
            "<time datetime=\"2026-05-04T10:00:00+00:00\" title=\"2026-05-04 10:00 UTC\">2 h ago</time>"
        );
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
    }
}
