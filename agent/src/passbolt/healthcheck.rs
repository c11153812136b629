//! Parses passbolt's health reports: the `cake passbolt healthcheck` CLI output and the
//! `/healthcheck/status.json` HTTP answer.

use std::fmt;

use crate::text::excerpt;

/// The outcome of one healthcheck line. `[INFO]` lines are not checks and are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
}

impl CheckStatus {
    /// The wire spelling: "pass", "fail" or "warn".
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Warn => "warn",
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ` [PASS]`/` [FAIL]`/` [WARN]` line with the `[HELP]` lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The heading the check sits under (`Environment`, `Database`, ...), "" before any.
    pub section: String,
    /// The check's text, which is also its identity when comparing runs.
    pub name: String,
    pub status: CheckStatus,
    /// The `[HELP]` lines under it, joined with newlines.
    pub detail: String,
}

/// Healthcheck output with no check lines at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no [PASS]/[FAIL]/[WARN] lines in the healthcheck output{}", says.as_ref().map(|s| format!(" (it says {s:?})")).unwrap_or_default())]
pub struct NoChecks {
    /// The first line after the banner, which usually says what went wrong.
    pub says: Option<String>,
}

/// Parses the CLI healthcheck (v1.6+ and v2+ formats, also the `--posix` quiet form).
/// Backspaces are stripped; the closing `N error(s) found` / `No error found` summary is not a
/// check.
pub fn parse_cli_healthcheck(output: &str) -> Result<Vec<Check>, NoChecks> {
    let cleaned = output.replace('\u{8}', "");
    let lines: Vec<&str> = cleaned.lines().map(str::trim_end).collect();
    let mut checks: Vec<Check> = Vec::new();
    let mut section = String::new();
    // Whether `[HELP]` lines currently belong to the last check (not to an `[INFO]` line).
    let mut help_target = false;
    for (i, line) in lines.iter().enumerate() {
        let text = line.trim_start();
        if let Some((tag, rest)) = split_tag(text) {
            let status = match tag {
                "PASS" => CheckStatus::Pass,
                "FAIL" => CheckStatus::Fail,
                "WARN" => CheckStatus::Warn,
                "HELP" => {
                    if let (true, Some(last)) = (help_target, checks.last_mut()) {
                        if !last.detail.is_empty() {
                            last.detail.push('\n');
                        }
                        last.detail.push_str(rest);
                    }
                    continue;
                }
                _ => {
                    help_target = false;
                    continue;
                }
            };
            help_target = !is_summary(rest);
            if help_target {
                checks.push(Check {
                    section: section.clone(),
                    name: rest.to_string(),
                    status,
                    detail: String::new(),
                });
            }
        } else if is_heading(&lines, i) {
            section = text.to_string();
        }
    }
    if checks.is_empty() {
        return Err(NoChecks {
            says: first_line_after_banner(&lines),
        });
    }
    Ok(checks)
}

/// `[TAG] rest` → `(TAG, rest)`.
fn split_tag(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('[')?;
    let (tag, rest) = rest.split_once(']')?;
    let is_tag = !tag.is_empty() && tag.len() <= 5 && tag.bytes().all(|b| b.is_ascii_uppercase());
    is_tag.then(|| (tag, rest.trim()))
}

/// A check name with its numbers (versions, counts) replaced by `#`, for telling whether a
/// failure after an update is the same one as before it: "Currently using 4.11.0 and it
/// should be 4.12.1." and "... 4.12.1 ... 4.12.2." compare equal.
pub fn comparable_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_ascii_digit() {
            out.push(c);
            continue;
        }
        // Digits with dots between them are one number; a trailing dot stays punctuation.
        while let Some(&next) = chars.peek() {
            let mut ahead = chars.clone();
            ahead.next();
            let continues = next.is_ascii_digit()
                || (next == '.' && ahead.peek().is_some_and(char::is_ascii_digit));
            if !continues {
                break;
            }
            chars.next();
        }
        out.push('#');
    }
    out
}

fn is_summary(text: &str) -> bool {
    text.contains("error(s) found") || text.starts_with("No error found")
}

