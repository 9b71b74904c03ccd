//! The real AWS: the central account's credentials from aws-config's default chain, and per
//! spoke account one IAM client whose credentials come from STS AssumeRole into
//! `arn:aws:iam::{id}:role/{role_name}`. Each client keeps its credentials in the SDK's identity
//! cache and refreshes them before expiry, so a sync costs one AssumeRole per account per
//! credential lifetime, not one per call. `AWS_ENDPOINT_URL` redirects everything (moto in tests).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_iam::types::{EntityType, PolicyDetail};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{ActionAccess, AdvisorJob, Cloud, CloudError, IamOp, ServiceAccess};
use crate::config::Config;
use crate::resources::model::{
    AccountSnapshot, AttachedPolicy, InlinePolicy, ManagedPolicy, PolicyVersion, Principal,
    ResourceKind, ServiceResource, Tag,
};

/// Session name on every AssumeRole, so CloudTrail shows who acted.
pub const SESSION_NAME: &str = "iamdesk";

/// Counts the credential fetches (= AssumeRole calls) a provider really makes.
#[derive(Debug)]
struct Counting {
    inner: AssumeRoleProvider,
    calls: Arc<AtomicU64>,
}

impl ProvideCredentials for Counting {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // The provider's own STS client is out of reach of our interceptor: count it here.
        future::ProvideCredentials::new(async move {
            let result = self.inner.provide_credentials().await;
            let outcome = if result.is_ok() { "ok" } else { "error" };
            crate::telemetry::metrics::aws_call("sts", "AssumeRole", outcome);
            result
        })
    }
}

/// Keeps one account's spoke credentials until five minutes before they expire, and lets one
/// caller at a time fetch them: the IAM client and every S3/SQS/SNS client of the account (one
/// per region) share one AssumeRole. (The SDK's identity cache is per client configuration.)
#[derive(Debug)]
struct Shared {
    inner: Counting,
    slot: Mutex<Option<aws_credential_types::Credentials>>,
}

impl ProvideCredentials for Shared {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let mut slot = self.slot.lock().await;
            let margin = std::time::Duration::from_secs(300);
            if let Some(c) = slot.as_ref()
                && c.expiry()
                    .is_none_or(|e| e > std::time::SystemTime::now() + margin)
            {
                return Ok(c.clone());
            }
            let fresh = self.inner.provide_credentials().await?;
            *slot = Some(fresh.clone());
            Ok(fresh)
        })
    }
}

pub struct AwsCloud {
    sdk: SdkConfig,
    /// Spoke account id → role name to assume.
    roles: HashMap<String, String>,
    clients: Mutex<HashMap<String, aws_sdk_iam::Client>>,
    /// Spoke account id → its AssumeRole credentials, shared by the IAM client and the
    /// S3/SQS/SNS clients of every region (one credential cache per account).
    credentials: Mutex<HashMap<String, SharedCredentialsProvider>>,
    /// `aws.regions` (or `aws.region`).
    regions: Vec<String>,
    assume_role_calls: Arc<AtomicU64>,
    /// The central role iamdesk runs as (from STS GetCallerIdentity at startup), if it is one.
    central_role: Option<(String, String)>,
}

/// An STS client with the central account's credentials, its calls counted.
fn sts_client(sdk: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(sdk)
            .interceptor(crate::telemetry::aws::CallMetrics)
            .build(),
    )
}

/// `arn:aws:sts::<account>:assumed-role/<role>/<session>` → (account, role).
pub fn assumed_role_of(caller_arn: &str) -> Option<(String, String)> {
    let rest = caller_arn.strip_prefix("arn:aws:sts::")?;
    let (account, resource) = rest.split_once(':')?;
    let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
    (!role.is_empty()).then(|| (account.to_string(), role.to_string()))
}

impl AwsCloud {
    pub async fn new(config: &Config) -> Self {
        let sdk = crate::aws::sdk_config(config).await;
        let roles = config
            .account_ids_to_name
            .keys()
            .map(|id| (id.clone(), config.spoke_role_name(id).to_string()))
            .collect();
        let central_role = Self::who_am_i(&sdk).await;
        AwsCloud {
            sdk,
            roles,
            clients: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            regions: config.aws.sync_regions(),
            assume_role_calls: Arc::new(AtomicU64::new(0)),
            central_role,
        }
    }

