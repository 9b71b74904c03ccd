//! The Policies browser: `/policies`, the role page, and their JSON API.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{Path, Query};
use super::identity::{AdminUser, CurrentUser};
use super::view::{Layout, Page, human_time};
use crate::app::AppState;
use crate::error::AppError;
use crate::requests::model::{AttachAction, ChangeDraft, RequestDraft, TagAction};
use crate::resources::index::{Query as SearchQuery, SearchResult, Sort, Summary};
use crate::resources::model::{Principal, ResourceKind};

pub const DEFAULT_PER_PAGE: usize = 50;
pub const MAX_PER_PAGE: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct PoliciesQuery {
    pub q: Option<String>,
    pub account: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub action: Option<String>,
    pub tag: Option<String>,
    pub sort: Option<String>,
    pub page: Option<usize>,
    pub per_page: Option<usize>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl PoliciesQuery {
    fn to_search(&self) -> Result<(SearchQuery, usize, usize), AppError> {
        let kind = match non_empty(&self.kind) {
            None => None,
            Some(k) => Some(ResourceKind::parse(&k).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "type '{k}' is not one of role, user, managed_policy"
                ))
            })?),
        };
        let sort = match non_empty(&self.sort) {
            None => Sort::Name,
            Some(s) => Sort::parse(&s).ok_or_else(|| {
                AppError::BadRequest(format!("sort '{s}' is not one of name, account, type"))
            })?,
        };
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(AppError::BadRequest("page starts at 1".into()));
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(AppError::BadRequest(format!(
                "per_page must be between 1 and {MAX_PER_PAGE}"
            )));
        }
        let offset = (page - 1).saturating_mul(per_page);
        Ok((
            SearchQuery {
                text: non_empty(&self.q),
                account: non_empty(&self.account),
                kind,
                action: non_empty(&self.action),
                tag: non_empty(&self.tag),
                sort,
                offset,
                limit: per_page,
            },
            page,
            per_page,
        ))
    }
}

#[derive(Serialize)]
pub struct PoliciesResponse {
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub generation: u64,
    pub items: Vec<Summary>,
}

pub async fn api_policies(
    _user: CurrentUser,
    State(state): State<AppState>,
    Query(q): Query<PoliciesQuery>,
) -> Result<Json<PoliciesResponse>, AppError> {
    let (search, page, per_page) = q.to_search()?;
    let index = state.resources.index();
    let SearchResult { total, items } = index.search(&search);
    Ok(Json(PoliciesResponse {
        total,
        page,
        per_page,
        generation: index.generation,
        items,
    }))
}

#[derive(Template, WebTemplate)]
#[template(path = "policies.html")]
pub struct PoliciesPage {
    layout: Layout,
    q: String,
    account: String,
    kind: String,
    sort: String,
    accounts: Vec<(String, String)>,
    total: usize,
    first: usize,
    last: usize,
    synced: bool,
    items: Vec<Summary>,
    prev_url: Option<String>,
    next_url: Option<String>,
}

fn encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

pub async fn policies_page(
    _user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Query(q): Query<PoliciesQuery>,
) -> Result<PoliciesPage, AppError> {
    let (search, page, _) = q.to_search()?;
    let index = state.resources.index();
    let result = index.search(&search);
    let accounts = state.resources.accounts();
    let (qs, account, kind, sort) = (
        non_empty(&q.q).unwrap_or_default(),
        non_empty(&q.account).unwrap_or_default(),
        non_empty(&q.kind).unwrap_or_default(),
        non_empty(&q.sort).unwrap_or_else(|| "name".into()),
    );
    let link = |p: usize| {
        format!(
            "/policies?q={}&account={}&type={}&sort={}&page={p}",
            encode(&qs),
            encode(&account),
            encode(&kind),
            encode(&sort)
        )
    };
    let shown = result.items.len();
    Ok(PoliciesPage {
        layout: layout.nav("policies"),
        prev_url: (page > 1).then(|| link(page - 1)),
        next_url: (search.offset + shown < result.total).then(|| link(page + 1)),
        first: search.offset + 1,
        last: search.offset + shown,
        total: result.total,
        synced: !index.is_empty(),
        items: result.items,
        q: qs,
        account,
        kind,
        sort,
        accounts,
    })
}

#[derive(Serialize)]
pub struct RoleResponse {
    pub account_name: String,
    pub synced_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(flatten)]
    pub role: Principal,
}

fn find_role(state: &AppState, account_id: &str, name: &str) -> Result<RoleResponse, AppError> {
    let (snap, role) = state.resources.role(account_id, name).ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no role '{name}' in account {account_id} (as of the last sync)."
        ))
    })?;
    Ok(RoleResponse {
        account_name: snap.account_name.clone(),
        synced_at: snap.synced_at,
        role,
    })
}

