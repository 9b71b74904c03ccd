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
}

#[derive(Debug, Deserialize)]
pub struct RoleQuery {
    refreshed: Option<String>,
}

pub async fn role_page(
    _user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path((account_id, name)): Path<(String, String)>,
    Query(rq): Query<RoleQuery>,
) -> Result<RolePage, AppError> {
    let found = find_role(&state, &account_id, &name)?;
    Ok(render_role_page(
        layout,
        found,
        rq.refreshed.is_some(),
        ChangeForm::default(),
        vec![],
    ))
}

fn render_role_page(
    layout: Layout,
    found: RoleResponse,
    refreshed: bool,
    form: ChangeForm,
    form_errors: Vec<String>,
) -> RolePage {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    RolePage {
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
}

impl ChangeForm {
    /// The ConsoleMe v2 request body for this form, or what is wrong with the form itself.
    fn to_request(&self, role_arn: &str) -> Result<serde_json::Value, Vec<String>> {
        use serde_json::json;
        let (kind, action) = self
            .kind
            .split_once(':')
            .unwrap_or((self.kind.as_str(), ""));
        let principal = json!({"principal_type": "AwsResource", "principal_arn": role_arn});
        let document = || -> Result<serde_json::Value, Vec<String>> {
            serde_json::from_str(&self.policy_document)
                .map_err(|e| vec![format!("policy document: not valid JSON ({e})")])
        };
        let change = match kind {
            "inline_policy" if action == "detach" => {
                json!({"change_type": kind, "principal": principal,
                "action": "detach", "policy_name": self.policy_name.trim()})
            }
            "inline_policy" => {
                json!({"change_type": kind, "principal": principal, "action": "attach",
                "policy_name": self.policy_name.trim(), "policy": {"policy_document": document()?}})
            }
            "managed_policy" | "permissions_boundary" => {
                json!({"change_type": kind, "principal": principal,
                "action": if action == "detach" { "detach" } else { "attach" }, "arn": self.arn.trim()})
            }
            "assume_role_policy" => json!({"change_type": kind, "principal": principal,
                "policy": {"policy_document": document()?}}),
            "resource_tag" => json!({"change_type": kind, "principal": principal,
                "tag_action": if action.is_empty() { "create" } else { action },
                "key": self.tag_key.trim(), "value": self.tag_value}),
            _ => return Err(vec!["choose what to change".into()]),
        };
        Ok(json!({"justification": self.justification, "changes": {"changes": [change]}}))
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
    let body = match form.to_request(&found.role.arn) {
        Ok(b) => b,
        Err(errors) => {
            let page = render_role_page(layout, found, false, form, errors);
            return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let actor = crate::requests::lifecycle::Actor {
        email: user.email,
        is_admin: user.is_admin,
    };
    match crate::requests::create::create(&state, &actor, &body).await {
        Ok(created) => Ok(axum::response::Redirect::to(&created.request_url).into_response()),
        Err(AppError::Invalid(problems)) => {
            let errors = problems
                .into_iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect();
            let page = render_role_page(layout, found, false, form, errors);
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
    user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<axum::response::Redirect, AppError> {
    // Every refresh costs AWS calls: count it against the user's API budget.
    state.api_limiter.check(&format!("user:{}", user.email))?;
    state.resources.role(&account_id, &name).ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no role '{name}' in account {account_id}."
        ))
    })?;
    let still_there =
        crate::resources::sync::refresh_role(&state.resource_deps(), &account_id, &name).await?;
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
