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

fn default_token_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("iamdesk").join("token"))
}

fn token(args: &CredentialsArgs) -> Result<String, String> {
    if let Ok(t) = std::env::var("IAMDESK_API_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let path = args
        .token_file
        .clone()
        .or_else(default_token_file)
        .ok_or("no API token: set IAMDESK_API_TOKEN or pass --token-file")?;
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_string())
        .map_err(|e| {
            format!(
                "no API token: cannot read {} ({e}); make one on your iamdesk profile page and \
                 save it there, or set IAMDESK_API_TOKEN",
                path.display()
            )
        })
}

/// The server URL, refused when it would send the token in clear text: `https://`, or
/// `http://` to this machine only (loopback, for a portal on the laptop or a tunnel).
pub fn check_server(server: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(server.trim())
        .map_err(|e| format!("--server {server} is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!(
            "refusing to send your API token over plain http to {server}: use the portal's \
             https:// address (http is accepted for 127.0.0.1, ::1 and localhost only)"
        )),
        other => Err(format!(
            "--server must be an https:// URL, not {other}:// ({server})"
        )),
    }
}

/// Ask the server; the `credential_process` JSON, or a message for stderr.
pub async fn fetch(args: &CredentialsArgs) -> Result<Value, String> {
    check_server(&args.server)?;
    let token = token(args)?;
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

#[cfg(test)]
mod tests {
    use super::check_server;

    #[test]
    fn the_token_goes_over_https_or_to_this_machine_only() {
        for ok in [
            "https://iam.example.com",
            "https://10.0.0.1:8443/",
            "http://127.0.0.1:8081",
            "http://127.9.9.9",
            "http://[::1]:8081",
            "http://localhost:8081",
            "http://LOCALHOST",
        ] {
            assert!(check_server(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://iam.example.com",
            "http://10.0.0.1:8081",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "iam.example.com",
            "",
        ] {
            assert!(check_server(bad).is_err(), "{bad}");
        }
    }
}
