//! What the user reads: tables and summaries for terminals, stable JSON for scripts. Kept apart
//! from logging and from the logic that produced the values.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::{Config, ConfigErrors, Policy, SnapshotSize};
use crate::plan::{CronTicks, Ticks};
use crate::simulate::{Outcome, Request};
pub use crate::units::{age, format_size, local, utc};

fn next_times(p: &Policy, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let ticks = CronTicks {
        schedule: &p.schedule,
        timezone: p.timezone,
    };
    std::iter::successors(ticks.next(now), |t| ticks.next(*t))
        .take(n)
        .collect()
}

fn size_words(s: SnapshotSize) -> String {
    match s {
        SnapshotSize::Bytes(_) => format!("{s} copy-on-write space per thick snapshot"),
        SnapshotSize::PercentOfOrigin(p) => format!("{p}% of the origin's size per thick snapshot"),
        SnapshotSize::PercentOfFree(p) => {
            format!("{p}% of the volume group's free space per thick snapshot")
        }
    }
}

/// `config check` for a terminal.
///
/// # Errors
/// Writing to `out` failed.
pub fn config_summary(out: &mut dyn Write, cfg: &Config, now: DateTime<Utc>) -> io::Result<()> {
    let files: Vec<String> = cfg.files.iter().map(|f| f.display().to_string()).collect();
    writeln!(
        out,
        "ok: {} ({} {})",
        files.join(", "),
        cfg.policies.len(),
        if cfg.policies.len() == 1 {
            "policy"
        } else {
            "policies"
        }
    )?;
    writeln!(out, "catalog   {}", cfg.settings.catalog.display())?;
    writeln!(out, "time zone {}", cfg.settings.timezone)?;
    for a in cfg.advice() {
        writeln!(out, "warning: {a}")?;
    }
    for p in &cfg.policies {
        writeln!(out)?;
        writeln!(
            out,
            "policy \"{}\" ({}:{})",
            p.name,
            p.file.display(),
            p.line
        )?;
        let vols: Vec<String> = p.volumes.iter().map(ToString::to_string).collect();
        writeln!(out, "  volumes   {}", vols.join(", "))?;
        writeln!(
            out,
            "  schedule  \"{}\" in {}",
            p.schedule.as_str(),
            p.timezone
        )?;
        let next: Vec<String> = next_times(p, now, 3)
            .into_iter()
            .map(|t| local(t, p.timezone))
            .collect();
        writeln!(out, "  next      {}", next.join(", "))?;
        writeln!(out, "  size      {}", size_words(p.size))?;
        for (i, rule) in p.keep.describe().iter().enumerate() {
            writeln!(
                out,
                "  {}{rule}",
                if i == 0 { "keep      " } else { "          " }
            )?;
        }
        if !p.min_age.is_zero() {
            writeln!(
                out,
                "            and every snapshot younger than {} (min-age)",
                p.min_age
            )?;
        }
        writeln!(
            out,
            "            and always the newest, pinned, mounted and merging snapshots"
        )?;
        writeln!(
            out,
            "  guards    a run removes at most {}% of a group without --force; invalid snapshots: {}",
            p.max_remove_percent,
            match p.invalid {
                crate::config::InvalidAction::Remove => "removed",
                crate::config::InvalidAction::Keep => "kept",
            }
        )?;
        writeln!(
            out,
            "  limits    at most {} thick snapshots per origin, {} thin snapshots per pool",
            p.max_thick_per_origin, p.max_per_pool
        )?;
        if p.set {
            writeln!(
                out,
                "  set       the volumes are one snapshot set: taken together (one pre/post hook{}), kept and removed together",
                if p.freeze {
                    format!(
                        ", filesystems frozen meanwhile for at most {} s",
                        p.freeze_timeout.as_secs()
                    )
                } else {
                    String::new()
                }
            )?;
        }
        let mut pressure = Vec::new();
        if let Some(x) = p.pool_data_emergency {
            pressure.push(format!("thin pool data ≥ {x}%"));
        }
        if let Some(x) = p.pool_metadata_emergency {
            pressure.push(format!("thin pool metadata ≥ {x}%"));
        }
        if let Some(x) = p.vg_free_emergency {
            pressure.push(format!("volume group free < {}", free_words(x)));
        }
        writeln!(
            out,
            "  space     {}",
            if pressure.is_empty() {
                "never removes snapshots for space (no *-emergency key)".to_owned()
            } else {
                format!(
                    "its oldest snapshots go first when {} (never pinned or busy ones; {})",
                    pressure.join(", "),
                    if p.emergency_removes_newest {
                        "a group's newest last"
                    } else {
                        "nor a group's newest"
                    }
                )
            }
        )?;
        if let Some(r) = &p.replicate {
            writeln!(
                out,
                "  replicate into thin pool {}{}, {}; keeps {}, always the newest replica (the next increment's base) and its snapshot here",
                r.pool_ref(),
                r.transport
                    .as_ref()
                    .map(|t| format!(" through `{} --pool {}`", t.join(" "), r.pool_ref()))
                    .unwrap_or_else(|| " on this host".to_owned()),
                r.schedule
                    .as_ref()
                    .map(|s| format!("when \"{}\" is due", s.as_str()))
                    .unwrap_or_else(|| "every run with a snapshot newer than the newest replica".to_owned()),
                r.keep.describe().join(", ")
            )?;
        }
    }
    Ok(())
}

