//! `lvsnap init`: a starting policy file proposed from what the host has — one policy per
//! mounted filesystem on an LV, thin snapshots for thin volumes, thick ones sized from the volume
//! group's free space — with the reason for every choice and for every volume left out. Pure:
//! it reads an inventory and what the caller found mounted; the command reads the host and
//! writes the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::lvm::report::{Inventory, Lv, LvKind};

/// Share of a volume group a proposed thick policy leaves free (`keep-free`), in percent.
pub const KEEP_FREE_PERCENT: u64 = 10;
/// The thick snapshot size aimed for, as a share of its origin (percent), and the least that is
/// proposed: below it a busy volume overflows its snapshot before the next one is taken.
const THICK_SIZE_PERCENT: u64 = 20;
const THICK_SIZE_MIN_PERCENT: u64 = 10;
/// How many thick snapshots of one origin may exist at once (`max-thick-per-origin`'s default):
/// each costs a copy of every write to the origin.
const THICK_MOST: u64 = crate::config::DEFAULT_MAX_THICK_PER_ORIGIN as u64;
/// A thin snapshot is refused above this pool fill (`pool-data-max`'s default).
const POOL_MAX: f64 = crate::config::DEFAULT_POOL_MAX_PERCENT as f64;

/// What a logical volume is used for, as the host shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    Mounted { point: PathBuf, fs: String },
    Swap,
    Unused,
}

/// The keep rules of a proposed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepRules {
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
}

impl KeepRules {
    fn toml(self) -> String {
        let mut parts = Vec::new();
        for (k, n) in [
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
        ] {
            if n > 0 {
                parts.push(format!("{k} = {n}"));
            }
        }
        format!("{{ {} }}", parts.join(", "))
    }
}

/// One proposed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposed {
    pub name: String,
    /// `VG/LV`.
    pub volume: String,
    pub mount_point: PathBuf,
    pub fs: String,
    pub thin: bool,
    /// Thick only: `P%ORIGIN`.
    pub size: Option<String>,
    pub schedule: &'static str,
    pub keep: KeepRules,
    /// Thick only: the volume group's share left free.
    pub keep_free: Option<String>,
    pub reasons: Vec<String>,
}

/// What `init` proposes: policies, and every visible volume left out with why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proposal {
    pub policies: Vec<Proposed>,
    pub skipped: Vec<(String, String)>,
}

/// What the proposal starts from besides the inventory.
pub struct Host<'a> {
    /// What each LV is used for.
    pub use_of: &'a dyn Fn(&Lv) -> Use,
    /// Volumes (`VG/LV`) already in a policy, with that policy's name.
    pub covered: &'a BTreeMap<String, String>,
    /// Policy names already taken.
    pub taken: &'a BTreeSet<String>,
    /// `--volumes`: only these (`VG/LV`), or every candidate when empty.
    pub chosen: &'a [String],
    /// Per volume group, the space the thick snapshots of policies already there may still take.
    pub reserved: &'a BTreeMap<String, u64>,
}

/// Proposes a policy for every mounted filesystem LV of `inv`.
///
/// # Errors
/// A volume named with `--volumes` that does not exist or cannot have a policy, with why.
pub fn propose(inv: &Inventory, host: &Host<'_>) -> Result<Proposal, String> {
    let mut out = Proposal::default();
    let mut thick: Vec<(&Lv, PathBuf, String)> = Vec::new();
    let mut thin: Vec<(&Lv, PathBuf, String)> = Vec::new();
    for want in host.chosen {
        let found = want
            .split_once('/')
            .and_then(|(vg, lv)| inv.find(vg, lv))
            .filter(|lv| lv.kind != LvKind::Hidden);
        if found.is_none() {
            return Err(format!(
                "--volumes {want}: no such logical volume (write VG/LV; `lvs` lists them)"
            ));
        }
    }
    for lv in inv.lvs().iter().filter(|lv| lv.kind != LvKind::Hidden) {
        let path = lv.path();
        if !host.chosen.is_empty() && !host.chosen.contains(&path) {
            continue;
        }
        match candidate(lv, host) {
            Ok((point, fs)) if lv.kind == LvKind::ThinVolume => thin.push((lv, point, fs)),
            Ok((point, fs)) => thick.push((lv, point, fs)),
            Err(why) if host.chosen.contains(&path) => {
                return Err(format!("--volumes {path}: {why}"))
            }
            Err(why) => out.skipped.push((path, why)),
        }
    }
    let mut names = host.taken.clone();
    let mut add = |mut p: Proposed, names: &mut BTreeSet<String>| {
        p.name = unique_name(&p.volume, inv, names);
        names.insert(p.name.clone());
        out.policies.push(p);
    };
    for (lv, point, fs) in thin {
        match thin_policy(inv, lv, point, fs) {
            Ok(p) => add(p, &mut names),
            Err(why) => out.skipped.push((lv.path(), why)),
        }
    }
    let mut by_vg: BTreeMap<&str, Vec<(&Lv, PathBuf, String)>> = BTreeMap::new();
    for t in thick {
        by_vg.entry(t.0.vg.as_str()).or_default().push(t);
    }
    for (vg, lvs) in by_vg {
        let reserved = host.reserved.get(vg).copied().unwrap_or(0);
        for r in thick_policies(inv, vg, lvs, reserved) {
            match r {
                Ok(p) => add(p, &mut names),
                Err((path, why)) => out.skipped.push((path, why)),
            }
        }
    }
    out.policies.sort_by(|a, b| a.volume.cmp(&b.volume));
    Ok(out)
}

