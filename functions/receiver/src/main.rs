use std::sync::Arc;

use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::SystemClock;
use jobhook::config::{Env, ReceiverConfig};
use jobhook::sources_cache::SourcesCache;
use lambda_http::{run, service_fn, Error, Request};
use receiver::Receiver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("receiver", start().await)
}

async fn start() -> Result<(), Error> {
    jobhook::telemetry::init_logging();
    let metrics = jobhook::telemetry::init("receiver")?;
    let config = ReceiverConfig::from_env(&Env::process())?;
    let aws = jobhook::adapters::function_aws_config(&Env::process())?;

    let loader = jobhook::adapters::sources_loader(&config.sources.location, &aws);
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &config.queue_url);

    // Load the sources and open the SQS connection once per container, during
    // init. A document that does not load fails init loudly.
    let sources = SourcesCache::new(loader, config.sources.ttl);
    let (loaded, warmed) = tokio::join!(sources.get(), queue.warm_up());
    loaded?;
    if let Err(error) = warmed {
        tracing::warn!(%error, "SQS warm-up failed; deliveries will retry the connection");
    }

    let receiver = Receiver {
        sources,
        queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
        max_body_bytes: config.max_body_bytes,
    };
    let receiver = &receiver;
    run(service_fn(move |req: Request| async move {
        let response = receiver.handle(req).await;
        jobhook::telemetry::flush(metrics);
        Ok::<_, Error>(response)
    }))
    .await
}
