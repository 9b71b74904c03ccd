//! Events from AWS: AWS Config compliance changes to Slack, IAM changes made outside iamdesk,
//! and access denials turned into one-click requests. Replaces the Config → SNS → Lambda →
//! Slack pipeline of seed 002 and what ConsoleMe did with EventBridge rules.
//!
//! Where events come from:
//! - **Queues** (`events.queues`): SQS queues that Config's SNS topic, or an EventBridge rule,
//!   delivers to. [`consumer`] long-polls them on the leader replica only (the same cache lock
//!   mechanism as the sync, its own key), so each message is handled by one replica.
//! - **SNS over HTTPS** (`POST /api/v2/events/sns`): [`sns`] verifies every message (signature,
//!   certificate URL, topic) before anything is acted on. Any replica may receive these.
//!
//! Both hand message bodies to [`handle::handle_batch`], which parses them ([`parse`]: an SNS
//! envelope, raw or not, around a Config notification or an EventBridge event, or either bare)
//! and acts:
//! - [`compliance`]: a finding per rule and resource, written with its Slack message in one
//!   Store transaction under a version check, so two replicas (queue and HTTPS, or a redelivery)
//!   never post the same alert twice, and repeats within `events.config.repeat_minutes` are not
//!   posted at all.
//! - [`changes`]: CloudTrail write calls to IAM refresh the role (or the account, for users and
//!   policies) once per resource per batch, and are recorded as the role's history.
//! - [`denies`]: AccessDenied / UnauthorizedOperation for a role session is counted per role,
//!   action and resource; the role page offers the matching statement as a prefilled request.
//!
//! A message is deleted from its queue only once every part of it was handled. One that cannot
//! be parsed is counted, logged and hidden for `events.unparseable_retry_seconds`, so the
//! queue's redrive policy moves it to the dead-letter queue without a tight retry loop.

pub mod changes;
pub mod compliance;
pub mod consumer;
pub mod denies;
pub mod handle;
pub mod model;
pub mod parse;
pub mod refresh;
pub mod slack;
pub mod sns;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::EventsConfig;

/// What the event paths did since startup, shown on `/admin/findings`.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub unparseable: AtomicU64,
    pub failed: AtomicU64,
    /// HTTPS messages refused by verification.
    pub refused: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl Stats {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, error: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.chars().take(300).collect());
        }
    }

    pub fn snapshot(&self) -> StatsView {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsView {
            received: get(&self.received),
            handled: get(&self.handled),
            unparseable: get(&self.unparseable),
            failed: get(&self.failed),
            refused: get(&self.refused),
            last_error: self.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsView {
    pub received: u64,
    pub handled: u64,
    pub unparseable: u64,
    pub failed: u64,
    pub refused: u64,
    pub last_error: Option<String>,
}

/// The events part of [`crate::app::App`].
pub struct Events {
    pub stats: Stats,
    pub sns: sns::Verifier,
}

impl Events {
    pub fn new() -> Self {
        Events {
            stats: Stats::default(),
            sns: sns::Verifier::new(),
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

/// Startup checks of `events.*`: `Err((dotted key, what is wrong))`.
pub fn check_config(c: &EventsConfig) -> Result<(), (String, String)> {
    for q in &c.queues {
        if let Err(e) = consumer::QueueRef::parse(q) {
            return Err(("events.queues".into(), e));
        }
    }
    for t in &c.sns_topics {
        if sns::topic_region(t).is_none() {
            return Err((
                "events.sns_topics".into(),
                format!("'{t}' is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"),
            ));
        }
    }
    if c.wait_seconds > 20 {
        return Err((
            "events.wait_seconds".into(),
            format!(
                "{} is more than SQS allows: use 0 to 20 seconds",
                c.wait_seconds
            ),
        ));
    }
    if !(10..=43_200).contains(&c.unparseable_retry_seconds) {
        return Err((
            "events.unparseable_retry_seconds".into(),
            format!(
                "{} is outside 10 to 43200 seconds (SQS's visibility limit; less would retry \
                 garbage in a tight loop)",
                c.unparseable_retry_seconds
            ),
        ));
    }
    if c.denies.keep_days == 0 {
        return Err((
            "events.denies.keep_days".into(),
            "must be at least 1 day".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_name_the_key() {
        let mut c = EventsConfig::default();
        assert_eq!(check_config(&c), Ok(()));
        c.queues = vec!["not a queue".into()];
        assert_eq!(
            check_config(&c).map_err(|e| e.0),
            Err("events.queues".into())
        );
        c.queues = vec![
            "https://sqs.eu-west-1.amazonaws.com/123456789012/config-events".into(),
            "arn:aws:sqs:us-east-1:123456789012:iam-events".into(),
        ];
        assert_eq!(check_config(&c), Ok(()));
        c.sns_topics = vec!["arn:aws:sqs:us-east-1:123456789012:x".into()];
        assert_eq!(
            check_config(&c).map_err(|e| e.0),
            Err("events.sns_topics".into())
        );
        c.sns_topics = vec!["arn:aws:sns:us-east-1:123456789012:config".into()];
        c.unparseable_retry_seconds = 0;
        assert_eq!(
            check_config(&c).map_err(|e| e.0),
            Err("events.unparseable_retry_seconds".into())
        );
        c.unparseable_retry_seconds = 300;
        c.wait_seconds = 21;
        assert_eq!(
            check_config(&c).map_err(|e| e.0),
            Err("events.wait_seconds".into())
        );
    }
}