    /// The central role, so no request can target it. Best effort: without an answer within a
    /// few seconds, only the spoke roles are protected (and a warning says so).
    async fn who_am_i(sdk: &SdkConfig) -> Option<(String, String)> {
        let sts = sts_client(sdk);
        let call = sts.get_caller_identity().send();
        match tokio::time::timeout(std::time::Duration::from_secs(5), call).await {
            Ok(Ok(identity)) => {
                let found = identity.arn().and_then(assumed_role_of);
                if let Some((account, role)) = &found {
                    tracing::info!(
                        account,
                        role,
                        "central role found; requests cannot target it"
                    );
                }
                found
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::aws::error_text(&e), "cannot tell the central role (sts:GetCallerIdentity)");
                None
            }
            Err(_) => {
                tracing::warn!("cannot tell the central role: sts:GetCallerIdentity timed out");
                None
            }
        }
    }

    /// How many times spoke credentials were fetched from STS (tests and metrics).
    pub fn assume_role_calls(&self) -> u64 {
        self.assume_role_calls.load(Ordering::Relaxed)
    }

    pub fn spoke_role_arn(&self, account_id: &str) -> Result<String, CloudError> {
        let role = self
            .roles
            .get(account_id)
            .ok_or_else(|| CloudError::UnknownAccount(account_id.to_string()))?;
        Ok(format!("arn:aws:iam::{account_id}:role/{role}"))
    }

    /// The spoke credentials of an account, created once and shared by all its clients.
    async fn spoke_credentials(
        &self,
        account_id: &str,
    ) -> Result<SharedCredentialsProvider, CloudError> {
        let mut all = self.credentials.lock().await;
        if let Some(c) = all.get(account_id) {
            return Ok(c.clone());
        }
        let provider = AssumeRoleProvider::builder(self.spoke_role_arn(account_id)?)
            .session_name(SESSION_NAME)
            .configure(&self.sdk)
            .build()
            .await;
        let counting = SharedCredentialsProvider::new(Shared {
            inner: Counting {
                inner: provider,
                calls: self.assume_role_calls.clone(),
            },
            slot: Mutex::new(None),
        });
        all.insert(account_id.to_string(), counting.clone());
        Ok(counting)
    }

    /// The S3, SQS and SNS clients of a spoke account in `region` (cheap: the credentials and
    /// the HTTP client are shared).
    pub(super) async fn service_clients(
        &self,
        account_id: &str,
        region: &str,
    ) -> Result<super::aws_services::Clients, CloudError> {
        let credentials = self.spoke_credentials(account_id).await?;
        let region = aws_config::Region::new(region.to_string());
        // moto (AWS_ENDPOINT_URL) serves buckets by path, not by virtual host.
        let path_style = self.sdk.endpoint_url().is_some();
        Ok(super::aws_services::Clients {
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&self.sdk)
                    .credentials_provider(credentials.clone())
                    .region(region.clone())
                    .force_path_style(path_style)
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&self.sdk)
                    .credentials_provider(credentials.clone())
                    .region(region.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(&self.sdk)
                    .credentials_provider(credentials)
                    .region(region)
                    .build(),
            ),
        })
    }

    /// The IAM client of a spoke account, created once and reused.
    async fn iam(&self, account_id: &str) -> Result<aws_sdk_iam::Client, CloudError> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(account_id) {
            return Ok(c.clone());
        }
        let counting = self.spoke_credentials(account_id).await?;
        let conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .credentials_provider(counting)
            .interceptor(crate::telemetry::aws::CallMetrics)
            .build();
        let client = aws_sdk_iam::Client::from_conf(conf);
        clients.insert(account_id.to_string(), client.clone());
        Ok(client)
    }
}

pub(super) fn aws_error<E>(e: aws_sdk_iam::error::SdkError<E>) -> CloudError
where
    E: std::error::Error + aws_sdk_iam::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    use aws_sdk_iam::error::ProvideErrorMetadata as _;
    CloudError::Aws {
        code: e.code().map(str::to_string),
        message: crate::aws::error_text(&e),
    }
}

