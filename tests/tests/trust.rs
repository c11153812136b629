//! End to end: who may talk to the controller. Enrollment rejections, roles kept apart, and
//! clients without a certificate or with one from another CA refused.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use boltfleet_common::identity::Identity;
use boltfleet_common::pki::CertificateAuthority;
use boltfleet_common::proto::admin_service_client::AdminServiceClient;
use boltfleet_common::proto::agent_service_client::AgentServiceClient;
use boltfleet_common::proto::{AgentMessage, Hello, ListHostsRequest};
use boltfleet_common::tls::{self, ClientTls};
use boltfleet_tests::cluster::{run, Agent, Controller};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn agent_for(base: &Path, ctl: &Controller, name: &str) -> Result<Agent> {
    Agent::configure(
        &base.join(name),
        &ctl.url,
        "",
        Path::new("/nonexistent/passbolt"),
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn enrollment_refuses_reused_tokens_foreign_csrs_and_wrong_pins() -> Result<()> {
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let token = ctl.token("web1", "acme")?;

    // A CSR for another host id than the token's: refused, nothing stored, token still good.
    let impostor = agent_for(base.path(), &ctl, "impostor")?;
    let out = impostor.enroll(&ctl, &token, &["--host-id", "web2"])?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spiffe://boltfleet/agent/web1"),
        "{}",
        stderr(&out)
    );
    assert!(!impostor.state_dir.join("agent.key").exists());

    // A pin of another CA: the TLS handshake fails before the token is sent.
    let other = CertificateAuthority::generate()?;
    let other = CertificateAuthority::load(&other.cert_pem, &other.key_pem)?;
    let wrong_pin = agent_for(base.path(), &ctl, "wrongpin")?;
    let out = run(
        std::process::Command::new(boltfleet_tests::cluster::bin("boltfleet-agent"))
            .args([
                "enroll",
                "--controller",
                &ctl.url,
                "--ca-pin",
                &other.fingerprint(),
                "--config",
            ])
            .arg(&wrong_pin.config)
            .env("BOLTFLEET_JOIN_TOKEN", &token),
    )?;
    assert!(!out.status.success());
    assert!(!wrong_pin.state_dir.join("agent.crt").exists());

    // The right host enrolls: key 0600 beside its certificate.
    let web1 = agent_for(base.path(), &ctl, "web1")?;
    let out = web1.enroll(&ctl, &token, &[])?;
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    for file in ["agent.key", "agent.crt"] {
        let mode = std::fs::metadata(web1.state_dir.join(file))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // The token works once.
    let again = agent_for(base.path(), &ctl, "again")?;
    let out = again.enroll(&ctl, &token, &[])?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already used"), "{}", stderr(&out));

    // A made-up token of the right shape is unknown.
    let fake = format!("bf1.web9.{}", "0".repeat(64));
    let out = agent_for(base.path(), &ctl, "fake")?.enroll(&ctl, &fake, &[])?;
    assert!(stderr(&out).contains("unknown"), "{}", stderr(&out));

    // The audit log saw the token and the enrollment, never the token itself.
    let store_files = walk(&ctl.dir.join("state"));
    for file in store_files {
        let bytes = std::fs::read(&file)?;
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token[9..]),
            "token stored in {}",
            file.display()
        );
    }
    Ok(())
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn roles_are_kept_apart_and_strangers_are_refused() -> Result<()> {
    boltfleet_common::tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let web1 = agent_for(base.path(), &ctl, "web1")?;
    assert!(web1
        .enroll(&ctl, &ctl.token("web1", "acme")?, &[])?
        .status
        .success());

    // The agent's certificate used with the operator CLI: permission denied.
    let out = run(ctl
        .cli()
        .env("BOLTFLEET_CERT", web1.state_dir.join("agent.crt"))
        .env("BOLTFLEET_KEY", web1.state_dir.join("agent.key"))
        .arg("hosts"))?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("permission"),
        "{}",
        stderr(&out)
    );

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // The operator's certificate on the agent service: permission denied.
        let channel = tls::connect(&ctl.url, &ctl.operator_tls()).await?;
        let hello = AgentMessage {
            msg: Some(boltfleet_common::proto::agent_message::Msg::Hello(
                Hello::default(),
            )),
        };
        let status = AgentServiceClient::new(channel)
            .connect(tokio_stream_once(hello))
            .await
            .expect_err("operator acting as agent");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");

        // No client certificate: the admin service refuses.
        let ca = read(ctl.dir.join("ca.crt"));
        let channel = Endpoint::from_shared(ctl.url.clone())?
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca)))?
            .connect()
            .await?;
        let status = AdminServiceClient::new(channel)
            .list_hosts(ListHostsRequest::default())
            .await
            .expect_err("no certificate");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");

        // A certificate from another CA: the handshake or the first call fails.
        let other = CertificateAuthority::generate()?;
        let other = CertificateAuthority::load(&other.cert_pem, &other.key_pem)?;
        let mallory = other.issue(
            &Identity::operator("alice")?,
            &[],
            Duration::from_secs(3600),
        )?;
        let stranger = ClientTls::Mutual {
            ca_pem: ca.clone(),
            cert_pem: mallory.cert_pem,
            key_pem: mallory.key_pem,
        };
        let refused = match tls::connect(&ctl.url, &stranger).await {
            Err(_) => true,
            Ok(channel) => AdminServiceClient::new(channel)
                .list_hosts(ListHostsRequest::default())
                .await
                .is_err(),
        };
        assert!(refused, "a certificate from another CA must be refused");

        // And the real operator gets through.
        let channel = tls::connect(&ctl.url, &ctl.operator_tls()).await?;
        let hosts = AdminServiceClient::new(channel)
            .list_hosts(ListHostsRequest::default())
            .await?
            .into_inner()
            .hosts;
        assert_eq!(hosts.len(), 1);
        anyhow::Ok(())
    })
}

