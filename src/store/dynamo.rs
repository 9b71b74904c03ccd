//! DynamoDB backend. Tables and indexes come from `migrations/` (`iamdesk migrate`).
//!
//! Items keep the key attributes each index needs plus the whole entity as a JSON string in
//! `body`: lossless, and the schema stays small. Every listing is a Query on an index (never a
//! Scan); every request write is one `TransactWriteItems` with the request (conditional on its
//! version), its audit event and its outbox messages, so they commit or fail together.
//!
//! Requests are listed from keys-only indexes and posting lists (`src/store/request_index.rs`,
//! `migrations/requests.json`, `migrations/request_index.json`): a page reads its postings, then
//! exactly its requests by id with BatchGetItem. The listings that would otherwise sit on one
//! partition key (every request, every audit event, every request of a status) are spread over
//! [`SHARDS`] partitions and merged on read.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::request_index::{self, SHARDS, shard_of};
use super::*;
use crate::migrate::table_name;
use crate::resources::stored::{LOG_KEEP, ResourceDelete};

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    requests: String,
    /// `migrations/request_index.json`: postings by account, principal and word.
    request_index: String,
    audit: String,
    outbox: String,
    resources: String,
    tokens: String,
    /// `migrations/events.json`: findings, denials and outside changes (`src/events/`).
    events: String,
    comments: String,
    sessions: String,
}

/// Partition of the per-account entries (`meta#<account>`) and sync statuses (`status#<account>`).
const META: &str = "_meta";
/// Sort-key prefixes in an account's partition: one item per resource, one per log entry.
const ITEM: &str = "item#";
const STAMP: &str = "stamp#";
const LOG: &str = "log#";
/// Actions in one `TransactWriteItems` (DynamoDB allows 100) and their bytes (4 MB allowed).
const TX_ACTIONS: usize = 100;
const TX_BYTES: usize = 3_500_000;
/// Attempts at a transaction that lost to a concurrent one on the same item.
const TX_ATTEMPTS: u32 = 5;
/// Item transactions of one large write in flight at once.
const GROUPS_AT_ONCE: usize = 4;

impl DynamoStore {
    pub fn new(client: Client, table_prefix: &str) -> Self {
        DynamoStore {
            client,
            requests: table_name(table_prefix, "requests"),
            request_index: table_name(table_prefix, "request_index"),
            audit: table_name(table_prefix, "audit"),
            outbox: table_name(table_prefix, "outbox"),
            resources: table_name(table_prefix, "resources"),
            tokens: table_name(table_prefix, "tokens"),
            events: table_name(table_prefix, "events"),
            comments: table_name(table_prefix, "comments"),
            sessions: table_name(table_prefix, "sessions"),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn backend<E, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    let message = e.as_service_error().and_then(|s| s.message()).unwrap_or("");
    match classify(code, message) {
        // Conditions are the callers' own business (they check them before calling this).
        Some(kind) if kind != Refusal::Conflict => kind.error(what),
        _ => StoreError::Backend(format!("dynamodb {what}: {}", crate::aws::error_text(&e))),
    }
}

/// What a DynamoDB error code (of a call, or a transaction's cancellation reason) means for the
/// caller, where it is not a plain backend failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Another writer got there first (a condition failed, or a transaction was in the way).
    Conflict,
    /// The table (or a partition) is over its throughput: come back in a moment.
    Throttled,
    /// An item would exceed DynamoDB's 400 KB item size (or a collection its 10 GB).
    TooLarge,
}

impl Refusal {
    fn error(self, what: &str) -> StoreError {
        match self {
            Refusal::Conflict => StoreError::Conflict(format!("{what}: somebody else wrote first")),
            Refusal::Throttled => StoreError::Throttled(format!(
                "DynamoDB is throttling {what}; the write was not made"
            )),
            Refusal::TooLarge => StoreError::TooLarge(format!(
                "{what} would exceed DynamoDB's limit of 400 KB per item"
            )),
        }
    }
}

/// Error codes from the DynamoDB API reference ("Common errors" and TransactWriteItems'
/// CancellationReason codes): throttling, item size and conditions each get their own meaning.
fn classify(code: &str, message: &str) -> Option<Refusal> {
    match code {
        "ConditionalCheckFailed"
        | "ConditionalCheckFailedException"
        | "TransactionConflict"
        | "TransactionConflictException" => Some(Refusal::Conflict),
        "ThrottlingError"
        | "ThrottlingException"
        | "ProvisionedThroughputExceeded"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "TransactionInProgressException" => Some(Refusal::Throttled),
        "ItemCollectionSizeLimitExceeded"
        | "ItemCollectionSizeLimitExceededException"
        | ITEM_TOO_LARGE => Some(Refusal::TooLarge),
        "ValidationError" | "ValidationException"
            if message.contains("Item size") || message.contains("item size") =>
        {
            Some(Refusal::TooLarge)
        }
        _ => None,
    }
}

/// The error for a cancelled transaction whose reasons name no particular item the caller
/// handles itself: throttling and size before conflicts, since retrying those as a "somebody
/// else acted first" would mislead.
fn cancelled_error(what: &str, codes: &[String]) -> StoreError {
    let kinds: Vec<Refusal> = codes.iter().filter_map(|c| classify(c, "")).collect();
    let kind = [Refusal::Throttled, Refusal::TooLarge, Refusal::Conflict]
        .into_iter()
        .find(|k| kinds.contains(k));
    match kind {
        Some(Refusal::Conflict) => {
            StoreError::Conflict(format!("transaction cancelled ({})", codes.join(", ")))
        }
        Some(other) => other.error(what),
        None => StoreError::Backend(format!("dynamodb {what} cancelled ({})", codes.join(", "))),
    }
}

fn encode<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn body_of<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    match item.get("body") {
        Some(AttributeValue::S(b)) => {
            serde_json::from_str(b).map_err(|e| StoreError::Backend(format!("corrupt item: {e}")))
        }
        _ => Err(StoreError::Backend("corrupt item: no body".into())),
    }
}

fn sk_of(item: &Item, attr: &str) -> String {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    }
}

/// The request item: comments are items of their own (`comments` table), never in the body.
fn request_item(r: &PolicyRequest) -> StoreResult<Item> {
    let r = &PolicyRequest {
        comments: vec![],
        ..r.clone()
    };
    let mut item = HashMap::from([
        ("id".into(), s(&r.id)),
        ("status".into(), s(r.status.as_str())),
        ("requester".into(), s(&r.requester)),
        ("sk".into(), s(r.sort_key())),
        ("version".into(), n(r.version)),
        ("body".into(), s(encode(r)?)),
    ]);
    item.extend(request_shard_keys(&r.id, r.status));
    Ok(item)
}

/// The sharded index keys of a request (`migrations/requests.json`): `shard` always, `pending`
/// while pending, `done` afterwards.
fn request_shard_keys(id: &str, status: RequestStatus) -> Vec<(String, AttributeValue)> {
    let shard = shard_of(id);
    let by_status = match status {
        RequestStatus::Pending => ("pending".to_string(), s(format!("pending#{shard}"))),
        done => ("done".to_string(), s(format!("{}#{shard}", done.as_str()))),
    };
    vec![("shard".into(), s(format!("request#{shard}"))), by_status]
}

/// The posting items of a request (`migrations/request_index.json`).
fn posting_items(r: &PolicyRequest) -> Vec<Item> {
    let sk = r.sort_key();
    request_index::index_keys(r)
        .into_iter()
        .filter_map(|k| k.index_key())
        .map(|pk| {
            HashMap::from([
                ("pk".to_string(), s(pk)),
                ("sk".to_string(), s(&sk)),
                ("id".to_string(), s(&r.id)),
            ])
        })
        .collect()
}

/// Sort key of a comment item; the request's comment counter is [`COMMENT_COUNT`].
fn comment_sk(c: &Comment) -> String {
    format!("c#{}", sort_key(c.created_at, &c.id))
}

const COMMENT_COUNT: &str = "#count";

