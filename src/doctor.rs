//! `lvsnap doctor`: what the host needs for lvsnap's policies, checked one item at a time —
//! LVM and device-mapper, the thin tools, udev, the units, the policies, the catalog's
//! privacy, each volume group's and pool's room, each backup target's owner, mode and room, and
//! the engines' programs. Each finding is OK, WARN or FAIL with the fix. Reads only: it never
//! changes the host.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::{BackupEngine, Config, LoadError};
use crate::lvm::report::{Inventory, LvKind};
use crate::lvm::{Invocation, Runner, Tool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub level: Level,
    /// What was checked: `lvm2`, `thin tools`, `vg0`, `backup target /srv/backup`, …
    pub subject: String,
    pub detail: String,
    pub fix: Option<String>,
}

fn found(level: Level, subject: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        level,
        subject: subject.into(),
        detail: detail.into(),
        fix: None,
    }
}

impl Finding {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every check, in the order an administrator would fix them.
pub fn examine(
    runner: &dyn Runner,
    config_path: &Path,
    config: &Result<Config, LoadError>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let inventory = lvm(runner, &mut out);
    out.push(device_mapper_targets());
    out.extend(thin_tools(inventory.as_ref(), config.as_ref().ok()));
    out.push(udev());
    out.extend(units());
    out.push(policies(config_path, config));
    if let Ok(cfg) = config {
        out.push(catalog(&cfg.settings.catalog));
        if let Some(inv) = &inventory {
            out.extend(space(inv, cfg));
        }
        out.extend(backups(cfg));
    }
    out
}

/// `lvs --version`: LVM's version and whether the kernel's device-mapper answers.
fn lvm(runner: &dyn Runner, out: &mut Vec<Finding>) -> Option<Inventory> {
    let version = Invocation::new(Tool::Lvs, ["--version"]);
    let done = match runner.run(&version) {
        Ok(d) if d.status == 0 => d,
        Ok(d) => {
            out.push(
                found(
                    Level::Fail,
                    "lvm2",
                    format!("lvs --version exited {}: {}", d.status, d.stderr.trim()),
                )
                .fix("reinstall lvm2 (apt-get install --reinstall lvm2)"),
            );
            return None;
        }
        Err(e) => {
            out.push(found(Level::Fail, "lvm2", e.to_string()).fix("apt-get install lvm2"));
            return None;
        }
    };
    let field = |name: &str| {
        done.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| {
                v.trim_start_matches(':')
                    .trim()
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
    };
    let lvm = field("LVM version").unwrap_or_default();
    // The build's features, from its configure line: thin volumes, and dmeventd (which
    // monitors pools and thick snapshots and extends them as configured).
    let configure = done
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Configuration:"))
        .unwrap_or("");
    let thin = !configure.contains("--with-thin=none");
    let dmeventd = configure.is_empty() || configure.contains("--enable-dmeventd");
    match parse_version(&lvm) {
        Some(_) if !thin => out.push(
            found(
                Level::Warn,
                "lvm2",
                format!("LVM {lvm} is built without thin volumes: only thick snapshots"),
            )
            .fix("install the distribution's lvm2, which supports thin volumes"),
        ),
        Some(v) if v >= (2, 2, 158) => out.push(found(
            Level::Ok,
            "lvm2",
            format!(
                "LVM {lvm}, thin volumes{}",
                if dmeventd {
                    ", dmeventd monitoring"
                } else {
                    "; no dmeventd: pools and snapshots are not extended automatically"
                }
            ),
        )),
        _ => out.push(
            found(
                Level::Fail,
                "lvm2",
                format!("LVM {lvm:?}: lvsnap needs 2.02.158 or later (JSON reports)"),
            )
            .fix("upgrade lvm2"),
        ),
    }
    match field("Driver version") {
        Some(d) if !d.is_empty() => out.push(found(
            Level::Ok,
            "device-mapper",
            format!("kernel driver {d}"),
        )),
        _ => out.push(
            found(
                Level::Fail,
                "device-mapper",
                "the kernel's device-mapper does not answer (no driver version)",
            )
            .fix("modprobe dm-mod; a kernel without device-mapper cannot run LVM snapshots"),
        ),
    }
    let inv = Invocation::new(Tool::Lvs, crate::lvm::report::lvs_args());
    match runner.run(&inv) {
        Ok(d) if d.status == 0 => crate::lvm::report::parse_lvs(&d.stdout).ok(),
        Ok(d) => {
            out.push(
                found(Level::Fail, "lvs", d.stderr.trim().to_owned())
                    .fix("see `lvs` itself; lvsnap reads the same report"),
            );
            None
        }
        Err(e) => {
            out.push(found(Level::Fail, "lvs", e.to_string()));
            None
        }
    }
}

/// `2.03.16(2)` → (2, 3, 16).
fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(['.', '(', '-']).map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// The device-mapper targets snapshots need: loaded, built in, or there for the kernel to load.
fn device_mapper_targets() -> Finding {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let listed = |file: &str| {
        std::fs::read_to_string(format!("/lib/modules/{release}/{file}")).unwrap_or_default()
    };
    let (dep, builtin) = (listed("modules.dep"), listed("modules.builtin"));
    let known = |m: &&str, list: &str| list.contains(&format!("/{}.ko", m.replace('_', "-")));
    let loaded = |m: &&str| Path::new("/sys/module").join(m).exists() || known(m, &builtin);
    let targets = ["dm_snapshot", "dm_thin_pool"];
    let missing: Vec<&str> = targets
        .iter()
        .filter(|m| !loaded(m) && !known(m, &dep))
        .copied()
        .collect();
    let unloaded: Vec<&str> = targets.iter().filter(|m| !loaded(m)).copied().collect();
    if !missing.is_empty() {
        found(
            Level::Warn,
            "dm targets",
            format!(
                "{} neither loaded nor found under /lib/modules/{release}",
                missing.join(", ")
            ),
        )
        .fix("install the running kernel's modules package")
    } else if !unloaded.is_empty() {
        // LVM loads them on first use, but not from inside the units (ProtectKernelModules=yes).
        found(Level::Warn, "dm targets", format!("{} not loaded; the units cannot load modules, the package's modules-load.d file loads them at boot", unloaded.join(", ")))
            .fix(format!("modprobe -a {}", unloaded.join(" ")))
    } else {
        found(Level::Ok, "dm targets", "snapshot and thin-pool are loaded")
    }
}

/// thin_check (LVM activates thin pools with it), thin_dump (replication), when thin pools exist
/// or a policy replicates.
fn thin_tools(inv: Option<&Inventory>, cfg: Option<&Config>) -> Option<Finding> {
    let pools = inv.map_or(0, |i| {
        i.lvs()
            .iter()
            .filter(|l| l.kind == LvKind::ThinPool)
            .count()
    });
    let replicates = cfg.is_some_and(|c| c.policies.iter().any(|p| p.replicate.is_some()));
    let missing: Vec<&str> = ["thin_check", "thin_dump", "thin_delta"]
        .into_iter()
        .filter(|t| crate::tools::find(t).is_err())
        .collect();
    // LVM runs thin_check when it activates a pool; replication reads block maps with
    // thin_dump and thin_delta.
    let needed: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|t| {
            if *t == "thin_check" {
                pools > 0
            } else {
                replicates
            }
        })
        .collect();
    let subject = "thin tools";
    Some(match (missing.is_empty(), needed.is_empty()) {
        (true, _) => found(Level::Ok, subject, "thin_check, thin_dump and thin_delta are installed"),
        (false, true) => found(Level::Ok, subject, format!("{} not installed; not needed: {}", missing.join(", "), if pools > 0 { "no policy replicates" } else { "no thin pool and no replication" })),
        (false, false) => found(
            Level::Fail,
            subject,
            format!(
                "{} not found: {}",
                needed.join(", "),
                if needed.contains(&"thin_check") {
                    format!("{pools} thin pool(s) exist, and LVM checks a pool's metadata with thin_check when it activates it")
                } else {
                    "a policy replicates, and replication reads thin volumes' block maps with thin_dump and thin_delta".to_owned()
                }
            ),
        )
        .fix("apt-get install thin-provisioning-tools"),
    })
}

fn udev() -> Finding {
    if Path::new("/run/udev/control").exists() {
        found(
            Level::Ok,
            "udev",
            "udevd is running: LVM's device nodes and waits work",
        )
    } else {
        found(Level::Warn, "udev", "udevd is not running: LVM waits for udev on every change")
            .fix("start systemd-udevd, or in containers set activation { udev_sync = 0 udev_rules = 0 } in /etc/lvm/lvm.conf")
    }
}

/// Whether snapshots will be taken without anyone typing: the timer or the daemon enabled and
/// running; and what stands in the package's way (an earlier manual install's units or binary).
fn units() -> Vec<Finding> {
    let subject = "units";
    if !Path::new("/run/systemd/system").exists() {
        return vec![found(
            Level::Warn,
            subject,
            "systemd is not running: nothing starts lvsnap on a schedule",
        )
        .fix("run `lvsnap run` from cron every 15 minutes")];
    }
    let Ok(systemctl) = crate::tools::find("systemctl") else {
        return vec![found(Level::Warn, subject, "systemctl not found")];
    };
    let ask = |args: &[&str]| {
        duct::cmd(
            &systemctl,
            std::iter::once("--no-ask-password").chain(args.iter().copied()),
        )
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
    };
    let enabled = |u: &str| {
        matches!(
            ask(&["is-enabled", u]).as_str(),
            "enabled" | "enabled-runtime"
        )
    };
    let (timer, daemon) = (enabled("lvsnap.timer"), enabled("lvsnap-daemon.service"));
    let running = |u: &str| {
        if ask(&["is-active", u]) == "active" {
            found(Level::Ok, subject, format!("{u} is enabled and active"))
        } else {
            found(
                Level::Warn,
                subject,
                format!("{u} is enabled but not active: nothing runs until the next boot"),
            )
            .fix(format!("systemctl start {u}"))
        }
    };
    let mut out = vec![match (timer, daemon) {
        (false, false) => found(Level::Warn, subject, "neither lvsnap.timer nor lvsnap-daemon.service is enabled: no snapshot is taken on schedule")
            .fix("systemctl enable --now lvsnap.timer"),
        (true, true) => found(Level::Warn, subject, "both lvsnap.timer and lvsnap-daemon.service are enabled: they share one lock and the due rule, so no snapshot is doubled, but one is enough")
            .fix("systemctl disable --now lvsnap-daemon.service (or the timer)"),
        (true, false) => running("lvsnap.timer"),
        (false, true) => running("lvsnap-daemon.service"),
    }];
    if (timer || daemon) && !Path::new("/etc/lvsnap/lvsnap.toml").exists() {
        out.push(
            found(Level::Warn, subject, "/etc/lvsnap/lvsnap.toml is missing: the units run only when it exists (ConditionPathExists=), so every run is skipped")
                .fix("apt-get install --reinstall -o Dpkg::Options::=--force-confmiss lvsnap"),
        );
    }
    if ask(&["is-failed", "lvsnap.service"]) == "failed" {
        out.push(
            found(
                Level::Warn,
                "last run",
                "the last lvsnap.service run failed",
            )
            .fix(
                "journalctl -u lvsnap.service -n 50; `lvsnap status` shows each group's last error",
            ),
        );
    }
    for u in ["lvsnap.service", "lvsnap.timer", "lvsnap-daemon.service"] {
        let fragment = ask(&["show", "-p", "FragmentPath", "--value", u]);
        if fragment.starts_with("/etc/") {
            out.push(
                found(Level::Warn, format!("unit {u}"), format!("{fragment} overrides the unit the package installed (a copy from a manual install?)"))
                    .fix(format!("compare it with /usr/lib/systemd/system/{u}, then rm {fragment} && systemctl daemon-reload; keep local changes in `systemctl edit {u}`")),
            );
        }
    }
    if Path::new("/usr/local/bin/lvsnap").exists() && Path::new("/usr/sbin/lvsnap").exists() {
        out.push(
            found(Level::Warn, "binary", "/usr/local/bin/lvsnap (cargo install) and /usr/sbin/lvsnap (the package) both exist; a shell runs the first, the units the second")
                .fix("rm /usr/local/bin/lvsnap"),
        );
    }
    out
}

fn policies(path: &Path, config: &Result<Config, LoadError>) -> Finding {
    let subject = "policies";
    match config {
        Ok(c) if c.policies.is_empty() => found(
            Level::Warn,
            subject,
            format!("{} defines no policy: lvsnap does nothing", path.display()),
        )
        .fix("lvsnap init (proposes one per mounted volume; --write saves it)"),
        Ok(c) => {
            let files = crate::config::config_files(path).unwrap_or_default();
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            found(
                Level::Ok,
                subject,
                format!(
                    "{} polic{} in {}",
                    c.policies.len(),
                    if c.policies.len() == 1 { "y" } else { "ies" },
                    files.join(", ")
                ),
            )
        }
        Err(e) => found(
            Level::Fail,
            subject,
            e.to_string().lines().next().unwrap_or_default().to_owned(),
        )
        .fix(format!(
            "lvsnap config check {} (every error with its line and fix)",
            path.display()
        )),
    }
}

/// The catalog's directory holds what lvsnap knows of every snapshot and backup: root's alone.
fn catalog(path: &Path) -> Finding {
    use std::os::unix::fs::MetadataExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let subject = format!("catalog {}", dir.display());
    match std::fs::metadata(dir) {
        Err(_) => found(Level::Ok, subject, "not made yet: the first run makes it (0700)"),
        Ok(m) if m.uid() != 0 || m.mode() & 0o077 != 0 => found(
            Level::Warn,
            subject,
            format!("owned by uid {} with mode {:o}: others can read the history of snapshots and backups", m.uid(), m.mode() & 0o7777),
        )
        .fix(format!("chown root: {0} && chmod 0700 {0}", dir.display())),
        Ok(_) => found(Level::Ok, subject, "root's alone (0700)"),
    }
}

/// Each volume group and thin pool a policy uses: room above `keep-free` and below the pool limits.
fn space(inv: &Inventory, cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    // Thick snapshots take the volume group's free space; thin ones their pool's (below).
    let thick = |v: &crate::config::VolumeRef| {
        inv.find(&v.vg, &v.lv)
            .is_none_or(|l| l.kind == LvKind::Plain)
    };
    let vgs: BTreeSet<&str> = cfg
        .policies
        .iter()
        .flat_map(|p| p.volumes.iter().filter(|v| thick(v)).map(|v| v.vg.as_str()))
        .collect();
    for vg in vgs {
        let Some(info) = inv.vgs.get(vg) else {
            out.push(
                found(
                    Level::Fail,
                    format!("vg {vg}"),
                    "a policy names it, but LVM does not know it",
                )
                .fix("vgs; correct the policy's volumes"),
            );
            continue;
        };
        let need = cfg
            .policies
            .iter()
            .filter(|p| p.volumes.iter().any(|v| v.vg == vg))
            .map(|p| p.keep_free.bytes(info.size))
            .max()
            .unwrap_or(0);
        // The largest next thick snapshot a policy takes in this group.
        let next = cfg
            .policies
            .iter()
            .flat_map(|p| {
                p.volumes
                    .iter()
                    .filter(|v| v.vg == vg && thick(v))
                    .map(move |v| (p, v))
            })
            .filter_map(|(p, v)| {
                let origin = inv.find(&v.vg, &v.lv)?;
                Some(p.size.bytes(origin.size, info.free))
            })
            .max()
            .unwrap_or(info.extent_size);
        let pct = info.free as f64 * 100.0 / info.size.max(1) as f64;
        let detail = format!(
            "{} free of {} ({pct:.0}%), keep-free asks for {}, the largest next snapshot {}",
            crate::units::format_size(info.free),
            crate::units::format_size(info.size),
            crate::units::format_size(need),
            crate::units::format_size(next)
        );
        out.push(if info.free < need.saturating_add(next) {
            found(
                Level::Fail,
                format!("vg {vg}"),
                format!("{detail}: the next thick snapshot would be refused"),
            )
            .fix(format!("vgextend {vg} DEVICE, or remove what fills it"))
        } else if pct < 10.0 {
            found(Level::Warn, format!("vg {vg}"), detail).fix(format!("vgextend {vg} DEVICE"))
        } else {
            found(Level::Ok, format!("vg {vg}"), detail)
        });
    }
    for pool in inv.lvs().iter().filter(|l| l.kind == LvKind::ThinPool) {
        let used = cfg.policies.iter().find(|p| {
            p.volumes.iter().any(|v| {
                inv.find(&v.vg, &v.lv)
                    .is_some_and(|l| l.vg == pool.vg && l.pool.as_deref() == Some(&pool.name))
            })
        });
        let Some(p) = used else { continue };
        let (Some(data), Some(meta)) = (pool.data_percent, pool.metadata_percent) else {
            out.push(
                found(
                    Level::Warn,
                    format!("pool {}", pool.path()),
                    "reports no fill: inactive?",
                )
                .fix(format!("lvchange -ay {}", pool.path())),
            );
            continue;
        };
        let limit = f64::from(p.pool_data_max.min(p.pool_metadata_max));
        let subject = format!("pool {}", pool.path());
        let detail =
            format!("data {data:.0}%, metadata {meta:.0}%; snapshots are refused at {limit:.0}%");
        out.push(if data.max(meta) >= limit {
            found(Level::Fail, subject, detail).fix(format!(
                "lvextend -L+SIZE {} (and --poolmetadatasize for metadata)",
                pool.path()
            ))
        } else if data.max(meta) >= limit - 10.0 {
            found(Level::Warn, subject, detail).fix(format!("lvextend -L+SIZE {}", pool.path()))
        } else {
            found(Level::Ok, subject, detail)
        });
    }
    out
}

/// Each backup: the engine's programs, and a local target root's alone with room left.
fn backups(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut programs: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut targets: BTreeSet<&Path> = BTreeSet::new();
    for p in &cfg.policies {
        let Some(b) = &p.backup else { continue };
        match &b.engine {
            BackupEngine::Rsync => {
                programs.insert(("rsync", "rsync"));
                targets.insert(&b.target);
            }
            BackupEngine::Archive => {
                programs.insert(("tar", "tar"));
                targets.insert(&b.target);
            }
            BackupEngine::Restic(r) => {
                programs.insert(("restic", "restic"));
                if let Some(dir) = r.repository.strip_prefix("local:").or_else(|| {
                    r.repository
                        .starts_with('/')
                        .then_some(r.repository.as_str())
                }) {
                    targets.insert(Path::new(dir));
                }
            }
            BackupEngine::Command(argv) => {
                if let Some(first) = argv.first() {
                    programs.insert((first.as_str(), "the package that ships it"));
                }
            }
        }
    }
    for (program, package) in programs {
        let subject = format!("program {program}");
        out.push(match crate::tools::find(program) {
            Ok(path) => found(Level::Ok, subject, format!("{}", path.display())),
            Err(e) => {
                found(Level::Fail, subject, e.to_string()).fix(format!("apt-get install {package}"))
            }
        });
    }
    for t in targets {
        out.push(target(t));
    }
    out
}

fn target(dir: &Path) -> Finding {
    let subject = format!("backup target {}", dir.display());
    // The target may not exist yet: lvsnap makes it (0700); its parent is what must be safe.
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if let Some((offender, why)) = crate::tools::untrusted_ancestor(existing) {
        let fix = if offender == existing {
            format!("chown root: {0} && chmod 0700 {0}", shell_word(&offender))
        } else {
            format!(
                "make {0} root's and writable by no one else (chown root: {0} && chmod go-w {0}), or choose a target under a directory that is",
                shell_word(&offender)
            )
        };
        return found(
            Level::Fail,
            subject,
            format!("{why}: whoever can write there can plant or swap files in the backups, and links a restore would follow"),
        )
        .fix(fix);
    }
    let Ok(st) = rustix::fs::statvfs(existing) else {
        return found(Level::Warn, subject, "cannot read its free space");
    };
    let (free, total) = (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize);
    let pct = free as f64 * 100.0 / total.max(1) as f64;
    let detail = format!(
        "root's alone; {} free of {} ({pct:.0}%){}",
        crate::units::format_size(free),
        crate::units::format_size(total),
        if existing == dir {
            ""
        } else {
            "; not made yet"
        }
    );
    if pct < 10.0 {
        found(Level::Warn, subject, detail)
            .fix("free space there, or lower the backups' keep rules")
    } else {
        found(Level::Ok, subject, detail)
    }
}

/// A path as one shell word, for a fix to paste.
fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    shlex::try_quote(&s).map_or(s.clone(), |q| q.into_owned())
}

