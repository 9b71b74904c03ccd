//! The sandbox cloud: the demo accounts held in memory, for the first-run experience and the UI
//! demo. Never used by tests of the AWS path.
//!
//! Approved changes are applied to these accounts with IAM's rules and IAM's error codes
//! (`NoSuchEntity`, `EntityAlreadyExists`, `LimitExceeded`, `MalformedPolicyDocument`,
//! `ValidationError`), so [`Cloud::fetch_role`] and [`Cloud::fetch_account`] return the changed
//! state and the role page shows it after approval.
//!
//! Memory and cost: the accounts are [`Account`]s, whose resources sit behind `Arc`s. The portal
//! seeds the sandbox with the very accounts its synced view loaded from the Store
//! ([`SandboxCloud::seed`], called by `src/app.rs::App::load_resources`), so both share one copy
//! of every role; an operation replaces only the role (and the managed policy whose attachment
//! count moves) it changes, so applying costs the size of the change, not of the account
//! (33k roles per demo account in `scripts/bench-requests`).
//!
//! Concurrency: one lock over every account. An operation builds the new versions of what it
//! changes beside the current ones and puts them in only when it succeeded, under the lock: two
//! approvals applying at once are serialised as IAM would, and a refused operation changes
//! nothing. Until the sandbox is seeded (the portal loads in the background after it opened its
//! port) every operation waits for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use super::{Cloud, CloudError, IamOp};
use crate::resources::account::{Account, Item};
use crate::resources::demo;
use crate::resources::model::{
    AccountSnapshot, AttachedPolicy, InlinePolicy, ManagedPolicy, Principal, ResourceKind,
    ServiceResource, Tag,
};

/// IAM's default quotas (the managed-policy one is `policies.max_managed_policies`).
const MAX_INLINE_CHARS_PER_ROLE: usize = 10_240;
const MAX_TRUST_POLICY_CHARS: usize = 2_048;
const MAX_TAGS_PER_ROLE: usize = 50;
const MAX_ROLE_NAME: usize = 64;
const MAX_POLICY_NAME: usize = 128;
const MAX_PATH: usize = 512;
const MAX_DESCRIPTION: usize = 1_000;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

pub struct SandboxCloud {
    /// Account id → its current state.
    accounts: Mutex<BTreeMap<String, Account>>,
    /// True once the accounts are known; operations wait for it.
    seeded: tokio::sync::watch::Sender<bool>,
    /// PoliciesPerRole of the demo accounts.
    max_managed_policies: usize,
}

impl Default for SandboxCloud {
    fn default() -> Self {
        SandboxCloud::new(vec![], 10)
    }
}

/// The demo accounts, fresh, by id.
fn demo_accounts() -> BTreeMap<String, Account> {
    demo::accounts()
        .into_iter()
        .map(|a| (a.account_id.clone(), Account::from_snapshot(a, 0)))
        .collect()
}

impl SandboxCloud {
    /// The demo accounts, each as given in `stored` when it holds it, else fresh (tests,
    /// benchmarks).
    pub fn new(stored: Vec<AccountSnapshot>, max_managed_policies: usize) -> Self {
        let cloud = SandboxCloud::pending(max_managed_policies);
        let stored: Vec<Arc<Account>> = stored
            .into_iter()
            .map(|s| Arc::new(Account::from_snapshot(s, 0)))
            .collect();
        cloud.seed(&stored);
        cloud
    }

    /// A sandbox whose accounts come later, from [`seed`](Self::seed); until then every
    /// operation waits.
    pub fn pending(max_managed_policies: usize) -> Self {
        SandboxCloud {
            accounts: Mutex::new(BTreeMap::new()),
            seeded: tokio::sync::watch::channel(false).0,
            max_managed_policies,
        }
    }

    /// Hold the demo accounts, each as `stored` holds it when it does (the portal shows the
    /// stored accounts after a restart, so the sandbox must agree with them), else fresh.
    /// `stored` is shared, not copied: its resources are `Arc`s.
    pub fn seed(&self, stored: &[Arc<Account>]) {
        let mut accounts = demo_accounts();
        for account in stored {
            if let Some(slot) = accounts.get_mut(&account.account_id) {
                *slot = account.as_ref().clone();
            }
        }
        *self.lock() = accounts;
        self.seeded.send_replace(true);
    }

