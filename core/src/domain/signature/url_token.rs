//! A provider that signs nothing (RunPod, Luma, Deepgram): the source's
//! webhook URL carries a secret, `?token=…`, compared in constant time with
//! each active token. It proves only that the sender knows the URL, not what
//! the body says: the processor treats such a delivery as a trigger and
//! applies what the provider's API answers instead.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Signing, VerifyError};

/// The least length of a URL token: 32 characters of a 64-letter alphabet
/// are 192 bits.
pub const MIN_TOKEN_LEN: usize = 32;

/// Whether `token` may be a URL token: long enough, and only characters a
/// query carries unescaped (RFC 3986's unreserved set).
pub fn is_valid(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub(super) fn verify(source: &Signing<'_>, url_token: Option<&str>) -> Result<(), VerifyError> {
    let token = url_token
        .filter(|t| !t.is_empty())
        .ok_or(VerifyError::MissingUrlToken)?;
    // Digests of equal length, so the comparison reveals no token's length.
    let offered = Sha256::digest(token.as_bytes());
    let matched = source.keys.iter().fold(false, |any, key| {
        any | bool::from(Sha256::digest(key.bytes()).ct_eq(&offered))
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::UrlTokenMismatch)
    }
}
