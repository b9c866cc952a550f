//! The notifier: the table's stream is the outbox. Each stream record of a
//! job's state item whose transition count went up becomes one notification
//! on EventBridge. Records are published in stream order (per item, that is
//! transition order); a record is reported done only once EventBridge
//! accepted its notification, and at the first one that cannot be, the
//! batch stops there: Lambda retries from that record, so nothing is lost or
//! published out of order (what was accepted after it may be published
//! again: consumers dedupe on `transition_id`).
//!
//! Where the stack keeps outputs, a completion with an output URL is also
//! asked to be kept (the outputs queue) before its notification is
//! published: the stream retries a record until both are done, so no
//! completion's output is forgotten; a request sent twice is kept once.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use jobhook::adapters::dynamodb::state_image_from_stream;
use jobhook::domain::notification::{notification_for, Notification};
use jobhook::outcomes;
use jobhook::ports::{NotificationBus, OutputRequests, PortError};
use jobhook::retry::Backoff;
use tokio::time::Instant;

/// The function's timeout, as `template.yaml` sets it (a test holds the two
/// together): the budget when the runtime gives no usable deadline.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug)]
pub struct Notifier {
    pub bus: Arc<dyn NotificationBus>,
    /// Where completions' outputs are asked to be kept; None where the stack
    /// keeps none.
    pub outputs: Option<Arc<dyn OutputRequests>>,
    pub backoff: Backoff,
}

/// The notification a record carries, if any.
fn notification_of(record: &EventRecord) -> Result<Option<Notification>, String> {
    let Some(new) = state_image_from_stream(&record.change.new_image) else {
        return Ok(None);
    };
    let old = state_image_from_stream(&record.change.old_image);
    notification_for(old.as_ref(), &new).map_err(|e| e.to_string())
}

impl Notifier {
    pub async fn handle(&self, event: Event, deadline: Instant) -> DynamoDbEventResponse {
        let mut pending: Vec<(String, Notification)> = Vec::new();
        let mut response = DynamoDbEventResponse::default();
        for record in &event.records {
            let sequence = record.change.sequence_number.clone().unwrap_or_default();
            match notification_of(record) {
                Ok(Some(n)) => pending.push((sequence, n)),
                Ok(None) => {}
                Err(reason) => {
                    // A state item that cannot make its notification: stop
                    // here, so the stream retries it and then hands it to the
                    // on-failure destination, rather than skip it.
                    tracing::error!(sequence, %reason, "stream record cannot be notified");
                    return self.publish_then_fail(pending, sequence, deadline).await;
                }
            }
        }
        // The records whose outputs could not be asked for are published no
        // further than the first of them; the stream retries from there.
        if let Some(stuck) = self.request_outputs(&pending, deadline).await {
            let before: Vec<_> = pending.into_iter().take_while(|(s, _)| *s != stuck).collect();
            return self.publish_then_fail(before, stuck, deadline).await;
        }
        if let Some(failed) = self.publish(&pending, deadline).await {
            response.batch_item_failures.push(failure(failed));
        }
        response
    }

    /// Asks for each completion's outputs to be kept; the sequence number of
    /// the first record whose request could not be sent.
    async fn request_outputs(&self, pending: &[(String, Notification)], deadline: Instant) -> Option<String> {
        let outputs = self.outputs.as_ref()?;
        for (sequence, notification) in pending {
            let Some(request) = notification.keep_request() else {
                continue;
            };
            let (result, _) = self.backoff.run(deadline, || outputs.request(&request)).await;
            if let Err(error) = result {
                tracing::warn!(%error, sequence, source = %request.source, job_id = %request.job_id,
                    "keep request not sent; the stream retries from it");
                return Some(sequence.clone());
            }
        }
        None
    }

    async fn publish_then_fail(
        &self,
        before: Vec<(String, Notification)>,
        sequence: String,
        deadline: Instant,
    ) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let first_failed = self.publish(&before, deadline).await.unwrap_or(sequence);
        response.batch_item_failures.push(failure(first_failed));
        response
    }

    /// Publishes in order, retrying refused entries; returns the sequence
    /// number of the first record that could not be published.
    async fn publish(&self, pending: &[(String, Notification)], deadline: Instant) -> Option<String> {
        for chunk in pending.chunks(self.bus.max_batch().max(1)) {
            // Indexes into `chunk` not yet accepted, in order.
            let left = std::sync::Mutex::new((0..chunk.len()).collect::<Vec<usize>>());
            let (result, _) = self
                .backoff
                .run(deadline, || async {
                    let indexes = left.lock().expect("lock").clone();
                    let batch: Vec<Notification> = indexes.iter().map(|&i| chunk[i].1.clone()).collect();
                    let results = self.bus.publish(&batch).await?;
                    let mut refused = Vec::new();
                    let mut first_error: Option<PortError> = None;
                    for (&i, result) in indexes.iter().zip(results) {
                        match result {
                            None => outcomes::record_notified(&chunk[i].1),
                            Some(error) => {
                                refused.push(i);
                                first_error.get_or_insert(error);
                            }
                        }
                    }
                    *left.lock().expect("lock") = refused;
                    first_error.map_or(Ok(()), Err)
                })
                .await;
            if let Err(error) = result {
                let first = left.lock().expect("lock").first().map(|&i| chunk[i].0.clone());
                tracing::warn!(%error, sequence = first.as_deref(), "notification not accepted; the stream retries from it");
                return first.or_else(|| chunk.first().map(|(s, _)| s.clone()));
            }
        }
        None
    }
}

fn failure(sequence: String) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence);
    failure
}
