//! `boltfleet cluster status`: the controllers sharing the store, who leads the scheduler,
//! and the store's health.

use boltfleet_common::proto::{ClusterStatusRequest, ClusterStatusResponse};

use super::args::{ClusterCommand, Format};
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;
use super::render::table;
use super::rows::rfc3339;
use super::write_output;

pub async fn run(conn: &Connection, command: ClusterCommand) -> Result<(), CliError> {
    let ClusterCommand::Status { format } = command;
    let mut admin = connect(conn).await?;
    let status = call(
        "read the cluster's status",
        admin.cluster_status(ClusterStatusRequest {}),
    )
    .await?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&json(&status)).expect("json") + "\n",
        Format::Table | Format::Csv => text(&status),
    };
    write_output(format, &text)
}

fn json(status: &ClusterStatusResponse) -> serde_json::Value {
    let controllers: Vec<serde_json::Value> = status
        .controllers
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name, "address": c.address, "agents": c.agents, "leader": c.leader,
                "started": rfc3339(c.started), "last_seen": rfc3339(c.last_seen),
                "version": c.version, "answering": c.answering,
            })
        })
        .collect();
    let members: Vec<serde_json::Value> = status
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "endpoint": m.endpoint, "healthy": m.healthy, "version": m.version,
                "db_size_bytes": m.db_size_bytes, "raft_leader": m.raft_leader,
                "error": (!m.error.is_empty()).then_some(&m.error),
            })
        })
        .collect();
    serde_json::json!({
        "engine": status.engine,
        "leader": (!status.leader.is_empty()).then_some(&status.leader),
        "controllers": controllers,
        "members": members,
    })
}

fn text(status: &ClusterStatusResponse) -> String {
    let yes = |b: bool| if b { "yes" } else { "" };
    let rows: Vec<Vec<String>> = status
        .controllers
        .iter()
        .map(|c| {
            let name = if c.answering {
                format!("{} (this one)", c.name)
            } else {
                c.name.clone()
            };
            vec![
                name,
                c.address.clone(),
                c.agents.to_string(),
                yes(c.leader).into(),
                rfc3339(c.last_seen).unwrap_or_default(),
                c.version.clone(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "CONTROLLER",
            "ADDRESS",
            "AGENTS",
            "LEADER",
            "LAST SEEN",
            "VERSION",
        ],
        &rows,
    );
    if status.leader.is_empty() {
        out.push_str("no controller leads the scheduler now\n");
    }
    out.push_str(&format!("\nstore: {}\n", status.engine));
    if !status.members.is_empty() {
        let rows: Vec<Vec<String>> = status
            .members
            .iter()
            .map(|m| {
                let health = if m.healthy {
                    "healthy".into()
                } else {
                    format!("unhealthy: {}", m.error)
                };
                let size = if m.healthy {
                    format!("{:.1} MiB", m.db_size_bytes as f64 / 1048576.0)
                } else {
                    String::new()
                };
                vec![
                    m.endpoint.clone(),
                    health,
                    m.version.clone(),
                    size,
                    yes(m.raft_leader).into(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["ETCD MEMBER", "HEALTH", "VERSION", "DB SIZE", "RAFT LEADER"],
            &rows,
        ));
    }
    out
}
