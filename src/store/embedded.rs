//! Embedded backend: one SQLite file (rusqlite, bundled). Chosen over redb because requests are
//! listed by several secondary keys and SQLite gives indexes, multi-table transactions and
//! triggers (the audit table refuses UPDATE and DELETE at the database level) for free.
//!
//! Rows keep the key columns needed for lookups plus the whole entity as JSON, so the schema
//! stays small and every field round-trips exactly.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::*;
use crate::resources::stored::LOG_KEEP;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id        TEXT PRIMARY KEY,
    status    TEXT NOT NULL,
    requester TEXT NOT NULL,
    sort_key  TEXT NOT NULL,
    version   INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_sort ON requests (sort_key);
CREATE INDEX IF NOT EXISTS requests_by_status ON requests (status, sort_key);
CREATE INDEX IF NOT EXISTS requests_by_requester ON requests (requester, sort_key);

-- Posting lists of requests by account, principal and word (src/store/request_index.rs),
-- written with the request.
CREATE TABLE IF NOT EXISTS request_keys (
    key      TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    id       TEXT NOT NULL,
    PRIMARY KEY (key, sort_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS request_keys_by_id ON request_keys (id);

CREATE TABLE IF NOT EXISTS comments (
    id         TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    sort_key   TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_by_request ON comments (request_id, sort_key);

CREATE TABLE IF NOT EXISTS audit (
    id         TEXT PRIMARY KEY,
    sort_key   TEXT NOT NULL,
    request_id TEXT,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_sort ON audit (sort_key);
CREATE INDEX IF NOT EXISTS audit_by_request ON audit (request_id, sort_key);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

CREATE TABLE IF NOT EXISTS outbox (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    sort_key        TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    version         INTEGER NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (status, sort_key);

CREATE TABLE IF NOT EXISTS resource_accounts (
    account_id   TEXT PRIMARY KEY,
    account_name TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    synced_at    TEXT
);
CREATE TABLE IF NOT EXISTS resource_items (
    account_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    hash       TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE TABLE IF NOT EXISTS resource_log (
    account_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (account_id, generation)
);
CREATE TABLE IF NOT EXISTS account_status (
    account_id TEXT PRIMARY KEY,
    body       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    hash     TEXT PRIMARY KEY,
    user     TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_tokens_by_user ON api_tokens (user, sort_key);
CREATE TABLE IF NOT EXISTS sign_ins (
    user TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    sid   TEXT PRIMARY KEY,
    until TEXT NOT NULL
);
"#;

/// Tables of the event consumer (`src/events/`).
const EVENTS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS findings (
    key     TEXT PRIMARY KEY,
    open    INTEGER NOT NULL,
    since   TEXT NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_open ON findings (open, since);
CREATE TABLE IF NOT EXISTS denials (
    role       TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    role_arn   TEXT NOT NULL,
    error_code TEXT NOT NULL,
    count      INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (role, action, resource)
);
CREATE INDEX IF NOT EXISTS denials_by_last_seen ON denials (last_seen);
CREATE TABLE IF NOT EXISTS outside_changes (
    event_id TEXT PRIMARY KEY,
    resource TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outside_changes_by_resource ON outside_changes (resource, sort_key);
"#;

/// SQLite-backed [`Store`]. One connection behind a mutex: SQLite serialises writers anyway, and
/// every call runs on the blocking pool so the async runtime never waits on disk.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
}

impl EmbeddedStore {
    /// Open (or create) the database file, creating its parent folder.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// A private in-memory database (tests, throwaway demos).
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> StoreResult<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        // WAL lets readers of other processes (check-config, a second replica on the same file)
        // proceed during writes; in-memory databases silently keep their journal mode.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        conn.execute_batch(EVENTS_SCHEMA).map_err(backend)?;
        upgrade_outbox(&conn)?;
        convert_snapshots(&mut conn)?;
        index_old_requests(&mut conn)?;
        Ok(EmbeddedStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The entity stored under `id` in `table` (a name from [`SCHEMA`], never user input).
    async fn get_by_id<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        id: &str,
    ) -> StoreResult<Option<T>> {
        let id = id.to_string();
        self.with_conn(move |c| {
            let body: Option<String> = c
                .query_row(
                    &format!("SELECT body FROM {table} WHERE id = ?1"),
                    [&id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            body.as_deref().map(from_json).transpose()
        })
        .await
    }

    async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-written transaction behind
            // (rusqlite rolls back on drop), so a poisoned lock is still safe to use.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("corrupt row: {e}")))
}

fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("corrupt time {s}: {e}")))
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// The request as its row holds it: comments have rows of their own.
fn without_comments(r: &PolicyRequest) -> PolicyRequest {
    PolicyRequest {
        comments: vec![],
        ..r.clone()
    }
}

fn insert_comment(
    tx: &rusqlite::Transaction<'_>,
    request_id: &str,
    comment: &Comment,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO comments (id, request_id, sort_key, body) VALUES (?1, ?2, ?3, ?4)",
        params![
            comment.id,
            request_id,
            sort_key(comment.created_at, &comment.id),
            to_json(comment)?
        ],
    )
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::Conflict(format!("comment {} already exists", comment.id))
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

/// Replace the posting-list rows of `r` (`src/store/request_index.rs`).
fn insert_keys(tx: &rusqlite::Transaction<'_>, r: &PolicyRequest) -> StoreResult<()> {
    tx.execute("DELETE FROM request_keys WHERE id = ?1", [&r.id])
        .map_err(backend)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO request_keys (key, sort_key, id) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend)?;
    let sk = r.sort_key();
    for key in request_index::index_keys(r) {
        if let Some(k) = key.index_key() {
            stmt.execute(params![k, sk, r.id]).map_err(backend)?;
        }
    }
    Ok(())
}

/// Requests stored before the posting lists existed get their rows (once: afterwards every
/// request has at least the words of its id).
fn index_old_requests(c: &mut Connection) -> StoreResult<()> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let bodies: Vec<String> = {
        let mut stmt = tx
            .prepare(
                "SELECT body FROM requests
                 WHERE NOT EXISTS (SELECT 1 FROM request_keys k WHERE k.id = requests.id)",
            )
            .map_err(backend)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    for body in bodies {
        let r: PolicyRequest = from_json(&body)?;
        insert_keys(&tx, &r)?;
    }
    tx.commit().map_err(backend)
}

fn insert_audit(tx: &rusqlite::Transaction<'_>, ev: &AuditEvent) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO audit (id, sort_key, request_id, body) VALUES (?1, ?2, ?3, ?4)",
        params![ev.id, ev.sort_key(), ev.request_id, to_json(ev)?],
    )
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::Conflict(format!("audit event {} already exists", ev.id))
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

/// Databases made before the outbox had a `channel` column get it (filled from each message)
/// and the per-channel due index.
fn upgrade_outbox(c: &Connection) -> StoreResult<()> {
    let has_channel = c
        .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'channel'")
        .and_then(|mut s| s.exists([]))
        .map_err(backend)?;
    if !has_channel {
        c.execute_batch(
            "ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT '';
             UPDATE outbox SET channel = json_extract(body, '$.channel');",
        )
        .map_err(backend)?;
    }
    c.execute_batch(
        "DROP INDEX IF EXISTS outbox_due;
         CREATE INDEX IF NOT EXISTS outbox_due_by_channel
             ON outbox (status, channel, next_attempt_at);",
    )
    .map_err(backend)
}

fn insert_outbox(tx: &rusqlite::Transaction<'_>, m: &OutboxMessage) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO outbox (id, status, sort_key, next_attempt_at, version, body, channel)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            m.id,
            m.status.as_str(),
            m.sort_key(),
            ts(m.next_attempt_at),
            m.version as i64,
            to_json(m)?,
            m.channel
        ],
    )
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::Conflict(format!("outbox message {} already exists", m.id))
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

/// Run a newest-first keyset query: `sql` must select `body` and end with a `sort_key < ?`
/// placeholder as its last parameter, ordering by `sort_key DESC` and limited to `limit + 1`.
fn page_query<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    mut args: Vec<String>,
    page: &PageRequest,
    key_of: impl Fn(&T) -> String,
) -> StoreResult<Page<T>> {
    let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
    let after = match &page.cursor {
        Some(c) => decode_cursor(c)?,
        // Greater than any sort key: they all start with a digit.
        None => "~".to_string(),
    };
    args.push(after);
    args.push((limit + 1).to_string());
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |row| {
            row.get::<_, String>(0)
        })
        .map_err(backend)?;
    let mut items = Vec::with_capacity(limit + 1);
    for body in rows {
        items.push(from_json::<T>(&body.map_err(backend)?)?);
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| encode_cursor(&key_of(i)))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.with_conn(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
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
        let (request, event, outbox) = (request.clone(), event.clone(), outbox.to_vec());
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO requests (id, status, requester, sort_key, version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    request.id,
                    request.status.as_str(),
                    request.requester,
                    request.sort_key(),
                    request.version as i64,
                    to_json(&without_comments(&request))?
                ],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    StoreError::Conflict(format!("request {} already exists", request.id))
                } else {
                    backend(e)
                }
            })?;
            for comment in &request.comments {
                insert_comment(&tx, &request.id, comment)?;
            }
            insert_keys(&tx, &request)?;
            insert_audit(&tx, &event)?;
            for m in &outbox {
                insert_outbox(&tx, m)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn update_request(
        &self,
        request: &PolicyRequest,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let (request, event, outbox) = (request.clone(), event.clone(), outbox.to_vec());
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let expected = request.version.saturating_sub(1);
            let changed = tx
                .execute(
                    "UPDATE requests SET status = ?2, requester = ?3, sort_key = ?4, version = ?5,
                     body = ?6 WHERE id = ?1 AND version = ?7",
                    params![
                        request.id,
                        request.status.as_str(),
                        request.requester,
                        request.sort_key(),
                        request.version as i64,
                        to_json(&without_comments(&request))?,
                        expected as i64
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                let current: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM requests WHERE id = ?1",
                        [&request.id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                return Err(match current {
                    None => StoreError::NotFound(format!("request {}", request.id)),
                    Some(v) => StoreError::Conflict(format!(
                        "request {} is at version {v}, not {expected}",
                        request.id
                    )),
                });
            }
            // Only an import's update can change what a request is found by (module doc of
            // src/store/request_index.rs); rewriting the rows then keeps them exact.
            if request.imported.is_some() {
                insert_keys(&tx, &request)?;
            }
            insert_audit(&tx, &event)?;
            for m in &outbox {
                insert_outbox(&tx, m)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_request(&self, id: &str) -> StoreResult<Option<PolicyRequest>> {
        let id = id.to_string();
        self.with_conn(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM requests WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            let Some(body) = body else {
                return Ok(None);
            };
            let mut request: PolicyRequest = from_json(&body)?;
            let mut stmt = c
                .prepare("SELECT body FROM comments WHERE request_id = ?1 ORDER BY sort_key")
                .map_err(backend)?;
            let rows = stmt
                .query_map([&id], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            for row in rows {
                let comment: Comment = from_json(&row.map_err(backend)?)?;
                // Requests written before comments had rows of their own hold them in the body.
                if !request.comments.iter().any(|k| k.id == comment.id) {
                    request.comments.push(comment);
                }
            }
            Ok(Some(request))
        })
        .await
    }

    async fn add_comment(
        &self,
        request_id: &str,
        comment: &Comment,
        max: usize,
        event: &AuditEvent,
        outbox: &[OutboxMessage],
    ) -> StoreResult<()> {
        let (id, comment, event, outbox) = (
            request_id.to_string(),
            comment.clone(),
            event.clone(),
            outbox.to_vec(),
        );
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let body: Option<String> = tx
                .query_row("SELECT body FROM requests WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            let Some(body) = body else {
                return Err(StoreError::NotFound(format!("request {id}")));
            };
            let legacy = from_json::<PolicyRequest>(&body)?.comments.len();
            let count: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM comments WHERE request_id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if legacy + count as usize >= max {
                return Err(StoreError::Conflict(format!(
                    "request {id} already has {max} comments"
                )));
            }
            insert_comment(&tx, &id, &comment)?;
            insert_audit(&tx, &event)?;
            for m in &outbox {
                insert_outbox(&tx, m)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PolicyRequest>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.with_conn(move |c| {
            let mut sql = String::from("SELECT body FROM requests WHERE 1 = 1");
            let mut args = vec![];
            if let Some(s) = filter.status {
                args.push(s.as_str().to_string());
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(r) = &filter.requester {
                args.push(r.clone());
                sql.push_str(&format!(" AND requester = ?{}", args.len()));
            }
            sql.push_str(&format!(
                " AND sort_key < ?{} ORDER BY sort_key DESC LIMIT ?{}",
                args.len() + 1,
                args.len() + 2
            ));
            let mut found = page_query(c, &sql, args, &page, PolicyRequest::sort_key)?;
            // Listings carry no comments, whatever an old row's body holds.
            found.items.iter_mut().for_each(|r| r.comments.clear());
            Ok(found)
        })
        .await
    }

    async fn request_postings(
        &self,
        key: &RequestKey,
        page: &PageRequest,
    ) -> StoreResult<Page<Posting>> {
        let (key, page) = (key.clone(), page.clone());
        self.with_conn(move |c| {
            let (sql, arg) = match &key {
                RequestKey::All => (
                    "SELECT id, sort_key FROM requests WHERE ?1 = ?1 AND sort_key < ?2
                     ORDER BY sort_key DESC LIMIT ?3",
                    String::new(),
                ),
                RequestKey::Status(s) => (
                    "SELECT id, sort_key FROM requests WHERE status = ?1 AND sort_key < ?2
                     ORDER BY sort_key DESC LIMIT ?3",
                    s.as_str().to_string(),
                ),
                RequestKey::Requester(r) => (
                    "SELECT id, sort_key FROM requests WHERE requester = ?1 AND sort_key < ?2
                     ORDER BY sort_key DESC LIMIT ?3",
                    r.clone(),
                ),
                other => (
                    "SELECT id, sort_key FROM request_keys WHERE key = ?1 AND sort_key < ?2
                     ORDER BY sort_key DESC LIMIT ?3",
                    other.index_key().unwrap_or_default(),
                ),
            };
            let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
            let below = match &page.cursor {
                Some(c) => decode_cursor(c)?,
                None => "~".to_string(),
            };
            let mut stmt = c.prepare_cached(sql).map_err(backend)?;
            let rows = stmt
                .query_map(params![arg, below, (limit + 1) as i64], |r| {
                    Ok(Posting {
                        id: r.get(0)?,
                        sort_key: r.get(1)?,
                    })
                })
                .map_err(backend)?;
            let mut items = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
            let next_cursor = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|p| encode_cursor(&p.sort_key))
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn get_requests(&self, ids: &[String]) -> StoreResult<Vec<PolicyRequest>> {
        let ids = ids.to_vec();
        self.with_conn(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            let mut stmt = c
                .prepare_cached("SELECT body FROM requests WHERE id = ?1")
                .map_err(backend)?;
            for id in &ids {
                let body: Option<String> = stmt
                    .query_row([id], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if let Some(body) = body {
                    let mut r: PolicyRequest = from_json(&body)?;
                    r.comments.clear();
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let event = event.clone();
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(backend)?;
            insert_audit(&tx, &event)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_audit(
        &self,
        request_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        let (request_id, page) = (request_id.map(str::to_string), page.clone());
        self.with_conn(move |c| match request_id {
            Some(id) => page_query(
                c,
                "SELECT body FROM audit WHERE request_id = ?1 AND sort_key < ?2
                 ORDER BY sort_key DESC LIMIT ?3",
                vec![id],
                &page,
                AuditEvent::sort_key,
            ),
            None => page_query(
                c,
                "SELECT body FROM audit WHERE sort_key < ?1 ORDER BY sort_key DESC LIMIT ?2",
                vec![],
                &page,
                AuditEvent::sort_key,
            ),
        })
        .await
    }

    async fn enqueue_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        let m = message.clone();
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            insert_outbox(&tx, &m)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_outbox(&self, id: &str) -> StoreResult<Option<OutboxMessage>> {
        self.get_by_id("outbox", id).await
    }

    async fn outbox_backlog(&self) -> StoreResult<OutboxBacklog> {
        self.with_conn(|c| {
            let (pending, oldest): (i64, Option<String>) = c
                .query_row(
                    "SELECT COUNT(*), MIN(sort_key) FROM outbox WHERE status = 'pending'",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(backend)?;
            // `sort_key` starts with the creation time (`store::sort_key`).
            let oldest = oldest.and_then(|k| {
                let at = k.split('#').next().unwrap_or_default();
                DateTime::parse_from_rfc3339(at)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            });
            Ok(OutboxBacklog {
                pending: u64::try_from(pending).unwrap_or(0),
                oldest,
            })
        })
        .await
    }

    async fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<OutboxMessage>> {
        let page = page.clone();
        self.with_conn(move |c| match status {
            Some(s) => page_query(
                c,
                "SELECT body FROM outbox WHERE status = ?1 AND sort_key < ?2
                 ORDER BY sort_key DESC LIMIT ?3",
                vec![s.as_str().to_string()],
                &page,
                OutboxMessage::sort_key,
            ),
            None => page_query(
                c,
                "SELECT body FROM outbox WHERE sort_key < ?1 ORDER BY sort_key DESC LIMIT ?2",
                vec![],
                &page,
                OutboxMessage::sort_key,
            ),
        })
        .await
    }

    async fn due_outbox(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let channel = channel.to_string();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM outbox WHERE status = 'pending' AND channel = ?3
                     AND next_attempt_at <= ?1 ORDER BY next_attempt_at ASC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        ts(now),
                        limit.clamp(1, PageRequest::MAX_LIMIT) as i64,
                        channel
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(backend)?;
            let mut out = vec![];
            for body in rows {
                out.push(from_json(&body.map_err(backend)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn resource_accounts(&self) -> StoreResult<Vec<ResourceAccount>> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT account_id, account_name, generation, synced_at FROM resource_accounts
                     ORDER BY account_id",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], account_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    async fn resource_account(&self, account_id: &str) -> StoreResult<Option<ResourceAccount>> {
        let id = account_id.to_string();
        self.with_conn(move |c| resource_account(c, &id)).await
    }

    async fn resource_stamps(&self, account_id: &str) -> StoreResult<Vec<ResourceStamp>> {
        let id = account_id.to_string();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key, hash, fetched_at FROM resource_items WHERE account_id = ?1",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([&id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = vec![];
            for row in rows {
                let (key, hash, at) = row.map_err(backend)?;
                out.push(ResourceStamp {
                    key: ResourceKey::decode(&key)
                        .ok_or_else(|| StoreError::Backend(format!("corrupt key {key}")))?,
                    hash,
                    fetched_at: parse_ts(&at)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn list_resources(&self, account_id: &str) -> StoreResult<Vec<ResourceItem>> {
        let id = account_id.to_string();
        self.with_conn(move |c| {
            all_bodies(
                c,
                "SELECT body FROM resource_items WHERE account_id = ?1 ORDER BY key",
                [&id],
            )
        })
        .await
    }

    async fn get_resources(
        &self,
        account_id: &str,
        keys: &[ResourceKey],
    ) -> StoreResult<Vec<ResourceItem>> {
        let id = account_id.to_string();
        let keys: Vec<String> = keys.iter().map(ResourceKey::encode).collect();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM resource_items WHERE account_id = ?1 AND key = ?2",
                )
                .map_err(backend)?;
            let mut out = vec![];
            for key in &keys {
                let body: Option<String> = stmt
                    .query_row(params![id, key], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if let Some(b) = body {
                    out.push(from_json(&b)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn resource_changes(
        &self,
        account_id: &str,
        after: u64,
    ) -> StoreResult<Vec<ResourceChange>> {
        let id = account_id.to_string();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            all_bodies(
                c,
                "SELECT body FROM resource_log WHERE account_id = ?1 AND generation > ?2
                 ORDER BY generation",
                params![id, after],
            )
        })
        .await
    }

    async fn write_resources(&self, write: &ResourceWrite) -> StoreResult<WriteOutcome> {
        let w = write.clone();
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let stored = resource_account(&tx, &w.account_id)?;
            let current = stored.as_ref().map_or(0, |a| a.generation);
            if current != w.expected_generation {
                return Err(StoreError::Conflict(format!(
                    "the resources of account {} are at generation {current}, not {}",
                    w.account_id, w.expected_generation
                )));
            }
            let mut out = WriteOutcome {
                generation: current,
                ..Default::default()
            };
            for item in &w.puts {
                let key = item.key();
                let written = tx
                    .execute(
                        "INSERT INTO resource_items (account_id, key, hash, fetched_at, body)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (account_id, key) DO UPDATE SET hash = excluded.hash,
                             fetched_at = excluded.fetched_at, body = excluded.body
                         WHERE resource_items.fetched_at <= excluded.fetched_at",
                        params![
                            w.account_id,
                            key.encode(),
                            item.hash,
                            ts(item.fetched_at),
                            to_json(item)?
                        ],
                    )
                    .map_err(backend)?;
                if written == 0 {
                    &mut out.skipped
                } else {
                    &mut out.applied
                }
                .push(key);
            }
            for d in &w.deletes {
                let deleted = tx
                    .execute(
                        "DELETE FROM resource_items
                         WHERE account_id = ?1 AND key = ?2 AND fetched_at <= ?3",
                        params![w.account_id, d.key.encode(), ts(d.fetched_at)],
                    )
                    .map_err(backend)?;
                let newer = deleted == 0
                    && tx
                        .query_row(
                            "SELECT 1 FROM resource_items WHERE account_id = ?1 AND key = ?2",
                            params![w.account_id, d.key.encode()],
                            |_| Ok(()),
                        )
                        .optional()
                        .map_err(backend)?
                        .is_some();
                if deleted > 0 {
                    out.applied.push(d.key.clone());
                } else if newer {
                    out.skipped.push(d.key.clone());
                }
            }
            let changed = !out.applied.is_empty() || w.full;
            if changed {
                out.generation = current + 1;
                let entry = w.change(out.generation, &out.applied);
                tx.execute(
                    "INSERT INTO resource_log (account_id, generation, body) VALUES (?1, ?2, ?3)",
                    params![w.account_id, out.generation as i64, to_json(&entry)?],
                )
                .map_err(backend)?;
                tx.execute(
                    "DELETE FROM resource_log WHERE account_id = ?1 AND generation <= ?2",
                    params![w.account_id, out.generation.saturating_sub(LOG_KEEP) as i64],
                )
                .map_err(backend)?;
            }
            if changed || w.synced_at.is_some() {
                let synced_at = w
                    .synced_at
                    .or_else(|| stored.as_ref().and_then(|a| a.synced_at));
                tx.execute(
                    "INSERT INTO resource_accounts (account_id, account_name, generation, synced_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account_id) DO UPDATE SET account_name = excluded.account_name,
                         generation = excluded.generation, synced_at = excluded.synced_at",
                    params![
                        w.account_id,
                        w.account_name,
                        out.generation as i64,
                        synced_at.map(ts)
                    ],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn put_account_status(&self, status: &AccountStatus) -> StoreResult<()> {
        let (id, body) = (status.account_id.clone(), to_json(status)?);
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO account_status (account_id, body) VALUES (?1, ?2)
                 ON CONFLICT (account_id) DO UPDATE SET body = excluded.body",
                params![id, body],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_account_status(&self) -> StoreResult<Vec<AccountStatus>> {
        self.with_conn(|c| all_bodies(c, "SELECT body FROM account_status ORDER BY account_id", []))
            .await
    }

    async fn create_api_token(&self, token: &ApiToken, event: &AuditEvent) -> StoreResult<()> {
        let (token, event) = (token.clone(), event.clone());
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO api_tokens (hash, user, sort_key, body) VALUES (?1, ?2, ?3, ?4)",
                params![token.hash, token.user, token.sort_key(), to_json(&token)?],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    StoreError::Conflict("this API token already exists".into())
                } else {
                    backend(e)
                }
            })?;
            insert_audit(&tx, &event)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_api_token(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        let hash = hash.to_string();
        self.with_conn(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM api_tokens WHERE hash = ?1",
                    params![hash],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_api_tokens(&self, user: &str) -> StoreResult<Vec<ApiToken>> {
        let user = user.to_string();
        self.with_conn(move |c| {
            all_bodies(
                c,
                "SELECT body FROM api_tokens WHERE user = ?1 ORDER BY sort_key DESC LIMIT 500",
                params![user],
            )
        })
        .await
    }

    async fn update_api_token(&self, token: &ApiToken, event: &AuditEvent) -> StoreResult<()> {
        let (token, event) = (token.clone(), event.clone());
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let changed = tx
                .execute(
                    "UPDATE api_tokens SET body = ?2 WHERE hash = ?1",
                    params![token.hash, to_json(&token)?],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("API token {}", token.id)));
            }
            insert_audit(&tx, &event)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn record_sign_in(&self, sign_in: &SignIn) -> StoreResult<()> {
        let (user, body) = (sign_in.user.clone(), to_json(sign_in)?);
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO sign_ins (user, body) VALUES (?1, ?2)
                 ON CONFLICT (user) DO UPDATE SET body = excluded.body",
                params![user, body],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_sign_in(&self, user: &str) -> StoreResult<Option<SignIn>> {
        let user = user.to_string();
        self.with_conn(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM sign_ins WHERE user = ?1",
                    params![user],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn revoke_session(&self, sid: &str, until: DateTime<Utc>) -> StoreResult<()> {
        let (sid, until, now) = (sid.to_string(), ts(until), ts(Utc::now()));
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            // Revocations that ran out protect nothing: drop them as we go.
            tx.execute(
                "DELETE FROM revoked_sessions WHERE until < ?1",
                params![now],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO revoked_sessions (sid, until) VALUES (?1, ?2)
                 ON CONFLICT (sid) DO UPDATE SET until = max(until, excluded.until)",
                params![sid, until],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn is_session_revoked(&self, sid: &str) -> StoreResult<bool> {
        let (sid, now) = (sid.to_string(), ts(Utc::now()));
        self.with_conn(move |c| {
            c.query_row(
                "SELECT 1 FROM revoked_sessions WHERE sid = ?1 AND until >= ?2",
                params![sid, now],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(backend)
        })
        .await
    }

    async fn get_finding(&self, key: &str) -> StoreResult<Option<Finding>> {
        let key = key.to_string();
        self.with_conn(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM findings WHERE key = ?1", [&key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            body.as_deref().map(from_json).transpose()
        })
        .await
    }

    async fn put_finding(&self, finding: &Finding, outbox: &[OutboxMessage]) -> StoreResult<()> {
        let (f, outbox) = (finding.clone(), outbox.to_vec());
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let (open, since, body) = (f.is_open(), ts(f.since), to_json(&f)?);
            let written = if f.version <= 1 {
                tx.execute(
                    "INSERT INTO findings (key, open, since, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (key) DO NOTHING",
                    params![f.key, open, since, f.version as i64, body],
                )
            } else {
                tx.execute(
                    "UPDATE findings SET open = ?2, since = ?3, version = ?4, body = ?5
                     WHERE key = ?1 AND version = ?6",
                    params![f.key, open, since, f.version as i64, body, (f.version - 1) as i64],
                )
            }
            .map_err(backend)?;
            if written == 0 {
                return Err(StoreError::Conflict(format!(
                    "finding {} changed since it was read",
                    f.key
                )));
            }
            for m in &outbox {
                insert_outbox(&tx, m)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_open_findings(&self, limit: usize) -> StoreResult<Vec<Finding>> {
        let limit = limit.clamp(1, PageRequest::MAX_LIMIT) as i64;
        self.with_conn(move |c| {
            all_bodies(
                c,
                "SELECT body FROM findings WHERE open = 1 ORDER BY since DESC, key LIMIT ?1",
                params![limit],
            )
        })
        .await
    }

    async fn record_denials(&self, denials: &[Denial]) -> StoreResult<()> {
        let denials = denials.to_vec();
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            for d in &denials {
                tx.execute(
                    "INSERT INTO denials
                       (role, action, resource, role_arn, error_code, count, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (role, action, resource) DO UPDATE SET
                       count = count + excluded.count,
                       role_arn = excluded.role_arn,
                       error_code = excluded.error_code,
                       first_seen = min(first_seen, excluded.first_seen),
                       last_seen = max(last_seen, excluded.last_seen)",
                    params![
                        d.role,
                        d.action,
                        d.resource,
                        d.role_arn,
                        d.error_code,
                        d.count as i64,
                        ts(d.first_seen),
                        ts(d.last_seen)
                    ],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_denials(&self, role: &str, since: DateTime<Utc>) -> StoreResult<Vec<Denial>> {
        let (role, since) = (role.to_string(), ts(since));
        self.with_conn(move |c| {
            // Expired groups of every role go: one indexed delete, cheaper than keeping them.
            c.execute("DELETE FROM denials WHERE last_seen < ?1", params![since])
                .map_err(backend)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT role, role_arn, action, resource, error_code, count, first_seen,
                            last_seen
                     FROM denials WHERE role = ?1 ORDER BY last_seen DESC, action, resource
                     LIMIT 500",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![role], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = vec![];
            for row in rows {
                let (role, role_arn, action, resource, error_code, count, first, last) =
                    row.map_err(backend)?;
                out.push(Denial {
                    role,
                    role_arn,
                    action,
                    resource,
                    error_code,
                    count: count.max(0) as u64,
                    first_seen: parse_ts(&first)?,
                    last_seen: parse_ts(&last)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn add_outside_change(&self, change: &OutsideChange) -> StoreResult<bool> {
        let ch = change.clone();
        self.with_conn(move |c| {
            let n = c
                .execute(
                    "INSERT INTO outside_changes (event_id, resource, sort_key, body)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (event_id) DO NOTHING",
                    params![ch.event_id, ch.resource, ch.sort_key(), to_json(&ch)?],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_outside_changes(
        &self,
        resource: &str,
        limit: usize,
    ) -> StoreResult<Vec<OutsideChange>> {
        let (resource, limit) = (
            resource.to_string(),
            limit.clamp(1, PageRequest::MAX_LIMIT) as i64,
        );
        self.with_conn(move |c| {
            all_bodies(
                c,
                "SELECT body FROM outside_changes WHERE resource = ?1
                 ORDER BY sort_key DESC LIMIT ?2",
                params![resource, limit],
            )
        })
        .await
    }

    async fn purge_finished(&self, now: DateTime<Utc>) -> StoreResult<Purged> {
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            // `purge_at` of a finished message is its last attempt time + the kept days.
            let cutoff = ts(now - chrono::Duration::days(KEEP_FINISHED_DAYS));
            let outbox = tx
                .execute(
                    "DELETE FROM outbox WHERE status IN ('sent', 'dead') AND next_attempt_at < ?1",
                    params![cutoff],
                )
                .map_err(backend)?;
            let ended: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT hash, body FROM api_tokens")
                    .map_err(backend)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    .map_err(backend)?;
                let mut out = vec![];
                for row in rows {
                    let (hash, body) = row.map_err(backend)?;
                    let token: ApiToken = from_json(&body)?;
                    if token.purge_at() <= now {
                        out.push(hash);
                    }
                }
                out
            };
            for hash in &ended {
                tx.execute("DELETE FROM api_tokens WHERE hash = ?1", params![hash])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(Purged {
                outbox,
                tokens: ended.len(),
            })
        })
        .await
    }

    async fn update_outbox(&self, message: &OutboxMessage) -> StoreResult<()> {
        let m = message.clone();
        self.with_conn(move |c| {
            let expected = m.version.saturating_sub(1);
            let changed = c
                .execute(
                    "UPDATE outbox SET status = ?2, next_attempt_at = ?3, version = ?4, body = ?5
                     WHERE id = ?1 AND version = ?6",
                    params![
                        m.id,
                        m.status.as_str(),
                        ts(m.next_attempt_at),
                        m.version as i64,
                        to_json(&m)?,
                        expected as i64
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "outbox message {} changed since it was read",
                    m.id
                )));
            }
            Ok(())
        })
        .await
    }
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<ResourceAccount>> {
    let synced_at: Option<String> = r.get(3)?;
    let generation: i64 = r.get(2)?;
    Ok(synced_at
        .as_deref()
        .map(parse_ts)
        .transpose()
        .map(|synced_at| ResourceAccount {
            account_id: r.get(0).unwrap_or_default(),
            account_name: r.get(1).unwrap_or_default(),
            generation: generation.max(0) as u64,
            synced_at,
            incomplete: false,
        }))
}

fn resource_account(c: &Connection, id: &str) -> StoreResult<Option<ResourceAccount>> {
    c.query_row(
        "SELECT account_id, account_name, generation, synced_at FROM resource_accounts
         WHERE account_id = ?1",
        [id],
        account_row,
    )
    .optional()
    .map_err(backend)?
    .transpose()
}

/// Databases written before resources were stored per item hold one JSON snapshot per account
/// in `snapshots`: turn each into items at generation 1 (logged `full`), then drop the table.
fn convert_snapshots(c: &mut Connection) -> StoreResult<()> {
    let legacy: bool = c
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !legacy {
        return Ok(());
    }
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let snapshots: Vec<crate::resources::model::AccountSnapshot> =
        all_bodies(&tx, "SELECT body FROM snapshots", [])?;
    for snap in snapshots {
        if resource_account(&tx, &snap.account_id)?.is_some() {
            continue;
        }
        let at = snap.synced_at.unwrap_or(DateTime::UNIX_EPOCH);
        let (id, name) = (snap.account_id.clone(), snap.account_name.clone());
        for resource in snap.into_resources() {
            let item = ResourceItem::new(resource, at);
            tx.execute(
                "INSERT OR REPLACE INTO resource_items (account_id, key, hash, fetched_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, item.key().encode(), item.hash, ts(at), to_json(&item)?],
            )
            .map_err(backend)?;
        }
        let entry = ResourceChange {
            generation: 1,
            full: true,
            keys: vec![],
        };
        tx.execute(
            "INSERT INTO resource_log (account_id, generation, body) VALUES (?1, 1, ?2)",
            params![id, to_json(&entry)?],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO resource_accounts (account_id, account_name, generation, synced_at)
             VALUES (?1, ?2, 1, ?3)",
            params![id, name, ts(at)],
        )
        .map_err(backend)?;
    }
    tx.execute_batch("DROP TABLE snapshots; DROP TABLE IF EXISTS meta;")
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

fn all_bodies<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(backend)?;
    let mut out = vec![];
    for body in rows {
        out.push(from_json(&body.map_err(backend)?)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn audit_rows_cannot_be_changed_even_with_raw_sql() {
        let store = EmbeddedStore::in_memory().expect("open");
        let ev = AuditEvent::new("a", "x", None, serde_json::json!({}));
        store.append_audit(&ev).await.expect("append");
        let res = store
            .with_conn(|c| {
                c.execute("DELETE FROM audit", []).map_err(backend)?;
                Ok(())
            })
            .await;
        assert!(res.is_err(), "the trigger refuses deletes");
        let res = store
            .with_conn(|c| {
                c.execute("UPDATE audit SET body = '{}'", [])
                    .map_err(backend)?;
                Ok(())
            })
            .await;
        assert!(res.is_err(), "the trigger refuses updates");
    }

    #[tokio::test]
    async fn snapshots_of_older_versions_become_items() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let snap = crate::resources::demo::account("111122223333", "demo-prod");
        {
            // The table and row an older iamdesk wrote.
            let c = Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE snapshots (account_id TEXT PRIMARY KEY, body TEXT NOT NULL);
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('resource_generation', 7);",
            )
            .expect("old schema");
            c.execute(
                "INSERT INTO snapshots (account_id, body) VALUES (?1, ?2)",
                params![snap.account_id, to_json(&snap).expect("json")],
            )
            .expect("old row");
        }
        let store = EmbeddedStore::open(&path).expect("open converts");
        let account = store
            .resource_account("111122223333")
            .await
            .expect("account")
            .expect("converted");
        assert_eq!(
            (account.generation, account.account_name.as_str()),
            (1, "demo-prod")
        );
        let items = store.list_resources("111122223333").await.expect("items");
        assert_eq!(
            items.len(),
            snap.principals.len() + snap.policies.len() + snap.services.len()
        );
        let changes = store
            .resource_changes("111122223333", 0)
            .await
            .expect("log");
        assert!(
            changes.len() == 1 && changes[0].full,
            "replicas load it whole"
        );
        let left: i64 = store
            .with_conn(|c| {
                c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name IN ('snapshots', 'meta')",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)
            })
            .await
            .expect("schema");
        assert_eq!(left, 0, "the old tables are gone");
        drop(store);
        // Opening again converts nothing twice.
        let store = EmbeddedStore::open(&path).expect("reopen");
        assert_eq!(
            store
                .list_resources("111122223333")
                .await
                .expect("items")
                .len(),
            items.len()
        );
    }

    #[tokio::test]
    async fn open_creates_parent_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/deeper/iamdesk.db");
        let store = EmbeddedStore::open(&path).expect("open");
        store.ping().await.expect("ping");
        assert!(path.exists());
    }
}
