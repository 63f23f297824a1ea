//! The restic engine through the CLI layer, with a stand-in `restic` that answers in restic's
//! own output shapes (tests/fixtures/restic, captured from restic 0.14): what lvsnap asks of
//! restic, what it records, and how it fails. A real repository server, real snapshots and
//! real restores are tested in the VM (backup-restic.sh).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::Host;

const LATER: &str = "2026-03-02T02:00:00Z";

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

/// A snapshot of home at `snap`, backed up at `at`, which must succeed.
#[track_caller]
fn snapshot_and_back_up(h: &Host, snap: &str, at: &str) {
    h.lvsnap(&["snapshot", "home"], snap);
    let r = h.run(&["backup", "home"], at);
    assert_eq!(r.code, 0, "{r:?}");
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

/// Every command of the stand-in fails as restic does when its server does not answer.
fn unreachable(fake: &Path) {
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/restic/unreachable.stderr"
        ),
        fake.join("fail-all"),
    )
    .unwrap();
}

/// The stand-in's `COMMAND` fails on an exclusive lock that a killed restic of this host left
/// (a forget's, a prune's, a check's) until `restic unlock` removes it.
fn stale_lock(fake: &Path, command: &str) {
    let this = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    // A pid that is not running: above the kernel's limit.
    std::fs::write(
        fake.join(format!("fail-{command}")),
        format!("unable to create lock in backend: repository is already locked exclusively by PID 4194305 on {this} by root (UID 0, GID 0)\n"),
    )
    .unwrap();
    std::fs::write(fake.join("unlock-clears"), "").unwrap();
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
             --tag lvsnap,lvsnap-policy=home,lvsnap-volume=vg0/home,lvsnap-snapshot=home-lvsnap-20260302T010000Z,lvsnap-run="
        )),
        "{backup}"
    );
    // The run tag is random, recorded before restic ran.
    let tag = h.catalog().backups(None).unwrap()[0]
        .run_tag
        .clone()
        .unwrap();
    assert_eq!(tag.len(), 32, "{tag}");
    assert!(
        backup.contains(&format!("lvsnap-run={tag} --one-file-system --exclude=")),
        "{backup}"
    );
    // Excludes are anchored at the mount point and match one path each.
    assert!(backup.contains("/tmp --exclude="), "{backup}");
    assert!(backup.contains("/a\\*b --exclude-file="), "{backup}");
    assert!(backup.ends_with(" ."), "{backup}");
    // What the walk leaves out comes through a FIFO, read once restic has started: here
    // nothing.
    assert_eq!(
        std::fs::read_to_string(fake.join("exclude-file")).unwrap(),
        ""
    );
    // The repository is in restic's environment, not on its command line (`ps` shows that).
    assert!(!calls.iter().any(|c| c.contains("127.0.0.1")), "{calls:?}");
    assert_eq!(
        std::fs::read_to_string(fake.join("repository")).unwrap(),
        "rest:http://127.0.0.1:8000/\n"
    );
    // The repository is opened (password, reachability) before anything else happens; the
    // backup's listing, compared with the manifest, names the snapshot's full ID: three restic
    // runs in all.
    assert!(calls[0].ends_with("cat config --no-lock"), "{calls:?}");
    let verbs: Vec<&str> = calls
        .iter()
        .map(|c| c.split(' ').nth(5).unwrap_or_default())
        .collect();
    assert_eq!(verbs, ["cat", "backup", "ls"], "{calls:?}");
    // Status lines for the progress bar: `--quiet` silences them unless a rate is set, which
    // only the backup needs.
    assert_eq!(
        std::fs::read_to_string(fake.join("fps")).unwrap(),
        "cat -\nbackup 2\nls -\n"
    );
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
fn a_prune_recorded_while_the_clock_ran_ahead_does_not_hold_off_the_next() {
    let (h, fake) = host("keep = { last = 1 }\nprune-schedule = \"0 * * * *\"");
    let prunes = || {
        calls(&fake)
            .iter()
            .filter(|c| c.ends_with(" prune"))
            .count()
    };
    for t in ["2026-03-02T01:00:00Z", "2026-03-02T02:00:00Z"] {
        h.lvsnap(&["snapshot", "home"], t);
        assert_eq!(h.run(&["backup", "home"], t).code, 0);
    }
    assert_eq!(prunes(), 1);
    // The clock ran decades ahead when the last prune was recorded, then was set right.
    let future = chrono::DateTime::parse_from_rfc3339("2099-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    h.catalog()
        .note_repository("rest:http://127.0.0.1:8000/", Some(future))
        .unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T03:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T03:00:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        calls(&fake)
            .iter()
            .any(|c| c.ends_with(&format!("forget {}", id(2)))),
        "{:?}",
        calls(&fake)
    );
    assert_eq!(prunes(), 2, "a prune dated 2099 held off this one");
    assert!(
        r.out.contains("the last prune of restic repository rest:http://127.0.0.1:8000/ is recorded at 2099-01-01T00:00:00Z, in the future (the clock ran ahead then); it is not counted"),
        "{r:?}"
    );
    // A prune in the current period still holds off the next one (the engine's clock is the
    // real one after a backup: the two runs fall in the same hour).
    h.lvsnap(&["snapshot", "home"], "2026-03-02T04:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T04:00:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        calls(&fake)
            .iter()
            .any(|c| c.ends_with(&format!("forget {}", id(3)))),
        "{:?}",
        calls(&fake)
    );
    assert_eq!(prunes(), 2, "pruned twice in one period");
    assert!(!r.out.contains("in the future"), "{r:?}");
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
    // The keep rules let it go, but its snapshot stays, and stays pending: each run says why.
    let b = &h.catalog().backups(None).unwrap()[0];
    assert_eq!(b.state.as_str(), "removed");
    assert!(b.remote_pending);
    assert!(snapshots(&fake).contains(&id(1)));
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
    // Storage that is full or read-only, as restic 0.14 says it (a local repository on a
    // tmpfs, full, then remounted read-only): the backup fails, saying which and what to do,
    // and is recorded failed.
    let cases = [
        ("full.stderr", "restic repository rest:http://127.0.0.1:8000/ is full (unable to save snapshot: write /tmp/tfs/repo/data/61/615a82f7446284fc275cdd39a50a1acb4d90117aab483fadcec1a25db8ab9741-tmp-2715275755: no space left on device); free space there"),
        ("read-only.stderr", "restic repository rest:http://127.0.0.1:8000/ cannot be written (/tmp/tfs/repo/locks/138778d6bc0e1fe4d986c631553328ca69845b7781cbe196fa316e548059e7de-tmp-3870142646: read-only file system); make its storage writable again"),
    ];
    for (file, want) in cases {
        let (h, fake) = host("keep = { last = 2 }");
        std::fs::copy(format!("{fixtures}/{file}"), fake.join("fail-backup")).unwrap();
        h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
        let r = h.run(&["backup", "home"], "2026-03-02T01:05:00Z");
        assert_eq!(r.code, 1, "{file}: {r:?}");
        assert!(r.out.contains(want), "{file}: {r:?}");
        assert!(h.catalog().open_mounts().unwrap().is_empty());
        let b = &h.catalog().backups(None).unwrap()[0];
        assert_eq!(b.state.as_str(), "failed", "{file}");
        assert!(
            b.error.as_deref().unwrap_or_default().contains(want),
            "{file}: {b:?}"
        );
    }
}

