//! Restore commands through the CLI layer against the fake LVM: rollback's guard snapshot,
//! deferred merges shown as pending and recorded when they complete, and refusal of snapshots
//! lvsnap did not create. Copying real files out of real snapshots and backups is tested in
//! the VM (restore-files.sh, diff-rollback.sh).

use crate::common::{Host, GIB};
use clap::Parser;
use lvsnap::catalog::State;
use lvsnap::cli::Cli;
use lvsnap::lvm::fake::FakeLvm;
use lvsnap::lvm::Tool;

/// vg0 with a thick `home` and a thin `data`, one policy each.
fn host() -> Host {
    Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 10 }\n\
         [policy.data]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = { last = 10 }\n",
    )
}

#[test]
fn rollback_takes_a_pinned_guard_first_and_records_the_merge() {
    let h = host();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let (code, out) = h.lvsnap(
        &["rollback", "home-lvsnap-20260302T010000Z", "--yes"],
        "2026-03-02T03:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("guard snapshot vg0/home-lvsnap-20260302T030000Z taken (pinned"),
        "{out}"
    );
    assert!(
        out.contains("rolled back: vg0/home now holds what home-lvsnap-20260302T010000Z held"),
        "{out}"
    );
    assert_eq!(h.state_of("home-lvsnap-20260302T010000Z"), State::Merged);
    let guard = h.lvm.tags("vg0", "home-lvsnap-20260302T030000Z");
    assert!(guard.contains(&"lvsnap-pinned".to_owned()), "{guard:?}");
    let calls = h.lvm.invocations();
    let merge = calls
        .iter()
        .position(|c| c.starts_with("lvconvert --merge"))
        .unwrap();
    let guard_at = calls
        .iter()
        .position(|c| c.contains("--name home-lvsnap-20260302T030000Z"))
        .unwrap();
    assert!(
        guard_at < merge,
        "the guard snapshot comes first: {calls:?}"
    );
    let (_, hist) = h.lvsnap(&["catalog", "history"], "2026-03-02T03:01:00Z");
    assert!(hist.contains("rollback  vg0/home to home-lvsnap-20260302T010000Z (guard home-lvsnap-20260302T030000Z): completed"), "{hist}");
}

#[test]
fn a_deferred_merge_is_pending_until_the_origin_is_reactivated() {
    let h = host();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.lvm.set_open("vg0", "home", true);
    let (code, out) = h.lvsnap(
        &["rollback", "home-lvsnap-20260302T010000Z", "--yes"],
        "2026-03-02T03:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("vg0/home is in use: LVM will defer the merge"),
        "{out}"
    );
    assert!(out.contains("merge deferred"), "{out}");
    let (_, list) = h.lvsnap(&["list"], "2026-03-02T03:01:00Z");
    assert!(
        list.contains("rollback pending: merges into vg0/home at its next activation"),
        "{list}"
    );
    assert!(
        list.contains("PENDING until vg0/home is next activated"),
        "{list}"
    );
    let (_, status) = h.lvsnap(&["status"], "2026-03-02T03:01:00Z");
    assert!(
        status.contains("rollback  PENDING: home-lvsnap-20260302T010000Z merges into vg0/home"),
        "{status}"
    );
    // A second rollback of the same origin waits for the first.
    let (code, _) = h.lvsnap(
        &["rollback", "home-lvsnap-20260302T030000Z", "--yes"],
        "2026-03-02T03:02:00Z",
    );
    assert_eq!(code, 2);
    h.lvm.set_open("vg0", "home", false);
    h.lvm.reactivate("vg0", "home");
    let (_, list) = h.lvsnap(&["list"], "2026-03-02T04:00:00Z");
    assert!(!list.contains("PENDING"), "{list}");
    // The next writing command records it as merged, not as removed behind lvsnap's back.
    let (_, out) = h.lvsnap(&["prune"], "2026-03-02T04:00:00Z");
    assert!(
        out.contains("home-lvsnap-20260302T010000Z merged into vg0/home (rollback completed)"),
        "{out}"
    );
    assert_eq!(h.state_of("home-lvsnap-20260302T010000Z"), State::Merged);
}

#[test]
fn rollback_without_a_terminal_needs_yes() {
    let h = host();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let (code, _) = h.lvsnap(
        &["rollback", "home-lvsnap-20260302T010000Z"],
        "2026-03-02T03:00:00Z",
    );
    assert_eq!(code, 2);
    assert!(!h
        .lvm
        .invocations()
        .iter()
        .any(|c| c.starts_with("lvconvert")));
    let snapshots = h
        .lvm
        .names("vg0")
        .into_iter()
        .filter(|n| n.contains("-lvsnap-"))
        .count();
    assert_eq!(snapshots, 1, "no guard snapshot either");
}

#[test]
fn snapshots_lvsnap_did_not_create_are_refused_by_every_restore_command() {
    let h = host();
    h.lvm.add_snapshot(
        "vg0",
        "home",
        "manual",
        &[],
        "2026-03-01T00:00:00Z".parse().unwrap(),
    );
    let to = h.dir.path().join("r").display().to_string();
    for args in [
        vec!["mount", "manual"],
        vec!["restore", "manual", "etc", "--to", &to],
        vec!["diff", "manual"],
        vec!["rollback", "manual", "--yes"],
    ] {
        let (code, out) = h.lvsnap(&args, "2026-03-02T01:00:00Z");
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
    }
    assert!(h.lvm.mounts().is_empty());
    assert!(!h
        .lvm
        .invocations()
        .iter()
        .any(|c| c.starts_with("lvconvert") || c.starts_with("lvcreate")));
    assert!(!std::path::Path::new(&to).exists());
}

#[test]
fn a_thin_rollback_can_be_undone_through_its_detached_guard() {
    let h = host();
    h.lvsnap(&["snapshot", "data"], "2026-03-02T01:00:00Z");
    let (code, out) = h.lvsnap(
        &["rollback", "data-lvsnap-20260302T010000Z", "--yes"],
        "2026-03-02T03:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
    // LVM detached the guard from vg0/data when it merged the snapshot: it is swapped in.
    let (code, out) = h.lvsnap(
        &["rollback", "data-lvsnap-20260302T030000Z", "--yes"],
        "2026-03-02T04:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "vg0/data as it is now becomes the guard snapshot data-lvsnap-20260302T040000Z"
        ),
        "{out}"
    );
    let calls: Vec<String> = h
        .lvm
        .invocations()
        .into_iter()
        .filter(|c| c.starts_with("lvrename") || c.contains("setactivationskip"))
        .collect();
    assert_eq!(
        calls,
        [
            "lvrename vg0 data data-lvsnap-20260302T040000Z",
            "lvrename vg0 data-lvsnap-20260302T030000Z data",
            "lvchange --setactivationskip n vg0/data",
            // The guard shares the new origin's filesystem UUID: never activated at boot.
            "lvchange --setactivationskip y vg0/data-lvsnap-20260302T040000Z",
        ]
    );
    assert!(
        h.lvm.tags("vg0", "data").is_empty(),
        "the new origin carries no lvsnap tag"
    );
    assert!(h
        .lvm
        .tags("vg0", "data-lvsnap-20260302T040000Z")
        .contains(&"lvsnap-pinned".to_owned()));
    assert_eq!(h.state_of("data-lvsnap-20260302T030000Z"), State::Merged);
    // The new guard is managed: the next run sees it, nothing is unmanaged.
    let (_, list) = h.lvsnap(&["list", "--json"], "2026-03-02T04:01:00Z");
    assert!(
        list.contains("\"name\":\"data-lvsnap-20260302T040000Z\""),
        "{list}"
    );
    assert!(list.contains("\"unmanaged\":[]"), "{list}");
    // And back: the guard, itself once the origin, is swapped in the same way and adopted.
    let (code, out) = h.lvsnap(
        &["rollback", "data-lvsnap-20260302T040000Z", "--yes"],
        "2026-03-02T05:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
    let (_, list) = h.lvsnap(&["list", "--json"], "2026-03-02T05:01:00Z");
    assert!(
        list.contains("\"name\":\"data-lvsnap-20260302T050000Z\""),
        "{list}"
    );
    assert!(list.contains("\"unmanaged\":[]"), "{list}");
}

#[test]
fn a_browse_mount_a_reboot_took_away_is_released_by_the_next_run() {
    let h = host();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let dir = h.dir.path().join("browse").display().to_string();
    let (code, out) = h.lvsnap(
        &["mount", "home-lvsnap-20260302T010000Z", &dir],
        "2026-03-02T01:05:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.catalog().open_mounts().unwrap().len(), 1);
    // The fake mounts nothing: to the next run this is a mount point a reboot emptied.
    let (_, out) = h.lvsnap(&["run"], "2026-03-02T02:00:00Z");
    assert!(
        out.contains(&format!(
            "undid a leftover mount of vg0/home-lvsnap-20260302T010000Z at {dir}"
        )),
        "{out}"
    );
    assert!(h.catalog().open_mounts().unwrap().is_empty());
}

/// A host whose `home` backs up with `engine` into the host's `backup` directory, one backup
/// taken; returns it with the backup's `VG/LV@GEN` and its data path (a generation directory or
/// an archive), which the test then fills with what a hostile user left in the volume.
fn backed_up(engine: &str) -> (Host, String, std::path::PathBuf) {
    let h = host();
    h.add_policies(&format!(
        "[policy.home.backup]\nschedule = \"0 2 * * *\"\nengine = \"{engine}\"\ntarget = \"{}/backup\"\nkeep = {{ last = 5 }}\n",
        h.path()
    ));
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let (code, out) = h.lvsnap(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 0, "{out}");
    let gen = out
        .split(" wrote ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let dir = h.dir.path().join("backup/vg0/home");
    let data = match engine {
        "rsync" => dir.join(&gen),
        _ => dir.join(format!("{gen}.tar.zst")),
    };
    (h, format!("vg0/home@{gen}"), data)
}

/// What a user can leave in their home: links out, odd names, a thrice-linked file.
fn hostile_tree(root: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    std::fs::create_dir_all(root.join("alice/real")).unwrap();
    std::fs::write(root.join("alice/real/file"), "alice's file\n").unwrap();
    std::os::unix::fs::symlink("/etc", root.join("alice/docs")).unwrap();
    std::fs::create_dir_all(root.join("odd")).unwrap();
    for n in [&b"new\nline"[..], b"esc\x1b[2Jape", b"bad\xffbyte"] {
        std::fs::write(root.join("odd").join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    std::fs::create_dir_all(root.join("hl")).unwrap();
    std::fs::write(root.join("hl/a"), "shared\n").unwrap();
    std::fs::hard_link(root.join("hl/a"), root.join("hl/b")).unwrap();
    std::fs::hard_link(root.join("hl/a"), root.join("hl/c")).unwrap();
}

/// Fills a backup's data with [`hostile_tree`]: the generation directory itself, or an archive
/// GNU tar writes as the archive engine does.
fn plant(engine: &str, data: &std::path::Path) {
    if engine == "rsync" {
        hostile_tree(data);
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    hostile_tree(tree.path());
    write_archive(data, tree.path());
}

/// An archive of `tree` written as the archive engine writes one (GNU tar, zstd).
fn write_archive(archive: &std::path::Path, tree: &std::path::Path) {
    let ok = std::process::Command::new("tar")
        .args(["--create", "--zstd", "--numeric-owner", "--file"])
        .arg(archive)
        .arg("--directory")
        .arg(tree)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "GNU tar wrote the archive");
}

const LATER: &str = "2026-03-02T02:00:00Z";

#[test]
fn a_restore_through_a_planted_link_is_refused_from_both_kinds_of_backup() {
    for engine in ["rsync", "archive"] {
        let (h, gen, data) = backed_up(engine);
        plant(engine, &data);
        let to = format!("{}/out", h.path());
        for dry in [&[][..], &["--dry-run"]] {
            let mut args = vec!["restore", &gen, "alice/docs/shadow", "--to", &to];
            args.extend_from_slice(dry);
            let (code, out) = h.lvsnap(&args, LATER);
            assert_eq!(code, 2, "{engine} {dry:?}: {out}");
        }
        assert!(!std::path::Path::new(&to).join("alice/docs/shadow").exists());
        let (code, out) = h.lvsnap(&["restore", &gen, "alice", "--to", &to], LATER);
        assert_eq!(code, 0, "{engine}: {out}");
        let link = std::path::Path::new(&to).join("alice/docs");
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            std::path::Path::new("/etc")
        );
    }
}

#[test]
fn hostile_names_are_escaped_in_text_exact_in_json_and_restore_by_their_bytes() {
    use std::os::unix::ffi::OsStrExt;
    for engine in ["rsync", "archive"] {
        let (h, gen, data) = backed_up(engine);
        plant(engine, &data);
        let to = format!("{}/odd-{engine}", h.path());
        let (code, out) = h.lvsnap(&["restore", &gen, "odd", "--to", &to, "--dry-run"], LATER);
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains('\x1b'), "{out}");
        for shown in [
            "$'odd/new\\nline'",
            "$'odd/esc\\e[2Jape'",
            "$'odd/bad\\xffbyte'",
        ] {
            assert!(
                out.lines().any(|l| l == format!("  {shown}")),
                "{shown} in {out}"
            );
        }
        let (_, json) = h.lvsnap(
            &["restore", &gen, "odd", "--to", &to, "--dry-run", "--json"],
            LATER,
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let paths: Vec<&serde_json::Value> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["path"])
            .collect();
        assert!(
            paths.contains(&&serde_json::json!("odd/new\nline")),
            "{json}"
        );
        assert!(
            paths.contains(&&serde_json::json!({"hex": "6f64642f626164ff62797465"})),
            "{json}"
        );
        for n in [&b"new\nline"[..], b"esc\x1b[2Jape", b"bad\xffbyte"] {
            let mut rel = b"odd/".to_vec();
            rel.extend_from_slice(n);
            let rel = std::ffi::OsStr::from_bytes(&rel);
            let args = [
                std::ffi::OsStr::new("restore"),
                std::ffi::OsStr::new(&gen),
                rel,
                "--to".as_ref(),
                to.as_ref(),
            ];
            let (code, out) = h.lvsnap_os(&args, LATER);
            assert_eq!(code, 0, "{engine}: {out}");
            assert_eq!(
                std::fs::read(std::path::Path::new(&to).join(rel)).unwrap(),
                n
            );
        }
    }
}

#[test]
fn one_name_of_a_hard_linked_file_and_overlapping_paths_restore_from_an_archive() {
    let (h, gen, data) = backed_up("archive");
    plant("archive", &data);
    let to = format!("{}/hl", h.path());
    let (code, out) = h.lvsnap(&["restore", &gen, "hl/c", "--to", &to], LATER);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(format!("{to}/hl/c")).unwrap(),
        "shared\n"
    );
    let to2 = format!("{}/overlap", h.path());
    let (code, out) = h.lvsnap(
        &[
            "restore",
            &gen,
            "alice",
            "alice/real/file",
            "hl/b",
            "hl/c",
            "--to",
            &to2,
        ],
        LATER,
    );
    assert_eq!(code, 0, "{out}");
    use std::os::unix::fs::MetadataExt;
    let ino = |n: &str| std::fs::metadata(format!("{to2}/hl/{n}")).unwrap().ino();
    assert_eq!(
        ino("b"),
        ino("c"),
        "restored together, the two names stay one file"
    );
    // The whole volume: the staging directory stays root's and private, and goes.
    let to3 = format!("{}/all", h.path());
    let (code, out) = h.lvsnap(&["restore", &gen, "/", "--to", &to3], LATER);
    assert_eq!(code, 0, "{out}");
    assert!(std::path::Path::new(&to3).join("alice/real/file").exists());
    let left: Vec<_> = std::fs::read_dir(&to3)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lvsnap"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_destination_that_is_a_link_or_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (h, gen, data) = backed_up("rsync");
    plant("rsync", &data);
    let p = h.path();
    std::fs::create_dir(format!("{p}/real")).unwrap();
    std::os::unix::fs::symlink(format!("{p}/real"), format!("{p}/link")).unwrap();
    let (code, out) = h.lvsnap(
        &["restore", &gen, "alice", "--to", &format!("{p}/link")],
        LATER,
    );
    assert_eq!(code, 2, "{out}");
    std::fs::create_dir(format!("{p}/shared")).unwrap();
    std::fs::set_permissions(
        format!("{p}/shared"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let (code, out) = h.lvsnap(
        &["restore", &gen, "alice", "--to", &format!("{p}/shared")],
        LATER,
    );
    assert_eq!(code, 2, "{out}");
    std::fs::create_dir(format!("{p}/users")).unwrap();
    std::os::unix::fs::chown(format!("{p}/users"), Some(2000), Some(2000)).unwrap();
    let (code, out) = h.lvsnap(
        &["restore", &gen, "alice", "--to", &format!("{p}/users")],
        LATER,
    );
    assert_eq!(code, 2, "{out}");
    assert_eq!(std::fs::read_dir(format!("{p}/real")).unwrap().count(), 0);
}

#[test]
fn a_truncated_catalog_is_a_clear_state_and_rebuild_recovers_snapshots_and_backups() {
    let (h, gen, data) = backed_up("rsync");
    plant("rsync", &data);
    let db = h.dir.path().join("catalog.db");
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);

    let (code, out) = h.lvsnap(&["list"], LATER);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is damaged"), "{out}");
    assert!(
        out.contains("home-lvsnap-20260302T010000Z"),
        "LVM still shows the snapshot: {out}"
    );
    let (code, out) = h.lvsnap(&["check"], LATER);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("LVSNAP CRITICAL - catalog"), "{out}");
    let (code, out) = h.lvsnap(&["run"], LATER);
    assert_eq!(code, 2, "a writing command refuses: {out}");
    assert_eq!(
        h.lvm
            .invocations()
            .iter()
            .filter(|c| c.starts_with("lvcreate"))
            .count(),
        1
    );

    let (code, out) = h.lvsnap(&["catalog", "rebuild"], LATER);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("set the damaged catalog aside as"), "{out}");
    assert!(
        out.contains("adopted vg0/home-lvsnap-20260302T010000Z"),
        "{out}"
    );
    assert!(
        out.contains(&format!("adopted backup {gen} (rsync")),
        "{out}"
    );
    let (code, out) = h.lvsnap(&["backups"], LATER);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(gen.split('@').nth(1).unwrap()), "{out}");
    let to = format!("{}/after-rebuild", h.path());
    let (code, out) = h.lvsnap(&["restore", &gen, "alice/real/file", "--to", &to], LATER);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(format!("{to}/alice/real/file")).unwrap(),
        "alice's file\n"
    );
    // The adopted generation counts as the snapshot's backup.
    let (_, out) = h.lvsnap(&["backup", "home"], LATER);
    assert!(out.contains("is already backed up"), "{out}");
}

