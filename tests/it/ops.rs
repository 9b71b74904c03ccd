//! Operating the portal (issue 17): Prometheus metrics on their own listener, the OpenAPI
//! document of `/api/v2`, liveness and readiness, and `iamdesk healthcheck`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{account_id, free_port, iam_in, moto_endpoint, redis_url, strict};

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parse of Prometheus' text format 0.0.4: `# HELP`/`# TYPE` comments and
/// `name{label="value",...} value` lines; anything else fails the test with the line.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            assert!(matches!(kind, "HELP" | "TYPE"), "comment: {line}");
            let name = parts.next().unwrap_or_default();
            assert!(valid_name(name), "metric name in: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    matches!(t, "counter" | "gauge" | "histogram" | "summary" | "untyped"),
                    "type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(valid_name(name), "metric name in: {line}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn parse_labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in: {line}"));
        assert!(valid_name(key), "label name {key:?} in: {line}");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("escape {other:?} in: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in: {line}"),
            }
        };
        labels.insert(key.to_string(), value);
        body = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    labels
}

/// The samples named `name` whose labels include every pair of `with`.
fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .collect()
}

/// The `iamdesk` binary, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path, dir: &std::path::Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_iamdesk"))
        .env_remove("CONFIG_LOCATION")
        .env("RUST_LOG", "warn")
        .args(["--config", config.to_str().unwrap_or_default(), "serve"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iamdesk");
    Server(child)
}

async fn wait_for_200(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_are_scraped_from_their_own_listener_with_bounded_labels() {
    let (Some(_), Some(redis)) = (moto_endpoint(), redis_url()) else {
        assert!(!strict(), "moto and redis are required");
        return;
    };
    let account = account_id();
    crate::support::create_role(&iam_in(&account).await, "metrics-app", &[]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics_port) = (free_port(), free_port());
    let cfg = dir.path().join("iamdesk.yaml");
    std::fs::write(
        &cfg,
        format!(
            "environment: dev\nlisten: 127.0.0.1:{port}\nmetrics:\n  listen: 127.0.0.1:{metrics_port}\n\
             storage:\n  path: {db}/db/iamdesk.db\nredis:\n  url: {redis}\n\
             aws:\n  mode: aws\naccount_ids_to_name:\n  '{account}': spoke\n\
             policies:\n  role_name: iamdesk-spoke\n\
             auth:\n  get_user_by_header: true\n  get_groups_by_header: true\n",
            db = dir.path().display()
        ),
    )
    .expect("write config");
    let _server = serve(&cfg, dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let public = format!("http://127.0.0.1:{port}");
    let private = format!("http://127.0.0.1:{metrics_port}");
    wait_for_200(&client, &format!("{public}/healthcheck")).await;

    // A few requests: a request id in the path, an unknown path, a forged API token.
    let id = "0190f5c2-0000-7000-8000-00000000abcd";
    let r = client
        .get(format!("{public}/api/v2/requests/{id}"))
        .header("x-user", "ops@example.com")
        .send()
        .await
        .expect("GET request");
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!(
            "{public}/no/such/page/arn:aws:iam::{account}:role/x"
        ))
        .send()
        .await
        .expect("GET unknown");
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!("{public}/api/v2/user"))
        .bearer_auth(format!(
            "{}forged-token",
            iamdesk::credentials::tokens::PREFIX
        ))
        .send()
        .await
        .expect("GET with a forged token");
    assert_eq!(r.status(), 401);

    // Never on the public port; and the private one serves nothing else.
    let r = client
        .get(format!("{public}/metrics"))
        .send()
        .await
        .expect("GET public /metrics");
    assert_eq!(r.status(), 404, "/metrics is not on the public port");
    let body = r.text().await.unwrap_or_default();
    assert!(!body.contains("iamdesk_http_requests_total"), "{body}");
    let r = client
        .get(format!("{private}/healthcheck"))
        .send()
        .await
        .expect("GET private /healthcheck");
    assert_eq!(r.status(), 404, "the metrics listener serves /metrics only");

    // The startup sync of the moto account is counted once it is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let r = client
            .get(format!("{private}/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(r.status(), 200);
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let samples = parse_exposition(&r.text().await.expect("body"));
        let synced = !find(
            &samples,
            "iamdesk_sync_duration_seconds_count",
            &[("account", &account)],
        )
        .is_empty();
        if synced {
            break samples;
        }
        assert!(Instant::now() < deadline, "no sync series within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // HTTP: matched route pattern, method, status, with a latency histogram.
    let by_route = [
        ("route", "/api/v2/requests/{id}"),
        ("method", "GET"),
        ("status", "404"),
    ];
    let hits = find(&samples, "iamdesk_http_requests_total", &by_route);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].value >= 1.0);
    assert!(
        !find(
            &samples,
            "iamdesk_http_request_duration_seconds_bucket",
            &by_route
        )
        .is_empty()
    );
    assert!(
        !find(
            &samples,
            "iamdesk_http_request_duration_seconds_sum",
            &by_route
        )
        .is_empty()
    );
    assert!(
        !find(
            &samples,
            "iamdesk_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_empty()
    );
    for s in &samples {
        for v in s.labels.values() {
            assert!(
                !v.contains(id) && !v.contains("arn:aws"),
                "a raw path or ARN in a label: {s:?}"
            );
        }
    }
    // Sync per account and service; the AWS calls it made.
    assert!(
        !find(
            &samples,
            "iamdesk_sync_duration_seconds_count",
            &[("account", &account), ("service", "iam"), ("result", "ok")]
        )
        .is_empty(),
        "sync ok for {account}"
    );
    for (service, operation) in [
        ("iam", "GetAccountAuthorizationDetails"),
        ("sts", "AssumeRole"),
    ] {
        assert!(
            !find(
                &samples,
                "iamdesk_aws_calls_total",
                &[
                    ("service", service),
                    ("operation", operation),
                    ("outcome", "ok")
                ]
            )
            .is_empty(),
            "{service} {operation} counted"
        );
    }
    // Outbox, cache, breaker, index, sign-in failures.
    assert_eq!(find(&samples, "iamdesk_outbox_pending", &[]).len(), 1);
    assert_eq!(
        find(&samples, "iamdesk_outbox_oldest_pending_age_seconds", &[]).len(),
        1
    );
    assert!(
        !find(
            &samples,
            "iamdesk_cache_lookups_total",
            &[("backend", "redis"), ("result", "miss")]
        )
        .is_empty(),
        "the 404 lookup missed the cache"
    );
    let breaker = find(
        &samples,
        "iamdesk_cache_breaker_open",
        &[("backend", "redis")],
    );
    assert_eq!(breaker.len(), 1);
    assert!(breaker[0].value == 0.0, "redis answers: closed");
    let index = find(&samples, "iamdesk_index_entries", &[]);
    assert!(index.len() == 1 && index[0].value >= 1.0, "{index:?}");
    assert!(
        !find(
            &samples,
            "iamdesk_sign_in_failures_total",
            &[("method", "token")]
        )
        .is_empty()
    );
}

#[test]
fn the_exposition_parser_is_strict() {
    let ok = parse_exposition(
        "# HELP a_total A.\n# TYPE a_total counter\na_total{route=\"/x/{id}\",q=\"a\\\"b\"} 3\nb 1.5e3\n",
    );
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].labels["q"], "a\"b");
    assert_eq!(ok[1].value, 1500.0);
    for bad in ["a{x=1} 1", "9a 1", "a{x=\"1\" 1", "a notanumber"] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "{bad} accepted"
        );
    }
}
