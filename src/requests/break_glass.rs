//! Break-glass: a member of `groups.can_break_glass` applies their own temporary grant at once,
//! with a reason. Every administrator is alerted by mail and Slack (`BREAK-GLASS` in the
//! subject) when it is made, the request waits in the "needs review" queue of `/requests` until
//! an administrator marks it reviewed or revokes it early, and nobody may use it more than
//! `break_glass.max_per_day` times in 24 hours. Only temporary grants qualify: inline policies,
//! managed policy attachments and tags, each expiring within `break_glass.max_hours`.

use chrono::{Duration, Utc};
use serde_json::json;

use super::lifecycle::Actor;
use super::model::{Change, ChangeList};
use crate::app::App;
use crate::error::AppError;
use crate::store::{AuditEvent, PageRequest, RequestFilter};

/// May `actor` apply `changes` at once under break-glass? 403 (not a member: audited), 400
/// (not temporary grants, or too long), 429 (over the daily cap).
pub async fn may_break_glass(
    app: &App,
    actor: &Actor,
    changes: &ChangeList,
    reason: &str,
) -> Result<(), AppError> {
    let config = &app.config;
    let member = config
        .groups
        .can_break_glass
        .iter()
        .any(|g| crate::auth::access::names(g, &actor.email, &actor.groups));
    if !member {
        let event = AuditEvent::new(
            &actor.email,
            "break_glass.refused",
            None,
            json!({"reason": reason, "why": "not in groups.can_break_glass"}),
        );
        if let Err(e) = app.store.append_audit(&event).await {
            tracing::warn!(error = %e, "cannot audit a refused break-glass");
        }
        return Err(AppError::Forbidden(
            "Break-glass is only for members of groups.can_break_glass. Ask for a review \
             instead (leave break_glass out)."
                .into(),
        ));
    }
    let max = Duration::hours(i64::from(config.break_glass.max_hours.max(1)));
    let latest = Utc::now() + max;
    let mut problems = vec![];
    for (i, c) in changes.iter().enumerate() {
        let temporary = matches!(
            c,
            Change::InlinePolicy(_) | Change::ManagedPolicy(_) | Change::ResourceTag(_)
        ) && c.grants();
        if !temporary {
            problems.push((
                format!("changes[{i}]"),
                "break-glass applies temporary grants only: inline policies, managed policy \
                 attachments and tags, each with an expiration_date"
                    .to_string(),
            ));
            continue;
        }
        match c.expires() {
            Some(e) if e.at() <= latest => {}
            _ => problems.push((
                format!("changes[{i}].expiration_date"),
                format!(
                    "a break-glass grant must expire within {} hours (break_glass.max_hours)",
                    config.break_glass.max_hours.max(1)
                ),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Invalid(problems));
    }
    let mine = app
        .store
        .list_requests(
            &RequestFilter {
                requester: Some(actor.email.clone()),
                ..Default::default()
            },
            &PageRequest::first(200),
        )
        .await?;
    let day_ago = Utc::now() - Duration::hours(24);
    let used = mine
        .items
        .iter()
        .filter(|r| r.break_glass.is_some() && r.created_at > day_ago)
        .count();
    if used >= config.break_glass.max_per_day {
        return Err(AppError::TooManyRequests(
            format!(
                "You used break-glass {used} times in the last 24 hours, the most allowed \
                 (break_glass.max_per_day). Ask for a review instead."
            ),
            3600,
        ));
    }
    Ok(())
}
