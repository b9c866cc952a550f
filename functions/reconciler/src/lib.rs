pub mod handler;

pub use handler::ScheduledRun;
