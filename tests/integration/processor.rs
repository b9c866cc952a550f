use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::file::FileSources;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::SystemClock;
use jobhook::domain::job::{JobState, JobStatus, Outcome, TimelineEntry};
use jobhook::ports::{JobQuery as _, JobStore};
use jobhook::retry::Backoff;
use jobhook::sources_cache::SourcesCache;
use jobhook_tests::messages::{batch, message, queued, webhook};
use jobhook_tests::probe::{Probe, READ_OPERATIONS, WRITE_OPERATIONS};
use jobhook_tests::{aws, deadline, dynamodb, fixture, fixture_path, job_event, logs, sqs, TEST_BACKOFF};
use processor::Processor;

struct Harness {
    probe: Probe,
    ddb: aws_sdk_dynamodb::Client,
    store: DynamoJobStore,
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    processor: Processor,
}

async fn harness_with_concurrency(concurrency: usize) -> Harness {
    harness_with(concurrency, TEST_BACKOFF).await
}

async fn harness_with(concurrency: usize, backoff: Backoff) -> Harness {
    let config = aws().await;
    let probe = Probe::default();
    let ddb = dynamodb::probed_client(&config, &probe);
    let table = dynamodb::create_table(&ddb, "jobs").await;
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let dlq_url = sqs::create_events_dlq(&sqs_client, "dlq").await;
    let store = DynamoJobStore::new(
        ddb.clone(),
        table,
        Duration::from_secs(30 * 86_400),
        Arc::new(SystemClock),
    );
    let processor = Processor {
        sources: SourcesCache::new(
            Arc::new(FileSources::new(fixture_path("sources.fixtures.json"))),
            Duration::from_secs(300),
        ),
        store: Arc::new(store.clone()),
        dead_letters: Arc::new(SqsQueue::new(sqs_client.clone(), &dlq_url)),
        poller: Arc::new(jobhook::adapters::provider_http::HttpJobPoller::new(
            Duration::from_secs(2),
        )),
        concurrency,
        backoff,
        archiver: jobhook::archive::Archiver::inline_only(),
        track_queue_arn: None,
    };
    probe.reset();
    Harness {
        probe,
        ddb,
        store,
        sqs: sqs_client,
        dlq_url,
        processor,
    }
}

async fn harness() -> Harness {
    harness_with_concurrency(8).await
}

impl Harness {
    async fn deliver(&self, messages: Vec<SqsMessage>) -> SqsBatchResponse {
        self.processor
            .handle(batch(messages), deadline())
            .await
            .expect("no systemic failure")
    }

    /// Delivers one message at a time, redelivering failures as SQS would.
    async fn deliver_each(&self, messages: &[SqsMessage]) {
        for m in messages {
            for attempt in 0.. {
                let response = self.deliver(vec![m.clone()]).await;
                if response.batch_item_failures.is_empty() {
                    break;
                }
                assert!(attempt < 10, "message kept failing");
            }
        }
    }

    async fn state(&self, job_id: &str) -> JobState {
        self.store.get("acme", job_id).await.expect("get").expect("job exists")
    }

    async fn timeline(&self, job_id: &str) -> Vec<TimelineEntry> {
        self.store.timeline("acme", job_id).await.expect("timeline")
    }
}

fn outcomes(timeline: &[TimelineEntry]) -> HashMap<String, Outcome> {
    timeline.iter().map(|e| (e.event_id.clone(), e.outcome)).collect()
}

fn applied_count(timeline: &[TimelineEntry]) -> u64 {
    timeline.iter().filter(|e| e.outcome == Outcome::Applied).count() as u64
}

