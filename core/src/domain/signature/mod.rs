//! Webhook signature verification over the raw request bytes, one module per
//! scheme.
//!
//! Every comparison is constant time and checks lengths first: a MAC is only
//! compared with a candidate of exactly the same length, so an empty or
//! truncated signature (a bare `v1,` or `sha256=`) can never match.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::digest::sha256_hex;

pub mod fal;
pub mod github;
pub mod header_token;
pub mod jwks;
pub mod opusclip;
pub mod standard_webhooks;
pub mod stripe;
pub mod url_token;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag in bytes.
const MAC_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    StandardWebhooks,
    Stripe,
    Github,
    /// OpusClip: `X-Opus-Signature` = hex HMAC-SHA256(key, body ‖ salt).
    Opusclip,
    /// A shared secret in a named header (AssemblyAI and similar): no body
    /// integrity and no replay window, see the README.
    HeaderToken,
    /// ElevenLabs: `ElevenLabs-Signature: t=…,v0=<hex>` over `{t}.{body}`.
    Elevenlabs,
    /// Cloudflare Stream: `Webhook-Signature: time=…,sig1=<hex>` over `{time}.{body}`.
    CloudflareStream,
    /// fal.ai: Ed25519 over the request id, user id, timestamp and body hash,
    /// against the source's `public_keys`.
    Fal,
    /// A provider that signs nothing: a token in the webhook URL's query,
    /// and the delivery is only a trigger to read the job from the API.
    Unsigned,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Stripe => "stripe",
            Self::Github => "github",
            Self::Opusclip => "opusclip",
            Self::HeaderToken => "header-token",
            Self::Elevenlabs => "elevenlabs",
            Self::CloudflareStream => "cloudflare-stream",
            Self::Fal => "fal",
            Self::Unsigned => "unsigned",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "standard-webhooks" => Ok(Self::StandardWebhooks),
            "stripe" => Ok(Self::Stripe),
            "github" => Ok(Self::Github),
            "opusclip" => Ok(Self::Opusclip),
            "header-token" => Ok(Self::HeaderToken),
            "elevenlabs" => Ok(Self::Elevenlabs),
            "cloudflare-stream" => Ok(Self::CloudflareStream),
            "fal" => Ok(Self::Fal),
            "unsigned" => Ok(Self::Unsigned),
            _ => Err(()),
        }
    }
}

/// HMAC key bytes. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A secret used as its string's bytes (Stripe-shaped, GitHub, OpusClip's
    /// API secret key, a header token).
    pub fn from_text(secret: &str) -> Self {
        Self(secret.as_bytes().to_vec())
    }

    /// A Standard Webhooks secret: `whsec_` + base64 of 24 to 64 bytes.
    pub fn from_whsec(secret: &str) -> Result<Self, &'static str> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| "must be base64 (optionally prefixed with whsec_)")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("must decode to 24 to 64 bytes");
        }
        Ok(Self(bytes))
    }
}

/// A Standard Webhooks public key (`whpk_` + base64 of the raw 32-byte
/// Ed25519 key) that `v1a` signatures are checked against. Only keys the
/// sources document lists are trusted, never one a request carries.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey([u8; 32]);

impl VerifyingKey {
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A JWK's `x`: the raw key, base64url, padded or not (RFC 8037).
    pub fn from_jwk_x(x: &str) -> Result<Self, &'static str> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes = URL_SAFE_NO_PAD
            .decode(x.trim_end_matches('='))
            .map_err(|_| "an Ed25519 public key must be base64url (a JWK's x)")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an Ed25519 public key must decode to 32 bytes")?;
        Ok(Self(bytes))
    }

    pub fn from_whpk(key: &str) -> Result<Self, &'static str> {
        let encoded = key.strip_prefix("whpk_").ok_or("a public key must start with whpk_")?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| "a whpk_ key must be base64 after its prefix")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a whpk_ key must decode to the 32 bytes of an Ed25519 public key")?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey(whpk_{})", BASE64.encode(self.0))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// How one source's deliveries are signed: what [`verify`] and
