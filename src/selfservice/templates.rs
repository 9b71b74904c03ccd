//! Permission templates of the self-service wizard.
//!
//! A user picks a template ("S3: read objects"), fills in its fields (bucket, prefix) and gets
//! IAM policy statements. Templates come from the `self_service` config section; the built-in
//! set is [`default_templates`].
//!
//! Pure and safe by construction:
//! - every field value is trimmed and checked against its kind ([`Field::kind`]) before use,
//!   and every problem is collected (each naming its field, `permissions[2].bucket`);
//! - substitution of `{field}` placeholders happens on the *parsed* string values of the
//!   statement skeletons, never by splicing text into JSON, so no value can inject JSON. It is a
//!   single pass: a value that itself contains `{bucket}` is not expanded again;
//! - `${aws:username}`-style IAM policy variables in a skeleton are left alone (a `{` preceded by
//!   `$` never starts a placeholder);
//! - a `StringLike` condition entry whose patterns were made only of optional fields left empty
//!   (`"{prefix}*"` with no prefix, i.e. `"*"`) is dropped: an empty prefix means the whole bucket,
//!   and keeping `StringLike s3:prefix "*"` would still deny a listing without any prefix (the
//!   condition key is then absent, and a condition on an absent key fails).
//!
//! The free-form template (`json_statements` field) only checks the shape (objects with an
//! `Effect`, at most [`MAX_CUSTOM_STATEMENTS`]); the IAM grammar is checked later by the request
//! validator.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::requests::validate::is_name_char as is_iam_name_char;

/// The IAM policy language version of every generated document.
pub const POLICY_VERSION: &str = "2012-10-17";
/// Most statements accepted in one free-form (`json_statements`) field.
pub const MAX_CUSTOM_STATEMENTS: usize = 20;
/// Longest free-form (`json_statements`) value, in characters.
pub const MAX_CUSTOM_CHARS: usize = 10_000;
/// Longest `text` value, in characters.
pub const MAX_TEXT_CHARS: usize = 256;
/// Longest `s3_prefix` value (S3 object keys are at most 1024 bytes).
pub const MAX_PREFIX_CHARS: usize = 1024;
/// Longest `arn` value (IAM's limit for a resource ARN).
pub const MAX_ARN_CHARS: usize = 2048;

/// Every known [`Field::kind`].
pub const FIELD_KINDS: &[&str] = &[
    "s3_bucket",
    "s3_prefix",
    "arn",
    "sqs_queue_arn",
    "sns_topic_arn",
    "role_arn",
    "dynamodb_table_arn",
    "text",
    "json_statements",
];

const JSON_STATEMENTS: &str = "json_statements";
const PARTITIONS: &[&str] = &["aws", "aws-cn", "aws-us-gov"];

/// One input of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// e.g. "bucket"; the placeholder `{bucket}` in the statements.
    pub name: String,
    /// e.g. "Bucket name"
    pub label: String,
    #[serde(default)]
    pub placeholder: String,
    #[serde(default)]
    pub help: String,
    /// One of: "s3_bucket", "s3_prefix", "arn", "sqs_queue_arn", "sns_topic_arn", "role_arn",
    /// "dynamodb_table_arn", "text", "json_statements" (see [`FIELD_KINDS`]).
    pub kind: String,
    #[serde(default)]
    pub required: bool,
}

/// A permission template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// e.g. "s3_read"; `[a-z0-9_]`, unique.
    pub id: String,
    /// e.g. "S3: read objects"
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub fields: Vec<Field>,
    /// Statement skeletons: serde_json::Value objects whose STRING values may hold `{field}`
    /// placeholders. Substitution happens on parsed JSON string values only (never textual JSON
    /// splicing, so a value containing quotes cannot inject JSON); object keys are never
    /// substituted. Empty for the free-form template.
    #[serde(default)]
    pub statements: Vec<Value>,
}

/// The config section `self_service` (serde default = the built-in templates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelfServiceConfig {
    /// Templates offered by the wizard, in order. Default: [`default_templates`].
    pub templates: Vec<Template>,
}

impl Default for SelfServiceConfig {
    fn default() -> Self {
        SelfServiceConfig {
            templates: default_templates(),
        }
    }
}

/// A template filled in by the user: template id + field values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub template: String,
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// A problem with one field, for a 400 answer: `field` like `permissions[2].bucket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Built-in templates
// ---------------------------------------------------------------------------------------------

fn field(
    name: &str,
    label: &str,
    kind: &str,
    required: bool,
    placeholder: &str,
    help: &str,
) -> Field {
    Field {
        name: name.to_owned(),
        label: label.to_owned(),
        placeholder: placeholder.to_owned(),
        help: help.to_owned(),
        kind: kind.to_owned(),
        required,
    }
}

fn template(
    id: &str,
    name: &str,
    description: &str,
    fields: Vec<Field>,
    statements: Vec<Value>,
) -> Template {
    Template {
        id: id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        fields,
        statements,
    }
}

fn bucket_fields() -> Vec<Field> {
    vec![
        field(
            "bucket",
            "Bucket name",
            "s3_bucket",
            true,
            "my-team-bucket",
            "The bucket name only, not an ARN or s3:// URL.",
        ),
        field(
            "prefix",
            "Prefix",
            "s3_prefix",
            false,
            "reports/2024/",
            "Optional. Leave empty for the whole bucket. End it with / to stay inside one folder; \
             no wildcards (the template adds them).",
        ),
    ]
}

fn list_statement() -> Value {
    json!({
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": "arn:aws:s3:::{bucket}",
        "Condition": {"StringLike": {"s3:prefix": ["{prefix}*"]}}
    })
}

fn queue_field() -> Vec<Field> {
    vec![field(
        "queue_arn",
        "Queue ARN",
        "sqs_queue_arn",
        true,
        "arn:aws:sqs:us-east-1:123456789012:my-queue",
        "The ARN of the SQS queue.",
    )]
}

fn topic_field() -> Vec<Field> {
    vec![field(
        "topic_arn",
        "Topic ARN",
        "sns_topic_arn",
        true,
        "arn:aws:sns:us-east-1:123456789012:my-topic",
        "The ARN of the SNS topic.",
    )]
}

fn table_field() -> Vec<Field> {
    vec![field(
        "table_arn",
        "Table ARN",
        "dynamodb_table_arn",
        true,
        "arn:aws:dynamodb:us-east-1:123456789012:table/my-table",
        "The ARN of the DynamoDB table (without /index/…).",
    )]
}

const SQS_RECEIVE: [&str; 4] = [
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
];

