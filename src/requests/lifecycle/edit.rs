//! `update_change`: the requester or an administrator replaces one pending change's policy
//! document. The whole request is checked again as a new one would be; the edit is recorded
//! (who, which change, the version it made), everyone else on the request is told, and from then
//! on an approval must name a version at least as new and the editor may not decide on it.

use chrono::Utc;
use serde_json::{Value, json};

use super::{Actor, conflict, expect_status, not_while_applying, save};
use crate::app::App;
use crate::error::AppError;
use crate::notify::Event;
use crate::requests::model::{Change, InlineEdit};
use crate::requests::validate::{self, DocKind};
use crate::store::{ChangeEdit, ChangeResult, ChangeStatus, PolicyRequest, RequestStatus};

pub(super) async fn update_change(
    app: &App,
    current: PolicyRequest,
    actor: &Actor,
    change_id: &str,
    document: Value,
) -> Result<PolicyRequest, AppError> {
    if !current.requester.eq_ignore_ascii_case(&actor.email) && !actor.is_admin {
        return Err(AppError::Forbidden(
            "Only the requester or an administrator can edit a request's changes.".into(),
        ));
    }
    expect_status(&current, RequestStatus::Pending, "edited")?;
    not_while_applying(&current)?;
    let index = current
        .changes
        .iter()
        .position(|c| c.id() == change_id)
        .ok_or_else(|| {
            AppError::NotFound(format!("this request has no change with id '{change_id}'"))
        })?;
    if current
        .results
        .get(index)
        .is_some_and(|r| r.status == ChangeStatus::Applied)
    {
        return Err(conflict(
            "This change is already applied in AWS; it can no longer be edited.",
        ));
    }
    let field = format!("changes[{index}].policy.policy_document");
    let invalid = |problems: Vec<validate::Problem>| {
        AppError::Invalid(problems.into_iter().map(|p| (p.field, p.message)).collect())
    };
    let mut changes = current.changes.changes.clone();
    match &mut changes[index] {
        Change::InlinePolicy(c) if matches!(c.edit, InlineEdit::Put(_)) => {
            let doc =
                validate::parse_document(&document, DocKind::Identity, &field).map_err(invalid)?;
            c.edit = InlineEdit::Put(doc);
        }
        Change::AssumeRolePolicy(c) => {
            c.document =
                validate::parse_document(&document, DocKind::Trust, &field).map_err(invalid)?;
        }
        Change::Resource(c) if c.editable_document().is_some() => {
            let doc = validate::parse_resource_document(c, &document, &field).map_err(invalid)?;
            c.set_document(doc);
        }
        Change::CreateRole(c) if c.trust.is_some() => {
            c.trust =
                Some(validate::parse_document(&document, DocKind::Trust, &field).map_err(invalid)?);
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "a {} change has no policy document to edit; cancel the request and ask again",
                other.kind().as_str()
            )));
        }
    }
    let synced = crate::requests::synced::AppSynced::new(app);
    let limits = crate::requests::synced::limits(app);
    let (changes, warnings) =
        validate::check_changes(changes, &synced, &limits).map_err(invalid)?;

    let mut next = current.clone();
    next.changes.changes = changes;
    next.warnings = warnings.iter().map(ToString::to_string).collect();
    if let Some(r) = next.results.get_mut(index) {
        *r = ChangeResult {
            status: ChangeStatus::Pending,
            message: None,
            at: None,
        };
    }
    next.edits.push(ChangeEdit {
        change_id: change_id.to_string(),
        by: actor.email.clone(),
        at: Utc::now(),
        version: current.version + 1,
    });
    save(
        app,
        next,
        actor,
        "request.change_updated",
        json!({"change_id": change_id, "change": index, "version": current.version + 1}),
        Some(Event::Updated {
            editor: actor.email.clone(),
        }),
    )
    .await
}
