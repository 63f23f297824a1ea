//! Backups found again: after the catalog is lost, `catalog rebuild` rescans every policy's
//! backup target for generations that were committed (final name, manifest beside them) and
//! records them complete, not verified since. Also the rule that a new backup never takes a
//! name whose files exist already.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::engines;
use super::SKIPPED_SHOWN;
use crate::catalog::BackupRecord;
use crate::config::Config;
use crate::manifest::{sha256_hex, Manifest};

/// A committed generation the catalog does not know.
#[derive(Debug, Clone)]
pub struct Found {
    pub policy: String,
    pub vg: String,
    pub origin: String,
    pub engine: &'static str,
    pub dir: PathBuf,
    pub name: String,
    pub time: DateTime<Utc>,
    pub manifest_sha256: String,
    pub files: u64,
    pub bytes: u64,
    /// Entries the generation lacks (then it is partial), as its manifest lists them.
    pub partial: bool,
    pub note: Option<String>,
    /// The restic snapshot's ID and the bytes it added, from its record.
    pub remote: Option<(String, u64)>,
}

impl Found {
    pub fn label(&self) -> String {
        format!("{}/{}@{}", self.vg, self.origin, self.name)
    }
}

/// Every committed generation below the policies' backup targets that `known` does not hold,
/// oldest first. A generation counts when its manifest has its final name, parses, and its
/// data (for rsync and archive) is there under its final name; anything partial is left to the
/// next backup's clean-up.
pub fn find_generations(config: &Config, known: &[BackupRecord]) -> Vec<Found> {
    let mut found = Vec::new();
    for p in &config.policies {
        let Some(b) = &p.backup else { continue };
        for v in &p.volumes {
            let dir = super::volume_dir(b, v);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let file = e.file_name();
                let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".manifest")) else {
                    continue;
                };
                let Some(time) = generation_time(name) else {
                    continue;
                };
                if known.iter().any(|k| k.dir == dir && k.name == name) {
                    continue;
                }
                // What is on disk says which engine wrote it, whatever the policy says now.
                let Some(engine) = engine_on_disk(&dir, name, b.engine.name()) else {
                    continue;
                };
                let Ok(text) = engines::read_text(&engines::manifest_path(&dir, name)) else {
                    continue;
                };
                let Ok(manifest) = Manifest::from_text(&text) else {
                    continue;
                };
                let remote = match engine {
                    "restic" => {
                        let record = engines::artifact(engine, &dir, name)
                            .and_then(|p| super::restic::read_record(&p).ok());
                        match record {
                            Some(r) => Some((r.summary.id, r.summary.data_added)),
                            None => continue,
                        }
                    }
                    _ => None,
                };
                let (files, bytes) = manifest.totals();
                found.push(Found {
                    remote,
                    policy: p.name.clone(),
                    vg: v.vg.clone(),
                    origin: v.lv.clone(),
                    engine,
                    dir: dir.clone(),
                    name: name.to_owned(),
                    time,
                    manifest_sha256: sha256_hex(text.as_bytes()),
                    files,
                    bytes,
                    partial: manifest.lost_data(),
                    note: manifest.skipped_note(SKIPPED_SHOWN),
                });
            }
        }
    }
    found.sort_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name)));
    found
}

/// The engine whose data sits beside a manifest: a generation directory (rsync), an archive
/// (archive), the record of a restic snapshot (restic), or nothing — a command backup, whose data is in the tool's own repository, when
/// the policy uses that engine (otherwise a manifest alone is what an interrupted prune left).
/// `None` for both, or for a link where the data should be.
fn engine_on_disk(dir: &Path, name: &str, policy_engine: &str) -> Option<&'static str> {
    let kind = |engine| {
        engines::artifact(engine, dir, name).and_then(|a| std::fs::symlink_metadata(a).ok())
    };
    match (kind("rsync"), kind("archive"), kind("restic")) {
        (Some(m), None, None) if m.is_dir() => Some("rsync"),
        (None, Some(m), None) if m.is_file() => Some("archive"),
        (None, None, Some(m)) if m.is_file() => Some("restic"),
        (None, None, None) if policy_engine == "command" => Some("command"),
        _ => None,
    }
}

/// The snapshot time a generation is named after (`20261203T075811Z`, or with a `-N` suffix
/// when that name was taken).
pub fn generation_time(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.split_once('-').map_or(name, |(s, n)| {
        if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() {
            s
        } else {
            ""
        }
    });
    // Only the exact form lvsnap writes (chrono alone would take spaces and short fields).
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
        .filter(|t| super::generation_name(*t) == stamp)
}

/// `name`, or `name-1`, `name-2`, … when files of a generation by that name are already in
/// `dir` (one the catalog lost, say): a backup never writes over another's files.
pub fn free_name(dir: &Path, engine: &str, name: &str) -> String {
    let taken = |n: &str| {
        engines::manifest_path(dir, n).symlink_metadata().is_ok()
            || engines::artifact(engine, dir, n).is_some_and(|a| a.symlink_metadata().is_ok())
    };
    if !taken(name) {
        return name.to_owned();
    }
    (1..)
        .map(|i| format!("{name}-{i}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_with_and_without_a_suffix() {
        let t = generation_time("20261203T075811Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-03T07:58:11+00:00");
        assert_eq!(generation_time("20261203T075811Z-2"), Some(t));
        assert_eq!(generation_time("20261203T075811Z-x"), None);
        assert_eq!(generation_time("notes"), None);
        assert_eq!(generation_time("2026123T075811Z"), None);
        assert_eq!(generation_time(" 20261203T075811Z"), None);
    }

    #[test]
    fn a_taken_name_gets_a_suffix() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            free_name(d.path(), "rsync", "20261203T075811Z"),
            "20261203T075811Z"
        );
        std::fs::write(d.path().join("20261203T075811Z.manifest"), "").unwrap();
        assert_eq!(
            free_name(d.path(), "rsync", "20261203T075811Z"),
            "20261203T075811Z-1"
        );
        std::fs::create_dir(d.path().join("20261203T075811Z-1")).unwrap();
        assert_eq!(
            free_name(d.path(), "rsync", "20261203T075811Z"),
            "20261203T075811Z-2"
        );
    }
}
