//! The commands behind the CLI, one file per area: each command is a function that takes the
//! context ([`Ctx`]: configuration, LVM runner, clock, output) and its own arguments struct
//! (defined beside it, parsed by clap), works through the domain modules, and hands what it
//! found to a renderer in [`crate::report`]. Tests drive them with the fake LVM and a fixed
//! clock.

use std::io::{BufRead, IsTerminal, Write};

use chrono::{DateTime, Duration, Utc};

use crate::catalog::Catalog;
use crate::config::{Config, Span};
use crate::cycle::RunReport;
use crate::error::{exit, Error};
use crate::lock;
use crate::lvm::Runner;
use crate::reconcile::Fleet;
use crate::run::Engine;

pub mod backup;
pub mod catalog;
pub mod config;
pub mod cycle;
pub mod replicate;
pub mod replication;
pub mod restore;
pub mod rollback;
mod rollback_set;
mod set_access;
pub mod setup;
pub mod snapshots;

/// What every snapshot command works with.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub runner: &'a dyn Runner,
    pub now: DateTime<Utc>,
    pub out: &'a mut dyn Write,
    /// Set by SIGTERM/SIGINT: a backup in progress stops and is cleaned up.
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<'a> Ctx<'a> {
    /// The executor over `catalog`, with this context's configuration, LVM and clock.
    pub(crate) fn engine<'c>(&self, catalog: &'c mut Catalog, dry_run: bool) -> Engine<'c>
    where
        'a: 'c,
    {
        Engine::new(self.config, self.runner, catalog, self.now, dry_run)
    }

    /// The lock, for a command that may let go of it during a backup's copy.
    pub(crate) fn hold(&self) -> Result<lock::Held, Error> {
        let s = &self.config.settings;
        Ok(lock::Held::acquire(&s.runtime_dir, self.lock_timeout())?)
    }

    pub(crate) fn lock(&self) -> Result<lock::LockGuard, Error> {
        let s = &self.config.settings;
        Ok(lock::acquire(&s.runtime_dir, self.lock_timeout())?)
    }

    fn lock_timeout(&self) -> std::time::Duration {
        self.config
            .settings
            .lock_timeout
            .to_std()
            .unwrap_or_default()
    }

    /// The LVM tools, checked once at start-up: a missing lvm2 stops here, before any change.
    pub(crate) fn tools(&self) -> Result<(), Error> {
        Ok(self.runner.check_tools()?)
    }

    /// The catalog; opened for writing, it is checked whole first, so that a damaged one stops
    /// a changing command before it changes anything.
    pub(crate) fn catalog(&self, write: bool) -> Result<Catalog, Error> {
        let path = &self.config.settings.catalog;
        let opened = if write {
            Catalog::open(path)
        } else {
            Catalog::open_read(path)
        };
        // Found before anything changed: refused like bad input (exit 2), with the recovery.
        opened.map_err(|e| match e {
            e if e.is_damaged() => Error::Usage(e.to_string()),
            e => e.into(),
        })
    }

    /// The catalog for a reading command that can also answer from LVM alone: a damaged one is
    /// replaced by an empty one, with the message saying so.
    pub(crate) fn catalog_or_lvm_only(&self) -> Result<(Catalog, Option<String>), Error> {
        match Catalog::open_read(&self.config.settings.catalog) {
            Ok(c) => Ok((c, None)),
            Err(e) if e.is_damaged() => Ok((
                Catalog::in_memory()?,
                Some(format!(
                    "{}; showing what LVM alone knows: lvsnap's snapshots appear as not in the catalog, backups are not listed",
                    e.to_string().lines().next().unwrap_or_default()
                )),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn check_policies(&self, names: &[String]) -> Result<(), Error> {
        names.iter().try_for_each(|n| {
            self.config
                .require_policy(n)
                .map(|_| ())
                .map_err(Error::Usage)
        })
    }
}

/// The exit status of a run: 0 all done, 1 a group failed, 3 a guard held pruning back.
pub fn run_status(r: &RunReport) -> i32 {
    if r.failed() {
        exit::FAILED
    } else if r.held_back() {
        exit::HELD_BACK
    } else {
        exit::OK
    }
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; write an RFC 3339 time such as 2026-03-01T00:00:00Z"))
}

pub(crate) fn parse_interval(s: &str) -> Result<Duration, String> {
    let span: Span = s.parse()?;
    match span.fixed() {
        Some(d) if d > Duration::zero() => Ok(d),
        Some(_) => Err("the interval must be longer than zero".to_owned()),
        None => Err("use a fixed interval (s, min, h), such as 15min or 1h".to_owned()),
    }
}

pub(crate) fn parse_window(s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let (a, b) = s.split_once("..").ok_or("write the window as START..END")?;
    let (a, b) = (parse_time(a)?, parse_time(b)?);
    if b <= a {
        return Err(format!("the window ends ({b}) before it starts ({a})"));
    }
    Ok((a, b))
}

/// Asks on the terminal; without one, only `--yes` agrees.
pub(crate) fn confirm(
    out: &mut dyn Write,
    yes: bool,
    what: &str,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<bool, Error> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{what}? no terminal to ask on; pass --yes to confirm"
        )));
    }
    write!(out, "{what}? [y/N] ")?;
    out.flush()?;
    // Ctrl-C only sets `cancel` (the command cleans up before it exits), and the read would go
    // on waiting: the terminal is watched and the flag checked in turn.
    let stdin = std::io::stdin();
    loop {
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            writeln!(out)?;
            return Ok(false);
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
    }
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(!cancel.load(std::sync::atomic::Ordering::SeqCst)
        && matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// A pinned snapshot of the origin's current state, taken before something overwrites it; a
/// thick one at least `at_least` bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn guard_snapshot(
    ctx: &mut Ctx<'_>,
    engine: &mut Engine<'_>,
    fleet: &mut Fleet,
    inv: &crate::lvm::Inventory,
    vg: &str,
    lv: &str,
    note: &str,
    at_least: u64,
) -> Result<String, Error> {
    let policy = ctx
        .config
        .policies
        .iter()
        .find(|p| p.volumes.iter().any(|v| v.vg == vg && v.lv == lv))
        .ok_or_else(|| {
            Error::Usage(format!(
                "no policy names {vg}/{lv}, so lvsnap cannot take the guard snapshot it takes before overwriting; add the volume to a policy"
            ))
        })?;
    let volume = policy
        .volumes
        .iter()
        .find(|v| v.vg == vg && v.lv == lv)
        .expect("found above")
        .clone();
    let mut space = crate::cycle::Space::from(inv);
    let how = crate::cycle::Take {
        pin: true,
        note: Some(note),
        at_least,
        beyond_caps: true,
        leaving: 0,
    };
    let name = engine.take(policy, &volume, inv, fleet, &mut space, &how)?;
    writeln!(
        ctx.out,
        "guard snapshot {vg}/{name} taken (pinned; `lvsnap unpin {name}` when no longer needed)"
    )?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_windows_must_run_forward() {
        assert!(parse_window("2026-01-02T00:00:00Z..2026-01-01T00:00:00Z")
            .unwrap_err()
            .contains("before it starts"));
        assert!(parse_window("2026-01-01T00:00:00Z..2026-01-02T00:00:00Z").is_ok());
    }
}
