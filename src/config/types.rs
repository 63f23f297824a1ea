//! Validated value types of a policy: each is parsed once from its text form and then
//! trusted everywhere downstream. Nothing here reads files or the clock.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// Substrings LVM reserves for its own hidden sub-volumes; an LV name containing one is refused
/// by lvcreate (lvm2 `lib/misc/lvm-string.c`).
const RESERVED_LV_SUBSTRINGS: &[&str] = &[
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_iorig", "_mimage", "_mlog", "_pmspare",
    "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdo", "_vorigin", "_wcorig", "_cow", "_real",
];

/// LVM's limit on VG and LV names.
pub const MAX_LVM_NAME: usize = 127;

/// Checks a VG or LV name against the rules lvm2 applies, returning what is wrong.
///
/// # Errors
/// A sentence naming the rule the name breaks.
pub fn check_lvm_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > MAX_LVM_NAME {
        return Err(format!(
            "{what} name is {} characters long; LVM allows at most {MAX_LVM_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-')))
    {
        return Err(format!(
            "{what} name contains {c:?}; LVM allows only letters, digits and + _ . -"
        ));
    }
    if name.starts_with('-') {
        return Err(format!("{what} name starts with '-'"));
    }
    if name == "." || name == ".." {
        return Err(format!("{what} name cannot be {name:?}"));
    }
    if what == "logical volume" {
        if name.starts_with("snapshot") || name.starts_with("pvmove") {
            return Err(format!(
                "logical volume name starts with {:?}, which LVM reserves",
                if name.starts_with("snapshot") {
                    "snapshot"
                } else {
                    "pvmove"
                }
            ));
        }
        if let Some(r) = RESERVED_LV_SUBSTRINGS.iter().find(|r| name.contains(*r)) {
            return Err(format!(
                "logical volume name contains {r:?}, which LVM reserves"
            ));
        }
    }
    Ok(())
}

/// An origin logical volume, written `VG/LV` in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeRef {
    pub vg: String,
    pub lv: String,
}

impl fmt::Display for VolumeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.vg, self.lv)
    }
}

impl FromStr for VolumeRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.strip_prefix("/dev/").unwrap_or(s);
        let Some((vg, lv)) = s.split_once('/') else {
            return Err(format!(
                "{s:?} is not of the form VG/LV (for example \"vg0/home\")"
            ));
        };
        check_lvm_name(vg, "volume group")?;
        check_lvm_name(lv, "logical volume")?;
        Ok(VolumeRef {
            vg: vg.to_owned(),
            lv: lv.to_owned(),
        })
    }
}

/// Size of a thick snapshot's copy-on-write area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSize {
    Bytes(u64),
    PercentOfOrigin(u32),
    PercentOfFree(u32),
}

impl SnapshotSize {
    /// The bytes one snapshot of an origin of `origin_size` bytes asks for, in a volume group
    /// with `vg_free` bytes free (before LVM rounds it up to whole extents).
    pub fn bytes(self, origin_size: u64, vg_free: u64) -> u64 {
        match self {
            SnapshotSize::Bytes(b) => b,
            SnapshotSize::PercentOfOrigin(p) => origin_size / 100 * u64::from(p),
            SnapshotSize::PercentOfFree(p) => vg_free / 100 * u64::from(p),
        }
    }
}

impl fmt::Display for SnapshotSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotSize::Bytes(b) => write!(f, "{}", format_bytes(*b)),
            SnapshotSize::PercentOfOrigin(p) => write!(f, "{p}%ORIGIN"),
            SnapshotSize::PercentOfFree(p) => write!(f, "{p}%FREE"),
        }
    }
}

impl FromStr for SnapshotSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some((num, what)) = t.split_once('%') {
            let p: u32 = num.trim().parse().map_err(|_| {
                format!(
                    "{s:?}: {num:?} is not a whole percentage (write for example \"20%ORIGIN\")"
                )
            })?;
            let bounded = |max: u32| {
                if p == 0 || p > max {
                    Err(format!("{s:?}: percentage must be between 1 and {max}"))
                } else {
                    Ok(p)
                }
            };
            return match what.trim().to_ascii_uppercase().as_str() {
                "ORIGIN" => Ok(SnapshotSize::PercentOfOrigin(bounded(100)?)),
                "FREE" => Ok(SnapshotSize::PercentOfFree(bounded(100)?)),
                other => Err(format!(
                    "{s:?}: unknown size base {other:?}; use ORIGIN or FREE, as in \"20%ORIGIN\""
                )),
            };
        }
        parse_bytes(t)
            .map(SnapshotSize::Bytes)
            .map_err(|e| format!("{s:?}: {e}"))
    }
}

