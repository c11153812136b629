//! A real etcd cluster for end-to-end tests: `n` members on loopback ports in a temp dir of
//! their own, each stopped, killed and started again alone. Built from the controller's member
//! launcher (`boltfleet_controller::state::etcd_member`), so unit and end-to-end tests start
//! etcd the same way; dropped, every member is killed and the directory removed.

use anyhow::{Context, Result};
use boltfleet_controller::state::etcd_member::{self, EtcdMember, START_TIMEOUT};

/// Members of one cluster, by index.
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    // Dropped after the members (fields drop in order), so the processes go before their data.
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts a new cluster of `n` members and waits until each is healthy (with a leader).
    /// Tries fresh ports again when some were taken between choosing and binding them.
    pub fn start(n: usize) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            let dir = etcd_member::temp_dir()?;
            let mut members = EtcdMember::cluster(dir.path(), n)?;
            let started = members.iter_mut().try_for_each(EtcdMember::start);
            let healthy = started.and_then(|()| {
                members
                    .iter_mut()
                    .try_for_each(|m| m.wait_healthy(START_TIMEOUT))
            });
            match healthy {
                Ok(()) => return Ok(Self { members, _dir: dir }),
                Err(err) => last = Some(err),
            }
        }
        Err(last.expect("tried at least once")).context("etcd cluster not started")
    }

    /// Every member's client URL, as `[store] endpoints` names them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// A `[store]` section for a controller on this cluster under `prefix`.
    pub fn store_toml(&self, prefix: &str) -> String {
        format!(
            "[store]\nengine = \"etcd\"\nendpoints = {:?}\nprefix = {prefix:?}\n",
            self.endpoints()
        )
    }

    pub fn member(&self, member: usize) -> &EtcdMember {
        &self.members[member]
    }

    /// SIGTERM to one member, waiting for it to exit.
    pub fn stop(&mut self, member: usize) -> Result<()> {
        self.members[member].stop()
    }

    /// `kill -9` of one member.
    pub fn kill(&mut self, member: usize) {
        self.members[member].kill();
    }

    /// Starts one member again on its data and ports; waits until it is healthy (which needs
    /// a quorum of the cluster up).
    pub fn start_member(&mut self, member: usize) -> Result<()> {
        let m = &mut self.members[member];
        m.start()?;
        m.wait_healthy(START_TIMEOUT)
    }

    /// Starts several members again together (a quorum coming back needs them all started
    /// before any is healthy).
    pub fn start_members(&mut self, members: &[usize]) -> Result<()> {
        for &m in members {
            self.members[m].start()?;
        }
        for &m in members {
            self.members[m].wait_healthy(START_TIMEOUT)?;
        }
        Ok(())
    }

    /// Whether `member` says it is healthy (up, and its cluster has a leader).
    pub fn healthy(&self, member: usize) -> bool {
        self.members[member].healthy()
    }
}
