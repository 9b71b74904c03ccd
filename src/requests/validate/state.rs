//! Step 2: typed changes against the synced accounts, simulated in order so that each change is
//! checked against the role as the earlier changes of the same request leave it.

use std::collections::BTreeMap;

use super::grammar::policy_warnings;
use super::names::{doc_chars, join};
use super::quotas::Target;
use super::{DocKind, Limits, Problem, Synced, Warning};
use crate::requests::model::AccountId;
use crate::requests::model::{
    AttachAction, BoundaryEdit, Change, CloneSpec, CreateRoleChange, InlineEdit, ManagedPolicyArn,
    NewInlinePolicy, PolicyDocument, PolicyName, ResolvedClone, RoleArn, TagEdit,
};
use crate::requests::resource_change::{
    MAX_POLICY_VERSIONS, PolicyStep, ResourceChange, ResourceEdit,
};
use crate::resources::model::{Principal, Resource, ResourceKind, Tag};

/// Why a tag change cannot apply to tags as they are, if so.
fn tag_problem(label: &str, tags: &[Tag], key: &str, edit: &TagEdit) -> Option<String> {
    let exists = tags.iter().any(|t| t.key == key);
    match (edit, exists) {
        (TagEdit::Create(_), true) => Some(format!(
            "{label} already has a tag `{key}`; use tag_action \"update\" to change its value"
        )),
        (TagEdit::Update(_), false) => Some(format!(
            "{label} has no tag `{key}` to update; use tag_action \"create\""
        )),
        (TagEdit::Delete, false) => Some(format!("{label} has no tag `{key}`; nothing to delete")),
        _ => None,
    }
}

/// What to do with the clones of `create_role` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Clones {
    /// A new request: give every change a fresh id and pin what each clone copies now.
    Resolve,
    /// An edited request: keep ids and the clones as pinned when it was created.
    KeepPinned,
}

pub(super) fn check_against(
    mut changes: Vec<Change>,
    synced: &dyn Synced,
    limits: &Limits,
    clones: Clones,
) -> Result<(Vec<Change>, Vec<Warning>), Vec<Problem>> {
    let mut s = Simulation {
        synced,
        problems: Vec::new(),
        warnings: Vec::new(),
        targets: BTreeMap::new(),
    };
    for (i, change) in changes.iter_mut().enumerate() {
        if clones == Clones::Resolve {
            change.set_id(uuid::Uuid::new_v4().to_string());
        }
        if let Some(e) = change.expires() {
            s.expiry(i, e, limits);
        }
        s.change(i, change, clones);
    }
    for (_, t) in s.targets.values() {
        s.problems.extend(t.quota_problems(limits));
    }
    if s.problems.is_empty() {
        Ok((changes, s.warnings))
    } else {
        Err(s.problems)
    }
}

struct Simulation<'a> {
    synced: &'a dyn Synced,
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
    /// By account and lower-case name: IAM names are unique per account whatever the case.
    targets: BTreeMap<(String, String), (String, Target)>,
}

fn key(arn: &RoleArn) -> (String, String) {
    (arn.account().to_string(), arn.name().to_lowercase())
}

