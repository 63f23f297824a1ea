//! The inventory: one `lvs` report (JSON) parsed into logical volumes and the volume-group
//! figures that `lvs` can report alongside. Pure: tested on reports captured from real lvm2
//! (`tests/fixtures/lvm/`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

/// The fields lvsnap asks `lvs` for; `tests/vm/guest/capture-fixtures.sh` uses the same list.
pub const LVS_FIELDS: &str = "lv_uuid,lv_name,vg_name,origin,pool_lv,lv_time,lv_attr,lv_size,data_percent,snap_percent,metadata_percent,lv_tags,lv_merging,lv_skip_activation,lv_snapshot_invalid,lv_device_open,lv_active,lv_layout,lv_role,vg_free,vg_extent_size,vg_size";

/// The arguments of the one inventory call a run makes.
pub fn lvs_args() -> Vec<String> {
    [
        "-a",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "--config",
        "report { time_format = \"%s\" }",
        "-o",
        LVS_FIELDS,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// What kind of logical volume LVM reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvKind {
    /// A thick (copy-on-write) snapshot.
    ThickSnapshot,
    /// A thin snapshot: a thin volume with an origin.
    ThinSnapshot,
    ThinVolume,
    ThinPool,
    /// Anything else visible: linear, striped, raid … (a possible thick origin).
    Plain,
    /// LVM's own hidden sub-volumes (`[pool_tdata]`, …).
    Hidden,
}

/// One logical volume as `lvs` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    pub uuid: String,
    /// The name without the brackets LVM puts around hidden volumes.
    pub name: String,
    pub vg: String,
    pub kind: LvKind,
    pub origin: Option<String>,
    pub pool: Option<String>,
    pub time: DateTime<Utc>,
    pub attr: String,
    pub size: u64,
    /// Fill of a snapshot's copy-on-write space, or of a thin volume or pool, in percent.
    pub data_percent: Option<f64>,
    pub metadata_percent: Option<f64>,
    pub tags: Vec<String>,
    pub merging: bool,
    pub skip_activation: bool,
    pub invalid: bool,
    pub open: bool,
    pub active: bool,
}

impl Lv {
    pub fn path(&self) -> String {
        format!("{}/{}", self.vg, self.name)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The value of a `key=value` tag.
    pub fn tag_value(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    pub fn is_snapshot(&self) -> bool {
        matches!(self.kind, LvKind::ThickSnapshot | LvKind::ThinSnapshot)
    }
}

/// Volume group figures, as reported on each of its LVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VgInfo {
    pub size: u64,
    pub free: u64,
    pub extent_size: u64,
}

/// Everything one `lvs` call told, indexed once so that every lookup costs the same at ten
/// snapshots as at fifty thousand.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    lvs: Vec<Lv>,
    pub vgs: BTreeMap<String, VgInfo>,
    /// Position in `lvs` by VG, then name.
    by_name: HashMap<String, HashMap<String, usize>>,
    by_uuid: HashMap<String, usize>,
    /// Positions of the snapshots of each origin, by VG, then origin name.
    snapshots: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl PartialEq for Inventory {
    fn eq(&self, other: &Self) -> bool {
        self.lvs == other.lvs && self.vgs == other.vgs
    }
}

impl Inventory {
    pub fn new(lvs: Vec<Lv>, vgs: BTreeMap<String, VgInfo>) -> Self {
        let mut inv = Inventory {
            vgs,
            ..Default::default()
        };
        // The first of two volumes with one name or UUID (a cloned VG before
        // `vgimportclone`, a copied disk) is the one found, as a scan in report order would.
        for (i, lv) in lvs.iter().enumerate() {
            inv.by_name
                .entry(lv.vg.clone())
                .or_default()
                .entry(lv.name.clone())
                .or_insert(i);
            inv.by_uuid.entry(lv.uuid.clone()).or_insert(i);
            if let (Some(origin), true) = (&lv.origin, lv.is_snapshot()) {
                inv.snapshots
                    .entry(lv.vg.clone())
                    .or_default()
                    .entry(origin.clone())
                    .or_default()
                    .push(i);
            }
        }
        inv.lvs = lvs;
        inv
    }

    /// Every logical volume, in the order `lvs` reported them.
    pub fn lvs(&self) -> &[Lv] {
        &self.lvs
    }

    /// The volumes and the VG figures, to change and index again (`Inventory::new`).
    pub fn into_parts(self) -> (Vec<Lv>, BTreeMap<String, VgInfo>) {
        (self.lvs, self.vgs)
    }

