//! Rollback: merges a snapshot back into its origin with `lvconvert --merge`, after a pinned
//! guard snapshot of the current state (so the rollback itself can be rolled back), or swaps a
//! detached thin snapshot in by renames recorded in a journal. LVM defers the merge of an origin that is in
//! use until its next activation; lvsnap says so, records the rollback as pending, and holds
//! pruning and backups of that origin until the merge is done.

use crate::catalog::{RollbackRecord, State, SwapJournal};
use crate::error::Error;
use crate::lvm::commands;
use crate::reconcile::{OWNER_TAG, PINNED_TAG, POLICY_TAG, TIME_TAG};
use crate::run::Engine;

/// Carries out (or carries on with) a name swap, one idempotent step at a time: each step is
/// worked out from what LVM shows now (the volumes are found by UUID), and recorded in the
/// journal before it runs. A signal meanwhile only sets the cancel flag (LVM runs in its own
/// process group), so the swap goes on to a consistent end; a `kill -9` or a power cut leaves the
/// journal, and the next `run` or `rollback --resume` finishes from wherever it stopped.
pub(crate) fn finish_swap(
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
        set: None,
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
pub(crate) const MARGIN: u64 = 4 << 20;

/// What a thick merge writes, and which other snapshots of the origin it may overflow. Merging
/// copies every chunk the snapshot holds back into the origin, and the kernel first copies each
/// such chunk into every other thick snapshot of the origin that has not copied it yet.
pub(crate) struct MergeSpace {
    /// The merged snapshot's used copy-on-write space: what the merge writes at most.
    pub(crate) writes: u64,
    /// Other thick snapshots of the origin whose free copy-on-write space is smaller than that:
    /// (name, free bytes).
    pub(crate) at_risk: Vec<(String, u64)>,
}

impl MergeSpace {
    /// `deferred`: the origin is in use, so the merge waits for its next activation and the
    /// snapshot keeps filling until then; its whole copy-on-write size is the bound.
    pub(crate) fn of(
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
            .lvs()
            .iter()
            .filter(|l| l.vg == vg && l.origin.as_deref() == Some(origin) && l.name != merged)
            .filter(|l| l.kind == crate::lvm::LvKind::ThickSnapshot && !l.invalid)
            .map(|l| (l.name.clone(), l.size.saturating_sub(used(l))))
            .filter(|(_, free)| *free < writes + MARGIN)
            .collect();
        MergeSpace { writes, at_risk }
    }

    /// The guard's smallest size: everything the merge writes, its metadata, and the margin.
    pub(crate) fn guard_bytes(&self) -> u64 {
        self.writes + self.writes / 64 + MARGIN
    }
}

/// Records a rollback about to be carried out.
pub(crate) fn begin_rollback(
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

/// Whether a recorded rollback has finished: recorded so, or its snapshot is gone from LVM (a
/// deferred merge finishes at the origin's next activation, which the next writing command
/// records).
pub fn is_done(b: &RollbackRecord, inv: Option<&crate::lvm::Inventory>) -> bool {
    // A name swap is done when its journal says so, never because a name went away.
    b.completed.is_some()
        || (b.swap.is_none() && inv.is_some_and(|i| i.find(&b.vg, &b.snapshot).is_none()))
}
