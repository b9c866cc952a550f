//! Each provider's documented payloads through the real processor and
//! reconciler, against moto and a local HTTP provider: out of order,
//! duplicated, thin events fetched, cancels, and polling by each profile's
//! path, auth and budget.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::file::FileSources;
use jobhook::adapters::provider_http::HttpJobPoller;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::ManualClock;
use jobhook::domain::job::{JobState, JobStatus, Outcome};
use jobhook::ports::{JobQuery as _, JobStore};
use jobhook::sources_cache::SourcesCache;
use jobhook::Sources;
use jobhook_tests::messages::{batch, queued};
use jobhook_tests::provider::{Answer, TestProvider};
use jobhook_tests::{aws, deadline, dynamodb, fixture, job_event, sqs, temp_file, TEST_BACKOFF};
use processor::Processor;
use reconciler::{ReconcileSettings, Reconciler};
use serde_json::{json, Value};

const TOKEN: &str = "provider-api-token";
const T0: i64 = 1_778_673_600;
const RUNPOD_URL_TOKEN: &str = "5c0f9a1e7b3d42c6a8e1f0b9d7c5a3e1";

struct Harness {
    clock: Arc<ManualClock>,
    store: Arc<DynamoJobStore>,
    provider: TestProvider,
    processor: Processor,
    reconciler: Reconciler,
    sources: Sources,
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
}

/// One source per provider, each with its API at the local provider, and an
/// OpenAI source without `api`.
fn sources_doc(base_url: &str) -> String {
    let api = json!({"base_url": base_url, "token": TOKEN});
    json!({"sources": {
        "oai": {"scheme": "standard-webhooks", "secrets": ["whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c="],
                "provider": "openai", "api": api},
        "oai-noapi": {"scheme": "standard-webhooks", "secrets": ["whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c="],
                      "provider": "openai"},
        "opus": {"scheme": "opusclip", "secrets": ["sk-test-opus-key"], "provider": "opusclip", "api": api},
        "aai": {"scheme": "header-token", "header": "x-aai-secret", "secrets": ["aai-shared-token"],
                "provider": "assemblyai", "api": api},
        "rep": {"scheme": "standard-webhooks", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "provider": "replicate", "api": api},
        "muxv": {"scheme": "stripe", "header": "mux-signature", "secrets": ["mux-secret"], "provider": "mux",
                 "api": api},
        "rp": {"scheme": "unsigned", "url_token": RUNPOD_URL_TOKEN, "provider": "runpod", "api": api},
        "cfs": {"scheme": "cloudflare-stream", "secrets": ["85011ed3a913c6ad5f9cf6c5573cc0a7"], "provider": "cloudflare-stream",
                "api": api},
        "fal": {"scheme": "fal", "public_keys": ["11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"], "provider": "fal", "api": api},
    }})
    .to_string()
}

async fn harness() -> Harness {
    let config = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&ddb, "providers").await;
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let dlq_url = sqs::create_events_dlq(&sqs_client, "providers-dlq").await;
    let clock = Arc::new(ManualClock::at_unix(T0));
    let store = Arc::new(DynamoJobStore::new(
        ddb,
        &table,
        Duration::from_secs(86_400),
        clock.clone(),
    ));
    let provider = TestProvider::start(TOKEN).await;
    let doc = sources_doc(&provider.base_url);
    let poller = Arc::new(HttpJobPoller::new(Duration::from_secs(5)));
    let processor = Processor {
        sources: SourcesCache::new(
            Arc::new(FileSources::new(temp_file("providers-sources", &doc))),
            Duration::from_secs(300),
        ),
        store: store.clone(),
        dead_letters: Arc::new(SqsQueue::new(sqs_client.clone(), &dlq_url)),
        poller: poller.clone(),
        concurrency: 4,
        backoff: TEST_BACKOFF,
        archiver: jobhook::archive::Archiver::inline_only(),
        track_queue_arn: None,
    };
    let reconciler = Reconciler {
        store: store.clone(),
        index: store.clone(),
        poller,
        clock: clock.clone(),
        settings: ReconcileSettings::default(),
    };
    Harness {
        clock,
        store,
        provider,
        processor,
        reconciler,
        sources: Sources::parse(&doc).expect("sources"),
        sqs: sqs_client,
        dlq_url,
    }
}

