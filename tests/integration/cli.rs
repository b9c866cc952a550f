use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::{Clock, ManualClock, SystemClock};
use jobhook::domain::job::{JobEvent, JobStatus};
use jobhook::ports::{DeadLetters, JobStore, OpenJobIndex};
use jobhook_cli::CliError;
use jobhook_tests::{aws, dynamodb, fixture, job_event, sqs, temp_file};
use serde_json::Value;

async fn cli(args: &[&str]) -> (Result<(), CliError>, String) {
    cli_with(&aws().await, args).await
}

async fn cli_with(config: &aws_config::SdkConfig, args: &[&str]) -> (Result<(), CliError>, String) {
    let mut argv = vec!["jobhook"];
    argv.extend_from_slice(args);
    let parsed = jobhook_cli::Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    let result = jobhook_cli::run(parsed, config, &mut out).await;
    (result, String::from_utf8(out).expect("utf-8 output"))
}

fn event(job_id: &str, id: &str, status: JobStatus, progress: Option<u8>) -> JobEvent {
    JobEvent {
        output_url: (status == JobStatus::Completed).then(|| "https://cdn.example.com/out.mp4".into()),
        result: (status == JobStatus::Completed).then(|| r#"{"output_file_id":"file-1"}"#.into()),
        ..job_event("acme", job_id, id, status, progress)
    }
}

async fn table_with_a_job() -> String {
    let config = aws().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&client, "cli").await;
    // Starts on a whole second: a timestamp with a zero fraction once sorted after later ones.
    let clock = Arc::new(ManualClock::at_unix(SystemClock.now_unix()));
    let store = DynamoJobStore::new(client, &table, Duration::from_secs(86_400), clock.clone());
    for e in [
        event("job-1", "e1", JobStatus::Processing, None),
        event("job-1", "e2", JobStatus::Processing, Some(60)),
        event("job-1", "e3", JobStatus::Completed, None),
        event("job-1", "e0", JobStatus::Processing, Some(10)),
    ] {
        store.apply(&e).await.expect("apply");
        clock.advance(Duration::from_millis(250));
    }
    table
}

