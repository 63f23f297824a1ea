//! The retention planner: `now` + rules + one group's snapshots → keep or remove for each, with
//! every reason. Pure: no clock, no I/O. The semantics are pinned in DESIGN.md ("Retention
//! semantics") and by the tables in `tests/it/retention.rs`.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::config::{Count, InvalidAction, Keep, Period, Policy, Span};

/// The parts of a policy that decide retention (snapshots and, later, backups share them).
#[derive(Debug, Clone)]
pub struct Rules {
    pub keep: Keep,
    pub min_age: Span,
    pub timezone: Tz,
    pub max_remove_percent: u8,
    pub future_skew: Duration,
    pub invalid: InvalidAction,
}

impl From<&Policy> for Rules {
    fn from(p: &Policy) -> Self {
        Rules {
            keep: p.keep.clone(),
            min_age: p.min_age,
            timezone: p.timezone,
            max_remove_percent: p.max_remove_percent,
            future_skew: p.future_skew,
            invalid: p.invalid,
        }
    }
}

/// Why something outside the rules holds a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    Mounted,
    Merging,
    Backup,
    /// The base of the next replication increment.
    Replica,
}

/// What the planner needs to know of one snapshot of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotView {
    pub name: String,
    pub time: DateTime<Utc>,
    pub pinned: bool,
    /// LVM reports it invalid (an overflowed thick snapshot): its data is gone.
    pub invalid: bool,
    pub busy: Option<Busy>,
}

impl SnapshotView {
    pub fn new(name: impl Into<String>, time: DateTime<Utc>) -> Self {
        SnapshotView {
            name: name.into(),
            time,
            pinned: false,
            invalid: false,
            busy: None,
        }
    }
}

/// Every reason a snapshot is kept, as a set. Printed in the order of [`Reasons::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasons(u32);

impl Reasons {
    pub const LAST: u32 = 1 << 0;
    pub const WITHIN: u32 = 1 << 1;
    /// `PERIOD << p` for the period `p` (in [`Period::ALL`] order).
    const PERIOD: u32 = 1 << 2;
    /// `OLDEST << p`: the oldest snapshot, kept because rule `p` did not use its count up.
    const OLDEST: u32 = 1 << 8;
    pub const NEWEST: u32 = 1 << 14;
    pub const PINNED: u32 = 1 << 15;
    pub const MIN_AGE: u32 = 1 << 16;
    pub const FUTURE: u32 = 1 << 17;
    pub const MOUNTED: u32 = 1 << 18;
    pub const MERGING: u32 = 1 << 19;
    pub const BACKUP: u32 = 1 << 20;
    pub const KEEP_INVALID: u32 = 1 << 21;
    pub const REPLICA_BASE: u32 = 1 << 22;

    pub const NAMES: [&'static str; 23] = [
        "last",
        "within",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "quarterly",
        "yearly",
        "oldest-hourly",
        "oldest-daily",
        "oldest-weekly",
        "oldest-monthly",
        "oldest-quarterly",
        "oldest-yearly",
        "newest",
        "pinned",
        "min-age",
        "future",
        "mounted",
        "merging",
        "backup",
        "keep-invalid",
        "replica-base",
    ];

    pub fn period(p: Period) -> u32 {
        Self::PERIOD << p as u32
    }

    pub fn oldest(p: Period) -> u32 {
        Self::OLDEST << p as u32
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    pub fn insert(&mut self, bit: u32) {
        self.0 |= bit;
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

impl fmt::Display for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().collect();
        f.write_str(&names.join(", "))
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Index into the slice given to [`plan_retention`].
    pub index: usize,
    pub keep: bool,
    pub reasons: Reasons,
}

/// Why a plan's removals must not be carried out as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The run would remove more than the policy allows at once; `--force` overrides.
    TooManyRemovals {
        remove: usize,
        of: usize,
        limit_percent: u8,
    },
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Guard::TooManyRemovals { remove, of, limit_percent } => write!(
                f,
                "would remove {remove} of {of} snapshots, more than the {limit_percent}% allowed in one run (max-remove-percent); check the policy, then run prune --force"
            ),
        }
    }
}

/// Per-rule facts kept to explain removals without storing text for every snapshot.
#[derive(Debug, Clone, Default)]
struct RuleTrace {
    /// For each period rule: the first sorted position it did not reach (count used up).
    stopped_at: [Option<usize>; 6],
    within_cutoff: Option<DateTime<Utc>>,
}

/// The planner's answer for one group.
#[derive(Debug, Clone)]
pub struct RetentionPlan {
    /// Valid snapshots newest first, then invalid ones newest first.
    pub decisions: Vec<Decision>,
    pub guard: Option<Guard>,
    /// Things an administrator should hear about: future-dated snapshots, invalid ones.
    pub warnings: Vec<String>,
    trace: RuleTrace,
    /// Sorted position of each valid decision, for explanations.
    positions: Vec<Option<usize>>,
}

