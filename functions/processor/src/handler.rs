//! The processor: each queued envelope becomes a job event, applied through
//! the store's idempotent, monotonic path. Failures are reported per message.
//!
//! Within a batch, the events of one job are applied one after another in
//! the order the state rule moves a job forward (queue order among equals),
//! and different jobs concurrently. Two concurrent writes to one
//! job would only race: on DynamoDB the loser gets `TransactionConflict` or
//! fails its condition and must write again.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use jobhook::archive::Archiver;
use jobhook::domain::archive::{ArchiveLocation, ArchiveRecord};
use jobhook::domain::event::{job_event_from_body, WebhookEvent};
use jobhook::domain::job::{forward_order, JobEvent};
use jobhook::domain::provider::{self, PollAnswer};
use jobhook::domain::sources::{Scheme, SourceConfig};
use jobhook::domain::track::TrackRequest;
use jobhook::ports::{DeadLetters, ErrorKind, JobPoller, JobStore, PollError, PollOutcome, PortError};
use jobhook::retry::Backoff;
use jobhook::sources_cache::SourcesCache;
use jobhook::{outcomes, Envelope};
use tokio::time::Instant;

/// The function's timeout, as `template.yaml` sets it (a test holds the two
/// together): the budget when the runtime gives no usable deadline.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// One thin event's read from the provider's API: well inside the timeout,
/// so that a slow provider fails the fetch, not the batch.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug)]
pub struct Processor {
    pub sources: SourcesCache,
    pub store: Arc<dyn JobStore>,
    pub dead_letters: Arc<dyn DeadLetters>,
    /// The provider's API, for thin events (the reconciler's client).
    pub poller: Arc<dyn JobPoller>,
    /// Jobs of one batch in flight at once.
    pub concurrency: usize,
    /// How transient write failures are retried before a message is
    /// reported back to SQS.
    pub backoff: Backoff,
    /// Where each delivery is kept before the apply that references it.
    pub archiver: Archiver,
    /// The tracking queue's ARN: its messages are track requests and
    /// nothing else (never an envelope, which only the receiver may queue).
    pub track_queue_arn: Option<String>,
}

/// Why one message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Throttling, conflicts, network, 5xx, after in-process retries: SQS
    /// redelivers it after the visibility timeout.
    #[error("retryable: {0}")]
    Retryable(String),
    /// It can never succeed: it goes to the DLQ with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Nothing can succeed until the deployment is fixed.
    #[error("systemic: {0}")]
    Systemic(String),
}

impl From<PortError> for RecordError {
    fn from(e: PortError) -> Self {
        match e.kind {
            ErrorKind::Transient => Self::Retryable(e.to_string()),
            ErrorKind::Permanent => Self::Permanent(e.to_string()),
            ErrorKind::Systemic => Self::Systemic(e.to_string()),
        }
    }
}

/// The whole invocation failed: every message of the batch will be retried.
#[derive(Debug, thiserror::Error)]
#[error("systemic failure, batch not processed: {0}")]
pub struct SystemicFailure(pub String);

/// A job event to apply; a thin one or a trigger with the source whose API
/// has its state.
struct Pending {
    event: JobEvent,
    fetch_from: Option<Box<SourceConfig>>,
    /// An unsigned delivery: nothing of its body but the job id is believed,
    /// and what is applied is the API's answer.
    trigger: bool,
    /// The delivery as received. A thin one is archived with the answer its
    /// fetch gets, so only once that answer is in.
    record: ArchiveRecord,
}

/// Messages of one job, by index into the batch, in queue order.
type JobGroup = Vec<(usize, Pending)>;

/// What a message carries.
enum Parsed {
    Event(Box<Pending>),
    /// A well-formed delivery about something other than a job.
    NotAJobEvent {
        source: String,
        reason: String,
    },
}

