//! Expiring grants: an applied change with an `expiration_date` is taken away again on time.
//!
//! When approval records an applied change that expires, the same Store transaction writes two
//! jobs to the outbox on the `grant` channel: *revoke* due at the expiry and *remind* due
//! `policies.expiry_reminder_hours` before it. The outbox worker (`src/notify/worker.rs`) claims
//! each job with a conditional write, so of several replicas exactly one runs it, retries it
//! with backoff when AWS fails, and shows it at `/admin/outbox`; the worker polls every
//! `outbox.poll_seconds` (default 10), well within the minute.
//!
//! A revoke first re-reads the role from AWS: only when AWS still holds exactly what iamdesk
//! applied (the same policy document, the attachment, the tag value) does it make the reverse
//! call (`Change::revoke_calls`); otherwise somebody changed it meanwhile, and the request is
//! flagged with the drift and nothing is touched. Either way the outcome is audited
//! (`grant.expired`, `grant.drift`), recorded on the request and mailed to the requester.
//!
//! With `policies.temp_policy_support`, inline policies named by ConsoleMe's scheme
//! (`{temp_policy_prefix}_{YYYYmmdd}_…`) found by the sync are deleted on their day too
//! ([`sweep_consoleme_temp_policies`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::model::{Change, InlineEdit, TagEdit};
use crate::app::App;
use crate::config::Config;
use crate::store::{AuditEvent, OutboxMessage, PolicyRequest, StoreError};

pub const GRANT_CHANNEL: &str = "grant";

/// What a `grant` outbox message asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum GrantJob {
    Revoke {
        request_id: String,
        change_id: String,
        expires_at: DateTime<Utc>,
        /// For the role page's "expires in …": the role and what goes.
        #[serde(default)]
        role_arn: String,
        #[serde(default)]
        what: String,
    },
    Remind {
        request_id: String,
        change_id: String,
        expires_at: DateTime<Utc>,
    },
}

/// What became of one expiring grant, kept on the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantOutcome {
    pub change_id: String,
    pub at: DateTime<Utc>,
    /// `expired` (taken away), `drift` (AWS no longer held what was applied: left alone) or
    /// `gone` (the role itself no longer exists).
    pub outcome: String,
    pub detail: String,
}

/// The revoke and reminder jobs of the changes in `applied` (ids of changes applied just now).
pub fn jobs_for(config: &Config, r: &PolicyRequest, applied: &[String]) -> Vec<OutboxMessage> {
    let mut out = vec![];
    for c in r
        .changes
        .iter()
        .filter(|c| applied.iter().any(|a| a == c.id()))
    {
        let Some(expires) = c.expires() else {
            continue;
        };
        let at = expires.at();
        let mut revoke = OutboxMessage::new(
            GRANT_CHANNEL,
            job_payload(&GrantJob::Revoke {
                request_id: r.id.clone(),
                change_id: c.id().to_string(),
                expires_at: at,
                role_arn: c.target().to_string(),
                what: what_expires(c),
            }),
        );
        revoke.next_attempt_at = at;
        out.push(revoke);
        let remind_at = at - Duration::hours(i64::from(config.policies.expiry_reminder_hours));
        if config.policies.expiry_reminder_hours > 0 && remind_at > Utc::now() {
            let mut remind = OutboxMessage::new(
                GRANT_CHANNEL,
                job_payload(&GrantJob::Remind {
                    request_id: r.id.clone(),
                    change_id: c.id().to_string(),
                    expires_at: at,
                }),
            );
            remind.next_attempt_at = remind_at;
            out.push(remind);
        }
    }
    out
}

/// `inline policy read`, `managed policy arn:…`, `tag team=data`.
fn what_expires(c: &Change) -> String {
    match c {
        Change::InlinePolicy(c) => format!("inline policy {}", c.policy_name),
        Change::ManagedPolicy(c) => format!("managed policy {}", c.arn),
        Change::ResourceTag(c) => match &c.edit {
            TagEdit::Create(v) | TagEdit::Update(v) => format!("tag {}={v}", c.key),
            TagEdit::Delete => format!("tag {}", c.key),
        },
        Change::Resource(c) => format!("resource policy of {}", c.resource.label()),
        other => other.kind().as_str().to_string(),
    }
}