fn body(provider: &str, name: &str) -> String {
    fixture(&format!("providers/{provider}/{name}"))
}

fn answer(provider: &str, name: &str) -> Answer {
    Answer::Job(serde_json::from_str(&body(provider, name)).expect("fixture is JSON"))
}

/// A delivery as the receiver queues it for each source's scheme.
fn delivery(source: &str, webhook_id: Option<&str>, body: &str) -> SqsMessage {
    let scheme = match source {
        "opus" => "opusclip",
        "aai" => "header-token",
        "muxv" => "stripe",
        "rp" => "unsigned",
        "fal" => "fal",
        "cfs" => "cloudflare-stream",
        _ => "standard-webhooks",
    };
    queued(source, scheme, webhook_id, body)
}

impl Harness {
    /// Failed message ids of one batch.
    async fn deliver(&self, messages: Vec<SqsMessage>) -> usize {
        self.processor
            .handle(batch(messages), deadline())
            .await
            .expect("no systemic failure")
            .batch_item_failures
            .len()
    }

    async fn state(&self, source: &str, job_id: &str) -> JobState {
        self.store.get(source, job_id).await.expect("get").expect("job exists")
    }

    async fn applied(&self, source: &str, job_id: &str) -> Vec<String> {
        self.store
            .timeline(source, job_id)
            .await
            .expect("timeline")
            .into_iter()
            .filter(|e| e.outcome == Outcome::Applied)
            .map(|e| e.event_id)
            .collect()
    }

    async fn dead_letters(&self) -> Vec<String> {
        sqs::drain(&self.sqs, &self.dlq_url, 1)
            .await
            .into_iter()
            .map(|m| format!("{:?}", m.message_attributes))
            .collect()
    }
}

fn result_of(state: &JobState) -> Value {
    serde_json::from_str(state.fields.result.as_deref().expect("a result")).expect("result is JSON")
}

#[tokio::test]
async fn an_openai_batch_event_is_applied_with_the_state_and_files_read_from_the_api_once() {
    let h = harness().await;
    h.provider
        .answer("batch_abc123", answer("openai", "get-batch-completed.json"));
    let webhook = delivery("oai", Some("wh_1"), &body("openai", "webhook-batch-completed.json"));
    assert_eq!(h.deliver(vec![webhook.clone()]).await, 0);
    // OpenAI redelivers the same webhook-id: a duplicate, no new transition.
    assert_eq!(h.deliver(vec![webhook]).await, 0);

    let state = h.state("oai", "batch_abc123").await;
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(state.transitions, 1);
    let result = result_of(&state);
    assert_eq!(
        (result["output_file_id"].as_str(), result["error_file_id"].as_str()),
        (Some("file-cvaTdG"), Some("file-HOWS94"))
    );
    assert_eq!(
        h.applied("oai", "batch_abc123").await,
        ["wh_1"],
        "the delivery keeps its identity"
    );
    assert_eq!(
        h.provider.calls(),
        ["batch_abc123"],
        "the duplicate was not fetched again"
    );
}

