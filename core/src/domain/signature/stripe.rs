//! Stripe-shaped signatures: `t=<unix>,v1=<hex>` with the HMAC-SHA256 of
//! `{t}.{body}`; the header name may be overridden per source.

use http::HeaderMap;

use super::{
    any_key_matches, check_tolerance, decode_hex_tag, header, mac, parse_timestamp, Signing, SigningKey, VerifyError,
};

/// The header a source reads when it names none.
pub const DEFAULT_HEADER: &str = "stripe-signature";

pub(super) fn verify(
    source: &Signing<'_>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<i64, VerifyError> {
    let name = source.header.unwrap_or(DEFAULT_HEADER);
    let raw = match header(headers, &[name]) {
        Some(Ok(raw)) => raw,
        Some(Err(())) => return Err(VerifyError::MalformedSignature),
        None => return Err(VerifyError::MissingSignature),
    };
    let mut timestamp: Option<&str> = None;
    let mut candidates = Vec::new();
    let mut saw_v1 = false;
    for item in raw.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            // Two timestamps make the header ambiguous: refuse it.
            "t" if timestamp.is_some() => return Err(VerifyError::MalformedTimestamp),
            "t" => timestamp = Some(value),
            "v1" => {
                saw_v1 = true;
                candidates.extend(decode_hex_tag(value));
            }
            _ => {}
        }
    }
    let timestamp = parse_timestamp(timestamp.ok_or(VerifyError::MissingTimestamp)?)?;
    if !saw_v1 {
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

/// `stripe-signature`-shaped value: `t=<unix>,v1=<hex>`.
pub fn sign(key: &SigningKey, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let tag = mac(key, &[ts.as_bytes(), b".", body]);
    format!("t={ts},v1={}", hex::encode(tag))
}
