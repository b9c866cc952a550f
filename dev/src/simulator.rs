//! A provider that misbehaves on purpose. It runs jobs through
//! `started` → `progress`… → `completed` | `failed` | `canceled`, speaks the
//! source's provider (its webhooks, signatures and polling API, see
//! [`crate::dialect`]), and delivers signed webhooks the way real providers
//! do (retries with exponential backoff for a bounded time), with
//! duplicates, reordering, drops, an outage window and jobs that never send
//! a webhook. It keeps the truth and, at the end, checks the pipeline
//! against it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::clock::SystemClock;
use jobhook::domain::job::{JobStatus, Origin, Outcome};
use jobhook::domain::schedule::doubling;
use jobhook::domain::signature::sign;
use jobhook::ports::{JobQuery as _, JobStore as _};
use jobhook::SourceConfig;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::dialect::{self, Dialect};
use crate::outage;
use jobhook_dev::seed::Error;

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Jobs to run.
    #[arg(long, default_value_t = 200)]
    pub jobs: usize,
    /// Share of deliveries sent twice (the copy up to 3 s later).
    #[arg(long, default_value_t = 0.15)]
    pub duplicate_rate: f64,
    /// Delay each delivery by up to this many ms, so a job's events overtake each other (0: in order).
    #[arg(long, default_value_t = 1500)]
    pub reorder_ms: u64,
    /// Share of deliveries never sent, terminal ones included.
    #[arg(long, default_value_t = 0.10)]
    pub drop_rate: f64,
    /// Share of jobs that never send any webhook; they are tracked at submission instead.
    #[arg(long, default_value_t = 0.05)]
    pub silent_rate: f64,
    /// Share of jobs that fail rather than complete.
    #[arg(long, default_value_t = 0.10)]
    pub failure_rate: f64,
    /// Share of the other jobs that are canceled rather than complete.
    #[arg(long, default_value_t = 0.05)]
    pub cancel_rate: f64,
    /// The receiver is down from this second of the run (its front door answers
    /// 503 for the first half of the window, then refuses connections)…
    #[arg(long, default_value_t = 4.0)]
    pub outage_start_secs: f64,
    /// …for this long.
    #[arg(long, default_value_t = 3.0)]
    pub outage_secs: f64,
    /// Jobs start spread over this many seconds.
    #[arg(long, default_value_t = 20.0)]
    pub spread_secs: f64,
    /// A delivery is retried for at most this long, then given up.
    #[arg(long, default_value_t = 30.0)]
    pub retry_window_secs: f64,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Give up waiting for the pipeline to converge after this long.
    #[arg(long, default_value_t = 150)]
    pub converge_timeout_secs: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The largest output a generic or Replicate job completes with (1 in 25
    /// jobs; the rest are 1 to 256 KiB). Up to 5 GiB, streamed, never held.
    #[arg(long, default_value_t = 9 * 1024 * 1024)]
    pub output_max_bytes: u64,
    /// An output is gone (404) this long after its job ended, as at the
    /// provider; the source's `keep_outputs.retention_secs` says the same.
    #[arg(long, default_value_t = 240)]
    pub output_retention_secs: u64,
}

