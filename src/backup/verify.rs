//! `lvsnap verify`: re-reads a backup and compares it with the manifest written beside it, whose
//! own SHA-256 the catalog holds (so a manifest edited to match damage is caught too). An rsync
//! generation is walked and hashed like the snapshot was; an archive is streamed through zstd
//! and tar without unpacking it anywhere.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engines;
use crate::catalog::BackupRecord;
use crate::manifest::{
    hash_reader, hex, sha256_hex, xattrs_digest, Content, Differences, Entry, Manifest, Meta,
};

/// The outcome of one verification.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub differences: Differences,
    /// The manifest file's digest differs from the one recorded when the backup was written.
    pub manifest_altered: bool,
    /// What a repository's own reading found (restic: its listing, its content, its check).
    pub found: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.differences.is_empty() && !self.manifest_altered && self.found.is_empty()
    }

    /// One line per problem, for the report and the catalog.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.manifest_altered {
            out.push("manifest file altered since the backup was written".to_owned());
        }
        out.extend(self.differences.lines());
        out.extend(self.found.iter().cloned());
        out
    }
}

/// The manifest of backup `b`, and whether it was altered since the backup was written (its
/// digest is not the one the catalog holds).
pub(crate) fn manifest_of(b: &BackupRecord) -> Result<(Manifest, bool), String> {
    let manifest_file = engines::manifest_path(&b.dir, &b.name);
    let text = engines::read_text(&manifest_file)
        .map_err(|e| format!("cannot read the manifest {}: {e}", manifest_file.display()))?;
    let altered = b
        .manifest_sha256
        .as_deref()
        .is_some_and(|want| want != sha256_hex(text.as_bytes()));
    Ok((Manifest::from_text(&text)?, altered))
}

/// Verifies one complete backup.
///
/// # Errors
/// The backup cannot be read back (missing files, engine `command`).
pub fn verify(b: &BackupRecord, workers: usize) -> Result<Verdict, String> {
    let (expected, manifest_altered) = manifest_of(b)?;
    let Some(data) = engines::artifact(&b.engine, &b.dir, &b.name) else {
        return Err(format!(
            "backup {} was written by engine \"command\": lvsnap cannot read it back; check it with the tool itself (restic check, borg check)",
            b.label()
        ));
    };
    let actual = match b.engine.as_str() {
        "archive" => manifest_of_archive(&data),
        _ => {
            if !data.is_dir() {
                return Err(format!("generation {} is missing", data.display()));
            }
            Manifest::of_tree(&data, workers)
        }
    }
    .map_err(|e| format!("cannot read {}: {e}", data.display()))?;
    Ok(Verdict {
        differences: expected.diff(&actual),
        manifest_altered,
        found: Vec::new(),
    })
}

