//! The top-level error and the exit status each kind of failure maps to.

use crate::config::{ConfigErrors, LoadError};

/// Exit statuses, documented in the README and `lvsnap --help`.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: i32 = 0;
    /// An operation failed (at least partly); the message says which and why.
    pub const FAILED: i32 = 1;
    /// Bad input: invalid policy files, unknown names, wrong arguments. Nothing was changed.
    pub const USAGE: i32 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<ConfigErrors> for Error {
    fn from(e: ConfigErrors) -> Self {
        Error::Config(LoadError::Invalid(e))
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => exit::USAGE,
            Error::Output(_) => exit::FAILED,
        }
    }
}
