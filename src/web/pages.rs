//! Server-rendered pages (askama). Usable without JavaScript.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::api::{DEFAULT_PAGE, ListQuery, parse_list_query};
use super::extract::{Path, Query};
use super::identity::{AdminUser, CurrentUser};
use super::view::{AuditRow, Layout, OutboxRow, Page, RequestRow};
use crate::app::AppState;
use crate::config::AwsMode;
use crate::error::AppError;
use crate::store::{OutboxStatus, PageRequest, RequestFilter, RequestKey, RequestStatus};

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    layout: Layout,
    accounts: usize,
    cloud_mode: String,
    pending_count: usize,
    pending_more: bool,
    store_backend: &'static str,
    cache_backend: &'static str,
    recent: Vec<RequestRow>,
    my_requests_url: String,
    /// The first of "My roles" (console roles).
    my_roles: Vec<super::credentials::RoleRow>,
    my_roles_total: usize,
}

pub async fn home(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
) -> Result<HomePage, AppError> {
    const PENDING_SHOWN: usize = 99;
    let recent = state
        .store
        .list_requests(
            &RequestFilter {
                status: None,
                requester: Some(user.email.clone()),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await?;
    // Only counted: the ids of the pending list, never their bodies.
    let pending = state
        .store
        .request_postings(
            &RequestKey::Status(RequestStatus::Pending),
            &PageRequest::first(PENDING_SHOWN),
        )
        .await?;
    let cloud_mode = match state.config.aws.mode {
        AwsMode::Aws => format!("AWS, region {}", state.config.aws.region),
        AwsMode::Sandbox => "sandbox (demo accounts)".to_string(),
    };
    let (mut my_roles, _) = super::credentials::my_roles(&state, &user, "");
    let my_roles_total = my_roles.len();
    my_roles.truncate(10);
    Ok(HomePage {
        my_roles,
        my_roles_total,
        layout: layout.nav("home"),
        accounts: state.resources.snapshots().len(),
        cloud_mode,
        pending_count: pending.items.len(),
        pending_more: pending.next_cursor.is_some(),
        store_backend: state.store.backend_name(),
        cache_backend: state.cache.backend_name(),
        recent: recent
            .items
            .iter()
            .map(|r| {
                RequestRow::new(r, &state.resources)
                    .with_risk(crate::requests::synced::request_risk(&state, r))
            })
            .collect(),
        my_requests_url: format!(
            "/requests?{}",
            url_encode_pairs(&[("requester", user.email.as_str())])
        ),
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "requests.html")]
pub struct RequestsPage {
    layout: Layout,
    recent: Vec<RequestRow>,
    statuses: Vec<&'static str>,
    risks: Vec<&'static str>,
    filter: RequestsFilterView,
    /// (id, name) of the synced accounts, for the account filter.
    accounts: Vec<(String, String)>,
    next_url: Option<String>,
    has_cursor: bool,
    first_url: String,
}

/// The requests page's filters, as shown in its form and kept in its links.
#[derive(Debug, Clone, Default)]
pub struct RequestsFilterView {
    pub status: String,
    pub requester: String,
    pub account: String,
    pub q: String,
    pub risk: String,
    /// `1`: only break-glass requests still to be reviewed.
    pub needs_review: String,
}

/// Query string for the requests page, keeping the filters and moving the cursor.
fn requests_url(f: &RequestsFilterView, cursor: Option<&str>) -> String {
    let q = url_encode_pairs(&[
        ("status", f.status.as_str()),
        ("requester", f.requester.as_str()),
        ("account", f.account.as_str()),
        ("q", f.q.as_str()),
        ("risk", f.risk.as_str()),
        ("needs_review", f.needs_review.as_str()),
        ("cursor", cursor.unwrap_or_default()),
    ]);
    if q.is_empty() {
        "/requests".into()
    } else {
        format!("/requests?{q}")
    }
}

/// `k=v&...` for the non-empty values, percent-encoded.
fn url_encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn requests(
    _user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Query(q): Query<ListQuery>,
) -> Result<RequestsPage, AppError> {
    let (filter, page) = parse_list_query(&ListQuery {
        limit: Some(q.limit.unwrap_or(DEFAULT_PAGE)),
        ..q
    })?;
    let has_cursor = page.cursor.is_some();
    let result = crate::store::search_requests(state.store.as_ref(), &filter, &page, &|r| {
        crate::requests::synced::request_risk(&state, r)
    })
    .await?;
    let view = RequestsFilterView {
        status: filter.status.map(|s| s.as_str()).unwrap_or("").to_string(),
        requester: filter.requester.clone().unwrap_or_default(),
        account: filter.account.clone().unwrap_or_default(),
        q: filter.text.clone().unwrap_or_default(),
        risk: filter
            .min_risk
            .map(|l| l.as_str())
            .unwrap_or("")
            .to_string(),
        needs_review: if filter.needs_review { "1" } else { "" }.to_string(),
    };
    let accounts = state.resources.accounts();
    Ok(RequestsPage {
        layout: layout.nav("requests"),
        recent: result
            .items
            .iter()
            .map(|r| {
                RequestRow::new(r, &state.resources)
                    .with_risk(crate::requests::synced::request_risk(&state, r))
            })
            .collect(),
        statuses: RequestStatus::ALL.iter().map(|s| s.as_str()).collect(),
        risks: crate::requests::risk::Level::ALL
            .iter()
            .map(|l| l.as_str())
            .collect(),
        next_url: result
            .next_cursor
            .as_deref()
            .map(|c| requests_url(&view, Some(c))),
        first_url: requests_url(&view, None),
        filter: view,
        accounts,
        has_cursor,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    layout: Layout,
    events: Vec<AuditRow>,
    next_url: Option<String>,
    request_id: String,
    export_url: String,
}

#[derive(Debug, Deserialize)]
pub struct CursorQuery {
    /// The outbox message just queued again (feedback after "Retry now").
    retried: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
    request_id: Option<String>,
}

pub async fn audit(
    _admin: AdminUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Query(q): Query<CursorQuery>,
) -> Result<AuditPage, AppError> {
    let page = PageRequest {
        limit: DEFAULT_PAGE,
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let request_id = q.request_id.filter(|r| !r.trim().is_empty());
    let result = state.store.list_audit(request_id.as_deref(), &page).await?;
    let rid = request_id.clone().unwrap_or_default();
    Ok(AuditPage {
        layout: layout.nav("audit"),
        events: result.items.iter().map(AuditRow::from).collect(),
        next_url: result.next_cursor.map(|c| {
            format!(
                "/admin/audit?{}",
                url_encode_pairs(&[("request_id", rid.as_str()), ("cursor", &c)])
            )
        }),
        export_url: format!(
            "/admin/audit.jsonl?{}",
            url_encode_pairs(&[("request_id", rid.as_str())])
        ),
        request_id: rid,
    })
}

/// `/admin/audit.jsonl`'s query: one request's events, and a time range.
#[derive(Debug, Deserialize)]
pub struct AuditExportQuery {
    request_id: Option<String>,
    /// Oldest event to include: an RFC 3339 time or a date (`2026-11-01`, from its start).
    from: Option<String>,
    /// Newest event to include: an RFC 3339 time or a date (`2026-11-30`, to its end).
    to: Option<String>,
}

/// A bound of the export's range; a date alone covers the whole day.
fn parse_bound(key: &str, raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, AppError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let t = if end_of_day {
            d.and_hms_milli_opt(23, 59, 59, 999)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        if let Some(t) = t {
            return Ok(t.and_utc());
        }
    }
    Err(AppError::BadRequest(format!(
        "{key} must be a date (2026-11-01) or an RFC 3339 time (2026-11-01T09:00:00Z), not {raw:?}"
    )))
}

/// Every audit event (optionally of one request, optionally within `from`..=`to`), newest
/// first, one JSON object per line. Streamed page by page: memory stays at one page whatever
/// the log's size, and the stream ends at the first event older than `from`.
pub async fn audit_export(
    _admin: AdminUser,
    State(state): State<AppState>,
    Query(q): Query<AuditExportQuery>,
) -> Result<impl axum::response::IntoResponse, AppError> {
    let request_id = q.request_id.filter(|r| !r.trim().is_empty());
    let from = match q.from.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(raw) => Some(parse_bound("from", raw, false)?),
        None => None,
    };
    let to = match q.to.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(raw) => Some(parse_bound("to", raw, true)?),
        None => None,
    };
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(AppError::BadRequest(format!(
            "from ({f}) is after to ({t}): nothing could match"
        )));
    }
    // The first page is read before answering, so a Store failure is a proper error status.
    let first = state
        .store
        .list_audit(
            request_id.as_deref(),
            &PageRequest::first(PageRequest::MAX_LIMIT),
        )
        .await?;
    struct Cursor {
        state: AppState,
        request_id: Option<String>,
        page: Option<crate::store::Page<crate::store::AuditEvent>>,
        next: Option<String>,
        done: bool,
    }
    let start = Cursor {
        state: state.clone(),
        request_id,
        next: first.next_cursor.clone(),
        page: Some(first),
        done: false,
    };
    let stream = futures::stream::unfold(start, move |mut c| async move {
        if c.done {
            return None;
        }
        let page = match c.page.take() {
            Some(p) => p,
            None => {
                let cursor = c.next.take()?;
                let mut req = PageRequest::first(PageRequest::MAX_LIMIT);
                req.cursor = Some(cursor);
                match c
                    .state
                    .store
                    .list_audit(c.request_id.as_deref(), &req)
                    .await
                {
                    Ok(p) => {
                        c.next = p.next_cursor.clone();
                        p
                    }
                    Err(e) => {
                        // Headers are gone: end the body early; the log says why.
                        tracing::error!(error = %e, "audit export stopped");
                        c.done = true;
                        return Some((Err(std::io::Error::other("audit export stopped")), c));
                    }
                }
            }
        };
        let mut out = String::new();
        for e in &page.items {
            if to.is_some_and(|t| e.at > t) {
                continue;
            }
            if from.is_some_and(|f| e.at < f) {
                c.done = true;
                break;
            }
            out.push_str(&serde_json::to_string(e).unwrap_or_default());
            out.push('\n');
        }
        if c.next.is_none() {
            c.done = true;
        }
        Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(out)), c))
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/x-ndjson"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"iamdesk-audit.jsonl\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    ))
}

