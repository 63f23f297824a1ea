//! Backups through the CLI layer against the fake LVM: when `run` backs up, generation pruning,
//! refusals and failure paths. The fake mounts nothing, so each backup copies an empty tree;
//! what real mounts, filesystems and engines do is tested in the VM (backup-*.sh scenarios).

use crate::common::Host;
use lvsnap::catalog::BackupState;
use lvsnap::lvm::Tool;

/// vg0 with a thick `home` and a thin `data`, one policy per volume, and `backup` as the body
/// of `home`'s backup table (target: the host's `backup` directory).
fn host(backup: &str) -> Host {
    let h = Host::standard("");
    h.add_policies(&format!(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = {{ last = 48 }}\n\
         [policy.home.backup]\ntarget = \"{}/backup\"\n{backup}\n\n\
         [policy.data]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = {{ last = 48 }}\n",
        h.path()
    ));
    h
}

fn generations(h: &Host) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(h.dir.path().join("backup/vg0/home"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn run_backs_up_on_the_backup_schedule_and_prunes_generations() {
    let h = host("schedule = \"0 2 * * *\"\nkeep = { last = 2 }");
    let (code, out) = h.lvsnap(&["run"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "backup home vg0/home: wrote 20260302T010000Z from home-lvsnap-20260302T010000Z"
        ),
        "{out}"
    );
    let (_, out) = h.lvsnap(&["run"], "2026-03-02T01:30:00Z");
    assert!(
        out.contains("not due (the newest backup is from the current period)"),
        "{out}"
    );
    // 02:00 is the backup's next scheduled time: due again, with the 02:00 snapshot.
    let (_, out) = h.lvsnap(&["run"], "2026-03-02T02:00:00Z");
    assert!(out.contains("wrote 20260302T020000Z"), "{out}");
    let (_, out) = h.lvsnap(&["run"], "2026-03-03T02:00:00Z");
    assert!(out.contains("wrote 20260303T020000Z"), "{out}");
    assert!(
        out.contains("pruned vg0/home@20260302T010000Z (not among the 2 newest)"),
        "{out}"
    );
    assert_eq!(
        generations(&h),
        [
            "20260302T020000Z",
            "20260302T020000Z.manifest",
            "20260303T020000Z",
            "20260303T020000Z.manifest"
        ]
    );
    let states: Vec<BackupState> = h
        .catalog()
        .backups(None)
        .unwrap()
        .iter()
        .map(|b| b.state)
        .collect();
    assert_eq!(
        states,
        [
            BackupState::Removed,
            BackupState::Complete,
            BackupState::Complete
        ]
    );
    // Every mount was undone, every thin snapshot the backup activated deactivated again.
    assert!(h.catalog().open_mounts().unwrap().is_empty());
    let json = h.lvsnap(&["backups", "--json"], "2026-03-03T02:05:00Z").1;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{json}");
    assert_eq!(v[1]["backup"], "vg0/home@20260303T020000Z");
    assert_eq!(v[1]["state"], "complete");
}

#[test]
fn a_btrfs_volume_is_refused_and_nothing_is_left_mounted_or_created() {
    let h = host("schedule = \"0 2 * * *\"\nsource = \"fresh\"\nkeep = { last = 2 }");
    h.lvm.set_fs_type("btrfs");
    let (code, out) = h.lvsnap(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED: cannot mount vg0/home-lvsnap-20260302T010000Z: btrfs is refused"),
        "{out}"
    );
    assert!(h.lvm.mounts().is_empty(), "{:?}", h.lvm.mounts());
    // The temporary snapshot is removed again; the backup is recorded failed, with why.
    assert!(!h.lvm.names("vg0").iter().any(|n| n.contains("-lvsnap-")));
    let b = &h.catalog().backups(None).unwrap()[0];
    assert_eq!(b.state, BackupState::Failed);
    assert!(b.error.as_deref().unwrap().contains("btrfs is refused"));
    assert!(h.catalog().open_mounts().unwrap().is_empty());
    assert!(generations(&h).is_empty(), "{:?}", generations(&h));
}

#[test]
fn a_failing_mount_is_undone_and_recorded() {
    let h = host("schedule = \"0 2 * * *\"\nkeep = { last = 2 }");
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.lvm.fail_next(
        Tool::Mount,
        "home-lvsnap",
        32,
        "mount: /run/x: wrong fs type, bad option, bad superblock\n",
    );
    let (code, out) = h.lvsnap(&["backup", "home"], "2026-03-02T01:05:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong fs type"), "{out}");
    assert!(h.catalog().open_mounts().unwrap().is_empty());
    assert_eq!(
        h.catalog().backups(None).unwrap()[0].state,
        BackupState::Failed
    );
    // The snapshot was the policy's own: it stays.
    assert!(h
        .lvm
        .names("vg0")
        .contains(&"home-lvsnap-20260302T010000Z".to_owned()));
}

#[test]
fn a_thin_snapshot_is_activated_for_the_backup_and_deactivated_after() {
    let h = host("schedule = \"0 2 * * *\"\nkeep = { last = 2 }");
    // Back up the thin `data` volume: its policy gets the same backup table.
    h.add_policies(&format!(
        "[policy.data.backup]\ntarget = \"{}/backup\"\nschedule = \"0 2 * * *\"\nkeep = {{ last = 2 }}\n",
        h.path()
    ));
    h.lvsnap(&["snapshot", "data"], "2026-03-02T01:00:00Z");
    let (code, out) = h.lvsnap(&["backup", "data"], "2026-03-02T01:05:00Z");
    assert_eq!(code, 0, "{out}");
    let calls: Vec<String> = h
        .lvm
        .invocations()
        .into_iter()
        .filter(|c| c.starts_with("lvchange") || c.starts_with("blkid"))
        .collect();
    assert_eq!(
        calls,
        [
            "lvchange --activate y --ignoreactivationskip vg0/data-lvsnap-20260302T010000Z",
            "blkid -p -o value -s TYPE /dev/vg0/data-lvsnap-20260302T010000Z",
            "lvchange --activate n vg0/data-lvsnap-20260302T010000Z",
        ]
    );
}

#[test]
fn backup_verify_and_backups_explain_bad_requests() {
    let h = host("schedule = \"0 2 * * *\"\nkeep = { last = 2 }");
    let (code, out) = h.lvsnap(&["backup", "data"], "2026-03-02T01:00:00Z");
    assert_eq!((code, out.as_str()), (2, ""));
    let (code, _) = h.lvsnap(
        &["verify", "vg0/home@20260101T000000Z"],
        "2026-03-02T01:00:00Z",
    );
    assert_eq!(code, 2);
    let (code, out) = h.lvsnap(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 1, "no snapshot yet: {out}");
    assert!(
        out.contains("no snapshot of vg0/home to back up; take one with `lvsnap snapshot home`"),
        "{out}"
    );
    let (code, out) = h.lvsnap(&["backups"], "2026-03-02T01:00:00Z");
    assert_eq!(
        (code, out.trim()),
        (0, "no backups (--all shows failed and pruned ones)")
    );
    let (code, out) = h.lvsnap(&["verify", "--all"], "2026-03-02T01:00:00Z");
    assert_eq!((code, out.trim()), (0, "no backups to verify"));
}

#[test]
fn check_reports_a_late_backup() {
    let h = host("schedule = \"0 2 * * *\"\nkeep = { last = 2 }");
    h.lvsnap(&["run"], "2026-03-02T02:00:00Z");
    let (_, fresh) = h.lvsnap(&["check"], "2026-03-02T02:10:00Z");
    assert!(!fresh.contains("newest backup"), "{fresh}");
    assert!(fresh.contains("'home_vg0/home_backup_age'=600s"), "{fresh}");
    // Snapshots keep coming, the nightly backup does not: late after the thresholds' periods.
    for hour in ["2026-03-05T00:00:00Z", "2026-03-05T01:00:00Z"] {
        h.lvsnap(&["snapshot", "home"], hour);
    }
    let (code, late) = h.lvsnap(&["check"], "2026-03-05T01:10:00Z");
    assert_ne!(code, 0, "{late}");
    assert!(
        late.contains("home vg0/home: newest backup vg0/home@20260302T020000Z is"),
        "{late}"
    );
}

#[test]
fn a_temporary_snapshot_whose_removal_failed_is_listed_and_removed_by_the_next_run() {
    let h = host("schedule = \"0 2 * * *\"\nsource = \"fresh\"\nkeep = { last = 2 }");
    h.lvm.fail_next(
        Tool::Lvremove,
        "home-lvsnap",
        5,
        "  Logical volume vg0/home-lvsnap-20260302T010500Z contains a filesystem in use.\n",
    );
    let (code, out) = h.lvsnap(&["backup", "home"], "2026-03-02T01:05:00Z");
    assert_eq!(code, 0, "the backup itself is complete: {out}");
    assert!(
        out.contains("cannot remove the temporary snapshot"),
        "{out}"
    );
    let (_, list) = h.lvsnap(&["list"], "2026-03-02T01:06:00Z");
    assert!(
        list.contains("home-lvsnap-20260302T010500Z") && list.contains("temporary, for a backup"),
        "a leftover is never hidden: {list}"
    );
    let (code, out) = h.lvsnap(&["run"], "2026-03-02T01:10:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("removed the leftover temporary snapshot vg0/home-lvsnap-20260302T010500Z"),
        "{out}"
    );
    assert!(!h
        .lvm
        .names("vg0")
        .contains(&"home-lvsnap-20260302T010500Z".to_owned()));
}

#[test]
fn a_backup_mounts_its_snapshot_with_the_policys_mount_context() {
    let h = Host::standard("");
    h.add_policies(&format!(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = {{ last = 48 }}\n\
         mount-context = \"system_u:object_r:container_file_t:s0:c1,c2\"\n\
         [policy.home.backup]\ntarget = \"{}/backup\"\nschedule = \"0 2 * * *\"\nkeep = {{ last = 2 }}\n",
        h.path()
    ));
    let (code, out) = h.lvsnap(&["run"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 0, "{out}");
    let mounts: Vec<String> = h
        .lvm
        .invocations()
        .into_iter()
        .filter(|c| c.starts_with("mount "))
        .collect();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert!(
        mounts[0].starts_with(
            "mount -t ext4 -o ro,noload,context=\"system_u:object_r:container_file_t:s0:c1,c2\" /dev/vg0/home-lvsnap-20260302T010000Z "
        ),
        "{mounts:?}"
    );
}
