//! Every field an agent may send, with its limit: how long, how many, which characters. One
//! table ([`LIMITS`]) that the README repeats; [`check_hello`], [`check_report`] and
//! [`check_job_event`] apply it to a message before anything else reads it.
//!
//! Identifiers, versions, tags and step names are refused when they hold a character outside
//! their set (no control characters ever). Free text (reasons, errors, details, output tails)
//! is kept, with control characters escaped (output tails keep their newlines and tabs). A
//! string longer than its limit, or a list with more entries, refuses the whole message.

use boltfleet_common::proto::{Hello, Inventory, JobEvent};

use super::text::{cut, escape_control};

/// What a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// ASCII letters, digits and `._-:+/@` (job ids, step names, git heads, check sources).
    Ident,
    /// ASCII letters, digits and `.+-~_` (versions and release tags).
    Version,
    /// Any text on one line: control characters are escaped.
    Line,
    /// Multi-line output: control characters but newline and tab are escaped.
    Output,
}

/// One field's limit: at most `max_bytes` bytes of `charset`; for lists, at most `max_count`
/// entries (0: not a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub field: &'static str,
    pub max_bytes: usize,
    pub max_count: usize,
    pub charset: Charset,
}

const fn one(field: &'static str, max_bytes: usize, charset: Charset) -> Limit {
    Limit {
        field,
        max_bytes,
        max_count: 0,
        charset,
    }
}

const fn list(field: &'static str, max_count: usize, max_bytes: usize, charset: Charset) -> Limit {
    Limit {
        field,
        max_bytes,
        max_count,
        charset,
    }
}

use Charset::{Ident, Line, Output, Version};

/// Every string and list field of the agent's messages, by its path in the message.
pub const LIMITS: &[Limit] = &[
    one("hello.agent_version", 64, Version),
    one("inventory.agent_version", 64, Version),
    one("inventory.passbolt_version", 64, Version),
    one("inventory.version_file", 1024, Line),
    one("inventory.php_version", 64, Version),
    one("inventory.newest_tag", 64, Version),
    one("inventory.git.head", 64, Ident),
    one("inventory.git.tag", 64, Version),
    list("inventory.migrations.sections", 16, 0, Line),
    one("inventory.migrations.sections.name", 128, Line),
    one("inventory.migrations.sections.current", 256, Line),
    one("inventory.migrations.sections.latest", 256, Line),
    one("inventory.migrations.error", 4096, Output),
    list("inventory.health.checks", 128, 0, Line),
    one("inventory.health.checks.source", 16, Ident),
    one("inventory.health.checks.name", 512, Line),
    one("inventory.health.checks.status", 16, Ident),
    one("inventory.health.checks.detail", 1024, Output),
    list("inventory.health.reasons", 64, 1024, Line),
    list("inventory.disks", 8, 0, Line),
    one("inventory.disks.role", 16, Ident),
    one("inventory.disks.path", 1024, Line),
    list("inventory.errors", 32, 2048, Line),
    one("job.job_id", 64, Ident),
    one("job.target_version", 64, Version),
    one("job.from_version", 64, Version),
    list("job.steps", 32, 0, Line),
    one("job.steps.name", 64, Ident),
    one("job.steps.output_tail", 8192, Output),
    one("job.failed_step", 64, Ident),
    one("job.backup_id", 128, Ident),
    one("job.backup_path", 1024, Line),
    list("job.config_changes", 256, 1024, Line),
    one("job.reason", 4096, Line),
    list("job.failing_before", 256, 512, Line),
    list("job.failing_after", 256, 512, Line),
    list("job.failing_after_rollback", 256, 512, Line),
];

/// The limit of `field` (a path of [`LIMITS`]).
///
/// # Panics
///
/// When `field` is not in the table: a programming error caught by the unit tests.
pub fn limit(field: &str) -> &'static Limit {
    LIMITS
        .iter()
        .find(|l| l.field == field)
        .unwrap_or_else(|| panic!("no limit for {field}"))
}