/// Whether `lv` can have a starting policy: its mount point and filesystem, or why not.
fn candidate(lv: &Lv, host: &Host<'_>) -> Result<(PathBuf, String), String> {
    match lv.kind {
        LvKind::ThickSnapshot | LvKind::ThinSnapshot => {
            return Err(if lv.has_tag(crate::reconcile::OWNER_TAG) {
                "a snapshot lvsnap manages".to_owned()
            } else {
                "a snapshot lvsnap did not make: left alone".to_owned()
            })
        }
        LvKind::ThinPool => {
            return Err("a thin pool: its thin volumes are what get snapshots".to_owned())
        }
        LvKind::Hidden => return Err("LVM's own sub-volume".to_owned()),
        LvKind::ThinVolume | LvKind::Plain => {}
    }
    if lv.tags.iter().any(|t| t.starts_with("lvsnap")) {
        return Err("made by lvsnap (a replica, clone or restored volume)".to_owned());
    }
    if let Some(policy) = host.covered.get(&lv.path()) {
        return Err(format!("already in policy {policy}"));
    }
    match (host.use_of)(lv) {
        Use::Swap => Err("swap: no filesystem to snapshot".to_owned()),
        Use::Unused => Err("not mounted: lvsnap snapshots mounted filesystems (mount it, or name it in a policy by hand)".to_owned()),
        Use::Mounted { point, fs } => match crate::mount::options_for(&fs) {
            Ok(_) => Ok((point, fs)),
            Err(why) => Err(format!("mounted at {}: {why}", point.display())),
        },
    }
}

fn thin_policy(inv: &Inventory, lv: &Lv, point: PathBuf, fs: String) -> Result<Proposed, String> {
    let pool = lv.pool.as_deref().and_then(|p| inv.find(&lv.vg, p));
    let pool_name = format!("{}/{}", lv.vg, lv.pool.as_deref().unwrap_or("?"));
    // An inactive pool reports no fill: judged as nearly full rather than as empty.
    let fill = match pool.and_then(|p| p.data_percent.zip(p.metadata_percent)) {
        Some((data, meta)) => data.max(meta),
        None => POOL_MAX - 1.0,
    };
    let (keep, why) = if pool.and_then(|p| p.data_percent).is_none() {
        (
            KeepRules { hourly: 6, daily: 3, weekly: 0 },
            format!("pool {pool_name} reports no fill (inactive?): a short history until `lvs` shows how full it is"),
        )
    } else if fill >= POOL_MAX {
        return Err(format!(
            "thin pool {pool_name} is {fill:.0}% full: lvsnap refuses thin snapshots above {POOL_MAX:.0}% (pool-data-max); grow the pool (lvextend) first"
        ));
    } else if fill < 50.0 {
        (
            KeepRules { hourly: 24, daily: 7, weekly: 4 },
            format!("pool {pool_name} is {fill:.0}% full: a day of hours, a week of days, a month of weeks"),
        )
    } else if fill < 70.0 {
        (
            KeepRules {
                hourly: 6,
                daily: 7,
                weekly: 2,
            },
            format!("pool {pool_name} is {fill:.0}% full: fewer hours and weeks, to leave it room"),
        )
    } else {
        (
            KeepRules { hourly: 6, daily: 3, weekly: 0 },
            format!("pool {pool_name} is {fill:.0}% full, near the {POOL_MAX:.0}% at which snapshots are refused: a short history"),
        )
    };
    Ok(Proposed {
        name: String::new(),
        volume: lv.path(),
        mount_point: point,
        fs,
        thin: true,
        size: None,
        schedule: "0 * * * *",
        keep,
        keep_free: None,
        reasons: vec![
            "thin volume: thin snapshots share the pool's blocks, need no size and cost no copy per write".to_owned(),
            why,
        ],
    })
}