#[tokio::test]
async fn a_thin_event_whose_fetch_fails_or_lags_is_retried_and_applied_once_the_api_answers() {
    let h = harness().await;
    let webhook = delivery("oai", Some("wh_2"), &body("openai", "webhook-response-completed.json"));

    h.provider.answer("resp_123", Answer::Status(503));
    assert_eq!(
        h.deliver(vec![webhook.clone()]).await,
        1,
        "a 5xx is retried through the queue"
    );
    h.provider.answer("resp_123", Answer::RateLimited(1));
    assert_eq!(h.deliver(vec![webhook.clone()]).await, 1, "so is a 429");
    // The API has not caught up with the webhook yet.
    h.provider.answer(
        "resp_123",
        Answer::Job(json!({"id": "resp_123", "object": "response", "status": "in_progress", "created_at": 1})),
    );
    assert_eq!(h.deliver(vec![webhook.clone()]).await, 1, "a lagging answer is retried");
    assert!(
        h.store.get("oai", "resp_123").await.expect("get").is_none(),
        "nothing applied yet"
    );

    h.provider.answer(
        "resp_123",
        Answer::Job(
            json!({"id": "resp_123", "object": "response", "status": "completed", "created_at": 1,
                           "model": "gpt-4o", "output": [{"type": "message", "content": [{"text": "long text"}]}]}),
        ),
    );
    assert_eq!(h.deliver(vec![webhook]).await, 0);
    let state = h.state("oai", "resp_123").await;
    assert_eq!(state.fields.status, JobStatus::Completed);
    let result = result_of(&state);
    assert_eq!(result["id"], "resp_123");
    assert!(
        result.get("output").is_none(),
        "the output is fetched by the user, never stored"
    );
    assert!(h.dead_letters().await.is_empty(), "nothing was dead-lettered");
}

#[tokio::test]
async fn openai_cancelled_and_expired_batches_end_canceled_and_failed_with_the_reason() {
    let h = harness().await;
    let mut cancelled: Value = serde_json::from_str(&body("openai", "get-batch-completed.json")).expect("json");
    cancelled["id"] = "batch_c".into();
    cancelled["status"] = "cancelled".into();
    h.provider.answer("batch_c", Answer::Job(cancelled));
    let mut expired: Value = serde_json::from_str(&body("openai", "get-batch-expired.json")).expect("json");
    expired["id"] = "batch_e".into();
    h.provider.answer("batch_e", Answer::Job(expired));

    let cancel_body = body("openai", "webhook-batch-cancelled.json").replace("batch_abc123", "batch_c");
    let expire_body = body("openai", "webhook-batch-expired.json").replace("batch_abc123", "batch_e");
    assert_eq!(
        h.deliver(vec![
            delivery("oai", Some("wh_c"), &cancel_body),
            delivery("oai", Some("wh_e"), &expire_body),
        ])
        .await,
        0
    );
    assert_eq!(h.state("oai", "batch_c").await.fields.status, JobStatus::Canceled);
    let failed = h.state("oai", "batch_e").await;
    assert_eq!(failed.fields.status, JobStatus::Failed);
    assert!(failed.fields.error.as_deref().is_some_and(|e| e.starts_with("expired")));
}

#[tokio::test]
async fn a_thin_event_from_a_source_without_api_is_dead_lettered_with_the_reason() {
    let h = harness().await;
    let webhook = delivery(
        "oai-noapi",
        Some("wh_3"),
        &body("openai", "webhook-batch-completed.json"),
    );
    assert_eq!(
        h.deliver(vec![webhook]).await,
        0,
        "poison is acknowledged once dead-lettered"
    );
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("has no `api`"), "{dead:?}");
    assert!(h.provider.calls().is_empty());
}