pub(super) fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// IAM returns policy documents URL-encoded.
fn decode_document(raw: Option<&str>) -> Value {
    let Some(raw) = raw else {
        return Value::Null;
    };
    let decoded = urlencoding::decode(raw)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| raw.to_string());
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded))
}

fn inline(list: &[PolicyDetail]) -> Vec<InlinePolicy> {
    list.iter()
        .map(|p| InlinePolicy {
            name: p.policy_name().unwrap_or_default().to_string(),
            document: decode_document(p.policy_document()),
        })
        .collect()
}

fn attached(list: &[aws_sdk_iam::types::AttachedPolicy]) -> Vec<AttachedPolicy> {
    list.iter()
        .map(|p| AttachedPolicy {
            name: p.policy_name().unwrap_or_default().to_string(),
            arn: p.policy_arn().unwrap_or_default().to_string(),
        })
        .collect()
}

fn tags(list: &[aws_sdk_iam::types::Tag]) -> Vec<Tag> {
    list.iter()
        .map(|t| Tag {
            key: t.key().to_string(),
            value: t.value().to_string(),
        })
        .collect()
}

fn role_principal(account_id: &str, r: &aws_sdk_iam::types::RoleDetail) -> Principal {
    Principal {
        kind: ResourceKind::Role,
        account_id: account_id.to_string(),
        name: r.role_name().unwrap_or_default().to_string(),
        arn: r.arn().unwrap_or_default().to_string(),
        path: r.path().unwrap_or("/").to_string(),
        id: r.role_id().unwrap_or_default().to_string(),
        description: None,
        created_at: time(r.create_date()),
        last_used_at: time(r.role_last_used().and_then(|u| u.last_used_date())),
        max_session_duration: None,
        trust_policy: Some(decode_document(r.assume_role_policy_document())),
        inline_policies: inline(r.role_policy_list()),
        managed_policies: attached(r.attached_managed_policies()),
        permissions_boundary: r
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string),
        tags: tags(r.tags()),
    }
}

fn user_principal(account_id: &str, u: &aws_sdk_iam::types::UserDetail) -> Principal {
    Principal {
        kind: ResourceKind::User,
        account_id: account_id.to_string(),
        name: u.user_name().unwrap_or_default().to_string(),
        arn: u.arn().unwrap_or_default().to_string(),
        path: u.path().unwrap_or("/").to_string(),
        id: u.user_id().unwrap_or_default().to_string(),
        description: None,
        created_at: time(u.create_date()),
        last_used_at: None,
        max_session_duration: None,
        trust_policy: None,
        inline_policies: inline(u.user_policy_list()),
        managed_policies: attached(u.attached_managed_policies()),
        permissions_boundary: u
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string),
        tags: tags(u.tags()),
    }
}

fn managed_policy(account_id: &str, p: &aws_sdk_iam::types::ManagedPolicyDetail) -> ManagedPolicy {
    let default = p.default_version_id();
    let document = p
        .policy_version_list()
        .iter()
        .find(|v| v.is_default_version() || (default.is_some() && v.version_id() == default))
        .map(|v| decode_document(v.document()))
        .unwrap_or(Value::Null);
    let mut versions: Vec<PolicyVersion> = p
        .policy_version_list()
        .iter()
        .map(|v| PolicyVersion {
            id: v.version_id().unwrap_or_default().to_string(),
            is_default: v.is_default_version(),
            created_at: time(v.create_date()),
            document: decode_document(v.document()),
        })
        .collect();
    // Newest first: `v10` after `v9`, so by number, not by text.
    versions.sort_by_key(|v| {
        std::cmp::Reverse(v.id.trim_start_matches('v').parse::<u32>().unwrap_or(0))
    });
    let arn = p.arn().unwrap_or_default();
    ManagedPolicy {
        account_id: account_id.to_string(),
        // moto answers with an empty name; the ARN's last segment is the name.
        name: p
            .policy_name()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default())
            .to_string(),
        arn: p.arn().unwrap_or_default().to_string(),
        path: p.path().unwrap_or("/").to_string(),
        description: p.description().map(str::to_string),
        attachment_count: p.attachment_count().unwrap_or(0),
        document,
        versions,
        // Filled from the principals of the same read (`AccountSnapshot::link_attachments`).
        attached_to: vec![],
    }
}

