//! The .deb packages as `scripts/package.sh --dev` builds them from the workspace's dev
//! binaries (no release build: it fits CI's budget): files, modes and owners, conffiles,
//! maintainer scripts, the packaged units through `systemd-analyze verify` and `security`, and
//! the packaged agent switching to the web user under its unit's capability limits.
//!
//! Needs the binaries `cargo test --workspace` builds, dpkg-deb, man and systemd-analyze
//! (`scripts/ensure-deps.sh`), and cargo-deb (installed by `scripts/package.sh` when missing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The target dir of this test run (the test executable is in `<target>/debug/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: Output) -> String {
    String::from_utf8(out.stdout).unwrap()
}

fn cargo_deb_available() -> bool {
    Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `path -> (mode string, owner)` from `dpkg-deb --contents`.
fn contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    text(run(Command::new("dpkg-deb").arg("--contents").arg(deb)))
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_string();
            (path, (fields[0].to_string(), fields[1].to_string()))
        })
        .collect()
}

/// One member of the control archive (`control`, `conffiles`, `postinst`, ...).
fn control_member(deb: &Path, member: &str) -> String {
    text(run(Command::new("dpkg-deb")
        .arg("--info")
        .arg(deb)
        .arg(member)))
}

fn assert_files(deb: &Path, expected: &[(&str, &str)], absent: &[&str]) {
    let files = contents(deb);
    for (path, mode) in expected {
        let (found, owner) = files
            .get(*path)
            .unwrap_or_else(|| panic!("{} lacks {path}: {files:#?}", deb.display()));
        assert_eq!(found, mode, "mode of {path}");
        assert_eq!(owner, "0/0", "owner of {path}");
    }
    for path in absent {
        assert!(
            !files.contains_key(*path),
            "{} carries {path}",
            deb.display()
        );
    }
}

fn deb(dir: &Path, package: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{package}_")) && name.ends_with(".deb")
        })
        .unwrap_or_else(|| panic!("no {package} .deb in {}", dir.display()))
}

#[test]
fn packages_install_binaries_docs_conffiles_and_hardened_units() {
    let out = tempfile::tempdir().unwrap();
    let built = Command::new("bash")
        .arg(workspace().join("scripts/package.sh"))
        .args(["--dev", "--out"])
        .arg(out.path())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    if !built.status.success() && !cargo_deb_available() {
        eprintln!(
            "SKIPPED: cargo-deb is not installed and `cargo install cargo-deb` failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        return;
    }
    assert!(
        built.status.success(),
        "package.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let agent = deb(out.path(), "boltfleet-agent");
    let controller = deb(out.path(), "boltfleet-controller");

    assert_files(
        &agent,
        &[
            ("/usr/bin/boltfleet-agent", "-rwxr-xr-x"),
            ("/etc/boltfleet/agent.toml", "-rw-r-----"),
            ("/usr/share/man/man1/boltfleet-agent.1.gz", "-rw-r--r--"),
            ("/usr/share/man/man1/boltfleet-agent-run.1.gz", "-rw-r--r--"),
            (
                "/usr/lib/systemd/system/boltfleet-agent.service",
                "-rw-r--r--",
            ),
        ],
        &["/usr/bin/boltfleet", "/usr/share/man/man1/boltfleet.1.gz"],
    );
    assert_files(
        &controller,
        &[
            ("/usr/bin/boltfleet-controller", "-rwxr-xr-x"),
            ("/usr/bin/boltfleet", "-rwxr-xr-x"),
            ("/etc/boltfleet/controller.toml", "-rw-r--r--"),
            ("/usr/share/man/man1/boltfleet.1.gz", "-rw-r--r--"),
            (
                "/usr/share/man/man1/boltfleet-rollout-start.1.gz",
                "-rw-r--r--",
            ),
            (
                "/usr/share/man/man1/boltfleet-controller.1.gz",
                "-rw-r--r--",
            ),
            (
                "/usr/share/bash-completion/completions/boltfleet",
                "-rw-r--r--",
            ),
            ("/usr/share/zsh/vendor-completions/_boltfleet", "-rw-r--r--"),
            (
                "/usr/share/fish/vendor_completions.d/boltfleet.fish",
                "-rw-r--r--",
            ),
            (
                "/usr/lib/systemd/system/boltfleet-controller.service",
                "-rw-r--r--",
            ),
        ],
        &[
            "/usr/bin/boltfleet-agent",
            "/usr/share/man/man1/boltfleet-agent.1.gz",
        ],
    );

    assert_eq!(
        control_member(&agent, "conffiles").trim(),
        "/etc/boltfleet/agent.toml"
    );
    assert_eq!(
        control_member(&controller, "conffiles").trim(),
        "/etc/boltfleet/controller.toml"
    );
    assert!(control_member(&controller, "control").contains("Depends: adduser"));

    // Enabled on install, never started by it; state dirs with their owners and modes.
    for (deb, unit) in [
        (&agent, "boltfleet-agent.service"),
        (&controller, "boltfleet-controller.service"),
    ] {
        let postinst = control_member(deb, "postinst");
        assert!(
            postinst.contains(&format!("deb-systemd-helper enable {unit}")),
            "{postinst}"
        );
        assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
        for script in ["postinst", "prerm", "postrm"] {
            let body = control_member(deb, script);
            run(Command::new("sh").args(["-n", "-c", &body]));
        }
    }
    let agent_postinst = control_member(&agent, "postinst");
    assert!(agent_postinst.contains(
        "install -d -o root -g root -m 0700 /var/lib/boltfleet-agent /var/backups/boltfleet"
    ));
    let controller_postinst = control_member(&controller, "postinst");
    assert!(controller_postinst.contains("adduser --system --group"));
    assert!(controller_postinst
        .contains("install -d -o boltfleet -g boltfleet -m 0700 /var/lib/boltfleet"));

    let root = tempfile::tempdir().unwrap();
    for deb in [&agent, &controller] {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()));
    }
    check_shipped_docs(root.path());
    for (unit, max_exposure) in [
        ("boltfleet-agent.service", 3.5),
        ("boltfleet-controller.service", 1.5),
    ] {
        verify_unit(root.path(), unit);
        let exposure = exposure(&root.path().join("usr/lib/systemd/system").join(unit));
        assert!(
            exposure <= max_exposure,
            "{unit}: exposure {exposure} > {max_exposure}"
        );
    }
    agent_switches_user_under_its_unit_limits(root.path());
}

