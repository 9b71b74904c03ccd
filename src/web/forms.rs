//! Form problems in the words of the form. The validator names each problem by its API field
//! path (`changes[0].policy.policy_document.Statement[0].Effect`); a page shows the label of the
//! field the person filled in ("Policy document", statement 1, Effect), links to that field, and
//! still shows the API path in small print (it is what the JSON API and the docs speak).

/// One problem as a form shows it (`templates/form_errors.html`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormProblem {
    /// The `id` of the field to link to and highlight; empty when no field matches.
    pub target: String,
    pub label: String,
    /// Where inside the field ("statement 1 › Effect"); may be empty.
    pub detail: String,
    pub message: String,
    /// The API's field path, as the validator gave it.
    pub path: String,
}

impl FormProblem {
    pub fn new(target: &str, label: &str, detail: String, message: &str, path: &str) -> Self {
        FormProblem {
            target: target.to_string(),
            label: label.to_string(),
            detail,
            message: message.to_string(),
            path: path.to_string(),
        }
    }
}

/// `.Statement[0].Condition.StringLike` → "statement 1 › Condition › StringLike".
pub fn document_detail(rest: &str) -> String {
    let rest = rest.trim_start_matches('.');
    if rest.is_empty() {
        return String::new();
    }
    rest.split('.')
        .map(|part| {
            let (name, index) = match part.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            match (name, index) {
                ("Statement", Some(i)) => format!("statement {}", i + 1),
                (n, Some(i)) => format!("{n} entry {}", i + 1),
                (n, None) => n.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" › ")
}

/// A validator problem about the role page's one change (`changes[0]...`) in the form's words.
pub fn role_form_problem(path: &str, message: &str) -> FormProblem {
    let field = path
        .strip_prefix("changes[0]")
        .map(|r| r.trim_start_matches('.'));
    let (target, label, detail) = match field {
        None if path == "justification" => ("f-justification", "Justification", String::new()),
        None => ("f-kind", "What to change", String::new()),
        Some(f) => {
            if let Some(rest) = f
                .strip_prefix("policy.policy_document")
                .or_else(|| f.strip_prefix("policy_document"))
            {
                (
                    "f-policy_document",
                    "Policy document",
                    document_detail(rest),
                )
            } else if f.starts_with("policy") && !f.starts_with("policy_name") {
                ("f-policy_document", "Policy document", String::new())
            } else if f.starts_with("policy_name") {
                ("f-policy_name", "Inline policy name", String::new())
            } else if f.starts_with("arn") {
                ("f-arn", "Managed policy or boundary ARN", String::new())
            } else if f.starts_with("key") {
                ("f-tag_key", "Tag key", String::new())
            } else if f.starts_with("value") {
                ("f-tag_value", "Tag value", String::new())
            } else if f.starts_with("expiration") {
                ("f-expires", "Expires", String::new())
            } else if f.starts_with("principal") {
                ("f-kind", "This role", String::new())
            } else {
                ("f-kind", "What to change", String::new())
            }
        }
    };
    FormProblem::new(target, label, detail, message, path)
}

/// A warning string of the validator (`change 1: changes[0].policy...Statement[0]: message`)
/// as its path and message.
pub fn split_warning(w: &str) -> (String, String) {
    let w = match w.split_once(": ") {
        Some((head, rest)) if head.starts_with("change ") => rest,
        _ => w,
    };
    match w.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => (path.to_string(), message.to_string()),
        _ => (String::new(), w.to_string()),
    }
}

/// Whether a validator warning is about an action iamdesk does not know (a likely typo: the
/// form asks before submitting it).
pub fn is_unknown_action_warning(w: &str) -> bool {
    w.contains("is not a known action") || w.contains("matches none of its service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_become_the_forms_labels() {
        let p = role_form_problem(
            "changes[0].policy.policy_document.Statement[0].Effect",
            "must be Allow or Deny",
        );
        assert_eq!(p.target, "f-policy_document");
        assert_eq!(p.label, "Policy document");
        assert_eq!(p.detail, "statement 1 › Effect");
        assert_eq!(
            p.path,
            "changes[0].policy.policy_document.Statement[0].Effect"
        );
        assert_eq!(
            role_form_problem("justification", "x").label,
            "Justification"
        );
        assert_eq!(
            role_form_problem("changes[0].policy_name", "x").target,
            "f-policy_name"
        );
        assert_eq!(role_form_problem("changes[0].key", "x").label, "Tag key");
        assert_eq!(
            document_detail(".Statement[2].Action[1]"),
            "statement 3 › Action entry 2"
        );
        assert_eq!(
            split_warning(
                "change 1: changes[0].policy.policy_document.Statement[0]: `s3:X` is not a known action"
            ),
            (
                "changes[0].policy.policy_document.Statement[0]".to_string(),
                "`s3:X` is not a known action".to_string()
            )
        );
    }
}
