//! AWS Config compliance changes → findings and Slack.
//!
//! Each rule and resource has one [`Finding`]. A change is decided against the stored finding
//! and written back *with* its Slack message, under the finding's version: when two replicas
//! (or a queue redelivery and the HTTPS endpoint) handle notifications about the same finding at
//! once, one write wins, the other re-reads and decides again — so an alert is posted once, and
//! a repeat of the state last posted is not posted again within `events.config.repeat_minutes`.
//! Notifications older than the newest one seen are stale (SQS does not keep order) and change
//! nothing.

use chrono::{Duration, Utc};
use serde_json::json;

use super::model::{COMPLIANT, Finding, NON_COMPLIANT};
use super::parse::ComplianceChange;
use super::slack::FindingText;
use crate::app::App;
use crate::resources::model::ResourceKind;
use crate::store::{OutboxMessage, StoreError};

/// What handling one notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new non-compliance was posted.
    Alerted,
    /// Back to compliant was posted.
    Resolved,
    /// The same state was posted within `events.config.repeat_minutes`.
    Repeat,
    /// Older than (or the same as) a notification already handled.
    Stale,
    /// Stored, nothing to post (compliant and never open, insufficient data, no Slack).
    Recorded,
}

/// Not applicable (the resource is gone, or out of the rule's scope) closes a finding like
/// compliant does.
fn closes(compliance: &str) -> bool {
    compliance == COMPLIANT || compliance == "NOT_APPLICABLE"
}

const ATTEMPTS: usize = 5;

pub async fn handle(app: &App, c: &ComplianceChange) -> Result<Outcome, StoreError> {
    let key = Finding::key_of(
        &c.account_id,
        &c.region,
        &c.rule,
        &c.resource_type,
        &c.resource_id,
    );
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let existing = app.store.get_finding(&key).await?;
        let Some((finding, outcome)) = decide(app, c, &key, existing.as_ref()) else {
            return Ok(Outcome::Stale);
        };
        let outbox: Vec<OutboxMessage> = match outcome {
            Outcome::Alerted => vec![message(app, c, &key, false)],
            Outcome::Resolved => vec![message(app, c, &key, true)],
            _ => vec![],
        };
        match app.store.put_finding(&finding, &outbox).await {
            Ok(()) => {
                if !outbox.is_empty() {
                    app.outbox_wake.notify_one();
                }
                tracing::info!(finding = %key, compliance = %c.compliance, ?outcome, "AWS Config change handled");
                return Ok(outcome);
            }
            // Somebody wrote this finding meanwhile: decide again on what they wrote.
            Err(StoreError::Conflict(e)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(last.unwrap_or_default()))
}

fn posting_configured(app: &App) -> bool {
    app.config.slack.notifications_enabled && app.config.slack.webhook_url.is_some()
}

/// The finding after `c` and what to post, or `None` when `c` is stale.
fn decide(
    app: &App,
    c: &ComplianceChange,
    key: &str,
    existing: Option<&Finding>,
) -> Option<(Finding, Outcome)> {
    if existing.is_some_and(|e| c.notified_at <= e.last_seen) {
        return None;
    }
    let now = Utc::now();
    let minutes = i64::try_from(app.config.events.config.repeat_minutes).unwrap_or(i64::MAX);
    let window = Duration::try_minutes(minutes).unwrap_or(Duration::MAX);
    let posted_recently = |state: &str| {
        existing.is_some_and(|e| {
            e.last_posted.as_deref() == Some(state)
                && e.last_posted_at.is_some_and(|at| now - at < window)
        })
    };
    let was_open = match existing {
        Some(e) => e.is_open(),
        // Opened before iamdesk listened: Config says what it was.
        None => c.old_compliance.as_deref() == Some(NON_COMPLIANT),
    };
    let (posted_state, wanted) = if c.compliance == NON_COMPLIANT {
        (NON_COMPLIANT, Outcome::Alerted)
    } else if closes(&c.compliance) && was_open {
        (COMPLIANT, Outcome::Resolved)
    } else {
        ("", Outcome::Recorded)
    };
    let outcome = match wanted {
        Outcome::Recorded => Outcome::Recorded,
        _ if posted_recently(posted_state) => Outcome::Repeat,
        _ if !posting_configured(app) => Outcome::Recorded,
        other => other,
    };
    let mut f = match existing {
        Some(e) => Finding {
            version: e.version + 1,
            ..e.clone()
        },
        None => Finding {
            key: key.to_string(),
            rule: c.rule.clone(),
            account_id: c.account_id.clone(),
            region: c.region.clone(),
            resource_type: c.resource_type.clone(),
            resource_id: c.resource_id.clone(),
            compliance: c.compliance.clone(),
            since: c.recorded_at,
            last_seen: c.notified_at,
            last_posted_at: None,
            last_posted: None,
            version: 1,
        },
    };
    // Insufficient data says nothing new about the resource: only remember we saw it.
    if c.compliance == NON_COMPLIANT || closes(&c.compliance) {
        if existing.is_some_and(|e| e.compliance != c.compliance) {
            f.since = c.recorded_at;
        }
        f.compliance = c.compliance.clone();
    }
    f.last_seen = c.notified_at;
    if matches!(outcome, Outcome::Alerted | Outcome::Resolved) {
        f.last_posted_at = Some(now);
        f.last_posted = Some(posted_state.to_string());
    }
    Some((f, outcome))
}

/// The outbox message for `c`: an alert, or resolved.
fn message(app: &App, c: &ComplianceChange, key: &str, resolved: bool) -> OutboxMessage {
    let account_name = account_name(app, &c.account_id);
    let link = link(app, c);
    let text = FindingText {
        rule: &c.rule,
        account_id: &c.account_id,
        account_name: account_name.as_deref(),
        resource_type: &c.resource_type,
        resource_id: &c.resource_id,
        region: &c.region,
        link: link.as_deref(),
    };
    let body = if resolved {
        text.resolved()
    } else {
        text.alert()
    };
    OutboxMessage::new(
        "slack",
        json!({"subject": text.subject(resolved), "finding": key, "body": body}),
    )
}

pub fn account_name(app: &App, account_id: &str) -> Option<String> {
    app.config
        .account_ids_to_name
        .get(account_id)
        .cloned()
        .or_else(|| {
            app.resources
                .accounts()
                .into_iter()
                .find(|(id, _)| id == account_id)
                .map(|(_, name)| name)
        })
        .filter(|n| !n.is_empty())
}

/// The resource's place in iamdesk, when iamdesk knows it: a role's page, or the policy search
/// for a user (Config names IAM resources by their unique id, e.g. `AROA...`).
pub fn link(app: &App, c: &ComplianceChange) -> Option<String> {
    let kind = match c.resource_type.as_str() {
        "AWS::IAM::Role" => ResourceKind::Role,
        "AWS::IAM::User" => ResourceKind::User,
        _ => return None,
    };
    let snapshots = app.resources.snapshots();
    let snap = snapshots.iter().find(|s| s.account_id == c.account_id)?;
    let p = snap.principals.iter().find(|p| {
        p.kind == kind && (p.id == c.resource_id || p.name.eq_ignore_ascii_case(&c.resource_id))
    })?;
    let base = app.config.url.trim_end_matches('/');
    Some(match kind {
        ResourceKind::Role => format!(
            "{base}/policies/edit/{}/iamrole/{}",
            p.account_id,
            urlencoding::encode(&p.name)
        ),
        _ => format!(
            "{base}/policies?q={}&account={}",
            urlencoding::encode(&p.name),
            p.account_id
        ),
    })
}
