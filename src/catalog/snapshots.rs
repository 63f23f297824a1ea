//! Snapshot records: each snapshot lvsnap made, its state history, and the intent recorded
//! before each change to it (with its outcome), which is how a crash between an intent and
//! its result is found and resolved.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::{from_ts, ts, Catalog, CatalogError};

/// Where a snapshot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Intent recorded, lvcreate not yet confirmed.
    Creating,
    Present,
    /// LVM reports it invalid (overflowed).
    Invalid,
    /// Intent recorded, lvremove not yet confirmed.
    Removing,
    Removed,
    /// Gone from LVM without lvsnap removing it.
    Vanished,
    /// lvcreate failed or never happened.
    Failed,
    /// Merged into its origin by a rollback; the LV is gone, its content is the origin's now.
    Merged,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Present => "present",
            State::Invalid => "invalid",
            State::Removing => "removing",
            State::Removed => "removed",
            State::Vanished => "vanished",
            State::Failed => "failed",
            State::Merged => "merged",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "creating" => State::Creating,
            "present" => State::Present,
            "invalid" => State::Invalid,
            "removing" => State::Removing,
            "removed" => State::Removed,
            "vanished" => State::Vanished,
            "merged" => State::Merged,
            _ => State::Failed,
        }
    }

    /// Whether the snapshot may still exist in LVM.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            State::Creating | State::Present | State::Invalid | State::Removing
        )
    }
}

/// A snapshot as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    pub id: i64,
    /// Bound from the first inventory that shows the new LV.
    pub uuid: Option<String>,
    pub vg: String,
    pub name: String,
    pub origin: String,
    pub policy: String,
    pub time: DateTime<Utc>,
    pub thin: bool,
    pub size: u64,
    pub state: State,
    pub reason: Option<String>,
    pub pinned: bool,
    pub note: Option<String>,
    /// The snapshot set it belongs to ("POLICY.TIME"), if any.
    pub set: Option<String>,
}

/// A snapshot removed under space pressure.
#[derive(Debug, Clone)]
pub struct SpaceRemoval {
    pub policy: String,
    pub vg: String,
    pub origin: String,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// A place where removing snapshots for space freed nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceStall {
    /// "VG/POOL".
    pub place: String,
    pub since: DateTime<Utc>,
    /// The pool's data and metadata fill (percent) when it stalled.
    pub data: f64,
    pub metadata: f64,
}

/// The note of a snapshot taken for one backup (`source = "fresh"`) and removed after it.
pub const TEMPORARY_NOTE: &str = "temporary, for a backup";

impl SnapshotRecord {
    /// Taken for a backup and removed after it: not part of its group's schedule or retention.
    pub fn is_temporary(&self) -> bool {
        self.note.as_deref() == Some(TEMPORARY_NOTE)
    }
}

/// What a new snapshot will be, recorded before lvcreate runs.
#[derive(Debug, Clone)]
pub struct NewSnapshot<'a> {
    pub vg: &'a str,
    pub name: &'a str,
    pub origin: &'a str,
    pub policy: &'a str,
    pub time: DateTime<Utc>,
    pub thin: bool,
    pub size: u64,
    pub pinned: bool,
    pub note: Option<&'a str>,
    pub set: Option<&'a str>,
}

/// One entry of a snapshot's state history: when, the new state, and why.
pub type StateChange = (DateTime<Utc>, String, Option<String>);

/// A state change's detail when it is the reason already in effect (never a reason itself:
/// `set_state` stores no empty reason).
const AS_BEFORE: &str = "";

impl NewSnapshot<'_> {
    /// The record this becomes once created (`id` from the catalog; -1 for a dry run).
    pub fn record(&self, id: i64) -> SnapshotRecord {
        SnapshotRecord {
            id,
            uuid: None,
            vg: self.vg.to_owned(),
            name: self.name.to_owned(),
            origin: self.origin.to_owned(),
            policy: self.policy.to_owned(),
            time: self.time,
            thin: self.thin,
            size: self.size,
            state: State::Present,
            reason: None,
            pinned: self.pinned,
            note: self.note.map(str::to_owned),
            set: self.set.map(str::to_owned),
        }
    }
}

/// An intent that was never resolved: the process died between intent and result.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIntent {
    pub id: i64,
    pub action: String,
    pub snapshot_id: Option<i64>,
    pub at: DateTime<Utc>,
}

const SNAPSHOT_COLUMNS: &str =
    "id, lv_uuid, vg, name, origin, policy, created_at, thin, size, state, reason, pinned, note, set_id";

fn snapshot_from_row(r: &Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        id: r.get(0)?,
        uuid: r.get(1)?,
        vg: r.get(2)?,
        name: r.get(3)?,
        origin: r.get(4)?,
        policy: r.get(5)?,
        time: from_ts(r.get(6)?),
        thin: r.get(7)?,
        size: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
        state: State::parse(&r.get::<_, String>(9)?),
        reason: r.get(10)?,
        pinned: r.get(11)?,
        note: r.get(12)?,
        set: r.get(13)?,
    })
}

