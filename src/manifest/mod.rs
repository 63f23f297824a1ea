//! Manifests: everything a restore must reproduce of each entry of a tree — type, mode, owner,
//! group, mtime (ns), size and SHA-256, the exact bytes of a link's target, device numbers, a
//! digest of the extended attributes (ACLs among them) and hard-link groups — written with a
//! backup and checked by its proof and by `verify`. Hashing runs on every core; the walk never
//! follows symbolic links.
//!
//! Entries the walk cannot take (unreadable, vanished, a path too long for the target, a type
//! the engine cannot store) are listed as skipped, with why: the engines are told to leave them
//! out too, so the manifest and what was written always describe the same tree.
//!
//! The text format is versioned: v1 manifests (type, mode, size, digest) are still read, and
//! compared on what they hold.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::names::shown;

pub mod cache;
mod hash;
mod walk;

pub use cache::{DigestCache, Identity, Lookup};
use hash::*;
pub use hash::{hash_reader, hex, same_content, sha256_hex, Progress};
use walk::*;
pub use walk::{xattrs_digest, Walk, Walked};

/// The longest path the kernel takes, with its terminating NUL.
pub const PATH_MAX: usize = 4096;

/// What a manifest knows of one entry's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file: its size and SHA-256 (hex).
    File {
        size: u64,
        sha256: String,
    },
    Dir,
    /// A symbolic link: its target, byte for byte.
    Symlink {
        target: Vec<u8>,
    },
    /// A character or block device: its device number.
    Device {
        major: u32,
        minor: u32,
    },
    /// Fifos and sockets (and, in a v1 manifest, devices): recorded by kind only.
    Special,
}

/// Owner, times, attributes and links of one entry (absent in v1 manifests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// SHA-256 of the entry's extended attributes (names and values, ACLs among them); `None`
    /// when it has none.
    pub xattrs: Option<String>,
    /// The entry's hard-link group, numbered in path order; `None` when no other name in the
    /// tree is the same inode.
    pub link: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits and file type bits (`st_mode`).
    pub mode: u32,
    pub content: Content,
    pub meta: Option<Meta>,
}

impl Entry {
    /// What a v1 manifest would have recorded of this entry.
    fn as_v1(&self) -> Entry {
        let content = match &self.content {
            Content::Device { .. } => Content::Special,
            Content::Symlink { target } => Content::Symlink {
                target: String::from_utf8_lossy(target).into_owned().into_bytes(),
            },
            c => c.clone(),
        };
        Entry {
            mode: self.mode,
            content,
            meta: None,
        }
    }
}

/// Why an entry of the tree is not in the manifest (nor in the backup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// It could not be opened or listed.
    Unreadable,
    /// It disappeared while the tree was read.
    Vanished,
    /// Its path is longer than the backup can hold below its target.
    TooLong,
    /// Its type is one the engine cannot store (GNU tar has no sockets).
    NotStored,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Unreadable => "unreadable",
            Skip::Vanished => "vanished",
            Skip::TooLong => "too-long",
            Skip::NotStored => "not-stored",
        }
    }

    fn parse(s: &str) -> Option<Skip> {
        [
            Skip::Unreadable,
            Skip::Vanished,
            Skip::TooLong,
            Skip::NotStored,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether skipping it loses data: the backup is then `partial`, never `complete`. A socket
    /// holds none (it is a name a running program listens on).
    pub fn loses_data(self) -> bool {
        self != Skip::NotStored
    }

    /// What an administrator reads.
    pub fn describe(self) -> &'static str {
        match self {
            Skip::Unreadable => "unreadable, not backed up",
            Skip::Vanished => "vanished while read, not backed up",
            Skip::TooLong => "path too long for the backup target, not backed up",
            Skip::NotStored => "a socket, which the archive format cannot store",
        }
    }
}

/// Every entry of a tree, keyed by its path relative to the tree's root, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<PathBuf, Entry>,
    pub skipped: BTreeMap<PathBuf, Skip>,
}

/// How a tree differs from its manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    pub missing: Vec<PathBuf>,
    pub extra: Vec<PathBuf>,
    /// (path, what differs)
    pub changed: Vec<(PathBuf, String)>,
    /// Entries of the tree that could not be read back (path, why).
    pub unreadable: Vec<(PathBuf, Skip)>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.changed.is_empty()
            && self.unreadable.is_empty()
    }

    /// One line per difference, names escaped.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .missing
            .iter()
            .map(|p| format!("missing: {}", shown(p)))
            .collect();
        out.extend(self.extra.iter().map(|p| format!("extra: {}", shown(p))));
        out.extend(
            self.changed
                .iter()
                .map(|(p, what)| format!("changed: {} ({what})", shown(p))),
        );
        out.extend(
            self.unreadable
                .iter()
                .map(|(p, why)| format!("cannot read back: {} ({})", shown(p), why.as_str())),
        );
        out
    }
}