/// [`sign::headers_for`] need of a source, and nothing of where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub source: &'a str,
    pub scheme: Scheme,
    /// Active keys; any one may match (rotation).
    pub keys: &'a [SigningKey],
    /// Active public keys for asymmetric signatures (Standard Webhooks `v1a`).
    pub public_keys: &'a [VerifyingKey],
    pub tolerance_secs: u64,
    /// Signature header override, lower-cased.
    pub header: Option<&'a str>,
}

/// Why a delivery was rejected. `code()` is the machine-readable reason sent
/// back to the caller; neither it nor `Display` ever carries secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the webhook id header is missing")]
    MissingWebhookId,
    #[error("the timestamp is missing")]
    MissingTimestamp,
    #[error("the timestamp is not a whole number of seconds")]
    MalformedTimestamp,
    #[error("the timestamp is outside the accepted tolerance")]
    TimestampOutOfTolerance,
    #[error("the signature header holds no well-formed signature")]
    MalformedSignature,
    #[error("no signature matches any active secret")]
    SignatureMismatch,
    #[error("the webhook URL carries no token")]
    MissingUrlToken,
    #[error("the webhook URL's token matches no active token")]
    UrlTokenMismatch,
}

impl VerifyError {
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MissingWebhookId => "missing_webhook_id",
            Self::MissingTimestamp => "missing_timestamp",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Self::MalformedSignature => "malformed_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::MissingUrlToken => "missing_url_token",
            Self::UrlTokenMismatch => "url_token_mismatch",
        }
    }
}

/// A delivery whose signature has been checked. Only [`verify`] constructs
/// one, so holding a `VerifiedWebhook` is proof of authenticity.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    source: String,
    scheme: Scheme,
    webhook_id: Option<String>,
    timestamp: Option<i64>,
    /// The delivery's headers but those that carry a credential.
    headers: BTreeMap<String, String>,
    body: Bytes,
}

impl VerifiedWebhook {
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The delivery id the scheme carries (`webhook-id`), if any.
    pub fn webhook_id(&self) -> Option<&str> {
        self.webhook_id.as_deref()
    }
    /// The signed timestamp, for schemes that carry one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The headers worth keeping with the delivery: never the scheme's token
    /// nor any other credential.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.headers
    }
    /// The delivery's identity: the scheme's id when it has one, otherwise
    /// the SHA-256 of the body (identical bytes are the same delivery).
    pub fn event_id(&self) -> String {
        match &self.webhook_id {
            Some(id) => id.clone(),
            None => sha256_hex(&self.body),
        }
    }
}

/// Verifies `body` as sent by a source signing as `signing` says, at time
/// `now_unix` (seconds).
pub fn verify<'a>(
    signing: impl Into<Signing<'a>>,
    headers: &HeaderMap,
    body: Bytes,
    now_unix: i64,
) -> Result<VerifiedWebhook, VerifyError> {
    verify_with_url_token(signing, headers, None, body, now_unix)
}