impl Processor {
    /// The job event a message carries, without touching the store.
    async fn parse(&self, message: &SqsMessage) -> Result<Parsed, RecordError> {
        let body = message
            .body
            .as_deref()
            .ok_or_else(|| RecordError::Permanent("message has no body".into()))?;
        let envelope = Envelope::from_json(body).map_err(|e| RecordError::Permanent(e.to_string()))?;
        let sources = self.sources.get().await.map_err(|e| {
            if e.retryable() {
                RecordError::Retryable(e.to_string())
            } else {
                RecordError::Systemic(e.to_string())
            }
        })?;
        let source = sources
            .get(&envelope.source)
            .ok_or_else(|| RecordError::Permanent(format!("unknown source {:?}", envelope.source)))?;
        let profile = provider::profile(&source.provider)
            .ok_or_else(|| RecordError::Permanent(format!("unknown provider profile {:?}", source.provider)))?;
        let body = envelope
            .body_bytes()
            .map_err(|e| RecordError::Permanent(e.to_string()))?;
        if let Some(reason) = profile.not_a_job_event(&body) {
            return Ok(Parsed::NotAJobEvent {
                source: envelope.source,
                reason,
            });
        }
        let WebhookEvent { event, fetch } = job_event_from_body(&envelope, &body, profile)
            .map_err(|e| RecordError::Permanent(format!("{} payload: {e}", profile.name())))?;
        // Queued as unsigned, or from a source that is unsigned now: either way
        // the body proves nothing.
        let trigger = envelope.scheme == Scheme::Unsigned.as_str() || source.scheme == Scheme::Unsigned;
        Ok(Parsed::Event(Box::new(Pending {
            event,
            fetch_from: (fetch || trigger).then(|| Box::new(source.clone())),
            trigger,
            record: ArchiveRecord::of_delivery(&envelope, body),
        })))
    }

    /// The job's state as the provider's API answers it. Anything that may
    /// pass (a timeout, a 5xx, a 429, a 404 as an API catching up gives) is
    /// retried through the queue; a source without `api` or an answer that
    /// cannot be read is poison. `what` names the delivery in reasons.
    async fn read_state(&self, source: &SourceConfig, job_id: &str, what: &str) -> Result<PollAnswer, RecordError> {
        let retry = |why: String| RecordError::Retryable(format!("reading the state of {what}: {why}"));
        match self.poller.poll(source, job_id).await {
            Ok(PollOutcome::Found(answer)) => Ok(answer),
            Ok(PollOutcome::NotFound) => Err(retry("the provider answered 404".into())),
            Ok(PollOutcome::RateLimited { .. }) => Err(retry("the provider answered 429".into())),
            Err(PollError::NoApi) => Err(RecordError::Permanent(format!(
                "source {:?} sends {what}s, whose state is read from the provider's API, but has no `api` (add it to the api secret)",
                source.name
            ))),
            Err(e) if e.kind() == ErrorKind::Transient => Err(retry(e.to_string())),
            Err(e) => Err(RecordError::Permanent(format!("reading the state of {what}: {e}"))),
        }
    }

    /// A thin event's state, read from the provider; an answer behind what
    /// the webhook announced is retried too.
    async fn fetch(&self, source: &SourceConfig, event: &JobEvent) -> Result<(JobEvent, PollAnswer), RecordError> {
        let answer = self.read_state(source, &event.job_id, "a thin event").await?;
        match provider::thin_event_with_state(event, &answer) {
            Some(event) => Ok((event, answer)),
            None => Err(RecordError::Retryable(format!(
                "reading the state of a thin event: the provider's API shows {} while the webhook announced {}",
                answer.status, event.status
            ))),
        }
    }

