//! Creating a request: validate everything first (nothing is stored on any problem), then one
//! write of the typed request with its audit event and notifications; admins may ask for it to
//! be applied at once, within the self-approval rule.

use chrono::Utc;
use serde_json::{Value, json};

use super::lifecycle::{self, Actor};
use super::model::ChangeList;
use super::review::{ChangeDiff, PlannedChange};
use super::synced::validate;
use crate::app::App;
use crate::error::AppError;
use crate::store::{AuditEvent, PolicyRequest, RequestStatus};

/// What `POST /api/v2/request` answers (ConsoleMe v2 shape plus the warnings and the calls an
/// approval would make).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Created {
    pub request_created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_url: Option<String>,
    pub errors: usize,
    pub warnings: Vec<String>,
    pub status: Option<RequestStatus>,
    /// `dry_run`: validated, nothing stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The typed changes as they would be stored (ConsoleMe's `changes` shape).
    #[schema(value_type = Object)]
    pub changes: ChangeList,
    #[schema(value_type = Vec<Object>)]
    pub plan: Vec<PlannedChange>,
    /// `dry_run`: per change, what it would alter, as text diffs against the role as last
    /// synced (what the reviewer will see on the request page).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub diff: Vec<ChangeDiff>,
}

/// A page's draft: validated exactly like an API body; the new request's page on success.
pub async fn create_draft(
    app: &App,
    actor: &Actor,
    draft: &super::model::RequestDraft,
) -> Result<String, AppError> {
    let created = create(app, actor, &draft.to_body()).await?;
    created
        .request_url
        .ok_or_else(|| AppError::Internal("a created request has no URL".into()))
}

pub async fn create(app: &App, actor: &Actor, body: &Value) -> Result<Created, AppError> {
    let valid = validate(app, body)?;
    let warnings: Vec<String> = valid.warnings.iter().map(ToString::to_string).collect();
    let changes = ChangeList {
        changes: valid.changes,
    };
    let plan = super::synced::with_risk(app, |ctx| super::review::plan(&changes, ctx));
    if actor.token.is_some() {
        // Said before a dry run answers too, so a pipeline learns it before filing anything.
        token_may_create(valid.admin_auto_approve, valid.break_glass.is_some())?;
    }
    if body.get("dry_run").and_then(Value::as_bool) == Some(true) {
        return Ok(Created {
            diff: super::review::diffs(&changes, &app.resources),
            request_created: false,
            request_id: None,
            request_url: None,
            errors: 0,
            warnings,
            status: None,
            dry_run: true,
            changes,
            plan,
        });
    }
    let auto_approve = valid.admin_auto_approve;
    if auto_approve {
        may_auto_approve(app, actor).await?;
    }
    if let Some(reason) = &valid.break_glass {
        super::break_glass::may_break_glass(app, actor, &changes, reason).await?;
    }
    let break_glass = valid.break_glass.clone();
    let now = Utc::now();
    let request = PolicyRequest {
        id: uuid::Uuid::new_v4().to_string(),
        status: RequestStatus::Pending,
        requester: actor.email.clone(),
        justification: valid.justification,
        changes: changes.clone(),
        comments: vec![],
        created_at: now,
        updated_at: now,
        version: 1,
        results: vec![],
        applying: None,
        warnings: warnings.clone(),
        edits: vec![],
        grant_outcomes: vec![],
        approvals: vec![],
        break_glass: break_glass.clone().map(|reason| crate::store::BreakGlass {
            reason,
            reviewed_by: None,
            reviewed_at: None,
        }),
        imported: None,
    };
    let event = AuditEvent::new(
        &actor.email,
        "request.created",
        Some(&request.id),
        actor.audited(
            json!({"changes": request.changes.len(), "warnings": warnings.len(),
               "admin_auto_approve": auto_approve, "break_glass": break_glass}),
        ),
    );
    // Break-glass alerts every administrator at once; any other request gets the usual notice.
    let notice = match &break_glass {
        Some(reason) => crate::notify::Event::BreakGlass {
            reason: reason.clone(),
        },
        None => crate::notify::Event::Created,
    };
    let outbox = crate::notify::messages_for(&app.config, &request, &notice, &actor.email);
    app.store.create_request(&request, &event, &outbox).await?;
    if !outbox.is_empty() {
        app.outbox_wake.notify_one();
    }
    let mut status = RequestStatus::Pending;
    if auto_approve || break_glass.is_some() {
        let done = lifecycle::approve_now(app, &request.id, actor).await?;
        status = done.status;
    }
    Ok(Created {
        request_created: true,
        request_url: Some(format!("/policies/request/{}", request.id)),
        request_id: Some(request.id),
        errors: 0,
        warnings,
        status: Some(status),
        dry_run: false,
        changes,
        plan,
        diff: vec![],
    })
}

/// A script files requests for review; it never approves one itself: `admin_auto_approve` and
/// break-glass (applied at once) need the person, signed in.
fn token_may_create(auto_approve: bool, break_glass: bool) -> Result<(), AppError> {
    if auto_approve {
        return Err(AppError::Forbidden(
            "admin_auto_approve cannot be used with an API token: a person decides. Leave it out \
             and the request waits for a review."
                .into(),
        ));
    }
    if break_glass {
        return Err(AppError::Forbidden(
            "Break-glass cannot be used with an API token: it is a person's call in an \
             emergency, made signed in to iamdesk."
                .into(),
        ));
    }
    Ok(())
}

/// `admin_auto_approve` approves one's own request: only administrators, and only where
/// `policies.allow_self_approval` allows it. A refusal is audited; nothing is stored.
async fn may_auto_approve(app: &App, actor: &Actor) -> Result<(), AppError> {
    let refusal = if !actor.is_admin {
        "admin_auto_approve is for administrators only; leave it out to ask for a review."
    } else if !app.config.policies.allow_self_approval {
        "admin_auto_approve approves your own request, and policies.allow_self_approval is off: \
         leave it out and another administrator will review the request."
    } else {
        return Ok(());
    };
    let event = AuditEvent::new(
        &actor.email,
        "request.self_approval_refused",
        None,
        json!({"via": "admin_auto_approve", "is_admin": actor.is_admin}),
    );
    if let Err(e) = app.store.append_audit(&event).await {
        tracing::warn!(error = %e, "cannot audit a refused self-approval");
    }
    Err(AppError::Forbidden(refusal.into()))
}
