//! Shared helpers: service discovery from the environment `scripts/test` sets up, free ports.
#![allow(dead_code)]

use std::net::TcpListener;

/// `scripts/test` sets `IAMDESK_TEST_STRICT=1`: then a missing service fails the test instead of
/// skipping it, so CI can never pass by skipping.
pub fn strict() -> bool {
    std::env::var("IAMDESK_TEST_STRICT").is_ok_and(|v| v == "1")
}

fn service(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !strict(),
                "{var} is not set: {what} is required (run the suite with scripts/test)"
            );
            eprintln!("skipping: {var} not set ({what}); run scripts/test for the full suite");
            None
        }
    }
}

/// moto_server endpoint, e.g. `http://127.0.0.1:5123`.
pub fn moto_endpoint() -> Option<String> {
    service("AWS_ENDPOINT_URL", "moto_server")
}

/// A Redis URL for the shared test redis-server.
pub fn redis_url() -> Option<String> {
    service("REDIS_URL", "redis-server")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A unique short token for per-test names (table prefixes, cache key prefixes).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..10])
}

use std::net::SocketAddr;
use std::sync::Arc;

use iamdesk::app::{App, AppState};
use iamdesk::config::Config;

/// A real iamdesk server on a free loopback port, stopped (gracefully) on drop.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    // Keeps the embedded database file alive for the test's lifetime.
    db_dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// The built-in demo defaults with a private embedded database.
    pub fn demo_config() -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            environment: iamdesk::config::Environment::Dev,
            ..Config::default()
        };
        config.storage.path = dir.path().join("data/iamdesk.db");
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        (config, dir)
    }

    pub async fn demo() -> TestApp {
        let (config, dir) = Self::demo_config();
        let mut app = Self::spawn(config).await;
        app.db_dir = Some(dir);
        app
    }

    pub async fn spawn(config: Config) -> TestApp {
        let app: Arc<App> = App::build(config).await.expect("build app");
        Self::serve(app).await
    }

    /// Serve `app` as it is (e.g. opened with `App::open` and not loaded yet, as
    /// `iamdesk serve` is during its first seconds).
    pub async fn serve(app: Arc<App>) -> TestApp {
        let state = AppState(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = iamdesk::web::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp {
            addr,
            base: format!("http://{addr}"),
            state,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .expect("client"),
            shutdown: Some(tx),
            db_dir: None,
        }
    }

    /// Keep a temporary directory (the database) alive as long as the app.
    pub fn keep(&mut self, dir: tempfile::TempDir) {
        self.db_dir = Some(dir);
    }

    /// Take the database directory back (to restart on the same data after a drop).
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self.db_dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `method path` as `who` in `groups` (header sign-in), with the CSRF cookie and token
    /// when given and a JSON body when given: how tests act as a signed-in person.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        (who, groups): (&str, &str),
        csrf: Option<&(String, String)>,
        body: Option<&serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .header("x-user", who)
            .header("x-groups", groups);
        if let Some((cookie, token)) = csrf {
            req = req.header("cookie", cookie).header("x-csrf-token", token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `csrf_token` of the first form on a page, and the CSRF cookie the page set.
pub async fn form_token(app: &TestApp, path: &str) -> (String, String) {
    let resp = app.get(path).await;
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| is_csrf_cookie(c))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .expect("csrf cookie set");
    let html = resp.text().await.expect("html");
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token in the form")
        .to_string();
    (cookie, token)
}

/// A portal in `aws` mode over one moto spoke account (named `spoke`, spoke role
/// `iamdesk-spoke`), header sign-in on (`x-user`, `x-groups`), synced once. `tune` adjusts the
/// config before the server starts.
pub async fn spoke_app(account: &str, tune: impl FnOnce(&mut Config)) -> TestApp {
    let (mut config, dir) = TestApp::demo_config();
    config.aws.mode = iamdesk::config::AwsMode::Aws;
    config.account_ids_to_name =
        std::collections::BTreeMap::from([(account.to_string(), "spoke".to_string())]);
    config.policies.role_name = "iamdesk-spoke".into();
    config.auth.get_user_by_header = true;
    config.auth.get_groups_by_header = true;
    tune(&mut config);
    let mut app = TestApp::spawn(config).await;
    app.keep(dir);
    iamdesk::resources::sync::run(&app.state.resource_deps())
        .await
        .expect("sync");
    app
}

/// Create role `name` in a moto account, trusted by `ec2.amazonaws.com`, with `tags`.
pub async fn create_role(iam: &aws_sdk_iam::Client, name: &str, tags: &[(&str, &str)]) {
    let mut req = iam
        .create_role()
        .role_name(name)
        .max_session_duration(7200)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#);
    for (k, v) in tags {
        req = req.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .expect("tag"),
        );
    }
    req.send().await.expect("create role");
}

/// A fresh random 12-digit AWS account id, so tests sharing one moto never see each other.
pub fn account_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000;
    n.to_string()
}

/// An IAM client acting inside `account` on moto (moto maps assumed-role credentials to the
/// role's account).
pub async fn iam_in(account: &str) -> aws_sdk_iam::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let provider = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/test-setup"
    ))
    .session_name("test-setup")
    .configure(&sdk)
    .build()
    .await;
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .credentials_provider(provider)
            .build(),
    )
}

/// A CSRF cookie and its token, from a page's form.
pub async fn csrf_for(app: &TestApp) -> (String, String) {
    let resp = app
        .client
        .get(app.url("/requests"))
        .header("x-user", "csrf@example.com")
        .send()
        .await
        .expect("GET");
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| is_csrf_cookie(c))
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_string();
    let value = cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let key = app.state.secret.clone();
    (cookie, iamdesk_csrf_token(&key, &value))
}

/// The CSRF cookie, named `iamdesk_csrf` (`__Host-iamdesk_csrf` when `url` is https).
pub fn is_csrf_cookie(set_cookie: &str) -> bool {
    set_cookie.starts_with("iamdesk_csrf=") || set_cookie.starts_with("__Host-iamdesk_csrf=")
}

pub fn iamdesk_csrf_token(key: &[u8], cookie: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("key");
    mac.update(b"iamdesk-csrf:");
    mac.update(cookie.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Collects what the `tracing` JSON formatter writes.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned()
    }
}

/// S3, SQS and SNS clients acting inside `account` on moto (as [`iam_in`]), in `us-east-1`.
pub async fn services_in(
    account: &str,
) -> (aws_sdk_s3::Client, aws_sdk_sqs::Client, aws_sdk_sns::Client) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(
        aws_config::sts::AssumeRoleProvider::builder(format!(
            "arn:aws:iam::{account}:role/test-setup"
        ))
        .session_name("test-setup")
        .configure(&sdk)
        .build()
        .await,
    );
    (
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .credentials_provider(provider.clone())
                .force_path_style(true)
                .build(),
        ),
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .credentials_provider(provider.clone())
                .build(),
        ),
        aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk)
                .credentials_provider(provider)
                .build(),
        ),
    )
}

/// The form-encoded requests in a moto recording (`/moto-api/recorder/download-recording`), in
/// order: each request's parameters (`Action`, `RoleName`, `PolicyArn`, ...).
pub fn recorded_forms(recording: &str) -> Vec<Vec<(String, String)>> {
    use base64::Engine as _;
    let mut out = vec![];
    for line in recording.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let raw = entry["body"].as_str().unwrap_or_default();
        let bytes = if entry["body_encoded"] == true {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap_or_default()
        } else {
            raw.as_bytes().to_vec()
        };
        if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) {
            out.push(form);
        }
    }
    out
}
