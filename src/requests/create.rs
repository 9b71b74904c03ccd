//! Creating a request: validate everything first (nothing is stored on any problem), then one
//! write of the request with its audit event; admins may ask for it to be applied at once.

use chrono::Utc;
use serde_json::{Value, json};

use super::lifecycle::{self, Actor};
use super::validate::{Limits, validate_request};
use crate::app::App;
use crate::error::AppError;
use crate::store::{AuditEvent, PolicyRequest, RequestStatus};

/// What `POST /api/v2/request` answers (ConsoleMe v2 shape plus the warnings).
#[derive(Debug, serde::Serialize)]
pub struct Created {
    pub request_created: bool,
    pub request_id: String,
    pub request_url: String,
    pub errors: usize,
    pub warnings: Vec<String>,
    pub status: RequestStatus,
}

pub async fn create(app: &App, actor: &Actor, body: &Value) -> Result<Created, AppError> {
    let resources = &app.resources;
    let lookup = |arn: &str| {
        super::ops::parse_role_arn(arn)
            .and_then(|(account, name)| resources.role(&account, &name))
            .map(|(_, role)| role)
    };
    let validated = validate_request(body, &lookup, &Limits::default()).map_err(|problems| {
        AppError::Invalid(problems.into_iter().map(|p| (p.field, p.message)).collect())
    })?;
    let warnings: Vec<String> = validated
        .warnings
        .iter()
        .map(|w| format!("change {}: {}", w.change + 1, w.message))
        .collect();
    let auto_approve = body
        .get("admin_auto_approve")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if auto_approve && !actor.is_admin {
        return Err(AppError::Forbidden(
            "admin_auto_approve is for administrators only; leave it out to ask for a review."
                .into(),
        ));
    }
    let now = Utc::now();
    let request = PolicyRequest {
        id: uuid::Uuid::new_v4().to_string(),
        status: RequestStatus::Pending,
        requester: actor.email.clone(),
        justification: body
            .get("justification")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string(),
        changes: json!({"changes": body.pointer("/changes/changes").cloned().unwrap_or(json!([]))}),
        comments: vec![],
        created_at: now,
        updated_at: now,
        version: 1,
        results: vec![],
        applying: None,
        warnings: warnings.clone(),
    };
    let event = AuditEvent::new(
        &actor.email,
        "request.created",
        Some(&request.id),
        json!({"changes": validated.changes.len(), "warnings": warnings.len(),
               "admin_auto_approve": auto_approve}),
    );
    app.store.create_request(&request, &event, &[]).await?;
    let mut status = RequestStatus::Pending;
    if auto_approve {
        let done = lifecycle::approve_now(app, &request.id, actor).await?;
        status = done.status;
    }
    Ok(Created {
        request_created: true,
        request_url: format!("/policies/request/{}", request.id),
        request_id: request.id,
        errors: 0,
        warnings,
        status,
    })
}
