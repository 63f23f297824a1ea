//! Replica records: each thin snapshot a policy sent to its target pool. Recorded `sending`
//! before the stream starts and finished as `complete` or `failed`; a crash leaves `sending`,
//! which the next replication resolves from what the target holds.

use chrono::{DateTime, Utc};
use rusqlite::{params, Row};

use super::{from_ts, ts, Catalog, CatalogError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    Sending,
    Complete,
    Failed,
    /// Pruned from the target by its keep rules (or found gone there): history.
    Removed,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Sending => "sending",
            ReplicaState::Complete => "complete",
            ReplicaState::Failed => "failed",
            ReplicaState::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "sending" => ReplicaState::Sending,
            "complete" => ReplicaState::Complete,
            "removed" => ReplicaState::Removed,
            _ => ReplicaState::Failed,
        }
    }
}

/// A replica about to be sent.
#[derive(Debug, Clone)]
pub struct NewReplica<'a> {
    pub policy: &'a str,
    /// The target pool, and the transport to its host (see `ReplicatePolicy::target`).
    pub target: &'a str,
    pub vg: &'a str,
    pub origin: &'a str,
    pub snapshot: &'a str,
    pub snapshot_uuid: &'a str,
    pub snapshot_time: DateTime<Utc>,
    /// The snapshot an increment is relative to; `None` for a whole send.
    pub base: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRecord {
    pub id: i64,
    pub policy: String,
    pub target: String,
    pub vg: String,
    pub origin: String,
    pub snapshot: String,
    pub snapshot_uuid: String,
    pub snapshot_time: DateTime<Utc>,
    pub base: Option<String>,
    pub state: ReplicaState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Bytes of data the stream carried.
    pub bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    pub pid: Option<u32>,
}

const COLUMNS: &str = "id, policy, target, vg, origin, snapshot, snapshot_uuid, snapshot_time,
    base, state, started_at, finished_at, bytes, duration_ms, error, pid";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ReplicaRecord> {
    let state: String = r.get(9)?;
    Ok(ReplicaRecord {
        id: r.get(0)?,
        policy: r.get(1)?,
        target: r.get(2)?,
        vg: r.get(3)?,
        origin: r.get(4)?,
        snapshot: r.get(5)?,
        snapshot_uuid: r.get(6)?,
        snapshot_time: from_ts(r.get(7)?),
        base: r.get(8)?,
        state: ReplicaState::parse(&state),
        started_at: from_ts(r.get(10)?),
        finished_at: r.get::<_, Option<i64>>(11)?.map(from_ts),
        bytes: r.get::<_, Option<i64>>(12)?.map(|b| b.max(0) as u64),
        duration_ms: r.get::<_, Option<i64>>(13)?.map(|b| b.max(0) as u64),
        error: r.get(14)?,
        pid: r.get(15)?,
    })
}

impl ReplicaRecord {
    /// Whether this record's source snapshot must stay: it is (or may have become) the
    /// newest replica of its volume on its target, so the next increment starts from it.
    pub fn pins(&self, all: &[ReplicaRecord]) -> bool {
        let same = |o: &&ReplicaRecord| {
            o.policy == self.policy
                && o.target == self.target
                && o.vg == self.vg
                && o.origin == self.origin
        };
        let newer_complete = |t| {
            all.iter()
                .filter(same)
                .any(|o| o.state == ReplicaState::Complete && o.snapshot_time > t)
        };
        match self.state {
            ReplicaState::Sending => true,
            ReplicaState::Complete => !newer_complete(self.snapshot_time),
            // A send that failed at its very end (the connection cut after the target made
            // the replica) may have made the base: its snapshot stays until a newer replica
            // is known, or until the next pass asked the target. Only the newest such one.
            ReplicaState::Failed => {
                !newer_complete(self.snapshot_time)
                    && !all.iter().filter(same).any(|o| {
                        o.state == ReplicaState::Failed
                            && (o.snapshot_time, o.id) > (self.snapshot_time, self.id)
                    })
            }
            ReplicaState::Removed => false,
        }
    }
}