/// Why a message was refused: the field (with its index in a list) and the limit it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Refusal {
    pub field: String,
    pub problem: String,
}

/// Where a field sits in the message, for the refusal: `job.config_changes[3]` for an entry
/// of a list of strings, `job.steps[3].name` for a field of a list's entry.
fn at(field: &Limit, index: Option<usize>) -> String {
    match (index, field.field.rsplit_once('.')) {
        (None, _) => field.field.to_string(),
        (Some(i), _) if field.max_count > 0 => format!("{}[{i}]", field.field),
        (Some(i), Some((parent, leaf))) => format!("{parent}[{i}].{leaf}"),
        (Some(i), None) => format!("{}[{i}]", field.field),
    }
}

/// Checks one string against its limit and makes free text safe in place.
fn text(value: &mut String, field: &str, index: Option<usize>) -> Result<(), Refusal> {
    let l = limit(field);
    let name = || at(l, index);
    if value.len() > l.max_bytes {
        return Err(Refusal {
            field: name(),
            problem: format!("{} bytes, limit {}", value.len(), l.max_bytes),
        });
    }
    let allowed: fn(char) -> bool = match l.charset {
        Ident => |c| c.is_ascii_alphanumeric() || "._-:+/@".contains(c),
        Version => |c| c.is_ascii_alphanumeric() || ".+-~_".contains(c),
        Line | Output => {
            let keep = l.charset == Output;
            if let std::borrow::Cow::Owned(escaped) = escape_control(value, keep) {
                *value = cut(&escaped, l.max_bytes).to_string();
            }
            return Ok(());
        }
    };
    if let Some(bad) = value.chars().find(|&c| !allowed(c)) {
        return Err(Refusal {
            field: name(),
            problem: format!(
                "character {:?} not allowed (limit: {:?} characters only)",
                bad.escape_default().to_string(),
                l.charset
            ),
        });
    }
    Ok(())
}

/// Checks a list's length against its limit.
fn count(len: usize, field: &str) -> Result<(), Refusal> {
    let l = limit(field);
    if len > l.max_count {
        return Err(Refusal {
            field: l.field.to_string(),
            problem: format!("{len} entries, limit {}", l.max_count),
        });
    }
    Ok(())
}

/// A list of strings: the count, then each entry.
fn texts(values: &mut [String], field: &str) -> Result<(), Refusal> {
    count(values.len(), field)?;
    for (i, value) in values.iter_mut().enumerate() {
        text(value, field, Some(i))?;
    }
    Ok(())
}

/// A hello, and the job event it carries.
pub fn check_hello(hello: &mut Hello) -> Result<(), Refusal> {
    text(&mut hello.agent_version, "hello.agent_version", None)?;
    if let Some(job) = hello.last_job.as_mut() {
        check_job_event(job)?;
    }
    Ok(())
}