/// Parses `4G`, `512M`, `1.5T`, `4GiB` (binary units, as LVM's `--size` reads them).
fn parse_bytes(t: &str) -> Result<u64, String> {
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        "not a size; write a number with a unit, as in \"4G\" or \"512M\"".to_owned()
    })?;
    let unit = unit.trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "" if unit.is_empty() => {
            return Err("a size needs a unit (K, M, G, T), as in \"4G\"".to_owned());
        }
        _ => return Err(format!("unknown unit {unit:?}; use K, M, G or T")),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !(1.0..(1u64 << 62) as f64).contains(&bytes) {
        return Err("size must be above zero and below 4 EiB".to_owned());
    }
    Ok(bytes as u64)
}

/// Formats bytes with a binary unit, the way LVM prints sizes.
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A length of time written like `90min`, `36h`, `7d`, `2w`, `6mo`, `1y`, or combined `1d12h`.
/// Days and longer are calendar units, counted on the civil calendar of a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub months: u32,
    pub days: u32,
    pub seconds: u64,
}

impl Span {
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// The span as a fixed duration, or `None` when it has calendar parts.
    pub fn fixed(&self) -> Option<Duration> {
        (self.months == 0 && self.days == 0)
            .then(|| Duration::seconds(i64::try_from(self.seconds).unwrap_or(i64::MAX)))
    }

    /// `t` minus this span, counting months and days on the civil calendar of `tz`.
    pub fn before(&self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = t.with_timezone(&tz).naive_local();
        let shifted = local
            .checked_sub_months(chrono::Months::new(self.months))
            .and_then(|d| d.checked_sub_days(chrono::Days::new(u64::from(self.days))))
            .unwrap_or(NaiveDateTime::MIN);
        let calendar = resolve_local(tz, shifted);
        calendar
            .checked_sub_signed(Duration::seconds(
                i64::try_from(self.seconds).unwrap_or(i64::MAX),
            ))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Maps a civil time to an instant: the earlier of two in a fall-back hour, the first valid
/// instant after a spring-forward gap.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            // A gap is at most a few hours; walk forward to its end.
            let mut probe = local;
            for _ in 0..(6 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return write!(f, "0s");
        }
        let (y, mo) = (self.months / 12, self.months % 12);
        let (w, d) = (self.days / 7, self.days % 7);
        let (h, rest) = (self.seconds / 3600, self.seconds % 3600);
        let (mi, s) = (rest / 60, rest % 60);
        for (n, unit) in [(y, "y"), (mo, "mo"), (w, "w"), (d, "d")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        for (n, unit) in [(h, "h"), (mi, "min"), (s, "s")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err("empty duration; write for example \"1h\", \"7d\" or \"6mo\"".to_owned());
        }
        if rest == "0" {
            return Ok(Span::default());
        }
        let mut span = Span::default();
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("{s:?}: expected a number at {rest:?}"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{s:?}: number too large"))?;
            rest = rest[digits..].trim_start();
            let unit_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = rest[unit_len..].trim_start();
            let add = |x: u64, mul: u64| x.checked_mul(mul).ok_or(format!("{s:?}: too long"));
            match unit {
                "s" | "sec" | "secs" | "second" | "seconds" => span.seconds += add(n, 1)?,
                "min" | "mins" | "minute" | "minutes" => span.seconds += add(n, 60)?,
                "h" | "hr" | "hour" | "hours" => span.seconds += add(n, 3600)?,
                "d" | "day" | "days" => span.days += small(n, 1, s)?,
                "w" | "week" | "weeks" => span.days += small(n, 7, s)?,
                "mo" | "month" | "months" => span.months += small(n, 1, s)?,
                "y" | "year" | "years" => span.months += small(n, 12, s)?,
                "m" => {
                    return Err(format!(
                        "{s:?}: unit \"m\" is ambiguous; write \"min\" for minutes or \"mo\" for months"
                    ))
                }
                "" => {
                    return Err(format!(
                        "{s:?}: a number needs a unit (s, min, h, d, w, mo, y), as in \"{n}h\""
                    ))
                }
                other => {
                    return Err(format!(
                        "{s:?}: unknown unit {other:?}; use s, min, h, d, w, mo or y"
                    ))
                }
            }
            if span.seconds > 1 << 40 {
                return Err(format!("{s:?}: too long"));
            }
        }
        Ok(span)
    }
}

fn small(n: u64, mul: u64, s: &str) -> Result<u32, String> {
    n.checked_mul(mul)
        .filter(|v| *v <= 100_000)
        .map(|v| v as u32)
        .ok_or(format!("{s:?}: too long"))
}

/// A keep count: a number of snapshots (or buckets), or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    N(u32),
    All,
}