#[test]
fn a_stale_lock_of_a_dead_restic_on_this_host_is_removed_and_the_command_retried() {
    let (h, fake) = host("keep = { last = 1 }");
    stale_lock(&fake, "forget");
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

#[test]
fn backups_are_watched_by_check_status_and_the_metrics() {
    let (h, fake) = host("keep = { last = 2 }");
    let prom = h.dir.path().join("lvsnap.prom");
    let cfg = h.dir.path().join("lvsnap.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[settings]\n",
        &format!("[settings]\nmetrics-file = \"{}\"\n", prom.display()),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let labels = "{policy=\"home\",volume=\"vg0/home\",engine=\"restic\"}";
    h.lvsnap(&["run"], "2026-03-02T02:00:00Z");
    let m = std::fs::read_to_string(&prom).unwrap();
    for want in [
        format!("lvsnap_backup_newest_age_seconds{labels} 0"),
        // (the time it finished, by the real clock)
        format!("lvsnap_backup_last_success_timestamp_seconds{labels} "),
        format!("lvsnap_backup_added_bytes{labels} 1345"),
        format!("lvsnap_backup_failed{labels} 0"),
    ] {
        assert!(m.contains(&want), "lacks {want}:\n{m}");
    }
    let (code, out) = h.lvsnap(&["check"], "2026-03-02T02:10:00Z");
    assert_eq!(code, 0, "{out}");
    // The next night the repository cannot be reached: recorded, and critical at once.
    unreachable(&fake);
    let (code, out) = h.lvsnap(&["run"], "2026-03-03T02:00:00Z");
    assert_eq!(code, 1, "{out}");
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains(&format!("lvsnap_backup_failed{labels} 1")),
        "{m}"
    );
    assert!(
        m.contains(&format!("lvsnap_backup_newest_age_seconds{labels} 86400")),
        "{m}"
    );
    let (code, out) = h.lvsnap(&["check"], "2026-03-03T02:10:00Z");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("home vg0/home: backup vg0/home@20260303T020000Z failed: cannot reach restic repository rest:http://127.0.0.1:8000/"),
        "{out}"
    );
    let (_, out) = h.lvsnap(&["status"], "2026-03-03T02:10:00Z");
    assert!(
        out.contains("backup    FAILED: vg0/home@20260303T020000Z: cannot reach"),
        "{out}"
    );
    // Back the night after; a verification that fails is critical too.
    std::fs::remove_file(fake.join("fail-all")).unwrap();
    let (code, out) = h.lvsnap(&["run"], "2026-03-04T02:00:00Z");
    assert_eq!(code, 0, "{out}");
    let (code, _) = h.lvsnap(&["check"], "2026-03-04T02:10:00Z");
    assert_eq!(code, 0);
    let manifest = h
        .dir
        .path()
        .join("restic/home/vg0/home/20260304T020000Z.manifest");
    let text = std::fs::read_to_string(&manifest).unwrap() + "# edited\n";
    std::fs::write(&manifest, text).unwrap();
    let (code, out) = h.lvsnap(
        &["verify", "vg0/home@20260304T020000Z"],
        "2026-03-04T03:00:00Z",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("manifest file altered"), "{out}");
    let (code, out) = h.lvsnap(&["check"], "2026-03-04T03:10:00Z");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("backup vg0/home@20260304T020000Z failed verification"),
        "{out}"
    );
    let (_, out) = h.lvsnap(&["run"], "2026-03-04T03:20:00Z");
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains(&format!("lvsnap_backup_last_verify_success{labels} 0")),
        "{out}\n{m}"
    );
}

