//! `rollback SNAPSHOT` and `rollback --resume [--abandon]`: the command side of
//! [`crate::restore::rollback`] (what is asked, shown and confirmed).

use clap::Args;

use super::{confirm, guard_snapshot, Ctx};
use crate::catalog::{RollbackRecord, State, SwapJournal};
use crate::error::{exit, Error};
use crate::lvm::commands;
use crate::mount;
use crate::restore::rollback::{begin_rollback, finish_swap, resume_swaps, MergeSpace, MARGIN};
use crate::run::Engine;
use crate::units::{age, format_size, local};

/// `lvsnap rollback SNAPSHOT [--yes]` or `lvsnap rollback --resume [--abandon]`.
///
/// # Errors
/// As the rollback or the resume.
pub fn rollback(ctx: &mut Ctx<'_>, a: &RollbackArgs) -> Result<i32, Error> {
    match (&a.snapshot, a.resume) {
        (Some(s), false) => rollback_to(ctx, s, a.yes),
        _ => resume(ctx, a.abandon),
    }
}

/// `lvsnap rollback --resume [--abandon]`: finishes rollbacks a crash or `kill -9` interrupted
/// (or, with `--abandon`, forgets them once the administrator has put LVM right by hand).
///
/// # Errors
/// The lock, the catalog or LVM failed.
fn resume(ctx: &mut Ctx<'_>, abandon: bool) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = ctx.engine(&mut catalog, false);
    let pending = engine
        .catalog
        .rollbacks(true)?
        .iter()
        .filter(|r| r.swap.is_some())
        .count();
    if pending == 0 {
        writeln!(ctx.out, "no interrupted rollback to resume")?;
        return Ok(exit::OK);
    }
    if abandon {
        for r in engine.catalog.rollbacks(true)? {
            if r.swap.is_some() {
                engine.record(|c| c.cancel_rollback(r.id))?;
                writeln!(
                    ctx.out,
                    "forgot the interrupted rollback of {}/{} to {}: LVM is as you left it; check `lvs {}` and `lvsnap list`",
                    r.vg, r.origin, r.snapshot, r.vg
                )?;
            }
        }
        return Ok(exit::OK);
    }
    let notes = resume_swaps(&mut engine, ctx.now)?;
    for n in &notes {
        writeln!(ctx.out, "{n}")?;
    }
    let left = engine
        .catalog
        .rollbacks(true)?
        .iter()
        .filter(|r| r.swap.is_some())
        .count();
    Ok(if left == 0 { exit::OK } else { exit::FAILED })
}

