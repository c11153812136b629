//! Rendering host rows for stdout: aligned table, JSON object, or CSV. Pure functions of their
//! input, so every format is tested without a controller.

use std::cmp::Reverse;

use boltfleet_common::version::parse_release;
use serde::{Serialize, Serializer};

use super::rows::HostLine;
use super::safe;

/// `hosts --format json`: `{"hosts": [rows], "stale_since": null | "T"}` (`T`: since when
/// the controller's store has not answered, so the rows may be stale; `stale_since` empty:
/// it answers).
pub fn hosts_json(hosts: &[HostLine], stale_since: &str) -> String {
    #[derive(Serialize)]
    struct Hosts<'a> {
        hosts: &'a [HostLine],
        stale_since: Option<&'a str>,
    }
    to_json(&Hosts {
        hosts,
        stale_since: (!stale_since.is_empty()).then_some(stale_since),
    })
}

/// The line printed (on stderr) under a table or CSV when the controller's store has not
/// answered since `stale_since`; `None` when it answers.
pub fn stale_note(stale_since: &str) -> Option<String> {
    (!stale_since.is_empty()).then(|| {
        format!(
            "note: state may be stale since {} (the controller cannot reach its store)",
            safe::text(stale_since)
        )
    })
}

/// `report --format json`: `{"latest": "X.Y.Z" | null, "hosts": [rows], "versions": {...},
/// "stale_since": null | "T"}`, versions newest first (`stale_since` as in [`hosts_json`]).
pub fn report_json(
    latest: &str,
    latest_source: &str,
    hosts: &[HostLine],
    versions: &[(String, u64)],
    stale_since: &str,
) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        latest: Option<&'a str>,
        /// Where `latest` came from: "requested", "operator", "hosts (N hosts, M tenants)".
        latest_source: Option<&'a str>,
        hosts: &'a [HostLine],
        #[serde(serialize_with = "ordered_map")]
        versions: &'a [(String, u64)],
        /// Since when the report may be stale (the controller's store unreachable).
        stale_since: Option<&'a str>,
    }
    to_json(&Report {
        latest: (!latest.is_empty()).then_some(latest),
        latest_source: (!latest_source.is_empty()).then_some(latest_source),
        hosts,
        versions,
        stale_since: (!stale_since.is_empty()).then_some(stale_since),
    })
}

fn ordered_map<S: Serializer>(pairs: &&[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings, bools and maps with string keys cannot fail.
    let mut text = serde_json::to_string_pretty(value).expect("rows serialize to JSON");
    text.push('\n');
    text
}

/// Column names of the CSV output, in order; lists are joined with `;` in one cell.
pub const CSV_COLUMNS: [&str; 24] = [
    "host_id",
    "tenant",
    "labels",
    "version",
    "online",
    "healthy",
    "last_seen",
    "migrations_pending",
    "update",
    "revoked",
    "agent_version",
    "php_version",
    "git_tag",
    "dirty",
    "health_reasons",
    "job_id",
    "job_kind",
    "job_target",
    "job_state",
    "job_failed_step",
    "job_backup_id",
    "window",
    "frozen",
    "job_in_progress",
];

/// A header line, then one line per host; null is an empty cell.
pub fn hosts_csv(hosts: &[HostLine]) -> String {
    let mut out = csv_line(CSV_COLUMNS.iter().map(|c| c.to_string()));
    for host in hosts {
        out.push_str(&csv_line(csv_cells(host)));
    }
    out
}

fn csv_cells(h: &HostLine) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let job = h.last_job.as_ref();
    let job_text =
        |pick: fn(&super::rows::JobView) -> Option<String>| job.and_then(pick).unwrap_or_default();
    vec![
        h.host_id.clone(),
        h.tenant.clone(),
        labels_text(h, ";"),
        text(&h.version),
        h.online.to_string(),
        h.healthy.to_string(),
        text(&h.last_seen),
        h.migrations_pending.to_string(),
        text(&h.update),
        h.revoked.to_string(),
        text(&h.agent_version),
        text(&h.php_version),
        text(&h.git_tag),
        h.dirty.map(|d| d.to_string()).unwrap_or_default(),
        h.health_reasons.join(";"),
        job_text(|j| Some(j.id.clone())),
        job_text(|j| Some(j.kind.to_string())),
        job_text(|j| j.target.clone()),
        job_text(|j| Some(j.state.to_string())),
        job_text(|j| j.failed_step.clone()),
        job_text(|j| j.backup_id.clone()),
        h.window.as_ref().map(|w| w.text()).unwrap_or_default(),
        h.frozen.to_string(),
        h.job_in_progress.to_string(),
    ]
}

