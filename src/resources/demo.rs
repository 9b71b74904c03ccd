//! Demo accounts for the sandbox cloud: three accounts with realistic roles, policies and tags,
//! so a first `cargo run` has something to browse. Deterministic (no randomness, fixed dates).

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::model::{
    AccountSnapshot, AttachedPolicy, InlinePolicy, ManagedPolicy, PolicyVersion, Principal,
    ResourceKind, ServiceResource, Tag,
};

pub const DEMO_ACCOUNTS: [(&str, &str); 3] = [
    ("111122223333", "demo-prod"),
    ("444455556666", "demo-staging"),
    ("777788889999", "demo-sandbox"),
];

fn trust(service: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})
}

fn trust_account(account: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
}

fn allow(actions: &[&str], resources: &[&str]) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]})
}

struct RoleSpec {
    name: &'static str,
    description: &'static str,
    service: Option<&'static str>,
    inline: &'static [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
    managed: &'static [&'static str],
    tags: &'static [(&'static str, &'static str)],
}

const ROLES: &[RoleSpec] = &[
    RoleSpec {
        name: "billing-reports",
        description: "Nightly billing export",
        service: Some("ecs-tasks.amazonaws.com"),
        inline: &[(
            "read-cur",
            &["s3:GetObject", "s3:ListBucket"],
            &["arn:aws:s3:::cur-reports", "arn:aws:s3:::cur-reports/*"],
        )],
        managed: &["ReadOnlyLogs"],
        tags: &[
            ("team", "billing"),
            (
                "consoleme-authorized",
                "billing-eng@example.com:demo-admin@iamdesk.local:demo-requester@iamdesk.local",
            ),
        ],
    },
    RoleSpec {
        name: "payments-api",
        description: "Payments API service role",
        service: Some("ecs-tasks.amazonaws.com"),
        inline: &[
            (
                "queue",
                &["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
                &["arn:aws:sqs:us-east-1:*:payments-*"],
            ),
            (
                "secrets",
                &["secretsmanager:GetSecretValue"],
                &["arn:aws:secretsmanager:us-east-1:*:secret:payments/*"],
            ),
        ],
        managed: &["KmsUseDefault"],
        tags: &[
            ("team", "payments"),
            ("consoleme-authorized", "payments-eng@example.com"),
        ],
    },
    RoleSpec {
        name: "search-indexer",
        description: "Builds the product search index",
        service: Some("lambda.amazonaws.com"),
        inline: &[(
            "dynamo",
            &[
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
            ],
            &["arn:aws:dynamodb:us-east-1:*:table/products"],
        )],
        managed: &["ReadOnlyLogs"],
        tags: &[
            ("team", "search"),
            (
                "consoleme-authorized",
                "search-eng@example.com:demo-requester@iamdesk.local",
            ),
        ],
    },
    RoleSpec {
        name: "ml-training",
        description: "SageMaker training jobs",
        service: Some("sagemaker.amazonaws.com"),
        inline: &[(
            "datasets",
            &["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            &["arn:aws:s3:::ml-datasets/*"],
        )],
        managed: &[],
        tags: &[
            ("team", "ml"),
            ("consoleme-authorized-cli-only", "ml-eng@example.com"),
        ],
    },
    RoleSpec {
        name: "ci-deployer",
        description: "Deploys services from CI",
        service: None,
        inline: &[(
            "deploy",
            &["ecs:UpdateService", "ecs:DescribeServices", "iam:PassRole"],
            &["*"],
        )],
        managed: &[],
        tags: &[
            ("team", "infra"),
            ("consoleme-owner-dl", "infra@example.com"),
        ],
    },
    RoleSpec {
        name: "breakglass-admin",
        description: "Emergency administrator access",
        service: None,
        inline: &[("everything", &["*"], &["*"])],
        managed: &[],
        tags: &[
            ("team", "security"),
            ("consoleme-authorized", "security@example.com"),
        ],
    },
    RoleSpec {
        name: "notifications-worker",
        description: "Sends customer notifications",
        service: Some("ecs-tasks.amazonaws.com"),
        inline: &[
            (
                "publish",
                &["sns:Publish"],
                &["arn:aws:sns:us-east-1:*:customer-*"],
            ),
            ("mail", &["ses:SendEmail"], &["*"]),
        ],
        managed: &["ReadOnlyLogs"],
        tags: &[
            ("team", "growth"),
            ("consoleme-authorized", "growth-eng@example.com"),
        ],
    },
    RoleSpec {
        name: "data-warehouse-loader",
        description: "Loads events into the warehouse",
        service: Some("glue.amazonaws.com"),
        inline: &[
            (
                "events",
                &["s3:GetObject", "s3:ListBucket"],
                &["arn:aws:s3:::event-archive", "arn:aws:s3:::event-archive/*"],
            ),
            ("redshift", &["redshift-data:ExecuteStatement"], &["*"]),
        ],
        managed: &["KmsUseDefault"],
        tags: &[
            ("team", "data"),
            (
                "consoleme-authorized",
                "data-eng@example.com:demo-admin@iamdesk.local",
            ),
        ],
    },
    RoleSpec {
        name: "readonly-auditor",
        description: "Read-only access for auditors",
        service: None,
        inline: &[(
            "describe",
            &[
                "ec2:Describe*",
                "iam:Get*",
                "iam:List*",
                "s3:GetBucketPolicy",
            ],
            &["*"],
        )],
        managed: &["ReadOnlyLogs"],
        tags: &[
            ("team", "security"),
            ("consoleme-authorized", "auditors@example.com"),
        ],
    },
    RoleSpec {
        name: "edge-cache-purger",
        description: "Invalidates CDN caches",
        service: Some("lambda.amazonaws.com"),
        inline: &[("cdn", &["cloudfront:CreateInvalidation"], &["*"])],
        managed: &[],
        tags: &[("team", "edge")],
    },
];

fn managed_policies(account_id: &str) -> Vec<ManagedPolicy> {
    vec![
        ManagedPolicy {
            account_id: account_id.into(),
            name: "ReadOnlyLogs".into(),
            arn: format!("arn:aws:iam::{account_id}:policy/ReadOnlyLogs"),
            path: "/".into(),
            description: Some("Read CloudWatch Logs".into()),
            attachment_count: 4,
            document: allow(
                &[
                    "logs:GetLogEvents",
                    "logs:FilterLogEvents",
                    "logs:DescribeLogGroups",
                ],
                &["*"],
            ),
            versions: vec![],
            attached_to: vec![],
        },
        ManagedPolicy {
            account_id: account_id.into(),
            name: "KmsUseDefault".into(),
            arn: format!("arn:aws:iam::{account_id}:policy/KmsUseDefault"),
            path: "/".into(),
            description: Some("Use the account's default KMS key".into()),
            attachment_count: 2,
            document: allow(
                &["kms:Decrypt", "kms:GenerateDataKey"],
                &[&format!("arn:aws:kms:us-east-1:{account_id}:alias/default")],
            ),
            versions: vec![],
            attached_to: vec![],
        },
    ]
    .into_iter()
    .map(|mut p| {
        // One older version each, so the page has a history to show.
        p.versions = vec![
            PolicyVersion {
                id: "v2".into(),
                is_default: true,
                created_at: Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).single(),
                document: p.document.clone(),
            },
            PolicyVersion {
                id: "v1".into(),
                is_default: false,
                created_at: Utc.with_ymd_and_hms(2024, 3, 14, 9, 30, 0).single(),
                document: allow(&["logs:GetLogEvents"], &["*"]),
            },
        ];
        p
    })
    .collect()
}

/// The region of the demo queues, topics and buckets.
pub const REGION: &str = "us-east-1";

/// A resource policy letting `principal` (an account or role ARN) do `actions` on `resource`.
fn resource_policy(principal: &str, actions: &[&str], resource: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Demo",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": actions,
            "Resource": resource,
        }]
    })
}

/// Buckets, queues and topics of one demo account: each service with and without a policy.
fn services(account_id: &str, account_name: &str) -> Vec<ServiceResource> {
    let tags = |team: &str| {
        vec![Tag {
            key: "team".into(),
            value: team.into(),
        }]
    };
    let role = |name: &str| format!("arn:aws:iam::{account_id}:role/{name}");
    let bucket = format!("{account_name}-reports-{account_id}");
    let queue = format!("{account_name}-orders");
    let topic = format!("{account_name}-alerts");
    vec![
        ServiceResource {
            kind: ResourceKind::S3,
            account_id: account_id.into(),
            region: REGION.into(),
            name: bucket.clone(),
            arn: format!("arn:aws:s3:::{bucket}"),
            url: None,
            policy: Some(resource_policy(
                &role("data-warehouse-loader"),
                &["s3:GetObject", "s3:ListBucket"],
                &format!("arn:aws:s3:::{bucket}/*"),
            )),
            tags: tags("analytics"),
        },
        ServiceResource {
            kind: ResourceKind::S3,
            account_id: account_id.into(),
            region: REGION.into(),
            name: format!("{account_name}-scratch-{account_id}"),
            arn: format!("arn:aws:s3:::{account_name}-scratch-{account_id}"),
            url: None,
            policy: None,
            tags: vec![],
        },
        ServiceResource {
            kind: ResourceKind::Sqs,
            account_id: account_id.into(),
            region: REGION.into(),
            name: queue.clone(),
            arn: format!("arn:aws:sqs:{REGION}:{account_id}:{queue}"),
            url: Some(format!(
                "https://sqs.{REGION}.amazonaws.com/{account_id}/{queue}"
            )),
            policy: Some(resource_policy(
                &role("payments-api"),
                &["sqs:SendMessage"],
                &format!("arn:aws:sqs:{REGION}:{account_id}:{queue}"),
            )),
            tags: tags("payments"),
        },
        ServiceResource {
            kind: ResourceKind::Sns,
            account_id: account_id.into(),
            region: REGION.into(),
            name: topic.clone(),
            arn: format!("arn:aws:sns:{REGION}:{account_id}:{topic}"),
            url: None,
            policy: Some(resource_policy(
                &format!("arn:aws:iam::{account_id}:root"),
                &["sns:Publish", "sns:Subscribe"],
                &format!("arn:aws:sns:{REGION}:{account_id}:{topic}"),
            )),
            tags: tags("sre"),
        },
    ]
}

/// The demo snapshot of one of [`DEMO_ACCOUNTS`].
pub fn account(account_id: &str, account_name: &str) -> AccountSnapshot {
    let created = Utc.with_ymd_and_hms(2024, 3, 14, 9, 30, 0).single();
    let principals = ROLES
        .iter()
        .enumerate()
        .map(|(i, spec)| Principal {
            kind: ResourceKind::Role,
            account_id: account_id.into(),
            name: spec.name.into(),
            arn: format!("arn:aws:iam::{account_id}:role/{}", spec.name),
            path: "/".into(),
            id: format!("AROA{account_id}{i:04}"),
            description: Some(spec.description.into()),
            created_at: created,
            last_used_at: None,
            max_session_duration: Some(3600),
            trust_policy: Some(match spec.service {
                Some(s) => trust(s),
                None => trust_account(account_id),
            }),
            inline_policies: spec
                .inline
                .iter()
                .map(|(name, actions, resources)| InlinePolicy {
                    name: (*name).into(),
                    document: allow(actions, resources),
                })
                .collect(),
            managed_policies: spec
                .managed
                .iter()
                .map(|m| AttachedPolicy {
                    name: (*m).into(),
                    arn: format!("arn:aws:iam::{account_id}:policy/{m}"),
                })
                .collect(),
            permissions_boundary: None,
            tags: spec
                .tags
                .iter()
                .map(|(k, v)| Tag {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
        })
        .collect();
    AccountSnapshot {
        account_id: account_id.into(),
        account_name: account_name.into(),
        synced_at: None,
        principals,
        policies: managed_policies(account_id),
        services: services(account_id, account_name),
    }
}

/// All demo accounts.
pub fn accounts() -> Vec<AccountSnapshot> {
    DEMO_ACCOUNTS
        .iter()
        .map(|(id, name)| account(id, name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_accounts_are_consistent() {
        let all = accounts();
        assert_eq!(all.len(), 3);
        for a in &all {
            assert_eq!(a.principals.len(), ROLES.len());
            for p in &a.principals {
                assert!(
                    p.arn
                        .starts_with(&format!("arn:aws:iam::{}:role/", a.account_id))
                );
                for m in &p.managed_policies {
                    assert!(
                        a.policies.iter().any(|mp| mp.arn == m.arn),
                        "{} attached but missing",
                        m.arn
                    );
                }
            }
        }
    }
}
