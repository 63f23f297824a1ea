//! The snapshot cycle: for each group, snapshot if due, prune by the plan, extend filling
//! snapshots. Every mutation goes through the executor ([`crate::run::Engine`]): an intent in
//! the catalog, the command, then its result. A group's failure is recorded and reported; the
//! other groups go on.

pub mod set;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::catalog::{CatalogError, NewSnapshot, State};
use crate::config::{Policy, VolumeRef};
use crate::hooks::{self, HookEnv, Phase};
use crate::lvm::{commands, Inventory, Lv, LvKind};
use crate::naming;
use crate::plan::{is_due, plan_retention, CronTicks, Rules};
use crate::reconcile::{Fleet, Managed, OWNER_TAG, PINNED_TAG, POLICY_TAG, TIME_TAG};
use crate::run::{Engine, RunError};
use crate::units::format_size;

/// What a run is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these policies (all when empty).
    pub policies: Vec<String>,
    pub dry_run: bool,
    pub force: bool,
    /// Take snapshots of due groups.
    pub snapshot: bool,
    /// Remove what the plans remove, and extend filling snapshots.
    pub prune: bool,
    /// Set by the daemon at shutdown: stop after the LVM command in flight.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Options {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// What happened to one group.
#[derive(Debug, Clone, Default)]
pub struct GroupReport {
    pub policy: String,
    pub volume: String,
    /// Name of the snapshot taken (or that would be, in a dry run).
    pub created: Option<String>,
    /// The snapshot set it was taken in.
    pub set: Option<String>,
    /// How long the set's filesystems were frozen while its snapshots were created.
    pub frozen: Option<std::time::Duration>,
    /// Why no snapshot was taken when the group was not due.
    pub not_due: Option<String>,
    /// (name, why no rule keeps it)
    pub removed: Vec<(String, Vec<String>)>,
    pub kept: usize,
    pub extended: Vec<String>,
    pub warnings: Vec<String>,
    /// A guard that held pruning back.
    pub guard: Option<String>,
    pub errors: Vec<String>,
    /// Every snapshot of the group with the plan's verdict, newest first.
    pub plan: Vec<Planned>,
}

/// One snapshot's verdict in a group's plan.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: String,
    pub time: DateTime<Utc>,
    pub keep: bool,
    pub reasons: Vec<&'static str>,
    /// For removals: why no rule keeps it.
    pub why_not: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub dry_run: bool,
    pub groups: Vec<GroupReport>,
    pub notes: Vec<String>,
    pub strays: Vec<String>,
    pub lvm_commands: usize,
    /// The managed snapshots after the run (removed ones gone, created ones in), and the
    /// inventory it started from: enough for status and metrics without another `lvs`.
    pub fleet: Fleet,
    pub inventory: Inventory,
    /// Stopped early by a shutdown; what was done is recorded.
    pub interrupted: bool,
    /// What space pressure removed, before anything else.
    pub relief: crate::pressure::Relief,
}

impl RunReport {
    pub fn failed(&self) -> bool {
        self.groups.iter().any(|g| !g.errors.is_empty()) || !self.relief.errors.is_empty()
    }

    pub fn held_back(&self) -> bool {
        self.groups.iter().any(|g| g.guard.is_some())
    }
}

/// How [`Engine::take`] takes a snapshot beyond the policy's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Take<'a> {
    /// Pinned: never pruned until unpinned.
    pub pin: bool,
    /// Why it was taken, kept in the catalog.
    pub note: Option<&'a str>,
    /// A thick snapshot's smallest size in bytes (a rollback's guard must hold everything the
    /// merge writes), above the policy's size.
    pub at_least: u64,
    /// Not held to `max-thick-per-origin` and `max-per-pool`: a rollback's guard, a backup's
    /// temporary snapshot (both short-lived, and refusing them would refuse what they protect).
    pub beyond_caps: bool,
    /// Snapshots of the group that the same run's prune removes once this one exists: they do
    /// not count against the caps.
    pub leaving: u32,
}

