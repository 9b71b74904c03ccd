//! The request state machine: comment, approve (and apply), reject, cancel, move back to pending,
//! edit a change.
//!
//! Every transition is one conditional write (the stored `version` must not have moved) together
//! with its audit event and notifications, so two admins acting at once get exactly one success
//! and one 409.
//!
//! Approval (`approve.rs`) is four steps: *claim* (a write of its own: of several concurrent
//! approvals only one gets past it), *apply* (each change's calls through the Cloud, in order,
//! stopping at the first failure), *record* (the outcome and its audit event; merged into the
//! latest version and retried until it lands, so what AWS applied is never lost to a comment
//! written meanwhile), *refresh* (re-read the touched roles). While the claim is held, cancel,
//! edit, reject and move-back get 409; comments are still taken.
//!
//! An approval binds to what the approver saw: the page's form carries the version, and an API
//! approval without a version is refused once any change was edited (`edit.rs`). Whoever edited
//! a change may not approve or reject the request, and nobody approves their own request unless
//! `policies.allow_self_approval` says so.
//!
//! An API token never decides: with one, a requester may comment on, edit and cancel their own
//! requests, nothing more ([`token_may`]); the route table `src/web/scopes.rs` only lets a token
//! with the `requests` scope this far.

mod approve;
mod edit;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::AppError;
use crate::notify::Event;
use crate::store::{AuditEvent, Comment, PolicyRequest, RequestStatus, StoreError};

pub use approve::{Unrecorded, approval_state, approve_now, may_approve, record_unrecorded};

/// A claim older than this is considered abandoned (the approver's process died mid-apply).
const CLAIM_TIMEOUT_MINUTES: i64 = 10;
pub const MAX_COMMENT_CHARS: usize = 5000;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    AddComment {
        text: String,
    },
    /// `version`: the version the approver reviewed (the page's form always sends it).
    Approve {
        version: Option<u64>,
    },
    Reject {
        version: Option<u64>,
    },
    Cancel,
    MoveBackToPending,
    /// An administrator has looked at a break-glass request afterwards.
    MarkReviewed,
    /// An administrator takes a break-glass request's grants away now.
    RevokeNow,
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
    pub groups: Vec<String>,
    /// The public id of the API token acting for this person (a script), `None` for the person
    /// themselves. Recorded in the audit trail; a token never decides on a request.
    pub token: Option<String>,
}

/// What a token may do to a request: the requester's own bookkeeping (comment, edit a change,
/// cancel). Deciding (approve, reject, reopen, break-glass review) needs a person, and so does
/// touching somebody else's request: an administrator's stolen token must not be able to
/// rewrite a pending request that another administrator then approves as the requester's.
pub fn token_may(
    command: &Command,
    request: &PolicyRequest,
    actor: &Actor,
) -> Result<(), AppError> {
    let what = match command {
        Command::AddComment { .. } => "comment on",
        Command::Cancel => "cancel",
        Command::UpdateChange { .. } => "edit",
        Command::Approve { .. } => return Err(needs_person("approve")),
        Command::Reject { .. } => return Err(needs_person("reject")),
        Command::MoveBackToPending => return Err(needs_person("reopen")),
        Command::MarkReviewed | Command::RevokeNow => {
            return Err(needs_person("review break-glass"));
        }
    };
    if request.requester.eq_ignore_ascii_case(&actor.email) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "With an API token you can {what} your own requests only; this one is {}'s. Open it \
             in iamdesk to {what} it.",
            request.requester
        )))
    }
}

impl Actor {
    /// An audit event's detail, with the acting token's id when a script acted.
    pub fn audited(&self, mut detail: Value) -> Value {
        if let (Some(id), Some(map)) = (&self.token, detail.as_object_mut()) {
            map.insert("via_token".into(), Value::String(id.clone()));
        }
        detail
    }
}

fn needs_person(what: &str) -> AppError {
    AppError::Forbidden(format!(
        "API tokens cannot {what} requests: a person decides. Open the request in iamdesk to \
         {what} it."
    ))
}

fn bad(message: &str) -> AppError {
    AppError::BadRequest(message.to_string())
}

