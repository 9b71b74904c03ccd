//! The request page (`/policies/request/{id}`): each change with its diffs and the exact AWS
//! calls approving it makes, the history, comments, and the forms that act on it.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use serde::Deserialize;

use super::extract::Path;
use super::identity::CurrentUser;
use super::view::{Layout, Page, When, human_time};
use crate::app::AppState;
use crate::error::AppError;
use crate::requests::imported::Imported;
use crate::requests::lifecycle::{self, Command};
use crate::requests::review;
use crate::store::{AuditEvent, ChangeStatus, Comment, PageRequest, RequestStatus};

/// One diff of a change (a new role has several: trust, each inline policy, managed, tags).
pub struct SectionView {
    label: String,
    /// Escaped HTML from `src/requests/diff.rs`.
    diff_html: String,
}

pub struct ChangeView {
    index: usize,
    summary: String,
    /// The role it changes, its page (when synced) and its account "name (id)".
    role_arn: String,
    role_url: Option<String>,
    account: String,
    sections: Vec<SectionView>,
    /// The AWS calls approving this change makes, as people read them.
    calls: Vec<String>,
    risk: &'static str,
    risk_reasons: Vec<String>,
    /// "expires 2026-12-01 12:00 UTC (in 3 h)".
    expires: Option<String>,
    /// The role page with this grant's form filled in again, to ask for more time.
    extend_url: Option<String>,
    /// What became of an expiring grant (expired, drift, gone).
    grant_outcome: Option<String>,
    status: &'static str,
    message: String,
    /// (change id, pretty document) when the viewer may edit this change's document.
    edit: Option<(String, String)>,
}

/// Where an imported request came from, and the changes iamdesk keeps read-only
/// (`src/requests/imported.rs`).
pub struct ImportedView {
    consoleme_status: String,
    reviewer: String,
    imported: String,
    imported_by: String,
    read_only: Vec<ReadOnlyView>,
    /// Read-only changes ConsoleMe never applied: they block approval.
    open: usize,
}

pub struct ReadOnlyView {
    /// 1-based, in ConsoleMe's list.
    position: usize,
    change_type: String,
    principal: String,
    consoleme_status: String,
    reason: String,
    open: bool,
    /// As ConsoleMe stored it: coloured, escaped JSON (`src/web/jsonview.rs`).
    raw_html: String,
}

impl From<&Imported> for ImportedView {
    fn from(i: &Imported) -> Self {
        ImportedView {
            consoleme_status: i.consoleme_status.clone(),
            reviewer: i.reviewer.clone().unwrap_or_default(),
            imported: human_time(i.imported_at),
            imported_by: i.imported_by.clone(),
            read_only: i
                .read_only
                .iter()
                .map(|c| ReadOnlyView {
                    position: c.position + 1,
                    change_type: c.change_type.clone(),
                    principal: c.principal.clone().unwrap_or_else(|| "no principal".into()),
                    consoleme_status: c.consoleme_status.clone(),
                    reason: c.reason.clone(),
                    open: c.is_open(),
                    raw_html: super::jsonview::plain(&c.raw),
                })
                .collect(),
            open: i.open_changes().count(),
        }
    }
}

/// One line of the request's timeline: an audit event, or a comment with its text.
pub struct HistoryRow {
    actor: String,
    what: String,
    /// `created`, `approved`, `rejected`, `failed` or `other`: the timeline's dot.
    kind: &'static str,
    when: When,
    /// A comment's words (a rejection's reason is the comment that follows it).
    text: String,
    sort_at: chrono::DateTime<chrono::Utc>,
}

impl From<&Comment> for HistoryRow {
    fn from(c: &Comment) -> Self {
        HistoryRow {
            actor: c.author.clone(),
            what: "commented".into(),
            kind: "other",
            when: When::of(c.created_at),
            text: c.text.clone(),
            sort_at: c.created_at,
        }
    }
}

