//! Real processes for end-to-end tests: a controller, agents and the operator CLI, talking mTLS
//! on loopback, each in its own temp dir, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// Path of a workspace binary, built by `cargo test --workspace` (or `cargo build`) into the
/// target dir that holds the running executable (test executables live in its `deps/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable dir");
    let candidates = [dir.join(name), dir.parent().unwrap_or(dir).join(name)];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing beside {}: run `cargo test --workspace` or `cargo build --workspace --bins`",
                dir.display()
            )
        })
}

/// Polls `check` until it returns `Some` or `timeout` passes; the error says what was awaited.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawn {name}"))?;
        Ok(Self {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// `kill -9`, the way a crash looks.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = eventually(
            &format!("{} to exit", self.name),
            Duration::from_secs(20),
            || self.child.try_wait().ok().flatten(),
        )?;
        Ok(status.code())
    }

    /// Sends `sig` (as `kill` takes it: "-STOP", "-CONT") to the process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self.child.id().to_string();
        ensure!(
            run(Command::new("kill").args([sig, &pid]))?
                .status
                .success(),
            "kill {sig} {} failed",
            self.name
        );
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs a command to completion with no stdin.
pub fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))
}

/// A controller process with its data dir and an operator certificate.
pub struct Controller {
    pub dir: PathBuf,
    pub pin: String,
    pub url: String,
    pub addr: String,
    pub proc: Option<Proc>,
    restarts: usize,
    /// Body of a `[limits]` section to serve with (through a config file), if any.
    limits: Option<String>,
    /// A `[store]` section (header included) to serve with, if any.
    store: Option<String>,
    /// `[metrics] listen` address, if any.
    metrics: Option<String>,
    /// The directory of the controller's fault-injection points, if they are armed
    /// (`boltfleet_controller::failpoint`).
    failpoints: Option<PathBuf>,
}

impl Controller {
    /// Initializes a data dir in `base/controller` and starts serving on a free loopback port.
    pub fn start(base: &Path) -> Result<Self> {
        Self::start_with_limits(base, None)
    }

    /// Like [`Controller::start`], serving with a config file whose `[limits]` section is
    /// `limits` (TOML lines).
    pub fn start_with_limits(base: &Path, limits: Option<&str>) -> Result<Self> {
        let mut controller = Self::initialized(base, limits)?;
        controller.serve()?;
        Ok(controller)
    }

    /// `init` and `operator-cert`, not serving yet.
    fn initialized(base: &Path, limits: Option<&str>) -> Result<Self> {
        Self::initialized_with(base, limits, &[])
    }

