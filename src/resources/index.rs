//! In-memory search index over every synced principal and managed policy.
//!
//! A query is a single linear pass over pre-lowercased haystacks (memchr's SIMD substring search)
//! plus an integer-set check for actions; entries are kept in three sorted lists (by name, by
//! account, by kind) so results never need sorting per query. 100k roles stay well under 20 ms
//! per query on 2 cores (`scripts/bench-search`).
//!
//! A sync builds the index whole ([`SearchIndex::build`]); an approval changes a few roles, and
//! [`SearchIndex::apply`] replaces just their entries (entries are shared `Arc`s, so the copy a
//! writer makes beside the one readers use costs pointers, not entries). Both give the same
//! answers (tested below).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use memchr::memmem;
use serde::Serialize;

use super::account::{Account, Changed, Item};
use super::model::{
    ManagedPolicy, Principal, ResourceKey, ResourceKind, ServiceResource, action_matches,
    actions_in, principals_in,
};

/// What a search returns for one resource: enough for a results table.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kind: ResourceKind,
    pub account_id: String,
    pub account_name: String,
    pub name: String,
    pub arn: String,
    pub inline_policies: usize,
    pub managed_policies: usize,
    pub tags: usize,
    /// Queues and topics (and buckets): where they live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Buckets, queues and topics: the principals their policy names (who is granted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
}

struct Entry {
    summary: Summary,
    /// [`ResourceKey::name`]: tells apart two queues of one name in two regions.
    key_name: String,
    /// Lowercased `name arn account_id account_name key=value...`, one search target.
    haystack: String,
    /// Lowercased `key=value` tag pairs.
    tags: Vec<(String, String)>,
    /// Sorted ids of the action patterns this resource's policies mention.
    actions: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Name,
    Account,
    Kind,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "name" => Some(Sort::Name),
            "account" => Some(Sort::Account),
            "type" | "kind" => Some(Sort::Kind),
            _ => None,
        }
    }
}

/// A search. Every present criterion must match (AND).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Free text: substring of name, ARN, account id or name, or a tag; when it looks like an
    /// action (`s3:GetObject`) resources whose policies allow it match too.
    pub text: Option<String>,
    /// Account id or name, exact.
    pub account: Option<String>,
    pub kind: Option<ResourceKind>,
    /// An IAM action, matched against the policies' patterns (`s3:Get*` allows `s3:GetObject`).
    pub action: Option<String>,
    /// `key` or `key=value`, exact (case-insensitive).
    pub tag: Option<String>,
    pub sort: Sort,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub items: Vec<Summary>,
}

#[derive(Default, Clone)]
pub struct SearchIndex {
    /// Ordered by [`by_name`].
    entries: Vec<Arc<Entry>>,
    /// The same entries ordered by [`by_account`] and by [`by_kind`].
    by_account: Vec<Arc<Entry>>,
    by_kind: Vec<Arc<Entry>>,
    /// Per ordered list (name, account, kind), built by the first search after a change: the
    /// entries' text, kind and account laid out contiguously ([`Columns`]).
    columns: [OnceLock<Arc<Columns>>; 3],
    /// Interned lowercased action patterns (only ever appended to).
    patterns: Vec<String>,
    interner: HashMap<String, u32>,
    /// Sync generation this index reflects.
    pub generation: u64,
}

/// One ordered list's search columns, in list order, so that a scan reads memory in sequence
/// instead of following two pointers per entry (150k entries at 100k roles + 50k buckets,
/// queues and topics: `scripts/bench-search`). Text is found with one SIMD pass over every
/// haystack at once; kind and account are checked without touching the entry; only entries
/// that pass those are read for tags and actions.
struct Columns {
    /// Every haystack in list order, each followed by `\n`; `None` when a haystack holds a
    /// `\n` itself or the whole exceeds `u32` offsets (then each entry is searched on its own).
    text: Option<Vec<u8>>,
    /// Where each entry's haystack starts in `text`, and one more: its length.
    starts: Vec<u32>,
    kinds: Vec<ResourceKind>,
    /// Index into `accounts`.
    account: Vec<u32>,
    /// Distinct (account id, account name).
    accounts: Vec<(String, String)>,
}