impl Engine<'_> {
    /// A full run: snapshots for due groups, then pruning and extension of every group.
    ///
    /// # Errors
    /// Only failures that stop every group (inventory, catalog); a group's own failure is in
    /// its report.
    pub fn run(&mut self, opts: &Options) -> Result<RunReport, RunError> {
        let config = self.config;
        let (inv, mut fleet) = self.survey()?;
        let notes = fleet.notes.clone();
        // Space pressure goes first: a full pool harms every volume in it, now.
        let (mut relief, relieved) = if opts.prune {
            self.relieve(inv, &mut fleet, &opts.policies)?
        } else {
            (crate::pressure::Relief::default(), inv)
        };
        // What was removed changed the figures everything after goes by: read them again (a
        // dry run goes by what relief says it would free).
        let (inv, mut fleet) = if !self.dry_run && !relief.removed.is_empty() {
            match self.survey() {
                Ok(again) => again,
                Err(e) => {
                    let last = relief.removed.last().cloned().expect("not empty");
                    relief.errors.push(crate::pressure::Removal {
                        why: format!("reading LVM again after removing for space failed: {e}"),
                        ..last
                    });
                    (relieved, fleet)
                }
            }
        } else {
            (relieved, fleet)
        };
        let mut notes = notes;
        if opts.prune {
            notes.extend(self.remove_broken_sets(&mut fleet)?);
        }
        let mut state = Space::from(&inv);
        let mut report = RunReport {
            dry_run: self.dry_run,
            notes,
            strays: fleet.strays.iter().map(Lv::path).collect(),
            relief,
            ..RunReport::default()
        };
        let groups: Vec<(&Policy, &VolumeRef)> = config
            .policies
            .iter()
            .filter(|p| opts.policies.is_empty() || opts.policies.contains(&p.name))
            .flat_map(|p| p.volumes.iter().map(move |v| (p, v)))
            .collect();
        // A set is taken once, at its first volume; each member's group reports its part.
        let mut sets: BTreeMap<&str, Result<set::SetOutcome, String>> = BTreeMap::new();
        for (policy, volume) in &groups {
            if opts.cancelled() {
                report.interrupted = true;
                break;
            }
            let mut g = GroupReport {
                policy: policy.name.clone(),
                volume: volume.to_string(),
                ..GroupReport::default()
            };
            if opts.snapshot && policy.set {
                let outcome = sets.entry(policy.name.as_str()).or_insert_with(|| {
                    self.take_set_if_due(policy, &inv, &mut fleet, &mut state, opts)
                        .map_err(|e| e.to_string())
                });
                match outcome {
                    Ok(set::SetOutcome::Taken(taken)) => {
                        g.created = taken.member(volume).map(str::to_owned);
                        g.set = Some(taken.id.clone());
                        g.frozen = taken.frozen;
                    }
                    Ok(set::SetOutcome::NotDue(why)) => g.not_due = Some(why.clone()),
                    Err(e) => {
                        error!(policy = %g.policy, volume = %g.volume, "snapshot set failed: {e}");
                        g.errors.push(format!("snapshot set failed: {e}"));
                    }
                }
            } else if opts.snapshot {
                match self.take_if_due(policy, volume, &inv, &mut fleet, &mut state, opts) {
                    Ok(Taken::Created(name)) => g.created = Some(name),
                    Ok(Taken::NotDue(why)) => g.not_due = Some(why),
                    Err(e) => self.group_error(&mut g, "snapshot", &e),
                }
            }
            report.groups.push(g);
        }
        // A removal for space that failed is its group's failure, recorded as such.
        for e in &report.relief.errors {
            if let Some(g) = report
                .groups
                .iter_mut()
                .find(|g| g.policy == e.policy && g.volume == e.volume)
            {
                g.errors.push(format!("space: {}: {}", e.name, e.why));
            }
        }
        if opts.prune {
            for ((policy, volume), g) in groups.iter().zip(report.groups.iter_mut()) {
                if opts.cancelled() {
                    report.interrupted = true;
                    break;
                }
                if let Err(e) =
                    self.prune_group(policy, volume, &inv, &fleet, &mut state, opts.force, g)
                {
                    self.group_error(g, "prune", &e);
                }
                self.extend_group(policy, volume, &fleet, &mut state, g);
            }
        }
        report.lvm_commands = self.commands_run();
        self.flush()?;
        let removed: Vec<(&str, &str)> = report
            .groups
            .iter()
            .zip(&groups)
            .flat_map(|(g, (_, v))| {
                g.removed
                    .iter()
                    .map(move |(n, _)| (v.vg.as_str(), n.as_str()))
            })
            .collect();
        let removed: Vec<(String, String)> = removed
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        if !self.dry_run {
            let removed: std::collections::HashSet<(String, String)> =
                removed.into_iter().collect();
            fleet.retain(|m| !removed.contains(&(m.record.vg.clone(), m.record.name.clone())));
        }
        report.fleet = fleet;
        report.inventory = inv;
        Ok(report)
    }

    fn group_error(&self, g: &mut GroupReport, what: &str, e: &dyn std::fmt::Display) {
        error!(policy = %g.policy, volume = %g.volume, "{what} failed: {e}");
        g.errors.push(format!("{what} failed: {e}"));
    }

    #[allow(clippy::too_many_arguments)]
    fn take_if_due(
        &mut self,
        policy: &Policy,
        volume: &VolumeRef,
        inv: &Inventory,
        fleet: &mut Fleet,
        space: &mut Space,
        opts: &Options,
    ) -> Result<Taken, RunError> {
        // A snapshot dated in the future does not count: it would hold off every snapshot
        // until that date (the plan reports it).
        let newest = fleet
            .group(&volume.vg, &volume.lv)
            .filter(|m| m.is_valid())
            .map(|m| m.record.time)
            .filter(|t| !crate::plan::is_future(*t, self.now, policy.future_skew))
            .max();
        if let Some(next) = self.next_due(policy, newest) {
            return Ok(Taken::NotDue(format!(
                "not due: newest snapshot is from the current period; next at {next}"
            )));
        }
        // What this run's prune removes once the new snapshot exists does not count against
        // the caps: the origin has one snapshot more only until then.
        let leaving = if opts.prune && !inv.find(&volume.vg, &volume.lv).is_some_and(|o| o.merging)
        {
            self.leaving(policy, volume, fleet, opts.force)
        } else {
            0
        };
        let how = Take {
            leaving,
            ..Take::default()
        };
        self.take(policy, volume, inv, fleet, space, &how)
            .map(Taken::Created)
    }

    /// When the policy is next due, if a snapshot from `newest` makes it not due now.
    fn next_due(&self, policy: &Policy, newest: Option<DateTime<Utc>>) -> Option<String> {
        let ticks = CronTicks {
            schedule: &policy.schedule,
            timezone: policy.timezone,
        };
        if is_due(&ticks, self.now, newest) {
            return None;
        }
        Some(
            policy
                .schedule
                .next(self.now, policy.timezone)
                .map(crate::units::utc)
                .unwrap_or_default(),
        )
    }

    /// How many of the group's snapshots its plan removes once a snapshot taken now exists.
    fn leaving(&self, policy: &Policy, volume: &VolumeRef, fleet: &Fleet, force: bool) -> u32 {
        let plan = self.plan_group(policy, volume, fleet, true);
        u32::try_from(plan.removals(force).count()).unwrap_or(u32::MAX)
    }

    /// Takes one snapshot of `volume` now, after the space guards.
    ///
    /// # Errors
    /// The origin is missing, a space guard refuses, lvcreate fails, or the catalog fails.
    pub fn take(
        &mut self,
        policy: &Policy,
        volume: &VolumeRef,
        inv: &Inventory,
        fleet: &mut Fleet,
        space: &mut Space,
        how: &Take<'_>,
    ) -> Result<String, RunError> {
        let Take {
            pin,
            note,
            at_least,
            beyond_caps,
            leaving,
        } = *how;
        let origin = find_origin(inv, volume)?;
        let thin = origin.kind == LvKind::ThinVolume;
        if !beyond_caps {
            space.check_caps(policy, volume, origin, leaving)?;
        }
        let taken = |n: &str| {
            inv.find(&volume.vg, n).is_some()
                || fleet
                    .managed()
                    .iter()
                    .any(|m| m.record.vg == volume.vg && m.record.name == n)
        };
        let name = naming::snapshot_name(&volume.lv, self.now, taken);
        let mut tags = vec![
            OWNER_TAG.to_owned(),
            format!("{POLICY_TAG}={}", policy.name),
            format!("{TIME_TAG}={}", self.now.timestamp()),
        ];
        if pin {
            tags.push(PINNED_TAG.to_owned());
        }
        let (inv_cmd, size) = if thin {
            check_pool(policy, volume, origin, inv)?;
            (
                commands::create_thin(&volume.vg, &volume.lv, &name, &tags),
                origin.size,
            )
        } else {
            let extents = space.thick_extents(policy, volume, origin, at_least)?;
            let bytes = extents * space.extent_size(&volume.vg);
            (
                commands::create_thick(&volume.vg, &volume.lv, &name, extents, &tags),
                bytes,
            )
        };
        let new = NewSnapshot {
            vg: &volume.vg,
            name: &name,
            origin: &volume.lv,
            policy: &policy.name,
            time: self.now,
            thin,
            size,
            pinned: pin,
            note,
            set: None,
        };
        if self.dry_run {
            info!(policy = %policy.name, volume = %volume, snapshot = %name, "would create");
            // Counted as a run would, so that the next group's verdict is the run's too.
            if thin {
                space.add_thin(&volume.vg, origin.pool.as_deref().unwrap_or_default());
            } else {
                space.take(&volume.vg, size);
                space.add_thick(&volume.vg, &volume.lv);
            }
            space.taken_now(volume, origin, leaving);
            let record = new.record(-1);
            fleet.push(Managed {
                record,
                lv: None,
                replica_base: false,
            });
            return Ok(name);
        }
        let volume_name = volume.to_string();
        let env = |phase, taken| HookEnv {
            policy: &policy.name,
            volume: &volume_name,
            snapshot: &name,
            phase,
            taken,
            set: None,
        };
        if let Some(pre) = &policy.pre {
            let run = hooks::run_hook(pre, policy.hook_timeout, &env(Phase::Pre, None));
            self.record_hook(&run);
            if !run.ok() {
                let why = run.failure(policy.hook_timeout);
                warn!(policy = %policy.name, volume = %volume, snapshot = %name, "pre {why}; snapshot skipped");
                // The post hook undoes what pre began (unlocking tables, say): it runs whenever
                // pre ran.
                let post_failure = self.post_hook(policy, &env(Phase::Post, Some(false)));
                self.flush()?;
                let post = post_failure
                    .map(|p| format!("; post {p}"))
                    .unwrap_or_default();
                return Err(RunError::Refused(format!(
                    "pre {why}; no snapshot of {volume} taken{post}"
                )));
            }
        }
        let created = self.create(&new, &inv_cmd, origin.pool.as_deref(), fleet, space);
        let post_failure = self.post_hook(policy, &env(Phase::Post, Some(created.is_ok())));
        self.flush()?;
        created?;
        space.taken_now(volume, origin, leaving);
        match post_failure {
            Some(why) => Err(RunError::Refused(format!(
                "snapshot {name} was taken, but the post {why}"
            ))),
            None => Ok(name),
        }
    }

    fn post_hook(&mut self, policy: &Policy, env: &HookEnv<'_>) -> Option<String> {
        let post = policy.post.as_ref()?;
        let run = hooks::run_hook(post, policy.hook_timeout, env);
        self.record_hook(&run);
        (!run.ok()).then(|| run.failure(policy.hook_timeout))
    }

    /// lvcreate between an intent and its result in the catalog.
    fn create(
        &mut self,
        new: &NewSnapshot<'_>,
        inv_cmd: &crate::lvm::Invocation,
        pool: Option<&str>,
        fleet: &mut Fleet,
        space: &mut Space,
    ) -> Result<(), RunError> {
        let (id, intent) = self.catalog.begin_create(new, self.now)?;
        let now = self.now;
        if let Err(e) = self.exec(inv_cmd) {
            let reason = e.to_string();
            self.record(|c| {
                c.set_state(id, State::Failed, Some(&reason), now)?;
                c.resolve(intent, "failed", now)
            })?;
            return Err(e);
        }
        self.record(|c| {
            c.set_state(id, State::Present, None, now)?;
            c.resolve(intent, "created", now)
        })?;
        if new.thin {
            space.add_thin(new.vg, pool.unwrap_or_default());
        } else {
            space.take(new.vg, new.size);
            space.add_thick(new.vg, new.origin);
        }
        info!(policy = %new.policy, volume = %format!("{}/{}", new.vg, new.origin), snapshot = %new.name, kind = if new.thin { "thin" } else { "thick" }, size = %format_size(new.size), "created");
        fleet.push(Managed {
            record: new.record(id),
            lv: None,
            replica_base: false,
        });
        Ok(())
    }

    /// The plan for one group at `now`: each of its snapshots with a verdict. In a set
    /// policy the plan ranks whole sets (every set of the policy, whichever volumes hold its
    /// members), so that each volume's plan removes the same sets; a snapshot outside any set
    /// is ranked on its own. With `with_new`, a snapshot (or set) taken now is ranked too,
    /// without a verdict of its own.
    pub fn plan_group<'f>(
        &self,
        policy: &Policy,
        volume: &'f VolumeRef,
        fleet: &'f Fleet,
        with_new: bool,
    ) -> GroupPlan<'f> {
        let own: Vec<&Managed> = fleet.group(&volume.vg, &volume.lv).collect();
        // What the planner ranks: (a view, this volume's snapshot in it). A set policy has two
        // rankings, sets and the snapshots outside them, so that a volume's extra snapshots
        // never change which sets its plan keeps.
        type Ranking<'m> = Vec<(crate::plan::SnapshotView, Option<&'m Managed>)>;
        let mut rankings: Vec<Ranking<'f>> = Vec::new();
        if policy.set {
            let mut sets: BTreeMap<&str, Vec<&Managed>> = BTreeMap::new();
            for m in fleet.managed() {
                let Some(id) = m.record.set.as_deref() else {
                    continue;
                };
                if m.record.is_temporary() {
                    continue;
                }
                // Each set is ranked by the policy that took it, so that every volume's plan
                // agrees on it.
                if m.record.policy == policy.name {
                    sets.entry(id).or_default();
                }
            }
            for m in fleet.managed() {
                if let Some(members) = m.record.set.as_deref().and_then(|id| sets.get_mut(id)) {
                    members.push(m);
                }
            }
            let mut own_in_set: BTreeMap<&str, &Managed> = BTreeMap::new();
            for m in &own {
                if let Some(id) = m.record.set.as_deref() {
                    own_in_set.entry(id).or_insert(*m);
                }
            }
            let mut ranked: Ranking<'f> = Vec::new();
            for (id, members) in &sets {
                let views: Vec<_> = members.iter().map(|m| m.view()).collect();
                let view = crate::plan::SnapshotView {
                    name: (*id).to_owned(),
                    time: views.iter().map(|v| v.time).min().unwrap_or(self.now),
                    pinned: views.iter().any(|v| v.pinned),
                    invalid: views.iter().any(|v| v.invalid),
                    busy: views.iter().find_map(|v| v.busy),
                };
                let mine = own_in_set.get(id).copied();
                ranked.push((view, mine));
            }
            if with_new {
                ranked.push((crate::plan::SnapshotView::new("", self.now), None));
            }
            rankings.push(ranked);
            // Outside any set: snapshots of this volume alone, and members of sets whose policy
            // is gone (a set policy still configured ranks its own sets).
            let orphan = |m: &Managed| {
                m.record.set.is_some()
                    && m.record.policy != policy.name
                    && self.config.policy(&m.record.policy).is_none_or(|p| !p.set)
            };
            rankings.push(
                own.iter()
                    .filter(|m| m.record.set.is_none() || orphan(m))
                    .map(|m| (m.view(), Some(*m)))
                    .collect(),
            );
        } else {
            let mut ranked: Ranking<'f> = own.iter().map(|m| (m.view(), Some(*m))).collect();
            if with_new {
                ranked.push((crate::plan::SnapshotView::new("", self.now), None));
            }
            rankings.push(ranked);
        }
        let rules = Rules::from(policy);
        let mut members = Vec::new();
        let mut decisions = Vec::new();
        let mut why_not = Vec::new();
        let mut guard = None;
        let mut held = Vec::new();
        let mut warnings = Vec::new();
        for units in &rankings {
            if units.is_empty() {
                continue;
            }
            let views: Vec<_> = units.iter().map(|(v, _)| v.clone()).collect();
            let plan = plan_retention(self.now, &rules, &views);
            for d in &plan.decisions {
                let Some(m) = units[d.index].1 else { continue };
                let mut why = if d.keep {
                    Vec::new()
                } else {
                    plan.explain_removal(d, &views, &rules)
                };
                if let Some(id) = m.record.set.as_deref().filter(|_| policy.set) {
                    if !d.keep {
                        why.insert(0, format!("set {id} goes as a whole"));
                    }
                }
                decisions.push(crate::plan::Decision {
                    index: members.len(),
                    ..d.clone()
                });
                members.push(m);
                why_not.push(why);
                held.push(plan.guard.is_some());
            }
            guard = guard.or_else(|| plan.guard.clone());
            warnings.extend(plan.warnings.iter().cloned());
        }
        GroupPlan {
            members,
            decisions,
            why_not,
            guard,
            held,
            warnings,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prune_group(
        &mut self,
        policy: &Policy,
        volume: &VolumeRef,
        inv: &Inventory,
        fleet: &Fleet,
        space: &mut Space,
        force: bool,
        g: &mut GroupReport,
    ) -> Result<(), RunError> {
        if inv.find(&volume.vg, &volume.lv).is_some_and(|o| o.merging) {
            g.guard = Some(format!(
                "a merge into {volume} is pending: pruning waits until it completes"
            ));
            return Ok(());
        }
        // A set's volumes prune together or not at all: one of them skipped would keep what
        // the others remove.
        if let Some(busy) = policy
            .volumes
            .iter()
            .filter(|_| policy.set)
            .find(|v| inv.find(&v.vg, &v.lv).is_some_and(|o| o.merging))
        {
            g.guard = Some(format!(
                "a merge into {busy}, a volume of this set, is pending: pruning of the set waits until it completes"
            ));
            return Ok(());
        }
        let plan = self.plan_group(policy, volume, fleet, false);
        g.warnings.extend(plan.warnings.iter().cloned());
        if let Some(guard) = &plan.guard {
            let blocked = !force && plan.decisions.iter().any(|d| !d.keep && plan.held[d.index]);
            if blocked {
                warn!(policy = %policy.name, volume = %volume, "{guard}");
                g.guard = Some(guard.to_string());
            }
        }
        g.kept = plan.kept().count();
        g.plan = plan
            .decisions
            .iter()
            .map(|d| Planned {
                name: plan.members[d.index].record.name.clone(),
                time: plan.members[d.index].record.time,
                keep: d.keep,
                reasons: d.reasons.names().collect(),
                why_not: plan.why_not[d.index].clone(),
            })
            .collect();
        let removals: Vec<(&Managed, Vec<String>)> = plan
            .removals(force)
            .map(|d| (plan.members[d.index], plan.why_not[d.index].clone()))
            .collect();
        if self.dry_run {
            g.removed.extend(
                removals
                    .into_iter()
                    .map(|(m, why)| (m.record.name.clone(), why)),
            );
            return Ok(());
        }
        let items: Vec<(&Managed, String)> = removals
            .iter()
            .map(|(m, why)| (*m, why.join("; ")))
            .collect();
        let outcomes = self.remove_all(&items);
        for ((m, why), failed) in removals.into_iter().zip(outcomes) {
            match failed {
                None => {
                    space.removed(m, inv);
                    info!(policy = %policy.name, volume = %volume, snapshot = %m.record.name, reason = %why.join("; "), "removed");
                    g.removed.push((m.record.name.clone(), why));
                }
                Some(e) => {
                    g.kept += 1;
                    self.group_error(g, &format!("removing {}", m.record.name), &e);
                }
            }
        }
        Ok(())
    }

    /// Snapshots removed by one `lvremove`, at most.
    const REMOVE_AT_ONCE: usize = 64;

    /// Removes managed snapshots with one `lvremove` per volume group (where LVM scans the
    /// devices and takes the group's lock once, not once each). Gives, for each, `None` if it
    /// was removed, or why not.
    pub fn remove_all(&mut self, items: &[(&Managed, String)]) -> Vec<Option<String>> {
        let mut outcomes = vec![None; items.len()];
        let mut vgs: Vec<&str> = items.iter().map(|(m, _)| m.record.vg.as_str()).collect();
        vgs.sort_unstable();
        vgs.dedup();
        for vg in vgs {
            let at: Vec<usize> = (0..items.len())
                .filter(|i| items[*i].0.record.vg == vg)
                .collect();
            // A bounded argv, and a bounded time the group's lock is held (dmeventd waits on
            // it to extend pools and snapshots).
            for at in at.chunks(Self::REMOVE_AT_ONCE) {
                let mine: Vec<(&Managed, String)> = at
                    .iter()
                    .map(|i| (items[*i].0, items[*i].1.clone()))
                    .collect();
                let done = match self.remove_in(vg, &mine) {
                    Ok(done) => done,
                    Err(e) => vec![Some(e.to_string()); mine.len()],
                };
                for (i, outcome) in at.iter().zip(done) {
                    outcomes[*i] = outcome;
                }
            }
        }
        outcomes
    }

    /// [`Self::remove_all`] in one volume group: every intent recorded first, in one
    /// transaction, then one `lvremove`. After a failure, which ones are gone is read back
    /// from a new inventory, and each one left is tried alone.
    ///
    /// # Errors
    /// The catalog failed: before the removal (nothing was run), or after it (the records
    /// stay `removing`, with their intents open, for the next run to settle from LVM).
    fn remove_in(
        &mut self,
        vg: &str,
        items: &[(&Managed, String)],
    ) -> Result<Vec<Option<String>>, RunError> {
        if let [(m, why)] = items {
            return Ok(vec![self.remove(m, why).err().map(|e| e.to_string())]);
        }
        let now = self.now;
        let intents = self.record(|c| {
            items
                .iter()
                .map(|(m, why)| {
                    let intent = c.begin("remove", m.record.id, now)?;
                    c.set_state(m.record.id, State::Removing, Some(why), now)?;
                    Ok(intent)
                })
                .collect::<Result<Vec<i64>, CatalogError>>()
        })?;
        let names: Vec<&str> = items.iter().map(|(m, _)| m.record.name.as_str()).collect();
        let failure = self
            .exec(&commands::remove_all(vg, &names))
            .err()
            .map(|e| e.to_string());
        let gone: Vec<bool> = match &failure {
            None => vec![true; items.len()],
            Some(why) => match self.inventory() {
                // Gone: no volume of that name in the group, or another one under it. A report
                // without the group says nothing of it.
                Ok(inv) if inv.vgs.contains_key(vg) => items
                    .iter()
                    .map(|(m, _)| {
                        inv.find(vg, &m.record.name)
                            .is_none_or(|lv| m.record.uuid.as_deref().is_some_and(|u| u != lv.uuid))
                    })
                    .collect(),
                Ok(_) => {
                    let why = format!("{why}; whether it went is settled by the next run (the inventory after it did not show volume group {vg})");
                    warn!(vg = %vg, "{why}");
                    return Ok(vec![Some(why); items.len()]);
                }
                Err(e) => {
                    // Unknown: the records stay `removing` with their intents open, as after a
                    // crash; the next run's reconciliation settles each from what LVM shows.
                    let why = format!("{why}; whether it went is settled by the next run (the inventory after it failed: {e})");
                    warn!(vg = %vg, "{why}");
                    return Ok(vec![Some(why); items.len()]);
                }
            },
        };
        self.record(|c| {
            for (((m, why), intent), gone) in items.iter().zip(&intents).zip(&gone) {
                if *gone {
                    c.set_state(m.record.id, State::Removed, Some(why), now)?;
                    c.resolve(*intent, "removed", now)?;
                } else {
                    let failed = failure.as_deref().unwrap_or_default();
                    c.set_state(m.record.id, m.record.state, Some(failed), now)?;
                    c.resolve(*intent, "failed", now)?;
                }
            }
            Ok(())
        })?;
        // LVM may stop at the volume it refuses, or skip others with it: each one left is
        // tried once more on its own, so that one stuck snapshot never holds back the rest.
        Ok(items
            .iter()
            .zip(gone)
            .map(|((m, why), gone)| match gone {
                true => None,
                false => self.remove(m, why).err().map(|e| e.to_string()),
            })
            .collect())
    }

    /// Removes one managed snapshot: intent, lvremove, result.
    ///
    /// # Errors
    /// lvremove or the catalog failed; the record is back to its previous state.
    pub fn remove(&mut self, m: &Managed, reason: &str) -> Result<(), RunError> {
        let (id, now) = (m.record.id, self.now);
        let intent = self.record(|c| {
            let intent = c.begin("remove", id, now)?;
            c.set_state(id, State::Removing, Some(reason), now)?;
            Ok(intent)
        })?;
        match self.exec(&commands::remove(&m.record.vg, &m.record.name)) {
            Ok(_) => self.record(|c| {
                c.set_state(id, State::Removed, Some(reason), now)?;
                c.resolve(intent, "removed", now)
            }),
            Err(e) => {
                let why = e.to_string();
                self.record(|c| {
                    c.set_state(id, m.record.state, Some(&why), now)?;
                    c.resolve(intent, "failed", now)
                })?;
                Err(e)
            }
        }
    }

    fn extend_group(
        &mut self,
        policy: &Policy,
        volume: &VolumeRef,
        fleet: &Fleet,
        space: &mut Space,
        g: &mut GroupReport,
    ) {
        for m in fleet.group(&volume.vg, &volume.lv) {
            let Some(lv) = &m.lv else { continue };
            let fill = lv.data_percent.unwrap_or(0.0);
            if lv.kind != LvKind::ThickSnapshot || lv.invalid || fill < f64::from(policy.extend_at)
            {
                continue;
            }
            if g.removed.iter().any(|(n, _)| *n == lv.name) {
                continue;
            }
            let ext = space.extent_size(&lv.vg).max(1);
            let add = (lv.size / 100 * u64::from(policy.extend_by))
                .div_ceil(ext)
                .max(1);
            let what = format!("{} is {fill:.0}% full", lv.path());
            if add * ext > space.free(&lv.vg) {
                let msg = format!("{what} but volume group {} has only {} free: it will become invalid when full (free space or lower the policy's size)", lv.vg, format_size(space.free(&lv.vg)));
                warn!(policy = %policy.name, snapshot = %lv.path(), "{msg}");
                g.warnings.push(msg);
                continue;
            }
            if self.dry_run {
                g.extended.push(format!(
                    "{what}: would extend by {}",
                    format_size(add * ext)
                ));
                continue;
            }
            let (id, now) = (m.record.id, self.now);
            let result = self
                .record(|c| c.begin("extend", id, now))
                .and_then(|intent| {
                    let r = self.exec(&commands::extend(&lv.vg, &lv.name, add));
                    self.record(|c| {
                        c.resolve(intent, if r.is_ok() { "extended" } else { "failed" }, now)
                    })?;
                    r
                });
            match result {
                Ok(_) => {
                    space.take(&lv.vg, add * ext);
                    info!(policy = %policy.name, snapshot = %lv.path(), by = %format_size(add * ext), "extended: {what}");
                    g.extended
                        .push(format!("{what}: extended by {}", format_size(add * ext)));
                }
                Err(e) => self.group_error(g, &format!("extending {}", lv.path()), &e),
            }
        }
    }
}

