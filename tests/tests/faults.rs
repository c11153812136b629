//! Faults tried many times, not once: a seeded random sequence of updates and rollbacks on a
//! fixture host, each hit by a fault at a random moment — `kill -9` of the agent, of the
//! controller or of a MariaDB client, a backup disk filled before or during the job, a failing
//! migration — then whatever was killed is restarted and the invariant is checked:
//!
//! * the host ends fully updated (code at the target, no migration pending) or exactly as
//!   before the job (code at the old tag, every table's definition and checksum identical);
//! * it is never in maintenance once its job is reported finished;
//! * the controller's record agrees (job outcome, reported version).
//!
//! `BOLTFLEET_FAULT_ITERATIONS` (default 20) sets the length, `BOLTFLEET_FAULT_SEED` replays a
//! run; the seed is printed first and in every failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use boltfleet_tests::cluster::{eventually, row, run, Controller};
use boltfleet_tests::fixture::{PassboltHost, RELEASES};
use boltfleet_tests::site::Site;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);
/// The window a fault lands in, from the job's start: a fixture update takes 2–4 s.
const FAULT_WINDOW_MS: u64 = 4_000;
/// Size of the backup file system (a tmpfs, when this machine lets the test mount one).
const BACKUP_FS: &str = "64m";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    KillAgent,
    KillController,
    KillClient,
    DiskFullBefore,
    DiskFullDuring,
}

const FAULTS: [Fault; 6] = [
    Fault::None,
    Fault::KillAgent,
    Fault::KillController,
    Fault::KillClient,
    Fault::DiskFullBefore,
    Fault::DiskFullDuring,
];

#[derive(Debug, Clone)]
enum Action {
    Update { to: String, failing_migration: bool },
    Rollback,
}

/// The host's database: every table's definition and checksum.
type DbState = (BTreeMap<String, String>, BTreeMap<String, String>);

/// A tmpfs mounted on the backup dir for the test's life.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path) -> Option<Mount> {
        std::fs::create_dir_all(dir).ok()?;
        let out = run(std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={BACKUP_FS},mode=0700"),
                "tmpfs",
            ])
            .arg(dir))
        .ok()?;
        out.status.success().then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run(std::process::Command::new("umount").arg("-l").arg(&self.0));
    }
}

/// Writes zeros into `dir/filler` until the file system is full.
fn fill(dir: &Path) {
    use std::io::Write;
    let Ok(mut file) = std::fs::File::create(dir.join("filler")) else {
        return;
    };
    let block = vec![0u8; 1 << 20];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

fn unfill(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("filler"));
}

/// Pids of the MariaDB clients working on `site`'s database (the agent's dump, restore and
/// queries, and the fixture's `cake`): every one names the database.
fn clients_of(site: &Site) -> Vec<u32> {
    let needle = site.db.name.clone();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let program = text.split(' ').next().unwrap_or("");
            text.contains(&needle)
                && (program.ends_with("mariadb")
                    || program.ends_with("mysql")
                    || program.ends_with("-dump")
                    || program.ends_with("mysqldump"))
        })
        .collect()
}

struct Harness {
    seed: u64,
    rng: StdRng,
    base: tempfile::TempDir,
    ctl: Controller,
    site: Site,
    backups: PathBuf,
    mount: Option<Mount>,
    /// The installed release, as the harness knows it.
    at: String,
    /// Before the last successful update not yet rolled back: its release and database.
    undo: Option<(String, DbState)>,
    sites: usize,
    log: Vec<String>,
}

impl Harness {
    fn new(seed: u64) -> Result<Harness> {
        let base = tempfile::tempdir()?;
        let ctl = Controller::start(base.path())?;
        let (site, backups, mount) = Self::new_site(base.path(), &ctl, 0)?;
        Ok(Harness {
            seed,
            rng: StdRng::seed_from_u64(seed),
            base,
            ctl,
            site,
            backups,
            mount,
            at: "1.0.12".into(),
            undo: None,
            sites: 1,
            log: Vec::new(),
        })
    }

