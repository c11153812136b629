//! The passbolt-like host fixture and the MariaDB harness are real: real git tags and diffs, a
//! real database changed by the migrations, and console outputs in passbolt's formats.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use boltfleet_tests::fixture::{
    self, latest_migration, migrations, sample, PassboltHost, PassboltRepo, JUNK_TAGS, RELEASES,
};
use boltfleet_tests::mysql::{self, ServerKind, TestDatabase};
use tempfile::TempDir;

fn host(version: &str) -> (TempDir, TestDatabase, PassboltHost) {
    host_with(version, |b| b)
}

fn host_with(
    version: &str,
    f: impl FnOnce(fixture::HostBuilder) -> fixture::HostBuilder,
) -> (TempDir, TestDatabase, PassboltHost) {
    let db = mysql::server().create_database().expect("test database");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = f(PassboltHost::builder(version))
        .create(dir.path(), &db)
        .expect("host");
    (dir, db, host)
}

fn checkout(host: &PassboltHost, version: &str) {
    host.git(&["checkout", "-q", &format!("tags/v{version}")])
        .expect("checkout");
}

fn count(db: &TestDatabase, sql: &str) -> u64 {
    db.query_value(sql)
        .expect("query")
        .expect("a value")
        .parse()
        .expect("a number")
}

fn is_release_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn template_has_exactly_the_releases_and_the_junk_tags() {
    let repo = PassboltRepo::template();
    let tags: BTreeSet<String> = repo.tags().unwrap().into_iter().collect();
    let mut expected: BTreeSet<String> = RELEASES.iter().map(|r| format!("v{r}")).collect();
    expected.extend(JUNK_TAGS.iter().map(|t| t.to_string()));
    assert_eq!(tags, expected);

    let releases: BTreeSet<String> = tags.iter().filter(|t| is_release_tag(t)).cloned().collect();
    let expected: BTreeSet<String> = RELEASES.iter().map(|r| format!("v{r}")).collect();
    assert_eq!(releases, expected, "junk tags must not look like releases");

    // Release tags are annotated, by the fixture's identity.
    let kind = fixture::git_command(repo.path())
        .args(["cat-file", "-t", "v1.3.0"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&kind.stdout).trim(), "tag");
    let author = fixture::git_command(repo.path())
        .args(["log", "-1", "--format=%an <%ae>", "v1.6.10"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&author.stdout).trim(),
        format!("{} <{}>", fixture::GIT_NAME, fixture::GIT_EMAIL)
    );
}

#[test]
fn each_release_carries_its_version_file_and_layout() {
    let repo = PassboltRepo::template();
    let show = |spec: &str| {
        let out = fixture::git_command(repo.path())
            .args(["show", spec])
            .output()
            .unwrap();
        assert!(out.status.success(), "git show {spec}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for release in RELEASES {
        let v = fixture::parse_version(release).unwrap();
        if v.0 == 1 {
            let text = show(&format!("v{release}:app/Config/version.php"));
            assert!(text.starts_with("<?php\n/**\n * Passbolt ~ Open source password manager"));
            assert!(text.contains("$config = ["), "{text}");
            assert!(text.contains(&format!("'number' => '{release}'")), "{text}");
            let cake = fixture::git_command(repo.path())
                .args(["ls-tree", &format!("v{release}"), "app/Console/cake"])
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&cake.stdout).starts_with("100755 blob"),
                "cake is executable in v{release}"
            );
        } else {
            let text = show(&format!("v{release}:config/version.php"));
            assert!(text.contains("return ["), "{text}");
            assert!(
                text.contains(&format!("'version' => '{release}'")),
                "{text}"
            );
            show(&format!("v{release}:bin/cake"));
        }
    }
    // The one-line v1 format of DESIGN.md, on older releases.
    assert!(show("v1.0.12:app/Config/version.php")
        .contains("$config = ['App.version' => ['number' => '1.0.12', 'name' => 'Chelsea']];"));
    // Pre-release tags point at pre-release trees.
    assert!(show("v1.6.10-rc.1:app/Config/version.php").contains("'number' => '1.6.10-rc.1'"));
    let ignore = show("v1.6.10:.gitignore");
    assert!(ignore.contains("/app/Config/database.php") && ignore.contains("/app/tmp/"));
}

