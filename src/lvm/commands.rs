//! The argv of every LVM command lvsnap issues, in one place.

use super::{Invocation, Tool};

pub fn inventory() -> Invocation {
    Invocation::new(Tool::Lvs, super::report::lvs_args())
}

/// A thick snapshot of `extents` extents.
pub fn create_thick(
    vg: &str,
    origin: &str,
    name: &str,
    extents: u64,
    tags: &[String],
) -> Invocation {
    let mut args = vec![
        "--snapshot".to_owned(),
        "--extents".to_owned(),
        extents.to_string(),
        "--name".to_owned(),
        name.to_owned(),
    ];
    args.extend(tags.iter().flat_map(|t| ["--addtag".to_owned(), t.clone()]));
    args.push(format!("{vg}/{origin}"));
    Invocation::new(Tool::Lvcreate, args)
}

/// A thin snapshot: no size, it shares the origin's pool.
pub fn create_thin(vg: &str, origin: &str, name: &str, tags: &[String]) -> Invocation {
    let mut args = vec![
        "--snapshot".to_owned(),
        "--name".to_owned(),
        name.to_owned(),
    ];
    args.extend(tags.iter().flat_map(|t| ["--addtag".to_owned(), t.clone()]));
    args.push(format!("{vg}/{origin}"));
    Invocation::new(Tool::Lvcreate, args)
}

/// Removes one snapshot. `--yes` answers LVM's own question; lvsnap asked its own first.
pub fn remove(vg: &str, name: &str) -> Invocation {
    remove_all(vg, &[name])
}

/// Removes snapshots of one volume group in one command: LVM scans the devices and takes the
/// group's lock once, not once each. At one it cannot remove it exits non-zero, having removed
/// some of the others or not (lvm2 2.03.16 removed those before it in the group's metadata).
pub fn remove_all(vg: &str, names: &[&str]) -> Invocation {
    Invocation::new(
        Tool::Lvremove,
        std::iter::once("--yes".to_owned()).chain(names.iter().map(|n| format!("{vg}/{n}"))),
    )
}

pub fn extend(vg: &str, name: &str, extents: u64) -> Invocation {
    Invocation::new(
        Tool::Lvextend,
        [
            "--extents".to_owned(),
            format!("+{extents}"),
            format!("{vg}/{name}"),
        ],
    )
}

pub fn add_tag(vg: &str, name: &str, tag: &str) -> Invocation {
    Invocation::new(
        Tool::Lvchange,
        [
            "--addtag".to_owned(),
            tag.to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}

/// Activates an LV even when it carries LVM's activation-skip flag (thin snapshots do).
pub fn activate(vg: &str, name: &str) -> Invocation {
    Invocation::new(
        Tool::Lvchange,
        [
            "--activate".to_owned(),
            "y".to_owned(),
            "--ignoreactivationskip".to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}

/// Merges a snapshot into its origin. LVM waits for a merge it can start now (checking
/// every second rather than its default 15) and defers one whose origin is open.
pub fn merge(vg: &str, name: &str) -> Invocation {
    Invocation::new(
        Tool::Lvconvert,
        [
            "--merge".to_owned(),
            "--interval".to_owned(),
            "1".to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}

pub fn deactivate(vg: &str, name: &str) -> Invocation {
    Invocation::new(
        Tool::Lvchange,
        [
            "--activate".to_owned(),
            "n".to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}

/// The filesystem type on a device, probed directly (blkid's cache may not know a new LV).
pub fn fs_type(device: &str) -> Invocation {
    Invocation::new(Tool::Blkid, ["-p", "-o", "value", "-s", "TYPE", device])
}

pub fn mount(device: &str, dir: &str, fs_type: &str, options: &str) -> Invocation {
    Invocation::new(Tool::Mount, ["-t", fs_type, "-o", options, device, dir])
}

pub fn umount(dir: &str) -> Invocation {
    Invocation::new(Tool::Umount, [dir])
}

pub fn rename(vg: &str, from: &str, to: &str) -> Invocation {
    Invocation::new(Tool::Lvrename, [vg, from, to])
}

/// Tags added (`+tag`) and removed (`-tag`) in one call.
pub fn retag(vg: &str, name: &str, changes: &[(bool, String)]) -> Invocation {
    let mut args: Vec<String> = changes
        .iter()
        .flat_map(|(add, tag)| {
            [
                if *add { "--addtag" } else { "--deltag" }.to_owned(),
                tag.clone(),
            ]
        })
        .collect();
    args.push(format!("{vg}/{name}"));
    Invocation::new(Tool::Lvchange, args)
}

/// Clears LVM's activation-skip flag: a thin snapshot that becomes an origin must activate
/// at boot like any volume.
pub fn activate_at_boot(vg: &str, name: &str) -> Invocation {
    Invocation::new(
        Tool::Lvchange,
        [
            "--setactivationskip".to_owned(),
            "n".to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}

/// Sets LVM's activation-skip flag: the volume is not activated at boot (nor by `vgchange
/// -ay`) unless asked for by name with `-K`.
pub fn skip_at_boot(vg: &str, name: &str) -> Invocation {
    Invocation::new(
        Tool::Lvchange,
        [
            "--setactivationskip".to_owned(),
            "y".to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}

pub fn del_tag(vg: &str, name: &str, tag: &str) -> Invocation {
    Invocation::new(
        Tool::Lvchange,
        [
            "--deltag".to_owned(),
            tag.to_owned(),
            format!("{vg}/{name}"),
        ],
    )
}
