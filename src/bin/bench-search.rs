//! Search benchmark: 100k synthetic roles and 50k buckets, queues and topics (with resource
//! policies) across 200 accounts, p50/p99 latency of typical queries and the index's memory. Writes `target/bench/search.json`.
//! Run with `scripts/bench-search` (release build; ~1 minute on 2 cores). A binary built only
//! with the `bench-tools` feature, like `bench-requests`.

use std::sync::Arc;
use std::time::Instant;

use iamdesk::resources::account::{Account, Changed, Item};
use iamdesk::resources::index::{Query, SearchIndex, Sort};
use iamdesk::resources::model::{
    AccountSnapshot, InlinePolicy, Principal, ResourceKey, ResourceKind, ServiceResource, Tag,
};
use serde_json::json;

const ACCOUNTS: usize = 200;
const ROLES: usize = 100_000;
/// Buckets, queues and topics (a third each).
const SERVICE_RESOURCES: usize = 50_000;
const RUNS: usize = 200;

fn synthetic() -> Vec<Arc<Account>> {
    let services = [
        "s3", "sqs", "sns", "dynamodb", "kms", "ec2", "lambda", "logs", "iam", "sts",
    ];
    let verbs = [
        "Get*",
        "Put*",
        "List*",
        "Describe*",
        "ReceiveMessage",
        "Publish",
        "Decrypt",
        "*",
    ];
    let teams = [
        "billing", "search", "payments", "ml", "infra", "data", "edge", "identity",
    ];
    let mut snaps: Vec<AccountSnapshot> = (0..ACCOUNTS)
        .map(|a| AccountSnapshot {
            account_id: format!("{:012}", 100_000_000_000u64 + a as u64),
            account_name: format!("account-{a:03}"),
            ..Default::default()
        })
        .collect();
    for i in 0..ROLES {
        let snap = &mut snaps[i % ACCOUNTS];
        let team = teams[i % teams.len()];
        let name = format!("{team}-service-{i:06}");
        let actions: Vec<String> = (0..4)
            .map(|k| {
                format!(
                    "{}:{}",
                    services[(i + k) % services.len()],
                    verbs[(i / 7 + k) % verbs.len()]
                )
            })
            .collect();
        snap.principals.push(Principal {
            kind: ResourceKind::Role,
            account_id: snap.account_id.clone(),
            arn: format!("arn:aws:iam::{}:role/{name}", snap.account_id),
            name,
            path: "/".into(),
            id: format!("AROA{i:016}"),
            description: None,
            created_at: None,
            last_used_at: None,
            max_session_duration: Some(3600),
            trust_policy: None,
            inline_policies: vec![InlinePolicy {
                name: "main".into(),
                document: json!({"Version": "2012-10-17",
                                 "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}),
            }],
            managed_policies: vec![],
            permissions_boundary: None,
            tags: vec![
                Tag { key: "team".into(), value: team.into() },
                Tag { key: "consoleme-authorized".into(), value: format!("{team}@example.com") },
            ],
        });
    }
    for i in 0..SERVICE_RESOURCES {
        let snap = &mut snaps[i % ACCOUNTS];
        let team = teams[i % teams.len()];
        let (kind, name, arn, actions) = match i % 3 {
            0 => {
                let name = format!("{team}-bucket-{i:06}");
                let arn = format!("arn:aws:s3:::{name}");
                (
                    ResourceKind::S3,
                    name,
                    arn,
                    vec!["s3:GetObject", "s3:ListBucket"],
                )
            }
            1 => {
                let name = format!("{team}-queue-{i:06}");
                let arn = format!("arn:aws:sqs:us-east-1:{}:{name}", snap.account_id);
                (ResourceKind::Sqs, name, arn, vec!["sqs:SendMessage"])
            }
            _ => {
                let name = format!("{team}-topic-{i:06}");
                let arn = format!("arn:aws:sns:us-east-1:{}:{name}", snap.account_id);
                (
                    ResourceKind::Sns,
                    name,
                    arn,
                    vec!["sns:Publish", "sns:Subscribe"],
                )
            }
        };
        // Every other resource grants a role of another account.
        let grantee = format!(
            "arn:aws:iam::{:012}:role/{team}-service-{:06}",
            100_000_000_000u64 + ((i + 1) % ACCOUNTS) as u64,
            i % ROLES
        );
        let policy = (i % 2 == 0).then(|| {
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": grantee}, "Action": actions, "Resource": arn}]})
        });
        snap.services.push(ServiceResource {
            kind,
            account_id: snap.account_id.clone(),
            region: "us-east-1".into(),
            name,
            arn,
            url: None,
            policy,
            tags: vec![Tag {
                key: "team".into(),
                value: team.into(),
            }],
        });
    }
    snaps
        .into_iter()
        .map(|s| Arc::new(Account::from_snapshot(s, 1)))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    let snaps = synthetic();
    let t = Instant::now();
    let index = SearchIndex::build(&snaps, 1);
    let build_ms = t.elapsed().as_secs_f64() * 1000.0;
    let queries: Vec<(&str, Query)> = vec![
        (
            "name substring",
            Query {
                text: Some("payments-service-04".into()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "action s3:GetObject",
            Query {
                action: Some("s3:GetObject".into()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "account + type",
            Query {
                account: Some("account-042".into()),
                kind: Some(ResourceKind::Role),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "tag team=ml",
            Query {
                tag: Some("team=ml".into()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "buckets allowing s3:GetObject",
            Query {
                action: Some("s3:GetObject".into()),
                kind: Some(ResourceKind::S3),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "queue by name",
            Query {
                text: Some("ml-queue-0412".into()),
                kind: Some(ResourceKind::Sqs),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "topics of one account",
            Query {
                account: Some("account-042".into()),
                kind: Some(ResourceKind::Sns),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "resources granting a principal",
            Query {
                text: Some("role/ml-service-0001".into()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "everything sorted by account, page 100",
            Query {
                sort: Sort::Account,
                offset: 5000,
                limit: 50,
                ..Default::default()
            },
        ),
    ];
    let mut results = vec![];
    for (name, q) in &queries {
        let mut times = Vec::with_capacity(RUNS);
        let mut total = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = index.search(q);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            total = r.total;
        }
        times.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        println!("{name:45} matches {total:6}  p50 {p50:7.3} ms  p99 {p99:7.3} ms");
        results.push(json!({"query": name, "matches": total, "p50_ms": p50, "p99_ms": p99}));
    }
    // "My roles" (home page, /roles, /profile): the per-generation index of tag entries, and
    // the full scan it replaced.
    let config = iamdesk::config::Config::default();
    let t = Instant::now();
    let entitlements = iamdesk::credentials::EntitlementIndex::build(&config, &snaps);
    let entitlements_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!("entitlement index built in {entitlements_ms:.0} ms");
    for (name, email, groups) in [
        (
            "my roles: a user on 12,500 roles",
            "payments@example.com",
            vec![],
        ),
        (
            "my roles: a user on none, 20 groups",
            "nobody@example.com",
            (0..20)
                .map(|g| format!("group-{g}"))
                .collect::<Vec<String>>(),
        ),
    ] {
        for (how, indexed) in [("index", true), ("scan", false)] {
            let mut times = Vec::with_capacity(RUNS / 4);
            let mut total = 0;
            for _ in 0..RUNS / 4 {
                let t = Instant::now();
                total = if indexed {
                    entitlements.lookup(email, &groups).len()
                } else {
                    iamdesk::credentials::entitled_in(&config, &snaps, email, &groups).len()
                };
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            let name = format!("{name} ({how})");
            println!("{name:45} matches {total:6}  p50 {p50:7.3} ms  p99 {p99:7.3} ms");
            results.push(json!({"query": name, "matches": total, "p50_ms": p50, "p99_ms": p99}));
        }
    }
    // An approval changes one role: copy the index (readers keep the old one) and replace that
    // role's entry, against rebuilding everything.
    let mut accounts = snaps.clone();
    let mut times = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let a = run % accounts.len();
        let mut next = (*accounts[a]).clone();
        let mut role = (*next.principals[run % next.principals.len()]).clone();
        role.tags.push(Tag {
            key: "owner".into(),
            value: format!("run-{run}"),
        });
        let key = ResourceKey::new(role.kind, &role.name);
        let new = Some(Item::Principal(Arc::new(role)));
        let old = next.set(&key, new.clone());
        accounts[a] = Arc::new(next);
        let change = Changed {
            account_id: accounts[a].account_id.clone(),
            key,
            old,
            new,
        };
        let t = Instant::now();
        let mut updated = index.clone();
        updated.apply(&accounts, std::slice::from_ref(&change), 2);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let (apply_p50, apply_p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "{:45} p50 {apply_p50:7.3} ms  p99 {apply_p99:7.3} ms (full build {build_ms:.0} ms)",
        "one role changed: copy + apply"
    );
    let mem_mb = index.approx_bytes() as f64 / (1024.0 * 1024.0);
    println!(
        "index: {} entries, built in {build_ms:.0} ms, ~{mem_mb:.1} MiB",
        index.len()
    );
    let report = json!({
        "roles": ROLES, "accounts": ACCOUNTS, "runs_per_query": RUNS,
        "build_ms": build_ms, "index_mib": mem_mb, "entitlement_index_build_ms": entitlements_ms,
        "one_role_apply_p50_ms": apply_p50, "one_role_apply_p99_ms": apply_p99,
        "queries": results,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(dir.join("search.json"), format!("{report:#}\n")))
    {
        eprintln!("cannot write target/bench/search.json: {e}");
        std::process::exit(1);
    }
    println!("wrote target/bench/search.json");
}
