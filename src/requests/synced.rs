//! The validator's view of this installation: the synced accounts, iamdesk's own roles and the
//! configured quotas. Creating and editing a request both validate through here.

use serde_json::Value;

use super::model::Change;
use super::risk::{self, Risk};
use super::validate::{Limits, Problem, Synced, Validated, validate_request};
use crate::app::App;
use crate::config::Config;
use crate::error::AppError;
use crate::resources::model::{Principal, Resource, ResourceKind};
use crate::resources::service::Resources;

/// The synced accounts and iamdesk's own roles, as the validator sees them.
pub struct AppSynced<'a> {
    pub resources: &'a Resources,
    pub config: &'a Config,
    /// The central account's own role, when the cloud knows it.
    pub central_role: Option<(String, String)>,
}

impl<'a> AppSynced<'a> {
    pub fn new(app: &'a App) -> Self {
        AppSynced {
            resources: &app.resources,
            config: &app.config,
            central_role: app.cloud.central_role(),
        }
    }
}

impl Synced for AppSynced<'_> {
    fn role_named(&self, account: &str, name: &str) -> Option<Principal> {
        self.resources.role(account, name).map(|(_, role)| role)
    }

    fn resource(
        &self,
        account: Option<&str>,
        kind: ResourceKind,
        region: Option<&str>,
        name: &str,
    ) -> Option<Resource> {
        match account {
            Some(a) => self
                .resources
                .resource(a, kind, region, name)
                .map(|(_, r)| r),
            None => self
                .resources
                .configured()
                .iter()
                .find_map(|(a, _)| self.resources.resource(a, kind, region, name))
                .map(|(_, r)| r),
        }
    }

    fn accounts(&self) -> Vec<String> {
        self.resources
            .configured()
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }

    fn protected(&self, account: &str, name: &str) -> Option<String> {
        let spoke = self.config.spoke_role_name(account);
        if name.eq_ignore_ascii_case(spoke) && self.config.account_ids_to_name.contains_key(account)
            || name.eq_ignore_ascii_case(&self.config.policies.role_name)
        {
            return Some(format!(
                "`{spoke}` is the role iamdesk assumes in account {account} \
                 (policies.role_name) to read and change IAM"
            ));
        }
        match &self.central_role {
            Some((a, n)) if a == account && n.eq_ignore_ascii_case(name) => Some(format!(
                "`{n}` is the role iamdesk itself runs as in the central account {account}"
            )),
            _ => None,
        }
    }
}

/// The installation's quotas.
pub fn limits(app: &App) -> Limits {
    Limits {
        max_managed_policies: app.config.policies.max_managed_policies.clamp(1, 1000),
        max_expiration_days: app.config.policies.max_expiration_days.clamp(1, 3650),
        ..Limits::default()
    }
}

fn invalid(problems: Vec<Problem>) -> AppError {
    AppError::Invalid(problems.into_iter().map(|p| (p.field, p.message)).collect())
}

/// Validate a request body: the typed request, or every problem with its field (400). On top
/// of the validator: `policies.require_expiration`.
pub fn validate(app: &App, body: &Value) -> Result<Validated, AppError> {
    let valid = validate_request(body, &AppSynced::new(app), &limits(app)).map_err(invalid)?;
    let missing = missing_expirations(app, &valid.changes);
    if missing.is_empty() {
        Ok(valid)
    } else {
        Err(invalid(missing))
    }
}

/// Run `f` with this installation's risk context.
pub fn with_risk<T>(app: &App, f: impl FnOnce(&risk::Context<'_>) -> T) -> T {
    let docs = |arn: &str| app.resources.managed_policy_document(arn);
    f(&risk::Context::of_config(&app.config, &docs))
}

/// The risk of one change here.
pub fn risk_of(app: &App, change: &Change) -> Risk {
    with_risk(app, |ctx| risk::assess(change, ctx))
}

/// The highest risk of a request's changes here.
pub fn request_risk(app: &App, r: &crate::store::PolicyRequest) -> risk::Level {
    with_risk(app, |ctx| risk::request_level(&r.changes, ctx))
}

/// Grants that `policies.require_expiration` says must expire but do not.
fn missing_expirations(app: &App, changes: &[Change]) -> Vec<Problem> {
    let rule = &app.config.policies.require_expiration;
    if rule.accounts.is_empty() && rule.min_risk.is_none() {
        return vec![];
    }
    let mut out = vec![];
    with_risk(app, |ctx| {
        for (i, c) in changes.iter().enumerate() {
            let expirable = matches!(
                c,
                Change::InlinePolicy(_) | Change::ManagedPolicy(_) | Change::ResourceTag(_)
            );
            if !expirable || !c.grants() || c.expires().is_some() {
                continue;
            }
            let account = c.target().account().as_str();
            let name = app
                .config
                .account_ids_to_name
                .get(account)
                .map(String::as_str)
                .unwrap_or("");
            let by_account = rule.accounts.iter().any(|a| {
                a == account
                    || (!name.is_empty() && crate::resources::model::action_matches(a, name))
            });
            let level = risk::assess(c, ctx).level;
            let by_risk = rule.min_risk.is_some_and(|min| level >= min);
            if by_account || by_risk {
                let why = if by_account {
                    format!("account {account} {name}")
                } else {
                    format!("its risk is {level}")
                };
                out.push(Problem {
                    field: format!("changes[{i}].expiration_date"),
                    message: format!(
                        "this grant must expire ({why}; policies.require_expiration): set \
                         expiration_date, e.g. 8 hours or 3 days from now"
                    ),
                });
            }
        }
    });
    out
}
