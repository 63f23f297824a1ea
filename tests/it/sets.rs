//! Snapshot sets through the CLI layer: one pre/post hook around every member, all or nothing,
//! whole-set retention, space pressure by whole sets, `catalog rebuild` and `list`. Freezing
//! and what real LVM does are tested in the VM (sets.sh).

use lvsnap::lvm::fake::FakeLvm;
use lvsnap::lvm::Tool;

use crate::common::Host;

const GIB: u64 = 1 << 30;

fn at(hour: u32, minute: u32) -> String {
    format!("2026-03-01T{hour:02}:{minute:02}:00Z")
}

fn snap(volume: &str, hour: u32) -> String {
    format!("{volume}-lvsnap-20260301T{hour:02}0000Z")
}

/// vg0 (8 GiB): thick `home` and `var` (1 GiB each), thin `data` in `pool`; policy `db` the
/// set of `vg0/home` and `vg0/data`, hourly, with `more` keys; and `extra` policies after.
fn host(more: &str, extra: &str) -> Host {
    let lvm = FakeLvm::new();
    lvm.add_vg("vg0", 8 * GIB)
        .add_lv("vg0", "home", GIB)
        .add_lv("vg0", "var", GIB)
        .add_thin_pool("vg0", "pool", 2 * GIB)
        .add_thin_lv("vg0", "pool", "data", 4 * GIB);
    Host::new(
        lvm,
        &format!(
            "[policy.db]\nvolumes = [\"vg0/home\", \"vg0/data\"]\nset = true\nschedule = \"0 * * * *\"\nsize = \"64M\"\n{more}\n\n{extra}"
        ),
    )
}

fn set_of(h: &Host, name: &str) -> Option<String> {
    h.catalog()
        .all_snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.set)
}

#[test]
fn a_set_is_taken_between_one_pre_and_one_post_hook_and_carries_its_identity() {
    let h = host("keep = { last = 5 }", "");
    let log = h.dir.path().join("hooks.log");
    let hook = |phase: &str| {
        format!(
            "[\"sh\", \"-c\", \"echo {phase} $LVSNAP_SET $LVSNAP_TAKEN: $LVSNAP_VOLUME / $LVSNAP_SNAPSHOT >> {}\"]",
            log.display()
        )
    };
    h.write_config(&format!(
        "[policy.db]\nvolumes = [\"vg0/home\", \"vg0/data\"]\nset = true\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = {{ last = 5 }}\npre = {}\npost = {}\n",
        hook("pre"),
        hook("post")
    ));
    let (code, out) = h.lvsnap(&["run"], &at(0, 0));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "db vg0/home: create {} (set db.20260301T000000Z)",
            snap("home", 0)
        )),
        "{out}"
    );
    let hooks = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        hooks,
        format!(
            "pre db.20260301T000000Z : vg0/home vg0/data / {h0} {d0}\npost db.20260301T000000Z yes: vg0/home vg0/data / {h0} {d0}\n",
            h0 = snap("home", 0),
            d0 = snap("data", 0)
        )
    );
    for name in [snap("home", 0), snap("data", 0)] {
        assert!(
            h.lvm
                .tags("vg0", &name)
                .contains(&"lvsnap-set=db.20260301T000000Z".to_owned()),
            "{:?}",
            h.lvm.tags("vg0", &name)
        );
        assert_eq!(set_of(&h, &name).as_deref(), Some("db.20260301T000000Z"));
    }
    let (_, out) = h.lvsnap(&["config", "check"], &at(0, 0));
    assert!(
        out.contains("  set       the volumes are one snapshot set: taken together (one pre/post hook), kept and removed together"),
        "{out}"
    );
    // Not due again within the hour, for either member.
    let (code, out) = h.lvsnap(&["run"], &at(0, 30));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not due: the newest set is from the current period"),
        "{out}"
    );
    assert_eq!(h.snapshot_names().len(), 2);
}

#[test]
fn a_member_that_cannot_be_created_takes_the_whole_set_with_it() {
    let h = host(
        "keep = { last = 5 }",
        "[policy.var]\nvolumes = [\"vg0/var\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 5 }\n",
    );
    h.lvm.fail_next(
        Tool::Lvcreate,
        "data-lvsnap",
        5,
        "  Cannot create new thin volume, free space in thin pool vg0/pool reached threshold.",
    );
    let r = h.run(&["run"], &at(0, 0));
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains(
            "db vg0/home: error: snapshot set failed: member vg0/data could not be created"
        ) && r.out.contains("the 1 member(s) created were removed"),
        "{}",
        r.out
    );
    // Nothing of the set remains; the other policy's snapshot was taken.
    assert_eq!(h.snapshot_names(), vec![snap("var", 0)]);
    let home = h
        .catalog()
        .all_snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.name == snap("home", 0))
        .unwrap();
    assert_eq!(home.state, lvsnap::catalog::State::Removed);
    assert!(
        home.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("set db.20260301T000000Z given up: member vg0/data")),
        "{home:?}"
    );
    // The next run takes the set.
    let (code, out) = h.lvsnap(&["run"], &at(0, 10));
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.snapshot_names().len(), 3);
}

