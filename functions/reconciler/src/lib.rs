pub mod handler;

pub use handler::{ScheduledRun, POLL_TIMEOUT, TIMEOUT};
