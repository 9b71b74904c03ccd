//! Outbox delivery: SESv2 `SendEmail` and Slack incoming webhooks, with retries.
//!
//! A message is *claimed* before it is sent (one conditional write that counts the attempt and
//! pushes `next_attempt_at` out by the backoff), so two replicas never send it twice and a
//! process that dies mid-send retries it after the backoff. A failure is logged as one
//! structured error (ConsoleMe's fields: `to_user`, `region`, `sender`, `subject`) and never
//! touches the request whose event caused the message.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Email;
use crate::app::App;
use crate::requests::expiry::GRANT_CHANNEL;
use crate::store::{OutboxMessage, OutboxStatus, StoreError, StoreResult};

/// Messages looked at per pass.
const BATCH: usize = 100;
const MAX_BACKOFF_SECONDS: u64 = 3600;
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub failed: usize,
    pub dead: usize,
}

/// Whether this process can deliver on `channel` (email needs `ses.consoleme.sender`, Slack
/// needs `slack.notifications_enabled` and `slack.webhook_url`). Others stay in the outbox.
pub fn can_deliver(app: &App, channel: &str) -> bool {
    match channel {
        "email" => app.config.ses.consoleme.sender.is_some(),
        "slack" => app.config.slack.notifications_enabled && app.config.slack.webhook_url.is_some(),
        GRANT_CHANNEL => true,
        _ => false,
    }
}

/// Delay before attempt `attempts + 1`: `retry_seconds · 2^(attempts-1)`, at most an hour.
pub fn backoff(retry_seconds: u64, attempts: u32) -> chrono::Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(20);
    let secs = retry_seconds
        .max(1)
        .saturating_mul(factor)
        .min(MAX_BACKOFF_SECONDS);
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(3600))
}

/// Every channel the outbox carries: mail, Slack, and the grant jobs (expiries, reminders).
pub const CHANNELS: &[&str] = &["email", "slack", GRANT_CHANNEL];

/// Deliver every due message this process can deliver, channel by channel.
pub async fn deliver_due(app: &App) -> StoreResult<Pass> {
    let mut pass = Pass::default();
    for channel in CHANNELS.iter().filter(|c| can_deliver(app, c)) {
        let due = app.store.due_outbox(channel, app.now(), BATCH).await?;
        for m in due {
            match deliver_one(app, m).await? {
                Some(OutboxStatus::Sent) => pass.sent += 1,
                Some(OutboxStatus::Dead) => pass.dead += 1,
                Some(OutboxStatus::Pending) => pass.failed += 1,
                None => {}
            }
        }
    }
    Ok(pass)
}

