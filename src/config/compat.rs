//! ConsoleMe spellings that do not map one-to-one onto the model, and account id normalisation.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::load::ConfigError;
use super::tree::{Node, Value, join};
use super::{AwsMode, Config};

/// Sections whose keys are AWS account ids.
const ACCOUNT_MAPS: &[&str] = &["account_ids_to_name", "accounts"];

/// `123456789012`, `"000000000001"` or `1` → the 12-digit form. ConsoleMe configs often leave
/// ids unquoted, and YAML then reads them as integers, losing leading zeros.
pub fn normalize_account_id(raw: &str) -> Option<String> {
    let ok = !raw.is_empty() && raw.len() <= 12 && raw.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("{raw:0>12}"))
}

/// Rewrites the keys of `account_ids_to_name` and `accounts` in one file. Done per file, before
/// `extends` merging, so that `1` in a base file and `000000000001` in the including file are
/// the same account (an override), while the two in one file are a duplicate (an error).
pub(crate) fn normalize_account_keys(root: &mut Node) -> Result<(), ConfigError> {
    // `accounts.sensitive` is a list, not an account: it moves to `sensitive_accounts`.
    if let Some(sensitive) = root.get_mut("accounts").and_then(|a| a.remove("sensitive")) {
        root.set("sensitive_accounts", sensitive.key_at, sensitive.value);
    }
    for section in ACCOUNT_MAPS {
        let Some(map) = root.get_mut(section) else {
            continue;
        };
        let Some(entries) = map.entries_mut() else {
            continue; // Not a mapping: typing reports it with the expected type.
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        for e in entries.iter_mut() {
            let Some(id) = normalize_account_id(&e.key) else {
                return Err(ConfigError::Invalid {
                    at: e.key_at.clone(),
                    key: join(section, &e.key),
                    message: "not an AWS account id: write up to 12 digits, quoted or not \
                              (e.g. \"000000000001\" or 123456789012)"
                        .into(),
                });
            };
            if let Some(first_line) = seen.get(&id) {
                return Err(ConfigError::DuplicateKey {
                    at: e.key_at.clone(),
                    key: id,
                    section: (*section).to_owned(),
                    first_line: *first_line,
                });
            }
            seen.insert(id.clone(), e.key_at.line);
            e.key = id;
        }
    }
    Ok(())
}

/// Applies ConsoleMe keys that have no field of their own, then removes them:
/// `development: true` → `environment: dev` (an explicit `environment` wins);
/// `tornado.port` / `tornado.address` → `listen` unless `listen` is written;
/// `auth_cookie_name` → `auth.cookie_name` unless that is written.
/// Also checks `listen`, whose parse error from serde would not say what a valid value is.
pub(crate) fn translate(root: &mut Node) -> Result<(), ConfigError> {
    if let Some(dev) = root.remove("development") {
        let is_dev = as_bool(&dev.value)
            .ok_or_else(|| wrong_type(&dev.value, "development", "true or false"))?;
        if is_dev && root.get("environment").is_none() {
            root.set(
                "environment",
                dev.key_at,
                Node::new(Value::Str("dev".into()), dev.value.at),
            );
        }
    }

    if let Some(tornado) = root.remove("tornado") {
        let listen = tornado_listen(&tornado.value)?;
        if let Some(addr) = listen
            && root.get("listen").is_none()
        {
            root.set(
                "listen",
                tornado.key_at,
                Node::new(Value::Str(addr.to_string()), tornado.value.at),
            );
        }
    }

    if let Some(name) = root.remove("auth_cookie_name") {
        let auth_has_name = root.lookup("auth.cookie_name").is_some();
        if !auth_has_name {
            if root.get("auth").is_none() {
                root.set(
                    "auth",
                    name.key_at.clone(),
                    Node::new(Value::Map(vec![]), name.key_at.clone()),
                );
            }
            if let Some(auth) = root.get_mut("auth") {
                auth.set("cookie_name", name.key_at, name.value);
            }
        }
    }

    event_bridge_queues(root)?;

    for (key, example) in [
        ("listen", "127.0.0.1:8081"),
        ("metrics.listen", "127.0.0.1:9090"),
    ] {
        if let Some(node) = root.lookup(key) {
            let ok = match &node.value {
                Value::Str(s) => s.trim().parse::<SocketAddr>().is_ok(),
                // Written but empty: metrics stay off.
                Value::Null => key != "listen",
                _ => false,
            };
            if !ok {
                return Err(wrong_type(
                    node,
                    key,
                    &format!("a socket address like {example}"),
                ));
            }
        }
    }
    Ok(())
}

/// ConsoleMe's `celery.sync_regions` → `aws.regions` unless that is written. Runs before the
/// keys are classified, as the rest of `celery` is ignored (and reported once) as a whole.
pub(crate) fn sync_regions(root: &mut Node) {
    let Some(regions) = root.lookup("celery.sync_regions").cloned() else {
        return;
    };
    let at = regions.at.clone();
    if root.lookup("aws.regions").is_none() {
        if root.get("aws").is_none() {
            root.set("aws", at.clone(), Node::new(Value::Map(vec![]), at.clone()));
        }
        if let Some(aws) = root.get_mut("aws") {
            aws.set("regions", at.clone(), regions);
        }
    }
}

/// ConsoleMe's EventBridge jobs read one queue each:
/// `event_bridge.detect_role_changes_and_update_cache.queue_arn` and
/// `event_bridge.detect_cloudtrail_denies_and_update_cache.queue_arn` (with `{region}` standing
/// for `aws.region`). iamdesk reads both kinds of events from any queue, so they become
/// `events.queues` unless that is written.
fn event_bridge_queues(root: &mut Node) -> Result<(), ConfigError> {
    let Some(bridge) = root.remove("event_bridge") else {
        return Ok(());
    };
    let region = match root.lookup("aws.region").map(|n| &n.value) {
        Some(Value::Str(r)) => r.clone(),
        _ => "us-east-1".to_string(),
    };
    let mut queues: Vec<Node> = vec![];
    for job in [
        "detect_role_changes_and_update_cache",
        "detect_cloudtrail_denies_and_update_cache",
    ] {
        let key = format!("{job}.queue_arn");
        match bridge.value.lookup(&key) {
            None => {}
            Some(Node {
                value: Value::Null, ..
            }) => {}
            Some(
                node @ Node {
                    value: Value::Str(arn),
                    ..
                },
            ) => {
                let arn = arn.trim().replace("{region}", &region);
                let seen = queues
                    .iter()
                    .any(|q| matches!(&q.value, Value::Str(s) if *s == arn));
                if !arn.is_empty() && !seen {
                    queues.push(Node::new(Value::Str(arn), node.at.clone()));
                }
            }
            Some(node) => {
                return Err(wrong_type(
                    node,
                    &join("event_bridge", &key),
                    "an SQS queue ARN",
                ));
            }
        }
    }
    if queues.is_empty() || root.lookup("events.queues").is_some() {
        return Ok(());
    }
    if root.get("events").is_none() {
        root.set(
            "events",
            bridge.key_at.clone(),
            Node::new(Value::Map(vec![]), bridge.key_at.clone()),
        );
    }
    if let Some(events) = root.get_mut("events") {
        events.set(
            "queues",
            bridge.key_at,
            Node::new(Value::Seq(queues), bridge.value.at),
        );
    }
    Ok(())
}

fn tornado_listen(tornado: &Node) -> Result<Option<SocketAddr>, ConfigError> {
    if matches!(tornado.value, Value::Null) {
        return Ok(None);
    }
    if tornado.entries().is_none() {
        return Err(wrong_type(tornado, "tornado", "a mapping"));
    }
    let port = match tornado.get("port") {
        None => None,
        Some(node) => Some(
            as_int(node)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| wrong_type(node, "tornado.port", "a port number from 1 to 65535"))?,
        ),
    };
    let address = match tornado.get("address") {
        None => None,
        Some(node) => Some(
            match &node.value {
                Value::Str(s) => s.trim().parse::<IpAddr>().ok(),
                _ => None,
            }
            .ok_or_else(|| wrong_type(node, "tornado.address", "an IP address like 0.0.0.0"))?,
        ),
    };
    if port.is_none() && address.is_none() {
        return Ok(None);
    }
    let default = Config::default().listen;
    Ok(Some(SocketAddr::new(
        address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port.unwrap_or(default.port()),
    )))
}