    /// An unsigned delivery's event: the API's answer, read once per job per
    /// batch (`coalesced` holds it for the job's later triggers).
    async fn triggered(
        &self,
        source: &SourceConfig,
        pending: &Pending,
        coalesced: &mut Option<PollAnswer>,
        deadline: Instant,
    ) -> Result<JobEvent, RecordError> {
        let e = &pending.event;
        let answer = match coalesced {
            Some(answer) => {
                outcomes::record_thin_fetch(e, "coalesced", None);
                answer.clone()
            }
            None => {
                let result = self.read_state(source, &e.job_id, "an unsigned delivery").await;
                match &result {
                    Ok(_) => outcomes::record_thin_fetch(e, "fetched", None),
                    Err(RecordError::Retryable(why)) => outcomes::record_thin_fetch(e, "retried", Some(why)),
                    Err(error) => outcomes::record_thin_fetch(e, "failed", Some(&error.to_string())),
                }
                coalesced.insert(result?).clone()
            }
        };
        let mut event = provider::triggered_event(&e.source, &e.job_id, &answer);
        let record = pending.record.clone().with_answer(&answer);
        event.archive = self
            .keep(std::slice::from_ref(&record), deadline)
            .await?
            .pop()
            .flatten();
        Ok(event)
    }

    async fn apply(
        &self,
        pending: &Pending,
        coalesced: &mut Option<PollAnswer>,
        deadline: Instant,
    ) -> Result<(), RecordError> {
        let fetched;
        let event = match &pending.fetch_from {
            Some(source) if pending.trigger => {
                fetched = self.triggered(source, pending, coalesced, deadline).await?;
                &fetched
            }
            Some(source) => {
                let e = &pending.event;
                let (seen, _) = self
                    .backoff
                    .run(deadline, || self.store.has_event(&e.source, &e.job_id, &e.event_id))
                    .await;
                // A redelivery: the store records it as a duplicate without
                // the provider being asked again.
                fetched = if seen? {
                    outcomes::record_thin_fetch(e, "already_recorded", None);
                    e.clone()
                } else {
                    let result = self.fetch(source, e).await;
                    match &result {
                        Ok(_) => outcomes::record_thin_fetch(e, "fetched", None),
                        Err(RecordError::Retryable(why)) => outcomes::record_thin_fetch(e, "retried", Some(why)),
                        Err(error) => outcomes::record_thin_fetch(e, "failed", Some(&error.to_string())),
                    }
                    let (mut event, answer) = result?;
                    let record = pending.record.clone().with_answer(&answer);
                    event.archive = self
                        .keep(std::slice::from_ref(&record), deadline)
                        .await?
                        .pop()
                        .flatten();
                    event
                };
                &fetched
            }
            None => &pending.event,
        };
        let (result, retries) = self.backoff.run(deadline, || self.store.apply(event)).await;
        if retries > 0 {
            outcomes::record_write_retries(event, retries, result.is_ok());
        }
        outcomes::record_apply(event, &result?);
        Ok(())
    }

    /// Keeps `records` (with in-process retries), one location each.
    async fn keep(
        &self,
        records: &[ArchiveRecord],
        deadline: Instant,
    ) -> Result<Vec<Option<ArchiveLocation>>, RecordError> {
        let now = jobhook::clock::Clock::now(&jobhook::clock::SystemClock);
        let (kept, _) = self.backoff.run(deadline, || self.archiver.keep(records, now)).await;
        Ok(kept?)
    }

    /// Applies one job's events in order. A failed event does not hold back
    /// the later ones: the state rules make the final state independent of
    /// order, so its redelivery lands correctly whenever it comes.
    async fn apply_group(&self, group: &JobGroup, deadline: Instant) -> Vec<(usize, Result<(), RecordError>)> {
        let mut results = Vec::with_capacity(group.len());
        let mut coalesced = None;
        for (i, event) in group {
            results.push((*i, self.apply(event, &mut coalesced, deadline).await));
        }
        results
    }

