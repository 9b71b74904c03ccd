//! Typed configuration. Every key of GUIDE §2 with its default. Field names follow ConsoleMe's
//! keys so a ConsoleMe config keeps working.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    #[default]
    Prod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Embedded,
    Dynamodb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AwsMode {
    Aws,
    Sandbox,
}

/// The effective configuration after discovery, `extends` merging and `${ENV}` expansion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub url: String,
    pub listen: SocketAddr,
    pub environment: Environment,
    pub application_admin: Option<String>,
    /// HS256 key for the session cookie. Secret: redacted by `check-config`.
    pub jwt_secret: Option<String>,
    pub auth: AuthConfig,
    pub get_user_by_aws_alb_auth_settings: AlbAuthSettings,
    pub groups: GroupsConfig,
    /// Normalised 12-digit account id → name.
    pub account_ids_to_name: BTreeMap<String, String>,
    /// Per-account overrides (`accounts.<id>.role_name`).
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Accounts whose changes are sensitive: ids or name globs. Written `accounts.sensitive`
    /// (moved here by the loader, as `accounts` otherwise holds account ids).
    pub sensitive_accounts: Vec<String>,
    pub policies: PoliciesConfig,
    pub aws: AwsConfig,
    pub storage: StorageConfig,
    pub redis: RedisConfig,
    pub ses: SesConfig,
    pub slack: SlackConfig,
    pub dynamodb_server: Option<String>,
    pub cloud_credential_authorization_mapping: CredentialMapping,
    pub sync: SyncConfig,
    pub rate_limit: RateLimitConfig,
    pub outbox: OutboxConfig,
    /// The self-service wizard's permission templates (default: the built-in set).
    pub self_service: crate::selfservice::templates::SelfServiceConfig,
    /// Who must approve which requests (`approvals.rules`, first match wins).
    pub approvals: ApprovalsConfig,
    /// Applying one's own temporary grant at once, audited (`groups.can_break_glass`).
    pub break_glass: BreakGlassConfig,
    /// Events from AWS: Config findings, IAM changes, access denials (`src/events/`).
    pub events: EventsConfig,
    /// Prometheus metrics on a private listener (`metrics.listen`; off by default).
    pub metrics: MetricsConfig,
    /// Right-sizing: Access Advisor usage and unused-permission proposals (`src/rightsize/`).
    pub rightsize: crate::rightsize::RightsizeConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApprovalsConfig {
    /// Checked in order; the first whose `match` fits the request decides. No rule (or none
    /// that fits): one approval by an administrator.
    pub rules: Vec<ApprovalRule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApprovalRule {
    pub name: String,
    /// Every given criterion must hold (an empty `match` fits every request).
    #[serde(rename = "match")]
    pub matches: RuleMatch,
    /// Approvals from distinct people, per group list.
    pub require: Vec<Requirement>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleMatch {
    /// Account ids or name globs; a request fits when one of its changes is in one.
    pub accounts: Vec<String>,
    /// Change types (`inline_policy`, `create_role`, …); one change of one of them.
    pub change_types: Vec<String>,
    /// The request's highest risk is at least this.
    pub min_risk: Option<crate::requests::risk::Level>,
    /// Tags (key → value glob) of a role a change targets.
    pub principal_tags: BTreeMap<String, String>,
    /// Path globs (`/prod/*`) of a role a change targets.
    pub principal_paths: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Requirement {
    /// Users (with `@`) or groups, like `groups.can_admin`.
    pub groups: Vec<String>,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakGlassConfig {
    /// The longest a break-glass grant may last.
    pub max_hours: u32,
    /// Break-glass requests one person may make in 24 hours.
    pub max_per_day: usize,
}

impl Default for BreakGlassConfig {
    fn default() -> Self {
        BreakGlassConfig {
            max_hours: 4,
            max_per_day: 3,
        }
    }
}

/// `events.*`: where AWS events come from and what to do with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// SQS queues (URLs, or ARNs as ConsoleMe's `event_bridge` keys had them) long-polled by
    /// the leader replica, with the portal's own credentials.
    pub queues: Vec<String>,
    /// SNS topic ARNs whose messages `POST /api/v2/events/sns` accepts (and whose subscriptions
    /// it confirms). Empty: that endpoint refuses everything.
    pub sns_topics: Vec<String>,
    /// Long-poll wait of one ReceiveMessage, 0 to 20 seconds (0: poll every second).
    pub wait_seconds: u64,
    /// How long a message that cannot be parsed stays hidden before the queue offers it again;
    /// after the queue's `maxReceiveCount` its redrive policy moves it to the dead-letter queue.
    pub unparseable_retry_seconds: u64,
    pub config: ConfigRulesEvents,
    pub denies: DeniesEvents,
}

/// `events.config.*`: AWS Config compliance changes posted to Slack.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigRulesEvents {
    /// The same rule and resource in the same state are not posted again within this time.
    pub repeat_minutes: u64,
}

/// `events.denies.*`: access-denied events grouped per role, action and resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DeniesEvents {
    /// A group not seen for this long is dropped.
    pub keep_days: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            queues: vec![],
            sns_topics: vec![],
            wait_seconds: 20,
            unparseable_retry_seconds: 300,
            config: ConfigRulesEvents::default(),
            denies: DeniesEvents::default(),
        }
    }
}

