//! Configuration contract (GUIDE §2): real files on disk, ConsoleMe's own example configs, and
//! `iamdesk check-config` as users run it.

use std::path::{Path, PathBuf};
use std::process::Command;

use iamdesk::config::{
    AwsMode, ConfigError, Environment, Loaded, discover, load_file, load_file_with_env,
    redacted_yaml,
};
use tempfile::TempDir;

/// This project's own fixtures in ConsoleMe's shapes (`tests/fixtures/consoleme-shaped/`).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/consoleme-shaped")
        .join(name)
}

/// ConsoleMe's own example configs, kept beside the repository in `../shared` (not part of it).
/// `None`, with the reason printed, on a bare clone: the tests using them then skip.
fn shared_consoleme_example(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/consoleme")
        .join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is absent (ConsoleMe's example configs live outside the repository; \
             the same checks run on tests/fixtures/consoleme-shaped)",
            path.display()
        );
        None
    }
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write fixture");
    path
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_file_with_env(path, &no_env)
}

fn load_err(path: &Path) -> String {
    match load(path) {
        Ok(l) => panic!(
            "{} loaded but should not have: {:?}",
            path.display(),
            l.config
        ),
        Err(e) => e.to_string(),
    }
}

/// What an ALB-auth configuration in ConsoleMe's layout (top file extending base + secrets)
/// must come out as; the values differ between our fixture and ConsoleMe's example.
struct AlbExample<'a> {
    url: &'a str,
    admin: &'a str,
    name: &'a str,
    sender: &'a str,
    ses_region: &'a str,
    ses_arn: &'a str,
    can_admin_policies: &'a [&'a str],
    region: &'a str,
    port: u16,
    cli_only_tags: &'a [&'a str],
}

fn check_alb_example(path: &Path, want: &AlbExample) {
    let loaded = load_file(path).expect("an ALB example in ConsoleMe's layout must load unchanged");
    let c = &loaded.config;

    assert_eq!(loaded.source.as_deref(), Some(path));
    assert_eq!(
        loaded.files.len(),
        3,
        "top file, base and secrets: {:?}",
        loaded.files
    );
    // From the top file.
    assert_eq!(
        c.environment,
        Environment::Dev,
        "development: true means dev"
    );
    assert_eq!(c.url, want.url);
    assert!(c.auth.get_user_by_aws_alb_auth && c.auth.set_auth_cookie);
    assert_eq!(c.get_user_by_aws_alb_auth_settings.jwt_email_key, "sub");
    assert_eq!(c.get_user_by_aws_alb_auth_settings.jwt_groups_key, "groups");
    // From the base file.
    assert_eq!(c.application_admin.as_deref(), Some(want.admin));
    assert_eq!(c.ses.consoleme.name, want.name);
    assert_eq!(c.ses.consoleme.sender.as_deref(), Some(want.sender));
    assert_eq!(c.ses.region, want.ses_region);
    assert_eq!(c.ses.arn.as_deref(), Some(want.ses_arn));
    assert_eq!(c.groups.can_admin_policies, want.can_admin_policies);
    assert_eq!(c.aws.region, want.region);
    assert_eq!(c.listen.port(), want.port, "tornado.port");
    assert_eq!(
        c.cloud_credential_authorization_mapping
            .role_tags
            .authorized_groups_cli_only_tags,
        want.cli_only_tags
    );
    assert_eq!(c.aws.mode, AwsMode::Sandbox, "no accounts configured");

    // Everything in ConsoleMe's layout is either used or knowingly ignored.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    for key in [
        "celery",
        "cli_auth",
        "logging_levels",
        "challenge_url",
        "example_config",
        "jwt",
        "oidc_secrets",
        "bitbucket",
        "aws.issuer",
        "groups.can_edit_config",
        "tornado.debug",
    ] {
        assert!(
            loaded.ignored.iter().any(|k| k == key),
            "{key} not in {:?}",
            loaded.ignored
        );
    }
    let unique: std::collections::HashSet<_> = loaded.ignored.iter().collect();
    assert_eq!(unique.len(), loaded.ignored.len(), "listed once each");
}