#[test]
fn a_snapshot_restic_made_for_a_backup_that_then_failed_is_forgotten_and_no_other() {
    let (h, fake) = host("keep = { last = 5 }");
    // Same host, lvsnap's tag, another run's tag: made by another catalog under this name.
    std::fs::write(
        fake.join("snapshots"),
        format!(
            "{{\"time\":\"2026-03-01T00:00:00Z\",\"hostname\":\"web01\",\"tags\":[\"lvsnap\",\"lvsnap-policy=home\",\"lvsnap-run=0123\"],\"id\":\"{0}\",\"short_id\":\"{1}\"}}\n",
            "aa".repeat(32),
            "aaaaaaaa"
        ),
    )
    .unwrap();
    // restic makes the snapshot, then listing it fails: the backup fails after the fact.
    std::fs::write(fake.join("fail-ls"), "Fatal: load tree: connection reset\n").unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    let failed = h.catalog().backups(None).unwrap()[0].clone();
    assert_eq!(failed.state.as_str(), "failed");
    // The same run's pruning found it by its run tag and forgot it.
    let forgets: Vec<String> = calls(&fake)
        .into_iter()
        .filter(|c| c.contains(" forget "))
        .collect();
    assert_eq!(forgets.len(), 1, "{forgets:?}");
    assert!(
        forgets[0].ends_with(&format!("forget {}", id(1))),
        "{forgets:?}"
    );
    let left = snapshots(&fake);
    assert!(
        left.contains(&"aa".repeat(32)),
        "another run's snapshot was forgotten"
    );
    assert!(!h.catalog().backups(None).unwrap()[0].remote_pending);
}

#[test]
fn a_password_in_the_repository_url_is_never_shown() {
    let (h, fake) = host("keep = { last = 2 }");
    let cfg = h.dir.path().join("lvsnap.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "rest:http://127.0.0.1:8000/",
        "rest:http://web01:s3cr/t@127.0.0.1:8000/",
    );
    std::fs::write(&cfg, text).unwrap();
    // The policy file holds a password now: readable by others, it is refused as a whole,
    // at the key, before anything runs (`config check` says the same).
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = h.run(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err.contains(&format!(
            "{0}:16:14: policy.home.backup.repository: the URL holds a password, but {0} can be read by others (mode 0644)\n    hint: make the file root's alone: chown root:root {0} && chmod 600 {0}",
            cfg.display()
        )),
        "{r:?}"
    );
    assert!(!r.err.contains("s3cr"), "{r:?}");
    assert!(
        calls(&fake).is_empty(),
        "restic was run: {:?}",
        calls(&fake)
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        fake.join("fail-cat"),
        "Fatal: unable to open config file: client.Head: Head \"http://web01:s3cr/t@127.0.0.1:8000/config\": dial tcp 127.0.0.1:8000: connect: connection refused\n",
    )
    .unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T01:06:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out
            .contains("cannot reach restic repository rest:http://web01:***@127.0.0.1:8000/"),
        "{r:?}"
    );
    assert!(!r.out.contains("s3cr"), "{r:?}");
    let recorded = format!("{:?}", h.catalog().backups(None).unwrap());
    assert!(!recorded.contains("s3cr"), "{recorded}");
    // restic got the repository in its environment, password and all.
    assert_eq!(
        std::fs::read_to_string(fake.join("repository")).unwrap(),
        "rest:http://web01:s3cr/t@127.0.0.1:8000/\n"
    );
}

