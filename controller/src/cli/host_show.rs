//! `boltfleet host show ID`: one host in full (list rows are summaries), and `host forget`.

use boltfleet_common::proto::{ForgetHostRequest, GetHostRequest, HostRow};
use serde_json::json;

use super::args::Format;
use super::client::{call, AdminClient};
use super::error::CliError;
use super::render;
use super::rows::HostLine;
use super::write_stdout;
use crate::door::escape_control;

/// Prints the host's row, then its whole inventory: checks, errors, disks, migrations.
pub async fn show(admin: &mut AdminClient, id: &str, format: Format) -> Result<(), CliError> {
    let request = GetHostRequest {
        host_id: id.to_string(),
    };
    let row = call(&format!("show host {id}"), admin.get_host(request)).await?;
    let view = HostLine::from(&row);
    write_stdout(&match format {
        Format::Json => json_of(&view, &row),
        Format::Table | Format::Csv => text_of(&view, &row),
    })
}

/// Removes a revoked host from the controller.
pub async fn forget(admin: &mut AdminClient, id: &str) -> Result<(), CliError> {
    let request = ForgetHostRequest {
        host_id: id.to_string(),
    };
    call(&format!("forget host {id}"), admin.forget_host(request)).await?;
    eprintln!("host {id} forgotten");
    Ok(())
}

/// The row's fields as in `hosts --format json`, plus `inventory`.
fn json_of(view: &HostLine, row: &HostRow) -> String {
    let mut value = serde_json::to_value(view).unwrap_or_default();
    let inv = row.inventory.clone().unwrap_or_default();
    let health = inv.health.unwrap_or_default();
    let migrations = inv.migrations.unwrap_or_default();
    value["inventory"] = json!({
        "passbolt_version": inv.passbolt_version,
        "version_file": inv.version_file,
        "newest_tag": inv.newest_tag,
        "git_head": inv.git.as_ref().map(|g| g.head.clone()),
        "checks": health.checks.iter().map(|c| json!({
            "source": c.source, "name": c.name, "status": c.status, "detail": c.detail,
        })).collect::<Vec<_>>(),
        "errors": inv.errors,
        "disks": inv.disks.iter().map(|d| json!({
            "role": d.role, "path": d.path, "free_bytes": d.free_bytes, "total_bytes": d.total_bytes,
        })).collect::<Vec<_>>(),
        "migrations": migrations.sections.iter().map(|s| json!({
            "name": s.name, "current": s.current, "latest": s.latest,
        })).collect::<Vec<_>>(),
        "migrations_error": migrations.error,
        "collected_at": inv.collected_at,
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// The row as `hosts` prints it, then the inventory, one escaped line per entry.
fn text_of(view: &HostLine, row: &HostRow) -> String {
    let mut out = render::hosts_table(std::slice::from_ref(view));
    let mut line = |label: &str, text: &str| {
        out.push_str(label);
        out.push_str(&escape_control(text, false));
        out.push('\n');
    };
    for reason in &view.health_reasons {
        line("reason: ", reason);
    }
    let inv = row.inventory.clone().unwrap_or_default();
    for error in &inv.errors {
        line("error: ", error);
    }
    for check in inv.health.map(|h| h.checks).unwrap_or_default() {
        let text = format!(
            "[{}] {} ({}) {}",
            check.status, check.name, check.source, check.detail
        );
        line("check: ", &text);
    }
    for disk in &inv.disks {
        let text = format!(
            "{} {} {} of {} bytes free",
            disk.role, disk.path, disk.free_bytes, disk.total_bytes
        );
        line("disk: ", &text);
    }
    if let Some(m) = inv.migrations {
        for s in &m.sections {
            line(
                "migrations: ",
                &format!("{} current {} latest {}", s.name, s.current, s.latest),
            );
        }
        if !m.error.is_empty() {
            line("migrations error: ", &m.error);
        }
    }
    out
}
