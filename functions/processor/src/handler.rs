//! The processor: each queued envelope becomes a job event, applied through
//! the store's idempotent, monotonic path. Failures are reported per message.
//!
//! Within a batch, the events of one job are applied one after another in
//! queue order, and different jobs concurrently. Two concurrent writes to one
//! job would only race: on DynamoDB the loser gets `TransactionConflict` or
//! fails its condition and must write again.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use jobhook::domain::event::{job_event_from_body, WebhookEvent};
use jobhook::domain::job::JobEvent;
use jobhook::domain::provider;
use jobhook::domain::sources::SourceConfig;
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

/// A job event to apply; a thin one with the source whose API has its state.
struct Pending {
    event: JobEvent,
    fetch_from: Option<Box<SourceConfig>>,
}

/// Messages of one job, by index into the batch, in queue order.
type JobGroup = Vec<(usize, Pending)>;

/// What a message carries.
enum Parsed {
    Event(Pending),
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
        Ok(Parsed::Event(Pending {
            event,
            fetch_from: fetch.then(|| Box::new(source.clone())),
        }))
    }

    /// A thin event's state, read from the provider. Anything that may pass
    /// (a timeout, a 5xx, a 429, a 404 or an answer behind what the webhook
    /// announced, as an API catching up gives) is retried through the queue;
    /// a source without `api` or an answer that cannot be read is poison.
    async fn fetch(&self, source: &SourceConfig, event: &JobEvent) -> Result<JobEvent, RecordError> {
        let retry = |why: String| RecordError::Retryable(format!("fetching the state of a thin event: {why}"));
        match self.poller.poll(source, &event.job_id).await {
            Ok(PollOutcome::Found(answer)) => provider::thin_event_with_state(event, &answer).ok_or_else(|| {
                retry(format!(
                    "the provider's API shows {} while the webhook announced {}",
                    answer.status, event.status
                ))
            }),
            Ok(PollOutcome::NotFound) => Err(retry("the provider answered 404".into())),
            Ok(PollOutcome::RateLimited { .. }) => Err(retry("the provider answered 429".into())),
            Err(PollError::NoApi) => Err(RecordError::Permanent(format!(
                "source {:?} sends thin events, whose state is read from the provider's API, but has no `api` (add it to the api secret)",
                source.name
            ))),
            Err(e @ (PollError::BadAnswer(_) | PollError::Unexpected(_))) => Err(RecordError::Permanent(format!(
                "fetching the state of a thin event: {e}"
            ))),
            Err(e @ (PollError::Timeout | PollError::Server(_) | PollError::Network(_))) => Err(retry(e.to_string())),
        }
    }

    async fn apply(&self, pending: &Pending, deadline: Instant) -> Result<(), RecordError> {
        let fetched;
        let event = match &pending.fetch_from {
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
                    result?
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

    /// Applies one job's events in order. A failed event does not hold back
    /// the later ones: the state rules make the final state independent of
    /// order, so its redelivery lands correctly whenever it comes.
    async fn apply_group(&self, group: &JobGroup, deadline: Instant) -> Vec<(usize, Result<(), RecordError>)> {
        let mut results = Vec::with_capacity(group.len());
        for (i, event) in group {
            results.push((*i, self.apply(event, deadline).await));
        }
        results
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
                    groups[g].push((i, event));
                }
                Err(error) => results[i] = Some(Err(error)),
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
