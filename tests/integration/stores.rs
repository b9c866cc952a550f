//! Differential test of the two stores: the DynamoDB store on a real (moto)
//! table and the in-memory store built on the domain's rules alone, given the
//! same operations on the same clock, answer alike and read back alike. So
//! the processor's and the reconciler's unit tests, which run on the
//! in-memory store, test what the table does.

use std::sync::Arc;
use std::time::Duration;

use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::adapters::memory::InMemoryJobStore;
use jobhook::clock::Clock;
use jobhook::clock::ManualClock;
use jobhook::domain::job::{JobEvent, JobStatus, Origin, Outcome};
use jobhook::ports::{JobActivity, JobQuery, JobStore, OpenJobIndex};
use jobhook_tests::{aws, dynamodb, job_event};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const STALE_AFTER: Duration = Duration::from_secs(600);
const JOBS: [&str; 2] = ["job-a", "job-b"];

/// One event a job may receive: its id fixes its content, as a provider's does.
#[derive(Debug, Clone)]
struct EventSpec {
    status: JobStatus,
    progress: Option<u8>,
    origin: Origin,
    provider_time: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// Job index, event index.
    Apply(usize, usize),
    Track(usize),
    Advance(u64),
    /// The reconciler's poll that changed nothing: every due job is pushed back.
    Reschedule,
    NotFound(usize),
    /// Every job due a day from now is abandoned.
    Abandon,
    /// A replay's correction of the job to the event's fields, expecting its
    /// transitions as read, or one more (a job that moved meanwhile).
    Correct(usize, usize, bool),
    /// The keeper records the job's kept outputs, for its output URL or another.
    KeepOutputs(usize, bool),
    /// The keeper records why the job's outputs were not kept.
    OutputsLost(usize, bool),
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let status = prop_oneof![
        Just(JobStatus::Submitted),
        Just(JobStatus::Processing),
        Just(JobStatus::Completed),
        Just(JobStatus::Failed),
        Just(JobStatus::Canceled),
    ];
    let progress = proptest::option::of(prop_oneof![Just(40u8), Just(41), Just(100)]);
    let origin = prop_oneof![Just(Origin::Webhook), Just(Origin::Poll)];
    (status, progress, origin, any::<bool>()).prop_map(|(status, progress, origin, provider_time)| EventSpec {
        status,
        progress,
        origin,
        provider_time,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..JOBS.len(), 0..4usize).prop_map(|(j, e)| Op::Apply(j, e)),
        1 => (0..JOBS.len()).prop_map(Op::Track),
        2 => prop_oneof![Just(1u64), Just(599), Just(601), Just(3_600)].prop_map(Op::Advance),
        1 => Just(Op::Reschedule),
        1 => (0..JOBS.len()).prop_map(Op::NotFound),
        1 => Just(Op::Abandon),
        2 => (0..JOBS.len(), 0..4usize, any::<bool>()).prop_map(|(j, e, moved)| Op::Correct(j, e, moved)),
        2 => (0..JOBS.len(), any::<bool>()).prop_map(|(j, same)| Op::KeepOutputs(j, same)),
        1 => (0..JOBS.len(), any::<bool>()).prop_map(|(j, same)| Op::OutputsLost(j, same)),
    ]
}

fn event(source: &str, job: usize, index: usize, spec: &EventSpec) -> JobEvent {
    let mut event = job_event(
        source,
        JOBS[job],
        &format!("{}-e{index}", JOBS[job]),
        spec.status,
        spec.progress,
    );
    event.origin = spec.origin;
    event.provider_time = spec
        .provider_time
        .then(|| time::OffsetDateTime::from_unix_timestamp(1_778_000_000 + index as i64).expect("in range"));
    event
}

/// Both stores, one source per case so that cases share no open-jobs index.
struct Pair {
    table: DynamoJobStore,
    memory: InMemoryJobStore,
    clock: Arc<ManualClock>,
    source: String,
}

