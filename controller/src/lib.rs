//! The Boltfleet controller: enrollment, agent streams, fleet reports; and the operator CLI.

pub mod accept;
pub mod app;
pub mod auth;
pub mod ca;
pub mod cli;
pub mod command;
pub mod config;
pub mod door;
pub mod enroll_bulk;
pub mod error;
pub mod hot;
pub mod jobs;
pub mod limits;
pub mod operators;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod rollouts;
pub mod scheduler;
pub mod scope;
pub mod server;
pub mod services;
pub mod state;
pub mod store;
pub mod tokens;

pub use server::run;
