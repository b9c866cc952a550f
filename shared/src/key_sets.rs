//! Published key sets (a fal source's JWKS), fetched and cached per
//! container: at init, again after a TTL, and when no cached key verifies a
//! delivery, at most once a minute per key set whatever happens. Without a
//! usable key set a delivery is answered 503, never accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::domain::signature::jwks;
use crate::domain::signature::VerifyingKey;
use crate::ports::KeySetFetcher;

/// How long a fetched key set is used before it is fetched again. fal asks
/// that its JWKS be cached for no more than 24 hours.
pub const KEY_SET_TTL: Duration = Duration::from_secs(60 * 60);
/// The least time between two fetches of one key set: a stream of forged
/// deliveries cannot turn into a stream of fetches.
pub const MIN_REFETCH: Duration = Duration::from_secs(60);
/// How long a key set may be served past its TTL while its publisher cannot
/// be reached.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// No key set can be had now: the delivery should be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key set cannot be had: {0}")]
pub struct KeySetUnavailable(pub String);

#[derive(Debug)]
struct Entry {
    keys: Option<(Arc<[VerifyingKey]>, Instant)>,
    tried_at: Option<Instant>,
    last_error: String,
}

#[derive(Debug)]
pub struct KeySetCache {
    fetcher: Arc<dyn KeySetFetcher>,
    ttl: Duration,
    min_refetch: Duration,
    entries: Mutex<HashMap<url::Url, Entry>>,
}

impl KeySetCache {
    pub fn new(fetcher: Arc<dyn KeySetFetcher>) -> Self {
        Self::with_timing(fetcher, KEY_SET_TTL, MIN_REFETCH)
    }

    /// For tests that rotate keys faster than a minute.
    pub fn with_timing(fetcher: Arc<dyn KeySetFetcher>, ttl: Duration, min_refetch: Duration) -> Self {
        Self {
            fetcher,
            ttl,
            min_refetch,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn may_fetch(&self, entry: &Entry, now: Instant) -> bool {
        entry
            .tried_at
            .is_none_or(|at| now.duration_since(at) >= self.min_refetch)
    }

    /// Fetches and records one key set; its keys, or why not.
    async fn refresh(&self, url: &url::Url, entry: &mut Entry) -> Result<Arc<[VerifyingKey]>, String> {
        let now = Instant::now();
        entry.tried_at = Some(now);
        let fetched = self
            .fetcher
            .fetch(url)
            .await
            .map_err(|e| e.to_string())
            .and_then(|document| jwks::ed25519_keys(&document).map_err(|e| e.to_string()));
        match fetched {
            Ok(keys) => {
                let keys: Arc<[VerifyingKey]> = keys.into();
                entry.keys = Some((keys.clone(), now));
                Ok(keys)
            }
            Err(why) => {
                // The host only: a key set's path is not secret, but say no more than needed.
                tracing::error!(host = url.host_str().unwrap_or_default(), error = %why, "key set fetch failed");
                entry.last_error = why.clone();
                Err(why)
            }
        }
    }

    /// The keys to verify with now: the cached set while fresh, else a new
    /// fetch; past the TTL a publisher that cannot be reached leaves the
    /// last set in use for up to [`MAX_STALE`].
    pub async fn keys(&self, url: &url::Url) -> Result<Arc<[VerifyingKey]>, KeySetUnavailable> {
        let mut entries = self.entries.lock().await;
        let now = Instant::now();
        let entry = entries.entry(url.clone()).or_insert_with(|| Entry {
            keys: None,
            tried_at: None,
            last_error: "not fetched yet".into(),
        });
        let fresh = |entry: &Entry, age: Duration| {
            entry
                .keys
                .as_ref()
                .filter(|(_, at)| now.duration_since(*at) < age)
                .map(|(k, _)| k.clone())
        };
        if let Some(keys) = fresh(entry, self.ttl) {
            return Ok(keys);
        }
        if self.may_fetch(entry, now) {
            if let Ok(keys) = self.refresh(url, entry).await {
                return Ok(keys);
            }
        }
        fresh(entry, MAX_STALE).ok_or_else(|| KeySetUnavailable(entry.last_error.clone()))
    }

    /// After no key of the set verified a delivery: the set fetched again,
    /// if the last fetch is a minute old (None if it is not: the delivery is
    /// refused on the keys at hand). A failed fetch is an error, since the
    /// delivery may be signed with a key the publisher has just rotated in.
    pub async fn refreshed(&self, url: &url::Url) -> Result<Option<Arc<[VerifyingKey]>>, KeySetUnavailable> {
        let mut entries = self.entries.lock().await;
        let Some(entry) = entries.get_mut(url) else {
            return Ok(None);
        };
        if !self.may_fetch(entry, Instant::now()) {
            return Ok(None);
        }
        self.refresh(url, entry).await.map(Some).map_err(KeySetUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::ScriptedKeySets;

    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn set() -> Vec<u8> {
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}]})
            .to_string()
            .into_bytes()
    }

    fn url() -> url::Url {
        url::Url::parse("https://keys.example/jwks.json").expect("url")
    }

    /// Past its TTL, a set whose publisher is down stays in use for
    /// verifying (it was fal's a moment ago), but a refresh asked for by a
    /// delivery no key verifies fails: that delivery may need a new key.
    #[tokio::test]
    async fn past_its_ttl_a_set_is_served_stale_while_the_publisher_is_down_but_a_refresh_fails() {
        let publisher = Arc::new(ScriptedKeySets::serving(&set()));
        let cache = KeySetCache::with_timing(publisher.clone(), Duration::ZERO, Duration::ZERO);
        assert_eq!(cache.keys(&url()).await.expect("fetched").len(), 1);
        publisher.serve(None);
        assert_eq!(cache.keys(&url()).await.expect("stale").len(), 1);
        assert_eq!(publisher.fetches(), 2, "the TTL passed: fetched again");
        assert!(cache.refreshed(&url()).await.is_err());
    }

    /// A publisher that is down is asked again only after the minimum
    /// interval, however many deliveries wait; what it serves must be a
    /// usable key set.
    #[tokio::test]
    async fn a_publisher_that_is_down_is_asked_at_most_once_per_interval() {
        let publisher = Arc::new(ScriptedKeySets::default());
        let cache = KeySetCache::with_timing(publisher.clone(), KEY_SET_TTL, MIN_REFETCH);
        for _ in 0..3 {
            let error = cache.keys(&url()).await.expect_err("down");
            assert!(error.0.contains("down"), "{error}");
        }
        assert_eq!(publisher.fetches(), 1);
        assert_eq!(cache.refreshed(&url()).await, Ok(None), "within the interval");

        let junk = Arc::new(ScriptedKeySets::serving(br#"{"keys": []}"#));
        let cache = KeySetCache::new(junk);
        let error = cache.keys(&url()).await.expect_err("no key");
        assert!(error.0.contains("no Ed25519 signing key"), "{error}");
    }
}
