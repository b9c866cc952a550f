pub mod handler;

pub use handler::{output_client, Keeper, COPY_ATTEMPTS, TIMEOUT};
