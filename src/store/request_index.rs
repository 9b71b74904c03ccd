//! Finding requests without reading the history (issue 22 items 2 and 3).
//!
//! Every request is reachable from a few small **posting lists**, each ordered newest first by
//! the request's sort key (`time#id`), so one cursor pages through any of them:
//!
//! - what the backends index on the request itself: all requests, by status, by requester
//!   ([`RequestKey::All`], [`RequestKey::Status`], [`RequestKey::Requester`]);
//! - one posting per (request, account), per (request, principal ARN) and per (request, word)
//!   ([`RequestKey::Account`], [`RequestKey::Principal`], [`RequestKey::Term`]), computed by
//!   [`index_keys`] and written in the request's own transaction (DynamoDB: the
//!   `request_index` table; SQLite: `request_keys`).
//!
//! A posting holds the request's id and sort key only; the page's requests are then read by id
//! ([`Store::get_requests`]). [`search_requests`] answers a filter from the **shortest** of the
//! lists its filters name (each probed with one page), and checks every filter on the requests
//! it reads, so a stale or extra posting can never put a wrong request on a page. Its cost is
//! the postings it reads: the result and the lists it had to intersect, never the whole history.
//!
//! **Search is by whole words.** A word is a run of letters and digits, compared lower case: the
//! words of the id, requester, justification, principal ARNs, role and policy names, managed
//! policy and boundary ARNs, tag keys and (imported requests) ConsoleMe's principals. `q`
//! matches a request when every word of `q` is one of its words, in any order: `ZEBRA`,
//! `role/app`, `billing-reports`, `dev@example.com` and the first 8 characters of an id find
//! what they did before; a fragment inside a word (`ebra`) no longer does.
//!
//! Index keys are computed from what never changes after creation (id, requester,
//! justification, targets, names: `update_change` replaces documents only), so a request's
//! postings are written once. The one exception, `iamdesk import consoleme --update`, rewrites
//! an imported request wholesale: its postings are written again then (a word it lost leaves a
//! posting that the check on the request filters out).

use std::collections::{BTreeSet, HashMap};

use super::{
    Page, PageRequest, PolicyRequest, RequestFilter, RequestStatus, Store, StoreResult,
    encode_cursor,
};

/// Partitions the busiest listings are spread over on DynamoDB (`request#0..15`): no single
/// partition key carries every request (or every audit event), and a page merges them.
pub const SHARDS: u32 = 16;

/// The shard of an id (FNV-1a, stable across versions and platforms).
pub fn shard_of(id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

/// Longest word indexed (longer runs, e.g. pasted hashes, are cut to this many characters).
pub const MAX_WORD_CHARS: usize = 64;
/// Words of `q` used at most (the longest ones): each costs one probe.
pub const MAX_QUERY_WORDS: usize = 6;
/// Postings one [`search_requests`] call reads at most before answering with what it found and a
/// cursor to go on from (a filter whose lists are long but whose intersection is small).
pub const SEARCH_BUDGET: usize = 2_000;

/// One posting list of requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestKey {
    All,
    Status(RequestStatus),
    Requester(String),
    /// A 12-digit account id any change (or an imported read-only change) targets.
    Account(String),
    /// A principal ARN, lower case.
    Principal(String),
    /// A word, see the module doc.
    Term(String),
}

impl RequestKey {
    /// The partition key of a posting in the backends' index tables (`Account`, `Principal`,
    /// `Term`); `None` for the lists the request rows index themselves.
    pub fn index_key(&self) -> Option<String> {
        match self {
            RequestKey::Account(a) => Some(format!("account#{a}")),
            RequestKey::Principal(p) => Some(format!("principal#{p}")),
            RequestKey::Term(t) => Some(format!("term#{t}")),
            _ => None,
        }
    }
}

/// A request in a posting list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub id: String,
    /// The request's [`PolicyRequest::sort_key`].
    pub sort_key: String,
}

/// The words of `text` (see the module doc), lower case, in order of first appearance.
pub fn words(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.to_lowercase()
                .chars()
                .take(MAX_WORD_CHARS)
                .collect::<String>()
        })
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// The words of a query: at most [`MAX_QUERY_WORDS`], the longest (the rarest, usually).
pub fn query_words(q: &str) -> Vec<String> {
    let mut w = words(q);
    w.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
    w.truncate(MAX_QUERY_WORDS);
    w
}

/// The principals an imported request names in ConsoleMe's records.
fn imported_arns(r: &PolicyRequest) -> Vec<&str> {
    r.imported
        .iter()
        .flat_map(|i| {
            i.principal
                .iter()
                .chain(i.read_only.iter().filter_map(|c| c.principal.as_ref()))
        })
        .map(String::as_str)
        .collect()
}

