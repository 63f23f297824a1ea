//! Health: the state of each group (count, newest, space, fill, last error) and of the volume
//! groups and pools, and the three ways it is told — `status` for people, `check` for
//! Nagios/Icinga, and a Prometheus textfile-collector file. Pure functions over a survey; the
//! commands gather the survey.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use crate::catalog::BackupRecord;
use crate::catalog::{GroupResult, RunTotals};
use crate::config::{Config, Policy, VolumeRef};
use crate::lvm::{Inventory, LvKind};
use crate::reconcile::{Fleet, Managed};

/// One group, now.
#[derive(Debug, Clone)]
pub struct GroupState {
    pub policy: String,
    pub volume: String,
    pub count: usize,
    pub newest: Option<(String, DateTime<Utc>)>,
    /// Snapshots dated beyond the policy's future skew: the clock ran ahead when they were
    /// taken, or runs behind now.
    pub future: Vec<(String, DateTime<Utc>)>,
    /// Copy-on-write space of its thick snapshots.
    pub bytes: u64,
    pub max_fill: Option<f64>,
    pub invalid: usize,
    pub next: Option<DateTime<Utc>>,
    pub last: Option<GroupResult>,
    /// A snapshot a rollback merges into the origin at its next activation.
    pub merging: Option<String>,
    /// Its backups, when the policy has a backup table.
    pub backup: Option<BackupHealth>,
    /// Snapshots removed for space in the last day: (name, when), oldest first.
    pub space_removed: Vec<(String, DateTime<Utc>)>,
    /// Its replication, when the policy has a replicate table.
    pub replica: Option<ReplicaHealth>,
}