/// A group's plan (see [`Engine::plan_group`]).
pub struct GroupPlan<'f> {
    /// The group's snapshots with a verdict; `decisions[i].index` points here.
    pub members: Vec<&'f Managed>,
    /// Valid snapshots newest first, then invalid ones.
    pub decisions: Vec<crate::plan::Decision>,
    /// For each member: why no rule keeps it (empty when kept).
    pub why_not: Vec<Vec<String>>,
    pub guard: Option<crate::plan::Guard>,
    /// For each member: whether its ranking's guard holds its removal back (a set policy's
    /// sets and its snapshots outside them are ranked, and guarded, apart).
    pub held: Vec<bool>,
    pub warnings: Vec<String>,
}

impl GroupPlan<'_> {
    /// What the plan removes (nothing a guard holds back, unless forced).
    pub fn removals(&self, force: bool) -> impl Iterator<Item = &crate::plan::Decision> {
        self.decisions
            .iter()
            .filter(move |d| !d.keep && (force || !self.held[d.index]))
    }

    pub fn kept(&self) -> impl Iterator<Item = &crate::plan::Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }
}

enum Taken {
    Created(String),
    NotDue(String),
}

fn find_origin<'i>(inv: &'i Inventory, volume: &VolumeRef) -> Result<&'i Lv, RunError> {
    match inv.find(&volume.vg, &volume.lv) {
        Some(lv) if matches!(lv.kind, LvKind::Plain | LvKind::ThinVolume) => Ok(lv),
        Some(lv) => Err(RunError::Refused(
            format!(
                "{volume} is a {:?} volume, not an origin lvsnap can snapshot",
                lv.kind
            )
            .to_lowercase(),
        )),
        None => {
            let vgs: Vec<&str> = inv.vgs.keys().map(String::as_str).collect();
            let lvs = inv.lv_names(&volume.vg);
            let hint = if vgs.contains(&volume.vg.as_str()) {
                format!("logical volumes in {}: {}", volume.vg, lvs.join(", "))
            } else {
                format!(
                    "volume groups: {}",
                    if vgs.is_empty() {
                        "none".to_owned()
                    } else {
                        vgs.join(", ")
                    }
                )
            };
            Err(RunError::Refused(format!(
                "volume {volume} not found ({hint})"
            )))
        }
    }
}

