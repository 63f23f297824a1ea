//! Backups from snapshots. The bracket: pick the newest snapshot (or take a temporary one) →
//! activate it if thin → mount it read-only in a private directory → engine and manifest side by
//! side → commit under the final name → unmount → deactivate / remove the temporary snapshot.
//! Every step is recorded first, so a run after a crash, `kill -9` or a reboot undoes what was
//! left and marks the backup failed. Generations are pruned by the backup's own keep rules with
//! the snapshot planner.

pub mod adopt;
pub mod engines;
mod progress;
pub mod prove;
pub mod restic;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::catalog::{BackupRecord, BackupState, NewBackup, Written, TEMPORARY_NOTE};
use crate::config::BackupEngine;
use crate::config::{BackupPolicy, BackupSource, Policy, VolumeRef};
use crate::cycle::Space;
use crate::lvm::{Inventory, LvKind};
use crate::manifest::{Manifest, Progress, Skip, Walk};
use crate::mount::{MountRequest, Mounted};
use crate::names::shown;
use crate::plan::{is_due, plan_retention, CronTicks, Rules, SnapshotView};
use crate::reconcile::{Fleet, Managed};
use crate::run::{Engine, RunError};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a backup pass is asked to do.
pub struct BackupOptions<'a> {
    /// Only these policies (all with a backup table when empty).
    pub policies: &'a [String],
    /// Only this volume of the policy.
    pub volume: Option<&'a VolumeRef>,
    /// Back up only groups whose backup schedule is due (`run`, the daemon); `backup` backs up
    /// whatever is asked.
    pub due_only: bool,
    pub force: bool,
    pub cancel: &'a AtomicBool,
    /// Show a progress bar (stderr is a terminal).
    pub progress: bool,
    /// The run lock, let go of while a backup copies (none in a dry run).
    pub lock: Option<&'a crate::lock::Held>,
    /// Repositories being opened since before the survey ([`Engine::open_ahead`]).
    pub openings: Option<&'a Openings>,
}

/// restic opening repositories ahead, by policy: `run` starts them before the snapshot cycle
/// and `backup` before the survey, so that restic's key derivation runs beside LVM's work
/// instead of after it. Each is awaited before anything is mounted, as a check made then would
/// be; one that is not needed is killed.
#[derive(Default)]
pub struct Openings(std::cell::RefCell<BTreeMap<String, restic::Opening>>);