impl Default for ConfigRulesEvents {
    fn default() -> Self {
        ConfigRulesEvents { repeat_minutes: 60 }
    }
}

impl Default for DeniesEvents {
    fn default() -> Self {
        DeniesEvents { keep_days: 30 }
    }
}

/// Delivery of notifications from the outbox (email, Slack).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxConfig {
    /// Attempts before a message is marked dead (an admin can still retry it).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled on every further attempt, capped at one hour.
    pub retry_seconds: u64,
    /// How often the worker looks for due messages (it is also woken on every new message).
    pub poll_seconds: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 6,
            retry_seconds: 30,
            poll_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub get_user_by_aws_alb_auth: bool,
    pub set_auth_cookie: bool,
    pub get_user_by_header: bool,
    pub get_groups_by_header: bool,
    pub user_header_name: String,
    pub groups_header_name: String,
    pub cookie_name: String,
    pub session_minutes: u64,
    pub alb: AlbConfig,
    /// Proxies (CIDRs or addresses) allowed to speak for a client: header sign-in is accepted
    /// only from them, and `X-Forwarded-For` only when they sent it. Empty: loopback only.
    pub trusted_proxies: Vec<Cidr>,
    /// ConsoleMe's `auth.remote_ip`: which header carries the client's address.
    pub remote_ip: RemoteIpConfig,
    /// An API token stops working when its owner has not signed in to the portal (ALB, proxy
    /// header) for this many days; their groups are refreshed at every such sign-in.
    pub api_token_max_idle_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RemoteIpConfig {
    /// E.g. `X-Forwarded-For`. Believed only from `auth.trusted_proxies`; read right to left,
    /// the first address that is not a trusted proxy is the client.
    pub trusted_remote_ip_header: Option<String>,
}