#[test]
fn a_backup_never_writes_over_a_generation_the_catalog_does_not_know() {
    let h = host();
    h.add_policies(&format!(
        "[policy.home.backup]\nschedule = \"0 2 * * *\"\nengine = \"rsync\"\ntarget = \"{}/backup\"\nkeep = {{ last = 5 }}\n",
        h.path()
    ));
    let old = h.dir.path().join("backup/vg0/home/20260302T010000Z");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("kept"), "from before the catalog was lost\n").unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let (code, out) = h.lvsnap(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrote 20260302T010000Z-1 from"), "{out}");
    assert_eq!(
        std::fs::read_to_string(old.join("kept")).unwrap(),
        "from before the catalog was lost\n"
    );
}

#[test]
fn a_dry_run_from_an_archive_plans_on_its_outline_and_writes_no_data() {
    let (h, gen, data) = backed_up("archive");
    let tree = tempfile::tempdir().unwrap();
    hostile_tree(tree.path());
    std::fs::write(tree.path().join("alice/real/big"), vec![7u8; 3 << 20]).unwrap();
    write_archive(&data, tree.path());
    let (code, out) = h.lvsnap(
        &["restore", &gen, "/", "--to", "/nonexistent/x", "--dry-run"],
        LATER,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  alice/real/big\n"), "{out}");
    assert!(
        out.contains("  alice/docs\n"),
        "the link is listed as itself: {out}"
    );
    assert!(out.contains(", 3.0 MiB;"), "{out}");
    // Nothing of the staging is left in the state directory.
    let left: Vec<_> = std::fs::read_dir(h.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lvsnap-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!std::path::Path::new("/nonexistent/x").exists());
}

/// A thin swap stopped at any of its steps (here a failing LVM command; in the VM a `kill -9`)
/// is finished by `rollback --resume` or the next `run`, which say so; the end state is the one
/// an uninterrupted swap leaves.
#[test]
fn an_interrupted_thin_swap_is_finished_by_resume_or_the_next_run() {
    // (step number, the LVM command it runs); step 6 (activate) is not needed by the fake,
    // whose renamed snapshot is active already.
    let steps = [
        (1, Tool::Lvrename, "data data-lvsnap"),
        (2, Tool::Lvchange, "--addtag"),
        (3, Tool::Lvrename, "030000Z data"),
        (4, Tool::Lvchange, "--deltag"),
        (5, Tool::Lvchange, "setactivationskip n"),
        (7, Tool::Lvchange, "--activate n"),
        (8, Tool::Lvchange, "setactivationskip y"),
    ];
    for (i, (number, tool, matching)) in steps.into_iter().enumerate() {
        let h = host();
        h.lvsnap(&["snapshot", "data"], "2026-03-02T01:00:00Z");
        let (code, out) = h.lvsnap(
            &["rollback", "data-lvsnap-20260302T010000Z", "--yes"],
            "2026-03-02T03:00:00Z",
        );
        assert_eq!(code, 0, "{out}");
        h.lvm.fail_next(tool, matching, 5, "  Interrupted.");
        let (code, out) = h.lvsnap(
            &["rollback", "data-lvsnap-20260302T030000Z", "--yes"],
            "2026-03-02T04:00:00Z",
        );
        assert_eq!(code, 2, "step {i}: {out}");
        let pending = h.catalog().rollbacks(true).unwrap();
        let journal = pending[0].swap.as_ref().expect("a journal");
        assert_eq!(journal.step, number, "the intent of the step that failed");
        let (code, out) = h.lvsnap(
            &["rollback", "data-lvsnap-20260302T010000Z", "--yes"],
            "2026-03-02T04:01:00Z",
        );
        assert_eq!(
            code, 2,
            "another rollback waits for the interrupted one: {out}"
        );
        let (code, out) = if i % 2 == 0 {
            h.lvsnap(&["rollback", "--resume"], "2026-03-02T04:02:00Z")
        } else {
            h.lvsnap(&["run"], "2026-03-02T04:02:00Z")
        };
        assert_eq!(code, 0, "step {i}: {out}");
        if i == 0 {
            assert!(
                out.contains("before it changed anything"),
                "step {i}: {out}"
            );
            assert!(h.lvm.names("vg0").contains(&"data".to_owned()));
            continue;
        }
        assert!(
            out.contains(
                "finished the interrupted rollback of vg0/data to data-lvsnap-20260302T030000Z"
            ),
            "step {i}: {out}"
        );
        assert!(h.lvm.tags("vg0", "data").is_empty(), "step {i}");
        assert!(h
            .lvm
            .tags("vg0", "data-lvsnap-20260302T040000Z")
            .contains(&"lvsnap-pinned".to_owned()));
        assert_eq!(h.state_of("data-lvsnap-20260302T030000Z"), State::Merged);
        let (_, list) = h.lvsnap(&["list", "--json"], "2026-03-02T04:05:00Z");
        assert!(list.contains("\"unmanaged\":[]"), "step {i}: {list}");
        let (_, again) = h.lvsnap(&["rollback", "--resume"], "2026-03-02T04:06:00Z");
        assert!(again.contains("no interrupted rollback"), "{again}");
    }
}

/// A thick guard holds everything the merge writes: the merged snapshot's used copy-on-write
/// space plus margin, above the policy's size; other thick snapshots that could overflow are
/// named; without the room, the rollback is refused before anything changes, with the size.
#[test]
fn a_thick_guard_is_sized_to_what_the_merge_writes() {
    let lvm = FakeLvm::new();
    lvm.add_vg("vg0", 8 * GIB).add_lv("vg0", "home", GIB);
    let h = Host::new(
        lvm,
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 10 }\n",
    );
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.lvsnap(&["snapshot", "home"], "2026-03-02T02:00:00Z");
    h.lvm
        .set_fill("vg0", "home-lvsnap-20260302T010000Z", 80.0, 0.0);
    h.lvm
        .set_fill("vg0", "home-lvsnap-20260302T020000Z", 50.0, 0.0);
    let (code, out) = h.lvsnap(
        &["rollback", "home-lvsnap-20260302T010000Z", "--yes"],
        "2026-03-02T03:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(at least 10.5 MiB: the merge writes up to 6.4 MiB"),
        "{out}"
    );
    assert!(
        out.contains(
            "warning: vg0/home-lvsnap-20260302T020000Z has 4.0 MiB of copy-on-write space left"
        ),
        "{out}"
    );
    assert_eq!(
        h.lvm.extents("vg0", "home-lvsnap-20260302T030000Z"),
        Some(3),
        "12 MiB (3 extents of 4 MiB), not the policy's 8 MiB"
    );

    let lvm = FakeLvm::new();
    lvm.add_vg("vg0", 96 << 20).add_lv("vg0", "home", 64 << 20);
    let h = Host::new(
        lvm,
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"20M\"\nkeep = { last = 10 }\n",
    );
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.lvm
        .set_fill("vg0", "home-lvsnap-20260302T010000Z", 80.0, 0.0);
    let before = h.lvm.invocations().len();
    let (code, _) = h.lvsnap(
        &["rollback", "home-lvsnap-20260302T010000Z", "--yes"],
        "2026-03-02T03:00:00Z",
    );
    assert_eq!(code, 2, "refused");
    assert!(
        !h.lvm.invocations()[before..]
            .iter()
            .any(|c| c.starts_with("lvcreate") || c.starts_with("lvconvert")),
        "nothing changed"
    );
    assert!(h.catalog().rollbacks(false).unwrap().is_empty());
}

