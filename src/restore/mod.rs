//! Restores: reading a snapshot or a backup generation as a tree, and copying paths out of it.
//! A snapshot is mounted read-only for as long as the command needs it (or read where
//! `lvsnap mount` already mounted it); an rsync generation is read in place; an archive is
//! unpacked (only the requested paths) into a staging directory beside the destination. Only
//! snapshots lvsnap created and backups it wrote are sources: anything else is refused.

pub mod commands;
pub mod rollback;

use std::path::{Component, Path, PathBuf};

use crate::backup::commands::find_backup;
use crate::backup::engines;
use crate::catalog::BackupRecord;
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
/// complete backups (`VG/LV@GENERATION` or `LV@GENERATION`).
///
/// # Errors
/// Nothing matches; an LV that exists but is not lvsnap's is refused as such.
pub fn resolve(
    spec: &str,
    fleet: &Fleet,
    inv: &Inventory,
    backups: &[BackupRecord],
) -> Result<Source, RunError> {
    if spec.contains('@') {
        return find_backup(backups, spec)
            .map(Source::Backup)
            .map_err(RunError::Refused);
    }
    resolve_snapshot(spec, fleet, inv).map(Source::Snapshot)
}

/// Finds one of lvsnap's own snapshots by `NAME` or `VG/NAME`.
///
/// # Errors
/// No such snapshot, or it exists but lvsnap did not create it.
pub fn resolve_snapshot(spec: &str, fleet: &Fleet, inv: &Inventory) -> Result<Managed, RunError> {
    let (vg, name) = match spec.split_once('/') {
        Some((vg, name)) => (Some(vg), name),
        None => (None, spec),
    };
    let managed = fleet
        .managed
        .iter()
        .find(|m| m.record.name == name && vg.is_none_or(|v| v == m.record.vg));
    if let Some(m) = managed {
        if m.lv.as_ref().is_some_and(|l| l.invalid) {
            return Err(RunError::Refused(format!(
                "snapshot {spec} is invalid (it overflowed): its data is lost"
            )));
        }
        return Ok(m.clone());
    }
    let foreign = inv
        .lvs
        .iter()
        .find(|l| l.name == name && vg.is_none_or(|v| v == l.vg));
    Err(RunError::Refused(match foreign {
        Some(l) if l.is_snapshot() => format!(
            "{} is a snapshot lvsnap did not create (no lvsnap tag and catalog record); lvsnap restores only from its own snapshots — mount it yourself read-only, or adopt lvsnap-tagged ones with `lvsnap catalog rebuild`",
            l.path()
        ),
        Some(l) => format!("{} is not a snapshot", l.path()),
        None => {
            let names: Vec<String> = fleet
                .managed
                .iter()
                .map(|m| format!("{}/{}", m.record.vg, m.record.name))
                .collect();
            format!(
                "no snapshot named {spec:?} (lvsnap's snapshots: {}); see `lvsnap list`",
                list_or_none(&names)
            )
        }
    }))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A source opened for reading: its root, and what to undo when done.
pub struct Opened {
    pub root: PathBuf,
    mounted: Option<Mounted>,
    staging: Option<PathBuf>,
}

/// Turns the paths an administrator typed into paths relative to the volume's root: a leading
/// `/` is the volume's root; the origin's mount point in front (`/home/alice/x` for a volume
/// mounted on `/home`) is dropped.
///
/// # Errors
/// A path that leaves the volume (`..`).
pub fn relative_paths(
    paths: &[String],
    origin_mount: Option<&Path>,
) -> Result<Vec<PathBuf>, RunError> {
    paths
        .iter()
        .map(|p| {
            let mut path = Path::new(p);
            if let Some(m) = origin_mount.filter(|m| *m != Path::new("/")) {
                if let Ok(rest) = path.strip_prefix(m) {
                    path = rest;
                }
            }
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(RunError::Refused(format!(
                    "{p:?} leaves the volume; give paths inside it, such as etc/passwd"
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
    /// the backup's files. An archive's `paths` are unpacked into `staging_parent`.
    ///
    /// # Errors
    /// Mounting or unpacking failed, or the backup's files are gone.
    pub fn open_source(
        &mut self,
        source: &Source,
        paths: &[PathBuf],
        staging_parent: &Path,
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
                let staging =
                    staging_parent.join(format!(".lvsnap-restore.{}", std::process::id()));
                std::fs::create_dir_all(&staging).map_err(|e| {
                    RunError::Refused(format!("cannot create {}: {e}", staging.display()))
                })?;
                let opened = Opened {
                    root: staging.clone(),
                    mounted: None,
                    staging: Some(staging.clone()),
                };
                if let Err(e) = unpack(&data, &staging, paths) {
                    self.close_source(opened)?;
                    return Err(RunError::Refused(e));
                }
                Ok(opened)
            }
        }
    }

    /// Undoes [`Engine::open_source`].
    ///
    /// # Errors
    /// Unmounting failed (the next run retries) or the staging directory cannot be removed.
    pub fn close_source(&mut self, o: Opened) -> Result<(), RunError> {
        if let Some(s) = &o.staging {
            engines::remove_path(s).map_err(|e| {
                RunError::Refused(format!(
                    "cannot remove staging directory {}: {e}",
                    s.display()
                ))
            })?;
        }
        match &o.mounted {
            Some(m) => self.unmount(m),
            None => Ok(()),
        }
    }
}

/// A thin snapshot LVM left inactive (activation skip) must be activated to be read.
pub fn needs_activation(m: &Managed) -> bool {
    m.record.thin && !m.lv.as_ref().is_some_and(|l| l.active)
}

/// Unpacks `paths` (all when empty) of a tar+zstd archive into `dir`, keeping owners, modes,
/// times, ACLs, xattrs, hard links and sparse files.
fn unpack(archive: &Path, dir: &Path, paths: &[PathBuf]) -> Result<(), String> {
    let mut argv: Vec<String> = [
        "tar",
        "--extract",
        "--zstd",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--numeric-owner",
        "--same-permissions",
        "--same-owner",
    ]
    .map(str::to_owned)
    .to_vec();
    argv.push(format!("--file={}", archive.display()));
    argv.push(format!("--directory={}", dir.display()));
    argv.extend(paths.iter().map(|p| format!("./{}", p.display())));
    engines::run_child(&argv, &std::sync::atomic::AtomicBool::new(false))
        .map_err(|e| format!("cannot unpack {}: {e}", archive.display()))
}