    /// `init` with `init_args` (e.g. `--join DIR`) and `operator-cert`, not serving yet.
    fn initialized_with(base: &Path, limits: Option<&str>, init_args: &[&Path]) -> Result<Self> {
        let dir = base.join("controller");
        let out = run(Command::new(bin("boltfleet-controller"))
            .args(["init", "--data-dir"])
            .arg(&dir)
            .args(init_args))?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let pin = String::from_utf8(out.stdout)?.trim().to_string();
        let out = run(Command::new(bin("boltfleet-controller"))
            .args(["operator-cert", "--name", "alice", "--data-dir"])
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("operator")))?;
        if !out.status.success() {
            bail!(
                "operator-cert failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            dir,
            pin,
            url: String::new(),
            addr: "127.0.0.1:0".into(),
            proc: None,
            restarts: 0,
            limits: limits.map(str::to_string),
            store: None,
            metrics: None,
            failpoints: None,
        })
    }

    /// Copies this controller's CA files (`ca.crt`, `ca.key`) into `to`, as an operator
    /// carries them to the machine of a second controller.
    pub fn copy_ca_files(&self, to: &Path) -> Result<()> {
        std::fs::create_dir_all(to)?;
        for name in ["ca.crt", "ca.key"] {
            std::fs::copy(self.dir.join(name), to.join(name))
                .with_context(|| format!("copy {name}"))?;
        }
        Ok(())
    }

    /// Another controller of this one's fleet, the documented way: this one's CA files are
    /// copied to `base/ca-copy`, `init --join` makes `base/controller` from them (its own
    /// server identity, the same pin), and it serves on `store` (a `[store]` section).
    pub fn start_joined(&self, base: &Path, store: &str) -> Result<Self> {
        let copy = base.join("ca-copy");
        self.copy_ca_files(&copy)?;
        let mut joined = Self::initialized_with(base, None, &[Path::new("--join"), &copy])?;
        if joined.pin != self.pin {
            bail!("init --join printed {} instead of {}", joined.pin, self.pin);
        }
        joined.use_store(Some(store));
        joined.serve()?;
        Ok(joined)
    }

    /// Like [`Controller::start`], with its state in the store `store` names (a `[store]`
    /// section, e.g. [`crate::etcd::EtcdCluster::store_toml`]).
    pub fn start_with_store(base: &Path, store: &str) -> Result<Self> {
        let mut controller = Self::initialized(base, None)?;
        controller.use_store(Some(store));
        controller.serve()?;
        Ok(controller)
    }

    /// Like [`Controller::start_with_store`], with its fault-injection points armed: point
    /// `name` parks the controller's thread while the file `failpoints/name` exists. The
    /// controller must be built with its `failpoints` feature (this crate turns it on, so
    /// `cargo build --workspace` and `cargo test --workspace` do).
    pub fn start_with_failpoints(base: &Path, store: &str, failpoints: &Path) -> Result<Self> {
        std::fs::create_dir_all(failpoints)?;
        let mut controller = Self::initialized(base, None)?;
        controller.use_store(Some(store));
        controller.failpoints = Some(failpoints.to_path_buf());
        controller.serve()?;
        let armed = "failpoints armed";
        eventually(armed, Duration::from_secs(20), || {
            let log = controller.proc.as_ref()?.log_text();
            log.contains(armed).then_some(())
        })
        .context(
            "a controller built without its failpoints feature? cargo build --workspace --bins",
        )?;
        Ok(controller)
    }

    /// A second controller serving a copy of this one's data dir (its CA and server
    /// certificate, hosts, operators) from `base/controller`, on a fresh port: two controllers
    /// an agent can fail over between. Copy while this one is stopped, when sled's files are
    /// consistent.
    pub fn start_copy(&self, base: &Path) -> Result<Self> {
        self.start_copy_with_store(base, self.store.as_deref())
    }

    /// Like [`Controller::start_copy`], serving with its own `[store]` section (`None`:
    /// sled) — another controller on the same etcd prefix under a name of its own.
    pub fn start_copy_with_store(&self, base: &Path, store: Option<&str>) -> Result<Self> {
        std::fs::create_dir_all(base)?;
        let dir = base.join("controller");
        let out = run(Command::new("cp").arg("-a").arg(&self.dir).arg(&dir))?;
        if !out.status.success() {
            bail!("copy failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut copy = Self {
            dir,
            pin: self.pin.clone(),
            url: String::new(),
            addr: "127.0.0.1:0".into(),
            proc: None,
            restarts: 0,
            limits: self.limits.clone(),
            store: store.map(str::to_string),
            metrics: None,
            failpoints: None,
        };
        copy.serve()?;
        Ok(copy)
    }

    /// Serves `/metrics` on `addr` from the next [`Controller::serve`] on (`[metrics] listen`).
    pub fn use_metrics(&mut self, addr: &str) {
        self.metrics = Some(addr.to_string());
    }

    /// The `[store]` section of the next [`Controller::serve`] (`None`: sled, by flags).
    pub fn use_store(&mut self, store: Option<&str>) {
        self.store = store.map(str::to_string);
    }

    /// Starts `serve` on the same address as before (a fresh port the first time).
    pub fn serve(&mut self) -> Result<()> {
        let addr_file = self.dir.join("listen.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(bin("boltfleet-controller"));
        if self.limits.is_none() && self.store.is_none() && self.metrics.is_none() {
            cmd.args(["serve", "--listen", &self.addr, "--data-dir"])
                .arg(&self.dir);
        } else {
            let config = self.dir.join("controller.toml");
            let mut text = format!(
                "data_dir = {:?}\nlisten = {:?}\n",
                self.dir.display().to_string(),
                self.addr
            );
            if let Some(limits) = &self.limits {
                text.push_str(&format!("[limits]\n{limits}\n"));
            }
            if let Some(store) = &self.store {
                text.push_str(&format!("{store}\n"));
            }
            if let Some(addr) = &self.metrics {
                text.push_str(&format!("[metrics]\nlisten = {addr:?}\n"));
            }
            std::fs::write(&config, text)?;
            cmd.args(["serve", "--config"]).arg(&config);
        }
        cmd.env("RUST_LOG", "info,boltfleet_controller=debug");
        if let Some(dir) = &self.failpoints {
            cmd.env("BOLTFLEET_FAILPOINTS", dir);
        }
        let log = self.dir.join(format!("serve-{}.log", self.restarts));
        self.restarts += 1;
        let mut proc = Proc::spawn("controller", cmd, &log)?;
        let addr = eventually("controller to listen", Duration::from_secs(20), || {
            if !proc.is_running() {
                return Some(Err(anyhow::anyhow!(
                    "controller exited: {}",
                    proc.log_text()
                )));
            }
            std::fs::read_to_string(&addr_file).ok().map(Ok)
        })??;
        self.url = format!("https://{addr}");
        self.addr = addr;
        self.proc = Some(proc);
        Ok(())
    }

    /// The operator CLI, authenticated as operator `alice`.
    pub fn cli(&self) -> Command {
        let ops = self.dir.join("operator");
        let mut cmd = Command::new(bin("boltfleet"));
        cmd.env_remove("HOME")
            .env("BOLTFLEET_CONTROLLER", &self.url)
            .env("BOLTFLEET_CA", ops.join("ca.crt"))
            .env("BOLTFLEET_CERT", ops.join("alice.crt"))
            .env("BOLTFLEET_KEY", ops.join("alice.key"));
        cmd
    }

    /// Operator `alice`'s mTLS identity, for talking to the admin service directly.
    pub fn operator_tls(&self) -> boltfleet_common::tls::ClientTls {
        let ops = self.dir.join("operator");
        let read = |name: &str| std::fs::read_to_string(ops.join(name)).expect("operator file");
        boltfleet_common::tls::ClientTls::Mutual {
            ca_pem: read("ca.crt"),
            cert_pem: read("alice.crt"),
            key_pem: read("alice.key"),
        }
    }

    /// Runs the CLI and returns stdout, failing with stderr when it exits non-zero.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = run(self.cli().args(args))?;
        if !out.status.success() {
            bail!(
                "boltfleet {args:?} failed ({:?}): {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `boltfleet report --format json`, parsed.
    pub fn report(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.cli_ok(&["report", "--format", "json"])?,
        )?)
    }

    /// `boltfleet job show ID --format json`, parsed.
    pub fn job(&self, id: &str) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.cli_ok(&["job", "show", id, "--format", "json"])?,
        )?)
    }

    /// A join token for `host_id`.
    pub fn token(&self, host_id: &str, tenant: &str) -> Result<String> {
        Ok(self
            .cli_ok(&["token", "create", "--host-id", host_id, "--tenant", tenant])?
            .trim()
            .to_string())
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }
}