/// A swap that cannot go on (its snapshot deleted by hand half-way) is never taken for done:
/// `list` leaves it pending, `run` and `--resume` fail and say how to finish or forget it,
/// and `--resume --abandon` forgets it.
#[test]
fn a_swap_that_cannot_go_on_stays_pending_until_abandoned() {
    let h = host();
    h.lvsnap(&["snapshot", "data"], "2026-03-02T01:00:00Z");
    h.lvsnap(
        &["rollback", "data-lvsnap-20260302T010000Z", "--yes"],
        "2026-03-02T03:00:00Z",
    );
    h.lvm
        .fail_next(Tool::Lvchange, "--addtag", 5, "  Interrupted.");
    let (code, _) = h.lvsnap(
        &["rollback", "data-lvsnap-20260302T030000Z", "--yes"],
        "2026-03-02T04:00:00Z",
    );
    assert_eq!(code, 2);
    h.lvm
        .remove_behind_back("vg0", "data-lvsnap-20260302T030000Z");
    h.lvsnap(&["list"], "2026-03-02T04:01:00Z");
    assert_eq!(
        h.catalog().rollbacks(true).unwrap().len(),
        1,
        "still pending"
    );
    let (code, out) = h.lvsnap(&["rollback", "--resume"], "2026-03-02T04:02:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot go on"), "{out}");
    assert!(out.contains("--resume --abandon"), "{out}");
    let (code, out) = h.lvsnap(&["run"], "2026-03-02T04:03:00Z");
    assert_eq!(code, 1, "{out}");
    let (code, out) = h.lvsnap(&["check"], "2026-03-02T04:03:30Z");
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("LVSNAP CRITICAL - the rollback of vg0/data to data-lvsnap-20260302T030000Z was interrupted"), "{out}");
    let (code, out) = h.lvsnap(
        &["rollback", "--resume", "--abandon"],
        "2026-03-02T04:04:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("forgot the interrupted rollback"), "{out}");
    let (_, out) = h.lvsnap(&["rollback", "--resume"], "2026-03-02T04:05:00Z");
    assert!(out.contains("no interrupted rollback"), "{out}");
}

