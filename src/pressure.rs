//! Space pressure. A thin pool whose data or metadata fills up takes every thin volume in it
//! read-only or worse; a volume group without free extents cannot extend a filling thick
//! snapshot, which then becomes invalid. So before a run does anything else (and in the daemon
//! on a short poll), a pool at or above a policy's `pool-data-emergency` or
//! `pool-metadata-emergency`, or a volume group with less free than its `vg-free-emergency`,
//! has that policy's oldest snapshots there removed, one at a time and measured again after
//! each, until it is below — whatever the keep rules say, since they are what filled it.
//!
//! Never removed for space: a pinned, mounted, open or merging snapshot, one dated in the future
//! (clock trouble), one a rollback is using, any of an origin a merge is pending into; another
//! policy's (each policy says whether its snapshots may go, and from which fill) or one of a
//! volume its policy no longer lists; and a group's newest, unless its policy sets
//! `emergency-removes-newest`, and then only after every other one. Removals that free nothing
//! (the volumes themselves fill the pool) stop after [`STALL`] in a row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::{error, warn};

use crate::catalog::SpaceStall;
use crate::config::{Config, Policy};
use crate::lvm::Inventory;
use crate::reconcile::{Fleet, Managed};
use crate::run::{Engine, RunError};
use crate::units::format_size;

/// The prefix of the catalog reason of every snapshot removed for space.
pub const REASON: &str = "space";

/// What space pressure is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gauge {
    PoolData,
    PoolMetadata,
    VgFree,
}

/// Removals in a row in one pool that did not lower its fill, after which space pressure stops
/// there: what fills it is not the snapshots.
pub const STALL: usize = 3;

/// One snapshot removed for space (or that would be, in a dry run), and why; or, in
/// [`Relief::errors`], why its removal failed.
#[derive(Debug, Clone)]
pub struct Removal {
    pub policy: String,
    /// VG/LV of its origin.
    pub volume: String,
    pub name: String,
    pub why: String,
}

/// What space pressure did in one run.
#[derive(Debug, Clone, Default)]
pub struct Relief {
    pub removed: Vec<Removal>,
    /// Pressure that is left, each with why nothing more was removed.
    pub left: Vec<Left>,
    /// Removals that failed, and a failure to measure again (then relief stopped).
    pub errors: Vec<Removal>,
    /// A dry run cannot tell how much a thin snapshot's removal frees: it lists every snapshot
    /// a real run might remove, and a real run stops as soon as the pool is below.
    pub estimated: bool,
}

/// Pressure a relief left: where ("VG/POOL", "VG", or "" for all), and what holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Left {
    pub place: String,
    pub text: String,
}

/// Whether any policy asks for space pressure to be watched.
pub fn watched(config: &Config) -> bool {
    config.policies.iter().any(|p| {
        p.pool_data_emergency.is_some()
            || p.pool_metadata_emergency.is_some()
            || p.vg_free_emergency.is_some()
    })
}

/// The thin pool a managed snapshot's blocks are in (`None` for a thick snapshot).
fn pool_of(m: &Managed, inv: &Inventory) -> Option<String> {
    if !m.record.thin {
        return None;
    }
    m.lv.as_ref()
        .and_then(|l| l.pool.clone())
        .or_else(|| inv.find(&m.record.vg, &m.record.origin)?.pool.clone())
}

/// Why `policy`'s threshold on `gauge` is crossed in `vg` (its `pool`), if it is.
fn crossed(
    policy: &Policy,
    gauge: Gauge,
    vg: &str,
    pool: Option<&str>,
    inv: &Inventory,
) -> Option<String> {
    match gauge {
        Gauge::PoolData | Gauge::PoolMetadata => {
            let pool = inv.find(vg, pool?)?;
            let (fill, limit, what) = if gauge == Gauge::PoolData {
                (pool.data_percent?, policy.pool_data_emergency?, "data")
            } else {
                (
                    pool.metadata_percent?,
                    policy.pool_metadata_emergency?,
                    "metadata",
                )
            };
            (fill >= f64::from(limit)).then(|| {
                format!(
                    "thin pool {} {what} is {fill:.1}% full, at or above {limit}% (pool-{what}-emergency of policy {})",
                    pool.path(),
                    policy.name
                )
            })
        }
        Gauge::VgFree => {
            let info = inv.vgs.get(vg)?;
            let floor = policy.vg_free_emergency?.bytes(info.size);
            (info.free < floor).then(|| {
                format!(
                    "volume group {vg} has {} free, less than {} (vg-free-emergency of policy {})",
                    format_size(info.free),
                    format_size(floor),
                    policy.name
                )
            })
        }
    }
}