/// The packaged completion script is what the packaged CLI prints, and the man pages render.
fn check_shipped_docs(root: &Path) {
    let printed = text(run(Command::new(root.join("usr/bin/boltfleet"))
        .args(["completions", "bash"])
        .env("HOME", root)));
    let shipped =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/boltfleet"))
            .unwrap();
    assert_eq!(printed, shipped);
    for page in [
        "boltfleet.1.gz",
        "boltfleet-controller.1.gz",
        "boltfleet-agent.1.gz",
    ] {
        let rendered = text(run(Command::new("man")
            .arg("-l")
            .arg(root.join("usr/share/man/man1").join(page))
            .env("MANPAGER", "cat")));
        assert!(rendered.contains("SYNOPSIS"), "{page}: {rendered}");
    }
}

/// `systemd-analyze verify` on the packaged unit with its binary at the extracted location
/// (the only change) and the packaged man pages for its `Documentation=`: no error, no warning.
fn verify_unit(root: &Path, unit: &str) {
    let packaged = std::fs::read_to_string(root.join("usr/lib/systemd/system").join(unit)).unwrap();
    let bin = root.join("usr/bin");
    let relocated = packaged.replace("=/usr/bin/", &format!("={}/", bin.display()));
    assert_ne!(relocated, packaged, "{unit} runs nothing from /usr/bin");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(&path, relocated).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .expect("systemd-analyze is installed (scripts/ensure-deps.sh)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{unit}: {stderr}"
    );
}

/// The overall exposure `systemd-analyze security --offline=yes` gives the unit file.
fn exposure(unit: &Path) -> f64 {
    let report = text(run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)));
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in {report}"));
    line.split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line}"))
}

/// The packaged agent, run under its unit's `CapabilityBoundingSet` and `NoNewPrivileges`
/// (with `setpriv`), still runs passbolt's commands as the web user: its PHP probe reports
/// `uid.gid` of `nobody` from a fake `php`. Needs root; said and skipped otherwise.
fn agent_switches_user_under_its_unit_limits(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let is_root = text(run(Command::new("id").arg("-u"))).trim() == "0";
    let nobody = Command::new("id").args(["-u", "nobody"]).output();
    let Some(uid) = nobody
        .ok()
        .filter(|o| o.status.success() && is_root)
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    else {
        eprintln!("SKIPPED the user-switch check: it needs root and a nobody user");
        return;
    };
    let gid = text(run(Command::new("id").args(["-g", "nobody"])));
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/boltfleet-agent.service"))
        .unwrap();
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the agent unit sets no {key}"))
            .to_string()
    };
    let caps: Vec<String> = setting("CapabilityBoundingSet=")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    assert!(caps.contains(&"+setuid".to_string()), "{caps:?}");
    let bounding = format!("-all,{}", caps.join(","));
    let mut setpriv = Command::new("setpriv");
    if setting("NoNewPrivileges=") == "yes" {
        setpriv.arg("--no-new-privs");
    }

    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::set_permissions(base, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir(base.join("passbolt")).unwrap();
    let php = base.join("php");
    std::fs::write(&php, "#!/bin/sh\necho \"$(id -u).$(id -g).0\"\n").unwrap();
    std::fs::set_permissions(&php, PermissionsExt::from_mode(0o755)).unwrap();
    let config = base.join("agent.toml");
    let toml = format!(
        "controller = 'https://127.0.0.1:1'\nstate_dir = '{}'\n[passbolt]\nroot = '{}'\nweb_user = 'nobody'\nphp = '{}'\n",
        base.join("state").display(),
        base.join("passbolt").display(),
        php.display()
    );
    std::fs::write(&config, toml).unwrap();
    let inventory = text(run(setpriv
        .args(["--bounding-set", &bounding, "--"])
        .arg(root.join("usr/bin/boltfleet-agent"))
        .args(["inventory", "--config"])
        .arg(&config)));
    let inventory: serde_json::Value = serde_json::from_str(&inventory).unwrap();
    assert_eq!(
        inventory["php_version"],
        format!("{uid}.{}.0", gid.trim()),
        "{inventory:#}"
    );
}