/// The templates offered when the config has no `self_service.templates`.
pub fn default_templates() -> Vec<Template> {
    let mut consume: Vec<&str> = SQS_RECEIVE.to_vec();
    consume.push("sqs:DeleteMessage");
    vec![
        template(
            "s3_read",
            "S3: read objects",
            "Read (download) objects in a bucket, optionally only under a prefix, and list them.",
            bucket_fields(),
            vec![
                json!({
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                    "Resource": "arn:aws:s3:::{bucket}/{prefix}*"
                }),
                list_statement(),
            ],
        ),
        template(
            "s3_write",
            "S3: write objects",
            "Upload, overwrite and delete objects in a bucket, optionally only under a prefix.",
            bucket_fields(),
            vec![json!({
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": "arn:aws:s3:::{bucket}/{prefix}*"
            })],
        ),
        template(
            "s3_list",
            "S3: list a bucket",
            "List the objects of a bucket, optionally only under a prefix (no reading).",
            bucket_fields(),
            vec![
                list_statement(),
                // Separate: GetBucketLocation requests carry no s3:prefix, so the prefix
                // condition would always deny it.
                json!({
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketLocation"],
                    "Resource": "arn:aws:s3:::{bucket}"
                }),
            ],
        ),
        template(
            "sqs_send",
            "SQS: send messages",
            "Send messages to a queue.",
            queue_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                "Resource": "{queue_arn}"
            })],
        ),
        template(
            "sqs_receive",
            "SQS: receive messages",
            "Receive messages from a queue without deleting them.",
            queue_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": SQS_RECEIVE,
                "Resource": "{queue_arn}"
            })],
        ),
        template(
            "sqs_consume",
            "SQS: consume messages",
            "Receive and delete messages from a queue.",
            queue_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": consume,
                "Resource": "{queue_arn}"
            })],
        ),
        template(
            "sns_publish",
            "SNS: publish",
            "Publish messages to a topic.",
            topic_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": "{topic_arn}"
            })],
        ),
        template(
            "sns_subscribe",
            "SNS: subscribe",
            "Subscribe endpoints to a topic and read its attributes.",
            topic_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": ["sns:Subscribe", "sns:GetTopicAttributes"],
                "Resource": "{topic_arn}"
            })],
        ),
        template(
            "sts_assume",
            "STS: assume a role",
            "Assume another role (the role's trust policy must allow it too).",
            vec![field(
                "role_arn",
                "Role ARN",
                "role_arn",
                true,
                "arn:aws:iam::123456789012:role/my-role",
                "The ARN of the role to assume.",
            )],
            vec![json!({
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": "{role_arn}"
            })],
        ),
        template(
            "dynamodb_read",
            "DynamoDB: read a table",
            "Read items of a table and its indexes.",
            table_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                    "dynamodb:DescribeTable",
                    "dynamodb:ConditionCheckItem"
                ],
                "Resource": ["{table_arn}", "{table_arn}/index/*"]
            })],
        ),
        template(
            "dynamodb_write",
            "DynamoDB: write a table",
            "Put, update and delete items of a table.",
            table_field(),
            vec![json!({
                "Effect": "Allow",
                "Action": [
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem"
                ],
                "Resource": "{table_arn}"
            })],
        ),
        template(
            "custom",
            "Free-form JSON",
            "Paste IAM policy statements yourself; they are reviewed like any other request.",
            vec![field(
                "statements",
                "Statements (JSON)",
                JSON_STATEMENTS,
                true,
                r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-bucket/*"}"#,
                "One statement object, a list of statement objects, or a whole policy document; \
                 at most 20 statements and 10,000 characters.",
            )],
            Vec::new(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Expansion
// ---------------------------------------------------------------------------------------------

/// Expand one choice into IAM statements (serde_json::Value objects). `index` is used only for
/// the field paths in problems (`permissions[{index}].{field}`). Every problem is collected, not
/// just the first.
pub fn expand(
    templates: &[Template],
    choice: &Choice,
    index: usize,
) -> Result<Vec<Value>, Vec<FieldProblem>> {
    let path = |name: &str| format!("permissions[{index}].{name}");
    let id = choice.template.trim();
    let Some(template) = templates.iter().find(|t| t.id == id) else {
        return Err(vec![FieldProblem {
            field: path("template"),
            message: unknown_template_message(templates, id),
        }]);
    };

    let mut problems = Vec::new();
    let mut values: HashMap<&str, &str> = HashMap::new();
    let mut pasted: Vec<Value> = Vec::new();
    for f in &template.fields {
        let raw = choice.values.get(&f.name).map(|v| v.trim()).unwrap_or("");
        if raw.is_empty() {
            if f.required {
                problems.push(FieldProblem {
                    field: path(&f.name),
                    message: format!("{} is required", display_label(f)),
                });
            }
            values.insert(&f.name, "");
            continue;
        }
        if f.kind == JSON_STATEMENTS {
            match parse_statements(raw) {
                Ok(statements) => pasted.extend(statements),
                Err(messages) => {
                    problems.extend(messages.into_iter().map(|message| FieldProblem {
                        field: path(&f.name),
                        message,
                    }))
                }
            }
            continue;
        }
        match check_value(&f.kind, raw) {
            Ok(()) => {
                values.insert(&f.name, raw);
            }
            Err(message) => problems.push(FieldProblem {
                field: path(&f.name),
                message,
            }),
        }
    }
    for key in choice.values.keys() {
        if !template.fields.iter().any(|f| &f.name == key) {
            problems.push(FieldProblem {
                field: path(key),
                message: unknown_field_message(template, key),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut out: Vec<Value> = template
        .statements
        .iter()
        .map(|s| fill_statement(s, &values))
        .collect();
    out.extend(pasted);
    if out.is_empty() {
        let target = template
            .fields
            .iter()
            .find(|f| f.kind == JSON_STATEMENTS)
            .map_or_else(|| path("template"), |f| path(&f.name));
        return Err(vec![FieldProblem {
            field: target,
            message: "nothing to grant: this permission produced no statements".to_owned(),
        }]);
    }
    Ok(out)
}

/// Legal but probably unintended values of one choice, for the person filling the wizard in:
/// an S3 prefix without a trailing `/` (`weekly` becomes `weekly*`, which also matches
/// `weekly-old/...` and `weeklyreport.csv`).
pub fn warnings(templates: &[Template], choice: &Choice) -> Vec<String> {
    let Some(template) = templates.iter().find(|t| t.id == choice.template.trim()) else {
        return vec![];
    };
    template
        .fields
        .iter()
        .filter(|f| f.kind == "s3_prefix")
        .filter_map(|f| {
            let v = choice.values.get(&f.name)?.trim();
            (!v.is_empty() && !v.ends_with('/')).then(|| {
                format!(
                    "{}: “{v}” has no / at the end, so it grants {v}* — every key starting with \
                     it, such as “{v}-old/…” or “{v}.csv”, not only a folder. Write “{v}/” to \
                     stay inside the folder.",
                    display_label(f)
                )
            })
        })
        .collect()
}

/// Expand several choices into ONE policy document `{"Version": "2012-10-17", "Statement": [...]}`,
/// statements in order, identical statements (after expansion, ignoring `Sid`) kept once (the
/// first). Each generated statement gets a `Sid` unique within the document made of the template
/// id in CamelCase plus a counter ("S3Read1", "S3Read2", "SqsSend1"), unless the statement already
/// has a Sid (from the user's free-form JSON or the template): that one is kept, with a counter
/// appended if it clashes ("Mine", "Mine2"). Zero choices → a problem on field `permissions`.
pub fn policy_document(
    templates: &[Template],
    choices: &[Choice],
) -> Result<Value, Vec<FieldProblem>> {
    if choices.is_empty() {
        return Err(vec![FieldProblem {
            field: "permissions".to_owned(),
            message: "choose at least one permission".to_owned(),
        }]);
    }
    let mut problems = Vec::new();
    let mut entries: Vec<(&str, Value)> = Vec::new();
    for (i, choice) in choices.iter().enumerate() {
        match expand(templates, choice, i) {
            Ok(statements) => {
                entries.extend(statements.into_iter().map(|s| (choice.template.trim(), s)))
            }
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Merge identical statements (Sid aside): the first one stays, where it was.
    // `Value` equality ignores key order; documents are small, so a linear scan is fine.
    let mut seen: Vec<Value> = Vec::new();
    entries.retain(|(_, statement)| {
        let mut key = statement.clone();
        if let Value::Object(m) = &mut key {
            m.remove("Sid");
        }
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });

    // Sids already present are reserved first, so a generated "S3Read1" never takes a Sid the
    // user wrote further down.
    let mut used: HashSet<String> = HashSet::new();
    let mut keeps_own: Vec<bool> = Vec::with_capacity(entries.len());
    for (_, statement) in &entries {
        let own = match statement.get("Sid") {
            Some(Value::String(sid)) => used.insert(sid.clone()),
            // A non-string Sid is left for the request validator to report.
            Some(_) => true,
            None => false,
        };
        keeps_own.push(own);
    }
    let mut counters: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for ((id, mut statement), own) in entries.into_iter().zip(keeps_own) {
        if !own && let Value::Object(m) = &mut statement {
            let sid = match m.get("Sid") {
                Some(Value::String(clashing)) => {
                    let base = clashing.clone();
                    (2..)
                        .map(|n| format!("{base}{n}"))
                        .find(|s| !used.contains(s))
                        .unwrap_or(base)
                }
                _ => {
                    let base = camel_case(id);
                    let counter = counters.entry(base.clone()).or_insert(0);
                    loop {
                        *counter += 1;
                        let candidate = format!("{base}{counter}");
                        if !used.contains(&candidate) {
                            break candidate;
                        }
                    }
                }
            };
            used.insert(sid.clone());
            m.insert("Sid".to_owned(), Value::String(sid));
        }
        out.push(statement);
    }
    Ok(json!({"Version": POLICY_VERSION, "Statement": out}))
}

/// `s3_read` → `S3Read`; only `[A-Za-z0-9]`.
fn camel_case(id: &str) -> String {
    let mut out = String::new();
    for part in id.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() {
        "Statement".to_owned()
    } else {
        out
    }
}

fn display_label(f: &Field) -> &str {
    if f.label.trim().is_empty() {
        &f.name
    } else {
        f.label.trim()
    }
}

fn suggestion<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    candidates
        .map(|c| {
            (
                strsim::normalized_damerau_levenshtein(&wrong, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn unknown_template_message(templates: &[Template], id: &str) -> String {
    let known: Vec<&str> = templates.iter().map(|t| t.id.as_str()).collect();
    let list = known.join(", ");
    if id.is_empty() {
        return format!("choose a template: one of {list}");
    }
    let mut message = format!("unknown template '{}'", shorten(id));
    if let Some(s) = suggestion(id, known.iter().copied()) {
        message.push_str(&format!(" (did you mean '{s}'?)"));
    }
    message.push_str(&format!("; known templates: {list}"));
    message
}

fn unknown_field_message(template: &Template, key: &str) -> String {
    let names: Vec<&str> = template.fields.iter().map(|f| f.name.as_str()).collect();
    let mut message = format!("template '{}' has no field '{}'", template.id, shorten(key));
    if let Some(s) = suggestion(key, names.iter().copied()) {
        message.push_str(&format!(" (did you mean '{s}'?)"));
    }
    message.push_str(&format!("; its fields are: {}", names.join(", ")));
    message
}

/// At most 64 characters of a user value, for echoing it in a message.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(61).collect();
        out.push('…');
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Placeholders and substitution
// ---------------------------------------------------------------------------------------------

/// The `{name}` placeholders of a skeleton string: (byte start, byte end, name). A name is
/// `[A-Za-z0-9_]+`; a `{` right after `$` is an IAM policy variable (`${aws:username}`), not a
/// placeholder, and anything else between braces is left as text.
fn placeholders(s: &str) -> Vec<(usize, usize, &str)> {
    let bytes = s.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > i + 1 && j < bytes.len() && bytes[j] == b'}' {
                found.push((i, j + 1, &s[i + 1..j]));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// One pass over `s`: each placeholder naming a known field is replaced by its value; the
/// replaced text is never scanned again.
fn substitute(s: &str, values: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (start, end, name) in placeholders(s) {
        if let Some(v) = values.get(name) {
            out.push_str(&s[last..start]);
            out.push_str(v);
            last = end;
        }
    }
    out.push_str(&s[last..]);
    out
}

fn fill(value: &Value, values: &HashMap<&str, &str>) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, values)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, values)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), fill(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A skeleton pattern that only matches "anything" because every field in it was left empty:
/// it has at least one placeholder, all of them known and empty, and becomes exactly `*`.
fn vacuous_pattern(skeleton: &Value, values: &HashMap<&str, &str>) -> bool {
    let Value::String(s) = skeleton else {
        return false;
    };
    let found = placeholders(s);
    !found.is_empty()
        && found
            .iter()
            .all(|(_, _, name)| values.get(name).is_some_and(|v| v.is_empty()))
        && substitute(s, values) == "*"
}

fn is_string_like(operator: &str) -> bool {
    let op = operator
        .strip_prefix("ForAnyValue:")
        .or_else(|| operator.strip_prefix("ForAllValues:"))
        .unwrap_or(operator);
    let op = op.strip_suffix("IfExists").unwrap_or(op);
    op == "StringLike"
}

fn fill_statement(skeleton: &Value, values: &HashMap<&str, &str>) -> Value {
    let mut filled = fill(skeleton, values);
    let (Value::Object(out), Some(Value::Object(condition))) =
        (&mut filled, skeleton.get("Condition"))
    else {
        return filled;
    };
    let mut pruned = Map::new();
    for (operator, keys) in condition {
        let Value::Object(keys) = keys else {
            pruned.insert(operator.clone(), fill(keys, values));
            continue;
        };
        let mut kept = Map::new();
        for (key, patterns) in keys {
            let vacuous = is_string_like(operator)
                && match patterns {
                    Value::Array(items) => {
                        !items.is_empty() && items.iter().all(|p| vacuous_pattern(p, values))
                    }
                    single => vacuous_pattern(single, values),
                };
            if !vacuous {
                kept.insert(key.clone(), fill(patterns, values));
            }
        }
        if !kept.is_empty() {
            pruned.insert(operator.clone(), Value::Object(kept));
        }
    }
    if pruned.is_empty() {
        out.remove("Condition");
    } else {
        out.insert("Condition".to_owned(), Value::Object(pruned));
    }
    filled
}

// ---------------------------------------------------------------------------------------------
// Free-form statements
// ---------------------------------------------------------------------------------------------

fn parse_statements(raw: &str) -> Result<Vec<Value>, Vec<String>> {
    let chars = raw.chars().count();
    if chars > MAX_CUSTOM_CHARS {
        return Err(vec![format!(
            "the statements are {chars} characters long; at most {MAX_CUSTOM_CHARS} are accepted \
             (split them into several permissions or ask for a managed policy)"
        )]);
    }
    let parsed: Value =
        serde_json::from_str(raw).map_err(|e| vec![format!("this is not valid JSON: {e}")])?;
    let shape = "paste one statement object ({\"Effect\": …, \"Action\": …, \"Resource\": …}), \
                 a list of them, or a whole policy document with a Statement key";
    let list = match parsed {
        Value::Object(mut document) if document.contains_key("Statement") => {
            match document.remove("Statement") {
                Some(Value::Array(items)) => items,
                Some(Value::Object(one)) => vec![Value::Object(one)],
                _ => {
                    return Err(vec![
                        "the policy document's Statement must be an object or a list of objects"
                            .to_owned(),
                    ]);
                }
            }
        }
        Value::Object(one) => vec![Value::Object(one)],
        Value::Array(items) => items,
        _ => return Err(vec![shape.to_owned()]),
    };
    if list.is_empty() {
        return Err(vec![format!("there are no statements: {shape}")]);
    }
    if list.len() > MAX_CUSTOM_STATEMENTS {
        return Err(vec![format!(
            "{} statements given; at most {MAX_CUSTOM_STATEMENTS} are accepted in one free-form permission",
            list.len()
        )]);
    }
    let mut problems = Vec::new();
    for (i, statement) in list.iter().enumerate() {
        let n = i + 1;
        match statement {
            Value::Object(m) if m.contains_key("Effect") => {}
            Value::Object(_) => problems.push(format!("statement {n} has no Effect (\"Allow\" or \"Deny\")")),
            _ => problems.push(format!(
                "statement {n} is not a JSON object; each statement looks like {{\"Effect\": …, \"Action\": …, \"Resource\": …}}"
            )),
        }
    }
    if problems.is_empty() {
        Ok(list)
    } else {
        Err(problems)
    }
}

// ---------------------------------------------------------------------------------------------
// Field checks
// ---------------------------------------------------------------------------------------------

/// A character as shown in a message: `'A'`, `a space`, or `U+0009` for invisible ones.
fn show(c: char) -> String {
    if c == ' ' {
        "a space".to_owned()
    } else if c.is_control() || c.is_whitespace() || !(c.is_ascii_graphic() || c.is_alphanumeric())
    {
        format!("U+{:04X}", c as u32)
    } else {
        format!("'{c}'")
    }
}

/// Check one trimmed, non-empty value against its kind.
fn check_value(kind: &str, value: &str) -> Result<(), String> {
    match kind {
        "s3_bucket" => check_bucket(value),
        "s3_prefix" => check_prefix(value),
        "arn" => check_generic_arn(value),
        "sqs_queue_arn" => check_sqs_arn(value),
        "sns_topic_arn" => check_sns_arn(value),
        "role_arn" => check_role_arn(value),
        "dynamodb_table_arn" => check_table_arn(value),
        "text" => check_text(value),
        other => Err(format!(
            "this field has the unknown kind '{other}' in the template configuration; known kinds: {}",
            FIELD_KINDS.join(", ")
        )),
    }
}

fn check_bucket(value: &str) -> Result<(), String> {
    if value.starts_with("arn:") || value.starts_with("s3://") || value.contains('/') {
        return Err(
            "give the bucket name only (like my-team-bucket), not an ARN, s3:// URL or path"
                .to_owned(),
        );
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(format!(
            "an S3 bucket name may contain only lowercase letters, digits, dots (.) and hyphens (-); found {}",
            show(c)
        ));
    }
    let n = value.len();
    if !(3..=63).contains(&n) {
        return Err(format!(
            "an S3 bucket name is 3 to 63 characters long; this one has {n}"
        ));
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = value.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[n - 1]) {
        return Err(
            "an S3 bucket name must start and end with a lowercase letter or a digit".to_owned(),
        );
    }
    if value.contains("..") {
        return Err("an S3 bucket name may not contain two dots in a row".to_owned());
    }
    let groups: Vec<&str> = value.split('.').collect();
    if groups.len() == 4
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "an S3 bucket name may not look like an IP address (such as 192.168.5.4)".to_owned(),
        );
    }
    Ok(())
}

fn check_prefix(value: &str) -> Result<(), String> {
    let n = value.chars().count();
    if n > MAX_PREFIX_CHARS {
        return Err(format!(
            "a prefix is at most {MAX_PREFIX_CHARS} characters long; this one has {n}"
        ));
    }
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "a prefix may contain only printable ASCII characters (letters, digits, spaces and \
             punctuation); found {}",
            show(c)
        ));
    }
    if value.contains(['*', '?']) {
        return Err(
            "a prefix may not contain * or ?: the template adds the wildcard itself, so give \
                    the plain prefix (like reports/2024/)"
                .to_owned(),
        );
    }
    if value.contains(['$', '{', '}']) {
        return Err(
            "a prefix may not contain $, { or }: IAM would read them as a policy variable"
                .to_owned(),
        );
    }
    if value.contains(['"', '\\']) {
        return Err("a prefix may not contain quotes (\") or backslashes (\\)".to_owned());
    }
    if value.starts_with('/') {
        return Err(
            "a prefix does not start with /: S3 keys have no leading slash (use reports/2024/, \
                    not /reports/2024/)"
                .to_owned(),
        );
    }
    Ok(())
}

fn check_text(value: &str) -> Result<(), String> {
    let n = value.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(format!(
            "at most {MAX_TEXT_CHARS} characters are accepted; this has {n}"
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!(
            "control characters are not accepted; found {}",
            show(c)
        ));
    }
    Ok(())
}

/// The six parts of an ARN.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

/// Split an ARN, checking what every kind shares: the `arn:` start, six parts, a known
/// partition, no whitespace, quotes or braces. `example` is shown in messages.
fn split_arn<'a>(value: &'a str, what: &str, example: &str) -> Result<Arn<'a>, String> {
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} may not contain spaces or control characters; found {}",
            show(c)
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '"' | '\\' | '{' | '}' | '$'))
    {
        return Err(format!(
            "{what} may not contain quotes, backslashes, $, {{ or }}; found {}",
            show(c)
        ));
    }
    if !value.starts_with("arn:") {
        return Err(format!(
            "{what} is an ARN starting with arn: (like {example})"
        ));
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = parts[..] else {
        return Err(format!(
            "{what} has six parts separated by colons, arn:partition:service:region:account:resource \
             (like {example})"
        ));
    };
    if !PARTITIONS.contains(&partition) {
        return Err(format!(
            "unknown partition '{}' in {what}: use {}",
            shorten(partition),
            PARTITIONS.join(", ")
        ));
    }
    Ok(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

fn check_region(arn: &Arn<'_>, what: &str) -> Result<(), String> {
    let region = arn.region;
    if region.is_empty() {
        return Err(format!("{what} is missing its region (like us-east-1)"));
    }
    let well_formed = region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.as_bytes()[0].is_ascii_lowercase()
        && region.as_bytes()[region.len() - 1].is_ascii_digit()
        && region.contains('-')
        && !region.contains("--");
    if !well_formed {
        return Err(format!(
            "'{}' is not a region name like us-east-1 (lowercase letters, digits and hyphens)",
            shorten(region)
        ));
    }
    let expected = match arn.partition {
        "aws-cn" if !region.starts_with("cn-") => Some("cn-"),
        "aws-us-gov" if !region.starts_with("us-gov-") => Some("us-gov-"),
        _ => None,
    };
    if let Some(start) = expected {
        return Err(format!(
            "region '{region}' is not in partition {}: its regions start with {start}",
            arn.partition
        ));
    }
    if arn.partition == "aws" && (region.starts_with("cn-") || region.starts_with("us-gov-")) {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else {
            "aws-us-gov"
        };
        return Err(format!(
            "region '{region}' belongs to partition {partition}, not aws"
        ));
    }
    Ok(())
}

fn check_account(account: &str, what: &str) -> Result<(), String> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else if account.is_empty() {
        Err(format!("{what} is missing its 12-digit account ID"))
    } else {
        Err(format!(
            "the account ID in {what} must be 12 digits; found '{}'",
            shorten(account)
        ))
    }
}

fn check_service(arn: &Arn<'_>, service: &str, what: &str, example: &str) -> Result<(), String> {
    if arn.service == service {
        Ok(())
    } else {
        Err(format!(
            "this is not {what}: its service is '{}', expected {service} (like {example})",
            shorten(arn.service)
        ))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// An SQS queue or SNS topic name: `[A-Za-z0-9_-]`, an optional `.fifo` suffix, `max` characters
/// in all (the suffix counts, as in AWS).
fn check_messaging_name(name: &str, what: &str, max: usize) -> Result<(), String> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if base.is_empty() {
        return Err(format!("the {what} name is missing at the end of the ARN"));
    }
    if let Some(c) = base.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "a {what} name may contain only letters, digits, _ and -, with an optional .fifo suffix; found {}",
            show(c)
        ));
    }
    if name.len() > max {
        return Err(format!(
            "a {what} name is at most {max} characters long (.fifo included); this one has {}",
            name.len()
        ));
    }
    Ok(())
}

fn check_sqs_arn(value: &str) -> Result<(), String> {
    const EXAMPLE: &str = "arn:aws:sqs:us-east-1:123456789012:my-queue";
    let what = "an SQS queue ARN";
    let arn = split_arn(value, what, EXAMPLE)?;
    check_service(&arn, "sqs", what, EXAMPLE)?;
    check_region(&arn, what)?;
    check_account(arn.account, what)?;
    check_messaging_name(arn.resource, "queue", 80)
}

fn check_sns_arn(value: &str) -> Result<(), String> {
    const EXAMPLE: &str = "arn:aws:sns:us-east-1:123456789012:my-topic";
    let what = "an SNS topic ARN";
    let arn = split_arn(value, what, EXAMPLE)?;
    check_service(&arn, "sns", what, EXAMPLE)?;
    check_region(&arn, what)?;
    check_account(arn.account, what)?;
    if arn.resource.contains(':') {
        return Err(
            "this looks like a subscription ARN; give the topic ARN (without the subscription ID)"
                .to_owned(),
        );
    }
    check_messaging_name(arn.resource, "topic", 256)
}

fn check_role_arn(value: &str) -> Result<(), String> {
    const EXAMPLE: &str = "arn:aws:iam::123456789012:role/my-role";
    let what = "a role ARN";
    let arn = split_arn(value, what, EXAMPLE)?;
    check_service(&arn, "iam", what, EXAMPLE)?;
    if !arn.region.is_empty() {
        return Err(format!(
            "IAM ARNs have no region (two colons after iam, like {EXAMPLE})"
        ));
    }
    check_account(arn.account, what)?;
    let Some(rest) = arn.resource.strip_prefix("role/") else {
        return Err(format!(
            "this ARN is not a role: the part after the account must start with role/ (like {EXAMPLE})"
        ));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (name, path) = segments.split_last().unwrap_or((&"", &[]));
    if path.iter().any(|s| s.is_empty()) {
        return Err("a role path may not contain an empty segment (//)".to_owned());
    }
    if let Some(c) = path
        .iter()
        .flat_map(|s| s.chars())
        .find(|c| !is_iam_name_char(*c))
    {
        return Err(format!(
            "a role path may contain only letters, digits and _+=,.@- between slashes; found {}",
            show(c)
        ));
    }
    let path_len = 1 + path.iter().map(|s| s.len() + 1).sum::<usize>();
    if path_len > 512 {
        return Err(format!(
            "a role path is at most 512 characters long; this one has {path_len}"
        ));
    }
    if name.is_empty() {
        return Err("the role name is missing at the end of the ARN".to_owned());
    }
    if let Some(c) = name.chars().find(|c| !is_iam_name_char(*c)) {
        return Err(format!(
            "a role name may contain only letters, digits and _+=,.@-; found {}",
            show(c)
        ));
    }
    if name.len() > 64 {
        return Err(format!(
            "a role name is at most 64 characters long; this one has {}",
            name.len()
        ));
    }
    Ok(())
}

fn check_table_arn(value: &str) -> Result<(), String> {
    const EXAMPLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/my-table";
    let what = "a DynamoDB table ARN";
    let arn = split_arn(value, what, EXAMPLE)?;
    check_service(&arn, "dynamodb", what, EXAMPLE)?;
    check_region(&arn, what)?;
    check_account(arn.account, what)?;
    let Some(name) = arn.resource.strip_prefix("table/") else {
        return Err(format!(
            "this ARN is not a table: the part after the account must start with table/ (like {EXAMPLE})"
        ));
    };
    if name.contains('/') {
        return Err(
            "give the table ARN itself, without /index/… or /stream/…; the template adds the index \
             ARNs"
                .to_owned(),
        );
    }
    if let Some(c) = name.chars().find(|c| !(is_name_char(*c) || *c == '.')) {
        return Err(format!(
            "a table name may contain only letters, digits, _, - and .; found {}",
            show(c)
        ));
    }
    if !(3..=255).contains(&name.len()) {
        return Err(format!(
            "a table name is 3 to 255 characters long; this one has {}",
            name.len()
        ));
    }
    Ok(())
}

fn check_generic_arn(value: &str) -> Result<(), String> {
    const EXAMPLE: &str = "arn:aws:logs:us-east-1:123456789012:log-group:my-group";
    let what = "an ARN";
    let n = value.chars().count();
    if n > MAX_ARN_CHARS {
        return Err(format!(
            "an ARN is at most {MAX_ARN_CHARS} characters long; this one has {n}"
        ));
    }
    let arn = split_arn(value, what, EXAMPLE)?;
    if arn.service.is_empty() {
        return Err(format!(
            "the service is missing in this ARN (like {EXAMPLE})"
        ));
    }
    if let Some(c) = arn
        .service
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "an ARN's service is lowercase letters, digits and hyphens (like s3 or logs); found {}",
            show(c)
        ));
    }
    if !arn.region.is_empty() && !arn.region.contains('*') {
        check_region(&arn, what)?;
    }
    let account_ok = arn.account.is_empty()
        || arn.account == "aws"
        || arn.account == "*"
        || (arn.account.len() == 12 && arn.account.bytes().all(|b| b.is_ascii_digit()));
    if !account_ok {
        return Err(format!(
            "the account in an ARN is empty, aws or 12 digits; found '{}'",
            shorten(arn.account)
        ));
    }
    if arn.resource.is_empty() {
        return Err(format!(
            "the resource is missing at the end of this ARN (like {EXAMPLE})"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Config check
// ---------------------------------------------------------------------------------------------

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Check a config's templates at startup: ids unique and non-empty `[a-z0-9_]`; names and labels
/// present; field names unique `[a-z0-9_]`; every `{placeholder}` in the statements names a field
/// of that template (and not its `json_statements` field, and never in an object key); every field
/// kind known; at most one json_statements field; every statement an object with an `Effect`;
/// something to grant. Messages name the template id and field. Used by the config loader.
pub fn check_templates(templates: &[Template]) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, t) in templates.iter().enumerate() {
        let who = if t.id.is_empty() {
            format!("self_service template #{}", i + 1)
        } else {
            format!("self_service template '{}'", t.id)
        };
        if t.id.is_empty() {
            errors.push(format!(
                "{who}: the id is empty; give it one of lowercase letters, digits and _"
            ));
        } else if !is_identifier(&t.id) {
            errors.push(format!(
                "{who}: the id may contain only lowercase letters, digits and _"
            ));
        } else if !ids.insert(&t.id) {
            errors.push(format!(
                "{who}: the id is used by another template; ids must be unique"
            ));
        }
        if t.name.trim().is_empty() {
            errors.push(format!(
                "{who}: the name is empty; it is what the wizard shows"
            ));
        }

        let mut names: HashSet<&str> = HashSet::new();
        let mut json_fields = Vec::new();
        for (j, f) in t.fields.iter().enumerate() {
            let field = if f.name.is_empty() {
                format!("{who}, field #{}", j + 1)
            } else {
                format!("{who}, field '{}'", f.name)
            };
            if !is_identifier(&f.name) {
                errors.push(format!(
                    "{field}: the field name must be non-empty lowercase letters, digits and _"
                ));
            } else if !names.insert(&f.name) {
                errors.push(format!(
                    "{field}: two fields have this name; field names must be unique"
                ));
            }
            if f.label.trim().is_empty() {
                errors.push(format!(
                    "{field}: the label is empty; it is what the wizard shows"
                ));
            }
            if !FIELD_KINDS.contains(&f.kind.as_str()) {
                errors.push(format!(
                    "{field}: unknown kind '{}'; known kinds: {}",
                    f.kind,
                    FIELD_KINDS.join(", ")
                ));
            }
            if f.kind == JSON_STATEMENTS {
                json_fields.push(f.name.as_str());
            }
        }
        if json_fields.len() > 1 {
            errors.push(format!(
                "{who}: at most one json_statements field is allowed; found {}",
                json_fields.join(", ")
            ));
        }

        for (k, statement) in t.statements.iter().enumerate() {
            let at = format!("{who}, statement {}", k + 1);
            match statement {
                Value::Object(m) if m.contains_key("Effect") => {}
                Value::Object(_) => errors.push(format!("{at}: has no Effect")),
                _ => errors.push(format!("{at}: is not a JSON object")),
            }
            check_skeleton(statement, &at, &names, &json_fields, &mut errors);
        }
        if t.statements.is_empty() && json_fields.is_empty() {
            errors.push(format!(
                "{who}: has no statements and no json_statements field, so it would grant nothing"
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_skeleton(
    value: &Value,
    at: &str,
    names: &HashSet<&str>,
    json_fields: &[&str],
    errors: &mut Vec<String>,
) {
    match value {
        Value::String(s) => {
            for (_, _, name) in placeholders(s) {
                if json_fields.contains(&name) {
                    errors.push(format!(
                        "{at}: the placeholder {{{name}}} names a json_statements field, whose \
                         statements are added as they are and cannot be substituted"
                    ));
                } else if !names.contains(name) {
                    let mut known: Vec<&str> = names.iter().copied().collect();
                    known.sort_unstable();
                    errors.push(format!(
                        "{at}: the placeholder {{{name}}} names no field of this template; its fields are: {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                check_skeleton(item, at, names, json_fields, errors);
            }
        }
        Value::Object(m) => {
            for (key, item) in m {
                if let Some((_, _, name)) = placeholders(key).first() {
                    errors.push(format!(
                        "{at}: the key \"{key}\" holds the placeholder {{{name}}}, but placeholders \
                         are only substituted in string values, not in keys"
                    ));
                }
                check_skeleton(item, at, names, json_fields, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:orders";
    const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:alerts";
    const ROLE: &str = "arn:aws:iam::210987654321:role/deploy";
    const TABLE: &str = "arn:aws:dynamodb:us-west-2:123456789012:table/users";

    fn choice(template: &str, values: &[(&str, &str)]) -> Choice {
        Choice {
            template: template.to_owned(),
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn expand_ok(template: &str, values: &[(&str, &str)]) -> Vec<Value> {
        expand(&default_templates(), &choice(template, values), 0).expect("the choice expands")
    }

    fn expand_err(template: &str, values: &[(&str, &str)]) -> Vec<FieldProblem> {
        expand(&default_templates(), &choice(template, values), 3)
            .expect_err("the choice is rejected")
    }

    fn accepts(kind: &str, value: &str) {
        if let Err(e) = check_value(kind, value) {
            panic!("{kind} should accept {value:?}: {e}");
        }
    }

    /// Rejects, and the message mentions `needle`.
    fn rejects(kind: &str, value: &str, needle: &str) {
        match check_value(kind, value) {
            Ok(()) => panic!("{kind} should reject {value:?}"),
            Err(e) => assert!(
                e.contains(needle),
                "{kind} {value:?}: message {e:?} lacks {needle:?}"
            ),
        }
    }

    // --- built-in templates --------------------------------------------------------------

    #[test]
    fn default_templates_pass_check_templates() {
        assert_eq!(check_templates(&default_templates()), Ok(()));
        let ids: Vec<String> = default_templates().into_iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "s3_read",
                "s3_write",
                "s3_list",
                "sqs_send",
                "sqs_receive",
                "sqs_consume",
                "sns_publish",
                "sns_subscribe",
                "sts_assume",
                "dynamodb_read",
                "dynamodb_write",
                "custom"
            ]
        );
    }

    #[test]
    fn s3_read_with_prefix() {
        let got = expand_ok(
            "s3_read",
            &[("bucket", "my-bucket"), ("prefix", "reports/2024/")],
        );
        assert_eq!(
            Value::Array(got),
            json!([
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                    "Resource": "arn:aws:s3:::my-bucket/reports/2024/*"
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": "arn:aws:s3:::my-bucket",
                    "Condition": {"StringLike": {"s3:prefix": ["reports/2024/*"]}}
                }
            ])
        );
    }

    #[test]
    fn s3_read_without_prefix_covers_the_whole_bucket_and_drops_the_vacuous_condition() {
        let expected = json!([
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": "arn:aws:s3:::my-bucket/*"
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": "arn:aws:s3:::my-bucket"
            }
        ]);
        assert_eq!(
            Value::Array(expand_ok("s3_read", &[("bucket", "my-bucket")])),
            expected
        );
        // Blank is the same as absent.
        assert_eq!(
            Value::Array(expand_ok(
                "s3_read",
                &[("bucket", "my-bucket"), ("prefix", "   ")]
            )),
            expected
        );
    }

    #[test]
    fn s3_write_and_s3_list() {
        assert_eq!(
            Value::Array(expand_ok(
                "s3_write",
                &[("bucket", "logs.example"), ("prefix", "in")]
            )),
            json!([{
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": "arn:aws:s3:::logs.example/in*"
            }])
        );
        assert_eq!(
            Value::Array(expand_ok(
                "s3_list",
                &[("bucket", "logs.example"), ("prefix", "in/")]
            )),
            json!([
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": "arn:aws:s3:::logs.example",
                    "Condition": {"StringLike": {"s3:prefix": ["in/*"]}}
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketLocation"],
                    "Resource": "arn:aws:s3:::logs.example"
                }
            ])
        );
    }

    #[test]
    fn sqs_templates() {
        assert_eq!(
            Value::Array(expand_ok("sqs_send", &[("queue_arn", QUEUE)])),
            json!([{
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                "Resource": QUEUE
            }])
        );
        assert_eq!(
            Value::Array(expand_ok("sqs_receive", &[("queue_arn", QUEUE)])),
            json!([{
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl"
                ],
                "Resource": QUEUE
            }])
        );
        assert_eq!(
            Value::Array(expand_ok("sqs_consume", &[("queue_arn", QUEUE)])),
            json!([{
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:DeleteMessage"
                ],
                "Resource": QUEUE
            }])
        );
    }

    #[test]
    fn sns_templates() {
        assert_eq!(
            Value::Array(expand_ok("sns_publish", &[("topic_arn", TOPIC)])),
            json!([{"Effect": "Allow", "Action": ["sns:Publish"], "Resource": TOPIC}])
        );
        assert_eq!(
            Value::Array(expand_ok("sns_subscribe", &[("topic_arn", TOPIC)])),
            json!([{
                "Effect": "Allow",
                "Action": ["sns:Subscribe", "sns:GetTopicAttributes"],
                "Resource": TOPIC
            }])
        );
    }

    #[test]
    fn sts_assume() {
        assert_eq!(
            Value::Array(expand_ok("sts_assume", &[("role_arn", ROLE)])),
            json!([{
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": ROLE
            }])
        );
    }

    #[test]
    fn dynamodb_templates() {
        assert_eq!(
            Value::Array(expand_ok("dynamodb_read", &[("table_arn", TABLE)])),
            json!([{
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                    "dynamodb:DescribeTable",
                    "dynamodb:ConditionCheckItem"
                ],
                "Resource": [TABLE, format!("{TABLE}/index/*")]
            }])
        );
        assert_eq!(
            Value::Array(expand_ok("dynamodb_write", &[("table_arn", TABLE)])),
            json!([{
                "Effect": "Allow",
                "Action": [
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem"
                ],
                "Resource": TABLE
            }])
        );
    }

    #[test]
    fn values_are_trimmed() {
        let got = expand_ok("sqs_send", &[("queue_arn", &format!("  {QUEUE}\n"))]);
        assert_eq!(got[0]["Resource"], json!(QUEUE));
    }

    // --- injection -----------------------------------------------------------------------

    #[test]
    fn quotes_and_braces_are_rejected_by_the_field_checks() {
        for (template, field, value) in [
            ("s3_read", "bucket", r#"b"},{"Effect":"Allow"#),
            ("s3_read", "bucket", "bucket}"),
            (
                "sqs_send",
                "queue_arn",
                r#"arn:aws:sqs:us-east-1:123456789012:q","Resource":"*"#,
            ),
            (
                "sqs_send",
                "queue_arn",
                "arn:aws:sqs:us-east-1:123456789012:q}",
            ),
            (
                "sts_assume",
                "role_arn",
                r#"arn:aws:iam::123456789012:role/x"]"#,
            ),
            (
                "dynamodb_read",
                "table_arn",
                "arn:aws:dynamodb:us-east-1:123456789012:table/t}",
            ),
        ] {
            let mut values = vec![(field, value)];
            if template.starts_with("s3") {
                values = vec![("bucket", value)];
            }
            let problems = expand_err(template, &values);
            assert_eq!(problems.len(), 1, "{template} {value:?}: {problems:?}");
            assert_eq!(problems[0].field, format!("permissions[3].{field}"));
        }
        let problems = expand_err("s3_read", &[("bucket", "b"), ("prefix", r#"a"}"#)]);
        assert!(
            problems.iter().any(|p| p.field == "permissions[3].prefix"),
            "{problems:?}"
        );
    }

    fn text_template() -> Template {
        Template {
            id: "tagged".to_owned(),
            name: "Tagged".to_owned(),
            description: String::new(),
            fields: vec![
                field("bucket", "Bucket", "s3_bucket", true, "", ""),
                field("team", "Team", "text", true, "", ""),
            ],
            statements: vec![json!({
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": "arn:aws:s3:::{bucket}/{team}/*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "{team}"}}
            })],
        }
    }

    #[test]
    fn text_values_stay_inside_json_strings() {
        let templates = vec![text_template()];
        assert_eq!(check_templates(&templates), Ok(()));
        let evil = r#"x"}, {"Effect": "Allow", "Action": "*", "Resource": "*"#;
        let got = expand(
            &templates,
            &choice("tagged", &[("bucket", "b01"), ("team", evil)]),
            0,
        )
        .expect("text accepts quotes");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0]["Condition"]["StringEquals"]["aws:PrincipalTag/team"],
            json!(evil)
        );
        assert_eq!(
            got[0]["Resource"],
            json!(format!("arn:aws:s3:::b01/{evil}/*"))
        );
        assert_eq!(got[0]["Action"], json!(["s3:GetObject"]));
        // Serialized and parsed again, it is still one statement with the text in one string.
        let reparsed: Value =
            serde_json::from_str(&Value::Array(got.clone()).to_string()).expect("valid JSON");
        assert_eq!(reparsed, Value::Array(got));
    }

    #[test]
    fn substitution_is_a_single_pass() {
        let templates = vec![text_template()];
        let got = expand(
            &templates,
            &choice("tagged", &[("bucket", "b01"), ("team", "{bucket}")]),
            0,
        )
        .expect("expands");
        assert_eq!(got[0]["Resource"], json!("arn:aws:s3:::b01/{bucket}/*"));
        assert_eq!(
            got[0]["Condition"]["StringEquals"]["aws:PrincipalTag/team"],
            json!("{bucket}")
        );
    }

    #[test]
    fn iam_policy_variables_are_not_placeholders() {
        let mut t = text_template();
        t.statements = vec![json!({
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": "arn:aws:s3:::{bucket}/home/${aws:username}/{team}/${team}/*"
        })];
        let templates = vec![t];
        assert_eq!(check_templates(&templates), Ok(()));
        let got = expand(
            &templates,
            &choice("tagged", &[("bucket", "b01"), ("team", "ops")]),
            0,
        )
        .expect("expands");
        assert_eq!(
            got[0]["Resource"],
            json!("arn:aws:s3:::b01/home/${aws:username}/ops/${team}/*")
        );
    }

    #[test]
    fn control_characters_in_text_are_rejected_but_unicode_is_fine() {
        accepts("text", "Équipe données");
        rejects("text", "a\u{7}b", "U+0007");
        rejects("text", "line\nbreak", "control");
        accepts("text", &"x".repeat(256));
        rejects("text", &"x".repeat(257), "256");
        accepts("text", &"é".repeat(256));
    }

    // --- field kinds ---------------------------------------------------------------------

    #[test]
    fn s3_bucket_names() {
        accepts("s3_bucket", "abc");
        accepts("s3_bucket", &"a".repeat(63));
        accepts("s3_bucket", "my.bucket-01");
        accepts("s3_bucket", "1bucket9");
        accepts("s3_bucket", "192.168.5.4x");
        rejects("s3_bucket", "ab", "3 to 63");
        rejects("s3_bucket", &"a".repeat(64), "3 to 63");
        rejects("s3_bucket", "My-Bucket", "'M'");
        rejects("s3_bucket", "my_bucket", "'_'");
        rejects("s3_bucket", "my bucket", "a space");
        rejects("s3_bucket", "-bucket", "start and end");
        rejects("s3_bucket", "bucket.", "start and end");
        rejects("s3_bucket", "my..bucket", "two dots");
        rejects("s3_bucket", "192.168.5.4", "IP address");
        rejects("s3_bucket", "arn:aws:s3:::my-bucket", "name only");
        rejects("s3_bucket", "s3://my-bucket", "name only");
        rejects("s3_bucket", "my-bucket/prefix", "name only");
        rejects("s3_bucket", "bücket", "'ü'");
    }

    #[test]
    fn prefixes_without_a_slash_get_a_warning() {
        let list = default_templates();
        let t = list
            .iter()
            .find(|t| t.fields.iter().any(|f| f.kind == "s3_prefix"))
            .expect("a template with a prefix");
        let bucket = t
            .fields
            .iter()
            .find(|f| f.kind == "s3_bucket")
            .map(|f| f.name.clone());
        let prefix = t
            .fields
            .iter()
            .find(|f| f.kind == "s3_prefix")
            .map(|f| f.name.clone());
        let choice = |p: &str| {
            let mut values = BTreeMap::new();
            if let Some(b) = &bucket {
                values.insert(b.clone(), "reports".to_string());
            }
            if let Some(f) = &prefix {
                values.insert(f.clone(), p.to_string());
            }
            Choice {
                template: t.id.clone(),
                values,
            }
        };
        let w = warnings(&list, &choice("weekly"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("weekly/"), "{w:?}");
        assert!(warnings(&list, &choice("weekly/")).is_empty());
        assert!(warnings(&list, &choice("")).is_empty());
    }

    #[test]
    fn s3_prefixes() {
        accepts("s3_prefix", "reports/2024/");
        accepts("s3_prefix", "reports");
        accepts("s3_prefix", "a b/c-d_e.f=g+h,(i)!");
        accepts("s3_prefix", &"p".repeat(1024));
        rejects("s3_prefix", &"p".repeat(1025), "1024");
        rejects("s3_prefix", "reports/*", "wildcard");
        rejects("s3_prefix", "report?", "wildcard");
        rejects("s3_prefix", "/reports/", "leading slash");
        rejects("s3_prefix", "a\tb", "U+0009");
        rejects("s3_prefix", "a\u{0}b", "U+0000");
        rejects("s3_prefix", "café/", "printable ASCII");
        rejects("s3_prefix", "home/${aws:username}/", "policy variable");
        rejects("s3_prefix", "a}b", "policy variable");
        rejects("s3_prefix", "a\"b", "quotes");
        rejects("s3_prefix", "a\\b", "backslashes");
    }

    #[test]
    fn sqs_queue_arns() {
        accepts("sqs_queue_arn", QUEUE);
        accepts(
            "sqs_queue_arn",
            "arn:aws:sqs:us-east-1:123456789012:orders.fifo",
        );
        accepts("sqs_queue_arn", "arn:aws-cn:sqs:cn-north-1:123456789012:q");
        accepts(
            "sqs_queue_arn",
            "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:Q_1-x",
        );
        let prefix = "arn:aws:sqs:us-east-1:123456789012:";
        accepts("sqs_queue_arn", &format!("{prefix}{}", "q".repeat(80)));
        accepts("sqs_queue_arn", &format!("{prefix}{}.fifo", "q".repeat(75)));
        rejects(
            "sqs_queue_arn",
            &format!("{prefix}{}", "q".repeat(81)),
            "at most 80",
        );
        rejects(
            "sqs_queue_arn",
            &format!("{prefix}{}.fifo", "q".repeat(76)),
            "at most 80",
        );
        rejects("sqs_queue_arn", prefix, "missing");
        rejects("sqs_queue_arn", &format!("{prefix}.fifo"), "missing");
        rejects("sqs_queue_arn", &format!("{prefix}my.queue"), "'.'");
        rejects("sqs_queue_arn", &format!("{prefix}*"), "'*'");
        rejects(
            "sqs_queue_arn",
            "arn:aws:sqs:us-east-1:12345678901:q",
            "12 digits",
        );
        rejects(
            "sqs_queue_arn",
            "arn:aws:sqs:us-east-1:12345678901a:q",
            "12 digits",
        );
        rejects("sqs_queue_arn", "arn:aws:sqs::123456789012:q", "region");
        rejects(
            "sqs_queue_arn",
            "arn:aws:sqs:US-EAST-1:123456789012:q",
            "region name like us-east-1",
        );
        rejects(
            "sqs_queue_arn",
            "arn:aws:sqs:useast:123456789012:q",
            "region name like us-east-1",
        );
        rejects(
            "sqs_queue_arn",
            "arn:aws:sns:us-east-1:123456789012:q",
            "expected sqs",
        );
        rejects(
            "sqs_queue_arn",
            "arn:aws-eu:sqs:us-east-1:123456789012:q",
            "partition",
        );
        rejects(
            "sqs_queue_arn",
            "arn:aws-cn:sqs:us-east-1:123456789012:q",
            "cn-",
        );
        rejects(
            "sqs_queue_arn",
            "arn:aws:sqs:cn-north-1:123456789012:q",
            "aws-cn",
        );
        rejects(
            "sqs_queue_arn",
            "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "arn:",
        );
        rejects("sqs_queue_arn", "arn:aws:sqs:us-east-1", "six parts");
        rejects(
            "sqs_queue_arn",
            "arn:aws:sqs:us-east-1:123456789012:q w",
            "a space",
        );
    }

    #[test]
    fn sns_topic_arns() {
        accepts("sns_topic_arn", TOPIC);
        accepts(
            "sns_topic_arn",
            "arn:aws:sns:eu-west-1:123456789012:events.fifo",
        );
        let prefix = "arn:aws:sns:eu-west-1:123456789012:";
        accepts("sns_topic_arn", &format!("{prefix}{}", "t".repeat(256)));
        rejects(
            "sns_topic_arn",
            &format!("{prefix}{}", "t".repeat(257)),
            "at most 256",
        );
        rejects(
            "sns_topic_arn",
            &format!("{TOPIC}:0f6b1c2e-1111-2222-3333-444455556666"),
            "subscription",
        );
        rejects("sns_topic_arn", QUEUE, "expected sns");
        rejects("sns_topic_arn", &format!("{prefix}my topic"), "a space");
    }

    #[test]
    fn role_arns() {
        accepts("role_arn", ROLE);
        accepts(
            "role_arn",
            "arn:aws:iam::123456789012:role/service-role/team/My+Role=1,a.b@c-d_e",
        );
        accepts("role_arn", "arn:aws-us-gov:iam::123456789012:role/r");
        let prefix = "arn:aws:iam::123456789012:role/";
        accepts("role_arn", &format!("{prefix}{}", "r".repeat(64)));
        rejects(
            "role_arn",
            &format!("{prefix}{}", "r".repeat(65)),
            "at most 64",
        );
        rejects("role_arn", prefix, "missing");
        rejects("role_arn", &format!("{prefix}path/"), "missing");
        rejects("role_arn", &format!("{prefix}a//b"), "empty segment");
        rejects("role_arn", &format!("{prefix}*"), "'*'");
        rejects("role_arn", &format!("{prefix}a#b"), "'#'");
        rejects(
            "role_arn",
            "arn:aws:iam:us-east-1:123456789012:role/r",
            "no region",
        );
        rejects(
            "role_arn",
            "arn:aws:iam::123456789012:user/bob",
            "not a role",
        );
        rejects(
            "role_arn",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "expected iam",
        );
        rejects("role_arn", "arn:aws:iam::aws:role/r", "12 digits");
        rejects("role_arn", "deploy", "arn:");
    }

    #[test]
    fn dynamodb_table_arns() {
        accepts("dynamodb_table_arn", TABLE);
        accepts(
            "dynamodb_table_arn",
            "arn:aws:dynamodb:us-west-2:123456789012:table/My_Table-v1.2",
        );
        let prefix = "arn:aws:dynamodb:us-west-2:123456789012:table/";
        accepts("dynamodb_table_arn", &format!("{prefix}abc"));
        accepts(
            "dynamodb_table_arn",
            &format!("{prefix}{}", "t".repeat(255)),
        );
        rejects("dynamodb_table_arn", &format!("{prefix}ab"), "3 to 255");
        rejects(
            "dynamodb_table_arn",
            &format!("{prefix}{}", "t".repeat(256)),
            "3 to 255",
        );
        rejects(
            "dynamodb_table_arn",
            &format!("{TABLE}/index/by-email"),
            "without /index/",
        );
        rejects("dynamodb_table_arn", &format!("{prefix}user*"), "'*'");
        rejects(
            "dynamodb_table_arn",
            "arn:aws:dynamodb:us-west-2:123456789012:users",
            "table/",
        );
        rejects(
            "dynamodb_table_arn",
            "arn:aws:dynamodb::123456789012:table/users",
            "region",
        );
    }

    #[test]
    fn generic_arns() {
        accepts("arn", "arn:aws:s3:::my-bucket/*");
        accepts("arn", "arn:aws:iam::aws:policy/ReadOnlyAccess");
        accepts(
            "arn",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*",
        );
        accepts("arn", "arn:aws:kms:*:123456789012:key/*");
        rejects(
            "arn",
            "arn:aws::us-east-1:123456789012:thing",
            "service is missing",
        );
        rejects("arn", "arn:aws:s3:::", "resource is missing");
        rejects("arn", "arn:aws:S3:::b", "'S'");
        rejects("arn", "arn:aws:s3:::my bucket", "a space");
        rejects("arn", "arn:aws:s3:::b\"", "quotes");
        rejects("arn", "arn:aws:s3:::b/${aws:username}", "'$'");
        rejects("arn", "arn:azure:s3:::b", "partition");
        rejects("arn", "arn:aws:ec2:us-east-1:12345:instance/i-1", "account");
        rejects("arn", "s3:::b", "arn:");
        let long = format!("arn:aws:s3:::{}", "b".repeat(MAX_ARN_CHARS));
        rejects("arn", &long, "2048");
    }

    #[test]
    fn unknown_kind_at_expansion_is_a_problem_not_a_panic() {
        let mut t = text_template();
        t.fields[1].kind = "colour".to_owned();
        let problems = expand(
            &[t],
            &choice("tagged", &[("bucket", "b01"), ("team", "x")]),
            0,
        )
        .expect_err("unknown kind");
        assert!(
            problems[0].message.contains("unknown kind 'colour'"),
            "{problems:?}"
        );
    }

    // --- choices -------------------------------------------------------------------------

    #[test]
    fn unknown_template_lists_the_known_ids() {
        let problems = expand_err("s3_raed", &[("bucket", "b01")]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "permissions[3].template");
        assert!(
            problems[0].message.contains("unknown template 's3_raed'"),
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("did you mean 's3_read'"),
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("s3_read, s3_write, s3_list"),
            "{problems:?}"
        );
        assert!(problems[0].message.contains("custom"), "{problems:?}");

        let blank = expand_err("  ", &[]);
        assert_eq!(blank[0].field, "permissions[3].template");
        assert!(
            blank[0].message.starts_with("choose a template"),
            "{blank:?}"
        );
    }

    #[test]
    fn missing_required_field() {
        for values in [vec![], vec![("queue_arn", "  ")]] {
            let problems = expand_err("sqs_send", &values);
            assert_eq!(
                problems,
                vec![FieldProblem {
                    field: "permissions[3].queue_arn".to_owned(),
                    message: "Queue ARN is required".to_owned(),
                }]
            );
        }
    }

    #[test]
    fn a_field_the_template_does_not_have_is_a_problem() {
        let problems = expand_err("s3_read", &[("bucket", "b01"), ("prefx", "a/")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "permissions[3].prefx");
        assert!(
            problems[0].message.contains("did you mean 'prefix'"),
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("bucket, prefix"),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_collected() {
        let problems = expand_err("s3_read", &[("prefix", "/x*"), ("color", "red")]);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "permissions[3].bucket",
                "permissions[3].prefix",
                "permissions[3].color"
            ]
        );
    }

    // --- free-form -----------------------------------------------------------------------

    fn custom(json: &str) -> Result<Vec<Value>, Vec<FieldProblem>> {
        expand(
            &default_templates(),
            &choice("custom", &[("statements", json)]),
            1,
        )
    }

    fn statement(n: usize) -> Value {
        json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::b/{n}")})
    }

    #[test]
    fn custom_accepts_an_object_a_list_and_a_document() {
        let one = statement(1);
        assert_eq!(custom(&one.to_string()), Ok(vec![one.clone()]));
        let list = json!([statement(1), statement(2)]);
        assert_eq!(
            custom(&list.to_string()),
            Ok(vec![statement(1), statement(2)])
        );
        let document = json!({"Version": "2012-10-17", "Statement": [statement(1), statement(2)]});
        assert_eq!(
            custom(&document.to_string()),
            Ok(vec![statement(1), statement(2)])
        );
        let single = json!({"Version": "2012-10-17", "Statement": statement(3)});
        assert_eq!(custom(&single.to_string()), Ok(vec![statement(3)]));
        // Returned as-is: deep grammar is the request validator's business.
        let odd = json!({"Effect": "Maybe", "Action": 42, "Sid": "Mine"});
        assert_eq!(custom(&odd.to_string()), Ok(vec![odd.clone()]));
    }

    #[test]
    fn custom_rejects_other_shapes() {
        for (input, needle) in [
            ("\"s3:GetObject\"", "paste one statement object"),
            ("42", "paste one statement object"),
            ("[]", "no statements"),
            ("{\"Statement\": \"x\"}", "Statement must be"),
            ("{\"Effect\": \"Allow\",", "not valid JSON"),
            (
                "[{\"Effect\": \"Allow\"}, \"x\"]",
                "statement 2 is not a JSON object",
            ),
            ("[{\"Action\": \"s3:*\"}]", "statement 1 has no Effect"),
        ] {
            let problems = custom(input).expect_err(input);
            assert_eq!(problems[0].field, "permissions[1].statements", "{input}");
            assert!(
                problems[0].message.contains(needle),
                "{input}: {problems:?}"
            );
        }
        // Each bad statement is its own problem.
        let problems = custom("[{\"Action\": 1}, 2]").expect_err("two problems");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            custom(""),
            Err(vec![FieldProblem {
                field: "permissions[1].statements".to_owned(),
                message: "Statements (JSON) is required".to_owned(),
            }])
        );
    }

    #[test]
    fn custom_limits() {
        let twenty: Vec<Value> = (0..20).map(statement).collect();
        assert_eq!(
            custom(&Value::Array(twenty.clone()).to_string()).map(|v| v.len()),
            Ok(20)
        );
        let twenty_one: Vec<Value> = (0..21).map(statement).collect();
        let problems = custom(&Value::Array(twenty_one).to_string()).expect_err("too many");
        assert!(problems[0].message.contains("at most 20"), "{problems:?}");

        // The limit counts characters of the trimmed value.
        let inside = |total: usize| {
            let head = r#"{"Effect":"Allow","Resource":""#;
            let tail = r#""}"#;
            format!(
                "{head}{}{tail}",
                "é".repeat(total - head.len() - tail.len())
            )
        };
        assert!(custom(&format!("\n  {}  \n", inside(10_000))).is_ok());
        assert!(custom(&inside(10_000)).is_ok());
        let problems = custom(&inside(10_001)).expect_err("too long");
        assert!(
            problems[0].message.contains("10001 characters"),
            "{problems:?}"
        );
    }

    // --- policy documents ----------------------------------------------------------------

    #[test]
    fn zero_choices() {
        assert_eq!(
            policy_document(&default_templates(), &[]),
            Err(vec![FieldProblem {
                field: "permissions".to_owned(),
                message: "choose at least one permission".to_owned(),
            }])
        );
    }

    #[test]
    fn document_merges_duplicates_and_numbers_sids() {
        let templates = default_templates();
        let choices = [
            choice("s3_read", &[("bucket", "b01"), ("prefix", "a/")]),
            choice("s3_list", &[("bucket", "b01"), ("prefix", "a/")]),
            choice("sqs_send", &[("queue_arn", QUEUE)]),
            choice("s3_read", &[("bucket", "b02")]),
            choice("sqs_send", &[("queue_arn", QUEUE)]),
        ];
        let document = policy_document(&templates, &choices).expect("document");
        assert_eq!(
            document,
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "S3Read1",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                        "Resource": "arn:aws:s3:::b01/a/*"
                    },
                    {
                        "Sid": "S3Read2",
                        "Effect": "Allow",
                        "Action": ["s3:ListBucket"],
                        "Resource": "arn:aws:s3:::b01",
                        "Condition": {"StringLike": {"s3:prefix": ["a/*"]}}
                    },
                    {
                        "Sid": "S3List1",
                        "Effect": "Allow",
                        "Action": ["s3:GetBucketLocation"],
                        "Resource": "arn:aws:s3:::b01"
                    },
                    {
                        "Sid": "SqsSend1",
                        "Effect": "Allow",
                        "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                        "Resource": QUEUE
                    },
                    {
                        "Sid": "S3Read3",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                        "Resource": "arn:aws:s3:::b02/*"
                    },
                    {
                        "Sid": "S3Read4",
                        "Effect": "Allow",
                        "Action": ["s3:ListBucket"],
                        "Resource": "arn:aws:s3:::b02"
                    }
                ]
            })
        );
    }

    #[test]
    fn generated_sids_are_alphanumeric_and_unique_for_every_template() {
        let choices = [
            choice("s3_read", &[("bucket", "b01")]),
            choice("s3_write", &[("bucket", "b01")]),
            choice("s3_list", &[("bucket", "b03")]),
            choice("sqs_send", &[("queue_arn", QUEUE)]),
            choice("sqs_receive", &[("queue_arn", QUEUE)]),
            choice("sqs_consume", &[("queue_arn", QUEUE)]),
            choice("sns_publish", &[("topic_arn", TOPIC)]),
            choice("sns_subscribe", &[("topic_arn", TOPIC)]),
            choice("sts_assume", &[("role_arn", ROLE)]),
            choice("dynamodb_read", &[("table_arn", TABLE)]),
            choice("dynamodb_write", &[("table_arn", TABLE)]),
            choice("custom", &[("statements", &statement(1).to_string())]),
        ];
        let document = policy_document(&default_templates(), &choices).expect("document");
        let sids: Vec<&str> = document["Statement"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["Sid"].as_str().expect("Sid"))
            .collect();
        assert_eq!(
            sids,
            [
                "S3Read1",
                "S3Read2",
                "S3Write1",
                "S3List1",
                "S3List2",
                "SqsSend1",
                "SqsReceive1",
                "SqsConsume1",
                "SnsPublish1",
                "SnsSubscribe1",
                "StsAssume1",
                "DynamodbRead1",
                "DynamodbWrite1",
                "Custom1"
            ]
        );
        assert!(
            sids.iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric()))
        );
    }

    #[test]
    fn user_sids_are_kept_and_de_clashed() {
        let pasted = json!([
            {"Sid": "Mine", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/1"},
            {"Sid": "Mine", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/2"},
            {"Sid": "S3Read1", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::c/*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/3"}
        ]);
        let more = json!({"Sid": "Mine2", "Effect": "Allow", "Action": "sqs:*", "Resource": QUEUE});
        let choices = [
            choice("s3_read", &[("bucket", "b01")]),
            choice("custom", &[("statements", &pasted.to_string())]),
            choice("custom", &[("statements", &more.to_string())]),
        ];
        let document = policy_document(&default_templates(), &choices).expect("document");
        let sids: Vec<&str> = document["Statement"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["Sid"].as_str().expect("Sid"))
            .collect();
        // The user's S3Read1 is kept, so the generated ones move on; the second Mine becomes
        // Mine3 because Mine2 is the user's too.
        assert_eq!(
            sids,
            [
                "S3Read2", "S3Read3", "Mine", "Mine3", "S3Read1", "Custom1", "Mine2"
            ]
        );
    }

    #[test]
    fn duplicates_differing_only_by_sid_are_merged() {
        let mut same = expand_ok("sqs_send", &[("queue_arn", QUEUE)]).remove(0);
        same["Sid"] = json!("Pasted");
        let choices = [
            choice("sqs_send", &[("queue_arn", QUEUE)]),
            choice("custom", &[("statements", &same.to_string())]),
        ];
        let document = policy_document(&default_templates(), &choices).expect("document");
        assert_eq!(document["Statement"].as_array().map(Vec::len), Some(1));
        assert_eq!(document["Statement"][0]["Sid"], json!("SqsSend1"));
    }

    #[test]
    fn document_collects_the_problems_of_every_choice() {
        let choices = [
            choice("s3_read", &[]),
            choice("sqs_send", &[("queue_arn", QUEUE)]),
            choice("nope", &[]),
        ];
        let problems = policy_document(&default_templates(), &choices).expect_err("problems");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["permissions[0].bucket", "permissions[2].template"]);
    }

    #[test]
    fn camel_case_ids() {
        assert_eq!(camel_case("s3_read"), "S3Read");
        assert_eq!(camel_case("dynamodb_read"), "DynamodbRead");
        assert_eq!(camel_case("a__b_2"), "AB2");
        assert_eq!(camel_case("___"), "Statement");
    }

    // --- check_templates -----------------------------------------------------------------

    fn errors_of(templates: &[Template]) -> Vec<String> {
        check_templates(templates).expect_err("errors")
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn check_templates_catches_duplicate_and_bad_ids() {
        let mut templates = default_templates();
        templates.push(templates[0].clone());
        let errors = errors_of(&templates);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("template 's3_read'") && errors[0].contains("unique"),
            "{errors:?}"
        );

        let mut t = text_template();
        t.id = "Tagged-1".to_owned();
        assert!(has(
            &errors_of(&[t.clone()]),
            "lowercase letters, digits and _"
        ));
        t.id = String::new();
        assert!(has(&errors_of(&[t]), "template #1: the id is empty"));
    }

    #[test]
    fn check_templates_catches_unknown_placeholders() {
        let mut t = text_template();
        t.statements[0]["Resource"] = json!("arn:aws:s3:::{bucket}/{teem}/*");
        let errors = errors_of(&[t]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("template 'tagged'"), "{errors:?}");
        assert!(errors[0].contains("{teem} names no field"), "{errors:?}");
        assert!(errors[0].contains("bucket, team"), "{errors:?}");
    }

    #[test]
    fn check_templates_catches_unknown_kinds_and_other_mistakes() {
        let mut t = text_template();
        t.fields[1].kind = "colour".to_owned();
        let errors = errors_of(&[t]);
        assert!(
            has(
                &errors,
                "template 'tagged', field 'team': unknown kind 'colour'"
            ),
            "{errors:?}"
        );

        let mut t = text_template();
        t.fields
            .push(field("a", "A", JSON_STATEMENTS, false, "", ""));
        t.fields
            .push(field("b", "B", JSON_STATEMENTS, false, "", ""));
        assert!(has(&errors_of(&[t]), "at most one json_statements field"));

        let mut t = text_template();
        t.fields.push(t.fields[0].clone());
        assert!(has(
            &errors_of(&[t]),
            "field 'bucket': two fields have this name"
        ));

        let mut t = text_template();
        t.statements[0]["Condition"] = json!({"StringEquals": {"aws:PrincipalTag/{team}": "x"}});
        assert!(has(&errors_of(&[t]), "not in keys"));

        let mut t = text_template();
        t.fields
            .push(field("raw", "Raw", JSON_STATEMENTS, false, "", ""));
        t.statements[0]["Resource"] = json!("{raw}");
        assert!(has(&errors_of(&[t]), "json_statements field"));

        let mut t = text_template();
        t.statements = vec![json!({"Action": "s3:GetObject"}), json!("x")];
        let errors = errors_of(&[t]);
        assert!(has(&errors, "statement 1: has no Effect"), "{errors:?}");
        assert!(
            has(&errors, "statement 2: is not a JSON object"),
            "{errors:?}"
        );

        let mut t = text_template();
        t.statements.clear();
        assert!(has(&errors_of(&[t]), "grant nothing"));

        let mut t = text_template();
        t.name = " ".to_owned();
        t.fields[0].label = String::new();
        t.fields[0].name = "Bucket".to_owned();
        let errors = errors_of(&[t]);
        assert!(has(&errors, "the name is empty"), "{errors:?}");
        assert!(has(&errors, "the label is empty"), "{errors:?}");
        assert!(
            has(&errors, "field 'Bucket': the field name must be"),
            "{errors:?}"
        );
    }

    // --- config --------------------------------------------------------------------------

    #[test]
    fn config_from_json_and_defaults() {
        let config: SelfServiceConfig = serde_json::from_value(json!({
            "templates": [{
                "id": "logs_read",
                "name": "Logs: read a group",
                "fields": [{"name": "group_arn", "label": "Log group ARN", "kind": "arn", "required": true}],
                "statements": [{
                    "Effect": "Allow",
                    "Action": ["logs:GetLogEvents", "logs:FilterLogEvents"],
                    "Resource": "{group_arn}"
                }]
            }]
        }))
        .expect("config parses");
        assert_eq!(config.templates.len(), 1);
        let t = &config.templates[0];
        assert_eq!(t.description, "");
        assert_eq!(t.fields[0].placeholder, "");
        assert!(t.fields[0].required);
        assert_eq!(check_templates(&config.templates), Ok(()));
        let arn = "arn:aws:logs:us-east-1:123456789012:log-group:app:*";
        let got = expand(
            &config.templates,
            &choice("logs_read", &[("group_arn", arn)]),
            0,
        )
        .expect("expands");
        assert_eq!(got[0]["Resource"], json!(arn));

        let empty: SelfServiceConfig = serde_json::from_value(json!({})).expect("empty section");
        assert_eq!(empty, SelfServiceConfig::default());
        assert_eq!(empty.templates, default_templates());

        let text = serde_json::to_string(&SelfServiceConfig::default()).expect("serializes");
        let back: SelfServiceConfig = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, SelfServiceConfig::default());
    }

    #[test]
    fn choice_deserializes_without_values() {
        let c: Choice = serde_json::from_value(json!({"template": "s3_read"})).expect("choice");
        assert!(c.values.is_empty());
        let p = serde_json::to_value(FieldProblem {
            field: "permissions".to_owned(),
            message: "m".to_owned(),
        })
        .expect("serializes");
        assert_eq!(p, json!({"field": "permissions", "message": "m"}));
    }
}
