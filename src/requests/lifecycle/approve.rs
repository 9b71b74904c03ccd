//! Approval in four steps: claim, apply, record, refresh (the story is told in `mod.rs`). A
//! request imported from ConsoleMe is checked once more before an approval is recorded
//! (`src/requests/imported.rs`).

use chrono::Utc;
use serde_json::json;

use super::{
    Actor, audit_refusal, conflict, expect_status, expect_version, load, not_while_applying, save,
};
use crate::app::App;
use crate::error::AppError;
use crate::notify::Event;
use crate::requests::approvals::{self, Approval};
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
    expect_status(&current, RequestStatus::Pending, "approved")?;
    not_while_applying(&current)?;
    expect_version(&current, version)?;
    if auto {
        // `admin_auto_approve` / break-glass: decided at creation (src/requests/create.rs).
        return apply_all(app, current, actor, auto).await;
    }
    if let Some(who) = approvals::excluded(&app.config, &current, &actor.email) {
        audit_refusal(app, actor, &current.id, &format!("{who} tried to approve")).await;
        let message = if who == "the requester" {
            "You cannot approve your own request: another approver must review it \
             (policies.allow_self_approval is off)."
                .to_string()
        } else {
            "You edited this request's changes, so you cannot approve it: another approver must \
             review your edit."
                .to_string()
        };
        return Err(AppError::Forbidden(message));
    }
    let (rule, requirements) = rule_of(app, &current);
    let before = approvals::state(&app.config, &current, &rule, &requirements);
    let member = requirements
        .iter()
        .any(|q| approvals::eligible(q, &actor.email, &actor.groups, actor.is_admin));
    if member || actor.is_admin {
        // Before any approval is recorded: the one completing the rule applies at once.
        crate::requests::imported::check_before_approval(app, &current)?;
    }
    if before.satisfied {
        // Approved before but not applied (an AWS call failed): an approver retries the apply.
        if !member && !actor.is_admin {
            return Err(not_an_approver(&rule, &before));
        }
        return apply_all(app, current, actor, false).await;
    }
    let useful = requirements
        .iter()
        .zip(&before.requirements)
        .any(|(q, st)| {
            !st.met() && approvals::eligible(q, &actor.email, &actor.groups, actor.is_admin)
        });
    let seen = version.unwrap_or(current.version);
    let already = current.approvals.iter().any(|a| {
        a.by.eq_ignore_ascii_case(&actor.email) && a.version >= approvals::content_version(&current)
    });
    if already {
        return Err(conflict(format!(
            "You already approved this request; it still needs {}.",
            before.still_needed().join(" and ")
        )));
    }
    if !useful {
        return Err(not_an_approver(&rule, &before));
    }
    // Record the approval; the one that completes the rule claims the apply in the same write,
    // so when the last two approvals race, exactly one applies.
    let mut latest = current;
    for _ in 0..10 {
        let mut next = latest.clone();
        next.approvals.push(Approval {
            by: actor.email.clone(),
            groups: actor.groups.clone(),
            at: Utc::now(),
            version: seen,
            admin: actor.is_admin,
        });
        let after = approvals::state(&app.config, &next, &rule, &requirements);
        let (action, notify) = if after.satisfied {
            next.applying = Some(ApplyClaim {
                by: actor.email.clone(),
                since: Utc::now(),
            });
            ("request.approval_started", None)
        } else {
            (
                "request.approval_recorded",
                Some(Event::ApprovalRecorded {
                    by: actor.email.clone(),
                    still_needed: after.still_needed(),
                    to: still_needed_emails(&requirements, &after),
                }),
            )
        };
        let detail = json!({"rule": rule, "version": seen,
                            "approvals": after.requirements.iter().map(|r| r.describe()).collect::<Vec<_>>()});
        match save(app, next, actor, action, detail, notify).await {
            Ok(saved) if after.satisfied => return finish(app, saved, actor).await,
            Ok(saved) => return Ok(saved),
            Err(AppError::Conflict(_)) => {
                latest = load(app, &latest.id).await?;
                if let Some(c) = &latest.applying {
                    // Another approver completed the rule first: it is applied once, by them.
                    return Err(conflict(format!(
                        "{} approved it a moment before you and is applying it now.",
                        c.by
                    )));
                }
                expect_status(&latest, RequestStatus::Pending, "approved")?;
                expect_version(&latest, Some(seen))?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(conflict(
        "The request is changing too often to record your approval right now; try again.",
    ))
}

/// The rule deciding for `r` here, and how far it is.
pub fn approval_state(app: &App, r: &PolicyRequest) -> approvals::RuleState {
    let (rule, requirements) = rule_of(app, r);
    approvals::state(&app.config, r, &rule, &requirements)
}

/// Whether `actor` is an approver `r` still needs (or may retry a failed apply).
pub fn may_approve(app: &App, r: &PolicyRequest, actor: &Actor) -> bool {
    if approvals::excluded(&app.config, r, &actor.email).is_some() {
        return false;
    }
    let (rule, requirements) = rule_of(app, r);
    let st = approvals::state(&app.config, r, &rule, &requirements);
    let already = r.approvals.iter().any(|a| {
        a.by.eq_ignore_ascii_case(&actor.email) && a.version >= approvals::content_version(r)
    });
    requirements.iter().zip(&st.requirements).any(|(q, s)| {
        approvals::eligible(q, &actor.email, &actor.groups, actor.is_admin)
            && (!s.met() || st.satisfied)
    }) && (!already || st.satisfied)
}

/// The rule deciding for `r` here.
pub(super) fn rule_of(app: &App, r: &PolicyRequest) -> (String, Vec<crate::config::Requirement>) {
    let level = crate::requests::synced::request_risk(app, r);
    let role_of =
        |c: &crate::requests::Change| crate::requests::review::current_role(&app.resources, c);
    approvals::rule_for(&app.config, r, level, &role_of)
}

/// The addresses (entries with `@`, `group:` addresses) of the requirements still unmet.
fn still_needed_emails(
    requirements: &[crate::config::Requirement],
    st: &approvals::RuleState,
) -> Vec<String> {
    requirements
        .iter()
        .zip(&st.requirements)
        .filter(|(_, s)| !s.met())
        .flat_map(|(q, _)| q.groups.iter())
        .filter_map(|g| {
            let g = g.strip_prefix("group:").unwrap_or(g);
            g.contains('@').then(|| g.to_string())
        })
        .collect()
}

fn not_an_approver(rule: &str, st: &approvals::RuleState) -> AppError {
    AppError::Forbidden(format!(
        "You are not one of the approvers this request still needs (rule '{rule}': {}).",
        if st.satisfied {
            "already approved".to_string()
        } else {
            st.still_needed().join(" and ")
        }
    ))
}

/// Claim, then apply, record and refresh.
async fn apply_all(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    auto: bool,
) -> Result<PolicyRequest, AppError> {
    let claimed = claim(app, current, actor, auto).await?;
    finish(app, claimed, actor).await
}

/// Apply, record and refresh a request this approver has claimed, in a task of its own: once
/// AWS is being changed, neither the request timeout (`src/web/mod.rs`, `REQUEST_TIMEOUT`) nor
/// an approver who closes the page may drop the work between the AWS calls and their record.
async fn finish(
    app: &App,
    claimed: PolicyRequest,
    actor: &Actor,
) -> Result<PolicyRequest, AppError> {
    let Some(owned) = app.me.upgrade() else {
        return finish_here(app, claimed, actor).await;
    };
    let actor = actor.clone();
    let id = claimed.id.clone();
    tokio::spawn(async move { finish_here(&owned, claimed, &actor).await })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(request = %id, error = %e, "the approval task ended abnormally");
            Err(AppError::Internal(format!(
                "the approval task ended abnormally: {e}"
            )))
        })
}

