use std::sync::Arc;

use jobhook::adapters::key_set_http::HttpKeySets;
use jobhook::clock::SystemClock;
use jobhook::config::{Env, ReceiverConfig};
use jobhook::key_sets::KeySetCache;
use lambda_http::{run, service_fn, Error, Request};
use receiver::Receiver;

/// A delivery may wait on a key set fetch: short enough that the provider's
/// own timeout is not reached first.
const KEY_SET_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

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
    let loaded = loaded?;
    if let Err(error) = warmed {
        tracing::warn!(%error, "SQS warm-up failed; deliveries will retry the connection");
    }
    // Key sets too: a failed fetch is retried by the first delivery that needs it.
    let key_sets = KeySetCache::new(Arc::new(HttpKeySets::new(KEY_SET_FETCH_TIMEOUT)));
    for url in loaded.iter().filter_map(|source| source.jwks_url.as_ref()) {
        let _ = key_sets.keys(url).await;
    }

    let receiver = Receiver {
        sources,
        key_sets,
        queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
        max_body_bytes: config.max_body_bytes,
        limits: Default::default(),
    };
    let (receiver, metrics) = (&receiver, started.metrics);
    run(service_fn(move |req: Request| async move {
        let response = receiver.handle(req).await;
        jobhook::telemetry::flush(metrics);
        Ok::<_, Error>(response)
    }))
    .await
}