#[tokio::test]
async fn the_sqs_fixture_batch_is_applied_and_its_poison_goes_to_the_dlq() {
    let h = harness_with_concurrency(1).await;
    let event: SqsEvent = serde_json::from_str(&fixture("processor/sqs-batch.json")).expect("fixture is an SqsEvent");
    let response = h.processor.handle(event, deadline()).await.expect("handled");
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );

    let state = h.state("job_fixture_1").await;
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(state.fields.progress, Some(100));
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://cdn.example.com/job_fixture_1.mp4")
    );
    assert_eq!(state.provider_time.as_deref(), Some("2026-05-13T12:01:00.000Z"));
    // Queued completed, started, progress, completed again: the batch takes
    // them in forward order, so each moves the job on once.
    assert_eq!(state.transitions, 3);
    assert_eq!(state.last_event_id.as_deref(), Some("msg_p_3"));

    let timeline = h.timeline("job_fixture_1").await;
    let expected: HashMap<String, Outcome> = [
        ("msg_p_3".to_owned(), Outcome::Applied),
        ("msg_p_1".to_owned(), Outcome::Applied),
        ("msg_p_2".to_owned(), Outcome::Applied),
    ]
    .into();
    assert_eq!(outcomes(&timeline), expected, "the duplicate makes no second entry");

    let dead = sqs::drain(&h.sqs, &h.dlq_url, 2).await;
    assert_eq!(dead.len(), 2);
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            m.message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|r| r.string_value.clone())
                .expect("reason")
        })
        .collect();
    assert!(reasons.iter().any(|r| r.contains("data.job_id")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("envelope is not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        dead.iter().any(|m| m.body() == Some("this is not an envelope")),
        "the original body is kept"
    );
}

#[tokio::test]
async fn each_applied_transition_is_logged_with_its_status_and_each_unapplied_event_with_the_state_it_met() {
    let h = harness().await;
    assert!(h.store.track("acme", "job-log-tracked").await.expect("track"));
    let (logs, _guard) = logs::capture();
    h.deliver_each(&[
        webhook("lg-1", "job.started", "job-log", None),
        webhook("lg-2", "job.progress", "job-log", Some(40)),
        webhook("lg-3", "job.completed", "job-log", None),
        // A tracked job, and a job whose end came first.
        webhook("lg-4", "job.started", "job-log-tracked", None),
        webhook("lg-5", "job.completed", "job-log-late", None),
        webhook("lg-6", "job.started", "job-log-late", None),
    ])
    .await;

    let field = |f: &serde_json::Value, name: &str| f[name].as_str().unwrap_or("<missing>").to_owned();
    // The apply's one condition holds for every earlier state, so the
    // processor does not know which it was: the notifier logs it, from the
    // stream's old image.
    let applied: Vec<[String; 5]> = logs
        .with_message("job transition applied")
        .iter()
        .map(|f| ["source", "job_id", "event_id", "from", "to"].map(|name| field(f, name)))
        .collect();
    let expected = [
        ["acme", "job-log", "lg-1", "<missing>", "processing"],
        ["acme", "job-log", "lg-2", "<missing>", "processing"],
        ["acme", "job-log", "lg-3", "<missing>", "completed"],
        ["acme", "job-log-tracked", "lg-4", "<missing>", "processing"],
        ["acme", "job-log-late", "lg-5", "<missing>", "completed"],
    ]
    .map(|line| line.map(str::to_owned));
    assert_eq!(applied, expected);
    let unapplied: Vec<[String; 3]> = logs
        .with_message("event recorded without a transition")
        .iter()
        .map(|f| ["event_id", "outcome", "current"].map(|name| field(f, name)))
        .collect();
    assert_eq!(unapplied, [["lg-6", "stale", "completed"].map(str::to_owned)]);
    assert_eq!(h.state("job-log-tracked").await.transitions, 1);
}

/// What another container's store, sharing the table, writes.
fn another_container(h: &Harness) -> DynamoJobStore {
    DynamoJobStore::new(
        h.ddb.clone(),
        h.store.table(),
        Duration::from_secs(30 * 86_400),
        Arc::new(SystemClock),
    )
}

#[tokio::test]
async fn a_store_that_did_not_see_a_job_move_pays_one_more_write_and_still_records_the_right_outcome() {
    let h = harness().await;
    let other = another_container(&h);
    let event = |id: &str, status: JobStatus, progress: Option<u8>| job_event("acme", "moved", id, status, progress);
    use JobStatus::{Completed, Failed, Processing};
    // (store, event, outcome, write requests), one after another.
    let cases = [
        (&h.store, event("mv-1", Processing, Some(10)), Outcome::Applied, 1),
        // Moved on elsewhere: this store still remembers progress 10.
        (&other, event("mv-2", Completed, None), Outcome::Applied, 1),
        (&h.store, event("mv-3", Processing, Some(50)), Outcome::Stale, 2),
        // Now it has seen the end.
        (&h.store, event("mv-4", Processing, Some(60)), Outcome::Stale, 1),
        (&h.store, event("mv-5", Failed, None), Outcome::Conflict, 1),
        (&h.store, event("mv-2", Completed, None), Outcome::Duplicate, 1),
    ];
    for (store, e, outcome, writes) in cases {
        h.probe.reset();
        let result = store.apply(&e).await.expect("apply");
        assert_eq!(result.outcome, outcome, "{}", e.event_id);
        assert_eq!(h.probe.total(WRITE_OPERATIONS), writes, "{}", e.event_id);
    }
    let state = h.store.get("acme", "moved").await.expect("get").expect("stored");
    assert_eq!((state.fields.status, state.transitions), (Completed, 2));
}

#[tokio::test]
async fn each_kind_of_event_costs_the_documented_write_requests() {
    let h = harness().await;
    let event =
        |id: &str, job: &str, status: JobStatus, progress: Option<u8>| job_event("acme", job, id, status, progress);
    use JobStatus::{Completed, Failed, Processing};
    assert!(h.store.track("acme", "wr-tracked").await.expect("track"));
    // (event, outcome, from, write requests), applied one after another by
    // one store, which remembers what it wrote.
    let cases = [
        (event("wr-1", "wr", Processing, None), Outcome::Applied, None, 1),
        (event("wr-2", "wr", Processing, Some(40)), Outcome::Applied, None, 1),
        (event("wr-2", "wr", Processing, Some(40)), Outcome::Duplicate, None, 1),
        (
            event("wr-3", "wr", Processing, Some(20)),
            Outcome::Stale,
            Some(Processing),
            1,
        ),
        (event("wr-4", "wr", Completed, None), Outcome::Applied, None, 1),
        (event("wr-5", "wr", Failed, None), Outcome::Conflict, Some(Completed), 1),
        (event("wr-6", "wr-late", Completed, None), Outcome::Applied, None, 1),
        (
            event("wr-7", "wr-late", Processing, None),
            Outcome::Stale,
            Some(Completed),
            1,
        ),
        (event("wr-8", "wr-tracked", Processing, None), Outcome::Applied, None, 1),
    ];
    for (e, outcome, from, writes) in cases {
        h.probe.reset();
        let result = h.store.apply(&e).await.expect("apply");
        let label = format!("{} on {}", e.event_id, e.job_id);
        assert_eq!(result.outcome, outcome, "{label}");
        if outcome != Outcome::Duplicate {
            assert_eq!(result.from, from, "{label}");
        }
        assert_eq!(result.write_requests, writes, "{label}");
        assert_eq!(
            h.probe.total(WRITE_OPERATIONS),
            writes,
            "{label}: requests seen on the wire"
        );
        assert_eq!(h.probe.total(READ_OPERATIONS), 0, "{label}");
    }
}

#[tokio::test]
async fn redelivered_events_make_no_second_transition_or_timeline_entry() {
    let h = harness().await;
    let started = webhook("dup-1", "job.started", "job-dup", None);
    let progress = webhook("dup-2", "job.progress", "job-dup", Some(30));
    // The same events again and again, in one batch and across batches.
    let response = h
        .deliver(vec![started.clone(), started.clone(), progress.clone()])
        .await;
    assert!(response.batch_item_failures.is_empty());
    h.deliver_each(&[progress.clone(), started.clone(), progress]).await;

    let state = h.state("job-dup").await;
    assert_eq!(
        (state.fields.status, state.fields.progress),
        (JobStatus::Processing, Some(30))
    );
    let timeline = h.timeline("job-dup").await;
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    assert_eq!(state.transitions, applied_count(&timeline));
    assert_eq!(outcomes(&timeline)["dup-2"], Outcome::Applied);
}

#[tokio::test]
async fn reordered_events_end_in_the_in_order_state() {
    let h = harness().await;
    // completed before started
    h.deliver_each(&[
        webhook("ro-4", "job.completed", "job-ro", None),
        webhook("ro-1", "job.started", "job-ro", None),
        webhook("ro-3", "job.progress", "job-ro", Some(80)),
        webhook("ro-2", "job.progress", "job-ro", Some(40)),
    ])
    .await;
    let reordered = h.state("job-ro").await;
    assert_eq!(reordered.fields.status, JobStatus::Completed);
    assert_eq!(reordered.fields.progress, Some(100));
    assert_eq!(
        reordered.fields.output_url.as_deref(),
        Some("https://cdn.example.com/job-ro.mp4")
    );
    assert_eq!(reordered.transitions, 1);
    let timeline = outcomes(&h.timeline("job-ro").await);
    assert_eq!(timeline["ro-4"], Outcome::Applied);
    for stale in ["ro-1", "ro-2", "ro-3"] {
        assert_eq!(timeline[stale], Outcome::Stale, "{stale}");
    }

    // progress 80 before 40
    h.deliver_each(&[
        webhook("pg-2", "job.progress", "job-pg", Some(80)),
        webhook("pg-1", "job.progress", "job-pg", Some(40)),
    ])
    .await;
    let state = h.state("job-pg").await;
    assert_eq!(
        (state.fields.status, state.fields.progress),
        (JobStatus::Processing, Some(80))
    );
    assert_eq!(outcomes(&h.timeline("job-pg").await)["pg-1"], Outcome::Stale);

    // the same events in order end in the same fields as job-ro did reordered
    h.deliver_each(&[
        webhook("io-1", "job.started", "job-io", None),
        webhook("io-2", "job.progress", "job-io", Some(40)),
        webhook("io-3", "job.progress", "job-io", Some(80)),
        webhook("io-4", "job.completed", "job-io", None),
    ])
    .await;
    let in_order = h.state("job-io").await;
    assert_eq!(in_order.transitions, 4);
    let settled = |f: &jobhook::domain::job::JobFields| (f.status, f.progress, f.error.clone(), f.result.clone());
    assert_eq!(settled(&in_order.fields), settled(&reordered.fields));
}

#[tokio::test]
async fn a_conflicting_terminal_event_is_recorded_not_applied() {
    let h = harness().await;
    h.deliver_each(&[
        webhook("cf-1", "job.completed", "job-cf", None),
        webhook("cf-2", "job.failed", "job-cf", None),
    ])
    .await;
    let state = h.state("job-cf").await;
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(state.fields.error, None);
    let timeline = outcomes(&h.timeline("job-cf").await);
    assert_eq!(timeline["cf-2"], Outcome::Conflict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appliers_never_lose_an_update_or_move_backwards() {
    let h = Arc::new(harness().await);
    const ROUNDS: usize = 12;
    for round in 0..ROUNDS {
        let job = format!("job-cc-{round}");
        // Two processors share one job, each with half of its events.
        let odd: Vec<SqsMessage> = (1..=9)
            .step_by(2)
            .map(|p| webhook(&format!("{job}-p{p}"), "job.progress", &job, Some(p * 10)))
            .collect();
        let mut even: Vec<SqsMessage> = (2..=8)
            .step_by(2)
            .map(|p| webhook(&format!("{job}-p{p}"), "job.progress", &job, Some(p * 10)))
            .collect();
        even.push(webhook(&format!("{job}-done"), "job.completed", &job, None));
        let (a, b) = (h.clone(), h.clone());
        let ta = tokio::spawn(async move { a.deliver_each(&odd).await });
        let tb = tokio::spawn(async move { b.deliver_each(&even).await });
        // A third party watches the state while both write: it must only go up.
        let mut seen: Vec<(u8, Option<u8>)> = Vec::new();
        while !(ta.is_finished() && tb.is_finished()) {
            if let Some(state) = h.store.get("acme", &job).await.expect("get") {
                seen.push((state.fields.status.rank(), state.fields.progress));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        ta.await.expect("task a");
        tb.await.expect("task b");
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{job}: state moved backwards: {seen:?}"
        );

        let state = h.state(&job).await;
        assert_eq!(state.fields.status, JobStatus::Completed, "{job}");
        assert_eq!(state.fields.progress, Some(100));
        let timeline = h.timeline(&job).await;
        assert_eq!(timeline.len(), 10, "{job}: every event recorded exactly once");
        assert_eq!(
            state.transitions,
            applied_count(&timeline),
            "{job}: no lost or doubled update"
        );
    }
}

#[tokio::test]
async fn a_write_answered_500_after_it_committed_is_recognized_as_done_on_retry() {
    let h = harness().await;
    let events = [
        webhook("cr-1", "job.started", "job-crash", None),
        webhook("cr-2", "job.progress", "job-crash", Some(50)),
    ];
    h.deliver_each(&events[..1]).await;
    // The transaction commits, then the processor sees a 500; the in-process
    // retry meets its own write.
    h.probe.reset();
    h.probe.fail_after_execution("TransactWriteItems", Some("job-crash"), 1);
    let response = h.deliver(vec![events[1].clone()]).await;
    assert!(response.batch_item_failures.is_empty(), "done, not redelivered");
    assert_eq!(h.probe.total(&["TransactWriteItems"]), 2, "one write and one retry");
    // And a later redelivery of the same message changes nothing.
    h.deliver_each(&events[1..]).await;

    // The same events without a fault.
    let control: Vec<SqsMessage> = [("ok-1", None), ("ok-2", Some(50))]
        .into_iter()
        .map(|(id, p)| {
            webhook(
                id,
                if p.is_none() { "job.started" } else { "job.progress" },
                "job-nocrash",
                p,
            )
        })
        .collect();
    h.deliver_each(&control).await;

    let (crashed, clean) = (h.state("job-crash").await, h.state("job-nocrash").await);
    assert_eq!(crashed.fields, clean.fields);
    assert_eq!(crashed.transitions, clean.transitions);
    assert_eq!(crashed.transitions, 2);
    let timeline = h.timeline("job-crash").await;
    assert_eq!(timeline.len(), 2);
    assert!(timeline.iter().all(|e| e.outcome == Outcome::Applied), "{timeline:?}");
}

#[tokio::test]
async fn a_crash_after_the_apply_write_then_redelivery_ends_as_if_no_crash() {
    // No in-process retry: the message goes back to SQS, as when the
    // function dies between the write and its answer.
    let h = harness_with(
        8,
        Backoff {
            max_attempts: 1,
            ..TEST_BACKOFF
        },
    )
    .await;
    let events = [
        webhook("cx-1", "job.started", "job-crashx", None),
        webhook("cx-2", "job.progress", "job-crashx", Some(50)),
    ];
    h.deliver_each(&events[..1]).await;
    h.probe
        .fail_after_execution("TransactWriteItems", Some("job-crashx"), 1);
    let response = h.deliver(vec![events[1].clone()]).await;
    assert_eq!(response.batch_item_failures.len(), 1, "reported for redelivery");
    h.deliver_each(&events[1..]).await;

    let state = h.state("job-crashx").await;
    assert_eq!(
        (state.fields.status, state.fields.progress),
        (JobStatus::Processing, Some(50))
    );
    assert_eq!(state.transitions, 2);
    let timeline = h.timeline("job-crashx").await;
    assert_eq!(timeline.len(), 2);
    assert!(timeline.iter().all(|e| e.outcome == Outcome::Applied), "{timeline:?}");
}

#[tokio::test]
async fn a_crash_after_a_stale_event_is_recorded_then_redelivery_ends_as_if_no_crash() {
    let h = harness_with(
        8,
        Backoff {
            max_attempts: 1,
            ..TEST_BACKOFF
        },
    )
    .await;
    h.deliver_each(&[webhook("cs-2", "job.completed", "job-crash2", None)])
        .await;
    // The transaction recording the stale event commits, then fails.
    h.probe.fail_after_execution("TransactWriteItems", Some("cs-1"), 1);
    let stale = webhook("cs-1", "job.progress", "job-crash2", Some(10));
    assert_eq!(h.deliver(vec![stale.clone()]).await.batch_item_failures.len(), 1);
    h.deliver_each(&[stale]).await;

    let state = h.state("job-crash2").await;
    assert_eq!((state.fields.status, state.transitions), (JobStatus::Completed, 1));
    let timeline = outcomes(&h.timeline("job-crash2").await);
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline["cs-1"], Outcome::Stale);
}

#[tokio::test]
async fn a_retryable_failure_is_reported_for_that_message_only() {
    let h = harness().await;
    // More failures than the in-process retries absorb.
    h.probe
        .fail_after_execution("TransactWriteItems", Some("job-rt-2"), TEST_BACKOFF.max_attempts);
    let messages: Vec<SqsMessage> = (1..=3)
        .map(|i| webhook(&format!("rt-{i}"), "job.started", &format!("job-rt-{i}"), None))
        .collect();
    let failed_id = messages[1].message_id.clone().expect("id");
    let response = h.deliver(messages).await;
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failures, [failed_id.as_str()]);
    for job in ["job-rt-1", "job-rt-3"] {
        assert_eq!(h.state(job).await.fields.status, JobStatus::Processing);
    }
    assert!(
        sqs::drain(&h.sqs, &h.dlq_url, 1).await.is_empty(),
        "retryable is not poison"
    );
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_with_their_reason() {
    let h = harness().await;
    let unknown_source = webhook("ps-1", "job.started", "job-ps", None)
        .body
        .expect("body")
        .replace("\"source\":\"acme\"", "\"source\":\"nobody\"");
    let cases = [
        ("{\"v\":2}", "version 2"),
        ("[]", "field `v`"),
        ("{nope", "envelope is not valid JSON"),
        (unknown_source.as_str(), "unknown source"),
    ];
    let mut messages: Vec<SqsMessage> = cases.iter().map(|(body, _)| message(body)).collect();
    // As the receiver queues it: source and event id also as attributes.
    for (name, value) in [("source", "nobody"), ("event_id", "ps-1")] {
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some("String".into());
        attribute.string_value = Some(value.into());
        messages[3].message_attributes.insert(name.into(), attribute);
    }
    let (logs, _guard) = logs::capture();
    let response = h.deliver(messages).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "poison is acknowledged, not retried"
    );
    let logged = logs.with_message("permanent failure: message sent to the DLQ");
    assert_eq!(logged.len(), cases.len());
    let unknown = logged
        .iter()
        .find(|f| f["event_id"] == "ps-1")
        .expect("the event id from the attributes is logged");
    assert_eq!(unknown["source"], "nobody");
    assert!(unknown["reason"].as_str().is_some_and(|r| r.contains("unknown source")));
    let all_logs = serde_json::to_string(&logs.lines()).expect("json");
    assert!(!all_logs.contains("job.started"), "no payload in the logs: {all_logs}");
    let dead = sqs::drain(&h.sqs, &h.dlq_url, 2).await;
    assert_eq!(dead.len(), cases.len());
    for (body, reason) in cases {
        let m = dead
            .iter()
            .find(|m| m.body() == Some(body))
            .expect("original body kept");
        let got = m
            .message_attributes()
            .and_then(|a| a.get("reason"))
            .and_then(|r| r.string_value.clone());
        assert!(
            got.as_deref().is_some_and(|r| r.contains(reason)),
            "{got:?} should mention {reason}"
        );
    }
}

/// A store whose table does not exist: every write fails systemically.
async fn missing_table_store() -> Arc<dyn JobStore> {
    Arc::new(DynamoJobStore::new(
        aws_sdk_dynamodb::Client::new(&aws().await),
        "no-such-table",
        Duration::from_secs(60),
        Arc::new(SystemClock),
    ))
}

#[tokio::test]
async fn a_missing_table_fails_the_whole_invocation() {
    let mut h = harness().await;
    h.processor.store = missing_table_store().await;
    let result = h
        .processor
        .handle(batch(vec![webhook("mt-1", "job.started", "job-mt", None)]), deadline())
        .await;
    let error = result.expect_err("systemic failure is loud");
    assert!(error.to_string().contains("ResourceNotFound"), "{error}");
}

#[tokio::test]
async fn write_budget_is_at_most_two_requests_per_delivered_event_and_no_reads() {
    let h = harness().await;
    const JOBS: usize = 15;
    let mut delivered = Vec::new();
    for j in 0..JOBS {
        let job = format!("job-wb-{j}");
        let mut events = vec![webhook(&format!("{job}-s"), "job.started", &job, None)];
        events.extend([25, 50, 75].map(|p| webhook(&format!("{job}-{p}"), "job.progress", &job, Some(p))));
        events.push(webhook(&format!("{job}-c"), "job.completed", &job, None));
        // Reorder (terminal first for odd jobs) and duplicate two events.
        if j % 2 == 1 {
            events.rotate_right(1);
        }
        events.push(events[0].clone());
        events.push(events[2].clone());
        delivered.extend(events);
    }
    h.probe.reset();
    for chunk in delivered.chunks(10) {
        let response = h.deliver(chunk.to_vec()).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures
        );
    }
    let writes = h.probe.total(WRITE_OPERATIONS);
    let reads = h.probe.total(READ_OPERATIONS);
    let per_event = f64::from(writes) / delivered.len() as f64;
    println!(
        "write budget: {writes} write requests for {} delivered events (reordered, with duplicates) = {per_event:.2} per event",
        delivered.len()
    );
    // Budget 2.00 per event; Powertools-style idempotency costs 3 per new event.
    assert_eq!(reads, 0, "reads on the hot path: {:?}", h.probe.counts());
    assert!(
        writes as usize <= 2 * delivered.len(),
        "{per_event:.2} write requests per event: {:?}",
        h.probe.counts()
    );
    for j in 0..JOBS {
        assert_eq!(
            h.state(&format!("job-wb-{j}")).await.fields.status,
            JobStatus::Completed
        );
    }
}

#[tokio::test]
async fn in_order_events_cost_one_write_request_each_when_batches_hold_several_per_job() {
    let h = harness().await;
    const JOBS: usize = 30;
    const EVENTS: usize = 5;
    // Queue order is job by job, so a batch of ten holds two jobs' five
    // events each: same-job events share every batch.
    let mut queued = Vec::new();
    for j in 0..JOBS {
        let job = format!("job-io-{j}");
        queued.push(webhook(&format!("{job}-s"), "job.started", &job, None));
        for p in [25, 50, 75] {
            queued.push(webhook(&format!("{job}-{p}"), "job.progress", &job, Some(p)));
        }
        queued.push(webhook(&format!("{job}-c"), "job.completed", &job, None));
    }
    assert_eq!(queued.len(), JOBS * EVENTS);
    h.probe.reset();
    for chunk in queued.chunks(10) {
        let response = h.deliver(chunk.to_vec()).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let writes = h.probe.total(WRITE_OPERATIONS);
    let per_event = f64::from(writes) / queued.len() as f64;
    println!(
        "in-order write budget: {writes} write requests for {} in-order events = {per_event:.2} per event",
        queued.len()
    );
    assert!(
        per_event <= 1.1,
        "{writes} write requests for {} in-order events = {per_event:.2} per event",
        queued.len()
    );
    for j in 0..JOBS {
        let state = h.state(&format!("job-io-{j}")).await;
        assert_eq!(
            (state.fields.status, state.transitions),
            (JobStatus::Completed, EVENTS as u64)
        );
    }
}

#[tokio::test]
async fn poison_in_a_batch_that_fails_whole_reaches_the_dlq_once_after_the_retry() {
    let mut h = harness().await;
    let good_store = h.processor.store.clone();
    h.processor.store = missing_table_store().await;
    let messages = vec![
        message("not an envelope"),
        webhook("sy-1", "job.started", "job-sy", None),
    ];
    let first = h.processor.handle(batch(messages.clone()), deadline()).await;
    assert!(first.is_err(), "a missing table fails the invocation");
    assert!(
        sqs::drain(&h.sqs, &h.dlq_url, 1).await.is_empty(),
        "nothing dead-lettered by an invocation that failed whole"
    );

    // Lambda retries the whole batch once the table is back.
    h.processor.store = good_store;
    let second = h.deliver(messages).await;
    assert!(second.batch_item_failures.is_empty());
    let dead = sqs::drain(&h.sqs, &h.dlq_url, 2).await;
    assert_eq!(dead.len(), 1, "the poison is dead-lettered exactly once");
    assert_eq!(dead[0].body(), Some("not an envelope"));
    assert_eq!(h.state("job-sy").await.fields.status, JobStatus::Processing);
}

/// Differential test: on a real (moto) table, the store's condition and
/// update expressions decide every (stored state, event) pair exactly as the
/// pure rule in `domain/job.rs` does, and leave the fields it says.
#[test]
fn the_condition_expression_decides_exactly_as_the_domain_rule() {
    use jobhook::domain::job::{decide, Decision, JobFields};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let h = runtime.block_on(harness());
    let status = prop_oneof![
        Just(JobStatus::Submitted),
        Just(JobStatus::Processing),
        Just(JobStatus::Completed),
        Just(JobStatus::Failed),
        Just(JobStatus::Canceled),
    ];
    // Few distinct values, so equal and neighbouring progress meet often:
    // that is where a condition off by one would differ.
    let progress = proptest::option::weighted(0.85, prop_oneof![Just(0u8), Just(40), Just(41), Just(100), 0u8..=100]);
    let current = proptest::option::weighted(0.85, (status.clone(), progress.clone()));
    let cases = (current, status, progress);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&cases, |(current, status, progress)| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let job = format!("job-diff-{n}");
            let event = job_event("acme", &job, &format!("{job}-e"), status, progress);
            let result = runtime.block_on(async {
                if let Some((s, p)) = current {
                    put_state(&h, &job, s, p).await;
                }
                h.store.apply(&event).await.expect("apply")
            });
            let expected = match decide(current, &event) {
                Decision::Apply => Outcome::Applied,
                Decision::Stale => Outcome::Stale,
                Decision::Conflict => Outcome::Conflict,
            };
            prop_assert_eq!(
                result.outcome,
                expected,
                "{:?} then {:?} {:?}",
                current,
                status,
                progress
            );
            let state = runtime.block_on(h.state(&job));
            if expected == Outcome::Applied {
                prop_assert_eq!(state.fields, JobFields::from_event(&event));
            } else {
                let (s, p) = current.expect("only a stored job can refuse an event");
                prop_assert_eq!((state.fields.status, state.fields.progress), (s, p));
            }
            Ok(())
        })
        .expect("the store and the domain rule agree");
}

