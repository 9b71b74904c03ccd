//! Right-sizing (issue 21): what each role is allowed but never uses, and a reviewed request to
//! take it away.
//!
//! - [`usage`]: IAM Access Advisor per role, on its own schedule (`rightsize.refresh_hours`).
//! - [`analysis`]: pure decision of what is unused and how to remove it.
//! - here: a role's [`Report`] (role page, `GET /api/v2/roles/{account}/{name}/rightsize`),
//!   [`propose`] (an ordinary request, validated, diffed, reviewed and applied like any other:
//!   nothing is removed without approval), [`rollback`] (files the inverse request from the
//!   documents pinned at approval) and the [`fleet`] ranking.
//!
//! Pinning: filing a proposal appends a `rightsize.proposed` audit event to the new request
//! holding every document the proposal replaces or deletes and every policy it detaches (what
//! the reviewer reads the proposal against). Approving it pins again, **at approval**: right
//! before anything is applied, [`pin_at_approval`] reads the role fresh from AWS and appends a
//! `rightsize.pinned` event with the document each changed inline policy had then and whether
//! each detached policy was attached. Rollback restores that state, so a statement added to
//! the policy between filing and approval comes back too. What is applied is untouched: the
//! pin only reads. If AWS cannot be read, nothing is applied and the approver is told to retry.
//! The audit log is append-only, so neither pin can change.

pub mod analysis;
pub mod calls;
pub mod usage;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::App;
use crate::error::AppError;
use crate::requests::lifecycle::Actor;
use crate::requests::model::{AttachAction, ChangeDraft, RequestDraft};
use crate::requests::{Change, create};
use crate::resources::model::Principal;
use crate::store::{AuditEvent, PageRequest, RequestFilter, RequestStatus};
use analysis::{Analysis, Attached, Inputs, Removal, ServiceRow};

/// `rightsize.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RightsizeConfig {
    /// How often each role's Access Advisor report is renewed.
    pub refresh_hours: u64,
    /// A service not used for this long is proposed for removal.
    pub unused_days: u64,
    /// Services (`sqs`) or actions (`sqs:SendMessage`) never proposed for removal.
    pub keep: Vec<String>,
    /// Access Advisor jobs running at once in one account.
    pub concurrency_per_account: usize,
}

impl Default for RightsizeConfig {
    fn default() -> Self {
        RightsizeConfig {
            refresh_hours: 24,
            unused_days: 90,
            keep: vec![],
            concurrency_per_account: 4,
        }
    }
}

/// Audit action that pins a proposal's previous documents.
pub const PROPOSED: &str = "rightsize.proposed";
/// Audit action that pins, at approval, what AWS held right before the proposal was applied.
pub const PINNED: &str = "rightsize.pinned";

/// What AWS held, at approval, of one thing a right-size request changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Held {
    /// The inline policy's document (`None`: the role had no such policy).
    Inline {
        role_arn: String,
        policy_name: String,
        previous: Option<serde_json::Value>,
    },
    /// Whether the managed policy was attached.
    Managed {
        role_arn: String,
        arn: String,
        attached: bool,
    },
}

