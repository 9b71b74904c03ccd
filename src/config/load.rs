//! Finding, reading and checking the configuration (GUIDE §2).
//!
//! Per file: parse into a located tree (duplicate keys are errors), normalise account ids,
//! resolve `extends`. Then on the merged tree: drop and report unknown and ignored keys, expand
//! `${VAR}`, translate ConsoleMe spellings, type into `Config`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Config;
use super::keys::{self, Findings};
use super::tree::{self, Node, Value};
use super::{compat, de, expand};

pub use super::redact::redacted_yaml;
pub use super::tree::SourcePos;

/// Larger than any real config; stops `--config /dev/zero` from eating memory.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Bounds `extends` fan-out (a diamond of files is legal, but not without limit).
const MAX_FILES: usize = 64;

/// Why the configuration cannot be used. Every variant names the file, and where it can the
/// line, column and dotted key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: cannot read the configuration file: {reason}", path.display())]
    Read { path: PathBuf, reason: String },

    #[error("{at}: invalid YAML: {message}")]
    Syntax { at: SourcePos, message: String },

    #[error(
        "{at}: duplicate key '{key}' {} (first at line {first_line})",
        section_phrase(section)
    )]
    DuplicateKey {
        at: SourcePos,
        key: String,
        /// Dotted path of the mapping holding the key; empty at the top level.
        section: String,
        first_line: u64,
    },

    #[error("{at}: '{key}' must be {expected}, got {got}")]
    WrongType {
        at: SourcePos,
        key: String,
        expected: String,
        got: String,
    },

    #[error("{at}: '{key}': {message}")]
    Invalid {
        at: SourcePos,
        key: String,
        message: String,
    },

    #[error("{at}: 'extends' cycle: {chain}")]
    ExtendsCycle { at: SourcePos, chain: String },

    #[error("{at}: cannot read extended file {}: {reason}", file.display())]
    ExtendsMissing {
        at: SourcePos,
        file: PathBuf,
        reason: String,
    },
}

fn section_phrase(section: &str) -> String {
    if section.is_empty() {
        "at the top level".into()
    } else {
        format!("in '{section}'")
    }
}

/// A loaded configuration and what the loader has to say about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The top-level file, `None` for built-in demo defaults.
    pub source: Option<PathBuf>,
    /// One line per unknown key (dotted path, with a did-you-mean).
    pub warnings: Vec<String>,
    /// ConsoleMe keys that iamdesk knows and ignores (dotted keys found in the files).
    pub ignored: Vec<String>,
    /// Every file read, the top-level one first, then `extends` in resolution order.
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// Built-in demo defaults: dev mode, so the first `cargo run` needs no secret.
    fn defaults() -> Self {
        Loaded {
            config: Config {
                environment: super::Environment::Dev,
                ..Config::default()
            },
            source: None,
            warnings: vec![],
            ignored: vec![],
            files: vec![],
        }
    }
}

/// Finds and loads the configuration like ConsoleMe: `--config`, else `CONFIG_LOCATION`, else
/// the first existing of [`default_locations`], else built-in demo defaults.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let config_location = std::env::var_os("CONFIG_LOCATION").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = default_locations(home.as_deref());
    match discover(explicit, config_location.as_deref(), &candidates) {
        Some(path) => load_file(&path),
        None => Ok(Loaded::defaults()),
    }
}

/// `./iamdesk.yaml`, `./consoleme.yaml`, `~/.config/iamdesk/config.yaml`,
/// `/etc/iamdesk/config.yaml`, in that order.
pub fn default_locations(home: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![
        PathBuf::from("iamdesk.yaml"),
        PathBuf::from("consoleme.yaml"),
    ];
    if let Some(home) = home {
        v.push(home.join(".config/iamdesk/config.yaml"));
    }
    v.push(PathBuf::from("/etc/iamdesk/config.yaml"));
    v
}

