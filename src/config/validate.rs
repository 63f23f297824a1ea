//! Second stage of reading policy files: raw serde structs become validated [`Policy`] values.
//! Every problem is collected with its location; nothing stops at the first.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono_tz::Tz;
use toml::Spanned;

use super::diag::{nearest, Diagnostic, SourceMap};
use super::raw::{RawCount, RawFile, RawKeep, RawPolicy, RawSettings};
use super::types::{
    Count, InvalidAction, Keep, MountContext, Period, Schedule, SnapshotSize, Span, VolumeRef,
};
use super::{
    FreeSpace, Policy, Settings, DEFAULT_CATALOG, DEFAULT_LOCK_TIMEOUT_SECS, DEFAULT_RUNTIME_DIR,
};
use crate::naming::MAX_ORIGIN_NAME;

/// Validates one file's policies; cross-file checks happen in [`check_across_files`].
pub struct FileValidator<'a> {
    pub map: SourceMap<'a>,
    pub diags: Vec<Diagnostic>,
    /// Keys that already have a structural error from the first stage.
    pub reported: std::collections::HashSet<String>,
}

impl<'a> FileValidator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        FileValidator {
            map: SourceMap { file, text },
            diags: Vec::new(),
            reported: Default::default(),
        }
    }

    pub(super) fn error(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: String,
        hint: Option<String>,
    ) {
        let d = self.map.at(span, key, message);
        self.diags.push(Diagnostic { hint, ..d });
    }

    /// Parses a spanned string with `parse`, recording the error (and a hint) on failure.
    pub(super) fn value<T>(
        &mut self,
        raw: &Spanned<String>,
        key: &str,
        hint: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(raw.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(
                    raw.span(),
                    key,
                    e,
                    (!hint.is_empty()).then(|| hint.to_owned()),
                );
                None
            }
        }
    }

    pub fn settings(&mut self, raw: &RawSettings, system_tz: Tz) -> Settings {
        let timezone = raw
            .timezone
            .as_ref()
            .and_then(|t| self.timezone(t, "settings.timezone"))
            .unwrap_or(system_tz);
        let catalog = match &raw.catalog {
            Some(c) if !Path::new(c.get_ref()).is_absolute() => {
                let hint = format!("write the full path, for example \"{DEFAULT_CATALOG}\"");
                self.error(
                    c.span(),
                    "settings.catalog",
                    format!("{:?} is not an absolute path", c.get_ref()),
                    Some(hint),
                );
                PathBuf::from(DEFAULT_CATALOG)
            }
            Some(c) => PathBuf::from(c.get_ref()),
            None => PathBuf::from(DEFAULT_CATALOG),
        };
        let runtime_dir = match &raw.runtime_dir {
            Some(d) if !Path::new(d.get_ref()).is_absolute() => {
                self.error(
                    d.span(),
                    "settings.runtime-dir",
                    format!("{:?} is not an absolute path", d.get_ref()),
                    Some(format!(
                        "write the full path, for example \"{DEFAULT_RUNTIME_DIR}\""
                    )),
                );
                PathBuf::from(DEFAULT_RUNTIME_DIR)
            }
            Some(d) => PathBuf::from(d.get_ref()),
            None => PathBuf::from(DEFAULT_RUNTIME_DIR),
        };
        let lock_timeout = match raw
            .lock_timeout
            .as_ref()
            .and_then(|t| self.span_or(Some(t), "settings.lock-timeout", Span::default()))
        {
            Some(span) => match span.fixed() {
                Some(d) => d,
                None => {
                    let t = raw.lock_timeout.as_ref().expect("parsed above");
                    self.error(
                        t.span(),
                        "settings.lock-timeout",
                        "must be a fixed length (s, min, h)".to_owned(),
                        None,
                    );
                    chrono::Duration::seconds(DEFAULT_LOCK_TIMEOUT_SECS)
                }
            },
            None => chrono::Duration::seconds(DEFAULT_LOCK_TIMEOUT_SECS),
        };
        let metrics_file = match &raw.metrics_file {
            Some(m) if !Path::new(m.get_ref()).is_absolute() => {
                self.error(m.span(), "settings.metrics-file", format!("{:?} is not an absolute path", m.get_ref()), Some("for node_exporter's textfile collector, for example \"/var/lib/prometheus/node-exporter/lvsnap.prom\"".to_owned()));
                None
            }
            Some(m) => Some(PathBuf::from(m.get_ref())),
            None => None,
        };
        let mut tool_path = Vec::new();
        for d in raw.tool_path.iter().flat_map(|l| l.get_ref()) {
            if Path::new(d.get_ref()).is_absolute() {
                tool_path.push(PathBuf::from(d.get_ref()));
            } else {
                self.error(
                    d.span(),
                    "settings.tool-path",
                    format!("{:?} is not an absolute path", d.get_ref()),
                    Some(
                        "list directories by their full path; lvsnap never searches $PATH"
                            .to_owned(),
                    ),
                );
            }
        }
        let default_poll = chrono::Duration::seconds(super::DEFAULT_SPACE_POLL_SECS);
        let space_poll = match raw.space_poll.as_ref() {
            None => default_poll,
            Some(t) => match self
                .span_or(Some(t), "settings.space-poll", Span::default())
                .map(|s| s.fixed())
            {
                Some(Some(d)) if d >= chrono::Duration::seconds(1) => d,
                Some(_) => {
                    self.error(
                        t.span(),
                        "settings.space-poll",
                        "must be a fixed length of a second or more (s, min, h)".to_owned(),
                        Some("the daemon measures the pools and volume groups this often; the default is 1min".to_owned()),
                    );
                    default_poll
                }
                None => default_poll,
            },
        };
        let kept = "the catalog keeps its command log and run history this long";
        let history = self.within(
            raw.history_days.as_ref(),
            "settings.history-days",
            (1, 36_500, "days"),
            super::DEFAULT_HISTORY_DAYS,
            kept,
        );
        let failure_history = self
            .within(
                raw.failure_history_days.as_ref(),
                "settings.failure-history-days",
                (1, 36_500, "days"),
                super::DEFAULT_FAILURE_HISTORY_DAYS,
                kept,
            )
            .max(history);
        let history_rows = self.within(
            raw.history_rows.as_ref(),
            "settings.history-rows",
            (1000, 100_000_000, "rows"),
            super::DEFAULT_HISTORY_ROWS as i64,
            "the most rows the catalog keeps of each kind of history",
        ) as u64;
        Settings {
            catalog,
            timezone,
            runtime_dir,
            lock_timeout,
            metrics_file,
            tool_path,
            space_poll,
            history_rows,
            history: chrono::Duration::days(history),
            failure_history: chrono::Duration::days(failure_history),
        }
    }

    /// A hook command: a non-empty argv, run without a shell.
    pub(super) fn hook(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Option<Option<Vec<String>>> {
        let Some(list) = raw else { return Some(None) };
        let argv: Vec<String> = list.get_ref().iter().map(|a| a.get_ref().clone()).collect();
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            self.error(list.span(), key, "the command is empty".to_owned(), Some("write the program and its arguments as a list, for example [\"/usr/local/bin/flush-db\", \"--quick\"]".to_owned()));
            return None;
        }
        Some(Some(argv))
    }

    /// A whole number of `unit` from `low` to `high`; `default` when absent or out of range
    /// (an error naming the range, `what` it sets and the default).
    fn within(
        &mut self,
        raw: Option<&Spanned<i64>>,
        key: &str,
        (low, high, unit): (i64, i64, &str),
        default: i64,
        what: &str,
    ) -> i64 {
        match raw {
            None => default,
            Some(v) if (low..=high).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.error(
                    v.span(),
                    key,
                    format!(
                        "{} is not a number of {unit} from {low} to {high}",
                        v.get_ref()
                    ),
                    Some(format!("{what}; the default is {default}")),
                );
                default
            }
        }
    }

    fn percent(
        &mut self,
        raw: Option<&Spanned<i64>>,
        key: &str,
        default: u8,
        hint: &str,
    ) -> Option<u8> {
        match raw {
            Some(v) if !(1..=100).contains(v.get_ref()) => {
                self.error(
                    v.span(),
                    key,
                    format!("{} is not a percentage between 1 and 100", v.get_ref()),
                    Some(hint.to_owned()),
                );
                None
            }
            Some(v) => Some(*v.get_ref() as u8),
            None => Some(default),
        }
    }

    fn optional_percent(
        &mut self,
        raw: Option<&Spanned<i64>>,
        key: &str,
        hint: &str,
    ) -> Option<Option<u8>> {
        match raw {
            None => Some(None),
            Some(_) => self.percent(raw, key, 0, hint).map(Some),
        }
    }

    /// A limit on a number of snapshots: a whole number from 1.
    fn count_limit(&mut self, raw: Option<&Spanned<i64>>, key: &str, default: u32) -> Option<u32> {
        match raw {
            None => Some(default),
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    self.error(
                        v.span(),
                        key,
                        format!("{} is not a number of snapshots from 1", v.get_ref()),
                        Some(format!("the default is {default}")),
                    );
                    None
                }
            },
        }
    }

    fn free_space(&mut self, raw: Option<&Spanned<String>>, key: &str) -> Option<FreeSpace> {
        let Some(raw) = raw else {
            return Some(FreeSpace::Bytes(0));
        };
        self.value(
            raw,
            key,
            "write a size such as \"2G\" or a share of the volume group such as \"10%\"",
            |s| {
                let t = s.trim();
                if let Some(p) = t.strip_suffix('%') {
                    return match p.trim().parse::<u8>() {
                        Ok(p) if p <= 90 => Ok(FreeSpace::Percent(p)),
                        _ => Err(format!("{s:?} is not a percentage between 0 and 90")),
                    };
                }
                match SnapshotSize::from_str(t)? {
                    SnapshotSize::Bytes(b) => Ok(FreeSpace::Bytes(b)),
                    _ => Err(format!(
                        "{s:?}: use a size or a plain percentage of the volume group"
                    )),
                }
            },
        )
    }

    fn timezone(&mut self, raw: &Spanned<String>, key: &str) -> Option<Tz> {
        let name = raw.get_ref();
        if let Ok(tz) = Tz::from_str(name) {
            return Some(tz);
        }
        let all: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect();
        let hint = match nearest(name, &all) {
            Some(n) => format!("did you mean \"{n}\"?"),
            None => "use an IANA zone name such as \"Europe/Berlin\" or \"UTC\"".to_owned(),
        };
        self.error(
            raw.span(),
            key,
            format!("unknown time zone {name:?}"),
            Some(hint),
        );
        None
    }

    /// Validates one `[policy.NAME]` table; `None` when it has errors (all recorded).
    pub fn policy(
        &mut self,
        name: &Spanned<String>,
        raw: &RawPolicy,
        settings: &Settings,
    ) -> Option<Policy> {
        let before = self.diags.len();
        let p = |k: &str| format!("policy.{}.{k}", name.get_ref());
        self.policy_name(name);
        let volumes = self.volumes(name, raw, &p("volumes"));
        let schedule = match &raw.schedule {
            Some(s) => self.value(s, &p("schedule"), "cron fields are minute hour day-of-month month day-of-week, e.g. \"0 * * * *\" for hourly", Schedule::parse),
            None => {
                self.missing(name, "schedule", "add for example schedule = \"0 * * * *\" (hourly)");
                None
            }
        };
        let size = match &raw.size {
            Some(s) => self.value(
                s,
                &p("size"),
                "write a size such as \"4G\", \"20%ORIGIN\" or \"10%FREE\"",
                SnapshotSize::from_str,
            ),
            None => Some(SnapshotSize::PercentOfOrigin(super::DEFAULT_SIZE_PERCENT)),
        };
        let keep = self.keep(
            &format!("policy.{}", name.get_ref()),
            name.span(),
            raw.keep.as_ref(),
        );
        let backup = raw.backup.as_ref().map(|b| self.backup(name, b, settings));
        let replicate = raw.replicate.as_ref().map(|r| self.replicate(name, r));
        let min_age = self.span_or(raw.min_age.as_ref(), &p("min-age"), Span::default());
        let future_skew = self.span_or(
            raw.future_skew.as_ref(),
            &p("future-skew"),
            Span {
                seconds: 300,
                ..Span::default()
            },
        );
        if let (Some(s), Some(skew)) = (&raw.future_skew, future_skew) {
            if skew.fixed().is_none() {
                self.error(
                    s.span(),
                    &p("future-skew"),
                    "must be a fixed length (s, min, h)".to_owned(),
                    None,
                );
            }
        }
        let timezone = match &raw.timezone {
            Some(t) => self.timezone(t, &p("timezone")),
            None => Some(settings.timezone),
        };
        let max_remove_percent = match &raw.max_remove_percent {
            Some(v) if !(1..=100).contains(v.get_ref()) => {
                self.error(
                    v.span(),
                    &p("max-remove-percent"),
                    format!("{} is not a percentage between 1 and 100", v.get_ref()),
                    Some(
                        "the default, 50, stops a run that would remove more than half of a group"
                            .to_owned(),
                    ),
                );
                None
            }
            Some(v) => Some(*v.get_ref() as u8),
            None => Some(super::DEFAULT_MAX_REMOVE_PERCENT),
        };
        let invalid = match &raw.invalid {
            Some(v) => self.value(
                v,
                &p("invalid"),
                "write \"remove\" (the default) or \"keep\"",
                |s| match s {
                    "remove" => Ok(InvalidAction::Remove),
                    "keep" => Ok(InvalidAction::Keep),
                    other => Err(format!("{other:?} is not a choice")),
                },
            ),
            None => Some(InvalidAction::Remove),
        };
        let keep_free = self.free_space(raw.keep_free.as_ref(), &p("keep-free"));
        let pool_hint = "a thin snapshot is refused when its pool is this full; the default is 80";
        let pool_data_max = self.percent(
            raw.pool_data_max.as_ref(),
            &p("pool-data-max"),
            super::DEFAULT_POOL_MAX_PERCENT,
            pool_hint,
        );
        let pool_metadata_max = self.percent(
            raw.pool_metadata_max.as_ref(),
            &p("pool-metadata-max"),
            super::DEFAULT_POOL_MAX_PERCENT,
            pool_hint,
        );
        let extend_at = self.percent(
            raw.extend_at.as_ref(),
            &p("extend-at"),
            super::DEFAULT_EXTEND_AT_PERCENT,
            "a thick snapshot this full is extended; the default is 80",
        );
        let extend_by = self.percent(
            raw.extend_by.as_ref(),
            &p("extend-by"),
            super::DEFAULT_EXTEND_BY_PERCENT,
            "the share of its size a full snapshot grows by; the default is 20",
        );
        let emergency_hint = "space pressure: at this fill (percent) lvsnap removes the policy's oldest snapshots in the pool until it is below; leave it out to never do so";
        let pool_data_emergency = self.optional_percent(
            raw.pool_data_emergency.as_ref(),
            &p("pool-data-emergency"),
            emergency_hint,
        );
        let pool_metadata_emergency = self.optional_percent(
            raw.pool_metadata_emergency.as_ref(),
            &p("pool-metadata-emergency"),
            emergency_hint,
        );
        let vg_free_emergency = match raw.vg_free_emergency.as_ref() {
            Some(v) => self.free_space(Some(v), &p("vg-free-emergency")).map(Some),
            None => Some(None),
        };
        let max_thick_per_origin = self.count_limit(
            raw.max_thick_per_origin.as_ref(),
            &p("max-thick-per-origin"),
            super::DEFAULT_MAX_THICK_PER_ORIGIN,
        );
        let max_per_pool = self.count_limit(
            raw.max_per_pool.as_ref(),
            &p("max-per-pool"),
            super::DEFAULT_MAX_PER_POOL,
        );
        let pre = self.hook(raw.pre.as_ref(), &p("pre"));
        let post = self.hook(raw.post.as_ref(), &p("post"));
        let hook_timeout = match raw.hook_timeout.as_ref() {
            Some(t) => match self
                .span_or(Some(t), &p("hook-timeout"), Span::default())
                .map(|s| s.fixed())
            {
                Some(Some(d)) if d > chrono::Duration::zero() => d.to_std().ok(),
                Some(_) => {
                    self.error(
                        t.span(),
                        &p("hook-timeout"),
                        "must be a fixed length above zero (s, min, h)".to_owned(),
                        None,
                    );
                    None
                }
                None => None,
            },
            None => Some(std::time::Duration::from_secs(
                super::DEFAULT_HOOK_TIMEOUT_SECS,
            )),
        };
        let set = raw.set.as_ref().is_some_and(|b| *b.get_ref());
        let freeze = raw.freeze.as_ref().is_some_and(|b| *b.get_ref());
        if let Some(f) = raw.freeze.as_ref().filter(|f| *f.get_ref() && !set) {
            self.error(
                f.span(),
                &p("freeze"),
                "freezes the filesystems of a snapshot set, and this policy is no set".to_owned(),
                Some("add set = true (the policy's volumes are then snapshotted together), or remove freeze: a single snapshot is consistent on its own, LVM suspends its origin while taking it".to_owned()),
            );
        }
        let freeze_timeout = match raw.freeze_timeout.as_ref() {
            Some(t) => match self
                .span_or(Some(t), &p("freeze-timeout"), Span::default())
                .map(|s| s.fixed())
            {
                Some(Some(d))
                    if d > chrono::Duration::zero() && d <= chrono::Duration::seconds(60) =>
                {
                    d.to_std().ok()
                }
                Some(_) => {
                    self.error(
                        t.span(),
                        &p("freeze-timeout"),
                        "must be a fixed length above zero and at most 60s".to_owned(),
                        Some("writers wait while the filesystems are frozen, and a service manager stopping lvsnap kills it (and the process that thaws) after its own timeout".to_owned()),
                    );
                    None
                }
                None => None,
            },
            None => Some(std::time::Duration::from_secs(
                super::DEFAULT_FREEZE_TIMEOUT_SECS,
            )),
        };
        let mount_context = raw.mount_context.as_ref().map(|c| {
            self.value(
                c,
                &p("mount-context"),
                "the SELinux label for the files of mounted snapshots, e.g. \"system_u:object_r:container_file_t:s0\" for containers",
                MountContext::from_str,
            )
        });
        if self.diags.len() > before {
            return None;
        }
        Some(Policy {
            mount_context: mount_context.flatten(),
            set,
            freeze,
            freeze_timeout: freeze_timeout?,
            backup: match backup {
                Some(b) => Some(b?),
                None => None,
            },
            replicate: match replicate {
                Some(r) => Some(r?),
                None => None,
            },
            pre: pre?,
            post: post?,
            hook_timeout: hook_timeout?,
            keep_free: keep_free?,
            pool_data_max: pool_data_max?,
            pool_metadata_max: pool_metadata_max?,
            extend_at: extend_at?,
            extend_by: extend_by?,
            pool_data_emergency: pool_data_emergency?,
            pool_metadata_emergency: pool_metadata_emergency?,
            vg_free_emergency: vg_free_emergency?,
            emergency_removes_newest: raw
                .emergency_removes_newest
                .as_ref()
                .is_some_and(|b| *b.get_ref()),
            max_thick_per_origin: max_thick_per_origin?,
            max_per_pool: max_per_pool?,
            name: name.get_ref().clone(),
            volumes: volumes?,
            schedule: schedule?,
            size: size?,
            keep: keep?,
            min_age: min_age?,
            timezone: timezone?,
            max_remove_percent: max_remove_percent?,
            future_skew: future_skew?.fixed()?,
            invalid: invalid?,
            file: self.map.file.to_owned(),
            line: self.map.line_col(name.span().start).0,
        })
    }

    fn missing(&mut self, name: &Spanned<String>, key: &str, hint: &str) {
        if self
            .reported
            .contains(&format!("policy.{}.{key}", name.get_ref()))
        {
            return;
        }
        self.error(
            name.span(),
            &format!("policy.{}", name.get_ref()),
            format!("missing key \"{key}\""),
            Some(hint.to_owned()),
        );
    }

    fn policy_name(&mut self, name: &Spanned<String>) {
        let n = name.get_ref();
        if !super::usable_policy_name(n) {
            self.error(
                name.span(),
                &format!("policy.{n}"),
                format!("policy name {n:?} is not usable in an LVM tag"),
                Some("use up to 64 letters, digits and _ - . + (not starting with -)".to_owned()),
            );
        }
    }

    fn volumes(
        &mut self,
        name: &Spanned<String>,
        raw: &RawPolicy,
        key: &str,
    ) -> Option<Vec<VolumeRef>> {
        let Some(list) = &raw.volumes else {
            self.missing(
                name,
                "volumes",
                "add the origin volumes, for example volumes = [\"vg0/home\"]",
            );
            return None;
        };
        if list.get_ref().is_empty() {
            self.error(
                list.span(),
                key,
                "the list is empty".to_owned(),
                Some("name at least one origin volume, as in [\"vg0/home\"]".to_owned()),
            );
            return None;
        }
        let mut out: Vec<VolumeRef> = Vec::new();
        for v in list.get_ref() {
            let Some(vol) = self.value(v, key, "", VolumeRef::from_str) else {
                continue;
            };
            if vol.lv.len() > MAX_ORIGIN_NAME {
                let message = format!("logical volume name {:?} is {} characters long; snapshot names add 24, so at most {MAX_ORIGIN_NAME} fit LVM's limit", vol.lv, vol.lv.len());
                self.error(
                    v.span(),
                    key,
                    message,
                    Some("rename the volume with lvrename".to_owned()),
                );
            }
            if out.contains(&vol) {
                self.error(v.span(), key, format!("{vol} is listed twice"), None);
            }
            out.push(vol);
        }
        Some(out)
    }

    fn span_or(&mut self, raw: Option<&Spanned<String>>, key: &str, default: Span) -> Option<Span> {
        match raw {
            Some(s) => self.value(
                s,
                key,
                "write a duration such as \"90min\", \"36h\", \"7d\", \"2w\", \"6mo\" or \"1y\"",
                Span::from_str,
            ),
            None => Some(default),
        }
    }

    /// The `keep` table of `owner` (`policy.NAME` or `policy.NAME.backup`, written at `at`).
    pub(super) fn keep(
        &mut self,
        owner: &str,
        at: Range<usize>,
        raw: Option<&RawKeep>,
    ) -> Option<Keep> {
        let mut keep = Keep::default();
        let Some(raw) = raw else {
            if !self.reported.contains(&format!("{owner}.keep")) {
                self.no_keep_rule(owner, at);
            }
            return None;
        };
        let before = self.diags.len();
        let key = |k: &str| format!("{owner}.keep.{k}");
        keep.last = raw.last.as_ref().and_then(|c| self.count(c, &key("last")));
        keep.within = raw.within.as_ref().and_then(|w| {
            self.value(
                w,
                &key("within"),
                "write a duration such as \"36h\" or \"7d\"",
                Span::from_str,
            )
        });
        let periods = [
            &raw.hourly,
            &raw.daily,
            &raw.weekly,
            &raw.monthly,
            &raw.quarterly,
            &raw.yearly,
        ];
        for (period, raw_count) in Period::ALL.into_iter().zip(periods) {
            keep.periods[period as usize] = raw_count
                .as_ref()
                .and_then(|c| self.count(c, &key(period.key())));
        }
        if self.diags.len() > before {
            return None;
        }
        if keep.is_empty() {
            self.no_keep_rule(owner, at);
            return None;
        }
        Some(keep)
    }

    fn no_keep_rule(&mut self, owner: &str, at: Range<usize>) {
        self.error(
            at,
            owner,
            format!(
                "{} has no keep rule, so nothing it creates could ever be pruned safely",
                if owner.ends_with(".backup") {
                    "backup"
                } else if owner.ends_with(".replicate") {
                    "replication"
                } else {
                    "policy"
                }
            ),
            Some("add for example keep = { last = 4, daily = 7 }".to_owned()),
        );
    }

    fn count(&mut self, raw: &Spanned<RawCount>, key: &str) -> Option<Count> {
        let message = match raw.get_ref() {
            RawCount::Number(n) if *n >= 1 && *n <= i64::from(u32::MAX) => {
                return Some(Count::N(*n as u32))
            }
            RawCount::Word(w) if w == "all" => return Some(Count::All),
            RawCount::Number(n) if *n <= 0 => format!("{n} is not a positive count"),
            RawCount::Number(n) => format!("{n} is too large"),
            RawCount::Word(w) => format!("{w:?} is not a count"),
        };
        self.error(
            raw.span(),
            key,
            message,
            Some(
                "write a positive whole number, or \"all\"; remove the key to turn the rule off"
                    .to_owned(),
            ),
        );
        None
    }
}

