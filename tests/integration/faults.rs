//! jobhook against moto behind the fault proxy (`jobhook_dev::faults`), one
//! AWS failure at a time: what DynamoDB and SQS answer under contention and
//! failure, and what jobhook makes of each. Faults are scripted, so each test
//! meets exactly the failure it names.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::file::FileSources;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::{FixedClock, SystemClock};
use jobhook::domain::job::{JobState, JobStatus, Outcome, TimelineEntry};
use jobhook::domain::signature::sign;
use jobhook::ports::{JobQuery as _, JobStore};
use jobhook::retry::Backoff;
use jobhook::sources_cache::SourcesCache;
use jobhook::{Envelope, Sources};
use jobhook_dev::faults::{self, Fault, FaultPlan, FaultProxy};
use jobhook_tests::messages::{batch, message, webhook};
use jobhook_tests::{aws, deadline, dynamodb, fixture, fixture_path, job_event, sqs, TEST_BACKOFF};
use lambda_http::http::StatusCode;
use lambda_http::Body;
use processor::Processor;
use receiver::Receiver;

/// The SDK's own retries, as deployed (standard mode, three attempts), with
/// short waits for tests.
fn sdk_retries() -> RetryConfig {
    RetryConfig::standard().with_initial_backoff(Duration::from_millis(5))
}

struct Faulty {
    proxy: FaultProxy,
    config: aws_config::SdkConfig,
    _task: tokio::task::JoinHandle<()>,
}

/// SDK settings that reach moto through a fresh fault proxy, which refuses
/// real contention and injects nothing unless scripted.
async fn behind_proxy() -> Faulty {
    aws().await;
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("moto endpoint");
    let (url, proxy, task) = faults::start(&moto, FaultPlan::contention_only(), 1)
        .await
        .expect("fault proxy");
    let config = jobhook::bootstrap::aws_config_loader().endpoint_url(url).load().await;
    Faulty {
        proxy,
        config,
        _task: task,
    }
}

impl Faulty {
    fn dynamodb(&self, retry: RetryConfig) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.config)
            .retry_config(retry)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    fn sqs(&self, retry: RetryConfig) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.config)
            .retry_config(retry)
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }
}

struct Pipeline {
    faulty: Faulty,
    store: DynamoJobStore,
    processor: Processor,
    /// Reaches moto directly, to look without meeting faults.
    direct_sqs: aws_sdk_sqs::Client,
    dlq_url: String,
}

async fn pipeline(sdk_retry: RetryConfig, backoff: Backoff) -> Pipeline {
    let faulty = behind_proxy().await;
    let direct = aws().await;
    let ddb = faulty.dynamodb(sdk_retry.clone());
    let table = dynamodb::create_table(&aws_sdk_dynamodb::Client::new(&direct), "faults").await;
    let direct_sqs = aws_sdk_sqs::Client::new(&direct);
    let dlq_url = sqs::create_events_dlq(&direct_sqs, "faults-dlq").await;
    let store = DynamoJobStore::new(ddb, table, Duration::from_secs(86_400), Arc::new(SystemClock));
    let processor = Processor {
        sources: SourcesCache::new(
            Arc::new(FileSources::new(fixture_path("sources.fixtures.json"))),
            Duration::from_secs(300),
        ),
        store: Arc::new(store.clone()),
        dead_letters: Arc::new(SqsQueue::new(faulty.sqs(sdk_retry), &dlq_url)),
        poller: Arc::new(jobhook::adapters::provider_http::HttpJobPoller::new(
            Duration::from_secs(2),
        )),
        concurrency: 8,
        backoff,
        archiver: jobhook::archive::Archiver::inline_only(),
        track_queue_arn: None,
    };
    Pipeline {
        faulty,
        store,
        processor,
        direct_sqs,
        dlq_url,
    }
}

impl Pipeline {
    async fn deliver_ok(&self, messages: Vec<aws_lambda_events::event::sqs::SqsMessage>) {
        let response = self
            .processor
            .handle(batch(messages), deadline())
            .await
            .expect("no systemic failure");
        assert!(
            response.batch_item_failures.is_empty(),
            "handled in process, nothing back to SQS: {:?}",
            response.batch_item_failures
        );
    }

    /// Delivers the batch, then what it reported failed, as SQS redelivers
    /// after the visibility timeout, until nothing fails.
    async fn deliver_until_done(&self, mut messages: Vec<aws_lambda_events::event::sqs::SqsMessage>) {
        for _ in 0..20 {
            let response = self
                .processor
                .handle(batch(messages.clone()), deadline())
                .await
                .expect("no systemic failure");
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            if failed.is_empty() {
                return;
            }
            messages.retain(|m| failed.contains(&m.message_id.as_deref().unwrap_or_default()));
        }
        panic!("messages kept failing: {messages:?}");
    }