/// The exit status: 0 all OK, 1 a warning, 2 a failure.
pub fn status(findings: &[Finding]) -> i32 {
    match findings.iter().map(|f| f.level).max() {
        Some(Level::Fail) => 2,
        Some(Level::Warn) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_versions_are_read_from_lvs_version() {
        assert_eq!(parse_version("2.03.16(2)"), Some((2, 3, 16)));
        assert_eq!(parse_version("2.02.187(2)-RHEL7"), Some((2, 2, 187)));
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("2.02.98(2)").unwrap() < (2, 2, 158));
    }

    #[test]
    fn a_world_writable_target_fails_with_the_fix_and_a_missing_one_is_judged_by_its_parent() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let t = base.path().join("open");
        std::fs::create_dir(&t).unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o777)).unwrap();
        let f = target(&t);
        assert_eq!(f.level, Level::Fail, "{f:?}");
        assert!(f.fix.as_deref().unwrap().contains("chmod"), "{f:?}");
        assert!(
            f.detail.contains("writable by group or others") || f.detail.contains("owned by uid"),
            "{f:?}"
        );
    }

    #[test]
    fn the_status_is_the_worst_finding() {
        let ok = found(Level::Ok, "a", "b");
        let warn = found(Level::Warn, "a", "b");
        assert_eq!(status(std::slice::from_ref(&ok)), 0);
        assert_eq!(status(&[ok.clone(), warn.clone()]), 1);
        assert_eq!(status(&[warn, found(Level::Fail, "c", "d"), ok]), 2);
    }
}
