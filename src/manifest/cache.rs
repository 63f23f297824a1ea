//! Digests of a volume's files kept from its previous backup, so that an incremental backup
//! reads what changed and not the whole volume. A snapshot keeps its origin's inode numbers and
//! change times, and no one can set a change time back: a file with the inode, change time,
//! size and mtime it had when it was last read holds the same bytes. Files changed within
//! [`RACY_SECONDS`] of their snapshot are not kept: a change time is only as fine as the
//! kernel's clock tick (or a whole second on some filesystems), so a second write in the same
//! tick, after the snapshot, could leave all four as they were.
//!
//! restic decides what to read again by the same four, so a file they fail to tell changed
//! would be wrong in restic and here alike, and `verify --read-data` could not see it. Hence:
//! each backup reads one share of the cached files again all the same (a different share each
//! time, so that every file is read at least once in [`ROUNDS`] backups and a wrong digest is
//! found); after a rollback, which brings back earlier inodes and change times with their
//! earlier content, the backup reads everything, restic included; and the cut-off for recent
//! changes is the earliest time the snapshot may have been taken.

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

/// The file that asks the next backup of a volume to read every file, restic too (left by a
/// backup that found a file restic's change test missed).
pub const READ_ALL: &str = ".read-all";

/// Every cached file is read again at least once in this many backups.
pub const ROUNDS: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    identity: Identity,
    size: u64,
    mtime: (i64, u32),
    sha256: String,
    /// Changed just before its snapshot: always read again, and compared with this digest
    /// (restic, which has no such rule, may have kept content written in the same tick).
    racy: bool,
}

