//! Reconciliation: before a run acts, the catalog is compared with the inventory. A snapshot
//! removed behind lvsnap's back becomes `vanished`; an intent a crash left open is resolved from
//! what LVM shows; a tagged LV without a record is reported and left alone. The result is the
//! set of snapshots lvsnap manages: tagged in LVM *and* recorded in the catalog.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::catalog::{Catalog, CatalogError, SnapshotRecord, State};
use crate::lvm::{Inventory, Lv};
use crate::plan::{Busy, SnapshotView};

/// lvsnap's ownership tag on every snapshot it creates.
pub const OWNER_TAG: &str = "lvsnap";
pub const POLICY_TAG: &str = "lvsnap-policy";
pub const TIME_TAG: &str = "lvsnap-time";
pub const PINNED_TAG: &str = "lvsnap-pinned";

/// A snapshot lvsnap manages, with what LVM says of it now (`None` if created in this run).
#[derive(Debug, Clone)]
pub struct Managed {
    pub record: SnapshotRecord,
    pub lv: Option<Lv>,
    /// Its newest replica on a replication target is (or may be) this snapshot's copy: the
    /// next increment is sent from it, so it stays until a newer one is replicated.
    pub replica_base: bool,
}

impl Managed {
    pub fn view(&self) -> SnapshotView {
        let lv = self.lv.as_ref();
        SnapshotView {
            name: self.record.name.clone(),
            time: self.record.time,
            pinned: self.record.pinned,
            invalid: lv.is_some_and(|l| l.invalid) || self.record.state == State::Invalid,
            busy: lv
                .and_then(|l| {
                    if l.merging {
                        Some(Busy::Merging)
                    } else if l.open {
                        Some(Busy::Mounted)
                    } else {
                        None
                    }
                })
                .or(self.replica_base.then_some(Busy::Replica)),
        }
    }

    pub fn is_valid(&self) -> bool {
        !self.view().invalid
    }
}

/// The managed snapshots and what reconciliation found.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Changed only through the methods below, which keep `groups` in step or forget it.
    managed: Vec<Managed>,
    /// Where each origin's snapshots are in `managed`, by (VG, origin): built when first asked
    /// for, so that a run over many groups looks each one up, not through every snapshot.
    groups: std::sync::OnceLock<HashMap<(String, String), Vec<usize>>>,
    /// LVs with lvsnap's tag but no catalog record: never touched, only reported.
    pub strays: Vec<Lv>,
    /// What reconciliation changed or noticed, for the report and the log.
    pub notes: Vec<String>,
}

impl Fleet {
    /// The managed snapshots of one origin volume that its schedule and keep rules govern
    /// (a backup's temporary snapshot is the backup's to remove).
    pub fn group<'a>(&'a self, vg: &'a str, origin: &'a str) -> impl Iterator<Item = &'a Managed> {
        let groups = self.groups.get_or_init(|| {
            let mut groups: HashMap<(String, String), Vec<usize>> = HashMap::new();
            for (i, m) in self.managed.iter().enumerate() {
                let key = (m.record.vg.clone(), m.record.origin.clone());
                groups.entry(key).or_default().push(i);
            }
            groups
        });
        groups
            .get(&(vg.to_owned(), origin.to_owned()))
            .into_iter()
            .flatten()
            .map(|&i| &self.managed[i])
            .filter(|m| !m.record.is_temporary())
    }

    /// Every managed snapshot, in the catalog's order and then as added.
    pub fn managed(&self) -> &[Managed] {
        &self.managed
    }

    /// The managed snapshots, to change in place.
    pub fn managed_mut(&mut self) -> &mut [Managed] {
        self.groups.take();
        &mut self.managed
    }

    /// Adds one snapshot; an index already built takes it in (a run adds one per group it
    /// snapshots, right after looking the group up).
    pub fn push(&mut self, m: Managed) {
        if let Some(groups) = self.groups.get_mut() {
            let key = (m.record.vg.clone(), m.record.origin.clone());
            groups.entry(key).or_default().push(self.managed.len());
        }
        self.managed.push(m);
    }

    pub fn retain(&mut self, keep: impl FnMut(&Managed) -> bool) {
        self.groups.take();
        self.managed.retain(keep);
    }

    /// Takes the snapshots from `at` on out of the fleet.
    pub fn split_off(&mut self, at: usize) -> Vec<Managed> {
        if let Some(groups) = self.groups.get_mut() {
            // Each group's positions ascend: those taken are at its end.
            for at_or_after in groups.values_mut() {
                at_or_after.truncate(at_or_after.partition_point(|&i| i < at));
            }
        }
        self.managed.split_off(at)
    }
}