/// Step 2 of approving a right-size request (called by `requests::lifecycle::approve` before
/// its first change is applied): pin what AWS holds now (see the module doc). Other requests,
/// and a retry after part of the request was applied, are left alone. `Err` is said to the
/// approver; nothing has been applied then.
pub async fn pin_at_approval(
    app: &App,
    request: &crate::store::PolicyRequest,
    actor: &str,
) -> Result<(), String> {
    if !request.justification.starts_with(MARK)
        || request
            .results
            .iter()
            .any(|r| r.status == crate::store::ChangeStatus::Applied)
    {
        return Ok(());
    }
    let mut roles: BTreeMap<String, Option<Principal>> = BTreeMap::new();
    let mut held = Vec::new();
    for change in request.changes.iter() {
        let target = change.target();
        let key = target.to_string();
        if !roles.contains_key(&key) {
            let fresh = app
                .cloud
                .fetch_role(target.account().as_str(), target.name())
                .await
                .map_err(|e| {
                    format!(
                        "Cannot read {key} to pin its policies before the right-size change; \
                         nothing was applied, try approving again: {e}"
                    )
                })?;
            roles.insert(key.clone(), fresh);
        }
        let role = roles.get(&key).and_then(Option::as_ref);
        match change {
            Change::InlinePolicy(p) => held.push(Held::Inline {
                role_arn: key,
                policy_name: p.policy_name.to_string(),
                previous: role.and_then(|r| {
                    r.inline_policies
                        .iter()
                        .find(|i| i.name == p.policy_name.as_str())
                        .map(|i| i.document.clone())
                }),
            }),
            Change::ManagedPolicy(m) => held.push(Held::Managed {
                role_arn: key,
                arn: m.arn.as_str().to_string(),
                attached: role
                    .is_some_and(|r| r.managed_policies.iter().any(|a| a.arn == m.arn.as_str())),
            }),
            _ => {}
        }
    }
    app.store
        .append_audit(&AuditEvent::new(
            actor,
            PINNED,
            Some(&request.id),
            json!({ "held": held }),
        ))
        .await
        .map_err(|e| {
            format!(
                "Cannot record the right-size pin; nothing was applied, try approving again: {e}"
            )
        })?;
    Ok(())
}
/// The justification of every proposal starts with this.
pub const MARK: &str = "Right-size:";

/// What the pin of a proposal holds (`rightsize.proposed` detail).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pin {
    role_arn: String,
    removed_services: Vec<String>,
    #[serde(default)]
    removed_actions: Vec<String>,
    removals: Vec<Removal>,
}

/// A right-size request of the role, for the role page's rollback buttons.
#[derive(Debug, Clone, Serialize)]
pub struct PastProposal {
    pub id: String,
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
}

/// Everything the role page and the API show about one role.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub account_id: String,
    pub role_name: String,
    pub role_arn: String,
    pub unused_days: u64,
    /// How far back Access Advisor looks.
    pub tracking_days: i64,
    pub role_created_at: Option<DateTime<Utc>>,
    pub role_age_days: Option<i64>,
    /// Days of this role Access Advisor can have seen: its age, at most the tracking period.
    pub observable_days: Option<i64>,
    pub usage_fetched_at: Option<DateTime<Utc>>,
    pub usage_attempted_at: Option<DateTime<Utc>>,
    pub usage_error: Option<String>,
    pub services: Vec<ServiceRow>,
    /// Services the proposal takes away.
    pub removable: Vec<String>,
    /// Actions of used services the proposal takes away (`s3:PutObject`).
    pub removable_actions: Vec<String>,
    pub removals: Vec<Removal>,
    pub notes: Vec<String>,
    /// The justification a proposal is filed with.
    pub justification: String,
    /// Right-size requests filed for this role, newest first.
    pub proposals: Vec<PastProposal>,
}

impl Report {
    /// Younger than the unused period: Access Advisor cannot have seen a whole period yet.
    pub fn young(&self) -> bool {
        self.role_age_days
            .is_some_and(|age| age < self.unused_days as i64)
    }

    /// For the template: a service's last use as a date, or "never".
    pub fn last_used(row: &ServiceRow) -> String {
        row.last_authenticated
            .map_or_else(|| "never".into(), |t| t.format("%Y-%m-%d").to_string())
    }
}

/// The usage refresh's view of the portal.
pub fn usage_deps(app: &App) -> usage::Deps {
    usage::Deps {
        cloud: app.cloud.clone(),
        cache: app.cache.clone(),
        resources: app.resources.clone(),
        config: app.config.rightsize.clone(),
    }
}

