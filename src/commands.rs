//! The snapshot commands behind the CLI: each takes what it needs (configuration, LVM runner,
//! clock, output) as arguments, so tests drive them with the fake LVM and a fixed clock.

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::backup::commands as backup_commands;
use crate::backup::{BackupOptions, BackupReport, Outcome};
use crate::catalog::{Catalog, NewSnapshot, State};
use crate::config::Config;
use crate::error::{exit, Error};
use crate::lock;
use crate::lvm::{commands, Runner};
use crate::reconcile::{Managed, PINNED_TAG, POLICY_TAG, TIME_TAG};
use crate::report::{self, ListRow};
use crate::run::{Engine, Options, RunReport, Space};
use crate::status;

/// What every snapshot command works with.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub runner: &'a dyn Runner,
    pub now: DateTime<Utc>,
    pub out: &'a mut dyn Write,
    /// Set by SIGTERM/SIGINT: a backup in progress stops and is cleaned up.
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Ctx<'_> {
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

    fn check_policies(&self, names: &[String]) -> Result<(), Error> {
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

/// `run`, `prune` and `plan`: one code path; `plan` is a dry run that shows every verdict.
///
/// # Errors
/// Bad arguments, the lock, the inventory or the catalog failed.
pub fn cycle(ctx: &mut Ctx<'_>, opts: &Options, json: bool, detail: bool) -> Result<i32, Error> {
    ctx.check_policies(&opts.policies)?;
    ctx.tools()?;
    let held = if opts.dry_run {
        None
    } else {
        Some(ctx.hold()?)
    };
    let mut catalog = ctx.catalog(!opts.dry_run)?;
    let started = std::time::Instant::now();
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, opts.dry_run);
    // A rollback a crash interrupted is finished first: until then VG/LV may not exist.
    let resumed = if opts.dry_run {
        Vec::new()
    } else {
        crate::restore::rollback::resume_swaps(&mut engine, ctx.now)?
    };
    // A rollback that cannot go on fails the run (after the snapshots of everything else).
    let stuck = !opts.dry_run
        && engine
            .catalog
            .rollbacks(true)?
            .iter()
            .any(|r| r.swap.is_some());
    let mut report = engine.run(opts)?;
    report.notes.splice(0..0, resumed);
    let backups = if opts.snapshot && !report.interrupted {
        let (inv, mut fleet) = (report.inventory.clone(), std::mem::take(&mut report.fleet));
        let mut space = Space::from(&inv);
        let b = engine.backups(
            &BackupOptions {
                policies: &opts.policies,
                volume: None,
                due_only: true,
                force: opts.force,
                cancel: &ctx.cancel,
                progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                lock: held.as_ref(),
            },
            &inv,
            &mut fleet,
            &mut space,
        )?;
        engine.flush()?;
        report.fleet = fleet;
        Some(b)
    } else {
        None
    };
    if !opts.dry_run {
        let groups: Vec<(String, String, Option<String>)> = report
            .groups
            .iter()
            .map(|g| {
                (
                    g.policy.clone(),
                    g.volume.clone(),
                    (!g.errors.is_empty()).then(|| g.errors.join("; ")),
                )
            })
            .chain(backups.iter().flat_map(|b| &b.volumes).filter_map(|v| {
                let failed = match &v.outcome {
                    Outcome::Failed(why) => Some(format!("backup: {why}")),
                    Outcome::Done { skipped, .. } if skipped.values().any(|s| s.loses_data()) => {
                        Some(format!(
                            "backup partial: {} entr(y/ies) not backed up (`lvsnap backups` lists them)",
                            skipped.values().filter(|s| s.loses_data()).count()
                        ))
                    }
                    Outcome::Done { .. } => None,
                    _ => return None,
                };
                Some((format!("{}/backup", v.policy), v.volume.clone(), failed))
            }))
            .collect();
        catalog.record_run(ctx.now, started.elapsed(), &groups)?;
        write_metrics(ctx, &catalog, &report.fleet, &report.inventory)?;
    }
    let backups = backups.filter(|b| !b.volumes.is_empty() || !b.notes.is_empty());
    if json {
        let mut v = report::run_json(&report);
        if let (Some(b), Some(obj)) = (&backups, v.as_object_mut()) {
            obj.insert("backups".to_owned(), backup_commands::report_json(b));
        }
        writeln!(ctx.out, "{v}")?;
    } else {
        report::run_text(ctx.out, &report, detail, ctx.config.settings.timezone)?;
        if let Some(b) = &backups {
            backup_commands::write_report(ctx.out, b, false)?;
        }
    }
    if backups.as_ref().is_some_and(BackupReport::failed) {
        return Ok(exit::FAILED);
    }
    if stuck {
        return Ok(exit::FAILED);
    }
    Ok(run_status(&report))
}

