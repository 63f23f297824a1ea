//! lvsnap keeps copy-on-write LVM snapshots of a server's logical volumes on a schedule, prunes
//! them by retention policy, backs them up and restores from them.
//!
//! The binary is a thin shell around [`run`]; everything is testable as a library.

pub mod backup;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod confine;
pub mod cycle;
pub mod doctor;
pub mod error;
pub mod hooks;
pub mod init;
pub mod lock;
pub mod lvm;
pub mod manifest;
pub mod mount;
pub mod names;
pub mod naming;
pub mod plan;
pub mod pressure;
pub mod private;
pub mod reconcile;
pub mod replicate;
pub mod report;
pub mod resolve;
pub mod restore;
pub mod run;
pub mod sets;
pub mod simulate;
pub mod status;
pub mod tools;
pub mod units;

pub use error::{exit, Error};

/// Parses `args` (program name first), runs the command, and returns the process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    cli::main(args)
}
