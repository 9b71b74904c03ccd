//! Which keys exist. Supported keys are derived from `Config::default()` (one source of truth:
//! a field added to the model is a known key at once); on top come the ConsoleMe keys the loader
//! translates itself and the ConsoleMe keys iamdesk deliberately ignores.

use super::tree::{Node, Value, join};
use super::{AccountConfig, Config};

/// ConsoleMe keys that iamdesk knows and does not use. Reported once at startup, never warned
/// about. Whole sections where iamdesk has no equivalent, and single keys inside the sections it
/// does support. Collected from ConsoleMe's example configs and its `config.get(...)` calls.
const IGNORED: &[&str] = &[
    // Whole top-level sections and keys.
    "_development_groups_override",
    "_development_user_override",
    "_security_risk_full_debugging",
    "access_requests",
    "accessui_url",
    "account_resource_cache",
    "api_auth",
    "application_details",
    "application_name",
    "application_settings",
    "aws_config",
    "aws_config_cache",
    "aws_config_cache_combined",
    "bitbucket",
    "cache_accounts_from_aws_organizations",
    "cache_cloud_accounts",
    "cache_iam_resources_for_account",
    "cache_organization_structure",
    "cache_policies_table_details",
    "cache_policy_requests",
    "cache_resource_templates",
    "cache_scps_across_organizations",
    "cache_self_service_typeahead",
    "celery",
    "challenge_url",
    "cli_auth",
    "cloudtrail_errors",
    "config",
    "consoleme_logo",
    "consoleme_s3_bucket",
    "documentation_page",
    "dynamic_config",
    "dynamo",
    "ed25519",
    "enable_self_service",
    "example_config",
    "format_role_name",
    "get_aws_config_history_url_for_resource",
    "get_user_by_oidc_settings",
    "get_user_by_saml_settings",
    "google",
    "google_analytics",
    "group_mapping_config",
    "headers",
    "json_authentication_override",
    "jwt",
    "logging",
    "logging_levels",
    "notifications",
    "oidc_secrets",
    "permission_templates",
    "permissions_map",
    "plugins",
    "policy_editor",
    "process_cloudtrail_errors",
    "retrieve_accounts_from_swag",
    "roles",
    "s3",
    "security_logo",
    "self_service_iam",
    "self_service_iam_help_message",
    "sentry",
    "site_config",
    "sso",
    "support_chat_url",
    "support_contact",
    "templated_roles",
    "tracing",
    "user_role_creator",
    "user_roles",
    "userinfo_endpoint",
    "xsrf_cookie_name",
    // Inside sections iamdesk supports.
    "auth.allow_user_registration",
    "auth.cache_user_info_server_side",
    "auth.cookie",
    "auth.extra_auth_cookies",
    "auth.force_groups_lowercase",
    "auth.get_groups_from_google",
    "auth.get_user_by_oidc",
    "auth.get_user_by_password",
    "auth.get_user_by_saml",
    "auth.groups_to_add_for_all_users",
    "auth.jwt_header_name",
    "auth.logout_redirect_url",
    "auth.password_policy",
    "auth.require_jwt",
    "auth.require_mtls",
    "aws.account_number",
    "aws.cloudtrail_table",
    "aws.compliance_account_ids",
    "aws.group_log_dynamo_table",
    "aws.iamgroups_redis_key",
    "aws.iampolicies_redis_key",
    "aws.iamroles_dynamo_table",
    "aws.iamroles_redis_key",
    "aws.iamusers_redis_key",
    "aws.ip_restrictions",
    "aws.issuer",
    "aws.notifications_table",
    "aws.requests_dynamo_table",
    "aws.session_duration",
    "aws.tags",
    "aws.users_dynamo_table",
    "event_bridge.detect_cloudtrail_denies_and_update_cache.assume_role",
    "event_bridge.detect_role_changes_and_update_cache.assume_role",
    "cloud_credential_authorization_mapping.dynamic_config",
    "cloud_credential_authorization_mapping.internal_plugin",
    "cloud_credential_authorization_mapping.role_tags.required_trust_policy_entity",
    "get_user_by_aws_alb_auth_settings.access_token_validation",
    "get_user_by_aws_alb_auth_settings.jwt_verify",
    "groups.attributes",
    "groups.can_admin_restricted",
    "groups.can_audit",
    "groups.can_create_roles",
    "groups.can_delete_iam_principals",
    "groups.can_delete_roles",
    "groups.can_delete_roles_apps",
    "groups.can_edit_attributes",
    "groups.can_edit_config",
    "groups.can_edit_health_alert",
    "groups.can_edit_policies",
    "groups.can_edit_sensitive_attributes",
    "groups.can_modify_members",
    "groups.developement_notification_emails",
    "groups.require_bg_check",
    "policies.number_cloudtrail_errors_to_display",
    "policies.redis_policies_key",
    "policies.supported_resource_types_for_policy_application",
    "redis.automatically_backup_to_s3",
    "redis.db",
    "redis.host",
    "redis.iam_managed_policies_key",
    "redis.port",
    "redis.s3_bucket_key",
    "redis.s3_buckets_key",
    "redis.s3_errors",
    "redis.sns_topics_key",
    "redis.sqs_queues_key",
    "redis.use_redislite",
    "ses.accessui",
    "slack.ignore_auto_admin_policies",
    "tornado.debug",
    "tornado.uvloop",
    "tornado.xsrf",
    "tornado.xsrf_cookie_kwargs",
];

