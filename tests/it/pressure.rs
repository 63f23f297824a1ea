//! Space pressure and the caps on snapshots per origin and per pool, through the CLI layer.
//! The fake pool frees, when a thin snapshot goes, the share set as that snapshot's fill; what
//! real LVM frees is tested in the VM (space-pressure.sh).

use crate::common::Host;

fn snap(volume: &str, hour: u32) -> String {
    format!("{volume}-lvsnap-20260301T{hour:02}0000Z")
}

fn at(hour: u32, minute: u32) -> String {
    format!("2026-03-01T{hour:02}:{minute:02}:00Z")
}

/// Policy `db` (thin vg0/data, pool-data-emergency = 90) and `more` policies; a run every hour
/// from 00:00 for `hours` hours, each snapshot then holding `share` percent of the pool alone;
/// the pool `fill` percent full.
fn db(more: &str, hours: u32, share: f64, fill: f64) -> Host {
    let h = Host::standard(&format!(
        "[policy.db]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = {{ last = 48 }}\npool-data-emergency = 90\n{more}"
    ));
    for hour in 0..hours {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
        h.lvm.set_fill("vg0", &snap("data", hour), share, 0.0);
    }
    h.lvm.set_fill("vg0", "pool", fill, 20.0);
    h
}

/// The reason the catalog gives for `name`'s removal.
fn reason(h: &Host, name: &str) -> String {
    h.catalog()
        .all_snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.reason)
        .unwrap_or_default()
}

#[test]
fn a_full_pool_loses_its_oldest_snapshots_until_below_never_a_pinned_one_or_the_newest() {
    // Each snapshot alone holds 3% of the pool, which a writer filled to 95%.
    let h = db("", 6, 3.0, 95.0);
    let (code, out) = h.lvsnap(&["pin", &snap("data", 1)], &at(5, 10));
    assert_eq!(code, 0, "{out}");
    // A dry run cannot tell what each removal frees: it lists all that may go, in order.
    let (code, out) = h.lvsnap(&["plan"], &at(5, 20));
    assert_eq!(code, 0, "{out}");
    let would: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("for space: thin pool vg0/pool data is 95.0% full, at or above 90% (pool-data-emergency of policy db)"))
        .collect();
    assert_eq!(would.len(), 4, "{out}");
    for (line, hour) in would.iter().zip([0, 2, 3, 4]) {
        assert!(
            line.starts_with(&format!(
                "db vg0/data: would remove {} for space",
                snap("data", hour)
            )),
            "{out}"
        );
    }
    assert!(
        out.contains("a run removes in this order, measures after each, and stops once below"),
        "{out}"
    );
    assert_eq!(h.snapshot_names().len(), 6);
    // The run removes the oldest, skips the pinned one, and stops at 89%.
    let (code, out) = h.lvsnap(&["run"], &at(5, 30));
    assert_eq!(code, 0, "{out}");
    let names = h.snapshot_names();
    assert!(!names.contains(&snap("data", 0)), "{names:?}");
    assert!(!names.contains(&snap("data", 2)), "{names:?}");
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        out.contains(&format!(
            "db vg0/data: remove {} for space: thin pool vg0/pool data is 92.0% full",
            snap("data", 2)
        )),
        "{out}"
    );
    assert!(
        reason(&h, &snap("data", 0)).starts_with("space: thin pool vg0/pool data is 95.0% full"),
        "{}",
        reason(&h, &snap("data", 0))
    );
    // check says so for a day (critical here: the pool is still above pool-data-max).
    let (code, out) = h.lvsnap(&["check"], &at(5, 40));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("db vg0/data: 2 snapshot(s) removed for space in the last 24 h, the newest {} at 2026-03-01T05:30:00Z", snap("data", 2))),
        "{out}"
    );
    let status = h.json(&["status", "--json"], &at(5, 40));
    assert_eq!(
        status["groups"][0]["space_removed"][1]["name"],
        snap("data", 2)
    );
    // Filled again past everything that may go: the pinned and the newest stay, and the run
    // says what holds the rest.
    h.lvm.set_fill("vg0", "pool", 99.0, 20.0);
    let (code, out) = h.lvsnap(&["run"], &at(5, 50));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        h.snapshot_names(),
        [snap("data", 1), snap("data", 5)],
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "space: warning: thin pool vg0/pool data is 93.0% full, at or above 90% (pool-data-emergency of policy db); what is left of policy db may not go: {} (pinned), {} (its group's newest)",
            snap("data", 1),
            snap("data", 5)
        )),
        "{out}"
    );
}

