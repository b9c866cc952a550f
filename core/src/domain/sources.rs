//! The sources document: one entry per provider account that sends webhooks.
//!
//! The document is validated by hand rather than with `#[derive(Deserialize)]`
//! so that every error names the source and the field, and so that no error
//! message can ever quote a value (serde's messages may echo the input).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{json, Map, Value};

use super::outputs::{KeepOutputs, DEFAULT_MAX_OUTPUT_BYTES};
use super::provider;
use super::signature::{url_token, Signing};
pub use super::signature::{Scheme, SigningKey, VerifyingKey};

/// Default accepted clock skew for schemes that sign a timestamp.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Deliveries per second an unsigned source takes, per receiver container,
/// unless it says otherwise.
pub const DEFAULT_UNSIGNED_RATE_LIMIT: u32 = 50;
/// ElevenLabs' documented window (its SDKs' `construct_event`: 30 minutes).
pub const ELEVENLABS_TOLERANCE_SECS: u64 = 1_800;

/// A secret string (an API token). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The provider's polling API for a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// An http(s) base with a host and no credentials, query or fragment;
    /// the provider's public API when not given. Requests add path segments.
    pub base_url: url::Url,
    pub token: SecretString,
    /// Polls of this source per reconciler run, at most; the profile's
    /// default for a rate-limited API when not given.
    pub max_polls_per_run: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub name: String,
    pub scheme: Scheme,
    /// Active keys, in the document's order; any one may match (rotation).
    pub keys: Vec<SigningKey>,
    /// Active public keys (Standard Webhooks `whpk_` entries of `secrets`,
    /// a fal source's `public_keys`).
    pub public_keys: Vec<VerifyingKey>,
    /// A JWKS whose Ed25519 keys are the source's public keys, fetched and
    /// cached by the receiver (a fal source's `jwks_url`).
    pub jwks_url: Option<url::Url>,
    pub tolerance_secs: u64,
    /// Signature header override, lower-cased (stripe and github schemes).
    pub header: Option<String>,
    pub provider: String,
    pub api: Option<ApiConfig>,
    /// Where completed jobs' outputs are copied; None: they are not.
    pub keep_outputs: Option<KeepOutputs>,
    /// Deliveries per second the receiver takes for the source, per
    /// container (an unsigned source's; others are not limited).
    pub rate_limit_per_second: Option<u32>,
}

impl SourceConfig {
    /// How long the provider keeps an output after the job ends, for a
    /// source that keeps outputs: the source's word, else its profile's.
    pub fn output_retention(&self) -> Option<std::time::Duration> {
        let keep = self.keep_outputs.as_ref()?;
        keep.retention
            .or_else(|| provider::profile(&self.provider).and_then(|p| p.output_retention()))
    }
}

impl<'a> From<&'a SourceConfig> for Signing<'a> {
    fn from(source: &'a SourceConfig) -> Self {
        Signing {
            source: &source.name,
            scheme: source.scheme,
            keys: &source.keys,
            public_keys: &source.public_keys,
            tolerance_secs: source.tolerance_secs,
            header: source.header.as_deref(),
        }
    }
}

/// A validated sources document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    by_name: BTreeMap<String, SourceConfig>,
}

/// A problem with the sources document. Messages name the source and field,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourcesError {
    #[error("sources document is not valid JSON ({0})")]
    Syntax(String),
    #[error("sources document: {0}")]
    Document(String),
    #[error("source {source_name:?}: field {field:?}: {problem}")]
    Field {
        source_name: String,
        field: String,
        problem: String,
    },
}

fn field_error(source: &str, field: impl Into<String>, problem: impl Into<String>) -> SourcesError {
    SourcesError::Field {
        source_name: source.to_owned(),
        field: field.into(),
        problem: problem.into(),
    }
}

const SOURCE_FIELDS: &[&str] = &[
    "scheme",
    "secrets",
    "public_keys",
    "jwks_url",
    "tolerance_secs",
    "header",
    "provider",
    "api",
    "keep_outputs",
    "url_token",
    "rate_limit_per_second",
];

