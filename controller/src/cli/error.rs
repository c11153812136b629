//! What can go wrong in a CLI run, as one line each, and which exit status it gets.

use std::error::Error as _;
use std::path::PathBuf;

use boltfleet_common::config::{ConfigError, EXIT_CONFIG};
use boltfleet_common::tls::TlsError;
use tonic::{Code, Status};

/// A failed `boltfleet` run. `Display` is one line; [`CliError::exit_code`] is 64 for bad usage
/// or configuration and 1 for everything that went wrong at or on the way to the controller.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command-line input that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// Connection settings missing or contradictory.
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} holds no PEM block", path.display())]
    NotPem { what: &'static str, path: PathBuf },
    #[error("invalid controller address {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The controller could not be reached or the TLS handshake failed.
    #[error("{0}")]
    Connect(String),
    /// The controller answered with an error.
    #[error("{action}: {}", explain(status))]
    Rpc { action: String, status: Status },
    #[error("{action}: the controller did not answer within {secs}s")]
    Timeout { action: String, secs: u64 },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// A waited-for job ended in another state than succeeded.
    #[error("job {job_id} on {host_id} ended {state}{detail}")]
    JobFailed {
        job_id: String,
        host_id: String,
        state: &'static str,
        detail: String,
    },
    /// A webhook's test delivery was not acknowledged.
    #[error("{0}")]
    Webhook(String),
    /// A watched rollout paused or was aborted.
    #[error("rollout {id} {state}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    RolloutStopped {
        id: String,
        state: String,
        reason: String,
    },
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_)
            | CliError::Settings(_)
            | CliError::Config(_)
            | CliError::ReadFile { .. }
            | CliError::NotPem { .. }
            | CliError::BadUrl { .. } => EXIT_CONFIG,
            CliError::Connect(_)
            | CliError::Rpc { .. }
            | CliError::Timeout { .. }
            | CliError::Output(_)
            | CliError::JobFailed { .. }
            | CliError::Webhook(_)
            | CliError::RolloutStopped { .. } => 1,
        }
    }
}

impl From<TlsError> for CliError {
    fn from(err: TlsError) -> Self {
        match err {
            TlsError::Url { url, reason } => CliError::BadUrl { url, reason },
            // Only pinned (enrollment) TLS parses a pin; keep the message as it is.
            TlsError::Pki(err) => CliError::Settings(err.to_string()),
            TlsError::Config(reason) => CliError::Settings(reason),
            TlsError::Connect { url, source } => {
                CliError::Connect(format!("cannot connect to {url}: {}", chain(&source)))
            }
        }
    }
}

/// An error and its sources on one line, skipping sources that repeat their parent's text.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut last = line.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !last.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        last = text;
        source = cause.source();
    }
    one_line(&line)
}

/// The controller's answer in operator terms; certificate problems get a hint.
fn explain(status: &Status) -> String {
    let mut message = one_line(status.message());
    // Transport failures carry the cause as a source; its text usually repeats the message.
    let transport = status.source().map(chain);
    if let Some(cause) = &transport {
        message = if cause.starts_with(&message) {
            cause.clone()
        } else {
            format!("{message}: {cause}")
        };
    }
    let detail = if message.is_empty() {
        code_name(status.code())
    } else {
        format!("{}: {message}", code_name(status.code()))
    };
    match status.code() {
        Code::Unauthenticated => format!(
            "{detail} (the controller did not accept our client certificate: check --cert, \
             --key and that they were issued by the controller's CA)"
        ),
        Code::PermissionDenied => {
            format!("{detail} (this command needs an operator certificate, not an agent's)")
        }
        // The connection was up, so the handshake passed on our side; with TLS 1.3 a server
        // that refuses our certificate can only say so by dropping the connection afterwards.
        Code::Unknown | Code::Cancelled | Code::Unavailable if transport.is_some() => format!(
            "{detail} (the controller dropped the connection, as it does when it refuses our \
             certificate: check --cert and --key)"
        ),
        _ => detail,
    }
}

/// `NotFound` becomes "not found".
fn code_name(code: Code) -> String {
    let mut name = String::new();
    for c in format!("{code:?}").chars() {
        if c.is_uppercase() && !name.is_empty() {
            name.push(' ');
        }
        name.extend(c.to_lowercase());
    }
    name
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(status: Status) -> CliError {
        CliError::Rpc {
            action: "list hosts".into(),
            status,
        }
    }

    #[test]
    fn rpc_errors_are_one_line_and_exit_1() {
        let err = rpc(Status::not_found("unknown host\nh1"));
        assert_eq!(err.to_string(), "list hosts: not found: unknown host h1");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn certificate_refusals_are_explained() {
        let denied = rpc(Status::permission_denied("agents may not list hosts")).to_string();
        assert!(denied.contains("operator certificate"), "{denied}");
        let unauth = rpc(Status::unauthenticated("")).to_string();
        assert!(
            unauth.starts_with("list hosts: unauthenticated (the controller"),
            "{unauth}"
        );
    }

    #[test]
    fn settings_errors_exit_64() {
        assert_eq!(CliError::Settings("x".into()).exit_code(), 64);
        let read = CliError::ReadFile {
            what: "CA certificate",
            path: "/nope/ca.pem".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(read.exit_code(), 64);
        assert!(read.to_string().contains("/nope/ca.pem"));
    }
}