/// Which file to load. A file named by `--config` or `CONFIG_LOCATION` is returned even if it
/// does not exist, so that a typo is an error rather than a silent fall-back to demo defaults;
/// the default locations are only probed.
pub fn discover(
    explicit: Option<&Path>,
    config_location: Option<&Path>,
    candidates: &[PathBuf],
) -> Option<PathBuf> {
    let named = |p: Option<&Path>| {
        p.filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
    };
    named(explicit)
        .or_else(|| named(config_location))
        .or_else(|| candidates.iter().find(|p| p.is_file()).cloned())
}

/// Loads one file (and what it `extends`), reading `${VAR}` from the process environment.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    load_file_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load_file`] with the environment supplied by the caller (tests, or a secrets source).
pub fn load_file_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let mut resolver = Resolver::default();
    let mut tree = resolver.resolve(path, None)?;
    let mut findings = Findings::default();
    compat::sync_regions(&mut tree);
    keys::classify(&mut tree, &keys::schema(), &mut findings);
    expand::expand_tree(&mut tree, "", env)?;
    compat::translate(&mut tree)?;
    let mut config: Config = de::from_node(&tree)?;
    compat::derived_defaults(&mut config, &tree);
    if let Err(problems) =
        crate::selfservice::templates::check_templates(&config.self_service.templates)
    {
        let at = tree
            .lookup("self_service.templates")
            .map(|n| n.at.clone())
            .unwrap_or_else(|| SourcePos::file_only(Arc::from(path)));
        return Err(ConfigError::Invalid {
            at,
            key: "self_service.templates".into(),
            message: problems.join("; "),
        });
    }
    if let Err(problems) = crate::requests::approvals::check_rules(&config) {
        let at = tree
            .lookup("approvals.rules")
            .map(|n| n.at.clone())
            .unwrap_or_else(|| SourcePos::file_only(Arc::from(path)));
        return Err(ConfigError::Invalid {
            at,
            key: "approvals.rules".into(),
            message: problems.join("; "),
        });
    }
    if let Err(message) = config.metrics.check(config.listen) {
        let at = tree
            .lookup("metrics.listen")
            .map(|n| n.at.clone())
            .unwrap_or_else(|| SourcePos::file_only(Arc::from(path)));
        return Err(ConfigError::Invalid {
            at,
            key: "metrics.listen".into(),
            message,
        });
    }
    if let Err((key, message)) = crate::events::check_config(&config.events) {
        let at = tree
            .lookup(&key)
            .map(|n| n.at.clone())
            .unwrap_or_else(|| SourcePos::file_only(Arc::from(path)));
        return Err(ConfigError::Invalid { at, key, message });
    }
    Ok(Loaded {
        config,
        source: Some(path.to_path_buf()),
        warnings: findings.warnings,
        ignored: findings.ignored,
        files: resolver.files,
    })
}

