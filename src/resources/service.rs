//! This replica's view of every synced account: the accounts, the search index built from them,
//! and values derived from them (e.g. who may use which role).
//!
//! Readers take `Arc`s and never wait. Writers are serialised among themselves and build the next
//! state beside the current one, then swap it in: a full load (startup, a sync pass) rebuilds the
//! index; a delta (an approval's roles, the change log of another replica's write) copies the
//! account's pointer lists, replaces the changed resources and updates the index and the derived
//! values for those resources only. Each account carries the Store generation it reflects, and
//! a delta applies only on top of the generation it was made from, so deltas arriving out of
//! order or twice are refused rather than applied wrongly (the caller then reads the Store).

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, Utc};

use super::account::{Account, Changed, Item};
use super::index::SearchIndex;
use super::model::{Principal, Resource, ResourceKey, ResourceKind};

/// Every account of one state.
pub type Snapshots = Arc<Vec<Arc<Account>>>;

/// Above this many changed resources at once, the index is rebuilt rather than updated.
const REBUILD_ABOVE: usize = 512;

/// A value derived from the accounts and kept up to date with them.
pub trait Derived: Any + Send + Sync {
    /// This value after `changes` (already made in `accounts`); `None` if it cannot follow them,
    /// and it is then built afresh on its next use.
    fn updated(&self, accounts: &[Arc<Account>], changes: &[Changed]) -> Option<Arc<dyn Derived>>;
}

/// A change to one account, for [`Resources::update`].
#[derive(Debug, Clone)]
pub enum Update {
    /// The whole account as the Store held it at its `generation`.
    Full(Account),
    /// Resources that changed from generation `from` (which this copy must hold) to `to`;
    /// `None`: the resource is gone.
    Delta {
        account_id: String,
        from: u64,
        to: u64,
        items: Vec<(ResourceKey, Option<Resource>)>,
    },
    /// A sync found nothing new but read the account at `at`.
    SyncedAt {
        account_id: String,
        at: DateTime<Utc>,
    },
}

/// What [`Resources::update`] did with one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// This copy already holds that generation or a later one (or the account is not
    /// configured): nothing to do.
    Stale,
    /// This copy is not at the delta's `from`: load the account instead.
    Gap,
}

#[derive(Clone, Default)]
struct Current {
    accounts: Snapshots,
    index: Arc<SearchIndex>,
    derived: Arc<OnceLock<Arc<dyn Derived>>>,
}

#[derive(Default)]
pub struct Resources {
    /// The configured accounts (id, name): which accounts to hold; the names win over the ones
    /// stored at sync time.
    configured: Vec<(String, String)>,
    current: RwLock<Current>,
    writer: Mutex<()>,
    /// Set once this replica's first load from the Store finished ([`mark_loaded`]).
    ///
    /// [`mark_loaded`]: Resources::mark_loaded
    loaded: AtomicBool,
}

impl Resources {
    pub fn new(configured: Vec<(String, String)>) -> Self {
        Resources {
            configured,
            ..Default::default()
        }
    }

    /// Whether the first load from the Store finished. `iamdesk serve` opens its port before
    /// it (`src/cli.rs::serve`); until then `src/web/loading.rs` answers 503 and `/readyz` says
    /// not ready.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The first load finished (successfully or not: a Store that cannot be read is reported
    /// by `/readyz` on its own).
    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    pub fn configured(&self) -> &[(String, String)] {
        &self.configured
    }

    fn configured_name(&self, account_id: &str) -> Option<&str> {
        self.configured
            .iter()
            .find(|(id, _)| id == account_id)
            .map(|(_, name)| name.as_str())
    }

