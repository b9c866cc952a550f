use std::sync::Arc;
use std::time::Duration;

use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::clock::SystemClock;
use jobhook::config::Env;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use reconciler::{ReconcileSettings, Reconciler, ReconcilerConfig, ScheduledRun};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("reconciler", start().await)
}

async fn start() -> Result<(), Error> {
    let started = jobhook::bootstrap::start("reconciler")?;
    let config = ReconcilerConfig::from_env(&Env::process())?;
    let clock = Arc::new(SystemClock);
    let store = Arc::new(started.job_store(&config.table_name, config.event_ttl, config.stale_after, clock.clone()));
    let run_state = ScheduledRun {
        sources: started
            .loaded_sources(&config.sources, config.api_secret.as_deref())
            .await?,
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
    let (run_state, metrics) = (&run_state, started.metrics);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = jobhook::clock::deadline_from_epoch_ms(event.context.deadline, reconciler::TIMEOUT);
        let summary = run_state.handle(deadline).await;
        jobhook::telemetry::flush(metrics);
        summary.map_err(Error::from)
    }))
    .await
}