impl Columns {
    fn build(list: &[Arc<Entry>]) -> Columns {
        let mut text = Vec::with_capacity(list.iter().map(|e| e.haystack.len() + 1).sum());
        let mut starts = Vec::with_capacity(list.len() + 1);
        let mut kinds = Vec::with_capacity(list.len());
        let mut account = Vec::with_capacity(list.len());
        let mut accounts: Vec<(String, String)> = vec![];
        let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
        let mut text_ok = true;
        for e in list {
            match u32::try_from(text.len()) {
                Ok(at) => starts.push(at),
                Err(_) => text_ok = false,
            }
            text_ok &= !e.haystack.contains('\n');
            if text_ok {
                text.extend_from_slice(e.haystack.as_bytes());
                text.push(b'\n');
            }
            kinds.push(e.summary.kind);
            let key = (
                e.summary.account_id.as_str(),
                e.summary.account_name.as_str(),
            );
            let id = *seen.entry(key).or_insert_with(|| {
                accounts.push((key.0.to_string(), key.1.to_string()));
                u32::try_from(accounts.len() - 1).unwrap_or(u32::MAX)
            });
            account.push(id);
        }
        match u32::try_from(text.len()) {
            Ok(end) if text_ok => starts.push(end),
            _ => text_ok = false,
        }
        Columns {
            text: text_ok.then_some(text),
            starts,
            kinds,
            account,
            accounts,
        }
    }

    /// Positions (bit per entry) whose haystack contains the needle of `finder`; `None` when the
    /// columns hold no text or the needle holds a `\n` (a match could then span two entries).
    fn text_hits(&self, finder: &memmem::Finder<'_>) -> Option<Vec<u64>> {
        let text = self.text.as_deref()?;
        if finder.needle().contains(&b'\n') {
            return None;
        }
        let mut hits = vec![0u64; self.kinds.len().div_ceil(64)];
        let mut from = 0usize;
        while from < text.len() {
            let Some(at) = finder.find(&text[from..]) else {
                break;
            };
            let at = from + at;
            // The entry holding `at`: the last start at or before it (`starts[0]` is 0).
            let i = self.starts.partition_point(|&s| s as usize <= at) - 1;
            hits[i / 64] |= 1 << (i % 64);
            // One hit per entry is enough: go on from the next entry.
            from = self.starts[i + 1] as usize;
        }
        Some(hits)
    }
}

fn looks_like_action(s: &str) -> bool {
    let Some((service, action)) = s.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && !action.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
}

/// Name (ignoring case), then account id, then kind: a total order, as an account never holds
/// two resources of one kind whose names differ only in case.
fn by_name(a: &Entry, b: &Entry) -> Ordering {
    cmp_names(&a.summary.name, &b.summary.name)
        .then_with(|| a.summary.account_id.cmp(&b.summary.account_id))
        .then_with(|| a.summary.kind.cmp(&b.summary.kind))
        .then_with(|| a.key_name.cmp(&b.key_name))
}

fn by_account(a: &Entry, b: &Entry) -> Ordering {
    a.summary
        .account_name
        .cmp(&b.summary.account_name)
        .then_with(|| by_name(a, b))
}

fn by_kind(a: &Entry, b: &Entry) -> Ordering {
    a.summary
        .kind
        .as_str()
        .cmp(b.summary.kind.as_str())
        .then_with(|| by_name(a, b))
}

