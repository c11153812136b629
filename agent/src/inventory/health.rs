//! Decides whether a host is healthy from its checks and the problems met reading it.

use boltfleet_common::proto::{Health, HealthCheck};

use crate::passbolt::healthcheck::CheckStatus;

/// Healthy when every check passes (warnings allowed), the healthcheck command ran, and the
/// host could be read fully. Reasons name the failing checks, so runs can be compared.
///
/// `known_failures` are the operator's accepted long-standing failures of passbolt's own
/// healthcheck (offline latest-version check, base URL, SSL): a command check whose name
/// contains one of them (case-insensitive) is still listed in `checks` but does not count.
pub(super) fn judge_health(
    checks: Vec<HealthCheck>,
    command_failure: Option<String>,
    errors: &[String],
    known_failures: &[String],
) -> Health {
    let known = |c: &HealthCheck| {
        let name = c.name.to_lowercase();
        c.source == "command"
            && known_failures
                .iter()
                .any(|k| !k.is_empty() && name.contains(&k.to_lowercase()))
    };
    let failed = |c: &&HealthCheck| c.status == CheckStatus::Fail.as_str() && !known(c);
    let mut reasons: Vec<String> = checks
        .iter()
        .filter(failed)
        .filter(|c| c.source == "http")
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    match command_failure {
        Some(why) => reasons.push(format!("healthcheck command failed: {why}")),
        None => reasons.extend(
            checks
                .iter()
                .filter(failed)
                .filter(|c| c.source == "command")
                .map(|c| format!("healthcheck: {}", c.name)),
        ),
    }
    if let Some(first) = errors.first() {
        let more = match errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        reasons.push(format!("host not fully readable: {first}{more}"));
    }
    Health {
        healthy: reasons.is_empty(),
        checks,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_do_not_make_a_host_unhealthy() {
        let check = |source: &str, status: &str| HealthCheck {
            source: source.into(),
            name: format!("{source} {status}"),
            status: status.into(),
            detail: "d".into(),
        };
        let health = judge_health(
            vec![check("command", "pass"), check("command", "warn")],
            None,
            &[],
            &[],
        );
        assert!(health.healthy && health.reasons.is_empty());
        let health = judge_health(
            vec![check("http", "fail"), check("command", "fail")],
            None,
            &[],
            &[],
        );
        assert_eq!(
            health.reasons,
            ["http fail: d", "healthcheck: command fail"]
        );
        let health = judge_health(
            vec![check("command", "fail")],
            Some("timed out".into()),
            &["a".into(), "b".into()],
            &[],
        );
        assert_eq!(
            health.reasons,
            [
                "healthcheck command failed: timed out",
                "host not fully readable: a (and 1 more)"
            ]
        );
    }

    #[test]
    fn known_failures_are_listed_but_do_not_count() {
        let check = |name: &str| HealthCheck {
            source: "command".into(),
            name: name.into(),
            status: "fail".into(),
            detail: String::new(),
        };
        let checks = vec![
            check("Using latest passbolt version"),
            check("Can connect to the database"),
        ];
        let health = judge_health(checks.clone(), None, &[], &["LATEST PASSBOLT".into()]);
        assert_eq!(health.reasons, ["healthcheck: Can connect to the database"]);
        assert_eq!(health.checks.len(), 2);
        let health = judge_health(checks, None, &[], &["latest".into(), "database".into()]);
        assert!(health.healthy);
    }
}
