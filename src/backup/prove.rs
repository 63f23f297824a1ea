//! Complete means proven (DESIGN invariant 10). Before a generation takes its final name, what
//! was written is checked against the manifest hashed from the snapshot:
//!
//! - **rsync**: every entry must be there with its type (and a link with its target). A file
//!   rsync hard-linked to the previous generation (`--link-dest`) is proven by that generation
//!   when it is the same inode and the previous manifest gives it the digest the snapshot has
//!   now; if the digests differ, rsync's size-and-mtime check was fooled (a file rewritten in
//!   place with its size and mtime kept) and the file is copied again, never linked. Every other
//!   file is read back from the target: compared byte for byte with the snapshot as rsync
//!   names it ([`read_back_as_written`]; the manifest's digest is of those very bytes), or, if
//!   that could not be done or the file changed since, hashed and compared with the manifest.
//!   Nothing here can be fooled by equal size and mtime.
//! - **archive**: the archive is read back, decompressed and hashed, member by member.
//! - **command**: the data is in the tool's own repository; lvsnap cannot read it back.
//!
//! The target's filesystem is then synced, so that the final rename never comes before data.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::engines;
use crate::manifest::{Content, Manifest, Walk};

/// What the proof did.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    /// Files read back from the target and hashed.
    pub read_back: u64,
    /// Of those, the ones compared with the snapshot while the engine was still copying.
    pub during_copy: u64,
    /// Files proven by the previous generation (same inode, same digest).
    pub linked: u64,
    /// Files rsync linked to a previous generation's different content, copied again.
    pub recopied: Vec<PathBuf>,
    /// Entries whose type, mode, owner, size and mtime a restic snapshot's listing matched.
    pub listed: u64,
    pub seconds: f64,
    /// Of those seconds: walking the generation (metadata and links),
    pub walk_seconds: f64,
    /// and syncing the target's filesystem before the commit.
    pub sync_seconds: f64,
}

/// Files read back while the engine still copies and found equal to the snapshot, by name
/// relative to the generation: what they were then (inode, size, times), so that the proof
/// trusts the comparison only for a file nothing has touched since.
pub type EarlyReads = Mutex<BTreeMap<PathBuf, Noted>>;

