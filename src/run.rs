//! The executor: every command that changes LVM goes through [`Engine::exec`], recorded in the
//! catalog's event log; every catalog write through [`Engine::record`] (one transaction, or
//! nothing in a dry run); [`Engine::survey`] takes the one inventory and reconciles it with the
//! catalog. What to do lives elsewhere: the snapshot cycle in `cycle`, backups,
//! mounts, restores and rollbacks in their modules.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::catalog::{Catalog, CatalogError};
use crate::config::Config;
use crate::hooks;
use crate::lvm::{self, commands, Inventory, Invocation, LvmError, Runner};
use crate::reconcile::{reconcile, Fleet};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lvm(#[from] LvmError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// What was asked could not be done when it was tried (no room in the volume group, a
    /// volume gone, a mount or an unpack that failed): a failure, exit 1.
    #[error("{0}")]
    Refused(String),
    /// What was asked cannot be done as asked (a name that fits nothing or several things, a
    /// path through a link): bad input, exit 2, nothing changed.
    #[error("{0}")]
    BadRequest(String),
}

/// Runs commands, logs them, records them in the catalog, and keeps the VG figures current.
pub struct Engine<'a> {
    pub config: &'a Config,
    pub runner: &'a dyn Runner,
    pub catalog: &'a mut Catalog,
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    /// Whether commands are written to the catalog's event log (not for read-only catalogs).
    pub record_events: bool,
    commands: usize,
    pending: Vec<PendingEvent>,
}

/// A command's event, written with the next catalog write.
struct PendingEvent {
    argv: Vec<String>,
    status: i32,
    duration: std::time::Duration,
    stderr: String,
}

impl<'a> Engine<'a> {
    pub fn new(
        config: &'a Config,
        runner: &'a dyn Runner,
        catalog: &'a mut Catalog,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Self {
        Engine {
            config,
            runner,
            catalog,
            now,
            dry_run,
            record_events: !dry_run,
            commands: 0,
            pending: Vec::new(),
        }
    }

    /// Runs one command, records it, and fails on a non-zero status.
    ///
    /// # Errors
    /// The command could not run or exited non-zero; or the catalog could not record it.
    pub fn exec(&mut self, inv: &Invocation) -> Result<lvm::Completed, RunError> {
        let done = self.runner.run(inv);
        self.outcome(inv, done)
    }

    /// Counts and records a command that ran, and fails on a non-zero status.
    fn outcome(
        &mut self,
        inv: &Invocation,
        done: Result<lvm::Completed, lvm::LvmError>,
    ) -> Result<lvm::Completed, RunError> {
        self.commands += 1;
        let done = done?;
        if self.record_events {
            self.pending.push(PendingEvent {
                argv: inv.argv(),
                status: done.status,
                duration: done.duration,
                stderr: done.stderr.clone(),
            });
        }
        lvm::check(inv, &done)?;
        Ok(done)
    }

    /// Runs `invs` at the same time, each in its own thread, and gives each one's outcome in
    /// order. For a snapshot set: LVM serialises the commands on its volume group lock, but
    /// each one's start-up and device scan overlap the one before, which shortens the window
    /// in which the set's filesystems are frozen (BENCHMARKS.md).
    pub fn exec_all(&mut self, invs: &[&Invocation]) -> Vec<Result<lvm::Completed, RunError>> {
        let runner = self.runner;
        let ran: Vec<Result<lvm::Completed, lvm::LvmError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = invs
                .iter()
                .map(|inv| scope.spawn(move || runner.run(inv)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        invs.iter()
            .zip(ran)
            .map(|(inv, done)| self.outcome(inv, done))
            .collect()
    }

    /// Writes `f`'s records together with the events of the commands run since the last write,
    /// in one transaction: one sync per outcome.
    ///
    /// # Errors
    /// The catalog failed.
    pub fn record<R>(
        &mut self,
        f: impl FnOnce(&Catalog) -> Result<R, CatalogError>,
    ) -> Result<R, RunError> {
        let events = std::mem::take(&mut self.pending);
        let now = self.now;
        Ok(self.catalog.batch(|c| {
            for e in &events {
                c.record_event(now, &e.argv, e.status, e.duration, &e.stderr)?;
            }
            f(c)
        })?)
    }

    /// Writes events still pending (those of a command that changed nothing).
    ///
    /// # Errors
    /// The catalog failed.
    pub fn flush(&mut self) -> Result<(), RunError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.record(|_| Ok(()))
    }

    /// The one `lvs` call of a run.
    ///
    /// # Errors
    /// lvs failed or printed something unreadable.
    pub fn inventory(&mut self) -> Result<Inventory, RunError> {
        let done = self.exec(&commands::inventory())?;
        Ok(lvm::parse_lvs(&done.stdout).map_err(LvmError::from)?)
    }

    /// Inventory and reconciliation, the start of every command that looks at snapshots.
    ///
    /// # Errors
    /// lvs or the catalog failed.
    pub fn survey(&mut self) -> Result<(Inventory, Fleet), RunError> {
        let inv = self.inventory()?;
        let (now, dry_run) = (self.now, self.dry_run);
        let mut fleet = if dry_run {
            reconcile(self.catalog, &inv, now, true)?
        } else {
            self.record(|c| reconcile(c, &inv, now, false))?
        };
        // The bases of replication as configured now: a policy renamed, a replicate table
        // removed or a target changed pins nothing any more.
        let bases: std::collections::HashSet<(String, String)> = self
            .catalog
            .replica_bases()?
            .into_iter()
            .filter(|b| {
                self.config
                    .policy(&b.policy)
                    .and_then(|p| p.replicate.as_ref())
                    .is_some_and(|r| r.target() == b.target)
            })
            .map(|b| (b.vg, b.snapshot))
            .collect();
        for m in fleet.managed_mut() {
            m.replica_base = bases.contains(&(m.record.vg.clone(), m.record.name.clone()));
        }
        for note in &fleet.notes {
            info!(note = %note, "reconciled");
        }
        for lv in &fleet.strays {
            warn!(snapshot = %lv.path(), "carries lvsnap's tag but has no catalog record; left alone (lvsnap catalog rebuild adopts it)");
        }
        Ok((inv, fleet))
    }

    /// Hooks go into the event log with the LVM commands.
    pub fn record_hook(&mut self, run: &hooks::HookRun) {
        if self.record_events {
            self.pending.push(PendingEvent {
                argv: run.command(),
                status: run.status.unwrap_or(-9),
                duration: run.duration,
                stderr: run.stderr.clone(),
            });
        }
    }

    /// How many LVM commands ran so far.
    pub fn commands_run(&self) -> usize {
        self.commands
    }
}
