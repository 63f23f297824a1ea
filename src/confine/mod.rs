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

/// Opens `path`, a directory an administrator named (a restore's destination), from `/` one
/// component at a time, creating missing ones (0700) when `create`. A symbolic link on the way
/// is followed only where no one but root could have put it there — in a directory root owns
/// that no one else may write to, or root's own link in a sticky one such as `/tmp` — because
/// a user who can change a directory on the path could otherwise swap a component for a link
/// and send everything lvsnap writes, as root, elsewhere. The directory returned is the one
/// lvsnap writes into, whatever is renamed afterwards.
///
/// # Errors
/// A component is missing (and not to be created), not a directory, `..`, a link a user could
/// have planted, or a loop of links; the message names the component and the fix.
pub fn open_named_dir(path: &Path, create: bool) -> Result<OwnedFd, String> {
    use crate::names::shown;
    use std::collections::VecDeque;
    use std::ffi::OsString;
    /// One step of the walk: a name to go into, or `..` from a link's target (back to the
    /// directory already opened above, never `openat("..")`).
    enum Step {
        Into(OsString),
        Up,
    }
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", shown(path)));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{} holds \"..\"; give the directory's own path",
            shown(path)
        ));
    }
    let steps = |p: &Path| -> VecDeque<Step> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Step::Into(n.to_owned())),
                Component::ParentDir => Some(Step::Up),
                _ => None,
            })
            .collect()
    };
    let root = rustix::fs::open("/", dir_flags(), Mode::empty())
        .map_err(|e| format!("cannot open /: {e}"))?;
    let mut queue = steps(path);
    // The directories opened so far, `/` first, with their paths (for messages).
    let mut stack: Vec<(OwnedFd, PathBuf)> = vec![(root, PathBuf::from("/"))];
    let mut links = 0;
    while let Some(step) = queue.pop_front() {
        let name = match step {
            Step::Up => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            Step::Into(name) => name,
        };
        let (cur, at) = stack.last().expect("/ stays");
        let here = at.join(&name);
        let st = match rustix::fs::statat(cur, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(format!("cannot use {}: {e}", shown(&here))),
        };
        match st {
            None if create => {
                match rustix::fs::mkdirat(cur, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(format!("cannot create {}: {e}", shown(&here))),
                }
                queue.push_front(Step::Into(name));
            }
            None => return Err(format!("{} does not exist", shown(&here))),
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                let target = rustix::fs::readlinkat(cur, &name, Vec::new())
                    .map(|t| PathBuf::from(OsString::from_vec(t.into_bytes())))
                    .map_err(|e| format!("cannot read the link {}: {e}", shown(&here)))?;
                if let Some(who) = untrusted_link_dir(cur, st.st_uid) {
                    return Err(format!(
                        "{} goes through {}, a symbolic link (to {}) {who}: whoever can change it could send the restore elsewhere; give the real path of the directory",
                        shown(path),
                        shown(&here),
                        shown(&target),
                    ));
                }
                links += 1;
                if links > 40 {
                    return Err(format!("{} goes through too many links", shown(path)));
                }
                if target.is_absolute() {
                    stack.truncate(1);
                }
                let mut rest = steps(&target);
                rest.extend(queue.drain(..));
                queue = rest;
            }
            Some(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                return Err(format!("{} is not a directory", shown(&here)));
            }
            Some(_) => {
                let fd = rustix::fs::openat(cur, &name, dir_flags(), Mode::empty()).map_err(
                    |e| match e {
                        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                            format!("{} changed while it was being opened", shown(&here))
                        }
                        e => format!("cannot open {}: {e}", shown(&here)),
                    },
                )?;
                stack.push((fd, here));
            }
        }
    }
    Ok(stack.pop().expect("/ stays").0)
}

/// Why a link of uid `link_owner` in directory `dir` may have been put there by someone other
/// than root, if it may: the directory is not root's, others may write to it (a sticky one
/// only for their own links), or it is on a filesystem users can mount (`nosuid`: a stick,
/// an image, FUSE), where "root's" is only what its maker wrote.
fn untrusted_link_dir(dir: &OwnedFd, link_owner: u32) -> Option<String> {
    let st = match rustix::fs::fstat(dir) {
        Ok(st) => st,
        Err(e) => return Some(format!("in a directory that cannot be checked ({e})")),
    };
    let sticky = st.st_mode & 0o1000 != 0;
    if st.st_uid != 0 {
        return Some(format!("in a directory that uid {} owns", st.st_uid));
    }
    if st.st_mode & 0o022 != 0 && !(sticky && link_owner == 0) {
        return Some(if sticky {
            format!(
                "of uid {link_owner} in a directory everyone may add to (mode {:o})",
                st.st_mode & 0o7777
            )
        } else {
            format!(
                "in a directory others may write to (mode {:o})",
                st.st_mode & 0o7777
            )
        });
    }
    match rustix::fs::fstatvfs(dir) {
        Ok(v) if v.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID) => Some(
            "on a filesystem mounted nosuid, as users' own media are (its owners are what its maker wrote)"
                .to_owned(),
        ),
        Ok(_) => None,
        Err(e) => Some(format!("on a filesystem that cannot be checked ({e})")),
    }
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
