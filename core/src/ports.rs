//! Ports: one small trait per capability the functions need from the outside
//! world. `jobhook::adapters` implements them.

use async_trait::async_trait;

use crate::domain::archive_ref::SegmentRef;
use crate::domain::envelope::Envelope;
use std::time::Duration;

use crate::domain::job::{ApplyResult, JobEvent, JobState, JobStatus, TimelineEntry};
use crate::domain::listing::{Position, SourceRead};
use crate::domain::notification::Notification;
use crate::domain::outputs::{KeepRequest, KeptOutput};
use crate::domain::provider::PollAnswer;
use crate::domain::sources::SourceConfig;

/// How an adapter failed, which decides what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, network, timeouts, 5xx: the same call may succeed later.
    Transient,
    /// The service refused this particular request; retrying will not help.
    Permanent,
    /// Every request will fail until someone fixes the setup (a missing table
    /// or queue, denied access): fail loudly rather than per message.
    Systemic,
}

/// An error from an adapter, classified by whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub message: String,
    pub kind: ErrorKind,
    /// The service's error code when it answered one (`AccessDeniedException`),
    /// for callers that explain a failure rather than retry it.
    pub code: Option<String>,
}

impl PortError {
    pub fn transient(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            kind: ErrorKind::Transient,
            code: None,
        }
    }
    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            kind: ErrorKind::Permanent,
            code: None,
        }
    }
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// Why an envelope was not queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The queue cannot take this envelope as it is (too large, or a
    /// character it refuses): no retry can make it fit.
    #[error("the envelope cannot be queued: {0}")]
    Unqueueable(String),
    #[error(transparent)]
    Failed(#[from] PortError),
}

/// Where verified deliveries go for later processing.
#[async_trait]
pub trait EventQueue: Send + Sync + std::fmt::Debug {
    async fn enqueue(&self, envelope: &Envelope) -> Result<(), EnqueueError>;
}

/// Where the sources document is read from (a file, Secrets Manager).
#[async_trait]
pub trait SourcesLoader: Send + Sync + std::fmt::Debug {
    /// The document's text.
    async fn load(&self) -> Result<String, PortError>;
    /// Where it comes from, for messages (never the content).
    fn location(&self) -> String;
}

/// Where a source's published key set (a JWKS) is read from.
#[async_trait]
pub trait KeySetFetcher: Send + Sync + std::fmt::Debug {
    /// The document at `url`: at most
    /// [`MAX_KEY_SET_BYTES`](crate::domain::signature::jwks::MAX_KEY_SET_BYTES),
    /// from a 2xx answer. Anything else is an error.
    async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, PortError>;
}

/// Where job state lives. `apply` is the single path through which webhooks
/// and poll answers change a job: idempotent per event id and monotonic.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    async fn apply(&self, event: &JobEvent) -> Result<ApplyResult, PortError>;
    /// Whether an event with this id was already recorded for the job: a
    /// redelivered thin event need not cost a call to the provider.
    async fn has_event(&self, source: &str, job_id: &str, event_id: &str) -> Result<bool, PortError>;
    /// Records a job the application has just submitted to the provider, so
    /// the reconciler polls it even if no webhook ever arrives. False if the
    /// job was already known (nothing is changed then).
    async fn track(&self, source: &str, job_id: &str) -> Result<bool, PortError>;
    /// A replay's correction: writes `event`'s fields over the job's whatever
    /// the state rule says, as one more transition with a timeline entry, if
    /// the job still has `expected_transitions` (nothing applied since the
    /// archive was read). False if it moved meanwhile: read and derive again.
    async fn correct(&self, event: &JobEvent, expected_transitions: u64) -> Result<bool, PortError>;
    /// Records where a completed job's outputs were kept, as one more
    /// transition (origin `keep`, event [`KEPT_OUTPUTS_EVENT_ID`]) whose
    /// notification carries them, if the job is still completed with
    /// `output_url` and has none recorded. False otherwise: kept already, or
    /// overtaken by a correction.
    async fn record_kept_outputs(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        kept: &[KeptOutput],
    ) -> Result<bool, PortError>;
    /// Records why a completed job's outputs were not kept (the provider had
    /// deleted them; they were over the cap), if the job is still completed
    /// with `output_url` and has none kept. Not a transition, so nothing is
    /// notified: the console shows it, as the keeper's metric alarms on it.
    async fn record_outputs_lost(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        why: &str,
    ) -> Result<bool, PortError>;
}

