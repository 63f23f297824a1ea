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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The exit status is the error's kind alone: bad input is 2 wherever it is found (policy
    /// files, arguments, a name that fits nothing or too much, a path through a link); anything
    /// that failed while acting is 1. (0 and 3 are outcomes, not errors: `run_status`.)
    #[test]
    fn each_kind_of_error_has_one_exit_status() {
        let io = || std::io::Error::other("x");
        let usage = [
            Error::Usage("no policy named \"x\"".into()),
            Error::Run(RunError::BadRequest(
                "names snapshots in 2 volume groups".into(),
            )),
            Error::Config(LoadError::Empty("/etc/lvsnap".into())),
            Error::Config(LoadError::Read {
                path: "/etc/lvsnap/lvsnap.toml".into(),
                source: io(),
            }),
            Error::from(ConfigErrors(Vec::new())),
        ];
        for e in usage {
            assert_eq!(e.exit_code(), exit::USAGE, "{e:?}");
        }
        let failed = [
            Error::Run(RunError::Refused("the volume group is full".into())),
            Error::Lock(LockError::Busy {
                pid: "1".into(),
                waited: Duration::from_secs(1),
            }),
            Error::Lvm(LvmError::Untrusted(
                "/usr/sbin/lvm is writable by others".into(),
            )),
            Error::Run(RunError::Lvm(LvmError::Untrusted("x".into()))),
            Error::Output(io()),
            Error::Daemon("cannot start the scheduler".into()),
        ];
        for e in failed {
            assert_eq!(e.exit_code(), exit::FAILED, "{e:?}");
        }
    }
}
