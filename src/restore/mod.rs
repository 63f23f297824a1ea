//! Restores: reading a snapshot or a backup generation as a tree, and copying paths out of it.
//! A snapshot is mounted read-only for as long as the command needs it (or read where
//! `lvsnap mount` already mounted it); an rsync generation is read in place; an archive is
//! unpacked (only the requested paths) into a staging directory beside the destination. Only
//! snapshots lvsnap created and backups it wrote are sources: anything else is refused.

pub mod rollback;

use std::path::{Component, Path, PathBuf};

use crate::backup::engines;
use crate::catalog::BackupRecord;
use crate::confine::copy;
use crate::lvm::Inventory;
use crate::mount::{self, MountRequest, Mounted};
use crate::reconcile::{Fleet, Managed};
use crate::run::{Engine, RunError};

/// What a restore command reads from.
#[derive(Debug, Clone)]
pub enum Source {
    Snapshot(Managed),
    Backup(BackupRecord),
}

impl Source {
    pub fn label(&self) -> String {
        match self {
            Source::Snapshot(m) => format!("{}/{}", m.record.vg, m.record.name),
            Source::Backup(b) => b.label(),
        }
    }

    /// `VG/LV` of the volume the source is a copy of.
    pub fn origin(&self) -> (String, String) {
        match self {
            Source::Snapshot(m) => (m.record.vg.clone(), m.record.origin.clone()),
            Source::Backup(b) => (b.vg.clone(), b.origin.clone()),
        }
    }
}

/// Finds SPEC among lvsnap's snapshots (`NAME` or `VG/NAME`) and, when it has an `@`, among its
/// complete backups (`VG/LV@GENERATION` or `LV@GENERATION`), with [`crate::resolve`].
///
/// # Errors
/// Nothing matches, several do, or an LV that exists is not lvsnap's: bad input.
pub fn resolve(
    spec: &str,
    fleet: &Fleet,
    inv: &Inventory,
    backups: &[BackupRecord],
) -> Result<Source, RunError> {
    if spec.contains('@') {
        return crate::resolve::backup(backups, spec).map(|b| Source::Backup(b.clone()));
    }
    crate::resolve::readable_snapshot(fleet, inv, spec).map(|m| Source::Snapshot(m.clone()))
}

/// A source opened for reading: its root, and what to undo when done.
pub struct Opened {
    pub root: PathBuf,
    mounted: Option<Mounted>,
    staging: Option<Staging>,
}

/// Where a restore stages what it unpacks from an archive or restores from restic.
#[derive(Debug, Clone)]
pub struct StagingParent {
    /// The directory as lvsnap and its tools reach it. For a destination, its open descriptor
    /// (`/proc/PID/fd/N`): whoever owns a directory above it could otherwise rename it away
    /// and put a link to anywhere in its place while restic or tar writes, as root, below it.
    pub at: PathBuf,
    /// Its path, as recorded in the catalog and shown.
    pub named: PathBuf,
}

impl StagingParent {
    /// A directory only root can reach (the state directory), used by its path.
    pub fn private(dir: &Path) -> Self {
        StagingParent {
            at: dir.to_owned(),
            named: dir.to_owned(),
        }
    }

    /// The open directory `fd`, known as `named` (recorded by the path the kernel gives it,
    /// without links or `..`, so that a later run finds it by a walk that follows neither).
    pub fn open(fd: &impl std::os::fd::AsRawFd, named: &Path) -> Self {
        let at = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            fd.as_raw_fd()
        ));
        let real = std::fs::read_link(&at)
            .ok()
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| named.to_owned());
        StagingParent { at, named: real }
    }
}

/// A staging directory: as reached, and as recorded.
struct Staging {
    at: PathBuf,
    recorded: PathBuf,
}

