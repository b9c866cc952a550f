//! Provider profiles: how one provider's payloads map onto job events.
//! A new provider is one new file implementing [`ProviderProfile`], plus a
//! line in [`profile`].

mod generic;
mod mux;
mod replicate;

use time::OffsetDateTime;

pub use generic::Generic;
pub use mux::Mux;
pub use replicate::Replicate;

use super::job::{JobEvent, Origin};
use super::signature::sha256_hex;

use super::job::JobStatus;

/// A webhook body, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPayload {
    /// The body's own event id, if it carries one.
    pub id: Option<String>,
    pub job_id: String,
    pub kind: String,
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    pub provider_time: Option<OffsetDateTime>,
}

/// A body that cannot be turned into an event. Retrying will not help.
/// Messages name fields, never quote values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// A `GET /jobs/{id}` answer, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollAnswer {
    pub status: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    pub updated_at: Option<OffsetDateTime>,
}

pub trait ProviderProfile: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Why a well-formed delivery carries no job event (an event type that
    /// is about something else), if it does not: it is acknowledged and
    /// counted, never dead-lettered.
    fn not_a_job_event(&self, _body: &[u8]) -> Option<String> {
        None
    }
    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError>;
    /// The job's URL under the source's `api.base_url`; `job_id` is one
    /// path segment and must be escaped as such.
    fn poll_path(&self, job_id: &str) -> Vec<String>;
    fn parse_poll(&self, body: &[u8]) -> Result<PollAnswer, PayloadError>;
    /// The `Authorization` header value for the source's `api.token`.
    fn authorization(&self, token: &str) -> String {
        format!("Bearer {token}")
    }
}

/// The profile registered under `name`, if any.
pub fn profile(name: &str) -> Option<&'static dyn ProviderProfile> {
    match name {
        "generic" => Some(&Generic),
        "replicate" => Some(&Replicate),
        "mux" => Some(&Mux),
        _ => None,
    }
}

/// A poll answer as a job event. Its id is derived from the job, status and
/// progress, so polling the same state twice is a duplicate, not a new event.
pub fn job_event_from_poll(source: &str, job_id: &str, answer: &PollAnswer) -> JobEvent {
    let progress = answer.progress.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    let identity = format!("{source}\n{job_id}\n{}\n{progress}", answer.status);
    JobEvent {
        event_id: format!("poll-{}", &sha256_hex(identity.as_bytes())[..32]),
        source: source.to_owned(),
        job_id: job_id.to_owned(),
        kind: format!("poll.{}", answer.status),
        origin: Origin::Poll,
        status: answer.status,
        progress: answer.progress,
        output_url: answer.output_url.clone(),
        error: answer.error.clone(),
        provider_time: answer.updated_at,
    }
}
