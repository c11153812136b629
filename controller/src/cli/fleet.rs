//! `boltfleet hosts` and `boltfleet report`: fleet-wide listings.

use boltfleet_common::proto::{FleetReportRequest, ListHostsRequest};

use super::args::{Format, HostsArgs, ReportArgs};
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;
use super::render;
use super::rows::HostView;
use super::write_output;

/// One row per host the controller knows.
pub async fn hosts(conn: &Connection, args: HostsArgs) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let response = call("list hosts", admin.list_hosts(ListHostsRequest {})).await?;
    let hosts: Vec<HostView> = response.hosts.iter().map(HostView::from).collect();
    write_output(
        args.format,
        &match args.format {
            Format::Table => render::hosts_table(&hosts),
            Format::Json => render::hosts_json(&hosts),
            Format::Csv => render::hosts_csv(&hosts),
        },
    )
}

/// The hosts with their available updates, then how many hosts run each version.
pub async fn report(conn: &Connection, args: ReportArgs) -> Result<(), CliError> {
    let request = FleetReportRequest {
        latest: args.latest.map(|v| v.to_string()).unwrap_or_default(),
    };
    let mut admin = connect(conn).await?;
    let response = call("fleet report", admin.fleet_report(request)).await?;
    let hosts: Vec<HostView> = response.hosts.iter().map(HostView::from).collect();
    let versions = render::sort_versions(response.versions);
    let latest = response.latest.as_str();
    write_output(
        args.format,
        &match args.format {
            Format::Table => render::report_table(latest, &hosts, &versions),
            Format::Json => render::report_json(latest, &hosts, &versions),
            Format::Csv => render::hosts_csv(&hosts),
        },
    )
}
