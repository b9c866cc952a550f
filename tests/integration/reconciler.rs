use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::clock::{Clock, ManualClock};
use jobhook::domain::job::{JobStatus, Origin, Outcome, TimelineEntry};
use jobhook::ports::JobStore;
use jobhook::reconcile::{RateLimitedSource, ReconcileSettings, Reconciler, RunSummary};
use jobhook::Sources;
use jobhook_tests::provider::{job, Answer, TestProvider};
use jobhook_tests::{aws, dynamodb, job_event};
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
        self.reconciler.run(&self.sources).await.expect("run")
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
    println!("poll concurrency: limit 3, most requests in flight at once: {max}");
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
    println!(
        "reconciler efficiency: {N} jobs, {K} lost their terminal webhook, {calls} provider calls \
         (calls/K = {:.2}, calls/N = {:.2}), {} recovered",
        calls as f64 / K as f64,
        calls as f64 / N as f64,
        summary.missed_webhooks_recovered()
    );
    assert_eq!(calls, K);
    assert_eq!(summary.missed_webhooks_recovered(), K);
    for i in 0..N {
        assert_eq!(h.status(&format!("eff-{i}")).await.0, JobStatus::Completed);
    }
}
