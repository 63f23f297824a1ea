//! The walk of a tree for its manifest: every entry's metadata and extended attributes, never
//! following a link; what cannot be taken (unreadable, vanished, too long, not storable) is
//! set aside as skipped, with why.

use super::*;

/// How a tree is walked for a manifest.
#[derive(Debug, Clone, Default)]
pub struct Walk<'a> {
    /// Subtrees left out, as paths relative to the root (matched literally).
    pub exclude: &'a [PathBuf],
    /// The longest relative path taken; longer ones are skipped as [`Skip::TooLong`]. `None`
    /// leaves room for the root's own path only.
    pub budget: Option<usize>,
    /// Open each file while walking, so that an unreadable one is known (and left out of the
    /// engine's copy) before any copying starts.
    pub probe: bool,
    /// Skip sockets as [`Skip::NotStored`] (the archive engine).
    pub no_sockets: bool,
    /// Measure paths against the budget as rsync exclude patterns: a path with a wildcard
    /// character has `*`, `?`, `[` and `\` escaped, each one byte longer.
    pub as_patterns: bool,
    /// Keep each file's inode and change time (for a [`DigestCache`]).
    pub identities: bool,
}

/// A walked tree: every entry but the files' digests, which [`Walked::hash`] adds.
#[derive(Debug, Clone)]
pub struct Walked {
    pub(super) root: PathBuf,
    pub(super) manifest: Manifest,
    pub(super) files: Vec<PathBuf>,
    pub(super) identities: HashMap<PathBuf, Identity>,
}

impl Walked {
    /// What was skipped while walking.
    pub fn skipped(&self) -> &BTreeMap<PathBuf, Skip> {
        &self.manifest.skipped
    }

    /// The entries walked, files without their digests (empty).
    pub fn entries(&self) -> &BTreeMap<PathBuf, Entry> {
        &self.manifest.entries
    }

    /// Bytes the files hold: the total a progress bar counts to.
    pub fn bytes(&self) -> u64 {
        self.manifest.totals().1
    }

    /// Each file's inode and change time, as the walk found them.
    pub fn identities(&self) -> &HashMap<PathBuf, Identity> {
        &self.identities
    }

    /// Hashes the files but those `cache` holds unchanged (same inode, change time, size and
    /// mtime as when they were read); returns the manifest, how many came from the cache, and
    /// the files read again although unchanged by every sign whose content is not what the
    /// cache says (`stale`: restic, which decides by the same signs, kept their old content).
    pub fn hash_cached(
        mut self,
        workers: usize,
        progress: Option<&Progress>,
        cache: &DigestCache,
    ) -> (Manifest, u64, Vec<PathBuf>) {
        if cache.is_empty() {
            return (self.hash(workers, progress), 0, Vec::new());
        }
        let (mut read, mut reused, mut reused_bytes) = (Vec::new(), 0, 0);
        let mut expected = Vec::new();
        for rel in std::mem::take(&mut self.files) {
            let entry = self.manifest.entries.get_mut(&rel);
            let found = match (entry, self.identities.get(&rel)) {
                (Some(e), Some(id)) => {
                    let known = match (&e.content, &e.meta) {
                        (Content::File { size, .. }, Some(m)) => {
                            match cache.look_up(&rel, *id, *size, m.mtime) {
                                Lookup::Unchanged(d) => Some((*size, d.to_owned())),
                                Lookup::ReadAgain(d) => {
                                    expected.push((rel.clone(), d.to_owned()));
                                    None
                                }
                                Lookup::Unknown => None,
                            }
                        }
                        _ => None,
                    };
                    known.map(|(size, sha256)| {
                        e.content = Content::File { size, sha256 };
                        size
                    })
                }
                _ => None,
            };
            match found {
                Some(size) => {
                    reused += 1;
                    reused_bytes += size;
                }
                None => read.push(rel),
            }
        }
        self.files = read;
        if let Some(p) = progress {
            p.done.fetch_add(reused_bytes, Ordering::Relaxed);
        }
        let m = self.hash(workers, progress);
        let stale = expected
            .into_iter()
            .filter(|(rel, d)| {
                matches!(m.entries.get(rel).map(|e| &e.content),
                    Some(Content::File { sha256, .. }) if sha256 != d)
            })
            .map(|(rel, _)| rel)
            .collect();
        (m, reused, stale)
    }

