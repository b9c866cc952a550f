pub mod handler;

pub use handler::{Processor, FETCH_TIMEOUT, TIMEOUT};
