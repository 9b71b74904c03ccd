//! Credentials and console sign-in for the roles a user is entitled to (seeds 001 and 004).
//!
//! Entitlement comes from role tags in the synced snapshot, exactly as in ConsoleMe: a tag whose
//! key is one of `authorized_groups_tags` lists (colon-separated) the users and groups who may
//! use the role from the console and the CLI; `authorized_groups_cli_only_tags` grant CLI
//! credentials only. Credentials always come from STS AssumeRole, so they always carry a session
//! token (forgetting it is what gives "security token invalid").

pub mod client;
pub mod federation;
pub mod tokens;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::cloud::RoleCredentials;
use crate::config::Config;
use crate::config::RoleTags;
use crate::error::AppError;
use crate::resources::account::{Account, Changed, Item};
use crate::resources::model::{Principal, ResourceKind};
use crate::resources::service::Derived;
use crate::store::AuditEvent;

/// What a user may do with a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Credentials from the CLI or API only; no console, not listed in the UI.
    CliOnly,
    /// Console sign-in and credentials.
    Console,
}

/// Whether `value` (a colon-separated tag value) names the user or one of their groups. Exact
/// entries only, never substrings; an entry with `@` is a user's e-mail (case ignored), one
/// without is a group (see `auth::access`).
fn lists(value: &str, email: &str, groups: &[String]) -> bool {
    entries(value).any(|entry| crate::auth::access::names(entry, email, groups))
}

/// The users and groups a tag value names: colon-separated, trimmed, blanks skipped.
fn entries(value: &str) -> impl Iterator<Item = &str> {
    value.split(':').map(str::trim).filter(|e| !e.is_empty())
}

/// The user's access to `role`, if any.
pub fn entitlement(
    config: &Config,
    role: &Principal,
    email: &str,
    groups: &[String],
) -> Option<Access> {
    let mapping = &config.cloud_credential_authorization_mapping.role_tags;
    if !mapping.enabled || role.kind != ResourceKind::Role {
        return None;
    }
    let granted_by = |keys: &[String]| {
        role.tags
            .iter()
            .any(|t| keys.contains(&t.key) && lists(&t.value, email, groups))
    };
    if granted_by(&mapping.authorized_groups_tags) {
        Some(Access::Console)
    } else if granted_by(&mapping.authorized_groups_cli_only_tags) {
        Some(Access::CliOnly)
    } else {
        None
    }
}

/// A role the user may use (what lists need; the full role stays in the snapshot).
#[derive(Debug, Clone)]
pub struct EntitledRole {
    pub arn: String,
    pub name: String,
    pub account_id: String,
    pub account_name: String,
    pub access: Access,
}

/// Every synced role the user may use, by account name then role name. Looked up in an index
/// of tag entries kept up to date with the synced roles (see [`EntitlementIndex`]).
pub fn entitled_roles(app: &App, email: &str, groups: &[String]) -> Vec<EntitledRole> {
    match app
        .resources
        .derived(|accounts| EntitlementIndex::build(&app.config, accounts))
    {
        Some((_, index)) => index.lookup(email, groups),
        None => entitled_in(&app.config, &app.resources.snapshots(), email, groups),
    }
}

/// Roles by the entries of their authorization tags: `entry` → the roles listing it. Group
/// entries (no `@`) are kept as written (groups match exactly), user entries (`@`) lowercased
/// (the user's email ignores case); see `src/auth/access.rs`.
/// Built once, then changed role by role as approvals and syncs change roles ([`Derived`]).
#[derive(Debug, Clone, Default)]
pub struct EntitlementIndex {
    mapping: RoleTags,
    exact: HashMap<String, Vec<Hit>>,
    lower: HashMap<String, Vec<Hit>>,
}

/// One role a tag entry names.
#[derive(Debug, Clone)]
struct Hit {
    role: Arc<Principal>,
    account_name: Arc<str>,
    access: Access,
}

impl EntitlementIndex {
    pub fn build(config: &Config, accounts: &[Arc<Account>]) -> Self {
        let mut index = EntitlementIndex {
            mapping: config
                .cloud_credential_authorization_mapping
                .role_tags
                .clone(),
            ..Default::default()
        };
        if !index.mapping.enabled {
            return index;
        }
        for account in accounts {
            let name: Arc<str> = Arc::from(account.account_name.as_str());
            for p in &account.principals {
                index.add(&name, p);
            }
        }
        index
    }

