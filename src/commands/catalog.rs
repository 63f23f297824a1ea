//! The catalog commands: `catalog rebuild`, `catalog events` and `catalog history`.

use chrono::DateTime;
use clap::Args;

use super::Ctx;
use crate::catalog::{Catalog, NewSnapshot, State};
use crate::error::{exit, Error};
use crate::reconcile::{PINNED_TAG, POLICY_TAG, TIME_TAG};
use crate::report;

/// `catalog rebuild`: sets a damaged catalog aside, re-creates records for tagged snapshots
/// from their tags, and for committed backup generations from the backup targets.
///
/// # Errors
/// Lock, inventory or catalog failure.
pub fn rebuild(ctx: &mut Ctx<'_>, a: &RebuildArgs) -> Result<i32, Error> {
    let dry_run = a.dry_run;
    let _lock = if dry_run { None } else { Some(ctx.lock()?) };
    let path = ctx.config.settings.catalog.clone();
    // The header first (what a truncation breaks), then every page.
    let damaged = Catalog::open_read(&path)
        .and_then(|c| c.check())
        .is_err_and(|e| e.is_damaged());
    let mut catalog = match (damaged, dry_run) {
        (true, true) => {
            writeln!(
                ctx.out,
                "would set the damaged catalog {} aside and start a new one",
                path.display()
            )?;
            Catalog::in_memory()?
        }
        (true, false) => {
            let aside = Catalog::set_aside(&path, ctx.now).map_err(|e| {
                Error::Usage(format!(
                    "cannot set the damaged catalog {} aside: {e}",
                    path.display()
                ))
            })?;
            writeln!(
                ctx.out,
                "set the damaged catalog aside as {}; a new one is built from LVM and the backup targets",
                aside.display()
            )?;
            ctx.catalog(true)?
        }
        (false, _) => ctx.catalog(!dry_run)?,
    };
    let mut engine = ctx.engine(&mut catalog, dry_run);
    let (_, fleet) = engine.survey()?;
    let mut adopted = 0;
    for lv in &fleet.strays {
        let (Some(origin), Some(policy)) = (lv.origin.as_deref(), lv.tag_value(POLICY_TAG)) else {
            writeln!(
                ctx.out,
                "skipped {}: its tags do not name an origin and policy",
                lv.path()
            )?;
            continue;
        };
        let time = lv
            .tag_value(TIME_TAG)
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .unwrap_or(lv.time);
        let new = NewSnapshot {
            vg: &lv.vg,
            name: &lv.name,
            origin,
            policy,
            time,
            thin: lv.kind == crate::lvm::LvKind::ThinSnapshot,
            size: lv.size,
            pinned: lv.has_tag(PINNED_TAG),
            note: None,
            set: lv.tag_value(crate::sets::SET_TAG),
        };
        if !dry_run {
            let id = engine.catalog.adopt(&new, &lv.uuid, ctx.now)?;
            if lv.invalid {
                engine.catalog.set_state(
                    id,
                    State::Invalid,
                    Some("invalid when adopted"),
                    ctx.now,
                )?;
            }
        }
        adopted += 1;
        writeln!(
            ctx.out,
            "{} {} (policy {policy}, taken {})",
            if dry_run { "would adopt" } else { "adopted" },
            lv.path(),
            report::utc(time)
        )?;
    }
    if !dry_run {
        engine.flush()?;
    }
    writeln!(
        ctx.out,
        "{adopted} snapshot(s) {}; {} already in the catalog",
        if dry_run { "to adopt" } else { "adopted" },
        fleet.managed().len()
    )?;
    let found = crate::backup::adopt::find_generations(ctx.config, &catalog.backups(None)?);
    for f in &found {
        if !dry_run {
            let new = crate::catalog::NewBackup {
                policy: &f.policy,
                vg: &f.vg,
                origin: &f.origin,
                engine: f.engine,
                dir: &f.dir,
                name: &f.name,
                snapshot: "",
                snapshot_time: f.time,
                temporary: false,
            };
            let written = crate::catalog::Written {
                bytes: f.bytes,
                files: f.files,
                manifest_sha256: &f.manifest_sha256,
                state: if f.partial {
                    crate::catalog::BackupState::Partial
                } else {
                    crate::catalog::BackupState::Complete
                },
                note: f.note.as_deref(),
                remote: f.remote.as_ref().map(|(id, added)| (id.as_str(), *added)),
            };
            catalog.adopt_backup(&new, &written, ctx.now)?;
        }
        writeln!(
            ctx.out,
            "{} backup {} ({}, {} file(s), {}; not verified since: `lvsnap verify {}`)",
            if dry_run { "would adopt" } else { "adopted" },
            f.label(),
            f.engine,
            f.files,
            report::format_size(f.bytes),
            f.label()
        )?;
    }
    writeln!(
        ctx.out,
        "{} backup(s) {}",
        found.len(),
        if dry_run { "to adopt" } else { "adopted" }
    )?;
    Ok(exit::OK)
}

/// `catalog events [--limit N]`: the commands lvsnap ran, newest last.
///
/// # Errors
/// Catalog failure.
pub fn events(ctx: &mut Ctx<'_>, a: &EventsArgs) -> Result<i32, Error> {
    let (limit, json) = (a.limit, a.json);
    let catalog = ctx.catalog(false)?;
    let events = catalog.events(limit)?;
    if json {
        writeln!(ctx.out, "{}", report::events::json(&events))?;
    } else {
        report::events::text(ctx.out, &events, ctx.config.settings.timezone)?;
    }
    Ok(exit::OK)
}

/// `lvsnap catalog history [--limit N] [--json]`: restores and rollbacks, newest first.
///
/// # Errors
/// The catalog cannot be read.
pub fn history(ctx: &mut Ctx<'_>, a: &HistoryArgs) -> Result<i32, Error> {
    let (limit, json) = (a.limit, a.json);
    let mut catalog = ctx.catalog(false)?;
    let tz = ctx.config.settings.timezone;
    // Whether a pending merge finished since the last writing command shows only in LVM.
    let inv = ctx.engine(&mut catalog, true).inventory().ok();
    let restores = catalog.restores(limit)?;
    let rollbacks = catalog.rollbacks(false)?;
    if json {
        let v = report::history::json(
            &restores,
            &rollbacks[..rollbacks.len().min(limit)],
            inv.as_ref(),
        );
        writeln!(ctx.out, "{v}")?;
        return Ok(exit::OK);
    }
    report::history::history_text(ctx.out, &catalog, inv.as_ref(), limit, tz)?;
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Show what would be adopted; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// How many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many of each.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
