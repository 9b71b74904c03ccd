//! The validator's view of this installation: the synced accounts, iamdesk's own roles and the
//! configured quotas. Creating and editing a request both validate through here.

use serde_json::Value;

use super::validate::{Limits, Synced, Validated, validate_request};
use crate::app::App;
use crate::config::Config;
use crate::error::AppError;
use crate::resources::model::Principal;
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
        ..Limits::default()
    }
}

/// Validate a request body: the typed request, or every problem with its field (400).
pub fn validate(app: &App, body: &Value) -> Result<Validated, AppError> {
    validate_request(body, &AppSynced::new(app), &limits(app)).map_err(|problems| {
        AppError::Invalid(problems.into_iter().map(|p| (p.field, p.message)).collect())
    })
}
