//! The EMF metrics the functions emit, parsed back from the JSON lines.
//! Counters are process-wide, so this test uses source names of its own and
//! is the only one that flushes.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::file::FileSources;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::{FixedClock, ManualClock, SystemClock};
use jobhook::domain::job::{JobEvent, JobStatus, Origin};
use jobhook::domain::signature::sign;
use jobhook::ports::JobStore;
use jobhook::sources_cache::SourcesCache;
use jobhook::Sources;
use jobhook_tests::provider::{job, Answer, TestProvider};
use jobhook_tests::{aws, dynamodb, sqs, temp_file, unique_name};
use metrics_cloudwatch_embedded::Collector;
use reconciler::{ReconcileSettings, Reconciler};
use serde_json::{json, Value};

fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| jobhook::telemetry::init("integration-test").expect("metrics init"))
}

/// Flushes and returns `metric name -> value` for `source`, plus the EMF
/// documents themselves.
fn flush_for(source: &str) -> (BTreeMap<String, u64>, Vec<Value>) {
    let mut out = Vec::new();
    collector().flush(&mut out).expect("flush");
    let docs: Vec<Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON document"))
        .collect();
    let mut totals = BTreeMap::new();
    for doc in docs.iter().filter(|d| d["source"] == source) {
        for directive in doc["_aws"]["CloudWatchMetrics"].as_array().expect("EMF directive") {
            for metric in directive["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("name");
                *totals.entry(name.to_owned()).or_default() += doc[name].as_u64().unwrap_or(0);
            }
        }
    }
    (totals, docs)
}

fn webhook_message(source: &str, id: &str, kind: &str, job_id: &str, progress: Option<u8>) -> SqsMessage {
    let body = json!({"id": id, "type": kind, "data": {"job_id": job_id, "progress": progress}});
    let envelope = json!({"v": 1, "source": source, "event_id": id, "received_at": "2026-05-13T12:00:06.000Z",
        "scheme": "github", "body": body.to_string(), "body_base64": false});
    let mut m = SqsMessage::default();
    m.message_id = Some(unique_name("m"));
    m.body = Some(envelope.to_string());
    m
}