impl Manifest {
    /// Reads and hashes every entry below `root`, hashing on `workers` threads. What cannot be
    /// read is listed in [`Manifest::skipped`].
    ///
    /// # Errors
    /// The root itself cannot be read.
    pub fn of_tree(root: &Path, workers: usize) -> io::Result<Manifest> {
        Ok(Self::walk(root, &Walk::default())?.hash(workers, None))
    }

    /// Walks the tree below `root` without reading file data.
    ///
    /// # Errors
    /// The root itself cannot be read.
    pub fn walk(root: &Path, how: &Walk<'_>) -> io::Result<Walked> {
        let budget = how
            .budget
            .unwrap_or_else(|| PATH_MAX.saturating_sub(2 + root.as_os_str().len()));
        let walker = Walker {
            root,
            how,
            budget,
            device: fs::metadata(root)?.dev(),
        };
        fs::read_dir(root)?;
        let mut out = Walked {
            root: root.to_path_buf(),
            manifest: Manifest::default(),
            files: Vec::new(),
            identities: HashMap::new(),
        };
        let mut inodes = HashMap::new();
        walker.walk(Path::new(""), &mut out, &mut inodes);
        out.manifest.mark_links(&inodes);
        Ok(out)
    }

    /// Gives every inode met under two or more names a provisional group; [`Self::renumber_links`]
    /// numbers them once the manifest is final.
    fn mark_links(&mut self, inodes: &HashMap<(u64, u64), Vec<PathBuf>>) {
        let groups = inodes.values().filter(|n| n.len() > 1);
        for (group, names) in groups.enumerate() {
            let group = u32::try_from(group).unwrap_or(u32::MAX);
            for n in names {
                if let Some(m) = self.entries.get_mut(n).and_then(|e| e.meta.as_mut()) {
                    m.link = Some(group);
                }
            }
        }
    }

    /// Numbers hard-link groups 0, 1, … in the order of their first name, dropping groups that
    /// have come down to one name (the others skipped).
    pub fn renumber_links(&mut self) {
        let mut members: BTreeMap<u32, usize> = BTreeMap::new();
        for m in self.entries.values().filter_map(|e| e.meta.as_ref()) {
            if let Some(g) = m.link {
                *members.entry(g).or_default() += 1;
            }
        }
        let mut number: HashMap<u32, u32> = HashMap::new();
        for e in self.entries.values_mut() {
            let Some(m) = e.meta.as_mut() else { continue };
            m.link = match m.link {
                Some(g) if members.get(&g).copied().unwrap_or(0) > 1 => {
                    let next = u32::try_from(number.len()).unwrap_or(u32::MAX);
                    Some(*number.entry(g).or_insert(next))
                }
                _ => None,
            };
        }
    }

    /// Files whose hard links in `actual` (a walk, link groups unnumbered or numbered) are not
    /// the ones this manifest records, with every name of their groups here: what must be
    /// copied again, together, to give the snapshot's links back.
    pub fn link_mismatches(&self, actual: &BTreeMap<PathBuf, Entry>) -> Vec<PathBuf> {
        let (want, have) = (partners(&self.entries), partners(actual));
        let mut out = std::collections::BTreeSet::new();
        for (p, e) in &self.entries {
            if e.meta.is_none() || !matches!(e.content, Content::File { .. }) {
                continue;
            }
            let (w, h) = (want.get(p), have.get(p));
            if w.map_or(&[][..], Vec::as_slice) != h.map_or(&[][..], Vec::as_slice) {
                out.insert(p.clone());
                out.extend(w.into_iter().flatten().cloned());
            }
        }
        out.into_iter().collect()
    }

    /// The names of each hard-link group, in path order.
    fn link_groups(&self) -> HashMap<u32, Vec<&Path>> {
        let mut out: HashMap<u32, Vec<&Path>> = HashMap::new();
        for (p, e) in &self.entries {
            if let Some(g) = e.meta.as_ref().and_then(|m| m.link) {
                out.entry(g).or_default().push(p.as_path());
            }
        }
        out
    }