/// Turns the paths an administrator typed into paths relative to the volume's root: a leading
/// `/` is the volume's root; the origin's mount point in front (`/home/alice/x` for a volume
/// mounted on `/home`) is dropped.
///
/// # Errors
/// A path that leaves the volume (`..`).
pub fn relative_paths(
    paths: &[PathBuf],
    origin_mount: Option<&Path>,
) -> Result<Vec<PathBuf>, RunError> {
    paths
        .iter()
        .map(|p| {
            let mut path = p.as_path();
            if let Some(m) = origin_mount.filter(|m| *m != Path::new("/")) {
                if let Ok(rest) = path.strip_prefix(m) {
                    path = rest;
                }
            }
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(RunError::BadRequest(format!(
                    "{} leaves the volume; give paths inside it, such as etc/passwd",
                    crate::names::shown(p)
                )));
            }
            Ok(path
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect())
        })
        .collect()
}

impl Engine<'_> {
    /// Makes a source readable: mounts a snapshot (or reuses a browse mount of it), or finds
    /// the backup's files. An archive's `paths` are unpacked into `staging_parent`, a restic
    /// backup's restored there (until `cancel`) — only their shape, without data, when
    /// `outline_only` (a dry run plans on it).
    ///
    /// # Errors
    /// Mounting or unpacking failed, or the backup's files are gone.
    pub fn open_source(
        &mut self,
        source: &Source,
        paths: &[PathBuf],
        staging_parent: &StagingParent,
        outline_only: bool,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Opened, RunError> {
        match source {
            Source::Snapshot(m) => {
                let browse = self.catalog.open_mounts()?.into_iter().find(|r| {
                    r.vg == m.record.vg && r.lv == m.record.name && mount::is_mounted(&r.dir)
                });
                if let Some(b) = browse {
                    return Ok(Opened {
                        root: b.dir,
                        mounted: None,
                        staging: None,
                    });
                }
                let dir = self
                    .config
                    .settings
                    .runtime_dir
                    .join("restore")
                    .join(format!("{}-{}", m.record.vg, m.record.name));
                let mounted = self.mount_snapshot(&MountRequest {
                    vg: &m.record.vg,
                    lv: &m.record.name,
                    activate: needs_activation(m),
                    dir: &dir,
                    purpose: "restore",
                    backup_id: None,
                    context: None,
                })?;
                Ok(Opened {
                    root: dir,
                    mounted: Some(mounted),
                    staging: None,
                })
            }
            Source::Backup(b) => {
                let data = engines::artifact(&b.engine, &b.dir, &b.name).ok_or_else(|| {
                    RunError::Refused(format!(
                        "backup {} was written by engine \"command\": restore it with the tool itself (restic restore, borg extract)",
                        b.label()
                    ))
                })?;
                if !data.exists() {
                    return Err(RunError::Refused(format!(
                        "backup {} is missing its data at {}",
                        b.label(),
                        data.display()
                    )));
                }
                if b.engine == "rsync" {
                    return Ok(Opened {
                        root: data,
                        mounted: None,
                        staging: None,
                    });
                }
                let staging = self.make_staging(staging_parent)?;
                // Unpacked one level down: unpacking the volume's root would give the staging
                // directory itself the root's owner and mode.
                let root = staging.at.join("tree");
                let opened = Opened {
                    root: root.clone(),
                    mounted: None,
                    staging: Some(staging),
                };
                let filled = crate::private::create_dir_all(&root)
                    .map_err(|e| {
                        RunError::Refused(format!("cannot create {}: {e}", root.display()))
                    })
                    .and_then(|()| match b.engine.as_str() {
                        // A dry run asks the repository only whether it holds the snapshot.
                        "restic" if outline_only => self
                            .restic_snapshot(b, |restic, id| {
                                let listed = restic.snapshots(&[id.to_owned()], None, cancel)?;
                                if listed.iter().any(|l| l.id == id) {
                                    Ok(())
                                } else {
                                    Err(format!(
                                        "restic snapshot {} of backup {} is not in repository {}; `lvsnap verify {}` checks the backup",
                                        crate::backup::restic::short(id),
                                        b.label(),
                                        crate::backup::restic::shown_repository(&restic.repo.repository),
                                        b.label()
                                    ))
                                }
                            })
                            .and_then(|()| outline_restic(b, &root, paths)),
                        // restic restores only what is asked for (and the parents), with its
                        // owners, modes, times, attributes and hard links.
                        "restic" => self.restic_snapshot(b, |restic, id| {
                            restic.restore(id, &root, paths, cancel)
                        }),
                        _ => unpack(&data, &root, paths, outline_only),
                    });
                if let Err(e) = filled {
                    self.close_source(opened)?;
                    return Err(e);
                }
                Ok(opened)
            }
        }
    }

    /// Opens the restic repository backup `b`'s policy names and runs `f` with the ID of the
    /// backup's snapshot in it.
    fn restic_snapshot(
        &self,
        b: &BackupRecord,
        f: impl FnOnce(&crate::backup::restic::Restic<'_>, &str) -> Result<(), String>,
    ) -> Result<(), RunError> {
        let repo = self
            .config
            .restic_repository(&b.policy)
            .ok_or_else(|| {
                RunError::Refused(format!(
                    "backup {} is in a restic repository, but policy {} no longer backs up to one; restore it with restic itself",
                    b.label(),
                    b.policy
                ))
            })?;
        let restic = crate::backup::restic::Restic::open(repo, &self.config.settings.state_dir())
            .map_err(RunError::Refused)?;
        let id = restic.snapshot_of(b).map_err(RunError::Refused)?;
        f(&restic, &id).map_err(RunError::Refused)
    }

    /// Makes a private staging directory of a fresh, unpredictable name in `parent`, recorded
    /// in the catalog first: killed at any point, the next restore or run finds and removes it.
    fn make_staging(&mut self, parent: &StagingParent) -> Result<Staging, RunError> {
        use std::os::unix::fs::DirBuilderExt;
        let refused = |e: &dyn std::fmt::Display| {
            RunError::Refused(format!(
                "cannot create a staging directory in {}: {e}",
                parent.named.display()
            ))
        };
        for _ in 0..16 {
            let name = format!(
                ".lvsnap-staging.{}",
                crate::backup::restic::run_tag().map_err(|e| refused(&e))?
            );
            let staging = Staging {
                at: parent.at.join(&name),
                recorded: parent.named.join(&name),
            };
            let (pid, now) = (std::process::id(), self.now);
            self.record(|c| c.begin_staging(&staging.recorded, pid, now))?;
            match std::fs::DirBuilder::new().mode(0o700).create(&staging.at) {
                Ok(()) => return Ok(staging),
                Err(e) => {
                    self.record(|c| c.end_staging(&staging.recorded))?;
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(refused(&e));
                    }
                }
            }
        }
        Err(refused(&"no free name"))
    }

    /// Removes the staging directories restores that were killed left (their process gone),
    /// as the catalog records them; returns what was done. A path that is no longer a private
    /// directory of lvsnap's user is left alone: it is not what lvsnap made there.
    ///
    /// # Errors
    /// The catalog failed.
    pub fn release_stale_staging(&mut self) -> Result<Vec<String>, RunError> {
        let me = rustix::process::geteuid().as_raw();
        let mut notes = Vec::new();
        for (path, pid) in self.catalog.stagings()? {
            if crate::lock::lvsnap_alive(pid) {
                continue;
            }
            if self.dry_run {
                notes.push(format!(
                    "would remove the staging directory a killed restore left at {}",
                    path.display()
                ));
                continue;
            }
            match remove_staging(&path, me) {
                Ok(Some(true)) => notes.push(format!(
                    "removed the staging directory a killed restore left at {}",
                    path.display()
                )),
                Ok(Some(false)) => notes.push(format!(
                    "left {} alone: it is not the private directory a killed restore made there",
                    path.display()
                )),
                Ok(None) => {}
                Err(e) => {
                    notes.push(format!(
                        "cannot remove the staging directory a killed restore left at {}: {e}",
                        path.display()
                    ));
                    continue;
                }
            }
            self.record(|c| c.end_staging(&path))?;
        }
        for n in &notes {
            tracing::info!("{n}");
        }
        Ok(notes)
    }

    /// Undoes [`Engine::open_source`].
    ///
    /// # Errors
    /// Unmounting failed (the next run retries) or the staging directory cannot be removed.
    pub fn close_source(&mut self, o: Opened) -> Result<(), RunError> {
        if let Some(s) = &o.staging {
            engines::remove_path(&s.at).map_err(|e| {
                RunError::Refused(format!(
                    "cannot remove staging directory {}: {e}",
                    s.recorded.display()
                ))
            })?;
            self.record(|c| c.end_staging(&s.recorded))?;
        }
        match &o.mounted {
            Some(m) => self.unmount(m),
            None => Ok(()),
        }
    }
}

