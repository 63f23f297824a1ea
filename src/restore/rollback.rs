//! `lvsnap rollback`: merges a snapshot back into its origin with `lvconvert --merge`, after
//! showing what will happen, asking, and taking a pinned guard snapshot of the current state
//! (so the rollback itself can be rolled back). LVM defers the merge of an origin that is in
//! use until its next activation; lvsnap says so, records the rollback as pending, and holds
//! pruning and backups of that origin until the merge is done.

use super::commands::{confirm, guard_snapshot};
use crate::catalog::{RollbackRecord, State, SwapJournal};
use crate::commands::Ctx;
use crate::error::{exit, Error};
use crate::lvm::commands;
use crate::mount;
use crate::reconcile::{OWNER_TAG, PINNED_TAG, POLICY_TAG, TIME_TAG};
use crate::run::Engine;
use crate::units::{age, format_size, local};

/// `lvsnap rollback --resume [--abandon]`: finishes rollbacks a crash or `kill -9` interrupted
/// (or, with `--abandon`, forgets them once the administrator has put LVM right by hand).
///
/// # Errors
/// The lock, the catalog or LVM failed.
pub fn resume_cmd(ctx: &mut Ctx<'_>, abandon: bool) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, false);
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
pub fn rollback_cmd(ctx: &mut Ctx<'_>, spec: &str, yes: bool) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, false);
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
        .lvs
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
    if !confirm(ctx.out, yes, &format!("roll back {vg}/{lv} to {name}"))? {
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
    if !confirm(ctx.out, yes, &format!("roll back {vg}/{lv} to {name}"))? {
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

/// Carries out (or carries on with) a name swap, one idempotent step at a time: each step is
/// worked out from what LVM shows now (the volumes are found by UUID), and recorded in the
/// journal before it runs. A signal meanwhile only sets the cancel flag (LVM runs in its own
/// process group), so the swap goes on to a consistent end; a `kill -9` or a power cut leaves the
/// journal, and the next `run` or `rollback --resume` finishes from wherever it stopped.
fn finish_swap(
    engine: &mut Engine<'_>,
    r: &RollbackRecord,
    policy: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    use crate::catalog::NewSnapshot;
    let journal = r.swap.as_ref().expect("a swap");
    let (vg, lv, name) = (&r.vg, &r.origin, &r.snapshot);
    let guard = r
        .guard
        .clone()
        .unwrap_or_else(|| format!("{lv}-lvsnap-guard"));
    let guard_tags = [
        OWNER_TAG.to_owned(),
        format!("{POLICY_TAG}={policy}"),
        format!("{TIME_TAG}={}", r.requested.timestamp()),
        PINNED_TAG.to_owned(),
    ];
    let inv = engine.inventory()?;
    let (Some(old), Some(new)) = (
        inv.by_uuid(&journal.origin_uuid),
        inv.by_uuid(&journal.snapshot_uuid),
    ) else {
        return Err(Error::Usage(format!(
            "the rollback of {vg}/{lv} to {name} cannot go on: LVM no longer shows {} (the volume that was {vg}/{lv}) or {} (the snapshot {name}); check `lvs -o +lv_uuid {vg}`",
            journal.origin_uuid, journal.snapshot_uuid
        )));
    };
    // What is left to do, worked out once from what LVM shows; each step keeps its number
    // (1 to 6) whichever came before it.
    let add: Vec<(bool, String)> = guard_tags
        .iter()
        .filter(|t| !old.tags.contains(t))
        .map(|t| (true, t.clone()))
        .collect();
    let drop: Vec<(bool, String)> = new
        .tags
        .iter()
        .filter(|t| *t == OWNER_TAG || t.starts_with(&format!("{OWNER_TAG}-")))
        .map(|t| (false, t.clone()))
        .collect();
    let old_name = if old.name == *lv { &guard } else { &old.name };
    let steps = [
        (old.name == *lv).then(|| commands::rename(vg, lv, &guard)),
        (!add.is_empty()).then(|| commands::retag(vg, old_name, &add)),
        (new.name != *lv).then(|| commands::rename(vg, &new.name, lv)),
        (!drop.is_empty()).then(|| commands::retag(vg, lv, &drop)),
        new.skip_activation
            .then(|| commands::activate_at_boot(vg, lv)),
        (!new.active).then(|| commands::activate(vg, lv)),
        // The guard carries the same filesystem UUID as the new origin: active, or activated
        // at boot, it could be what `UUID=` in fstab mounts.
        old.active.then(|| commands::deactivate(vg, old_name)),
        (!old.skip_activation).then(|| commands::skip_at_boot(vg, old_name)),
    ];
    let (old_uuid, old_size) = (old.uuid.clone(), old.size);
    for (i, next) in steps.iter().enumerate() {
        let Some(next) = next else { continue };
        let step = i as i64 + 1;
        engine.record(|c| c.set_swap_step(r.id, step))?;
        if let Err(e) = engine.exec(next) {
            engine.flush()?;
            return Err(Error::Usage(format!(
                "rollback of {vg}/{lv} to {name} stopped at step {step}, `{next}`: {e}; the journal keeps where it was: fix the cause and run `lvsnap rollback --resume`"
            )));
        }
    }
    let inv = engine.inventory()?;
    let settled = inv
        .by_uuid(&journal.snapshot_uuid)
        .is_some_and(|l| l.name == *lv)
        && inv
            .by_uuid(&journal.origin_uuid)
            .is_some_and(|l| l.name != *lv);
    if !settled {
        return Err(Error::Usage(format!(
            "the rollback of {vg}/{lv} to {name} ran its steps, but LVM does not show {} as {vg}/{lv}; check `lvs -o +lv_uuid {vg}`",
            journal.snapshot_uuid
        )));
    }
    let new = NewSnapshot {
        vg,
        name: &guard,
        origin: lv,
        policy,
        time: r.requested,
        thin: true,
        size: old_size,
        pinned: true,
        note: Some(&format!("guard before rollback to {name}")),
    };
    let (uuid, snapshot_id, id) = (old_uuid, r.snapshot_id, r.id);
    // The guard is adopted before the rollback is marked done: a resume after a crash in
    // between finds it adopted (the volume's UUID may be in older, merged records too).
    // An adoption a crash cut short left a record by name, not yet bound to the volume.
    let adopted = engine.catalog.live_snapshots()?.into_iter().find(|s| {
        s.uuid.as_deref() == Some(uuid.as_str())
            || (s.uuid.is_none() && s.vg == *vg && s.name == guard)
    });
    match adopted {
        Some(s) if s.uuid.is_none() => {
            engine.catalog.bind(s.id, &uuid, old_size)?;
            engine
                .catalog
                .set_state(s.id, State::Present, Some("adopted from LVM tags"), now)?;
        }
        Some(_) => {}
        None => {
            engine.catalog.adopt(&new, &uuid, now)?;
        }
    }
    engine.record(|c| {
        c.set_state(
            snapshot_id,
            State::Merged,
            Some(&format!("became {vg}/{lv} by rollback")),
            now,
        )?;
        c.complete_rollback(id, now)
    })?;
    engine.flush()?;
    Ok(())
}

/// Name swaps a crash or `kill -9` interrupted: each is finished (or, if it had changed nothing
/// yet, forgotten), with a line saying which and what `VG/LV` now holds.
///
/// # Errors
/// The catalog or LVM failed; a swap that cannot go on is named in the returned notes.
pub fn resume_swaps(
    engine: &mut Engine<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, Error> {
    let mut notes = Vec::new();
    for r in engine.catalog.rollbacks(true)? {
        let Some(j) = &r.swap else { continue };
        let (vg, lv, name) = (&r.vg, &r.origin, &r.snapshot);
        let inv = engine.inventory()?;
        // Nothing happened while the origin still has its name and no guard tag (whatever
        // became of the snapshot meanwhile).
        let untouched = inv
            .by_uuid(&j.origin_uuid)
            .is_some_and(|l| l.name == *lv && !l.has_tag(OWNER_TAG));
        if untouched {
            engine.record(|c| c.cancel_rollback(r.id))?;
            notes.push(format!(
                "the rollback of {vg}/{lv} to {name} was interrupted before it changed anything: {vg}/{lv} holds what it held before; nothing to undo"
            ));
            continue;
        }
        let policy = engine
            .catalog
            .all_snapshots()?
            .into_iter()
            .find(|s| s.id == r.snapshot_id)
            .map(|s| s.policy)
            .unwrap_or_default();
        match finish_swap(engine, &r, &policy, now) {
            Ok(()) => notes.push(format!(
                "finished the interrupted rollback of {vg}/{lv} to {name} (it stopped at step {}): {vg}/{lv} now holds what {name} held; {} keeps the state from before",
                j.step,
                r.guard.as_deref().unwrap_or("the guard")
            )),
            Err(e) => notes.push(format!(
                "{e} (when LVM is put right, `lvsnap rollback --resume` finishes it; `lvsnap rollback --resume --abandon` forgets it)"
            )),
        }
    }
    Ok(notes)
}

/// Room kept above what a merge is measured to write: the exception store's own metadata (16
/// bytes per 4 KiB chunk, about 0.4%) and the writes that reach the origin while it merges.
const MARGIN: u64 = 4 << 20;

/// What a thick merge writes, and which other snapshots of the origin it may overflow. Merging
/// copies every chunk the snapshot holds back into the origin, and the kernel first copies each
/// such chunk into every other thick snapshot of the origin that has not copied it yet.
struct MergeSpace {
    /// The merged snapshot's used copy-on-write space: what the merge writes at most.
    writes: u64,
    /// Other thick snapshots of the origin whose free copy-on-write space is smaller than that:
    /// (name, free bytes).
    at_risk: Vec<(String, u64)>,
}

impl MergeSpace {
    /// `deferred`: the origin is in use, so the merge waits for its next activation and the
    /// snapshot keeps filling until then; its whole copy-on-write size is the bound.
    fn of(
        inv: &crate::lvm::Inventory,
        vg: &str,
        origin: &str,
        merged: &str,
        deferred: bool,
    ) -> MergeSpace {
        let used = |l: &crate::lvm::Lv| {
            let pct = l.data_percent.unwrap_or(100.0).clamp(0.0, 100.0);
            // Rounded up: the percentage is reported to two decimals.
            (l.size as f64 * (pct + 0.01) / 100.0).ceil() as u64
        };
        let writes = inv.find(vg, merged).map_or(0, |l| {
            if deferred {
                l.size
            } else {
                used(l).min(l.size)
            }
        });
        let at_risk = inv
            .lvs
            .iter()
            .filter(|l| l.vg == vg && l.origin.as_deref() == Some(origin) && l.name != merged)
            .filter(|l| l.kind == crate::lvm::LvKind::ThickSnapshot && !l.invalid)
            .map(|l| (l.name.clone(), l.size.saturating_sub(used(l))))
            .filter(|(_, free)| *free < writes + MARGIN)
            .collect();
        MergeSpace { writes, at_risk }
    }

    /// The guard's smallest size: everything the merge writes, its metadata, and the margin.
    fn guard_bytes(&self) -> u64 {
        self.writes + self.writes / 64 + MARGIN
    }
}

/// Records a rollback about to be carried out.
fn begin_rollback(
    engine: &mut Engine<'_>,
    m: &crate::reconcile::Managed,
    guard: &str,
    deferred: bool,
    swap: Option<SwapJournal>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<i64, Error> {
    let record = RollbackRecord {
        id: 0,
        snapshot_id: m.record.id,
        vg: m.record.vg.clone(),
        origin: m.record.origin.clone(),
        snapshot: m.record.name.clone(),
        guard: Some(guard.to_owned()),
        requested: now,
        deferred,
        completed: None,
        swap,
    };
    Ok(engine.record(|c| c.record_rollback(&record))?)
}
