//! `lvsnap simulate`: replays a policy over a span of time — the schedule (or a fixed interval),
//! downtime windows with their catch-up snapshot, and a prune after every snapshot with `now` at
//! that instant, exactly as `run` would — and reports what survives. Pure: the caller gives
//! every instant.

use chrono::{DateTime, Duration, Utc};

use crate::config::Policy;
use crate::plan::{
    is_due, plan_retention, CronTicks, EveryTicks, Reasons, Rules, SnapshotView, Ticks,
};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Take a snapshot at this interval from `from` instead of following the schedule.
    pub every: Option<Duration>,
    /// Half-open windows `[start, end)` in which the host is down.
    pub down: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// A thin pool to watch fill, for space pressure.
    pub pool: Option<PoolModel>,
}

/// The simplest model of a thin pool under snapshots: the volumes hold `start` percent of it,
/// and each snapshot comes to hold `per_snapshot` percent alone (what the volume rewrites while
/// it is the newest), freed when it goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolModel {
    pub start: f64,
    pub per_snapshot: f64,
}

/// How the modelled pool fared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolOutcome {
    /// Snapshots removed under space pressure (`pool-data-emergency`).
    pub removed_for_space: usize,
    pub peak: f64,
    pub end: f64,
    /// When it first reached 100%: every thin volume in it stops there.
    pub full_at: Option<DateTime<Utc>>,
}

/// One snapshot left at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub time: DateTime<Utc>,
    pub reasons: Reasons,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Oldest first.
    pub kept: Vec<Kept>,
    pub taken: usize,
    pub removed: usize,
    /// Prunes that a guard (the share-of-group breaker) stopped, as `run` without `--force` would.
    pub blocked: usize,
    pub pool: Option<PoolOutcome>,
}

/// Runs the simulation.
pub fn simulate(policy: &Policy, req: &Request) -> Outcome {
    match req.every {
        Some(step) => replay(
            policy,
            req,
            &EveryTicks {
                start: req.from,
                step,
            },
        ),
        None => replay(
            policy,
            req,
            &CronTicks {
                schedule: &policy.schedule,
                timezone: policy.timezone,
            },
        ),
    }
}

fn replay(policy: &Policy, req: &Request, ticks: &impl Ticks) -> Outcome {
    let rules = Rules::from(policy);
    let mut out = Outcome {
        kept: Vec::new(),
        taken: 0,
        removed: 0,
        blocked: 0,
        pool: req.pool.map(|_| PoolOutcome::default()),
    };
    let mut snapshots: Vec<SnapshotView> = Vec::new();
    let is_down = |t: DateTime<Utc>| req.down.iter().any(|(a, b)| *a <= t && t < *b);
    let mut boots: Vec<DateTime<Utc>> = req
        .down
        .iter()
        .map(|(_, end)| *end)
        .filter(|end| *end >= req.from && *end < req.to)
        .collect();
    boots.sort();
    boots.dedup();
    let mut boots = boots.into_iter().peekable();

    let mut tick = match ticks.previous(req.from) {
        Some(t) if t == req.from => Some(t),
        _ => ticks.next(req.from),
    };
    loop {
        let next_tick = tick.filter(|t| *t < req.to);
        let event = match (next_tick, boots.peek().copied()) {
            (None, None) => break,
            (Some(t), Some(b)) if b < t => boots.next(),
            (Some(t), Some(b)) if b == t => {
                boots.next();
                tick = ticks.next(t);
                Some(t)
            }
            (Some(t), _) => {
                tick = ticks.next(t);
                Some(t)
            }
            (None, Some(_)) => boots.next(),
        };
        let Some(now) = event else { break };
        if is_down(now) || !is_due(ticks, now, snapshots.last().map(|s| s.time)) {
            continue;
        }
        relieve(policy, req.pool, now, &mut snapshots, &mut out);
        // Snapshots are appended in time order, so the newest is always last.
        snapshots.push(SnapshotView::new(now.to_rfc3339(), now));
        out.taken += 1;
        prune(&rules, now, &mut snapshots, &mut out);
        measure(req.pool, now, snapshots.len(), &mut out);
    }
    let plan = prune(&rules, req.to, &mut snapshots, &mut out);
    out.kept = plan;
    measure(req.pool, req.to, snapshots.len(), &mut out);
    out
}

/// The modelled pool's fill with `n` snapshots.
fn fill(m: PoolModel, n: usize) -> f64 {
    m.start + m.per_snapshot * n as f64
}

fn measure(model: Option<PoolModel>, now: DateTime<Utc>, n: usize, out: &mut Outcome) {
    let (Some(m), Some(o)) = (model, out.pool.as_mut()) else {
        return;
    };
    let f = fill(m, n);
    o.peak = o.peak.max(f);
    o.end = f;
    if f >= 100.0 && o.full_at.is_none() {
        o.full_at = Some(now);
    }
}

