//! Adapters: the ports implemented on AWS services, files and HTTP.

pub mod dynamodb;
pub mod eventbridge;
pub mod file;
pub mod provider_http;
pub mod secrets_manager;
pub mod sqs;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::{ErrorKind as RetryKind, ProvideErrorKind};

use std::sync::Arc;

use crate::config::{ConfigError, Env, SourcesLocation};
use crate::ports::{ErrorKind, PortError, SourcesLoader};

/// The one HTTPS client every AWS call goes through: hyper on rustls with
/// ring, the crypto provider reqwest uses for the provider APIs, so a binary
/// links one. `TCP_NODELAY` is on (the client's default), so no request waits
/// on Nagle's algorithm.
fn aws_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The AWS configuration loader of the CLI and the dev tools: the SDK's
/// default chains (profiles, SSO, environment, …) with [`aws_http_client`].
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(aws_http_client())
}

/// [`aws_config_loader`], loaded.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_loader().load().await
}

/// The functions' AWS configuration, from the variables the Lambda runtime
/// sets: `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`; and `AWS_ENDPOINT_URL` when set (the local stack).
/// Not [`aws_config`]: the loader's credential and region chains (profile
/// files, SSO, STS, web identity, container, IMDS) never apply inside Lambda,
/// yet it links every one into each bootstrap whether it runs or not. A
/// variable missing fails init with its name.
pub fn function_aws_config<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<aws_config::SdkConfig, ConfigError> {
    use aws_sdk_sqs::config::{Credentials, Region, SharedCredentialsProvider};
    let region = env
        .optional("AWS_REGION")
        .or_else(|| env.optional("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError {
            name: "AWS_REGION",
            problem: "is required (the Lambda runtime sets it)".into(),
        })?;
    let credentials = Credentials::new(
        env.required("AWS_ACCESS_KEY_ID")?,
        env.required("AWS_SECRET_ACCESS_KEY")?,
        env.optional("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(aws_http_client())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .retry_config(aws_config::retry::RetryConfig::standard());
    builder.set_endpoint_url(env.optional("AWS_ENDPOINT_URL"));
    Ok(builder.build())
}

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

/// The sources document with the api document merged in: what the reconciler
/// reads when the provider API settings live in a secret of their own.
#[derive(Debug)]
pub struct MergedSources {
    pub sources: Arc<dyn SourcesLoader>,
    pub api: Arc<dyn SourcesLoader>,
}

#[async_trait::async_trait]
impl SourcesLoader for MergedSources {
    async fn load(&self) -> Result<String, PortError> {
        let (sources, api) = tokio::join!(self.sources.load(), self.api.load());
        crate::domain::sources::merge_api_document(&sources?, &api?)
            .map_err(|e| PortError::permanent("sources:merge", e.to_string()))
    }

    fn location(&self) -> String {
        format!("{} with {}", self.sources.location(), self.api.location())
    }
}

/// The reconciler's loader: the sources document, merged with the api
/// document when one is named.
pub fn sources_with_api_loader(
    location: &SourcesLocation,
    api_secret: Option<&str>,
    aws: &aws_config::SdkConfig,
) -> Arc<dyn SourcesLoader> {
    let sources = sources_loader(location, aws);
    match api_secret {
        None => sources,
        Some(id) => Arc::new(MergedSources {
            sources,
            api: sources_loader(&SourcesLocation::Secret(id.to_owned()), aws),
        }),
    }
}

/// Codes retryable by AWS's documentation that the SDK's own lists
/// (`aws_runtime::retries::classifiers`) leave out, because its retry layer
/// must not retry them blindly; jobhook's callers retry them on purpose.
const RETRYABLE_BEYOND_SDK: &[&str] = &[
    // DynamoDB: a write met an item inside an ongoing transaction. Nothing
    // was written ("Transaction conflict handling", DynamoDB developer guide).
    "TransactionConflictException",
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
    } else if SYSTEMIC_CODES.contains(&code) {
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
    let message = match &err {
        SdkError::ServiceError(ctx) => format!(
            "{}: {}",
            ProvideErrorMetadata::code(ctx.err()).unwrap_or("unknown error"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lambda_env(unset: &'static str) -> Env<impl Fn(&str) -> Option<String>> {
        Env(move |name: &str| {
            let value = match name {
                "AWS_REGION" => "eu-west-1",
                "AWS_ACCESS_KEY_ID" => "ASIAEXAMPLE",
                "AWS_SECRET_ACCESS_KEY" => "secret-key",
                "AWS_SESSION_TOKEN" => "session-token",
                "AWS_ENDPOINT_URL" => "http://127.0.0.1:5000",
                _ => return None,
            };
            (name != unset).then(|| value.to_owned())
        })
    }

    #[tokio::test]
    async fn functions_take_region_credentials_and_endpoint_from_the_lambda_environment() {
        use aws_sdk_sqs::config::ProvideCredentials;
        let config = function_aws_config(&lambda_env("")).expect("config");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        let credentials = config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("credentials");
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.session_token(), Some("session-token"));
        assert!(
            !format!("{credentials:?}").contains("secret-key"),
            "Debug output must not show the secret key"
        );
        let without_endpoint = function_aws_config(&lambda_env("AWS_ENDPOINT_URL")).expect("config");
        assert_eq!(without_endpoint.endpoint_url(), None, "AWS's endpoints by default");
    }

    #[test]
    fn a_function_without_region_or_credentials_names_the_missing_variable() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let error = function_aws_config(&lambda_env(missing)).expect_err(missing);
            assert_eq!(error.name, missing);
        }
        let no_token = function_aws_config(&lambda_env("AWS_SESSION_TOKEN"));
        assert!(no_token.is_ok(), "long-term keys have no session token");
    }

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
        assert_eq!(kind(400, "ResourceNotFoundException"), ErrorKind::Systemic);
        assert_eq!(kind(400, "AccessDeniedException"), ErrorKind::Systemic);
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
