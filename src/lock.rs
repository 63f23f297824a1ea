//! One writer at a time: commands that change snapshots or the catalog hold an exclusive flock
//! on `RUNTIME_DIR/lvsnap.lock`. The holder writes its pid there so that a second lvsnap can
//! say who it waits for. Reading commands never take it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::fs::TryLockError;

/// Held while it lives; the kernel releases the flock when the process dies, even by `kill -9`.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another lvsnap is running (pid {pid}); waited {waited:?} for it to finish")]
    Busy { pid: String, waited: Duration },
    #[error("cannot open the lock file {path}: {source}\n    hint: run as root, or set settings.runtime-dir to a writable directory")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the lock, waiting up to `timeout` for another lvsnap to let go.
///
/// # Errors
/// The lock file cannot be opened, or another process holds the lock past `timeout`.
pub fn acquire(runtime_dir: &Path, timeout: Duration) -> Result<LockGuard, LockError> {
    acquire_named(runtime_dir, "lvsnap.lock", timeout)
}

/// Takes the lock of the file `name` in `runtime_dir`, waiting up to `timeout`: a lock of its
/// own for one thing (a pool receiving a stream), beside lvsnap's.
///
/// # Errors
/// As for [`acquire`].
pub fn acquire_named(
    runtime_dir: &Path,
    name: &str,
    timeout: Duration,
) -> Result<LockGuard, LockError> {
    let path = runtime_dir.join(name);
    let open_err = |source| LockError::Open {
        path: path.clone(),
        source,
    };
    crate::private::own_dir(runtime_dir).map_err(open_err)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(open_err)?;
    let start = Instant::now();
    loop {
        let locked = match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(source)) => return Err(open_err(source)),
        };
        if locked {
            file.set_len(0).map_err(open_err)?;
            file.rewind().map_err(open_err)?;
            write!(file, "{}", std::process::id()).map_err(open_err)?;
            file.flush().map_err(open_err)?;
            return Ok(LockGuard { _file: file });
        }
        if start.elapsed() >= timeout {
            let mut pid = String::new();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut pid);
            let pid = if pid.trim().is_empty() {
                "unknown".to_owned()
            } else {
                pid.trim().to_owned()
            };
            return Err(LockError::Busy {
                pid,
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_of_this_process_is_alive_only_while_it_runs_here() {
        let me = Some(std::process::id());
        assert!(
            !backup_alive(me, Some(41)),
            "an old record that reuses our pid"
        );
        let running = RunningHere::new(41);
        assert!(backup_alive(me, Some(41)));
        assert!(!backup_alive(me, Some(42)));
        drop(running);
        assert!(!backup_alive(me, Some(41)));
    }

    #[test]
    fn second_holder_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path(), Duration::ZERO).unwrap();
        let err = acquire(dir.path(), Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "another lvsnap is running (pid {})",
                std::process::id()
            )),
            "{err}"
        );
        drop(held);
        acquire(dir.path(), Duration::ZERO).unwrap();
    }
}

/// The lock of a command that lets go of it while it waits on something slow — a backup's
/// copy — so that scheduled snapshot runs are not blocked for hours, and takes it back after.
#[derive(Debug)]
pub struct Held {
    guard: std::cell::RefCell<Option<LockGuard>>,
    runtime_dir: PathBuf,
    timeout: Duration,
}

impl Held {
    /// Takes the lock as [`acquire`] does.
    ///
    /// # Errors
    /// As [`acquire`].
    pub fn acquire(runtime_dir: &Path, timeout: Duration) -> Result<Held, LockError> {
        Ok(Held {
            guard: std::cell::RefCell::new(Some(acquire(runtime_dir, timeout)?)),
            runtime_dir: runtime_dir.to_owned(),
            timeout,
        })
    }

    pub fn release(&self) {
        self.guard.borrow_mut().take();
    }

    /// Takes the lock back, waiting longer than a new command would: what runs meanwhile is a
    /// short snapshot run, and giving up would leave a mount behind.
    ///
    /// # Errors
    /// Another lvsnap held the lock for ten lock timeouts.
    pub fn reacquire(&self) -> Result<(), LockError> {
        if self.guard.borrow().is_some() {
            return Ok(());
        }
        let guard = acquire(&self.runtime_dir, self.timeout * 10)?;
        *self.guard.borrow_mut() = Some(guard);
        Ok(())
    }
}

/// Whether `pid` is another lvsnap process that is still running (a backup or mount record's
/// owner). This process never counts: its own records are finished before it looks.
/// Backups this process is running now (their catalog ids). The daemon runs jobs side by side
/// in one process: a record carrying this process's own pid is live only when listed here.
static RUNNING_HERE: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());

/// Marks backup `id` as running in this process until dropped.
pub struct RunningHere(i64);

impl RunningHere {
    pub fn new(id: i64) -> Self {
        RUNNING_HERE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        RunningHere(id)
    }
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        RUNNING_HERE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i| *i != self.0);
    }
}

/// Whether the backup `backup` recorded with `pid` is still being worked on: by another live
/// lvsnap, or by this very process (a daemon job beside the one asking).
pub fn backup_alive(pid: Option<u32>, backup: Option<i64>) -> bool {
    match pid {
        Some(p) if p == std::process::id() => backup.is_some_and(|id| {
            RUNNING_HERE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id)
        }),
        Some(p) => lvsnap_alive(p),
        None => false,
    }
}

pub fn lvsnap_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let name = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    match (name(&pid.to_string()), name("self")) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => false,
    }
}
