//! Policy files: every shipped example parses, and each broken file yields exactly its errors,
//! all of them at once, each with its location.

use std::path::Path;

use lvsnap::config::{load, parse_str, LoadError};

#[test]
fn every_example_in_config_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!cfg.policies.is_empty(), "{} has no policy", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2);
    // The directory form reads them all as one configuration.
    let all = load(Path::new("config")).unwrap();
    assert_eq!(all.files.len(), seen);
}

#[track_caller]
fn assert_errors(file: &str, expected: &str) {
    let path = format!("tests/fixtures/config-bad/{file}");
    match load(Path::new(&path)) {
        Err(LoadError::Invalid(errs)) => {
            assert_eq!(errs.to_string(), expected.replace("FILE", &path))
        }
        Err(other) => panic!("{file}: unexpected error {other}"),
        Ok(_) => panic!("{file} was accepted"),
    }
}

#[test]
fn unknown_key_suggests_the_nearest() {
    assert_errors("unknown-key.toml", "FILE:4:20: policy.home.keep.dayly: unknown key \"dayly\"\n    hint: did you mean \"daily\"?");
}

#[test]
fn bad_cron_names_the_field() {
    assert_errors(
        "bad-cron.toml",
        "FILE:3:12: policy.home.schedule: \"0 25 * * *\": hour 25 is out of range 0-23\n    hint: cron fields are minute hour day-of-month month day-of-week, e.g. \"0 * * * *\" for hourly",
    );
}

#[test]
fn bad_size_and_duration_are_both_reported() {
    assert_errors(
        "bad-size-duration.toml",
        "FILE:4:8: policy.home.size: \"12X\": unknown unit \"X\"; use K, M, G or T\n    hint: write a size such as \"4G\", \"20%ORIGIN\" or \"10%FREE\"\n\
         FILE:6:11: policy.home.min-age: \"ten minutes\": expected a number at \"ten minutes\"\n    hint: write a duration such as \"90min\", \"36h\", \"7d\", \"2w\", \"6mo\" or \"1y\"",
    );
}

#[test]
fn unknown_timezone() {
    assert_errors(
        "unknown-timezone.toml",
        "FILE:2:12: settings.timezone: unknown time zone \"Mars/Olympus\"\n    hint: use an IANA zone name such as \"Europe/Berlin\" or \"UTC\"",
    );
}

#[test]
fn names_lvm_would_reject() {
    assert_errors(
        "lvm-names.toml",
        "FILE:2:24: policy.home.volumes: volume group name contains ' '; LVM allows only letters, digits and + _ . -\n\
         FILE:2:37: policy.home.volumes: logical volume name contains \"_tmeta\", which LVM reserves",
    );
}

#[test]
fn one_volume_in_two_policies() {
    assert_errors(
        "volume-twice.toml",
        "FILE:7:24: policy.everything.volumes: volume vg0/home is already in policy \"home\"\n    hint: a volume belongs to one policy; merge the keep rules into \"home\" (FILE:2)",
    );
}

#[test]
fn policy_without_keep_rule() {
    assert_errors(
        "no-keep.toml",
        "FILE:1:9: policy.home: policy has no keep rule, so nothing it creates could ever be pruned safely\n    hint: add for example keep = { last = 4, daily = 7 }",
    );
}

#[test]
fn syntax_error_has_a_location() {
    assert_errors(
        "syntax.toml",
        "FILE:4:19: not valid TOML: invalid inline table\n    hint: expected `}`",
    );
}

#[test]
fn all_errors_of_a_file_come_at_once() {
    assert_errors(
        "many-errors.toml",
        "FILE:1:9: policy.home: missing key \"volumes\"\n    hint: add the origin volumes, for example volumes = [\"vg0/home\"]\n\
         FILE:2:1: policy.home.volume: unknown key \"volume\"\n    hint: did you mean \"volumes\"?\n\
         FILE:3:12: policy.home.schedule: wrong type: expected a string, found integer `15`\n\
         FILE:4:29: policy.home.keep.hourly: 0 is not a positive count\n    hint: write a positive whole number, or \"all\"; remove the key to turn the rule off\n\
         FILE:4:40: policy.home.keep.daily: \"seven\" is not a count\n    hint: write a positive whole number, or \"all\"; remove the key to turn the rule off\n\
         FILE:6:22: policy.home.max-remove-percent: 0 is not a percentage between 1 and 100\n    hint: the default, 50, stops a run that would remove more than half of a group",
    );
}

#[test]
fn settings_may_appear_once_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let policy =
        "[policy.{}]\nvolumes = [\"vg0/{}\"]\nschedule = \"0 * * * *\"\nkeep = { last = 1 }\n";
    std::fs::write(
        dir.path().join("a.toml"),
        format!(
            "[settings]\ntimezone = \"UTC\"\n{}",
            policy.replace("{}", "a")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        format!(
            "[settings]\ntimezone = \"UTC\"\n{}",
            policy.replace("{}", "b")
        ),
    )
    .unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("b.toml:1:1: settings: settings are given twice"),
        "{err}"
    );
}

