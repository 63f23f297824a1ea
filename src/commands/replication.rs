//! `lvsnap replicate` (also run by `run` and the daemon) and `lvsnap replicas`: each policy's
//! thin snapshots replicated into the target pool of its `[policy.NAME.replicate]` table —
//! whole the first time, then the blocks changed since the newest replica — and the replicas
//! there kept by the table's own keep rules.
//!
//! What the target holds is read from the target itself (`lvsnap receive --list`), never
//! assumed from the catalog: the newest replica of a volume decides the next increment's base,
//! and the receiving end refuses to remove it. The source snapshot that replica equals is kept
//! here by the planner (reason `replica-base`) until a newer replica exists.

use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;

use super::Ctx;
use crate::catalog::{NewReplica, ReplicaRecord, ReplicaState};
use crate::config::{Policy, ReplicatePolicy};
use crate::error::Error;
use crate::exit;
use crate::lock::Held;
use crate::lvm::LvKind;
use crate::plan::{is_due, plan_retention, CronTicks, Rules, SnapshotView};
use crate::replicate::target::{Listing, Target};
use crate::run::RunError;

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// Only these policies (default: every policy with a replicate table).
    pub policy: Vec<String>,
    /// Send the newest snapshot whole, whatever the target holds (after a base replica was
    /// changed or removed there, or its source snapshot here).
    #[arg(long)]
    pub full: bool,
    /// Only replicate volumes whose replication schedule is due (what `run` does).
    #[arg(long)]
    pub due: bool,
    /// Say what would be sent and removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune replicas even when more than the policy's max-remove-percent would go at once.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreReplicaArgs {
    /// The replica (named like the source snapshot it equals), as `lvsnap replicas` lists it.
    pub replica: String,
    /// The thin pool on this host the new volume goes into, `VG/POOL`.
    #[arg(long, value_name = "VG/POOL")]
    pub pool: String,
    /// The new volume's name; refused if it exists (a restore never writes over a volume).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// The policy whose target holds the replica (needed only if several could).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplicasArgs {
    /// Only these policies (default: every policy with a replicate table).
    pub policy: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What replication did for one volume.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// A replica was made: whole, or the blocks changed since `base`.
    Done {
        replica: String,
        base: Option<String>,
        bytes: u64,
        seconds: f64,
    },
    /// The dry run's verdict: this would be sent.
    Would {
        replica: String,
        base: Option<String>,
    },
    /// The newest snapshot is replicated already.
    UpToDate {
        replica: String,
    },
    /// The schedule is not due, or there is no snapshot yet.
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct VolumeReplication {
    pub policy: String,
    pub volume: String,
    pub target: String,
    pub sent: Sent,
    /// Replicas removed from the target by the keep rules.
    pub removed: Vec<String>,
    /// Replicas the keep rules would remove but the target refused or could not remove.
    pub errors: Vec<String>,
}

impl VolumeReplication {
    pub fn failed(&self) -> bool {
        matches!(self.sent, Sent::Failed(_)) || !self.errors.is_empty()
    }
}

/// The options of one replication pass.
pub struct Pass<'a> {
    pub policies: &'a [String],
    pub full: bool,
    /// Prune replicas even when more than max-remove-percent of them would go at once.
    pub force: bool,
    pub due_only: bool,
    pub dry_run: bool,
    /// The lock: taken for each step that reads or changes LVM and the catalog, let go of
    /// while a stream runs (the receiving end on this host takes it too).
    pub held: &'a Held,
}

fn refused(why: String) -> Error {
    Error::Run(RunError::Refused(why))
}