#[derive(Template, WebTemplate)]
#[template(path = "outbox.html")]
pub struct OutboxPage {
    layout: Layout,
    messages: Vec<OutboxRow>,
    next_url: Option<String>,
    status_filter: String,
    /// Why email is not being delivered, when it is not.
    delivery_note: Option<String>,
    /// After "Retry now": the message queued again.
    retried: String,
}

/// Retry a dead or pending outbox message now (admins).
pub async fn retry_outbox(
    admin: AdminUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::response::Redirect, AppError> {
    let m = crate::notify::worker::retry(&state, &id).await?;
    state
        .store
        .append_audit(&crate::store::AuditEvent::new(
            &admin.0.email,
            "outbox.retried",
            m.payload.get("request_id").and_then(|v| v.as_str()),
            serde_json::json!({"outbox_id": m.id, "channel": m.channel,
                               "status": m.status.as_str()}),
        ))
        .await?;
    Ok(axum::response::Redirect::to(&format!(
        "/admin/outbox?retried={}#m-{}",
        m.id, m.id
    )))
}

pub async fn outbox(
    _admin: AdminUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Query(q): Query<CursorQuery>,
) -> Result<OutboxPage, AppError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(OutboxStatus::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!("status '{s}' is not one of pending, sent, dead"))
        })?),
    };
    let page = PageRequest {
        limit: DEFAULT_PAGE,
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let result = state.store.list_outbox(status, &page).await?;
    let status_s = status.map(|s| s.as_str()).unwrap_or("");
    let delivery_note = (!crate::notify::worker::can_deliver(&state, "email")).then(|| {
        "No sender is configured (ses.consoleme.sender), so email stays here: nothing is sent."
            .to_string()
    });
    Ok(OutboxPage {
        retried: q.retried.clone().unwrap_or_default(),
        layout: layout.nav("outbox"),
        status_filter: status_s.to_string(),
        delivery_note,
        messages: result.items.iter().map(OutboxRow::from).collect(),
        next_url: result.next_cursor.map(|c| {
            format!(
                "/admin/outbox?{}",
                url_encode_pairs(&[("status", status_s), ("cursor", &c)])
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_url_keeps_filters_and_encodes() {
        assert_eq!(
            requests_url(&RequestsFilterView::default(), None),
            "/requests"
        );
        assert_eq!(
            requests_url(
                &RequestsFilterView {
                    status: "pending".into(),
                    requester: "a+b@x.com".into(),
                    ..Default::default()
                },
                Some("ab12")
            ),
            "/requests?status=pending&requester=a%2Bb%40x.com&cursor=ab12"
        );
    }
}
