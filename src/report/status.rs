//! `status` as the administrator reads it and as scripts parse it: per group the newest
//! snapshot, the next time, count and space, the last run, a pending rollback and backups; then
//! volume group and thin pool fill.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::status::{Capacity, GroupState};
use crate::units::{age, format_size, local, utc};

/// `status --json`.
pub fn json(states: &[GroupState], cap: &Capacity, now: DateTime<Utc>) -> Value {
    let groups: Vec<_> = states
        .iter()
        .map(|g| {
            json!({
                "policy": g.policy, "volume": g.volume, "snapshots": g.count,
                "newest": g.newest.as_ref().map(|(n, _)| n), "newest_time": g.newest.as_ref().map(|(_, t)| utc(*t)),
                "newest_age_seconds": g.newest.as_ref().map(|(_, t)| (now - *t).num_seconds()),
                "next": g.next.map(utc), "bytes": g.bytes, "max_fill_percent": g.max_fill, "invalid": g.invalid,
                "last_run": g.last.as_ref().map(|r| utc(r.at)), "last_error": g.last.as_ref().and_then(|r| r.error.clone()),
                "rollback_pending": g.merging,
                "newest_backup": g.backup.as_ref().and_then(|b| b.newest.as_ref().map(|n| &n.label)),
                "backup_failed": g.backup.as_ref().and_then(|b| b.failed.as_ref().map(|(l, why)| json!({"backup": l, "error": why}))),
                "backup_verified": g.backup.as_ref().and_then(|b| b.verified.as_ref().map(|(l, at, ok)| json!({"backup": l, "at": utc(*at), "ok": ok}))),
                "future": g.future.iter().map(|(n, t)| json!({"name": n, "time": utc(*t)})).collect::<Vec<_>>(),
                "space_removed": g.space_removed.iter().map(|(n, t)| json!({"name": n, "at": utc(*t)})).collect::<Vec<_>>(),
                "replica": g.replica.as_ref().map(|r| json!({
                    "target": r.target,
                    "newest": r.newest.as_ref().map(|n| &n.snapshot),
                    "lag_seconds": r.newest.as_ref().map(|n| (now - n.snapshot_time).num_seconds().max(0)),
                    "bytes": r.newest.as_ref().and_then(|n| n.bytes),
                    "seconds": r.newest.as_ref().and_then(|n| n.duration_ms).map(|d| d as f64 / 1000.0),
                    "failed": r.failed.as_ref().map(|(s, why)| json!({"snapshot": s, "error": why})),
                })),
            })
        })
        .collect();
    let vgs: Vec<_> = cap
        .vgs
        .iter()
        .map(|(n, size, free)| json!({"vg": n, "size": size, "free": free}))
        .collect();
    let pools: Vec<_> = cap
        .pools
        .iter()
        .map(|(p, d, m)| json!({"pool": p, "data_percent": d, "metadata_percent": m}))
        .collect();
    let stalls: Vec<_> = cap
        .stalls
        .iter()
        .map(|x| json!({"pool": x.place, "since": utc(x.since), "data_percent": x.data, "metadata_percent": x.metadata}))
        .collect();
    json!({"groups": groups, "volume_groups": vgs, "pools": pools, "space_stalled": stalls})
}

/// `status`.
///
/// # Errors
/// The output cannot be written.
pub fn text(
    out: &mut dyn Write,
    states: &[GroupState],
    cap: &Capacity,
    now: DateTime<Utc>,
    tz: Tz,
) -> io::Result<()> {
    for g in states {
        writeln!(out, "{} {}", g.policy, g.volume)?;
        match &g.newest {
            Some((name, t)) => writeln!(
                out,
                "  newest    {name}, {} ({})",
                local(*t, tz),
                age(*t, now)
            )?,
            None => writeln!(out, "  newest    none yet")?,
        }
        for (name, t) in &g.future {
            writeln!(
                out,
                "  FUTURE    {name}, dated {}: in the future — check the clock; kept, not counted as fresh",
                local(*t, tz)
            )?;
        }
        if let Some(next) = g.next {
            writeln!(out, "  next      {}", local(next, tz))?;
        }
        let fill = g
            .max_fill
            .map(|f| format!(", fullest {f:.0}%"))
            .unwrap_or_default();
        writeln!(
            out,
            "  snapshots {} ({} copy-on-write{fill}{})",
            g.count,
            format_size(g.bytes),
            if g.invalid > 0 {
                format!(", {} invalid", g.invalid)
            } else {
                String::new()
            }
        )?;
        match &g.last {
            Some(r) if r.ok => writeln!(out, "  last run  {} ok", local(r.at, tz))?,
            Some(r) => writeln!(
                out,
                "  last run  {} FAILED: {}",
                local(r.at, tz),
                r.error.as_deref().unwrap_or("?")
            )?,
            None => writeln!(out, "  last run  never")?,
        }
        if let Some((name, at)) = g.space_removed.last() {
            writeln!(
                out,
                "  space     {} snapshot(s) removed for space in the last day, the newest {name} {}",
                g.space_removed.len(),
                age(*at, now)
            )?;
        }
        if let Some(name) = &g.merging {
            writeln!(
                out,
                "  rollback  PENDING: {name} merges into {} at its next activation (pruning and backups wait)",
                g.volume
            )?;
        }
        if let Some(b) = &g.backup {
            let newest = b.newest.as_ref().map_or("none yet".to_owned(), |n| {
                format!("{} ({})", n.label, age(n.snapshot_time, now))
            });
            let next = b
                .next
                .map(|n| format!(", next {}", local(n, tz)))
                .unwrap_or_default();
            writeln!(out, "  backup    {newest}{next}")?;
            if let Some((label, why)) = &b.failed {
                writeln!(
                    out,
                    "  backup    FAILED: {label}: {}",
                    why.lines().next().unwrap_or("")
                )?;
            }
            if let Some((label, at, false)) = &b.verified {
                writeln!(out, "  verify    FAILED: {label} ({})", age(*at, now))?;
            }
        }
        if let Some(r) = &g.replica {
            match &r.newest {
                None => writeln!(out, "  replica   none yet in {}", r.target)?,
                Some(n) => writeln!(
                    out,
                    "  replica   {} in {} (lag {}){}",
                    n.snapshot,
                    r.target,
                    age(n.snapshot_time, now).trim_end_matches(" ago"),
                    n.bytes
                        .map(|b| format!(", last sent {}", format_size(b)))
                        .unwrap_or_default()
                )?,
            }
            if let Some((snapshot, why)) = &r.failed {
                writeln!(
                    out,
                    "  replica   FAILED: {snapshot}: {}",
                    why.lines().next().unwrap_or("")
                )?;
            }
        }
    }
    for (vg, size, free) in &cap.vgs {
        writeln!(
            out,
            "volume group {vg}: {} free of {} ({:.0}% used)",
            format_size(*free),
            format_size(*size),
            100.0 - *free as f64 * 100.0 / (*size).max(1) as f64
        )?;
    }
    for (pool, data, meta) in &cap.pools {
        writeln!(
            out,
            "thin pool {pool}: data {data:.1}%, metadata {meta:.1}%"
        )?;
    }
    for x in &cap.stalls {
        writeln!(
            out,
            "thin pool {}: space pressure STOPPED {}: removing snapshots freed nothing (at {:.1}% data, {:.1}% metadata); it starts again a point fuller or below the thresholds",
            x.place,
            age(x.since, now),
            x.data,
            x.metadata
        )?;
    }
    Ok(())
}
