//! The queue consumer: every queue of `events.queues` long-polled by its own task, only on the
//! replica holding the events leader lock (the cache's `try_lock`, as the sync does, under its
//! own key so the two can live on different replicas).
//!
//! Leadership is renewed before every receive and held for [`LOCK_TTL`], longer than a receive
//! and its handling take, so a leader that dies hands over within a minute. Should two replicas
//! ever both believe they lead (a Redis outage), the worst is a message handled twice: every
//! handler is idempotent (findings are versioned, outside changes keyed by event id, a re-read
//! is a re-read); only a denial's count could be one too high.
//!
//! Per message: handled → deleted; unparseable → hidden for `events.unparseable_retry_seconds`
//! so the queue's redrive policy (`maxReceiveCount`) sends it to the dead-letter queue without a
//! tight loop; failed → left alone, the queue offers it again after its visibility timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

use super::handle::{Outcome, handle_batch};
use crate::app::App;

/// Key of the consumer's leader lock in the cache.
pub const LEADER_LOCK: &str = "events-leader";
pub const LOCK_TTL: Duration = Duration::from_secs(60);
/// Pause after a failed receive (bad queue URL, no permission, SQS unreachable).
const ERROR_PAUSE: Duration = Duration::from_secs(10);
/// Pause between polls when not long-polling, and between leadership checks of a follower.
const IDLE_PAUSE: Duration = Duration::from_secs(1);
const FOLLOWER_PAUSE: Duration = Duration::from_secs(5);

/// A queue as configured: its URL and region (from an ARN or an AWS queue URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub url: String,
    pub region: Option<String>,
}