#[tokio::test]
async fn status_shows_the_job_as_text_and_json() {
    let table = table_with_a_job().await;
    let (result, text) = cli(&["status", "acme", "job-1", "--table", &table]).await;
    result.expect("status");
    assert!(text.contains("status       completed"), "{text}");
    assert!(text.contains("output_url   https://cdn.example.com/out.mp4"), "{text}");
    assert!(text.contains("transitions  3"), "{text}");
    assert!(text.contains(r#"result       {"output_file_id":"file-1"}"#), "{text}");

    let (result, json) = cli(&["status", "acme", "job-1", "--table", &table, "--json"]).await;
    result.expect("status --json");
    let state: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(state["status"], "completed");
    assert_eq!(state["progress"], 100);
    assert_eq!(state["output_url"], "https://cdn.example.com/out.mp4");
    assert_eq!(state["error"], Value::Null);
    assert_eq!(
        state["result"],
        serde_json::json!({"output_file_id": "file-1"}),
        "the result as an object"
    );
    assert!(state["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test]
async fn status_never_sends_control_characters_from_stored_values_to_the_terminal() {
    let config = aws().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&client, "cli-ansi").await;
    let store = DynamoJobStore::new(client, &table, Duration::from_secs(86_400), Arc::new(SystemClock));
    let hostile = JobEvent {
        output_url: Some("https://cdn.example.com/x.mp4\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m".into()),
        error: None,
        ..job_event("acme", "job-ansi", "e-ansi\u{1b}[1m", JobStatus::Completed, None)
    };
    store.apply(&hostile).await.expect("apply");
    for command in ["status", "timeline"] {
        let (result, text) = cli(&[command, "acme", "job-ansi", "--table", &table]).await;
        result.expect(command);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{command} printed a control character raw: {text:?}"
        );
    }
    let (_, text) = cli(&["status", "acme", "job-ansi", "--table", &table]).await;
    assert!(text.contains("x.mp4\\u{1b}[2J"), "escaped, still readable: {text}");
    assert!(text.contains("ended by     webhook"), "{text}");
}

#[tokio::test]
async fn timeline_lists_events_oldest_first_with_outcomes() {
    let table = table_with_a_job().await;
    let (result, json) = cli(&["timeline", "acme", "job-1", "--table", &table, "--json"]).await;
    result.expect("timeline");
    let entries: Vec<Value> = serde_json::from_str(&json).expect("json");
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().expect("id"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("e1", "applied"), ("e2", "applied"), ("e3", "applied"), ("e0", "stale")]
    );

    let (result, text) = cli(&["timeline", "acme", "job-1", "--table", &table]).await;
    result.expect("timeline text");
    assert_eq!(text.lines().count(), 5, "a header and four events:\n{text}");
    assert!(
        text.lines()
            .nth(4)
            .is_some_and(|l| l.contains("stale") && l.contains("e0")),
        "{text}"
    );
}

#[tokio::test]
async fn timeline_shows_repeated_404s_as_one_counted_line() {
    let config = aws().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&client, "cli").await;
    let clock = Arc::new(ManualClock::at_unix(SystemClock.now_unix()));
    let store = DynamoJobStore::new(client, &table, Duration::from_secs(86_400), clock.clone());
    assert!(store.track("acme", "ghost").await.expect("track"));
    for _ in 0..3 {
        clock.advance(Duration::from_secs(300));
        store.record_not_found("acme", "ghost").await.expect("404 noted");
    }
    let (result, text) = cli(&["timeline", "acme", "ghost", "--table", &table]).await;
    result.expect("timeline");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one line:\n{text}");
    assert!(
        lines[1].contains("not_found") && lines[1].contains("poll-not-found (3 times, last "),
        "{text}"
    );
}

#[tokio::test]
async fn errors_are_readable_and_exit_codes_follow_the_convention() {
    let table = table_with_a_job().await;
    let (result, _) = cli(&["status", "acme", "no-such-job", "--table", &table]).await;
    let error = result.expect_err("unknown job");
    assert_eq!(error.exit_code(), 1);
    assert!(
        error.to_string().contains(&table) && error.to_string().contains("no-such-job"),
        "{error}"
    );

    let (result, _) = cli(&["status", "acme", "job-1", "--table", "missing-table"]).await;
    let error = result.expect_err("missing table");
    assert_eq!(error.exit_code(), 1);
    assert!(error.to_string().starts_with("table missing-table:"), "{error}");
    assert!(!error.to_string().contains("SdkError"), "no debug dump: {error}");

    let (result, _) = cli(&["track", "bad/source", "job-1", "--table", &table]).await;
    assert_eq!(result.expect_err("usage").exit_code(), 2);

    let usage = jobhook_cli::Cli::try_parse_from(["jobhook", "status", "acme"]).expect_err("missing argument");
    assert_eq!(usage.exit_code(), 2);
}

#[tokio::test]
async fn track_records_a_submitted_job_once() {
    let table = table_with_a_job().await;
    let (result, text) = cli(&["track", "acme", "job-new", "--table", &table]).await;
    result.expect("track");
    assert_eq!(text.trim(), "tracking acme/job-new");
    let (result, text) = cli(&["track", "acme", "job-new", "--table", &table]).await;
    result.expect("track again");
    assert_eq!(text.trim(), "already known: acme/job-new");
    let (_, json) = cli(&["status", "acme", "job-new", "--table", &table, "--json"]).await;
    let state: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        (state["status"].as_str(), state["transitions"].as_u64()),
        (Some("submitted"), Some(0))
    );
}

