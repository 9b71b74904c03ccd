//! In-memory search index over every synced principal and managed policy.
//!
//! Built once per sync generation and then only read, so a query is a single linear pass over
//! pre-lowercased haystacks (memchr's SIMD substring search) plus an integer-set check for
//! actions; entries are stored pre-sorted so results never need sorting per query. 100k roles
//! stay well under 20 ms per query on 2 cores (`scripts/bench-search`).

use std::collections::HashMap;
use std::sync::Arc;

use memchr::memmem;
use serde::Serialize;

use super::model::{
    AccountSnapshot, ManagedPolicy, Principal, ResourceKind, action_matches, actions_in,
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
}

struct Entry {
    summary: Summary,
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

#[derive(Default)]
pub struct SearchIndex {
    entries: Vec<Entry>,
    /// Entry positions ordered by account then name, and by kind then name (entries themselves
    /// are ordered by name).
    by_account: Vec<u32>,
    by_kind: Vec<u32>,
    /// Interned lowercased action patterns.
    patterns: Vec<String>,
    /// Sync generation this index was built from.
    pub generation: u64,
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

impl SearchIndex {
    pub fn build(snapshots: &[Arc<AccountSnapshot>], generation: u64) -> SearchIndex {
        let mut interner: HashMap<String, u32> = HashMap::new();
        let mut patterns = vec![];
        let mut intern = |p: &str| -> u32 {
            let key = p.to_ascii_lowercase();
            if let Some(id) = interner.get(&key) {
                return *id;
            }
            let id = patterns.len() as u32;
            patterns.push(key.clone());
            interner.insert(key, id);
            id
        };
        let mut entries = vec![];
        for snap in snapshots {
            let policy_docs: HashMap<&str, &ManagedPolicy> =
                snap.policies.iter().map(|p| (p.arn.as_str(), p)).collect();
            for p in &snap.principals {
                let mut acts = vec![];
                for ip in &p.inline_policies {
                    actions_in(&ip.document, &mut acts);
                }
                for mp in &p.managed_policies {
                    if let Some(doc) = policy_docs.get(mp.arn.as_str()) {
                        actions_in(&doc.document, &mut acts);
                    }
                }
                let ids = acts.iter().map(|a| intern(a)).collect();
                entries.push(principal_entry(snap, p, ids));
            }
            for mp in &snap.policies {
                let mut acts = vec![];
                actions_in(&mp.document, &mut acts);
                let ids = acts.iter().map(|a| intern(a)).collect();
                entries.push(policy_entry(snap, mp, ids));
            }
        }
        entries.sort_by(|a, b| {
            (a.summary.name.to_ascii_lowercase(), &a.summary.account_id)
                .cmp(&(b.summary.name.to_ascii_lowercase(), &b.summary.account_id))
        });
        let mut by_account: Vec<u32> = (0..entries.len() as u32).collect();
        by_account.sort_by_key(|&i| &entries[i as usize].summary.account_name);
        let mut by_kind: Vec<u32> = (0..entries.len() as u32).collect();
        by_kind.sort_by_key(|&i| entries[i as usize].summary.kind.as_str());
        SearchIndex {
            entries,
            by_account,
            by_kind,
            patterns,
            generation,
        }
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
            + (self.by_account.capacity() + self.by_kind.capacity()) * 4
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
        let matches = |e: &Entry| -> bool {
            if q.kind.is_some_and(|k| k != e.summary.kind) {
                return false;
            }
            if let Some(a) = account
                && a != e.summary.account_id
                && !a.eq_ignore_ascii_case(&e.summary.account_name)
            {
                return false;
            }
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
            match &finder {
                None => true,
                Some(f) => f.find(e.haystack.as_bytes()).is_some() || has(e, &text_actions),
            }
        };

        let limit = q.limit.clamp(1, 500);
        let mut total = 0;
        let mut items = Vec::with_capacity(limit);
        let mut visit = |e: &Entry| {
            if matches(e) {
                if total >= q.offset && items.len() < limit {
                    items.push(e.summary.clone());
                }
                total += 1;
            }
        };
        match q.sort {
            Sort::Name => self.entries.iter().for_each(&mut visit),
            Sort::Account => self
                .by_account
                .iter()
                .for_each(|&i| visit(&self.entries[i as usize])),
            Sort::Kind => self
                .by_kind
                .iter()
                .for_each(|&i| visit(&self.entries[i as usize])),
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

fn principal_entry(snap: &AccountSnapshot, p: &Principal, actions: Vec<u32>) -> Entry {
    let tags = lower_tags(&p.tags);
    Entry {
        haystack: haystack(
            &[&p.name, &p.arn, &snap.account_id, &snap.account_name],
            &tags,
        ),
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
        },
    }
}

fn policy_entry(snap: &AccountSnapshot, mp: &ManagedPolicy, actions: Vec<u32>) -> Entry {
    Entry {
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
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{AttachedPolicy, InlinePolicy, Tag};
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
        SearchIndex::build(&[Arc::new(a), Arc::new(b)], 1)
    }

    fn names(r: &SearchResult) -> Vec<String> {
        r.items
            .iter()
            .map(|s| format!("{}/{}", s.account_name, s.name))
            .collect()
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
}
