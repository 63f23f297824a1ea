//! Talking to LVM: every command lvsnap runs goes through a [`Runner`] as an argv vector (never
//! a shell). [`real::SystemRunner`] runs the tools, resolved to absolute paths at start-up;
//! [`fake::FakeLvm`] models LVM in memory for logic and failure-path tests. [`report`] parses
//! the one `lvs` call a run makes.

pub mod commands;
pub mod fake;
pub mod real;
pub mod report;

use std::fmt;
use std::time::Duration;

pub use report::{parse_lvs, Inventory, Lv, LvKind, VgInfo};

/// The programs lvsnap runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Lvs,
    Lvcreate,
    Lvremove,
    Lvextend,
    Lvchange,
    /// Merges a snapshot into its origin (rollback).
    Lvconvert,
    /// Swaps a detached thin snapshot in for its origin (rollback).
    Lvrename,
    /// Filesystem probing and mounting, for backups and restores.
    Blkid,
    Mount,
    Umount,
    /// Messages to a thin pool (reserving its metadata snapshot), for replication.
    Dmsetup,
    /// A thin device's block map from the pool's metadata snapshot, for replication.
    ThinDump,
}

impl Tool {
    pub const ALL: [Tool; 10] = [
        Tool::Lvs,
        Tool::Lvcreate,
        Tool::Lvremove,
        Tool::Lvextend,
        Tool::Lvchange,
        Tool::Lvconvert,
        Tool::Lvrename,
        Tool::Blkid,
        Tool::Mount,
        Tool::Umount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Lvs => "lvs",
            Tool::Lvcreate => "lvcreate",
            Tool::Lvremove => "lvremove",
            Tool::Lvextend => "lvextend",
            Tool::Lvchange => "lvchange",
            Tool::Lvconvert => "lvconvert",
            Tool::Lvrename => "lvrename",
            Tool::Blkid => "blkid",
            Tool::Mount => "mount",
            Tool::Umount => "umount",
            Tool::Dmsetup => "dmsetup",
            Tool::ThinDump => "thin_dump",
        }
    }

    /// The Debian package that ships the tool, for "install …" hints.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Blkid => "util-linux",
            Tool::Mount | Tool::Umount => "mount",
            Tool::Dmsetup => "dmsetup",
            Tool::ThinDump => "thin-provisioning-tools",
            _ => "lvm2",
        }
    }
}

/// One command: a tool and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub tool: Tool,
    pub args: Vec<String>,
}

impl Invocation {
    pub fn new(tool: Tool, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Invocation {
            tool,
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The argv as a user would type it (for messages and the catalog's event log).
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.tool.name().to_owned())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv().join(" "))
    }
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LvmError {
    #[error("{tool} not found (looked in {searched}); install the {package} package")]
    NotFound {
        tool: &'static str,
        package: &'static str,
        searched: String,
    },
    #[error("{0}")]
    Untrusted(String),
    #[error("could not start {argv}: {source}")]
    Start {
        argv: String,
        source: std::io::Error,
    },
    #[error("{argv} exited with status {status}: {}{}", first_line(.stderr), hint_suffix(.hint))]
    Status {
        argv: String,
        status: i32,
        stderr: String,
        hint: Option<&'static str>,
    },
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

fn first_line(stderr: &str) -> &str {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("WARNING"))
        .unwrap_or("(no message)")
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!("\n    hint: {h}")).unwrap_or_default()
}

/// What LVM's known complaints mean for the administrator.
pub fn hint_for(stderr: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        ("Insufficient free space", "the volume group has too little free space: lower the policy's size, remove snapshots, or extend the volume group (vgextend)"),
        ("insufficient free space", "the volume group has too little free space: lower the policy's size, remove snapshots, or extend the volume group (vgextend)"),
        ("free space in thin pool", "the thin pool is too full: extend it (lvextend) or remove snapshots"),
        ("contains a filesystem in use", "the volume is mounted: unmount it first"),
        ("already exists", "a logical volume of that name exists already"),
        ("not found", "the volume or volume group does not exist: check `lvs`"),
        ("Failed to find logical volume", "the volume does not exist: check `lvs`"),
        ("Volume group", "check the volume group with `vgs`"),
    ];
    HINTS
        .iter()
        .find(|(needle, _)| stderr.contains(needle))
        .map(|(_, hint)| *hint)
}

/// Runs LVM commands. Implementations: the system's tools, or an in-memory fake.
pub trait Runner: Send + Sync {
    /// Runs `inv` and returns how it ended; a non-zero status is *not* an error here.
    ///
    /// # Errors
    /// The tool could not be found or started.
    fn run(&self, inv: &Invocation) -> Result<Completed, LvmError>;

    /// Checks, before anything is changed, that every tool lvsnap may run is there.
    ///
    /// # Errors
    /// The first missing tool, with the package to install.
    fn check_tools(&self) -> Result<(), LvmError> {
        Ok(())
    }
}

/// Turns a non-zero status into an error that keeps argv, status, stderr and a hint.
///
/// # Errors
/// The command exited with a non-zero status.
pub fn check(inv: &Invocation, done: &Completed) -> Result<(), LvmError> {
    if done.status == 0 {
        return Ok(());
    }
    Err(LvmError::Status {
        argv: inv.to_string(),
        status: done.status,
        stderr: done.stderr.clone(),
        hint: hint_for(&done.stderr),
    })
}

#[cfg(test)]
mod tests {
    use super::commands::*;

    #[test]
    fn argv_of_every_command() {
        let tags = vec!["lvsnap".to_owned(), "lvsnap-policy=home".to_owned()];
        assert_eq!(
            create_thick("vg0", "home", "home-lvsnap-20261128T060000Z", 16, &tags).to_string(),
            "lvcreate --snapshot --extents 16 --name home-lvsnap-20261128T060000Z --addtag lvsnap --addtag lvsnap-policy=home vg0/home"
        );
        assert_eq!(
            create_thin("vg0", "data", "data-lvsnap-20261128T060000Z", &tags[..1]).to_string(),
            "lvcreate --snapshot --name data-lvsnap-20261128T060000Z --addtag lvsnap vg0/data"
        );
        assert_eq!(remove("vg0", "x").to_string(), "lvremove --yes vg0/x");
        assert_eq!(
            extend("vg0", "x", 4).to_string(),
            "lvextend --extents +4 vg0/x"
        );
        assert_eq!(
            add_tag("vg0", "x", "lvsnap-pinned").to_string(),
            "lvchange --addtag lvsnap-pinned vg0/x"
        );
        assert_eq!(
            del_tag("vg0", "x", "lvsnap-pinned").to_string(),
            "lvchange --deltag lvsnap-pinned vg0/x"
        );
        assert!(inventory()
            .to_string()
            .starts_with("lvs -a --reportformat json --units b --nosuffix"));
    }

    #[test]
    fn known_stderr_gets_a_hint() {
        let e = super::check(
            &remove("vg0", "x"),
            &super::Completed {
                status: 5,
                stdout: String::new(),
                stderr: "  Logical volume vg0/x contains a filesystem in use.\n".into(),
                duration: Default::default(),
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "lvremove --yes vg0/x exited with status 5: Logical volume vg0/x contains a filesystem in use.\n    hint: the volume is mounted: unmount it first");
    }
}
