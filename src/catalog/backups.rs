//! Backup and mount records. A backup is recorded `running` before its first byte is written and
//! finished as `complete` or `failed`; a mount is recorded before `mount` runs and released after
//! `umount`. A crash leaves both open, which is how the next run finds what to clean up.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::{from_ts, ts, Catalog, CatalogError};

/// Where a backup is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackupState {
    Running,
    #[default]
    Complete,
    /// Written and proven, but with entries of the volume left out (unreadable, vanished,
    /// paths too long): restorable, listed with what it lacks.
    Partial,
    Failed,
    /// Pruned by its keep rules (or its files gone): the record stays as history.
    Removed,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Running => "running",
            BackupState::Complete => "complete",
            BackupState::Partial => "partial",
            BackupState::Failed => "failed",
            BackupState::Removed => "removed",
        }
    }

    /// Complete or partial: a generation that can be restored, verified, pruned and linked to.
    pub fn is_usable(self) -> bool {
        matches!(self, BackupState::Complete | BackupState::Partial)
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => BackupState::Running,
            "complete" => BackupState::Complete,
            "partial" => BackupState::Partial,
            "removed" => BackupState::Removed,
            _ => BackupState::Failed,
        }
    }
}

/// A backup about to start.
#[derive(Debug, Clone)]
pub struct NewBackup<'a> {
    pub policy: &'a str,
    pub vg: &'a str,
    pub origin: &'a str,
    pub engine: &'a str,
    /// The volume's directory under the policy's target.
    pub dir: &'a std::path::Path,
    /// The generation's name (the snapshot's time), without any suffix.
    pub name: &'a str,
    pub snapshot: &'a str,
    pub snapshot_time: DateTime<Utc>,
    /// The snapshot was taken for this backup and is removed after it.
    pub temporary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackupRecord {
    pub id: i64,
    pub policy: String,
    pub vg: String,
    pub origin: String,
    pub engine: String,
    pub dir: PathBuf,
    pub name: String,
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    pub temporary: bool,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub state: BackupState,
    pub error: Option<String>,
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    pub manifest_sha256: Option<String>,
    pub verified: Option<DateTime<Utc>>,
    pub verify_ok: Option<bool>,
    pub verify_detail: Option<String>,
    /// The lvsnap process that runs (or ran) it.
    pub pid: Option<u32>,
    /// The snapshot's ID in its repository (restic).
    pub remote_id: Option<String>,
    /// What the backup added to its repository (restic: new data after deduplication).
    pub bytes_added: Option<u64>,
    /// The random tag its restic snapshot carries (`lvsnap-run=…`), recorded before restic ran.
    pub run_tag: Option<String>,
    /// The repository may still hold a snapshot of it that lvsnap is to forget (a pruned
    /// backup whose forget did not finish, a failed one that restic may have finished).
    pub remote_pending: bool,
}

impl BackupRecord {
    /// `VG/LV@NAME`, how commands name one backup.
    pub fn label(&self) -> String {
        format!("{}/{}@{}", self.vg, self.origin, self.name)
    }
}

/// A mount about to be made.
#[derive(Debug, Clone)]
pub struct NewMount<'a> {
    pub vg: &'a str,
    pub lv: &'a str,
    pub dir: &'a std::path::Path,
    pub purpose: &'a str,
    pub activated: bool,
    pub backup_id: Option<i64>,
}

/// A mount lvsnap made and has not yet undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRecord {
    pub id: i64,
    pub vg: String,
    pub lv: String,
    pub dir: PathBuf,
    /// `backup`, or `browse` for `lvsnap mount`.
    pub purpose: String,
    /// lvsnap activated the LV (a thin snapshot) and deactivates it when done.
    pub activated: bool,
    pub backup_id: Option<i64>,
    pub mounted: DateTime<Utc>,
    /// The lvsnap process that made it.
    pub pid: Option<u32>,
}

const BACKUP_COLUMNS: &str = "id, policy, vg, origin, engine, dir, name, snapshot, snapshot_time, \
     temporary, started_at, finished_at, state, error, bytes, files, manifest_sha256, \
     verified_at, verify_ok, verify_detail, pid, remote_id, bytes_added, run_tag, remote_pending";

