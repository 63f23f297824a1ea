//! Read-only mounts of snapshots, for backups and for browsing. A snapshot's filesystem is a
//! copy of a mounted one: ext4 must not replay its journal (`noload`), xfs must not refuse the
//! duplicate UUID or replay its log (`nouuid,norecovery`), and btrfs cannot tell the two devices
//! apart at all, so it is refused. Every mount is recorded before it is made, so that a run after
//! a crash or a reboot finds and undoes it. Nothing here mounts anything read-write.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::catalog::{MountRecord, NewMount};
use crate::config::MountContext;
use crate::lvm::commands;
use crate::run::{Engine, RunError};

/// The mount options for a snapshot of a filesystem of type `fs_type`.
///
/// # Errors
/// A filesystem lvsnap cannot mount safely, with the reason.
pub fn options_for(fs_type: &str) -> Result<&'static str, String> {
    match fs_type {
        "ext4" | "ext3" => Ok("ro,noload"),
        "ext2" => Ok("ro"),
        "xfs" => Ok("ro,nouuid,norecovery"),
        "btrfs" => Err("btrfs is refused: a block-level snapshot carries the origin's filesystem UUID, and btrfs cannot keep two devices with one UUID apart (it may write to the wrong one); use btrfs's own snapshots (btrbk, snapper) for btrfs volumes".to_owned()),
        "" => Err("no filesystem found on it".to_owned()),
        other => Err(format!("filesystem {other} is not supported (lvsnap mounts ext2/3/4 and xfs)")),
    }
}

/// Whether SELinux is on under `root` (its filesystem is mounted, enforcing or permissive):
/// only then does a `context=` option label anything.
pub fn selinux_enabled(root: &Path) -> bool {
    root.join("sys/fs/selinux/enforce").exists()
}

/// The device node of an LV.
pub fn device(vg: &str, lv: &str) -> String {
    format!("/dev/{vg}/{lv}")
}

/// The mounts of this process's namespace from `/proc/self/mountinfo`: the device number
/// (`major:minor`) and the mount point of each.
fn mounts() -> Vec<(String, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let mut f = l.split(' ').skip(2);
            let dev = f.next()?;
            let point = f.nth(1)?;
            Some((dev.to_owned(), PathBuf::from(unescape_octal(point))))
        })
        .collect()
}

/// Whether `dir` is a mount point now.
pub fn is_mounted(dir: &Path) -> bool {
    mounts().iter().any(|(_, point)| point == dir)
}

/// Where the LV `VG/LV` is mounted, matched by device number, so any name of the device
/// counts.
pub fn mount_point_of(vg: &str, lv: &str) -> Option<PathBuf> {
    let want = device_number(vg, lv)?;
    mounts()
        .into_iter()
        .find_map(|(dev, point)| (dev == want).then_some(point))
}

/// Where the LV `VG/LV` is mounted and the filesystem type the kernel mounted it as; the first
/// of its mounts.
pub fn filesystem_of(vg: &str, lv: &str) -> Option<(PathBuf, String)> {
    let want = device_number(vg, lv)?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let point = f.nth(1)?;
        // The optional fields end at "-"; the filesystem type follows.
        let fs = f.skip_while(|x| *x != "-").nth(1)?;
        (dev == want).then(|| (PathBuf::from(unescape_octal(point)), fs.to_owned()))
    })
}

/// Whether the LV `VG/LV` is an active swap device (`/proc/swaps`).
pub fn is_swap(vg: &str, lv: &str) -> bool {
    let Some(want) = device_number(vg, lv) else {
        return false;
    };
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    swaps.lines().skip(1).any(|l| {
        l.split_whitespace().next().is_some_and(|dev| {
            let dev = unescape_octal(dev);
            std::fs::metadata(&dev).ok().is_some_and(|m| {
                use std::os::unix::fs::MetadataExt;
                format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())) == want
            })
        })
    })
}

