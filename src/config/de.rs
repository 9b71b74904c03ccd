//! Types the merged tree into `Config`. A serde `Deserializer` over `Node`, so the model's own
//! derives decide what is accepted, and every error points at the node that caused it: its file,
//! line, column, dotted key and the type that was expected.

use std::fmt;

use serde::de::value::{StrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

use super::load::ConfigError;
use super::tree::{Entry, Node, SourcePos, Value, join};

pub(crate) fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, ConfigError> {
    T::deserialize(De {
        node,
        path: String::new(),
    })
    .map_err(|e| e.into_config_error(node))
}

/// Error raised while typing; located by the innermost node that saw it fail.
#[derive(Debug)]
pub(crate) struct DeError {
    kind: Kind,
    located: Option<(SourcePos, String, String)>,
}

#[derive(Debug)]
enum Kind {
    Type { expected: String },
    Other(String),
}

impl DeError {
    fn locate(mut self, node: &Node, path: &str) -> Self {
        if self.located.is_none() {
            let got = if super::redact::is_secret_key(path) {
                "a value (hidden: secret)".to_owned()
            } else {
                node.describe()
            };
            self.located = Some((node.at.clone(), display_key(path), got));
        }
        self
    }

    fn into_config_error(self, root: &Node) -> ConfigError {
        let (at, key, got) = self
            .located
            .unwrap_or_else(|| (root.at.clone(), display_key(""), root.describe()));
        match self.kind {
            Kind::Type { expected } => ConfigError::WrongType {
                at,
                key,
                expected,
                got,
            },
            Kind::Other(message) => ConfigError::Invalid { at, key, message },
        }
    }
}

fn display_key(path: &str) -> String {
    if path.is_empty() {
        "(top level)".into()
    } else {
        path.into()
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Type { expected } => write!(f, "expected {expected}"),
            Kind::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            kind: Kind::Other(msg.to_string()),
            located: None,
        }
    }

    fn invalid_type(_: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError {
            kind: Kind::Type {
                expected: humanize(&exp.to_string()),
            },
            located: None,
        }
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: Kind::Type {
                expected: format!("one of {}", expected.join(", ")),
            },
            located: None,
        }
    }
}

/// serde's "expected" strings are written for Rust programmers; config authors get YAML words.
fn humanize(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "an integer from 0 to 4294967295".into(),
        "u64" | "usize" | "u128" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "path string" => "a file path".into(),
        "socket address" => "a socket address like 127.0.0.1:8081".into(),
        s if s.starts_with("struct ") => "a mapping".into(),
        s => s.into(),
    }
}

struct De<'a> {
    node: &'a Node,
    path: String,
}

