use std::sync::Arc;
use std::time::Duration;

use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::clock::SystemClock;
use jobhook::config::{Env, ReconcilerConfig};
use jobhook::reconcile::Reconciler;
use jobhook::sources_cache::SourcesCache;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use reconciler::ScheduledRun;

/// Each provider request, connection included, gives up after this.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = jobhook::telemetry::init("reconciler")?;
    let config = ReconcilerConfig::from_env(&Env::process())?;
    let aws = aws_config::load_from_env().await;

    let loader = jobhook::adapters::sources_loader(&config.sources.location, &aws);
    let sources = SourcesCache::new(loader, config.sources.ttl);
    sources.get().await?;

    let clock = Arc::new(SystemClock);
    let store = Arc::new(DynamoJobStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &config.table_name,
        config.event_ttl,
        clock.clone(),
    ));
    let run_state = ScheduledRun {
        sources,
        reconciler: Reconciler {
            store: store.clone(),
            index: store,
            poller: Arc::new(HttpJobPoller::new(POLL_TIMEOUT)),
            clock,
            settings: config.settings,
        },
    };
    let run_state = &run_state;
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let summary = run_state.handle().await;
        jobhook::telemetry::flush(metrics);
        summary.map_err(Error::from)
    }))
    .await
}