/// Resolves `extends` exactly as ConsoleMe does: the including file wins; its `extends` entries
/// fill in what it lacks in list order, so an earlier entry wins over a later one; an entry's own
/// `extends` are resolved first. Unlike ConsoleMe, a missing file is an error (ConsoleMe logged
/// and went on with half a config) and paths are relative to the file naming them.
#[derive(Default)]
struct Resolver {
    /// Canonical paths of the files being resolved, outermost first: a cycle is a path in here.
    stack: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl Resolver {
    fn resolve(&mut self, path: &Path, from: Option<&SourcePos>) -> Result<Node, ConfigError> {
        let fail = |reason: String| match from {
            Some(at) => ConfigError::ExtendsMissing {
                at: at.clone(),
                file: path.to_path_buf(),
                reason,
            },
            None => ConfigError::Read {
                path: path.to_path_buf(),
                reason,
            },
        };
        let canonical = std::fs::canonicalize(path).map_err(|e| fail(e.to_string()))?;
        if let (Some(at), Some(i)) = (from, self.stack.iter().position(|p| *p == canonical)) {
            let mut chain: Vec<String> = self.stack[i..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            chain.push(canonical.display().to_string());
            return Err(ConfigError::ExtendsCycle {
                at: at.clone(),
                chain: chain.join(" -> "),
            });
        }
        if self.files.len() >= MAX_FILES {
            return Err(fail(format!(
                "more than {MAX_FILES} files through 'extends'"
            )));
        }
        let text = read_limited(&canonical).map_err(fail)?;
        self.files.push(path.to_path_buf());

        let file: Arc<Path> = Arc::from(path);
        let mut node = tree::parse(&text, &file)?;
        match node.value {
            Value::Map(_) => {}
            // An empty or comment-only file is an empty configuration.
            Value::Null => node.value = Value::Map(vec![]),
            _ => {
                return Err(ConfigError::WrongType {
                    at: node.at.clone(),
                    key: "(top level)".into(),
                    expected: "a mapping of configuration keys".into(),
                    got: node.describe(),
                });
            }
        }
        compat::normalize_account_keys(&mut node)?;

        let Some(extends) = node.remove("extends") else {
            return Ok(node);
        };
        let entries = extends_entries(extends.value)?;
        let base = path.parent().unwrap_or(Path::new(""));
        self.stack.push(canonical);
        for (name, at) in entries {
            // ConsoleMe could also read `AWS_SECRETS_MANAGER:` and `AWS_S3:` entries; say so
            // instead of reporting a missing file of that name.
            if name.starts_with("AWS_SECRETS_MANAGER:") || name.starts_with("AWS_S3:") {
                return Err(ConfigError::Invalid {
                    at,
                    key: "extends".into(),
                    message: format!(
                        "'{name}': extending from AWS Secrets Manager or S3 is not supported; \
                         use a file and ${{VAR}} for secrets"
                    ),
                });
            }
            let low = self.resolve(&base.join(&name), Some(&at))?;
            tree::merge_under(&mut node, low);
        }
        self.stack.pop();
        Ok(node)
    }
}

fn extends_entries(value: Node) -> Result<Vec<(String, SourcePos)>, ConfigError> {
    let wrong = |node: &Node| ConfigError::WrongType {
        at: node.at.clone(),
        key: "extends".into(),
        expected: "a list of file names".into(),
        got: node.describe(),
    };
    match value.value {
        Value::Null => Ok(vec![]),
        Value::Str(s) => Ok(vec![(s, value.at)]),
        Value::Seq(items) => items
            .into_iter()
            .map(|item| match item.value {
                Value::Str(s) if !s.is_empty() => Ok((s, item.at)),
                _ => Err(wrong(&item)),
            })
            .collect(),
        _ => Err(wrong(&value)),
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn discovery_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.yaml", "");
        let b = write(dir.path(), "b.yaml", "");
        let missing = dir.path().join("missing.yaml");
        let candidates = vec![missing.clone(), a.clone(), b.clone()];
        assert_eq!(discover(None, None, &candidates), Some(a.clone()));
        assert_eq!(discover(None, Some(&b), &candidates), Some(b.clone()));
        assert_eq!(
            discover(Some(&missing), Some(&b), &candidates),
            Some(missing.clone())
        );
        assert_eq!(
            discover(None, Some(Path::new("")), std::slice::from_ref(&missing)),
            None
        );
        assert_eq!(discover(None, None, &[]), None);
    }

    #[test]
    fn default_locations_follow_the_guide() {
        let v = default_locations(Some(Path::new("/home/u")));
        let v: Vec<_> = v.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(
            v,
            [
                "iamdesk.yaml",
                "consoleme.yaml",
                "/home/u/.config/iamdesk/config.yaml",
                "/etc/iamdesk/config.yaml"
            ]
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = load_file(Path::new("/nonexistent/iamdesk.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/iamdesk.yaml: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn extends_order_is_consolemes() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "first.yaml",
            "url: http://first\napplication_admin: first\n",
        );
        write(
            dir.path(),
            "second.yaml",
            "application_admin: second\nses:\n  region: eu-west-1\n",
        );
        let top = write(
            dir.path(),
            "top.yaml",
            "extends: [first.yaml, second.yaml]\nurl: http://top\n",
        );
        let c = load_file_with_env(&top, &no_env).unwrap().config;
        assert_eq!(c.url, "http://top");
        assert_eq!(c.application_admin.as_deref(), Some("first"));
        assert_eq!(c.ses.region, "eu-west-1");
    }

    #[test]
    fn non_mapping_document_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "l.yaml", "- a\n- b\n");
        let err = load_file_with_env(&p, &no_env).unwrap_err().to_string();
        assert!(
            err.contains("'(top level)' must be a mapping of configuration keys, got a list"),
            "{err}"
        );
    }

    #[test]
    fn extends_from_aws_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.yaml",
            "extends:\n  - AWS_SECRETS_MANAGER:arn:x\n",
        );
        let err = load_file_with_env(&p, &no_env).unwrap_err().to_string();
        assert!(
            err.contains(":2:5: 'extends': 'AWS_SECRETS_MANAGER:arn:x': extending"),
            "{err}"
        );
    }

