//! Placeholder: the loader is being written (discovery, extends, duplicate keys, warnings).
use super::Config;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
}

/// A loaded configuration and what the loader has to say about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The top-level file, `None` for built-in demo defaults.
    pub source: Option<PathBuf>,
    /// One line per unknown key (dotted path, with a did-you-mean).
    pub warnings: Vec<String>,
    /// ConsoleMe keys that iamdesk knows and ignores (dotted top-level keys).
    pub ignored: Vec<String>,
}

pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    match explicit {
        Some(p) => load_file(p),
        None => Ok(Loaded {
            config: Config::default(),
            source: None,
            warnings: vec![],
            ignored: vec![],
        }),
    }
}

pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    Err(ConfigError::Invalid(format!(
        "{}: config loading not implemented yet",
        path.display()
    )))
}

/// The effective config as YAML with secrets replaced by `"<redacted>"`.
pub fn redacted_yaml(config: &Config) -> String {
    format!("{config:#?}")
}