    /// Forgets `vg/name` (removed since the report was taken).
    pub fn remove(&mut self, vg: &str, name: &str) {
        let (mut lvs, vgs) = std::mem::take(self).into_parts();
        lvs.retain(|l| !(l.vg == vg && l.name == name));
        *self = Inventory::new(lvs, vgs);
    }

    pub fn find(&self, vg: &str, name: &str) -> Option<&Lv> {
        let i = self.by_name.get(vg)?.get(name)?;
        Some(&self.lvs[*i])
    }

    pub fn by_uuid(&self, uuid: &str) -> Option<&Lv> {
        self.by_uuid.get(uuid).map(|i| &self.lvs[*i])
    }

    /// Snapshots of `vg/origin`, hidden merging ones included.
    pub fn snapshots_of<'a>(
        &'a self,
        vg: &'a str,
        origin: &'a str,
    ) -> impl Iterator<Item = &'a Lv> {
        self.snapshots
            .get(vg)
            .and_then(|o| o.get(origin))
            .into_iter()
            .flatten()
            .map(|i| &self.lvs[*i])
    }

    pub fn lv_names(&self, vg: &str) -> Vec<&str> {
        self.lvs
            .iter()
            .filter(|lv| lv.vg == vg && lv.kind != LvKind::Hidden)
            .map(|lv| lv.name.as_str())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("lvs printed JSON lvsnap cannot read: {0}")]
    Json(#[from] serde_json::Error),
    #[error("lvs reported {field} = {value:?} for {lv}, which is not a {what}")]
    Field {
        lv: String,
        field: &'static str,
        value: String,
        what: &'static str,
    },
}

#[derive(Deserialize)]
struct Report<'a> {
    #[serde(borrow)]
    report: Vec<ReportSection<'a>>,
}

#[derive(Deserialize)]
struct ReportSection<'a> {
    #[serde(default, borrow)]
    lv: Vec<RawLv<'a>>,
}

#[derive(Deserialize)]
// Borrowed from the report where it has no escapes: tens of thousands of volumes parse
// without a string copied per field.
struct RawLv<'a> {
    #[serde(borrow)]
    lv_uuid: Cow<'a, str>,
    #[serde(borrow)]
    lv_name: Cow<'a, str>,
    #[serde(borrow)]
    vg_name: Cow<'a, str>,
    #[serde(borrow)]
    origin: Cow<'a, str>,
    #[serde(borrow)]
    pool_lv: Cow<'a, str>,
    #[serde(borrow)]
    lv_time: Cow<'a, str>,
    #[serde(borrow)]
    lv_attr: Cow<'a, str>,
    #[serde(borrow)]
    lv_size: Cow<'a, str>,
    #[serde(borrow)]
    data_percent: Cow<'a, str>,
    #[serde(borrow)]
    metadata_percent: Cow<'a, str>,
    #[serde(borrow)]
    lv_tags: Cow<'a, str>,
    #[serde(borrow)]
    lv_merging: Cow<'a, str>,
    #[serde(borrow)]
    lv_skip_activation: Cow<'a, str>,
    #[serde(borrow)]
    lv_snapshot_invalid: Cow<'a, str>,
    #[serde(borrow)]
    lv_device_open: Cow<'a, str>,
    #[serde(borrow)]
    lv_active: Cow<'a, str>,
    #[serde(borrow)]
    vg_free: Cow<'a, str>,
    #[serde(borrow)]
    vg_extent_size: Cow<'a, str>,
    #[serde(borrow)]
    vg_size: Cow<'a, str>,
}

/// Parses the JSON of `lvs` run with [`lvs_args`].
///
/// # Errors
/// The text is not such a report, or a number or time in it does not parse.
pub fn parse_lvs(json: &str) -> Result<Inventory, ReportError> {
    let report: Report = serde_json::from_str(json)?;
    let mut lvs = Vec::new();
    let mut vgs = BTreeMap::new();
    for raw in report.report.into_iter().flat_map(|s| s.lv) {
        let lv = convert(&raw)?;
        let num = |field: &'static str, value: &str| -> Result<u64, ReportError> {
            value.parse().map_err(|_| ReportError::Field {
                lv: lv.path(),
                field,
                value: value.to_owned(),
                what: "number",
            })
        };
        vgs.entry(lv.vg.clone()).or_insert(VgInfo {
            size: num("vg_size", &raw.vg_size)?,
            free: num("vg_free", &raw.vg_free)?,
            extent_size: num("vg_extent_size", &raw.vg_extent_size)?,
        });
        lvs.push(lv);
    }
    Ok(Inventory::new(lvs, vgs))
}

