//! The request state machine: comment, approve (and apply), reject, cancel, move back to pending.
//!
//! Every transition is one conditional write (the stored `version` must not have moved) together
//! with its audit event, so two admins acting at once get exactly one success and one 409.
//! Approval first *claims* the request (a write of its own), then applies each change through
//! the Cloud, then records the outcome: a concurrent approval loses at the claim and never
//! applies anything. A failed AWS call leaves the request pending with the error on that change;
//! changes already applied are marked and not applied again on retry.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::AppError;
use crate::store::{
    ApplyClaim, AuditEvent, ChangeResult, ChangeStatus, Comment, PolicyRequest, RequestStatus,
    StoreError,
};

use super::ops;
use crate::notify::Event;

/// A claim older than this is considered abandoned (the approver's process died mid-apply).
const CLAIM_TIMEOUT_MINUTES: i64 = 10;
const MAX_COMMENT_CHARS: usize = 5000;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    AddComment {
        text: String,
    },
    Approve,
    Reject,
    Cancel,
    MoveBackToPending,
    /// Replace the policy document of one pending change (re-validated like a new request).
    UpdateChange {
        change_id: String,
        document: Value,
    },
}

/// Who acts.
#[derive(Debug, Clone)]
pub struct Actor {
    pub email: String,
    pub is_admin: bool,
}

/// `{"modification_model": {"command": ..., "comment_text": ...}}` (ConsoleMe v2).
pub fn parse_command(body: &Value) -> Result<Command, AppError> {
    let model = body.get("modification_model").ok_or_else(|| {
        AppError::BadRequest("the body needs a \"modification_model\" object".into())
    })?;
    let command = model
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::BadRequest("modification_model.command is required".into()))?;
    Ok(match command {
        "add_comment" => {
            let text = model
                .get("comment_text")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if text.is_empty() {
                return Err(AppError::BadRequest(
                    "modification_model.comment_text must not be empty".into(),
                ));
            }
            if text.chars().count() > MAX_COMMENT_CHARS {
                return Err(AppError::BadRequest(format!(
                    "modification_model.comment_text is limited to {MAX_COMMENT_CHARS} characters"
                )));
            }
            Command::AddComment {
                text: text.to_string(),
            }
        }
        "approve_request" => Command::Approve,
        "reject_request" => Command::Reject,
        "cancel_request" => Command::Cancel,
        "move_back_to_pending" => Command::MoveBackToPending,
        "update_change" => {
            let change_id = model
                .get("change_id")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    AppError::BadRequest(
                        "modification_model.change_id is required: the id of the change to edit"
                            .into(),
                    )
                })?;
            let document = match model.get("policy_document") {
                Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
                    AppError::BadRequest(format!(
                        "modification_model.policy_document is not valid JSON: {e}"
                    ))
                })?,
                Some(v @ Value::Object(_)) => v.clone(),
                _ => {
                    return Err(AppError::BadRequest(
                        "modification_model.policy_document is required: the new policy document \
                         (a JSON object)"
                            .into(),
                    ));
                }
            };
            Command::UpdateChange {
                change_id: change_id.to_string(),
                document,
            }
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "modification_model.command '{other}' is not one of add_comment, approve_request, \
                 reject_request, cancel_request, move_back_to_pending, update_change"
            )));
        }
    })
}

fn conflict(msg: String) -> AppError {
    AppError::Conflict(msg)
}