impl From<&AuditEvent> for HistoryRow {
    fn from(e: &AuditEvent) -> Self {
        let d = &e.detail;
        let what = match e.action.as_str() {
            "request.created" => "created the request".to_string(),
            "request.commented" => "commented".to_string(),
            "request.approval_started" => "approved; applying in AWS".to_string(),
            "request.approval_recorded" => format!(
                "approved ({})",
                d["approvals"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default()
            ),
            "request.approved" => format!(
                "applied every change ({} AWS calls): approved",
                d["calls"].as_u64().unwrap_or_default()
            ),
            "request.apply_failed" => format!(
                "could not apply change {}: {}",
                d["failed_change"].as_u64().unwrap_or_default() + 1,
                d["error"].as_str().unwrap_or_default()
            ),
            "request.rejected" => "rejected the request".to_string(),
            "request.cancelled" => "cancelled the request".to_string(),
            "request.reopened" => "moved the request back to pending".to_string(),
            "request.break_glass_reviewed" => "reviewed the break-glass request".to_string(),
            "request.break_glass_revoked" => {
                "revoked the break-glass grants early and reviewed the request".to_string()
            }
            "request.change_updated" => format!(
                "edited change {} (now version {})",
                d["change"].as_u64().unwrap_or_default() + 1,
                d["version"].as_u64().unwrap_or_default()
            ),
            "request.imported" => format!(
                "{} the request from ConsoleMe, where {} asked for it on {} and it was {}",
                if d["update"].as_bool() == Some(true) {
                    "updated"
                } else {
                    "imported"
                },
                d["requester"].as_str().unwrap_or("somebody"),
                d["requested_at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| human_time(t.with_timezone(&chrono::Utc)))
                    .unwrap_or_default(),
                d["consoleme_status"].as_str().unwrap_or("unknown")
            ),
            "request.self_approval_refused" => format!(
                "was refused: {}",
                d["reason"]
                    .as_str()
                    .unwrap_or("a decision on their own request")
            ),
            other => other.to_string(),
        };
        HistoryRow {
            actor: e.actor.clone(),
            what,
            kind: match e.action.as_str() {
                "request.created" => "created",
                "request.approved" => "approved",
                "request.rejected" | "request.cancelled" => "rejected",
                "request.apply_failed" | "request.self_approval_refused" => "failed",
                _ => "other",
            },
            when: When::of(e.at),
            text: String::new(),
            sort_at: e.at,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "request.html")]
pub struct RequestPage {
    layout: Layout,
    id: String,
    /// A break-glass request: its reason, whether it still needs review, and whether the viewer
    /// may review it.
    break_glass: Option<(String, Option<String>)>,
    can_review_break_glass: bool,
    changes: Vec<ChangeView>,
    can_approve: bool,
    can_reject: bool,
    can_cancel: bool,
    can_reopen: bool,
    /// An approved right-size request: its rollback can be filed from here.
    can_roll_back: bool,
    self_request: bool,
    /// The viewer edited a change, so another administrator decides.
    editor: bool,
    applying: Option<String>,
    warnings: Vec<String>,
    short_id: String,
    status: &'static str,
    requester: String,
    created: String,
    created_when: When,
    updated_when: When,
    version: u64,
    justification: String,
    history: Vec<HistoryRow>,
    /// The approval rule and how far it is: ("1 of 2 from security", approvers).
    approval_rule: String,
    approval_progress: Vec<(String, String)>,
    still_needed: Vec<String>,
    imported: Option<ImportedView>,
    /// Imported with read-only changes ConsoleMe never applied: approval is refused.
    blocked: bool,
}

pub async fn request_detail(
    user: CurrentUser,
    State(state): State<AppState>,
    Page(layout): Page,
    Path(id): Path<String>,
) -> Result<RequestPage, AppError> {
    let r =
        state.store.get_request(&id).await?.ok_or_else(|| {
            AppError::NotFound(format!("There is no policy request with id '{id}'."))
        })?;
    let pending = r.status == RequestStatus::Pending;
    let own = r.requester.eq_ignore_ascii_case(&user.email);
    let editor = r
        .edits
        .iter()
        .any(|e| e.by.eq_ignore_ascii_case(&user.email));
    let may_edit = pending && r.applying.is_none() && (own || user.is_admin);
    let now = chrono::Utc::now();
    let changes =
        r.changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let risk = crate::requests::synced::risk_of(&state, c);
                let result = r.results.get(i);
                let applied = result.is_some_and(|x| x.status == ChangeStatus::Applied);
                let (summary, sections) = review::describe(&state.resources, c);
                let target = c.target();
                let account_id = target.account().as_str();
                let account_name = state
                    .resources
                    .accounts()
                    .into_iter()
                    .find(|(id, _)| id == account_id)
                    .map(|(_, n)| n)
                    .unwrap_or_default();
                ChangeView {
                    role_arn: target.to_string(),
                    role_url: match target.as_resource() {
                        Some(r) => Some(r.page_url()),
                        None => state.resources.role(account_id, target.name()).map(|_| {
                            format!("/policies/edit/{account_id}/iamrole/{}", target.name())
                        }),
                    },
                    account: if account_name.is_empty() {
                        account_id.to_string()
                    } else {
                        format!("{account_name} ({account_id})")
                    },
                    index: i + 1,
                    summary,
                    sections: sections
                        .into_iter()
                        .map(|s| SectionView {
                            label: s.label,
                            diff_html: s.diff.to_html(),
                        })
                        .collect(),
                    calls: c.calls().iter().map(review::describe_call).collect(),
                    risk: risk.level.as_str(),
                    risk_reasons: risk.reasons.iter().map(|x| x.message.clone()).collect(),
                    expires: c.expires().map(|e| expiry_text(e.at(), now)),
                    extend_url: (applied && c.expires().is_some())
                        .then(|| extend_url(&r.id, c))
                        .flatten(),
                    grant_outcome: r
                        .grant_outcomes
                        .iter()
                        .find(|o| o.change_id == c.id())
                        .map(|o| format!("{}: {}", o.outcome, o.detail)),
                    status: match result.map(|x| x.status) {
                        Some(ChangeStatus::Applied) => "applied",
                        Some(ChangeStatus::Failed) => "failed",
                        _ => "not applied",
                    },
                    message: result.and_then(|x| x.message.clone()).unwrap_or_default(),
                    edit: (may_edit && !applied)
                        .then(|| review::editable_text(c).map(|t| (c.id().to_string(), t)))
                        .flatten(),
                }
            })
            .collect();
    // The audit events (comments with their words instead of "commented"), oldest first.
    let mut history: Vec<HistoryRow> = state
        .store
        .list_audit(Some(&r.id), &PageRequest::first(200))
        .await
        .map(|p| {
            p.items
                .iter()
                // Comments are rows of their own (an imported one too).
                .filter(|e| {
                    !matches!(
                        e.action.as_str(),
                        "request.commented" | "request.comment_imported"
                    )
                })
                .map(HistoryRow::from)
                .collect()
        })
        .unwrap_or_default();
    history.extend(r.comments.iter().map(HistoryRow::from));
    history.sort_by_key(|h| h.sort_at);
    let self_allowed = state.config.policies.allow_self_approval;
    let imported = r.imported.as_ref().map(ImportedView::from);
    let blocked = pending && imported.as_ref().is_some_and(|i| i.open > 0);
    let approval = lifecycle::approval_state(&state, &r);
    let may_approve = lifecycle::may_approve(&state, &r, &user.actor());
    let can_review_break_glass = user.is_admin
        && !own
        && r.break_glass
            .as_ref()
            .is_some_and(|b| b.reviewed_by.is_none());
    Ok(RequestPage {
        break_glass: r
            .break_glass
            .as_ref()
            .map(|b| (b.reason.clone(), b.reviewed_by.clone())),
        can_review_break_glass,
        layout: layout.nav("requests"),
        id: r.id.clone(),
        changes,
        can_approve: pending && may_approve && !blocked,
        can_reject: pending && !own && !editor && (user.is_admin || may_approve),
        can_cancel: pending && own,
        can_reopen: user.is_admin
            && matches!(r.status, RequestStatus::Rejected | RequestStatus::Cancelled),
        can_roll_back: r.status == RequestStatus::Approved
            && r.justification.starts_with(crate::rightsize::MARK),
        self_request: own && pending && user.is_admin && !self_allowed,
        editor: editor && pending && user.is_admin,
        applying: r.applying.as_ref().map(|c| c.by.clone()),
        warnings: r.warnings.clone(),
        short_id: r.id.chars().take(8).collect(),
        status: r.status.as_str(),
        requester: r.requester.clone(),
        created: human_time(r.created_at),
        created_when: When::of(r.created_at),
        updated_when: When::of(r.updated_at),
        version: r.version,
        justification: r.justification.clone(),
        history,
        approval_rule: approval.rule.clone(),
        approval_progress: approval
            .requirements
            .iter()
            .map(|q| (q.describe(), q.approved_by.join(", ")))
            .collect(),
        still_needed: if pending {
            approval.still_needed()
        } else {
            vec![]
        },
        imported,
        blocked,
    })
}

/// The role page, its form filled in with `change` again (a new request for more time).
fn extend_url(request_id: &str, change: &crate::requests::Change) -> Option<String> {
    use crate::requests::Change;
    use crate::requests::model::{InlineEdit, TagEdit};
    let enc = |v: &str| urlencoding::encode(v).into_owned();
    let target = change.target();
    let mut q = vec![(
        "justification",
        format!("More time for the grant of request {request_id}"),
    )];
    match change {
        Change::InlinePolicy(c) => {
            let InlineEdit::Put(doc) = &c.edit else {
                return None;
            };
            q.push(("kind", "inline_policy:attach".into()));
            q.push(("policy_name", c.policy_name.to_string()));
            q.push((
                "policy_document",
                serde_json::to_string_pretty(doc.as_value()).unwrap_or_default(),
            ));
        }
        Change::ManagedPolicy(c) => {
            q.push(("kind", "managed_policy:attach".into()));
            q.push(("arn", c.arn.to_string()));
        }
        Change::ResourceTag(c) => {
            let (TagEdit::Create(v) | TagEdit::Update(v)) = &c.edit else {
                return None;
            };
            q.push(("kind", "resource_tag:update".into()));
            q.push(("tag_key", c.key.clone()));
            q.push(("tag_value", v.clone()));
        }
        _ => return None,
    }
    let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    Some(format!(
        "/policies/edit/{}/iamrole/{}?{}#request-change",
        target.account(),
        enc(target.name()),
        query.join("&")
    ))
}

/// `expires 2026-12-01 12:00 UTC (in 3 h)`, or `expired … (2 d ago)`.
pub fn expiry_text(
    at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let when = at.format("%Y-%m-%d %H:%M UTC");
    let d = at - now;
    let span = |d: chrono::Duration| {
        let m = d.num_minutes().abs();
        if m < 90 {
            format!("{m} min")
        } else if m < 48 * 60 {
            format!("{} h", m / 60)
        } else {
            format!("{} d", m / (24 * 60))
        }
    };
    if d > chrono::Duration::zero() {
        format!("expires {when} (in {})", span(d))
    } else {
        format!("expired {when} ({} ago)", span(d))
    }
}

#[derive(Debug, Deserialize)]
pub struct ActForm {
    command: String,
    comment_text: Option<String>,
    confirm: Option<String>,
    change_id: Option<String>,
    policy_document: Option<String>,
    /// The version the page showed: approve and reject bind to it.
    version: Option<String>,
    /// Why the request is rejected: added as a comment right after the rejection.
    reason: Option<String>,
}

impl ActForm {
    fn command(&self) -> Result<Command, AppError> {
        let version = || -> Result<Option<u64>, AppError> {
            let v = self.version.as_deref().map(str::trim).unwrap_or_default();
            if v.is_empty() {
                return Err(AppError::BadRequest(
                    "The form has no version: reload the request page and try again.".into(),
                ));
            }
            v.parse().map(Some).map_err(|_| {
                AppError::BadRequest("The form's version is not a number: reload the page.".into())
            })
        };
        let confirmed = self.confirm.as_deref() == Some("yes");
        let need_confirm = || {
            AppError::BadRequest(
                "Tick the confirmation box to approve or reject: it says you reviewed the \
                 changes."
                    .into(),
            )
        };
        Ok(match self.command.as_str() {
            "add_comment" => lifecycle::comment(self.comment_text.as_deref().unwrap_or_default())?,
            "approve_request" if confirmed => Command::Approve {
                version: version()?,
            },
            "reject_request" if confirmed => Command::Reject {
                version: version()?,
            },
            "approve_request" | "reject_request" => return Err(need_confirm()),
            "cancel_request" => Command::Cancel,
            "mark_reviewed" => Command::MarkReviewed,
            "revoke_now" if confirmed => Command::RevokeNow,
            "revoke_now" => {
                return Err(AppError::BadRequest(
                    "Tick the confirmation box to take the break-glass grants away now.".into(),
                ));
            }
            "move_back_to_pending" if confirmed => Command::MoveBackToPending,
            "move_back_to_pending" => {
                return Err(AppError::BadRequest(
                    "Tick the confirmation box to move the request back to pending: it can then \
                     be approved and applied."
                        .into(),
                ));
            }
            "update_change" => Command::UpdateChange {
                change_id: self
                    .change_id
                    .clone()
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| AppError::BadRequest("The form names no change.".into()))?,
                document: lifecycle::document(
                    self.policy_document
                        .clone()
                        .map(serde_json::Value::String)
                        .as_ref(),
                )?,
            },
            other => {
                return Err(AppError::BadRequest(format!(
                    "'{other}' is not something this page can do."
                )));
            }
        })
    }
}

