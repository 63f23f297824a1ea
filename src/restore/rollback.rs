//! `lvsnap rollback`: merges a snapshot back into its origin with `lvconvert --merge`, after
//! showing what will happen, asking, and taking a pinned guard snapshot of the current state
//! (so the rollback itself can be rolled back). LVM defers the merge of an origin that is in
//! use until its next activation; lvsnap says so, records the rollback as pending, and holds
//! pruning and backups of that origin until the merge is done.

use super::commands::{confirm, guard_snapshot};
use super::{origin_mount_point, resolve_snapshot};
use crate::catalog::{RollbackRecord, State};
use crate::commands::Ctx;
use crate::error::{exit, Error};
use crate::lvm::commands;
use crate::report::{age, local};
use crate::run::Engine;

/// `lvsnap rollback SNAPSHOT [--yes]`.
///
/// # Errors
/// Not lvsnap's snapshot, a merge already pending, no confirmation, or LVM failed.
pub fn rollback_cmd(ctx: &mut Ctx<'_>, spec: &str, yes: bool) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, false);
    let (inv, mut fleet) = engine.survey()?;
    let m = resolve_snapshot(spec, &fleet, &inv).map_err(|e| Error::Usage(e.to_string()))?;
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
    let mounted_at = origin_mount_point(&vg, &lv);
    writeln!(
        ctx.out,
        "rollback of {vg}/{lv} to {name} (taken {}, {} ago):\n  1. a guard snapshot of {vg}/{lv} as it is now is taken first and pinned: `lvsnap rollback` to it undoes this rollback\n  2. lvconvert --merge {vg}/{name}: {vg}/{lv} becomes what {name} holds; the snapshot is used up by the merge",
        local(m.record.time, tz),
        age(m.record.time, ctx.now)
    )?;
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
    )?;
    let now = ctx.now;
    let record = RollbackRecord {
        id: 0,
        snapshot_id: m.record.id,
        vg: vg.clone(),
        origin: lv.clone(),
        snapshot: name.clone(),
        guard: Some(guard.clone()),
        requested: now,
        deferred: open,
        completed: None,
    };
    // Recorded before lvconvert: after a crash the next run still knows the snapshot was
    // merged, not removed behind lvsnap's back.
    let id = engine.record(|c| c.record_rollback(&record))?;
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
