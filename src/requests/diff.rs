//! Diff of the current vs the proposed version of a policy document (or of a
//! plain value such as a tag or an ARN), shown to the admin who reviews a
//! request before approving it.
//!
//! Documents are pretty-printed with object keys sorted, so a change in key
//! order never shows up as a change, and then diffed line by line. Lines that
//! were replaced get word-level emphasis on the words that actually changed.
//! [`Diff::to_html`] renders the result as a unified diff table for
//! server-side rendering: class names only (the page has a strict CSP, no
//! inline styles or scripts) and every piece of text HTML-escaped, because
//! policy documents are user input. The matching rules are in `static/app.css`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use similar::{Algorithm, ChangeTag, InlineChangeMode, InlineChangeOptions, TextDiff};

/// Upper bound on the time spent diffing one pair of documents. The line diff
/// (heuristic Myers) and the word refinement both honour it: past the deadline
/// they fall back to a coarser (still correct) diff instead of searching for
/// the minimal one, so pathological inputs cannot stall a page render.
const DIFF_BUDGET: Duration = Duration::from_millis(500);

/// Unchanged lines kept around each change by [`Diff::to_html`]; longer runs
/// of unchanged lines are collapsed into one "N unchanged lines" row.
pub const DEFAULT_CONTEXT: usize = 3;

/// Which side(s) of the diff a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Unchanged: present in both the old and the new text.
    Both,
    /// Removed: only in the old text.
    Old,
    /// Added: only in the new text.
    New,
}

/// A piece of a line; `emphasized` marks the words that changed within a
/// replaced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub emphasized: bool,
}

/// One line of the unified diff. Line numbers are 1-based; `old_no` is `None`
/// for added lines and `new_no` is `None` for removed lines. The segments hold
/// the line without its line terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub kind: Side,
    pub old_no: Option<usize>,
    pub new_no: Option<usize>,
    pub segments: Vec<Segment>,
}

impl DiffLine {
    /// The whole line as plain text.
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect()
    }
}

/// A line diff: every line of the old and the new text in unified order
/// (unchanged lines included), plus the number of added and removed lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub lines: Vec<DiffLine>,
    pub added: usize,
    pub removed: usize,
}

/// Diffs two JSON policy documents. Both are pretty-printed with object keys
/// sorted (at every depth), so key order is never reported as a change.
/// `None` stands for "no document": nothing before (e.g. a new inline policy,
/// every line is added) or nothing after (e.g. a detach, every line removed).
pub fn diff_json(old: Option<&Value>, new: Option<&Value>) -> Diff {
    let old = old.map(pretty_sorted).unwrap_or_default();
    let new = new.map(pretty_sorted).unwrap_or_default();
    diff_lines(&old, &new)
}

/// Diffs two plain texts (tags, ARNs, ...) line by line. Line endings are
/// normalised (`\r\n` and `\n` are the same; a missing final newline is not a
/// change).
pub fn diff_text(old: &str, new: &str) -> Diff {
    diff_lines(&normalize_text(old), &normalize_text(new))
}