#[test]
fn up_to_date_status_is_passbolts_real_output() {
    // The fixture's migration names are passbolt's: v1.1.0 and v1.6.10 match the samples byte
    // for byte.
    let (_dir, _db, h) = host("1.1.0");
    let out = h.migration_status().unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, sample("captured-v1/status_uptodate_v1.1.0.txt"));

    let (_dir, _db, h) = host("1.6.10");
    let out = h.migration_status().unwrap();
    assert_eq!(
        out.stdout,
        sample("reconstructed/v1/migration_status_uptodate_1.6.10.txt")
    );
}

#[test]
fn up_to_date_status_at_a_patch_release() {
    // v1.3.2 carries its own migration (real v1.3.2 did not): same structure as the capture,
    // current == latest.
    let (_dir, _db, h) = host("1.3.2");
    let out = h.migration_status().unwrap();
    assert!(out.success());
    let ours: Vec<&str> = out.stdout.lines().collect();
    let real = sample("captured-v1/status_uptodate_v1.3.2.txt");
    let real: Vec<&str> = real.lines().collect();
    assert_eq!(ours.len(), real.len());
    for (a, b) in ours.iter().zip(&real) {
        if b.starts_with("  #14") {
            assert!(a.starts_with("  #14"), "{a}");
        } else {
            assert_eq!(a, b);
        }
    }
    assert_eq!(ours[5], "  #1481802101 1481802101_Migration_1.3.2");
    assert_eq!(ours[5], ours[7], "current == latest");
    assert_eq!(
        latest_migration("1.3.2"),
        Some("1481802101_Migration_1.3.2")
    );
}

#[test]
fn pending_migrations_show_in_status() {
    // v1.3.0 code with the database of v1.1.0: the real capture, byte for byte.
    let (_dir, _db, h) = host_with("1.3.0", |b| b.pending(2));
    let out = h.migration_status().unwrap();
    assert!(out.success());
    assert_eq!(
        out.stdout,
        sample("captured-v1/status_pending_at_v1.3.2.txt")
    );
    assert_eq!(
        h.pending_migrations().unwrap(),
        vec!["1474629203_Migration_1.2.0", "1479926461_Migration_1.3.0"]
    );
    assert_eq!(
        h.applied_migrations().unwrap(),
        vec!["1465367816_Migration_1.1.0"]
    );
}

#[test]
fn status_without_any_app_migration_applied() {
    let (_dir, _db, h) = host_with("1.1.0", |b| b.pending(1));
    let out = h.migration_status().unwrap();
    assert!(out.success());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[4..8],
        [
            "Current version:",
            "  None applied.",
            "Latest version:",
            "  #1465367816 1465367816_Migration_1.1.0"
        ]
    );
}

#[test]
fn v1_0_has_no_migrations_plugin() {
    let (_dir, db, h) = host("1.0.12");
    assert!(!db.has_table("schema_migrations").unwrap());
    assert!(db.has_table("categories").unwrap());
    let out = h.migration_status().unwrap();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Plugin Migrations could not be found"),
        "{out:?}"
    );
    assert!(migrations("1.0.12").is_empty());
}

