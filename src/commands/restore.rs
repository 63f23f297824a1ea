//! The restore commands: `mount`, `umount`, `restore` and `diff`. Each works only on snapshots
//! lvsnap created and backups it wrote, shows what it will do before it does it, and records
//! what it did.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{confirm, guard_snapshot, Ctx};
use crate::catalog::RestoreRecord;
use crate::config::MountContext;
use crate::confine;
use crate::confine::copy;
use crate::error::{exit, Error};
use crate::manifest::Manifest;
use crate::mount::{self, MountRequest};
use crate::names::shown;
use crate::reconcile::Fleet;
use crate::report;
use crate::resolve::readable_snapshot;
use crate::restore::{relative_paths, resolve, Source, StagingParent};
use crate::run::{Engine, RunError};
use crate::units::local;

/// `lvsnap mount SNAPSHOT [DIR]`: mounts one of lvsnap's snapshots read-only to browse.
///
/// # Errors
/// Not lvsnap's snapshot, the lock, LVM or mount failed.
pub fn mount(ctx: &mut Ctx<'_>, a: &MountArgs) -> Result<i32, Error> {
    let (spec, dir) = (&a.snapshot, a.dir.as_deref());
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = ctx.engine(&mut catalog, false);
    let (inv, fleet) = engine.survey()?;
    if super::set_access::is_set(&fleet, spec) {
        let context = a.context.as_ref();
        return super::set_access::mount_set(ctx, &mut engine, &inv, &fleet, spec, dir, context);
    }
    let m = readable_snapshot(&fleet, &inv, spec)?.clone();
    let label = format!("{}/{}", m.record.vg, m.record.name);
    if let Some(existing) = engine
        .catalog
        .open_mounts()?
        .into_iter()
        .find(|r| r.vg == m.record.vg && r.lv == m.record.name && mount::is_mounted(&r.dir))
    {
        writeln!(
            ctx.out,
            "{label} is already mounted read-only at {}",
            existing.dir.display()
        )?;
        return Ok(exit::OK);
    }
    let dir = dir.map(Path::to_owned).unwrap_or_else(|| {
        ctx.config
            .settings
            .runtime_dir
            .join("mnt")
            .join(&m.record.vg)
            .join(&m.record.name)
    });
    if dir.is_dir() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Usage(format!(
            "{} is not empty; mount on an empty directory (or leave DIR out for {})",
            dir.display(),
            ctx.config.settings.runtime_dir.join("mnt").display()
        )));
    }
    let context = ctx
        .config
        .mount_context(a.context.as_ref(), &m.record.policy);
    let mounted = engine.mount_snapshot(&MountRequest {
        vg: &m.record.vg,
        lv: &m.record.name,
        activate: crate::restore::needs_activation(&m),
        dir: &dir,
        purpose: "browse",
        backup_id: None,
        context,
    })?;
    writeln!(
        ctx.out,
        "mounted {label} ({}, taken {}) read-only at {}\npruning leaves it alone while it is mounted; `lvsnap umount {}` when done",
        mounted.fs_type,
        local(m.record.time, ctx.config.settings.timezone),
        dir.display(),
        m.record.name
    )?;
    Ok(exit::OK)
}