/// `{"modification_model": {"command": ..., "comment_text": ..., "version": ...}}` (ConsoleMe
/// v2, plus the optional `version` an approval binds to).
pub fn parse_command(body: &Value) -> Result<Command, AppError> {
    let model = body
        .get("modification_model")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the body needs a \"modification_model\" object"))?;
    let command = model
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("modification_model.command is required"))?;
    let version = match model.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
            bad("modification_model.version must be the request's version, a positive integer")
        })?),
        Some(Value::String(s)) => Some(s.trim().parse::<u64>().map_err(|_| {
            bad("modification_model.version must be the request's version, a positive integer")
        })?),
        Some(_) => {
            return Err(bad(
                "modification_model.version must be the request's version, a positive integer",
            ));
        }
    };
    let text = |key: &str| model.get(key).and_then(Value::as_str).map(str::trim);
    Ok(match command {
        "add_comment" => comment(text("comment_text").unwrap_or_default())?,
        "approve_request" => Command::Approve { version },
        "reject_request" => Command::Reject { version },
        "cancel_request" => Command::Cancel,
        "move_back_to_pending" => Command::MoveBackToPending,
        "mark_reviewed" => Command::MarkReviewed,
        "revoke_now" => Command::RevokeNow,
        "update_change" => {
            let change_id = text("change_id").filter(|s| !s.is_empty()).ok_or_else(|| {
                bad("modification_model.change_id is required: the id of the change to edit")
            })?;
            let document = document(model.get("policy_document"))?;
            Command::UpdateChange {
                change_id: change_id.to_string(),
                document,
            }
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "modification_model.command '{other}' is not one of add_comment, approve_request, \
                 reject_request, cancel_request, move_back_to_pending, update_change, \
                 mark_reviewed, revoke_now"
            )));
        }
    })
}

/// A comment command, its text checked.
pub fn comment(text: &str) -> Result<Command, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("modification_model.comment_text must not be empty"));
    }
    if text.chars().count() > MAX_COMMENT_CHARS {
        return Err(AppError::BadRequest(format!(
            "modification_model.comment_text is limited to {MAX_COMMENT_CHARS} characters"
        )));
    }
    Ok(Command::AddComment {
        text: text.to_string(),
    })
}

/// A replacement policy document: a JSON object, or a string holding one (forms).
pub fn document(v: Option<&Value>) -> Result<Value, AppError> {
    match v {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(doc @ Value::Object(_)) => Ok(doc),
            Ok(_) => Err(bad(
                "modification_model.policy_document must be a JSON object {\"Version\": ..., \
                 \"Statement\": [...]}",
            )),
            Err(e) => Err(AppError::BadRequest(format!(
                "modification_model.policy_document is not valid JSON: {e}"
            ))),
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        _ => Err(bad(
            "modification_model.policy_document is required: the new policy document (a JSON \
             object)",
        )),
    }
}

pub(super) fn conflict(msg: impl Into<String>) -> AppError {
    AppError::Conflict(msg.into())
}