fn check_pool(
    policy: &Policy,
    volume: &VolumeRef,
    origin: &Lv,
    inv: &Inventory,
) -> Result<(), RunError> {
    let Some(pool) = origin.pool.as_deref().and_then(|p| inv.find(&volume.vg, p)) else {
        return Ok(());
    };
    let data = pool.data_percent.unwrap_or(0.0);
    let meta = pool.metadata_percent.unwrap_or(0.0);
    for (what, fill, max) in [
        ("data", data, policy.pool_data_max),
        ("metadata", meta, policy.pool_metadata_max),
    ] {
        if fill >= f64::from(max) {
            return Err(RunError::Refused(format!(
                "thin pool {} {what} is {fill:.1}% full, at or above the policy's limit of {max}%; no snapshot of {volume} taken\n    hint: extend the pool (lvextend), remove snapshots, or raise pool-{what}-max",
                pool.path()
            )));
        }
    }
    Ok(())
}

/// Free space per volume group, and how many snapshots each thick origin and each thin pool
/// has, kept current through a run so that one inventory suffices.
#[derive(Clone)]
pub struct Space {
    vgs: BTreeMap<String, crate::lvm::VgInfo>,
    /// Thick snapshots by (VG, origin), anyone's.
    thick: BTreeMap<(String, String), u32>,
    /// Thin snapshots by (VG, pool), anyone's.
    thin: BTreeMap<(String, String), u32>,
    /// This run's snapshots by cap (see [`cap_key`]): how many it took, and how many of the
    /// older ones its prune is still to remove.
    run: BTreeMap<String, (u32, u32)>,
}

