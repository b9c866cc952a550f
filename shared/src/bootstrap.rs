//! The composition root: how the functions, the CLI and the dev tools build
//! their clients and adapters. The four `main.rs` read their settings, call
//! [`start`], wire what [`Started`] builds into their handler and run it.

use std::sync::Arc;
use std::time::Duration;

use metrics_cloudwatch_embedded::Collector;

use crate::adapters::dynamodb::DynamoJobStore;
use crate::adapters::eventbridge::EventBridgeBus;
use crate::adapters::sqs::SqsQueue;
use crate::adapters::{file, secrets_manager};
use crate::clock::Clock;
use crate::config::{ConfigError, Env, SourcesLocation, SourcesSettings};
use crate::ports::{PortError, SourcesLoader};
use crate::sources_cache::SourcesCache;

/// Why a function could not start: its message is the process's last line.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What every function starts with, once per container.
pub struct Started {
    /// Flushed after each invocation ([`crate::telemetry::flush`]).
    pub metrics: &'static Collector,
    pub aws: aws_config::SdkConfig,
}

/// Logging, the metrics collector, and the AWS configuration from the
/// variables the Lambda runtime sets ([`function_aws_config`]).
pub fn start(function: &'static str) -> Result<Started, StartError> {
    crate::telemetry::init_logging();
    let metrics = crate::telemetry::init(function)?;
    let aws = function_aws_config(&Env::process())?;
    Ok(Started { metrics, aws })
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("region", &self.aws.region())
            .finish_non_exhaustive()
    }
}

impl Started {
    /// The sources document, merged with the api document when one is named,
    /// behind a cache. Not loaded yet: callers load it during init so that a
    /// document that does not load fails init loudly.
    pub fn sources(&self, settings: &SourcesSettings, api_secret: Option<&str>) -> SourcesCache {
        SourcesCache::new(
            sources_with_api_loader(&settings.location, api_secret, &self.aws),
            settings.ttl,
        )
    }

    /// [`Started::sources`], loaded once now.
    pub async fn loaded_sources(
        &self,
        settings: &SourcesSettings,
        api_secret: Option<&str>,
    ) -> Result<SourcesCache, crate::sources_cache::SourcesCacheError> {
        let sources = self.sources(settings, api_secret);
        sources.get().await?;
        Ok(sources)
    }

    pub fn job_store(
        &self,
        table: &str,
        event_ttl: Duration,
        stale_after: Duration,
        clock: Arc<dyn Clock>,
    ) -> DynamoJobStore {
        job_store(&self.aws, table, event_ttl, stale_after, clock)
    }

    /// A queue to send to: the events queue or the dead-letter queue.
    pub fn queue(&self, url: &str) -> SqsQueue {
        SqsQueue::new(aws_sdk_sqs::Client::new(&self.aws), url)
    }

    pub fn archiver(&self, settings: &crate::config::ArchiveSettings) -> crate::archive::Archiver {
        archiver(&self.aws, settings)
    }

    pub fn bus(&self, name: &str) -> EventBridgeBus {
        EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&self.aws), name)
    }
}

/// The job table: `event_ttl` keeps timeline entries that long, and a job
/// is first due for a poll `stale_after` its last activity.
pub fn job_store(
    aws: &aws_config::SdkConfig,
    table: &str,
    event_ttl: Duration,
    stale_after: Duration,
    clock: Arc<dyn Clock>,
) -> DynamoJobStore {
    DynamoJobStore::new(aws_sdk_dynamodb::Client::new(aws), table, event_ttl, clock).with_stale_after(stale_after)
}

/// Where deliveries and poll answers are kept: inline in the table, and in
/// the bucket when one is named.
pub fn archiver(aws: &aws_config::SdkConfig, settings: &crate::config::ArchiveSettings) -> crate::archive::Archiver {
    let segments = settings.bucket.as_ref().map(|bucket| {
        Arc::new(crate::adapters::s3::S3Segments::new(s3_client(aws), bucket)) as Arc<dyn crate::ports::ArchiveSegments>
    });
    crate::archive::Archiver::new(segments, settings.prefix.clone())
}

/// An archiver that reads records wherever their references point (each
/// names its bucket), for the CLI and the dev tools.
pub fn archive_reader(aws: &aws_config::SdkConfig) -> crate::archive::Archiver {
    archiver(
        aws,
        &crate::config::ArchiveSettings {
            bucket: Some(String::new()),
            prefix: String::new(),
        },
    )
}

/// S3 with path-style addressing when an endpoint is overridden (a local
/// server has no per-bucket host names).
pub fn s3_client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(aws.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

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
}
