//! Policy hooks: a `pre` command before a snapshot (flush a database, freeze an application) and
//! a `post` command after it. Argv only, never a shell; a time limit; the environment names the
//! policy, volume, snapshot and phase.

use std::time::{Duration, Instant};

/// Where in the snapshot a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// What a hook is told, through `LVSNAP_*` variables.
pub struct HookEnv<'a> {
    pub policy: &'a str,
    pub volume: &'a str,
    pub snapshot: &'a str,
    pub phase: Phase,
    /// For `post`: whether the snapshot was taken.
    pub taken: Option<bool>,
}

/// How a hook ended.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub argv: Vec<String>,
    /// `None` when it was killed at the time limit.
    pub status: Option<i32>,
    pub stderr: String,
    pub duration: Duration,
}

impl HookRun {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// Why it failed, for the report.
    pub fn failure(&self, limit: Duration) -> String {
        let cmd = self.argv.join(" ");
        let err = self
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        match self.status {
            None => format!(
                "hook `{cmd}` did not finish within {}s and was killed",
                limit.as_secs()
            ),
            Some(-1) => format!("hook `{cmd}` could not start{err}"),
            Some(code) => format!("hook `{cmd}` exited with status {code}{err}"),
        }
    }
}

/// Runs one hook to completion or to its time limit.
pub fn run_hook(argv: &[String], limit: Duration, env: &HookEnv<'_>) -> HookRun {
    let start = Instant::now();
    let mut run = HookRun {
        argv: argv.to_vec(),
        status: Some(-1),
        stderr: String::new(),
        duration: Duration::ZERO,
    };
    let Some((program, args)) = argv.split_first() else {
        run.stderr = "empty command".to_owned();
        return run;
    };
    let mut expr = duct::cmd(program, args)
        .env("LVSNAP_POLICY", env.policy)
        .env("LVSNAP_VOLUME", env.volume)
        .env("LVSNAP_SNAPSHOT", env.snapshot)
        .env("LVSNAP_PHASE", env.phase.as_str())
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked();
    if let Some(taken) = env.taken {
        expr = expr.env("LVSNAP_TAKEN", if taken { "yes" } else { "no" });
    }
    let handle = match expr.start() {
        Ok(h) => h,
        Err(e) => {
            run.stderr = e.to_string();
            run.duration = start.elapsed();
            return run;
        }
    };
    loop {
        match handle.try_wait() {
            Ok(Some(out)) => {
                run.status = Some(out.status.code().unwrap_or(-1));
                run.stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                break;
            }
            Ok(None) if start.elapsed() >= limit => {
                let _ = handle.kill();
                run.status = None;
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                run.stderr = e.to_string();
                break;
            }
        }
    }
    run.duration = start.elapsed();
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(phase: Phase) -> HookEnv<'static> {
        HookEnv {
            policy: "db",
            volume: "vg0/pg",
            snapshot: "pg-lvsnap-20260301T000000Z",
            phase,
            taken: None,
        }
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hook_sees_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let script = format!(
            "echo $LVSNAP_POLICY $LVSNAP_VOLUME $LVSNAP_SNAPSHOT $LVSNAP_PHASE > {}",
            out.display()
        );
        let run = run_hook(
            &argv(&["sh", "-c", &script]),
            Duration::from_secs(10),
            &env(Phase::Pre),
        );
        assert!(run.ok(), "{run:?}");
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "db vg0/pg pg-lvsnap-20260301T000000Z pre\n"
        );
    }

    #[test]
    fn failing_hook_reports_status_and_stderr() {
        let run = run_hook(
            &argv(&["sh", "-c", "echo 'database busy' >&2; exit 3"]),
            Duration::from_secs(10),
            &env(Phase::Pre),
        );
        assert_eq!(
            run.failure(Duration::from_secs(10)),
            "hook `sh -c echo 'database busy' >&2; exit 3` exited with status 3: database busy"
        );
    }

    #[test]
    fn slow_hook_is_killed_at_its_limit() {
        let run = run_hook(
            &argv(&["sleep", "30"]),
            Duration::from_millis(300),
            &env(Phase::Pre),
        );
        assert_eq!(run.status, None);
        assert!(run.duration < Duration::from_secs(5));
        assert!(run
            .failure(Duration::from_secs(1))
            .contains("did not finish within 1s"));
    }

    #[test]
    fn missing_program_cannot_start() {
        let run = run_hook(
            &argv(&["/nonexistent/flush"]),
            Duration::from_secs(1),
            &env(Phase::Pre),
        );
        assert!(!run.ok());
        assert!(run
            .failure(Duration::from_secs(1))
            .starts_with("hook `/nonexistent/flush` could not start"));
    }
}