/// One RFC 4180 line (ending in `\n`): each cell made safe ([`safe::csv_cell`]: no raw control
/// characters, no formulas), then quoted when it holds a comma or a quote.
fn csv_line(cells: impl IntoIterator<Item = String>) -> String {
    let quoted: Vec<String> = cells
        .into_iter()
        .map(|cell| safe::csv_cell(&cell))
        .map(|cell| {
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell
            }
        })
        .collect();
    let mut line = quoted.join(",");
    line.push('\n');
    line
}

/// Aligned columns, one host a line; the reasons a host is unhealthy come last as they are long.
pub fn hosts_table(hosts: &[HostLine]) -> String {
    let headers = [
        "HOST",
        "TENANT",
        "VERSION",
        "UPDATE",
        "STATE",
        "MIGRATIONS",
        "LAST SEEN",
        "LAST JOB",
        "WINDOW",
        "HEALTH",
    ];
    let rows: Vec<Vec<String>> = hosts.iter().map(table_cells).collect();
    table(&headers, &rows)
}

fn table_cells(h: &HostLine) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let mut state = match (h.revoked, h.online, h.frozen) {
        (true, _, _) => "revoked",
        (false, true, false) => "online",
        (false, true, true) => "online,frozen",
        (false, false, false) => "offline",
        (false, false, true) => "offline,frozen",
    }
    .to_string();
    if h.job_in_progress && h.online {
        state.push_str(",job running");
    }
    let health = match (h.healthy, h.health_reasons.is_empty()) {
        (true, _) => "ok".to_string(),
        (false, true) => "unhealthy".to_string(),
        (false, false) => h.health_reasons.join("; "),
    };
    vec![
        h.host_id.clone(),
        non_empty_or_dash(&h.tenant),
        dash(&h.version),
        dash(&h.update),
        state,
        if h.migrations_pending { "pending" } else { "-" }.to_string(),
        dash(&h.last_seen),
        job_summary(h),
        window_cell(h),
        health,
    ]
}

/// `0 22 * * * 4h Europe/Paris (open)`, or `-` when updates may start any time.
fn window_cell(h: &HostLine) -> String {
    match &h.window {
        None => "-".to_string(),
        Some(w) if w.open_now => format!("{} (open)", w.text()),
        Some(w) => w.text(),
    }
}

/// `update 1.6.10 rolled_back (failed at migrate)`, or `-`.
fn job_summary(h: &HostLine) -> String {
    let Some(job) = &h.last_job else {
        return "-".to_string();
    };
    let mut text = job.kind.to_string();
    if let Some(target) = &job.target {
        text.push(' ');
        text.push_str(target);
    }
    text.push(' ');
    text.push_str(job.state);
    if let Some(step) = &job.failed_step {
        text.push_str(&format!(" (at {step})"));
    }
    text
}

/// `report` in a table: the hosts, then how many hosts run each version.
pub fn report_table(latest: &str, hosts: &[HostLine], versions: &[(String, u64)]) -> String {
    let mut out = hosts_table(hosts);
    out.push('\n');
    out.push_str(&format!("latest: {}\n", non_empty_or_dash(latest)));
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|(version, count)| vec![version.clone(), count.to_string()])
        .collect();
    out.push_str(&table(&["VERSION", "HOSTS"], &rows));
    out
}

/// Version counts newest release first; names that are not releases ("unknown") last.
pub fn sort_versions(versions: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut pairs: Vec<(String, u64)> = versions.into_iter().collect();
    pairs.sort_by_cached_key(|(name, _)| {
        let release = parse_release(name).ok();
        (release.is_none(), release.map(Reverse), name.clone())
    });
    pairs
}

fn labels_text(h: &HostLine, sep: &str) -> String {
    let pairs: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(sep)
}

fn non_empty_or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

