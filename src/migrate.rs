//! `iamdesk migrate`: create the DynamoDB tables described in `migrations/` (embedded in the
//! binary, so it works from any directory). Idempotent: existing tables with all their indexes
//! are left alone, missing indexes are added (one UpdateTable each), missing tables created and
//! awaited until ACTIVE; then requests and audit events stored before their current indexes get
//! their index keys (`DynamoStore::index_existing`), and only then are `retired_indexes`
//! deleted, so no listing ever misses an item during an upgrade.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus,
};
use serde::Deserialize;

/// The table definitions, one file per table.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("requests.json", include_str!("../migrations/requests.json")),
    (
        "request_index.json",
        include_str!("../migrations/request_index.json"),
    ),
    ("audit.json", include_str!("../migrations/audit.json")),
    ("outbox.json", include_str!("../migrations/outbox.json")),
    (
        "resources.json",
        include_str!("../migrations/resources.json"),
    ),
    ("tokens.json", include_str!("../migrations/tokens.json")),
    ("comments.json", include_str!("../migrations/comments.json")),
    ("sessions.json", include_str!("../migrations/sessions.json")),
    ("events.json", include_str!("../migrations/events.json")),
];

/// How long to wait for a new table or index to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migrations/{file}: {message}")]
    Definition { file: String, message: String },
    #[error("table {table}: {message}")]
    Aws { table: String, message: String },
    #[error("table {table} did not become ACTIVE within {secs} s")]
    Timeout { table: String, secs: u64 },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    pub table: String,
    #[serde(default)]
    pub comment: String,
    pub hash_key: String,
    #[serde(default)]
    pub range_key: Option<String>,
    /// Attribute name → `S` | `N` | `B`, for every key attribute (table and indexes).
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    /// An epoch-seconds attribute DynamoDB's TTL deletes items by (finished outbox messages,
    /// expired tokens): growth stays bounded without a sweeper.
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    /// Indexes earlier versions created and this one no longer reads: deleted by `migrate`
    /// after the items are indexed anew.
    #[serde(default)]
    pub retired_indexes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDef {
    pub name: String,
    pub hash_key: String,
    #[serde(default)]
    pub range_key: Option<String>,
    /// `ALL` (default) or `KEYS_ONLY`: listings that read the page's items by id afterwards
    /// project keys only, so a Query returns bytes for keys, not bodies.
    #[serde(default)]
    pub projection: Option<String>,
}

impl IndexDef {
    fn projection(&self) -> Result<Projection, String> {
        let kind = match self.projection.as_deref() {
            None | Some("ALL") => ProjectionType::All,
            Some("KEYS_ONLY") => ProjectionType::KeysOnly,
            Some(other) => {
                return Err(format!(
                    "index {}: projection {other} is not ALL or KEYS_ONLY",
                    self.name
                ));
            }
        };
        Ok(Projection::builder().projection_type(kind).build())
    }
}

/// The real table name: `storage.dynamodb.table_prefix` + the logical name.
pub fn table_name(prefix: &str, logical: &str) -> String {
    format!("{prefix}{logical}")
}

/// Parse every embedded definition, checking that each key attribute has a type.
pub fn definitions() -> Result<Vec<TableDef>, MigrateError> {
    MIGRATIONS
        .iter()
        .map(|(file, text)| {
            let bad = |message: String| MigrateError::Definition {
                file: file.to_string(),
                message,
            };
            let def: TableDef = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
            let keys = std::iter::once(&def.hash_key)
                .chain(def.range_key.iter())
                .chain(
                    def.indexes
                        .iter()
                        .flat_map(|i| std::iter::once(&i.hash_key).chain(i.range_key.iter())),
                );
            for k in keys {
                match def.attributes.get(k).map(String::as_str) {
                    Some("S" | "N" | "B") => {}
                    Some(t) => {
                        return Err(bad(format!("attribute {k} has type {t}, not S, N or B")));
                    }
                    None => {
                        return Err(bad(format!(
                            "key attribute {k} has no type in `attributes`"
                        )));
                    }
                }
            }
            for index in &def.indexes {
                index.projection().map_err(bad)?;
                if def.retired_indexes.contains(&index.name) {
                    return Err(bad(format!(
                        "index {} is both used and retired",
                        index.name
                    )));
                }
            }
            Ok(def)
        })
        .collect()
}

