//! Durable truth (GUIDE §1): policy requests, audit events, outbox messages.
//!
//! Two backends implement [`Store`]: `embedded` (SQLite file) and `dynamodb`. Both must pass the
//! conformance suite in [`conformance`], run by `tests/it/store.rs` against each backend.

pub mod conformance;
pub mod dynamo;
pub mod embedded;
pub mod request_index;

pub use request_index::{Posting, RequestKey, search_requests};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::resources::model::{AccountStatus, ResourceKey};
use crate::resources::stored::{
    ResourceAccount, ResourceChange, ResourceItem, ResourceStamp, ResourceWrite, WriteOutcome,
};

pub use crate::events::model::{Denial, Finding, OutsideChange};

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
    /// The backend is over its throughput right now; nothing was written. Try again shortly.
    #[error("throttled: {0}")]
    Throttled(String),
    /// An item would exceed the backend's size limit; nothing was written.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The backend failed or could not be reached.
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A policy request. `version` starts at 1 and grows by one on every successful write.
/// (The OpenAPI document describes its own fields; those of the domain types it holds are
/// JSON objects there until those types describe themselves too.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRequest {
    pub id: String,
    pub status: RequestStatus,
    pub requester: String,
    pub justification: String,
    /// The requested changes, typed (`src/requests/model.rs`); ConsoleMe's `{"changes": [...]}`
    /// on the wire.
    #[schema(value_type = Object)]
    pub changes: crate::requests::ChangeList,
    pub comments: Vec<Comment>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// Per change (same index as in `changes`): what applying it in AWS did.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<ChangeResult>,
    /// Set while an approver applies the changes, so a concurrent approval cannot apply twice.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub applying: Option<ApplyClaim>,
    /// Risky grants found at validation, shown to requester and reviewers.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Every `update_change`, oldest first: who edited which change, and the version it made.
    /// An editor may not approve or reject, and an approval must name a version after the last.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub edits: Vec<ChangeEdit>,
    /// What became of its expiring grants (taken away, drifted, gone).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub grant_outcomes: Vec<crate::requests::expiry::GrantOutcome>,
    /// Approvals given so far (a rule may need several).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub approvals: Vec<crate::requests::approvals::Approval>,
    /// Set when the requester applied it at once under break-glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub break_glass: Option<BreakGlass>,
    /// Set on requests imported from ConsoleMe: provenance and the read-only changes
    /// (`src/requests/imported.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub imported: Option<crate::requests::imported::Imported>,
}

/// A break-glass request: applied at once by its requester, reviewed by an admin afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakGlass {
    pub reason: String,
    /// The admin who looked at it afterwards (and when); `None` while it needs review.
    #[serde(default)]
    pub reviewed_by: Option<String>,
    #[serde(default)]
    pub reviewed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEdit {
    pub change_id: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// The request version the edit produced.
    pub version: u64,
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

/// Days a delivered or dead outbox message, and an expired or revoked API token, are kept before
/// they are removed (DynamoDB's TTL on `ttl`, the embedded store's hourly purge): enough to
/// look into a complaint, not a log that grows forever. The audit log keeps its events for good.
pub const KEEP_FINISHED_DAYS: i64 = 30;

/// What [`Store::purge_finished`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub outbox: usize,
    pub tokens: usize,
}

impl OutboxMessage {
    /// When a finished (sent or dead) message may be removed; `None` while it is pending.
    pub fn purge_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            OutboxStatus::Pending => None,
            _ => Some(self.next_attempt_at + chrono::Duration::days(KEEP_FINISHED_DAYS)),
        }
    }

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
    /// The user's groups when the token was made. Kept for the record: a token acts with the
    /// groups of its owner's last interactive sign-in ([`SignIn`]).
    pub groups: Vec<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the token may do. Tokens stored before scopes existed read as `[credentials]`, the
    /// only thing a token could do then.
    #[serde(default = "TokenScope::legacy")]
    pub scopes: Vec<TokenScope>,
}

/// One thing an API token may be used for (`src/web/scopes.rs` says which routes need which).
/// Deciding on a request (approve, reject, break-glass review) is never among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Role credentials and console URLs (`iamdesk credentials`).
    Credentials,
    /// Read policies, roles, resources and requests.
    Read,
    /// Create requests; comment on, edit and cancel one's own.
    Requests,
}

