//! An in-memory LVM for logic and failure-path tests: it answers the same argv lvsnap sends to
//! the real tools, prints `lvs` JSON in the same shape as lvm2 2.03, and can be told to fail.
//! It never stands in for the real-LVM tests of what LVM itself does.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::{Completed, Invocation, LvmError, Runner, Tool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    ThickSnapshot,
    ThinPool,
    Thin,
}

#[derive(Debug, Clone)]
struct FakeLv {
    uuid: String,
    name: String,
    vg: String,
    kind: Kind,
    origin: Option<String>,
    pool: Option<String>,
    time: DateTime<Utc>,
    extents: u64,
    tags: Vec<String>,
    fill: f64,
    metadata_fill: f64,
    invalid: bool,
    open: bool,
    /// Thin snapshots start inactive (LVM's activation-skip flag); everything else is active.
    active: bool,
    /// A merge into the origin waits for the origin's next activation.
    merging: bool,
    /// LVM's activation-skip flag: set on thin snapshots, kept when a merge detaches them.
    skip: bool,
}

#[derive(Debug, Clone)]
struct FakeVg {
    name: String,
    extents: u64,
}

struct Failure {
    tool: Tool,
    matching: String,
    /// Matching commands that still run as usual before this one fails.
    skip: usize,
    status: i32,
    stderr: String,
}

struct State {
    vgs: Vec<FakeVg>,
    lvs: Vec<FakeLv>,
    log: Vec<Invocation>,
    failures: Vec<Failure>,
    next_uuid: u64,
    clock: DateTime<Utc>,
    /// What `blkid` reports for every device.
    fs_type: String,
    /// Arguments of every mount and umount, in order (nothing is really mounted).
    mounts: Vec<String>,
    /// Volumes (`vg/name`) whose next removals (so many) fail as if they were open.
    refused: BTreeMap<String, usize>,
}

/// Extent size of every fake volume group: 4 MiB, LVM's default.
pub const EXTENT: u64 = 4 << 20;

pub struct FakeLvm {
    state: Mutex<State>,
}