/// A heading is a lone line between blank lines (the banner's lines are not).
fn is_heading(lines: &[&str], i: usize) -> bool {
    let blank = |j: Option<usize>| {
        j.and_then(|j| lines.get(j))
            .is_some_and(|l| l.trim().is_empty())
    };
    let text = lines[i].trim();
    !text.is_empty() && !is_summary(text) && blank(i.checked_sub(1)) && blank(Some(i + 1))
}

fn first_line_after_banner(lines: &[&str]) -> Option<String> {
    let is_rule = |l: &&str| l.len() >= 3 && l.trim().chars().all(|c| c == '-');
    let start = lines.iter().rposition(is_rule).map_or(0, |p| p + 1);
    lines[start..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .map(|l| excerpt(l, 200))
}

/// Why `/healthcheck/status.json` does not say the install is up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusFailure {
    #[error("HTTP {code}: {message}")]
    Http { code: u16, message: String },
    #[error("answer is not OK: {body:?}")]
    NotOk { body: String },
}

/// Judges an answer of `/healthcheck/status.json` (or the older plain `/healthcheck/status`):
/// up when the status is 2xx and the body is the JSON envelope with `"body":"OK"` (and no
/// `"status":"error"` header) or, for the plain page, the text `OK`.
pub fn judge_status_answer(code: u16, body: &str) -> Result<(), StatusFailure> {
    let text = body.trim();
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let header = |field: &str| {
        json.as_ref()
            .and_then(|v| v.get("header")?.get(field)?.as_str().map(str::to_owned))
    };
    if !(200..300).contains(&code) {
        let message = header("message").unwrap_or_else(|| excerpt(text, 120));
        return Err(StatusFailure::Http { code, message });
    }
    let ok = match &json {
        Some(v) => {
            v.get("body").and_then(|b| b.as_str()) == Some("OK")
                && header("status").as_deref() != Some("error")
        }
        None => text == "OK",
    };
    if ok {
        Ok(())
    } else {
        Err(StatusFailure::NotOk {
            body: excerpt(text, 120),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_status(checks: &[Check], status: CheckStatus) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn captured_v1_healthcheck() {
        let checks = parse_cli_healthcheck(include_str!(
            "testdata/captured_v1_healthcheck_v1.6.10_as_web_user.txt"
        ))
        .unwrap();
        assert_eq!(checks.len(), 45);
        let fails = by_status(&checks, CheckStatus::Fail);
        assert_eq!(fails.len(), 6, "{fails:?}");
        assert_eq!(
            fails[0],
            "App.fullBaseUrl does not validate. http://localhost."
        );
        assert_eq!(
            by_status(&checks, CheckStatus::Warn),
            [
                "Using a self-signed certificate",
                "Registration is open to everyone."
            ]
        );
        let first = &checks[0];
        assert_eq!(
            (first.section.as_str(), first.name.as_str()),
            ("Environment", "PHP version 5.6.40")
        );
        let url = checks
            .iter()
            .find(|c| c.name.starts_with("App.fullBaseUrl does not"))
            .unwrap();
        assert_eq!(url.section, "Core config");
        assert_eq!(url.detail, "Edit App.fullBaseUrl in app/Config/core.php\nSelect a valid domain name as defined by section 2.3.1 of http://www.ietf.org/rfc/rfc1035.txt");
        let last = checks.last().unwrap();
        assert_eq!(
            (last.section.as_str(), last.name.as_str()),
            ("Development Tools (optional)", "Phpunit version is 3.7.38")
        );
        assert!(checks
            .iter()
            .all(|c| !c.name.contains('\u{8}') && !c.section.contains("error(s)")));
    }

    #[test]
    fn reconstructed_v1_healthcheck_with_two_errors() {
        let checks =
            parse_cli_healthcheck(include_str!("testdata/v1_healthcheck_2_errors_exit0.txt"))
                .unwrap();
        let fails: Vec<&Check> = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .collect();
        assert_eq!(fails.len(), 2);
        assert_eq!(fails[0].name, "The database schema is not up to date.");
        assert_eq!(fails[0].section, "Database");
        assert_eq!(fails[0].detail.lines().count(), 3);
        assert!(fails[1]
            .name
            .starts_with("This installation is not up to date."));
        let warn = checks
            .iter()
            .find(|c| c.name == "Phpunit version is not 3.7.38")
            .unwrap();
        assert_eq!(warn.status, CheckStatus::Warn);
        assert!(warn.detail.starts_with("See. CONTRIBUTING.md"));
    }

    #[test]
    fn v4_healthchecks() {
        let checks =
            parse_cli_healthcheck(include_str!("testdata/v4_healthcheck_2_errors_exit0.txt"))
                .unwrap();
        let fails = by_status(&checks, CheckStatus::Fail);
        assert_eq!(fails, ["This installation is not up to date. Currently using 4.11.0 and it should be 4.12.1.", "The database schema is not up to date."]);
        // [INFO] lines are not checks and their neighbours' [HELP] lines stay with the check.
        assert!(checks.iter().all(|c| !c.name.starts_with("Linux passbolt")));
        let warn = checks
            .iter()
            .find(|c| c.status == CheckStatus::Warn)
            .unwrap();
        assert_eq!(warn.name, "Host availability checking is disabled.");
        assert_eq!(warn.detail.lines().count(), 3);
        assert_eq!(warn.section, "Application configuration");

        let ok =
            parse_cli_healthcheck(include_str!("testdata/v4_healthcheck_ok_exit0.txt")).unwrap();
        assert!(by_status(&ok, CheckStatus::Fail).is_empty());
        assert_eq!(ok.len(), checks.len());
        assert_eq!(ok.last().unwrap().name, "Some default content is present.");
    }

    #[test]
    fn v5_posix_quiet_output() {
        let checks = parse_cli_healthcheck(include_str!(
            "testdata/v5_healthcheck_posix_quiet_stderr_exit1.txt"
        ))
        .unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "The database schema is not up to date.");
        assert_eq!(
            (checks[0].status, checks[0].section.as_str()),
            (CheckStatus::Fail, "")
        );
    }

    #[test]
    fn output_without_checks_is_an_error_saying_why() {
        let err = parse_cli_healthcheck(include_str!("testdata/v1_healthcheck_as_root_exit1.txt"))
            .unwrap_err();
        assert_eq!(
            err.says.as_deref(),
            Some("Passbolt commands cannot be executed as root.")
        );
        assert_eq!(parse_cli_healthcheck(""), Err(NoChecks { says: None }));
        let err = parse_cli_healthcheck("bash: ./bin/cake: Permission denied\n").unwrap_err();
        assert!(err.to_string().contains("Permission denied"), "{err}");
    }

    #[test]
    fn comparable_names_ignore_numbers() {
        let before =
            "This installation is not up to date. Currently using 4.11.0 and it should be 4.12.1.";
        let after =
            "This installation is not up to date. Currently using 4.12.1 and it should be 4.12.2.";
        assert_eq!(comparable_name(before), comparable_name(after));
        assert_eq!(
            comparable_name(before),
            "This installation is not up to date. Currently using # and it should be #."
        );
        assert_eq!(comparable_name("33 tables found."), "# tables found.");
        assert_ne!(
            comparable_name("The database schema is not up to date."),
            comparable_name("Cache is working.")
        );
    }

    #[test]
    fn status_answers() {
        for body in [
            include_str!("testdata/http_v1_healthcheck_status.json"),
            include_str!("testdata/http_v2_healthcheck_status.json"),
            include_str!("testdata/http_v4_healthcheck_status.json"),
            include_str!("testdata/http_healthcheck_status.html"),
        ] {
            assert_eq!(judge_status_answer(200, body), Ok(()), "{body}");
        }
        let err = judge_status_answer(
            500,
            include_str!("testdata/http_v2_healthcheck_status_500.json"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            StatusFailure::Http {
                code: 500,
                message: "An Internal Error Has Occurred.".into()
            }
        );
        // The same envelope with a 200 status still is not OK.
        let err = judge_status_answer(
            200,
            include_str!("testdata/http_v2_healthcheck_status_500.json"),
        )
        .unwrap_err();
        assert!(matches!(err, StatusFailure::NotOk { .. }));
        let err = judge_status_answer(502, "<html>Bad Gateway</html>").unwrap_err();
        assert_eq!(err.to_string(), "HTTP 502: <html>Bad Gateway</html>");
        assert!(judge_status_answer(200, "<html><body>Maintenance</body></html>").is_err());
        assert!(judge_status_answer(200, r#"{"header":{"status":"error"},"body":"OK"}"#).is_err());
    }
}
