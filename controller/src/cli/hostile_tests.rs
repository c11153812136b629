//! What a hostile host sends, through every table, plain and CSV renderer of the CLI: nothing
//! reaches the terminal raw, no line break forges a row, no CSV cell runs as a formula, and
//! JSON keeps the text exactly.

use boltfleet_common::proto::{
    AuditEntry, GitState, HostRow, Inventory, JobEvent, JobKind, JobRecord, JobState, PlannedHost,
    RolloutHostStatus, RolloutPlan, RolloutStatus, RolloutWave, StepRecord, StepState,
};

use super::job::{job_text, JobDetail};
use super::plan_view::{plan_table, PlanView};
use super::render::{hosts_csv, hosts_json, hosts_table, report_table};
use super::rollout_view::{list_table, status_table, RolloutView};
use super::rows::HostLine;
use super::watch::{host_line, Lines};

const CLEAR: &str = "1.6.9\x1b[2J";
const TITLE: &str = "\x1b]0;owned\x07v1.6.9";
const FORGED_ROW: &str = "ok\nweb-evil  acme  1.6.10  -  online";
const FORMULA: &str = "=cmd|' /C calc'!A0";
const C1: &str = "\u{9b}2J";

/// No character a terminal would act on, other than the line breaks between lines.
fn assert_no_raw_controls(what: &str, out: &str) {
    let bad: Vec<char> = out
        .chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)))
        .collect();
    assert!(bad.is_empty(), "{what}: raw {bad:?} in\n{out}");
}

fn hostile_row() -> HostRow {
    HostRow {
        host_id: "web-1".into(),
        tenant: "acme".into(),
        version: CLEAR.into(),
        online: true,
        update: "patch".into(),
        health_reasons: vec![FORGED_ROW.into(), C1.into()],
        inventory: Some(Inventory {
            agent_version: FORMULA.into(),
            php_version: "\u{202e}8.2".into(),
            git: Some(GitState {
                tag: TITLE.into(),
                ..GitState::default()
            }),
            ..Inventory::default()
        }),
        last_job: Some(JobEvent {
            job_id: "j1".into(),
            kind: JobKind::Update as i32,
            target_version: "1.6.10".into(),
            state: JobState::RolledBack as i32,
            failed_step: "migrate\r\nweb-2  ok".into(),
            backup_id: "@SUM(A1)".into(),
            ..JobEvent::default()
        }),
        ..HostRow::default()
    }
}

#[test]
fn host_tables_escape_agent_text_and_keep_one_line_per_host() {
    let views = [HostLine::from(&hostile_row())];
    let table = hosts_table(&views);
    assert_no_raw_controls("hosts table", &table);
    assert_eq!(table.lines().count(), 2, "header and one row:\n{table}");
    assert!(table.contains("1.6.9\\x1b[2J"), "{table}");
    assert!(table.contains("ok\\nweb-evil"), "{table}");
    let report = report_table("1.6.10", &views, &[(CLEAR.to_string(), 1)]);
    assert_no_raw_controls("report table", &report);
    assert!(
        !report.lines().any(|l| l.starts_with("web-evil")),
        "{report}"
    );
}

#[test]
fn csv_escapes_and_neutralizes_formulas() {
    let csv = hosts_csv(&[HostLine::from(&hostile_row())]);
    assert_no_raw_controls("csv", &csv);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let row = csv.lines().nth(1).unwrap();
    for cell in [
        "'=cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "\\x1b]0;owned\\x07v1.6.9",
    ] {
        assert!(row.contains(cell), "{cell:?} missing in {row}");
    }
    assert!(
        !row.split(',')
            .any(|cell| cell.starts_with(['=', '+', '-', '@'])),
        "{row}"
    );
}

#[test]
fn json_keeps_agent_text_exactly() {
    let json: serde_json::Value =
        serde_json::from_str(&hosts_json(&[HostLine::from(&hostile_row())], "")).unwrap();
    let host = &json["hosts"][0];
    assert_eq!(host["version"], CLEAR);
    assert_eq!(host["git_tag"], TITLE);
    assert_eq!(host["health_reasons"][0], FORGED_ROW);
    assert_eq!(host["agent_version"], FORMULA);
}