impl Sources {
    pub fn parse(text: &str) -> Result<Self, SourcesError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            // Only the position: serde_json's data errors can quote input.
            SourcesError::Syntax(format!("line {} column {}", e.line(), e.column()))
        })?;
        let Value::Object(root) = doc else {
            return Err(SourcesError::Document("the top level must be an object".into()));
        };
        if let Some(key) = root.keys().find(|k| *k != "sources") {
            return Err(SourcesError::Document(format!("unknown top-level field {key:?}")));
        }
        let Some(Value::Object(entries)) = root.get("sources") else {
            return Err(SourcesError::Document(
                "\"sources\" must be an object of sources".into(),
            ));
        };
        let mut by_name = BTreeMap::new();
        for (name, entry) in entries {
            by_name.insert(name.clone(), parse_source(name, entry)?);
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&SourceConfig> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SourceConfig> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Provider API settings live in a document of their own, so that what
/// verifies webhooks (the receiver) never holds what calls the provider (the
/// reconciler's tokens). Its shape mirrors the sources document, with only
/// `api` per source: `{"sources": {"acme": {"api": {"base_url": …, "token": …}}}}`.
/// Merged, the two are the single-document form that files use.
pub fn merge_api_document(sources_text: &str, api_text: &str) -> Result<String, SourcesError> {
    let parse = |text: &str, what: &str| -> Result<Map<String, Value>, SourcesError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| SourcesError::Syntax(format!("{what}: line {} column {}", e.line(), e.column())))?;
        match doc {
            Value::Object(mut root) => match root.remove("sources") {
                Some(Value::Object(sources)) if root.is_empty() => Ok(sources),
                _ => Err(SourcesError::Document(format!(
                    "{what}: the top level must be {{\"sources\": {{…}}}} and nothing else"
                ))),
            },
            _ => Err(SourcesError::Document(format!(
                "{what}: the top level must be an object"
            ))),
        }
    };
    let mut sources = parse(sources_text, "sources document")?;
    let apis = parse(api_text, "api document")?;
    for (name, entry) in apis {
        let Value::Object(mut fields) = entry else {
            return Err(field_error(
                &name,
                "",
                "an api document entry must be an object with `api`",
            ));
        };
        let api = fields.remove("api");
        if let Some(unknown) = fields.keys().next() {
            return Err(field_error(
                &name,
                unknown.as_str(),
                "the api document holds only `api`",
            ));
        }
        let Some(api) = api else {
            return Err(field_error(&name, "api", "is required in the api document"));
        };
        let Some(Value::Object(source)) = sources.get_mut(&name) else {
            return Err(field_error(
                &name,
                "api",
                "the api document names a source the sources document lacks",
            ));
        };
        if source.contains_key("api") {
            return Err(field_error(&name, "api", "is in both the sources and the api document"));
        }
        source.insert("api".into(), api);
    }
    Ok(json!({ "sources": sources }).to_string())
}

/// The single-document form split in two: (sources without `api`, the api
/// document). The local stack seeds the two secrets this way.
pub fn split_api_document(text: &str) -> Result<(String, String), SourcesError> {
    let mut doc: Value = serde_json::from_str(text)
        .map_err(|e| SourcesError::Syntax(format!("line {} column {}", e.line(), e.column())))?;
    let mut apis = Map::new();
    if let Some(Value::Object(sources)) = doc.get_mut("sources") {
        for (name, entry) in sources.iter_mut() {
            if let Some(api) = entry.as_object_mut().and_then(|fields| fields.remove("api")) {
                apis.insert(name.clone(), json!({ "api": api }));
            }
        }
    }
    Ok((doc.to_string(), json!({ "sources": apis }).to_string()))
}