fn comment_item(request_id: &str, c: &Comment) -> StoreResult<Item> {
    Ok(HashMap::from([
        ("request_id".into(), s(request_id)),
        ("sk".into(), s(comment_sk(c))),
        ("body".into(), s(encode(c)?)),
    ]))
}

fn audit_item(e: &AuditEvent) -> StoreResult<Item> {
    let mut item = HashMap::from([
        ("id".into(), s(&e.id)),
        ("sk".into(), s(e.sort_key())),
        ("shard".into(), s(format!("audit#{}", shard_of(&e.id)))),
        ("body".into(), s(encode(e)?)),
    ]);
    if let Some(rid) = &e.request_id {
        item.insert("request_id".into(), s(rid));
    }
    Ok(item)
}

fn token_item(t: &ApiToken) -> StoreResult<Item> {
    Ok(HashMap::from([
        ("id".into(), s(&t.hash)),
        ("user".into(), s(&t.user)),
        ("sk".into(), s(t.sort_key())),
        ("body".into(), s(encode(t)?)),
        // DynamoDB's TTL removes it (migrations/tokens.json).
        ("ttl".into(), n(t.purge_at().timestamp().max(0) as u64)),
    ]))
}

/// `channel#time#id`: pending messages are found per channel, oldest first, so a channel this
/// replica cannot deliver never blocks another.
fn due_key(m: &OutboxMessage) -> String {
    format!("{}#{}#{}", m.channel, ts(m.next_attempt_at), m.id)
}

/// The outbox backlog gauge counts pending messages up to this many (then reports this many).
const BACKLOG_COUNT_CAP: u64 = 10_000;

fn outbox_item(m: &OutboxMessage) -> StoreResult<Item> {
    let mut item = HashMap::from([
        ("id".into(), s(&m.id)),
        ("status".into(), s(m.status.as_str())),
        ("sk".into(), s(m.sort_key())),
        ("due".into(), s(due_key(m))),
        ("version".into(), n(m.version)),
        ("body".into(), s(encode(m)?)),
    ]);
    // A finished message goes by DynamoDB's TTL (migrations/outbox.json); a pending one stays.
    if let Some(at) = m.purge_at() {
        item.insert("ttl".into(), n(at.timestamp().max(0) as u64));
    }
    Ok(item)
}

fn put_new(table: &str, item: Item) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(id)")
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The code [`cancellation_codes`] gives an item refused for its size (DynamoDB says
/// `ValidationError` with "Item size has exceeded the maximum allowed size").
const ITEM_TOO_LARGE: &str = "ItemTooLarge";

/// Cancellation reason codes of a failed transaction, in item order.
fn cancellation_codes<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => Some(
            t.cancellation_reasons()
                .iter()
                .map(|r| {
                    let code = r.code().unwrap_or("None");
                    match classify(code, r.message().unwrap_or("")) {
                        Some(Refusal::TooLarge) => ITEM_TOO_LARGE.to_string(),
                        _ => code.to_string(),
                    }
                })
                .collect(),
        ),
        _ => None,
    }
}