#[test]
fn only_policies_that_set_a_threshold_lose_snapshots_for_space() {
    // Two thin volumes in one pool; only `db` lets its snapshots go for space.
    let h = Host::standard(
        "[policy.db]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = { last = 48 }\npool-data-emergency = 90\n\
         [policy.logs]\nvolumes = [\"vg0/logs\"]\nschedule = \"0 * * * *\"\nkeep = { last = 48 }\n",
    );
    h.lvm.add_thin_lv("vg0", "pool", "logs", 1 << 30);
    for hour in 0..5 {
        h.lvsnap(&["run"], &at(hour, 0));
    }
    for hour in 0..5 {
        h.lvm.set_fill("vg0", &snap("data", hour), 3.0, 0.0);
        h.lvm.set_fill("vg0", &snap("logs", hour), 3.0, 0.0);
    }
    h.lvm.set_fill("vg0", "pool", 95.0, 20.0);
    let (code, out) = h.lvsnap(&["run"], &at(4, 30));
    assert_eq!(code, 0, "{out}");
    let names = h.snapshot_names();
    // logs keeps all five; db loses its two oldest (95% → 92% → 89%) and no more.
    assert_eq!(
        names.iter().filter(|n| n.starts_with("logs-")).count(),
        5,
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("data-"))
            .cloned()
            .collect::<Vec<_>>(),
        [snap("data", 2), snap("data", 3), snap("data", 4)],
        "{out}"
    );
}

#[test]
fn a_volume_group_short_of_free_space_loses_thick_snapshots_until_it_is_not() {
    // vg0: 8 GiB, of which home (1 GiB) and the pool (2 GiB) take 3; each snapshot 512 MiB.
    let h = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"512M\"\nkeep = { last = 10 }\nmax-thick-per-origin = 10\nvg-free-emergency = \"3G\"\n",
    );
    for hour in 0..5 {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
    }
    // 2.5 GiB free now, under 3 GiB: the dry run knows exactly what one removal frees.
    let (code, out) = h.lvsnap(&["run", "--dry-run"], &at(5, 0));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("home vg0/home: would remove {} for space: volume group vg0 has 2.5 GiB free, less than 3 GiB (vg-free-emergency of policy home)", snap("home", 0))),
        "{out}"
    );
    assert_eq!(out.matches("for space").count(), 1, "{out}");
    assert!(!out.contains("measures after each"), "{out}");
    // The run removes the oldest before it takes the next.
    let (code, out) = h.lvsnap(&["run"], &at(5, 0));
    assert_eq!(code, 0, "{out}");
    let names = h.snapshot_names();
    assert!(!names.contains(&snap("home", 0)), "{names:?}");
    assert!(names.contains(&snap("home", 5)), "{names:?}");
    assert!(
        reason(&h, &snap("home", 0)).starts_with("space: volume group vg0 has 2.5 GiB free"),
        "{}",
        reason(&h, &snap("home", 0))
    );
    // A warning for a day, then not.
    let (code, out) = h.lvsnap(&["check"], &at(5, 10));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(
            "LVSNAP WARNING - home vg0/home: 1 snapshot(s) removed for space in the last 24 h"
        ),
        "{out}"
    );
    assert!(out.contains("'home_vg0/home_snapshots'=5"), "{out}");
    let (code, out) = h.lvsnap(&["check"], "2026-03-02T05:10:00Z");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("newest snapshot is 24h old"), "{out}");
    assert!(!out.contains("removed for space"), "{out}");
}