    /// A track request: the job is recorded, to be polled whether or not a
    /// webhook for it ever arrives; a second request changes nothing.
    async fn track(&self, message: &SqsMessage, deadline: Instant) -> Result<(), RecordError> {
        let body = message.body.as_deref().unwrap_or_default();
        let request = TrackRequest::parse(body).map_err(|e| RecordError::Permanent(e.to_string()))?;
        let sources = self.sources.get().await.map_err(|e| {
            if e.retryable() {
                RecordError::Retryable(e.to_string())
            } else {
                RecordError::Systemic(e.to_string())
            }
        })?;
        if sources.get(&request.source).is_none() {
            return Err(RecordError::Permanent(format!(
                "track request for an unknown source {:?}",
                request.source
            )));
        }
        let (result, _) = self
            .backoff
            .run(deadline, || self.store.track(&request.source, &request.job_id))
            .await;
        outcomes::record_tracked(&request.source, &request.job_id, result?);
        Ok(())
    }

    /// Whether a message is a track request: everything from the tracking
    /// queue, and a track request's shape from the events queue (whose
    /// senders, the receiver and an operator's redrive, are trusted).
    fn is_track_request(&self, message: &SqsMessage) -> bool {
        let from_tracking_queue = self
            .track_queue_arn
            .as_deref()
            .is_some_and(|arn| message.event_source_arn.as_deref() == Some(arn));
        from_tracking_queue || message.body.as_deref().is_some_and(TrackRequest::looks_like)
    }

    /// Sends a permanently failing message to the DLQ. If that fails too, the
    /// message is reported as failed so SQS keeps it (and its redrive policy
    /// moves it to the DLQ eventually): nothing is lost.
    async fn dead_letter(&self, message: &SqsMessage, reason: &str) -> Result<(), RecordError> {
        let body = message.body.as_deref().unwrap_or_default();
        let attribute = |name: &str| {
            message
                .message_attributes
                .get(name)
                .and_then(|a| a.string_value.as_deref())
        };
        let source = attribute("source");
        let id = message.message_id.as_deref().unwrap_or("unknown");
        outcomes::record_permanent_failure(source, attribute("event_id"), id, reason);
        self.dead_letters
            .dead_letter(body, reason, source)
            .await
            .map_err(RecordError::from)
    }

    /// Processes one SQS batch. `deadline` is when the invocation times out;
    /// in-process retries stop in time to answer before it.
    ///
    /// Poison goes to the DLQ only after every event was applied without a
    /// systemic failure: a batch that fails as a whole is redelivered whole,
    /// and its poison must not reach the DLQ once per attempt.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> Result<SqsBatchResponse, SystemicFailure> {
        let records = &event.records;
        let mut results: Vec<Option<Result<(), RecordError>>> = (0..records.len()).map(|_| None).collect();

        let mut groups: Vec<JobGroup> = Vec::new();
        let mut group_of: HashMap<(String, String), usize> = HashMap::new();
        for (i, message) in records.iter().enumerate() {
            if self.is_track_request(message) {
                results[i] = Some(self.track(message, deadline).await);
                continue;
            }
            match self.parse(message).await {
                Ok(Parsed::NotAJobEvent { source, reason }) => {
                    outcomes::record_not_a_job_event(
                        &source,
                        message.message_id.as_deref().unwrap_or("unknown"),
                        &reason,
                    );
                    results[i] = Some(Ok(()));
                }
                Ok(Parsed::Event(event)) => {
                    let key = (event.event.source.clone(), event.event.job_id.clone());
                    let g = *group_of.entry(key).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[g].push((i, *event));
                }
                Err(error) => results[i] = Some(Err(error)),
            }
        }

        // One job's events are applied in forward order (`forward_order`): an
        // event queued behind a later one of its job then moves the job
        // forward at one write, instead of being recorded stale at two.
        for group in &mut groups {
            group.sort_by_key(|(_, pending)| forward_order(&pending.event));
        }

