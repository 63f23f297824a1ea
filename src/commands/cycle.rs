//! `run`, `prune` and `plan`: one code path, the snapshot cycle (take what is due, prune,
//! extend, then the backups that are due), with the run recorded and the metrics written.

use chrono::{DateTime, Duration, Utc};
use clap::Args;

use super::{parse_time, run_status, Ctx};
use crate::backup::{BackupOptions, BackupReport, Outcome};
use crate::catalog::Catalog;
use crate::cycle::{Options, Space};
use crate::error::{exit, Error};
use crate::report;
use crate::status;
use crate::units::utc;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these policies (repeatable; default: all).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Vec<String>,
    /// Show what would be done; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Act as if the clock said TIME (RFC 3339): "what would happen at T".
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Prune even when more than max-remove-percent of a group would go at once.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `lvsnap run`: take a snapshot of every due group, prune, extend; then the due backups.
///
/// # Errors
/// Bad arguments (`--now` ahead of the clock), or as [`cycle`].
pub fn run(ctx: &mut Ctx<'_>, a: &RunArgs) -> Result<i32, Error> {
    if let Some(at) = a.now {
        // Snapshots taken "in the future" would hold off every scheduled one until that date.
        if at > ctx.now + Duration::seconds(60) && !a.dry_run {
            return Err(Error::Usage(format!(
                "--now {} is ahead of the clock ({}): the snapshots would be dated in the future; use --now with --dry-run to see the plan for that time",
                utc(at),
                utc(ctx.now)
            )));
        }
        ctx.now = at;
    }
    if ctx.config.policies.is_empty() {
        let note = super::setup::no_policy_yet(&ctx.config.source);
        // A fresh install has nothing to do; a host whose policies were all removed may still
        // have an interrupted backup or rollback for the cycle to finish.
        if !ctx.config.settings.catalog.exists() {
            if a.json {
                let r = crate::cycle::RunReport {
                    dry_run: a.dry_run,
                    notes: vec![note],
                    ..Default::default()
                };
                writeln!(ctx.out, "{}", report::run_json(&r))?;
            } else {
                writeln!(ctx.out, "{note}")?;
            }
            return Ok(exit::OK);
        }
        if !a.json {
            writeln!(ctx.out, "{note}")?;
        }
    }
    let opts = options(ctx, &a.policy, a.dry_run, a.force, true);
    cycle(ctx, &opts, a.json, a.dry_run)
}

/// `lvsnap prune`: the cycle without new snapshots.
///
/// # Errors
/// As [`cycle`].
pub fn prune(ctx: &mut Ctx<'_>, a: &PruneArgs) -> Result<i32, Error> {
    let opts = options(ctx, &a.policy, a.dry_run, a.force, false);
    cycle(ctx, &opts, a.json, a.dry_run)
}

/// `lvsnap plan`: a dry run that shows every verdict.
///
/// # Errors
/// As [`cycle`].
pub fn plan(ctx: &mut Ctx<'_>, a: &PlanArgs) -> Result<i32, Error> {
    if let Some(at) = a.now {
        ctx.now = at;
    }
    let opts = options(ctx, &a.policy, true, false, true);
    cycle(ctx, &opts, a.json, true)
}