#[test]
fn the_database_has_what_the_migrations_created() {
    let (_dir, db, _h) = host("1.3.2");
    // 1.1.0: a new table and a changed row; 1.2.0: trimmed URIs; 1.3.0: the statistics
    // answer; 1.3.2: upper-case fingerprints. The 1.4.0 drops have not happened.
    assert!(db.has_table("email_queue").unwrap());
    assert_eq!(
        db.query_value("SELECT description FROM roles WHERE name = 'user'")
            .unwrap()
            .unwrap(),
        "Logged in user (can receive notifications)"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM resources WHERE uri <> TRIM(uri)"),
        0
    );
    assert_eq!(
        db.query_value("SELECT value FROM settings WHERE property = 'statistics'")
            .unwrap()
            .unwrap(),
        "n"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM gpgkeys WHERE fingerprint <> UPPER(fingerprint)"
        ),
        0
    );
    assert!(db.has_table("categories").unwrap());
    assert!(db
        .columns("users")
        .unwrap()
        .contains(&"last_logged_in".to_string()));
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM schema_migrations WHERE type = 'Migrations'"
        ),
        3
    );

    let (_dir, db, _h) = host("1.6.10");
    for gone in ["categories", "tags", "phone_numbers", "authentication_logs"] {
        assert!(!db.has_table(gone).unwrap(), "{gone} dropped by 1.4.0");
    }
    assert!(!db
        .columns("permissions_types")
        .unwrap()
        .contains(&"binary".to_string()));
    assert!(db
        .columns("groups_users")
        .unwrap()
        .contains(&"is_admin".to_string()));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM groups_users WHERE is_admin = 1"),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM authentication_tokens WHERE active = 0"
        ),
        0
    );
    assert!(db.has_table("account_settings").unwrap());
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM schema_migrations WHERE type = 'app'"
        ),
        8
    );
}

#[test]
fn config_default_diff_runs_backwards() {
    let (_dir, _db, h) = host("1.1.0");
    // Real semantics: diff NEW OLD, so a template added in the new release shows as D.
    let out = h
        .git(&[
            "diff",
            "--name-status",
            "v1.3.2",
            "v1.1.0",
            "--",
            "*.php.default",
        ])
        .unwrap();
    assert_eq!(
        out,
        "M\tapp/Config/app.php.default\nM\tapp/Config/core.php.default\nD\tapp/Config/passbolt.php.default\n"
    );
    // A patch release changes fewer.
    let out = h
        .git(&[
            "diff",
            "--name-status",
            "v1.3.2",
            "v1.3.0",
            "--",
            "*.php.default",
        ])
        .unwrap();
    assert_eq!(out, "M\tapp/Config/core.php.default\n");
    let out = h
        .git(&[
            "diff",
            "--name-status",
            "v1.4.0",
            "v1.3.2",
            "--",
            "*.php.default",
        ])
        .unwrap();
    assert_eq!(out, "M\tapp/Config/database.php.default\n");
    let out = h
        .git(&[
            "diff",
            "--name-status",
            "v1.6.10",
            "v1.5.1",
            "--",
            "*.php.default",
        ])
        .unwrap();
    assert_eq!(
        out,
        "M\tapp/Config/app.php.default\nM\tapp/Config/core.php.default\nM\tapp/Config/passbolt.php.default\n"
    );
    // email.php is tracked until 1.4.0.
    let out = h
        .git(&[
            "diff",
            "--name-status",
            "v1.5.1",
            "v1.4.0",
            "--",
            "app/Config/email.php",
        ])
        .unwrap();
    assert_eq!(out, "A\tapp/Config/email.php\n");
}

#[test]
fn email_php_goes_away_at_1_5_1() {
    // Unedited: the checkout deletes it.
    let (_dir, _db, h) = host("1.4.0");
    assert!(h.root.join("app/Config/email.php").exists());
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), "");
    checkout(&h, "1.5.1");
    assert!(!h.root.join("app/Config/email.php").exists());

    // Edited: the checkout aborts.
    let (_dir, _db, h) = host_with("1.4.0", |b| b.edited_email_config());
    assert_eq!(
        h.git(&["status", "--porcelain"]).unwrap(),
        " M app/Config/email.php\n"
    );
    let out = h
        .git_command()
        .args(["checkout", "-q", "tags/v1.5.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("app/Config/email.php"));

    // From 1.5.1 on it is local and ignored.
    let (_dir, _db, h) = host_with("1.5.1", |b| b.edited_email_config());
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), "");
    assert!(std::fs::read_to_string(h.root.join("app/Config/email.php"))
        .unwrap()
        .contains(PassboltHost::EDITED_EMAIL_MARKER));
}