async fn load(app: &App, id: &str) -> Result<PolicyRequest, AppError> {
    app.store
        .get_request(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no policy request with id '{id}'")))
}

/// Write the next version with its audit event.
async fn save(
    app: &App,
    mut next: PolicyRequest,
    actor: &Actor,
    action: &str,
    detail: Value,
    notify: Option<Event>,
) -> Result<PolicyRequest, AppError> {
    next.version += 1;
    next.updated_at = Utc::now();
    let event = AuditEvent::new(&actor.email, action, Some(&next.id), detail);
    // Notifications go in the same transaction: committed with the event or not at all.
    let outbox = notify
        .map(|e| crate::notify::messages_for(&app.config, &next, &e, &actor.email))
        .unwrap_or_default();
    match app.store.update_request(&next, &event, &outbox).await {
        Ok(()) => {
            if !outbox.is_empty() {
                app.outbox_wake.notify_one();
            }
            Ok(next)
        }
        Err(StoreError::Conflict(_)) => Err(conflict(
            "The request changed while you were acting on it (somebody else acted first). \
             Reload it and try again."
                .into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Apply `command` to request `id` as `actor`; returns the request as stored afterwards.
pub async fn modify(
    app: &App,
    id: &str,
    actor: &Actor,
    command: Command,
) -> Result<PolicyRequest, AppError> {
    let current = load(app, id).await?;
    let is_requester = current.requester == actor.email;
    match command {
        Command::AddComment { text } => {
            let mut next = current.clone();
            next.comments.push(Comment {
                id: uuid::Uuid::now_v7().to_string(),
                author: actor.email.clone(),
                text,
                created_at: Utc::now(),
            });
            save(
                app,
                next,
                actor,
                "request.commented",
                json!({}),
                Some(Event::Commented {
                    author: actor.email.clone(),
                }),
            )
            .await
        }
        Command::Cancel => {
            if !is_requester {
                return Err(AppError::Forbidden(
                    "Only the requester can cancel a request; admins reject it instead.".into(),
                ));
            }
            expect_status(&current, RequestStatus::Pending, "cancelled")?;
            let mut next = current.clone();
            next.status = RequestStatus::Cancelled;
            save(
                app,
                next,
                actor,
                "request.cancelled",
                json!({"status": "cancelled"}),
                Some(Event::StatusChanged(RequestStatus::Cancelled)),
            )
            .await
        }
        Command::Reject => {
            require_admin(actor, "reject")?;
            expect_status(&current, RequestStatus::Pending, "rejected")?;
            not_while_applying(&current)?;
            let mut next = current.clone();
            next.status = RequestStatus::Rejected;
            save(
                app,
                next,
                actor,
                "request.rejected",
                json!({"status": "rejected"}),
                Some(Event::StatusChanged(RequestStatus::Rejected)),
            )
            .await
        }
        Command::MoveBackToPending => {
            require_admin(actor, "reopen")?;
            if !matches!(
                current.status,
                RequestStatus::Rejected | RequestStatus::Cancelled
            ) {
                return Err(conflict(format!(
                    "Only rejected or cancelled requests can move back to pending; this one is {}.",
                    current.status
                )));
            }
            let mut next = current.clone();
            next.status = RequestStatus::Pending;
            save(
                app,
                next,
                actor,
                "request.reopened",
                json!({"status": "pending"}),
                None,
            )
            .await
        }
        Command::Approve => approve(app, current, actor, false).await,
        Command::UpdateChange {
            change_id,
            document,
        } => update_change(app, current, actor, &change_id, document).await,
    }
}

/// The change types whose `policy.policy_document` a reviewer or requester may edit.
const EDITABLE: &[&str] = &["inline_policy", "assume_role_policy", "create_role"];

async fn update_change(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    change_id: &str,
    document: Value,
) -> Result<PolicyRequest, AppError> {
    if current.requester != actor.email && !actor.is_admin {
        return Err(AppError::Forbidden(
            "Only the requester or an administrator can edit a request's changes.".into(),
        ));
    }
    expect_status(&current, RequestStatus::Pending, "edited")?;
    not_while_applying(&current)?;
    let mut changes: Vec<Value> = current
        .changes
        .get("changes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let index = changes
        .iter()
        .position(|c| c.get("id").and_then(Value::as_str) == Some(change_id))
        .ok_or_else(|| {
            AppError::NotFound(format!("this request has no change with id '{change_id}'"))
        })?;
    if current
        .results
        .get(index)
        .is_some_and(|r| r.status == ChangeStatus::Applied)
    {
        return Err(conflict(
            "This change is already applied in AWS; it can no longer be edited.".into(),
        ));
    }
    let kind = changes[index]
        .get("change_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !EDITABLE.contains(&kind.as_str()) {
        return Err(AppError::BadRequest(format!(
            "a {kind} change has no policy document to edit; cancel the request and ask again"
        )));
    }
    if let Some(obj) = changes[index].as_object_mut() {
        obj.insert("policy".into(), json!({ "policy_document": document }));
    }
    let body = json!({
        "justification": current.justification,
        "changes": {"changes": changes},
    });
    let warnings = super::create::validate(app, &body)?;
    let mut next = current.clone();
    next.changes = json!({ "changes": changes });
    next.warnings = warnings;
    if let Some(r) = next.results.get_mut(index) {
        *r = ChangeResult {
            status: ChangeStatus::Pending,
            message: None,
            at: None,
        };
    }
    save(
        app,
        next,
        actor,
        "request.change_updated",
        json!({"change_id": change_id, "change": index}),
        None,
    )
    .await
}

/// An admin's `admin_auto_approve` at creation: apply at once, own request included; the audit
/// log records that no second person reviewed it.
pub async fn approve_now(app: &App, id: &str, actor: &Actor) -> Result<PolicyRequest, AppError> {
    let current = load(app, id).await?;
    approve(app, current, actor, true).await
}

fn require_admin(actor: &Actor, what: &str) -> Result<(), AppError> {
    if actor.is_admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "Only administrators (groups.can_admin) can {what} requests."
        )))
    }
}

fn expect_status(r: &PolicyRequest, want: RequestStatus, to: &str) -> Result<(), AppError> {
    if r.status == want {
        Ok(())
    } else {
        Err(conflict(format!(
            "This request is {}; only {want} requests can be {to}.",
            r.status
        )))
    }
}

fn not_while_applying(r: &PolicyRequest) -> Result<(), AppError> {
    match &r.applying {
        Some(c) if Utc::now() - c.since < Duration::minutes(CLAIM_TIMEOUT_MINUTES) => Err(
            conflict(format!("{} is applying this request right now.", c.by)),
        ),
        _ => Ok(()),
    }
}

async fn approve(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    auto: bool,
) -> Result<PolicyRequest, AppError> {
    require_admin(actor, "approve")?;
    if !auto && current.requester == actor.email && !app.config.policies.allow_self_approval {
        return Err(AppError::Forbidden(
            "You cannot approve your own request: another administrator must review it \
             (policies.allow_self_approval is off)."
                .into(),
        ));
    }
    expect_status(&current, RequestStatus::Pending, "approved")?;
    not_while_applying(&current)?;

    // 1. Claim: of several concurrent approvals only one gets past this write.
    let mut claimed = current.clone();
    claimed.applying = Some(ApplyClaim {
        by: actor.email.clone(),
        since: Utc::now(),
    });
    let mut claimed = save(
        app,
        claimed,
        actor,
        "request.approval_started",
        json!({"admin_auto_approve": auto}),
        None,
    )
    .await?;

    // 2. Apply each change not applied yet, in order; stop at the first failure.
    let changes: Vec<Value> = claimed
        .changes
        .get("changes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    claimed.results.resize(
        changes.len(),
        ChangeResult {
            status: ChangeStatus::Pending,
            message: None,
            at: None,
        },
    );
    let mut failed = None;
    let mut touched = vec![];
    for (i, change) in changes.iter().enumerate() {
        if claimed.results[i].status == ChangeStatus::Applied {
            continue;
        }
        let outcome = match ops::ops_for(change) {
            Err(e) => Err(e),
            Ok(list) => {
                let (account, role) = ops::target(change).unwrap_or_default();
                let mut r = Ok(());
                for op in &list {
                    if let Err(e) = app.cloud.apply(&account, op).await {
                        r = Err(format!("{} failed: {e}", op.action()));
                        break;
                    }
                }
                touched.push((account, role));
                r
            }
        };
        claimed.results[i] = match outcome {
            Ok(()) => ChangeResult {
                status: ChangeStatus::Applied,
                message: None,
                at: Some(Utc::now()),
            },
            Err(message) => {
                failed = Some((i, message.clone()));
                ChangeResult {
                    status: ChangeStatus::Failed,
                    message: Some(message),
                    at: Some(Utc::now()),
                }
            }
        };
        if failed.is_some() {
            break;
        }
    }

    // 3. Record the outcome and release the claim.
    claimed.applying = None;
    let (action, detail) = match &failed {
        None => {
            claimed.status = RequestStatus::Approved;
            (
                "request.approved",
                json!({"status": "approved", "applied": changes.len()}),
            )
        }
        Some((i, message)) => (
            "request.apply_failed",
            json!({"status": "pending", "failed_change": i, "error": message}),
        ),
    };
    let notify = (failed.is_none()).then_some(Event::StatusChanged(RequestStatus::Approved));
    let saved = save(app, claimed, actor, action, detail, notify).await?;

    // 4. Show the new state at once: re-read the touched roles and store them alone.
    if let Err(e) = crate::resources::sync::refresh_roles(&app.resource_deps(), &touched).await {
        tracing::warn!(roles = ?touched, error = %e, "cannot re-read the roles after applying");
    }
    if let Some((i, message)) = failed {
        tracing::warn!(request = %saved.id, change = i, error = %message, "apply failed; request stays pending");
    }
    Ok(saved)
}