fn options(
    ctx: &Ctx<'_>,
    policies: &[String],
    dry_run: bool,
    force: bool,
    snapshot: bool,
) -> Options {
    Options {
        policies: policies.to_vec(),
        dry_run,
        force,
        snapshot,
        prune: true,
        cancel: Some(ctx.cancel.clone()),
    }
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only these policies (repeatable; default: all).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Vec<String>,
    /// Show what would be removed; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Remove even when more than max-remove-percent of a group would go at once.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Only these policies (repeatable; default: all).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Vec<String>,
    /// Plan as if the clock said TIME (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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
    let mut engine = ctx.engine(&mut catalog, opts.dry_run);
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
    let openings = if opts.snapshot {
        engine.open_ahead(&opts.policies, true)
    } else {
        Default::default()
    };
    let mut report = engine.run(opts)?;
    report.notes.splice(0..0, resumed);
    let backups = if opts.snapshot && !report.interrupted {
        let (inv, mut fleet) = (&report.inventory, std::mem::take(&mut report.fleet));
        let mut space = Space::from(inv);
        let b = engine.backups(
            &BackupOptions {
                policies: &opts.policies,
                volume: None,
                due_only: true,
                force: opts.force,
                cancel: &ctx.cancel,
                progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                lock: held.as_ref(),
                openings: Some(&openings),
            },
            inv,
            &mut fleet,
            &mut space,
        )?;
        engine.flush()?;
        report.fleet = fleet;
        Some(b)
    } else {
        None
    };
    // Replication last: its streams may be long, and run without the lock.
    let replicated = match &held {
        Some(held)
            if opts.snapshot
                && !report.interrupted
                && !ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            drop(engine);
            let done = super::replication::pass(
                ctx,
                &super::replication::Pass {
                    policies: &opts.policies,
                    full: false,
                    force: opts.force,
                    due_only: true,
                    dry_run: false,
                    held,
                },
            )?;
            // Taken back for the run's record and the metrics.
            held.reacquire()?;
            // A run tells what it did, not each volume that was not due.
            done.into_iter()
                .filter(|v| {
                    !matches!(
                        v.sent,
                        super::replication::Sent::UpToDate { .. }
                            | super::replication::Sent::Skipped(_)
                    ) || !v.removed.is_empty()
                        || !v.errors.is_empty()
                })
                .collect()
        }
        _ => Vec::new(),
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
            .chain(replicated.iter().filter_map(|v| {
                let failed = match &v.sent {
                    super::replication::Sent::Failed(why) => Some(format!("replicate: {why}")),
                    super::replication::Sent::Done { .. } if !v.errors.is_empty() => {
                        Some(format!("replicate: {}", v.errors.join("; ")))
                    }
                    super::replication::Sent::Done { .. } => None,
                    _ => return None,
                };
                Some((format!("{}/replicate", v.policy), v.volume.clone(), failed))
            }))
            .collect();
        catalog.batch(|c| c.record_run(ctx.now, started.elapsed(), &groups))?;
        // Housekeeping after the work is done: a failure here is worth a warning, not a run
        // reported failed.
        let s = &ctx.config.settings;
        match catalog
            .batch(|c| c.trim_history(ctx.now, s.history, s.failure_history, s.history_rows))
        {
            // Many rows at once (the first trims after an upgrade, history-days lowered): give
            // the space back and fold the write-ahead log so that neither stays large.
            Ok(n) if n > 1000 => {
                if let Err(e) = catalog.compact() {
                    tracing::warn!("the catalog could not be compacted: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("the catalog's history could not be trimmed: {e}"),
        }
        write_metrics(ctx, &catalog, &report.fleet, &report.inventory)?;
    }
    let backups = backups.filter(|b| !b.volumes.is_empty() || !b.notes.is_empty());
    if json {
        let mut v = report::run_json(&report);
        if let (Some(b), Some(obj)) = (&backups, v.as_object_mut()) {
            obj.insert("backups".to_owned(), report::backups::report_json(b));
        }
        if let (false, Some(obj)) = (replicated.is_empty(), v.as_object_mut()) {
            obj.insert(
                "replication".to_owned(),
                super::replication::report_json(&replicated),
            );
        }
        writeln!(ctx.out, "{v}")?;
    } else {
        report::run_text(ctx.out, &report, detail, ctx.config.settings.timezone)?;
        if let Some(b) = &backups {
            report::backups::write_report(ctx.out, b, false)?;
        }
        super::replication::write_report(ctx.out, &replicated)?;
    }
    if replicated
        .iter()
        .any(super::replication::VolumeReplication::failed)
    {
        return Ok(exit::FAILED);
    }
    if backups.as_ref().is_some_and(BackupReport::failed) {
        return Ok(exit::FAILED);
    }
    if stuck {
        return Ok(exit::FAILED);
    }
    Ok(run_status(&report))
}

/// The daemon's space poll: one inventory, and space pressure relieved as a run would first
/// (nothing else). Does nothing when no policy sets an emergency threshold.
///
/// # Errors
/// The lock, the inventory or the catalog failed.
pub fn relieve(ctx: &mut Ctx<'_>) -> Result<crate::pressure::Relief, Error> {
    if !crate::pressure::watched(ctx.config) {
        return Ok(crate::pressure::Relief::default());
    }
    ctx.tools()?;
    let _held = ctx.hold()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = ctx.engine(&mut catalog, false);
    let (inv, mut fleet) = engine.survey()?;
    let (relief, _) = engine.relieve(inv, &mut fleet, &[])?;
    engine.flush()?;
    if !relief.removed.is_empty() {
        let (inv, fleet) = engine.survey()?;
        write_metrics(ctx, &catalog, &fleet, &inv)?;
    }
    Ok(relief)
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
    let mut states = status::groups(
        ctx.config,
        fleet,
        &catalog.group_results()?,
        &catalog.backups(None)?,
        ctx.now,
    );
    let since = ctx.now - chrono::Duration::hours(status::SPACE_WARNING_HOURS);
    status::note_space_removals(&mut states, &catalog.removed_for_space(since, ctx.now)?);
    status::note_replicas(&mut states, ctx.config, &catalog.replicas()?);
    let mut cap = status::capacity(ctx.config, inv);
    cap.stalls = catalog.space_stalls()?;
    let text = status::metrics(&states, &cap, &catalog.run_totals()?, ctx.now);
    // The snapshots are taken by now: a metrics file that cannot be written is worth a warning,
    // not a failed run.
    if let Err(e) = status::write_atomically(path, &text) {
        tracing::warn!(path = %path.display(), "cannot write the metrics file: {e}");
    }
    Ok(())
}
