//! A fingerprint of an inventory that ignores what changes without meaning: the collection
//! time and small free-space movements.

use std::hash::{DefaultHasher, Hasher};

use boltfleet_common::proto::Inventory;
use prost::Message;

/// Free space is compared in buckets of this size.
const FREE_BUCKET: u64 = 1 << 30;

/// Equal for two inventories that differ only in `collected_at` and in free bytes within the
/// same 1 GiB bucket, so a caller can send a report only when something changed (and still
/// on its regular interval). Stable within one build of the agent only: keep it in memory.
pub fn fingerprint(inv: &Inventory) -> u64 {
    let mut normal = inv.clone();
    normal.collected_at = 0;
    for disk in &mut normal.disks {
        disk.free_bytes /= FREE_BUCKET;
    }
    let mut hasher = DefaultHasher::new();
    hasher.write(&normal.encode_to_vec());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use boltfleet_common::proto::{DiskSpace, Health, HealthCheck};

    use super::*;

    fn sample() -> Inventory {
        Inventory {
            agent_version: "0.1.0".into(),
            passbolt_version: "4.12.1".into(),
            collected_at: 1_700_000_000,
            disks: vec![DiskSpace {
                role: "install".into(),
                path: "/var/www/passbolt".into(),
                free_bytes: 10 * FREE_BUCKET + 5,
                total_bytes: 100 * FREE_BUCKET,
            }],
            health: Some(Health {
                healthy: true,
                checks: vec![HealthCheck {
                    source: "http".into(),
                    name: "https://p.example/healthcheck/status.json".into(),
                    status: "pass".into(),
                    detail: String::new(),
                }],
                reasons: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ignores_time_and_free_space_jitter() {
        let base = sample();
        let mut later = sample();
        later.collected_at += 3600;
        later.disks[0].free_bytes += 1000;
        assert_eq!(fingerprint(&base), fingerprint(&later));
    }

    #[test]
    fn sees_meaningful_changes() {
        let base = fingerprint(&sample());
        let mut changed = sample();
        changed.passbolt_version = "4.12.2".into();
        assert_ne!(base, fingerprint(&changed));
        let mut changed = sample();
        changed.disks[0].free_bytes -= 3 * FREE_BUCKET;
        assert_ne!(base, fingerprint(&changed));
        let mut changed = sample();
        if let Some(h) = changed.health.as_mut() {
            h.healthy = false;
            h.checks[0].status = "fail".into();
        }
        assert_ne!(base, fingerprint(&changed));
        let mut changed = sample();
        changed.errors.push("git: failed".into());
        assert_ne!(base, fingerprint(&changed));
    }
}
