//! The self-service wizard `/selfservice`: pick a role (or describe a new one), add permissions
//! by intent from the configured templates, see the policy, submit one policy request.
//!
//! Server-rendered and usable without JavaScript: the permissions chosen so far travel in a
//! hidden field; every button posts the whole form back. `static/selfservice.js` only adds a
//! live preview through `POST /api/v2/selfservice/preview`.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Json, Query};
use super::forms::FormProblem;
use super::identity::CurrentUser;
use super::view::{Layout, Page};
use crate::app::AppState;
use crate::error::AppError;
use crate::requests::model::{ChangeDraft, RequestDraft};
use crate::resources::index::Query as SearchQuery;
use crate::resources::model::ResourceKind;
use crate::selfservice::templates::{self, Choice, FieldProblem, Template as PermTemplate};

/// Trust policies a new role can start with.
const TRUSTS: &[(&str, &str)] = &[
    ("ec2", "EC2 instances (ec2.amazonaws.com)"),
    ("lambda", "Lambda functions (lambda.amazonaws.com)"),
    ("ecs-tasks", "ECS tasks (ecs-tasks.amazonaws.com)"),
    ("account", "Roles and users of the same account"),
];

pub struct RoleChoice {
    arn: String,
    name: String,
    account_name: String,
    account_id: String,
    mine: bool,
}

pub struct FieldView {
    name: String,
    label: String,
    placeholder: String,
    help: String,
    required: bool,
    multiline: bool,
    value: String,
    /// `s3`, `sqs` or `sns`: the field suggests synced names as the user types.
    suggest: &'static str,
}

pub struct TemplateView {
    id: String,
    name: String,
    description: String,
}

pub struct PermissionView {
    index: usize,
    summary: String,
}

/// The new role described in step 1, when not using an existing one.
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    account: String,
    name: String,
    trust: String,
    description: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "selfservice.html")]
pub struct WizardPage {
    layout: Layout,
    /// `pick` (choose a role) or `build` (add permissions).
    step: &'static str,
    q: String,
    roles: Vec<RoleChoice>,
    /// The chosen existing role's ARN ("" for a new role).
    role: String,
    new_role: Option<NewRole>,
    accounts: Vec<(String, String)>,
    trusts: Vec<(&'static str, &'static str)>,
    templates: Vec<TemplateView>,
    template: String,
    fields: Vec<FieldView>,
    permissions: Vec<PermissionView>,
    permissions_json: String,
    preview: String,
    form_problems: Vec<FormProblem>,
    /// Legal but probably unintended values (an S3 prefix without `/`).
    notes: Vec<String>,
    justification: String,
}

#[derive(Debug, Deserialize)]
pub struct WizardQuery {
    q: Option<String>,
    role: Option<String>,
    new: Option<String>,
    template: Option<String>,
}

fn template_views(list: &[PermTemplate]) -> Vec<TemplateView> {
    list.iter()
        .map(|t| TemplateView {
            id: t.id.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
        })
        .collect()
}

