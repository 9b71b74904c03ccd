//! Command line: `serve` (default), `check-config`, `migrate`, `sync`, `import`; the clients
//! `credentials`, `request` and `whoami`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{App, AppState};
use crate::config::{self, Environment, Loaded, StorageBackend};

#[derive(Debug, Parser)]
#[command(
    name = "iamdesk",
    version,
    about = "Self-service AWS IAM portal (ConsoleMe successor)"
)]
pub struct Cli {
    /// Configuration file. Else CONFIG_LOCATION, ./iamdesk.yaml, ./consoleme.yaml,
    /// ~/.config/iamdesk/config.yaml, /etc/iamdesk/config.yaml, else built-in demo defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the portal (the default).
    Serve,
    /// Validate the configuration and print the effective config with secrets redacted.
    CheckConfig,
    /// Create or upgrade the DynamoDB tables described in migrations/.
    Migrate,
    /// Run one resource sync pass over every configured account, then exit.
    Sync,
    /// Print short-lived credentials for a role as AWS `credential_process` JSON, from an iamdesk
    /// server, authenticated by your API token (IAMDESK_API_TOKEN or ~/.config/iamdesk/token).
    Credentials(crate::credentials::client::CredentialsArgs),
    /// File, dry-run, follow and list policy requests from scripts and CI pipelines, with your
    /// API token (scopes `requests`, and `read` to follow and list).
    Request(crate::client::requests::RequestArgs),
    /// Who your API token acts for: user, groups, the token's scopes and expiry.
    Whoami(crate::client::WhoamiArgs),
    /// Import request history from another tool: `iamdesk import consoleme` reads ConsoleMe's
    /// policy request table (see README, "Moving from ConsoleMe").
    Import(crate::import::ImportArgs),
    /// Probe a running server's liveness (`/healthcheck`): exit 0 on 200, else 1 with the
    /// reason on one line. For container health checks (the Dockerfile's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to probe. Default: `/healthcheck` on the configuration's `listen` address (loopback
    /// when it listens on every address).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

/// Exit code for configuration errors: distinct from runtime failures (1).
const EXIT_CONFIG: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The client command runs on a laptop: no server config, no logs on stdout.
    match &cli.command {
        Some(Command::Credentials(args)) => return crate::credentials::client::run(args),
        Some(Command::Request(args)) => {
            return crate::client::run(crate::client::requests::run(args));
        }
        Some(Command::Whoami(args)) => return crate::client::run(crate::client::whoami(args)),
        Some(Command::Healthcheck(args)) => return healthcheck(cli.config.as_deref(), args),
        _ => {}
    }
    let loaded = match config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("iamdesk: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Serving (or checking what would serve) an unsafe front door is a configuration error.
    if matches!(
        cli.command,
        None | Some(Command::Serve) | Some(Command::CheckConfig)
    ) {
        let problems = config::unsafe_settings(&loaded.config);
        if !problems.is_empty() {
            let from = loaded
                .source
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into());
            eprintln!("iamdesk: configuration error: this configuration must not serve ({from}):");
            for p in &problems {
                eprintln!("  - {p}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let json_logs = match std::env::var("IAMDESK_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") => false,
        _ => loaded.config.environment == Environment::Prod,
    };
    crate::telemetry::init(json_logs);
    report_config(&loaded);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iamdesk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(loaded).await,
            Command::CheckConfig => check_config(&loaded),
            Command::Migrate => migrate(&loaded).await,
            Command::Sync => sync(loaded).await,
            Command::Credentials(_)
            | Command::Request(_)
            | Command::Whoami(_)
            | Command::Healthcheck(_) => Ok(ExitCode::SUCCESS),
            Command::Import(args) => crate::import::run(&loaded.config, &args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "iamdesk failed");
            eprintln!("iamdesk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long `iamdesk healthcheck` waits for an answer (Docker's own timeout is 5 s).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// `iamdesk healthcheck [--url URL]`: nothing on stdout, one line on stderr when unhealthy.
fn healthcheck(config: Option<&std::path::Path>, args: &HealthcheckArgs) -> ExitCode {
    let url = match &args.url {
        Some(u) => u.clone(),
        None => match config::load(config) {
            Ok(loaded) => liveness_url(loaded.config.listen),
            Err(e) => {
                eprintln!("iamdesk healthcheck: configuration error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    match probe(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("iamdesk healthcheck: {url}: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// `/healthcheck` on `listen`; an unspecified address (`0.0.0.0`, `::`) is probed on loopback.
fn liveness_url(listen: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}/healthcheck",
        std::net::SocketAddr::new(ip, listen.port())
    )
}

fn probe(url: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let resp = client.get(url).send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", PROBE_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "connection refused or unreachable (is iamdesk running?)".to_string()
            } else if e.is_builder() {
                "not a valid http(s) URL".to_string()
            } else {
                format!("request failed: {e}")
            }
        })?;
        match resp.status() {
            s if s == reqwest::StatusCode::OK => Ok(()),
            s => Err(format!("answered {s}, not 200 OK")),
        }
    })
}

/// Say once where the config came from, which ConsoleMe keys are ignored and which keys are
/// unknown.
fn report_config(loaded: &Loaded) {
    match &loaded.source {
        Some(path) => tracing::info!(file = %path.display(), "configuration loaded"),
        None => tracing::info!("no configuration file found: using built-in demo defaults"),
    }
    if !loaded.ignored.is_empty() {
        tracing::info!(
            keys = loaded.ignored.join(", "),
            "ConsoleMe configuration keys that iamdesk does not use"
        );
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let auth = &loaded.config.auth;
    if auth.get_user_by_header && auth.get_user_by_aws_alb_auth {
        tracing::warn!(
            "auth.get_user_by_header is ignored: ALB sign-in is on, and header sign-in is never \
             a fallback for it"
        );
    } else if auth.get_user_by_header {
        tracing::warn!(
            header = %auth.user_header_name,
            "HEADER SIGN-IN IS ON: the {} header is believed from auth.trusted_proxies ({}) \
             only. Run it behind a proxy that sets and strips that header.",
            auth.user_header_name,
            if auth.trusted_proxies.is_empty() {
                "loopback".to_string()
            } else {
                auth.trusted_proxies
                    .iter()
                    .map(|c| c.0.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    if !auth.get_user_by_aws_alb_auth && !auth.get_user_by_header {
        tracing::warn!(
            "no sign-in method configured: demo mode, everybody is the demo administrator"
        );
    }
}

async fn serve(loaded: Loaded) -> anyhow::Result<ExitCode> {
    let listen = loaded.config.listen;
    // Before the app is built, so the first sync and the first AWS calls are counted.
    let metrics = match loaded.config.metrics.listen {
        Some(at) => {
            let handle = crate::telemetry::metrics::install()?;
            let listener = tokio::net::TcpListener::bind(at).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {at} for metrics: {e} (set `metrics.listen` in the config \
                     or free the port)"
                )
            })?;
            Some((listener, handle))
        }
        None => None,
    };
    // The synced accounts load in the background (`sync_job` below), so the port opens at once:
    // until they are loaded `/readyz` says not ready and other routes answer 503
    // (`src/web/loading.rs`).
    let app = App::open(loaded.config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {e} (set `listen` in the config or free the port)"
        )
    })?;
    let addr = listener.local_addr()?;
    let metrics_job = match metrics {
        Some((listener, handle)) => {
            tracing::info!(
                url = format!("http://{}/metrics", listener.local_addr()?),
                "serving Prometheus metrics"
            );
            let state = AppState(app.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = crate::telemetry::metrics::serve(
                    listener,
                    state,
                    handle,
                    std::future::pending(),
                )
                .await
                {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    tracing::info!(
        url = format!("http://{addr}"),
        store = app.store.backend_name(),
        cache = app.cache.backend_name(),
        "iamdesk is serving"
    );
    let loader = app.clone();
    let sync_job = tokio::spawn(async move {
        let started = std::time::Instant::now();
        loader.load_resources().await;
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "synced accounts loaded: ready"
        );
        // After the load: the job decides from what is loaded whether to sync at once.
        crate::resources::sync::background(
            loader.resource_deps(),
            loader.cache.clone(),
            std::time::Duration::from_secs(loader.config.sync.interval_seconds),
            std::time::Duration::from_secs(loader.config.sync.leader_lock_seconds),
        )
        .await
    });
    let outbox_job = tokio::spawn(crate::notify::worker::run(app.clone()));
    let rightsize_job = tokio::spawn(crate::rightsize::usage::background(
        crate::rightsize::usage_deps(&app),
    ));
    let event_jobs = crate::events::consumer::spawn(&app);
    let limits = app.clone();
    let shrink_job = tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::ratelimit::SHRINK_EVERY);
        loop {
            tick.tick().await;
            limits.api_limiter.shrink();
            limits.login_limiter.shrink();
        }
    });
    crate::web::serve(listener, AppState(app), crate::web::shutdown_signal()).await?;
    sync_job.abort();
    outbox_job.abort();
    rightsize_job.abort();
    for job in event_jobs {
        job.abort();
    }
    shrink_job.abort();
    if let Some(job) = metrics_job {
        job.abort();
    }
    tracing::info!("iamdesk stopped");
    Ok(ExitCode::SUCCESS)
}

fn check_config(loaded: &Loaded) -> anyhow::Result<ExitCode> {
    match &loaded.source {
        Some(p) => println!("# effective configuration from {}", p.display()),
        None => println!("# no configuration file found: built-in demo defaults"),
    }
    for w in &loaded.warnings {
        println!("# warning: {w}");
    }
    if !loaded.ignored.is_empty() {
        println!(
            "# ConsoleMe keys iamdesk ignores: {}",
            loaded.ignored.join(", ")
        );
    }
    print!("{}", config::redacted_yaml(&loaded.config));
    Ok(ExitCode::SUCCESS)
}

async fn migrate(loaded: &Loaded) -> anyhow::Result<ExitCode> {
    let config = &loaded.config;
    if config.storage.backend != StorageBackend::Dynamodb {
        println!(
            "storage.backend is embedded: nothing to migrate (the embedded store creates its schema \
             when it opens {})",
            config.storage.path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let client = crate::aws::dynamodb_client(config).await;
    for line in crate::migrate::run(&client, &config.storage.dynamodb.table_prefix).await? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit code of a sync where some accounts failed and others succeeded.
const EXIT_PARTIAL: u8 = 3;

async fn sync(loaded: Loaded) -> anyhow::Result<ExitCode> {
    use crate::resources::sync;
    let config = &loaded.config;
    if config.aws.mode == crate::config::AwsMode::Aws && config.account_ids_to_name.is_empty() {
        println!("no accounts configured: add account_ids_to_name to the configuration");
        return Ok(ExitCode::SUCCESS);
    }
    let app = App::build(loaded.config).await?;
    let outcome = sync::run(&app.resource_deps()).await?;
    for s in &outcome.statuses {
        match &s.last_error {
            None => println!(
                "ok      {} ({}): {} roles, {} users, {} policies in {} ms",
                s.account_id, s.account_name, s.roles, s.users, s.policies, s.duration_ms
            ),
            Some(e) => println!("FAILED  {} ({}): {e}", s.account_id, s.account_name),
        }
    }
    let failed = outcome.failed();
    let total = outcome.statuses.len();
    println!(
        "synced {} of {total} accounts (generation {})",
        total - failed,
        outcome.generation
    );
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        f if f == total => ExitCode::FAILURE,
        _ => ExitCode::from(EXIT_PARTIAL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_url_follows_listen_on_loopback() {
        let url = |s: &str| liveness_url(s.parse().expect("addr"));
        assert_eq!(url("0.0.0.0:8081"), "http://127.0.0.1:8081/healthcheck");
        assert_eq!(url("[::]:80"), "http://[::1]:80/healthcheck");
        assert_eq!(url("10.1.2.3:9000"), "http://10.1.2.3:9000/healthcheck");
    }
}
