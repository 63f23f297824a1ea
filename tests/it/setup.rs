//! The first hour on a host: a policy file that defines no policy, and `lvsnap init` where no
//! volume can have one. (What `init` proposes for mounted volumes, and `doctor`, are tested on
//! real LVM in the systemd guest: tests/vm/scenarios-systemd/init-doctor.sh.)

use crate::common::Host;

const NOW: &str = "2026-03-02T05:00:00Z";

#[test]
fn without_a_policy_run_explains_and_exits_0_and_status_points_to_init() {
    let h = Host::standard("# nothing here yet\n");
    let r = h.run(&["run"], NOW);
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    assert!(r.out.contains("no policy yet in "), "{}", r.out);
    assert!(
        r.out.contains("`lvsnap init` proposes a policy"),
        "{}",
        r.out
    );
    assert!(
        !std::path::Path::new(&format!("{}/catalog.db", h.path())).exists(),
        "a run without policies made a catalog"
    );
    let (code, out) = h.lvsnap(&["run", "--json"], NOW);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["reconciled"][0]
            .as_str()
            .unwrap()
            .contains("no policy yet"),
        "{out}"
    );
    let (code, out) = h.lvsnap(&["status"], NOW);
    assert_eq!(code, 0);
    assert!(out.starts_with("no policy yet — `lvsnap init`"), "{out}");
}

#[test]
fn init_where_nothing_is_mounted_proposes_nothing_says_why_and_writes_nothing() {
    let h = Host::standard("");
    let r = h.run(&["init", "--write"], NOW);
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    assert!(
        r.out.contains("no volume to propose a policy for"),
        "{}",
        r.out
    );
    assert!(r.out.contains("vg0/home: not mounted"), "{}", r.out);
    assert!(r.out.contains("vg0/pool: a thin pool"), "{}", r.out);
    assert!(r.out.contains("nothing written"), "{}", r.out);
    assert!(!std::path::Path::new(&format!("{}/policy.d", h.path())).exists());

    let r = h.run(&["init", "--volumes", "vg0/home,vg0/nope"], NOW);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(
        r.err.contains("--volumes vg0/nope: no such logical volume"),
        "{}",
        r.err
    );
    let r = h.run(&["init", "--volumes", "vg0/home"], NOW);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(
        r.err.contains("--volumes vg0/home: not mounted"),
        "{}",
        r.err
    );
}

#[test]
fn init_refuses_to_start_from_invalid_policy_files() {
    let h = Host::standard("[policy.home]\nvolumes = [\"vg0/home\"]\n");
    let r = h.run(&["init"], NOW);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(r.err.contains("missing key \"schedule\""), "{}", r.err);
}