#[tokio::test]
async fn sign_produces_a_delivery_the_receiver_verifies() {
    let sources_path = jobhook_tests::fixture_path("sources.fixtures.json");
    let sources = jobhook::Sources::parse(&fixture("sources.fixtures.json")).expect("sources");
    let body_path = temp_file("body", r#"{"id":"evt_cli","type":"job.started","data":{"job_id":"j"}}"#);
    let body = std::fs::read(&body_path).expect("body");
    for source in ["acme", "mux", "gh"] {
        let (result, json) = cli(&[
            "sign",
            source,
            "--body",
            body_path.to_str().expect("path"),
            "--sources-file",
            sources_path.to_str().expect("path"),
            "--json",
        ])
        .await;
        result.expect("sign");
        let headers: serde_json::Map<String, Value> = serde_json::from_str(&json).expect("json");
        let mut map = http::HeaderMap::new();
        for (k, v) in &headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v.as_str().expect("value")).expect("value"),
            );
        }
        let verified = jobhook::verify(
            sources.get(source).expect("source"),
            &map,
            bytes::Bytes::from(body.clone()),
            SystemClock.now_unix(),
        );
        assert!(verified.is_ok(), "{source}: {verified:?}");
    }
    let (result, curl) = cli(&[
        "sign",
        "acme",
        "--body",
        body_path.to_str().expect("path"),
        "--sources-file",
        sources_path.to_str().expect("path"),
        "--url",
        "http://127.0.0.1:9000/lambda-url/receiver/webhooks/",
    ])
    .await;
    result.expect("sign --url");
    assert!(
        curl.starts_with("curl -sS -X POST 'http://127.0.0.1:9000/lambda-url/receiver/webhooks/acme'"),
        "{curl}"
    );
    assert!(
        curl.contains("-H 'webhook-signature: v1,") && curl.contains("--data-binary @"),
        "{curl}"
    );
    // An unsigned source's curl carries its URL token, and no header.
    let (result, curl) = cli(&[
        "sign",
        "rp",
        "--body",
        body_path.to_str().expect("path"),
        "--sources-file",
        sources_path.to_str().expect("path"),
        "--url",
        "http://127.0.0.1:9000/webhooks/",
    ])
    .await;
    result.expect("sign --url, unsigned");
    assert!(
        curl.starts_with(
            "curl -sS -X POST 'http://127.0.0.1:9000/webhooks/rp?token=fixture0url0token0for0runpod0source'"
        ),
        "{curl}"
    );
    assert!(!curl.contains(" -H 'webhook") && !curl.contains("signature"), "{curl}");
}

#[tokio::test]
async fn dlq_list_shows_reasons_and_redrive_moves_everything_back() {
    let config = aws().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let queue = sqs::create_events_queue(&client, "main").await;
    let dlq = sqs::create_events_dlq(&client, "dead").await;
    let dead = SqsQueue::new(client.clone(), &dlq);
    for i in 0..3 {
        dead.dead_letter(
            &format!("{{\"poison\":{i}}}"),
            &format!("reason number {i}"),
            Some("acme"),
        )
        .await
        .expect("dead-letter");
    }

    let (result, json) = cli(&["dlq", "list", "--dlq-url", &dlq, "--json"]).await;
    result.expect("list");
    let rows: Vec<Value> = serde_json::from_str(&json).expect("json");
    let mut reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().expect("reason")).collect();
    reasons.sort();
    assert_eq!(reasons, ["reason number 0", "reason number 1", "reason number 2"]);
    assert!(rows.iter().all(|r| r["source"] == "acme"));

    let (result, text) = cli(&["dlq", "list", "--dlq-url", &dlq]).await;
    result.expect("list again: listing does not hide messages");
    assert!(
        text.contains("3 message(s)") && text.contains("reason number 1"),
        "{text}"
    );

    let (result, text) = cli(&["dlq", "redrive", "--dlq-url", &dlq, "--queue-url", &queue]).await;
    result.expect("redrive");
    assert!(text.starts_with("moved 3 message(s)"), "{text}");
    assert!(text.ends_with("(copied)\n"), "moto has no move task: {text}");
    let back = sqs::drain(&client, &queue, 2).await;
    assert_eq!(back.len(), 3);
    assert!(back
        .iter()
        .all(|m| m.message_attributes().is_some_and(|a| !a.contains_key("reason"))));
    assert!(sqs::drain(&client, &dlq, 1).await.is_empty());
    let (_, text) = cli(&["dlq", "list", "--dlq-url", &dlq]).await;
    assert_eq!(text.trim(), "the dead-letter queue is empty");
}