fn convert(raw: &RawLv<'_>) -> Result<Lv, ReportError> {
    let hidden = raw.lv_name.starts_with('[');
    let name = raw
        .lv_name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let path = format!("{}/{}", raw.vg_name, name);
    let bad = |field: &'static str, value: &str, what: &'static str| ReportError::Field {
        lv: path.clone(),
        field,
        value: value.to_owned(),
        what,
    };
    let size = raw
        .lv_size
        .parse()
        .map_err(|_| bad("lv_size", &raw.lv_size, "number"))?;
    let epoch: i64 = raw
        .lv_time
        .parse()
        .map_err(|_| bad("lv_time", &raw.lv_time, "time in seconds"))?;
    let time = Utc
        .timestamp_opt(epoch, 0)
        .single()
        .ok_or_else(|| bad("lv_time", &raw.lv_time, "valid time"))?;
    let percent = |field: &'static str, v: &str| -> Result<Option<f64>, ReportError> {
        if v.is_empty() {
            Ok(None)
        } else {
            v.parse().map(Some).map_err(|_| bad(field, v, "percentage"))
        }
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let origin = opt(&raw.origin);
    let type_char = raw.lv_attr.chars().next().unwrap_or('-');
    let kind = match type_char {
        's' | 'S' => LvKind::ThickSnapshot,
        'V' if origin.is_some() => LvKind::ThinSnapshot,
        'V' => LvKind::ThinVolume,
        't' => LvKind::ThinPool,
        _ if hidden => LvKind::Hidden,
        _ => LvKind::Plain,
    };
    // A merging snapshot is hidden but is still a snapshot lvsnap must account for.
    let state_char = raw.lv_attr.chars().nth(4).unwrap_or('-');
    Ok(Lv {
        uuid: raw.lv_uuid.clone().into_owned(),
        name,
        vg: raw.vg_name.clone().into_owned(),
        kind,
        origin,
        pool: opt(&raw.pool_lv),
        time,
        attr: raw.lv_attr.clone().into_owned(),
        size,
        data_percent: percent("data_percent", &raw.data_percent)?,
        metadata_percent: percent("metadata_percent", &raw.metadata_percent)?,
        tags: raw
            .lv_tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        merging: raw.lv_merging == "merging",
        skip_activation: raw.lv_skip_activation == "skip activation",
        invalid: raw.lv_snapshot_invalid == "snapshot invalid" || state_char == 'I',
        open: raw.lv_device_open == "open",
        active: raw.lv_active == "active",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Inventory {
        let path = format!("{}/tests/fixtures/lvm/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_lvs(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn thick_origin_with_tagged_and_manual_snapshots() {
        let inv = fixture("thick-origin-with-snapshot.json");
        let home = inv.find("vg0", "home").unwrap();
        assert_eq!(home.kind, LvKind::Plain);
        assert_eq!(home.size, 256 << 20);
        let snap = inv.find("vg0", "home-lvsnap-20261128T060000Z").unwrap();
        assert_eq!(snap.kind, LvKind::ThickSnapshot);
        assert_eq!(snap.origin.as_deref(), Some("home"));
        assert_eq!(snap.size, 64 << 20);
        assert!(snap.has_tag("lvsnap"));
        assert_eq!(snap.tag_value("lvsnap-policy"), Some("home"));
        assert!(snap.data_percent.is_some());
        assert!(!snap.invalid && snap.active);
        let manual = inv.find("vg0", "home_manual").unwrap();
        assert!(manual.tags.is_empty());
        assert_eq!(inv.snapshots_of("vg0", "home").count(), 2);
        let vg = inv.vgs["vg0"];
        assert_eq!(vg.extent_size, 4 << 20);
        assert!(vg.free > 0 && vg.free < vg.size);
        assert!(snap.time > Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn lookups_agree_with_a_scan_of_every_volume_and_follow_a_removal() {
        let mut inv = fixture("thick-origin-with-snapshot.json");
        for lv in inv.lvs().to_vec() {
            assert_eq!(inv.find(&lv.vg, &lv.name), Some(&lv));
            assert_eq!(inv.by_uuid(&lv.uuid), Some(&lv));
        }
        let scan = |inv: &Inventory, origin: &str| -> Vec<String> {
            inv.lvs()
                .iter()
                .filter(|l| l.origin.as_deref() == Some(origin) && l.is_snapshot())
                .map(|l| l.name.clone())
                .collect()
        };
        let indexed = |inv: &Inventory, origin: &str| -> Vec<String> {
            inv.snapshots_of("vg0", origin)
                .map(|l| l.name.clone())
                .collect()
        };
        assert_eq!(indexed(&inv, "home"), scan(&inv, "home"));
        assert_eq!(inv.find("vg1", "home"), None);
        assert_eq!(inv.snapshots_of("vg1", "home").count(), 0);
        let gone = inv.find("vg0", "home_manual").unwrap().clone();
        inv.remove("vg0", "home_manual");
        assert_eq!(inv.find("vg0", "home_manual"), None);
        assert_eq!(inv.by_uuid(&gone.uuid), None);
        assert_eq!(indexed(&inv, "home"), vec!["home-lvsnap-20261128T060000Z"]);
        // What follows the removed volume is still found where it now is.
        for lv in inv.lvs().to_vec() {
            assert_eq!(inv.find(&lv.vg, &lv.name), Some(&lv));
        }
        // A volume reported twice (a cloned disk): the first is the one found, as before.
        let (mut lvs, vgs) = inv.into_parts();
        let mut twin = lvs[1].clone();
        twin.vg = "vg01".to_owned();
        twin.size += 1;
        lvs.push(twin);
        let mut same_name = lvs[0].clone();
        same_name.uuid = "other".to_owned();
        lvs.push(same_name);
        let inv = Inventory::new(lvs.clone(), vgs);
        assert_eq!(inv.by_uuid(&lvs[1].uuid), Some(&lvs[1]));
        assert_eq!(inv.find(&lvs[0].vg, &lvs[0].name), Some(&lvs[0]));
    }

    #[test]
    fn thin_snapshot_is_inactive_with_activation_skip() {
        let inv = fixture("thin-pool-with-snapshot.json");
        let snap = inv.find("vg0", "data-lvsnap-20261128T060000Z").unwrap();
        assert_eq!(snap.kind, LvKind::ThinSnapshot);
        assert_eq!(snap.pool.as_deref(), Some("pool"));
        assert!(snap.skip_activation && !snap.active);
        assert_eq!(inv.find("vg0", "data").unwrap().kind, LvKind::ThinVolume);
        let pool = inv.find("vg0", "pool").unwrap();
        assert_eq!(pool.kind, LvKind::ThinPool);
        assert!(pool.data_percent.unwrap() > 0.0 && pool.metadata_percent.unwrap() > 0.0);
        assert_eq!(inv.find("vg0", "pool_tdata").unwrap().kind, LvKind::Hidden);
        assert!(!inv.lv_names("vg0").contains(&"pool_tmeta"));
    }

    #[test]
    fn overflowed_thick_snapshot_is_invalid() {
        let inv = fixture("thick-snapshot-invalid.json");
        let snap = inv.find("vg0", "var-lvsnap-20261128T060000Z").unwrap();
        assert!(snap.invalid);
        assert_eq!(snap.data_percent, Some(100.0));
    }

    #[test]
    fn merging_snapshot_is_hidden_but_seen() {
        let inv = fixture("snapshot-merging.json");
        let snap = inv.find("vg0", "srv-lvsnap-20261128T060000Z").unwrap();
        assert_eq!(snap.kind, LvKind::ThickSnapshot);
        assert!(snap.merging);
        let origin = inv.find("vg0", "srv").unwrap();
        assert!(origin.merging && origin.open);
        assert_eq!(inv.snapshots_of("vg0", "srv").count(), 1);
    }

    #[test]
    fn fixtures_carry_every_field_lvsnap_asks_for() {
        for f in [
            "thick-origin-with-snapshot.json",
            "thin-pool-with-snapshot.json",
            "thick-snapshot-invalid.json",
            "snapshot-merging.json",
        ] {
            let text = std::fs::read_to_string(format!(
                "{}/tests/fixtures/lvm/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            for field in LVS_FIELDS.split(',') {
                assert!(
                    text.contains(&format!("\"{field}\":")),
                    "{f} lacks {field}: recapture with tests/vm/capture-fixtures.sh"
                );
            }
        }
    }

    #[test]
    fn broken_reports_are_errors_not_panics() {
        assert!(parse_lvs("").is_err());
        assert!(parse_lvs("{\"report\":[{\"lv\":[{}]}]}").is_err());
        let bad_size = std::fs::read_to_string(format!(
            "{}/tests/fixtures/lvm/thick-snapshot-invalid.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replace("\"lv_size\":\"134217728\"", "\"lv_size\":\"12x\"");
        assert!(parse_lvs(&bad_size)
            .unwrap_err()
            .to_string()
            .contains("lv_size = \"12x\""));
    }
}
