//! `check-config` output with secrets replaced, so it can be pasted into a ticket.

use std::path::Path;
use std::sync::Arc;

use super::Config;
use super::tree::{Node, Value, parse};

pub(crate) const REDACTED: &str = "<redacted>";

/// By name, so that a secret added to the model later is covered without touching this file.
pub(crate) fn is_secret_key(dotted: &str) -> bool {
    let leaf = dotted
        .rsplit('.')
        .next()
        .unwrap_or(dotted)
        .to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "webhook",
        "private_key",
    ]
    .iter()
    .any(|word| leaf.contains(word))
}

/// The effective config as YAML with secrets replaced by `<redacted>`.
pub fn redacted_yaml(config: &Config) -> String {
    // Round-trip through our ordered tree: it keeps the model's field order (a
    // `serde_json::Value` would sort keys) and gives us something to walk.
    let rendered = serde_saphyr::to_string(config)
        .map_err(|e| e.to_string())
        .and_then(|yaml| {
            let file: Arc<Path> = Arc::from(Path::new("<effective config>"));
            parse(&yaml, &file).map_err(|e| e.to_string())
        })
        .and_then(|mut tree| {
            redact(&mut tree, "");
            serde_saphyr::to_string(&tree).map_err(|e| e.to_string())
        });
    match rendered {
        Ok(yaml) => yaml,
        // Not expected for this model; never print an unredacted fallback.
        Err(e) => format!("# cannot render the effective configuration: {e}\n"),
    }
}

fn redact(node: &mut Node, path: &str) {
    if is_secret_key(path) && !matches!(node.value, Value::Null) {
        node.value = Value::Str(REDACTED.into());
        return;
    }
    match &mut node.value {
        // Any URL may carry a password (`redis://:pw@host`, a DynamoDB proxy...).
        Value::Str(s) => {
            if let Some(safe) = redact_url(s) {
                *s = safe;
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| redact(i, path)),
        Value::Map(entries) => {
            for e in entries.iter_mut() {
                let child = super::tree::join(path, &e.key);
                redact(&mut e.value, &child);
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

/// `redis://user:pw@host:6379/0` → `redis://user:<redacted>@host:6379/0`; a lone userinfo
/// (`redis://pw@host`, which some clients read as the password) is replaced whole; a password in
/// the query string hides the whole URL. `None` when there is nothing to hide.
fn redact_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let lower = rest.to_ascii_lowercase();
    if ["password=", "passwd=", "token=", "secret="]
        .iter()
        .any(|k| lower.contains(k))
    {
        return Some(REDACTED.into());
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, host) = authority.rsplit_once('@')?;
    let userinfo = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    Some(format!(
        "{scheme}://{userinfo}@{host}{}",
        &rest[authority_end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(redact_url("redis://127.0.0.1:6379/0"), None);
        assert_eq!(
            redact_url("redis://:pw@h:6379/0").as_deref(),
            Some("redis://:<redacted>@h:6379/0")
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@h/1").as_deref(),
            Some("rediss://user:<redacted>@h/1")
        );
        assert_eq!(
            redact_url("redis://pw@h").as_deref(),
            Some("redis://<redacted>@h")
        );
        assert_eq!(
            redact_url("redis://h/0?password=x").as_deref(),
            Some("<redacted>")
        );
        assert_eq!(redact_url("not a url"), None);
    }

    #[test]
    fn secret_names() {
        for k in [
            "jwt_secret",
            "slack.webhook_url",
            "x.api_token",
            "bitbucket.password",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "url",
            "cloud_credential_authorization_mapping",
            "auth.alb.public_key_url",
            "get_user_by_aws_alb_auth_settings.jwt_email_key",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn output_keeps_model_order_and_hides_secrets() {
        let c = Config {
            jwt_secret: Some("jwt-hunter2".into()),
            redis: super::super::RedisConfig {
                url: Some("redis://default:redis-hunter2@cache:6379/0".into()),
                ..Default::default()
            },
            slack: super::super::SlackConfig {
                notifications_enabled: true,
                webhook_url: Some("https://hooks.slack.com/services/T0/B0/hook-hunter2".into()),
            },
            ..Config::default()
        };
        let out = redacted_yaml(&c);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("jwt_secret: <redacted>"), "{out}");
        assert!(
            out.contains("redis://default:<redacted>@cache:6379/0"),
            "{out}"
        );
        // Model order (url, listen, ...), not alphabetical.
        assert!(out.starts_with("url: "), "{out}");
        assert!(out.find("\nlisten:") < out.find("\nenvironment:"), "{out}");
        assert!(out.contains("webhook_url: <redacted>"), "{out}");
        // Unset secrets stay visibly unset.
        assert!(redacted_yaml(&Config::default()).contains("jwt_secret: null"));
    }
}
