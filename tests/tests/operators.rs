//! End to end: what operators may do. Roles and tenant scopes, from the certificate, are
//! enforced by a real controller on the real CLI; a rollout of a tenant under the two-person
//! rule waits for a second operator's approval.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::Result;
use boltfleet_common::identity::Identity;
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::{Health, Inventory};
use boltfleet_common::tls;
use boltfleet_tests::cluster::Controller;
use boltfleet_tests::cluster::{bin, eventually, run};
use boltfleet_tests::raw_agent::{enrolled, report_once};
use boltfleet_tests::raw_agent::{Stream, NEVER};

/// A controller with two tenants' hosts online and healthy on 1.6.9: `a1` (acme) and `b1`
/// (globex). The agents are played here; their streams live as long as this.
struct Fleet {
    ctl: Controller,
    _streams: Vec<Stream>,
    _rt: tokio::runtime::Runtime,
    _base: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Result<Self> {
        tls::install_crypto_provider();
        let base = tempfile::tempdir()?;
        let ctl = Controller::start(base.path())?;
        let rt = tokio::runtime::Runtime::new()?;
        let streams = rt.block_on(async {
            let mut streams = Vec::new();
            for (host, tenant) in [("a1", "acme"), ("b1", "globex")] {
                let tls = enrolled(&ctl, host, tenant).await?;
                let inventory = Inventory {
                    passbolt_version: "1.6.9".into(),
                    health: Some(Health {
                        healthy: true,
                        ..Health::default()
                    }),
                    ..Inventory::default()
                };
                streams.push(report_once(&ctl, &tls, inventory).await?);
            }
            anyhow::Ok(streams)
        })?;
        Ok(Self {
            ctl,
            _streams: streams,
            _rt: rt,
            _base: base,
        })
    }

    /// Writes a certificate for operator `name` with `role` and `tenants` (`operator-cert`).
    fn operator(&self, name: &str, role: &str, tenants: &[&str]) -> Result<Operator> {
        let out = self.ctl.dir.join(format!("ops-{name}"));
        let mut cmd = Command::new(bin("boltfleet-controller"));
        cmd.args([
            "operator-cert",
            "--name",
            name,
            "--role",
            role,
            "--data-dir",
        ])
        .arg(&self.ctl.dir)
        .arg("--out")
        .arg(&out);
        if tenants.is_empty() && role != "admin" {
            cmd.arg("--all-tenants");
        }
        for tenant in tenants {
            cmd.args(["--tenant", tenant]);
        }
        let done = run(&mut cmd)?;
        anyhow::ensure!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        Ok(Operator {
            url: self.ctl.url.clone(),
            dir: out,
            name: name.into(),
        })
    }

    /// Operator `alice`, whose certificate the harness wrote (an admin).
    fn alice(&self) -> Operator {
        Operator {
            url: self.ctl.url.clone(),
            dir: self.ctl.dir.join("operator"),
            name: "alice".into(),
        }
    }
}

/// The real `boltfleet` CLI with one operator's certificate.
struct Operator {
    url: String,
    dir: PathBuf,
    name: String,
}

impl Operator {
    fn cli(&self, args: &[&str]) -> Result<Output> {
        let file = |ext: &str| self.dir.join(format!("{}.{ext}", self.name));
        run(Command::new(bin("boltfleet"))
            .env_remove("HOME")
            .env("BOLTFLEET_CONTROLLER", &self.url)
            .env("BOLTFLEET_CA", self.dir.join("ca.crt"))
            .env("BOLTFLEET_CERT", file("crt"))
            .env("BOLTFLEET_KEY", file("key"))
            .args(args))
    }

    /// Stdout of a successful run.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        anyhow::ensure!(
            out.status.success(),
            "{} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Stderr of a run that must fail.
    fn refused(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        anyhow::ensure!(!out.status.success(), "{} {args:?} succeeded", self.name);
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.ok(args)?)?)
    }

    fn host_ids(&self) -> Result<Vec<String>> {
        let hosts = self.json(&["hosts", "--format", "json"])?;
        Ok(hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["host_id"].as_str().unwrap().to_string())
            .collect())
    }
}

