//! The catalog: lvsnap's own record, in SQLite (WAL, versioned schema), of every snapshot it
//! made, each snapshot's state history, the intent before each mutation with its outcome, and an
//! event log of every command run. It owns no policy logic: the executor decides, this records.

mod backups;
mod events;
mod replicas;
mod restores;
mod schema;
mod snapshots;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use backups::{BackupRecord, BackupState, MountRecord, NewBackup, NewMount, Written};
use chrono::{DateTime, TimeZone, Utc};
pub use events::{Event, GroupResult, RunTotals};
pub use replicas::{NewReplica, ReplicaRecord, ReplicaState};
pub use restores::{RestoreRecord, RollbackRecord, SwapJournal};
use rusqlite::{Connection, OpenFlags};
pub use snapshots::{
    NewSnapshot, OpenIntent, SnapshotRecord, SpaceRemoval, SpaceStall, State, StateChange,
    TEMPORARY_NOTE,
};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path}: {source}{}", hint(.source))]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("catalog {path}: cannot create its directory: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog {path} is damaged ({detail}); lvsnap changes nothing until it is repaired\n    hint: `lvsnap catalog rebuild` sets it aside and rebuilds it from the snapshots' LVM tags and the backup targets; `list`, `status` and `check` show what LVM alone knows meanwhile")]
    Damaged { path: String, detail: String },
    #[error("catalog {path} has schema version {found}, newer than this lvsnap knows ({known}); upgrade lvsnap")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

impl CatalogError {
    /// The file is not a readable SQLite database any more (truncated, overwritten).
    pub fn is_damaged(&self) -> bool {
        matches!(self, CatalogError::Damaged { .. })
    }

    /// An SQLite error about `path`, told apart when it means the file is damaged.
    fn sqlite(path: &str, source: rusqlite::Error) -> Self {
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                CatalogError::Damaged {
                    path: path.to_owned(),
                    detail: source.to_string(),
                }
            }
            _ => CatalogError::Sqlite {
                path: path.to_owned(),
                source,
            },
        }
    }
}

fn hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::PermissionDenied) => {
            "\n    hint: run as root, or point settings.catalog at a writable path"
        }
        Some(rusqlite::ErrorCode::NotADatabase) => "\n    hint: the file is not an lvsnap catalog; move it away and run `lvsnap catalog rebuild`",
        _ => "",
    }
}

pub struct Catalog {
    conn: Connection,
    path: String,
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_ts(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).single().unwrap_or_default()
}

