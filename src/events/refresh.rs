//! The one place the event consumer re-reads IAM: a role alone, or a whole account (for users
//! and customer-managed policies, which the sync has no single-resource read for). Everything
//! else calls these two, so a change to how the sync refreshes is a change here only.

use crate::app::App;
use crate::error::AppError;

/// Re-read one role and write it alone (store, view, index). `Ok(false)` when it is gone.
pub async fn role(app: &App, account_id: &str, name: &str) -> Result<bool, AppError> {
    Ok(crate::resources::sync::refresh_role(&app.resource_deps(), account_id, name).await?)
}

/// Re-read one whole account: only what changed is written, and this replica follows.
pub async fn account(app: &App, account_id: &str) -> Result<(), AppError> {
    use crate::resources::sync;
    let name = sync::configured_accounts(&app.config)
        .into_iter()
        .find(|(id, _)| id == account_id)
        .map(|(_, name)| name)
        .ok_or_else(|| AppError::NotFound(format!("account {account_id} is not configured")))?;
    let previous = app.store.list_account_status().await.unwrap_or_default();
    let deps = app.resource_deps();
    let status = sync::sync_account(
        &deps,
        account_id,
        &name,
        previous.iter().find(|p| p.account_id == account_id),
    )
    .await?;
    if let Some(error) = status.last_error {
        return Err(AppError::Upstream(error));
    }
    sync::catch_up(&deps, false).await?;
    Ok(())
}
