//! Notifications (GUIDE §4): who hears about what, in ConsoleMe's exact words.
//!
//! Every message is built here and written to the outbox in the same Store transaction as the
//! event that caused it ([`messages_for`]); [`worker`] delivers it later through SESv2 or a
//! Slack webhook, with retries. Nothing here talks to the network.

pub mod worker;

use askama::Template;
use serde_json::{Value, json};

use crate::config::{Config, Environment};
use crate::store::{OutboxMessage, PolicyRequest, RequestStatus};

/// What happened to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Created,
    Commented {
        author: String,
    },
    StatusChanged(RequestStatus),
    /// A change's document was edited (`update_change`) by `editor`.
    Updated {
        editor: String,
    },
    /// An expiring grant was taken away (`expired`), left alone because AWS no longer held what
    /// was applied (`drift`), or found gone with its role (`gone`).
    Grant {
        outcome: String,
        detail: String,
    },
    /// An expiring grant goes soon.
    GrantReminder {
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// A break-glass request, applied at once: every administrator is alerted.
    BreakGlass {
        reason: String,
    },
    /// An approval that does not complete the rule: the approvers still needed are told.
    ApprovalRecorded {
        by: String,
        still_needed: Vec<String>,
        /// The addresses of the requirements still unmet.
        to: Vec<String>,
    },
}

/// An email as stored in the outbox (`channel = "email"`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub request_id: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Template)]
#[template(path = "email.html")]
struct EmailHtml<'a> {
    subject: &'a str,
    text: &'a str,
    link: &'a str,
}

/// `{url}/policies/request/{id}`.
pub fn request_link(config: &Config, id: &str) -> String {
    format!("{}/policies/request/{id}", config.url.trim_end_matches('/'))
}

/// The principal ARN of the first change, with `and N more` when the request touches several.
pub fn request_arn(r: &PolicyRequest) -> String {
    let arns = r.changes.targets();
    match arns.len() {
        0 => r
            .imported
            .as_ref()
            .and_then(|i| i.principal.clone())
            .unwrap_or_else(|| "(no principal)".to_string()),
        1 => arns[0].to_string(),
        n => format!("{} and {} more", arns[0], n - 1),
    }
}

/// Only things that look like email addresses: group names cannot be mailed. A group written
/// `group:team@example.com` (a mailing list, see `auth::access`) is mailed at its address.
fn emails<'a>(list: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim())
        .map(|s| s.strip_prefix("group:").unwrap_or(s).trim())
        .filter(|s| s.contains('@') && !s.contains(char::is_whitespace))
        .map(str::to_string)
        .collect()
}

/// `application_admin` and the addresses in `groups.can_admin_policies` / `groups.can_admin`;
/// when there are none, `groups.fallback_policy_request_reviewers`.
pub fn reviewers(config: &Config) -> Vec<String> {
    let mut list = emails(config.application_admin.iter());
    list.extend(emails(&config.groups.can_admin_policies));
    list.extend(emails(&config.groups.can_admin));
    if list.is_empty() {
        list = emails(&config.groups.fallback_policy_request_reviewers);
    }
    list
}

/// De-duplicated (case-insensitively, first spelling kept), without `except`.
fn dedup_without(list: Vec<String>, except: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in list {
        let lower = a.to_lowercase();
        if except.is_some_and(|e| e.eq_ignore_ascii_case(&a)) {
            continue;
        }
        if !out.iter().any(|o| o.to_lowercase() == lower) {
            out.push(a);
        }
    }
    out
}

