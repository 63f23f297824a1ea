//! The event log (every LVM command run, with status, duration and an excerpt of its errors)
//! and the record of each run's result per group, which `status`, `check` and the metrics read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{from_ts, ts, Catalog, CatalogError};

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

/// The most rows of one kind one trim removes.
pub const TRIM_AT_ONCE: usize = 50_000;

impl Catalog {
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
        self.run(
            "INSERT INTO events (at, argv, status, duration_ms, stderr) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ts(at), argv, status, duration.as_millis() as i64, excerpt],
        )
        .map(|_| ())
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
        self.conn
            .execute(
                "UPDATE history SET runs = runs + 1, failed = failed + (NOT ?1)",
                params![ok],
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
        // Counted as runs are recorded: the rows themselves are trimmed after history-days.
        let (runs, failed): (i64, i64) = self
            .conn
            .query_row("SELECT runs, failed FROM history", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or((0, 0));
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

    /// Forgets what is older than `keep` as of `now` — commands (failed ones: older than
    /// `keep_failures`), runs, resolved intents, and the records of snapshots gone that long
    /// with their state history — and what is beyond the newest `rows` of each. The newest
    /// 1000 commands, 1000 failed commands and 100 runs stay whatever their age; a snapshot's
    /// record stays while a rollback names it or a member of its set is live. At most once a
    /// day, and the day moves on by at most one per trim: a clock set years ahead, or a host
    /// off for months, forgets a day's history per run, never all of it at once. At most
    /// [`TRIM_AT_ONCE`] rows of a kind go per trim, so that the first trim of a large catalog
    /// holds its lock briefly; the rest goes with the next runs. Gives the rows removed.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn trim_history(
        &self,
        now: DateTime<Utc>,
        keep: chrono::Duration,
        keep_failures: chrono::Duration,
        rows: u64,
    ) -> Result<usize, CatalogError> {
        let day = chrono::Duration::days(1);
        let (trimmed_at, previous): (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT trimmed_at, (SELECT at FROM runs ORDER BY id DESC LIMIT 1 OFFSET 1) FROM history",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or((None, None));
        let now = match (trimmed_at, previous) {
            (Some(t), _) if from_ts(t) <= now => {
                if from_ts(t) + day > now {
                    return Ok(0);
                }
                now.min(from_ts(t) + day)
            }
            (_, Some(p)) => now.min(from_ts(p) + day),
            _ => now,
        };
        let (cutoff, failures) = (ts(now - keep), ts(now - keep_failures.max(keep)));
        let offset = i64::try_from(rows.max(1) - 1).unwrap_or(i64::MAX);
        let limit = TRIM_AT_ONCE as i64;
        // ?1 cutoff, ?2 cutoff for failures, ?3 the offset of the newest row kept by count,
        // ?4 the day trimmed, ?5 the most rows one statement removes.
        const FINISHED: &str = "state IN ('removed', 'vanished', 'failed', 'merged')";
        const LIVE: &str = "state IN ('creating', 'present', 'invalid', 'removing')";
        let trim_snapshots = format!(
            "INSERT INTO temp.trimmed SELECT id FROM snapshots WHERE {FINISHED}
                AND (updated_at < ?1 OR id < (SELECT id FROM snapshots ORDER BY id DESC LIMIT 1 OFFSET ?3))
                AND id NOT IN (SELECT snapshot_id FROM rollbacks)
                AND (set_id IS NULL OR set_id NOT IN (SELECT set_id FROM snapshots WHERE {LIVE} AND set_id IS NOT NULL))
                LIMIT ?5"
        );
        let statements: [&str; 9] = [
            "DELETE FROM events WHERE id IN (SELECT id FROM events
                WHERE id < (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET 999)
                AND (status = 0 OR id < (SELECT id FROM events WHERE status != 0 ORDER BY id DESC LIMIT 1 OFFSET 999))
                AND ((at < ?1 AND (status = 0 OR at < ?2))
                    OR id < (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?3))
                LIMIT ?5)",
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs
                WHERE id < (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET 99)
                AND ((at < ?1 AND (ok OR at < ?2))
                    OR id < (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?3))
                LIMIT ?5)",
            "DELETE FROM intents WHERE id IN (SELECT id FROM intents WHERE resolved_at IS NOT NULL
                AND (resolved_at < ?1 OR id < (SELECT id FROM intents ORDER BY id DESC LIMIT 1 OFFSET ?3))
                LIMIT ?5)",
            "CREATE TEMP TABLE IF NOT EXISTS trimmed (id INTEGER PRIMARY KEY)",
            "DELETE FROM temp.trimmed",
            &trim_snapshots,
            "DELETE FROM intents WHERE snapshot_id IN (SELECT id FROM temp.trimmed)",
            "DELETE FROM snapshot_states WHERE snapshot_id IN (SELECT id FROM temp.trimmed)",
            "DELETE FROM snapshots WHERE id IN (SELECT id FROM temp.trimmed)",
        ];
        let (mut removed, mut more) = (0, false);
        for sql in statements {
            let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
            let all = [cutoff, failures, offset, ts(now), limit];
            let bound = &all[..stmt.parameter_count()];
            let n = stmt
                .execute(rusqlite::params_from_iter(bound))
                .map_err(|e| self.err(e))?;
            if sql.starts_with("DELETE FROM temp") || sql.starts_with("CREATE") {
                continue;
            }
            more |= sql.contains("LIMIT ?5") && n == TRIM_AT_ONCE;
            if sql.starts_with("DELETE") {
                removed += n;
            }
        }
        // With more left, the next run goes on from the same day.
        if !more {
            self.conn
                .execute("UPDATE history SET trimmed_at = ?1", params![ts(now)])
                .map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }

    /// Gives the catalog's free pages back to the file system when more than half of it is
    /// free (after the first trim of a large catalog), and empties the write-ahead log.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn compact(&self) -> Result<(), CatalogError> {
        let (pages, free): (i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        if pages > 1024 && free * 2 > pages {
            self.conn.execute_batch("VACUUM").map_err(|e| self.err(e))?;
        }
        self.checkpoint()
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
}