#[test]
fn hosts_are_clean_unless_asked_otherwise() {
    let (_dir, _db, h) = host("1.5.1");
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), "");
    assert_eq!(h.installed_version().unwrap(), "1.5.1");
    assert_eq!(
        h.git(&["describe", "--tags", "--exact-match"])
            .unwrap()
            .trim(),
        "v1.5.1"
    );
    let db_php = std::fs::read_to_string(h.root.join("app/Config/database.php")).unwrap();
    assert!(db_php.contains("'datasource' => 'Database/Mysql'"));
    assert!(db_php.contains(&format!("'database' => '{}'", h.db_name)));
    assert!(h
        .root
        .join("app/tmp/cache/persistent")
        .read_dir()
        .unwrap()
        .next()
        .is_some());

    let (_dir, _db, h) = host_with("1.5.1", |b| b.dirty());
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), " M README.md\n");
}

fn healthcheck_lines(out: &fixture::CakeOutput) -> Vec<String> {
    out.stdout_clean().lines().map(str::to_string).collect()
}

#[test]
fn healthcheck_follows_passbolts_format_and_state() {
    let (_dir, db, h) = host("1.6.10");
    let out = h.healthcheck().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out
        .stdout
        .contains(" Healthcheck shell........\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}        \n"));
    // The real capture, but for the number of tables.
    let tables = db.tables().unwrap().len();
    let real = sample("captured-v1/healthcheck_v1.6.10_as_web_user.txt").replace(
        " [PASS] 20 tables found",
        &format!(" [PASS] {tables} tables found"),
    );
    assert_eq!(out.stdout, real);
    let lines = healthcheck_lines(&out);
    assert!(lines.contains(&" [PASS] The database schema up to date.".to_string()));
    assert!(lines.contains(&" [PASS] Cache is working.".to_string()));
    assert!(lines.contains(&format!(" [PASS] {tables} tables found")));
    assert!(
        lines.contains(&"  6 error(s) found. Hang in there!".to_string()),
        "{lines:#?}"
    );

    // The switch file makes named checks fail.
    h.set_health_failures(&["cache", "gpg_decrypt"]).unwrap();
    let lines = healthcheck_lines(&h.healthcheck().unwrap());
    assert!(lines.contains(&" [FAIL] Cache is NOT working.".to_string()));
    assert!(
        lines.contains(&" [FAIL] The private key cannot be used to decrypt a message".to_string())
    );
    assert!(lines.contains(&"  8 error(s) found. Hang in there!".to_string()));
    h.clear_health_failures().unwrap();
    let lines = healthcheck_lines(&h.healthcheck().unwrap());
    assert!(lines.contains(&" [PASS] Cache is working.".to_string()));

    // An unreachable database.
    db.set_user_enabled(false).unwrap();
    let lines = healthcheck_lines(&h.healthcheck().unwrap());
    let status = h.migration_status().unwrap();
    db.set_user_enabled(true).unwrap();
    assert_eq!(status.code, 1);
    assert!(status.stderr.contains("could not be created"), "{status:?}");
    assert!(lines
        .contains(&" [FAIL] The application is not able to connect to the database.".to_string()));
    assert!(lines.contains(&" [FAIL] The database schema is not up to date.".to_string()));
}

#[test]
fn healthcheck_sees_pending_migrations_and_builder_failures() {
    let (_dir, _db, h) = host_with("1.6.10", |b| b.pending(1).failing_health(&["gpg_encrypt"]));
    let lines = healthcheck_lines(&h.healthcheck().unwrap());
    assert!(lines.contains(&" [FAIL] The database schema is not up to date.".to_string()));
    assert!(lines.contains(&"  [HELP] Run the migration scripts:".to_string()));
    assert!(lines.contains(
        &" [FAIL] The public key cannot be used to encrypt and sign a message".to_string()
    ));
}

#[test]
fn healthcheck_is_a_v1_6_command() {
    let (_dir, _db, h) = host("1.5.1");
    let out = h.healthcheck().unwrap();
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains("[PASS]"));
    let unknown = h.run_cake(&["Nope.nothing"], None).unwrap();
    assert_eq!(unknown.code, 1);
    assert!(!unknown.stderr.is_empty());
}

