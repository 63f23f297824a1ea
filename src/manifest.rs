//! Manifests: a SHA-256 digest, size and mode of every file of a tree, written with a backup and
//! checked by `verify` (issue 6 builds the backup engines on this). Hashing runs on every core;
//! the walk never follows symbolic links (their targets are recorded instead).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// What a manifest knows of one entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file: its size and SHA-256 (hex).
    File {
        size: u64,
        sha256: String,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// Devices, fifos and sockets: recorded by kind only.
    Special,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits and file type bits (`st_mode`).
    pub mode: u32,
    pub content: Content,
}

/// Every entry of a tree, keyed by its path relative to the tree's root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<PathBuf, Entry>,
}

/// How a tree differs from its manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    pub missing: Vec<PathBuf>,
    pub extra: Vec<PathBuf>,
    /// (path, what differs)
    pub changed: Vec<(PathBuf, String)>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

impl Manifest {
    /// Reads and hashes every entry below `root`, hashing on `workers` threads.
    ///
    /// # Errors
    /// An entry cannot be read.
    pub fn of_tree(root: &Path, workers: usize) -> io::Result<Manifest> {
        Self::of_tree_with(root, workers, &[], None)
    }

    /// [`Manifest::of_tree`] leaving out the subtrees `exclude` (relative to `root`), adding the
    /// bytes hashed to `progress` as it goes (for a progress bar).
    ///
    /// # Errors
    /// An entry cannot be read.
    pub fn of_tree_with(
        root: &Path,
        workers: usize,
        exclude: &[PathBuf],
        progress: Option<&Progress>,
    ) -> io::Result<Manifest> {
        let mut entries = BTreeMap::new();
        let mut files = Vec::new();
        let walker = Walker {
            root,
            exclude,
            device: fs::metadata(root)?.dev(),
        };
        walker.walk(Path::new(""), &mut entries, &mut files)?;
        if let Some(p) = progress {
            let total = files
                .iter()
                .filter_map(|(rel, _)| fs::symlink_metadata(root.join(rel)).ok())
                .map(|m| m.len())
                .sum();
            p.total.store(total, Ordering::Relaxed);
        }
        let hashed = hash_all(root, &files, workers.max(1), progress)?;
        for (rel, mode, size, sha256) in hashed {
            entries.insert(
                rel,
                Entry {
                    mode,
                    content: Content::File { size, sha256 },
                },
            );
        }
        Ok(Manifest { entries })
    }

    /// The manifest as text: one line per entry, `kind mode size sha256-or-target path`, sorted by
    /// path; paths are escaped so that any byte sequence survives a round trip.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# lvsnap manifest v1\n");
        for (path, e) in &self.entries {
            let p = escape(path);
            let _ = match &e.content {
                Content::File { size, sha256 } => {
                    writeln!(out, "f {:o} {size} {sha256} {p}", e.mode)
                }
                Content::Dir => writeln!(out, "d {:o} 0 - {p}", e.mode),
                Content::Symlink { target } => {
                    writeln!(out, "l {:o} 0 {} {p}", e.mode, escape(Path::new(target)))
                }
                Content::Special => writeln!(out, "s {:o} 0 - {p}", e.mode),
            };
        }
        out
    }

    /// Parses [`Manifest::to_text`].
    ///
    /// # Errors
    /// A line that is not a manifest line, with its number.
    pub fn from_text(text: &str) -> Result<Manifest, String> {
        let mut entries = BTreeMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.starts_with('#') && !l.is_empty())
        {
            let bad = || {
                format!(
                    "manifest line {}: {line:?} is not `kind mode size digest path`",
                    i + 1
                )
            };
            let mut parts = line.splitn(5, ' ');
            let (kind, mode, size, digest, path) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            );
            let (Some(kind), Some(mode), Some(size), Some(digest), Some(path)) =
                (kind, mode, size, digest, path)
            else {
                return Err(bad());
            };
            let mode = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
            let content = match kind {
                "f" => Content::File {
                    size: size.parse().map_err(|_| bad())?,
                    sha256: digest.to_owned(),
                },
                "d" => Content::Dir,
                "l" => Content::Symlink {
                    target: unescape(digest).to_string_lossy().into_owned(),
                },
                "s" => Content::Special,
                _ => return Err(bad()),
            };
            entries.insert(unescape(path), Entry { mode, content });
        }
        Ok(Manifest { entries })
    }

    /// Regular files and the sum of their sizes.
    pub fn totals(&self) -> (u64, u64) {
        self.entries
            .values()
            .filter_map(|e| match e.content {
                Content::File { size, .. } => Some(size),
                _ => None,
            })
            .fold((0, 0), |(n, b), s| (n + 1, b + s))
    }

    /// The SHA-256 of the manifest's text, recorded in the catalog.
    pub fn digest(&self) -> String {
        hex(&Sha256::digest(self.to_text().as_bytes()))
    }

    /// Compares `self` (what should be) with `actual` (what is).
    pub fn diff(&self, actual: &Manifest) -> Differences {
        let mut d = Differences::default();
        for (path, want) in &self.entries {
            match actual.entries.get(path) {
                None => d.missing.push(path.clone()),
                Some(have) if have != want => {
                    d.changed.push((path.clone(), describe_change(want, have)))
                }
                Some(_) => {}
            }
        }
        d.extra = actual
            .entries
            .keys()
            .filter(|p| !self.entries.contains_key(*p))
            .cloned()
            .collect();
        d
    }
}

