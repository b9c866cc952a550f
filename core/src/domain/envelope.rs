//! The versioned message the receiver puts on the queue for the processor.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::signature::VerifiedWebhook;

pub const ENVELOPE_VERSION: u32 = 1;

/// Whether `c` is an XML 1.0 character (`#x9 | #xA | #xD | #x20 to #xD7FF |
/// #xE000 to #xFFFD | #x10000 to #x10FFFF`), the set queues such as SQS take
/// in a message (SendMessage API reference). The envelope's JSON holds only
/// these, so any queue can carry it. Rust strings hold no surrogates, so only
/// control characters and U+FFFE/U+FFFF are refused.
pub fn text_safe(c: char) -> bool {
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
/// nothing but text-safe characters once JSON-escaped, and escapes no larger than base64
/// would be; otherwise base64. So a body of control characters (six bytes
/// each when escaped) costs 4/3 of its size, never 6×.
fn body_field(body: &[u8]) -> (String, bool) {
    let base64_len = body.len().div_ceil(3) * 4;
    match std::str::from_utf8(body) {
        // Control characters are escaped, so only what escaping leaves
        // (U+FFFE, U+FFFF) can be refused.
        Ok(text)
            if json_escaped_len(text) <= base64_len && text.chars().all(|c| c.is_ascii_control() || text_safe(c)) =>
        {
            (text.to_owned(), false)
        }
        _ => (BASE64.encode(body), true),
    }
}

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
    /// The delivery's headers, lower-case names, for the archive: never one
    /// that carries a credential (the verifier leaves those out).
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
    pub fn from_verified(webhook: &VerifiedWebhook, received_at: String) -> Self {
        let (body, body_base64) = body_field(webhook.body());
        Self {
            v: ENVELOPE_VERSION,
            source: webhook.source().to_owned(),
            event_id: webhook.event_id(),
            received_at,
            scheme: webhook.scheme().as_str().to_owned(),
            webhook_id: webhook.webhook_id().map(str::to_owned),
            signed_at: webhook.timestamp(),
            headers: webhook.headers().clone(),
            body,
            body_base64,
        }
    }

    /// The attributes a queue carries beside the envelope, so a message can
    /// be attributed to its source even when its body cannot be read.
    pub fn attributes(&self) -> [(&'static str, &str); 2] {
        [("source", &self.source), ("event_id", &self.event_id)]
    }

    /// An envelope of `body` from `source`, as the receiver would make one;
    /// for tests of what consumes envelopes.
    #[cfg(any(test, feature = "test-util"))]
    pub fn for_test(source: &str, event_id: &str, body: &[u8]) -> Self {
        let (body, body_base64) = body_field(body);
        Self {
            v: ENVELOPE_VERSION,
            source: source.into(),
            event_id: event_id.into(),
            received_at: "2026-05-13T12:00:05.123Z".into(),
            scheme: "github".into(),
            webhook_id: None,
            signed_at: None,
            headers: BTreeMap::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope_of(body: &[u8]) -> Envelope {
        Envelope::for_test("acme", "msg_1", body)
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
        assert!(envelope.to_json().len() < 330_000, "{}", envelope.to_json().len());
    }

    #[test]
    fn characters_queues_refuse_go_base64() {
        for text in ["ok \u{FFFE}", "ok \u{FFFF}"] {
            let envelope = round_trips(text.as_bytes());
            assert!(envelope.body_base64, "{text:?}");
            assert!(envelope.to_json().chars().all(text_safe));
        }
    }

    #[test]
    fn non_utf8_goes_base64() {
        assert!(round_trips(&[0xff, 0xfe, 0x00, 0x41]).body_base64);
    }

    /// The size rule counts what serde_json writes, character by character.
    #[test]
    fn the_escaped_length_is_the_length_serde_json_writes() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for text in [every_ascii.as_str(), "", "plain", "é\u{2028}\"\\", "\u{7f}\u{1f}\u{0}"] {
            let written = serde_json::to_string(text).expect("json").len() - 2;
            assert_eq!(json_escaped_len(text), written, "{text:?}");
        }
    }

    #[test]
    fn a_body_whose_escapes_cost_exactly_what_base64_would_stays_text() {
        // Three bytes, one escaped: four either way.
        let envelope = envelope_of(b"a\"b");
        assert_eq!((envelope.body.as_str(), envelope.body_base64), ("a\"b", false));
        // One more escape tips it over.
        assert!(envelope_of(b"a\"\"").body_base64);
    }

    #[test]
    fn an_envelope_names_its_source_and_event_for_the_queue() {
        let envelope = Envelope::for_test("acme", "evt_1", b"{}");
        assert_eq!(envelope.attributes(), [("source", "acme"), ("event_id", "evt_1")]);
    }

    #[test]
    fn a_few_control_characters_in_a_long_body_are_escaped_not_base64() {
        let body = b"{\"note\":\"bell \x07 here, and a long enough line around it\"}";
        let envelope = round_trips(body);
        assert!(!envelope.body_base64, "{}", envelope.body);
        assert!(envelope.to_json().contains("\\u0007"));
    }

    #[test]
    fn an_envelope_of_another_version_is_refused_by_its_version() {
        let mut doc: serde_json::Value = serde_json::from_str(&envelope_of(b"{}").to_json()).expect("json");
        doc["v"] = serde_json::json!(2);
        assert!(matches!(
            Envelope::from_json(&doc.to_string()),
            Err(EnvelopeError::Version(2))
        ));
        doc["v"] = serde_json::json!("1");
        assert!(matches!(
            Envelope::from_json(&doc.to_string()),
            Err(EnvelopeError::Shape(_))
        ));
    }
}