fn device_number(vg: &str, lv: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(device(vg, lv)).ok()?.rdev();
    Some(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A snapshot lvsnap has mounted.
#[derive(Debug, Clone)]
pub struct Mounted {
    pub record: i64,
    pub vg: String,
    pub lv: String,
    pub dir: PathBuf,
    pub fs_type: String,
    pub activated: bool,
}

impl From<&MountRecord> for Mounted {
    fn from(rec: &MountRecord) -> Self {
        Mounted {
            record: rec.id,
            vg: rec.vg.clone(),
            lv: rec.lv.clone(),
            dir: rec.dir.clone(),
            fs_type: String::new(),
            activated: rec.activated,
        }
    }
}

/// What to mount and why.
pub struct MountRequest<'a> {
    pub vg: &'a str,
    pub lv: &'a str,
    /// The LV is inactive (a thin snapshot with the activation-skip flag) and must be activated.
    pub activate: bool,
    pub dir: &'a Path,
    /// `backup` or `browse`.
    pub purpose: &'a str,
    pub backup_id: Option<i64>,
    /// The SELinux label its files get (`context=`): the command's, else the policy's.
    pub context: Option<&'a MountContext>,
}

impl Engine<'_> {
    /// Activates (if asked), probes and mounts a snapshot read-only; undone again if any step
    /// fails.
    ///
    /// # Errors
    /// Activation, probing or mounting failed, or the filesystem is refused.
    pub fn mount_snapshot(&mut self, req: &MountRequest<'_>) -> Result<Mounted, RunError> {
        let now = self.now;
        let new = NewMount {
            vg: req.vg,
            lv: req.lv,
            dir: req.dir,
            purpose: req.purpose,
            activated: req.activate,
            backup_id: req.backup_id,
        };
        let record = self.record(|c| c.begin_mount(&new, now))?;
        let mut m = Mounted {
            record,
            vg: req.vg.to_owned(),
            lv: req.lv.to_owned(),
            dir: req.dir.to_owned(),
            fs_type: String::new(),
            activated: false,
        };
        match self.mount_steps(req, &mut m) {
            Ok(()) => {
                self.flush()?;
                info!(snapshot = %format!("{}/{}", m.vg, m.lv), dir = %m.dir.display(), fs = %m.fs_type, "mounted read-only");
                Ok(m)
            }
            Err(cause) => match self.unmount(&m) {
                Ok(()) => Err(cause),
                Err(undo) => Err(RunError::Refused(format!(
                    "{cause}; undoing the mount also failed: {undo}"
                ))),
            },
        }
    }

    fn mount_steps(&mut self, req: &MountRequest<'_>, m: &mut Mounted) -> Result<(), RunError> {
        if req.activate {
            self.exec(&commands::activate(req.vg, req.lv))?;
            m.activated = true;
        }
        let dev = device(req.vg, req.lv);
        let probed = self.exec(&commands::fs_type(&dev));
        // blkid exits 2 when it finds no filesystem at all.
        let fs_type = match probed {
            Ok(done) => done.stdout.trim().to_owned(),
            Err(RunError::Lvm(crate::lvm::LvmError::Status { status: 2, .. })) => String::new(),
            Err(e) => return Err(e),
        };
        let mut options = options_for(&fs_type)
            .map_err(|why| RunError::Refused(format!("cannot mount {}/{}: {why}", req.vg, req.lv)))?
            .to_owned();
        if let Some(context) = req.context {
            options = format!("{options},{}", context.option());
            if !selinux_enabled(Path::new("/")) {
                // mount(8) drops SELinux options where SELinux is off, and mounts anyway.
                warn!(snapshot = %format!("{}/{}", req.vg, req.lv), "SELinux is not enabled on this host: the label {context} has no effect (mount drops it)");
            }
        }
        m.fs_type = fs_type;
        crate::private::create_dir_all(req.dir).map_err(|e| {
            RunError::Refused(format!(
                "cannot create mount point {}: {e}",
                req.dir.display()
            ))
        })?;
        let mounted = self.exec(&commands::mount(
            &dev,
            &req.dir.to_string_lossy(),
            &m.fs_type,
            &options,
        ));
        match (mounted, req.context) {
            (Ok(_), _) => Ok(()),
            // An SELinux policy that does not know the label refuses the option: say which
            // setting asked for it.
            (Err(e), Some(context)) => Err(RunError::Refused(format!(
                "{e}\n    hint: the mount asked for the SELinux label {context} (`mount-context` or --context); SELinux refuses a label whose user, role, type or level its policy does not define — check with `seinfo -t` and `seinfo -u`, or leave the label out"
            ))),
            (Err(e), None) => Err(e),
        }
    }

    /// Unmounts (if mounted), removes the mount point, deactivates what lvsnap activated, and
    /// releases the record. Each step runs even if an earlier one failed; the first failure is
    /// returned.
    ///
    /// # Errors
    /// A step failed; the record stays open so that the next run tries again.
    pub fn unmount(&mut self, m: &Mounted) -> Result<(), RunError> {
        let mut first: Option<RunError> = None;
        if is_mounted(&m.dir) {
            if let Err(e) = self.exec(&commands::umount(&m.dir.to_string_lossy())) {
                first.get_or_insert(e);
            }
        }
        if first.is_none() {
            // Only an empty directory goes; a failure here leaves a harmless empty directory.
            let _ = std::fs::remove_dir(&m.dir);
        }
        if m.activated && first.is_none() {
            if let Err(e) = self.exec(&commands::deactivate(&m.vg, &m.lv)) {
                first.get_or_insert(e);
            }
        }
        match first {
            None => {
                let now = self.now;
                self.record(|c| c.release_mount(m.record, now))
            }
            Some(e) => {
                self.flush()?;
                Err(e)
            }
        }
    }

    /// Undoes mounts a crashed or killed lvsnap left behind. A `browse` mount that is still
    /// mounted is the administrator's and stays; one a reboot took away is only released.
    ///
    /// # Errors
    /// The catalog failed. A mount that cannot be undone is reported in the returned notes.
    pub fn release_stale_mounts(&mut self) -> Result<Vec<String>, RunError> {
        let mut notes = Vec::new();
        for rec in self.catalog.open_mounts()? {
            let mounted = is_mounted(&rec.dir);
            if rec.purpose == "browse" && mounted {
                continue;
            }
            // A backup that let go of the lock while it copies still owns its mount.
            if crate::lock::backup_alive(rec.pid, rec.backup_id) {
                continue;
            }
            if self.dry_run {
                notes.push(format!(
                    "would undo the mount of {} at {}",
                    label(&rec),
                    rec.dir.display()
                ));
                continue;
            }
            // After a reboot the LV is inactive again; deactivating it is harmless then.
            match self.unmount(&Mounted::from(&rec)) {
                Ok(()) => notes.push(format!(
                    "undid a leftover mount of {} at {}",
                    label(&rec),
                    rec.dir.display()
                )),
                Err(e) => {
                    warn!(snapshot = %label(&rec), dir = %rec.dir.display(), "cannot undo a leftover mount: {e}");
                    notes.push(format!(
                        "cannot undo the leftover mount of {} at {}: {e}",
                        label(&rec),
                        rec.dir.display()
                    ));
                }
            }
        }
        Ok(notes)
    }
}

fn label(m: &MountRecord) -> String {
    format!("{}/{}", m.vg, m.lv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_the_snapshot_read_only_and_refuse_btrfs() {
        assert_eq!(options_for("ext4").unwrap(), "ro,noload");
        assert_eq!(options_for("xfs").unwrap(), "ro,nouuid,norecovery");
        assert!(options_for("btrfs").unwrap_err().contains("UUID"));
        assert!(options_for("").unwrap_err().contains("no filesystem"));
        assert!(options_for("vfat").unwrap_err().contains("not supported"));
    }

    #[test]
    fn selinux_is_on_where_its_filesystem_is() {
        let root = tempfile::tempdir().unwrap();
        assert!(!selinux_enabled(root.path()));
        std::fs::create_dir_all(root.path().join("sys/fs/selinux")).unwrap();
        std::fs::write(root.path().join("sys/fs/selinux/enforce"), "0").unwrap();
        assert!(selinux_enabled(root.path()));
    }

    #[test]
    fn mountinfo_escapes_are_read_back() {
        assert_eq!(unescape_octal("/run/a\\040b"), "/run/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }
}