#[test]
fn policy_defaults_are_documented_values() {
    let cfg = parse_str(
        "[policy.p]\nvolumes = [\"vg0/lv\"]\nschedule = \"0 * * * *\"\nkeep = { last = 1 }\n",
        Path::new("p.toml"),
    )
    .unwrap();
    let p = &cfg.policies[0];
    assert_eq!(p.size.to_string(), "20%ORIGIN");
    assert_eq!(p.max_remove_percent, 50);
    assert_eq!(p.future_skew, chrono::Duration::minutes(5));
    assert!(p.min_age.is_zero());
    assert_eq!(
        cfg.settings.catalog,
        Path::new("/var/lib/lvsnap/catalog.db")
    );
}

#[test]
fn missing_file_says_how_to_fix_it() {
    let err = load(Path::new("/nonexistent/lvsnap.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot read /nonexistent/lvsnap.toml: No such file"),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn backup_table_errors_are_all_reported() {
    assert_errors(
        "backup.toml",
        "FILE:8:10: policy.home.backup.engine: \"rsink\" is not an engine\n    hint: write \"rsync\", \"archive\", \"restic\" or \"command\"\n\
         FILE:9:10: policy.home.backup.target: \"backups/home\" is not an absolute path\n    hint: write the directory backups go to, for example \"/srv/backup/lvsnap\"\n\
         FILE:10:12: policy.home.backup.exclude: \"../etc\" is not a path inside the volume\n    hint: write paths relative to the volume's root, such as \"tmp\" or \"var/cache\"; each excludes that whole subtree, matched literally (no wildcards)\n\
         FILE:11:17: policy.home.backup.keep.last: 0 is not a positive count\n    hint: write a positive whole number, or \"all\"; remove the key to turn the rule off\n\
         FILE:18:1: policy.db.backup.schedule: missing\n    hint: add for example schedule = \"30 2 * * *\" (nightly at 02:30)\n\
         FILE:20:11: policy.db.backup.command: the command is never told what to back up\n    hint: put {mount} (the snapshot's read-only mount point) in an argument, for example [\"restic\", \"backup\", \"{mount}\"]",
    );
}

#[test]
fn replicate_table_errors_are_all_reported() {
    assert_errors(
        "replicate.toml",
        "FILE:7:8: policy.mail.replicate.pool: \"vgbackup\" is not VG/POOL\n    hint: write the thin pool that holds the replicas as \"VG/POOL\", for example \"vgbackup/replicas\"\n\
         FILE:8:13: policy.mail.replicate.transport: the transport is empty\n    hint: write the command that starts lvsnap receive on the target host, for example [\"ssh\", \"backup01\", \"lvsnap\", \"receive\"], or remove transport for a pool on this host\n\
         FILE:9:12: policy.mail.replicate.schedule: \"every hour\" has 2 fields; write 5 (minute hour day month weekday), as in \"0 * * * *\", or 6 with seconds first\n    hint: cron fields are minute hour day-of-month month day-of-week, e.g. \"30 1 * * *\"; leave it out to replicate every snapshot\n\
         FILE:10:17: policy.mail.replicate.keep.last: 0 is not a positive count\n    hint: write a positive whole number, or \"all\"; remove the key to turn the rule off\n\
         FILE:17:1: policy.db.replicate.pool: missing\n    hint: add pool = \"VG/POOL\", the thin pool the replicas go to (create it with lvcreate --type thin-pool)\n\
         FILE:17:1: policy.db.replicate: replication has no keep rule, so nothing it creates could ever be pruned safely\n    hint: add for example keep = { last = 4, daily = 7 }\n\
         FILE:18:13: policy.db.replicate.transport: the transport names the pool itself\n    hint: end the transport with \"receive\"; lvsnap appends --pool from pool = …",
    );
}

#[test]
fn history_settings_out_of_range_name_the_range_and_the_default() {
    assert_errors(
        "bad-history.toml",
        "FILE:2:16: settings.history-days: 0 is not a number of days from 1 to 36500\n    hint: the catalog keeps its command log and run history this long; the default is 90\n\
         FILE:3:16: settings.history-rows: 10 is not a number of rows from 1000 to 100000000\n    hint: the most rows the catalog keeps of each kind of history; the default is 40000",
    );
}

#[test]
fn a_mount_context_that_is_not_a_label_is_refused_with_the_form() {
    assert_errors(
        "bad-mount-context.toml",
        "FILE:5:17: policy.home.mount-context: \"container_file_t\" has no role: an SELinux label is USER:ROLE:TYPE[:LEVEL], e.g. \"system_u:object_r:container_file_t:s0\"\n    hint: the SELinux label for the files of mounted snapshots, e.g. \"system_u:object_r:container_file_t:s0\" for containers\n\
         FILE:11:17: policy.data.mount-context: \"system_u:object_r:container_file_t:s0\\\",rw\": the level \"s0\\\",rw\" is not a sensitivity such as s0 or s0:c1,c2: an SELinux label is USER:ROLE:TYPE[:LEVEL], e.g. \"system_u:object_r:container_file_t:s0\"\n    hint: the SELinux label for the files of mounted snapshots, e.g. \"system_u:object_r:container_file_t:s0\" for containers",
    );
}