#[test]
fn the_sixth_thick_snapshot_is_refused_unless_the_rules_let_the_oldest_go() {
    let h = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { hourly = 24 }\n",
    );
    let (_, out) = h.lvsnap(&["config", "check"], &at(0, 0));
    assert!(
        out.contains("warning: policy home: its keep rules keep up to 24 snapshots of a volume, but max-thick-per-origin is 5"),
        "{out}"
    );
    assert!(
        out.contains("  limits    at most 5 thick snapshots per origin, 1000 thin snapshots per pool\n  space     never removes snapshots for space (no *-emergency key)"),
        "{out}"
    );
    let v = h.json(&["config", "check", "--json"], &at(0, 0));
    assert_eq!(v["policies"][0]["max_thick_per_origin"], 5, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    for hour in 0..5 {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) = h.lvsnap(&["run"], &at(5, 0));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("vg0/home has 5 thick snapshots, and max-thick-per-origin of policy home is 5 (each thick snapshot copies every write to vg0/home once more); no snapshot of vg0/home taken"),
        "{out}"
    );
    assert_eq!(h.snapshot_names().len(), 5);
    // By hand too.
    let (code, out) = h.lvsnap(&["snapshot", "home"], &at(5, 10));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("max-thick-per-origin of policy home is 5"),
        "{out}"
    );
    // Rules that keep five: the new snapshot is taken, as the run's prune then removes the
    // oldest (for a moment the origin has six).
    h.write_config(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 5 }\n",
    );
    let (code, out) = h.lvsnap(&["run"], &at(6, 0));
    assert_eq!(code, 0, "{out}");
    let names = h.snapshot_names();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.contains(&snap("home", 6)), "{names:?}");
    assert!(!names.contains(&snap("home", 0)), "{names:?}");
    assert!(
        reason(&h, &snap("home", 0)).contains("not among the 5 newest"),
        "{}",
        reason(&h, &snap("home", 0))
    );
}

#[test]
fn limits_that_cannot_be_are_refused_with_the_key() {
    for (line, want) in [
        (
            "max-thick-per-origin = 0",
            "policy.home.max-thick-per-origin",
        ),
        (
            "pool-data-emergency = 101",
            "policy.home.pool-data-emergency",
        ),
        (
            "vg-free-emergency = \"95%\"",
            "policy.home.vg-free-emergency",
        ),
        ("max-per-pool = -1", "policy.home.max-per-pool"),
    ] {
        let h = Host::standard(&format!(
            "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nkeep = {{ last = 2 }}\n{line}\n"
        ));
        let r = h.run(&["config", "check"], &at(0, 0));
        assert_eq!(r.code, 2, "{line}: {r:?}");
        assert!(r.err.contains(want), "{line}: {r:?}");
    }
}

#[test]
fn simulate_models_a_pool_filling_and_what_space_pressure_removes() {
    let h = Host::standard(
        "[policy.db]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = { hourly = 48 }\npool-data-emergency = 90\n",
    );
    let args = [
        "simulate",
        "--policy",
        "db",
        "--from",
        "2026-03-01T00:00:00Z",
        "--to",
        "2026-03-03T00:00:00Z",
        "--fill-rate",
        "2",
        "--pool-start",
        "40",
    ];
    let (code, out) = h.lvsnap(&args, &at(0, 0));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pool: 40% without snapshots, each snapshot holding 2.0% alone: at most 90.0%, 90.0% at the end; 23 snapshot(s) removed for space (pool-data-emergency = 90)"),
        "{out}"
    );
    assert!(!out.contains("the pool is full"), "{out}");
    let mut json = args.to_vec();
    json.push("--json");
    let v = h.json(&json, &at(0, 0));
    assert_eq!(v["pool"]["removed_for_space"], 23);
    assert_eq!(v["pool"]["full_at"], serde_json::Value::Null);
    // Without the threshold, the same writer fills the pool.
    h.write_config(
        "[policy.db]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = { hourly = 48 }\n",
    );
    let (_, out) = h.lvsnap(&args, &at(0, 0));
    assert!(
        out.contains(
            "warning: the pool is full at 2026-03-02T05:00:00Z: every thin volume in it stops"
        ),
        "{out}"
    );
    let r = h.run(
        &[
            "simulate",
            "--policy",
            "db",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-02T00:00:00Z",
            "--pool-start",
            "40",
        ],
        &at(0, 0),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.err.contains("--pool-start needs --fill-rate"), "{r:?}");
}