#[tokio::test]
async fn an_opusclip_trigger_fetches_the_project_and_its_clips_and_a_replay_changes_nothing() {
    let h = harness().await;
    h.provider
        .answer("P1111908HgB0", answer("opusclip", "get-project-complete.json"));
    h.provider
        .answer("clips:P1111908HgB0", answer("opusclip", "get-exportable-clips.json"));
    let trigger = body("opusclip", "webhook-concluded.json");
    assert_eq!(h.deliver(vec![delivery("opus", None, &trigger)]).await, 0);

    let state = h.state("opus", "P1111908HgB0").await;
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert!(state
        .fields
        .output_url
        .as_deref()
        .is_some_and(|u| u.ends_with("/c.CU67da38/ehd.mp4?v=1731482302564330")));
    let result = result_of(&state);
    assert_eq!(result["clip_count"], 2);
    assert_eq!(
        result["clips"][1]["url"]
            .as_str()
            .map(|u| u.ends_with("esd.mp4?v=1731482302577650")),
        Some(true)
    );
    assert_eq!(h.provider.calls(), ["P1111908HgB0", "clips:P1111908HgB0"]);

    // A captured delivery replayed (same body; the salt and timestamp are
    // not part of the event's identity): the same event, a duplicate.
    assert_eq!(h.deliver(vec![delivery("opus", None, &trigger)]).await, 0);
    assert_eq!(h.state("opus", "P1111908HgB0").await.transitions, 1);
}

#[tokio::test]
async fn a_stalled_opusclip_project_fails_with_its_error_and_lists_no_clips() {
    let h = harness().await;
    h.provider
        .answer("P1111908HgB0", answer("opusclip", "get-project-stalled.json"));
    let trigger = r#"{"projectId":"P1111908HgB0"}"#;
    assert_eq!(h.deliver(vec![delivery("opus", None, trigger)]).await, 0);
    let state = h.state("opus", "P1111908HgB0").await;
    assert_eq!(state.fields.status, JobStatus::Failed);
    assert_eq!(state.fields.error.as_deref(), Some("STALLED: Failed to import video"));
    assert_eq!(
        h.provider.calls(),
        ["P1111908HgB0"],
        "no clips request for a failed project"
    );
}

#[tokio::test]
async fn assemblyai_completed_applies_without_a_call_and_error_is_fetched_for_its_text() {
    let h = harness().await;
    let done = body("assemblyai", "webhook-completed.json");
    let redacted = body("assemblyai", "webhook-redacted-audio-ready.json");
    assert_eq!(
        h.deliver(vec![delivery("aai", None, &done), delivery("aai", None, &redacted)])
            .await,
        0
    );
    let state = h.state("aai", "5552493-16d8-42d8-8feb-c2a16b56f6e8").await;
    assert_eq!(state.fields.status, JobStatus::Completed);
    assert_eq!(
        result_of(&state)["transcript_id"],
        "5552493-16d8-42d8-8feb-c2a16b56f6e8"
    );
    assert!(h.provider.calls().is_empty(), "a completed transcript needs no fetch");

    let mut errored: Value = serde_json::from_str(&body("assemblyai", "get-transcript-error.json")).expect("json");
    errored["id"] = "9ea68fd3-f953-42c1-9742-976c447fb463".into();
    h.provider
        .answer("9ea68fd3-f953-42c1-9742-976c447fb463", Answer::Job(errored));
    h.provider.expect_authorization(TOKEN);
    assert_eq!(
        h.deliver(vec![delivery("aai", None, &body("assemblyai", "webhook-error.json"))])
            .await,
        0
    );
    let failed = h.state("aai", "9ea68fd3-f953-42c1-9742-976c447fb463").await;
    assert_eq!(failed.fields.status, JobStatus::Failed);
    assert!(failed
        .fields
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("Download error")));
    assert!(
        h.dead_letters().await.is_empty(),
        "the redacted-audio notice is acknowledged, not poison"
    );
}

