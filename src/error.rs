//! The top-level error and the exit status each kind of failure maps to.

use crate::catalog::CatalogError;
use crate::config::{ConfigErrors, LoadError};
use crate::lock::LockError;
use crate::lvm::LvmError;
use crate::run::RunError;

/// Exit statuses, documented in the README and `lvsnap --help`.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: i32 = 0;
    /// An operation failed (at least partly); the message says which and why.
    pub const FAILED: i32 = 1;
    /// Bad input: invalid policy files, unknown names, wrong arguments. Nothing was changed.
    pub const USAGE: i32 = 2;
    /// Done, but a guard held pruning back (too many removals at once, a merge pending); the
    /// output says which.
    pub const HELD_BACK: i32 = 3;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lvm(#[from] LvmError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("daemon: {0}")]
    Daemon(String),
}

impl From<ConfigErrors> for Error {
    fn from(e: ConfigErrors) -> Self {
        Error::Config(LoadError::Invalid(e))
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Run(RunError::BadRequest(_)) => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}
