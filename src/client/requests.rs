//! `iamdesk request create|status|list`: file a request from a YAML or JSON file (or dry-run
//! it), follow it until a person decides, look requests up.
//!
//! `create --wait` polls `GET /api/v2/requests/{id}` with backoff: the first wait is
//! `--poll-interval` (`IAMDESK_POLL_INTERVAL`, default 5s), each next one 1.5 times longer, at
//! most a minute, never past `--timeout`. A blip (no answer, 429, 5xx) is retried; a refusal
//! (401, 403, 404) ends the wait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Connection, Exit, Failure, parse_duration};
use crate::requests::review::{ChangeDiff, PlannedChange, describe_call};

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    #[command(subcommand)]
    pub command: RequestCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RequestCommand {
    /// File a request from a YAML or JSON file (the v2 request body, or just its changes);
    /// prints its URL. Problems are printed one per line with their field (exit 2).
    Create(CreateArgs),
    /// Show one request: status, changes, risk, approvals, comments.
    Status(StatusArgs),
    /// List requests, newest first.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The request: `{"justification", "changes": {"changes": [...]}}`, or `{"changes": [...]}`,
    /// or just the list of changes; YAML or JSON.
    #[arg(long, short, value_name = "FILE")]
    pub file: PathBuf,
    /// Why the change is needed (replaces the file's `justification`).
    #[arg(long, value_name = "TEXT")]
    pub justification: Option<String>,
    /// Validate and show the diff, the warnings and the AWS calls; file nothing.
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    /// Wait until a person decides: exit 0 when approved, 1 when rejected or cancelled, 3 at
    /// the timeout. Comments are printed as they arrive. Needs a token with the read scope too.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits (e.g. 30m, 2h, 90s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "wait")]
    pub timeout: Option<Duration>,
    /// The first pause between two looks at the request while waiting; it grows 1.5 times per
    /// look, up to a minute.
    #[arg(long, value_name = "DURATION", env = "IAMDESK_POLL_INTERVAL", default_value = "5s",
          value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Print the server's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The request's id (from `create` or `list`).
    pub id: String,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Only requests in this status: pending, approved, rejected, cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// Only your own requests.
    #[arg(long)]
    pub mine: bool,
    /// How many (1 to the server's maximum).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// Longest pause between two looks while waiting.
const MAX_POLL: Duration = Duration::from_secs(60);
/// Default `--timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub async fn run(args: &RequestArgs) -> Result<Exit, Failure> {
    match &args.command {
        RequestCommand::Create(a) => create(a).await,
        RequestCommand::Status(a) => status(a).await,
        RequestCommand::List(a) => list(a).await,
    }
}

/// The v2 body from a file's text: the whole body, `{"changes": [...]}` (a `ChangeList`,
/// perhaps with a justification beside it) or a bare list of changes.
pub fn body_from(text: &str, path: &Path) -> Result<Value, Failure> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed: Value = if is_json {
        serde_json::from_str(text)
            .map_err(|e| Failure::Local(format!("{} is not valid JSON: {e}", path.display())))?
    } else {
        let options = serde_saphyr::options! {
            // `no` is a tag value, not false; `012345678901` an account id, not a number.
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
        };
        serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| Failure::Local(format!("{} is not valid YAML: {e}", path.display())))?
    };
    match parsed {
        Value::Array(changes) => Ok(json!({"changes": {"changes": changes}})),
        Value::Object(mut body) => {
            if let Some(Value::Array(changes)) = body.get("changes").cloned() {
                body.insert("changes".into(), json!({ "changes": changes }));
            }
            if !body.contains_key("changes") {
                return Err(Failure::Local(format!(
                    "{} has no \"changes\": write the request body ({{\"justification\": ..., \
                     \"changes\": {{\"changes\": [...]}}}}) or a list of changes",
                    path.display()
                )));
            }
            Ok(Value::Object(body))
        }
        _ => Err(Failure::Local(format!(
            "{} holds neither a request body nor a list of changes",
            path.display()
        ))),
    }
}

async fn create(args: &CreateArgs) -> Result<Exit, Failure> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::Local(format!("cannot read {}: {e}", args.file.display())))?;
    let mut body = body_from(&text, &args.file)?;
    if let Some(j) = &args.justification {
        body["justification"] = json!(j);
    }
    if args.dry_run {
        body["dry_run"] = json!(true);
    }
    let client = Client::new(&args.connection)?;
    if args.wait {
        // Say it before anything is filed: a token that cannot read the request cannot wait.
        let me = client.get("/api/v2/user").await?;
        let scopes: Vec<&str> = me
            .pointer("/token/scopes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !scopes.contains(&"read") {
            return Err(Failure::Refused {
                status: Some(403),
                message: format!(
                    "--wait reads the request until it is decided, and this token lacks the \
                     read scope (it has: {}); make a token with the read and requests scopes",
                    if scopes.is_empty() {
                        "none".to_string()
                    } else {
                        scopes.join(", ")
                    }
                ),
            });
        }
    }
    let answer = client
        .call(Method::POST, "/api/v2/request", Some(&body))
        .await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
    }
    for w in strings(answer.get("warnings")) {
        eprintln!("warning: {w}");
    }
    if args.dry_run {
        if !args.json {
            print_dry_run(&answer);
        }
        return Ok(Exit::Ok);
    }
    let id = answer
        .get("request_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Refused {
            status: None,
            message: "iamdesk answered without a request_id".into(),
        })?
        .to_string();
    let path = answer
        .get("request_url")
        .and_then(Value::as_str)
        .map_or_else(|| format!("/policies/request/{id}"), str::to_string);
    if !args.json {
        println!("{}", client.url(&path));
    }
    if !args.wait {
        return Ok(Exit::Ok);
    }
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    wait(&client, &id, timeout, args.poll_interval).await
}

