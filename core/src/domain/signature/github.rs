//! GitHub's scheme: `x-hub-signature-256: sha256=<hex>`, the HMAC-SHA256 of
//! the body alone; the header name may be overridden per source.

use http::HeaderMap;

use super::{any_key_matches, decode_hex_tag, header, mac, Signing, SigningKey, VerifyError};

/// The header a source reads when it names none.
pub const DEFAULT_HEADER: &str = "x-hub-signature-256";

pub(super) fn verify(source: &Signing<'_>, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    let name = source.header.unwrap_or(DEFAULT_HEADER);
    let raw = match header(headers, &[name]) {
        Some(Ok(raw)) => raw,
        Some(Err(())) => return Err(VerifyError::MalformedSignature),
        None => return Err(VerifyError::MissingSignature),
    };
    let candidate = raw
        .strip_prefix("sha256=")
        .and_then(decode_hex_tag)
        .ok_or(VerifyError::MalformedSignature)?;
    if any_key_matches(source.keys, &[body], &[candidate]) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// `x-hub-signature-256` value: `sha256=<hex>`.
pub fn sign(key: &SigningKey, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(key, &[body])))
}