/// The request page's forms: one POST per action, then back to the page.
pub async fn act_on_request(
    user: CurrentUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ActForm>,
) -> Result<axum::response::Redirect, AppError> {
    let command = form.command()?;
    // A rejection says why (the page's form asks); the reason is the comment that follows it.
    let reason = match command {
        Command::Reject { .. } => {
            let reason = form.reason.as_deref().map(str::trim).unwrap_or_default();
            if reason.is_empty() {
                return Err(AppError::BadRequest(
                    "Say why you reject the request (the requester reads it): fill in the \
                     reason box."
                        .into(),
                ));
            }
            Some(lifecycle::comment(&format!("Rejected: {reason}"))?)
        }
        _ => None,
    };
    let actor = user.actor();
    lifecycle::modify(&state, &id, &actor, command).await?;
    if let Some(comment) = reason
        && let Err(e) = lifecycle::modify(&state, &id, &actor, comment).await
    {
        // The rejection stands; only its reason is missing. Say so instead of hiding it.
        tracing::warn!(error = %e, request = %id, "rejected, but the reason was not saved");
        return Err(AppError::Conflict(format!(
            "The request is rejected, but its reason could not be added as a comment ({}). Add \
             it as a comment on the request.",
            e.public_message()
        )));
    }
    Ok(axum::response::Redirect::to(&format!(
        "/policies/request/{id}"
    )))
}