    async fn state(&self, job_id: &str) -> JobState {
        self.store.get("acme", job_id).await.expect("get").expect("job exists")
    }

    async fn timeline(&self, job_id: &str) -> Vec<TimelineEntry> {
        self.store.timeline("acme", job_id).await.expect("timeline")
    }

    async fn assert_dlq_empty(&self) {
        assert!(
            sqs::drain(&self.direct_sqs, &self.dlq_url, 1).await.is_empty(),
            "a transient AWS failure is never poison"
        );
    }

    fn injected(&self, fault: Fault) -> u64 {
        self.faulty.proxy.stats().of(fault)
    }
}

/// The job went through `events` (ids) once each: one timeline entry each,
/// one transition per applied entry.
async fn assert_applied_once(p: &Pipeline, job_id: &str, ids: &[&str]) {
    let state = p.state(job_id).await;
    let timeline = p.timeline(job_id).await;
    let mut seen: Vec<&str> = timeline.iter().map(|e| e.event_id.as_str()).collect();
    seen.sort_unstable();
    let mut expected = ids.to_vec();
    expected.sort_unstable();
    assert_eq!(seen, expected, "{job_id}: one timeline entry per event");
    let applied = timeline.iter().filter(|e| e.outcome == Outcome::Applied).count() as u64;
    assert_eq!(state.transitions, applied, "{job_id}: no doubled or lost transition");
}

#[tokio::test]
async fn a_transaction_conflict_is_retried_and_the_event_applied_once() {
    let p = pipeline(RetryConfig::disabled(), TEST_BACKOFF).await;
    p.deliver_ok(vec![webhook("tc-1", "job.started", "job-tc", None)]).await;
    p.faulty.proxy.script(Fault::TransactionConflict, Some("job-tc"), 3);
    p.deliver_ok(vec![webhook("tc-2", "job.progress", "job-tc", Some(40))])
        .await;

    assert_eq!(p.injected(Fault::TransactionConflict), 3);
    let state = p.state("job-tc").await;
    assert_eq!(
        (state.fields.status, state.fields.progress),
        (JobStatus::Processing, Some(40))
    );
    assert_applied_once(&p, "job-tc", &["tc-1", "tc-2"]).await;
    p.assert_dlq_empty().await;
}

