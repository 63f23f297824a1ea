//! Retention planner tables with fixed clocks, each named after the policy it pins down, and
//! property tests for the planner's invariants. Every table case is planned a second time, on
//! its own kept set at a much later `now`, to prove the result does not drift.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lvsnap::config::parse_str;
use lvsnap::plan::{plan_retention, Busy, Guard, Reasons, RetentionPlan, Rules, SnapshotView};
use proptest::prelude::*;

fn rules(keep: &str, extra: &str) -> Rules {
    let src = format!("[policy.p]\nvolumes = [\"vg0/lv\"]\nschedule = \"0 * * * *\"\nkeep = {{ {keep} }}\n{extra}\n");
    Rules::from(
        &parse_str(&src, Path::new("case.toml"))
            .expect("valid case")
            .policies[0],
    )
}

fn berlin(keep: &str) -> Rules {
    rules(keep, "timezone = \"Europe/Berlin\"")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn snaps(times: &[&str]) -> Vec<SnapshotView> {
    times
        .iter()
        .map(|t| SnapshotView::new(format!("lv-{t}"), utc(t)))
        .collect()
}

/// The kept snapshots' times with their reasons, newest first.
#[track_caller]
fn kept(plan: &RetentionPlan, s: &[SnapshotView]) -> Vec<(String, String)> {
    plan.kept()
        .map(|d| (lvsnap::report::utc(s[d.index].time), d.reasons.to_string()))
        .collect()
}

#[track_caller]
fn assert_kept(plan: &RetentionPlan, s: &[SnapshotView], expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, r)| (t.to_string(), r.to_string()))
        .collect();
    assert_eq!(kept(plan, s), expected);
}

/// Plans the kept set again a decade later: nothing more may go (min-age aside, which the
/// cases below that use it check themselves).
#[track_caller]
fn assert_stable(rules: &Rules, plan: &RetentionPlan, s: &[SnapshotView]) {
    let survivors: Vec<SnapshotView> = plan.kept().map(|d| s[d.index].clone()).collect();
    let later = survivors.iter().map(|s| s.time).max().unwrap() + Duration::days(3650);
    let again = plan_retention(later, rules, &survivors);
    let removed: Vec<&str> = again
        .decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| survivors[d.index].name.as_str())
        .collect();
    assert!(
        removed.is_empty(),
        "replanning the kept set removes {removed:?}"
    );
}

#[test]
fn berlin_fall_back_hour_is_one_hourly_bucket() {
    // 00:30Z and 01:30Z on 2024-10-27 are both 02:30 in Berlin (CEST, then CET).
    let s = snaps(&[
        "2024-10-26T23:30:00Z",
        "2024-10-27T00:30:00Z",
        "2024-10-27T01:30:00Z",
    ]);
    let r = berlin("hourly = 3");
    let plan = plan_retention(utc("2024-10-27T02:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2024-10-27T01:30:00Z", "hourly, newest"),
            ("2024-10-26T23:30:00Z", "hourly"),
        ],
    );
    assert_stable(&r, &plan, &s);
}

#[test]
fn utc_fall_back_hour_is_two_hourly_buckets() {
    let s = snaps(&[
        "2024-10-26T23:30:00Z",
        "2024-10-27T00:30:00Z",
        "2024-10-27T01:30:00Z",
    ]);
    let r = rules("hourly = 3", "timezone = \"UTC\"");
    let plan = plan_retention(utc("2024-10-27T02:00:00Z"), &r, &s);
    assert_eq!(plan.kept().count(), 3);
    assert_stable(&r, &plan, &s);
}

#[test]
fn berlin_spring_forward_day_has_23_hours() {
    // Local 2024-03-31 00:00 CET, 23:30 CEST, and 2024-04-01 00:00 CEST.
    let s = snaps(&[
        "2024-03-30T23:00:00Z",
        "2024-03-31T21:30:00Z",
        "2024-03-31T22:00:00Z",
    ]);
    let r = berlin("daily = 2");
    let plan = plan_retention(utc("2024-04-01T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2024-03-31T22:00:00Z", "daily, newest"),
            ("2024-03-31T21:30:00Z", "daily"),
        ],
    );
    assert_stable(&r, &plan, &s);

    // Read in UTC the same instants fall on other days.
    let r = rules("daily = 2", "timezone = \"UTC\"");
    let plan = plan_retention(utc("2024-04-01T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2024-03-31T22:00:00Z", "daily, newest"),
            ("2024-03-30T23:00:00Z", "daily"),
        ],
    );
}

