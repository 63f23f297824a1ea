//! Copying paths out of a source tree (a mounted snapshot, a backup generation, an unpacked
//! archive) into a destination, confined on both sides: every directory on either side is opened
//! from its root's descriptor with `O_NOFOLLOW` ([`crate::confine`]), so a link planted in the
//! source is restored as a link and never read through, and a link planted in the destination is
//! something in the way, never a way out. Files are written under a temporary name in their
//! final directory and renamed into place (`RENAME_NOREPLACE` unless overwriting was asked for),
//! so nothing half-written ever carries a restored name.
//!
//! Existing parents of a restored path are left exactly as they are; missing ones are created
//! with the source's owner, mode, xattrs (ACLs) and times. Owners are numeric. Hard links among
//! the restored files are kept; sparse files stay sparse.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, RenameFlags, Stat, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::confine::{self, kind, lstat, WalkError};
use crate::names::shown;

/// One entry the restore writes, in the order it writes them (parents first).
#[derive(Debug, Clone)]
pub struct Item {
    /// Path below both roots.
    pub rel: PathBuf,
    pub kind: FileType,
    pub size: u64,
    /// A missing parent of a requested path: created, nothing below it copied for its sake.
    pub parent: bool,
    /// What the destination has there now.
    pub there: Option<FileType>,
}

impl Item {
    /// Something other than a directory into which a directory merges is in the way.
    pub fn in_the_way(&self) -> bool {
        match self.there {
            None => false,
            Some(FileType::Directory) => self.kind != FileType::Directory,
            Some(_) => true,
        }
    }

    /// A directory where a non-directory goes: even `--force` does not remove a directory.
    pub fn blocked(&self) -> bool {
        self.there == Some(FileType::Directory) && self.kind != FileType::Directory
    }

    /// What is in the way, in words.
    pub fn obstacle(&self) -> &'static str {
        describe(self.there)
    }
}

fn describe(t: Option<FileType>) -> &'static str {
    match t {
        None => "nothing",
        Some(FileType::Directory) => "a directory",
        Some(FileType::Symlink) => "a symbolic link",
        Some(FileType::RegularFile) => "a file",
        Some(_) => "a special file",
    }
}

/// What a restore would do.
#[derive(Debug, Default)]
pub struct CopyPlan {
    pub items: Vec<Item>,
    /// Requested paths the source does not have.
    pub missing: Vec<PathBuf>,
}

impl CopyPlan {
    /// Everything restored that is not a directory.
    pub fn files(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| !i.parent && i.kind != FileType::Directory)
    }

    pub fn bytes(&self) -> u64 {
        self.files().map(|i| i.size).sum()
    }

    /// Missing parents the restore creates.
    pub fn parents(&self) -> impl Iterator<Item = &Path> {
        self.items
            .iter()
            .filter(|i| i.parent)
            .map(|i| i.rel.as_path())
    }

    pub fn conflicts(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.in_the_way())
    }
}

