//! The parts of the local pipeline that tests use too.

/// The error of the local tooling: each failure ends a dev command with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub mod console_bench;
pub mod dialect;
pub mod faults;
pub mod outputs;
pub mod seed;
pub mod stack;
pub mod streams;
pub mod template;