/// What a snapshot of `origin` counts against: its pool's thin snapshots, or its own thick ones.
fn cap_key(vg: &str, origin: &str, pool: Option<&str>) -> String {
    match pool {
        Some(p) => format!("thin {vg}/{p}"),
        None => format!("thick {vg}/{origin}"),
    }
}

impl From<&Inventory> for Space {
    fn from(inv: &Inventory) -> Self {
        let mut space = Space {
            vgs: inv.vgs.clone(),
            thick: BTreeMap::new(),
            thin: BTreeMap::new(),
            run: BTreeMap::new(),
        };
        for lv in inv.lvs() {
            match (lv.kind, &lv.origin, &lv.pool) {
                (LvKind::ThickSnapshot, Some(o), _) => space.add_thick(&lv.vg, o),
                (LvKind::ThinSnapshot, _, Some(p)) => space.add_thin(&lv.vg, p),
                _ => {}
            }
        }
        space
    }
}

impl Space {
    pub fn free(&self, vg: &str) -> u64 {
        self.vgs.get(vg).map_or(0, |v| v.free)
    }

    pub fn extent_size(&self, vg: &str) -> u64 {
        self.vgs.get(vg).map_or(4 << 20, |v| v.extent_size.max(1))
    }

    fn take(&mut self, vg: &str, bytes: u64) {
        if let Some(v) = self.vgs.get_mut(vg) {
            v.free = v.free.saturating_sub(bytes);
        }
    }

