//! The reconciler's settings, read from its environment.

use std::time::Duration;

use jobhook::config::{stale_after, ConfigError, Env, SourcesSettings, API_SECRET, EVENT_TTL_DAYS, TABLE_NAME};

use crate::reconcile::ReconcileSettings;

pub const POLL_INTERVAL_SECS: &str = "JOBHOOK_POLL_INTERVAL_SECS";
pub const MAX_POLL_INTERVAL_SECS: &str = "JOBHOOK_MAX_POLL_INTERVAL_SECS";
pub const MAX_POLLS_PER_RUN: &str = "JOBHOOK_MAX_POLLS_PER_RUN";
pub const POLL_CONCURRENCY: &str = "JOBHOOK_POLL_CONCURRENCY";
pub const ABANDON_AFTER_NOT_FOUND: &str = "JOBHOOK_ABANDON_AFTER_NOT_FOUND";
pub const ABANDON_AFTER_DAYS: &str = "JOBHOOK_ABANDON_AFTER_DAYS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcilerConfig {
    pub table_name: String,
    pub sources: SourcesSettings,
    /// Where the api document lives, when it is apart from the sources
    /// document (on AWS; a local file holds both).
    pub api_secret: Option<String>,
    pub event_ttl: Duration,
    pub stale_after: Duration,
    pub settings: ReconcileSettings,
}

impl ReconcilerConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            sources: SourcesSettings::from_env(env)?,
            api_secret: env.optional(API_SECRET),
            event_ttl: Duration::from_secs(env.number(EVENT_TTL_DAYS, 30, 1..=3650)? * 86_400),
            stale_after: stale_after(env)?,
            settings: {
                let d = ReconcileSettings::default();
                let secs = |name, default: Duration| -> Result<Duration, ConfigError> {
                    Ok(Duration::from_secs(env.number(
                        name,
                        default.as_secs(),
                        0..=30 * 86_400,
                    )?))
                };
                ReconcileSettings {
                    poll_interval: secs(POLL_INTERVAL_SECS, d.poll_interval)?,
                    max_poll_interval: secs(MAX_POLL_INTERVAL_SECS, d.max_poll_interval)?,
                    max_polls_per_run: env.number(MAX_POLLS_PER_RUN, d.max_polls_per_run as u64, 1..=100_000)? as usize,
                    poll_concurrency: env.number(POLL_CONCURRENCY, d.poll_concurrency as u64, 1..=256)? as usize,
                    abandon_after_not_found: env.number(
                        ABANDON_AFTER_NOT_FOUND,
                        u64::from(d.abandon_after_not_found),
                        1..=1000,
                    )? as u32,
                    abandon_after: Duration::from_secs(
                        env.number(ABANDON_AFTER_DAYS, d.abandon_after.as_secs() / 86_400, 1..=365)? * 86_400,
                    ),
                    reserve: d.reserve,
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobhook::config::{SOURCES_FILE, STALE_AFTER_SECS};
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn reconciler_config_defaults_and_errors() {
        let base = [(TABLE_NAME, "t"), (SOURCES_FILE, "f")];
        let cfg = ReconcilerConfig::from_env(&env(&base)).expect("valid");
        assert_eq!(cfg.settings, ReconcileSettings::default());
        let mut bad = base.to_vec();
        bad.push((POLL_CONCURRENCY, "0"));
        assert_eq!(
            ReconcilerConfig::from_env(&env(&bad)).unwrap_err().name,
            POLL_CONCURRENCY
        );
        let mut fast = base.to_vec();
        fast.extend([(STALE_AFTER_SECS, "5"), (POLL_INTERVAL_SECS, "2")]);
        let cfg = ReconcilerConfig::from_env(&env(&fast)).expect("valid");
        assert_eq!(cfg.stale_after, Duration::from_secs(5));
        assert_eq!(cfg.settings.poll_interval, Duration::from_secs(2));
    }
}