/// Writes the Prometheus textfile, when `settings.metrics-file` names one.
fn write_metrics(
    ctx: &Ctx<'_>,
    catalog: &Catalog,
    fleet: &crate::reconcile::Fleet,
    inv: &crate::lvm::Inventory,
) -> Result<(), Error> {
    let Some(path) = &ctx.config.settings.metrics_file else {
        return Ok(());
    };
    let states = status::groups(
        ctx.config,
        fleet,
        &catalog.group_results()?,
        &catalog.backups(None)?,
        ctx.now,
    );
    let text = status::metrics(
        &states,
        &status::capacity(ctx.config, inv),
        &catalog.run_totals()?,
        ctx.now,
    );
    // The snapshots are taken by now: a metrics file that cannot be written is worth a warning,
    // not a failed run.
    if let Err(e) = status::write_atomically(path, &text) {
        tracing::warn!(path = %path.display(), "cannot write the metrics file: {e}");
    }
    Ok(())
}

/// `status [--json]`: per group, the newest snapshot and its age, the next scheduled time, count
/// and space, the last error; volume group and pool fill.
///
/// # Errors
/// Inventory or catalog failure.
pub fn status(ctx: &mut Ctx<'_>, json: bool) -> Result<i32, Error> {
    let (states, cap, damaged) = survey_states(ctx)?;
    if let Some(d) = &damaged {
        warn_damaged(ctx, d, json)?;
    }
    if json {
        let groups: Vec<_> = states
            .iter()
            .map(|g| {
                serde_json::json!({
                    "policy": g.policy, "volume": g.volume, "snapshots": g.count,
                    "newest": g.newest.as_ref().map(|(n, _)| n), "newest_time": g.newest.as_ref().map(|(_, t)| report::utc(*t)),
                    "newest_age_seconds": g.newest.as_ref().map(|(_, t)| (ctx.now - *t).num_seconds()),
                    "next": g.next.map(report::utc), "bytes": g.bytes, "max_fill_percent": g.max_fill, "invalid": g.invalid,
                    "last_run": g.last.as_ref().map(|r| report::utc(r.at)), "last_error": g.last.as_ref().and_then(|r| r.error.clone()),
                    "rollback_pending": g.merging,
                    "newest_backup": g.backup.as_ref().and_then(|(n, _)| n.as_ref().map(|(l, _)| l)),
                    "future": g.future.iter().map(|(n, t)| serde_json::json!({"name": n, "time": report::utc(*t)})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let vgs: Vec<_> = cap
            .vgs
            .iter()
            .map(|(n, size, free)| serde_json::json!({"vg": n, "size": size, "free": free}))
            .collect();
        let pools: Vec<_> = cap.pools.iter().map(|(p, d, m)| serde_json::json!({"pool": p, "data_percent": d, "metadata_percent": m})).collect();
        writeln!(
            ctx.out,
            "{}",
            serde_json::json!({"groups": groups, "volume_groups": vgs, "pools": pools})
        )?;
        return Ok(exit::OK);
    }
    let tz = ctx.config.settings.timezone;
    for g in &states {
        writeln!(ctx.out, "{} {}", g.policy, g.volume)?;
        match &g.newest {
            Some((name, t)) => writeln!(
                ctx.out,
                "  newest    {name}, {} ({})",
                report::local(*t, tz),
                report::age(*t, ctx.now)
            )?,
            None => writeln!(ctx.out, "  newest    none yet")?,
        }
        for (name, t) in &g.future {
            writeln!(
                ctx.out,
                "  FUTURE    {name}, dated {}: in the future — check the clock; kept, not counted as fresh",
                report::local(*t, tz)
            )?;
        }
        if let Some(next) = g.next {
            writeln!(ctx.out, "  next      {}", report::local(next, tz))?;
        }
        let fill = g
            .max_fill
            .map(|f| format!(", fullest {f:.0}%"))
            .unwrap_or_default();
        writeln!(
            ctx.out,
            "  snapshots {} ({} copy-on-write{fill}{})",
            g.count,
            report::format_size(g.bytes),
            if g.invalid > 0 {
                format!(", {} invalid", g.invalid)
            } else {
                String::new()
            }
        )?;
        match &g.last {
            Some(r) if r.ok => writeln!(ctx.out, "  last run  {} ok", report::local(r.at, tz))?,
            Some(r) => writeln!(
                ctx.out,
                "  last run  {} FAILED: {}",
                report::local(r.at, tz),
                r.error.as_deref().unwrap_or("?")
            )?,
            None => writeln!(ctx.out, "  last run  never")?,
        }
        if let Some(name) = &g.merging {
            writeln!(
                ctx.out,
                "  rollback  PENDING: {name} merges into {} at its next activation (pruning and backups wait)",
                g.volume
            )?;
        }
        if let Some((newest, next)) = &g.backup {
            let newest = newest.as_ref().map_or("none yet".to_owned(), |(label, t)| {
                format!("{label} ({})", report::age(*t, ctx.now))
            });
            let next = next
                .map(|n| format!(", next {}", report::local(n, tz)))
                .unwrap_or_default();
            writeln!(ctx.out, "  backup    {newest}{next}")?;
        }
    }
    for (vg, size, free) in &cap.vgs {
        writeln!(
            ctx.out,
            "volume group {vg}: {} free of {} ({:.0}% used)",
            report::format_size(*free),
            report::format_size(*size),
            100.0 - *free as f64 * 100.0 / (*size).max(1) as f64
        )?;
    }
    for (pool, data, meta) in &cap.pools {
        writeln!(
            ctx.out,
            "thin pool {pool}: data {data:.1}%, metadata {meta:.1}%"
        )?;
    }
    Ok(exit::OK)
}

/// The groups' states and the space, and a warning when the catalog is damaged (they are then
/// what LVM alone tells).
fn survey_states(
    ctx: &mut Ctx<'_>,
) -> Result<(Vec<status::GroupState>, status::Capacity, Option<String>), Error> {
    ctx.tools()?;
    let (mut catalog, damaged) = ctx.catalog_or_lvm_only()?;
    let results = catalog.group_results()?;
    let backups = catalog.backups(None)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, true);
    let (inv, fleet) = engine.survey()?;
    Ok((
        status::groups(ctx.config, &fleet, &results, &backups, ctx.now),
        status::capacity(ctx.config, &inv),
        damaged,
    ))
}

/// A damaged catalog, said first: on the output for a person, on stderr beside JSON.
fn warn_damaged(ctx: &mut Ctx<'_>, why: &str, json: bool) -> Result<(), Error> {
    if json {
        eprintln!("lvsnap: warning: {why}");
    } else {
        writeln!(ctx.out, "WARNING: {why}\n")?;
    }
    Ok(())
}

/// `check`: a Nagios/Icinga plugin. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, with one line
/// and perfdata.
pub fn check(ctx: &mut Ctx<'_>, t: status::Thresholds) -> i32 {
    match survey_states(ctx) {
        Ok((_, _, Some(damaged))) => {
            let _ = writeln!(ctx.out, "LVSNAP CRITICAL - {damaged}");
            status::Level::Critical as i32
        }
        Ok((states, cap, None)) => {
            let (level, line) = status::check(ctx.config, &states, &cap, ctx.now, t);
            // A name swap a crash interrupted may have left no VG/LV at all.
            let interrupted = ctx
                .catalog(false)
                .ok()
                .and_then(|c| c.rollbacks(true).ok())
                .and_then(|rs| rs.into_iter().find(|r| r.swap.is_some()));
            if let Some(r) = interrupted {
                let rest = line.split_once(" - ").map_or(line.as_str(), |(_, r)| r);
                let _ = writeln!(
                    ctx.out,
                    "LVSNAP CRITICAL - the rollback of {}/{} to {} was interrupted ({}/{} may be missing): run `lvsnap rollback --resume`; {rest}",
                    r.vg, r.origin, r.snapshot, r.vg, r.origin
                );
                return status::Level::Critical as i32;
            }
            let _ = writeln!(ctx.out, "{line}");
            level as i32
        }
        Err(e) => {
            let _ = writeln!(
                ctx.out,
                "LVSNAP UNKNOWN - {}",
                e.to_string().lines().next().unwrap_or("error")
            );
            status::Level::Unknown as i32
        }
    }
}

/// `snapshot POLICY [--volume V] [--pin] [--note TEXT]`: one snapshot now, due or not.
///
/// # Errors
/// Unknown policy or volume; lock, inventory or catalog failure.
pub fn snapshot(
    ctx: &mut Ctx<'_>,
    policy: &str,
    volume: Option<&str>,
    pin: bool,
    note: Option<&str>,
) -> Result<i32, Error> {
    let policy = ctx.config.require_policy(policy).map_err(Error::Usage)?;
    let volumes: Vec<_> = match volume {
        Some(v) => {
            let found = policy
                .volumes
                .iter()
                .find(|x| x.to_string() == v || x.lv == v);
            let names: Vec<String> = policy.volumes.iter().map(ToString::to_string).collect();
            vec![found.ok_or_else(|| {
                Error::Usage(format!(
                    "policy \"{}\" has no volume {v:?} (its volumes: {})",
                    policy.name,
                    names.join(", ")
                ))
            })?]
        }
        None => policy.volumes.iter().collect(),
    };
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, false);
    let (inv, mut fleet) = engine.survey()?;
    let mut space = Space::from(&inv);
    let mut status = exit::OK;
    for v in volumes {
        let how = crate::run::Take {
            pin,
            note,
            at_least: 0,
        };
        match engine.take(policy, v, &inv, &mut fleet, &mut space, &how) {
            Ok(name) => writeln!(
                ctx.out,
                "{} {v}: created {name}{}",
                policy.name,
                if pin { " (pinned)" } else { "" }
            )?,
            Err(e) => {
                writeln!(ctx.out, "{} {v}: error: {e}", policy.name)?;
                status = exit::FAILED;
            }
        }
    }
    engine.flush()?;
    Ok(status)
}

/// `list [--policy P] [--json]`.
///
/// # Errors
/// Inventory or catalog failure.
pub fn list(ctx: &mut Ctx<'_>, policy: Option<&str>, json: bool) -> Result<i32, Error> {
    if let Some(p) = policy {
        ctx.config.require_policy(p).map_err(Error::Usage)?;
    }
    let (mut catalog, damaged) = ctx.catalog_or_lvm_only()?;
    if let Some(d) = &damaged {
        warn_damaged(ctx, d, json)?;
    }
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, true);
    let (inv, fleet) = engine.survey()?;
    let mut rows = Vec::new();
    for p in ctx
        .config
        .policies
        .iter()
        .filter(|p| policy.is_none_or(|n| n == p.name))
    {
        for v in &p.volumes {
            let (members, plan) = engine.plan_group(p, v, &fleet);
            let views: Vec<_> = members.iter().map(|m| m.view()).collect();
            for d in &plan.decisions {
                let why = if d.keep {
                    d.reasons.to_string()
                } else {
                    plan.explain_removal(d, &views, &p.into()).join("; ")
                };
                rows.push(row(members[d.index], d.keep, why));
            }
        }
    }
    // A backup's temporary snapshot is no member of its group (the backup removes it); it is
    // listed all the same, so that one a crash left behind is seen until the next run removes it.
    rows.extend(
        fleet
            .managed
            .iter()
            .filter(|m| m.record.is_temporary())
            .filter(|m| policy.is_none_or(|n| n == m.record.policy))
            .map(|m| {
                row(
                    m,
                    true,
                    "temporary, for a backup: removed when the backup ends, or by the next run"
                        .to_owned(),
                )
            }),
    );
    if policy.is_none() {
        // Snapshots of volumes no policy names any more: managed, never pruned.
        let covered = |m: &Managed| {
            ctx.config.policies.iter().any(|p| {
                p.volumes
                    .iter()
                    .any(|v| v.vg == m.record.vg && v.lv == m.record.origin)
            })
        };
        rows.extend(
            fleet
                .managed
                .iter()
                .filter(|m| !covered(m) && !m.record.is_temporary())
                .map(|m| row(m, true, "no policy names its origin any more".to_owned())),
        );
    }
    rows.sort_by(|a, b| {
        (&a.vg, &a.origin, a.time, &a.name).cmp(&(&b.vg, &b.origin, b.time, &b.name))
    });
    let strays: Vec<String> = fleet.strays.iter().map(|l| l.path()).collect();
    if json {
        writeln!(ctx.out, "{}", report::list_json(&rows, &strays))?;
    } else {
        report::list_text(
            ctx.out,
            &rows,
            &strays,
            ctx.now,
            ctx.config.settings.timezone,
        )?;
        if catalog.restores(1)?.len() + catalog.rollbacks(false)?.len() > 0 {
            writeln!(
                ctx.out,
                "\nrecent restores and rollbacks (all: lvsnap catalog history):"
            )?;
            crate::restore::commands::history_text(
                ctx.out,
                &catalog,
                Some(&inv),
                5,
                ctx.config.settings.timezone,
            )?;
        }
    }
    Ok(exit::OK)
}

fn row(m: &Managed, keep: bool, why: String) -> ListRow {
    let merging = m.lv.as_ref().is_some_and(|l| l.merging);
    ListRow {
        name: m.record.name.clone(),
        vg: m.record.vg.clone(),
        origin: m.record.origin.clone(),
        policy: m.record.policy.clone(),
        time: m.record.time,
        thin: m.record.thin,
        size: m.lv.as_ref().map_or(m.record.size, |l| l.size),
        fill: m.lv.as_ref().and_then(|l| l.data_percent),
        state: if merging {
            "merging".to_owned()
        } else {
            m.record.state.as_str().to_owned()
        },
        pinned: m.record.pinned,
        note: m.record.note.clone(),
        why: if merging {
            format!(
                "rollback pending: merges into {}/{} at its next activation",
                m.record.vg, m.record.origin
            )
        } else {
            why
        },
        keep,
    }
}

/// `pin` / `unpin SNAPSHOT`: a pinned snapshot is never pruned. The pin is kept in the catalog
/// and as a tag, so that `catalog rebuild` restores it.
///
/// # Errors
/// The snapshot is not one lvsnap manages; lock, LVM or catalog failure.
pub fn pin(ctx: &mut Ctx<'_>, snapshot: &str, pinned: bool) -> Result<i32, Error> {
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, false);
    let (inv, fleet) = engine.survey()?;
    let m = crate::resolve::snapshot(&fleet, &inv, snapshot)?;
    let inv = if pinned {
        commands::add_tag(&m.record.vg, &m.record.name, PINNED_TAG)
    } else {
        commands::del_tag(&m.record.vg, &m.record.name, PINNED_TAG)
    };
    let (id, now) = (m.record.id, ctx.now);
    let intent = engine.record(|c| c.begin(if pinned { "pin" } else { "unpin" }, id, now))?;
    let result = engine.exec(&inv);
    let ok = result.is_ok();
    engine.record(|c| {
        c.resolve(intent, if ok { "done" } else { "failed" }, now)?;
        if ok {
            c.set_pinned(id, pinned, now)?;
        }
        Ok(())
    })?;
    result?;
    writeln!(
        ctx.out,
        "{}/{} {}",
        m.record.vg,
        m.record.name,
        if pinned {
            "pinned: pruning will keep it"
        } else {
            "unpinned: the keep rules decide again"
        }
    )?;
    Ok(exit::OK)
}

/// `catalog rebuild`: sets a damaged catalog aside, re-creates records for tagged snapshots
/// from their tags, and for committed backup generations from the backup targets.
///
/// # Errors
/// Lock, inventory or catalog failure.
pub fn rebuild(ctx: &mut Ctx<'_>, dry_run: bool) -> Result<i32, Error> {
    let _lock = if dry_run { None } else { Some(ctx.lock()?) };
    let path = ctx.config.settings.catalog.clone();
    // The header first (what a truncation breaks), then every page.
    let damaged = Catalog::open_read(&path)
        .and_then(|c| c.check())
        .is_err_and(|e| e.is_damaged());
    let mut catalog = match (damaged, dry_run) {
        (true, true) => {
            writeln!(
                ctx.out,
                "would set the damaged catalog {} aside and start a new one",
                path.display()
            )?;
            Catalog::in_memory()?
        }
        (true, false) => {
            let aside = Catalog::set_aside(&path, ctx.now).map_err(|e| {
                Error::Usage(format!(
                    "cannot set the damaged catalog {} aside: {e}",
                    path.display()
                ))
            })?;
            writeln!(
                ctx.out,
                "set the damaged catalog aside as {}; a new one is built from LVM and the backup targets",
                aside.display()
            )?;
            ctx.catalog(true)?
        }
        (false, _) => ctx.catalog(!dry_run)?,
    };
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, dry_run);
    let (_, fleet) = engine.survey()?;
    let mut adopted = 0;
    for lv in &fleet.strays {
        let (Some(origin), Some(policy)) = (lv.origin.as_deref(), lv.tag_value(POLICY_TAG)) else {
            writeln!(
                ctx.out,
                "skipped {}: its tags do not name an origin and policy",
                lv.path()
            )?;
            continue;
        };
        let time = lv
            .tag_value(TIME_TAG)
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .unwrap_or(lv.time);
        let new = NewSnapshot {
            vg: &lv.vg,
            name: &lv.name,
            origin,
            policy,
            time,
            thin: lv.kind == crate::lvm::LvKind::ThinSnapshot,
            size: lv.size,
            pinned: lv.has_tag(PINNED_TAG),
            note: None,
        };
        if !dry_run {
            let id = engine.catalog.adopt(&new, &lv.uuid, ctx.now)?;
            if lv.invalid {
                engine.catalog.set_state(
                    id,
                    State::Invalid,
                    Some("invalid when adopted"),
                    ctx.now,
                )?;
            }
        }
        adopted += 1;
        writeln!(
            ctx.out,
            "{} {} (policy {policy}, taken {})",
            if dry_run { "would adopt" } else { "adopted" },
            lv.path(),
            report::utc(time)
        )?;
    }
    if !dry_run {
        engine.flush()?;
    }
    writeln!(
        ctx.out,
        "{adopted} snapshot(s) {}; {} already in the catalog",
        if dry_run { "to adopt" } else { "adopted" },
        fleet.managed.len()
    )?;
    let found = crate::backup::adopt::find_generations(ctx.config, &catalog.backups(None)?);
    for f in &found {
        if !dry_run {
            let new = crate::catalog::NewBackup {
                policy: &f.policy,
                vg: &f.vg,
                origin: &f.origin,
                engine: f.engine,
                dir: &f.dir,
                name: &f.name,
                snapshot: "",
                snapshot_time: f.time,
                temporary: false,
            };
            let written = crate::catalog::Written {
                bytes: f.bytes,
                files: f.files,
                manifest_sha256: &f.manifest_sha256,
                state: if f.partial {
                    crate::catalog::BackupState::Partial
                } else {
                    crate::catalog::BackupState::Complete
                },
                note: f.note.as_deref(),
            };
            catalog.adopt_backup(&new, &written, ctx.now)?;
        }
        writeln!(
            ctx.out,
            "{} backup {} ({}, {} file(s), {}; not verified since: `lvsnap verify {}`)",
            if dry_run { "would adopt" } else { "adopted" },
            f.label(),
            f.engine,
            f.files,
            report::format_size(f.bytes),
            f.label()
        )?;
    }
    writeln!(
        ctx.out,
        "{} backup(s) {}",
        found.len(),
        if dry_run { "to adopt" } else { "adopted" }
    )?;
    Ok(exit::OK)
}

/// `catalog events [--limit N]`: the commands lvsnap ran, newest last.
///
/// # Errors
/// Catalog failure.
pub fn events(ctx: &mut Ctx<'_>, limit: usize, json: bool) -> Result<i32, Error> {
    let catalog = ctx.catalog(false)?;
    let events = catalog.events(limit)?;
    if json {
        let list: Vec<_> = events
            .iter()
            .map(|e| serde_json::json!({"at": report::utc(e.at), "argv": e.argv, "status": e.status, "duration_ms": e.duration_ms, "stderr": e.stderr}))
            .collect();
        writeln!(ctx.out, "{}", serde_json::Value::Array(list))?;
        return Ok(exit::OK);
    }
    for e in events {
        let err = e
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        writeln!(
            ctx.out,
            "{}  exit {:<3} {:>6} ms  {}  {err}",
            report::local(e.at, ctx.config.settings.timezone),
            e.status,
            e.duration_ms,
            e.argv
        )?;
    }
    Ok(exit::OK)
}
