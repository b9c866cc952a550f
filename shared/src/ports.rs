//! Ports: one small trait per capability the functions need from the outside
//! world. Adapters in `crate::adapters` implement them.

use async_trait::async_trait;

use crate::domain::envelope::Envelope;

/// An error from an adapter, classified by whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl PortError {
    pub fn retryable(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            retryable: true,
        }
    }
    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            retryable: false,
        }
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