#[tokio::test]
async fn a_conflict_exception_on_a_plain_write_is_retried_not_dead_lettered() {
    let p = pipeline(RetryConfig::disabled(), TEST_BACKOFF).await;
    // A track request is recorded with a plain PutItem (every event's apply
    // is a transaction), which meets an ongoing transaction twice.
    p.faulty.proxy.script(Fault::ConflictException, Some("job-ce"), 2);
    p.deliver_ok(vec![message(r#"{"source": "acme", "job_id": "job-ce"}"#)])
        .await;

    assert_eq!(p.injected(Fault::ConflictException), 2);
    let state = p.state("job-ce").await;
    assert_eq!((state.fields.status, state.transitions), (JobStatus::Submitted, 0));
    p.deliver_ok(vec![webhook("ce-1", "job.completed", "job-ce", None)])
        .await;
    assert_applied_once(&p, "job-ce", &["ce-1"]).await;
    p.assert_dlq_empty().await;
}

#[tokio::test]
async fn a_throttled_write_is_retried_with_growing_waits() {
    let backoff = Backoff {
        first: Duration::from_millis(20),
        ..TEST_BACKOFF
    };
    let p = pipeline(RetryConfig::disabled(), backoff).await;
    p.faulty.proxy.script(Fault::Throttling, Some("job-th"), 4);
    let began = std::time::Instant::now();
    p.deliver_ok(vec![webhook("th-1", "job.started", "job-th", None)]).await;
    let elapsed = began.elapsed();

    assert_eq!(p.injected(Fault::Throttling), 4);
    // Each wait is at least half its cap: 10 + 20 + 40 + 80 ms.
    let floor: Duration = (1..=4).map(|a| backoff.cap(a) / 2).sum();
    assert!(
        elapsed >= floor,
        "retried after {elapsed:?}, sooner than the backoff allows ({floor:?})"
    );
    assert_applied_once(&p, "job-th", &["th-1"]).await;
}

#[tokio::test]
async fn a_500_before_the_write_is_retried_by_the_sdk_and_applied_once() {
    let p = pipeline(sdk_retries(), TEST_BACKOFF).await;
    p.faulty.proxy.script(Fault::InternalError, Some("job-ie"), 2);
    p.deliver_ok(vec![webhook("ie-1", "job.started", "job-ie", None)]).await;
    assert_eq!(p.injected(Fault::InternalError), 2);
    assert_applied_once(&p, "job-ie", &["ie-1"]).await;
}

#[tokio::test]
async fn an_ambiguous_transaction_is_recognized_as_done_by_its_request_token() {
    let p = pipeline(sdk_retries(), TEST_BACKOFF).await;
    p.faulty.proxy.script(Fault::AmbiguousWrite, Some("job-at"), 1);
    // Applied, answered 500; the SDK retries with the same
    // ClientRequestToken and DynamoDB answers success without reapplying.
    let result = p
        .store
        .apply(&job_event("acme", "job-at", "at-1", JobStatus::Processing, None))
        .await
        .expect("apply");
    assert_eq!(result.outcome, Outcome::Applied, "the caller learns the truth");
    let stats = p.faulty.proxy.stats();
    assert_eq!((stats.of(Fault::AmbiguousWrite), stats.replayed_transactions), (1, 1));
    assert_applied_once(&p, "job-at", &["at-1"]).await;
}

#[tokio::test]
async fn an_ambiguous_write_retried_afresh_is_recognized_as_already_done() {
    // No SDK retry: jobhook's own retry sends a new request (a new token),
    // which meets its own earlier write.
    let p = pipeline(RetryConfig::disabled(), TEST_BACKOFF).await;
    p.deliver_ok(vec![webhook("aw-3", "job.completed", "job-aw", None)])
        .await;
    p.faulty.proxy.script(Fault::AmbiguousWrite, Some("job-aw2"), 1);
    p.faulty.proxy.script(Fault::AmbiguousWrite, Some("aw-1"), 1);
    p.deliver_ok(vec![
        // The applying transaction…
        webhook("aw2-1", "job.started", "job-aw2", None),
        // …and a stale event's timeline put.
        webhook("aw-1", "job.progress", "job-aw", Some(10)),
    ])
    .await;

    assert_eq!(p.injected(Fault::AmbiguousWrite), 2);
    assert_applied_once(&p, "job-aw2", &["aw2-1"]).await;
    assert_eq!(p.state("job-aw2").await.transitions, 1);
    assert_applied_once(&p, "job-aw", &["aw-1", "aw-3"]).await;
    let stale = p.timeline("job-aw").await;
    assert_eq!(
        stale.iter().find(|e| e.event_id == "aw-1").map(|e| e.outcome),
        Some(Outcome::Stale)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_on_one_job_meet_real_conflicts_and_lose_nothing_on_redelivery() {
    let p = Arc::new(pipeline(RetryConfig::disabled(), TEST_BACKOFF).await);
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        let job = format!("job-cb-{round}");
        // Four invocations at once, as four pollers of one queue would run.
        let batches: Vec<Vec<_>> = (0..4)
            .map(|b| {
                (1..=5)
                    .map(|k| {
                        let p = (b * 5 + k) as u8 * 4;
                        webhook(&format!("{job}-{p}"), "job.progress", &job, Some(p))
                    })
                    .collect()
            })
            .collect();
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|messages| {
                let p = p.clone();
                tokio::spawn(async move { p.deliver_until_done(messages).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("batch");
        }
        let state = p.state(&job).await;
        assert_eq!(state.fields.progress, Some(80), "{job}: the highest progress wins");
        let ids: Vec<String> = (1..=20).map(|i| format!("{job}-{}", i * 4)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_applied_once(&p, &job, &ids).await;
    }
    p.assert_dlq_empty().await;
}

// SQS: the receiver's SendMessage.

struct Front {
    faulty: Faulty,
    receiver: Receiver,
    direct_sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// The fixtures' signing instant (see the receiver tests).
const SIGNED_AT: i64 = 1649367553;

async fn front() -> Front {
    let faulty = behind_proxy().await;
    let direct_sqs = aws_sdk_sqs::Client::new(&aws().await);
    let queue_url = sqs::create_events_queue(&direct_sqs, "faults-front").await;
    let receiver = Receiver {
        sources: SourcesCache::new(
            Arc::new(FileSources::new(fixture_path("sources.fixtures.json"))),
            Duration::from_secs(300),
        ),
        key_sets: jobhook_tests::key_sets(),
        queue: Arc::new(SqsQueue::new(faulty.sqs(sdk_retries()), &queue_url)),
        clock: Arc::new(FixedClock::at_unix(SIGNED_AT + 5)),
        max_body_bytes: 262_144,
        limits: Default::default(),
    };
    Front {
        faulty,
        receiver,
        direct_sqs,
        queue_url,
    }
}

impl Front {
    async fn post(&self, webhook_id: &str, body: &str) -> StatusCode {
        let source = Sources::parse(&fixture("sources.fixtures.json"))
            .expect("sources")
            .get("acme")
            .expect("acme")
            .clone();
        let mut request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/acme");
        for (name, value) in sign::headers_for(&source, webhook_id, SIGNED_AT, body.as_bytes()) {
            request = request.header(name, value);
        }
        let request = request.body(Body::Text(body.to_owned())).expect("request");
        self.receiver.handle(request).await.status()
    }

    async fn queued(&self) -> Vec<aws_sdk_sqs::types::Message> {
        sqs::drain(&self.direct_sqs, &self.queue_url, 1).await
    }
}

fn generic_body(id: &str, job_id: &str) -> String {
    serde_json::json!({"id": id, "type": "job.started", "data": {"job_id": job_id}}).to_string()
}

#[tokio::test]
async fn a_send_answered_500_is_retried_by_the_sdk_and_queued_once() {
    let f = front().await;
    f.faulty.proxy.script(Fault::SendFailure, None, 2);
    assert_eq!(
        f.post("msg_sf_1", &generic_body("evt_sf", "job-sf")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(f.faulty.proxy.stats().of(Fault::SendFailure), 2);
    assert_eq!(f.queued().await.len(), 1);
}

#[tokio::test]
async fn sqs_failing_longer_than_the_sdk_retries_is_answered_503_and_a_retry_gets_through() {
    let f = front().await;
    f.faulty.proxy.script(Fault::SendFailure, None, 3);
    assert_eq!(
        f.post("msg_sf_2", &generic_body("evt_sf2", "job-sf2")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporary: the provider should retry"
    );
    assert!(f.queued().await.is_empty());
    assert_eq!(
        f.post("msg_sf_2", &generic_body("evt_sf2", "job-sf2")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(f.queued().await.len(), 1);
}

#[tokio::test]
async fn an_ambiguous_send_queues_the_delivery_twice_and_it_is_applied_once() {
    let f = front().await;
    f.faulty.proxy.script(Fault::AmbiguousSend, None, 1);
    assert_eq!(
        f.post("msg_as_1", &generic_body("evt_as", "job-as")).await,
        StatusCode::ACCEPTED
    );
    let queued = f.queued().await;
    assert_eq!(queued.len(), 2, "queued, answered 500, sent again by the SDK");
    let ids: Vec<String> = queued
        .iter()
        .map(|m| Envelope::from_json(m.body().expect("body")).expect("envelope").event_id)
        .collect();
    assert_eq!(ids, ["msg_as_1", "msg_as_1"]);

    let p = pipeline(RetryConfig::disabled(), TEST_BACKOFF).await;
    let messages = queued
        .iter()
        .map(|m| jobhook_tests::messages::message(m.body().expect("body")))
        .collect();
    p.deliver_ok(messages).await;
    assert_applied_once(&p, "job-as", &["msg_as_1"]).await;
    assert_eq!(p.state("job-as").await.transitions, 1);
}

#[tokio::test]
async fn the_fault_proxy_s_ambiguous_delete_deletes_yet_answers_500() {
    // A check of the test tool, not of jobhook: the redelivery test above
    // relies on the proxy applying the delete before it fails, as AWS may.
    let faulty = behind_proxy().await;
    let direct_sqs = aws_sdk_sqs::Client::new(&aws().await);
    let queue_url = sqs::create_events_queue(&direct_sqs, "faults-delete").await;
    direct_sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body("{}")
        .send()
        .await
        .expect("send");
    let received = sqs::drain(&direct_sqs, &queue_url, 1).await;
    faulty.proxy.script(Fault::AmbiguousDelete, None, 1);
    let result = faulty
        .sqs(RetryConfig::disabled())
        .delete_message_batch()
        .queue_url(&queue_url)
        .set_entries(Some(jobhook::adapters::sqs::delete_entries(&received)))
        .send()
        .await;
    assert!(result.is_err(), "the caller sees a failure");
    direct_sqs
        .change_message_visibility()
        .queue_url(&queue_url)
        .receipt_handle(received[0].receipt_handle().expect("handle"))
        .visibility_timeout(0)
        .send()
        .await
        .ok();
    assert!(
        sqs::drain(&direct_sqs, &queue_url, 1).await.is_empty(),
        "but it was deleted"
    );
}
