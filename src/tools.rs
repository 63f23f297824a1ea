//! External programs from trusted places (DESIGN invariant 9). lvsnap runs as root: a program
//! found through `$PATH`, or one that a user could replace, would run with root's rights. So
//! every program (LVM's tools, mount, rsync, tar, zstd) is looked up in a fixed list of system
//! directories, preceded only by the directories of the `tool-path` setting, and used only when
//! it is owned by root and not writable by group or others. `$PATH` is never read.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// Where system programs live, in the order they are searched.
pub const SYSTEM_PATH: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// `tool-path` from the settings, searched before [`SYSTEM_PATH`]; set once per command, before
/// any program runs (process-wide, because every place that starts a program must agree).
static TOOL_PATH: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());
static FOUND: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

/// Sets the directories searched before the system ones (the `tool-path` setting).
pub fn set_tool_path(dirs: &[PathBuf]) {
    let mut cur = TOOL_PATH.write().unwrap_or_else(|e| e.into_inner());
    if cur.as_slice() != dirs {
        *cur = dirs.to_vec();
        *FOUND.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The directories searched, in order.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs = TOOL_PATH.read().unwrap_or_else(|e| e.into_inner()).clone();
    dirs.extend(SYSTEM_PATH.iter().map(PathBuf::from));
    dirs
}

/// The whole environment of a program lvsnap starts: the trusted search path and the C locale
/// (stable messages to match), nothing inherited.
pub fn child_env() -> HashMap<String, String> {
    let path = std::env::join_paths(search_path())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| SYSTEM_PATH.join(":"));
    HashMap::from([
        ("PATH".to_owned(), path),
        ("LC_ALL".to_owned(), "C".to_owned()),
    ])
}

/// Why a program cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("{name} not found (looked in {searched})")]
    Missing { name: String, searched: String },
    #[error("{} is not trusted: {why}; lvsnap runs only programs owned by root and writable by no one else", .path.display())]
    Untrusted { path: PathBuf, why: String },
}

/// The absolute path of program `name`, checked once per process.
///
/// # Errors
/// Not found in the search path, or the first one found is not safe to run as root.
pub fn find(name: &str) -> Result<PathBuf, ToolError> {
    if let Some(p) = FOUND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(name)
    {
        return Ok(p.clone());
    }
    let dirs = search_path();
    let found = dirs
        .iter()
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| ToolError::Missing {
            name: name.to_owned(),
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })?;
    // The link lvsnap starts (lvcreate → lvm) sits in a directory that must be as safe as the
    // program it leads to: whoever can write there could point it elsewhere later.
    if let Some(dir) = found.parent() {
        trusted(dir)?;
    }
    trusted(&found)?;
    FOUND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(name.to_owned(), found.clone());
    Ok(found)
}

/// A program named in a policy: an absolute path, used only if it is as safe as a system
/// program, or a name looked up like one.
///
/// # Errors
/// Not found, not a program, or not safe to run as root.
pub fn program(name: &str) -> Result<PathBuf, ToolError> {
    if !name.contains('/') {
        return find(name);
    }
    let path = Path::new(name);
    if !path.is_absolute()
        || !path
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    {
        return Err(ToolError::Missing {
            name: name.to_owned(),
            searched: "an absolute path to a program".to_owned(),
        });
    }
    trusted(path)?;
    Ok(path.to_owned())
}

/// [`find`] for callers that report errors as text.
///
/// # Errors
/// As [`find`].
pub fn path_of(name: &str) -> Result<PathBuf, String> {
    find(name).map_err(|e| e.to_string())
}

/// A directory that holds something root trusts (a credential file): it and every directory
/// above it must be root's and writable by no one else (a sticky directory such as /tmp aside).
///
/// # Errors
/// One is not; with which and why.
pub fn trusted_dir(dir: &Path) -> Result<(), String> {
    trusted(dir).map_err(|e| match e {
        ToolError::Untrusted { why, .. } => why,
        other => other.to_string(),
    })
}

/// The program and every directory above it (after links are resolved) must be root's and
/// writable by no one else: otherwise whoever can write there chooses what root runs.
fn trusted(path: &Path) -> Result<(), ToolError> {
    match untrusted_ancestor(path) {
        None => Ok(()),
        Some((_, why)) => Err(ToolError::Untrusted {
            path: path.to_owned(),
            why,
        }),
    }
}

/// The first of `path` and the directories above it (after links are resolved) that is not
/// root's alone, with why; `None` when all are.
pub fn untrusted_ancestor(path: &Path) -> Option<(PathBuf, String)> {
    let real = match std::fs::canonicalize(path) {
        Ok(r) => r,
        Err(e) => return Some((path.to_owned(), e.to_string())),
    };
    for p in real.ancestors() {
        let m = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => return Some((p.to_owned(), format!("{}: {e}", p.display()))),
        };
        let why = if m.uid() != 0 {
            format!("{} is owned by uid {}", p.display(), m.uid())
        } else if m.mode() & 0o022 != 0 && !(m.is_dir() && m.mode() & 0o1000 != 0 && p != real) {
            format!(
                "{} is writable by group or others (mode {:o})",
                p.display(),
                m.mode() & 0o7777
            )
        } else {
            continue;
        };
        return Some((p.to_owned(), why));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_others_can_write_is_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = t.path().join("tool");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o757)).unwrap();
        let err = trusted(&p).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        if rustix::process::geteuid().is_root() {
            trusted(&p).unwrap();
        }
    }

    #[test]
    fn path_is_never_searched() {
        // A program only on $PATH is not found, whatever $PATH says.
        let err = find("lvsnap-test-no-such-tool").unwrap_err().to_string();
        assert!(err.contains("/usr/sbin:/usr/bin:/sbin:/bin"), "{err}");
    }
}
