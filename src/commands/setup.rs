//! The first-hour commands: `init` proposes (and with `--write` saves) a starting policy file
//! from the host's volumes; `doctor` checks what the host needs for the policies it has. Both
//! read the policy files their own way: there may be none yet, or they may be what is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{self, Config};
use crate::error::{exit, Error};
use crate::init::{self, Host, Use};
use crate::lvm::report::{Inventory, Lv, LvKind};
use crate::lvm::Runner;
use crate::report::setup as render;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Save the proposal: as the policy file when there is none, else as policy.d/init.toml
    /// beside it (init-2.toml, … when that exists). Never over an existing file; checked like
    /// `config check` first, together with the files already there.
    #[arg(long)]
    pub write: bool,
    /// Only these volumes (VG/LV; repeat or separate with commas). Each must be a mounted
    /// filesystem LV; the error says why one is not.
    #[arg(long, value_name = "VG/LV", value_delimiter = ',')]
    pub volumes: Vec<String>,
    /// Print JSON: {"file", "written", "policies": [{name, volume, kind, size, schedule, keep,
    /// reasons}], "skipped": [{volume, reason}], "text"}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON: [{"level", "subject", "detail", "fix"}].
    #[arg(long)]
    pub json: bool,
}

/// `lvsnap init`: a policy per mounted filesystem LV, printed with every reason.
///
/// # Errors
/// LVM cannot be read, the existing policy files are invalid, a `--volumes` entry cannot have
/// a policy, or the file to write exists.
pub fn init(
    a: &InitArgs,
    config_path: &Path,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<i32, Error> {
    runner.check_tools()?;
    let existing = existing_config(config_path)?;
    let file = init_file(config_path);
    let covered: BTreeMap<String, String> = existing
        .iter()
        .flat_map(|c| &c.policies)
        .flat_map(|p| p.volumes.iter().map(|v| (v.to_string(), p.name.clone())))
        .collect();
    let taken: BTreeSet<String> = existing
        .iter()
        .flat_map(|c| &c.policies)
        .map(|p| p.name.clone())
        .collect();
    if let Some(c) = &existing {
        crate::tools::set_tool_path(&c.settings.tool_path);
    }
    let inv = crate::commands::replicate::inventory_of(runner)?;
    let reserved = existing
        .as_ref()
        .map(|c| promised(c, &inv))
        .unwrap_or_default();
    let use_of = |lv: &Lv| match crate::mount::filesystem_of(&lv.vg, &lv.name) {
        Some((point, fs)) => Use::Mounted { point, fs },
        None if crate::mount::is_swap(&lv.vg, &lv.name) => Use::Swap,
        None => Use::Unused,
    };
    let host = Host {
        use_of: &use_of,
        covered: &covered,
        taken: &taken,
        chosen: &a.volumes,
        reserved: &reserved,
    };
    let proposal = init::propose(&inv, &host).map_err(Error::Usage)?;
    let text = init::to_toml(&proposal, &file.display().to_string());
    check_with_existing(config_path, &file, &text)?;
    let write = a.write && !proposal.policies.is_empty();
    if write {
        write_new(&file, &text)?;
    }
    if a.json {
        writeln!(out, "{}", render::init_json(&proposal, &file, write, &text))?;
    } else {
        render::init_text(out, &proposal, &file, a.write, write, &text)?;
    }
    Ok(exit::OK)
}

/// The policy files there are now; none when the file does not exist yet.
fn existing_config(path: &Path) -> Result<Option<Config>, Error> {
    match config::load(path) {
        Ok(c) => Ok(Some(c)),
        Err(config::LoadError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(config::LoadError::Empty(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Per volume group, what the thick snapshots of the policies already written may still take:
/// for each thick origin, its snapshot size for as many as its rules and max-thick-per-origin
/// let exist (one more while a run prunes), less those that exist.
fn promised(cfg: &Config, inv: &Inventory) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for p in &cfg.policies {
        let most = p
            .keep
            .most()
            .unwrap_or(p.max_thick_per_origin)
            .min(p.max_thick_per_origin);
        for v in &p.volumes {
            let (Some(lv), Some(vg)) = (inv.find(&v.vg, &v.lv), inv.vgs.get(&v.vg)) else {
                continue;
            };
            if lv.kind != LvKind::Plain {
                continue;
            }
            let size = p.size.bytes(lv.size, vg.free);
            // LVM allocates whole extents.
            let extent = vg.extent_size.max(1);
            let size = size.div_ceil(extent) * extent;
            let existing = inv
                .snapshots_of(&v.vg, &v.lv)
                .filter(|s| {
                    s.kind == LvKind::ThickSnapshot && s.has_tag(crate::reconcile::OWNER_TAG)
                })
                .count() as u64;
            let more = (u64::from(most) + 1).saturating_sub(existing);
            *out.entry(v.vg.clone()).or_default() += size.saturating_mul(more);
        }
    }
    // A policy there that keeps more free than init's 10% leaves that much less (once per group:
    // the largest keep-free is the one that holds).
    let mut stricter: BTreeMap<String, u64> = BTreeMap::new();
    for p in &cfg.policies {
        for v in &p.volumes {
            let Some(vg) = inv.vgs.get(&v.vg) else {
                continue;
            };
            let wanted = p.keep_free.bytes(vg.size);
            let extra = wanted.saturating_sub(
                crate::config::FreeSpace::Percent(init::KEEP_FREE_PERCENT as u8).bytes(vg.size),
            );
            let e = stricter.entry(v.vg.clone()).or_default();
            *e = (*e).max(extra);
        }
    }
    for (vg, extra) in stricter {
        *out.entry(vg).or_default() += extra;
    }
    out
}

/// Where `init --write` writes: the policy file itself when there is none, else the first free
/// `init.toml`, `init-2.toml`, … in `policy.d/` beside it (in the directory, for a directory),
/// so that a packaged, commented file stays as shipped.
pub fn init_file(config_path: &Path) -> PathBuf {
    let dir = if config_path.is_dir() {
        config_path.to_owned()
    } else if !config_path.exists() {
        return config_path.to_owned();
    } else {
        config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("policy.d")
    };
    // A later `init --write` (for volumes added since) writes beside the earlier files.
    (1..)
        .map(|n| match n {
            1 => dir.join("init.toml"),
            n => dir.join(format!("init-{n}.toml")),
        })
        .find(|f| f.symlink_metadata().is_err())
        .expect("a free name")
}

/// The proposal read together with the files already there, as `config check` will read them.
fn check_with_existing(config_path: &Path, file: &Path, text: &str) -> Result<(), Error> {
    let mut sources = Vec::new();
    if config_path.exists() {
        let files =
            config::config_files(config_path).map_err(|source| config::LoadError::Read {
                path: config_path.to_owned(),
                source,
            })?;
        for f in files {
            if f != file {
                let t = std::fs::read_to_string(&f).map_err(|source| config::LoadError::Read {
                    path: f.clone(),
                    source,
                })?;
                sources.push((f, t));
            }
        }
    }
    sources.push((file.to_owned(), text.to_owned()));
    config::parse_sources(sources, config::system_timezone())
        .map(|_| ())
        .map_err(|e| {
            Error::Usage(format!(
                "the proposal does not pass `config check`; nothing was written:\n{e}"
            ))
        })
}

/// Writes `text` to `file`, which must not exist: made beside it under a random name, synced,
/// then linked in place (never replacing anything), 0600 in a directory made 0700.
fn write_new(file: &Path, text: &str) -> Result<(), Error> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io =
        |what: &str, e: std::io::Error| Error::Usage(format!("{what} {}: {e}", file.display()));
    if file.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} exists; lvsnap init never overwrites a file: edit it, or move it away and run `lvsnap init --write` again",
            file.display()
        )));
    }
    // root reads every policy file there, and runs their hooks: a directory others can write
    // to would let them add their own. Checked before anything is made, and again after.
    let trusted = |d: &Path| {
        crate::tools::trusted_dir(d).map_err(|why| {
            Error::Usage(format!(
                "{} is not a safe place for a policy file: {why}; make it root's and writable by no one else",
                dir.display()
            ))
        })
    };
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    trusted(existing)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("cannot make the directory of", e))?;
    }
    trusted(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".init-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| io("cannot write beside", e))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io("cannot write", e))?;
    tmp.persist_noclobber(file).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "{} appeared meanwhile; lvsnap init never overwrites a file",
                file.display()
            ))
        } else {
            io("cannot write", e.error)
        }
    })?;
    // The new name, and any directory made for it, last a power cut.
    for d in dir
        .ancestors()
        .take_while(|d| *d != existing.parent().unwrap_or(Path::new("")))
    {
        if let Ok(f) = std::fs::File::open(d) {
            let _ = f.sync_all();
        }
    }
    Ok(())
}

