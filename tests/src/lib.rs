//! End-to-end test harness of Boltfleet: real binaries, real mTLS on loopback, real git, real
//! MariaDB, and the passbolt-like host fixture.
//!
//! * [`mysql`]: a real MariaDB server for the tests of this process and, per test, a database
//!   with its own user and option file.
//! * [`etcd`]: a real etcd cluster of several members, each stopped, killed and started alone.
//! * [`loadgen`]: many simulated agents against a running controller (`boltfleet-loadgen`).
//! * [`fixture`]: a template git repository of passbolt-like releases and hosts cloned from it
//!   at a release, with their database installed.
//! * [`ha`]: several controllers on one etcd prefix: the leader, agents told every URL.
//! * [`receiver`]: a real HTTP server that records the webhooks it gets.
//! * [`rollouts`]: a rollout's status through the CLI, and waiting for one.
//!
//! A host at some version, with its own database:
//!
//! ```no_run
//! use boltfleet_tests::{fixture::PassboltHost, mysql};
//!
//! let db = mysql::server().create_database()?;
//! let dir = tempfile::tempdir()?;
//! let host = PassboltHost::builder("1.5.1").pending(1).create(dir.path(), &db)?;
//! // host.root: the install (cwd of ./app/Console/cake); db.option_file: the MySQL option file.
//! let status = host.migration_status()?;
//! assert!(status.stdout.contains("Current version:"));
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod cluster;
pub mod dashboard;
pub mod etcd;
pub mod fixture;
pub mod ha;
pub mod loadgen;
pub mod mysql;
pub mod raw_agent;
pub mod receiver;
pub mod rollouts;
pub mod site;
