//! A thin pool's metadata, as replication reads it: the pool's metadata snapshot (reserved for
//! as short a time as reading two block maps takes, and always released — also after a crash)
//! and the block maps `thin_dump` reads from it.

use std::path::{Path, PathBuf};

use super::map::{parse_dump, BlockMap};
use crate::lvm::{self, Invocation, Runner, Tool};
use crate::run::RunError;

/// Device-mapper's name for LV `lv` of `vg` (LVM doubles every `-` in either name).
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// The pool's metadata snapshot, reserved; released by [`MetadataSnap::release`] or, failing
/// that, when dropped. Once reserved, a marker file in lvsnap's state directory records where
/// the reservation's root is: a reservation a killed lvsnap left (the root still the marker's)
/// is released by the next `send` from that pool — one another tool made is never taken from
/// it. Reservations are made under lvsnap's lock, so no other lvsnap holds one meanwhile.
pub struct MetadataSnap<'r> {
    runner: &'r dyn Runner,
    tpool: String,
    marker: PathBuf,
    held: bool,
}

fn message(tpool: &str, what: &str) -> Invocation {
    Invocation::new(Tool::Dmsetup, ["message", tpool, "0", what])
}

/// The held metadata root of `tpool`, or `None`.
fn held_root(
    runner: &dyn Runner,
    vg: &str,
    pool: &str,
    tpool: &str,
) -> Result<Option<String>, RunError> {
    let inv = Invocation::new(Tool::Dmsetup, ["status", tpool]);
    let status = runner.run(&inv)?;
    lvm::check(&inv, &status).map_err(|e| {
        RunError::Refused(format!(
            "thin pool {vg}/{pool} is not active, so its metadata cannot be read (activate a volume in it): {e}"
        ))
    })?;
    Ok(status
        .stdout
        .split_whitespace()
        .nth(6)
        .filter(|held| *held != "-")
        .map(str::to_owned))
}

fn write_marker(marker: &Path, root: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // The state directory of a host that has only ever received (no catalog yet): made
    // private if it is made here, an existing one left as it is.
    if let Some(dir) = marker.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = crate::private::create_new(marker, 0o600)?;
    f.write_all(root.as_bytes())?;
    f.sync_all()
}

impl<'r> MetadataSnap<'r> {
    /// Reserves the metadata snapshot of pool `vg/pool` (which must be active).
    ///
    /// # Errors
    /// The pool is not active, another tool holds its metadata snapshot, or dmsetup failed.
    pub fn reserve(
        runner: &'r dyn Runner,
        vg: &str,
        pool: &str,
        state_dir: &Path,
    ) -> Result<Self, RunError> {
        let tpool = format!("{}-tpool", dm_name(vg, pool));
        let marker = state_dir.join(format!("metadata-snap.{tpool}"));
        if let Some(root) = held_root(runner, vg, pool, &tpool)? {
            let ours = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == root);
            if !ours {
                return Err(RunError::Refused(format!(
                    "thin pool {vg}/{pool}: another tool holds its metadata snapshot, and lvsnap never releases what it did not reserve; when that tool is done (or if you know the reservation is stale): dmsetup message {tpool} 0 release_metadata_snap"
                )));
            }
            let release = message(&tpool, "release_metadata_snap");
            lvm::check(&release, &runner.run(&release)?)?;
            let _ = std::fs::remove_file(&marker);
            tracing::warn!(pool = %format!("{vg}/{pool}"), "released the pool's metadata snapshot an earlier lvsnap left reserved");
        }
        let reserve = message(&tpool, "reserve_metadata_snap");
        lvm::check(&reserve, &runner.run(&reserve)?)?;
        let mut held = MetadataSnap {
            runner,
            tpool,
            marker,
            held: true,
        };
        let root = held_root(runner, vg, pool, &held.tpool)?;
        if let Err(e) = root
            .ok_or_else(|| "no held root after reserving".to_owned())
            .and_then(|r| write_marker(&held.marker, &r).map_err(|e| e.to_string()))
        {
            let _ = held.release_now();
            return Err(RunError::Refused(format!(
                "thin pool {vg}/{pool}: cannot record the metadata reservation in {}: {e}",
                held.marker.display()
            )));
        }
        Ok(held)
    }

    /// Releases the reservation.
    ///
    /// # Errors
    /// dmsetup failed; the reservation stays, and the next `send` from the pool says so with
    /// the command that releases it.
    pub fn release(mut self) -> Result<(), RunError> {
        self.release_now()
    }

    fn release_now(&mut self) -> Result<(), RunError> {
        if !self.held {
            return Ok(());
        }
        self.held = false;
        // The marker goes first: killed in between, a reservation is left that `send` reports
        // with the command that releases it — never a marker whose root another tool's later
        // reservation could happen to reuse.
        if let Err(e) = std::fs::remove_file(&self.marker) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(marker = %self.marker.display(), "could not remove: {e}");
            }
        }
        let release = message(&self.tpool, "release_metadata_snap");
        lvm::check(&release, &self.runner.run(&release)?)?;
        Ok(())
    }
}

impl Drop for MetadataSnap<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.release_now() {
            tracing::warn!(pool = %self.tpool, "could not release the pool's metadata snapshot: {e}");
        }
    }
}

/// Thin device `thin_id`'s block map in pool `vg/pool`, read from its reserved metadata
/// snapshot.
///
/// # Errors
/// thin_dump failed, or its output lacks the device or is not what lvsnap reads.
pub fn read_map(
    runner: &dyn Runner,
    _held: &MetadataSnap<'_>,
    vg: &str,
    pool: &str,
    thin_id: u64,
) -> Result<BlockMap, RunError> {
    let tmeta = format!("/dev/mapper/{}_tmeta", dm_name(vg, pool));
    let inv = Invocation::new(
        Tool::ThinDump,
        [
            "--metadata-snap".to_owned(),
            "--dev-id".to_owned(),
            thin_id.to_string(),
            tmeta,
        ],
    );
    let done = runner.run(&inv)?;
    lvm::check(&inv, &done)?;
    parse_dump(&done.stdout, thin_id)
        .map_err(|e| RunError::Refused(format!("thin pool {vg}/{pool}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_mapper_names_double_dashes() {
        assert_eq!(dm_name("vg-data", "thin-pool"), "vg--data-thin--pool");
        assert_eq!(dm_name("vg0", "pool"), "vg0-pool");
    }
}
