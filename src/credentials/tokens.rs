//! Personal API tokens, for `iamdesk credentials` (the CLI's `credential_process`),
//! `iamdesk request` and scripts and CI pipelines.
//!
//! A token is `iamdesk_` + 64 hex characters from the OS's random source. Only its SHA-256 is
//! stored; the token is shown once, when made. Tokens expire (1 to 90 days), can be revoked, and
//! carry the scopes chosen when they were made ([`Scope`]): `credentials`, `read`, `requests`.
//! Which route needs which scope is one table, `src/web/scopes.rs`; no scope lets a token decide
//! on a request (approve, reject, break-glass review, auto-approve): a person decides
//! (`src/requests/lifecycle/mod.rs::token_may`). A token acts with its owner's groups of their
//! last interactive sign-in and rests once they stop signing in (see [`authenticate`]).

use chrono::{Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::error::AppError;
pub use crate::store::TokenScope as Scope;
use crate::store::{ApiToken, AuditEvent, StoreError};

pub const PREFIX: &str = "iamdesk_";
pub const MAX_DAYS: i64 = 90;
pub const DEFAULT_DAYS: i64 = 30;
/// Active tokens one user may hold.
pub const MAX_ACTIVE: usize = 20;

/// Hex SHA-256 of a token: what the Store keeps.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Shape check before any lookup: `iamdesk_` + 64 lowercase hex.
pub fn looks_like(token: &str) -> bool {
    token.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 64
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn generate() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::Internal(format!("no randomness for a token: {e}")))?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

/// The scopes named in a form or an API body: at least one, each known; duplicates dropped.
pub fn parse_scopes<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, AppError> {
    let mut scopes = vec![];
    for name in names {
        let name = name.trim();
        match Scope::parse(name) {
            Some(s) if !scopes.contains(&s) => scopes.push(s),
            Some(_) => {}
            None => {
                return Err(AppError::Invalid(vec![(
                    "scopes".into(),
                    format!("'{name}' is not a scope; choose from {}", scope_names()),
                )]));
            }
        }
    }
    if scopes.is_empty() {
        return Err(AppError::Invalid(vec![(
            "scopes".into(),
            format!(
                "choose at least one scope ({}): credentials for iamdesk credentials, read and \
                 requests for scripts and pipelines",
                scope_names()
            ),
        )]));
    }
    scopes.sort();
    Ok(scopes)
}

fn scope_names() -> String {
    Scope::ALL.map(Scope::as_str).join(", ")
}

/// Make a token for `user` with `scopes` (the `credentials` scope only for someone entitled to
/// at least one role). Returns the token, to be shown once, and what is stored.
pub async fn create(
    app: &App,
    user: &str,
    groups: &[String],
    name: &str,
    days: Option<i64>,
    scopes: &[Scope],
) -> Result<(String, ApiToken), AppError> {
    let name = name.trim();
    let mut problems = vec![];
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        problems.push((
            "name".to_string(),
            "give the token a name of 1 to 64 characters (e.g. 'work laptop')".to_string(),
        ));
    }
    let days = days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        problems.push((
            "days".to_string(),
            format!("a token lives 1 to {MAX_DAYS} days, not {days}"),
        ));
    }
    if scopes.is_empty() {
        problems.push((
            "scopes".to_string(),
            format!("choose at least one scope ({})", scope_names()),
        ));
    }
    if !problems.is_empty() {
        return Err(AppError::Invalid(problems));
    }
    if scopes.contains(&Scope::Credentials) && super::entitled_roles(app, user, groups).is_empty() {
        return Err(AppError::Forbidden(
            "The credentials scope is for getting role credentials, and you are not entitled to \
             any role yet; ask a role's owners to add you to its consoleme-authorized tag, or \
             make a token with the read or requests scope."
                .into(),
        ));
    }
    let now = Utc::now();
    let active = app
        .store
        .list_api_tokens(user)
        .await?
        .iter()
        .filter(|t| t.is_active(now))
        .count();
    if active >= MAX_ACTIVE {
        return Err(AppError::Conflict(format!(
            "You already have {active} active tokens (the most allowed); revoke one first."
        )));
    }
    let token = generate()?;
    let digest = hash(&token);
    let stored = ApiToken {
        id: digest[..12].to_string(),
        hash: digest,
        user: user.to_string(),
        groups: groups.to_vec(),
        name: name.to_string(),
        created_at: now,
        expires_at: now + Duration::days(days),
        revoked_at: None,
        scopes: scopes.to_vec(),
    };
    let event = AuditEvent::new(
        user,
        "token.created",
        None,
        json!({"token_id": stored.id, "name": stored.name, "expires_at": stored.expires_at,
               "scopes": stored.scopes}),
    );
    app.store.create_api_token(&stored, &event).await?;
    Ok((token, stored))
}