/// The grants of role `role_arn` that will be taken away, soonest first: (what, when, request).
pub async fn expiring_on(app: &App, role_arn: &str) -> Vec<(String, DateTime<Utc>, String)> {
    use crate::store::{OutboxStatus, PageRequest};
    let mut out = vec![];
    let mut cursor = None;
    // Pending outbox messages are few (mail goes out within seconds): a few pages at most.
    for _ in 0..10 {
        let page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            cursor,
        };
        let Ok(found) = app
            .store
            .list_outbox(Some(OutboxStatus::Pending), &page)
            .await
        else {
            break;
        };
        for m in found.items.iter().filter(|m| m.channel == GRANT_CHANNEL) {
            if let Ok(GrantJob::Revoke {
                expires_at,
                role_arn: arn,
                what,
                request_id,
                ..
            }) = serde_json::from_value(m.payload.clone())
                && arn == role_arn
            {
                out.push((what, expires_at, request_id));
            }
        }
        match found.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by_key(|(_, at, _)| *at);
    out
}

fn job_payload(job: &GrantJob) -> serde_json::Value {
    let mut v = serde_json::to_value(job).unwrap_or_default();
    // The outbox page shows `subject`: say what the job is.
    let subject = match job {
        GrantJob::Revoke { expires_at, .. } => format!("revoke a grant at {expires_at}"),
        GrantJob::Remind { expires_at, .. } => format!("remind: a grant expires at {expires_at}"),
    };
    v["subject"] = json!(subject);
    v
}

/// Run one `grant` job for the outbox worker: `Ok` when it is done (or has nothing left to do),
/// `Err` to be retried with backoff.
pub async fn run_job(app: &App, m: &OutboxMessage) -> Result<(), String> {
    let job: GrantJob = serde_json::from_value(m.payload.clone())
        .map_err(|e| format!("the stored grant job cannot be read: {e}"))?;
    match job {
        GrantJob::Revoke {
            request_id,
            change_id,
            ..
        } => revoke(app, &request_id, &change_id).await,
        GrantJob::Remind {
            request_id,
            change_id,
            expires_at,
        } => remind(app, &request_id, &change_id, expires_at).await,
    }
}

async fn load(app: &App, id: &str) -> Result<Option<PolicyRequest>, String> {
    app.store.get_request(id).await.map_err(|e| e.to_string())
}

/// Whether AWS still holds what `change` applied, given the role as it is now.
fn still_held(change: &Change, role: &crate::resources::model::Principal) -> Result<(), String> {
    match change {
        Change::InlinePolicy(c) => {
            let InlineEdit::Put(doc) = &c.edit else {
                return Err("not a grant".into());
            };
            match role
                .inline_policies
                .iter()
                .find(|p| p.name == c.policy_name.as_str())
            {
                None => Err(format!(
                    "inline policy {} is no longer there",
                    c.policy_name
                )),
                Some(p) if p.document != *doc.as_value() => Err(format!(
                    "inline policy {} was changed outside this request",
                    c.policy_name
                )),
                Some(_) => Ok(()),
            }
        }
        Change::ManagedPolicy(c) => {
            if role
                .managed_policies
                .iter()
                .any(|m| m.arn == c.arn.as_str())
            {
                Ok(())
            } else {
                Err(format!("{} is no longer attached", c.arn))
            }
        }
        Change::ResourceTag(c) => {
            let (TagEdit::Create(v) | TagEdit::Update(v)) = &c.edit else {
                return Err("not a grant".into());
            };
            match role.tag(&c.key) {
                Some(now) if now == v => Ok(()),
                Some(now) => Err(format!("tag {} is now `{now}`, not `{v}`", c.key)),
                None => Err(format!("tag {} is no longer there", c.key)),
            }
        }
        _ => Err("this change does not expire".into()),
    }
}