impl Diff {
    /// `true` when the two sides are identical (no added or removed lines).
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.removed == 0
    }

    /// Renders the diff as a unified diff `<table class="diff">` with
    /// [`DEFAULT_CONTEXT`] unchanged lines around each change. See
    /// [`Diff::to_html_with_context`].
    pub fn to_html(&self) -> String {
        self.to_html_with_context(Some(DEFAULT_CONTEXT))
    }

    /// Renders the diff as an HTML table: one row per line with the old and
    /// the new line number, a `-`/`+` marker and the escaped text; removed
    /// rows have `class="del"`, added rows `class="add"`, and the changed
    /// words of a replaced line are wrapped in `<mark>`.
    ///
    /// With `Some(n)`, runs of unchanged lines further than `n` lines from a
    /// change collapse into one `class="skip"` row; with `None` (or when
    /// nothing changed, so the reviewer still sees the document) every line
    /// is shown. Only class names are used, no inline styles (see
    /// `static/app.css`), and all text is HTML-escaped.
    pub fn to_html_with_context(&self, context: Option<usize>) -> String {
        let visible = match context {
            Some(n) if !self.is_empty() => visible_lines(&self.lines, n),
            _ => vec![true; self.lines.len()],
        };
        let mut html = String::with_capacity(64 + self.lines.len() * 96);
        html.push_str("<table class=\"diff\"><tbody>\n");
        let mut i = 0;
        while i < self.lines.len() {
            if !visible[i] {
                let start = i;
                while i < self.lines.len() && !visible[i] {
                    i += 1;
                }
                let n = i - start;
                let noun = if n == 1 { "line" } else { "lines" };
                let _ = writeln!(
                    html,
                    "<tr class=\"skip\"><td colspan=\"4\">\u{22ef} {n} unchanged {noun}</td></tr>"
                );
                continue;
            }
            push_row(&mut html, &self.lines[i]);
            i += 1;
        }
        html.push_str("</tbody></table>\n");
        html
    }

    /// The diff as plain text for a terminal or a pull-request comment: `+`/`-`/space then the
    /// line, with runs of unchanged lines further than `context` from a change collapsed into
    /// one `⋯ N unchanged lines` line (every line when nothing changed, as in [`Self::to_html`]).
    pub fn to_text(&self, context: usize) -> String {
        let visible = if self.is_empty() {
            vec![true; self.lines.len()]
        } else {
            visible_lines(&self.lines, context)
        };
        let mut text = String::with_capacity(self.lines.len() * 48);
        let mut i = 0;
        while i < self.lines.len() {
            if !visible[i] {
                let start = i;
                while i < self.lines.len() && !visible[i] {
                    i += 1;
                }
                let n = i - start;
                let noun = if n == 1 { "line" } else { "lines" };
                let _ = writeln!(text, "  \u{22ef} {n} unchanged {noun}");
                continue;
            }
            let line = &self.lines[i];
            let sign = match line.kind {
                Side::Both => ' ',
                Side::Old => '-',
                Side::New => '+',
            };
            let _ = writeln!(text, "{sign} {}", line.text());
            i += 1;
        }
        text
    }
}

// The diff table's styles live in static/app.css (the CSP allows no inline styles).

// ---------------------------------------------------------------------------

/// Pretty JSON with object keys sorted at every depth. The sort is done here
/// rather than relying on `serde_json::Map` being a `BTreeMap`, which stops
/// being true as soon as any crate in the build enables serde_json's
/// `preserve_order` feature.
fn pretty_sorted(value: &Value) -> String {
    serde_json::to_string_pretty(&Sorted(value)).unwrap_or_else(|_| value.to_string())
}

/// Serializes a [`Value`] with object keys in one fixed order, without cloning it: the keys of
/// IAM policy grammar in the order AWS documents and people write them (`Version` before
/// `Statement`, `Sid`, `Effect`, `Principal`, `Action`, `Resource`, `Condition`), then any
/// other key byte-wise (like `BTreeMap<String, _>`). Fixed, so both sides of a diff agree
/// however each document was written.
struct Sorted<'a>(&'a Value);

/// Where an IAM policy key goes; other keys after these, alphabetically.
fn key_rank(key: &str) -> usize {
    const ORDER: &[&str] = &[
        "Version",
        "Id",
        "Statement",
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ];
    ORDER.iter().position(|k| *k == key).unwrap_or(ORDER.len())
}

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| {
                    key_rank(a.0).cmp(&key_rank(b.0)).then_with(|| a.0.cmp(b.0))
                });
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Sorted(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// `\n`-separated lines with a final newline (empty input stays empty).
fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn diff_lines(old: &str, new: &str) -> Diff {
    // Both texts end with a newline (or are empty), so a last line never
    // differs from its counterpart only by a missing terminator.
    let old = with_final_newline(old);
    let new = with_final_newline(new);
    let deadline = Instant::now() + DIFF_BUDGET;
    let text_diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .deadline(deadline)
        .diff_lines(old.as_ref(), new.as_ref());
    let mut options = InlineChangeOptions::new();
    options.mode(InlineChangeMode::UnicodeWords);

    let mut diff = Diff::default();
    for change in text_diff.iter_all_inline_changes_with_options_deadline(options, Some(deadline)) {
        let kind = match change.tag() {
            ChangeTag::Equal => Side::Both,
            ChangeTag::Delete => {
                diff.removed += 1;
                Side::Old
            }
            ChangeTag::Insert => {
                diff.added += 1;
                Side::New
            }
        };
        let mut segments: Vec<Segment> = Vec::new();
        for &(emphasized, text) in change.values() {
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            // Unchanged lines never carry emphasis.
            let emphasized = emphasized && kind != Side::Both;
            match segments.last_mut() {
                Some(last) if last.emphasized == emphasized => last.text.push_str(text),
                _ => segments.push(Segment {
                    text: text.to_owned(),
                    emphasized,
                }),
            }
        }
        diff.lines.push(DiffLine {
            kind,
            old_no: change.old_index().map(|i| i + 1),
            new_no: change.new_index().map(|i| i + 1),
            segments,
        });
    }
    diff
}

fn with_final_newline(text: &str) -> std::borrow::Cow<'_, str> {
    if text.is_empty() || text.ends_with('\n') {
        text.into()
    } else {
        format!("{text}\n").into()
    }
}

