use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::SystemClock;
use jobhook::config::{Env, ProcessorConfig};
use jobhook::sources_cache::SourcesCache;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use processor::Processor;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("processor", start().await)
}

async fn start() -> Result<(), Error> {
    jobhook::telemetry::init_logging();
    let metrics = jobhook::telemetry::init("processor")?;
    let config = ProcessorConfig::from_env(&Env::process())?;
    let aws = jobhook::adapters::function_aws_config(&Env::process())?;

    // The api document too: thin events' state is read from the provider.
    let loader =
        jobhook::adapters::sources_with_api_loader(&config.sources.location, config.api_secret.as_deref(), &aws);
    let sources = SourcesCache::new(loader, config.sources.ttl);
    sources.get().await?;

    let store = DynamoJobStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &config.table_name,
        config.event_ttl,
        Arc::new(SystemClock),
    )
    .with_stale_after(config.stale_after);
    let processor = Processor {
        sources,
        store: Arc::new(store),
        dead_letters: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &config.dlq_url)),
        poller: Arc::new(HttpJobPoller::new(processor::FETCH_TIMEOUT)),
        concurrency: config.concurrency,
        backoff: jobhook::retry::Backoff::WRITES,
    };
    let processor = &processor;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = jobhook::clock::deadline_from_epoch_ms(event.context.deadline, processor::TIMEOUT);
        tracing::debug!(
            remaining_ms = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_millis() as u64,
            "batch received"
        );
        let response = processor.handle(event.payload, deadline).await;
        jobhook::telemetry::flush(metrics);
        response.map_err(Error::from)
    }))
    .await
}