impl Default for FakeLvm {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeLvm {
    pub fn new() -> Self {
        FakeLvm {
            state: Mutex::new(State {
                vgs: Vec::new(),
                lvs: Vec::new(),
                log: Vec::new(),
                failures: Vec::new(),
                next_uuid: 1,
                clock: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                fs_type: "ext4".to_owned(),
                mounts: Vec::new(),
                refused: BTreeMap::new(),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("fake LVM state"))
    }

    /// The filesystem `blkid` reports on every device.
    pub fn set_fs_type(&self, fs_type: &str) -> &Self {
        self.with(|s| s.fs_type = fs_type.to_owned());
        self
    }

    /// The arguments of every mount and umount run so far.
    pub fn mounts(&self) -> Vec<String> {
        self.with(|s| s.mounts.clone())
    }

    pub fn add_vg(&self, name: &str, bytes: u64) -> &Self {
        self.with(|s| {
            s.vgs.push(FakeVg {
                name: name.to_owned(),
                extents: bytes / EXTENT,
            })
        });
        self
    }

    fn push(
        &self,
        vg: &str,
        name: &str,
        kind: Kind,
        bytes: u64,
        origin: Option<&str>,
        pool: Option<&str>,
    ) {
        self.with(|s| {
            let uuid = format!("fake-uuid-{:04}", s.next_uuid);
            s.next_uuid += 1;
            let lv = FakeLv {
                uuid,
                name: name.to_owned(),
                vg: vg.to_owned(),
                kind,
                origin: origin.map(str::to_owned),
                pool: pool.map(str::to_owned),
                time: s.clock,
                extents: bytes.div_ceil(EXTENT),
                tags: Vec::new(),
                fill: 0.0,
                metadata_fill: 0.0,
                invalid: false,
                open: false,
                active: !(kind == Kind::Thin && origin.is_some()),
                merging: false,
                skip: kind == Kind::Thin && origin.is_some(),
            };
            s.lvs.push(lv);
        });
    }

    /// A plain (thick) logical volume.
    pub fn add_lv(&self, vg: &str, name: &str, bytes: u64) -> &Self {
        self.push(vg, name, Kind::Plain, bytes, None, None);
        self
    }

    pub fn add_thin_pool(&self, vg: &str, name: &str, bytes: u64) -> &Self {
        self.push(vg, name, Kind::ThinPool, bytes, None, None);
        self
    }

    pub fn add_thin_lv(&self, vg: &str, pool: &str, name: &str, bytes: u64) -> &Self {
        self.push(vg, name, Kind::Thin, bytes, None, Some(pool));
        self
    }

    /// A snapshot lvsnap did not make (or did, with `tags`), dated `time`.
    pub fn add_snapshot(
        &self,
        vg: &str,
        origin: &str,
        name: &str,
        tags: &[&str],
        time: DateTime<Utc>,
    ) -> &Self {
        let thin_pool = self.with(|s| {
            s.lvs
                .iter()
                .find(|l| l.vg == vg && l.name == origin)
                .and_then(|l| l.pool.clone())
        });
        let kind = if thin_pool.is_some() {
            Kind::Thin
        } else {
            Kind::ThickSnapshot
        };
        self.push(vg, name, kind, 32 << 20, Some(origin), thin_pool.as_deref());
        self.with(|s| {
            let lv = s.lvs.last_mut().expect("just pushed");
            lv.tags = tags.iter().map(|t| (*t).to_owned()).collect();
            lv.time = time;
        });
        self
    }

    /// The time LVM stamps on volumes created from now on.
    pub fn set_clock(&self, t: DateTime<Utc>) {
        self.with(|s| s.clock = t);
    }

    /// Data fill of a snapshot, thin volume or pool, in percent; metadata fill for a pool. A
    /// thin snapshot's stands for the share of its pool only it holds: removing it lowers the
    /// pool's data fill by that much.
    pub fn set_fill(&self, vg: &str, name: &str, data: f64, metadata: f64) {
        self.with(|s| {
            if let Some(lv) = s.lvs.iter_mut().find(|l| l.vg == vg && l.name == name) {
                lv.fill = data;
                lv.metadata_fill = metadata;
            }
        });
    }

    pub fn set_invalid(&self, vg: &str, name: &str) {
        self.with(|s| {
            if let Some(lv) = s.lvs.iter_mut().find(|l| l.vg == vg && l.name == name) {
                lv.invalid = true;
                lv.fill = 100.0;
            }
        });
    }

    pub fn set_open(&self, vg: &str, name: &str, open: bool) {
        self.with(|s| {
            if let Some(lv) = s.lvs.iter_mut().find(|l| l.vg == vg && l.name == name) {
                lv.open = open;
            }
        });
    }

    /// The origin's next activation: deferred merges into it complete, their snapshots go.
    pub fn reactivate(&self, vg: &str, origin: &str) {
        self.with(|s| {
            s.lvs
                .retain(|l| !(l.vg == vg && l.merging && l.origin.as_deref() == Some(origin)));
        });
    }

    /// The next `times` removals of `vg/name` fail as if it were open (after lvsnap's
    /// inventory said it was not).
    pub fn refuse_removal(&self, vg: &str, name: &str, times: usize) {
        self.with(|s| s.refused.insert(format!("{vg}/{name}"), times));
    }

    /// Removes a volume as an administrator would, behind lvsnap's back.
    pub fn remove_behind_back(&self, vg: &str, name: &str) {
        self.with(|s| s.lvs.retain(|l| !(l.vg == vg && l.name == name)));
    }

    /// The next command of `tool` whose argv contains `matching` fails with `status`/`stderr`.
    pub fn fail_next(&self, tool: Tool, matching: &str, status: i32, stderr: &str) {
        self.fail_later(tool, matching, 0, status, stderr);
    }

    /// As [`Self::fail_next`], after `skip` such commands have run as usual.
    pub fn fail_later(&self, tool: Tool, matching: &str, skip: usize, status: i32, stderr: &str) {
        self.with(|s| {
            s.failures.push(Failure {
                tool,
                matching: matching.to_owned(),
                skip,
                status,
                stderr: stderr.to_owned(),
            })
        });
    }

    /// Every command run so far, as argv strings.
    pub fn invocations(&self) -> Vec<String> {
        self.with(|s| s.log.iter().map(ToString::to_string).collect())
    }

    pub fn names(&self, vg: &str) -> Vec<String> {
        self.with(|s| {
            s.lvs
                .iter()
                .filter(|l| l.vg == vg)
                .map(|l| l.name.clone())
                .collect()
        })
    }

    pub fn tags(&self, vg: &str, name: &str) -> Vec<String> {
        self.with(|s| {
            s.lvs
                .iter()
                .find(|l| l.vg == vg && l.name == name)
                .map(|l| l.tags.clone())
                .unwrap_or_default()
        })
    }

    pub fn extents(&self, vg: &str, name: &str) -> Option<u64> {
        self.with(|s| {
            s.lvs
                .iter()
                .find(|l| l.vg == vg && l.name == name)
                .map(|l| l.extents)
        })
    }
}

impl State {
    fn free_extents(&self, vg: &str) -> u64 {
        let total = self
            .vgs
            .iter()
            .find(|v| v.name == vg)
            .map_or(0, |v| v.extents);
        let used: u64 = self
            .lvs
            .iter()
            .filter(|l| l.vg == vg && l.kind != Kind::Thin)
            .map(|l| l.extents)
            .sum();
        total.saturating_sub(used)
    }

    fn find(&self, target: &str) -> Option<usize> {
        let (vg, name) = target.split_once('/')?;
        self.lvs.iter().position(|l| l.vg == vg && l.name == name)
    }

    fn report(&self) -> String {
        let lvs: Vec<serde_json::Value> = self
            .lvs
            .iter()
            .map(|l| {
                let ext = self.vgs.iter().find(|v| v.name == l.vg).map_or(0, |v| v.extents);
                let has_snapshots = self.lvs.iter().any(|s| s.vg == l.vg && s.origin.as_deref() == Some(l.name.as_str()));
                let attr = match l.kind {
                    Kind::Plain if has_snapshots => "owi-a-s---".to_owned(),
                    Kind::Plain => "-wi-a-----".to_owned(),
                    Kind::ThickSnapshot if l.invalid => "swi-I-s---".to_owned(),
                    Kind::ThickSnapshot => "swi-a-s---".to_owned(),
                    Kind::ThinPool => "twi-aotz--".to_owned(),
                    Kind::Thin if l.origin.is_some() && l.active => "Vwi-a-tz-k".to_owned(),
                    Kind::Thin if l.origin.is_some() => "Vwi---tz-k".to_owned(),
                    Kind::Thin => "Vwi-a-tz--".to_owned(),
                };
                let pct = |v: f64| format!("{v:.2}");
                let fill = match l.kind {
                    Kind::ThickSnapshot | Kind::ThinPool => pct(l.fill),
                    Kind::Thin if l.origin.is_none() => pct(l.fill),
                    _ => String::new(),
                };
                json!({
                    "lv_uuid": l.uuid, "lv_name": l.name, "vg_name": l.vg,
                    "origin": l.origin.clone().unwrap_or_default(), "pool_lv": l.pool.clone().unwrap_or_default(),
                    "lv_time": l.time.timestamp().to_string(), "lv_attr": attr,
                    "lv_size": (l.extents * EXTENT).to_string(),
                    "data_percent": fill, "snap_percent": fill,
                    "metadata_percent": if l.kind == Kind::ThinPool { pct(l.metadata_fill) } else { String::new() },
                    "lv_tags": l.tags.join(","), "lv_merging": if l.merging { "merging" } else { "" },
                    "lv_skip_activation": if l.skip { "skip activation" } else { "" },
                    "lv_snapshot_invalid": if l.invalid { "snapshot invalid" } else { "" },
                    "lv_device_open": if l.open { "open" } else { "" },
                    "lv_active": if l.active { "active" } else { "" }, "lv_layout": "linear", "lv_role": "public",
                    "vg_free": (self.free_extents(&l.vg) * EXTENT).to_string(),
                    "vg_extent_size": EXTENT.to_string(), "vg_size": (ext * EXTENT).to_string(),
                })
            })
            .collect();
        json!({"report": [{"lv": lvs}]}).to_string()
    }

    fn lvcreate(&mut self, args: &[String]) -> Result<(), (i32, String)> {
        let mut extents = None;
        let (mut name, mut tags, mut target) = (String::new(), Vec::new(), String::new());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--snapshot" => {}
                "--extents" => extents = it.next().and_then(|v| v.parse::<u64>().ok()),
                "--name" => name = it.next().cloned().unwrap_or_default(),
                "--addtag" => tags.extend(it.next().cloned()),
                other => target = other.to_owned(),
            }
        }
        let origin_at = self
            .find(&target)
            .ok_or((5, format!("  Failed to find logical volume \"{target}\"\n")))?;
        let origin = self.lvs[origin_at].clone();
        if self.lvs.iter().any(|l| l.vg == origin.vg && l.name == name) {
            return Err((
                5,
                format!(
                    "  Logical Volume \"{name}\" already exists in volume group \"{}\"\n",
                    origin.vg
                ),
            ));
        }
        let (kind, extents) = match (origin.kind, extents) {
            (Kind::Thin, _) => (Kind::Thin, origin.extents),
            (_, Some(e)) => {
                let free = self.free_extents(&origin.vg);
                if e > free {
                    return Err((5, format!("  Volume group \"{}\" has insufficient free space ({free} extents): {e} required.\n", origin.vg)));
                }
                (Kind::ThickSnapshot, e)
            }
            (_, None) => return Err((3, "  Please specify either size or extents\n".to_owned())),
        };
        let uuid = format!("fake-uuid-{:04}", self.next_uuid);
        self.next_uuid += 1;
        self.lvs.push(FakeLv {
            uuid,
            name,
            vg: origin.vg.clone(),
            kind,
            origin: Some(origin.name.clone()),
            pool: origin.pool.clone(),
            time: self.clock,
            extents,
            tags,
            fill: 0.0,
            metadata_fill: 0.0,
            invalid: false,
            open: false,
            active: kind != Kind::Thin,
            merging: false,
            skip: kind == Kind::Thin,
        });
        Ok(())
    }