    /// A fresh host at the oldest release, its backups on their own small file system.
    fn new_site(base: &Path, ctl: &Controller, n: usize) -> Result<(Site, PathBuf, Option<Mount>)> {
        let name = format!("web{n}");
        let mut site = Site::create(base, ctl, &name, PassboltHost::builder("1.0.12"), false)?;
        let backups = site.backup_dir();
        let mount = Mount::tmpfs(&backups);
        site.enroll_and_start(ctl, &name, "acme")?;
        Ok((site, backups, mount))
    }

    fn host_id(&self) -> String {
        format!("web{}", self.sites - 1)
    }

    fn db_state(&self) -> Result<DbState> {
        Ok((
            self.site.db.table_definitions()?,
            self.site.db.checksum_tables()?,
        ))
    }

    fn v1_releases() -> Vec<&'static str> {
        RELEASES
            .iter()
            .copied()
            .filter(|r| r.starts_with("1."))
            .collect()
    }

    fn choose(&mut self) -> Action {
        let releases = Self::v1_releases();
        let here = releases.iter().position(|r| *r == self.at).unwrap_or(0);
        let newest = here + 1 >= releases.len();
        if self.undo.is_some() && (newest || self.rng.random_bool(0.3)) {
            return Action::Rollback;
        }
        if newest {
            // Nothing left to do on this host: the next iteration starts on a fresh one.
            return Action::Rollback;
        }
        let steps = self.rng.random_range(1..=2).min(releases.len() - 1 - here);
        Action::Update {
            to: releases[here + steps].to_string(),
            failing_migration: self.rng.random_bool(0.3),
        }
    }

    fn fail(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!(
            "{what}\nseed {} (replay: BOLTFLEET_FAULT_SEED={} cargo test -p boltfleet-tests --test faults)\nso far:\n  {}",
            self.seed,
            self.seed,
            self.log.join("\n  ")
        )
    }

    /// Waits until the controller reports the host online at the release it really has.
    fn settled(&self) -> Result<()> {
        let installed = self.site.host.installed_version()?;
        let host = self.host_id();
        eventually("the controller to report the host as it is", WAIT, || {
            let report = self.ctl.report().ok()?;
            let r = row(&report, &host)?;
            (r["online"] == true && r["version"] == installed.as_str()).then_some(())
        })
        .map_err(|e| self.fail(e))
    }

    fn iteration(&mut self, i: usize) -> Result<()> {
        if Self::v1_releases().last() == Some(&self.at.as_str()) && self.undo.is_none() {
            let (site, backups, mount) = Self::new_site(self.base.path(), &self.ctl, self.sites)?;
            self.site = site;
            self.backups = backups;
            self.mount = mount;
            self.sites += 1;
            self.at = "1.0.12".into();
        }
        self.settled()?;
        let action = self.choose();
        let mut fault = FAULTS[self.rng.random_range(0..FAULTS.len())];
        if matches!(fault, Fault::DiskFullBefore | Fault::DiskFullDuring) && self.mount.is_none() {
            fault = Fault::KillAgent;
        }
        let delay = Duration::from_millis(self.rng.random_range(0..FAULT_WINDOW_MS));
        self.log.push(format!(
            "{i}: {} at {}: {action:?}, {fault:?} after {delay:?}",
            self.host_id(),
            self.at
        ));
        let before = self.db_state()?;
        let from = self.at.clone();
        let host = self.host_id();
        let mut args = vec!["host".to_string()];
        match &action {
            Action::Update {
                to,
                failing_migration,
            } => {
                self.site
                    .host
                    .set_migration_error(failing_migration.then_some(to.as_str()))?;
                args.extend(["update".into(), host.clone(), "--to".into(), to.clone()]);
            }
            Action::Rollback => {
                self.site.host.set_migration_error(None)?;
                args.extend(["rollback".into(), host.clone()]);
            }
        }
        if fault == Fault::DiskFullBefore {
            fill(&self.backups);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = self
            .ctl
            .cli_ok(&args)
            .map_err(|e| self.fail(e))?
            .trim()
            .to_string();
        self.inject(fault, delay)?;
        let done = eventually(&format!("job {id} to end"), WAIT, || {
            self.ctl
                .job(&id)
                .ok()
                .filter(|j| !matches!(j["state"].as_str(), Some("queued" | "running") | None))
        })
        .map_err(|e| self.fail(e))?;
        unfill(&self.backups);
        let state = done["state"].as_str().unwrap_or("").to_string();
        self.log.push(format!(
            "   -> {state}: {}",
            done["reason"].as_str().unwrap_or("")
        ));
        self.check(&action, &state, &from, &before, &done)
    }

    /// The fault, `delay` after the job started; what was killed is started again.
    fn inject(&mut self, fault: Fault, delay: Duration) -> Result<()> {
        let start = Instant::now();
        let wait = |until: Duration| std::thread::sleep(until.saturating_sub(start.elapsed()));
        match fault {
            Fault::None | Fault::DiskFullBefore => {}
            Fault::KillAgent => {
                wait(delay);
                self.site.agent.proc.as_mut().context("agent")?.kill9();
                self.site.agent.start()?;
            }
            Fault::KillController => {
                wait(delay);
                self.ctl.kill9();
                self.ctl.serve()?;
            }
            Fault::KillClient => {
                wait(delay);
                // The first client seen from then on, within the window.
                let deadline = start + Duration::from_millis(FAULT_WINDOW_MS * 2);
                let mut scans = 0;
                loop {
                    scans += 1;
                    if let Some(pid) = clients_of(&self.site).first() {
                        let _ =
                            run(std::process::Command::new("kill").args(["-9", &pid.to_string()]));
                        let after = start.elapsed();
                        self.log
                            .push(format!("   killed client {pid} after {after:?}"));
                        break;
                    }
                    if Instant::now() >= deadline {
                        self.log
                            .push(format!("   no client ran after {delay:?} ({scans} scans)"));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Fault::DiskFullDuring => {
                wait(delay);
                fill(&self.backups);
            }
        }
        Ok(())
    }

    fn check(
        &mut self,
        action: &Action,
        state: &str,
        from: &str,
        before: &DbState,
        job: &Value,
    ) -> Result<()> {
        if self.site.maintenance_flag().exists() {
            return Err(self.fail(format!(
                "the job ended {state} and the site is in maintenance: {job}"
            )));
        }
        let tag = self.site.head_tag()?;
        let now = self.db_state()?;
        match (action, state) {
            (Action::Update { to, .. }, "succeeded") => {
                let pending = self.site.host.pending_migrations()?;
                if tag != format!("v{to}") || !pending.is_empty() {
                    return Err(self.fail(format!("succeeded but at {tag}, pending {pending:?}")));
                }
                self.undo = Some((from.to_string(), before.clone()));
                self.at = to.clone();
            }
            (Action::Update { .. }, "failed" | "refused" | "rolled_back") => {
                if tag != format!("v{from}") || &now != before {
                    return Err(self.fail(format!(
                        "{state} but not as before: at {tag}, database {}",
                        if &now == before {
                            "identical"
                        } else {
                            "changed"
                        }
                    )));
                }
            }
            (Action::Rollback, "succeeded") => {
                let Some((back, db)) = self.undo.take() else {
                    return Err(self.fail("a rollback succeeded with nothing to roll back"));
                };
                if tag != format!("v{back}") || now != db {
                    return Err(self.fail(format!(
                        "rolled back to {tag}, expected v{back} and the database before the update"
                    )));
                }
                self.at = back;
            }
            (Action::Rollback, "failed" | "refused" | "rolled_back") => {
                if tag != format!("v{from}") || &now != before {
                    return Err(
                        self.fail(format!("the rollback ended {state} and changed the host"))
                    );
                }
                if state == "refused" {
                    // The agent has nothing it can roll back to.
                    self.undo = None;
                }
            }
            (_, other) => bail!(self.fail(format!("job ended {other}: {job}"))),
        }
        self.settled()
    }
}

#[test]
fn random_faults_leave_every_host_updated_or_exactly_as_before() -> Result<()> {
    let seed = std::env::var("BOLTFLEET_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let iterations: usize = std::env::var("BOLTFLEET_FAULT_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("fault seed {seed}, {iterations} iterations (BOLTFLEET_FAULT_SEED={seed} replays)");
    let mut harness = Harness::new(seed)?;
    if harness.mount.is_none() {
        eprintln!("no tmpfs could be mounted: the full-disk faults become agent kills");
    }
    for i in 0..iterations {
        harness.iteration(i)?;
    }
    eprintln!("{}", harness.log.join("\n"));
    Ok(())
}