/// Who is told about `event`: the requester and the reviewers (and, for comments, earlier
/// commenters), never `actor` — except the requester's own receipt for a new request. When
/// nobody is left, the fallback reviewers (still without the actor). In dev,
/// `ses.override_receivers_for_dev` replaces everyone.
pub fn recipients(config: &Config, r: &PolicyRequest, event: &Event, actor: &str) -> Vec<String> {
    let mut list = vec![r.requester.clone()];
    list.extend(reviewers(config));
    let except = match event {
        Event::Created => None,
        Event::BreakGlass { .. } => {
            // Every administrator with an address, whatever the fallback says.
            list.extend(emails(&config.groups.fallback_policy_request_reviewers));
            Some(actor)
        }
        Event::Commented { .. } => {
            list.extend(r.comments.iter().map(|c| c.author.clone()));
            Some(actor)
        }
        Event::StatusChanged(_) | Event::Updated { .. } => Some(actor),
        // About a grant: the requester (and, for drift, the reviewers: somebody changed AWS).
        Event::Grant { outcome, .. } if outcome == "drift" => Some(actor),
        Event::Grant { .. } | Event::GrantReminder { .. } => {
            list.truncate(1);
            Some(actor)
        }
        // The approvers still needed (and the requester, to follow along).
        Event::ApprovalRecorded { to, .. } => {
            list.truncate(1);
            list.extend(to.iter().cloned());
            Some(actor)
        }
    };
    let mut to = dedup_without(emails(&list), except);
    if to.is_empty() {
        to = dedup_without(
            emails(&config.groups.fallback_policy_request_reviewers),
            except,
        );
    }
    if config.environment == Environment::Dev
        && !config.ses.override_receivers_for_dev.is_empty()
        && !to.is_empty()
    {
        to = dedup_without(emails(&config.ses.override_receivers_for_dev), None);
    }
    to
}

/// `approved and committed`, `rejected`, `cancelled` (ConsoleMe's words).
pub fn status_words(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Approved => "approved and committed",
        other => other.as_str(),
    }
}

