//! The engines that copy a mounted snapshot: rsync generations, a tar+zstd archive, or an
//! administrator's command. Each writes under a temporary name (`.NAME.partial`) that only
//! [`commit`] turns into the final one, so a half-written backup never carries a good name.
//! Child processes die with lvsnap (`PR_SET_PDEATHSIG`): a killed lvsnap leaves no copy running
//! into a directory the next run is about to clear.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::BackupEngine;

/// What one engine run copies from where to where.
pub struct Job<'a> {
    pub engine: &'a BackupEngine,
    /// The snapshot's read-only mount point.
    pub source: &'a Path,
    /// The volume's directory under the target.
    pub dir: &'a Path,
    /// The generation's name.
    pub name: &'a str,
    /// The previous rsync generation, whose unchanged files are hard-linked.
    pub previous: Option<&'a Path>,
    pub exclude: &'a [PathBuf],
    /// `VG/LV` of the snapshot, for the command engine's `{snapshot}`.
    pub snapshot: &'a str,
    pub cancel: &'a AtomicBool,
    /// Told the path (relative to the generation) of each file rsync names as it goes, so that
    /// reading it back can start before the copy ends. rsync names a file once it has sent it,
    /// so its receiver may not have renamed it into place yet when it is told.
    pub written: Option<&'a (dyn Fn(PathBuf) + Sync)>,
    /// lvsnap reads back every file written and compares it with the snapshot before the
    /// generation is committed, so rsync's own checksum of each transfer is redundant: rsync is
    /// told to skip it (half its CPU time on a slow machine), where it can.
    pub read_back: bool,
}

/// The final path of a generation's data (`None` for the command engine, which keeps its data
/// in its own repository); for restic, the record of the restic snapshot that holds the data.
pub fn artifact(engine: &str, dir: &Path, name: &str) -> Option<PathBuf> {
    match engine {
        "rsync" => Some(dir.join(name)),
        "archive" => Some(dir.join(format!("{name}.tar.zst"))),
        "restic" => Some(dir.join(format!("{name}.restic"))),
        _ => None,
    }
}

/// Where a generation's data is written before it is complete.
pub fn partial(engine: &str, dir: &Path, name: &str) -> Option<PathBuf> {
    artifact(engine, dir, name).map(|a| {
        let file = a
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        dir.join(format!(".{file}.partial"))
    })
}

pub fn manifest_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.manifest"))
}

pub fn partial_manifest_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.manifest.partial"))
}

/// `prefix` then the bytes of `path`, as one argument (any name, UTF-8 or not).
fn arg(prefix: &str, path: &Path, suffix: &str) -> OsString {
    let mut v = prefix.as_bytes().to_vec();
    v.extend_from_slice(path.as_os_str().as_bytes());
    v.extend_from_slice(suffix.as_bytes());
    OsString::from_vec(v)
}

/// The argv an engine runs. rsync reads its excludes from `exclude_file` (written by
/// [`exclude_file`]): any number of them, any bytes in their names.
pub fn argv(job: &Job<'_>, exclude_file: Option<&Path>) -> Vec<OsString> {
    let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
    match job.engine {
        BackupEngine::Rsync => {
            let dest = partial("rsync", job.dir, job.name).expect("rsync writes a directory");
            // -a plus hard links, ACLs, xattrs and sparse files; numeric ids because the
            // snapshot's owners are numbers from the origin's system, not names to map. Times
            // are compared to the nanosecond (by default rsync takes times in the same second
            // as equal: a file changed within it would be linked to the old one, and a
            // directory would keep its own time); one filesystem, as the manifest walks it.
            let mut v = words(&[
                "rsync",
                "-aHAXS",
                "--numeric-ids",
                "--modify-window=-1",
                "--one-file-system",
            ]);
            if job.read_back {
                v.push("--checksum-choice=none".into());
            }
            if let Some(prev) = job.previous {
                v.push(arg("--link-dest=", prev, ""));
            }
            if let Some(f) = exclude_file {
                v.push("--from0".into());
                v.push(arg("--exclude-from=", f, ""));
            }
            if job.written.is_some() {
                // One line per file written, its name relative to the generation. The byte
                // count is what makes rsync print the line once the file is sent: with names
                // alone it prints each one before the transfer starts.
                v.push("--out-format=%b %n".into());
            }
            v.push(arg("", job.source, "/"));
            v.push(arg("", &dest, "/"));
            v
        }
        BackupEngine::Archive => {
            let dest = partial("archive", job.dir, job.name).expect("archive writes a file");
            let mut v = words(&[
                "tar",
                "--create",
                "--zstd",
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "--sparse",
                "--numeric-owner",
                "--one-file-system",
                // Excludes are paths, matched literally and from the root, as the manifest
                // and rsync match them.
                "--anchored",
                "--no-wildcards",
            ]);
            v.extend(job.exclude.iter().map(|x| arg("--exclude=./", x, "")));
            v.push(arg("--file=", &dest, ""));
            v.push(arg("--directory=", job.source, ""));
            v.push(".".into());
            v
        }
        BackupEngine::Command(argv) => argv
            .iter()
            .map(|a| {
                a.replace("{mount}", &job.source.to_string_lossy())
                    .replace("{snapshot}", job.snapshot)
                    .into()
            })
            .collect(),
        // restic runs through `super::restic`, with its own credentials and output.
        BackupEngine::Restic(_) => Vec::new(),
    }
}

