//! The binary end to end: exit statuses, output contracts, environment.

use std::process::{Command, Output};

use serde_json::Value;

/// A small fluent harness around the built `lvsnap` binary.
struct Lvsnap {
    cmd: Command,
}

struct Ran {
    out: Output,
}

impl Lvsnap {
    fn new() -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lvsnap"));
        cmd.env_remove("LVSNAP_CONFIG");
        Lvsnap { cmd }
    }

    fn args(mut self, args: &[&str]) -> Self {
        self.cmd.args(args);
        self
    }

    fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    #[track_caller]
    fn run(mut self) -> Ran {
        Ran {
            out: self.cmd.output().expect("lvsnap runs"),
        }
    }
}

impl Ran {
    #[track_caller]
    fn status(self, code: i32) -> Self {
        assert_eq!(
            self.out.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    #[track_caller]
    fn stdout_has(self, text: &str) -> Self {
        assert!(
            self.stdout().contains(text),
            "stdout lacks {text:?}:\n{}",
            self.stdout()
        );
        self
    }

    #[track_caller]
    fn stderr_has(self, text: &str) -> Self {
        assert!(
            self.stderr().contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr()
        );
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout()).expect("stdout is JSON")
    }
}

const SIM: &str = "tests/fixtures/simulate.toml";

#[test]
fn simulate_a_year_of_hourly_snapshots() {
    let ran = Lvsnap::new()
        .args(&[
            "simulate",
            "--config",
            SIM,
            "--policy",
            "year",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2027-01-01T00:00:00Z",
            "--json",
        ])
        .run()
        .status(0);
    let v = ran.json();
    assert_eq!(v["taken"], 8760);
    assert_eq!(v["removed"], 8717);
    let kept = v["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 43);
    // The documented shape, key order included, for scripts that compare text.
    assert!(
        ran.stdout().starts_with(
            "{\"kept\":[{\"time\":\"2026-01-31T23:00:00Z\",\"reasons\":[\"monthly\"]},"
        ),
        "{}",
        &ran.stdout()[..80]
    );
    assert!(ran
        .stdout()
        .trim_end()
        .ends_with("],\"taken\":8760,\"removed\":8717}"));
    // 24 hours + 6 more days + 2 more ISO weeks + 11 more months; oldest first.
    assert_eq!(
        kept[0],
        serde_json::json!({"time": "2026-01-31T23:00:00Z", "reasons": ["monthly"]})
    );
    assert_eq!(kept[11]["time"], "2026-12-13T23:00:00Z");
    assert_eq!(kept[11]["reasons"], serde_json::json!(["weekly"]));
    assert_eq!(
        kept[42],
        serde_json::json!({"time": "2026-12-31T23:00:00Z", "reasons": ["hourly", "daily", "weekly", "monthly", "newest"]})
    );
    let times: Vec<&str> = kept.iter().map(|k| k["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "kept snapshots are listed oldest first");
}

#[test]
fn simulate_downtime_takes_one_catch_up_snapshot() {
    let v = Lvsnap::new()
        .args(&[
            "simulate",
            "-c",
            SIM,
            "-p",
            "recent",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-01T12:00:00Z",
        ])
        .args(&[
            "--down",
            "2026-03-01T02:30:00Z..2026-03-01T09:10:00Z",
            "--json",
        ])
        .run()
        .status(0)
        .json();
    let times: Vec<&str> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-03-01T00:00:00Z",
            "2026-03-01T01:00:00Z",
            "2026-03-01T02:00:00Z",
            "2026-03-01T09:10:00Z",
            "2026-03-01T10:00:00Z",
            "2026-03-01T11:00:00Z"
        ]
    );
    assert_eq!(v["taken"], 6);
    assert_eq!(v["removed"], 0);
}

#[test]
fn simulate_every_replaces_the_schedule() {
    let v = Lvsnap::new()
        .args(&[
            "simulate",
            "-c",
            SIM,
            "-p",
            "recent",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-01T01:00:00Z",
            "--every",
            "10min",
            "--json",
        ])
        .run()
        .status(0)
        .json();
    assert_eq!(v["taken"], 6);
}

#[test]
fn simulate_text_lists_kept_snapshots_and_totals() {
    Lvsnap::new()
        .args(&["simulate", "-c", SIM, "-p", "year", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-03T00:00:00Z"])
        .run()
        .status(0)
        .stdout_has("2026-01-02T23:00:00Z   2026-01-02 23:00:00 UTC   hourly, daily, weekly, monthly, newest")
        // Counts not used up yet keep the oldest snapshot too.
        .stdout_has("2026-01-01T00:00:00Z   2026-01-01 00:00:00 UTC   oldest-daily, oldest-weekly, oldest-monthly")
        .stdout_has("taken 48, removed 22, kept 26");
}

#[test]
fn simulate_unknown_policy_names_the_known_ones() {
    Lvsnap::new()
        .args(&[
            "simulate",
            "-c",
            SIM,
            "-p",
            "yaer",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
        ])
        .run()
        .status(2)
        .stderr_has("no policy named \"yaer\" (policies: year, recent); did you mean \"year\"?");
}

#[test]
fn simulate_rejects_a_backwards_span_and_bad_times() {
    Lvsnap::new()
        .args(&[
            "simulate",
            "-c",
            SIM,
            "-p",
            "year",
            "--from",
            "2026-01-02T00:00:00Z",
            "--to",
            "2026-01-01T00:00:00Z",
        ])
        .run()
        .status(2)
        .stderr_has("must be after --from");
    Lvsnap::new()
        .args(&[
            "simulate",
            "-c",
            SIM,
            "-p",
            "year",
            "--from",
            "yesterday",
            "--to",
            "2026-01-01T00:00:00Z",
        ])
        .run()
        .status(2)
        .stderr_has("RFC 3339");
}

#[test]
fn config_check_accepts_the_examples() {
    Lvsnap::new()
        .args(&[
            "config",
            "check",
            "config/lvsnap.toml",
            "--now",
            "2026-11-28T06:00:00Z",
        ])
        .run()
        .status(0)
        .stdout_has("policy \"home\"")
        .stdout_has(
            "next      2026-11-28 08:00:00 CET, 2026-11-28 09:00:00 CET, 2026-11-28 10:00:00 CET",
        )
        .stdout_has("the newest snapshot of each of the 24 most recent hours that have one");
}

#[test]
fn config_check_reads_lvsnap_config_from_the_environment() {
    Lvsnap::new()
        .args(&["config", "check"])
        .env("LVSNAP_CONFIG", SIM)
        .run()
        .status(0)
        .stdout_has("policy \"recent\"");
}

#[test]
fn config_check_reports_all_errors_with_exit_2() {
    Lvsnap::new()
        .args(&[
            "config",
            "check",
            "tests/fixtures/config-bad/many-errors.toml",
        ])
        .run()
        .status(2)
        .stderr_has("many-errors.toml:2:1: policy.home.volume: unknown key \"volume\"")
        .stderr_has("many-errors.toml:6:22: policy.home.max-remove-percent")
        .stderr_has("6 error(s) in the policy files; nothing was changed");
    let v = Lvsnap::new()
        .args(&[
            "config",
            "check",
            "--json",
            "tests/fixtures/config-bad/unknown-key.toml",
        ])
        .run()
        .status(2)
        .json();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 4);
    assert_eq!(v["errors"][0]["column"], 20);
    assert_eq!(v["errors"][0]["key"], "policy.home.keep.dayly");
    assert_eq!(v["errors"][0]["hint"], "did you mean \"daily\"?");
}

#[test]
fn help_teaches_exit_codes_and_the_config_path() {
    Lvsnap::new()
        .args(&["--help"])
        .run()
        .status(0)
        .stdout_has("/etc/lvsnap/lvsnap.toml")
        .stdout_has("2  bad input");
    Lvsnap::new()
        .args(&["--version"])
        .run()
        .status(0)
        .stdout_has(env!("CARGO_PKG_VERSION"));
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    Lvsnap::new()
        .args(&["completions", "bash"])
        .run()
        .status(0)
        .stdout_has("_lvsnap()")
        .stdout_has("simulate");
    Lvsnap::new()
        .args(&["man"])
        .run()
        .status(0)
        .stdout_has(".TH lvsnap 8")
        .stdout_has("snapshot");
    Lvsnap::new().args(&["completions", "tcsh"]).run().status(2);
}