/// `config check --json`.
pub fn config_json(cfg: &Config, now: DateTime<Utc>) -> Value {
    let policies: Vec<Value> = cfg
        .policies
        .iter()
        .map(|p| {
            let k = &p.keep;
            let mut keep = serde_json::Map::new();
            if let Some(c) = k.last {
                keep.insert("last".into(), count_json(c));
            }
            if let Some(w) = k.within {
                keep.insert("within".into(), json!(w.to_string()));
            }
            for period in crate::config::Period::ALL {
                if let Some(c) = k.period(period) {
                    keep.insert(period.key().into(), count_json(c));
                }
            }
            json!({
                "name": p.name,
                "file": p.file,
                "line": p.line,
                "volumes": p.volumes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "schedule": p.schedule.as_str(),
                "timezone": p.timezone.name(),
                "next": next_times(p, now, 3).into_iter().map(utc).collect::<Vec<_>>(),
                "size": p.size.to_string(),
                "keep": keep,
                "keep_description": k.describe(),
                "min_age": p.min_age.to_string(),
                "max_remove_percent": p.max_remove_percent,
                "invalid": match p.invalid { crate::config::InvalidAction::Remove => "remove", crate::config::InvalidAction::Keep => "keep" },
                "max_thick_per_origin": p.max_thick_per_origin,
                "max_per_pool": p.max_per_pool,
                "pool_data_emergency": p.pool_data_emergency,
                "pool_metadata_emergency": p.pool_metadata_emergency,
                "vg_free_emergency": p.vg_free_emergency.map(free_words),
                "emergency_removes_newest": p.emergency_removes_newest,
                "set": p.set,
                "freeze": p.freeze,
                "freeze_timeout_seconds": p.freeze_timeout.as_secs(),
                "replicate": p.replicate.as_ref().map(|r| json!({
                    "pool": r.pool_ref(),
                    "transport": r.transport,
                    "schedule": r.schedule.as_ref().map(|s| s.as_str()),
                    "keep_description": r.keep.describe(),
                })),
            })
        })
        .collect();
    json!({
        "valid": true,
        "files": cfg.files,
        "catalog": cfg.settings.catalog,
        "timezone": cfg.settings.timezone.name(),
        "warnings": cfg.advice(),
        "policies": policies,
    })
}