    #[test]
    fn metrics_listen_is_off_by_default_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let off = write(dir.path(), "off.yaml", "listen: 127.0.0.1:8081\n");
        let c = load_file_with_env(&off, &no_env).unwrap().config;
        assert_eq!(c.metrics.listen, None);

        let on = write(
            dir.path(),
            "on.yaml",
            "metrics:\n  listen: 127.0.0.1:9090\n",
        );
        let c = load_file_with_env(&on, &no_env).unwrap().config;
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9090".parse().unwrap()));

        for (name, text, expected) in [
            (
                "same.yaml",
                "listen: 0.0.0.0:8081\nmetrics:\n  listen: 127.0.0.1:8081\n",
                ":3:11: 'metrics.listen': must not be the public listen address (0.0.0.0:8081)",
            ),
            (
                "bad.yaml",
                "metrics:\n  listen: 9090\n",
                ":2:11: 'metrics.listen' must be a socket address like 127.0.0.1:9090, got",
            ),
        ] {
            let p = write(dir.path(), name, text);
            let err = load_file_with_env(&p, &no_env).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn oversized_and_binary_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.yaml");
        fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
        assert!(
            load_file_with_env(&p, &no_env)
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn aws_mode_follows_accounts_unless_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.yaml", "account_ids_to_name:\n  1: demo\n");
        let c = load_file_with_env(&p, &no_env).unwrap().config;
        assert_eq!(c.aws.mode, super::super::AwsMode::Aws);
        let p = write(
            dir.path(),
            "b.yaml",
            "account_ids_to_name:\n  1: demo\naws:\n  mode: sandbox\n",
        );
        let c = load_file_with_env(&p, &no_env).unwrap().config;
        assert_eq!(c.aws.mode, super::super::AwsMode::Sandbox);
        let p = write(dir.path(), "c.yaml", "url: x\n");
        let c = load_file_with_env(&p, &no_env).unwrap().config;
        assert_eq!(c.aws.mode, super::super::AwsMode::Sandbox);
    }

    #[test]
    fn expanded_strings_may_stand_for_numbers_and_booleans() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "e.yaml",
            "tornado:\n  port: ${PORT}\nsync:\n  interval_seconds: ${SYNC}\nslack:\n  notifications_enabled: ${SLACK}\n",
        );
        let env = |n: &str| match n {
            "PORT" => Some("9001".to_owned()),
            "SYNC" => Some("60".to_owned()),
            "SLACK" => Some("true".to_owned()),
            _ => None,
        };
        let c = load_file_with_env(&p, &env).unwrap().config;
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.sync.interval_seconds, 60);
        assert!(c.slack.notifications_enabled);
    }

    #[test]
    fn unset_variables_in_ignored_keys_do_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "i.yaml",
            "oidc_secrets:\n  secret: ${NOT_SET}\n",
        );
        assert!(load_file_with_env(&p, &no_env).is_ok());
    }
}
