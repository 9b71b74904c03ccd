//! Where IAM lives (GUIDE §1): the real AWS through the SDK, or the in-process sandbox with demo
//! accounts. Both implement [`Cloud`].

pub mod aws;
pub mod sandbox;

use async_trait::async_trait;

use crate::resources::model::{AccountSnapshot, Principal};

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("account {0} is not configured in account_ids_to_name")]
    UnknownAccount(String),
    /// An AWS call failed; `message` carries AWS's own words (code: message).
    #[error("{message}")]
    Aws {
        code: Option<String>,
        message: String,
    },
}

impl CloudError {
    /// Throttling and transient errors worth retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudError::Aws { code: Some(c), .. } => matches!(
                c.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
                    | "InternalFailure"
                    | "RequestExpired"
            ),
            _ => false,
        }
    }
}

#[async_trait]
pub trait Cloud: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// For tests and metrics that need the concrete cloud (e.g. AssumeRole counts).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Every role, user and customer-managed policy of one account, policies decoded.
    async fn fetch_account(
        &self,
        account_id: &str,
        account_name: &str,
    ) -> Result<AccountSnapshot, CloudError>;

    /// One role, fresh (for "refresh this role" and after applying a change). `None` if gone.
    async fn fetch_role(
        &self,
        account_id: &str,
        role_name: &str,
    ) -> Result<Option<Principal>, CloudError>;
}
