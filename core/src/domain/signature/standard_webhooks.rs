//! Standard Webhooks (standardwebhooks.com; Svix sends the same with `svix-`
//! header names): `webhook-signature` holds space-separated `v1,<base64>`
//! HMAC-SHA256 tags and `v1a,<base64>` Ed25519 signatures, both over
//! `{id}.{timestamp}.{body}`; during a rotation one header may hold both.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::HeaderMap;

use super::{
    any_key_matches, check_tolerance, header, mac, parse_timestamp, Signing, SigningKey, VerifyError, MAC_LEN,
};

pub(super) fn verify(
    source: &Signing<'_>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(String, i64), VerifyError> {
    let id = match header(headers, &["webhook-id", "svix-id"]) {
        Some(Ok(id)) if !id.is_empty() => id,
        Some(_) | None => return Err(VerifyError::MissingWebhookId),
    };
    let timestamp = match header(headers, &["webhook-timestamp", "svix-timestamp"]) {
        Some(Ok(raw)) => parse_timestamp(raw)?,
        Some(Err(())) => return Err(VerifyError::MalformedTimestamp),
        None => return Err(VerifyError::MissingTimestamp),
    };
    let signatures = match header(headers, &["webhook-signature", "svix-signature"]) {
        Some(Ok(raw)) => raw,
        Some(Err(())) => return Err(VerifyError::MalformedSignature),
        None => return Err(VerifyError::MissingSignature),
    };
    check_tolerance(timestamp, now_unix, source.tolerance_secs)?;

    // Space-separated `<version>,<base64>` entries; other versions are
    // skipped, and an entry that does not decode to a full tag or signature
    // is never a candidate.
    let decoded = |version: &str, len: usize| -> Vec<Vec<u8>> {
        signatures
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix(version))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .filter(|decoded| decoded.len() == len)
            .collect()
    };
    let (tags, signed) = (decoded("v1,", MAC_LEN), decoded("v1a,", ED25519_SIGNATURE_LEN));
    if tags.is_empty() && signed.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    let timestamp_text = timestamp.to_string();
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body];
    let hmac_matches = !tags.is_empty() && any_key_matches(source.keys, &parts, &tags);
    let ed25519_matches = !signed.is_empty() && {
        let message = parts.concat();
        source.public_keys.iter().any(|key| {
            let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.bytes());
            signed.iter().any(|signature| key.verify(&message, signature).is_ok())
        })
    };
    if hmac_matches || ed25519_matches {
        Ok((id.to_owned(), timestamp))
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

const ED25519_SIGNATURE_LEN: usize = 64;

/// `webhook-signature` value for a standard-webhooks delivery.
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let tag = mac(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(tag))
}