    fn add_thick(&mut self, vg: &str, origin: &str) {
        *self
            .thick
            .entry((vg.to_owned(), origin.to_owned()))
            .or_default() += 1;
    }

    fn add_thin(&mut self, vg: &str, pool: &str) {
        *self
            .thin
            .entry((vg.to_owned(), pool.to_owned()))
            .or_default() += 1;
    }

    /// A snapshot of `origin` of `size` bytes is (or would be) created.
    fn count(&mut self, volume: &VolumeRef, origin: &Lv, size: u64) {
        match origin.pool.as_deref() {
            Some(pool) if origin.kind == LvKind::ThinVolume => self.add_thin(&volume.vg, pool),
            _ => {
                self.take(&volume.vg, size);
                self.add_thick(&volume.vg, &volume.lv);
            }
        }
    }

    /// `m` was removed: its space and its place under the caps are free again.
    fn removed(&mut self, m: &Managed, inv: &Inventory) {
        let vg = m.record.vg.clone();
        let counter = if m.record.thin {
            let pool =
                m.lv.as_ref()
                    .and_then(|l| l.pool.clone())
                    .or_else(|| inv.find(&vg, &m.record.origin)?.pool.clone())
                    .unwrap_or_default();
            self.thin.get_mut(&(vg, pool))
        } else {
            let bytes = m.lv.as_ref().map_or(m.record.size, |l| l.size);
            if let Some(v) = self.vgs.get_mut(&vg) {
                v.free += bytes;
            }
            self.thick.get_mut(&(vg, m.record.origin.clone()))
        };
        if let Some(n) = counter {
            *n = n.saturating_sub(1);
        }
        let pool = m.record.thin.then(|| {
            m.lv.as_ref()
                .and_then(|l| l.pool.clone())
                .or_else(|| inv.find(&m.record.vg, &m.record.origin)?.pool.clone())
                .unwrap_or_default()
        });
        let key = cap_key(&m.record.vg, &m.record.origin, pool.as_deref());
        if let Some((_, pending)) = self.run.get_mut(&key) {
            *pending = pending.saturating_sub(1);
        }
    }