fn cmp_names(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Where `e` sits relative to the resource `key` of `account_id`.
fn identity(e: &Entry, key: &ResourceKey, account_id: &str) -> Ordering {
    // Queues and topics are keyed `region/name`; they are shown and ordered by name.
    let name = match key.kind {
        ResourceKind::Sqs | ResourceKind::Sns => key
            .name
            .split_once('/')
            .map_or(key.name.as_str(), |(_, n)| n),
        _ => key.name.as_str(),
    };
    cmp_names(&e.summary.name, name)
        .then_with(|| e.summary.account_id.as_str().cmp(account_id))
        .then_with(|| e.summary.kind.cmp(&key.kind))
        .then_with(|| e.key_name.as_str().cmp(&key.name))
}

impl SearchIndex {
    pub fn build(accounts: &[Arc<Account>], generation: u64) -> SearchIndex {
        let mut index = SearchIndex {
            generation,
            ..Default::default()
        };
        let mut entries = vec![];
        for account in accounts {
            let docs: HashMap<&str, &ManagedPolicy> = account
                .policies
                .iter()
                .map(|p| (p.arn.as_str(), p.as_ref()))
                .collect();
            for p in &account.principals {
                entries.push(Arc::new(index.principal_entry(account, p, |arn| {
                    docs.get(arn).map(|d| &d.document)
                })));
            }
            for mp in &account.policies {
                entries.push(Arc::new(index.policy_entry(account, mp)));
            }
            for r in &account.services {
                entries.push(Arc::new(index.service_entry(account, r)));
            }
        }
        entries.sort_by(|a, b| by_name(a, b));
        index.by_account = entries.clone();
        index.by_account.sort_by(|a, b| by_account(a, b));
        index.by_kind = entries.clone();
        index.by_kind.sort_by(|a, b| by_kind(a, b));
        index.entries = entries;
        index
    }

    /// Bring the entries of the `changes` (already made in `accounts`) up to date, and those of
    /// the principals that attach a changed managed policy. The result answers every query as
    /// [`build`](Self::build) over `accounts` would.
    pub fn apply(&mut self, accounts: &[Arc<Account>], changes: &[Changed], generation: u64) {
        let account = |id: &str| {
            accounts
                .binary_search_by(|a| a.account_id.as_str().cmp(id))
                .ok()
                .map(|i| &accounts[i])
        };
        let mut affected: BTreeSet<(String, ResourceKey)> = BTreeSet::new();
        for c in changes {
            affected.insert((c.account_id.clone(), c.key.clone()));
            if c.key.kind != ResourceKind::ManagedPolicy {
                continue;
            }
            // A principal's entry holds the actions of the managed policies it attaches.
            let arns: Vec<&str> = [&c.old, &c.new]
                .into_iter()
                .filter_map(|i| match i {
                    Some(Item::Policy(p)) => Some(p.arn.as_str()),
                    _ => None,
                })
                .collect();
            if let Some(a) = account(&c.account_id) {
                for p in &a.principals {
                    if p.managed_policies
                        .iter()
                        .any(|m| arns.contains(&m.arn.as_str()))
                    {
                        affected.insert((c.account_id.clone(), ResourceKey::new(p.kind, &p.name)));
                    }
                }
            }
        }
        for (account_id, key) in affected {
            self.remove(&account_id, &key);
            let Some(a) = account(&account_id) else {
                continue;
            };
            let entry = match a.get(&key) {
                Some(Item::Principal(p)) => {
                    self.principal_entry(a, &p, |arn| a.policy_by_arn(arn).map(|d| &d.document))
                }
                Some(Item::Policy(mp)) => self.policy_entry(a, &mp),
                Some(Item::Service(r)) => self.service_entry(a, &r),
                None => continue,
            };
            self.insert(Arc::new(entry));
        }
        self.generation = generation;
        self.columns = Default::default();
    }

    fn remove(&mut self, account_id: &str, key: &ResourceKey) {
        let Ok(i) = self
            .entries
            .binary_search_by(|e| identity(e, key, account_id))
        else {
            return;
        };
        let gone = self.entries.remove(i);
        for (list, order) in [
            (
                &mut self.by_account,
                by_account as fn(&Entry, &Entry) -> Ordering,
            ),
            (&mut self.by_kind, by_kind),
        ] {
            if let Ok(i) = list.binary_search_by(|e| order(e, &gone)) {
                list.remove(i);
            }
        }
    }

    fn insert(&mut self, entry: Arc<Entry>) {
        for (list, order) in [
            (&mut self.entries, by_name as fn(&Entry, &Entry) -> Ordering),
            (&mut self.by_account, by_account),
            (&mut self.by_kind, by_kind),
        ] {
            let at = list
                .binary_search_by(|e| order(e, &entry))
                .unwrap_or_else(|at| at);
            list.insert(at, entry.clone());
        }
    }

    fn intern(&mut self, pattern: &str) -> u32 {
        let key = pattern.to_ascii_lowercase();
        if let Some(id) = self.interner.get(&key) {
            return *id;
        }
        let id = u32::try_from(self.patterns.len()).unwrap_or(u32::MAX);
        self.patterns.push(key.clone());
        self.interner.insert(key, id);
        id
    }

    fn principal_entry<'a>(
        &mut self,
        account: &Account,
        p: &Principal,
        managed_document: impl Fn(&str) -> Option<&'a serde_json::Value>,
    ) -> Entry {
        let mut acts = vec![];
        for ip in &p.inline_policies {
            actions_in(&ip.document, &mut acts);
        }
        for mp in &p.managed_policies {
            if let Some(doc) = managed_document(&mp.arn) {
                actions_in(doc, &mut acts);
            }
        }
        let ids = acts.iter().map(|a| self.intern(a)).collect();
        principal_entry(account, p, ids)
    }

    fn policy_entry(&mut self, account: &Account, mp: &ManagedPolicy) -> Entry {
        let mut acts = vec![];
        actions_in(&mp.document, &mut acts);
        let ids = acts.iter().map(|a| self.intern(a)).collect();
        policy_entry(account, mp, ids)
    }

    fn service_entry(&mut self, account: &Account, r: &ServiceResource) -> Entry {
        let mut acts = vec![];
        if let Some(policy) = &r.policy {
            actions_in(policy, &mut acts);
        }
        let ids = acts.iter().map(|a| self.intern(a)).collect();
        service_entry(account, r, ids)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rough heap size in bytes, for the benchmark report.
    pub fn approx_bytes(&self) -> usize {
        let per_entry: usize = self
            .entries
            .iter()
            .map(|e| {
                std::mem::size_of::<Entry>()
                    + e.haystack.capacity()
                    + e.summary.name.capacity()
                    + e.summary.arn.capacity()
                    + e.summary.account_id.capacity()
                    + e.summary.account_name.capacity()
                    + e.tags
                        .iter()
                        .map(|(k, v)| k.capacity() + v.capacity() + 48)
                        .sum::<usize>()
                    + e.actions.capacity() * 4
            })
            .sum();
        per_entry
            + self
                .patterns
                .iter()
                .map(|p| p.capacity() + 24)
                .sum::<usize>()
            + (self.entries.capacity() + self.by_account.capacity() + self.by_kind.capacity()) * 8
            + self.entries.len() * 16
    }

    /// The ids of every pattern that allows `action`.
    fn patterns_allowing(&self, action: &str) -> Vec<u32> {
        self.patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| action_matches(p, action))
            .map(|(i, _)| i as u32)
            .collect()
    }

    pub fn search(&self, q: &Query) -> SearchResult {
        let text = q
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_ascii_lowercase);
        let finder = text
            .as_deref()
            .map(|t| memmem::Finder::new(t.as_bytes()).into_owned());
        let text_actions = text
            .as_deref()
            .filter(|t| looks_like_action(t))
            .map(|t| self.patterns_allowing(t))
            .unwrap_or_default();
        let action_ids = q
            .action
            .as_deref()
            .map(|a| self.patterns_allowing(a.trim()));
        let account = q
            .account
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        let tag = q.tag.as_deref().map(|t| {
            let t = t.trim().to_ascii_lowercase();
            match t.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (t, None),
            }
        });

        let has = |e: &Entry, ids: &[u32]| ids.iter().any(|id| e.actions.binary_search(id).is_ok());
        // What only the entry itself can tell: tags and actions.
        let entry_matches = |e: &Entry| -> bool {
            if let Some((k, v)) = &tag
                && !e
                    .tags
                    .iter()
                    .any(|(tk, tv)| tk == k && v.as_ref().is_none_or(|v| v == tv))
            {
                return false;
            }
            if let Some(ids) = &action_ids
                && !has(e, ids)
            {
                return false;
            }
            true
        };

        let limit = q.limit.clamp(1, 500);
        let (list, order) = match q.sort {
            Sort::Name => (&self.entries, 0),
            Sort::Account => (&self.by_account, 1),
            Sort::Kind => (&self.by_kind, 2),
        };
        let unfiltered = text.is_none()
            && action_ids.is_none()
            && account.is_none()
            && tag.is_none()
            && q.kind.is_none();
        if unfiltered {
            // Everything matches: the page is a slice of the ordered list.
            let items = list
                .iter()
                .skip(q.offset)
                .take(limit)
                .map(|e| e.summary.clone())
                .collect();
            return SearchResult {
                total: list.len(),
                items,
            };
        }
        let columns = self.columns[order].get_or_init(|| Arc::new(Columns::build(list)));
        let hits = finder.as_ref().and_then(|f| columns.text_hits(f));
        let accounts_ok: Option<Vec<bool>> = account.map(|a| {
            columns
                .accounts
                .iter()
                .map(|(id, name)| a == id || a.eq_ignore_ascii_case(name))
                .collect()
        });
        let mut total = 0;
        let mut items = Vec::with_capacity(limit);
        for (i, e) in list.iter().enumerate() {
            if q.kind.is_some_and(|k| k != columns.kinds[i]) {
                continue;
            }
            if let Some(ok) = &accounts_ok
                && !ok[columns.account[i] as usize]
            {
                continue;
            }
            let text_ok = match (&finder, &hits) {
                (None, _) => true,
                (Some(_), Some(hits)) => hits[i / 64] >> (i % 64) & 1 == 1 || has(e, &text_actions),
                (Some(f), None) => f.find(e.haystack.as_bytes()).is_some() || has(e, &text_actions),
            };
            if !text_ok || !entry_matches(e) {
                continue;
            }
            if total >= q.offset && items.len() < limit {
                items.push(e.summary.clone());
            }
            total += 1;
        }
        SearchResult { total, items }
    }
}