/// What free text is matched against (the fields named in the module doc).
fn hay(r: &PolicyRequest) -> Vec<String> {
    use crate::requests::Change;
    use crate::requests::model::BoundaryEdit;
    let mut hay = vec![r.id.clone(), r.requester.clone(), r.justification.clone()];
    for c in r.changes.iter() {
        hay.push(c.target().to_string());
        match c {
            Change::InlinePolicy(c) => hay.push(c.policy_name.to_string()),
            Change::ManagedPolicy(c) => hay.push(c.arn.to_string()),
            Change::PermissionsBoundary(c) => {
                if let BoundaryEdit::Put(arn) = &c.edit {
                    hay.push(arn.to_string());
                }
            }
            Change::ResourceTag(c) => hay.push(c.key.clone()),
            Change::CreateRole(c) => {
                if let Some(clone) = &c.clone {
                    hay.push(clone.from.to_string());
                }
                hay.extend(c.inline_policies.iter().map(|p| p.policy_name.to_string()));
            }
            // The target (above) names the role, bucket, queue, topic or policy.
            Change::AssumeRolePolicy(_) | Change::Resource(_) => {}
        }
    }
    hay.extend(imported_arns(r).into_iter().map(str::to_string));
    hay
}

/// Every word of a request.
pub fn request_words(r: &PolicyRequest) -> BTreeSet<String> {
    hay(r).iter().flat_map(|h| words(h)).collect()
}

/// The accounts a request touches.
pub fn request_accounts(r: &PolicyRequest) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = r
        .changes
        .iter()
        .map(|c| c.target().account().as_str().to_string())
        .collect();
    out.extend(
        imported_arns(r)
            .into_iter()
            .filter_map(|arn| arn.split(':').nth(4))
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string),
    );
    out
}

/// The principal ARNs a request touches, lower case.
pub fn request_principals(r: &PolicyRequest) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = r
        .changes
        .iter()
        .map(|c| c.target().to_string().to_lowercase())
        .collect();
    out.extend(
        imported_arns(r)
            .into_iter()
            .filter(|a| a.starts_with("arn:"))
            .map(str::to_lowercase),
    );
    out
}

/// The index keys of a request: its accounts, principals, then words.
pub fn index_keys(r: &PolicyRequest) -> Vec<RequestKey> {
    let mut out: Vec<RequestKey> = request_accounts(r)
        .into_iter()
        .map(RequestKey::Account)
        .collect();
    out.extend(request_principals(r).into_iter().map(RequestKey::Principal));
    out.extend(request_words(r).into_iter().map(RequestKey::Term));
    out
}

impl RequestFilter {
    /// Whether `r` passes every filter but `min_risk` (which needs the installation's rules).
    pub fn matches(&self, r: &PolicyRequest) -> bool {
        if self.status.is_some_and(|s| s != r.status) {
            return false;
        }
        if self.requester.as_ref().is_some_and(|q| *q != r.requester) {
            return false;
        }
        if self.needs_review
            && r.break_glass
                .as_ref()
                .is_none_or(|b| b.reviewed_by.is_some())
        {
            return false;
        }
        if let Some(account) = &self.account
            && !request_accounts(r).contains(account)
        {
            return false;
        }
        if let Some(text) = &self.text {
            let wanted = query_words(text);
            let have = request_words(r);
            if wanted.is_empty() || !wanted.iter().all(|w| have.contains(w)) {
                return false;
            }
        }
        true
    }

    /// The posting lists that hold every request this filter can accept.
    fn candidate_lists(&self) -> Vec<RequestKey> {
        let mut out: Vec<RequestKey> = self
            .text
            .as_deref()
            .map(query_words)
            .unwrap_or_default()
            .into_iter()
            .map(RequestKey::Term)
            .collect();
        out.extend(self.account.clone().map(RequestKey::Account));
        out.extend(self.requester.clone().map(RequestKey::Requester));
        if out.is_empty() {
            out.push(self.status.map_or(RequestKey::All, RequestKey::Status));
        }
        out
    }
}

/// List requests with every filter of [`RequestFilter`], newest first. Filters the backend
/// lists by themselves (status, requester) go straight to [`Store::list_requests`]; anything
/// else is answered from posting lists (module doc). A page may hold fewer than `limit` items
/// when [`SEARCH_BUDGET`] ran out; `next_cursor` then continues where it stopped.
pub async fn search_requests(
    store: &dyn Store,
    filter: &RequestFilter,
    page: &PageRequest,
    level_of: &(dyn Fn(&PolicyRequest) -> crate::requests::risk::Level + Sync),
) -> StoreResult<Page<PolicyRequest>> {
    if filter.account.is_none()
        && filter.text.is_none()
        && filter.min_risk.is_none()
        && !filter.needs_review
    {
        return store.list_requests(filter, page).await;
    }
    from_postings(store, filter, page, level_of).await
}

