//! The restic engine through the CLI layer, with a stand-in `restic` that answers in restic's
//! own output shapes (tests/fixtures/restic, captured from restic 0.14): what lvsnap asks of
//! restic, what it records, and how it fails. A real repository server, real snapshots and
//! real restores are tested in the VM (backup-restic.sh).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::Host;

/// vg0's `home` backed up with restic into a repository the stand-in keeps in `fake/`; the
/// password and env files private, the env file telling the stand-in where its state is.
fn host(extra: &str) -> (Host, PathBuf) {
    let h = Host::standard("");
    let d = h.dir.path().to_path_buf();
    let fake = d.join("fake");
    std::fs::create_dir(&fake).unwrap();
    private(&d.join("restic.pass"), "secret\n");
    private(
        &d.join("restic.env"),
        &format!("FAKE_RESTIC={}\n", fake.display()),
    );
    h.add_policies(&format!(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = {{ last = 48 }}\n\
         [policy.home.backup]\nschedule = \"0 2 * * *\"\nengine = \"restic\"\nrepository = \"rest:http://127.0.0.1:8000/\"\n\
         password-file = \"{0}/restic.pass\"\nenv-file = \"{0}/restic.env\"\nhost = \"web01\"\nexclude = [\"tmp\", \"a*b\"]\n{extra}\n",
        d.display()
    ));
    (h, fake)
}