pub async fn api_role(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Json<RoleResponse>, AppError> {
    find_role(&state, &account_id, &name).map(Json)
}

#[derive(Template, WebTemplate)]
#[template(path = "role.html")]
pub struct RolePage {
    layout: Layout,
    flash: Option<&'static str>,
    /// The "request a change" form, refilled with the problems after a failed submit.
    form: ChangeForm,
    form_errors: Vec<String>,
    role: Principal,
    account_name: String,
    synced_at: String,
    trust_pretty: String,
    inline: Vec<(String, String)>,
    /// Grants of this role that expire: (what and when, request id).
    expiring: Vec<(String, String)>,
    /// Recent denials and outside changes (`src/web/events.rs`).
    activity: super::events::RoleActivity,
}

/// The role page's query: a flash after a refresh, and a change form to prefill (the "extend"
/// link of an expiring grant, a denial's "request this").
#[derive(Debug, Deserialize)]
pub struct RoleQuery {
    refreshed: Option<String>,
    /// A prefilled "Request a change" form (e.g. from a denial's "Request this").
    #[serde(flatten)]
    prefill: ChangeForm,
}

pub async fn role_page(
    _user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path((account_id, name)): Path<(String, String)>,
    Query(rq): Query<RoleQuery>,
) -> Result<RolePage, AppError> {
    let found = find_role(&state, &account_id, &name)?;
    let expiring = expiring(&state, &found.role.arn).await;
    let activity = super::events::role_activity(&state, &account_id, &found.role.name).await;
    let mut page = render_role_page(
        layout,
        found,
        rq.refreshed.is_some(),
        rq.prefill,
        vec![],
        activity,
    );
    page.expiring = expiring;
    Ok(page)
}

/// "inline policy read — expires 2026-12-01 12:00 UTC (in 3 h)", with the request's id.
async fn expiring(state: &AppState, role_arn: &str) -> Vec<(String, String)> {
    let now = chrono::Utc::now();
    crate::requests::expiry::expiring_on(state, role_arn)
        .await
        .into_iter()
        .map(|(what, at, request)| {
            (
                format!("{what} — {}", super::request_page::expiry_text(at, now)),
                request,
            )
        })
        .collect()
}

fn render_role_page(
    layout: Layout,
    found: RoleResponse,
    refreshed: bool,
    form: ChangeForm,
    form_errors: Vec<String>,
    activity: super::events::RoleActivity,
) -> RolePage {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    RolePage {
        activity,
        layout: layout.nav("policies"),
        form,
        form_errors,
        flash: refreshed.then_some("Refreshed from AWS just now."),
        trust_pretty: found
            .role
            .trust_policy
            .as_ref()
            .map(pretty)
            .unwrap_or_default(),
        inline: found
            .role
            .inline_policies
            .iter()
            .map(|p| (p.name.clone(), pretty(&p.document)))
            .collect(),
        synced_at: found
            .synced_at
            .map(human_time)
            .unwrap_or_else(|| "demo data (sandbox)".into()),
        account_name: found.account_name,
        role: found.role,
        expiring: vec![],
    }
}

/// The role page's "request a change" form (no JavaScript needed).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ChangeForm {
    /// `inline_policy:attach`, `inline_policy:detach`, `managed_policy:attach`, ...
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub policy_name: String,
    #[serde(default)]
    pub policy_document: String,
    #[serde(default)]
    pub arn: String,
    #[serde(default)]
    pub tag_key: String,
    #[serde(default)]
    pub tag_value: String,
    #[serde(default)]
    pub justification: String,
    /// `8h`, `1d`, `3d`, `7d`, `30d`, or empty for a permanent grant.
    #[serde(default)]
    pub expires: String,
    /// A day (`YYYY-MM-DD`): the grant goes at its start (UTC). Wins over `expires`.
    #[serde(default)]
    pub expires_on: String,
}

