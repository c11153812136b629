//! Following a rollout through the operator CLI (`boltfleet rollout status --format json`), as
//! the end-to-end tests of rollouts, HA and the dashboard do.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::cluster::{eventually, Controller};

/// How long [`wait_status`] waits: a rollout over a few fixture hosts, waves and soak included.
pub const WAIT: Duration = Duration::from_secs(180);

/// The rollout's status as `rollout status ID --format json` prints it.
pub fn status(ctl: &Controller, id: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &ctl.cli_ok(&["rollout", "status", id, "--format", "json"])?,
    )?)
}

/// The rollout's status once `check` holds for it (within [`WAIT`]); the error carries the
/// last status seen.
pub fn wait_status(
    ctl: &Controller,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let mut last = Value::Null;
    eventually(what, WAIT, || {
        let s = status(ctl, id).ok()?;
        last = s.clone();
        check(&s).then_some(s)
    })
    .map_err(|e| e.context(format!("last status: {last}")))
}
