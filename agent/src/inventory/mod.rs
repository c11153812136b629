//! What the agent reports about its passbolt host, and when: [`collect`] gathers version, git
//! state, migrations, health, PHP and disk space without ever failing (problems become data),
//! [`Prober`] decides when passbolt's commands run. The passbolt knowledge it reads with lives
//! in `crate::passbolt`, the running of commands in `crate::exec`.

mod collect;
pub mod git;
mod health;
mod prober;
pub mod probes;

pub use collect::{assemble, collect, probe, Probed};
pub use prober::Prober;