/// Source names appear in URLs and storage keys, so they are kept simple.
pub fn is_valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_source(name: &str, entry: &Value) -> Result<SourceConfig, SourcesError> {
    if !is_valid_source_name(name) {
        return Err(SourcesError::Document(
            "source names must be 1 to 64 characters of letters, digits, '-' and '_'".into(),
        ));
    }
    let Value::Object(fields) = entry else {
        return Err(field_error(name, "", "a source must be an object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !SOURCE_FIELDS.contains(&k.as_str())) {
        return Err(field_error(name, unknown.as_str(), "unknown field"));
    }

    let scheme_text = required_str(name, fields, "scheme")?;
    let scheme = Scheme::from_str(scheme_text).map_err(|()| {
        field_error(
            name,
            "scheme",
            "must be one of \"standard-webhooks\", \"stripe\", \"github\", \"opusclip\", \"header-token\", \"elevenlabs\", \"cloudflare-stream\", \"fal\", \"unsigned\"",
        )
    })?;

    if scheme != Scheme::Unsigned {
        if let Some(field) = ["url_token", "rate_limit_per_second"]
            .into_iter()
            .find(|f| fields.contains_key(*f))
        {
            return Err(field_error(name, field, "only the unsigned scheme takes it"));
        }
    }
    let (keys, public_keys, jwks_url) = match scheme {
        Scheme::Unsigned => (parse_url_tokens(name, fields)?, Vec::new(), None),
        Scheme::Fal => match parse_fal_keys(name, fields)? {
            PublicKeys::Listed(listed) => (Vec::new(), listed, None),
            PublicKeys::KeySet(url) => (Vec::new(), Vec::new(), Some(url)),
        },
        _ if fields.contains_key("public_keys") || fields.contains_key("jwks_url") => {
            return Err(field_error(
                name,
                if fields.contains_key("public_keys") {
                    "public_keys"
                } else {
                    "jwks_url"
                },
                "only the fal scheme takes public keys this way (Standard Webhooks lists whpk_ keys in secrets)",
            ))
        }
        _ => {
            let (keys, public_keys) = parse_keys(name, scheme, fields.get("secrets"))?;
            (keys, public_keys, None)
        }
    };

    let tolerance_secs = match fields.get("tolerance_secs") {
        // ElevenLabs' own SDKs accept a delivery up to 30 minutes old.
        None if scheme == Scheme::Elevenlabs => ELEVENLABS_TOLERANCE_SECS,
        None => DEFAULT_TOLERANCE_SECS,
        Some(_) if matches!(scheme, Scheme::Github | Scheme::HeaderToken | Scheme::Unsigned) => {
            return Err(field_error(
                name,
                "tolerance_secs",
                format!("the {scheme} scheme carries no timestamp"),
            ))
        }
        Some(value) => value
            .as_u64()
            .filter(|secs| (1..=86_400).contains(secs))
            .ok_or_else(|| {
                field_error(
                    name,
                    "tolerance_secs",
                    "must be a whole number of seconds from 1 to 86400",
                )
            })?,
    };

    let header = match fields.get("header") {
        None if scheme == Scheme::HeaderToken => {
            return Err(field_error(
                name,
                "header",
                "is required: the header that carries the token",
            ))
        }
        None => None,
        Some(_)
            if matches!(
                scheme,
                Scheme::StandardWebhooks
                    | Scheme::Opusclip
                    | Scheme::Elevenlabs
                    | Scheme::CloudflareStream
                    | Scheme::Fal
                    | Scheme::Unsigned
            ) =>
        {
            return Err(field_error(
                name,
                "header",
                format!("the {scheme} scheme uses fixed header names"),
            ))
        }
        Some(Value::String(h)) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => Some(h.to_ascii_lowercase()),
        Some(_) => return Err(field_error(name, "header", "must be a valid HTTP header name")),
    };

    let provider = match fields.get("provider") {
        // What an unsigned delivery triggers is a read from this provider's API.
        None if scheme == Scheme::Unsigned => {
            return Err(field_error(
                name,
                "provider",
                "is required for the unsigned scheme: the provider whose API has the job's state",
            ))
        }
        None => "generic".to_owned(),
        Some(Value::String(p)) if provider::profile(p).is_some() => p.clone(),
        Some(_) => {
            return Err(field_error(
                name,
                "provider",
                format!("must be one of {:?}", provider::names()),
            ))
        }
    };

    let api = match fields.get("api") {
        None => None,
        Some(value) => Some(parse_api(name, &provider, value)?),
    };

    let keep_outputs = match fields.get("keep_outputs") {
        None => None,
        Some(value) => Some(parse_keep_outputs(name, value)?),
    };

    let rate_limit_per_second = match fields.get("rate_limit_per_second") {
        None => (scheme == Scheme::Unsigned).then_some(DEFAULT_UNSIGNED_RATE_LIMIT),
        Some(value) => Some(
            value
                .as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| field_error(name, "rate_limit_per_second", "must be a whole number from 1 to 10000"))?,
        ),
    };

    Ok(SourceConfig {
        name: name.to_owned(),
        scheme,
        keys,
        public_keys,
        jwks_url,
        tolerance_secs,
        header,
        provider,
        api,
        keep_outputs,
        rate_limit_per_second,
    })
}

/// An unsigned source's URL tokens: one string, or a list of them while one
/// is rotated out. Each long and URL-safe (see [`url_token::is_valid`]).
fn parse_url_tokens(source: &str, fields: &Map<String, Value>) -> Result<Vec<SigningKey>, SourcesError> {
    if fields.contains_key("secrets") {
        return Err(field_error(
            source,
            "secrets",
            "the unsigned scheme has no signing secret: its secret is url_token",
        ));
    }
    let tokens: Vec<(String, &Value)> = match fields.get("url_token") {
        None => return Err(field_error(source, "url_token", "is required for the unsigned scheme")),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("url_token[{i}]"), v))
            .collect(),
        Some(value @ Value::String(_)) => vec![("url_token".to_owned(), value)],
        Some(_) => {
            return Err(field_error(
                source,
                "url_token",
                "must be a string or a non-empty array of strings",
            ))
        }
    };
    tokens
        .into_iter()
        .map(|(field, value)| match value.as_str() {
            Some(token) if url_token::is_valid(token) => Ok(SigningKey::from_text(token)),
            _ => Err(field_error(
                source,
                field,
                format!(
                    "must be at least {} characters of letters, digits, '-', '.', '_' and '~' (for example 32 random bytes as hex)",
                    url_token::MIN_TOKEN_LEN
                ),
            )),
        })
        .collect()
}

