//! The sandbox cloud: demo accounts held in memory, for the first-run experience and the UI demo.
//! Never used by tests of the AWS path.

use async_trait::async_trait;

use super::{Cloud, CloudError, IamOp};
use crate::resources::demo;
use crate::resources::model::{AccountSnapshot, Principal, ResourceKind};

#[derive(Default)]
pub struct SandboxCloud;

#[async_trait]
impl Cloud for SandboxCloud {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn fetch_account(
        &self,
        account_id: &str,
        account_name: &str,
    ) -> Result<AccountSnapshot, CloudError> {
        if !demo::DEMO_ACCOUNTS.iter().any(|(id, _)| *id == account_id) {
            return Err(CloudError::UnknownAccount(account_id.to_string()));
        }
        let mut snap = demo::account(account_id, account_name);
        snap.synced_at = Some(chrono::Utc::now());
        Ok(snap)
    }

    async fn fetch_role(
        &self,
        account_id: &str,
        role_name: &str,
    ) -> Result<Option<Principal>, CloudError> {
        let Some((_, name)) = demo::DEMO_ACCOUNTS.iter().find(|(id, _)| *id == account_id) else {
            return Err(CloudError::UnknownAccount(account_id.to_string()));
        };
        Ok(demo::account(account_id, name)
            .principals
            .into_iter()
            .find(|p| p.kind == ResourceKind::Role && p.name == role_name))
    }

    async fn assume_role(
        &self,
        role_arn: &str,
        _session_name: &str,
        _duration_seconds: i32,
    ) -> Result<super::RoleCredentials, CloudError> {
        Err(CloudError::Unsupported(format!(
            "the sandbox cloud (demo accounts) cannot issue real AWS credentials for {role_arn}; \
             configure aws.mode: aws and account_ids_to_name"
        )))
    }

    /// The sandbox's demo data is regenerated on every read, so writes are refused with a
    /// message that says so (changes are applied for real only against AWS).
    async fn apply(&self, account_id: &str, op: &IamOp) -> Result<(), CloudError> {
        Err(CloudError::Unsupported(format!(
            "the sandbox cloud cannot apply {} to {} in {account_id} yet",
            op.action(),
            op.role()
        )))
    }
}