/// The gauges of the place `m`'s space comes from: its pool's, or (thick) its VG's.
fn gauges(m: &Managed) -> &'static [Gauge] {
    if m.record.thin {
        &[Gauge::PoolData, Gauge::PoolMetadata]
    } else {
        &[Gauge::VgFree]
    }
}

/// Why `m` is under space pressure its policy lets act on it, if it is.
fn pressed(m: &Managed, policy: &Policy, inv: &Inventory) -> Option<String> {
    let pool = pool_of(m, inv);
    if m.record.thin && pool.is_none() {
        return None;
    }
    gauges(m)
        .iter()
        .find_map(|g| crossed(policy, *g, &m.record.vg, pool.as_deref(), inv))
}

/// What space pressure may consider at all: `policies` (all when empty) that still list the
/// volume.
fn in_scope<'c>(m: &Managed, config: &'c Config, policies: &[String]) -> Option<&'c Policy> {
    let policy = config.policy(&m.record.policy)?;
    let listed = policy
        .volumes
        .iter()
        .any(|v| v.vg == m.record.vg && v.lv == m.record.origin);
    (listed && (policies.is_empty() || policies.contains(&policy.name))).then_some(policy)
}

/// Whether `m` is the newest of its group: the newest by time, or the newest not dated in the
/// future (what freshness stands on).
fn is_newest(m: &Managed, policy: &Policy, fleet: &Fleet, now: DateTime<Utc>) -> bool {
    let key = |x: &&Managed| (x.record.time, x.record.name.clone());
    let valid = || {
        fleet
            .group(&m.record.vg, &m.record.origin)
            .filter(|x| x.is_valid())
    };
    let newest = valid().max_by_key(key);
    let newest_dated = valid()
        .filter(|x| !crate::plan::is_future(x.record.time, now, policy.future_skew))
        .max_by_key(key);
    [newest, newest_dated]
        .iter()
        .flatten()
        .any(|n| n.record.id == m.record.id)
}

/// What the catalog says must not be touched now: snapshots a rollback uses.
#[derive(Default)]
struct Busy {
    rollbacks: Vec<i64>,
}

/// What space pressure's choices look at, as one step finds it.
struct Scene<'a> {
    config: &'a Config,
    /// Only these policies (all when empty).
    policies: &'a [String],
    inv: &'a Inventory,
    fleet: &'a Fleet,
    busy: &'a Busy,
    now: DateTime<Utc>,
}

/// Why `m` may not be removed for space, if it may not.
fn held(m: &Managed, policy: &Policy, scene: &Scene<'_>) -> Option<&'static str> {
    let Scene {
        fleet,
        inv,
        busy,
        now,
        ..
    } = *scene;
    let view = m.view();
    if view.pinned {
        Some("pinned")
    } else if view.busy.is_some() {
        Some("mounted, open or merging")
    } else if m.lv.is_none() {
        Some("not seen by LVM yet")
    } else if busy.rollbacks.contains(&m.record.id) {
        Some("a rollback uses it")
    } else if inv
        .find(&m.record.vg, &m.record.origin)
        .is_some_and(|o| o.merging)
    {
        Some("a merge into its origin is pending")
    } else if crate::plan::is_future(m.record.time, now, policy.future_skew) {
        Some("dated in the future")
    } else if !policy.emergency_removes_newest && is_newest(m, policy, fleet, now) {
        Some("its group's newest")
    } else {
        None
    }
}

/// The other members of `m`'s snapshot set (none outside a set).
fn set_mates<'f>(m: &Managed, fleet: &'f Fleet) -> Vec<&'f Managed> {
    let Some(id) = m.record.set.as_deref() else {
        return Vec::new();
    };
    fleet
        .managed()
        .iter()
        .filter(|x| x.record.set.as_deref() == Some(id) && x.record.id != m.record.id)
        .collect()
}

/// Why another member of `m`'s set holds the whole set, if one does: a set goes as a whole.
fn set_held(m: &Managed, scene: &Scene<'_>) -> Option<String> {
    set_mates(m, scene.fleet).into_iter().find_map(|x| {
        let policy = scene.config.policy(&x.record.policy)?;
        held(x, policy, scene).map(|h| format!("{} of its set is {h}", x.record.name))
    })
}