/// Poll the request until it is decided or `timeout` passes; print comments as they come.
async fn wait(
    client: &Client,
    id: &str,
    timeout: Duration,
    first: Duration,
) -> Result<Exit, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    eprintln!(
        "waiting up to {} for a decision on {id}",
        human(timeout.as_secs())
    );
    let mut shown_comments = std::collections::HashSet::new();
    let mut shown_failures = std::collections::HashSet::new();
    let mut pause = first.max(Duration::from_millis(10));
    let mut blip_told = false;
    loop {
        match client.get(&format!("/api/v2/requests/{id}")).await {
            Ok(r) => {
                blip_told = false;
                for c in r
                    .get("comments")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let cid = c.get("id").and_then(Value::as_str).unwrap_or_default();
                    if shown_comments.insert(cid.to_string()) {
                        println!(
                            "comment by {}: {}",
                            c.get("author").and_then(Value::as_str).unwrap_or("?"),
                            c.get("text").and_then(Value::as_str).unwrap_or_default()
                        );
                    }
                }
                for (i, res) in r
                    .get("results")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if res.get("status").and_then(Value::as_str) == Some("failed")
                        && shown_failures.insert(i)
                    {
                        eprintln!(
                            "change {} failed to apply (the request stays pending): {}",
                            i + 1,
                            res.get("message").and_then(Value::as_str).unwrap_or("")
                        );
                    }
                }
                match r.get("status").and_then(Value::as_str) {
                    Some("approved") => {
                        println!("approved{}", by_whom(&r));
                        return Ok(Exit::Ok);
                    }
                    Some(s @ ("rejected" | "cancelled")) => {
                        println!("{s}");
                        return Ok(Exit::Declined);
                    }
                    _ => {}
                }
            }
            Err(f) if f.is_transient() => {
                if !blip_told {
                    eprintln!("still waiting: {}", f.message());
                    blip_told = true;
                }
            }
            Err(f) => return Err(f),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            eprintln!(
                "no decision within {}; the request stays open: {}",
                human(timeout.as_secs()),
                client.url(&format!("/policies/request/{id}"))
            );
            return Ok(Exit::TimedOut);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = pause.mul_f64(1.5).min(MAX_POLL.max(first));
    }
}

fn by_whom(r: &Value) -> String {
    let who: Vec<&str> = r
        .get("approvals")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("by").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if who.is_empty() {
        String::new()
    } else {
        format!(" by {}", who.join(", "))
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What a dry run found: per change its summary, risk, diffs and calls.
fn print_dry_run(answer: &Value) {
    let diffs: Vec<ChangeDiff> = answer
        .get("diff")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    let plan: Vec<PlannedChange> = answer
        .get("plan")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    println!(
        "dry run: valid, nothing filed ({} change(s))",
        diffs.len().max(plan.len())
    );
    for (i, d) in diffs.iter().enumerate() {
        let planned = plan.iter().find(|p| p.change_id == d.change_id);
        println!();
        match planned {
            Some(p) => println!("{}. {} [risk: {}]", i + 1, d.summary, p.risk.level.as_str()),
            None => println!("{}. {}", i + 1, d.summary),
        }
        if let Some(p) = planned {
            for r in &p.risk.reasons {
                println!("   risk: {}", r.message);
            }
        }
        for s in &d.sections {
            println!("--- {} (+{} -{})", s.label, s.added, s.removed);
            print!("{}", s.text);
        }
        if let Some(p) = planned {
            println!("AWS calls on approval:");
            for c in &p.calls {
                println!("  {}", describe_call(c));
            }
        }
    }
}

async fn status(args: &StatusArgs) -> Result<Exit, Failure> {
    let client = Client::new(&args.connection)?;
    let id = urlencoding::encode(args.id.trim());
    let r = client.get(&format!("/api/v2/requests/{id}")).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(Exit::Ok);
    }
    let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    println!("id:            {}", text("id"));
    let decided_by = if text("status") == "approved" {
        by_whom(&r)
    } else {
        String::new()
    };
    println!("status:        {}{decided_by}", text("status"));
    println!("requester:     {}", text("requester"));
    println!("created:       {}", text("created_at"));
    println!("justification: {}", text("justification"));
    println!("risk:          {}", text("risk"));
    if let Some(a) = r.get("approval") {
        let rule = a.get("rule").and_then(Value::as_str).unwrap_or("");
        let met = a.get("satisfied").and_then(Value::as_bool) == Some(true);
        println!(
            "approval:      rule '{rule}', {}",
            if met {
                "satisfied"
            } else {
                "not yet satisfied"
            }
        );
    }
    let plan: Vec<PlannedChange> = r
        .get("plan")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    for (i, p) in plan.iter().enumerate() {
        println!(
            "change {}:      {} [risk: {}]",
            i + 1,
            p.role_arn,
            p.risk.level.as_str()
        );
        for c in &p.calls {
            println!("                 {}", describe_call(c));
        }
    }
    for c in r
        .get("comments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "comment by {} ({}): {}",
            c.get("author").and_then(Value::as_str).unwrap_or("?"),
            c.get("created_at").and_then(Value::as_str).unwrap_or(""),
            c.get("text").and_then(Value::as_str).unwrap_or("")
        );
    }
    println!(
        "url:           {}",
        client.url(&format!("/policies/request/{}", text("id")))
    );
    Ok(Exit::Ok)
}

