use std::sync::Arc;

use jobhook::clock::SystemClock;
use jobhook::config::{Env, ReceiverConfig};
use lambda_http::{run, service_fn, Error, Request};
use receiver::Receiver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("receiver", start().await)
}

async fn start() -> Result<(), Error> {
    let started = jobhook::bootstrap::start("receiver")?;
    let config = ReceiverConfig::from_env(&Env::process())?;
    // The signing document only: the receiver never holds an API token.
    let sources = started.sources(&config.sources, None);
    let queue = started.queue(&config.queue_url);

    // Load the sources and open the SQS connection once per container, during
    // init. A document that does not load fails init loudly.
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
    let (receiver, metrics) = (&receiver, started.metrics);
    run(service_fn(move |req: Request| async move {
        let response = receiver.handle(req).await;
        jobhook::telemetry::flush(metrics);
        Ok::<_, Error>(response)
    }))
    .await
}