#[test]
fn berlin_spring_forward_skipped_hour_is_no_bucket() {
    // 00:59Z is 01:59 CET; 01:00Z is 03:00 CEST: neighbours in time, two hours apart locally.
    let s = snaps(&[
        "2024-03-31T00:59:00Z",
        "2024-03-31T01:00:00Z",
        "2024-03-31T01:30:00Z",
    ]);
    let r = berlin("hourly = 2");
    let plan = plan_retention(utc("2024-03-31T02:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2024-03-31T01:30:00Z", "hourly, newest"),
            ("2024-03-31T00:59:00Z", "hourly"),
        ],
    );
}

#[test]
fn weekly_iso_week_spans_new_year() {
    // Sun 2024-12-29 is 2024-W52; Mon 2024-12-30 and Wed 2025-01-01 share 2025-W01.
    let s = snaps(&[
        "2024-12-29T12:00:00Z",
        "2024-12-30T12:00:00Z",
        "2025-01-01T12:00:00Z",
    ]);
    let r = rules("weekly = 2", "");
    let plan = plan_retention(utc("2025-01-02T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2025-01-01T12:00:00Z", "weekly, newest"),
            ("2024-12-29T12:00:00Z", "weekly"),
        ],
    );
    assert_stable(&r, &plan, &s);
}

#[test]
fn weekly_week_53_belongs_to_the_old_year() {
    // Mon 2020-12-28 and Sun 2021-01-03 are both 2020-W53; Mon 2021-01-04 is 2021-W01.
    let s = snaps(&[
        "2020-12-28T12:00:00Z",
        "2021-01-03T12:00:00Z",
        "2021-01-04T12:00:00Z",
    ]);
    let r = rules("weekly = 2", "");
    let plan = plan_retention(utc("2021-01-05T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2021-01-04T12:00:00Z", "weekly, newest"),
            ("2021-01-03T12:00:00Z", "weekly"),
        ],
    );
}

#[test]
fn daily_survives_a_multi_day_downtime() {
    // Hourly snapshots on 1 March, the host down until 6 March, then hourly again.
    let mut times: Vec<String> = (0..24)
        .map(|h| format!("2026-03-01T{h:02}:00:00Z"))
        .collect();
    times.extend((0..3).map(|h| format!("2026-03-06T{h:02}:00:00Z")));
    let refs: Vec<&str> = times.iter().map(String::as_str).collect();
    let s = snaps(&refs);
    let r = rules("daily = 2", "");
    let plan = plan_retention(utc("2026-03-06T03:00:00Z"), &r, &s);
    // Buckets count days that have snapshots: the downtime does not empty the history.
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-03-06T02:00:00Z", "daily, newest"),
            ("2026-03-01T23:00:00Z", "daily"),
        ],
    );
    assert_stable(&r, &plan, &s);
}

#[test]
fn monthly_all_keeps_every_month_and_the_oldest() {
    let s = snaps(&[
        "2026-01-05T00:00:00Z",
        "2026-01-20T00:00:00Z",
        "2026-02-10T00:00:00Z",
        "2026-02-11T00:00:00Z",
        "2026-04-01T00:00:00Z",
    ]);
    let r = rules("monthly = \"all\"", "max-remove-percent = 100");
    let plan = plan_retention(utc("2026-04-02T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-04-01T00:00:00Z", "monthly, newest"),
            ("2026-02-11T00:00:00Z", "monthly"),
            ("2026-01-20T00:00:00Z", "monthly"),
            ("2026-01-05T00:00:00Z", "oldest-monthly"),
        ],
    );
    assert_stable(&r, &plan, &s);
}

