//! Shared by the Boltfleet agent and controller: the wire contract, identities, PKI, TLS and versions,
//! and the rules both sides apply (a job state is final, the clock at the boundaries).

pub mod proto {
    //! Generated code of `proto/boltfleet/v1`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("boltfleet.v1");
}

#[cfg(any(test, feature = "test-support"))]
pub mod canned;
pub mod clock;
pub mod codec;
pub mod config;
pub mod files;
pub mod grant;
pub mod http;
pub mod identity;
pub mod job_state;
pub mod metrics;
pub mod pki;
pub mod process;
pub mod steps;
pub mod telemetry;
pub mod tls;
pub mod version;
