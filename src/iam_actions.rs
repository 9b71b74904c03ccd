//! The IAM actions that exist, per service, for "did you mean" on policy documents.
//!
//! The list is `reference/iam-actions.txt`, committed and embedded in the binary; it is made by
//! `scripts/update-iam-actions` from a public copy of the AWS Service Authorization Reference
//! and never fetched at run time. AWS adds actions every week, so the list is always a little
//! behind, which decides how strict iamdesk is:
//!
//! - an **unknown service** prefix (`s4:GetObject`, `ec:DescribeInstances`) is an error: a
//!   policy naming it grants nothing, services are added rarely, and the suggestion is almost
//!   always the fix;
//! - an **unknown action** of a known service (`s3:GetObjekt`) is a warning with suggestions,
//!   never an error: it may be newer than the list, and the requester can submit anyway;
//! - a **wildcard** that matches no known action of its service (`s3:Gett*`) is a warning too.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::resources::model::action_matches;

const LIST: &str = include_str!("../reference/iam-actions.txt");

struct Known {
    /// Lower-case service prefix → its actions, as AWS writes them.
    services: HashMap<&'static str, Vec<&'static str>>,
}

static KNOWN: LazyLock<Known> = LazyLock::new(|| {
    let mut services: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
    for line in LIST.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some((service, action)) = line.split_once(':') {
            services.entry(service).or_default().push(action);
        }
    }
    Known { services }
});

/// What the list says of one `Action` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    /// No service has this prefix; the closest prefixes.
    UnknownService(Vec<String>),
    /// The service exists, the action is not in the list; the closest actions (`s3:GetObject`).
    UnknownAction(Vec<String>),
    /// A wildcard matching none of the service's actions.
    MatchesNothing,
}

fn closest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>, max: usize) -> Vec<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            let mut score = strsim::normalized_damerau_levenshtein(&wrong, &lower);
            // `GetObjec` or `ObjectGet` style slips: shared prefixes count for a little more.
            if lower.starts_with(&wrong) || wrong.starts_with(&lower) {
                score += 0.15;
            }
            // Short names (`s3`, `ec2`) are close at one edit, longer ones at 70 % alike.
            let one_edit = strsim::damerau_levenshtein(&wrong, &lower) <= 1;
            (if one_edit { score.max(0.9) } else { score }, c)
        })
        .filter(|(s, _)| *s >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(max).map(|(_, c)| c).collect()
}

/// Check one `Action` entry against the list. `*`, and anything that is not `service:action`
/// (the grammar reports that), count as known.
pub fn check(entry: &str) -> Verdict {
    let Some((service, action)) = entry.split_once(':') else {
        return Verdict::Known;
    };
    if entry == "*" || service == "*" {
        return Verdict::Known;
    }
    let known = &*KNOWN;
    let service_lower = service.to_ascii_lowercase();
    let Some(actions) = known.services.get(service_lower.as_str()) else {
        let near = closest(service, known.services.keys().copied(), 3);
        return Verdict::UnknownService(near.into_iter().map(str::to_string).collect());
    };
    if action.contains(['*', '?']) {
        return if actions.iter().any(|a| action_matches(action, a)) {
            Verdict::Known
        } else {
            Verdict::MatchesNothing
        };
    }
    if actions.iter().any(|a| a.eq_ignore_ascii_case(action)) {
        return Verdict::Known;
    }
    Verdict::UnknownAction(
        closest(action, actions.iter().copied(), 3)
            .into_iter()
            .map(|a| format!("{service_lower}:{a}"))
            .collect(),
    )
}

/// "did you mean s3:GetObject or s3:GetObjectAcl?", or "" without suggestions.
pub fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("did you mean {one}?"),
        [init @ .., last] => format!("did you mean {} or {last}?", init.join(", ")),
    }
}

/// Every known service prefix, lower case, sorted (right-sizing expands `*` and `s*:...` to them).
pub fn services() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = KNOWN.services.keys().copied().collect();
    all.sort_unstable();
    all
}

/// The known actions of one service (any case), as AWS writes them; empty for an unknown one.
pub fn actions_of(service: &str) -> Vec<&'static str> {
    KNOWN
        .services
        .get(service.to_ascii_lowercase().as_str())
        .cloned()
        .unwrap_or_default()
}

/// How many services and actions the list holds (for the docs and tests).
pub fn counts() -> (usize, usize) {
    let k = &*KNOWN;
    (k.services.len(), k.services.values().map(Vec::len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_there() {
        let (services, actions) = counts();
        assert!(services > 300 && actions > 15_000, "{services} {actions}");
    }

    #[test]
    fn known_actions_any_case_and_wildcards_pass() {
        for a in [
            "s3:GetObject",
            "S3:getobject",
            "ec2:Describe*",
            "s3:*",
            "*",
            "iam:PassRole",
        ] {
            assert_eq!(check(a), Verdict::Known, "{a}");
        }
    }

    #[test]
    fn typos_get_suggestions() {
        match check("s3:GetObjekt") {
            Verdict::UnknownAction(s) => {
                assert_eq!(s.first().map(String::as_str), Some("s3:GetObject"), "{s:?}")
            }
            other => panic!("{other:?}"),
        }
        match check("s4:GetObject") {
            Verdict::UnknownService(s) => assert!(s.contains(&"s3".to_string()), "{s:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(check("s3:Gett*"), Verdict::MatchesNothing);
        assert_eq!(
            did_you_mean(&["a".into(), "b".into(), "c".into()]),
            "did you mean a, b or c?"
        );
    }
}
