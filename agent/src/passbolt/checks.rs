//! Runs passbolt's two health checks, for the inventory and for a job's before/after
//! comparison alike: the healthcheck command (as the web user, in the root) and the
//! `/healthcheck/status.json` URL.

use std::path::Path;
use std::time::Duration;

use boltfleet_common::proto::HealthCheck;

use super::healthcheck::{judge_status_answer, parse_cli_healthcheck, Check, CheckStatus};
use super::http;
use crate::exec::Runner;

/// Deadline of the healthcheck command; offline, its version check waits on the network.
pub const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(180);
/// Deadline of the HTTP status request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the healthcheck command `argv` in `root` and returns its checks, each with its
/// section (`Database`, `Config files`, ...); `Err` says why the command could not run or
/// printed no checks.
pub async fn healthcheck_command(
    runner: &Runner,
    argv: &[String],
    root: &Path,
) -> Result<Vec<Check>, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty healthcheck command".into());
    };
    let out = runner
        .with_timeout(HEALTHCHECK_TIMEOUT)
        .run(program, args, root)
        .await
        .map_err(|e| e.to_string())?;
    // `--posix` prints its lines on stderr; the normal form uses stdout.
    let text = format!("{}\n{}", out.stdout, out.stderr);
    parse_cli_healthcheck(&text).map_err(|e| format!("{e} ({})", out.exit_text()))
}

/// Fetches the status URL and judges the answer, as one check named by the URL.
pub async fn status_url(url: &str) -> HealthCheck {
    let verdict = match http::get(url, HTTP_TIMEOUT).await {
        Err(e) => Err(e.to_string()),
        Ok(answer) if (300..400).contains(&answer.status) => Err(format!(
            "HTTP {}: redirected to {}",
            answer.status,
            answer.location.as_deref().unwrap_or("nowhere")
        )),
        Ok(answer) => judge_status_answer(answer.status, &String::from_utf8_lossy(&answer.body))
            .map_err(|e| e.to_string()),
    };
    let (status, detail) = match verdict {
        Ok(()) => (CheckStatus::Pass, String::new()),
        Err(reason) => (CheckStatus::Fail, reason),
    };
    HealthCheck {
        source: "http".into(),
        name: url.to_string(),
        status: status.as_str().into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_url_is_a_failing_check() {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/healthcheck/status.json");
        let check = status_url(&url).await;
        assert_eq!(
            (
                check.source.as_str(),
                check.name.as_str(),
                check.status.as_str()
            ),
            ("http", url.as_str(), "fail")
        );
        assert!(check.detail.contains("cannot connect"), "{}", check.detail);
    }
}