#[test]
fn job_show_escapes_steps_reasons_and_output_tails() {
    let job = JobRecord {
        job_id: "j1".into(),
        host_id: "web-1".into(),
        created_by: "operator alice".into(),
        created_at: 1_700_000_000,
        event: Some(JobEvent {
            job_id: "j1".into(),
            kind: JobKind::Update as i32,
            target_version: "1.6.10".into(),
            state: JobState::RolledBack as i32,
            failed_step: TITLE.into(),
            reason: FORGED_ROW.into(),
            backup_id: CLEAR.into(),
            config_changes: vec![C1.into()],
            steps: vec![StepRecord {
                name: "migrate\nhealthcheck          succeeded".into(),
                state: StepState::Failed as i32,
                output_tail: "Error\x1b[31m boom\r\nline two\n".into(),
                ..StepRecord::default()
            }],
            ..JobEvent::default()
        }),
        ..JobRecord::default()
    };
    let text = job_text(&JobDetail::from(&job));
    assert_no_raw_controls("job show", &text);
    assert!(
        !text.lines().any(|l| l.starts_with("healthcheck")),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("web-evil")), "{text}");
    assert!(text.contains("Error\\x1b[31m boom\\r\nline two"), "{text}");
}

#[test]
fn audit_lines_escape_what_they_quote() {
    let entry = AuditEntry {
        at: 1_700_000_000,
        actor: "agent web-1".into(),
        action: "job.event".into(),
        target: "web-1".into(),
        detail: FORGED_ROW.into(),
    };
    let text = super::job::audit_text(&[entry]);
    assert_no_raw_controls("audit", &text);
    assert_eq!(text.lines().count(), 1, "{text}");
}

fn hostile_status() -> RolloutStatus {
    let host = RolloutHostStatus {
        host_id: "web-1".into(),
        tenant: "acme".into(),
        state: "rolled_back".into(),
        failed_step: TITLE.into(),
        current_step: CLEAR.into(),
        detail: FORGED_ROW.into(),
        ..RolloutHostStatus::default()
    };
    RolloutStatus {
        id: "r1".into(),
        target: "1.6.10".into(),
        state: "paused".into(),
        reason: format!("web-1 failed at {TITLE}"),
        waves: vec![RolloutWave {
            index: 0,
            hosts: vec![host],
            ..RolloutWave::default()
        }],
        created_by: "operator alice".into(),
        ..RolloutStatus::default()
    }
}

#[test]
fn rollout_status_list_and_watch_escape_host_text() {
    let view = RolloutView::from(&hostile_status());
    for (what, out) in [
        ("status", status_table(&view)),
        ("list", list_table(std::slice::from_ref(&view))),
        ("watch", Lines::default().changes(&view, 0).join("\n")),
        ("watch line", host_line(0, &view.waves[0].hosts[0], 0)),
    ] {
        assert_no_raw_controls(what, &out);
        assert!(
            !out.lines().any(|l| l.starts_with("web-evil")),
            "{what}:\n{out}"
        );
    }
}

#[test]
fn rollout_plan_escapes_versions_and_config_changes() {
    let plan = RolloutPlan {
        target: "1.6.10".into(),
        planned_at: 1_700_000_000,
        waves: 1,
        hosts: vec![
            PlannedHost {
                host_id: "web-1".into(),
                tenant: "acme".into(),
                from_version: CLEAR.into(),
                class: "patch".into(),
                wave: Some(0),
                config_changes: vec![FORGED_ROW.into()],
                ..PlannedHost::default()
            },
            PlannedHost {
                host_id: "web-2".into(),
                from_version: TITLE.into(),
                class: "skip".into(),
                skip_reason: "major_jump\x1b[2J".into(),
                ..PlannedHost::default()
            },
        ],
    };
    let text = plan_table(&PlanView::from(&plan));
    assert_no_raw_controls("plan", &text);
    assert!(!text.lines().any(|l| l.starts_with("web-evil")), "{text}");
}