/// The report row of one host.
pub fn row<'a>(report: &'a serde_json::Value, host_id: &str) -> Option<&'a serde_json::Value> {
    report["hosts"]
        .as_array()?
        .iter()
        .find(|r| r["host_id"] == host_id)
}

/// Waits up to `within` for `host_id` to be online in `ctl`'s report; returns its row.
pub fn online_row(ctl: &Controller, host_id: &str, within: Duration) -> Result<serde_json::Value> {
    eventually(&format!("{host_id} online"), within, || {
        let report = ctl.report().ok()?;
        row(&report, host_id)
            .filter(|r| r["online"] == true)
            .cloned()
    })
}

/// Points the agent's config at `urls`, in that order (the list form of `controller`).
pub fn point_at(agent: &Agent, urls: &[&str]) -> Result<()> {
    let text = std::fs::read_to_string(&agent.config)?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    anyhow::ensure!(first.starts_with("controller = "), "{first}");
    let list: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    std::fs::write(
        &agent.config,
        format!("controller = [{}]\n{rest}", list.join(", ")),
    )?;
    Ok(())
}

/// An agent's config and state dir; `start` runs it.
pub struct Agent {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub proc: Option<Proc>,
}

impl Agent {
    /// Writes an agent config for a passbolt install at `root` into `dir`.
    pub fn configure(
        dir: &Path,
        controller_url: &str,
        extra_toml: &str,
        root: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let state_dir = dir.join("state");
        let config = dir.join("agent.toml");
        let text = format!(
            "controller = {url:?}\nstate_dir = {state:?}\nreport_interval = \"2s\"\n\n[passbolt]\nroot = {root:?}\n{extra_toml}\n",
            url = controller_url,
            state = state_dir,
            root = root,
        );
        std::fs::write(&config, text)?;
        Ok(Self {
            config,
            state_dir,
            proc: None,
        })
    }