/// Stores a job at `status`/`progress` directly, as earlier events left it.
async fn put_state(h: &Harness, job_id: &str, status: JobStatus, progress: Option<u8>) {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let mut item = std::collections::HashMap::from([
        (
            "pk".to_owned(),
            V::S(jobhook::adapters::dynamodb::job_pk("acme", job_id)),
        ),
        ("sk".to_owned(), V::S(jobhook::adapters::dynamodb::STATE_SK.into())),
        ("source".to_owned(), V::S("acme".into())),
        ("job_id".to_owned(), V::S(job_id.into())),
        ("status".to_owned(), V::S(status.as_str().into())),
        ("rank".to_owned(), V::N(status.rank().to_string())),
        ("transitions".to_owned(), V::N("1".into())),
    ]);
    if let Some(p) = progress {
        item.insert("progress".into(), V::N(p.to_string()));
    }
    h.ddb
        .put_item()
        .table_name(h.store.table())
        .set_item(Some(item))
        .send()
        .await
        .expect("put state");
}

#[tokio::test]
async fn a_canceled_job_ends_canceled_and_a_late_other_ending_is_a_conflict() {
    let h = harness().await;
    h.deliver_each(&[
        webhook("cn-1", "job.started", "job-cn", None),
        webhook("cn-2", "job.canceled", "job-cn", None),
        webhook("cn-3", "job.completed", "job-cn", None),
        webhook("cn-0", "job.progress", "job-cn", Some(50)),
    ])
    .await;
    let state = h.state("job-cn").await;
    assert_eq!(state.fields.status, JobStatus::Canceled);
    assert_eq!((state.fields.output_url, state.transitions), (None, 2));
    let timeline = outcomes(&h.timeline("job-cn").await);
    assert_eq!(
        timeline["cn-3"],
        Outcome::Conflict,
        "canceled is terminal, and not completed"
    );
    assert_eq!(timeline["cn-0"], Outcome::Stale);
}

