//! Slack text for AWS Config findings, in seed 002's attachment style (red for a new finding)
//! plus a short green "resolved". Everything taken from an event is escaped: Slack reads `<...>`
//! as links and mentions, so a crafted rule or resource name could otherwise ping `<!channel>`
//! or disguise a link.

use serde_json::{Value, json};

/// Slack's three control characters escaped, as its message formatting guide requires.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Seed 002's colour for a detected problem.
pub const RED: &str = "#D50200";
pub const GREEN: &str = "#2EB67D";

/// What a message is about, already resolved (account name, iamdesk link).
pub struct FindingText<'a> {
    pub rule: &'a str,
    pub account_id: &'a str,
    pub account_name: Option<&'a str>,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub region: &'a str,
    /// The resource's page in iamdesk, when iamdesk knows it.
    pub link: Option<&'a str>,
}

impl FindingText<'_> {
    fn account(&self) -> String {
        match self.account_name {
            Some(name) => format!("{} ({})", self.account_id, escape(name)),
            None => self.account_id.to_string(),
        }
    }

    fn resource(&self) -> String {
        format!(
            "{} {}",
            escape(self.resource_type),
            escape(self.resource_id)
        )
    }

    /// The subject shown at `/admin/outbox`.
    pub fn subject(&self, resolved: bool) -> String {
        let state = if resolved {
            "resolved"
        } else {
            "NON_COMPLIANT"
        };
        format!(
            "AWS Config: {} {state} in {} for {} {}",
            self.rule, self.account_id, self.resource_type, self.resource_id
        )
    }

    /// A new (or again) non-compliant resource: title the rule, text account, resource, region.
    pub fn alert(&self) -> Value {
        let mut text = format!(
            "Account {}: {} in {} is NON_COMPLIANT with {}.",
            self.account(),
            self.resource(),
            escape(self.region),
            escape(self.rule)
        );
        if let Some(link) = self.link {
            text.push_str(&format!("\n<{}|Open it in iamdesk>", escape(link)));
        }
        json!({
            "text": format!("AWS Config: {} detected a non-compliant resource", escape(self.rule)),
            "attachments": [{
                "color": RED,
                "pretext": escape(self.rule),
                "title": escape(self.rule),
                "text": text,
                "fields": [
                    {"title": "Account", "value": self.account(), "short": true},
                    {"title": "Region", "value": escape(self.region), "short": true},
                    {"title": "Resource", "value": self.resource(), "short": false},
                ],
            }],
        })
    }

    /// Back to compliant: one short line.
    pub fn resolved(&self) -> Value {
        let mut text = format!(
            "Resolved: {} in account {} ({}) is COMPLIANT with {} again.",
            self.resource(),
            self.account(),
            escape(self.region),
            escape(self.rule)
        );
        if let Some(link) = self.link {
            text.push_str(&format!(" <{}|Open it in iamdesk>", escape(link)));
        }
        json!({
            "text": format!("AWS Config: {} resolved", escape(self.rule)),
            "attachments": [{"color": GREEN, "title": escape(self.rule), "text": text}],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(rule: &'a str, link: Option<&'a str>) -> FindingText<'a> {
        FindingText {
            rule,
            account_id: "123456789012",
            account_name: Some("prod & co"),
            resource_type: "AWS::IAM::Role",
            resource_id: "AROA123",
            region: "us-east-1",
            link,
        }
    }

    #[test]
    fn alert_names_rule_account_resource_region_and_link() {
        let body = text(
            "iam-no-admin",
            Some("https://iamdesk.example.com/policies/edit/1/iamrole/x"),
        )
        .alert();
        let a = &body["attachments"][0];
        assert_eq!(a["color"], RED);
        assert_eq!(a["title"], "iam-no-admin");
        let t = a["text"].as_str().expect("text");
        assert!(t.contains("123456789012 (prod &amp; co)"), "{t}");
        assert!(t.contains("AWS::IAM::Role AROA123"));
        assert!(t.contains("us-east-1"));
        assert!(t.contains(
            "<https://iamdesk.example.com/policies/edit/1/iamrole/x|Open it in iamdesk>"
        ));
    }

    #[test]
    fn event_text_cannot_mention_or_link() {
        let body = text("<!channel> <https://evil.example|click>", None).alert();
        let all = body.to_string();
        assert!(!all.contains("<!channel>"));
        assert!(!all.contains("<https://evil"));
        assert!(all.contains("&lt;!channel&gt;"));
        let resolved = text("r", None).resolved();
        assert_eq!(resolved["attachments"][0]["color"], GREEN);
    }
}
