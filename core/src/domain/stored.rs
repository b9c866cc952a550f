//! What each write does to a stored job: the rules every store renders. The
//! DynamoDB adapter writes them as conditional expressions without reading
//! the job; the in-memory store applies them directly. A differential test
//! runs both on the same events.

use std::time::Duration;

use super::job::{JobEvent, JobFields, Origin};

/// The one timeline entry that counts a job's 404 answers, however many: a
/// job the provider never knew cannot grow its timeline at every poll.
pub const NOT_FOUND_EVENT_ID: &str = "poll-not-found";
pub const NOT_FOUND_KIND: &str = "poll.not_found";
/// The timeline entry that records the reconciler giving up on a job.
pub const ABANDONED_EVENT_ID: &str = "poll-abandoned";
pub const ABANDONED_KIND: &str = "poll.abandoned";

/// When an open job is due for a poll after activity (an applied event, its
/// tracking) at `now_ms`.
pub fn due_after_activity(now_ms: i64, stale_after: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX))
}

/// What an applied event writes to a job. Beyond these, an applied event
/// always reopens a job the reconciler had abandoned and resets its count of
/// polls that changed nothing: the job moved, so it is worth polling again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// From the event alone, which makes the outcome independent of order.
    pub fields: JobFields,
    /// What brought the transition; the notification says it.
    pub origin: Origin,
    /// For an event that ends the job, its origin: whichever of a webhook and
    /// a poll applies the terminal transition got there first.
    pub terminal_origin: Option<Origin>,
    /// When the job is next due for a poll; None once it has ended, when it
    /// leaves the open-jobs index for good.
    pub next_poll_at_ms: Option<i64>,
}

impl Transition {
    pub fn of(event: &JobEvent, now_ms: i64, stale_after: Duration) -> Self {
        let fields = JobFields::from_event(event);
        let ended = fields.status.is_terminal();
        Self {
            origin: event.origin,
            terminal_origin: ended.then_some(event.origin),
            next_poll_at_ms: (!ended).then(|| due_after_activity(now_ms, stale_after)),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::JobStatus;

    fn event(status: JobStatus, origin: Origin) -> JobEvent {
        JobEvent {
            event_id: "e".into(),
            source: "s".into(),
            job_id: "j".into(),
            kind: "k".into(),
            origin,
            status,
            progress: None,
            output_url: None,
            error: None,
            result: None,
            provider_time: None,
            archive: None,
        }
    }

    #[test]
    fn an_open_job_is_due_stale_after_its_activity_and_an_ended_one_never() {
        let stale = Duration::from_secs(600);
        let open = Transition::of(&event(JobStatus::Processing, Origin::Webhook), 1_000, stale);
        assert_eq!(open.next_poll_at_ms, Some(601_000));
        assert_eq!(open.terminal_origin, None);
        for status in [JobStatus::Completed, JobStatus::Failed, JobStatus::Canceled] {
            let ended = Transition::of(&event(status, Origin::Poll), 1_000, stale);
            assert_eq!(
                (ended.next_poll_at_ms, ended.terminal_origin),
                (None, Some(Origin::Poll))
            );
            assert_eq!(ended.origin, Origin::Poll);
        }
        assert_eq!(due_after_activity(i64::MAX - 1, stale), i64::MAX, "no overflow");
        assert_eq!(due_after_activity(5, Duration::from_millis(7)), 12);
    }
}
