//! The downstream path on moto: job state written by the store → the
//! table's stream (read as the event source mapping reads it) → `notifier`
//! → EventBridge → a rule → an SQS queue, where the tests read what an
//! application would receive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::eventbridge::EventBridgeBus;
use jobhook::clock::SystemClock;
use jobhook::domain::job::{JobStatus, Origin};
use jobhook::domain::notification::Notification;
use jobhook::ports::{JobStore, NotificationBus, PortError};
use jobhook_dev::streams::{lambda_record, StreamReader};
use jobhook_tests::probe::Probe;
use jobhook_tests::{aws, deadline, dynamodb, job_event, sqs, unique_name, TEST_BACKOFF};
use notifier::Notifier;
use serde_json::json;

struct Downstream {
    store: DynamoJobStore,
    probe: Probe,
    reader: StreamReader,
    stream_arn: String,
    bus: EventBridgeBus,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn downstream() -> Downstream {
    let config = aws().await;
    let probe = Probe::default();
    let ddb = dynamodb::probed_client(&config, &probe);
    let table = dynamodb::create_table(&ddb, "notify").await;
    let stream_arn = aws_sdk_dynamodb::Client::new(&config)
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream");
    let reader = StreamReader::open(aws_sdk_dynamodbstreams::Client::new(&config), &stream_arn)
        .await
        .expect("stream");

    // The bus, and an application's queue subscribed to it by a rule.
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus_name = unique_name("bus");
    events.create_event_bus().name(&bus_name).send().await.expect("bus");
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs::create_queue(&sqs_client, "app").await;
    jobhook::adapters::eventbridge::route_to_queue(
        &events,
        &sqs_client,
        &bus_name,
        &unique_name("rule"),
        &queue_url,
        None,
    )
    .await
    .expect("the application's queue subscribed");
    Downstream {
        store: DynamoJobStore::new(ddb, table, Duration::from_secs(86_400), Arc::new(SystemClock)),
        probe,
        reader,
        stream_arn,
        bus: EventBridgeBus::new(events, bus_name),
        sqs: sqs_client,
        queue_url,
    }
}

impl Downstream {
    /// Runs the event source mapping until the stream has nothing new:
    /// each batch to the notifier, re-reading from a reported failure.
    async fn pump(&mut self, notifier: &Notifier) {
        for _ in 0..50 {
            let (shard, records) = self.reader.next_batch(100).await.expect("records");
            if records.is_empty() {
                return;
            }
            let event: Event = serde_json::from_value(json!({
                "Records": records.iter().map(|r| lambda_record(r, &self.stream_arn, "us-east-1")).collect::<Vec<_>>()
            }))
            .expect("a DynamoDB stream event");
            let response = notifier.handle(event, deadline()).await;
            if let Some(failed) = response.batch_item_failures.first() {
                let sequence = failed.item_identifier.as_deref().expect("a sequence number");
                self.reader.retry_from(&shard, sequence).await.expect("retry");
            }
        }
        panic!("the stream kept producing records");
    }

    /// What the application's queue received, in arrival order.
    async fn received(&self) -> Vec<Notification> {
        sqs::drain(&self.sqs, &self.queue_url, 2)
            .await
            .iter()
            .map(|m| {
                let event: serde_json::Value = serde_json::from_str(m.body().expect("body")).expect("an event");
                assert_eq!(event["source"], "jobhook");
                serde_json::from_value(event["detail"].clone()).expect("a notification")
            })
            .collect()
    }

