//! DynamoDB backend. Tables and indexes come from `migrations/` (`iamdesk migrate`).
//!
//! Items keep the key attributes each index needs plus the whole entity as a JSON string in
//! `body`: lossless, and the schema stays small. Every listing is a Query on an index (never a
//! Scan); every request write is one `TransactWriteItems` with the request (conditional on its
//! version), its audit event and its outbox messages, so they commit or fail together.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::*;
use crate::migrate::table_name;
use crate::resources::model::AccountSnapshot;
use crate::resources::sync::AccountStatus;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    requests: String,
    audit: String,
    outbox: String,
    resources: String,
    tokens: String,
    comments: String,
    sessions: String,
}

/// Snapshot bytes per item: well under DynamoDB's 400 KB item limit.
const CHUNK_BYTES: usize = 300_000;
const META: &str = "_meta";

impl DynamoStore {
    pub fn new(client: Client, table_prefix: &str) -> Self {
        DynamoStore {
            client,
            requests: table_name(table_prefix, "requests"),
            audit: table_name(table_prefix, "audit"),
            outbox: table_name(table_prefix, "outbox"),
            resources: table_name(table_prefix, "resources"),
            tokens: table_name(table_prefix, "tokens"),
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
    StoreError::Backend(format!("dynamodb {what}: {}", crate::aws::error_text(&e)))
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
    Ok(HashMap::from([
        ("id".into(), s(&r.id)),
        ("status".into(), s(r.status.as_str())),
        ("requester".into(), s(&r.requester)),
        ("sk".into(), s(r.sort_key())),
        ("entity".into(), s("request")),
        ("version".into(), n(r.version)),
        ("body".into(), s(encode(r)?)),
    ]))
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
        ("entity".into(), s("audit")),
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
    ]))
}

/// `channel#time#id`: pending messages are found per channel, oldest first, so a channel this
/// replica cannot deliver never blocks another.
fn due_key(m: &OutboxMessage) -> String {
    format!("{}#{}#{}", m.channel, ts(m.next_attempt_at), m.id)
}

fn outbox_item(m: &OutboxMessage) -> StoreResult<Item> {
    Ok(HashMap::from([
        ("id".into(), s(&m.id)),
        ("status".into(), s(m.status.as_str())),
        ("sk".into(), s(m.sort_key())),
        ("due".into(), s(due_key(m))),
        ("version".into(), n(m.version)),
        ("body".into(), s(encode(m)?)),
    ]))
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

/// Cancellation reason codes of a failed transaction, in item order.
fn cancellation_codes<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t)) => Some(
            t.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// One newest-first (or oldest-first) page from an index, following DynamoDB's own pages until
/// `limit + 1` items are in hand (the extra one tells whether there is a next page).
struct IndexQuery<'a> {
    table: &'a str,
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
                .index_name(q.index)
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
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| encode_cursor(&sk_of(i, "sk")))
        } else {
            None
        };
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
                Some(codes) => {
                    StoreError::Conflict(format!("transaction cancelled ({})", codes.join(", ")))
                }
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

