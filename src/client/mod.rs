//! The client side of the portal's API, for laptops, scripts and CI pipelines: `iamdesk request`
//! ([`requests`]) and `iamdesk whoami`, with the same token file and `--server` as
//! `iamdesk credentials` (`src/credentials/client.rs`). Nothing here reads the server's
//! configuration or logs: results go to stdout, problems to stderr, and the exit code says
//! which ([`Exit`]).

pub mod requests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// Where the portal is and which token to show it.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The iamdesk portal's base URL (https://, or http:// to this machine only).
    #[arg(long, env = "IAMDESK_SERVER", default_value = "http://127.0.0.1:8081")]
    pub server: String,
    /// File holding your API token (default ~/.config/iamdesk/token); IAMDESK_API_TOKEN wins.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// How a client command ends. The codes are a contract with scripts (README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; with `--wait`, approved.
    Ok = 0,
    /// With `--wait`: rejected or cancelled.
    Declined = 1,
    /// The input is wrong: the server's validation problems, or an unreadable file.
    Invalid = 2,
    /// With `--wait`: no decision before `--timeout`.
    TimedOut = 3,
    /// iamdesk refused (401, 403, 404, 409...) or could not be reached.
    Failed = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Why a call did not give an answer.
#[derive(Debug)]
pub enum Failure {
    /// 400 from the server: its message and each `(field, message)`.
    Invalid {
        message: String,
        problems: Vec<(String, String)>,
    },
    /// Any other refusal, with the HTTP status (`None`: no answer at all).
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// The input on this side is wrong (unreadable or malformed request file).
    Local(String),
    /// This side is not set up to talk to iamdesk (no token, a server URL that would leak it).
    Setup(String),
}

impl Failure {
    /// Worth trying again later (while waiting): no answer, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Refused { status: None, .. })
            || matches!(self, Failure::Refused { status: Some(s), .. } if *s == 429 || *s >= 500)
    }

    /// The message alone (problems left out).
    pub fn message(&self) -> &str {
        match self {
            Failure::Invalid { message, .. }
            | Failure::Refused { message, .. }
            | Failure::Local(message)
            | Failure::Setup(message) => message,
        }
    }

    /// Print it to stderr, problems one per line; the exit code it means.
    pub fn report(&self) -> Exit {
        match self {
            Failure::Invalid { message, problems } => {
                if problems.is_empty() {
                    eprintln!("iamdesk: {message}");
                }
                for (field, message) in problems {
                    eprintln!("{field}: {message}");
                }
                Exit::Invalid
            }
            Failure::Refused { message, .. } => {
                eprintln!("iamdesk: {message}");
                Exit::Failed
            }
            Failure::Local(message) => {
                eprintln!("iamdesk: {message}");
                Exit::Invalid
            }
            Failure::Setup(message) => {
                eprintln!("iamdesk: {message}");
                Exit::Failed
            }
        }
    }
}

fn default_token_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("iamdesk").join("token"))
}

/// The API token: `IAMDESK_API_TOKEN`, else the file (`--token-file`, else
/// `~/.config/iamdesk/token`).
pub fn read_token(file: Option<&Path>) -> Result<String, String> {
    if let Ok(t) = std::env::var("IAMDESK_API_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let path = file
        .map(Path::to_path_buf)
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

/// A portal to talk to with a token.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(conn: &Connection) -> Result<Client, Failure> {
        check_server(&conn.server).map_err(Failure::Setup)?;
        let token = read_token(conn.token_file.as_deref()).map_err(Failure::Setup)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("iamdesk-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Setup(format!("cannot start an HTTP client: {e}")))?;
        Ok(Client {
            base: conn.server.trim().trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// `path` on the portal, as a full URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    /// One call; the JSON answer of a 2xx, else why not (the server's own message).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| Failure::Refused {
            status: None,
            message: format!("cannot reach iamdesk at {}: {}", self.base, e.without_url()),
        })?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let message = answer
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message"))
            .to_string();
        if status.as_u16() == 400 {
            let problems = answer
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            let text = |k: &str| {
                                p.get(k).and_then(Value::as_str).unwrap_or("").to_string()
                            };
                            (text("field"), text("message"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(Failure::Invalid { message, problems });
        }
        Err(Failure::Refused {
            status: Some(status.as_u16()),
            message: format!("iamdesk refused ({status}): {message}"),
        })
    }
}

/// `iamdesk whoami` options.
#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// `iamdesk whoami`: who the token acts for, with which groups and scopes, until when.
pub async fn whoami(args: &WhoamiArgs) -> Result<Exit, Failure> {
    let client = Client::new(&args.connection)?;
    let me = client.get("/api/v2/user").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&me).unwrap_or_default());
        return Ok(Exit::Ok);
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let list = |v: Option<&Value>| {
        let items: Vec<&str> = v
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    println!("user:     {}", text(&me, "user"));
    println!("groups:   {}", list(me.get("groups")));
    println!(
        "admin:    {}",
        if me.get("is_admin").and_then(Value::as_bool) == Some(true) {
            "yes"
        } else {
            "no"
        }
    );
    if let Some(t) = me.get("token") {
        println!("token:    {} ({})", text(t, "name"), text(t, "id"));
        println!("scopes:   {}", list(t.get("scopes")));
        println!("expires:  {}", text(t, "expires_at"));
    }
    println!("server:   {}", client.base);
    Ok(Exit::Ok)
}

/// Run one client command on a small runtime of its own; the exit code.
pub fn run<F>(work: F) -> ExitCode
where
    F: std::future::Future<Output = Result<Exit, Failure>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iamdesk: cannot start: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(work) {
        Ok(exit) => exit.into(),
        Err(failure) => failure.report().into(),
    }
}

/// `30m`, `90s`, `1h30m`, `500ms`, or plain seconds (`45`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("'{text}' is not a duration: write e.g. 30m, 90s, 1h30m, 500ms");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "m", "10x", "1.5h", "-3s", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

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