/// Take one applied grant away now (at its expiry, or early for a break-glass request).
pub(crate) async fn revoke(app: &App, request_id: &str, change_id: &str) -> Result<(), String> {
    let Some(r) = load(app, request_id).await? else {
        return Ok(());
    };
    if r.grant_outcomes.iter().any(|o| o.change_id == change_id) {
        return Ok(()); // done before (a retried job)
    }
    let Some(change) = r.changes.iter().find(|c| c.id() == change_id).cloned() else {
        return Ok(());
    };
    if let Change::Resource(c) = &change {
        return revoke_resource_policy(app, request_id, change_id, c).await;
    }
    let target = change.target();
    let account = target.account().to_string();
    let fresh = app
        .cloud
        .fetch_role(&account, target.name())
        .await
        .map_err(|e| format!("cannot read {target}: {e}"))?;
    let (outcome, detail) = match fresh {
        None => (
            "gone",
            format!("{target} no longer exists; nothing to take away"),
        ),
        Some(role) => match still_held(&change, &role) {
            Ok(()) => {
                for call in change.revoke_calls() {
                    app.cloud
                        .apply(&account, &call)
                        .await
                        .map_err(|e| format!("{} failed: {e}", call.action()))?;
                }
                let done: Vec<String> = change
                    .revoke_calls()
                    .iter()
                    .map(super::review::describe_call)
                    .collect();
                ("expired", done.join("; "))
            }
            Err(why) => ("drift", why),
        },
    };
    let action = match outcome {
        "drift" => "grant.drift",
        _ => "grant.expired",
    };
    record(app, request_id, change_id, outcome, &detail, action).await?;
    if outcome == "expired"
        && let Err(e) =
            crate::resources::sync::refresh_role(&app.resource_deps(), &account, target.name())
                .await
    {
        tracing::warn!(error = %e, "cannot re-read the role after an expiry");
    }
    Ok(())
}

/// [`revoke`] for an expiring bucket, queue or topic policy: put the policy back as it was
/// before the request, if the resource still holds exactly the policy that was applied;
/// otherwise record drift and touch nothing.
async fn revoke_resource_policy(
    app: &App,
    request_id: &str,
    change_id: &str,
    c: &crate::requests::resource_change::ResourceChange,
) -> Result<(), String> {
    use crate::requests::resource_change::ResourceEdit;
    use crate::resources::model::Resource;
    let r = &c.resource;
    let account = r.account.to_string();
    let label = r.label();
    let fresh = app
        .cloud
        .fetch_resource(&account, r.kind, &r.region, &r.name)
        .await
        .map_err(|e| format!("cannot read {label}: {e}"))?;
    let applied = match &c.edit {
        ResourceEdit::Policy(Some(d)) => Some(d.as_value()),
        _ => None,
    };
    let (outcome, detail) = match fresh {
        None => (
            "gone",
            format!("{label} no longer exists; nothing to take away"),
        ),
        Some(Resource::Service(s)) if s.policy.as_ref() == applied => {
            let calls = c.revoke_calls();
            for call in &calls {
                app.cloud
                    .apply(&account, call)
                    .await
                    .map_err(|e| format!("{} failed: {e}", call.action()))?;
            }
            let done: Vec<String> = calls.iter().map(super::review::describe_call).collect();
            ("expired", done.join("; "))
        }
        Some(_) => (
            "drift",
            format!(
                "the resource policy of {label} was changed outside this request since it was                  applied; left as it is"
            ),
        ),
    };
    let action = match outcome {
        "drift" => "grant.drift",
        _ => "grant.expired",
    };
    record(app, request_id, change_id, outcome, &detail, action).await?;
    if outcome == "expired" {
        let at = (account, r.kind, r.region.clone(), r.name.clone());
        if let Err(e) = crate::resources::sync::refresh_resources(&app.resource_deps(), &[at]).await
        {
            tracing::warn!(error = %e, "cannot re-read the resource after an expiry");
        }
    }
    Ok(())
}