#[test]
fn run_all_from_1_1_0_to_1_6_10_answers_the_prompt() {
    let (_dir, db, h) = host("1.1.0");
    let before = db.checksum_tables().unwrap();
    assert_eq!(
        before,
        db.checksum_tables().unwrap(),
        "checksums are stable"
    );
    checkout(&h, "1.6.10");
    let out = h.run_migrations(Some("n\n")).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    // The capture, plus this fixture's 1.3.2 migration.
    let expected = sample("captured-v1/run_all_v1.1.0_to_v1.6.10_prompt_answered_n_exit0.txt")
        .replace(
            "[n] >   [1485789723]",
            "[n] >   [1481802101] 1481802101_Migration_1.3.2 (2016-12-15 11:41:41)\n      > Changing field \"fingerprint\" from table \"gpgkeys\".\n\n  [1485789723]",
        );
    assert_eq!(out.stdout, expected);
    let status = h.migration_status().unwrap();
    assert_eq!(
        status.stdout,
        sample("reconstructed/v1/migration_status_uptodate_1.6.10.txt")
    );
    assert!(!db.has_table("categories").unwrap());
    let after = db.checksum_tables().unwrap();
    assert_ne!(before, after);
    assert!(!after.contains_key("categories") && after.contains_key("account_settings"));
}

#[test]
fn run_all_prompt_matches_the_capture_and_stores_the_answer() {
    let (_dir, db, h) = host("1.2.0");
    checkout(&h, "1.3.0");
    let out = h.run_migrations(Some("y\n")).unwrap();
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        sample("captured-v1/run_all_v1.2.0_to_v1.3.0_prompt_answered_n_exit0.txt")
    );
    assert_eq!(
        db.query_value("SELECT value FROM settings WHERE property = 'statistics'")
            .unwrap()
            .unwrap(),
        "y"
    );
}

#[test]
fn run_all_without_an_answer_stops_half_migrated() {
    let (_dir, db, h) = host("1.1.0");
    checkout(&h, "1.3.0");
    let out = h.run_migrations(None).unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.ends_with("(y/n) \n[n] > "), "{:?}", out.stdout);
    assert_eq!(
        h.applied_migrations().unwrap(),
        vec!["1465367816_Migration_1.1.0", "1474629203_Migration_1.2.0"]
    );
    assert!(!db.has_table("settings").unwrap());
    let status = h.migration_status().unwrap();
    assert!(status.stdout.contains("Current version:\n  #1474629203 1474629203_Migration_1.2.0\nLatest version:\n  #1479926461 1479926461_Migration_1.3.0\n"));
}

#[test]
fn run_all_php_fatal_applies_nothing() {
    let (_dir, db, h) = host("1.1.0");
    checkout(&h, "1.3.0");
    h.set_php_fatal(true).unwrap();
    let before = db.checksum_tables().unwrap();
    let out = h.run_migrations(Some("n\n")).unwrap();
    assert_eq!(out.code, 255);
    let root = h.root.canonicalize().unwrap();
    let expected = sample("captured-v1/run_all_v1.1.0_to_v1.3.0_php71_fatal_exit255.txt")
        .replace("/var/www/passbolt", &root.to_string_lossy());
    assert_eq!(out.stdout, expected);
    assert_eq!(db.checksum_tables().unwrap(), before);
    h.set_php_fatal(false).unwrap();
    assert_eq!(h.run_migrations(Some("n\n")).unwrap().code, 0);
    assert!(h.pending_migrations().unwrap().is_empty());
}

