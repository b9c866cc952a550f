//! OpusClip's scheme: hex HMAC-SHA256 over the body followed by a salt.

use http::HeaderMap;

use super::{
    any_key_matches, check_tolerance, decode_hex_tag, header, mac, parse_timestamp, Signing, SigningKey, VerifyError,
};

/// OpusClip (help.opus.pro/api-reference/webhook, "Securing your webhook"):
/// `X-Opus-Signature` is the hex HMAC-SHA256, keyed with the organization's
/// API secret key, of the raw body followed by the `X-Opus-Salt` header's
/// text; `X-Opus-Timestamp` is sent but not signed, and is still held to the
/// tolerance (it stops a naive replay, not a careful one: idempotent apply
/// is what makes a replay harmless).
pub(super) fn verify(source: &Signing<'_>, headers: &HeaderMap, body: &[u8], now_unix: i64) -> Result<(), VerifyError> {
    let signature = match header(headers, &["x-opus-signature"]) {
        Some(Ok(raw)) => raw,
        Some(Err(())) => return Err(VerifyError::MalformedSignature),
        None => return Err(VerifyError::MissingSignature),
    };
    let salt = match header(headers, &["x-opus-salt"]) {
        Some(Ok(salt)) if !salt.is_empty() && salt.len() <= 128 => salt,
        Some(_) | None => return Err(VerifyError::MalformedSignature),
    };
    let timestamp = match header(headers, &["x-opus-timestamp"]) {
        Some(Ok(raw)) => parse_timestamp(raw)?,
        Some(Err(())) => return Err(VerifyError::MalformedTimestamp),
        None => return Err(VerifyError::MissingTimestamp),
    };
    check_tolerance(timestamp, now_unix, source.tolerance_secs)?;
    let candidate = decode_hex_tag(signature).ok_or(VerifyError::MalformedSignature)?;
    if any_key_matches(source.keys, &[body, salt.as_bytes()], &[candidate]) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// `x-opus-signature` value: hex HMAC-SHA256 over the body and the salt.
pub fn sign(key: &SigningKey, salt: &str, body: &[u8]) -> String {
    hex::encode(mac(key, &[body, salt.as_bytes()]))
}