    /// Adds a top-level `key = value` line to the config (before its first table); takes
    /// effect at the next start.
    pub fn set_top_level(&self, line: &str) -> Result<()> {
        let text = std::fs::read_to_string(&self.config)?;
        let at = text.find("\n[").map_or(text.len(), |i| i + 1);
        std::fs::write(
            &self.config,
            format!("{}{line}\n{}", &text[..at], &text[at..]),
        )?;
        Ok(())
    }

    /// `boltfleet-agent enroll`; returns the process output.
    /// An agent for host `id` whose passbolt install does not exist (it reports that, which
    /// is all tests of the controller's side need), enrolled in tenant acme, not started.
    pub fn without_passbolt(base: &Path, ctl: &Controller, id: &str) -> Result<Self> {
        let agent = Self::configure(
            &base.join(id),
            &ctl.url,
            "",
            Path::new("/nonexistent/passbolt"),
        )?;
        agent.enroll_with_token(ctl, id, "acme")?;
        Ok(agent)
    }

    /// Enrolls with a fresh token for `host_id` in `tenant`; an error carries the agent's
    /// stderr.
    pub fn enroll_with_token(&self, ctl: &Controller, host_id: &str, tenant: &str) -> Result<()> {
        let out = self.enroll(ctl, &ctl.token(host_id, tenant)?, &[])?;
        anyhow::ensure!(
            out.status.success(),
            "enroll {host_id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    pub fn enroll(&self, controller: &Controller, token: &str, extra: &[&str]) -> Result<Output> {
        run(Command::new(bin("boltfleet-agent"))
            .args([
                "enroll",
                "--controller",
                &controller.url,
                "--ca-pin",
                &controller.pin,
            ])
            .arg("--config")
            .arg(&self.config)
            .env("BOLTFLEET_JOIN_TOKEN", token)
            .args(extra))
    }

    /// Starts `boltfleet-agent run`.
    pub fn start(&mut self) -> Result<()> {
        let mut cmd = Command::new(bin("boltfleet-agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,boltfleet_agent=debug");
        let log = self.config.with_extension("log");
        self.proc = Some(Proc::spawn("agent", cmd, &log)?);
        Ok(())
    }
}