/// Where a snapshot's space is measured: (VG, pool).
fn place(m: &Managed, inv: &Inventory) -> (String, Option<String>) {
    (m.record.vg.clone(), pool_of(m, inv))
}

/// The next snapshot space pressure removes, as an index into `fleet.managed`, with why; the
/// oldest first (invalid ones, whose data is gone, before all), a group's newest after every
/// other. `None` when nothing is over a threshold or nothing under one may go.
fn next_removal(
    scene: &Scene<'_>,
    skip: &[i64],
    stalled: &[(String, Option<String>)],
) -> Option<(usize, String)> {
    let Scene {
        config,
        policies,
        inv,
        fleet,
        now,
        ..
    } = *scene;
    fleet
        .managed()
        .iter()
        .enumerate()
        .filter(|(_, m)| !skip.contains(&m.record.id))
        .filter(|(_, m)| !stalled.contains(&place(m, inv)))
        .filter_map(|(i, m)| {
            let policy = in_scope(m, config, policies)?;
            let why = pressed(m, policy, inv)?;
            (held(m, policy, scene).is_none() && set_held(m, scene).is_none())
                .then_some((i, m, policy, why))
        })
        .min_by_key(|(_, m, policy, _)| {
            (
                is_newest(m, policy, fleet, now),
                m.is_valid(),
                m.record.time,
                m.record.name.clone(),
            )
        })
        .map(|(i, _, _, why)| (i, why))
}

/// What is still over a threshold, each with what holds the policy's snapshots there.
fn still_over(
    scene: &Scene<'_>,
    stalled: &[(String, Option<String>)],
    only_stalled: bool,
) -> Vec<Left> {
    let Scene {
        config,
        policies,
        inv,
        fleet,
        ..
    } = *scene;
    let mut left: Vec<Left> = Vec::new();
    for policy in &config.policies {
        if !policies.is_empty() && !policies.contains(&policy.name) {
            continue;
        }
        let mut seen: Vec<(String, Option<String>)> = Vec::new();
        for volume in &policy.volumes {
            let pool = inv
                .find(&volume.vg, &volume.lv)
                .and_then(|o| o.pool.clone());
            let here = (volume.vg.clone(), pool.clone());
            if seen.contains(&here) || (only_stalled && !stalled.contains(&here)) {
                continue;
            }
            seen.push(here.clone());
            let gauges: &[Gauge] = if pool.is_some() {
                &[Gauge::PoolData, Gauge::PoolMetadata]
            } else {
                &[Gauge::VgFree]
            };
            let whys: Vec<String> = gauges
                .iter()
                .filter_map(|g| crossed(policy, *g, &volume.vg, pool.as_deref(), inv))
                .collect();
            if whys.is_empty() {
                continue;
            }
            let holds: Vec<String> = fleet
                .managed()
                .iter()
                .filter(|m| m.record.policy == policy.name && place(m, inv) == here)
                .filter_map(|m| held(m, policy, scene).map(|h| format!("{} ({h})", m.record.name)))
                .collect();
            let rest = if stalled.contains(&here) {
                format!(
                    "removing {STALL} snapshots in a row freed nothing there, so the volumes themselves fill it; lvsnap removes no more there until it is below the thresholds of the policies with volumes there, or a point fuller than when it stopped"
                )
            } else if holds.is_empty() {
                format!("policy {} has no snapshot there that may go", policy.name)
            } else {
                format!(
                    "what is left of policy {} may not go: {}",
                    policy.name,
                    holds.join(", ")
                )
            };
            left.push(Left {
                place: key(&here),
                text: format!(
                    "{}; {rest}; other policies' snapshots, or the volumes themselves, hold the rest (extend the pool or volume group, or free space in it)",
                    whys.join("; ")
                ),
            });
        }
    }
    left
}

/// A place as the catalog keeps it: "VG/POOL", or "VG" for thick snapshots' volume group.
fn key(here: &(String, Option<String>)) -> String {
    match &here.1 {
        Some(pool) => format!("{}/{pool}", here.0),
        None => here.0.clone(),
    }
}

fn unkey(key: &str) -> (String, Option<String>) {
    match key.split_once('/') {
        Some((vg, pool)) => (vg.to_owned(), Some(pool.to_owned())),
        None => (key.to_owned(), None),
    }
}

