//! One scheduled run: the current sources, then a reconciliation pass.

use jobhook::reconcile::{Reconciler, RunSummary};
use jobhook::sources_cache::SourcesCache;

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
    pub async fn handle(&self) -> Result<RunSummary, RunError> {
        let sources = self.sources.get().await?;
        Ok(self.reconciler.run(&sources).await?)
    }
}
