//! A DynamoDB item as plain JSON, the way ConsoleMe's boto3 resource wrote it: maps, lists,
//! strings, numbers, booleans, sets as lists. ConsoleMe stored empty strings as
//! `---DYNAMO-EMPTY-STRING---` (DynamoDB refused empty strings then) and global tables add
//! `aws:rep:*` keys; both are undone here, as ConsoleMe's `_data_from_dynamo_replace` did.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// ConsoleMe's stand-in for an empty string (`consoleme/lib/dynamo.py`).
pub const EMPTY_STRING_MARKER: &str = "---DYNAMO-EMPTY-STRING---";

const REPLICATION_KEYS: [&str; 3] = [
    "aws:rep:deleting",
    "aws:rep:updateregion",
    "aws:rep:updatetime",
];

pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .filter(|(k, _)| !REPLICATION_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect(),
    )
}

fn number(n: &str) -> Value {
    if let Ok(i) = n.parse::<i64>() {
        return Value::Number(i.into());
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        // Beyond f64 (DynamoDB numbers have 38 digits): kept as written.
        .unwrap_or_else(|| Value::String(n.to_string()))
}

fn string(s: &str) -> Value {
    if s == EMPTY_STRING_MARKER {
        Value::String(String::new())
    } else {
        Value::String(s.to_string())
    }
}

fn to_json(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodb::primitives::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match v {
        AttributeValue::S(s) => string(s),
        AttributeValue::N(n) => number(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !REPLICATION_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
        AttributeValue::L(l) => Value::Array(l.iter().map(to_json).collect()),
        AttributeValue::Ss(ss) => Value::Array(ss.iter().map(|s| string(s)).collect()),
        AttributeValue::Ns(ns) => Value::Array(ns.iter().map(|n| number(n)).collect()),
        AttributeValue::B(b) => b64(b),
        AttributeValue::Bs(bs) => Value::Array(bs.iter().map(b64).collect()),
        // A type added to DynamoDB after this was written.
        _ => Value::Null,
    }
}

/// Undo the empty-string marker inside JSON that ConsoleMe stored as a string (an
/// `extended_request` kept as JSON text).
pub fn unmark(v: Value) -> Value {
    match v {
        Value::String(s) if s == EMPTY_STRING_MARKER => Value::String(String::new()),
        Value::Array(a) => Value::Array(a.into_iter().map(unmark).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !REPLICATION_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k, unmark(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_become_plain_json_without_markers() {
        let item = HashMap::from([
            ("request_id".to_string(), AttributeValue::S("r1".into())),
            (
                "justification".to_string(),
                AttributeValue::S(EMPTY_STRING_MARKER.into()),
            ),
            (
                "request_time".to_string(),
                AttributeValue::N("1617000000".into()),
            ),
            ("score".to_string(), AttributeValue::N("1.5".into())),
            (
                "aws:rep:updatetime".to_string(),
                AttributeValue::N("1".into()),
            ),
            (
                "extended_request".to_string(),
                AttributeValue::M(HashMap::from([(
                    "comments".to_string(),
                    AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                        (
                            "text".to_string(),
                            AttributeValue::S(EMPTY_STRING_MARKER.into()),
                        ),
                        ("edited".to_string(), AttributeValue::Null(true)),
                    ]))]),
                )])),
            ),
        ]);
        assert_eq!(
            item_to_json(&item),
            json!({"request_id": "r1", "justification": "", "request_time": 1617000000,
                   "score": 1.5,
                   "extended_request": {"comments": [{"text": "", "edited": null}]}})
        );
        assert_eq!(
            unmark(json!({"a": [EMPTY_STRING_MARKER, "x"], "aws:rep:deleting": false})),
            json!({"a": ["", "x"]})
        );
    }
}