fn check_base_and_secrets_load_alone(base: &Path, secrets: &Path, name: &str) {
    let loaded = load_file(base).expect("base loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.environment, Environment::Prod);
    assert_eq!(loaded.config.ses.consoleme.name, name);
    let secrets = load_file(secrets).expect("secrets load");
    assert!(secrets.warnings.is_empty(), "{:?}", secrets.warnings);
}

#[test]
fn consoleme_shaped_alb_config_loads_through_extends() {
    check_alb_example(
        &fixture("portal_alb.yaml"),
        &AlbExample {
            url: "http://127.0.0.1:8090",
            admin: "iam-owners@corp.example",
            name: "Corp IAM",
            sender: "iam-portal@corp.example",
            ses_region: "eu-west-1",
            ses_arn: "arn:aws:ses:eu-west-1:210987654321:identity/corp.example",
            can_admin_policies: &["iam-owners@corp.example", "security@corp.example"],
            region: "eu-west-1",
            port: 8090,
            cli_only_tags: &["corp-owner-dl", "corp-authorized-cli-only"],
        },
    );
}

#[test]
fn consoleme_shaped_base_and_secrets_load_alone() {
    check_base_and_secrets_load_alone(
        &fixture("portal_base.yaml"),
        &fixture("portal_secrets.yaml"),
        "Corp IAM",
    );
}

/// Reads `../shared` (ConsoleMe's own example, unmodified); skips when it is absent.
#[test]
fn shared_consoleme_alb_example_loads_as_is_through_extends() {
    let Some(path) = shared_consoleme_example("example_config_alb_auth.yaml") else {
        return;
    };
    check_alb_example(
        &path,
        &AlbExample {
            url: "http://127.0.0.1:8081",
            admin: "consoleme_admins@example.com",
            name: "ConsoleMe",
            sender: "consoleme_test@example.com",
            ses_region: "us-west-2",
            ses_arn: "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            can_admin_policies: &["consoleme_admins@example.com"],
            region: "us-east-1",
            port: 8081,
            cli_only_tags: &["consoleme-owner-dl", "consoleme-authorized-cli-only"],
        },
    );
}

/// Reads `../shared` (ConsoleMe's own examples, unmodified); skips when they are absent.
#[test]
fn shared_consoleme_base_example_loads_alone() {
    let (Some(base), Some(secrets)) = (
        shared_consoleme_example("example_config_base.yaml"),
        shared_consoleme_example("example_secrets.yaml"),
    ) else {
        return;
    };
    check_base_and_secrets_load_alone(&base, &secrets, "ConsoleMe");
}

/// Seed 003: ConsoleMe silently used the last of two `role_name`s.
#[test]
fn duplicate_role_name_is_an_error_naming_file_and_line() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "base.yaml",
        "url: http://x\npolicies:\n  role_name: consoleme-spoke-account-worker-role-A\n  role_name: consoleme-spoke-account-worker-role-B\n",
    );
    let err = load_err(&path);
    assert_eq!(
        err,
        format!(
            "{}:4:3: duplicate key 'role_name' in 'policies' (first at line 3)",
            path.display()
        )
    );
}

#[test]
fn duplicate_account_id_is_an_error() {
    let dir = TempDir::new().expect("tempdir");
    let same_spelling = write(
        &dir,
        "a.yaml",
        "account_ids_to_name:\n  \"123456789012\": prod\n  \"123456789012\": test\n",
    );
    let err = load_err(&same_spelling);
    assert!(
        err.starts_with(&format!(
            "{}:3:3: duplicate key '123456789012' in 'account_ids_to_name'",
            same_spelling.display()
        )),
        "{err}"
    );

    // Quoted and unquoted spell the same account.
    let mixed = write(
        &dir,
        "b.yaml",
        "account_ids_to_name:\n  123456789012: prod\n  \"123456789012\": test\n",
    );
    let err = load_err(&mixed);
    assert!(
        err.starts_with(&format!(
            "{}:3:3: duplicate key '123456789012'",
            mixed.display()
        )),
        "{err}"
    );
}

#[test]
fn wrong_type_names_file_line_key_and_expected_type() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "c.yaml",
        "url: http://x\nrate_limit:\n  api_per_minute: lots\n",
    );
    assert_eq!(
        load_err(&path),
        format!(
            "{}:3:19: 'rate_limit.api_per_minute' must be an integer from 0 to 4294967295, got \"lots\"",
            path.display()
        )
    );

    let path = write(&dir, "d.yaml", "listen: abc\n");
    assert_eq!(
        load_err(&path),
        format!(
            "{}:1:9: 'listen' must be a socket address like 127.0.0.1:8081, got \"abc\"",
            path.display()
        )
    );

    let path = write(&dir, "e.yaml", "auth:\n  get_user_by_header: sometimes\n");
    let err = load_err(&path);
    assert!(
        err.contains(":2:23: 'auth.get_user_by_header' must be true or false"),
        "{err}"
    );
}

