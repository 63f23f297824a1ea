//! Snapshot names: derived from the origin LV and the UTC creation time, sortable, unique.
//! `home-lvsnap-20261128T060000Z`, and `home-lvsnap-20261128T060000Z-2` on a collision.

use chrono::{DateTime, NaiveDateTime, Utc};

const MARK: &str = "-lvsnap-";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// The longest origin LV name that still leaves room for a snapshot name within LVM's 127.
pub const MAX_ORIGIN_NAME: usize = 127 - MARK.len() - 16 - 4;

/// A name for a snapshot of `origin` taken at `t`, unique among names for which `taken` is true.
pub fn snapshot_name(origin: &str, t: DateTime<Utc>, taken: impl Fn(&str) -> bool) -> String {
    let base = format!("{origin}{MARK}{}", t.format(TIME_FORMAT));
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken(name))
        .expect("an unused suffix exists")
}

/// The parts of a name made by [`snapshot_name`]: origin, time, and collision suffix (1 if none).
pub fn parse_snapshot_name(name: &str) -> Option<(&str, DateTime<Utc>, u32)> {
    let (origin, rest) = name.rsplit_once(MARK)?;
    let (stamp, seq) = match rest.split_once('-') {
        Some((stamp, seq)) => (
            stamp,
            seq.parse::<u32>()
                .ok()
                .filter(|n| *n >= 2 && !seq.starts_with('0'))?,
        ),
        None => (rest, 1),
    };
    if origin.is_empty() || stamp.len() != 16 {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stamp, TIME_FORMAT)
        .ok()?
        .and_utc();
    Some((origin, t, seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn names_sort_by_time_and_avoid_collisions() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 6, 0, 0).unwrap();
        assert_eq!(
            snapshot_name("home", t, |_| false),
            "home-lvsnap-20261128T060000Z"
        );
        let existing = [
            "home-lvsnap-20261128T060000Z",
            "home-lvsnap-20261128T060000Z-2",
        ];
        assert_eq!(
            snapshot_name("home", t, |n| existing.contains(&n)),
            "home-lvsnap-20261128T060000Z-3"
        );
    }

    #[test]
    fn foreign_names_do_not_parse() {
        assert_eq!(parse_snapshot_name("home_snap"), None);
        assert_eq!(parse_snapshot_name("home-lvsnap-2026"), None);
        assert_eq!(parse_snapshot_name("home-lvsnap-20261128T060000Z-01"), None);
    }

    proptest! {
        #[test]
        fn name_round_trips(origin in "[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,40}", secs in 0i64..4_000_000_000, taken in 0u32..4) {
            let t = Utc.timestamp_opt(secs, 0).unwrap();
            let name = snapshot_name(&origin, t, |n| {
                parse_snapshot_name(n).is_some_and(|(_, _, seq)| seq <= taken)
            });
            let (o, back, seq) = parse_snapshot_name(&name).unwrap();
            prop_assert_eq!(o, origin.as_str());
            prop_assert_eq!(back, t);
            prop_assert_eq!(seq, taken + 1);
            prop_assert!(name.len() <= origin.len() + MARK.len() + 16 + 2);
        }
    }
}
