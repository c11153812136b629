//! Pure judgements of a job: its request, whether an update may go from the host's release to
//! the target, room for the backup, and which health checks newly fail.

use boltfleet_common::proto::{JobKind, RunJob};
use boltfleet_common::version::{classify, parse_release, release_tag, UpdateClass, Version};

use super::host::HealthFacts;
use super::model::{Kind, Request};
use crate::passbolt::healthcheck::comparable_name;

/// The only tracked file that may differ from the release before an update; the checkout
/// saves and restores it.
pub const EMAIL_CONFIG: &str = "app/Config/email.php";

/// A backup needs this many times the database's size free.
pub const SPACE_FACTOR: u64 = 2;

/// Whether `id` may name a job (and so a journal file and a backup file).
pub fn job_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a job from the controller and applies the defaults of its options. The error is the
/// one-line reason of the refusal.
pub fn request(job: &RunJob) -> Result<Request, String> {
    if !job_id_ok(&job.job_id) {
        return Err(format!(
            "invalid job id {:?}: expected 1-64 letters, digits, '-', '_' or '.'",
            job.job_id
        ));
    }
    let kind = match JobKind::try_from(job.kind) {
        Ok(JobKind::Update) => Kind::Update,
        Ok(JobKind::Rollback) => Kind::Rollback,
        Ok(JobKind::Backup) => Kind::Backup,
        Ok(JobKind::Healthcheck) => Kind::Healthcheck,
        Ok(JobKind::Unspecified) | Err(_) => {
            return Err(format!("unknown job kind {}", job.kind));
        }
    };
    let target = if kind == Kind::Update {
        parse_release(&job.target_version)
            .map_err(|e| format!("invalid target version: {e}"))?
            .to_string()
    } else {
        String::new()
    };
    let options = job.options.clone().unwrap_or_default();
    let mut answers = options.migration_answers;
    if answers.is_empty() {
        answers.push("n".to_string());
    }
    if let Some(bad) = answers
        .iter()
        .find(|a| a.contains(['\n', '\r']) || a.len() > 64)
    {
        return Err(format!(
            "invalid migration answer {bad:?}: one short line each"
        ));
    }
    Ok(Request {
        job_id: job.job_id.clone(),
        kind,
        target,
        answers,
        auto_rollback: !options.no_auto_rollback,
    })
}

/// The request as received, unvalidated but for its id: what a refusal is journaled under.
pub fn raw_request(job: &RunJob) -> Option<Request> {
    job_id_ok(&job.job_id).then(|| Request {
        job_id: job.job_id.clone(),
        kind: match JobKind::try_from(job.kind) {
            Ok(JobKind::Rollback) => Kind::Rollback,
            Ok(JobKind::Backup) => Kind::Backup,
            Ok(JobKind::Healthcheck) => Kind::Healthcheck,
            _ => Kind::Update,
        },
        target: job.target_version.chars().take(64).collect(),
        answers: Vec::new(),
        auto_rollback: true,
    })
}

/// Lines of `git status --porcelain` that block an update: anything but a changed
/// [`EMAIL_CONFIG`].
pub fn blocking_changes(porcelain: &[String]) -> Vec<String> {
    porcelain
        .iter()
        .filter(|line| {
            let (code, path) = line.split_at(line.len().min(3));
            let modified = code.trim().chars().all(|c| c == 'M') && !code.trim().is_empty();
            !(modified && path == EMAIL_CONFIG)
        })
        .cloned()
        .collect()
}

/// Whether the host may go from `current` (its HEAD's release tag) to `target`, which must be
/// among `releases` (the release tags present after fetching).
pub fn check_update(
    current: Option<&Version>,
    target: &Version,
    releases: &[Version],
    porcelain: &[String],
) -> Result<(), String> {
    let current = current
        .ok_or("HEAD is not on a release tag (vX.Y.Z): cannot tell which release is installed")?;
    let blocking = blocking_changes(porcelain);
    if !blocking.is_empty() {
        return Err(format!(
            "local modifications in the work tree: {} (only {EMAIL_CONFIG} may differ)",
            crate::text::excerpt(&blocking.join("\n"), 200)
        ));
    }
    match classify(current, target) {
        UpdateClass::AtTarget => return Err(format!("the host already runs {current}")),
        UpdateClass::Downgrade => {
            return Err(format!(
                "{current} -> {target} is a downgrade: refused (roll back instead)"
            ))
        }
        UpdateClass::Major => {
            return Err(format!(
                "{current} -> {target} is a major update: a separate manual upgrade, not done by boltfleet"
            ))
        }
        UpdateClass::Patch | UpdateClass::Minor => {}
    }
    if !releases.contains(target) {
        return Err(format!(
            "release tag {} does not exist in the repository (after fetching tags)",
            release_tag(target)
        ));
    }
    Ok(())
}