#[test]
fn extends_merges_deeply_relative_to_the_including_file_and_the_includer_wins() {
    let dir = TempDir::new().expect("tempdir");
    write(
        &dir,
        "shared/base.yaml",
        "url: http://base\napplication_admin: base-admins@example.com\nses:\n  region: eu-west-1\n  consoleme:\n    name: Base\n    sender: base@example.com\ngroups:\n  can_admin: [base]\nextends:\n  - deeper/defaults.yaml\n",
    );
    write(
        &dir,
        "shared/deeper/defaults.yaml",
        "sync:\n  interval_seconds: 600\nurl: http://deeper\n",
    );
    let top = write(
        &dir,
        "conf/top.yaml",
        "extends: [../shared/base.yaml]\nurl: http://top\nses:\n  consoleme:\n    name: Top\ngroups:\n  can_admin: [top]\n",
    );
    let loaded = load(&top).expect("loads");
    let c = &loaded.config;
    assert_eq!(c.url, "http://top", "the including file wins");
    assert_eq!(c.ses.consoleme.name, "Top");
    assert_eq!(
        c.ses.consoleme.sender.as_deref(),
        Some("base@example.com"),
        "maps merge key by key"
    );
    assert_eq!(c.ses.region, "eu-west-1");
    assert_eq!(
        c.groups.can_admin,
        ["top"],
        "lists are replaced, not appended"
    );
    assert_eq!(
        c.application_admin.as_deref(),
        Some("base-admins@example.com")
    );
    assert_eq!(c.sync.interval_seconds, 600, "extends of an extended file");
    assert_eq!(loaded.files.len(), 3);
}

#[test]
fn extends_cycle_is_an_error_naming_the_files() {
    let dir = TempDir::new().expect("tempdir");
    write(&dir, "a.yaml", "url: http://a\nextends:\n  - b.yaml\n");
    write(&dir, "b.yaml", "extends: [a.yaml]\n");
    let a = dir.path().join("a.yaml");
    let err = load_err(&a);
    // The error points into b.yaml, at its `extends` entry naming a.yaml again.
    let b = dir.path().join("b.yaml");
    assert!(
        err.starts_with(&format!("{}:1:11: 'extends' cycle: ", b.display())),
        "{err}"
    );
    assert!(
        err.contains("a.yaml -> ") && err.contains("b.yaml -> "),
        "{err}"
    );

    let selfish = write(&dir, "self.yaml", "extends: [self.yaml]\n");
    assert!(load_err(&selfish).contains("'extends' cycle"));
}

#[test]
fn missing_extended_file_is_an_error_naming_it_and_the_line() {
    let dir = TempDir::new().expect("tempdir");
    let top = write(
        &dir,
        "top.yaml",
        "url: http://x\nextends:\n  - present.yaml\n  - missing.yaml\n",
    );
    write(&dir, "present.yaml", "");
    let err = load_err(&top);
    assert!(
        err.starts_with(&format!(
            "{}:4:5: cannot read extended file {}",
            top.display(),
            dir.path().join("missing.yaml").display()
        )),
        "{err}"
    );
}

#[test]
fn unknown_keys_warn_with_a_suggestion_and_do_not_fail() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "u.yaml",
        "url: http://x\ngroups:\n  can_admin: [a]\n  can_admn: [b]\nlisen: 0.0.0.0:1\nwhatever_this_is: 1\n",
    );
    let loaded = load(&path).expect("unknown keys are warnings");
    let file = path.display();
    assert_eq!(
        loaded.warnings,
        [
            format!(
                "unknown key 'groups.can_admn' in {file} line 4 (did you mean 'groups.can_admin'?)"
            ),
            format!("unknown key 'lisen' in {file} line 5 (did you mean 'listen'?)"),
            format!("unknown key 'whatever_this_is' in {file} line 6"),
        ]
    );
    assert_eq!(loaded.config.groups.can_admin, ["a"]);
    assert_eq!(
        loaded.config.listen.port(),
        8081,
        "the misspelt key had no effect"
    );
}