    /// The entries `role`'s authorization tags list, with the access each grants.
    fn entries_of<'a>(&'a self, role: &'a Principal) -> impl Iterator<Item = (&'a str, Access)> {
        let mapping = &self.mapping;
        role.tags
            .iter()
            .filter(move |_| mapping.enabled && role.kind == ResourceKind::Role)
            .filter_map(move |t| {
                if mapping.authorized_groups_tags.contains(&t.key) {
                    Some((t, Access::Console))
                } else if mapping.authorized_groups_cli_only_tags.contains(&t.key) {
                    Some((t, Access::CliOnly))
                } else {
                    None
                }
            })
            .flat_map(|(t, access)| entries(&t.value).map(move |e| (e, access)))
    }

    fn add(&mut self, account_name: &Arc<str>, role: &Arc<Principal>) {
        let found: Vec<(String, Access)> = self
            .entries_of(role)
            .map(|(e, a)| (e.to_string(), a))
            .collect();
        for (entry, access) in found {
            let hit = Hit {
                role: role.clone(),
                account_name: account_name.clone(),
                access,
            };
            if crate::auth::access::names_a_user(&entry) {
                self.lower
                    .entry(entry.to_ascii_lowercase())
                    .or_default()
                    .push(hit);
            } else {
                self.exact.entry(entry).or_default().push(hit);
            }
        }
    }

    fn remove(&mut self, role: &Principal) {
        let found: Vec<String> = self.entries_of(role).map(|(e, _)| e.to_string()).collect();
        let same = |h: &Hit| {
            h.role.account_id == role.account_id && h.role.name.eq_ignore_ascii_case(&role.name)
        };
        for entry in found {
            for (map, key) in [
                (&mut self.lower, entry.to_ascii_lowercase()),
                (&mut self.exact, entry.clone()),
            ] {
                if let Some(hits) = map.get_mut(&key) {
                    hits.retain(|h| !same(h));
                    if hits.is_empty() {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    /// The same answer as [`entitled_in`], in time proportional to the matches.
    pub fn lookup(&self, email: &str, groups: &[String]) -> Vec<EntitledRole> {
        let mut best: HashMap<*const Principal, &Hit> = HashMap::new();
        let mut access: HashMap<*const Principal, Access> = HashMap::new();
        let email = email.trim();
        let by_email = crate::auth::access::names_a_user(email)
            .then(|| self.lower.get(&email.to_ascii_lowercase()))
            .flatten();
        let hits = by_email
            .into_iter()
            .chain(groups.iter().filter_map(|g| self.exact.get(g)))
            .flatten();
        for hit in hits {
            let at = Arc::as_ptr(&hit.role);
            best.entry(at).or_insert(hit);
            let slot = access.entry(at).or_insert(hit.access);
            *slot = (*slot).max(hit.access);
        }
        let mut out: Vec<EntitledRole> = best
            .into_iter()
            .map(|(at, hit)| EntitledRole {
                arn: hit.role.arn.clone(),
                name: hit.role.name.clone(),
                account_id: hit.role.account_id.clone(),
                account_name: hit.account_name.to_string(),
                access: access.get(&at).copied().unwrap_or(hit.access),
            })
            .collect();
        sort_roles(&mut out);
        out
    }
}

impl Derived for EntitlementIndex {
    fn updated(&self, accounts: &[Arc<Account>], changes: &[Changed]) -> Option<Arc<dyn Derived>> {
        let mut next = self.clone();
        for c in changes {
            if let Some(Item::Principal(old)) = &c.old {
                next.remove(old);
            }
            if let Some(Item::Principal(new)) = &c.new {
                let account = accounts.iter().find(|a| a.account_id == c.account_id)?;
                next.add(&Arc::from(account.account_name.as_str()), new);
            }
        }
        Some(Arc::new(next))
    }
}

fn sort_roles(out: &mut [EntitledRole]) {
    out.sort_unstable_by(|a, b| {
        (a.account_name.as_str(), a.name.as_str()).cmp(&(b.account_name.as_str(), b.name.as_str()))
    });
}

/// [`entitled_roles`] over given snapshots (a full scan of every principal's tags; measured by
/// `scripts/bench-search`).
pub fn entitled_in(
    config: &Config,
    snapshots: &[Arc<Account>],
    email: &str,
    groups: &[String],
) -> Vec<EntitledRole> {
    let mut out = Vec::new();
    for snap in snapshots {
        for p in &snap.principals {
            if let Some(access) = entitlement(config, p, email, groups) {
                out.push(EntitledRole {
                    arn: p.arn.clone(),
                    name: p.name.clone(),
                    account_id: p.account_id.clone(),
                    account_name: snap.account_name.clone(),
                    access,
                });
            }
        }
    }
    sort_roles(&mut out);
    out
}

/// `RoleSessionName` / `SourceIdentity` from an email: `[\w+=,.@-]`, 2 to 64 characters.
pub fn session_name(email: &str) -> String {
    let mut s: String = email
        .chars()
        .map(|c| {
            if crate::requests::validate::is_name_char(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while s.len() < 2 {
        s.push('-');
    }
    s
}

/// The session length: at least 900 s, at most the role's maximum (default 3600 s).
pub fn clamp_duration(requested: Option<i64>, role_max: Option<i32>) -> i32 {
    let max = role_max.filter(|m| *m >= 900).unwrap_or(3600);
    let want = requested.unwrap_or(i64::from(max.min(3600)));
    i32::try_from(want.clamp(900, i64::from(max))).unwrap_or(900)
}

/// How credentials were asked for (audit log).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Api,
    Console,
}

/// The synced role behind `arn`, or a 404 that says how to find the right ARN.
pub fn find_role(app: &App, arn: &str) -> Result<Principal, AppError> {
    let parsed = crate::requests::model::RoleArn::parse(arn).map_err(|e| {
        AppError::BadRequest(format!(
            "'{arn}' is not a role ARN (arn:aws:iam::123456789012:role/name): {e}"
        ))
    })?;
    app.resources
        .role(parsed.account().as_str(), parsed.name())
        .map(|(_, r)| r)
        // Exactly this role: a made-up path or another case names no role.
        .filter(|r| r.arn == arn)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "there is no synced role {arn}; check the ARN on the Policies page"
            ))
        })
}

/// The cloud is the sandbox: its demo accounts are simulated, so no credentials exist.
pub fn simulated(app: &App) -> bool {
    app.cloud.name() == "sandbox"
}

/// What a person sees when asking the sandbox for credentials or a console session.
pub fn simulated_message(arn: &str) -> String {
    format!(
        "Demo accounts are simulated: {arn} lives in iamdesk's sandbox, not in AWS, so there is \
         no AWS console session or credentials to give. Everything else in the demo (finding \
         roles, requesting changes, reviewing and approving them) works as with real accounts."
    )
}

fn purpose_str(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Api => "api",
        Purpose::Console => "console",
    }
}

/// A refused or failed attempt: audited as `credentials.failed` with the reason, never secrets.
async fn audit_failure(
    app: &App,
    email: &str,
    arn: &str,
    purpose: Purpose,
    error: &AppError,
) -> Result<(), AppError> {
    let detail = json!({"role": arn, "purpose": purpose_str(purpose), "result": "failed",
                        "error": error.public_message()});
    app.store
        .append_audit(&AuditEvent::new(email, "credentials.failed", None, detail))
        .await?;
    Ok(())
}

/// Entitlement check, then AssumeRole. A refusal or a failure is audited here; the caller
/// audits the success once it has used the credentials ([`issue`], [`console_url`]).
async fn attempt(
    app: &App,
    email: &str,
    groups: &[String],
    arn: &str,
    duration: Option<i64>,
    purpose: Purpose,
) -> Result<(Principal, RoleCredentials, i32), AppError> {
    let role = find_role(app, arn)?;
    let refusal = match (entitlement(&app.config, &role, email, groups), purpose) {
        (None, _) => Some(AppError::Forbidden(format!(
            "You are not authorized to use {}: neither you nor one of your groups is listed \
             in its {} tag. Ask the role's owners to add you.",
            role.arn,
            app.config
                .cloud_credential_authorization_mapping
                .role_tags
                .authorized_groups_tags
                .join(", ")
        ))),
        (Some(Access::CliOnly), Purpose::Console) => Some(AppError::Forbidden(format!(
            "Your access to {} is for CLI credentials only; console sign-in needs a listing \
             in its {} tag.",
            role.arn,
            app.config
                .cloud_credential_authorization_mapping
                .role_tags
                .authorized_groups_tags
                .join(", ")
        ))),
        _ if simulated(app) => Some(AppError::Conflict(simulated_message(&role.arn))),
        _ => None,
    };
    if let Some(refusal) = refusal {
        audit_failure(app, email, &role.arn, purpose, &refusal).await?;
        return Err(refusal);
    }
    let seconds = clamp_duration(duration, role.max_session_duration);
    match app
        .cloud
        .assume_role(&role.arn, &session_name(email), seconds)
        .await
    {
        Ok(creds) => Ok((role, creds, seconds)),
        Err(e) => {
            let e = AppError::from(e);
            audit_failure(app, email, &role.arn, purpose, &e).await?;
            Err(e)
        }
    }
}

async fn audit_issued(
    app: &App,
    email: &str,
    role: &Principal,
    creds: &RoleCredentials,
    seconds: i32,
    purpose: Purpose,
) -> Result<(), AppError> {
    let name = session_name(email);
    let detail = json!({"role": role.arn, "purpose": purpose_str(purpose),
                        "duration_seconds": seconds, "session_name": name,
                        "access_key_id": creds.access_key_id, "result": "issued"});
    app.store
        .append_audit(&AuditEvent::new(email, "credentials.issued", None, detail))
        .await?;
    tracing::info!(user = email, role = %role.arn, purpose = purpose_str(purpose), duration = seconds, "credentials issued");
    Ok(())
}

/// Entitlement check, then AssumeRole; every issuance is an audit event (never the secret),
/// and so is every refusal or failure (`credentials.failed`).
pub async fn issue(
    app: &App,
    email: &str,
    groups: &[String],
    arn: &str,
    duration: Option<i64>,
    purpose: Purpose,
) -> Result<(Principal, RoleCredentials), AppError> {
    let (role, creds, seconds) = attempt(app, email, groups, arn, duration, purpose).await?;
    audit_issued(app, email, &role, &creds, seconds, purpose).await?;
    Ok((role, creds))
}

/// A console sign-in URL for `arn` opening `destination`: console entitlement, AssumeRole, then
/// the federation endpoint. Audited as issued only once the URL exists.
pub async fn console_url(
    app: &App,
    email: &str,
    groups: &[String],
    arn: &str,
    destination: &str,
) -> Result<(Principal, String), AppError> {
    let (role, creds, seconds) = attempt(app, email, groups, arn, None, Purpose::Console).await?;
    match federation::login_url(app, &creds, destination).await {
        Ok(url) => {
            audit_issued(app, email, &role, &creds, seconds, Purpose::Console).await?;
            Ok((role, url))
        }
        Err(e) => {
            audit_failure(app, email, &role.arn, Purpose::Console, &e).await?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::model::{AccountSnapshot, ResourceKey, Tag};

    fn role(tags: &[(&str, &str)]) -> Principal {
        Principal {
            kind: ResourceKind::Role,
            account_id: "111122223333".into(),
            name: "app".into(),
            arn: "arn:aws:iam::111122223333:role/app".into(),
            path: "/".into(),
            id: "AROA".into(),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: None,
            trust_policy: None,
            inline_policies: vec![],
            managed_policies: vec![],
            permissions_boundary: None,
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn tags_grant_by_exact_user_or_group() {
        let c = Config::default();
        let groups = vec!["eng".to_string(), "data".to_string()];
        let r = role(&[("consoleme-authorized", "ops:Dev@Example.com")]);
        assert_eq!(
            entitlement(&c, &r, "dev@example.com", &[]),
            Some(Access::Console)
        );
        let r = role(&[("consoleme-authorized", "ops: eng :sec")]);
        assert_eq!(
            entitlement(&c, &r, "x@example.com", &groups),
            Some(Access::Console)
        );
        // Never a substring: `engineering` is not `eng`, `data-admins` is not `data`.
        let r = role(&[("consoleme-authorized", "engineering:data-admins")]);
        assert_eq!(entitlement(&c, &r, "x@example.com", &groups), None);
        let r = role(&[("consoleme-authorized", "other@example.com.evil")]);
        assert_eq!(entitlement(&c, &r, "other@example.com", &[]), None);
        // An address names a user only, a name a group only: a group called like somebody's
        // address grants nothing, and neither does a user whose e-mail is a group's name.
        let r = role(&[("consoleme-authorized", "boss@example.com:eng")]);
        assert_eq!(
            entitlement(&c, &r, "x@example.com", &["boss@example.com".into()]),
            None
        );
        assert_eq!(entitlement(&c, &r, "eng", &[]), None);
        // Another tag key grants nothing.
        let r = role(&[("owner", "eng")]);
        assert_eq!(entitlement(&c, &r, "x@example.com", &groups), None);
    }

    #[test]
    fn cli_only_tags_and_console_wins() {
        let c = Config::default();
        let g = vec!["eng".to_string()];
        let r = role(&[("consoleme-owner-dl", "eng")]);
        assert_eq!(entitlement(&c, &r, "x@e.com", &g), Some(Access::CliOnly));
        let r = role(&[("consoleme-authorized-cli-only", "x@e.com")]);
        assert_eq!(entitlement(&c, &r, "x@e.com", &[]), Some(Access::CliOnly));
        let r = role(&[
            ("consoleme-authorized-cli-only", "eng"),
            ("consoleme-authorized", "eng"),
        ]);
        assert_eq!(entitlement(&c, &r, "x@e.com", &g), Some(Access::Console));
        let mut off = Config::default();
        off.cloud_credential_authorization_mapping.role_tags.enabled = false;
        assert_eq!(entitlement(&off, &r, "x@e.com", &g), None);
    }

    #[test]
    fn the_index_answers_exactly_as_the_scan() {
        let mut c = Config::default();
        c.cloud_credential_authorization_mapping
            .role_tags
            .authorized_groups_tags
            .push("team-access".into());
        let values = [
            "eng",
            "Eng:ops",
            "dev@example.com",
            "DEV@Example.com:sec",
            "engineering",
            " eng : x@y.z ",
            "",
            "::",
            "alice",
        ];
        let keys = [
            "consoleme-authorized",
            "consoleme-owner-dl",
            "consoleme-authorized-cli-only",
            "team-access",
            "owner",
        ];
        let mut snaps = vec![];
        for a in 0..3 {
            let mut principals = vec![];
            for i in 0..60usize {
                let mut p = role(&[
                    (keys[i % keys.len()], values[i % values.len()]),
                    (keys[(i / 5) % keys.len()], values[(i / 3) % values.len()]),
                ]);
                p.name = format!("r{a}-{i}");
                p.arn = format!("arn:aws:iam::11112222333{a}:role/{}", p.name);
                if i % 17 == 0 {
                    p.kind = ResourceKind::User;
                }
                principals.push(p);
            }
            snaps.push(Arc::new(Account::from_snapshot(
                AccountSnapshot {
                    account_id: format!("11112222333{a}"),
                    account_name: format!("acct-{a}"),
                    principals,
                    ..Default::default()
                },
                1,
            )));
        }
        let index = EntitlementIndex::build(&c, &snaps);
        let users: Vec<(&str, Vec<String>)> = vec![
            ("dev@example.com", vec![]),
            ("Dev@EXAMPLE.com", vec!["eng".into()]),
            ("x@y.z", vec!["Eng".into(), "sec".into()]),
            ("ALICE", vec![]),
            ("nobody@example.com", vec!["engineer".into()]),
            ("", vec!["ops".into(), "eng".into()]),
        ];
        let key = |v: Vec<EntitledRole>| -> Vec<(String, Access)> {
            v.into_iter().map(|r| (r.arn, r.access)).collect()
        };
        for (email, groups) in users {
            let scan = key(entitled_in(&c, &snaps, email, &groups));
            assert_eq!(
                key(index.lookup(email, &groups)),
                scan,
                "{email} {groups:?}"
            );
        }
        let mut off = c.clone();
        off.cloud_credential_authorization_mapping.role_tags.enabled = false;
        assert!(
            EntitlementIndex::build(&off, &snaps)
                .lookup("dev@example.com", &[])
                .is_empty()
        );
    }

    #[test]
    fn the_index_follows_role_changes_like_a_rebuild() {
        let c = Config::default();
        let mut principals = vec![];
        for i in 0..20usize {
            let mut p = role(&[(
                "consoleme-authorized",
                ["eng", "ops", "dev@example.com"][i % 3],
            )]);
            p.name = format!("r-{i}");
            p.arn = format!("arn:aws:iam::111122223333:role/r-{i}");
            principals.push(p);
        }
        let snap = AccountSnapshot {
            account_id: "111122223333".into(),
            account_name: "prod".into(),
            principals,
            ..Default::default()
        };
        let mut accounts = vec![Arc::new(Account::from_snapshot(snap, 1))];
        let mut index = EntitlementIndex::build(&c, &accounts);
        let edits: Vec<(usize, Option<&str>)> = vec![
            (0, Some("ops:dev@example.com")),
            (1, None),
            (4, Some("qa")),
            (21, Some("eng")),
            (2, Some("")),
            (0, Some("eng")),
        ];
        for (i, tag) in edits {
            let key = ResourceKey::role(&format!("r-{i}"));
            let new = tag.map(|t| {
                let mut p = role(&[("consoleme-authorized", t)]);
                p.name = format!("r-{i}");
                p.arn = format!("arn:aws:iam::111122223333:role/r-{i}");
                Item::Principal(Arc::new(p))
            });
            let mut next = (*accounts[0]).clone();
            let old = next.set(&key, new.clone());
            accounts[0] = Arc::new(next);
            let change = Changed {
                account_id: "111122223333".into(),
                key,
                old,
                new,
            };
            let updated = index.updated(&accounts, &[change]).expect("follows");
            index = (updated as Arc<dyn std::any::Any + Send + Sync>)
                .downcast::<EntitlementIndex>()
                .map(|i| (*i).clone())
                .expect("same type");
            let rebuilt = EntitlementIndex::build(&c, &accounts);
            for (email, groups) in [
                ("dev@example.com", vec![]),
                ("x@example.com", vec!["eng".to_string()]),
                ("x@example.com", vec!["ops".to_string(), "qa".to_string()]),
            ] {
                let key = |v: Vec<EntitledRole>| -> Vec<(String, Access)> {
                    v.into_iter().map(|r| (r.arn, r.access)).collect()
                };
                assert_eq!(
                    key(index.lookup(email, &groups)),
                    key(rebuilt.lookup(email, &groups)),
                    "after editing r-{i}: {email} {groups:?}"
                );
                assert_eq!(
                    key(index.lookup(email, &groups)),
                    key(entitled_in(&c, &accounts, email, &groups))
                );
            }
        }
    }

    #[test]
    fn session_names_are_sanitised() {
        assert_eq!(session_name("dev@example.com"), "dev@example.com");
        assert_eq!(session_name("a b/c!d@x.io"), "a-b-c-d@x.io");
        assert_eq!(session_name("x"), "x-");
        assert_eq!(session_name(""), "--");
        assert_eq!(session_name(&"a".repeat(100)).len(), 64);
        assert_eq!(session_name("jörg@x.de"), "j-rg@x.de");
    }

    #[test]
    fn durations_are_clamped_to_the_role() {
        assert_eq!(clamp_duration(None, None), 3600);
        assert_eq!(clamp_duration(Some(60), None), 900);
        assert_eq!(clamp_duration(Some(7200), None), 3600);
        assert_eq!(clamp_duration(Some(7200), Some(43200)), 7200);
        assert_eq!(clamp_duration(None, Some(43200)), 3600);
        assert_eq!(clamp_duration(Some(99_999_999_999), Some(43200)), 43200);
        assert_eq!(clamp_duration(Some(-5), Some(43200)), 900);
    }
}
