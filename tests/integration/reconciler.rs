use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::clock::{Clock, ManualClock};
use jobhook::domain::job::{JobStatus, Origin, Outcome, TimelineEntry};
use jobhook::ports::{JobQuery as _, JobStore, OpenJob, OpenJobIndex, PortError};
use jobhook::Sources;
use jobhook_tests::provider::{job, Answer, Request, TestProvider};
use jobhook_tests::{aws, dynamodb, job_event};
use reconciler::{RateLimitedSource, ReconcileSettings, Reconciler, RunSummary};
use serde_json::json;

const TOKEN: &str = "test-api-token";
const T0: i64 = 1_778_673_600;
const STALE_AFTER: Duration = Duration::from_secs(600);

const POLL_TIMEOUT: Duration = Duration::from_secs(2);

struct Harness {
    clock: Arc<ManualClock>,
    store: Arc<DynamoJobStore>,
    provider: TestProvider,
    sources: Sources,
    reconciler: Reconciler,
    table: String,
}

async fn harness_with(settings: ReconcileSettings, source_names: &[&str]) -> Harness {
    let config = aws().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&client, "recon").await;
    let clock = Arc::new(ManualClock::at_unix(T0));
    let store = Arc::new(DynamoJobStore::new(
        client,
        &table,
        Duration::from_secs(86_400),
        clock.clone(),
    ));
    let provider = TestProvider::start(TOKEN).await;
    let mut doc = json!({"sources": {}});
    for name in source_names {
        doc["sources"][*name] = json!({"scheme": "github", "secrets": ["s"],
            "api": {"base_url": provider.base_url, "token": TOKEN}});
    }
    let sources = Sources::parse(&doc.to_string()).expect("sources");
    let reconciler = Reconciler {
        store: store.clone(),
        index: store.clone(),
        // Well above any answer the tests expect, even on a loaded machine,
        // and well below the one answer meant to time out.
        poller: Arc::new(HttpJobPoller::new(POLL_TIMEOUT)),
        clock: clock.clone(),
        settings,
    };
    Harness {
        clock,
        store,
        provider,
        sources,
        reconciler,
        table,
    }
}

async fn harness() -> Harness {
    harness_with(ReconcileSettings::default(), &["acme"]).await
}

impl Harness {
    async fn webhook(&self, job_id: &str, id: &str, status: JobStatus, progress: Option<u8>) {
        self.store
            .apply(&job_event("acme", job_id, id, status, progress))
            .await
            .expect("apply");
    }

    async fn run(&self) -> RunSummary {
        self.reconciler
            .run(&self.sources, jobhook_tests::deadline())
            .await
            .expect("run")
    }

