//! Structured logs (here): pretty in dev, JSON in prod; `RUST_LOG` overrides the default filter.
//! Prometheus metrics: [`metrics`], and [`aws`] for the AWS SDK's calls.

pub mod aws;
pub mod metrics;

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
    // Logs go to stderr: stdout is for command output (check-config, sync, migrate).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: ignore the error.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