fn describe_change(want: &Entry, have: &Entry) -> String {
    match (&want.content, &have.content) {
        (Content::File { size: a, .. }, Content::File { size: b, .. }) if a != b => {
            format!("size {a} → {b}")
        }
        (Content::File { .. }, Content::File { .. }) if want.content != have.content => {
            "content (SHA-256) differs".to_owned()
        }
        (x, y) if std::mem::discriminant(x) != std::mem::discriminant(y) => {
            "kind differs".to_owned()
        }
        (Content::Symlink { target: a }, Content::Symlink { target: b }) if a != b => {
            format!("link target {a} → {b}")
        }
        _ => format!("mode {:o} → {:o}", want.mode, have.mode),
    }
}

/// Bytes hashed so far of a total known once the tree is walked.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

/// The walk of one tree: it stays on the root's filesystem (a live origin may have other
/// filesystems mounted inside it) and leaves the excluded subtrees out.
struct Walker<'a> {
    root: &'a Path,
    exclude: &'a [PathBuf],
    device: u64,
}

impl Walker<'_> {
    fn walk(
        &self,
        rel: &Path,
        entries: &mut BTreeMap<PathBuf, Entry>,
        files: &mut Vec<(PathBuf, u32)>,
    ) -> io::Result<()> {
        let (root, exclude) = (self.root, self.exclude);
        let mut children: Vec<_> = fs::read_dir(root.join(rel))?.collect::<io::Result<_>>()?;
        children.sort_by_key(fs::DirEntry::file_name);
        for child in children {
            let rel_child = rel.join(child.file_name());
            if exclude.contains(&rel_child) {
                continue;
            }
            let meta = fs::symlink_metadata(child.path())?;
            let mode = meta.mode();
            let ft = meta.file_type();
            if ft.is_dir() {
                entries.insert(
                    rel_child.clone(),
                    Entry {
                        mode,
                        content: Content::Dir,
                    },
                );
                if meta.dev() == self.device {
                    self.walk(&rel_child, entries, files)?;
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(child.path())?.to_string_lossy().into_owned();
                entries.insert(
                    rel_child,
                    Entry {
                        mode,
                        content: Content::Symlink { target },
                    },
                );
            } else if ft.is_file() {
                files.push((rel_child, mode));
            } else {
                entries.insert(
                    rel_child,
                    Entry {
                        mode,
                        content: Content::Special,
                    },
                );
            }
        }
        Ok(())
    }
}

type Hashed = (PathBuf, u32, u64, String);

/// Size and SHA-256 of each of `files` (paths below `root`), hashed on `workers` threads.
///
/// # Errors
/// A file cannot be read.
pub fn hash_files(
    root: &Path,
    files: &[PathBuf],
    workers: usize,
) -> io::Result<BTreeMap<PathBuf, (u64, String)>> {
    let files: Vec<(PathBuf, u32)> = files.iter().map(|f| (f.clone(), 0)).collect();
    Ok(hash_all(root, &files, workers.max(1), None)?
        .into_iter()
        .map(|(rel, _, size, sha)| (rel, (size, sha)))
        .collect())
}

