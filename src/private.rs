//! Private by default (DESIGN invariant 9): what lvsnap creates — catalog, backups, manifests,
//! runtime and mount directories — is root's alone, whatever umask it was started with. The
//! process umask is set to 077 first thing, and the functions here give explicit modes, so a
//! file is never briefly readable by others either.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Sets the process umask to 077: whatever lvsnap or a program it starts creates without an
/// explicit mode is private.
pub fn set_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` and its missing parents, each 0700. Existing directories are left as they are.
///
/// # Errors
/// A directory cannot be created.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// [`create_dir_all`] for a directory that is lvsnap's own (its runtime directory, a backup
/// directory): an existing one that others can enter is narrowed to 0700 as well.
///
/// # Errors
/// It cannot be created or its mode cannot be changed.
pub fn own_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir)?;
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    narrow(dir, &m, 0o700)
}

/// Narrows an existing file of lvsnap's (the catalog, its WAL) to `mode`, if it is wider.
///
/// # Errors
/// The mode cannot be changed.
pub fn narrow_file(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => narrow(path, &m, mode),
        _ => Ok(()),
    }
}

fn narrow(path: &Path, m: &std::fs::Metadata, mode: u32) -> io::Result<()> {
    if m.mode() & 0o777 & !mode != 0 {
        std::fs::set_permissions(path, Permissions::from_mode((m.mode() & 0o7000) | mode))?;
    }
    Ok(())
}

/// Creates `path` anew with `mode` (never through a link, never an existing file).
///
/// # Errors
/// It exists already or cannot be created.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_directories_are_narrowed_and_new_ones_private() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_dir_all(&d).unwrap();
        for p in [t.path().join("a"), d.clone()] {
            assert_eq!(std::fs::metadata(p).unwrap().mode() & 0o777, 0o700);
        }
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        own_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        let f = d.join("f");
        drop(create_new(&f, 0o600).unwrap());
        assert!(create_new(&f, 0o600).is_err(), "never an existing file");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
    }
}
