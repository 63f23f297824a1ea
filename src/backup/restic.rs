//! The restic engine: each backup is one restic snapshot in a repository that may be off the
//! host and shared by many hosts. lvsnap runs `restic` from a trusted path with argv vectors
//! and reads its JSON. The snapshot's ID, host and tags, recorded in the catalog, are what let
//! lvsnap forget its own snapshots and no one else's.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{url_password, ResticRepo};
use crate::manifest::Progress;
use crate::names::shown;

/// The tag every snapshot lvsnap makes carries.
pub const TAG: &str = "lvsnap";

/// One repository, opened with its credentials: the password file and the backend's
/// environment, both checked to be root's alone.
pub struct Restic<'a> {
    pub repo: &'a ResticRepo,
    /// The host the snapshots are filed under.
    pub host: String,
    cache: PathBuf,
    env: HashMap<String, String>,
    /// The env file's variables, masked in messages.
    secrets: BTreeMap<String, String>,
    /// Stops the command like `cancel`, but is not a signal (see [`Late`]).
    stop: Option<&'a AtomicBool>,
}

/// What one restic backup reads, and how the snapshot is filed.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The snapshot's read-only mount point.
    pub dir: &'a Path,
    /// The snapshot's own time, the restic snapshot's time.
    pub time: DateTime<Utc>,
    pub tags: &'a [String],
    /// Paths relative to the volume's root, matched literally.
    pub exclude: &'a [PathBuf],
    /// The restic snapshot of the volume's previous backup.
    pub parent: Option<&'a str>,
    /// Read every file, whatever the parent says (`--force`).
    pub reread_all: bool,
    /// More entries to leave out, known only once restic has started.
    pub late: Option<&'a Late>,
}

/// How long an interrupted restic has to remove its lock and exit before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// The most lvsnap passes on restic's command line, in bytes (Linux allows 2 MiB in all).
const MAX_ARGS: usize = 1 << 20;

/// Entries to leave out of a restic backup that are known only after restic has started: the
/// walk of the snapshot finds them (unreadable, too long) while restic derives its key and
/// locks the repository, instead of before restic starts. restic reads its exclude files only
/// after that, so it is given a FIFO (`--exclude-file`), which lvsnap writes once the walk is
/// done ([`Late::give`]); a run of restic that does not read it gets the entries as arguments.
#[derive(Debug)]
pub struct Late {
    /// A private directory of its own, removed with it.
    dir: PathBuf,
    found: std::sync::OnceLock<Result<Vec<PathBuf>, String>>,
    /// The run that was to read the FIFO has ended (or never started).
    ended: AtomicBool,
    /// Stops that run (restic is interrupted, and removes its lock).
    stop: AtomicBool,
    /// Why it was stopped: the FIFO could not be written, so restic starts again with the
    /// entries as arguments.
    unwritten: AtomicBool,
    /// Stops any run: the backup failed without restic.
    abandoned: AtomicBool,
}

impl Late {
    /// A FIFO in `dir`, made anew (0700; one left by a killed lvsnap is removed first).
    ///
    /// # Errors
    /// It cannot be made.
    pub fn new(dir: PathBuf) -> std::io::Result<Late> {
        super::engines::remove_path(&dir)?;
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let late = Late {
            dir,
            found: std::sync::OnceLock::new(),
            ended: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            unwritten: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        };
        // (dropped on failure, with the directory)
        rustix::fs::mknodat(
            rustix::fs::CWD,
            late.fifo(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )?;
        Ok(late)
    }

    fn fifo(&self) -> PathBuf {
        self.dir.join("late")
    }

    fn arg(&self) -> OsString {
        let mut a = OsString::from("--exclude-file=");
        a.push(self.fifo());
        a
    }

    /// Stops restic, whichever run goes on: the backup failed without it.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The run that was to read the FIFO is over (whether or not it did).
    pub fn ended(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    fn unwritten(&self, why: &str) {
        tracing::debug!("{why}");
        self.unwritten.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The entries, once given (or why there are none); an error once the backup is
    /// abandoned without them.
    fn found(&self) -> Result<Vec<PathBuf>, String> {
        loop {
            if let Some(found) = self.found.get() {
                return found.clone();
            }
            if self.abandoned.load(Ordering::SeqCst) {
                return Err("the backup was given up before the walk of the snapshot ended".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Gives restic what the walk found to leave out (paths relative to `source`, the mount
    /// point restic backs up), or the reason the walk failed (restic is then stopped), as it
    /// arrives on `found`. Runs beside restic and the walk, from when restic starts; returns
    /// once restic has read it all, or its run has ended, or `cancel` is set.
    pub fn give(
        &self,
        source: &Path,
        found: &std::sync::mpsc::Receiver<Result<Vec<PathBuf>, String>>,
        cancel: &AtomicBool,
    ) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // (the walk always ends with a result, unless it panicked)
        let wait = || {
            found
                .recv()
                .unwrap_or_else(|_| Err("the walk of the snapshot ended without a result".into()))
        };
        // restic opens the FIFO for reading once the repository is locked; opening it for
        // writing fails (ENXIO) until then. From then on the writer may wait for the walk:
        // restic's end keeps the pipe, and what is written, until restic has read it. (Opened
        // before restic, a close would lose what was written, and restic would wait forever.)
        let fifo = self.fifo();
        let mut arrived = None;
        let opened = loop {
            if arrived.is_none() {
                arrived = found.try_recv().ok();
            }
            if matches!(arrived, Some(Err(_))) {
                break None;
            }
            if self.ended.load(Ordering::SeqCst) || cancel.load(Ordering::SeqCst) {
                break None;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(f) => break Some(Ok(f)),
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => break Some(Err(e)),
            }
        };
        let waiting = std::time::Instant::now();
        let early = arrived.is_some();
        let found = arrived.unwrap_or_else(wait);
        if !early && matches!(opened, Some(Ok(_))) {
            tracing::debug!(
                ms = waiting.elapsed().as_millis(),
                "restic waited for the walk of the snapshot"
            );
        }
        let text: Result<Vec<u8>, ()> = found.as_ref().map_err(|_| ()).map(|paths| {
            let mut text = Vec::new();
            for p in paths {
                text.extend_from_slice(&exclude_line(&source.join(p)));
                text.push(b'\n');
            }
            text
        });
        let _ = self.found.set(found);
        let Ok(text) = text else {
            // The walk failed: restic is stopped for good, before the writer closes (a close
            // first would let restic read an empty list and go on).
            self.abandon();
            if matches!(opened, Some(Ok(_))) {
                while !self.ended.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            drop(opened);
            return;
        };
        // restic's run ended, or a signal came: nothing to write.
        let Some(opened) = opened else {
            return;
        };
        let mut w = match opened {
            Ok(w) => w,
            // restic waits for a writer that does not come.
            Err(e) => return self.unwritten(&format!("cannot open {}: {e}", fifo.display())),
        };
        // Blocking writes from here: restic reads to the end. If it dies, the write fails.
        let written = rustix::fs::fcntl_setfl(&w, rustix::fs::OFlags::empty())
            .map_err(std::io::Error::from)
            .and_then(|()| w.write_all(&text));
        if let Err(e) = written {
            // restic may have read part of a line, which can match another entry.
            self.unwritten(&format!("writing {}: {e}", fifo.display()));
        }
    }
}

impl Drop for Late {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `path` as a line of restic's exclude file that matches only `path`. restic splits the file
/// at newlines, trims each line's white space and expands `$NAME` in it; so a newline is
/// written as a class that matches only it (a name holds no NUL, and bytes that are not UTF-8
/// count as U+FFFD, inside the class's ranges), a `$` as `[$]`, and white space at the end as
/// one-character classes.
fn exclude_line(path: &Path) -> Vec<u8> {
    const NEWLINE: &[u8] = "[^\u{1}-\t\u{b}-\u{10ffff}]".as_bytes();
    let escaped = escape_pattern(path);
    // White space at the end, as Go's TrimSpace finds it (on the bytes: a name need not be
    // UTF-8, and keeps its bytes).
    let mut keep = escaped.len();
    'trim: while keep > 0 {
        for n in 1..=keep.min(4) {
            if let Ok(c) = std::str::from_utf8(&escaped[keep - n..keep]) {
                if c.chars().all(char::is_whitespace) {
                    keep -= n;
                    continue 'trim;
                }
                break 'trim;
            }
        }
        break;
    }
    let mut out = Vec::with_capacity(escaped.len() + 8);
    for &b in &escaped[..keep] {
        match b {
            b'$' => out.extend_from_slice(b"[$]"),
            b'\n' => out.extend_from_slice(NEWLINE),
            _ => out.push(b),
        }
    }
    let tail = std::str::from_utf8(&escaped[keep..]).expect("white space is UTF-8");
    for c in tail.chars() {
        if c == '\n' {
            out.extend_from_slice(NEWLINE);
            continue;
        }
        out.push(b'[');
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        out.push(b']');
    }
    out
}

/// What `restic backup` reported at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The snapshot's full ID.
    pub id: String,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    /// Bytes the backup added to the repository (after deduplication and compression).
    pub data_added: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
}

/// The record of a backup's restic snapshot, kept beside its manifest (`NAME.restic`): with the
/// manifest it is what `catalog rebuild` and a run after a crash read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub repository: String,
    pub host: String,
    pub tags: Vec<String>,
    pub summary: Summary,
}

/// A snapshot as `restic snapshots --json` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub time: DateTime<Utc>,
}

/// Why restic failed, as far as lvsnap can tell (restic 0.14 has one exit status for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    WrongPassword,
    NoRepository,
    Unreachable(String),
    /// Locked by another restic: (pid, host) when restic says.
    Locked(Option<(u32, String)>),
    /// The repository's storage is full (restic's line saying so).
    Full(String),
    /// The repository's storage cannot be written (restic's line saying so).
    ReadOnly(String),
    Interrupted,
    Other(String),
}

impl Restic<'_> {
    /// Opens `repo` after checking its credential files; the cache lives in `state_dir`.
    ///
    /// # Errors
    /// A credential file is missing, not root's, readable by others, or malformed.
    pub fn open<'a>(repo: &'a ResticRepo, state_dir: &Path) -> Result<Restic<'a>, String> {
        secret_file(&repo.password_file, "password-file")?;
        let mut env = crate::tools::child_env();
        // `--time` is read in restic's local time zone.
        env.insert("TZ".to_owned(), "UTC".to_owned());
        let mut secrets = BTreeMap::new();
        if let Some(f) = &repo.env_file {
            secrets = env_file(f)?;
            env.extend(secrets.clone());
        }
        // In the environment, not on the command line: a REST URL may hold a password, and
        // every user can read a process's arguments.
        env.insert("RESTIC_REPOSITORY".to_owned(), repo.repository.clone());
        let cache = state_dir.join("restic-cache");
        crate::private::own_dir(&cache)
            .map_err(|e| format!("cannot create restic's cache {}: {e}", cache.display()))?;
        Ok(Restic {
            repo,
            host: repo.host.clone().unwrap_or_else(machine_host),
            cache,
            env,
            secrets,
            stop: None,
        })
    }

    fn argv(&self, args: &[OsString]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "--password-file".into(),
            self.repo.password_file.clone().into(),
            "--cache-dir".into(),
            self.cache.clone().into(),
            // Scripts, not people, read the output: no progress bar on a terminal.
            "--quiet".into(),
        ];
        v.extend(args.iter().cloned());
        v
    }