impl ChangeForm {
    /// The form's expiry as the validator reads it (RFC 3339), or what is wrong with it.
    fn expiration(&self) -> Result<Option<String>, Vec<String>> {
        let on = self.expires_on.trim();
        if !on.is_empty() {
            return Ok(Some(on.to_string()));
        }
        let hours = match self.expires.trim() {
            "" | "never" => return Ok(None),
            "8h" => 8,
            "1d" => 24,
            "3d" => 72,
            "7d" => 168,
            "30d" => 720,
            other => {
                // An RFC 3339 time (the "extend" link keeps the original form's value).
                if chrono::DateTime::parse_from_rfc3339(other).is_ok() {
                    return Ok(Some(other.to_string()));
                }
                return Err(vec![format!(
                    "expires: `{other}` is not one of the offered durations"
                )]);
            }
        };
        let at = chrono::Utc::now() + chrono::Duration::hours(hours);
        Ok(Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }

    /// The draft request this form proposes, or what is wrong with the form itself.
    fn to_draft(&self, role_arn: &str) -> Result<RequestDraft, Vec<String>> {
        let (kind, action) = self
            .kind
            .split_once(':')
            .unwrap_or((self.kind.as_str(), ""));
        let document = || -> Result<serde_json::Value, Vec<String>> {
            serde_json::from_str(&self.policy_document)
                .map_err(|e| vec![format!("policy document: not valid JSON ({e})")])
        };
        let attach = if action == "detach" {
            AttachAction::Detach
        } else {
            AttachAction::Attach
        };
        let name = self.policy_name.trim();
        let change = match kind {
            "inline_policy" if action == "detach" => ChangeDraft::inline_delete(role_arn, name),
            "inline_policy" => ChangeDraft::inline_put(role_arn, name, document()?),
            "managed_policy" => ChangeDraft::managed(role_arn, false, attach, self.arn.trim()),
            "permissions_boundary" => ChangeDraft::managed(role_arn, true, attach, self.arn.trim()),
            "assume_role_policy" => ChangeDraft::trust(role_arn, document()?),
            "resource_tag" => {
                let tag_action = match action {
                    "update" => TagAction::Update,
                    "delete" => TagAction::Delete,
                    _ => TagAction::Create,
                };
                ChangeDraft::tag(role_arn, tag_action, self.tag_key.trim(), &self.tag_value)
            }
            _ => return Err(vec!["choose what to change".into()]),
        };
        let grants = matches!(
            (kind, action),
            ("inline_policy", "attach")
                | ("managed_policy", "attach")
                | ("resource_tag", "create" | "update" | "")
        );
        let change = if grants {
            change.expiring(self.expiration()?)
        } else {
            change
        };
        Ok(RequestDraft {
            justification: self.justification.clone(),
            changes: vec![change],
        })
    }
}

/// Submit the role page's form: a new request, or the form again with what to fix.
pub async fn request_change(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path((account_id, name)): Path<(String, String)>,
    axum::Form(form): axum::Form<ChangeForm>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    let found = find_role(&state, &account_id, &name)?;
    let activity = super::events::role_activity(&state, &account_id, &found.role.name).await;
    let draft = match form.to_draft(&found.role.arn) {
        Ok(b) => b,
        Err(errors) => {
            let page = render_role_page(layout, found, false, form, errors, activity);
            return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let actor = user.actor();
    match crate::requests::create::create_draft(&state, &actor, &draft).await {
        Ok(url) => Ok(axum::response::Redirect::to(&url).into_response()),
        Err(AppError::Invalid(problems)) => {
            let errors = problems
                .into_iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect();
            let page = render_role_page(layout, found, false, form, errors, activity);
            Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e),
    }
}

pub struct AccountRow {
    account_id: String,
    account_name: String,
    last_error: Option<String>,
    last_success: String,
    last_attempt: String,
    roles: usize,
    users: usize,
    policies: usize,
    duration_ms: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts.html")]
pub struct AccountsPage {
    layout: Layout,
    cloud: &'static str,
    generation: u64,
    interval: u64,
    rows: Vec<AccountRow>,
}

pub async fn accounts_page(
    _admin: AdminUser,
    State(state): State<AppState>,
    Page(layout): Page,
) -> Result<AccountsPage, AppError> {
    let statuses = state.store.list_account_status().await.unwrap_or_default();
    Ok(AccountsPage {
        layout: layout.nav("accounts"),
        cloud: state.cloud.name(),
        generation: state.resources.generation(),
        interval: state.config.sync.interval_seconds,
        rows: statuses
            .into_iter()
            .map(|s| AccountRow {
                last_success: s
                    .last_success_at
                    .map(human_time)
                    .unwrap_or_else(|| "never".into()),
                last_attempt: human_time(s.last_attempt_at),
                account_id: s.account_id,
                account_name: s.account_name,
                last_error: s.last_error,
                roles: s.roles,
                users: s.users,
                policies: s.policies,
                duration_ms: s.duration_ms,
            })
            .collect(),
    })
}

/// Re-read one role from AWS into the stored snapshot and the index, then show it.
pub async fn refresh_role(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<axum::response::Redirect, AppError> {
    // Every refresh costs AWS calls: as a POST it counts against the user's budget like every
    // state-changing request (web::identity).
    state.resources.role(&account_id, &name).ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no role '{name}' in account {account_id}."
        ))
    })?;
    let still_there = crate::resources::sync::refresh_role(&state, &account_id, &name).await?;
    tracing::info!(account = %account_id, role = %name, still_there, "role refreshed");
    if still_there {
        Ok(axum::response::Redirect::to(&format!(
            "/policies/edit/{account_id}/iamrole/{name}?refreshed=1"
        )))
    } else {
        Err(AppError::NotFound(format!(
            "The role '{name}' no longer exists in account {account_id}; it was removed from iamdesk."
        )))
    }
}
