//! The parts of the local pipeline that tests use too.

pub mod faults;
pub mod seed;
pub mod streams;