/// What a cache knows of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Unchanged since it was read: this is its digest.
    Unchanged(&'a str),
    /// Unchanged by every sign, but in this round's share: read it again and compare with this.
    ReadAgain(&'a str),
    Unknown,
}

/// Digests by path, with what identified each file when it was read.
#[derive(Debug, Default)]
pub struct DigestCache {
    known: HashMap<PathBuf, Known>,
    /// Counts the backups that wrote the cache in turn: which share is read again.
    round: u64,
}

const HEADER: &str = "# lvsnap digests v1 round ";

impl DigestCache {
    /// The cache in `path`; empty when there is none or it cannot be read whole (it is only a
    /// shortcut: without it every file is read).
    pub fn load(path: &Path) -> DigestCache {
        let Ok(text) = fs::read_to_string(path) else {
            return DigestCache::default();
        };
        let mut lines = text.lines();
        let Some(round) = lines
            .next()
            .and_then(|l| l.strip_prefix(HEADER))
            .and_then(|r| r.parse().ok())
        else {
            return DigestCache::default();
        };
        let mut known = HashMap::new();
        for line in lines {
            match parse(line) {
                Some((p, k)) => {
                    known.insert(p, k);
                }
                None => return DigestCache::default(),
            }
        }
        DigestCache { known, round }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The round of the backup that wrote it (0 for none).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// What the cache knows of `rel` if it is unchanged since it was read.
    pub fn look_up(
        &self,
        rel: &Path,
        identity: Identity,
        size: u64,
        mtime: (i64, u32),
    ) -> Lookup<'_> {
        let known = self
            .known
            .get(rel)
            .filter(|k| k.identity == identity && k.size == size && k.mtime == mtime);
        match known {
            None => Lookup::Unknown,
            Some(k) if k.racy || share(rel) == (self.round + 1) % ROUNDS => {
                Lookup::ReadAgain(&k.sha256)
            }
            Some(k) => Lookup::Unchanged(&k.sha256),
        }
    }

    /// The digest of `rel` if it is unchanged since it was read, unless its share is read
    /// again this round.
    pub fn get(
        &self,
        rel: &Path,
        identity: Identity,
        size: u64,
        mtime: (i64, u32),
    ) -> Option<&str> {
        match self.look_up(rel, identity, size, mtime) {
            Lookup::Unchanged(d) => Some(d),
            _ => None,
        }
    }

    /// Writes the files of `manifest` (of a snapshot taken no earlier than `taken`, seconds
    /// since the epoch) with their `identities` to `path` as round `round`, private, replacing
    /// the old cache in one rename.
    ///
    /// # Errors
    /// Writing or renaming failed; the old cache is then left as it was.
    pub fn save(
        path: &Path,
        manifest: &Manifest,
        identities: &HashMap<PathBuf, Identity>,
        taken: i64,
        round: u64,
    ) -> io::Result<()> {
        use std::io::Write;
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
        let written = crate::private::create_new(&tmp, 0o600).and_then(|f| {
            let mut out = io::BufWriter::new(f);
            writeln!(out, "{HEADER}{round}")?;
            for (rel, e) in &manifest.entries {
                let (Content::File { size, sha256 }, Some(m), Some(id)) =
                    (&e.content, &e.meta, identities.get(rel))
                else {
                    continue;
                };
                if sha256.is_empty() {
                    continue;
                }
                let racy = if id.ctime.0 >= taken - RACY_SECONDS {
                    "?"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "{} {}.{:09} {size} {}.{:09} {racy}{sha256} {}",
                    id.ino,
                    id.ctime.0,
                    id.ctime.1,
                    m.mtime.0,
                    m.mtime.1,
                    escape(rel.as_os_str().as_bytes())
                )?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
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

/// Which of the [`ROUNDS`] shares a path is in, the same in every process (FNV-1a).
fn share(rel: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rel.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % ROUNDS
}

fn parse(line: &str) -> Option<(PathBuf, Known)> {
    let mut f = line.splitn(6, ' ');
    let ino = f.next()?.parse().ok()?;
    let ctime = time(f.next()?)?;
    let size = f.next()?.parse().ok()?;
    let mtime = time(f.next()?)?;
    let sha256 = f.next()?;
    let (racy, sha256) = match sha256.strip_prefix('?') {
        Some(d) => (true, d),
        None => (false, sha256),
    };
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
            racy,
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

    fn with_identities() -> Walk<'static> {
        Walk {
            identities: true,
            ..Walk::default()
        }
    }

    fn manifest_of(root: &Path) -> (Manifest, HashMap<PathBuf, Identity>) {
        let walked = Manifest::walk(root, &with_identities()).unwrap();
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
        let odd = Path::new(OsStr::from_bytes(b"odd\nname\xff"));
        fs::write(root.join(odd), "odd\n").unwrap();
        let (m, ids) = manifest_of(&root);
        let cache = t.path().join(FILE);
        // Taken long after the files changed: all of them are kept. The round is one whose
        // share read again holds none of the three.
        let later = chrono::Utc::now().timestamp() + 60;
        let names = [Path::new("d/same"), Path::new("changed"), odd];
        let round = (0..ROUNDS)
            .find(|r| names.iter().all(|p| share(p) != (r + 1) % ROUNDS))
            .unwrap();
        DigestCache::save(&cache, &m, &ids, later, round).unwrap();
        assert_eq!(
            fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = DigestCache::load(&cache);
        assert_eq!((loaded.len(), loaded.round()), (3, round));
        // Same size and mtime, other bytes: the change time says it was written.
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
        let walked = Manifest::walk(&root, &with_identities()).unwrap();
        let (again, reused, stale) = walked.hash_cached(1, None, &loaded);
        assert!(stale.is_empty());
        assert_eq!(reused, 2);
        assert_eq!(again, Manifest::of_tree(&root, 1).unwrap());
    }

    #[test]
    fn every_cached_file_is_read_again_within_the_rounds() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..64 {
            fs::write(t.path().join(format!("f{i}")), format!("{i}")).unwrap();
        }
        let (m, ids) = manifest_of(t.path());
        let cache = t.path().join(FILE);
        let later = chrono::Utc::now().timestamp() + 60;
        let mut read = std::collections::HashSet::new();
        for round in 0..ROUNDS {
            DigestCache::save(&cache, &m, &ids, later, round).unwrap();
            let loaded = DigestCache::load(&cache);
            let mut cached = 0;
            for (rel, e) in &m.entries {
                let (Content::File { size, .. }, Some(meta)) = (&e.content, &e.meta) else {
                    continue;
                };
                match loaded.get(rel, ids[rel], *size, meta.mtime) {
                    Some(_) => cached += 1,
                    None => {
                        read.insert(rel.clone());
                    }
                }
            }
            assert!(
                cached > 40,
                "round {round}: only {cached} of 64 from the cache"
            );
        }
        assert_eq!(read.len(), 64, "some files were never read again");
    }

    #[test]
    fn a_file_read_again_whose_digest_the_cache_got_wrong_is_named() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("f"), "now\n").unwrap();
        let walked = Manifest::walk(&root, &with_identities()).unwrap();
        let id = walked.identities()[Path::new("f")];
        let m = fs::symlink_metadata(root.join("f")).unwrap();
        // A cache that says f held other bytes under the same signs (what a change restic's
        // test missed looks like), written in the round before f's share is read again.
        let round = (0..ROUNDS)
            .find(|r| share(Path::new("f")) == (r + 1) % ROUNDS)
            .unwrap();
        let cache = t.path().join(FILE);
        fs::write(
            &cache,
            format!(
                "{HEADER}{round}\n{} {}.{:09} 4 {}.{:09} {} f\n",
                id.ino,
                id.ctime.0,
                id.ctime.1,
                m.mtime(),
                m.mtime_nsec(),
                "0".repeat(64)
            ),
        )
        .unwrap();
        let (manifest, reused, stale) = walked.hash_cached(1, None, &DigestCache::load(&cache));
        assert_eq!((reused, stale), (0, vec![PathBuf::from("f")]));
        assert_eq!(manifest, Manifest::of_tree(&root, 1).unwrap());
    }

    #[test]
    fn files_changed_just_before_the_snapshot_are_read_again_and_compared() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let (m, ids) = manifest_of(t.path());
        let cache = t.path().join("cache");
        DigestCache::save(&cache, &m, &ids, chrono::Utc::now().timestamp(), 1).unwrap();
        let loaded = DigestCache::load(&cache);
        let meta = m.entries[Path::new("f")].meta.clone().unwrap();
        assert!(matches!(
            loaded.look_up(Path::new("f"), ids[Path::new("f")], 1, meta.mtime),
            Lookup::ReadAgain(_)
        ));
    }

    #[test]
    fn a_damaged_cache_is_no_cache() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join(FILE);
        let line = format!("5 1.000000000 3 2.000000000 {} f\n", "a".repeat(64));
        fs::write(&cache, format!("{HEADER}3\n{line}")).unwrap();
        assert_eq!(DigestCache::load(&cache).len(), 1);
        for bad in [
            format!("{HEADER}3\n{line}garbage\n"),
            format!("# lvsnap digests v9 round 3\n{line}"),
            format!("{HEADER}\n{line}"),
            format!(
                "{HEADER}3\n5 1.000000000 3 2.000000000 {} /etc/f\n",
                "a".repeat(64)
            ),
            format!("{HEADER}3\n5 1.000000000 3 2.000000000 xyz f\n"),
        ] {
            fs::write(&cache, bad).unwrap();
            assert!(DigestCache::load(&cache).is_empty());
        }
        assert!(DigestCache::load(&t.path().join("none")).is_empty());
    }
}
