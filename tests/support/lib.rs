//! Helpers shared by the integration tests: AWS clients pointed at the moto
//! server that `make test` starts, unique resource names, fixtures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use jobhook::domain::job::{JobEvent, JobStatus, Origin};

pub mod logs;
pub mod probe;
pub mod provider;

/// The workspace root, for reading `events/` fixtures.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(relative: &str) -> String {
    let path = workspace_root().join("events").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

pub fn fixture_path(relative: &str) -> PathBuf {
    workspace_root().join("events").join(relative)
}

/// `template.yaml`, read once: the tests' tables and queues are its resources.
pub fn template() -> &'static jobhook_dev::template::Template {
    static TEMPLATE: std::sync::OnceLock<jobhook_dev::template::Template> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| jobhook_dev::template::Template::load().expect("template.yaml"))
}

/// SDK configuration for the moto server. Panics with instructions when the
/// tests are run without one, rather than hanging on real AWS credentials.
pub async fn aws() -> SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| url.starts_with("http://127.0.0.1")),
        "integration tests need a local moto server: run them with `make test` \
         (or scripts/with-moto.sh cargo test --workspace)"
    );
    jobhook::bootstrap::aws_config().await
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `content` to a fresh file in the temp dir and returns its path.
pub fn temp_file(prefix: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.json", unique_name(prefix)));
    std::fs::write(&path, content).expect("write temp file");
    path
}

pub mod sqs {
    use aws_sdk_sqs::types::Message;
    use aws_sdk_sqs::Client;

    /// A queue of the test's own, not one of the stack's (an application's).
    pub async fn create_queue(client: &Client, prefix: &str) -> String {
        client
            .create_queue()
            .queue_name(super::unique_name(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url")
    }

    /// A fresh events queue as the template declares it (its redrive left out).
    pub async fn create_events_queue(client: &Client, prefix: &str) -> String {
        super::template()
            .create_queue(client, "EventsQueue", &super::unique_name(prefix))
            .await
            .expect("create the events queue")
    }

    /// A fresh DLQ as the template declares it.
    pub async fn create_events_dlq(client: &Client, prefix: &str) -> String {
        super::template()
            .create_queue(client, "EventsDlq", &super::unique_name(prefix))
            .await
            .expect("create the DLQ")
    }

    /// Everything currently on the queue, waiting up to `wait_secs` for the first.
    pub async fn drain(client: &Client, queue_url: &str, wait_secs: i32) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let out = client
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if all.is_empty() { wait_secs } else { 0 })
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }
}

pub mod dynamodb {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::Client;

    use super::probe::Probe;

    /// A DynamoDB client whose requests the probe sees; SDK retries are off
    /// so that injected faults reach the code under test.
    pub fn probed_client(config: &aws_config::SdkConfig, probe: &Probe) -> Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(probe.clone())
            .retry_config(RetryConfig::disabled())
            .build();
        Client::from_conf(conf)
    }

    /// A fresh table as the template declares it.
    pub async fn create_table(client: &Client, prefix: &str) -> String {
        let name = super::unique_name(prefix);
        super::template()
            .create_table(client, "JobsTable", &name)
            .await
            .expect("create table");
        name
    }
}

/// Retries as the processor makes them, with waits short enough for tests.
pub const TEST_BACKOFF: jobhook::retry::Backoff = jobhook::retry::Backoff {
    first: std::time::Duration::from_millis(2),
    max: std::time::Duration::from_millis(50),
    max_attempts: 8,
    reserve: std::time::Duration::ZERO,
};

/// An invocation deadline as Lambda would give one: 30 s from now.
/// The receiver's key set cache as deployed: over HTTPS, fetched only for
/// a source that names a key set.
pub fn key_sets() -> jobhook::key_sets::KeySetCache {
    let fetcher = jobhook::adapters::key_set_http::HttpKeySets::new(std::time::Duration::from_secs(3));
    jobhook::key_sets::KeySetCache::new(std::sync::Arc::new(fetcher))
}

pub fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(30)
}

/// A webhook-origin job event as the processor would derive it; a completed
/// one carries an output URL named after the job.
pub fn job_event(source: &str, job_id: &str, event_id: &str, status: JobStatus, progress: Option<u8>) -> JobEvent {
    JobEvent {
        event_id: event_id.into(),
        source: source.into(),
        job_id: job_id.into(),
        kind: format!("job.{status}"),
        origin: Origin::Webhook,
        status,
        progress,
        output_url: (status == JobStatus::Completed).then(|| format!("https://cdn.example.com/{job_id}.mp4")),
        error: None,
        result: None,
        provider_time: None,
        archive: None,
    }
}

/// SQS messages and batches as Lambda hands them to the processor.
pub mod messages {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use jobhook::Envelope;
    use serde_json::json;

    /// A generic-profile webhook as the receiver would have queued it.
    pub fn webhook(event_id: &str, kind: &str, job_id: &str, progress: Option<u8>) -> SqsMessage {
        let mut data = json!({"job_id": job_id, "progress": progress});
        match kind {
            "job.completed" => data["output_url"] = json!(format!("https://cdn.example.com/{job_id}.mp4")),
            "job.failed" => data["error"] = json!({"code": "E_RENDER", "message": "render failed"}),
            _ => {}
        }
        let body =
            json!({"id": format!("body-{event_id}"), "type": kind, "created_at": "2026-05-13T12:00:05Z", "data": data});
        queued("acme", "standard-webhooks", Some(event_id), &body.to_string())
    }

    /// `body` from `source` as the receiver queues it: the event id is the
    /// delivery's `webhook_id` when the scheme has one, else the body's hash.
    pub fn queued(source: &str, scheme: &str, webhook_id: Option<&str>, body: &str) -> SqsMessage {
        let envelope = Envelope {
            v: 1,
            source: source.into(),
            event_id: webhook_id
                .map(str::to_owned)
                .unwrap_or_else(|| jobhook::domain::digest::sha256_hex(body.as_bytes())),
            received_at: "2026-05-13T12:00:06.000Z".into(),
            scheme: scheme.into(),
            webhook_id: webhook_id.map(str::to_owned),
            signed_at: Some(1778673605),
            headers: Default::default(),
            body: body.to_owned(),
            body_base64: false,
        };
        message(&envelope.to_json())
    }

    pub fn message(body: &str) -> SqsMessage {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        m.body = Some(body.to_owned());
        m
    }

    pub fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }
}