/// The policies with a volume whose snapshots take their space at `here`.
fn policies_at<'c>(
    config: &'c Config,
    inv: &Inventory,
    here: &(String, Option<String>),
) -> Vec<&'c Policy> {
    config
        .policies
        .iter()
        .filter(|p| {
            p.volumes.iter().any(|v| {
                v.vg == here.0 && inv.find(&v.vg, &v.lv).and_then(|o| o.pool.clone()) == here.1
            })
        })
        .collect()
}

/// The gauges over the threshold of a policy with volumes at `here`.
fn over_here(config: &Config, inv: &Inventory, here: &(String, Option<String>)) -> Vec<Gauge> {
    let gauges: &[Gauge] = if here.1.is_some() {
        &[Gauge::PoolData, Gauge::PoolMetadata]
    } else {
        &[Gauge::VgFree]
    };
    let at = policies_at(config, inv, here);
    gauges
        .iter()
        .copied()
        .filter(|g| {
            at.iter()
                .any(|p| crossed(p, *g, &here.0, here.1.as_deref(), inv).is_some())
        })
        .collect()
}

/// A pool's data and metadata fill, to tell whether a removal freed anything.
fn fills(inv: &Inventory, vg: &str, pool: Option<&str>) -> (f64, f64) {
    pool.and_then(|p| inv.find(vg, p)).map_or((0.0, 0.0), |p| {
        (
            p.data_percent.unwrap_or(0.0),
            p.metadata_percent.unwrap_or(0.0),
        )
    })
}