    fn read(&self) -> Current {
        // A poisoned lock only means a writer panicked between two complete states.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Apply `updates` in order. When something changed, the index is rebuilt if an account was
    /// loaded whole, many resources changed, or `rebuild` asks for it (a sync pass); otherwise it
    /// and the derived values are updated for the changed resources only.
    pub fn update(&self, updates: Vec<Update>, rebuild: bool) -> Vec<Outcome> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.read();
        let mut accounts: Vec<Arc<Account>> = current.accounts.as_ref().clone();
        let mut changes: Vec<Changed> = vec![];
        let mut whole = false;
        let mut touched = false;
        let mut outcomes = Vec::with_capacity(updates.len());
        for update in updates {
            let outcome = match update {
                Update::Full(mut account) => match self.configured_name(&account.account_id) {
                    None => Outcome::Stale,
                    Some(name) => {
                        account.account_name = name.to_string();
                        match position(&accounts, &account.account_id) {
                            Ok(i) if accounts[i].generation > account.generation => Outcome::Stale,
                            Ok(i) => {
                                accounts[i] = Arc::new(account);
                                whole = true;
                                Outcome::Applied
                            }
                            Err(i) => {
                                accounts.insert(i, Arc::new(account));
                                whole = true;
                                Outcome::Applied
                            }
                        }
                    }
                },
                Update::Delta {
                    account_id,
                    from,
                    to,
                    items,
                } => match position(&accounts, &account_id) {
                    Err(_) => Outcome::Gap,
                    Ok(i) if accounts[i].generation >= to => Outcome::Stale,
                    Ok(i) if accounts[i].generation != from => Outcome::Gap,
                    Ok(i) => {
                        let mut next = accounts[i].as_ref().clone();
                        for (key, resource) in items {
                            let new = resource.map(Item::from);
                            let old = next.set(&key, new.clone());
                            changes.push(Changed {
                                account_id: account_id.clone(),
                                key,
                                old,
                                new,
                            });
                        }
                        next.generation = to;
                        accounts[i] = Arc::new(next);
                        Outcome::Applied
                    }
                },
                Update::SyncedAt { account_id, at } => match position(&accounts, &account_id) {
                    Ok(i) => {
                        let mut next = accounts[i].as_ref().clone();
                        next.synced_at = Some(at);
                        accounts[i] = Arc::new(next);
                        touched = true;
                        Outcome::Applied
                    }
                    Err(_) => Outcome::Stale,
                },
            };
            outcomes.push(outcome);
        }
        if !whole && changes.is_empty() && !touched {
            return outcomes;
        }
        let generation = accounts.iter().map(|a| a.generation).sum();
        let next = if !whole && changes.is_empty() {
            // Only sync times moved: the index and derived values stay.
            Current {
                accounts: Arc::new(accounts),
                ..current
            }
        } else if whole || rebuild || changes.len() > REBUILD_ABOVE {
            Current {
                index: Arc::new(SearchIndex::build(&accounts, generation)),
                derived: Arc::default(),
                accounts: Arc::new(accounts),
            }
        } else {
            let mut index = current.index.as_ref().clone();
            index.apply(&accounts, &changes, generation);
            let derived = match current
                .derived
                .get()
                .and_then(|d| d.updated(&accounts, &changes))
            {
                Some(d) => Arc::new(OnceLock::from(d)),
                None => Arc::default(),
            };
            Current {
                index: Arc::new(index),
                derived,
                accounts: Arc::new(accounts),
            }
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        outcomes
    }

    /// Replace everything with `snapshots` (tests and benchmarks).
    pub fn replace(&self, snapshots: Vec<super::model::AccountSnapshot>, generation: u64) {
        let updates = snapshots
            .into_iter()
            .map(|s| Update::Full(Account::from_snapshot(s, generation)))
            .collect();
        self.update(updates, true);
    }

    pub fn index(&self) -> Arc<SearchIndex> {
        self.read().index
    }

    /// Every account, by id.
    pub fn snapshots(&self) -> Snapshots {
        self.read().accounts
    }

    /// A value derived from the accounts, built by the first caller and then kept up to date by
    /// every delta ([`Derived::updated`]); a full load starts afresh. Returned with the very
    /// accounts it reflects. One derived value per process: its type is fixed by the first
    /// caller.
    pub fn derived<T: Derived>(
        &self,
        build: impl FnOnce(&[Arc<Account>]) -> T,
    ) -> Option<(Snapshots, Arc<T>)> {
        let current = self.read();
        let value: Arc<dyn Any + Send + Sync> = current
            .derived
            .get_or_init(|| -> Arc<dyn Derived> { Arc::new(build(&current.accounts)) })
            .clone();
        let value = value.downcast::<T>().ok()?;
        Some((current.accounts, value))
    }

    /// (id, name) of every synced account, by id.
    pub fn accounts(&self) -> Vec<(String, String)> {
        self.snapshots()
            .iter()
            .map(|s| (s.account_id.clone(), s.account_name.clone()))
            .collect()
    }

    /// The sum of the accounts' Store generations: moves whenever anything synced changes.
    pub fn generation(&self) -> u64 {
        self.read().index.generation
    }

    /// The document of a synced customer-managed policy (`None` for AWS managed ones).
    pub fn managed_policy_document(&self, arn: &str) -> Option<serde_json::Value> {
        let account = arn.strip_prefix("arn:aws:iam::")?.split(':').next()?;
        let accounts = self.snapshots();
        let account = &accounts[position(&accounts, account).ok()?];
        account.policy_by_arn(arn).map(|p| p.document.clone())
    }

    /// This copy of one account (`None`: not loaded).
    pub fn account(&self, account_id: &str) -> Option<Arc<Account>> {
        let accounts = self.snapshots();
        position(&accounts, account_id)
            .ok()
            .map(|i| accounts[i].clone())
    }

    /// The Store generation this copy holds of one account (`None`: not loaded).
    pub fn account_generation(&self, account_id: &str) -> Option<u64> {
        let accounts = self.snapshots();
        position(&accounts, account_id)
            .ok()
            .map(|i| accounts[i].generation)
    }

    /// A role by account id and name, whatever the case of the name (IAM names are unique
    /// regardless of case).
    pub fn role(&self, account_id: &str, name: &str) -> Option<(Arc<Account>, Principal)> {
        let accounts = self.snapshots();
        let account = accounts[position(&accounts, account_id).ok()?].clone();
        let role = account
            .principal(ResourceKind::Role, name)?
            .as_ref()
            .clone();
        Some((account, role))
    }

    /// A bucket, queue, topic (`region`: where; `None` for a queue or topic takes the first
    /// region holding that name) or customer-managed policy, by account and name.
    pub fn resource(
        &self,
        account_id: &str,
        kind: ResourceKind,
        region: Option<&str>,
        name: &str,
    ) -> Option<(Arc<Account>, Resource)> {
        let accounts = self.snapshots();
        let account = accounts[position(&accounts, account_id).ok()?].clone();
        let found = match kind {
            ResourceKind::ManagedPolicy => {
                account
                    .get(&ResourceKey::new(kind, name))
                    .and_then(|i| match i {
                        Item::Policy(p) => Some(Resource::Policy(p.as_ref().clone())),
                        _ => None,
                    })
            }
            ResourceKind::S3 => account
                .service(&ResourceKey::new(kind, name))
                .filter(|r| region.is_none_or(|g| g == r.region))
                .map(|r| Resource::Service(r.as_ref().clone())),
            ResourceKind::Sqs | ResourceKind::Sns => match region {
                Some(g) => account.service(&ResourceKey::service(kind, g, name)),
                None => account
                    .services
                    .iter()
                    .find(|r| r.kind == kind && r.name == name),
            }
            .map(|r| Resource::Service(r.as_ref().clone())),
            ResourceKind::Role | ResourceKind::User => account
                .principal(kind, name)
                .map(|p| Resource::Principal(p.as_ref().clone())),
        }?;
        Some((account, found))
    }

    /// ARNs of the synced buckets, queues or topics whose ARN contains `text` (case-insensitive),
    /// optionally of one service, account and region, at most `limit`, by account then name:
    /// what the self-service wizard suggests as the user types.
    pub fn typeahead(
        &self,
        text: &str,
        kind: Option<ResourceKind>,
        account_id: Option<&str>,
        region: Option<&str>,
        limit: usize,
    ) -> Vec<String> {
        let text = text.trim().to_ascii_lowercase();
        let finder = memchr::memmem::Finder::new(text.as_bytes());
        let accounts = self.snapshots();
        accounts
            .iter()
            .filter(|a| account_id.is_none_or(|id| id == a.account_id))
            .flat_map(|a| a.services.iter())
            .filter(|r| kind.is_none_or(|k| k == r.kind))
            .filter(|r| region.is_none_or(|g| g == r.region))
            .filter(|r| {
                text.is_empty() || finder.find(r.arn.to_ascii_lowercase().as_bytes()).is_some()
            })
            .take(limit)
            .map(|r| r.arn.clone())
            .collect()
    }
}

fn position(accounts: &[Arc<Account>], account_id: &str) -> Result<usize, usize> {
    accounts.binary_search_by(|a| a.account_id.as_str().cmp(account_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::demo;
    use crate::resources::model::Resource;

    fn loaded() -> Resources {
        let r = Resources::new(vec![
            ("111122223333".into(), "demo-prod".into()),
            ("444455556666".into(), "demo-staging".into()),
        ]);
        let a = Account::from_snapshot(demo::account("111122223333", "stored-name"), 3);
        assert_eq!(r.update(vec![Update::Full(a)], false), [Outcome::Applied]);
        r
    }

    #[test]
    fn deltas_apply_only_on_the_generation_they_were_made_from() {
        let r = loaded();
        assert_eq!(r.accounts()[0].1, "demo-prod", "the configured name wins");
        let (_, mut role) = r.role("111122223333", "payments-api").expect("role");
        role.tags.push(crate::resources::model::Tag {
            key: "owner".into(),
            value: "x".into(),
        });
        let key = ResourceKey::role("payments-api");
        let delta = |from, to| Update::Delta {
            account_id: "111122223333".into(),
            from,
            to,
            items: vec![(key.clone(), Some(Resource::Principal(role.clone())))],
        };
        assert_eq!(r.update(vec![delta(2, 4)], false), [Outcome::Gap]);
        assert_eq!(r.update(vec![delta(3, 4)], false), [Outcome::Applied]);
        assert_eq!(r.account_generation("111122223333"), Some(4));
        assert_eq!(r.update(vec![delta(3, 4)], false), [Outcome::Stale]);
        let (_, now) = r.role("111122223333", "PAYMENTS-API").expect("role");
        assert!(now.tag("owner").is_some());
        // An account that is not loaded cannot take a delta; one that is not configured is
        // never loaded.
        let other = Update::Delta {
            account_id: "444455556666".into(),
            from: 0,
            to: 1,
            items: vec![],
        };
        assert_eq!(r.update(vec![other], false), [Outcome::Gap]);
        let stranger = Account::from_snapshot(demo::account("999999999999", "x"), 1);
        assert_eq!(
            r.update(vec![Update::Full(stranger)], false),
            [Outcome::Stale]
        );
        // An older full copy never replaces a newer one.
        let old = Account::from_snapshot(demo::account("111122223333", "x"), 2);
        assert_eq!(r.update(vec![Update::Full(old)], false), [Outcome::Stale]);
    }

    #[test]
    fn removing_a_role_takes_it_out_of_the_index() {
        let r = loaded();
        let before = r.index().len();
        let delta = Update::Delta {
            account_id: "111122223333".into(),
            from: 3,
            to: 4,
            items: vec![(ResourceKey::role("payments-api"), None)],
        };
        assert_eq!(r.update(vec![delta], false), [Outcome::Applied]);
        assert!(r.role("111122223333", "payments-api").is_none());
        assert_eq!(r.index().len(), before - 1);
        assert_eq!(r.generation(), 4);
    }
}