    /// What was skipped, one line each (`unreadable: NAME`), at most `limit` lines and a count
    /// of the rest; `None` when nothing was.
    pub fn skipped_note(&self, limit: usize) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let mut lines: Vec<String> = self
            .skipped
            .iter()
            .take(limit)
            .map(|(p, why)| format!("{}: {}", why.as_str(), shown(p)))
            .collect();
        if self.skipped.len() > limit {
            lines.push(format!("… and {} more", self.skipped.len() - limit));
        }
        Some(lines.join("\n"))
    }

    /// Whether any skipped entry lost data (the backup is `partial`).
    pub fn lost_data(&self) -> bool {
        self.skipped.values().any(|s| s.loses_data())
    }

    /// The manifest as text, sorted by path, one line per entry:
    /// `kind mode uid gid mtime size digest xattrs link path`, where `digest` is a file's
    /// SHA-256, a link's target or a device's `major,minor`, and `-` stands for nothing; then
    /// one `! why path` line per skipped entry. Paths and targets are escaped so that any byte
    /// sequence is one token and survives the round trip.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# lvsnap manifest v2\n");
        for (path, e) in &self.entries {
            let (kind, size, digest) = match &e.content {
                Content::File { size, sha256 } => ("f", *size, sha256.clone()),
                Content::Dir => ("d", 0, "-".to_owned()),
                Content::Symlink { target } => ("l", 0, escape(target)),
                Content::Device { major, minor } => {
                    let kind = if e.mode & 0o170000 == 0o060000 {
                        "b"
                    } else {
                        "c"
                    };
                    (kind, 0, format!("{major},{minor}"))
                }
                Content::Special => {
                    let kind = if e.mode & 0o170000 == 0o140000 {
                        "s"
                    } else {
                        "p"
                    };
                    (kind, 0, "-".to_owned())
                }
            };
            let m = e.meta.clone().unwrap_or(Meta {
                uid: 0,
                gid: 0,
                mtime: (0, 0),
                xattrs: None,
                link: None,
            });
            let _ = writeln!(
                out,
                "{kind} {:o} {} {} {}.{:09} {size} {} {} {} {}",
                e.mode,
                m.uid,
                m.gid,
                m.mtime.0,
                m.mtime.1,
                if digest.is_empty() { "-" } else { &digest },
                m.xattrs.as_deref().unwrap_or("-"),
                m.link.map_or("-".to_owned(), |g| g.to_string()),
                escape(path.as_os_str().as_bytes()),
            );
        }
        for (path, why) in &self.skipped {
            let _ = writeln!(
                out,
                "! {} {}",
                why.as_str(),
                escape(path.as_os_str().as_bytes())
            );
        }
        out
    }

    /// Parses [`Manifest::to_text`], v2 or v1.
    ///
    /// # Errors
    /// A line that is not a manifest line, with its number.
    pub fn from_text(text: &str) -> Result<Manifest, String> {
        let v1 = text.starts_with("# lvsnap manifest v1");
        if let Some(v) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# lvsnap manifest v"))
            .filter(|v| !matches!(*v, "1" | "2"))
        {
            return Err(format!(
                "manifest format v{v} is newer than this lvsnap reads (v1, v2); upgrade lvsnap"
            ));
        }
        let mut m = Manifest::default();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.starts_with('#') && !l.is_empty())
        {
            let parsed = if v1 {
                parse_v1(line).map(|(p, e)| {
                    m.entries.insert(p, e);
                })
            } else if let Some(rest) = line.strip_prefix("! ") {
                rest.split_once(' ')
                    .and_then(|(why, p)| Some((Skip::parse(why)?, unescape(p))))
                    .map(|(why, p)| {
                        m.skipped.insert(p, why);
                    })
            } else {
                parse_v2(line).map(|(p, e)| {
                    m.entries.insert(p, e);
                })
            };
            if parsed.is_none() {
                let form = if v1 {
                    "kind mode size digest path"
                } else {
                    "kind mode uid gid mtime size digest xattrs link path"
                };
                return Err(format!("manifest line {}: {line:?} is not `{form}`", i + 1));
            }
        }
        Ok(m)
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

    /// Compares `self` (what should be) with `actual` (what is). What `self` skipped is not
    /// looked for; what `actual` could not read is a difference. A v1 entry is compared on what
    /// v1 recorded.
    pub fn diff(&self, actual: &Manifest) -> Differences {
        self.diff_with(actual, false)
    }

    /// [`Manifest::diff`] as a person comparing two states wants it (`lvsnap diff`): a
    /// directory's mtime, which changes whenever a name in it does, and a file's mtime when its
    /// content changed too, are not mentioned.
    pub fn changes(&self, actual: &Manifest) -> Differences {
        self.diff_with(actual, true)
    }

    fn diff_with(&self, actual: &Manifest, quiet_times: bool) -> Differences {
        let mut d = Differences::default();
        let (want_links, have_links) = (self.link_groups(), actual.link_groups());
        for (path, want) in &self.entries {
            if let Some(why) = actual.skipped.get(path) {
                d.unreadable.push((path.clone(), *why));
                continue;
            }
            let Some(have) = actual.entries.get(path) else {
                d.missing.push(path.clone());
                continue;
            };
            let have = if want.meta.is_none() {
                have.as_v1()
            } else {
                have.clone()
            };
            let mut what = describe_change(want, &have, quiet_times);
            // Each name is described by another name of its inode (the first other one).
            let partner = |e: &Entry, groups: &HashMap<u32, Vec<&Path>>| {
                let g = e.meta.as_ref().and_then(|m| m.link)?;
                groups
                    .get(&g)?
                    .iter()
                    .find(|p| **p != path.as_path())
                    .map(|p| p.to_path_buf())
            };
            let (a, b) = (partner(want, &want_links), partner(&have, &have_links));
            if want.meta.is_some() && a != b {
                what.push(match (a, b) {
                    (Some(a), None) => format!("no longer a hard link of {}", shown(&a)),
                    (None, Some(b)) => format!("a hard link of {}, unlike the source", shown(&b)),
                    (Some(a), Some(b)) => {
                        format!("a hard link of {} instead of {}", shown(&b), shown(&a))
                    }
                    (None, None) => unreachable!("a != b"),
                });
            }
            if !what.is_empty() {
                d.changed.push((path.clone(), what.join(", ")));
            }
        }
        d.extra = actual
            .entries
            .keys()
            .filter(|p| !self.entries.contains_key(*p) && !self.skipped.contains_key(*p))
            .cloned()
            .collect();
        d.unreadable.extend(
            actual
                .skipped
                .iter()
                .filter(|(p, _)| !self.entries.contains_key(*p) && !self.skipped.contains_key(*p))
                .map(|(p, w)| (p.clone(), *w)),
        );
        d
    }
}

