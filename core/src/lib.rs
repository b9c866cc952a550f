//! jobhook's core: what jobhook decides, and the traits through which it
//! reaches the outside world.
//!
//! - [`domain`]: pure logic (signatures, sources, envelope, job events and
//!   state, provider profiles). No I/O.
//! - [`ports`]: one small trait per outside capability; `jobhook::adapters`
//!   implements them on AWS and HTTP.
//! - [`clock`]: time as a dependency.
//!
//! This crate's manifest has no AWS SDK, async runtime or HTTP client, so
//! the compiler holds the line the layers draw.

pub mod clock;
pub mod domain;
pub mod ports;

pub use domain::envelope::Envelope;
pub use domain::signature::{verify, VerifiedWebhook, VerifyError};
pub use domain::sources::{Scheme, SourceConfig, Sources};
