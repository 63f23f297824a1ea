//! Reports of the snapshot cycle: `run`/`plan`/`prune` results and the `list` table.

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{json, Value};

use super::{age, format_size, local, utc};
use crate::cycle::RunReport;

/// `run`, `prune` and `plan` for a terminal. `detail` lists every snapshot with its verdict.
///
/// # Errors
/// Writing to `out` failed.
pub fn run_text(out: &mut dyn Write, r: &RunReport, detail: bool, tz: Tz) -> io::Result<()> {
    let would = if r.dry_run { "would " } else { "" };
    for note in &r.notes {
        writeln!(out, "reconciled: {note}")?;
    }
    let space = &r.relief;
    for x in &space.removed {
        writeln!(
            out,
            "{} {}: {would}remove {} for space: {}",
            x.policy, x.volume, x.name, x.why
        )?;
    }
    if space.estimated {
        writeln!(out, "space: a dry run cannot tell what removing a thin snapshot frees; a run removes in this order, measures after each, and stops once below")?;
    }
    for l in &space.left {
        writeln!(out, "space: warning: {}", l.text)?;
    }
    for e in &space.errors {
        writeln!(
            out,
            "{} {}: space: error: {}: {}",
            e.policy, e.volume, e.name, e.why
        )?;
    }
    for g in &r.groups {
        let head = format!("{} {}:", g.policy, g.volume);
        if let Some(name) = &g.created {
            let set = match (&g.set, g.frozen) {
                (Some(id), Some(f)) => format!(" (set {id}, frozen {} ms)", f.as_millis()),
                (Some(id), None) => format!(" (set {id})"),
                _ => String::new(),
            };
            writeln!(out, "{head} {would}create {name}{set}")?;
        } else if let Some(why) = &g.not_due {
            writeln!(out, "{head} {why}")?;
        }
        if detail {
            for p in &g.plan {
                let verdict = if p.keep { "keep  " } else { "remove" };
                let why = if p.keep {
                    p.reasons.join(", ")
                } else {
                    p.why_not.join("; ")
                };
                writeln!(
                    out,
                    "  {verdict} {:<40} {:<24} {why}",
                    p.name,
                    local(p.time, tz)
                )?;
            }
        }
        for (name, why) in &g.removed {
            if !detail {
                writeln!(out, "{head} {would}remove {name} ({})", why.join("; "))?;
            }
        }
        for e in &g.extended {
            writeln!(out, "{head} {e}")?;
        }
        if !g.plan.is_empty() || !g.removed.is_empty() {
            let removing = if r.dry_run {
                g.plan.iter().filter(|p| !p.keep).count()
            } else {
                g.removed.len()
            };
            let kept = g.plan.len().saturating_sub(removing);
            writeln!(
                out,
                "{head} {kept} kept, {removing} {}removed",
                if r.dry_run { "to be " } else { "" }
            )?;
        }
        for w in &g.warnings {
            writeln!(out, "{head} warning: {w}")?;
        }
        if let Some(guard) = &g.guard {
            writeln!(out, "{head} held back: {guard}")?;
        }
        for e in &g.errors {
            writeln!(out, "{head} error: {e}")?;
        }
    }
    for s in &r.strays {
        writeln!(out, "unmanaged: {s} carries lvsnap's tag but has no catalog record; left alone (`lvsnap catalog rebuild` adopts it)")?;
    }
    Ok(())
}

/// `run`, `prune` and `plan` as JSON.
pub fn run_json(r: &RunReport) -> Value {
    let groups: Vec<Value> = r
        .groups
        .iter()
        .map(|g| {
            json!({
                "policy": g.policy,
                "volume": g.volume,
                "created": g.created,
                "set": g.set,
                "frozen_ms": g.frozen.map(|f| f.as_millis()),
                "not_due": g.not_due,
                "removed": g.removed.iter().map(|(n, why)| json!({"name": n, "why": why})).collect::<Vec<_>>(),
                "extended": g.extended,
                "plan": g.plan.iter().map(|p| json!({"name": p.name, "time": utc(p.time), "keep": p.keep, "reasons": p.reasons, "why_not": p.why_not})).collect::<Vec<_>>(),
                "warnings": g.warnings,
                "guard": g.guard,
                "errors": g.errors,
            })
        })
        .collect();
    let space = &r.relief;
    let space = json!({
        "removed": space.removed.iter().map(|x| json!({"policy": x.policy, "volume": x.volume, "name": x.name, "why": x.why})).collect::<Vec<_>>(),
        "estimated": space.estimated,
        "left": space.left.iter().map(|l| json!({"place": l.place, "warning": l.text})).collect::<Vec<_>>(),
        "errors": space.errors.iter().map(|x| json!({"policy": x.policy, "volume": x.volume, "name": x.name, "error": x.why})).collect::<Vec<_>>(),
    });
    json!({"dry_run": r.dry_run, "ok": !r.failed(), "space": space, "groups": groups, "reconciled": r.notes, "unmanaged": r.strays, "lvm_commands": r.lvm_commands})
}

/// One line of `lvsnap list`.
#[derive(Debug, Clone)]
pub struct ListRow {
    pub name: String,
    pub vg: String,
    pub origin: String,
    pub policy: String,
    pub time: DateTime<Utc>,
    pub thin: bool,
    pub size: u64,
    pub fill: Option<f64>,
    pub state: String,
    pub pinned: bool,
    pub note: Option<String>,
    /// The snapshot set it belongs to.
    pub set: Option<String>,
    /// Why the plan keeps it, or why it will go.
    pub why: String,
    pub keep: bool,
}

