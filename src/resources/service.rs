//! The current view of every synced account: snapshots plus the search index built from them.
//! Readers take an `Arc` and never block a sync; a sync swaps in a new generation atomically.

use std::sync::{Arc, RwLock};

use super::index::SearchIndex;
use super::model::{AccountSnapshot, Principal, ResourceKind};

#[derive(Default)]
pub struct Resources {
    current: RwLock<Current>,
}

#[derive(Default, Clone)]
struct Current {
    snapshots: Arc<Vec<Arc<AccountSnapshot>>>,
    index: Arc<SearchIndex>,
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> Current {
        // A poisoned lock only means a writer panicked between two complete states.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replace everything with a new generation (after a sync).
    pub fn replace(&self, snapshots: Vec<AccountSnapshot>, generation: u64) {
        let snapshots: Vec<Arc<AccountSnapshot>> = snapshots.into_iter().map(Arc::new).collect();
        let index = SearchIndex::build(&snapshots, generation);
        let next = Current {
            snapshots: Arc::new(snapshots),
            index: Arc::new(index),
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    pub fn index(&self) -> Arc<SearchIndex> {
        self.read().index
    }

    pub fn snapshots(&self) -> Arc<Vec<Arc<AccountSnapshot>>> {
        self.read().snapshots
    }

    pub fn generation(&self) -> u64 {
        self.read().index.generation
    }

    /// A role by account id and name (case-sensitive, as IAM names are unique case-insensitively
    /// but displayed as created).
    pub fn role(&self, account_id: &str, name: &str) -> Option<(Arc<AccountSnapshot>, Principal)> {
        let snaps = self.snapshots();
        let snap = snaps.iter().find(|s| s.account_id == account_id)?.clone();
        let role = snap
            .principals
            .iter()
            .find(|p| p.kind == ResourceKind::Role && p.name.eq_ignore_ascii_case(name))?
            .clone();
        Some((snap, role))
    }
}
