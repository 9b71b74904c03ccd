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

CREATE TABLE IF NOT EXISTS snapshots (
    account_id TEXT PRIMARY KEY,
    body       TEXT NOT NULL
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
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
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

    fn init(conn: Connection) -> StoreResult<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        // WAL lets readers of other processes (check-config, a second replica on the same file)
        // proceed during writes; in-memory databases silently keep their journal mode.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        upgrade_outbox(&conn)?;
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

    async fn put_snapshot(&self, snapshot: &AccountSnapshot) -> StoreResult<u64> {
        let (id, body) = (snapshot.account_id.clone(), to_json(snapshot)?);
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO snapshots (account_id, body) VALUES (?1, ?2)
                 ON CONFLICT (account_id) DO UPDATE SET body = excluded.body",
                params![id, body],
            )
            .map_err(backend)?;
            let next = generation(&tx)? + 1;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('resource_generation', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![next as i64],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(next)
        })
        .await
    }

    async fn list_snapshots(&self) -> StoreResult<Vec<AccountSnapshot>> {
        self.with_conn(|c| all_bodies(c, "SELECT body FROM snapshots ORDER BY account_id", []))
            .await
    }

    async fn resource_generation(&self) -> StoreResult<u64> {
        self.with_conn(|c| generation(c)).await
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

fn generation(c: &Connection) -> StoreResult<u64> {
    let g: Option<i64> = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'resource_generation'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(g.unwrap_or(0).max(0) as u64)
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
    async fn open_creates_parent_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/deeper/iamdesk.db");
        let store = EmbeddedStore::open(&path).expect("open");
        store.ping().await.expect("ping");
        assert!(path.exists());
    }
}