/// Thick origins of one volume group: the free space above `keep-free`, shared out in
/// proportion to their sizes, sets how large and how many snapshots each can have.
fn thick_policies(
    inv: &Inventory,
    vg: &str,
    lvs: Vec<(&Lv, PathBuf, String)>,
    reserved: u64,
) -> Vec<Result<Proposed, (String, String)>> {
    let Some(info) = inv.vgs.get(vg) else {
        return lvs
            .into_iter()
            .map(|(lv, _, _)| Err((lv.path(), format!("volume group {vg} not reported"))))
            .collect();
    };
    let keep_free = info.size * KEEP_FREE_PERCENT / 100;
    // Thick origins already in policies will take their snapshots from the same free space.
    let usable = info.free.saturating_sub(keep_free).saturating_sub(reserved);
    let total: u64 = lvs.iter().map(|(lv, _, _)| lv.size).sum::<u64>().max(1);
    let origins = lvs.len() as u64;
    // With `count` snapshots of every origin, each may be this share of its origin (percent);
    // one more than kept exists for a moment, while a run has taken the new one and not yet
    // pruned. LVM rounds each snapshot up to whole extents: one extent each is set aside.
    let share = |count: u64| {
        let rounding = count * origins * info.extent_size;
        usable.saturating_sub(rounding).saturating_mul(100) / (count * total)
    };
    let fits = (2..=THICK_MOST)
        .rev()
        .find(|&c| share(c) >= THICK_SIZE_MIN_PERCENT);
    let space = format!(
        "volume group {vg} has {} free; keep-free leaves {KEEP_FREE_PERCENT}% of it ({}) free{}, so {} is shared by {} thick volume(s) in proportion to their size",
        crate::units::format_size(info.free),
        crate::units::format_size(keep_free),
        if reserved > 0 {
            format!(" and policies already there may take {}", crate::units::format_size(reserved))
        } else {
            String::new()
        },
        crate::units::format_size(usable),
        lvs.len()
    );
    lvs.into_iter()
        .map(|(lv, point, fs)| {
            let Some(count) = fits else {
                return Err((
                    lv.path(),
                    format!("{space}: not room for two snapshots of {THICK_SIZE_MIN_PERCENT}% of it; add space (vgextend) or move it to a thin pool"),
                ));
            };
            let percent = share(count).min(THICK_SIZE_PERCENT);
            let keep = thick_keep(count - 1);
            Ok(Proposed {
                name: String::new(),
                volume: lv.path(),
                mount_point: point,
                fs,
                thin: false,
                size: Some(format!("{percent}%ORIGIN")),
                schedule: if keep.hourly > 0 { "0 * * * *" } else { "0 0 * * *" },
                keep,
                keep_free: Some(format!("{KEEP_FREE_PERCENT}%")),
                reasons: vec![
                    format!(
                        "thick volume: each snapshot reserves {percent}% of its {} ({}) for the blocks written meanwhile, and is extended when 80% full while the group has room",
                        crate::units::format_size(lv.size),
                        crate::units::format_size(lv.size * percent / 100)
                    ),
                    format!("{space}: {count} snapshots of it fit, so the rules keep at most {} (a run takes the new one before it prunes)", count - 1),
                    "each thick snapshot copies every write to its origin once more: at most 5 exist (max-thick-per-origin); for weeks of history put the volume in a thin pool".to_owned(),
                ],
            })
        })
        .collect()
}

/// Rules whose counts add up to at most `most` (`config check` holds a thick origin's rules to
/// max-thick-per-origin by that sum).
fn thick_keep(most: u64) -> KeepRules {
    match most {
        4.. => KeepRules {
            hourly: 2,
            daily: 2,
            weekly: 0,
        },
        3 => KeepRules {
            hourly: 1,
            daily: 2,
            weekly: 0,
        },
        2 => KeepRules {
            hourly: 0,
            daily: 2,
            weekly: 0,
        },
        _ => KeepRules {
            hourly: 0,
            daily: 1,
            weekly: 0,
        },
    }
}

