//! One integration-test binary: every test runs against the moto server that
//! `make test` starts, with its own queues, tables and secrets.

mod archive;
mod cli;
mod console;
mod faults;
mod metrics;
mod notifier;
mod outputs;
mod processor;
mod providers;
mod receiver;
mod reconciler;
mod stores;
mod template;