#[tokio::test]
async fn replicate_and_mux_events_out_of_order_and_twice_end_in_the_right_state() {
    let h = harness().await;
    let rep = |name: &str| body("replicate", name);
    // Terminal first, then the earlier ones, then the terminal again, each
    // in a batch of its own (a batch would take them in forward order).
    for message in [
        delivery("rep", Some("msg_s"), &rep("webhook-succeeded-list-output.json")),
        delivery("rep", Some("msg_p"), &rep("webhook-processing-no-output-key.json")),
        delivery("rep", Some("msg_s"), &rep("webhook-succeeded-list-output.json")),
    ] {
        assert_eq!(h.deliver(vec![message]).await, 0);
    }
    let id: Value = serde_json::from_str(&rep("webhook-succeeded-list-output.json")).expect("json");
    let state = h.state("rep", id["id"].as_str().expect("id")).await;
    assert_eq!((state.fields.status, state.transitions), (JobStatus::Completed, 1));
    assert!(state.fields.output_url.is_some() && state.fields.result.is_some());

    let canceled: Value = serde_json::from_str(&rep("webhook-canceled.json")).expect("json");
    assert_eq!(
        h.deliver(vec![delivery("rep", Some("msg_c"), &rep("webhook-canceled.json"))])
            .await,
        0
    );
    let state = h.state("rep", canceled["id"].as_str().expect("id")).await;
    assert_eq!(state.fields.status, JobStatus::Canceled);

    let mux = |name: &str| body("mux", name);
    for message in [
        delivery("muxv", None, &mux("webhook-asset-ready.json")),
        delivery("muxv", None, &mux("webhook-asset-created.json")),
        delivery("muxv", None, &mux("webhook-asset-ready.json")),
    ] {
        assert_eq!(h.deliver(vec![message]).await, 0);
    }
    let ready: Value = serde_json::from_str(&mux("webhook-asset-ready.json")).expect("json");
    let state = h.state("muxv", ready["object"]["id"].as_str().expect("asset id")).await;
    assert_eq!((state.fields.status, state.transitions), (JobStatus::Completed, 1));
    assert!(result_of(&state)["playback_ids"].is_array());
}

#[tokio::test]
async fn lost_webhooks_of_each_provider_are_recovered_by_polling_its_api() {
    let h = harness().await;
    for (source, job_id) in [
        ("oai", "batch_abc123"),
        ("opus", "P1111908HgB0"),
        ("aai", "9ea68fd3-f953-42c1-9742-976c447fb463"),
    ] {
        h.store
            .apply(&job_event(
                source,
                job_id,
                &format!("seen-{job_id}"),
                JobStatus::Processing,
                None,
            ))
            .await
            .expect("apply");
    }
    h.provider
        .answer("batch_abc123", answer("openai", "get-batch-completed.json"));
    h.provider
        .answer("P1111908HgB0", answer("opusclip", "get-project-complete.json"));
    h.provider
        .answer("clips:P1111908HgB0", answer("opusclip", "get-exportable-clips.json"));
    h.provider.answer(
        "9ea68fd3-f953-42c1-9742-976c447fb463",
        answer("assemblyai", "get-transcript-completed.json"),
    );
    // AssemblyAI takes its key raw; the others a Bearer token.
    h.provider
        .expect_authorization_for("9ea68fd3-f953-42c1-9742-976c447fb463", TOKEN);
    h.clock.advance(Duration::from_secs(3600));

    let summary = h.reconciler.run(&h.sources, deadline()).await.expect("run");
    assert_eq!(summary.missed_webhooks_recovered(), 3, "{summary:?}");
    assert_eq!(h.state("oai", "batch_abc123").await.fields.status, JobStatus::Completed);
    let opus = h.state("opus", "P1111908HgB0").await;
    assert_eq!(result_of(&opus)["clip_count"], 2, "the poll fetched the clips too");
    let aai = h.state("aai", "9ea68fd3-f953-42c1-9742-976c447fb463").await;
    assert_eq!(result_of(&aai)["audio_duration"], 281);
}