    /// Runs restic with `args` in `cwd`, each line of its output to `on_line`.
    ///
    /// # Errors
    /// restic could not start, failed (with the reason as far as it can be told), or was
    /// cancelled.
    pub fn run(
        &self,
        args: &[OsString],
        cwd: Option<&Path>,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> Result<(), (Failure, String)> {
        self.run_reading(args, cwd, cancel, &mut |r| {
            let mut lines = std::io::BufReader::new(r);
            let mut line = Vec::new();
            loop {
                line.clear();
                if lines.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                on_line(&line);
            }
        })
    }

    /// Runs restic with `args` in `cwd`, its output read by `consume` (to its end, or restic is
    /// killed when `consume` stops early or fails).
    ///
    /// # Errors
    /// As [`Restic::run`]; or `consume` failed (its error comes first).
    pub fn run_reading(
        &self,
        args: &[OsString],
        cwd: Option<&Path>,
        cancel: &AtomicBool,
        consume: &mut dyn FnMut(&mut dyn std::io::Read) -> std::io::Result<()>,
    ) -> Result<(), (Failure, String)> {
        let start = std::time::Instant::now();
        let result = self.run_reading_timed(args, cwd, cancel, consume);
        tracing::debug!(command = %format!("restic {}", args.first().map(|a| a.to_string_lossy()).unwrap_or_default()), ok = result.is_ok(), ms = start.elapsed().as_millis(), "ran");
        result
    }

    fn run_reading_timed(
        &self,
        args: &[OsString],
        cwd: Option<&Path>,
        cancel: &AtomicBool,
        consume: &mut dyn FnMut(&mut dyn std::io::Read) -> std::io::Result<()>,
    ) -> Result<(), (Failure, String)> {
        let program =
            crate::tools::path_of("restic").map_err(|e| (Failure::Other(e.clone()), e))?;
        let argv = self.argv(args);
        let mut expr = duct::cmd(&program, &argv)
            .full_env(&self.env)
            .stdin_null()
            .stderr_capture()
            .unchecked();
        if let Some(d) = cwd {
            expr = expr.dir(d);
        }
        let reader = expr
            .before_spawn(super::engines::dies_with_lvsnap)
            .reader()
            .map_err(|e| {
                let why = format!("cannot start {}: {e}", program.display());
                (Failure::Other(why.clone()), why)
            })?;
        // A cancel interrupts restic, which removes its lock from the repository and exits,
        // ending the output `consume` reads; one that does not exit within a grace period is
        // killed.
        let stop = AtomicBool::new(false);
        let consumed = std::thread::scope(|s| {
            let reader = &reader;
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if cancel.load(Ordering::SeqCst) || self.stopped() {
                        // (not to a pid restic no longer has: it may be another process's)
                        let running = matches!(reader.try_wait(), Ok(None));
                        for pid in reader.pids().into_iter().filter(|_| running) {
                            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                                let _ = rustix::process::kill_process(
                                    pid,
                                    rustix::process::Signal::INT,
                                );
                            }
                        }
                        let given = std::time::Instant::now();
                        while !stop.load(Ordering::SeqCst) && given.elapsed() < INTERRUPT_GRACE {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        let _ = reader.kill();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let mut r: &duct::ReaderHandle = reader;
            let consumed = consume(&mut r);
            stop.store(true, Ordering::SeqCst);
            consumed
        });
        if cancel.load(Ordering::SeqCst) || self.stopped() {
            let _ = reader.kill();
            return Err((
                Failure::Interrupted,
                "interrupted: restic stopped by a signal".to_owned(),
            ));
        }
        if let Err(e) = consumed {
            // Output that ends too soon is most often restic failing: its own message says why.
            let _ = reader.kill();
            let stderr = match reader.try_wait() {
                Ok(Some(o)) if !o.status.success() => {
                    String::from_utf8_lossy(&o.stderr).into_owned()
                }
                _ => String::new(),
            };
            let failure = classify(&stderr);
            let why = if stderr.trim().is_empty() {
                format!("reading restic's output: {e}")
            } else {
                format!(
                    "{} (reading its output: {e})",
                    self.explain(&failure, None, &stderr)
                )
            };
            return Err((failure, why));
        }
        let output = match reader.try_wait() {
            Ok(Some(o)) => o.clone(),
            Ok(None) => {
                // The output ended before restic did: wait for it.
                let mut rest = Vec::new();
                let mut r: &duct::ReaderHandle = &reader;
                let _ = std::io::Read::read_to_end(&mut r, &mut rest);
                match reader.try_wait() {
                    Ok(Some(o)) => o.clone(),
                    _ => {
                        let why = "restic closed its output but did not exit".to_owned();
                        return Err((Failure::Other(why.clone()), why));
                    }
                }
            }
            Err(e) => {
                let why = format!("restic: {e}");
                return Err((Failure::Other(why.clone()), why));
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let failure = classify(&stderr);
        Err((
            failure.clone(),
            self.explain(&failure, output.status.code(), &stderr),
        ))
    }

    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// `text` with the repository's password (and the env file's values) masked: restic
    /// quotes the repository URL in some of its errors.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(
            &self.repo.repository,
            &shown_repository(&self.repo.repository),
        );
        if let Some(pw) = url_password(&self.repo.repository) {
            out = out.replace(pw, "***");
        }
        for (k, v) in &self.secrets {
            if v.len() >= 4 {
                out = out.replace(v.as_str(), &format!("${k}"));
            }
        }
        out
    }

    /// What an administrator reads for a failure: the repository named, and what to do.
    fn explain(&self, f: &Failure, code: Option<i32>, stderr: &str) -> String {
        self.redact(&self.explain_raw(f, code, stderr))
    }

    fn explain_raw(&self, f: &Failure, code: Option<i32>, stderr: &str) -> String {
        let repo = &shown_repository(&self.repo.repository);
        let pw = self.repo.password_file.display();
        match f {
            Failure::WrongPassword => {
                format!("the password in {pw} does not open restic repository {repo}; check password-file")
            }
            Failure::NoRepository => format!(
                "there is no restic repository at {repo}; create it with `restic -r {repo} init --password-file {pw}`, or check repository"
            ),
            Failure::Unreachable(why) => format!("cannot reach restic repository {repo}: {why}"),
            Failure::Locked(Some((pid, host))) => format!(
                "restic repository {repo} is locked by restic (pid {pid}) on {host}; lvsnap retries on its next run"
            ),
            Failure::Locked(None) => {
                format!("restic repository {repo} is locked by another restic; lvsnap retries on its next run")
            }
            Failure::Full(why) => format!(
                "restic repository {repo} is full ({why}); free space there (a prune of forgotten snapshots frees some: `restic -r {repo} prune`), and the next run retries"
            ),
            Failure::ReadOnly(why) => format!(
                "restic repository {repo} cannot be written ({why}); make its storage writable again, and the next run retries"
            ),
            Failure::Interrupted => "interrupted: restic stopped by a signal".to_owned(),
            Failure::Other(_) => {
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = &lines[lines.len().saturating_sub(5)..];
                format!(
                    "restic (repository {repo}) {}: {}",
                    code.map_or("failed".to_owned(), |c| format!("exited with status {c}")),
                    tail.join(" / ")
                )
            }
        }
    }

    /// [`Restic::run`], and once more after removing stale locks when a lock held it up: a
    /// killed restic leaves its lock behind, and `restic unlock` removes only locks whose
    /// process is gone (on this host) or that are too old to be alive.
    ///
    /// # Errors
    /// As [`Restic::run`].
    pub fn run_unlocking(
        &self,
        args: &[OsString],
        cwd: Option<&Path>,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> Result<(), (Failure, String)> {
        match self.run(args, cwd, cancel, on_line) {
            Err((Failure::Locked(who), why)) if stale(who.as_ref()) => {
                tracing::warn!(repository = %shown_repository(&self.repo.repository), "{why}; its process is gone: removing the stale lock");
                self.run(&["unlock".into()], None, cancel, &mut |_| {})?;
                self.run(args, cwd, cancel, on_line)
            }
            other => other,
        }
    }

    /// Backs up a snapshot's mount point as a restic snapshot taken at its time, with paths
    /// relative to the volume's root.
    ///
    /// # Errors
    /// restic failed; with the reason.
    pub fn backup(
        &self,
        what: &Source<'_>,
        cancel: &AtomicBool,
        progress: &Progress,
    ) -> Result<Summary, String> {
        let Source {
            dir: source,
            time,
            tags,
            exclude,
            parent,
            reread_all,
            late,
        } = *what;
        let mut args: Vec<OsString> = vec![
            "backup".into(),
            "--json".into(),
            "--host".into(),
            self.host.clone().into(),
            "--time".into(),
            time.format("%Y-%m-%d %H:%M:%S").to_string().into(),
            "--tag".into(),
            tags.join(",").into(),
            "--one-file-system".into(),
        ];
        // Each backup mounts the snapshot at a new path, so restic would find no parent of its
        // own and read every file again. With the previous snapshot as parent it reads only
        // files whose mtime, ctime, size or inode changed (a snapshot keeps its origin's
        // inodes; no one can set a ctime back, so a file rewritten in place is read again).
        if let Some(p) = parent {
            args.extend(["--parent".into(), p.into()]);
        }
        if reread_all {
            args.push("--force".into());
        }
        // Excludes are arguments, not an exclude file: restic expands `$NAME` in the lines of
        // one, and a name may hold a `$`. Anchored at the mount point and escaped, each matches
        // one path only.
        let excluding = |args: &mut Vec<OsString>, exclude: &[PathBuf]| {
            for x in exclude {
                let mut a = b"--exclude=".to_vec();
                a.extend_from_slice(&escape_pattern(&source.join(x)));
                args.push(OsString::from_vec(a));
            }
            let bytes: usize = args.iter().map(|a| a.len() + 1).sum();
            if bytes > MAX_ARGS {
                return Err(format!(
                    "{} entries to leave out make restic's command line {bytes} bytes long, more than lvsnap passes ({MAX_ARGS} bytes); exclude their directories instead",
                    exclude.len(),
                ));
            }
            Ok(())
        };
        excluding(&mut args, exclude)?;
        // What a run that does not read the FIFO is given instead: the late entries as
        // arguments, once they are known.
        let settled = |args: &[OsString]| -> Result<Vec<OsString>, String> {
            let Some(l) = late else {
                return Ok(args.to_vec());
            };
            let mut args: Vec<OsString> = args.iter().filter(|a| **a != l.arg()).cloned().collect();
            let dot = args.pop();
            excluding(&mut args, &l.found()?)?;
            args.extend(dot);
            Ok(args)
        };
        if let Some(l) = late {
            args.push(l.arg());
        }
        // "." from the mount point: restic files the tree under its root, not the mount path.
        args.push(".".into());
        let mut summary = None;
        let mut errors = Vec::new();
        let mut on_line = |line: &[u8]| match serde_json::from_slice::<Message>(line) {
            Ok(Message::Status {
                total_bytes,
                bytes_done,
            }) => {
                progress.total.store(total_bytes, Ordering::Relaxed);
                progress.done.store(bytes_done, Ordering::Relaxed);
            }
            Ok(Message::Summary(s)) => summary = Some(Summary::from(s)),
            Ok(Message::Error { error, item }) => errors.push(format!(
                "{}: {}",
                item.unwrap_or_default(),
                error.map(|e| e.message).unwrap_or_default()
            )),
            Ok(Message::Other) | Err(_) => {}
        };
        // `--quiet` (every run) silences restic's status lines unless a rate is set: without
        // one, the progress bar of a restic backup never moved (restic 0.14, measured).
        let mut env = self.env.clone();
        env.insert("RESTIC_PROGRESS_FPS".to_owned(), "2".to_owned());
        let reporting = Restic {
            repo: self.repo,
            host: self.host.clone(),
            cache: self.cache.clone(),
            env,
            secrets: self.secrets.clone(),
            stop: late.map(|l| &l.abandoned),
        };
        // The run that reads the FIFO: the only one (a second run would wait for a writer
        // that is gone), stopped when the late entries cannot be written there.
        let first = match late {
            Some(l) => {
                let reading = Restic {
                    repo: self.repo,
                    host: self.host.clone(),
                    cache: self.cache.clone(),
                    env: reporting.env.clone(),
                    secrets: self.secrets.clone(),
                    stop: Some(&l.stop),
                };
                let first = reading.run(&args, Some(source), cancel, &mut on_line);
                l.ended();
                first
            }
            None => reporting.run(&args, Some(source), cancel, &mut on_line),
        };
        let again = match first {
            Err((Failure::Interrupted, _))
                if late.is_some_and(|l| {
                    l.unwritten.load(Ordering::SeqCst) && !l.abandoned.load(Ordering::SeqCst)
                }) && !cancel.load(Ordering::SeqCst) =>
            {
                tracing::info!("the FIFO of what to leave out could not be written: restic starts again with it as arguments");
                Some(settled(&args)?)
            }
            Err((Failure::Locked(who), why)) if stale(who.as_ref()) => {
                tracing::warn!(repository = %shown_repository(&self.repo.repository), "{why}; its process is gone: removing the stale lock");
                self.run(&["unlock".into()], None, cancel, &mut |_| {})
                    .map_err(|(_, why)| why)?;
                Some(settled(&args)?)
            }
            // The parent is gone from the repository (forgotten by hand, a repository made
            // anew): restic reads everything, as for a first backup.
            Err((Failure::Other(e), _))
                if parent.is_some_and(|p| e.contains(&format!("invalid id \"{p}\""))) =>
            {
                tracing::warn!(parent = %parent.unwrap_or_default(), "the previous restic snapshot is gone; backing up without a parent");
                let at = args
                    .iter()
                    .position(|a| a == "--parent")
                    .expect("a parent was given");
                args.drain(at..at + 2);
                Some(settled(&args)?)
            }
            other => {
                other.map_err(|(_, why)| why)?;
                None
            }
        };
        // (Each of these ended before restic read a file: `errors` and `summary` are empty.)
        if let Some(args) = again {
            if cancel.load(Ordering::SeqCst)
                || late.is_some_and(|l| l.abandoned.load(Ordering::SeqCst))
            {
                return Err("interrupted: restic stopped by a signal".to_owned());
            }
            reporting
                .run_unlocking(&args, Some(source), cancel, &mut on_line)
                .map_err(|(_, why)| why)?;
        }
        if !errors.is_empty() {
            return Err(format!(
                "restic could not read {} entries of the snapshot: {}",
                errors.len(),
                errors
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        // restic 0.14 reports the short ID: the listing that proves the backup reads the full one.
        summary.ok_or_else(|| "restic backup ended without its summary".to_owned())
    }

    /// Whether the repository opens: reachable, initialised, the password right.
    ///
    /// # Errors
    /// It does not, with the reason and the fix.
    pub fn reachable(&self, cancel: &AtomicBool) -> Result<Vouch, String> {
        self.opened(self.start_opening()?, cancel)
    }

    /// Starts restic opening the repository (`cat config`, which derives the key from the
    /// password: half a second of CPU and more) without waiting for it, so that it runs while
    /// lvsnap does other work; [`Restic::opened`] waits for it.
    ///
    /// # Errors
    /// restic cannot be found or started.
    pub fn start_opening(&self) -> Result<Opening, String> {
        let program = crate::tools::path_of("restic")?;
        let sign = self.credentials_sign();
        duct::cmd(
            &program,
            self.argv(&["cat".into(), "config".into(), "--no-lock".into()]),
        )
        .full_env(&self.env)
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .before_spawn(super::engines::dies_with_lvsnap)
        .start()
        .map(|h| Opening(h, std::time::Instant::now(), sign))
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
    }

    /// Waits for an opening [`Restic::start_opening`] started.
    ///
    /// # Errors
    /// The repository does not open, with the reason and the fix; or a signal came first.
    pub fn opened(&self, opening: Opening, cancel: &AtomicBool) -> Result<Vouch, String> {
        let output = loop {
            if cancel.load(Ordering::SeqCst) {
                return Err("interrupted: restic stopped by a signal".to_owned());
            }
            match opening.0.try_wait() {
                Ok(Some(o)) => break o.clone(),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("restic: {e}")),
            }
        };
        tracing::debug!(
            command = "restic cat",
            ok = output.status.success(),
            ms = opening.1.elapsed().as_millis(),
            "ran"
        );
        if output.status.success() {
            return Ok(Vouch(opening.2.clone()));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(self.explain(&classify(&stderr), output.status.code(), &stderr))
    }

    /// Whether this repository opened with these very credential files before, and no backup
    /// into it has failed since ([`Restic::vouch`]). Then a run need not pay for `restic cat
    /// config` (restic's key derivation, half a second and more) before mounting: a password
    /// or env file that was edited, replaced or chmod-ed since has another change time or
    /// inode, and is checked again before anything is mounted.
    #[must_use]
    pub fn vouched(&self) -> bool {
        let path = self.vouch_path();
        match (std::fs::read_to_string(&path), self.credentials_sign()) {
            (Ok(kept), Some(now)) => kept == now,
            _ => false,
        }
    }

    /// Records that the repository opened with the credential files as they were when the
    /// check started (a file changed during the check is checked again next time). Best
    /// effort: without the record the next run checks again.
    pub fn vouch(&self, vouch: Vouch) {
        let path = self.vouch_path();
        let Some(sign) = vouch.0 else {
            return;
        };
        let written = path
            .parent()
            .map_or(Ok(()), crate::private::own_dir)
            .and_then(|()| super::engines::remove_path(&path))
            .and_then(|()| crate::private::create_new(&path, 0o600))
            .and_then(|mut f| std::io::Write::write_all(&mut f, sign.as_bytes()));
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), "cannot record the repository's opening: {e}");
        }
    }

    /// Forgets [`Restic::vouch`]'s record: a backup into the repository failed, so the next
    /// run checks before it mounts anything.
    pub fn unvouch(&self) {
        let path = self.vouch_path();
        if let Err(e) = super::engines::remove_path(&path) {
            tracing::warn!(
                "cannot remove {}: {e}; the next backup checks the repository only after mounting",
                path.display()
            );
        }
    }

    /// `STATE/restic-opened/DIGEST`, by the repository and the credential files' paths (a
    /// digest: the repository string may hold a password).
    fn vouch_path(&self) -> PathBuf {
        let mut key = self.repo.repository.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(self.repo.password_file.as_os_str().as_bytes());
        key.push(0);
        if let Some(f) = &self.repo.env_file {
            key.extend_from_slice(f.as_os_str().as_bytes());
        }
        let digest = &crate::manifest::sha256_hex(&key)[..32];
        self.cache
            .parent()
            .unwrap_or(Path::new("."))
            .join("restic-opened")
            .join(digest)
    }

    /// Device, inode, size, mtime and ctime of each credential file; `None` when one cannot be
    /// read.
    fn credentials_sign(&self) -> Option<String> {
        let files = std::iter::once(&self.repo.password_file).chain(self.repo.env_file.as_ref());
        let mut sign = String::new();
        for f in files {
            let m = std::fs::symlink_metadata(f).ok()?;
            sign.push_str(&format!(
                "{} {} {} {}.{} {}.{}\n",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            ));
        }
        Some(sign)
    }

    /// `restic snapshots --json`: of `ids`, or all of `host` (all when `None`).
    ///
    /// # Errors
    /// restic failed or printed what lvsnap cannot read.
    pub fn snapshots(
        &self,
        ids: &[String],
        host: Option<&str>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Listed>, String> {
        let mut args: Vec<OsString> = vec!["snapshots".into(), "--json".into(), "--no-lock".into()];
        if let Some(h) = host {
            args.extend(["--host".into(), h.into()]);
        }
        args.extend(ids.iter().map(OsString::from));
        let mut out = Vec::new();
        self.run(&args, None, cancel, &mut |l| {
            out.extend_from_slice(l);
            out.push(b'\n');
        })
        .map_err(|(_, why)| why)?;
        serde_json::from_slice(&out)
            .map_err(|e| format!("cannot read restic snapshots --json: {e}"))
    }

    /// Forgets the snapshots `ids` (full IDs) of `listed` (every host's, as `snapshots` gave
    /// them); returns how many were forgotten. Only IDs lvsnap recorded are passed; each is
    /// checked first to be this host's and lvsnap's, so a catalog that went wrong cannot make
    /// it forget another's. An ID no longer listed is gone already.
    ///
    /// # Errors
    /// restic failed, or an ID is not one of this host's lvsnap snapshots.
    pub fn forget(
        &self,
        ids: &[String],
        listed: &[Listed],
        cancel: &AtomicBool,
    ) -> Result<usize, String> {
        let mut present: Vec<OsString> = Vec::new();
        for id in ids {
            let Some(l) = listed.iter().find(|l| &l.id == id) else {
                continue;
            };
            if l.hostname != self.host || !l.tags.iter().any(|t| t == TAG) {
                return Err(format!(
                    "restic snapshot {id} in {} is not one of host {}'s lvsnap snapshots; lvsnap forgets only its own",
                    shown_repository(&self.repo.repository),
                    self.host
                ));
            }
            present.push(id.into());
        }
        if present.is_empty() {
            return Ok(0);
        }
        let n = present.len();
        let mut args: Vec<OsString> = vec!["forget".into()];
        args.extend(present);
        self.run_unlocking(&args, None, cancel, &mut |_| {})
            .map_err(|(_, why)| why)?;
        Ok(n)
    }

    /// Compares the listing of snapshot `id` (`restic ls --json`: types, modes, owners, sizes,
    /// mtimes) with `manifest`; returns how many entries matched, and every difference. Names
    /// restic cannot print as UTF-8 are matched as restic prints them (with U+FFFD).
    ///
    /// # Errors
    /// restic failed.
    pub fn compare_listing(
        &self,
        id: &str,
        manifest: &crate::manifest::Manifest,
        cancel: &AtomicBool,
    ) -> Result<Listing, String> {
        let mut nodes = BTreeMap::new();
        let mut unreadable = 0u64;
        let mut snapshot = None;
        self.run(
            &["ls".into(), "--json".into(), "--no-lock".into(), id.into()],
            None,
            cancel,
            &mut |l| match serde_json::from_slice::<Node>(l) {
                Ok(n) if n.struct_type == "node" => {
                    let rel = n.path.trim_start_matches('/').to_owned();
                    nodes.insert(rel, n);
                }
                Ok(n) if n.struct_type == "snapshot" && snapshot.is_none() => snapshot = Some(n),
                Ok(_) => {}
                Err(_) => unreadable += 1,
            },
        )
        .map_err(|(_, why)| why)?;
        let snapshot = snapshot.ok_or_else(|| {
            format!("restic lists no snapshot {id}: the repository does not hold it")
        })?;
        let mut diffs = Vec::new();
        if unreadable > 0 {
            diffs.push(format!(
                "{unreadable} lines of restic ls --json could not be read"
            ));
        }
        let mut matched = 0;
        for (rel, e) in &manifest.entries {
            if rel.as_os_str().is_empty() {
                continue;
            }
            let key = go_lossy(rel.as_os_str().as_bytes());
            let Some(n) = nodes.remove(&key) else {
                diffs.push(format!(
                    "{} is not in restic snapshot {}",
                    shown(rel),
                    short(id)
                ));
                continue;
            };
            let before = diffs.len();
            let kind = kind_of(e.mode);
            if n.kind != kind {
                diffs.push(format!(
                    "{}: a {} in the volume, a {} in restic",
                    shown(rel),
                    kind,
                    n.kind
                ));
                continue;
            }
            let mode = unix_mode(n.mode);
            if mode != e.mode & 0o7777 && kind != "symlink" {
                diffs.push(format!(
                    "{}: mode {:o} → {:o}",
                    shown(rel),
                    e.mode & 0o7777,
                    mode
                ));
            }
            if let crate::manifest::Content::File { size, .. } = &e.content {
                if n.size != *size {
                    diffs.push(format!("{}: size {size} → {}", shown(rel), n.size));
                }
            }
            if let Some(m) = &e.meta {
                if (n.uid, n.gid) != (m.uid, m.gid) {
                    diffs.push(format!(
                        "{}: owner {}:{} → {}:{}",
                        shown(rel),
                        m.uid,
                        m.gid,
                        n.uid,
                        n.gid
                    ));
                }
                let t = n.mtime.map(|t| (t.timestamp(), t.timestamp_subsec_nanos()));
                match t {
                    None => diffs.push(format!("{}: no mtime in restic's listing", shown(rel))),
                    Some(t) if t != m.mtime => diffs.push(format!(
                        "{}: mtime {}.{:09} → {}.{:09}",
                        shown(rel),
                        m.mtime.0,
                        m.mtime.1,
                        t.0,
                        t.1
                    )),
                    Some(_) => {}
                }
            }
            if diffs.len() == before {
                matched += 1;
            }
        }
        for rel in nodes.keys() {
            diffs.push(format!(
                "{} is in restic snapshot {} but not in the volume",
                shown(Path::new(rel)),
                short(id)
            ));
        }
        Ok(Listing {
            matched,
            diffs,
            id: snapshot.id,
            host: snapshot.hostname,
            tags: snapshot.tags,
        })
    }

    /// Reads snapshot `id` back whole, streamed (`restic dump --archive tar ID /`: restic checks
    /// each piece of data it reads against its own digest), and compares every entry with
    /// `manifest`: type, mode, owner, size, link target and the SHA-256 of the content. Returns
    /// how many files were read and every difference.
    ///
    /// # Errors
    /// restic failed or its output cannot be read.
    pub fn compare_content(
        &self,
        id: &str,
        manifest: &crate::manifest::Manifest,
        cancel: &AtomicBool,
        progress: Option<&Progress>,
    ) -> Result<(u64, Vec<String>), String> {
        use crate::manifest::Content;
        let mut diffs = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut files = 0u64;
        let args: Vec<OsString> = vec![
            "dump".into(),
            "--archive".into(),
            "tar".into(),
            id.into(),
            "/".into(),
        ];
        self.run_reading(&args, None, cancel, &mut |r| {
            let mut archive = tar::Archive::new(r);
            let mut buf = vec![0u8; 1 << 20];
            for entry in archive.entries()? {
                let mut entry = entry?;
                let rel = tar_rel(&entry.path_bytes());
                if rel.as_os_str().is_empty() {
                    continue;
                }
                seen.insert(rel.clone());
                let Some(want) = manifest.entries.get(&rel) else {
                    diffs.push(format!(
                        "{} is in restic snapshot {} but not in the volume",
                        shown(&rel),
                        short(id)
                    ));
                    continue;
                };
                // Go's tar writer puts ids of 2^21 and above in PAX records only.
                let mut pax = |key: &str| -> Option<u64> {
                    entry.pax_extensions().ok().flatten().and_then(|mut x| {
                        x.find_map(|e| {
                            let e = e.ok()?;
                            (e.key().ok()? == key)
                                .then(|| e.value().ok()?.parse().ok())
                                .flatten()
                        })
                    })
                };
                let (pax_uid, pax_gid) = (pax("uid"), pax("gid"));
                let h = entry.header();
                let (uid, gid, mode) = (
                    pax_uid.or(h.uid().ok()).unwrap_or(u64::MAX),
                    pax_gid.or(h.gid().ok()).unwrap_or(u64::MAX),
                    h.mode().unwrap_or(0) & 0o7777,
                );
                let kind = h.entry_type();
                if let Some(m) = &want.meta {
                    if (uid, gid) != (u64::from(m.uid), u64::from(m.gid)) {
                        diffs.push(format!(
                            "{}: owner {}:{} → {uid}:{gid}",
                            shown(&rel),
                            m.uid,
                            m.gid
                        ));
                    }
                }
                let link = entry.link_name_bytes().map(|l| l.into_owned());
                match &want.content {
                    Content::File { size, sha256 } => {
                        if !kind.is_file() {
                            diffs.push(format!(
                                "{}: a file in the volume, not in restic",
                                shown(&rel)
                            ));
                            continue;
                        }
                        let (n, digest) =
                            crate::manifest::hash_reader(&mut entry, &mut buf, progress)?;
                        files += 1;
                        if n != *size {
                            diffs.push(format!("{}: size {size} → {n}", shown(&rel)));
                        } else if digest != *sha256 {
                            diffs.push(format!("{}: content differs", shown(&rel)));
                        }
                    }
                    Content::Symlink { target } => {
                        if !kind.is_symlink() {
                            diffs.push(format!(
                                "{}: a symbolic link in the volume, not in restic",
                                shown(&rel)
                            ));
                        } else if link.as_deref() != Some(target.as_slice()) {
                            diffs.push(format!("{}: link target differs", shown(&rel)));
                        }
                    }
                    Content::Dir if !kind.is_dir() => {
                        diffs.push(format!(
                            "{}: a directory in the volume, not in restic",
                            shown(&rel)
                        ));
                    }
                    _ => {}
                }
                if !matches!(want.content, Content::Symlink { .. }) && mode != want.mode & 0o7777 {
                    diffs.push(format!(
                        "{}: mode {:o} → {mode:o}",
                        shown(&rel),
                        want.mode & 0o7777
                    ));
                }
            }
            Ok(())
        })
        .map_err(|(_, why)| why)?;
        for rel in manifest.entries.keys() {
            if !rel.as_os_str().is_empty() && !seen.contains(rel) {
                diffs.push(format!(
                    "{} is not in restic snapshot {}",
                    shown(rel),
                    short(id)
                ));
            }
        }
        Ok((files, diffs))
    }

    /// `restic check`, reading `subset` of the repository's data too (`--read-data-subset`).
    ///
    /// # Errors
    /// restic found damage, or failed.
    pub fn check(&self, subset: Option<&str>, cancel: &AtomicBool) -> Result<(), String> {
        let mut args: Vec<OsString> = vec!["check".into()];
        if let Some(s) = subset {
            args.push(format!("--read-data-subset={s}").into());
        }
        self.run_unlocking(&args, None, cancel, &mut |_| {})
            .map_err(|(_, why)| why)
    }

    /// Restores `paths` of snapshot `id` (all when empty) into `target`: with owners, modes,
    /// times, extended attributes and hard links, as restic restores them.
    ///
    /// # Errors
    /// restic failed.
    pub fn restore(
        &self,
        id: &str,
        target: &Path,
        paths: &[PathBuf],
        cancel: &AtomicBool,
    ) -> Result<(), String> {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            id.into(),
            "--target".into(),
            target.into(),
        ];
        for p in paths {
            let mut a = b"--include=".to_vec();
            a.extend_from_slice(&escape_pattern(&Path::new("/").join(p)));
            args.push(OsString::from_vec(a));
        }
        self.run(&args, None, cancel, &mut |_| {})
            .map_err(|(_, why)| why)
    }

    /// Removes the data no snapshot uses any more (`restic prune`).
    ///
    /// # Errors
    /// restic failed.
    pub fn prune(&self, cancel: &AtomicBool) -> Result<(), String> {
        self.run_unlocking(&["prune".into()], None, cancel, &mut |_| {})
            .map_err(|(_, why)| why)
    }
}

/// One entry of `restic ls --json`.
#[derive(Deserialize)]
struct Node {
    #[serde(default)]
    struct_type: String,
    #[serde(default)]
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    mode: u64,
    mtime: Option<DateTime<chrono::FixedOffset>>,
    /// The snapshot line's.
    #[serde(default)]
    id: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// A snapshot's listing compared with a manifest.
pub struct Listing {
    /// Entries that matched.
    pub matched: u64,
    pub diffs: Vec<String>,
    /// The snapshot as restic lists it first: its full ID, host and tags.
    pub id: String,
    pub host: String,
    pub tags: Vec<String>,
}

/// A name in restic's tar (`sub/`, `./a`, `/a`) as a path relative to the volume's root.
fn tar_rel(raw: &[u8]) -> PathBuf {
    let mut r = raw;
    loop {
        if let Some(x) = r.strip_prefix(b"./") {
            r = x;
        } else if let Some(x) = r.strip_prefix(b"/") {
            r = x;
        } else {
            break;
        }
    }
    while let Some(x) = r.strip_suffix(b"/") {
        r = x;
    }
    if r == b"." {
        r = b"";
    }
    PathBuf::from(OsString::from_vec(r.to_vec()))
}

/// A name as restic's JSON gives it: Go writes U+FFFD for each byte that is not UTF-8 (where
/// Rust's lossy conversion writes one per broken sequence).
fn go_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push('\u{fffd}');
        }
    }
    out
}

/// restic's name for the type of an entry with `st_mode` `mode`.
fn kind_of(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFBLK => "dev",
        libc::S_IFCHR => "chardev",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        _ => "file",
    }
}

