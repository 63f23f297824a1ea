//! Taking a snapshot set: every volume of a `set = true` policy at one instant, or none.

use std::time::Duration;

use tracing::{info, warn};

use super::{check_pool, find_origin, Options, Space, Take};
use crate::catalog::{NewSnapshot, State};
use crate::config::{Policy, VolumeRef};
use crate::hooks::{self, HookEnv, Phase};
use crate::lvm::{commands, Inventory, Invocation, Lv, LvKind};
use crate::naming;
use crate::reconcile::{Fleet, Managed, OWNER_TAG, PINNED_TAG, POLICY_TAG, TIME_TAG};
use crate::run::{Engine, RunError};
use crate::sets::{self, SET_TAG};

/// What became of a set policy's snapshot in a run.
#[derive(Debug, Clone)]
pub enum SetOutcome {
    Taken(SetTaken),
    NotDue(String),
}

/// A set taken (or that would be, in a dry run).
#[derive(Debug, Clone)]
pub struct SetTaken {
    pub id: String,
    /// (volume, snapshot name), in the policy's order.
    pub members: Vec<(VolumeRef, String)>,
    /// How long the filesystems were frozen, when the policy freezes.
    pub frozen: Option<Duration>,
}

impl SetTaken {
    /// The snapshot taken of `volume`.
    pub fn member(&self, volume: &VolumeRef) -> Option<&str> {
        self.members
            .iter()
            .find(|(v, _)| v == volume)
            .map(|(_, n)| n.as_str())
    }
}

/// One member, planned before anything is created.
struct Member<'i> {
    volume: &'i VolumeRef,
    origin: &'i Lv,
    name: String,
    size: u64,
    cmd: Invocation,
    leaving: u32,
}

