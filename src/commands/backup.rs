//! The backup commands: `backup`, `backups` and `verify`.

use clap::Args;

use super::Ctx;
use crate::backup::{verify, BackupOptions};
use crate::catalog::{BackupRecord, BackupState};
use crate::config::VolumeRef;
use crate::cycle::Space;
use crate::error::{exit, Error};
use crate::report;

/// `lvsnap backup POLICY [--volume V] [--dry-run] [--json]`: backs up now, due or not.
///
/// # Errors
/// Bad arguments, the lock, the inventory or the catalog failed.
pub fn backup(ctx: &mut Ctx<'_>, a: &BackupArgs) -> Result<i32, Error> {
    let (policy, volume, dry_run, json) = (&a.policy, a.volume.as_deref(), a.dry_run, a.json);
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
    let mut engine = ctx.engine(&mut catalog, dry_run);
    let policies = [policy.to_owned()];
    let openings = engine.open_ahead(&policies, false);
    let (inv, mut fleet) = engine.survey()?;
    let mut space = Space::from(&inv);
    let opts = BackupOptions {
        policies: &policies,
        volume: volume.as_ref(),
        due_only: false,
        force: false,
        cancel: &ctx.cancel,
        progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        lock: held.as_ref(),
        openings: Some(&openings),
    };
    let report = engine.backups(&opts, &inv, &mut fleet, &mut space)?;
    engine.flush()?;
    report::backups::write_report(ctx.out, &report, json)?;
    Ok(if report.failed() {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// `lvsnap backups [--policy P] [--all] [--json]`: the backups in the catalog, oldest first.
/// Removed and failed ones only with `--all`.
///
/// # Errors
/// The catalog cannot be read.
pub fn backups(ctx: &mut Ctx<'_>, a: &BackupsArgs) -> Result<i32, Error> {
    let (policy, all, json) = (a.policy.as_deref(), a.all, a.json);
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
        writeln!(ctx.out, "{}", report::backups::list_json(&rows))?;
    } else {
        report::backups::list_text(ctx.out, &rows, all, ctx.config.settings.timezone)?;
    }
    Ok(exit::OK)
}

/// `lvsnap verify BACKUP | --all [--policy P]`: re-reads backups against their manifests.
///
/// # Errors
/// Bad arguments or the catalog failed; a failed verification is exit status 1, not an error.
pub fn verify(ctx: &mut Ctx<'_>, a: &VerifyArgs) -> Result<i32, Error> {
    if let Some(snapshot) = &a.replica {
        return super::replication::verify_replica(ctx, snapshot, a.json);
    }
    let (spec, all, policy, json) = (a.backup.as_deref(), a.all, a.policy.as_deref(), a.json);
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
        let verdict = if b.engine == "restic" {
            verify_restic(ctx, b, a.read_data.as_deref())
        } else {
            verify::verify(b, workers)
        };
        let (ok, problems) = match verdict {
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
        // Each result as soon as it is known: verifying every backup can take hours.
        if json {
            results.push(report::backups::verified_json(b, ok, &problems));
        } else {
            report::backups::verified_text(ctx.out, b, ok, &detail, &problems)?;
        }
    }
    if json {
        writeln!(ctx.out, "{}", serde_json::Value::Array(results))?;
    } else if chosen.is_empty() {
        writeln!(ctx.out, "no backups to verify")?;
    }
    Ok(status)
}

/// A restic backup is verified in its repository, opened with the credentials its policy names
/// now.
fn verify_restic(
    ctx: &Ctx<'_>,
    b: &BackupRecord,
    read_data: Option<&str>,
) -> Result<verify::Verdict, String> {
    let repo = ctx
        .config
        .restic_repository(&b.policy)
        .ok_or_else(|| {
            format!(
                "backup {} is in a restic repository, but policy {} no longer backs up to one; its password is not known",
                b.label(),
                b.policy
            )
        })?;
    let restic = crate::backup::restic::Restic::open(repo, &ctx.config.settings.state_dir())?;
    verify::verify_restic(b, &restic, read_data, &ctx.cancel)
}

/// `--read-data`'s share: `N%` (0 < N ≤ 100) or `n/m`, as `restic check --read-data-subset`
/// takes it.
fn share(s: &str) -> Result<String, String> {
    let ok = match s.split_once('/') {
        Some((n, m)) => {
            matches!((n.parse::<u32>(), m.parse::<u32>()), (Ok(n), Ok(m)) if n >= 1 && n <= m)
        }
        None => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<f64>().ok())
            .is_some_and(|p| p > 0.0 && p <= 100.0),
    };
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a share: write a percentage such as 5% or a part such as 1/10"
        ))
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The policy whose volumes to back up.
    pub policy: String,
    /// Only this volume (VG/LV or LV) of the policy.
    #[arg(long, value_name = "VOLUME")]
    pub volume: Option<String>,
    /// Show what would be backed up and pruned; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// Only this policy's backups.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Option<String>,
    /// Include failed and pruned backups (with why).
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup to verify.
    #[arg(required_unless_present_any = ["all", "replica"], conflicts_with_all = ["all", "replica"])]
    pub backup: Option<String>,
    /// Verify a replica instead: its SHA-256 on the target, range by range, against this
    /// source snapshot's (the replica has the snapshot's name).
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "all")]
    pub replica: Option<String>,
    /// Verify every complete backup (of --policy, if given).
    #[arg(long)]
    pub all: bool,
    /// With --all: only this policy's backups.
    #[arg(long, short = 'p', value_name = "NAME", requires = "all")]
    pub policy: Option<String>,
    /// restic backups: also read the whole snapshot back through restic and compare every
    /// file's digest, then run `restic check` reading SHARE of the repository's data (5% when
    /// not given). Local backups are always read back whole.
    #[arg(long, value_name = "SHARE", num_args = 0..=1, default_missing_value = "5%", value_parser = share)]
    pub read_data: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