/// Host ids in a rollout status (`--format json`), waves and skipped.
fn rollout_hosts(status: &serde_json::Value) -> Vec<String> {
    let waves = status["waves"].as_array().unwrap().iter();
    waves
        .flat_map(|w| w["hosts"].as_array().unwrap().iter())
        .chain(status["skipped"].as_array().unwrap())
        .map(|h| h["host_id"].as_str().unwrap().to_string())
        .collect()
}

const ROLLOUT: [&str; 10] = [
    "--to",
    "1.6.10",
    "--waves",
    "100%",
    "--max-parallel",
    "5",
    "--max-failures",
    "0",
    "--select",
    "all",
];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

#[test]
fn a_viewer_reads_but_cannot_start_anything() -> Result<()> {
    let fleet = Fleet::start()?;
    let viewer = fleet.operator("vera", "viewer", &[])?;
    assert_eq!(viewer.host_ids()?, ["a1", "b1"]);
    viewer.ok(&["report"])?;
    viewer.ok(&["audit"])?;
    for refused in [
        &["host", "update", "a1", "--to", "1.6.10"][..],
        &["host", "revoke", "a1"],
        &["token", "create", "--host-id", "a2", "--tenant", "acme"],
        &args(&["rollout", "start"], &ROLLOUT),
        &["freeze", "on", "--tenant", "acme"],
        &["policy", "set", "--tenant", "acme", "--require-approval"],
    ] {
        let err = viewer.refused(refused)?;
        assert!(err.contains("permission denied"), "{refused:?}: {err}");
        assert!(err.contains("viewer"), "{refused:?}: {err}");
    }
    // Nothing was started.
    assert_eq!(
        fleet
            .alice()
            .json(&["rollout", "list", "--format", "json"])?["rollouts"],
        serde_json::json!([])
    );
    let report = fleet.alice().json(&["report", "--format", "json"])?;
    assert!(report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["last_job"].is_null()));
    Ok(())
}

#[test]
fn an_operator_of_one_tenant_sees_and_touches_only_its_hosts() -> Result<()> {
    let fleet = Fleet::start()?;
    let alice = fleet.alice();
    let job_b1 = alice.ok(&["host", "update", "b1", "--to", "1.6.10"])?;
    let op = fleet.operator("olga", "operator", &["acme"])?;

    assert_eq!(op.host_ids()?, ["a1"]);
    let report = op.json(&["report", "--format", "json"])?;
    assert_eq!(report["versions"], serde_json::json!({"1.6.9": 1}));
    // Another tenant's host answers exactly as a host that does not exist.
    let foreign = op.refused(&["host", "update", "b1", "--to", "1.6.10"])?;
    let missing = op.refused(&["host", "update", "zz9", "--to", "1.6.10"])?;
    assert!(foreign.contains("not found"), "{foreign}");
    assert_eq!(foreign.replace("b1", "X"), missing.replace("zz9", "X"));
    assert!(op.refused(&["host", "revoke", "b1"])?.contains("not found"));
    assert!(op.refused(&["host", "show", "b1"])?.contains("not found"));
    assert!(op.refused(&["host", "forget", "b1"])?.contains("not found"));
    op.ok(&["host", "show", "a1"])?;
    let global = op.refused(&["release", "latest", "1.6.10"])?;
    assert!(global.contains("permission denied"), "{global}");
    let foreign_latest = op.refused(&["release", "latest", "1.6.10", "--tenant", "globex"])?;
    assert!(
        foreign_latest.contains("permission denied"),
        "{foreign_latest}"
    );
    assert!(op
        .refused(&["job", "show", job_b1.trim()])?
        .contains("not found"));
    let token = op.refused(&["token", "create", "--host-id", "b2", "--tenant", "globex"])?;
    assert!(token.contains("permission denied"), "{token}");
    op.ok(&["token", "create", "--host-id", "a2", "--tenant", "acme"])?;
    assert!(op.refused(&["freeze", "on"])?.contains("permission denied"));
    assert!(op
        .refused(&[
            "window",
            "set",
            "--tenant",
            "acme",
            "--cron",
            "0 22 * * *",
            "--duration",
            "4h",
            "--tz",
            "UTC"
        ])?
        .contains("permission denied"));

    // `--select all` is all of its tenants: the rollout touches a1 only.
    let id = op
        .ok(&args(&["rollout", "start"], &ROLLOUT))?
        .trim()
        .to_string();
    let status = alice.json(&["rollout", "status", &id, "--format", "json"])?;
    assert_eq!(rollout_hosts(&status), ["a1"]);
    assert!(!alice.ok(&["audit"])?.is_empty());
    // An admin's rollout across both tenants: the operator sees its own part, cannot steer it.
    let wide = alice.ok(&args(&["rollout", "start"], &ROLLOUT))?;
    let wide = wide.trim();
    let all = alice.json(&["rollout", "status", wide, "--format", "json"])?;
    assert_eq!(rollout_hosts(&all), ["a1", "b1"]);
    assert_eq!(all["eligible"], 2);
    let seen = op.json(&["rollout", "status", wide, "--format", "json"])?;
    assert_eq!(rollout_hosts(&seen), ["a1"]);
    assert_eq!(seen["eligible"], 1, "counts of its own hosts only");
    let listed = op.json(&["rollout", "list", "--format", "json"])?;
    assert_eq!(listed["rollouts"].as_array().unwrap().len(), 2);
    let pause = op.refused(&["rollout", "pause", wide])?;
    assert!(
        pause.contains("permission denied") && pause.contains("globex"),
        "{pause}"
    );
    op.ok(&["rollout", "pause", &id])?;
    // Its audit log holds nothing about the other tenant's host.
    let audit = op.ok(&["audit", "--format", "json"])?;
    assert!(!audit.contains("\"b1\""), "{audit}");
    assert!(audit.contains("rollout.start"), "{audit}");
    Ok(())
}