/// SQS's message move task as the service answers it, for the path moto
/// does not implement: `GetQueueAttributes` (the ARNs), then
/// `StartMessageMoveTask`, then `ListMessageMoveTasks` (running, then done).
async fn move_task_sqs(outcome: &'static str) -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    let seen: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new()
        .fallback(
            move |State(seen): State<Arc<std::sync::Mutex<Vec<Value>>>>, headers: HeaderMap, body: String| async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let polls = {
                    let mut seen = seen.lock().expect("lock");
                    seen.push(serde_json::json!({"target": target, "request": request}));
                    seen.iter().filter(|r| r["target"] == "AmazonSQS.ListMessageMoveTasks").count()
                };
                let answer = match target.as_str() {
                    "AmazonSQS.GetQueueAttributes" => {
                        let name = request["QueueUrl"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
                        serde_json::json!({"Attributes": {"QueueArn": format!("arn:aws:sqs:us-east-1:123456789012:{name}")}})
                    }
                    "AmazonSQS.StartMessageMoveTask" => serde_json::json!({"TaskHandle": "task-1"}),
                    "AmazonSQS.ListMessageMoveTasks" => {
                        let (status, moved) = if polls < 2 { ("RUNNING", 3) } else { (outcome, 7) };
                        serde_json::json!({"Results": [{"TaskHandle": "task-1", "Status": status,
                            "SourceArn": request["SourceArn"], "ApproximateNumberOfMessagesMoved": moved,
                            "ApproximateNumberOfMessagesToMove": 7, "FailureReason": "the destination refused them"}]})
                    }
                    _ => serde_json::json!({}),
                };
                ([("content-type", "application/x-amz-json-1.0")], answer.to_string())
            },
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn cli_against(endpoint: &str, args: &[&str]) -> (Result<(), CliError>, String) {
    aws().await;
    cli_with(
        &jobhook::bootstrap::aws_config_loader()
            .endpoint_url(endpoint)
            .load()
            .await,
        args,
    )
    .await
}

#[tokio::test]
async fn redrive_uses_the_sqs_move_task_where_the_queue_supports_it() {
    let (url, seen) = move_task_sqs("COMPLETED").await;
    let (dlq, queue) = (
        format!("{url}/123456789012/jobs-dlq"),
        format!("{url}/123456789012/jobs"),
    );
    let (result, text) = cli_against(
        &url,
        &["dlq", "redrive", "--dlq-url", &dlq, "--queue-url", &queue, "--json"],
    )
    .await;
    result.expect("redrive");
    let report: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (report["moved"].as_u64(), report["method"].as_str()),
        (Some(7), Some("move-task"))
    );
    let requests = seen.lock().expect("lock").clone();
    let start = requests
        .iter()
        .find(|r| r["target"] == "AmazonSQS.StartMessageMoveTask")
        .expect("a move task was started");
    assert_eq!(
        start["request"]["SourceArn"],
        "arn:aws:sqs:us-east-1:123456789012:jobs-dlq"
    );
    assert_eq!(
        start["request"]["DestinationArn"],
        "arn:aws:sqs:us-east-1:123456789012:jobs"
    );
    assert!(
        !requests.iter().any(|r| r["target"] == "AmazonSQS.ReceiveMessage"),
        "nothing copied by hand"
    );
}

#[tokio::test]
async fn a_move_task_that_fails_is_reported_with_its_reason() {
    let (url, _) = move_task_sqs("FAILED").await;
    let (dlq, queue) = (
        format!("{url}/123456789012/jobs-dlq"),
        format!("{url}/123456789012/jobs"),
    );
    let (result, _) = cli_against(&url, &["dlq", "redrive", "--dlq-url", &dlq, "--queue-url", &queue]).await;
    let error = result.expect_err("a failed task fails the command").to_string();
    assert!(
        error.contains("ended FAILED after 7 message(s): the destination refused them"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "one line: {error}");
}
