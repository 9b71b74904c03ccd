//! The Policies browser: `/policies`, the role page, and their JSON API.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{Path, Query};
use super::forms::FormProblem;
use super::identity::{AdminUser, CurrentUser};
use super::view::{Layout, Page, human_time};
use crate::app::AppState;
use crate::error::AppError;
use crate::requests::model::{AttachAction, ChangeDraft, RequestDraft, TagAction};
use crate::resources::index::{Query as SearchQuery, SearchResult, Sort, Summary};
use crate::resources::model::{Principal, ResourceKind};

pub const DEFAULT_PER_PAGE: usize = 50;
pub const MAX_PER_PAGE: usize = 200;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoliciesQuery {
    /// Free text over name, ARN, account id or name and tags; or an action (`s3:GetObject`).
    pub q: Option<String>,
    /// Account id or name.
    pub account: Option<String>,
    /// `role`, `user` or `managed_policy`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// An IAM action the policies must allow (wildcards included).
    pub action: Option<String>,
    /// `key` or `key=value`.
    pub tag: Option<String>,
    pub sort: Option<String>,
    /// From 1.
    pub page: Option<usize>,
    /// 1 to 200.
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
                    "type '{k}' is not one of role, user, managed_policy, s3, sqs, sns"
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

/// One search result: the index's summary, the page to open, and why it matched.
#[derive(Serialize)]
pub struct PolicyItem {
    #[serde(flatten)]
    pub summary: Summary,
    /// The role's page (roles only), keeping the search for "← Policies".
    pub url: Option<String>,
    /// When the search is an action: which statements allow it ("inline policy read-cur:
    /// statement Sid Read allows s3:*").
    pub matched: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PoliciesResponse {
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    /// The index generation the page was read from.
    pub generation: u64,
    /// `{kind, account_id, account_name, name, arn, tags, ..., url, matched_because}` each.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<PolicyItem>,
}

/// Why `s` answers a search for `action`: the statements of its policies that allow it.
fn explain(state: &AppState, s: &Summary, action: &str) -> Vec<String> {
    use super::jsonview::reasons;
    let snapshots = state.resources.snapshots();
    let Some(snap) = snapshots.iter().find(|x| x.account_id == s.account_id) else {
        return vec![];
    };
    let mut out = vec![];
    if matches!(
        s.kind,
        ResourceKind::S3 | ResourceKind::Sqs | ResourceKind::Sns
    ) {
        let found = snap.services.iter().find(|r| r.arn == s.arn);
        if let Some(policy) = found.and_then(|r| r.policy.as_ref()) {
            for r in reasons(policy, action) {
                out.push(format!("resource policy: {r}"));
            }
        }
        return out;
    }
    if s.kind == ResourceKind::ManagedPolicy {
        if let Some(p) = snap.policies.iter().find(|p| p.arn == s.arn) {
            out.extend(reasons(&p.document, action));
        }
        return out;
    }
    let Some(p) = snap.principals.iter().find(|p| p.arn == s.arn) else {
        return out;
    };
    for ip in &p.inline_policies {
        for r in reasons(&ip.document, action) {
            out.push(format!("inline policy {}: {r}", ip.name));
        }
    }
    for mp in &p.managed_policies {
        if let Some(doc) = snap.policies.iter().find(|x| x.arn == mp.arn) {
            for r in reasons(&doc.document, action) {
                out.push(format!("managed policy {}: {r}", mp.name));
            }
        }
    }
    out
}

/// The page of a search result: ConsoleMe's URL shapes (queues and topics with their region).
fn resource_url(s: &Summary) -> Option<String> {
    let name = urlencoding::encode(&s.name);
    let account = &s.account_id;
    match (s.kind, &s.region) {
        (ResourceKind::Role, _) => Some(format!("/policies/edit/{account}/iamrole/{name}")),
        (ResourceKind::ManagedPolicy, _) => {
            Some(format!("/policies/edit/{account}/managed_policy/{name}"))
        }
        (ResourceKind::S3, _) => Some(format!("/policies/edit/{account}/s3/{name}")),
        (kind @ (ResourceKind::Sqs | ResourceKind::Sns), Some(region)) => Some(format!(
            "/policies/edit/{account}/{}/{region}/{name}",
            kind.as_str()
        )),
        _ => None,
    }
}

/// The search's items with their links and reasons. `from` is the search's query string.
fn items_of(state: &AppState, q: &PoliciesQuery, items: Vec<Summary>) -> Vec<PolicyItem> {
    let action = non_empty(&q.action)
        .or_else(|| non_empty(&q.q))
        .filter(|a| super::jsonview::as_action(a).is_some());
    let from = serde_urlencoded::to_string(
        [
            ("q", non_empty(&q.q)),
            ("account", non_empty(&q.account)),
            ("type", non_empty(&q.kind)),
            ("action", non_empty(&q.action)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    items
        .into_iter()
        .map(|s| {
            let url = resource_url(&s).map(|base| {
                if from.is_empty() {
                    base
                } else {
                    format!(
                        "{base}?{}",
                        serde_urlencoded::to_string([("from", &from)]).unwrap_or_default()
                    )
                }
            });
            let matched = action
                .as_deref()
                .map(|a| explain(state, &s, a))
                .unwrap_or_default();
            PolicyItem {
                summary: s,
                url,
                matched,
            }
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v2/policies", tag = "resources", params(PoliciesQuery),
    responses((status = 200, body = PoliciesResponse), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
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
        items: items_of(&state, &q, items),
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
    items: Vec<PolicyItem>,
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
        items: items_of(&state, &q, result.items),
        q: qs,
        account,
        kind,
        sort,
        accounts,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleResponse {
    pub account_name: String,
    pub synced_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The role as last synced: arn, name, trust policy, inline and managed policies, tags.
    #[serde(flatten)]
    #[schema(value_type = Object)]
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

#[utoipa::path(get, path = "/api/v2/roles/{account_id}/{role_name}", tag = "resources",
    params(("account_id" = String, Path, description = "12-digit account id"), ("role_name" = String, Path, description = "Role name")),
    responses((status = 200, body = RoleResponse), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody)))]
pub async fn api_role(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, name)): Path<(String, String)>,
) -> Result<Json<RoleResponse>, AppError> {
    find_role(&state, &account_id, &name).map(Json)
}

/// An inline or managed policy as the role page shows it.
pub struct PolicyView {
    name: String,
    arn: String,
    /// Syntax-coloured JSON (src/web/jsonview.rs); empty when the document is unknown.
    html: String,
    /// One of its statements allows the searched action.
    matched: bool,
    /// The form, prefilled to change (inline) or detach (managed) this policy.
    change_url: String,
    remove_url: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "role.html")]
pub struct RolePage {
    layout: Layout,
    flash: Option<&'static str>,
    /// The "request a change" form, refilled with the problems after a failed submit.
    form: ChangeForm,
    form_problems: Vec<FormProblem>,
    /// Unknown actions: submitted only once the requester ticks "submit anyway".
    checks: Vec<FormProblem>,
    role: Principal,
    account_name: String,
    synced_at: String,
    trust_html: String,
    inline: Vec<PolicyView>,
    managed: Vec<PolicyView>,
    /// Back to the search this role was found with.
    back_url: String,
    /// The searched action whose statements are marked.
    action: String,
    page_url: String,
    /// Grants of this role that expire: (what and when, request id).
    expiring: Vec<(String, String)>,
    /// Recent denials and outside changes (`src/web/events.rs`).
    activity: super::events::RoleActivity,
    /// Unused services and the removal proposal (`src/rightsize/`).
    rightsize: Option<crate::rightsize::Report>,
}

impl RolePage {
    fn field_errors(&self, id: &str) -> Vec<String> {
        self.form_problems
            .iter()
            .chain(&self.checks)
            .filter(|p| p.target == id)
            .map(|p| {
                if p.detail.is_empty() {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.detail, p.message)
                }
            })
            .collect()
    }

    fn invalid(&self, id: &str) -> bool {
        !self.field_errors(id).is_empty()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RoleQuery {
    refreshed: Option<String>,
    /// The policies search this role was opened from (`q=...&account=...`), for "← Policies"
    /// and for marking the statements that matched.
    from: Option<String>,
    /// An action whose allowing statements are marked.
    action: Option<String>,
    /// Prefill the form (the page's own "Change"/"Remove" links, the "extend" link of an
    /// expiring grant, a denial's "request this"): `kind` like `inline_policy:attach`; an
    /// inline policy's or the trust policy's current document when none is given.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    policy_name: String,
    #[serde(default)]
    policy_document: String,
    #[serde(default)]
    arn: String,
    #[serde(default)]
    tag_key: String,
    #[serde(default)]
    tag_value: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    justification: String,
}

impl RoleQuery {
    /// The search's action, if it was one.
    fn action(&self) -> Option<String> {
        if let Some(a) = self.action.as_deref().and_then(super::jsonview::as_action) {
            return Some(a.to_string());
        }
        let from: PoliciesQuery = serde_urlencoded::from_str(self.from.as_deref()?).ok()?;
        from.action
            .as_deref()
            .or(from.q.as_deref())
            .and_then(super::jsonview::as_action)
            .map(str::to_string)
    }

    fn back_url(&self) -> String {
        // Only a query string of /policies: re-encoded, so nothing else can ride along.
        match self
            .from
            .as_deref()
            .and_then(|f| serde_urlencoded::from_str::<Vec<(String, String)>>(f).ok())
            .and_then(|pairs| serde_urlencoded::to_string(pairs).ok())
        {
            Some(qs) if !qs.is_empty() => format!("/policies?{qs}"),
            _ => "/policies".into(),
        }
    }

    fn prefill(&self, role: &Principal) -> ChangeForm {
        let mut form = ChangeForm {
            kind: self.kind.clone(),
            policy_name: self.policy_name.clone(),
            policy_document: self.policy_document.clone(),
            arn: self.arn.clone(),
            tag_key: self.tag_key.clone(),
            tag_value: self.tag_value.clone(),
            expires: self.expires.clone(),
            justification: self.justification.clone(),
            ..ChangeForm::default()
        };
        if form.policy_document.is_empty() {
            if form.kind == "inline_policy:attach"
                && let Some(p) = role
                    .inline_policies
                    .iter()
                    .find(|p| p.name == form.policy_name)
            {
                form.policy_document =
                    serde_json::to_string_pretty(&p.document).unwrap_or_default();
            }
            if form.kind == "assume_role_policy:"
                && let Some(t) = &role.trust_policy
            {
                form.policy_document = serde_json::to_string_pretty(t).unwrap_or_default();
            }
        }
        if form.tag_value.is_empty()
            && let Some(t) = role.tags.iter().find(|t| t.key == form.tag_key)
        {
            form.tag_value = t.value.clone();
        }
        form
    }
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
    let form = rq.prefill(&found.role);
    let activity = super::events::role_activity(&state, &account_id, &found.role.name).await;
    let mut page = render_role_page(&state, layout, found, &rq, form, vec![], vec![]);
    page.activity = activity;
    page.expiring = expiring;
    // The page stands without its right-size section when that cannot be computed.
    page.rightsize = crate::rightsize::report(&state, &account_id, &name)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "no right-size section on the role page"))
        .ok();
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
    state: &AppState,
    layout: Layout,
    found: RoleResponse,
    rq: &RoleQuery,
    form: ChangeForm,
    form_problems: Vec<FormProblem>,
    checks: Vec<FormProblem>,
) -> RolePage {
    use super::jsonview;
    let action = rq.action();
    let marks = |st: &serde_json::Value| {
        action
            .as_deref()
            .is_some_and(|a| jsonview::allowing_pattern(st, a).is_some())
    };
    let matched = |doc: &serde_json::Value| {
        action
            .as_deref()
            .is_some_and(|a| !jsonview::reasons(doc, a).is_empty())
    };
    let role = &found.role;
    let base = format!("/policies/edit/{}/iamrole/{}", role.account_id, role.name);
    let with = |pairs: &[(&str, &str)]| {
        format!(
            "{base}?{}#request-change",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    let inline = role
        .inline_policies
        .iter()
        .map(|p| PolicyView {
            name: p.name.clone(),
            arn: String::new(),
            html: jsonview::to_html(&p.document, &marks),
            matched: matched(&p.document),
            change_url: with(&[("change", "inline_policy:attach"), ("policy_name", &p.name)]),
            remove_url: with(&[("change", "inline_policy:detach"), ("policy_name", &p.name)]),
        })
        .collect();
    let snapshot = state
        .resources
        .snapshots()
        .iter()
        .find(|s| s.account_id == role.account_id)
        .cloned();
    let managed = role
        .managed_policies
        .iter()
        .map(|m| {
            let doc = snapshot
                .as_ref()
                .and_then(|s| s.policies.iter().find(|p| p.arn == m.arn))
                .map(|p| p.document.clone());
            PolicyView {
                name: m.name.clone(),
                arn: m.arn.clone(),
                html: doc
                    .as_ref()
                    .map(|d| jsonview::to_html(d, &marks))
                    .unwrap_or_default(),
                matched: doc.as_ref().is_some_and(matched),
                change_url: String::new(),
                remove_url: with(&[("change", "managed_policy:detach"), ("arn", &m.arn)]),
            }
        })
        .collect();
    RolePage {
        activity: Default::default(),
        rightsize: None,
        layout: layout.nav("policies"),
        form,
        form_problems,
        checks,
        flash: rq
            .refreshed
            .is_some()
            .then_some("Refreshed from AWS just now."),
        trust_html: role
            .trust_policy
            .as_ref()
            .map(jsonview::plain)
            .unwrap_or_default(),
        inline,
        managed,
        synced_at: found
            .synced_at
            .map(human_time)
            .unwrap_or_else(|| "demo data (sandbox)".into()),
        back_url: rq.back_url(),
        action: action.clone().unwrap_or_default(),
        page_url: base,
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
    /// `yes`: submit although an action is unknown (the requester checked it).
    #[serde(default)]
    pub accept_unknown: String,
    /// `8h`, `1d`, `3d`, `7d`, `30d`, or empty for a permanent grant.
    #[serde(default)]
    pub expires: String,
    /// A day (`YYYY-MM-DD`): the grant goes at its start (UTC). Wins over `expires`.
    #[serde(default)]
    pub expires_on: String,
}

impl ChangeForm {
    /// The form's expiry as the validator reads it (RFC 3339), or what is wrong with it.
    fn expiration(&self) -> Result<Option<String>, Vec<FormProblem>> {
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
                return Err(vec![FormProblem::new(
                    "f-expires",
                    "Expires",
                    String::new(),
                    &format!("`{other}` is not one of the offered durations"),
                    "changes[0].expiration_date",
                )]);
            }
        };
        let at = chrono::Utc::now() + chrono::Duration::hours(hours);
        Ok(Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }

    /// The draft request this form proposes, or what is wrong with the form itself.
    fn to_draft(&self, role_arn: &str) -> Result<RequestDraft, Vec<FormProblem>> {
        let (kind, action) = self
            .kind
            .split_once(':')
            .unwrap_or((self.kind.as_str(), ""));
        let document = || -> Result<serde_json::Value, Vec<FormProblem>> {
            serde_json::from_str(&self.policy_document).map_err(|e| {
                vec![FormProblem::new(
                    "f-policy_document",
                    "Policy document",
                    format!("line {}, column {}", e.line(), e.column()),
                    &format!("not valid JSON ({e})"),
                    "changes[0].policy.policy_document",
                )]
            })
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
            _ => {
                return Err(vec![FormProblem::new(
                    "f-kind",
                    "What to change",
                    String::new(),
                    "choose what to change",
                    "changes[0].change_type",
                )]);
            }
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

/// Submit the role page's form: a new request, or the form again with what to fix. Actions
/// iamdesk does not know (`s3:GetObjekt`) stop the form once, with suggestions: they are legal
/// (newer than the list, maybe) but usually a typo that would grant nothing.
pub async fn request_change(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path((account_id, name)): Path<(String, String)>,
    axum::Form(form): axum::Form<ChangeForm>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    let found = find_role(&state, &account_id, &name)?;
    let again = |found, problems, checks, form| {
        let page = render_role_page(
            &state,
            layout.clone(),
            found,
            &RoleQuery::default(),
            form,
            problems,
            checks,
        );
        (axum::http::StatusCode::BAD_REQUEST, page).into_response()
    };
    let draft = match form.to_draft(&found.role.arn) {
        Ok(b) => b,
        Err(problems) => return Ok(again(found, problems, vec![], form)),
    };
    let actor = user.actor();
    let invalid = |problems: Vec<(String, String)>| -> Vec<FormProblem> {
        problems
            .into_iter()
            .map(|(f, m)| super::forms::role_form_problem(&f, &m))
            .collect()
    };
    if form.accept_unknown != "yes" {
        let mut body = draft.to_body();
        body["dry_run"] = serde_json::Value::Bool(true);
        match crate::requests::create::create(&state, &actor, &body).await {
            Ok(created) => {
                let checks: Vec<FormProblem> = created
                    .warnings
                    .iter()
                    .filter(|w| super::forms::is_unknown_action_warning(w))
                    .map(|w| {
                        let (path, message) = super::forms::split_warning(w);
                        super::forms::role_form_problem(&path, &message)
                    })
                    .collect();
                if !checks.is_empty() {
                    return Ok(again(found, vec![], checks, form));
                }
            }
            Err(AppError::Invalid(problems)) => {
                return Ok(again(found, invalid(problems), vec![], form));
            }
            Err(e) => return Err(e),
        }
    }
    match crate::requests::create::create_draft(&state, &actor, &draft).await {
        Ok(url) => Ok(axum::response::Redirect::to(&url).into_response()),
        Err(AppError::Invalid(problems)) => Ok(again(found, invalid(problems), vec![], form)),
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
    /// Buckets, queues and topics: one line per service (and region), each with its own status.
    services: Vec<crate::resources::model::ServiceStatus>,
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
                services: s.services,
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
