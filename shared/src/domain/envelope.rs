//! The versioned message the receiver puts on the queue for the processor.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::signature::VerifiedWebhook;

pub const ENVELOPE_VERSION: u32 = 1;

/// Request headers worth carrying to the processor: everything else is
/// transport detail or signature material that has served its purpose.
const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub source: String,
    pub event_id: String,
    /// RFC 3339, UTC, when the receiver accepted the delivery.
    pub received_at: String,
    pub scheme: String,
    /// The delivery id the scheme carried (`webhook-id`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The signed timestamp (unix seconds), if the scheme carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<i64>,
    /// Lower-case header names.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The raw body: UTF-8 text as-is, anything else base64 with `body_base64`.
    pub body: String,
    #[serde(default)]
    pub body_base64: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid JSON: line {line} column {column}")]
    Json { line: usize, column: usize },
    #[error("envelope is malformed: {0}")]
    Shape(String),
    #[error("envelope version {0} is not supported (expected {ENVELOPE_VERSION})")]
    Version(u64),
    #[error("envelope body is flagged base64 but does not decode")]
    Body,
}

impl Envelope {
    pub fn from_verified(webhook: &VerifiedWebhook, headers: &HeaderMap, received_at: String) -> Self {
        let kept = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect();
        let (body, body_base64) = match std::str::from_utf8(webhook.body()) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => (BASE64.encode(webhook.body()), true),
        };
        Self {
            v: ENVELOPE_VERSION,
            source: webhook.source().to_owned(),
            event_id: webhook.event_id(),
            received_at,
            scheme: webhook.scheme().as_str().to_owned(),
            webhook_id: webhook.webhook_id().map(str::to_owned),
            signed_at: webhook.timestamp(),
            headers: kept,
            body,
            body_base64,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, EnvelopeError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| EnvelopeError::Json {
            line: e.line(),
            column: e.column(),
        })?;
        // The version decides how to read the rest, so it is checked first.
        match value.get("v").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(ENVELOPE_VERSION) => {}
            Some(v) => return Err(EnvelopeError::Version(v)),
            None => return Err(EnvelopeError::Shape("field `v` must be a version number".into())),
        }
        serde_json::from_value(value).map_err(|e| EnvelopeError::Shape(e.to_string()))
    }

    /// The raw body bytes exactly as the provider sent them.
    pub fn body_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        if self.body_base64 {
            BASE64.decode(&self.body).map_err(|_| EnvelopeError::Body)
        } else {
            Ok(self.body.clone().into_bytes())
        }
    }
}
