use std::sync::Arc;
use std::time::Duration;

use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::clock::SystemClock;
use jobhook::config::Env;
use jobhook::sources_cache::SourcesCache;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use reconciler::ScheduledRun;
use reconciler::{ReconcileSettings, Reconciler, ReconcilerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("reconciler", start().await)
}

async fn start() -> Result<(), Error> {
    jobhook::telemetry::init_logging();
    let metrics = jobhook::telemetry::init("reconciler")?;
    let config = ReconcilerConfig::from_env(&Env::process())?;
    let aws = jobhook::adapters::function_aws_config(&Env::process())?;

    let loader =
        jobhook::adapters::sources_with_api_loader(&config.sources.location, config.api_secret.as_deref(), &aws);
    let sources = SourcesCache::new(loader, config.sources.ttl);
    sources.get().await?;

    let clock = Arc::new(SystemClock);
    let store = Arc::new(
        DynamoJobStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            &config.table_name,
            config.event_ttl,
            clock.clone(),
        )
        .with_stale_after(config.stale_after),
    );
    let run_state = ScheduledRun {
        sources,
        reconciler: Reconciler {
            store: store.clone(),
            index: store,
            poller: Arc::new(HttpJobPoller::new(reconciler::POLL_TIMEOUT)),
            clock,
            settings: ReconcileSettings {
                // One poll's timeout and the writes after it.
                reserve: reconciler::POLL_TIMEOUT + Duration::from_secs(2),
                ..config.settings
            },
        },
    };
    let run_state = &run_state;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = jobhook::clock::deadline_from_epoch_ms(event.context.deadline, reconciler::TIMEOUT);
        let summary = run_state.handle(deadline).await;
        jobhook::telemetry::flush(metrics);
        summary.map_err(Error::from)
    }))
    .await
}