/// When each service was last granted to each role by an approved iamdesk request (role ARN,
/// lower case → service → time), from `requests`: those of one role
/// ([`crate::store::request_index::requests_of_principal`]) or of one account.
fn granted_by(
    app: &App,
    requests: &[crate::store::PolicyRequest],
) -> BTreeMap<String, BTreeMap<String, DateTime<Utc>>> {
    let since = Utc::now() - Duration::days(app.config.rightsize.unused_days as i64);
    let catalogue = crate::iam_actions::services();
    let mut out: BTreeMap<String, BTreeMap<String, DateTime<Utc>>> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.status == RequestStatus::Approved)
    {
        let at = r
            .approvals
            .iter()
            .map(|a| a.at)
            .max()
            .unwrap_or(r.updated_at);
        if at < since {
            continue;
        }
        for c in r.changes.iter() {
            let docs = granting_documents(app, c);
            let role = out
                .entry(c.target().to_string().to_lowercase())
                .or_default();
            for doc in docs {
                for s in analysis::allowed_services(&doc, &catalogue) {
                    let slot = role.entry(s).or_insert(at);
                    *slot = (*slot).max(at);
                }
            }
        }
    }
    out
}

/// The approved requests of one account (the fleet ranking), from the account's posting list.
async fn approved_in(
    app: &App,
    account_id: &str,
) -> Result<Vec<crate::store::PolicyRequest>, AppError> {
    let filter = RequestFilter {
        status: Some(RequestStatus::Approved),
        account: Some(account_id.to_string()),
        ..RequestFilter::default()
    };
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    let mut out = Vec::new();
    loop {
        let found = crate::store::search_requests(app.store.as_ref(), &filter, &page, &|_| {
            crate::requests::risk::Level::Low
        })
        .await?;
        out.extend(found.items);
        match found.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The policy documents an approved change gave its role.
fn granting_documents(app: &App, change: &Change) -> Vec<serde_json::Value> {
    use crate::requests::model::InlineEdit;
    match change {
        Change::InlinePolicy(p) => match &p.edit {
            InlineEdit::Put(d) => vec![d.as_value().clone()],
            InlineEdit::Delete => vec![],
        },
        Change::ManagedPolicy(m) if m.action == AttachAction::Attach => app
            .resources
            .managed_policy_document(m.arn.as_str())
            .into_iter()
            .collect(),
        Change::CreateRole(c) => c
            .all_inline_policies()
            .iter()
            .map(|p| p.policy_document.as_value().clone())
            .collect(),
        _ => vec![],
    }
}

/// The right-size requests of one role, newest first (of `requests`, the role's own).
fn past_proposals(role: &Principal, requests: &[crate::store::PolicyRequest]) -> Vec<PastProposal> {
    requests
        .iter()
        .filter(|r| r.justification.starts_with(MARK))
        .filter(|r| {
            r.changes
                .iter()
                .any(|c| c.target().to_string().eq_ignore_ascii_case(&role.arn))
        })
        .take(50)
        .map(|r| PastProposal {
            id: r.id.clone(),
            status: r.status,
            created_at: r.created_at,
        })
        .collect()
}

fn attached(app: &App, role: &Principal) -> Vec<Attached> {
    role.managed_policies
        .iter()
        .map(|m| Attached {
            arn: m.arn.clone(),
            document: app.resources.managed_policy_document(&m.arn),
        })
        .collect()
}

/// Analyse one role with what is known of it.
fn analyse_role(
    app: &App,
    role: &Principal,
    usage: Option<&usage::RoleUsage>,
    granted: BTreeMap<String, DateTime<Utc>>,
    cloudtrail: BTreeMap<String, u64>,
    now: DateTime<Utc>,
) -> Analysis {
    let catalogue = crate::iam_actions::services();
    let inputs = Inputs {
        role,
        managed: attached(app, role),
        usage: usage
            .filter(|u| u.fetched_at.is_some())
            .map(|u| u.services.as_slice()),
        cloudtrail,
        granted,
        keep: &app.config.rightsize.keep,
        unused_days: app.config.rightsize.unused_days as i64,
        now,
    };
    analysis::analyse(&inputs, &catalogue)
}

fn justification(report: &Report) -> String {
    let last: Vec<String> = report
        .services
        .iter()
        .filter(|s| report.removable.contains(&s.namespace))
        .map(|s| format!("{} (last used: {})", s.namespace, Report::last_used(s)))
        .collect();
    let age = match (report.role_age_days, report.observable_days) {
        (Some(age), Some(seen)) if age < report.unused_days as i64 => format!(
            " The role is only {age} days old: Access Advisor has observed it for {seen} days, \
             less than the {} days asked for; the reviewer decides.",
            report.unused_days
        ),
        (Some(age), Some(seen)) => format!(
            " The role is {age} days old; Access Advisor has observed it for {seen} days (it \
             tracks at most {} days).",
            report.tracking_days
        ),
        _ => " The role's age is unknown.".into(),
    };
    let when = report.usage_fetched_at.map_or_else(
        || "unknown".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    let mut what: Vec<String> = report.removable.clone();
    what.extend(report.removable_actions.iter().cloned());
    let mut evidence = last;
    if !report.removable_actions.is_empty() {
        evidence.push(format!(
            "{} never used within the period although their services are (Access Advisor \
             tracks them at action level)",
            report.removable_actions.join(", ")
        ));
    }
    let notes: String = report.notes.iter().map(|n| format!(" {n}")).collect();
    format!(
        "{MARK} remove {} from {}: not used for at least {} days according to IAM Access \
         Advisor (report of {when}): {}.{age}{notes}",
        what.join(", "),
        report.role_arn,
        report.unused_days,
        evidence.join("; "),
    )
}

/// The right-size report of one role as of the last sync and usage refresh.
pub async fn report(app: &App, account_id: &str, name: &str) -> Result<Report, AppError> {
    let (_, role) = app.resources.role(account_id, name).ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no role '{name}' in account {account_id} (as of the last sync)."
        ))
    })?;
    let usage = usage::load(app.cache.as_ref(), account_id).await;
    let role_usage = usage.role(&role.name).cloned();
    // The role's own requests only: the report costs what this role was asked for, not the
    // account's history.
    let of_role =
        crate::store::request_index::requests_of_principal(app.store.as_ref(), &role.arn).await?;
    let granted = granted_by(app, &of_role)
        .remove(&role.arn.to_lowercase())
        .unwrap_or_default();
    let now = Utc::now();
    let since = now - Duration::days(app.config.rightsize.unused_days as i64);
    let cloudtrail = calls::load(app.cache.as_ref(), account_id)
        .await
        .since(&role.name, since);
    let found = analyse_role(app, &role, role_usage.as_ref(), granted, cloudtrail, now);
    let age = role.created_at.map(|c| (now - c).num_days());
    let mut report = Report {
        account_id: role.account_id.clone(),
        role_name: role.name.clone(),
        role_arn: role.arn.clone(),
        unused_days: app.config.rightsize.unused_days,
        tracking_days: analysis::TRACKING_DAYS,
        role_created_at: role.created_at,
        role_age_days: age,
        observable_days: age.map(|a| a.min(analysis::TRACKING_DAYS)),
        usage_fetched_at: role_usage.as_ref().and_then(|u| u.fetched_at),
        usage_attempted_at: role_usage.as_ref().and_then(|u| u.attempted_at),
        usage_error: role_usage.and_then(|u| u.error),
        services: found.services,
        removable: found.removable,
        removable_actions: found.removable_actions,
        removals: found.removals,
        notes: found.notes,
        justification: String::new(),
        proposals: past_proposals(&role, &of_role),
    };
    report.justification = justification(&report);
    Ok(report)
}

