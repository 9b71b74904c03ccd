//! `iamdesk migrate`: DynamoDB tables from `migrations/` (being written; this stub keeps the
//! tree compiling — replace it whole).

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MigrateError(String);

pub async fn run(
    _client: &aws_sdk_dynamodb::Client,
    _table_prefix: &str,
) -> Result<Vec<String>, MigrateError> {
    Err(MigrateError("migrate is not implemented yet".into()))
}