/// A Replicate delivery as the receiver queues it: the prediction object as
/// the body, the identity in `webhook-id`.
fn replicate_webhook(webhook_id: &str, fixture_name: &str) -> SqsMessage {
    let body = fixture(&format!("providers/replicate/{fixture_name}"));
    queued("rep", "standard-webhooks", Some(webhook_id), &body)
}

#[tokio::test]
async fn replicate_predictions_in_any_order_end_as_the_last_status_once() {
    let h = harness().await;
    // The list-output prediction's lifecycle, its end first, one redelivered.
    h.deliver_each(&[
        replicate_webhook("msg_r3", "webhook-succeeded-list-output.json"),
        replicate_webhook("msg_r2", "webhook-processing-no-output-key.json"),
        replicate_webhook("msg_r3", "webhook-succeeded-list-output.json"),
    ])
    .await;
    let state = h
        .store
        .get("rep", "rr4bt2k6k9rme0cg3s1vq6wqx8")
        .await
        .expect("get")
        .expect("job");
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://replicate.delivery/xezq/abc123/out-0.webp")
    );
    assert_eq!(
        state.transitions, 1,
        "the late processing webhook is stale, the redelivery a duplicate"
    );
    let timeline = h
        .store
        .timeline("rep", "rr4bt2k6k9rme0cg3s1vq6wqx8")
        .await
        .expect("timeline");
    assert_eq!(timeline.len(), 2);

    h.deliver_each(&[replicate_webhook("msg_c1", "webhook-canceled.json")])
        .await;
    let canceled = h
        .store
        .get("rep", "a1q8w3n5gdrme0cg3s2tq1v6zr")
        .await
        .expect("get")
        .expect("job");
    assert_eq!(canceled.fields.status, JobStatus::Canceled);
}