#[derive(Debug, Clone)]
struct SimEvent {
    webhook_id: String,
    at: Duration,
    status: JobStatus,
    progress: Option<u8>,
    /// Whether the provider sends a webhook for it.
    webhook: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truth {
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
struct SimJob {
    id: String,
    silent: bool,
    events: Vec<SimEvent>,
    truth: Truth,
    dialect: Dialect,
}

impl SimJob {
    fn state(&self, index: usize) -> dialect::State {
        let e = &self.events[index];
        dialect::State {
            status: e.status,
            progress: e.progress,
            first: index == 0,
        }
    }

    /// The job's latest event at `elapsed` into the run, if it has started.
    fn latest(&self, elapsed: Duration) -> Option<usize> {
        self.events.iter().rposition(|e| e.at <= elapsed)
    }

    /// What the provider's API says at `elapsed` into the run.
    fn answer(&self, elapsed: Duration) -> Value {
        self.dialect
            .answer(&self.id, self.latest(elapsed).map(|i| self.state(i)))
    }

    /// The event id jobhook records for this job's delivery: the
    /// delivery's own, or for a trigger the job's end as the API answers it.
    fn expected_event_id(&self, source: &str, delivery_id: &str, body: &str) -> String {
        match self.dialect.is_trigger() {
            true => self
                .dialect
                .trigger_event_id(source, &self.id, self.state(self.events.len() - 1)),
            false => self.dialect.event_id(delivery_id, body),
        }
    }

    fn body(&self, index: usize) -> String {
        self.dialect.webhook(&self.id, index, self.state(index))
    }
}

fn plan(args: &SimArgs, dialect: Dialect, rng: &mut StdRng) -> Vec<SimJob> {
    (0..args.jobs)
        .map(|j| {
            let id = dialect.job_id(j);
            let start = rng.random_range(0.0..args.spread_secs.max(0.001));
            let mut at = start;
            let mut events = vec![];
            let mut progress: Vec<u8> = (0..rng.random_range(1..=3)).map(|_| rng.random_range(5..95)).collect();
            progress.sort_unstable();
            progress.dedup();
            let mut push = |status, progress, at: f64| {
                let n = events.len();
                events.push(SimEvent {
                    webhook_id: dialect.delivery_id(&id, n),
                    at: Duration::from_secs_f64(at),
                    status,
                    progress,
                    webhook: dialect.sends_webhook(dialect::State {
                        status,
                        progress,
                        first: n == 0,
                    }),
                });
            };
            push(JobStatus::Processing, None, at);
            for p in progress {
                at += rng.random_range(0.3..1.0);
                push(JobStatus::Processing, Some(p), at);
            }
            at += rng.random_range(0.3..1.0);
            let failed = dialect.fails() && rng.random_bool(args.failure_rate);
            let canceled = !failed && rng.random_bool(args.cancel_rate) && dialect.cancels();
            let end = if canceled {
                JobStatus::Canceled
            } else if failed {
                JobStatus::Failed
            } else {
                JobStatus::Completed
            };
            push(end, (end == JobStatus::Completed).then_some(100), at);
            let truth = Truth {
                status: end,
                progress: dialect.final_progress(end),
                output_url: (end == JobStatus::Completed).then(|| dialect.output_url(&id)).flatten(),
                error: (end == JobStatus::Failed).then(|| dialect.error(&id)),
            };
            SimJob {
                id,
                silent: rng.random_bool(args.silent_rate),
                events,
                truth,
                dialect,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Delivery {
    job: usize,
    event: usize,
    send_at: Duration,
}

#[derive(Debug, Default, Serialize)]
pub struct DeliveryStats {
    pub planned_events: usize,
    pub deliveries: usize,
    pub duplicates: usize,
    pub dropped: usize,
    pub reordered: usize,
    pub silent_jobs: usize,
    pub attempts: usize,
    pub outage_failures: usize,
    /// Failed attempts that found nothing listening (the rest got a 5xx).
    pub connection_refused: usize,
    pub other_failures: usize,
    /// Answers with a 5xx status other than 503: the receiver must never
    /// give one (503 alone asks the provider to retry).
    pub server_errors_other_than_503: usize,
    /// Answers 4xx but 429: a delivery the simulator sent as its provider
    /// would, refused (a signature, a token or a route the demo got wrong).
    pub refused_4xx: usize,
    pub gave_up: usize,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub provider: String,
    pub jobs: usize,
    #[serde(flatten)]
    pub deliveries: DeliveryStats,
    /// Jobs whose end a poll found first: each one a lost webhook repaired.
    pub recovered_by_polling: usize,
    /// Jobs whose end a webhook brought first.
    pub ended_by_webhook: usize,
    pub correct_final_states: usize,
    pub wrong_final_states: Vec<String>,
    pub duplicate_transitions: usize,
    pub lost_events: usize,
    /// Distinct deliveries the receiver accepted, and how many of them the
    /// archive gives back byte for byte.
    pub distinct_deliveries: usize,
    pub deliveries_archived: usize,
    /// Of those, the ones too large for their timeline entry, read from the bucket.
    pub archived_in_bucket: usize,
    /// Completed jobs whose outputs the source keeps; how many were kept,
    /// how many of the copies in the bucket hash as the provider's bytes, and
    /// how many the provider deleted first.
    pub outputs_to_keep: usize,
    pub outputs_kept: usize,
    pub outputs_checksum_match: usize,
    pub outputs_lost_to_expiry: usize,
    /// The least time left before a kept output expired at the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closest_to_expiry_secs: Option<f64>,
    pub left_on_queue: u64,
    pub left_on_dlq: u64,
    pub converged: bool,
    /// What the application heard on the notifications bus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationStats>,
    /// What the fault proxy injected, when the functions ran behind one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<jobhook_dev::faults::FaultStats>,
    pub wall_time_secs: f64,
}

impl Summary {
    pub fn passed(&self) -> bool {
        self.converged
            && self.wrong_final_states.is_empty()
            && self.duplicate_transitions == 0
            && self.lost_events == 0
            && self.deliveries_archived == self.distinct_deliveries
            && self.outputs_kept == self.outputs_to_keep
            && self.outputs_checksum_match == self.outputs_to_keep
            && self.left_on_dlq == 0
            && self.deliveries.server_errors_other_than_503 == 0
            && self.deliveries.refused_4xx == 0
            && self
                .notifications
                .as_ref()
                .is_none_or(|n| n.missing == 0 && n.out_of_order == 0)
    }

    pub fn print(&self) {
        let d = &self.deliveries;
        println!("provider               {}", self.provider);
        println!("jobs                   {}", self.jobs);
        println!(
            "deliveries             {} ({} duplicates, {} reordered, {} dropped, {} jobs silent)",
            d.deliveries, d.duplicates, d.reordered, d.dropped, d.silent_jobs
        );
        println!(
            "delivery attempts      {} ({} failed in the outage, {} of them refused connections; \
             {} other failures, {} given up)",
            d.attempts, d.outage_failures, d.connection_refused, d.other_failures, d.gave_up
        );
        println!("5xx other than 503     {}", d.server_errors_other_than_503);
        println!("refused (4xx but 429)  {}", d.refused_4xx);
        if let Some(faults) = &self.faults {
            let kinds: Vec<String> = faults.injected.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("faults injected        {} ({})", faults.total(), kinds.join(", "));
            println!(
                "                       {} of the conflicts from real contention; {} retried transactions answered from their token",
                faults.contention_conflicts, faults.replayed_transactions
            );
        }
        if let Some(n) = &self.notifications {
            println!(
                "notifications          {} received, {} distinct, {} missing, {} out of order, {} repeated",
                n.received, n.distinct, n.missing, n.out_of_order, n.repeated
            );
        }
        let ended = self.ended_by_webhook + self.recovered_by_polling;
        println!(
            "webhook coverage       terminal states first seen by webhook {:.0}% ({} of {ended}), repaired by polling {}",
            100.0 * self.ended_by_webhook as f64 / ended.max(1) as f64,
            self.ended_by_webhook,
            self.recovered_by_polling
        );
        println!("correct final states   {}/{}", self.correct_final_states, self.jobs);
        println!("duplicate transitions  {}", self.duplicate_transitions);
        println!("lost events            {}", self.lost_events);
        println!(
            "deliveries archived    {} of {} distinct, byte for byte ({} from the bucket)",
            self.deliveries_archived, self.distinct_deliveries, self.archived_in_bucket
        );
        if self.outputs_to_keep > 0 {
            let closest = self
                .closest_to_expiry_secs
                .map(|s| format!(" (the closest kept {s:.0} s before its output expired)"))
                .unwrap_or_default();
            println!(
                "outputs kept           {}/{}, sha256 match {}, lost to expiry {}{closest}",
                self.outputs_kept, self.outputs_to_keep, self.outputs_checksum_match, self.outputs_lost_to_expiry
            );
        }
        println!("left on queue / DLQ    {} / {}", self.left_on_queue, self.left_on_dlq);
        println!("wall time              {:.1} s", self.wall_time_secs);
        if !self.wrong_final_states.is_empty() {
            println!("wrong: {:?}", self.wrong_final_states);
        }
    }
}

struct Api {
    jobs: HashMap<String, SimJob>,
    token: String,
    dialect: Dialect,
    started: Instant,
    output_retention: Duration,
}

impl SimJob {
    /// When the job ended, into the run.
    fn ended_at(&self) -> Duration {
        self.events.last().map_or(Duration::ZERO, |e| e.at)
    }
}

/// A completed job's output, as a provider's CDN serves it (no credentials):
/// its bytes until `output_retention` after the job ended, then 404.
async fn get_output(
    State(api): State<Arc<Api>>,
    axum::extract::Path((job, len)): axum::extract::Path<(String, u64)>,
) -> Response {
    let Some(sim) = api.jobs.get(&job) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let elapsed = api.started.elapsed();
    let completed = sim.truth.status == JobStatus::Completed && elapsed >= sim.ended_at();
    if !completed || elapsed > sim.ended_at() + api.output_retention {
        return StatusCode::NOT_FOUND.into_response();
    }
    let stream = futures::stream::iter(jobhook_dev::outputs::chunks(&job, len).map(Ok::<_, std::convert::Infallible>));
    (
        [
            (axum::http::header::CONTENT_TYPE, "video/mp4".to_owned()),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Every provider's polling path ends with the job's id; OpusClip's clip
/// list names the project in its query.
async fn get_job(State(api): State<Arc<Api>>, uri: Uri, headers: HeaderMap) -> Response {
    let expected = api.dialect.authorization(&api.token);
    if headers.get(api.dialect.auth_header()).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let path = uri.path();
    let elapsed = api.started.elapsed();
    if path.ends_with("/exportable-clips") {
        let project = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("projectId="))
            .unwrap_or_default();
        return match api.jobs.get(project) {
            Some(job)
                if job
                    .latest(elapsed)
                    .is_some_and(|i| job.events[i].status == JobStatus::Completed) =>
            {
                Json(api.dialect.clips(&job.id)).into_response()
            }
            Some(_) => Json(json!([])).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    // fal's `…/requests/{id}/status`, and `…/requests/{id}` its output.
    let mut segments = path.rsplit('/');
    let (id, status_path) = match segments.next().unwrap_or_default() {
        "status" if api.dialect == Dialect::Fal => (segments.next().unwrap_or_default(), true),
        id => (id, false),
    };
    let Some(job) = api.jobs.get(id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if api.dialect == Dialect::Fal && !status_path {
        let done = job
            .latest(elapsed)
            .is_some_and(|i| job.events[i].status == JobStatus::Completed);
        return match done {
            true => Json(api.dialect.fal_output(&job.id)).into_response(),
            false => StatusCode::BAD_REQUEST.into_response(),
        };
    }
    let answer = job.answer(elapsed);
    let code = StatusCode::from_u16(api.dialect.answer_code(&answer)).unwrap_or(StatusCode::OK);
    (code, Json(answer)).into_response()
}

pub struct Simulator {
    pub args: SimArgs,
    pub source: SourceConfig,
    pub receiver_url: String,
    pub store: DynamoJobStore,
    /// Reads back what the archive kept of each delivery.
    pub archiver: jobhook::archive::Archiver,
    /// Reads back the kept outputs.
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub faults_url: Option<String>,
    /// The bus the notifier publishes to: the simulator subscribes to it as
    /// an application would, and checks what it hears.
    pub consumer: Option<Consumer>,
}

/// An application's subscription to the notifications bus: a queue and a
/// rule, made before the run.
#[derive(Debug)]
pub struct Consumer {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl Consumer {
    pub async fn subscribe(aws: &aws_config::SdkConfig, bus: &str) -> Result<Self, Error> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let name = format!("jobhook-dev-consumer-{}", std::process::id());
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await?
            .queue_url
            .ok_or("no consumer queue url")?;
        let events = aws_sdk_eventbridge::Client::new(aws);
        jobhook::adapters::eventbridge::route_to_queue(&events, &sqs, bus, &name, &queue_url, None).await?;
        Ok(Self { sqs, queue_url })
    }

    /// Every notification heard, in arrival order, waiting until none has
    /// come for a few seconds (at most `patience`).
    async fn drain(&self, patience: Duration) -> Result<Vec<jobhook::domain::notification::Notification>, Error> {
        let deadline = Instant::now() + patience;
        let mut heard = Vec::new();
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(4) {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            if !messages.is_empty() {
                quiet_since = Instant::now();
            }
            for m in &messages {
                let event: Value = serde_json::from_str(m.body().unwrap_or_default())?;
                heard.push(serde_json::from_value(event["detail"].clone())?);
            }
            if !messages.is_empty() {
                self.sqs
                    .delete_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(jobhook::adapters::sqs::delete_entries(&messages)))
                    .send()
                    .await?;
            }
        }
        Ok(heard)
    }
}

/// What the application heard, checked against every job's transitions.
#[derive(Debug, Default, Serialize)]
pub struct NotificationStats {
    pub received: usize,
    pub distinct: usize,
    /// Transitions applied but never notified: must be 0.
    pub missing: usize,
    /// Notifications heard after a later one of the same job: must be 0.
    pub out_of_order: usize,
    /// Heard more than once (allowed: delivery is at least once).
    pub repeated: usize,
}

async fn approximate_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let Ok(out) = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
    else {
        return u64::MAX;
    };
    let attrs = out.attributes.unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .filter_map(|a| attrs.get(a).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

impl Simulator {
    /// Serves the job API on `listener` while it runs.
    pub async fn run(self, listener: tokio::net::TcpListener) -> Result<Summary, Error> {
        let started = Instant::now();
        let mut rng = StdRng::seed_from_u64(self.args.seed);
        let dialect = Dialect::for_provider(&self.source.provider)
            .ok_or_else(|| format!("the simulator does not speak provider {:?}", self.source.provider))?;
        let base = format!("http://{}", listener.local_addr()?);
        crate::dialect::serve_outputs(crate::dialect::ServedOutputs {
            base,
            max_bytes: self.args.output_max_bytes,
        });
        let started_wall = time::OffsetDateTime::now_utc();
        let jobs = plan(&self.args, dialect, &mut rng);
        let token = self
            .source
            .api
            .as_ref()
            .map(|a| a.token.expose().to_owned())
            .unwrap_or_default();

        // Jobs that will never send a webhook are tracked when submitted,
        // just before their first event, as an application would (every job,
        // for a provider that announces only the end).
        let mut tracking = Vec::new();
        for job in jobs.iter().filter(|j| j.silent || dialect.track_every_job()) {
            let (store, source, id, at) = (
                self.store.clone(),
                self.source.name.clone(),
                job.id.clone(),
                job.events[0].at,
            );
            tracking.push(tokio::spawn(async move {
                tokio::time::sleep_until((started + at).into()).await;
                store.track(&source, &id).await
            }));
        }

        let api = Arc::new(Api {
            jobs: jobs.iter().map(|j| (j.id.clone(), j.clone())).collect(),
            token,
            dialect,
            started,
            output_retention: Duration::from_secs(self.args.output_retention_secs),
        });
        let app = Router::new()
            .route("/outputs/{job}/{len}", get(get_output))
            .route("/{*path}", get(get_job))
            .with_state(api);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        // Plan the deliveries: drops, duplicates and jitter.
        let mut stats = DeliveryStats {
            silent_jobs: jobs.iter().filter(|j| j.silent).count(),
            ..Default::default()
        };
        let mut deliveries = Vec::new();
        for (j, job) in jobs.iter().enumerate().filter(|(_, j)| !j.silent) {
            for (e, event) in job.events.iter().enumerate().filter(|(_, e)| e.webhook) {
                stats.planned_events += 1;
                if rng.random_bool(self.args.drop_rate) {
                    stats.dropped += 1;
                    continue;
                }
                let jitter = Duration::from_millis(rng.random_range(0..=self.args.reorder_ms));
                let send_at = event.at + jitter;
                deliveries.push(Delivery {
                    job: j,
                    event: e,
                    send_at,
                });
                if rng.random_bool(self.args.duplicate_rate) {
                    stats.duplicates += 1;
                    let later = Duration::from_millis(rng.random_range(100..3000));
                    deliveries.push(Delivery {
                        job: j,
                        event: e,
                        send_at: send_at + later,
                    });
                }
            }
        }
        stats.deliveries = deliveries.len();

        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let jobs = Arc::new(jobs);
        let gate = Arc::new(Semaphore::new(self.args.concurrency.max(1)));
        let log = Arc::new(Mutex::new(DeliveryLog::default()));
        let outage = outage::Window {
            start: Duration::from_secs_f64(self.args.outage_start_secs),
            end: Duration::from_secs_f64(self.args.outage_start_secs + self.args.outage_secs),
        };
        let (front_door_url, front_door) = outage::start(self.receiver_url.clone(), outage, started.into()).await?;
        let mut tasks = Vec::new();
        for delivery in deliveries {
            let (http, jobs, gate, log) = (http.clone(), jobs.clone(), gate.clone(), log.clone());
            let (source, url, window) = (self.source.clone(), front_door_url.clone(), self.args.retry_window_secs);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until((started + delivery.send_at).into()).await;
                deliver(
                    &http, &jobs, delivery, &source, &url, &gate, &log, started, outage, window,
                )
                .await;
            }));
        }
        for task in tasks {
            task.await?;
        }
        front_door.abort();
        for task in tracking {
            task.await??;
        }
        let log = Arc::try_unwrap(log)
            .map_err(|_| "deliveries still running")?
            .into_inner()?;
        stats.attempts = log.attempts;
        stats.outage_failures = log.outage_failures;
        stats.connection_refused = log.connection_refused;
        stats.other_failures = log.other_failures;
        stats.server_errors_other_than_503 = log.server_errors_other_than_503;
        stats.refused_4xx = log.refused_4xx;
        stats.gave_up = log.gave_up;
        stats.reordered = log.reordered();
        println!(
            "simulator: deliveries done after {:.1} s; waiting for the pipeline",
            started.elapsed().as_secs_f64()
        );

        let summary = self
            .converge(&jobs, &log.accepted, &log.sent, stats, (started, started_wall))
            .await?;
        server.abort();
        Ok(summary)
    }

    async fn check_notifications(&self, consumer: &Consumer, jobs: &[SimJob]) -> Result<NotificationStats, Error> {
        let heard = consumer.drain(Duration::from_secs(60)).await?;
        let mut stats = NotificationStats {
            received: heard.len(),
            ..Default::default()
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut highest: HashMap<String, u64> = HashMap::new();
        for n in &heard {
            if !seen.insert(n.transition_id.clone()) {
                stats.repeated += 1;
                continue;
            }
            let top = highest.entry(n.job_id.clone()).or_default();
            if n.transition < *top {
                stats.out_of_order += 1;
            }
            *top = (*top).max(n.transition);
        }
        stats.distinct = seen.len();
        for job in jobs {
            let transitions = self
                .store
                .get(&self.source.name, &job.id)
                .await?
                .map_or(0, |s| s.transitions);
            stats.missing += (1..=transitions)
                .filter(|t| !seen.contains(&format!("{}:{}:{t}", self.source.name, job.id)))
                .count();
        }
        Ok(stats)
    }

    async fn fault_stats(&self) -> Option<jobhook_dev::faults::FaultStats> {
        let url = format!("{}/_faults", self.faults_url.as_deref()?.trim_end_matches('/'));
        let answer = reqwest::get(&url).await.and_then(|r| r.error_for_status());
        match answer {
            Ok(r) => serde_json::from_slice(&r.bytes().await.ok()?).ok(),
            Err(error) => {
                eprintln!("simulator: no fault statistics from {url}: {error}");
                None
            }
        }
    }

    /// Waits until every job matches the truth and the queue is empty (or the
    /// time runs out), then checks every invariant.
    async fn converge(
        &self,
        jobs: &[SimJob],
        accepted: &HashMap<String, String>,
        sent: &HashMap<String, Vec<String>>,
        stats: DeliveryStats,
        (started, started_wall): (Instant, time::OffsetDateTime),
    ) -> Result<Summary, Error> {
        let retention = Duration::from_secs(self.args.output_retention_secs);
        // A job whose output is to be kept is final once it is kept, or once
        // the provider deleted it (then it is lost, and counted).
        let keeps = |job: &SimJob| self.source.keep_outputs.is_some() && job.truth.output_url.is_some();
        let expired = |job: &SimJob| started.elapsed() > job.ended_at() + retention + Duration::from_secs(5);
        let deadline = Instant::now() + Duration::from_secs(self.args.converge_timeout_secs);
        let mut converged = false;
        let mut last_report = Instant::now();
        // Only jobs not yet right are read again: the check itself must not
        // load the local DynamoDB that the pipeline is using.
        let mut pending: Vec<&SimJob> = jobs.iter().collect();
        while Instant::now() < deadline {
            let mut still = Vec::new();
            for job in pending {
                let state = self.store.get(&self.source.name, &job.id).await?;
                let unkept = keeps(job) && !expired(job) && state.as_ref().is_none_or(|s| s.kept_outputs.is_none());
                if state.map(|s| truth_of(&s.fields)) != Some(job.truth.clone()) || unkept {
                    still.push(job);
                }
            }
            pending = still;
            let queued = approximate_messages(&self.sqs, &self.queue_url).await;
            if pending.is_empty() && queued == 0 {
                converged = true;
                println!(
                    "simulator: every job final after {:.1} s; checking the store, the archive and the notifications",
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                println!(
                    "simulator: {} jobs not final yet, {queued} messages queued",
                    pending.len()
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }

        let mut summary = Summary {
            provider: self.source.provider.clone(),
            jobs: jobs.len(),
            deliveries: stats,
            recovered_by_polling: 0,
            ended_by_webhook: 0,
            correct_final_states: 0,
            wrong_final_states: vec![],
            duplicate_transitions: 0,
            lost_events: 0,
            distinct_deliveries: 0,
            deliveries_archived: 0,
            archived_in_bucket: 0,
            outputs_to_keep: 0,
            outputs_kept: 0,
            outputs_checksum_match: 0,
            outputs_lost_to_expiry: 0,
            closest_to_expiry_secs: None,
            left_on_queue: approximate_messages(&self.sqs, &self.queue_url).await,
            left_on_dlq: approximate_messages(&self.sqs, &self.dlq_url).await,
            converged,
            notifications: None,
            faults: self.fault_stats().await,
            wall_time_secs: 0.0,
        };
        for job in jobs {
            let state = self.store.get(&self.source.name, &job.id).await?;
            let timeline = self.store.timeline(&self.source.name, &job.id).await?;
            match &state {
                Some(s) if truth_of(&s.fields) == job.truth => summary.correct_final_states += 1,
                _ => summary.wrong_final_states.push(job.id.clone()),
            }
            let applied: Vec<_> = timeline.iter().filter(|e| e.outcome == Outcome::Applied).collect();
            let distinct: HashSet<(Option<JobStatus>, Option<u8>)> =
                applied.iter().map(|e| (e.status, e.progress)).collect();
            // The transition that records kept outputs has no timeline entry.
            let kept_transition = state.as_ref().is_some_and(|s| s.kept_outputs.is_some()) as usize;
            let transitions = state.as_ref().map(|s| s.transitions).unwrap_or(0) as usize - kept_transition;
            if keeps(job) {
                self.check_kept_output(job, state.as_ref(), (started_wall, retention), &mut summary)
                    .await;
            }
            // A transition applied twice shows as a repeated (status, progress)
            // among applied entries, or a counter ahead of the entries.
            summary.duplicate_transitions +=
                (applied.len() - distinct.len()) + transitions.saturating_sub(applied.len());
            let recorded: HashSet<&str> = timeline.iter().map(|e| e.event_id.as_str()).collect();
            summary.lost_events += job
                .events
                .iter()
                .filter_map(|e| accepted.get(&e.webhook_id))
                .filter(|event_id| !recorded.contains(event_id.as_str()))
                .count();
            // Each distinct delivery's record reads back as bytes it was sent with.
            let mut distinct: HashSet<&str> = job
                .events
                .iter()
                .filter_map(|e| accepted.get(&e.webhook_id).map(String::as_str))
                .collect();
            // A trigger read after the reconciler recorded the same answer is
            // a duplicate of the poll's entry, which keeps the poll's record.
            if job.dialect.is_trigger() {
                distinct.retain(|id| !timeline.iter().any(|e| e.event_id == *id && e.origin == Origin::Poll));
            }
            summary.distinct_deliveries += distinct.len();
            for entry in timeline.iter().filter(|e| distinct.contains(e.event_id.as_str())) {
                let (Some(bodies), Some(location)) = (sent.get(&entry.event_id), &entry.archive) else {
                    continue;
                };
                match self.archiver.read(location).await {
                    Ok(record) if bodies.iter().any(|b| b.as_bytes() == record.body) => {
                        summary.deliveries_archived += 1;
                        if matches!(location, jobhook::domain::archive::ArchiveLocation::Segment(_)) {
                            summary.archived_in_bucket += 1;
                        }
                    }
                    Ok(_) => println!(
                        "simulator: {}: the archived body differs from the one sent",
                        entry.event_id
                    ),
                    Err(e) => println!("simulator: {}: archive unreadable: {e}", entry.event_id),
                }
            }
            match state.as_ref().and_then(|s| s.terminal_origin) {
                Some(Origin::Poll) => summary.recovered_by_polling += 1,
                Some(Origin::Webhook) => summary.ended_by_webhook += 1,
                Some(Origin::Replay | Origin::Keep) | None => {}
            }
        }
        if let Some(consumer) = &self.consumer {
            summary.notifications = Some(self.check_notifications(consumer, jobs).await?);
        }
        summary.wall_time_secs = started.elapsed().as_secs_f64();
        Ok(summary)
    }
}

impl Simulator {
    /// Whether `job`'s output was kept, byte for byte, and how close to its
    /// expiry; or lost to it.
    async fn check_kept_output(
        &self,
        job: &SimJob,
        state: Option<&jobhook::domain::job::JobState>,
        (started_wall, retention): (time::OffsetDateTime, Duration),
        summary: &mut Summary,
    ) {
        summary.outputs_to_keep += 1;
        let url = job.truth.output_url.as_deref().unwrap_or_default();
        let len: u64 = url.rsplit('/').next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let expires_at = started_wall + job.ended_at() + retention;
        let Some(kept) = state.and_then(|s| s.kept_outputs.as_ref()).and_then(|k| k.first()) else {
            if time::OffsetDateTime::now_utc() > expires_at {
                summary.outputs_lost_to_expiry += 1;
            }
            println!("simulator: {}: output not kept", job.id);
            return;
        };
        summary.outputs_kept += 1;
        if let Some(kept_at) = state.and_then(|s| {
            time::OffsetDateTime::parse(&s.updated_at, &time::format_description::well_known::Rfc3339).ok()
        }) {
            let margin = (expires_at - kept_at).as_seconds_f64();
            summary.closest_to_expiry_secs = Some(summary.closest_to_expiry_secs.map_or(margin, |m| m.min(margin)));
        }
        let expected = jobhook_dev::outputs::sha256_of(&job.id, len);
        match self.object_sha256(&kept.s3_uri).await {
            Ok((sha, bytes)) if sha == expected && kept.sha256 == expected && bytes == len && kept.bytes == len => {
                summary.outputs_checksum_match += 1;
            }
            Ok((sha, bytes)) => println!(
                "simulator: {}: the kept copy ({bytes} bytes, sha256 {sha}) is not the output ({len} bytes, sha256 {expected})",
                job.id
            ),
            Err(e) => println!("simulator: {}: the kept copy is unreadable: {e}", job.id),
        }
    }

    /// The SHA-256 and length of the object at `s3://bucket/key`, streamed.
    async fn object_sha256(&self, uri: &str) -> Result<(String, u64), Error> {
        use sha2::Digest as _;
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| format!("{uri} is not an s3:// URI"))?;
        let mut body = self.s3.get_object().bucket(bucket).key(key).send().await?.body;
        let mut digest = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.try_next().await? {
            bytes += chunk.len() as u64;
            digest.update(&chunk);
        }
        Ok((hex::encode(digest.finalize()), bytes))
    }
}

fn truth_of(fields: &jobhook::domain::job::JobFields) -> Truth {
    Truth {
        status: fields.status,
        progress: fields.progress,
        output_url: fields.output_url.clone(),
        error: fields.error.clone(),
    }
}

#[derive(Debug, Default)]
struct DeliveryLog {
    attempts: usize,
    outage_failures: usize,
    connection_refused: usize,
    other_failures: usize,
    server_errors_other_than_503: usize,
    refused_4xx: usize,
    gave_up: usize,
    /// Deliveries the receiver accepted (202), by webhook id, with the event
    /// id jobhook records for each.
    accepted: HashMap<String, String>,
    /// The bodies accepted for each event id: a duplicate of a delivery may
    /// differ from the first (a provider that stamps each send).
    sent: HashMap<String, Vec<String>>,
    /// Per job, event indexes in the order they were first accepted.
    arrival: BTreeMap<usize, Vec<usize>>,
}

impl DeliveryLog {
    /// Events accepted after a later event of the same job.
    fn reordered(&self) -> usize {
        self.arrival
            .values()
            .map(|order| {
                let mut max_seen = None;
                order
                    .iter()
                    .filter(|&&e| {
                        let late = max_seen.is_some_and(|m| e < m);
                        max_seen = max_seen.max(Some(e));
                        late
                    })
                    .count()
            })
            .sum()
    }
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    http: &reqwest::Client,
    jobs: &[SimJob],
    delivery: Delivery,
    source: &SourceConfig,
    url: &str,
    gate: &Semaphore,
    log: &Mutex<DeliveryLog>,
    started: Instant,
    outage: outage::Window,
    retry_window_secs: f64,
) {
    let job = &jobs[delivery.job];
    let event = &job.events[delivery.event];
    let body = job.body(delivery.event);
    // An unsigned provider's URL carries the source's token.
    let target = match source.scheme {
        jobhook::Scheme::Unsigned => format!("{url}?token={}", String::from_utf8_lossy(source.keys[0].bytes())),
        _ => url.to_owned(),
    };
    let first_attempt = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let permit = gate.acquire().await.expect("semaphore open");
        let in_outage = outage.contains(started.elapsed());
        // Signed at send time, as providers re-sign each retry.
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut request = http
            .post(&target)
            .header("content-type", "application/json")
            .body(body.clone());
        let headers = match source.scheme {
            // The simulator plays fal with a key of its own.
            jobhook::Scheme::Fal => sign::fal(&dialect::FAL_DEV_SEED, &job.id, "sim|user", now, body.as_bytes()),
            _ => sign::headers_for(source, &event.webhook_id, now, body.as_bytes()),
        };
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = request.send().await;
        drop(permit);
        let ok = matches!(&answer, Ok(r) if r.status().is_success());
        {
            let mut l = log.lock().expect("log");
            l.attempts += 1;
            if matches!(&answer, Ok(r) if r.status().is_server_error() && r.status() != 503) {
                l.server_errors_other_than_503 += 1;
            }
            if matches!(&answer, Ok(r) if r.status().is_client_error() && r.status() != 429) {
                l.refused_4xx += 1;
            }
            if !ok && in_outage {
                l.outage_failures += 1;
                if matches!(&answer, Err(e) if e.is_connect()) {
                    l.connection_refused += 1;
                }
            } else if !ok {
                l.other_failures += 1;
            }
            if ok {
                let event_id = job.expected_event_id(&source.name, &event.webhook_id, &body);
                l.sent.entry(event_id).or_default().push(body.clone());
                if !l.accepted.contains_key(&event.webhook_id) {
                    let event_id = job.expected_event_id(&source.name, &event.webhook_id, &body);
                    l.accepted.insert(event.webhook_id.clone(), event_id);
                    l.arrival.entry(delivery.job).or_default().push(delivery.event);
                }
                return;
            }
        }
        let backoff = doubling(Duration::from_millis(250), Duration::from_secs(8), attempt);
        if first_attempt.elapsed().as_secs_f64() + backoff.as_secs_f64() > retry_window_secs {
            log.lock().expect("log").gave_up += 1;
            return;
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Makes the run's store client; the simulator reads and tracks with it,
/// as an application would, with the functions' `JOBHOOK_STALE_AFTER_SECS`.
pub fn store(aws: &aws_config::SdkConfig, table: &str) -> Result<DynamoJobStore, Error> {
    let stale_after = jobhook::config::stale_after(&jobhook::config::Env::process())?;
    Ok(jobhook::bootstrap::job_store(
        aws,
        table,
        Duration::from_secs(86_400),
        stale_after,
        Arc::new(SystemClock),
    ))
}