    fn notifier(&self) -> Notifier {
        Notifier {
            bus: Arc::new(self.bus.clone()),
            outputs: None,
            backoff: TEST_BACKOFF,
        }
    }
}

/// Distinct transition ids in first-seen order, and how many repeats.
fn distinct(notifications: &[Notification]) -> (Vec<String>, usize) {
    let mut ids: Vec<String> = Vec::new();
    for n in notifications {
        if !ids.contains(&n.transition_id) {
            ids.push(n.transition_id.clone());
        }
    }
    let repeats = notifications.len() - ids.len();
    (ids, repeats)
}

#[tokio::test]
async fn each_applied_transition_is_published_once_in_order_and_nothing_else_is() {
    let mut d = downstream().await;
    let e = |id: &str, status, progress| job_event("acme", "job-n", id, status, progress);
    for event in [
        e("n1", JobStatus::Processing, None),
        e("n2", JobStatus::Processing, Some(40)),
        e("n2", JobStatus::Processing, Some(40)), // a duplicate
        e("n0", JobStatus::Processing, Some(20)), // stale
        e("n3", JobStatus::Completed, None),
        e("n4", JobStatus::Failed, None), // a conflicting terminal event
    ] {
        d.store.apply(&event).await.expect("apply");
    }
    d.pump(&d.notifier()).await;
    let got = d.received().await;
    let (ids, _repeats) = distinct(&got);
    assert_eq!(ids, ["acme:job-n:1", "acme:job-n:2", "acme:job-n:3"], "{got:#?}");
    let by_id = |id: &str| got.iter().find(|n| n.transition_id == id).expect("notified");
    let (first, second, last) = (by_id("acme:job-n:1"), by_id("acme:job-n:2"), by_id("acme:job-n:3"));
    assert_eq!(
        (first.from, first.to, first.event_id.as_str()),
        (None, JobStatus::Processing, "n1")
    );
    assert_eq!((second.from, second.progress), (Some(JobStatus::Processing), Some(40)));
    assert_eq!(
        (last.from, last.to, last.origin),
        (Some(JobStatus::Processing), JobStatus::Completed, Origin::Webhook)
    );
    assert_eq!(last.output_url.as_deref(), Some("https://cdn.example.com/job-n.mp4"));
    let order: Vec<u64> = got.iter().map(|n| n.transition).collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "published in transition order: {order:?}"
    );
}

#[tokio::test]
async fn a_transition_is_published_even_if_the_writer_crashed_right_after_the_write() {
    let mut d = downstream().await;
    // The write commits, then the processor sees a failure and stops: it
    // never publishes anything itself. The stream still carries the write.
    d.probe.fail_after_execution("TransactWriteItems", Some("job-crash"), 1);
    let result = d
        .store
        .apply(&job_event("acme", "job-crash", "c1", JobStatus::Processing, None))
        .await;
    assert!(result.is_err(), "the writer saw a failure");
    d.pump(&d.notifier()).await;
    let (ids, _) = distinct(&d.received().await);
    assert_eq!(ids, ["acme:job-crash:1"]);
}