#[test]
fn the_space_check_covers_the_whole_set_before_anything_is_created() {
    // 8 GiB less home, var and the pool leave 4 GiB: one 3 GiB snapshot fits, two do not.
    let h = host("", "");
    h.write_config(
        "[policy.both]\nvolumes = [\"vg0/home\", \"vg0/var\"]\nset = true\nschedule = \"0 * * * *\"\nsize = \"3G\"\nkeep = { last = 2 }\n",
    );
    let (code, out) = h.lvsnap(&["run"], &at(0, 0));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("both vg0/home: error: snapshot set failed: member vg0/var (the set's members before it take 3 GiB of vg0): volume group vg0 has 1 GiB free, too little for a 3 GiB snapshot of vg0/var"),
        "{out}"
    );
    assert!(
        !h.lvm.invocations().iter().any(|i| i.contains("lvcreate")),
        "{:?}",
        h.lvm.invocations()
    );
    assert!(h.snapshot_names().is_empty());
}

#[test]
fn retention_keeps_and_removes_whole_sets() {
    let h = host("keep = { last = 3 }", "");
    for hour in 0..6 {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
        if hour == 1 {
            // A pinned member keeps its whole set.
            let (code, out) = h.lvsnap(&["pin", &snap("data", 1)], &at(1, 5));
            assert_eq!(code, 0, "{out}");
        }
    }
    let mut names = h.snapshot_names();
    names.sort();
    let mut want: Vec<String> = [1, 3, 4, 5]
        .iter()
        .flat_map(|h| [snap("data", *h), snap("home", *h)])
        .collect();
    want.sort();
    assert_eq!(names, want);
    let (_, out) = h.lvsnap(&["list"], &at(5, 10));
    assert!(
        out.contains("set db.20260301T010000Z (policy db, 2 members, kept)"),
        "{out}"
    );
    let member = out
        .lines()
        .skip_while(|l| !l.starts_with("set db.20260301T010000Z"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        member.starts_with(&format!("  {}", snap("data", 1))),
        "{out}"
    );
    assert!(member.contains("pinned"), "{out}");
    let list = h.json(&["list", "--json"], &at(5, 10));
    let sets = list["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 4, "{list}");
    assert_eq!(sets[0]["members"].as_array().unwrap().len(), 2);
}

#[test]
fn a_set_with_one_member_gone_is_still_planned_as_one() {
    // keep last = 2 over three sets, one of whose data members vanished: each volume's plan
    // ranks the same sets, so no set is left half removed.
    let h = host("keep = { last = 2 }", "");
    for hour in 0..2 {
        assert_eq!(h.lvsnap(&["run"], &at(hour, 0)).0, 0);
    }
    h.lvm.remove_behind_back("vg0", &snap("data", 1));
    let (code, out) = h.lvsnap(&["run"], &at(2, 0));
    assert_eq!(code, 0, "{out}");
    let mut names = h.snapshot_names();
    names.sort();
    assert_eq!(
        names,
        vec![snap("data", 2), snap("home", 1), snap("home", 2)],
        "{out}"
    );
}

#[test]
fn a_snapshot_outside_the_set_never_splits_a_set() {
    // An extra snapshot of one volume (`snapshot --volume`) is ranked on its own: both volumes
    // keep the same three sets.
    let h = host("keep = { last = 3 }", "");
    for hour in 0..3 {
        assert_eq!(h.lvsnap(&["run"], &at(hour, 0)).0, 0);
    }
    let (code, out) = h.lvsnap(&["snapshot", "db", "--volume", "vg0/home"], &at(2, 30));
    assert_eq!(code, 0, "{out}");
    for hour in 3..5 {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
    }
    let mut names = h.snapshot_names();
    names.sort();
    let mut want: Vec<String> = [2, 3, 4]
        .iter()
        .flat_map(|h| [snap("data", *h), snap("home", *h)])
        .collect();
    want.push("home-lvsnap-20260301T023000Z".to_owned());
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn catalog_rebuild_restores_sets() {
    let h = host("keep = { last = 5 }", "");
    for hour in 0..2 {
        assert_eq!(h.lvsnap(&["run"], &at(hour, 0)).0, 0);
    }
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(h.dir.path().join(f));
    }
    let (code, out) = h.lvsnap(&["catalog", "rebuild"], &at(2, 10));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 snapshot(s) adopted"), "{out}");
    assert_eq!(
        set_of(&h, &snap("data", 1)).as_deref(),
        Some("db.20260301T010000Z")
    );
    let (_, out) = h.lvsnap(&["list"], &at(2, 10));
    assert!(
        out.contains("set db.20260301T000000Z (policy db, 2 members, kept)"),
        "{out}"
    );
}

#[test]
fn space_pressure_removes_whole_sets() {
    let h = host("keep = { last = 48 }\npool-data-emergency = 90", "");
    for hour in 0..4 {
        assert_eq!(h.lvsnap(&["run"], &at(hour, 0)).0, 0);
        h.lvm.set_fill("vg0", &snap("data", hour), 3.0, 0.0);
    }
    h.lvm.set_fill("vg0", "pool", 92.0, 10.0);
    let (code, out) = h.lvsnap(&["run"], &at(3, 30));
    assert_eq!(code, 0, "{out}");
    // The oldest set goes, its thick member with it; the pool is then at 89%.
    assert!(
        out.contains(&format!(
            "db vg0/home: remove {} for space: thin pool vg0/pool data is 92.0% full",
            snap("home", 0)
        )) && out.contains("set db.20260301T000000Z goes as a whole"),
        "{out}"
    );
    let names = h.snapshot_names();
    assert!(!names.contains(&snap("data", 0)) && !names.contains(&snap("home", 0)));
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn what_is_left_of_a_set_cut_short_is_removed_by_the_next_run() {
    // As a kill -9 between two lvcreates leaves it: one member created, the other's record
    // still `creating` with no volume (reconcile finds it never created).
    let h = host("keep = { last = 5 }", "");
    assert_eq!(h.lvsnap(&["run"], &at(0, 0)).0, 0);
    let cat = h.catalog();
    let data = cat
        .all_snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.name == snap("data", 0))
        .unwrap();
    cat.set_state(
        data.id,
        lvsnap::catalog::State::Creating,
        None,
        chrono::Utc::now(),
    )
    .unwrap();
    h.lvm.remove_behind_back("vg0", &snap("data", 0));
    let (code, out) = h.lvsnap(&["run"], &at(0, 20));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "removed vg0/{}: set db.20260301T000000Z is incomplete: a member was never created",
            snap("home", 0)
        )),
        "{out}"
    );
    // Nothing of the broken set is left, and with no whole set of this hour a new one is due.
    let mut names = h.snapshot_names();
    names.sort();
    assert_eq!(
        names,
        vec![
            "data-lvsnap-20260301T002000Z".to_owned(),
            "home-lvsnap-20260301T002000Z".to_owned()
        ]
    );
}