/// Split a string into pieces of at most `max` bytes, on character boundaries.
fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = vec![];
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
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
            Err(Ok(codes)) => Err(StoreError::Conflict(format!(
                "transaction cancelled ({})",
                codes.join(", ")
            ))),
            Err(Err(e)) => Err(e),
        }
    }

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>> {
        let mut found: Page<PolicyRequest> = match (&filter.requester, filter.status) {
            (Some(who), status) => {
                self.page(
                    &self.requests,
                    "by_requester",
                    ("requester", who.clone()),
                    status.map(|st| ("status", st.as_str().to_string())),
                    page,
                )
                .await
            }
            (None, Some(st)) => {
                self.page(
                    &self.requests,
                    "by_status",
                    ("status", st.as_str().to_string()),
                    None,
                    page,
                )
                .await
            }
            (None, None) => {
                self.page(
                    &self.requests,
                    "by_created",
                    ("entity", "request".into()),
                    None,
                    page,
                )
                .await
            }
        }?;
        // Listings carry no comments, whatever an old item's body holds.
        found.items.iter_mut().for_each(|r| r.comments.clear());
        Ok(found)
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
                self.page(
                    &self.audit,
                    "by_time",
                    ("entity", "audit".into()),
                    None,
                    page,
                )
                .await
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

    async fn put_snapshot(&self, snapshot: &AccountSnapshot) -> StoreResult<u64> {
        let account = snapshot.account_id.clone();
        let generation = self
            .client
            .update_item()
            .table_name(&self.resources)
            .key("account_id", s(META))
            .key("sk", s("generation"))
            .update_expression("ADD #v :one")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("update_item", e))?
            .attributes()
            .map(|a| num(a, "value"))
            .unwrap_or(0);
        let json = encode(snapshot)?;
        let parts = chunks(&json, CHUNK_BYTES);
        for (i, part) in parts.iter().enumerate() {
            self.put_resource(HashMap::from([
                ("account_id".into(), s(&account)),
                ("sk".into(), s(format!("snapshot#{generation:020}#{i:05}"))),
                ("body".into(), s(*part)),
            ]))
            .await?;
        }
        // Readers follow this pointer: the new generation becomes visible only once complete.
        self.put_resource(HashMap::from([
            ("account_id".into(), s(META)),
            ("sk".into(), s(format!("account#{account}"))),
            ("generation".into(), n(generation)),
            ("chunks".into(), n(parts.len() as u64)),
        ]))
        .await?;
        // Drop older generations; a failure here only leaves garbage behind.
        let current = format!("snapshot#{generation:020}#");
        for old in self.items_with_prefix(&account, "snapshot#").await? {
            let sk = sk_of(&old, "sk");
            if !sk.starts_with(&current)
                && let Err(e) = self
                    .client
                    .delete_item()
                    .table_name(&self.resources)
                    .key("account_id", s(&account))
                    .key("sk", s(&sk))
                    .send()
                    .await
            {
                tracing::warn!(error = %DisplayErrorContext(&e), "cannot delete an old snapshot chunk");
            }
        }
        Ok(generation)
    }

    async fn list_snapshots(&self) -> StoreResult<Vec<AccountSnapshot>> {
        let mut out = vec![];
        for pointer in self.items_with_prefix(META, "account#").await? {
            let account = sk_of(&pointer, "sk")
                .trim_start_matches("account#")
                .to_string();
            let generation = num(&pointer, "generation");
            let prefix = format!("snapshot#{generation:020}#");
            let mut parts = self.items_with_prefix(&account, &prefix).await?;
            parts.sort_by_key(|p| sk_of(p, "sk"));
            if parts.len() as u64 != num(&pointer, "chunks") {
                return Err(StoreError::Backend(format!(
                    "snapshot of account {account} is incomplete"
                )));
            }
            let json: String = parts
                .iter()
                .map(|p| match p.get("body") {
                    Some(AttributeValue::S(b)) => b.as_str(),
                    _ => "",
                })
                .collect();
            out.push(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Backend(format!("corrupt snapshot: {e}")))?,
            );
        }
        out.sort_by(|a: &AccountSnapshot, b| a.account_id.cmp(&b.account_id));
        Ok(out)
    }

    async fn resource_generation(&self) -> StoreResult<u64> {
        let out = self
            .client
            .get_item()
            .table_name(&self.resources)
            .key("account_id", s(META))
            .key("sk", s("generation"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get_item", e))?;
        Ok(out.item().map(|i| num(i, "value")).unwrap_or(0))
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
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_split_on_character_boundaries() {
        let text = "ab€cd€";
        let parts = chunks(text, 4);
        assert!(parts.iter().all(|p| p.len() <= 4));
        assert_eq!(parts.concat(), text);
        assert!(chunks("", 4).is_empty());
    }
}
