//! Approval in four steps: claim, apply, record, refresh (the story is told in `mod.rs`).

use chrono::Utc;
use serde_json::json;

use super::{
    Actor, audit_refusal, conflict, expect_status, expect_version, load, not_an_editor,
    not_while_applying, require_admin, save,
};
use crate::app::App;
use crate::error::AppError;
use crate::notify::Event;
use crate::store::{
    ApplyClaim, AuditEvent, ChangeResult, ChangeStatus, PolicyRequest, RequestStatus, StoreError,
};

/// An admin's `admin_auto_approve` at creation (allowed by `src/requests/create.rs` only when
/// self-approval is): apply at once, bound to the version just created.
pub async fn approve_now(app: &App, id: &str, actor: &Actor) -> Result<PolicyRequest, AppError> {
    let current = load(app, id).await?;
    let version = Some(current.version);
    approve(app, current, actor, version, true).await
}

pub(super) async fn approve(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    version: Option<u64>,
    auto: bool,
) -> Result<PolicyRequest, AppError> {
    require_admin(actor, "approve")?;
    expect_status(&current, RequestStatus::Pending, "approved")?;
    not_while_applying(&current)?;
    expect_version(&current, version)?;
    if current.requester.eq_ignore_ascii_case(&actor.email)
        && !app.config.policies.allow_self_approval
    {
        audit_refusal(app, actor, &current.id, "requester tried to approve").await;
        return Err(AppError::Forbidden(
            "You cannot approve your own request: another administrator must review it \
             (policies.allow_self_approval is off)."
                .into(),
        ));
    }
    not_an_editor(app, &current, actor, "approve").await?;

    let claimed = claim(app, current, actor, auto).await?;
    let outcome = apply(app, &claimed).await;
    let saved = record(app, &claimed, actor, &outcome).await?;
    refresh(app, &outcome).await;
    if let Some((i, message)) = &outcome.failed {
        tracing::warn!(request = %saved.id, change = i, error = %message, "apply failed; request stays pending");
    }
    Ok(saved)
}

/// Step 1, claim: of several concurrent approvals only one gets past this write.
async fn claim(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    auto: bool,
) -> Result<PolicyRequest, AppError> {
    let mut claimed = current;
    claimed.applying = Some(ApplyClaim {
        by: actor.email.clone(),
        since: Utc::now(),
    });
    let version = claimed.version;
    save(
        app,
        claimed,
        actor,
        "request.approval_started",
        json!({"admin_auto_approve": auto, "version": version}),
        None,
    )
    .await
}

/// What applying did: a result per change, the first failure, the roles touched.
struct Outcome {
    results: Vec<ChangeResult>,
    failed: Option<(usize, String)>,
    /// (account, role name) of every change attempted.
    touched: Vec<(String, String)>,
    /// IAM calls made, for the audit event.
    calls: usize,
    /// Ids of the changes applied by this approval (their expiries are scheduled with it).
    applied_now: Vec<String>,
}

/// Step 2, apply: each change not applied yet, call by call as `Change::calls` lists them (the list
/// the reviewer saw), in order; stop at the first failure.
async fn apply(app: &App, claimed: &PolicyRequest) -> Outcome {
    let pending = ChangeResult {
        status: ChangeStatus::Pending,
        message: None,
        at: None,
    };
    let mut results = claimed.results.clone();
    results.resize(claimed.changes.len(), pending);
    let mut out = Outcome {
        results,
        failed: None,
        touched: vec![],
        calls: 0,
        applied_now: vec![],
    };
    for (i, change) in claimed.changes.iter().enumerate() {
        if out.results[i].status == ChangeStatus::Applied {
            continue;
        }
        let target = change.target();
        let account = target.account().to_string();
        let touched = (account.clone(), target.name().to_string());
        if !out.touched.contains(&touched) {
            out.touched.push(touched);
        }
        let mut error = None;
        for call in change.calls() {
            out.calls += 1;
            if let Err(e) = app.cloud.apply(&account, &call).await {
                error = Some(format!("{} failed: {e}", call.action()));
                break;
            }
        }
        out.results[i] = ChangeResult {
            status: if error.is_some() {
                ChangeStatus::Failed
            } else {
                ChangeStatus::Applied
            },
            message: error.clone(),
            at: Some(Utc::now()),
        };
        if let Some(message) = error {
            out.failed = Some((i, message));
            break;
        }
        out.applied_now.push(change.id().to_string());
    }
    out
}

/// Step 3, record: the outcome with its audit event and release the claim. A comment may have landed
/// since the claim: the outcome is then merged into the newer version and written again, so
/// what AWS applied is always recorded.
async fn record(
    app: &App,
    claimed: &PolicyRequest,
    actor: &Actor,
    outcome: &Outcome,
) -> Result<PolicyRequest, AppError> {
    let (action, detail, notify) = match &outcome.failed {
        None => (
            "request.approved",
            json!({"status": "approved", "applied": claimed.changes.len(),
                   "calls": outcome.calls, "version": claimed.version}),
            Some(Event::StatusChanged(RequestStatus::Approved)),
        ),
        Some((i, message)) => (
            "request.apply_failed",
            json!({"status": "pending", "failed_change": i, "error": message,
                   "calls": outcome.calls}),
            None,
        ),
    };
    let event = AuditEvent::new(&actor.email, action, Some(&claimed.id), detail);
    let mut base = claimed.clone();
    let mut delay = std::time::Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut next = base.clone();
        next.results = outcome.results.clone();
        next.applying = None;
        if outcome.failed.is_none() {
            next.status = RequestStatus::Approved;
        }
        next.version += 1;
        next.updated_at = Utc::now();
        let mut outbox = notify
            .as_ref()
            .map(|e| crate::notify::messages_for(&app.config, &next, e, &actor.email))
            .unwrap_or_default();
        // Expiring grants are scheduled in the same write that records them as applied.
        outbox.extend(crate::requests::expiry::jobs_for(
            &app.config,
            &next,
            &outcome.applied_now,
        ));
        let error = match app.store.update_request(&next, &event, &outbox).await {
            Ok(()) => {
                if !outbox.is_empty() {
                    app.outbox_wake.notify_one();
                }
                return Ok(next);
            }
            Err(e) => e,
        };
        // AWS has been changed: keep trying for a while, whatever the cause.
        if attempt > 20 {
            tracing::error!(request = %claimed.id, error = %error, "cannot record an applied approval");
            return Err(conflict(format!(
                "The changes were applied in AWS but the request could not be updated ({error}); \
                 an administrator must check it."
            )));
        }
        match error {
            StoreError::Conflict(_) => match app.store.get_request(&claimed.id).await {
                Ok(Some(latest)) => base = latest,
                Ok(None) => return Err(AppError::NotFound("the request disappeared".into())),
                Err(e) => tracing::warn!(error = %e, "re-reading the request to record it"),
            },
            other => {
                tracing::warn!(request = %claimed.id, error = %other, attempt, "recording the approval; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// Step 4, refresh: show the new state at once, re-read the touched roles into the synced resources.
async fn refresh(app: &App, outcome: &Outcome) {
    for (account, role) in &outcome.touched {
        if let Err(e) = crate::resources::sync::refresh_role(app, account, role).await {
            tracing::warn!(account, role, error = %e, "cannot re-read the role after applying");
        }
    }
}