/// File the role's right-size proposal as an ordinary pending request; 409 when there is
/// nothing to remove.
pub async fn propose(
    app: &App,
    actor: &Actor,
    account_id: &str,
    name: &str,
) -> Result<create::Created, AppError> {
    let report = report(app, account_id, name).await?;
    if report.removals.is_empty() {
        return Err(AppError::Conflict(format!(
            "Nothing to remove from {}: every service it is allowed was used within {} days, \
             is kept, was granted recently, or has no Access Advisor data yet.",
            report.role_arn, report.unused_days
        )));
    }
    let arn = &report.role_arn;
    let changes = report
        .removals
        .iter()
        .map(|r| match r {
            Removal::RewriteInline {
                policy_name,
                document,
                ..
            } => ChangeDraft::inline_put(arn, policy_name, document.clone()),
            Removal::DeleteInline { policy_name, .. } => {
                ChangeDraft::inline_delete(arn, policy_name)
            }
            Removal::DetachManaged { arn: policy } => {
                ChangeDraft::managed(arn, false, AttachAction::Detach, policy)
            }
        })
        .collect();
    let draft = RequestDraft {
        justification: report.justification.clone(),
        changes,
    };
    let created = create::create(app, actor, &draft.to_body()).await?;
    if let Some(id) = &created.request_id {
        let pin = Pin {
            role_arn: arn.clone(),
            removed_services: report.removable.clone(),
            removed_actions: report.removable_actions.clone(),
            removals: report.removals.clone(),
        };
        let detail = serde_json::to_value(&pin)
            .map_err(|e| AppError::Internal(format!("cannot encode the right-size pin: {e}")))?;
        app.store
            .append_audit(&AuditEvent::new(&actor.email, PROPOSED, Some(id), detail))
            .await?;
    }
    Ok(created)
}

