//! Signed-out sessions. A session cookie is a signed JWT that stays valid until it expires, so
//! signing out records its `sid` as revoked until then, in the Store (every replica reads it)
//! and in the Cache (fast). Each replica checks a presented session here.
//!
//! The cache may answer "revoked" from any backend. It may answer "not revoked" only when it is
//! shared (Redis): a replica's private memory cache would otherwise keep saying "not revoked"
//! after another replica signed the session out. So with the memory cache every check reads the
//! Store (one keyed lookup); with Redis, a "no" is cached for [`NOT_REVOKED_TTL`] and a sign-out
//! overwrites it at once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cache::Cache;
use crate::store::{Store, StoreError};

const NOT_REVOKED_TTL: Duration = Duration::from_secs(30);
const REVOKED: &[u8] = b"1";
const NOT_REVOKED: &[u8] = b"0";

fn key(sid: &str) -> String {
    format!("session-revoked:{sid}")
}

/// Sign session `sid` out until `until` (its expiry).
pub async fn revoke(
    store: &dyn Store,
    cache: &dyn Cache,
    sid: &str,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.revoke_session(sid, until).await?;
    let ttl = (until - Utc::now())
        .to_std()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_secs(1));
    if let Err(e) = cache.set(&key(sid), REVOKED, ttl).await {
        // The Store has it: other replicas still refuse the session.
        tracing::warn!(error = %e, "cannot cache a session revocation");
    }
    Ok(())
}

/// Whether session `sid` (expiring at `expires_at`) was signed out.
pub async fn is_revoked(
    store: &dyn Store,
    cache: &dyn Cache,
    sid: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    match cache.get(&key(sid)).await {
        Ok(Some(v)) if v == REVOKED => return Ok(true),
        Ok(Some(v)) if v == NOT_REVOKED && cache.is_shared() => return Ok(false),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "session revocation cache unavailable"),
    }
    let revoked = store.is_session_revoked(sid).await?;
    let remember = if revoked {
        (expires_at - Utc::now())
            .to_std()
            .ok()
            .map(|ttl| (REVOKED, ttl.max(Duration::from_secs(1))))
    } else if cache.is_shared() {
        Some((NOT_REVOKED, NOT_REVOKED_TTL))
    } else {
        None
    };
    if let Some((value, ttl)) = remember {
        let _ = cache.set(&key(sid), value, ttl).await;
    }
    Ok(revoked)
}
