//! The Boltfleet agent: reports its passbolt host to the controller and runs update jobs on it.

pub mod config;