#[test]
fn a_dry_run_restore_plans_on_the_manifest_and_restores_nothing() {
    use std::os::unix::ffi::OsStrExt;
    let (h, fake) = host("keep = { last = 2 }");
    snapshot_and_back_up(&h, "2026-03-02T01:00:00Z", "2026-03-02T01:05:00Z");
    // The host's snapshot mounts are empty: the backup's manifest becomes one of a fuller tree
    // (as if the snapshot had held it), first without the catalog's digest to match.
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("alice/real")).unwrap();
    std::fs::write(t.join("alice/real/file"), vec![1u8; 3 << 20]).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t.join("alice/docs")).unwrap();
    std::fs::write(t.join(std::ffi::OsStr::from_bytes(b"bad\xffbyte")), "x").unwrap();
    std::fs::write(t.join("other"), "not asked for").unwrap();
    let mut text = lvsnap::manifest::Manifest::of_tree(t, 1).unwrap().to_text();
    // A manifest naming an entry below a link (no walk writes one): never outlined through it.
    let planted = text
        .lines()
        .find(|l| l.ends_with(" alice/real/file"))
        .unwrap()
        .replace(" alice/real/file", " alice/docs/planted");
    text.push_str(&planted);
    text.push('\n');
    let manifest = h
        .dir
        .path()
        .join("restic/home/vg0/home/20260302T010000Z.manifest");
    std::fs::write(&manifest, &text).unwrap();
    let gen = "vg0/home@20260302T010000Z";
    // The dry run of `alice`, into a destination that does not exist (and never will).
    let dry_run_alice = || {
        h.run(
            &[
                "restore",
                gen,
                "alice",
                "--to",
                "/nonexistent/x",
                "--dry-run",
            ],
            LATER,
        )
    };
    let r = dry_run_alice();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("was changed after the backup was made"),
        "{r:?}"
    );
    assert!(r.err.contains(&format!("lvsnap verify {gen}")), "{r:?}");
    rusqlite::Connection::open(h.dir.path().join("catalog.db"))
        .unwrap()
        .execute(
            "UPDATE backups SET manifest_sha256 = ?1",
            [lvsnap::manifest::sha256_hex(text.as_bytes())],
        )
        .unwrap();
    let before = calls(&fake).len();
    let r = dry_run_alice();
    let (code, out) = (r.code, r.out);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  alice/real/file\n"), "{out}");
    assert!(
        out.contains("  alice/docs\n"),
        "the link is listed as itself: {out}"
    );
    assert!(out.contains("2 file(s), 3 MiB;"), "{out}");
    assert!(!out.contains("other"), "{out}");
    // The repository is asked whether it holds the snapshot, and nothing is restored from it.
    let asked = calls(&fake)[before..].to_vec();
    assert!(
        asked
            .iter()
            .any(|c| c.ends_with(&format!("snapshots --json --no-lock {}", id(1)))),
        "{asked:?}"
    );
    assert!(!asked.iter().any(|c| c.contains(" restore ")), "{asked:?}");
    assert!(!out.contains("planted"), "{out}");
    assert!(!outside.path().join("planted").exists());
    // A path through a link is refused, as from any backup; a name that is not UTF-8 is
    // planned on byte for byte.
    let r = h.run(
        &[
            "restore",
            gen,
            "alice/docs/planted",
            "--to",
            "/nonexistent/x",
            "--dry-run",
        ],
        LATER,
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err
            .contains("alice/docs/planted goes through alice/docs, a symbolic link"),
        "{r:?}"
    );
    let os = std::ffi::OsStr::new;
    let args = [
        os("restore"),
        os(gen),
        std::ffi::OsStr::from_bytes(b"bad\xffbyte"),
        os("--to"),
        os("/nonexistent/x"),
        os("--dry-run"),
    ];
    let (code, out) = h.lvsnap_os(&args, LATER);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 file(s), 1 B;"), "{out}");
    let staged: Vec<_> = std::fs::read_dir(h.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lvsnap-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    assert!(h.catalog().stagings().unwrap().is_empty());
    // A snapshot the repository no longer holds is said so, before anything is planned.
    std::fs::write(fake.join("snapshots"), "").unwrap();
    let r = dry_run_alice();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("restic snapshot c563fc1c of backup vg0/home@20260302T010000Z is not in repository rest:http://127.0.0.1:8000/"),
        "{r:?}"
    );
}