/// Where the notifier asks for a completed job's outputs to be kept (the
/// outputs queue).
#[async_trait]
pub trait OutputRequests: Send + Sync + std::fmt::Debug {
    async fn request(&self, request: &KeepRequest) -> Result<(), PortError>;
}

/// A queue message handed back for another try sooner than its visibility
/// timeout would (a long-running consumer's queue hides a message for six
/// function timeouts; a failed copy should not wait that long).
#[async_trait]
pub trait Redelivery: Send + Sync + std::fmt::Debug {
    async fn redeliver_in(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError>;
}

/// The `last_event_id` of the transition that records kept outputs.
pub const KEPT_OUTPUTS_EVENT_ID: &str = "outputs-kept";

/// What a job looks like and what became of each of its events: the reads
/// behind `jobhook status` and `jobhook timeline`, and the dev tools' checks.
#[async_trait]
pub trait JobQuery: Send + Sync + std::fmt::Debug {
    /// The job's state, as of every write acknowledged before the call.
    async fn get(&self, source: &str, job_id: &str) -> Result<Option<JobState>, PortError>;
    /// Every distinct event received for the job, oldest first.
    async fn timeline(&self, source: &str, job_id: &str) -> Result<Vec<TimelineEntry>, PortError>;
    /// A page of `source`'s jobs, from where `cursor` (the previous page's
    /// `next`) left off: for bulk tools, which may stop and resume there.
    async fn jobs_of(&self, source: &str, cursor: Option<&str>) -> Result<JobsPage, PortError>;
}

/// The console's reads: a source's jobs by latest activity (an index, never
/// a table scan) and its open jobs' counts.
#[async_trait]
pub trait JobActivity: Send + Sync + std::fmt::Debug {
    /// Up to `limit` of `source`'s jobs, latest activity first, from just
    /// below `below` (None: the latest), active at or after `since` (RFC
    /// 3339) when given.
    async fn recent(
        &self,
        source: &str,
        below: Option<&Position>,
        since: Option<&str>,
        limit: usize,
    ) -> Result<SourceRead, PortError>;
    /// `source`'s open jobs, and how many of them are overdue for a poll
    /// since before `overdue_before_ms`.
    async fn open_counts(&self, source: &str, overdue_before_ms: i64) -> Result<OpenCounts, PortError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenCounts {
    pub open: u64,
    pub overdue: u64,
}

/// One page of jobs; `next` is None on the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsPage {
    pub jobs: Vec<JobState>,
    pub next: Option<String>,
}

/// Where archive segments are kept (an S3 bucket): objects written once,
/// read back by byte range.
#[async_trait]
pub trait ArchiveSegments: Send + Sync + std::fmt::Debug {
    /// The bucket segments go to, named in each [`SegmentRef`].
    fn bucket(&self) -> &str;
    /// Stores `bytes` at `key`. Writing the same key again with the same
    /// bytes (a retried batch) is harmless.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PortError>;
    /// The bytes `at` names.
    async fn read(&self, at: &SegmentRef) -> Result<Vec<u8>, PortError>;
}

/// Where kept outputs are written (the user's S3 bucket): whole when small,
/// in parts when large, so no output needs memory of its size.
#[async_trait]
pub trait ObjectUpload: Send + Sync + std::fmt::Debug {
    async fn put(&self, bucket: &str, key: &str, content_type: Option<&str>, bytes: Vec<u8>) -> Result<(), PortError>;
    /// Starts a multipart upload; its id.
    async fn start(&self, bucket: &str, key: &str, content_type: Option<&str>) -> Result<String, PortError>;
    /// Uploads part `number` (from 1); its ETag.
    async fn part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<String, PortError>;
    async fn complete(&self, bucket: &str, key: &str, upload: &str, parts: &[(i32, String)]) -> Result<(), PortError>;
    /// Drops the parts of an upload that will not complete.
    async fn abort(&self, bucket: &str, key: &str, upload: &str) -> Result<(), PortError>;
}

/// Where the application hears of each applied transition.
#[async_trait]
pub trait NotificationBus: Send + Sync + std::fmt::Debug {
    /// The most one `publish` call takes.
    fn max_batch(&self) -> usize;
    /// Publishes `batch` in order; per entry, None if accepted or the reason
    /// it was not. An `Err` means none was accepted.
    async fn publish(&self, batch: &[Notification]) -> Result<Vec<Option<PortError>>, PortError>;
}

/// Where messages that can never be processed go, with the reason attached.
#[async_trait]
pub trait DeadLetters: Send + Sync + std::fmt::Debug {
    async fn dead_letter(&self, body: &str, reason: &str, source: Option<&str>) -> Result<(), PortError>;
}

/// An open (non-terminal) job the reconciler may poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenJob {
    pub source: String,
    pub job_id: String,
    pub status: JobStatus,
    /// Epoch ms from which the job is due for a poll.
    pub next_poll_at_ms: i64,
    /// Polls in a row that changed nothing or were answered 404.
    pub poll_misses: u32,
    /// Epoch ms the job was first seen, if known.
    pub first_seen_ms: Option<i64>,
}

