//! Policy documents as pages show them: pretty JSON in the document's own key order, coloured
//! by token class (`k` key, `s` string, `n` number, `l` true/false/null, `p` punctuation; the
//! colours are in `static/app.css`, never inline: the CSP forbids inline styles), with the
//! statements that explain a search marked. And the words for *why* a search matched a role.

use serde_json::Value;

use crate::resources::model::action_matches;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn token(class: &str, text: &str) -> String {
    format!("<span class=\"{class}\">{}</span>", escape(text))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => token("s", &serde_json::to_string(s).unwrap_or_default()),
        Value::Number(n) => token("n", &n.to_string()),
        Value::Bool(b) => token("l", if *b { "true" } else { "false" }),
        Value::Null => token("l", "null"),
        // Containers are written by `lines`.
        _ => String::new(),
    }
}

struct Writer<'a> {
    lines: Vec<String>,
    /// Line ranges (start, end) of the top-level statements to mark.
    marked: Vec<(usize, usize)>,
    mark: &'a dyn Fn(&Value) -> bool,
}

impl Writer<'_> {
    fn value(&mut self, v: &Value, depth: usize, prefix: String, last: bool, statements: bool) {
        let pad = "  ".repeat(depth);
        let comma = if last {
            ""
        } else {
            "<span class=\"p\">,</span>"
        };
        let punct = |s: &str| token("p", s);
        match v {
            Value::Array(items) if !items.is_empty() => {
                self.lines.push(format!("{pad}{prefix}{}", punct("[")));
                for (i, item) in items.iter().enumerate() {
                    let start = self.lines.len();
                    self.value(item, depth + 1, String::new(), i + 1 == items.len(), false);
                    if statements && (self.mark)(item) {
                        self.marked.push((start, self.lines.len()));
                    }
                }
                self.lines.push(format!("{pad}{}{comma}", punct("]")));
            }
            Value::Object(map) if !map.is_empty() => {
                let start = self.lines.len();
                self.lines.push(format!("{pad}{prefix}{}", punct("{")));
                for (i, (k, item)) in map.iter().enumerate() {
                    let key = format!(
                        "{}{} ",
                        token("k", &serde_json::to_string(k).unwrap_or_default()),
                        punct(":")
                    );
                    // `Statement` of the document itself: a list, or a single statement.
                    let is_statements = depth == 0 && k == "Statement";
                    if is_statements && item.is_object() {
                        let s = self.lines.len();
                        self.value(item, depth + 1, key, i + 1 == map.len(), false);
                        if (self.mark)(item) {
                            self.marked.push((s, self.lines.len()));
                        }
                    } else {
                        self.value(item, depth + 1, key, i + 1 == map.len(), is_statements);
                    }
                }
                self.lines.push(format!("{pad}{}{comma}", punct("}")));
                let _ = start;
            }
            Value::Array(_) => self
                .lines
                .push(format!("{pad}{prefix}{}{comma}", punct("[]"))),
            Value::Object(_) => self
                .lines
                .push(format!("{pad}{prefix}{}{comma}", punct("{}"))),
            _ => self
                .lines
                .push(format!("{pad}{prefix}{}{comma}", scalar(v))),
        }
    }
}

/// The document as coloured HTML lines (without the `<pre>`), statements for which `mark` is
/// true wrapped in `<mark class="match">`. Safe to embed: every character of the document is
/// escaped.
pub fn to_html(doc: &Value, mark: &dyn Fn(&Value) -> bool) -> String {
    let mut w = Writer {
        lines: vec![],
        marked: vec![],
        mark,
    };
    w.value(doc, 0, String::new(), true, false);
    let mut marked = vec![false; w.lines.len()];
    for (s, e) in &w.marked {
        for m in marked.iter_mut().take(*e).skip(*s) {
            *m = true;
        }
    }
    w.lines
        .iter()
        .zip(marked)
        .map(|(line, m)| {
            if m {
                format!("<mark class=\"match\">{line}</mark>")
            } else {
                line.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Coloured, nothing marked.
pub fn plain(doc: &Value) -> String {
    to_html(doc, &|_| false)
}

/// An action a search can explain: `service:Action`, wildcards allowed.
pub fn as_action(s: &str) -> Option<&str> {
    let s = s.trim();
    let (service, action) = s.split_once(':')?;
    let ok = !service.is_empty()
        && !action.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?');
    ok.then_some(s)
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// The first `Action` pattern of an Allow statement that covers `action` (either may carry
/// wildcards: a search for `s3:Get*` is explained by `s3:GetObject` too).
pub fn allowing_pattern<'v>(statement: &'v Value, action: &str) -> Option<&'v str> {
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return None;
    }
    strings(statement.get("Action"))
        .into_iter()
        .find(|p| action_matches(p, action) || action_matches(action, p))
}

/// Why a document answers a search for `action`: one line per statement that allows it,
/// "statement Sid ReadReports allows s3:*" (statements without a Sid are numbered from 1).
pub fn reasons(doc: &Value, action: &str) -> Vec<String> {
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => vec![],
    };
    statements
        .iter()
        .enumerate()
        .filter_map(|(i, st)| {
            let pattern = allowing_pattern(st, action)?;
            let which = match st.get("Sid").and_then(Value::as_str) {
                Some(sid) if !sid.is_empty() => format!("statement Sid {sid}"),
                _ => format!("statement {}", i + 1),
            };
            Some(format!("{which} allows {pattern}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_key_order_escapes_and_colours() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "<b>", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*",
             "Condition": {"NumericLessThan": {"x": 3}, "Bool": {"y": true}}}]});
        let html = plain(&doc);
        let version = html.find("Version").expect("Version");
        let statement = html.find("Statement").expect("Statement");
        assert!(version < statement, "own key order: {html}");
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"k\">&#34;Effect&#34;</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"n\">3</span>"));
        assert!(html.contains("<span class=\"l\">true</span>"));
        assert!(!html.contains("match"));
        // Same lines as serde's pretty printer, once the tags are gone.
        let text = html
            .split('<')
            .map(|part| part.split_once('>').map(|(_, t)| t).unwrap_or(part))
            .collect::<String>()
            .replace("&#34;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        assert_eq!(text, serde_json::to_string_pretty(&doc).expect("json"));
    }

    #[test]
    fn marks_the_statements_that_allow_an_action_and_says_why() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"},
            {"Sid": "Everything", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ec2:Describe*", "s3:Get*"], "Resource": "*"}]});
        let html = to_html(&doc, &|st| allowing_pattern(st, "s3:GetObject").is_some());
        let marked: Vec<&str> = html.lines().filter(|l| l.contains("match")).collect();
        assert!(marked.iter().any(|l| l.contains("Everything")), "{html}");
        assert!(!marked.iter().any(|l| l.contains("Logs")), "{html}");
        assert!(!marked.iter().any(|l| l.contains("Deny")), "{html}");
        assert_eq!(
            reasons(&doc, "s3:GetObject"),
            [
                "statement Sid Everything allows s3:*",
                "statement 4 allows s3:Get*"
            ]
        );
        assert_eq!(as_action(" s3:GetObject "), Some("s3:GetObject"));
        assert_eq!(as_action("billing"), None);
        // A single statement object is marked too.
        let one = json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}});
        assert!(
            to_html(&one, &|st| allowing_pattern(st, "iam:PassRole").is_some()).contains("match")
        );
    }
}