/// One newest-first (or oldest-first) page from an index, following DynamoDB's own pages until
/// `limit + 1` items are in hand (the extra one tells whether there is a next page).
struct IndexQuery<'a> {
    table: &'a str,
    /// `""`: the table itself.
    index: &'a str,
    hash: (&'a str, String),
    range_attr: &'a str,
    /// Exclusive bound on the range key (`<` when newest first, `<=` when oldest first).
    bound: String,
    newest_first: bool,
    filter: Option<(&'a str, String)>,
    limit: usize,
    /// Inclusive lower bound on the range key (oldest-first queries of one key prefix).
    lower: Option<String>,
}

impl DynamoStore {
    /// The entity stored under `id` in `table`, read consistently.
    async fn get_by_id<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        id: &str,
    ) -> StoreResult<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get_item", e))?;
        out.item().map(body_of).transpose()
    }

    async fn query(&self, q: IndexQuery<'_>) -> StoreResult<Vec<Item>> {
        let mut out: Vec<Item> = vec![];
        let mut start: Option<Item> = None;
        let op = if q.newest_first { "<" } else { "<=" };
        loop {
            let mut req = self
                .client
                .query()
                .table_name(q.table)
                .set_index_name((!q.index.is_empty()).then(|| q.index.to_string()))
                .key_condition_expression(match &q.lower {
                    Some(_) => "#h = :h AND #r BETWEEN :lo AND :r".to_string(),
                    None => format!("#h = :h AND #r {op} :r"),
                })
                .set_expression_attribute_values(
                    q.lower
                        .as_ref()
                        .map(|lo| HashMap::from([(":lo".to_string(), s(lo))])),
                )
                .expression_attribute_names("#h", q.hash.0)
                .expression_attribute_names("#r", q.range_attr)
                .expression_attribute_values(":h", s(&q.hash.1))
                .expression_attribute_values(":r", s(&q.bound))
                .scan_index_forward(!q.newest_first)
                .set_exclusive_start_key(start.take());
            req = match &q.filter {
                Some((attr, value)) => req
                    .filter_expression("#f = :f")
                    .expression_attribute_names("#f", *attr)
                    .expression_attribute_values(":f", s(value))
                    .limit(100),
                None => req.limit(i32::try_from(q.limit + 1 - out.len()).unwrap_or(i32::MAX)),
            };
            let page = req.send().await.map_err(|e| backend("query", e))?;
            out.extend(page.items().iter().cloned());
            if out.len() > q.limit {
                out.truncate(q.limit + 1);
                return Ok(out);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        index: &str,
        hash: (&str, String),
        filter: Option<(&str, String)>,
        page: &PageRequest,
    ) -> StoreResult<Page<T>> {
        let (items, next_cursor) = self.raw_page(table, index, hash, filter, page).await?;
        let items = items.iter().map(body_of).collect::<StoreResult<Vec<T>>>()?;
        Ok(Page { items, next_cursor })
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match cancellation_codes(&e) {
                Some(codes) => cancelled_error("the write", &codes),
                None => backend("transact_write_items", e),
            })
    }

    /// Like [`Self::transact`], but a cancellation gives its reason codes in item order.
    async fn transact_codes(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), Result<Vec<String>, StoreError>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match cancellation_codes(&e) {
                Some(codes) => Ok(codes),
                None => Err(backend("transact_write_items", e)),
            })
    }

    /// Add `by` to request `id`'s comment counter, refused past `max` when given.
    fn comment_counter(
        &self,
        id: &str,
        by: u64,
        max: Option<u64>,
    ) -> StoreResult<TransactWriteItem> {
        let mut update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.comments)
            .key("request_id", s(id))
            .key("sk", s(COMMENT_COUNT))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :by")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":by", n(by));
        if let Some(max) = max {
            update = update
                .condition_expression("attribute_not_exists(#n) OR #n < :max")
                .expression_attribute_values(":max", n(max));
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A request's comments, oldest first (following DynamoDB's pages).
    async fn comments_of(&self, id: &str) -> StoreResult<Vec<Comment>> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.comments)
                .key_condition_expression("request_id = :r AND begins_with(sk, :c)")
                .expression_attribute_values(":r", s(id))
                .expression_attribute_values(":c", s("c#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            for item in page.items() {
                out.push(body_of(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    fn write_items(
        &self,
        first: TransactWriteItem,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let mut items = vec![first, put_new(&self.audit, audit_item(event)?)?];
        for m in outbox {
            items.push(put_new(&self.outbox, outbox_item(m)?)?);
        }
        if items.len() > 100 {
            return Err(StoreError::Invalid(
                "too many outbox messages for one write".into(),
            ));
        }
        Ok(items)
    }
}

/// What [`DynamoStore::index_existing`] indexed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Indexed {
    pub requests: usize,
    pub audit: usize,
}

/// Items in one BatchWriteItem (DynamoDB's limit) and keys in one BatchGetItem.
const BATCH_WRITE: usize = 25;
const BATCH_GET: usize = 100;
/// Rounds of resending what DynamoDB left unprocessed (throttled) before giving up.
const BATCH_ROUNDS: u32 = 8;

impl DynamoStore {
    /// One newest-first page of a listing spread over [`SHARDS`] partitions of `index`
    /// (`attr` = `{prefix}#0..15`), merged by `sk`. Each partition is asked for a little more
    /// than its share of the page; a partition that may still hold items newer than the page's
    /// last one is asked again from where it stopped. So a page costs 16 small Queries (rarely
    /// one or two more) and about its own keys, whatever the table holds.
    async fn sharded_page(
        &self,
        table: &str,
        index: &str,
        attr: &str,
        prefix: &str,
        page: &PageRequest,
    ) -> StoreResult<(Vec<Item>, Option<String>)> {
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let start = match &page.cursor {
            Some(c) => decode_cursor(c)?,
            None => "~".to_string(),
        };
        let share = ((limit + 1).div_ceil(SHARDS as usize) * 2 + 2).min(limit + 1);
        // Per partition: its items so far, and where to go on from (None: nothing more).
        let mut parts: Vec<(Vec<Item>, Option<String>)> =
            (0..SHARDS).map(|_| (vec![], Some(start.clone()))).collect();
        let mut ask: Vec<usize> = (0..parts.len()).collect();
        while !ask.is_empty() {
            let got = futures::future::try_join_all(ask.iter().map(|&n| {
                self.query(IndexQuery {
                    table,
                    index,
                    hash: (attr, format!("{prefix}#{n}")),
                    range_attr: "sk",
                    bound: parts[n].1.clone().unwrap_or_default(),
                    newest_first: true,
                    filter: None,
                    limit: share,
                    lower: None,
                })
            }))
            .await?;
            for (&n, items) in ask.iter().zip(got) {
                let more = items.len() > share;
                parts[n].1 = more.then(|| items.last().map(|i| sk_of(i, "sk"))).flatten();
                parts[n].0.extend(items);
            }
            let mut keys: Vec<String> = parts
                .iter()
                .flat_map(|(items, _)| items.iter().map(|i| sk_of(i, "sk")))
                .collect();
            keys.sort_unstable_by(|a, b| b.cmp(a));
            // The page is settled once no partition can hold anything newer than its last key.
            let cutoff = keys.get(limit).cloned();
            ask = parts
                .iter()
                .enumerate()
                .filter(|(_, (_, next))| {
                    next.as_ref()
                        .is_some_and(|n| cutoff.as_ref().is_none_or(|c| n > c))
                })
                .map(|(n, _)| n)
                .collect();
        }
        let mut items: Vec<Item> = parts.into_iter().flat_map(|(items, _)| items).collect();
        items.sort_by_cached_key(|i| std::cmp::Reverse(sk_of(i, "sk")));
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| encode_cursor(&sk_of(i, "sk")))
        } else {
            None
        };
        Ok((items, next))
    }

    /// One newest-first page of items from one partition of `index` (`""`: the table), as
    /// stored, with the cursor to the next.
    async fn raw_page(
        &self,
        table: &str,
        index: &str,
        hash: (&str, String),
        filter: Option<(&str, String)>,
        page: &PageRequest,
    ) -> StoreResult<(Vec<Item>, Option<String>)> {
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let bound = match &page.cursor {
            Some(c) => decode_cursor(c)?,
            None => "~".to_string(),
        };
        let mut items = self
            .query(IndexQuery {
                table,
                index,
                hash,
                range_attr: "sk",
                bound,
                newest_first: true,
                filter,
                limit,
                lower: None,
            })
            .await?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| encode_cursor(&sk_of(i, "sk")))
        } else {
            None
        };
        Ok((items, next))
    }

    /// Postings from a keys-only page of the requests table's own indexes.
    fn postings_of(items: Vec<Item>, next_cursor: Option<String>) -> Page<Posting> {
        Page {
            items: items
                .iter()
                .map(|i| Posting {
                    id: sk_of(i, "id"),
                    sort_key: sk_of(i, "sk"),
                })
                .collect(),
            next_cursor,
        }
    }

    /// Put `items` into `table` with BatchWriteItem (unconditional, idempotent), resending what
    /// DynamoDB leaves unprocessed.
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in items.chunks(BATCH_WRITE) {
            let mut pending = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| StoreError::Backend(e.to_string()))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            for round in 0..BATCH_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| backend("batch_write_item", e))?;
                pending = out
                    .unprocessed_items()
                    .and_then(|u| u.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Throttled(
                    "DynamoDB is throttling the index writes; try again shortly".into(),
                ));
            }
        }
        Ok(())
    }

    /// The request items of `ids` (BatchGetItem, 100 keys a call), resending unprocessed keys.
    async fn batch_get_requests(&self, ids: &[String]) -> StoreResult<Vec<PolicyRequest>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| HashMap::from([("id".to_string(), s(id.as_str()))]))
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("body")
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            );
            let mut round = 0;
            while let Some(ask) = pending.take() {
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                round += 1;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.requests, ask)
                    .send()
                    .await
                    .map_err(|e| backend("batch_get_item", e))?;
                for item in got
                    .responses()
                    .and_then(|r| r.get(&self.requests))
                    .into_iter()
                    .flatten()
                {
                    let mut r: PolicyRequest = body_of(item)?;
                    r.comments.clear();
                    out.push(r);
                }
                pending = got
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.requests))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if pending.is_some() && round >= BATCH_ROUNDS {
                    return Err(StoreError::Throttled(
                        "DynamoDB is throttling request reads; try again shortly".into(),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Write requests with their postings by BatchWriteItem, unconditionally and without audit
    /// events: how [`Self::index_existing`] gives old requests their postings, and how tests and
    /// `scripts/bench-dynamo` seed a history of tens of thousands of requests in seconds.
    pub async fn load_requests(&self, requests: &[PolicyRequest]) -> StoreResult<()> {
        let mut items = Vec::with_capacity(requests.len());
        let mut postings = Vec::new();
        for r in requests {
            items.push(request_item(r)?);
            postings.extend(posting_items(r));
        }
        self.batch_put(&self.request_index, postings).await?;
        self.batch_put(&self.requests, items).await
    }

    /// Give requests and audit events stored before the current indexes their index keys
    /// (`iamdesk migrate`): a Scan for items without `shard`, then per request its postings and
    /// the sharded keys (conditional on the version read, so a concurrent write wins), per audit
    /// event its `shard` (the event itself is untouched). Idempotent; nothing to do is one Scan
    /// per table.
    pub async fn index_existing(&self) -> StoreResult<Indexed> {
        let mut done = Indexed::default();
        for old in self.unsharded(&self.requests).await? {
            let r: PolicyRequest = body_of(&old)?;
            self.batch_put(&self.request_index, posting_items(&r))
                .await?;
            let mut update = self
                .client
                .update_item()
                .table_name(&self.requests)
                .key("id", s(&r.id))
                .condition_expression("attribute_not_exists(#shard) AND #v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(num(&old, "version")));
            let mut sets = vec![];
            for (i, (attr, value)) in request_shard_keys(&r.id, r.status).into_iter().enumerate() {
                update = update
                    .expression_attribute_names(format!("#{attr}"), &attr)
                    .expression_attribute_values(format!(":k{i}"), value);
                sets.push(format!("#{attr} = :k{i}"));
            }
            match update
                .update_expression(format!("SET {}", sets.join(", ")))
                .send()
                .await
            {
                Ok(_) => done.requests += 1,
                Err(e) if is_condition_failed(&e) => {}
                Err(e) => return Err(backend("update_item", e)),
            }
        }
        for old in self.unsharded(&self.audit).await? {
            let id = sk_of(&old, "id");
            match self
                .client
                .update_item()
                .table_name(&self.audit)
                .key("id", s(&id))
                .update_expression("SET #shard = :shard")
                .condition_expression("attribute_exists(id) AND attribute_not_exists(#shard)")
                .expression_attribute_names("#shard", "shard")
                .expression_attribute_values(":shard", s(format!("audit#{}", shard_of(&id))))
                .send()
                .await
            {
                Ok(_) => done.audit += 1,
                Err(e) if is_condition_failed(&e) => {}
                Err(e) => return Err(backend("update_item", e)),
            }
        }
        Ok(done)
    }

    /// Every item of `table` without a `shard` attribute (a migration's Scan).
    async fn unsharded(&self, table: &str) -> StoreResult<Vec<Item>> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .filter_expression("attribute_not_exists(#shard)")
                .expression_attribute_names("#shard", "shard")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("scan", e))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

fn num(item: &Item, attr: &str) -> u64 {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

impl DynamoStore {
    async fn put_resource(&self, item: Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.resources)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend("put_item", e))
    }

    /// Every item of one partition whose sort key starts with `prefix`.
    async fn items_with_prefix(&self, partition: &str, prefix: &str) -> StoreResult<Vec<Item>> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.resources)
                .key_condition_expression("account_id = :a AND begins_with(sk, :p)")
                .expression_attribute_values(":a", s(partition))
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

/// One resource's write in a resource transaction: its item and its stamp, which always go
/// together.
struct ItemAction {
    key: ResourceKey,
    actions: [TransactWriteItem; 2],
    bytes: usize,
}

/// The transaction actions of `group`, and for each the position in `group` it belongs to.
fn flatten(group: &[ItemAction]) -> (Vec<TransactWriteItem>, Vec<usize>) {
    group
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.actions.iter().map(move |t| (t.clone(), i)))
        .unzip()
}

/// Remove from `group` the resources whose actions at `failed` (positions in the flattened
/// transaction) lost their condition; returns their keys.
fn drop_failed(group: &mut Vec<ItemAction>, owner: &[usize], failed: &[usize]) -> Vec<ResourceKey> {
    let mut gone: Vec<usize> = failed
        .iter()
        .filter_map(|&i| owner.get(i).copied())
        .collect();
    gone.sort_unstable();
    gone.dedup();
    gone.iter().rev().map(|&i| group.remove(i).key).collect()
}

fn item_sk(key: &ResourceKey) -> String {
    format!("{ITEM}{}", key.encode())
}

/// A resource's stamp: its key, hash and fetch time without the body, so a sync's comparison
/// reads a few bytes per resource (a Query's 1 MB page counts whole items before projection).
fn stamp_sk(key: &ResourceKey) -> String {
    format!("{STAMP}{}", key.encode())
}

fn log_sk(generation: u64) -> String {
    format!("{LOG}{generation:020}")
}

fn key_of(item: &Item) -> StoreResult<ResourceKey> {
    let sk = sk_of(item, "sk");
    sk.strip_prefix(STAMP)
        .and_then(ResourceKey::decode)
        .ok_or_else(|| StoreError::Backend(format!("corrupt resource key {sk}")))
}

fn time_of(item: &Item, attr: &str) -> StoreResult<DateTime<Utc>> {
    let v = sk_of(item, attr);
    DateTime::parse_from_rfc3339(&v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("corrupt {attr} {v}: {e}")))
}

