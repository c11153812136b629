//! `boltfleet-demo`: a controller and eight fixture passbolt hosts (two tenants, mixed versions,
//! one whose migration fails) with real agents on this machine, then a staggered rollout to the
//! newest v1 release: a canary, then waves, live progress, the failed host rolled back with its
//! database restored, and the final fleet report. Everything lives in a temp dir removed at exit.
//!
//! It also serves the web dashboard (`boltfleet ui`) and prints its address. With `--keep` on a
//! terminal it waits for Enter before the rollout (time to open the dashboard and watch it) and
//! keeps the controller, the agents and the dashboard up until Enter at the end; a run without
//! a terminal never waits.

use std::io::IsTerminal;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::dashboard::{Dashboard, OperatorFiles};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;

/// The newest v1 release of the fixture repository.
const TARGET: &str = "1.6.10";

/// (host id, tenant, version, migration fails)
const FLEET: &[(&str, &str, &str, bool)] = &[
    ("acme-web1", "acme", "1.5.1", false),
    ("acme-web2", "acme", "1.4.0", false),
    ("acme-web3", "acme", "1.3.2", false),
    ("acme-web4", "acme", "1.6.10", false),
    ("globex-web1", "globex", "1.5.1", false),
    ("globex-web2", "globex", "1.3.2", true),
    ("globex-web3", "globex", "1.4.0", false),
    ("globex-web4", "globex", "1.3.0", false),
];

fn main() -> Result<()> {
    let keep = std::env::args().any(|a| a == "--keep");
    let interactive = keep && std::io::stdin().is_terminal();
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
    for &(host_id, tenant, version, failing) in FLEET {
        let health = version.starts_with("1.6");
        let mut site = Site::create(
            base.path(),
            &ctl,
            host_id,
            PassboltHost::builder(version),
            health,
        )
        .with_context(|| format!("create fixture host {host_id}"))?;
        if failing {
            // Its 1.4.0 migration fails halfway after changing data, yet exits 0, as v1 does.
            site.host.set_migration_error(Some("1.4.0"))?;
        }
        site.enroll_and_start(&ctl, host_id, tenant)?;
        let note = if failing {
            ", its 1.4.0 migration will fail"
        } else {
            ""
        };
        say(&format!(
            "{host_id}: passbolt {version} ({tenant}) enrolled{note}"
        ));
        sites.push((host_id, site));
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
    show(ctl.cli().arg("hosts"))?;

    let dashboard = Dashboard::start(&ctl, &OperatorFiles::alice(&ctl), base.path())
        .context("start the dashboard")?;
    say(&format!(
        "the dashboard (boltfleet ui, as alice): open {}",
        dashboard.login_url
    ));
    if interactive {
        wait_for_enter(
            "press Enter to start the rollout (watch it on the dashboard's Rollouts page)",
        );
    }

    let failing = sites
        .iter()
        .find(|(id, _)| *id == "globex-web2")
        .map(|(_, s)| s)
        .expect("failing host");
    let before = failing.db.checksum_tables()?;

    let rollout_flags = [
        "--to",
        TARGET,
        "--select",
        "all",
        "--waves",
        "1,50%,100%",
        "--max-parallel",
        "3",
        "--max-failures",
        "1",
        "--soak",
        "5s",
    ];
    say(&format!(
        "boltfleet rollout plan {}",
        rollout_flags.join(" ")
    ));
    show(ctl.cli().args(["rollout", "plan"]).args(rollout_flags))?;
    say("boltfleet rollout start ... (prints the rollout id)");
    let id = ctl
        .cli_ok(&[&["rollout", "start"][..], &rollout_flags[..]].concat())?
        .trim()
        .to_string();
    println!("{id}");

    say(&format!("boltfleet rollout watch {id}"));
    // watch exits non-zero unless the rollout completed; the demo reports either way.
    let _ = ctl
        .cli()
        .args(["rollout", "watch", &id])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    show(ctl.cli().args(["rollout", "status", &id]))?;

    let after = failing.db.checksum_tables()?;
    say(&format!(
        "globex-web2: back on {} with its database restored: {} of {} tables identical to before the rollout",
        failing.head_tag()?,
        before.iter().filter(|(t, sum)| after.get(*t) == Some(sum)).count(),
        before.len()
    ));
    let report = ctl.report()?;
    if let Some(job) = row(&report, "globex-web2").and_then(|r| r["last_job"]["id"].as_str()) {
        say(&format!("boltfleet job show {job}"));
        show(ctl.cli().args(["job", "show", job]))?;
    }

    say("boltfleet report");
    show(ctl.cli().arg("report"))?;
    say("boltfleet audit");
    show(ctl.cli().arg("audit"))?;

    if interactive {
        say(&format!("the dashboard: {}", dashboard.login_url));
        wait_for_enter("press Enter to stop the controller, the agents and the dashboard");
    }
    drop(dashboard);
    if keep {
        let path = base.keep();
        say(&format!("kept {} (the processes stop now)", path.display()));
    }
    drop(sites);
    say("done: agents and controller stopped, databases dropped");
    Ok(())
}

fn wait_for_enter(prompt: &str) {
    say(prompt);
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
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
