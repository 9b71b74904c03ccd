//! Events from AWS on the web: `/admin/findings`, a role's recent denials and outside changes
//! (role page and `GET /api/v2/roles/{account}/{name}/denies`), and `POST /api/v2/events/sns`
//! for SNS HTTPS subscriptions. Domain logic lives in `src/events/`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::extract::Path;
use super::identity::{AdminUser, CurrentUser};
use super::view::{Layout, Page, human_time};
use crate::app::{App, AppState};
use crate::error::AppError;
use crate::events::handle::{Outcome, handle_batch};
use crate::events::model::{Denial, role_key};
use crate::events::{denies, sns};

/// Outside changes shown on a role page.
const HISTORY_SHOWN: usize = 20;

pub struct FindingRow {
    pub rule: String,
    pub account_id: String,
    pub account_name: String,
    pub resource_type: String,
    pub resource_id: String,
    pub region: String,
    pub since: String,
    pub link: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "findings.html")]
pub struct FindingsPage {
    layout: Layout,
    rows: Vec<FindingRow>,
    stats: crate::events::StatsView,
    queues: Vec<String>,
    topics: Vec<String>,
}

/// Open AWS Config findings, newest first, and what the consumer did since startup.
pub async fn findings_page(
    _admin: AdminUser,
    State(state): State<AppState>,
    Page(layout): Page,
) -> Result<FindingsPage, AppError> {
    let findings = state.store.list_open_findings(500).await?;
    let rows = findings
        .into_iter()
        .map(|f| {
            let change = crate::events::parse::ComplianceChange {
                account_id: f.account_id.clone(),
                rule: f.rule.clone(),
                resource_type: f.resource_type.clone(),
                resource_id: f.resource_id.clone(),
                region: f.region.clone(),
                compliance: f.compliance.clone(),
                old_compliance: None,
                recorded_at: f.since,
                notified_at: f.last_seen,
            };
            FindingRow {
                link: crate::events::compliance::link(&state, &change),
                account_name: crate::events::compliance::account_name(&state, &f.account_id)
                    .unwrap_or_default(),
                since: human_time(f.since),
                rule: f.rule,
                account_id: f.account_id,
                resource_type: f.resource_type,
                resource_id: f.resource_id,
                region: f.region,
            }
        })
        .collect();
    Ok(FindingsPage {
        layout: layout.nav("findings"),
        rows,
        stats: state.events.stats.snapshot(),
        queues: state.config.events.queues.clone(),
        topics: state.config.events.sns_topics.clone(),
    })
}

/// One denial group as the API and the role page show it.
#[derive(Debug, Clone, Serialize)]
pub struct DenialView {
    pub action: String,
    pub resource: String,
    pub count: u64,
    pub error_code: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub role_arn: String,
    /// The role page with its change form prefilled with [`DenialView::suggested_policy`].
    pub request_url: String,
    pub suggested_policy: Value,
    #[serde(skip)]
    pub last_seen_human: String,
}

impl DenialView {
    fn new(account_id: &str, role_name: &str, d: &Denial) -> Self {
        let s = denies::suggestion(d);
        DenialView {
            action: d.action.clone(),
            resource: d.resource.clone(),
            count: d.count,
            error_code: d.error_code.clone(),
            first_seen: d.first_seen,
            last_seen: d.last_seen,
            role_arn: d.role_arn.clone(),
            request_url: denies::request_link(account_id, role_name, d),
            suggested_policy: serde_json::from_str(&s.policy_document).unwrap_or(Value::Null),
            last_seen_human: human_time(d.last_seen),
        }
    }
}

/// A role's recent denials and its changes made outside iamdesk.
#[derive(Debug, Default)]
pub struct RoleActivity {
    pub denials: Vec<DenialView>,
    /// "changed outside iamdesk by {caller}: {eventName}", with when.
    pub history: Vec<(String, String)>,
}