#[tokio::test]
async fn a_rate_limited_providers_budget_caps_its_polls_per_run() {
    let h = harness().await;
    for i in 0..14 {
        h.store
            .apply(&job_event(
                "opus",
                &format!("P{i}"),
                &format!("seen-{i}"),
                JobStatus::Processing,
                None,
            ))
            .await
            .expect("apply");
    }
    h.clock.advance(Duration::from_secs(3600));
    h.reconciler.run(&h.sources, deadline()).await.expect("run");
    let budget = h
        .sources
        .get("opus")
        .and_then(|s| s.api.as_ref())
        .and_then(|a| a.max_polls_per_run);
    assert_eq!(budget, Some(10), "OpusClip's default budget");
    assert_eq!(h.provider.calls().len(), 10, "{:?}", h.provider.calls());
}

/// RunPod signs nothing: a delivery that claims COMPLETED for a job RunPod
/// reports IN_PROGRESS leaves the job running, with nothing of the forged
/// body (no output) applied. The job ends when the API says so, and the
/// batch's several deliveries for it cost one read.
#[tokio::test]
async fn a_forged_completed_delivery_to_an_unsigned_source_leaves_the_job_as_the_provider_reports_it() {
    let h = harness().await;
    let job = "c80ffee4-f315-4e25-a146-0f3d98cf024b";
    h.provider.answer(job, answer("runpod", "status-in-progress.json"));
    let forged = json!({"id": job, "status": "COMPLETED", "output": {"url": "https://attacker.example/x.mp4"}});
    assert_eq!(h.deliver(vec![delivery("rp", None, &forged.to_string())]).await, 0);
    let state = h.state("rp", job).await;
    assert_eq!(state.fields.status, JobStatus::Processing);
    assert_eq!(
        (state.fields.result.as_deref(), state.fields.output_url.as_deref()),
        (None, None)
    );
    let requests = h.provider.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, format!("/v1/status/{job}"), "RunPod's status path");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // RunPod's own completion, and a replay of the forgery, in one batch.
    let mut done: Value = serde_json::from_str(&body("runpod", "webhook-completed.json")).expect("JSON");
    done["id"] = json!(job);
    h.provider.answer(job, Answer::Job(done.clone()));
    let batch = vec![
        delivery("rp", None, &done.to_string()),
        delivery("rp", None, &forged.to_string()),
    ];
    assert_eq!(h.deliver(batch).await, 0);
    let state = h.state("rp", job).await;
    assert_eq!((state.fields.status, state.transitions), (JobStatus::Completed, 2));
    assert_eq!(result_of(&state)["output"], json!({"results": [{"success": true}]}));
    assert_eq!(h.provider.calls().len(), 2, "one read for the batch's two deliveries");
    let timeline = h.store.timeline("rp", job).await.expect("timeline");
    assert!(
        timeline
            .iter()
            .all(|e| e.event_id.starts_with("poll-") && e.kind.starts_with("trigger.")),
        "every entry is an API answer: {timeline:?}"
    );
}

/// A job RunPod does not know (yet, or ever) is not applied: the delivery
/// is retried through the queue, as for a thin event.
#[tokio::test]
async fn an_unsigned_delivery_for_a_job_the_provider_does_not_know_applies_nothing_and_is_retried() {
    let h = harness().await;
    h.provider.answer("ghost", Answer::Status(404));
    let forged = json!({"id": "ghost", "status": "COMPLETED"});
    assert_eq!(h.deliver(vec![delivery("rp", None, &forged.to_string())]).await, 1);
    assert!(h.store.get("rp", "ghost").await.expect("get").is_none());
    assert!(h.dead_letters().await.is_empty());
}

