pub mod handler;

pub use handler::{Processor, TIMEOUT};
