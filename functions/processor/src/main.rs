use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::clock::SystemClock;
use jobhook::config::{Env, ProcessorConfig};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use processor::Processor;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("processor", start().await)
}

async fn start() -> Result<(), Error> {
    let started = jobhook::bootstrap::start("processor")?;
    let config = ProcessorConfig::from_env(&Env::process())?;
    let processor = Processor {
        // The api document too: thin events' state is read from the provider.
        sources: started
            .loaded_sources(&config.sources, config.api_secret.as_deref())
            .await?,
        store: Arc::new(started.job_store(
            &config.table_name,
            config.event_ttl,
            config.stale_after,
            Arc::new(SystemClock),
        )),
        dead_letters: Arc::new(started.queue(&config.dlq_url)),
        poller: Arc::new(HttpJobPoller::new(processor::FETCH_TIMEOUT)),
        concurrency: config.concurrency,
        backoff: jobhook::retry::Backoff::WRITES,
        archiver: started.archiver(&config.archive),
        track_queue_arn: config.track_queue_arn,
    };
    let (processor, metrics) = (&processor, started.metrics);
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