/// Space pressure before a run, as `run` does it: the oldest first, the newest only when the
/// policy allows, until the pool is below `pool-data-emergency`.
fn relieve(
    policy: &Policy,
    model: Option<PoolModel>,
    now: DateTime<Utc>,
    snapshots: &mut Vec<SnapshotView>,
    out: &mut Outcome,
) {
    let (Some(m), Some(limit)) = (model, policy.pool_data_emergency) else {
        return;
    };
    measure(model, now, snapshots.len(), out);
    let spare = usize::from(!policy.emergency_removes_newest);
    while fill(m, snapshots.len()) >= f64::from(limit) && snapshots.len() > spare {
        snapshots.remove(0);
        out.removed += 1;
        if let Some(o) = out.pool.as_mut() {
            o.removed_for_space += 1;
        }
    }
}

/// Removes what the plan at `now` removes; returns the survivors (oldest first) with reasons.
fn prune(
    rules: &Rules,
    now: DateTime<Utc>,
    snapshots: &mut Vec<SnapshotView>,
    out: &mut Outcome,
) -> Vec<Kept> {
    let plan = plan_retention(now, rules, snapshots);
    if plan.guard.is_some() && plan.decisions.iter().any(|d| !d.keep) {
        out.blocked += 1;
    }
    let mut keep = vec![false; snapshots.len()];
    let mut reasons = vec![Reasons::default(); snapshots.len()];
    for d in &plan.decisions {
        keep[d.index] = true;
        reasons[d.index] = d.reasons;
    }
    for d in plan.removals(false) {
        keep[d.index] = false;
    }
    let before = snapshots.len();
    let mut survivors = Vec::with_capacity(before);
    let mut kept = Vec::with_capacity(before);
    for (i, s) in snapshots.drain(..).enumerate() {
        if keep[i] {
            kept.push(Kept {
                time: s.time,
                reasons: reasons[i],
            });
            survivors.push(s);
        }
    }
    out.removed += before - survivors.len();
    *snapshots = survivors;
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use chrono::TimeZone;
    use std::path::Path;

    fn policy(keep: &str, schedule: &str) -> Policy {
        let src = format!(
            "[policy.p]\nvolumes = [\"vg0/lv\"]\nschedule = \"{schedule}\"\nkeep = {{ {keep} }}\n"
        );
        parse_str(&src, Path::new("t.toml"))
            .unwrap()
            .policies
            .remove(0)
    }

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap()
    }

    #[test]
    fn a_pool_past_its_emergency_loses_the_oldest_snapshots_and_never_fills() {
        let src = "[policy.p]\nvolumes = [\"vg0/lv\"]\nschedule = \"0 * * * *\"\nkeep = { hourly = 48 }\npool-data-emergency = 90\n";
        let p = parse_str(src, Path::new("t.toml"))
            .unwrap()
            .policies
            .remove(0);
        let req = |pool| Request {
            from: t(1, 0),
            to: t(3, 0),
            every: None,
            down: vec![],
            pool,
        };
        // 40% without snapshots, 2% for each: 48 snapshots would need 136%.
        let model = PoolModel {
            start: 40.0,
            per_snapshot: 2.0,
        };
        let out = simulate(&p, &req(Some(model)));
        let pool = out.pool.unwrap();
        assert_eq!(pool.full_at, None);
        assert!(pool.peak < 92.0 && pool.peak >= 88.0, "{pool:?}");
        // Below 90% before each snapshot: 24 snapshots (88%), then the 25th (90%) at the peak.
        assert_eq!(out.kept.len(), 25);
        assert_eq!(pool.removed_for_space, 48 - 25);
        // Without the threshold the model fills the pool on the 30th snapshot.
        let mut open = p.clone();
        open.pool_data_emergency = None;
        let out = simulate(&open, &req(Some(model)));
        assert_eq!(out.pool.unwrap().full_at, Some(t(2, 5)));
        assert_eq!(simulate(&p, &req(None)).pool, None);
    }

    #[test]
    fn a_day_of_hourly_snapshots_keeping_the_last_four() {
        let p = policy("last = 4", "0 * * * *");
        let out = simulate(
            &p,
            &Request {
                from: t(1, 0),
                to: t(2, 0),
                every: None,
                down: vec![],
                pool: None,
            },
        );
        assert_eq!(out.taken, 24);
        assert_eq!(out.removed, 20);
        let times: Vec<_> = out.kept.iter().map(|k| k.time).collect();
        assert_eq!(times, vec![t(1, 20), t(1, 21), t(1, 22), t(1, 23)]);
    }

    #[test]
    fn downtime_takes_one_catch_up_at_its_end() {
        let p = policy("last = 100", "0 * * * *");
        let boot = t(1, 9) + Duration::minutes(10);
        let out = simulate(
            &p,
            &Request {
                from: t(1, 0),
                to: t(1, 12),
                every: None,
                down: vec![(t(1, 2) + Duration::minutes(30), boot)],
                pool: None,
            },
        );
        let times: Vec<_> = out.kept.iter().map(|k| k.time).collect();
        assert_eq!(
            times,
            vec![t(1, 0), t(1, 1), t(1, 2), boot, t(1, 10), t(1, 11)]
        );
    }

    #[test]
    fn every_overrides_the_schedule() {
        let p = policy("last = 100", "0 0 * * *");
        let out = simulate(
            &p,
            &Request {
                from: t(1, 0),
                to: t(1, 1),
                every: Some(Duration::minutes(15)),
                down: vec![],
                pool: None,
            },
        );
        assert_eq!(out.taken, 4);
    }
}
