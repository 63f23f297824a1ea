//! The backup commands behind the CLI: `backup`, `backups` and `verify`. Like the snapshot
//! commands they take everything (configuration, LVM runner, clock, output) as arguments.

use std::io::Write;

use serde_json::{json, Value};

use super::{verify, BackupOptions, BackupReport, Outcome};
use crate::catalog::{BackupRecord, BackupState};
use crate::commands::Ctx;
use crate::config::VolumeRef;
use crate::error::{exit, Error};
use crate::names::shown;
use crate::report::{format_size, local};
use crate::run::{Engine, Space};

/// `lvsnap backup POLICY [--volume V] [--dry-run] [--json]`: backs up now, due or not.
///
/// # Errors
/// Bad arguments, the lock, the inventory or the catalog failed.
pub fn backup(
    ctx: &mut Ctx<'_>,
    policy: &str,
    volume: Option<&str>,
    dry_run: bool,
    json: bool,
) -> Result<i32, Error> {
    let p = ctx.config.require_policy(policy).map_err(Error::Usage)?;
    if p.backup.is_none() {
        return Err(Error::Usage(format!(
            "policy \"{policy}\" has no [policy.{policy}.backup] table in {}; add one with a schedule, engine, target and keep rules (see the README, \"Backups\")",
            p.file.display()
        )));
    }
    let volume: Option<VolumeRef> = match volume {
        Some(v) => Some(
            p.volumes
                .iter()
                .find(|x| x.to_string() == v || x.lv == v)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<String> = p.volumes.iter().map(ToString::to_string).collect();
                    Error::Usage(format!(
                        "policy \"{policy}\" has no volume {v:?} (its volumes: {})",
                        names.join(", ")
                    ))
                })?,
        ),
        None => None,
    };
    ctx.tools()?;
    let held = if dry_run { None } else { Some(ctx.hold()?) };
    let mut catalog = ctx.catalog(!dry_run)?;
    let mut engine = Engine::new(ctx.config, ctx.runner, &mut catalog, ctx.now, dry_run);
    let (inv, mut fleet) = engine.survey()?;
    let mut space = Space::from(&inv);
    let policies = [policy.to_owned()];
    let opts = BackupOptions {
        policies: &policies,
        volume: volume.as_ref(),
        due_only: false,
        force: false,
        cancel: &ctx.cancel,
        progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        lock: held.as_ref(),
    };
    let report = engine.backups(&opts, &inv, &mut fleet, &mut space)?;
    engine.flush()?;
    write_report(ctx.out, &report, json)?;
    Ok(if report.failed() {
        exit::FAILED
    } else {
        exit::OK
    })
}

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
                } => (
                    if skipped.values().any(|s| s.loses_data()) { "partial" } else { "done" },
                    json!({"name": name, "snapshot": snapshot, "bytes": bytes, "files": files,
                           "copy_seconds": copy_seconds, "hash_seconds": hash_seconds,
                           "proof": {"seconds": proof.seconds, "walk_seconds": proof.walk_seconds, "sync_seconds": proof.sync_seconds, "read_back": proof.read_back, "read_during_copy": proof.during_copy,
                                     "linked": proof.linked,
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

/// `lvsnap backups [--policy P] [--all] [--json]`: the backups in the catalog, oldest first.
/// Removed and failed ones only with `--all`.
///
/// # Errors
/// The catalog cannot be read.
pub fn backups(
    ctx: &mut Ctx<'_>,
    policy: Option<&str>,
    all: bool,
    json: bool,
) -> Result<i32, Error> {
    if let Some(p) = policy {
        ctx.config.require_policy(p).map_err(Error::Usage)?;
    }
    let catalog = ctx.catalog(false)?;
    let rows: Vec<BackupRecord> = catalog
        .backups(policy)?
        .into_iter()
        .filter(|b| {
            all || matches!(
                b.state,
                BackupState::Complete | BackupState::Partial | BackupState::Running
            )
        })
        .collect();
    if json {
        let v: Vec<Value> = rows.iter().map(record_json).collect();
        writeln!(ctx.out, "{}", Value::Array(v))?;
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        writeln!(
            ctx.out,
            "no backups{}",
            if all {
                ""
            } else {
                " (--all shows failed and pruned ones)"
            }
        )?;
        return Ok(exit::OK);
    }
    let tz = ctx.config.settings.timezone;
    writeln!(
        ctx.out,
        "{:<22} {:<17} {:<8} {:<9} {:>7} {:>9} {:>6}  VERIFIED",
        "VOLUME", "GENERATION", "ENGINE", "STATE", "FILES", "SIZE", "TOOK"
    )?;
    for b in &rows {
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
            ctx.out,
            "{:<22} {:<17} {:<8} {:<9} {:>7} {:>9} {:>6}  {verified}",
            format!("{}/{}", b.vg, b.origin),
            b.name,
            b.engine,
            b.state.as_str(),
            b.files.map_or("-".to_owned(), |f| f.to_string()),
            b.bytes.map_or("-".to_owned(), format_size),
            took,
        )?;
        if let Some(e) = &b.error {
            for line in e.lines() {
                writeln!(ctx.out, "  {line}")?;
            }
        }
    }
    Ok(exit::OK)
}

fn record_json(b: &BackupRecord) -> Value {
    json!({
        "id": b.id,
        "backup": b.label(),
        "policy": b.policy,
        "volume": format!("{}/{}", b.vg, b.origin),
        "generation": b.name,
        "engine": b.engine,
        "path": super::engines::artifact(&b.engine, &b.dir, &b.name).map(|p| p.display().to_string()),
        "manifest": super::engines::manifest_path(&b.dir, &b.name).display().to_string(),
        "snapshot": b.snapshot,
        "snapshot_time": b.snapshot_time.to_rfc3339(),
        "temporary_snapshot": b.temporary,
        "state": b.state.as_str(),
        "started": b.started.to_rfc3339(),
        "finished": b.finished.map(|t| t.to_rfc3339()),
        "bytes": b.bytes,
        "files": b.files,
        "manifest_sha256": b.manifest_sha256,
        "error": b.error,
        "verified": b.verified.map(|t| t.to_rfc3339()),
        "verify_ok": b.verify_ok,
        "verify_detail": b.verify_detail,
    })
}

/// `lvsnap verify BACKUP | --all [--policy P]`: re-reads backups against their manifests.
///
/// # Errors
/// Bad arguments or the catalog failed; a failed verification is exit status 1, not an error.
pub fn verify_cmd(
    ctx: &mut Ctx<'_>,
    spec: Option<&str>,
    all: bool,
    policy: Option<&str>,
    json: bool,
) -> Result<i32, Error> {
    if let Some(p) = policy {
        ctx.config.require_policy(p).map_err(Error::Usage)?;
    }
    let _lock = ctx.lock()?;
    let catalog = ctx.catalog(true)?;
    let every = catalog.backups(policy)?;
    let chosen: Vec<BackupRecord> = match (spec, all) {
        (Some(s), false) => vec![crate::resolve::backup(&every, s)?.clone()],
        (None, true) => every
            .into_iter()
            .filter(|b| b.state.is_usable() && b.engine != "command")
            .collect(),
        _ => {
            return Err(Error::Usage(
                "name one backup (VG/LV@GENERATION, see `lvsnap backups`) or pass --all".to_owned(),
            ))
        }
    };
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let mut status = exit::OK;
    let mut results = Vec::new();
    for b in &chosen {
        let (ok, problems) = match verify::verify(b, workers) {
            Ok(v) => (v.ok(), v.problems()),
            Err(e) => (false, vec![e]),
        };
        let detail = if ok {
            format!("{} files match the manifest", b.files.unwrap_or(0))
        } else {
            problems.join("\n")
        };
        catalog.set_verified(b.id, ok, &detail, ctx.now)?;
        if !ok {
            status = exit::FAILED;
        }
        if json {
            results.push(json!({"backup": b.label(), "ok": ok, "problems": problems}));
        } else if ok {
            writeln!(ctx.out, "{}: ok ({detail})", b.label())?;
        } else {
            writeln!(
                ctx.out,
                "{}: FAILED, {} problem(s)",
                b.label(),
                problems.len()
            )?;
            for p in &problems {
                writeln!(ctx.out, "  {p}")?;
            }
        }
    }
    if json {
        writeln!(ctx.out, "{}", Value::Array(results))?;
    } else if chosen.is_empty() {
        writeln!(ctx.out, "no backups to verify")?;
    }
    Ok(status)
}
