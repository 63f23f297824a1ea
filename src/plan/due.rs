//! When a group is due for a snapshot. One rule serves `run`, the daemon and `simulate`: a
//! group is due when its most recent scheduled time at or before `now` is later than its newest
//! snapshot. After any downtime that yields one catch-up snapshot, never a burst.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::config::Schedule;

/// A source of scheduled instants.
pub trait Ticks {
    /// The latest scheduled instant at or before `now`.
    fn previous(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>>;
    /// The first scheduled instant strictly after `after`.
    fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

/// A policy's cron schedule read in its time zone.
pub struct CronTicks<'a> {
    pub schedule: &'a Schedule,
    pub timezone: Tz,
}

impl Ticks for CronTicks<'_> {
    fn previous(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.previous(now, self.timezone)
    }

    fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next(after, self.timezone)
    }
}

/// A fixed interval from a starting instant (`simulate --every`).
pub struct EveryTicks {
    pub start: DateTime<Utc>,
    pub step: Duration,
}

impl Ticks for EveryTicks {
    fn previous(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if now < self.start || self.step <= Duration::zero() {
            return None;
        }
        let steps = (now - self.start).num_seconds() / self.step.num_seconds().max(1);
        Some(self.start + self.step * i32::try_from(steps).ok()?)
    }

    fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if after < self.start {
            return Some(self.start);
        }
        self.previous(after).map(|p| p + self.step)
    }
}

/// Whether a group whose newest snapshot is `newest` needs a snapshot at `now`.
pub fn is_due(ticks: &impl Ticks, now: DateTime<Utc>, newest: Option<DateTime<Utc>>) -> bool {
    match (ticks.previous(now), newest) {
        (Some(tick), Some(newest)) => tick > newest,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap()
    }

    #[test]
    fn hourly_schedule_is_due_once_per_hour() {
        let schedule = Schedule::parse("0 * * * *").unwrap();
        let ticks = CronTicks {
            schedule: &schedule,
            timezone: Tz::UTC,
        };
        assert!(is_due(&ticks, at(10, 0), None));
        assert!(is_due(&ticks, at(10, 5), Some(at(9, 0))));
        assert!(!is_due(&ticks, at(10, 5), Some(at(10, 0))));
        assert!(!is_due(&ticks, at(10, 59), Some(at(10, 1))));
        assert!(is_due(&ticks, at(11, 0), Some(at(10, 1))));
    }

    #[test]
    fn downtime_gives_one_catch_up() {
        let schedule = Schedule::parse("0 * * * *").unwrap();
        let ticks = CronTicks {
            schedule: &schedule,
            timezone: Tz::UTC,
        };
        // Down from 02:30 to 09:10: due at boot, and once taken, not again before 10:00.
        assert!(is_due(&ticks, at(9, 10), Some(at(2, 0))));
        assert!(!is_due(&ticks, at(9, 11), Some(at(9, 10))));
    }

    #[test]
    fn fractions_of_a_second_do_not_make_a_period_due_twice() {
        let schedule = Schedule::parse("0 * * * *").unwrap();
        let ticks = CronTicks {
            schedule: &schedule,
            timezone: Tz::UTC,
        };
        let taken = at(10, 0) + Duration::milliseconds(300);
        assert!(!is_due(
            &ticks,
            at(10, 15) + Duration::milliseconds(700),
            Some(taken)
        ));
        assert_eq!(
            ticks.previous(at(10, 15) + Duration::milliseconds(700)),
            Some(at(10, 0))
        );
        assert_eq!(
            ticks.next(at(10, 15) + Duration::milliseconds(700)),
            Some(at(11, 0))
        );
    }

    #[test]
    fn every_ticks_step_from_their_start() {
        let ticks = EveryTicks {
            start: at(0, 0),
            step: Duration::minutes(15),
        };
        assert_eq!(ticks.previous(at(0, 44)), Some(at(0, 30)));
        assert_eq!(ticks.next(at(0, 30)), Some(at(0, 45)));
        assert_eq!(ticks.previous(at(0, 0) - Duration::seconds(1)), None);
    }
}
