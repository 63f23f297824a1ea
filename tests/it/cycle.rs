//! The snapshot cycle end to end through the CLI layer, against the in-memory fake LVM: argv of
//! every command, failure paths, reconciliation, ownership, guards and locking. What real LVM
//! does is tested in the VM (tests/vm/scenarios/).

use crate::common::Host;
use chrono::{DateTime, Duration, Utc};
use lvsnap::catalog::{NewSnapshot, State};
use lvsnap::lvm::{commands, Runner, Tool};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const HOME_AND_DATA: &str = r#"
[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "10%ORIGIN"
keep = { last = 3 }

[policy.data]
volumes = ["vg0/data"]
schedule = "0 * * * *"
keep = { last = 3 }
"#;

#[test]
fn run_takes_tagged_snapshots_with_one_inventory_call() {
    let w = Host::standard(HOME_AND_DATA);
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("home vg0/home: create home-lvsnap-20260301T100000Z"),
        "{out}"
    );
    let cmds = w.lvm.invocations();
    assert_eq!(
        cmds,
        vec![
            commands::inventory().to_string(),
            "lvcreate --snapshot --extents 26 --name home-lvsnap-20260301T100000Z --addtag lvsnap --addtag lvsnap-policy=home --addtag lvsnap-time=1772359200 vg0/home".to_owned(),
            "lvcreate --snapshot --name data-lvsnap-20260301T100000Z --addtag lvsnap --addtag lvsnap-policy=data --addtag lvsnap-time=1772359200 vg0/data".to_owned(),
        ]
    );
    // Not due again within the hour: one lvs, nothing else.
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:20:00Z");
    assert_eq!(code, 0);
    assert!(out.contains("not due"), "{out}");
    assert_eq!(w.lvm.invocations().len(), 4);
    let list = w.json(&["list", "--json"], "2026-03-01T10:30:00Z");
    let names: Vec<&str> = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "data-lvsnap-20260301T100000Z",
            "home-lvsnap-20260301T100000Z"
        ]
    );
    assert_eq!(list["snapshots"][1]["kind"], "thick");
    assert_eq!(list["snapshots"][1]["size"], 26 * 4 * 1024 * 1024);
    assert_eq!(list["snapshots"][0]["why"], "last, newest");
}

#[test]
fn hourly_runs_for_two_days_keep_what_simulate_keeps() {
    let policy = "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 3, hourly = 6, daily = 2 }\nmax-thick-per-origin = 20\n";
    let w = Host::standard(policy);
    let start = t("2026-03-01T00:00:00Z");
    for h in 0..48 {
        let now = start + Duration::hours(h) + Duration::minutes(2);
        let (code, out) = w.lvsnap(&["run"], &now.to_rfc3339());
        assert_eq!(code, 0, "hour {h}: {out}");
    }
    let sim = w.json(
        &[
            "simulate",
            "--policy",
            "home",
            "--from",
            "2026-03-01T00:02:00Z",
            "--to",
            "2026-03-03T00:02:00Z",
            "--every",
            "1h",
            "--json",
        ],
        "2026-03-03T00:00:00Z",
    );
    let expected: Vec<String> = sim["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            t(k["time"].as_str().unwrap())
                .format("home-lvsnap-%Y%m%dT%H%M%SZ")
                .to_string()
        })
        .collect();
    let mut actual = w.snapshot_names();
    actual.sort();
    assert_eq!(actual, expected);
    assert_eq!(sim["taken"], 48);
}

#[test]
fn snapshots_lvsnap_did_not_make_survive_every_run() {
    let w = Host::standard(HOME_AND_DATA);
    let old = t("2020-01-01T00:00:00Z");
    w.lvm
        .add_snapshot("vg0", "home", "home-lvsnap-20200101T000000Z", &[], old);
    w.lvm.add_snapshot(
        "vg0",
        "home",
        "home-lvsnap-20200102T000000Z",
        &["lvsnap", "lvsnap-policy=home"],
        old,
    );
    for h in 0..6 {
        let (code, out) = w.lvsnap(&["run"], &format!("2026-03-01T{h:02}:00:00Z"));
        assert_eq!(code, 0, "{out}");
        if h == 0 {
            assert!(
                out.contains("unmanaged: vg0/home-lvsnap-20200102T000000Z carries lvsnap's tag"),
                "{out}"
            );
        }
    }
    let names = w.snapshot_names();
    assert!(names.contains(&"home-lvsnap-20200101T000000Z".to_owned()));
    assert!(names.contains(&"home-lvsnap-20200102T000000Z".to_owned()));
    assert!(
        !w.lvm.invocations().iter().any(|c| c.contains("2020")),
        "lvsnap ran a command on a snapshot it does not own"
    );
    let (code, out) = w.lvsnap(
        &["pin", "home-lvsnap-20200101T000000Z"],
        "2026-03-01T07:00:00Z",
    );
    assert_eq!(code, 2);
    assert!(out.is_empty());
}