impl QueueRef {
    /// `https://sqs.<region>.amazonaws.com/<account>/<name>` (or any http(s) URL with an
    /// account and a name, e.g. a local endpoint), or `arn:aws:sqs:<region>:<account>:<name>`.
    pub fn parse(raw: &str) -> Result<QueueRef, String> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("arn:aws:sqs:") {
            let parts: Vec<&str> = rest.split(':').collect();
            return match parts.as_slice() {
                [region, account, name]
                    if !region.is_empty() && is_account(account) && !name.is_empty() =>
                {
                    Ok(QueueRef {
                        url: format!("https://sqs.{region}.amazonaws.com/{account}/{name}"),
                        region: Some(region.to_string()),
                    })
                }
                _ => Err(format!(
                    "'{raw}' is not a queue ARN (arn:aws:sqs:<region>:<account>:<name>)"
                )),
            };
        }
        let bad = || {
            format!(
                "'{raw}' is neither a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>) \
                 nor a queue ARN"
            )
        };
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        match path.split('/').collect::<Vec<_>>().as_slice() {
            [account, name] if is_account(account) && !name.is_empty() => {}
            _ => return Err(bad()),
        }
        let region = host
            .strip_prefix("sqs.")
            .and_then(|h| h.strip_suffix(".amazonaws.com"))
            .map(str::to_string);
        Ok(QueueRef {
            url: raw.to_string(),
            region,
        })
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Start one consumer task per configured queue (none when `events.queues` is empty).
pub fn spawn(app: &Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let replica = uuid::Uuid::new_v4().to_string();
    let mut clients: HashMap<Option<String>, tokio::sync::OnceCell<aws_sdk_sqs::Client>> =
        HashMap::new();
    let queues: Vec<QueueRef> = app
        .config
        .events
        .queues
        .iter()
        .filter_map(|q| QueueRef::parse(q).ok())
        .collect();
    for q in &queues {
        clients.entry(q.region.clone()).or_default();
    }
    let clients = Arc::new(clients);
    queues
        .into_iter()
        .map(|q| {
            tracing::info!(queue = %q.url, "consuming AWS events");
            tokio::spawn(run(app.clone(), q, replica.clone(), clients.clone()))
        })
        .collect()
}

async fn client(app: &App, region: Option<&str>) -> aws_sdk_sqs::Client {
    let sdk = crate::aws::sdk_config(&app.config).await;
    let mut builder =
        aws_sdk_sqs::config::Builder::from(&sdk).interceptor(crate::telemetry::aws::CallMetrics);
    if let Some(r) = region {
        builder = builder.region(aws_config::Region::new(r.to_string()));
    }
    aws_sdk_sqs::Client::from_conf(builder.build())
}

async fn run(
    app: Arc<App>,
    queue: QueueRef,
    replica: String,
    clients: Arc<HashMap<Option<String>, tokio::sync::OnceCell<aws_sdk_sqs::Client>>>,
) {
    let Some(cell) = clients.get(&queue.region) else {
        return;
    };
    let sqs = cell
        .get_or_init(|| client(&app, queue.region.as_deref()))
        .await
        .clone();
    let mut leading = false;
    loop {
        match app.cache.try_lock(LEADER_LOCK, &replica, LOCK_TTL).await {
            Ok(true) => {
                if !leading {
                    tracing::info!(queue = %queue.url, "this replica consumes the event queues");
                    leading = true;
                }
            }
            Ok(false) => {
                leading = false;
                tokio::time::sleep(FOLLOWER_PAUSE).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the cache for the events lock; waiting");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        }
        match poll_once(&app, &sqs, &queue).await {
            Ok(0) if app.config.events.wait_seconds == 0 => tokio::time::sleep(IDLE_PAUSE).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(queue = %queue.url, error = %e, "cannot receive from the event queue");
                app.events.stats.error(&e);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// One receive of up to 10 messages, handled as one batch. Returns how many arrived.
pub async fn poll_once(
    app: &App,
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueRef,
) -> Result<usize, String> {
    let wait = i32::try_from(app.config.events.wait_seconds.min(20)).unwrap_or(20);
    let received = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .send()
        .await
        .map_err(|e| crate::aws::error_text(&e))?;
    let messages = received.messages();
    if messages.is_empty() {
        return Ok(0);
    }
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| m.body().unwrap_or_default().to_string())
        .collect();
    let outcomes = handle_batch(app, &bodies).await;
    let mut done = vec![];
    for (i, (m, outcome)) in messages.iter().zip(&outcomes).enumerate() {
        let Some(handle) = m.receipt_handle() else {
            continue;
        };
        match outcome {
            Outcome::Handled => done.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            Outcome::Unparseable(_) => {
                let hide = i32::try_from(app.config.events.unparseable_retry_seconds)
                    .unwrap_or(43_200)
                    .clamp(10, 43_200);
                if let Err(e) = sqs
                    .change_message_visibility()
                    .queue_url(&queue.url)
                    .receipt_handle(handle)
                    .visibility_timeout(hide)
                    .send()
                    .await
                {
                    tracing::warn!(error = %crate::aws::error_text(&e), "cannot hide an unparseable message");
                }
            }
            Outcome::Failed(_) => {}
        }
    }
    if !done.is_empty() {
        let deleted = sqs
            .delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(done))
            .send()
            .await
            .map_err(|e| crate::aws::error_text(&e))?;
        for failed in deleted.failed() {
            tracing::warn!(
                id = failed.id(),
                code = failed.code(),
                "a handled message could not be deleted; it will be handled again"
            );
        }
    }
    Ok(messages.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_by_url_or_arn() {
        assert_eq!(
            QueueRef::parse("arn:aws:sqs:eu-west-1:123456789012:iam-events"),
            Ok(QueueRef {
                url: "https://sqs.eu-west-1.amazonaws.com/123456789012/iam-events".into(),
                region: Some("eu-west-1".into())
            })
        );
        let q = QueueRef::parse("https://sqs.us-east-2.amazonaws.com/123456789012/c").expect("url");
        assert_eq!(q.region.as_deref(), Some("us-east-2"));
        let local = QueueRef::parse("http://127.0.0.1:5000/123456789012/c").expect("local");
        assert_eq!(local.region, None);
        for bad in [
            "queue",
            "https://sqs.us-east-1.amazonaws.com/",
            "https://sqs.us-east-1.amazonaws.com/12/c",
            "arn:aws:sqs:us-east-1:123:c",
            "ftp://x/123456789012/c",
        ] {
            assert!(QueueRef::parse(bad).is_err(), "{bad}");
        }
    }
}