fn key_schema(hash: &str, range: Option<&str>) -> Result<Vec<KeySchemaElement>, String> {
    let mut out = vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| e.to_string())?,
    ];
    if let Some(r) = range {
        out.push(
            KeySchemaElement::builder()
                .attribute_name(r)
                .key_type(KeyType::Range)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

fn attribute_definitions(
    def: &TableDef,
    names: &[&str],
) -> Result<Vec<AttributeDefinition>, String> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .iter()
        .filter(|n| seen.insert(**n))
        .map(|n| {
            let t = match def.attributes.get(*n).map(String::as_str) {
                Some("N") => ScalarAttributeType::N,
                Some("B") => ScalarAttributeType::B,
                _ => ScalarAttributeType::S,
            };
            AttributeDefinition::builder()
                .attribute_name(*n)
                .attribute_type(t)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn gsi(index: &IndexDef) -> Result<GlobalSecondaryIndex, String> {
    GlobalSecondaryIndex::builder()
        .index_name(&index.name)
        .set_key_schema(Some(key_schema(
            &index.hash_key,
            index.range_key.as_deref(),
        )?))
        .projection(index.projection()?)
        .build()
        .map_err(|e| e.to_string())
}

fn aws<E, R>(table: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> MigrateError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    MigrateError::Aws {
        table: table.to_string(),
        message: crate::aws::error_text(&e),
    }
}

/// Wait until the table and all its indexes are ACTIVE.
async fn wait_active(client: &Client, table: &str) -> Result<(), MigrateError> {
    let started = Instant::now();
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| aws(table, e))?;
        let t = out.table();
        let table_ok = t.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let indexes_ok = t
            .map(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| s.as_str() == "ACTIVE"))
            })
            .unwrap_or(true);
        if table_ok && indexes_ok {
            return Ok(());
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(MigrateError::Timeout {
                table: table.to_string(),
                secs: ACTIVE_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Turn on TTL by `attribute` unless it is on already; whether it was turned on now.
async fn ensure_ttl(client: &Client, table: &str, attribute: &str) -> Result<bool, MigrateError> {
    let current = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| aws(table, e))?;
    let on = current.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(attribute)
            && matches!(
                d.time_to_live_status().map(|s| s.as_str()),
                Some("ENABLED" | "ENABLING")
            )
    });
    if on {
        return Ok(false);
    }
    let spec = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(attribute)
        .build()
        .map_err(|e| MigrateError::Aws {
            table: table.to_string(),
            message: e.to_string(),
        })?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| aws(table, e))?;
    Ok(true)
}