/// vg0/home backed up once into the stand-in's repository, then the policy's repository
/// string replaced by `to` and a second backup made, which prunes the first (keep last 1).
fn moved_repository(
    to: &str,
    new_repository_is_empty: bool,
) -> (Host, PathBuf, crate::common::Ran) {
    let (h, fake) = host("keep = { last = 1 }");
    snapshot_and_back_up(&h, "2026-03-02T01:00:00Z", "2026-03-02T01:05:00Z");
    let config = h.dir.path().join("lvsnap.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("rest:http://127.0.0.1:8000/", to)).unwrap();
    if new_repository_is_empty {
        std::fs::write(fake.join("snapshots"), "").unwrap();
    }
    h.lvsnap(&["snapshot", "home"], "2026-03-02T02:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T02:05:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    (h, fake, r)
}

#[test]
fn a_backup_in_a_repository_the_policy_no_longer_names_is_pointed_at_not_forgotten() {
    let (h, fake, r) = moved_repository("/srv/restic-new", true);
    assert!(
        r.out.contains(&format!(
            "backup vg0/home@20260302T010000Z is pruned, but its restic snapshot c563fc1c is not in repository /srv/restic-new: it was made in repository rest:http://127.0.0.1:8000/, which policy home no longer names; `restic -r rest:http://127.0.0.1:8000/ forget {}` removes it there",
            id(1)
        )),
        "{r:?}"
    );
    assert!(
        !calls(&fake).iter().any(|c| c.contains(" forget ")),
        "{:?}",
        calls(&fake)
    );
    let old = h
        .catalog()
        .backups(None)
        .unwrap()
        .into_iter()
        .find(|b| b.remote_id.as_deref() == Some(&*id(1)))
        .unwrap();
    assert_eq!(old.state.as_str(), "removed");
    // The record keeps where the snapshot was made.
    assert!(
        old.error
            .as_deref()
            .unwrap()
            .ends_with("; made in restic repository rest:http://127.0.0.1:8000/"),
        "{old:?}"
    );
}

#[test]
fn the_same_repository_spelled_otherwise_still_has_its_snapshots_forgotten() {
    let (_h, fake, r) = moved_repository("rest:http://127.0.0.1:8000", false);
    assert!(!r.out.contains("stays"), "{r:?}");
    assert!(!r.out.contains("is not in repository"), "{r:?}");
    assert!(
        calls(&fake)
            .iter()
            .any(|c| c.ends_with(&format!("forget {}", id(1)))),
        "{:?}",
        calls(&fake)
    );
}

#[test]
fn pruning_after_the_engine_changed_says_where_the_restic_snapshots_stay() {
    let (h, fake) = host("keep = { last = 1 }");
    snapshot_and_back_up(&h, "2026-03-02T01:00:00Z", "2026-03-02T01:05:00Z");
    let config = h.dir.path().join("lvsnap.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("engine = \"restic\"").unwrap();
    let end = text[start..].find("exclude").unwrap() + start;
    let rsync = format!("engine = \"rsync\"\ntarget = \"{}/backup\"\n", h.path());
    std::fs::write(
        &config,
        format!("{}{rsync}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T02:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T02:05:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.contains(&format!(
            "backup vg0/home@20260302T010000Z is pruned, but its restic snapshot c563fc1c stays in repository rest:http://127.0.0.1:8000/, as policy home no longer backs up with restic: `restic -r rest:http://127.0.0.1:8000/ forget {}` removes it",
            id(1)
        )),
        "{r:?}"
    );
    assert!(!calls(&fake).iter().any(|c| c.contains(" forget ")));
}

#[test]
fn staging_a_killed_restore_left_is_removed_by_the_next_restore_or_run() {
    let (h, _fake) = host("keep = { last = 2 }");
    snapshot_and_back_up(&h, "2026-03-02T01:00:00Z", "2026-03-02T01:05:00Z");
    // A destination whose name holds a newline and a byte that is not UTF-8: recorded and
    // found again byte for byte.
    let dest = h
        .dir
        .path()
        .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"out\n\xff"));
    std::fs::create_dir(&dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o700)).unwrap();
    let t = chrono::Utc::now();
    // What a restore killed after recording its staging left (its process is gone): the
    // directory with half a tree in it, or none at all (killed before it was made).
    let killed = dest.join(".lvsnap-staging.0123");
    std::fs::create_dir_all(killed.join("tree/etc")).unwrap();
    std::fs::write(killed.join("tree/etc/passwd"), "half\n").unwrap();
    std::fs::set_permissions(&killed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let never_made = dest.join(".lvsnap-staging.4567");
    // A recorded path that is now someone else's: not the directory lvsnap made there.
    let replaced = dest.join(".lvsnap-staging.89ab");
    std::fs::create_dir(&replaced).unwrap();
    std::fs::set_permissions(&replaced, std::fs::Permissions::from_mode(0o755)).unwrap();
    // One of lvsnap's look-alikes that the catalog does not know: never touched.
    let unknown = dest.join(".lvsnap-staging.cdef");
    std::fs::create_dir(&unknown).unwrap();
    std::fs::set_permissions(&unknown, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A recorded path whose parent became a link: the link is not followed, whatever is
    // behind it stays.
    let real = h.dir.path().join("real");
    let behind = real.join(".lvsnap-staging.feed");
    std::fs::create_dir_all(&behind).unwrap();
    std::fs::set_permissions(&behind, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&real, h.dir.path().join("via-link")).unwrap();
    let through_link = h.dir.path().join("via-link/.lvsnap-staging.feed");
    let c = h.catalog();
    for p in [&killed, &never_made, &replaced, &through_link] {
        c.begin_staging(p, 4_000_000, t).unwrap();
    }
    // A live restore's staging waits for it: a process that goes by lvsnap's name stands in.
    let live = dest.join(".lvsnap-staging.live");
    std::fs::create_dir(&live).unwrap();
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o700)).unwrap();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let twin = h.dir.path().join(comm.trim_end());
    std::fs::copy("/bin/sleep", &twin).unwrap();
    let mut running = std::process::Command::new(&twin).arg("30").spawn().unwrap();
    c.begin_staging(&live, running.id(), t).unwrap();
    drop(c);
    let r = h.run(&["run"], "2026-03-02T02:00:00Z");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!killed.exists(), "{r:?}");
    assert!(replaced.exists() && unknown.exists() && live.exists() && behind.exists());
    assert!(
        r.out.contains(&format!(
            "removed the staging directory a killed restore left at {}",
            killed.display()
        )),
        "{r:?}"
    );
    assert!(
        r.out.contains(&format!(
            "left {} alone: it is not the private directory a killed restore made there",
            replaced.display()
        )),
        "{r:?}"
    );
    let left: Vec<PathBuf> = h
        .catalog()
        .stagings()
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(left, vec![live.clone()]);
    // Once that process is gone, the next restore removes it before anything else (a dry run
    // changes nothing, this neither).
    running.kill().unwrap();
    running.wait().unwrap();
    let restore = |extra: &[&str]| {
        let to = h.dir.path().join("to");
        let mut args = vec![
            "restore",
            "vg0/home@20260302T010000Z",
            "etc",
            "--to",
            to.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        h.run(&args, "2026-03-02T02:00:00Z")
    };
    let r = restore(&["--dry-run"]);
    assert!(live.exists(), "{r:?}");
    let r = restore(&[]);
    assert!(!live.exists(), "{r:?}");
    assert!(h.catalog().stagings().unwrap().is_empty());
}

