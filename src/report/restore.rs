//! Restores and diffs as the administrator reads them, and as scripts parse them.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::confine::copy;
use crate::manifest::Differences;
use crate::names::{self, shown};
use crate::units::format_size;

/// What a restore will copy (or, in a dry run, would): each missing parent, each file and
/// what is in its way, and the totals; as JSON for a dry run with `--json`.
///
/// # Errors
/// The output cannot be written.
pub fn plan(
    out: &mut dyn Write,
    label: &str,
    dest: &Path,
    plan: &copy::CopyPlan,
    dry_run: bool,
    json: bool,
) -> io::Result<()> {
    if json && dry_run {
        let item = |i: &copy::Item| json!({"path": names::json(&i.rel), "in_the_way": i.in_the_way().then(|| i.obstacle())});
        let files: Vec<_> = plan.files().map(item).collect();
        let parents: Vec<_> = plan.parents().map(names::json).collect();
        return writeln!(
            out,
            "{}",
            json!({"source": label, "destination": names::json(dest), "files": files, "creates_parents": parents, "bytes": plan.bytes(), "in_the_way": plan.conflicts().count()})
        );
    }
    let verb = if dry_run {
        "would restore"
    } else {
        "will restore"
    };
    writeln!(out, "{verb} from {label} to {}:", shown(dest))?;
    for i in plan.items.iter().filter(|i| i.parent) {
        let why = if i.in_the_way() {
            format!("replaces {} in the way; ", i.obstacle())
        } else {
            "missing parent: ".to_owned()
        };
        writeln!(
            out,
            "  {}/  ({why}created with the source's owner, mode and times)",
            shown(&i.rel)
        )?;
    }
    for i in plan.items.iter().filter(|i| !i.parent) {
        if i.kind == rustix::fs::FileType::Directory && !i.in_the_way() {
            continue;
        }
        let mark = if i.in_the_way() {
            format!("  (replaces {} in the way)", i.obstacle())
        } else {
            String::new()
        };
        let slash = if i.kind == rustix::fs::FileType::Directory {
            "/"
        } else {
            ""
        };
        writeln!(out, "  {}{slash}{mark}", shown(&i.rel))?;
    }
    writeln!(
        out,
        "{} file(s), {}; {} existing path(s) in the way; existing parent directories are left as they are",
        plan.files().count(),
        format_size(plan.bytes()),
        plan.conflicts().count()
    )
}

/// `diff --json`.
pub fn diff_json(from: &str, to: &str, d: &Differences) -> Value {
    let p = |v: &[PathBuf]| v.iter().map(|p| names::json(p)).collect::<Vec<_>>();
    let changed: Vec<_> = d
        .changed
        .iter()
        .map(|(p, what)| json!({"path": names::json(p), "what": what}))
        .collect();
    json!({"from": from, "to": to, "added": p(&d.extra), "removed": p(&d.missing), "changed": changed})
}

/// `diff`: `+` added, `-` removed, `c` changed (with what), `?` not compared.
///
/// # Errors
/// The output cannot be written.
pub fn diff_text(out: &mut dyn Write, from: &str, to: &str, d: &Differences) -> io::Result<()> {
    writeln!(out, "changes from {from} to {to}:")?;
    for p in &d.extra {
        writeln!(out, "+ {}", shown(p))?;
    }
    for p in &d.missing {
        writeln!(out, "- {}", shown(p))?;
    }
    for (p, what) in &d.changed {
        writeln!(out, "c {} ({what})", shown(p))?;
    }
    for (p, why) in &d.unreadable {
        writeln!(out, "? {} ({}: not compared)", shown(p), why.as_str())?;
    }
    writeln!(
        out,
        "{} added, {} removed, {} changed",
        d.extra.len(),
        d.missing.len(),
        d.changed.len()
    )
}

/// What a restore copied, as JSON.
pub fn done_json(label: &str, dest: &Path, plan: &copy::CopyPlan) -> Value {
    let files: Vec<_> = plan.files().map(|i| names::json(&i.rel)).collect();
    let parents: Vec<_> = plan.parents().map(names::json).collect();
    json!({"source": label, "destination": names::json(dest), "files": files, "created_parents": parents, "bytes": plan.bytes()})
}

/// What a restore copied: each file, then the totals.
///
/// # Errors
/// The output cannot be written.
pub fn done_text(
    out: &mut dyn Write,
    label: &str,
    dest: &Path,
    plan: &copy::CopyPlan,
    replaced: usize,
) -> io::Result<()> {
    writeln!(out, "restored from {label} to {}:", shown(dest))?;
    let files: Vec<&copy::Item> = plan.files().collect();
    for f in &files {
        writeln!(out, "  {}", shown(&f.rel))?;
    }
    writeln!(
        out,
        "{} file(s), {}{}",
        files.len(),
        format_size(plan.bytes()),
        if replaced == 0 {
            String::new()
        } else {
            format!(", {replaced} replaced")
        }
    )
}
