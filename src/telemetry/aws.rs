//! Every AWS call, counted where the SDK finishes it: an interceptor that each client of
//! iamdesk (IAM, STS, DynamoDB, SESv2, SQS) carries, so no call site can forget it.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts each operation once, after the SDK's own retries, by service, operation and outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallMetrics;

impl Intercept for CallMetrics {
    fn name(&self) -> &'static str {
        "iamdesk-call-metrics"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "ok",
            Some(Err(e)) if e.is_operation_error() => "service_error",
            Some(Err(e)) if e.is_timeout_error() => "timeout",
            Some(Err(e)) if e.is_connector_error() => "connection_error",
            Some(Err(_)) | None => "error",
        };
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("unknown", "unknown"), |m| (m.service(), m.name()));
        super::metrics::aws_call(service, operation, outcome);
        Ok(())
    }
}