/// [`verify`], for a delivery whose URL carried `url_token` (the `token`
/// query parameter), which only the `unsigned` scheme reads.
pub fn verify_with_url_token<'a>(
    signing: impl Into<Signing<'a>>,
    headers: &HeaderMap,
    url_token: Option<&str>,
    body: Bytes,
    now_unix: i64,
) -> Result<VerifiedWebhook, VerifyError> {
    let signing = signing.into();
    let (webhook_id, timestamp) = match signing.scheme {
        Scheme::StandardWebhooks => {
            let (id, ts) = standard_webhooks::verify(&signing, headers, &body, now_unix)?;
            (Some(id), Some(ts))
        }
        Scheme::Stripe => (
            None,
            Some(stripe::verify(stripe::STRIPE, &signing, headers, &body, now_unix)?),
        ),
        Scheme::Elevenlabs => (
            None,
            Some(stripe::verify(stripe::ELEVENLABS, &signing, headers, &body, now_unix)?),
        ),
        Scheme::CloudflareStream => (
            None,
            Some(stripe::verify(
                stripe::CLOUDFLARE_STREAM,
                &signing,
                headers,
                &body,
                now_unix,
            )?),
        ),
        // fal's request id names the job, not the delivery: a delivery is
        // known by its body's hash, as for the schemes without an id.
        Scheme::Fal => (None, Some(fal::verify(&signing, headers, &body, now_unix)?)),
        Scheme::Github => {
            github::verify(&signing, headers, &body)?;
            (None, None)
        }
        // OpusClip's timestamp is checked but not signed: it is no proof of
        // when the delivery was made, so it is not carried as one.
        Scheme::Opusclip => {
            opusclip::verify(&signing, headers, &body, now_unix)?;
            (None, None)
        }
        Scheme::HeaderToken => {
            header_token::verify(&signing, headers)?;
            (None, None)
        }
        Scheme::Unsigned => {
            url_token::verify(&signing, url_token)?;
            (None, None)
        }
    };
    let secret_header = (signing.scheme == Scheme::HeaderToken)
        .then_some(signing.header)
        .flatten();
    Ok(VerifiedWebhook {
        source: signing.source.to_owned(),
        scheme: signing.scheme,
        webhook_id,
        timestamp,
        headers: archivable_headers(headers, secret_header),
        body,
    })
}

/// Headers that carry a credential, whatever the scheme: never kept with a
/// delivery (the archive keeps the rest).
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "x-api-key"];

/// Headers the stack's own front door adds or derives, which say nothing of
/// what the provider sent (its address, `x-forwarded-for`, is kept).
const TRANSPORT_HEADERS: &[&str] = &["host", "content-length", "x-forwarded-port", "x-forwarded-proto", "via"];

/// The headers of a delivery worth keeping: every header but those that
/// carry a credential (`secret_header` is the scheme's own, such as
/// `header-token`'s), the front door's own (`x-amzn-*` and the like) and
/// those that are not visible text. Lower-case names.
pub fn archivable_headers(headers: &http::HeaderMap, secret_header: Option<&str>) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !CREDENTIAL_HEADERS.contains(&name)
                && !TRANSPORT_HEADERS.contains(&name)
                && !name.starts_with("x-amzn-")
                && secret_header.is_none_or(|secret| !secret.eq_ignore_ascii_case(name))
        })
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect()
}

/// The first of `names` present in `headers`, as visible ASCII.
pub(super) fn header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<Result<&'a str, ()>> {
    names
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|value| value.to_str().map(str::trim).map_err(|_| ()))
}