    /// A snapshot of `origin` was taken in this run; its prune is to remove `leaving` more.
    fn taken_now(&mut self, volume: &VolumeRef, origin: &Lv, leaving: u32) {
        let pool = origin
            .pool
            .as_deref()
            .filter(|_| origin.kind == LvKind::ThinVolume);
        let entry = self
            .run
            .entry(cap_key(&volume.vg, &volume.lv, pool))
            .or_default();
        entry.0 += 1;
        entry.1 += leaving;
    }

    /// How many snapshots count against the cap a new snapshot of `origin` is held to, and
    /// that cap: (count, cap, key, where).
    fn cap_of(
        &self,
        policy: &Policy,
        volume: &VolumeRef,
        origin: &Lv,
    ) -> (u32, u32, &'static str, String) {
        match &origin.pool {
            Some(pool) if origin.kind == LvKind::ThinVolume => (
                self.thin
                    .get(&(volume.vg.clone(), pool.clone()))
                    .copied()
                    .unwrap_or(0),
                policy.max_per_pool,
                "max-per-pool",
                format!("thin pool {}/{pool}", volume.vg),
            ),
            _ => (
                self.thick
                    .get(&(volume.vg.clone(), volume.lv.clone()))
                    .copied()
                    .unwrap_or(0),
                policy.max_thick_per_origin,
                "max-thick-per-origin",
                volume.to_string(),
            ),
        }
    }