/// A report's inventory.
pub fn check_report(inv: &mut Inventory) -> Result<(), Refusal> {
    text(&mut inv.agent_version, "inventory.agent_version", None)?;
    text(
        &mut inv.passbolt_version,
        "inventory.passbolt_version",
        None,
    )?;
    text(&mut inv.version_file, "inventory.version_file", None)?;
    text(&mut inv.php_version, "inventory.php_version", None)?;
    text(&mut inv.newest_tag, "inventory.newest_tag", None)?;
    if let Some(git) = inv.git.as_mut() {
        text(&mut git.head, "inventory.git.head", None)?;
        text(&mut git.tag, "inventory.git.tag", None)?;
    }
    if let Some(m) = inv.migrations.as_mut() {
        count(m.sections.len(), "inventory.migrations.sections")?;
        for (i, s) in m.sections.iter_mut().enumerate() {
            text(&mut s.name, "inventory.migrations.sections.name", Some(i))?;
            text(
                &mut s.current,
                "inventory.migrations.sections.current",
                Some(i),
            )?;
            text(
                &mut s.latest,
                "inventory.migrations.sections.latest",
                Some(i),
            )?;
        }
        text(&mut m.error, "inventory.migrations.error", None)?;
    }
    if let Some(h) = inv.health.as_mut() {
        count(h.checks.len(), "inventory.health.checks")?;
        for (i, c) in h.checks.iter_mut().enumerate() {
            text(&mut c.source, "inventory.health.checks.source", Some(i))?;
            text(&mut c.name, "inventory.health.checks.name", Some(i))?;
            text(&mut c.status, "inventory.health.checks.status", Some(i))?;
            text(&mut c.detail, "inventory.health.checks.detail", Some(i))?;
        }
        texts(&mut h.reasons, "inventory.health.reasons")?;
    }
    count(inv.disks.len(), "inventory.disks")?;
    for (i, d) in inv.disks.iter_mut().enumerate() {
        text(&mut d.role, "inventory.disks.role", Some(i))?;
        text(&mut d.path, "inventory.disks.path", Some(i))?;
    }
    texts(&mut inv.errors, "inventory.errors")
}

/// A job event (alone or in a hello).
pub fn check_job_event(e: &mut JobEvent) -> Result<(), Refusal> {
    text(&mut e.job_id, "job.job_id", None)?;
    text(&mut e.target_version, "job.target_version", None)?;
    text(&mut e.from_version, "job.from_version", None)?;
    count(e.steps.len(), "job.steps")?;
    for (i, s) in e.steps.iter_mut().enumerate() {
        text(&mut s.name, "job.steps.name", Some(i))?;
        text(&mut s.output_tail, "job.steps.output_tail", Some(i))?;
    }
    text(&mut e.failed_step, "job.failed_step", None)?;
    text(&mut e.backup_id, "job.backup_id", None)?;
    text(&mut e.backup_path, "job.backup_path", None)?;
    texts(&mut e.config_changes, "job.config_changes")?;
    text(&mut e.reason, "job.reason", None)?;
    texts(&mut e.failing_before, "job.failing_before")?;
    texts(&mut e.failing_after, "job.failing_after")?;
    texts(&mut e.failing_after_rollback, "job.failing_after_rollback")
}

#[cfg(test)]
mod tests {
    use super::*;
    use boltfleet_common::proto::{GitState, Health, StepRecord};

    /// (what is wrong, the message, the field the refusal must name, or None when accepted).
    type Case = (
        &'static str,
        Box<dyn Fn(&mut Inventory)>,
        Option<&'static str>,
    );

    fn honest() -> Inventory {
        Inventory {
            agent_version: "0.3.0".into(),
            passbolt_version: "1.6.10".into(),
            version_file: "/var/www/passbolt/app/Config/version.php".into(),
            php_version: "7.4.33-1~deb11u5".into(),
            newest_tag: "v1.6.10".into(),
            git: Some(GitState {
                head: "0123456789abcdef0123456789abcdef01234567".into(),
                tag: "v1.6.10".into(),
                dirty: false,
            }),
            health: Some(Health {
                healthy: false,
                reasons: vec!["SSL: base url is not https".into()],
                ..Health::default()
            }),
            errors: vec!["web user: no such user www-data".into()],
            ..Inventory::default()
        }
    }

