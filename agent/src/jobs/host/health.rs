//! The health checks a job compares before and after: the status URL and passbolt's own
//! healthcheck command, through the inventory's probes.

use super::HealthFacts;
use crate::config::AgentConfig;
use crate::inventory::probes;
use crate::inventory::run::Runner;

/// Runs the configured checks; a healthcheck command that gives no checks counts as one
/// failing check named by its command line.
pub async fn check(runner: Option<&Runner>, config: &AgentConfig) -> HealthFacts {
    let pb = &config.passbolt;
    let mut facts = HealthFacts::default();
    let mut command_failures = Vec::new();
    if let Some(url) = &pb.healthcheck_url {
        let check = probes::http_check(url).await;
        facts.log.push_str(&format!(
            "[{}] {url} {}\n",
            check.status.to_uppercase(),
            check.detail
        ));
        if check.status == "fail" {
            facts.failing.push(check.name);
        }
    }
    if let Some(argv) = &pb.healthcheck_command {
        let name = argv.join(" ");
        let checks = match runner {
            Some(runner) => probes::command_checks(runner, argv, &pb.root).await,
            None => Err("commands cannot be run as the web user".to_string()),
        };
        match checks {
            Ok(checks) => {
                for c in checks.iter().filter(|c| c.status != "pass") {
                    facts
                        .log
                        .push_str(&format!("[{}] {}\n", c.status.to_uppercase(), c.name));
                }
                facts
                    .log
                    .push_str(&format!("{name}: {} checks\n", checks.len()));
                command_failures.extend(
                    checks
                        .into_iter()
                        .filter(|c| c.status == "fail")
                        .map(|c| c.name),
                );
            }
            Err(why) => {
                facts.log.push_str(&format!("{name}: {why}\n"));
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
