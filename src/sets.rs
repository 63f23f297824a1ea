//! Snapshot sets: the volumes of a policy with `set = true` are snapshotted together — one
//! `pre` hook, optionally their filesystems frozen, every lvcreate, thaw, one `post` hook — and
//! kept, removed and rolled back together. A set's identity is `POLICY.TIME` (the time as in
//! snapshot names), carried by every member in the catalog and in the `lvsnap-set` tag, so that
//! `catalog rebuild` restores it.
//!
//! Freezing: the filesystems stay frozen only while the lvcreates run, and are always thawed.
//! A guard process forked before the first freeze thaws them when lvsnap dies (even by
//! `kill -9`: its pipe closes) or when the freeze timeout passes (a hung LVM command).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The tag naming a snapshot's set: `lvsnap-set=POLICY.TIME`.
pub const SET_TAG: &str = "lvsnap-set";

/// A set's identity: the policy and the time, unique among ids for which `taken` is true.
pub fn set_id(policy: &str, t: DateTime<Utc>, taken: impl Fn(&str) -> bool) -> String {
    let base = format!("{policy}.{}", t.format("%Y%m%dT%H%M%SZ"));
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken(id))
        .expect("an unused suffix exists")
}

// _IOWR('X', 119, int) and _IOWR('X', 120, int), from <linux/fs.h>.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// Guard protocol, one byte each: member `i` is about to be frozen (`i`), its freeze failed
/// (`0x80 | i`: not ours to thaw), and everything is thawed (`DONE`: nothing left to do).
const DONE: u8 = 0xFF;
/// Members a freeze can hold (the guard's protocol has 7 bits for an index).
pub const MAX_FROZEN: usize = 127;

/// Filesystems frozen for a set's lvcreates.
pub struct Frozen {
    points: Vec<PathBuf>,
    fds: Vec<OwnedFd>,
    frozen: Vec<bool>,
    /// The guard process and our end of its pipe.
    guard: Option<(libc::pid_t, OwnedFd)>,
    started: Instant,
    timeout: Duration,
}

/// A filesystem to freeze: where it is mounted, and the device it must be (the origin's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezePoint {
    pub path: PathBuf,
    pub dev: u64,
}

/// Opens each mount point (refusing one that is not the origin's filesystem: something was
/// mounted over it), forks the guard, and freezes them in order.
///
/// # Errors
/// A mount point cannot be opened or frozen (what was frozen is thawed again), the freeze
/// outlasted its timeout, or the guard cannot be started (nothing was frozen).
pub fn freeze(points: &[FreezePoint], timeout: Duration) -> Result<Frozen, String> {
    if points.len() > MAX_FROZEN {
        return Err(format!(
            "a set freezes at most {MAX_FROZEN} filesystems, this one has {}",
            points.len()
        ));
    }
    let mut fds = Vec::with_capacity(points.len());
    for p in points {
        let fd = rustix::fs::open(
            &p.path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("cannot open {} to freeze it: {e}", p.path.display()))?;
        let dev = rustix::fs::fstat(&fd)
            .map_err(|e| format!("cannot read {}: {e}", p.path.display()))?
            .st_dev;
        if dev != p.dev {
            return Err(format!(
                "{} is not the origin's filesystem any more (another filesystem is mounted over it); nothing was frozen",
                p.path.display()
            ));
        }
        fds.push(fd);
    }
    // One clock for both: the guard's deadline is counted from here too.
    let started = Instant::now();
    let guard = spawn_guard(&fds, timeout)?;
    let mut frozen = Frozen {
        points: points.iter().map(|p| p.path.clone()).collect(),
        frozen: vec![false; fds.len()],
        fds,
        guard: Some(guard),
        started,
        timeout,
    };
    for i in 0..frozen.fds.len() {
        // Past the timeout the guard has thawed and gone: what is frozen now is unguarded.
        if frozen.timed_out() {
            let _ = frozen.thaw();
            return Err(format!(
                "freezing the set's filesystems took longer than freeze-timeout ({} s); all thawed again",
                timeout.as_secs()
            ));
        }
        frozen.tell(u8::try_from(i).expect("at most MAX_FROZEN"));
        // SAFETY: FIFREEZE takes an int argument it ignores; the fd is open.
        let r = unsafe { libc::ioctl(frozen.fds[i].as_raw_fd(), FIFREEZE as _, 0) };
        if r != 0 {
            let err = std::io::Error::last_os_error();
            frozen.tell(0x80 | u8::try_from(i).expect("at most MAX_FROZEN"));
            let why = match err.raw_os_error() {
                Some(libc::EBUSY) => {
                    "it is frozen already (by someone else: `fsfreeze -u` it when they are done)"
                        .to_owned()
                }
                Some(libc::EOPNOTSUPP) => "its filesystem cannot be frozen".to_owned(),
                _ => err.to_string(),
            };
            let point = frozen.points[i].display().to_string();
            let _ = frozen.thaw();
            return Err(format!("cannot freeze {point}: {why}"));
        }
        frozen.frozen[i] = true;
    }
    Ok(frozen)
}