/// Compares catalog and inventory; writes the outcome to the catalog unless `dry_run`.
///
/// # Errors
/// The catalog cannot be read or written.
pub fn reconcile(
    catalog: &Catalog,
    inv: &Inventory,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Fleet, CatalogError> {
    let mut fleet = Fleet::default();
    let set = |id: i64, state: State, reason: &str| -> Result<(), CatalogError> {
        if dry_run {
            Ok(())
        } else {
            catalog.set_state(id, state, Some(reason), now)
        }
    };
    let pending_rollbacks = catalog.rollbacks(true)?;
    for mut record in catalog.live_snapshots()? {
        let lv = match &record.uuid {
            Some(uuid) => inv.by_uuid(uuid),
            // Created but never seen by an inventory: bind it by name if it carries our tag.
            None => inv
                .find(&record.vg, &record.name)
                .filter(|lv| lv.has_tag(OWNER_TAG)),
        };
        let Some(lv) = lv else {
            // A name swap's snapshot is not merged away: its rollback is finished by resume.
            if let Some(rb) = pending_rollbacks
                .iter()
                .find(|r| r.snapshot_id == record.id && r.swap.is_none())
            {
                // The merge of a rollback finished: LVM removes the merged snapshot itself.
                let note = format!("merged into {}/{} (rollback completed)", rb.vg, rb.origin);
                if !dry_run {
                    catalog.set_state(record.id, State::Merged, Some(&note), now)?;
                    catalog.complete_rollback(rb.id, now)?;
                }
                fleet
                    .notes
                    .push(format!("snapshot {}/{} {note}", record.vg, record.name));
                continue;
            }
            let (state, note) = match record.state {
                State::Creating => (
                    State::Failed,
                    "was never created (interrupted before lvcreate finished)".to_owned(),
                ),
                // Why it was being removed (recorded with the intent) stays the reason.
                State::Removing => (
                    State::Removed,
                    match &record.reason {
                        Some(why) => format!("{why}; removal confirmed after an interruption"),
                        None => "removal confirmed after an interruption".to_owned(),
                    },
                ),
                _ => (
                    State::Vanished,
                    "vanished: removed outside lvsnap".to_owned(),
                ),
            };
            let note = note.as_str();
            set(record.id, state, note)?;
            fleet
                .notes
                .push(format!("snapshot {}/{} {note}", record.vg, record.name));
            continue;
        };
        if !lv.has_tag(OWNER_TAG) {
            set(
                record.id,
                State::Vanished,
                "lost its lvsnap tag; no longer managed",
            )?;
            fleet.notes.push(format!(
                "snapshot {} lost its lvsnap tag; lvsnap no longer manages it",
                lv.path()
            ));
            continue;
        }
        if record.uuid.is_none() && !dry_run {
            catalog.bind(record.id, &lv.uuid, lv.size)?;
        }
        record.uuid = Some(lv.uuid.clone());
        record.size = lv.size;
        let state = if lv.invalid {
            State::Invalid
        } else {
            State::Present
        };
        if record.state != state {
            let note = match record.state {
                State::Creating => "creation confirmed after an interruption",
                State::Removing => "still present: an interrupted removal did not happen",
                _ if lv.invalid => "became invalid: its copy-on-write space overflowed",
                _ => "is valid again",
            };
            set(record.id, state, note)?;
            fleet.notes.push(format!("snapshot {} {note}", lv.path()));
            record.state = state;
        }
        fleet.push(Managed {
            replica_base: false,
            record,
            lv: Some(lv.clone()),
        });
    }
    if !dry_run {
        for intent in catalog.open_intents()? {
            catalog.resolve(
                intent.id,
                "resolved from the inventory after an interruption",
                now,
            )?;
        }
    }
    let known: HashSet<&str> = fleet
        .managed()
        .iter()
        .filter_map(|m| m.record.uuid.as_deref())
        .collect();
    fleet.strays = inv
        .lvs()
        .iter()
        .filter(|lv| lv.has_tag(OWNER_TAG) && !known.contains(&lv.uuid.as_str()))
        .cloned()
        .collect();
    Ok(fleet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::NewSnapshot;

    fn managed(id: i64, origin: &str) -> Managed {
        let new = NewSnapshot {
            vg: "vg0",
            name: &format!("{origin}-{id}"),
            origin,
            policy: "p",
            time: Utc::now(),
            thin: true,
            size: 0,
            pinned: false,
            note: None,
            set: None,
        };
        Managed {
            replica_base: false,
            record: new.record(id),
            lv: None,
        }
    }

    fn ids(fleet: &Fleet, origin: &str) -> Vec<i64> {
        fleet.group("vg0", origin).map(|m| m.record.id).collect()
    }

    #[test]
    fn a_group_follows_every_change_to_the_fleet() {
        let mut fleet = Fleet::default();
        for (id, origin) in [(1, "a"), (2, "b"), (3, "a")] {
            fleet.push(managed(id, origin));
        }
        assert_eq!(ids(&fleet, "a"), [1, 3]);
        assert!(ids(&fleet, "c").is_empty());
        fleet.push(managed(4, "a"));
        assert_eq!(ids(&fleet, "a"), [1, 3, 4]);
        fleet.retain(|m| m.record.id != 3);
        assert_eq!(ids(&fleet, "a"), [1, 4]);
        fleet.managed_mut()[0].record.origin = "b".to_owned();
        assert_eq!((ids(&fleet, "a"), ids(&fleet, "b")), (vec![4], vec![1, 2]));
        let taken = fleet.split_off(2);
        assert_eq!(taken.len(), 1);
        assert!(ids(&fleet, "a").is_empty());
        // A backup's temporary snapshot is not its group's.
        let mut temporary = managed(5, "a");
        temporary.record.note = Some(crate::catalog::TEMPORARY_NOTE.to_owned());
        fleet.push(temporary);
        assert!(ids(&fleet, "a").is_empty());
    }
}