#[test]
fn a_destination_moved_away_during_a_restic_restore_cannot_redirect_it() {
    let (h, fake) = host("keep = { last = 2 }");
    snapshot_and_back_up(&h, "2026-03-02T01:00:00Z", "2026-03-02T01:05:00Z");
    // The destination's parent belongs to a user, who swaps the destination for a link to a
    // directory of their choosing while restic, as root, restores below it.
    let parent = h.dir.path().join("home-of-alice");
    let dest = parent.join("out");
    let elsewhere = h.dir.path().join("elsewhere");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(
        fake.join("restore-swap"),
        format!("{} {}\n", dest.display(), elsewhere.display()),
    )
    .unwrap();
    let r = h.run(
        &[
            "restore",
            "vg0/home@20260302T010000Z",
            "data/file",
            "--to",
            dest.to_str().unwrap(),
        ],
        LATER,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let restore = calls(&fake)
        .into_iter()
        .find(|c| c.contains(" restore "))
        .unwrap();
    assert!(restore.contains(" --target /proc/"), "{restore}");
    // restic wrote into the staging directory lvsnap made, wherever that directory went, and
    // lvsnap copied from there into the directory it was given: nothing went elsewhere.
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "the restore was redirected"
    );
    let moved = parent.join("out.moved");
    assert_eq!(
        std::fs::read_to_string(moved.join("data/file")).unwrap(),
        "restored\n"
    );
    let names: Vec<_> = std::fs::read_dir(&moved)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("data")]);
    assert!(h.catalog().stagings().unwrap().is_empty());
}

#[test]
fn after_a_rollback_restic_and_the_manifest_read_every_file_again() {
    let (h, fake) = host("keep = { last = 5 }");
    let backup_at = |t: &str| {
        h.lvsnap(&["snapshot", "home"], t);
        let r = h.run(&["backup", "home"], t);
        assert_eq!(r.code, 0, "{r:?}");
        calls(&fake)
            .into_iter()
            .rfind(|c| c.contains(" backup "))
            .unwrap()
    };
    backup_at("2026-03-02T01:00:00Z");
    // An ordinary incremental backup builds on the previous one.
    let second = backup_at("2026-03-02T02:00:00Z");
    assert!(
        second.contains(&format!(" --parent {} ", id(1))),
        "{second}"
    );
    assert!(!second.contains("--force"), "{second}");
    // The volume is rolled back to its first snapshot: earlier inodes and change times come
    // back with their earlier content, which neither restic nor the digests may take as known.
    let c = h.catalog();
    let first = c.all_snapshots().unwrap().into_iter().next().unwrap();
    c.record_rollback(&lvsnap::catalog::RollbackRecord {
        id: 0,
        snapshot_id: first.id,
        vg: "vg0".into(),
        origin: "home".into(),
        snapshot: first.name.clone(),
        guard: None,
        requested: "2026-03-02T02:30:00Z".parse().unwrap(),
        deferred: false,
        completed: Some("2026-03-02T02:30:00Z".parse().unwrap()),
        swap: None,
    })
    .unwrap();
    drop(c);
    let third = backup_at("2026-03-02T03:00:00Z");
    assert!(third.contains(" --force "), "{third}");
    assert!(!third.contains("--parent"), "{third}");
    // The next one builds on that again.
    let fourth = backup_at("2026-03-02T04:00:00Z");
    assert!(
        fourth.contains(&format!(" --parent {} ", id(3))),
        "{fourth}"
    );
}