impl Pair {
    async fn run(&self, op: &Op, events: &[EventSpec]) -> Result<(), TestCaseError> {
        let now_ms = jobhook::clock::unix_ms(jobhook::clock::Clock::now(&*self.clock));
        match op {
            Op::Apply(job, index) => {
                let event = event(&self.source, *job, *index, &events[*index]);
                let (a, b) = (
                    self.table.apply(&event).await.expect("table apply"),
                    self.memory.apply(&event).await.expect("memory apply"),
                );
                prop_assert_eq!(a.outcome, b.outcome, "{:?}", op);
                // A duplicate's cancellation need not carry the state, and
                // the table's apply condition does not say the previous one.
                if !matches!(a.outcome, Outcome::Duplicate | Outcome::Applied) {
                    prop_assert_eq!((a.from, a.to), (b.from, b.to), "{:?}", op);
                }
            }
            Op::Track(job) => {
                let (a, b) = (
                    self.table.track(&self.source, JOBS[*job]).await.expect("table track"),
                    self.memory.track(&self.source, JOBS[*job]).await.expect("memory track"),
                );
                prop_assert_eq!(a, b, "{:?}", op);
            }
            Op::Advance(secs) => self.clock.advance(Duration::from_secs(*secs)),
            Op::Reschedule => {
                let due = self.table.due_open_jobs(&self.source, now_ms, 10).await.expect("due");
                for job in &due {
                    let misses = job.poll_misses + 1;
                    let next = now_ms + 60_000 * i64::from(misses);
                    self.table
                        .reschedule(job, next, misses)
                        .await
                        .expect("table reschedule");
                    self.memory
                        .reschedule(job, next, misses)
                        .await
                        .expect("memory reschedule");
                }
            }
            Op::NotFound(job) => {
                let (a, b) = (
                    self.table
                        .record_not_found(&self.source, JOBS[*job])
                        .await
                        .expect("table 404"),
                    self.memory
                        .record_not_found(&self.source, JOBS[*job])
                        .await
                        .expect("memory 404"),
                );
                prop_assert_eq!(a, b, "{:?}", op);
            }
            Op::Abandon => {
                let later = now_ms + 86_400_000;
                let due = self.table.due_open_jobs(&self.source, later, 10).await.expect("due");
                for job in &due {
                    let (a, b) = (
                        self.table.abandon(job, "test").await.expect("table abandon"),
                        self.memory.abandon(job, "test").await.expect("memory abandon"),
                    );
                    prop_assert_eq!(a, b, "{:?}", op);
                }
            }
            Op::Correct(job, index, moved) => {
                let stored = self.table.get(&self.source, JOBS[*job]).await.expect("table get");
                let transitions = stored.map_or(0, |s| s.transitions);
                let correction = JobEvent {
                    event_id: format!("replay-{}", transitions + 1),
                    kind: "replay".into(),
                    origin: Origin::Replay,
                    ..event(&self.source, *job, *index, &events[*index])
                };
                let expected = transitions + u64::from(*moved);
                let (a, b) = (
                    self.table.correct(&correction, expected).await.expect("table correct"),
                    self.memory
                        .correct(&correction, expected)
                        .await
                        .expect("memory correct"),
                );
                prop_assert_eq!(a, b, "{:?}", op);
            }
            Op::KeepOutputs(job, same_url) => {
                let job = JOBS[*job];
                let url = if *same_url {
                    format!("https://cdn.example.com/{job}.mp4")
                } else {
                    "https://cdn.example.com/other.mp4".to_owned()
                };
                let kept = [jobhook::domain::outputs::KeptOutput {
                    source_url: url.clone(),
                    s3_uri: format!("s3://kept/{job}"),
                    bytes: 7,
                    sha256: "0".repeat(64),
                    content_type: None,
                }];
                let (a, b) = (
                    self.table
                        .record_kept_outputs(&self.source, job, &url, &kept)
                        .await
                        .expect("table keep"),
                    self.memory
                        .record_kept_outputs(&self.source, job, &url, &kept)
                        .await
                        .expect("memory keep"),
                );
                prop_assert_eq!(a, b, "{:?}", op);
            }
            Op::OutputsLost(job, same_url) => {
                let job = JOBS[*job];
                let url = if *same_url {
                    format!("https://cdn.example.com/{job}.mp4")
                } else {
                    "https://cdn.example.com/other.mp4".to_owned()
                };
                let why = "the output is gone at the provider (HTTP 404)";
                let (a, b) = (
                    self.table
                        .record_outputs_lost(&self.source, job, &url, why)
                        .await
                        .expect("table lost"),
                    self.memory
                        .record_outputs_lost(&self.source, job, &url, why)
                        .await
                        .expect("memory lost"),
                );
                prop_assert_eq!(a, b, "{:?}", op);
            }
        }
        self.reads_agree(op).await
    }

