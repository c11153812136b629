//! Every conversion between the wire (the protos) and the controller's domain types, in one
//! place: the services and the CLI use the same ones.

pub mod admin;
pub mod rollout;
pub mod webhook;
