//! The versioned message the receiver puts on the queue for the processor.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::signature::VerifiedWebhook;

pub const ENVELOPE_VERSION: u32 = 1;

/// The most an SQS message may hold, body and attributes together
/// (SendMessage API reference: 1 MiB).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// The attribute type the envelope's attributes are sent with.
pub const ATTRIBUTE_TYPE: &str = "String";

/// Whether SQS accepts `c` in a message body or attribute value
/// (SendMessage API reference: `#x9 | #xA | #xD | #x20 to #xD7FF |
/// #xE000 to #xFFFD | #x10000 to #x10FFFF`). Rust strings hold no
/// surrogates, so only control characters and U+FFFE/U+FFFF are refused.
pub fn sqs_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The bytes `text` takes inside a JSON string as serde_json writes it:
/// quote and backslash take two, control characters two or six.
fn json_escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// How the raw body goes into the envelope: as text when it is UTF-8, holds
/// nothing SQS refuses once JSON-escaped, and escapes no larger than base64
/// would be; otherwise base64. So a body of control characters (six bytes
/// each when escaped) costs 4/3 of its size, never 6×.
fn body_field(body: &[u8]) -> (String, bool) {
    let base64_len = body.len().div_ceil(3) * 4;
    match std::str::from_utf8(body) {
        // Control characters are escaped, so only what escaping leaves
        // (U+FFFE, U+FFFF) can be refused.
        Ok(text) if json_escaped_len(text) <= base64_len && text.chars().all(|c| c < ' ' || sqs_allows(c)) => {
            (text.to_owned(), false)
        }
        _ => (BASE64.encode(body), true),
    }
}

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

/// Why an envelope cannot be sent as one SQS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsFitError {
    #[error("envelope takes {bytes} bytes as an SQS message, over the {SQS_MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error("envelope attribute {0} holds a character SQS refuses")]
    RefusedCharacter(&'static str),
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
        let (body, body_base64) = body_field(webhook.body());
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

    /// The SQS message attributes sent with the envelope, so a message can
    /// be attributed to its source even when its body cannot be read.
    pub fn attributes(&self) -> [(&'static str, &str); 2] {
        [("source", &self.source), ("event_id", &self.event_id)]
    }

    /// The envelope's size as SQS counts it: the body plus each attribute's
    /// name, type and value.
    pub fn sqs_size(&self) -> usize {
        let attributes: usize = self
            .attributes()
            .iter()
            .map(|(name, value)| name.len() + ATTRIBUTE_TYPE.len() + value.len())
            .sum();
        self.to_json().len() + attributes
    }

    /// Checks the envelope can be sent as it is: within the size limit, and
    /// with no character SQS refuses (the body field never has one, see
    /// [`Envelope::from_verified`]; attribute values are checked here).
    pub fn fits_sqs(&self) -> Result<(), SqsFitError> {
        for (name, value) in self.attributes() {
            if !value.chars().all(sqs_allows) {
                return Err(SqsFitError::RefusedCharacter(name));
            }
        }
        match self.sqs_size() {
            bytes if bytes > SQS_MAX_MESSAGE_BYTES => Err(SqsFitError::TooLarge { bytes }),
            _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope_of(body: &[u8]) -> Envelope {
        let (body, body_base64) = body_field(body);
        Envelope {
            v: ENVELOPE_VERSION,
            source: "acme".into(),
            event_id: "msg_1".into(),
            received_at: "2026-05-13T12:00:05.123Z".into(),
            scheme: "github".into(),
            webhook_id: None,
            signed_at: None,
            headers: BTreeMap::new(),
            body,
            body_base64,
        }
    }

    fn round_trips(body: &[u8]) -> Envelope {
        let envelope = envelope_of(body);
        let back = Envelope::from_json(&envelope.to_json()).expect("parses");
        assert_eq!(back.body_bytes().expect("decodes"), body);
        envelope
    }

    #[test]
    fn ordinary_json_stays_readable_text() {
        let body = br#"{"id":"evt_1","type":"job.completed","data":{"job_id":"j","note":"line\nbreak"}}"#;
        assert!(!round_trips(body).body_base64);
    }

    #[test]
    fn control_characters_go_base64_instead_of_inflating_sixfold() {
        let body = vec![0x01u8; 240_000];
        let envelope = round_trips(&body);
        assert!(envelope.body_base64);
        assert!(envelope.sqs_size() < 330_000, "{}", envelope.sqs_size());
        assert_eq!(envelope.fits_sqs(), Ok(()));
    }

    #[test]
    fn characters_sqs_refuses_go_base64() {
        for text in ["ok \u{FFFE}", "ok \u{FFFF}"] {
            let envelope = round_trips(text.as_bytes());
            assert!(envelope.body_base64, "{text:?}");
            assert!(envelope.to_json().chars().all(sqs_allows));
        }
    }

    #[test]
    fn non_utf8_goes_base64() {
        assert!(round_trips(&[0xff, 0xfe, 0x00, 0x41]).body_base64);
    }

    #[test]
    fn the_largest_accepted_body_of_any_content_fits_one_message() {
        // The receiver's upper bound on JOBHOOK_MAX_BODY_BYTES.
        let n = crate::config::MAX_BODY_BYTES_LIMIT as usize;
        for byte in [b'a', b'"', 0x01, 0xff] {
            let envelope = envelope_of(&vec![byte; n]);
            assert_eq!(envelope.fits_sqs(), Ok(()), "a body of {n} bytes 0x{byte:02x}");
        }
    }

    #[test]
    fn the_size_counts_body_and_attributes_and_the_limit_is_enforced() {
        let mut envelope = envelope_of(b"{}");
        let json = envelope.to_json().len();
        assert_eq!(
            envelope.sqs_size(),
            json + ("source".len() + 6 + 4) + ("event_id".len() + 6 + 5)
        );
        envelope.event_id = "x".repeat(SQS_MAX_MESSAGE_BYTES);
        assert!(matches!(envelope.fits_sqs(), Err(SqsFitError::TooLarge { .. })));
        envelope.event_id = "id\u{FFFF}".into();
        assert_eq!(envelope.fits_sqs(), Err(SqsFitError::RefusedCharacter("event_id")));
    }
}
