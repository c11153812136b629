//! The `boltfleet` binary against a real AdminService over mTLS on loopback: rollout start
//! prints only the id, status JSON, plan, windows and freezes in `hosts`, the audit log.
//! The agent side is played in-process (enrolled, reporting, registered online).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::identity::{HostId, Identity};
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::admin_service_server::AdminServiceServer;
use boltfleet_common::proto::{Health, Inventory};
use boltfleet_common::tls;
use boltfleet_controller::accept;
use boltfleet_controller::app::{App, NewToken};
use boltfleet_controller::ca::{self, DataDir};
use boltfleet_controller::services::admin::Admin;
use boltfleet_controller::state::State;
use serde_json::Value;
use tokio::net::TcpListener;

struct Cli {
    url: String,
    ops: PathBuf,
}

impl Cli {
    /// Runs `boltfleet ARGS`: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let ops = |f: &str| self.ops.join(f).to_string_lossy().into_owned();
        let out = Command::new(env!("CARGO_BIN_EXE_boltfleet"))
            .args(["--controller", &self.url, "--ca", &ops("ca.crt")])
            .args(["--cert", &ops("alice.crt"), "--key", &ops("alice.key")])
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run boltfleet");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (args, cli) = (
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            self.clone(),
        );
        let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&refs)
        })
        .await
        .unwrap();
        assert_eq!(code, 0, "{stderr}");
        stdout
    }
}

impl Clone for Cli {
    fn clone(&self) -> Self {
        Cli {
            url: self.url.clone(),
            ops: self.ops.clone(),
        }
    }
}

/// An App on an initialized data dir, with `hosts` enrolled, reporting 1.3.0 healthy, online.
fn app_with_hosts(dir: &Path, hosts: &[&str]) -> (Arc<App>, Vec<impl Sized>) {
    let state = State::open(&DataDir::new(dir).store()).unwrap();
    let app = App::open(state, ca::load_ca(dir).unwrap(), Duration::from_secs(3600));
    let mut streams = Vec::new();
    for id in hosts {
        let req = NewToken {
            host_id: id.to_string(),
            tenant: "acme".into(),
            labels: Default::default(),
            ttl: Duration::from_secs(60),
        };
        let now = jiff::Timestamp::now();
        let (token, _) = app.create_token("alice", req, now).unwrap();
        let host = HostId::new(id).unwrap();
        let csr = new_csr(&Identity::Agent(host.clone())).unwrap().0;
        app.enroll(&token, &csr, now).unwrap();
        let inventory = Inventory {
            passbolt_version: "1.3.0".into(),
            health: Some(Health {
                healthy: true,
                ..Health::default()
            }),
            ..Inventory::default()
        };
        app.record_report(&host, inventory, now).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        streams.push((app.registry().register(&host, tx), rx));
    }
    (app, streams)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_start_follow_and_steer_rollouts_from_the_cli() {
    tls::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ca::init(&dir, &[]).unwrap();
    let ops = tmp.path().join("ops");
    ca::operator_cert(
        &dir,
        "alice",
        &boltfleet_common::grant::Grant::legacy(),
        &ops,
    )
    .unwrap();
    let (app, _streams) = app_with_hosts(&dir, &["web1", "web2"]);

    let (chain, key) = ca::load_server_identity(&dir).unwrap();
    let tls = tls::server_config(ca::load_ca(&dir).unwrap().cert_pem(), &chain, &key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServiceServer::new(Admin::new(app.clone())))
            .serve_with_incoming_shutdown(
                accept::spawn(
                    listener,
                    tls,
                    accept::AcceptLimits::from(&boltfleet_controller::limits::Limits::default()),
                    Default::default(),
                ),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );
    let cli = Cli { url, ops };
    let spec = [
        "--to",
        "1.3.2",
        "--waves",
        "1,100%",
        "--max-parallel",
        "1",
        "--max-failures",
        "0",
    ];

    let plan: Value = serde_json::from_str(
        &cli.ok(&[&["rollout", "plan"], &spec[..], &["--format", "json"]].concat())
            .await,
    )
    .unwrap();
    assert_eq!(plan["waves"][0]["hosts"][0]["host_id"], "web1");
    assert_eq!(plan["waves"][1]["hosts"][0]["update"], "patch");
    assert!(
        app.state().rollouts().unwrap().is_empty(),
        "a plan starts nothing"
    );

    let stdout = cli.ok(&[&["rollout", "start"], &spec[..]].concat()).await;
    let id = stdout.trim_end_matches('\n');
    assert_eq!(stdout, format!("{id}\n"), "only the id on stdout");
    assert!(app.rollout(id).is_ok());

    let status: Value =
        serde_json::from_str(&cli.ok(&["rollout", "status", id, "--format", "json"]).await)
            .unwrap();
    assert_eq!(
        (status["id"].as_str(), status["state"].as_str()),
        (Some(id), Some("running"))
    );
    assert_eq!(status["reason"], Value::Null);
    assert_eq!(status["waves"][1]["hosts"][0]["state"], "pending");

    assert_eq!(
        cli.ok(&["rollout", "pause", id, "--reason", "lunch"]).await,
        ""
    );
    let list = cli.ok(&["rollout", "list"]).await;
    assert!(
        list.contains("paused") && list.contains("by operator alice: lunch"),
        "{list}"
    );
    let (code, _, stderr) = tokio::task::spawn_blocking({
        let (cli, id) = (cli.clone(), id.to_string());
        move || cli.run(&["rollout", "watch", &id])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "a paused rollout ends the watch with 1: {stderr}");
    cli.ok(&["rollout", "abort", id, "--rollback"]).await;

    cli.ok(&[
        "window",
        "set",
        "--tenant",
        "acme",
        "--cron",
        "0 22 * * *",
        "--duration",
        "4h",
        "--tz",
        "Europe/Paris",
    ])
    .await;
    cli.ok(&["freeze", "on", "--tenant", "acme"]).await;
    let hosts: Value = serde_json::from_str(&cli.ok(&["hosts", "--format", "json"]).await).unwrap();
    assert_eq!(hosts["hosts"][0]["window"]["tz"], "Europe/Paris");
    assert_eq!(hosts["hosts"][0]["frozen"], true);
    let table = cli.ok(&["hosts"]).await;
    assert!(
        table.contains("WINDOW") && table.contains("0 22 * * * 4h Europe/Paris"),
        "{table}"
    );

    let audit = cli.ok(&["audit"]).await;
    for action in [
        "rollout.start",
        "rollout.pause",
        "rollout.abort",
        "window.set",
        "freeze.on",
    ] {
        let line = audit
            .lines()
            .find(|l| l.contains(action))
            .unwrap_or_else(|| panic!("{action} missing:\n{audit}"));
        assert!(line.contains("operator alice"), "{line}");
    }

    // Bad values fail before any connection, naming the flag, with 64.
    let (code, _, stderr) = cli.run(&[
        "rollout",
        "start",
        "--to",
        "1.3.2",
        "--waves",
        "1,10%",
        "--max-parallel",
        "1",
        "--max-failures",
        "0",
    ]);
    assert_eq!(code, 64);
    assert!(stderr.contains("--waves"), "{stderr}");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
