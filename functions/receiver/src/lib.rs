pub mod handler;

pub use handler::Receiver;
