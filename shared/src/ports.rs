//! Ports: one small trait per capability the functions need from the outside
//! world. Adapters in `crate::adapters` implement them.

use async_trait::async_trait;

use crate::domain::envelope::Envelope;
use crate::domain::job::{ApplyResult, JobEvent};

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
}

impl PortError {
    pub fn transient(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            kind: ErrorKind::Transient,
        }
    }
    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            kind: ErrorKind::Permanent,
        }
    }
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// Where verified deliveries go for later processing.
#[async_trait]
pub trait EventQueue: Send + Sync + std::fmt::Debug {
    async fn enqueue(&self, envelope: &Envelope) -> Result<(), PortError>;
}

/// Where the sources document is read from (a file, Secrets Manager).
#[async_trait]
pub trait SourcesLoader: Send + Sync + std::fmt::Debug {
    /// The document's text.
    async fn load(&self) -> Result<String, PortError>;
    /// Where it comes from, for messages (never the content).
    fn location(&self) -> String;
}

/// Where job state lives. `apply` is the single path through which webhooks
/// and poll answers change a job: idempotent per event id and monotonic.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    async fn apply(&self, event: &JobEvent) -> Result<ApplyResult, PortError>;
}

/// Where messages that can never be processed go, with the reason attached.
#[async_trait]
pub trait DeadLetters: Send + Sync + std::fmt::Debug {
    async fn dead_letter(&self, body: &str, reason: &str, source: Option<&str>) -> Result<(), PortError>;
}
