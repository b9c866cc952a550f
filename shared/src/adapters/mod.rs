//! Adapters: the ports implemented on AWS services, files and HTTP.

pub mod file;
pub mod secrets_manager;
pub mod sqs;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::PortError;

/// Error codes AWS services use for throttling and transient faults.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Classifies an SDK error: network faults, timeouts, throttling and 5xx are
/// retryable; anything else the service rejected is permanent.
pub fn sdk_port_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            status >= 500 || status == 429 || ctx.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    let message = match &err {
        SdkError::ServiceError(ctx) => format!(
            "{}: {}",
            ctx.err().code().unwrap_or("unknown error"),
            ctx.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    PortError {
        operation,
        message,
        retryable,
    }
}