/// rsync's exclude file for `paths`: one anchored, escaped pattern each, NUL-terminated (read
/// with `--from0`), in a private temporary file.
///
/// # Errors
/// The file cannot be written.
pub fn exclude_file(paths: &[PathBuf]) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix(".lvsnap-exclude-")
        .tempfile()?;
    let mut w = std::io::BufWriter::new(f.as_file_mut());
    for p in paths {
        w.write_all(b"/")?;
        w.write_all(&rsync_literal(p.as_os_str().as_bytes()))?;
        w.write_all(b"\0")?;
    }
    w.flush()?;
    drop(w);
    Ok(f)
}

/// A path as an rsync pattern that matches only itself: rsync treats `*`, `?` and `[` as
/// wildcards, and a backslash escapes them (and itself) only in a pattern that has one.
fn rsync_literal(path: &[u8]) -> Vec<u8> {
    if !path.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        return path.to_vec();
    }
    let mut out = Vec::with_capacity(path.len() + 4);
    for &b in path {
        if matches!(b, b'*' | b'?' | b'[' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Runs the engine into the partial name.
///
/// # Errors
/// The engine could not start, failed, or was cancelled; with its argv and stderr.
pub fn write(job: &Job<'_>) -> Result<(), String> {
    if matches!(job.engine, BackupEngine::Restic(_)) {
        return Err("restic backups run through the restic engine, not an argv".to_owned());
    }
    if let Some(p) = partial(job.engine.name(), job.dir, job.name) {
        remove_path(&p).map_err(|e| format!("cannot clear {}: {e}", p.display()))?;
    }
    let excludes = match job.engine {
        BackupEngine::Rsync if !job.exclude.is_empty() => Some(
            exclude_file(job.exclude)
                .map_err(|e| format!("cannot write rsync's exclude list: {e}"))?,
        ),
        _ => None,
    };
    let job = &Job {
        read_back: job.read_back
            && matches!(job.engine, BackupEngine::Rsync)
            && rsync_skips_checksums(),
        ..*job
    };
    let argv = argv(job, excludes.as_ref().map(|f| f.path()));
    if matches!(job.engine, BackupEngine::Archive) {
        // Each exclude is an argument to tar (its `--null` does not apply to `--exclude-from`).
        let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
        if bytes > 1 << 20 {
            return Err(format!(
                "{} entries to leave out make tar's command line {bytes} bytes long, more than lvsnap passes ({} bytes); use the rsync engine for this volume or exclude their directories",
                job.exclude.len(),
                1 << 20
            ));
        }
    }
    let program = match job.engine {
        // The administrator's own backup tool, as written in the root-owned policy file, with
        // lvsnap's environment: restic and borg take their repository and credentials from it.
        BackupEngine::Command(_) => Program::AsConfigured,
        _ => Program::Tool,
    };
    match (job.engine, job.written) {
        (BackupEngine::Rsync, Some(written)) => {
            let on_line = |line: &[u8]| {
                // "BYTES NAME"; directories end in a slash.
                let name = line
                    .iter()
                    .position(|b| *b == b' ')
                    .filter(|at| line[..*at].iter().all(u8::is_ascii_digit))
                    .map(|at| &line[at + 1..]);
                if let Some(name) = name.filter(|n| !n.is_empty() && !n.ends_with(b"/")) {
                    written(PathBuf::from(OsString::from_vec(rsync_unescape(name))));
                }
            };
            run_program_lines(&argv, job.cancel, program, Some(&on_line))
        }
        _ => run_program(&argv, job.cancel, program),
    }
}

/// Whether the rsync lvsnap runs takes `--checksum-choice=none` (3.2.0 and later); asked once
/// per process. An rsync that cannot say is taken as an older one.
fn rsync_skips_checksums() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let Ok(rsync) = crate::tools::find("rsync") else {
            return false;
        };
        duct::cmd(rsync, ["--version"])
            .full_env(crate::tools::child_env())
            .stdin_null()
            .stderr_null()
            .stdout_capture()
            .unchecked()
            .run()
            .ok()
            .and_then(|o| rsync_version(&String::from_utf8_lossy(&o.stdout)))
            .is_some_and(|v| v >= (3, 2))
    })
}

