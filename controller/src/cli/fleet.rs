//! `boltfleet hosts` and `boltfleet report`: fleet-wide listings, fetched page by page.

use std::collections::HashMap;

use boltfleet_common::proto::{FleetReportRequest, HostRow, ListHostsRequest};

use super::args::{Format, HostsArgs, ReportArgs};
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;
use super::render;
use super::rows::HostLine;
use super::write_output;

/// Rows asked for per page (the controller may send fewer).
const PAGE_SIZE: u32 = 500;

/// One row per host the controller knows.
pub async fn hosts(conn: &Connection, args: HostsArgs) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let mut rows: Vec<HostRow> = Vec::new();
    let mut page_token = String::new();
    let mut stale = String::new();
    loop {
        let request = ListHostsRequest {
            page_size: PAGE_SIZE,
            page_token,
        };
        let page = call("list hosts", admin.list_hosts(request)).await?;
        rows.extend(page.hosts);
        stale = earliest(stale, page.stale_since);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let hosts: Vec<HostLine> = rows.iter().map(HostLine::from).collect();
    note_stale(args.format, &stale);
    write_output(
        args.format,
        &match args.format {
            Format::Table => render::hosts_table(&hosts),
            Format::Json => render::hosts_json(&hosts, &stale),
            Format::Csv => render::hosts_csv(&hosts),
        },
    )
}

/// The hosts with their available updates, then how many hosts run each version.
pub async fn report(conn: &Connection, args: ReportArgs) -> Result<(), CliError> {
    let latest = args.latest.map(|v| v.to_string()).unwrap_or_default();
    let mut admin = connect(conn).await?;
    let mut rows: Vec<HostRow> = Vec::new();
    let mut versions = HashMap::new();
    let mut page_token = String::new();
    let mut stale = String::new();
    let (latest, source) = loop {
        let request = FleetReportRequest {
            latest: latest.clone(),
            page_size: PAGE_SIZE,
            page_token,
        };
        let page = call("fleet report", admin.fleet_report(request)).await?;
        rows.extend(page.hosts);
        versions.extend(page.versions);
        stale = earliest(stale, page.stale_since);
        if page.next_page_token.is_empty() {
            break (page.latest, page.latest_source);
        }
        page_token = page.next_page_token;
    };
    let hosts: Vec<HostLine> = rows.iter().map(HostLine::from).collect();
    let versions = render::sort_versions(versions);
    let shown = match source.as_str() {
        "" => latest.clone(),
        source => format!("{latest} ({source})"),
    };
    note_stale(args.format, &stale);
    write_output(
        args.format,
        &match args.format {
            Format::Table => render::report_table(&shown, &hosts, &versions),
            Format::Json => render::report_json(&latest, &source, &hosts, &versions, &stale),
            Format::Csv => render::hosts_csv(&hosts),
        },
    )
}

/// The earlier of two `stale_since` of pages (RFC 3339 in UTC sorts as text; empty: fresh).
fn earliest(a: String, b: String) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => a.min(b),
    }
}

/// Under a table or CSV, the note that the rows may be stale goes to stderr (JSON carries it
/// as a field).
fn note_stale(format: Format, stale: &str) {
    if format != Format::Json {
        if let Some(note) = render::stale_note(stale) {
            eprintln!("{note}");
        }
    }
}
