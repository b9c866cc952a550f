//! The keeper: copies a completed job's outputs into the user's bucket
//! before the provider deletes them, then records where they are as a
//! transition of the job's own (origin `keep`), whose notification announces
//! the copies. Requests come from the notifier through the outputs queue, one
//! per completion with an output URL; a request sent twice is kept once (the
//! record is conditional, and the object's key is the job's).
//!
//! What happens to a request:
//! - the source keeps no outputs, or the job moved on (a correction changed
//!   its output) or is kept already: nothing, and the message is done;
//! - the provider deleted the output already (404, 410): counted as
//!   `OutputsExpiredBeforeKept`, which raises an alarm, and done: no retry
//!   brings it back;
//! - the output is over the source's cap, or the provider refuses it: counted
//!   as `OutputsNotKept`, and done;
//! - anything that may pass (the provider's 5xx, a reset, S3 throttling) is
//!   tried again at once, the copy up to [`COPY_ATTEMPTS`] times and the
//!   record with the writes' backoff; then, as for what a fix makes pass (the
//!   source names a bucket the stack may not write to), the message fails and
//!   is handed back to the queue after a doubling delay ([`redelivery_delay`])
//!   rather than the queue's 90-minute visibility timeout, which would outlast
//!   most providers' retention; after the queue's `maxReceiveCount` it is
//!   dead-lettered, from where it can be redriven.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use jobhook::domain::job::JobStatus;
use jobhook::domain::outputs::{object_key, KeepRequest, KeptOutput};
use jobhook::outputs::{keep_output, Destination, KeepError};
use jobhook::ports::{JobQuery, JobStore, ObjectUpload, Redelivery};
use jobhook::retry::Backoff;
use jobhook::sources_cache::SourcesCache;
use jobhook::telemetry::{count, count_n, names};
use tokio::time::Instant;

/// The function's timeout, as `template.yaml` sets it (a test holds the two
/// together): Lambda's longest, for a multi-GB video streamed at tens of MB/s.
pub const TIMEOUT: Duration = Duration::from_secs(900);

/// How long the provider may take to start answering, and to send the next
/// bytes; the copy as a whole is bounded by the function's timeout alone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 5;

/// Copies of one output tried in one invocation before it is handed back.
pub const COPY_ATTEMPTS: u32 = 3;

/// When a failed request is tried again: 30 s after its first receipt,
/// doubling to 15 minutes; with the queue's 8 receives, about 45 minutes in
/// all, inside an hour's retention.
pub fn redelivery_delay(receive_count: u32) -> Duration {
    jobhook::domain::schedule::doubling(Duration::from_secs(30), Duration::from_secs(900), receive_count)
}

/// The client outputs are fetched with: no total timeout (a large output
/// takes minutes), a bounded wait for each read, and redirects only to
/// `https` (a CDN hop), never down to plain `http`.
pub fn output_client() -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if attempt.url().scheme() != "https" && attempt.previous().iter().all(|u| u.scheme() == "https") {
            attempt.error("a redirect from https to another scheme")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(policy)
        .user_agent(concat!("jobhook-keeper/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initializes")
}

#[derive(Debug)]
pub struct Keeper {
    pub sources: SourcesCache,
    pub store: Arc<dyn JobStore>,
    pub jobs: Arc<dyn JobQuery>,
    pub upload: Arc<dyn ObjectUpload>,
    pub http: reqwest::Client,
    /// The one bucket the stack lets the keeper write to; None where the
    /// stack keeps no outputs.
    pub bucket: Option<String>,
    /// Every key the keeper writes starts with it (IAM allows no other).
    pub prefix: String,
    pub part_bytes: usize,
    /// Hands a failed request back to the queue sooner; None: it waits out
    /// the visibility timeout.
    pub redelivery: Option<Arc<dyn Redelivery>>,
    /// For the record's write.
    pub backoff: Backoff,
    pub copy_attempts: u32,
}

/// What became of a request that needs no retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Kept,
    /// Nothing to do, and why.
    Skipped(&'static str),
    /// Gone at the provider before it could be kept.
    Expired,
    /// Never keepable (too large, refused).
    NotKept,
}

/// A request to try again.
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error("{0}")]
    Transient(String),
    /// Needs a fix first; redelivered until it dead-letters.
    #[error("{0}")]
    Misconfigured(String),
}

/// Whether `url` may be fetched: `https`, or the source's own API host (a
/// provider simulator or a private API named in the sources document).
fn fetchable(url: &str, api_base: Option<&url::Url>) -> Result<(), &'static str> {
    let parsed = url::Url::parse(url).map_err(|_| "the output URL does not parse")?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if api_base.is_some_and(|base| base.host() == parsed.host() && base.port() == parsed.port()) => Ok(()),
        _ => Err("an output URL must be https (or on the source's api.base_url host)"),
    }
}

