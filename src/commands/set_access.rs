//! Reading a snapshot set: `mount SET` (every member under one tree), `restore SET PATH…` (the
//! member whose origin holds the paths) and `diff SET [SET2]` (member by member).

use std::path::{Path, PathBuf};

use super::Ctx;
use crate::config::MountContext;
use crate::error::{exit, Error};
use crate::lvm::Inventory;
use crate::mount::{self, MountRequest};
use crate::reconcile::{Fleet, Managed};
use crate::run::Engine;

/// Whether `spec` names a snapshot set lvsnap manages.
pub(crate) fn is_set(fleet: &Fleet, spec: &str) -> bool {
    fleet
        .managed()
        .iter()
        .any(|m| m.record.set.as_deref() == Some(spec))
}

fn members<'f>(fleet: &'f Fleet, id: &str) -> Vec<&'f Managed> {
    fleet
        .managed()
        .iter()
        .filter(|m| m.record.set.as_deref() == Some(id))
        .collect()
}

/// Where each member's origin is mounted now, if it is.
fn origin_mounts<'f>(members: &[&'f Managed]) -> Vec<(&'f Managed, Option<PathBuf>)> {
    members
        .iter()
        .map(|m| (*m, mount::mount_point_of(&m.record.vg, &m.record.origin)))
        .collect()
}

/// The member of set `id` that holds `paths` (`VG/NAME`): the one whose origin's mount point
/// is the longest prefix of each (absolute) path; a set of one member holds every path.
///
/// # Errors
/// A path no member holds, or paths of several members.
pub(crate) fn member_for_paths(
    fleet: &Fleet,
    id: &str,
    paths: &[PathBuf],
) -> Result<String, Error> {
    let members = members(fleet, id);
    let name = |m: &Managed| format!("{}/{}", m.record.vg, m.record.name);
    if let [one] = members.as_slice() {
        return Ok(name(one));
    }
    let mounts = origin_mounts(&members);
    let known = mounts
        .iter()
        .map(|(m, at)| match at {
            Some(p) => format!("{}/{} on {}", m.record.vg, m.record.origin, p.display()),
            None => format!("{}/{} (not mounted)", m.record.vg, m.record.origin),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut chosen: Option<&Managed> = None;
    for p in paths {
        let holder = mounts
            .iter()
            .filter_map(|(m, at)| at.as_ref().map(|at| (*m, at)))
            .filter(|(_, at)| p.is_absolute() && p.starts_with(at))
            .max_by_key(|(_, at)| at.components().count())
            .map(|(m, _)| m);
        let Some(holder) = holder else {
            return Err(Error::Usage(format!(
                "{} is inside no member of set {id} (its members: {known}); write the path from the mount point of its member's origin, or name the member itself (`lvsnap list` shows it under the set)",
                crate::names::shown(p)
            )));
        };
        match chosen {
            Some(c) if c.record.id != holder.record.id => {
                return Err(Error::Usage(format!(
                    "the paths are in different members of set {id} ({} and {}): restore each member's paths with its own command",
                    name(c),
                    name(holder)
                )))
            }
            _ => chosen = Some(holder),
        }
    }
    chosen
        .map(name)
        .ok_or_else(|| Error::Usage("no path given".to_owned()))
}

/// The pairs `diff SET [SET2]` compares: each member of `old`, with the member of `new` of the
/// same origin (or the live origin, without `new`).
///
/// # Errors
/// `new` is no set, or lacks a member of one of `old`'s origins.
pub(crate) fn diff_pairs(
    fleet: &Fleet,
    old: &str,
    new: Option<&str>,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let name = |m: &Managed| format!("{}/{}", m.record.vg, m.record.name);
    let newer = match new {
        Some(n) if is_set(fleet, n) => Some(members(fleet, n)),
        Some(n) => {
            return Err(Error::Usage(format!(
                "{old} is a snapshot set, so the newer state must be one too ({n} is not); or leave it out to compare with the live origins"
            )))
        }
        None => None,
    };
    members(fleet, old)
        .into_iter()
        .map(|m| match &newer {
            None => Ok((name(m), None)),
            Some(ms) => ms
                .iter()
                .find(|x| x.record.vg == m.record.vg && x.record.origin == m.record.origin)
                .map(|x| (name(m), Some(name(x))))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "set {} has no member of {}/{}",
                        new.unwrap_or_default(),
                        m.record.vg,
                        m.record.origin
                    ))
                }),
        })
        .collect()
}

