//! `${VAR}` in string values, so secrets can come from the environment (a Kubernetes secret, an
//! ECS task definition) instead of the file. `${VAR:-default}` falls back when VAR is unset or
//! empty; `$${` is a literal `${`. Keys are never expanded.

use super::load::ConfigError;
use super::tree::{Node, Value, join};

pub(crate) fn expand_tree(
    node: &mut Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match &mut node.value {
        Value::Str(s) => {
            if let Some(expanded) = expand_str(s, env).map_err(|message| ConfigError::Invalid {
                at: node.at.clone(),
                key: path.to_owned(),
                message,
            })? {
                *s = expanded;
                node.expanded = true;
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Map(entries) => {
            for e in entries.iter_mut() {
                expand_tree(&mut e.value, &join(path, &e.key), env)?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
    Ok(())
}

/// `Ok(None)` when there is nothing to expand (the common case, no allocation).
pub(crate) fn expand_str(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if !s.contains("${") {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err("unterminated '${' (write $${ for a literal ${)".into());
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                return Err(format!(
                    "'${{{inner}}}' is not a valid environment variable reference \
                     (write $${{ for a literal ${{)"
                ));
            }
            match (
                env(name).filter(|v| !(default.is_some() && v.is_empty())),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn x(s: &str) -> Result<Option<String>, String> {
        expand_str(s, &env)
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(x("plain $ text").unwrap(), None);
        assert_eq!(x("${SECRET}").unwrap().as_deref(), Some("s3cr3t"));
        assert_eq!(x("a-${SECRET}-b").unwrap().as_deref(), Some("a-s3cr3t-b"));
        assert_eq!(x("$${SECRET}").unwrap().as_deref(), Some("${SECRET}"));
        assert_eq!(x("$5 ${SECRET}").unwrap().as_deref(), Some("$5 s3cr3t"));
        assert_eq!(x("${UNSET:-dflt}").unwrap().as_deref(), Some("dflt"));
        assert_eq!(x("${EMPTY:-dflt}").unwrap().as_deref(), Some("dflt"));
        assert_eq!(x("${EMPTY}").unwrap().as_deref(), Some(""));
        assert_eq!(x("ünï${SECRET}ç").unwrap().as_deref(), Some("ünïs3cr3tç"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            x("${UNSET}").unwrap_err(),
            "environment variable UNSET is not set"
        );
        assert!(x("${SECRET").unwrap_err().contains("unterminated"));
        assert!(x("${1X}").unwrap_err().contains("not a valid"));
        assert!(x("${}").unwrap_err().contains("not a valid"));
    }
}
