//! Real etcd members for tests: an `etcd` process in a directory of its own on free loopback
//! ports, waited for until healthy, killed when dropped. The controller's unit tests use one
//! member; the end-to-end tests build their clusters of several from the same launcher
//! (`boltfleet_tests::etcd`, through the `testkit` feature), so there is one way to start etcd.
//!
//! A member started by a test that dies (a panic, `kill -9` of the test binary) or that lives
//! in a `static` (never dropped) does not outlive it: beside each member runs a watchdog shell
//! holding the read end of a pipe whose write end only this process has; when the process
//! ends, the kernel closes the pipe and the watchdog kills the member.
//!
//! The members bound their history as production ones should (README): periodic
//! auto-compaction, a backend quota. Everything else is etcd's default (`--max-txn-ops` 128,
//! `--max-request-bytes` 1.5 MiB), so the engine's limits are tested against the real ones.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a member may take to answer `/health` after it starts.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The backend quota of test members (production: see the README).
const QUOTA_BYTES: u64 = 256 * 1024 * 1024;

/// The etcd server binary, found on the PATH (Debian installs it in /usr/bin).
const ETCD: &str = "etcd";

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A directory for members' data: in memory (`/dev/shm`) where there is one, since etcd
/// syncs every write and the tests write a lot; the system's temp dir otherwise.
pub fn temp_dir() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("boltfleet-etcd-")
        .to_owned();
    match builder.tempdir_in(shm) {
        Ok(dir) if shm.is_dir() => Ok(dir),
        _ => Ok(builder.tempdir()?),
    }
}

/// One etcd member: its flags, and its process while it runs.
pub struct EtcdMember {
    name: String,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Plain HTTP `/health` (and `/metrics`), whatever the client URL's TLS.
    metrics_port: u16,
    /// Serve clients over TLS: CA, certificate and key files; clients must show a certificate
    /// signed by that CA.
    tls: Option<[PathBuf; 3]>,
    /// `name=peer-url,...` of every member of its cluster.
    initial_cluster: String,
    cluster_token: String,
    running: Option<Running>,
    /// A directory this member owns: removed when dropped, or by the watchdog.
    owned: Option<tempfile::TempDir>,
}

/// The member's process and its watchdog.
struct Running {
    etcd: Child,
    watchdog: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The watchdog first, so that it never kills a pid the system gave to someone else.
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

impl EtcdMember {
    /// The members of a new cluster of `n`, each in `base/<name>`, not started.
    pub fn cluster(base: &Path, n: usize) -> Result<Vec<EtcdMember>> {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let token = format!(
            "boltfleet-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("m{i}");
            members.push(EtcdMember {
                dir: base.join(&name),
                name,
                client_port: free_port()?,
                peer_port: free_port()?,
                metrics_port: free_port()?,
                tls: None,
                initial_cluster: String::new(),
                cluster_token: token.clone(),
                running: None,
                owned: None,
            });
        }
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        for member in &mut members {
            member.initial_cluster = initial.join(",");
        }
        Ok(members)
    }

    /// A one-member cluster in a temp dir of its own ([`temp_dir`]), started and healthy.
    /// Tries fresh ports again when the first ones were taken meanwhile.
    pub fn single() -> Result<EtcdMember> {
        let mut last = None;
        for _ in 0..3 {
            let dir = temp_dir()?;
            let mut member = Self::cluster(dir.path(), 1)?.remove(0);
            member.owned = Some(dir);
            match member
                .start()
                .and_then(|()| member.wait_healthy(START_TIMEOUT))
            {
                Ok(()) => return Ok(member),
                Err(err) => last = Some(err),
            }
        }
        Err(last.expect("tried at least once"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client URL, as the engine's endpoints name it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// From the next start, serves clients over TLS with `cert` and `key` and asks them for a
    /// certificate signed by `ca` (`--client-cert-auth`). The certificate names 127.0.0.1.
    pub fn serve_tls(&mut self, ca: &Path, cert: &Path, key: &Path) {
        self.tls = Some([ca.into(), cert.into(), key.into()]);
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The member's log (every start appends to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The end of the member's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Starts the process (its data dir is kept between starts); does not wait for it.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let client = self.endpoint();
        let peer = self.peer_url();
        let metrics = format!("http://127.0.0.1:{}", self.metrics_port);
        let mut command = Command::new(ETCD);
        if let Some([ca, cert, key]) = &self.tls {
            command
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key)
                .arg("--client-cert-auth");
        }
        let mut etcd = command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-metrics-urls", &metrics])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.cluster_token])
            .args(["--initial-cluster-state", "new"])
            .args(["--auto-compaction-mode", "periodic"])
            .args(["--auto-compaction-retention", "1h"])
            .arg(format!("--quota-backend-bytes={QUOTA_BYTES}"))
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!(
                    "etcd is not installed: run scripts/ensure-deps.sh (Debian's etcd-server)"
                ),
                _ => anyhow::Error::new(err).context(format!("start etcd member {}", self.name)),
            })?;
        let watchdog = match self.watchdog(etcd.id()) {
            Ok(watchdog) => watchdog,
            Err(err) => {
                let _ = etcd.kill();
                let _ = etcd.wait();
                return Err(err);
            }
        };
        self.running = Some(Running { etcd, watchdog });
        Ok(())
    }

    /// A shell that waits for this process's end (its stdin closing) and then kills `pid`
    /// and removes the directory this member owns.
    fn watchdog(&self, pid: u32) -> Result<Child> {
        let owned = self
            .owned
            .as_ref()
            .map(|d| d.path().display().to_string())
            .unwrap_or_default();
        Command::new("sh")
            .arg("-c")
            .arg(r#"read _; kill -9 "$1" 2>/dev/null; [ -z "$2" ] || rm -rf "$2""#)
            .arg("etcd-watchdog")
            .arg(pid.to_string())
            .arg(owned)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start the etcd member's watchdog (sh)")
    }

    /// Whether the process runs (it may not be healthy yet).
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            Some(running) => matches!(running.etcd.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits until the member answers `/health` with a leader, within `timeout`.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                bail!(
                    "etcd member {} is not running; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd member {} not healthy within {timeout:?}; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `/health` says true (the member is up and its cluster has a leader).
    pub fn healthy(&self) -> bool {
        let ask = || -> std::io::Result<String> {
            let addr = (Ipv4Addr::LOCALHOST, self.metrics_port).into();
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        };
        ask().is_ok_and(|answer| answer.replace(' ', "").contains(r#""health":"true""#))
    }

    /// SIGTERM, and waits for the process to end (SIGKILL after 20 s).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        let pid = running.etcd.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while running.etcd.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("etcd member {} did not stop within 20s", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `kill -9`, the way a crash looks.
    pub fn kill(&mut self) {
        self.running = None;
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        // The process before the directory it writes in.
        self.running = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_starts_healthy_and_stops_and_its_dir_goes_with_it() {
        let mut member = EtcdMember::single().unwrap();
        assert!(member.healthy());
        let dir = member.owned.as_ref().unwrap().path().to_path_buf();
        assert!(dir.join("m0/data").is_dir(), "{}", dir.display());
        member.stop().unwrap();
        assert!(!member.is_running());
        assert!(!member.healthy());
        member.start().unwrap();
        member.wait_healthy(START_TIMEOUT).unwrap();
        member.kill();
        assert!(!member.healthy());
        drop(member);
        assert!(!dir.exists());
    }
}