/// File the inverse of an approved right-size request: every document it replaced or deleted
/// put back as pinned, every policy it detached attached again.
pub async fn rollback(
    app: &App,
    actor: &Actor,
    request_id: &str,
) -> Result<create::Created, AppError> {
    let request = app
        .store
        .get_request(request_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no request {request_id}.")))?;
    let audit = app
        .store
        .list_audit(
            Some(request_id),
            &PageRequest::first(PageRequest::MAX_LIMIT),
        )
        .await?;
    let pin: Pin = audit
        .items
        .iter()
        .find(|e| e.action == PROPOSED)
        .and_then(|e| serde_json::from_value(e.detail.clone()).ok())
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "Request {request_id} is not a right-size proposal; only those can be rolled back here."
            ))
        })?;
    if request.status != RequestStatus::Approved {
        return Err(AppError::Conflict(format!(
            "Request {request_id} is {}: only an approved right-size request changed anything to roll back.",
            request.status
        )));
    }
    let arn = &pin.role_arn;
    // The newest pin at approval (a pin is only taken while nothing is applied yet, so the
    // newest is the state right before the change was applied); before pins at approval
    // existed, the documents pinned at filing.
    let at_approval: Option<Vec<Held>> = audit
        .items
        .iter()
        .filter(|e| e.action == PINNED)
        .max_by_key(|e| e.at)
        .and_then(|e| serde_json::from_value(e.detail.get("held")?.clone()).ok());
    let changes: Vec<ChangeDraft> = match at_approval {
        Some(held) => held
            .into_iter()
            .filter_map(|h| match h {
                Held::Inline {
                    role_arn,
                    policy_name,
                    previous: Some(doc),
                } => Some(ChangeDraft::inline_put(&role_arn, &policy_name, doc)),
                Held::Inline {
                    role_arn,
                    policy_name,
                    previous: None,
                } => Some(ChangeDraft::inline_delete(&role_arn, &policy_name)),
                Held::Managed {
                    role_arn,
                    arn,
                    attached: true,
                } => Some(ChangeDraft::managed(
                    &role_arn,
                    false,
                    AttachAction::Attach,
                    &arn,
                )),
                Held::Managed { .. } => None,
            })
            .collect(),
        None => pin
            .removals
            .iter()
            .map(|r| match r {
                Removal::RewriteInline {
                    policy_name,
                    previous,
                    ..
                }
                | Removal::DeleteInline {
                    policy_name,
                    previous,
                } => ChangeDraft::inline_put(arn, policy_name, previous.clone()),
                Removal::DetachManaged { arn: policy } => {
                    ChangeDraft::managed(arn, false, AttachAction::Attach, policy)
                }
            })
            .collect(),
    };
    let draft = RequestDraft {
        justification: format!(
            "Roll back right-size request {request_id}: give {arn} back {} as it was before.",
            pin.removed_services
                .iter()
                .chain(&pin.removed_actions)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        changes,
    };
    let created = create::create(app, actor, &draft.to_body()).await?;
    app.store
        .append_audit(&AuditEvent::new(
            &actor.email,
            "rightsize.rollback",
            created.request_id.as_deref(),
            json!({"rolls_back": request_id, "role_arn": arn}),
        ))
        .await?;
    Ok(created)
}