impl Engine<'_> {
    /// Removes snapshots of `policies` (all when empty) under space pressure, one at a time,
    /// each measured again after (a thin pool by a new `lvs`), and drops them from `fleet`.
    /// Returns what it did, the pressure that is left, and the inventory as it now stands (the
    /// removed volumes gone, their space free). In a dry run, only says what would go; what a
    /// thin snapshot frees is unknown then, so every candidate is listed and kept in `fleet`.
    ///
    /// # Errors
    /// The catalog failed; a removal or a measurement that fails is in the returned errors.
    pub fn relieve(
        &mut self,
        mut inv: Inventory,
        fleet: &mut Fleet,
        policies: &[String],
    ) -> Result<(Relief, Inventory), RunError> {
        let mut relief = Relief::default();
        let stalls = self.catalog.space_stalls()?;
        if !watched(self.config) {
            // Thresholds set again later start afresh.
            if !self.dry_run && !stalls.is_empty() {
                self.record(|c| {
                    stalls
                        .iter()
                        .try_for_each(|x| c.clear_space_stall(&x.place))
                })?;
            }
            return Ok((relief, inv));
        }
        let pending = self.catalog.rollbacks(true)?;
        // A name swap a crash interrupted has volumes in between names: nothing goes until
        // it is finished.
        if pending.iter().any(|r| r.swap.is_some()) {
            relief.left.push(Left {
                place: String::new(),
                text: "a rollback's name swap is unfinished (`lvsnap run` finishes it first): space pressure waits".to_owned(),
            });
            return Ok((relief, inv));
        }
        let busy = Busy {
            rollbacks: pending.iter().map(|r| r.snapshot_id).collect(),
        };
        let mut skip: Vec<i64> = Vec::new();
        // A place stays stalled across runs (and daemon polls) while it is over threshold and
        // no fuller than a point above where it stalled: filling on, it is tried again.
        let mut stalled: Vec<(String, Option<String>)> = Vec::new();
        for x in &stalls {
            let here = unkey(&x.place);
            let over = over_here(self.config, &inv, &here);
            let (data, metadata) = fills(&inv, &here.0, here.1.as_deref());
            let fuller = over.iter().any(|g| match g {
                Gauge::PoolData => data >= x.data + 1.0,
                Gauge::PoolMetadata => metadata >= x.metadata + 1.0,
                Gauge::VgFree => true,
            });
            if !over.is_empty() && !fuller {
                stalled.push(here);
            } else if !self.dry_run {
                self.record(|c| c.clear_space_stall(&x.place))?;
            }
        }
        let mut idle: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
        loop {
            let scene = Scene {
                config: self.config,
                policies,
                inv: &inv,
                fleet,
                busy: &busy,
                now: self.now,
            };
            let Some((i, why)) = next_removal(&scene, &skip, &stalled) else {
                break;
            };
            let m = fleet.managed()[i].clone();
            // A set goes as a whole: the member under pressure first, then the others.
            let mut batch = vec![m.clone()];
            batch.extend(set_mates(&m, fleet).into_iter().cloned());
            let here = place(&m, &inv);
            if !self.dry_run && batch.len() > 1 {
                // Marked first: what a crash or a failed removal leaves of the set is removed
                // by the next run, pressure or not.
                let ids: Vec<i64> = batch.iter().map(|x| x.record.id).collect();
                let why = format!("removed for space as a whole set: {why}");
                self.record(|c| c.give_up_set(&ids, &why))?;
            }
            let mut thin_gone = false;
            for x in &batch {
                let why = if x.record.id == m.record.id {
                    why.clone()
                } else {
                    format!(
                        "{why}; set {} goes as a whole",
                        x.record.set.as_deref().unwrap_or_default()
                    )
                };
                let reason = format!("{REASON}: {why}");
                let removal = Removal {
                    policy: x.record.policy.clone(),
                    volume: format!("{}/{}", x.record.vg, x.record.origin),
                    name: x.record.name.clone(),
                    why,
                };
                if self.dry_run {
                    relief.removed.push(removal);
                    if x.record.thin {
                        relief.estimated = true;
                        skip.push(x.record.id);
                    } else {
                        fleet.retain(|y| y.record.id != x.record.id);
                        forget(&mut inv, x);
                    }
                    continue;
                }
                if let Err(e) = self.remove(x, &reason) {
                    error!(snapshot = %format!("{}/{}", x.record.vg, x.record.name), "removing for space failed: {e}");
                    relief.errors.push(Removal {
                        why: format!("removing it for space failed: {e}"),
                        ..removal
                    });
                    // The rest waits for the next run, which removes what is left of the set
                    // (it is marked given up).
                    for y in &batch {
                        skip.push(y.record.id);
                    }
                    break;
                }
                warn!(policy = %removal.policy, volume = %removal.volume, snapshot = %removal.name, reason = %reason, "removed for space");
                relief.removed.push(removal);
                fleet.retain(|y| y.record.id != x.record.id);
                if x.record.thin {
                    thin_gone = true;
                } else {
                    forget(&mut inv, x);
                }
            }
            if self.dry_run || !thin_gone || skip.contains(&m.record.id) {
                continue;
            }
            // Only the gauges that are over tell whether the removal helped.
            let over: Vec<Gauge> = self
                .config
                .policy(&m.record.policy)
                .map(|p| {
                    gauges(&m)
                        .iter()
                        .copied()
                        .filter(|g| crossed(p, *g, &here.0, here.1.as_deref(), &inv).is_some())
                        .collect()
                })
                .unwrap_or_default();
            let before = fills(&inv, &here.0, here.1.as_deref());
            match self.inventory() {
                Ok(now) => inv = now,
                Err(e) => {
                    relief.errors.push(Removal {
                        policy: m.record.policy.clone(),
                        volume: format!("{}/{}", m.record.vg, m.record.origin),
                        name: m.record.name.clone(),
                        why: format!(
                            "measuring the pool again failed, so space pressure stopped: {e}"
                        ),
                    });
                    forget(&mut inv, &m);
                    break;
                }
            }
            let after = fills(&inv, &here.0, here.1.as_deref());
            let freed = over.iter().any(|g| match g {
                Gauge::PoolData => after.0 < before.0,
                Gauge::PoolMetadata => after.1 < before.1,
                Gauge::VgFree => true,
            });
            let n = idle.entry(here.clone()).or_default();
            *n = if freed { 0 } else { *n + 1 };
            if *n >= STALL {
                warn!(place = %key(&here), "{STALL} removals in a row freed nothing: space pressure stops there");
                let stall = SpaceStall {
                    place: key(&here),
                    since: self.now,
                    data: after.0,
                    metadata: after.1,
                };
                self.record(|c| c.set_space_stall(&stall))?;
                stalled.push(here);
            }
        }
        // A dry run that cannot tell what thin removals free says only what is stalled.
        let scene = Scene {
            config: self.config,
            policies,
            inv: &inv,
            fleet,
            busy: &busy,
            now: self.now,
        };
        relief.left = still_over(&scene, &stalled, relief.estimated);
        Ok((relief, inv))
    }
}

/// `m` gone from `inv`: its volume, and (thick) its space given back to the VG.
fn forget(inv: &mut Inventory, m: &Managed) {
    let size = m.lv.as_ref().map_or(m.record.size, |l| l.size);
    inv.remove(&m.record.vg, &m.record.name);
    if !m.record.thin {
        if let Some(v) = inv.vgs.get_mut(&m.record.vg) {
            v.free += size;
        }
    }
}
