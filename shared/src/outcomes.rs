//! Outcomes that more than one function counts and logs together, so that
//! logs and metrics never disagree. Log lines name the source, job and event,
//! never a secret or a payload.

use crate::domain::job::{ApplyResult, JobEvent, Origin, Outcome};
use crate::telemetry::{count, count_n, count_with, names};

/// A delivery verified and enqueued by the receiver.
pub fn record_accepted(source: &str, event_id: &str) {
    count(names::WEBHOOKS_ACCEPTED, source);
    tracing::info!(source, event_id, "webhook accepted");
}

/// A delivery rejected for its signature; `reason` is the reply's code.
pub fn record_signature_failure(source: &str, reason: &'static str) {
    count_with(names::SIGNATURE_FAILURES, source, "reason", reason);
    tracing::warn!(source, reason, "signature verification failed");
}

/// A delivery answered 503 or 429 before it was verified or queued: its
/// source's key set could not be had (`key_set_unavailable`), or it was
/// over its source's rate (`rate_limited`). The provider retries it.
pub fn record_deferred(source: &str, reason: &'static str) {
    count_with(names::DELIVERIES_DEFERRED, source, "reason", reason);
    tracing::warn!(source, reason, "delivery deferred; the provider will retry");
}

/// A track request applied: `new` when the job was not known before.
pub fn record_tracked(source: &str, job_id: &str, new: bool) {
    count(names::JOBS_TRACKED, source);
    tracing::info!(source, job_id, new, "job tracked");
}

/// A verified delivery that could not be enqueued (answered 503, or 422
/// when SQS refused the message for good).
pub fn record_enqueue_failure(source: &str, event_id: &str, error: &dyn std::fmt::Display) {
    count(names::ENQUEUE_FAILURES, source);
    tracing::error!(source, event_id, %error, "enqueue failed; asking the provider to retry");
}

/// A verified delivery too large for one SQS message even base64-encoded
/// (answered 413).
pub fn record_unqueueable(source: &str, event_id: &str, error: &dyn std::fmt::Display) {
    count(names::ENQUEUE_FAILURES, source);
    tracing::error!(source, event_id, %error, "verified delivery cannot be queued");
}

/// One applied, duplicate, stale or conflicting event.
pub fn record_apply(event: &JobEvent, result: &ApplyResult) {
    let (source, job_id, event_id, origin) = (
        event.source.as_str(),
        event.job_id.as_str(),
        event.event_id.as_str(),
        event.origin.as_str(),
    );
    let from = result.from.map(|s| s.as_str()).unwrap_or("unknown");
    let to = result.to.map(|s| s.as_str()).unwrap_or("unknown");
    match result.outcome {
        Outcome::Applied => {
            count(names::EVENTS_APPLIED, source);
            // Webhook coverage: who brought the job to its end first.
            // A replay corrects a job that had already ended: it is no one's first.
            let first = match event.origin {
                Origin::Webhook => Some(names::TERMINAL_FIRST_BY_WEBHOOK),
                Origin::Poll => Some(names::TERMINAL_FIRST_BY_POLL),
                Origin::Replay | Origin::Keep => None,
            };
            if let Some(name) = first.filter(|_| event.status.is_terminal()) {
                count(name, source);
            }
            tracing::info!(
                source,
                job_id,
                event_id,
                origin,
                outcome = "applied",
                from = result.from.map(|s| s.as_str()),
                to,
                progress = event.progress,
                "job transition applied"
            );
        }
        Outcome::Conflict => {
            count(names::TERMINAL_CONFLICTS, source);
            tracing::warn!(
                source,
                job_id,
                event_id,
                origin,
                outcome = "conflict",
                current = from,
                event_status = event.status.as_str(),
                "conflicting terminal event recorded, not applied"
            );
        }
        outcome => {
            let name = if outcome == Outcome::Duplicate {
                names::EVENTS_DUPLICATE
            } else {
                names::EVENTS_STALE
            };
            count(name, source);
            tracing::info!(
                source,
                job_id,
                event_id,
                origin,
                outcome = outcome.as_str(),
                current = to,
                "event recorded without a transition"
            );
        }
    }
}

/// Writes for one event that were retried in process (conflicts,
/// throttling, 5xx); `succeeded` says whether a retry got through.
pub fn record_write_retries(event: &JobEvent, retries: u32, succeeded: bool) {
    count_n(names::WRITE_RETRIES, &event.source, u64::from(retries));
    tracing::info!(
        source = event.source.as_str(),
        job_id = event.job_id.as_str(),
        event_id = event.event_id.as_str(),
        retries,
        succeeded,
        "write retried after a transient failure"
    );
}

/// A message that can never be processed and went to the DLQ. The source and
/// event id come from the message attributes, so they are known even when
/// the body cannot be read.
pub fn record_permanent_failure(source: Option<&str>, event_id: Option<&str>, message_id: &str, reason: &str) {
    let source = source.unwrap_or("unknown");
    let event_id = event_id.unwrap_or("unknown");
    count(names::PERMANENT_FAILURES, source);
    tracing::error!(
        source,
        event_id,
        message_id,
        reason,
        "permanent failure: message sent to the DLQ"
    );
}

/// A delivery its provider's profile says is about something other than a
/// job (acknowledged, not dead-lettered).
pub fn record_not_a_job_event(source: &str, message_id: &str, reason: &str) {
    count(names::DELIVERIES_IGNORED, source);
    tracing::info!(source, message_id, reason, "delivery is not a job event; acknowledged");
}

/// How a thin event's read from the provider's API went: `fetched`,
/// `retried` (left on the queue: the API failed, refused for now or lags),
/// `failed` (dead-lettered with the reason) or `already_recorded` (a
/// redelivery, not read again).
pub fn record_thin_fetch(event: &JobEvent, outcome: &'static str, detail: Option<&str>) {
    count_with(names::THIN_EVENT_FETCHES, &event.source, "outcome", outcome);
    tracing::info!(
        source = event.source.as_str(),
        job_id = event.job_id.as_str(),
        event_id = event.event_id.as_str(),
        outcome,
        detail,
        "thin event's state read from the provider"
    );
}

/// A transition's notification, accepted by the bus.
pub fn record_notified(n: &crate::domain::notification::Notification) {
    count(names::NOTIFICATIONS_PUBLISHED, &n.source);
    tracing::info!(
        source = n.source.as_str(),
        job_id = n.job_id.as_str(),
        transition_id = n.transition_id.as_str(),
        from = n.from.map(|s| s.as_str()),
        to = n.to.as_str(),
        "notification published"
    );
}
