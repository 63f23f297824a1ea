//! The system's LVM tools, run with duct as argv vectors. Each tool is resolved through
//! [`crate::tools`] (system directories and `tool-path` only, never `$PATH`) and checked before
//! anything is changed, so a missing lvm2 or an untrusted binary is reported first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::{Completed, Invocation, LvmError, Runner, Tool};
use crate::tools::{self, ToolError};

#[derive(Default)]
pub struct SystemRunner {
    /// Fixed paths instead of a search (tests).
    paths: BTreeMap<Tool, PathBuf>,
}

impl SystemRunner {
    /// A runner that finds each tool when first needed, through [`crate::tools`].
    pub fn discover() -> Self {
        SystemRunner::default()
    }

    /// Fails unless every one of `tools` was found.
    ///
    /// # Errors
    /// The first tool that is missing.
    pub fn require(&self, tools: &[Tool]) -> Result<(), LvmError> {
        tools.iter().try_for_each(|t| self.path(*t).map(|_| ()))
    }

    fn path(&self, tool: Tool) -> Result<PathBuf, LvmError> {
        if let Some(p) = self.paths.get(&tool) {
            return Ok(p.clone());
        }
        tools::find(tool.name()).map_err(|e| match e {
            ToolError::Missing { searched, .. } => LvmError::NotFound {
                tool: tool.name(),
                package: tool.package(),
                searched,
            },
            e @ ToolError::Untrusted { .. } => LvmError::Untrusted(e.to_string()),
        })
    }
}

impl Runner for SystemRunner {
    fn check_tools(&self) -> Result<(), LvmError> {
        self.require(&Tool::ALL)
    }

    fn run(&self, inv: &Invocation) -> Result<Completed, LvmError> {
        let path = self.path(inv.tool)?;
        let start = Instant::now();
        let mut env = tools::child_env();
        // No complaints about the file descriptors a daemon or test harness leaves open.
        env.insert("LVM_SUPPRESS_FD_WARNINGS".to_owned(), "1".to_owned());
        // An administrator's alternative LVM configuration directory is honoured.
        if let Ok(dir) = std::env::var("LVM_SYSTEM_DIR") {
            env.insert("LVM_SYSTEM_DIR".to_owned(), dir);
        }
        let out = duct::cmd(path, &inv.args)
            .full_env(env)
            .before_spawn(|c| {
                // Its own process group: Ctrl-C at the terminal reaches lvsnap (which finishes
                // what it is doing, then stops), never an LVM command half-way.
                std::os::unix::process::CommandExt::process_group(c, 0);
                Ok(())
            })
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| LvmError::Start {
                argv: inv.to_string(),
                source,
            })?;
        // `-vv` shows each command and what it cost: where a slow run spends its time.
        tracing::debug!(command = %inv, status = out.status.code().unwrap_or(-1), ms = start.elapsed().as_millis(), "ran");
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
        let err = LvmError::NotFound {
            tool: Tool::Lvs.name(),
            package: Tool::Lvs.package(),
            searched: "/usr/sbin:/sbin".into(),
        }
        .to_string();
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
        let runner = SystemRunner { paths };
        let inv = Invocation::new(Tool::Lvs, ["-c", "echo \"$0\" >&2; exit 5", "a b;c"]);
        let done = runner.run(&inv).unwrap();
        assert_eq!(done.status, 5);
        assert_eq!(
            done.stderr, "a b;c\n",
            "the argument arrives whole, not split or interpreted"
        );
    }
}
