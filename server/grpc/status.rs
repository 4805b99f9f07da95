//! From engine errors to gRPC statuses. The message is the error's own text, which
//! names the program, field or worker concerned.

use tonic::{Code, Status};

use crate::daemon::error::Error;

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::UnknownProgram(_) | Error::UnknownWorker { .. } => Code::NotFound,
            Error::InvalidField { .. } | Error::InvalidArgument { .. } | Error::Config { .. } => {
                Code::InvalidArgument
            }
            Error::AlreadyRunning(_) => Code::AlreadyExists,
            Error::Precondition { .. } | Error::Spawn { .. } | Error::StartFailed { .. } => {
                Code::FailedPrecondition
            }
            Error::Listen { .. } => Code::Unavailable,
            Error::AttachRefused(_) => Code::PermissionDenied,
            Error::ShuttingDown => Code::Unavailable,
            Error::Socket { .. } | Error::Io { .. } => Code::Internal,
        };
        Status::new(code, error.to_string())
    }
}