impl Keeper {
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            if let Err(error) = self.handle_message(message, deadline).await {
                let id = message.message_id.clone().unwrap_or_default();
                let receives = message
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1);
                let delay = redelivery_delay(receives);
                let retry_in_secs = delay.as_secs();
                match &error {
                    Retry::Transient(_) => tracing::warn!(message_id = id.as_str(), %error, receives, retry_in_secs,
                        "keep request will be retried"),
                    Retry::Misconfigured(_) => tracing::error!(message_id = id.as_str(), %error, receives,
                        retry_in_secs, "keep request needs a fix; it will be retried"),
                }
                if let (Some(redelivery), Some(handle)) = (&self.redelivery, message.receipt_handle.as_deref()) {
                    if let Err(e) = redelivery.redeliver_in(handle, delay).await {
                        tracing::warn!(message_id = id.as_str(), error = %e, "it waits out the visibility timeout");
                    }
                }
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn handle_message(&self, message: &SqsMessage, deadline: Instant) -> Result<Done, Retry> {
        let body = message.body.as_deref().unwrap_or_default();
        let Ok(request) = serde_json::from_str::<KeepRequest>(body) else {
            // Only the notifier writes this queue; a body it did not write
            // is dead-lettered by the redrive policy for someone to read.
            return Err(Retry::Misconfigured("the message is not a keep request".into()));
        };
        self.keep(&request, deadline).await
    }

