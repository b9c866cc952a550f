//! Settings read from the environment. Errors name the variable.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

/// Reads variables through `lookup`, so tests need not touch the process env.
#[derive(Debug, Clone, Copy)]
pub struct Env<F>(pub F);

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError {
            name,
            problem: "is required".into(),
        })
    }

    /// A whole number within `range`, or `default` when unset.
    pub fn number(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        raw.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| ConfigError {
                name,
                problem: format!("must be a whole number from {} to {}", range.start(), range.end()),
            })
    }
}

/// Where the sources document lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcesLocation {
    File(PathBuf),
    Secret(String),
}

pub const SOURCES_FILE: &str = "JOBHOOK_SOURCES_FILE";
pub const SOURCES_SECRET: &str = "JOBHOOK_SOURCES_SECRET";
pub const SOURCES_TTL_SECS: &str = "JOBHOOK_SOURCES_TTL_SECS";
/// The secret holding the provider API settings (base URLs and tokens), kept
/// apart from the signing secrets; read by the reconciler only.
pub const API_SECRET: &str = "JOBHOOK_API_SECRET";
pub const QUEUE_URL: &str = "JOBHOOK_QUEUE_URL";
pub const MAX_BODY_BYTES: &str = "JOBHOOK_MAX_BODY_BYTES";

/// The largest body that still fits an SQS message (1 MiB) once base64
/// encoded inside the envelope.
pub const MAX_BODY_BYTES_LIMIT: u64 = 700_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesSettings {
    pub location: SourcesLocation,
    pub ttl: Duration,
}

impl SourcesSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let location = match (env.optional(SOURCES_FILE), env.optional(SOURCES_SECRET)) {
            (Some(path), None) => SourcesLocation::File(path.into()),
            (None, Some(secret)) => SourcesLocation::Secret(secret),
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    name: SOURCES_FILE,
                    problem: format!("set either it or {SOURCES_SECRET}, not both"),
                })
            }
            (None, None) => {
                return Err(ConfigError {
                    name: SOURCES_SECRET,
                    problem: format!("is required (or {SOURCES_FILE} for a local file)"),
                })
            }
        };
        let ttl = Duration::from_secs(env.number(SOURCES_TTL_SECS, 300, 0..=86_400)?);
        Ok(Self { location, ttl })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    pub queue_url: String,
    pub sources: SourcesSettings,
    pub max_body_bytes: usize,
}

impl ReceiverConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: env.required(QUEUE_URL)?,
            sources: SourcesSettings::from_env(env)?,
            max_body_bytes: env.number(MAX_BODY_BYTES, 262_144, 1..=MAX_BODY_BYTES_LIMIT)? as usize,
        })
    }
}

pub const TABLE_NAME: &str = "JOBHOOK_TABLE_NAME";
pub const DLQ_URL: &str = "JOBHOOK_DLQ_URL";
pub const EVENT_TTL_DAYS: &str = "JOBHOOK_EVENT_TTL_DAYS";
pub const PROCESSOR_CONCURRENCY: &str = "JOBHOOK_PROCESSOR_CONCURRENCY";

pub const ARCHIVE_BUCKET: &str = "JOBHOOK_ARCHIVE_BUCKET";
pub const ARCHIVE_PREFIX: &str = "JOBHOOK_ARCHIVE_PREFIX";

/// Where records too large for their timeline entry are kept. Without a
/// bucket they stay inline up to a bound (see [`crate::archive`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    pub bucket: Option<String>,
    pub prefix: String,
}

impl ArchiveSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            bucket: env.optional(ARCHIVE_BUCKET),
            prefix: env.optional(ARCHIVE_PREFIX).unwrap_or_else(|| "archive/".into()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub table_name: String,
    pub dlq_url: String,
    pub sources: SourcesSettings,
    /// The api document's secret (on AWS), for thin events' state.
    pub api_secret: Option<String>,
    pub event_ttl: Duration,
    /// Messages of one batch processed at once.
    pub concurrency: usize,
    pub stale_after: Duration,
    pub archive: ArchiveSettings,
    /// The tracking queue's ARN, whose messages are track requests only.
    pub track_queue_arn: Option<String>,
}

/// The tracking queue's ARN (the processor's second trigger).
pub const TRACK_QUEUE_ARN: &str = "JOBHOOK_TRACK_QUEUE_ARN";

impl ProcessorConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            dlq_url: env.required(DLQ_URL)?,
            sources: SourcesSettings::from_env(env)?,
            api_secret: env.optional(API_SECRET),
            event_ttl: Duration::from_secs(env.number(EVENT_TTL_DAYS, 30, 1..=3650)? * 86_400),
            concurrency: env.number(PROCESSOR_CONCURRENCY, 8, 1..=100)? as usize,
            stale_after: stale_after(env)?,
            archive: ArchiveSettings::from_env(env)?,
            track_queue_arn: env.optional(TRACK_QUEUE_ARN),
        })
    }
}

pub const EVENT_BUS: &str = "JOBHOOK_EVENT_BUS";

pub const OUTPUTS_QUEUE_URL: &str = "JOBHOOK_OUTPUTS_QUEUE_URL";