impl Catalog {
    /// Snapshots that may still exist in LVM.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn live_snapshots(&self) -> Result<Vec<SnapshotRecord>, CatalogError> {
        self.query_snapshots(
            "WHERE state IN ('creating','present','invalid','removing') ORDER BY created_at, name",
            [],
        )
    }

    /// Snapshots removed for space (reason `space: …`) from `since` to `until`, oldest first.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn removed_for_space(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SpaceRemoval>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT policy, vg, origin, name, updated_at FROM snapshots \
                 WHERE state = 'removed' AND reason LIKE 'space:%' AND updated_at >= ?1 AND updated_at <= ?2 \
                 ORDER BY updated_at, name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([ts(since), ts(until)], |r| {
                Ok(SpaceRemoval {
                    policy: r.get(0)?,
                    vg: r.get(1)?,
                    origin: r.get(2)?,
                    name: r.get(3)?,
                    at: from_ts(r.get(4)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Places where space pressure stalled (removals freed nothing): where, since when, and
    /// the data and metadata fill then.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn space_stalls(&self) -> Result<Vec<SpaceStall>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT place, since, data, metadata FROM space_stalls ORDER BY place")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SpaceStall {
                    place: r.get(0)?,
                    since: from_ts(r.get(1)?),
                    data: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                    metadata: r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Records a place's stall (a stall already recorded keeps its start, takes the new fill).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_space_stall(&self, stall: &SpaceStall) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO space_stalls (place, since, data, metadata) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (place) DO UPDATE SET data = excluded.data, metadata = excluded.metadata",
                params![stall.place, ts(stall.since), stall.data, stall.metadata],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Forgets a place's stall.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn clear_space_stall(&self, place: &str) -> Result<(), CatalogError> {
        self.conn
            .execute("DELETE FROM space_stalls WHERE place = ?1", [place])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every set id ever recorded (in any state) that starts with `prefix`.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_ids_from(&self, prefix: &str) -> Result<Vec<String>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT set_id FROM snapshots WHERE substr(set_id, 1, length(?1)) = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([prefix], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.err(e))
    }

    /// Marks the snapshots `ids` as members of a set given up as a whole, `why`; before the
    /// first of them is removed.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn give_up_set(&self, ids: &[i64], why: &str) -> Result<(), CatalogError> {
        for id in ids {
            self.conn
                .execute(
                    "UPDATE snapshots SET set_given_up = ?1 WHERE id = ?2",
                    params![why, id],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Snapshot sets of which a member was never created (state `failed`), or that were given
    /// up as a whole (`give_up_set`) with members still there: what is left of them is no state
    /// that ever existed, or was on its way out.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn broken_sets(&self) -> Result<Vec<String>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT set_id FROM snapshots WHERE set_id IS NOT NULL \
                 AND (state = 'failed' OR (state IN ('creating','present','invalid','removing') AND set_given_up IS NOT NULL)) \
                 ORDER BY set_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.err(e))
    }

    /// Every snapshot ever recorded, oldest first.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn all_snapshots(&self) -> Result<Vec<SnapshotRecord>, CatalogError> {
        self.query_snapshots("ORDER BY created_at, name", [])
    }

    fn query_snapshots<P: rusqlite::Params>(
        &self,
        tail: &str,
        params: P,
    ) -> Result<Vec<SnapshotRecord>, CatalogError> {
        let sql = format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots {tail}");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, snapshot_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The live record of the snapshot named `name` (in `vg`, if given).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn find_live(
        &self,
        vg: Option<&str>,
        name: &str,
    ) -> Result<Vec<SnapshotRecord>, CatalogError> {
        Ok(self
            .live_snapshots()?
            .into_iter()
            .filter(|s| s.name == name && vg.is_none_or(|v| v == s.vg))
            .collect())
    }

    /// Records a snapshot about to be created (state `creating`) with its intent, in one
    /// transaction. Returns (snapshot id, intent id).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn begin_create(
        &mut self,
        s: &NewSnapshot<'_>,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64), CatalogError> {
        let path = self.path.clone();
        let e = |source| CatalogError::sqlite(&path, source);
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute(
            "INSERT INTO snapshots (vg, name, origin, policy, created_at, thin, size, state, pinned, note, updated_at, set_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'creating', ?8, ?9, ?10, ?11)",
            params![s.vg, s.name, s.origin, s.policy, ts(s.time), s.thin, s.size as i64, s.pinned, s.note, ts(now), s.set],
        )
        .map_err(e)?;
        let id = tx.last_insert_rowid();
        tx.execute("INSERT INTO snapshot_states (snapshot_id, at, state, detail) VALUES (?1, ?2, 'creating', NULL)", params![id, ts(now)])
            .map_err(e)?;
        tx.execute(
            "INSERT INTO intents (at, action, snapshot_id) VALUES (?1, 'create', ?2)",
            params![ts(now), id],
        )
        .map_err(e)?;
        let intent = tx.last_insert_rowid();
        tx.commit().map_err(e)?;
        Ok((id, intent))
    }

    /// Records the intent to change a snapshot (`remove`, `extend`, `pin` …).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn begin(
        &self,
        action: &str,
        snapshot_id: i64,
        now: DateTime<Utc>,
    ) -> Result<i64, CatalogError> {
        self.run(
            "INSERT INTO intents (at, action, snapshot_id) VALUES (?1, ?2, ?3)",
            params![ts(now), action, snapshot_id],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how an intent ended.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn resolve(
        &self,
        intent: i64,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.run(
            "UPDATE intents SET resolved_at = ?1, outcome = ?2 WHERE id = ?3",
            params![ts(now), outcome, intent],
        )
        .map(|_| ())
    }

    /// Intents without an outcome: what a crash interrupted.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn open_intents(&self) -> Result<Vec<OpenIntent>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, action, snapshot_id, at FROM intents WHERE resolved_at IS NULL ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OpenIntent {
                    id: r.get(0)?,
                    action: r.get(1)?,
                    snapshot_id: r.get(2)?,
                    at: from_ts(r.get(3)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Moves a snapshot to `state`, keeping the history.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set_state(
        &self,
        id: i64,
        state: State,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        // Both rows or neither: a history row names a repeated reason only through the
        // record's, so the two must never disagree. Outside a batch that is a transaction of
        // its own (rolled back if its commit fails); inside one, a savepoint.
        if self.conn.is_autocommit() {
            return self.batch(|c| c.set_state(id, state, reason, now));
        }
        self.conn
            .execute_batch("SAVEPOINT set_state")
            .map_err(|e| self.err(e))?;
        let written = self.change_state(id, state, reason, now);
        let end = match written {
            Ok(()) => "RELEASE set_state",
            Err(_) => "ROLLBACK TO set_state; RELEASE set_state",
        };
        let ended = self.conn.execute_batch(end).map_err(|e| self.err(e));
        written.and(ended)
    }

    fn change_state(
        &self,
        id: i64,
        state: State,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        let current: Option<(String, Option<String>)> = self
            .conn
            .prepare_cached("SELECT state, reason FROM snapshots WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        let (current, in_effect) = current.unzip();
        if current.as_deref() == Some(state.as_str()) {
            return Ok(());
        }
        // The reason repeats from one state to the next (`removing`, then `removed`) and is
        // the longest text in the catalog: a repeat is kept as `AS_BEFORE`, and `history` reads
        // it back as the reason in effect.
        let reason = reason.filter(|r| !r.is_empty());
        let detail = match reason {
            Some(r) if in_effect.flatten().as_deref() == Some(r) => Some(AS_BEFORE),
            other => other,
        };
        self.run(
            "UPDATE snapshots SET state = ?1, reason = COALESCE(?2, reason), updated_at = ?3 WHERE id = ?4",
            params![state.as_str(), reason, ts(now), id],
        )?;
        self.run(
            "INSERT INTO snapshot_states (snapshot_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, ts(now), state.as_str(), detail],
        )
        .map(|_| ())
    }

    /// Binds a record to the LV UUID that LVM reports for it, and its size.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn bind(&self, id: i64, uuid: &str, size: u64) -> Result<(), CatalogError> {
        self.run(
            "UPDATE snapshots SET lv_uuid = ?1, size = ?2 WHERE id = ?3",
            params![uuid, size as i64, id],
        )
        .map(|_| ())
    }

    /// # Errors
    /// SQLite failed.
    pub fn set_pinned(
        &self,
        id: i64,
        pinned: bool,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE snapshots SET pinned = ?1, updated_at = ?2 WHERE id = ?3",
                params![pinned, ts(now), id],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Re-creates a record from what an LV's tags say (catalog rebuild, adopt).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn adopt(
        &mut self,
        s: &NewSnapshot<'_>,
        uuid: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, CatalogError> {
        // A volume can come back under lvsnap's care after its record ended (a snapshot swapped
        // in as the origin by a rollback, later renamed to a guard): the old record keeps its
        // history, the volume's UUID moves to the new one.
        self.conn
            .execute(
                "UPDATE snapshots SET lv_uuid = NULL WHERE lv_uuid = ?1
                 AND state NOT IN ('creating','present','invalid','removing')",
                params![uuid],
            )
            .map_err(|e| self.err(e))?;
        let (id, intent) = self.begin_create(s, now)?;
        self.bind(id, uuid, s.size)?;
        self.set_state(id, State::Present, Some("adopted from LVM tags"), now)?;
        self.resolve(intent, "adopted", now)?;
        Ok(id)
    }

    /// The state history of one snapshot: (when, state, detail).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn history(&self, id: i64) -> Result<Vec<StateChange>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, state, detail FROM snapshot_states WHERE snapshot_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    from_ts(r.get(0)?),
                    r.get(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        // As in `set_state`: a state change without a reason keeps the one in effect.
        let mut in_effect: Option<String> = None;
        rows.map(|row| {
            let (at, state, detail) = row?;
            let detail = match detail.as_deref() {
                Some(AS_BEFORE) => in_effect.clone(),
                Some(_) => {
                    in_effect.clone_from(&detail);
                    detail
                }
                None => None,
            };
            Ok((at, state, detail))
        })
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| self.err(e))
    }
}