/// Two volume groups each hold `home` and one policy snapshots and backs up both, so a bare
/// snapshot name or `LV@GENERATION` fits two things. Every command that takes one refuses it
/// as bad input with both candidates listed, and changes nothing; `VG/NAME` is taken.
#[test]
fn a_name_two_volume_groups_share_is_refused_with_the_candidates() {
    let lvm = FakeLvm::new();
    lvm.add_vg("vg0", 8 * GIB)
        .add_lv("vg0", "home", GIB)
        .add_vg("vg1", 8 * GIB)
        .add_lv("vg1", "home", GIB);
    let h = Host::new(lvm, "");
    h.add_policies(&format!(
        "[policy.home]\nvolumes = [\"vg0/home\", \"vg1/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = {{ last = 10 }}\n\
         [policy.home.backup]\nschedule = \"0 2 * * *\"\ntarget = \"{}/backup\"\nkeep = {{ last = 5 }}\n",
        h.path()
    ));
    let r = h.run(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    let r = h.run(&["backup", "home"], "2026-03-02T01:10:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    let name = "home-lvsnap-20260302T010000Z";
    let backup = "home@20260302T010000Z";
    let to = h.dir.path().join("restored");
    let to = to.to_str().unwrap();
    let before = h.lvm.invocations().len();
    for args in [
        vec!["restore", name, "etc", "--to", to],
        vec!["mount", name],
        vec!["diff", name],
        vec!["rollback", name, "--yes"],
        vec!["pin", name],
        vec!["unpin", name],
    ] {
        let r = h.run(&args, "2026-03-02T02:00:00Z");
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.err.contains(&format!(
                "{name} names snapshots in 2 volume groups: vg0/{name}, vg1/{name}; write VG/NAME"
            )),
            "{args:?}: {r:?}"
        );
    }
    for args in [
        vec!["verify", backup],
        vec!["restore", backup, "etc", "--to", to],
    ] {
        let r = h.run(&args, "2026-03-02T02:00:00Z");
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.err.contains(&format!(
                "{backup} names backups of 2 volumes: vg0/{backup}, vg1/{backup}; write VG/LV@GENERATION"
            )),
            "{args:?}: {r:?}"
        );
    }
    let changed: Vec<String> = h.lvm.invocations()[before..]
        .iter()
        .filter(|c| !c.starts_with("lvs") && !c.starts_with("vgs"))
        .cloned()
        .collect();
    assert!(changed.is_empty(), "nothing was changed: {changed:?}");
    assert!(!std::path::Path::new(to).exists(), "nothing was restored");
    let (code, out) = h.lvsnap(&["pin", &format!("vg1/{name}")], "2026-03-02T02:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(h
        .lvm
        .tags("vg1", name)
        .contains(&"lvsnap-pinned".to_owned()));
    assert!(!h
        .lvm
        .tags("vg0", name)
        .contains(&"lvsnap-pinned".to_owned()));
}