/// `lvsnap replicate [POLICY…]`.
///
/// # Errors
/// An unknown policy, or one without a replicate table; the lock or the catalog failed.
pub fn replicate(ctx: &mut Ctx<'_>, a: &ReplicateArgs) -> Result<i32, Error> {
    ctx.check_policies(&a.policy)?;
    for name in &a.policy {
        if ctx
            .config
            .policy(name)
            .is_some_and(|p| p.replicate.is_none())
        {
            return Err(Error::Usage(format!(
                "policy {name} has no [policy.{name}.replicate] table: add one with pool = \"VG/POOL\" and keep rules"
            )));
        }
    }
    ctx.tools()?;
    let held = ctx.hold()?;
    let done = pass(
        ctx,
        &Pass {
            policies: &a.policy,
            full: a.full,
            force: a.force,
            due_only: a.due,
            dry_run: a.dry_run,
            held: &held,
        },
    )?;
    if a.json {
        writeln!(ctx.out, "{}", report_json(&done))?;
    } else {
        write_report(ctx.out, &done)?;
    }
    Ok(if done.iter().any(VolumeReplication::failed) {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// Replicates every volume of the policies asked for (all with a replicate table when none
/// is named), one after another; a volume's failure never stops the others.
///
/// # Errors
/// The lock or the catalog failed.
pub fn pass(ctx: &mut Ctx<'_>, p: &Pass<'_>) -> Result<Vec<VolumeReplication>, Error> {
    let mut out = Vec::new();
    for policy in &ctx.config.policies {
        let Some(r) = &policy.replicate else { continue };
        if !p.policies.is_empty() && !p.policies.contains(&policy.name) {
            continue;
        }
        out.extend(replicate_policy(ctx, p, policy, r)?);
    }
    Ok(out)
}

fn replicate_policy(
    ctx: &mut Ctx<'_>,
    p: &Pass<'_>,
    policy: &Policy,
    r: &ReplicatePolicy,
) -> Result<Vec<VolumeReplication>, Error> {
    let outcome = |volume: String, sent: Sent| VolumeReplication {
        policy: policy.name.clone(),
        volume,
        target: r.target(),
        sent,
        removed: Vec::new(),
        errors: Vec::new(),
    };
    let all_failed = |why: String| -> Vec<VolumeReplication> {
        policy
            .volumes
            .iter()
            .map(|v| outcome(v.to_string(), Sent::Failed(why.clone())))
            .collect()
    };
    let target = match Target::new(r, ctx.config) {
        Ok(t) => t,
        Err(e) => return Ok(all_failed(format!("{}: {e}", r.target()))),
    };
    // Read without the lock: the receiving end on this host takes it to remove replicas.
    p.held.release();
    let listing = target.list();
    p.held.reacquire()?;
    let mut listing = match listing {
        Ok(l) => l,
        Err(e) => return Ok(all_failed(e)),
    };
    let mut results = Vec::new();
    for volume in &policy.volumes {
        let mut done = outcome(volume.to_string(), Sent::Skipped(String::new()));
        done.sent = match one_volume(ctx, p, policy, r, &target, &mut listing, volume) {
            Ok(sent) => sent,
            // Without the lock nothing more may be done.
            Err(e @ Error::Lock(_)) => return Err(e),
            Err(e) => Sent::Failed(e.to_string()),
        };
        results.push(done);
    }
    // Pruning reads the target again: what was just received counts.
    if !p.dry_run && results.iter().any(|v| matches!(v.sent, Sent::Done { .. })) {
        p.held.release();
        let fresh = target.list();
        p.held.reacquire()?;
        match fresh {
            Ok(l) => listing = l,
            Err(e) => {
                for v in &mut results {
                    v.errors.push(format!("replicas not pruned: {e}"));
                }
                return Ok(results);
            }
        }
    }
    prune(ctx, p, policy, r, &target, &listing, &mut results)?;
    Ok(results)
}

/// The UUID of a volume in this host's LVM, and whether it is a thin volume.
fn origin_uuid(
    inv: &crate::lvm::Inventory,
    volume: &crate::config::VolumeRef,
) -> Result<String, String> {
    let lv = inv
        .find(&volume.vg, &volume.lv)
        .ok_or_else(|| format!("{volume} does not exist"))?;
    if lv.kind != LvKind::ThinVolume {
        return Err(format!(
            "{volume} is not a thin volume: only thin volumes are replicated (their pool records which blocks changed); back it up instead"
        ));
    }
    Ok(lv.uuid.clone())
}

fn one_volume(
    ctx: &mut Ctx<'_>,
    p: &Pass<'_>,
    policy: &Policy,
    r: &ReplicatePolicy,
    target: &Target,
    listing: &mut Listing,
    volume: &crate::config::VolumeRef,
) -> Result<Sent, Error> {
    let mut catalog = ctx.catalog(!p.dry_run)?;
    let (inv, fleet) = {
        let mut engine = ctx.engine(&mut catalog, p.dry_run);
        let surveyed = engine.survey()?;
        engine.flush()?;
        surveyed
    };
    let uuid = origin_uuid(&inv, volume).map_err(refused)?;
    let chain = listing.of_volume(&uuid);
    let newest_replica = chain.last().copied().cloned();
    // Records a crash left `sending`, and sends whose end was lost (a connection cut after
    // the target made the replica), are settled by what the target holds.
    let records = catalog.replicas()?;
    if !p.dry_run {
        for rec in records.iter().filter(|x| {
            x.policy == policy.name
                && x.target == target.name
                && x.vg == volume.vg
                && x.origin == volume.lv
                && (x.state == ReplicaState::Failed
                    || (x.state == ReplicaState::Sending
                        && !crate::lock::lvsnap_alive(x.pid.unwrap_or(0))
                        && !in_flight(x.id)))
        }) {
            let arrived = chain.iter().any(|c| c.snapshot_uuid == rec.snapshot_uuid);
            // A failure is history once another send of the same snapshot completed.
            let retried = records.iter().any(|o| {
                o.state == ReplicaState::Complete
                    && o.snapshot_uuid == rec.snapshot_uuid
                    && o.target == rec.target
            });
            if arrived && !(rec.state == ReplicaState::Failed && retried) {
                catalog.complete_replica(
                    rec.id,
                    rec.bytes.unwrap_or(0),
                    std::time::Duration::ZERO,
                    ctx.now,
                )?;
            } else if rec.state == ReplicaState::Sending {
                catalog.end_replica(
                    rec.id,
                    ReplicaState::Failed,
                    "interrupted: the target holds no such replica",
                    ctx.now,
                )?;
            }
        }
    }
    let all: Vec<&crate::reconcile::Managed> = fleet
        .group(&volume.vg, &volume.lv)
        .filter(|m| {
            m.is_valid()
                && m.lv
                    .as_ref()
                    .is_some_and(|l| l.kind == LvKind::ThinSnapshot)
        })
        .collect();
    // A snapshot dated in the future (the clock ran ahead) is not sent: its replica would
    // stay the newest, and every later increment would be on it.
    let mut own: Vec<&crate::reconcile::Managed> = all
        .iter()
        .copied()
        .filter(|m| !crate::plan::is_future(m.record.time, ctx.now, policy.future_skew))
        .collect();
    own.sort_by_key(|m| m.record.time);
    let Some(newest) = own.last().copied() else {
        return Ok(Sent::Skipped(format!(
            "{volume} has no thin snapshot to replicate yet"
        )));
    };
    let newest_uuid = newest
        .lv
        .as_ref()
        .map(|l| l.uuid.clone())
        .unwrap_or_default();
    if let Some(n) = &newest_replica {
        if n.snapshot_uuid == newest_uuid {
            return Ok(Sent::UpToDate {
                replica: n.name.clone(),
            });
        }
    }
    if p.due_only {
        if let Some(schedule) = &r.schedule {
            let last = records
                .iter()
                .filter(|x| {
                    x.state == ReplicaState::Complete
                        && x.policy == policy.name
                        && x.target == target.name
                        && x.vg == volume.vg
                        && x.origin == volume.lv
                })
                .map(|x| x.started_at)
                .max();
            let ticks = CronTicks {
                schedule,
                timezone: policy.timezone,
            };
            if !is_due(&ticks, ctx.now, last) {
                return Ok(Sent::Skipped("not due".to_owned()));
            }
        }
    }
    let base = match (&newest_replica, p.full) {
        (None, _) | (_, true) => None,
        (Some(n), false) => {
            if n.writable || n.open {
                return Err(refused(format!(
                    "the newest replica {}/{} on the target is {}: it may no longer equal its source, so nothing can be sent on it; `lvsnap replicate --full {}` sends whole",
                    r.vg,
                    n.name,
                    if n.writable { "writable" } else { "open or mounted" },
                    policy.name
                )));
            }
            let found = all
                .iter()
                .find(|m| m.lv.as_ref().is_some_and(|l| l.uuid == n.snapshot_uuid));
            if let Some(b) = found.filter(|b| b.record.time >= newest.record.time) {
                return Err(refused(format!(
                    "the newest replica {}/{} on the target is of {}, dated {}, later than the newest snapshot here that is not in the future ({}): check the clock",
                    r.vg,
                    n.name,
                    b.record.name,
                    crate::units::utc(b.record.time),
                    newest.record.name
                )));
            }
            let Some(b) = found else {
                return Err(refused(format!(
                    "the newest replica {}/{} on the target is of snapshot {} of {volume}, which is gone here, so no increment can be sent on it; `lvsnap replicate --full {}` sends whole",
                    r.vg, n.name, n.name, policy.name
                )));
            };
            Some(*b)
        }
    };
    if p.dry_run {
        return Ok(Sent::Would {
            replica: newest.record.name.clone(),
            base: base.map(|b| b.record.name.clone()),
        });
    }
    let outgoing = super::replicate::outgoing(ctx, &inv, newest, base)?;
    let id = catalog.begin_replica(
        &NewReplica {
            policy: &policy.name,
            target: &target.name,
            vg: &volume.vg,
            origin: &volume.lv,
            snapshot: &newest.record.name,
            snapshot_uuid: &newest_uuid,
            snapshot_time: newest.record.time,
            base: base.map(|b| b.record.name.as_str()),
        },
        ctx.now,
    );
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            outgoing.close(ctx);
            return Err(e.into());
        }
    };
    let _flight = InFlight::new(id);
    let started = Instant::now();
    // The stream runs without the lock: the receiving end on this host takes it to make the
    // replica, and the snapshot is open meanwhile (LVM removes no open volume).
    p.held.release();
    let streamed = (|| -> Result<(u64, String), String> {
        let receiving = target.receive()?;
        let sent = outgoing.stream(receiving.stdin()?, &ctx.cancel);
        let (ok, said) = receiving.finish();
        match (sent, ok) {
            (Ok(summary), true) => Ok((summary.data_bytes, said)),
            (Ok(_), false) => Err(format!("the receiving end failed: {said}")),
            (Err(e), _) if said.is_empty() => Err(e.to_string()),
            (Err(e), _) => Err(format!("{e}; the receiving end said: {said}")),
        }
    })();
    let elapsed = started.elapsed();
    let finished = ctx.now + chrono::Duration::from_std(elapsed).unwrap_or_default();
    // A send whose end was lost (the connection cut after the target made the replica) is
    // told by the target.
    let streamed = streamed.or_else(|why| {
        let arrived = target.list().is_ok_and(|l| {
            l.replicas
                .iter()
                .any(|x| x.snapshot_uuid == newest_uuid && x.volume_uuid == uuid)
        });
        if arrived {
            Ok((0, format!("{why}; but the target holds the replica")))
        } else {
            Err(why)
        }
    });
    let relocked = p.held.reacquire();
    let recorded = match &streamed {
        Ok((bytes, _)) => catalog.complete_replica(id, *bytes, elapsed, finished),
        Err(why) => catalog.end_replica(id, ReplicaState::Failed, why, finished),
    };
    outgoing.close(ctx);
    relocked?;
    recorded?;
    match streamed {
        Ok((bytes, said)) => {
            tracing::info!(policy = %policy.name, volume = %volume, target = %target.name, "{said}");
            Ok(Sent::Done {
                replica: newest.record.name.clone(),
                base: base.map(|b| b.record.name.clone()),
                bytes,
                seconds: elapsed.as_secs_f64(),
            })
        }
        Err(why) => Err(refused(why)),
    }
}

/// Replica records this process is sending now (the daemon runs jobs side by side): a record
/// `sending` under this process's pid is a leftover unless listed here.
static IN_FLIGHT: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());