fn field_views(t: Option<&PermTemplate>, values: &BTreeMap<String, String>) -> Vec<FieldView> {
    t.map(|t| {
        t.fields
            .iter()
            .map(|f| FieldView {
                name: f.name.clone(),
                label: f.label.clone(),
                placeholder: f.placeholder.clone(),
                help: f.help.clone(),
                required: f.required,
                multiline: f.kind == "json_statements",
                suggest: match f.kind.as_str() {
                    "s3_bucket" => "s3",
                    "sqs_queue_arn" => "sqs",
                    "sns_topic_arn" => "sns",
                    _ => "",
                },
                value: values.get(&f.name).cloned().unwrap_or_default(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn summary(list: &[PermTemplate], c: &Choice) -> String {
    let name = list
        .iter()
        .find(|t| t.id == c.template)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| c.template.clone());
    let values: Vec<String> = c
        .values
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| {
            let v: String = v.chars().take(80).collect();
            format!("{k} = {v}")
        })
        .collect();
    if values.is_empty() {
        name
    } else {
        format!("{name}: {}", values.join(", "))
    }
}

fn role_choices(state: &AppState, user: &CurrentUser, q: &str) -> Vec<RoleChoice> {
    let mine: Vec<String> = crate::credentials::entitled_roles(state, &user.email, &user.groups)
        .into_iter()
        .map(|r| r.arn)
        .collect();
    let result = state.resources.index().search(&SearchQuery {
        text: Some(q.to_string()).filter(|s| !s.trim().is_empty()),
        kind: Some(ResourceKind::Role),
        limit: 50,
        ..Default::default()
    });
    let mut out: Vec<RoleChoice> = result
        .items
        .into_iter()
        .map(|s| RoleChoice {
            mine: mine.contains(&s.arn),
            arn: s.arn,
            name: s.name,
            account_name: s.account_name,
            account_id: s.account_id,
        })
        .collect();
    out.sort_by_key(|r| !r.mine);
    out
}

impl WizardPage {
    fn new(state: &AppState, layout: Layout) -> Self {
        WizardPage {
            layout: layout.nav("selfservice"),
            step: "pick",
            q: String::new(),
            roles: vec![],
            role: String::new(),
            new_role: None,
            accounts: state.resources.accounts(),
            trusts: TRUSTS.to_vec(),
            templates: template_views(&state.config.self_service.templates),
            template: String::new(),
            fields: vec![],
            permissions: vec![],
            permissions_json: "[]".into(),
            preview: String::new(),
            form_problems: vec![],
            notes: vec![],
            justification: String::new(),
        }
    }

    fn set_template(&mut self, state: &AppState, id: &str, values: &BTreeMap<String, String>) {
        let list = &state.config.self_service.templates;
        let t = list.iter().find(|t| t.id == id).or_else(|| list.first());
        self.template = t.map(|t| t.id.clone()).unwrap_or_default();
        self.fields = field_views(t, values);
    }

    fn set_permissions(&mut self, state: &AppState, choices: &[Choice]) {
        let list = &state.config.self_service.templates;
        self.permissions = choices
            .iter()
            .enumerate()
            .map(|(i, c)| PermissionView {
                index: i,
                summary: summary(list, c),
            })
            .collect();
        self.permissions_json = serde_json::to_string(choices).unwrap_or_else(|_| "[]".into());
        self.preview = if choices.is_empty() {
            String::new()
        } else {
            match templates::policy_document(list, choices) {
                Ok(doc) => serde_json::to_string_pretty(&doc).unwrap_or_default(),
                Err(_) => String::new(),
            }
        };
    }
}

/// `GET /selfservice`: step 1 (pick a role), or step 2 for `?role=ARN` / `?new=1`.
pub async fn wizard(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Query(q): Query<WizardQuery>,
) -> Result<WizardPage, AppError> {
    let mut page = WizardPage::new(&state, layout);
    let role = q.role.as_deref().map(str::trim).unwrap_or_default();
    let values = BTreeMap::new();
    if !role.is_empty() {
        let found = crate::credentials::find_role(&state, role)?;
        page.step = "build";
        page.role = found.arn;
        page.set_template(&state, q.template.as_deref().unwrap_or_default(), &values);
    } else if q.new.is_some() {
        page.step = "build";
        page.new_role = Some(NewRole {
            trust: "ec2".into(),
            account: page
                .accounts
                .first()
                .map(|a| a.0.clone())
                .unwrap_or_default(),
            ..Default::default()
        });
        page.set_template(&state, q.template.as_deref().unwrap_or_default(), &values);
    } else {
        page.q = q.q.unwrap_or_default();
        page.roles = role_choices(&state, &user, &page.q);
    }
    Ok(page)
}

fn trust_document(kind: &str, account: &str) -> Option<Value> {
    let principal = match kind {
        "ec2" => json!({"Service": "ec2.amazonaws.com"}),
        "lambda" => json!({"Service": "lambda.amazonaws.com"}),
        "ecs-tasks" => json!({"Service": "ecs-tasks.amazonaws.com"}),
        "account" => json!({"AWS": format!("arn:aws:iam::{account}:root")}),
        _ => return None,
    };
    Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}))
}

/// A policy name for the wizard's inline policy: `selfservice-<user>-<time>`, IAM-safe.
fn policy_name(email: &str) -> String {
    let who: String = email
        .split('@')
        .next()
        .unwrap_or("user")
        .chars()
        .map(|c| {
            if crate::requests::validate::is_name_char(c) {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!(
        "selfservice-{who}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    )
}

fn problems_of(list: Vec<FieldProblem>) -> Vec<(String, String)> {
    list.into_iter().map(|p| (p.field, p.message)).collect()
}

impl WizardPage {
    /// The messages about the field with this `id` (to show under it and mark it invalid).
    fn field_errors(&self, id: &str) -> Vec<String> {
        self.form_problems
            .iter()
            .filter(|p| p.target == id)
            .map(|p| p.message.clone())
            .collect()
    }

    /// The problems in the wizard's words: the field being filled in (`permissions[N]` with N
    /// the number already added), an added permission, the new role, the justification.
    fn set_problems(&mut self, problems: Vec<(String, String)>, pending: usize) {
        let label_of = |name: &str| {
            self.fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.label.clone())
                .unwrap_or_else(|| name.to_string())
        };
        self.form_problems = problems
            .into_iter()
            .map(|(path, message)| {
                let p = |target: &str, label: &str| {
                    FormProblem::new(target, label, String::new(), &message, &path)
                };
                if let Some(rest) = path.strip_prefix("permissions[") {
                    let (index, field) = rest.split_once("].").unwrap_or((rest, ""));
                    let index: usize = index.trim_end_matches(']').parse().unwrap_or(usize::MAX);
                    if index == pending {
                        let field = if field == "template" { "" } else { field };
                        return if field.is_empty() {
                            p("template", "What do you need?")
                        } else {
                            p(&format!("v-{field}"), &label_of(field))
                        };
                    }
                    let which = self
                        .permissions
                        .get(index)
                        .map(|v| v.summary.clone())
                        .unwrap_or_default();
                    return FormProblem::new(
                        "permissions-list",
                        &format!("Permission {} in this request", index.saturating_add(1)),
                        which,
                        &message,
                        &path,
                    );
                }
                let field = path
                    .strip_prefix("changes[0].")
                    .unwrap_or(path.as_str())
                    .to_string();
                match field.as_str() {
                    "justification" => p("f-justification", "Justification"),
                    "permissions" => p("template", "Permissions in this request"),
                    "new_trust" => p("f-new_trust", "Who may use it"),
                    f if f.starts_with("role_name") => p("f-new_name", "Role name"),
                    f if f.starts_with("account") => p("f-new_account", "Account"),
                    f if f.starts_with("description") => p("f-new_description", "Description"),
                    f if f.starts_with("principal") => p("", "Role"),
                    f if f.starts_with("policy") || f.starts_with("inline_policies") => {
                        FormProblem::new(
                            "preview",
                            "Policy",
                            super::forms::document_detail(
                                f.split_once("policy_document").map(|x| x.1).unwrap_or(""),
                            ),
                            &message,
                            &path,
                        )
                    }
                    _ => p("", "Request"),
                }
            })
            .collect();
    }

    fn set_notes(&mut self, state: &AppState, choices: &[Choice], pending: Option<&Choice>) {
        let list = &state.config.self_service.templates;
        self.notes = choices
            .iter()
            .chain(pending)
            .flat_map(|c| templates::warnings(list, c))
            .collect();
        // A bucket, queue or topic (or a role to assume) in another account: the request also
        // carries its resource policy (trust policy), as `src/requests/validate/cross_account.rs`
        // adds it; say so before the user submits.
        let all: Vec<Choice> = choices.iter().chain(pending).cloned().collect();
        if !self.role.is_empty()
            && !all.is_empty()
            && let Ok(doc) = templates::policy_document(list, &all)
        {
            let synced = crate::requests::synced::AppSynced::new(state);
            for line in
                crate::requests::validate::cross_account_additions(&self.role, &doc, &synced)
            {
                self.notes.push(format!(
                    "The request will also {line}: it is reviewed and approved with your \
                     permission."
                ));
            }
        }
    }
}

/// `POST /selfservice`: every button of step 2.
pub async fn wizard_post(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let list = &state.config.self_service.templates;
    let mut page = WizardPage::new(&state, layout);
    page.step = "build";
    page.justification = get("justification");
    let role = get("role");
    if role.is_empty() {
        page.new_role = Some(NewRole {
            account: get("new_account"),
            name: get("new_name"),
            trust: get("new_trust"),
            description: get("new_description"),
        });
    } else {
        page.role = crate::credentials::find_role(&state, &role)?.arn;
    }
    let mut choices: Vec<Choice> = match get("permissions").as_str() {
        "" => vec![],
        raw => serde_json::from_str(raw).map_err(|_| {
            AppError::BadRequest(
                "the permissions field of the form is damaged; start the wizard again".into(),
            )
        })?,
    };
    if choices.len() > 50 {
        return Err(AppError::BadRequest(
            "at most 50 permissions in one request".into(),
        ));
    }
    let template = get("template");
    let values: BTreeMap<String, String> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("v_")
                .map(|name| (name.to_string(), v.trim().to_string()))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let action = get("action");
    let mut keep_values = values.clone();
    let pending_index = choices.len();
    let mut problems: Vec<(String, String)> = vec![];
    let pending = Choice {
        template: template.clone(),
        values: values.clone(),
    };
    match action.as_str() {
        "add" => match templates::expand(list, &pending, choices.len()) {
            Ok(_) => {
                choices.push(pending.clone());
                keep_values.clear();
            }
            Err(p) => problems = problems_of(p),
        },
        a if a.starts_with("remove:") => {
            if let Some(i) = a["remove:".len()..]
                .parse::<usize>()
                .ok()
                .filter(|i| *i < choices.len())
            {
                choices.remove(i);
            }
        }
        "submit" => {
            // A permission filled in but not added is part of the request: the preview showed
            // it, so submitting includes it (or says plainly why it cannot).
            let filled = !values.is_empty();
            let mut ready = true;
            if filled {
                match templates::expand(list, &pending, choices.len()) {
                    Ok(_) => {
                        choices.push(pending.clone());
                        keep_values.clear();
                    }
                    Err(p) => {
                        ready = false;
                        problems = problems_of(p);
                        problems.insert(
                            0,
                            (
                                format!("permissions[{pending_index}].template"),
                                "the permission you filled in is not added yet, and it has the \
                                 problems below: fix them, or empty its fields to submit without it"
                                    .to_string(),
                            ),
                        );
                    }
                }
            }
            if ready {
                match submit(&state, &user, &page, &choices).await {
                    Ok(url) => return Ok(axum::response::Redirect::to(&url).into_response()),
                    Err(p) => {
                        problems = p;
                        if filled {
                            // Back to "not added": the person sees the entry where they left it.
                            choices.pop();
                            keep_values = values.clone();
                        }
                    }
                }
            }
        }
        // "choose" (another template) and anything else just re-render.
        _ => {}
    }
    page.set_template(&state, &template, &keep_values);
    page.set_permissions(&state, &choices);
    page.set_problems(problems, pending_index);
    let still_pending = (!keep_values.is_empty()).then(|| Choice {
        template: template.clone(),
        values: keep_values.clone(),
    });
    page.set_notes(&state, &choices, still_pending.as_ref());
    let status = if page.form_problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, page).into_response())
}

/// Build and create the policy request; the problems to show otherwise.
async fn submit(
    state: &AppState,
    user: &CurrentUser,
    page: &WizardPage,
    choices: &[Choice],
) -> Result<String, Vec<(String, String)>> {
    let list = &state.config.self_service.templates;
    let doc = templates::policy_document(list, choices).map_err(problems_of)?;
    let name = policy_name(&user.email);
    let change = match &page.new_role {
        None => ChangeDraft::inline_put(&page.role, &name, doc),
        Some(n) => {
            let trust = trust_document(&n.trust, &n.account).ok_or_else(|| {
                vec![(
                    "new_trust".to_string(),
                    "choose who may use the new role".to_string(),
                )]
            })?;
            ChangeDraft::create_role(
                &n.account,
                &n.name,
                &n.description,
                trust,
                vec![(name, doc)],
            )
        }
    };
    let draft = RequestDraft {
        justification: page.justification.clone(),
        changes: vec![change],
    };
    let actor = user.actor();
    match crate::requests::create::create_draft(state, &actor, &draft).await {
        Ok(url) => Ok(url),
        Err(AppError::Invalid(problems)) => Err(problems),
        Err(e) => Err(vec![("request".to_string(), e.public_message())]),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PreviewBody {
    /// The chosen permissions: `{template, ...fields}` each.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    permissions: Vec<Choice>,
    /// The permission being filled in, not added yet.
    #[schema(value_type = Option<Object>)]
    pending: Option<Choice>,
}

/// `POST /api/v2/selfservice/preview`: the policy document the choices make, or every problem.
#[utoipa::path(post, path = "/api/v2/selfservice/preview", tag = "selfservice", request_body = PreviewBody,
    responses((status = 200, description = "The policy document the choices make, or every problem", body = Object), (status = 400, description = "Bad input: what to fix", body = super::openapi::ErrorBody), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn preview(
    _user: CurrentUser,
    State(state): State<AppState>,
    Json(body): Json<PreviewBody>,
) -> Result<axum::Json<Value>, AppError> {
    let list = &state.config.self_service.templates;
    let mut choices = body.permissions;
    if choices.len() > 50 {
        return Err(AppError::BadRequest(
            "at most 50 permissions in one request".into(),
        ));
    }
    if let Some(p) = body.pending {
        choices.push(p);
    }
    let doc = templates::policy_document(list, &choices)
        .map_err(|p| AppError::Invalid(problems_of(p)))?;
    Ok(axum::Json(json!({ "policy_document": doc })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PickerQuery {
    /// Part of a role's name, ARN or account.
    q: Option<String>,
}

/// `GET /api/v2/selfservice/roles?q=`: step 1's role picker as JSON (your roles first), for its
/// search as you type.
#[utoipa::path(get, path = "/api/v2/selfservice/roles", tag = "selfservice", params(PickerQuery),
    responses((status = 200, description = "`{roles: [{arn, name, account_name, mine, choose_url}]}`", body = Object), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn role_picker(
    user: CurrentUser,
    State(state): State<AppState>,
    Query(q): Query<PickerQuery>,
) -> axum::Json<Value> {
    let roles: Vec<Value> = role_choices(&state, &user, q.q.as_deref().unwrap_or_default())
        .into_iter()
        .map(|r| {
            json!({
                "choose_url": format!("/selfservice?{}", serde_urlencoded::to_string([("role", &r.arn)]).unwrap_or_default()),
                "mine": r.mine, "arn": r.arn, "name": r.name, "account_name": r.account_name,
                "account_id": r.account_id,
            })
        })
        .collect();
    axum::Json(json!({"total": roles.len(), "roles": roles}))
}

/// `GET /api/v2/selfservice/templates`: the wizard's templates.
#[utoipa::path(get, path = "/api/v2/selfservice/templates", tag = "selfservice",
    responses((status = 200, description = "`{templates: [...]}`: the permission templates", body = Object), (status = 401, description = "Not signed in", body = super::openapi::ErrorBody)))]
pub async fn template_list(_user: CurrentUser, State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({ "templates": state.config.self_service.templates }))
}