#[test]
fn full_volume_group_fails_one_policy_and_not_the_other() {
    let w = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"100G\"\nkeep = { last = 3 }\n\n\
         [policy.data]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = { last = 3 }\n",
    );
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("home vg0/home: error: snapshot failed: volume group vg0 has 5 GiB free, too little for a 100 GiB snapshot of vg0/home"), "{out}");
    assert!(
        out.contains("data vg0/data: create data-lvsnap-20260301T100000Z"),
        "{out}"
    );
    assert!(
        !w.lvm
            .invocations()
            .iter()
            .any(|c| c.contains("vg0/home") && c.starts_with("lvcreate")),
        "refused before lvcreate"
    );
}

#[test]
fn thin_pool_over_its_limit_refuses_a_snapshot() {
    let w = Host::standard(HOME_AND_DATA);
    w.lvm.set_fill("vg0", "pool", 85.0, 10.0);
    let (code, out) = w.lvsnap(&["run", "--policy", "data"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "thin pool vg0/pool data is 85.0% full, at or above the policy's limit of 80%"
        ),
        "{out}"
    );
}

#[test]
fn lvcreate_failure_is_recorded_and_reported() {
    let w = Host::standard(HOME_AND_DATA);
    w.lvm.fail_next(
        Tool::Lvcreate,
        "vg0/home",
        5,
        "  Volume group \"vg0\" has insufficient free space (3 extents): 26 required.\n",
    );
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 1);
    assert!(
        out.contains("exited with status 5: Volume group \"vg0\" has insufficient free space"),
        "{out}"
    );
    assert!(
        out.contains("hint: the volume group has too little free space"),
        "{out}"
    );
    let records = w.catalog().all_snapshots().unwrap();
    let home = records.iter().find(|r| r.origin == "home").unwrap();
    assert_eq!(home.state, State::Failed);
    assert!(w.catalog().open_intents().unwrap().is_empty());
    let events = w.catalog().events(10).unwrap();
    assert!(events
        .iter()
        .any(|e| e.status == 5 && e.argv.starts_with("lvcreate")));
}

#[test]
fn invalid_snapshot_is_removed_and_a_filling_one_extended() {
    let w = Host::standard("[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"100M\"\nkeep = { last = 10 }\n");
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    w.lvsnap(&["run"], "2026-03-01T11:00:00Z");
    w.lvm.set_invalid("vg0", "home-lvsnap-20260301T100000Z");
    w.lvm
        .set_fill("vg0", "home-lvsnap-20260301T110000Z", 90.0, 0.0);
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T11:30:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("reconciled: snapshot vg0/home-lvsnap-20260301T100000Z became invalid"),
        "{out}"
    );
    assert!(
        out.contains(
            "remove home-lvsnap-20260301T100000Z (invalid: its copy-on-write space overflowed"
        ),
        "{out}"
    );
    assert!(
        out.contains("vg0/home-lvsnap-20260301T110000Z is 90% full: extended by 20 MiB"),
        "{out}"
    );
    assert_eq!(
        w.lvm.extents("vg0", "home-lvsnap-20260301T110000Z"),
        Some(30)
    );
    assert!(w
        .lvm
        .invocations()
        .contains(&"lvextend --extents +5 vg0/home-lvsnap-20260301T110000Z".to_owned()));
}

#[test]
fn filling_snapshot_in_a_full_group_is_reported_not_extended() {
    let w = Host::standard("[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"5G\"\nkeep = { last = 10 }\n");
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    w.lvm
        .set_fill("vg0", "home-lvsnap-20260301T100000Z", 95.0, 0.0);
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T10:30:00Z");
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "is 95% full but volume group vg0 has only 0 B free: it will become invalid when full"
        ),
        "{out}"
    );
}

