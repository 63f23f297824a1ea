//! Restore history: every `restore` (what, from where, to where, how much) and every `rollback`
//! (which snapshot was merged into which origin, the guard snapshot taken first, and whether LVM
//! deferred the merge until the origin's next activation).

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{from_ts, ts, Catalog, CatalogError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `VG/SNAPSHOT` or `VG/LV@GENERATION`.
    pub source: String,
    pub paths: Vec<String>,
    pub destination: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub ok: bool,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRecord {
    pub id: i64,
    pub snapshot_id: i64,
    pub vg: String,
    pub origin: String,
    pub snapshot: String,
    /// The snapshot of the origin's state before the rollback.
    pub guard: Option<String>,
    pub requested: DateTime<Utc>,
    /// LVM deferred the merge until the origin is next activated.
    pub deferred: bool,
    pub completed: Option<DateTime<Utc>>,
    /// A rollback by swapping names: its journal.
    pub swap: Option<SwapJournal>,
}

/// The intent record of a name swap: which volumes, and the step about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapJournal {
    /// The origin as it was, to become the guard.
    pub origin_uuid: String,
    /// The snapshot, to become the origin.
    pub snapshot_uuid: String,
    /// The step about to run (0 before the first).
    pub step: i64,
}

impl Catalog {
    /// Records that process `pid` is about to make the staging directory `path`.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn begin_staging(
        &self,
        path: &Path,
        pid: u32,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO staging (path, pid, created_at) VALUES (?1, ?2, ?3)",
                params![path.as_os_str().as_bytes(), pid, ts(now)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Records that the staging directory `path` is gone.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn end_staging(&self, path: &Path) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "DELETE FROM staging WHERE path = ?1",
                params![path.as_os_str().as_bytes()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Staging directories on record, with the process that made each.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn stagings(&self) -> Result<Vec<(PathBuf, u32)>, CatalogError> {
        let mut st = self
            .conn
            .prepare("SELECT path, pid FROM staging ORDER BY created_at")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    PathBuf::from(std::ffi::OsString::from_vec(r.get::<_, Vec<u8>>(0)?)),
                    r.get::<_, u32>(1)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records one restore.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn record_restore(&self, r: &RestoreRecord) -> Result<i64, CatalogError> {
        self.conn
            .execute(
                "INSERT INTO restores (at, source, paths, destination, files, bytes, ok, detail)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![
                    ts(r.at),
                    r.source,
                    r.paths.join("\n"),
                    r.destination.to_string_lossy(),
                    i64::try_from(r.files).unwrap_or(i64::MAX),
                    i64::try_from(r.bytes).unwrap_or(i64::MAX),
                    r.ok,
                    r.detail
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Restores, newest first.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn restores(&self, limit: usize) -> Result<Vec<RestoreRecord>, CatalogError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, at, source, paths, destination, files, bytes, ok, detail FROM restores
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(RestoreRecord {
                    id: r.get(0)?,
                    at: from_ts(r.get(1)?),
                    source: r.get(2)?,
                    paths: r.get::<_, String>(3)?.lines().map(str::to_owned).collect(),
                    destination: PathBuf::from(r.get::<_, String>(4)?),
                    files: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    bytes: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                    ok: r.get(7)?,
                    detail: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records a rollback just requested (`completed` when LVM merged at once).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn record_rollback(&self, r: &RollbackRecord) -> Result<i64, CatalogError> {
        self.conn
            .execute(
                "INSERT INTO rollbacks (snapshot_id, vg, origin, snapshot, guard, requested_at,
                 deferred, completed_at, swap_origin_uuid, swap_snapshot_uuid, swap_step)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                params![
                    r.snapshot_id,
                    r.vg,
                    r.origin,
                    r.snapshot,
                    r.guard,
                    ts(r.requested),
                    r.deferred,
                    r.completed.map(ts),
                    r.swap.as_ref().map(|s| s.origin_uuid.as_str()),
                    r.swap.as_ref().map(|s| s.snapshot_uuid.as_str()),
                    r.swap.as_ref().map(|s| s.step),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the step of a name swap about to run (its intent), before it runs.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_swap_step(&self, id: i64, step: i64) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE rollbacks SET swap_step = ?2 WHERE id = ?1",
                params![id, step],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Marks a deferred rollback complete.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn complete_rollback(&self, id: i64, now: DateTime<Utc>) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE rollbacks SET completed_at = ?2 WHERE id = ?1",
                params![id, ts(now)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Rollbacks, newest first; `pending_only` for those LVM has not completed.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn rollbacks(&self, pending_only: bool) -> Result<Vec<RollbackRecord>, CatalogError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, snapshot_id, vg, origin, snapshot, guard, requested_at, deferred,
                 completed_at, swap_origin_uuid, swap_snapshot_uuid, swap_step
                 FROM rollbacks WHERE (?1 = 0 OR completed_at IS NULL) ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![pending_only], |r| {
                Ok(RollbackRecord {
                    id: r.get(0)?,
                    snapshot_id: r.get(1)?,
                    vg: r.get(2)?,
                    origin: r.get(3)?,
                    snapshot: r.get(4)?,
                    guard: r.get(5)?,
                    requested: from_ts(r.get(6)?),
                    deferred: r.get(7)?,
                    completed: r.get::<_, Option<i64>>(8)?.map(from_ts),
                    swap: match (r.get(9)?, r.get(10)?) {
                        (Some(origin_uuid), Some(snapshot_uuid)) => Some(SwapJournal {
                            origin_uuid,
                            snapshot_uuid,
                            step: r.get::<_, Option<i64>>(11)?.unwrap_or(0),
                        }),
                        _ => None,
                    },
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

impl Catalog {
    /// Forgets a rollback whose merge LVM refused to start.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn cancel_rollback(&self, id: i64) -> Result<(), CatalogError> {
        self.conn
            .execute("DELETE FROM rollbacks WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