    /// Refuses a snapshot of `origin` that would pass the policy's cap on thick snapshots per
    /// origin or thin snapshots per pool.
    fn check_caps(
        &self,
        policy: &Policy,
        volume: &VolumeRef,
        origin: &Lv,
        leaving: u32,
    ) -> Result<(), RunError> {
        let (count, cap, key, place) = self.cap_of(policy, volume, origin);
        let pool = origin
            .pool
            .as_deref()
            .filter(|_| origin.kind == LvKind::ThinVolume);
        let (taken, pending) = self
            .run
            .get(&cap_key(&volume.vg, &volume.lv, pool))
            .copied()
            .unwrap_or_default();
        // Past the cap before this run (others' snapshots, or a prune that failed): what the
        // run prunes does not count then, so a removal that keeps failing cannot let the count
        // grow run by run. Else what this run's prunes are to remove does not count.
        let before = count.saturating_sub(taken);
        let left = if before > cap {
            count
        } else {
            count.saturating_sub(pending + leaving)
        };
        if left < cap {
            return Ok(());
        }
        let count = if before > cap { before } else { count };
        let why = if key == "max-per-pool" {
            format!("{place} holds {count} thin snapshots, and {key} of policy {} is {cap} (thin_check at boot slows with each)", policy.name)
        } else {
            format!("{place} has {count} thick snapshots, and {key} of policy {} is {cap} (each thick snapshot copies every write to {place} once more)", policy.name)
        };
        let over = if before > cap {
            "; it was past the limit before this run (a limit lowered, other tools' snapshots, or a removal that failed: `lvsnap catalog events`)"
        } else {
            ""
        };
        Err(RunError::Refused(format!(
            "{why}{over}; no snapshot of {volume} taken\n    hint: keep fewer (lower the keep rules, then `lvsnap prune`; unpin what need not stay), or raise {key}"
        )))
    }

    /// Extents for a thick snapshot of `origin`, checked against free space and keep-free.
    fn thick_extents(
        &self,
        policy: &Policy,
        volume: &VolumeRef,
        origin: &Lv,
        at_least: u64,
    ) -> Result<u64, RunError> {
        let Some(vg) = self.vgs.get(&volume.vg) else {
            return Err(RunError::Refused(format!(
                "volume group {} not found",
                volume.vg
            )));
        };
        let ext = vg.extent_size.max(1);
        let bytes = policy.size.bytes(origin.size, vg.free).max(at_least);
        let extents = bytes.div_ceil(ext).max(1);
        let needed = extents * ext;
        let reserve = policy.keep_free.bytes(vg.size);
        if needed + reserve > vg.free {
            let keep = if reserve > 0 {
                format!(" and keep {} free (keep-free)", format_size(reserve))
            } else {
                String::new()
            };
            let why = if at_least > 0 {
                format!("at least {} to hold what it guards", format_size(at_least))
            } else {
                format!("size = \"{}\"", policy.size)
            };
            return Err(RunError::Refused(format!(
                "volume group {} has {} free, too little for a {} snapshot of {volume} ({why}){keep}; nothing was created\n    hint: lower the policy's size, remove snapshots, or extend the volume group (vgextend)",
                volume.vg,
                format_size(vg.free),
                format_size(needed),
            )));
        }
        Ok(extents)
    }
}