/// Permission and set-id bits from a Go `FileMode`, which keeps them apart from `st_mode`'s.
fn unix_mode(go: u64) -> u32 {
    let mut m = (go & 0o777) as u32;
    for (bit, unix) in [(1u64 << 23, 0o4000), (1 << 22, 0o2000), (1 << 20, 0o1000)] {
        if go & bit != 0 {
            m |= unix;
        }
    }
    m
}

/// The first 8 hex digits, as restic shows IDs.
/// restic opening a repository, started by [`Restic::start_opening`]; killed if dropped
/// unawaited (the backup it was for did not happen).
/// A successful opening of the repository, for [`Restic::vouch`]: the credential files' sign
/// taken before it began.
#[must_use]
pub struct Vouch(Option<String>);

/// restic opening the repository: the process, its start, and the credential files' sign taken
/// before it started (what a success vouches for).
pub struct Opening(duct::Handle, std::time::Instant, Option<String>);

impl Drop for Opening {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The JSON lines of `restic backup --json` lvsnap reads.
#[derive(Deserialize)]
#[serde(tag = "message_type", rename_all = "snake_case")]
enum Message {
    Status {
        #[serde(default)]
        total_bytes: u64,
        #[serde(default)]
        bytes_done: u64,
    },
    Summary(RawSummary),
    Error {
        error: Option<ErrorText>,
        item: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ErrorText {
    message: String,
}

#[derive(Deserialize)]
struct RawSummary {
    #[serde(default)]
    files_new: u64,
    #[serde(default)]
    files_changed: u64,
    #[serde(default)]
    files_unmodified: u64,
    #[serde(default)]
    data_added: u64,
    #[serde(default)]
    total_files_processed: u64,
    #[serde(default)]
    total_bytes_processed: u64,
    snapshot_id: String,
}

impl From<RawSummary> for Summary {
    fn from(r: RawSummary) -> Self {
        Summary {
            id: r.snapshot_id,
            files_new: r.files_new,
            files_changed: r.files_changed,
            files_unmodified: r.files_unmodified,
            data_added: r.data_added,
            total_files_processed: r.total_files_processed,
            total_bytes_processed: r.total_bytes_processed,
        }
    }
}

/// Writes the record of a backup's restic snapshot (synced: the commit renames it).
///
/// # Errors
/// It cannot be written.
pub fn write_record(path: &Path, r: &Record) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    super::engines::write_synced(path, &text)
}

impl Restic<'_> {
    /// The restic snapshot ID of backup `b`, from its record beside the manifest (or the
    /// catalog), refused when the record names another repository than this one: the policy
    /// was pointed elsewhere since.
    ///
    /// # Errors
    /// No ID is known, or the backup is in another repository.
    pub fn snapshot_of(&self, b: &crate::catalog::BackupRecord) -> Result<String, String> {
        let path =
            super::engines::artifact("restic", &b.dir, &b.name).expect("restic keeps a record");
        let record = read_record(&path);
        let here = shown_repository(&self.repo.repository);
        if let Ok(r) = &record {
            if r.repository != here {
                return Err(format!(
                    "backup {} is in restic repository {}, but policy {} now names {here}; use restic -r {} itself, or point the policy back",
                    b.label(),
                    r.repository,
                    b.policy,
                    r.repository
                ));
            }
        }
        match (&b.remote_id, record) {
            (Some(id), _) => Ok(id.clone()),
            (None, Ok(r)) => Ok(r.summary.id),
            (None, Err(e)) => Err(format!(
                "backup {} has no restic snapshot on record: {e}",
                b.label()
            )),
        }
    }
}

/// Reads a record written by [`write_record`].
///
/// # Errors
/// It cannot be read or parsed.
pub fn read_record(path: &Path) -> Result<Record, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Tells restic's failures apart by its messages (restic 0.14 exits 1 for all of them; later
/// versions also have distinct statuses, but the messages are the same).
fn classify(stderr: &str) -> Failure {
    if stderr.contains("wrong password") {
        return Failure::WrongPassword;
    }
    if stderr.contains("repository is already locked") {
        return Failure::Locked(lock_holder(stderr));
    }
    let unreachable = [
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "no route to host",
        "connection reset",
        "TLS handshake",
        "certificate",
        // A sandbox that forbids network sockets (systemd's RestrictAddressFamilies=).
        "address family not supported",
    ];
    if let Some(line) = stderr
        .lines()
        .find(|l| unreachable.iter().any(|u| l.contains(u)))
    {
        return Failure::Unreachable(line.trim_start_matches("Fatal: ").trim().to_owned());
    }
    if stderr.contains("Is there a repository at the following location?") {
        return Failure::NoRepository;
    }
    // restic names the file it could not write, as the kernel or the server refused it.
    let line_with = |needles: &[&str]| {
        stderr
            .lines()
            .find(|l| needles.iter().any(|n| l.contains(n)))
            .map(|l| {
                let l = l.trim_start_matches("Fatal: ").trim();
                // "Save(<lock/…>) returned error, retrying after 1.2s: open …: read-only …"
                l.split_once(": open ")
                    .filter(|(head, _)| head.contains("returned error"))
                    .map_or(l, |(_, rest)| rest)
                    .to_owned()
            })
    };
    if let Some(l) = line_with(&[
        "no space left on device",
        "disk quota exceeded",
        "Insufficient Storage",
    ]) {
        return Failure::Full(l);
    }
    if let Some(l) = line_with(&["read-only file system"]) {
        return Failure::ReadOnly(l);
    }
    Failure::Other(stderr.to_owned())
}

/// "repository is already locked by PID 29445 on vm by root (UID 0, GID 0)" → (29445, "vm").
fn lock_holder(stderr: &str) -> Option<(u32, String)> {
    // "locked by PID …" (a shared lock) or "locked exclusively by PID …" (forget, prune, check).
    let at = stderr.find("by PID ")? + "by PID ".len();
    let mut words = stderr[at..].split_whitespace();
    let pid = words.next()?.parse().ok()?;
    (words.next()? == "on").then_some(())?;
    Some((pid, words.next()?.to_owned()))
}

/// A lock whose holder is a process of this machine that no longer runs.
fn stale(holder: Option<&(u32, String)>) -> bool {
    holder.is_some_and(|(pid, host)| {
        *host == machine_host() && !Path::new("/proc").join(pid.to_string()).exists()
    })
}

/// A random tag value (128 bits, hex) for one backup's restic snapshot.
///
/// # Errors
/// The kernel's random source cannot be read.
pub fn run_tag() -> Result<String, String> {
    let mut b = [0u8; 16];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| format!("cannot read random bytes: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// This machine's name, as restic files snapshots and locks under by default.
pub fn machine_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// A repository as messages and logs show it: a password in a URL's user part masked
/// (`rest:https://web01:***@backup01:8000/`).
pub fn shown_repository(repo: &str) -> String {
    match url_password(repo) {
        Some(pw) => repo.replacen(&format!(":{pw}@"), ":***@", 1),
        None => repo.to_owned(),
    }
}

/// A path as a restic pattern that matches only itself: `*`, `?`, `[` and `\` escaped.
fn escape_pattern(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

use std::os::unix::ffi::OsStringExt;

/// A credential file must be a regular file of the user lvsnap runs as (root), readable and
/// writable by no one else: otherwise another user could read the repository's keys, or put
/// their own in.
///
/// # Errors
/// It is not; with the fix.
pub fn secret_file(path: &Path, key: &str) -> Result<(), String> {
    read_secret(path, key).map(|_| ())
}

/// Opens a credential file without following a link, checks the open file and every directory
/// above it (root's, writable by no one else: otherwise a user could swap the file for theirs),
/// and returns its text.
fn read_secret(path: &Path, key: &str) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::tools::trusted_dir(dir)
            .map_err(|why| format!("{key} {} refused: {why}", shown(path)))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!(
                "{key} {} refused: it is a symbolic link; name the file itself",
                shown(path)
            ),
            _ => format!("{key} {}: {e}", shown(path)),
        })?;
    let m = f
        .metadata()
        .map_err(|e| format!("{key} {}: {e}", shown(path)))?;
    let me = rustix::process::geteuid().as_raw();
    let why = if !m.is_file() {
        Some("it is not a regular file".to_owned())
    } else if m.uid() != me {
        Some(format!(
            "it is owned by uid {}, not by {}",
            m.uid(),
            if me == 0 {
                "root".to_owned()
            } else {
                format!("uid {me}")
            }
        ))
    } else if m.mode() & 0o077 != 0 {
        Some(format!(
            "its mode {:04o} lets others read or change it",
            m.mode() & 0o7777
        ))
    } else {
        None
    };
    if let Some(why) = why {
        return Err(format!(
            "{key} {} refused: {why}; make it root's alone: chown root:root {p} && chmod 600 {p}",
            shown(path),
            p = shown(path)
        ));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| format!("{key} {}: {e}", shown(path)))?;
    Ok(text)
}

/// `NAME=VALUE` lines; blank lines and `#` comments are skipped. lvsnap's own trusted search
/// path and the dynamic loader's variables cannot be set this way.
///
/// # Errors
/// It cannot be read, or a line is not `NAME=VALUE`; with the line.
fn env_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = read_secret(path, "env-file")?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: &str| format!("env-file {} line {}: {why}", shown(path), n + 1);
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(at("not NAME=VALUE"));
        };
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid {
            return Err(at(&format!("{name:?} is not a variable name")));
        }
        if name == "PATH" || name.starts_with("LD_") || name == "TZ" || name == "LC_ALL" {
            return Err(at(&format!("{name} is lvsnap's to set, not the backend's")));
        }
        if name.starts_with("RESTIC_REPOSITORY") || name.starts_with("RESTIC_PASSWORD") {
            return Err(at(&format!(
                "{name} is set by the policy (repository, password-file), not the env-file"
            )));
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(name.to_owned(), value.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_by_restics_messages() {
        assert_eq!(
            classify("Fatal: wrong password or no key found\n"),
            Failure::WrongPassword
        );
        assert_eq!(
            classify("Fatal: unable to open config file: stat /srv/r/config: no such file or directory\nIs there a repository at the following location?\n/srv/r\n"),
            Failure::NoRepository
        );
        assert!(matches!(
            classify("Fatal: unable to open config file: client.Head: Head \"http://127.0.0.1:9/config\": dial tcp 127.0.0.1:9: connect: connection refused\nIs there a repository at the following location?\nrest:http://127.0.0.1:9/\n"),
            Failure::Unreachable(w) if w.contains("connection refused")
        ));
        // Under a unit whose RestrictAddressFamilies= lacks AF_INET: not "no repository".
        assert!(matches!(
            classify("Fatal: unable to open config file: client.Head: Head \"http://127.0.0.1:8000/config\": dial tcp 127.0.0.1:8000: socket: address family not supported by protocol\nIs there a repository at the following location?\nrest:http://127.0.0.1:8000/\n"),
            Failure::Unreachable(w) if w.contains("address family not supported")
        ));
        assert_eq!(
            classify("unable to create lock in backend: repository is already locked by PID 29445 on vm by root (UID 0, GID 0)\nlock was created at 2026-12-03 16:31:22 (3.4s ago)\n"),
            Failure::Locked(Some((29445, "vm".to_owned())))
        );
        assert!(matches!(
            classify("Fatal: something else"),
            Failure::Other(_)
        ));
    }

    #[test]
    fn tar_names_become_paths_below_the_root() {
        assert_eq!(tar_rel(b"sub/"), PathBuf::from("sub"));
        assert_eq!(tar_rel(b"./a/b"), PathBuf::from("a/b"));
        assert_eq!(tar_rel(b"/new\nline"), PathBuf::from("new\nline"));
        assert_eq!(tar_rel(b"./"), PathBuf::new());
    }

    #[test]
    fn names_that_are_not_utf8_are_matched_as_go_prints_them() {
        assert_eq!(go_lossy(b"a\xe2\x82b"), "a\u{fffd}\u{fffd}b");
        assert_eq!(go_lossy(b"\xff"), "\u{fffd}");
        assert_eq!(go_lossy("é".as_bytes()), "é");
    }

    #[test]
    fn go_file_modes_become_unix_modes() {
        // drwxr-xr-x, -rwsr-xr-x, drwxrwxrwt as restic 0.14 prints them.
        assert_eq!(unix_mode(2_147_484_141), 0o755);
        assert_eq!(unix_mode((1 << 23) | 0o755), 0o4755);
        assert_eq!(unix_mode((1 << 31) | (1 << 20) | 0o777), 0o1777);
        assert_eq!(kind_of(0o120777), "symlink");
        assert_eq!(kind_of(0o100644), "file");
    }

    #[test]
    fn passwords_in_repository_urls_are_never_shown() {
        assert_eq!(
            shown_repository("rest:https://web01:s3cret@backup01:8000/site/"),
            "rest:https://web01:***@backup01:8000/site/"
        );
        assert_eq!(
            shown_repository("rest:http://127.0.0.1:8000/"),
            "rest:http://127.0.0.1:8000/"
        );
        assert_eq!(shown_repository("/srv/restic"), "/srv/restic");
        assert_eq!(
            shown_repository("sftp:user@host:/srv/r"),
            "sftp:user@host:/srv/r"
        );
        assert_eq!(
            shown_repository("rest:https://web01:a/b#c@backup01:8000/"),
            "rest:https://web01:***@backup01:8000/"
        );
    }

    #[test]
    fn excludes_match_one_path_each() {
        assert_eq!(
            escape_pattern(Path::new("/run/lvsnap/backup/7/st*r/[a]?\\")),
            b"/run/lvsnap/backup/7/st\\*r/\\[a]\\?\\\\".to_vec()
        );
    }

    #[test]
    fn exclude_file_lines_survive_restics_trimming_and_expansion() {
        let line = |p: &str| String::from_utf8(exclude_line(Path::new(p))).unwrap();
        assert_eq!(line("/m/a$HOME/b*"), "/m/a[$]HOME/b\\*");
        assert_eq!(line("/m/trailing \t"), "/m/trailing[ ][\t]");
        assert_eq!(line("/m/in side/x\u{a0}"), "/m/in side/x[\u{a0}]");
        // A newline, inside or at the end: a class that matches it alone.
        let nl = "[^\u{1}-\t\u{b}-\u{10ffff}]";
        assert_eq!(line("/m/two\nlines\n"), format!("/m/two{nl}lines{nl}"));
        assert!(!line("/m/two\nlines\n").contains('\n'));
        let raw = exclude_line(Path::new(std::ffi::OsStr::from_bytes(
            b"/m/\xff \xe2\x80\x83",
        )));
        assert_eq!(raw, b"/m/\xff[ ][\xe2\x80\x83]");
    }

    /// Runs `f`, aborting the test process (not hanging) when it takes longer than 10 s.
    fn within_10s<T>(f: impl FnOnce() -> T) -> T {
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let watched = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            if !watched.load(Ordering::SeqCst) {
                eprintln!("hung for 10 s");
                std::process::abort();
            }
        });
        let out = f();
        done.store(true, Ordering::SeqCst);
        out
    }

    /// What a walk sends [`Late::give`].
    fn given(
        found: Result<Vec<PathBuf>, String>,
    ) -> std::sync::mpsc::Receiver<Result<Vec<PathBuf>, String>> {
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(found).unwrap();
        rx
    }

    #[test]
    fn late_excludes_reach_a_reader_that_opens_the_fifo_late() {
        use std::io::Read;
        let t = tempfile::tempdir().unwrap();
        let late = Late::new(t.path().join("1.excludes")).unwrap();
        let cancel = AtomicBool::new(false);
        let fifo = late.fifo();
        let read = within_10s(|| {
            std::thread::scope(|s| {
                let reader = s.spawn(|| {
                    // restic derives its key and locks the repository first.
                    std::thread::sleep(Duration::from_millis(200));
                    let mut text = String::new();
                    std::fs::File::open(&fifo)
                        .unwrap()
                        .read_to_string(&mut text)
                        .unwrap();
                    text
                });
                late.give(
                    Path::new("/m"),
                    &given(Ok(vec![PathBuf::from("a$b"), PathBuf::from("c ")])),
                    &cancel,
                );
                reader.join().unwrap()
            })
        });
        assert_eq!(read, "/m/a[$]b\n/m/c[ ]\n");
        // As it goes in a backup: restic opens the FIFO while the walk goes on, and reads
        // what the walk sends once it ends.
        let waiting = Late::new(t.path().join("4.excludes")).unwrap();
        let fifo = waiting.fifo();
        let read = within_10s(|| {
            std::thread::scope(|s| {
                let (tx, rx) = std::sync::mpsc::channel();
                let (late, cancel) = (&waiting, &cancel);
                let writer = s.spawn(move || late.give(Path::new("/m"), &rx, cancel));
                let mut text = String::new();
                let mut f = std::fs::File::open(&fifo).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                tx.send(Ok(vec![PathBuf::from("d\ne")])).unwrap();
                f.read_to_string(&mut text).unwrap();
                writer.join().unwrap();
                text
            })
        });
        assert_eq!(read, "/m/d[^\u{1}-\t\u{b}-\u{10ffff}]e\n");
        assert_eq!(late.found().unwrap().len(), 2);
        assert!(!late.stop.load(Ordering::SeqCst));
        // A run that ends without opening it does not keep the writer waiting.
        let late = Late::new(t.path().join("2.excludes")).unwrap();
        late.ended();
        within_10s(|| late.give(Path::new("/m"), &given(Ok(vec![])), &cancel));
        // A walk that failed stops restic for good.
        std::fs::create_dir(t.path().join("3.excludes")).unwrap();
        std::fs::write(t.path().join("3.excludes/left"), "by a killed lvsnap").unwrap();
        let late = Late::new(t.path().join("3.excludes")).unwrap();
        assert!(!t.path().join("3.excludes/left").exists());
        within_10s(|| late.give(Path::new("/m"), &given(Err("cannot read".into())), &cancel));
        assert!(late.stop.load(Ordering::SeqCst) && late.abandoned.load(Ordering::SeqCst));
        assert_eq!(late.found(), Err("cannot read".to_owned()));
        // The FIFO's directory goes with it.
        let dir = late.dir.clone();
        drop(late);
        assert!(!dir.exists());
    }

    #[test]
    fn credential_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("pass");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = secret_file(&p, "password-file").unwrap_err();
        assert!(e.contains("mode 0644 lets others read or change it"), "{e}");
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        secret_file(&p, "password-file").unwrap();
        let l = t.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(secret_file(&l, "password-file")
            .unwrap_err()
            .contains("it is a symbolic link"));
        let e = secret_file(&t.path().join("none"), "env-file").unwrap_err();
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn env_files_set_the_backends_variables_only() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("env");
        let write = |text: &str| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        write("# S3\nAWS_ACCESS_KEY_ID=key\nexport AWS_SECRET_ACCESS_KEY=\"s=cret\"\n\n");
        let e = env_file(&p).unwrap();
        assert_eq!(e["AWS_ACCESS_KEY_ID"], "key");
        assert_eq!(e["AWS_SECRET_ACCESS_KEY"], "s=cret");
        write("A=1\nLD_PRELOAD=/tmp/x.so\n");
        let e = env_file(&p).unwrap_err();
        assert!(e.contains("line 2: LD_PRELOAD is lvsnap's to set"), "{e}");
        write("just words\n");
        assert!(env_file(&p).unwrap_err().contains("line 1: not NAME=VALUE"));
    }
}