/// An IP network from the config: `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.1.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, ip: &std::net::IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Cidr)
            .map_err(|_| {
                format!("'{s}' is not an IP network: write a CIDR like 10.0.0.0/8 or one address")
            })
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AlbConfig {
    pub arns: Vec<String>,
    pub public_key_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AlbAuthSettings {
    pub jwt_email_key: String,
    pub jwt_groups_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GroupsConfig {
    pub can_admin: Vec<String>,
    pub can_admin_policies: Vec<String>,
    pub fallback_policy_request_reviewers: Vec<String>,
    /// Users or groups who may apply their own temporary grant at once, with a reason.
    pub can_break_glass: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AccountConfig {
    pub role_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PoliciesConfig {
    pub role_name: String,
    pub allow_self_approval: bool,
    /// Managed policies one role may have attached (AWS's default quota is 10; it can be raised).
    pub max_managed_policies: usize,
    /// Comments one request may have (each at most 5,000 characters).
    pub max_comments: usize,
    /// How far ahead a grant's `expiration_date` may be.
    pub max_expiration_days: u32,
    /// Which grants must carry an `expiration_date`.
    pub require_expiration: RequireExpiration,
    /// Mail the requester this long before one of their grants expires.
    pub expiry_reminder_hours: u32,
    /// Also remove inline policies named by ConsoleMe's scheme (`{temp_policy_prefix}_{YYYYmmdd}_…`)
    /// on their day, so a ConsoleMe install keeps its expiries.
    pub temp_policy_support: bool,
    pub temp_policy_prefix: String,
}

/// `policies.require_expiration`: grants in these accounts (ids or name globs), or at this risk
/// level or above, must expire.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RequireExpiration {
    pub accounts: Vec<String>,
    pub min_risk: Option<crate::requests::risk::Level>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AwsConfig {
    pub region: String,
    /// Regions whose queues and topics a sync reads (buckets are listed once, whatever their
    /// region); empty means `region`. ConsoleMe's `celery.sync_regions` is read as a synonym.
    pub regions: Vec<String>,
    pub mode: AwsMode,
    pub federation_url: String,
    /// ConsoleMe's policy request table, read by `iamdesk import consoleme` (ConsoleMe's key).
    pub policy_requests_dynamo_table: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// The embedded database FILE.
    pub path: PathBuf,
    pub dynamodb: DynamoConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DynamoConfig {
    pub table_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// Secret (may carry a password): redacted by `check-config`.
    pub url: Option<String>,
    /// Prefix of every key iamdesk writes, so several portals (or test runs) can share a Redis.
    /// Replicas of one portal must use the same prefix: it names their sync leader lock.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "iamdesk:".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SesConfig {
    pub support_reference: String,
    pub arn: Option<String>,
    pub region: String,
    pub consoleme: SesSender,
    pub override_receivers_for_dev: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SesSender {
    pub name: String,
    pub sender: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SlackConfig {
    pub notifications_enabled: bool,
    /// Secret: redacted by `check-config`.
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CredentialMapping {
    pub role_tags: RoleTags,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleTags {
    pub enabled: bool,
    pub authorized_groups_tags: Vec<String>,
    pub authorized_groups_cli_only_tags: Vec<String>,
}

/// `metrics.listen`: where Prometheus scrapes `/metrics`. A listener of its own, so the series
/// (route names, account ids, queue depths) never reach the public port or its load balancer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Absent (the default): no metrics are recorded and nothing listens.
    pub listen: Option<SocketAddr>,
}

impl MetricsConfig {
    /// Why `metrics.listen` cannot be used beside the public `listen` address, if it cannot.
    pub fn check(&self, public: SocketAddr) -> Result<(), String> {
        let Some(metrics) = self.listen else {
            return Ok(());
        };
        let same_ip = metrics.ip() == public.ip()
            || metrics.ip().is_unspecified()
            || public.ip().is_unspecified();
        if metrics.port() != 0 && metrics.port() == public.port() && same_ip {
            return Err(format!(
                "must not be the public listen address ({public}): /metrics is served only on a \
                 private listener; pick another port, e.g. 127.0.0.1:9090"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncConfig {
    pub interval_seconds: u64,
    /// How long the sync leader's lock lives without renewal: how soon another replica takes
    /// over from one that died. 0 (default): `interval_seconds` + 60.
    pub leader_lock_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub api_per_minute: u32,
    pub login_per_minute: u32,
}

impl Config {
    pub fn is_dev(&self) -> bool {
        self.environment == Environment::Dev
    }

    /// A sign-in method is configured (ALB or proxy header); without one, demo mode.
    pub fn sign_in_configured(&self) -> bool {
        self.auth.get_user_by_aws_alb_auth || self.auth.get_user_by_header
    }

    /// Served over https (`url`): cookies then get the `__Host-` prefix.
    pub fn is_https(&self) -> bool {
        self.url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// Whether `ip` is a proxy allowed to speak for clients (`auth.trusted_proxies`, loopback
    /// when the list is empty).
    pub fn trusts_proxy(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.auth.trusted_proxies.is_empty() {
            ip.is_loopback()
        } else {
            self.auth.trusted_proxies.iter().any(|c| c.contains(&ip))
        }
    }

    /// Role assumed in a spoke account: `accounts.<id>.role_name`, else `policies.role_name`.
    pub fn spoke_role_name(&self, account_id: &str) -> &str {
        self.accounts
            .get(account_id)
            .and_then(|a| a.role_name.as_deref())
            .unwrap_or(&self.policies.role_name)
    }
}

// Every section has its own `Default` so that `#[serde(default)]` can fill in a partly written
// section (`auth:` with one key) and so the loader can derive the set of supported keys from
// `Config::default()` (one source of truth).

impl Default for Config {
    /// Built-in demo defaults: what `cargo run` serves with no config file at all.
    fn default() -> Self {
        Config {
            url: "http://127.0.0.1:8081".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            environment: Environment::Prod,
            application_admin: None,
            jwt_secret: None,
            auth: AuthConfig::default(),
            get_user_by_aws_alb_auth_settings: AlbAuthSettings::default(),
            groups: GroupsConfig::default(),
            account_ids_to_name: BTreeMap::new(),
            accounts: BTreeMap::new(),
            sensitive_accounts: vec![],
            policies: PoliciesConfig::default(),
            aws: AwsConfig::default(),
            storage: StorageConfig::default(),
            redis: RedisConfig::default(),
            ses: SesConfig::default(),
            slack: SlackConfig::default(),
            dynamodb_server: None,
            cloud_credential_authorization_mapping: CredentialMapping::default(),
            sync: SyncConfig::default(),
            rate_limit: RateLimitConfig::default(),
            outbox: OutboxConfig::default(),
            self_service: Default::default(),
            approvals: Default::default(),
            break_glass: Default::default(),
            events: EventsConfig::default(),
            metrics: MetricsConfig::default(),
            rightsize: Default::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            get_user_by_aws_alb_auth: false,
            set_auth_cookie: false,
            get_user_by_header: false,
            get_groups_by_header: false,
            user_header_name: "x-user".into(),
            groups_header_name: "x-groups".into(),
            cookie_name: "iamdesk_auth".into(),
            session_minutes: 60,
            alb: AlbConfig::default(),
            trusted_proxies: vec![],
            remote_ip: RemoteIpConfig::default(),
            api_token_max_idle_days: 7,
        }
    }
}

impl Default for AlbConfig {
    fn default() -> Self {
        AlbConfig {
            arns: vec![],
            public_key_url: "https://public-keys.auth.elb.{region}.amazonaws.com/{kid}".into(),
        }
    }
}

impl Default for AlbAuthSettings {
    fn default() -> Self {
        AlbAuthSettings {
            jwt_email_key: "email".into(),
            jwt_groups_key: "groups".into(),
        }
    }
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig {
            role_name: "ConsoleMeRole".into(),
            allow_self_approval: false,
            max_managed_policies: 10,
            max_comments: 200,
            max_expiration_days: 90,
            require_expiration: RequireExpiration::default(),
            expiry_reminder_hours: 24,
            temp_policy_support: false,
            temp_policy_prefix: "cm_delete-on".into(),
        }
    }
}

impl AwsConfig {
    /// `regions`, or the configured region alone.
    pub fn sync_regions(&self) -> Vec<String> {
        if self.regions.is_empty() {
            vec![self.region.clone()]
        } else {
            self.regions.clone()
        }
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: "us-east-1".into(),
            regions: vec![],
            // The loader switches this to `aws` when accounts are configured and `aws.mode`
            // is not written.
            mode: AwsMode::Sandbox,
            federation_url: "https://signin.aws.amazon.com/federation".into(),
            policy_requests_dynamo_table: "consoleme_policy_requests".into(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Embedded,
            path: PathBuf::from("data/iamdesk.db"),
            dynamodb: DynamoConfig::default(),
        }
    }
}

impl Default for SesConfig {
    fn default() -> Self {
        SesConfig {
            support_reference: String::new(),
            arn: None,
            region: "us-west-2".into(),
            consoleme: SesSender::default(),
            override_receivers_for_dev: vec![],
        }
    }
}

impl Default for SesSender {
    fn default() -> Self {
        SesSender {
            name: "iamdesk".into(),
            sender: None,
        }
    }
}

impl Default for RoleTags {
    fn default() -> Self {
        RoleTags {
            enabled: true,
            authorized_groups_tags: vec!["consoleme-authorized".into()],
            authorized_groups_cli_only_tags: vec![
                "consoleme-owner-dl".into(),
                "consoleme-authorized-cli-only".into(),
            ],
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval_seconds: 3600,
            leader_lock_seconds: 0,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            api_per_minute: 600,
            login_per_minute: 60,
        }
    }
}