    /// Keeps `request`'s output, or says why not.
    pub async fn keep(&self, request: &KeepRequest, deadline: Instant) -> Result<Done, Retry> {
        let (source_name, job_id) = (request.source.as_str(), request.job_id.as_str());
        let sources = self
            .sources
            .get()
            .await
            .map_err(|e| Retry::Transient(format!("sources: {e}")))?;
        let Some(source) = sources.get(source_name) else {
            return Ok(skipped(request, "no such source"));
        };
        let Some(keep) = source.keep_outputs.as_ref() else {
            return Ok(skipped(request, "the source keeps no outputs"));
        };
        match self.bucket.as_deref() {
            Some(bucket) if bucket == keep.bucket && keep.prefix.starts_with(&self.prefix) => {}
            allowed => {
                return Err(Retry::Misconfigured(format!(
                    "source {source_name} keeps outputs in s3://{}/{}, but the stack writes only to {}",
                    keep.bucket,
                    keep.prefix,
                    allowed.map_or_else(
                        || "no bucket (OutputsBucketName is empty)".to_owned(),
                        |b| format!("s3://{b}/{}", self.prefix)
                    )
                )))
            }
        }
        let job = self
            .jobs
            .get(source_name, job_id)
            .await
            .map_err(|e| Retry::Transient(e.to_string()))?;
        let current = job.as_ref().filter(|j| {
            j.fields.status == JobStatus::Completed && j.fields.output_url.as_deref() == Some(&request.output_url)
        });
        let Some(current) = current else {
            return Ok(skipped(request, "the job no longer has this output"));
        };
        if current.kept_outputs.is_some() {
            return Ok(skipped(request, "kept already"));
        }
        if let Err(reason) = fetchable(&request.output_url, source.api.as_ref().map(|a| &a.base_url)) {
            record_output_not_kept(source_name, job_id, &reason);
            self.record_lost(request, reason, deadline).await?;
            return Ok(Done::NotKept);
        }

        let key = object_key(&keep.prefix, source_name, job_id, &request.output_url);
        let destination = Destination {
            bucket: &keep.bucket,
            key: &key,
            max_bytes: keep.max_bytes,
            part_bytes: self.part_bytes,
        };
        let mut attempt = 1;
        let copied = loop {
            let copied = keep_output(&self.http, self.upload.as_ref(), &request.output_url, &destination).await;
            match copied {
                Err(ref error) if error.is_retryable() && attempt < self.copy_attempts.max(1) => {
                    tracing::warn!(source = source_name, job_id, %error, attempt, "copy failed; trying again");
                    tokio::time::sleep(self.backoff.cap(attempt)).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        let kept = match copied {
            Ok(kept) => kept,
            Err(error @ KeepError::Expired(_)) => {
                record_output_expired(source_name, job_id, &request.completed_at, &error);
                self.record_lost(request, &error.to_string(), deadline).await?;
                return Ok(Done::Expired);
            }
            Err(error) if error.is_retryable() => return Err(Retry::Transient(error.to_string())),
            // The bucket refused for good (access denied, no such bucket).
            Err(error @ KeepError::Store(_)) => return Err(Retry::Misconfigured(error.to_string())),
            Err(error) => {
                record_output_not_kept(source_name, job_id, &error);
                self.record_lost(request, &error.to_string(), deadline).await?;
                return Ok(Done::NotKept);
            }
        };
        let kept = [kept];
        let (recorded, _) = self
            .backoff
            .run(deadline, || {
                self.store
                    .record_kept_outputs(source_name, job_id, &request.output_url, &kept)
            })
            .await;
        match recorded {
            Ok(true) => {
                record_outputs_kept(source_name, job_id, &kept);
                Ok(Done::Kept)
            }
            // A copy under the same key that recorded first, or a correction:
            // either way this one announces nothing.
            Ok(false) => Ok(skipped(request, "recorded meanwhile")),
            Err(error) => Err(Retry::Transient(error.to_string())),
        }
    }
}

impl Keeper {
    /// Says on the job why its output was not kept, for the console. The
    /// reason never holds the URL, whose query may be a credential.
    async fn record_lost(&self, request: &KeepRequest, why: &str, deadline: Instant) -> Result<(), Retry> {
        let (recorded, _) = self
            .backoff
            .run(deadline, || {
                self.store
                    .record_outputs_lost(&request.source, &request.job_id, &request.output_url, why)
            })
            .await;
        recorded.map(|_| ()).map_err(|e| Retry::Transient(e.to_string()))
    }
}

/// A completed job's outputs, kept.
fn record_outputs_kept(source: &str, job_id: &str, kept: &[KeptOutput]) {
    count_n(names::OUTPUTS_KEPT, source, kept.len() as u64);
    let bytes: u64 = kept.iter().map(|k| k.bytes).sum();
    tracing::info!(source, job_id, outputs = kept.len(), bytes, "outputs kept");
}

/// An output the provider deleted before it could be kept: the alarm's metric.
fn record_output_expired(source: &str, job_id: &str, completed_at: &str, detail: &dyn std::fmt::Display) {
    count(names::OUTPUTS_EXPIRED_BEFORE_KEPT, source);
    tracing::error!(source, job_id, completed_at, reason = %detail, "output gone before it was kept");
}

/// An output that will never be kept (over the size cap, refused by the
/// provider): counted and logged, not retried.
fn record_output_not_kept(source: &str, job_id: &str, detail: &dyn std::fmt::Display) {
    count(names::OUTPUTS_NOT_KEPT, source);
    tracing::error!(source, job_id, reason = %detail, "output not kept");
}

fn skipped(request: &KeepRequest, why: &'static str) -> Done {
    tracing::info!(source = %request.source, job_id = %request.job_id, why, "keep request needs nothing");
    Done::Skipped(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `events/keeper/sqs-keep-request.json` (also `sam local invoke -e`) is
    /// an SQS event whose body is a keep request as the notifier writes it.
    #[test]
    fn the_sample_event_is_one_keep_request_as_the_notifier_sends_it() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../events/keeper/sqs-keep-request.json")).expect("an SQS event");
        let record = &event.records[0];
        let request: KeepRequest = serde_json::from_str(record.body.as_deref().expect("body")).expect("a keep request");
        assert_eq!((request.source.as_str(), request.transition), ("replicate", 2));
        assert_eq!(fetchable(&request.output_url, None), Ok(()));
        assert_eq!(
            record.attributes.get("ApproximateReceiveCount").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn a_failed_request_comes_back_within_the_hour_not_after_the_visibility_timeout() {
        let waits: Vec<u64> = (1..=8).map(|n| redelivery_delay(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900, 900]);
        assert!(
            waits[..7].iter().sum::<u64>() < 3600,
            "seven retries inside Replicate's hour"
        );
    }

    #[test]
    fn an_output_is_fetched_over_https_or_from_the_source_s_own_api_host() {
        let api = url::Url::parse("http://127.0.0.1:9001/").expect("url");
        assert_eq!(fetchable("https://replicate.delivery/x/out.png", None), Ok(()));
        assert_eq!(fetchable("http://127.0.0.1:9001/outputs/a/3", Some(&api)), Ok(()));
        assert!(
            fetchable("http://127.0.0.1:9002/outputs/a/3", Some(&api)).is_err(),
            "another port"
        );
        assert!(fetchable("http://169.254.169.254/latest", Some(&api)).is_err());
        assert!(fetchable("http://cdn.example/x", None).is_err());
        assert!(fetchable("file:///etc/passwd", Some(&api)).is_err());
        assert!(fetchable("not a url", None).is_err());
    }
}