impl Frozen {
    /// Whether the freeze outlasted its timeout: the guard thawed the filesystems while LVM
    /// was still at work, so the set is not one instant.
    pub fn timed_out(&self) -> bool {
        self.started.elapsed() >= self.timeout
    }

    /// Thaws every filesystem frozen, stops the guard, and says how long they were frozen.
    ///
    /// # Errors
    /// A thaw failed for another reason than the filesystem not being frozen (any more); the
    /// guard still thaws what it can.
    pub fn thaw(&mut self) -> Result<Duration, String> {
        let mut errors = Vec::new();
        for (i, fd) in self.fds.iter().enumerate() {
            if !std::mem::take(&mut self.frozen[i]) {
                continue;
            }
            // SAFETY: as for FIFREEZE.
            let r = unsafe { libc::ioctl(fd.as_raw_fd(), FITHAW as _, 0) };
            if r == 0 {
                // Thawed: no longer the guard's to thaw (someone may freeze it again).
                if let Some((_, pipe)) = &self.guard {
                    let _ = rustix::io::write(pipe, &[0x80 | u8::try_from(i).unwrap_or(0x7F)]);
                }
            } else {
                let err = std::io::Error::last_os_error();
                // EINVAL: not frozen — the guard thawed it at the timeout.
                if err.raw_os_error() != Some(libc::EINVAL) {
                    errors.push(format!("{}: {err}", self.points[i].display()));
                }
            }
        }
        let window = self.started.elapsed();
        if errors.is_empty() {
            self.tell(DONE);
        }
        self.stop_guard();
        if errors.is_empty() {
            Ok(window)
        } else {
            Err(format!(
                "cannot thaw {} (thaw by hand: fsfreeze -u MOUNTPOINT)",
                errors.join(", ")
            ))
        }
    }

    fn tell(&self, byte: u8) {
        if let Some((_, pipe)) = &self.guard {
            let _ = rustix::io::write(pipe, &[byte]);
        }
    }

    /// Closes the guard's pipe (it thaws what it still holds, then exits) and reaps it.
    fn stop_guard(&mut self) {
        if let Some((pid, pipe)) = self.guard.take() {
            drop(pipe);
            let mut status = 0;
            // SAFETY: the pid is our own child's.
            unsafe { libc::waitpid(pid, &raw mut status, 0) };
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if self.frozen.iter().any(|f| *f) || self.guard.is_some() {
            let _ = self.thaw();
        }
    }
}

/// Forks the guard: it waits on a pipe, learns which filesystems are frozen, and thaws those
/// when the pipe closes without `DONE` or when `timeout` passes.
fn spawn_guard(fds: &[OwnedFd], timeout: Duration) -> Result<(libc::pid_t, OwnedFd), String> {
    let raw: Vec<libc::c_int> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let mut marked = vec![false; raw.len()];
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let mut ends = [0 as libc::c_int; 2];
    // SAFETY: ends is two ints; O_CLOEXEC keeps the write end out of LVM's processes, whose
    // lifetimes would otherwise hold the pipe open.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot start the freeze guard: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (read_end, write_end) = (ends[0], ends[1]);
    // SAFETY: after fork the child only calls async-signal-safe functions (signal, close,
    // clock_gettime, poll, read, ioctl, _exit) and touches memory allocated before the fork:
    // it is safe in a multi-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: both ends are ours.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return Err(format!("cannot start the freeze guard: {err}"));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe { guard_main(read_end, write_end, &raw, &mut marked, timeout_ms) }
    }
    // SAFETY: the read end is the child's now; the write end is ours alone.
    unsafe { libc::close(read_end) };
    let write_end = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(write_end) };
    Ok((pid, write_end))
}