impl RetentionPlan {
    /// The snapshots to remove now: none while a guard holds, unless `force` lifts the breaker.
    pub fn removals(&self, force: bool) -> impl Iterator<Item = &Decision> {
        let allowed = match self.guard {
            None => true,
            Some(Guard::TooManyRemovals { .. }) => force,
        };
        self.decisions.iter().filter(move |d| allowed && !d.keep)
    }

    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// Why no rule keeps a removed snapshot, one clause per rule.
    pub fn explain_removal(
        &self,
        d: &Decision,
        snapshots: &[SnapshotView],
        rules: &Rules,
    ) -> Vec<String> {
        let s = &snapshots[d.index];
        if s.invalid {
            return vec![
                "invalid: its copy-on-write space overflowed and its data is lost".to_owned(),
            ];
        }
        let pos = self.positions[d.index].unwrap_or(usize::MAX);
        let mut why = Vec::new();
        if let Some(Count::N(n)) = rules.keep.last {
            why.push(format!("not among the {n} newest"));
        }
        if let (Some(w), Some(cut)) = (rules.keep.within, self.trace.within_cutoff) {
            why.push(format!(
                "older than {w} before the newest (cut-off {})",
                cut.format("%Y-%m-%d %H:%M:%SZ")
            ));
        }
        for p in Period::ALL {
            let Some(count) = rules.keep.period(p) else {
                continue;
            };
            match self.trace.stopped_at[p as usize] {
                Some(stop) if pos >= stop => why.push(format!(
                    "{}: beyond the {count} most recent {}s",
                    p.key(),
                    p.noun()
                )),
                _ => why.push(format!(
                    "{}: a newer snapshot is kept for its {}",
                    p.key(),
                    p.noun()
                )),
            }
        }
        if why.is_empty() {
            why.push("no rule keeps it".to_owned());
        }
        why
    }
}

/// Civil time parts of a snapshot in the policy's zone, computed once per snapshot.
fn bucket_key(local: &NaiveDateTime, p: Period) -> u64 {
    let (y, m, d, h) = (
        local.year() as u64,
        u64::from(local.month()),
        u64::from(local.day()),
        u64::from(local.hour()),
    );
    match p {
        Period::Hourly => ((y * 13 + m) * 32 + d) * 24 + h,
        Period::Daily => (y * 13 + m) * 32 + d,
        Period::Weekly => {
            let w = local.iso_week();
            w.year() as u64 * 54 + u64::from(w.week())
        }
        Period::Monthly => y * 13 + m,
        Period::Quarterly => y * 4 + (m - 1) / 3,
        Period::Yearly => y,
    }
}

/// Whether a snapshot time is beyond a policy's allowed skew into the future.
pub fn is_future(t: DateTime<Utc>, now: DateTime<Utc>, skew: Duration) -> bool {
    t > now + skew
}

/// Plans one group. `snapshots` may come in any order; decisions refer back by index.
pub fn plan_retention(
    now: DateTime<Utc>,
    rules: &Rules,
    snapshots: &[SnapshotView],
) -> RetentionPlan {
    // A snapshot dated beyond the skew is kept and reported, and the rules count only the
    // others: a clock that once ran ahead must neither make the group look fresh nor take a
    // place a real snapshot should hold (keeping more, never less, while it is wrong).
    let newest_first = |v: &mut Vec<usize>| {
        v.sort_unstable_by(|&a, &b| {
            let (a, b) = (&snapshots[a], &snapshots[b]);
            b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name))
        });
    };
    let (mut future, mut valid): (Vec<usize>, Vec<usize>) = (0..snapshots.len())
        .filter(|&i| !snapshots[i].invalid)
        .partition(|&i| is_future(snapshots[i].time, now, rules.future_skew));
    newest_first(&mut valid);
    newest_first(&mut future);
    let mut reasons = vec![Reasons::default(); valid.len()];
    let mut trace = RuleTrace::default();
    apply_rules(rules, snapshots, &valid, &mut reasons, &mut trace);

    let mut plan = RetentionPlan {
        decisions: Vec::with_capacity(snapshots.len()),
        guard: None,
        warnings: Vec::new(),
        trace,
        positions: vec![None; snapshots.len()],
    };
    let min_age_cutoff =
        (!rules.min_age.is_zero()).then(|| rules.min_age.before(now, rules.timezone));
    for (pos, (&i, mut r)) in valid.iter().zip(reasons).enumerate() {
        let s = &snapshots[i];
        if pos == 0 {
            r.insert(Reasons::NEWEST);
        }
        protect(s, now, rules, min_age_cutoff, &mut r);
        plan.positions[i] = Some(pos);
        plan.decisions.push(Decision {
            index: i,
            keep: !r.is_empty(),
            reasons: r,
        });
    }
    for &i in &future {
        let s = &snapshots[i];
        let mut r = Reasons::default();
        protect(s, now, rules, min_age_cutoff, &mut r);
        plan.warnings.push(format!(
            "snapshot {} is dated {}, in the future: kept, and not counted by the keep rules or the schedule until the clock passes it; check the clock",
            s.name, s.time
        ));
        plan.decisions.push(Decision {
            index: i,
            keep: true,
            reasons: r,
        });
    }
    plan_invalid(now, rules, snapshots, &mut plan);

    let removing = plan
        .decisions
        .iter()
        .filter(|d| !d.keep && !snapshots[d.index].invalid)
        .count();
    let too_many = removing * 100 > valid.len() * usize::from(rules.max_remove_percent);
    plan.guard = too_many.then_some(Guard::TooManyRemovals {
        remove: removing,
        of: valid.len(),
        limit_percent: rules.max_remove_percent,
    });
    plan
}