/// ConsoleMe keys with no field in the model that `compat.rs` translates (e.g. `development`).
const TRANSLATED: &[&str] = &[
    "auth_cookie_name",
    "development",
    "event_bridge.detect_cloudtrail_denies_and_update_cache.queue_arn",
    "event_bridge.detect_role_changes_and_update_cache.queue_arn",
    "tornado.address",
    "tornado.port",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Schema {
    /// A struct: a fixed set of keys.
    Section(Vec<(String, Schema)>),
    /// A map whose keys are data (account ids); every value follows the inner schema.
    FreeMap(Box<Schema>),
    Leaf,
}

impl Schema {
    fn child(&self, key: &str) -> Option<&Schema> {
        match self {
            Schema::Section(keys) => keys.iter().find(|(k, _)| k == key).map(|(_, s)| s),
            _ => None,
        }
    }

    fn insert(&mut self, dotted: &str) {
        let Schema::Section(keys) = self else { return };
        let (head, rest) = match dotted.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (dotted, None),
        };
        let pos = match keys.iter().position(|(k, _)| k == head) {
            Some(p) => p,
            None => {
                let fresh = if rest.is_some() {
                    Schema::Section(vec![])
                } else {
                    Schema::Leaf
                };
                keys.push((head.to_owned(), fresh));
                keys.len() - 1
            }
        };
        if let (Some(rest), Some((_, child))) = (rest, keys.get_mut(pos)) {
            child.insert(rest);
        }
    }
}