#[test]
fn run_all_error_halfway_still_says_completed() {
    let (_dir, db, h) = host("1.3.2");
    checkout(&h, "1.5.1");
    h.set_migration_error(Some("1.4.0")).unwrap();
    let out = h.run_migrations(Some("n\n")).unwrap();
    assert_eq!(out.code, 0, "exit code cannot be trusted");
    assert!(out
        .stdout
        .contains("There was an error during a migration. \n"));
    assert!(out.stdout.ends_with("All migrations have completed.\n\n"));
    // Half of 1.4.0 happened: some tables dropped, others not; not recorded as applied.
    assert!(!db.has_table("categories").unwrap());
    assert!(db.has_table("tags").unwrap());
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM permissions WHERE aco = 'Category'"
        ),
        0
    );
    assert_eq!(
        h.pending_migrations().unwrap(),
        vec!["1485789723_Migration_1.4.0", "1492775680_Migration_1.5.0"]
    );
    let status = h.migration_status().unwrap();
    assert!(status.stdout.contains("Current version:\n  #1481802101 1481802101_Migration_1.3.2\nLatest version:\n  #1492775680"));

    // Without the switch, re-running hits the real SQL error of a half-applied migration.
    h.set_migration_error(None).unwrap();
    let out = h.run_migrations(Some("n\n")).unwrap();
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .contains("The error was: 'SQLSTATE[42S02]: 1051 Unknown table"),
        "{}",
        out.stdout
    );
    assert_eq!(h.pending_migrations().unwrap().len(), 2);
}

#[test]
fn run_all_with_nothing_to_do() {
    let (_dir, _db, h) = host("1.6.10");
    let out = h.run_migrations(None).unwrap();
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        sample("reconstructed/v1/migration_run_all_nothing_to_do.txt")
    );
}

#[test]
fn v2_host() {
    let (_dir, db, h) = host_with("2.0.0", |b| b.pending(1));
    assert_eq!(h.installed_version().unwrap(), "2.0.0");
    assert_eq!(h.cake_path(), "./bin/cake");
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), "");
    let out = h
        .run_cake(&["migrations", "status", "-f", "json"], None)
        .unwrap();
    assert!(out.success(), "{out:?}");
    let json = out.stdout.lines().last().unwrap();
    let list: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(list[0]["status"], "up");
    assert_eq!(list[0]["name"], "V162InitialMigration");
    assert_eq!(list[1]["status"], "down");
    let out = h.run_migrations(None).unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out
        .stdout
        .contains(" == 20180413102400 V200ProfilesAvatars: migrated"));
    assert!(db.has_table("avatars").unwrap());
    assert!(h.pending_migrations().unwrap().is_empty());
    let hc = h.healthcheck().unwrap();
    assert!(hc.success());
    assert!(hc
        .stdout_clean()
        .contains(" [PASS] The database schema is up to date."));
}

#[test]
fn test_databases_are_isolated_and_dropped() {
    let server = mysql::server();
    let a = server.create_database().unwrap();
    let b = server.create_database().unwrap();
    assert_ne!(a.name, b.name);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&a.option_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    a.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'a\\tb'), (2, NULL);")
        .unwrap();
    assert_eq!(
        a.query("SELECT id, v FROM t ORDER BY id").unwrap(),
        vec![
            vec!["1".to_string(), "a\tb".into()],
            vec!["2".into(), "NULL".into()]
        ]
    );
    // b's user cannot see a's database.
    let err = b.query(&format!("SELECT * FROM `{}`.t", a.name));
    assert!(err.is_err());
    let sums = a.checksum_tables().unwrap();
    assert_eq!(sums.keys().collect::<Vec<_>>(), vec!["t"]);
    a.empty().unwrap();
    assert!(a.tables().unwrap().is_empty());

    let name = a.name.clone();
    drop(a);
    let left = server
        .admin_query(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
        ))
        .unwrap();
    assert_eq!(left[0][0], "0");
    let users = server
        .admin_query(&format!(
            "SELECT COUNT(*) FROM mysql.user WHERE User = '{name}'"
        ))
        .unwrap();
    assert_eq!(users[0][0], "0");
}

/// Run by `private_server_when_forced` in a child process with `BOLTFLEET_TEST_MYSQL_PRIVATE=1`.
#[test]
#[ignore = "run by private_server_when_forced"]
fn private_server_child() {
    let server = mysql::server();
    assert_eq!(server.kind(), ServerKind::Private);
    println!("WORK_DIR={}", server.work_dir().display());
    let db = server.create_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h = PassboltHost::create(dir.path(), "1.3.0", &db).unwrap();
    let out = h.migration_status().unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out
        .stdout
        .contains("  #1479926461 1479926461_Migration_1.3.0\nLatest version:"));
}

