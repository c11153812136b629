//! List rows are summaries with a size bound: `hosts` and `report` over a large fleet stay
//! within a message, and one host cannot make every row heavy. `host show` gives the rest.

use boltfleet_common::proto::{Health, HostRow, Inventory, MigrationState};

use crate::door::text::cut;

/// Health reasons a list row keeps (a last line counts the others).
pub const ROW_REASONS: usize = 5;
/// Longest free text in a list row (reasons, a job's reason and config changes), in bytes.
pub const ROW_TEXT: usize = 256;
/// Config changes of the last job a list row keeps.
pub const ROW_CONFIG_CHANGES: usize = 10;

/// Cuts `row` down to its summary (see `HostRow.summary` in the proto).
pub fn summarize(row: &mut HostRow) {
    let reasons = row.health_reasons.len();
    row.health_reasons.truncate(ROW_REASONS);
    for reason in &mut row.health_reasons {
        shorten(reason);
    }
    if reasons > ROW_REASONS {
        row.health_reasons.push(format!(
            "... and {} more (boltfleet host show {})",
            reasons - ROW_REASONS,
            row.host_id
        ));
    }
    if let Some(inv) = row.inventory.take() {
        row.inventory = Some(Inventory {
            agent_version: inv.agent_version,
            passbolt_version: inv.passbolt_version,
            version_file: String::new(),
            git: inv.git,
            migrations: inv.migrations.map(|m| MigrationState {
                known: m.known,
                pending: m.pending,
                ..MigrationState::default()
            }),
            health: inv.health.map(|h| Health {
                healthy: h.healthy,
                ..Health::default()
            }),
            php_version: inv.php_version,
            disks: Vec::new(),
            errors: Vec::new(),
            collected_at: inv.collected_at,
            newest_tag: inv.newest_tag,
            job_in_progress: inv.job_in_progress,
            probed_at: inv.probed_at,
        });
    }
    if let Some(job) = row.last_job.as_mut() {
        job.steps.clear();
        job.failing_before.clear();
        job.failing_after.clear();
        job.failing_after_rollback.clear();
        let changes = job.config_changes.len();
        job.config_changes.truncate(ROW_CONFIG_CHANGES);
        job.config_changes.iter_mut().for_each(shorten);
        if changes > ROW_CONFIG_CHANGES {
            job.config_changes.push(format!(
                "... and {} more (boltfleet job show {})",
                changes - ROW_CONFIG_CHANGES,
                job.job_id
            ));
        }
        shorten(&mut job.reason);
        shorten(&mut job.backup_path);
    }
    row.summary = true;
}

fn shorten(text: &mut String) {
    if text.len() > ROW_TEXT {
        let short = cut(text, ROW_TEXT - 3).to_string();
        *text = short + "...";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltfleet_common::proto::{HealthCheck, JobEvent, StepRecord};
    use prost::Message;

    #[test]
    fn a_row_of_the_largest_report_an_agent_may_send_stays_small() {
        let big = "x".repeat(1024);
        let mut row = HostRow {
            host_id: "web1".into(),
            health_reasons: vec![big.clone(); 96],
            inventory: Some(Inventory {
                passbolt_version: "1.6.10".into(),
                health: Some(Health {
                    checks: vec![
                        HealthCheck {
                            detail: big.clone(),
                            ..HealthCheck::default()
                        };
                        128
                    ],
                    reasons: vec![big.clone(); 64],
                    ..Health::default()
                }),
                errors: vec![big.clone(); 32],
                ..Inventory::default()
            }),
            last_job: Some(JobEvent {
                job_id: "j1".into(),
                steps: vec![
                    StepRecord {
                        output_tail: "y".repeat(8192),
                        ..StepRecord::default()
                    };
                    32
                ],
                config_changes: vec![big.clone(); 256],
                reason: "z".repeat(4096),
                ..JobEvent::default()
            }),
            ..HostRow::default()
        };
        assert!(row.encoded_len() > 200_000);
        summarize(&mut row);
        assert!(row.encoded_len() < 6 * 1024, "{} bytes", row.encoded_len());
        assert_eq!(row.health_reasons.len(), ROW_REASONS + 1);
        assert!(row.health_reasons[5].starts_with("... and 91 more"));
        assert_eq!(row.inventory.as_ref().unwrap().passbolt_version, "1.6.10");
        assert!(row.summary);
    }
}