#[test]
fn daily_with_count_left_keeps_the_oldest() {
    let s = snaps(&[
        "2026-03-01T08:00:00Z",
        "2026-03-01T20:00:00Z",
        "2026-03-02T08:00:00Z",
        "2026-03-02T20:00:00Z",
    ]);
    let r = rules("daily = 7", "");
    let plan = plan_retention(utc("2026-03-03T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-03-02T20:00:00Z", "daily, newest"),
            ("2026-03-01T20:00:00Z", "daily"),
            ("2026-03-01T08:00:00Z", "oldest-daily"),
        ],
    );
    // With the count used up, the oldest goes.
    let plan = plan_retention(utc("2026-03-03T00:00:00Z"), &rules("daily = 2", ""), &s);
    assert_eq!(kept(&plan, &s).len(), 2);
}

#[test]
fn within_is_anchored_at_the_newest_snapshot() {
    let s = snaps(&[
        "2026-03-09T12:00:00Z",
        "2026-03-09T12:01:00Z",
        "2026-03-10T12:00:00Z",
    ]);
    let r = rules("within = \"1d\"", "");
    // Long after the newest: within still counts back from the newest, not from now.
    let plan = plan_retention(utc("2026-06-01T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-03-10T12:00:00Z", "within, newest"),
            ("2026-03-09T12:01:00Z", "within"),
        ],
    );
    let removed = plan.decisions.iter().find(|d| !d.keep).unwrap();
    let why = plan.explain_removal(removed, &s, &r);
    assert_eq!(
        why,
        vec!["older than 1d before the newest (cut-off 2026-03-09 12:00:00Z)"]
    );
    assert_stable(&r, &plan, &s);
}

#[test]
fn last_with_min_age_keeps_young_snapshots() {
    let s = snaps(&[
        "2026-03-01T07:00:00Z",
        "2026-03-01T09:00:00Z",
        "2026-03-01T09:30:00Z",
    ]);
    let r = rules("last = 1", "min-age = \"2h\"");
    let plan = plan_retention(utc("2026-03-01T10:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-03-01T09:30:00Z", "last, newest, min-age"),
            ("2026-03-01T09:00:00Z", "min-age"),
        ],
    );
    // Two hours on, min-age releases the 09:00 snapshot, and only that.
    let survivors: Vec<SnapshotView> = plan.kept().map(|d| s[d.index].clone()).collect();
    let later = plan_retention(utc("2026-03-01T12:00:00Z"), &r, &survivors);
    assert_kept(
        &later,
        &survivors,
        &[("2026-03-01T09:30:00Z", "last, newest")],
    );
}

#[test]
fn last_keeps_pinned_snapshots_whatever_their_age() {
    let mut s = snaps(&[
        "2020-01-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-03-02T00:00:00Z",
    ]);
    s[0].pinned = true;
    let r = rules("last = 1", "");
    let plan = plan_retention(utc("2026-03-03T00:00:00Z"), &r, &s);
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-03-02T00:00:00Z", "last, newest"),
            ("2020-01-01T00:00:00Z", "pinned"),
        ],
    );
}

#[test]
fn last_keeps_mounted_and_merging_snapshots() {
    let mut s = snaps(&[
        "2026-03-01T00:00:00Z",
        "2026-03-01T01:00:00Z",
        "2026-03-01T02:00:00Z",
        "2026-03-01T03:00:00Z",
    ]);
    s[0].busy = Some(Busy::Mounted);
    s[1].busy = Some(Busy::Merging);
    let plan = plan_retention(utc("2026-03-02T00:00:00Z"), &rules("last = 1", ""), &s);
    let reasons: Vec<String> = kept(&plan, &s).into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons, vec!["last, newest", "merging", "mounted"]);
}

#[test]
fn last_with_a_future_dated_snapshot_keeps_it_and_prunes_the_others_by_the_rules() {
    let s = snaps(&[
        "2026-03-01T00:00:00Z",
        "2026-03-01T00:30:00Z",
        "2026-03-01T01:00:00Z",
        "2026-03-01T01:30:00Z",
        "2026-03-05T00:00:00Z",
    ]);
    let now = utc("2026-03-01T02:00:00Z");
    let plan = plan_retention(now, &rules("last = 2", "max-remove-percent = 100"), &s);
    let kept: Vec<(String, String)> = kept(&plan, &s);
    assert_eq!(
        kept,
        vec![
            ("2026-03-01T01:30:00Z".to_owned(), "last, newest".to_owned()),
            ("2026-03-01T01:00:00Z".to_owned(), "last".to_owned()),
            ("2026-03-05T00:00:00Z".to_owned(), "future".to_owned()),
        ],
        "the future one takes no place of the rules and the group's newest is the newest real one"
    );
    assert!(plan.warnings.iter().any(|w| w.contains("in the future")));
    assert_eq!(plan.guard, None);
    assert_eq!(plan.removals(false).count(), 2);
}