    /// Hashes the files but those whose size and digest are `known` (proven another way);
    /// returns the manifest and how many files were read.
    pub fn hash_unknown(
        mut self,
        workers: usize,
        known: &BTreeMap<PathBuf, (u64, String)>,
    ) -> (Manifest, u64) {
        let mut read = Vec::new();
        for rel in std::mem::take(&mut self.files) {
            match known.get(&rel) {
                Some((size, sha256)) => {
                    if let Some(e) = self.manifest.entries.get_mut(&rel) {
                        e.content = Content::File {
                            size: *size,
                            sha256: sha256.clone(),
                        };
                    }
                }
                None => read.push(rel),
            }
        }
        let n = read.len() as u64;
        self.files = read;
        (self.hash(workers, None), n)
    }

    /// Hashes the files on `workers` threads. A file that can no longer be read moves to the
    /// skipped list as unreadable.
    pub fn hash(mut self, workers: usize, progress: Option<&Progress>) -> Manifest {
        if let Some(p) = progress {
            p.total.store(self.bytes(), Ordering::Relaxed);
        }
        let (hashed, failed) = hash_all(&self.root, &self.files, workers.max(1), progress);
        for (rel, size, sha256) in hashed {
            if let Some(e) = self.manifest.entries.get_mut(&rel) {
                e.content = Content::File { size, sha256 };
            }
        }
        for (rel, e) in failed {
            self.manifest.entries.remove(&rel);
            let why = if e.kind() == io::ErrorKind::NotFound {
                Skip::Vanished
            } else {
                Skip::Unreadable
            };
            self.manifest.skipped.insert(rel, why);
        }
        self.manifest.renumber_links();
        self.manifest
    }
}

/// The walk of one tree: it stays on the root's filesystem (a live origin may have other
/// filesystems mounted inside it) and leaves the excluded subtrees out.
pub(crate) struct Walker<'a> {
    pub(super) root: &'a Path,
    pub(super) how: &'a Walk<'a>,
    pub(super) budget: usize,
    pub(super) device: u64,
}

pub(crate) type Inodes = HashMap<(u64, u64), Vec<PathBuf>>;