/// Marks the lines to show: every changed line and up to `context` unchanged
/// lines on each side of a change. Linear in the number of lines.
fn visible_lines(lines: &[DiffLine], context: usize) -> Vec<bool> {
    let mut visible = vec![false; lines.len()];
    // Forward pass: lines at most `context` after a change.
    let mut since_change: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.kind != Side::Both {
            since_change = Some(0);
            visible[i] = true;
        } else if let Some(d) = since_change.as_mut() {
            *d += 1;
            visible[i] = *d <= context;
        }
    }
    // Backward pass: lines at most `context` before a change.
    let mut until_change: Option<usize> = None;
    for (i, line) in lines.iter().enumerate().rev() {
        if line.kind != Side::Both {
            until_change = Some(0);
        } else if let Some(d) = until_change.as_mut() {
            *d += 1;
            visible[i] |= *d <= context;
        }
    }
    // Collapsing a single line saves nothing: show it instead.
    for i in 0..lines.len() {
        let hidden_alone =
            !visible[i] && (i == 0 || visible[i - 1]) && (i + 1 == lines.len() || visible[i + 1]);
        if hidden_alone {
            visible[i] = true;
        }
    }
    visible
}

fn push_row(html: &mut String, line: &DiffLine) {
    let (class, sign) = match line.kind {
        Side::Both => ("ctx", "&nbsp;"),
        Side::Old => ("del", "-"),
        Side::New => ("add", "+"),
    };
    let _ = write!(html, "<tr class=\"{class}\"><td class=\"ln\">");
    if let Some(n) = line.old_no {
        let _ = write!(html, "{n}");
    }
    html.push_str("</td><td class=\"ln\">");
    if let Some(n) = line.new_no {
        let _ = write!(html, "{n}");
    }
    let _ = write!(
        html,
        "</td><td class=\"sign\">{sign}</td><td class=\"code\">"
    );
    for segment in &line.segments {
        if segment.emphasized {
            html.push_str("<mark>");
            escape_into(html, &segment.text);
            html.push_str("</mark>");
        } else {
            escape_into(html, &segment.text);
        }
    }
    html.push_str("</td></tr>\n");
}