    /// Wait until [`seed`](Self::seed) ran, then take the lock.
    async fn ready(&self) -> MutexGuard<'_, BTreeMap<String, Account>> {
        let mut seeded = self.seeded.subscribe();
        // The sender lives in `self`: the wait ends when it is seeded.
        let _ = seeded.wait_for(|s| *s).await;
        self.lock()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Account>> {
        // Operations never leave a half-made change behind (they build the new versions
        // before putting them in), so the data of a poisoned lock is still consistent.
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unknown(account_id: &str) -> CloudError {
    CloudError::UnknownAccount(account_id.to_string())
}

#[async_trait]
impl Cloud for SandboxCloud {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn fetch_account(
        &self,
        account_id: &str,
        account_name: &str,
    ) -> Result<AccountSnapshot, CloudError> {
        let mut snap = {
            let accounts = self.ready().await;
            let account = accounts
                .get(account_id)
                .ok_or_else(|| unknown(account_id))?;
            AccountSnapshot {
                account_id: account.account_id.clone(),
                account_name: account_name.to_string(),
                synced_at: Some(chrono::Utc::now()),
                principals: account.principals.iter().map(|p| (**p).clone()).collect(),
                policies: account.policies.iter().map(|p| (**p).clone()).collect(),
                // Buckets, queues and topics come from `fetch_service`, as with AWS.
                services: vec![],
            }
        };
        snap.link_attachments();
        Ok(snap)
    }

    async fn fetch_role(
        &self,
        account_id: &str,
        role_name: &str,
    ) -> Result<Option<Principal>, CloudError> {
        let accounts = self.ready().await;
        let account = accounts
            .get(account_id)
            .ok_or_else(|| unknown(account_id))?;
        Ok(account
            .principal(ResourceKind::Role, role_name)
            .map(|p| (**p).clone()))
    }

    async fn assume_role(
        &self,
        role_arn: &str,
        _session_name: &str,
        _duration_seconds: i32,
    ) -> Result<super::RoleCredentials, CloudError> {
        Err(CloudError::Unsupported(format!(
            "the sandbox cloud (demo accounts) cannot issue real AWS credentials for {role_arn}; \
             configure aws.mode: aws and account_ids_to_name"
        )))
    }

    async fn apply(&self, account_id: &str, op: &IamOp) -> Result<(), CloudError> {
        let mut accounts = self.ready().await;
        let account = accounts
            .get_mut(account_id)
            .ok_or_else(|| unknown(account_id))?;
        for item in changed_by(account, op, self.max_managed_policies)? {
            account.set(&item.key(), Some(item));
        }
        tracing::info!(
            account = account_id,
            action = op.action(),
            subject = op.subject(),
            "sandbox applied"
        );
        Ok(())
    }

    // ---- Buckets, queues and topics (issue 14) --------------------------------------------

    /// The regions the demo queues and topics live in.
    fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self
            .lock()
            .values()
            .flat_map(|a| a.services.iter())
            .filter(|r| r.kind != ResourceKind::S3)
            .map(|r| r.region.clone())
            .collect();
        regions.sort();
        regions.dedup();
        if regions.is_empty() {
            regions.push(demo::REGION.to_string());
        }
        regions
    }

    async fn fetch_service(
        &self,
        account_id: &str,
        service: ResourceKind,
        region: &str,
    ) -> Result<Vec<ServiceResource>, CloudError> {
        let accounts = self.ready().await;
        let account = accounts
            .get(account_id)
            .ok_or_else(|| unknown(account_id))?;
        Ok(account
            .services
            .iter()
            .filter(|r| r.kind == service && (service == ResourceKind::S3 || r.region == region))
            .map(|r| (**r).clone())
            .collect())
    }

    // --- Right-sizing: a made-up but stable Access Advisor, so the demo shows right-sizing. ---

    async fn start_access_advisor(
        &self,
        _account_id: &str,
        role_arn: &str,
    ) -> Result<String, CloudError> {
        Ok(format!("{SANDBOX_JOB}{role_arn}"))
    }

    async fn poll_access_advisor(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> Result<super::AdvisorJob, CloudError> {
        let role_arn = job_id
            .strip_prefix(SANDBOX_JOB)
            .ok_or_else(|| iam_error("NoSuchEntity", format!("no job {job_id}")))?;
        let accounts = self.ready().await;
        let account = accounts
            .get(account_id)
            .ok_or_else(|| unknown(account_id))?;
        let role = account
            .principals
            .iter()
            .find(|p| p.arn == role_arn)
            .ok_or_else(|| no_such_role(role_arn))?;
        Ok(super::AdvisorJob::Completed(sandbox_usage(account, role)))
    }
}

const SANDBOX_JOB: &str = "sandbox-job:";

/// The demo's usage: the first service of the role's first inline policy was used two days ago;
/// of the others, about one in three was used long ago and the rest never. Stable across runs.
fn sandbox_usage(account: &Account, role: &Principal) -> Vec<super::ServiceAccess> {
    use std::collections::BTreeSet;
    let catalogue = crate::iam_actions::services();
    let services_of = |doc: &Value| crate::rightsize::analysis::allowed_services(doc, &catalogue);
    let first: Option<String> = role
        .inline_policies
        .first()
        .and_then(|p| services_of(&p.document).into_iter().next());
    let mut all: BTreeSet<String> = role
        .inline_policies
        .iter()
        .flat_map(|p| services_of(&p.document))
        .collect();
    for m in &role.managed_policies {
        if let Some(p) = account.policies.iter().find(|p| p.arn == m.arn) {
            all.extend(services_of(&p.document));
        }
    }
    let now = chrono::Utc::now();
    all.into_iter()
        .map(|ns| {
            let spread = (role.name.len() + ns.len()) % 3;
            let last = if Some(&ns) == first.as_ref() {
                Some(now - chrono::Duration::days(2))
            } else if spread == 0 {
                Some(now - chrono::Duration::days(200))
            } else if spread == 1 && role.name.len().is_multiple_of(2) {
                Some(now - chrono::Duration::days(10))
            } else {
                None
            };
            super::ServiceAccess {
                name: ns.clone(),
                namespace: ns,
                last_authenticated: last,
                tracked_actions: vec![],
            }
        })
        .collect()
}

/// An error in IAM's shape: its code, and the message as `code: message` like the AWS path.
pub(super) fn iam_error(code: &str, message: impl std::fmt::Display) -> CloudError {
    CloudError::Aws {
        code: Some(code.to_string()),
        message: format!("{code}: {message}"),
    }
}

fn no_such_role(name: &str) -> CloudError {
    iam_error(
        "NoSuchEntity",
        format!("The role with name {name} cannot be found."),
    )
}

/// A copy of the role `name` to change (found whatever its case, as IAM finds it).
fn role_copy(account: &Account, name: &str) -> Result<Principal, CloudError> {
    account
        .principal(ResourceKind::Role, name)
        .map(|p| (**p).clone())
        .ok_or_else(|| no_such_role(name))
}

/// IAM's name pattern `[\w+=,.@-]+` with a length limit.
fn check_name(field: &str, value: &str, max: usize) -> Result<(), CloudError> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if value.is_empty() || value.chars().count() > max || !ok_chars {
        return Err(iam_error(
            "ValidationError",
            format!(
                "1 validation error detected: Value '{value}' at '{field}' failed to satisfy \
                 constraint: Member must have length between 1 and {max} and match the \
                 pattern [\\w+=,.@-]+"
            ),
        ));
    }
    Ok(())
}

/// A policy document IAM would parse: an object with a `Statement` object or list.
pub(super) fn check_document(document: &Value) -> Result<(), CloudError> {
    let statements_ok = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().all(Value::is_object),
        Some(Value::Object(_)) => true,
        _ => false,
    };
    if !document.is_object() || !statements_ok {
        return Err(iam_error(
            "MalformedPolicyDocument",
            "Syntax errors in policy.",
        ));
    }
    Ok(())
}