#[test]
fn a_clock_far_behind_keeps_every_snapshot_it_cannot_date() {
    let s = snaps(&["2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"]);
    let plan = plan_retention(utc("2020-01-01T00:00:00Z"), &rules("last = 1", ""), &s);
    assert_eq!(plan.removals(true).count(), 0);
    assert_eq!(plan.warnings.len(), 2);
}

#[test]
fn last_one_of_four_trips_the_breaker() {
    let s = snaps(&[
        "2026-03-01T00:00:00Z",
        "2026-03-01T01:00:00Z",
        "2026-03-01T02:00:00Z",
        "2026-03-01T03:00:00Z",
    ]);
    let plan = plan_retention(utc("2026-03-02T00:00:00Z"), &rules("last = 1", ""), &s);
    assert_eq!(
        plan.guard,
        Some(Guard::TooManyRemovals {
            remove: 3,
            of: 4,
            limit_percent: 50
        })
    );
    assert_eq!(plan.removals(false).count(), 0);
    assert_eq!(plan.removals(true).count(), 3);
    // Half is allowed.
    let plan = plan_retention(utc("2026-03-02T00:00:00Z"), &rules("last = 2", ""), &s);
    assert_eq!(plan.guard, None);
    assert_eq!(plan.removals(false).count(), 2);
}

#[test]
fn invalid_snapshots_are_outside_the_rules() {
    let mut s = snaps(&[
        "2026-03-01T00:00:00Z",
        "2026-03-01T01:00:00Z",
        "2026-03-01T02:00:00Z",
    ]);
    s[2].invalid = true;
    let r = rules("last = 2", "");
    let plan = plan_retention(utc("2026-03-02T00:00:00Z"), &r, &s);
    // The newest valid one is 01:00; the invalid 02:00 one is removed, not counted by `last`.
    assert_kept(
        &plan,
        &s,
        &[
            ("2026-03-01T01:00:00Z", "last, newest"),
            ("2026-03-01T00:00:00Z", "last"),
        ],
    );
    let removed: Vec<_> = plan.removals(false).collect();
    assert_eq!(removed.len(), 1);
    assert!(plan.explain_removal(removed[0], &s, &r)[0].starts_with("invalid"));
    let plan = plan_retention(
        utc("2026-03-02T00:00:00Z"),
        &rules("last = 2", "invalid = \"keep\""),
        &s,
    );
    assert_eq!(plan.kept().count(), 3);
}

#[test]
fn hourly_removal_says_why_no_rule_applies() {
    let s = snaps(&[
        "2026-03-01T00:00:00Z",
        "2026-03-01T00:30:00Z",
        "2026-03-01T01:00:00Z",
        "2026-03-01T02:00:00Z",
    ]);
    let r = rules("last = 1, hourly = 2", "max-remove-percent = 100");
    let plan = plan_retention(utc("2026-03-02T00:00:00Z"), &r, &s);
    let why: Vec<Vec<String>> = plan
        .removals(false)
        .map(|d| plan.explain_removal(d, &s, &r))
        .collect();
    assert_eq!(
        why,
        vec![
            vec![
                "not among the 1 newest".to_owned(),
                "hourly: beyond the 2 most recent hours".to_owned()
            ],
            vec![
                "not among the 1 newest".to_owned(),
                "hourly: beyond the 2 most recent hours".to_owned()
            ],
        ]
    );
}

#[test]
fn empty_group_plans_nothing() {
    let plan = plan_retention(utc("2026-03-02T00:00:00Z"), &rules("last = 1", ""), &[]);
    assert!(plan.decisions.is_empty());
    assert_eq!(plan.guard, None);
}