/// What happened to one volume's backup.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done {
        name: String,
        snapshot: String,
        bytes: u64,
        files: u64,
        copy_seconds: f64,
        hash_seconds: f64,
        /// How what was written was proven equal to the snapshot.
        proof: prove::Proof,
        /// Entries of the volume not in the backup, with why; any but sockets make it
        /// `partial`.
        skipped: BTreeMap<PathBuf, Skip>,
        /// The restic snapshot it made (engine `restic`).
        restic: Option<Box<restic::Summary>>,
    },
    /// Dry run: what would be backed up.
    Would {
        snapshot: String,
        to: PathBuf,
    },
    NotDue(String),
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct VolumeBackup {
    pub policy: String,
    pub volume: String,
    pub outcome: Outcome,
    /// Generations pruned after it: (name, why no rule keeps it).
    pub pruned: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BackupReport {
    pub dry_run: bool,
    pub volumes: Vec<VolumeBackup>,
    /// What was found and cleaned up after an interrupted earlier backup.
    pub notes: Vec<String>,
}

impl BackupReport {
    /// A volume failed, or its backup is partial: exit status 1.
    pub fn failed(&self) -> bool {
        self.volumes.iter().any(|v| match &v.outcome {
            Outcome::Failed(_) => true,
            Outcome::Done { skipped, .. } => skipped.values().any(|s| s.loses_data()),
            _ => false,
        })
    }
}

/// Skipped entries named in the catalog's note of a partial backup (the manifest has them all).
pub(crate) const SKIPPED_SHOWN: usize = 20;

/// Generations pruned (label, why) and warnings.
type Pruned = (Vec<(String, String)>, Vec<String>);

/// `TARGET/VG/LV`: one directory of generations per volume.
pub fn volume_dir(b: &BackupPolicy, volume: &VolumeRef) -> PathBuf {
    b.target.join(&volume.vg).join(&volume.lv)
}

pub(crate) fn generation_name(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

impl Engine<'_> {
    /// Cleans up after interrupted backups, then backs up every selected volume (due ones only
    /// when `due_only`) and prunes its generations.
    ///
    /// # Errors
    /// The catalog failed; a volume's own failure is in its report.
    pub fn backups(
        &mut self,
        opts: &BackupOptions<'_>,
        inv: &Inventory,
        fleet: &mut Fleet,
        space: &mut Space,
    ) -> Result<BackupReport, RunError> {
        let mut report = BackupReport {
            dry_run: self.dry_run,
            notes: self.release_stale_mounts()?,
            ..BackupReport::default()
        };
        report.notes.extend(self.finish_interrupted(fleet)?);
        report.notes.extend(self.release_stale_staging()?);
        let config = self.config;
        for policy in &config.policies {
            let Some(b) = &policy.backup else { continue };
            if !opts.policies.is_empty() && !opts.policies.contains(&policy.name) {
                continue;
            }
            for volume in &policy.volumes {
                if opts.volume.is_some_and(|v| v != volume) {
                    continue;
                }
                if opts.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok(report);
                }
                let mut vb = VolumeBackup {
                    policy: policy.name.clone(),
                    volume: volume.to_string(),
                    outcome: Outcome::Skipped(String::new()),
                    pruned: Vec::new(),
                    warnings: Vec::new(),
                };
                vb.outcome = match self.backup_volume(
                    policy,
                    b,
                    volume,
                    opts,
                    inv,
                    fleet,
                    space,
                    &mut vb.warnings,
                ) {
                    Ok(o) => o,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                if let Outcome::Failed(why) = &vb.outcome {
                    warn!(policy = %policy.name, volume = %volume, "backup failed: {why}");
                }
                match self.prune_backups(policy, b, volume, opts.force, opts.cancel) {
                    Ok((pruned, warnings)) => {
                        vb.pruned = pruned;
                        vb.warnings.extend(warnings);
                    }
                    Err(e) => vb.warnings.push(format!("pruning backups failed: {e}")),
                }
                report.volumes.push(vb);
            }
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn backup_volume(
        &mut self,
        policy: &Policy,
        b: &BackupPolicy,
        volume: &VolumeRef,
        opts: &BackupOptions<'_>,
        inv: &Inventory,
        fleet: &mut Fleet,
        space: &mut Space,
        warnings: &mut Vec<String>,
    ) -> Result<Outcome, RunError> {
        let history = self.catalog.backups(Some(&policy.name))?;
        let of_volume: Vec<&BackupRecord> = history
            .iter()
            .filter(|r| r.vg == volume.vg && r.origin == volume.lv)
            .collect();
        let complete = || of_volume.iter().filter(|r| r.state.is_usable());
        if let Some(live) = of_volume.iter().find(|r| {
            r.state == BackupState::Running && crate::lock::backup_alive(r.pid, Some(r.id))
        }) {
            return Ok(Outcome::Skipped(format!(
                "a backup of {volume} is in progress (pid {}, {})",
                live.pid.unwrap_or_default(),
                live.label()
            )));
        }
        if opts.due_only && !self.backup_due(policy, b, &of_volume) {
            return Ok(Outcome::NotDue(
                "the newest backup is from the current period".to_owned(),
            ));
        }
        if inv.find(&volume.vg, &volume.lv).is_some_and(|o| o.merging) {
            return Ok(Outcome::Skipped(format!(
                "a merge into {volume} is pending; backups wait until it completes"
            )));
        }
        // Credentials and the repository are checked before a snapshot is taken or mounted.
        // A refusal is recorded as a failed backup, so that `check`, `status` and the metrics
        // see it like any other failure.
        let repository = match &b.engine {
            BackupEngine::Restic(r) if !self.dry_run => {
                let ahead = opts
                    .openings
                    .and_then(|o| o.0.borrow_mut().remove(&policy.name));
                let opened =
                    restic::Restic::open(r, &self.config.settings.state_dir()).and_then(|x| {
                        match ahead {
                            Some(o) => x.opened(o, opts.cancel),
                            None if x.vouched() => return Ok(x),
                            None => x.reachable(opts.cancel),
                        }
                        .map(|vouch| {
                            x.vouch(vouch);
                            x
                        })
                    });
                match opened {
                    Ok(x) => Some(x),
                    Err(why) => {
                        self.record_refused(policy, b, volume, &why)?;
                        return Err(RunError::Refused(why));
                    }
                }
            }
            _ => None,
        };
        let (managed, temporary) = match b.source {
            BackupSource::Newest => {
                let Some(m) = newest_usable(fleet, volume, self.now, policy.future_skew) else {
                    return Err(RunError::Refused(format!(
                        "no snapshot of {volume} to back up; take one with `lvsnap snapshot {}`, or set source = \"fresh\" in [policy.{}.backup]",
                        policy.name, policy.name
                    )));
                };
                if let Some(done) = complete().find(|r| r.snapshot_time >= m.record.time) {
                    return Ok(Outcome::Skipped(format!(
                        "snapshot {} is already backed up ({})",
                        m.record.name,
                        done.label()
                    )));
                }
                (m, false)
            }
            BackupSource::Fresh => {
                let how = crate::cycle::Take {
                    note: Some(TEMPORARY_NOTE),
                    beyond_caps: true,
                    leaving: 0,
                    ..crate::cycle::Take::default()
                };
                let name = self.take(policy, volume, inv, fleet, space, &how)?;
                let m = fleet
                    .managed()
                    .iter()
                    .find(|m| m.record.vg == volume.vg && m.record.name == name)
                    .cloned()
                    .ok_or_else(|| RunError::Refused(format!("snapshot {name} vanished")))?;
                (m, true)
            }
        };
        let dir = volume_dir(b, volume);
        let name = adopt::free_name(&dir, b.engine.name(), &generation_name(managed.record.time));
        if self.dry_run {
            let to = engines::artifact(b.engine.name(), &dir, &name)
                .unwrap_or_else(|| engines::manifest_path(&dir, &name));
            info!(policy = %policy.name, volume = %volume, snapshot = %managed.record.name, to = %to.display(), "would back up");
            return Ok(Outcome::Would {
                snapshot: managed.record.name.clone(),
                to,
            });
        }
        let previous = complete()
            .filter(|r| r.engine == "rsync")
            .filter_map(|r| engines::artifact("rsync", &r.dir, &r.name))
            .rfind(|p| p.is_dir());
        let result = self.bracket(
            policy,
            b,
            volume,
            &managed,
            temporary,
            &dir,
            &name,
            previous.as_deref(),
            repository.as_ref(),
            opts,
        );
        if let (Err(_), Some(r)) = (&result, &repository) {
            r.unvouch();
        }
        if temporary {
            if let Err(e) =
                self.remove(&managed, "temporary snapshot of a backup, no longer needed")
            {
                warnings.push(format!(
                    "cannot remove the temporary snapshot {}: {e}; the next run retries",
                    managed.record.name
                ));
            }
        }
        result
    }

    /// Whether `volume`'s backup is due by its schedule, given its backups `of_volume`.
    fn backup_due(&self, policy: &Policy, b: &BackupPolicy, of_volume: &[&BackupRecord]) -> bool {
        // A backup started while the clock ran ahead does not hold off the next one.
        let last = of_volume
            .iter()
            .filter(|r| r.state.is_usable())
            .map(|r| r.started)
            .filter(|t| !crate::plan::is_future(*t, self.now, policy.future_skew))
            .max();
        let ticks = CronTicks {
            schedule: &b.schedule,
            timezone: policy.timezone,
        };
        is_due(&ticks, self.now, last)
    }

    /// Starts opening the restic repository of each of `policies` (all when empty) that backs
    /// up with restic and, when `due_only`, has a volume whose backup is due. A repository that
    /// cannot even be started on is left to the backup, which reports it.
    pub fn open_ahead(&self, policies: &[String], due_only: bool) -> Openings {
        let openings = Openings::default();
        if self.dry_run {
            return openings;
        }
        let history = self.catalog.backups(None).unwrap_or_default();
        for policy in &self.config.policies {
            let Some(b) = &policy.backup else { continue };
            let BackupEngine::Restic(r) = &b.engine else {
                continue;
            };
            if !policies.is_empty() && !policies.contains(&policy.name) {
                continue;
            }
            let due = || {
                policy.volumes.iter().any(|v| {
                    let of_volume: Vec<&BackupRecord> = history
                        .iter()
                        .filter(|x| x.policy == policy.name && x.vg == v.vg && x.origin == v.lv)
                        .collect();
                    self.backup_due(policy, b, &of_volume)
                })
            };
            if due_only && !due() {
                continue;
            }
            let Ok(x) = restic::Restic::open(r, &self.config.settings.state_dir()) else {
                continue;
            };
            // Credentials that opened the repository last time, unchanged since, are not
            // checked again before the mount.
            if x.vouched() {
                continue;
            }
            if let Ok(o) = x.start_opening() {
                openings.0.borrow_mut().insert(policy.name.clone(), o);
            }
        }
        openings
    }

    /// Records a backup that was refused before it started (no snapshot was read): failed,
    /// with why.
    fn record_refused(
        &mut self,
        policy: &Policy,
        b: &BackupPolicy,
        volume: &VolumeRef,
        why: &str,
    ) -> Result<(), RunError> {
        let now = self.now;
        let dir = volume_dir(b, volume);
        let name = generation_name(now);
        let new = NewBackup {
            policy: &policy.name,
            vg: &volume.vg,
            origin: &volume.lv,
            engine: b.engine.name(),
            dir: &dir,
            name: &name,
            snapshot: "",
            snapshot_time: now,
            temporary: false,
        };
        let id = self.record(|c| c.begin_backup(&new, now))?;
        self.record(|c| c.end_backup(id, BackupState::Failed, why, now))
    }

    /// Mount, copy, commit, unmount — with the backup recorded before anything is written.
    #[allow(clippy::too_many_arguments)]
    fn bracket(
        &mut self,
        policy: &Policy,
        b: &BackupPolicy,
        volume: &VolumeRef,
        managed: &Managed,
        temporary: bool,
        dir: &Path,
        name: &str,
        previous: Option<&Path>,
        repository: Option<&restic::Restic<'_>>,
        opts: &BackupOptions<'_>,
    ) -> Result<Outcome, RunError> {
        crate::private::own_dir(dir).map_err(|e| {
            RunError::Refused(format!(
                "cannot create backup directory {}: {e}",
                dir.display()
            ))
        })?;
        let now = self.now;
        let new = NewBackup {
            policy: &policy.name,
            vg: &volume.vg,
            origin: &volume.lv,
            engine: b.engine.name(),
            dir,
            name,
            snapshot: &managed.record.name,
            snapshot_time: managed.record.time,
            temporary,
        };
        let id = self.record(|c| c.begin_backup(&new, now))?;
        let _running = crate::lock::RunningHere::new(id);
        // From here restic may make a snapshot: it carries a random tag recorded first, by
        // which a run after an interruption finds it (and only it) to forget.
        let run_tag = match repository {
            Some(_) => {
                let tag = restic::run_tag().map_err(RunError::Refused)?;
                self.record(|c| c.set_run_tag(id, &tag))?;
                self.record(|c| c.set_remote_pending(id, true))?;
                Some(tag)
            }
            None => None,
        };
        let thin = managed.record.thin;
        let active = managed.lv.as_ref().is_some_and(|l| l.active);
        let mount_dir = mount_dir(&self.config.settings.runtime_dir, id);
        let mounted = match self.mount_snapshot(&MountRequest {
            vg: &volume.vg,
            lv: &managed.record.name,
            activate: thin && !active,
            dir: &mount_dir,
            purpose: "backup",
            backup_id: Some(id),
            context: policy.mount_context.as_ref(),
        }) {
            Ok(m) => m,
            Err(e) => {
                let why = e.to_string();
                self.record(|c| c.end_backup(id, BackupState::Failed, &why, now))?;
                return Err(e);
            }
        };
        info!(policy = %policy.name, volume = %volume, snapshot = %managed.record.name, engine = %b.engine, to = %dir.join(name).display(), "backing up");
        // The copy may take hours: scheduled snapshot runs go on meanwhile. The mount keeps the
        // snapshot busy (never pruned) and the records carry this process's pid, so a run in
        // between leaves this backup alone.
        if let Some(l) = opts.lock {
            l.release();
        }
        // The previous backup is restic's parent, and its files' digests the manifest's, unless
        // the volume was rolled back since its snapshot: a merge brings back earlier inodes and
        // change times with the content they had then, which neither may take as unchanged.
        let previous_remote = self
            .catalog
            .backups(Some(&policy.name))
            .ok()
            .and_then(|all| {
                all.into_iter().rfind(|x| {
                    x.vg == volume.vg
                        && x.origin == volume.lv
                        && x.engine == "restic"
                        && x.state.is_usable()
                        && x.remote_id.is_some()
                })
            });
        // Read everything when in doubt: a catalog that cannot say counts as rolled back.
        let rolled_back = previous_remote.as_ref().is_some_and(|p| {
            self.catalog.rollbacks(false).map_or(true, |all| {
                all.iter().any(|r| {
                    r.vg == volume.vg
                        && r.origin == volume.lv
                        && (r.requested >= p.snapshot_time
                            || r.completed.is_none_or(|c| c >= p.snapshot_time))
                })
            })
        });
        // A backup that found content its cached digests did not match asked for this.
        let asked = dir.join(crate::manifest::cache::READ_ALL).exists();
        let reread_all = rolled_back || asked;
        if reread_all {
            info!(volume = %volume, "{}: restic and the manifest read every file", if rolled_back { "rolled back since the previous backup" } else { "the previous backup found files restic's change test missed" });
        }
        // The snapshot's time as LVM recorded it too: the earlier of the two bounds which files
        // may have changed after the snapshot within the same clock tick.
        let taken = managed
            .lv
            .as_ref()
            .map_or(managed.record.time, |l| l.time.min(managed.record.time));
        let remote = repository.map(|r| Remote {
            restic: r,
            parent: previous_remote
                .filter(|_| !reread_all)
                .and_then(|p| p.remote_id),
            reread_all,
            taken,
            time: managed.record.time,
            tags: vec![
                restic::TAG.to_owned(),
                format!("lvsnap-policy={}", policy.name),
                format!("lvsnap-volume={volume}"),
                format!("lvsnap-snapshot={}", managed.record.name),
                format!("lvsnap-run={}", run_tag.as_deref().unwrap_or_default()),
            ],
        });
        let mut unmounted = None;
        let copied = {
            // Once: restic's copy is listed while the snapshot is unmounted ([`copy`]); the
            // other engines' are read back from it first. The unmount is made under the run
            // lock, which is let go of again while restic lists.
            let mut done_with_mount = || {
                if unmounted.is_some() {
                    return;
                }
                if let Some(l) = opts.lock {
                    if let Err(e) = l.reacquire() {
                        warn!("{e}; unmounting without the lock");
                    }
                }
                unmounted = Some(self.unmount(&mounted));
                if let Some(l) = opts.lock {
                    l.release();
                }
            };
            let job = CopyJob {
                b,
                mounted: &mounted,
                dir,
                name,
                previous,
                remote: remote.as_ref(),
                opts,
            };
            let copied = copy(&job, &mut done_with_mount);
            done_with_mount();
            copied
        };
        if let Some(l) = opts.lock {
            if let Err(e) = l.reacquire() {
                warn!("{e}; recording without the lock");
            }
        }
        let unmounted = unmounted.expect("unmounted once the copy is done");
        self.now = Utc::now().max(now);
        let finished = self.now;
        match copied {
            Ok(c) => {
                let (files, bytes) =
                    self.complete(id, &c.manifest, &c.text, c.restic.as_ref(), finished)?;
                if c.manifest.lost_data() {
                    warn!(policy = %policy.name, volume = %volume, files, bytes, skipped = c.manifest.skipped.len(), "backup partial: entries of the volume could not be backed up");
                } else {
                    info!(policy = %policy.name, volume = %volume, files, bytes, copy_seconds = c.copy_seconds, hash_seconds = c.hash_seconds, "backup complete");
                }
                if let Err(e) = unmounted {
                    warn!(dir = %mounted.dir.display(), "backup complete, but unmounting failed: {e}; the next run retries");
                }
                Ok(Outcome::Done {
                    name: name.to_owned(),
                    snapshot: managed.record.name.clone(),
                    bytes,
                    files,
                    copy_seconds: c.copy_seconds,
                    hash_seconds: c.hash_seconds,
                    proof: c.proof,
                    skipped: c.manifest.skipped.clone(),
                    restic: c.restic.map(Box::new),
                })
            }
            Err(why) => {
                engines::remove_partials(b.engine.name(), dir, name);
                let why = match unmounted {
                    Ok(()) => why,
                    Err(e) => format!("{why}; unmounting also failed: {e}"),
                };
                self.record(|c| c.end_backup(id, BackupState::Failed, &why, finished))?;
                Err(RunError::Refused(why))
            }
        }
    }

    /// Records a backup complete with its manifest's totals and digest; returns (files, bytes).
    fn complete(
        &mut self,
        id: i64,
        manifest: &Manifest,
        text: &str,
        remote: Option<&restic::Summary>,
        at: DateTime<Utc>,
    ) -> Result<(u64, u64), RunError> {
        let (files, bytes) = manifest.totals();
        let digest = crate::manifest::sha256_hex(text.as_bytes());
        let note = manifest.skipped_note(SKIPPED_SHOWN);
        let written = Written {
            bytes,
            files,
            manifest_sha256: &digest,
            state: if manifest.lost_data() {
                BackupState::Partial
            } else {
                BackupState::Complete
            },
            note: note.as_deref(),
            remote: remote.map(|s| (s.id.as_str(), s.data_added)),
        };
        self.record(|c| c.complete_backup(id, &written, at))?;
        Ok((files, bytes))
    }

    /// Backups a crashed or killed lvsnap left `running`: data committed under its final name
    /// with its manifest is complete; anything else is failed and its partial files removed.
    /// A temporary snapshot of such a backup is removed.
    fn finish_interrupted(&mut self, fleet: &mut Fleet) -> Result<Vec<String>, RunError> {
        let mut notes = Vec::new();
        let now = self.now;
        for r in self.catalog.backups(None)? {
            if r.state != BackupState::Running {
                continue;
            }
            if let Some(pid) = r
                .pid
                .filter(|_| crate::lock::backup_alive(r.pid, Some(r.id)))
            {
                notes.push(format!("backup {} is in progress (pid {pid})", r.label()));
                continue;
            }
            if self.dry_run {
                notes.push(format!("would clean up interrupted backup {}", r.label()));
                continue;
            }
            let manifest = engines::manifest_path(&r.dir, &r.name);
            let data = engines::artifact(&r.engine, &r.dir, &r.name);
            let committed = manifest.exists() && data.as_ref().is_none_or(|d| d.exists());
            let parsed = committed
                .then(|| engines::read_text(&manifest).ok())
                .flatten()
                .and_then(|t| Manifest::from_text(&t).ok().map(|m| (t, m)));
            let record = match (&data, r.engine.as_str()) {
                (Some(d), "restic") => restic::read_record(d).ok(),
                _ => None,
            };
            if let Some((text, m)) = parsed.filter(|_| r.engine != "restic" || record.is_some()) {
                self.complete(r.id, &m, &text, record.as_ref().map(|x| &x.summary), now)?;
                notes.push(format!(
                    "backup {} had completed before an interruption",
                    r.label()
                ));
            } else {
                engines::remove_partials(&r.engine, &r.dir, &r.name);
                self.record(|c| {
                    c.end_backup(
                        r.id,
                        BackupState::Failed,
                        "interrupted: lvsnap stopped mid-backup; its partial files were removed",
                        now,
                    )
                })?;
                notes.push(format!(
                    "backup {} was interrupted: marked failed, partial files removed",
                    r.label()
                ));
            }
            if r.engine == "restic" {
                notes.extend(self.unlock_after(&r));
                let dir = mount_dir(&self.config.settings.runtime_dir, r.id);
                let _ = engines::remove_path(&excludes_dir(&dir));
            }
            if r.temporary {
                let temp = fleet
                    .managed()
                    .iter()
                    .find(|m| m.record.vg == r.vg && m.record.name == r.snapshot)
                    .cloned();
                if let Some(m) = temp {
                    self.remove(&m, "temporary snapshot of an interrupted backup")?;
                    fleet.retain(|x| x.record.id != m.record.id);
                    notes.push(format!(
                        "removed the temporary snapshot {}/{} of that backup",
                        r.vg, r.snapshot
                    ));
                }
            }
        }
        notes.extend(self.remove_stray_temporaries(fleet)?);
        Ok(notes)
    }

    /// The restic that an interrupted backup ran died with lvsnap and left its lock in the
    /// repository: `restic unlock` removes it (it removes only locks whose process is gone).
    /// A snapshot restic finished before the interruption is forgotten when the volume's
    /// backups are next pruned.
    fn unlock_after(&self, r: &BackupRecord) -> Option<String> {
        let repo = self.config.restic_repository(&r.policy)?;
        let unlocked =
            restic::Restic::open(repo, &self.config.settings.state_dir()).and_then(|x| {
                x.run(
                    &["unlock".into()],
                    None,
                    &AtomicBool::new(false),
                    &mut |_| {},
                )
                .map_err(|(_, why)| why)
            });
        Some(match unlocked {
            Ok(()) => format!(
                "removed stale locks from restic repository {}",
                restic::shown_repository(&repo.repository)
            ),
            Err(e) => format!(
                "cannot remove stale locks from restic repository {}: {e}",
                restic::shown_repository(&repo.repository)
            ),
        })
    }

    /// Temporary snapshots no live backup uses: lvsnap died between taking one and recording its
    /// backup, or its removal failed. Each was recorded (with its intent) before it was created,
    /// so it is found here and removed, whatever happened; one whose removal fails again is
    /// retried by the next run.
    fn remove_stray_temporaries(&mut self, fleet: &mut Fleet) -> Result<Vec<String>, RunError> {
        let in_use: Vec<(String, String)> = self
            .catalog
            .backups(None)?
            .into_iter()
            .filter(|r| r.state == BackupState::Running)
            .filter(|r| crate::lock::backup_alive(r.pid, Some(r.id)))
            .map(|r| (r.vg, r.snapshot))
            .collect();
        let strays: Vec<Managed> = fleet
            .managed()
            .iter()
            .filter(|m| m.record.is_temporary() && m.lv.is_some())
            .filter(|m| !in_use.contains(&(m.record.vg.clone(), m.record.name.clone())))
            .cloned()
            .collect();
        let mut notes = Vec::new();
        for m in strays {
            let label = format!("{}/{}", m.record.vg, m.record.name);
            if self.dry_run {
                notes.push(format!(
                    "would remove the leftover temporary snapshot {label}"
                ));
                continue;
            }
            match self.remove(&m, "temporary snapshot no backup uses any more") {
                Ok(()) => {
                    fleet.retain(|x| x.record.id != m.record.id);
                    notes.push(format!("removed the leftover temporary snapshot {label}"));
                }
                Err(e) => notes.push(format!(
                    "cannot remove the leftover temporary snapshot {label}: {e}; the next run retries"
                )),
            }
        }
        Ok(notes)
    }

    /// Removes the generations of one volume that the backup's keep rules no longer keep.
    fn prune_backups(
        &mut self,
        policy: &Policy,
        b: &BackupPolicy,
        volume: &VolumeRef,
        force: bool,
        cancel: &AtomicBool,
    ) -> Result<Pruned, RunError> {
        let of_volume: Vec<BackupRecord> = self
            .catalog
            .backups(Some(&policy.name))?
            .into_iter()
            .filter(|r| r.vg == volume.vg && r.origin == volume.lv)
            .collect();
        let members: Vec<BackupRecord> = of_volume
            .iter()
            .filter(|r| r.state.is_usable())
            .cloned()
            .collect();
        let views: Vec<SnapshotView> = members
            .iter()
            .map(|r| SnapshotView::new(r.name.clone(), r.snapshot_time))
            .collect();
        let rules = Rules {
            keep: b.keep.clone(),
            ..Rules::from(policy)
        };
        let plan = plan_retention(self.now, &rules, &views);
        let mut warnings = Vec::new();
        if let Some(g) = &plan.guard {
            if plan.removals(force).count() == 0 && plan.decisions.iter().any(|d| !d.keep) {
                warnings.push(format!("backups of {volume}: {g}"));
            }
        }
        // While the newest generations are partial, the newest complete one is the only one
        // that holds what they lack: no rule removes it.
        let newest_complete = members
            .iter()
            .filter(|r| r.state == BackupState::Complete)
            .max_by_key(|r| (r.snapshot_time, r.id))
            .filter(|c| {
                members
                    .iter()
                    .any(|r| r.state == BackupState::Partial && r.snapshot_time > c.snapshot_time)
            })
            .map(|c| c.id);
        let mut pruned = Vec::new();
        let removals: Vec<_> = plan
            .removals(force)
            .filter(|d| {
                let r = &members[d.index];
                if Some(r.id) == newest_complete {
                    warnings.push(format!(
                        "kept backup {}: it is the newest complete one, and the newer ones are partial",
                        r.label()
                    ));
                }
                Some(r.id) != newest_complete
            })
            .cloned()
            .collect();
        // A restic backup is recorded removed (and its snapshot pending in the repository)
        // before it is forgotten there: killed in between, the catalog never calls a backup
        // complete whose snapshot is gone, and the next run forgets what is still pending.
        let mut marked = Vec::new();
        if let BackupEngine::Restic(repo) = &b.engine {
            if !self.dry_run {
                let now = self.now;
                for d in &removals {
                    let r = &members[d.index];
                    if r.engine != "restic" {
                        continue;
                    }
                    let mut note = format!(
                        "pruned: {}",
                        plan.explain_removal(d, &views, &rules).join("; ")
                    );
                    // A backup made before the policy named another repository (or the same
                    // one spelled otherwise): it is forgotten if the repository holds it, and
                    // otherwise the note says where it was made (see forget_pending).
                    let here = restic::shown_repository(&repo.repository);
                    if let Some(x) = engines::artifact("restic", &r.dir, &r.name)
                        .and_then(|p| restic::read_record(&p).ok())
                        .filter(|x| x.repository != here)
                    {
                        note.push_str(MADE_IN);
                        note.push_str(&x.repository);
                    }
                    self.record(|c| c.end_backup(r.id, BackupState::Removed, &note, now))?;
                    self.record(|c| c.set_remote_pending(r.id, true))?;
                    marked.push(r.id);
                }
                match self.forget_pending(&policy.name, repo, volume, cancel) {
                    Ok(w) => warnings.extend(w),
                    Err(e) => {
                        warnings.push(format!("backups of {volume}: {e}; the next run retries"));
                    }
                }
            }
        }
        for d in removals {
            let r = &members[d.index];
            let why = plan.explain_removal(&d, &views, &rules).join("; ");
            if self.dry_run {
                pruned.push((r.label(), why));
                continue;
            }
            let data = engines::artifact(&r.engine, &r.dir, &r.name);
            let doomed = engines::partial(&r.engine, &r.dir, &r.name);
            let manifest = engines::manifest_path(&r.dir, &r.name);
            // A restic backup of a policy that no longer backs up with restic: its snapshot
            // stays in that repository, out of lvsnap's reach; the note and a warning say so.
            let left_in = (r.engine == "restic" && !marked.contains(&r.id))
                .then(|| data.as_deref().and_then(|p| restic::read_record(p).ok()))
                .flatten();
            // The data leaves its final name at once (a rename), then the manifest goes, then
            // the data: interrupted anywhere, no final name is left on half a generation, so
            // nothing can take it for a whole one (`catalog rebuild` adopts final names only).
            let removed = match (&data, &doomed) {
                (Some(d), Some(p)) if d.symlink_metadata().is_ok() => std::fs::rename(d, p),
                _ => Ok(()),
            }
            .and_then(|()| engines::remove_path(&manifest))
            .and_then(|()| doomed.iter().try_for_each(|p| engines::remove_path(p)));
            match removed {
                Ok(()) => {
                    let now = self.now;
                    let mut note = format!("pruned: {why}");
                    if let Some(x) = &left_in {
                        note.push_str(MADE_IN);
                        note.push_str(&x.repository);
                        warnings.push(format!(
                            "backup {} is pruned, but its restic snapshot {} stays in repository {}, as policy {} no longer backs up with restic: `restic -r {} forget {}` removes it",
                            r.label(),
                            restic::short(&x.summary.id),
                            x.repository,
                            policy.name,
                            x.repository,
                            x.summary.id
                        ));
                    }
                    if !marked.contains(&r.id) {
                        self.record(|c| c.end_backup(r.id, BackupState::Removed, &note, now))?;
                    }
                    info!(policy = %policy.name, volume = %volume, backup = %r.label(), "pruned backup");
                    pruned.push((r.label(), why));
                }
                Err(e) => warnings.push(format!("cannot remove backup {}: {e}", r.label())),
            }
        }
        if let BackupEngine::Restic(repo) = &b.engine {
            if !self.dry_run {
                if let Err(e) = self.prune_repository(policy, repo, cancel, &mut warnings) {
                    warnings.push(e);
                }
            }
        }
        Ok((pruned, warnings))
    }

    /// Forgets in the repository what the catalog holds as pending there for this volume: the
    /// snapshots of pruned backups, and a snapshot restic finished for a backup that then
    /// failed (found by the backup's random `lvsnap-run=` tag). Nothing else is forgotten.
    fn forget_pending(
        &mut self,
        policy: &str,
        repo: &crate::config::ResticRepo,
        volume: &VolumeRef,
        cancel: &AtomicBool,
    ) -> Result<Vec<String>, String> {
        // This policy's records only: another policy backing up the volume has a repository of
        // its own, where its pending snapshots are forgotten by its own prune.
        let records: Vec<BackupRecord> = self
            .catalog
            .backups(Some(policy))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| r.vg == volume.vg && r.origin == volume.lv && r.engine == "restic")
            .collect();
        let pending: Vec<&BackupRecord> = records
            .iter()
            .filter(|r| r.remote_pending)
            .filter(|r| matches!(r.state, BackupState::Removed | BackupState::Failed))
            .collect();
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let restic = restic::Restic::open(repo, &self.config.settings.state_dir())?;
        let listed = restic.snapshots(&[], None, cancel)?;
        // A snapshot a usable backup stands on is never forgotten, whatever its tags say.
        let kept: Vec<&str> = records
            .iter()
            .filter(|r| r.state.is_usable())
            .filter_map(|r| r.remote_id.as_deref())
            .collect();
        let mut ids = Vec::new();
        for r in &pending {
            match (r.state, &r.remote_id, &r.run_tag) {
                (BackupState::Removed, Some(id), _) => ids.push(id.clone()),
                (BackupState::Failed, None, Some(tag)) => {
                    let tag = format!("lvsnap-run={tag}");
                    ids.extend(
                        listed
                            .iter()
                            .filter(|l| l.hostname == restic.host && l.tags.contains(&tag))
                            .map(|l| l.id.clone()),
                    );
                }
                _ => {}
            }
        }
        ids.retain(|id| !kept.contains(&id.as_str()));
        ids.sort();
        ids.dedup();
        // A snapshot made in another repository than this one is out of reach: said, once.
        let here = restic::shown_repository(&repo.repository);
        let mut warnings = Vec::new();
        for r in &pending {
            let (Some(id), Some(other)) = (
                &r.remote_id,
                r.error
                    .as_deref()
                    .and_then(|n| n.rsplit_once(MADE_IN))
                    .map(|(_, o)| o),
            ) else {
                continue;
            };
            if !listed.iter().any(|l| &l.id == id) {
                warnings.push(format!(
                    "backup {} is pruned, but its restic snapshot {} is not in repository {here}: it was made in repository {other}, which policy {} no longer names; `restic -r {other} forget {id}` removes it there",
                    r.label(),
                    restic::short(id),
                    r.policy
                ));
            }
        }
        let forgot = restic.forget(&ids, &listed, cancel)?;
        for r in &pending {
            self.catalog
                .set_remote_pending(r.id, false)
                .map_err(|e| e.to_string())?;
        }
        if forgot > 0 {
            self.catalog
                .note_repository(&restic::shown_repository(&repo.repository), None)
                .map_err(|e| e.to_string())?;
            info!(repository = %restic::shown_repository(&repo.repository), snapshots = forgot, "forgot restic snapshots");
        }
        Ok(warnings)
    }

    /// Prunes the repository when its `prune-schedule` is due and lvsnap has forgotten
    /// snapshots since the last prune: a prune takes an exclusive lock on a repository that
    /// other hosts may share, and is only worth it when there is data to free.
    fn prune_repository(
        &mut self,
        policy: &Policy,
        repo: &crate::config::ResticRepo,
        cancel: &AtomicBool,
        warnings: &mut Vec<String>,
    ) -> Result<(), String> {
        let (last, pending) = self
            .catalog
            .repository_prune(&restic::shown_repository(&repo.repository))
            .map_err(|e| e.to_string())?;
        // A prune recorded while the clock ran ahead does not count: it would hold off every
        // prune until the clock caught up with it.
        let future = |t: &DateTime<Utc>| crate::plan::is_future(*t, self.now, policy.future_skew);
        if let Some(t) = last.filter(|t| pending && future(t)) {
            warnings.push(format!(
                "the last prune of restic repository {} is recorded at {}, in the future (the clock ran ahead then); it is not counted",
                restic::shown_repository(&repo.repository),
                crate::units::utc(t)
            ));
        }
        let last = last.filter(|t| !future(t));
        let ticks = CronTicks {
            schedule: &repo.prune_schedule,
            timezone: policy.timezone,
        };
        if !pending || !is_due(&ticks, self.now, last) {
            return Ok(());
        }
        let restic = restic::Restic::open(repo, &self.config.settings.state_dir())?;
        info!(repository = %restic::shown_repository(&repo.repository), "pruning the restic repository");
        restic.prune(cancel).map_err(|e| {
            format!(
                "pruning restic repository {} failed: {e}",
                restic::shown_repository(&repo.repository)
            )
        })?;
        let now = Utc::now().max(self.now);
        self.catalog
            .note_repository(&restic::shown_repository(&repo.repository), Some(now))
            .map_err(|e| e.to_string())
    }
}

/// How the note of a pruned restic backup names the repository its snapshot was made in, when
/// that is not the one its policy names now.
const MADE_IN: &str = "; made in restic repository ";

/// The newest valid snapshot of a volume that is not merging.
/// A snapshot dated in the future is no candidate: it would be backed up again and again as
/// "the newest" while the real ones wait.
fn newest_usable(
    fleet: &Fleet,
    volume: &VolumeRef,
    now: DateTime<Utc>,
    skew: chrono::Duration,
) -> Option<Managed> {
    fleet
        .group(&volume.vg, &volume.lv)
        .filter(|m| m.is_valid() && !m.lv.as_ref().is_some_and(|l| l.merging))
        .filter(|m| !crate::plan::is_future(m.record.time, now, skew))
        .filter(|m| m.lv.as_ref().is_none_or(|l| l.kind != LvKind::ThinPool))
        .max_by_key(|m| (m.record.time, m.record.id))
        .cloned()
}

struct Copied {
    manifest: Manifest,
    text: String,
    copy_seconds: f64,
    hash_seconds: f64,
    proof: prove::Proof,
    restic: Option<restic::Summary>,
}

/// A backup into a restic repository: the repository, the snapshot's time and its tags.
struct Remote<'a> {
    restic: &'a restic::Restic<'a>,
    /// The restic snapshot of the newest complete backup of the volume.
    parent: Option<String>,
    /// Read every file again (restic's `--force`, no digests kept from before).
    reread_all: bool,
    /// The earliest time the snapshot may have been taken at.
    taken: DateTime<Utc>,
    time: DateTime<Utc>,
    tags: Vec<String>,
}

/// The longest path below the volume's root that is backed up, measured as an rsync pattern
/// (escaped, so never shorter than the path): it fits below each of `roots` within the kernel's
/// limit, and the pattern of an entry skipped for being longer (its parent's, a slash and a
/// name of at most 255 bytes, escaped to at most 510) still fits in an rsync exclude, which
/// rsync caps at the same 4096 bytes.
fn path_budget(roots: &[&Path]) -> usize {
    const NAME_MAX: usize = 255;
    let longest = roots.iter().map(|r| r.as_os_str().len()).max().unwrap_or(0);
    let pattern = crate::manifest::PATH_MAX - 2 - (2 * NAME_MAX + 1);
    crate::manifest::PATH_MAX
        .saturating_sub(longest + 2)
        .min(pattern)
}

/// The engine and the manifest side by side (both read the snapshot; the page cache serves the
/// second reader), then the commit. restic starts before the snapshot's tree is walked and is
/// told what the walk leaves out when it is done ([`restic::Late`]); the other engines start
/// after the walk.
fn copy(job: &CopyJob<'_>, done_with_mount: &mut dyn FnMut()) -> Result<Copied, String> {
    let CopyJob {
        b,
        mounted,
        dir,
        name,
        remote,
        opts,
        ..
    } = *job;
    // What cannot be taken (unreadable, too long, a socket for the archive) is known before
    // anything is copied and left out of the copy too: the manifest and the generation then
    // describe the same tree.
    let walk = Walk {
        exclude: &b.exclude,
        budget: Some(path_budget(&[
            &mounted.dir,
            &dir.join(name),
            &engines::partial("rsync", dir, name).expect("a directory"),
        ])),
        probe: true,
        no_sockets: matches!(b.engine, BackupEngine::Archive),
        as_patterns: true,
        identities: remote.is_some(),
    };
    let walk = || {
        let start = Instant::now();
        let walked = Manifest::walk(&mounted.dir, &walk)
            .map_err(|e| format!("cannot read the snapshot {}: {e}", mounted.dir.display()));
        tracing::debug!(ms = start.elapsed().as_millis(), "read the snapshot's tree");
        walked
    };
    let restic_progress = Progress::default();
    let Some(r) = remote else {
        return copy_walked(job, walk()?, None, &restic_progress, done_with_mount);
    };
    let late = restic::Late::new(excludes_dir(&mounted.dir))
        .map_err(|e| format!("cannot make a FIFO for restic's excludes: {e}"))?;
    std::thread::scope(|s| {
        // However this scope is left (an error, a panic), restic does not go on alone: it is
        // interrupted before the scope waits for it.
        let _abandon = Abandon(&late);
        let run = s.spawn(|| {
            let start = Instant::now();
            let ran = r.restic.backup(
                &restic::Source {
                    dir: &mounted.dir,
                    time: r.time,
                    tags: &r.tags,
                    exclude: &b.exclude,
                    parent: r.parent.as_deref(),
                    reread_all: r.reread_all,
                    late: Some(&late),
                },
                opts.cancel,
                &restic_progress,
            );
            late.ended();
            ran.map(|summary| (summary, start.elapsed().as_secs_f64()))
        });
        // Beside restic from its start: the walk's result reaches restic through the FIFO.
        let (tx, rx) = std::sync::mpsc::channel();
        let (late, cancel) = (&late, opts.cancel);
        s.spawn(move || late.give(&mounted.dir, &rx, cancel));
        let walked = walk();
        let _ = tx.send(walked.as_ref().map_err(Clone::clone).map(|w| {
            w.skipped()
                .iter()
                .filter(|(_, why)| **why != Skip::NotStored)
                .map(|(p, _)| p.clone())
                .collect()
        }));
        let walked = match walked {
            Ok(w) => w,
            Err(e) => return Err(e),
        };
        // restic that failed already (a repository that does not open, with credentials that
        // opened it before) fails the backup before the volume is read for the manifest.
        let run = if run.is_finished() {
            let ran = run.join().expect("the restic thread does not panic")?;
            Box::new(move || Ok(ran)) as Started<'_>
        } else {
            Box::new(move || run.join().expect("the restic thread does not panic"))
        };
        copy_walked(job, walked, Some(run), &restic_progress, done_with_mount)
    })
}

/// Stops restic's run when dropped ([`restic::Late::abandon`]).
struct Abandon<'a>(&'a restic::Late);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// `RUNTIME/backup/ID`: where backup `id` mounts its snapshot.
fn mount_dir(runtime_dir: &Path, id: i64) -> PathBuf {
    runtime_dir.join("backup").join(id.to_string())
}