/// `lvsnap umount SNAPSHOT|DIR`.
///
/// # Errors
/// Nothing lvsnap mounted matches, or umount failed.
pub fn umount(ctx: &mut Ctx<'_>, a: &UmountArgs) -> Result<i32, Error> {
    let spec = a.target.as_str();
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let open = catalog.open_mounts()?;
    let members: Vec<(String, String)> = catalog
        .live_snapshots()?
        .into_iter()
        .filter(|s| s.set.as_deref() == Some(spec))
        .map(|s| (s.vg, s.name))
        .collect();
    if !members.is_empty() {
        let mut mine: Vec<_> = open
            .iter()
            .filter(|r| members.iter().any(|(vg, n)| *vg == r.vg && *n == r.lv))
            .cloned()
            .collect();
        if mine.is_empty() {
            return Err(Error::Usage(format!("no member of set {spec} is mounted")));
        }
        // The deepest first: a member may be mounted inside another.
        mine.sort_by_key(|r| std::cmp::Reverse(r.dir.components().count()));
        let mut engine = ctx.engine(&mut catalog, false);
        for r in &mine {
            engine.unmount(&mount::Mounted::from(r))?;
            writeln!(
                ctx.out,
                "unmounted {}/{} from {}",
                r.vg,
                r.lv,
                r.dir.display()
            )?;
        }
        return Ok(exit::OK);
    }
    let as_dir = std::fs::canonicalize(spec).ok();
    let rec = open.iter().find(|r| {
        r.lv == spec
            || format!("{}/{}", r.vg, r.lv) == spec
            || as_dir.as_deref() == Some(r.dir.as_path())
            || Path::new(spec) == r.dir
    });
    let Some(rec) = rec.cloned() else {
        let names: Vec<String> = open
            .iter()
            .map(|r| format!("{}/{} at {}", r.vg, r.lv, r.dir.display()))
            .collect();
        return Err(Error::Usage(format!(
            "lvsnap has nothing mounted as {spec:?} (its mounts: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let mut engine = ctx.engine(&mut catalog, false);
    engine.unmount(&mount::Mounted::from(&rec))?;
    writeln!(
        ctx.out,
        "unmounted {}/{} from {}",
        rec.vg,
        rec.lv,
        rec.dir.display()
    )?;
    Ok(exit::OK)
}

/// `lvsnap restore SOURCE PATH… (--to DIR | --in-place) [--force] [--dry-run] [--yes]`.
///
/// # Errors
/// Bad arguments, a source that is not lvsnap's, or a failure while copying.
pub fn restore(ctx: &mut Ctx<'_>, a: &RestoreArgs) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let backups = catalog.backups(None)?;
    let mut engine = ctx.engine(&mut catalog, false);
    let (inv, mut fleet) = engine.survey()?;
    // A set: the member whose origin holds the paths.
    let spec = if super::set_access::is_set(&fleet, &a.source) {
        super::set_access::member_for_paths(&fleet, &a.source, &a.paths)?
    } else {
        a.source.clone()
    };
    let source = resolve(&spec, &fleet, &inv, &backups)?;
    let (vg, lv) = source.origin();
    let live_mount = mount::mount_point_of(&vg, &lv);
    let dest: PathBuf = match (a.to.as_deref(), a.in_place) {
        (Some(d), false) => d.to_owned(),
        (None, true) => live_mount.clone().ok_or_else(|| {
            Error::Usage(format!(
                "--in-place restores into the origin {vg}/{lv}, which is not mounted; mount it, or restore --to DIR"
            ))
        })?,
        _ => {
            return Err(Error::Usage(
                "say where to: --to DIR, or --in-place for the origin's own mount point".to_owned(),
            ))
        }
    };
    let paths = relative_paths(&a.paths, live_mount.as_deref())?;
    // Absolute: the catalog records staging by it, and a later run resolves it from `/`.
    let dest = std::path::absolute(&dest)
        .map_err(|e| Error::Usage(format!("cannot use {}: {e}", shown(&dest))))?;
    let dest_fd = open_destination(&dest, !a.dry_run)?;
    // Staging (archives, restic) beside the destination, reached through its descriptor; a dry
    // run writes nothing there, so it stages in lvsnap's own state directory.
    let staging_parent = match &dest_fd {
        Some(fd) if !a.dry_run => StagingParent::open(fd, &dest),
        _ => StagingParent::private(&state_dir(ctx)),
    };
    if !a.dry_run {
        engine.release_stale_staging()?;
    }
    let opened = engine.open_source(&source, &paths, &staging_parent, a.dry_run, &ctx.cancel)?;
    let outcome = restore_from(
        ctx,
        &mut engine,
        &mut fleet,
        &inv,
        a,
        &source,
        &opened.root,
        &paths,
        (&dest, dest_fd.as_ref()),
    );
    let closed = engine.close_source(opened);
    let code = outcome?;
    closed?;
    Ok(code)
}

/// lvsnap's state directory (the catalog's), private to root.
fn state_dir(ctx: &Ctx<'_>) -> PathBuf {
    let dir = ctx
        .config
        .settings
        .catalog
        .parent()
        .map_or_else(|| PathBuf::from("/var/lib/lvsnap"), Path::to_owned);
    let _ = crate::private::create_dir_all(&dir);
    dir
}

/// Opens the destination, creating it (0700) when `create`; `None` when it does not exist and
/// may not be created. It must be a real directory (not a link) owned by root or by the user
/// running lvsnap: a directory someone else owns could be changed under the restore.
fn open_destination(dest: &Path, create: bool) -> Result<Option<OwnedFd>, Error> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Usage(format!("cannot use {}: {e}", shown(dest)))),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::Usage(format!(
                "{} is a symbolic link; restore --to the directory itself ({}), so that what lvsnap writes cannot be redirected",
                shown(dest),
                std::fs::canonicalize(dest).map_or_else(|_| "its target".to_owned(), |p| shown(&p))
            )))
        }
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!("{} is not a directory", shown(dest))))
        }
        Ok(_) => {}
    }
    // From `/`, never through a link a user could have planted on the way (created as needed).
    let fd = confine::open_named_dir(dest, create).map_err(Error::Usage)?;
    let st = rustix::fs::fstat(&fd)
        .map_err(|e| Error::Usage(format!("cannot stat {}: {e}", shown(dest))))?;
    let me = rustix::process::getuid().as_raw();
    if st.st_mode & 0o022 != 0 {
        return Err(Error::Usage(format!(
            "{} can be written by others (mode {:o}): they could plant directories the restore would write into; restore into a directory only its owner can write, such as a new one below it",
            shown(dest),
            st.st_mode & 0o7777
        )));
    }
    if st.st_uid != 0 && st.st_uid != me {
        return Err(Error::Usage(format!(
            "{} belongs to uid {}, not to root: its owner could redirect what lvsnap writes; restore into a directory root owns (then hand the files over)",
            shown(dest),
            st.st_uid
        )));
    }
    Ok(Some(fd))
}