/// [`search_requests`] without the shortcut: what a backend whose listings are posting lists
/// (DynamoDB) runs for every listing.
pub async fn from_postings(
    store: &dyn Store,
    filter: &RequestFilter,
    page: &PageRequest,
    level_of: &(dyn Fn(&PolicyRequest) -> crate::requests::risk::Level + Sync),
) -> StoreResult<Page<PolicyRequest>> {
    let empty = Page {
        items: vec![],
        next_cursor: None,
    };
    if filter.text.as_deref().is_some_and(|t| words(t).is_empty()) {
        return Ok(empty);
    }
    let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
    let lists = filter.candidate_lists();
    // One page of each list; the shortest one (a complete list before a cut one) drives.
    let probe = PageRequest {
        limit,
        cursor: page.cursor.clone(),
    };
    let probes =
        futures::future::try_join_all(lists.iter().map(|key| store.request_postings(key, &probe)))
            .await?;
    let Some((driver, mut batch)) = lists
        .into_iter()
        .zip(probes)
        .min_by_key(|(_, p)| (p.next_cursor.is_some(), p.items.len()))
    else {
        return Ok(empty);
    };
    let mut found = Vec::new();
    let mut read = 0;
    loop {
        read += batch.items.len();
        let mut bodies = requests_of(store, &batch.items).await?;
        for (i, posting) in batch.items.iter().enumerate() {
            let Some(r) = bodies.remove(&posting.id) else {
                continue;
            };
            if filter.matches(&r) && filter.min_risk.is_none_or(|min| level_of(&r) >= min) {
                found.push(r);
                if found.len() == limit {
                    let last = i + 1 == batch.items.len() && batch.next_cursor.is_none();
                    return Ok(Page {
                        items: found,
                        next_cursor: (!last).then(|| encode_cursor(&posting.sort_key)),
                    });
                }
            }
        }
        let Some(next) = batch.next_cursor else {
            return Ok(Page {
                items: found,
                next_cursor: None,
            });
        };
        if read >= SEARCH_BUDGET {
            return Ok(Page {
                items: found,
                next_cursor: Some(next),
            });
        }
        let more = PageRequest {
            limit: (limit * 2).clamp(50, PageRequest::MAX_LIMIT),
            cursor: Some(next),
        };
        batch = store.request_postings(&driver, &more).await?;
    }
}

/// The requests the postings name, by id.
async fn requests_of(
    store: &dyn Store,
    postings: &[Posting],
) -> StoreResult<HashMap<String, PolicyRequest>> {
    let ids: Vec<String> = postings.iter().map(|p| p.id.clone()).collect();
    Ok(store
        .get_requests(&ids)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect())
}

/// The requests that touch one principal (any status), newest first, read from its posting
/// list: what the right-size report needs of a role, at the cost of that role's requests only.
pub async fn requests_of_principal(
    store: &dyn Store,
    principal_arn: &str,
) -> StoreResult<Vec<PolicyRequest>> {
    let arn = principal_arn.to_lowercase();
    let key = RequestKey::Principal(arn.clone());
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    let mut out = Vec::new();
    loop {
        let batch = store.request_postings(&key, &page).await?;
        let mut bodies = requests_of(store, &batch.items).await?;
        out.extend(
            batch
                .items
                .iter()
                .filter_map(|p| bodies.remove(&p.id))
                .filter(|r| request_principals(r).contains(&arn)),
        );
        match batch.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_runs_of_letters_and_digits() {
        assert_eq!(
            words("arn:aws:iam::123456789012:role/Billing-Reports"),
            [
                "arn",
                "aws",
                "iam",
                "123456789012",
                "role",
                "billing",
                "reports"
            ]
        );
        assert_eq!(words("dev@Example.com dev"), ["dev", "example", "com"]);
        assert!(words("--/::").is_empty());
        assert_eq!(query_words("role/APP x"), ["role", "app", "x"]);
    }

    #[test]
    fn shards_spread_ids() {
        let mut seen = BTreeSet::new();
        for i in 0..200 {
            let s = shard_of(&format!("id-{i}"));
            assert!(s < SHARDS);
            seen.insert(s);
        }
        assert_eq!(seen.len(), SHARDS as usize);
        assert_eq!(shard_of("abc"), shard_of("abc"));
    }
}
