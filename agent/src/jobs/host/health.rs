//! The health checks a job compares before and after: the status URL and passbolt's own
//! healthcheck command (run by `passbolt::checks`), with what an update can break.

use super::HealthFacts;
use crate::config::AgentConfig;
use crate::exec::Runner;
use crate::passbolt::checks;
use crate::passbolt::healthcheck::{Check, CheckStatus};

/// Sections of passbolt's healthcheck whose checks an update can break (the PHP the new code
/// needs, writable temp dirs, config files a checkout adds or removes, the database and its
/// schema). The others (core config, SSL, GPG, application configuration) hold what the
/// operator set up, such as the base URL and the offline latest-version check: an update does
/// not change them, and real installs carry long-standing failures there.
pub const UPDATE_SECTIONS: [&str; 3] = ["Environment", "Config files", "Database"];

/// Words of the checks outside [`UPDATE_SECTIONS`] an update can break too: the schema and
/// migrations wherever they sit, and the cache an update clears (`Cache is working.` is in
/// Core config).
pub const UPDATE_CHECK_WORDS: [&str; 3] = ["schema", "migration", "cache"];

/// Whether a check is one an update can break: in [`UPDATE_SECTIONS`], or naming one of
/// [`UPDATE_CHECK_WORDS`].
pub fn update_can_break(check: &Check) -> bool {
    let name = check.name.to_lowercase();
    UPDATE_SECTIONS
        .iter()
        .any(|s| check.section.eq_ignore_ascii_case(s))
        || UPDATE_CHECK_WORDS.iter().any(|w| name.contains(w))
}

/// Runs the configured checks; a healthcheck command that gives no checks counts as one
/// failing check named by its command line (and sets [`HealthFacts::no_checks`]).
pub async fn check(runner: Option<&Runner>, config: &AgentConfig) -> HealthFacts {
    let pb = &config.passbolt;
    let mut facts = HealthFacts::default();
    let mut command_failures = Vec::new();
    if let Some(url) = &pb.healthcheck_url {
        let check = checks::status_url(url).await;
        facts.log.push_str(&format!(
            "[{}] {url} {}\n",
            check.status.to_uppercase(),
            check.detail
        ));
        if check.status == "fail" {
            facts.breakable.push(check.name.clone());
            facts.failing.push(check.name);
        }
    }
    if let Some(argv) = &pb.healthcheck_command {
        let name = argv.join(" ");
        let checks = match runner {
            Some(runner) => checks::healthcheck_command(runner, argv, &pb.root).await,
            None => Err("commands cannot be run as the web user".to_string()),
        };
        match checks {
            Ok(checks) => {
                for c in checks.iter().filter(|c| c.status != CheckStatus::Pass) {
                    facts.log.push_str(&format!(
                        "[{}] {} ({})\n",
                        c.status.as_str().to_uppercase(),
                        c.name,
                        c.section
                    ));
                }
                facts
                    .log
                    .push_str(&format!("{name}: {} checks\n", checks.len()));
                for c in checks.into_iter().filter(|c| c.status == CheckStatus::Fail) {
                    if update_can_break(&c) {
                        facts.breakable.push(c.name.clone());
                    }
                    command_failures.push(c.name);
                }
            }
            Err(why) => {
                facts.log.push_str(&format!("{name}: {why}\n"));
                facts.no_checks = Some(name.clone());
                command_failures.push(name);
            }
        }
    }
    if pb.healthcheck_url.is_none() && pb.healthcheck_command.is_none() {
        facts.log.push_str(
            "no healthcheck configured (passbolt.healthcheck_url, passbolt.healthcheck_command)\n",
        );
    }
    let known = |name: &str| {
        let name = name.to_lowercase();
        pb.known_failures
            .iter()
            .any(|k| !k.is_empty() && name.contains(&k.to_lowercase()))
    };
    facts.accepted = command_failures
        .iter()
        .filter(|n| known(n))
        .cloned()
        .collect();
    facts.failing.extend(command_failures);
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passbolt::healthcheck::parse_cli_healthcheck;

    #[test]
    fn the_real_v1_failures_are_not_ones_an_update_breaks() {
        // The captured v1.6.10 healthcheck of a real install: six long-standing failures
        // (base URL, SSL, the offline version check), none an update can cause.
        let checks = parse_cli_healthcheck(include_str!(
            "../../passbolt/testdata/captured_v1_healthcheck_v1.6.10_as_web_user.txt"
        ))
        .unwrap();
        let failing: Vec<&Check> = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .collect();
        assert_eq!(failing.len(), 6);
        assert!(failing.iter().all(|c| !update_can_break(c)), "{failing:?}");
        let judged: Vec<&str> = checks
            .iter()
            .filter(|c| update_can_break(c))
            .map(|c| c.name.as_str())
            .collect();
        for want in [
            "The database schema up to date.",
            "The application is able to connect to the database",
            "The email config file is present",
            "The temporary directory and its content are writable",
            "Cache is working.",
        ] {
            assert!(judged.contains(&want), "{want} not judged: {judged:?}");
        }
        assert!(!judged.iter().any(|n| n.contains("fullBaseUrl")));
    }

    #[test]
    fn schema_checks_count_in_any_section() {
        let check = Check {
            section: String::new(),
            name: "The database schema is not up to date.".into(),
            status: CheckStatus::Fail,
            detail: String::new(),
        };
        assert!(update_can_break(&check));
    }
}
