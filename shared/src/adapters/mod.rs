//! Adapters: the ports implemented on AWS services, files and HTTP.

pub mod dynamodb;
pub mod eventbridge;
pub mod file;
pub mod key_set_http;
pub mod memory;
pub mod provider_http;
pub mod s3;
pub mod secrets_manager;
pub mod sqs;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::{ErrorKind as RetryKind, ProvideErrorKind};

use crate::ports::{ErrorKind, PortError};

/// Codes retryable by AWS's documentation that the SDK's own lists
/// (`aws_runtime::retries::classifiers`) leave out, because its retry layer
/// must not retry them blindly; jobhook's callers retry them on purpose.
const RETRYABLE_BEYOND_SDK: &[&str] = &[
    // DynamoDB: a write met an item inside an ongoing transaction. Nothing
    // was written ("Transaction conflict handling", DynamoDB developer guide).
    "TransactionConflictException",
];

/// What an error code says is wrong with the setup itself: every request
/// fails until someone fixes it. The functions treat these as systemic; the
/// CLI turns them into what to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupFault {
    /// The credentials' permissions (or a key policy) refuse the call.
    Denied,
    /// The queue URL names no queue.
    NoQueue,
    /// The table (or another resource) is not in this account and region.
    NoResource,
    /// The credentials are unknown or expired.
    Credentials,
}

pub fn setup_fault(code: &str) -> Option<SetupFault> {
    match code {
        c if c.contains("AccessDenied") => Some(SetupFault::Denied),
        c if c.contains("NonExistentQueue") || c == "QueueDoesNotExist" => Some(SetupFault::NoQueue),
        "ResourceNotFoundException" | "NoSuchBucket" => Some(SetupFault::NoResource),
        "ExpiredToken" | "ExpiredTokenException" | "UnrecognizedClientException" | "InvalidClientTokenId" => {
            Some(SetupFault::Credentials)
        }
        _ => None,
    }
}

/// How a service error should be treated, from the SDK's own metadata first:
/// the modeled retryable kind, then the SDK's throttling and transient code
/// lists, then the HTTP status, then [`RETRYABLE_BEYOND_SDK`].
pub fn classify_service_error(status: u16, code: Option<&str>, modeled: Option<RetryKind>) -> ErrorKind {
    let code = code.unwrap_or_default();
    // Any modeled kind means the model marks the error `@retryable` (DynamoDB's
    // `ReplicatedWriteConflictException` is, as a client error).
    let sdk_retryable = modeled.is_some() || THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code);
    if sdk_retryable || status >= 500 || status == 429 || RETRYABLE_BEYOND_SDK.contains(&code) {
        ErrorKind::Transient
    } else if setup_fault(code).is_some() {
        ErrorKind::Systemic
    } else {
        ErrorKind::Permanent
    }
}

/// Classifies an SDK error: network faults, timeouts, throttling and 5xx are
/// transient; a missing resource or denied access is systemic; anything else
/// the service rejected is permanent.
pub fn sdk_port_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::ServiceError(ctx) => classify_service_error(
            ctx.raw().status().as_u16(),
            ProvideErrorMetadata::code(ctx.err()),
            ctx.err().retryable_error_kind(),
        ),
        SdkError::ConstructionFailure(_) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    };
    let code = match &err {
        SdkError::ServiceError(ctx) => ProvideErrorMetadata::code(ctx.err()).map(str::to_owned),
        _ => None,
    };
    let message = match &err {
        SdkError::ServiceError(ctx) => format!(
            "{}: {}",
            code.as_deref().unwrap_or("unknown error"),
            ctx.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    PortError {
        operation,
        message,
        kind,
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_codes_are_classified_by_whether_retrying_helps() {
        let kind = |status, code| classify_service_error(status, Some(code), None);
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "TransactionInProgressException",
            "TransactionConflictException",
        ] {
            assert_eq!(kind(400, code), ErrorKind::Transient, "{code}");
        }
        assert_eq!(kind(500, "InternalServerError"), ErrorKind::Transient);
        assert_eq!(kind(503, "ServiceUnavailable"), ErrorKind::Transient);
        for code in [
            "ResourceNotFoundException",
            "AccessDeniedException",
            "AccessDenied",
            "KMS.AccessDeniedException",
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
            "ExpiredToken",
            "ExpiredTokenException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
        ] {
            assert_eq!(kind(400, code), ErrorKind::Systemic, "{code}");
        }
        for code in ["ValidationException", "InvalidMessageContents", "InvalidParameterValue"] {
            assert_eq!(kind(400, code), ErrorKind::Permanent, "{code}");
        }
        for modeled in [RetryKind::ThrottlingError, RetryKind::ClientError] {
            assert_eq!(
                classify_service_error(400, Some("ReplicatedWriteConflictException"), Some(modeled)),
                ErrorKind::Transient,
                "the SDK's modeled retryable kind is honoured"
            );
        }
    }
}