impl Catalog {
    /// Opens (creating if needed) the catalog for a command that changes things.
    ///
    /// # Errors
    /// The file or its directory cannot be created or opened, or its schema is newer than known.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent() {
            crate::private::create_dir_all(dir).map_err(|source| CatalogError::Directory {
                path: p.clone(),
                source,
            })?;
        }
        Self::check_header(path)?;
        let conn = Connection::open(path).map_err(|source| CatalogError::sqlite(&p, source))?;
        let mut cat = Catalog { conn, path: p };
        cat.configure()?;
        // The event log holds what lvsnap ran: root's alone, also when an older lvsnap made it.
        for suffix in ["", "-wal", "-shm"] {
            let mut f = path.as_os_str().to_owned();
            f.push(suffix);
            let _ = crate::private::narrow_file(Path::new(&f), 0o600);
        }
        cat.migrate()?;
        Ok(cat)
    }

    /// Opens the catalog for reading only; a missing file reads as an empty catalog.
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub fn open_read(path: &Path) -> Result<Self, CatalogError> {
        if !path.exists() {
            let mut cat = Self::in_memory()?;
            cat.path = path.display().to_string();
            return Ok(cat);
        }
        Self::check_header(path)?;
        let p = path.display().to_string();
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| CatalogError::sqlite(&p, source))?;
        let cat = Catalog { conn, path: p };
        cat.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| cat.err(e))?;
        Ok(cat)
    }

    /// An empty catalog in memory (tests, and reading before the first run).
    ///
    /// # Errors
    /// SQLite cannot allocate it.
    pub fn in_memory() -> Result<Self, CatalogError> {
        let conn = Connection::open_in_memory().map_err(|source| CatalogError::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        let mut cat = Catalog {
            conn,
            path: ":memory:".into(),
        };
        cat.migrate()?;
        Ok(cat)
    }

    fn err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::sqlite(&self.path, source)
    }

    /// Runs one statement, prepared once per connection: a run repeats the same few for each
    /// snapshot it takes or removes, and each command it starts.
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, CatalogError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params))
            .map_err(|e| self.err(e))
    }

    /// Checks the file's SQLite header before anything opens it: the magic string, and that the
    /// file holds as many pages as the header says it has. A truncated or overwritten catalog is
    /// found here at the cost of one 100-byte read, before any command changes anything; damage
    /// inside the pages shows when SQLite reads them (and as [`Catalog::check`]).
    ///
    /// # Errors
    /// The file is damaged (or cannot be read).
    pub fn check_header(path: &Path) -> Result<(), CatalogError> {
        use std::io::Read;
        let damaged = |detail: String| CatalogError::Damaged {
            path: path.display().to_string(),
            detail,
        };
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(damaged(format!("cannot read it: {e}"))),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            // A new, empty file: SQLite writes the header with the first table.
            return Ok(());
        }
        let mut h = [0u8; 100];
        if f.read_exact(&mut h).is_err() || &h[..16] != b"SQLite format 3\0" {
            return Err(damaged("not an SQLite database".to_owned()));
        }
        let be32 = |o: usize| u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let page_size = match u16::from_be_bytes([h[16], h[17]]) {
            1 => 65536,
            n => u64::from(n),
        };
        let pages = u64::from(be32(28));
        // The page count is valid when the header says so (its two change counters agree).
        if be32(24) == be32(92) && pages * page_size > len {
            return Err(damaged(format!(
                "the file has {len} bytes, its header counts {pages} pages of {page_size} bytes: it was cut short"
            )));
        }
        Ok(())
    }

    /// Reads every page of the catalog (`PRAGMA quick_check`): a file that was truncated or
    /// overwritten is found before anything is changed, not half-way through a run.
    ///
    /// # Errors
    /// The catalog is damaged.
    pub fn check(&self) -> Result<(), CatalogError> {
        let first: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if first == "ok" {
            Ok(())
        } else {
            Err(CatalogError::Damaged {
                path: self.path.clone(),
                detail: first,
            })
        }
    }

    /// Moves a damaged catalog (and its WAL and shared-memory files) aside as
    /// `PATH.damaged-STAMP`; returns the new name of the database file.
    ///
    /// # Errors
    /// A rename failed.
    pub fn set_aside(path: &Path, now: DateTime<Utc>) -> std::io::Result<PathBuf> {
        let stamp = now.format("%Y%m%dT%H%M%SZ");
        let with = |p: &Path, suffix: &str| {
            let mut s = p.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        let aside = with(path, &format!(".damaged-{stamp}"));
        let files: Vec<(PathBuf, PathBuf)> = ["", "-wal", "-shm"]
            .iter()
            .map(|x| (with(path, x), with(&aside, x)))
            .filter(|(from, _)| from.exists())
            .collect();
        // All three get their new names (links) before any old one goes, the database file
        // first: killed in between, the damaged file is still where it was, or gone with its
        // WAL kept beside its copy — never a database that lost its WAL and looks whole.
        for (from, to) in &files {
            std::fs::hard_link(from, to)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        for (from, _) in &files {
            std::fs::remove_file(from)?;
        }
        Ok(aside)
    }

    fn configure(&self) -> Result<(), CatalogError> {
        self.conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))
    }

    /// Copies the write-ahead log into the database and empties it.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn checkpoint(&self) -> Result<(), CatalogError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), CatalogError> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let known = schema::MIGRATIONS.len() as i64;
        if found > known {
            return Err(CatalogError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        if found == known {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| CatalogError::sqlite(&path, source))?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)
                .map_err(|source| CatalogError::sqlite(&path, source))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(|source| CatalogError::sqlite(&path, source))?;
        }
        tx.commit()
            .map_err(|source| CatalogError::sqlite(&path, source))
    }

    pub fn schema_version(&self) -> i64 {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap_or(0)
    }

    /// Runs `f` in one transaction: the several writes that record one outcome reach the disk
    /// together, with one sync.
    ///
    /// # Errors
    /// `f` or SQLite failed; nothing of `f`'s writes is kept then.
    pub fn batch<R, E: From<CatalogError>>(
        &self,
        f: impl FnOnce(&Self) -> Result<R, E>,
    ) -> Result<R, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| E::from(self.err(e)))?;
        let r = f(self)?;
        tx.commit().map_err(|e| E::from(self.err(e)))?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_snapshot(name: &str) -> NewSnapshot<'_> {
        NewSnapshot {
            vg: "vg0",
            name,
            origin: "home",
            policy: "home",
            time: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            thin: false,
            size: 64 << 20,
            pinned: false,
            note: None,
            set: None,
        }
    }

    #[test]
    fn intent_then_result_and_history() {
        let mut cat = Catalog::in_memory().unwrap();
        let now = Utc::now();
        let (id, intent) = cat.begin_create(&new_snapshot("a"), now).unwrap();
        assert_eq!(cat.open_intents().unwrap().len(), 1);
        assert_eq!(cat.live_snapshots().unwrap()[0].state, State::Creating);
        cat.bind(id, "uuid-a", 64 << 20).unwrap();
        cat.set_state(id, State::Present, None, now).unwrap();
        cat.resolve(intent, "created", now).unwrap();
        assert!(cat.open_intents().unwrap().is_empty());
        let states: Vec<String> = cat
            .history(id)
            .unwrap()
            .into_iter()
            .map(|(_, s, _)| s)
            .collect();
        assert_eq!(states, ["creating", "present"]);
        assert_eq!(
            cat.live_snapshots().unwrap()[0].uuid.as_deref(),
            Some("uuid-a")
        );
    }

    #[test]
    fn a_reason_repeated_is_stored_once_and_read_back_in_full() {
        let mut cat = Catalog::in_memory().unwrap();
        let now = Utc::now();
        let (id, _) = cat.begin_create(&new_snapshot("a"), now).unwrap();
        let why = "not among the 4 newest; hourly: a newer snapshot is kept for its hour";
        let steps = [
            (State::Present, None),
            (State::Removing, Some(why)),
            // LVM refused: back to present with its reason, then the same removal again.
            (State::Present, Some("lvremove: Logical volume in use")),
            (State::Removing, Some(why)),
            (State::Removed, Some(why)),
        ];
        for (state, reason) in steps {
            cat.set_state(id, state, reason, now).unwrap();
        }
        let details: Vec<Option<String>> = cat
            .history(id)
            .unwrap()
            .into_iter()
            .map(|(_, _, d)| d)
            .collect();
        let expected = [
            None,
            None,
            Some(why),
            Some("lvremove: Logical volume in use"),
            Some(why),
            Some(why),
        ];
        assert_eq!(details, expected.map(|d| d.map(str::to_owned)));
        let stored: i64 = cat
            .conn
            .query_row(
                "SELECT count(*) FROM snapshot_states WHERE detail = ?1",
                [why],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            stored, 2,
            "the removal after the refusal states it anew, `removed` does not"
        );
        let record = cat.all_snapshots().unwrap().pop().unwrap();
        assert_eq!(record.reason.as_deref(), Some(why));
    }

    #[test]
    fn history_is_trimmed_by_age_failures_later_and_counters_stay() {
        let mut cat = Catalog::in_memory().unwrap();
        let day =
            |d: i64| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(d);
        let argv = ["lvs".to_owned()];
        // 200 days: ten commands and one run a day; every tenth day they fail.
        for d in 0..200 {
            let ok = d % 10 != 0;
            for _ in 0..10 {
                let status = if ok { 0 } else { 5 };
                cat.record_event(day(d), &argv, status, Duration::from_millis(1), "")
                    .unwrap();
            }
            let error = (!ok).then(|| "failed".to_owned());
            let groups = [("p".to_owned(), "vg0/a".to_owned(), error)];
            cat.record_run(day(d), Duration::from_millis(1), &groups)
                .unwrap();
        }
        // A snapshot removed on day 10, one present since day 0.
        let (gone, i) = cat.begin_create(&new_snapshot("gone"), day(0)).unwrap();
        cat.resolve(i, "created", day(0)).unwrap();
        cat.set_state(gone, State::Removed, Some("keep rules"), day(10))
            .unwrap();
        let (kept, i) = cat.begin_create(&new_snapshot("kept"), day(0)).unwrap();
        cat.resolve(i, "created", day(0)).unwrap();
        cat.set_state(kept, State::Present, None, day(0)).unwrap();
        let before = cat.run_totals().unwrap();
        let (ninety, longer, rows) = (
            chrono::Duration::days(90),
            chrono::Duration::days(150),
            100_000,
        );
        // The clock counts from at most a day after the run before the last: day 199.
        assert!(cat.trim_history(day(200), ninety, longer, rows).unwrap() > 0);
        let count = |sql: &str| -> i64 { cat.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        // Kept: the newest 1000 commands (days 100-199) and the newest 1000 failed ones (all
        // 200 of them, from day 0 on).
        assert_eq!(count("SELECT COUNT(*) FROM events"), 1000 + 100);
        assert_eq!(
            count("SELECT MIN(at) FROM events WHERE status = 0"),
            ts(day(101))
        );
        assert_eq!(
            count("SELECT MIN(at) FROM events WHERE status != 0"),
            ts(day(0))
        );
        // The newest 100 runs (days 100-199), and failed ones from day 49 on.
        assert_eq!(count("SELECT COUNT(*) FROM runs"), 100 + 5);
        assert_eq!(count("SELECT COUNT(*) FROM intents"), 0);
        // The record of the snapshot gone since day 10 goes with its history; the live one stays.
        assert!(cat.history(gone).unwrap().is_empty());
        assert_eq!(cat.history(kept).unwrap().len(), 2);
        let names: Vec<String> = cat
            .all_snapshots()
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["kept"]);
        let after = cat.run_totals().unwrap();
        assert_eq!((after.runs, after.failed), (before.runs, before.failed));
        assert_eq!((after.runs, after.failed), (200, 20));
        // A clock ten years ahead moves the trimmed day on by one, not to the clock.
        assert_eq!(
            cat.trim_history(day(3850), ninety, longer, rows).unwrap(),
            0
        );
        assert_eq!(count("SELECT trimmed_at FROM history"), ts(day(200)));
        assert_eq!(count("SELECT COUNT(*) FROM events"), 1100);
        // Beyond the newest N records, those of snapshots gone go, whatever their age; a set's
        // member stays while another member of its set is live.
        cat.record_run(day(201), Duration::from_millis(1), &[])
            .unwrap();
        let member = |name: &'static str| NewSnapshot {
            set: Some("p.1"),
            ..new_snapshot(name)
        };
        for (s, state) in [
            (member("set-gone"), State::Vanished),
            (member("set-live"), State::Present),
            (new_snapshot("gone2"), State::Removed),
            (new_snapshot("gone3"), State::Removed),
        ] {
            let (id, i) = cat.begin_create(&s, day(200)).unwrap();
            cat.resolve(i, "created", day(200)).unwrap();
            cat.set_state(id, state, None, day(200)).unwrap();
        }
        cat.trim_history(day(201), ninety, ninety, 1).unwrap();
        let mut names: Vec<String> = cat
            .all_snapshots()
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        names.sort();
        assert_eq!(names, ["gone3", "kept", "set-gone", "set-live"]);
    }

    #[test]
    fn an_older_catalog_keeps_its_run_counts_through_the_history_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        {
            // As the release before it left a catalog: 13 migrations, three runs, one failed.
            let conn = Connection::open(&path).unwrap();
            for sql in &schema::MIGRATIONS[..13] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 13).unwrap();
            conn.execute_batch(
                "INSERT INTO runs (at, duration_ms, ok) VALUES (1, 1, 1), (2, 1, 0), (3, 1, 1);",
            )
            .unwrap();
        }
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(cat.schema_version(), schema::MIGRATIONS.len() as i64);
        let totals = cat.run_totals().unwrap();
        assert_eq!((totals.runs, totals.failed), (3, 1));
    }

    #[test]
    fn a_state_change_that_fails_leaves_no_half_and_no_open_transaction() {
        let cat = Catalog::in_memory().unwrap();
        // No such record: the history row's reference fails, after the (empty) update.
        let failed = cat.set_state(42, State::Removed, Some("keep rules"), Utc::now());
        assert!(failed.is_err(), "{failed:?}");
        assert!(cat.conn.is_autocommit(), "a transaction was left open");
        let rows: i64 = cat
            .conn
            .query_row("SELECT count(*) FROM snapshot_states", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        // Inside a batch the batch decides; the savepoint is released either way.
        let r: Result<(), CatalogError> = cat.batch(|c| {
            assert!(c.set_state(42, State::Removed, None, Utc::now()).is_err());
            assert!(!c.conn.is_autocommit());
            Ok(())
        });
        assert!(r.is_ok() && cat.conn.is_autocommit());
    }

    #[test]
    fn file_catalog_uses_wal_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/catalog.db");
        {
            let mut cat = Catalog::open(&path).unwrap();
            cat.begin_create(&new_snapshot("a"), Utc::now()).unwrap();
            let mode: String = cat
                .conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(cat.schema_version(), schema::MIGRATIONS.len() as i64);
        assert_eq!(cat.live_snapshots().unwrap().len(), 1);
        let read = Catalog::open_read(&path).unwrap();
        assert_eq!(read.live_snapshots().unwrap().len(), 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        Catalog::open(&path)
            .unwrap()
            .conn
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Catalog::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("schema version 99, newer than this lvsnap knows"),
            "{err}"
        );
    }

    #[test]
    fn events_keep_argv_status_and_an_stderr_excerpt() {
        let cat = Catalog::in_memory().unwrap();
        let argv = vec![
            "lvremove".to_owned(),
            "--yes".to_owned(),
            "vg0/x y".to_owned(),
        ];
        cat.record_event(
            Utc::now(),
            &argv,
            5,
            Duration::from_millis(900),
            &"e".repeat(5000),
        )
        .unwrap();
        let ev = &cat.events(10).unwrap()[0];
        assert_eq!(ev.argv, "lvremove --yes vg0/x y");
        assert_eq!((ev.status, ev.duration_ms), (5, 900));
        assert_eq!(ev.stderr.chars().count(), 2001);
    }
}