/// `lvsnap doctor`: one line per check, OK/WARN/FAIL with the fix; exit 0, 1 or 2.
///
/// # Errors
/// Only when the output cannot be written.
pub fn doctor(
    a: &DoctorArgs,
    config_path: &Path,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<i32, Error> {
    let cfg = config::load(config_path);
    if let Ok(c) = &cfg {
        crate::tools::set_tool_path(&c.settings.tool_path);
    }
    let findings = crate::doctor::examine(runner, config_path, &cfg);
    if a.json {
        writeln!(out, "{}", render::doctor_json(&findings))?;
    } else {
        render::doctor_text(out, &findings)?;
    }
    Ok(crate::doctor::status(&findings))
}

/// What `run` and `status` say on a host with policy files that define no policy yet.
pub fn no_policy_yet(config_path: &Path) -> String {
    format!(
        "no policy yet in {}: lvsnap takes no snapshot. `lvsnap init` proposes a policy for each mounted volume (with --write it saves it), then `lvsnap run --dry-run` shows what a run would do",
        config_path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_policy_file_is_new_private_and_never_replaces_one() {
        let base = tempfile::tempdir().unwrap();
        let config = base.path().join("lvsnap.toml");
        // No policy file yet: init writes the policy file itself.
        assert_eq!(init_file(&config), config);
        std::fs::write(&config, "# shipped\n").unwrap();
        let first = init_file(&config);
        assert_eq!(first, base.path().join("policy.d/init.toml"));
        write_new(&first, "# one\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first), 0o600);
        assert_eq!(mode(first.parent().unwrap()), 0o700);
        let e = write_new(&first, "# two\n").unwrap_err().to_string();
        assert!(e.contains("never overwrites"), "{e}");
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "# one\n");
        // A dangling link counts as a file: never followed, never replaced.
        let second = init_file(&config);
        assert_eq!(second, base.path().join("policy.d/init-2.toml"));
        std::os::unix::fs::symlink("/nonexistent", &second).unwrap();
        assert_eq!(init_file(&config), base.path().join("policy.d/init-3.toml"));
        assert!(write_new(&second, "# three\n").is_err());
        assert!(std::fs::symlink_metadata("/nonexistent").is_err());
    }

    #[test]
    fn space_promised_counts_lvsnaps_own_snapshots_whole_extents_and_a_stricter_keep_free() {
        use crate::init::tests::lv;
        use crate::lvm::report::VgInfo;
        const MIB: u64 = 1 << 20;
        let text = "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"63M\"\nkeep = { last = 3 }\nkeep-free = \"20%\"\n";
        let cfg = config::parse_sources(vec![("p.toml".into(), text.to_owned())], chrono_tz::UTC)
            .unwrap();
        let mut own = lv("vg0", "home-lvsnap-1", LvKind::ThickSnapshot, 64 * MIB);
        own.origin = Some("home".to_owned());
        own.tags = vec![crate::reconcile::OWNER_TAG.to_owned()];
        let mut foreign = lv("vg0", "mine", LvKind::ThickSnapshot, 64 * MIB);
        foreign.origin = Some("home".to_owned());
        let inv = Inventory::new(
            vec![lv("vg0", "home", LvKind::Plain, 1024 * MIB), own, foreign],
            BTreeMap::from([(
                "vg0".to_owned(),
                VgInfo {
                    size: 10240 * MIB,
                    free: 5120 * MIB,
                    extent_size: 4 * MIB,
                },
            )]),
        );
        // 63M rounds up to 64M; last = 3 plus the new one while a run prunes is 4, one of them
        // lvsnap's already (the foreign one does not count): 3 x 64M. keep-free 20% of 10 GiB is
        // 1 GiB more than init's 10%.
        assert_eq!(promised(&cfg, &inv)["vg0"], 3 * 64 * MIB + 1024 * MIB);
    }

    #[test]
    fn a_directory_others_can_write_to_gets_no_policy_file() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = write_new(&open.join("policy.d/init.toml"), "# x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a safe place for a policy file"), "{e}");
        assert!(
            !open.join("policy.d").exists(),
            "made a directory before refusing"
        );
    }
}