/// A Mux delivery as the receiver queues it (stripe-shaped scheme: no
/// delivery id, so the envelope's id is the body's hash).
fn mux_webhook(fixture_name: &str) -> SqsMessage {
    queued(
        "muxv",
        "stripe",
        None,
        &fixture(&format!("providers/mux/{fixture_name}")),
    )
}

#[tokio::test]
async fn mux_asset_events_apply_by_event_id_and_other_events_are_acknowledged_not_dead_lettered() {
    let h = harness().await;
    let response = h
        .deliver(vec![
            mux_webhook("webhook-asset-ready.json"),
            mux_webhook("webhook-upload-created.json"),
            mux_webhook("webhook-asset-created.json"),
            mux_webhook("webhook-asset-ready.json"),
        ])
        .await;
    assert!(response.batch_item_failures.is_empty());
    let asset = "lJ4bGGsp7ZlPf02nMg015W02iHQLN9XnuuLRBsPS00xqd68";
    let state = h.store.get("muxv", asset).await.expect("get").expect("job");
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://stream.mux.com/vAFLI2eKFFicXX00iHBS2vqt5JjJGg5HV6fQ4Xijgt1I.m3u8")
    );
    let timeline = outcomes(&h.store.timeline("muxv", asset).await.expect("timeline"));
    assert_eq!(
        timeline.len(),
        2,
        "ready once (by the event's uuid), created stale: {timeline:?}"
    );
    assert_eq!(timeline["6b2a47a9-21c1-4e61-9f4b-7c8d0de2b6a1"], Outcome::Applied);
    assert!(
        sqs::drain(&h.sqs, &h.dlq_url, 1).await.is_empty(),
        "an upload event is not poison"
    );
}