/// One role in the fleet ranking.
#[derive(Debug, Clone, Serialize)]
pub struct FleetRow {
    pub account_id: String,
    pub account_name: String,
    pub role_name: String,
    pub unused: Vec<String>,
    pub used: usize,
    pub usage_fetched_at: Option<DateTime<Utc>>,
    pub usage_error: Option<String>,
}

/// One page of the fleet ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub rows: Vec<FleetRow>,
    pub page: usize,
    pub pages: usize,
    pub total_roles: usize,
    pub total_unused: usize,
}

pub const FLEET_PAGE: usize = 50;

/// Roles ranked by how many services they could lose, most first (`account` filters by id).
pub async fn fleet(app: &App, account: Option<&str>, page: usize) -> Result<Fleet, AppError> {
    let now = Utc::now();
    let mut rows = Vec::new();
    for snapshot in app.resources.snapshots().iter() {
        if account.is_some_and(|a| a != snapshot.account_id) {
            continue;
        }
        let usage = usage::load(app.cache.as_ref(), &snapshot.account_id).await;
        let mut granted = granted_by(app, &approved_in(app, &snapshot.account_id).await?);
        let seen = calls::load(app.cache.as_ref(), &snapshot.account_id).await;
        let since = now - Duration::days(app.config.rightsize.unused_days as i64);
        for role in snapshot
            .principals
            .iter()
            .filter(|p| p.kind == crate::resources::model::ResourceKind::Role)
        {
            let role_usage = usage.role(&role.name);
            let g = granted.remove(&role.arn.to_lowercase()).unwrap_or_default();
            let a = analyse_role(app, role, role_usage, g, seen.since(&role.name, since), now);
            rows.push(FleetRow {
                account_id: snapshot.account_id.clone(),
                account_name: snapshot.account_name.clone(),
                role_name: role.name.clone(),
                used: a
                    .services
                    .iter()
                    .filter(|s| s.verdict == analysis::Verdict::Used)
                    .count(),
                unused: a.removable,
                usage_fetched_at: role_usage.and_then(|u| u.fetched_at),
                usage_error: role_usage.and_then(|u| u.error.clone()),
            });
        }
    }
    rows.sort_by(|a, b| {
        b.unused
            .len()
            .cmp(&a.unused.len())
            .then_with(|| a.account_id.cmp(&b.account_id))
            .then_with(|| a.role_name.to_lowercase().cmp(&b.role_name.to_lowercase()))
    });
    let total_roles = rows.len();
    let total_unused = rows.iter().map(|r| r.unused.len()).sum();
    let pages = total_roles.div_ceil(FLEET_PAGE).max(1);
    let page = page.clamp(1, pages);
    let rows = rows
        .into_iter()
        .skip((page - 1) * FLEET_PAGE)
        .take(FLEET_PAGE)
        .collect();
    Ok(Fleet {
        rows,
        page,
        pages,
        total_roles,
        total_unused,
    })
}