/// The job id of the first host of a rollout's first wave, once the scheduler started it.
fn first_job(op: &Operator, id: &str) -> Result<Option<String>> {
    let status = op.json(&["rollout", "status", id, "--format", "json"])?;
    Ok(status["waves"][0]["hosts"][0]["job_id"]
        .as_str()
        .map(str::to_string))
}

#[test]
fn a_rollout_of_a_tenant_under_the_two_person_rule_waits_for_a_second_operator() -> Result<()> {
    let fleet = Fleet::start()?;
    let alice = fleet.alice();
    let olga = fleet.operator("olga", "operator", &["acme"])?;
    let otto = fleet.operator("otto", "operator", &["acme"])?;
    let vera = fleet.operator("vera", "viewer", &["acme"])?;
    let denied = olga.refused(&["policy", "set", "--tenant", "acme", "--require-approval"])?;
    assert!(denied.contains("permission denied"), "{denied}");
    alice.ok(&["policy", "set", "--tenant", "acme", "--require-approval"])?;

    let id = olga
        .ok(&args(&["rollout", "start"], &ROLLOUT))?
        .trim()
        .to_string();
    let status = olga.json(&["rollout", "status", &id, "--format", "json"])?;
    assert_eq!(status["state"], "awaiting_approval", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("rollout approve"),
        "{status}"
    );

    // The scheduler goes on with other rollouts (globex needs no approval) and starts nothing
    // of this one.
    let globex = [
        "--to",
        "1.6.10",
        "--waves",
        "100%",
        "--max-parallel",
        "5",
        "--max-failures",
        "0",
        "--tenant",
        "globex",
    ];
    let other = alice.ok(&args(&["rollout", "start"], &globex))?;
    eventually("b1's job of the globex rollout", NEVER, || {
        first_job(&alice, other.trim()).ok().flatten()
    })?;
    assert_eq!(
        first_job(&alice, &id)?,
        None,
        "a1 was started before approval"
    );
    let report = alice.json(&["report", "--format", "json"])?;
    let a1 = boltfleet_tests::cluster::row(&report, "a1").unwrap();
    assert!(a1["last_job"].is_null(), "{a1}");

    // Not by its creator, not by a viewer: by a second operator of the tenant.
    let own = olga.refused(&["rollout", "approve", &id])?;
    assert!(
        own.contains("permission denied") && own.contains("another operator"),
        "{own}"
    );
    assert!(vera
        .refused(&["rollout", "approve", &id])?
        .contains("permission denied"));
    otto.ok(&["rollout", "approve", &id, "--reason", "reviewed the plan"])?;
    let job = eventually("a1's job after approval", NEVER, || {
        first_job(&alice, &id).ok().flatten()
    })?;
    assert!(job.starts_with('j'), "{job}");
    let status = alice.json(&["rollout", "status", &id, "--format", "json"])?;
    assert_eq!(status["state"], "running", "{status}");

    let audit = alice.json(&["audit", "--format", "json"])?;
    let entries = audit["entries"].as_array().unwrap();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"] == id.as_str())
            .cloned()
    };
    let started = find("rollout.start").expect("rollout.start audited");
    assert_eq!(started["actor"], "operator olga");
    assert!(
        started["detail"]
            .as_str()
            .unwrap()
            .contains("awaiting approval"),
        "{started}"
    );
    let approved = find("rollout.approve").expect("rollout.approve audited");
    assert_eq!(approved["actor"], "operator otto");
    Ok(())
}