impl Simulation<'_> {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(field, message));
    }

    /// An expiration in the future, within `policies.max_expiration_days`.
    fn expiry(&mut self, i: usize, e: crate::requests::model::Expiry, limits: &Limits) {
        let field = format!("changes[{i}].expiration_date");
        let at = e.at();
        let shown = at.format("%Y-%m-%d %H:%M UTC");
        if at <= limits.now + chrono::Duration::minutes(1) {
            self.problem(
                field,
                format!("expiration_date {shown} is not in the future; pick a later time"),
            );
        } else if at > limits.now + chrono::Duration::days(i64::from(limits.max_expiration_days)) {
            self.problem(
                field,
                format!(
                    "expiration_date {shown} is more than {} days ahead \
                     (policies.max_expiration_days); pick an earlier time or leave it out",
                    limits.max_expiration_days
                ),
            );
        }
    }

    fn warn_document(&mut self, i: usize, doc: &PolicyDocument, kind: DocKind, field: &str) {
        self.warnings.extend(
            policy_warnings(doc.as_value(), kind, field)
                .into_iter()
                .map(|message| Warning { change: i, message }),
        );
    }

    /// The synced role `arn` names, exactly: path and case included. Loads it into the
    /// simulation and returns its key, or records why not.
    fn resolve(&mut self, arn: &RoleArn, field: &str) -> Option<(String, String)> {
        let given = arn.to_string();
        if let Some(reason) = self.synced.protected(arn.account().as_str(), arn.name()) {
            self.problem(
                field,
                format!("iamdesk never changes its own roles through a request: {reason}"),
            );
            return None;
        }
        let k = key(arn);
        if let Some((canonical, _)) = self.targets.get(&k) {
            if *canonical == given {
                return Some(k);
            }
            let message = mismatch(&given, canonical);
            self.problem(field, message);
            return None;
        }
        match self.synced.role_named(arn.account().as_str(), arn.name()) {
            Some(p) if p.arn == given => {
                self.targets
                    .insert(k.clone(), (given, Target::from_principal(&p)));
                Some(k)
            }
            Some(p) => {
                self.problem(field, mismatch(&given, &p.arn));
                None
            }
            None => {
                self.problem(
                    field,
                    format!(
                        "`{given}` is not a synced role in a configured account; check the ARN, \
                         or wait for the next sync if it was just created"
                    ),
                );
                None
            }
        }
    }

    fn change(&mut self, i: usize, change: &mut Change, clones: Clones) {
        let field = format!("changes[{i}]");
        let pf = join(&field, "principal.principal_arn");
        match change {
            Change::InlinePolicy(c) => {
                let df = join(&field, "policy.policy_document");
                if let InlineEdit::Put(doc) = &c.edit {
                    self.warn_document(i, doc, DocKind::Identity, &df);
                }
                let Some(k) = self.resolve(&c.principal.principal_arn, &pf) else {
                    return;
                };
                self.inline_policy(&k, &c.policy_name, &c.edit, &field);
            }
            Change::ManagedPolicy(c) => {
                let Some(k) = self.resolve(&c.principal.principal_arn, &pf) else {
                    return;
                };
                self.check_owner(&k, &c.arn, &field);
                let af = join(&field, "arn");
                let Some((_, t)) = self.targets.get_mut(&k) else {
                    return;
                };
                let attached = t.managed.iter().position(|m| m == c.arn.as_str());
                match (c.action, attached) {
                    (AttachAction::Attach, Some(_)) => {
                        let message =
                            format!("{} is already attached to {}; no effect", c.arn, t.label);
                        self.warnings.push(Warning { change: i, message });
                    }
                    (AttachAction::Attach, None) => {
                        t.managed.push(c.arn.to_string());
                        t.managed_touch = Some(af);
                    }
                    (AttachAction::Detach, Some(n)) => {
                        t.managed.remove(n);
                        t.managed_touch = Some(af);
                    }
                    (AttachAction::Detach, None) => {
                        let message = format!(
                            "{} is not attached to {}; nothing to detach",
                            c.arn, t.label
                        );
                        self.problem(af, message);
                    }
                }
            }
            Change::PermissionsBoundary(c) => {
                let Some(k) = self.resolve(&c.principal.principal_arn, &pf) else {
                    return;
                };
                if let BoundaryEdit::Put(arn) | BoundaryEdit::Delete(Some(arn)) = &c.edit {
                    self.check_owner(&k, arn, &field);
                }
                let Some((_, t)) = self.targets.get_mut(&k) else {
                    return;
                };
                match &c.edit {
                    BoundaryEdit::Put(arn) => t.boundary = Some(arn.to_string()),
                    BoundaryEdit::Delete(expected) => match (&t.boundary, expected) {
                        (None, _) => {
                            let message =
                                format!("{} has no permissions boundary to detach", t.label);
                            self.problem(join(&field, "action"), message);
                        }
                        (Some(current), Some(arn)) if current != arn.as_str() => {
                            let message = format!(
                                "the permissions boundary of {} is {current}, not {arn}",
                                t.label
                            );
                            self.problem(join(&field, "arn"), message);
                        }
                        _ => t.boundary = None,
                    },
                }
            }
            Change::AssumeRolePolicy(c) => {
                let df = join(&field, "policy.policy_document");
                self.warn_document(i, &c.document, DocKind::Trust, &df);
                self.resolve(&c.principal.principal_arn, &pf);
            }
            Change::ResourceTag(c) => {
                let Some(k) = self.resolve(&c.principal.principal_arn, &pf) else {
                    return;
                };
                let kf = join(&field, "key");
                let Some((_, t)) = self.targets.get_mut(&k) else {
                    return;
                };
                let exists = t.tags.contains_key(&c.key);
                let key = &c.key;
                let message = match (&c.edit, exists) {
                    (TagEdit::Create(_), true) => format!(
                        "{} already has a tag `{key}`; use tag_action \"update\" to change its \
                         value",
                        t.label
                    ),
                    (TagEdit::Update(_), false) => format!(
                        "{} has no tag `{key}` to update; use tag_action \"create\"",
                        t.label
                    ),
                    (TagEdit::Delete, false) => {
                        format!("{} has no tag `{key}`; nothing to delete", t.label)
                    }
                    (TagEdit::Delete, true) => {
                        t.tags.remove(key);
                        t.tags_touch = Some(kf);
                        return;
                    }
                    (TagEdit::Create(value) | TagEdit::Update(value), _) => {
                        t.tags.insert(key.clone(), value.clone());
                        t.tags_touch = Some(kf);
                        return;
                    }
                };
                self.problem(kf, message);
            }
            Change::CreateRole(c) => self.create_role(i, c, &field, clones),
            Change::Resource(c) => self.resource_change(i, c, &field, clones),
        }
    }

    /// A bucket, queue, topic or managed policy: the synced resource exactly, its account and
    /// region made canonical, and what the calls depend on pinned (a bucket's whole tag set,
    /// create-or-publish and the policy version deleted to make room).
    fn resource_change(&mut self, i: usize, c: &mut ResourceChange, field: &str, clones: Clones) {
        let r = &c.resource;
        let (key_field, doc_kind) = match &c.edit {
            ResourceEdit::Policy(_) => (join(field, "arn"), DocKind::Resource),
            _ => (join(field, "principal.principal_arn"), DocKind::Identity),
        };
        if let Some(doc) = c.editable_document() {
            let df = join(field, "policy.policy_document");
            self.warn_document(i, doc, doc_kind, &df);
        }
        let account = (!r.account.is_unresolved()).then(|| r.account.as_str());
        let region = (!r.region.is_empty()).then_some(r.region.as_str());
        let found = self.synced.resource(account, r.kind, region, &r.name);
        if let Some(a) = account
            && !self.synced.accounts().iter().any(|x| x == a)
        {
            self.problem(
                &key_field,
                format!("account {a} is not configured in account_ids_to_name"),
            );
            return;
        }
        match (found, &mut c.edit) {
            (Some(Resource::Service(s)), edit) => {
                match AccountId::parse(&s.account_id) {
                    Ok(a) => c.resource.account = a,
                    Err(m) => return self.problem(&key_field, m),
                }
                c.resource.region = s.region.clone();
                if clones == Clones::Resolve && c.expires.is_some() {
                    c.previous_policy = s.policy.clone();
                }
                if c.expires.is_some() && s.policy.is_none() && s.kind == ResourceKind::Sns {
                    return self.problem(
                        join(field, "expiration_date"),
                        "this topic has no policy to go back to at the expiry; leave \
                         expiration_date out",
                    );
                }
                if let ResourceEdit::Tag {
                    key,
                    edit,
                    bucket_tags,
                } = edit
                {
                    let label = c.resource.label();
                    let kf = join(field, "key");
                    let mut tags = s.tags.clone();
                    if let Some(m) = tag_problem(&label, &tags, key, edit) {
                        return self.problem(kf, m);
                    }
                    tags.retain(|t| t.key != *key);
                    if let TagEdit::Create(v) | TagEdit::Update(v) = edit {
                        tags.push(Tag {
                            key: key.clone(),
                            value: v.clone(),
                        });
                    }
                    if tags.len() > 50 {
                        return self.problem(
                            kf,
                            format!("{label} would have {} tags; AWS allows 50", tags.len()),
                        );
                    }
                    if clones == Clones::Resolve && c.resource.kind == ResourceKind::S3 {
                        *bucket_tags = tags;
                    }
                }
            }
            (Some(Resource::Policy(p)), ResourceEdit::ManagedPolicy { step, .. }) => {
                // A new version of a policy iamdesk's own role carries would change iamdesk's
                // own permissions: refused like a change to that role.
                let own = p.attached_to.iter().find_map(|arn| {
                    let role = RoleArn::parse(arn).ok()?;
                    self.synced.protected(role.account().as_str(), role.name())
                });
                if let Some(reason) = own {
                    return self.problem(
                        &key_field,
                        format!(
                            "this policy is attached to iamdesk's own role ({reason}); iamdesk \
                             never changes its own permissions through a request"
                        ),
                    );
                }
                if clones == Clones::Resolve {
                    // Versions are newest first: the oldest non-default one goes.
                    let delete_first = (p.versions.len() >= MAX_POLICY_VERSIONS)
                        .then(|| p.versions.iter().rev().find(|v| !v.is_default))
                        .flatten()
                        .map(|v| v.id.clone());
                    *step = PolicyStep::Publish { delete_first };
                }
            }
            (None, ResourceEdit::ManagedPolicy { step, .. }) => {
                if account.is_none() {
                    return self.problem(&key_field, "the policy ARN names no account");
                }
                if clones == Clones::Resolve && !matches!(step, PolicyStep::Create { .. }) {
                    *step = PolicyStep::Create { description: None };
                }
                if let PolicyStep::Publish { .. } = step {
                    self.problem(
                        &key_field,
                        format!(
                            "{} is no longer synced; it cannot get a new version",
                            r.label()
                        ),
                    );
                }
            }
            (_, ResourceEdit::ManagedPolicy { .. }) | (_, _) => {
                let label = c.resource.label();
                self.problem(
                    &key_field,
                    format!(
                        "{label} is not a synced resource of a configured account (`{}`); check \
                         the ARN, or wait for the next sync if it was just created",
                        c.resource.arn()
                    ),
                );
            }
        }
    }

    fn inline_policy(
        &mut self,
        k: &(String, String),
        name: &PolicyName,
        edit: &InlineEdit,
        field: &str,
    ) {
        let Some((_, t)) = self.targets.get_mut(k) else {
            return;
        };
        match edit {
            InlineEdit::Put(doc) => {
                t.inline.insert(name.to_string(), doc_chars(doc.as_value()));
                t.inline_touch = Some(join(field, "policy.policy_document"));
            }
            InlineEdit::Delete => {
                if t.inline.remove(name.as_str()).is_some() {
                    t.inline_touch = Some(join(field, "policy_name"));
                } else {
                    let message = format!(
                        "{} has no inline policy named `{name}` (names are case-sensitive); \
                         nothing to detach",
                        t.label
                    );
                    self.problem(join(field, "policy_name"), message);
                }
            }
        }
    }

    /// A customer-managed policy must be from the role's own account.
    fn check_owner(&mut self, k: &(String, String), policy: &ManagedPolicyArn, field: &str) {
        let Some((_, t)) = self.targets.get(k) else {
            return;
        };
        let owner = policy.owner();
        if owner != "aws" && owner != t.account {
            let message = format!(
                "the policy belongs to account {owner} but {} is in account {}; attach a policy \
                 from the same account or an AWS managed policy",
                t.label, t.account
            );
            self.problem(join(field, "arn"), message);
        }
    }

    fn create_role(&mut self, i: usize, c: &mut CreateRoleChange, field: &str, clones: Clones) {
        let doc_field = join(field, "policy.policy_document");
        if let Some(doc) = &c.trust {
            self.warn_document(i, doc, DocKind::Trust, &doc_field);
        }
        let ipf = join(field, "inline_policies");
        for (n, p) in c.inline_policies.iter().enumerate() {
            let df = format!("{ipf}[{n}].policy_document");
            self.warn_document(i, &p.policy_document, DocKind::Identity, &df);
        }
        let account = c.role.account().to_string();
        let name = c.role.name().to_string();
        if let Some(reason) = self.synced.protected(&account, &name) {
            self.problem(
                join(field, "role_name"),
                format!("this name belongs to iamdesk's own role: {reason}; pick another name"),
            );
            return;
        }

        if let Some(clone) = &mut c.clone {
            let cf = join(field, "clone_from");
            if clones == Clones::Resolve && !self.pin_clone(clone, &c.inline_policies, field) {
                return;
            }
            if clone.resolved.from != clone.from.to_string() {
                self.problem(cf, "the pinned clone does not match clone_from");
                return;
            }
        }

        let k = key(&c.role);
        let taken_here = self.targets.get(&k).is_some_and(|(_, t)| t.created);
        let exists =
            self.targets.contains_key(&k) || self.synced.role_named(&account, &name).is_some();
        if taken_here || exists {
            let why = if taken_here {
                "another change in this request already creates it"
            } else {
                "a role with this name already exists"
            };
            self.problem(
                join(field, "role_name"),
                format!(
                    "role name `{name}` is taken in account {account} ({why}; role names are \
                     unique per account whatever the path and case); pick another name"
                ),
            );
            return;
        }

        let inline: BTreeMap<String, usize> = c
            .all_inline_policies()
            .into_iter()
            .map(|p| {
                (
                    p.policy_name.to_string(),
                    doc_chars(p.policy_document.as_value()),
                )
            })
            .collect();
        let target = Target {
            account: account.clone(),
            label: format!("new role `{name}`"),
            inline,
            managed: c
                .managed_policies()
                .iter()
                .map(ToString::to_string)
                .collect(),
            boundary: c.permissions_boundary().map(ToString::to_string),
            tags: c
                .tags()
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            created: true,
            before_inline: 0,
            before_managed: 0,
            before_tags: 0,
            inline_touch: Some(ipf),
            managed_touch: Some(join(field, "copy_managed")),
            tags_touch: Some(join(field, "copy_tags")),
        };
        self.targets.insert(k, (c.role.to_string(), target));
    }

    /// Pin what the clone copies from its source as synced now. False when the source is not
    /// a role that may be copied (the problem is recorded).
    fn pin_clone(&mut self, clone: &mut CloneSpec, given: &[NewInlinePolicy], field: &str) -> bool {
        let cf = join(field, "clone_from");
        let from = clone.from.to_string();
        if let Some(reason) = self
            .synced
            .protected(clone.from.account().as_str(), clone.from.name())
        {
            self.problem(
                cf,
                format!("iamdesk's own roles cannot be cloned (their permissions are iamdesk's): {reason}"),
            );
            return false;
        }
        let source: Principal = match self
            .synced
            .role_named(clone.from.account().as_str(), clone.from.name())
        {
            Some(p) if p.arn == from => p,
            Some(p) => {
                self.problem(cf, mismatch(&from, &p.arn));
                return false;
            }
            None => {
                self.problem(
                    cf,
                    format!("`{from}` is not a synced role; clone from an existing role"),
                );
                return false;
            }
        };
        let mut resolved = ResolvedClone {
            from,
            ..ResolvedClone::default()
        };
        if clone.copy_trust {
            match &source.trust_policy {
                Some(doc) => resolved.trust_policy = Some(PolicyDocument::checked(doc.clone())),
                None => {
                    self.problem(
                        join(field, "copy_trust"),
                        format!("role `{}` has no trust policy to copy", source.name),
                    );
                    return false;
                }
            }
        }
        if clone.copy_inline {
            for p in &source.inline_policies {
                let Ok(policy_name) = PolicyName::parse(&p.name) else {
                    continue;
                };
                if given.iter().any(|g| g.policy_name == policy_name) {
                    continue;
                }
                resolved.inline_policies.push(NewInlinePolicy {
                    policy_name,
                    policy_document: PolicyDocument::checked(p.document.clone()),
                });
            }
        }
        if clone.copy_managed {
            resolved.managed_policies = source
                .managed_policies
                .iter()
                .filter_map(|m| ManagedPolicyArn::parse(&m.arn).ok())
                .collect();
            resolved.permissions_boundary = source
                .permissions_boundary
                .as_deref()
                .and_then(|b| ManagedPolicyArn::parse(b).ok());
        }
        if clone.copy_tags {
            resolved.tags = source
                .tags
                .iter()
                .map(|t| Tag {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect();
        }
        clone.resolved = resolved;
        true
    }
}

fn mismatch(given: &str, canonical: &str) -> String {
    format!(
        "`{given}` does not match the synced role `{canonical}`: the path and the case of the name \
         must be exactly as in IAM; use `{canonical}`"
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[allow(unused_imports)]
    use super::super::names::*;
    #[allow(unused_imports)]
    use crate::requests::model::*;
    #[allow(unused_imports)]
    use crate::resources::model::{AttachedPolicy, InlinePolicy, Principal, ResourceKind, Tag};
    #[allow(unused_imports)]
    use serde_json::{Value, json};

    #[test]
    fn the_principal_must_be_synced() {
        let p = fails(
            run(vec![tag("ghost", "k", "v", "create")], vec![app()]),
            "changes[0].principal.principal_arn",
            "not a synced role",
        );
        assert_eq!(p.len(), 1);
        fails(
            run(vec![inline_attach("ghost", "p", s3_read())], vec![]),
            "changes[0].principal.principal_arn",
            "not a synced",
        );
        fails(
            run(
                vec![managed("ghost", "arn:aws:iam::aws:policy/X", "attach")],
                vec![],
            ),
            "changes[0].principal.principal_arn",
            "not a synced",
        );
    }

    #[test]
    fn detaching_what_is_not_there_is_a_problem() {
        let detach = |name: &str| {
            json!({"change_type": "inline_policy", "principal": principal_of("app"),
                                         "policy_name": name, "action": "detach"})
        };
        ok(run(vec![detach("read")], vec![app()]));
        fails(
            run(vec![detach("Read")], vec![app()]),
            "changes[0].policy_name",
            "no inline policy named `Read`",
        );
        fails(
            run(vec![detach("read"), detach("read")], vec![app()]),
            "changes[1].policy_name",
            "nothing to detach",
        );
        fails(
            run(
                vec![managed(
                    "app",
                    "arn:aws:iam::aws:policy/AdministratorAccess",
                    "detach",
                )],
                vec![app()],
            ),
            "changes[0].arn",
            "not attached",
        );
        let v = ok(run(
            vec![managed(
                "app",
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "attach",
            )],
            vec![app()],
        ));
        assert!(v.warnings[0].message.contains("already attached"));
        let boundary = json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "action": "detach"});
        fails(
            run(vec![boundary], vec![app()]),
            "changes[0].action",
            "no permissions boundary",
        );
        let mut bounded = app();
        bounded.permissions_boundary = Some(format!("arn:aws:iam::{ACCT}:policy/b1"));
        let other = json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "action": "detach",
                           "arn": format!("arn:aws:iam::{ACCT}:policy/b2")});
        fails(
            run(vec![other], vec![bounded]),
            "changes[0].arn",
            "not arn:aws:iam::123456789012:policy/b2",
        );
        let attach_no_arn = json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "action": "attach"});
        fails(
            run(vec![attach_no_arn], vec![app()]),
            "changes[0].arn",
            "required",
        );
    }

    #[test]
    fn tag_actions_must_match_existing_tags() {
        fails(
            run(vec![tag("app", "team", "x", "create")], vec![app()]),
            "changes[0].key",
            "use tag_action \"update\"",
        );
        fails(
            run(vec![tag("app", "owner", "x", "update")], vec![app()]),
            "changes[0].key",
            "use tag_action \"create\"",
        );
        fails(
            run(vec![tag("app", "owner", "", "delete")], vec![app()]),
            "changes[0].key",
            "nothing to delete",
        );
        ok(run(
            vec![
                tag("app", "team", "", "delete"),
                tag("app", "team", "new", "create"),
            ],
            vec![app()],
        ));
        let delete_without_value = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "team", "tag_action": "delete"});
        ok(run(vec![delete_without_value], vec![app()]));
    }

    #[test]
    fn a_made_up_path_or_case_is_refused_naming_the_real_role() {
        let change = |arn: &str| {
            json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                   "principal": {"principal_type": "AwsResource", "principal_arn": arn}})
        };
        for given in [
            format!("arn:aws:iam::{ACCT}:role/ops/app"),
            format!("arn:aws:iam::{ACCT}:role/APP"),
            format!("arn:aws:iam::{ACCT}:role/ops/App"),
        ] {
            let p = fails(
                run(vec![change(&given)], vec![app()]),
                "changes[0].principal.principal_arn",
                "does not match the synced role",
            );
            assert!(
                p[0].message.contains(&format!("use `{}`", role_arn("app"))),
                "{p:#?}"
            );
        }
        let v = ok(run(vec![change(&role_arn("app"))], vec![app()]));
        assert_eq!(v.changes[0].target().to_string(), role_arn("app"));
    }

    #[test]
    fn iamdesks_own_roles_are_never_a_target() {
        let spoke = role("spoke");
        let tag = |arn: String| {
            json!({"change_type": "inline_policy", "policy_name": "p", "action": "attach",
                   "policy": {"policy_document": s3_read()},
                   "principal": {"principal_type": "AwsResource", "principal_arn": arn}})
        };
        // The role itself, in another case, and under a made-up path that reads like `app`.
        for arn in [
            role_arn("spoke"),
            role_arn("SPOKE"),
            format!("arn:aws:iam::{ACCT}:role/app/spoke"),
        ] {
            fails(
                run(vec![tag(arn)], vec![app(), spoke.clone()]),
                "changes[0].principal.principal_arn",
                "never changes its own roles",
            );
        }
        let clone = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "copy",
                           "clone_from": role_arn("spoke"), "copy_trust": true, "copy_managed": true});
        fails(
            run(vec![clone], vec![spoke.clone()]),
            "changes[0].clone_from",
            "cannot be cloned",
        );
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "Spoke",
                            "policy": {"policy_document": trust()}});
        fails(
            run(vec![create], vec![]),
            "changes[0].role_name",
            "iamdesk's own role",
        );
    }

    #[test]
    fn trust_policies_are_for_roles_only() {
        let mut user = role("bob");
        user.kind = ResourceKind::User;
        user.arn = format!("arn:aws:iam::{ACCT}:user/bob");
        let change = json!({"change_type": "assume_role_policy", "policy": {"policy_document": trust()},
            "principal": {"principal_type": "AwsResource", "principal_arn": format!("arn:aws:iam::{ACCT}:user/bob")}});
        fails(
            run(vec![change], vec![user]),
            "changes[0].principal.principal_arn",
            "roles only",
        );
        let no_doc = json!({"change_type": "assume_role_policy", "principal": principal_of("app")});
        fails(
            run(vec![no_doc], vec![app()]),
            "changes[0].policy.policy_document",
            "required",
        );
    }

    #[test]
    fn create_role_name_must_be_free_whatever_the_path() {
        let mut svc = role("svc");
        svc.arn = format!("arn:aws:iam::{ACCT}:role/team/svc");
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "svc", "path": "/team/",
                            "policy": {"policy_document": trust()}});
        fails(
            run(vec![create], vec![svc.clone()]),
            "changes[0].role_name",
            "already exists",
        );
        let create_plain = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "svc",
                                  "policy": {"policy_document": trust()}});
        // Names are unique per account whatever the path and case.
        fails(
            run(vec![create_plain], vec![svc.clone()]),
            "changes[0].role_name",
            "already exists",
        );
        let create_upper = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "SVC",
                                  "policy": {"policy_document": trust()}});
        fails(
            run(vec![create_upper], vec![svc]),
            "changes[0].role_name",
            "already exists",
        );
    }

    #[test]
    fn risky_grants_are_warned_about() {
        let w = warnings_for(allow(json!("*"), json!("*")));
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(w[0].change, 0);
        assert!(w[0].message.contains("full administrator"));
        assert!(
            w[0].message
                .starts_with("changes[0].policy.policy_document.Statement[0]")
        );
        assert!(
            warnings_for(allow(json!("*:*"), json!(["*"])))[0]
                .message
                .contains("full administrator")
        );
        let w = warnings_for(allow(json!("iam:PassRole"), json!("*")));
        assert!(
            w.len() == 1 && w[0].message.contains("privilege escalation"),
            "{w:#?}"
        );
        let w = warnings_for(allow(json!(["iam:*"]), json!("*")));
        assert!(
            w.iter().any(|w| w.message.contains("iam:PassRole"))
                && w.iter().any(|w| w.message.contains("`iam:*`")),
            "{w:#?}"
        );
        let w = warnings_for(allow(json!("sts:AssumeRole"), json!("*")));
        assert!(
            w.len() == 1 && w[0].message.contains("sts:AssumeRole"),
            "{w:#?}"
        );
        let w = warnings_for(allow(json!(["s3:*", "ec2:DescribeInstances"]), json!("*")));
        assert!(w.len() == 1 && w[0].message.contains("`s3:*`"), "{w:#?}");
        // Scoped or denied: no warning.
        assert!(warnings_for(allow(json!("s3:*"), json!("arn:aws:s3:::b/*"))).is_empty());
        assert!(warnings_for(allow(json!("iam:PassRole"), json!(role_arn("worker")))).is_empty());
        assert!(
            warnings_for(identity(
                json!({"Effect": "Deny", "Action": "*", "Resource": "*"})
            ))
            .is_empty()
        );
        assert!(warnings_for(allow(json!("ec2:Describe*"), json!("*"))).is_empty());
    }

    #[test]
    fn open_trust_policies_are_warned_about() {
        let trust_change = |p: Value, cond: Option<Value>| {
            let mut st = json!({"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"});
            if let Some(c) = cond {
                st["Condition"] = c;
            }
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                   "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [st]}}})
        };
        for p in [
            json!("*"),
            json!({"AWS": "*"}),
            json!({"AWS": ["123456789012", "*"]}),
        ] {
            let w = ok(run(vec![trust_change(p, None)], vec![app()])).warnings;
            assert!(
                w.len() == 1 && w[0].message.contains("anyone in any AWS account"),
                "{w:#?}"
            );
        }
        let cond = json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}});
        assert!(
            ok(run(vec![trust_change(json!("*"), Some(cond))], vec![app()]))
                .warnings
                .is_empty()
        );
        assert!(
            ok(run(
                vec![trust_change(json!({"AWS": ACCT}), None)],
                vec![app()]
            ))
            .warnings
            .is_empty()
        );
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "open",
            "policy": {"policy_document": {"Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}}}});
        let w = ok(run(
            vec![tag("app", "k", "v", "create"), create],
            vec![app()],
        ))
        .warnings;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].change, 1);
        assert!(
            w[0].message
                .starts_with("changes[1].policy.policy_document.Statement:")
        );
    }
}