/// The shape of what restoring `paths` (all when empty) of a restic backup would write, for a
/// dry run to plan on, without reading the repository: from the backup's manifest, which
/// matched restic's listing when the backup was made (restic's own listing gives no link
/// targets and replaces bytes of names that are not UTF-8).
fn outline_restic(b: &BackupRecord, dir: &Path, paths: &[PathBuf]) -> Result<(), RunError> {
    use crate::manifest::Content;
    use std::os::unix::ffi::OsStrExt;
    let (manifest, altered) = crate::backup::verify::manifest_of(b).map_err(RunError::Refused)?;
    if altered || b.manifest_sha256.is_none() {
        return Err(RunError::Refused(format!(
            "the manifest of backup {} {} (its SHA-256 is not the one recorded); a dry run cannot plan on it: `lvsnap verify {}` says more",
            b.label(),
            if altered { "was changed after the backup was made" } else { "cannot be checked" },
            b.label()
        )));
    }
    let outer = copy::outermost(paths);
    // As from an archive: a path through a link is refused, never followed.
    for p in &outer {
        for a in p.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            if let Some(crate::manifest::Entry {
                content: Content::Symlink { target },
                ..
            }) = manifest.entries.get(a)
            {
                return Err(RunError::BadRequest(format!(
                    "{} goes through {}, a symbolic link (to {}) in the backup; lvsnap restores links as links and never follows them: restore {} itself, or name the path it points to",
                    crate::names::shown(p),
                    crate::names::shown(a),
                    crate::names::shown(Path::new(std::ffi::OsStr::from_bytes(target))),
                    crate::names::shown(a)
                )));
            }
        }
    }
    // An entry is outlined only below directories the outline holds: never through a link it
    // made itself.
    let is_dir = |p: &Path| {
        p.as_os_str().is_empty()
            || manifest
                .entries
                .get(p)
                .is_some_and(|e| matches!(e.content, Content::Dir))
    };
    // Each requested path with everything below it, and its parents.
    let wanted =
        |p: &Path| outer.is_empty() || outer.iter().any(|w| p.starts_with(w) || w.starts_with(p));
    let made =
        |e: std::io::Error| RunError::Refused(format!("cannot outline backup {}: {e}", b.label()));
    for (rel, e) in &manifest.entries {
        if rel.as_os_str().is_empty()
            || !wanted(rel)
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
            || !rel.ancestors().skip(1).all(is_dir)
        {
            continue;
        }
        let at = dir.join(rel);
        if let Some(parent) = at.parent() {
            crate::private::create_dir_all(parent).map_err(made)?;
        }
        match &e.content {
            Content::Dir => crate::private::create_dir_all(&at).map_err(made)?,
            Content::Symlink { target } => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &at)
                    .map_err(made)?;
            }
            Content::Special if e.mode & libc::S_IFMT == libc::S_IFIFO => {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &at,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::RUSR,
                    0,
                )
                .map_err(|e| made(e.into()))?;
            }
            // Files (sparse, of their size), devices and sockets alike: the plan needs a name
            // and a size.
            c => {
                let size = match c {
                    Content::File { size, .. } => *size,
                    _ => 0,
                };
                crate::private::create_new(&at, 0o600)
                    .and_then(|f| f.set_len(size))
                    .map_err(made)?;
            }
        }
    }
    Ok(())
}