/// The LV's name when it is a usable policy name not yet taken, else `VG-LV`, else with a
/// number.
fn unique_name(volume: &str, inv: &Inventory, taken: &BTreeSet<String>) -> String {
    let (vg, lv) = volume.split_once('/').unwrap_or(("", volume));
    let clash = inv.lvs().iter().filter(|l| l.name == lv).count() > 1;

    let base = if !clash && crate::config::usable_policy_name(lv) {
        lv.to_owned()
    } else {
        let joined: String = format!("{vg}-{lv}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .take(56)
            .collect();
        joined.trim_start_matches('-').to_owned()
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The policy file text: each policy with its reasons as comments.
pub fn to_toml(p: &Proposal, written_to: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {} — written by `lvsnap init`; edit freely.\n# Check with `lvsnap config check`, see what a run would do with `lvsnap plan`.",
        comment(written_to)
    );
    for pol in &p.policies {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "# {} ({}, mounted at {})",
            pol.volume,
            comment(&pol.fs),
            comment(&pol.mount_point.display().to_string())
        );
        for r in &pol.reasons {
            let _ = writeln!(s, "#   {}", comment(r));
        }
        let _ = writeln!(s, "[policy.{}]", toml_key(&pol.name));
        let _ = writeln!(s, "volumes = [{}]", toml_string(&pol.volume));
        let _ = writeln!(s, "schedule = \"{}\"", pol.schedule);
        if let Some(size) = &pol.size {
            let _ = writeln!(s, "size = \"{size}\"");
        }
        let _ = writeln!(s, "keep = {}", pol.keep.toml());
        if let Some(kf) = &pol.keep_free {
            let _ = writeln!(s, "keep-free = \"{kf}\"");
        }
    }
    if !p.skipped.is_empty() {
        let _ = writeln!(s, "\n# Left out:");
        for (v, why) in &p.skipped {
            let _ = writeln!(s, "#   {}: {}", comment(v), comment(why));
        }
    }
    s
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A policy name as a table key: bare when TOML allows it, else quoted (`root.old`).
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        name.to_owned()
    } else {
        toml_string(name)
    }
}