/// The `mount` invocations the fake saw, from the `n`th on.
fn mount_calls(h: &Host, from: usize) -> Vec<String> {
    h.lvm.invocations()[from..]
        .iter()
        .filter(|c| c.starts_with("mount "))
        .cloned()
        .collect()
}

#[test]
fn a_browse_mount_carries_the_policys_mount_context_or_the_commands() {
    let h = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 10 }\n\
         mount-context = \"system_u:object_r:container_file_t:s0\"\n",
    );
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let snap = "home-lvsnap-20260302T010000Z";
    let dir = h.dir.path().join("browse").display().to_string();
    let before = h.lvm.invocations().len();
    let (code, out) = h.lvsnap(&["mount", snap, &dir], "2026-03-02T01:05:00Z");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        mount_calls(&h, before),
        [format!("mount -t ext4 -o ro,noload,context=\"system_u:object_r:container_file_t:s0\" /dev/vg0/{snap} {dir}")]
    );
    h.lvsnap(&["umount", snap], "2026-03-02T01:06:00Z");
    // The command's label wins; categories keep their comma inside the quotes.
    let before = h.lvm.invocations().len();
    let label = "system_u:object_r:container_file_t:s0:c1,c2";
    let (code, out) = h.lvsnap(
        &["mount", snap, &dir, "--context", label],
        "2026-03-02T01:07:00Z",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        mount_calls(&h, before),
        [format!(
            "mount -t ext4 -o ro,noload,context=\"{label}\" /dev/vg0/{snap} {dir}"
        )]
    );
    // Not a label: the command line is refused before anything runs.
    let refused = Cli::try_parse_from(["lvsnap", "mount", snap, "--context", "s0\",rw"])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("invalid value 's0\",rw' for '--context <LABEL>'")
            && refused.contains("an SELinux label is USER:ROLE:TYPE[:LEVEL]"),
        "{refused}"
    );
}

#[test]
fn a_kernel_refusing_the_label_is_told_apart_and_nothing_stays_mounted() {
    let h = host();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.lvm.fail_next(
        Tool::Mount,
        "home-lvsnap",
        32,
        "mount: /run/x: wrong fs type, bad option, bad superblock on /dev/mapper/vg0-home--lvsnap, missing codepage or helper program, or other error.\n",
    );
    let dir = h.dir.path().join("browse").display().to_string();
    let ran = h.run(
        &[
            "mount",
            "home-lvsnap-20260302T010000Z",
            &dir,
            "--context",
            "system_u:object_r:container_file_t:s0",
        ],
        "2026-03-02T01:05:00Z",
    );
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(
        ran.err.contains("wrong fs type")
            && ran.err.contains(
                "the mount asked for the SELinux label system_u:object_r:container_file_t:s0"
            ),
        "{ran:?}"
    );
    assert!(h.catalog().open_mounts().unwrap().is_empty());
}