/// A free-space amount as written in a policy file.
fn free_words(f: crate::config::FreeSpace) -> String {
    match f {
        crate::config::FreeSpace::Bytes(b) => format_size(b),
        crate::config::FreeSpace::Percent(p) => format!("{p}%"),
    }
}

fn count_json(c: crate::config::Count) -> Value {
    match c {
        crate::config::Count::N(n) => json!(n),
        crate::config::Count::All => json!("all"),
    }
}

/// `config check --json` on invalid files.
pub fn config_errors_json(errs: &ConfigErrors) -> Value {
    let list: Vec<Value> = errs
        .0
        .iter()
        .map(|d| {
            json!({"file": d.file, "line": d.line, "column": d.column, "key": d.key, "message": d.message, "hint": d.hint})
        })
        .collect();
    json!({"valid": false, "errors": list})
}

/// `simulate --json`: the contract scripts rely on.
pub fn simulate_json(o: &Outcome) -> Value {
    let kept: Vec<Value> = o
        .kept
        .iter()
        .map(|k| json!({"time": utc(k.time), "reasons": k.reasons.names().collect::<Vec<_>>()}))
        .collect();
    let mut v = json!({"kept": kept, "taken": o.taken, "removed": o.removed});
    // Only with --fill-rate: the shape without it stays as scripts know it.
    if let Some(p) = &o.pool {
        v["pool"] = json!({"removed_for_space": p.removed_for_space, "peak_percent": p.peak, "end_percent": p.end, "full_at": p.full_at.map(utc)});
    }
    v
}

/// `simulate` for a terminal.
///
/// # Errors
/// Writing to `out` failed.
pub fn simulate_text(
    out: &mut dyn Write,
    p: &Policy,
    req: &Request,
    o: &Outcome,
) -> io::Result<()> {
    let cadence = match req.every {
        Some(d) => format!(
            "every {}",
            crate::config::Span {
                seconds: d.num_seconds() as u64,
                ..Default::default()
            }
        ),
        None => format!("schedule \"{}\" in {}", p.schedule.as_str(), p.timezone),
    };
    writeln!(
        out,
        "policy \"{}\", {cadence}, from {} to {}",
        p.name,
        utc(req.from),
        utc(req.to)
    )?;
    for (a, b) in &req.down {
        writeln!(out, "down from {} to {}", utc(*a), utc(*b))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<22} {:<25} reasons",
        "time (UTC)",
        format!("local ({})", p.timezone)
    )?;
    for k in &o.kept {
        writeln!(
            out,
            "{:<22} {:<25} {}",
            utc(k.time),
            local(k.time, p.timezone),
            k.reasons
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "taken {}, removed {}, kept {}",
        o.taken,
        o.removed,
        o.kept.len()
    )?;
    if o.blocked > 0 {
        writeln!(
            out,
            "note: {} prune(s) were stopped by the max-remove-percent guard, as `run` without --force would be",
            o.blocked
        )?;
    }
    if let (Some(pool), Some(m)) = (&o.pool, &req.pool) {
        writeln!(
            out,
            "pool: {:.0}% without snapshots, each snapshot holding {:.1}% alone: at most {:.1}%, {:.1}% at the end; {} snapshot(s) removed for space{}",
            m.start,
            m.per_snapshot,
            pool.peak,
            pool.end,
            pool.removed_for_space,
            match p.pool_data_emergency {
                Some(l) => format!(" (pool-data-emergency = {l})"),
                None => " (the policy sets no pool-data-emergency)".to_owned(),
            }
        )?;
        if let Some(t) = pool.full_at {
            writeln!(
                out,
                "warning: the pool is full at {}: every thin volume in it stops; keep fewer, set pool-data-emergency, or extend the pool",
                utc(t)
            )?;
        }
    }
    Ok(())
}

pub mod backups;
pub mod events;
pub mod history;
pub mod restore;
pub mod setup;
mod snapshots;
pub mod status;
pub use snapshots::{list_json, list_text, run_json, run_text, ListRow};