#[test]
fn private_server_when_forced() {
    if std::env::var_os(mysql::ENV_PRIVATE).is_some() {
        return; // this process already is the child
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "private_server_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(mysql::ENV_PRIVATE, "1")
        .env_remove(mysql::ENV_CNF)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let work_dir = stdout
        .lines()
        .find_map(|l| l.split_once("WORK_DIR=").map(|(_, rest)| rest.trim()))
        .expect("child printed its work dir");
    // The server stops and its directory goes away once the child has exited.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(work_dir).exists() {
        assert!(Instant::now() < deadline, "{work_dir} still there");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn passbolt_commands_refuse_root_when_the_web_user_owns_the_files() {
    let (_dir, _db, h) = host("1.6.10");
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if uid.ok() != Some(0) {
        return; // only root can be refused
    }
    std::os::unix::fs::chown(&h.root, Some(65534), None).unwrap();
    let out = h.healthcheck().unwrap();
    std::os::unix::fs::chown(&h.root, Some(0), None).unwrap();
    assert_eq!(out.code, 1);
    let root = h.root.canonicalize().unwrap();
    assert_eq!(
        out.stdout,
        sample("reconstructed/v1/healthcheck_as_root_exit1.txt")
            .replace("/var/www/passbolt", &root.to_string_lossy())
    );
}

#[test]
fn first_update_to_a_release_with_the_migrations_plugin() {
    let (_dir, db, h) = host("1.0.12");
    checkout(&h, "1.1.0");
    let status = h.migration_status().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(status.stdout.contains(
        "Current version:\n  None applied.\nLatest version:\n  #1465367816 1465367816_Migration_1.1.0\n"
    ));
    let out = h.run_migrations(None).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(
        "  [1465367816] 1465367816_Migration_1.1.0\n      > Creating table \"email_queue\".\n"
    ));
    assert!(db.has_table("email_queue").unwrap());
    assert_eq!(
        h.migration_status().unwrap().stdout,
        sample("captured-v1/status_uptodate_v1.1.0.txt")
    );
}

#[test]
fn v1_trees_track_cache_placeholders_and_1_3_0_leaves_runtime_config_behind() {
    let (_dir, _db, h) = host("1.2.0");
    for placeholder in [
        "app/tmp/cache/models/empty",
        "app/tmp/cache/persistent/empty",
    ] {
        assert!(h.root.join(placeholder).is_file(), "{placeholder}");
        assert_eq!(
            h.git(&["ls-files", placeholder]).unwrap().trim(),
            placeholder
        );
    }
    // The cache files beside them are ignored.
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), "");
    assert!(h
        .root
        .join("app/tmp/cache/persistent/myapp_cake_core_file_map")
        .is_file());

    // The 1.3.0 migration writes app/tmp/config/, which 1.3.0's .gitignore does not cover...
    checkout(&h, "1.3.0");
    let out = h.run_migrations(Some("n\n")).unwrap();
    assert!(out.success(), "{out:?}");
    let stats = h.root.join("app/tmp/config/anonymous_statistics.php");
    assert!(std::fs::read_to_string(&stats)
        .unwrap()
        .contains("'send' => false"));
    assert_eq!(
        h.git(&["status", "--porcelain"]).unwrap(),
        "?? app/tmp/config/\n"
    );
    // ...1.6's does, and going back to an older tag shows it again.
    checkout(&h, "1.6.10");
    assert_eq!(h.git(&["status", "--porcelain"]).unwrap(), "");
    checkout(&h, "1.2.0");
    assert_eq!(
        h.git(&["status", "--porcelain"]).unwrap(),
        "?? app/tmp/config/\n"
    );
}

#[test]
fn a_database_user_can_lose_a_privilege() {
    let (_dir, db, _h) = host("1.3.2");
    db.exec("CREATE TABLE scratch (id int)").unwrap();
    db.revoke(&["DROP"]).unwrap();
    let err = db.exec("DROP TABLE scratch").unwrap_err().to_string();
    assert!(err.contains("DROP command denied"), "{err}");
    db.exec("INSERT INTO scratch VALUES (1)").unwrap();
    assert!(db.revoke(&["DROP; x"]).is_err());
}
