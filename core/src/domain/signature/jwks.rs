//! A JSON Web Key Set (RFC 7517) read for the Ed25519 keys a scheme trusts:
//! its `OKP` keys on curve `Ed25519` (RFC 8037). Keys of any other type, or
//! marked for anything but signatures, are skipped; a malformed Ed25519 key
//! fails the whole set, since a publisher that sends one is not to be guessed at.

use serde_json::Value;

use super::VerifyingKey;

/// The largest key set read: fal's is a few hundred bytes.
pub const MAX_KEY_SET_BYTES: usize = 64 * 1024;

/// Why a key set cannot be used. Messages never quote the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable key set: {0}")]
pub struct KeySetError(pub &'static str);

/// The Ed25519 verifying keys of a JWKS document, in its order.
pub fn ed25519_keys(document: &[u8]) -> Result<Vec<VerifyingKey>, KeySetError> {
    if document.len() > MAX_KEY_SET_BYTES {
        return Err(KeySetError("larger than 64 KiB"));
    }
    let doc: Value = serde_json::from_slice(document).map_err(|_| KeySetError("not JSON"))?;
    let Some(Value::Array(keys)) = doc.get("keys") else {
        return Err(KeySetError("no \"keys\" array"));
    };
    let mut found = Vec::new();
    for key in keys {
        let field = |name: &str| key.get(name).and_then(Value::as_str);
        let is_ed25519 = field("kty") == Some("OKP") && field("crv") == Some("Ed25519");
        if !is_ed25519 || field("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let x = field("x").ok_or(KeySetError("an Ed25519 key without \"x\""))?;
        found.push(VerifyingKey::from_jwk_x(x).map_err(KeySetError)?);
    }
    if found.is_empty() {
        return Err(KeySetError("no Ed25519 signing key"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 §A.2's public key, as a JWK.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn the_ed25519_keys_are_read_and_every_other_key_is_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "n": "x", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "a", "use": "sig", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "x": format!("{RFC8037_X}=")},
        ]});
        let keys = ed25519_keys(doc.to_string().as_bytes()).expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            hex::encode(keys[0].bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "RFC 8037 A.2"
        );
    }

    #[test]
    fn a_set_with_no_usable_key_or_a_malformed_one_is_refused_without_quoting_it() {
        for (doc, why) in [
            ("not json".to_owned(), "not JSON"),
            (r#"{"keys": {}}"#.to_owned(), "no \"keys\" array"),
            (r#"{"keys": []}"#.to_owned(), "no Ed25519 signing key"),
            (
                r#"{"keys": [{"kty":"OKP","crv":"Ed25519"}]}"#.to_owned(),
                "an Ed25519 key without \"x\"",
            ),
            (
                r#"{"keys": [{"kty":"OKP","crv":"Ed25519","x":"c2hvcnQ"}]}"#.to_owned(),
                "an Ed25519 public key must decode to 32 bytes",
            ),
            (
                format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(MAX_KEY_SET_BYTES)),
                "larger than 64 KiB",
            ),
        ] {
            assert_eq!(ed25519_keys(doc.as_bytes()), Err(KeySetError(why)), "{why}");
        }
    }
}