#[test]
fn ignored_consoleme_keys_are_listed_not_warned() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "i.yaml",
        "celery:\n  active_region: us-west-2\nsentry:\n  dsn: x\ngroups:\n  can_edit_policies: [x]\ncloud_credential_authorization_mapping:\n  role_tags:\n    enabled: false\n",
    );
    let loaded = load(&path).expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.ignored,
        ["celery", "sentry", "groups.can_edit_policies"]
    );
    assert!(
        !loaded
            .config
            .cloud_credential_authorization_mapping
            .role_tags
            .enabled
    );
}

#[test]
fn env_vars_are_expanded_in_values() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "env.yaml",
        "jwt_secret: ${IAMDESK_TEST_JWT}\nredis:\n  url: redis://:${IAMDESK_TEST_REDIS_PW}@cache:6379/0\nurl: https://${IAMDESK_TEST_HOST:-iam.example.com}\nses:\n  support_reference: \"costs $${PRICE}\"\n",
    );
    let env = |name: &str| match name {
        "IAMDESK_TEST_JWT" => Some("jwt-from-env".to_owned()),
        "IAMDESK_TEST_REDIS_PW" => Some("pw-from-env".to_owned()),
        _ => None,
    };
    let c = load_file_with_env(&path, &env).expect("loads").config;
    assert_eq!(c.jwt_secret.as_deref(), Some("jwt-from-env"));
    assert_eq!(
        c.redis.url.as_deref(),
        Some("redis://:pw-from-env@cache:6379/0")
    );
    assert_eq!(c.url, "https://iam.example.com");
    assert_eq!(c.ses.support_reference, "costs ${PRICE}");

    let err = load_err(&path);
    assert_eq!(
        err,
        format!(
            "{}:1:13: 'jwt_secret': environment variable IAMDESK_TEST_JWT is not set",
            path.display()
        )
    );
}

#[test]
fn account_ids_quoted_or_not_are_normalised_to_12_digits() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "acc.yaml",
        "account_ids_to_name:\n  123456789012: prod\n  \"000000000001\": sandbox\n  2: legacy\n  000000000003: zeros\naccounts:\n  1:\n    role_name: SpokeRole\n",
    );
    let c = load(&path).expect("loads").config;
    let ids: Vec<&str> = c.account_ids_to_name.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "000000000001",
            "000000000002",
            "000000000003",
            "123456789012"
        ]
    );
    assert_eq!(c.account_ids_to_name["000000000002"], "legacy");
    assert_eq!(c.spoke_role_name("000000000001"), "SpokeRole");
    assert_eq!(c.spoke_role_name("123456789012"), "ConsoleMeRole");
    assert_eq!(
        c.aws.mode,
        AwsMode::Aws,
        "accounts configured, aws.mode not written"
    );

    let bad = write(
        &dir,
        "bad.yaml",
        "account_ids_to_name:\n  1234567890123: too-long\n",
    );
    let err = load_err(&bad);
    assert!(
        err.starts_with(&format!(
            "{}:2:3: 'account_ids_to_name.1234567890123': not an AWS account id",
            bad.display()
        )),
        "{err}"
    );
}

#[test]
fn an_included_file_may_override_an_account_spelt_differently() {
    let dir = TempDir::new().expect("tempdir");
    write(&dir, "base.yaml", "account_ids_to_name:\n  1: old-name\n");
    let top = write(
        &dir,
        "top.yaml",
        "extends: [base.yaml]\naccount_ids_to_name:\n  \"000000000001\": new-name\n",
    );
    let c = load(&top).expect("loads").config;
    assert_eq!(c.account_ids_to_name.len(), 1);
    assert_eq!(c.account_ids_to_name["000000000001"], "new-name");
}

#[test]
fn discovery_prefers_explicit_then_config_location_then_candidates() {
    let dir = TempDir::new().expect("tempdir");
    let explicit = write(&dir, "explicit.yaml", "");
    let env_named = write(&dir, "env.yaml", "");
    let iamdesk = dir.path().join("iamdesk.yaml");
    let consoleme = write(&dir, "consoleme.yaml", "");
    let candidates = vec![iamdesk.clone(), consoleme.clone()];

    assert_eq!(
        discover(Some(&explicit), Some(&env_named), &candidates),
        Some(explicit)
    );
    assert_eq!(
        discover(None, Some(&env_named), &candidates),
        Some(env_named)
    );
    assert_eq!(discover(None, None, &candidates), Some(consoleme));
    write(&dir, "iamdesk.yaml", "");
    assert_eq!(discover(None, None, &candidates), Some(iamdesk));
    assert_eq!(discover(None, None, &[dir.path().join("nope.yaml")]), None);
}

