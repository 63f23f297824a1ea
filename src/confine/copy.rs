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

/// How deep below the root a restore walks.
const MAX_DEPTH: usize = 1024;

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
    raise_fd_limit();
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
    // Each level holds two descriptors and a stack frame: a tree a user nested deeper than
    // this is refused with its name rather than run lvsnap out of either.
    if rel.components().count() > MAX_DEPTH {
        return Err(format!(
            "{} is more than {MAX_DEPTH} directories deep; restore a path further down",
            shown(rel)
        ));
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
/// without it, anything that appeared since planning stops the restore. `cancel` stops it
/// between two entries.
///
/// # Errors
/// A side changed since planning in a way that would need a link to be followed, a write
/// failed, or it was cancelled; what was restored until then stays, with its directories'
/// metadata set.
pub fn copy(
    src: &OwnedFd,
    dest: &OwnedFd,
    plan: &CopyPlan,
    overwrite: bool,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    let mut w = Writer {
        src,
        dest,
        overwrite,
        first_name: HashMap::new(),
        dirs: Vec::new(),
        parent_times: HashMap::new(),
    };
    let restored: HashSet<&Path> = plan.items.iter().map(|i| i.rel.as_path()).collect();
    let copied = plan
        .items
        .iter()
        .try_for_each(|item| {
            if cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(format!(
                    "interrupted by a signal before {}: what was restored until then stays; restore again to finish",
                    shown(&item.rel)
                ));
            }
            w.item(item, &restored)
        });
    // Directories' metadata and parents' times also after a failure: a directory left root's
    // and 0700 would be taken for an existing parent by the next try, and kept so.
    let finished = w.finish();
    copied?;
    finished?;
    rustix::fs::syncfs(dest).map_err(|e| format!("cannot sync the destination: {e}"))
}

struct Writer<'a> {
    src: &'a OwnedFd,
    dest: &'a OwnedFd,
    overwrite: bool,
    /// (source device, inode) of a hard-linked file → its first restored name and the inode
    /// it has in the destination.
    first_name: HashMap<(u64, u64), (PathBuf, u64)>,
    /// Directories created or restored, in the order they were met.
    dirs: Vec<PathBuf>,
    /// Existing parents keep their times: adding an entry to a directory changes them.
    parent_times: HashMap<PathBuf, Timestamps>,
}