/// Removes the staging directory recorded as `path`, reached from `/` without following any
/// link and checked to be a private directory of `owner` (its name, 128 random bits, is
/// lvsnap's own): `Some(true)` when removed, `Some(false)` when something else is there (or
/// the way there leads through a link), `None` when nothing is.
fn remove_staging(path: &Path, owner: u32) -> std::io::Result<Option<bool>> {
    use std::os::fd::AsRawFd;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    // A path that is not absolute, or leads through a link or a file now, is not the way to
    // what lvsnap made: left alone (and said so); an error reading the way is tried again.
    let Ok(rel) = parent.strip_prefix("/") else {
        return Ok(Some(false));
    };
    let root = crate::confine::open_root(Path::new("/"))?;
    let dir = match crate::confine::open_dir(&root, rel) {
        Ok(d) => d,
        Err(crate::confine::WalkError::Missing { .. }) => return Ok(None),
        Err(crate::confine::WalkError::Io { source, .. }) => return Err(source),
        Err(_) => return Ok(Some(false)),
    };
    let st = match crate::confine::lstat(&dir, name)? {
        Some(st) => st,
        None => return Ok(None),
    };
    let ours =
        st.st_mode & libc::S_IFMT == libc::S_IFDIR && st.st_uid == owner && st.st_mode & 0o077 == 0;
    if !ours {
        return Ok(Some(false));
    }
    // Through the directory already opened: the walk above is not done again by name.
    let at = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    engines::remove_path(&at)?;
    Ok(Some(true))
}

