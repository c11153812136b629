//! `boltfleet-bench-healthcheck [N]`: a controller and one fixture passbolt host with a real
//! agent on loopback, then N runs (default 50) of `boltfleet host healthcheck web1 --wait`
//! through the CLI, each timed from process start to exit: the whole trip (connect, start the
//! job, the agent runs passbolt's healthcheck, the CLI follows it over the stream until it
//! ends). Then the host's healthcheck command alone, N times, for the share of each trip that
//! is the host's own work. Prints min, median, p90 and max of both. Run by
//! `scripts/bench/cli-healthcheck.sh`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use boltfleet_tests::cluster::{eventually, row, run, Controller};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::site::Site;

fn main() -> Result<()> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("N: a number of runs")?,
        None => 50,
    };
    let base = tempfile::Builder::new()
        .prefix("boltfleet-bench-")
        .tempdir()?;
    let ctl = Controller::start(base.path()).context("start the controller")?;
    let mut site = Site::create(
        base.path(),
        &ctl,
        "web1",
        PassboltHost::builder("1.6.10"),
        true,
    )?;
    site.enroll_and_start(&ctl, "web1", "acme")?;
    eventually("the host's first report", Duration::from_secs(60), || {
        ctl.report()
            .ok()
            .filter(|r| row(r, "web1").is_some_and(|x| x["version"].is_string()))
    })?;
    // One unmeasured run: connections, caches and the agent's first probe settle.
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let started = Instant::now();
        let out = run(ctl.cli().args(["host", "healthcheck", "web1", "--wait"]))?;
        let took = started.elapsed();
        ensure!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i > 0 {
            times.push(took);
        }
    }
    // The host's own healthcheck command alone, as the agent runs it: the part of each trip
    // that is passbolt's (here the fixture's) work, not Boltfleet's.
    let mut command = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        let out = site.host.healthcheck()?;
        command.push(started.elapsed());
        ensure!(
            out.code == 0,
            "healthcheck command, run {i}: exit {}",
            out.code
        );
    }
    print_line("boltfleet host healthcheck --wait", &mut times);
    print_line("the host's healthcheck command alone", &mut command);
    Ok(())
}

fn print_line(what: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}, {} runs: min {:.1} ms, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[0]),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(times[times.len() - 1]),
    );
}
