//! The catalog: lvsnap's own record, in SQLite (WAL, versioned schema), of every snapshot it
//! made, each snapshot's state history, the intent before each mutation with its outcome, and an
//! event log of every command run. It owns no policy logic: the executor decides, this records.

mod backups;
mod restores;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use backups::{BackupRecord, BackupState, MountRecord, NewBackup, NewMount, Written};
use chrono::{DateTime, TimeZone, Utc};
pub use restores::{RestoreRecord, RollbackRecord, SwapJournal};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

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
}

/// One entry of a snapshot's state history: when, the new state, and why.
pub type StateChange = (DateTime<Utc>, String, Option<String>);

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

/// The last outcome recorded for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupResult {
    pub policy: String,
    pub volume: String,
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub error: Option<String>,
    pub last_ok: Option<DateTime<Utc>>,
}

/// Totals over all recorded runs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunTotals {
    pub runs: i64,
    pub failed: i64,
    pub last_at: Option<DateTime<Utc>>,
    pub last_duration_ms: i64,
    pub last_ok: bool,
}

/// One row of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub argv: String,
    pub status: i32,
    pub duration_ms: i64,
    pub stderr: String,
}

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

const SNAPSHOT_COLUMNS: &str =
    "id, lv_uuid, vg, name, origin, policy, created_at, thin, size, state, reason, pinned, note";

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_ts(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).single().unwrap_or_default()
}

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
    })
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
            "INSERT INTO snapshots (vg, name, origin, policy, created_at, thin, size, state, pinned, note, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'creating', ?8, ?9, ?10)",
            params![s.vg, s.name, s.origin, s.policy, ts(s.time), s.thin, s.size as i64, s.pinned, s.note, ts(now)],
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
        self.conn
            .execute(
                "INSERT INTO intents (at, action, snapshot_id) VALUES (?1, ?2, ?3)",
                params![ts(now), action, snapshot_id],
            )
            .map_err(|e| self.err(e))?;
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
        self.conn
            .execute(
                "UPDATE intents SET resolved_at = ?1, outcome = ?2 WHERE id = ?3",
                params![ts(now), outcome, intent],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
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
        let current: Option<String> = self
            .conn
            .query_row("SELECT state FROM snapshots WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        if current.as_deref() == Some(state.as_str()) {
            return Ok(());
        }
        self.conn
            .execute(
                "UPDATE snapshots SET state = ?1, reason = COALESCE(?2, reason), updated_at = ?3 WHERE id = ?4",
                params![state.as_str(), reason, ts(now), id],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT INTO snapshot_states (snapshot_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
                params![id, ts(now), state.as_str(), reason],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Binds a record to the LV UUID that LVM reports for it, and its size.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn bind(&self, id: i64, uuid: &str, size: u64) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE snapshots SET lv_uuid = ?1, size = ?2 WHERE id = ?3",
                params![uuid, size as i64, id],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
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

    /// Appends to the event log.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn record_event(
        &self,
        at: DateTime<Utc>,
        argv: &[String],
        status: i32,
        duration: Duration,
        stderr: &str,
    ) -> Result<(), CatalogError> {
        const STDERR_EXCERPT: usize = 2000;
        let mut excerpt: String = stderr.chars().take(STDERR_EXCERPT).collect();
        if excerpt.len() < stderr.len() {
            excerpt.push('…');
        }
        let argv = serde_json::to_string(argv).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO events (at, argv, status, duration_ms, stderr) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ts(at), argv, status, duration.as_millis() as i64, excerpt],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Records a run and the outcome of each of its groups: (policy, volume, error if failed).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn record_run(
        &self,
        at: DateTime<Utc>,
        duration: Duration,
        groups: &[(String, String, Option<String>)],
    ) -> Result<(), CatalogError> {
        let ok = groups.iter().all(|(_, _, e)| e.is_none());
        self.conn
            .execute(
                "INSERT INTO runs (at, duration_ms, ok) VALUES (?1, ?2, ?3)",
                params![ts(at), duration.as_millis() as i64, ok],
            )
            .map_err(|e| self.err(e))?;
        for (policy, volume, error) in groups {
            self.conn
                .execute(
                    "INSERT INTO group_results (policy, volume, at, ok, error, last_ok) VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?4 THEN ?3 END)
                     ON CONFLICT (policy, volume) DO UPDATE SET at = ?3, ok = ?4, error = ?5, last_ok = CASE WHEN ?4 THEN ?3 ELSE last_ok END",
                    params![policy, volume, ts(at), error.is_none(), error],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The last recorded outcome of every group.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn group_results(&self) -> Result<Vec<GroupResult>, CatalogError> {
        let mut stmt = self.conn.prepare("SELECT policy, volume, at, ok, error, last_ok FROM group_results ORDER BY policy, volume").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(GroupResult {
                    policy: r.get(0)?,
                    volume: r.get(1)?,
                    at: from_ts(r.get(2)?),
                    ok: r.get(3)?,
                    error: r.get(4)?,
                    last_ok: r.get::<_, Option<i64>>(5)?.map(from_ts),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Totals over all runs, and the last one.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn run_totals(&self) -> Result<RunTotals, CatalogError> {
        let (runs, failed): (i64, i64) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(ok = 0), 0) FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        let last: Option<(i64, i64, bool)> = self
            .conn
            .query_row(
                "SELECT at, duration_ms, ok FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(RunTotals {
            runs,
            failed,
            last_at: last.map(|l| from_ts(l.0)),
            last_duration_ms: last.map_or(0, |l| l.1),
            last_ok: last.is_none_or(|l| l.2),
        })
    }

    /// The most recent events, newest last.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn events(&self, limit: usize) -> Result<Vec<Event>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, argv, status, duration_ms, stderr FROM (SELECT * FROM events ORDER BY id DESC LIMIT ?1) ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                let argv: String = r.get(1)?;
                let words: Vec<String> = serde_json::from_str(&argv).unwrap_or_default();
                Ok(Event {
                    at: from_ts(r.get(0)?),
                    argv: words.join(" "),
                    status: r.get(2)?,
                    duration_ms: r.get(3)?,
                    stderr: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
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
            .query_map([id], |r| Ok((from_ts(r.get(0)?), r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
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