/// `lvsnap list` for a terminal.
///
/// # Errors
/// Writing to `out` failed.
pub fn list_text(
    out: &mut dyn Write,
    rows: &[ListRow],
    unmanaged: &[String],
    now: DateTime<Utc>,
    tz: Tz,
) -> io::Result<()> {
    if rows.is_empty() {
        writeln!(out, "no snapshots managed by lvsnap")?;
    } else {
        writeln!(
            out,
            "{:<40} {:<14} {:<24} {:>8} {:<5} {:>9} {:>5} {:<8} {:<3} KEPT FOR / NOTE",
            "NAME", "ORIGIN", "CREATED", "AGE", "KIND", "SIZE", "FILL", "STATE", "PIN"
        )?;
    }
    // Snapshots outside any set first, then each set (oldest first) with its members under it.
    let mut sets: Vec<(&str, Vec<&ListRow>)> = by_set(rows).into_iter().collect();
    sets.sort_by_key(|(id, members)| (members.iter().map(|r| r.time).min(), *id));
    let singles = rows
        .iter()
        .filter(|r| r.set.is_none())
        .map(|r| (Some(r), ""));
    let grouped = sets.iter().flat_map(|(id, members)| {
        std::iter::once(None)
            .chain(members.iter().copied().map(Some))
            .map(move |r| (r, *id))
    });
    let members_of: BTreeMap<&str, &Vec<&ListRow>> = sets.iter().map(|(id, m)| (*id, m)).collect();
    for (r, set) in singles.chain(grouped) {
        let Some(r) = r else {
            let members = members_of[set];
            let policy = members.first().map_or("", |m| m.policy.as_str());
            let keep = if members.iter().all(|m| m.keep) {
                "kept"
            } else {
                "the next prune removes it"
            };
            writeln!(
                out,
                "set {set} (policy {policy}, {} member{}, {keep})",
                members.len(),
                if members.len() == 1 { "" } else { "s" }
            )?;
            continue;
        };
        let name = if set.is_empty() {
            r.name.clone()
        } else {
            format!("  {}", r.name)
        };
        let fill = r
            .fill
            .map(|f| format!("{f:.0}%"))
            .unwrap_or_else(|| "-".to_owned());
        let mut why = if r.keep {
            r.why.clone()
        } else {
            format!("next prune removes it: {}", r.why)
        };
        if let Some(n) = &r.note {
            why = format!("{why}  \"{n}\"");
        }
        writeln!(
            out,
            "{:<40} {:<14} {:<24} {:>8} {:<5} {:>9} {:>5} {:<8} {:<3} {why}",
            name,
            format!("{}/{}", r.vg, r.origin),
            local(r.time, tz),
            age(r.time, now),
            if r.thin { "thin" } else { "thick" },
            format_size(r.size),
            fill,
            r.state,
            if r.pinned { "yes" } else { "" },
        )?;
    }
    for u in unmanaged {
        writeln!(
            out,
            "unmanaged: {u} carries lvsnap's tag but has no catalog record"
        )?;
    }
    Ok(())
}

/// `lvsnap list --json`.
pub fn list_json(rows: &[ListRow], unmanaged: &[String]) -> String {
    #[derive(Serialize)]
    struct Snapshot<'a> {
        name: &'a str,
        vg: &'a str,
        origin: &'a str,
        policy: &'a str,
        created: String,
        kind: &'static str,
        size: u64,
        fill_percent: Option<f64>,
        state: &'a str,
        pinned: bool,
        note: Option<&'a str>,
        keep: bool,
        why: &'a str,
        set: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Member<'a> {
        vg: &'a str,
        origin: &'a str,
        name: &'a str,
    }
    #[derive(Serialize)]
    struct Set<'a> {
        id: &'a str,
        policy: Option<&'a str>,
        created: Option<String>,
        members: Vec<Member<'a>>,
        keep: bool,
    }
    #[derive(Serialize)]
    struct List<'a> {
        snapshots: Vec<Snapshot<'a>>,
        sets: Vec<Set<'a>>,
        unmanaged: &'a [String],
    }
    // Typed rows, not `json!` trees: a list of fifty thousand snapshots is built in one pass.
    let snapshots = rows
        .iter()
        .map(|r| Snapshot {
            name: &r.name,
            vg: &r.vg,
            origin: &r.origin,
            policy: &r.policy,
            created: utc(r.time),
            kind: if r.thin { "thin" } else { "thick" },
            size: r.size,
            fill_percent: r.fill,
            state: &r.state,
            pinned: r.pinned,
            note: r.note.as_deref(),
            keep: r.keep,
            why: &r.why,
            set: r.set.as_deref(),
        })
        .collect();
    let sets = by_set(rows)
        .into_iter()
        .map(|(id, members)| Set {
            id,
            policy: members.first().map(|m| m.policy.as_str()),
            created: members.iter().map(|m| m.time).min().map(utc),
            members: members
                .iter()
                .map(|m| Member {
                    vg: &m.vg,
                    origin: &m.origin,
                    name: &m.name,
                })
                .collect(),
            keep: members.iter().all(|m| m.keep),
        })
        .collect();
    serde_json::to_string(&List {
        snapshots,
        sets,
        unmanaged,
    })
    .unwrap_or_default()
}

/// The members of each set, by set id, in the order of `rows`.
fn by_set(rows: &[ListRow]) -> BTreeMap<&str, Vec<&ListRow>> {
    let mut sets: BTreeMap<&str, Vec<&ListRow>> = BTreeMap::new();
    for r in rows {
        if let Some(id) = r.set.as_deref() {
            sets.entry(id).or_default().push(r);
        }
    }
    sets
}