fn parse_v2(line: &str) -> Option<(PathBuf, Entry)> {
    let f: Vec<&str> = line.splitn(10, ' ').collect();
    let [kind, mode, uid, gid, mtime, size, digest, xattrs, link, path] = f[..] else {
        return None;
    };
    let mode = u32::from_str_radix(mode, 8).ok()?;
    let (secs, nanos) = mtime.split_once('.')?;
    let content = match kind {
        "f" if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Content::File {
                size: size.parse().ok()?,
                sha256: digest.to_owned(),
            }
        }
        "d" => Content::Dir,
        "l" => Content::Symlink {
            target: unescape_bytes(digest),
        },
        "b" | "c" => {
            let (major, minor) = digest.split_once(',')?;
            Content::Device {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
            }
        }
        "p" | "s" => Content::Special,
        _ => return None,
    };
    let meta = Meta {
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        mtime: (secs.parse().ok()?, nanos.parse().ok()?),
        xattrs: (xattrs != "-").then(|| xattrs.to_owned()),
        link: if link == "-" {
            None
        } else {
            Some(link.parse().ok()?)
        },
    };
    Some((
        unescape(path),
        Entry {
            mode,
            content,
            meta: Some(meta),
        },
    ))
}

fn parse_v1(line: &str) -> Option<(PathBuf, Entry)> {
    let f: Vec<&str> = line.splitn(5, ' ').collect();
    let [kind, mode, size, digest, path] = f[..] else {
        return None;
    };
    let content = match kind {
        "f" => Content::File {
            size: size.parse().ok()?,
            sha256: digest.to_owned(),
        },
        "d" => Content::Dir,
        "l" => Content::Symlink {
            target: unescape_bytes(digest),
        },
        "s" => Content::Special,
        _ => return None,
    };
    Some((
        unescape(path),
        Entry {
            mode: u32::from_str_radix(mode, 8).ok()?,
            content,
            meta: None,
        },
    ))
}