/// Hashes the files on `workers` threads, taking the next file from a shared counter so that a
/// few large files do not leave a thread idle.
fn hash_all(
    root: &Path,
    files: &[(PathBuf, u32)],
    workers: usize,
    progress: Option<&Progress>,
) -> io::Result<Vec<Hashed>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Hashed>> = Mutex::new(Vec::with_capacity(files.len()));
    let failure: Mutex<Option<io::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((rel, mode)) = files.get(i) else {
                        break;
                    };
                    match hash_file(&root.join(rel), &mut buf, progress) {
                        Ok((size, digest)) => results.lock().expect("results").push((
                            rel.clone(),
                            *mode,
                            size,
                            digest,
                        )),
                        Err(e) => {
                            *failure.lock().expect("failure") = Some(io::Error::new(
                                e.kind(),
                                format!("{}: {e}", root.join(rel).display()),
                            ));
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("failure") {
        return Err(e);
    }
    Ok(results.into_inner().expect("results"))
}

fn hash_file(
    path: &Path,
    buf: &mut [u8],
    progress: Option<&Progress>,
) -> io::Result<(u64, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    // Walked as a file; never read through a link put in its place since (a live origin that
    // `diff` compares with can change under it).
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    hash_reader(&mut f, buf, progress)
}

/// Size and SHA-256 (hex) of everything `r` yields, read through `buf`.
///
/// # Errors
/// Reading failed.
pub fn hash_reader(
    r: &mut impl Read,
    buf: &mut [u8],
    progress: Option<&Progress>,
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = r.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Some(p) = progress {
            p.done.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    Ok((size, hex(&hasher.finalize())))
}

/// The SHA-256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Escapes backslash, newline, space and non-UTF-8 bytes as `\xNN`, so paths are one token.
fn escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in p.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' | ' ' | '\n' | '\r' | '\t' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1] == b'x' {
            if let Some(v) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("etc/sub")).unwrap();
        fs::write(r.join("etc/a.conf"), b"alpha\n").unwrap();
        fs::write(r.join("etc/sub/big"), vec![7u8; 3 << 20]).unwrap();
        fs::write(r.join("with space"), b"x").unwrap();
        fs::write(r.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9")), b"y").unwrap();
        std::os::unix::fs::symlink("etc/a.conf", r.join("link")).unwrap();
        dir
    }

    #[test]
    fn manifest_round_trips_through_text_and_matches_sha256sum() {
        let dir = tree();
        let m = Manifest::of_tree(dir.path(), 2).unwrap();
        assert_eq!(Manifest::from_text(&m.to_text()).unwrap(), m);
        // What `printf 'alpha\n' | sha256sum` prints.
        let a = &m.entries[Path::new("etc/a.conf")];
        assert_eq!(
            a.content,
            Content::File {
                size: 6,
                sha256: "b6a98d9ce9a2d9149288fa3df42d377c3e42737afdcdaf714e33c0a100b51060"
                    .to_owned()
            }
        );
        assert_eq!(
            m.entries[Path::new("link")].content,
            Content::Symlink {
                target: "etc/a.conf".to_owned()
            }
        );
        assert!(m.to_text().contains(" with\\x20space\n"), "{}", m.to_text());
        assert!(m
            .entries
            .contains_key(Path::new(std::ffi::OsStr::from_bytes(b"latin1-\xe9"))));
        assert_eq!(m.entries.len(), 7);
    }

    #[test]
    fn one_worker_and_many_agree() {
        let dir = tree();
        assert_eq!(
            Manifest::of_tree(dir.path(), 1).unwrap(),
            Manifest::of_tree(dir.path(), 4).unwrap()
        );
    }

    #[test]
    fn diff_names_missing_extra_and_changed_files() {
        let dir = tree();
        let before = Manifest::of_tree(dir.path(), 2).unwrap();
        let r = dir.path();
        fs::remove_file(r.join("with space")).unwrap();
        let mut big = fs::read(r.join("etc/sub/big")).unwrap();
        big[12345] ^= 1;
        fs::write(r.join("etc/sub/big"), big).unwrap();
        fs::write(r.join("etc/a.conf"), b"alpha, longer\n").unwrap();
        fs::write(r.join("new"), b"n").unwrap();
        let d = before.diff(&Manifest::of_tree(r, 2).unwrap());
        assert_eq!(d.missing, [PathBuf::from("with space")]);
        assert_eq!(d.extra, [PathBuf::from("new")]);
        assert_eq!(
            d.changed,
            [
                (PathBuf::from("etc/a.conf"), "size 6 → 14".to_owned()),
                (
                    PathBuf::from("etc/sub/big"),
                    "content (SHA-256) differs".to_owned()
                )
            ]
        );
        assert!(before.diff(&before).is_empty());
        assert_ne!(before.digest(), Manifest::of_tree(r, 2).unwrap().digest());
    }

    #[test]
    fn broken_manifest_lines_are_named() {
        assert_eq!(
            Manifest::from_text("# lvsnap manifest v1\nf 644 x y z\n").unwrap_err(),
            "manifest line 2: \"f 644 x y z\" is not `kind mode size digest path`"
        );
    }
}