async fn denials_of(app: &App, account_id: &str, name: &str) -> Result<Vec<DenialView>, AppError> {
    let keep =
        chrono::Duration::days(i64::try_from(app.config.events.denies.keep_days).unwrap_or(36_500));
    let since = chrono::Utc::now() - keep;
    Ok(app
        .store
        .list_denials(&role_key(account_id, name), since)
        .await?
        .iter()
        .map(|d| DenialView::new(account_id, name, d))
        .collect())
}

/// For the role page. Best effort: a Store failure shows an empty section, never an error page.
pub async fn role_activity(app: &App, account_id: &str, name: &str) -> RoleActivity {
    let denials = denials_of(app, account_id, name).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list the role's denials");
        vec![]
    });
    let history = app
        .store
        .list_outside_changes(&role_key(account_id, name), HISTORY_SHOWN)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the role's outside changes");
            vec![]
        })
        .into_iter()
        .map(|c| {
            (
                human_time(c.at),
                format!("changed outside iamdesk by {}: {}", c.by, c.event_name),
            )
        })
        .collect();
    RoleActivity { denials, history }
}

/// `GET /api/v2/roles/{account}/{name}/denies`.
#[utoipa::path(get, path = "/api/v2/roles/{account_id}/{role_name}/denies", tag = "resources",
    params(("account_id" = String, Path, description = "12-digit account id"), ("role_name" = String, Path, description = "Role name")),
    responses((status = 200, description = "The access denials recorded for the role", body = Object), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody)))]
pub async fn api_denies(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let (_, role) = state.resources.role(&account_id, &name).ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no role '{name}' in account {account_id} (as of the last sync)."
        ))
    })?;
    let denies = denials_of(&state, &account_id, &role.name).await?;
    Ok(Json(json!({
        "role_arn": role.arn,
        "keep_days": state.config.events.denies.keep_days,
        "denies": denies,
    })))
}

/// `POST /api/v2/events/sns`: SNS's HTTPS delivery. No session, no CSRF token: the signature
/// is the authentication, and nothing is read or acted on before it verified.
#[utoipa::path(post, path = "/api/v2/events/sns", tag = "events",
    request_body(content = String, content_type = "text/plain", description = "An SNS HTTPS delivery (notification or subscription confirmation), verified by its signature; no session or token"),
    responses((status = 200, description = "Accepted"), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 403, description = "Not allowed (or the API token lacks the scope)", body = super::openapi::ErrorBody)))]
pub async fn sns_endpoint(State(state): State<AppState>, body: String) -> Response {
    let stats = &state.events.stats;
    let env: sns::Envelope = match serde_json::from_str(&body) {
        Ok(e) => e,
        Err(e) => {
            stats.count(&stats.refused);
            return AppError::BadRequest(format!("not an SNS message: {e}")).into_response();
        }
    };
    if let Err(e) = state
        .events
        .sns
        .verify(&env, &state.config.events.sns_topics)
        .await
    {
        stats.count(&stats.refused);
        tracing::warn!(topic = %env.topic_arn, error = %e, "SNS message refused");
        return AppError::Forbidden(format!("SNS message refused: {e}")).into_response();
    }
    match env.kind.as_str() {
        "SubscriptionConfirmation" => match state.events.sns.confirm(&env).await {
            Ok(()) => {
                tracing::info!(topic = %env.topic_arn, "SNS subscription confirmed");
                Json(json!({"status": "ok", "confirmed": true})).into_response()
            }
            Err(e) => {
                AppError::Upstream(format!("cannot confirm the subscription: {e}")).into_response()
            }
        },
        "UnsubscribeConfirmation" => {
            tracing::warn!(topic = %env.topic_arn, "SNS says this endpoint was unsubscribed");
            Json(json!({"status": "ok"})).into_response()
        }
        _ => match handle_batch(&state, std::slice::from_ref(&body))
            .await
            .pop()
        {
            Some(Outcome::Handled) | None => Json(json!({"status": "ok"})).into_response(),
            Some(Outcome::Unparseable(e)) => {
                AppError::BadRequest(format!("the message cannot be understood: {e}"))
                    .into_response()
            }
            // SNS retries deliveries that fail with a server error.
            Some(Outcome::Failed(e)) => AppError::Unavailable(e).into_response(),
        },
    }
}
