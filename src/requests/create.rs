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

/// Validate a request body against the synced roles: every problem with its field (400), or the
/// warnings to show reviewers.
pub fn validate(app: &App, body: &Value) -> Result<Vec<String>, AppError> {
    let resources = &app.resources;
    let lookup = |arn: &str| {
        super::ops::parse_role_arn(arn)
            .and_then(|(account, name)| resources.role(&account, &name))
            .map(|(_, role)| role)
    };
    let limits = Limits {
        max_managed_policies: app.config.policies.max_managed_policies.clamp(1, 1000),
        ..Limits::default()
    };
    let validated = validate_request(body, &lookup, &limits).map_err(|problems| {
        AppError::Invalid(problems.into_iter().map(|p| (p.field, p.message)).collect())
    })?;
    Ok(validated
        .warnings
        .iter()
        .map(|w| format!("change {}: {}", w.change + 1, w.message))
        .collect())
}

/// Give every change a stable `id` (for `update_change`) and pin what a clone copies: the source
/// role's trust policy, inline and managed policies, boundary and tags as synced right now go
/// under `resolved_clone`, so the reviewer approves exactly what will be created.
pub fn prepare_changes(app: &App, changes: &mut Value) {
    let Some(list) = changes.as_array_mut() else {
        return;
    };
    for change in list {
        let Some(obj) = change.as_object_mut() else {
            continue;
        };
        if !obj.get("id").is_some_and(Value::is_string) {
            obj.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        if obj.get("change_type").and_then(Value::as_str) != Some("create_role") {
            continue;
        }
        let Some(source) = obj
            .get("clone_from")
            .and_then(Value::as_str)
            .and_then(super::ops::parse_role_arn)
            .and_then(|(account, name)| app.resources.role(&account, &name))
            .map(|(_, role)| role)
        else {
            continue;
        };
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut resolved = serde_json::Map::new();
        resolved.insert("from".into(), json!(source.arn));
        if flag("copy_trust") {
            resolved.insert("trust_policy".into(), json!(source.trust_policy));
        }
        if flag("copy_inline") {
            let given: Vec<&str> = obj
                .get("inline_policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("policy_name").and_then(Value::as_str))
                .collect();
            let copied: Vec<Value> = source
                .inline_policies
                .iter()
                .filter(|p| !given.contains(&p.name.as_str()))
                .map(|p| json!({"policy_name": p.name, "policy_document": p.document}))
                .collect();
            resolved.insert("inline_policies".into(), json!(copied));
        }
        if flag("copy_managed") {
            let arns: Vec<&str> = source
                .managed_policies
                .iter()
                .map(|m| m.arn.as_str())
                .collect();
            resolved.insert("managed_policies".into(), json!(arns));
            if let Some(b) = &source.permissions_boundary {
                resolved.insert("permissions_boundary".into(), json!(b));
            }
        }
        if flag("copy_tags") {
            let tags: Vec<Value> = source
                .tags
                .iter()
                .map(|t| json!({"key": t.key, "value": t.value}))
                .collect();
            resolved.insert("tags".into(), json!(tags));
        }
        obj.insert("resolved_clone".into(), Value::Object(resolved));
    }
}

pub async fn create(app: &App, actor: &Actor, body: &Value) -> Result<Created, AppError> {
    let warnings = validate(app, body)?;
    let change_count = body
        .pointer("/changes/changes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut changes = body
        .pointer("/changes/changes")
        .cloned()
        .unwrap_or(json!([]));
    prepare_changes(app, &mut changes);
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
        changes: json!({ "changes": changes }),
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
        json!({"changes": change_count, "warnings": warnings.len(),
               "admin_auto_approve": auto_approve}),
    );
    let outbox = crate::notify::messages_for(
        &app.config,
        &request,
        &crate::notify::Event::Created,
        &actor.email,
    );
    app.store.create_request(&request, &event, &outbox).await?;
    if !outbox.is_empty() {
        app.outbox_wake.notify_one();
    }
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