#[async_trait]
impl Cloud for AwsCloud {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn central_role(&self) -> Option<(String, String)> {
        self.central_role.clone()
    }

    async fn fetch_account(
        &self,
        account_id: &str,
        account_name: &str,
    ) -> Result<AccountSnapshot, CloudError> {
        let iam = self.iam(account_id).await?;
        let mut snapshot = AccountSnapshot {
            account_id: account_id.to_string(),
            account_name: account_name.to_string(),
            synced_at: Some(Utc::now()),
            ..Default::default()
        };
        let mut pages = iam
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .filter(EntityType::User)
            .filter(EntityType::LocalManagedPolicy)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws_error)?;
            snapshot.principals.extend(
                page.role_detail_list()
                    .iter()
                    .map(|r| role_principal(account_id, r)),
            );
            snapshot.principals.extend(
                page.user_detail_list()
                    .iter()
                    .map(|u| user_principal(account_id, u)),
            );
            snapshot.policies.extend(
                page.policies()
                    .iter()
                    .map(|p| managed_policy(account_id, p)),
            );
        }
        Ok(snapshot)
    }

    /// GetRole, ListRolePolicies and ListAttachedRolePolicies at once, then every GetRolePolicy
    /// at once: two round trips to IAM (a refresh after an approval waits for them).
    async fn fetch_role(
        &self,
        account_id: &str,
        role_name: &str,
    ) -> Result<Option<Principal>, CloudError> {
        let iam = self.iam(account_id).await?;
        let names = async {
            let mut names = vec![];
            let mut pages = iam
                .list_role_policies()
                .role_name(role_name)
                .into_paginator()
                .items()
                .send();
            while let Some(name) = pages.next().await {
                names.push(name.map_err(aws_error)?);
            }
            Ok::<_, CloudError>(names)
        };
        let attached = async {
            let mut attached = vec![];
            let mut pages = iam
                .list_attached_role_policies()
                .role_name(role_name)
                .into_paginator()
                .items()
                .send();
            while let Some(p) = pages.next().await {
                let p = p.map_err(aws_error)?;
                attached.push(AttachedPolicy {
                    name: p.policy_name().unwrap_or_default().to_string(),
                    arn: p.policy_arn().unwrap_or_default().to_string(),
                });
            }
            Ok::<_, CloudError>(attached)
        };
        let (role, names, managed_policies) =
            tokio::join!(iam.get_role().role_name(role_name).send(), names, attached);
        let role = match role {
            Ok(out) => match out.role {
                Some(r) => r,
                None => return Ok(None),
            },
            // Gone: the two listings failed the same way; that is the answer, not an error.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws_error(e)),
        };
        let (names, managed_policies) = (names?, managed_policies?);
        let documents = futures::future::try_join_all(names.iter().map(|name| {
            iam.get_role_policy()
                .role_name(role_name)
                .policy_name(name)
                .send()
        }))
        .await
        .map_err(aws_error)?;
        let inline_policies = names
            .into_iter()
            .zip(documents)
            .map(|(name, doc)| InlinePolicy {
                name,
                document: decode_document(Some(doc.policy_document())),
            })
            .collect();
        Ok(Some(Principal {
            kind: ResourceKind::Role,
            account_id: account_id.to_string(),
            name: role.role_name().to_string(),
            arn: role.arn().to_string(),
            path: role.path().to_string(),
            id: role.role_id().to_string(),
            description: role.description().map(str::to_string),
            created_at: DateTime::from_timestamp(role.create_date().secs(), 0),
            last_used_at: time(role.role_last_used().and_then(|u| u.last_used_date())),
            max_session_duration: role.max_session_duration(),
            trust_policy: Some(decode_document(role.assume_role_policy_document())),
            inline_policies,
            managed_policies,
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            tags: tags(role.tags()),
        }))
    }

    async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        duration_seconds: i32,
    ) -> Result<super::RoleCredentials, CloudError> {
        let sts = sts_client(&self.sdk);
        let out = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .source_identity(session_name)
            .duration_seconds(duration_seconds)
            .send()
            .await
            .map_err(aws_error)?;
        let c = out.credentials().ok_or_else(|| CloudError::Aws {
            code: None,
            message: "STS AssumeRole answered without credentials".into(),
        })?;
        let expiration = time(Some(c.expiration())).ok_or_else(|| CloudError::Aws {
            code: None,
            message: "STS AssumeRole answered without an expiration".into(),
        })?;
        Ok(super::RoleCredentials {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().to_string(),
            expiration,
        })
    }

    // --- Right-sizing: IAM Access Advisor. ----------------------------------------------

    async fn start_access_advisor(
        &self,
        account_id: &str,
        role_arn: &str,
    ) -> Result<String, CloudError> {
        let out = self
            .iam(account_id)
            .await?
            .generate_service_last_accessed_details()
            .arn(role_arn)
            .granularity(aws_sdk_iam::types::AccessAdvisorUsageGranularityType::ActionLevel)
            .send()
            .await
            .map_err(aws_error)?;
        out.job_id()
            .map(str::to_string)
            .ok_or_else(|| CloudError::Aws {
                code: None,
                message: "GenerateServiceLastAccessedDetails returned no JobId".into(),
            })
    }

    async fn poll_access_advisor(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> Result<AdvisorJob, CloudError> {
        use aws_sdk_iam::types::JobStatusType;
        let iam = self.iam(account_id).await?;
        let mut services = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = iam
                .get_service_last_accessed_details()
                .job_id(job_id)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(aws_error)?;
            match out.job_status() {
                JobStatusType::InProgress => return Ok(AdvisorJob::InProgress),
                JobStatusType::Failed => {
                    let why = out
                        .error()
                        .map(|e| format!("{}: {}", e.code(), e.message()))
                        .unwrap_or_else(|| "the Access Advisor job failed".into());
                    return Ok(AdvisorJob::Failed(why));
                }
                _ => {}
            }
            services.extend(out.services_last_accessed().iter().map(|s| {
                ServiceAccess {
                    namespace: s.service_namespace().to_ascii_lowercase(),
                    name: s.service_name().to_string(),
                    last_authenticated: time(s.last_authenticated()),
                    tracked_actions: s
                        .tracked_actions_last_accessed()
                        .iter()
                        .filter_map(|a| {
                            let name = a.action_name()?;
                            // AWS writes `GetObject`; tolerate `s3:GetObject` too.
                            let name = name.split_once(':').map_or(name, |(_, n)| n);
                            Some(ActionAccess {
                                action: name.to_string(),
                                last_accessed: time(a.last_accessed_time()),
                            })
                        })
                        .collect(),
                }
            }));
            match out.marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_string()),
                _ => return Ok(AdvisorJob::Completed(services)),
            }
        }
    }

    async fn apply(&self, account_id: &str, op: &IamOp) -> Result<(), CloudError> {
        // Every arm is one IAM call whose output we do not need.
        macro_rules! send {
            ($call:expr) => {
                $call.send().await.map(drop).map_err(aws_error)
            };
        }
        if let Some(region) = op.region() {
            let clients = self.service_clients(account_id, region).await?;
            if let Some(done) = super::aws_services::apply(&clients, op).await {
                return done;
            }
        }
        let iam = self.iam(account_id).await?;
        let doc = |v: &Value| v.to_string();
        let tag = |t: &Tag| {
            aws_sdk_iam::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(|e| CloudError::Aws {
                    code: None,
                    message: format!("invalid tag: {e}"),
                })
        };
        match op {
            IamOp::PutRolePolicy {
                role,
                policy_name,
                document,
            } => send!(
                iam.put_role_policy()
                    .role_name(role)
                    .policy_name(policy_name)
                    .policy_document(doc(document))
            ),
            IamOp::DeleteRolePolicy { role, policy_name } => send!(
                iam.delete_role_policy()
                    .role_name(role)
                    .policy_name(policy_name)
            ),
            IamOp::AttachRolePolicy { role, policy_arn } => send!(
                iam.attach_role_policy()
                    .role_name(role)
                    .policy_arn(policy_arn)
            ),
            IamOp::DetachRolePolicy { role, policy_arn } => send!(
                iam.detach_role_policy()
                    .role_name(role)
                    .policy_arn(policy_arn)
            ),
            IamOp::PutRolePermissionsBoundary { role, policy_arn } => send!(
                iam.put_role_permissions_boundary()
                    .role_name(role)
                    .permissions_boundary(policy_arn)
            ),
            IamOp::DeleteRolePermissionsBoundary { role } => {
                send!(iam.delete_role_permissions_boundary().role_name(role))
            }
            IamOp::UpdateAssumeRolePolicy { role, document } => send!(
                iam.update_assume_role_policy()
                    .role_name(role)
                    .policy_document(doc(document))
            ),
            IamOp::TagRole { role, tags } => send!(
                iam.tag_role()
                    .role_name(role)
                    .set_tags(Some(tags.iter().map(tag).collect::<Result<Vec<_>, _>>()?))
            ),
            IamOp::UntagRole { role, keys } => send!(
                iam.untag_role()
                    .role_name(role)
                    .set_tag_keys(Some(keys.clone()))
            ),
            IamOp::CreateRole {
                role,
                path,
                description,
                trust,
                tags,
            } => send!(
                iam.create_role()
                    .role_name(role)
                    .path(path)
                    .set_description(description.clone())
                    .assume_role_policy_document(doc(trust))
                    .set_tags(
                        (!tags.is_empty())
                            .then(|| tags.iter().map(tag).collect::<Result<Vec<_>, _>>())
                            .transpose()?,
                    )
            ),
            IamOp::CreatePolicy {
                policy_name,
                path,
                description,
                document,
            } => send!(
                iam.create_policy()
                    .policy_name(policy_name)
                    .path(path)
                    .set_description(description.clone())
                    .policy_document(doc(document))
            ),
            IamOp::CreatePolicyVersion {
                policy_arn,
                document,
            } => send!(
                iam.create_policy_version()
                    .policy_arn(policy_arn)
                    .policy_document(doc(document))
                    .set_as_default(true)
            ),
            IamOp::DeletePolicyVersion {
                policy_arn,
                version_id,
            } => send!(
                iam.delete_policy_version()
                    .policy_arn(policy_arn)
                    .version_id(version_id)
            ),
            other => Err(CloudError::Unsupported(format!(
                "{} is not an IAM call",
                other.action()
            ))),
        }
    }

    // ---- Buckets, queues and topics (issue 14) --------------------------------------------

    fn regions(&self) -> Vec<String> {
        self.regions.clone()
    }

    async fn fetch_service(
        &self,
        account_id: &str,
        service: ResourceKind,
        region: &str,
    ) -> Result<Vec<ServiceResource>, CloudError> {
        let clients = self.service_clients(account_id, region).await?;
        match service {
            ResourceKind::S3 => super::aws_services::buckets(self, account_id, &clients).await,
            ResourceKind::Sqs => super::aws_services::queues(account_id, region, &clients).await,
            ResourceKind::Sns => super::aws_services::topics(account_id, region, &clients).await,
            other => Err(CloudError::Unsupported(format!(
                "{} is not a service with resource policies",
                other.as_str()
            ))),
        }
    }

    /// Just the one bucket, queue or topic: a refresh after an approval costs the same in an
    /// account of ten buckets or ten thousand.
    async fn fetch_service_resource(
        &self,
        account_id: &str,
        kind: ResourceKind,
        region: &str,
        name: &str,
    ) -> Result<Option<ServiceResource>, CloudError> {
        use super::aws_services::{bucket, queue_named, topic_named};
        match kind {
            ResourceKind::S3 => {
                // Where the bucket lives is asked of the first configured region's endpoint, as
                // the listing does (`buckets`).
                let listing = self.regions().into_iter().next().unwrap_or_default();
                let clients = self.service_clients(account_id, &listing).await?;
                bucket(self, account_id, &clients, name.to_string()).await
            }
            ResourceKind::Sqs => {
                let clients = self.service_clients(account_id, region).await?;
                queue_named(account_id, region, &clients, name).await
            }
            ResourceKind::Sns => {
                let clients = self.service_clients(account_id, region).await?;
                topic_named(account_id, region, &clients, name).await
            }
            other => Err(CloudError::Unsupported(format!(
                "{} is not a service with resource policies",
                other.as_str()
            ))),
        }
    }
}