    async fn status(&self, job_id: &str) -> (JobStatus, Option<u8>) {
        let s = self.store.get("acme", job_id).await.expect("get").expect("job");
        (s.fields.status, s.fields.progress)
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

#[tokio::test]
async fn a_stale_processing_job_the_provider_completed_ends_completed() {
    let h = harness().await;
    h.webhook("job-1", "w1", JobStatus::Processing, Some(40)).await;
    h.provider
        .answer("job-1", Answer::Job(job("job-1", "completed", Some(100))));
    h.advance(601);
    let summary = h.run().await;
    assert_eq!(h.provider.calls(), ["job-1"]);
    assert_eq!(
        (
            summary.candidates,
            summary.polled,
            summary.advanced,
            summary.recovered_completed
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(summary.missed_webhooks_recovered(), 1);

    let state = h.store.get("acme", "job-1").await.expect("get").expect("job");
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(
        state.terminal_origin,
        Some(Origin::Poll),
        "webhook coverage: a poll got there first"
    );
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://cdn.example.com/job-1.mp4")
    );
    let timeline = h.store.timeline("acme", "job-1").await.expect("timeline");
    let poll = timeline.iter().find(|e| e.origin == Origin::Poll).expect("poll entry");
    assert_eq!((poll.outcome, poll.kind.as_str()), (Outcome::Applied, "poll.completed"));

    // Terminal now: never polled again.
    h.advance(3600);
    assert_eq!(h.run().await.candidates, 0);
    assert_eq!(h.provider.calls().len(), 1);
}

#[tokio::test]
async fn fresh_and_terminal_jobs_are_not_polled() {
    let h = harness().await;
    h.webhook("done", "d1", JobStatus::Completed, None).await;
    h.advance(500);
    h.webhook("fresh", "f1", JobStatus::Processing, Some(10)).await;
    h.advance(200); // "done" is 700 s old but terminal; "fresh" is 200 s old.
    for id in ["done", "fresh"] {
        h.provider.answer(id, Answer::Job(job(id, "completed", None)));
    }
    let summary = h.run().await;
    assert_eq!(summary.candidates, 0);
    assert!(h.provider.calls().is_empty());
}

#[tokio::test]
async fn a_job_polled_recently_is_not_polled_again_before_the_interval() {
    let h = harness().await;
    h.webhook("slowjob", "s1", JobStatus::Processing, Some(40)).await;
    // The provider has nothing newer: the poll changes nothing.
    h.provider
        .answer("slowjob", Answer::Job(job("slowjob", "processing", Some(40))));
    h.advance(601);
    assert_eq!(h.run().await.unchanged, 1);
    h.advance(299);
    assert_eq!(h.run().await.candidates, 0, "polled 299 s ago, interval is 300 s");
    h.advance(2);
    assert_eq!(h.run().await.polled, 1);
    assert_eq!(h.provider.calls().len(), 2);
    assert_eq!(h.status("slowjob").await, (JobStatus::Processing, Some(40)));
}

#[tokio::test]
async fn a_429_stops_polling_that_source_for_the_run() {
    let settings = ReconcileSettings {
        poll_concurrency: 1,
        ..Default::default()
    };
    let h = harness_with(settings, &["busy", "calm"]).await;
    for source in ["busy", "calm"] {
        for i in 1..=3 {
            let id = format!("{source}-{i}");
            h.store
                .apply(&job_event(source, &id, &format!("w-{id}"), JobStatus::Processing, None))
                .await
                .expect("apply");
            let answer = if source == "busy" {
                Answer::RateLimited(120)
            } else {
                Answer::Job(job(&id, "completed", None))
            };
            h.provider.answer(&id, answer);
        }
    }
    h.advance(601);
    let summary = h.run().await;
    let busy_calls = h.provider.calls().iter().filter(|c| c.starts_with("busy")).count();
    assert_eq!(busy_calls, 1, "one 429, then no more polls of that source");
    assert_eq!(summary.skipped_rate_limited, 2);
    assert_eq!(summary.recovered_completed, 3, "the other source is polled as usual");
    assert_eq!(
        summary.rate_limited_sources,
        [RateLimitedSource {
            source: "busy".into(),
            retry_after_secs: Some(120)
        }]
    );
}

#[tokio::test]
async fn timeouts_5xx_and_404_are_counted_and_leave_the_state_alone() {
    let h = harness().await;
    for id in ["slow", "broken", "unknown"] {
        h.webhook(id, &format!("w-{id}"), JobStatus::Processing, Some(20)).await;
    }
    h.provider.answer(
        "slow",
        Answer::Slow(POLL_TIMEOUT * 3, Box::new(Answer::Job(job("slow", "completed", None)))),
    );
    h.provider.answer("broken", Answer::Status(503));
    // "unknown" has no answer: the provider says 404.
    h.advance(601);
    let summary = h.run().await;
    assert_eq!(
        (summary.polled, summary.errors, summary.not_found, summary.advanced),
        (3, 2, 1, 0)
    );
    for id in ["slow", "broken", "unknown"] {
        assert_eq!(h.status(id).await, (JobStatus::Processing, Some(20)), "{id}");
    }
    let not_found = |timeline: &[TimelineEntry]| -> Vec<TimelineEntry> {
        timeline
            .iter()
            .filter(|e| e.outcome == Outcome::NotFound && e.origin == Origin::Poll)
            .cloned()
            .collect()
    };
    let timeline = h.store.timeline("acme", "unknown").await.expect("timeline");
    let first = not_found(&timeline);
    assert_eq!(first.len(), 1, "{timeline:?}");
    assert_eq!(first[0].repeats, Some(1));
    // Errors are retried on the next run; the 404 waits for the poll interval.
    h.advance(60);
    let again = h.run().await;
    assert_eq!(again.candidates, 2);
    // Polled again after the interval: still one entry, now counting two.
    h.advance(600);
    assert_eq!(h.run().await.not_found, 1);
    let timeline = h.store.timeline("acme", "unknown").await.expect("timeline");
    let second = not_found(&timeline);
    assert_eq!(
        second.len(),
        1,
        "one entry however often the provider says 404: {timeline:?}"
    );
    assert_eq!(second[0].repeats, Some(2));
    assert_eq!(second[0].received_at, first[0].received_at, "first 404 kept");
    assert!(second[0].last_received_at > first[0].last_received_at);
}

#[tokio::test]
async fn the_poll_concurrency_bound_is_respected() {
    let settings = ReconcileSettings {
        poll_concurrency: 3,
        ..Default::default()
    };
    let h = harness_with(settings, &["acme"]).await;
    for i in 0..12 {
        let id = format!("c{i}");
        h.webhook(&id, &format!("w{i}"), JobStatus::Processing, None).await;
        h.provider.answer(&id, Answer::Job(job(&id, "processing", Some(50))));
    }
    h.provider.set_delay(Duration::from_millis(150));
    h.advance(601);
    let summary = h.run().await;
    assert_eq!(summary.polled, 12);
    let max = h.provider.max_in_flight();
    assert!(max <= 3, "{max} requests in flight");
    assert!(max >= 2, "polls do run concurrently ({max})");
}

#[tokio::test]
async fn a_webhook_and_a_poll_answer_racing_on_one_job_make_one_transition() {
    for round in 0..5 {
        let h = harness().await;
        let id = format!("race-{round}");
        h.webhook(&id, "w-start", JobStatus::Processing, Some(40)).await;
        // Even rounds: the webhook lands while the poll is in flight. Odd
        // rounds: the poll answer is applied first, the webhook after it.
        let (answer_after, webhook_after) = if round % 2 == 0 { (300, 100) } else { (0, 300) };
        let answer = Answer::Job(job(&id, "completed", Some(100)));
        h.provider
            .answer(&id, Answer::Slow(Duration::from_millis(answer_after), Box::new(answer)));
        h.advance(601);
        let before = h.store.get("acme", &id).await.expect("get").expect("job").transitions;
        let late_webhook = job_event("acme", &id, "w-done", JobStatus::Completed, None);
        let (summary, applied) = tokio::join!(h.run(), async {
            tokio::time::sleep(Duration::from_millis(webhook_after)).await;
            h.store.apply(&late_webhook).await
        });
        applied.expect("webhook applied or recorded");
        assert_eq!(summary.polled, 1);
        let state = h.store.get("acme", &id).await.expect("get").expect("job");
        assert_eq!(state.fields.status, JobStatus::Completed);
        assert_eq!(state.transitions, before + 1, "exactly one transition to completed");
        let timeline = h.store.timeline("acme", &id).await.expect("timeline");
        let terminal: Vec<Outcome> = timeline
            .iter()
            .filter(|e| e.status == Some(JobStatus::Completed))
            .map(|e| e.outcome)
            .collect();
        assert_eq!(terminal.len(), 2);
        assert_eq!(
            terminal.iter().filter(|o| **o == Outcome::Applied).count(),
            1,
            "{timeline:?}"
        );
    }
}

#[tokio::test]
async fn a_tracked_job_that_never_gets_a_webhook_is_reconciled() {
    let h = harness().await;
    // Tracked through the CLI, as an application would after submitting it.
    let config = aws().await;
    let cli = jobhook_cli::Cli::parse_from(["jobhook", "track", "acme", "job-tracked", "--table", &h.table]);
    let mut out = Vec::new();
    jobhook_cli::run(cli, &config, &mut out).await.expect("track");
    assert_eq!(String::from_utf8_lossy(&out).trim(), "tracking acme/job-tracked");
    // The CLI tracks with the real clock; move the harness clock past it.
    let tracked_at = h.store.get("acme", "job-tracked").await.expect("get").expect("job");
    assert_eq!(
        (tracked_at.fields.status, tracked_at.transitions),
        (JobStatus::Submitted, 0)
    );
    h.clock.advance(Duration::from_secs(
        (jobhook::clock::SystemClock.now_unix() - T0).max(0) as u64 + STALE_AFTER.as_secs() + 1,
    ));

    h.provider
        .answer("job-tracked", Answer::Job(job("job-tracked", "failed", None)));
    let summary = h.run().await;
    assert_eq!(summary.recovered_failed, 1);
    let state = h.store.get("acme", "job-tracked").await.expect("get").expect("job");
    assert_eq!(state.fields.status, JobStatus::Failed);
    assert_eq!(state.fields.error.as_deref(), Some("render failed"));
}

#[tokio::test]
async fn the_reconciler_calls_the_provider_only_for_jobs_that_lost_their_webhook() {
    let h = harness().await;
    const N: usize = 40;
    const K: usize = 6;
    for i in 0..N {
        let id = format!("eff-{i}");
        h.webhook(&id, &format!("{id}-s"), JobStatus::Processing, None).await;
        h.webhook(&id, &format!("{id}-p"), JobStatus::Processing, Some(50))
            .await;
        if i >= K {
            h.webhook(&id, &format!("{id}-c"), JobStatus::Completed, None).await;
        }
        h.provider.answer(&id, Answer::Job(job(&id, "completed", Some(100))));
    }
    h.advance(601);
    let summary = h.run().await;
    let calls = h.provider.calls().len();
    assert_eq!(
        calls, K,
        "provider calls for {N} jobs of which {K} lost their terminal webhook"
    );
    assert_eq!(summary.missed_webhooks_recovered(), K);
    for i in 0..N {
        assert_eq!(h.status(&format!("eff-{i}")).await.0, JobStatus::Completed);
    }
}

#[tokio::test]
async fn unknown_jobs_back_off_and_are_abandoned_while_lost_webhooks_are_recovered() {
    let settings = ReconcileSettings {
        max_polls_per_run: 5,
        ..Default::default()
    };
    let h = harness_with(settings.clone(), &["acme"]).await;
    const UNKNOWN: usize = 40;
    // Tracked, never known to the provider: it answers 404 for them.
    for i in 0..UNKNOWN {
        assert!(h.store.track("acme", &format!("ghost-{i:02}")).await.expect("track"));
    }
    // Three real jobs whose terminal webhook was lost.
    let lost = ["lost-1", "lost-2", "lost-3"];
    for id in lost {
        h.webhook(id, &format!("{id}-p"), JobStatus::Processing, Some(50)).await;
        h.provider.answer(id, Answer::Job(job(id, "completed", Some(100))));
    }
    h.advance(601);

    // A run every poll interval, as the schedule would.
    let mut recovered_by_run = None;
    let mut abandoned = 0;
    for run in 1..=80 {
        let summary = h.run().await;
        abandoned += summary.abandoned;
        if recovered_by_run.is_none() {
            let mut done = 0;
            for id in lost {
                done += usize::from(h.status(id).await.0 == JobStatus::Completed);
            }
            if done == lost.len() {
                recovered_by_run = Some(run);
            }
        }
        if abandoned == UNKNOWN {
            break;
        }
        h.advance(settings.poll_interval.as_secs());
    }
    let ghost_polls = h.provider.calls().iter().filter(|c| c.starts_with("ghost")).count();
    let recovered_by_run = recovered_by_run.expect("the lost webhooks were recovered");
    // Nine runs poll every one of the 43 once, soonest due first.
    assert!(recovered_by_run <= 9, "recovered only by run {recovered_by_run}");
    assert_eq!(abandoned, UNKNOWN, "each unknown job is given up on");
    assert_eq!(
        ghost_polls,
        UNKNOWN * settings.abandon_after_not_found as usize,
        "polled exactly until the 404 limit"
    );
    let ghost = h.store.get("acme", "ghost-00").await.expect("get").expect("job");
    assert!(ghost.abandoned_at.is_some());
    assert_eq!(
        ghost.fields.status,
        JobStatus::Submitted,
        "abandoned is not a provider status"
    );
    let timeline = h.store.timeline("acme", "ghost-00").await.expect("timeline");
    assert!(timeline.iter().any(|e| e.outcome == Outcome::Abandoned), "{timeline:?}");
    // Abandoned jobs are not polled again.
    h.advance(86_400);
    assert_eq!(h.run().await.candidates, 0);
    for id in lost {
        let state = h.store.get("acme", id).await.expect("get").expect("job");
        assert_eq!(
            state.terminal_origin,
            Some(Origin::Poll),
            "{id}: its end came by polling"
        );
    }
}

#[tokio::test]
async fn a_webhook_for_an_abandoned_job_still_applies_and_says_it_came_by_webhook() {
    let settings = ReconcileSettings {
        abandon_after_not_found: 1,
        ..Default::default()
    };
    let h = harness_with(settings, &["acme"]).await;
    assert!(h.store.track("acme", "late").await.expect("track"));
    h.advance(601);
    assert_eq!(h.run().await.abandoned, 1);
    h.webhook("late", "late-done", JobStatus::Completed, None).await;
    let state = h.store.get("acme", "late").await.expect("get").expect("job");
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(state.terminal_origin, Some(Origin::Webhook));
    assert_eq!(state.abandoned_at, None, "the webhook reopened and ended it");
}

#[tokio::test]
async fn a_retry_after_is_remembered_across_runs_until_the_time_it_names() {
    let h = harness().await;
    h.webhook("busy-1", "b1", JobStatus::Processing, None).await;
    h.provider.answer("busy-1", Answer::RateLimited(120));
    h.advance(601);
    assert_eq!(h.run().await.polled, 1);
    h.provider
        .answer("busy-1", Answer::Job(job("busy-1", "completed", None)));
    h.advance(60);
    let summary = h.run().await;
    assert_eq!(
        summary.candidates, 0,
        "the source is not queried while it asked for quiet"
    );
    assert_eq!(
        summary.rate_limited_sources,
        [RateLimitedSource {
            source: "acme".into(),
            retry_after_secs: Some(60)
        }]
    );
    assert_eq!(h.provider.calls().len(), 1);
    h.advance(61);
    assert_eq!(h.run().await.recovered_completed, 1);
}

#[tokio::test]
async fn a_run_near_its_deadline_leaves_its_polls_to_the_next_run() {
    let h = harness().await;
    for i in 0..3 {
        let id = format!("dl-{i}");
        h.webhook(&id, &format!("{id}-s"), JobStatus::Processing, None).await;
        h.provider.answer(&id, Answer::Job(job(&id, "completed", None)));
    }
    h.advance(601);
    // Less time left than the reserve one poll needs.
    let deadline = tokio::time::Instant::now() + h.reconciler.settings.reserve / 2;
    let summary = h.reconciler.run(&h.sources, deadline).await.expect("run");
    assert_eq!((summary.candidates, summary.deferred, summary.polled), (3, 3, 0));
    assert!(h.provider.calls().is_empty());
    assert_eq!(h.run().await.recovered_completed, 3, "the next run does them");
}

/// The store as the reconciler sees it, but one source's query fails and
/// every query is counted.
#[derive(Debug)]
struct Flaky {
    inner: Arc<DynamoJobStore>,
    failing_source: &'static str,
    fail_reschedule: bool,
    queried: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl OpenJobIndex for Flaky {
    async fn due_open_jobs(&self, source: &str, now_ms: i64, limit: usize) -> Result<Vec<OpenJob>, PortError> {
        self.queried.lock().expect("lock").push(source.to_owned());
        if source == self.failing_source {
            return Err(PortError::transient("dynamodb:Query", "ThrottlingException: injected"));
        }
        self.inner.due_open_jobs(source, now_ms, limit).await
    }
    async fn reschedule(&self, job: &OpenJob, next: i64, misses: u32) -> Result<(), PortError> {
        if self.fail_reschedule {
            return Err(PortError::transient(
                "dynamodb:UpdateItem",
                "InternalServerError: injected",
            ));
        }
        self.inner.reschedule(job, next, misses).await
    }
    async fn record_not_found(&self, source: &str, job_id: &str) -> Result<u32, PortError> {
        self.inner.record_not_found(source, job_id).await
    }
    async fn abandon(&self, job: &OpenJob, reason: &str) -> Result<bool, PortError> {
        self.inner.abandon(job, reason).await
    }
    async fn rate_limited_until(&self, source: &str) -> Result<Option<i64>, PortError> {
        self.inner.rate_limited_until(source).await
    }
    async fn record_rate_limit(&self, source: &str, until_ms: i64) -> Result<(), PortError> {
        self.inner.record_rate_limit(source, until_ms).await
    }
}

#[tokio::test]
async fn one_failing_source_and_sources_without_api_do_not_hold_up_the_others() {
    let mut h = harness_with(ReconcileSettings::default(), &["good", "broken"]).await;
    let mut doc: serde_json::Value = json!({"sources": {}});
    for name in ["good", "broken"] {
        doc["sources"][name] = json!({"scheme": "github", "secrets": ["s"],
            "api": {"base_url": h.provider.base_url, "token": TOKEN}});
    }
    doc["sources"]["noapi"] = json!({"scheme": "github", "secrets": ["s"]});
    h.sources = Sources::parse(&doc.to_string()).expect("sources");
    let flaky = Arc::new(Flaky {
        inner: h.store.clone(),
        failing_source: "broken",
        fail_reschedule: false,
        queried: Default::default(),
    });
    h.reconciler.index = flaky.clone();
    for source in ["good", "broken", "noapi"] {
        let id = format!("{source}-1");
        h.store
            .apply(&job_event(source, &id, &format!("w-{id}"), JobStatus::Processing, None))
            .await
            .expect("apply");
        h.provider.answer(&id, Answer::Job(job(&id, "completed", None)));
    }
    h.advance(601);
    let summary = h.run().await;
    assert_eq!(summary.recovered_completed, 1, "the good source is reconciled");
    assert_eq!(summary.sources_failed, ["broken"]);
    assert_eq!(summary.sources_without_api, ["noapi"]);
    let mut queried = flaky.queried.lock().expect("lock").clone();
    queried.sort();
    assert_eq!(queried, ["broken", "good"], "a source without api is never queried");
}

#[tokio::test]
async fn a_dynamodb_failure_after_a_poll_is_not_counted_against_the_provider() {
    let mut h = harness().await;
    h.reconciler.index = Arc::new(Flaky {
        inner: h.store.clone(),
        failing_source: "none",
        fail_reschedule: true,
        queried: Default::default(),
    });
    h.webhook("same", "s1", JobStatus::Processing, Some(40)).await;
    h.provider
        .answer("same", Answer::Job(job("same", "processing", Some(40))));
    h.advance(601);
    let summary = h.run().await;
    assert_eq!((summary.polled, summary.errors, summary.store_errors), (1, 0, 1));
}

#[tokio::test]
async fn the_reconciler_polls_with_the_token_from_the_api_secret() {
    let h = harness().await;
    let config = aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let (signing_name, api_name) = (jobhook_tests::unique_name("signing"), jobhook_tests::unique_name("api"));
    // What the receiver may read: no provider credentials in it.
    let signing = json!({"sources": {"acme": {"scheme": "github", "secrets": ["s"]}}});
    let api = json!({"sources": {"acme": {"api": {"base_url": h.provider.base_url, "token": TOKEN}}}});
    for (name, doc) in [(&signing_name, &signing), (&api_name, &api)] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(doc.to_string())
            .send()
            .await
            .expect("secret");
    }
    let loader = jobhook::bootstrap::sources_with_api_loader(
        &jobhook::config::SourcesLocation::Secret(signing_name.clone()),
        Some(&api_name),
        &config,
    );
    let sources = jobhook::sources_cache::SourcesCache::new(loader, Duration::from_secs(300))
        .get()
        .await
        .expect("the two documents merge");
    h.webhook("tok-1", "t1", JobStatus::Processing, None).await;
    h.provider.answer("tok-1", Answer::Job(job("tok-1", "completed", None)));
    h.advance(601);
    let summary = h
        .reconciler
        .run(&sources, jobhook_tests::deadline())
        .await
        .expect("run");
    assert_eq!(
        summary.recovered_completed, 1,
        "the provider accepted the token: {summary:?}"
    );

    // The signing secret alone, as the receiver loads it, has no api at all.
    let alone = jobhook::bootstrap::sources_loader(&jobhook::config::SourcesLocation::Secret(signing_name), &config);
    let text = alone.load().await.expect("load");
    assert!(Sources::parse(&text)
        .expect("parses")
        .get("acme")
        .expect("acme")
        .api
        .is_none());
}

#[tokio::test]
async fn a_replicate_prediction_whose_webhook_was_lost_is_recovered_by_polling_its_api() {
    let mut h = harness().await;
    let doc = json!({"sources": {"rep": {"scheme": "standard-webhooks", "provider": "replicate",
        "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "api": {"base_url": h.provider.base_url, "token": TOKEN}}}});
    h.sources = Sources::parse(&doc.to_string()).expect("sources");
    let id = "rr4bt2k6k9rme0cg3s1vq6wqx8";
    h.store
        .apply(&job_event("rep", id, "msg_start", JobStatus::Processing, None))
        .await
        .expect("apply");
    let answer: serde_json::Value = serde_json::from_str(&jobhook_tests::fixture(
        "providers/replicate/webhook-succeeded-list-output.json",
    ))
    .expect("fixture");
    h.provider.answer(id, Answer::Job(answer));
    h.advance(601);
    let summary = h.run().await;
    assert_eq!(summary.recovered_completed, 1, "{summary:?}");
    assert_eq!(
        h.provider.requests(),
        [Request {
            target: format!("/v1/predictions/{id}"),
            authorization: Some(format!("Bearer {TOKEN}")),
        }],
        "Replicate is polled with its Bearer token at GET /v1/predictions/{{id}}"
    );
    let state = h.store.get("rep", id).await.expect("get").expect("job");
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://replicate.delivery/xezq/abc123/out-0.webp")
    );
}

#[tokio::test]
async fn a_mux_asset_is_polled_with_http_basic_at_its_assets_path() {
    let mut h = harness().await;
    let doc = json!({"sources": {"muxv": {"scheme": "stripe", "header": "mux-signature", "provider": "mux",
        "secrets": ["s"], "api": {"base_url": h.provider.base_url, "token": TOKEN}}}});
    h.sources = Sources::parse(&doc.to_string()).expect("sources");
    let asset = "lJ4bGGsp7ZlPf02nMg015W02iHQLN9XnuuLRBsPS00xqd68";
    h.store
        .apply(&job_event("muxv", asset, "created", JobStatus::Processing, None))
        .await
        .expect("apply");
    let answer: serde_json::Value =
        serde_json::from_str(&jobhook_tests::fixture("providers/mux/get-asset-ready.json")).expect("fixture");
    h.provider.answer(asset, Answer::Job(answer));
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(TOKEN)
    };
    h.provider.expect_authorization(format!("Basic {basic}"));
    h.advance(601);
    let summary = h.run().await;
    assert_eq!((summary.recovered_completed, summary.errors), (1, 0), "{summary:?}");
    assert_eq!(
        h.provider.requests(),
        [Request {
            target: format!("/v1/video/v1/assets/{asset}"),
            authorization: Some(format!("Basic {basic}")),
        }],
        "Mux is polled with HTTP Basic at GET /video/v1/assets/{{id}}"
    );
    let state = h.store.get("muxv", asset).await.expect("get").expect("job");
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://stream.mux.com/vAFLI2eKFFicXX00iHBS2vqt5JjJGg5HV6fQ4Xijgt1I.m3u8")
    );
}