/// Revoke one of `user`'s tokens by its public id.
pub async fn revoke(app: &App, user: &str, id: &str) -> Result<ApiToken, AppError> {
    let mut token = app
        .store
        .list_api_tokens(user)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| AppError::NotFound(format!("you have no API token with id '{id}'")))?;
    if token.revoked_at.is_some() {
        return Err(AppError::Conflict("This token is already revoked.".into()));
    }
    token.revoked_at = Some(Utc::now());
    let event = AuditEvent::new(user, "token.revoked", None, json!({"token_id": token.id}));
    app.store
        .update_api_token(&token, &event)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => AppError::NotFound("the token is gone".into()),
            other => other.into(),
        })?;
    Ok(token)
}

/// The active token behind `presented`, with its owner's groups as of their last interactive
/// sign-in (not those of the day it was made), or why not (for a 401). A token whose owner has
/// not signed in to the portal for `auth.api_token_max_idle_days` is refused: whoever left the
/// company or lost their access stops being able to use old tokens.
pub async fn authenticate(app: &App, presented: &str) -> Result<ApiToken, AppError> {
    let refuse = |why: &str| {
        AppError::Unauthorized(format!(
            "The API token is {why}; make a new one on your profile page (/profile)."
        ))
    };
    if !looks_like(presented) {
        return Err(refuse("malformed"));
    }
    let token = app
        .store
        .get_api_token(&hash(presented))
        .await?
        .ok_or_else(|| refuse("unknown"))?;
    if token.revoked_at.is_some() {
        return Err(refuse("revoked"));
    }
    let now = Utc::now();
    if now >= token.expires_at {
        return Err(refuse("expired"));
    }
    let max_idle = i64::from(app.config.auth.api_token_max_idle_days);
    let sign_in = app.store.get_sign_in(&token.user).await?;
    let Some(sign_in) = sign_in.filter(|s| now - s.at <= Duration::days(max_idle)) else {
        return Err(AppError::Unauthorized(format!(
            "The API token is resting: its owner has not signed in to iamdesk in the last \
             {max_idle} days (auth.api_token_max_idle_days). Sign in at {} once and it works \
             again, with your groups of that day.",
            app.config.url.trim_end_matches('/')
        )));
    };
    Ok(ApiToken {
        groups: sign_in.groups,
        ..token
    })
}

/// When `user`'s tokens stop working unless they sign in again, and their last sign-in.
pub async fn working_until(
    app: &App,
    user: &str,
) -> Result<Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)>, AppError> {
    let max_idle = Duration::days(i64::from(app.config.auth.api_token_max_idle_days));
    Ok(app
        .store
        .get_sign_in(user)
        .await?
        .map(|s| (s.at, s.at + max_idle)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_shaped_and_hashed() {
        let a = generate().expect("token");
        let b = generate().expect("token");
        assert_ne!(a, b);
        assert!(looks_like(&a) && looks_like(&b));
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(!looks_like("iamdesk_xyz"));
        assert!(!looks_like(&a.to_uppercase()));
        assert!(!looks_like(&format!("{a}0")));
        assert!(!looks_like(&a.replace(PREFIX, "consoleme_")));
    }

    #[test]
    fn scopes_are_named_known_and_at_least_one() {
        assert_eq!(
            parse_scopes(["requests", " read", "requests"]).ok(),
            Some(vec![Scope::Read, Scope::Requests])
        );
        assert!(matches!(parse_scopes([]), Err(AppError::Invalid(_))));
        let Err(AppError::Invalid(p)) = parse_scopes(["approve"]) else {
            panic!("an unknown scope is refused");
        };
        assert!(p[0].1.contains("credentials, read, requests"), "{p:?}");
    }
}
