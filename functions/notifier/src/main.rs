use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use jobhook::config::{Env, NotifierConfig};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use notifier::Notifier;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    jobhook::telemetry::exit_code("notifier", start().await)
}

async fn start() -> Result<(), Error> {
    let started = jobhook::bootstrap::start("notifier")?;
    let config = NotifierConfig::from_env(&Env::process())?;
    let notifier = Notifier {
        bus: Arc::new(started.bus(&config.event_bus)),
        outputs: config
            .outputs_queue_url
            .as_deref()
            .map(|url| Arc::new(started.queue(url)) as Arc<dyn jobhook::ports::OutputRequests>),
        backoff: jobhook::retry::Backoff::WRITES,
    };
    let (notifier, metrics) = (&notifier, started.metrics);
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        let deadline = jobhook::clock::deadline_from_epoch_ms(event.context.deadline, notifier::TIMEOUT);
        let response = notifier.handle(event.payload, deadline).await;
        jobhook::telemetry::flush(metrics);
        Ok::<_, Error>(response)
    }))
    .await
}