/// Claim, send and record one message. `None` when another worker claimed it first.
pub async fn deliver_one(app: &App, mut m: OutboxMessage) -> StoreResult<Option<OutboxStatus>> {
    let now = app.now();
    m.attempts += 1;
    m.version += 1;
    m.next_attempt_at = now + backoff(app.config.outbox.retry_seconds, m.attempts);
    match app.store.update_outbox(&m).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    let result = match m.channel.as_str() {
        "email" => send_email(app, &m).await,
        "slack" => send_slack(app, &m).await,
        GRANT_CHANNEL => crate::requests::expiry::run_job(app, &m).await,
        other => Err(format!("unknown channel {other}")),
    };
    m.version += 1;
    match result {
        Ok(()) => {
            m.status = OutboxStatus::Sent;
            m.last_error = None;
        }
        Err(error) => {
            m.last_error = Some(error);
            if m.attempts >= app.config.outbox.max_attempts.max(1) {
                m.status = OutboxStatus::Dead;
            }
        }
    }
    match app.store.update_outbox(&m).await {
        Ok(()) => Ok(Some(m.status)),
        // Somebody (an admin's retry) changed it meanwhile: theirs stands.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn send_email(app: &App, m: &OutboxMessage) -> Result<(), String> {
    use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
    let config = &app.config;
    let email: Email = serde_json::from_value(m.payload.clone())
        .map_err(|e| format!("the stored email cannot be read: {e}"))?;
    let sender = config.ses.consoleme.sender.clone().unwrap_or_default();
    let content = |data: &str| {
        Content::builder()
            .data(data)
            .charset("UTF-8")
            .build()
            .map_err(|e| e.to_string())
    };
    let message = Message::builder()
        .subject(content(&email.subject)?)
        .body(
            Body::builder()
                .text(content(&email.text)?)
                .html(content(&email.html)?)
                .build(),
        )
        .build();
    let client = app
        .ses
        .get_or_init(|| crate::aws::sesv2_client(config))
        .await;
    let result = client
        .send_email()
        .from_email_address(&sender)
        .set_from_email_address_identity_arn(config.ses.arn.clone())
        .destination(
            Destination::builder()
                .set_to_addresses(Some(email.to.clone()))
                .build(),
        )
        .content(EmailContent::builder().simple(message).build())
        .send()
        .await;
    match result {
        Ok(_) => {
            tracing::info!(outbox_id = %m.id, request = %email.request_id, to = email.to.len(), "email sent");
            Ok(())
        }
        Err(e) => {
            let error = crate::aws::error_text(&e);
            tracing::error!(
                to_user = ?email.to,
                region = %config.ses.region,
                sender = %sender,
                subject = %email.subject,
                error = %error,
                outbox_id = %m.id,
                attempt = m.attempts,
                max_attempts = config.outbox.max_attempts,
                function = "iamdesk::notify::worker::send_email",
                "Exception sending email"
            );
            Err(error)
        }
    }
}

fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(SLACK_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

async fn send_slack(app: &App, m: &OutboxMessage) -> Result<(), String> {
    let Some(url) = app.config.slack.webhook_url.as_deref() else {
        return Err("slack.webhook_url is not set".into());
    };
    let body = m.payload.get("body").cloned().unwrap_or_default();
    // The webhook URL is a secret: errors are reported without it.
    let result = http().post(url).json(&body).send().await;
    let error = match result {
        Ok(resp) if resp.status().is_success() => {
            tracing::info!(outbox_id = %m.id, "slack message posted");
            return Ok(());
        }
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.trim().chars().take(200).collect();
            format!("Slack answered {status}: {text}")
        }
        Err(e) => format!("cannot reach the Slack webhook: {}", e.without_url()),
    };
    tracing::error!(
        outbox_id = %m.id,
        subject = m.payload.get("subject").and_then(|s| s.as_str()).unwrap_or_default(),
        error = %error,
        attempt = m.attempts,
        "Exception posting to Slack"
    );
    Err(error)
}

/// Reset a dead or pending message for immediate delivery (an admin's retry from
/// `/admin/outbox`), then try it once now when this process can deliver it.
pub async fn retry(app: &App, id: &str) -> Result<OutboxMessage, crate::error::AppError> {
    use crate::error::AppError;
    let mut m =
        app.store.get_outbox(id).await?.ok_or_else(|| {
            AppError::NotFound(format!("there is no outbox message with id '{id}'"))
        })?;
    if m.status == OutboxStatus::Sent {
        return Err(AppError::Conflict(
            "This message was already delivered; there is nothing to retry.".into(),
        ));
    }
    m.status = OutboxStatus::Pending;
    m.attempts = 0;
    m.next_attempt_at = Utc::now();
    m.version += 1;
    app.store.update_outbox(&m).await.map_err(|e| match e {
        StoreError::Conflict(_) => AppError::Conflict(
            "The worker is delivering this message right now; reload the outbox.".into(),
        ),
        other => other.into(),
    })?;
    if can_deliver(app, &m.channel) {
        deliver_one(app, m.clone()).await?;
    }
    Ok(app.store.get_outbox(id).await?.unwrap_or(m))
}

/// The background worker: a pass on every wake-up (new messages) and every `outbox.poll_seconds`.
pub async fn run(app: Arc<App>) {
    let poll = Duration::from_secs(app.config.outbox.poll_seconds.max(1));
    if !can_deliver(&app, "email") && !can_deliver(&app, "slack") {
        tracing::info!(
            "no ses.consoleme.sender and no Slack webhook: notifications stay in the outbox \
             (/admin/outbox); expiring grants are still taken away on time"
        );
    }
    let replica = uuid::Uuid::new_v4().to_string();
    let mut next_sweep = tokio::time::Instant::now();
    let mut next_purge = tokio::time::Instant::now();
    loop {
        // Finished outbox messages and ended tokens past their keep time, hourly (any replica:
        // the deletes are idempotent; DynamoDB does this itself by TTL).
        if tokio::time::Instant::now() >= next_purge {
            next_purge = tokio::time::Instant::now() + Duration::from_secs(3600);
            match app.store.purge_finished(app.now()).await {
                Ok(p) if p != crate::store::Purged::default() => {
                    tracing::info!(
                        outbox = p.outbox,
                        tokens = p.tokens,
                        "finished items removed"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot remove finished items"),
            }
        }
        // ConsoleMe's temporary policies: once a minute, by one replica.
        if app.config.policies.temp_policy_support && tokio::time::Instant::now() >= next_sweep {
            next_sweep = tokio::time::Instant::now() + Duration::from_secs(60);
            if let Ok(true) = app
                .cache
                .try_lock("grant-sweep", &replica, Duration::from_secs(55))
                .await
            {
                let n =
                    crate::requests::expiry::sweep_consoleme_temp_policies(&app, app.now()).await;
                if n > 0 {
                    tracing::info!(deleted = n, "expired ConsoleMe temporary policies removed");
                }
            }
        }
        // Approvals applied in AWS whose record did not land yet (Store throttled or down).
        if app
            .unrecorded
            .lock()
            .map(|q| !q.is_empty())
            .unwrap_or(false)
        {
            crate::requests::lifecycle::record_unrecorded(&app).await;
        }
        match deliver_due(&app).await {
            Ok(p) if p != Pass::default() => {
                tracing::debug!(
                    sent = p.sent,
                    failed = p.failed,
                    dead = p.dead,
                    "outbox pass"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
        }
        tokio::select! {
            _ = app.outbox_wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(30, 1).num_seconds(), 30);
        assert_eq!(backoff(30, 2).num_seconds(), 60);
        assert_eq!(backoff(30, 3).num_seconds(), 120);
        assert_eq!(backoff(30, 40).num_seconds(), 3600);
        assert_eq!(backoff(0, 1).num_seconds(), 1);
    }
}