#[test]
fn snapshot_removed_by_hand_is_marked_vanished() {
    let w = Host::standard(HOME_AND_DATA);
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    w.lvm
        .remove_behind_back("vg0", "home-lvsnap-20260301T100000Z");
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:30:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reconciled: snapshot vg0/home-lvsnap-20260301T100000Z vanished: removed outside lvsnap"), "{out}");
    let states: Vec<State> = w
        .catalog()
        .all_snapshots()
        .unwrap()
        .iter()
        .filter(|r| r.origin == "home")
        .map(|r| r.state)
        .collect();
    // With its only snapshot gone the group is due again and gets a fresh one.
    assert_eq!(states, [State::Vanished, State::Present]);
}

#[test]
fn create_interrupted_before_the_catalog_write_is_reconciled() {
    let w = Host::standard(HOME_AND_DATA);
    // What a kill -9 between lvcreate and the catalog write leaves: a `creating` record with an
    // open intent, and the LV in LVM.
    {
        let mut cat = w.catalog();
        let new = NewSnapshot {
            vg: "vg0",
            name: "home-lvsnap-20260301T100000Z",
            origin: "home",
            policy: "home",
            time: t("2026-03-01T10:00:00Z"),
            thin: false,
            size: 0,
            pinned: false,
            note: None,
            set: None,
        };
        cat.begin_create(&new, t("2026-03-01T10:00:00Z")).unwrap();
        let tags = vec!["lvsnap".to_owned(), "lvsnap-policy=home".to_owned()];
        w.lvm
            .run(&commands::create_thick(
                "vg0",
                "home",
                "home-lvsnap-20260301T100000Z",
                26,
                &tags,
            ))
            .unwrap();
    }
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:10:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reconciled: snapshot vg0/home-lvsnap-20260301T100000Z creation confirmed after an interruption"), "{out}");
    assert!(
        out.contains("home vg0/home: not due"),
        "the recovered snapshot counts: {out}"
    );
    let cat = w.catalog();
    assert!(cat.open_intents().unwrap().is_empty());
    let home: Vec<_> = cat
        .live_snapshots()
        .unwrap()
        .into_iter()
        .filter(|r| r.origin == "home")
        .collect();
    assert_eq!(home.len(), 1);
    assert!(home[0].uuid.is_some());
    // And an intent whose lvcreate never ran is marked failed, nothing orphaned.
    let mut cat = w.catalog();
    let new = NewSnapshot {
        vg: "vg0",
        name: "data-lvsnap-20260301T110000Z",
        origin: "data",
        policy: "data",
        time: t("2026-03-01T11:00:00Z"),
        thin: true,
        size: 0,
        pinned: false,
        note: None,
        set: None,
    };
    cat.begin_create(&new, t("2026-03-01T11:00:00Z")).unwrap();
    let (_, out) = w.lvsnap(&["run"], "2026-03-01T11:10:00Z");
    assert!(
        out.contains("data-lvsnap-20260301T110000Z was never created"),
        "{out}"
    );
}