#[test]
fn an_old_certificate_without_a_role_acts_as_admin_and_admins_manage_operators() -> Result<()> {
    let fleet = Fleet::start()?;
    // A certificate as `operator-cert` wrote them before roles: no role SAN at all.
    let ca = boltfleet_controller::ca::load_ca(&fleet.ctl.dir)?;
    let old = ca.issue(
        &Identity::operator("oldtimer")?,
        &[],
        Duration::from_secs(3600),
    )?;
    let dir = fleet.ctl.dir.join("ops-oldtimer");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.crt"), ca.cert_pem())?;
    std::fs::write(dir.join("oldtimer.crt"), &old.cert_pem)?;
    std::fs::write(dir.join("oldtimer.key"), &old.key_pem)?;
    let oldtimer = Operator {
        url: fleet.ctl.url.clone(),
        dir: dir.clone(),
        name: "oldtimer".into(),
    };
    assert_eq!(
        oldtimer.ok(&["whoami"])?,
        "operator oldtimer (admin of all tenants)\n"
    );
    assert_eq!(oldtimer.host_ids()?, ["a1", "b1"]);
    oldtimer.ok(&["freeze", "on"])?;
    oldtimer.ok(&["freeze", "off"])?;
    oldtimer.ok(&[
        "policy",
        "set",
        "--tenant",
        "globex",
        "--no-require-approval",
    ])?;

    // An admin issues a scoped certificate through the controller; revoking it takes effect
    // on the next call.
    let out = fleet.ctl.dir.join("ops-carol");
    let out_arg = out.to_string_lossy().into_owned();
    let issue = [
        "operator", "issue", "--name", "carol", "--role", "viewer", "--tenant", "globex",
    ];
    oldtimer.ok(&args(&issue, &["--out", &out_arg]))?;
    let carol = Operator {
        url: fleet.ctl.url.clone(),
        dir: out,
        name: "carol".into(),
    };
    assert_eq!(
        carol.ok(&["whoami"])?,
        "operator carol (viewer of tenants globex)\n"
    );
    assert_eq!(carol.host_ids()?, ["b1"]);
    assert!(carol
        .refused(&["operator", "list"])?
        .contains("permission denied"));
    let list = oldtimer.json(&["operator", "list", "--format", "json"])?;
    let names: Vec<&str> = list["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"carol") && names.contains(&"oldtimer"),
        "{list}"
    );
    // A CSR made elsewhere: only the certificate comes back, with the grant the admin chose.
    let (csr, _key) = new_csr(&Identity::operator("dave")?)?;
    let csr_file = fleet.ctl.dir.join("dave.csr");
    std::fs::write(&csr_file, csr)?;
    let csr_arg = csr_file.to_string_lossy().into_owned();
    let issue = [
        "operator", "issue", "--name", "dave", "--role", "operator", "--tenant", "acme",
    ];
    let pem = oldtimer.ok(&args(&issue, &["--csr", &csr_arg]))?;
    let der = boltfleet_common::pki::pem_certs(&pem)?.remove(0);
    let grant = boltfleet_common::pki::inspect(&der)?
        .grant
        .expect("a grant");
    assert_eq!(grant.to_string(), "operator of tenants acme");

    oldtimer.ok(&["operator", "revoke", "carol"])?;
    let refused = carol.refused(&["hosts"])?;
    assert!(
        refused.contains("permission denied") && refused.contains("revoked"),
        "{refused}"
    );
    Ok(())
}
