//! What the Store keeps of the synced resources, and the contract of writing them.
//!
//! Each role, user and managed policy is one item with a content hash, so one role can be
//! written alone and a sync writes only what changed. Per account the Store keeps a
//! *generation* that only moves forward, by one, on every write that changed something: the
//! write names the generation it read (`expected_generation`) and loses with `Conflict` when
//! another writer got there first. Each generation leaves a small change-log entry listing the
//! keys it touched, so a replica that holds generation `g` reads the entries after `g` and
//! re-reads only those items; the log keeps the last [`LOG_KEEP`] entries, and a replica further
//! behind (or an entry marked `full`) reloads that one account.
//!
//! Items carry `fetched_at`, when their content was read from AWS. A write never replaces or
//! deletes an item read later than its own (it is reported as `skipped`), so a sync that read the
//! account before an approval cannot put back the role as it was before the approval.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Resource, ResourceKey};

/// Change-log entries the Store keeps per account.
pub const LOG_KEEP: u64 = 100;

/// Keys one log entry lists at most; a larger write logs `full` (reload the account) instead.
pub const LOG_MAX_KEYS: usize = 1000;

/// One stored resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceItem {
    pub account_id: String,
    /// [`Resource::content_hash`] of `resource`.
    pub hash: String,
    /// When `resource` was read from AWS.
    pub fetched_at: DateTime<Utc>,
    pub resource: Resource,
}

impl ResourceItem {
    /// `fetched_at` is kept to the microsecond, the precision both stores compare at.
    pub fn new(resource: Resource, fetched_at: DateTime<Utc>) -> Self {
        ResourceItem {
            account_id: resource.account_id().to_string(),
            hash: resource.content_hash(),
            fetched_at: fetched_at.trunc_subsecs(6),
            resource,
        }
    }

    pub fn key(&self) -> ResourceKey {
        self.resource.key()
    }
}

/// An item without its body: what a sync compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStamp {
    pub key: ResourceKey,
    pub hash: String,
    pub fetched_at: DateTime<Utc>,
}

/// One account's entry: its generation and when it was last synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccount {
    pub account_id: String,
    pub account_name: String,
    pub generation: u64,
    pub synced_at: Option<DateTime<Utc>>,
    /// A write too large for one transaction began and did not finish: its items may be stored
    /// without a log entry, so the next write must log `full`. (Only backends without
    /// multi-item atomicity of that size set it.)
    pub incomplete: bool,
}

/// One change-log entry: what generation `generation` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub generation: u64,
    /// Too much changed to list: reload the whole account.
    pub full: bool,
    pub keys: Vec<ResourceKey>,
}

/// A key to delete, unless the stored item was read after `fetched_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDelete {
    pub key: ResourceKey,
    pub fetched_at: DateTime<Utc>,
}

/// One write of one account's resources.
#[derive(Debug, Clone, Default)]
pub struct ResourceWrite {
    pub account_id: String,
    pub account_name: String,
    /// The generation the writer read; anything else stored is a `Conflict`.
    pub expected_generation: u64,
    /// Set the account's `synced_at` (a sync pass), with or without changes.
    pub synced_at: Option<DateTime<Utc>>,
    /// Items to store (distinct keys, none also in `deletes`).
    pub puts: Vec<ResourceItem>,
    pub deletes: Vec<ResourceDelete>,
    /// Log this generation as `full` whatever it changed (first sync, recovery).
    pub full: bool,
}

/// What a [`ResourceWrite`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// The account's generation now: `expected_generation + 1` when anything changed (or the
    /// write was `full`), else `expected_generation`.
    pub generation: u64,
    /// Keys written or deleted.
    pub applied: Vec<ResourceKey>,
    /// Keys left alone because the stored item was read from AWS later than this write's.
    pub skipped: Vec<ResourceKey>,
}

impl ResourceWrite {
    /// The log entry this write leaves for `applied` keys.
    pub fn change(&self, generation: u64, applied: &[ResourceKey]) -> ResourceChange {
        let full = self.full || applied.len() > LOG_MAX_KEYS;
        ResourceChange {
            generation,
            full,
            keys: if full { vec![] } else { applied.to_vec() },
        }
    }
}