async fn finish_here(
    app: &App,
    claimed: PolicyRequest,
    actor: &Actor,
) -> Result<PolicyRequest, AppError> {
    let outcome = apply(app, &claimed, actor).await;
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
    let break_glass = claimed.break_glass.is_some();
    save(
        app,
        claimed,
        actor,
        "request.approval_started",
        json!({"admin_auto_approve": auto && !break_glass, "break_glass": break_glass,
               "version": version}),
        None,
    )
    .await
}

/// What applying did: a result per change, the first failure, the roles touched.
#[derive(Clone)]
struct Outcome {
    results: Vec<ChangeResult>,
    failed: Option<(usize, String)>,
    /// (account, role name) of every change attempted.
    touched: Vec<(String, String)>,
    /// The buckets, queues, topics and managed policies it changed.
    touched_resources: Vec<crate::resources::sync::ResourceAt>,
    /// IAM calls made, for the audit event.
    calls: usize,
    /// Ids of the changes applied by this approval (their expiries are scheduled with it).
    applied_now: Vec<String>,
}

/// Step 2, apply: each change not applied yet, call by call as `Change::calls` lists them (the list
/// the reviewer saw), in order; stop at the first failure.
async fn apply(app: &App, claimed: &PolicyRequest, actor: &Actor) -> Outcome {
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
        touched_resources: vec![],
        calls: 0,
        applied_now: vec![],
    };
    // A right-size request pins what AWS holds right before it changes anything (its rollback).
    if let Err(message) = crate::rightsize::pin_at_approval(app, claimed, &actor.email).await {
        if let Some(first) = out.results.first_mut() {
            *first = ChangeResult {
                status: ChangeStatus::Failed,
                message: Some(message.clone()),
                at: Some(Utc::now()),
            };
        }
        out.failed = Some((0, message));
        return out;
    }
    for (i, change) in claimed.changes.iter().enumerate() {
        if out.results[i].status == ChangeStatus::Applied {
            continue;
        }
        let target = change.target();
        let account = target.account().to_string();
        if let Some(r) = target.as_resource() {
            let at = (account.clone(), r.kind, r.region.clone(), r.name.clone());
            if !out.touched_resources.contains(&at) {
                out.touched_resources.push(at);
            }
        } else {
            let touched = (account.clone(), target.name().to_string());
            if !out.touched.contains(&touched) {
                out.touched.push(touched);
            }
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
/// what AWS applied is always recorded. When the Store keeps failing (throttled, unreachable)
/// the approver is told, and the record is handed to this replica's outbox worker, which keeps
/// trying until it lands ([`record_unrecorded`]).
async fn record(
    app: &App,
    claimed: &PolicyRequest,
    actor: &Actor,
    outcome: &Outcome,
) -> Result<PolicyRequest, AppError> {
    match record_once_or_more(app, claimed, actor, outcome, IN_REQUEST_BUDGET).await {
        Ok(saved) => Ok(saved),
        Err(Unlanded::Gone) => Err(AppError::NotFound("the request disappeared".into())),
        Err(Unlanded::Failed(error)) => {
            tracing::error!(request = %claimed.id, error = %error,
                "cannot record an applied approval yet; the outbox worker keeps trying");
            if let Ok(mut queue) = app.unrecorded.lock() {
                queue.push(Unrecorded {
                    claimed: claimed.clone(),
                    actor: actor.clone(),
                    outcome: outcome.clone(),
                    attempts: 0,
                });
            }
            app.outbox_wake.notify_one();
            Err(AppError::Conflict(format!(
                "The changes were applied in AWS but the request could not be updated yet \
                 ({error}). iamdesk keeps trying in the background: reload in a minute."
            )))
        }
    }
}

/// How long the record is retried while the approver waits, well inside `REQUEST_TIMEOUT`
/// (`src/web/mod.rs`); then the outbox worker takes it over.
const IN_REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a record did not land.
enum Unlanded {
    Gone,
    Failed(StoreError),
}

/// An approval applied in AWS whose record has not landed yet (kept in [`App::unrecorded`]).
pub struct Unrecorded {
    claimed: PolicyRequest,
    actor: Actor,
    outcome: Outcome,
    attempts: u32,
}

/// Retry every approval whose record has not landed (called by the outbox worker on each pass,
/// `src/notify/worker.rs`). Returns how many landed.
pub async fn record_unrecorded(app: &App) -> usize {
    let pending: Vec<Unrecorded> = match app.unrecorded.lock() {
        Ok(mut queue) => std::mem::take(&mut *queue),
        Err(_) => return 0,
    };
    let mut landed = 0;
    for mut u in pending {
        match record_once_or_more(
            app,
            &u.claimed,
            &u.actor,
            &u.outcome,
            std::time::Duration::ZERO,
        )
        .await
        {
            Ok(saved) => {
                landed += 1;
                tracing::info!(request = %saved.id, attempts = u.attempts + 1,
                    "an applied approval was recorded after all");
                refresh(app, &u.outcome).await;
            }
            Err(Unlanded::Gone) => {
                tracing::error!(request = %u.claimed.id, "the request of an applied approval is gone");
            }
            Err(Unlanded::Failed(error)) => {
                u.attempts += 1;
                tracing::warn!(request = %u.claimed.id, error = %error, attempts = u.attempts,
                    "recording an applied approval; will retry");
                if let Ok(mut queue) = app.unrecorded.lock() {
                    queue.push(u);
                }
            }
        }
    }
    landed
}

async fn record_once_or_more(
    app: &App,
    claimed: &PolicyRequest,
    actor: &Actor,
    outcome: &Outcome,
    budget: std::time::Duration,
) -> Result<PolicyRequest, Unlanded> {
    let started = std::time::Instant::now();
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
        // AWS has been changed: keep trying, whatever the cause.
        if started.elapsed() >= budget {
            return Err(Unlanded::Failed(error));
        }
        match error {
            StoreError::Conflict(_) => match app.store.get_request(&claimed.id).await {
                Ok(Some(latest)) => base = latest,
                Ok(None) => return Err(Unlanded::Gone),
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
    // Only the roles it changed, each account in one write (src/resources/sync.rs).
    if let Err(e) =
        crate::resources::sync::refresh_roles(&app.resource_deps(), &outcome.touched).await
    {
        tracing::warn!(error = %e, "cannot re-read the roles after applying");
    }
    if !outcome.touched_resources.is_empty()
        && let Err(e) = crate::resources::sync::refresh_resources(
            &app.resource_deps(),
            &outcome.touched_resources,
        )
        .await
    {
        tracing::warn!(error = %e, "cannot re-read the resources after applying");
    }
}