/// A thin snapshot LVM left inactive (activation skip) must be activated to be read.
pub fn needs_activation(m: &Managed) -> bool {
    m.record.thin && !m.lv.as_ref().is_some_and(|l| l.active)
}

/// Unpacks what restoring `paths` (all when empty) needs from a tar+zstd archive into `dir`,
/// keeping owners, modes, times, ACLs, xattrs, hard links and sparse files: each path with
/// everything below it, its parents without their other contents (so they carry the source's
/// metadata), and the first name of every hard link among them (tar stores a file's data once,
/// under the name it met first).
///
/// # Errors
/// A path goes through a link in the archive (named: a bad request), or tar failed.
fn unpack(
    archive: &Path,
    dir: &Path,
    paths: &[PathBuf],
    outline_only: bool,
) -> Result<(), RunError> {
    use std::ffi::OsString;
    let index = archive_index(archive).map_err(RunError::Refused)?;
    let mut argv: Vec<OsString> = [
        "tar",
        "--extract",
        "--zstd",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--numeric-owner",
        "--same-permissions",
        "--same-owner",
        // Member names are taken as they are: no globbing, no backslash escapes.
        "--no-wildcards",
        "--no-unquote",
    ]
    .map(OsString::from)
    .to_vec();
    argv.push(prefixed("--file=", archive));
    argv.push(prefixed("--directory=", dir));
    let member = |p: &Path| {
        let mut m = OsString::from("./");
        m.push(p.as_os_str());
        m
    };
    // Nothing named twice: tar fails on a member it already extracted with its directory.
    let outer = copy::outermost(paths);
    let wanted: Vec<&Path> = if outer.is_empty() {
        vec![Path::new("")]
    } else {
        outer.iter().map(PathBuf::as_path).collect()
    };
    let mut parents = std::collections::BTreeSet::new();
    let mut whole = Vec::new();
    let mut first_names = std::collections::BTreeSet::new();
    for p in &wanted {
        for a in p.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            match index.get(a) {
                Some(ArchiveEntry::Symlink(target)) => {
                    return Err(RunError::BadRequest(format!(
                        "{} goes through {}, a symbolic link (to {}) in the backup; lvsnap restores links as links and never follows them: restore {} itself, or name the path it points to",
                        crate::names::shown(p),
                        crate::names::shown(a),
                        crate::names::shown(target),
                        crate::names::shown(a)
                    )))
                }
                Some(_) => {
                    parents.insert(a.to_owned());
                }
                None => {}
            }
        }
        if p.as_os_str().is_empty() || index.contains_key(*p) {
            whole.push(p.to_owned());
        }
        for (name, e) in index.range(p.to_path_buf()..) {
            if !name.starts_with(p) {
                break;
            }
            if let ArchiveEntry::HardLink(first) = e {
                first_names.insert(first.clone());
            }
        }
    }
    first_names.retain(|f| !whole.iter().any(|w| f.starts_with(w)));
    if whole.is_empty() {
        // Nothing requested is in the archive: the copy plan names what is missing.
        return Ok(());
    }
    if outline_only {
        let wanted = |p: &Path| {
            parents.contains(p) || first_names.contains(p) || whole.iter().any(|w| p.starts_with(w))
        };
        return outline(archive, dir, wanted)
            .map_err(|e| RunError::Refused(format!("cannot read {}: {e}", archive.display())));
    }
    argv.push("--no-recursion".into());
    argv.extend(parents.iter().map(|p| member(p)));
    argv.extend(first_names.iter().map(|p| member(p)));
    argv.push("--recursion".into());
    argv.extend(whole.iter().map(|p| {
        if p.as_os_str().is_empty() {
            OsString::from(".")
        } else {
            member(p)
        }
    }));
    engines::run_child(&argv, &std::sync::atomic::AtomicBool::new(false))
        .map_err(|e| RunError::Refused(format!("cannot unpack {}: {e}", archive.display())))
}