impl Writer<'_> {
    fn item(&mut self, item: &Item, restored: &HashSet<&Path>) -> Result<(), String> {
        let (parent_rel, name) = confine::split(&item.rel);
        let name = name.ok_or("the destination itself is never replaced")?;
        let sdir = confine::open_dir(self.src, &parent_rel).map_err(|e| changed("source", &e))?;
        let ddir =
            confine::open_dir(self.dest, &parent_rel).map_err(|e| changed("destination", &e))?;
        if !restored.contains(parent_rel.as_path()) && !self.parent_times.contains_key(&parent_rel)
        {
            let st = rustix::fs::fstat(&ddir).map_err(|e| write_err(&parent_rel, &e.into()))?;
            self.parent_times.insert(parent_rel.clone(), times(&st));
        }
        let st = lstat(&sdir, name)
            .map_err(|e| read_err(&item.rel, &e))?
            .ok_or_else(|| format!("{} vanished from the source", shown(&item.rel)))?;
        let there = lstat(&ddir, name).map_err(|e| write_err(&item.rel, &e))?;
        let there = there.as_ref().map(kind);
        if there.is_some() && there != Some(FileType::Directory) && !self.overwrite {
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
                return Ok(());
            }
            self.dirs.push(item.rel.clone());
            return Ok(());
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
            .then(|| self.first_name.get(&key))
            .flatten()
            .cloned();
        // The data reaches the disk before it replaces a file: a power cut leaves the old file
        // or the restored one, never an empty one under the name.
        let sync = there.is_some();
        let tmp = place(&sdir, &ddir, name, &st, self.dest, linked_to.as_ref(), sync)
            .map_err(|e| write_err(&item.rel, &e))?;
        let flags = if self.overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        if let Err(e) = rustix::fs::renameat_with(&ddir, &tmp, &ddir, name, flags) {
            let _ = rustix::fs::unlinkat(&ddir, &tmp, AtFlags::empty());
            return Err(write_err(&item.rel, &e.into()));
        }
        if nlink(&st) > 1 && linked_to.is_none() {
            if let Some(placed) = lstat(&ddir, name).ok().flatten() {
                self.first_name
                    .insert(key, (item.rel.clone(), placed.st_ino));
            }
        }
        Ok(())
    }

    /// Directories deepest first (writing into a directory changes its times), then the times
    /// of the existing parents.
    fn finish(&mut self) -> Result<(), String> {
        let mut first_error = None;
        for rel in self.dirs.iter().rev() {
            let done = (|| {
                let sdir = confine::open_dir(self.src, rel).map_err(|e| changed("source", &e))?;
                let ddir =
                    confine::open_dir(self.dest, rel).map_err(|e| changed("destination", &e))?;
                let st = fstat(&sdir)?;
                set_metadata(&sdir, &ddir, &st).map_err(|e| write_err(rel, &e))
            })();
            if let Err(e) = done {
                first_error.get_or_insert(e);
            }
        }
        for (rel, t) in &self.parent_times {
            let done = confine::open_dir(self.dest, rel)
                .map_err(|e| changed("destination", &e))
                .and_then(|d| rustix::fs::futimens(&d, t).map_err(|e| write_err(rel, &e.into())));
            if let Err(e) = done {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Creates the copy of `name` under a fresh temporary name in `ddir`, with its metadata;
/// returns that name. A hard link to `linked_to` (an earlier name restored in this run, with
/// its inode in the destination) is made when it still is that file; otherwise a copy.
fn place(
    sdir: &OwnedFd,
    ddir: &OwnedFd,
    name: &OsStr,
    st: &Stat,
    dest: &OwnedFd,
    linked_to: Option<&(PathBuf, u64)>,
    sync: bool,
) -> io::Result<OsString> {
    let k = kind(st);
    if let Some((first, ino)) = linked_to {
        if let Some(tmp) = link_again(ddir, dest, first, *ino)? {
            return Ok(tmp);
        }
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
            let done = copy_data(&sfd, &dfd, size(st))
                .and_then(|()| set_metadata(&sfd, &dfd, st))
                .and_then(|()| {
                    if sync {
                        rustix::fs::fdatasync(&dfd)?;
                    }
                    Ok(())
                });
            if let Err(e) = done {
                let _ = rustix::fs::unlinkat(ddir, &tmp, AtFlags::empty());
                return Err(e);
            }
            Ok(tmp)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(sdir, name, Vec::new())?;
            let tmp = with_temp_name(|tmp| rustix::fs::symlinkat(target.as_c_str(), ddir, tmp))?;
            finish_node(ddir, &tmp, st).inspect_err(|_| {
                let _ = rustix::fs::unlinkat(ddir, &tmp, AtFlags::empty());
            })?;
            Ok(tmp)
        }
        _ => {
            // Created without permissions; the mode is set once the node is proven ours.
            let tmp =
                with_temp_name(|tmp| rustix::fs::mknodat(ddir, tmp, k, Mode::empty(), rdev(st)))?;
            finish_node(ddir, &tmp, st).inspect_err(|_| {
                let _ = rustix::fs::unlinkat(ddir, &tmp, AtFlags::empty());
            })?;
            Ok(tmp)
        }
    }
}

/// Links `first` (restored earlier, inode `ino`) under a temporary name in `ddir`; `None` when
/// `first` is no longer that file (someone replaced it in a directory they can write).
fn link_again(
    ddir: &OwnedFd,
    dest: &OwnedFd,
    first: &Path,
    ino: u64,
) -> io::Result<Option<OsString>> {
    let (p, n) = confine::split(first);
    let Ok(pfd) = confine::open_dir(dest, &p) else {
        return Ok(None);
    };
    let n = n.unwrap_or_default();
    // The first name gone, replaced or on another filesystem: copy the data instead.
    let Ok(tmp) = with_temp_name(|tmp| rustix::fs::linkat(&pfd, n, ddir, tmp, AtFlags::empty()))
    else {
        return Ok(None);
    };
    match lstat(ddir, &tmp)? {
        Some(st) if st.st_ino == ino && kind(&st) == FileType::RegularFile => Ok(Some(tmp)),
        _ => {
            rustix::fs::unlinkat(ddir, &tmp, AtFlags::empty())?;
            Ok(None)
        }
    }
}

/// Owner, mode and times of a link or special file just created as `tmp` in `dir`. The node is
/// opened with `O_PATH|O_NOFOLLOW` and must be what was made (its type, owned by lvsnap's user);
/// every change then goes through that descriptor, so swapping the name for a link to some
/// other file in the meantime changes nothing but the swapped-in link.
fn finish_node(dir: &OwnedFd, tmp: &OsStr, st: &Stat) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        tmp,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let made = rustix::fs::fstat(&fd)?;
    if kind(&made) != kind(st) || made.st_uid != rustix::process::geteuid().as_raw() {
        return Err(io::Error::other(
            "the file just created was replaced while restoring",
        ));
    }
    rustix::fs::chownat(
        &fd,
        "",
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::EMPTY_PATH,
    )?;
    if kind(st) == FileType::Symlink {
        // A link has no mode of its own; its times are set by name without following it.
        rustix::fs::utimensat(dir, tmp, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
        return Ok(());
    }
    // /proc/self/fd/N names exactly the inode opened above, and it is no link.
    let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    if !Path::new("/proc/self/fd").is_dir() {
        return Err(io::Error::other(
            "restoring a fifo, socket or device needs /proc mounted (mount -t proc proc /proc)",
        ));
    }
    rustix::fs::chmod(by_fd.as_str(), Mode::from_raw_mode(st.st_mode & 0o7777))?;
    rustix::fs::utimensat(
        rustix::fs::CWD,
        by_fd.as_str(),
        &times(st),
        AtFlags::empty(),
    )?;
    Ok(())
}

/// Tries fresh, unpredictable temporary names until one can be created.
fn with_temp_name(
    mut create: impl FnMut(&OsStr) -> rustix::io::Result<()>,
) -> io::Result<OsString> {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..100 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let name = OsString::from(format!(".lvsnap-restore.{:016x}", h.finish()));
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
        let (start, end) = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
            Ok(s) => (s, rustix::fs::seek(src, SeekFrom::Hole(s))?.min(len)),
            Err(Errno::NXIO) => break,
            // A filesystem that cannot tell holes: all of it is data.
            Err(Errno::INVAL | Errno::OPNOTSUPP) => (pos, len),
            Err(e) => return Err(e.into()),
        };
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

fn list_xattrs(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let len = match rustix::fs::flistxattr_query(fd) {
        Ok(0) | Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; len];
    let n = rustix::fs::flistxattr(fd, &mut names[..])?;
    Ok(names[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

fn copy_xattrs(src: &OwnedFd, dst: &OwnedFd) -> io::Result<()> {
    let len = match rustix::fs::flistxattr_query(src) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; len];
    let n = rustix::fs::flistxattr(src, &mut names[..])?;
    let wanted: HashSet<&[u8]> = names[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    // What the destination gave the new file on its own (a default ACL inherited from its
    // directory) goes: the restored file has exactly the source's attributes. Security labels
    // are the system's to set.
    for name in list_xattrs(dst)? {
        if !wanted.contains(name.as_slice()) && !name.starts_with(b"security.") {
            let _ = rustix::fs::fremovexattr(dst, OsStr::from_bytes(&name));
        }
    }
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

/// A deep tree holds two descriptors a level while it is walked: allow as many as the system
/// lets this process have.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
}

/// The outermost of `paths`: restoring `a` already restores `a/b`.
pub fn outermost(paths: &[PathBuf]) -> Vec<PathBuf> {
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