/// Plans restoring `paths` (plain relative components) from `src` into `dest` (`None`: a
/// destination that does not exist yet).
///
/// # Errors
/// A requested path goes through a link in the source (named), or the source cannot be read.
pub fn plan(src: &OwnedFd, dest: Option<&OwnedFd>, paths: &[PathBuf]) -> Result<CopyPlan, String> {
    let mut plan = CopyPlan::default();
    let mut planned = BTreeSet::new();
    let root_dev = fstat(src)?.st_dev;
    for rel in outermost(paths) {
        let (parent_rel, name) = confine::split(&rel);
        let src_parent = match confine::open_dir(src, &parent_rel) {
            Ok(fd) => fd,
            Err(WalkError::Link { at, target }) => return Err(through_link(&rel, &at, &target)),
            Err(WalkError::Missing { .. } | WalkError::NotDir { .. }) => {
                plan.missing.push(rel);
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut d = dest.map(dup).transpose()?;
        let mut s = dup(src)?;
        let mut prefix = PathBuf::new();
        for comp in parent_rel.iter() {
            prefix.push(comp);
            s = open_at(&s, comp).map_err(|e| read_err(&prefix, &e))?;
            let there = match &d {
                Some(d) => lstat(d, comp).map_err(|e| read_err(&prefix, &e))?,
                None => None,
            };
            d = match (&d, there.as_ref().map(kind)) {
                (Some(dd), Some(FileType::Directory)) => {
                    Some(open_at(dd, comp).map_err(|e| read_err(&prefix, &e))?)
                }
                _ => None,
            };
            if d.is_none() && planned.insert(prefix.clone()) {
                plan.items.push(Item {
                    rel: prefix.clone(),
                    kind: FileType::Directory,
                    size: 0,
                    parent: true,
                    there: there.as_ref().map(kind),
                });
            }
        }
        let Some(name) = name else {
            // The whole volume: its entries, into the destination itself.
            let dfd = d.as_ref();
            for (child, st) in children(&src_parent)? {
                let at = rel.join(&child);
                walk(&mut plan, &src_parent, &child, &st, dfd, &at, root_dev)?;
            }
            continue;
        };
        match lstat(&src_parent, name).map_err(|e| read_err(&rel, &e))? {
            None => plan.missing.push(rel.clone()),
            Some(st) => walk(
                &mut plan,
                &src_parent,
                name,
                &st,
                d.as_ref(),
                &rel,
                root_dev,
            )?,
        }
    }
    Ok(plan)
}

/// Adds `rel` (named `name` in `sdir`) and, for a directory, everything below it on the same
/// filesystem.
fn walk(
    plan: &mut CopyPlan,
    sdir: &OwnedFd,
    name: &OsStr,
    st: &Stat,
    ddir: Option<&OwnedFd>,
    rel: &Path,
    root_dev: u64,
) -> Result<(), String> {
    let there = match ddir {
        Some(d) => lstat(d, name).map_err(|e| read_err(rel, &e))?,
        None => None,
    };
    let k = kind(st);
    plan.items.push(Item {
        rel: rel.to_owned(),
        kind: k,
        size: if k == FileType::RegularFile {
            size(st)
        } else {
            0
        },
        parent: false,
        there: there.as_ref().map(kind),
    });
    // A mount point inside the source is left out, as the manifests do.
    if k != FileType::Directory || dev(st) != root_dev {
        return Ok(());
    }
    let sfd = open_at(sdir, name).map_err(|e| read_err(rel, &e))?;
    let dfd = match (ddir, there.as_ref().map(kind)) {
        (Some(d), Some(FileType::Directory)) => {
            Some(open_at(d, name).map_err(|e| read_err(rel, &e))?)
        }
        _ => None,
    };
    for (child, cst) in children(&sfd)? {
        walk(
            plan,
            &sfd,
            &child,
            &cst,
            dfd.as_ref(),
            &rel.join(&child),
            root_dev,
        )?;
    }
    Ok(())
}

/// Writes what `plan` says. With `overwrite`, what is in the way (not a directory) is replaced;
/// without it, anything that appeared since planning stops the restore.
///
/// # Errors
/// A side changed since planning in a way that would need a link to be followed, or a write
/// failed; what was restored until then stays.
pub fn copy(src: &OwnedFd, dest: &OwnedFd, plan: &CopyPlan, overwrite: bool) -> Result<(), String> {
    let mut first_name: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<&Path> = Vec::new();
    let restored: HashSet<&Path> = plan.items.iter().map(|i| i.rel.as_path()).collect();
    // Existing parents keep their times too: adding an entry to a directory changes them.
    let mut parent_times: HashMap<PathBuf, Timestamps> = HashMap::new();
    for item in &plan.items {
        let (parent_rel, name) = confine::split(&item.rel);
        let name = name.ok_or("the destination itself is never replaced")?;
        let sdir = confine::open_dir(src, &parent_rel).map_err(|e| changed("source", &e))?;
        let ddir = confine::open_dir(dest, &parent_rel).map_err(|e| changed("destination", &e))?;
        if !restored.contains(parent_rel.as_path()) && !parent_times.contains_key(&parent_rel) {
            let st = rustix::fs::fstat(&ddir).map_err(|e| write_err(&parent_rel, &e.into()))?;
            parent_times.insert(parent_rel.clone(), times(&st));
        }
        let st = lstat(&sdir, name)
            .map_err(|e| read_err(&item.rel, &e))?
            .ok_or_else(|| format!("{} vanished from the source", shown(&item.rel)))?;
        let there = lstat(&ddir, name).map_err(|e| write_err(&item.rel, &e))?;
        let there = there.as_ref().map(kind);
        if there.is_some() && there != Some(FileType::Directory) && !overwrite {
            return Err(format!(
                "{} appeared in the destination while restoring; nothing was overwritten",
                shown(&item.rel)
            ));
        }
        if kind(&st) == FileType::Directory {
            if there != Some(FileType::Directory) {
                if there.is_some() {
                    rustix::fs::unlinkat(&ddir, name, AtFlags::empty())
                        .map_err(|e| write_err(&item.rel, &e.into()))?;
                }
                rustix::fs::mkdirat(&ddir, name, Mode::RWXU)
                    .map_err(|e| write_err(&item.rel, &e.into()))?;
            } else if item.parent {
                continue;
            }
            dirs.push(&item.rel);
            continue;
        }
        if there == Some(FileType::Directory) {
            return Err(format!(
                "{} is a directory in the destination where the source has {}; remove or rename it first",
                shown(&item.rel),
                describe(Some(kind(&st)))
            ));
        }
        let key = (dev(&st), st.st_ino);
        let linked_to = (nlink(&st) > 1)
            .then(|| first_name.get(&key))
            .flatten()
            .cloned();
        let tmp = place(&sdir, &ddir, name, &st, dest, linked_to.as_deref())
            .map_err(|e| write_err(&item.rel, &e))?;
        let flags = if overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        if let Err(e) = rustix::fs::renameat_with(&ddir, &tmp, &ddir, name, flags) {
            let _ = rustix::fs::unlinkat(&ddir, &tmp, AtFlags::empty());
            return Err(write_err(&item.rel, &e.into()));
        }
        if nlink(&st) > 1 && linked_to.is_none() {
            first_name.insert(key, item.rel.clone());
        }
    }
    // Directories last and deepest first: writing into a directory changes its times.
    for rel in dirs.into_iter().rev() {
        let sdir = confine::open_dir(src, rel).map_err(|e| changed("source", &e))?;
        let ddir = confine::open_dir(dest, rel).map_err(|e| changed("destination", &e))?;
        let st = fstat(&sdir)?;
        set_metadata(&sdir, &ddir, &st).map_err(|e| write_err(rel, &e))?;
    }
    for (rel, t) in &parent_times {
        let ddir = confine::open_dir(dest, rel).map_err(|e| changed("destination", &e))?;
        rustix::fs::futimens(&ddir, t).map_err(|e| write_err(rel, &e.into()))?;
    }
    rustix::fs::syncfs(dest).map_err(|e| format!("cannot sync the destination: {e}"))
}

/// Creates the copy of `name` under a fresh temporary name in `ddir`, with its metadata;
/// returns that name.
fn place(
    sdir: &OwnedFd,
    ddir: &OwnedFd,
    name: &OsStr,
    st: &Stat,
    dest: &OwnedFd,
    linked_to: Option<&Path>,
) -> io::Result<OsString> {
    let k = kind(st);
    if let Some(first) = linked_to {
        let (p, n) = confine::split(first);
        let pfd = confine::open_dir(dest, &p).map_err(|e| io::Error::other(e.to_string()))?;
        let n = n.unwrap_or_default();
        return with_temp_name(|tmp| rustix::fs::linkat(&pfd, n, ddir, tmp, AtFlags::empty()));
    }
    match k {
        FileType::RegularFile => {
            let sfd = rustix::fs::openat(
                sdir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut out = None;
            let tmp = with_temp_name(|tmp| {
                let fd = rustix::fs::openat(
                    ddir,
                    tmp,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::RUSR | Mode::WUSR,
                )?;
                out = Some(fd);
                Ok(())
            })?;
            let dfd = out.expect("created above");
            let done = copy_data(&sfd, &dfd, size(st)).and_then(|()| set_metadata(&sfd, &dfd, st));
            if let Err(e) = done {
                let _ = rustix::fs::unlinkat(ddir, &tmp, AtFlags::empty());
                return Err(e);
            }
            Ok(tmp)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(sdir, name, Vec::new())?;
            let tmp = with_temp_name(|tmp| rustix::fs::symlinkat(target.as_c_str(), ddir, tmp))?;
            set_metadata_at(ddir, &tmp, st, false)?;
            Ok(tmp)
        }
        _ => {
            let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
            let tmp = with_temp_name(|tmp| rustix::fs::mknodat(ddir, tmp, k, mode, rdev(st)))?;
            set_metadata_at(ddir, &tmp, st, true)?;
            Ok(tmp)
        }
    }
}

/// Tries fresh temporary names until one can be created.
fn with_temp_name(
    mut create: impl FnMut(&OsStr) -> rustix::io::Result<()>,
) -> io::Result<OsString> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = OsString::from(format!(".lvsnap-restore.{}.{n}", std::process::id()));
        match create(&name) {
            Ok(()) => return Ok(name),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("no free temporary name"))
}

/// Copies the data of a file, leaving holes where the source has them.
fn copy_data(src: &OwnedFd, dst: &OwnedFd, len: u64) -> io::Result<()> {
    use rustix::fs::SeekFrom;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let start = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = rustix::fs::seek(src, SeekFrom::Hole(start))?.min(len);
        let mut off = start;
        while off < end {
            let want = usize::try_from(end - off)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = rustix::io::pread(src, &mut buf[..want], off)?;
            if n == 0 {
                break;
            }
            write_all_at(dst, &buf[..n], off)?;
            off += n as u64;
        }
        pos = end.max(start + 1);
    }
    rustix::fs::ftruncate(dst, len)?;
    Ok(())
}

fn write_all_at(fd: &OwnedFd, mut data: &[u8], mut off: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = rustix::io::pwrite(fd, data, off)?;
        data = &data[n..];
        off += n as u64;
    }
    Ok(())
}

