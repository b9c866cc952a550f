use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use jobhook::adapters::s3::S3Upload;
use jobhook::clock::SystemClock;
use jobhook::config::{Env, KeeperConfig};
use keeper::Keeper;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("keeper", start().await)
}

async fn start() -> Result<(), Error> {
    let started = jobhook::bootstrap::start("keeper")?;
    let config = KeeperConfig::from_env(&Env::process())?;
    // The keeper neither applies events nor schedules polls: the store's
    // timeline TTL and poll delay are unused, and set to their defaults.
    let store = Arc::new(started.job_store(
        &config.table_name,
        std::time::Duration::from_secs(30 * 86_400),
        jobhook::domain::schedule::DEFAULT_STALE_AFTER,
        Arc::new(SystemClock),
    ));
    let keeper = Keeper {
        sources: started
            .loaded_sources(&config.sources, config.api_secret.as_deref())
            .await?,
        store: store.clone(),
        jobs: store,
        upload: Arc::new(S3Upload::new(jobhook::bootstrap::s3_client(&started.aws))),
        http: keeper::output_client(),
        bucket: config.bucket,
        prefix: config.prefix,
        part_bytes: jobhook::outputs::DEFAULT_PART_BYTES,
        redelivery: config
            .queue_url
            .as_deref()
            .map(|url| Arc::new(started.queue(url)) as Arc<dyn jobhook::ports::Redelivery>),
        backoff: jobhook::retry::Backoff::WRITES,
        copy_attempts: keeper::COPY_ATTEMPTS,
    };
    let (keeper, metrics) = (&keeper, started.metrics);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = jobhook::clock::deadline_from_epoch_ms(event.context.deadline, keeper::TIMEOUT);
        let response = keeper.handle(event.payload, deadline).await;
        jobhook::telemetry::flush(metrics);
        Ok::<_, Error>(response)
    }))
    .await
}