#[test]
fn catalog_rebuild_restores_management() {
    let w = Host::standard(HOME_AND_DATA);
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    w.lvsnap(&["run"], "2026-03-01T11:00:00Z");
    w.lvsnap(
        &["pin", "home-lvsnap-20260301T100000Z"],
        "2026-03-01T11:05:00Z",
    );
    std::fs::remove_file(w.dir.path().join("catalog.db")).unwrap();
    let _ = std::fs::remove_file(w.dir.path().join("catalog.db-wal"));
    let _ = std::fs::remove_file(w.dir.path().join("catalog.db-shm"));
    let (_, out) = w.lvsnap(&["list"], "2026-03-01T11:10:00Z");
    assert!(
        out.contains("no snapshots managed by lvsnap")
            && out.contains("unmanaged: vg0/home-lvsnap-20260301T100000Z"),
        "{out}"
    );
    let (code, out) = w.lvsnap(&["catalog", "rebuild"], "2026-03-01T11:10:00Z");
    assert_eq!(code, 0);
    assert!(out.contains("4 snapshot(s) adopted"), "{out}");
    let list = w.json(&["list", "--json"], "2026-03-01T11:20:00Z");
    let snaps = list["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 4);
    let pinned: Vec<&str> = snaps
        .iter()
        .filter(|s| s["pinned"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(pinned, ["home-lvsnap-20260301T100000Z"]);
    assert_eq!(
        snaps
            .iter()
            .find(|s| s["name"] == "home-lvsnap-20260301T110000Z")
            .unwrap()["created"],
        "2026-03-01T11:00:00Z"
    );
}

#[test]
fn breaker_holds_pruning_until_forced() {
    let w = Host::standard("[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 10 }\nmax-thick-per-origin = 10\n");
    for h in 0..6 {
        w.lvsnap(&["run"], &format!("2026-03-01T{h:02}:00:00Z"));
    }
    w.write_config("[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 1 }\n");
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T05:30:00Z");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("held back: would remove 5 of 6 snapshots"),
        "{out}"
    );
    assert_eq!(w.snapshot_names().len(), 6);
    let (code, out) = w.lvsnap(&["prune", "--dry-run", "--force"], "2026-03-01T05:30:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 kept, 5 to be removed"), "{out}");
    assert_eq!(w.snapshot_names().len(), 6, "a dry run removes nothing");
    let (code, out) = w.lvsnap(&["prune", "--force"], "2026-03-01T05:30:00Z");
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.snapshot_names(), ["home-lvsnap-20260301T050000Z"]);
}

#[test]
fn pinned_snapshot_survives_and_unpin_releases_it() {
    let w = Host::standard("[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 1 }\n");
    w.lvsnap(
        &["snapshot", "home", "--pin", "--note", "before the upgrade"],
        "2026-03-01T09:30:00Z",
    );
    for h in 10..13 {
        w.lvsnap(&["run"], &format!("2026-03-01T{h}:00:00Z"));
    }
    assert!(w
        .snapshot_names()
        .contains(&"home-lvsnap-20260301T093000Z".to_owned()));
    assert!(w
        .lvm
        .tags("vg0", "home-lvsnap-20260301T093000Z")
        .contains(&"lvsnap-pinned".to_owned()));
    let (_, out) = w.lvsnap(&["list"], "2026-03-01T12:10:00Z");
    assert!(out.contains("pinned  \"before the upgrade\""), "{out}");
    let (code, out) = w.lvsnap(
        &["unpin", "vg0/home-lvsnap-20260301T093000Z"],
        "2026-03-01T12:20:00Z",
    );
    assert_eq!(code, 0, "{out}");
    w.lvsnap(&["prune"], "2026-03-01T12:30:00Z");
    assert_eq!(w.snapshot_names(), ["home-lvsnap-20260301T120000Z"]);
}

