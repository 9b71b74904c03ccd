//! A YAML document as a tree whose every node remembers its file, line and column.
//!
//! Typed deserialization alone cannot do what the configuration contract asks: `extends` merges
//! several files before anything is typed, unknown keys must be reported (not just skipped) and
//! every error must name the file the offending value came from. So each file is parsed once by
//! serde-saphyr into this tree, files are merged as trees, and only the result is typed
//! (`de.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_saphyr::{MessageFormatter, Spanned};

use super::load::ConfigError;

/// Where something is in a configuration file. Lines and columns are 1-based; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePos {
    pub file: Arc<Path>,
    pub line: u64,
    pub column: u64,
}

impl SourcePos {
    pub fn file_only(file: Arc<Path>) -> Self {
        SourcePos {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for SourcePos {
    /// `file:line:column`, the form editors and terminals turn into a link.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub at: SourcePos,
    /// The string came out of `${VAR}` expansion: it may stand for a number or a boolean.
    pub expanded: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` pair. Keys are kept as text: configuration keys are names, and account ids
/// written as YAML integers are normalised from this text.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_at: SourcePos,
    pub value: Node,
}

impl Node {
    pub fn new(value: Value, at: SourcePos) -> Self {
        Node {
            value,
            at,
            expanded: false,
        }
    }

    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn entries_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match &mut self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries_mut()?
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value)
    }

    /// Follows a dotted path through nested mappings.
    pub fn lookup(&self, dotted: &str) -> Option<&Node> {
        dotted.split('.').try_fold(self, |node, key| node.get(key))
    }

    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let entries = self.entries_mut()?;
        let i = entries.iter().position(|e| e.key == key)?;
        Some(entries.remove(i))
    }

    /// Sets `key` in this mapping (appending it when absent). No-op on a non-mapping.
    pub fn set(&mut self, key: &str, key_at: SourcePos, value: Node) {
        if let Some(entries) = self.entries_mut() {
            match entries.iter_mut().find(|e| e.key == key) {
                Some(e) => e.value = value,
                None => entries.push(Entry {
                    key: key.to_owned(),
                    key_at,
                    value,
                }),
            }
        }
    }

    /// A short description of the value for error messages: the scalar itself, or its kind.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Str(s) => format!("{s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

/// `base.key` or `key` at the top level.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Parses one YAML file. Duplicate keys are an error at any depth (ConsoleMe silently kept the
/// last one, which hid typos like two `role_name`s for months).
pub(crate) fn parse(text: &str, file: &Arc<Path>) -> Result<Node, ConfigError> {
    let options = serde_saphyr::options! {
        // We detect duplicates ourselves so the error can name the section they are in;
        // serde-saphyr only knows the key.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        // `000000000001` is an account id, not the number 1.
        leading_zero_numbers_as_strings: true,
        // YAML 1.1 booleans (`y`, `no`, `on`) would turn account names such as `no` (Norway)
        // into booleans; typed boolean fields still accept them (see `de.rs`).
        strict_booleans: true,
        with_snippet: false,
    };
    let raw: Spanned<Raw> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let at = match e.location() {
            Some(l) => SourcePos {
                file: file.clone(),
                line: l.line(),
                column: l.column(),
            },
            None => SourcePos::file_only(file.clone()),
        };
        ConfigError::Syntax {
            at,
            message: one_line(
                &serde_saphyr::UserMessageFormatter.format_message(e.without_snippet()),
            ),
        }
    })?;
    convert(raw, file, "")
}

/// Error text goes into a single log line; YAML content in it must not break that line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn pos(file: &Arc<Path>, s: &Spanned<impl Sized>) -> SourcePos {
    SourcePos {
        file: file.clone(),
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

fn convert(raw: Spanned<Raw>, file: &Arc<Path>, path: &str) -> Result<Node, ConfigError> {
    let at = pos(file, &raw);
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(x) => Value::Float(x),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(items) => Value::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, file, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(pairs) => {
            let mut entries = Vec::with_capacity(pairs.len());
            let mut first_seen: HashMap<String, u64> = HashMap::new();
            for (k, v) in pairs {
                let key_at = pos(file, &k);
                let key = match k.value {
                    Raw::Str(s) => s,
                    Raw::Int(i) => i.to_string(),
                    Raw::Bool(b) => b.to_string(),
                    Raw::Float(x) => x.to_string(),
                    Raw::Null | Raw::Seq(_) | Raw::Map(_) => {
                        return Err(ConfigError::Invalid {
                            at: key_at,
                            key: if path.is_empty() {
                                "(top level)".into()
                            } else {
                                path.into()
                            },
                            message: "mapping keys must be names or numbers".into(),
                        });
                    }
                };
                if let Some(first_line) = first_seen.get(&key) {
                    return Err(ConfigError::DuplicateKey {
                        at: key_at,
                        key,
                        section: path.to_owned(),
                        first_line: *first_line,
                    });
                }
                first_seen.insert(key.clone(), key_at.line);
                let value = convert(v, file, &join(path, &key))?;
                entries.push(Entry { key, key_at, value });
            }
            Value::Map(entries)
        }
    };
    Ok(Node::new(value, at))
}

/// Deep merge in ConsoleMe's direction: `low` only fills what `high` lacks. Mappings merge key by
/// key, anything else in `high` (including a list) wins whole. A `null` section in `high`
/// (`slack:` with every line commented out) counts as empty, as it did for ConsoleMe.
pub(crate) fn merge_under(high: &mut Node, low: Node) {
    if matches!(high.value, Value::Null) && matches!(low.value, Value::Map(_)) {
        *high = low;
        return;
    }
    let (Value::Map(high_entries), Value::Map(low_entries)) = (&mut high.value, low.value) else {
        return;
    };
    for low_entry in low_entries {
        match high_entries.iter_mut().find(|e| e.key == low_entry.key) {
            Some(existing) => merge_under(&mut existing.value, low_entry.value),
            None => high_entries.push(low_entry),
        }
    }
}

/// What serde-saphyr hands us: an untyped tree with spans. Converted to `Node` right away.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        // Beyond i128 no configuration value makes sense; keep the digits for the error message.
        Ok(i128::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        String::from_utf8(v.to_vec())
            .map(Raw::Str)
            .map_err(|_| E::custom("binary values are not supported in the configuration"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            pairs.push((key, value));
        }
        Ok(Raw::Map(pairs))
    }
}

/// Serialized in document order (unlike a `serde_json::Value`, whose maps are sorted), so that
/// `check-config` prints sections in the order of the model.
impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i128(*i),
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(v) => s.serialize_str(v),
            Value::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for e in entries {
                    map.serialize_entry(&e.key, &e.value)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<Path> {
        Arc::from(Path::new("/cfg/x.yaml"))
    }

    #[test]
    fn duplicate_key_in_a_section_names_section_and_both_lines() {
        let err = parse(
            "url: x\npolicies:\n  role_name: A\n  role_name: B\n",
            &file(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/cfg/x.yaml:4:3: duplicate key 'role_name' in 'policies' (first at line 3)"
        );
    }

    #[test]
    fn duplicate_key_at_top_level() {
        let err = parse("url: a\nurl: b\n", &file()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/cfg/x.yaml:2:1: duplicate key 'url' at the top level (first at line 1)"
        );
    }

    #[test]
    fn integer_and_string_spelling_of_a_key_are_the_same_key() {
        let err = parse("m:\n  1: a\n  \"1\": b\n", &file()).unwrap_err();
        assert!(matches!(err, ConfigError::DuplicateKey { .. }), "{err}");
    }

    #[test]
    fn syntax_error_has_file_line_column() {
        let err = parse("a: 1\n  b: 2\n", &file()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/cfg/x.yaml:2:4: invalid YAML: "),
            "{text}"
        );
    }

    #[test]
    fn keys_keep_their_spelling_and_positions() {
        let node = parse("m:\n  000000000001: a\n  123456789012: b\n", &file()).unwrap();
        let m = node.get("m").unwrap().entries().unwrap();
        assert_eq!(m[0].key, "000000000001");
        assert_eq!(m[1].key, "123456789012");
        assert_eq!((m[1].key_at.line, m[1].key_at.column), (3, 3));
    }

    #[test]
    fn complex_keys_are_rejected() {
        let err = parse("? [a, b]\n: c\n", &file()).unwrap_err();
        assert!(err.to_string().contains("mapping keys must be"), "{err}");
    }

    #[test]
    fn merge_under_keeps_high_values_and_merges_maps() {
        let mut high = parse("a: 1\nm: {x: 1}\nl: [1]\n", &file()).unwrap();
        let low = parse("a: 2\nm: {x: 2, y: 2}\nl: [2, 3]\nb: 3\n", &file()).unwrap();
        merge_under(&mut high, low);
        let out = serde_saphyr::to_string(&high).unwrap();
        assert_eq!(out, "a: 1\nm:\n  x: 1\n  \"y\": 2\nl:\n- 1\nb: 3\n");
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "---",
            "- a",
            "{",
            "a: *x",
            "&a [*a]",
            "a: !!binary 8J+Ygw==",
            ": :",
            "\t",
            "a: 1e999",
            "? !!null\n: 1",
        ] {
            let _ = parse(text, &file());
        }
    }
}
