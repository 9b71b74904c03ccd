//! One synced account as this replica holds it in memory: its resources behind `Arc`s, sorted by
//! key, so that changing one role copies pointers, not roles.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::model::{
    AccountSnapshot, ManagedPolicy, Principal, Resource, ResourceKey, ResourceKind, ServiceResource,
};

/// One resource in memory.
#[derive(Debug, Clone)]
pub enum Item {
    Principal(Arc<Principal>),
    Policy(Arc<ManagedPolicy>),
    Service(Arc<ServiceResource>),
}

impl Item {
    pub fn key(&self) -> ResourceKey {
        match self {
            Item::Principal(p) => ResourceKey::new(p.kind, &p.name),
            Item::Policy(p) => ResourceKey::new(ResourceKind::ManagedPolicy, &p.name),
            Item::Service(r) => r.key(),
        }
    }
}

impl From<Resource> for Item {
    fn from(r: Resource) -> Self {
        match r {
            Resource::Principal(p) => Item::Principal(Arc::new(p)),
            Resource::Policy(p) => Item::Policy(Arc::new(p)),
            Resource::Service(r) => Item::Service(Arc::new(r)),
        }
    }
}

/// One resource that changed: how it was and how it is (`None`: absent).
#[derive(Debug, Clone)]
pub struct Changed {
    pub account_id: String,
    pub key: ResourceKey,
    pub old: Option<Item>,
    pub new: Option<Item>,
}

#[derive(Debug, Clone, Default)]
pub struct Account {
    pub account_id: String,
    pub account_name: String,
    /// When a sync last read the account.
    pub synced_at: Option<DateTime<Utc>>,
    /// The Store generation of the account this copy reflects (`resources::stored`).
    pub generation: u64,
    /// Roles and users, ordered by kind then lower-case name.
    pub principals: Vec<Arc<Principal>>,
    /// Customer-managed policies, ordered by lower-case name.
    pub policies: Vec<Arc<ManagedPolicy>>,
    /// Buckets, queues and topics, ordered by key.
    pub services: Vec<Arc<ServiceResource>>,
}

/// `a` lower-cased compared with `b` (already lower case), without allocating.
fn cmp_lower(a: &str, b: &str) -> Ordering {
    a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes())
}

impl Account {
    pub fn new(
        account_id: &str,
        account_name: &str,
        synced_at: Option<DateTime<Utc>>,
        generation: u64,
        resources: impl IntoIterator<Item = Resource>,
    ) -> Account {
        let mut account = Account {
            account_id: account_id.to_string(),
            account_name: account_name.to_string(),
            synced_at,
            generation,
            ..Default::default()
        };
        for r in resources {
            match Item::from(r) {
                Item::Principal(p) => account.principals.push(p),
                Item::Policy(p) => account.policies.push(p),
                Item::Service(r) => account.services.push(r),
            }
        }
        account.services.sort_by_key(|r| r.key());
        account
            .principals
            .sort_by_key(|p| ResourceKey::new(p.kind, &p.name));
        account
            .policies
            .sort_by_key(|p| p.name.to_ascii_lowercase());
        account
    }

    /// An account straight from a Cloud read (tests, benchmarks, the sandbox).
    pub fn from_snapshot(snapshot: AccountSnapshot, generation: u64) -> Account {
        let (id, name, at) = (
            snapshot.account_id.clone(),
            snapshot.account_name.clone(),
            snapshot.synced_at,
        );
        Account::new(&id, &name, at, generation, snapshot.into_resources())
    }

    fn principal_at(&self, kind: ResourceKind, name: &str) -> Result<usize, usize> {
        self.principals
            .binary_search_by(|p| p.kind.cmp(&kind).then_with(|| cmp_lower(&p.name, name)))
    }

    fn policy_at(&self, name: &str) -> Result<usize, usize> {
        self.policies.binary_search_by(|p| cmp_lower(&p.name, name))
    }

    /// A role or user by name, whatever its case.
    pub fn principal(&self, kind: ResourceKind, name: &str) -> Option<&Arc<Principal>> {
        let name = name.to_ascii_lowercase();
        self.principal_at(kind, &name)
            .ok()
            .map(|i| &self.principals[i])
    }

    fn service_at(&self, key: &ResourceKey) -> Result<usize, usize> {
        self.services.binary_search_by(|r| r.key().cmp(key))
    }

    /// A bucket (by name), queue or topic (by `region/name`).
    pub fn service(&self, key: &ResourceKey) -> Option<&Arc<ServiceResource>> {
        self.service_at(key).ok().map(|i| &self.services[i])
    }