impl Walker<'_> {
    pub(super) fn walk(&self, rel: &Path, out: &mut Walked, inodes: &mut Inodes) {
        let listed = fs::read_dir(self.root.join(rel)).and_then(|d| {
            d.map(|c| c.map(|c| c.file_name()))
                .collect::<io::Result<Vec<_>>>()
        });
        let mut children = match listed {
            Ok(c) => c,
            Err(e) => {
                // A directory that cannot be listed is left out whole: a copy of it without
                // its contents would restore as an empty directory.
                out.manifest.entries.remove(rel);
                out.manifest.skipped.insert(rel.to_path_buf(), skip_for(&e));
                return;
            }
        };
        children.sort();
        for name in children {
            let rel_child = rel.join(name);
            if self.how.exclude.contains(&rel_child) {
                continue;
            }
            let len = if self.how.as_patterns {
                pattern_len(rel_child.as_os_str().as_bytes())
            } else {
                rel_child.as_os_str().len()
            };
            if len > self.budget {
                out.manifest.skipped.insert(rel_child, Skip::TooLong);
                continue;
            }
            match self.entry(&rel_child, out, inodes) {
                Ok(Some(descend)) if descend => self.walk(&rel_child, out, inodes),
                Ok(_) => {}
                Err(e) => {
                    out.manifest.entries.remove(&rel_child);
                    out.manifest.skipped.insert(rel_child, skip_for(&e));
                }
            }
        }
    }

    /// Records one entry; `Some(true)` for a directory to walk into.
    pub(super) fn entry(
        &self,
        rel: &Path,
        out: &mut Walked,
        inodes: &mut Inodes,
    ) -> io::Result<Option<bool>> {
        let path = self.root.join(rel);
        let meta = fs::symlink_metadata(&path)?;
        let mode = meta.mode();
        let ft = meta.file_type();
        let mut descend = false;
        let content = if ft.is_dir() {
            descend = meta.dev() == self.device;
            Content::Dir
        } else if ft.is_symlink() {
            Content::Symlink {
                target: fs::read_link(&path)?.into_os_string().into_encoded_bytes(),
            }
        } else if ft.is_file() {
            if self.how.probe {
                open_file(&path)?;
            }
            out.files.push(rel.to_path_buf());
            if self.how.identities {
                out.identities.insert(
                    rel.to_path_buf(),
                    Identity {
                        ino: meta.ino(),
                        ctime: (meta.ctime(), u32::try_from(meta.ctime_nsec()).unwrap_or(0)),
                    },
                );
            }
            Content::File {
                size: meta.len(),
                sha256: String::new(),
            }
        } else if mode & 0o170000 == 0o020000 || mode & 0o170000 == 0o060000 {
            let rdev = meta.rdev();
            Content::Device {
                major: libc::major(rdev),
                minor: libc::minor(rdev),
            }
        } else if mode & 0o170000 == 0o140000 && self.how.no_sockets {
            out.manifest
                .skipped
                .insert(rel.to_path_buf(), Skip::NotStored);
            return Ok(None);
        } else {
            Content::Special
        };
        if !ft.is_dir() && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.to_path_buf());
        }
        let entry = Entry {
            mode,
            content,
            meta: Some(Meta {
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), u32::try_from(meta.mtime_nsec()).unwrap_or(0)),
                xattrs: xattr_digest(&path)?,
                link: None,
            }),
        };
        out.manifest.entries.insert(rel.to_path_buf(), entry);
        Ok(Some(descend))
    }
}

/// The length of `path` as an rsync pattern that matches only itself (see the rsync engine).
pub fn pattern_len(path: &[u8]) -> usize {
    let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
    if path.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        path.len() + path.iter().filter(|b| special(b)).count()
    } else {
        path.len()
    }
}

pub(crate) fn skip_for(e: &io::Error) -> Skip {
    match e.kind() {
        io::ErrorKind::NotFound => Skip::Vanished,
        _ if e.raw_os_error() == Some(libc::ENAMETOOLONG) => Skip::TooLong,
        _ => Skip::Unreadable,
    }
}

/// The SHA-256 of an entry's extended attributes (sorted by name; each name and value with its
/// length), never following a link; those [`counted`] rejects are left out.
pub(crate) fn xattr_digest(path: &Path) -> io::Result<Option<String>> {
    use rustix::io::Errno;
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(0) | Err(Errno::NOTSUP) => return Ok(None),
        Ok(n) => n,
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; len];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    let mut list: Vec<&[u8]> = names[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty() && counted(n))
        .collect();
    list.sort_unstable();
    let mut pairs = Vec::with_capacity(list.len());
    for name in list {
        let os = std::ffi::OsStr::from_bytes(name);
        let vlen = match rustix::fs::lgetxattr_query(path, os) {
            Ok(v) => v,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; vlen];
        let v = rustix::fs::lgetxattr(path, os, &mut value[..])?;
        value.truncate(v);
        pairs.push((name.to_vec(), value));
    }
    Ok(xattrs_digest(&pairs))
}

/// Whether an extended attribute is part of what a backup must reproduce. Not the SELinux
/// label (the system's to set), nor `user.rsync.%…`, rsync's own bookkeeping, which `rsync -X`
/// never copies.
pub(crate) fn counted(name: &[u8]) -> bool {
    name != b"security.selinux" && !name.starts_with(b"user.rsync.%")
}

/// The digest of `(name, value)` pairs sorted by name, as [`xattr_digest`] computes it; the
/// archive reader gives it the attributes GNU tar stored.
pub fn xattrs_digest(pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<String> {
    let mut pairs: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().filter(|(n, _)| counted(n)).collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort();
    let mut h = Sha256::new();
    for (name, value) in pairs {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    }
    Some(hex(&h.finalize()))
}
