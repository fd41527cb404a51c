//! The control plane's error type and its mapping to gRPC statuses through [`ErrorCode`].

use switchyard_common::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid. `field` is its path in the request message.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(
        "{what} changed since etag {given:?} was read (now {current:?}); read it again and retry"
    )]
    StaleEtag {
        what: String,
        given: String,
        current: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    /// A part the call needs cannot be reached; retrying later may succeed.
    #[error("{0} is unavailable; try again shortly")]
    Unavailable(String),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::StaleEtag { .. } => ErrorCode::Aborted,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Store(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => ErrorCode::Unavailable,
            Self::Store(_) | Self::Migrate(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let code = err.code();
        match &err {
            Error::InvalidArgument { field, reason } => {
                use tonic_types::{ErrorDetails, StatusExt};
                let details = ErrorDetails::with_bad_request_violation(field, reason);
                tonic::Status::with_error_details(code.grpc(), err.to_string(), details)
            }
            // Internal details stay in the server log; the caller gets a generic message.
            Error::Store(_) | Error::Migrate(_) | Error::Internal(_) => {
                tracing::error!(error = %err, "request failed");
                tonic::Status::new(code.grpc(), "internal error; see the control plane's log")
            }
            _ => tonic::Status::new(code.grpc(), err.to_string()),
        }
    }
}