fn backup_from_row(r: &Row<'_>) -> rusqlite::Result<BackupRecord> {
    let opt_ts = |v: Option<i64>| v.map(from_ts);
    let opt_u64 = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(BackupRecord {
        id: r.get(0)?,
        policy: r.get(1)?,
        vg: r.get(2)?,
        origin: r.get(3)?,
        engine: r.get(4)?,
        dir: PathBuf::from(r.get::<_, String>(5)?),
        name: r.get(6)?,
        snapshot: r.get(7)?,
        snapshot_time: from_ts(r.get(8)?),
        temporary: r.get(9)?,
        started: from_ts(r.get(10)?),
        finished: opt_ts(r.get(11)?),
        state: BackupState::parse(&r.get::<_, String>(12)?),
        error: r.get(13)?,
        bytes: opt_u64(r.get(14)?),
        files: opt_u64(r.get(15)?),
        manifest_sha256: r.get(16)?,
        verified: opt_ts(r.get(17)?),
        verify_ok: r.get(18)?,
        verify_detail: r.get(19)?,
        pid: r.get(20)?,
        remote_id: r.get(21)?,
        bytes_added: opt_u64(r.get(22)?),
        run_tag: r.get(23)?,
        remote_pending: r.get(24)?,
    })
}

/// What a finished backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written<'a> {
    pub bytes: u64,
    pub files: u64,
    pub manifest_sha256: &'a str,
    /// `Complete` or `Partial`.
    pub state: BackupState,
    /// What the generation lacks, one line each (a partial backup's skipped entries).
    pub note: Option<&'a str>,
    /// The snapshot's ID in its repository and the bytes it added there (restic).
    pub remote: Option<(&'a str, u64)>,
}

