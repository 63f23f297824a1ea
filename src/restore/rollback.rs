//! `lvsnap rollback`: merges a snapshot back into its origin with `lvconvert --merge`, after
//! showing what will happen, asking, and taking a pinned guard snapshot of the current state
//! (so the rollback itself can be rolled back). LVM defers the merge of an origin that is in
//! use until its next activation; lvsnap says so, records the rollback as pending, and holds
//! pruning and backups of that origin until the merge is done.

use super::commands::{confirm, guard_snapshot};
use super::resolve_snapshot;
use crate::catalog::{RollbackRecord, State};
use crate::commands::Ctx;
use crate::error::{exit, Error};
use crate::lvm::commands;
use crate::mount;
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
    if m.lv.as_ref().is_some_and(|l| l.origin.is_none()) {
        return swap_in_detached(ctx, &mut engine, &m, origin, yes);
    }
    let mounted_at = mount::mount_point_of(&vg, &lv);
    writeln!(
        ctx.out,
        "rollback of {vg}/{lv} to {name} (taken {}, {} ago):\n  1. a guard snapshot of {vg}/{lv} as it is now is taken first and pinned: `lvsnap rollback` to it undoes this rollback\n  2. lvconvert --merge {vg}/{name}: {vg}/{lv} becomes what {name} holds; the snapshot is used up by the merge",
        local(m.record.time, tz),
        age(m.record.time, ctx.now).trim_end_matches(" ago")
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
    // Recorded before lvconvert: after a crash the next run still knows the snapshot was
    // merged, not removed behind lvsnap's back.
    let id = begin_rollback(&mut engine, &m, &guard, open, now)?;
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
    yes: bool,
) -> Result<i32, Error> {
    use crate::catalog::NewSnapshot;
    use crate::reconcile::{OWNER_TAG, PINNED_TAG, POLICY_TAG, TIME_TAG};
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
    let guard = crate::plan::naming::snapshot_name(lv, now, |n| known.iter().any(|k| k == n));
    writeln!(
        ctx.out,
        "rollback of {vg}/{lv} to {name} (taken {}):\n  1. {vg}/{lv} as it is now becomes the guard snapshot {guard} (renamed and pinned): `lvsnap rollback {guard}` undoes this rollback\n  2. {name} becomes {vg}/{lv} (renamed; LVM cannot merge a thin snapshot an earlier rollback detached)",
        local(m.record.time, ctx.config.settings.timezone)
    )?;
    if !confirm(ctx.out, yes, &format!("roll back {vg}/{lv} to {name}"))? {
        writeln!(ctx.out, "nothing changed")?;
        return Ok(exit::USAGE);
    }
    let id = begin_rollback(engine, m, &guard, false, now)?;
    let guard_tags = [
        OWNER_TAG.to_owned(),
        format!("{POLICY_TAG}={}", policy.name),
        format!("{TIME_TAG}={}", now.timestamp()),
        PINNED_TAG.to_owned(),
    ];
    let old_tags: Vec<(bool, String)> =
        m.lv.as_ref()
            .map(|l| {
                l.tags
                    .iter()
                    .filter(|t| t.starts_with(OWNER_TAG))
                    .map(|t| (false, t.clone()))
                    .collect()
            })
            .unwrap_or_default();
    let steps = [
        commands::rename(vg, lv, &guard),
        commands::retag(
            vg,
            &guard,
            &guard_tags
                .iter()
                .map(|t| (true, t.clone()))
                .collect::<Vec<_>>(),
        ),
        commands::rename(vg, name, lv),
        commands::retag(vg, lv, &old_tags),
        commands::activate_at_boot(vg, lv),
        commands::activate(vg, lv),
    ];
    for step in &steps {
        if let Err(e) = engine.exec(step) {
            engine.flush()?;
            return Err(Error::Usage(format!(
                "rollback stopped at `{step}`: {e}; the steps before it were done (see `lvsnap catalog events`): check `lvs {vg}` before anything else"
            )));
        }
    }
    let new = NewSnapshot {
        vg,
        name: &guard,
        origin: lv,
        policy: &policy.name,
        time: now,
        thin: true,
        size: origin.size,
        pinned: true,
        note: Some(&format!("guard before rollback to {name}")),
    };
    let uuid = origin.uuid.clone();
    engine.record(|c| {
        c.set_state(
            m.record.id,
            State::Merged,
            Some(&format!("became {vg}/{lv} by rollback")),
            now,
        )?;
        c.complete_rollback(id, now)
    })?;
    engine.catalog.adopt(&new, &uuid, now)?;
    writeln!(
        ctx.out,
        "rolled back: {vg}/{lv} now holds what {name} held; {guard} keeps the state from before"
    )?;
    Ok(exit::OK)
}

/// Records a rollback about to be carried out.
fn begin_rollback(
    engine: &mut Engine<'_>,
    m: &crate::reconcile::Managed,
    guard: &str,
    deferred: bool,
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
    };
    Ok(engine.record(|c| c.record_rollback(&record))?)
}
