//! Certificates for the simulated agents, signed by the controller's CA: the load generator
//! issues itself an operator certificate from the CA in the data directory, then enrolls the
//! agents in bulk through the controller's `EnrollHosts`, as a provisioning tool would.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::admin_service_client::AdminServiceClient;
use boltfleet_common::proto::{EnrollHostsRequest, HostCsr};
use boltfleet_common::tls::{self, ClientTls};
use boltfleet_controller::ca::{self, DataDir};

use super::Args;

/// Hosts per `EnrollHosts` call (the controller takes at most 1000).
const BATCH: usize = 1000;

/// One simulated agent's identity.
pub struct AgentIdentity {
    pub tls: ClientTls,
}

/// The URL of the controller serving `data_dir` (it writes its bound address there).
pub fn controller_url(data_dir: &Path) -> anyhow::Result<String> {
    let file = DataDir::new(data_dir).listen_addr_file();
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{}: is the controller running? (or pass --controller)",
            file.display()
        )
    })?;
    let addr: std::net::SocketAddr = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not an address", file.display()))?;
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    Ok(format!("https://{ip}:{}", addr.port()))
}

/// Enrolls `args.agents` hosts and returns their identities, in host order.
pub async fn enroll(args: &Args, url: &str) -> anyhow::Result<Vec<AgentIdentity>> {
    let ca = ca::load_ca(&args.data_dir)?;
    let operator = ca.issue(
        &Identity::operator("loadgen")?,
        &[],
        Duration::from_secs(24 * 3600),
    )?;
    let ca_pem = ca.cert_pem().to_string();
    let admin_tls = ClientTls::Mutual {
        ca_pem: ca_pem.clone(),
        cert_pem: operator.cert_pem,
        key_pem: operator.key_pem,
    };
    let mut admin = AdminServiceClient::new(tls::connect(url, &admin_tls).await?)
        .max_decoding_message_size(16 * 1024 * 1024);
    let mut agents = Vec::with_capacity(args.agents);
    let ids: Vec<usize> = (0..args.agents).collect();
    for chunk in ids.chunks(BATCH) {
        let prefix = args.host_prefix.clone();
        let tenants = args.tenants;
        let chunk = chunk.to_vec();
        // Key generation is CPU work: off the async threads.
        let keyed = tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|i| {
                    let host = HostId::new(&format!("{prefix}{i:05}"))?;
                    let (csr, key) = new_csr(&Identity::Agent(host.clone()))?;
                    let entry = HostCsr {
                        host_id: host.to_string(),
                        tenant: format!("tenant{:04}", i % tenants),
                        labels: [("env".to_string(), "load".to_string())].into(),
                        csr_pem: csr,
                    };
                    Ok::<_, anyhow::Error>((host, key, entry))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        let request = EnrollHostsRequest {
            hosts: keyed.iter().map(|(_, _, entry)| entry.clone()).collect(),
        };
        let certs = admin
            .enroll_hosts(request)
            .await?
            .into_inner()
            .certificate_pem;
        if certs.len() != keyed.len() {
            bail!("controller signed {} of {} CSRs", certs.len(), keyed.len());
        }
        for ((_, key_pem, _), cert_pem) in keyed.into_iter().zip(certs) {
            agents.push(AgentIdentity {
                tls: ClientTls::Mutual {
                    ca_pem: ca_pem.clone(),
                    cert_pem,
                    key_pem,
                },
            });
        }
    }
    Ok(agents)
}
