//! Pure domain logic: no AWS types, no I/O.

pub mod archive;
pub mod archive_ref;
pub mod digest;
pub mod envelope;
pub mod event;
pub mod job;
pub mod listing;
pub mod notification;
pub mod outputs;
pub mod provider;
pub mod replay;
pub mod schedule;
pub mod signature;
pub mod sources;
pub mod stored;
pub mod track;

#[cfg(test)]
mod fuzz;
