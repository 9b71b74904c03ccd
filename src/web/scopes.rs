//! What an API token may call: one table, [`ACCESS`], with an entry for every method of every
//! route in [`super::routes`], keyed by method and route path exactly as listed there.
//! `tests/it/automation.rs::every_route_and_method_has_exactly_one_access_entry` asks the
//! running router which methods each route answers and checks the table against it, so a new
//! route cannot be added without deciding who may call it. A pair missing from the table
//! (impossible while that test passes) is for browsers only.
//!
//! The check runs in the sign-in middleware (`identity.rs`), once the token is verified: a
//! token lacking the scope gets 403 naming it. Scopes open routes; what a route then lets a
//! token do is the domain's business: `PUT /api/v2/requests/{id}` needs `requests`, and
//! `src/requests/lifecycle/mod.rs::token_may` still refuses every decision (approve, reject,
//! reopen, break-glass review) and every act on somebody else's request.

use axum::http::Method;

use crate::credentials::tokens::Scope;
use crate::error::AppError;

/// Who may call one route with one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// People (session cookie, ALB, proxy header, demo) only: every API token gets 403.
    Browser,
    /// People, and API tokens that carry this scope.
    Token(Scope),
    /// Anyone the route itself lets in, with a token of any scope too (who am I, health,
    /// static files).
    Any,
}

use Access::{Any, Browser, Token};
use Scope::{Credentials, Read, Requests};

/// `(method, route path, access)` for every route and method `super::routes` serves (`HEAD` is
/// served and checked as `GET`).
pub const ACCESS: &[(&str, &str, Access)] = &[
    // Pages: people only.
    ("GET", "/", Browser),
    ("GET", "/requests", Browser),
    ("GET", "/policies/request/{id}", Browser),
    ("POST", "/policies/request/{id}/act", Browser),
    ("GET", "/policies", Browser),
    (
        "GET",
        "/policies/edit/{account_id}/iamrole/{role_name}",
        Browser,
    ),
    (
        "POST",
        "/policies/edit/{account_id}/iamrole/{role_name}/refresh",
        Browser,
    ),
    (
        "POST",
        "/policies/edit/{account_id}/iamrole/{role_name}/request",
        Browser,
    ),
    // ConsoleMe's other page URLs: redirects and explanations for people.
    ("GET", "/policies/edit/{account_id}/{kind}/{*rest}", Browser),
    (
        "POST",
        "/policies/edit/{account_id}/{kind}/{*rest}",
        Browser,
    ),
    ("GET", "/create_role", Browser),
    ("GET", "/selfservice", Browser),
    ("POST", "/selfservice", Browser),
    ("GET", "/roles", Browser),
    ("GET", "/roles/credentials", Browser),
    ("POST", "/roles/credentials", Browser),
    ("GET", "/role/{*arn}", Browser),
    ("POST", "/role/{*arn}", Browser),
    ("GET", "/profile", Browser),
    ("POST", "/profile/tokens", Browser),
    ("GET", "/profile/tokens/{id}/revoke", Browser),
    ("POST", "/profile/tokens/{id}/revoke", Browser),
    ("GET", "/admin/audit", Browser),
    ("GET", "/admin/audit.jsonl", Browser),
    ("GET", "/admin/outbox", Browser),
    ("POST", "/admin/outbox/{id}/retry", Browser),
    ("GET", "/admin/accounts", Browser),
    ("GET", "/admin/findings", Browser),
    ("GET", "/logout", Browser),
    ("POST", "/logout", Browser),
    ("POST", "/demo/persona", Browser),
    ("POST", "/preferences/theme", Browser),
    // Right-sizing pages (`src/rightsize/`).
    ("GET", "/rightsize", Browser),
    (
        "POST",
        "/policies/edit/{account_id}/iamrole/{role_name}/rightsize",
        Browser,
    ),
    ("POST", "/rightsize/{id}/rollback", Browser),
    // A token never makes, lists or revokes tokens: a stolen one cannot outlive its expiry,
    // widen its scopes or hide its siblings.
    ("GET", "/api/v2/tokens", Browser),
    ("POST", "/api/v2/tokens", Browser),
    ("DELETE", "/api/v2/tokens/{id}", Browser),
    // Credentials (`iamdesk credentials`).
    ("POST", "/api/v2/credentials", Token(Credentials)),
    ("GET", "/api/v2/console_url", Token(Credentials)),
    ("GET", "/api/v2/eligible_roles", Token(Credentials)),
    // Reading policies, roles, resources and requests.
    ("GET", "/api/v2/requests", Token(Read)),
    ("GET", "/api/v2/requests/{id}", Token(Read)),
    ("GET", "/api/v2/policies", Token(Read)),
    (
        "GET",
        "/api/v2/resources/{account_id}/{service}/{*rest}",
        Token(Read),
    ),
    (
        "GET",
        "/api/v2/typeahead/self_service_resources",
        Token(Read),
    ),
    ("GET", "/api/v2/typeahead/resources", Token(Read)),
    ("GET", "/api/v2/roles/{account_id}/{role_name}", Token(Read)),
    (
        "GET",
        "/api/v2/roles/{account_id}/{role_name}/denies",
        Token(Read),
    ),
    ("GET", "/api/v2/selfservice/roles", Token(Read)),
    ("GET", "/api/v2/selfservice/templates", Token(Read)),
    // Computes a policy document from templates; stores nothing.
    ("POST", "/api/v2/selfservice/preview", Token(Read)),
    // Requests: create (and dry-run), comment, edit, cancel one's own. The lifecycle refuses
    // every decision to a token (`src/requests/lifecycle/mod.rs::token_may`).
    ("POST", "/api/v2/request", Token(Requests)),
    ("PUT", "/api/v2/requests/{id}", Token(Requests)),
    // Right-sizing: reading the report and the ranking; filing a proposal or a rollback is
    // filing a request (reviewed like any other).
    ("GET", "/api/v2/rightsize", Token(Read)),
    (
        "GET",
        "/api/v2/roles/{account_id}/{role_name}/rightsize",
        Token(Read),
    ),
    (
        "POST",
        "/api/v2/roles/{account_id}/{role_name}/rightsize",
        Token(Requests),
    ),
    ("POST", "/api/v2/rightsize/{id}/rollback", Token(Requests)),
    // Anyone.
    ("GET", "/api/v2/user", Any),
    ("GET", "/healthcheck", Any),
    ("GET", "/readyz", Any),
    ("GET", "/api/v2/openapi.json", Any),
    ("GET", "/static/{*path}", Any),
];