/// A group's replication, as the catalog records the sends (`status` and `check` do not ask
/// the target: they must answer fast, and for any target).
#[derive(Debug, Clone)]
pub struct ReplicaHealth {
    pub target: String,
    /// The newest replica sent: (source snapshot, its time, when the send finished, bytes of
    /// data, duration in ms).
    pub newest: Option<NewestReplica>,
    /// The newest attempt, when it failed after the newest replica: (snapshot, error).
    pub failed: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct NewestReplica {
    pub snapshot: String,
    /// What the replica protects up to: the lag is measured from it.
    pub snapshot_time: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub bytes: Option<u64>,
    pub duration_ms: Option<u64>,
}

/// Sets each group's replication from the catalog's replica records.
pub fn note_replicas(
    states: &mut [GroupState],
    config: &Config,
    records: &[crate::catalog::ReplicaRecord],
) {
    use crate::catalog::ReplicaState;
    for g in states {
        let Some(r) = config.policy(&g.policy).and_then(|p| p.replicate.as_ref()) else {
            continue;
        };
        let target = r.target();
        let mine: Vec<&crate::catalog::ReplicaRecord> = records
            .iter()
            .filter(|x| {
                x.policy == g.policy
                    && x.target == target
                    && format!("{}/{}", x.vg, x.origin) == g.volume
            })
            .collect();
        // A replica later pruned from the target still was sent: it counts for the lag.
        let newest = mine
            .iter()
            .filter(|x| matches!(x.state, ReplicaState::Complete | ReplicaState::Removed))
            .max_by_key(|x| (x.snapshot_time, x.id));
        let failed = mine
            .iter()
            .filter(|x| x.state != ReplicaState::Sending)
            .max_by_key(|x| x.id)
            .filter(|x| x.state == ReplicaState::Failed)
            .map(|x| (x.snapshot.clone(), x.error.clone().unwrap_or_default()));
        g.replica = Some(ReplicaHealth {
            target,
            newest: newest.map(|x| NewestReplica {
                snapshot: x.snapshot.clone(),
                snapshot_time: x.snapshot_time,
                finished: x.finished_at,
                bytes: x.bytes,
                duration_ms: x.duration_ms,
            }),
            failed,
        });
    }
}

/// How long a removal for space keeps `check` at WARNING.
pub const SPACE_WARNING_HOURS: i64 = 24;

/// Sets each group's removals for space from the catalog's `removed` (since
/// [`SPACE_WARNING_HOURS`] ago).
pub fn note_space_removals(states: &mut [GroupState], removed: &[crate::catalog::SpaceRemoval]) {
    for g in states {
        g.space_removed = removed
            .iter()
            .filter(|r| r.policy == g.policy && format!("{}/{}", r.vg, r.origin) == g.volume)
            .map(|r| (r.name.clone(), r.at))
            .collect();
    }
}

/// A group's backups, as `status`, `check` and the metrics tell them, for every engine.
#[derive(Debug, Clone)]
pub struct BackupHealth {
    pub engine: &'static str,
    /// The newest complete (or partial) backup.
    pub newest: Option<NewestBackup>,
    /// When the next one is scheduled.
    pub next: Option<DateTime<Utc>>,
    /// The newest attempt, when it failed after the newest usable backup: (label, error).
    pub failed: Option<(String, String)>,
    /// The latest verification of a usable backup: (label, when, passed).
    pub verified: Option<(String, DateTime<Utc>, bool)>,
}

#[derive(Debug, Clone)]
pub struct NewestBackup {
    pub label: String,
    /// The time of the snapshot it was made of: what it protects up to.
    pub snapshot_time: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub bytes: Option<u64>,
    /// What it added to its repository (restic).
    pub added: Option<u64>,
}

/// A volume group's or thin pool's fill.
#[derive(Debug, Clone)]
pub struct Capacity {
    pub vgs: Vec<(String, u64, u64)>,
    /// (pool path, data %, metadata %)
    pub pools: Vec<(String, f64, f64)>,
    /// Pools where space pressure stopped: removing snapshots freed nothing.
    pub stalls: Vec<crate::catalog::SpaceStall>,
}

/// The state of every configured group.
pub fn groups(
    config: &Config,
    fleet: &Fleet,
    results: &[GroupResult],
    backups: &[BackupRecord],
    now: DateTime<Utc>,
) -> Vec<GroupState> {
    let mut out = Vec::new();
    for p in &config.policies {
        for v in &p.volumes {
            let mut g = group(p, v, fleet, results, now);
            g.backup = p.backup.as_ref().map(|b| {
                let of_volume: Vec<&BackupRecord> = backups
                    .iter()
                    .filter(|r| r.policy == p.name && r.vg == v.vg && r.origin == v.lv)
                    .collect();
                let usable = of_volume.iter().filter(|r| r.state.is_usable());
                let newest = usable.clone().max_by_key(|r| (r.snapshot_time, r.id));
                let failed = of_volume
                    .iter()
                    .filter(|r| r.state != crate::catalog::BackupState::Running)
                    .filter(|r| r.state != crate::catalog::BackupState::Removed)
                    .max_by_key(|r| r.id)
                    .filter(|r| r.state == crate::catalog::BackupState::Failed)
                    .map(|r| (r.label(), r.error.clone().unwrap_or_default()));
                let verified = usable
                    .filter_map(|r| Some((r.label(), r.verified?, r.verify_ok?)))
                    .max_by_key(|(_, at, _)| *at);
                BackupHealth {
                    engine: b.engine.name(),
                    newest: newest.map(|r| NewestBackup {
                        label: r.label(),
                        snapshot_time: r.snapshot_time,
                        finished: r.finished,
                        bytes: r.bytes,
                        added: r.bytes_added,
                    }),
                    next: b.schedule.next(now, p.timezone),
                    failed,
                    verified,
                }
            });
            out.push(g);
        }
    }
    out
}

fn group(
    p: &Policy,
    v: &VolumeRef,
    fleet: &Fleet,
    results: &[GroupResult],
    now: DateTime<Utc>,
) -> GroupState {
    let members: Vec<_> = fleet.group(&v.vg, &v.lv).collect();
    let (future, dated): (Vec<&Managed>, Vec<&Managed>) = members
        .iter()
        .filter(|m| m.is_valid())
        .partition(|m| crate::plan::is_future(m.record.time, now, p.future_skew));
    // Freshness counts only snapshots dated up to now: one from the future is no protection.
    let newest = dated
        .iter()
        .max_by_key(|m| m.record.time)
        .map(|m| (m.record.name.clone(), m.record.time));
    let future = future
        .iter()
        .map(|m| (m.record.name.clone(), m.record.time))
        .collect();
    // A snapshot created in this run has no inventory entry yet: its recorded size stands in.
    let thick = members.iter().filter(|m| !m.record.thin);
    GroupState {
        policy: p.name.clone(),
        volume: v.to_string(),
        count: members.len(),
        newest,
        future,
        bytes: thick
            .clone()
            .map(|m| m.lv.as_ref().map_or(m.record.size, |l| l.size))
            .sum(),
        max_fill: thick
            .filter(|m| m.is_valid())
            .filter_map(|m| {
                m.lv.as_ref()
                    .filter(|l| l.kind == LvKind::ThickSnapshot)
                    .and_then(|l| l.data_percent)
            })
            .reduce(f64::max),
        invalid: members.iter().filter(|m| !m.is_valid()).count(),
        next: p.schedule.next(now, p.timezone),
        last: results
            .iter()
            .find(|r| r.policy == p.name && r.volume == v.to_string())
            .cloned(),
        merging: members
            .iter()
            .find(|m| m.lv.as_ref().is_some_and(|l| l.merging))
            .map(|m| m.record.name.clone()),
        backup: None,
        space_removed: Vec::new(),
        replica: None,
    }
}

/// Volume groups and thin pools that hold configured volumes.
pub fn capacity(config: &Config, inv: &Inventory) -> Capacity {
    let vgs_used: Vec<&str> = config
        .policies
        .iter()
        .flat_map(|p| p.volumes.iter().map(|v| v.vg.as_str()))
        .collect();
    let vgs = inv
        .vgs
        .iter()
        .filter(|(n, _)| vgs_used.contains(&n.as_str()))
        .map(|(n, v)| (n.clone(), v.size, v.free))
        .collect();
    let mut pools: Vec<(String, f64, f64)> = Vec::new();
    for p in &config.policies {
        for v in &p.volumes {
            let pool = inv
                .find(&v.vg, &v.lv)
                .and_then(|o| o.pool.as_deref())
                .and_then(|name| inv.find(&v.vg, name));
            if let Some(pool) = pool {
                if !pools.iter().any(|(path, _, _)| *path == pool.path()) {
                    pools.push((
                        pool.path(),
                        pool.data_percent.unwrap_or(0.0),
                        pool.metadata_percent.unwrap_or(0.0),
                    ));
                }
            }
        }
    }
    Capacity {
        vgs,
        pools,
        stalls: Vec::new(),
    }
}

/// Nagios plugin states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// How late a group's newest snapshot may be, in periods of its schedule.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub warning_periods: u32,
    pub critical_periods: u32,
}