/// EventBridge answering 200 with some entries refused (`FailedEntryCount`),
/// as it does under load: the first `refusals` calls refuse their second
/// entry; everything else goes to the real bus.
#[derive(Debug)]
struct PartlyRefusing {
    inner: EventBridgeBus,
    refusals: Mutex<u32>,
    calls: Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl NotificationBus for PartlyRefusing {
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    async fn publish(&self, batch: &[Notification]) -> Result<Vec<Option<PortError>>, PortError> {
        self.calls.lock().expect("lock").push(batch.len());
        let refuse = {
            let mut left = self.refusals.lock().expect("lock");
            let refuse = *left > 0 && batch.len() > 1;
            *left -= u32::from(refuse);
            refuse
        };
        if !refuse {
            return self.inner.publish(batch).await;
        }
        let mut accepted = batch.to_vec();
        accepted.remove(1);
        let mut results = self.inner.publish(&accepted).await?;
        results.insert(
            1,
            Some(PortError::transient("events:PutEvents", "InternalFailure: injected")),
        );
        Ok(results)
    }
}

#[tokio::test]
async fn a_partial_putevents_failure_is_retried_until_every_entry_is_accepted() {
    let mut d = downstream().await;
    for (i, status) in [JobStatus::Processing, JobStatus::Completed].into_iter().enumerate() {
        for job in ["pa", "pb"] {
            d.store
                .apply(&job_event("acme", job, &format!("{job}-{i}"), status, None))
                .await
                .expect("apply");
        }
    }
    let bus = Arc::new(PartlyRefusing {
        inner: d.bus.clone(),
        refusals: Mutex::new(1),
        calls: Mutex::new(Vec::new()),
    });
    let notifier = Notifier {
        bus: bus.clone(),
        outputs: None,
        backoff: TEST_BACKOFF,
    };
    d.pump(&notifier).await;
    let (mut ids, _) = distinct(&d.received().await);
    ids.sort();
    assert_eq!(ids, ["acme:pa:1", "acme:pa:2", "acme:pb:1", "acme:pb:2"]);
    let calls = bus.calls.lock().expect("lock").clone();
    assert!(
        calls.contains(&1),
        "the refused entry was sent again on its own: {calls:?}"
    );
}

#[tokio::test]
async fn a_notification_the_bus_keeps_refusing_stops_the_batch_and_is_retried_from_there() {
    let mut d = downstream().await;
    for i in 1..=3u8 {
        d.store
            .apply(&job_event(
                "acme",
                "job-r",
                &format!("r{i}"),
                JobStatus::Processing,
                Some(i * 10),
            ))
            .await
            .expect("apply");
    }
    // Refuses every call that holds transition 2 until the bus recovers.
    #[derive(Debug)]
    struct RefuseSecond {
        inner: EventBridgeBus,
        recovered: Mutex<bool>,
    }
    #[async_trait::async_trait]
    impl NotificationBus for RefuseSecond {
        fn max_batch(&self) -> usize {
            1
        }
        async fn publish(&self, batch: &[Notification]) -> Result<Vec<Option<PortError>>, PortError> {
            if batch[0].transition == 2 && !*self.recovered.lock().expect("lock") {
                return Err(PortError::transient(
                    "events:PutEvents",
                    "ThrottlingException: injected",
                ));
            }
            self.inner.publish(batch).await
        }
    }
    let bus = Arc::new(RefuseSecond {
        inner: d.bus.clone(),
        recovered: Mutex::new(false),
    });
    let notifier = Notifier {
        bus: bus.clone(),
        outputs: None,
        backoff: jobhook::retry::Backoff {
            max_attempts: 2,
            ..TEST_BACKOFF
        },
    };
    let (_, records) = d.reader.next_batch(100).await.expect("records");
    let event: Event = serde_json::from_value(json!({
        "Records": records.iter().map(|r| lambda_record(r, &d.stream_arn, "us-east-1")).collect::<Vec<_>>()
    }))
    .expect("event");
    let response = notifier.handle(event, deadline()).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the first record it could not publish"
    );
    let (ids, _) = distinct(&d.received().await);
    assert_eq!(
        ids,
        ["acme:job-r:1"],
        "nothing after the refused one was published out of order"
    );
    let reported = response.batch_item_failures[0]
        .item_identifier
        .clone()
        .expect("sequence");
    let refused_record = records
        .iter()
        .find(|r| r.dynamodb().and_then(|c| c.sequence_number()) == Some(reported.as_str()))
        .expect("a record of the batch");
    let transitions = refused_record
        .dynamodb()
        .and_then(|c| c.new_image())
        .and_then(|i| i.get("transitions"))
        .and_then(|v| v.as_n().ok())
        .cloned();
    assert_eq!(transitions.as_deref(), Some("2"), "reported at transition 2");