/// Escapes text for HTML element content and (double- or single-quoted)
/// attribute values.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(action: &str) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Read",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", action],
                    "Resource": "arn:aws:s3:::bucket-a/*"
                },
                {
                    "Sid": "Queue",
                    "Effect": "Allow",
                    "Action": "sqs:SendMessage",
                    "Resource": "arn:aws:sqs:us-east-1:123456789012:q"
                }
            ]
        })
    }

    fn changed(diff: &Diff) -> Vec<&DiffLine> {
        diff.lines.iter().filter(|l| l.kind != Side::Both).collect()
    }

    fn emphasized(line: &DiffLine) -> Vec<&str> {
        line.segments
            .iter()
            .filter(|s| s.emphasized)
            .map(|s| s.text.as_str())
            .collect()
    }

    #[test]
    fn text_diff_marks_lines_and_collapses_far_context() {
        let d = diff_json(Some(&policy("s3:GetObject")), Some(&policy("s3:PutObject")));
        let text = d.to_text(1);
        assert!(
            text.lines()
                .any(|l| l.starts_with("- ") && l.ends_with("\"s3:GetObject\"")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("+ ") && l.ends_with("\"s3:PutObject\"")),
            "{text}"
        );
        assert!(text.contains("unchanged lines"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with(['+', '-'])).count(),
            d.added + d.removed
        );
        // Nothing changed: the whole document, every line unmarked.
        let same = diff_json(Some(&policy("a")), Some(&policy("a")));
        assert!(same.to_text(1).lines().all(|l| l.starts_with("  ")));
    }

    #[test]
    fn documents_keep_their_key_order_and_diffs_sort_them() {
        // `preserve_order` is on, so a policy is stored and shown as written (`Version` first);
        // the diff sorts keys so that a change in key order is never a change.
        let v: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        assert_eq!(v.to_string(), r#"{"b":1,"a":2}"#);
        assert_eq!(
            pretty_sorted(&json!({"b": {"z": 1, "y": [{"d": 1, "c": 2}]}, "a": 0})),
            "{\n  \"a\": 0,\n  \"b\": {\n    \"y\": [\n      {\n        \"c\": 2,\n        \"d\": 1\n      }\n    ],\n    \"z\": 1\n  }\n}"
        );
    }

    #[test]
    fn identical_documents_give_an_empty_diff() {
        let doc = policy("s3:GetObject");
        let diff = diff_json(Some(&doc), Some(&doc.clone()));
        assert!(diff.is_empty());
        assert_eq!((diff.added, diff.removed), (0, 0));
        assert!(diff.lines.iter().all(|l| l.kind == Side::Both));
        let n = pretty_sorted(&doc).lines().count();
        assert_eq!(diff.lines.len(), n);
        for (i, line) in diff.lines.iter().enumerate() {
            assert_eq!(line.old_no, Some(i + 1));
            assert_eq!(line.new_no, Some(i + 1));
            assert!(line.segments.iter().all(|s| !s.emphasized));
        }
        // With nothing changed, the HTML shows the whole document.
        let html = diff.to_html();
        assert_eq!(html.matches("<tr class=\"ctx\">").count(), n);
        assert!(!html.contains("class=\"skip\""));
    }

    #[test]
    fn changed_action_is_one_removed_and_one_added_line_with_emphasis() {
        let old = policy("s3:GetObject");
        let new = policy("s3:PutObject");
        let diff = diff_json(Some(&old), Some(&new));
        assert!(!diff.is_empty());
        assert_eq!((diff.added, diff.removed), (1, 1));

        let changes = changed(&diff);
        assert_eq!(changes.len(), 2);
        let (del, add) = (changes[0], changes[1]);
        assert_eq!(del.kind, Side::Old);
        assert_eq!(add.kind, Side::New);
        assert_eq!(del.text(), r#"        "s3:GetObject""#);
        assert_eq!(add.text(), r#"        "s3:PutObject""#);
        assert_eq!(emphasized(del), ["GetObject"]);
        assert_eq!(emphasized(add), ["PutObject"]);
        // Same position in both documents.
        assert_eq!((del.old_no, del.new_no), (add.new_no, add.old_no));
        let line_no = del.old_no.unwrap();
        assert_eq!(add.new_no, Some(line_no));

        // Context lines keep both numbers; the numbering stays aligned
        // around the change because the documents have the same length.
        let old_text = pretty_sorted(&old);
        let new_text = pretty_sorted(&new);
        let old_lines: Vec<&str> = old_text.lines().collect();
        let new_lines: Vec<&str> = new_text.lines().collect();
        assert_eq!(diff.lines.len(), old_lines.len() + 1);
        for line in diff.lines.iter().filter(|l| l.kind == Side::Both) {
            let (o, n) = (line.old_no.unwrap(), line.new_no.unwrap());
            assert_eq!(o, n);
            assert_ne!(o, line_no);
            assert_eq!(line.text(), old_lines[o - 1]);
            assert_eq!(line.text(), new_lines[n - 1]);
        }
        // Lines are in order: old numbers and new numbers both increase.
        let olds: Vec<usize> = diff.lines.iter().filter_map(|l| l.old_no).collect();
        let news: Vec<usize> = diff.lines.iter().filter_map(|l| l.new_no).collect();
        assert_eq!(olds, (1..=old_lines.len()).collect::<Vec<_>>());
        assert_eq!(news, (1..=new_lines.len()).collect::<Vec<_>>());

        let html = diff.to_html();
        assert!(html.contains("<mark>GetObject</mark>"));
        assert!(html.contains("<mark>PutObject</mark>"));
        assert_eq!(html.matches("<tr class=\"del\">").count(), 1);
        assert_eq!(html.matches("<tr class=\"add\">").count(), 1);
        assert!(html.contains(&format!(
            "<tr class=\"del\"><td class=\"ln\">{line_no}</td><td class=\"ln\"></td><td class=\"sign\">-</td>"
        )));
        assert!(html.contains(&format!(
            "<tr class=\"add\"><td class=\"ln\"></td><td class=\"ln\">{line_no}</td><td class=\"sign\">+</td>"
        )));
        // Far-away unchanged lines are collapsed.
        assert!(html.contains("<tr class=\"skip\">"));
        assert!(html.contains("unchanged lines"));
        let full = diff.to_html_with_context(None);
        assert!(!full.contains("class=\"skip\""));
        assert_eq!(full.matches("<tr ").count(), diff.lines.len());
    }

    #[test]
    fn added_statement_line_numbers() {
        let old = json!({"Statement": [{"Sid": "A"}]});
        let new = json!({"Statement": [{"Sid": "A"}, {"Sid": "B"}]});
        let diff = diff_json(Some(&old), Some(&new));
        // Minimal edit: the old closing `}` of statement A lines up with the
        // new closing `}` of statement B; `},`, `{`, `"Sid": "B"` are added.
        assert_eq!((diff.added, diff.removed), (3, 0));
        let last = diff.lines.last().unwrap();
        assert_eq!(last.kind, Side::Both);
        assert_eq!(last.text(), "}");
        assert_eq!((last.old_no, last.new_no), (Some(7), Some(10)));
    }

    #[test]
    fn key_order_is_not_a_change() {
        let a: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:b":"1","aws:a":"2"}}}]}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"Statement":[{"Condition":{"StringEquals":{"aws:a":"2","aws:b":"1"}},"Resource":"*","Action":"s3:*","Effect":"Allow"}],"Version":"2012-10-17"}"#,
        )
        .unwrap();
        let diff = diff_json(Some(&a), Some(&b));
        assert!(diff.is_empty(), "{diff:?}");
    }

    #[test]
    fn new_document_is_all_added() {
        let doc = policy("s3:GetObject");
        let n = pretty_sorted(&doc).lines().count();
        let diff = diff_json(None, Some(&doc));
        assert_eq!((diff.added, diff.removed), (n, 0));
        assert_eq!(diff.lines.len(), n);
        for (i, line) in diff.lines.iter().enumerate() {
            assert_eq!(line.kind, Side::New);
            assert_eq!((line.old_no, line.new_no), (None, Some(i + 1)));
            assert!(line.segments.iter().all(|s| !s.emphasized));
        }
        assert_eq!(diff.lines[0].text(), "{");
        assert_eq!(diff.lines[n - 1].text(), "}");
        let html = diff.to_html();
        assert_eq!(html.matches("<tr class=\"add\">").count(), n);
        assert!(!html.contains("<mark>"));
    }

    #[test]
    fn removed_document_is_all_removed() {
        let doc = policy("s3:GetObject");
        let n = pretty_sorted(&doc).lines().count();
        let diff = diff_json(Some(&doc), None);
        assert_eq!((diff.added, diff.removed), (0, n));
        for (i, line) in diff.lines.iter().enumerate() {
            assert_eq!(line.kind, Side::Old);
            assert_eq!((line.old_no, line.new_no), (Some(i + 1), None));
        }
        assert_eq!(diff.to_html().matches("<tr class=\"del\">").count(), n);
    }

    #[test]
    fn nothing_to_nothing_is_empty() {
        let diff = diff_json(None, None);
        assert!(diff.is_empty());
        assert!(diff.lines.is_empty());
        assert_eq!(
            diff.to_html(),
            "<table class=\"diff\"><tbody>\n</tbody></table>\n"
        );
    }

    #[test]
    fn html_escapes_document_text() {
        let old = json!({"Sid": "ok", "Note": "plain"});
        let new =
            json!({"Sid": "<script>alert(1)</script>", "Note": "a \"quoted\" & 'single' <b>"});
        let diff = diff_json(Some(&old), Some(&new));
        let html = diff.to_html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("&lt;/script&gt;"), "{html}");
        // JSON's own quotes and the escaped quotes inside the string.
        assert!(html.contains("&quot;Sid&quot;"), "{html}");
        assert!(html.contains(r#"\&quot;quoted\&quot;"#), "{html}");
        assert!(html.contains("&amp; &#39;single&#39; &lt;b&gt;"), "{html}");
        // The only tags are the table's own.
        let tags: std::collections::BTreeSet<&str> = html
            .split('<')
            .skip(1)
            .map(|s| s.split([' ', '>']).next().unwrap_or(""))
            .collect();
        let allowed = [
            "table", "/table", "tbody", "/tbody", "tr", "/tr", "td", "/td", "mark", "/mark",
        ];
        assert!(tags.iter().all(|t| allowed.contains(t)), "{tags:?}");
        // No inline styles or scripts.
        assert!(!html.contains("style="));
        assert!(!html.contains(" on"));
    }

    #[test]
    fn html_escapes_plain_text() {
        let diff = diff_text("a\"b", "<x y=\"1\">");
        let html = diff.to_html();
        assert!(html.contains("a&quot;b"), "{html}");
        assert!(html.contains("&lt;x y=&quot;1&quot;&gt;"), "{html}");
        assert!(!html.contains("<x"));
    }

    #[test]
    fn diff_text_lines() {
        let diff = diff_text("team=payments\nowner=alice\n", "team=payments\nowner=bob");
        assert_eq!((diff.added, diff.removed), (1, 1));
        let kinds: Vec<Side> = diff.lines.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, [Side::Both, Side::Old, Side::New]);
        assert_eq!(diff.lines[0].text(), "team=payments");
        assert_eq!(
            (diff.lines[0].old_no, diff.lines[0].new_no),
            (Some(1), Some(1))
        );
        assert_eq!(
            (diff.lines[1].old_no, diff.lines[1].new_no),
            (Some(2), None)
        );
        assert_eq!(
            (diff.lines[2].old_no, diff.lines[2].new_no),
            (None, Some(2))
        );
        assert_eq!(emphasized(&diff.lines[1]), ["alice"]);
        assert_eq!(emphasized(&diff.lines[2]), ["bob"]);
    }

    #[test]
    fn diff_text_arn_and_line_endings() {
        let diff = diff_text(
            "arn:aws:iam::123456789012:role/app-read",
            "arn:aws:iam::123456789012:role/app-write",
        );
        assert_eq!((diff.added, diff.removed), (1, 1));
        assert_eq!(diff.lines.len(), 2);
        assert!(emphasized(&diff.lines[0]).concat().contains("read"));
        assert!(emphasized(&diff.lines[1]).concat().contains("write"));
        assert!(!emphasized(&diff.lines[1]).concat().contains("arn"));

        // Only line endings / a final newline differ: no change.
        assert!(diff_text("a\r\nb\r\n", "a\nb").is_empty());
        assert!(diff_text("", "").is_empty());
        let added = diff_text("", "x");
        assert_eq!((added.added, added.removed), (1, 0));
        assert_eq!(added.lines[0].text(), "x");
    }

    #[test]
    fn large_documents_diff_and_collapse() {
        // ~10k+ characters of policy with one change in the middle; this is
        // about exercising the path on a realistic size, not timing it.
        let statements = |changed: usize| -> Value {
            Value::Array(
                (0..120)
                    .map(|i| {
                        let action = if i == changed {
                            "s3:PutObject"
                        } else {
                            "s3:GetObject"
                        };
                        json!({
                            "Sid": format!("S{i}"),
                            "Effect": "Allow",
                            "Action": [action],
                            "Resource": format!("arn:aws:s3:::bucket-{i}/*"),
                        })
                    })
                    .collect(),
            )
        };
        let old = json!({"Version": "2012-10-17", "Statement": statements(usize::MAX)});
        let new = json!({"Version": "2012-10-17", "Statement": statements(60)});
        assert!(pretty_sorted(&old).len() > 10_000);
        let diff = diff_json(Some(&old), Some(&new));
        assert_eq!((diff.added, diff.removed), (1, 1));
        let html = diff.to_html();
        // 2 changed rows, 3 context rows on each side, 2 skip rows.
        assert_eq!(html.matches("<tr ").count(), 2 + 6 + 2);

        // A completely different large document still diffs (no emphasis
        // when lines are unrelated) and keeps every line.
        let other = json!({"Statement": (0..400).map(|i| json!({"Sid": format!("X{i}")})).collect::<Vec<_>>()});
        let diff = diff_json(Some(&old), Some(&other));
        assert_eq!(
            diff.lines.iter().filter(|l| l.old_no.is_some()).count(),
            pretty_sorted(&old).lines().count()
        );
        assert_eq!(
            diff.lines.iter().filter(|l| l.new_no.is_some()).count(),
            pretty_sorted(&other).lines().count()
        );
    }

    #[test]
    fn single_hidden_line_is_shown_instead_of_collapsed() {
        // Changes 8 lines apart with context 3: the one line between the two
        // context windows is shown rather than replaced by a skip row.
        let old: String = (0..20).map(|i| format!("l{i}\n")).collect();
        let new = old.replace("l2\n", "m2\n").replace("l10\n", "m10\n");
        let diff = diff_text(&old, &new);
        let html = diff.to_html();
        assert!(html.contains(">l6<"), "{html}");
        assert_eq!(html.matches("class=\"skip\"").count(), 1); // only the tail
    }
}
