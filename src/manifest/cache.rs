//! Digests of a volume's files kept from its previous backup, so that an incremental backup
//! reads what changed and not the whole volume. A snapshot keeps its origin's inode numbers and
//! change times, and no one can set a change time back: a file with the inode, change time,
//! size and mtime it had when it was last read holds the same bytes. Files changed within
//! [`RACY_SECONDS`] of their snapshot are not kept: a change time is only as fine as the
//! kernel's clock tick (or a whole second on some filesystems), so a second write in the same
//! tick, after the snapshot, could leave all four as they were.
//! A digest taken from here that is wrong all the same shows as a difference at
//! `verify --read-data`, never as a silent loss.

use super::*;

/// A file's identity on its filesystem: what changes whenever its content does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub ino: u64,
    /// Change time: seconds and nanoseconds since the epoch.
    pub ctime: (i64, u32),
}

/// Files changed this close before their snapshot was taken are read again next time.
pub const RACY_SECONDS: i64 = 2;

/// The file that holds a volume's cache, in its backups' directory.
pub const FILE: &str = ".digests";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    identity: Identity,
    size: u64,
    mtime: (i64, u32),
    sha256: String,
}

/// Digests by path, with what identified each file when it was read.
#[derive(Debug, Default)]
pub struct DigestCache {
    known: HashMap<PathBuf, Known>,
}

const HEADER: &str = "# lvsnap digests v1";

impl DigestCache {
    /// The cache in `path`; empty when there is none or it cannot be read whole (it is only a
    /// shortcut: without it every file is read).
    pub fn load(path: &Path) -> DigestCache {
        let Ok(text) = fs::read_to_string(path) else {
            return DigestCache::default();
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return DigestCache::default();
        }
        let mut known = HashMap::new();
        for line in lines {
            match parse(line) {
                Some((p, k)) => {
                    known.insert(p, k);
                }
                None => return DigestCache::default(),
            }
        }
        DigestCache { known }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The digest of `rel` if it is unchanged since it was read.
    pub fn get(
        &self,
        rel: &Path,
        identity: Identity,
        size: u64,
        mtime: (i64, u32),
    ) -> Option<&str> {
        self.known
            .get(rel)
            .filter(|k| k.identity == identity && k.size == size && k.mtime == mtime)
            .map(|k| k.sha256.as_str())
    }

    /// Writes the files of `manifest` (a snapshot's, taken at `taken` seconds since the epoch)
    /// with their `identities` to `path`, private, replacing the old cache in one rename.
    ///
    /// # Errors
    /// Writing or renaming failed; the old cache is then left as it was.
    pub fn save(
        path: &Path,
        manifest: &Manifest,
        identities: &HashMap<PathBuf, Identity>,
        taken: i64,
    ) -> io::Result<()> {
        use std::io::Write;
        let mut out = String::from(HEADER);
        out.push('\n');
        for (rel, e) in &manifest.entries {
            let (Content::File { size, sha256 }, Some(m), Some(id)) =
                (&e.content, &e.meta, identities.get(rel))
            else {
                continue;
            };
            if sha256.is_empty() || id.ctime.0 >= taken - RACY_SECONDS {
                continue;
            }
            let _ = writeln!(
                out,
                "{} {}.{:09} {size} {}.{:09} {sha256} {}",
                id.ino,
                id.ctime.0,
                id.ctime.1,
                m.mtime.0,
                m.mtime.1,
                escape(rel.as_os_str().as_bytes())
            );
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        // Backups of one volume never run at once: a temporary file here is a killed one's.
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name();
                let n = n.as_bytes();
                if n.starts_with(format!("{FILE}.").as_bytes()) && n.ends_with(b".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let tmp = dir.join(format!("{FILE}.{}.tmp", std::process::id()));
        let written = crate::private::create_new(&tmp, 0o600).and_then(|mut f| {
            f.write_all(out.as_bytes())?;
            f.sync_all()
        });
        match written.and_then(|()| fs::rename(&tmp, path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn parse(line: &str) -> Option<(PathBuf, Known)> {
    let mut f = line.splitn(6, ' ');
    let ino = f.next()?.parse().ok()?;
    let ctime = time(f.next()?)?;
    let size = f.next()?.parse().ok()?;
    let mtime = time(f.next()?)?;
    let sha256 = f.next()?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let path = unescape(f.next()?);
    if path.as_os_str().is_empty() || path.is_absolute() {
        return None;
    }
    Some((
        path,
        Known {
            identity: Identity { ino, ctime },
            size,
            mtime,
            sha256: sha256.to_owned(),
        },
    ))
}

fn time(s: &str) -> Option<(i64, u32)> {
    let (sec, ns) = s.split_once('.')?;
    Some((
        sec.parse().ok()?,
        ns.parse().ok().filter(|n| *n < 1_000_000_000)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::fs::PermissionsExt;

    fn manifest_of(root: &Path) -> (Manifest, HashMap<PathBuf, Identity>) {
        let walked = Manifest::walk(root, &Walk::default()).unwrap();
        let ids = walked.identities().clone();
        (walked.hash(1, None), ids)
    }

    #[test]
    fn unchanged_files_are_taken_from_the_cache_and_changed_ones_read() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/same"), "same\n").unwrap();
        fs::write(root.join("changed"), "before\n").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"odd\nname\xff")), "odd\n").unwrap();
        let (m, ids) = manifest_of(&root);
        let cache = t.path().join(FILE);
        // Taken long after the files changed: all of them are kept.
        let later = chrono::Utc::now().timestamp() + 60;
        DigestCache::save(&cache, &m, &ids, later).unwrap();
        assert_eq!(
            fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = DigestCache::load(&cache);
        assert_eq!(loaded.len(), 3);
        // Same bytes, size and mtime, but written again: the change time says so.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mtime = fs::metadata(root.join("changed"))
            .unwrap()
            .modified()
            .unwrap();
        fs::write(root.join("changed"), "after!\n").unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("changed"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let walked = Manifest::walk(&root, &Walk::default()).unwrap();
        let (again, reused) = walked.hash_cached(1, None, &loaded);
        assert_eq!(reused, 2);
        assert_eq!(again, Manifest::of_tree(&root, 1).unwrap());
    }

    #[test]
    fn files_changed_just_before_the_snapshot_are_not_kept() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let (m, ids) = manifest_of(t.path());
        let cache = t.path().join("cache");
        DigestCache::save(&cache, &m, &ids, chrono::Utc::now().timestamp()).unwrap();
        assert!(DigestCache::load(&cache).is_empty());
    }

    #[test]
    fn a_damaged_cache_is_no_cache() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join(FILE);
        let line = format!("5 1.000000000 3 2.000000000 {} f\n", "a".repeat(64));
        fs::write(&cache, format!("{HEADER}\n{line}")).unwrap();
        assert_eq!(DigestCache::load(&cache).len(), 1);
        for bad in [
            format!("{HEADER}\n{line}garbage\n"),
            format!("# lvsnap digests v9\n{line}"),
            format!(
                "{HEADER}\n5 1.000000000 3 2.000000000 {} /etc/f\n",
                "a".repeat(64)
            ),
            format!("{HEADER}\n5 1.000000000 3 2.000000000 xyz f\n"),
        ] {
            fs::write(&cache, bad).unwrap();
            assert!(DigestCache::load(&cache).is_empty());
        }
        assert!(DigestCache::load(&t.path().join("none")).is_empty());
    }
}