fn tokio_stream_once(
    message: AgentMessage,
) -> impl tonic::codegen::tokio_stream::Stream<Item = AgentMessage> {
    tonic::codegen::tokio_stream::iter(vec![message])
}

#[test]
fn enrollment_attempts_are_rate_limited_and_oversized_messages_refused() -> Result<()> {
    boltfleet_common::tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let web1 = agent_for(base.path(), &ctl, "web1")?;
    assert!(web1
        .enroll(&ctl, &ctl.token("web1", "acme")?, &[])?
        .status
        .success());
    let agent_tls = ClientTls::Mutual {
        ca_pem: read(web1.state_dir.join("ca.crt")),
        cert_pem: read(web1.state_dir.join("agent.crt")),
        key_pem: read(web1.state_dir.join("agent.key")),
    };

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        use boltfleet_common::proto::enroll_service_client::EnrollServiceClient;
        use boltfleet_common::proto::EnrollRequest;
        // Guessing tokens: after a burst, attempts from one address are refused outright.
        let channel = tls::connect(
            &ctl.url,
            &ClientTls::Pinned {
                pin: ctl.pin.clone(),
            },
        )
        .await?;
        let mut enroll = EnrollServiceClient::new(channel);
        let mut codes = Vec::new();
        let started = std::time::Instant::now();
        for i in 0..40 {
            let request = EnrollRequest {
                token: format!("bf1.web9.{:064x}", i),
                csr_pem: String::new(),
            };
            codes.push(
                enroll
                    .enroll(request)
                    .await
                    .expect_err("bogus token")
                    .code(),
            );
        }
        // The bucket holds 20 attempts (web1's enrollment took one) and gains one every 3 s
        // (the default limits): on a loaded machine the 40 attempts take long enough for a few
        // more to get through.
        let refilled = started.elapsed().as_secs() / 3 + 1;
        assert!(
            codes[..19]
                .iter()
                .all(|c| *c == tonic::Code::PermissionDenied),
            "{codes:?}"
        );
        let through = codes
            .iter()
            .filter(|c| **c == tonic::Code::PermissionDenied)
            .count() as u64;
        assert!(through <= 19 + refilled, "{through} let through: {codes:?}");
        assert!(
            codes.iter().all(|c| matches!(
                c,
                tonic::Code::PermissionDenied | tonic::Code::ResourceExhausted
            )),
            "{codes:?}"
        );
        assert_eq!(codes[39], tonic::Code::ResourceExhausted, "{codes:?}");

        // A message far over the size limit ends the call; the controller keeps serving.
        let channel = tls::connect(&ctl.url, &agent_tls).await?;
        let huge = AgentMessage {
            msg: Some(boltfleet_common::proto::agent_message::Msg::Hello(Hello {
                agent_version: "x".repeat(2 * 1024 * 1024),
                last_job: None,
            })),
        };
        let mut client = AgentServiceClient::new(channel.clone());
        let refused = match client.connect(tokio_stream_once(huge)).await {
            Err(_) => true,
            // Accepted, the stream would stay open and silent: that is the failure.
            Ok(response) => matches!(
                tokio::time::timeout(Duration::from_secs(10), response.into_inner().message())
                    .await,
                Ok(Err(_))
            ),
        };
        assert!(refused, "a 2 MiB message must be refused");
        let channel = tls::connect(&ctl.url, &ctl.operator_tls()).await?;
        let hosts = AdminServiceClient::new(channel)
            .list_hosts(ListHostsRequest::default())
            .await?
            .into_inner()
            .hosts;
        assert_eq!(hosts[0].host_id, "web1");
        assert!(
            hosts[0].inventory.is_none()
                || hosts[0].inventory.as_ref().unwrap().agent_version.len() < 1024
        );
        anyhow::Ok(())
    })
}