impl Engine<'_> {
    /// Takes the policy's set if it is due: when any member volume has no set snapshot from
    /// the current period (a volume added to the set is snapshotted with the next set).
    pub(super) fn take_set_if_due(
        &mut self,
        policy: &Policy,
        inv: &Inventory,
        fleet: &mut Fleet,
        space: &mut Space,
        opts: &Options,
    ) -> Result<SetOutcome, RunError> {
        let newest = policy
            .volumes
            .iter()
            .map(|v| {
                fleet
                    .group(&v.vg, &v.lv)
                    .filter(|m| m.record.policy == policy.name && m.record.set.is_some())
                    .filter(|m| m.is_valid())
                    .map(|m| m.record.time)
                    .filter(|t| !crate::plan::is_future(*t, self.now, policy.future_skew))
                    .max()
            })
            .min()
            .flatten();
        if let Some(next) = self.next_due(policy, newest) {
            return Ok(SetOutcome::NotDue(format!(
                "not due: the newest set is from the current period; next at {next}"
            )));
        }
        let leaving: Vec<u32> = policy
            .volumes
            .iter()
            .map(|v| {
                let merging = inv.find(&v.vg, &v.lv).is_some_and(|o| o.merging);
                if opts.prune && !merging {
                    self.leaving(policy, v, fleet, opts.force)
                } else {
                    0
                }
            })
            .collect();
        self.take_set(policy, inv, fleet, space, &Take::default(), &leaving, &[])
            .map(SetOutcome::Taken)
    }

    /// Takes one snapshot of every volume of a set policy: all, or none remain.
    ///
    /// Every guard (origins, limits, pool fill, free space for all thick members together)
    /// is checked before the `pre` hook; then, with the filesystems frozen if the policy says
    /// so, each lvcreate; if one fails, or the freeze outlasts its timeout, the members already
    /// created are removed.
    ///
    /// # Errors
    /// A guard refuses, the `pre` hook fails, a freeze fails, a member cannot be created (the
    /// others then removed), or the `post` hook fails (the set is kept).
    ///
    /// `leaving` and `at_least` are per member, in the policy's order (empty: none, and
    /// `how.at_least`).
    #[allow(clippy::too_many_arguments)]
    pub fn take_set(
        &mut self,
        policy: &Policy,
        inv: &Inventory,
        fleet: &mut Fleet,
        space: &mut Space,
        how: &Take<'_>,
        leaving: &[u32],
        at_least: &[u64],
    ) -> Result<SetTaken, RunError> {
        // Unique among every set ever recorded: a failed set of the same second (a clock set
        // back, `run --now`) must not make a new one look broken.
        let known = self
            .catalog
            .set_ids_from(&sets::set_id(&policy.name, self.now, |_| false))?;
        let id = sets::set_id(&policy.name, self.now, |id| {
            known.iter().any(|k| k == id)
                || fleet
                    .managed()
                    .iter()
                    .any(|m| m.record.set.as_deref() == Some(id))
        });
        let mut tags = vec![
            OWNER_TAG.to_owned(),
            format!("{POLICY_TAG}={}", policy.name),
            format!("{TIME_TAG}={}", self.now.timestamp()),
            format!("{SET_TAG}={id}"),
        ];
        if how.pin {
            tags.push(PINNED_TAG.to_owned());
        }
        let members =
            self.plan_members(policy, inv, fleet, space, how, (leaving, at_least), &tags)?;
        let taken = SetTaken {
            id: id.clone(),
            members: members
                .iter()
                .map(|m| (m.volume.clone(), m.name.clone()))
                .collect(),
            frozen: None,
        };
        // Checked before anything is begun, and in a dry run too.
        let points = if policy.freeze {
            Some(self.freeze_points(&members)?)
        } else {
            None
        };
        if self.dry_run {
            for m in &members {
                info!(policy = %policy.name, set = %id, volume = %m.volume, snapshot = %m.name, "would create");
                space.count(m.volume, m.origin, m.size);
                space.taken_now(m.volume, m.origin, m.leaving);
                let record = self.new_member(policy, &id, m, how).record(-1);
                fleet.push(Managed {
                    record,
                    lv: None,
                    replica_base: false,
                });
            }
            return Ok(taken);
        }
        let volumes = members
            .iter()
            .map(|m| m.volume.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let names = taken
            .members
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let env = |phase, taken| HookEnv {
            policy: &policy.name,
            volume: &volumes,
            snapshot: &names,
            phase,
            taken,
            set: Some(&id),
        };
        if let Some(pre) = &policy.pre {
            let run = hooks::run_hook(pre, policy.hook_timeout, &env(Phase::Pre, None));
            self.record_hook(&run);
            if !run.ok() {
                let why = run.failure(policy.hook_timeout);
                warn!(policy = %policy.name, set = %id, "pre {why}; set skipped");
                let post = self.post_hook(policy, &env(Phase::Post, Some(false)));
                self.flush()?;
                let post = post.map(|p| format!("; post {p}")).unwrap_or_default();
                return Err(RunError::Refused(format!(
                    "pre {why}; no snapshot of set {id} taken{post}"
                )));
            }
        }
        let created =
            self.create_members(policy, &id, &members, points.as_deref(), how, fleet, space);
        let (result, frozen) = match created {
            Ok(frozen) => (Ok(()), frozen),
            Err(e) => (Err(e), None),
        };
        let post = self.post_hook(policy, &env(Phase::Post, Some(result.is_ok())));
        self.flush()?;
        result?;
        for m in &members {
            space.taken_now(m.volume, m.origin, m.leaving);
        }
        info!(policy = %policy.name, set = %id, members = members.len(), frozen_ms = ?frozen.map(|f| f.as_millis()), "set created");
        match post {
            Some(why) => Err(RunError::Refused(format!(
                "set {id} was taken, but the post {why}"
            ))),
            None => Ok(SetTaken { frozen, ..taken }),
        }
    }

    /// Every member's origin, name and size, checked against the limits, the pools and the
    /// free space of the whole set together.
    #[allow(clippy::too_many_arguments)]
    fn plan_members<'i>(
        &self,
        policy: &'i Policy,
        inv: &'i Inventory,
        fleet: &Fleet,
        space: &Space,
        how: &Take<'_>,
        (leaving, at_least): (&[u32], &[u64]),
        tags: &[String],
    ) -> Result<Vec<Member<'i>>, RunError> {
        let mut trial = space.clone();
        let mut members: Vec<Member<'i>> = Vec::new();
        for (i, volume) in policy.volumes.iter().enumerate() {
            let before = members
                .iter()
                .filter(|m| m.volume.vg == volume.vg && m.origin.kind != LvKind::ThinVolume)
                .map(|m| m.size)
                .sum::<u64>();
            let refuse = |e: RunError| {
                let counted = if before > 0 {
                    format!(
                        " (the set's members before it take {} of {})",
                        crate::units::format_size(before),
                        volume.vg
                    )
                } else {
                    String::new()
                };
                RunError::Refused(format!("member {volume}{counted}: {e}"))
            };
            let origin = find_origin(inv, volume).map_err(refuse)?;
            let leaving = leaving.get(i).copied().unwrap_or(0);
            if !how.beyond_caps {
                trial
                    .check_caps(policy, volume, origin, leaving)
                    .map_err(refuse)?;
            }
            let size = if origin.kind == LvKind::ThinVolume {
                check_pool(policy, volume, origin, inv).map_err(refuse)?;
                origin.size
            } else {
                let floor = at_least.get(i).copied().unwrap_or(how.at_least);
                let extents = trial
                    .thick_extents(policy, volume, origin, floor)
                    .map_err(refuse)?;
                extents * trial.extent_size(&volume.vg)
            };
            trial.count(volume, origin, size);
            let extents = size / trial.extent_size(&volume.vg);
            trial.taken_now(volume, origin, leaving);
            let name = naming::snapshot_name(&volume.lv, self.now, |n| {
                inv.find(&volume.vg, n).is_some()
                    || fleet
                        .managed()
                        .iter()
                        .any(|m| m.record.vg == volume.vg && m.record.name == n)
                    || members
                        .iter()
                        .any(|m: &Member<'_>| m.volume.vg == volume.vg && m.name == n)
            });
            let cmd = if origin.kind == LvKind::ThinVolume {
                commands::create_thin(&volume.vg, &volume.lv, &name, tags)
            } else {
                commands::create_thick(&volume.vg, &volume.lv, &name, extents, tags)
            };
            members.push(Member {
                volume,
                origin,
                name,
                size,
                cmd,
                leaving,
            });
        }
        Ok(members)
    }

    fn new_member<'m>(
        &self,
        policy: &'m Policy,
        id: &'m str,
        m: &'m Member<'_>,
        how: &Take<'m>,
    ) -> NewSnapshot<'m> {
        NewSnapshot {
            vg: &m.volume.vg,
            name: &m.name,
            origin: &m.volume.lv,
            policy: &policy.name,
            time: self.now,
            thin: m.origin.kind == LvKind::ThinVolume,
            size: m.size,
            pinned: how.pin,
            note: how.note,
            set: Some(id),
        }
    }

    /// Freezes (if the policy says so), creates every member, thaws. On a failure removes
    /// the members created. Returns how long the filesystems were frozen.
    #[allow(clippy::too_many_arguments)]
    fn create_members(
        &mut self,
        policy: &Policy,
        id: &str,
        members: &[Member<'_>],
        points: Option<&[sets::FreezePoint]>,
        how: &Take<'_>,
        fleet: &mut Fleet,
        space: &mut Space,
    ) -> Result<Option<Duration>, RunError> {
        let before = space.clone();
        let now = self.now;
        // Every member's intent first, outside the freeze: a crash anywhere after this leaves
        // each member not yet created `creating`, which the next run resolves as never created
        // and then removes the rest of the set (see `remove_broken_sets`).
        let mut begun: Vec<(i64, i64)> = Vec::new();
        for m in members {
            let new = self.new_member(policy, id, m, how);
            match self.catalog.begin_create(&new, now) {
                Ok(ids) => begun.push(ids),
                Err(e) => {
                    for (sid, intent) in &begun {
                        self.record(|c| {
                            c.set_state(
                                *sid,
                                State::Failed,
                                Some("the set's catalog records failed"),
                                now,
                            )?;
                            c.resolve(*intent, "failed", now)
                        })?;
                    }
                    return Err(e.into());
                }
            }
        }
        let mut frozen = if let Some(points) = points {
            match sets::freeze(points, policy.freeze_timeout).map_err(RunError::Refused) {
                Ok(f) => Some(f),
                Err(e) => {
                    let why = e.to_string();
                    for (sid, intent) in &begun {
                        self.record(|c| {
                            c.set_state(*sid, State::Failed, Some(&why), now)?;
                            c.resolve(*intent, "failed", now)
                        })?;
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        // Nothing but the lvcreates while frozen: no catalog write, no hook. All at once: each
        // member's is its own command with its own status and message, and their start-ups
        // overlap, so the window is shorter than the same commands run one after another.
        let cmds: Vec<&Invocation> = members.iter().map(|m| &m.cmd).collect();
        let outcomes: Vec<Result<(), String>> = self
            .exec_all(&cmds)
            .into_iter()
            .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
            .collect();
        let mut failure = members.iter().zip(&outcomes).find_map(|(m, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("member {} could not be created: {e}", m.volume))
        });
        let mut window = None;
        if let Some(f) = frozen.as_mut() {
            let late = f.timed_out();
            match f.thaw() {
                Ok(w) => window = Some(w),
                Err(e) => failure = failure.or(Some(e)),
            }
            if late && failure.is_none() {
                failure = Some(format!(
                    "the filesystems stayed frozen past freeze-timeout ({} s) and were thawed while LVM was still at work: the members would not show one instant",
                    policy.freeze_timeout.as_secs()
                ));
            }
        }
        drop(frozen);
        let mut created = 0;
        for (i, m) in members.iter().enumerate() {
            let (sid, intent) = begun[i];
            match &outcomes[i] {
                Ok(()) => {
                    self.record(|c| {
                        c.set_state(sid, State::Present, None, now)?;
                        c.resolve(intent, "created", now)
                    })?;
                    space.count(m.volume, m.origin, m.size);
                    info!(policy = %policy.name, set = %id, volume = %m.volume, snapshot = %m.name, size = %crate::units::format_size(m.size), "created");
                    fleet.push(Managed {
                        record: self.new_member(policy, id, m, how).record(sid),
                        lv: None,
                        replica_base: false,
                    });
                    created += 1;
                }
                Err(why) => {
                    self.record(|c| {
                        c.set_state(sid, State::Failed, Some(why), now)?;
                        c.resolve(intent, "failed", now)
                    })?;
                }
            }
        }
        let Some(failure) = failure else {
            return Ok(window);
        };
        // All or nothing: what was created goes again. Marked first, so that a run cut short
        // while removing them leaves what the next run removes (`remove_broken_sets`).
        let made: Vec<Managed> = fleet.split_off(fleet.managed().len() - created);
        let given_up = format!("set {id} given up: {failure}");
        let ids: Vec<i64> = made.iter().map(|m| m.record.id).collect();
        self.record(|c| c.give_up_set(&ids, &given_up))?;
        let reason = given_up;
        let mut left = Vec::new();
        for m in &made {
            match self.remove(m, &reason) {
                Ok(()) => {
                    info!(policy = %policy.name, set = %id, snapshot = %m.record.name, "removed: {reason}");
                }
                Err(e) => {
                    warn!(policy = %policy.name, set = %id, snapshot = %m.record.name, "could not remove: {e}");
                    left.push(format!("{}/{} ({e})", m.record.vg, m.record.name));
                    fleet.push(m.clone());
                }
            }
        }
        if left.is_empty() {
            *space = before;
        }
        let undone = if left.is_empty() {
            if created == 0 {
                String::new()
            } else {
                format!("; the {created} member(s) created were removed")
            }
        } else {
            format!(
                "; these members could not be removed and remain: {} (`lvsnap prune` retries, or lvremove them)",
                left.join(", ")
            )
        };
        Err(RunError::Refused(format!("{failure}{undone}")))
    }

    /// Removes what is left of sets a crash cut short (a member never created): all or
    /// nothing holds across a `kill -9` too. Returns what it did, for the report.
    pub(super) fn remove_broken_sets(
        &mut self,
        fleet: &mut Fleet,
    ) -> Result<Vec<String>, RunError> {
        let mut notes = Vec::new();
        for id in self.catalog.broken_sets()? {
            let left: Vec<Managed> = fleet
                .managed()
                .iter()
                .filter(|m| m.record.set.as_deref() == Some(id.as_str()))
                .cloned()
                .collect();
            for m in left {
                let what = format!("{}/{}", m.record.vg, m.record.name);
                if m.view().busy.is_some() || m.record.pinned {
                    notes.push(format!("{what} is what is left of set {id}, whose other members were never created; it is kept because it is pinned, mounted or merging"));
                    continue;
                }
                let reason = format!("set {id} is incomplete: a member was never created, or it was given up as a whole and removing it was cut short");
                if self.dry_run {
                    notes.push(format!("would remove {what}: {reason}"));
                    continue;
                }
                match self.remove(&m, &reason) {
                    Ok(()) => {
                        warn!(snapshot = %what, "removed: {reason}");
                        notes.push(format!("removed {what}: {reason}"));
                        fleet.retain(|x| x.record.id != m.record.id);
                    }
                    Err(e) => notes.push(format!("could not remove {what} ({reason}): {e}")),
                }
            }
        }
        Ok(notes)
    }

    /// The mounted filesystems of the set's origins to freeze, after checking that this kernel
    /// lets LVM snapshot a frozen filesystem and that none of them holds what must stay
    /// writable meanwhile. Checked before the `pre` hook: a set that cannot be frozen is not
    /// begun.
    fn freeze_points(&self, members: &[Member<'_>]) -> Result<Vec<sets::FreezePoint>, RunError> {
        use std::os::unix::fs::MetadataExt;
        sets::kernel_can_freeze(&sets::kernel_release()).map_err(RunError::Refused)?;
        let state_dir = self.config.settings.state_dir();
        let mut points = Vec::new();
        for m in members {
            let Some(point) = crate::mount::mount_point_of(&m.volume.vg, &m.volume.lv) else {
                continue;
            };
            sets::check_freezable(&point, &m.volume.to_string(), &state_dir)
                .map_err(RunError::Refused)?;
            let dev = std::fs::metadata(crate::mount::device(&m.volume.vg, &m.volume.lv))
                .map(|d| d.rdev())
                .map_err(|e| {
                    RunError::Refused(format!("cannot read the device of {}: {e}", m.volume))
                })?;
            let point = sets::FreezePoint { path: point, dev };
            if !points.contains(&point) {
                points.push(point);
            }
        }
        Ok(points)
    }
}
