//! Browser tests: Debian's `chromium` driven through `chromedriver` (fantoccini), headless.
//! `scripts/test` installs both when missing; screenshots go to `target/screenshots/`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

use crate::support::{free_port, strict};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session; the driver process dies with it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (test skipped) only outside `scripts/test` when Chromium is not installed.
    pub async fn start() -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists()
        {
            assert!(
                !strict(),
                "chromium/chromedriver missing: scripts/test installs them"
            );
            eprintln!("skipping browser test: chromium/chromedriver not installed");
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect to chromedriver");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Save a PNG under `target/screenshots/{name}.png` and return its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// What browser tests do again and again, each in one line: a failure names the selector.
pub(crate) trait Act {
    /// Click the first element matching `css`.
    async fn click_on(&self, css: &str);
    /// Type `text` into the first element matching `css`.
    async fn type_in(&self, css: &str, text: &str);
    /// Wait until an element matches `xpath`; `what` says what the test was waiting for.
    async fn wait_for_xpath(&self, xpath: &str, what: &str);
    /// On an open request page as an administrator: tick the confirmation, approve, and wait
    /// until the page says approved.
    async fn approve_this_request(&self);
}

impl Act for Client {
    async fn click_on(&self, css: &str) {
        self.find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click on {css}: {e}"));
    }

    async fn type_in(&self, css: &str, text: &str) {
        self.find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to type in: {e}"))
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type in {css}: {e}"));
    }

    async fn wait_for_xpath(&self, xpath: &str, what: &str) {
        self.wait()
            .for_element(fantoccini::Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("{what} ({xpath}): {e}"));
    }

    async fn approve_this_request(&self) {
        self.click_on("form input[name=confirm]").await;
        self.click_on("button.approve").await;
        self.wait_for_xpath(
            "//h1/span[contains(., 'approved')]",
            "the request is approved",
        )
        .await;
    }
}
