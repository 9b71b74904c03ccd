//! What a reviewer sees for each change: a summary, one diff per thing it changes (against the
//! role as last synced), and the exact IAM calls approving it makes ([`Change::calls`], the same
//! list `src/requests/lifecycle/approve.rs` executes).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diff::{Diff, diff_json, diff_text};
use super::model::{
    AttachAction, BoundaryEdit, Change, ChangeList, CreateRoleChange, InlineEdit, TagEdit,
};
use super::resource_change::{PolicyStep, ResourceChange, ResourceEdit, ResourceRef};
use super::risk::{Context, Risk, assess};
use crate::cloud::IamOp;
use crate::resources::model::{Principal, Resource};
use crate::resources::service::Resources;

/// The calls of one change, with its risk, for the API and the request page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub change_id: String,
    pub account_id: String,
    /// The role the calls change (a new role's ARN for `create_role`).
    pub role_arn: String,
    pub calls: Vec<IamOp>,
    pub risk: Risk,
    /// When the grant is taken away again (RFC 3339), if it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<super::model::Expiry>,
}

/// Every change's calls, in the order approval makes them.
pub fn plan(changes: &ChangeList, ctx: &Context<'_>) -> Vec<PlannedChange> {
    changes
        .iter()
        .map(|c| PlannedChange {
            change_id: c.id().to_string(),
            account_id: c.target().account().to_string(),
            role_arn: c.target().to_string(),
            calls: c.calls(),
            risk: assess(c, ctx),
            expires: c.expires(),
        })
        .collect()
}

/// One thing a change alters, with its diff.
#[derive(Debug, Clone)]
pub struct Section {
    pub label: String,
    pub diff: Diff,
}

/// A change's diffs as text, for the API's dry run and the CLI (the request page shows the
/// same [`sections`] as tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeDiff {
    pub change_id: String,
    /// One line saying what the change does ([`summary`]).
    pub summary: String,
    pub sections: Vec<TextSection>,
}

/// One [`Section`] as text: `+`/`-`/space lines (`Diff::to_text`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSection {
    pub label: String,
    pub added: usize,
    pub removed: usize,
    pub text: String,
}

