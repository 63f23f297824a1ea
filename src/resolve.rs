//! What an administrator names on the command line, found the same way by every command: a
//! snapshot by `NAME` or `VG/NAME`, a backup by `VG/LV@GENERATION`, `LV@GENERATION` or its
//! catalog id. A name that fits more than one is refused with every candidate listed — never
//! guessed: acting on the snapshot of the wrong volume group is the mistake this prevents.
//!
//! Every refusal is bad input ([`RunError::BadRequest`], exit 2): nothing has changed yet.

use crate::catalog::BackupRecord;
use crate::lvm::Inventory;
use crate::reconcile::{Fleet, Managed};
use crate::run::RunError;

/// Finds one of lvsnap's own snapshots by `NAME` or `VG/NAME`.
///
/// # Errors
/// No such snapshot, a name several volume groups share, or an LV that exists but is not
/// lvsnap's (each said as such, with what to do).
pub fn snapshot<'f>(
    fleet: &'f Fleet,
    inv: &Inventory,
    spec: &str,
) -> Result<&'f Managed, RunError> {
    let (vg, name) = split(spec);
    let fits = |v: &str, n: &str| n == name && vg.is_none_or(|want| want == v);
    let hits: Vec<&Managed> = fleet
        .managed()
        .iter()
        .filter(|m| fits(&m.record.vg, &m.record.name))
        .collect();
    let refused = |why: String| Err(RunError::BadRequest(why));
    match hits.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|m| format!("{}/{}", m.record.vg, m.record.name))
                .collect();
            return refused(format!(
                "{spec} names snapshots in {} volume groups: {}; write VG/NAME",
                names.len(),
                names.join(", ")
            ));
        }
    }
    if let Some(l) = fleet.strays.iter().find(|l| fits(&l.vg, &l.name)) {
        return refused(format!(
            "{} carries lvsnap's tag but is not in the catalog, so lvsnap will not touch it\n    hint: `lvsnap catalog rebuild` adopts it",
            l.path()
        ));
    }
    match inv.lvs().iter().find(|l| fits(&l.vg, &l.name)) {
        Some(l) if l.is_snapshot() => refused(format!(
            "{} is a snapshot lvsnap did not create (no lvsnap tag and catalog record); lvsnap never touches snapshots it did not create — mount it yourself read-only, or adopt lvsnap-tagged ones with `lvsnap catalog rebuild`",
            l.path()
        )),
        Some(l) => refused(format!("{} is not a snapshot", l.path())),
        None => {
            let names: Vec<String> = fleet
                .managed()
                .iter()
                .map(|m| format!("{}/{}", m.record.vg, m.record.name))
                .collect();
            refused(format!(
                "no snapshot named {spec:?} (lvsnap's snapshots: {}); see `lvsnap list`",
                list_or_none(&names)
            ))
        }
    }
}

/// [`snapshot`], for a command that reads it: an invalid (overflowed) snapshot is refused.
///
/// # Errors
/// As [`snapshot`], or the snapshot overflowed and its data is lost.
pub fn readable_snapshot<'f>(
    fleet: &'f Fleet,
    inv: &Inventory,
    spec: &str,
) -> Result<&'f Managed, RunError> {
    let m = snapshot(fleet, inv, spec)?;
    if m.lv.as_ref().is_some_and(|l| l.invalid) {
        return Err(RunError::BadRequest(format!(
            "snapshot {}/{} is invalid (it overflowed): its data is lost",
            m.record.vg, m.record.name
        )));
    }
    Ok(m)
}

/// Finds one usable (complete or partial) backup by `VG/LV@GENERATION`, `LV@GENERATION` or
/// catalog id, among `all`.
///
/// # Errors
/// No such backup (the ones that exist are listed), or `LV@GENERATION` fits backups of
/// several volume groups.
pub fn backup<'b>(all: &'b [BackupRecord], spec: &str) -> Result<&'b BackupRecord, RunError> {
    let usable = || all.iter().filter(|b| b.state.is_usable());
    let hits: Vec<&BackupRecord> = usable()
        .filter(|b| {
            b.label() == spec
                || format!("{}@{}", b.origin, b.name) == spec
                || b.id.to_string() == spec
        })
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => {
            let names: Vec<String> = usable().map(BackupRecord::label).collect();
            Err(RunError::BadRequest(format!(
                "no complete backup {spec:?} (backups: {}); names are VG/LV@GENERATION as `lvsnap backups` shows them",
                list_or_none(&names)
            )))
        }
        many => {
            let names: Vec<String> = many.iter().map(|b| b.label()).collect();
            Err(RunError::BadRequest(format!(
                "{spec} names backups of {} volumes: {}; write VG/LV@GENERATION",
                names.len(),
                names.join(", ")
            )))
        }
    }
}

fn split(spec: &str) -> (Option<&str>, &str) {
    spec.split_once('/')
        .map_or((None, spec), |(vg, name)| (Some(vg), name))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