    pub fn policy_by_arn(&self, arn: &str) -> Option<&Arc<ManagedPolicy>> {
        self.policies.iter().find(|p| p.arn == arn)
    }

    pub fn get(&self, key: &ResourceKey) -> Option<Item> {
        match key.kind {
            ResourceKind::ManagedPolicy => self
                .policy_at(&key.name)
                .ok()
                .map(|i| Item::Policy(self.policies[i].clone())),
            ResourceKind::S3 | ResourceKind::Sqs | ResourceKind::Sns => self
                .service_at(key)
                .ok()
                .map(|i| Item::Service(self.services[i].clone())),
            kind => self
                .principal_at(kind, &key.name)
                .ok()
                .map(|i| Item::Principal(self.principals[i].clone())),
        }
    }

    /// Put `item` under `key` (`None` removes it); returns what was there.
    pub fn set(&mut self, key: &ResourceKey, item: Option<Item>) -> Option<Item> {
        fn put<T>(
            list: &mut Vec<Arc<T>>,
            at: Result<usize, usize>,
            new: Option<Arc<T>>,
        ) -> Option<Arc<T>> {
            match (at, new) {
                (Ok(i), Some(n)) => Some(std::mem::replace(&mut list[i], n)),
                (Ok(i), None) => Some(list.remove(i)),
                (Err(i), Some(n)) => {
                    list.insert(i, n);
                    None
                }
                (Err(_), None) => None,
            }
        }
        match key.kind {
            ResourceKind::ManagedPolicy => {
                let at = self.policy_at(&key.name);
                let new = match item {
                    Some(Item::Policy(p)) => Some(p),
                    _ => None,
                };
                put(&mut self.policies, at, new).map(Item::Policy)
            }
            ResourceKind::S3 | ResourceKind::Sqs | ResourceKind::Sns => {
                let at = self.service_at(key);
                let new = match item {
                    Some(Item::Service(r)) => Some(r),
                    _ => None,
                };
                put(&mut self.services, at, new).map(Item::Service)
            }
            kind => {
                let at = self.principal_at(kind, &key.name);
                let new = match item {
                    Some(Item::Principal(p)) => Some(p),
                    _ => None,
                };
                put(&mut self.principals, at, new).map(Item::Principal)
            }
        }
    }

    /// Every resource's key and content hash ([`Resource::content_hash`]), as a sync compares
    /// them (`src/resources/sync.rs::store_account_known`).
    pub fn hashes(&self) -> impl Iterator<Item = (ResourceKey, String)> + '_ {
        let principals = self
            .principals
            .iter()
            .map(|p| Resource::Principal(Principal::clone(p)));
        let policies = self
            .policies
            .iter()
            .map(|p| Resource::Policy(ManagedPolicy::clone(p)));
        let services = self
            .services
            .iter()
            .map(|r| Resource::Service(ServiceResource::clone(r)));
        principals
            .chain(policies)
            .chain(services)
            .map(|r| (r.key(), r.content_hash()))
    }

    pub fn count(&self, kind: ResourceKind) -> usize {
        match kind {
            ResourceKind::ManagedPolicy => self.policies.len(),
            ResourceKind::S3 | ResourceKind::Sqs | ResourceKind::Sns => {
                self.services.iter().filter(|r| r.kind == kind).count()
            }
            kind => self.principals.iter().filter(|p| p.kind == kind).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::demo;

    #[test]
    fn set_inserts_replaces_and_removes_in_key_order() {
        let snap = demo::account("111122223333", "demo");
        let roles = snap.principals.len();
        let mut a = Account::from_snapshot(snap, 1);
        let keys: Vec<ResourceKey> = a
            .principals
            .iter()
            .map(|p| ResourceKey::new(p.kind, &p.name))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);

        let mut p = (*a.principals[0]).clone();
        p.name = "AAA-New".into();
        let key = ResourceKey::role("aaa-new");
        assert!(a.set(&key, Some(Item::Principal(Arc::new(p)))).is_none());
        assert_eq!(a.principals.len(), roles + 1);
        assert!(a.principal(ResourceKind::Role, "aaa-NEW").is_some());
        assert!(matches!(a.get(&key), Some(Item::Principal(p)) if p.name == "AAA-New"));
        assert!(a.set(&key, None).is_some());
        assert!(a.get(&key).is_none());
        assert_eq!(a.principals.len(), roles);
        assert!(a.set(&key, None).is_none());
    }
}
