//! `lvsnap verify`: re-reads a backup and compares it with the manifest written beside it, whose
//! own SHA-256 the catalog holds (so a manifest edited to match damage is caught too). An rsync
//! generation is walked and hashed like the snapshot was; an archive is streamed through zstd
//! and tar without unpacking it anywhere.

use crate::names::shown;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engines;
use crate::catalog::BackupRecord;
use crate::manifest::{hash_reader, hex, sha256_hex, Content, Differences, Entry, Manifest};

/// The outcome of one verification.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub differences: Differences,
    /// The manifest file's digest differs from the one recorded when the backup was written.
    pub manifest_altered: bool,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.differences.is_empty() && !self.manifest_altered
    }

    /// One line per problem, for the report and the catalog.
    pub fn problems(&self) -> Vec<String> {
        let d = &self.differences;
        let mut out = Vec::new();
        if self.manifest_altered {
            out.push("manifest file altered since the backup was written".to_owned());
        }
        out.extend(d.missing.iter().map(|p| format!("missing: {}", shown(p))));
        out.extend(d.extra.iter().map(|p| format!("extra: {}", shown(p))));
        out.extend(
            d.changed
                .iter()
                .map(|(p, what)| format!("changed: {} ({what})", shown(p))),
        );
        out
    }
}

/// Verifies one complete backup.
///
/// # Errors
/// The backup cannot be read back (missing files, engine `command`).
pub fn verify(b: &BackupRecord, workers: usize) -> Result<Verdict, String> {
    let manifest_file = engines::manifest_path(&b.dir, &b.name);
    let text = engines::read_text(&manifest_file)
        .map_err(|e| format!("cannot read the manifest {}: {e}", manifest_file.display()))?;
    let manifest_altered = b
        .manifest_sha256
        .as_deref()
        .is_some_and(|want| want != sha256_hex(text.as_bytes()));
    let expected = Manifest::from_text(&text)?;
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
    })
}

/// The manifest of a `tar --zstd` archive, read as a stream.
///
/// # Errors
/// The archive cannot be opened, decompressed or parsed.
pub fn manifest_of_archive(path: &Path) -> io::Result<Manifest> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(zstd::Decoder::new(file)?);
    let mut entries: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 20];
    for entry in archive.entries()? {
        let mut e = entry?;
        let sparse = pax_sparse(&mut e)?;
        let rel = match &sparse {
            Some(s) => normalize(Path::new(&s.name)),
            None => normalize(&e.path()?),
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let perm = e.header().mode()?;
        let kind = e.header().entry_type();
        let (type_bits, content) = match kind {
            tar::EntryType::Directory => (0o040000, Content::Dir),
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (0o120000, Content::Symlink { target })
            }
            tar::EntryType::Link => {
                let target = normalize(&e.link_name()?.unwrap_or_default());
                let content = entries
                    .get(&target)
                    .map(|t| t.content.clone())
                    .ok_or_else(|| {
                        io::Error::other(format!(
                            "hard link {} to {} that the archive does not hold",
                            rel.display(),
                            target.display()
                        ))
                    })?;
                (0o100000, content)
            }
            tar::EntryType::Char => (0o020000, Content::Special),
            tar::EntryType::Block => (0o060000, Content::Special),
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
        entries.insert(
            rel,
            Entry {
                mode: type_bits | (perm & 0o7777),
                content,
            },
        );
    }
    Ok(Manifest { entries })
}

/// A file GNU tar stored in PAX sparse format 1.0 (`--sparse` with `--xattrs`/`--acls`): its
/// real name and size are PAX attributes; its data starts with the map of data extents.
struct Sparse {
    name: String,
    real_size: u64,
}

fn pax_sparse<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Option<Sparse>> {
    let Some(exts) = e.pax_extensions()? else {
        return Ok(None);
    };
    let (mut major, mut name, mut size) = (None, None, None);
    // The tar crate splits PAX records at newlines, so a multi-line value (GNU tar's ACL text)
    // reads as malformed records; the sparse keys are single-line, the rest is not needed here.
    for ext in exts.flatten() {
        let value = ext.value().unwrap_or("").to_owned();
        match ext.key().unwrap_or("") {
            "GNU.sparse.major" => major = Some(value),
            "GNU.sparse.name" => name = Some(value),
            "GNU.sparse.realsize" => size = value.parse().ok(),
            _ => {}
        }
    }
    match (major.as_deref(), name, size) {
        (Some("1"), Some(name), Some(real_size)) => Ok(Some(Sparse { name, real_size })),
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