/// Verifies one complete restic backup: its manifest's digest, then the restic snapshot's
/// listing against the manifest; with `read_data`, its whole content read back through restic
/// and `restic check` reading that share of the repository's data (`"5%"`, `"1/10"`).
///
/// # Errors
/// The manifest or the snapshot's ID cannot be read, or restic failed.
pub fn verify_restic(
    b: &BackupRecord,
    restic: &super::restic::Restic<'_>,
    read_data: Option<&str>,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Verdict, String> {
    let (expected, manifest_altered) = manifest_of(b)?;
    let id = restic.snapshot_of(b)?;
    let mut found = restic.compare_listing(&id, &expected, cancel)?.diffs;
    if let Some(share) = read_data {
        let (_, content) = restic.compare_content(&id, &expected, cancel, None)?;
        found.extend(content);
        if let Err(e) = restic.check(Some(share), cancel) {
            found.push(e);
        }
    }
    Ok(Verdict {
        differences: Differences::default(),
        manifest_altered,
        found,
    })
}

/// The manifest of a `tar --zstd` archive, read as a stream. Entries are read raw and their PAX
/// records parsed here, by length: GNU tar's ACL and binary xattr values hold newlines that a
/// line-based reader would split.
///
/// # Errors
/// The archive cannot be opened, decompressed or parsed.
pub fn manifest_of_archive(path: &Path) -> io::Result<Manifest> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(zstd::Decoder::new(file)?);
    let mut m = Manifest::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut pax = Records::new();
    let mut global = Records::new();
    let (mut long_name, mut long_link) = (None, None);
    // Provisional hard-link groups, keyed by the first name; numbered at the end.
    let mut groups: HashMap<PathBuf, u32> = HashMap::new();
    for entry in archive.entries()?.raw(true) {
        let mut e = entry?;
        let kind = e.header().entry_type();
        match kind {
            tar::EntryType::XHeader => {
                pax = pax_records(&read_all(&mut e)?)?;
                continue;
            }
            tar::EntryType::XGlobalHeader => {
                global = pax_records(&read_all(&mut e)?)?;
                continue;
            }
            tar::EntryType::GNULongName => {
                long_name = Some(trim_nul(read_all(&mut e)?));
                continue;
            }
            tar::EntryType::GNULongLink => {
                long_link = Some(trim_nul(read_all(&mut e)?));
                continue;
            }
            _ => {}
        }
        let records = std::mem::take(&mut pax);
        let get = |key: &str| {
            records
                .iter()
                .chain(global.iter())
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v.clone())
        };
        let sparse = sparse_of(&get)?;
        let name = match (&sparse, get("path"), long_name.take()) {
            (Some(s), ..) => s.name.clone(),
            (None, Some(p), _) | (None, None, Some(p)) => p,
            (None, None, None) => e.header().path_bytes().into_owned(),
        };
        let link_name = get("linkpath")
            .or(long_link.take())
            .or_else(|| e.header().link_name_bytes().map(|l| l.into_owned()));
        let rel = normalize(Path::new(OsStr::from_bytes(&name)));
        if rel.as_os_str().is_empty() {
            continue;
        }
        let h = e.header();
        let number = |key: &str| get(key).and_then(|v| String::from_utf8(v).ok()?.parse().ok());
        let uid = number("uid").map_or_else(|| h.uid(), Ok)?;
        let gid = number("gid").map_or_else(|| h.gid(), Ok)?;
        let mtime = match get("mtime") {
            Some(v) => parse_time(&v)
                .ok_or_else(|| io::Error::other(format!("a broken mtime for {}", rel.display())))?,
            None => (i64::try_from(h.mtime()?).unwrap_or(i64::MAX), 0),
        };
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = records
            .iter()
            .filter_map(|(k, v)| Some((xattr_name(k.strip_prefix(b"SCHILY.xattr.")?), v.clone())))
            .collect();
        let perm = h.mode()? & 0o7777;
        let meta = |link| Meta {
            uid: u32::try_from(uid).unwrap_or(u32::MAX),
            gid: u32::try_from(gid).unwrap_or(u32::MAX),
            mtime,
            xattrs: xattrs_digest(&xattrs),
            link,
        };
        let (type_bits, content) = match kind {
            tar::EntryType::Directory => (0o040000, Content::Dir),
            tar::EntryType::Symlink => (
                0o120000,
                Content::Symlink {
                    target: link_name.unwrap_or_default(),
                },
            ),
            tar::EntryType::Link => {
                let target =
                    normalize(Path::new(OsStr::from_bytes(&link_name.unwrap_or_default())));
                let next = u32::try_from(groups.len()).unwrap_or(u32::MAX);
                let group = *groups.entry(target.clone()).or_insert(next);
                let first = m.entries.get_mut(&target).ok_or_else(|| {
                    io::Error::other(format!(
                        "hard link {} to {} that the archive does not hold",
                        rel.display(),
                        target.display()
                    ))
                })?;
                if let Some(fm) = first.meta.as_mut() {
                    fm.link = Some(group);
                }
                // The same inode: everything but the name is the first name's.
                let same = first.clone();
                m.entries.insert(rel, same);
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let bits = if kind == tar::EntryType::Char {
                    0o020000
                } else {
                    0o060000
                };
                let major = h.device_major()?.unwrap_or(0);
                let minor = h.device_minor()?.unwrap_or(0);
                (bits, Content::Device { major, minor })
            }
            tar::EntryType::Fifo => (0o010000, Content::Special),
            _ if sparse.is_some() => {
                let s = sparse.as_ref().expect("checked");
                let (size, sha256) = hash_sparse(&mut e, s.real_size)?;
                (0o100000, Content::File { size, sha256 })
            }
            _ => {
                let (size, sha256) = hash_reader(&mut e, &mut buf, None)?;
                (0o100000, Content::File { size, sha256 })
            }
        };
        m.entries.insert(
            rel,
            Entry {
                mode: type_bits | perm,
                content,
                meta: Some(meta(None)),
            },
        );
    }
    m.renumber_links();
    Ok(m)
}

type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// An xattr name as GNU tar writes it in a PAX keyword, decoded: `%` and `=` are `%25` and
/// `%3D` there.
fn xattr_name(keyword: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keyword.len());
    let mut i = 0;
    while i < keyword.len() {
        match keyword.get(i..i + 3) {
            Some(b"%25") => {
                out.push(b'%');
                i += 3;
            }
            Some(b"%3D") => {
                out.push(b'=');
                i += 3;
            }
            _ => {
                out.push(keyword[i]);
                i += 1;
            }
        }
    }
    out
}

fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// PAX records (`LEN key=value\n`, LEN counting the whole record), parsed by length.
fn pax_records(data: &[u8]) -> io::Result<Records> {
    let bad = || io::Error::other("a broken PAX header in the archive");
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest.iter().any(|b| *b != 0) {
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() {
            return Err(bad());
        }
        let record = rest[sp + 1..len].strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A PAX time (`SECONDS[.FRACTION]`, possibly negative) as seconds and nanoseconds, the way
/// `stat` gives them (nanoseconds always forward from the second).
fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = int.parse().ok()?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: u32 = digits.parse().ok()?;
    Some(if s.starts_with('-') && nanos > 0 {
        (secs - 1, 1_000_000_000 - nanos)
    } else {
        (secs, nanos)
    })
}

/// A file GNU tar stored in PAX sparse format 1.0 (`--sparse` with `--xattrs`/`--acls`): its
/// real name and size are PAX attributes; its data starts with the map of data extents.
struct Sparse {
    name: Vec<u8>,
    real_size: u64,
}

fn sparse_of(get: &impl Fn(&str) -> Option<Vec<u8>>) -> io::Result<Option<Sparse>> {
    let text = |k: &str| get(k).map(|v| String::from_utf8_lossy(&v).into_owned());
    match (
        text("GNU.sparse.major"),
        get("GNU.sparse.name"),
        text("GNU.sparse.realsize").and_then(|s| s.parse().ok()),
    ) {
        (Some(v), Some(name), Some(real_size)) if v == "1" => Ok(Some(Sparse { name, real_size })),
        (Some(v), ..) => Err(io::Error::other(format!(
            "sparse format {v} in the archive is not one lvsnap reads"
        ))),
        _ => Ok(None),
    }
}

/// Hashes a PAX 1.0 sparse file: the map (count, then offset/length pairs, one decimal number
/// per line, padded to 512 bytes), then the data extents; holes read as zeros.
fn hash_sparse(r: &mut impl Read, real_size: u64) -> io::Result<(u64, String)> {
    let mut r = io::BufReader::new(r);
    let mut consumed = 0u64;
    let mut number = || -> io::Result<u64> {
        let mut line = Vec::new();
        io::BufRead::read_until(&mut r, b'\n', &mut line)?;
        consumed += line.len() as u64;
        std::str::from_utf8(&line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| io::Error::other("a broken sparse map in the archive"))
    };
    let count = number()?;
    let mut map = Vec::new();
    for _ in 0..count {
        map.push((number()?, number()?));
    }
    let pad = (512 - consumed % 512) % 512;
    io::copy(&mut (&mut r).take(pad), &mut io::sink())?;
    let mut hasher = Sha256::new();
    let zeros = vec![0u8; 1 << 16];
    let hash_zeros = |h: &mut Sha256, mut n: u64| {
        while n > 0 {
            let k = n.min(zeros.len() as u64) as usize;
            h.update(&zeros[..k]);
            n -= k as u64;
        }
    };
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (offset, len) in map {
        hash_zeros(&mut hasher, offset.saturating_sub(pos));
        let mut left = len;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..k])?;
            hasher.update(&buf[..k]);
            left -= k as u64;
        }
        pos = offset + len;
    }
    hash_zeros(&mut hasher, real_size.saturating_sub(pos));
    Ok((real_size, hex(&hasher.finalize())))
}

/// `./a/b` and `a/b/` both become `a/b`.
fn normalize(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A tree with a file, a hard link, a symlink, an empty file and a subdirectory.
    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/a.txt"), "alpha\n").unwrap();
        std::fs::hard_link(r.join("sub/a.txt"), r.join("a-link")).unwrap();
        std::fs::write(r.join("empty"), "").unwrap();
        // A multi-line PAX value, as GNU tar writes for an ACL.
        duct::cmd!("setfacl", "-m", "u:1234:rw", r.join("empty"))
            .run()
            .unwrap();
        std::fs::set_permissions(r.join("empty"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", r.join("sym")).unwrap();
        let sparse = std::fs::File::create(r.join("sparse")).unwrap();
        sparse.set_len(5 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&sparse, b"middle", 2 << 20).unwrap();
        d
    }

    #[test]
    fn an_archive_written_by_gnu_tar_reads_back_to_the_trees_manifest() {
        if duct::cmd!("zstd", "--version").stdout_null().run().is_err() {
            panic!("zstd is needed by the archive engine; tests/run.sh installs it");
        }
        let t = tree();
        let out = tempfile::tempdir().unwrap();
        let archive = out.path().join("a.tar.zst");
        duct::cmd!(
            "tar",
            "--create",
            "--zstd",
            "--sparse",
            "--xattrs",
            "--acls",
            "--numeric-owner",
            format!("--file={}", archive.display()),
            format!("--directory={}", t.path().display()),
            "."
        )
        .run()
        .unwrap();
        let want = Manifest::of_tree(t.path(), 2).unwrap();
        let have = manifest_of_archive(&archive).unwrap();
        assert!(want.diff(&have).is_empty(), "{:?}", want.diff(&have));
    }
}
