//! `rollback SET`: every member of a snapshot set merged back into its origin, after one guard
//! set of them all as they are. The members go back together or not at all: every member must
//! be able to merge before anything changes; then every merge is only marked (lvsnap holds each
//! origin open meanwhile, so that LVM defers each one to the origin's next activation), and
//! once all are marked the origins not in use are deactivated and activated together, which
//! carries out their merges. An origin in use keeps every merge pending until the
//! administrator unmounts it and reactivates them all — a set rolled back halfway is a state
//! that never existed.

use super::{confirm, Ctx};
use crate::catalog::State;
use crate::config::VolumeRef;
use crate::error::{exit, Error};
use crate::lvm::{commands, Inventory};
use crate::mount;
use crate::reconcile::{Fleet, Managed};
use crate::restore::rollback::{begin_rollback, MergeSpace};
use crate::run::Engine;
use crate::units::{age, format_size, local};

/// `lvsnap rollback SET [--yes]`.
///
/// # Errors
/// The set is incomplete, a member cannot merge, no confirmation, or LVM failed.
pub(crate) fn rollback_set(
    ctx: &mut Ctx<'_>,
    engine: &mut Engine<'_>,
    inv: &Inventory,
    fleet: &mut Fleet,
    id: &str,
    yes: bool,
) -> Result<i32, Error> {
    let members: Vec<Managed> = fleet
        .managed()
        .iter()
        .filter(|m| m.record.set.as_deref() == Some(id))
        .cloned()
        .collect();
    let gone: Vec<String> = engine
        .catalog
        .all_snapshots()?
        .into_iter()
        .filter(|s| s.set.as_deref() == Some(id))
        .filter(|s| !members.iter().any(|m| m.record.id == s.id))
        .map(|s| format!("{}/{} ({})", s.vg, s.name, s.state.as_str()))
        .collect();
    if !gone.is_empty() {
        return Err(Error::Usage(format!(
            "set {id} is incomplete: {} no longer exist(s), so its other members cannot give back one instant; nothing was changed\n    hint: roll back a member on its own with `lvsnap rollback VG/NAME` if that is what you want",
            gone.join(", ")
        )));
    }
    // A rollback of this set that was cut short (kill -9, a power cut) left some members
    // marked to merge, each with its record: it is carried on, with the guard set it took.
    let recorded = engine.catalog.rollbacks(true)?;
    let marked_before = |m: &Managed| {
        m.lv.as_ref().is_some_and(|l| l.merging)
            && recorded.iter().any(|r| r.snapshot_id == m.record.id)
    };
    let mut open = Vec::new();
    let mut spaces = Vec::new();
    for m in &members {
        let (vg, lv, name) = (&m.record.vg, &m.record.origin, &m.record.name);
        let refuse = |why: String| {
            Err(Error::Usage(format!(
                "member {vg}/{name} of set {id} {why}; nothing was changed"
            )))
        };
        let Some(snap) = &m.lv else {
            return refuse("is not in LVM's report".to_owned());
        };
        if snap.invalid {
            return refuse("is invalid (it overflowed): its data is lost".to_owned());
        }
        if marked_before(m) {
            continue;
        }
        if snap.open {
            return refuse(format!(
                "is mounted or open (LVM cannot merge a snapshot in use): `lvsnap umount {name}` first"
            ));
        }
        if snap.origin.is_none() {
            return refuse(format!("was detached from {vg}/{lv} by an earlier rollback; LVM cannot merge it (roll it back on its own: lvsnap swaps names)"));
        }
        let Some(origin) = inv.find(vg, lv) else {
            return refuse(format!("has lost its origin {vg}/{lv}"));
        };
        let pending = origin.merging
            || inv
                .lvs()
                .iter()
                .any(|l| l.vg == *vg && l.origin.as_deref() == Some(lv.as_str()) && l.merging);
        if pending {
            return refuse(format!(
                "cannot merge: a merge into {vg}/{lv} is already pending"
            ));
        }
        if in_use(inv, vg, lv) {
            open.push(format!("{vg}/{lv}"));
        }
    }
    // Deferred (to a later activation) when an origin is in use: the members keep filling
    // until then, and their whole size bounds what the merges write.
    for m in &members {
        let (vg, lv, name) = (&m.record.vg, &m.record.origin, &m.record.name);
        spaces.push(MergeSpace::of(inv, vg, lv, name, !open.is_empty()));
    }
    let policy = ctx
        .config
        .policy(&members[0].record.policy)
        .ok_or_else(|| {
            Error::Usage(format!(
                "policy \"{}\" of set {id} is no longer configured, so lvsnap cannot take the guard set it takes before a rollback",
                members[0].record.policy
            ))
        })?;
    // The guard set is a set of exactly these origins, whatever the policy lists now.
    let mut guard_policy = policy.clone();
    guard_policy.volumes = members
        .iter()
        .map(|m| VolumeRef {
            vg: m.record.vg.clone(),
            lv: m.record.origin.clone(),
        })
        .collect();
    guard_policy.set = true;
    let at_least: Vec<u64> = members
        .iter()
        .zip(&spaces)
        .map(|(m, s)| if m.record.thin { 0 } else { s.guard_bytes() })
        .collect();
    let tz = ctx.config.settings.timezone;
    let t = members[0].record.time;
    writeln!(
        ctx.out,
        "rollback of set {id} (taken {}, {} ago), {} members:",
        local(t, tz),
        age(t, ctx.now).trim_end_matches(" ago"),
        members.len()
    )?;
    for m in &members {
        writeln!(
            ctx.out,
            "  {}/{} ← {}",
            m.record.vg, m.record.origin, m.record.name
        )?;
    }
    let thick_guards: Vec<String> = members
        .iter()
        .zip(&at_least)
        .filter(|(_, b)| **b > 0)
        .map(|(m, b)| {
            format!(
                "{}/{} at least {}",
                m.record.vg,
                m.record.origin,
                format_size(*b)
            )
        })
        .collect();
    let any_thin = members.iter().any(|m| m.record.thin);
    writeln!(
        ctx.out,
        "  1. a guard set of every member's origin as it is now is taken first and pinned{}{}\n  2. lvconvert --merge of every member, each held open so that LVM only marks it; then the origins are deactivated and activated together: each becomes what its member holds",
        if any_thin {
            " (a thin merge detaches the origin's other snapshots: to undo, roll back each guard member on its own — lvsnap swaps names)"
        } else {
            ": `lvsnap rollback` to it undoes this rollback"
        },
        if thick_guards.is_empty() {
            String::new()
        } else {
            format!(
                "; thick guards hold what the merges write: {}",
                thick_guards.join(", ")
            )
        }
    )?;
    for (m, space) in members.iter().zip(&spaces) {
        for (other, free) in &space.at_risk {
            writeln!(
                ctx.out,
                "  warning: {}/{other} has {} of copy-on-write space left and the merge into {}/{} may copy up to {} into it: it can overflow and become invalid; `lvextend -L +{} {}/{other}` first to keep it",
                m.record.vg,
                format_size(*free),
                m.record.vg,
                m.record.origin,
                format_size(space.writes),
                format_size(space.writes.saturating_sub(*free) + crate::restore::rollback::MARGIN),
                m.record.vg
            )?;
        }
    }
    // Deferred together: LVM defers a merge into an origin that is open, and does a thin one
    // at once into an origin that is not; so lvsnap holds every origin not in use open while
    // the merges are started.
    let resting: Vec<String> = members
        .iter()
        .map(|m| format!("{}/{}", m.record.vg, m.record.origin))
        .filter(|o| !open.contains(o))
        .collect();
    if !open.is_empty() {
        let all = members
            .iter()
            .map(|m| format!("{}/{}", m.record.vg, m.record.origin))
            .collect::<Vec<_>>()
            .join(" ");
        let how = if resting.is_empty() {
            String::new()
        } else {
            format!(
                " So that the set goes back as one, lvsnap holds {} open while it starts the merges: every member merges at that same activation.",
                resting.join(", ")
            )
        };
        writeln!(
            ctx.out,
            "  {} in use: LVM defers its merge until it is next activated.{how} Until then every member's rollback is pending, and pruning and backups of them wait.\n  then: unmount {}, and `lvchange -an {all} && lvchange -ay {all}` (or reboot)",
            open.join(", "),
            open.join(", "),
        )?;
    }
    if !confirm(ctx.out, yes, &format!("roll back set {id}"), &ctx.cancel)? {
        writeln!(ctx.out, "nothing changed")?;
        return Ok(exit::USAGE);
    }
    let now = ctx.now;
    // The guard set: taken now, or (carrying on) the one the cut-short rollback took.
    let earlier: Vec<&crate::catalog::RollbackRecord> = members
        .iter()
        .filter(|m| marked_before(m))
        .filter_map(|m| recorded.iter().find(|r| r.snapshot_id == m.record.id))
        .collect();
    let guard = if let Some(first) = earlier.first() {
        let guard_set = fleet
            .managed()
            .iter()
            .find(|g| g.record.vg == first.vg && Some(&g.record.name) == first.guard.as_ref())
            .and_then(|g| g.record.set.clone())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "set {id} is partly marked to merge by a rollback that was cut short, and its guard set is gone; roll back the remaining members one by one (`lvsnap rollback VG/NAME`)"
                ))
            })?;
        let members_of_guard: Vec<(VolumeRef, String)> = members
            .iter()
            .map(|m| {
                let g = fleet.managed().iter().find(|g| {
                    g.record.set.as_deref() == Some(guard_set.as_str())
                        && g.record.vg == m.record.vg
                        && g.record.origin == m.record.origin
                });
                (
                    VolumeRef {
                        vg: m.record.vg.clone(),
                        lv: m.record.origin.clone(),
                    },
                    g.map(|g| g.record.name.clone()).unwrap_or_default(),
                )
            })
            .collect();
        writeln!(
            ctx.out,
            "carrying on the rollback of set {id} that was cut short ({} of {} members were marked); guard set {guard_set}",
            earlier.len(),
            members.len()
        )?;
        crate::cycle::set::SetTaken {
            id: guard_set,
            members: members_of_guard,
            frozen: None,
        }
    } else {
        let mut space = crate::cycle::Space::from(inv);
        let note = format!("guard before rollback to set {id}");
        let how = crate::cycle::Take {
            pin: true,
            note: Some(&note),
            at_least: 0,
            beyond_caps: true,
            leaving: 0,
        };
        let guard = engine.take_set(&guard_policy, inv, fleet, &mut space, &how, &[], &at_least)?;
        writeln!(
            ctx.out,
            "guard set {} taken (pinned; `lvsnap unpin` its members when no longer needed)",
            guard.id
        )?;
        guard
    };
    // Each merge is marked while lvsnap holds the origin open, so that LVM defers it (a thin
    // merge into an origin not open is carried out at once, a thick one starts at once); each
    // rollback is recorded just before its mark, so that a record never claims a merge that
    // was not asked for.
    let mut marked: Vec<String> = earlier
        .iter()
        .map(|r| format!("{}/{}", r.vg, r.origin))
        .collect();
    let mut ids: Vec<Option<i64>> = Vec::new();
    for (m, (_, guard_name)) in members.iter().zip(&guard.members) {
        let (vg, lv, name) = (&m.record.vg, &m.record.origin, &m.record.name);
        if marked_before(m) {
            ids.push(
                recorded
                    .iter()
                    .find(|r| r.snapshot_id == m.record.id)
                    .map(|r| r.id),
            );
            continue;
        }
        let origin = inv.find(vg, lv).expect("checked above");
        let held = (|| -> Result<std::fs::File, Error> {
            if !origin.active {
                engine.exec(&commands::activate(vg, lv))?;
            }
            let dev = mount::device(vg, lv);
            std::fs::File::open(&dev).map_err(|e| {
                Error::Usage(format!(
                    "cannot hold {dev} open so that its merge waits for the others: {e}"
                ))
            })
        })();
        let result = held.and_then(|hold| {
            let rid = begin_rollback(engine, m, guard_name, true, None, now)?;
            let r = engine.exec(&commands::merge(vg, name));
            drop(hold);
            match r {
                Ok(_) => Ok(rid),
                Err(e) => {
                    // Not marked after all (LVM shows whether it is): no record claims it.
                    let merging = engine
                        .inventory()
                        .ok()
                        .and_then(|i| i.find(vg, name).map(|l| l.merging))
                        .unwrap_or(false);
                    if !merging {
                        engine.record(|c| c.cancel_rollback(rid))?;
                    }
                    Err(Error::from(e))
                }
            }
        });
        match result {
            Ok(rid) => ids.push(Some(rid)),
            Err(e) => {
                engine.flush()?;
                let begun = if marked.is_empty() {
                    "no member is marked to merge".to_owned()
                } else {
                    format!(
                        "these members are marked to merge at their origin's next activation: {} — do not activate them alone; `lvsnap rollback {id}` again carries on once the cause is fixed",
                        marked.join(", ")
                    )
                };
                return Err(Error::Usage(format!(
                    "member {vg}/{name} could not be marked to merge: {e}; {begun}; {} keeps the state from before",
                    guard.id
                )));
            }
        }
        marked.push(format!("{vg}/{lv}"));
    }
    // Carried out together: deactivate every origin, then activate them all — only if, as
    // LVM shows it now, none is in use (an origin, or a thick snapshot of it, open).
    let all: Vec<(String, String)> = members
        .iter()
        .map(|m| (m.record.vg.clone(), m.record.origin.clone()))
        .collect();
    let list = all
        .iter()
        .map(|(v, l)| format!("{v}/{l}"))
        .collect::<Vec<_>>()
        .join(" ");
    let fresh = engine.inventory()?;
    let busy: Vec<String> = all
        .iter()
        .filter(|(vg, lv)| in_use(&fresh, vg, lv))
        .map(|(v, l)| format!("{v}/{l}"))
        .collect();
    let mut cycled = false;
    if busy.is_empty() {
        let mut down = Vec::new();
        let mut refused = None;
        for (vg, lv) in &all {
            match engine.exec(&commands::deactivate(vg, lv)) {
                Ok(_) => down.push(format!("{vg}/{lv}")),
                Err(e) => {
                    refused = Some(format!("{vg}/{lv} could not be deactivated ({e})"));
                    break;
                }
            }
        }
        match refused {
            None => {
                let mut failed = Vec::new();
                for (vg, lv) in &all {
                    if let Err(e) = engine.exec(&commands::activate(vg, lv)) {
                        failed.push(format!("{vg}/{lv} ({e})"));
                    }
                }
                if !failed.is_empty() {
                    writeln!(
                        ctx.out,
                        "warning: could not activate {}: activate them by hand (`lvchange -ay {list}`); their merges run then",
                        failed.join(", ")
                    )?;
                }
                cycled = true;
            }
            Some(why) => writeln!(
                ctx.out,
                "warning: {why}, so the merges wait for the next activation of every member (left inactive: {}); unmount what uses it, then `lvchange -an {list} && lvchange -ay {list}`",
                down.join(", ")
            )?,
        }
    } else if open.is_empty() {
        writeln!(
            ctx.out,
            "warning: {} came into use meanwhile, so every merge waits: unmount it, then `lvchange -an {list} && lvchange -ay {list}`",
            busy.join(", ")
        )?;
    }
    // A thick merge goes on in the background after the activation: wait a little for it.
    let mut after = fresh;
    if cycled {
        for _ in 0..30 {
            after = engine.inventory()?;
            if members
                .iter()
                .all(|m| after.find(&m.record.vg, &m.record.name).is_none())
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    let mut pending = Vec::new();
    for (m, rid) in members.iter().zip(&ids) {
        let (vg, lv, name) = (&m.record.vg, &m.record.origin, &m.record.name);
        if after.find(vg, name).is_some() {
            pending.push(format!("{vg}/{lv}"));
            continue;
        }
        let Some(rid) = *rid else { continue };
        engine.record(|c| {
            c.set_state(
                m.record.id,
                State::Merged,
                Some(&format!("merged into {vg}/{lv} by rollback of set {id}")),
                now,
            )?;
            c.complete_rollback(rid, now)
        })?;
    }
    engine.flush()?;
    if pending.is_empty() {
        writeln!(
            ctx.out,
            "rolled back: every member of set {id} is merged; {} keeps the state from before",
            guard.id
        )?;
    } else if cycled {
        writeln!(
            ctx.out,
            "merging: {} still merge in the background (LVM finishes by itself; `lvsnap list` shows them pending until then); {} keeps the state from before",
            pending.join(", "),
            guard.id
        )?;
    } else {
        writeln!(
            ctx.out,
            "merge deferred for {}: they merge together at their next activation (`lvsnap list` and `lvsnap status` show them pending until then); {} keeps the state from before",
            pending.join(", "),
            guard.id
        )?;
    }
    Ok(exit::OK)
}

/// Whether `vg/lv` is in use as LVM sees it: open, or a thick snapshot of it open (LVM will
/// not deactivate an origin then).
fn in_use(inv: &Inventory, vg: &str, lv: &str) -> bool {
    inv.find(vg, lv).is_some_and(|o| o.open)
        || inv.lvs().iter().any(|l| {
            l.vg == vg
                && l.origin.as_deref() == Some(lv)
                && l.kind == crate::lvm::LvKind::ThickSnapshot
                && l.open
        })
}