/// fal: a delivery applies as it comes; a request whose webhook is lost is
/// polled at its status path (202 while it runs), and once COMPLETED its
/// output is read at the request's path, all with fal's `Key` auth.
#[tokio::test]
async fn fal_requests_end_by_webhook_or_by_polling_the_status_then_the_output() {
    let h = harness().await;
    h.provider.expect_authorization(format!("Key {TOKEN}"));
    let ok = body("fal", "webhook-ok.json");
    assert_eq!(
        h.deliver(vec![delivery("fal", None, &ok), delivery("fal", None, &ok)])
            .await,
        0
    );
    let done = h.state("fal", "123e4567-e89b-12d3-a456-426614174000").await;
    assert_eq!((done.fields.status, done.transitions), (JobStatus::Completed, 1));
    assert_eq!(done.fields.output_url.as_deref(), Some("https://url.to/image.png"));
    assert!(h.provider.calls().is_empty(), "a delivery is applied as it comes");

    let lost = "3e3e5b55-45fb-4e5c-b4d1-05702dffc8bf";
    h.store
        .apply(&job_event("fal", lost, "seen-fal", JobStatus::Submitted, None))
        .await
        .expect("apply");
    let running: Value = serde_json::from_str(&body("fal", "status-in-progress.json")).expect("JSON");
    h.provider.answer(&format!("status:{lost}"), Answer::Accepted(running));
    h.clock.advance(Duration::from_secs(3600));
    h.reconciler.run(&h.sources, deadline()).await.expect("run");
    assert_eq!(
        h.state("fal", lost).await.fields.status,
        JobStatus::Processing,
        "202 is read"
    );

    h.provider
        .answer(&format!("status:{lost}"), answer("fal", "status-completed.json"));
    h.provider.answer(
        lost,
        Answer::Job(json!({"images": [{"url": "https://v3.fal.media/files/out.png"}]})),
    );
    h.clock.advance(Duration::from_secs(3600));
    let summary = h.reconciler.run(&h.sources, deadline()).await.expect("run");
    assert_eq!(summary.missed_webhooks_recovered(), 1, "{summary:?}");
    let state = h.state("fal", lost).await;
    assert_eq!(
        state.fields.output_url.as_deref(),
        Some("https://v3.fal.media/files/out.png")
    );
    let targets: Vec<String> = h.provider.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            format!("/v1/requests/{lost}/status"),
            format!("/v1/requests/{lost}/status"),
            format!("/v1/requests/{lost}")
        ]
    );
}

/// Cloudflare Stream: a ready video's delivery completes it with its HLS
/// playback; an errored one fails it with the reason; a video whose webhook
/// is lost is polled at `stream/{uid}` with a Bearer token, its progress read.
#[tokio::test]
async fn cloudflare_stream_videos_end_by_webhook_or_by_polling_with_their_progress() {
    let h = harness().await;
    let ready = body("cloudflare-stream", "webhook-ready.json");
    assert_eq!(h.deliver(vec![delivery("cfs", None, &ready)]).await, 0);
    let video = h.state("cfs", "6b9e68b07dfee8cc2d116e4c51d6a957").await;
    assert_eq!(video.fields.status, JobStatus::Completed);
    assert!(video
        .fields
        .output_url
        .as_deref()
        .is_some_and(|u| u.ends_with("/manifest/video.m3u8")));
    // The error arrives late, after the ready: the first end stands.
    assert_eq!(
        h.deliver(vec![delivery(
            "cfs",
            None,
            &body("cloudflare-stream", "webhook-error.json")
        )])
        .await,
        0
    );
    assert_eq!(
        h.state("cfs", "6b9e68b07dfee8cc2d116e4c51d6a957").await.fields.status,
        JobStatus::Completed
    );

    let lost = "ea95132c15732412d22c1476fa83f27a";
    h.store
        .apply(&job_event("cfs", lost, "seen-cfs", JobStatus::Submitted, None))
        .await
        .expect("apply");
    h.provider
        .answer(lost, answer("cloudflare-stream", "get-video-inprogress.json"));
    h.clock.advance(Duration::from_secs(3600));
    h.reconciler.run(&h.sources, deadline()).await.expect("run");
    let state = h.state("cfs", lost).await;
    assert_eq!(
        (state.fields.status, state.fields.progress),
        (JobStatus::Processing, Some(51))
    );
    let requests = h.provider.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, format!("/v1/stream/{lost}"));
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}
