//! Timestamped HMAC headers of the Stripe shape: `<t>=<unix>,<v>=<hex>`
//! holding the HMAC-SHA256 of `{timestamp}.{body}` as lower-case hex. Stripe
//! (and Mux) say `t=…,v1=…` in a header a source may rename; ElevenLabs
//! `t=…,v0=…` in `ElevenLabs-Signature`; Cloudflare Stream `time=…,sig1=…`
//! in `Webhook-Signature`. One grammar, one verifier.

use http::HeaderMap;

use super::{
    any_key_matches, check_tolerance, decode_hex_tag, header, mac, parse_timestamp, Signing, SigningKey, VerifyError,
};

/// The header a Stripe-shaped source reads when it names none.
pub const DEFAULT_HEADER: &str = "stripe-signature";

/// Where a scheme of this shape puts its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub header: &'static str,
    pub timestamp_key: &'static str,
    pub signature_key: &'static str,
}

pub const STRIPE: Shape = Shape {
    header: DEFAULT_HEADER,
    timestamp_key: "t",
    signature_key: "v1",
};

/// elevenlabs.io/docs, "Webhooks", HMAC authentication: `ElevenLabs-Signature:
/// t=<unix>,v0=<hex of HMAC-SHA256(secret, "{t}.{body}")>`.
pub const ELEVENLABS: Shape = Shape {
    header: "elevenlabs-signature",
    timestamp_key: "t",
    signature_key: "v0",
};

/// developers.cloudflare.com/stream/manage-video-library/using-webhooks,
/// "Verify webhook authenticity": `Webhook-Signature: time=<unix>,sig1=<hex
/// of HMAC-SHA256(secret, "{time}.{body}")>`.
pub const CLOUDFLARE_STREAM: Shape = Shape {
    header: "webhook-signature",
    timestamp_key: "time",
    signature_key: "sig1",
};

pub(super) fn verify(
    shape: Shape,
    source: &Signing<'_>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<i64, VerifyError> {
    let name = source.header.unwrap_or(shape.header);
    let raw = match header(headers, &[name]) {
        Some(Ok(raw)) => raw,
        Some(Err(())) => return Err(VerifyError::MalformedSignature),
        None => return Err(VerifyError::MissingSignature),
    };
    let mut timestamp: Option<&str> = None;
    let mut candidates = Vec::new();
    let mut saw_signature = false;
    for item in raw.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        if key == shape.timestamp_key {
            // Two timestamps make the header ambiguous: refuse it.
            if timestamp.is_some() {
                return Err(VerifyError::MalformedTimestamp);
            }
            timestamp = Some(value);
        } else if key == shape.signature_key {
            saw_signature = true;
            candidates.extend(decode_hex_tag(value));
        }
    }
    let timestamp = parse_timestamp(timestamp.ok_or(VerifyError::MissingTimestamp)?)?;
    if !saw_signature {
        return Err(VerifyError::MissingSignature);
    }
    check_tolerance(timestamp, now_unix, source.tolerance_secs)?;
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    let timestamp_text = timestamp.to_string();
    let parts: [&[u8]; 3] = [timestamp_text.as_bytes(), b".", body];
    if any_key_matches(source.keys, &parts, &candidates) {
        Ok(timestamp)
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// The header value of `shape` for `body` at `timestamp`.
pub fn sign_shaped(shape: Shape, key: &SigningKey, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let tag = mac(key, &[ts.as_bytes(), b".", body]);
    format!(
        "{}={ts},{}={}",
        shape.timestamp_key,
        shape.signature_key,
        hex::encode(tag)
    )
}

/// `stripe-signature`-shaped value: `t=<unix>,v1=<hex>`.
pub fn sign(key: &SigningKey, timestamp: i64, body: &[u8]) -> String {
    sign_shaped(STRIPE, key, timestamp, body)
}