/// Owner, mode, xattrs (ACLs among them) and times of `src` onto `dst` — in that order: a
/// change of owner clears set-id bits, and every change moves the times.
fn set_metadata(src: &OwnedFd, dst: &OwnedFd, st: &Stat) -> io::Result<()> {
    rustix::fs::fchown(
        dst,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    copy_xattrs(src, dst)?;
    rustix::fs::futimens(dst, &times(st))?;
    Ok(())
}

/// [`set_metadata`] for what cannot be opened (a link, a device, a fifo): owner, mode (not of a
/// link, which has none of its own) and times, by name.
fn set_metadata_at(dir: &OwnedFd, name: &OsStr, st: &Stat, mode: bool) -> io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if mode {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    rustix::fs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn copy_xattrs(src: &OwnedFd, dst: &OwnedFd) -> io::Result<()> {
    let len = match rustix::fs::flistxattr_query(src) {
        Ok(0) => return Ok(()),
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; len];
    let n = rustix::fs::flistxattr(src, &mut names[..])?;
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let vlen = match rustix::fs::fgetxattr_query(src, name) {
            Ok(v) => v,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; vlen];
        let v = rustix::fs::fgetxattr(src, name, &mut value[..])?;
        match rustix::fs::fsetxattr(dst, name, &value[..v], XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOTSUP) => tracing::warn!(
                attribute = %name.to_string_lossy(),
                "the destination's filesystem does not store this extended attribute"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The outermost of `paths`: restoring `a` already restores `a/b`.
fn outermost(paths: &[PathBuf]) -> Vec<PathBuf> {
    let sorted: BTreeSet<&PathBuf> = paths.iter().collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in sorted {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p.clone());
        }
    }
    out
}

/// The entries of a directory (without `.` and `..`), sorted by name, each with its `lstat`.
fn children(dir: &OwnedFd) -> Result<Vec<(OsString, Stat)>, String> {
    let err = |e: Errno| format!("cannot read a directory of the source: {e}");
    let mut out = Vec::new();
    for entry in Dir::read_from(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsString::from_vec(name.to_vec());
        if let Some(st) = lstat(dir, &name).map_err(|e| format!("cannot read the source: {e}"))? {
            out.push((name, st));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn open_at(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, String> {
    rustix::io::fcntl_dupfd_cloexec(fd.as_fd(), 0)
        .map_err(|e| format!("cannot duplicate a descriptor: {e}"))
}

fn fstat(fd: &OwnedFd) -> Result<Stat, String> {
    rustix::fs::fstat(fd).map_err(|e| format!("cannot stat the source: {e}"))
}

fn through_link(rel: &Path, link: &Path, target: &Path) -> String {
    format!(
        "{} goes through {}, a symbolic link (to {}) in the source; lvsnap restores links as links and never follows them: restore {} itself, or name the path it points to",
        shown(rel),
        shown(link),
        shown(target),
        shown(link)
    )
}

fn changed(side: &str, e: &WalkError) -> String {
    format!("the {side} changed while restoring ({e}); nothing was followed out of it")
}

fn read_err(rel: &Path, e: &io::Error) -> String {
    format!("cannot read {} in the source: {e}", shown(rel))
}

fn write_err(rel: &Path, e: &io::Error) -> String {
    format!("cannot restore {}: {e}", shown(rel))
}

// `Stat`'s field types differ between architectures; these read them as one type.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn size(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn dev(st: &Stat) -> u64 {
    st.st_dev as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn nlink(st: &Stat) -> u64 {
    st.st_nlink as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn rdev(st: &Stat) -> u64 {
    st.st_rdev as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}
