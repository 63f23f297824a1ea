//! Restores and rollbacks as `catalog history` and the end of `list` show them.

use std::io::Write;

use serde_json::{json, Value};

use crate::catalog::{Catalog, RestoreRecord, RollbackRecord};
use crate::error::Error;
use crate::lvm::Inventory;
use crate::names::{self, shown};
use crate::units::{format_size, local};

/// The restore history as text; also the footer of `lvsnap list`.
///
/// # Errors
/// The catalog cannot be read or the output written.
pub fn history_text(
    out: &mut dyn Write,
    catalog: &Catalog,
    inv: Option<&Inventory>,
    limit: usize,
    tz: chrono_tz::Tz,
) -> Result<(), Error> {
    let restores = catalog.restores(limit)?;
    let rollbacks = catalog.rollbacks(false)?;
    if restores.is_empty() && rollbacks.is_empty() {
        writeln!(out, "no restores or rollbacks yet")?;
        return Ok(());
    }
    for r in &restores {
        writeln!(
            out,
            "{}  restore   {} → {}: {} ({} file(s), {}){}",
            local(r.at, tz),
            r.source,
            shown(&r.destination),
            r.paths.join(", "),
            r.files,
            format_size(r.bytes),
            if r.ok {
                String::new()
            } else {
                format!(" FAILED: {}", r.detail.as_deref().unwrap_or(""))
            }
        )?;
    }
    for b in rollbacks.iter().take(limit) {
        let state = match b.completed {
            Some(t) => format!("completed {}", local(t, tz)),
            None if crate::restore::rollback::is_done(b, inv) => "completed".to_owned(),
            None if b.swap.is_some() => {
                "INTERRUPTED: `lvsnap rollback --resume` (or the next run) finishes it".to_owned()
            }
            None => format!("PENDING until {}/{} is next activated", b.vg, b.origin),
        };
        writeln!(
            out,
            "{}  rollback  {}/{} to {} (guard {}): {state}",
            local(b.requested, tz),
            b.vg,
            b.origin,
            b.snapshot,
            b.guard.as_deref().unwrap_or("none")
        )?;
    }
    Ok(())
}

/// `catalog history --json`.
pub fn json(
    restores: &[RestoreRecord],
    rollbacks: &[RollbackRecord],
    inv: Option<&Inventory>,
) -> Value {
    let r: Vec<_> = restores
        .iter()
        .map(|r| json!({"at": r.at.to_rfc3339(), "source": r.source, "paths": r.paths, "destination": names::json(&r.destination), "files": r.files, "bytes": r.bytes, "ok": r.ok, "error": r.detail}))
        .collect();
    let b: Vec<_> = rollbacks
        .iter()
        .map(|b| json!({"requested": b.requested.to_rfc3339(), "volume": format!("{}/{}", b.vg, b.origin), "snapshot": b.snapshot, "guard": b.guard, "deferred": b.deferred, "completed": b.completed.map(|t| t.to_rfc3339()), "pending": !crate::restore::rollback::is_done(b, inv)}))
        .collect();
    json!({"restores": r, "rollbacks": b})
}