fn account_of(item: &Item) -> StoreResult<ResourceAccount> {
    let synced_at = match item.get("synced_at") {
        Some(AttributeValue::S(_)) => Some(time_of(item, "synced_at")?),
        _ => None,
    };
    Ok(ResourceAccount {
        account_id: sk_of(item, "sk").trim_start_matches("meta#").to_string(),
        account_name: sk_of(item, "account_name"),
        generation: num(item, "generation"),
        synced_at,
        incomplete: matches!(item.get("incomplete"), Some(AttributeValue::Bool(true))),
    })
}

/// What the cancellation reasons of a failed resource transaction say.
enum Cancelled {
    /// These actions' conditions failed (positions in the transaction).
    Conditions(Vec<usize>),
    /// Another transaction was writing one of the same items: try again.
    Contended,
}

fn cancelled<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Cancelled> {
    let codes = cancellation_codes(e)?;
    let failed: Vec<usize> = codes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_str() == "ConditionalCheckFailed")
        .map(|(i, _)| i)
        .collect();
    if !failed.is_empty() {
        Some(Cancelled::Conditions(failed))
    } else if codes.iter().any(|c| c == "TransactionConflict") {
        Some(Cancelled::Contended)
    } else {
        None
    }
}

impl DynamoStore {
    fn put_resource_item(&self, item: &ResourceItem) -> StoreResult<ItemAction> {
        let key = item.key();
        let body = encode(item)?;
        let bytes = body.len() + 200;
        let put = Put::builder()
            .table_name(&self.resources)
            .set_item(Some(HashMap::from([
                ("account_id".into(), s(&item.account_id)),
                ("sk".into(), s(item_sk(&key))),
                ("hash".into(), s(&item.hash)),
                ("fetched_at".into(), s(ts(item.fetched_at))),
                ("body".into(), s(body)),
            ])))
            // Never replace what was read from AWS after this.
            .condition_expression("attribute_not_exists(sk) OR fetched_at <= :t")
            .expression_attribute_values(":t", s(ts(item.fetched_at)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let stamp = Put::builder()
            .table_name(&self.resources)
            .set_item(Some(HashMap::from([
                ("account_id".into(), s(&item.account_id)),
                ("sk".into(), s(stamp_sk(&key))),
                ("hash".into(), s(&item.hash)),
                ("fetched_at".into(), s(ts(item.fetched_at))),
            ])))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(ItemAction {
            key,
            actions: [
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder().put(stamp).build(),
            ],
            bytes,
        })
    }

    fn delete_resource_item(
        &self,
        account_id: &str,
        d: &ResourceDelete,
    ) -> StoreResult<ItemAction> {
        let delete = Delete::builder()
            .table_name(&self.resources)
            .key("account_id", s(account_id))
            .key("sk", s(item_sk(&d.key)))
            .condition_expression("attribute_not_exists(sk) OR fetched_at <= :t")
            .expression_attribute_values(":t", s(ts(d.fetched_at)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let stamp = Delete::builder()
            .table_name(&self.resources)
            .key("account_id", s(account_id))
            .key("sk", s(stamp_sk(&d.key)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(ItemAction {
            key: d.key.clone(),
            actions: [
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().delete(stamp).build(),
            ],
            bytes: 500,
        })
    }

    /// The account entry's update: generation `expected` → `next` (the same to only set
    /// `synced_at`), conditional on `expected`.
    fn account_update(
        &self,
        write: &ResourceWrite,
        expected: u64,
        next: u64,
        clear_incomplete: bool,
    ) -> StoreResult<Update> {
        let mut set = vec!["generation = :next", "account_name = :name"];
        let mut update = Update::builder()
            .table_name(&self.resources)
            .key("account_id", s(META))
            .key("sk", s(format!("meta#{}", write.account_id)))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":name", s(&write.account_name))
            .expression_attribute_values(":expected", n(expected));
        if let Some(at) = write.synced_at {
            set.push("synced_at = :synced");
            update = update.expression_attribute_values(":synced", s(ts(at)));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if clear_incomplete {
            expression.push_str(" REMOVE incomplete");
        }
        update
            .update_expression(expression)
            .condition_expression(if expected == 0 {
                "attribute_not_exists(generation) OR generation = :expected"
            } else {
                "generation = :expected"
            })
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// The actions that move an account from `expected` to `expected + 1`: its log entry, the
    /// account entry, and the removal of the entry that falls out of the kept log.
    fn commit_actions(
        &self,
        write: &ResourceWrite,
        expected: u64,
        applied: &[ResourceKey],
        full: bool,
        clear_incomplete: bool,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let next = expected + 1;
        let mut entry = write.change(next, applied);
        entry.full |= full;
        if entry.full {
            entry.keys.clear();
        }
        let log = Put::builder()
            .table_name(&self.resources)
            .set_item(Some(HashMap::from([
                ("account_id".into(), s(&write.account_id)),
                ("sk".into(), s(log_sk(next))),
                ("body".into(), s(encode(&entry)?)),
            ])))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut out = vec![
            TransactWriteItem::builder()
                .update(self.account_update(write, expected, next, clear_incomplete)?)
                .build(),
            TransactWriteItem::builder().put(log).build(),
        ];
        if next > LOG_KEEP {
            let trim = Delete::builder()
                .table_name(&self.resources)
                .key("account_id", s(&write.account_id))
                .key("sk", s(log_sk(next - LOG_KEEP)))
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            out.push(TransactWriteItem::builder().delete(trim).build());
        }
        Ok(out)
    }

    /// Everything in one transaction: the items, the log entry and the generation.
    async fn write_small(
        &self,
        write: &ResourceWrite,
        mut actions: Vec<ItemAction>,
    ) -> StoreResult<WriteOutcome> {
        let expected = write.expected_generation;
        if expected == 0 {
            self.drop_legacy_snapshot(&write.account_id).await;
        }
        let mut skipped = vec![];
        let mut contended = 0;
        loop {
            let applied: Vec<ResourceKey> = actions.iter().map(|a| a.key.clone()).collect();
            let (mut items, owner) = flatten(&actions);
            if applied.is_empty() && !write.full {
                // Nothing to change: at most the sync time, on the same condition.
                if write.synced_at.is_none() {
                    return Ok(WriteOutcome {
                        generation: expected,
                        applied,
                        skipped,
                    });
                }
                items.push(
                    TransactWriteItem::builder()
                        .update(self.account_update(write, expected, expected, false)?)
                        .build(),
                );
            } else {
                items.extend(self.commit_actions(write, expected, &applied, false, false)?);
            }
            let item_count = owner.len();
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => {
                    let generation = if applied.is_empty() && !write.full {
                        expected
                    } else {
                        expected + 1
                    };
                    return Ok(WriteOutcome {
                        generation,
                        applied,
                        skipped,
                    });
                }
                Err(e) => match cancelled(&e) {
                    Some(Cancelled::Conditions(failed)) => {
                        if failed.iter().any(|&i| i >= item_count) {
                            return Err(StoreError::Conflict(format!(
                                "the resources of account {} are no longer at generation \
                                 {expected}",
                                write.account_id
                            )));
                        }
                        // Items read from AWS later than ours stay; the rest go again.
                        skipped.extend(drop_failed(&mut actions, &owner, &failed));
                    }
                    Some(Cancelled::Contended) if contended + 1 < TX_ATTEMPTS => {
                        contended += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20 << contended)).await;
                    }
                    _ => {
                        return Err(match cancellation_codes(&e) {
                            Some(codes) => cancelled_error("the resources' write", &codes),
                            None => backend("transact_write_items", e),
                        });
                    }
                },
            }
        }
    }

    /// More than one transaction holds: mark the account incomplete (so a crash before the end
    /// is repaired by the next write), write the items in groups, then commit a `full` log
    /// entry. Once items are written the commit is retried on newer generations rather than
    /// given up: readers then reload the account, which is always right.
    async fn write_large(
        &self,
        write: &ResourceWrite,
        actions: Vec<ItemAction>,
    ) -> StoreResult<WriteOutcome> {
        let expected = write.expected_generation;
        if expected == 0 {
            self.drop_legacy_snapshot(&write.account_id).await;
        }
        let mark = self
            .client
            .update_item()
            .table_name(&self.resources)
            .key("account_id", s(META))
            .key("sk", s(format!("meta#{}", write.account_id)))
            .update_expression("SET incomplete = :t, generation = :g, account_name = :name")
            .condition_expression(if expected == 0 {
                "attribute_not_exists(generation) OR generation = :g"
            } else {
                "generation = :g"
            })
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":g", n(expected))
            .expression_attribute_values(":name", s(&write.account_name))
            .send()
            .await;
        if let Err(e) = mark {
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception())
            {
                return Err(StoreError::Conflict(format!(
                    "the resources of account {} are no longer at generation {expected}",
                    write.account_id
                )));
            }
            return Err(backend("update_item", e));
        }
        let mut applied = vec![];
        let mut skipped = vec![];
        let mut groups: Vec<Vec<ItemAction>> = vec![];
        let mut group: Vec<ItemAction> = vec![];
        let mut group_bytes = 0;
        for next in actions {
            if (group.len() + 1) * 2 > TX_ACTIONS || group_bytes + next.bytes > TX_BYTES {
                groups.push(std::mem::take(&mut group));
                group_bytes = 0;
            }
            group_bytes += next.bytes;
            group.push(next);
        }
        groups.push(group);
        // The groups are independent conditional writes: a few at a time.
        let mut written = futures::stream::iter(groups.into_iter().map(|g| self.write_group(g)))
            .buffer_unordered(GROUPS_AT_ONCE);
        while let Some(result) = written.next().await {
            let (done, lost) = result?;
            applied.extend(done);
            skipped.extend(lost);
        }
        applied.sort();
        skipped.sort();
        let mut generation = expected;
        let mut attempts = 0;
        loop {
            let items = self.commit_actions(write, generation, &applied, true, true)?;
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => {
                    return Ok(WriteOutcome {
                        generation: generation + 1,
                        applied,
                        skipped,
                    });
                }
                Err(e) if cancelled(&e).is_some() && attempts < 20 => {
                    attempts += 1;
                    // Somebody else committed meanwhile: log ours after theirs.
                    generation = self
                        .resource_account(&write.account_id)
                        .await?
                        .map_or(0, |a| a.generation);
                }
                Err(e) => return Err(backend("transact_write_items", e)),
            }
        }
    }

    /// One transaction of item writes; items whose condition fails (read later elsewhere) are
    /// dropped and the rest written again. Returns (written, skipped).
    async fn write_group(
        &self,
        mut group: Vec<ItemAction>,
    ) -> StoreResult<(Vec<ResourceKey>, Vec<ResourceKey>)> {
        let mut skipped = vec![];
        let mut contended = 0;
        while !group.is_empty() {
            let (items, owner) = flatten(&group);
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => break,
                Err(e) => match cancelled(&e) {
                    Some(Cancelled::Conditions(failed)) => {
                        skipped.extend(drop_failed(&mut group, &owner, &failed));
                    }
                    Some(Cancelled::Contended) if contended + 1 < TX_ATTEMPTS => {
                        contended += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20 << contended)).await;
                    }
                    _ => return Err(backend("transact_write_items", e)),
                },
            }
        }
        Ok((group.into_iter().map(|a| a.key).collect(), skipped))
    }

    /// Before resources were stored per item, an account was JSON chunks (`snapshot#...`)
    /// behind a `_meta`/`account#<id>` pointer. The first per-item write removes them; a failure
    /// only leaves garbage nobody reads.
    async fn drop_legacy_snapshot(&self, account_id: &str) {
        let Ok(chunks) = self.items_with_prefix(account_id, "snapshot#").await else {
            return;
        };
        let keys = chunks
            .iter()
            .map(|c| (account_id.to_string(), sk_of(c, "sk")))
            .chain([(META.to_string(), format!("account#{account_id}"))]);
        for (partition, sk) in keys {
            if let Err(e) = self
                .client
                .delete_item()
                .table_name(&self.resources)
                .key("account_id", s(partition))
                .key("sk", s(sk))
                .send()
                .await
            {
                tracing::warn!(error = %DisplayErrorContext(&e), "cannot delete an old snapshot item");
            }
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn ping(&self) -> StoreResult<()> {
        self.client
            .describe_table()
            .table_name(&self.requests)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend("describe_table", e))
    }

    fn backend_name(&self) -> &'static str {
        "dynamodb"
    }

    async fn create_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        if request.version != 1 {
            return Err(StoreError::Invalid(
                "a new request starts at version 1".into(),
            ));
        }
        let first = put_new(&self.requests, request_item(request)?)?;
        let mut items = self.write_items(first, event, outbox)?;
        if !request.comments.is_empty() {
            for c in &request.comments {
                let put = Put::builder()
                    .table_name(&self.comments)
                    .set_item(Some(comment_item(&request.id, c)?))
                    .condition_expression("attribute_not_exists(sk)")
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            items.push(self.comment_counter(&request.id, request.comments.len() as u64, None)?);
            if items.len() > 100 {
                return Err(StoreError::Invalid(format!(
                    "a new request can bring at most {} comments",
                    100 - (items.len() - request.comments.len() - 1)
                )));
            }
        }
        // Its postings ride in the same transaction (accounts and principals first); what does
        // not fit its 100 actions is written just before it. A posting whose request never
        // commits is harmless: readers check every hit on the request itself.
        let mut postings = posting_items(request);
        let room = TX_ACTIONS.saturating_sub(items.len()).min(postings.len());
        let overflow = postings.split_off(room);
        for p in postings {
            let put = Put::builder()
                .table_name(&self.request_index)
                .set_item(Some(p))
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.batch_put(&self.request_index, overflow).await?;
        match self.transact(items).await {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "request {} (or its audit event) already exists",
                request.id
            ))),
            other => other,
        }
    }

    async fn update_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let expected = request.version.saturating_sub(1);
        let put = Put::builder()
            .table_name(&self.requests)
            .set_item(Some(request_item(request)?))
            .condition_expression("attribute_exists(id) AND #v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", n(expected))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let items =
            self.write_items(TransactWriteItem::builder().put(put).build(), event, outbox)?;
        // Only an import's update can change what a request is found by
        // (src/store/request_index.rs): its postings are written again first.
        if request.imported.is_some() {
            self.batch_put(&self.request_index, posting_items(request))
                .await?;
        }
        match self.transact(items).await {
            Err(StoreError::Conflict(reason)) => match self.get_request(&request.id).await? {
                None => Err(StoreError::NotFound(format!("request {}", request.id))),
                Some(current) if current.version != expected => Err(StoreError::Conflict(format!(
                    "request {} is at version {}, not {expected}",
                    request.id, current.version
                ))),
                Some(_) => Err(StoreError::Conflict(reason)),
            },
            other => other,
        }
    }

    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>> {
        let Some(mut request): Option<PolicyRequest> = self.get_by_id(&self.requests, id).await?
        else {
            return Ok(None);
        };
        for comment in self.comments_of(id).await? {
            // Requests written before comments had items of their own hold them in the body.
            if !request.comments.iter().any(|k| k.id == comment.id) {
                request.comments.push(comment);
            }
        }
        Ok(Some(request))
    }

    async fn add_comment(
        &self,
        request_id: &str,
        comment: &Comment,
        max: usize,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let exists = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.requests)
            .key("id", s(request_id))
            .condition_expression("attribute_exists(id)")
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut items = self.write_items(
            TransactWriteItem::builder().condition_check(exists).build(),
            event,
            outbox,
        )?;
        items.push(self.comment_counter(request_id, 1, Some(max as u64))?);
        let put = Put::builder()
            .table_name(&self.comments)
            .set_item(Some(comment_item(request_id, comment)?))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        items.push(TransactWriteItem::builder().put(put).build());
        let counter = items.len() - 2;
        match self.transact_codes(items).await {
            Ok(()) => Ok(()),
            Err(Ok(codes)) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Err(StoreError::NotFound(format!("request {request_id}")))
            }
            Err(Ok(codes))
                if codes
                    .get(counter)
                    .is_some_and(|c| c == "ConditionalCheckFailed") =>
            {
                Err(StoreError::Conflict(format!(
                    "request {request_id} already has {max} comments"
                )))
            }
            Err(Ok(codes)) => Err(cancelled_error("the comment", &codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>> {
        request_index::from_postings(self, filter, page, &|_| crate::requests::risk::Level::Low)
            .await
    }

    async fn request_postings(
        &self,
        key: &RequestKey,
        page: &PageRequest,
    ) -> StoreResult<Page<Posting>> {
        let (items, next) = match key {
            RequestKey::All => {
                self.sharded_page(&self.requests, "by_shard", "shard", "request", page)
                    .await?
            }
            RequestKey::Status(RequestStatus::Pending) => {
                self.sharded_page(&self.requests, "pending", "pending", "pending", page)
                    .await?
            }
            RequestKey::Status(done) => {
                self.sharded_page(&self.requests, "by_done", "done", done.as_str(), page)
                    .await?
            }
            RequestKey::Requester(who) => {
                self.raw_page(
                    &self.requests,
                    "by_user",
                    ("requester", who.clone()),
                    None,
                    page,
                )
                .await?
            }
            other => {
                let pk = other.index_key().unwrap_or_default();
                self.raw_page(&self.request_index, "", ("pk", pk), None, page)
                    .await?
            }
        };
        Ok(Self::postings_of(items, next))
    }

    async fn get_requests(&self, ids: &[String]) -> StoreResult<Vec<PolicyRequest>> {
        self.batch_get_requests(ids).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.audit)
            .set_item(Some(audit_item(event)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    StoreError::Conflict(format!("audit event {} already exists", event.id))
                } else {
                    backend("put_item", e)
                }
            })
    }

    async fn list_audit(
        &self,
        request_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        match request_id {
            Some(id) => {
                self.page(
                    &self.audit,
                    "by_request",
                    ("request_id", id.to_string()),
                    None,
                    page,
                )
                .await
            }
            None => {
                let (items, next_cursor) = self
                    .sharded_page(&self.audit, "by_time_shard", "shard", "audit", page)
                    .await?;
                Ok(Page {
                    items: items.iter().map(body_of).collect::<StoreResult<_>>()?,
                    next_cursor,
                })
            }
        }
    }

    async fn enqueue_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.outbox)
            .set_item(Some(outbox_item(message)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    StoreError::Conflict(format!("outbox message {} already exists", message.id))
                } else {
                    backend("put_item", e)
                }
            })
    }

    async fn get_outbox(&self, id: &str) -> StoreResult<Option<OutboxMessage>> {
        self.get_by_id(&self.outbox, id).await
    }

    async fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>> {
        match status {
            Some(st) => {
                self.page(
                    &self.outbox,
                    "by_status",
                    ("status", st.as_str().to_string()),
                    None,
                    page,
                )
                .await
            }
            None => {
                // Three statuses: merge their newest-first pages.
                let mut all: Vec<OutboxMessage> = vec![];
                let mut more = false;
                for st in [
                    OutboxStatus::Pending,
                    OutboxStatus::Sent,
                    OutboxStatus::Dead,
                ] {
                    let p: Page<OutboxMessage> = self
                        .page(
                            &self.outbox,
                            "by_status",
                            ("status", st.as_str().to_string()),
                            None,
                            page,
                        )
                        .await?;
                    more |= p.next_cursor.is_some();
                    all.extend(p.items);
                }
                all.sort_by_key(|m| std::cmp::Reverse(m.sort_key()));
                let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
                more |= all.len() > limit;
                all.truncate(limit);
                let next_cursor = if more {
                    all.last().map(|m| encode_cursor(&m.sort_key()))
                } else {
                    None
                };
                Ok(Page {
                    items: all,
                    next_cursor,
                })
            }
        }
    }

    async fn due_outbox(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let limit = limit.clamp(1, PageRequest::MAX_LIMIT);
        let mut items = self
            .query(IndexQuery {
                table: &self.outbox,
                index: "by_due",
                hash: ("status", OutboxStatus::Pending.as_str().to_string()),
                range_attr: "due",
                // Everything of this channel due at or before `now`, whatever its id.
                bound: format!("{channel}#{}#~", ts(now)),
                newest_first: false,
                filter: None,
                limit,
                lower: Some(format!("{channel}#")),
            })
            .await?;
        items.truncate(limit);
        items.iter().map(body_of).collect()
    }

    /// The backlog gauge at every scrape (`src/telemetry/metrics.rs`): a `COUNT` query (no item
    /// is sent back) up to [`BACKLOG_COUNT_CAP`] messages, and the oldest pending message alone,
    /// so a scrape costs the same bytes whatever the backlog (the default read every pending
    /// message's body: 45 KB at 30 undeliverable emails, growing with them).
    async fn outbox_backlog(&self) -> StoreResult<OutboxBacklog> {
        let pending = || {
            self.client
                .query()
                .table_name(&self.outbox)
                .index_name("by_status")
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":s", s(OutboxStatus::Pending.as_str()))
        };
        let mut backlog = OutboxBacklog::default();
        let mut start: Option<Item> = None;
        loop {
            let page = pending()
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            backlog.pending += page.count().max(0) as u64;
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() && backlog.pending < BACKLOG_COUNT_CAP => {
                    start = Some(k.clone())
                }
                _ => break,
            }
        }
        if backlog.pending > 0 {
            let oldest = pending()
                .scan_index_forward(true)
                .limit(1)
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            if let Some(item) = oldest.items().first() {
                let m: OutboxMessage = body_of(item)?;
                backlog.oldest = Some(m.created_at);
            }
        }
        Ok(backlog)
    }

    async fn update_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        let expected = message.version.saturating_sub(1);
        self.client
            .put_item()
            .table_name(&self.outbox)
            .set_item(Some(outbox_item(message)?))
            .condition_expression("attribute_exists(id) AND #v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", n(expected))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    StoreError::Conflict(format!(
                        "outbox message {} changed since it was read",
                        message.id
                    ))
                } else {
                    backend("put_item", e)
                }
            })
    }

    async fn resource_accounts(&self) -> StoreResult<Vec<ResourceAccount>> {
        self.items_with_prefix(META, "meta#")
            .await?
            .iter()
            .map(account_of)
            .collect()
    }

    async fn resource_account(&self, account_id: &str) -> StoreResult<Option<ResourceAccount>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.resources)
            .key("account_id", s(META))
            .key("sk", s(format!("meta#{account_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get_item", e))?;
        out.item().map(account_of).transpose()
    }

    async fn resource_stamps(&self, account_id: &str) -> StoreResult<Vec<ResourceStamp>> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.resources)
                .key_condition_expression("account_id = :a AND begins_with(sk, :p)")
                .expression_attribute_values(":a", s(account_id))
                .expression_attribute_values(":p", s(STAMP))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            for item in page.items() {
                out.push(ResourceStamp {
                    key: key_of(item)?,
                    hash: sk_of(item, "hash"),
                    fetched_at: time_of(item, "fetched_at")?,
                });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn list_resources(&self, account_id: &str) -> StoreResult<Vec<ResourceItem>> {
        self.items_with_prefix(account_id, ITEM)
            .await?
            .iter()
            .map(body_of)
            .collect()
    }

    async fn get_resources(
        &self,
        account_id: &str,
        keys: &[ResourceKey],
    ) -> StoreResult<Vec<ResourceItem>> {
        let mut unique: Vec<String> = keys.iter().map(item_sk).collect();
        unique.sort();
        unique.dedup();
        let mut out = vec![];
        for batch in unique.chunks(100) {
            let ask = KeysAndAttributes::builder()
                .set_keys(Some(
                    batch
                        .iter()
                        .map(|sk| {
                            HashMap::from([
                                ("account_id".to_string(), s(account_id)),
                                ("sk".to_string(), s(sk.as_str())),
                            ])
                        })
                        .collect(),
                ))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let mut pending = Some(HashMap::from([(self.resources.clone(), ask)]));
            while let Some(request) = pending.take().filter(|r| !r.is_empty()) {
                let page = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| backend("batch_get_item", e))?;
                for item in page
                    .responses()
                    .and_then(|r| r.get(&self.resources))
                    .into_iter()
                    .flatten()
                {
                    out.push(body_of(item)?);
                }
                pending = page.unprocessed_keys().cloned();
            }
        }
        Ok(out)
    }

    async fn resource_changes(
        &self,
        account_id: &str,
        after: u64,
    ) -> StoreResult<Vec<ResourceChange>> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.resources)
                .key_condition_expression("account_id = :a AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":a", s(account_id))
                .expression_attribute_values(":lo", s(log_sk(after.saturating_add(1))))
                .expression_attribute_values(":hi", s(log_sk(u64::MAX)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            for item in page.items() {
                out.push(body_of(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn write_resources(&self, write: &ResourceWrite) -> StoreResult<WriteOutcome> {
        let mut actions = vec![];
        for item in &write.puts {
            actions.push(self.put_resource_item(item)?);
        }
        for d in &write.deletes {
            actions.push(self.delete_resource_item(&write.account_id, d)?);
        }
        let bytes: usize = actions.iter().map(|a| a.bytes).sum();
        if actions.len() * 2 + 3 <= TX_ACTIONS && bytes <= TX_BYTES {
            self.write_small(write, actions).await
        } else {
            self.write_large(write, actions).await
        }
    }

    async fn put_account_status(&self, status: &AccountStatus) -> StoreResult<()> {
        self.put_resource(HashMap::from([
            ("account_id".into(), s(META)),
            ("sk".into(), s(format!("status#{}", status.account_id))),
            ("body".into(), s(encode(status)?)),
        ]))
        .await
    }

    async fn create_api_token(&self, token: &ApiToken, event: &AuditEvent) -> StoreResult<()> {
        let items = vec![
            put_new(&self.tokens, token_item(token)?)?,
            put_new(&self.audit, audit_item(event)?)?,
        ];
        self.transact(items).await
    }

    async fn get_api_token(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        self.get_by_id(&self.tokens, hash).await
    }

    async fn list_api_tokens(&self, user: &str) -> StoreResult<Vec<ApiToken>> {
        let page: Page<ApiToken> = self
            .page(
                &self.tokens,
                "by_user",
                ("user", user.to_string()),
                None,
                &PageRequest::first(PageRequest::MAX_LIMIT),
            )
            .await?;
        Ok(page.items)
    }

    async fn update_api_token(&self, token: &ApiToken, event: &AuditEvent) -> StoreResult<()> {
        let put = Put::builder()
            .table_name(&self.tokens)
            .set_item(Some(token_item(token)?))
            .condition_expression("attribute_exists(id)")
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            put_new(&self.audit, audit_item(event)?)?,
        ];
        self.transact(items).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::NotFound(format!("API token {}", token.id)),
            other => other,
        })
    }

    async fn record_sign_in(&self, sign_in: &SignIn) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.sessions)
            .item("id", s(format!("user#{}", sign_in.user)))
            .item("body", s(encode(sign_in)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend("put_item", e))
    }

    async fn get_sign_in(&self, user: &str) -> StoreResult<Option<SignIn>> {
        self.get_by_id(&self.sessions, &format!("user#{user}"))
            .await
    }

    async fn revoke_session(&self, sid: &str, until: DateTime<Utc>) -> StoreResult<()> {
        // `until` only grows: a second sign-out of the same session never shortens it.
        self.client
            .update_item()
            .table_name(&self.sessions)
            .key("id", s(format!("revoked#{sid}")))
            .update_expression("SET #u = :u, expires_at = :e")
            .condition_expression("attribute_not_exists(#u) OR #u < :u")
            .expression_attribute_names("#u", "until")
            .expression_attribute_values(":u", s(ts(until)))
            .expression_attribute_values(":e", n(until.timestamp().max(0) as u64))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.as_service_error() {
                Some(se) if se.is_conditional_check_failed_exception() => Ok(()),
                _ => Err(backend("update_item", e)),
            })
    }

    async fn is_session_revoked(&self, sid: &str) -> StoreResult<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.sessions)
            .key("id", s(format!("revoked#{sid}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get_item", e))?;
        Ok(out
            .item()
            .is_some_and(|item| sk_of(item, "until") >= ts(Utc::now())))
    }

    async fn list_account_status(&self) -> StoreResult<Vec<AccountStatus>> {
        self.items_with_prefix(META, "status#")
            .await?
            .iter()
            .map(body_of)
            .collect()
    }

    async fn get_finding(&self, key: &str) -> StoreResult<Option<Finding>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.events)
            .key("pk", s(FINDINGS))
            .key("sk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get_item", e))?;
        out.item().map(body_of).transpose()
    }

    async fn put_finding(&self, finding: &Finding, outbox: &[OutboxMessage]) -> StoreResult<()> {
        self.events_put_finding(finding, outbox).await
    }

    async fn list_open_findings(&self, limit: usize) -> StoreResult<Vec<Finding>> {
        let mut open: Vec<Finding> = self
            .event_items(FINDINGS)
            .await?
            .iter()
            .filter(|i| text(i, "open") == "1")
            .map(body_of)
            .collect::<StoreResult<_>>()?;
        open.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| a.key.cmp(&b.key)));
        open.truncate(limit.clamp(1, PageRequest::MAX_LIMIT));
        Ok(open)
    }

    async fn record_denials(&self, denials: &[Denial]) -> StoreResult<()> {
        for d in denials {
            let updated = self
                .client
                .update_item()
                .table_name(&self.events)
                .key("pk", s(denial_pk(&d.role)))
                .key("sk", s(format!("{}#{}", d.action, d.resource)))
                .update_expression(
                    "ADD #c :n SET #role = :role, role_arn = :arn, #a = :action, #r = :resource, \
                     error_code = :code, first_seen = if_not_exists(first_seen, :first), \
                     last_seen = if_not_exists(last_seen, :last)",
                )
                .expression_attribute_names("#c", "count")
                .expression_attribute_names("#role", "role")
                .expression_attribute_names("#a", "action")
                .expression_attribute_names("#r", "resource")
                .expression_attribute_values(":n", n(d.count))
                .expression_attribute_values(":role", s(&d.role))
                .expression_attribute_values(":arn", s(&d.role_arn))
                .expression_attribute_values(":action", s(&d.action))
                .expression_attribute_values(":resource", s(&d.resource))
                .expression_attribute_values(":code", s(&d.error_code))
                .expression_attribute_values(":first", s(ts(d.first_seen)))
                .expression_attribute_values(":last", s(ts(d.last_seen)))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .map_err(|e| backend("update_item", e))?;
            // Fixed-width timestamps compare as strings; widen only when this batch does.
            if let Some(now) = updated.attributes() {
                if text(now, "first_seen") > ts(d.first_seen) {
                    self.widen_denial(d, "first_seen", ">", d.first_seen).await;
                }
                if text(now, "last_seen") < ts(d.last_seen) {
                    self.widen_denial(d, "last_seen", "<", d.last_seen).await;
                }
            }
        }
        Ok(())
    }

    async fn list_denials(&self, role: &str, since: DateTime<Utc>) -> StoreResult<Vec<Denial>> {
        let mut fresh = vec![];
        for item in self.event_items(&denial_pk(role)).await? {
            let d = denial_of(&item)?;
            if d.last_seen >= since {
                fresh.push(d);
            } else if let Err(e) = self
                .client
                .delete_item()
                .table_name(&self.events)
                .key("pk", s(denial_pk(role)))
                .key("sk", s(text(&item, "sk")))
                .send()
                .await
            {
                // Garbage left behind is filtered out on the next read all the same.
                tracing::debug!(error = %crate::aws::error_text(&e), "cannot delete an expired denial");
            }
        }
        fresh.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| (&a.action, &a.resource).cmp(&(&b.action, &b.resource)))
        });
        Ok(fresh)
    }

    async fn add_outside_change(&self, change: &OutsideChange) -> StoreResult<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.events)
            .item("pk", s(change_pk(&change.resource)))
            .item("sk", s(change.sort_key()))
            .item("body", s(encode(change)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("put_item", e)),
        }
    }

    async fn list_outside_changes(
        &self,
        resource: &str,
        limit: usize,
    ) -> StoreResult<Vec<OutsideChange>> {
        let out = self
            .client
            .query()
            .table_name(&self.events)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(change_pk(resource)))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.clamp(1, PageRequest::MAX_LIMIT)).unwrap_or(500))
            .send()
            .await
            .map_err(|e| backend("query", e))?;
        out.items().iter().map(body_of).collect()
    }
}