fn as_bool(v: &Node) -> Option<bool> {
    match &v.value {
        Value::Bool(b) => Some(*b),
        // `development: ${DEV}` and ConsoleMe's YAML 1.1 `yes`/`no`.
        Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_int(v: &Node) -> Option<i128> {
    match &v.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) if v.expanded => s.trim().parse().ok(),
        _ => None,
    }
}

fn wrong_type(node: &Node, key: &str, expected: &str) -> ConfigError {
    ConfigError::WrongType {
        at: node.at.clone(),
        key: key.into(),
        expected: expected.into(),
        got: node.describe(),
    }
}

/// Defaults that depend on other keys, applied after typing.
pub(crate) fn derived_defaults(config: &mut Config, tree: &Node) {
    // With accounts configured the portal is meant to manage them; the sandbox is for demos.
    if tree.lookup("aws.mode").is_none() && !config.account_ids_to_name.is_empty() {
        config.aws.mode = AwsMode::Aws;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse;
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    fn tree(yaml: &str) -> Node {
        let file: Arc<Path> = Arc::from(Path::new("/cfg/t.yaml"));
        parse(yaml, &file).unwrap()
    }

    #[test]
    fn account_ids_normalise() {
        assert_eq!(normalize_account_id("1").as_deref(), Some("000000000001"));
        assert_eq!(
            normalize_account_id("123456789012").as_deref(),
            Some("123456789012")
        );
        assert_eq!(normalize_account_id("1234567890123"), None);
        assert_eq!(normalize_account_id("12a"), None);
        assert_eq!(normalize_account_id(""), None);
        assert_eq!(normalize_account_id("-1"), None);
    }

    #[test]
    fn quoted_and_unquoted_ids_in_one_file_collide() {
        let mut t = tree("account_ids_to_name:\n  \"000000000001\": a\n  1: b\n");
        let err = normalize_account_keys(&mut t).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/cfg/t.yaml:3:3: duplicate key '000000000001' in 'account_ids_to_name' (first at line 2)"
        );
    }

    #[test]
    fn bad_account_id_names_key_and_line() {
        let mut t = tree("accounts:\n  prod:\n    role_name: R\n");
        let err = normalize_account_keys(&mut t).unwrap_err().to_string();
        assert!(
            err.starts_with("/cfg/t.yaml:2:3: 'accounts.prod': not an AWS account id"),
            "{err}"
        );
    }

    #[test]
    fn development_and_tornado() {
        let mut t = tree("development: true\ntornado:\n  port: 9000\n");
        translate(&mut t).unwrap();
        assert!(matches!(&t.get("environment").unwrap().value, Value::Str(s) if s == "dev"));
        assert!(matches!(&t.get("listen").unwrap().value, Value::Str(s) if s == "127.0.0.1:9000"));
        assert!(t.get("development").is_none() && t.get("tornado").is_none());
    }

    #[test]
    fn celery_sync_regions_become_aws_regions_unless_written() {
        let regions = |t: &Node| match &t.lookup("aws.regions").unwrap().value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|n| match &n.value {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let mut t = tree("celery:\n  sync_regions: [us-east-1, eu-west-1]\n");
        sync_regions(&mut t);
        assert_eq!(regions(&t), ["us-east-1", "eu-west-1"]);
        let mut t = tree("aws:\n  regions: [us-west-2]\ncelery:\n  sync_regions: [eu-west-1]\n");
        sync_regions(&mut t);
        assert_eq!(regions(&t), ["us-west-2"]);
    }

    #[test]
    fn explicit_keys_win_over_consoleme_ones() {
        let mut t = tree(
            "development: true\nenvironment: prod\nlisten: 0.0.0.0:80\ntornado:\n  port: 9000\n  address: 10.0.0.1\n",
        );
        translate(&mut t).unwrap();
        assert!(matches!(&t.get("environment").unwrap().value, Value::Str(s) if s == "prod"));
        assert!(matches!(&t.get("listen").unwrap().value, Value::Str(s) if s == "0.0.0.0:80"));
    }

    #[test]
    fn tornado_address_and_cookie_name() {
        let mut t = tree("tornado:\n  address: 0.0.0.0\nauth_cookie_name: consoleme_auth\n");
        translate(&mut t).unwrap();
        assert!(matches!(&t.get("listen").unwrap().value, Value::Str(s) if s == "0.0.0.0:8081"));
        assert!(
            matches!(&t.lookup("auth.cookie_name").unwrap().value, Value::Str(s) if s == "consoleme_auth")
        );
    }

    #[test]
    fn bad_listen_and_port() {
        let mut t = tree("url: x\nlisten: abc\n");
        assert_eq!(
            translate(&mut t).unwrap_err().to_string(),
            "/cfg/t.yaml:2:9: 'listen' must be a socket address like 127.0.0.1:8081, got \"abc\""
        );
        let mut t = tree("tornado:\n  port: 70000\n");
        let err = translate(&mut t).unwrap_err().to_string();
        assert!(
            err.contains("'tornado.port' must be a port number from 1 to 65535, got 70000"),
            "{err}"
        );
        let mut t = tree("development: maybe\n");
        assert!(
            translate(&mut t)
                .unwrap_err()
                .to_string()
                .contains("'development' must be true or false")
        );
    }
}
