//! `boltfleet-demo`: a controller and a small fleet of fixture passbolt hosts on this machine,
//! each with a real agent, then the fleet report. Everything lives in a temp dir removed at exit.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;

/// (host id, tenant, version, pending migrations, failing healthcheck)
const FLEET: &[(&str, &str, &str, usize, bool)] = &[
    ("acme-web1", "acme", "1.6.10", 0, false),
    ("acme-web2", "acme", "1.3.0", 1, false),
    ("globex-web1", "globex", "1.5.1", 0, false),
    ("globex-web2", "globex", "1.6.10", 0, true),
];

fn main() -> Result<()> {
    let keep = std::env::args().any(|a| a == "--keep");
    let base = tempfile::Builder::new()
        .prefix("boltfleet-demo-")
        .tempdir()?;
    say(&format!("working in {}", base.path().display()));

    let ctl = Controller::start(base.path()).context("start the controller")?;
    say(&format!(
        "controller listening on {} (CA pin {})",
        ctl.url, ctl.pin
    ));

    let mut sites = Vec::new();
    for &(host_id, tenant, version, pending, failing) in FLEET {
        let mut builder = PassboltHost::builder(version).pending(pending);
        if failing {
            builder = builder.failing_health(&["database_connect"]);
        }
        let health = version.starts_with("1.6");
        let mut site = Site::create(base.path(), &ctl, host_id, builder, health)
            .with_context(|| format!("create fixture host {host_id}"))?;
        site.enroll_and_start(&ctl, host_id, tenant)?;
        say(&format!(
            "{host_id}: passbolt {version} ({tenant}) enrolled, agent running"
        ));
        sites.push(site);
    }

    say("waiting for every agent's first report");
    eventually("every agent to report", Duration::from_secs(120), || {
        let report = ctl.report().ok()?;
        FLEET
            .iter()
            .all(|(id, ..)| {
                row(&report, id).is_some_and(|r| r["online"] == true && r["version"].is_string())
            })
            .then_some(())
    })?;

    say("boltfleet hosts");
    show(ctl.cli().arg("hosts"))?;
    say("boltfleet report");
    show(ctl.cli().arg("report"))?;
    say("boltfleet report --latest 1.6.10 --format json (the update column, for scripts)");
    show(
        ctl.cli()
            .args(["report", "--latest", "1.6.10", "--format", "json"]),
    )?;

    if keep {
        let path: PathBuf = base.keep();
        say(&format!("kept {} (the processes stop now)", path.display()));
    }
    drop(sites);
    say("done: agents and controller stopped, databases dropped");
    Ok(())
}

fn say(text: &str) {
    eprintln!("\n==> {text}");
}

fn show(cmd: &mut Command) -> Result<()> {
    let out = cmd.output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "{cmd:?} failed");
    Ok(())
}
