//! End to end: a hostile host's text (escape sequences, forged rows, spreadsheet formulas)
//! listed by the real CLI reaches the terminal escaped and the spreadsheet as text; JSON keeps
//! it exactly.

use anyhow::Result;
use boltfleet_common::proto::Inventory;
use boltfleet_common::tls;
use boltfleet_tests::cluster::Controller;
use boltfleet_tests::raw_agent::{enrolled, report_once};

/// Bytes a terminal would act on: every control but the line feed, and the bidi overrides.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)))
        .collect()
}

#[test]
fn a_hostile_hosts_text_reaches_the_cli_escaped() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let tls = enrolled(&ctl, "evil1", "acme").await?;
        let inventory = Inventory {
            passbolt_version: "1.6.9".into(),
            errors: vec![
                "=cmd|' /C calc'!A0".into(),
                "\x1b[2J\x1b]0;owned\x07disk check failed".into(),
                "ok\nweb-forged  acme  1.6.10  -  online".into(),
            ],
            ..Inventory::default()
        };
        report_once(&ctl, &tls, inventory).await.map(drop)
    })?;

    for args in [&["hosts"][..], &["report"], &["report", "--format", "csv"]] {
        let out = ctl.cli_ok(args)?;
        assert!(
            out.contains("evil1"),
            "{args:?}: the host is listed:\n{out}"
        );
        assert!(out.contains("owned"), "{args:?}: its text is shown:\n{out}");
        assert_eq!(raw_controls(&out), [], "{args:?}:\n{out}");
        assert!(
            !out.lines().any(|l| l.starts_with("web-forged")),
            "{args:?}: a forged row:\n{out}"
        );
    }
    let csv = ctl.cli_ok(&["report", "--format", "csv"])?;
    assert_eq!(csv.lines().count(), 2, "a header and one host:\n{csv}");
    let row = csv.lines().nth(1).unwrap();
    for cell in row.split(',') {
        let cell = cell.trim_start_matches('"');
        assert!(
            !cell.starts_with(['=', '+', '@']),
            "formula cell {cell:?} in {row}"
        );
    }
    assert!(row.contains(",'=cmd|"), "the reasons cell is text: {row}");
    // JSON keeps the host's words exactly, for scripts.
    let report = ctl.report()?;
    let row = boltfleet_tests::cluster::row(&report, "evil1").expect("evil1 in the report");
    let reasons: Vec<&str> = row["health_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("=cmd|")),
        "{reasons:?}"
    );
    Ok(())
}