/// The verdict of `check`: level, one summary line, perfdata.
pub fn check(
    config: &Config,
    states: &[GroupState],
    cap: &Capacity,
    now: DateTime<Utc>,
    t: Thresholds,
) -> (Level, String) {
    let mut problems: Vec<(Level, String)> = Vec::new();
    let mut perf = Vec::new();
    for g in states {
        let policy = config
            .policy(&g.policy)
            .expect("states come from the configuration");
        let head = format!("{} {}", g.policy, g.volume);
        for (name, t) in &g.future {
            problems.push((
                Level::Critical,
                format!(
                    "{head}: snapshot {name} is dated {}, in the future (check the clock); it does not count as fresh",
                    crate::units::utc(*t)
                ),
            ));
        }
        if let Some(r) = g.last.as_ref().filter(|r| !r.ok) {
            problems.push((
                Level::Critical,
                format!(
                    "{head}: last run failed: {}",
                    r.error.as_deref().unwrap_or("unknown error")
                ),
            ));
        }
        match &g.newest {
            None => problems.push((Level::Warning, format!("{head}: no snapshot yet"))),
            Some((_, newest)) => {
                let age = (now - *newest).num_seconds().max(0);
                let (warn, crit) = lateness_limits(policy, *newest, t);
                if let (Some(w), Some(c)) = (warn, crit) {
                    if now > c {
                        problems.push((
                            Level::Critical,
                            format!(
                                "{head}: newest snapshot is {} old",
                                crate::units::age(*newest, now).trim_end_matches(" ago")
                            ),
                        ));
                    } else if now > w {
                        problems.push((
                            Level::Warning,
                            format!(
                                "{head}: newest snapshot is {} old",
                                crate::units::age(*newest, now).trim_end_matches(" ago")
                            ),
                        ));
                    }
                    perf.push(format!(
                        "'{}_age'={age}s;{};{}",
                        label(g),
                        (w - *newest).num_seconds(),
                        (c - *newest).num_seconds()
                    ));
                }
            }
        }
        if g.invalid > 0 {
            problems.push((
                Level::Warning,
                format!("{head}: {} invalid snapshot(s)", g.invalid),
            ));
        }
        if let Some((name, at)) = g.space_removed.last() {
            problems.push((
                Level::Warning,
                format!(
                    "{head}: {} snapshot(s) removed for space in the last {SPACE_WARNING_HOURS} h, the newest {name} at {}: its pool or volume group fills faster than retention prunes (extend it, or keep fewer)",
                    g.space_removed.len(),
                    crate::units::utc(*at)
                ),
            ));
        }
        if let (Some(health), Some(b)) = (&g.backup, &policy.backup) {
            if let Some((label_, why)) = &health.failed {
                problems.push((
                    Level::Critical,
                    format!(
                        "{head}: backup {label_} failed: {}",
                        why.lines().next().unwrap_or("")
                    ),
                ));
            }
            if let Some((label_, _, false)) = &health.verified {
                problems.push((
                    Level::Critical,
                    format!("{head}: backup {label_} failed verification (`lvsnap backups --all`)"),
                ));
            }
            match health.newest.as_ref().map(|n| (&n.label, &n.snapshot_time)) {
                None => problems.push((Level::Warning, format!("{head}: no backup yet"))),
                Some((label_, at)) => {
                    let (warn, crit) = schedule_limits(&b.schedule, policy, *at, t);
                    let level = match (warn, crit) {
                        (_, Some(c)) if now > c => Some(Level::Critical),
                        (Some(w), _) if now > w => Some(Level::Warning),
                        _ => None,
                    };
                    if let Some(level) = level {
                        problems.push((
                            level,
                            format!(
                                "{head}: newest backup {label_} is {} old",
                                crate::units::age(*at, now).trim_end_matches(" ago")
                            ),
                        ));
                    }
                    perf.push(format!(
                        "'{}_backup_age'={}s",
                        label(g),
                        (now - *at).num_seconds().max(0)
                    ));
                }
            }
        }
        if let (Some(health), Some(r)) = (&g.replica, &policy.replicate) {
            if let Some((snapshot, why)) = &health.failed {
                problems.push((
                    Level::Critical,
                    format!(
                        "{head}: replication of {snapshot} to {} failed: {}",
                        health.target,
                        why.lines().next().unwrap_or("")
                    ),
                ));
            }
            match &health.newest {
                None => problems.push((Level::Warning, format!("{head}: no replica yet"))),
                Some(n) if crate::plan::is_future(n.snapshot_time, now, policy.future_skew) => {
                    problems.push((
                        Level::Critical,
                        format!(
                            "{head}: newest replica {} is of a snapshot dated {}, in the future (check the clock); it does not count as fresh",
                            n.snapshot,
                            crate::units::utc(n.snapshot_time)
                        ),
                    ));
                }
                Some(n) => {
                    // Without a schedule of its own, each snapshot is replicated: the lag is
                    // judged by the snapshot schedule.
                    let schedule = r.schedule.as_ref().unwrap_or(&policy.schedule);
                    let (warn, crit) = schedule_limits(schedule, policy, n.snapshot_time, t);
                    let level = match (warn, crit) {
                        (_, Some(c)) if now > c => Some(Level::Critical),
                        (Some(w), _) if now > w => Some(Level::Warning),
                        _ => None,
                    };
                    if let Some(level) = level {
                        problems.push((
                            level,
                            format!(
                                "{head}: newest replica {} is {} behind",
                                n.snapshot,
                                crate::units::age(n.snapshot_time, now).trim_end_matches(" ago")
                            ),
                        ));
                    }
                    perf.push(format!(
                        "'{}_replica_lag'={}s",
                        label(g),
                        (now - n.snapshot_time).num_seconds().max(0)
                    ));
                }
            }
        }
        if let Some(fill) = g.max_fill {
            let at = f64::from(policy.extend_at);
            if fill >= 95.0 {
                problems.push((
                    Level::Critical,
                    format!("{head}: a snapshot is {fill:.0}% full"),
                ));
            } else if fill >= at {
                problems.push((
                    Level::Warning,
                    format!("{head}: a snapshot is {fill:.0}% full"),
                ));
            }
            perf.push(format!("'{}_fill'={fill:.1}%;{at};95", label(g)));
        }
        perf.push(format!("'{}_snapshots'={}", label(g), g.count));
    }
    for (pool, data, meta) in &cap.pools {
        let max = config
            .policies
            .iter()
            .map(|p| p.pool_data_max.min(p.pool_metadata_max))
            .min()
            .unwrap_or(80);
        let worst = data.max(*meta);
        if worst >= f64::from(max) {
            problems.push((
                Level::Critical,
                format!("thin pool {pool} is {worst:.0}% full"),
            ));
        } else if worst >= f64::from(max) - 10.0 {
            problems.push((
                Level::Warning,
                format!("thin pool {pool} is {worst:.0}% full"),
            ));
        }
        perf.push(format!("'pool_{pool}_data'={data:.1}%;;{max}"));
        perf.push(format!("'pool_{pool}_metadata'={meta:.1}%;;{max}"));
    }
    for x in &cap.stalls {
        problems.push((
            Level::Warning,
            format!(
                "thin pool {}: removing snapshots for space freed nothing, so lvsnap stopped at {}: the volumes themselves fill it (extend it, or free space in them)",
                x.place,
                crate::units::utc(x.since)
            ),
        ));
    }
    let level = problems.iter().map(|(l, _)| *l).max().unwrap_or(Level::Ok);
    problems.sort_by_key(|p| std::cmp::Reverse(p.0));
    let summary = if problems.is_empty() {
        format!("{} group(s) fresh", states.len())
    } else {
        problems
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    (
        level,
        format!("LVSNAP {} - {summary} | {}", level.word(), perf.join(" ")),
    )
}

/// When a group whose newest snapshot is `newest` becomes late enough to warn, and to alarm.
fn lateness_limits(
    p: &Policy,
    newest: DateTime<Utc>,
    t: Thresholds,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    schedule_limits(&p.schedule, p, newest, t)
}

/// When something last done at `newest` on `schedule` is late enough to warn and to be
/// critical: its next due time plus the thresholds' number of schedule periods.
fn schedule_limits(
    schedule: &crate::config::Schedule,
    p: &Policy,
    newest: DateTime<Utc>,
    t: Thresholds,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let Some(due) = schedule.next(newest, p.timezone) else {
        return (None, None);
    };
    let period = schedule
        .next(due, p.timezone)
        .map_or(Duration::hours(1), |n| n - due);
    (
        Some(due + period * t.warning_periods as i32),
        Some(due + period * t.critical_periods as i32),
    )
}

fn label(g: &GroupState) -> String {
    format!("{}_{}", g.policy, g.volume)
}

/// The Prometheus textfile-collector exposition.
pub fn metrics(
    states: &[GroupState],
    cap: &Capacity,
    totals: &RunTotals,
    now: DateTime<Utc>,
) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let gl = |g: &GroupState| {
        format!(
            "{{policy=\"{}\",volume=\"{}\"}}",
            esc(&g.policy),
            esc(&g.volume)
        )
    };
    family(
        "lvsnap_snapshots",
        "gauge",
        "Snapshots lvsnap manages, per group.",
        states.iter().map(|g| (gl(g), g.count as f64)).collect(),
    );
    family(
        "lvsnap_newest_snapshot_age_seconds",
        "gauge",
        "Age of the newest valid snapshot of the group.",
        states
            .iter()
            .filter_map(|g| {
                g.newest
                    .as_ref()
                    .map(|(_, t)| (gl(g), (now - *t).num_seconds() as f64))
            })
            .collect(),
    );
    family(
        "lvsnap_snapshot_bytes",
        "gauge",
        "Copy-on-write space of the group's thick snapshots.",
        states.iter().map(|g| (gl(g), g.bytes as f64)).collect(),
    );
    family(
        "lvsnap_snapshot_max_fill_percent",
        "gauge",
        "Fill of the group's fullest thick snapshot.",
        states
            .iter()
            .filter_map(|g| g.max_fill.map(|f| (gl(g), f)))
            .collect(),
    );
    family(
        "lvsnap_invalid_snapshots",
        "gauge",
        "Invalid (overflowed) snapshots of the group.",
        states.iter().map(|g| (gl(g), g.invalid as f64)).collect(),
    );
    family(
        "lvsnap_space_removals",
        "gauge",
        "Snapshots of the group removed under space pressure in the last 24 hours.",
        states
            .iter()
            .map(|g| (gl(g), g.space_removed.len() as f64))
            .collect(),
    );
    family(
        "lvsnap_group_failed",
        "gauge",
        "1 when the group's last run failed.",
        states
            .iter()
            .filter_map(|g| {
                g.last
                    .as_ref()
                    .map(|r| (gl(g), if r.ok { 0.0 } else { 1.0 }))
            })
            .collect(),
    );
    let bl = |g: &GroupState, b: &BackupHealth| {
        format!(
            "{{policy=\"{}\",volume=\"{}\",engine=\"{}\"}}",
            esc(&g.policy),
            esc(&g.volume),
            b.engine
        )
    };
    let backups: Vec<(&GroupState, &BackupHealth)> = states
        .iter()
        .filter_map(|g| g.backup.as_ref().map(|b| (g, b)))
        .collect();
    let newest = |f: &dyn Fn(&NewestBackup) -> Option<f64>| -> Vec<(String, f64)> {
        backups
            .iter()
            .filter_map(|(g, b)| b.newest.as_ref().and_then(f).map(|v| (bl(g, b), v)))
            .collect()
    };
    family(
        "lvsnap_backup_newest_age_seconds",
        "gauge",
        "Age of the snapshot the newest complete backup was made of.",
        newest(&|n| Some((now - n.snapshot_time).num_seconds() as f64)),
    );
    family(
        "lvsnap_backup_last_success_timestamp_seconds",
        "gauge",
        "When the newest complete backup finished.",
        newest(&|n| n.finished.map(|t| t.timestamp() as f64)),
    );
    family(
        "lvsnap_backup_bytes",
        "gauge",
        "Bytes of the volume in the newest complete backup.",
        newest(&|n| n.bytes.map(|b| b as f64)),
    );
    family(
        "lvsnap_backup_added_bytes",
        "gauge",
        "Bytes the newest complete backup added to its repository (restic).",
        newest(&|n| n.added.map(|b| b as f64)),
    );
    family(
        "lvsnap_backup_failed",
        "gauge",
        "1 when the newest backup attempt failed.",
        backups
            .iter()
            .map(|(g, b)| (bl(g, b), if b.failed.is_some() { 1.0 } else { 0.0 }))
            .collect(),
    );
    family(
        "lvsnap_backup_last_verify_success",
        "gauge",
        "1 when the latest verification of a backup passed, 0 when it failed.",
        backups
            .iter()
            .filter_map(|(g, b)| {
                b.verified
                    .as_ref()
                    .map(|(_, _, ok)| (bl(g, b), if *ok { 1.0 } else { 0.0 }))
            })
            .collect(),
    );
    family(
        "lvsnap_backup_last_verify_timestamp_seconds",
        "gauge",
        "When a backup of the group was last verified.",
        backups
            .iter()
            .filter_map(|(g, b)| {
                b.verified
                    .as_ref()
                    .map(|(_, at, _)| (bl(g, b), at.timestamp() as f64))
            })
            .collect(),
    );
    let rl = |g: &GroupState, r: &ReplicaHealth| {
        format!(
            "{{policy=\"{}\",volume=\"{}\",target=\"{}\"}}",
            esc(&g.policy),
            esc(&g.volume),
            esc(&r.target)
        )
    };
    let replicas: Vec<(&GroupState, &ReplicaHealth)> = states
        .iter()
        .filter_map(|g| g.replica.as_ref().map(|r| (g, r)))
        .collect();
    let newest_replica = |f: &dyn Fn(&NewestReplica) -> Option<f64>| -> Vec<(String, f64)> {
        replicas
            .iter()
            .filter_map(|(g, r)| r.newest.as_ref().and_then(f).map(|v| (rl(g, r), v)))
            .collect()
    };
    family(
        "lvsnap_replica_lag_seconds",
        "gauge",
        "Age of the snapshot the newest replica on the target equals.",
        newest_replica(&|n| Some((now - n.snapshot_time).num_seconds() as f64)),
    );
    family(
        "lvsnap_replica_last_success_timestamp_seconds",
        "gauge",
        "When the newest replica was finished.",
        newest_replica(&|n| n.finished.map(|t| t.timestamp() as f64)),
    );
    family(
        "lvsnap_replica_sent_bytes",
        "gauge",
        "Bytes of data the newest replica's stream carried (the changed blocks of an increment).",
        newest_replica(&|n| n.bytes.map(|b| b as f64)),
    );
    family(
        "lvsnap_replica_duration_seconds",
        "gauge",
        "How long the newest replica's send took.",
        newest_replica(&|n| n.duration_ms.map(|d| d as f64 / 1000.0)),
    );
    family(
        "lvsnap_replica_failed",
        "gauge",
        "1 when the newest replication attempt failed.",
        replicas
            .iter()
            .map(|(g, r)| (rl(g, r), if r.failed.is_some() { 1.0 } else { 0.0 }))
            .collect(),
    );
    family(
        "lvsnap_vg_free_bytes",
        "gauge",
        "Free space of the volume group.",
        cap.vgs
            .iter()
            .map(|(n, _, f)| (format!("{{vg=\"{}\"}}", esc(n)), *f as f64))
            .collect(),
    );
    family(
        "lvsnap_vg_size_bytes",
        "gauge",
        "Size of the volume group.",
        cap.vgs
            .iter()
            .map(|(n, s, _)| (format!("{{vg=\"{}\"}}", esc(n)), *s as f64))
            .collect(),
    );
    family(
        "lvsnap_pool_data_percent",
        "gauge",
        "Data fill of the thin pool.",
        cap.pools
            .iter()
            .map(|(p, d, _)| (format!("{{pool=\"{}\"}}", esc(p)), *d))
            .collect(),
    );
    family(
        "lvsnap_pool_metadata_percent",
        "gauge",
        "Metadata fill of the thin pool.",
        cap.pools
            .iter()
            .map(|(p, _, m)| (format!("{{pool=\"{}\"}}", esc(p)), *m))
            .collect(),
    );
    family(
        "lvsnap_space_stalled",
        "gauge",
        "1 for a pool where removing snapshots for space freed nothing (lvsnap stopped there).",
        cap.stalls
            .iter()
            .map(|x| (format!("{{pool=\"{}\"}}", esc(&x.place)), 1.0))
            .collect(),
    );
    family(
        "lvsnap_last_run_duration_seconds",
        "gauge",
        "Duration of the last run.",
        vec![(String::new(), totals.last_duration_ms as f64 / 1000.0)],
    );
    family(
        "lvsnap_last_run_timestamp_seconds",
        "gauge",
        "When the last run happened.",
        totals
            .last_at
            .map(|t| (String::new(), t.timestamp() as f64))
            .into_iter()
            .collect(),
    );
    family(
        "lvsnap_last_run_success",
        "gauge",
        "1 when every group of the last run succeeded.",
        vec![(String::new(), if totals.last_ok { 1.0 } else { 0.0 })],
    );
    family(
        "lvsnap_runs_total",
        "counter",
        "Runs recorded in the catalog.",
        vec![(String::new(), totals.runs as f64)],
    );
    family(
        "lvsnap_run_failures_total",
        "counter",
        "Runs in which a group failed.",
        vec![(String::new(), totals.failed as f64)],
    );
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `text` to `path` atomically: a collector never reads half a file.
///
/// # Errors
/// The directory is not writable.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("lvsnap.prom")
    ));
    // Readable by all: node_exporter's textfile collector usually runs as its own user. Created
    // anew (never through a link someone left in the directory).
    let _ = std::fs::remove_file(&tmp);
    let mut f = crate::private::create_new(&tmp, 0o644)?;
    io::Write::write_all(&mut f, text.as_bytes())?;
    std::fs::rename(&tmp, path)
}