impl Count {
    /// Whether `used` kept snapshots have used this count up.
    pub fn is_used_up(self, used: usize) -> bool {
        match self {
            Count::N(n) => used >= n as usize,
            Count::All => false,
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::N(n) => write!(f, "{n}"),
            Count::All => write!(f, "all"),
        }
    }
}

/// The calendar periods that retention buckets snapshots by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Period {
    pub const ALL: [Period; 6] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Quarterly,
        Period::Yearly,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Quarterly => "quarterly",
            Period::Yearly => "yearly",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Period::Hourly => "hour",
            Period::Daily => "day",
            Period::Weekly => "ISO week",
            Period::Monthly => "month",
            Period::Quarterly => "quarter",
            Period::Yearly => "year",
        }
    }
}

/// Retention rules of a policy; the kept set is the union of what each rule keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keep {
    pub last: Option<Count>,
    pub within: Option<Span>,
    /// Indexed like [`Period::ALL`].
    pub periods: [Option<Count>; 6],
}

impl Keep {
    pub fn period(&self, p: Period) -> Option<Count> {
        self.periods[p as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none() && self.within.is_none() && self.periods.iter().all(Option::is_none)
    }

    /// The most snapshots of one group these rules can keep at once (the newest included), or
    /// `None` when they can keep any number (`"all"`, `within`).
    pub fn most(&self) -> Option<u32> {
        if self.within.is_some() {
            return None;
        }
        // Every rule's count includes the newest: it adds nothing of its own.
        let mut n: u32 = 0;
        for c in std::iter::once(self.last).chain(self.periods.iter().copied()) {
            match c {
                None => {}
                Some(Count::All) => return None,
                Some(Count::N(k)) => n = n.saturating_add(k),
            }
        }
        // A calendar rule whose count is not used up also keeps the oldest, but then it kept
        // fewer than its count: the sum still bounds it.
        Some(n.max(1))
    }

    /// The rules in words, one clause each, for `config check`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.last {
            Some(Count::N(1)) => out.push("the newest snapshot".to_owned()),
            Some(Count::N(n)) => out.push(format!("the {n} newest snapshots")),
            Some(Count::All) => out.push("every snapshot".to_owned()),
            None => {}
        }
        if let Some(w) = self.within {
            out.push(format!("every snapshot taken within {w} before the newest"));
        }
        for p in Period::ALL {
            match self.period(p) {
                Some(Count::N(1)) => out.push(format!(
                    "the newest snapshot of the most recent {}",
                    p.noun()
                )),
                Some(Count::N(n)) => out.push(format!(
                    "the newest snapshot of each of the {n} most recent {}s that have one",
                    p.noun()
                )),
                Some(Count::All) => out.push(format!("the newest snapshot of every {}", p.noun())),
                None => {}
            }
        }
        out
    }
}