    // The bus recovers, and the stream hands the batch over again from the
    // reported record, as Lambda does: 2 and 3 follow 1, in order.
    *bus.recovered.lock().expect("lock") = true;
    let from_reported: Vec<_> = records
        .iter()
        .skip_while(|r| r.dynamodb().and_then(|c| c.sequence_number()) != Some(reported.as_str()))
        .map(|r| lambda_record(r, &d.stream_arn, "us-east-1"))
        .collect();
    assert!(
        from_reported.len() < records.len(),
        "the retry starts at the reported record"
    );
    let retry: Event = serde_json::from_value(json!({ "Records": from_reported })).expect("event");
    let response = notifier.handle(retry, deadline()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let (ids, _) = distinct(&d.received().await);
    assert_eq!(ids, ["acme:job-r:2", "acme:job-r:3"], "the rest, in order");
}

/// A profile that reads one field wrongly: Replicate's, dropping the output
/// URL, as a profile would after the provider renamed the field.
#[derive(Debug)]
struct MisreadsOutput(&'static dyn jobhook::domain::provider::ProviderProfile);

impl jobhook::domain::provider::ProviderProfile for MisreadsOutput {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn parse_webhook(
        &self,
        body: &[u8],
    ) -> Result<jobhook::domain::provider::WebhookPayload, jobhook::domain::provider::PayloadError> {
        let mut payload = self.0.parse_webhook(body)?;
        payload.output_url = None;
        Ok(payload)
    }
    fn poll_request(
        &self,
        job_id: &str,
    ) -> Result<jobhook::domain::provider::ApiRequest, jobhook::domain::provider::PayloadError> {
        self.0.poll_request(job_id)
    }
    fn parse_poll(
        &self,
        body: &[u8],
    ) -> Result<jobhook::domain::provider::PollAnswer, jobhook::domain::provider::PayloadError> {
        self.0.parse_poll(body)
    }
}

#[tokio::test]
async fn a_job_a_profile_misread_is_repaired_by_replay_with_one_notification_and_a_second_replay_changes_nothing() {
    use jobhook::domain::archive::{ArchiveLocation, ArchiveRecord, RecordKind};
    use jobhook::domain::event::job_event_from_delivery;

    let mut d = downstream().await;
    let notifier = d.notifier();
    let replicate = jobhook::domain::provider::profile("replicate").expect("profile");
    let job_id = "rr4bt2k6k9rme0cg3s1vq6wqx8";
    // Replicate's documented deliveries (events/providers/replicate/), of one prediction.
    let mut starting: serde_json::Value =
        serde_json::from_str(&jobhook_tests::fixture("providers/replicate/webhook-starting.json")).unwrap();
    starting["id"] = json!(job_id);
    let deliveries = [
        ("msg_1", starting.to_string().into_bytes()),
        (
            "msg_2",
            jobhook_tests::fixture("providers/replicate/webhook-succeeded-list-output.json").into_bytes(),
        ),
    ];
    // Applied as the processor does, by the profile that misreads.
    for (webhook_id, body) in &deliveries {
        let record = ArchiveRecord {
            kind: RecordKind::Delivery,
            source: "rep".into(),
            received_at: jobhook::clock::rfc3339(time::OffsetDateTime::now_utc()),
            scheme: Some("standard-webhooks".into()),
            verification: Some("verified".into()),
            webhook_id: Some((*webhook_id).into()),
            signed_at: None,
            headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
            body: body.clone(),
            answer: None,
        };
        let mut event = job_event_from_delivery("rep", Some(webhook_id), body, &MisreadsOutput(replicate))
            .expect("parses")
            .event;
        event.archive = Some(ArchiveLocation::Inline(record.encode()));
        d.store.apply(&event).await.expect("applied");
    }
    d.pump(&notifier).await;
    let before = d.received().await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(before[1].output_url, None, "the misread");

    let sources = jobhook_tests::fixture_path("sources.fixtures.json");
    let table = d.store.table().to_owned();
    let replay = |apply: bool| {
        let mut argv = vec!["jobhook", "replay", "rep", job_id, "--table", &table, "--json"];
        argv.extend(["--sources-file", sources.to_str().unwrap()]);
        if apply {
            argv.push("--apply");
        }
        jobhook_cli::Cli::try_parse_from(argv).expect("arguments parse")
    };
    use clap::Parser as _;
    let config = aws().await;
    let run = |cli| {
        let config = config.clone();
        async move {
            let mut out = Vec::new();
            jobhook_cli::run(cli, &config, &mut out).await.expect("replay");
            serde_json::from_slice::<serde_json::Value>(&out).expect("json")
        }
    };

    let dry = run(replay(false)).await;
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["differences"][0]["field"], "output_url", "{dry}");
    assert_eq!(
        dry["differences"][0]["derived"],
        "https://replicate.delivery/xezq/abc123/out-0.webp"
    );
    d.pump(&notifier).await;
    assert!(d.received().await.is_empty(), "a dry run notifies nothing");

    let applied = run(replay(true)).await;
    assert_eq!(
        (applied["applied"].clone(), applied["transition"].clone()),
        (json!(true), json!(3))
    );
    d.pump(&notifier).await;
    let after = d.received().await;
    assert_eq!(
        after.len(),
        1,
        "one notification for the one corrected transition: {after:?}"
    );
    assert_eq!(after[0].transition_id, format!("rep:{job_id}:3"));
    assert_eq!(after[0].origin, Origin::Replay);
    assert_eq!(
        after[0].output_url.as_deref(),
        Some("https://replicate.delivery/xezq/abc123/out-0.webp")
    );
    assert_eq!(after[0].from, Some(JobStatus::Completed));

    let again = run(replay(true)).await;
    assert_eq!(
        (again["applied"].clone(), again["differences"].clone()),
        (json!(false), json!([]))
    );
    d.pump(&notifier).await;
    assert!(d.received().await.is_empty(), "nothing changed the second time");
}

#[tokio::test]
async fn notifications_replay_sends_a_window_of_missed_notifications_again_with_their_transition_ids() {
    let mut d = downstream().await;
    let notifier = d.notifier();
    let config = aws().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus_arn = events
        .describe_event_bus()
        .name(d.bus.name())
        .send()
        .await
        .expect("bus")
        .arn
        .expect("arn");
    let archive = unique_name("arch");
    events
        .create_archive()
        .archive_name(&archive)
        .event_source_arn(&bus_arn)
        .event_pattern(r#"{"source": ["jobhook"], "detail-type": ["jobhook.transition"]}"#)
        .send()
        .await
        .expect("archive");

    // One notification before the window, two in it that the consumer missed.
    d.store
        .apply(&job_event("acme", "early", "r0", JobStatus::Processing, None))
        .await
        .expect("applied");
    d.pump(&notifier).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let since = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for (id, status) in [("r1", JobStatus::Processing), ("r2", JobStatus::Completed)] {
        d.store
            .apply(&job_event("acme", "missed", id, status, None))
            .await
            .expect("applied");
    }
    d.pump(&notifier).await;
    let missed = d.received().await;
    assert_eq!(missed.len(), 3, "{missed:?}");

    let since_text = jobhook::clock::rfc3339(since);
    let mut argv = vec!["jobhook", "notifications", "replay", "--since", &since_text, "--json"];
    argv.extend(["--archive", &archive, "--bus", d.bus.name(), "--poll-secs", "0.1"]);
    use clap::Parser as _;
    let cli = jobhook_cli::Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    jobhook_cli::run(cli, &config, &mut out).await.expect("replay");
    let answer: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(answer["state"], "COMPLETED", "{answer}");

    let again = d.received().await;
    let (ids, repeats) = distinct(&again);
    assert_eq!(
        ids,
        ["acme:missed:1", "acme:missed:2"],
        "the window's notifications, and only those"
    );
    assert_eq!(repeats, 0);
    let first: Vec<&str> = missed[1..].iter().map(|n| n.transition_id.as_str()).collect();
    assert_eq!(first, ids, "the same transition ids, for consumers to dedupe on");

    // A second replay of the window sends them once more, not twice: a
    // replayed notification is not archived again.
    let mut argv = vec!["jobhook", "notifications", "replay", "--since", &since_text];
    argv.extend(["--archive", &archive, "--bus", d.bus.name(), "--poll-secs", "0.1"]);
    let cli = jobhook_cli::Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    jobhook_cli::run(cli, &config, &mut out).await.expect("replay");
    assert_eq!(distinct(&d.received().await), (ids, 0));

    let argv = [
        "jobhook",
        "notifications",
        "replay",
        "--since",
        "2999-01-01T00:00:00Z",
        "--archive",
        "a",
        "--bus",
        "b",
    ];
    let cli = jobhook_cli::Cli::try_parse_from(argv).expect("arguments parse");
    let error = jobhook_cli::run(cli, &config, &mut Vec::new())
        .await
        .expect_err("refused");
    assert!(matches!(error, jobhook_cli::CliError::Usage(_)), "{error}");
}

/// A fake outputs queue that refuses while asked to, then takes requests.
#[tokio::test]
async fn a_completion_with_an_output_is_asked_to_be_kept_before_it_is_notified_and_its_keep_is_notified_with_the_copies(
) {
    use jobhook::adapters::memory::InMemoryOutputRequests;
    use std::sync::atomic::Ordering;
    let mut d = downstream().await;
    let outputs = Arc::new(InMemoryOutputRequests::default());
    outputs.refuse.store(true, Ordering::SeqCst);
    let notifier = Notifier {
        bus: Arc::new(d.bus.clone()),
        outputs: Some(outputs.clone()),
        backoff: jobhook::retry::Backoff {
            max_attempts: 1,
            ..TEST_BACKOFF
        },
    };
    for (event_id, status) in [("e1", JobStatus::Processing), ("e2", JobStatus::Completed)] {
        d.store
            .apply(&job_event("acme", "j1", event_id, status, None))
            .await
            .expect("apply");
    }
    // The outputs queue refuses: the processing transition is notified, the
    // completion is not, and the stream holds it.
    let (shard, records) = d.reader.next_batch(100).await.expect("records");
    let event: Event = serde_json::from_value(json!({
        "Records": records.iter().map(|r| lambda_record(r, &d.stream_arn, "us-east-1")).collect::<Vec<_>>()
    }))
    .expect("a stream event");
    let response = notifier.handle(event, deadline()).await;
    let failed = response.batch_item_failures.first().expect("the completion is retried");
    d.reader
        .retry_from(&shard, failed.item_identifier.as_deref().expect("sequence"))
        .await
        .expect("retry");
    let heard: Vec<u64> = d.received().await.iter().map(|n| n.transition).collect();
    assert_eq!(heard, [1], "only what came before the refused request");
    assert!(outputs.taken().is_empty());

    outputs.refuse.store(false, Ordering::SeqCst);
    d.pump(&notifier).await;
    let requests = outputs.taken();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (
            requests[0].job_id.as_str(),
            requests[0].output_url.as_str(),
            requests[0].transition
        ),
        ("j1", "https://cdn.example.com/j1.mp4", 2)
    );
    let completed = d.received().await;
    assert_eq!(completed.iter().map(|n| n.transition).collect::<Vec<_>>(), [2]);
    assert_eq!(
        completed[0].kept_outputs, None,
        "the completion is not held back for the copy"
    );

    // The keeper records the copies: one more transition, origin keep, that
    // carries them and asks for nothing more.
    let kept = [jobhook::domain::outputs::KeptOutput {
        source_url: "https://cdn.example.com/j1.mp4".into(),
        s3_uri: "s3://kept/acme/j1/j1.mp4".into(),
        bytes: 3,
        sha256: "a".repeat(64),
        content_type: Some("video/mp4".into()),
    }];
    assert!(d
        .store
        .record_kept_outputs("acme", "j1", "https://cdn.example.com/j1.mp4", &kept)
        .await
        .expect("record"));
    assert!(
        !d.store
            .record_kept_outputs("acme", "j1", "https://cdn.example.com/j1.mp4", &kept)
            .await
            .expect("record again"),
        "kept once"
    );
    d.pump(&notifier).await;
    let announced = d.received().await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        (announced[0].transition, announced[0].origin, announced[0].to),
        (3, Origin::Keep, JobStatus::Completed)
    );
    assert_eq!(announced[0].kept_outputs.as_deref(), Some(&kept[..]));
    assert_eq!(outputs.taken().len(), 1, "the keep transition asks for no copy");
}
