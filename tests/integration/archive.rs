//! The archive on moto: deliveries verified as the receiver verifies them,
//! applied by the processor with an S3 bucket for the large ones, read back
//! by `jobhook events`, and repaired in bulk by `jobhook replay --source`.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::memory::InMemoryDeadLetters;
use jobhook::clock::SystemClock;
use jobhook::config::ArchiveSettings;
use jobhook::domain::archive::ArchiveLocation;
use jobhook::ports::JobQuery;
use jobhook::sources_cache::SourcesCache;
use jobhook::{Envelope, Sources};
use jobhook_tests::messages::{batch, message};
use jobhook_tests::{aws, deadline, dynamodb, temp_file, unique_name, TEST_BACKOFF};
use processor::Processor;
use serde_json::{json, Value};

/// A header-token source (the token is the secret) on the generic profile.
const SOURCES: &str = r#"{"sources": {"tok": {"scheme": "header-token", "header": "X-Hook-Token",
    "secrets": ["s3cr3t-token"], "provider": "generic"}}}"#;

/// `body` delivered with the source's token, verified as the receiver does,
/// as the message it queues.
fn delivered(body: &[u8]) -> aws_lambda_events::event::sqs::SqsMessage {
    let sources = Sources::parse(SOURCES).expect("sources");
    let source = sources.get("tok").expect("source");
    let mut headers = http::HeaderMap::new();
    headers.insert("x-hook-token", "s3cr3t-token".parse().unwrap());
    headers.insert("authorization", "Bearer sk-live-nope".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("user-agent", "provider/1.0".parse().unwrap());
    let verified = jobhook::verify(source, &headers, bytes::Bytes::copy_from_slice(body), 0).expect("verified");
    message(&Envelope::from_verified(&verified, "2026-05-13T12:00:06.000Z".into()).to_json())
}

fn generic(id: &str, kind: &str, job_id: &str, data: Value) -> Vec<u8> {
    let mut data = data;
    data["job_id"] = json!(job_id);
    json!({"id": id, "type": kind, "created_at": "2026-05-13T12:00:05Z", "data": data})
        .to_string()
        .into_bytes()
}

/// Text that does not compress, so its delivery goes to the bucket.
fn noise(len: usize) -> String {
    let mut state = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

async fn cli(args: &[&str]) -> (Result<(), jobhook_cli::CliError>, String) {
    let mut argv = vec!["jobhook"];
    argv.extend_from_slice(args);
    let parsed = jobhook_cli::Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    let result = jobhook_cli::run(parsed, &aws().await, &mut out).await;
    (result, String::from_utf8(out).expect("utf-8"))
}

struct Stack {
    table: String,
    store: DynamoJobStore,
    processor: Processor,
    sources_file: std::path::PathBuf,
}

async fn stack() -> Stack {
    let config = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&ddb, "archive").await;
    let bucket = unique_name("archive").to_lowercase();
    jobhook::bootstrap::s3_client(&config)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let store = DynamoJobStore::new(ddb, &table, Duration::from_secs(86_400), Arc::new(SystemClock));
    let sources_file = temp_file("sources", SOURCES);
    let processor = Processor {
        sources: SourcesCache::new(
            Arc::new(jobhook::adapters::file::FileSources::new(sources_file.clone())),
            Duration::from_secs(300),
        ),
        store: Arc::new(store.clone()),
        dead_letters: Arc::new(InMemoryDeadLetters::default()),
        poller: Arc::new(jobhook::adapters::memory::ScriptedPoller::default()),
        concurrency: 4,
        backoff: TEST_BACKOFF,
        track_queue_arn: None,
        archiver: jobhook::bootstrap::archiver(
            &config,
            &ArchiveSettings {
                bucket: Some(bucket),
                prefix: "archive/".into(),
            },
        ),
    };
    Stack {
        table,
        store,
        processor,
        sources_file,
    }
}

#[tokio::test]
async fn events_shows_each_delivery_as_received_with_its_headers_and_no_credential() {
    let s = stack().await;
    let started = generic("e1", "job.started", "job-1", json!({"status": "processing"}));
    let large = generic(
        "e2",
        "job.completed",
        "job-1",
        json!({"status": "completed", "output_url": "https://cdn.example.com/j.mp4", "error": noise(3000)}),
    );
    let response = s
        .processor
        .handle(
            batch(vec![delivered(&started), delivered(&large), delivered(&large)]),
            deadline(),
        )
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    let timeline = s.store.timeline("tok", "job-1").await.expect("timeline");
    assert_eq!(timeline.len(), 2, "a duplicate is archived once: {timeline:?}");
    assert!(matches!(timeline[0].archive, Some(ArchiveLocation::Inline(_))));
    assert!(
        matches!(timeline[1].archive, Some(ArchiveLocation::Segment(_))),
        "the large one is in the bucket"
    );

    let (result, text) = cli(&["events", "tok", "job-1", "--json", "--table", &s.table]).await;
    result.expect("events --json");
    let events: Value = serde_json::from_str(&text).expect("json");
    let events = events.as_array().expect("a list");
    assert_eq!(events.len(), 2);
    for (event, body) in events.iter().zip([&started, &large]) {
        assert_eq!(
            event["body"].as_str().map(str::as_bytes),
            Some(body.as_slice()),
            "byte for byte"
        );
        assert_eq!(event["outcome"], "applied");
        assert_eq!(
            (event["scheme"].clone(), event["verification"].clone()),
            (json!("header-token"), json!("verified"))
        );
        assert_eq!(
            event["headers"],
            json!({"content-type": "application/json", "user-agent": "provider/1.0"})
        );
    }
    assert_eq!(
        (events[0]["status"].clone(), events[1]["status"].clone()),
        (json!("processing"), json!("completed"))
    );
    assert!(
        !text.contains("s3cr3t-token") && !text.contains("sk-live"),
        "a credential was archived"
    );

    let (result, text) = cli(&["events", "tok", "job-1", "--table", &s.table]).await;
    result.expect("events");
    assert!(
        text.contains("2026-05-13T12:00:06.000Z  delivery  applied → completed  e2 (job.completed)"),
        "{text}"
    );
    assert!(text.contains("verified by header-token"), "{text}");
    assert!(text.contains("    content-type: application/json"), "{text}");
    assert!(
        text.contains("    {\n      \"created_at\": \"2026-05-13T12:00:05Z\",\n      \"data\": {\n        \"job_id\""),
        "indented JSON: {text}"
    );

    let (result, _) = cli(&["events", "tok", "nope", "--table", &s.table]).await;
    assert!(matches!(result, Err(jobhook_cli::CliError::Failed(m)) if m.contains("no events for tok/nope")));
}

#[tokio::test]
async fn replay_of_a_whole_source_corrects_each_job_that_differs_and_keeps_no_resume_point_once_done() {
    let s = stack().await;
    let mut messages = Vec::new();
    for job in ["a", "b", "c"] {
        let body = generic(
            &format!("{job}-done"),
            "job.completed",
            job,
            json!({"status": "completed",
            "output_url": format!("https://cdn.example.com/{job}.mp4")}),
        );
        messages.push(delivered(&body));
    }
    s.processor.handle(batch(messages), deadline()).await.expect("handled");
    // An older profile stored job b without its output.
    let mut misread = s.store.get("tok", "b").await.unwrap().unwrap();
    let correction = jobhook::domain::job::JobEvent {
        event_id: "older-profile".into(),
        source: "tok".into(),
        job_id: "b".into(),
        kind: "replay".into(),
        origin: jobhook::domain::job::Origin::Replay,
        status: misread.fields.status,
        progress: misread.fields.progress,
        output_url: None,
        error: None,
        result: None,
        provider_time: None,
        archive: None,
    };
    assert!(
        jobhook::ports::JobStore::correct(&s.store, &correction, misread.transitions)
            .await
            .unwrap()
    );
    misread.transitions += 1;

    let sources = s.sources_file.to_str().unwrap().to_owned();
    let resume = std::env::temp_dir().join(format!("{}.cursor", unique_name("resume")));
    let resume_arg = resume.to_str().unwrap().to_owned();
    let args = |apply: bool| {
        let mut argv = vec![
            "replay",
            "--source",
            "tok",
            "--table",
            &s.table,
            "--sources-file",
            &sources,
        ];
        argv.extend(["--rate", "100", "--resume", &resume_arg]);
        if apply {
            argv.push("--apply");
        }
        argv
    };
    let (result, text) = cli(&args(false)).await;
    result.expect("dry run");
    assert!(text.contains("tok/b: differs from what its archive gives"), "{text}");
    assert!(
        text.contains("3 jobs replayed: 1 differ from their archive, 0 corrected, 0 failed (dry run"),
        "{text}"
    );
    let (result, text) = cli(&args(true)).await;
    result.expect("apply");
    assert!(text.contains("1 corrected"), "{text}");
    let repaired = s.store.get("tok", "b").await.unwrap().unwrap();
    assert_eq!(
        repaired.fields.output_url.as_deref(),
        Some("https://cdn.example.com/b.mp4")
    );
    assert_eq!(repaired.transitions, misread.transitions + 1);
    assert!(!resume.exists(), "a finished run leaves no resume point");
    let (_, text) = cli(&args(true)).await;
    assert!(text.contains("3 jobs replayed: 0 differ"), "{text}");

    std::fs::write(&resume, "not a cursor").unwrap();
    let (result, _) = cli(&args(false)).await;
    assert!(
        matches!(result, Err(jobhook_cli::CliError::Failed(m)) if m.contains("resume point")),
        "a clear error"
    );
    std::fs::remove_file(&resume).ok();
}