#[test]
fn dry_run_and_plan_change_nothing() {
    let w = Host::standard(HOME_AND_DATA);
    let (code, out) = w.lvsnap(&["run", "--dry-run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 0);
    assert!(
        out.contains("home vg0/home: would create home-lvsnap-20260301T100000Z"),
        "{out}"
    );
    let (code, out) = w.lvsnap(&["plan"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 0);
    assert!(out.contains("keep   home-lvsnap-20260301T100000Z"), "{out}");
    assert!(w.snapshot_names().is_empty());
    assert_eq!(
        w.lvm
            .invocations()
            .iter()
            .filter(|c| !c.starts_with("lvs "))
            .count(),
        0
    );
    assert!(
        !w.dir.path().join("catalog.db").exists(),
        "read-only commands create no catalog"
    );
}

#[test]
fn twenty_policies_cost_one_inventory_plus_one_command_per_change() {
    let mut policies = String::new();
    for i in 0..20 {
        w_add(&mut policies, i);
    }
    let w = Host::standard(&policies);
    for i in 0..20 {
        w.lvm.add_lv("vg0", &format!("v{i}"), 64 << 20);
    }
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    let first = w.lvm.invocations();
    assert_eq!(first.iter().filter(|c| c.starts_with("lvs ")).count(), 1);
    assert_eq!(first.len(), 21);
    w.lvsnap(&["run"], "2026-03-01T11:00:00Z");
    // 1 inventory, 20 snapshots, 20 removals (keep last 1).
    assert_eq!(w.lvm.invocations().len() - first.len(), 41);
}

fn w_add(policies: &mut String, i: usize) {
    policies.push_str(&format!("[policy.p{i}]\nvolumes = [\"vg0/v{i}\"]\nschedule = \"0 * * * *\"\nsize = \"4M\"\nkeep = {{ last = 1 }}\n\n"));
}

#[test]
fn a_second_writer_is_told_who_holds_the_lock() {
    let w = Host::standard(HOME_AND_DATA);
    let _held =
        lvsnap::lock::acquire(&w.dir.path().join("run"), std::time::Duration::ZERO).unwrap();
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(w.snapshot_names().is_empty());
    // Reading commands do not wait.
    let (code, _) = w.lvsnap(&["plan"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 0);
}

#[test]
fn missing_volume_names_what_exists() {
    let w = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/hom\"]\nschedule = \"0 * * * *\"\nkeep = { last = 1 }\n",
    );
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 1);
    assert!(
        out.contains("volume vg0/hom not found (logical volumes in vg0: home, pool, data)"),
        "{out}"
    );
}

#[test]
fn failing_pre_hook_skips_only_its_policy_and_post_still_runs() {
    let w = Host::standard("");
    let log = w.dir.path().join("hooks.log");
    let record = |phase: &str| {
        format!("[\"sh\", \"-c\", \"echo {phase} $LVSNAP_POLICY $LVSNAP_SNAPSHOT ${{LVSNAP_TAKEN:-}} >> {}\"]", log.display())
    };
    w.write_config(&format!(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = {{ last = 3 }}\n\
         pre = [\"sh\", \"-c\", \"echo flush failed >&2; exit 4\"]\npost = {}\n\n\
         [policy.data]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = {{ last = 3 }}\npre = {}\npost = {}\n",
        record("post"),
        record("pre"),
        record("post"),
    ));
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 1, "{out}");
    // Hook arguments may hold secrets: the report names the program and a digest of them.
    assert!(
        out.contains("home vg0/home: error: snapshot failed: pre hook `sh [2 argument(s), sha256 "),
        "{out}"
    );
    assert!(
        out.contains("` exited with status 4: flush failed; no snapshot of vg0/home taken"),
        "{out}"
    );
    assert!(
        out.contains("data vg0/data: create data-lvsnap-20260301T100000Z"),
        "{out}"
    );
    assert!(!w
        .lvm
        .invocations()
        .iter()
        .any(|c| c.starts_with("lvcreate") && c.ends_with("vg0/home")));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "post home home-lvsnap-20260301T100000Z no\npre data data-lvsnap-20260301T100000Z\npost data data-lvsnap-20260301T100000Z yes\n"
    );
    let events = w.catalog().events(20).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.status == 4 && e.argv.starts_with("sh [2 argument(s), sha256 ")),
        "hooks are in the event log"
    );
}

#[test]
fn check_exit_codes_follow_the_state() {
    let w = Host::standard(HOME_AND_DATA);
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T10:30:00Z");
    assert_eq!((code, out.lines().next().unwrap()), (0, "LVSNAP OK - 2 group(s) fresh | 'home_vg0/home_age'=1800s;7200;14400 'home_vg0/home_fill'=0.0%;80;95 'home_vg0/home_snapshots'=1 'data_vg0/data_age'=1800s;7200;14400 'data_vg0/data_snapshots'=1 'pool_vg0/pool_data'=0.0%;;80 'pool_vg0/pool_metadata'=0.0%;;80"));
    // Hourly: due at 11:00, a period late at 12:00, three at 14:00.
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T12:30:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("LVSNAP WARNING - home vg0/home: newest snapshot is 2h old; data vg0/data: newest snapshot is 2h old |"), "{out}");
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T14:30:00Z");
    assert_eq!(code, 2, "{out}");
    let (code, _) = w.lvsnap(
        &["check", "--warning", "5", "--critical", "9"],
        "2026-03-01T14:30:00Z",
    );
    assert_eq!(code, 0);
    w.lvm.set_fill("vg0", "pool", 75.0, 10.0);
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T10:30:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("thin pool vg0/pool is 75% full"), "{out}");
    w.lvm.set_fill("vg0", "pool", 10.0, 10.0);
    w.lvm.set_invalid("vg0", "home-lvsnap-20260301T100000Z");
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T10:30:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("home vg0/home: 1 invalid snapshot(s)"),
        "{out}"
    );
    w.lvm.fail_next(
        Tool::Lvcreate,
        "vg0/data",
        5,
        "  Volume group \"vg0\" not found\n",
    );
    let (code, _) = w.lvsnap(&["run"], "2026-03-01T11:00:00Z");
    assert_eq!(code, 1);
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T11:10:00Z");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with(
            "LVSNAP CRITICAL - data vg0/data: last run failed: snapshot failed: lvcreate"
        ),
        "{out}"
    );
    w.lvm
        .fail_next(Tool::Lvs, "", 5, "  Device-mapper not available\n");
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T11:10:00Z");
    assert_eq!((code, out.trim()), (3, "LVSNAP UNKNOWN - lvs -a --reportformat json --units b --nosuffix --config report { time_format = \"%s\" } -o lv_uuid,lv_name,vg_name,origin,pool_lv,lv_time,lv_attr,lv_size,data_percent,snap_percent,metadata_percent,lv_tags,lv_merging,lv_skip_activation,lv_snapshot_invalid,lv_device_open,lv_active,lv_layout,lv_role,vg_free,vg_extent_size,vg_size exited with status 5: Device-mapper not available"));
}