fn from_json(v: &serde_json::Value) -> Schema {
    match v {
        // Every model struct has fields, so an empty object in the defaults is a map whose
        // keys are data (`account_ids_to_name`, `accounts`). Pinned by a test below.
        serde_json::Value::Object(m) if m.is_empty() => Schema::FreeMap(Box::new(Schema::Leaf)),
        serde_json::Value::Object(m) => {
            Schema::Section(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
        _ => Schema::Leaf,
    }
}

/// The supported keys: the model plus the ConsoleMe keys the loader translates.
pub(crate) fn schema() -> Schema {
    let mut schema = serde_json::to_value(Config::default())
        .map(|v| from_json(&v))
        .unwrap_or(Schema::Section(vec![]));
    if let Schema::Section(keys) = &mut schema {
        let account = serde_json::to_value(AccountConfig::default())
            .map(|v| from_json(&v))
            .unwrap_or(Schema::Leaf);
        if let Some((_, s)) = keys.iter_mut().find(|(k, _)| k == "accounts") {
            *s = Schema::FreeMap(Box::new(account));
        }
    }
    for key in TRANSLATED {
        schema.insert(key);
    }
    schema
}

/// Every supported dotted key (not descending into free maps), for suggestions.
fn dotted_keys(schema: &Schema, prefix: &str, out: &mut Vec<String>) {
    if let Schema::Section(keys) = schema {
        for (k, s) in keys {
            let path = join(prefix, k);
            dotted_keys(s, &path, out);
            out.push(path);
        }
    }
}

/// What classification found: one warning per unknown key, ConsoleMe keys iamdesk ignores.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub warnings: Vec<String>,
    pub ignored: Vec<String>,
}

/// Removes unknown and ignored keys from the tree (so that nothing else, e.g. `${VAR}`
/// expansion, trips over them) and records them.
pub(crate) fn classify(root: &mut Node, schema: &Schema, findings: &mut Findings) {
    let mut all = Vec::new();
    dotted_keys(schema, "", &mut all);
    walk(root, schema, "", &all, findings);
}

fn walk(node: &mut Node, schema: &Schema, prefix: &str, all: &[String], findings: &mut Findings) {
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    match schema {
        Schema::Leaf => {}
        Schema::FreeMap(inner) => {
            for e in entries.iter_mut() {
                walk(&mut e.value, inner, &join(prefix, &e.key), all, findings);
            }
        }
        Schema::Section(_) => entries.retain_mut(|e| {
            let dotted = join(prefix, &e.key);
            if let Some(child) = schema.child(&e.key) {
                walk(&mut e.value, child, &dotted, all, findings);
                true
            } else if IGNORED.contains(&dotted.as_str()) {
                if !findings.ignored.contains(&dotted) {
                    findings.ignored.push(dotted);
                }
                false
            } else {
                let mut w = format!(
                    "unknown key '{dotted}' in {} line {}",
                    e.key_at.file.display(),
                    e.key_at.line
                );
                if let Some(s) = suggest(&e.key, prefix, schema, all) {
                    w.push_str(&format!(" (did you mean '{s}'?)"));
                }
                findings.warnings.push(w);
                false
            }
        }),
    }
}

/// A close sibling first (`can_admn` → `groups.can_admin`), else the same name elsewhere
/// (`role_name` at the top → `policies.role_name`), else a close name elsewhere.
fn suggest(key: &str, prefix: &str, section: &Schema, all: &[String]) -> Option<String> {
    let similarity = |a: &str, b: &str| {
        strsim::normalized_damerau_levenshtein(&a.to_ascii_lowercase(), &b.to_ascii_lowercase())
    };
    let best = |candidates: &mut dyn Iterator<Item = (String, &str)>, min: f64| {
        candidates
            .map(|(full, name)| (similarity(key, name), full))
            .filter(|(score, _)| *score >= min)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, full)| full)
    };
    let leaf = |path: &str| path.rsplit('.').next().unwrap_or(path).to_owned();
    if let Schema::Section(keys) = section
        && let Some(s) = best(
            &mut keys.iter().map(|(k, _)| (join(prefix, k), k.as_str())),
            0.6,
        )
    {
        return Some(s);
    }
    if let Some(same) = all.iter().find(|p| leaf(p) == key) {
        return Some(same.clone());
    }
    let leaves: Vec<(String, String)> = all.iter().map(|p| (p.clone(), leaf(p))).collect();
    best(
        &mut leaves.iter().map(|(p, l)| (p.clone(), l.as_str())),
        0.8,
    )
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse;
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    fn run(yaml: &str) -> (Node, Findings) {
        let file: Arc<Path> = Arc::from(Path::new("/cfg/k.yaml"));
        let mut node = parse(yaml, &file).unwrap();
        let mut f = Findings::default();
        classify(&mut node, &schema(), &mut f);
        (node, f)
    }

    #[test]
    fn only_the_intended_maps_have_free_keys() {
        let Schema::Section(keys) = schema() else {
            panic!("root is a section")
        };
        let free: Vec<&str> = keys
            .iter()
            .filter(|(_, s)| matches!(s, Schema::FreeMap(_)))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(free, ["account_ids_to_name", "accounts"]);
    }

    #[test]
    fn ignored_keys_are_not_supported_keys() {
        let s = schema();
        let mut all = Vec::new();
        dotted_keys(&s, "", &mut all);
        for key in IGNORED {
            assert!(
                !all.iter().any(|k| k == key),
                "{key} is both ignored and supported"
            );
        }
    }

    #[test]
    fn typo_in_a_section_gets_a_sibling_suggestion() {
        let (node, f) = run("url: x\ngroups:\n  can_admn: [a]\n");
        assert_eq!(
            f.warnings,
            [
                "unknown key 'groups.can_admn' in /cfg/k.yaml line 3 (did you mean 'groups.can_admin'?)"
            ]
        );
        assert!(
            node.lookup("groups.can_admn").is_none(),
            "unknown keys are removed"
        );
    }

    #[test]
    fn key_in_the_wrong_section_gets_its_real_place() {
        let (_, f) = run("role_name: x\n");
        assert_eq!(
            f.warnings,
            ["unknown key 'role_name' in /cfg/k.yaml line 1 (did you mean 'policies.role_name'?)"]
        );
    }

    #[test]
    fn nonsense_gets_no_suggestion() {
        let (_, f) = run("zzzzqqqq: 1\n");
        assert_eq!(f.warnings, ["unknown key 'zzzzqqqq' in /cfg/k.yaml line 1"]);
    }

    #[test]
    fn free_maps_accept_any_key_but_check_inside() {
        let (_, f) = run(
            "account_ids_to_name:\n  '123456789012': a\naccounts:\n  '123456789012':\n    role_nme: R\n",
        );
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(f.warnings[0].contains("'accounts.123456789012.role_nme'"));
        assert!(f.warnings[0].contains("did you mean 'accounts.123456789012.role_name'"));
    }

    #[test]
    fn ignored_keys_are_listed_once_and_removed() {
        let (node, f) = run(
            "celery: {a: 1}\ntornado:\n  port: 1\n  debug: true\ngroups:\n  can_edit_config: [a]\n",
        );
        assert_eq!(
            f.ignored,
            ["celery", "tornado.debug", "groups.can_edit_config"]
        );
        assert!(f.warnings.is_empty());
        assert!(node.get("celery").is_none());
        assert!(node.lookup("tornado.port").is_some());
    }
}
