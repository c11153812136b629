//! The gRPC services: thin adapters from the wire to [`crate::app::App`].

pub mod admin;
pub mod agent;
pub mod enroll;