/// `(major, minor)` from the first line of `rsync --version`: "rsync  version 3.2.7  protocol
/// version 31".
fn rsync_version(text: &str) -> Option<(u32, u32)> {
    let mut words = text.lines().next()?.split_whitespace();
    words.find(|w| *w == "version")?;
    let mut parts = words.next()?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

/// A name as rsync prints it: bytes it cannot print are `\#ooo` (octal).
fn rsync_unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'\\' && line.get(i + 1) == Some(&b'#') {
            let digits = line
                .get(i + 2..i + 5)
                .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
            if let Some(v) =
                digits.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok())
            {
                out.push(v);
                i += 5;
                continue;
            }
        }
        out.push(line[i]);
        i += 1;
    }
    out
}

/// Where a program lvsnap starts comes from, and what environment it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// One of the tools lvsnap drives (rsync, tar): found through [`crate::tools`], run with
    /// [`crate::tools::child_env`] only.
    Tool,
    /// A command from the policy file (the `command` engine): run as written, with lvsnap's
    /// environment.
    AsConfigured,
}

/// [`run_program`] for one of lvsnap's tools.
///
/// # Errors
/// As [`run_program`].
pub fn run_child<S: AsRef<std::ffi::OsStr>>(argv: &[S], cancel: &AtomicBool) -> Result<(), String> {
    run_program(argv, cancel, Program::Tool)
}

/// Runs argv, polling `cancel`; kills the child when it is set.
///
/// # Errors
/// Could not start, exited non-zero, or was cancelled.
pub fn run_program<S: AsRef<std::ffi::OsStr>>(
    argv: &[S],
    cancel: &AtomicBool,
    kind: Program,
) -> Result<(), String> {
    run_program_lines(argv, cancel, kind, None)
}

/// What is told each line of a program's output.
pub type LineSink<'a> = dyn Fn(&[u8]) + Sync + 'a;

/// [`run_program`], handing each line the program writes to its standard output to `on_line`
/// as it comes (without the newline).
///
/// # Errors
/// As [`run_program`].
pub fn run_program_lines<S: AsRef<std::ffi::OsStr>>(
    argv: &[S],
    cancel: &AtomicBool,
    kind: Program,
    on_line: Option<&LineSink<'_>>,
) -> Result<(), String> {
    let shown = argv
        .iter()
        .map(|a| crate::names::shown(std::path::Path::new(a.as_ref())))
        .collect::<Vec<_>>()
        .join(" ");
    let (program, env) = match kind {
        Program::Tool => (
            crate::tools::path_of(&argv[0].as_ref().to_string_lossy())?.into_os_string(),
            // Nothing of lvsnap's environment: TAR_OPTIONS, RSYNC_RSH and a user's PATH would
            // change what root runs. Programs these start (tar's zstd) come from trusted places.
            Some(crate::tools::child_env()),
        ),
        // A name, not a path: duct looks a bare name up in PATH as the shell would.
        Program::AsConfigured => (argv[0].as_ref().to_owned(), None),
    };
    let mut expr = duct::cmd(program, argv[1..].iter().map(AsRef::as_ref));
    if let Some(env) = env {
        expr = expr.full_env(env);
    }
    let pipe = match on_line {
        Some(_) => {
            Some(std::io::pipe().map_err(|e| format!("cannot make a pipe for {shown}: {e}"))?)
        }
        None => None,
    };
    let (reader, expr) = match pipe {
        Some((r, w)) => (Some(r), expr.stdout_file(w)),
        None => (None, expr.stdout_null()),
    };
    std::thread::scope(|s| {
        let lines = reader.map(|r| {
            let on_line = on_line.expect("a pipe only for a reader");
            s.spawn(move || {
                use std::io::BufRead;
                let mut r = std::io::BufReader::new(r);
                let mut line = Vec::new();
                while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    on_line(&line);
                    line.clear();
                }
            })
        });
        let done = wait_program(&expr, argv, &shown, cancel);
        // The pipe's writing end lives in the expression: dropped, the reader sees its end.
        drop(expr);
        if let Some(l) = lines {
            let _ = l.join();
        }
        done
    })
}

