//! Policy hooks: a `pre` command before a snapshot (flush a database, freeze an application) and
//! a `post` command after it. Argv only, never a shell; a time limit; the environment names the
//! policy, volume, snapshot and phase.
//!
//! A hook runs in a process group of its own with a minimal environment (the system `PATH`,
//! `LANG=C`, the `LVSNAP_*` variables: nothing of lvsnap's own environment leaks into it), dies
//! with lvsnap, and at its time limit the whole group is killed, grandchildren included. Its
//! arguments may hold secrets (`--password=…`), so what lvsnap records and reports is the
//! program and a digest of the arguments ([`HookRun::command`]), never the arguments themselves.

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
    /// A snapshot set's identity; `volume` and `snapshot` then list every member, space
    /// separated, in the policy's order.
    pub set: Option<&'a str>,
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

    /// The hook as lvsnap records and reports it: the program, and the number and SHA-256
    /// (first 12 hex digits) of its arguments — enough to tell hooks apart and to notice a
    /// change, without storing a password given as an argument.
    pub fn command(&self) -> Vec<String> {
        use sha2::{Digest, Sha256};
        let Some((program, args)) = self.argv.split_first() else {
            return Vec::new();
        };
        if args.is_empty() {
            return vec![program.clone()];
        }
        let mut h = Sha256::new();
        for a in args {
            h.update(a.len().to_le_bytes());
            h.update(a.as_bytes());
        }
        let digest: String = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        vec![
            program.clone(),
            format!("[{} argument(s), sha256 {digest}]", args.len()),
        ]
    }

    /// Why it failed, for the report.
    pub fn failure(&self, limit: Duration) -> String {
        let cmd = self.command().join(" ");
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
    let mut vars: std::collections::HashMap<String, String> = [
        ("PATH", crate::tools::SYSTEM_PATH.join(":")),
        ("LANG", "C".to_owned()),
        ("LVSNAP_POLICY", env.policy.to_owned()),
        ("LVSNAP_VOLUME", env.volume.to_owned()),
        ("LVSNAP_SNAPSHOT", env.snapshot.to_owned()),
        ("LVSNAP_PHASE", env.phase.as_str().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(set) = env.set {
        vars.insert("LVSNAP_SET".to_owned(), set.to_owned());
    }
    if let Some(taken) = env.taken {
        vars.insert(
            "LVSNAP_TAKEN".to_owned(),
            if taken { "yes" } else { "no" }.to_owned(),
        );
    }
    // Its stderr goes to an unnamed file, not a pipe: a pipe stays open as long as anything the
    // hook left behind holds it, and waiting for it would outlast the time limit.
    let (stderr_file, mut stderr_read) =
        match tempfile::tempfile().and_then(|f| Ok((f.try_clone()?, f))) {
            Ok(pair) => pair,
            Err(e) => {
                run.stderr = format!("cannot create a file for its messages: {e}");
                return run;
            }
        };
    let expr = duct::cmd(program, args)
        .full_env(vars)
        .stdin_null()
        .stdout_null()
        .stderr_file(stderr_file)
        .unchecked()
        .before_spawn(|c| {
            use std::os::unix::process::CommandExt;
            // Its own process group, so that a timeout reaches everything it started; and it
            // dies with lvsnap rather than outlive a killed run.
            c.process_group(0);
            // SAFETY: prctl is async-signal-safe and changes only the child's own state.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            Ok(())
        });
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
                break;
            }
            Ok(None) if start.elapsed() >= limit => {
                kill_group(&handle);
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
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    let _ = stderr_read
        .rewind()
        .and_then(|()| (&mut stderr_read).take(64 * 1024).read_to_end(&mut bytes));
    if run.stderr.is_empty() {
        run.stderr = String::from_utf8_lossy(&bytes).into_owned();
    }
    run
}

/// Kills the hook's whole process group (its pid is the group's id).
fn kill_group(handle: &duct::Handle) {
    for pid in handle.pids() {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
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
            set: None,
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
        let failure = run.failure(Duration::from_secs(10));
        assert!(
            failure.starts_with("hook `sh [2 argument(s), sha256 "),
            "{failure}"
        );
        assert!(
            failure.ends_with("` exited with status 3: database busy"),
            "{failure}"
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
    fn a_timeout_kills_the_hooks_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
        let run = run_hook(
            &argv(&["sh", "-c", &script]),
            Duration::from_millis(500),
            &env(Phase::Pre),
        );
        assert_eq!(run.status, None);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone (a zombie reaped by init at most).
        std::thread::sleep(Duration::from_millis(200));
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z "),
            "sleep 600 survived its hook: {state}"
        );
    }

    #[test]
    fn a_hook_gets_a_minimal_environment_and_no_secret_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        std::env::set_var("LVSNAP_TEST_SECRET", "hunter2");
        let script = format!("env | sort > {}", out.display());
        let run = run_hook(
            &argv(&["sh", "-c", &script, "--password=secret"]),
            Duration::from_secs(10),
            &env(Phase::Pre),
        );
        assert!(run.ok(), "{run:?}");
        let seen = std::fs::read_to_string(out).unwrap();
        assert!(!seen.contains("hunter2"), "{seen}");
        assert!(seen.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
        assert!(seen.contains("LANG=C\n"));
        assert!(!run.command().join(" ").contains("secret"));
    }

    #[test]
    fn a_child_left_holding_stderr_does_not_hold_lvsnap() {
        let start = Instant::now();
        let run = run_hook(
            &argv(&["sh", "-c", "sleep 30 & echo started >&2; exit 0"]),
            Duration::from_secs(20),
            &env(Phase::Pre),
        );
        assert!(run.ok(), "{run:?}");
        assert_eq!(run.stderr, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
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