async fn list(args: &ListArgs) -> Result<Exit, Failure> {
    let client = Client::new(&args.connection)?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(s) = &args.status {
        query.push(("status", s.clone()));
    }
    if args.mine {
        let me = client.get("/api/v2/user").await?;
        let user = me.get("user").and_then(Value::as_str).unwrap_or_default();
        query.push(("requester", user.to_string()));
    }
    let qs = serde_urlencoded::to_string(&query)
        .map_err(|e| Failure::Local(format!("cannot build the query: {e}")))?;
    let answer = client.get(&format!("/api/v2/requests?{qs}")).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(Exit::Ok);
    }
    let rows: Vec<[String; 6]> = answer
        .get("summaries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            let t = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let more = s
                .get("more_principals")
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
                .map(|n| format!(" +{n}"))
                .unwrap_or_default();
            [
                t("id"),
                t("status"),
                t("risk"),
                t("requester"),
                t("age"),
                format!("{}{more} ({})", t("principal_name"), t("kinds")),
            ]
        })
        .collect();
    if rows.is_empty() {
        eprintln!("no requests");
        return Ok(Exit::Ok);
    }
    print!(
        "{}",
        table(
            ["ID", "STATUS", "RISK", "REQUESTER", "AGE", "CHANGES"],
            &rows
        )
    );
    Ok(Exit::Ok)
}

/// Columns padded to their widest cell; the last one is not padded.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str, name: &str) -> Value {
        match body_from(text, Path::new(name)) {
            Ok(v) => v,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_file_holds_the_body_or_just_its_changes() {
        let change = json!({"change_type": "resource_tag", "key": "team", "value": "no"});
        let full = json!({"justification": "j", "changes": {"changes": [change]}});
        assert_eq!(body(&full.to_string(), "r.json"), full);
        assert_eq!(
            body(
                &json!({"justification": "j", "changes": [change]}).to_string(),
                "r.json"
            ),
            full
        );
        let bare = body(&json!([change]).to_string(), "c.json");
        assert_eq!(bare["changes"]["changes"][0], change);
        // YAML: `no` stays a string, an account id keeps its leading zero.
        let yaml = "justification: j\nchanges:\n  - change_type: resource_tag\n    key: team\n    value: no\n    account: 012345678901\n";
        let v = body(yaml, "r.yaml");
        assert_eq!(v["changes"]["changes"][0]["value"], "no");
        assert_eq!(v["changes"]["changes"][0]["account"], "012345678901");
        for bad in ["42", "{\"justification\": \"j\"}", "[unclosed"] {
            assert!(body_from(bad, Path::new("x.yaml")).is_err(), "{bad}");
        }
        assert!(body_from("a: 1\na: 2\n", Path::new("dup.yaml")).is_err());
    }

    #[test]
    fn the_readme_ci_example_file_reads_as_a_v2_body() {
        let readme = include_str!("../../README.md");
        let yaml = readme
            .split("with `iam/changes.yaml` holding")
            .nth(1)
            .and_then(|rest| rest.split("```yaml\n").nth(1))
            .and_then(|rest| rest.split("```").next())
            .expect("the README's example changes file");
        let v = body(yaml, "changes.yaml");
        let change = &v["changes"]["changes"][0];
        assert_eq!(change["change_type"], "inline_policy");
        assert_eq!(
            change["principal"]["principal_arn"],
            "arn:aws:iam::123456789012:role/exporter"
        );
        assert_eq!(
            change["policy"]["policy_document"]["Statement"][0]["Action"][0],
            "s3:GetObject"
        );
        assert_eq!(change["policy"]["policy_document"]["Version"], "2012-10-17");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let t = table(
            ["ID", "STATUS"],
            &[["1".into(), "pending".into()], ["22".into(), "ok".into()]],
        );
        assert_eq!(t, "ID  STATUS\n1   pending\n22  ok\n");
    }
}