/// The first existing component of `at` below `root` that is a symbolic link (or no
/// directory), if any.
fn link_below(root: &Path, at: &Path) -> Option<PathBuf> {
    let rel = at.strip_prefix(root).ok()?;
    let mut here = root.to_path_buf();
    for c in rel.components() {
        here.push(c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => return Some(here),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// `lvsnap mount SET [DIR]`: every member read-only under DIR, each at its origin's mount point
/// (`DIR/var/lib/pgsql` for an origin on `/var/lib/pgsql`) or, for an origin not mounted, at
/// `DIR/VG/LV`; a member whose mount point lies inside another's is mounted after it.
///
/// # Errors
/// DIR is not empty, or a member cannot be mounted (the members mounted before it stay
/// mounted, and the message says how to unmount them).
pub(crate) fn mount_set(
    ctx: &mut Ctx<'_>,
    engine: &mut Engine<'_>,
    _inv: &Inventory,
    fleet: &Fleet,
    id: &str,
    dir: Option<&Path>,
    context: Option<&MountContext>,
) -> Result<i32, Error> {
    let members = members(fleet, id);
    let dir = dir
        .map(Path::to_owned)
        .unwrap_or_else(|| ctx.config.settings.runtime_dir.join("mnt").join(id));
    if dir.is_dir() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Usage(format!(
            "{} is not empty; mount the set on an empty directory",
            dir.display()
        )));
    }
    if let Some(m) = members
        .iter()
        .find(|m| m.lv.as_ref().is_some_and(|l| l.invalid))
    {
        return Err(Error::Usage(format!(
            "member {}/{} of set {id} is invalid (it overflowed): its data is lost",
            m.record.vg, m.record.name
        )));
    }
    let mut places: Vec<(&Managed, PathBuf)> = origin_mounts(&members)
        .into_iter()
        .map(|(m, at)| {
            let rel = match at {
                Some(p) if p != Path::new("/") => {
                    p.strip_prefix("/").map(Path::to_owned).unwrap_or(p)
                }
                Some(_) => PathBuf::new(),
                None => PathBuf::from(&m.record.vg).join(&m.record.origin),
            };
            (m, dir.join(rel))
        })
        .collect();
    places.sort_by_key(|(_, at)| at.components().count());
    for (m, at) in &places {
        // A member mounted inside another goes where that one's (read-only) content says: no
        // component below DIR may be a link, or a link taken into a snapshot could send the
        // mount anywhere (over /etc, say).
        if let Some(link) = link_below(&dir, at) {
            return Err(Error::Usage(format!(
                "member {}/{} would be mounted at {}, but {} is a symbolic link; nothing more was mounted (`lvsnap umount {id}` unmounts the members mounted so far; mount this member on its own with `lvsnap mount {}/{} DIR`)",
                m.record.vg,
                m.record.name,
                at.display(),
                link.display(),
                m.record.vg,
                m.record.name
            )));
        }
        let request = MountRequest {
            vg: &m.record.vg,
            lv: &m.record.name,
            activate: crate::restore::needs_activation(m),
            dir: at,
            purpose: "browse",
            backup_id: None,
            context: ctx.config.mount_context(context, &m.record.policy),
        };
        if let Err(e) = engine.mount_snapshot(&request) {
            return Err(Error::Usage(format!(
                "member {}/{} could not be mounted at {}: {e}; `lvsnap umount {id}` unmounts the members mounted before it",
                m.record.vg,
                m.record.name,
                at.display()
            )));
        }
        writeln!(
            ctx.out,
            "mounted {}/{} (of {}/{}) read-only at {}",
            m.record.vg,
            m.record.name,
            m.record.vg,
            m.record.origin,
            at.display()
        )?;
    }
    writeln!(
        ctx.out,
        "set {id} is mounted under {}; pruning leaves it alone while it is mounted; `lvsnap umount {id}` when done",
        dir.display()
    )?;
    Ok(exit::OK)
}
