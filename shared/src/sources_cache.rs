//! The sources document, cached per container and re-read after a TTL so
//! that rotated secrets take effect without a redeploy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::domain::sources::{Sources, SourcesError};
use crate::ports::{PortError, SourcesLoader};

/// After a failed refresh the stale document is served, and the next attempt
/// waits at most this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SourcesCacheError {
    #[error("cannot load sources from {location}: {error}")]
    Load { location: String, error: PortError },
    #[error("invalid sources document in {location}: {error}")]
    Invalid { location: String, error: SourcesError },
}

impl SourcesCacheError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Load { error, .. } if error.is_retryable())
    }
}

#[derive(Debug)]
struct Cached {
    sources: Arc<Sources>,
    refresh_at: Instant,
}

#[derive(Debug)]
pub struct SourcesCache {
    loader: Arc<dyn SourcesLoader>,
    ttl: Duration,
    cached: Mutex<Option<Cached>>,
}

impl SourcesCache {
    pub fn new(loader: Arc<dyn SourcesLoader>, ttl: Duration) -> Self {
        Self {
            loader,
            ttl,
            cached: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<Sources, SourcesCacheError> {
        let location = self.loader.location();
        let text = self.loader.load().await.map_err(|error| SourcesCacheError::Load {
            location: location.clone(),
            error,
        })?;
        Sources::parse(&text).map_err(|error| SourcesCacheError::Invalid { location, error })
    }

    /// The current document. A failed refresh keeps serving the last good
    /// one (and logs why); only a container that never loaded one fails.
    pub async fn get(&self) -> Result<Arc<Sources>, SourcesCacheError> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some(c) = cached.as_ref().filter(|c| now < c.refresh_at) {
            return Ok(c.sources.clone());
        }
        match (self.fetch().await, cached.as_mut()) {
            (Ok(sources), _) => {
                let sources = Arc::new(sources);
                *cached = Some(Cached {
                    sources: sources.clone(),
                    refresh_at: now + self.ttl,
                });
                Ok(sources)
            }
            (Err(error), Some(stale)) => {
                tracing::error!(%error, "sources refresh failed; serving the previous document");
                stale.refresh_at = now + self.ttl.min(RETRY_AFTER_FAILURE);
                Ok(stale.sources.clone())
            }
            (Err(error), None) => Err(error),
        }
    }
}
