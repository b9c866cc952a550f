//! One scheduled run: the current sources, then a reconciliation pass.

use crate::reconcile::{Reconciler, RunSummary};
use jobhook::sources_cache::SourcesCache;

/// The function's timeout, as `template.yaml` sets it (a test holds the two
/// together): the budget when the runtime gives no usable deadline.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(240);

/// Each provider request, connection included, gives up after this.
pub const POLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug)]
pub struct ScheduledRun {
    pub sources: SourcesCache,
    pub reconciler: Reconciler,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Sources(#[from] jobhook::sources_cache::SourcesCacheError),
    #[error(transparent)]
    Store(#[from] jobhook::ports::PortError),
}

impl ScheduledRun {
    /// The scheduled event's content is not used: every run does the same.
    /// The run takes no new poll once `deadline` is near.
    pub async fn handle(&self, deadline: tokio::time::Instant) -> Result<RunSummary, RunError> {
        let sources = self.sources.get().await?;
        Ok(self.reconciler.run(&sources, deadline).await?)
    }
}
