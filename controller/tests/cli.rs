//! The controller binary's set-up commands and its handling of bad input.

use std::process::Command;

fn controller(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_boltfleet-controller"))
        .args(args)
        .output()
        .expect("run controller");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_prints_the_pin_and_never_replaces_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (code, stdout, stderr) = controller(&["init", "--data-dir", data, "--san", "ctl.example"]);
    assert_eq!(code, 0, "{stderr}");
    let pin = stdout.trim();
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");
    assert!(pin[7..].bytes().all(|b| b.is_ascii_hexdigit()));
    let ca_before = std::fs::read(dir.path().join("data/ca.key")).unwrap();
    let (code, _, stderr) = controller(&["init", "--data-dir", data]);
    assert_ne!(code, 0);
    assert!(stderr.contains("already holds a CA"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("data/ca.key")).unwrap(),
        ca_before
    );

    let out = dir.path().join("ops");
    let (code, _, stderr) = controller(&[
        "operator-cert",
        "--data-dir",
        data,
        "--name",
        "alice",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    for file in ["ca.crt", "alice.crt", "alice.key"] {
        assert!(out.join(file).exists(), "{file}");
    }
}

#[test]
fn serve_refuses_an_uninitialized_dir_or_bad_config_with_64() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    let (code, _, stderr) = controller(&["serve", "--data-dir", empty.to_str().unwrap()]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("init"), "{stderr}");

    let config = dir.path().join("controller.toml");
    std::fs::write(&config, "data_dir = '/tmp/x'\nlisten = 'not an address'\n").unwrap();
    let (code, _, stderr) = controller(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("listen"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn operator_cert_puts_role_and_tenants_in_the_certificate() {
    use boltfleet_common::grant::{Grant, Role};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    assert_eq!(controller(&["init", "--data-dir", data]).0, 0);
    let out = dir.path().join("ops");
    let out = out.to_str().unwrap();
    let base = ["operator-cert", "--data-dir", data, "--out", out, "--name"];
    let with = |extra: &[&str]| controller(&[&base[..], extra].concat());

    // A scoped role without a scope is a usage error, not a whole-fleet certificate.
    let (code, _, stderr) = with(&["bob", "--role", "operator"]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("--tenant"), "{stderr}");
    let (code, _, stderr) = with(&["root", "--role", "admin", "--tenant", "acme"]);
    assert_eq!(code, 64, "{stderr}");

    let (code, _, stderr) = with(&[
        "bob", "--role", "operator", "--tenant", "acme", "--tenant", "globex",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let pem = std::fs::read_to_string(dir.path().join("ops/bob.crt")).unwrap();
    let der = boltfleet_common::pki::pem_certs(&pem).unwrap().remove(0);
    let info = boltfleet_common::pki::inspect(&der).unwrap();
    let want = Grant::new(Role::Operator, &["acme".into(), "globex".into()]).unwrap();
    assert_eq!(info.grant, Some(want));
}