/// Append the outcome to the request with its audit event and mail, merging with whatever was
/// written meanwhile.
async fn record(
    app: &App,
    request_id: &str,
    change_id: &str,
    outcome: &str,
    detail: &str,
    action: &str,
) -> Result<(), String> {
    for _ in 0..10 {
        let Some(mut r) = load(app, request_id).await? else {
            return Ok(());
        };
        if r.grant_outcomes.iter().any(|o| o.change_id == change_id) {
            return Ok(());
        }
        r.grant_outcomes.push(GrantOutcome {
            change_id: change_id.to_string(),
            at: Utc::now(),
            outcome: outcome.to_string(),
            detail: detail.to_string(),
        });
        r.version += 1;
        r.updated_at = Utc::now();
        let event = AuditEvent::new(
            "iamdesk",
            action,
            Some(request_id),
            json!({"change_id": change_id, "outcome": outcome, "detail": detail}),
        );
        let notice = crate::notify::Event::Grant {
            outcome: outcome.to_string(),
            detail: detail.to_string(),
        };
        let outbox = crate::notify::messages_for(&app.config, &r, &notice, "iamdesk");
        match app.store.update_request(&r, &event, &outbox).await {
            Ok(()) => {
                app.outbox_wake.notify_one();
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the request kept changing while the expiry was recorded".into())
}

async fn remind(
    app: &App,
    request_id: &str,
    change_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), String> {
    let Some(r) = load(app, request_id).await? else {
        return Ok(());
    };
    if r.grant_outcomes.iter().any(|o| o.change_id == change_id) {
        return Ok(());
    }
    let notice = crate::notify::Event::GrantReminder { expires_at };
    let outbox = crate::notify::messages_for(&app.config, &r, &notice, "iamdesk");
    let event = AuditEvent::new(
        "iamdesk",
        "grant.reminded",
        Some(request_id),
        json!({"change_id": change_id, "expires_at": expires_at}),
    );
    // The reminder mail goes out through the outbox like any other.
    app.store
        .append_audit(&event)
        .await
        .map_err(|e| e.to_string())?;
    for m in outbox {
        enqueue(app, m).await?;
    }
    Ok(())
}

/// Put one message in the outbox on its own (no request write goes with a reminder).
async fn enqueue(app: &App, m: OutboxMessage) -> Result<(), String> {
    app.store
        .enqueue_outbox(&m)
        .await
        .map_err(|e| e.to_string())?;
    app.outbox_wake.notify_one();
    Ok(())
}

/// ConsoleMe's temporary inline policies (`{prefix}_{YYYYmmdd}_…`) whose day has come, as
/// (account, role, policy name), from the synced roles.
pub fn consoleme_temp_policies_due(app: &App, now: DateTime<Utc>) -> Vec<(String, String, String)> {
    let prefix = format!("{}_", app.config.policies.temp_policy_prefix);
    let today = now.format("%Y%m%d").to_string();
    let mut out = vec![];
    for snap in app.resources.snapshots().iter() {
        for p in &snap.principals {
            for policy in &p.inline_policies {
                let Some(rest) = policy.name.strip_prefix(&prefix) else {
                    continue;
                };
                let day: String = rest.chars().take(8).collect();
                if day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()) && day <= today {
                    out.push((snap.account_id.clone(), p.name.clone(), policy.name.clone()));
                }
            }
        }
    }
    out
}

/// Delete ConsoleMe's temporary policies whose day has come (`policies.temp_policy_support`).
pub async fn sweep_consoleme_temp_policies(app: &App, now: DateTime<Utc>) -> usize {
    if !app.config.policies.temp_policy_support {
        return 0;
    }
    let mut done = 0;
    for (account, role, policy) in consoleme_temp_policies_due(app, now) {
        let op = crate::cloud::IamOp::DeleteRolePolicy {
            role: role.clone(),
            policy_name: policy.clone(),
        };
        match app.cloud.apply(&account, &op).await {
            Ok(()) => {
                done += 1;
                let event = AuditEvent::new(
                    "iamdesk",
                    "grant.expired",
                    None,
                    json!({"account": account, "role": role, "policy_name": policy,
                           "source": "consoleme temp_policy"}),
                );
                if let Err(e) = app.store.append_audit(&event).await {
                    tracing::warn!(error = %e, "cannot audit an expired ConsoleMe policy");
                }
                if let Err(e) =
                    crate::resources::sync::refresh_role(&app.resource_deps(), &account, &role)
                        .await
                {
                    tracing::warn!(error = %e, "cannot re-read the role after an expiry");
                }
            }
            Err(e) => {
                tracing::warn!(account, role, policy, error = %e, "cannot delete an expired ConsoleMe policy")
            }
        }
    }
    done
}
