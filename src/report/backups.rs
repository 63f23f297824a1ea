//! Backups as the administrator and scripts read them: a backup pass (`backup`, and `run`'s
//! backups), and the catalog's backups (`backups`).

use std::io::{self, Write};

use chrono_tz::Tz;

use serde_json::{json, Value};

use crate::backup::engines;
use crate::backup::{BackupReport, Outcome};
use crate::catalog::BackupRecord;
use crate::names::shown;
use crate::units::{format_size, local};

/// Prints a backup pass, as text or JSON.
///
/// # Errors
/// The output cannot be written.
pub fn write_report(out: &mut dyn Write, r: &BackupReport, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", report_json(r));
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    for v in &r.volumes {
        let head = format!("backup {} {}", v.policy, v.volume);
        match &v.outcome {
            Outcome::Done {
                name,
                snapshot,
                bytes,
                files,
                copy_seconds,
                hash_seconds,
                proof,
                skipped,
                restic: Some(sum),
            } => {
                let lost = skipped.values().filter(|s| s.loses_data()).count();
                writeln!(
                    out,
                    "{head}: {} restic snapshot {} ({name}) from {snapshot}: {files} files, {}; {} new, {} changed, {} unchanged; added {} to the repository; backed up in {copy_seconds:.1}s, hashed in {hash_seconds:.1}s ({} unchanged files' digests kept from the previous backup), listing matched for {} entries",
                    if lost > 0 { "PARTIAL, made" } else { "made" },
                    crate::backup::restic::short(&sum.id),
                    format_size(*bytes),
                    sum.files_new,
                    sum.files_changed,
                    sum.files_unmodified,
                    format_size(sum.data_added),
                    proof.linked,
                    proof.listed,
                )?;
                write_skipped(out, skipped)?;
            }
            Outcome::Done {
                name,
                snapshot,
                bytes,
                files,
                copy_seconds,
                hash_seconds,
                proof,
                skipped,
                restic: None,
            } => {
                let lost = skipped.values().filter(|s| s.loses_data()).count();
                writeln!(
                    out,
                    "{head}: {} {name} from {snapshot}: {files} files, {}, copied in {copy_seconds:.1}s, hashed in {hash_seconds:.1}s, proven in {:.1}s ({} read back, {} of them during the copy, {} as in the previous generation{})",
                    if lost > 0 { "PARTIAL, wrote" } else { "wrote" },
                    format_size(*bytes),
                    proof.seconds,
                    proof.read_back,
                    proof.during_copy,
                    proof.linked,
                    if proof.recopied.is_empty() {
                        String::new()
                    } else {
                        format!(", {} changed with size and mtime kept and copied again", proof.recopied.len())
                    }
                )?;
                write_skipped(out, skipped)?;
            }
            Outcome::Would { snapshot, to } => {
                writeln!(out, "{head}: would back up {snapshot} to {}", to.display())?
            }
            Outcome::NotDue(why) => writeln!(out, "{head}: not due ({why})")?,
            Outcome::Skipped(why) => writeln!(out, "{head}: skipped: {why}")?,
            Outcome::Failed(why) => writeln!(out, "{head}: FAILED: {why}")?,
        }
        for (label, why) in &v.pruned {
            let verb = if r.dry_run { "would prune" } else { "pruned" };
            writeln!(out, "  {verb} {label} ({why})")?;
        }
        for w in &v.warnings {
            writeln!(out, "  warning: {w}")?;
        }
    }
    Ok(())
}

fn write_skipped(
    out: &mut dyn Write,
    skipped: &std::collections::BTreeMap<std::path::PathBuf, crate::manifest::Skip>,
) -> io::Result<()> {
    for (path, why) in skipped.iter().take(crate::backup::SKIPPED_SHOWN) {
        writeln!(out, "  {}: {}", shown(path), why.describe())?;
    }
    if skipped.len() > crate::backup::SKIPPED_SHOWN {
        writeln!(
            out,
            "  … and {} more (the generation's manifest lists them all, as `! why path` lines)",
            skipped.len() - crate::backup::SKIPPED_SHOWN
        )?;
    }
    Ok(())
}

