//! `iamdesk import consoleme`: ConsoleMe's policy request history into iamdesk's Store.
//!
//! Reads ConsoleMe's DynamoDB table (`aws.policy_requests_dynamo_table`, ConsoleMe's key, default
//! `consoleme_policy_requests`; `--table` wins) with a paginated, consistent Scan, page by page,
//! so a table of any size takes constant memory. Each item is converted on its own
//! (`consoleme.rs`; empty-string markers and DynamoDB types in `attrs.rs`) and written with a
//! `request.imported` audit event in one Store write: an unreadable item is reported with its
//! reason and the import goes on.
//!
//! Idempotent: a request whose id is already in the Store is left alone (the create is a
//! conditional write, so two imports racing import each item once). With `--update` a request
//! imported before is rewritten from ConsoleMe's current item, as a new version, but only while
//! nothing happened to it in iamdesk since (its version is still the one the import wrote: a
//! decision, an edit or an approval moves it), and only when the content differs; ConsoleMe's
//! new comments are added beside the ones written in iamdesk (comments are never replaced).
//! Running `--update` twice changes nothing the second time.

mod attrs;
pub mod consoleme;

use std::process::ExitCode;

use chrono::Utc;
use serde_json::json;

use crate::config::Config;
use crate::store::{AuditEvent, PolicyRequest, Store, StoreError};

