//! Each etcd endpoint's own status, asked of it alone (`boltfleet cluster status`).

use std::time::Duration;

use etcd_client::Client;

use super::EtcdEngine;

/// How long one endpoint may take to answer.
const ASK: Duration = Duration::from_secs(2);

/// What one endpoint said, or why it said nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub endpoint: String,
    pub version: String,
    pub db_size_bytes: u64,
    /// It is the raft leader.
    pub raft_leader: bool,
    /// Why it is not healthy (`None`: healthy).
    pub error: Option<String>,
}

impl EtcdEngine {
    /// Every configured endpoint's status, in the configured order.
    pub fn members(&self) -> Vec<MemberStatus> {
        let endpoints = self.inner.endpoints.clone();
        let connect = self.inner.connect.clone().with_connect_timeout(ASK);
        let asked = self
            .inner
            .bridge
            .call(ASK * 2 * endpoints.len() as u32, async move {
                let mut statuses = Vec::new();
                for endpoint in endpoints {
                    let status = tokio::time::timeout(ASK, ask(&endpoint, connect.clone())).await;
                    let status = status.unwrap_or_else(|_| Err("no answer within 2 s".into()));
                    statuses.push(match status {
                        Ok((version, db_size_bytes, raft_leader, errors)) => MemberStatus {
                            endpoint,
                            version,
                            db_size_bytes,
                            raft_leader,
                            error: (!errors.is_empty()).then(|| errors.join("; ")),
                        },
                        Err(why) => MemberStatus {
                            endpoint,
                            version: String::new(),
                            db_size_bytes: 0,
                            raft_leader: false,
                            error: Some(why),
                        },
                    });
                }
                Ok::<_, etcd_client::Error>(statuses)
            });
        asked.unwrap_or_default()
    }
}

/// Version, database size, raft leadership and alarms of the member at `endpoint`.
async fn ask(
    endpoint: &str,
    connect: etcd_client::ConnectOptions,
) -> Result<(String, u64, bool, Vec<String>), String> {
    let client = Client::connect([endpoint], Some(connect))
        .await
        .map_err(|err| err.to_string())?;
    let status = client
        .maintenance_client()
        .status()
        .await
        .map_err(|err| err.to_string())?;
    let member = status.header().map_or(0, |h| h.member_id());
    Ok((
        status.version().to_string(),
        u64::try_from(status.db_size()).unwrap_or(0),
        member != 0 && status.leader() == member,
        status.errors().to_vec(),
    ))
}