struct InFlight(i64);

impl InFlight {
    fn new(id: i64) -> Self {
        IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        InFlight(id)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i| *i != self.0);
    }
}

fn in_flight(id: i64) -> bool {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&id)
}

/// Removes the replicas the keep rules no longer keep, per volume, never the newest (the next
/// increment's base). Only replicas of this policy's volumes, by their source UUIDs.
fn prune(
    ctx: &mut Ctx<'_>,
    p: &Pass<'_>,
    policy: &Policy,
    r: &ReplicatePolicy,
    target: &Target,
    listing: &Listing,
    results: &mut [VolumeReplication],
) -> Result<(), Error> {
    let engine_catalog = ctx.catalog(!p.dry_run)?;
    let inv = super::replicate::inventory(ctx)?;
    let rules = Rules {
        keep: r.keep.clone(),
        ..Rules::from(policy)
    };
    for (volume, result) in policy.volumes.iter().zip(results.iter_mut()) {
        let Ok(uuid) = origin_uuid(&inv, volume) else {
            continue;
        };
        let chain = listing.of_volume(&uuid);
        let views: Vec<SnapshotView> = chain
            .iter()
            .map(|c| {
                let mut v = SnapshotView::new(c.name.clone(), replica_time(&c.time));
                // The base of the next increment stays whatever the rules say.
                v.pinned = Some(&c.name) == chain.last().map(|l| &l.name);
                v
            })
            .collect();
        if views.is_empty() {
            continue;
        }
        let plan = plan_retention(ctx.now, &rules, &views);
        let gone: Vec<String> = plan
            .removals(p.force)
            .map(|d| views[d.index].name.clone())
            .collect();
        if let (Some(g), false) = (&plan.guard, p.force) {
            result.errors.push(format!(
                "replicas not pruned: {}",
                g.to_string().replace(
                    "run prune --force",
                    &format!("run `lvsnap replicate --force {}`", policy.name)
                )
            ));
            continue;
        }
        if gone.is_empty() {
            continue;
        }
        if p.dry_run {
            result.removed = gone;
            continue;
        }
        p.held.release();
        let removed = target.remove(&gone);
        p.held.reacquire()?;
        let said = match removed {
            Ok(text) => text,
            Err(e) => {
                result.errors.push(format!("pruning replicas: {e}"));
                String::new()
            }
        };
        let records = engine_catalog.replicas()?;
        for name in gone {
            if said
                .lines()
                .any(|l| l.trim() == format!("removed {}/{name}", r.vg))
            {
                // By the source snapshot's UUID: another host's snapshot may have the name.
                let Some(gone_uuid) = chain
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| &c.snapshot_uuid)
                else {
                    continue;
                };
                for rec in records.iter().filter(|x| {
                    x.snapshot_uuid == *gone_uuid
                        && x.policy == policy.name
                        && x.target == target.name
                        && x.state == ReplicaState::Complete
                }) {
                    engine_catalog.end_replica(
                        rec.id,
                        ReplicaState::Removed,
                        "pruned by the replicate keep rules",
                        ctx.now,
                    )?;
                }
                result.removed.push(name);
            }
        }
    }
    Ok(())
}