/// The shape of the `wanted` members of an archive in `dir`, without their data: directories,
/// files of the right size with nothing in them (sparse: no space used), links and special
/// files. Enough for a dry run to plan on, at no cost in space whatever the archive holds.
fn outline(archive: &Path, dir: &Path, wanted: impl Fn(&Path) -> bool) -> std::io::Result<()> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut tar = tar::Archive::new(zstd::Decoder::new(std::fs::File::open(archive)?)?);
    for entry in tar.entries()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        let raw = raw.strip_prefix(b"./").unwrap_or(&raw);
        let raw = raw.strip_suffix(b"/").unwrap_or(raw);
        if raw == b"." || raw.is_empty() {
            continue;
        }
        let rel = Path::new(OsStr::from_bytes(raw));
        // Members come from lvsnap's own archive; a path leaving the staging directory is
        // skipped all the same.
        if !wanted(rel) || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        let at = dir.join(rel);
        if let Some(parent) = at.parent() {
            crate::private::create_dir_all(parent)?;
        }
        let h = entry.header();
        match h.entry_type() {
            tar::EntryType::Directory => crate::private::create_dir_all(&at)?,
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &at)?;
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &at,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::RUSR,
                    0,
                )?;
            }
            _ => {
                // Files, hard links (the size of what they name) and devices alike: the plan
                // needs a name and a size.
                let size = h.entry_size().unwrap_or(0);
                crate::private::create_new(&at, 0o600)?.set_len(size)?;
            }
        }
    }
    Ok(())
}

fn prefixed(flag: &str, p: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(flag);
    s.push(p.as_os_str());
    s
}

/// What restoring needs to know of an archive member before unpacking anything.
enum ArchiveEntry {
    Symlink(PathBuf),
    /// A later name of a hard-linked file, and the first name (which holds the data).
    HardLink(PathBuf),
    Other,
}

/// Every member of a tar+zstd archive by its path (without `./`), read in-process.
fn archive_index(
    archive: &Path,
) -> Result<std::collections::BTreeMap<PathBuf, ArchiveEntry>, String> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let err = |e: std::io::Error| format!("cannot read {}: {e}", archive.display());
    let file = std::fs::File::open(archive).map_err(err)?;
    let mut tar = tar::Archive::new(zstd::Decoder::new(file).map_err(err)?);
    let clean = |b: &[u8]| -> PathBuf {
        let b = b.strip_prefix(b"./").unwrap_or(b);
        let b = b.strip_suffix(b"/").unwrap_or(b);
        PathBuf::from(OsStr::from_bytes(if b == b"." { b"" } else { b }))
    };
    let mut index = std::collections::BTreeMap::new();
    for entry in tar.entries().map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = clean(&entry.path_bytes());
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let kind = entry.header().entry_type();
        let e = match (kind, link) {
            (tar::EntryType::Symlink, Some(l)) => {
                ArchiveEntry::Symlink(PathBuf::from(OsStr::from_bytes(&l)))
            }
            (tar::EntryType::Link, Some(l)) => ArchiveEntry::HardLink(clean(&l)),
            _ => ArchiveEntry::Other,
        };
        index.insert(path, e);
    }
    Ok(index)
}