/// The access of `method` on the route `path` (as listed in `routes()`, with its placeholders).
pub fn access(method: &Method, path: &str) -> Access {
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ACCESS
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map_or(Browser, |(_, _, a)| *a)
}

/// May a token carrying `scopes` call `method` on the route `path`? 403 saying why not.
pub fn check(scopes: &[Scope], method: &Method, path: &str) -> Result<(), AppError> {
    match access(method, path) {
        Any => Ok(()),
        Token(scope) if scopes.contains(&scope) => Ok(()),
        Token(scope) => Err(AppError::Forbidden(format!(
            "This API token lacks the '{scope}' scope, which {method} {path} needs (it has: {}). \
             Make a token with the {scope} scope on your profile page (/profile).",
            names(scopes)
        ))),
        Browser => Err(AppError::Forbidden(format!(
            "API tokens cannot be used for {method} {path}: it is for people signed in to the \
             portal. Open iamdesk in a browser for it."
        ))),
    }
}

fn names(scopes: &[Scope]) -> String {
    if scopes.is_empty() {
        return "none".into();
    }
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_names_a_listed_route_once() {
        let routes = super::super::routes();
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in ACCESS {
            assert!(
                routes.paths().contains(path),
                "{method} {path} is in the access table but not a route"
            );
            assert!(
                Method::from_bytes(method.as_bytes()).is_ok(),
                "{method} is a method"
            );
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }

    #[test]
    fn a_token_needs_the_scope_and_never_reaches_a_page() {
        let put = Method::PUT;
        let path = "/api/v2/requests/{id}";
        assert!(check(&[Requests], &put, path).is_ok());
        let Err(AppError::Forbidden(m)) = check(&[Credentials, Read], &put, path) else {
            panic!("a token without the requests scope is refused");
        };
        assert!(m.contains("'requests' scope"), "{m}");
        assert!(check(&[Read], &Method::HEAD, "/api/v2/requests").is_ok());
        assert!(check(&Scope::ALL, &Method::POST, "/policies/request/{id}/act").is_err());
        assert!(check(&Scope::ALL, &Method::GET, "/not/a/route").is_err());
        assert!(check(&[], &Method::GET, "/api/v2/user").is_ok());
    }
}
