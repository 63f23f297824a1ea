//! The system's LVM tools, run with duct as argv vectors. Each tool is resolved to an absolute
//! path once, at start-up, so a missing lvm2 is reported before anything is changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Completed, Invocation, LvmError, Runner, Tool};

/// Where LVM's tools live besides `$PATH` (cron and systemd give a short PATH).
const SYSTEM_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

pub struct SystemRunner {
    paths: BTreeMap<Tool, PathBuf>,
    searched: String,
}

impl SystemRunner {
    /// Resolves every tool lvsnap may run.
    pub fn discover() -> Self {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
        let paths = Tool::ALL
            .iter()
            .filter_map(|t| {
                dirs.iter()
                    .map(|d| d.join(t.name()))
                    .find(|p| is_executable(p))
                    .map(|p| (*t, p))
            })
            .collect();
        let searched = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        SystemRunner { paths, searched }
    }

    /// Fails unless every one of `tools` was found.
    ///
    /// # Errors
    /// The first tool that is missing.
    pub fn require(&self, tools: &[Tool]) -> Result<(), LvmError> {
        tools.iter().try_for_each(|t| self.path(*t).map(|_| ()))
    }

    fn path(&self, tool: Tool) -> Result<&Path, LvmError> {
        self.paths
            .get(&tool)
            .map(PathBuf::as_path)
            .ok_or_else(|| LvmError::NotFound {
                tool: tool.name(),
                package: tool.package(),
                searched: self.searched.clone(),
            })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Runner for SystemRunner {
    fn check_tools(&self) -> Result<(), LvmError> {
        self.require(&Tool::ALL)
    }

    fn run(&self, inv: &Invocation) -> Result<Completed, LvmError> {
        let path = self.path(inv.tool)?;
        let start = Instant::now();
        let out = duct::cmd(path, &inv.args)
            // Stable English messages to match hints against; no complaints about the file
            // descriptors a daemon or test harness leaves open.
            .env("LC_ALL", "C")
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| LvmError::Start {
                argv: inv.to_string(),
                source,
            })?;
        Ok(Completed {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            duration: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_named_with_their_package() {
        let runner = SystemRunner {
            paths: BTreeMap::new(),
            searched: "/usr/sbin:/sbin".into(),
        };
        let err = runner.check_tools().unwrap_err().to_string();
        assert_eq!(
            err,
            "lvs not found (looked in /usr/sbin:/sbin); install the lvm2 package"
        );
    }

    #[test]
    fn commands_run_as_argv_with_status_and_stderr() {
        let mut paths = BTreeMap::new();
        // Any program stands in for an LVM tool here: argv goes through untouched, no shell.
        paths.insert(Tool::Lvs, PathBuf::from("/bin/sh"));
        let runner = SystemRunner {
            paths,
            searched: String::new(),
        };
        let inv = Invocation::new(Tool::Lvs, ["-c", "echo \"$0\" >&2; exit 5", "a b;c"]);
        let done = runner.run(&inv).unwrap();
        assert_eq!(done.status, 5);
        assert_eq!(
            done.stderr, "a b;c\n",
            "the argument arrives whole, not split or interpreted"
        );
    }
}