impl De<'_> {
    /// Runs a visitor and stamps any error it returns with this node's location, unless a
    /// deeper node already did.
    fn with<T>(self, f: impl FnOnce(&Self) -> Result<T, DeError>) -> Result<T, DeError> {
        f(&self).map_err(|e| e.locate(self.node, &self.path))
    }

    fn int_from_expanded(&self) -> Option<i128> {
        match &self.node.value {
            Value::Str(s) if self.node.expanded => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn visit_int<'de, V: Visitor<'de>>(v: V, i: i128) -> Result<V::Value, DeError> {
    if let Ok(u) = u64::try_from(i) {
        v.visit_u64(u)
    } else if let Ok(s) = i64::try_from(i) {
        v.visit_i64(s)
    } else {
        v.visit_i128(i)
    }
}

macro_rules! int_methods {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self.int_from_expanded() {
                Some(i) => self.with(|_| visit_int(visitor, i)),
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.with(|de| match &de.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visit_int(visitor, *i),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                path: &de.path,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                value: None,
                path: &de.path,
            }),
        })
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // ConsoleMe read YAML 1.1, where yes/no/on/off are booleans. The tree is parsed with
        // YAML 1.2 booleans (so such words stay text elsewhere), so accept them here.
        let word = match &self.node.value {
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Some(true),
                "false" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match word {
            Some(b) => self.with(|_| visitor.visit_bool(b)),
            None => self.deserialize_any(visitor),
        }
    }

    int_methods! {
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => self.with(|_| visitor.visit_none()),
            _ => {
                let (node, path) = (self.node, self.path.clone());
                visitor.visit_some(self).map_err(|e| e.locate(node, &path))
            }
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // An empty `can_admin:` meant "nobody" to ConsoleMe; keep that reading.
        match self.node.value {
            Value::Null => self.with(|de| {
                visitor.visit_seq(SeqDe {
                    items: [].iter().enumerate(),
                    path: &de.path,
                })
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // `slack:` with every line below it commented out is an empty section, not an error.
        match self.node.value {
            Value::Null => self.with(|de| {
                visitor.visit_map(MapDe {
                    entries: [].iter(),
                    value: None,
                    path: &de.path,
                })
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // serde's derived structs also accept a list of field values in order; in a config
        // file a list where a section belongs is a mistake, not a positional struct.
        match self.node.value {
            Value::Seq(_) => self.with(|_| {
                Err(DeError {
                    kind: Kind::Type {
                        expected: "a mapping".into(),
                    },
                    located: None,
                })
            }),
            _ => self.deserialize_map(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // The model's enums are unit variants named in lowercase; `Prod` and `PROD` mean prod.
        self.with(|de| match &de.node.value {
            Value::Str(s) => {
                let lower: StringDeserializer<DeError> = s.to_ascii_lowercase().into_deserializer();
                visitor.visit_enum(lower)
            }
            _ => Err(de::Error::unknown_variant("", variants)),
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.locate(node, &path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct SeqDe<'a, I> {
    items: I,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for SeqDe<'_, I> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => seed
                .deserialize(De {
                    node,
                    path: format!("{}[{i}]", self.path),
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

struct MapDe<'a, I> {
    entries: I,
    value: Option<&'a Entry>,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a Entry>> de::MapAccess<'de> for MapDe<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let key: StrDeserializer<DeError> = entry.key.as_str().into_deserializer();
        seed.deserialize(key).map(Some).map_err(|e| {
            let key_node = Node::new(Value::Str(entry.key.clone()), entry.key_at.clone());
            e.locate(&key_node, &join(self.path, &entry.key))
        })
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let Some(entry) = self.value.take() else {
            return Err(de::Error::custom("value requested before key"));
        };
        seed.deserialize(De {
            node: &entry.value,
            path: join(self.path, &entry.key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tree::parse;
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    fn typed(yaml: &str) -> Result<Config, ConfigError> {
        let file: Arc<Path> = Arc::from(Path::new("/cfg/c.yaml"));
        from_node(&parse(yaml, &file)?)
    }

    #[test]
    fn empty_document_is_the_defaults() {
        let c = typed("").unwrap();
        assert_eq!(c.sync.interval_seconds, 3600);
        assert_eq!(c.auth.cookie_name, "iamdesk_auth");
    }

    #[test]
    fn partial_section_keeps_other_defaults() {
        let c = typed("auth:\n  get_user_by_header: true\n").unwrap();
        assert!(c.auth.get_user_by_header);
        assert_eq!(c.auth.user_header_name, "x-user");
    }

    #[test]
    fn wrong_type_names_file_line_key_and_expected_type() {
        let err = typed("sync:\n  interval_seconds: soon\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/cfg/c.yaml:2:21: 'sync.interval_seconds' must be a whole number (0 or more), got \"soon\""
        );
    }

    #[test]
    fn list_where_string_expected() {
        let err = typed("policies:\n  role_name:\n    - a\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/cfg/c.yaml:3:5: 'policies.role_name' must be a string, got a list"),
            "{text}"
        );
    }

    #[test]
    fn out_of_range_and_enum_errors() {
        let err = typed("rate_limit:\n  api_per_minute: -1\n").unwrap_err();
        assert!(
            err.to_string().contains(
                "'rate_limit.api_per_minute' must be an integer from 0 to 4294967295, got -1"
            ),
            "{err}"
        );
        let err = typed("environment: test\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("'environment' must be one of dev, prod, got \"test\""),
            "{err}"
        );
        let err = typed("storage:\n  backend: [x]\n").unwrap_err();
        assert!(
            err.to_string().contains("'storage.backend' must be"),
            "{err}"
        );
    }

    #[test]
    fn a_list_is_not_a_section() {
        let err =
            typed("get_user_by_aws_alb_auth_settings:\n  - jwt_email_key: sub\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/cfg/c.yaml:2:3: 'get_user_by_aws_alb_auth_settings' must be a mapping, got a list"
        );
    }

    #[test]
    fn list_item_errors_name_the_index() {
        let err = typed("groups:\n  can_admin:\n    - a\n    - {b: 1}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("'groups.can_admin[1]' must be a string"),
            "{err}"
        );
    }

    #[test]
    fn yaml11_booleans_and_case_insensitive_enums() {
        let c = typed("auth:\n  set_auth_cookie: yes\nenvironment: Dev\n").unwrap();
        assert!(c.auth.set_auth_cookie);
        assert!(c.is_dev());
    }

    #[test]
    fn null_sections_and_lists_are_empty() {
        let c = typed("slack:\ngroups:\n  can_admin:\n").unwrap();
        assert!(c.groups.can_admin.is_empty());
        assert!(!c.slack.notifications_enabled);
    }

    #[test]
    fn null_where_a_string_is_required_is_an_error() {
        let err = typed("url:\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("'url' must be a string, got nothing (null)"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_not_echoed_in_type_errors() {
        let err = typed("jwt_secret: [hunter2]\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