/// Where a validated policy came from, for cross-file messages.
pub struct Origin {
    pub file: PathBuf,
    pub text: String,
    pub raw: RawFile,
}

/// Checks that span files: a policy name or a volume used twice, settings given twice.
pub fn check_across_files(origins: &[Origin]) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut names: BTreeMap<&str, (&Path, usize)> = BTreeMap::new();
    let mut volumes: BTreeMap<VolumeRef, (&str, &Path, usize)> = BTreeMap::new();
    let mut settings_seen: Option<(&Path, usize)> = None;
    for o in origins {
        let map = SourceMap {
            file: &o.file,
            text: &o.text,
        };
        if let Some(s) = &o.raw.settings {
            let line = map.line_col(s.span().start).0;
            if let Some((file, first)) = settings_seen {
                let d = map.at(s.span(), "settings", "settings are given twice".to_owned());
                diags.push(Diagnostic {
                    hint: Some(format!(
                        "keep one [settings] table; the first is at {}:{first}",
                        file.display()
                    )),
                    ..d
                });
            } else {
                settings_seen = Some((&o.file, line));
            }
        }
        for (name, policy) in o.raw.policies_in_order() {
            let line = map.line_col(name.span().start).0;
            if let Some((file, first)) = names.get(name.get_ref().as_str()) {
                let d = map.at(
                    name.span(),
                    &format!("policy.{}", name.get_ref()),
                    "policy is defined twice".to_owned(),
                );
                diags.push(Diagnostic {
                    hint: Some(format!(
                        "rename one; the first is at {}:{first}",
                        file.display()
                    )),
                    ..d
                });
                continue;
            }
            names.insert(name.get_ref(), (&o.file, line));
            for v in policy.volumes.iter().flat_map(|l| l.get_ref()) {
                let Ok(vol) = VolumeRef::from_str(v.get_ref()) else {
                    continue;
                };
                let line = map.line_col(v.span().start).0;
                match volumes.get(&vol) {
                    Some((other, file, first)) if *other != name.get_ref().as_str() => {
                        let d = map.at(
                            v.span(),
                            &format!("policy.{}.volumes", name.get_ref()),
                            format!("volume {vol} is already in policy \"{other}\""),
                        );
                        diags.push(Diagnostic { hint: Some(format!("a volume belongs to one policy; merge the keep rules into \"{other}\" ({}:{first})", file.display())), ..d });
                    }
                    Some(_) => {}
                    None => {
                        volumes.insert(vol, (name.get_ref(), &o.file, line));
                    }
                }
            }
        }
    }
    diags
}
