//! One batch of message bodies, from a queue receive or one HTTPS delivery: parse each, act, and
//! say per message whether it was handled (delete it), could not be parsed (leave it for the
//! dead-letter queue) or failed for now (retry later).
//!
//! Re-reads are done once per resource per batch, however many events name it; a message whose
//! re-read failed is not handled, so it comes back and the re-read is tried again.

use std::collections::BTreeMap;

use super::changes::{self, Target};
use super::model::{Denial, OutsideChange};
use super::parse::{self, Event, Parsed};
use super::{compliance, denies, refresh};
use crate::app::App;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    Unparseable(String),
    /// Worth retrying (a backend or AWS failed).
    Failed(String),
}

pub async fn handle_batch(app: &App, bodies: &[String]) -> Vec<Outcome> {
    let stats = &app.events.stats;
    let synced = crate::resources::sync::configured_accounts(&app.config);
    let mut outcomes = vec![Outcome::Handled; bodies.len()];
    let mut refreshes: BTreeMap<Target, Vec<usize>> = BTreeMap::new();
    let mut history: Vec<(OutsideChange, usize)> = vec![];
    let mut denials: Vec<Denial> = vec![];
    let mut denied_in: Vec<usize> = vec![];
    // Successful calls of role sessions, for right-sizing (`src/rightsize/calls.rs`).
    let mut role_calls: Vec<crate::rightsize::calls::Seen> = vec![];

    for (i, body) in bodies.iter().enumerate() {
        stats.count(&stats.received);
        match parse::parse(body) {
            Err(e) => {
                let preview: String = body.chars().take(200).collect();
                tracing::warn!(error = %e, body = %preview, "event message cannot be parsed");
                outcomes[i] = Outcome::Unparseable(e.to_string());
            }
            Ok(Parsed::Ignored(why)) => tracing::debug!(why, "event message ignored"),
            Ok(Parsed::Event(Event::Compliance(c))) => {
                if let Err(e) = compliance::handle(app, &c).await {
                    outcomes[i] = Outcome::Failed(format!("AWS Config change: {e}"));
                }
            }
            Ok(Parsed::Event(Event::ApiCall(call))) => {
                role_calls.extend(crate::rightsize::calls::seen(&synced, &call));
                if let Some(plan) = changes::plan(&app.config, &synced, &call) {
                    refreshes.entry(plan.target).or_default().push(i);
                    if let Some(h) = plan.history {
                        history.push((h, i));
                    }
                } else if let Some(d) = denies::denial(&synced, &call) {
                    denies::merge(&mut denials, d);
                    denied_in.push(i);
                } else {
                    tracing::debug!(source = %call.source, name = %call.name, "API call ignored");
                }
            }
        }
    }

    for (target, messages) in refreshes {
        let result = match &target {
            Target::Role { account_id, name } => refresh::role(app, account_id, name)
                .await
                .map(|exists| {
                    tracing::info!(account = %account_id, role = %name, exists, "role re-read after an IAM change");
                }),
            Target::Account(account_id) => refresh::account(app, account_id).await.map(|()| {
                tracing::info!(account = %account_id, "account re-read after an IAM change");
            }),
        };
        if let Err(e) = result {
            for i in messages {
                outcomes[i] = Outcome::Failed(format!("re-reading {target:?}: {e}"));
            }
        }
    }
    crate::rightsize::calls::record(app.cache.as_ref(), &role_calls).await;
    for (change, i) in history {
        if let Err(e) = app.store.add_outside_change(&change).await {
            outcomes[i] = Outcome::Failed(format!("recording the change: {e}"));
        }
    }
    if !denials.is_empty()
        && let Err(e) = app.store.record_denials(&denials).await
    {
        for i in denied_in {
            outcomes[i] = Outcome::Failed(format!("recording denials: {e}"));
        }
    }

    for o in &outcomes {
        match o {
            Outcome::Handled => stats.count(&stats.handled),
            Outcome::Unparseable(e) => {
                stats.count(&stats.unparseable);
                stats.error(e);
            }
            Outcome::Failed(e) => {
                tracing::warn!(error = %e, "event message not handled; it will be retried");
                stats.count(&stats.failed);
                stats.error(e);
            }
        }
    }
    outcomes
}
