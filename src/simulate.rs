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
        // Snapshots are appended in time order, so the newest is always last.
        snapshots.push(SnapshotView::new(now.to_rfc3339(), now));
        out.taken += 1;
        prune(&rules, now, &mut snapshots, &mut out);
    }
    let plan = prune(&rules, req.to, &mut snapshots, &mut out);
    out.kept = plan;
    out
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
    fn a_day_of_hourly_snapshots_keeping_the_last_four() {
        let p = policy("last = 4", "0 * * * *");
        let out = simulate(
            &p,
            &Request {
                from: t(1, 0),
                to: t(2, 0),
                every: None,
                down: vec![],
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
            },
        );
        assert_eq!(out.taken, 4);
    }
}
