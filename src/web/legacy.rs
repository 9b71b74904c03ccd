//! ConsoleMe's page URLs, so bookmarks and old mails keep working once iamdesk serves ConsoleMe's
//! host name. `/policies/request/{id}`, `/policies/edit/{account}/iamrole/{name}`, `/policies`,
//! `/requests`, `/selfservice` and `/role/{arn}` are iamdesk's own routes already; the other
//! resource pages ConsoleMe linked to (`consoleme/lib/policies.py::get_url_for_resource`) land here.

use axum::response::Redirect;

use super::extract::Path;
use super::identity::CurrentUser;
use crate::error::AppError;

/// `/policies/edit/{account}/{kind}/{rest}`: ConsoleMe's resource pages. Roles (also with a
/// path), users and managed policies go to the matching iamdesk page; resource types iamdesk
/// does not manage get a 404 that says where to go instead.
pub async fn resource_page(
    _user: CurrentUser,
    Path((account, kind, rest)): Path<(String, String, String)>,
) -> Result<Redirect, AppError> {
    let account = crate::config::normalize_account_id(&account).ok_or_else(|| {
        AppError::NotFound(format!(
            "`{account}` is not an AWS account id, so this ConsoleMe link leads nowhere."
        ))
    })?;
    // ConsoleMe put a path or a region before the name; the name is the last segment.
    let name = rest
        .trim_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if name.is_empty() {
        return Err(AppError::NotFound(
            "This ConsoleMe link names no resource.".into(),
        ));
    }
    let search = |kind: &str| {
        Redirect::to(&format!(
            "/policies?account={account}&type={kind}&q={}",
            urlencoding::encode(name)
        ))
    };
    match kind.as_str() {
        "iamrole" => Ok(Redirect::to(&format!(
            "/policies/edit/{account}/iamrole/{}",
            urlencoding::encode(name)
        ))),
        "iamuser" => Ok(search("user")),
        "managed_policy" => Ok(search("managed_policy")),
        // A link src/web/service_resources.rs::parse could not read (the region missing, say).
        "s3" | "sqs" | "sns" => Ok(search(kind.as_str())),
        other => Err(AppError::NotFound(format!(
            "ConsoleMe's `{other}` pages have no iamdesk equivalent; search /policies for \
             `{name}`."
        ))),
    }
}

/// ConsoleMe's role creation page: iamdesk creates roles from the self-service wizard.
pub async fn create_role(_user: CurrentUser) -> Redirect {
    Redirect::to("/selfservice")
}