/// S3's bucket naming rules, the ones a typo breaks: 3 to 63 lower-case
/// letters, digits, `-` and `.`, starting and ending with a letter or digit.
fn is_valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn parse_keep_outputs(source: &str, value: &Value) -> Result<KeepOutputs, SourcesError> {
    let Value::Object(fields) = value else {
        return Err(field_error(
            source,
            "keep_outputs",
            "must be an object with bucket and prefix",
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["bucket", "prefix", "max_bytes", "retention_secs"].contains(&k.as_str()))
    {
        return Err(field_error(source, format!("keep_outputs.{unknown}"), "unknown field"));
    }
    let bucket = match fields.get("bucket") {
        Some(Value::String(b)) if is_valid_bucket_name(b) => b.clone(),
        Some(_) => return Err(field_error(source, "keep_outputs.bucket", "must be an S3 bucket name")),
        None => return Err(field_error(source, "keep_outputs.bucket", "is required")),
    };
    let prefix = match fields.get("prefix") {
        None => String::new(),
        Some(Value::String(p))
            if p.len() <= 512
                && !p.starts_with('/')
                && (p.is_empty() || p.ends_with('/'))
                && !p.split('/').any(|segment| segment == "..")
                && !p.chars().any(char::is_control) =>
        {
            p.clone()
        }
        Some(_) => {
            return Err(field_error(
                source,
                "keep_outputs.prefix",
                "must be empty or end in '/', not start with one, and hold no '..' segment",
            ))
        }
    };
    let max_bytes = match fields.get("max_bytes") {
        None => DEFAULT_MAX_OUTPUT_BYTES,
        Some(value) => value
            .as_u64()
            .filter(|bytes| (1..=DEFAULT_MAX_OUTPUT_BYTES).contains(bytes))
            .ok_or_else(|| {
                field_error(
                    source,
                    "keep_outputs.max_bytes",
                    "must be a whole number from 1 to 5 GiB",
                )
            })?,
    };
    let retention = match fields.get("retention_secs") {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|secs| (60..=90 * 86_400).contains(secs))
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    field_error(
                        source,
                        "keep_outputs.retention_secs",
                        "must be a whole number of seconds from 60 to 90 days",
                    )
                })?,
        ),
    };
    Ok(KeepOutputs {
        bucket,
        prefix,
        max_bytes,
        retention,
    })
}

fn required_str<'a>(source: &str, fields: &'a Map<String, Value>, field: &str) -> Result<&'a str, SourcesError> {
    match fields.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(field_error(source, field, "must be a non-empty string")),
        None => Err(field_error(source, field, "is required")),
    }
}

/// The source's secrets, and for Standard Webhooks its public keys: a
/// `whpk_` entry is an Ed25519 public key for `v1a` signatures, beside any
/// `whsec_` secrets (rotation from one to the other lists both).
fn parse_keys(
    source: &str,
    scheme: Scheme,
    value: Option<&Value>,
) -> Result<(Vec<SigningKey>, Vec<VerifyingKey>), SourcesError> {
    let list = match value {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(_) => return Err(field_error(source, "secrets", "must be a non-empty array of strings")),
        None => return Err(field_error(source, "secrets", "is required")),
    };
    let (mut keys, mut public_keys) = (Vec::new(), Vec::new());
    for (i, item) in list.iter().enumerate() {
        let field = format!("secrets[{i}]");
        let Some(secret) = item.as_str().filter(|s| !s.is_empty()) else {
            return Err(field_error(source, field, "must be a non-empty string"));
        };
        match scheme {
            Scheme::StandardWebhooks if secret.starts_with("whpk_") => public_keys
                .push(VerifyingKey::from_whpk(secret).map_err(|problem| field_error(source, field, problem))?),
            Scheme::StandardWebhooks => {
                keys.push(SigningKey::from_whsec(secret).map_err(|problem| field_error(source, field, problem))?)
            }
            // Stripe-shaped and GitHub secrets, OpusClip's API secret key
            // and a header token are used as the string's bytes.
            // ElevenLabs' and Cloudflare Stream's secrets too, as their docs'
            // code uses them.
            Scheme::Stripe
            | Scheme::Github
            | Scheme::Opusclip
            | Scheme::HeaderToken
            | Scheme::Elevenlabs
            | Scheme::CloudflareStream
            // Never reached: a fal source's keys are its public_keys, an
            // unsigned source's its url_token.
            | Scheme::Fal
            | Scheme::Unsigned => keys.push(SigningKey::from_text(secret)),
        }
    }
    Ok((keys, public_keys))
}

/// Where a source's Ed25519 keys come from: listed in the document, or a
/// JWKS the receiver fetches and caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeys {
    Listed(Vec<VerifyingKey>),
    KeySet(url::Url),
}

/// fal's Ed25519 public keys: `jwks_url`, fal's JWKS, or `public_keys`, its
/// keys' `x` (base64url) for tests and air-gapped use. fal signs with its
/// own private key, so a fal source has no `secrets`.
fn parse_fal_keys(source: &str, fields: &serde_json::Map<String, Value>) -> Result<PublicKeys, SourcesError> {
    if fields.contains_key("secrets") {
        return Err(field_error(
            source,
            "secrets",
            "the fal scheme has no shared secret: give fal's JWKS in jwks_url (or its keys in public_keys)",
        ));
    }
    match (fields.get("jwks_url"), fields.get("public_keys")) {
        (Some(_), Some(_)) => Err(field_error(
            source,
            "public_keys",
            "give either jwks_url or public_keys, not both",
        )),
        (Some(Value::String(text)), None) => key_set_url(text)
            .map(PublicKeys::KeySet)
            .map_err(|problem| field_error(source, "jwks_url", problem)),
        (Some(_), None) => Err(field_error(source, "jwks_url", "must be an https URL")),
        (None, Some(Value::Array(list))) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("public_keys[{i}]");
                let key = item
                    .as_str()
                    .ok_or_else(|| field_error(source, field.clone(), "must be a string"))?;
                VerifyingKey::from_jwk_x(key).map_err(|problem| field_error(source, field, problem))
            })
            .collect::<Result<_, _>>()
            .map(PublicKeys::Listed),
        (None, Some(_)) => Err(field_error(
            source,
            "public_keys",
            "must be a non-empty array of strings",
        )),
        (None, None) => Err(field_error(
            source,
            "jwks_url",
            "is required for the fal scheme (or list the keys in public_keys)",
        )),
    }
}