fn wait_program<S: AsRef<std::ffi::OsStr>>(
    expr: &duct::Expression,
    argv: &[S],
    shown: &str,
    cancel: &AtomicBool,
) -> Result<(), String> {
    let handle = expr
        .env("LC_ALL", "C")
        .stdin_null()
        .stderr_capture()
        .unchecked()
        .before_spawn(dies_with_lvsnap)
        .start()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let output = loop {
        if cancel.load(Ordering::SeqCst) {
            let _ = handle.kill();
            return Err(format!(
                "interrupted: {} stopped by a signal",
                argv[0].as_ref().to_string_lossy()
            ));
        }
        match handle.try_wait() {
            Ok(Some(out)) => break out.clone(),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let excerpt: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>();
    let excerpt: Vec<&str> = excerpt.into_iter().rev().collect();
    Err(format!(
        "{shown} exited with {}: {}",
        output
            .status
            .code()
            .map_or("a signal".to_owned(), |c| format!("status {c}")),
        excerpt.join(" / ")
    ))
}

/// For duct's `before_spawn`: the program is killed when lvsnap dies (`kill -9` included), so
/// no copy goes on writing after the process that would clean it up is gone.
///
/// # Errors
/// Never.
pub fn dies_with_lvsnap(c: &mut std::process::Command) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(())
}

/// Turns the partial generation and manifest into final ones: manifest first, data last, so
/// that data under a final name always has its manifest beside it.
///
/// # Errors
/// A rename failed.
pub fn commit(engine: &str, dir: &Path, name: &str, manifest_text: &str) -> std::io::Result<()> {
    let pm = partial_manifest_path(dir, name);
    write_synced(&pm, manifest_text.as_bytes())?;
    std::fs::rename(&pm, manifest_path(dir, name))?;
    if let (Some(p), Some(a)) = (partial(engine, dir, name), artifact(engine, dir, name)) {
        std::fs::rename(p, a)?;
    }
    std::fs::File::open(dir)?.sync_all()
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    remove_path(path)?;
    let mut f = crate::private::create_new(path, 0o600)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Removes a file or a directory tree; a path that does not exist is fine.
///
/// # Errors
/// The path exists and cannot be removed.
pub fn remove_path(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    }
}

/// Removes what an unfinished backup wrote under its temporary names; a leftover that cannot
/// be removed is logged (it never carries a final name).
pub fn remove_partials(engine: &str, dir: &Path, name: &str) {
    for p in [
        partial(engine, dir, name),
        Some(partial_manifest_path(dir, name)),
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = remove_path(&p) {
            tracing::warn!(path = %p.display(), "cannot remove a partial backup: {e}");
        }
    }
}

/// Reads a file fully (for manifests).
///
/// # Errors
/// The file cannot be read.
pub fn read_text(p: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(p)?.read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(engine: &'a BackupEngine, cancel: &'a AtomicBool, x: &'a [PathBuf]) -> Job<'a> {
        Job {
            engine,
            source: Path::new("/run/lvsnap/backup/7"),
            dir: Path::new("/srv/backup/vg0/home"),
            name: "20261128T020000Z",
            previous: Some(Path::new("/srv/backup/vg0/home/20261127T020000Z")),
            exclude: x,
            snapshot: "vg0/home-lvsnap-20261128T020000Z",
            cancel,
            written: None,
            read_back: true,
        }
    }

    fn joined(v: &[OsString]) -> String {
        v.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn excludes_are_literal_paths_to_rsync_and_tar() {
        let c = AtomicBool::new(false);
        let x = [
            PathBuf::from("cache[1]"),
            PathBuf::from("a*b"),
            PathBuf::from("plain\\name"),
            PathBuf::from(std::ffi::OsStr::from_bytes(b"bad-\xff[x")),
        ];
        let file = exclude_file(&x).unwrap();
        let written = std::fs::read(file.path()).unwrap();
        let ex: Vec<&[u8]> = written
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(
            ex,
            [
                &b"/cache\\[1]"[..],
                b"/a\\*b",
                b"/plain\\name",
                b"/bad-\xff\\[x"
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the list is private");
        let tar = argv(&job(&BackupEngine::Archive, &c, &x), None);
        assert!(tar.contains(&OsString::from("--exclude=./cache[1]")));
        assert!(tar.contains(&OsString::from_vec(b"--exclude=./bad-\xff[x".to_vec())));
    }

    #[test]
    fn rsync_names_each_file_it_wrote_as_it_goes() {
        let t = tempfile::tempdir().unwrap();
        let (src, dir) = (t.path().join("src"), t.path().join("target"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(src.join("sub/a"), "a").unwrap();
        std::fs::write(src.join("new\nline"), "b").unwrap();
        std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad-\xff")), "c").unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |p: PathBuf| seen.lock().unwrap().push(p);
        let cancel = AtomicBool::new(false);
        let job = Job {
            engine: &BackupEngine::Rsync,
            source: &src,
            dir: &dir,
            name: "g",
            previous: None,
            exclude: &[],
            snapshot: "vg0/x",
            cancel: &cancel,
            written: Some(&record),
            read_back: true,
        };
        write(&job).unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(
            seen,
            [
                PathBuf::from(std::ffi::OsStr::from_bytes(b"bad-\xff")),
                PathBuf::from("new\nline"),
                PathBuf::from("sub/a")
            ]
        );
    }

    #[test]
    fn rsync_versions_are_read_from_the_first_line() {
        let v = |t| rsync_version(t);
        assert_eq!(
            v("rsync  version 3.2.7  protocol version 31\nCopyright (C) 1996-2022\n"),
            Some((3, 2))
        );
        assert_eq!(v("rsync  version v3.1.3  protocol version 31"), None);
        assert_eq!(
            v("rsync  version 3.4.1pre1  protocol version 32"),
            Some((3, 4))
        );
        assert_eq!(v("rsync  version 3.1.3  protocol version 31"), Some((3, 1)));
        assert_eq!(v(""), None);
    }

    #[test]
    fn argv_of_each_engine() {
        let c = AtomicBool::new(false);
        let x = [PathBuf::from("tmp")];
        assert_eq!(
            joined(&argv(&job(&BackupEngine::Rsync, &c, &x), Some(Path::new("/tmp/x")))),
            "rsync -aHAXS --numeric-ids --modify-window=-1 --one-file-system \
             --checksum-choice=none --link-dest=/srv/backup/vg0/home/20261127T020000Z \
             --from0 --exclude-from=/tmp/x /run/lvsnap/backup/7/ /srv/backup/vg0/home/.20261128T020000Z.partial/"
        );
        assert_eq!(
            joined(&argv(&job(&BackupEngine::Archive, &c, &x), None)),
            "tar --create --zstd --xattrs --xattrs-include=* --acls --sparse --numeric-owner \
             --one-file-system --anchored --no-wildcards --exclude=./tmp --file=/srv/backup/vg0/home/.20261128T020000Z.tar.zst.partial \
             --directory=/run/lvsnap/backup/7 ."
        );
        let cmd = BackupEngine::Command(vec![
            "restic".into(),
            "backup".into(),
            "{mount}".into(),
            "--tag={snapshot}".into(),
        ]);
        assert_eq!(
            joined(&argv(&job(&cmd, &c, &x), None)),
            "restic backup /run/lvsnap/backup/7 --tag=vg0/home-lvsnap-20261128T020000Z"
        );
    }

    #[test]
    fn a_configured_command_is_found_by_name_and_keeps_the_environment() {
        // restic and borg read their repository and credentials from the environment.
        std::env::set_var("LVSNAP_TEST_REPOSITORY", "rest:http://127.0.0.1:8000/");
        let c = AtomicBool::new(false);
        let argv = [
            "sh",
            "-c",
            "test \"$LVSNAP_TEST_REPOSITORY\" = rest:http://127.0.0.1:8000/",
        ];
        run_program(&argv, &c, Program::AsConfigured).unwrap();
        // lvsnap's own tools get none of it.
        let e = run_child(&argv, &c).unwrap_err();
        assert!(e.contains("exited with status 1"), "{e}");
    }

    #[test]
    fn a_failing_child_is_reported_with_its_stderr_and_a_set_cancel_stops_it() {
        let c = AtomicBool::new(false);
        let argv: Vec<String> = ["sh", "-c", "echo broken pipe >&2; exit 3"]
            .map(str::to_owned)
            .to_vec();
        let e = run_child(&argv, &c).unwrap_err();
        assert!(e.contains("exited with status 3: broken pipe"), "{e}");
        c.store(true, Ordering::SeqCst);
        let sleep: Vec<String> = ["sleep", "30"].map(str::to_owned).to_vec();
        let e = run_child(&sleep, &c).unwrap_err();
        assert!(e.starts_with("interrupted"), "{e}");
    }

    #[test]
    fn commit_renames_manifest_then_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = partial("rsync", dir.path(), "g1").unwrap();
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("f"), "x").unwrap();
        commit("rsync", dir.path(), "g1", "# lvsnap manifest v1\n").unwrap();
        assert!(dir.path().join("g1/f").exists());
        assert!(manifest_path(dir.path(), "g1").exists());
        assert!(!p.exists());
    }
}
