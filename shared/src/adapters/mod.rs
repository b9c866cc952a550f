//! Adapters: the ports implemented on AWS services, files and HTTP.

pub mod dynamodb;
pub mod file;
pub mod provider_http;
pub mod secrets_manager;
pub mod sqs;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use std::sync::Arc;

use crate::config::SourcesLocation;
use crate::ports::{ErrorKind, PortError, SourcesLoader};

/// The loader for where the settings say the sources document lives.
pub fn sources_loader(location: &SourcesLocation, aws: &aws_config::SdkConfig) -> Arc<dyn SourcesLoader> {
    match location {
        SourcesLocation::File(path) => Arc::new(file::FileSources::new(path)),
        SourcesLocation::Secret(id) => Arc::new(secrets_manager::SecretsManagerSources::new(
            aws_sdk_secretsmanager::Client::new(aws),
            id,
        )),
    }
}

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

/// Error codes that mean the deployment itself is wrong.
const SYSTEMIC_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];

/// Classifies an SDK error: network faults, timeouts, throttling and 5xx are
/// transient; a missing resource or denied access is systemic; anything else
/// the service rejected is permanent.
pub fn sdk_port_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code) {
                ErrorKind::Transient
            } else if SYSTEMIC_CODES.contains(&code) {
                ErrorKind::Systemic
            } else {
                ErrorKind::Permanent
            }
        }
        SdkError::ConstructionFailure(_) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
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
        kind,
    }
}
