//! Paths beneath a root, never through a link (DESIGN invariant 8). A snapshot, a backup and a
//! restore destination hold files that users control; lvsnap runs as root. So a path below a
//! root is opened one component at a time with `O_NOFOLLOW` from the root's descriptor, and a
//! symbolic link met on the way is reported (named), never followed: a link is data.
//!
//! This module only opens and inspects; what to do with what it finds is the caller's.

pub mod copy;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Why a path below a root could not be opened as a directory.
#[derive(Debug)]
pub enum WalkError {
    /// A component is a symbolic link (its path below the root, and where it points).
    Link {
        at: PathBuf,
        target: PathBuf,
    },
    /// A component is not a directory.
    NotDir {
        at: PathBuf,
    },
    /// A component does not exist.
    Missing {
        at: PathBuf,
    },
    Io {
        at: PathBuf,
        source: io::Error,
    },
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::names::shown;
        match self {
            WalkError::Link { at, target } => {
                write!(f, "{} is a symbolic link (to {})", shown(at), shown(target))
            }
            WalkError::NotDir { at } => write!(f, "{} is not a directory", shown(at)),
            WalkError::Missing { at } => write!(f, "{} does not exist", shown(at)),
            WalkError::Io { at, source } => write!(f, "cannot open {}: {source}", shown(at)),
        }
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens a directory lvsnap chose itself (a mount point, a generation, a destination it was
/// given) as the root of a walk. The last component must not be a link.
///
/// # Errors
/// It is missing, a link or not a directory.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, dir_flags(), Mode::empty())?)
}

/// Opens `rel` (only plain components; empty for the root itself) below `root` as a directory,
/// without following any link.
///
/// # Errors
/// A component is a link, not a directory, missing, or cannot be opened.
pub fn open_dir(root: impl AsFd, rel: &Path) -> Result<OwnedFd, WalkError> {
    let mut cur = rustix::io::fcntl_dupfd_cloexec(root.as_fd(), 0).map_err(|e| WalkError::Io {
        at: PathBuf::new(),
        source: e.into(),
    })?;
    let mut at = PathBuf::new();
    for c in rel.components() {
        let name = match c {
            Component::Normal(name) => name,
            Component::CurDir => continue,
            _ => {
                return Err(WalkError::Io {
                    at: rel.to_owned(),
                    source: io::Error::other("only plain names are allowed below a root"),
                })
            }
        };
        at.push(name);
        cur = match rustix::fs::openat(&cur, name, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => return Err(classify(&cur, name, at, e.into())),
        };
    }
    Ok(cur)
}

/// Tells why opening `name` in `dir` as a directory failed.
fn classify(dir: &OwnedFd, name: &OsStr, at: PathBuf, err: io::Error) -> WalkError {
    match lstat(dir, name) {
        Ok(None) => WalkError::Missing { at },
        Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())
                .map(|t| PathBuf::from(std::ffi::OsString::from_vec(t.into_bytes())))
                .unwrap_or_default();
            WalkError::Link { at, target }
        }
        Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            WalkError::NotDir { at }
        }
        _ => WalkError::Io { at, source: err },
    }
}

/// `lstat` of `name` in `dir`: `None` when it does not exist.
///
/// # Errors
/// Any other failure.
pub fn lstat(dir: impl AsFd, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The type of a `stat` result.
pub fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The plain components of `rel` (the caller has refused `..`).
pub fn split(rel: &Path) -> (PathBuf, Option<&OsStr>) {
    (
        rel.parent().map(Path::to_owned).unwrap_or_default(),
        rel.file_name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_link_on_the_way_is_named_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("root/a/b")).unwrap();
        symlink("/etc", t.path().join("root/a/docs")).unwrap();
        symlink("../../..", t.path().join("root/a/up")).unwrap();
        let root = open_root(&t.path().join("root")).unwrap();
        assert!(open_dir(&root, Path::new("a/b")).is_ok());
        match open_dir(&root, Path::new("a/docs/ssh")) {
            Err(WalkError::Link { at, target }) => {
                assert_eq!(at, Path::new("a/docs"));
                assert_eq!(target, Path::new("/etc"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            open_dir(&root, Path::new("a/up")),
            Err(WalkError::Link { .. })
        ));
        assert!(matches!(
            open_dir(&root, Path::new("a/nope/x")),
            Err(WalkError::Missing { .. })
        ));
    }

    #[test]
    fn a_root_that_is_a_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        symlink("/etc", t.path().join("l")).unwrap();
        assert!(open_root(&t.path().join("l")).is_err());
    }
}