#[test]
fn at_the_cap_nothing_is_removed_to_make_room_and_other_tools_snapshots_count() {
    let h = Host::standard(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 3 }\n",
    );
    for hour in 0..3 {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
    }
    // Three thick snapshots another tool made of the same origin.
    for n in 0..3 {
        h.lvm.add_snapshot(
            "vg0",
            "home",
            &format!("other{n}"),
            &[],
            "2026-03-01T00:30:00Z".parse().unwrap(),
        );
    }
    // Six now; the run's prune would remove one of lvsnap's three, which leaves six with the
    // new one: refused, and nothing of lvsnap's removed for it.
    let (code, out) = h.lvsnap(&["run"], &at(3, 0));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "vg0/home has 6 thick snapshots, and max-thick-per-origin of policy home is 5"
        ),
        "{out}"
    );
    let ours: Vec<String> = h
        .snapshot_names()
        .into_iter()
        .filter(|n| n.starts_with("home-lvsnap-"))
        .collect();
    assert_eq!(ours, [snap("home", 0), snap("home", 1), snap("home", 2)]);
    assert!(!h
        .lvm
        .invocations()
        .iter()
        .any(|c| c.starts_with("lvremove")));
}

#[test]
fn with_the_clock_set_back_the_snapshots_from_its_future_and_the_newest_before_it_stay() {
    let h = db("", 5, 1.0, 99.0);
    // The clock says 02:30: the 03:00 and 04:00 snapshots are from its future.
    let (code, out) = h.lvsnap(&["prune"], &at(2, 30));
    assert!(code == 0 || code == 3, "{out}");
    assert_eq!(
        h.snapshot_names(),
        [snap("data", 2), snap("data", 3), snap("data", 4)],
        "{out}"
    );
    assert!(
        out.contains(&format!("{} (dated in the future)", snap("data", 3))),
        "{out}"
    );
    assert!(
        out.contains(&format!("{} (its group's newest)", snap("data", 2))),
        "{out}"
    );
}

#[test]
fn removals_that_free_nothing_stop_after_three() {
    // The volume itself fills the pool: its snapshots hold nothing alone.
    let h = db("", 6, 0.0, 95.0);
    let (code, out) = h.lvsnap(&["run"], &at(5, 30));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        h.snapshot_names(),
        [snap("data", 3), snap("data", 4), snap("data", 5)],
        "{out}"
    );
    assert!(
        out.contains("removing 3 snapshots in a row freed nothing there, so the volumes themselves fill it; lvsnap removes no more there until it is below the threshold"),
        "{out}"
    );
    // The next run (or daemon poll) remembers: nothing more goes while the pool stays over.
    let (code, out) = h.lvsnap(&["run"], &at(5, 40));
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.snapshot_names().len(), 3, "{out}");
    assert!(out.contains("lvsnap removes no more there"), "{out}");
    // status, check and the JSON say so.
    let (code, out) = h.lvsnap(&["check"], &at(5, 41));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("thin pool vg0/pool: removing snapshots for space freed nothing, so lvsnap stopped at 2026-03-01T05:30:00Z"),
        "{out}"
    );
    let v = h.json(&["status", "--json"], &at(5, 41));
    assert_eq!(v["space_stalled"][0]["pool"], "vg0/pool", "{v}");
    // Below the threshold once, the stall is forgotten; over it again, removals resume.
    h.lvm.set_fill("vg0", "pool", 50.0, 20.0);
    h.lvsnap(&["run"], &at(5, 45));
    assert!(h.catalog().space_stalls().unwrap().is_empty());
    h.lvm.set_fill("vg0", &snap("data", 3), 10.0, 0.0);
    h.lvm.set_fill("vg0", "pool", 95.0, 20.0);
    let (code, out) = h.lvsnap(&["run"], &at(5, 50));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        h.snapshot_names(),
        [snap("data", 4), snap("data", 5)],
        "{out}"
    );
}