/// The open-jobs index and the reconciler's bookkeeping.
#[async_trait]
pub trait OpenJobIndex: Send + Sync + std::fmt::Debug {
    /// Open jobs of `source` due for a poll at `now_ms`, soonest due first.
    async fn due_open_jobs(&self, source: &str, now_ms: i64, limit: usize) -> Result<Vec<OpenJob>, PortError>;
    /// After a poll that did not move the job: not due again before
    /// `next_poll_at_ms`, with `misses` polls in a row that changed nothing
    /// (a no-op if the job has ended or moved meanwhile).
    async fn reschedule(&self, job: &OpenJob, next_poll_at_ms: i64, misses: u32) -> Result<(), PortError>;
    /// Adds to the job's `not_found` timeline entry; returns the 404s so far.
    async fn record_not_found(&self, source: &str, job_id: &str) -> Result<u32, PortError>;
    /// Stops polling a job the provider never resolves: it leaves the index,
    /// its timeline gets an `abandoned` entry. False if it had ended meanwhile.
    async fn abandon(&self, job: &OpenJob, reason: &str) -> Result<bool, PortError>;
    /// Until when (epoch ms) the provider asked not to be polled, if it did.
    async fn rate_limited_until(&self, source: &str) -> Result<Option<i64>, PortError>;
    async fn record_rate_limit(&self, source: &str, until_ms: i64) -> Result<(), PortError>;
}

/// What the provider said about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Found(PollAnswer),
    NotFound,
    RateLimited { retry_after: Option<Duration> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error("timed out")]
    Timeout,
    #[error("provider answered {0}")]
    Server(u16),
    #[error("unexpected status {0}")]
    Unexpected(u16),
    #[error("network error: {0}")]
    Network(String),
    #[error("unusable answer: {0}")]
    BadAnswer(String),
    #[error("source has no api configured")]
    NoApi,
}

impl PollError {
    /// Whether asking again may get an answer: a timeout, a 5xx or a network
    /// failure may pass; an answer that cannot be read, an unexpected status
    /// or a missing `api` will not.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout | Self::Server(_) | Self::Network(_) => ErrorKind::Transient,
            Self::Unexpected(_) | Self::BadAnswer(_) | Self::NoApi => ErrorKind::Permanent,
        }
    }
}

/// The provider's job API.
#[async_trait]
pub trait JobPoller: Send + Sync + std::fmt::Debug {
    async fn poll(&self, source: &SourceConfig, job_id: &str) -> Result<PollOutcome, PollError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_transient_failure_is_worth_retrying() {
        let transient = PortError::transient("dynamodb:put", "throttled");
        let permanent = PortError::permanent("sqs:send", "too large");
        let systemic = PortError {
            kind: ErrorKind::Systemic,
            ..PortError::transient("dynamodb:put", "no such table")
        };
        assert_eq!((transient.kind, transient.is_retryable()), (ErrorKind::Transient, true));
        assert_eq!(
            (permanent.kind, permanent.is_retryable()),
            (ErrorKind::Permanent, false)
        );
        assert!(!systemic.is_retryable());
        assert_eq!(transient.to_string(), "dynamodb:put failed: throttled");
    }

    #[test]
    fn only_a_poll_that_may_pass_is_transient() {
        for error in [
            PollError::Timeout,
            PollError::Server(503),
            PollError::Network("reset".into()),
        ] {
            assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
        }
        for error in [
            PollError::Unexpected(401),
            PollError::BadAnswer("not JSON".into()),
            PollError::NoApi,
        ] {
            assert_eq!(error.kind(), ErrorKind::Permanent, "{error}");
        }
    }
}
