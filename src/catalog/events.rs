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
    /// with their state history — and beyond the newest `rows` of each, failures aside. The
    /// newest 1000 commands and 100 runs stay whatever their age, and `now` counts from at
    /// most a day after the run before: a clock set years ahead, or a host off for months,
    /// never empties the history. At most once a day. Gives the rows removed.
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
        let now = previous.map_or(now, |p| now.min(from_ts(p) + day));
        if trimmed_at.is_some_and(|t| from_ts(t) + day > now && from_ts(t) <= now) {
            return Ok(0);
        }
        let (cutoff, failures) = (ts(now - keep), ts(now - keep_failures.max(keep)));
        let offset = i64::try_from(rows.max(1) - 1).unwrap_or(i64::MAX);
        let statements = [
            "DELETE FROM events WHERE id < (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET 999)
                AND ((at < ?1 AND (status = 0 OR at < ?2))
                    OR (status = 0 AND id < (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?3)))",
            "DELETE FROM runs WHERE id < (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET 99)
                AND ((at < ?1 AND (ok OR at < ?2))
                    OR (ok AND id < (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?3)))",
            "DELETE FROM intents WHERE resolved_at IS NOT NULL AND (resolved_at < ?1
                OR id < (SELECT id FROM intents ORDER BY id DESC LIMIT 1 OFFSET ?3))",
            // Snapshots gone: their records (which a rollback's record may still name) and
            // everything that names them.
            "CREATE TEMP TABLE IF NOT EXISTS trimmed (id INTEGER PRIMARY KEY)",
            "DELETE FROM temp.trimmed",
            "INSERT INTO temp.trimmed SELECT id FROM snapshots
                WHERE state IN ('removed', 'vanished', 'failed', 'merged')
                AND (updated_at < ?1 OR id < (SELECT id FROM snapshots ORDER BY id DESC LIMIT 1 OFFSET ?3))
                AND id NOT IN (SELECT snapshot_id FROM rollbacks)",
            "DELETE FROM intents WHERE snapshot_id IN (SELECT id FROM temp.trimmed)",
            "DELETE FROM snapshot_states WHERE snapshot_id IN (SELECT id FROM temp.trimmed)",
            "DELETE FROM snapshots WHERE id IN (SELECT id FROM temp.trimmed)",
            "UPDATE history SET trimmed_at = ?4",
        ];
        let mut removed = 0;
        for sql in statements {
            let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
            let n = stmt.parameter_count();
            let all = [cutoff, failures, offset, ts(now)];
            removed += stmt
                .execute(rusqlite::params_from_iter(&all[..n]))
                .map_err(|e| self.err(e))?;
        }
        Ok(removed)
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