#[test]
fn a_backup_that_found_a_file_restic_missed_makes_the_next_one_read_everything() {
    let (h, fake) = host("keep = { last = 5 }");
    snapshot_and_back_up(&h, "2026-03-02T01:00:00Z", "2026-03-02T01:00:00Z");
    // What a backup leaves when a file read again holds other content than its unchanged
    // signs say (the host's snapshot mounts are empty, so the mark is planted).
    let dir = h.dir.path().join("restic/home/vg0/home");
    std::fs::write(dir.join(".read-all"), "").unwrap();
    snapshot_and_back_up(&h, "2026-03-02T02:00:00Z", "2026-03-02T02:00:00Z");
    let last = calls(&fake)
        .into_iter()
        .rfind(|c| c.contains(" backup "))
        .unwrap();
    assert!(last.contains(" --force "), "{last}");
    assert!(!last.contains("--parent"), "{last}");
    assert!(!dir.join(".read-all").exists(), "asked once, done once");
    snapshot_and_back_up(&h, "2026-03-02T03:00:00Z", "2026-03-02T03:00:00Z");
    let last = calls(&fake)
        .into_iter()
        .rfind(|c| c.contains(" backup "))
        .unwrap();
    assert!(last.contains(" --parent "), "{last}");
}

#[test]
fn a_listing_of_another_snapshot_than_the_one_made_fails_the_backup() {
    let (h, fake) = host("keep = { last = 2 }");
    // restic lists the snapshot as another host's: not what this backup made.
    std::fs::write(fake.join("ls-hostname"), "web02").unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T01:05:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out
            .contains(&format!("restic listed snapshot {} (host web02", id(1))),
        "{r:?}"
    );
    let b = &h.catalog().backups(None).unwrap()[0];
    assert_eq!(b.state, lvsnap::catalog::BackupState::Failed, "{b:?}");
    assert_eq!(b.remote_id, None, "{b:?}");
    // And a snapshot restic does not hold (restic 0.14 then lists nothing and exits 0).
    std::fs::remove_file(fake.join("ls-hostname")).unwrap();
    std::fs::write(fake.join("ls-none"), "").unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T02:00:00Z");
    let r = h.run(&["backup", "home"], "2026-03-02T02:05:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.out.contains(&format!(
            "restic lists no snapshot {}: the repository does not hold it",
            &id(2)[..8]
        )),
        "{r:?}"
    );
}