#[test]
fn status_shows_each_group_and_the_pool() {
    let w = Host::standard(HOME_AND_DATA);
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    let (code, out) = w.lvsnap(&["status"], "2026-03-01T10:30:00Z");
    assert_eq!(code, 0);
    assert!(out.contains("home vg0/home\n  newest    home-lvsnap-20260301T100000Z, 2026-03-01 10:00:00 UTC (30min ago)\n  next      2026-03-01 11:00:00 UTC\n  snapshots 1 (104 MiB copy-on-write, fullest 0%)\n  last run  2026-03-01 10:00:00 UTC ok"), "{out}");
    assert!(
        out.contains("thin pool vg0/pool: data 0.0%, metadata 0.0%"),
        "{out}"
    );
    let v = w.json(&["status", "--json"], "2026-03-01T10:30:00Z");
    assert_eq!(v["groups"][1]["newest_age_seconds"], 1800);
}

#[test]
fn run_writes_a_prometheus_textfile() {
    let w = Host::standard("");
    let prom = w.dir.path().join("lvsnap.prom");
    let settings = format!(
        "[settings]\ncatalog = \"{0}/catalog.db\"\nruntime-dir = \"{0}/run\"\ntimezone = \"UTC\"\nmetrics-file = \"{1}\"\ntool-path = [\"{2}\"]\n\n",
        w.dir.path().display(),
        prom.display(),
        crate::common::fake_tools().display()
    );
    std::fs::write(w.dir.path().join("lvsnap.toml"), settings + HOME_AND_DATA).unwrap();
    w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    w.lvsnap(&["run"], "2026-03-01T11:00:00Z");
    let text = std::fs::read_to_string(&prom).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("lvsnap_snapshots", Some(("volume", "vg0/home"))),
        Some(2.0)
    );
    assert_eq!(
        value(
            "lvsnap_newest_snapshot_age_seconds",
            Some(("policy", "data"))
        ),
        Some(0.0)
    );
    assert_eq!(
        value("lvsnap_snapshot_bytes", Some(("volume", "vg0/home"))),
        Some(2.0 * 104.0 * 1024.0 * 1024.0)
    );
    assert_eq!(value("lvsnap_runs_total", None), Some(2.0));
    assert_eq!(value("lvsnap_run_failures_total", None), Some(0.0));
    assert_eq!(value("lvsnap_last_run_success", None), Some(1.0));
    assert_eq!(
        value("lvsnap_pool_data_percent", Some(("pool", "vg0/pool"))),
        Some(0.0)
    );
    assert!(value("lvsnap_vg_free_bytes", Some(("vg", "vg0"))).unwrap() > 0.0);
    assert!(!w.dir.path().join(".lvsnap.prom.tmp").exists());
}

#[test]
fn an_unwritable_metrics_file_does_not_fail_the_run() {
    let w = Host::standard("");
    let settings = format!(
        "[settings]\ncatalog = \"{0}/catalog.db\"\nruntime-dir = \"{0}/run\"\ntimezone = \"UTC\"\nmetrics-file = \"/nonexistent/dir/lvsnap.prom\"\ntool-path = [\"{1}\"]\n\n",
        w.dir.path().display(),
        crate::common::fake_tools().display()
    );
    std::fs::write(w.dir.path().join("lvsnap.toml"), settings + HOME_AND_DATA).unwrap();
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.snapshot_names().len(), 2);
}

