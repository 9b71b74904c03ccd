//! The current view of every synced account: snapshots plus the search index built from them.
//! Readers take an `Arc` and never block a sync; a sync swaps in a new generation atomically.

use std::sync::{Arc, RwLock};

use super::index::SearchIndex;
use super::model::{AccountSnapshot, Principal, ResourceKind};

#[derive(Default)]
pub struct Resources {
    current: RwLock<Current>,
}

/// Something computed once per generation from the snapshots (e.g. who may use which role).
type Derived = Arc<dyn std::any::Any + Send + Sync>;

/// Every account's snapshot of one generation.
pub type Snapshots = Arc<Vec<Arc<AccountSnapshot>>>;

#[derive(Default, Clone)]
struct Current {
    snapshots: Arc<Vec<Arc<AccountSnapshot>>>,
    index: Arc<SearchIndex>,
    derived: Arc<std::sync::OnceLock<Derived>>,
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
            derived: Arc::default(),
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    pub fn index(&self) -> Arc<SearchIndex> {
        self.read().index
    }

    pub fn snapshots(&self) -> Arc<Vec<Arc<AccountSnapshot>>> {
        self.read().snapshots
    }

    /// A value built once per generation from the snapshots (the first caller builds it; a sync
    /// starts afresh), with the very snapshots it was built from. One derived value per process:
    /// its type is fixed by the first caller.
    pub fn derived<T: Send + Sync + 'static>(
        &self,
        build: impl FnOnce(&[Arc<AccountSnapshot>]) -> T,
    ) -> Option<(Snapshots, Arc<T>)> {
        let current = self.read();
        let value = current
            .derived
            .get_or_init(|| Arc::new(build(&current.snapshots)))
            .clone()
            .downcast::<T>()
            .ok()?;
        Some((current.snapshots, value))
    }

    /// (id, name) of every synced account, by id.
    pub fn accounts(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .snapshots()
            .iter()
            .map(|s| (s.account_id.clone(), s.account_name.clone()))
            .collect();
        v.sort();
        v
    }

    pub fn generation(&self) -> u64 {
        self.read().index.generation
    }

    /// The document of a synced customer-managed policy (`None` for AWS managed ones).
    pub fn managed_policy_document(&self, arn: &str) -> Option<serde_json::Value> {
        let account = arn.strip_prefix("arn:aws:iam::")?.split(':').next()?;
        let snaps = self.snapshots();
        let snap = snaps.iter().find(|s| s.account_id == account)?;
        snap.policies
            .iter()
            .find(|p| p.arn == arn)
            .map(|p| p.document.clone())
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
