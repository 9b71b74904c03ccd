//! `iamdesk credentials --role ARN`: the client side, for `credential_process` in
//! `~/.aws/config`. Prints AWS's process-credential JSON (`Version: 1`) on stdout and nothing
//! else; errors go to stderr with a non-zero exit, as the AWS SDKs expect.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct CredentialsArgs {
    /// ARN of the role to get credentials for.
    #[arg(long, value_name = "ARN")]
    pub role: String,
    /// The iamdesk portal's base URL.
    #[arg(long, env = "IAMDESK_SERVER", default_value = "http://127.0.0.1:8081")]
    pub server: String,
    /// Session length in seconds (clamped by the server to 900..the role's maximum).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<i64>,
    /// File holding your API token (default ~/.config/iamdesk/token); IAMDESK_API_TOKEN wins.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

pub use crate::client::check_server;

/// Ask the server; the `credential_process` JSON, or a message for stderr.
pub async fn fetch(args: &CredentialsArgs) -> Result<Value, String> {
    check_server(&args.server)?;
    let token = crate::client::read_token(args.token_file.as_deref())?;
    let url = format!("{}/api/v2/credentials", args.server.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"requested_role": args.role, "duration_seconds": args.duration}))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach iamdesk at {}: {}",
                args.server,
                e.without_url()
            )
        })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body
            .get("message")
            .or_else(|| body.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(format!("iamdesk refused ({status}): {message}"));
    }
    let c = body
        .get("Credentials")
        .ok_or("iamdesk answered without Credentials")?;
    let field = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(format!("iamdesk answered without {k}"))
    };
    Ok(json!({
        "Version": 1,
        "AccessKeyId": field("AccessKeyId")?,
        "SecretAccessKey": field("SecretAccessKey")?,
        "SessionToken": field("SessionToken")?,
        "Expiration": field("Expiration")?,
    }))
}

pub fn run(args: &CredentialsArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iamdesk: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fetch(args)) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iamdesk: {e}");
            ExitCode::FAILURE
        }
    }
}