/// A written file as it was when it was found equal to the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Noted {
    fn of(m: &std::fs::Metadata) -> Noted {
        Noted {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// How long a reader waits for more names before it looks again at those not yet in place.
const RETRY_AFTER: Duration = Duration::from_millis(25);

/// One reading thread of the overlap: compares each file named on `names` (relative to `gen`)
/// byte for byte with the same file in the snapshot mounted at `source`, as soon as it is in
/// place, and notes each equal one in `early`, until the engine has finished and named them
/// all (or `cancel` is set: then the names left are only drained).
///
/// rsync names a file once it has sent it, which can be a little before its receiver has
/// renamed it into place: a name not there yet waits and is tried again. A file that differs,
/// is still missing when the engine is done, or changes after it was compared (another inode,
/// size or times) is hashed by the proof itself and compared with the manifest.
pub fn read_back_as_written(
    source: &Path,
    gen: &Path,
    names: &Mutex<Receiver<PathBuf>>,
    early: &EarlyReads,
    cancel: &AtomicBool,
) {
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut waiting = VecDeque::new();
    let mut read = |rel: PathBuf, waiting: &mut VecDeque<PathBuf>, last: bool| {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let same =
            crate::manifest::same_content(&gen.join(&rel), &source.join(&rel), (&mut x, &mut y));
        match same {
            Ok(Some(m)) => {
                early.lock().expect("reads").insert(rel, Noted::of(&m));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !last => {
                waiting.push_back(rel);
            }
            _ => {}
        }
    };
    let mut tried = Instant::now();
    loop {
        let next = names.lock().expect("queue").recv_timeout(RETRY_AFTER);
        let done = match next {
            Ok(rel) => {
                read(rel, &mut waiting, false);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if done || tried.elapsed() >= RETRY_AFTER {
            tried = Instant::now();
            // The oldest first: what was named earlier is likelier to be in place by now.
            for _ in 0..waiting.len() {
                let rel = waiting.pop_front().expect("counted");
                read(rel, &mut waiting, done);
            }
        }
        if done {
            break;
        }
    }
}

/// Proves the partial generation `name` in `dir` equal to `manifest` (hashed from `source`).
///
/// # Errors
/// What was written differs from the snapshot (each difference named), or cannot be read.
#[allow(clippy::too_many_arguments)]
pub fn prove(
    engine: &str,
    source: &Path,
    dir: &Path,
    name: &str,
    previous: Option<&Path>,
    manifest: &Manifest,
    workers: usize,
    early: &BTreeMap<PathBuf, Noted>,
) -> Result<Proof, String> {
    let start = Instant::now();
    let mut proof = match engine {
        "rsync" => prove_tree(source, dir, name, previous, manifest, workers, early)?,
        "archive" => {
            let archive = engines::partial(engine, dir, name).expect("archive writes a file");
            let actual = super::verify::manifest_of_archive(&archive)
                .map_err(|e| format!("cannot read back {}: {e}", archive.display()))?;
            let d = manifest.diff(&actual);
            if !d.is_empty() {
                return Err(differs(d.lines().into_iter()));
            }
            Proof {
                read_back: manifest.totals().0,
                ..Proof::default()
            }
        }
        _ => Proof::default(),
    };
    // The data on disk before the rename that calls it complete.
    let target =
        std::fs::File::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let sync_start = Instant::now();
    rustix::fs::syncfs(&target).map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    proof.sync_seconds = sync_start.elapsed().as_secs_f64();
    proof.seconds = start.elapsed().as_secs_f64();
    Ok(proof)
}

fn prove_tree(
    source: &Path,
    dir: &Path,
    name: &str,
    previous: Option<&Path>,
    manifest: &Manifest,
    workers: usize,
    early: &BTreeMap<PathBuf, Noted>,
) -> Result<Proof, String> {
    let gen = engines::partial("rsync", dir, name).expect("rsync writes a directory");
    let before = previous.and_then(previous_manifest);
    let mut proof = Proof::default();
    let mut known = BTreeMap::new();
    let mut stale = Vec::new();
    for (rel, entry) in &manifest.entries {
        let Content::File { size, sha256 } = &entry.content else {
            continue;
        };
        let Ok(m) = std::fs::symlink_metadata(gen.join(rel)) else {
            continue;
        };
        let linked = previous
            .and_then(|p| std::fs::symlink_metadata(p.join(rel)).ok())
            .is_some_and(|pm| m.is_file() && pm.dev() == m.dev() && pm.ino() == m.ino());
        if !linked {
            // Read back while the copy went on (what rsync wrote, compared with the snapshot
            // after it named it): equal to the bytes the manifest's digest was taken of, and
            // the very file, untouched since.
            if early.get(rel) == Some(&Noted::of(&m)) && m.size() == *size {
                known.insert(rel.clone(), (*size, sha256.clone()));
                proof.read_back += 1;
                proof.during_copy += 1;
            }
            continue;
        }
        let proven = before
            .as_ref()
            .and_then(|b| b.entries.get(rel))
            .is_some_and(
                |e| matches!(&e.content, Content::File { sha256: was, .. } if was == sha256),
            );
        if proven {
            known.insert(rel.clone(), (*size, sha256.clone()));
            proof.linked += 1;
        } else {
            stale.push(rel.clone());
        }
    }
    if !stale.is_empty() {
        recopy(source, &gen, &stale)?;
        proof.recopied = stale;
    }
    // Renaming files copied again into a directory touched it.
    set_times(&gen, manifest)?;
    // Everything is read back: every entry's type, owner, mode, mtime, link target, device
    // number, attributes and links, and every file's content not proven above.
    let walk_start = Instant::now();
    let walk = || {
        Manifest::walk(&gen, &Walk::default())
            .map_err(|e| format!("cannot read back {}: {e}", gen.display()))
    };
    let mut walked = walk()?;
    // Names rsync linked to one inode of the previous generation that are separate inodes in
    // the snapshot now (or the other way round) are copied again, with the snapshot's links.
    let relink = manifest.link_mismatches(walked.entries());
    if !relink.is_empty() {
        recopy(source, &gen, &relink)?;
        for p in &relink {
            known.remove(p);
        }
        proof.recopied.extend(relink);
        set_times(&gen, manifest)?;
        walked = walk()?;
    }
    proof.walk_seconds = walk_start.elapsed().as_secs_f64();
    let (written, read_now) = walked.hash_unknown(workers, &known);
    let d = manifest.diff(&written);
    if !d.is_empty() {
        return Err(differs(d.lines().into_iter()));
    }
    proof.read_back += read_now;
    Ok(proof)
}

/// Gives each directory of the generation the snapshot's mtime again: renaming files copied
/// again into a directory touched it. (Only directories: other entries may be inodes shared
/// with the previous generation, whose times are its own.)
fn set_times(gen: &Path, manifest: &Manifest) -> Result<(), String> {
    for (rel, e) in &manifest.entries {
        let Some(meta) = &e.meta else { continue };
        if !matches!(e.content, Content::Dir) {
            continue;
        }
        let path = gen.join(rel);
        let Ok(now) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let (secs, nanos) = meta.mtime;
        if now.mode() & 0o170000 != e.mode & 0o170000
            || (now.mtime(), now.mtime_nsec()) == (secs, i64::from(nanos))
        {
            continue;
        }
        let stamp = |tv_sec, tv_nsec| rustix::fs::Timespec { tv_sec, tv_nsec };
        let times = rustix::fs::Timestamps {
            last_access: stamp(now.atime(), now.atime_nsec()),
            last_modification: stamp(secs, i64::from(nanos)),
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("cannot set the times of {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The manifest beside a previous generation's directory.
fn previous_manifest(previous: &Path) -> Option<Manifest> {
    let (dir, name) = (previous.parent()?, previous.file_name()?.to_str()?);
    let text = engines::read_text(&engines::manifest_path(dir, name)).ok()?;
    Manifest::from_text(&text).ok()
}

/// Copies `paths` from the snapshot again, replacing the links rsync made (a new inode each:
/// the previous generation keeps its own content).
fn recopy(source: &Path, gen: &Path, paths: &[PathBuf]) -> Result<(), String> {
    use crate::confine::copy;
    use crate::confine::open_root;
    let src = open_root(source).map_err(|e| format!("cannot open {}: {e}", source.display()))?;
    let dst = open_root(gen).map_err(|e| format!("cannot open {}: {e}", gen.display()))?;
    let plan = copy::plan(&src, Some(&dst), paths)?;
    copy::copy(
        &src,
        &dst,
        &plan,
        true,
        &std::sync::atomic::AtomicBool::new(false),
    )?;
    Ok(())
}

fn differs(lines: impl Iterator<Item = String>) -> String {
    let lines: Vec<String> = lines.collect();
    let shown_lines: Vec<&str> = lines.iter().take(10).map(String::as_str).collect();
    format!(
        "what was written differs from the snapshot ({} difference(s)): {}{}",
        lines.len(),
        shown_lines.join("; "),
        if lines.len() > 10 { "; …" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::process::Command;

    fn rsync(src: &Path, dest: &Path, link_dest: Option<&Path>) {
        let mut c = Command::new("rsync");
        c.args(["-aHAXS", "--numeric-ids"]);
        if let Some(l) = link_dest {
            c.arg(format!("--link-dest={}", l.display()));
        }
        let ok = c
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", dest.display()))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "rsync ran");
    }

    #[test]
    fn a_file_changed_with_size_and_mtime_kept_is_copied_again_not_linked() {
        let t = tempfile::tempdir().unwrap();
        let (src, dir) = (t.path().join("src"), t.path().join("target"));
        std::fs::create_dir_all(src.join("db")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(src.join("db/table"), "version 1\n").unwrap();
        std::fs::write(src.join("same"), "unchanged\n").unwrap();
        // Generation 1, committed as lvsnap does (partial name, then the final one).
        let m1 = Manifest::of_tree(&src, 2).unwrap();
        let p1 = engines::partial("rsync", &dir, "g1").unwrap();
        rsync(&src, &p1, None);
        prove("rsync", &src, &dir, "g1", None, &m1, 2, &BTreeMap::new()).unwrap();
        engines::commit("rsync", &dir, "g1", &m1.to_text()).unwrap();
        let g1 = dir.join("g1");
        // Rewritten in place: same size, same mtime.
        let before = std::fs::metadata(src.join("db/table")).unwrap();
        std::fs::write(src.join("db/table"), "version 2\n").unwrap();
        let mtime = filetime_of(&before);
        set_mtime(&src.join("db/table"), mtime);
        let m2 = Manifest::of_tree(&src, 2).unwrap();
        let p2 = engines::partial("rsync", &dir, "g2").unwrap();
        rsync(&src, &p2, Some(&g1));
        assert_eq!(
            std::fs::read_to_string(p2.join("db/table")).unwrap(),
            "version 1\n",
            "rsync's quick check was fooled (the case this proof exists for)"
        );
        let proof = prove(
            "rsync",
            &src,
            &dir,
            "g2",
            Some(&g1),
            &m2,
            2,
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(proof.recopied, vec![PathBuf::from("db/table")]);
        assert_eq!(
            proof.linked, 1,
            "the unchanged file is proven by generation 1"
        );
        assert_eq!(
            std::fs::read_to_string(p2.join("db/table")).unwrap(),
            "version 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(g1.join("db/table")).unwrap(),
            "version 1\n",
            "generation 1 keeps its own content"
        );
    }

    #[test]
    fn a_damaged_copy_is_never_complete() {
        let t = tempfile::tempdir().unwrap();
        let (src, dir) = (t.path().join("src"), t.path().join("target"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(src.join("a"), "right\n").unwrap();
        let m = Manifest::of_tree(&src, 1).unwrap();
        let p = engines::partial("rsync", &dir, "g").unwrap();
        rsync(&src, &p, None);
        std::fs::write(p.join("a"), "wrong\n").unwrap();
        let err = prove("rsync", &src, &dir, "g", None, &m, 1, &BTreeMap::new()).unwrap_err();
        assert!(
            err.contains("changed: a (content (SHA-256) differs"),
            "{err}"
        );
        std::fs::remove_file(p.join("a")).unwrap();
        let err = prove("rsync", &src, &dir, "g", None, &m, 1, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("missing: a"), "{err}");
    }

    /// `exclude = ["cache[1]"]` on names with glob characters, a fifo and a socket: the
    /// manifest, rsync and tar leave out the same entries, and each proof passes.
    #[test]
    fn the_manifest_rsync_and_tar_agree_on_what_is_left_out() {
        use crate::config::BackupEngine;
        use std::sync::atomic::AtomicBool;
        let t = tempfile::tempdir().unwrap();
        let (src, dir) = (t.path().join("src"), t.path().join("target"));
        for d in ["cache1", "cache[1]", "a*b", "x\\y"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
            std::fs::write(src.join(d).join("f"), d).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
        assert!(Command::new("mkfifo")
            .arg(src.join("fifo"))
            .status()
            .unwrap()
            .success());
        let exclude = [PathBuf::from("cache[1]"), PathBuf::from("x\\y")];
        let cancel = AtomicBool::new(false);
        for engine in [BackupEngine::Rsync, BackupEngine::Archive] {
            let archive = matches!(engine, BackupEngine::Archive);
            let walk = Walk {
                exclude: &exclude,
                probe: true,
                no_sockets: archive,
                ..Walk::default()
            };
            let m = Manifest::walk(&src, &walk).unwrap().hash(2, None);
            let kept: Vec<String> = m.entries.keys().map(|p| p.display().to_string()).collect();
            let mut want = vec!["a*b", "a*b/f", "cache1", "cache1/f", "fifo"];
            if !archive {
                want.push("sock");
            }
            assert_eq!(kept, want);
            assert_eq!(
                m.skipped.get(Path::new("sock")).copied(),
                archive.then_some(crate::manifest::Skip::NotStored)
            );
            let name = if archive { "g-archive" } else { "g-rsync" };
            let job = engines::Job {
                engine: &engine,
                source: &src,
                dir: &dir,
                name,
                previous: None,
                exclude: &exclude,
                snapshot: "vg0/x",
                cancel: &cancel,
                written: None,
                read_back: true,
            };
            engines::write(&job).unwrap();
            prove(
                engine.name(),
                &src,
                &dir,
                name,
                None,
                &m,
                2,
                &BTreeMap::new(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
        }
    }

    /// What `--link-dest` would get wrong without help: names that were one inode in the
    /// previous generation and are separate now, and a file whose mtime moved by nanoseconds
    /// within the same second. Each generation proves, and the previous one is left as it was.
    #[test]
    fn links_split_since_the_previous_generation_and_subsecond_mtimes_are_proven() {
        use crate::config::BackupEngine;
        use std::sync::atomic::AtomicBool;
        let t = tempfile::tempdir().unwrap();
        let (src, dir) = (t.path().join("src"), t.path().join("target"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(src.join("a"), "shared\n").unwrap();
        std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
        std::fs::write(src.join("t"), "time\n").unwrap();
        let at = |nanos| std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, nanos);
        set_mtime(&src.join("t"), at(100));
        let cancel = AtomicBool::new(false);
        let backup = |name: &str, previous: Option<&Path>| {
            let m = Manifest::of_tree(&src, 2).unwrap();
            let job = engines::Job {
                engine: &BackupEngine::Rsync,
                source: &src,
                dir: &dir,
                name,
                previous,
                exclude: &[],
                snapshot: "vg0/x",
                cancel: &cancel,
                written: None,
                read_back: true,
            };
            engines::write(&job).unwrap();
            let proof =
                prove("rsync", &src, &dir, name, previous, &m, 2, &BTreeMap::new()).unwrap();
            engines::commit("rsync", &dir, name, &m.to_text()).unwrap();
            (m, proof)
        };
        let (m1, _) = backup("g1", None);
        // b becomes its own inode with the same content and times; t moves by 100 ns.
        let meta = std::fs::metadata(src.join("b")).unwrap();
        std::fs::copy(src.join("b"), src.join("b.new")).unwrap();
        set_mtime(&src.join("b.new"), meta.modified().unwrap());
        std::fs::rename(src.join("b.new"), src.join("b")).unwrap();
        set_mtime(&src.join("t"), at(200));
        let (_, proof) = backup("g2", Some(&dir.join("g1")));
        assert_eq!(proof.recopied, [PathBuf::from("a"), PathBuf::from("b")]);
        let g1 = Manifest::of_tree(&dir.join("g1"), 2).unwrap();
        assert!(
            m1.diff(&g1).is_empty(),
            "generation 1 is untouched: {:?}",
            m1.diff(&g1)
        );
    }

    /// The overlap with real rsync: every file it writes is compared with the snapshot by the
    /// reading threads (some not yet in place when rsync names them), and the proof takes
    /// those instead of reading again. One noted wrong is read again, not trusted.
    #[test]
    fn what_rsync_writes_is_read_back_during_the_copy_and_used_by_the_proof() {
        use crate::config::BackupEngine;
        use std::sync::atomic::AtomicBool;
        let t = tempfile::tempdir().unwrap();
        let (src, dir) = (t.path().join("src"), t.path().join("target"));
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..200 {
            std::fs::write(src.join(format!("d/small {i}")), format!("{i}\n")).unwrap();
        }
        for i in 0..4 {
            std::fs::write(src.join(format!("big{i}")), vec![i; 3 << 20]).unwrap();
        }
        std::fs::write(
            src.join(std::ffi::OsStr::from_bytes(b"odd \xff\nname")),
            "x",
        )
        .unwrap();
        std::fs::hard_link(src.join("big0"), src.join("d/link")).unwrap();
        let m = Manifest::of_tree(&src, 2).unwrap();
        let files = m
            .entries
            .values()
            .filter(|e| matches!(e.content, Content::File { .. }))
            .count();
        let cancel = AtomicBool::new(false);
        let early = EarlyReads::default();
        let gen = engines::partial("rsync", &dir, "g").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let rx = Mutex::new(rx);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| s.spawn(|| read_back_as_written(&src, &gen, &rx, &early, &cancel)))
                .collect();
            let send = |p: PathBuf| tx.send(p).unwrap();
            let job = engines::Job {
                engine: &BackupEngine::Rsync,
                source: &src,
                dir: &dir,
                name: "g",
                previous: None,
                exclude: &[],
                snapshot: "vg0/x",
                cancel: &cancel,
                written: Some(&send),
                read_back: true,
            };
            engines::write(&job).unwrap();
            drop(tx);
            for r in readers {
                r.join().unwrap();
            }
        });
        let early = early.into_inner().unwrap();
        for (rel, read) in &early {
            let Content::File { size, .. } = &m.entries[rel].content else {
                panic!("{rel:?} is a file");
            };
            assert_eq!(read.size, *size, "{rel:?}");
        }
        assert_eq!(early.len(), files, "each file is read back once named");
        // A file changed after it was compared (in place, same size and mtime) is read again,
        // and the proof finds the difference.
        let big1 = gen.join("big1");
        let mtime = std::fs::metadata(&big1).unwrap().modified().unwrap();
        let mut bytes = std::fs::read(&big1).unwrap();
        bytes[12345] ^= 1;
        std::fs::write(&big1, &bytes).unwrap();
        set_mtime(&big1, mtime);
        let e = prove("rsync", &src, &dir, "g", None, &m, 2, &early).unwrap_err();
        assert!(e.contains("big1"), "{e}");
        bytes[12345] ^= 1;
        std::fs::write(&big1, &bytes).unwrap();
        set_mtime(&big1, mtime);
        let proof = prove("rsync", &src, &dir, "g", None, &m, 2, &early).unwrap();
        assert_eq!(proof.read_back, files as u64);
        // All but big1 as compared — and but big0 and d/link when rsync linked d/link to big0
        // after big0 was compared: the link changed the inode's ctime, so the note no longer
        // vouches for it and the proof reads both again.
        let compared = proof.during_copy;
        assert!(
            (files as u64 - 3..=files as u64 - 1).contains(&compared),
            "{compared} of {files} as compared"
        );
    }

    /// Equal means every byte and the length; a link or a fifo in a file's place is never
    /// opened, so never equal.
    #[test]
    fn same_content_is_every_byte_of_two_regular_files() {
        let t = tempfile::tempdir().unwrap();
        let p = |n: &str| t.path().join(n);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(p("a"), &data).unwrap();
        std::fs::write(p("b"), &data).unwrap();
        let (mut x, mut y) = (vec![0u8; 4096], vec![0u8; 4096]);
        let mut same = |a: &str, b: &str| {
            crate::manifest::same_content(&p(a), &p(b), (&mut x, &mut y))
                .unwrap()
                .map(|m| m.len())
        };
        assert_eq!(same("a", "b"), Some(3_000_000));
        let mut flipped = data.clone();
        flipped[2_999_999] ^= 1;
        std::fs::write(p("c"), &flipped).unwrap();
        assert_eq!(same("c", "a"), None);
        std::fs::write(p("d"), &data[..2_999_999]).unwrap();
        assert_eq!(same("d", "a"), None);
        assert_eq!(same("a", "d"), None);
        std::os::unix::fs::symlink(p("a"), p("link")).unwrap();
        assert_eq!(same("link", "a"), None);
        assert_eq!(same("a", "link"), None);
        assert_eq!(same("a", "missing"), None, "not in the snapshot: not equal");
        let (mut x, mut y) = (vec![0u8; 16], vec![0u8; 16]);
        let not_yet = crate::manifest::same_content(&p("missing"), &p("a"), (&mut x, &mut y));
        assert!(
            not_yet.is_err(),
            "a written file not in place yet is tried again"
        );
        std::fs::write(p("empty1"), "").unwrap();
        std::fs::write(p("empty2"), "").unwrap();
        assert_eq!(same("empty1", "empty2"), Some(0));
    }

    fn filetime_of(m: &std::fs::Metadata) -> std::time::SystemTime {
        m.modified().unwrap()
    }

    fn set_mtime(p: &Path, t: std::time::SystemTime) {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_modified(t).unwrap();
    }
}