#[test]
fn run_opens_the_repository_only_when_a_backup_is_due() {
    let (h, fake) = host("keep = { last = 2 }");
    // 01:00: a snapshot is due, the nightly backup (02:00) is not, and it is not the first:
    // one backup made at 02:00 the day before.
    snapshot_and_back_up(&h, "2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z");
    std::fs::remove_file(fake.join("argv")).unwrap();
    let (code, out) = h.lvsnap(&["run"], "2026-03-02T01:00:00Z");
    assert_eq!(code, 0, "{out}");
    assert_eq!(calls(&fake), Vec::<String>::new(), "{out}");
    // 02:00: due, and the server is down. The credentials opened the repository yesterday and
    // are unchanged, so restic is not asked before the mount: the backup itself fails.
    unreachable(&fake);
    let (code, out) = h.lvsnap(&["run"], "2026-03-02T02:00:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot reach restic repository"), "{out}");
    let verbs = || -> Vec<String> {
        calls(&fake)
            .iter()
            .map(|c| c.split(' ').nth(5).unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(verbs().first().map(String::as_str), Some("backup"), "{out}");
    assert!(h.catalog().open_mounts().unwrap().is_empty());
    // The next night, after that failure, the repository is checked before anything is
    // mounted.
    std::fs::remove_file(fake.join("argv")).unwrap();
    let before = h.lvm.invocations().len();
    let (code, out) = h.lvsnap(&["run"], "2026-03-03T02:00:00Z");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot reach restic repository"), "{out}");
    let lvm = h.lvm.invocations().split_off(before);
    assert!(lvm.iter().any(|c| c.starts_with("lvcreate")), "{lvm:?}");
    assert!(!lvm.iter().any(|c| c.starts_with("mount")), "{lvm:?}");
    let verbs = verbs();
    assert_eq!(verbs.first().map(String::as_str), Some("cat"), "{out}");
    assert!(!verbs.iter().any(|v| v == "backup"), "{verbs:?}");
}

#[test]
fn credentials_that_opened_the_repository_are_checked_again_only_when_changed() {
    let (h, fake) = host("keep = { last = 2 }");
    // What restic was asked around each backup (pruning aside).
    let verbs = || -> Vec<String> {
        let v = calls(&fake)
            .iter()
            .map(|c| c.split(' ').nth(5).unwrap_or_default().to_owned())
            .filter(|v| ["cat", "backup", "ls"].contains(&v.as_str()))
            .collect();
        std::fs::remove_file(fake.join("argv")).unwrap();
        v
    };
    // The first backup checks the repository before it mounts; the next ones do not.
    snapshot_and_back_up(&h, "2026-03-01T01:00:00Z", "2026-03-01T01:05:00Z");
    assert_eq!(verbs(), ["cat", "backup", "ls"]);
    snapshot_and_back_up(&h, "2026-03-01T02:00:00Z", "2026-03-01T02:05:00Z");
    assert_eq!(verbs(), ["backup", "ls"]);
    // The password file rewritten (even with the same text), or the env file: checked again.
    private(&h.dir.path().join("restic.pass"), "secret\n");
    snapshot_and_back_up(&h, "2026-03-01T03:00:00Z", "2026-03-01T03:05:00Z");
    assert_eq!(verbs(), ["cat", "backup", "ls"]);
    snapshot_and_back_up(&h, "2026-03-01T04:00:00Z", "2026-03-01T04:05:00Z");
    assert_eq!(verbs(), ["backup", "ls"]);
    let env = h.dir.path().join("restic.env");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::remove_file(&env).unwrap();
    private(&env, &text);
    snapshot_and_back_up(&h, "2026-03-01T05:00:00Z", "2026-03-01T05:05:00Z");
    assert_eq!(verbs(), ["cat", "backup", "ls"]);
    // A wrong password written into the same file is refused before anything is mounted.
    private(&h.dir.path().join("restic.pass"), "wrong\n");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/restic/wrong-password.stderr"
        ),
        fake.join("fail-cat"),
    )
    .unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-01T06:00:00Z");
    let before = h.lvm.invocations().len();
    let r = h.run(&["backup", "home"], "2026-03-01T06:05:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("the password in "), "{r:?}");
    let lvm = h.lvm.invocations().split_off(before);
    assert!(!lvm.iter().any(|c| c.starts_with("mount")), "{lvm:?}");
    assert_eq!(verbs(), ["cat"]);
    // The record of an opening lives in the state directory, root's alone.
    let opened = h.dir.path().join("restic-opened");
    assert_eq!(
        std::fs::metadata(&opened).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    for f in std::fs::read_dir(&opened).unwrap() {
        let m = f.unwrap().metadata().unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    }
}

#[test]
fn what_the_walk_leaves_out_reaches_restic_through_its_exclude_file_or_its_arguments() {
    let (h, fake) = host("keep = { last = 2 }");
    // Nothing is really mounted in host tests: what lvsnap finds at the backup's mount point
    // (backup 1) is put there beforehand. A path too long to restore is left out; its name
    // ends in "$HOME " and holds a newline, which restic's exclude file would trim, expand
    // and split.
    let mount = h.dir.path().join("run/backup/1");
    let mut deep = mount.clone();
    for _ in 0..14 {
        deep.push("a".repeat(250));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("kept"), "x").unwrap();
    let odd = format!("{}\nb$HOME ", "x".repeat(80));
    std::fs::write(deep.join(&odd), "x").unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T01:00:00Z");
    h.run(&["backup", "home"], "2026-03-02T01:05:00Z");
    let fifo = String::from_utf8(std::fs::read(fake.join("exclude-file")).unwrap()).unwrap();
    let want = format!(
        "{}/{}[^\u{1}-\t\u{b}-\u{10ffff}]b[$]HOME[ ]\n",
        deep.display(),
        "x".repeat(80)
    );
    assert_eq!(fifo, want, "the one entry left out, as one line");
    // A stale lock met by the backup: restic runs again after `restic unlock`, given what to
    // leave out as arguments (the FIFO has no writer any more).
    stale_lock(&fake, "backup");
    std::fs::remove_file(fake.join("argv")).unwrap();
    let deep2 = h
        .dir
        .path()
        .join("run/backup/2")
        .join(deep.strip_prefix(&mount).unwrap());
    std::fs::create_dir_all(&deep2).unwrap();
    std::fs::write(deep2.join(&odd), "x").unwrap();
    h.lvsnap(&["snapshot", "home"], "2026-03-02T02:00:00Z");
    h.run(&["backup", "home"], "2026-03-02T02:05:00Z");
    let backups: Vec<String> = calls(&fake)
        .into_iter()
        .filter(|c| c.contains(" backup "))
        .collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert!(backups[0].contains("--exclude-file="), "{backups:?}");
    assert!(!backups[1].contains("--exclude-file="), "{backups:?}");
    // The argument keeps the name as it is, newline, `$` and space.
    let argv = std::fs::read(fake.join("argv")).unwrap();
    let want = format!("\0--exclude={}/{odd}\0.\0", deep2.display());
    assert!(
        argv.windows(want.len()).any(|w| w == want.as_bytes()),
        "{}",
        String::from_utf8_lossy(&argv)
    );
}