/// A replica's time tag, `YYYYmmddTHHMMSSZ`.
fn replica_time(tag: &str) -> DateTime<Utc> {
    chrono::NaiveDateTime::parse_from_str(tag, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

fn sent_json(s: &Sent) -> serde_json::Value {
    match s {
        Sent::Done {
            replica,
            base,
            bytes,
            seconds,
        } => json!({
            "outcome": "sent", "replica": replica, "base": base, "bytes": bytes,
            "seconds": seconds,
        }),
        Sent::Would { replica, base } => json!({
            "outcome": "would-send", "replica": replica, "base": base,
        }),
        Sent::UpToDate { replica } => json!({"outcome": "up-to-date", "replica": replica}),
        Sent::Skipped(why) => json!({"outcome": "skipped", "reason": why}),
        Sent::Failed(why) => json!({"outcome": "failed", "error": why}),
    }
}

pub fn report_json(done: &[VolumeReplication]) -> serde_json::Value {
    serde_json::Value::Array(
        done.iter()
            .map(|v| {
                let mut o = sent_json(&v.sent);
                if let Some(m) = o.as_object_mut() {
                    m.insert("policy".into(), json!(v.policy));
                    m.insert("volume".into(), json!(v.volume));
                    m.insert("target".into(), json!(v.target));
                    m.insert("removed".into(), json!(v.removed));
                    m.insert("errors".into(), json!(v.errors));
                }
                o
            })
            .collect(),
    )
}

/// One line per volume, then one per removed replica and per error.
///
/// # Errors
/// The output could not be written.
pub fn write_report(out: &mut dyn Write, done: &[VolumeReplication]) -> std::io::Result<()> {
    for v in done {
        let head = format!("replicate {} {} -> {}", v.policy, v.volume, v.target);
        match &v.sent {
            Sent::Done {
                replica,
                base,
                bytes,
                seconds,
            } => writeln!(
                out,
                "{head}: sent {replica} {} ({} of data in {seconds:.1}s)",
                base.as_ref()
                    .map(|b| format!("as the blocks changed since {b}"))
                    .unwrap_or_else(|| "whole".to_owned()),
                crate::units::format_size(*bytes)
            )?,
            Sent::Would { replica, base } => writeln!(
                out,
                "{head}: would send {replica} {}",
                base.as_ref()
                    .map(|b| format!("as the blocks changed since {b}"))
                    .unwrap_or_else(|| "whole".to_owned())
            )?,
            Sent::UpToDate { replica } => writeln!(out, "{head}: up to date ({replica})")?,
            Sent::Skipped(why) => writeln!(out, "{head}: skipped: {why}")?,
            Sent::Failed(why) => writeln!(out, "{head}: FAILED: {why}")?,
        }
        for name in &v.removed {
            writeln!(out, "  removed replica {name} (keep rules)")?;
        }
        for e in &v.errors {
            writeln!(out, "  error: {e}")?;
        }
    }
    Ok(())
}

/// `lvsnap replicas [POLICY…]`: per volume, the replicas its target holds (read from the
/// target), the base of the next increment, the lag, and the last sends.
///
/// # Errors
/// An unknown policy; the catalog failed.
pub fn replicas(ctx: &mut Ctx<'_>, a: &ReplicasArgs) -> Result<i32, Error> {
    ctx.check_policies(&a.policy)?;
    ctx.tools()?;
    let (catalog, _) = ctx.catalog_or_lvm_only()?;
    let records = catalog.replicas()?;
    let inv = super::replicate::inventory(ctx)?;
    let mut rows = Vec::new();
    let mut failed = false;
    for policy in &ctx.config.policies {
        let Some(r) = &policy.replicate else { continue };
        if !a.policy.is_empty() && !a.policy.contains(&policy.name) {
            continue;
        }
        let listing = Target::new(r, ctx.config).and_then(|t| t.list());
        for volume in &policy.volumes {
            let mut row = json!({
                "policy": policy.name, "volume": volume.to_string(), "target": r.target(),
            });
            let recs: Vec<&ReplicaRecord> = records
                .iter()
                .filter(|x| {
                    x.policy == policy.name
                        && x.target == r.target()
                        && x.vg == volume.vg
                        && x.origin == volume.lv
                })
                .collect();
            let last: Vec<serde_json::Value> = recs
                .iter()
                .rev()
                .filter(|x| x.state != ReplicaState::Sending)
                .take(3)
                .map(|x| {
                    json!({
                        "snapshot": x.snapshot, "base": x.base, "state": x.state.as_str(),
                        "bytes": x.bytes, "seconds": x.duration_ms.map(|d| d as f64 / 1000.0),
                        "at": x.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "error": x.error,
                    })
                })
                .collect();
            row["last"] = json!(last);
            match (&listing, origin_uuid(&inv, volume)) {
                (Err(e), _) => {
                    failed = true;
                    row["error"] = json!(e);
                }
                (Ok(_), Err(e)) => row["error"] = json!(e),
                (Ok(l), Ok(uuid)) => {
                    let chain = l.of_volume(&uuid);
                    row["replicas"] = json!(chain.iter().map(|c| json!({
                        "name": c.name,
                        "time": replica_time(&c.time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "size": c.size, "open": c.open, "writable": c.writable,
                    })).collect::<Vec<_>>());
                    if let Some(n) = chain.last() {
                        let t = replica_time(&n.time);
                        row["base"] = json!(n.name);
                        row["lag_seconds"] = json!((ctx.now - t).num_seconds().max(0));
                    }
                }
            }
            rows.push(row);
        }
    }
    if a.json {
        writeln!(ctx.out, "{}", serde_json::Value::Array(rows))?;
    } else {
        let tz = ctx.config.settings.timezone;
        for row in &rows {
            writeln!(
                ctx.out,
                "{} {} -> {}",
                row["policy"].as_str().unwrap_or(""),
                row["volume"].as_str().unwrap_or(""),
                row["target"].as_str().unwrap_or("")
            )?;
            if let Some(e) = row["error"].as_str() {
                writeln!(ctx.out, "  error: {e}")?;
                continue;
            }
            let reps = row["replicas"].as_array().cloned().unwrap_or_default();
            if reps.is_empty() {
                writeln!(ctx.out, "  no replica yet")?;
            }
            for (i, c) in reps.iter().enumerate() {
                let t = c["time"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                writeln!(
                    ctx.out,
                    "  {}  {}  {}{}",
                    c["name"].as_str().unwrap_or(""),
                    t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                    crate::units::format_size(c["size"].as_u64().unwrap_or(0)),
                    if i + 1 == reps.len() {
                        "  (base of the next increment)"
                    } else {
                        ""
                    }
                )?;
            }
            if let Some(n) = reps.last() {
                if let Some(t) = n["time"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                {
                    writeln!(
                        ctx.out,
                        "  lag: the newest replica is of a snapshot taken {}",
                        crate::units::age(t.with_timezone(&Utc), ctx.now)
                    )?;
                }
            }
            for l in row["last"].as_array().into_iter().flatten() {
                writeln!(
                    ctx.out,
                    "  sent {} {}: {}{}",
                    l["snapshot"].as_str().unwrap_or(""),
                    l["base"]
                        .as_str()
                        .map(|b| format!("on {b}"))
                        .unwrap_or_else(|| "whole".to_owned()),
                    match (l["state"].as_str().unwrap_or(""), l["error"].as_str()) {
                        ("failed", Some(why)) => format!("failed: {why}"),
                        (state, _) => state.to_owned(),
                    },
                    l["bytes"]
                        .as_u64()
                        .map(|b| format!(
                            ", {} of data in {:.1}s",
                            crate::units::format_size(b),
                            l["seconds"].as_f64().unwrap_or(0.0)
                        ))
                        .unwrap_or_default(),
                )?;
            }
        }
    }
    Ok(if failed { exit::FAILED } else { exit::OK })
}

/// `lvsnap verify --replica SNAPSHOT`: the SHA-256 of each range of the source snapshot here
/// and of its replica on the policy's target, hashed on both sides at once.
///
/// # Errors
/// The snapshot is not lvsnap's, or its policy replicates nowhere; a device could not be read.
pub fn verify_replica(ctx: &mut Ctx<'_>, spec: &str, json: bool) -> Result<i32, Error> {
    ctx.tools()?;
    let (lv, policy) = {
        let _lock = ctx.lock()?;
        let mut catalog = ctx.catalog(true)?;
        let mut engine = ctx.engine(&mut catalog, false);
        let (inv, fleet) = engine.survey()?;
        engine.flush()?;
        let m = crate::resolve::readable_snapshot(&fleet, &inv, spec)?;
        let lv = m
            .lv
            .clone()
            .ok_or_else(|| refused(format!("{}/{} is not in LVM", m.record.vg, m.record.name)))?;
        (lv, m.record.policy.clone())
    };
    let r = ctx
        .config
        .policy(&policy)
        .and_then(|p| p.replicate.as_ref())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} was taken by policy {policy}, which has no replicate table: it has no replica to verify",
                lv.path()
            ))
        })?;
    let target = Target::new(r, ctx.config).map_err(refused)?;
    let (device, activated) = {
        let _lock = ctx.lock()?;
        super::replicate::open_exclusive(ctx, &lv)?
    };
    let started = Instant::now();
    let cancel = ctx.cancel.clone();
    let (theirs, ours) = std::thread::scope(|s| {
        let theirs = s.spawn(|| target.digests(&lv.name));
        let ours = crate::replicate::digest::digests(
            &device,
            lv.size,
            crate::replicate::digest::threads(),
            &cancel,
        );
        (
            theirs
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            ours,
        )
    });
    drop(device);
    if activated {
        let _ = super::replicate::exec(ctx, &crate::lvm::commands::deactivate(&lv.vg, &lv.name));
    }
    let ours = ours.map_err(|e| refused(format!("reading {}: {e}", lv.path())))?;
    let theirs = theirs.map_err(refused)?;
    let differ = ours.differences(&theirs);
    let replica = format!("{}/{}", r.vg, lv.name);
    if json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "snapshot": lv.path(), "replica": replica, "target": target.name,
                "equal": differ.is_empty(), "bytes": ours.size,
                "range_bytes": ours.range_bytes, "ranges": ours.sha256.len(),
                "differing": differ.iter().map(|(at, len)| json!({"offset": at, "length": len})).collect::<Vec<_>>(),
                "seconds": started.elapsed().as_secs_f64(),
            })
        )?;
    } else if differ.is_empty() {
        writeln!(
            ctx.out,
            "replica {replica} in {} equals {}: SHA-256 of {} ranges of {} ({} in {:.1}s)",
            target.name,
            lv.path(),
            ours.sha256.len(),
            crate::units::format_size(ours.range_bytes),
            crate::units::format_size(ours.size),
            started.elapsed().as_secs_f64()
        )?;
    } else {
        writeln!(
            ctx.out,
            "replica {replica} in {} DIFFERS from {} in {} of {} ranges: {}",
            target.name,
            lv.path(),
            differ.len(),
            ours.sha256.len(),
            differ
                .iter()
                .take(8)
                .map(|(at, len)| format!("{} bytes at {at}", len))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(if differ.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// `lvsnap restore-replica REPLICA --pool VG/POOL --as NAME`: the replica streamed back whole
/// from its target into a new thin volume here, through the same checked stream as a
/// replication (`receive --send` there, `receive --as` here).
///
/// # Errors
/// No policy's target holds the replica, or several do; the stream or the new volume failed.
pub fn restore_replica(ctx: &mut Ctx<'_>, a: &RestoreReplicaArgs) -> Result<i32, Error> {
    if let Some(p) = &a.policy {
        ctx.check_policies(std::slice::from_ref(p))?;
    }
    crate::config::types::check_lvm_name(&a.name, "the new volume's")
        .map_err(|e| Error::Usage(format!("--as {}: {e}", a.name)))?;
    let Some((vg, _)) = a.pool.split_once('/') else {
        return Err(Error::Usage(format!("--pool {}: write VG/POOL", a.pool)));
    };
    ctx.tools()?;
    // Said before anything is read from the target (the receiving end checks again).
    if let Some(taken) = super::replicate::inventory(ctx)?.find(vg, &a.name) {
        return Err(refused(format!(
            "{} exists: a restore makes a new volume and never writes over one; choose another name with --as",
            taken.path()
        )));
    }
    let mut found = Vec::new();
    let mut unreachable = Vec::new();
    for policy in &ctx.config.policies {
        let Some(r) = &policy.replicate else { continue };
        if a.policy.as_ref().is_some_and(|p| *p != policy.name) {
            continue;
        }
        let target = Target::new(r, ctx.config).map_err(refused)?;
        match target.list() {
            Ok(l) if l.replicas.iter().any(|x| x.name == a.replica) => found.push(target),
            Ok(_) => {}
            Err(e) => unreachable.push(e),
        }
    }
    let target = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(refused(format!(
                "no replicate target holds a replica {}{}: `lvsnap replicas` lists them",
                a.replica,
                if unreachable.is_empty() {
                    String::new()
                } else {
                    format!(" (not reached: {})", unreachable.join("; "))
                }
            )))
        }
        _ => {
            return Err(Error::Usage(format!(
                "several targets hold a replica {}: choose one with --policy",
                a.replica
            )))
        }
    };
    let here = Target::local(ctx.config, &a.pool).map_err(refused)?;
    let started = Instant::now();
    let said = target
        .send_into(&a.replica, &here, &a.name, &ctx.cancel)
        .map_err(refused)?;
    writeln!(
        ctx.out,
        "{said} (from {} in {:.1}s)",
        target.name,
        started.elapsed().as_secs_f64()
    )?;
    Ok(exit::OK)
}