pub use attrs::EMPTY_STRING_MARKER;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImportSource {
    /// Import ConsoleMe's policy requests (history and pending ones) from its DynamoDB table.
    Consoleme(ConsolemeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConsolemeArgs {
    /// ConsoleMe's policy request table [default: aws.policy_requests_dynamo_table, else
    /// consoleme_policy_requests].
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// The table's region [default: AWS_REGION, else aws.region].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Read and convert every item, report what would happen, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refresh requests imported earlier from ConsoleMe's current items (only those nobody has
    /// decided, edited or approved in iamdesk since) and add ConsoleMe's new comments.
    #[arg(long)]
    pub update: bool,
    /// Who runs the import, for the audit trail [default: $USER].
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Items per Scan page [default: as many as fit in DynamoDB's 1 MB]; lower it to spare a
    /// table with little read capacity.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub page_size: Option<i32>,
}

/// What one import does.
#[derive(Debug, Clone)]
pub struct Options {
    pub table: String,
    pub dry_run: bool,
    pub update: bool,
    /// The audit events' actor.
    pub by: String,
    /// Items per Scan page; `None`: DynamoDB's 1 MB pages.
    pub page_size: Option<i32>,
    /// `policies.max_comments`: `--update` adds ConsoleMe's new comments up to this.
    pub max_comments: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the DynamoDB table `{table}`: {message}")]
    Scan { table: String, message: String },
}

/// An item that was not imported, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub id: String,
    pub reason: String,
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub dry_run: bool,
    pub read: usize,
    pub imported: usize,
    pub updated: usize,
    /// Already in iamdesk (and, with `--update`, identical to ConsoleMe's item).
    pub already_present: usize,
    /// Imported earlier and acted on in iamdesk since: `--update` leaves them alone.
    pub changed_in_iamdesk: usize,
    /// An iamdesk request (not an import) has the same id.
    pub id_taken: usize,
    pub unreadable: Vec<Refused>,
    /// Readable, but the Store refused or failed the write.
    pub failed: Vec<Refused>,
}

impl Summary {
    pub fn is_clean(&self) -> bool {
        self.unreadable.is_empty() && self.failed.is_empty()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let would = if self.dry_run { "would be " } else { "" };
        if self.dry_run {
            writeln!(f, "dry run: nothing was written")?;
        }
        writeln!(f, "{} items read", self.read)?;
        writeln!(f, "  {} {would}imported", self.imported)?;
        if self.updated > 0 || self.changed_in_iamdesk > 0 {
            writeln!(f, "  {} {would}updated", self.updated)?;
        }
        writeln!(f, "  {} skipped: already in iamdesk", self.already_present)?;
        if self.changed_in_iamdesk > 0 {
            writeln!(
                f,
                "  {} skipped: acted on in iamdesk since their import, not overwritten",
                self.changed_in_iamdesk
            )?;
        }
        if self.id_taken > 0 {
            writeln!(
                f,
                "  {} skipped: an iamdesk request already has the same id",
                self.id_taken
            )?;
        }
        writeln!(f, "  {} unreadable", self.unreadable.len())?;
        for r in &self.unreadable {
            writeln!(f, "    {}: {}", r.id, r.reason)?;
        }
        if !self.failed.is_empty() {
            writeln!(f, "  {} not written", self.failed.len())?;
            for r in &self.failed {
                writeln!(f, "    {}: {}", r.id, r.reason)?;
            }
        }
        if self.imported == 0 && self.updated == 0 && self.is_clean() {
            writeln!(
                f,
                "nothing to import: every request is already in iamdesk{}",
                if self.already_present > 0 && !self.dry_run {
                    " (--update refreshes earlier imports from ConsoleMe)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// Exit code when some items could not be imported (the others were).
const EXIT_PARTIAL: u8 = 3;

/// The command: read the configuration's Store and ConsoleMe's table, import, print the
/// summary. Exit 0 when every item is in iamdesk, 3 when some were unreadable or not written, 1
/// when the table cannot be read.
pub async fn run(config: &Config, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let ImportSource::Consoleme(args) = &args.source;
    let table = args
        .table
        .clone()
        .unwrap_or_else(|| config.aws.policy_requests_dynamo_table.clone());
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "iamdesk import".into());
    let options = Options {
        table,
        dry_run: args.dry_run,
        update: args.update,
        by,
        page_size: args.page_size,
        max_comments: config.policies.max_comments,
    };
    let client = table_client(config, args.region.as_deref()).await;
    let (store, _cache) = crate::app::open_store(config).await?;
    println!(
        "importing ConsoleMe policy requests from DynamoDB table `{}` into the {} store",
        options.table,
        store.backend_name()
    );
    let summary = import_consoleme(store.as_ref(), &client, &options).await?;
    print!("{summary}");
    Ok(if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}

/// A DynamoDB client for ConsoleMe's table: central credentials, `--region` over the usual
/// region, `dynamodb_server` (ConsoleMe's dynamodb-local key) as the endpoint when set.
pub async fn table_client(config: &Config, region: Option<&str>) -> aws_sdk_dynamodb::Client {
    let sdk = crate::aws::sdk_config(config).await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(region) = region {
        builder = builder.region(aws_config::Region::new(region.to_string()));
    }
    if let Some(endpoint) = &config.dynamodb_server {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// Scan ConsoleMe's table page by page and import every item (module doc).
pub async fn import_consoleme(
    store: &dyn Store,
    client: &aws_sdk_dynamodb::Client,
    options: &Options,
) -> Result<Summary, ImportError> {
    let mut summary = Summary {
        dry_run: options.dry_run,
        ..Summary::default()
    };
    let mut pages = client
        .scan()
        .table_name(&options.table)
        .consistent_read(true)
        .set_limit(options.page_size)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ImportError::Scan {
            table: options.table.clone(),
            message: crate::aws::error_text(&e),
        })?;
        for item in page.items() {
            summary.read += 1;
            import_item(store, attrs::item_to_json(item), options, &mut summary).await;
        }
        tracing::debug!(read = summary.read, "ConsoleMe items read so far");
    }
    Ok(summary)
}

async fn import_item(
    store: &dyn Store,
    item: serde_json::Value,
    options: &Options,
    summary: &mut Summary,
) {
    let id_hint = item
        .get("request_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("(no request_id)")
        .to_string();
    let context = consoleme::Context {
        now: Utc::now(),
        by: &options.by,
    };
    let request = match consoleme::convert(&item, &context) {
        Ok(r) => r,
        Err(reason) => {
            summary.unreadable.push(Refused {
                id: id_hint,
                reason,
            });
            return;
        }
    };
    let id = request.id.clone();
    let failed = |summary: &mut Summary, e: StoreError| {
        summary.failed.push(Refused {
            id: id.clone(),
            reason: e.to_string(),
        })
    };
    let existing = match store.get_request(&request.id).await {
        Ok(existing) => existing,
        Err(e) => return failed(summary, e),
    };
    let Some(current) = existing else {
        if !options.dry_run {
            match store
                .create_request(&request, &event(&request, options, false), &[])
                .await
            {
                Ok(()) => {}
                // Another import got there first: it is in.
                Err(StoreError::Conflict(_)) => {
                    summary.already_present += 1;
                    return;
                }
                Err(e) => return failed(summary, e),
            }
        }
        summary.imported += 1;
        return;
    };
    let Some(earlier) = &current.imported else {
        summary.id_taken += 1;
        return;
    };
    if !options.update {
        summary.already_present += 1;
        return;
    }
    if current.version != earlier.version {
        summary.changed_in_iamdesk += 1;
        return;
    }
    // Comments live apart from the request and are only ever added: ConsoleMe's new ones are.
    let new_comments: Vec<_> = request
        .comments
        .iter()
        .filter(|c| !current.comments.iter().any(|k| k.id == c.id))
        .cloned()
        .collect();
    let same = same_content(&current, &request);
    if same && new_comments.is_empty() {
        summary.already_present += 1;
        return;
    }
    if options.dry_run {
        summary.updated += 1;
        return;
    }
    if !same {
        let mut next = request;
        next.version = current.version + 1;
        if let Some(i) = next.imported.as_mut() {
            i.version = next.version;
        }
        match store
            .update_request(&next, &event(&next, options, true), &[])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                summary.changed_in_iamdesk += 1;
                return;
            }
            Err(e) => return failed(summary, e),
        }
    }
    for c in &new_comments {
        let event = AuditEvent::new(
            &options.by,
            "request.comment_imported",
            Some(&id),
            json!({"source": "consoleme", "comment_id": c.id, "author": c.author}),
        );
        if let Err(e) = store
            .add_comment(&id, c, options.max_comments, &event, &[])
            .await
        {
            return failed(summary, e);
        }
    }
    summary.updated += 1;
}

/// Equal but for when and by whom it was imported, the version, and the comments (compared on
/// their own: they live apart from the request).
fn same_content(stored: &PolicyRequest, fresh: &PolicyRequest) -> bool {
    let normal = |r: &PolicyRequest| {
        let mut r = r.clone();
        r.version = 0;
        r.comments.clear();
        if let Some(i) = r.imported.as_mut() {
            i.imported_at = chrono::DateTime::UNIX_EPOCH;
            i.imported_by.clear();
            i.version = 0;
        }
        r
    };
    normal(stored) == normal(fresh)
}

/// `request.imported`: ConsoleMe's facts about the request, for the audit trail.
fn event(r: &PolicyRequest, options: &Options, update: bool) -> AuditEvent {
    let imported = r.imported.as_ref();
    AuditEvent::new(
        &options.by,
        "request.imported",
        Some(&r.id),
        json!({
            "source": "consoleme",
            "table": options.table,
            "update": update,
            "requester": r.requester,
            "requested_at": r.created_at,
            "last_updated": r.updated_at,
            "consoleme_status": imported.map(|i| i.consoleme_status.as_str()),
            "reviewer": imported.and_then(|i| i.reviewer.as_deref()),
            "changes": r.changes.len(),
            "read_only": imported.map(|i| i.read_only.len()).unwrap_or_default(),
            "comments": r.comments.len(),
        }),
    )
}
