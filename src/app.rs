//! Application state: the effective config and the backends chosen from it.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::memory::MemoryCache;
use crate::cache::{Cache, CachedStore};
use crate::cloud::Cloud;
use crate::config::{AwsMode, Config, StorageBackend};
use crate::resources::service::Resources;
use crate::store::{Store, dynamo::DynamoStore, embedded::EmbeddedStore};

/// Everything a handler needs. Built once at startup; cheap to clone through [`AppState`].
pub struct App {
    pub config: Config,
    /// The Store as handlers use it: read-through cached.
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    /// True when no sign-in method is configured: everybody is the demo admin (issue: identity).
    pub demo_mode: bool,
    /// Server-side key for session cookies and CSRF tokens (from `jwt_secret`).
    pub secret: Vec<u8>,
    /// Session cookie signing and verification.
    pub sessions: crate::auth::SessionKeys,
    /// ALB token verification, when `auth.get_user_by_aws_alb_auth` is on.
    pub alb: Option<crate::auth::AlbVerifier>,
    /// Synced IAM resources and their search index.
    pub resources: Arc<Resources>,
    /// Where IAM lives: real AWS or the sandbox.
    pub cloud: Arc<dyn Cloud>,
    /// Per-user (or per-address when anonymous) limit on the API and every state-changing form.
    pub api_limiter: crate::ratelimit::Limiter,
    /// Per-address limit on *failed* sign-ins.
    pub login_limiter: crate::ratelimit::FailureLimiter,
    /// Interactive sign-ins, recorded for API tokens (their groups and idle limit).
    pub sign_ins: crate::auth::signins::SignIns,
    /// Wakes the outbox worker when new messages were written.
    pub outbox_wake: tokio::sync::Notify,
    /// Approvals applied in AWS whose record did not land yet; the outbox worker retries them
    /// (`src/requests/lifecycle/approve.rs`).
    pub unrecorded: std::sync::Mutex<Vec<crate::requests::lifecycle::Unrecorded>>,
    /// Seconds added to the clock of the background jobs (the outbox's due times): tests move
    /// time forward instead of sleeping. Always 0 in a running portal.
    pub clock_skew_seconds: std::sync::atomic::AtomicI64,
    /// The SESv2 client, made on first use (only when a sender is configured).
    pub ses: tokio::sync::OnceCell<aws_sdk_sesv2::Client>,
    /// Events from AWS: counters and the SNS signature verifier (`src/events/`).
    pub events: crate::events::Events,
    /// This App itself, for work that must outlive the HTTP request that started it (an
    /// approval's apply and record, `src/requests/lifecycle/approve.rs`).
    pub me: std::sync::Weak<App>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// How long a cached request stays fresh; writes invalidate earlier.
const REQUEST_CACHE_TTL: Duration = Duration::from_secs(300);

/// The configured Store behind the configured Cache, as the portal uses them (also for
/// commands that need nothing else, like `iamdesk import`).
pub async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Cache>)> {
    let store: Arc<dyn Store> = match config.storage.backend {
        StorageBackend::Embedded => Arc::new(EmbeddedStore::open(&config.storage.path)?),
        StorageBackend::Dynamodb => {
            let client = crate::aws::dynamodb_client(config).await;
            Arc::new(DynamoStore::new(
                client,
                &config.storage.dynamodb.table_prefix,
            ))
        }
    };
    let cache: Arc<dyn Cache> = match &config.redis.url {
        Some(url) => {
            Arc::new(crate::cache::redis::RedisCache::connect(url, &config.redis.key_prefix).await?)
        }
        None => Arc::new(MemoryCache::new(10_000)),
    };
    let store: Arc<dyn Store> = Arc::new(CachedStore::new(store, cache.clone(), REQUEST_CACHE_TTL));
    Ok((store, cache))
}