/// Apply every definition; returns one line per table saying what was done.
pub async fn run(client: &Client, table_prefix: &str) -> Result<Vec<String>, MigrateError> {
    let mut report = vec![];
    for def in definitions()? {
        let table = table_name(table_prefix, &def.table);
        let invalid = |message: String| MigrateError::Definition {
            file: format!("{}.json", def.table),
            message,
        };
        let existing = match client.describe_table().table_name(&table).send().await {
            Ok(out) => out.table,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => return Err(aws(&table, e)),
        };
        match existing {
            None => {
                let mut names: Vec<&str> = vec![&def.hash_key];
                names.extend(def.range_key.as_deref());
                for i in &def.indexes {
                    names.push(&i.hash_key);
                    names.extend(i.range_key.as_deref());
                }
                let indexes = def
                    .indexes
                    .iter()
                    .map(gsi)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                client
                    .create_table()
                    .table_name(&table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .set_key_schema(Some(
                        key_schema(&def.hash_key, def.range_key.as_deref()).map_err(invalid)?,
                    ))
                    .set_attribute_definitions(Some(
                        attribute_definitions(&def, &names).map_err(invalid)?,
                    ))
                    .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
                    .send()
                    .await
                    .map_err(|e| aws(&table, e))?;
                wait_active(client, &table).await?;
                let ttl = match &def.ttl_attribute {
                    Some(attr) => {
                        ensure_ttl(client, &table, attr).await?;
                        format!(", TTL on {attr}")
                    }
                    None => String::new(),
                };
                report.push(format!(
                    "created table {table} with {} index(es){ttl}",
                    def.indexes.len()
                ));
            }
            Some(desc) => {
                let present: Vec<&str> = desc
                    .global_secondary_indexes()
                    .iter()
                    .filter_map(|i| i.index_name())
                    .collect();
                let missing: Vec<&IndexDef> = def
                    .indexes
                    .iter()
                    .filter(|i| !present.contains(&i.name.as_str()))
                    .collect();
                let ttl_now = match &def.ttl_attribute {
                    Some(attr) => ensure_ttl(client, &table, attr).await?.then_some(attr),
                    None => None,
                };
                if let Some(attr) = ttl_now {
                    report.push(format!("table {table}: TTL turned on ({attr})"));
                }
                let retiring = def
                    .retired_indexes
                    .iter()
                    .any(|r| present.contains(&r.as_str()));
                if missing.is_empty() {
                    if ttl_now.is_none() && !retiring {
                        report.push(format!("table {table} already up to date"));
                    }
                    continue;
                }
                // DynamoDB adds one index per UpdateTable call.
                for index in missing {
                    let mut names: Vec<&str> = vec![&index.hash_key];
                    names.extend(index.range_key.as_deref());
                    let g = gsi(index).map_err(invalid)?;
                    let create = CreateGlobalSecondaryIndexAction::builder()
                        .index_name(&index.name)
                        .set_key_schema(Some(g.key_schema().to_vec()))
                        .set_projection(g.projection().cloned())
                        .build()
                        .map_err(|e| invalid(e.to_string()))?;
                    client
                        .update_table()
                        .table_name(&table)
                        .set_attribute_definitions(Some(
                            attribute_definitions(&def, &names).map_err(invalid)?,
                        ))
                        .global_secondary_index_updates(
                            GlobalSecondaryIndexUpdate::builder().create(create).build(),
                        )
                        .send()
                        .await
                        .map_err(|e| aws(&table, e))?;
                    wait_active(client, &table).await?;
                    report.push(format!("table {table}: added index {}", index.name));
                }
            }
        }
    }
    let store = crate::store::dynamo::DynamoStore::new(client.clone(), table_prefix);
    let indexed = store
        .index_existing()
        .await
        .map_err(|e| MigrateError::Aws {
            table: table_name(table_prefix, "requests"),
            message: e.to_string(),
        })?;
    if indexed.requests > 0 || indexed.audit > 0 {
        report.push(format!(
            "indexed {} request(s) and {} audit event(s) stored before their indexes",
            indexed.requests, indexed.audit
        ));
    }
    for def in definitions()? {
        let table = table_name(table_prefix, &def.table);
        for line in retire_indexes(client, &table, &def.retired_indexes).await? {
            report.push(line);
        }
    }
    Ok(report)
}

/// Delete the `retired` indexes `table` still has, one UpdateTable each.
async fn retire_indexes(
    client: &Client,
    table: &str,
    retired: &[String],
) -> Result<Vec<String>, MigrateError> {
    if retired.is_empty() {
        return Ok(vec![]);
    }
    let desc = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| aws(table, e))?;
    let present: Vec<String> = desc
        .table()
        .map(|t| {
            t.global_secondary_indexes()
                .iter()
                .filter_map(|i| i.index_name().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut report = vec![];
    for name in retired.iter().filter(|r| present.contains(r)) {
        let delete = aws_sdk_dynamodb::types::DeleteGlobalSecondaryIndexAction::builder()
            .index_name(name)
            .build()
            .map_err(|e| MigrateError::Aws {
                table: table.to_string(),
                message: e.to_string(),
            })?;
        client
            .update_table()
            .table_name(table)
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().delete(delete).build(),
            )
            .send()
            .await
            .map_err(|e| aws(table, e))?;
        wait_active(client, table).await?;
        report.push(format!("table {table}: removed retired index {name}"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_definitions_are_consistent() {
        let defs = definitions().expect("valid definitions");
        let names: Vec<&str> = defs.iter().map(|d| d.table.as_str()).collect();
        assert_eq!(
            names,
            [
                "requests",
                "request_index",
                "audit",
                "outbox",
                "resources",
                "tokens",
                "comments",
                "sessions",
                "events"
            ]
        );
        assert!(
            defs.iter().all(|d| !d.comment.is_empty()),
            "each table says why it looks so"
        );
    }
}