/// Each difference between two entries, named.
fn describe_change(want: &Entry, have: &Entry, quiet_times: bool) -> Vec<String> {
    let mut out = Vec::new();
    let (wt, ht) = (want.mode & 0o170000, have.mode & 0o170000);
    if wt != ht || std::mem::discriminant(&want.content) != std::mem::discriminant(&have.content) {
        return vec![format!("type {} → {}", kind_name(wt), kind_name(ht))];
    }
    if want.mode & 0o7777 != have.mode & 0o7777 {
        out.push(format!(
            "mode {:o} → {:o}",
            want.mode & 0o7777,
            have.mode & 0o7777
        ));
    }
    if let (Some(a), Some(b)) = (&want.meta, &have.meta) {
        if (a.uid, a.gid) != (b.uid, b.gid) {
            out.push(format!("owner {}:{} → {}:{}", a.uid, a.gid, b.uid, b.gid));
        }
    }
    match (&want.content, &have.content) {
        (Content::File { size: a, .. }, Content::File { size: b, .. }) if a != b => {
            out.push(format!("size {a} → {b}"));
        }
        (Content::File { sha256: a, .. }, Content::File { sha256: b, .. }) if a != b => {
            out.push("content (SHA-256) differs".to_owned());
        }
        (Content::Symlink { target: a }, Content::Symlink { target: b }) if a != b => {
            out.push(format!(
                "link target {} → {}",
                shown(Path::new(std::ffi::OsStr::from_bytes(a))),
                shown(Path::new(std::ffi::OsStr::from_bytes(b)))
            ));
        }
        (Content::Device { major: a, minor: b }, Content::Device { major: c, minor: d })
            if (a, b) != (c, d) =>
        {
            out.push(format!("device {a},{b} → {c},{d}"))
        }
        _ => {}
    }
    let content_changed = want.content != have.content;
    let quiet = quiet_times && (matches!(want.content, Content::Dir) || content_changed);
    if let (Some(a), Some(b)) = (&want.meta, &have.meta) {
        if a.mtime != b.mtime && !quiet {
            out.push(format!("mtime {} → {}", time(a.mtime), time(b.mtime)));
        }
        if a.xattrs != b.xattrs {
            out.push(match (&a.xattrs, &b.xattrs) {
                (Some(_), None) => "extended attributes/ACLs lost".to_owned(),
                (None, Some(_)) => "extended attributes/ACLs added".to_owned(),
                _ => "extended attributes/ACLs differ".to_owned(),
            });
        }
    }
    out
}

fn kind_name(type_bits: u32) -> &'static str {
    match type_bits {
        0o100000 => "file",
        0o040000 => "directory",
        0o120000 => "symlink",
        0o020000 => "character device",
        0o060000 => "block device",
        0o010000 => "fifo",
        0o140000 => "socket",
        _ => "unknown",
    }
}

/// An mtime as RFC 3339 with nanoseconds (UTC).
fn time((secs, nanos): (i64, u32)) -> String {
    chrono::DateTime::from_timestamp(secs, nanos).map_or_else(
        || format!("{secs}.{nanos:09}"),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string(),
    )
}

/// For each name in a hard-link group of two or more, all the group's names (in path order).
fn partners(entries: &BTreeMap<PathBuf, Entry>) -> HashMap<PathBuf, Vec<PathBuf>> {
    let mut groups: HashMap<u32, Vec<PathBuf>> = HashMap::new();
    for (p, e) in entries {
        if let Some(g) = e.meta.as_ref().and_then(|m| m.link) {
            groups.entry(g).or_default().push(p.clone());
        }
    }
    let mut of = HashMap::new();
    for names in groups.into_values().filter(|n| n.len() > 1) {
        for n in &names {
            of.insert(n.clone(), names.clone());
        }
    }
    of
}

/// Escapes backslash, whitespace and non-UTF-8 bytes as `\xNN`, so a name is one token.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
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
    PathBuf::from(std::ffi::OsString::from_vec(unescape_bytes(s)))
}