#[tokio::test]
async fn the_main_outcomes_are_emitted_as_emf_metrics() {
    collector();
    let config = aws().await;
    let source = unique_name("metrics").replace('-', "_");
    let busy_source = format!("{source}_busy");
    let thin_source = format!("{source}_thin");
    let provider = TestProvider::start("token").await;
    let api = json!({"base_url": provider.base_url, "token": "token"});
    let doc = json!({"sources": {
        &source: {"scheme": "github", "secrets": ["s3cret"], "api": api},
        &busy_source: {"scheme": "github", "secrets": ["s3cret"], "api": api},
        &thin_source: {"scheme": "github", "secrets": ["s3cret"], "provider": "openai", "api": api}}});
    let sources_path = temp_file("metric-sources", &doc.to_string());
    let sources = Sources::parse(&doc.to_string()).expect("sources");
    let cache = || SourcesCache::new(Arc::new(FileSources::new(&sources_path)), Duration::from_secs(300));
    flush_for(&source); // start from zero

    // Receiver: two accepted, one bad signature, one enqueue failure.
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let queue = sqs::create_events_queue(&sqs_client, "metrics").await;
    let receiver = |queue_url: &str| receiver::Receiver {
        sources: cache(),
        key_sets: jobhook_tests::key_sets(),
        queue: Arc::new(SqsQueue::new(sqs_client.clone(), queue_url)),
        clock: Arc::new(FixedClock::at_unix(1_700_000_000)),
        max_body_bytes: 1024,
        limits: Default::default(),
    };
    let request = |body: &str, signature: String| {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/webhooks/{source}"))
            .header("x-hub-signature-256", signature)
            .body(lambda_http::Body::from(body.to_owned()))
            .expect("request")
    };
    let key = &sources.get(&source).expect("source").keys[0];
    let good = receiver(&queue);
    for body in ["{\"a\":1}", "{\"a\":2}"] {
        assert_eq!(
            good.handle(request(body, sign::github(key, body.as_bytes())))
                .await
                .status(),
            202
        );
    }
    assert_eq!(good.handle(request("{}", "sha256=".into())).await.status(), 401);
    let broken = receiver(&format!(
        "{}/000000000000/{}",
        config.endpoint_url().expect("endpoint"),
        unique_name("none")
    ));
    assert_eq!(
        broken.handle(request("{}", sign::github(key, b"{}"))).await.status(),
        503
    );

    // Processor: applied, duplicate, stale, conflict, permanent failure.
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&ddb, "metrics").await;
    let store = DynamoJobStore::new(ddb.clone(), &table, Duration::from_secs(86_400), Arc::new(SystemClock));
    let dlq = sqs::create_events_dlq(&sqs_client, "metrics-dlq").await;
    let processor = processor::Processor {
        sources: cache(),
        store: Arc::new(store.clone()),
        dead_letters: Arc::new(SqsQueue::new(sqs_client.clone(), &dlq)),
        poller: Arc::new(jobhook::adapters::provider_http::HttpJobPoller::new(
            Duration::from_secs(2),
        )),
        concurrency: 1,
        backoff: jobhook_tests::TEST_BACKOFF,
        archiver: jobhook::archive::Archiver::inline_only(),
        track_queue_arn: None,
    };
    let mut poison = SqsMessage::default();
    poison.message_id = Some(unique_name("poison"));
    poison.body = Some("not an envelope".into());
    let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
    attribute.string_value = Some(source.clone());
    attribute.data_type = Some("String".into());
    poison.message_attributes.insert("source".into(), attribute);
    let mut batch = SqsEvent::default();
    batch.records = vec![
        webhook_message(&source, "e1", "job.progress", "j1", Some(50)),
        webhook_message(&source, "e1", "job.progress", "j1", Some(50)),
        webhook_message(&source, "e3", "job.completed", "j1", None),
        webhook_message(&source, "e4", "job.failed", "j1", None),
        poison,
    ];
    // A later batch's lower progress is stale (in one batch it would be
    // taken first, in forward order).
    let mut late = SqsEvent::default();
    late.records = vec![webhook_message(&source, "e2", "job.progress", "j1", Some(20))];
    for batch in [batch, late] {
        assert!(processor
            .handle(batch, jobhook_tests::deadline())
            .await
            .expect("handled")
            .batch_item_failures
            .is_empty());
    }

    // Thin events: one read from the API, one whose API fails (retried),
    // and the first again (already recorded, not read again).
    provider.answer(
        "batch_ok",
        Answer::Job(json!({"id": "batch_ok", "object": "batch", "status": "completed", "created_at": 1})),
    );
    provider.answer("batch_down", Answer::Status(503));
    let thin = |id: &str, batch: &str| {
        let body =
            json!({"id": id, "object": "event", "created_at": 1, "type": "batch.completed", "data": {"id": batch}});
        let envelope = json!({"v": 1, "source": thin_source, "event_id": id, "received_at": "2026-05-13T12:00:06.000Z",
            "scheme": "github", "body": body.to_string(), "body_base64": false});
        let mut m = SqsMessage::default();
        m.message_id = Some(unique_name("m"));
        m.body = Some(envelope.to_string());
        m
    };
    let mut thin_batch = SqsEvent::default();
    thin_batch.records = vec![thin("evt_ok", "batch_ok"), thin("evt_down", "batch_down")];
    let failed = processor
        .handle(thin_batch, jobhook_tests::deadline())
        .await
        .expect("handled");
    assert_eq!(failed.batch_item_failures.len(), 1, "the 503 is left for redelivery");
    let mut again = SqsEvent::default();
    again.records = vec![thin("evt_ok", "batch_ok")];
    processor
        .handle(again, jobhook_tests::deadline())
        .await
        .expect("handled");

    // Reconciler: one recovered, one 503, one rate-limited.
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let recon_store = Arc::new(DynamoJobStore::new(
        ddb,
        &table,
        Duration::from_secs(86_400),
        clock.clone(),
    ));
    for (job_source, id, answer) in [
        (&source, "r-done", Answer::Job(job("r-done", "completed", None))),
        (&source, "r-down", Answer::Status(503)),
        (&busy_source, "r-busy", Answer::RateLimited(30)),
    ] {
        let event = JobEvent {
            event_id: format!("w-{id}"),
            source: job_source.clone(),
            job_id: id.into(),
            kind: "job.started".into(),
            origin: Origin::Webhook,
            status: JobStatus::Processing,
            progress: None,
            output_url: None,
            error: None,
            result: None,
            provider_time: None,
            archive: None,
        };
        recon_store.apply(&event).await.expect("apply");
        provider.answer(id, answer);
    }
    clock.advance(Duration::from_secs(601));
    let reconciler = Reconciler {
        store: recon_store.clone(),
        index: recon_store,
        poller: Arc::new(HttpJobPoller::new(Duration::from_secs(2))),
        clock,
        settings: ReconcileSettings {
            poll_concurrency: 1,
            ..Default::default()
        },
    };
    reconciler.run(&sources, jobhook_tests::deadline()).await.expect("run");

    let (totals, docs) = flush_for(&source);
    let thin_outcomes: BTreeMap<String, u64> = docs
        .iter()
        .filter(|d| d["source"] == thin_source.as_str() && d.get("ThinEventFetches").is_some())
        .map(|d| {
            (
                d["outcome"].as_str().unwrap_or("?").to_owned(),
                d["ThinEventFetches"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        thin_outcomes,
        [("already_recorded", 1), ("fetched", 1), ("retried", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        docs.iter()
            .filter(|d| d["source"] == busy_source.as_str())
            .map(|d| d["ProviderRateLimited"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        1
    );
    let expected: BTreeMap<String, u64> = [
        ("WebhooksAccepted", 2),
        ("SignatureFailures", 1),
        ("EnqueueFailures", 1),
        // e1 and e3 by the processor, then the recovered job by the reconciler
        ("EventsApplied", 3),
        ("EventsDuplicate", 1),
        ("EventsStale", 1),
        ("TerminalConflicts", 1),
        ("PermanentFailures", 1),
        ("JobsPolled", 2),
        ("MissedWebhooksRecovered", 1),
        ("ProviderPollErrors", 1),
        // Webhook coverage: e3 ended j1, the reconciler ended the recovered job.
        ("TerminalFirstByWebhook", 1),
        ("TerminalFirstByPoll", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(totals, expected);

    let ours: Vec<&Value> = docs.iter().filter(|d| d["source"] == source.as_str()).collect();
    for doc in &ours {
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Jobhook");
        assert_eq!(doc["function"], "integration-test");
    }
    let failure = ours
        .iter()
        .find(|d| d.get("SignatureFailures").is_some())
        .expect("signature failure document");
    assert_eq!(failure["reason"], "malformed_signature");
    // The unlabelled totals the alarms read are exact in telemetry's unit
    // test; here they are process-wide, so only their presence is checked.
    assert!(docs
        .iter()
        .any(|d| d.get("source").is_none() && d.get("WebhooksAccepted").is_some()));
}
