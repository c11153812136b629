//! `boltfleet-idle-host`: one idle passbolt host for footprint measurements. Starts a
//! controller and one fixture passbolt site (v1.6.10, its healthcheck command configured, its
//! own MariaDB database) with an enrolled agent at the agent's default report interval, prints
//! `agent_pid=N` once the first report has arrived, and waits for SIGTERM or SIGINT; then stops
//! the agent and the controller and drops the database. `scripts/bench/agent-footprint.sh`
//! samples the agent's /proc entries meanwhile.
//!
//! `--agent-wrapper "heaptrack -o FILE"` runs the agent under a wrapper program (a heap
//! profiler); `agent_pid` is then the agent itself, found among the wrapper's children.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use boltfleet_tests::cluster::{bin, eventually, row, Controller, Proc};
use boltfleet_tests::site::Site;
use tokio::signal::unix::{signal, SignalKind};

const HOST_ID: &str = "idle-web1";
const TENANT: &str = "bench";
/// The newest v1 release of the fixture: up to date, with `passbolt healthcheck`.
const VERSION: &str = "1.6.10";

fn main() -> Result<()> {
    let wrapper = parse_args()?;
    // Signal handlers first: a SIGTERM during the setup still ends in the cleanup below.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = {
        let _guard = runtime.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let base = tempfile::Builder::new()
        .prefix("boltfleet-idle-")
        .tempdir()?;
    let mut ctl = Controller::start(base.path()).context("start the controller")?;
    let site = Site::at(base.path(), &ctl, HOST_ID, VERSION).context("create the site")?;
    use_default_report_interval(&site.agent.config)?;
    enroll(&ctl, &site)?;
    let mut agent = start_agent(&site, &wrapper)?;
    let agent_pid = match &wrapper {
        None => agent.child.id(),
        Some(_) => wrapped_agent_pid(&mut agent)?,
    };
    eventually("the agent's first report", Duration::from_secs(120), || {
        let report = ctl.report().ok()?;
        row(&report, HOST_ID)
            .is_some_and(|r| r["online"] == true && r["version"].is_string())
            .then_some(())
    })?;

    let controller_pid = ctl.proc.as_ref().map_or(0, |p| p.child.id());
    println!("agent_pid={agent_pid}");
    println!("controller_pid={controller_pid}");
    println!("agent_config={}", site.agent.config.display());
    println!("agent_log={}", agent.log.display());
    println!("ready");
    std::io::stdout().flush()?;

    runtime.block_on(async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
    stop_agent(&mut agent, agent_pid)?;
    if let Some(mut p) = ctl.proc.take() {
        p.terminate()?;
    }
    drop(site);
    eprintln!("idle host stopped");
    Ok(())
}

/// `--agent-wrapper "PROGRAM ARGS..."`, split on whitespace.
fn parse_args() -> Result<Option<Vec<String>>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, wrapper] if flag == "--agent-wrapper" => {
            let words: Vec<String> = wrapper.split_whitespace().map(String::from).collect();
            ensure!(!words.is_empty(), "--agent-wrapper: empty program");
            Ok(Some(words))
        }
        _ => bail!("usage: boltfleet-idle-host [--agent-wrapper \"PROGRAM ARGS...\"]"),
    }
}

/// The shared test helper writes a 2 s interval (fast tests); an idle host runs the default.
fn use_default_report_interval(config: &Path) -> Result<()> {
    let text = std::fs::read_to_string(config)?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("report_interval"))
        .collect();
    std::fs::write(config, kept.join("\n") + "\n")?;
    Ok(())
}

fn enroll(ctl: &Controller, site: &Site) -> Result<()> {
    let token = ctl.token(HOST_ID, TENANT)?;
    let out = site.agent.enroll(ctl, &token, &[])?;
    ensure!(
        out.status.success(),
        "enroll {HOST_ID}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `boltfleet-agent run` as on a real host: the default log filter, not the tests' debug one.
fn start_agent(site: &Site, wrapper: &Option<Vec<String>>) -> Result<Proc> {
    let agent_bin = bin("boltfleet-agent");
    let mut cmd = match wrapper {
        None => Command::new(&agent_bin),
        Some(words) => {
            let mut cmd = Command::new(&words[0]);
            cmd.args(&words[1..]).arg(&agent_bin);
            cmd
        }
    };
    cmd.arg("run")
        .arg("--config")
        .arg(&site.agent.config)
        .env_remove("RUST_LOG");
    let log = site.agent.config.with_extension("log");
    Proc::spawn("agent", cmd, &log)
}

/// The agent process started by the wrapper: its child named `boltfleet-agent`.
fn wrapped_agent_pid(wrapper: &mut Proc) -> Result<u32> {
    let parent = wrapper.child.id();
    eventually(
        "the wrapped agent to start",
        Duration::from_secs(60),
        || {
            if !wrapper.is_running() {
                return Some(Err(anyhow::anyhow!(
                    "agent wrapper exited: {}",
                    wrapper.log_text()
                )));
            }
            child_named(parent, "boltfleet-agent").map(Ok)
        },
    )?
}

/// A child of `parent` whose command name is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last ')'.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        // comm is cut to 15 bytes.
        (ppid == parent && name.starts_with(comm)).then_some(pid)
    })
}

/// SIGTERM to the agent itself (a wrapper then finishes its output), then wait for the
/// process we started to exit.
fn stop_agent(agent: &mut Proc, agent_pid: u32) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &agent_pid.to_string()])
        .status()?;
    eventually("the agent to exit", Duration::from_secs(120), || {
        agent.child.try_wait().ok().flatten()
    })?;
    Ok(())
}