/// The notifier: where notifications go, and where completed jobs' outputs
/// are asked to be kept (only where the stack keeps outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub event_bus: String,
    pub outputs_queue_url: Option<String>,
}

impl NotifierConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            event_bus: env.required(EVENT_BUS)?,
            outputs_queue_url: env.optional(OUTPUTS_QUEUE_URL),
        })
    }
}

pub const OUTPUTS_BUCKET: &str = "JOBHOOK_OUTPUTS_BUCKET";
pub const OUTPUTS_PREFIX: &str = "JOBHOOK_OUTPUTS_PREFIX";

/// The keeper: the job table it records kept outputs in, the sources (each
/// source's `keep_outputs`), and the one bucket and prefix the stack lets it
/// write to, so that a source naming another is refused with its reason
/// rather than denied by IAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperConfig {
    pub table_name: String,
    pub sources: SourcesSettings,
    /// The api document's secret (on AWS): a source's API host is the one
    /// place an output may come from over plain http.
    pub api_secret: Option<String>,
    /// None where the stack keeps no outputs: every request is refused.
    pub bucket: Option<String>,
    pub prefix: String,
    /// The queue its requests come from, to hand a failed one back sooner.
    pub queue_url: Option<String>,
}

impl KeeperConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            sources: SourcesSettings::from_env(env)?,
            api_secret: env.optional(API_SECRET),
            bucket: env.optional(OUTPUTS_BUCKET),
            prefix: env.optional(OUTPUTS_PREFIX).unwrap_or_default(),
            queue_url: env.optional(OUTPUTS_QUEUE_URL),
        })
    }
}

pub const STALE_AFTER_SECS: &str = "JOBHOOK_STALE_AFTER_SECS";

/// How long after its last applied event (or its tracking) an open job is
/// first due for a poll. Everything that writes job state reads it: the
/// processor, the reconciler, the CLI's `track`.
pub fn stale_after<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(env.number(
        STALE_AFTER_SECS,
        crate::domain::schedule::DEFAULT_STALE_AFTER.as_secs(),
        0..=30 * 86_400,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn receiver_config_defaults_and_errors() {
        let cfg = ReceiverConfig::from_env(&env(&[(QUEUE_URL, "http://q"), (SOURCES_SECRET, "s")])).expect("valid");
        assert_eq!(cfg.max_body_bytes, 262_144);
        assert_eq!(cfg.sources.ttl, Duration::from_secs(300));
        assert_eq!(cfg.sources.location, SourcesLocation::Secret("s".into()));

        let e = ReceiverConfig::from_env(&env(&[(SOURCES_SECRET, "s")])).unwrap_err();
        assert_eq!(e.name, QUEUE_URL);
        let e = ReceiverConfig::from_env(&env(&[(QUEUE_URL, "q")])).unwrap_err();
        assert_eq!(e.name, SOURCES_SECRET);
        let e = ReceiverConfig::from_env(&env(&[(QUEUE_URL, "q"), (SOURCES_FILE, "f"), (SOURCES_SECRET, "s")]))
            .unwrap_err();
        assert_eq!(e.name, SOURCES_FILE);
        let e = ReceiverConfig::from_env(&env(&[
            (QUEUE_URL, "q"),
            (SOURCES_FILE, "f"),
            (MAX_BODY_BYTES, "2000000"),
        ]))
        .unwrap_err();
        assert_eq!(e.name, MAX_BODY_BYTES);
        let e = ReceiverConfig::from_env(&env(&[
            (QUEUE_URL, "q"),
            (SOURCES_FILE, "f"),
            (SOURCES_TTL_SECS, "soon"),
        ]))
        .unwrap_err();
        assert_eq!(e.name, SOURCES_TTL_SECS);
    }

    #[test]
    fn processor_config_defaults_and_errors() {
        let base = [(TABLE_NAME, "t"), (DLQ_URL, "d"), (SOURCES_FILE, "f")];
        let cfg = ProcessorConfig::from_env(&env(&base)).expect("valid");
        assert_eq!(cfg.event_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(cfg.concurrency, 8);
        assert_eq!((cfg.archive.bucket, cfg.archive.prefix.as_str()), (None, "archive/"));
        let with_bucket = [base[0], base[1], base[2], (ARCHIVE_BUCKET, "b"), (ARCHIVE_PREFIX, "p/")];
        let archive = ProcessorConfig::from_env(&env(&with_bucket)).expect("valid").archive;
        assert_eq!((archive.bucket.as_deref(), archive.prefix.as_str()), (Some("b"), "p/"));
        let e = ProcessorConfig::from_env(&env(&base[1..])).unwrap_err();
        assert_eq!(e.name, TABLE_NAME);
        let e = ProcessorConfig::from_env(&env(&[base[0], base[2]])).unwrap_err();
        assert_eq!(e.name, DLQ_URL);
        let mut bad = base.to_vec();
        bad.push((EVENT_TTL_DAYS, "0"));
        assert_eq!(ProcessorConfig::from_env(&env(&bad)).unwrap_err().name, EVENT_TTL_DAYS);
    }
}