fn apply_rules(
    rules: &Rules,
    snapshots: &[SnapshotView],
    valid: &[usize],
    reasons: &mut [Reasons],
    trace: &mut RuleTrace,
) {
    let n = valid.len();
    if n == 0 {
        return;
    }
    if let Some(last) = rules.keep.last {
        let take = match last {
            Count::N(k) => (k as usize).min(n),
            Count::All => n,
        };
        reasons[..take]
            .iter_mut()
            .for_each(|r| r.insert(Reasons::LAST));
    }
    if let Some(within) = rules.keep.within {
        let cutoff = within.before(snapshots[valid[0]].time, rules.timezone);
        trace.within_cutoff = Some(cutoff);
        for (pos, &i) in valid.iter().enumerate() {
            if snapshots[i].time <= cutoff {
                break;
            }
            reasons[pos].insert(Reasons::WITHIN);
        }
    }
    let periods: Vec<(Period, Count)> = Period::ALL
        .into_iter()
        .filter_map(|p| rules.keep.period(p).map(|c| (p, c)))
        .collect();
    if periods.is_empty() {
        return;
    }
    let local: Vec<NaiveDateTime> = valid
        .iter()
        .map(|&i| {
            snapshots[i]
                .time
                .with_timezone(&rules.timezone)
                .naive_local()
        })
        .collect();
    for (p, count) in periods {
        let bit = Reasons::period(p);
        let (mut kept, mut last_key) = (0usize, None);
        for (pos, t) in local.iter().enumerate() {
            if count.is_used_up(kept) {
                trace.stopped_at[p as usize] = Some(pos);
                break;
            }
            let key = bucket_key(t, p);
            if last_key != Some(key) {
                reasons[pos].insert(bit);
                kept += 1;
                last_key = Some(key);
            }
        }
        if !count.is_used_up(kept) && !reasons[n - 1].contains(bit) {
            reasons[n - 1].insert(Reasons::oldest(p));
        }
    }
}

fn protect(
    s: &SnapshotView,
    now: DateTime<Utc>,
    rules: &Rules,
    min_age_cutoff: Option<DateTime<Utc>>,
    r: &mut Reasons,
) {
    if s.pinned {
        r.insert(Reasons::PINNED);
    }
    if min_age_cutoff.is_some_and(|cut| s.time > cut) {
        r.insert(Reasons::MIN_AGE);
    }
    if is_future(s.time, now, rules.future_skew) {
        r.insert(Reasons::FUTURE);
    }
    match s.busy {
        Some(Busy::Mounted) => r.insert(Reasons::MOUNTED),
        Some(Busy::Merging) => r.insert(Reasons::MERGING),
        Some(Busy::Backup) => r.insert(Reasons::BACKUP),
        Some(Busy::Replica) => r.insert(Reasons::REPLICA_BASE),
        None => {}
    }
}

/// Invalid snapshots are outside the rules: removed, unless the policy keeps them or something
/// holds them.
fn plan_invalid(
    now: DateTime<Utc>,
    rules: &Rules,
    snapshots: &[SnapshotView],
    plan: &mut RetentionPlan,
) {
    let mut invalid: Vec<usize> = (0..snapshots.len())
        .filter(|&i| snapshots[i].invalid)
        .collect();
    invalid.sort_unstable_by(|&a, &b| snapshots[b].time.cmp(&snapshots[a].time));
    for i in invalid {
        let s = &snapshots[i];
        let mut r = Reasons::default();
        if rules.invalid == InvalidAction::Keep {
            r.insert(Reasons::KEEP_INVALID);
        }
        protect(s, now, rules, None, &mut r);
        plan.warnings.push(format!(
            "snapshot {} is invalid (overflowed); its data is lost",
            s.name
        ));
        plan.decisions.push(Decision {
            index: i,
            keep: !r.is_empty(),
            reasons: r,
        });
    }
}