impl Catalog {
    /// Records a replica about to be sent (state `sending`).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn begin_replica(
        &self,
        r: &NewReplica<'_>,
        now: DateTime<Utc>,
    ) -> Result<i64, CatalogError> {
        self.conn
            .execute(
                "INSERT INTO replicas (policy, target, vg, origin, snapshot, snapshot_uuid,
                 snapshot_time, base, state, started_at, pid)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,'sending',?9,?10)",
                params![
                    r.policy,
                    r.target,
                    r.vg,
                    r.origin,
                    r.snapshot,
                    r.snapshot_uuid,
                    ts(r.snapshot_time),
                    r.base,
                    ts(now),
                    std::process::id()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a replica complete, with the bytes its stream carried and how long it took.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn complete_replica(
        &self,
        id: i64,
        bytes: u64,
        duration: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE replicas SET state = 'complete', finished_at = ?2, bytes = ?3,
                 duration_ms = ?4, error = NULL WHERE id = ?1",
                params![
                    id,
                    ts(now),
                    i64::try_from(bytes).unwrap_or(i64::MAX),
                    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Moves a replica to `failed` or `removed`, with why.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn end_replica(
        &self,
        id: i64,
        state: ReplicaState,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE replicas SET state = ?2, finished_at = COALESCE(finished_at, ?3),
                 error = ?4 WHERE id = ?1",
                params![id, state.as_str(), ts(now), why],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every replica record, oldest snapshot first.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn replicas(&self) -> Result<Vec<ReplicaRecord>, CatalogError> {
        // A catalog opened for reading is not migrated: one from before replication has none.
        if self.schema_version() < 13 {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {COLUMNS} FROM replicas ORDER BY snapshot_time, id");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st.query_map([], from_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The records whose source snapshots replication needs kept: the newest complete
    /// replica of each volume on each target, and any still being (or perhaps) sent.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn replica_bases(&self) -> Result<Vec<ReplicaRecord>, CatalogError> {
        let all = self.replicas()?;
        Ok(all.iter().filter(|r| r.pins(&all)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_newest_complete_replica_and_any_in_flight_pin_their_snapshots() {
        let c = Catalog::in_memory().unwrap();
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0).unwrap();
        let new = |snapshot: &'static str, h, target: &'static str| NewReplica {
            policy: "data",
            target,
            vg: "vg0",
            origin: "fs",
            snapshot,
            snapshot_uuid: "u",
            snapshot_time: t(h),
            base: None,
        };
        let a = c.begin_replica(&new("fs-1", 1, "vgb/r"), t(1)).unwrap();
        c.complete_replica(a, 10, std::time::Duration::from_secs(1), t(1))
            .unwrap();
        let b = c.begin_replica(&new("fs-2", 2, "vgb/r"), t(2)).unwrap();
        c.complete_replica(b, 10, std::time::Duration::from_secs(1), t(2))
            .unwrap();
        // Another target's base is its own.
        let other = c.begin_replica(&new("fs-1b", 1, "vgc/r"), t(1)).unwrap();
        c.complete_replica(other, 10, std::time::Duration::from_secs(1), t(1))
            .unwrap();
        let names = |c: &Catalog| {
            let mut v: Vec<(String, String)> = c
                .replica_bases()
                .unwrap()
                .into_iter()
                .map(|r| (r.vg, r.snapshot))
                .collect();
            v.sort();
            v
        };
        let bases = names(&c);
        assert_eq!(
            bases,
            vec![
                ("vg0".to_owned(), "fs-1b".to_owned()),
                ("vg0".to_owned(), "fs-2".to_owned())
            ]
        );
        // A send that failed may have made the base (its end lost): its snapshot stays too,
        // but only the newest failed one.
        let failed = c.begin_replica(&new("fs-3", 3, "vgb/r"), t(3)).unwrap();
        c.end_replica(failed, ReplicaState::Failed, "cut", t(3))
            .unwrap();
        assert!(names(&c).contains(&("vg0".to_owned(), "fs-3".to_owned())));
        let again = c.begin_replica(&new("fs-3b", 3, "vgb/r"), t(3)).unwrap();
        c.end_replica(again, ReplicaState::Failed, "cut", t(3))
            .unwrap();
        assert!(!names(&c).contains(&("vg0".to_owned(), "fs-3".to_owned())));
        assert!(names(&c).contains(&("vg0".to_owned(), "fs-3b".to_owned())));
        // One in flight (or left by a crash) may have become the base.
        c.begin_replica(&new("fs-4", 4, "vgb/r"), t(4)).unwrap();
        assert!(names(&c).contains(&("vg0".to_owned(), "fs-4".to_owned())));
        assert!(names(&c).contains(&("vg0".to_owned(), "fs-2".to_owned())));
    }
}