pub fn report_json(r: &BackupReport) -> Value {
    let volumes: Vec<Value> = r
        .volumes
        .iter()
        .map(|v| {
            let (status, detail) = match &v.outcome {
                Outcome::Done {
                    name,
                    snapshot,
                    bytes,
                    files,
                    copy_seconds,
                    hash_seconds,
                    proof,
                    skipped,
                    restic,
                } => (
                    if skipped.values().any(|s| s.loses_data()) { "partial" } else { "done" },
                    json!({"name": name, "snapshot": snapshot, "bytes": bytes, "files": files,
                           "copy_seconds": copy_seconds, "hash_seconds": hash_seconds,
                           "restic": restic.as_ref().map(|s| json!({"id": s.id, "files_new": s.files_new, "files_changed": s.files_changed, "files_unmodified": s.files_unmodified, "data_added": s.data_added, "total_bytes_processed": s.total_bytes_processed})),
                           "proof": {"seconds": proof.seconds, "walk_seconds": proof.walk_seconds, "sync_seconds": proof.sync_seconds, "read_back": proof.read_back, "read_during_copy": proof.during_copy,
                                     "linked": proof.linked, "listed": proof.listed,
                                     "recopied": proof.recopied.iter().map(|p| crate::names::json(p)).collect::<Vec<_>>()},
                           "skipped": skipped.iter().map(|(p, why)| json!({"path": crate::names::json(p), "why": why.as_str()})).collect::<Vec<_>>()}),
                ),
                Outcome::Would { snapshot, to } => (
                    "would",
                    json!({"snapshot": snapshot, "to": to.display().to_string()}),
                ),
                Outcome::NotDue(why) => ("not-due", json!({"reason": why})),
                Outcome::Skipped(why) => ("skipped", json!({"reason": why})),
                Outcome::Failed(why) => ("failed", json!({"error": why})),
            };
            json!({
                "policy": v.policy,
                "volume": v.volume,
                "status": status,
                "detail": detail,
                "pruned": v.pruned.iter().map(|(l, why)| json!({"backup": l, "reason": why})).collect::<Vec<_>>(),
                "warnings": v.warnings,
            })
        })
        .collect();
    json!({"dry_run": r.dry_run, "notes": r.notes, "volumes": volumes})
}

pub fn record_json(b: &BackupRecord) -> Value {
    json!({
        "id": b.id,
        "backup": b.label(),
        "policy": b.policy,
        "volume": format!("{}/{}", b.vg, b.origin),
        "generation": b.name,
        "engine": b.engine,
        "path": engines::artifact(&b.engine, &b.dir, &b.name).map(|p| p.display().to_string()),
        "manifest": engines::manifest_path(&b.dir, &b.name).display().to_string(),
        "snapshot": b.snapshot,
        "snapshot_time": b.snapshot_time.to_rfc3339(),
        "temporary_snapshot": b.temporary,
        "state": b.state.as_str(),
        "started": b.started.to_rfc3339(),
        "finished": b.finished.map(|t| t.to_rfc3339()),
        "bytes": b.bytes,
        "files": b.files,
        "manifest_sha256": b.manifest_sha256,
        "restic_id": b.remote_id,
        "bytes_added": b.bytes_added,
        "error": b.error,
        "verified": b.verified.map(|t| t.to_rfc3339()),
        "verify_ok": b.verify_ok,
        "verify_detail": b.verify_detail,
    })
}

/// `backups --json`.
pub fn list_json(rows: &[BackupRecord]) -> Value {
    rows.iter().map(record_json).collect()
}

/// `backups`: one line per generation, with its error lines under it.
///
/// # Errors
/// The output cannot be written.
pub fn list_text(out: &mut dyn Write, rows: &[BackupRecord], all: bool, tz: Tz) -> io::Result<()> {
    if rows.is_empty() {
        writeln!(
            out,
            "no backups{}",
            if all {
                ""
            } else {
                " (--all shows failed and pruned ones)"
            }
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<22} {:<17} {:<8} {:<9} {:>7} {:>9} {:>6}  VERIFIED",
        "VOLUME", "GENERATION", "ENGINE", "STATE", "FILES", "SIZE", "TOOK"
    )?;
    for b in rows {
        let took = b
            .finished
            .map(|f| format!("{}s", (f - b.started).num_seconds()))
            .unwrap_or_else(|| "-".to_owned());
        let verified = match (b.verified, b.verify_ok) {
            (Some(at), Some(true)) => format!("ok {}", local(at, tz)),
            (Some(at), Some(false)) => format!("FAILED {}", local(at, tz)),
            _ => "never".to_owned(),
        };
        writeln!(
            out,
            "{:<22} {:<17} {:<8} {:<9} {:>7} {:>9} {:>6}  {verified}",
            format!("{}/{}", b.vg, b.origin),
            b.name,
            b.engine,
            b.state.as_str(),
            b.files.map_or("-".to_owned(), |f| f.to_string()),
            b.bytes.map_or("-".to_owned(), format_size),
            took,
        )?;
        if let Some(id) = &b.remote_id {
            writeln!(
                out,
                "  restic snapshot {}{}",
                crate::backup::restic::short(id),
                b.bytes_added
                    .map(|a| format!(", added {}", format_size(a)))
                    .unwrap_or_default()
            )?;
        }
        if let Some(e) = &b.error {
            for line in e.lines() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    Ok(())
}

/// One result of `verify --json`.
pub fn verified_json(b: &BackupRecord, ok: bool, problems: &[String]) -> Value {
    json!({"backup": b.label(), "ok": ok, "problems": problems})
}

/// One result of `verify`: ok, or each problem on its own line.
///
/// # Errors
/// The output cannot be written.
pub fn verified_text(
    out: &mut dyn Write,
    b: &BackupRecord,
    ok: bool,
    detail: &str,
    problems: &[String],
) -> io::Result<()> {
    if ok {
        return writeln!(out, "{}: ok ({detail})", b.label());
    }
    writeln!(out, "{}: FAILED, {} problem(s)", b.label(), problems.len())?;
    for p in problems {
        writeln!(out, "  {p}")?;
    }
    Ok(())
}