// --- Events from AWS (src/events/): one table, `pk` + `sk` (migrations/events.json). ---

const FINDINGS: &str = "finding";

fn denial_pk(role: &str) -> String {
    format!("deny#{role}")
}

fn change_pk(resource: &str) -> String {
    format!("change#{resource}")
}

fn text(item: &Item, attr: &str) -> String {
    sk_of(item, attr)
}

fn denial_of(item: &Item) -> StoreResult<Denial> {
    Ok(Denial {
        role: text(item, "role"),
        role_arn: text(item, "role_arn"),
        action: text(item, "action"),
        resource: text(item, "resource"),
        error_code: text(item, "error_code"),
        count: num(item, "count"),
        first_seen: time_of(item, "first_seen")?,
        last_seen: time_of(item, "last_seen")?,
    })
}

fn is_condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl DynamoStore {
    /// Every item of one `events` partition.
    async fn event_items(&self, pk: &str) -> StoreResult<Vec<Item>> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.events)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("query", e))?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Move one side of a denial group's time window, if `at` widens it.
    async fn widen_denial(&self, d: &Denial, attr: &str, op: &str, at: DateTime<Utc>) {
        let result = self
            .client
            .update_item()
            .table_name(&self.events)
            .key("pk", s(denial_pk(&d.role)))
            .key("sk", s(format!("{}#{}", d.action, d.resource)))
            .update_expression("SET #t = :t")
            .condition_expression(format!("#t {op} :t"))
            .expression_attribute_names("#t", attr)
            .expression_attribute_values(":t", s(ts(at)))
            .send()
            .await;
        if let Err(e) = result
            && !is_condition_failed(&e)
        {
            tracing::warn!(error = %crate::aws::error_text(&e), "cannot widen a denial's time window");
        }
    }
}

