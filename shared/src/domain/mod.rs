//! Pure domain logic: no AWS types, no I/O.

pub mod envelope;
pub mod signature;
pub mod sources;
