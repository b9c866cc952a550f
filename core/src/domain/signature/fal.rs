//! fal.ai (docs.fal.ai/model-apis/model-endpoints/webhooks, "Verifying
//! webhooks"): an Ed25519 signature, hex in `X-Fal-Webhook-Signature`, over
//! `{request id}\n{user id}\n{timestamp}\n{hex sha256 of the body}`, the
//! first three from the `X-Fal-Webhook-*` headers; ±300 s. The public keys
//! are fal's (its JWKS), listed in the source: never one a request carries.

use http::HeaderMap;

use super::{check_tolerance, header, parse_timestamp, Signing, VerifyError};
use crate::domain::digest::sha256_hex;

const ED25519_SIGNATURE_LEN: usize = 64;

pub(super) fn verify(
    source: &Signing<'_>,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<i64, VerifyError> {
    let part = |name: &str, missing: VerifyError| match header(headers, &[name]) {
        Some(Ok(value)) if !value.is_empty() => Ok(value),
        Some(Ok(_)) | None => Err(missing),
        Some(Err(())) => Err(VerifyError::MalformedSignature),
    };
    let request_id = part("x-fal-webhook-request-id", VerifyError::MissingWebhookId)?;
    let user_id = part("x-fal-webhook-user-id", VerifyError::MissingWebhookId)?;
    let timestamp_text = part("x-fal-webhook-timestamp", VerifyError::MissingTimestamp)?;
    let signature_hex = part("x-fal-webhook-signature", VerifyError::MissingSignature)?;
    let timestamp = parse_timestamp(timestamp_text)?;
    check_tolerance(timestamp, now_unix, source.tolerance_secs)?;
    let signature = hex::decode(signature_hex)
        .ok()
        .filter(|s| s.len() == ED25519_SIGNATURE_LEN)
        .ok_or(VerifyError::MalformedSignature)?;
    // The timestamp as sent: it is what was signed.
    let message = format!("{request_id}\n{user_id}\n{timestamp_text}\n{}", sha256_hex(body));
    let verified = source.public_keys.iter().any(|key| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.bytes())
            .verify(message.as_bytes(), &signature)
            .is_ok()
    });
    if verified {
        Ok(timestamp)
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// fal's four headers for `body`, signed with the Ed25519 key of `seed`, as
/// fal signs: for the simulator and tests, which play fal with a key of
/// their own (a source lists its public key).
pub fn sign(seed: &[u8; 32], request_id: &str, user_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).expect("any 32 bytes are a seed");
    let message = format!("{request_id}\n{user_id}\n{timestamp}\n{}", sha256_hex(body));
    vec![
        ("x-fal-webhook-request-id".into(), request_id.into()),
        ("x-fal-webhook-user-id".into(), user_id.into()),
        ("x-fal-webhook-timestamp".into(), timestamp.to_string()),
        (
            "x-fal-webhook-signature".into(),
            hex::encode(pair.sign(message.as_bytes())),
        ),
    ]
}

/// The public key of `seed`, as a JWK's `x` (base64url, unpadded).
pub fn public_x(seed: &[u8; 32]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).expect("any 32 bytes are a seed");
    URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
}
