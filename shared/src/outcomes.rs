//! The single place where event outcomes are counted and logged, so logs
//! and (later) metrics can never disagree.

use crate::domain::job::{ApplyResult, JobEvent, Outcome};

/// Logs one applied, duplicate, stale or conflicting event.
pub fn record_apply(event: &JobEvent, result: &ApplyResult) {
    let from = result.from.map(|s| s.as_str()).unwrap_or("unknown");
    let to = result.to.map(|s| s.as_str()).unwrap_or("unknown");
    match result.outcome {
        Outcome::Applied => tracing::info!(
            source = %event.source, job_id = %event.job_id, event_id = %event.event_id,
            origin = event.origin.as_str(), outcome = "applied", to, progress = event.progress,
            "job transition applied"
        ),
        Outcome::Conflict => tracing::warn!(
            source = %event.source, job_id = %event.job_id, event_id = %event.event_id,
            origin = event.origin.as_str(), outcome = "conflict", current = from, event_status = event.status.as_str(),
            "conflicting terminal event recorded, not applied"
        ),
        outcome => tracing::info!(
            source = %event.source, job_id = %event.job_id, event_id = %event.event_id,
            origin = event.origin.as_str(), outcome = outcome.as_str(), current = to,
            "event recorded without a transition"
        ),
    }
}

/// Logs a message that can never be processed and went to the DLQ.
pub fn record_permanent_failure(source: Option<&str>, message_id: &str, reason: &str) {
    tracing::error!(
        source = source.unwrap_or("unknown"),
        message_id,
        reason,
        "permanent failure: message sent to the DLQ"
    );
}

/// Logs a reconciler run's summary.
pub fn record_reconcile_run(summary: &crate::reconcile::RunSummary) {
    tracing::info!(
        candidates = summary.candidates,
        polled = summary.polled,
        advanced = summary.advanced,
        missed_webhooks_recovered = summary.missed_webhooks_recovered(),
        recovered_completed = summary.recovered_completed,
        recovered_failed = summary.recovered_failed,
        unchanged = summary.unchanged,
        not_found = summary.not_found,
        errors = summary.errors,
        skipped_rate_limited = summary.skipped_rate_limited,
        rate_limited_sources = ?summary.rate_limited_sources.iter().map(|r| r.source.as_str()).collect::<Vec<_>>(),
        "reconciler run finished"
    );
}
