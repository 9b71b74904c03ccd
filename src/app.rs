//! Application state: the effective config and the backends chosen from it.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::memory::MemoryCache;
use crate::cache::{Cache, CachedStore};
use crate::cloud::Cloud;
use crate::config::{AwsMode, Config, StorageBackend};
use crate::resources::service::Resources;
use crate::store::{Store, embedded::EmbeddedStore};

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
    /// Synced IAM resources and their search index.
    pub resources: Resources,
    /// Where IAM lives: real AWS or the sandbox.
    pub cloud: Arc<dyn Cloud>,
    /// Per-user (or per-IP when anonymous) API limit.
    pub api_limiter: crate::web::ratelimit::Limiter,
    /// Per-IP limit on sign-in attempts (token verifications).
    pub login_limiter: crate::web::ratelimit::Limiter,
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

impl App {
    /// Open the configured Store and Cache. Fails only on errors a person must fix (bad path,
    /// bad Redis URL); an unreachable Redis is not one of them: the portal serves from the Store.
    pub async fn build(config: Config) -> anyhow::Result<Arc<App>> {
        let store: Arc<dyn Store> = match config.storage.backend {
            StorageBackend::Embedded => Arc::new(EmbeddedStore::open(&config.storage.path)?),
            StorageBackend::Dynamodb => anyhow::bail!("dynamodb backend not wired yet"),
        };
        let cache: Arc<dyn Cache> = match &config.redis.url {
            Some(url) => Arc::new(crate::cache::redis::RedisCache::connect(url, "iamdesk:").await?),
            None => Arc::new(MemoryCache::new(10_000)),
        };
        let store: Arc<dyn Store> =
            Arc::new(CachedStore::new(store, cache.clone(), REQUEST_CACHE_TTL));
        let demo_mode = !config.auth.get_user_by_aws_alb_auth && !config.auth.get_user_by_header;
        let cloud: Arc<dyn Cloud> = match config.aws.mode {
            AwsMode::Aws => Arc::new(crate::cloud::aws::AwsCloud::new(&config).await),
            AwsMode::Sandbox => Arc::new(crate::cloud::sandbox::SandboxCloud),
        };
        let resources = Resources::new();
        let secret = session_secret(&config)?;
        let app = Arc::new(App {
            store,
            cache,
            demo_mode,
            secret,
            api_limiter: crate::web::ratelimit::Limiter::per_minute(
                config.rate_limit.api_per_minute,
                "API",
            ),
            login_limiter: crate::web::ratelimit::Limiter::per_minute(
                config.rate_limit.login_per_minute,
                "sign-in",
            ),
            config,
            resources,
            cloud,
        });
        app.load_resources().await;
        Ok(app)
    }

    /// Fill the search index from the Store; the sandbox syncs its demo accounts the first time.
    async fn load_resources(&self) {
        use crate::resources::sync;
        match sync::reload(self).await {
            Ok(0) if self.config.aws.mode == AwsMode::Sandbox => {
                if let Err(e) = sync::run(self).await {
                    tracing::warn!(error = %e, "cannot store the sandbox's demo accounts");
                }
            }
            Ok(generation) => tracing::info!(generation, "synced resources loaded"),
            Err(e) => tracing::warn!(error = %e, "no synced resources available"),
        }
    }
}

/// The key for session cookies and CSRF tokens: `jwt_secret`; in dev, one generated once and
/// kept next to the embedded database; in prod, a missing secret stops startup.
fn session_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = config.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
        return Ok(s.as_bytes().to_vec());
    }
    if !config.is_dev() {
        anyhow::bail!(
            "jwt_secret is required when environment is prod: set it in the configuration \
             (e.g. `jwt_secret: ${{IAMDESK_JWT_SECRET}}`), or use `environment: dev` for a trial"
        );
    }
    let path = config.storage.path.with_file_name(".iamdesk_jwt_secret");
    load_or_create_secret(&path).map_err(|e| {
        anyhow::anyhow!(
            "cannot keep the dev session secret in {}: {e}",
            path.display()
        )
    })
}

fn load_or_create_secret(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(bytes),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let hex = hex::encode(key);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(hex.as_bytes())?;
    Ok(hex.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prod_without_jwt_secret_is_refused() {
        let config = Config::default();
        let err = session_secret(&config).expect_err("prod needs a secret");
        assert!(err.to_string().contains("jwt_secret is required"));
    }

    #[test]
    fn dev_secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.environment = crate::config::Environment::Dev;
        config.storage.path = dir.path().join("data/iamdesk.db");
        let a = session_secret(&config).expect("generated");
        let b = session_secret(&config).expect("reused");
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta =
                std::fs::metadata(dir.path().join("data/.iamdesk_jwt_secret")).expect("file");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
    }
}
