//! Buckets, queues, topics and customer-managed policies (issue 14): their page at ConsoleMe's
//! URL (`/policies/edit/{account}/{s3|sqs|sns|managed_policy}/[{region}/]{name}`) and
//! `GET /api/v2/resources/{account}/{service}[/{region}]/{name}`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extract::{Path, Query};
use super::identity::CurrentUser;
use super::view::{Layout, Page, human_time};
use crate::app::AppState;
use crate::error::AppError;
use crate::resources::model::{Resource, ResourceKind};

/// What the page and the API show of one resource.
#[derive(Clone, Serialize)]
pub struct ResourceResponse {
    pub account_name: String,
    pub synced_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `s3`, `sqs`, `sns` or `managed_policy`.
    pub resource_type: ResourceKind,
    #[serde(flatten)]
    pub resource: Resource,
}

/// The service of a path segment, and (region, name) from what follows it: `name` or
/// `region/name` (ConsoleMe's shape; buckets and managed policies need no region).
fn parse(service: &str, rest: &str) -> Result<(ResourceKind, Option<String>, String), AppError> {
    let kind = match ResourceKind::parse(service) {
        Some(
            k @ (ResourceKind::S3
            | ResourceKind::Sqs
            | ResourceKind::Sns
            | ResourceKind::ManagedPolicy),
        ) => k,
        _ => {
            return Err(AppError::NotFound(format!(
                "`{service}` is not one of s3, sqs, sns, managed_policy"
            )));
        }
    };
    let rest = rest.trim_matches('/');
    let (region, name) = match rest.rsplit_once('/') {
        // A managed policy's ConsoleMe link may carry its IAM path: the name is the last part.
        Some((_, name)) if kind == ResourceKind::ManagedPolicy => (None, name),
        Some((region, name)) => (Some(region.to_string()), name),
        None => (None, rest),
    };
    if name.is_empty() {
        return Err(AppError::NotFound("This link names no resource.".into()));
    }
    Ok((kind, region, name.to_string()))
}

pub fn find(
    state: &AppState,
    account_id: &str,
    kind: ResourceKind,
    region: Option<&str>,
    name: &str,
) -> Result<ResourceResponse, AppError> {
    let (account, resource) = state
        .resources
        .resource(account_id, kind, region, name)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "There is no {} '{name}'{} in account {account_id} (as of the last sync).",
                describe(kind),
                region.map(|r| format!(" in {r}")).unwrap_or_default()
            ))
        })?;
    Ok(ResourceResponse {
        account_name: account.account_name.clone(),
        synced_at: account.synced_at,
        resource_type: kind,
        resource,
    })
}

fn describe(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::S3 => "S3 bucket",
        ResourceKind::Sqs => "SQS queue",
        ResourceKind::Sns => "SNS topic",
        ResourceKind::ManagedPolicy => "managed policy",
        ResourceKind::Role => "role",
        ResourceKind::User => "user",
    }
}

/// `GET /api/v2/resources/{account}/{service}/{*rest}`.
#[utoipa::path(get, path = "/api/v2/resources/{account_id}/{service}/{rest}", tag = "resources",
    params(("account_id" = String, Path, description = "12-digit account id"),
           ("service" = String, Path, description = "s3, sqs, sns or managed_policy"),
           ("rest" = String, Path, description = "The name; queues and topics: region/name")),
    responses((status = 200, description = "The bucket, queue, topic or managed policy: policy, tags, versions and attachments", body = Object),
              (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody),
              (status = 401, description = "Not signed in", body = super::openapi::ErrorBody),
              (status = 404, description = "Not found", body = super::openapi::ErrorBody)))]
pub async fn api_resource(
    _user: CurrentUser,
    State(state): State<AppState>,
    Path((account_id, service, rest)): Path<(String, String, String)>,
) -> Result<Json<ResourceResponse>, AppError> {
    let (kind, region, name) = parse(&service, &rest)?;
    find(&state, &account_id, kind, region.as_deref(), &name).map(Json)
}

