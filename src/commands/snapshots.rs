//! The snapshot commands: `snapshot`, `list`, `pin`/`unpin`, `status` and `check`.

use std::io::Write;

use clap::Args;

use super::Ctx;
use crate::cycle::Space;
use crate::error::{exit, Error};
use crate::lvm::commands;
use crate::reconcile::{Managed, PINNED_TAG};
use crate::report::{self, ListRow};
use crate::status;

/// `status [--json]`: per group, the newest snapshot and its age, the next scheduled time, count
/// and space, the last error; volume group and pool fill.
///
/// # Errors
/// Inventory or catalog failure.
pub fn status(ctx: &mut Ctx<'_>, a: &StatusArgs) -> Result<i32, Error> {
    let json = a.json;
    if ctx.config.policies.is_empty() && !json {
        writeln!(
            ctx.out,
            "no policy yet — `lvsnap init` proposes one for each mounted volume ({} defines none)",
            ctx.config.source.display()
        )?;
        if !ctx.config.settings.catalog.exists() {
            return Ok(exit::OK);
        }
    }
    let (states, cap, damaged) = survey_states(ctx)?;
    if let Some(d) = &damaged {
        warn_damaged(ctx, d, json)?;
    }
    if json {
        writeln!(ctx.out, "{}", report::status::json(&states, &cap, ctx.now))?;
    } else {
        let tz = ctx.config.settings.timezone;
        report::status::text(ctx.out, &states, &cap, ctx.now, tz)?;
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
    let since = ctx.now - chrono::Duration::hours(status::SPACE_WARNING_HOURS);
    let space = catalog.removed_for_space(since, ctx.now)?;
    let catalog_stalls = catalog.space_stalls()?;
    let replicas = catalog.replicas()?;
    let mut engine = ctx.engine(&mut catalog, true);
    let (inv, fleet) = engine.survey()?;
    let mut states = status::groups(ctx.config, &fleet, &results, &backups, ctx.now);
    status::note_space_removals(&mut states, &space);
    status::note_replicas(&mut states, ctx.config, &replicas);
    let mut cap = status::capacity(ctx.config, &inv);
    cap.stalls = catalog_stalls;
    Ok((states, cap, damaged))
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
pub fn check(ctx: &mut Ctx<'_>, a: &CheckArgs) -> i32 {
    let t = status::Thresholds {
        warning_periods: a.warning,
        critical_periods: a.critical.max(a.warning),
    };
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

/// `check` when the policy files cannot be loaded: UNKNOWN, the monitoring convention for a
/// check that cannot judge (not exit 2, which would read as CRITICAL).
///
/// # Errors
/// The output cannot be written.
pub fn check_unconfigured(out: &mut dyn Write, e: &crate::config::LoadError) -> Result<i32, Error> {
    writeln!(
        out,
        "LVSNAP UNKNOWN - {}",
        e.to_string()
            .lines()
            .next()
            .unwrap_or("invalid configuration")
    )?;
    Ok(status::Level::Unknown as i32)
}

/// `snapshot POLICY [--volume V] [--pin] [--note TEXT]`: one snapshot now, due or not.
///
/// # Errors
/// Unknown policy or volume; lock, inventory or catalog failure.
pub fn snapshot(ctx: &mut Ctx<'_>, a: &SnapshotArgs) -> Result<i32, Error> {
    let (policy, volume, pin, note) = (&a.policy, a.volume.as_deref(), a.pin, a.note.as_deref());
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
    let mut engine = ctx.engine(&mut catalog, false);
    let (inv, mut fleet) = engine.survey()?;
    let mut space = Space::from(&inv);
    let mut status = exit::OK;
    if policy.set && volume.is_none() {
        let how = crate::cycle::Take {
            pin,
            note,
            ..crate::cycle::Take::default()
        };
        match engine.take_set(policy, &inv, &mut fleet, &mut space, &how, &[], &[]) {
            Ok(set) => {
                let frozen = set
                    .frozen
                    .map(|f| format!(", frozen {} ms", f.as_millis()))
                    .unwrap_or_default();
                writeln!(
                    ctx.out,
                    "{}: created set {}{}{frozen}",
                    policy.name,
                    set.id,
                    if pin { " (pinned)" } else { "" }
                )?;
                for (v, name) in &set.members {
                    writeln!(ctx.out, "  {v}: {name}")?;
                }
            }
            Err(e) => {
                writeln!(ctx.out, "{}: set failed: {e}", policy.name)?;
                status = exit::FAILED;
            }
        }
        engine.flush()?;
        return Ok(status);
    }
    for v in volumes {
        let how = crate::cycle::Take {
            pin,
            note,
            at_least: 0,
            beyond_caps: false,
            leaving: 0,
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
pub fn list(ctx: &mut Ctx<'_>, a: &ListArgs) -> Result<i32, Error> {
    let (policy, json) = (a.policy.as_deref(), a.json);
    if let Some(p) = policy {
        ctx.config.require_policy(p).map_err(Error::Usage)?;
    }
    let (mut catalog, damaged) = ctx.catalog_or_lvm_only()?;
    if let Some(d) = &damaged {
        warn_damaged(ctx, d, json)?;
    }
    let mut engine = ctx.engine(&mut catalog, true);
    let (inv, fleet) = engine.survey()?;
    let mut rows = Vec::new();
    for p in ctx
        .config
        .policies
        .iter()
        .filter(|p| policy.is_none_or(|n| n == p.name))
    {
        for v in &p.volumes {
            let plan = engine.plan_group(p, v, &fleet, false);
            for d in &plan.decisions {
                let why = if d.keep {
                    d.reasons.to_string()
                } else {
                    plan.why_not[d.index].join("; ")
                };
                rows.push(row(plan.members[d.index], d.keep, why));
            }
        }
    }
    // A backup's temporary snapshot is no member of its group (the backup removes it); it is
    // listed all the same, so that one a crash left behind is seen until the next run removes it.
    rows.extend(
        fleet
            .managed()
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
                .managed()
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
            crate::report::history::history_text(
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
        set: m.record.set.clone(),
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
pub fn pin(ctx: &mut Ctx<'_>, a: &PinArgs, pinned: bool) -> Result<i32, Error> {
    let snapshot = &a.snapshot;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = ctx.engine(&mut catalog, false);
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

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The policy whose volumes to snapshot.
    pub policy: String,
    /// Only this volume (VG/LV or LV) of the policy.
    #[arg(long, value_name = "VOLUME")]
    pub volume: Option<String>,
    /// Pin the snapshot: pruning keeps it until `lvsnap unpin`.
    #[arg(long)]
    pub pin: bool,
    /// A note shown by `lvsnap list`, such as "before the upgrade".
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this policy's volumes.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Schedule periods a snapshot may be late before WARNING.
    #[arg(long, default_value_t = 1, value_name = "PERIODS")]
    pub warning: u32,
    /// Schedule periods a snapshot may be late before CRITICAL.
    #[arg(long, default_value_t = 3, value_name = "PERIODS")]
    pub critical: u32,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// NAME or VG/NAME, as `lvsnap list` shows.
    pub snapshot: String,
}