fn private(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Every restic command the stand-in ran, its words joined by spaces.
fn calls(fake: &Path) -> Vec<String> {
    std::fs::read_to_string(fake.join("argv"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim_end_matches('\0').replace('\0', " "))
        .collect()
}

/// The full ID of the stand-in's `n`th snapshot (counting from 1).
fn id(n: u64) -> String {
    format!("{:08x}{n:056x}", 0xc563_fc1b + n)
}

fn snapshots(fake: &Path) -> String {
    std::fs::read_to_string(fake.join("snapshots")).unwrap_or_default()
}

#[test]
fn a_backup_is_one_tagged_restic_snapshot_at_the_snapshots_time_and_is_recorded() {
    let (h, fake) = host("keep = { last = 2 }");
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T01:05:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.contains("backup home vg0/home: made restic snapshot c563fc1c (20260302T010000Z) from home-lvsnap-20260302T010000Z"),
        "{r:?}"
    );
    assert!(r.out.contains("added 1.3 KiB to the repository"), "{r:?}");
    let calls = calls(&fake);
    let backup = calls.iter().find(|c| c.contains(" backup ")).unwrap();
    let d = h.path();
    assert!(
        backup.starts_with(&format!(
            "--password-file {d}/restic.pass --cache-dir {d}/restic-cache --quiet backup --json --host web01 --time 2026-03-02 01:00:00 \
             --tag lvsnap,lvsnap-policy=home,lvsnap-volume=vg0/home,lvsnap-snapshot=home-lvsnap-20260302T010000Z,lvsnap-backup=1 --one-file-system --exclude="
        )),
        "{backup}"
    );
    // Excludes are anchored at the mount point and match one path each.
    assert!(backup.contains("/tmp --exclude="), "{backup}");
    assert!(backup.ends_with("/a\\*b ."), "{backup}");
    // The repository is in restic's environment, not on its command line (`ps` shows that).
    assert!(!calls.iter().any(|c| c.contains("127.0.0.1")), "{calls:?}");
    assert_eq!(
        std::fs::read_to_string(fake.join("repository")).unwrap(),
        "rest:http://127.0.0.1:8000/\n"
    );
    // The repository is opened (password, reachability) before anything else happens.
    assert!(calls[0].ends_with("cat config --no-lock"), "{calls:?}");
    let b = &h.catalog().backups(None).unwrap()[0];
    assert_eq!(b.engine, "restic");
    assert_eq!(b.remote_id.as_deref(), Some(&*id(1)));
    assert_eq!(b.bytes_added, Some(1345));
    // The manifest and the snapshot's record stay in the state directory, private.
    let dir = h.dir.path().join("restic/home/vg0/home");
    for f in ["20260302T010000Z.manifest", "20260302T010000Z.restic"] {
        let m = std::fs::metadata(dir.join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    let v = h.json(&["backups", "--json"], "2026-03-02T01:06:00Z");
    assert_eq!(v[0]["restic_id"], id(1));
    assert_eq!(v[0]["bytes_added"], 1345);
}

#[test]
fn pruning_forgets_only_this_hosts_recorded_snapshots() {
    let (h, fake) = host("keep = { last = 1 }");
    // Another host's lvsnap snapshot and one made by hand, in the same repository.
    std::fs::write(
        fake.join("snapshots"),
        format!(
            "{{\"time\":\"2026-03-01T00:00:00Z\",\"hostname\":\"web02\",\"tags\":[\"lvsnap\",\"lvsnap-policy=home\"],\"id\":\"{0}\",\"short_id\":\"{1}\"}}\n\
             {{\"time\":\"2026-03-01T00:00:00Z\",\"hostname\":\"web01\",\"tags\":[\"handmade\"],\"id\":\"{2}\",\"short_id\":\"{3}\"}}\n",
            "aa".repeat(32), "aaaaaaaa", "bb".repeat(32), "bbbbbbbb"
        ),
    )
    .unwrap();
    for t in [
        "2026-03-02T01:00:00Z",
        "2026-03-02T02:00:00Z",
        "2026-03-02T03:00:00Z",
    ] {
        h.lvsnap(&["snapshot", "home"], t);
        let r = h.run(&["backup", "home"], t);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let forgets: Vec<String> = calls(&fake)
        .into_iter()
        .filter(|c| c.contains(" forget "))
        .collect();
    assert_eq!(forgets.len(), 2, "{forgets:?}");
    assert!(
        forgets[0].ends_with(&format!("forget {}", id(1))),
        "{forgets:?}"
    );
    assert!(
        forgets[1].ends_with(&format!("forget {}", id(2))),
        "{forgets:?}"
    );
    let left = snapshots(&fake);
    assert!(
        left.contains(&"aa".repeat(32)),
        "another host's snapshot was forgotten"
    );
    assert!(
        left.contains(&"bb".repeat(32)),
        "a snapshot made by hand was forgotten"
    );
    assert!(left.contains(&id(3)), "{left}");
    assert_eq!(left.lines().count(), 3, "{left}");
    // Data of forgotten snapshots is freed by a prune (weekly by default, due at once here).
    assert_eq!(
        calls(&fake)
            .iter()
            .filter(|c| c.ends_with(" prune"))
            .count(),
        1
    );
}

#[test]
fn a_recorded_id_that_is_not_this_hosts_is_never_forgotten() {
    let (h, fake) = host("keep = { last = 1 }");
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.lvsnap(&["backup", "home"], "2026-03-02T01:00:00Z");
    // The repository now says the recorded snapshot belongs to another host.
    let s = snapshots(&fake).replace("\"hostname\":\"web01\"", "\"hostname\":\"web02\"");
    std::fs::write(fake.join("snapshots"), s).unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T02:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T02:00:00Z");
    assert!(
        r.out
            .contains("is not one of host web01's lvsnap snapshots; lvsnap forgets only its own"),
        "{r:?}"
    );
    assert!(!calls(&fake).iter().any(|c| c.contains(" forget ")));
    assert_eq!(
        h.catalog().backups(None).unwrap()[0].state.as_str(),
        "complete"
    );
}

#[test]
fn credential_files_must_be_private_and_are_checked_before_anything_is_mounted() {
    let (h, fake) = host("keep = { last = 2 }\nsource = \"fresh\"");
    std::fs::set_permissions(
        h.dir.path().join("restic.pass"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let r = h.run(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("restic.pass refused: its mode 0644 lets others read or change it; make it root's alone: chown root:root"), "{r:?}");
    assert!(
        h.snapshot_names().is_empty(),
        "a temporary snapshot was taken"
    );
    assert!(h.catalog().open_mounts().unwrap().is_empty());
    assert!(calls(&fake).is_empty());
    std::fs::set_permissions(
        h.dir.path().join("restic.pass"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    private(
        &h.dir.path().join("restic.env"),
        "FAKE_RESTIC=x\nLD_PRELOAD=/tmp/evil.so\n",
    );
    let r = h.run(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert!(
        r.out
            .contains("restic.env line 2: LD_PRELOAD is lvsnap's to set, not the backend's"),
        "{r:?}"
    );
    assert!(h.snapshot_names().is_empty());
}

#[test]
fn restics_failures_name_the_repository_and_the_fix() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/restic");
    let cases = [
        ("wrong-password.stderr", "the password in "),
        ("no-repository.stderr", "there is no restic repository at rest:http://127.0.0.1:8000/; create it with `restic -r rest:http://127.0.0.1:8000/ init --password-file"),
        ("unreachable.stderr", "cannot reach restic repository rest:http://127.0.0.1:8000/: unable to open config file: client.Head: Head \"http://127.0.0.1:9/config\": dial tcp 127.0.0.1:9: connect: connection refused"),
    ];
    for (file, want) in cases {
        let (h, fake) = host("keep = { last = 2 }");
        std::fs::copy(format!("{fixtures}/{file}"), fake.join("fail-cat")).unwrap();
        h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
        let r = h.run(&["backup", "home"], "2026-03-02T01:05:00Z");
        assert_eq!(r.code, 1, "{file}: {r:?}");
        assert!(r.out.contains(want), "{file}: {r:?}");
        assert!(h.catalog().open_mounts().unwrap().is_empty());
    }
}

#[test]
fn a_stale_lock_of_a_dead_restic_on_this_host_is_removed_and_the_command_retried() {
    let (h, fake) = host("keep = { last = 1 }");
    let this = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    // A pid that is not running: above the kernel's limit.
    std::fs::write(
        fake.join("fail-forget"),
        format!("unable to create lock in backend: repository is already locked by PID 4194305 on {this} by root (UID 0, GID 0)\n"),
    )
    .unwrap();
    // The stand-in's `unlock` must remove the failure for the retry to pass.
    std::fs::write(fake.join("unlock-clears"), "").unwrap();
    for t in ["2026-03-02T01:00:00Z", "2026-03-02T02:00:00Z"] {
        h.lvsnap(&["snapshot", "home"], t);
        h.lvsnap(&["backup", "home"], t);
    }
    let c = calls(&fake);
    let at = c
        .iter()
        .position(|x| x.ends_with(" unlock"))
        .expect("restic unlock ran");
    assert!(c[at + 1].contains(" forget "), "{c:?}");
    // A lock held by another host is left alone: the run says who holds it.
    std::fs::write(
        fake.join("fail-forget"),
        "unable to create lock in backend: repository is already locked by PID 1 on otherhost by root (UID 0, GID 0)\n",
    )
    .unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T03:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T03:00:00Z");
    assert!(
        r.out
            .contains("is locked by restic (pid 1) on otherhost; lvsnap retries on its next run"),
        "{r:?}"
    );
    assert_eq!(
        calls(&fake)
            .iter()
            .filter(|x| x.ends_with(" unlock"))
            .count(),
        1
    );
}

#[test]
fn restic_keys_are_checked_with_the_engine() {
    let h = Host::standard("");
    h.add_policies(
        "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"0 * * * *\"\nsize = \"64M\"\nkeep = { last = 2 }\n\
         [policy.home.backup]\nschedule = \"0 2 * * *\"\nengine = \"restic\"\ntarget = \"/srv\"\nhost = \"a,b\"\nkeep = { last = 2 }\n\n\
         [policy.data]\nvolumes = [\"vg0/data\"]\nschedule = \"0 * * * *\"\nkeep = { last = 2 }\n\
         [policy.data.backup]\nschedule = \"0 2 * * *\"\ntarget = \"/srv\"\nrepository = \"/srv/r\"\nkeep = { last = 2 }\n",
    );
    let r = h.run(&["config", "check"], "2026-03-02T01:00:00Z");
    assert_eq!(r.code, 2, "{r:?}");
    let all = format!("{}{}", r.out, r.err);
    for want in [
        "policy.home.backup.repository: missing (engine \"restic\" needs one)",
        "policy.home.backup.password-file: missing",
        "policy.home.backup.host: \"a,b\" is not a host name",
        "policy.home.backup.target: engine \"restic\" writes to its repository, not to a target directory",
        "policy.data.backup.repository: repository is only read by engine = \"restic\", not rsync",
    ] {
        assert!(all.contains(want), "lacks {want:?}:\n{all}");
    }
}