/// `lvsnap rollback SNAPSHOT [--yes]`.
///
/// # Errors
/// Not lvsnap's snapshot, a merge already pending, no confirmation, or LVM failed.
fn rollback_to(ctx: &mut Ctx<'_>, spec: &str, yes: bool) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = ctx.engine(&mut catalog, false);
    if let Some(r) = engine
        .catalog
        .rollbacks(true)?
        .into_iter()
        .find(|r| r.swap.is_some())
    {
        return Err(Error::Usage(format!(
            "the rollback of {}/{} to {} was interrupted and is not finished; run `lvsnap rollback --resume` first",
            r.vg, r.origin, r.snapshot
        )));
    }
    let (inv, mut fleet) = engine.survey()?;
    if super::set_access::is_set(&fleet, spec) {
        return super::rollback_set::rollback_set(ctx, &mut engine, &inv, &mut fleet, spec, yes);
    }
    let m = crate::resolve::readable_snapshot(&fleet, &inv, spec)?.clone();
    let (vg, lv, name) = (
        m.record.vg.clone(),
        m.record.origin.clone(),
        m.record.name.clone(),
    );
    let origin = inv
        .find(&vg, &lv)
        .ok_or_else(|| Error::Usage(format!("the origin {vg}/{lv} of {name} no longer exists")))?;
    let pending = inv
        .lvs()
        .iter()
        .any(|l| l.vg == vg && l.origin.as_deref() == Some(lv.as_str()) && l.merging)
        || origin.merging;
    if pending {
        return Err(Error::Usage(format!(
            "a merge into {vg}/{lv} is already pending; it completes when {vg}/{lv} is next activated"
        )));
    }
    let tz = ctx.config.settings.timezone;
    let open = origin.open;
    if m.lv.as_ref().is_some_and(|l| l.origin.is_none()) {
        return swap_in_detached(ctx, &mut engine, &m, origin, &inv, yes);
    }
    let mounted_at = mount::mount_point_of(&vg, &lv);
    let merge = MergeSpace::of(&inv, &vg, &lv, &name, open);
    let guard_size = merge.guard_bytes();
    writeln!(
        ctx.out,
        "rollback of {vg}/{lv} to {name} (taken {}, {} ago):\n  1. a guard snapshot of {vg}/{lv} as it is now is taken first and pinned: `lvsnap rollback` to it undoes this rollback{}\n  2. lvconvert --merge {vg}/{name}: {vg}/{lv} becomes what {name} holds; the snapshot is used up by the merge",
        local(m.record.time, tz),
        age(m.record.time, ctx.now).trim_end_matches(" ago"),
        if m.record.thin {
            String::new()
        } else {
            format!(
                " (at least {}: the merge writes up to {} of changed data, and each chunk it writes is first copied into the guard)",
                format_size(guard_size),
                format_size(merge.writes)
            )
        }
    )?;
    if !m.record.thin {
        let vg_free = inv.vgs.get(&vg).map_or(0, |g| g.free);
        if guard_size > vg_free {
            return Err(Error::Usage(format!(
                "the guard snapshot must hold what the merge writes: {} (the merge writes up to {}), but {vg} has {} free; nothing was changed\n    hint: free or add space (vgextend, or remove snapshots), then roll back again",
                format_size(guard_size),
                format_size(merge.writes),
                format_size(vg_free)
            )));
        }
        for (other, free) in &merge.at_risk {
            writeln!(
                ctx.out,
                "  warning: {vg}/{other} has {} of copy-on-write space left and the merge may copy up to {} into it: it can overflow and become invalid (removed if the policy says invalid = \"remove\"); `lvextend -L +{} {vg}/{other}` first to keep it",
                format_size(*free),
                format_size(merge.writes),
                format_size(merge.writes.saturating_sub(*free) + MARGIN)
            )?;
        }
    }
    if open {
        writeln!(
            ctx.out,
            "  {vg}/{lv} is in use{}: LVM will defer the merge until {vg}/{lv} is next activated (unmount it, then `lvchange -an {vg}/{lv} && lvchange -ay {vg}/{lv}`, or reboot). Until then the rollback is pending and pruning and backups of {vg}/{lv} wait.",
            mounted_at.map(|p| format!(" (mounted at {})", p.display())).unwrap_or_default()
        )?;
    }
    if !confirm(
        ctx.out,
        yes,
        &format!("roll back {vg}/{lv} to {name}"),
        &ctx.cancel,
    )? {
        writeln!(ctx.out, "nothing changed")?;
        return Ok(exit::USAGE);
    }
    let guard = guard_snapshot(
        ctx,
        &mut engine,
        &mut fleet,
        &inv,
        &vg,
        &lv,
        &format!("guard before rollback to {name}"),
        if m.record.thin { 0 } else { guard_size },
    )?;
    let now = ctx.now;
    // Recorded before lvconvert: after a crash the next run still knows the snapshot was
    // merged, not removed behind lvsnap's back.
    let id = begin_rollback(&mut engine, &m, &guard, open, None, now)?;
    // A thin origin merges at activation: cycle an unused one so the merge happens now.
    let cycle_thin = m.record.thin && !open && origin.active;
    let merged = (|| {
        if cycle_thin {
            engine.exec(&commands::deactivate(&vg, &lv))?;
        }
        let r = engine.exec(&commands::merge(&vg, &name));
        if cycle_thin {
            engine.exec(&commands::activate(&vg, &lv))?;
        }
        r
    })();
    if let Err(e) = merged {
        engine.record(|c| c.cancel_rollback(id))?;
        return Err(e.into());
    }
    let after = engine.inventory()?;
    if after.find(&vg, &name).is_none() {
        engine.record(|c| {
            c.set_state(
                m.record.id,
                State::Merged,
                Some(&format!("merged into {vg}/{lv} by rollback")),
                now,
            )?;
            c.complete_rollback(id, now)
        })?;
        writeln!(
            ctx.out,
            "rolled back: {vg}/{lv} now holds what {name} held; {guard} keeps the state from before"
        )?;
    } else {
        engine.flush()?;
        writeln!(
            ctx.out,
            "merge deferred: {vg}/{lv} is in use, so LVM merges {name} when {vg}/{lv} is next activated; `lvsnap list` and `lvsnap status` show it as pending until then. {guard} keeps the state from before."
        )?;
    }
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The snapshot to go back to, or a snapshot set (`POLICY.TIME`, as `lvsnap list` shows
    /// it): every member then goes back together.
    #[arg(required_unless_present = "resume")]
    pub snapshot: Option<String>,
    /// Do not ask.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Finish a rollback that was interrupted (a killed lvsnap, a power cut).
    #[arg(long, conflicts_with_all = ["snapshot", "yes"])]
    pub resume: bool,
    /// With --resume: forget an interrupted rollback that cannot go on (after putting LVM
    /// right by hand).
    #[arg(long, requires = "resume")]
    pub abandon: bool,
}

/// Rollback to a thin snapshot LVM detached from its origin (a thin merge detaches the origin's
/// other snapshots — among them the guard of that rollback). LVM cannot merge it, so lvsnap
/// swaps names: the origin as it is becomes the pinned guard, the snapshot becomes the origin.
/// Renames cannot wait for the next activation, so the origin must not be in use.
fn swap_in_detached(
    ctx: &mut Ctx<'_>,
    engine: &mut Engine<'_>,
    m: &crate::reconcile::Managed,
    origin: &crate::lvm::Lv,
    inv: &crate::lvm::Inventory,
    yes: bool,
) -> Result<i32, Error> {
    let (vg, lv, name) = (&m.record.vg, &m.record.origin, &m.record.name);
    if origin.open {
        return Err(Error::Usage(format!(
            "{vg}/{name} was detached from {vg}/{lv} by an earlier rollback of a thin volume; lvsnap rolls back to it by swapping names, which cannot wait for the next activation: unmount {vg}/{lv} and run this again"
        )));
    }
    let policy = ctx
        .config
        .policies
        .iter()
        .find(|p| p.name == m.record.policy)
        .ok_or_else(|| {
            Error::Usage(format!(
                "policy \"{}\" of {name} is no longer configured",
                m.record.policy
            ))
        })?;
    let now = ctx.now;
    let known: Vec<String> = engine
        .catalog
        .all_snapshots()?
        .into_iter()
        .filter(|s| &s.vg == vg)
        .map(|s| s.name)
        .collect();
    let guard = crate::naming::snapshot_name(lv, now, |n| {
        known.iter().any(|k| k == n) || inv.find(vg, n).is_some()
    });
    writeln!(
        ctx.out,
        "rollback of {vg}/{lv} to {name} (taken {}):\n  1. {vg}/{lv} as it is now becomes the guard snapshot {guard} (renamed and pinned): `lvsnap rollback {guard}` undoes this rollback\n  2. {name} becomes {vg}/{lv} (renamed; LVM cannot merge a thin snapshot an earlier rollback detached)\n  3. {guard} is deactivated and kept from activating at boot: it carries the same filesystem UUID as {vg}/{lv}",
        local(m.record.time, ctx.config.settings.timezone)
    )?;
    if !confirm(
        ctx.out,
        yes,
        &format!("roll back {vg}/{lv} to {name}"),
        &ctx.cancel,
    )? {
        writeln!(ctx.out, "nothing changed")?;
        return Ok(exit::USAGE);
    }
    let origin_uuid = origin.uuid.clone();
    let snapshot_uuid = m.lv.as_ref().map(|l| l.uuid.clone()).ok_or_else(|| {
        Error::Usage(format!(
            "{vg}/{name} is not in LVM's report; nothing was changed"
        ))
    })?;
    let journal = SwapJournal {
        origin_uuid,
        snapshot_uuid,
        step: 0,
    };
    let id = begin_rollback(engine, m, &guard, false, Some(journal.clone()), now)?;
    let record = RollbackRecord {
        id,
        snapshot_id: m.record.id,
        vg: vg.clone(),
        origin: lv.clone(),
        snapshot: name.clone(),
        guard: Some(guard.clone()),
        requested: now,
        deferred: false,
        completed: None,
        swap: Some(journal),
    };
    finish_swap(engine, &record, &policy.name, now)?;
    writeln!(
        ctx.out,
        "rolled back: {vg}/{lv} now holds what {name} held; {guard} keeps the state from before"
    )?;
    Ok(exit::OK)
}