    async fn reads_agree(&self, after: &Op) -> Result<(), TestCaseError> {
        for job in JOBS {
            prop_assert_eq!(
                self.table.get(&self.source, job).await.expect("table get"),
                self.memory.get(&self.source, job).await.expect("memory get"),
                "state of {} after {:?}",
                job,
                after
            );
            prop_assert_eq!(
                self.table.timeline(&self.source, job).await.expect("table timeline"),
                self.memory.timeline(&self.source, job).await.expect("memory timeline"),
                "timeline of {} after {:?}",
                job,
                after
            );
        }
        let far = i64::MAX / 2;
        let mut due = (
            self.table
                .due_open_jobs(&self.source, far, 10)
                .await
                .expect("table due"),
            self.memory
                .due_open_jobs(&self.source, far, 10)
                .await
                .expect("memory due"),
        );
        // The index orders by due time only; ties may come either way.
        for list in [&mut due.0, &mut due.1] {
            list.sort_by(|a, b| (a.next_poll_at_ms, &a.job_id).cmp(&(b.next_poll_at_ms, &b.job_id)));
        }
        prop_assert_eq!(due.0, due.1, "open jobs after {:?}", after);
        // The console's reads: the activity index and the open counts.
        prop_assert_eq!(
            self.table
                .recent(&self.source, None, None, 10)
                .await
                .expect("table recent"),
            self.memory
                .recent(&self.source, None, None, 10)
                .await
                .expect("memory recent"),
            "activity after {:?}",
            after
        );
        let overdue_before = jobhook::clock::unix_ms(self.clock.now());
        prop_assert_eq!(
            self.table
                .open_counts(&self.source, overdue_before)
                .await
                .expect("table counts"),
            self.memory
                .open_counts(&self.source, overdue_before)
                .await
                .expect("memory counts"),
            "open counts after {:?}",
            after
        );
        Ok(())
    }
}

#[test]
fn the_in_memory_store_answers_and_reads_back_as_the_table_does() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (ddb, table) = runtime.block_on(async {
        let config = aws().await;
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let table = dynamodb::create_table(&ddb, "diff").await;
        (ddb, table)
    });
    let cases = (
        proptest::collection::vec(event_spec(), 4),
        proptest::collection::vec(op(), 1..14),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&cases, |(events, ops)| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let clock = Arc::new(ManualClock::at_unix(1_778_673_600));
            let pair = Pair {
                table: DynamoJobStore::new(ddb.clone(), &table, Duration::from_secs(86_400), clock.clone())
                    .with_stale_after(STALE_AFTER),
                memory: InMemoryJobStore::new(clock.clone()).with_stale_after(STALE_AFTER),
                clock,
                source: format!("diff{n}"),
            };
            runtime.block_on(async {
                for op in &ops {
                    pair.run(op, &events).await?;
                }
                Ok(())
            })
        })
        .expect("the in-memory store and the table agree");
}

/// The keeper's record on both stores, in the order that matters: a
/// completed job kept, kept again (a redelivered request), kept for a URL it
/// no longer has, corrected (which clears the copies) and kept again.
#[test]
fn both_stores_record_kept_outputs_once_and_only_for_the_job_s_current_output() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = aws().await;
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let table = dynamodb::create_table(&ddb, "kept").await;
        let clock = Arc::new(ManualClock::at_unix(1_778_673_600));
        let pair = Pair {
            table: DynamoJobStore::new(ddb, &table, Duration::from_secs(86_400), clock.clone())
                .with_stale_after(STALE_AFTER),
            memory: InMemoryJobStore::new(clock.clone()).with_stale_after(STALE_AFTER),
            clock,
            source: "kept".into(),
        };
        let completed = EventSpec {
            status: JobStatus::Completed,
            progress: None,
            origin: Origin::Webhook,
            provider_time: true,
        };
        let events = vec![completed.clone(), completed.clone(), completed.clone(), completed];
        for op in [
            Op::KeepOutputs(0, true),
            Op::Apply(0, 0),
            Op::KeepOutputs(0, false),
            Op::KeepOutputs(0, true),
            Op::KeepOutputs(0, true),
            Op::Correct(0, 1, false),
            Op::KeepOutputs(0, true),
            Op::KeepOutputs(0, true),
        ] {
            pair.run(&op, &events).await.expect("the stores agree");
        }
        let job = pair.memory.get("kept", JOBS[0]).await.expect("get").expect("job");
        assert_eq!(
            (job.transitions, job.kept_outputs.map(|k| k.len())),
            (4, Some(1)),
            "applied, kept, corrected, kept again"
        );
    });
}