fn lower_tags(tags: &[super::model::Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key.to_ascii_lowercase(), t.value.to_ascii_lowercase()))
        .collect()
}

fn haystack(parts: &[&str], tags: &[(String, String)]) -> String {
    let mut h = parts.join(" ").to_ascii_lowercase();
    for (k, v) in tags {
        h.push(' ');
        h.push_str(k);
        h.push('=');
        h.push_str(v);
    }
    h
}

fn dedup(mut ids: Vec<u32>) -> Vec<u32> {
    ids.sort_unstable();
    ids.dedup();
    ids.shrink_to_fit();
    ids
}

fn principal_entry(snap: &Account, p: &Principal, actions: Vec<u32>) -> Entry {
    let tags = lower_tags(&p.tags);
    Entry {
        haystack: haystack(
            &[&p.name, &p.arn, &snap.account_id, &snap.account_name],
            &tags,
        ),
        key_name: ResourceKey::new(p.kind, &p.name).name,
        tags,
        actions: dedup(actions),
        summary: Summary {
            kind: p.kind,
            account_id: snap.account_id.clone(),
            account_name: snap.account_name.clone(),
            name: p.name.clone(),
            arn: p.arn.clone(),
            inline_policies: p.inline_policies.len(),
            managed_policies: p.managed_policies.len(),
            tags: p.tags.len(),
            region: None,
            principals: vec![],
        },
    }
}

