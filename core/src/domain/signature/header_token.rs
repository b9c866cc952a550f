//! A shared secret sent as a header's whole value (AssemblyAI and similar).

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{header, Signing, VerifyError};

/// A shared secret in the source's `header`, compared in constant time with
/// every active secret. Both sides are hashed first, so the comparison runs
/// over equal lengths and reveals nothing of the secret's length.
pub(super) fn verify(source: &Signing<'_>, headers: &HeaderMap) -> Result<(), VerifyError> {
    let name = source.header.unwrap_or_default();
    let token = match header(headers, &[name]) {
        Some(Ok(token)) if !token.is_empty() => token,
        Some(_) => return Err(VerifyError::MalformedSignature),
        None => return Err(VerifyError::MissingSignature),
    };
    let presented = Sha256::digest(token.as_bytes());
    let matches = source
        .keys
        .iter()
        .any(|key| bool::from(Sha256::digest(key.bytes()).ct_eq(&presented)));
    if matches {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}