/// IAM counts policy sizes without whitespace; compact JSON is that count.
fn size(document: &Value) -> usize {
    serde_json::to_string(document).map_or(0, |s| s.chars().count())
}

fn check_trust(document: &Value) -> Result<(), CloudError> {
    check_document(document)?;
    if size(document) > MAX_TRUST_POLICY_CHARS {
        return Err(iam_error(
            "LimitExceeded",
            format!("Cannot exceed quota for ACLSizePerRole: {MAX_TRUST_POLICY_CHARS}"),
        ));
    }
    Ok(())
}

fn check_tags(tags: &[Tag]) -> Result<(), CloudError> {
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > MAX_TAG_KEY {
            return Err(iam_error(
                "ValidationError",
                format!("Tag key '{}' must be 1 to {MAX_TAG_KEY} characters.", t.key),
            ));
        }
        if t.value.chars().count() > MAX_TAG_VALUE {
            return Err(iam_error(
                "ValidationError",
                format!(
                    "The value of tag '{}' must be at most {MAX_TAG_VALUE} characters.",
                    t.key
                ),
            ));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(iam_error(
                "InvalidInput",
                format!("Tag key '{}' uses the reserved prefix aws:.", t.key),
            ));
        }
    }
    Ok(())
}

/// Add or overwrite tags (keys compare exactly, as in IAM), within the per-role quota.
fn merge_tags(current: &mut Vec<Tag>, tags: &[Tag]) -> Result<(), CloudError> {
    check_tags(tags)?;
    for t in tags {
        match current.iter_mut().find(|c| c.key == t.key) {
            Some(existing) => existing.value = t.value.clone(),
            None => current.push(t.clone()),
        }
    }
    if current.len() > MAX_TAGS_PER_ROLE {
        return Err(iam_error(
            "LimitExceeded",
            format!("Cannot exceed quota for TagsPerRole: {MAX_TAGS_PER_ROLE}"),
        ));
    }
    Ok(())
}

