//! jobhook's library on top of the core.
//!
//! - [`domain`], [`ports`] and the clocks are `jobhook_core`'s, re-exported:
//!   pure logic, and one small trait per outside capability.
//! - [`adapters`]: those traits on SQS, DynamoDB, EventBridge, Secrets
//!   Manager, files and the providers' HTTP APIs.
//! - [`bootstrap`]: the composition root, where clients and adapters are
//!   built for the functions, the CLI and the dev tools.
//! - [`config`], [`telemetry`], [`retry`], [`outcomes`], [`sources_cache`],
//!   [`key_sets`]: what the functions share.

pub use jobhook_core::{domain, ports};

pub mod adapters;
pub mod archive;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod key_sets;
pub mod outcomes;
pub mod outputs;
pub mod replay;
pub mod retry;
pub mod sources_cache;
pub mod telemetry;

pub use domain::envelope::Envelope;
pub use domain::signature::{verify, VerifiedWebhook, VerifyError};
pub use domain::sources::{Scheme, SourceConfig, Sources};