fn arb_rules() -> impl Strategy<Value = Rules> {
    let count = prop_oneof![
        Just(None),
        (1u32..6).prop_map(|n| Some(n.to_string())),
        Just(Some("\"all\"".to_owned()))
    ];
    (
        proptest::collection::vec(count, 7),
        prop_oneof![Just(None), Just(Some("\"36h\"")), Just(Some("\"1w\""))],
        prop_oneof![Just(""), Just("min-age = \"3h\"")],
        prop_oneof![Just("UTC"), Just("Europe/Berlin"), Just("America/New_York")],
    )
        .prop_map(|(counts, within, min_age, tz)| {
            let names = [
                "last",
                "hourly",
                "daily",
                "weekly",
                "monthly",
                "quarterly",
                "yearly",
            ];
            let mut parts: Vec<String> = names
                .iter()
                .zip(&counts)
                .filter_map(|(n, c)| c.as_ref().map(|c| format!("{n} = {c}")))
                .collect();
            if let Some(w) = within {
                parts.push(format!("within = {w}"));
            }
            if parts.is_empty() {
                parts.push("last = 1".to_owned());
            }
            rules(
                &parts.join(", "),
                &format!("{min_age}\ntimezone = \"{tz}\"\nmax-remove-percent = 100"),
            )
        })
}

fn arb_snapshots() -> impl Strategy<Value = Vec<SnapshotView>> {
    // Up to 300 snapshots over two years, some at identical instants, some pinned.
    proptest::collection::vec(
        (0i64..2 * 365 * 24 * 60, proptest::bool::weighted(0.05)),
        0..300,
    )
    .prop_map(|v| {
        let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        v.into_iter()
            .enumerate()
            .map(|(i, (m, pinned))| SnapshotView {
                pinned,
                ..SnapshotView::new(format!("s{i:04}"), base + Duration::minutes(m))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn planning_the_kept_set_again_removes_nothing(r in arb_rules(), s in arb_snapshots(), ahead in 0i64..10_000) {
        let now = s.iter().map(|s| s.time).max().unwrap_or_default() + Duration::minutes(ahead);
        let plan = plan_retention(now, &r, &s);
        let survivors: Vec<SnapshotView> = plan.kept().map(|d| s[d.index].clone()).collect();
        let again = plan_retention(now, &r, &survivors);
        prop_assert!(again.decisions.iter().all(|d| d.keep));
    }

    #[test]
    fn advancing_now_removes_only_what_min_age_released(r in arb_rules(), s in arb_snapshots(), ahead in 0i64..600, later in 1i64..100_000) {
        let now = s.iter().map(|s| s.time).max().unwrap_or_default() + Duration::minutes(ahead);
        let plan = plan_retention(now, &r, &s);
        let survivors: Vec<(SnapshotView, Reasons)> = plan.kept().map(|d| (s[d.index].clone(), d.reasons)).collect();
        let views: Vec<SnapshotView> = survivors.iter().map(|(v, _)| v.clone()).collect();
        let again = plan_retention(now + Duration::minutes(later), &r, &views);
        for d in again.decisions.iter().filter(|d| !d.keep) {
            let before = survivors[d.index].1;
            prop_assert!(before.names().all(|n| n == "min-age"), "{} was kept for {before} and is now removed", views[d.index].name);
        }
    }

    #[test]
    fn the_newest_snapshot_always_survives(r in arb_rules(), s in arb_snapshots(), ahead in -100i64..100_000) {
        prop_assume!(!s.is_empty());
        let newest = s.iter().map(|s| s.time).max().unwrap();
        let now = newest + Duration::minutes(ahead);
        let plan = plan_retention(now, &r, &s);
        let key = |d: &&lvsnap::plan::Decision| (s[d.index].time, s[d.index].name.clone());
        let top = plan.decisions.iter().max_by_key(key).unwrap();
        prop_assert_eq!(s[top.index].time, newest);
        // Kept as the group's newest, or as dated in the future when the clock is behind it.
        prop_assert!(top.keep && (top.reasons.contains(Reasons::NEWEST) || top.reasons.contains(Reasons::FUTURE)));
        prop_assert!(plan.removals(true).all(|d| key(&d) < key(&top)));
        // The newest snapshot dated up to now always carries "newest".
        let dated = plan.decisions.iter().filter(|d| !lvsnap::plan::is_future(s[d.index].time, now, r.future_skew)).max_by_key(key);
        prop_assert!(dated.is_none_or(|d| d.keep && d.reasons.contains(Reasons::NEWEST)));
    }
}