        // Every delivery is kept before its apply references it: one segment
        // for the batch's large ones. If that fails, no event of the batch is
        // applied unarchived; they come back with the redelivery.
        let direct: Vec<(usize, usize)> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| (0..group.len()).map(move |k| (g, k)))
            .filter(|&(g, k)| groups[g][k].1.fetch_from.is_none())
            .collect();
        let to_keep: Vec<ArchiveRecord> = direct.iter().map(|&(g, k)| groups[g][k].1.record.clone()).collect();
        match self.keep(&to_keep, deadline).await {
            Ok(locations) => {
                for (&(g, k), location) in direct.iter().zip(locations) {
                    groups[g][k].1.event.archive = location;
                }
            }
            Err(RecordError::Systemic(reason)) => return Err(SystemicFailure(reason)),
            Err(error) => {
                tracing::warn!(%error, "the batch's deliveries could not be archived; it will be retried");
                for group in groups.drain(..) {
                    for (i, _) in group {
                        results[i] = Some(Err(RecordError::Retryable(error.to_string())));
                    }
                }
            }
        }

        // Indexes rather than references keep the future `Send` (a closure
        // over `&JobGroup` trips a higher-ranked lifetime limitation).
        let groups = &groups;
        let applied: Vec<Vec<(usize, Result<(), RecordError>)>> = stream::iter(0..groups.len())
            .map(|g| self.apply_group(&groups[g], deadline))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (i, result) in applied.into_iter().flatten() {
            results[i] = Some(result);
        }
        let results: Vec<Result<(), RecordError>> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(RecordError::Retryable("not processed".into()))))
            .collect();
        if let Some(Err(RecordError::Systemic(reason))) =
            results.iter().find(|r| matches!(r, Err(RecordError::Systemic(_))))
        {
            return Err(SystemicFailure(reason.clone()));
        }

        // Dead-letter the poison. From here on nothing fails the invocation:
        // a message whose dead-lettering failed is reported for redelivery.
        let results: Vec<Result<(), RecordError>> = stream::iter(results.into_iter().enumerate())
            .map(|(i, result)| async move {
                match result {
                    Err(RecordError::Permanent(reason)) => match self.dead_letter(&records[i], &reason).await {
                        Err(RecordError::Systemic(e)) => Err(RecordError::Retryable(e)),
                        other => other,
                    },
                    other => other,
                }
            })
            .buffered(self.concurrency.max(1))
            .collect()
            .await;

        let mut response = SqsBatchResponse::default();
        for (message, result) in records.iter().zip(results) {
            let Err(error) = result else { continue };
            let message_id = message.message_id.as_deref();
            tracing::warn!(message_id = message_id.unwrap_or("unknown"), %error, "message will be retried");
            // SQS always sets the id; without one the only safe answer is to
            // fail the whole batch.
            let Some(id) = message_id else {
                return Err(SystemicFailure("a failed message has no message id".into()));
            };
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.to_owned();
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }
}

