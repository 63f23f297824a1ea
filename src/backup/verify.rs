//! `lvsnap verify`: re-reads a backup and compares it with the manifest written beside it, whose
//! own SHA-256 the catalog holds (so a manifest edited to match damage is caught too). An rsync
//! generation is walked and hashed like the snapshot was; an archive is streamed through zstd
//! and tar without unpacking it anywhere.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engines;
use crate::catalog::BackupRecord;
use crate::manifest::{Content, Differences, Entry, Manifest};

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
        out.extend(
            d.missing
                .iter()
                .map(|p| format!("missing: {}", p.display())),
        );
        out.extend(d.extra.iter().map(|p| format!("extra: {}", p.display())));
        out.extend(
            d.changed
                .iter()
                .map(|(p, what)| format!("changed: {} ({what})", p.display())),
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
        .is_some_and(|want| want != hex(&Sha256::digest(text.as_bytes())));
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
        let rel = normalize(&e.path()?);
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
            _ => {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                loop {
                    let n = e.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                (
                    0o100000,
                    Content::File {
                        size,
                        sha256: hex(&hasher.finalize()),
                    },
                )
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

/// `./a/b` and `a/b/` both become `a/b`.
fn normalize(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        std::fs::set_permissions(r.join("empty"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", r.join("sym")).unwrap();
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