/// `RUNTIME/backup/ID.excludes`, beside the backup's mount point `RUNTIME/backup/ID`: the FIFO
/// of [`restic::Late`].
fn excludes_dir(mount_dir: &Path) -> PathBuf {
    let mut d = mount_dir.as_os_str().to_owned();
    d.push(".excludes");
    PathBuf::from(d)
}

/// One backup's copy: the policy, the mounted snapshot, the generation to write, the previous
/// one (rsync links to it), the repository (restic).
#[derive(Clone, Copy)]
struct CopyJob<'a> {
    b: &'a BackupPolicy,
    mounted: &'a Mounted,
    dir: &'a Path,
    name: &'a str,
    previous: Option<&'a Path>,
    remote: Option<&'a Remote<'a>>,
    opts: &'a BackupOptions<'a>,
}

/// restic's run, started before the walk: its summary and seconds.
type Started<'a> = Box<dyn FnOnce() -> Result<(restic::Summary, f64), String> + 'a>;

fn copy_walked(
    job: &CopyJob<'_>,
    walked: crate::manifest::Walked,
    started: Option<Started<'_>>,
    restic_progress: &Progress,
    done_with_mount: &mut dyn FnMut(),
) -> Result<Copied, String> {
    let CopyJob {
        b,
        mounted,
        dir,
        name,
        previous,
        remote,
        opts,
    } = *job;
    let snapshot = format!("{}/{}", mounted.vg, mounted.lv);
    let job = engines::Job {
        engine: &b.engine,
        source: &mounted.dir,
        dir,
        name,
        previous,
        exclude: &b.exclude,
        snapshot: &snapshot,
        cancel: opts.cancel,
        written: None,
        // `prove` below reads back every file before the commit.
        read_back: true,
    };
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let left_out = walked.skipped().clone();
    // Sockets are not passed: tar leaves them out on its own.
    let exclude: Vec<PathBuf> = b
        .exclude
        .iter()
        .chain(
            left_out
                .iter()
                .filter(|(_, why)| **why != Skip::NotStored)
                .map(|(p, _)| p),
        )
        .cloned()
        .collect();
    let job = engines::Job {
        exclude: &exclude,
        ..job
    };
    let progress = Progress::default();
    let mut summary = None;
    let mut started = started;
    // What rsync has written is read back while it goes on copying: each file it names is
    // compared with the snapshot (and counts as proven by the manifest's digest of it).
    let gen = engines::partial("rsync", dir, name).expect("a directory");
    let early = prove::EarlyReads::default();
    let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
    let rx = Mutex::new(rx);
    // restic reads again only files changed since its parent snapshot; the manifest takes the
    // digests of the others from the previous backup's, rather than read the whole volume.
    let digests = dir.join(crate::manifest::cache::FILE);
    // Without a parent (the first backup, or one that reads everything) nothing in a cache can
    // be trusted to describe this volume.
    let cache = match remote {
        Some(r) if !r.reread_all && r.parent.is_some() => {
            crate::manifest::DigestCache::load(&digests)
        }
        Some(_) => {
            // Gone before anything is read: killed after this, no later backup may take it.
            match std::fs::remove_file(&digests) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", digests.display())),
            }
            crate::manifest::DigestCache::default()
        }
        None => crate::manifest::DigestCache::default(),
    };
    let identities = remote.map(|_| walked.identities().clone());
    let (written, hashed) = std::thread::scope(|s| {
        let hasher = s.spawn(|| {
            let start = Instant::now();
            let (m, reused, stale) = walked.hash_cached(workers, Some(&progress), &cache);
            (m, reused, stale, start.elapsed().as_secs_f64())
        });
        let readers: Vec<_> = (0..workers.div_ceil(2))
            .map(|_| {
                s.spawn(|| {
                    prove::read_back_as_written(&mounted.dir, &gen, &rx, &early, opts.cancel)
                })
            })
            .collect();
        // restic reports its own progress; the bar shows it rather than the manifest's reading.
        let shown = if remote.is_some() {
            restic_progress
        } else {
            &progress
        };
        let bar = opts.progress.then(|| progress::Bar::start(s, shown));
        let start = Instant::now();
        let on_written = |rel: PathBuf| {
            let _ = tx.send(rel);
        };
        let job = engines::Job {
            written: matches!(b.engine, BackupEngine::Rsync).then_some(&on_written as _),
            ..job
        };
        let written = match started.take() {
            Some(run) => run().map(|(s, seconds)| {
                summary = Some(s);
                seconds
            }),
            None => engines::write(&job).map(|()| start.elapsed().as_secs_f64()),
        };
        drop(tx);
        let hashed = hasher.join().expect("the hashing thread does not panic");
        for r in readers {
            r.join().expect("a reading thread does not panic");
        }
        if let Some(bar) = bar {
            bar.finish();
        }
        (written, hashed)
    });
    let copy_seconds = written?;
    let (manifest, reused, stale, hash_seconds) = hashed;
    if let Some(p) = manifest.skipped.keys().find(|p| !left_out.contains_key(*p)) {
        return Err(format!(
            "{} could be opened but not read to its end in the snapshot (an I/O error?); the engine copied it, so the backup cannot be proven; check the volume",
            shown(p)
        ));
    }
    let early = early.into_inner().expect("reads");
    if let (Some(r), Some(mut summary)) = (remote, summary) {
        // What restic stored is listed back and compared with the manifest (types, modes,
        // owners, sizes, times); its content is read back by `verify --read-data`.
        if !stale.is_empty() {
            // restic decides what to read again by the signs the cache is keyed by: it kept the
            // earlier content of these files. This snapshot is not a backup of the volume; the
            // next one reads every file. The mark is made (and synced) before the cache goes:
            // without it, the cache stays and the next backup finds the same files again.
            let names: Vec<String> = stale.iter().take(10).map(|p| shown(p)).collect();
            let found = format!(
                "{} file(s) hold other content than their unchanged inode, change time, size and mtime say ({}{}), so restic kept their earlier content in snapshot {}",
                stale.len(),
                names.join(", "),
                if stale.len() > 10 { ", …" } else { "" },
                restic::short(&summary.id)
            );
            let mark = dir.join(crate::manifest::cache::READ_ALL);
            let marked = match crate::private::create_new(&mark, 0o600) {
                Ok(f) => f.sync_all(),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
            .and_then(|()| std::fs::File::open(dir)?.sync_all());
            if let Err(e) = marked {
                return Err(format!(
                    "{found}; the backup is failed, and the next one finds them again (cannot ask it to read every file: {e})"
                ));
            }
            let _ = std::fs::remove_file(&digests);
            return Err(format!(
                "{found}; the backup is failed and the next one reads every file (restic --force); backups since these files were last read may hold their earlier content too: `lvsnap verify --read-data` tells"
            ));
        }
        // restic has read all it stores: the snapshot is unmounted while restic lists it.
        let (listing, listing_seconds) = std::thread::scope(|s| {
            let listing = s.spawn(|| {
                let start = Instant::now();
                let listed = r
                    .restic
                    .compare_listing(&summary.id, &manifest, opts.cancel);
                (listed, start.elapsed().as_secs_f64())
            });
            done_with_mount();
            listing.join().expect("the listing thread does not panic")
        });
        let listing = listing?;
        // The snapshot listed is the one this backup made: its ID, this host, this run's tags.
        if !listing.id.starts_with(&summary.id)
            || listing.host != r.restic.host
            || !r.tags.iter().all(|t| listing.tags.contains(t))
        {
            return Err(format!(
                "restic listed snapshot {} (host {}, tags {}) for the snapshot {} this backup made (host {}, tags {}); nothing is recorded as backed up",
                listing.id,
                listing.host,
                listing.tags.join(","),
                summary.id,
                r.restic.host,
                r.tags.join(",")
            ));
        }
        summary.id = listing.id;
        let (listed, diffs) = (listing.matched, listing.diffs);
        if !diffs.is_empty() {
            return Err(format!(
                "restic snapshot {} differs from the snapshot it was made of ({} difference(s)): {}{}",
                restic::short(&summary.id),
                diffs.len(),
                diffs.iter().take(10).cloned().collect::<Vec<_>>().join("; "),
                if diffs.len() > 10 { "; …" } else { "" }
            ));
        }
        let record = restic::Record {
            repository: restic::shown_repository(&r.restic.repo.repository),
            host: r.restic.host.clone(),
            tags: r.tags.clone(),
            summary: summary.clone(),
        };
        restic::write_record(
            &engines::partial("restic", dir, name).expect("restic keeps a record"),
            &record,
        )
        .map_err(|e| format!("cannot record restic snapshot {}: {e}", summary.id))?;
        let proof = prove::Proof {
            listed,
            linked: reused,
            // restic's listing alone (the unmount beside it is lvsnap's own time)
            seconds: listing_seconds,
            ..prove::Proof::default()
        };
        let text = manifest.to_text();
        engines::commit("restic", dir, name, &text)
            .map_err(|e| format!("cannot commit the backup in {}: {e}", dir.display()))?;
        if let Some(ids) = &identities {
            if let Err(e) = crate::manifest::DigestCache::save(
                &digests,
                &manifest,
                ids,
                r.taken.timestamp(),
                cache.round() + 1,
            ) {
                // An older cache must not stay behind a newer backup.
                let _ = std::fs::remove_file(&digests);
                warn!(file = %digests.display(), "cannot keep the files' digests for the next backup, which will read every file: {e}");
            }
            if r.reread_all {
                let _ = std::fs::remove_file(dir.join(crate::manifest::cache::READ_ALL));
            }
        }
        return Ok(Copied {
            manifest,
            text,
            copy_seconds,
            hash_seconds,
            proof,
            restic: Some(summary),
        });
    }
    let proof = prove::prove(
        b.engine.name(),
        &mounted.dir,
        dir,
        name,
        previous,
        &manifest,
        workers,
        &early,
    )?;
    if !proof.recopied.is_empty() {
        warn!(
            files = proof.recopied.len(),
            "rsync linked files whose content changed with size and mtime kept; copied again"
        );
    }
    let text = manifest.to_text();
    engines::commit(b.engine.name(), dir, name, &text)
        .map_err(|e| format!("cannot commit the backup in {}: {e}", dir.display()))?;
    Ok(Copied {
        manifest,
        text,
        copy_seconds,
        hash_seconds,
        proof,
        restic: None,
    })
}