/// The name of a managed policy this account can attach: its own customer-managed policies and
/// AWS managed policies (`arn:aws:iam::aws:policy/...`, whose catalogue the sandbox does not
/// hold, so any name is taken as existing).
fn attachable(account: &Account, arn: &str) -> Result<String, CloudError> {
    if let Some(path_and_name) = arn.strip_prefix("arn:aws:iam::aws:policy/")
        && let Some(name) = path_and_name.rsplit('/').next().filter(|n| !n.is_empty())
    {
        return Ok(name.to_string());
    }
    account
        .policies
        .iter()
        .find(|p| p.arn == arn)
        .map(|p| p.name.clone())
        .ok_or_else(|| {
            iam_error(
                "NoSuchEntity",
                format!("Policy {arn} does not exist or is not attachable."),
            )
        })
}

/// The account's own managed policy `arn` with its attachment count moved by `delta` (`None`
/// for an AWS managed policy, whose count the sandbox does not keep).
fn recounted(account: &Account, arn: &str, delta: i32) -> Option<Item> {
    account.policy_by_arn(arn).map(|p| {
        let mut p: ManagedPolicy = (**p).clone();
        p.attachment_count = (p.attachment_count + delta).max(0);
        Item::Policy(Arc::new(p))
    })
}

fn changed_role(role: Principal) -> Item {
    Item::Principal(Arc::new(role))
}

/// What `op` changes in `account`, as new versions of the changed resources (the role, and the
/// managed policy whose attachment count moves), built beside the current ones: on error
/// nothing changed.
fn changed_by(account: &Account, op: &IamOp, max_managed: usize) -> Result<Vec<Item>, CloudError> {
    if let Some(done) = super::sandbox_resources::changed_by(account, op) {
        return done;
    }
    match op {
        IamOp::CreateRole {
            role,
            path,
            description,
            trust,
            tags,
        } => {
            let new = create_role(account, role, path, description.as_deref(), trust, tags)?;
            Ok(vec![changed_role(new)])
        }
        IamOp::PutRolePolicy {
            role,
            policy_name,
            document,
        } => {
            let mut role = role_copy(account, role)?;
            put_inline(&mut role, policy_name, document)?;
            Ok(vec![changed_role(role)])
        }
        IamOp::DeleteRolePolicy { role, policy_name } => {
            let mut role = role_copy(account, role)?;
            let before = role.inline_policies.len();
            role.inline_policies.retain(|p| p.name != *policy_name);
            if role.inline_policies.len() == before {
                return Err(iam_error(
                    "NoSuchEntity",
                    format!("The role policy with name {policy_name} cannot be found."),
                ));
            }
            Ok(vec![changed_role(role)])
        }
        IamOp::AttachRolePolicy { role, policy_arn } => {
            let name = attachable(account, policy_arn)?;
            let mut role = role_copy(account, role)?;
            // Attaching an attached policy is a no-op in IAM.
            if role.managed_policies.iter().any(|m| m.arn == *policy_arn) {
                return Ok(vec![]);
            }
            if role.managed_policies.len() >= max_managed {
                return Err(iam_error(
                    "LimitExceeded",
                    format!("Cannot exceed quota for PoliciesPerRole: {max_managed}"),
                ));
            }
            role.managed_policies.push(AttachedPolicy {
                name,
                arn: policy_arn.clone(),
            });
            let mut changed = vec![changed_role(role)];
            changed.extend(recounted(account, policy_arn, 1));
            Ok(changed)
        }
        IamOp::DetachRolePolicy { role, policy_arn } => {
            let mut role = role_copy(account, role)?;
            let before = role.managed_policies.len();
            role.managed_policies.retain(|m| m.arn != *policy_arn);
            if role.managed_policies.len() == before {
                return Err(iam_error(
                    "NoSuchEntity",
                    format!("Policy {policy_arn} was not found."),
                ));
            }
            let mut changed = vec![changed_role(role)];
            changed.extend(recounted(account, policy_arn, -1));
            Ok(changed)
        }
        IamOp::PutRolePermissionsBoundary { role, policy_arn } => {
            attachable(account, policy_arn)?;
            let mut role = role_copy(account, role)?;
            role.permissions_boundary = Some(policy_arn.clone());
            Ok(vec![changed_role(role)])
        }
        IamOp::DeleteRolePermissionsBoundary { role } => {
            let mut role = role_copy(account, role)?;
            role.permissions_boundary = None;
            Ok(vec![changed_role(role)])
        }
        IamOp::UpdateAssumeRolePolicy { role, document } => {
            let mut role = role_copy(account, role)?;
            check_trust(document)?;
            role.trust_policy = Some(document.clone());
            Ok(vec![changed_role(role)])
        }
        IamOp::TagRole { role, tags } => {
            let mut role = role_copy(account, role)?;
            merge_tags(&mut role.tags, tags)?;
            Ok(vec![changed_role(role)])
        }
        IamOp::UntagRole { role, keys } => {
            // Removing a tag the role does not have is not an error in IAM.
            let mut role = role_copy(account, role)?;
            role.tags.retain(|t| !keys.contains(&t.key));
            Ok(vec![changed_role(role)])
        }
        other => Err(CloudError::Unsupported(format!(
            "the sandbox has no {}",
            other.action()
        ))),
    }
}