#[test]
fn a_hook_password_never_reaches_the_event_log() {
    let w = Host::standard("");
    w.write_config(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 3 }\n\
         pre = [\"true\", \"--user=backup\", \"--password=secret\"]\n",
    );
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T10:00:00Z");
    assert_eq!(code, 0, "{out}");
    for args in [&["catalog", "events"][..], &["catalog", "events", "--json"]] {
        let (code, out) = w.lvsnap(args, "2026-03-01T10:01:00Z");
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("true"), "the hook is listed: {out}");
        assert!(
            !out.contains("secret"),
            "{args:?} shows the password: {out}"
        );
    }
}

#[test]
fn a_snapshot_from_the_future_neither_stops_snapshots_nor_looks_fresh_nor_blocks_pruning() {
    let w = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 2 }\nmax-remove-percent = 100\n",
    );
    for h in ["01", "02", "03"] {
        let (code, out) = w.lvsnap(&["run"], &format!("2026-03-01T{h}:00:00Z"));
        assert_eq!(code, 0, "{out}");
    }
    // The clock ran a day ahead for one command.
    let (code, out) = w.lvsnap(&["snapshot", "home"], "2026-03-02T03:30:00Z");
    assert_eq!(code, 0, "{out}");
    let (code, out) = w.lvsnap(&["run"], "2026-03-01T04:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("create home-lvsnap-20260301T040000Z"),
        "the scheduled snapshot is taken: {out}"
    );
    assert!(
        out.contains("home-lvsnap-20260302T033000Z is dated"),
        "{out}"
    );
    assert!(out.contains("in the future"), "{out}");
    assert!(
        w.lvm
            .invocations()
            .iter()
            .any(|c| c.starts_with("lvremove") && c.contains("home-lvsnap-20260301T010000Z")),
        "the others are pruned by the rules"
    );
    assert!(
        w.lvm
            .invocations()
            .iter()
            .all(|c| !(c.starts_with("lvremove") && c.contains("20260302T033000Z"))),
        "the future one is kept"
    );
    let (code, out) = w.lvsnap(&["check"], "2026-03-01T04:01:00Z");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("snapshot home-lvsnap-20260302T033000Z is dated 2026-03-02"),
        "{out}"
    );
    let (_, status) = w.lvsnap(&["status"], "2026-03-01T04:01:00Z");
    assert!(
        status.contains("newest    home-lvsnap-20260301T040000Z"),
        "{status}"
    );
    assert!(
        status.contains("FUTURE    home-lvsnap-20260302T033000Z"),
        "{status}"
    );
}

#[test]
fn run_now_ahead_of_the_clock_is_refused_unless_it_is_a_dry_run() {
    let w = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 2 }\n",
    );
    let (code, out) = w.lvsnap(
        &["run", "--now", "2026-03-05T00:00:00Z"],
        "2026-03-01T00:00:00Z",
    );
    assert_eq!(code, 2, "{out}");
    assert!(w
        .lvm
        .invocations()
        .iter()
        .all(|c| !c.starts_with("lvcreate")));
    let (code, out) = w.lvsnap(
        &["run", "--now", "2026-03-05T00:00:00Z", "--dry-run"],
        "2026-03-01T00:00:00Z",
    );
    assert_eq!(code, 0, "{out}");
}

const HOME_LAST_5: &str = "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 5 }\nmax-thick-per-origin = 6\n";
const HOME_LAST_1: &str = "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"8M\"\nkeep = { last = 1 }\nmax-remove-percent = 100\n";

/// Five hourly snapshots of vg0/home, then keep rules that keep only the newest.
fn five_then_last_one() -> Host {
    let w = Host::standard(HOME_LAST_5);
    for h in 0..5 {
        let (code, out) = w.lvsnap(&["run"], &format!("2026-03-01T{h:02}:00:00Z"));
        assert_eq!(code, 0, "{out}");
    }
    w.write_config(HOME_LAST_1);
    w
}