#[test]
fn a_stalled_pool_a_point_fuller_is_tried_again() {
    let h = db("", 6, 0.0, 95.0);
    h.lvsnap(&["run"], &at(5, 30));
    assert_eq!(h.snapshot_names().len(), 3);
    // Half a point fuller: still stalled.
    h.lvm.set_fill("vg0", &snap("data", 3), 10.0, 0.0);
    h.lvm.set_fill("vg0", "pool", 95.5, 20.0);
    h.lvsnap(&["run"], &at(5, 35));
    assert_eq!(h.snapshot_names().len(), 3);
    // A point fuller: tried again, and this time a removal frees space.
    h.lvm.set_fill("vg0", "pool", 96.0, 20.0);
    let (code, out) = h.lvsnap(&["run"], &at(5, 40));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        h.snapshot_names(),
        [snap("data", 4), snap("data", 5)],
        "{out}"
    );
    assert!(h.catalog().space_stalls().unwrap().is_empty());
}

#[test]
fn pruning_one_policy_leaves_the_others_space_pressure_alone() {
    let h = db(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 3 }\n",
        3,
        3.0,
        95.0,
    );
    let (code, out) = h.lvsnap(&["prune", "--policy", "home"], &at(2, 30));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("for space"), "{out}");
    assert!(h.snapshot_names().contains(&snap("data", 0)));
    let (code, out) = h.lvsnap(&["prune", "--policy", "db"], &at(2, 30));
    assert_eq!(code, 0, "{out}");
    assert!(!h.snapshot_names().contains(&snap("data", 0)), "{out}");
}

#[test]
fn origins_sharing_a_pool_at_its_limit_each_take_their_next_snapshot() {
    let h = Host::standard(
        "[policy.db]\nvolumes = [\"vg0/data\", \"vg0/logs\"]\nschedule = \"0 * * * *\"\nkeep = { last = 2 }\nmax-per-pool = 4\n",
    );
    h.lvm.add_thin_lv("vg0", "pool", "logs", 1 << 30);
    for hour in 0..2 {
        let (code, out) = h.lvsnap(&["run"], &at(hour, 0));
        assert_eq!(code, 0, "{out}");
    }
    // Four thin snapshots in the pool: each origin's next one is taken, as the run's prune
    // then removes each origin's oldest.
    let (code, out) = h.lvsnap(&["run"], &at(2, 0));
    assert_eq!(code, 0, "{out}");
    let mut names = h.snapshot_names();
    names.sort();
    assert_eq!(
        names,
        [
            snap("data", 1),
            snap("data", 2),
            snap("logs", 1),
            snap("logs", 2)
        ],
        "{out}"
    );
    // With the limit lowered under what is there, none is taken, and the run says why.
    h.write_config(
        "[policy.db]\nvolumes = [\"vg0/data\", \"vg0/logs\"]\nschedule = \"0 * * * *\"\nkeep = { last = 2 }\nmax-per-pool = 3\n",
    );
    let (code, out) = h.lvsnap(&["run"], &at(3, 0));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("thin pool vg0/pool holds 4 thin snapshots, and max-per-pool of policy db is 3 (thin_check at boot slows with each); it was past the limit before this run"),
        "{out}"
    );
}

#[test]
fn a_removal_for_space_cut_off_by_kill_9_keeps_its_reason() {
    let h = db("", 3, 3.0, 50.0);
    let name = snap("data", 0);
    let id = h
        .catalog()
        .all_snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .id;
    // What a run leaves when killed between lvremove and its record: the intent with its
    // reason, and the volume gone.
    let now = "2026-03-01T02:30:00Z".parse().unwrap();
    h.catalog()
        .set_state(
            id,
            lvsnap::catalog::State::Removing,
            Some("space: thin pool vg0/pool data is 95.0% full"),
            now,
        )
        .unwrap();
    h.lvm.remove_behind_back("vg0", &name);
    let (code, out) = h.lvsnap(&["run"], &at(2, 40));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        reason(&h, &name),
        "space: thin pool vg0/pool data is 95.0% full; removal confirmed after an interruption"
    );
    // It still counts as removed for space.
    let (_, out) = h.lvsnap(&["check"], &at(2, 50));
    assert!(out.contains("1 snapshot(s) removed for space"), "{out}");
}
