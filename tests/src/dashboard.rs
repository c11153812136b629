//! The web dashboard as tests and the demo run it: the real `boltfleet ui` process on a free
//! loopback port, with some operator's certificate, and the address (with its token) it prints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cluster::{bin, eventually, run, Controller, Proc};

/// A running `boltfleet ui`.
pub struct Dashboard {
    /// `http://127.0.0.1:PORT/?token=...`, as printed.
    pub login_url: String,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    pub proc: Proc,
}

/// An operator's certificate files, as `boltfleet-controller operator-cert` writes them.
#[derive(Debug, Clone)]
pub struct OperatorFiles {
    pub name: String,
    pub dir: PathBuf,
}

impl OperatorFiles {
    /// The harness's admin, `alice`.
    pub fn alice(ctl: &Controller) -> Self {
        Self {
            name: "alice".into(),
            dir: ctl.dir.join("operator"),
        }
    }

    /// A new operator `name` with `role` over every tenant.
    pub fn issue(ctl: &Controller, name: &str, role: &str) -> Result<Self> {
        let dir = ctl.dir.join(format!("ops-{name}"));
        let mut cmd = Command::new(bin("boltfleet-controller"));
        cmd.args(["operator-cert", "--name", name, "--role", role]);
        if role != "admin" {
            cmd.arg("--all-tenants");
        }
        cmd.arg("--data-dir").arg(&ctl.dir).arg("--out").arg(&dir);
        let out = run(&mut cmd)?;
        if !out.status.success() {
            bail!(
                "operator-cert {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            name: name.into(),
            dir,
        })
    }

    /// The `boltfleet` CLI with this operator's certificate.
    pub fn cli(&self, ctl: &Controller) -> Command {
        let file = |ext: &str| self.dir.join(format!("{}.{ext}", self.name));
        let mut cmd = Command::new(bin("boltfleet"));
        cmd.env_remove("HOME")
            .env("BOLTFLEET_CONTROLLER", &ctl.url)
            .env("BOLTFLEET_CA", self.dir.join("ca.crt"))
            .env("BOLTFLEET_CERT", file("crt"))
            .env("BOLTFLEET_KEY", file("key"));
        cmd
    }
}

impl Dashboard {
    /// Starts `boltfleet ui --listen 127.0.0.1:0` as `operator`, logging into `log_dir`, and
    /// waits for the address it prints.
    pub fn start(ctl: &Controller, operator: &OperatorFiles, log_dir: &Path) -> Result<Self> {
        let mut cmd = operator.cli(ctl);
        cmd.args(["ui", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info,boltfleet_controller=debug");
        let log = log_dir.join(format!("ui-{}.log", operator.name));
        let mut proc = Proc::spawn(&format!("ui {}", operator.name), cmd, &log)?;
        let login_url = eventually("the dashboard's address", Duration::from_secs(20), || {
            if !proc.is_running() {
                return Some(Err(anyhow::anyhow!(
                    "boltfleet ui exited: {}",
                    proc.log_text()
                )));
            }
            proc.log_text()
                .lines()
                .find(|l| l.starts_with("http://"))
                .map(|l| Ok(l.trim().to_string()))
        })??;
        let origin = login_url
            .split_once("/?")
            .map(|(o, _)| o.to_string())
            .unwrap_or_else(|| login_url.clone());
        Ok(Self {
            login_url,
            origin,
            proc,
        })
    }

    /// `host:port` of the dashboard.
    pub fn authority(&self) -> &str {
        self.origin.trim_start_matches("http://")
    }
}
