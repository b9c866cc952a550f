pub mod handler;

pub use handler::{Notifier, TIMEOUT};