pub(super) async fn load(app: &App, id: &str) -> Result<PolicyRequest, AppError> {
    app.store
        .get_request(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no policy request with id '{id}'")))
}

/// Write the next version with its audit event and notifications, atomically.
pub(super) async fn save(
    app: &App,
    mut next: PolicyRequest,
    actor: &Actor,
    action: &str,
    detail: Value,
    notify: Option<Event>,
) -> Result<PolicyRequest, AppError> {
    next.version += 1;
    next.updated_at = Utc::now();
    let event = AuditEvent::new(&actor.email, action, Some(&next.id), actor.audited(detail));
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
             Reload it and try again.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Audit a refused attempt to decide on one's own request (self-approval, editor-approval).
pub(super) async fn audit_refusal(app: &App, actor: &Actor, id: &str, why: &str) {
    let event = AuditEvent::new(
        &actor.email,
        "request.self_approval_refused",
        Some(id),
        json!({"reason": why}),
    );
    if let Err(e) = app.store.append_audit(&event).await {
        tracing::warn!(error = %e, "cannot audit a refused self-approval");
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
    if actor.token.is_some() {
        token_may(&command, &current, actor)?;
    }
    let is_requester = current.requester == actor.email;
    match command {
        Command::AddComment { text } => add_comment(app, current, actor, text).await,
        Command::Cancel => {
            if !is_requester {
                return Err(AppError::Forbidden(
                    "Only the requester can cancel a request; admins reject it instead.".into(),
                ));
            }
            expect_status(&current, RequestStatus::Pending, "cancelled")?;
            not_while_applying(&current)?;
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
        Command::Reject { version } => {
            // Administrators, and whoever the request's rule names as an approver.
            let (rule, requirements) = approve::rule_of(app, &current);
            let member = requirements.iter().any(|q| {
                crate::requests::approvals::eligible(q, &actor.email, &actor.groups, actor.is_admin)
            });
            if !actor.is_admin && !member {
                return Err(AppError::Forbidden(format!(
                    "Only administrators and the approvers of rule '{rule}' can reject this \
                     request."
                )));
            }
            if is_requester {
                return Err(AppError::Forbidden(
                    "This is your own request: cancel it instead of rejecting it.".into(),
                ));
            }
            expect_status(&current, RequestStatus::Pending, "rejected")?;
            not_while_applying(&current)?;
            expect_version(&current, version)?;
            not_an_editor(app, &current, actor, "reject").await?;
            let mut next = current.clone();
            next.status = RequestStatus::Rejected;
            save(
                app,
                next,
                actor,
                "request.rejected",
                json!({"status": "rejected", "version": current.version}),
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
            not_while_applying(&current)?;
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
        Command::Approve { version } => approve::approve(app, current, actor, version, false).await,
        Command::MarkReviewed => review_break_glass(app, current, actor, false).await,
        Command::RevokeNow => review_break_glass(app, current, actor, true).await,
        Command::UpdateChange {
            change_id,
            document,
        } => edit::update_change(app, current, actor, &change_id, document).await,
    }
}

/// An administrator (not the requester) closes a break-glass request's review: marks it
/// reviewed, or first takes its grants away now.
async fn review_break_glass(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    revoke: bool,
) -> Result<PolicyRequest, AppError> {
    require_admin(actor, "review break-glass")?;
    let Some(bg) = &current.break_glass else {
        return Err(conflict("This is not a break-glass request."));
    };
    if current.requester.eq_ignore_ascii_case(&actor.email) {
        return Err(AppError::Forbidden(
            "Another administrator reviews your break-glass request.".into(),
        ));
    }
    if bg.reviewed_by.is_some() {
        return Err(conflict(format!(
            "{} already reviewed this request.",
            bg.reviewed_by.clone().unwrap_or_default()
        )));
    }
    let mut revoked = vec![];
    if revoke {
        for (i, c) in current.changes.iter().enumerate() {
            let applied = current
                .results
                .get(i)
                .is_some_and(|r| r.status == crate::store::ChangeStatus::Applied);
            let done = current.grant_outcomes.iter().any(|o| o.change_id == c.id());
            if applied && !done && !c.revoke_calls().is_empty() {
                crate::requests::expiry::revoke(app, &current.id, c.id())
                    .await
                    .map_err(|e| AppError::Upstream(format!("cannot revoke: {e}")))?;
                revoked.push(c.id().to_string());
            }
        }
    }
    // The revocations moved the version: mark it on the newest.
    for _ in 0..5 {
        let mut next = load(app, &current.id).await?;
        if let Some(b) = &mut next.break_glass {
            b.reviewed_by = Some(actor.email.clone());
            b.reviewed_at = Some(Utc::now());
        }
        let action = if revoke {
            "request.break_glass_revoked"
        } else {
            "request.break_glass_reviewed"
        };
        match save(app, next, actor, action, json!({"revoked": revoked}), None).await {
            Err(AppError::Conflict(_)) => continue,
            other => return other,
        }
    }
    Err(conflict("The request kept changing; try again."))
}

/// Comments are items of their own (`Store::add_comment`): adding one never moves the request's
/// version, so it neither invalidates the version a reviewer is looking at nor races an approval
/// recording its outcome. At most `policies.max_comments` per request.
async fn add_comment(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    text: String,
) -> Result<PolicyRequest, AppError> {
    let max = app.config.policies.max_comments.max(1);
    if current.comments.len() >= max {
        return Err(comment_limit(max));
    }
    let comment = Comment {
        id: uuid::Uuid::now_v7().to_string(),
        author: actor.email.clone(),
        text,
        created_at: Utc::now(),
    };
    let mut next = current;
    next.comments.push(comment.clone());
    let event = AuditEvent::new(
        &actor.email,
        "request.commented",
        Some(&next.id),
        actor.audited(json!({"comment_id": comment.id})),
    );
    let outbox = crate::notify::messages_for(
        &app.config,
        &next,
        &Event::Commented {
            author: actor.email.clone(),
        },
        &actor.email,
    );
    match app
        .store
        .add_comment(&next.id, &comment, max, &event, &outbox)
        .await
    {
        Ok(()) => {
            if !outbox.is_empty() {
                app.outbox_wake.notify_one();
            }
            Ok(next)
        }
        Err(StoreError::Conflict(_)) => Err(comment_limit(max)),
        Err(e) => Err(e.into()),
    }
}

fn comment_limit(max: usize) -> AppError {
    conflict(format!(
        "This request already has {max} comments, the most one request may have \
         (policies.max_comments). Continue the discussion elsewhere and link it here."
    ))
}

pub(super) fn require_admin(actor: &Actor, what: &str) -> Result<(), AppError> {
    if actor.is_admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "Only administrators (groups.can_admin) can {what} requests."
        )))
    }
}

pub(super) fn expect_status(
    r: &PolicyRequest,
    want: RequestStatus,
    to: &str,
) -> Result<(), AppError> {
    if r.status == want {
        Ok(())
    } else {
        Err(conflict(format!(
            "This request is {}; only {want} requests can be {to}.",
            r.status
        )))
    }
}

pub(super) fn not_while_applying(r: &PolicyRequest) -> Result<(), AppError> {
    match &r.applying {
        Some(c) if Utc::now() - c.since < Duration::minutes(CLAIM_TIMEOUT_MINUTES) => {
            Err(conflict(format!(
                "{} is applying this request right now; wait until it is done.",
                c.by
            )))
        }
        _ => Ok(()),
    }
}

/// The decision is about the content the reviewer saw: the version they name must not be older
/// than the last edit (approvals, claims and comments do not change what is reviewed) nor newer
/// than the request. Without a version (API), only a request whose changes were never edited
/// may be decided on.
pub(super) fn expect_version(r: &PolicyRequest, seen: Option<u64>) -> Result<(), AppError> {
    let content = crate::requests::approvals::content_version(r);
    match seen {
        Some(v) if v < content || v > r.version => Err(conflict(format!(
            "This request changed since you opened it (you saw version {v}; its changes are \
             now at version {content}). Reload it, review the changes again, then decide."
        ))),
        Some(_) => Ok(()),
        None => match r.edits.last() {
            Some(e) => Err(conflict(format!(
                "This request's changes were edited by {} after it was created. Review them \
                 again and send the version you reviewed (\"version\": {}).",
                e.by, r.version
            ))),
            None => Ok(()),
        },
    }
}

/// Whoever edited a change may not decide on the request: a second person must look at it.
pub(super) async fn not_an_editor(
    app: &App,
    r: &PolicyRequest,
    actor: &Actor,
    what: &str,
) -> Result<(), AppError> {
    if r.edits
        .iter()
        .any(|e| e.by.eq_ignore_ascii_case(&actor.email))
    {
        audit_refusal(app, actor, &r.id, &format!("editor tried to {what}")).await;
        return Err(AppError::Forbidden(format!(
            "You edited this request's changes, so you cannot {what} it: another administrator \
             must review your edit."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_an_optional_version() {
        let approve = |v: Value| parse_command(&json!({"modification_model": v}));
        assert_eq!(
            approve(json!({"command": "approve_request", "version": 3})).ok(),
            Some(Command::Approve { version: Some(3) })
        );
        assert_eq!(
            approve(json!({"command": "approve_request", "version": "4"})).ok(),
            Some(Command::Approve { version: Some(4) })
        );
        assert_eq!(
            approve(json!({"command": "reject_request"})).ok(),
            Some(Command::Reject { version: None })
        );
        assert!(approve(json!({"command": "approve_request", "version": -1})).is_err());
        assert!(approve(json!({"command": "approve_request", "version": [1]})).is_err());
        assert!(approve(json!({"command": "add_comment", "comment_text": "  "})).is_err());
        assert!(
            approve(json!({"command": "update_change", "change_id": "c", "policy_document": "[]"}))
                .is_err()
        );
    }
}