#[test]
fn a_given_up_member_that_could_not_be_removed_goes_with_the_next_run() {
    let h = host("keep = { last = 5 }", "");
    h.lvm.fail_next(
        Tool::Lvcreate,
        "data-lvsnap",
        5,
        "  Insufficient free space.",
    );
    h.lvm.fail_next(
        Tool::Lvremove,
        "home-lvsnap",
        5,
        "  Logical volume vg0/home-lvsnap-20260301T000000Z in use.",
    );
    let r = h.run(&["run"], &at(0, 0));
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains(
            "these members could not be removed and remain: vg0/home-lvsnap-20260301T000000Z"
        ),
        "{}",
        r.out
    );
    assert_eq!(h.snapshot_names(), vec![snap("home", 0)]);
    // Not due for the set, but what is left of the given-up one goes.
    let (code, out) = h.lvsnap(&["prune"], &at(0, 10));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "removed vg0/{}: set db.20260301T000000Z is incomplete",
            snap("home", 0)
        )),
        "{out}"
    );
    assert!(h.snapshot_names().is_empty(), "{:?}", h.snapshot_names());
}

#[test]
fn freeze_needs_a_set() {
    let h = host("", "");
    h.write_config(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nfreeze = true\n",
    );
    let (code, out) = h.lvsnap(&["config", "check"], &at(0, 0));
    assert_ne!(code, 0, "{out}");
    let r = h.run(&["config", "check"], &at(0, 0));
    let all = format!("{}{}", r.out, r.err);
    assert!(
        all.contains("policy.home.freeze") && all.contains("add set = true"),
        "{all}"
    );
}
