//! jobhook's library.
//!
//! - [`domain`]: pure logic (signatures, sources, envelope). No AWS types.
//! - [`ports`]: one small trait per outside capability.
//! - [`adapters`]: those traits on SQS, Secrets Manager and files.

pub mod adapters;
pub mod clock;
pub mod config;
pub mod domain;
pub mod outcomes;
pub mod ports;
pub mod retry;
pub mod sources_cache;
pub mod telemetry;

pub use domain::envelope::Envelope;
pub use domain::signature::{verify, VerifiedWebhook, VerifyError};
pub use domain::sources::{Scheme, SourceConfig, Sources};