impl Catalog {
    /// Records a backup about to start (state `running`).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn begin_backup(&self, b: &NewBackup<'_>, now: DateTime<Utc>) -> Result<i64, CatalogError> {
        self.conn
            .execute(
                "INSERT INTO backups (policy, vg, origin, engine, dir, name, snapshot, snapshot_time,
                 temporary, started_at, state, pid)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'running',?11)",
                params![
                    b.policy,
                    b.vg,
                    b.origin,
                    b.engine,
                    b.dir.to_string_lossy(),
                    b.name,
                    b.snapshot,
                    ts(b.snapshot_time),
                    b.temporary,
                    ts(now),
                    std::process::id()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a generation found on disk (by `catalog rebuild`) as complete and never
    /// verified, in one transaction.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn adopt_backup(
        &self,
        b: &NewBackup<'_>,
        w: &Written<'_>,
        now: DateTime<Utc>,
    ) -> Result<i64, CatalogError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let id = self.begin_backup(b, now)?;
        self.complete_backup(id, w, now)?;
        self.conn
            .execute("UPDATE backups SET pid = NULL WHERE id = ?1", params![id])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Marks a backup complete (or partial) with what it wrote.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn complete_backup(
        &self,
        id: i64,
        w: &Written<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE backups SET state = ?6, finished_at = ?2, bytes = ?3, files = ?4,
                 manifest_sha256 = ?5, error = ?7, remote_id = ?8, bytes_added = ?9,
                 remote_pending = 0 WHERE id = ?1",
                params![
                    id,
                    ts(now),
                    i64::try_from(w.bytes).unwrap_or(i64::MAX),
                    i64::try_from(w.files).unwrap_or(i64::MAX),
                    w.manifest_sha256,
                    w.state.as_str(),
                    w.note,
                    w.remote.map(|(id, _)| id),
                    w.remote.map(|(_, b)| i64::try_from(b).unwrap_or(i64::MAX)),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Moves a backup to `failed` or `removed`, with why.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn end_backup(
        &self,
        id: i64,
        state: BackupState,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE backups SET state = ?2, finished_at = COALESCE(finished_at, ?3),
                 error = ?4 WHERE id = ?1",
                params![id, state.as_str(), ts(now), why],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Sets the random tag a backup's restic snapshot will carry, before restic runs.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_run_tag(&self, id: i64, tag: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE backups SET run_tag = ?2 WHERE id = ?1",
                params![id, tag],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Marks whether the repository may still hold a snapshot of backup `id` to forget.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_remote_pending(&self, id: i64, pending: bool) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE backups SET remote_pending = ?2 WHERE id = ?1",
                params![id, pending],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// When `repository` was last pruned, and whether snapshots were forgotten since.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn repository_prune(
        &self,
        repository: &str,
    ) -> Result<(Option<DateTime<Utc>>, bool), CatalogError> {
        self.conn
            .query_row(
                "SELECT pruned_at, pending FROM repository_prunes WHERE repository = ?1",
                params![repository],
                |r| Ok((r.get::<_, Option<i64>>(0)?.map(from_ts), r.get(1)?)),
            )
            .optional()
            .map(|r| r.unwrap_or((None, false)))
            .map_err(|e| self.err(e))
    }

    /// Notes that snapshots of `repository` were forgotten (`pending`), or that it was pruned
    /// at `pruned` (nothing pending).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn note_repository(
        &self,
        repository: &str,
        pruned: Option<DateTime<Utc>>,
    ) -> Result<(), CatalogError> {
        let sql = match pruned {
            None => {
                "INSERT INTO repository_prunes (repository, pruned_at, pending) VALUES (?1, NULL, 1)
                 ON CONFLICT (repository) DO UPDATE SET pending = 1"
            }
            Some(_) => {
                "INSERT INTO repository_prunes (repository, pruned_at, pending) VALUES (?1, ?2, 0)
                 ON CONFLICT (repository) DO UPDATE SET pruned_at = ?2, pending = 0"
            }
        };
        let done = match pruned {
            None => self.conn.execute(sql, params![repository]),
            Some(at) => self.conn.execute(sql, params![repository, ts(at)]),
        };
        done.map(|_| ()).map_err(|e| self.err(e))
    }

    /// Records the outcome of `lvsnap verify`.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_verified(
        &self,
        id: i64,
        ok: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE backups SET verified_at = ?2, verify_ok = ?3, verify_detail = ?4 WHERE id = ?1",
                params![id, ts(now), ok, detail],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every backup, oldest first; `policy` narrows to one policy.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn backups(&self, policy: Option<&str>) -> Result<Vec<BackupRecord>, CatalogError> {
        let sql = format!(
            "SELECT {BACKUP_COLUMNS} FROM backups WHERE (?1 IS NULL OR policy = ?1)
             ORDER BY snapshot_time, id"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![policy], backup_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One backup by id.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn backup(&self, id: i64) -> Result<Option<BackupRecord>, CatalogError> {
        let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = ?1");
        self.conn
            .query_row(&sql, params![id], backup_from_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records a mount about to be made.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn begin_mount(&self, m: &NewMount<'_>, now: DateTime<Utc>) -> Result<i64, CatalogError> {
        self.conn
            .execute(
                "INSERT INTO mounts (vg, lv, dir, purpose, activated, backup_id, mounted_at, pid)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![
                    m.vg,
                    m.lv,
                    m.dir.to_string_lossy(),
                    m.purpose,
                    m.activated,
                    m.backup_id,
                    ts(now),
                    std::process::id()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a mount undone.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn release_mount(&self, id: i64, now: DateTime<Utc>) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE mounts SET released_at = ?2 WHERE id = ?1",
                params![id, ts(now)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Mounts lvsnap made and has not undone, oldest first.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn open_mounts(&self) -> Result<Vec<MountRecord>, CatalogError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, vg, lv, dir, purpose, activated, backup_id, mounted_at, pid FROM mounts
                 WHERE released_at IS NULL ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(MountRecord {
                    id: r.get(0)?,
                    vg: r.get(1)?,
                    lv: r.get(2)?,
                    dir: PathBuf::from(r.get::<_, String>(3)?),
                    purpose: r.get(4)?,
                    activated: r.get(5)?,
                    backup_id: r.get(6)?,
                    mounted: from_ts(r.get(7)?),
                    pid: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backup_runs_from_running_to_complete_and_mounts_are_released() {
        let c = Catalog::in_memory().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 2, 30, 0).unwrap();
        let dir = std::path::Path::new("/srv/backup/vg0-home");
        let new = NewBackup {
            policy: "home",
            vg: "vg0",
            origin: "home",
            engine: "rsync",
            dir,
            name: "20261128T020000Z",
            snapshot: "home-lvsnap-20261128T020000Z",
            snapshot_time: t,
            temporary: false,
        };
        let id = c.begin_backup(&new, t).unwrap();
        let m = c
            .begin_mount(
                &NewMount {
                    vg: "vg0",
                    lv: new.snapshot,
                    dir,
                    purpose: "backup",
                    activated: true,
                    backup_id: Some(id),
                },
                t,
            )
            .unwrap();
        assert_eq!(c.open_mounts().unwrap().len(), 1);
        assert_eq!(c.backups(None).unwrap()[0].state, BackupState::Running);
        let w = Written {
            bytes: 10,
            files: 2,
            manifest_sha256: "ab",
            state: BackupState::Complete,
            note: None,
            remote: None,
        };
        c.complete_backup(id, &w, t).unwrap();
        c.release_mount(m, t).unwrap();
        let b = c.backup(id).unwrap().unwrap();
        assert_eq!(
            (b.state, b.bytes, b.files, b.label().as_str()),
            (
                BackupState::Complete,
                Some(10),
                Some(2),
                "vg0/home@20261128T020000Z"
            )
        );
        assert!(c.open_mounts().unwrap().is_empty());
        assert!(c.backups(Some("other")).unwrap().is_empty());
    }
}