/// Subject and plain-text body, word for word as GUIDE §4 (ConsoleMe) has them.
pub fn subject_and_text(config: &Config, r: &PolicyRequest, event: &Event) -> (String, String) {
    let name = &config.ses.consoleme.name;
    let arn = request_arn(r);
    let link = request_link(config, &r.id);
    let support = &config.ses.support_reference;
    let see = format!("See the request here: {link}.\n\n\n{support}");
    match event {
        Event::Created => (
            format!("{name}: Policy change request for {arn} has been created"),
            format!("A policy change request for {arn} has been created.\n\n{see}"),
        ),
        Event::Commented { author } => (
            format!("{name}: A new comment has been added to Policy Change request for {arn}"),
            format!(
                "A new comment has been added to the policy change request for {arn} by \
                 {author}\n\n{see}"
            ),
        ),
        Event::Grant { outcome, detail } => {
            let what = match outcome.as_str() {
                "expired" => "has expired and was removed",
                "drift" => "has expired but was changed outside iamdesk, so it was left alone",
                _ => "has expired; its role no longer exists",
            };
            (
                format!("{name}: A temporary grant of policy change request for {arn} {what}"),
                format!(
                    "A temporary grant of the policy change request for {arn} {what}: \
                     {detail}\n\n{see}"
                ),
            )
        }
        Event::GrantReminder { expires_at } => (
            format!("{name}: A temporary grant for {arn} expires soon"),
            format!(
                "A temporary grant of the policy change request for {arn} expires at \
                 {}. Open the request to ask for an extension.\n\n{see}",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
        ),
        Event::BreakGlass { reason } => (
            format!(
                "{name}: BREAK-GLASS: Policy change request for {arn} was applied at once by {}",
                r.requester
            ),
            format!(
                "BREAK-GLASS: {} applied the policy change request for {arn} at once, without \
                 review. Their reason: {reason}\n\nReview it, mark it reviewed or revoke it \
                 early: {link}.\n\n\n{support}",
                r.requester
            ),
        ),
        Event::ApprovalRecorded {
            by, still_needed, ..
        } => (
            format!("{name}: Policy change request for {arn} needs more approvals"),
            format!(
                "The policy change request for {arn} was approved by {by}; it still needs {}.\n\n{see}",
                still_needed.join(" and ")
            ),
        ),
        Event::Updated { editor } => (
            format!("{name}: Policy change request for {arn} has been updated"),
            format!(
                "A policy change request for {arn} has been updated by {editor}: review its \
                 changes again before approving.\n\n{see}"
            ),
        ),
        Event::StatusChanged(status) => {
            let words = status_words(*status);
            (
                format!("{name}: Policy change request for {arn} has been updated to {words}"),
                format!("A policy change request for {arn} has been updated to {words}\n\n{see}"),
            )
        }
    }
}

/// The email for `event`, or `None` when nobody is to be told.
pub fn email_for(config: &Config, r: &PolicyRequest, event: &Event, actor: &str) -> Option<Email> {
    let to = recipients(config, r, event, actor);
    if to.is_empty() {
        return None;
    }
    let (subject, text) = subject_and_text(config, r, event);
    let link = request_link(config, &r.id);
    let html = EmailHtml {
        subject: &subject,
        text: &text,
        link: &link,
    }
    .render()
    .unwrap_or_else(|_| format!("<pre>{}</pre>", askama_escape(&text)));
    Some(Email {
        request_id: r.id.clone(),
        to,
        subject,
        text,
        html,
    })
}

fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack attachment colour by status (seed 002's attachment style).
fn slack_color(event: &Event) -> &'static str {
    match event {
        Event::Created | Event::Commented { .. } | Event::Updated { .. } => "#1D9BD1",
        Event::Grant { .. } | Event::GrantReminder { .. } | Event::ApprovalRecorded { .. } => {
            "#9E9E9E"
        }
        Event::StatusChanged(RequestStatus::Approved) => "#2EB67D",
        Event::StatusChanged(RequestStatus::Rejected) | Event::BreakGlass { .. } => "#D50200",
        Event::StatusChanged(_) => "#9E9E9E",
    }
}

/// Slack's control characters escaped as its message format asks (`&amp;`, `&lt;`, `&gt;`), so a
/// role path like `<https://evil|x>` stays text instead of becoming a link or a mention.
pub fn slack_escape(s: &str) -> String {
    askama_escape(s)
}

/// The incoming-webhook body for a new request or a status change (not for comments). Every
/// text that comes from a request is escaped ([`slack_escape`]); the link is our own.
pub fn slack_for(config: &Config, r: &PolicyRequest, event: &Event) -> Option<Value> {
    if !config.slack.notifications_enabled || config.slack.webhook_url.is_none() {
        return None;
    }
    let status = match event {
        Event::Created => "pending",
        Event::BreakGlass { .. } => "BREAK-GLASS: applied at once",
        Event::StatusChanged(s) => status_words(*s),
        Event::Commented { .. }
        | Event::Updated { .. }
        | Event::Grant { .. }
        | Event::GrantReminder { .. }
        | Event::ApprovalRecorded { .. } => return None,
    };
    let (subject, _) = subject_and_text(config, r, event);
    let link = request_link(config, &r.id);
    let subject = slack_escape(&subject);
    Some(json!({
        "text": format!("{subject} <{link}|Open the request>"),
        "attachments": [{
            "color": slack_color(event),
            "title": subject,
            "title_link": link,
            "fields": [
                {"title": "Principal", "value": slack_escape(&request_arn(r)), "short": false},
                {"title": "Requester", "value": slack_escape(&r.requester), "short": true},
                {"title": "Status", "value": status, "short": true},
            ],
        }],
    }))
}

/// The outbox messages for `event` on request `r` (as it is after the event), caused by `actor`.
pub fn messages_for(
    config: &Config,
    r: &PolicyRequest,
    event: &Event,
    actor: &str,
) -> Vec<OutboxMessage> {
    let mut out = Vec::new();
    if let Some(email) = email_for(config, r, event, actor)
        && let Ok(payload) = serde_json::to_value(&email)
    {
        out.push(OutboxMessage::new("email", payload));
    }
    if let Some(body) = slack_for(config, r, event) {
        out.push(OutboxMessage::new(
            "slack",
            json!({"request_id": r.id, "subject": subject_and_text(config, r, event).0,
                   "body": body}),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Comment;
    use chrono::Utc;

    fn config() -> Config {
        let mut c = Config {
            url: "https://iamdesk.example.com/".into(),
            ..Config::default()
        };
        c.ses.consoleme.name = "ConsoleMe".into();
        c.ses.support_reference =
            "Please contact us at consoleme@example.com if you have any questions or concerns."
                .into();
        c.groups.can_admin = vec!["admins".into(), "alice@example.com".into()];
        c.groups.can_admin_policies = vec!["bob@example.com".into(), "Alice@example.com".into()];
        c.groups.fallback_policy_request_reviewers = vec!["fallback@example.com".into()];
        c
    }

    fn request(changes: Vec<Value>) -> PolicyRequest {
        let mut r = crate::store::conformance::sample_request("dev@example.com", 0);
        r.id = "1234567b-a10f-1234-a12a-1e2ece345678".into();
        r.changes = serde_json::from_value(json!({ "changes": changes })).expect("changes");
        r
    }

    fn on(arn: &str) -> Value {
        json!({"change_type": "inline_policy", "id": "c", "policy_name": "p", "action": "detach",
               "principal": {"principal_type": "AwsResource", "principal_arn": arn}})
    }

    fn new_role(name: &str, path: &str) -> Value {
        json!({"change_type": "create_role", "id": "n", "account_id": "111122223333",
               "role_name": name, "path": path,
               "policy": {"policy_document": {"Version": "2012-10-17", "Statement": []}}})
    }

    #[test]
    fn texts_match_consolemes_word_for_word() {
        let c = config();
        let r = request(vec![on("arn:aws:iam::123456789012:role/example-role")]);
        let (subject, text) =
            subject_and_text(&c, &r, &Event::StatusChanged(RequestStatus::Approved));
        assert_eq!(
            subject,
            "ConsoleMe: Policy change request for arn:aws:iam::123456789012:role/example-role has been updated \
             to approved and committed"
        );
        assert_eq!(
            text,
            "A policy change request for arn:aws:iam::123456789012:role/example-role has been updated to \
             approved and committed\n\nSee the request here: \
             https://iamdesk.example.com/policies/request/1234567b-a10f-1234-a12a-1e2ece345678.\
             \n\n\nPlease contact us at consoleme@example.com if you have any questions or \
             concerns."
        );
        let (subject, text) = subject_and_text(
            &c,
            &r,
            &Event::Commented {
                author: "bob@company-name.com".into(),
            },
        );
        assert_eq!(
            subject,
            "ConsoleMe: A new comment has been added to Policy Change request for \
             arn:aws:iam::123456789012:role/example-role"
        );
        assert!(text.starts_with(
            "A new comment has been added to the policy change request for \
             arn:aws:iam::123456789012:role/example-role by bob@company-name.com\n\nSee the request here: "
        ));
        let (subject, text) = subject_and_text(&c, &r, &Event::Created);
        assert_eq!(
            subject,
            "ConsoleMe: Policy change request for arn:aws:iam::123456789012:role/example-role has been created"
        );
        assert!(text.starts_with(
            "A policy change request for arn:aws:iam::123456789012:role/example-role has been created.\n\n"
        ));
        for (status, words) in [
            (RequestStatus::Rejected, "rejected"),
            (RequestStatus::Cancelled, "cancelled"),
        ] {
            let (subject, _) = subject_and_text(&c, &r, &Event::StatusChanged(status));
            assert!(subject.ends_with(&format!("has been updated to {words}")));
        }
    }

    #[test]
    fn several_principals_read_and_n_more() {
        let r = request(vec![
            on("arn:aws:iam::111122223333:role/a"),
            on("arn:aws:iam::111122223333:role/b"),
            on("arn:aws:iam::111122223333:role/a"),
            new_role("new", "/svc/"),
        ]);
        assert_eq!(
            request_arn(&r),
            "arn:aws:iam::111122223333:role/a and 2 more"
        );
        let r = request(vec![new_role("new", "/")]);
        assert_eq!(request_arn(&r), "arn:aws:iam::111122223333:role/new");
    }

    #[test]
    fn recipients_are_requester_and_reviewers_without_the_actor() {
        let c = config();
        let mut r = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        // A new request: the requester's receipt too.
        assert_eq!(
            recipients(&c, &r, &Event::Created, "dev@example.com"),
            ["dev@example.com", "bob@example.com", "Alice@example.com"],
            "de-duplicated ignoring case, first spelling kept"
        );
        // Approval by alice: not alice; group names are never addresses.
        assert_eq!(
            recipients(
                &c,
                &r,
                &Event::StatusChanged(RequestStatus::Approved),
                "ALICE@example.com"
            ),
            ["dev@example.com", "bob@example.com"]
        );
        // A comment by the requester reaches the reviewers and earlier commenters.
        r.comments.push(Comment {
            id: "c".into(),
            author: "carol@example.com".into(),
            text: "t".into(),
            created_at: Utc::now(),
        });
        assert_eq!(
            recipients(
                &c,
                &r,
                &Event::Commented {
                    author: "dev@example.com".into()
                },
                "dev@example.com"
            ),
            ["bob@example.com", "Alice@example.com", "carol@example.com"]
        );
    }

    #[test]
    fn no_reviewers_means_the_fallback_list() {
        let mut c = config();
        c.groups.can_admin = vec!["admins".into()];
        c.groups.can_admin_policies = vec![];
        let r = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        assert_eq!(reviewers(&c), ["fallback@example.com"]);
        let ev = Event::Commented {
            author: "dev@example.com".into(),
        };
        assert_eq!(
            recipients(&c, &r, &ev, "dev@example.com"),
            ["fallback@example.com"]
        );
        // Nobody at all: no message.
        c.groups.fallback_policy_request_reviewers = vec![];
        assert!(email_for(&c, &r, &ev, "dev@example.com").is_none());
    }

    #[test]
    fn dev_override_redirects_all_mail() {
        let mut c = config();
        c.environment = Environment::Dev;
        c.ses.override_receivers_for_dev = vec!["me@example.com".into()];
        let r = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        assert_eq!(
            recipients(&c, &r, &Event::Created, "dev@example.com"),
            ["me@example.com"]
        );
    }

    #[test]
    fn html_carries_the_same_words_escaped_and_a_button() {
        let mut c = config();
        c.ses.consoleme.name = "Desk<b>".into();
        let mut r = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        r.requester = "dev@example.com".into();
        let email = email_for(&c, &r, &Event::Created, "dev@example.com").expect("email");
        assert!(email.html.contains("Desk&#60;b&#62;") || email.html.contains("Desk&lt;b&gt;"));
        assert!(!email.html.contains("<b>"));
        assert!(
            email
                .html
                .contains(&format!("href=\"{}\"", request_link(&c, &r.id)))
        );
        let plain = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        let email = email_for(&c, &plain, &Event::Created, "x@example.com").expect("email");
        assert!(
            email.html.contains(&email.text),
            "the exact text is in the HTML part"
        );
    }

    #[test]
    fn slack_only_when_enabled_and_not_for_comments() {
        let mut c = config();
        let r = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        assert!(slack_for(&c, &r, &Event::Created).is_none());
        c.slack.notifications_enabled = true;
        c.slack.webhook_url = Some("http://127.0.0.1:9/hook".into());
        let body = slack_for(&c, &r, &Event::StatusChanged(RequestStatus::Rejected)).expect("on");
        assert_eq!(body["attachments"][0]["color"], "#D50200");
        assert_eq!(
            body["attachments"][0]["fields"][0]["value"],
            "arn:aws:iam::111122223333:role/a"
        );
        assert!(
            slack_for(
                &c,
                &r,
                &Event::Commented {
                    author: "a@example.com".into()
                }
            )
            .is_none()
        );
        let msgs = messages_for(&c, &r, &Event::Created, "dev@example.com");
        let channels: Vec<&str> = msgs.iter().map(|m| m.channel.as_str()).collect();
        assert_eq!(channels, ["email", "slack"]);
    }

    #[test]
    fn a_group_with_an_address_for_a_name_is_mailed_at_it() {
        let mut c = config();
        c.application_admin = None;
        c.groups.can_admin = vec!["group:iam-admins@example.com".into(), "ops".into()];
        c.groups.can_admin_policies = vec![];
        assert_eq!(reviewers(&c), ["iam-admins@example.com"]);
    }

    #[test]
    fn slack_text_from_a_request_cannot_make_links() {
        let mut c = config();
        c.slack.notifications_enabled = true;
        c.slack.webhook_url = Some("http://127.0.0.1:9/hook".into());
        // Role ARNs cannot carry markup (the typed model refuses it); names and people can.
        c.ses.consoleme.name = "Desk <https://evil.example|x>&y".into();
        let mut r = request(vec![on("arn:aws:iam::111122223333:role/a")]);
        r.requester = "<!channel>@example.com".into();
        let body = slack_for(&c, &r, &Event::Created).expect("on");
        let all = body.to_string();
        assert!(!all.contains("<https://evil"), "{all}");
        assert!(!all.contains("<!channel>"), "{all}");
        assert!(
            all.contains("&lt;https://evil.example|x&gt;&amp;y"),
            "{all}"
        );
        // Our own link is still a link.
        assert!(
            body["text"]
                .as_str()
                .is_some_and(|t| t.ends_with("|Open the request>")),
            "{all}"
        );
    }
}