impl DynamoStore {
    async fn events_put_finding(&self, f: &Finding, outbox: &[OutboxMessage]) -> StoreResult<()> {
        let item: Item = HashMap::from([
            ("pk".into(), s(FINDINGS)),
            ("sk".into(), s(&f.key)),
            ("open".into(), s(if f.is_open() { "1" } else { "0" })),
            ("version".into(), n(f.version)),
            ("body".into(), s(encode(f)?)),
        ]);
        let mut put = Put::builder().table_name(&self.events).set_item(Some(item));
        put = if f.version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", n(f.version - 1))
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        for m in outbox {
            items.push(put_new(&self.outbox, outbox_item(m)?)?);
        }
        self.transact(items).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("finding {} changed since it was read", f.key))
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_refusals_are_classified() {
        assert_eq!(classify("ThrottlingError", ""), Some(Refusal::Throttled));
        assert_eq!(
            classify("ProvisionedThroughputExceededException", ""),
            Some(Refusal::Throttled)
        );
        assert_eq!(
            classify("RequestLimitExceeded", ""),
            Some(Refusal::Throttled)
        );
        assert_eq!(
            classify(
                "ValidationException",
                "Item size has exceeded the maximum allowed size"
            ),
            Some(Refusal::TooLarge)
        );
        assert_eq!(classify("ValidationException", "bad expression"), None);
        assert_eq!(
            classify("ConditionalCheckFailed", ""),
            Some(Refusal::Conflict)
        );

        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A throttled item in a transaction is not "somebody else acted first".
        assert!(matches!(
            cancelled_error("w", &codes(&["None", "ThrottlingError"])),
            StoreError::Throttled(_)
        ));
        assert!(matches!(
            cancelled_error("w", &codes(&["ConditionalCheckFailed", ITEM_TOO_LARGE])),
            StoreError::TooLarge(_)
        ));
        assert!(matches!(
            cancelled_error("w", &codes(&["None", "ConditionalCheckFailed"])),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            cancelled_error("w", &codes(&["None", "TransactionConflict"])),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            cancelled_error("w", &codes(&["None", "InternalServerError"])),
            StoreError::Backend(_)
        ));
    }
}