fn service_entry(snap: &Account, r: &ServiceResource, actions: Vec<u32>) -> Entry {
    let tags = lower_tags(&r.tags);
    let mut principals = vec![];
    if let Some(policy) = &r.policy {
        principals_in(policy, &mut principals);
    }
    principals.sort();
    principals.dedup();
    let mut parts = vec![
        r.name.as_str(),
        &r.arn,
        &r.region,
        &snap.account_id,
        &snap.account_name,
    ];
    parts.extend(principals.iter().map(String::as_str));
    Entry {
        haystack: haystack(&parts, &tags),
        key_name: r.key().name,
        tags,
        actions: dedup(actions),
        summary: Summary {
            kind: r.kind,
            account_id: snap.account_id.clone(),
            account_name: snap.account_name.clone(),
            name: r.name.clone(),
            arn: r.arn.clone(),
            inline_policies: 0,
            managed_policies: 0,
            tags: r.tags.len(),
            region: Some(r.region.clone()),
            principals,
        },
    }
}

fn policy_entry(snap: &Account, mp: &ManagedPolicy, actions: Vec<u32>) -> Entry {
    Entry {
        key_name: ResourceKey::new(ResourceKind::ManagedPolicy, &mp.name).name,
        haystack: haystack(
            &[&mp.name, &mp.arn, &snap.account_id, &snap.account_name],
            &[],
        ),
        tags: vec![],
        actions: dedup(actions),
        summary: Summary {
            kind: ResourceKind::ManagedPolicy,
            account_id: snap.account_id.clone(),
            account_name: snap.account_name.clone(),
            name: mp.name.clone(),
            arn: mp.arn.clone(),
            inline_policies: 0,
            managed_policies: 0,
            tags: 0,
            region: None,
            principals: vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{AccountSnapshot, AttachedPolicy, InlinePolicy, Resource, Tag};
    use super::*;
    use serde_json::json;

    fn role(account: &str, name: &str, actions: &[&str], tags: &[(&str, &str)]) -> Principal {
        Principal {
            kind: ResourceKind::Role,
            account_id: account.into(),
            name: name.into(),
            arn: format!("arn:aws:iam::{account}:role/{name}"),
            path: "/".into(),
            id: format!("AROA{name}"),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: None,
            trust_policy: None,
            inline_policies: vec![InlinePolicy {
                name: "inline".into(),
                document: json!({"Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}),
            }],
            managed_policies: vec![],
            permissions_boundary: None,
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
        }
    }

    fn index() -> SearchIndex {
        let mut a = AccountSnapshot {
            account_id: "111111111111".into(),
            account_name: "prod".into(),
            ..Default::default()
        };
        a.principals.push(role(
            "111111111111",
            "billing-reader",
            &["s3:Get*"],
            &[("team", "billing")],
        ));
        a.principals
            .push(role("111111111111", "admin", &["*"], &[]));
        let mut with_managed = role("111111111111", "queue-worker", &["sqs:ReceiveMessage"], &[]);
        with_managed.managed_policies.push(AttachedPolicy {
            name: "kms-use".into(),
            arn: "arn:aws:iam::111111111111:policy/kms-use".into(),
        });
        a.principals.push(with_managed);
        a.policies.push(ManagedPolicy {
            account_id: "111111111111".into(),
            name: "kms-use".into(),
            arn: "arn:aws:iam::111111111111:policy/kms-use".into(),
            path: "/".into(),
            description: None,
            attachment_count: 1,
            document: json!({"Statement": {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}}),
            versions: vec![],
            attached_to: vec![],
        });
        let mut b = AccountSnapshot {
            account_id: "222222222222".into(),
            account_name: "staging".into(),
            ..Default::default()
        };
        b.principals.push(role(
            "222222222222",
            "billing-reader",
            &["s3:PutObject"],
            &[],
        ));
        SearchIndex::build(
            &[
                Arc::new(Account::from_snapshot(a, 1)),
                Arc::new(Account::from_snapshot(b, 1)),
            ],
            1,
        )
    }

    fn names(r: &SearchResult) -> Vec<String> {
        r.items
            .iter()
            .map(|s| format!("{}/{}", s.account_name, s.name))
            .collect()
    }

    /// The one-pass text search over the columns finds exactly the entries whose haystack holds
    /// the text (once each, consecutive ones too); haystacks holding a line break are searched
    /// entry by entry, with the same answers.
    #[test]
    fn text_search_over_the_columns_finds_what_each_haystack_holds() {
        let holding = |idx: &SearchIndex, t: &str| {
            idx.entries
                .iter()
                .filter(|e| e.haystack.contains(t))
                .count()
        };
        let total = |idx: &SearchIndex, t: &str| {
            idx.search(&Query {
                text: Some(t.into()),
                limit: 500,
                ..Default::default()
            })
            .total
        };
        let idx = index();
        for t in [
            "billing",
            "prod",
            "111111111111",
            "reader",
            "r",
            "arn:aws:iam::",
            "team=billing",
            "zzz",
        ] {
            assert_eq!(total(&idx, t), holding(&idx, t), "{t}");
        }
        let mut a = AccountSnapshot {
            account_id: "333333333333".into(),
            account_name: "dev".into(),
            ..Default::default()
        };
        a.principals.push(role(
            "333333333333",
            "note-holder",
            &["s3:Get*"],
            &[("note", "two\nlines")],
        ));
        a.principals
            .push(role("333333333333", "billing-two", &["s3:Get*"], &[]));
        let broken = SearchIndex::build(&[Arc::new(Account::from_snapshot(a, 1))], 1);
        assert!(Columns::build(&broken.entries).text.is_none());
        for t in ["two", "billing", "lines", "o\nl"] {
            assert_eq!(total(&broken, t), holding(&broken, t), "{t}");
        }
        assert_eq!(total(&broken, "two"), 2);
    }

    #[test]
    fn text_matches_name_arn_account_and_tags() {
        let idx = index();
        let q = |t: &str| {
            idx.search(&Query {
                text: Some(t.into()),
                limit: 50,
                ..Default::default()
            })
        };
        assert_eq!(
            names(&q("BILLING-reader")),
            ["prod/billing-reader", "staging/billing-reader"]
        );
        assert_eq!(q("222222222222").total, 1);
        assert_eq!(q("staging").total, 1);
        assert_eq!(names(&q("team=billing")), ["prod/billing-reader"]);
        assert_eq!(q("nothing-like-this").total, 0);
    }

    #[test]
    fn actions_match_through_wildcards_and_managed_policies() {
        let idx = index();
        let q = |a: &str| {
            idx.search(&Query {
                action: Some(a.into()),
                kind: Some(ResourceKind::Role),
                limit: 50,
                ..Default::default()
            })
        };
        assert_eq!(
            names(&q("s3:GetObject")),
            ["prod/admin", "prod/billing-reader"]
        );
        assert_eq!(
            names(&q("kms:Decrypt")),
            ["prod/admin", "prod/queue-worker"]
        );
        // Free text that looks like an action finds grants too.
        let r = idx.search(&Query {
            text: Some("s3:PutObject".into()),
            limit: 50,
            ..Default::default()
        });
        assert_eq!(names(&r), ["prod/admin", "staging/billing-reader"]);
    }

    #[test]
    fn filters_sort_and_paginate() {
        let idx = index();
        let r = idx.search(&Query {
            account: Some("prod".into()),
            kind: Some(ResourceKind::Role),
            limit: 2,
            ..Default::default()
        });
        assert_eq!(r.total, 3);
        assert_eq!(names(&r), ["prod/admin", "prod/billing-reader"]);
        let r = idx.search(&Query {
            account: Some("prod".into()),
            kind: Some(ResourceKind::Role),
            offset: 2,
            limit: 2,
            ..Default::default()
        });
        assert_eq!(names(&r), ["prod/queue-worker"]);
        let r = idx.search(&Query {
            kind: Some(ResourceKind::ManagedPolicy),
            limit: 5,
            ..Default::default()
        });
        assert_eq!(names(&r), ["prod/kms-use"]);
        let r = idx.search(&Query {
            sort: Sort::Account,
            text: Some("billing".into()),
            limit: 5,
            ..Default::default()
        });
        assert_eq!(names(&r), ["prod/billing-reader", "staging/billing-reader"]);
        let r = idx.search(&Query {
            tag: Some("TEAM".into()),
            limit: 5,
            ..Default::default()
        });
        assert_eq!(r.total, 1);
    }

    /// A small deterministic generator (xorshift), so the test needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % below as u64) as usize
        }
    }

    const ACTIONS: [&str; 8] = [
        "s3:Get*",
        "s3:PutObject",
        "sqs:*",
        "kms:Decrypt",
        "dynamodb:Query",
        "*",
        "sns:Publish",
        "lambda:Invoke*",
    ];

    fn policy(account: &str, name: &str, action: &str) -> ManagedPolicy {
        ManagedPolicy {
            account_id: account.into(),
            name: name.into(),
            arn: format!("arn:aws:iam::{account}:policy/{name}"),
            path: "/".into(),
            description: None,
            attachment_count: 1,
            document: json!({"Statement": {"Effect": "Allow", "Action": action, "Resource": "*"}}),
            versions: vec![],
            attached_to: vec![],
        }
    }

    fn random_resource(rng: &mut Rng, account: &str, n: usize) -> Resource {
        if rng.next(5) == 0 {
            let name = format!("Pol-{}", rng.next(6));
            return Resource::Policy(policy(account, &name, ACTIONS[rng.next(ACTIONS.len())]));
        }
        let name = format!(
            "{}-{}",
            ["Billing", "queue", "ADMIN", "data"][rng.next(4)],
            rng.next(n)
        );
        let tags = [
            ("team", "billing"),
            ("team", "ml"),
            ("owner", "x"),
            ("env", "prod"),
        ];
        let mut p = role(
            account,
            &name,
            &[
                ACTIONS[rng.next(ACTIONS.len())],
                ACTIONS[rng.next(ACTIONS.len())],
            ],
            &tags[..rng.next(tags.len() + 1)],
        );
        if rng.next(2) == 0 {
            p.managed_policies.push(AttachedPolicy {
                name: format!("pol-{}", rng.next(6)),
                arn: format!("arn:aws:iam::{account}:policy/Pol-{}", rng.next(6)),
            });
        }
        if rng.next(7) == 0 {
            p.kind = ResourceKind::User;
        }
        Resource::Principal(p)
    }

    fn queries() -> Vec<Query> {
        let mut out = vec![];
        for sort in [Sort::Name, Sort::Account, Sort::Kind] {
            for (offset, limit) in [(0, 500), (3, 7)] {
                let base = Query {
                    sort,
                    offset,
                    limit,
                    ..Default::default()
                };
                out.push(base.clone());
                for text in [
                    "billing",
                    "queue-1",
                    "prod",
                    "s3:GetObject",
                    "team=ml",
                    "pol-",
                ] {
                    out.push(Query {
                        text: Some(text.into()),
                        ..base.clone()
                    });
                }
                for action in ["kms:Decrypt", "sqs:SendMessage", "s3:PutObject"] {
                    out.push(Query {
                        action: Some(action.into()),
                        ..base.clone()
                    });
                }
                out.push(Query {
                    tag: Some("team".into()),
                    ..base.clone()
                });
                out.push(Query {
                    account: Some("staging".into()),
                    kind: Some(ResourceKind::Role),
                    ..base.clone()
                });
                out.push(Query {
                    kind: Some(ResourceKind::ManagedPolicy),
                    ..base.clone()
                });
            }
        }
        out
    }

    fn answers(index: &SearchIndex) -> Vec<(usize, Vec<String>)> {
        queries()
            .iter()
            .map(|q| {
                let r = index.search(q);
                let items = r
                    .items
                    .iter()
                    .map(|s| {
                        format!(
                            "{}/{}/{:?}/{}/{}/{}",
                            s.account_name,
                            s.name,
                            s.kind,
                            s.inline_policies,
                            s.managed_policies,
                            s.tags
                        )
                    })
                    .collect();
                (r.total, items)
            })
            .collect()
    }

    #[test]
    fn applying_changes_answers_like_a_rebuild() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let ids = [
            ("111111111111", "prod"),
            ("222222222222", "staging"),
            ("333333333333", "dev"),
        ];
        let mut accounts: Vec<Arc<Account>> = ids
            .iter()
            .map(|(id, name)| {
                let resources: Vec<Resource> =
                    (0..40).map(|_| random_resource(&mut rng, id, 30)).collect();
                // One item per key, as in a real account.
                let mut by_key = std::collections::BTreeMap::new();
                for r in resources {
                    by_key.insert(r.key(), r);
                }
                Arc::new(Account::new(id, name, None, 1, by_key.into_values()))
            })
            .collect();
        let mut index = SearchIndex::build(&accounts, 1);
        assert_eq!(answers(&index), answers(&SearchIndex::build(&accounts, 1)));
        let mut checked = 0;
        for step in 0..200u64 {
            // A batch of one to four changes, as an approval or a small delta makes.
            let mut changes = vec![];
            for _ in 0..=rng.next(4) {
                let a = rng.next(accounts.len());
                let id = ids[a].0;
                let mut next = (*accounts[a]).clone();
                let (key, new) = if rng.next(4) == 0 {
                    // Remove something that exists (or nothing, if the pick is absent).
                    let r = random_resource(&mut rng, id, 30);
                    (r.key(), None)
                } else {
                    let r = random_resource(&mut rng, id, 30);
                    (r.key(), Some(Item::from(r)))
                };
                let old = next.set(&key, new.clone());
                next.generation += 1;
                accounts[a] = Arc::new(next);
                changes.push(Changed {
                    account_id: id.to_string(),
                    key,
                    old,
                    new,
                });
            }
            index.apply(&accounts, &changes, step + 2);
            if step % 10 == 0 || step == 199 {
                let rebuilt = SearchIndex::build(&accounts, step + 2);
                assert_eq!(index.len(), rebuilt.len(), "step {step}");
                assert_eq!(answers(&index), answers(&rebuilt), "step {step}");
                checked += 1;
            }
        }
        assert_eq!(checked, 21);
        assert!(index.len() > 100, "the accounts stayed populated");
    }
}