const TRACK_QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:jobhook-track";

fn from_tracking_queue(body: &str) -> SqsMessage {
    let mut m = message(body);
    m.event_source_arn = Some(TRACK_QUEUE_ARN.into());
    m
}

/// What an application in any language sends to the tracking queue is
/// recorded once, and the job is then due for a poll; a request that is
/// malformed or names an unknown source goes to the DLQ with its reason.
/// The tracking queue takes nothing else: an envelope sent there is never
/// applied, since only the receiver, after verifying, may queue one.
#[tokio::test]
async fn the_tracking_queue_s_requests_track_jobs_and_nothing_else_is_taken_from_it() {
    let mut h = harness().await;
    h.processor.track_queue_arn = Some(TRACK_QUEUE_ARN.into());
    let forged = webhook("tq-1", "job.completed", "job-forged", Some(100))
        .body
        .expect("body");
    let cases = [
        (r#"{"source": "acme", "job_id": "job-py"}"#, None),
        (r#"{"source": "acme", "job_id": "job-py"}"#, None),
        (r#"{"source": "nobody", "job_id": "job-x"}"#, Some("unknown source")),
        (r#"{"source": "acme"}"#, Some("\"job_id\" is required")),
        (forged.as_str(), Some("not a track request")),
    ];
    let messages: Vec<SqsMessage> = cases.iter().map(|(body, _)| from_tracking_queue(body)).collect();
    assert!(h.deliver(messages).await.batch_item_failures.is_empty());
    let state = h.state("job-py").await;
    assert_eq!((state.fields.status, state.transitions), (JobStatus::Submitted, 0));
    let later = jobhook::clock::unix_ms(time::OffsetDateTime::now_utc()) + 86_400_000;
    let due = jobhook::ports::OpenJobIndex::due_open_jobs(&h.store, "acme", later, 100)
        .await
        .expect("due");
    assert!(due.iter().any(|j| j.job_id == "job-py"), "due for a poll: {due:?}");
    assert!(
        h.store.get("acme", "job-forged").await.expect("get").is_none(),
        "the envelope was not applied"
    );
    let dead = sqs::drain(&h.sqs, &h.dlq_url, 2).await;
    assert_eq!(dead.len(), 3);
    for (body, reason) in cases.iter().filter_map(|(b, r)| r.map(|r| (b, r))) {
        let m = dead.iter().find(|m| m.body() == Some(*body)).expect("kept");
        let got = m
            .message_attributes()
            .and_then(|a| a.get("reason"))
            .and_then(|r| r.string_value.clone());
        assert!(
            got.as_deref().is_some_and(|r| r.contains(reason)),
            "{got:?} should mention {reason}"
        );
    }
    // A track request redriven from the DLQ to the events queue still tracks.
    assert!(h
        .deliver(vec![message(r#"{"source": "acme", "job_id": "job-redriven"}"#)])
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(h.state("job-redriven").await.fields.status, JobStatus::Submitted);
}

/// A job's end queued before its start, in one batch (a provider's retry,
/// or SQS's best-effort order): the batch takes the start first, so each
/// event moves the job forward at one write, where in arrival order the end
/// costs two (the job is not stored yet) and the start two more (stale).
#[tokio::test]
async fn a_job_s_events_reversed_within_a_batch_cost_one_write_each() {
    let h = harness().await;
    const JOBS: usize = 50;
    let mut queued = Vec::new();
    for j in 0..JOBS {
        let job = format!("job-rev-{j}");
        queued.push(webhook(&format!("{job}-c"), "job.completed", &job, None));
        queued.push(webhook(&format!("{job}-s"), "job.started", &job, None));
    }
    h.probe.reset();
    for chunk in queued.chunks(10) {
        assert!(h.deliver(chunk.to_vec()).await.batch_item_failures.is_empty());
    }
    let writes = h.probe.total(WRITE_OPERATIONS);
    println!(
        "reversed write budget: {writes} write requests for {} events of jobs reversed within a batch = {:.2} per event",
        queued.len(),
        f64::from(writes) / queued.len() as f64
    );
    assert_eq!(writes as usize, queued.len(), "{:?}", h.probe.counts());
    for j in 0..JOBS {
        let state = h.state(&format!("job-rev-{j}")).await;
        assert_eq!((state.fields.status, state.transitions), (JobStatus::Completed, 2));
    }
}