    fn remove_one(&mut self, target: &str) -> Result<(), (i32, String)> {
        let i = self
            .find(target)
            .ok_or((5, format!("  Failed to find logical volume \"{target}\"\n")))?;
        let refused = match self.refused.get_mut(target) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if self.lvs[i].open || refused {
            return Err((
                5,
                format!("  Logical volume {target} contains a filesystem in use.\n"),
            ));
        }
        let gone = self.lvs.remove(i);
        // A thin snapshot's fill stands for the share of its pool's data only it holds
        // (what its removal frees); real LVM does not report that.
        if let (Kind::Thin, Some(_), Some(pool)) = (gone.kind, &gone.origin, &gone.pool) {
            if let Some(p) = self
                .lvs
                .iter_mut()
                .find(|l| l.vg == gone.vg && l.name == *pool)
            {
                p.fill = (p.fill - gone.fill).max(0.0);
            }
        }
        Ok(())
    }

    fn apply(&mut self, inv: &Invocation) -> Result<String, (i32, String)> {
        let target = inv.args.last().cloned().unwrap_or_default();
        match inv.tool {
            Tool::Lvs => Ok(self.report()),
            Tool::Lvcreate => self.lvcreate(&inv.args).map(|()| String::new()),
            Tool::Lvremove => {
                // Like lvm2: the volumes in the group's metadata order (here, creation order),
                // stopping at the first it cannot remove.
                let mut targets: Vec<&String> =
                    inv.args.iter().filter(|a| !a.starts_with('-')).collect();
                targets.sort_by_key(|t| self.find(t).unwrap_or(usize::MAX));
                for target in targets {
                    self.remove_one(target)?;
                }
                Ok(String::new())
            }
            Tool::Lvextend => {
                let i = self
                    .find(&target)
                    .ok_or((5, format!("  Failed to find logical volume \"{target}\"\n")))?;
                let add: u64 = inv
                    .args
                    .get(1)
                    .and_then(|v| v.trim_start_matches('+').parse().ok())
                    .ok_or((3, "bad extents".to_owned()))?;
                let vg = self.lvs[i].vg.clone();
                if add > self.free_extents(&vg) {
                    return Err((
                        5,
                        format!("  Insufficient free space: {add} extents needed\n"),
                    ));
                }
                let lv = &mut self.lvs[i];
                lv.fill = lv.fill * lv.extents as f64 / (lv.extents + add) as f64;
                lv.extents += add;
                Ok(String::new())
            }
            Tool::Blkid => Ok(format!("{}\n", self.fs_type)),
            Tool::Lvrename => {
                let (vg, from, to) = (&inv.args[0], &inv.args[1], &inv.args[2]);
                let i = self.find(&format!("{vg}/{from}")).ok_or((
                    5,
                    format!("  Existing logical volume \"{from}\" not found\n"),
                ))?;
                self.lvs[i].name = to.clone();
                for lv in self.lvs.iter_mut().filter(|l| &l.vg == vg) {
                    if lv.origin.as_deref() == Some(from.as_str()) {
                        lv.origin = Some(to.clone());
                    }
                }
                Ok(String::new())
            }
            Tool::Lvconvert => {
                let i = self
                    .find(&target)
                    .ok_or((5, format!("  Failed to find logical volume \"{target}\"\n")))?;
                let (vg, origin) = (self.lvs[i].vg.clone(), self.lvs[i].origin.clone());
                let origin_open = self
                    .lvs
                    .iter()
                    .any(|o| o.vg == vg && Some(&o.name) == origin.as_ref() && o.open);
                if origin_open {
                    self.lvs[i].merging = true;
                    Ok(format!("  Delaying merge since origin is open.\n  Merging of snapshot {target} will occur on next activation of {vg}/{}.\n", origin.unwrap_or_default()))
                } else {
                    let merged = self.lvs.remove(i);
                    // LVM detaches the origin's other thin snapshots: the old origin is gone.
                    if merged.kind == Kind::Thin {
                        for lv in self
                            .lvs
                            .iter_mut()
                            .filter(|l| l.vg == vg && l.origin == origin)
                        {
                            lv.origin = None;
                        }
                    }
                    Ok(format!("  Merging of volume {target} started.\n"))
                }
            }
            Tool::Mount | Tool::Umount => {
                self.mounts.push(inv.args.join(" "));
                Ok(String::new())
            }
            // Replication reads real pool metadata; its tests run against real LVM.
            Tool::Dmsetup | Tool::ThinDump => Err((
                1,
                format!("  {} is not part of the fake\n", inv.tool.name()),
            )),
            Tool::Lvchange => {
                let i = self
                    .find(&target)
                    .ok_or((5, format!("  Failed to find logical volume \"{target}\"\n")))?;
                let args = &inv.args[..inv.args.len() - 1];
                for pair in args.chunks(2) {
                    let value = pair.get(1).cloned().unwrap_or_default();
                    let lv = &mut self.lvs[i];
                    match pair[0].as_str() {
                        "--activate" => lv.active = value == "y",
                        "--addtag" if !lv.tags.contains(&value) => lv.tags.push(value),
                        "--deltag" => lv.tags.retain(|t| *t != value),
                        "--setactivationskip" => lv.skip = value == "y",
                        _ => {}
                    }
                }
                Ok(String::new())
            }
        }
    }
}

impl Runner for FakeLvm {
    fn run(&self, inv: &Invocation) -> Result<Completed, LvmError> {
        self.with(|s| {
            s.log.push(inv.clone());
            let argv = inv.to_string();
            let injected = s
                .failures
                .iter()
                .position(|f| f.tool == inv.tool && argv.contains(&f.matching));
            let injected = match injected {
                Some(i) if s.failures[i].skip > 0 => {
                    s.failures[i].skip -= 1;
                    None
                }
                other => other,
            };
            let result = match injected {
                Some(i) => {
                    let f = s.failures.remove(i);
                    Err((f.status, f.stderr))
                }
                None => s.apply(inv),
            };
            let (status, stdout, stderr) = match result {
                Ok(out) => (0, out, String::new()),
                Err((status, stderr)) => (status, String::new(), stderr),
            };
            Ok(Completed {
                status,
                stdout,
                stderr,
                duration: Duration::from_millis(1),
            })
        })
    }
}
