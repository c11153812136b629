//! The controller's domain errors, and the one place they become gRPC statuses.

use boltfleet_common::identity::IdentityError;
use boltfleet_common::pki::PkiError;
use tonic::Status;

use crate::rollout::{PhaseError, SpecError, WindowError};
use crate::state::StoreError;

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no client certificate: this call needs one issued by the controller's CA")]
    NoCertificate,
    #[error("{0}")]
    Forbidden(String),
    #[error("join token is unknown")]
    TokenUnknown,
    #[error("join token was already used")]
    TokenUsed,
    #[error("join token expired")]
    TokenExpired,
    #[error("host {0} is revoked")]
    Revoked(String),
    #[error("host {0} is not enrolled")]
    UnknownHost(String),
    #[error("{0}")]
    Precondition(String),
    #[error("job {0} not found")]
    UnknownJob(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("rollout {0} not found")]
    UnknownRollout(String),
    #[error("webhook {0} not found")]
    UnknownWebhook(String),
    /// A rollout spec field that cannot be used; the message names the field.
    #[error("invalid rollout spec: {0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("rollout {id}: {source}")]
    Phase { id: String, source: PhaseError },
    #[error("certificate request refused: {0}")]
    Csr(PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing failed: {0}")]
    Pki(PkiError),
}

impl Error {
    pub fn invalid(field: &'static str, reason: impl ToString) -> Self {
        Self::Invalid {
            field,
            reason: reason.to_string(),
        }
    }
}

impl From<IdentityError> for Error {
    fn from(err: IdentityError) -> Self {
        Error::invalid("identity", err)
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let msg = err.to_string();
        match err {
            Error::NoCertificate => Status::unauthenticated(msg),
            Error::Forbidden(_) | Error::Revoked(_) => Status::permission_denied(msg),
            Error::TokenUnknown | Error::TokenUsed | Error::TokenExpired => {
                Status::permission_denied(msg)
            }
            Error::UnknownHost(_)
            | Error::UnknownJob(_)
            | Error::UnknownRollout(_)
            | Error::UnknownWebhook(_) => Status::not_found(msg),
            Error::Precondition(_) | Error::Phase { .. } => Status::failed_precondition(msg),
            Error::Invalid { .. } | Error::Csr(_) | Error::Spec(_) | Error::Window(_) => {
                Status::invalid_argument(msg)
            }
            Error::Store(_) | Error::Pki(_) => {
                tracing::error!(error = %msg, "internal error");
                Status::internal(msg)
            }
        }
    }
}