    #[test]
    fn each_field_is_refused_beyond_its_limit_and_named() {
        let cases: Vec<Case> = vec![
            ("honest report", Box::new(|_| {}), None),
            (
                "escape in a version",
                Box::new(|i| i.passbolt_version = "1.6.10\x1b[2J".into()),
                Some("inventory.passbolt_version"),
            ),
            (
                "newline in a tag",
                Box::new(|i| i.newest_tag = "v1.99.0\nx".into()),
                Some("inventory.newest_tag"),
            ),
            (
                "long agent version",
                Box::new(|i| i.agent_version = "1".repeat(65)),
                Some("inventory.agent_version"),
            ),
            (
                "too many reasons",
                Box::new(|i| i.health.as_mut().unwrap().reasons = vec!["r".into(); 65]),
                Some("inventory.health.reasons"),
            ),
            (
                "one long reason",
                Box::new(|i| {
                    i.health.as_mut().unwrap().reasons = vec!["ok".into(), "x".repeat(1025)]
                }),
                Some("inventory.health.reasons[1]"),
            ),
            (
                "too many errors",
                Box::new(|i| i.errors = vec!["e".into(); 33]),
                Some("inventory.errors"),
            ),
            (
                "space in a git head",
                Box::new(|i| i.git.as_mut().unwrap().head = "abc def".into()),
                Some("inventory.git.head"),
            ),
        ];
        for (what, change, want) in cases {
            let mut inv = honest();
            change(&mut inv);
            let got = check_report(&mut inv).err().map(|r| r.field);
            assert_eq!(got.as_deref(), want, "{what}");
        }
    }

    #[test]
    fn the_refusal_names_the_limit() {
        let mut inv = honest();
        inv.errors = vec!["e".into(); 40];
        let refusal = check_report(&mut inv).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "inventory.errors: 40 entries, limit 32"
        );
    }

    #[test]
    fn free_text_is_kept_with_control_characters_escaped() {
        let mut inv = honest();
        inv.errors = vec!["bad\x1b]0;title\x07 thing\nINFO forged".into()];
        check_report(&mut inv).unwrap();
        assert_eq!(
            inv.errors[0],
            "bad\\u{1b}]0;title\\u{7} thing\\nINFO forged"
        );
        let mut job = JobEvent {
            job_id: "j18c-0000beef".into(),
            steps: vec![StepRecord {
                name: "migrate".into(),
                output_tail: "line 1\nline 2\x1b[31m red".into(),
                ..StepRecord::default()
            }],
            ..JobEvent::default()
        };
        check_job_event(&mut job).unwrap();
        assert_eq!(job.steps[0].output_tail, "line 1\nline 2\\u{1b}[31m red");
    }

    #[test]
    fn job_events_are_checked_field_by_field() {
        let cases: Vec<(JobEvent, &str)> = vec![
            (
                JobEvent {
                    job_id: "j1\n".into(),
                    ..JobEvent::default()
                },
                "job.job_id",
            ),
            (
                JobEvent {
                    steps: vec![StepRecord::default(); 33],
                    ..JobEvent::default()
                },
                "job.steps",
            ),
            (
                JobEvent {
                    steps: vec![StepRecord {
                        name: "mi\u{1b}grate".into(),
                        ..StepRecord::default()
                    }],
                    ..JobEvent::default()
                },
                "job.steps[0].name",
            ),
            (
                JobEvent {
                    failed_step: "x y".into(),
                    ..JobEvent::default()
                },
                "job.failed_step",
            ),
            (
                JobEvent {
                    reason: "r".repeat(5000),
                    ..JobEvent::default()
                },
                "job.reason",
            ),
            (
                JobEvent {
                    failing_after_rollback: vec!["check".into(); 257],
                    ..JobEvent::default()
                },
                "job.failing_after_rollback",
            ),
        ];
        for (mut event, field) in cases {
            assert_eq!(check_job_event(&mut event).unwrap_err().field, field);
        }
        let mut hello = Hello {
            agent_version: "0.3.0\r".into(),
            last_job: None,
        };
        assert_eq!(
            check_hello(&mut hello).unwrap_err().field,
            "hello.agent_version"
        );
    }

    #[test]
    fn every_limit_is_sane() {
        for l in LIMITS {
            assert!(l.max_bytes > 0 || l.max_count > 0, "{}", l.field);
            assert_eq!(
                LIMITS.iter().filter(|o| o.field == l.field).count(),
                1,
                "{} twice",
                l.field
            );
        }
    }
}
