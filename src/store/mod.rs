//! Durable truth (GUIDE §1): policy requests, audit events, outbox messages.
//!
//! Two backends implement [`Store`]: `embedded` (SQLite file) and `dynamodb`. Both must pass the
//! conformance suite in [`conformance`], run by `tests/it/store.rs` against each backend.

pub mod conformance;
pub mod dynamo;
pub mod embedded;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::resources::model::{AccountStatus, ResourceKey};
use crate::resources::stored::{
    ResourceAccount, ResourceChange, ResourceItem, ResourceStamp, ResourceWrite, WriteOutcome,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency lost: somebody else wrote first (or the id already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A caller-supplied value the store cannot accept (bad cursor, ...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend failed or could not be reached.
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 4] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Rejected,
        RequestStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A policy request. `version` starts at 1 and grows by one on every successful write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRequest {
    pub id: String,
    pub status: RequestStatus,
    pub requester: String,
    pub justification: String,
    /// The requested changes, ConsoleMe v2 shape (`{"changes": [...]}`), validated upstream.
    pub changes: serde_json::Value,
    pub comments: Vec<Comment>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// Per change (same index as in `changes`): what applying it in AWS did.
    #[serde(default)]
    pub results: Vec<ChangeResult>,
    /// Set while an approver applies the changes, so a concurrent approval cannot apply twice.
    #[serde(default)]
    pub applying: Option<ApplyClaim>,
    /// Risky grants found at validation, shown to requester and reviewers.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeStatus {
    Pending,
    Applied,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeResult {
    pub status: ChangeStatus,
    /// AWS's error for a failed change.
    pub message: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyClaim {
    pub by: String,
    pub since: DateTime<Utc>,
}

impl PolicyRequest {
    /// Sort key shared by every listing: newest first, ties broken by id.
    pub fn sort_key(&self) -> String {
        sort_key(self.created_at, &self.id)
    }
}

/// `created_at` with fixed-width millisecond precision, then `#id`: sorts lexicographically in
/// time order in both backends.
pub fn sort_key(at: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// An append-only record of something that happened. Never updated, never deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// What happened, e.g. `request.created`, `request.approved`.
    pub action: String,
    pub request_id: Option<String>,
    /// Outcome and details; never secrets.
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        actor: &str,
        action: &str,
        request_id: Option<&str>,
        detail: serde_json::Value,
    ) -> Self {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            actor: actor.to_string(),
            action: action.to_string(),
            request_id: request_id.map(str::to_string),
            detail,
        }
    }

    pub fn sort_key(&self) -> String {
        sort_key(self.at, &self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    Pending,
    Sent,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            OutboxStatus::Pending,
            OutboxStatus::Sent,
            OutboxStatus::Dead,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A message waiting to be delivered (email, Slack). Written in the same transaction as the event
/// that caused it, so nothing is lost when delivery fails or the process restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// `email` or `slack`.
    pub channel: String,
    pub payload: serde_json::Value,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Optimistic concurrency, as for requests.
    pub version: u64,
}

impl OutboxMessage {
    pub fn new(channel: &str, payload: serde_json::Value) -> Self {
        let now = Utc::now();
        OutboxMessage {
            id: uuid::Uuid::now_v7().to_string(),
            created_at: now,
            channel: channel.to_string(),
            payload,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            version: 1,
        }
    }

    pub fn sort_key(&self) -> String {
        sort_key(self.created_at, &self.id)
    }
}

/// A personal API token (for `iamdesk credentials`). Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Hex SHA-256 of the token: the key.
    pub hash: String,
    /// Short public id (a prefix of the hash), shown and used to revoke.
    pub id: String,
    pub user: String,
    /// The user's groups when the token was made (entitlements use them).
    pub groups: Vec<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn sort_key(&self) -> String {
        sort_key(self.created_at, &self.id)
    }

    /// Usable now: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Filters for listing requests. `None` = any.
///
/// `status` and `requester` are served by the backends' indexes; `account` and `text` are
/// matched on the request itself by [`search_requests`], which reads the indexed listing page by
/// page (bounded per call) and keeps what matches.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub requester: Option<String>,
    /// 12-digit account id any change targets.
    pub account: Option<String>,
    /// Case-insensitive text in the id, requester, justification, principal ARNs, role and
    /// policy names, or comments.
    pub text: Option<String>,
}

impl RequestFilter {
    /// Whether the filters the backends do not index (`account`, `text`) accept `r`.
    pub fn matches_unindexed(&self, r: &PolicyRequest) -> bool {
        let changes = r
            .changes
            .get("changes")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let str_at = |c: &serde_json::Value, ptr: &str| {
            c.pointer(ptr)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if let Some(account) = &self.account {
            let needle = format!(":{account}:");
            let hit = changes.iter().any(|c| {
                str_at(c, "/principal/principal_arn").contains(&needle)
                    || str_at(c, "/account_id") == *account
            });
            if !hit {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let needle = text.to_lowercase();
            let mut hay = vec![r.id.clone(), r.requester.clone(), r.justification.clone()];
            for c in changes {
                for ptr in [
                    "/principal/principal_arn",
                    "/role_name",
                    "/policy_name",
                    "/arn",
                    "/clone_from",
                    "/key",
                ] {
                    hay.push(str_at(c, ptr));
                }
            }
            hay.extend(r.comments.iter().map(|c| c.text.clone()));
            if !hay.iter().any(|h| h.to_lowercase().contains(&needle)) {
                return false;
            }
        }
        true
    }
}

/// How many requests one [`search_requests`] call reads at most before answering with what it
/// found and a cursor to go on from.
pub const SEARCH_SCAN_BUDGET: usize = 5_000;

/// List requests with every filter of [`RequestFilter`]: the indexed ones through the backend,
/// `account` and `text` by reading on. A page may hold fewer than `limit` items when the scan
/// budget ran out; `next_cursor` then continues the search where it stopped.
pub async fn search_requests(
    store: &dyn Store,
    filter: &RequestFilter,
    page: &PageRequest,
) -> StoreResult<Page<PolicyRequest>> {
    if filter.account.is_none() && filter.text.is_none() {
        return store.list_requests(filter, page).await;
    }
    let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
    let mut cursor = page.cursor.clone();
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = store
            .list_requests(
                filter,
                &PageRequest {
                    limit: PageRequest::MAX_LIMIT,
                    cursor: cursor.clone(),
                },
            )
            .await?;
        for r in batch.items {
            scanned += 1;
            let key = r.sort_key();
            if filter.matches_unindexed(&r) {
                found.push(r);
                if found.len() == limit {
                    return Ok(Page {
                        items: found,
                        next_cursor: Some(encode_cursor(&key)),
                    });
                }
            }
            if scanned >= SEARCH_SCAN_BUDGET {
                return Ok(Page {
                    items: found,
                    next_cursor: Some(encode_cursor(&key)),
                });
            }
        }
        match batch.next_cursor {
            Some(c) => cursor = Some(c),
            None => {
                return Ok(Page {
                    items: found,
                    next_cursor: None,
                });
            }
        }
    }
}

/// Cursor pagination. `cursor` is opaque, taken from a previous [`Page::next_cursor`].
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub const MAX_LIMIT: usize = 500;

    pub fn first(limit: usize) -> Self {
        PageRequest {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            cursor: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The persistence contract. Listings are newest first.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip proving the backend answers (for `/healthcheck`).
    async fn ping(&self) -> StoreResult<()>;

    /// Human-readable backend name for logs and the health page.
    fn backend_name(&self) -> &'static str;

    /// Insert a new request (`version` must be 1) with its audit event and outbox messages,
    /// atomically. An existing id is a `Conflict`.
    async fn create_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()>;

    /// Replace a request if its stored version is still `request.version - 1`, together with its
    /// audit event and outbox messages, atomically. A stale version is a `Conflict` and changes
    /// nothing; a missing request is `NotFound`.
    async fn update_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()>;

    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>>;

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>>;

    /// Append an audit event that is not tied to a request write (logins, credentials...).
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Audit events newest first, optionally only those of one request.
    async fn list_audit(
        &self,
        request_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>>;

    async fn get_outbox(&self, id: &str) -> StoreResult<Option<OutboxMessage>>;

    /// Outbox messages newest first, optionally by status.
    async fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>>;

    /// Pending messages whose `next_attempt_at <= now`, oldest first, at most `limit`.
    async fn due_outbox(&self, now: DateTime<Utc>, limit: usize)
    -> StoreResult<Vec<OutboxMessage>>;

    /// Replace an outbox message if its stored version is `message.version - 1` (else `Conflict`).
    async fn update_outbox(&self, message: &OutboxMessage) -> StoreResult<()>;

    // --- Synced IAM resources, one item per role, user and policy (`resources::stored`). ---
    // Defaults say "unsupported" so a backend can add them later.

    /// Every account with stored resources: its generation and sync time.
    async fn resource_accounts(&self) -> StoreResult<Vec<ResourceAccount>> {
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    /// One account's entry (`None` before its first write), read consistently.
    async fn resource_account(&self, account_id: &str) -> StoreResult<Option<ResourceAccount>> {
        let _ = account_id;
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    /// Key, hash and fetch time of every item of one account (no bodies), for a sync's diff.
    async fn resource_stamps(&self, account_id: &str) -> StoreResult<Vec<ResourceStamp>> {
        let _ = account_id;
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    /// Every item of one account.
    async fn list_resources(&self, account_id: &str) -> StoreResult<Vec<ResourceItem>> {
        let _ = account_id;
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    /// The items of `keys` that exist (any order).
    async fn get_resources(
        &self,
        account_id: &str,
        keys: &[ResourceKey],
    ) -> StoreResult<Vec<ResourceItem>> {
        let _ = (account_id, keys);
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    /// The change-log entries of one account after generation `after`, oldest first. Entries
    /// older than the last [`LOG_KEEP`](crate::resources::stored::LOG_KEEP) may be gone.
    async fn resource_changes(
        &self,
        account_id: &str,
        after: u64,
    ) -> StoreResult<Vec<ResourceChange>> {
        let _ = (account_id, after);
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    /// Store puts and deletes of one account if its generation is still
    /// `write.expected_generation` (else `Conflict`, nothing written), skipping items stored
    /// with a later `fetched_at`; then, if anything changed or `write.full`, move the generation
    /// forward by one with its change-log entry, atomically with the items where the backend
    /// can (see `resources::stored`).
    async fn write_resources(&self, write: &ResourceWrite) -> StoreResult<WriteOutcome> {
        let _ = write;
        Err(unsupported(self.backend_name(), "synced resources"))
    }

    async fn put_account_status(&self, status: &AccountStatus) -> StoreResult<()> {
        let _ = status;
        Err(unsupported(self.backend_name(), "account sync status"))
    }

    async fn list_account_status(&self) -> StoreResult<Vec<AccountStatus>> {
        Err(unsupported(self.backend_name(), "account sync status"))
    }

    // --- Personal API tokens. ---

    /// Store a new token with its audit event, atomically (an existing hash is a `Conflict`).
    async fn create_api_token(&self, token: &ApiToken, event: &AuditEvent) -> StoreResult<()> {
        let _ = (token, event);
        Err(unsupported(self.backend_name(), "API tokens"))
    }

    async fn get_api_token(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        let _ = hash;
        Err(unsupported(self.backend_name(), "API tokens"))
    }

    /// A user's tokens, newest first (revoked and expired ones included).
    async fn list_api_tokens(&self, user: &str) -> StoreResult<Vec<ApiToken>> {
        let _ = user;
        Err(unsupported(self.backend_name(), "API tokens"))
    }

    /// Replace an existing token (to revoke it) with its audit event; missing is `NotFound`.
    async fn update_api_token(&self, token: &ApiToken, event: &AuditEvent) -> StoreResult<()> {
        let _ = (token, event);
        Err(unsupported(self.backend_name(), "API tokens"))
    }
}

fn unsupported(backend: &str, what: &str) -> StoreError {
    StoreError::Backend(format!("the {backend} store does not support {what} yet"))
}

/// Cursors are the sort key of the last item of a page, hex-encoded so callers treat them as
/// opaque. Shared by every backend so a cursor means the same everywhere.
pub fn encode_cursor(sort_key: &str) -> String {
    sort_key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Decode a cursor from [`encode_cursor`]; anything else is `StoreError::Invalid`.
pub fn decode_cursor(cursor: &str) -> StoreResult<String> {
    let invalid = || {
        StoreError::Invalid("the page cursor is not valid; start again from the first page".into())
    };
    if !cursor.len().is_multiple_of(2) || cursor.len() > 512 {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(cursor.get(i..i + 2).ok_or_else(invalid)?, 16).map_err(|_| invalid())
        })
        .collect::<StoreResult<Vec<u8>>>()?;
    let key = String::from_utf8(bytes).map_err(|_| invalid())?;
    if !key.contains('#') {
        return Err(invalid());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let key = sort_key(Utc::now(), "abc-1");
        assert_eq!(decode_cursor(&encode_cursor(&key)).ok(), Some(key));
        for bad in ["", "zz", "abc", "6162"] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn sort_keys_order_by_time() {
        let a = Utc::now();
        let b = a + chrono::Duration::milliseconds(1);
        assert!(sort_key(a, "z") < sort_key(b, "a"));
    }
}