#[test]
fn redacted_yaml_never_shows_secrets() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "s.yaml",
        "jwt_secret: jwt-hunter2\nredis:\n  url: redis://default:redis-hunter2@cache:6379/0\nslack:\n  notifications_enabled: true\n  webhook_url: https://hooks.slack.com/services/T0/B0/slack-hunter2\nurl: https://iam.example.com\n",
    );
    let loaded = load(&path).expect("loads");
    let out = redacted_yaml(&loaded.config);
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("jwt_secret: <redacted>"), "{out}");
    assert!(out.contains("webhook_url: <redacted>"), "{out}");
    assert!(
        out.contains("redis://default:<redacted>@cache:6379/0"),
        "{out}"
    );
    assert!(out.contains("url: https://iam.example.com"), "{out}");
}

fn check_config(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iamdesk"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("CONFIG_LOCATION")
        .env("IAMDESK_LOG_FORMAT", "json")
        .env("RUST_LOG", "error")
        .output()
        .expect("run iamdesk check-config")
}

#[test]
fn check_config_prints_redacted_config_and_fails_on_errors() {
    let dir = TempDir::new().expect("tempdir");
    let good = write(
        &dir,
        "good.yaml",
        concat!(
            "jwt_secret: cli-hunter2\nurl: https://iam.example.com\ncelery: {}\n",
            "auth:\n  get_user_by_aws_alb_auth: true\n  alb:\n    arns: [arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1]\n"
        ),
    );
    let out = check_config(&good);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("url: https://iam.example.com"), "{stdout}");
    assert!(stdout.contains("jwt_secret: <redacted>"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");

    let bad = write(
        &dir,
        "bad.yaml",
        "policies:\n  role_name: A\n  role_name: B\n",
    );
    let out = check_config(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:3:3: duplicate key 'role_name'", bad.display())),
        "{stderr}"
    );
}

#[test]
fn events_keys_load_and_their_errors_name_key_and_line() {
    let dir = TempDir::new().expect("tempdir");
    let good = write(
        &dir,
        "events.yaml",
        "events:\n  queues:\n    - arn:aws:sqs:eu-west-1:123456789012:iam-events\n  \
         sns_topics: [arn:aws:sns:eu-west-1:123456789012:config]\n  config:\n    \
         repeat_minutes: 15\n  denies:\n    keep_days: 7\n",
    );
    let loaded = load(&good).expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.events.config.repeat_minutes, 15);
    assert_eq!(loaded.config.events.denies.keep_days, 7);
    assert_eq!(loaded.config.events.wait_seconds, 20, "default");
    let bad = write(
        &dir,
        "bad.yaml",
        "url: https://iamdesk.example.com\nevents:\n  queues: [not-a-queue]\n",
    );
    let e = load_err(&bad);
    assert!(
        e.contains("bad.yaml:3:") && e.contains("'events.queues'"),
        "{e}"
    );
    assert!(e.contains("not-a-queue"), "{e}");
}

#[test]
fn consolemes_event_bridge_queue_arns_become_event_queues() {
    let dir = TempDir::new().expect("tempdir");
    let path = write(
        &dir,
        "consoleme.yaml",
        "aws:\n  region: eu-west-1\nevent_bridge:\n  detect_role_changes_and_update_cache:\n    \
         queue_arn: arn:aws:sqs:{region}:123456789012:consoleme-cloudtrail-role-events\n    \
         assume_role: arn:aws:iam::123456789012:role/ConsoleMe\n  \
         detect_cloudtrail_denies_and_update_cache:\n    \
         queue_arn: arn:aws:sqs:{region}:123456789012:consoleme-cloudtrail-access-deny-events\n",
    );
    let loaded = load(&path).expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.events.queues,
        [
            "arn:aws:sqs:eu-west-1:123456789012:consoleme-cloudtrail-role-events",
            "arn:aws:sqs:eu-west-1:123456789012:consoleme-cloudtrail-access-deny-events"
        ]
    );
    assert!(
        loaded
            .ignored
            .iter()
            .any(|k| k == "event_bridge.detect_role_changes_and_update_cache.assume_role"),
        "{:?}",
        loaded.ignored
    );
}