/// The processor over the in-memory store and dead letters: its grouping and
/// poison handling without a table or a queue.
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use jobhook::adapters::memory::{InMemoryDeadLetters, InMemoryJobStore, ScriptedPoller, StaticSources};
    use jobhook::clock::SystemClock;
    use jobhook::domain::job::{ApplyResult, JobStatus, Outcome};
    use jobhook::ports::JobQuery;

    const SOURCES: &str = r#"{"sources": {"acme": {"scheme": "github", "secrets": ["k"]}}}"#;
    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        max_attempts: 3,
        reserve: Duration::ZERO,
    };

    fn processor(store: Arc<dyn JobStore>, dead_letters: Arc<InMemoryDeadLetters>) -> Processor {
        Processor {
            sources: SourcesCache::new(Arc::new(StaticSources(SOURCES.into())), Duration::from_secs(60)),
            store,
            dead_letters,
            poller: Arc::new(ScriptedPoller::default()),
            concurrency: 8,
            backoff: FAST,
            archiver: Archiver::inline_only(),
            track_queue_arn: None,
        }
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    /// A generic-profile webhook for `job_id` from `source`, as queued.
    fn webhook(source: &str, event_id: &str, job_id: &str, progress: u8) -> SqsMessage {
        let body = serde_json::json!({"id": event_id, "type": "job.progress",
            "data": {"job_id": job_id, "progress": progress}});
        let envelope = Envelope::for_test(source, event_id, body.to_string().as_bytes());
        message(event_id, &envelope.to_json())
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    /// Wraps a store to see how applies overlap: per job, and in all.
    #[derive(Debug)]
    struct Overlaps {
        inner: InMemoryJobStore,
        in_flight: Mutex<HashMap<String, usize>>,
        most_per_job: AtomicUsize,
        most_in_all: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl JobStore for Overlaps {
        async fn apply(&self, event: &JobEvent) -> Result<ApplyResult, PortError> {
            {
                let mut in_flight = self.in_flight.lock().expect("lock");
                let job = in_flight.entry(event.job_id.clone()).or_default();
                *job += 1;
                self.most_per_job.fetch_max(*job, Ordering::SeqCst);
                self.most_in_all.fetch_max(in_flight.values().sum(), Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            *self
                .in_flight
                .lock()
                .expect("lock")
                .get_mut(&event.job_id)
                .expect("entered") -= 1;
            self.inner.apply(event).await
        }
        async fn has_event(&self, source: &str, job_id: &str, event_id: &str) -> Result<bool, PortError> {
            self.inner.has_event(source, job_id, event_id).await
        }
        async fn track(&self, source: &str, job_id: &str) -> Result<bool, PortError> {
            self.inner.track(source, job_id).await
        }
        async fn correct(&self, event: &JobEvent, expected: u64) -> Result<bool, PortError> {
            self.inner.correct(event, expected).await
        }
        async fn record_kept_outputs(
            &self,
            source: &str,
            job_id: &str,
            url: &str,
            kept: &[jobhook::domain::outputs::KeptOutput],
        ) -> Result<bool, PortError> {
            self.inner.record_kept_outputs(source, job_id, url, kept).await
        }
        async fn record_outputs_lost(
            &self,
            source: &str,
            job_id: &str,
            url: &str,
            why: &str,
        ) -> Result<bool, PortError> {
            self.inner.record_outputs_lost(source, job_id, url, why).await
        }
    }

    /// A store whose every write fails with `kind`.
    #[derive(Debug)]
    struct Failing(ErrorKind);

    #[async_trait::async_trait]
    impl JobStore for Failing {
        async fn apply(&self, _: &JobEvent) -> Result<ApplyResult, PortError> {
            Err(PortError {
                kind: self.0,
                ..PortError::transient("store:apply", "refused")
            })
        }
        async fn has_event(&self, _: &str, _: &str, _: &str) -> Result<bool, PortError> {
            Ok(false)
        }
        async fn track(&self, _: &str, _: &str) -> Result<bool, PortError> {
            Ok(false)
        }
        async fn correct(&self, _: &JobEvent, _: u64) -> Result<bool, PortError> {
            Ok(false)
        }
        async fn record_kept_outputs(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &[jobhook::domain::outputs::KeptOutput],
        ) -> Result<bool, PortError> {
            Ok(false)
        }
        async fn record_outputs_lost(&self, _: &str, _: &str, _: &str, _: &str) -> Result<bool, PortError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn one_job_s_events_apply_one_at_a_time_in_queue_order_while_jobs_run_side_by_side() {
        let store = Arc::new(Overlaps {
            inner: InMemoryJobStore::new(Arc::new(SystemClock)),
            in_flight: Mutex::default(),
            most_per_job: AtomicUsize::new(0),
            most_in_all: AtomicUsize::new(0),
        });
        let p = processor(store.clone(), Arc::default());
        let messages = ["a", "b"]
            .iter()
            .flat_map(|job| (1..=3).map(move |i| webhook("acme", &format!("{job}-{i}"), job, i * 10)))
            .collect();
        let response = p.handle(batch(messages), deadline()).await.expect("handled");
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            store.most_per_job.load(Ordering::SeqCst),
            1,
            "never two writes to one job at once"
        );
        assert_eq!(store.most_in_all.load(Ordering::SeqCst), 2, "the two jobs side by side");
        for job in ["a", "b"] {
            let timeline = store.inner.timeline("acme", job).await.expect("timeline");
            assert!(
                timeline.iter().all(|e| e.outcome == Outcome::Applied),
                "in order: {timeline:?}"
            );
            let state = store.inner.get("acme", job).await.expect("get").expect("job");
            assert_eq!(
                (state.fields.status, state.fields.progress),
                (JobStatus::Processing, Some(30))
            );
        }
    }

    #[tokio::test]
    async fn poison_is_dead_lettered_with_its_reason_and_the_rest_of_the_batch_applies() {
        let store = Arc::new(InMemoryJobStore::new(Arc::new(SystemClock)));
        let dead_letters = Arc::new(InMemoryDeadLetters::default());
        let p = processor(store.clone(), dead_letters.clone());
        let no_job_id = Envelope::for_test("acme", "e-bad", br#"{"id":"e-bad","type":"job.progress","data":{}}"#);
        let messages = vec![
            webhook("acme", "e-good", "job-1", 50),
            message("m-text", "not an envelope"),
            webhook("nobody", "e-stranger", "job-2", 50),
            message("m-no-job", &no_job_id.to_json()),
        ];
        let response = p.handle(batch(messages), deadline()).await.expect("handled");
        assert!(
            response.batch_item_failures.is_empty(),
            "poison is settled, not retried"
        );
        let reasons: Vec<String> = dead_letters.letters().into_iter().map(|l| l.reason).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("envelope is not valid JSON"), "{reasons:?}");
        assert!(reasons[1].contains("unknown source \"nobody\""), "{reasons:?}");
        assert!(reasons[2].contains("job_id"), "{reasons:?}");
        let state = store.get("acme", "job-1").await.expect("get").expect("applied");
        assert_eq!(state.fields.progress, Some(50));
    }

    #[tokio::test]
    async fn a_systemic_store_failure_fails_the_batch_whole_and_dead_letters_nothing() {
        let dead_letters = Arc::new(InMemoryDeadLetters::default());
        let p = processor(Arc::new(Failing(ErrorKind::Systemic)), dead_letters.clone());
        let messages = vec![
            webhook("acme", "e-1", "job-1", 10),
            message("m-text", "not an envelope"),
        ];
        assert!(p.handle(batch(messages), deadline()).await.is_err());
        assert!(
            dead_letters.letters().is_empty(),
            "the poison waits for the redelivered batch"
        );
    }

    #[tokio::test]
    async fn a_write_that_keeps_failing_transiently_is_reported_for_redelivery_not_dead_lettered() {
        let dead_letters = Arc::new(InMemoryDeadLetters::default());
        let p = processor(Arc::new(Failing(ErrorKind::Transient)), dead_letters.clone());
        let response = p
            .handle(batch(vec![webhook("acme", "e-1", "job-1", 10)]), deadline())
            .await
            .expect("handled");
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["e-1"]);
        assert!(dead_letters.letters().is_empty());
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;
    use std::time::Duration;

    use jobhook::adapters::memory::{
        InMemoryDeadLetters, InMemoryJobStore, InMemorySegments, ScriptedPoller, StaticSources,
    };
    use jobhook::clock::SystemClock;
    use jobhook::ports::JobQuery;

    const SOURCES: &str = r#"{"sources": {"acme": {"scheme": "github", "secrets": ["k"]}}}"#;

    fn processor(store: Arc<InMemoryJobStore>, segments: Arc<InMemorySegments>) -> Processor {
        Processor {
            sources: SourcesCache::new(Arc::new(StaticSources(SOURCES.into())), Duration::from_secs(60)),
            store,
            dead_letters: Arc::new(InMemoryDeadLetters::default()),
            poller: Arc::new(ScriptedPoller::default()),
            concurrency: 8,
            backoff: Backoff {
                first: Duration::from_millis(1),
                max: Duration::from_millis(2),
                max_attempts: 2,
                reserve: Duration::ZERO,
            },
            archiver: Archiver::new(Some(segments), "archive/"),
            track_queue_arn: None,
        }
    }

    /// A delivery whose body is `padding` bytes of noise longer than usual,
    /// which no compression brings under the inline bound.
    fn delivery(event_id: &str, job_id: &str, padding: usize) -> (SqsMessage, Vec<u8>) {
        let mut state = 0x2545_f491_u32 ^ padding as u32;
        let noise: String = (0..padding)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        let body = serde_json::json!({"id": event_id, "type": "job.completed", "note": noise,
            "data": {"job_id": job_id, "status": "completed"}})
        .to_string()
        .into_bytes();
        let envelope = Envelope::for_test("acme", event_id, &body);
        let mut message = SqsMessage::default();
        message.message_id = Some(event_id.into());
        message.body = Some(envelope.to_json());
        (message, body)
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    #[tokio::test]
    async fn each_delivery_is_archived_byte_for_byte_once_the_large_ones_in_one_segment() {
        let store = Arc::new(InMemoryJobStore::new(Arc::new(SystemClock)));
        let segments = Arc::new(InMemorySegments::default());
        let p = processor(store.clone(), segments.clone());
        let deliveries = [
            delivery("e1", "small", 0),
            delivery("e2", "large", 3000),
            delivery("e3", "larger", 9000),
        ];
        let messages: Vec<SqsMessage> = deliveries.iter().map(|(m, _)| m.clone()).collect();
        let response = p.handle(batch(messages.clone()), deadline()).await.expect("handled");
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            segments.objects().len(),
            1,
            "one segment for the batch's two large deliveries"
        );
        for ((_, body), job) in deliveries.iter().zip(["small", "large", "larger"]) {
            let timeline = store.timeline("acme", job).await.expect("timeline");
            let [entry] = timeline.as_slice() else {
                panic!("one entry: {timeline:?}")
            };
            let location = entry.archive.as_ref().expect("archived");
            assert_eq!(matches!(location, ArchiveLocation::Inline(_)), job == "small", "{job}");
            let record = p.archiver.read(location).await.expect("reads back");
            assert_eq!(&record.body, body, "{job}: the raw bytes");
            assert_eq!(
                (record.source.as_str(), record.verification.as_deref()),
                ("acme", Some("verified"))
            );
        }
        // The batch again: every event is a duplicate and none is archived twice.
        p.handle(batch(messages), deadline()).await.expect("handled");
        for job in ["small", "large", "larger"] {
            assert_eq!(store.timeline("acme", job).await.expect("timeline").len(), 1);
        }
    }

    #[tokio::test]
    async fn a_batch_whose_archive_cannot_be_written_is_retried_and_nothing_applied() {
        let store = Arc::new(InMemoryJobStore::new(Arc::new(SystemClock)));
        let segments = Arc::new(InMemorySegments::default());
        segments.fail_puts(true);
        let p = processor(store.clone(), segments.clone());
        let (small, _) = delivery("e1", "small", 0);
        let (large, _) = delivery("e2", "large", 3000);
        let response = p.handle(batch(vec![small, large]), deadline()).await.expect("handled");
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["e1", "e2"]);
        for job in ["small", "large"] {
            assert_eq!(
                store.get("acme", job).await.expect("get"),
                None,
                "{job} applied unarchived"
            );
        }
    }
}
