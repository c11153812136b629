//! The Boltfleet controller: enrollment, agent streams, fleet reports, rollouts; and the
//! operator CLI.
//!
//! `services/` decode the wire and call [`app::App`] off the async threads; `wire/` holds every
//! proto <-> domain conversion; `app/` owns every operation; `state/` owns every byte; `rollout/`
//! is the pure planner; `scheduler` drives running rollouts; `webhook/` signs and sends events;
//! `cli/` is the `boltfleet` command.

pub mod accept;
pub mod app;
pub mod auth;
pub mod ca;
pub mod cli;
pub mod command;
pub mod config;
pub mod door;
pub mod error;
pub mod failpoint;
pub mod leadership;
pub mod limits;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod state;
pub mod tokens;
pub mod webhook;
pub mod wire;

pub use server::run;