/// A key set's URL: https, or http to a loopback host for local tests. The
/// problem never quotes the URL.
fn key_set_url(text: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(text).map_err(|_| "must be an https URL")?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host_str().is_some_and(|h| !h.is_empty()) => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL (http only to a loopback host)"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    Ok(url)
}

/// A base URL a request can be built on. The problem never quotes the URL,
/// which may carry a secret.
fn base_url(text: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(text.trim_end_matches('/')).map_err(|_| "must be an http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("must be an http(s) URL with a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (the token goes in api.token)");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    Ok(url)
}

fn parse_api(source: &str, provider: &str, value: &Value) -> Result<ApiConfig, SourcesError> {
    let Value::Object(fields) = value else {
        return Err(field_error(source, "api", "must be an object with base_url and token"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "base_url" | "token" | "max_polls_per_run"))
    {
        return Err(field_error(source, format!("api.{unknown}"), "unknown field"));
    }
    let defaults = provider::profile(provider).map(|p| p.api_defaults());
    let base_url = match fields.get("base_url") {
        Some(Value::String(text)) => base_url(text).map_err(|problem| field_error(source, "api.base_url", problem))?,
        Some(_) => return Err(field_error(source, "api.base_url", "must be an http(s) URL")),
        None => match defaults.as_ref().and_then(|d| d.base_url) {
            Some(url) => base_url(url).expect("each profile's default base URL is valid"),
            None => {
                return Err(field_error(
                    source,
                    "api.base_url",
                    format!("is required (the {provider} profile has no default)"),
                ))
            }
        },
    };
    let max_polls_per_run = match fields.get("max_polls_per_run") {
        None => defaults.and_then(|d| d.max_polls_per_run),
        Some(v) => match v.as_u64().filter(|n| (1..=10_000).contains(n)) {
            Some(n) => Some(n as usize),
            None => {
                return Err(field_error(
                    source,
                    "api.max_polls_per_run",
                    "must be a whole number from 1 to 10000",
                ))
            }
        },
    };
    let token = match fields.get("token") {
        Some(Value::String(token)) if !token.is_empty() => SecretString(token.clone()),
        Some(_) => return Err(field_error(source, "api.token", "must be a non-empty string")),
        None => return Err(field_error(source, "api.token", "is required")),
    };
    Ok(ApiConfig {
        base_url,
        token,
        max_polls_per_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;

    #[test]
    fn a_source_keeps_outputs_where_it_says_for_as_long_as_its_provider_keeps_them() {
        let with = |keep: Value, provider: &str| {
            Sources::parse(
                &json!({"sources": {"acme": {"scheme": "github", "secrets": ["s"], "provider": provider, "keep_outputs": keep}}})
                    .to_string(),
            )
            .map(|s| s.get("acme").expect("acme").clone())
        };
        let kept = with(
            json!({"bucket": "my-outputs", "prefix": "jobhook/", "max_bytes": 1024}),
            "replicate",
        )
        .expect("valid");
        let keep = kept.keep_outputs.as_ref().expect("kept");
        assert_eq!(
            (keep.bucket.as_str(), keep.prefix.as_str(), keep.max_bytes),
            ("my-outputs", "jobhook/", 1024)
        );
        assert_eq!(
            kept.output_retention(),
            Some(std::time::Duration::from_secs(3600)),
            "Replicate's hour"
        );
        let generic = with(json!({"bucket": "my-outputs"}), "generic").expect("valid");
        assert_eq!(
            generic.keep_outputs.as_ref().map(|k| k.max_bytes),
            Some(DEFAULT_MAX_OUTPUT_BYTES)
        );
        assert_eq!(generic.output_retention(), None, "no profile retention, none stated");
        let stated = with(json!({"bucket": "my-outputs", "retention_secs": 120}), "replicate").expect("valid");
        assert_eq!(
            stated.output_retention(),
            Some(std::time::Duration::from_secs(120)),
            "the source's word first"
        );
        let plain = Sources::parse(
            &json!({"sources": {"acme": {"scheme": "github", "secrets": ["s"], "provider": "replicate"}}}).to_string(),
        )
        .expect("valid");
        assert_eq!(
            plain.get("acme").expect("acme").output_retention(),
            None,
            "nothing kept, nothing scheduled for it"
        );
        for (keep, field) in [
            (json!("my-outputs"), "keep_outputs"),
            (json!({}), "keep_outputs.bucket"),
            (json!({"bucket": "My_Bucket"}), "keep_outputs.bucket"),
            (json!({"bucket": "ok-bucket", "prefix": "/abs/"}), "keep_outputs.prefix"),
            (
                json!({"bucket": "ok-bucket", "prefix": "no-slash"}),
                "keep_outputs.prefix",
            ),
            (json!({"bucket": "ok-bucket", "prefix": "a/../"}), "keep_outputs.prefix"),
            (json!({"bucket": "ok-bucket", "max_bytes": 0}), "keep_outputs.max_bytes"),
            (
                json!({"bucket": "ok-bucket", "retention_secs": 5}),
                "keep_outputs.retention_secs",
            ),
            (json!({"bucket": "ok-bucket", "region": "x"}), "keep_outputs.region"),
        ] {
            let error = with(keep.clone(), "generic").expect_err("refused").to_string();
            assert!(error.contains(&format!("{field:?}")), "{keep}: {error}");
        }
    }

    #[test]
    fn the_api_document_splits_off_and_merges_back_to_the_same_sources() {
        let single = json!({"sources": {
            "acme": {"scheme": "github", "secrets": ["sig"], "api": {"base_url": "https://api.example.com", "token": "tok-SECRET"}},
            "quiet": {"scheme": "github", "secrets": ["sig2"]}}})
        .to_string();
        let (signing, api) = split_api_document(&single).expect("split");
        assert!(!signing.contains("tok-SECRET"), "the signing document holds no token");
        assert!(!api.contains("sig"), "the api document holds no signing secret");
        let merged = merge_api_document(&signing, &api).expect("merge");
        assert_eq!(
            Sources::parse(&merged).expect("parses"),
            Sources::parse(&single).expect("parses")
        );
    }

    #[test]
    fn a_bad_api_document_is_refused_without_quoting_a_token() {
        let signing = json!({"sources": {"acme": {"scheme": "github", "secrets": ["sig"]}}}).to_string();
        let api = |v: Value| json!({ "sources": v }).to_string();
        let cases = [
            (
                api(json!({"ghost": {"api": {"base_url": "https://x", "token": "tok-SECRET"}}})),
                "lacks",
            ),
            (
                api(
                    json!({"acme": {"api": {"base_url": "https://x", "token": "tok-SECRET"}, "secrets": ["tok-SECRET"]}}),
                ),
                "only `api`",
            ),
            (api(json!({"acme": "tok-SECRET"})), "must be an object"),
            ("{\"tok-SECRET\": 1}".to_owned(), "top level"),
            ("not json tok-SECRET".to_owned(), "line 1"),
        ];
        for (text, expected) in cases {
            let error = merge_api_document(&signing, &text).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("tok-SECRET"), "{error}");
        }
        let both = json!({"sources": {"acme": {"scheme": "github", "secrets": ["sig"], "api": {"base_url": "https://x", "token": "t"}}}});
        let error = merge_api_document(
            &both.to_string(),
            &api(json!({"acme": {"api": {"base_url": "https://y", "token": "u"}}})),
        )
        .expect_err("ambiguous");
        assert!(error.to_string().contains("both"), "{error}");
    }

    const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn err(doc: Value) -> String {
        Sources::parse(&doc.to_string())
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn parses_the_documented_example() {
        let doc = json!({"sources": {
            "acme": {"scheme": "standard-webhooks", "secrets": [SW_SECRET, SW_SECRET], "tolerance_secs": 300,
                     "provider": "generic", "api": {"base_url": "https://api.example.com/v1/", "token": "tok"}},
            "mux": {"scheme": "stripe", "header": "Mux-Signature", "secrets": ["s1"]},
            "gh": {"scheme": "github", "secrets": ["s2"]}
        }});
        let sources = Sources::parse(&doc.to_string()).expect("valid");
        assert_eq!(sources.len(), 3);
        let acme = sources.get("acme").expect("acme");
        assert_eq!(acme.scheme, Scheme::StandardWebhooks);
        assert_eq!(acme.keys.len(), 2);
        assert_eq!(acme.keys[0].bytes().len(), 24);
        let api = acme.api.as_ref().expect("api");
        assert_eq!(api.base_url.as_str(), "https://api.example.com/v1");
        assert_eq!(api.token.expose(), "tok");
        let mux = sources.get("mux").expect("mux");
        assert_eq!(mux.header.as_deref(), Some("mux-signature"));
        assert_eq!(mux.tolerance_secs, DEFAULT_TOLERANCE_SECS);
        assert_eq!(mux.provider, "generic");
        assert_eq!(sources.get("gh").expect("gh").keys[0].bytes(), b"s2");
    }

    #[test]
    fn errors_name_source_and_field() {
        let e = err(json!({"sources": {"acme": {"scheme": "standard-webhooks", "secrets": [SW_SECRET, "whsec_%%%"]}}}));
        assert!(e.contains("\"acme\"") && e.contains("secrets[1]"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "hmac", "secrets": ["x"]}}}));
        assert!(e.contains("\"acme\"") && e.contains("scheme"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "github"}}}));
        assert!(e.contains("secrets") && e.contains("required"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "github", "secrets": []}}}));
        assert!(e.contains("secrets"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "github", "secret": ["x"]}}}));
        assert!(e.contains("\"secret\"") && e.contains("unknown"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "stripe", "secrets": ["x"], "tolerance_secs": -5}}}));
        assert!(e.contains("tolerance_secs"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "github", "secrets": ["x"], "tolerance_secs": 5}}}));
        assert!(e.contains("tolerance_secs"), "{e}");
        let e =
            err(json!({"sources": {"acme": {"scheme": "standard-webhooks", "secrets": [SW_SECRET], "header": "x"}}}));
        assert!(e.contains("header"), "{e}");
        let e = err(json!({"sources": {"acme": {"scheme": "github", "secrets": ["x"], "provider": "nope"}}}));
        assert!(e.contains("provider"), "{e}");
        let e = err(
            json!({"sources": {"acme": {"scheme": "github", "secrets": ["x"], "api": {"base_url": "ftp://x", "token": "t"}}}}),
        );
        assert!(e.contains("api.base_url"), "{e}");
        let e =
            err(json!({"sources": {"acme": {"scheme": "github", "secrets": ["x"], "api": {"base_url": "http://x"}}}}));
        assert!(e.contains("api.token"), "{e}");
        let e = err(json!({"sources": {"bad name/": {"scheme": "github", "secrets": ["x"]}}}));
        assert!(e.contains("source names"), "{e}");
        let e = err(json!({"srcs": {}}));
        assert!(e.contains("srcs"), "{e}");
    }

    #[test]
    fn standard_webhooks_secret_length_is_checked() {
        let short = format!("whsec_{}", BASE64.encode([7u8; 16]));
        let e = err(json!({"sources": {"a": {"scheme": "standard-webhooks", "secrets": [short]}}}));
        assert!(e.contains("24 to 64 bytes"), "{e}");
        let unprefixed = BASE64.encode([7u8; 32]);
        assert!(Sources::parse(
            &json!({"sources": {"a": {"scheme": "standard-webhooks", "secrets": [unprefixed]}}}).to_string()
        )
        .is_ok());
    }

    #[test]
    fn no_error_or_debug_output_quotes_a_secret() {
        let leaky = "whsec_TOPSECRETVALUE%%";
        let docs = [
            json!({"sources": {"a": {"scheme": "standard-webhooks", "secrets": [leaky]}}}).to_string(),
            r#"{"sources": {"a": {"scheme": "github", "secrets": ["TOPSECRETVALUE"#.to_string(),
            json!({"sources": {"a": {"scheme": "github", "secrets": "TOPSECRETVALUE"}}}).to_string(),
            json!({"sources": {"a": {"scheme": "github", "secrets": ["x"], "api": {"base_url": 5, "token": "TOPSECRETVALUE"}}}}).to_string(),
        ];
        for doc in docs {
            let e = Sources::parse(&doc).expect_err("rejected");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("TOPSECRETVALUE"), "{shown}");
        }
        let ok = json!({"sources": {"a": {"scheme": "github", "secrets": ["TOPSECRETVALUE"], "api": {"base_url": "http://x", "token": "TOPSECRETVALUE"}}}});
        let sources = Sources::parse(&ok.to_string()).expect("valid");
        assert!(!format!("{sources:?}").contains("TOPSECRETVALUE"));
    }

    #[test]
    fn opusclip_and_header_token_refuse_misleading_settings() {
        let parse =
            |entry: serde_json::Value| Sources::parse(&serde_json::json!({"sources": {"s": entry}}).to_string());
        let no_header = parse(serde_json::json!({"scheme": "header-token", "secrets": ["t"]})).unwrap_err();
        assert!(no_header.to_string().contains("header"), "{no_header}");
        let tolerance = parse(
            serde_json::json!({"scheme": "header-token", "header": "x-t", "secrets": ["t"], "tolerance_secs": 60}),
        );
        assert!(tolerance.is_err(), "a header token carries no timestamp");
        let opus_header = parse(serde_json::json!({"scheme": "opusclip", "header": "x-sig", "secrets": ["sk-1"]}));
        assert!(opus_header.is_err(), "OpusClip's header names are fixed");
        assert!(parse(serde_json::json!({"scheme": "opusclip", "secrets": ["sk-1"], "tolerance_secs": 600})).is_ok());
    }

    #[test]
    fn each_bounded_setting_is_accepted_at_its_bounds_and_refused_beyond() {
        let github = |name: &str| json!({"sources": {name: {"scheme": "github", "secrets": ["s"]}}});
        assert!(Sources::parse(&github(&"a".repeat(64)).to_string()).is_ok());
        assert!(Sources::parse(&github(&"a".repeat(65)).to_string()).is_err());
        assert!(Sources::parse(&github("").to_string()).is_err());
        assert!(Sources::parse(&github("a.b").to_string()).is_err());

        let tolerance = |secs: u64| {
            Sources::parse(
                &json!({"sources": {"s": {"scheme": "stripe", "secrets": ["k"], "tolerance_secs": secs}}}).to_string(),
            )
            .map(|s| s.get("s").expect("s").tolerance_secs)
        };
        assert_eq!(tolerance(1).ok(), Some(1));
        assert_eq!(tolerance(86_400).ok(), Some(86_400));
        assert!(tolerance(0).is_err() && tolerance(86_401).is_err());

        let polls = |n: u64| {
            Sources::parse(
                &json!({"sources": {"s": {"scheme": "github", "secrets": ["k"], "provider": "generic",
                "api": {"base_url": "https://api.example.com/v1/", "token": "t", "max_polls_per_run": n}}}})
                .to_string(),
            )
            .map(|s| s.get("s").expect("s").api.clone().expect("api"))
        };
        assert_eq!(polls(1).expect("1").max_polls_per_run, Some(1));
        assert_eq!(polls(10_000).expect("10000").max_polls_per_run, Some(10_000));
        assert!(polls(0).is_err() && polls(10_001).is_err());
        assert_eq!(
            polls(5).expect("5").base_url.as_str(),
            "https://api.example.com/v1",
            "a trailing slash is dropped"
        );
    }

    #[test]
    fn a_document_counts_its_sources() {
        let empty = Sources::parse(r#"{"sources": {}}"#).expect("empty");
        assert_eq!((empty.len(), empty.is_empty()), (0, true));
        let two = Sources::parse(
            &json!({"sources": {"a": {"scheme": "github", "secrets": ["k"]}, "b": {"scheme": "github", "secrets": ["k"]}}})
                .to_string(),
        )
        .expect("two");
        assert_eq!((two.len(), two.is_empty()), (2, false));
        assert_eq!(two.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    /// A base URL that cannot take a request is refused when the sources
    /// load, not at the first poll as a network error.
    #[test]
    fn a_base_url_needs_an_http_scheme_and_a_host_and_no_credentials_query_or_fragment() {
        let base = |url: &str| {
            Sources::parse(
                &json!({"sources": {"s": {"scheme": "github", "secrets": ["k"],
                "api": {"base_url": url, "token": "t"}}}})
                .to_string(),
            )
            .map(|s| s.get("s").expect("s").api.clone().expect("api").base_url.to_string())
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            base("http://127.0.0.1:9000/v1/").as_deref(),
            Ok("http://127.0.0.1:9000/v1")
        );
        assert_eq!(
            base("https://api.example.com").as_deref(),
            Ok("https://api.example.com/")
        );
        for (url, problem) in [
            ("https://", "http(s) URL"),
            ("mailto:ops@example.com", "http(s) URL with a host"),
            ("ftp://files.example.com", "http(s) URL with a host"),
            ("https://user:hunter2@api.example.com", "credentials"),
            ("https://apikey@api.example.com", "credentials"),
            ("https://api.example.com/v1?key=1", "query or fragment"),
            ("https://api.example.com/v1#top", "query or fragment"),
        ] {
            let error = base(url).expect_err(url);
            assert!(
                error.contains("api.base_url") && error.contains(problem),
                "{url}: {error}"
            );
            assert!(!error.contains("hunter2") && !error.contains("apikey"), "{error}");
        }
    }

    #[test]
    fn names_take_dashes_and_underscores_and_a_header_must_be_a_header_name() {
        let doc = |name: &str, header: &str| {
            json!({"sources": {name: {"scheme": "stripe", "secrets": ["k"], "header": header}}}).to_string()
        };
        let parsed = Sources::parse(&doc("my-source_1", "X-Sig")).expect("valid");
        assert_eq!(
            parsed.get("my-source_1").expect("source").header.as_deref(),
            Some("x-sig")
        );
        for bad in ["x sig", "x:sig", ""] {
            assert!(Sources::parse(&doc("s", bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_show_as_redacted_in_debug_output() {
        assert_eq!(format!("{:?}", SecretString("tok-1".into())), "<redacted>");
        assert_eq!(format!("{:?}", SigningKey::from_text("k")), "SigningKey(<redacted>)");
    }

    #[test]
    fn an_api_document_with_anything_beside_sources_is_refused() {
        let signing = json!({"sources": {"a": {"scheme": "github", "secrets": ["k"]}}}).to_string();
        let extra = json!({"sources": {}, "other": 1}).to_string();
        let error = merge_api_document(&signing, &extra).expect_err("extra top-level field");
        assert!(error.to_string().contains("nothing else"), "{error}");
        assert!(merge_api_document(&extra, &json!({"sources": {}}).to_string()).is_err());
    }

    #[test]
    fn an_empty_scheme_or_token_is_refused_by_name() {
        let scheme = err(json!({"sources": {"a": {"scheme": "", "secrets": ["k"]}}}));
        assert!(scheme.contains("scheme") && scheme.contains("non-empty"), "{scheme}");
        let token = err(json!({"sources": {"a": {"scheme": "github", "secrets": ["k"],
            "api": {"base_url": "https://api.example.com", "token": ""}}}}));
        assert!(token.contains("api.token") && token.contains("non-empty"), "{token}");
    }
}