/// Whether `free` bytes hold a backup of a database of `database` bytes, with margin.
pub fn check_space(database: u64, free: u64) -> Result<(), String> {
    let needed = database.saturating_mul(SPACE_FACTOR);
    if free < needed {
        return Err(format!(
            "not enough room for the backup: {free} bytes free, {needed} needed ({SPACE_FACTOR}x the database's {database} bytes)"
        ));
    }
    Ok(())
}

/// Checks failing now that were not failing in `baseline`, leaving out `accepted` ones (the
/// operator's known failures). Names are compared without their numbers.
pub fn new_failures(baseline: &[String], failing: &[String], accepted: &[String]) -> Vec<String> {
    let before: Vec<String> = baseline.iter().map(|n| comparable_name(n)).collect();
    failing
        .iter()
        .filter(|n| !accepted.contains(n))
        .filter(|n| !before.contains(&comparable_name(n)))
        .cloned()
        .collect()
}

/// The health failures that fail a job step, and whether they were judged without a baseline.
/// With a baseline: the checks that newly fail. When the healthcheck command gave no checks
/// before (`baseline_missing`) but gives checks now, nothing can be compared, so the failing
/// checks an update can break ([`HealthFacts::breakable`]) count, less the accepted ones. When
/// it gives none now either, its one failure is the same as before.
pub fn health_failures(
    baseline: &[String],
    baseline_missing: bool,
    facts: &HealthFacts,
) -> (Vec<String>, bool) {
    if baseline_missing && facts.no_checks.is_none() {
        let judged = new_failures(baseline, &facts.breakable, &facts.accepted);
        return (judged, true);
    }
    (
        new_failures(baseline, &facts.failing, &facts.accepted),
        false,
    )
}

#[cfg(test)]
mod tests {
    use boltfleet_common::proto::JobOptions;

    use super::*;

    fn v(s: &str) -> Version {
        parse_release(s).unwrap()
    }

    fn update(target: &str) -> RunJob {
        RunJob {
            job_id: "j1".into(),
            kind: JobKind::Update as i32,
            target_version: target.into(),
            options: None,
        }
    }

    #[test]
    fn targets_must_be_plain_versions() {
        for bad in [
            "v1.3.2;touch x",
            "1.3.2;touch x",
            "--upload-pack=x",
            "1.3",
            "v1.3.2",
            "",
        ] {
            let err = request(&update(bad)).unwrap_err();
            assert!(err.starts_with("invalid target version"), "{bad}: {err}");
            assert!(err.contains("X.Y.Z"), "{err}");
        }
        let ok = request(&update("1.3.2")).unwrap();
        assert_eq!(ok.target, "1.3.2");
        assert_eq!(ok.answers, ["n"], "default answer");
        assert!(ok.auto_rollback);
    }

    #[test]
    fn job_ids_and_kinds_and_answers_are_checked() {
        for bad in ["", "../x", "-x", ".x", "a b", "a/b", &"x".repeat(65)] {
            let mut job = update("1.3.2");
            job.job_id = bad.into();
            assert!(request(&job).unwrap_err().contains("job id"), "{bad}");
        }
        let mut job = update("1.3.2");
        job.kind = 99;
        assert!(request(&job).unwrap_err().contains("kind"));
        job.kind = JobKind::Backup as i32;
        job.target_version = "junk".into();
        assert_eq!(request(&job).unwrap().kind, Kind::Backup);
        let mut job = update("1.3.2");
        job.options = Some(JobOptions {
            migration_answers: vec!["y\nrm".into()],
            no_auto_rollback: true,
        });
        assert!(request(&job).unwrap_err().contains("answer"));
        job.options = Some(JobOptions {
            migration_answers: vec!["y".into(), "n".into()],
            no_auto_rollback: true,
        });
        let ok = request(&job).unwrap();
        assert_eq!(ok.answers, ["y", "n"]);
        assert!(!ok.auto_rollback);
    }