/// Left-aligned columns two spaces apart, without trailing spaces. Every cell is shown through
/// [`safe::text`]: one row per line, whatever the cells hold.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| safe::text(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rows::fixtures::{bare_row, full_row};
    use super::*;
    use serde_json::{json, Value};

    fn views() -> Vec<HostLine> {
        vec![HostLine::from(&full_row()), HostLine::from(&bare_row())]
    }

    #[test]
    fn report_json_is_one_object_with_stable_fields() {
        let versions = sort_versions([("1.6.9".to_string(), 1), ("unknown".to_string(), 1)]);
        let value: Value =
            serde_json::from_str(&report_json("1.6.10", "operator", &views(), &versions, ""))
                .unwrap();
        assert_eq!(value["latest"], "1.6.10");
        assert_eq!(value["latest_source"], "operator");
        assert_eq!(value["versions"], json!({"1.6.9": 1, "unknown": 1}));
        let full = &value["hosts"][0];
        assert_eq!(
            *full,
            json!({
                "host_id": "web-1", "tenant": "acme", "labels": {"env": "prod"},
                "version": "1.6.9", "online": true, "healthy": true,
                "last_seen": "2023-11-14T22:13:20Z", "migrations_pending": false,
                "update": "patch", "health_reasons": [], "revoked": false,
                "agent_version": "0.1.0", "php_version": "8.2.7", "git_tag": "v1.6.9",
                "dirty": false,
                "last_job": {
                    "id": "job-7", "kind": "update", "target": "1.6.9", "state": "rolled_back",
                    "failed_step": "migrate", "backup_id": "bk-1", "config_changes": ["app.php"],
                    "reason": null
                },
                "window": {
                    "cron": "0 22 * * *", "duration": "4h", "tz": "Europe/Paris",
                    "source": "tenant", "open_now": false, "next_open": "2023-11-15T21:00:00Z"
                },
                "frozen": false, "job_in_progress": false
            })
        );
        let bare = &value["hosts"][1];
        for field in [
            "version",
            "last_seen",
            "update",
            "agent_version",
            "git_tag",
            "dirty",
            "last_job",
            "window",
        ] {
            assert_eq!(bare[field], Value::Null, "{field}");
        }
        assert_eq!(bare["health_reasons"], json!(["never reported"]));
    }

    #[test]
    fn report_json_latest_is_null_when_unknown() {
        let value: Value =
            serde_json::from_str(&report_json("", "", &[], &[], "2026-12-02T15:00:00Z")).unwrap();
        assert_eq!(value["stale_since"], "2026-12-02T15:00:00Z");
        assert_eq!(
            value,
            json!({"latest": null, "latest_source": null, "hosts": [], "versions": {},
                "stale_since": "2026-12-02T15:00:00Z"})
        );
    }

    #[test]
    fn hosts_json_wraps_rows() {
        let value: Value = serde_json::from_str(&hosts_json(&views(), "")).unwrap();
        assert_eq!(value["stale_since"], serde_json::Value::Null);
        assert_eq!(value["hosts"].as_array().unwrap().len(), 2);
        assert_eq!(value["hosts"][1]["host_id"], "db-2");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_host() {
        let mut hosts = views();
        hosts[1].labels.insert("note".into(), "a,\"b\"".into());
        let text = hosts_csv(&hosts);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "web-1,acme,env=prod,1.6.9,true,true,2023-11-14T22:13:20Z,false,patch,false,0.1.0,\
             8.2.7,v1.6.9,false,,job-7,update,1.6.9,rolled_back,migrate,bk-1,\
             0 22 * * * 4h Europe/Paris,false,false"
        );
        assert_eq!(
            lines[2],
            "db-2,,\"note=a,\"\"b\"\"\",,false,false,,false,,false,,,,,never reported,,,,,,,,false,false"
        );
    }

    #[test]
    fn table_aligns_columns_and_marks_nulls() {
        let text = hosts_table(&views());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("HOST   TENANT  VERSION  UPDATE  STATE"),
            "{text}"
        );
        assert!(
            lines[1].contains("update 1.6.9 rolled_back (at migrate)  0 22 * * * 4h Europe/Paris"),
            "{text}"
        );
        assert!(
            lines[0].contains("LAST JOB                               WINDOW"),
            "{text}"
        );
        assert!(lines[1].ends_with("  ok"), "{text}");
        assert!(
            lines[2].starts_with("db-2   -       -        -       offline"),
            "{text}"
        );
        assert!(lines[2].ends_with("never reported"), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
        let col = |line: &str| line.find("LAST SEEN").or_else(|| line.find("2023"));
        assert_eq!(col(lines[0]), col(lines[1]));
    }

    #[test]
    fn report_table_ends_with_version_summary() {
        let versions = sort_versions([
            ("unknown".to_string(), 1),
            ("1.6.9".to_string(), 2),
            ("1.10.0".to_string(), 1),
        ]);
        let text = report_table("1.10.0", &views(), &versions);
        assert!(
            text.ends_with("latest: 1.10.0\nVERSION  HOSTS\n1.10.0   1\n1.6.9    2\nunknown  1\n"),
            "{text}"
        );
    }
}