/// Add or replace one inline policy, within the per-role size quota.
fn put_inline(role: &mut Principal, policy_name: &str, document: &Value) -> Result<(), CloudError> {
    check_name("policyName", policy_name, MAX_POLICY_NAME)?;
    check_document(document)?;
    let new = InlinePolicy {
        name: policy_name.to_string(),
        document: document.clone(),
    };
    match role
        .inline_policies
        .iter_mut()
        .find(|p| p.name == policy_name)
    {
        Some(existing) => *existing = new,
        None => role.inline_policies.push(new),
    }
    let total: usize = role.inline_policies.iter().map(|p| size(&p.document)).sum();
    if total > MAX_INLINE_CHARS_PER_ROLE {
        return Err(iam_error(
            "LimitExceeded",
            format!(
                "Maximum policy size of {MAX_INLINE_CHARS_PER_ROLE} bytes exceeded for role {}",
                role.name
            ),
        ));
    }
    Ok(())
}

fn create_role(
    account: &Account,
    name: &str,
    path: &str,
    description: Option<&str>,
    trust: &Value,
    tags: &[Tag],
) -> Result<Principal, CloudError> {
    check_name("roleName", name, MAX_ROLE_NAME)?;
    let path_ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= MAX_PATH
        && path.chars().all(|c| ('!'..='~').contains(&c));
    if !path_ok {
        return Err(iam_error(
            "ValidationError",
            format!(
                "The specified value for path '{path}' is invalid: it must begin and end with /."
            ),
        ));
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(iam_error(
            "ValidationError",
            format!("The description must be at most {MAX_DESCRIPTION} characters."),
        ));
    }
    check_trust(trust)?;
    if account.principal(ResourceKind::Role, name).is_some() {
        return Err(iam_error(
            "EntityAlreadyExists",
            format!("Role with name {name} already exists."),
        ));
    }
    let mut role_tags = vec![];
    merge_tags(&mut role_tags, tags)?;
    let unique = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    Ok(Principal {
        kind: ResourceKind::Role,
        account_id: account.account_id.clone(),
        name: name.to_string(),
        arn: format!("arn:aws:iam::{}:role{path}{name}", account.account_id),
        path: path.to_string(),
        id: format!("AROA{}", &unique[..17]),
        description: description.map(str::to_string),
        created_at: Some(chrono::Utc::now()),
        last_used_at: None,
        max_session_duration: Some(3600),
        trust_policy: Some(trust.clone()),
        inline_policies: vec![],
        managed_policies: vec![],
        permissions_boundary: None,
        tags: role_tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "111122223333";
    const ROLE: &str = "billing-reports";

    fn cloud() -> SandboxCloud {
        SandboxCloud::default()
    }

    fn doc(action: &str) -> Value {
        json!({"Version": "2012-10-17",
               "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
    }

    async fn role(c: &SandboxCloud, name: &str) -> Principal {
        c.fetch_role(ACCOUNT, name)
            .await
            .expect("fetch")
            .expect("the role exists")
    }

    /// The IAM error code of a refused operation.
    async fn refused(c: &SandboxCloud, op: IamOp) -> String {
        let before = c.fetch_account(ACCOUNT, "x").await.expect("account");
        let err = c.apply(ACCOUNT, &op).await.expect_err("refused");
        let after = c.fetch_account(ACCOUNT, "x").await.expect("account");
        assert_eq!(
            before.principals, after.principals,
            "a refused {op:?} changes nothing"
        );
        assert_eq!(before.policies, after.policies);
        match err {
            CloudError::Aws {
                code: Some(code),
                message,
            } => {
                assert!(message.starts_with(&format!("{code}: ")), "{message}");
                code
            }
            other => panic!("not an IAM error: {other:?}"),
        }
    }

    async fn ok(c: &SandboxCloud, op: IamOp) {
        c.apply(ACCOUNT, &op).await.expect("applied");
    }

    #[tokio::test]
    async fn put_role_policy_adds_replaces_and_shows_in_fetches() {
        let c = cloud();
        let put = |name: &str, action: &str| IamOp::PutRolePolicy {
            role: ROLE.into(),
            policy_name: name.into(),
            document: doc(action),
        };
        ok(&c, put("invoices", "s3:GetObject")).await;
        let r = role(&c, ROLE).await;
        assert_eq!(r.inline_policies.len(), 2);
        assert_eq!(r.inline_policies[1].document, doc("s3:GetObject"));
        ok(&c, put("invoices", "s3:PutObject")).await;
        let r = role(&c, ROLE).await;
        assert_eq!(r.inline_policies.len(), 2, "same name replaces");
        assert_eq!(r.inline_policies[1].document, doc("s3:PutObject"));
        let account = c
            .fetch_account(ACCOUNT, "demo-prod")
            .await
            .expect("account");
        let synced = account
            .principals
            .iter()
            .find(|p| p.name == ROLE)
            .expect("role");
        assert_eq!(synced.inline_policies[1].name, "invoices");
        assert!(account.synced_at.is_some());
        // Other accounts keep their own roles.
        let other = c.fetch_role("444455556666", ROLE).await.expect("fetch");
        assert_eq!(other.expect("role").inline_policies.len(), 1);

        assert_eq!(
            refused(&c, put("bad name!", "s3:GetObject")).await,
            "ValidationError"
        );
        let malformed = IamOp::PutRolePolicy {
            role: ROLE.into(),
            policy_name: "m".into(),
            document: json!({"Version": "2012-10-17"}),
        };
        assert_eq!(refused(&c, malformed).await, "MalformedPolicyDocument");
        let huge = IamOp::PutRolePolicy {
            role: ROLE.into(),
            policy_name: "huge".into(),
            document: doc(&format!("s3:{}", "a".repeat(10_300))),
        };
        assert_eq!(refused(&c, huge).await, "LimitExceeded");
        let nobody = IamOp::PutRolePolicy {
            role: "nobody".into(),
            policy_name: "p".into(),
            document: doc("s3:GetObject"),
        };
        assert_eq!(refused(&c, nobody).await, "NoSuchEntity");
    }

    #[tokio::test]
    async fn delete_role_policy_removes_or_says_no_such_entity() {
        let c = cloud();
        let delete = |name: &str| IamOp::DeleteRolePolicy {
            role: ROLE.into(),
            policy_name: name.into(),
        };
        ok(&c, delete("read-cur")).await;
        assert!(role(&c, ROLE).await.inline_policies.is_empty());
        assert_eq!(refused(&c, delete("read-cur")).await, "NoSuchEntity");
    }

    #[tokio::test]
    async fn attach_role_policy_counts_attachments_and_keeps_the_quota() {
        let c = SandboxCloud::new(vec![], 2);
        let kms = format!("arn:aws:iam::{ACCOUNT}:policy/KmsUseDefault");
        let attach = |arn: &str| IamOp::AttachRolePolicy {
            role: ROLE.into(),
            policy_arn: arn.into(),
        };
        let count = |a: &AccountSnapshot| {
            a.policies
                .iter()
                .find(|p| p.name == "KmsUseDefault")
                .map(|p| p.attachment_count)
        };
        let before = count(&c.fetch_account(ACCOUNT, "x").await.expect("a"));
        ok(&c, attach(&kms)).await;
        let r = role(&c, ROLE).await;
        assert!(
            r.managed_policies
                .iter()
                .any(|m| m.arn == kms && m.name == "KmsUseDefault")
        );
        let after = count(&c.fetch_account(ACCOUNT, "x").await.expect("a"));
        assert_eq!(after, before.map(|n| n + 1));
        ok(&c, attach(&kms)).await;
        assert_eq!(
            role(&c, ROLE).await.managed_policies.len(),
            2,
            "re-attach is a no-op"
        );

        assert_eq!(
            refused(&c, attach("arn:aws:iam::aws:policy/ReadOnlyAccess")).await,
            "LimitExceeded",
            "ReadOnlyLogs + KmsUseDefault fill a quota of 2"
        );
        assert_eq!(
            refused(&c, attach(&format!("arn:aws:iam::{ACCOUNT}:policy/Nope"))).await,
            "NoSuchEntity"
        );
        assert_eq!(
            refused(&c, attach("arn:aws:iam::444455556666:policy/KmsUseDefault")).await,
            "NoSuchEntity",
            "another account's policy is not attachable here"
        );

        // AWS managed policies: the sandbox takes any name as existing.
        let c = cloud();
        ok(
            &c,
            attach("arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"),
        )
        .await;
        let r = role(&c, ROLE).await;
        assert!(
            r.managed_policies
                .iter()
                .any(|m| m.name == "ViewOnlyAccess")
        );
    }

    #[tokio::test]
    async fn detach_role_policy_removes_or_says_no_such_entity() {
        let c = cloud();
        let logs = format!("arn:aws:iam::{ACCOUNT}:policy/ReadOnlyLogs");
        let detach = IamOp::DetachRolePolicy {
            role: ROLE.into(),
            policy_arn: logs.clone(),
        };
        ok(&c, detach.clone()).await;
        assert!(role(&c, ROLE).await.managed_policies.is_empty());
        let account = c.fetch_account(ACCOUNT, "x").await.expect("a");
        let p = account
            .policies
            .iter()
            .find(|p| p.arn == logs)
            .expect("policy");
        assert_eq!(p.attachment_count, 3);
        assert_eq!(refused(&c, detach).await, "NoSuchEntity");
    }

    #[tokio::test]
    async fn permissions_boundary_is_set_and_removed() {
        let c = cloud();
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy/ReadOnlyLogs");
        ok(
            &c,
            IamOp::PutRolePermissionsBoundary {
                role: ROLE.into(),
                policy_arn: arn.clone(),
            },
        )
        .await;
        assert_eq!(role(&c, ROLE).await.permissions_boundary, Some(arn));
        ok(
            &c,
            IamOp::DeleteRolePermissionsBoundary { role: ROLE.into() },
        )
        .await;
        assert_eq!(role(&c, ROLE).await.permissions_boundary, None);
        let missing = IamOp::PutRolePermissionsBoundary {
            role: ROLE.into(),
            policy_arn: format!("arn:aws:iam::{ACCOUNT}:policy/Nope"),
        };
        assert_eq!(refused(&c, missing).await, "NoSuchEntity");
        let nobody = IamOp::DeleteRolePermissionsBoundary {
            role: "nobody".into(),
        };
        assert_eq!(refused(&c, nobody).await, "NoSuchEntity");
    }

    #[tokio::test]
    async fn trust_policy_is_replaced_within_its_quota() {
        let c = cloud();
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        ok(
            &c,
            IamOp::UpdateAssumeRolePolicy {
                role: ROLE.into(),
                document: trust.clone(),
            },
        )
        .await;
        assert_eq!(role(&c, ROLE).await.trust_policy, Some(trust));
        let big = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "x".repeat(2100)}, "Action": "sts:AssumeRole"}]});
        let op = IamOp::UpdateAssumeRolePolicy {
            role: ROLE.into(),
            document: big,
        };
        assert_eq!(refused(&c, op).await, "LimitExceeded");
        let op = IamOp::UpdateAssumeRolePolicy {
            role: ROLE.into(),
            document: json!("not a policy"),
        };
        assert_eq!(refused(&c, op).await, "MalformedPolicyDocument");
    }

    #[tokio::test]
    async fn tags_are_added_overwritten_removed_within_the_quota() {
        let c = cloud();
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        ok(
            &c,
            IamOp::TagRole {
                role: ROLE.into(),
                tags: vec![tag("owner", "ann"), tag("team", "finance")],
            },
        )
        .await;
        let r = role(&c, ROLE).await;
        assert_eq!(r.tag("owner"), Some("ann"));
        assert_eq!(
            r.tag("team"),
            Some("finance"),
            "an existing key is overwritten"
        );
        assert_eq!(r.tags.len(), 3);
        ok(
            &c,
            IamOp::UntagRole {
                role: ROLE.into(),
                keys: vec!["owner".into(), "never-there".into()],
            },
        )
        .await;
        assert_eq!(role(&c, ROLE).await.tag("owner"), None);

        let many = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
        let op = IamOp::TagRole {
            role: ROLE.into(),
            tags: many,
        };
        assert_eq!(
            refused(&c, op).await,
            "LimitExceeded",
            "2 + 49 > 50 is refused"
        );
        let op = IamOp::TagRole {
            role: ROLE.into(),
            tags: vec![tag("aws:owner", "x")],
        };
        assert_eq!(refused(&c, op).await, "InvalidInput");
        let op = IamOp::TagRole {
            role: ROLE.into(),
            tags: vec![tag("k", &"v".repeat(257))],
        };
        assert_eq!(refused(&c, op).await, "ValidationError");
        let op = IamOp::UntagRole {
            role: "nobody".into(),
            keys: vec!["k".into()],
        };
        assert_eq!(refused(&c, op).await, "NoSuchEntity");
    }

    #[tokio::test]
    async fn create_role_makes_a_role_the_next_ops_can_change() {
        let c = cloud();
        let create = |name: &str, path: &str| IamOp::CreateRole {
            role: name.into(),
            path: path.into(),
            description: Some("made in the demo".into()),
            trust: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags: vec![Tag {
                key: "team".into(),
                value: "demo".into(),
            }],
        };
        ok(&c, create("reports-reader", "/service/")).await;
        let r = role(&c, "reports-reader").await;
        assert_eq!(
            r.arn,
            format!("arn:aws:iam::{ACCOUNT}:role/service/reports-reader")
        );
        assert_eq!(r.tag("team"), Some("demo"));
        assert!(r.id.starts_with("AROA") && r.id.len() == 21, "{}", r.id);
        assert!(r.created_at.is_some());
        ok(
            &c,
            IamOp::PutRolePolicy {
                role: "reports-reader".into(),
                policy_name: "read".into(),
                document: doc("s3:GetObject"),
            },
        )
        .await;
        assert_eq!(role(&c, "REPORTS-READER").await.inline_policies.len(), 1);

        assert_eq!(
            refused(&c, create("Reports-Reader", "/")).await,
            "EntityAlreadyExists",
            "role names are unique regardless of case"
        );
        assert_eq!(refused(&c, create("x", "service")).await, "ValidationError");
        assert_eq!(
            refused(&c, create(&"r".repeat(65), "/")).await,
            "ValidationError"
        );
    }

    /// The sandbox holds the view's own `Arc`s (one copy of every role), and an operation
    /// replaces just the role it changes.
    #[tokio::test]
    async fn seeded_accounts_are_shared_and_an_apply_replaces_only_its_role() {
        let view = Arc::new(Account::from_snapshot(
            demo::account(ACCOUNT, "demo-prod"),
            3,
        ));
        let c = SandboxCloud::pending(10);
        c.seed(std::slice::from_ref(&view));
        let tag = Tag {
            key: "owner".into(),
            value: "ann".into(),
        };
        ok(
            &c,
            IamOp::TagRole {
                role: ROLE.to_ascii_uppercase(),
                tags: vec![tag],
            },
        )
        .await;
        assert_eq!(role(&c, ROLE).await.tag("owner"), Some("ann"));
        let accounts = c.lock();
        let held = &accounts[ACCOUNT];
        assert_eq!(held.principals.len(), view.principals.len());
        for (mine, theirs) in held.principals.iter().zip(&view.principals) {
            assert_eq!(
                Arc::ptr_eq(mine, theirs),
                mine.name != ROLE,
                "{}: shared unless changed",
                mine.name
            );
        }
        assert!(
            view.principal(ResourceKind::Role, ROLE)
                .is_some_and(|r| r.tag("owner").is_none())
        );
    }

    /// The portal opens its port before it loads the accounts: until the sandbox is seeded,
    /// its operations wait rather than answer "unknown account".
    #[tokio::test]
    async fn operations_wait_until_seeded() {
        let c = Arc::new(SandboxCloud::pending(10));
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.fetch_role(ACCOUNT, ROLE).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        c.seed(&[]);
        let found = waiting.await.expect("task").expect("fetch");
        assert!(found.is_some(), "the fresh demo accounts");
    }

    #[tokio::test]
    async fn unknown_accounts_are_refused_and_stored_accounts_restored() {
        let c = cloud();
        let op = IamOp::DeleteRolePermissionsBoundary { role: ROLE.into() };
        assert!(matches!(
            c.apply("999999999999", &op).await,
            Err(CloudError::UnknownAccount(_))
        ));
        assert!(matches!(
            c.fetch_account("999999999999", "x").await,
            Err(CloudError::UnknownAccount(_))
        ));

        let mut changed = demo::account(ACCOUNT, "demo-prod");
        changed.principals.retain(|p| p.name != ROLE);
        let foreign = demo::account("123412341234", "not a demo account");
        let c = SandboxCloud::new(vec![changed, foreign], 10);
        assert_eq!(c.fetch_role(ACCOUNT, ROLE).await.expect("fetch"), None);
        assert!(
            c.fetch_role("444455556666", ROLE)
                .await
                .expect("fetch")
                .is_some()
        );
        assert!(c.fetch_account("123412341234", "x").await.is_err());
    }
}