#[allow(clippy::too_many_arguments)]
fn restore_from(
    ctx: &mut Ctx<'_>,
    engine: &mut Engine<'_>,
    fleet: &mut Fleet,
    inv: &crate::lvm::Inventory,
    a: &RestoreArgs,
    source: &Source,
    root: &Path,
    paths: &[PathBuf],
    (dest, dest_fd): (&Path, Option<&OwnedFd>),
) -> Result<i32, Error> {
    let refused = |e: String| Error::Run(RunError::Refused(e));
    let src_fd = confine::open_root(root)
        .map_err(|e| refused(format!("cannot open {}: {e}", root.display())))?;
    let plan = copy::plan(&src_fd, dest_fd, paths).map_err(Error::Usage)?;
    let label = source.label();
    if !plan.missing.is_empty() {
        let names: Vec<String> = plan.missing.iter().map(|p| shown(p)).collect();
        return Err(Error::Usage(format!(
            "{label} has no {}; paths are relative to the volume's root (mount it with `lvsnap mount` to look around)",
            names.join(", ")
        )));
    }
    if let Some(b) = plan.items.iter().find(|i| i.blocked()) {
        report::restore::plan(ctx.out, &label, dest, &plan, a.dry_run, a.json)?;
        return Err(Error::Usage(format!(
            "{} is a directory in {} where {label} has a file; lvsnap never removes a directory to restore: move it aside first",
            shown(&b.rel),
            shown(dest)
        )));
    }
    let conflicts = plan.conflicts().count();
    let overwrite = a.force || a.in_place;
    if a.dry_run || (conflicts > 0 && !overwrite) {
        report::restore::plan(ctx.out, &label, dest, &plan, a.dry_run, a.json)?;
        if conflicts > 0 && !overwrite {
            writeln!(
                ctx.out,
                "refused: {conflicts} existing path(s) in the way would be replaced; pass --force to replace them, or restore --to an empty directory"
            )?;
            return Ok(exit::USAGE);
        }
        return Ok(exit::OK);
    }
    let dest_fd = dest_fd.ok_or_else(|| refused(format!("{} does not exist", shown(dest))))?;
    if a.in_place {
        report::restore::plan(ctx.out, &label, dest, &plan, a.dry_run, a.json)?;
        if !confirm(
            ctx.out,
            a.yes,
            "restore these files into the live volume",
            &ctx.cancel,
        )? {
            writeln!(ctx.out, "nothing restored")?;
            return Ok(exit::USAGE);
        }
        let (vg, lv) = source.origin();
        guard_snapshot(
            ctx,
            engine,
            fleet,
            inv,
            &vg,
            &lv,
            &format!("guard before restoring into {}", dest.display()),
            0,
        )?;
    }
    let copied = copy::copy(&src_fd, dest_fd, &plan, overwrite, &ctx.cancel);
    let files: Vec<&copy::Item> = plan.files().collect();
    let record = RestoreRecord {
        id: 0,
        at: ctx.now,
        source: label.clone(),
        paths: paths.iter().map(|p| shown(p)).collect(),
        destination: dest.to_owned(),
        files: files.len() as u64,
        bytes: plan.bytes(),
        ok: copied.is_ok(),
        detail: copied.as_ref().err().cloned(),
    };
    engine.record(|c| c.record_restore(&record))?;
    copied.map_err(refused)?;
    if a.json {
        writeln!(
            ctx.out,
            "{}",
            report::restore::done_json(&label, dest, &plan)
        )?;
    } else {
        report::restore::done_text(ctx.out, &label, dest, &plan, conflicts)?;
    }
    Ok(exit::OK)
}