impl App {
    /// Now, as the background jobs see it (see `clock_skew_seconds`).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let skew = self
            .clock_skew_seconds
            .load(std::sync::atomic::Ordering::Relaxed);
        chrono::Utc::now() + chrono::Duration::seconds(skew)
    }

    /// [`open`](Self::open), then [`load_resources`](Self::load_resources): an App ready to
    /// answer every route (tests, `iamdesk sync`).
    pub async fn build(config: Config) -> anyhow::Result<Arc<App>> {
        let app = App::open(config).await?;
        app.load_resources().await;
        Ok(app)
    }

    /// Open the configured Store and Cache. Fails only on errors a person must fix (bad path,
    /// bad Redis URL); an unreachable Redis is not one of them: the portal serves from the Store.
    /// The synced accounts are not loaded yet: call [`load_resources`](Self::load_resources)
    /// (`iamdesk serve` does so after opening its port).
    pub async fn open(config: Config) -> anyhow::Result<Arc<App>> {
        let (store, cache) = open_store(&config).await?;
        let demo_mode = !config.auth.get_user_by_aws_alb_auth && !config.auth.get_user_by_header;
        let cloud: Arc<dyn Cloud> = match config.aws.mode {
            AwsMode::Aws => Arc::new(crate::cloud::aws::AwsCloud::new(&config).await),
            // Seeded by `load_resources` with the accounts the view loads (one shared copy).
            AwsMode::Sandbox => Arc::new(crate::cloud::sandbox::SandboxCloud::pending(
                config.policies.max_managed_policies,
            )),
        };
        let resources = Arc::new(Resources::new(crate::resources::sync::configured_accounts(
            &config,
        )));
        // `jwt_secret`; generated once and kept in dev; a startup error in prod.
        let secret = crate::auth::session::require_secret(&config)?.into_bytes();
        let sessions = crate::auth::SessionKeys::new(&secret)?;
        let alb = if config.auth.get_user_by_aws_alb_auth {
            Some(crate::auth::AlbVerifier::new(
                &config.auth.alb,
                &config.get_user_by_aws_alb_auth_settings,
                &config.aws.region,
            )?)
        } else {
            None
        };
        let app = Arc::new_cyclic(|me| App {
            me: me.clone(),
            store,
            cache,
            demo_mode,
            secret,
            sessions,
            alb,
            api_limiter: crate::ratelimit::Limiter::per_minute(
                config.rate_limit.api_per_minute,
                "API",
            ),
            login_limiter: crate::ratelimit::FailureLimiter::per_minute(
                config.rate_limit.login_per_minute,
            ),
            sign_ins: crate::auth::signins::SignIns::default(),
            config,
            resources,
            cloud,
            outbox_wake: tokio::sync::Notify::new(),
            unrecorded: std::sync::Mutex::default(),
            ses: tokio::sync::OnceCell::new(),
            clock_skew_seconds: std::sync::atomic::AtomicI64::new(0),
            events: crate::events::Events::new(),
        });
        Ok(app)
    }

    /// What resource sync and refresh use (they take these parts, not the `App`).
    pub fn resource_deps(&self) -> crate::resources::sync::Deps {
        crate::resources::sync::Deps {
            store: self.store.clone(),
            cloud: self.cloud.clone(),
            resources: self.resources.clone(),
        }
    }

    /// Fill the search index from the Store, then hand the sandbox the accounts just loaded
    /// (it shares their `Arc`s: one copy of every role); the sandbox syncs its demo accounts
    /// the first time. Marks the resources loaded whatever happened (`/readyz` reports a Store
    /// that cannot be read on its own).
    pub async fn load_resources(&self) {
        use crate::resources::sync;
        let deps = self.resource_deps();
        let loaded = sync::load(&deps).await;
        let sandbox = self
            .cloud
            .as_any()
            .downcast_ref::<crate::cloud::sandbox::SandboxCloud>();
        if let Some(sandbox) = sandbox {
            sandbox.seed(&self.resources.snapshots());
        }
        match loaded {
            Ok(0) if sandbox.is_some() => {
                if let Err(e) = sync::run(&deps).await {
                    tracing::warn!(error = %e, "cannot store the sandbox's demo accounts");
                }
            }
            Ok(generation) => tracing::info!(generation, "synced resources loaded"),
            Err(e) => tracing::warn!(error = %e, "no synced resources available"),
        }
        self.resources.mark_loaded();
    }
}
