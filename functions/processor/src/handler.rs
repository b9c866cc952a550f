//! The processor: each queued envelope becomes a job event, applied through
//! the store's idempotent, monotonic path. Failures are reported per message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use jobhook::domain::event::job_event_from_envelope;
use jobhook::domain::provider;
use jobhook::ports::{DeadLetters, ErrorKind, JobStore, PortError};
use jobhook::sources_cache::SourcesCache;
use jobhook::{outcomes, Envelope};

#[derive(Debug)]
pub struct Processor {
    pub sources: SourcesCache,
    pub store: Arc<dyn JobStore>,
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Messages of one batch in flight at once.
    pub concurrency: usize,
}

/// Why one message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Throttling, network, 5xx: SQS redelivers it after the visibility timeout.
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

impl Processor {
    async fn process(&self, message: &SqsMessage) -> Result<(), RecordError> {
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
        let event = job_event_from_envelope(&envelope, profile)
            .map_err(|e| RecordError::Permanent(format!("{} payload: {e}", profile.name())))?;
        let result = self.store.apply(&event).await?;
        outcomes::record_apply(&event, &result);
        Ok(())
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

    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, SystemicFailure> {
        // Indexes rather than references keep the future `Send` (a closure
        // over `&SqsMessage` trips a higher-ranked lifetime limitation).
        let records = &event.records;
        let results: Vec<(Option<String>, Result<(), RecordError>)> = stream::iter(0..records.len())
            .map(|i| async move {
                let message = &records[i];
                let result = match self.process(message).await {
                    Err(RecordError::Permanent(reason)) => self.dead_letter(message, &reason).await,
                    other => other,
                };
                (message.message_id.clone(), result)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;

        let mut response = SqsBatchResponse::default();
        for (message_id, result) in results {
            match result {
                Ok(()) => {}
                Err(RecordError::Systemic(reason)) => return Err(SystemicFailure(reason)),
                Err(error) => {
                    tracing::warn!(message_id = message_id.as_deref().unwrap_or("unknown"), %error, "message will be retried");
                    // SQS always sets the id; without one the only safe answer
                    // is to fail the whole batch.
                    let Some(id) = message_id else {
                        return Err(SystemicFailure("a failed message has no message id".into()));
                    };
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        Ok(response)
    }
}