/// The query of ConsoleMe's resource typeahead.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TypeaheadQuery {
    pub typeahead: Option<String>,
    pub resource_type: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /api/v2/typeahead/self_service_resources` (and ConsoleMe's `/api/v2/typeahead/resources`):
/// the ARNs of synced buckets, queues or topics containing `typeahead`, as ConsoleMe's list of
/// ARNs (`limit` default 20, at most 200).
#[utoipa::path(get, path = "/api/v2/typeahead/self_service_resources", tag = "resources",
    params(("typeahead" = Option<String>, Query, description = "Text the ARN contains"),
           ("resource_type" = Option<String>, Query, description = "s3, sqs or sns"),
           ("account_id" = Option<String>, Query, description = "Only this account"),
           ("region" = Option<String>, Query, description = "Only this region"),
           ("limit" = Option<usize>, Query, description = "At most this many (20; 200 at most)")),
    responses((status = 200, description = "ARNs of synced buckets, queues or topics", body = Vec<String>),
              (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody),
              (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn typeahead(
    _user: CurrentUser,
    State(state): State<AppState>,
    Query(q): Query<TypeaheadQuery>,
) -> Result<Json<Vec<String>>, AppError> {
    let kind = match q
        .resource_type
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(t) => match ResourceKind::parse(t) {
            Some(k @ (ResourceKind::S3 | ResourceKind::Sqs | ResourceKind::Sns)) => Some(k),
            _ => {
                return Err(AppError::BadRequest(format!(
                    "resource_type '{t}' is not one of s3, sqs, sns"
                )));
            }
        },
    };
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 200 {
        return Err(AppError::BadRequest(
            "limit must be between 1 and 200".into(),
        ));
    }
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(Json(state.resources.typeahead(
        q.typeahead.as_deref().unwrap_or_default(),
        kind,
        nonempty(&q.account_id).as_deref(),
        nonempty(&q.region).as_deref(),
        limit,
    )))
}

/// One version of a managed policy as the page shows it.
pub struct VersionView {
    id: String,
    is_default: bool,
    created: String,
    html: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "resource.html")]
pub struct ResourcePage {
    layout: Layout,
    kind: &'static str,
    name: String,
    arn: String,
    account_id: String,
    account_name: String,
    region: Option<String>,
    synced_at: String,
    /// Syntax-coloured resource policy or default version; empty: none.
    policy_html: String,
    tags: Vec<(String, String)>,
    versions: Vec<VersionView>,
    attached_to: Vec<String>,
    attachment_count: Option<i32>,
    /// The change the form requests (`resource_policy`, `managed_policy_resource`); empty: no
    /// form.
    change_kind: &'static str,
    page_url: String,
    form_document: String,
    form_justification: String,
    form_problems: Vec<super::forms::FormProblem>,
}

impl ResourcePage {
    fn invalid(&self, id: &str) -> bool {
        self.form_problems.iter().any(|p| p.target == id)
    }
}

fn render(layout: Layout, found: ResourceResponse) -> ResourcePage {
    use super::jsonview::to_html;
    let none = |_: &serde_json::Value| false;
    let mut page = ResourcePage {
        layout: layout.nav("policies"),
        kind: describe(found.resource_type),
        name: String::new(),
        arn: String::new(),
        account_id: found.resource.account_id().to_string(),
        account_name: found.account_name,
        region: None,
        synced_at: found
            .synced_at
            .map(human_time)
            .unwrap_or_else(|| "never".into()),
        policy_html: String::new(),
        tags: vec![],
        versions: vec![],
        attached_to: vec![],
        attachment_count: None,
        change_kind: "",
        page_url: String::new(),
        form_document: String::new(),
        form_justification: String::new(),
        form_problems: vec![],
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match found.resource {
        Resource::Service(r) => {
            page.change_kind = "resource_policy";
            page.page_url = match r.kind {
                ResourceKind::S3 => format!("/policies/edit/{}/s3/{}", r.account_id, r.name),
                k => format!(
                    "/policies/edit/{}/{}/{}/{}",
                    r.account_id,
                    k.as_str(),
                    r.region,
                    r.name
                ),
            };
            page.form_document = r.policy.as_ref().map(pretty).unwrap_or_default();
            page.name = r.name;
            page.arn = r.arn;
            page.region = Some(r.region);
            page.policy_html = r.policy.map(|p| to_html(&p, &none)).unwrap_or_default();
            page.tags = r.tags.into_iter().map(|t| (t.key, t.value)).collect();
        }
        Resource::Policy(p) => {
            page.change_kind = "managed_policy_resource";
            page.page_url = format!("/policies/edit/{}/managed_policy/{}", p.account_id, p.name);
            page.form_document = pretty(&p.document);
            page.name = p.name;
            page.arn = p.arn;
            page.policy_html = to_html(&p.document, &none);
            page.versions = p
                .versions
                .into_iter()
                .map(|v| VersionView {
                    id: v.id,
                    is_default: v.is_default,
                    created: v.created_at.map(human_time).unwrap_or_default(),
                    html: to_html(&v.document, &none),
                })
                .collect();
            page.attached_to = p.attached_to;
            page.attachment_count = Some(p.attachment_count);
        }
        Resource::Principal(p) => {
            page.name = p.name;
            page.arn = p.arn;
        }
    }
    page
}

/// `/policies/edit/{account}/{kind}/{*rest}`: the page of a bucket, queue, topic or managed
/// policy; ConsoleMe's other resource links go to `legacy::resource_page` (a managed policy
/// not synced goes to a search for it there).
pub async fn resource_page(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path((account, kind, rest)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    if let Ok((k, region, name)) = parse(&kind, &rest) {
        match find(&state, &account, k, region.as_deref(), &name) {
            Ok(found) => return Ok(render(layout, found).into_response()),
            Err(e) if k != ResourceKind::ManagedPolicy => return Err(e),
            Err(_) => {}
        }
    }
    super::legacy::resource_page(user, Path((account, kind, rest)))
        .await
        .map(IntoResponse::into_response)
}

/// The resource page's form: a new resource policy (or a managed policy's new default
/// version) with a justification.
#[derive(Debug, serde::Deserialize)]
pub struct ResourceChangeForm {
    change: String,
    #[serde(default)]
    policy_document: String,
    #[serde(default)]
    justification: String,
}

/// `POST /policies/edit/{account}/{kind}/{*rest}`: request the form's change, or the page again
/// with what to fix (400).
pub async fn request_change(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path((account, kind, rest)): Path<(String, String, String)>,
    axum::Form(form): axum::Form<ResourceChangeForm>,
) -> Result<Response, AppError> {
    use crate::requests::model::{ChangeDraft, RequestDraft};
    let (k, region, name) = parse(&kind, &rest)?;
    let found = find(&state, &account, k, region.as_deref(), &name)?;
    let arn = match &found.resource {
        Resource::Service(r) => r.arn.clone(),
        Resource::Policy(p) => p.arn.clone(),
        Resource::Principal(_) => {
            return Err(AppError::NotFound("This is not a resource page.".into()));
        }
    };
    let text = form.policy_document.trim();
    let again = |problems: Vec<super::forms::FormProblem>| {
        let mut page = render(layout.clone(), found.clone());
        page.form_document = form.policy_document.clone();
        page.form_justification = form.justification.clone();
        page.form_problems = problems;
        (axum::http::StatusCode::BAD_REQUEST, page).into_response()
    };
    let doc = if text.is_empty() {
        None
    } else {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                return Ok(again(vec![super::forms::FormProblem::new(
                    "f-policy_document",
                    "Policy document",
                    String::new(),
                    &format!("this is not JSON: {e}"),
                    "",
                )]));
            }
        }
    };
    let change = match (form.change.as_str(), doc) {
        ("resource_policy", doc) => ChangeDraft::resource_policy(&arn, &account, doc),
        ("managed_policy_resource", Some(doc)) => ChangeDraft::managed_policy_resource(&arn, doc),
        _ => {
            return Ok(again(vec![super::forms::FormProblem::new(
                "f-policy_document",
                "Policy document",
                String::new(),
                "give the policy document",
                "",
            )]));
        }
    };
    let draft = RequestDraft {
        justification: form.justification.clone(),
        changes: vec![change],
    };
    match crate::requests::create::create_draft(&state, &user.actor(), &draft).await {
        Ok(url) => Ok(axum::response::Redirect::to(&url).into_response()),
        Err(AppError::Invalid(problems)) => Ok(again(
            problems
                .into_iter()
                .map(|(f, m)| super::forms::role_form_problem(&f, &m))
                .collect(),
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_consoleme() {
        let (k, r, n) = parse("sqs", "us-east-1/jobs").expect("queue");
        assert_eq!(
            (k, r.as_deref(), n.as_str()),
            (ResourceKind::Sqs, Some("us-east-1"), "jobs")
        );
        let (k, r, n) = parse("s3", "reports").expect("bucket");
        assert_eq!((k, r, n.as_str()), (ResourceKind::S3, None, "reports"));
        let (k, r, n) = parse("managed_policy", "team/ReadReports").expect("policy");
        assert_eq!(
            (k, r, n.as_str()),
            (ResourceKind::ManagedPolicy, None, "ReadReports")
        );
        assert!(parse("iamrole", "x").is_err());
        assert!(parse("sns", "/").is_err());
    }
}

/// ConsoleMe's older path of the same typeahead (`GET /api/v2/typeahead/resources`).
#[utoipa::path(get, path = "/api/v2/typeahead/resources", tag = "resources",
    params(("typeahead" = Option<String>, Query, description = "Text the ARN contains"),
           ("resource_type" = Option<String>, Query, description = "s3, sqs or sns"),
           ("account_id" = Option<String>, Query, description = "Only this account"),
           ("region" = Option<String>, Query, description = "Only this region"),
           ("limit" = Option<usize>, Query, description = "At most this many (20; 200 at most)")),
    responses((status = 200, description = "ARNs of synced buckets, queues or topics", body = Vec<String>),
              (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody),
              (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn typeahead_legacy(
    user: CurrentUser,
    state: State<AppState>,
    query: Query<TypeaheadQuery>,
) -> Result<Json<Vec<String>>, AppError> {
    typeahead(user, state, query).await
}
