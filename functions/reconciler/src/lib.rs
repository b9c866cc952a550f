pub mod config;
pub mod handler;
pub mod reconcile;

pub use config::ReconcilerConfig;
pub use handler::{ScheduledRun, POLL_TIMEOUT, TIMEOUT};
pub use reconcile::{RateLimitedSource, ReconcileSettings, Reconciler, RunSummary};