fn unescape_bytes(s: &str) -> Vec<u8> {
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
    out
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
                target: b"etc/a.conf".to_vec()
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
        let changed: Vec<&Path> = d.changed.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(changed, [Path::new("etc/a.conf"), Path::new("etc/sub/big")]);
        assert!(
            d.changed[0].1.starts_with("size 6 → 14, mtime "),
            "{:?}",
            d.changed
        );
        assert!(
            d.changed[1]
                .1
                .starts_with("content (SHA-256) differs, mtime "),
            "{:?}",
            d.changed
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
        assert!(
            Manifest::from_text("# lvsnap manifest v2\nf 644 0 0 1.5 3 - - - a\n")
                .unwrap_err()
                .starts_with("manifest line 2:")
        );
    }

    #[test]
    fn each_kind_of_metadata_change_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree();
        let r = dir.path();
        fs::hard_link(r.join("etc/a.conf"), r.join("hard")).unwrap();
        let before = Manifest::of_tree(r, 2).unwrap();
        assert_eq!(Manifest::from_text(&before.to_text()).unwrap(), before);
        let link = |p: &str| before.entries[Path::new(p)].meta.as_ref().unwrap().link;
        assert_eq!(link("etc/a.conf"), Some(0));
        assert_eq!(link("hard"), Some(0));
        assert_eq!(link("with space"), None);
        fs::set_permissions(r.join("with space"), fs::Permissions::from_mode(0o600)).unwrap();
        let f = fs::File::options()
            .write(true)
            .open(r.join("etc/sub/big"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5))
            .unwrap();
        fs::remove_file(r.join("link")).unwrap();
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"bad-\xff"), r.join("link"))
            .unwrap();
        // The hard link broken: same content, another inode.
        fs::remove_file(r.join("hard")).unwrap();
        fs::write(r.join("hard"), b"alpha\n").unwrap();
        let f = fs::File::options()
            .write(true)
            .open(r.join("hard"))
            .unwrap();
        f.set_modified(
            fs::metadata(r.join("etc/a.conf"))
                .unwrap()
                .modified()
                .unwrap(),
        )
        .unwrap();
        let xattr = duct::cmd!("setfattr", "-n", "user.k", "-v", "v", r.join("etc/a.conf")).run();
        let after = Manifest::of_tree(r, 2).unwrap();
        let d = before.diff(&after);
        let said: BTreeMap<String, String> = d
            .changed
            .iter()
            .map(|(p, w)| (p.display().to_string(), w.clone()))
            .collect();
        assert_eq!(said["with space"], "mode 644 → 600");
        assert_eq!(
            said["etc/sub/big"].split(" → ").last().unwrap(),
            "2023-11-14T22:13:20.000000005Z"
        );
        assert!(
            said["link"].starts_with("link target etc/a.conf → $'bad-\\xff', mtime "),
            "{said:?}"
        );
        assert_eq!(said["hard"], "no longer a hard link of etc/a.conf");
        if xattr.is_ok() {
            assert!(
                said["etc/a.conf"].contains("extended attributes/ACLs added"),
                "{said:?}"
            );
        }
    }

    #[test]
    fn a_v1_manifest_is_compared_on_what_it_recorded() {
        let dir = tree();
        let now = Manifest::of_tree(dir.path(), 2).unwrap();
        let mut v1 = String::from("# lvsnap manifest v1\n");
        for (p, e) in &now.entries {
            let line = match &e.content {
                Content::File { size, sha256 } => format!("f {:o} {size} {sha256}", e.mode),
                Content::Dir => format!("d {:o} 0 -", e.mode),
                Content::Symlink { target } => format!("l {:o} 0 {}", e.mode, escape(target)),
                _ => format!("s {:o} 0 -", e.mode),
            };
            v1.push_str(&format!("{line} {}\n", escape(p.as_os_str().as_bytes())));
        }
        let old = Manifest::from_text(&v1).unwrap();
        assert!(old.entries.values().all(|e| e.meta.is_none()));
        assert!(old.diff(&now).is_empty(), "{:?}", old.diff(&now));
    }

    #[test]
    fn what_cannot_be_taken_is_skipped_with_why() {
        let dir = tree();
        let r = dir.path();
        let deep: PathBuf = ["a", "b", "c"].iter().map(|c| c.repeat(100)).collect();
        fs::create_dir_all(r.join(&deep)).unwrap();
        fs::write(r.join(&deep).join("f"), b"deep").unwrap();
        let budget = Walk {
            budget: Some(250),
            ..Walk::default()
        };
        let m = Manifest::walk(r, &budget).unwrap().hash(2, None);
        assert_eq!(
            m.skipped.iter().collect::<Vec<_>>(),
            [(&deep, &Skip::TooLong)],
            "the first entry past the budget is skipped, and nothing below it is walked"
        );
        assert!(m.entries.contains_key(deep.parent().unwrap()));
        assert!(m.lost_data());
        assert!(m.entries.contains_key(Path::new("etc/a.conf")));
        assert_eq!(Manifest::from_text(&m.to_text()).unwrap(), m);
        assert!(m.skipped_note(5).unwrap().starts_with("too-long: aaa"));
    }
}