/// `lvsnap diff SNAPSHOT [SNAPSHOT2] [--json]`: added, removed and changed files between a
/// snapshot and its live origin (or a second snapshot).
///
/// # Errors
/// A snapshot that is not lvsnap's, an unmounted origin, or a mount failure.
pub fn diff(ctx: &mut Ctx<'_>, a: &DiffArgs) -> Result<i32, Error> {
    let (old, new, json) = (&a.snapshot, a.snapshot2.as_deref(), a.json);
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let mut catalog = ctx.catalog(true)?;
    let mut engine = ctx.engine(&mut catalog, false);
    let (inv, fleet) = engine.survey()?;
    // A set: each member against the live origin, or against the member of the same origin
    // in the second set.
    if super::set_access::is_set(&fleet, old) {
        let pairs = super::set_access::diff_pairs(&fleet, old, new)?;
        let mut all = Vec::new();
        for (a, b) in pairs {
            let a = Source::Snapshot(readable_snapshot(&fleet, &inv, &a)?.clone());
            let b = match b {
                Some(n) => Some(Source::Snapshot(
                    readable_snapshot(&fleet, &inv, &n)?.clone(),
                )),
                None => None,
            };
            all.push(compare(ctx, &mut engine, &a, b.as_ref())?);
        }
        if json {
            let members: Vec<_> = all
                .iter()
                .map(|(from, to, d)| report::restore::diff_json(from, to, d))
                .collect();
            writeln!(
                ctx.out,
                "{}",
                serde_json::json!({"set": old, "members": members})
            )?;
        } else {
            for (from, to, d) in &all {
                report::restore::diff_text(ctx.out, from, to, d)?;
            }
        }
        return Ok(exit::OK);
    }
    let a = Source::Snapshot(readable_snapshot(&fleet, &inv, old)?.clone());
    let b = match new {
        Some(n) => Some(Source::Snapshot(
            readable_snapshot(&fleet, &inv, n)?.clone(),
        )),
        None => None,
    };
    let (from, to, d) = compare(ctx, &mut engine, &a, b.as_ref())?;
    if json {
        writeln!(ctx.out, "{}", report::restore::diff_json(&from, &to, &d))?;
    } else {
        report::restore::diff_text(ctx.out, &from, &to, &d)?;
    }
    Ok(exit::OK)
}