/// Every change's diffs against the roles as last synced, as text.
pub fn diffs(changes: &ChangeList, resources: &Resources) -> Vec<ChangeDiff> {
    changes
        .iter()
        .map(|c| {
            let (summary, sections) = describe(resources, c);
            ChangeDiff {
                change_id: c.id().to_string(),
                summary,
                sections: sections
                    .into_iter()
                    .map(|s| TextSection {
                        text: s.diff.to_text(super::diff::DEFAULT_CONTEXT),
                        added: s.diff.added,
                        removed: s.diff.removed,
                        label: s.label,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The summary and diffs of one change against what is synced now: the role, or the bucket,
/// queue, topic or managed policy.
pub fn describe(resources: &Resources, change: &Change) -> (String, Vec<Section>) {
    if let Change::Resource(c) = change {
        let current = current_resource(resources, &c.resource);
        let has_policy = matches!(&current, Some(Resource::Service(s)) if s.policy.is_some());
        return (
            c.summary(has_policy),
            resource_sections(c, current.as_ref()),
        );
    }
    let current = current_role(resources, change);
    (
        summary(change, current.as_ref()),
        sections(change, current.as_ref()),
    )
}

/// The synced bucket, queue, topic or managed policy a change targets.
pub fn current_resource(resources: &Resources, r: &ResourceRef) -> Option<Resource> {
    let region = (!r.region.is_empty()).then_some(r.region.as_str());
    resources
        .resource(r.account.as_str(), r.kind, region, &r.name)
        .map(|(_, found)| found)
}

/// A resource change against the resource as last synced (`None`: not synced, or new).
fn resource_sections(c: &ResourceChange, current: Option<&Resource>) -> Vec<Section> {
    let service = match current {
        Some(Resource::Service(s)) => Some(s),
        _ => None,
    };
    let policy = match current {
        Some(Resource::Policy(p)) => Some(p),
        _ => None,
    };
    let label = c.resource.label();
    match &c.edit {
        ResourceEdit::Policy(doc) => vec![Section {
            label: format!("Resource policy of {label}"),
            diff: diff_json(
                service.and_then(|s| s.policy.as_ref()),
                doc.as_ref().map(|d| d.as_value()),
            ),
        }],
        ResourceEdit::Tag { key, edit, .. } => vec![Section {
            label: format!("Tags of {label}"),
            diff: tag_diff(service.map(|s| s.tags.as_slice()), key, edit),
        }],
        ResourceEdit::ManagedPolicy { document, step } => {
            let mut out = vec![Section {
                label: format!("Default version of {label}"),
                diff: diff_json(policy.map(|p| &p.document), Some(document.as_value())),
            }];
            if let PolicyStep::Publish { delete_first } = step {
                let before: Vec<String> = policy
                    .map(|p| {
                        p.versions
                            .iter()
                            .map(|v| {
                                let default = if v.is_default { " (default)" } else { "" };
                                format!("{}{default}", v.id)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut after: Vec<String> = before
                    .iter()
                    .filter(|v| Some(v.as_str()) != delete_first.as_deref())
                    .map(|v| v.trim_end_matches(" (default)").to_string())
                    .collect();
                after.insert(0, "new version (default)".into());
                out.push(Section {
                    label: format!("Versions of {label}"),
                    diff: diff_text(&before.join("\n"), &after.join("\n")),
                });
            }
            out
        }
    }
}

/// One line saying what the change does; `current` tells "add" from "replace".
pub fn summary(change: &Change, current: Option<&Principal>) -> String {
    let arn = change.target();
    match change {
        Change::InlinePolicy(c) => {
            let exists = current.is_some_and(|r| {
                r.inline_policies
                    .iter()
                    .any(|p| p.name == c.policy_name.as_str())
            });
            let verb = match (&c.edit, exists) {
                (InlineEdit::Put(_), true) => "replace",
                (InlineEdit::Put(_), false) => "add",
                (InlineEdit::Delete, _) => "delete",
            };
            format!("{verb} inline policy '{}' on {arn}", c.policy_name)
        }
        Change::ManagedPolicy(c) => match c.action {
            AttachAction::Attach => format!("attach managed policy {} to {arn}", c.arn),
            AttachAction::Detach => format!("detach managed policy {} from {arn}", c.arn),
        },
        Change::PermissionsBoundary(c) => match &c.edit {
            BoundaryEdit::Put(b) => {
                let verb = if current.is_some_and(|r| r.permissions_boundary.is_some()) {
                    "replace"
                } else {
                    "set"
                };
                format!("{verb} the permissions boundary of {arn} with {b}")
            }
            BoundaryEdit::Delete(_) => format!("remove the permissions boundary of {arn}"),
        },
        Change::AssumeRolePolicy(c) if c.autogenerated => format!(
            "replace the trust policy of {arn} (added by iamdesk so the cross-account grant works)"
        ),
        Change::AssumeRolePolicy(_) => format!("replace the trust policy of {arn}"),
        Change::ResourceTag(c) => match &c.edit {
            TagEdit::Create(v) => format!("add tag '{}' = '{v}' to {arn}", c.key),
            TagEdit::Update(v) => format!("set tag '{}' to '{v}' on {arn}", c.key),
            TagEdit::Delete => format!("delete tag '{}' from {arn}", c.key),
        },
        Change::CreateRole(c) => {
            let from = c
                .clone
                .as_ref()
                .map(|s| format!(", cloned from {}", s.from))
                .unwrap_or_default();
            format!(
                "create role {} in account {}{from}",
                c.role.name(),
                c.role.account()
            )
        }
        Change::Resource(c) => c.summary(false),
    }
}

/// The diffs of one change against the role as last synced (`None` for a role not synced).
pub fn sections(change: &Change, current: Option<&Principal>) -> Vec<Section> {
    let section = |label: String, diff: Diff| Section { label, diff };
    match change {
        Change::InlinePolicy(c) => {
            let before = current.and_then(|r| {
                r.inline_policies
                    .iter()
                    .find(|p| p.name == c.policy_name.as_str())
                    .map(|p| &p.document)
            });
            let after = match &c.edit {
                InlineEdit::Put(doc) => Some(doc.as_value()),
                InlineEdit::Delete => None,
            };
            vec![section(
                format!("Inline policy {}", c.policy_name),
                diff_json(before, after),
            )]
        }
        Change::AssumeRolePolicy(c) => vec![section(
            "Trust policy".into(),
            diff_json(
                current.and_then(|r| r.trust_policy.as_ref()),
                Some(c.document.as_value()),
            ),
        )],
        Change::ManagedPolicy(c) => {
            let before: Vec<String> = current
                .map(|r| r.managed_policies.iter().map(|m| m.arn.clone()).collect())
                .unwrap_or_default();
            let mut after = before.clone();
            let arn = c.arn.to_string();
            match c.action {
                AttachAction::Detach => after.retain(|a| *a != arn),
                AttachAction::Attach if !after.contains(&arn) => after.push(arn),
                AttachAction::Attach => {}
            }
            vec![section(
                "Managed policies".into(),
                diff_text(&lines(&before), &lines(&after)),
            )]
        }
        Change::PermissionsBoundary(c) => {
            let before = current
                .and_then(|r| r.permissions_boundary.clone())
                .unwrap_or_default();
            let after = match &c.edit {
                BoundaryEdit::Put(arn) => arn.to_string(),
                BoundaryEdit::Delete(_) => String::new(),
            };
            vec![section(
                "Permissions boundary".into(),
                diff_text(&before, &after),
            )]
        }
        Change::ResourceTag(c) => vec![section(
            "Tags".into(),
            tag_diff(current.map(|r| r.tags.as_slice()), &c.key, &c.edit),
        )],
        Change::CreateRole(c) => new_role_sections(c),
        Change::Resource(c) => resource_sections(c, None),
    }
}

/// A new role: everything it is created with, each part on its own, so nothing a clone copies
/// is approved unseen.
fn new_role_sections(c: &CreateRoleChange) -> Vec<Section> {
    let mut out = vec![Section {
        label: "Trust policy".into(),
        diff: diff_json(None, c.trust_policy().map(|d| d.as_value())),
    }];
    for p in c.all_inline_policies() {
        out.push(Section {
            label: format!("Inline policy {}", p.policy_name),
            diff: diff_json(None, Some(p.policy_document.as_value())),
        });
    }
    let managed: Vec<String> = c
        .managed_policies()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !managed.is_empty() {
        out.push(Section {
            label: "Managed policies".into(),
            diff: diff_text("", &lines(&managed)),
        });
    }
    if let Some(b) = c.permissions_boundary() {
        out.push(Section {
            label: "Permissions boundary".into(),
            diff: diff_text("", b.as_str()),
        });
    }
    let tags: Vec<String> = c
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect();
    if !tags.is_empty() {
        out.push(Section {
            label: "Tags".into(),
            diff: diff_text("", &lines(&tags)),
        });
    }
    out
}

/// Tags as `key=value` lines, before and after one tag change.
fn tag_diff(current: Option<&[crate::resources::model::Tag]>, key: &str, edit: &TagEdit) -> Diff {
    let before: Vec<String> = current
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect();
    let mut after: Vec<String> = before
        .iter()
        .filter(|t| t.split_once('=').map(|(k, _)| k) != Some(key))
        .cloned()
        .collect();
    if let TagEdit::Create(v) | TagEdit::Update(v) = edit {
        after.push(format!("{key}={v}"));
    }
    diff_text(&lines(&before), &lines(&after))
}

fn lines(items: &[String]) -> String {
    let mut sorted = items.to_vec();
    sorted.sort();
    sorted.join("\n")
}

/// One call as a line a person reads: `iam:PutRolePolicy role=app policy=read`.
pub fn describe_call(op: &IamOp) -> String {
    let detail = match op {
        IamOp::PutRolePolicy {
            role, policy_name, ..
        }
        | IamOp::DeleteRolePolicy { role, policy_name } => {
            format!("role={role} policy={policy_name}")
        }
        IamOp::AttachRolePolicy { role, policy_arn }
        | IamOp::DetachRolePolicy { role, policy_arn }
        | IamOp::PutRolePermissionsBoundary { role, policy_arn } => {
            format!("role={role} arn={policy_arn}")
        }
        IamOp::DeleteRolePermissionsBoundary { role }
        | IamOp::UpdateAssumeRolePolicy { role, .. } => {
            format!("role={role}")
        }
        IamOp::TagRole { role, tags } => {
            let tags: Vec<String> = tags
                .iter()
                .map(|t| format!("{}={}", t.key, t.value))
                .collect();
            format!("role={role} {}", tags.join(" "))
        }
        IamOp::UntagRole { role, keys } => format!("role={role} keys={}", keys.join(",")),
        IamOp::CreateRole {
            role, path, tags, ..
        } => {
            let tags: Vec<String> = tags
                .iter()
                .map(|t| format!("{}={}", t.key, t.value))
                .collect();
            if tags.is_empty() {
                format!("role={role} path={path}")
            } else {
                format!("role={role} path={path} tags: {}", tags.join(" "))
            }
        }
        IamOp::PutBucketTagging { bucket, tags, .. }
        | IamOp::TagQueue {
            queue: bucket,
            tags,
            ..
        }
        | IamOp::TagTopic {
            topic: bucket,
            tags,
            ..
        } => {
            let tags: Vec<String> = tags
                .iter()
                .map(|t| format!("{}={}", t.key, t.value))
                .collect();
            format!("{bucket} {}", tags.join(" "))
        }
        IamOp::UntagQueue {
            queue: name, keys, ..
        }
        | IamOp::UntagTopic {
            topic: name, keys, ..
        } => {
            format!("{name} keys={}", keys.join(","))
        }
        IamOp::DeletePolicyVersion {
            policy_arn,
            version_id,
        } => format!("arn={policy_arn} version={version_id}"),
        IamOp::CreatePolicy {
            policy_name, path, ..
        } => format!("policy={policy_name} path={path}"),
        other => other.subject().to_string(),
    };
    format!("{} {detail}", op.action())
}

/// The role a change targets, from the synced resources.
pub fn current_role(resources: &Resources, change: &Change) -> Option<Principal> {
    let arn = change.target().as_role()?;
    resources
        .role(arn.account().as_str(), arn.name())
        .map(|(_, r)| r)
        .filter(|r| r.arn == arn.to_string())
}

/// The document of an editable change, pretty-printed in its own key order.
pub fn editable_text(change: &Change) -> Option<String> {
    change
        .editable_document()
        .map(|d| serde_json::to_string_pretty(d.as_value()).unwrap_or_default())
}

/// Used by the tests and the page: a document's JSON, pretty.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::demo;
    use serde_json::json;

    fn change(v: Value) -> Change {
        match serde_json::from_value(v) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn inline_attach_diffs_against_the_current_document_and_says_replace() {
        let snap = demo::account("111122223333", "demo");
        let role = snap
            .principals
            .iter()
            .find(|p| p.name == "billing-reports")
            .expect("role");
        let c = change(json!({"change_type": "inline_policy", "id": "1",
            "principal": {"principal_type": "AwsResource", "principal_arn": role.arn},
            "policy_name": role.inline_policies[0].name, "action": "attach",
            "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::cur-reports/*"]}]}}}));
        let s = sections(&c, Some(role));
        assert!(
            s[0].diff.removed > 0 && s[0].diff.added > 0,
            "{:?}",
            s[0].diff
        );
        assert!(summary(&c, Some(role)).starts_with("replace inline policy"));
        let tag = change(json!({"change_type": "resource_tag", "id": "2",
            "principal": {"principal_type": "AwsResource", "principal_arn": role.arn},
            "key": "team", "value": "finance", "tag_action": "update"}));
        let d = &sections(&tag, Some(role))[0].diff;
        assert_eq!((d.added, d.removed), (1, 1));
    }

    #[test]
    fn a_clone_shows_every_part_it_copies() {
        let c = change(json!({"change_type": "create_role", "id": "1",
            "account_id": "123456789012", "role_name": "copy", "path": "/",
            "clone_from": "arn:aws:iam::123456789012:role/src", "copy_trust": true,
            "copy_managed": true, "copy_tags": true, "copy_inline": true,
            "resolved_clone": {"from": "arn:aws:iam::123456789012:role/src",
                "trust_policy": {"Version": "2012-10-17", "Statement": []},
                "inline_policies": [{"policy_name": "p", "policy_document": {"Statement": []}}],
                "managed_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"],
                "tags": [{"key": "consoleme-authorized", "value": "mallory"}]}}));
        let labels: Vec<String> = sections(&c, None).into_iter().map(|s| s.label).collect();
        assert_eq!(
            labels,
            [
                "Trust policy",
                "Inline policy p",
                "Managed policies",
                "Tags"
            ]
        );
        let calls: Vec<String> = c.calls().iter().map(describe_call).collect();
        assert_eq!(
            calls,
            [
                "iam:CreateRole role=copy path=/ tags: consoleme-authorized=mallory",
                "iam:PutRolePolicy role=copy policy=p",
                "iam:AttachRolePolicy role=copy arn=arn:aws:iam::aws:policy/AdministratorAccess",
            ]
        );
    }
}