/// When snapshots are due: a cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    text: String,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Schedule {
    /// Parses 5 fields (minute precision) or 6 with seconds first.
    ///
    /// # Errors
    /// What is wrong with the expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        if !(fields == 5 || fields == 6) {
            return Err(format!(
                "{text:?} has {fields} fields; write 5 (minute hour day month weekday), as in \"0 * * * *\", or 6 with seconds first"
            ));
        }
        if text.trim_start().starts_with('@') {
            return Err(format!(
                "{text:?}: nicknames such as @hourly are not supported"
            ));
        }
        check_cron_ranges(text)?;
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
        // An expression that never fires (such as 30 February) is useless as a schedule.
        let probe = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        cron.find_next_occurrence(&probe, true)
            .map_err(|_| format!("{text:?} never matches a real date"))?;
        Ok(Schedule {
            cron,
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The latest scheduled instant at or before `now`, read in `tz`. Whole seconds: the cron
    /// library carries the fraction of its starting point into what it finds, which would make
    /// 10:00:00.7 a "tick" later than a snapshot taken at 10:00:00.3.
    pub fn previous(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.trunc_subsecs(0).with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first scheduled instant strictly after `after`, read in `tz`.
    pub fn next(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.trunc_subsecs(0).with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Names the field of a number out of range, which the cron parser reports only generically.
fn check_cron_ranges(text: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 6] = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    let fields: Vec<&str> = text.split_whitespace().collect();
    let names = if fields.len() == 6 {
        &FIELDS[..]
    } else {
        &FIELDS[1..]
    };
    for (field, (name, lo, hi)) in fields.iter().zip(names) {
        let (range, step) = field.split_once('/').unwrap_or((field, ""));
        for part in range.split(',').flat_map(|p| p.split('-')) {
            if let Ok(n) = part.parse::<u32>() {
                if n < *lo || n > *hi {
                    return Err(format!("{text:?}: {name} {n} is out of range {lo}-{hi}"));
                }
            }
        }
        if step == "0" {
            return Err(format!(
                "{text:?}: a step of 0 in the {name} field never advances"
            ));
        }
    }
    Ok(())
}

/// What to do with snapshots LVM reports invalid (overflowed, their data lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidAction {
    #[default]
    Remove,
    Keep,
}

/// An SELinux label for the files of a mounted snapshot or clone, passed as the `context=`
/// mount option (`system_u:object_r:container_file_t:s0` lets containers read them). Checked
/// as a label's form, `USER:ROLE:TYPE[:LEVEL]`, with nothing that could end the option (a
/// quote, a space) or start another; whether the policy knows it, only the kernel says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountContext(String);

impl MountContext {
    /// The mount option, quoted: a level's categories contain commas (`s0:c1,c2`), which
    /// would otherwise separate options.
    pub fn option(&self) -> String {
        format!("context=\"{}\"", self.0)
    }
}

impl fmt::Display for MountContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MountContext {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let form = "an SELinux label is USER:ROLE:TYPE[:LEVEL], e.g. \"system_u:object_r:container_file_t:s0\"";
        let mut parts = s.splitn(4, ':');
        let names = [parts.next(), parts.next(), parts.next()];
        let ident = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        for (part, what) in names.iter().zip(["user", "role", "type"]) {
            match part {
                Some(p) if ident(p) => {}
                Some("") | None => return Err(format!("{s:?} has no {what}: {form}")),
                Some(p) => {
                    return Err(format!(
                        "{s:?}: the {what} {p:?} may hold only letters, digits, '_' and '.': {form}"
                    ))
                }
            }
        }
        // A sensitivity range and categories: s0, s0-s15:c0.c1023, s0:c1,c2.
        if let Some(level) = parts.next() {
            let allowed = |c: char| c.is_ascii_alphanumeric() || ".,:-_".contains(c);
            if !level.starts_with('s') || !level.chars().all(allowed) {
                return Err(format!(
                    "{s:?}: the level {level:?} is not a sensitivity such as s0 or s0:c1,c2: {form}"
                ));
            }
        }
        Ok(MountContext(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_contexts_are_labels_and_nothing_else() {
        for ok in [
            "system_u:object_r:container_file_t:s0",
            "system_u:object_r:container_file_t:s0:c1,c2",
            "system_u:object_r:svirt_sandbox_file_t:s0-s15:c0.c1023",
            "user_u:object_r:tmp_t",
        ] {
            let c: MountContext = ok.parse().unwrap();
            assert_eq!(c.option(), format!("context=\"{ok}\""));
        }
        for (bad, says) in [
            ("", "has no user"),
            ("container_file_t", "has no role"),
            ("system_u:object_r", "has no type"),
            ("system_u:object_r:t\"x", "may hold only"),
            (
                "system_u:object_r:container_file_t:s0\",ro=x",
                "not a sensitivity",
            ),
            (
                "system_u:object_r:container_file_t:s0 x",
                "not a sensitivity",
            ),
            ("system_u:object_r:container_file_t:c1", "not a sensitivity"),
            ("system_u::container_file_t:s0", "has no role"),
        ] {
            let err = bad.parse::<MountContext>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!("4G".parse(), Ok(SnapshotSize::Bytes(4 << 30)));
        assert_eq!("512MiB".parse(), Ok(SnapshotSize::Bytes(512 << 20)));
        assert_eq!("1.5g".parse(), Ok(SnapshotSize::Bytes(3 << 29)));
        assert_eq!("20%ORIGIN".parse(), Ok(SnapshotSize::PercentOfOrigin(20)));
        assert_eq!("10%free".parse(), Ok(SnapshotSize::PercentOfFree(10)));
        assert!("0%ORIGIN".parse::<SnapshotSize>().is_err());
        assert!("101%FREE".parse::<SnapshotSize>().is_err());
        assert!("20%VG"
            .parse::<SnapshotSize>()
            .unwrap_err()
            .contains("ORIGIN or FREE"));
        assert!("4"
            .parse::<SnapshotSize>()
            .unwrap_err()
            .contains("needs a unit"));
        assert!("4X"
            .parse::<SnapshotSize>()
            .unwrap_err()
            .contains("unknown unit"));
        assert!("0G".parse::<SnapshotSize>().is_err());
    }

    #[test]
    fn spans_parse_and_print_back() {
        let s: Span = "1d12h".parse().unwrap();
        assert_eq!(
            s,
            Span {
                months: 0,
                days: 1,
                seconds: 12 * 3600
            }
        );
        assert_eq!(s.to_string(), "1d12h");
        assert_eq!("1y6mo".parse::<Span>().unwrap().months, 18);
        assert_eq!("90min".parse::<Span>().unwrap().to_string(), "1h30min");
        assert!("5m".parse::<Span>().unwrap_err().contains("ambiguous"));
        assert!("5".parse::<Span>().unwrap_err().contains("needs a unit"));
        assert!("h".parse::<Span>().is_err());
    }

    #[test]
    fn calendar_span_counts_civil_days_across_dst() {
        // 2024-03-31 has 23 hours in Berlin: one day before 2024-04-01 00:00 local is
        // 2024-03-31 00:00 local, 23 hours earlier.
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2024, 3, 31, 22, 0, 0).unwrap();
        let one_day: Span = "1d".parse().unwrap();
        assert_eq!(
            one_day.before(t, tz),
            Utc.with_ymd_and_hms(2024, 3, 30, 23, 0, 0).unwrap()
        );
    }

    #[test]
    fn lvm_names_follow_lvm_rules() {
        assert!("vg0/home".parse::<VolumeRef>().is_ok());
        assert!("/dev/vg0/home".parse::<VolumeRef>().is_ok());
        assert!("home".parse::<VolumeRef>().unwrap_err().contains("VG/LV"));
        assert!("vg0/snapshot1"
            .parse::<VolumeRef>()
            .unwrap_err()
            .contains("reserves"));
        assert!("vg0/data_tmeta"
            .parse::<VolumeRef>()
            .unwrap_err()
            .contains("_tmeta"));
        assert!("vg 0/home"
            .parse::<VolumeRef>()
            .unwrap_err()
            .contains("' '"));
        assert!("vg0/-x"
            .parse::<VolumeRef>()
            .unwrap_err()
            .contains("starts with '-'"));
        let long = format!("vg0/{}", "a".repeat(128));
        assert!(long
            .parse::<VolumeRef>()
            .unwrap_err()
            .contains("at most 127"));
    }

    #[test]
    fn schedules_take_five_or_six_fields() {
        assert!(Schedule::parse("0 * * * *").is_ok());
        assert!(Schedule::parse("*/5 0 * * * *").is_ok());
        assert!(Schedule::parse("* * * *").unwrap_err().contains("4 fields"));
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("0 0 30 2 *")
            .unwrap_err()
            .contains("never matches"));
    }
}