pub(super) fn parse_timestamp(raw: &str) -> Result<i64, VerifyError> {
    // Digits only: `i64::from_str` would also take signs, and a bound on the
    // length keeps the value far from overflow (the empty string fails to parse).
    if raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    raw.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

pub(super) fn check_tolerance(timestamp: i64, now_unix: i64, tolerance_secs: u64) -> Result<(), VerifyError> {
    if timestamp.abs_diff(now_unix) > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok(())
}

pub(super) fn mac(key: &SigningKey, parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut mac = HmacSha256::new_from_slice(key.bytes()).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of a computed MAC and a candidate; the length check
/// comes first and only reveals the (public) tag length.
pub(super) fn mac_matches(expected: &[u8; MAC_LEN], candidate: &[u8]) -> bool {
    candidate.len() == MAC_LEN && bool::from(expected.as_slice().ct_eq(candidate))
}

/// True when any active key's MAC over `parts` equals any candidate.
pub(super) fn any_key_matches(keys: &[SigningKey], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    keys.iter().any(|key| {
        let expected = mac(key, parts);
        candidates.iter().any(|c| mac_matches(&expected, c))
    })
}

/// Decodes a hex tag, rejecting odd lengths, non-hex digits and short tags.
pub(super) fn decode_hex_tag(hex_text: &str) -> Option<Vec<u8>> {
    hex::decode(hex_text).ok().filter(|d| d.len() == MAC_LEN)
}

/// Signs deliveries the way each scheme's senders do. Used by the provider
/// simulator, the CLI's `sign` command and the tests; never by the receiver.
pub mod sign {
    use sha2::{Digest, Sha256};

    use super::{Scheme, Signing};

    pub use super::fal::sign as fal;
    pub use super::github::sign as github;
    pub use super::opusclip::sign as opusclip;
    pub use super::standard_webhooks::sign as standard_webhooks;
    pub use super::stripe::sign as stripe;

    /// The headers that make `body` a correctly signed delivery from `source`
    /// at `timestamp`, signed with its first active secret. `id` is used by
    /// schemes that carry one. A source with only public keys (`whpk_`, fal)
    /// cannot sign: the headers are empty (`jobhook sign` says why first).
    pub fn headers_for<'a>(
        source: impl Into<Signing<'a>>,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let source = source.into();
        let Some(key) = source.keys.first() else {
            // Only public keys: nothing here can sign for the source.
            return Vec::new();
        };
        match source.scheme {
            Scheme::StandardWebhooks => vec![
                ("webhook-id".into(), id.into()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), standard_webhooks(key, id, timestamp, body)),
            ],
            Scheme::Stripe => vec![(
                source.header.unwrap_or(super::stripe::DEFAULT_HEADER).into(),
                stripe(key, timestamp, body),
            )],
            Scheme::Elevenlabs => vec![(
                super::stripe::ELEVENLABS.header.into(),
                super::stripe::sign_shaped(super::stripe::ELEVENLABS, key, timestamp, body),
            )],
            Scheme::CloudflareStream => vec![(
                super::stripe::CLOUDFLARE_STREAM.header.into(),
                super::stripe::sign_shaped(super::stripe::CLOUDFLARE_STREAM, key, timestamp, body),
            )],
            Scheme::Github => vec![(
                source.header.unwrap_or(super::github::DEFAULT_HEADER).into(),
                github(key, body),
            )],
            Scheme::Opusclip => {
                // 8 bytes as hex, as OpusClip sends; derived from the id so
                // that a test's headers are repeatable.
                let salt = hex::encode(&Sha256::digest(id.as_bytes())[..8]);
                vec![
                    ("x-opus-signature".into(), opusclip(key, &salt, body)),
                    ("x-opus-salt".into(), salt),
                    ("x-opus-timestamp".into(), timestamp.to_string()),
                ]
            }
            // Signed with fal's private key, which no source holds; an
            // unsigned delivery's token goes in its URL, not a header.
            Scheme::Fal | Scheme::Unsigned => Vec::new(),
            Scheme::HeaderToken => vec![(
                source.header.unwrap_or_default().into(),
                String::from_utf8_lossy(key.bytes()).into_owned(),
            )],
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod kept_headers_tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_archive_and_every_other_header_does() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer sk-live"),
            ("x-api-key", "k"),
            ("cookie", "c"),
            ("x-assemblyai-token", "tok"),
            ("webhook-signature", "v1,abc"),
            ("content-type", "application/json"),
            ("host", "abc.execute-api.us-east-1.amazonaws.com"),
            ("x-amzn-trace-id", "Root=1-abc"),
            ("x-forwarded-for", "203.0.113.9"),
        ] {
            headers.insert(http::HeaderName::from_static(name), value.parse().unwrap());
        }
        let kept = archivable_headers(&headers, Some("X-AssemblyAI-Token"));
        assert_eq!(
            kept.keys().map(String::as_str).collect::<Vec<_>>(),
            ["content-type", "webhook-signature", "x-forwarded-for"]
        );
    }
}
