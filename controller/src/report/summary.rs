//! List rows are summaries with a size bound: `hosts` and `report` over a large fleet stay
//! within a message, and one host cannot make every row heavy. `host show` gives the rest.

use boltfleet_common::proto::{Health, HostRow, Inventory, JobEvent, MigrationState};

use crate::door::text::cut;
use crate::state::Observed;

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
    if let Some(inv) = row.inventory.as_ref() {
        row.inventory = Some(inventory_part(inv, false));
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

/// A copy of `observed` holding what a summary row is made of and nothing [`summarize`]
/// drops (health checks, disks, migration sections, the version file): a page of rows then
/// copies a few strings per host, not each host's whole report. The errors and health
/// reasons stay whole, since the row counts the ones it leaves out.
pub fn observed_part(observed: &Observed) -> Observed {
    Observed {
        inventory: observed
            .inventory
            .as_ref()
            .map(|inv| inventory_part(inv, true)),
        last_seen: observed.last_seen,
        agent_version: observed.agent_version.clone(),
    }
}

/// The inventory fields a summary row shows: the one list both [`summarize`] and
/// [`observed_part`] keep. With `reasons`, also the health reasons and errors that a row's
/// `health_reasons` are made of.
fn inventory_part(inv: &Inventory, reasons: bool) -> Inventory {
    Inventory {
        agent_version: inv.agent_version.clone(),
        passbolt_version: inv.passbolt_version.clone(),
        version_file: String::new(),
        git: inv.git.clone(),
        migrations: inv.migrations.as_ref().map(|m| MigrationState {
            known: m.known,
            pending: m.pending,
            ..MigrationState::default()
        }),
        health: inv.health.as_ref().map(|h| Health {
            healthy: h.healthy,
            reasons: if reasons {
                h.reasons.clone()
            } else {
                Vec::new()
            },
            ..Health::default()
        }),
        php_version: inv.php_version.clone(),
        disks: Vec::new(),
        errors: if reasons {
            inv.errors.clone()
        } else {
            Vec::new()
        },
        collected_at: inv.collected_at,
        newest_tag: inv.newest_tag.clone(),
        job_in_progress: inv.job_in_progress,
        probed_at: inv.probed_at,
    }
}

/// A copy of `event` without what [`summarize`] drops from a row's last job (its steps and
/// the failing checks).
pub fn job_part(event: &JobEvent) -> JobEvent {
    JobEvent {
        steps: Vec::new(),
        failing_before: Vec::new(),
        failing_after: Vec::new(),
        failing_after_rollback: Vec::new(),
        job_id: event.job_id.clone(),
        target_version: event.target_version.clone(),
        failed_step: event.failed_step.clone(),
        backup_id: event.backup_id.clone(),
        config_changes: event.config_changes.clone(),
        reason: event.reason.clone(),
        from_version: event.from_version.clone(),
        backup_path: event.backup_path.clone(),
        ..*event
    }
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

    #[test]
    fn a_row_from_the_parts_is_the_summary_of_the_row_from_everything() {
        use crate::report::{rows, HostView, LatestRule};
        use crate::state::HostRecord;
        use boltfleet_common::proto::{DiskSpace, GitState, JobKind, JobState, MigrationSection};

        let observed = Observed {
            inventory: Some(Inventory {
                agent_version: "0.1.0".into(),
                passbolt_version: "1.6.9".into(),
                version_file: "app/Config/version.php".into(),
                git: Some(GitState {
                    head: "abc".into(),
                    tag: "v1.6.9".into(),
                    dirty: true,
                }),
                migrations: Some(MigrationState {
                    known: true,
                    sections: vec![MigrationSection::default(); 3],
                    pending: true,
                    error: "e".repeat(300),
                }),
                health: Some(Health {
                    healthy: false,
                    checks: vec![HealthCheck::default(); 20],
                    reasons: (0..9)
                        .map(|i| format!("reason {i} {}", "r".repeat(300)))
                        .collect(),
                }),
                php_version: "5.6.40".into(),
                disks: vec![DiskSpace::default(); 2],
                errors: vec!["cannot read git".into()],
                collected_at: 100,
                newest_tag: "v1.6.10".into(),
                job_in_progress: true,
                probed_at: 90,
            }),
            last_seen: 101,
            agent_version: "0.1.0".into(),
        };
        let job = JobEvent {
            job_id: "j1".into(),
            kind: JobKind::Update as i32,
            target_version: "1.6.10".into(),
            state: JobState::RolledBack as i32,
            steps: vec![StepRecord::default(); 4],
            failed_step: "migrations".into(),
            backup_id: "b1".into(),
            config_changes: (0..12).map(|i| format!("change {i}")).collect(),
            reason: "w".repeat(400),
            from_version: "1.6.9".into(),
            failing_before: vec!["a".into()],
            failing_after: vec!["b".into()],
            backup_path: "/var/backups/x".into(),
            started_at: 5,
            finished_at: 6,
            failing_after_rollback: vec!["c".into()],
        };
        let view = |observed: Observed, last_job: JobEvent| HostView {
            record: HostRecord {
                host_id: "web1".into(),
                tenant: "acme".into(),
                ..HostRecord::default()
            },
            observed: Some(observed),
            last_job: Some(last_job),
            online: true,
            window: None,
            frozen: false,
            flapping: false,
        };
        let rule = LatestRule::default();
        let mut whole = rows(vec![view(observed.clone(), job.clone())], &rule, None);
        let mut parts = rows(
            vec![view(observed_part(&observed), job_part(&job))],
            &rule,
            None,
        );
        summarize(&mut whole[0]);
        summarize(&mut parts[0]);
        assert_eq!(parts, whole);
        assert!(whole[0]
            .health_reasons
            .last()
            .unwrap()
            .starts_with("... and 5 more"));
    }
}