/// What changed from snapshot `a` to snapshot `b` (or the live origin): (from, to, changes).
fn compare(
    ctx: &Ctx<'_>,
    engine: &mut Engine<'_>,
    a: &Source,
    b: Option<&Source>,
) -> Result<(String, String, crate::manifest::Differences), Error> {
    let live = match &b {
        Some(_) => None,
        None => {
            let (vg, lv) = a.origin();
            Some(mount::mount_point_of(&vg, &lv).ok_or_else(|| {
                Error::Usage(format!(
                    "the origin {vg}/{lv} is not mounted, so there is no live state to compare with; name a second snapshot"
                ))
            })?)
        }
    };
    let tmp = StagingParent::private(&state_dir(ctx));
    let opened_a = engine.open_source(a, &[], &tmp, false, &ctx.cancel)?;
    let opened_b = match &b {
        Some(s) => match engine.open_source(s, &[], &tmp, false, &ctx.cancel) {
            Ok(o) => Some(o),
            Err(e) => {
                engine.close_source(opened_a)?;
                return Err(e.into());
            }
        },
        None => None,
    };
    let root_b = opened_b
        .as_ref()
        .map(|o| o.root.clone())
        .or(live.clone())
        .expect("a second snapshot or the live origin");
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let (ma, mb) = std::thread::scope(|s| {
        let ha = s.spawn(|| Manifest::of_tree(&opened_a.root, workers.div_ceil(2)));
        let mb = Manifest::of_tree(&root_b, workers.div_ceil(2));
        (ha.join().expect("no panic"), mb)
    });
    engine.close_source(opened_a)?;
    if let Some(o) = opened_b {
        engine.close_source(o)?;
    }
    let ma =
        ma.map_err(|e| Error::Run(RunError::Refused(format!("cannot read {}: {e}", a.label()))))?;
    let mb = mb.map_err(|e| {
        Error::Run(RunError::Refused(format!(
            "cannot read {}: {e}",
            root_b.display()
        )))
    })?;
    let d = ma.changes(&mb);
    let other = match &b {
        Some(s) => s.label(),
        None => format!(
            "the live {}/{} at {}",
            a.origin().0,
            a.origin().1,
            root_b.display()
        ),
    };
    Ok((a.label(), other, d))
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The snapshot (NAME or VG/NAME, as `lvsnap list` shows it), or a snapshot set
    /// (POLICY.TIME): every member then, each at its origin's mount point under DIR.
    pub snapshot: String,
    /// An empty directory to mount on.
    pub dir: Option<PathBuf>,
    /// The SELinux label its files get (the `context=` mount option), instead of the
    /// policy's `mount-context`; e.g. system_u:object_r:container_file_t:s0 for a container.
    #[arg(long, value_name = "LABEL")]
    pub context: Option<MountContext>,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The snapshot, a snapshot set, or the directory it is mounted on.
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A snapshot, a snapshot set (the member whose origin's mount point holds the paths), or
    /// a backup generation.
    pub source: String,
    /// Files or directories to restore (any bytes: a name that is not UTF-8 is given as it
    /// is, for example bash's $'bad\xffname', the form lvsnap prints it in).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The directory to restore into (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "in_place",
        conflicts_with = "in_place"
    )]
    pub to: Option<PathBuf>,
    /// Restore into the live origin, where the files came from.
    #[arg(long)]
    pub in_place: bool,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// Show what would be restored; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Answer yes to --in-place's question.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older state: a snapshot, or a snapshot set (compared member by member).
    pub snapshot: String,
    /// The newer state (default: the origin as it is now, where it is mounted); for a set,
    /// another set.
    pub snapshot2: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