    #[test]
    fn update_rules() {
        let releases: Vec<Version> = ["1.3.0", "1.3.2", "1.6.10", "2.0.0"].map(v).into();
        let clean: Vec<String> = Vec::new();
        let check = |cur: &str, to: &str| check_update(Some(&v(cur)), &v(to), &releases, &clean);
        assert_eq!(check("1.3.0", "1.3.2"), Ok(()));
        assert_eq!(check("1.3.2", "1.6.10"), Ok(()));
        let cases = [
            ("1.6.10", "2.0.0", "major"),
            ("1.6.10", "1.3.2", "downgrade"),
            ("1.3.2", "1.3.2", "already runs 1.3.2"),
            ("1.3.2", "1.3.9", "v1.3.9 does not exist"),
        ];
        for (cur, to, why) in cases {
            let err = check(cur, to).unwrap_err();
            assert!(err.contains(why), "{cur}->{to}: {err}");
        }
        let err = check_update(None, &v("1.3.2"), &releases, &clean).unwrap_err();
        assert!(err.contains("not on a release tag"), "{err}");
    }

    #[test]
    fn only_a_changed_email_config_may_differ() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(blocking_changes(&lines(&[" M app/Config/email.php"])).is_empty());
        assert!(blocking_changes(&lines(&["M  app/Config/email.php"])).is_empty());
        let blocking = blocking_changes(&lines(&[
            " M app/Config/email.php",
            " M README.md",
            "?? x.php",
            " D app/Config/email.php.default",
        ]));
        assert_eq!(blocking.len(), 3);
        let err = check_update(
            Some(&v("1.3.0")),
            &v("1.3.2"),
            &[v("1.3.2")],
            &lines(&[" M README.md"]),
        )
        .unwrap_err();
        assert!(
            err.contains("local modifications") && err.contains("README.md"),
            "{err}"
        );
    }

    #[test]
    fn backups_need_twice_the_database() {
        assert_eq!(check_space(100, 200), Ok(()));
        let err = check_space(100, 199).unwrap_err();
        assert!(err.contains("199 bytes free, 200 needed"), "{err}");
        assert_eq!(check_space(u64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn without_a_baseline_only_what_an_update_breaks_counts() {
        let cmd = "./app/Console/cake passbolt healthcheck".to_string();
        let baseline = vec![cmd.clone()];
        let after = HealthFacts {
            failing: vec![
                "App.fullBaseUrl does not validate. http://localhost.".into(),
                "SSL peer certificate does not validate".into(),
            ],
            ..HealthFacts::default()
        };
        assert_eq!(health_failures(&baseline, true, &after), (vec![], true));
        // Compared as before, every long-standing failure would be new.
        assert_eq!(health_failures(&baseline, false, &after).0.len(), 2);
        let broken = HealthFacts {
            failing: vec!["No default content found".into()],
            breakable: vec!["No default content found".into()],
            ..HealthFacts::default()
        };
        assert_eq!(
            health_failures(&baseline, true, &broken),
            (vec!["No default content found".to_string()], true)
        );
        let accepted = HealthFacts {
            accepted: vec!["No default content found".into()],
            ..broken.clone()
        };
        assert!(health_failures(&baseline, true, &accepted).0.is_empty());
        // Back on the old release (a rollback), the command again gives no checks: the same
        // one failure as before.
        let old = HealthFacts {
            failing: vec![cmd.clone()],
            no_checks: Some(cmd),
            ..HealthFacts::default()
        };
        assert_eq!(health_failures(&baseline, true, &old), (vec![], false));
    }

    #[test]
    fn new_failures_ignore_numbers_and_accepted_checks() {
        let baseline = vec!["Currently using 1.3.0 and it should be 1.6.10.".to_string()];
        let failing = vec![
            "Currently using 1.6.10 and it should be 1.6.11.".to_string(),
            "Cache is NOT working.".to_string(),
            "SSL peer certificate does not validate".to_string(),
        ];
        let accepted = vec!["SSL peer certificate does not validate".to_string()];
        assert_eq!(
            new_failures(&baseline, &failing, &accepted),
            ["Cache is NOT working."]
        );
    }
}
