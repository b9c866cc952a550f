//! Provider profiles: how one provider's payloads map onto job events.
//! A new provider is one new file implementing [`ProviderProfile`], plus a
//! line in [`profile`].

mod generic;

use time::OffsetDateTime;

pub use generic::Generic;

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

pub trait ProviderProfile: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn parse_webhook(&self, body: &[u8]) -> Result<WebhookPayload, PayloadError>;
}

/// The profile registered under `name`, if any.
pub fn profile(name: &str) -> Option<&'static dyn ProviderProfile> {
    match name {
        "generic" => Some(&Generic),
        _ => None,
    }
}
