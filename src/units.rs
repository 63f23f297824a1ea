//! Sizes and instants as people and scripts read them, in every message and report alike.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

pub use crate::config::types::format_bytes as format_size;

/// An instant in UTC, as JSON and scripts see it: `2026-03-01T00:00:00Z`.
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An instant in a zone, as an administrator reads it: `2026-03-01 01:00 CET`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// How long ago `t` was, roughly, as an administrator says it: `3h ago`, `2d ago`.
pub fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (n, unit) = match secs.abs() {
        s if s < 120 => (s, "s"),
        s if s < 2 * 3600 => (s / 60, "min"),
        s if s < 2 * 86400 => (s / 3600, "h"),
        s => (s / 86400, "d"),
    };
    if secs < 0 {
        format!("in {n}{unit}")
    } else {
        format!("{n}{unit} ago")
    }
}