/// The guard's whole life, in the forked child.
///
/// # Safety
/// Called only in the child of `fork`; never returns.
unsafe fn guard_main(
    read_end: libc::c_int,
    write_end: libc::c_int,
    fds: &[libc::c_int],
    marked: &mut [bool],
    timeout_ms: i64,
) -> ! {
    // A terminal's ^C or a service stop signals every process: the guard outlives lvsnap by
    // design, for as long as it takes to thaw.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        libc::signal(sig, libc::SIG_IGN);
    }
    libc::close(write_end);
    let now_ms = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts);
        ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    };
    let deadline = now_ms().saturating_add(timeout_ms);
    let mut buf = [0u8; 64];
    // Past the deadline it thaws what it holds, and then goes on listening: a filesystem
    // reported frozen later (a FIFREEZE that was still syncing) is thawed at once.
    let mut expired = false;
    loop {
        let left = deadline - now_ms();
        if !expired && left <= 0 {
            for (i, fd) in fds.iter().enumerate() {
                if marked[i] {
                    libc::ioctl(*fd, FITHAW as _, 0);
                }
            }
            expired = true;
        }
        let mut pfd = libc::pollfd {
            fd: read_end,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = if expired {
            -1
        } else {
            libc::c_int::try_from(left.clamp(1, 60_000)).unwrap_or(60_000)
        };
        let r = libc::poll(&raw mut pfd, 1, wait);
        if r <= 0 {
            continue;
        }
        let n = libc::read(read_end, buf.as_mut_ptr().cast(), buf.len());
        if n <= 0 {
            break;
        }
        for &b in &buf[..usize::try_from(n).unwrap_or(0)] {
            if b == DONE {
                libc::_exit(0);
            }
            let i = usize::from(b & 0x7F);
            if i < marked.len() {
                marked[i] = b & 0x80 == 0;
                if expired && marked[i] {
                    libc::ioctl(fds[i], FITHAW as _, 0);
                }
            }
        }
    }
    // lvsnap is gone (or closed the pipe without DONE): thaw what it held.
    for (i, fd) in fds.iter().enumerate() {
        if marked[i] {
            libc::ioctl(*fd, FITHAW as _, 0);
        }
    }
    libc::_exit(0)
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// Refuses a freeze on a kernel older than 6.6: before it, a filesystem frozen with FIFREEZE
/// cannot be frozen again by device-mapper, so every lvcreate of a frozen origin fails
/// ("suspend ioctl … Device or resource busy"), and a thick one can leave a half-made volume
/// behind ("Manual intervention required", measured on 6.1). From 6.6 the kernel's freeze
/// and the user's nest.
///
/// # Errors
/// The kernel is older, or its release cannot be read.
pub fn kernel_can_freeze(release: &str) -> Result<(), String> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Err(format!(
            "freeze = true: cannot tell the kernel's version from {release:?}; no snapshot of the set taken"
        ));
    };
    if (major, minor) >= (6, 6) {
        return Ok(());
    }
    Err(format!(
        "freeze = true needs Linux 6.6 or later, and this is {release}: before 6.6, LVM cannot snapshot a filesystem frozen by fsfreeze (device-mapper's own freeze fails with EBUSY, and a thick lvcreate can leave a half-made volume); no snapshot of the set taken\n    hint: set freeze = false — the pre and post hooks can quiesce the application across the set, and each snapshot is consistent on its own (LVM suspends its origin while taking it)"
    ))
}

/// Refuses to freeze a filesystem lvsnap or LVM must write to while it is frozen: the
/// catalog's directory (each lvcreate's intent and result), LVM's `/etc/lvm` (its metadata
/// archive) and `/run` (its locks). Frozen, they would hang the run until the timeout.
///
/// # Errors
/// Names the mount point, what it holds, and the way out.
pub fn check_freezable(point: &Path, volume: &str, state_dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::metadata(point).map(|m| m.dev()) else {
        return Err(format!("cannot read {} to freeze it", point.display()));
    };
    for (dir, what) in [
        (state_dir, "lvsnap's catalog"),
        (Path::new("/etc/lvm"), "LVM's metadata archive"),
        (Path::new("/run"), "LVM's locks"),
    ] {
        if std::fs::metadata(dir).is_ok_and(|m| m.dev() == dev) {
            return Err(format!(
                "{volume} is mounted at {} and holds {what} ({}): frozen, the snapshot commands could not write there\n    hint: set freeze = false for this set (each snapshot is still consistent on its own; the pre/post hooks can quiesce the application), or move {} to another filesystem",
                point.display(),
                dir.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn set_ids_name_policy_and_time_and_avoid_collisions() {
        let t = Utc.with_ymd_and_hms(2026, 12, 4, 6, 0, 0).unwrap();
        assert_eq!(set_id("db", t, |_| false), "db.20261204T060000Z");
        assert_eq!(
            set_id("db", t, |id| id == "db.20261204T060000Z"),
            "db.20261204T060000Z-2"
        );
    }

    #[test]
    fn freezing_needs_a_kernel_whose_freezes_nest() {
        assert!(kernel_can_freeze("6.1.0-41-amd64")
            .unwrap_err()
            .contains("needs Linux 6.6 or later, and this is 6.1.0-41-amd64"));
        assert!(kernel_can_freeze("5.15.0-91-generic").is_err());
        assert!(kernel_can_freeze("6.6.0").is_ok());
        assert!(kernel_can_freeze("6.12.57+deb13-amd64").is_ok());
        assert!(kernel_can_freeze("7.0").is_ok());
        assert!(kernel_can_freeze("weird").is_err());
    }

    #[test]
    fn a_guard_without_frozen_filesystems_exits_when_told() {
        // No filesystem is frozen here (that needs the VM); the guard must start and stop.
        let dir = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let (pid, pipe) = spawn_guard(&[fd], Duration::from_secs(30)).unwrap();
        let _ = rustix::io::write(&pipe, &[0, 0x80, DONE]);
        // DONE alone ends it: the pipe is still open.
        let mut status = -1;
        let t = Instant::now();
        let mut gone = 0;
        while gone == 0 && t.elapsed() < Duration::from_secs(10) {
            // SAFETY: our child.
            gone = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(gone, pid, "the guard did not exit on DONE");
        assert_eq!(status, 0);
        drop(pipe);
    }
}