/// Text for a `#` comment: a mount point may hold a newline (mountinfo's `\012`), which would
/// end the comment and let the rest be read as TOML. Control characters are written escaped.
fn comment(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lvm::report::VgInfo;
    use chrono::{TimeZone, Utc};

    const GIB: u64 = 1 << 30;

    pub(crate) fn lv(vg: &str, name: &str, kind: LvKind, size: u64) -> Lv {
        Lv {
            uuid: format!("uuid-{name}"),
            name: name.to_owned(),
            vg: vg.to_owned(),
            kind,
            origin: None,
            pool: None,
            time: Utc.timestamp_opt(0, 0).unwrap(),
            attr: String::new(),
            size,
            data_percent: None,
            metadata_percent: None,
            tags: Vec::new(),
            merging: false,
            skip_activation: false,
            invalid: false,
            open: true,
            active: true,
        }
    }

    /// The VM test's guest: two thick ext4 LVs, a thin xfs LV, swap, a foreign snapshot.
    fn guest() -> Inventory {
        let mut snap = lv("vg0", "mysnap", LvKind::ThickSnapshot, GIB / 4);
        snap.origin = Some("home".to_owned());
        let mut pool = lv("vg0", "pool", LvKind::ThinPool, 2 * GIB);
        pool.data_percent = Some(12.0);
        pool.metadata_percent = Some(3.0);
        let mut data = lv("vg0", "data", LvKind::ThinVolume, 4 * GIB);
        data.pool = Some("pool".to_owned());
        let mut vgs = BTreeMap::new();
        vgs.insert(
            "vg0".to_owned(),
            VgInfo {
                size: 20 * GIB,
                free: 10 * GIB,
                extent_size: 4 << 20,
            },
        );
        Inventory::new(
            vec![
                lv("vg0", "home", LvKind::Plain, 2 * GIB),
                lv("vg0", "srv", LvKind::Plain, 2 * GIB),
                pool,
                lv("vg0", "pool_tdata", LvKind::Hidden, 2 * GIB),
                data,
                lv("vg0", "swap", LvKind::Plain, GIB),
                snap,
                lv("vg0", "spare", LvKind::Plain, GIB),
            ],
            vgs,
        )
    }

    fn use_of(lv: &Lv) -> Use {
        let fs = match lv.name.as_str() {
            "home" | "srv" => "ext4",
            "data" => "xfs",
            "swap" => return Use::Swap,
            _ => return Use::Unused,
        };
        Use::Mounted {
            point: PathBuf::from(format!("/{}", lv.name)),
            fs: fs.to_owned(),
        }
    }

    fn propose_for(
        inv: &Inventory,
        chosen: &[String],
        covered: &BTreeMap<String, String>,
    ) -> Result<Proposal, String> {
        let taken = covered.values().cloned().collect();
        let reserved = BTreeMap::new();
        propose(
            inv,
            &Host {
                use_of: &use_of,
                covered,
                taken: &taken,
                chosen,
                reserved: &reserved,
            },
        )
    }

    #[test]
    fn guest_with_thick_thin_swap_and_a_foreign_snapshot_gets_three_policies() {
        let p = propose_for(&guest(), &[], &BTreeMap::new()).unwrap();
        let vols: Vec<_> = p.policies.iter().map(|p| p.volume.as_str()).collect();
        assert_eq!(vols, ["vg0/data", "vg0/home", "vg0/srv"]);
        let data = &p.policies[0];
        assert!(data.thin && data.size.is_none());
        assert_eq!(
            data.keep,
            KeepRules {
                hourly: 24,
                daily: 7,
                weekly: 4
            }
        );
        // 10 GiB free, 2 GiB kept free: 8 GiB for 4 GiB of thick origins; 5 snapshots of 20%.
        let home = &p.policies[1];
        assert_eq!(home.size.as_deref(), Some("20%ORIGIN"));
        assert_eq!(home.keep_free.as_deref(), Some("10%"));
        assert_eq!(
            home.keep,
            KeepRules {
                hourly: 2,
                daily: 2,
                weekly: 0
            }
        );
        let why: BTreeMap<_, _> = p.skipped.iter().cloned().collect();
        assert!(why["vg0/swap"].starts_with("swap"), "{why:?}");
        assert!(why["vg0/mysnap"].contains("did not make"), "{why:?}");
        assert!(why["vg0/spare"].starts_with("not mounted"), "{why:?}");
        assert!(why["vg0/pool"].starts_with("a thin pool"), "{why:?}");
        assert!(!why.contains_key("vg0/pool_tdata"));
    }

    #[test]
    fn the_proposal_is_a_valid_policy_file_that_config_check_accepts_without_advice() {
        let mut inv = guest();
        let text = to_toml(
            &propose_for(&inv, &[], &BTreeMap::new()).unwrap(),
            "init.toml",
        );
        let cfg =
            crate::config::parse_sources(vec![("init.toml".into(), text.clone())], chrono_tz::UTC)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.policies.len(), 3);
        let thick_advice: Vec<_> = cfg
            .advice()
            .into_iter()
            .filter(|a| !a.contains("policy data"))
            .collect();
        assert!(thick_advice.is_empty(), "{thick_advice:?}");
        // Less room: fewer, smaller snapshots, still valid.
        inv.vgs.get_mut("vg0").unwrap().free = 3 * GIB;
        let p = propose_for(&inv, &[], &BTreeMap::new()).unwrap();
        let home = p.policies.iter().find(|p| p.volume == "vg0/home").unwrap();
        // 1 GiB usable for 4 GiB of origins: two snapshots of 12%.
        assert_eq!(home.size.as_deref(), Some("12%ORIGIN"));
        assert_eq!(
            home.keep,
            KeepRules {
                hourly: 0,
                daily: 1,
                weekly: 0
            }
        );
        crate::config::parse_sources(vec![("init.toml".into(), to_toml(&p, "x"))], chrono_tz::UTC)
            .unwrap();
    }

    #[test]
    fn no_room_full_pool_covered_and_chosen_volumes_are_explained() {
        let (mut lvs, mut vgs) = guest().into_parts();
        vgs.get_mut("vg0").unwrap().free = 2 * GIB + GIB / 2;
        for l in &mut lvs {
            if l.name == "pool" {
                l.data_percent = Some(85.0);
            }
        }
        let inv = Inventory::new(lvs, vgs);
        let p = propose_for(&inv, &[], &BTreeMap::new()).unwrap();
        assert!(p.policies.is_empty(), "{:?}", p.policies);
        let why: BTreeMap<_, _> = p.skipped.iter().cloned().collect();
        assert!(
            why["vg0/home"].contains("not room for two snapshots"),
            "{why:?}"
        );
        assert!(why["vg0/data"].contains("85% full"), "{why:?}");

        let covered = BTreeMap::from([("vg0/home".to_owned(), "home".to_owned())]);
        let p = propose_for(&guest(), &[], &covered).unwrap();
        assert_eq!(
            p.skipped.iter().find(|s| s.0 == "vg0/home").unwrap().1,
            "already in policy home"
        );
        // The policy name "home" is taken: the new one for srv is still "srv".
        assert!(p.policies.iter().any(|p| p.name == "srv"));

        let p = propose_for(&guest(), &["vg0/srv".to_owned()], &BTreeMap::new()).unwrap();
        assert_eq!(p.policies.len(), 1);
        let e = propose_for(&guest(), &["vg0/swap".to_owned()], &BTreeMap::new()).unwrap_err();
        assert!(e.contains("vg0/swap: swap"), "{e}");
        let e = propose_for(&guest(), &["vg0/nope".to_owned()], &BTreeMap::new()).unwrap_err();
        assert!(e.contains("no such logical volume"), "{e}");
    }

    #[test]
    fn a_mount_point_with_a_newline_and_a_dotted_name_stay_inside_comments_and_quotes() {
        let (mut lvs, vgs) = guest().into_parts();
        for l in &mut lvs {
            if l.name == "srv" {
                l.name = "root.old".to_owned();
            }
        }
        let inv = Inventory::new(lvs, vgs);
        let weird = |lv: &Lv| match lv.name.as_str() {
            "root.old" => Use::Mounted {
                point: PathBuf::from("/x\n[policy.evil]\npre = [\"/bin/evil\"]"),
                fs: "ext4".to_owned(),
            },
            _ => use_of(lv),
        };
        let (covered, reserved) = (BTreeMap::new(), BTreeMap::new());
        let taken = BTreeSet::new();
        let host = Host {
            use_of: &weird,
            covered: &covered,
            taken: &taken,
            chosen: &[],
            reserved: &reserved,
        };
        let text = to_toml(&propose(&inv, &host).unwrap(), "init.toml");
        let cfg =
            crate::config::parse_sources(vec![("init.toml".into(), text.clone())], chrono_tz::UTC)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let names: Vec<_> = cfg.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["data", "home", "root.old"], "{text}");
        assert!(cfg.policies.iter().all(|p| p.pre.is_none()), "{text}");
        assert!(text.contains("mounted at /x\\n[policy.evil]"), "{text}");
    }

    #[test]
    fn thick_space_already_promised_to_policies_is_not_handed_out_again() {
        let inv = guest();
        // 8 GiB usable, 7 GiB of it promised: 1 GiB for 4 GiB of origins.
        let reserved = BTreeMap::from([("vg0".to_owned(), 7 * GIB)]);
        let empty = BTreeMap::new();
        let taken = BTreeSet::new();
        let host = Host {
            use_of: &use_of,
            covered: &empty,
            taken: &taken,
            chosen: &[],
            reserved: &reserved,
        };
        let p = propose(&inv, &host).unwrap();
        let home = p.policies.iter().find(|p| p.volume == "vg0/home").unwrap();
        assert_eq!(
            home.size.as_deref(),
            Some("12%ORIGIN"),
            "{:?}",
            home.reasons
        );
        assert!(
            home.reasons[1].contains("policies already there may take 7 GiB"),
            "{:?}",
            home.reasons
        );
    }

    #[test]
    fn names_clash_across_volume_groups_and_with_taken_ones() {
        let (mut lvs, vgs) = guest().into_parts();
        lvs.push(lv("vg1", "home", LvKind::Plain, GIB));
        let inv = Inventory::new(lvs, vgs);
        let taken = BTreeSet::from(["vg1-home".to_owned()]);
        assert_eq!(unique_name("vg0/home", &inv, &taken), "vg0-home");
        assert_eq!(unique_name("vg1/home", &inv, &taken), "vg1-home-2");
        assert_eq!(unique_name("vg0/srv", &inv, &taken), "srv");
    }
}
