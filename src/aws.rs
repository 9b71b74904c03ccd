//! Shared AWS SDK configuration: region from config, `AWS_ENDPOINT_URL` honoured by the SDK,
//! `dynamodb_server` (ConsoleMe's dynamodb-local key) as a DynamoDB-only endpoint override.

use crate::config::Config;

/// The SDK config for the central account: aws-config's default credential chain (env, profile,
/// web identity, ECS, IMDSv2), region from `aws.region` unless the environment names one.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new(config.aws.region.clone()));
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

/// A DynamoDB client; `dynamodb_server` overrides the endpoint (dynamodb-local).
pub async fn dynamodb_client(config: &Config) -> aws_sdk_dynamodb::Client {
    let sdk = sdk_config(config).await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(crate::telemetry::aws::CallMetrics);
    if let Some(endpoint) = &config.dynamodb_server {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// An SESv2 client in `ses.region` (ConsoleMe's default `us-west-2`), central-account credentials.
pub async fn sesv2_client(config: &Config) -> aws_sdk_sesv2::Client {
    let sdk = sdk_config(config).await;
    let conf = aws_sdk_sesv2::config::Builder::from(&sdk)
        .region(aws_config::Region::new(config.ses.region.clone()))
        .interceptor(crate::telemetry::aws::CallMetrics)
        .build();
    aws_sdk_sesv2::Client::from_conf(conf)
}

/// AWS's own words for a failed call: `Code: message` when the service said so, else the whole
/// error chain (connection refused, timeout, ...). Shared by every AWS-backed component.
pub fn error_text<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}