#[test]
fn a_prune_removes_a_groups_snapshots_with_one_lvremove() {
    let w = five_then_last_one();
    let before = w.lvm.invocations().len();
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T04:30:00Z");
    assert_eq!(code, 0, "{out}");
    let removals: Vec<String> = w.lvm.invocations()[before..]
        .iter()
        .filter(|c| c.starts_with("lvremove"))
        .cloned()
        .collect();
    assert_eq!(
        removals,
        ["lvremove --yes vg0/home-lvsnap-20260301T030000Z vg0/home-lvsnap-20260301T020000Z vg0/home-lvsnap-20260301T010000Z vg0/home-lvsnap-20260301T000000Z"]
    );
    assert_eq!(w.snapshot_names(), ["home-lvsnap-20260301T040000Z"]);
    for h in 0..4 {
        let name = format!("home-lvsnap-20260301T{h:02}0000Z");
        assert_eq!(w.state_of(&name), State::Removed, "{name}");
        assert!(out.contains(&format!("remove {name}")), "{out}");
    }
    let catalog = w.catalog();
    assert!(catalog.open_intents().unwrap().is_empty());
    let events = catalog.events(50).unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.argv.starts_with("lvremove"))
            .count(),
        1,
        "{events:?}"
    );
}

#[test]
fn a_removal_lvm_refuses_among_several_leaves_every_record_right() {
    let w = five_then_last_one();
    // Still open when tried alone: LVM stops at it in the batch (the fake, like lvm2, goes in
    // creation order), and the ones after it are removed one by one.
    w.lvm
        .refuse_removal("vg0", "home-lvsnap-20260301T010000Z", 2);
    let before = w.lvm.invocations().len();
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T04:30:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("removing home-lvsnap-20260301T010000Z failed")
            && out.contains("contains a filesystem in use"),
        "{out}"
    );
    let tools: Vec<String> = w.lvm.invocations()[before..]
        .iter()
        .map(|c| c.split(' ').next().unwrap().to_owned())
        .filter(|t| t == "lvs" || t == "lvremove")
        .collect();
    assert_eq!(
        tools,
        ["lvs", "lvremove", "lvs", "lvremove", "lvremove", "lvremove"],
        "one inventory, the batch, the read-back, then each one left alone"
    );
    assert_eq!(
        w.snapshot_names(),
        [
            "home-lvsnap-20260301T010000Z",
            "home-lvsnap-20260301T040000Z"
        ]
    );
    for (h, state) in [
        (0, State::Removed),
        (1, State::Present),
        (2, State::Removed),
        (3, State::Removed),
        (4, State::Present),
    ] {
        let name = format!("home-lvsnap-20260301T{h:02}0000Z");
        assert_eq!(w.state_of(&name), state, "{name}");
    }
    assert!(w.catalog().open_intents().unwrap().is_empty());
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T04:40:00Z");
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.snapshot_names(), ["home-lvsnap-20260301T040000Z"]);
    assert_eq!(w.state_of("home-lvsnap-20260301T010000Z"), State::Removed);
}

#[test]
fn a_failed_removal_whose_read_back_fails_too_is_settled_by_the_next_run() {
    let w = five_then_last_one();
    w.lvm
        .refuse_removal("vg0", "home-lvsnap-20260301T020000Z", 1);
    // The prune's inventory works; the one after the failed removal fails: which snapshots
    // went is unknown until the next command looks.
    w.lvm
        .fail_later(Tool::Lvs, "", 1, 5, "  lvs: device scan failed\n");
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T04:30:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("removing home-lvsnap-20260301T020000Z failed")
            && out.contains("whether it went is settled by the next run"),
        "{out}"
    );
    assert_eq!(
        w.snapshot_names(),
        [
            "home-lvsnap-20260301T020000Z",
            "home-lvsnap-20260301T030000Z",
            "home-lvsnap-20260301T040000Z"
        ]
    );
    for h in 0..4 {
        let name = format!("home-lvsnap-20260301T{h:02}0000Z");
        assert_eq!(w.state_of(&name), State::Removing, "{name}");
    }
    assert_eq!(w.catalog().open_intents().unwrap().len(), 4);
    let (code, out) = w.lvsnap(&["prune"], "2026-03-01T04:40:00Z");
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.snapshot_names(), ["home-lvsnap-20260301T040000Z"]);
    for h in 0..4 {
        let name = format!("home-lvsnap-20260301T{h:02}0000Z");
        assert_eq!(w.state_of(&name), State::Removed, "{name}");
    }
    assert!(w.catalog().open_intents().unwrap().is_empty());
}