impl TokenScope {
    pub const ALL: [TokenScope; 3] = [
        TokenScope::Credentials,
        TokenScope::Read,
        TokenScope::Requests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Credentials => "credentials",
            TokenScope::Read => "read",
            TokenScope::Requests => "requests",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    /// The scopes of a token stored before tokens had scopes.
    pub fn legacy() -> Vec<TokenScope> {
        vec![TokenScope::Credentials]
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiToken {
    /// When the token may be removed: [`KEEP_FINISHED_DAYS`] after it expired or was revoked.
    pub fn purge_at(&self) -> DateTime<Utc> {
        let ended = match self.revoked_at {
            Some(r) if r < self.expires_at => r,
            _ => self.expires_at,
        };
        ended + chrono::Duration::days(KEEP_FINISHED_DAYS)
    }

    pub fn sort_key(&self) -> String {
        sort_key(self.created_at, &self.id)
    }

    /// Usable now: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A user's last interactive sign-in (ALB or proxy header): when, and the groups they had.
/// API tokens act with these groups and stop working when it is too old.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignIn {
    pub user: String,
    pub groups: Vec<String>,
    pub at: DateTime<Utc>,
}

/// Filters for listing requests. `None` = any.
///
/// [`search_requests`] answers every filter from the backends' posting lists
/// (`src/store/request_index.rs`) and checks each on the requests it reads.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub requester: Option<String>,
    /// 12-digit account id any change targets.
    pub account: Option<String>,
    /// Words (whole, case-insensitive) of the id, requester, justification, principal ARNs,
    /// role and policy names (listings carry no comments): `src/store/request_index.rs`.
    pub text: Option<String>,
    /// Requests whose highest change risk is at least this (computed by the caller's
    /// `level_of`, since risk depends on the installation).
    pub min_risk: Option<crate::requests::risk::Level>,
    /// Only break-glass requests no administrator has reviewed yet.
    pub needs_review: bool,
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

/// Undelivered outbox messages: how many, and when the oldest was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub pending: u64,
    pub oldest: Option<DateTime<Utc>>,
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

    /// Insert a new request (`version` must be 1) with its comments (an imported request may
    /// have some), its audit event and outbox messages, atomically. An existing id is a
    /// `Conflict`.
    async fn create_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()>;

    /// Replace a request if its stored version is still `request.version - 1`, together with its
    /// audit event and outbox messages, atomically. A stale version is a `Conflict` and changes
    /// nothing; a missing request is `NotFound`. `request.comments` is ignored: comments are
    /// only ever added, with [`Store::add_comment`].
    async fn update_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()>;

    /// The request with its comments, oldest first.
    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>>;

    /// Append `comment` to request `request_id` with its audit event and outbox messages,
    /// atomically. Comments are kept apart from the request: adding one never moves the
    /// request's `version`, and however many there are, the request item stays small (on
    /// DynamoDB every comment is an item of its own). `Conflict` when the request already has
    /// `max` comments, `NotFound` when there is no such request.
    async fn add_comment(
        &self,
        request_id: &str,
        comment: &Comment,
        max: usize,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()>;

    /// Requests without their comments (read one with [`Store::get_request`] for those).
    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>>;

    /// One page of a posting list (`src/store/request_index.rs`): ids and sort keys only,
    /// newest first, below the cursor.
    async fn request_postings(
        &self,
        key: &RequestKey,
        page: &PageRequest,
    ) -> StoreResult<Page<Posting>>;

    /// The requests of `ids` that exist, without comments, in any order (a page's bodies).
    async fn get_requests(&self, ids: &[String]) -> StoreResult<Vec<PolicyRequest>>;

    /// Append an audit event that is not tied to a request write (logins, credentials...).
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Audit events newest first, optionally only those of one request.
    async fn list_audit(
        &self,
        request_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>>;

    async fn get_outbox(&self, id: &str) -> StoreResult<Option<OutboxMessage>>;

    /// Add a message that no request write goes with (a reminder). An existing id is a
    /// `Conflict`.
    async fn enqueue_outbox(&self, message: &OutboxMessage) -> StoreResult<()>;

    /// Outbox messages newest first, optionally by status.
    async fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>>;

    /// Pending messages of `channel` whose `next_attempt_at <= now`, oldest first, at most
    /// `limit`. Per channel, so messages nobody here can deliver never block the others.
    async fn due_outbox(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>>;

    /// Replace an outbox message if its stored version is `message.version - 1` (else `Conflict`).
    async fn update_outbox(&self, message: &OutboxMessage) -> StoreResult<()>;

    /// Remove finished outbox messages and ended tokens whose `purge_at` has passed. Backends
    /// whose database expires items itself (DynamoDB's TTL) do nothing here.
    async fn purge_finished(&self, _now: DateTime<Utc>) -> StoreResult<Purged> {
        Ok(Purged::default())
    }

    /// How many messages wait for delivery and since when (metrics). Reads the pending list
    /// page by page, which stays cheap while the outbox drains; a backend with an aggregate
    /// query overrides it.
    async fn outbox_backlog(&self) -> StoreResult<OutboxBacklog> {
        let mut backlog = OutboxBacklog::default();
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let p = self.list_outbox(Some(OutboxStatus::Pending), &page).await?;
            backlog.pending += p.items.len() as u64;
            // Newest first: the last item seen is the oldest so far.
            if let Some(m) = p.items.last() {
                backlog.oldest = Some(m.created_at);
            }
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(backlog),
            }
        }
    }

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

    // --- Events from AWS (src/events/): Config findings, access denials, outside changes. ---

    async fn get_finding(&self, key: &str) -> StoreResult<Option<Finding>> {
        let _ = key;
        Err(unsupported(self.backend_name(), "Config findings"))
    }

    /// Write a finding if the stored one is at `finding.version - 1` (absent for version 1),
    /// together with the outbox messages it caused, atomically. Otherwise `Conflict`, and
    /// nothing is written.
    async fn put_finding(&self, finding: &Finding, outbox: &[OutboxMessage]) -> StoreResult<()> {
        let _ = (finding, outbox);
        Err(unsupported(self.backend_name(), "Config findings"))
    }

    /// Open (`NON_COMPLIANT`) findings, newest `since` first, at most `limit`.
    async fn list_open_findings(&self, limit: usize) -> StoreResult<Vec<Finding>> {
        let _ = limit;
        Err(unsupported(self.backend_name(), "Config findings"))
    }

    /// Add each group's `count` to the stored one (a new group starts at it) and widen its
    /// first and last seen times.
    async fn record_denials(&self, denials: &[Denial]) -> StoreResult<()> {
        let _ = denials;
        Err(unsupported(self.backend_name(), "access denials"))
    }

    /// A role's denial groups last seen at or after `since`, most recent first. Older groups are
    /// never returned and may be deleted.
    async fn list_denials(&self, role: &str, since: DateTime<Utc>) -> StoreResult<Vec<Denial>> {
        let _ = (role, since);
        Err(unsupported(self.backend_name(), "access denials"))
    }

    /// Record a change made outside iamdesk; `false` when its event id was already recorded.
    async fn add_outside_change(&self, change: &OutsideChange) -> StoreResult<bool> {
        let _ = change;
        Err(unsupported(self.backend_name(), "outside changes"))
    }

    /// The newest `limit` outside changes of one resource, newest first.
    async fn list_outside_changes(
        &self,
        resource: &str,
        limit: usize,
    ) -> StoreResult<Vec<OutsideChange>> {
        let _ = (resource, limit);
        Err(unsupported(self.backend_name(), "outside changes"))
    }

    // --- Sessions and interactive sign-ins. ---

    /// Replace the user's last interactive sign-in.
    async fn record_sign_in(&self, sign_in: &SignIn) -> StoreResult<()> {
        let _ = sign_in;
        Err(unsupported(self.backend_name(), "sign-in records"))
    }

    async fn get_sign_in(&self, user: &str) -> StoreResult<Option<SignIn>> {
        let _ = user;
        Err(unsupported(self.backend_name(), "sign-in records"))
    }

    /// Mark session `sid` revoked until `until` (when it would have expired anyway).
    /// Idempotent; a later `until` wins.
    async fn revoke_session(&self, sid: &str, until: DateTime<Utc>) -> StoreResult<()> {
        let _ = (sid, until);
        Err(unsupported(self.backend_name(), "session revocation"))
    }

    /// Whether `sid` was revoked (and its revocation has not run out).
    async fn is_session_revoked(&self, sid: &str) -> StoreResult<bool> {
        let _ = sid;
        Err(unsupported(self.backend_name(), "session revocation"))
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

    #[test]
    fn a_token_stored_before_scopes_keeps_exactly_the_credentials_scope() {
        let old = serde_json::json!({"hash": "h", "id": "i", "user": "u@example.com",
            "groups": [], "name": "laptop", "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-02-01T00:00:00Z", "revoked_at": null});
        let t: ApiToken = serde_json::from_value(old).expect("old token body");
        assert_eq!(t.scopes, [TokenScope::Credentials]);
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["scopes"], serde_json::json!(["credentials"]));
    }
}
