//! Policy files: reading them (the only file I/O here is in [`load`]), validating them in two
//! stages (raw serde structs, then domain types), and reporting every error with its location.
//! Nothing downstream sees a raw string where a type belongs.

mod backup;
pub mod diag;
pub mod raw;
mod replicate;
pub mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::Duration;
use chrono_tz::Tz;

pub use backup::{url_password, BackupEngine, BackupPolicy, BackupSource, ResticRepo};
pub use diag::Diagnostic;
pub use replicate::ReplicatePolicy;
pub use types::{
    Count, InvalidAction, Keep, MountContext, Period, Schedule, SnapshotSize, Span, VolumeRef,
};

use raw::RawFile;
use validate::{check_across_files, FileValidator, Origin};

pub const DEFAULT_CONFIG: &str = "/etc/lvsnap/lvsnap.toml";
pub const DEFAULT_CATALOG: &str = "/var/lib/lvsnap/catalog.db";
pub const DEFAULT_SIZE_PERCENT: u32 = 20;
pub const DEFAULT_MAX_REMOVE_PERCENT: u8 = 50;
pub const DEFAULT_RUNTIME_DIR: &str = "/run/lvsnap";
pub const DEFAULT_LOCK_TIMEOUT_SECS: i64 = 60;
pub const DEFAULT_POOL_MAX_PERCENT: u8 = 80;
pub const DEFAULT_EXTEND_AT_PERCENT: u8 = 80;
pub const DEFAULT_EXTEND_BY_PERCENT: u8 = 20;
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_FREEZE_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_SPACE_POLL_SECS: i64 = 60;
/// How long the catalog keeps its command log and run history (`history-days`).
pub const DEFAULT_HISTORY_DAYS: i64 = 90;
/// How long failed commands and runs stay (`failure-history-days`).
pub const DEFAULT_FAILURE_HISTORY_DAYS: i64 = 365;
/// The most rows the catalog keeps of each kind of history (`history-rows`).
pub const DEFAULT_HISTORY_ROWS: u64 = 40_000;
/// Each thick snapshot of an origin copies every write to it once more (snapm's limit too).
pub const DEFAULT_MAX_THICK_PER_ORIGIN: u32 = 5;
/// `thin_check` at boot slows with the number of thin volumes in a pool (snapm's limit too).
pub const DEFAULT_MAX_PER_POOL: u32 = 1000;

/// Everything lvsnap was configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub policies: Vec<Policy>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The path it was loaded from (a file or a directory), for a child lvsnap to read too.
    pub source: PathBuf,
}

impl Config {
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The SELinux label a mount of policy `name`'s snapshot asks for: `given` on the command
    /// line, else the policy's `mount-context`.
    pub fn mount_context<'a>(
        &'a self,
        given: Option<&'a MountContext>,
        name: &str,
    ) -> Option<&'a MountContext> {
        given.or_else(|| self.policy(name)?.mount_context.as_ref())
    }

    /// The restic repository policy `name` backs up to, if it does.
    pub fn restic_repository(&self, name: &str) -> Option<&ResticRepo> {
        match self.policy(name)?.backup.as_ref().map(|b| &b.engine) {
            Some(BackupEngine::Restic(r)) => Some(r),
            _ => None,
        }
    }

    /// The named policy, or an error that lists the ones that exist.
    ///
    /// # Errors
    /// The name is not a configured policy.
    pub fn require_policy(&self, name: &str) -> Result<&Policy, String> {
        self.policy(name).ok_or_else(|| {
            let names: Vec<&str> = self.policies.iter().map(|p| p.name.as_str()).collect();
            let hint = diag::nearest(name, &names)
                .map(|n| format!("; did you mean \"{n}\"?"))
                .unwrap_or_default();
            format!(
                "no policy named \"{name}\" (policies: {}){hint}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub catalog: PathBuf,
    pub timezone: Tz,
    /// Lock file and, later, private mount points.
    pub runtime_dir: PathBuf,
    /// How long a changing command waits for another lvsnap to finish.
    pub lock_timeout: Duration,
    /// Prometheus textfile-collector file written after each run, if set.
    pub metrics_file: Option<PathBuf>,
    /// Directories searched for external programs before the system ones (`tool-path`).
    pub tool_path: Vec<PathBuf>,
    /// How often the daemon looks at space pressure, when a policy sets a threshold.
    pub space_poll: Duration,
    /// How long the catalog keeps the commands it ran and the runs it recorded.
    pub history: Duration,
    /// How long it keeps those that failed (at least `history`).
    pub failure_history: Duration,
    /// The most rows it keeps of each kind of history, failures aside.
    pub history_rows: u64,
}

impl Config {
    /// What `config check` points out in valid policy files: settings that work but cost.
    pub fn advice(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.policies {
            let cap = p.max_thick_per_origin;
            if cap > DEFAULT_MAX_THICK_PER_ORIGIN {
                out.push(format!(
                    "policy {}: max-thick-per-origin = {cap}: each thick snapshot copies every write to its origin once more, so writes to a thick origin with {cap} snapshots cost up to {} times as much; thin volumes share blocks instead",
                    p.name,
                    cap + 1
                ));
            }
            let most = p.keep.most();
            if most.is_none_or(|n| n > cap) {
                out.push(format!(
                    "policy {}: its keep rules keep {} snapshots of a volume, but max-thick-per-origin is {cap}: for a thick volume, once {cap} exist and the rules keep them all, the next snapshot is refused; keep fewer, raise max-thick-per-origin, or use thin volumes (a thin volume is held to max-per-pool = {} instead)",
                    p.name,
                    most.map_or("any number of".to_owned(), |n| format!("up to {n}")),
                    p.max_per_pool
                ));
            } else if !p.min_age.is_zero() {
                out.push(format!(
                    "policy {}: min-age = {} keeps every snapshot younger than that besides what the keep rules keep; for a thick volume, max-thick-per-origin ({cap}) counts them too",
                    p.name, p.min_age
                ));
            }
        }
        out
    }
}

impl Settings {
    pub fn defaults(timezone: Tz) -> Self {
        Settings {
            catalog: PathBuf::from(DEFAULT_CATALOG),
            timezone,
            runtime_dir: PathBuf::from(DEFAULT_RUNTIME_DIR),
            lock_timeout: Duration::seconds(DEFAULT_LOCK_TIMEOUT_SECS),
            metrics_file: None,
            tool_path: Vec::new(),
            space_poll: Duration::seconds(DEFAULT_SPACE_POLL_SECS),
            history: Duration::days(DEFAULT_HISTORY_DAYS),
            failure_history: Duration::days(DEFAULT_FAILURE_HISTORY_DAYS),
            history_rows: DEFAULT_HISTORY_ROWS,
        }
    }

    /// lvsnap's state directory: the catalog's, where restic's cache and the manifests of
    /// restic backups live too.
    pub fn state_dir(&self) -> PathBuf {
        self.catalog
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }
}

/// One validated `[policy.NAME]` table.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub volumes: Vec<VolumeRef>,
    pub schedule: Schedule,
    pub size: SnapshotSize,
    pub keep: Keep,
    pub min_age: Span,
    pub timezone: Tz,
    /// Share of a group's snapshots one run may remove without `--force`.
    pub max_remove_percent: u8,
    /// How far in the future a snapshot may be dated before it counts as clock trouble.
    pub future_skew: Duration,
    pub invalid: InvalidAction,
    /// Free space a thick snapshot must leave in its volume group.
    pub keep_free: FreeSpace,
    /// A thin snapshot is refused when its pool's data or metadata is this full (percent).
    pub pool_data_max: u8,
    pub pool_metadata_max: u8,
    /// A thick snapshot this full (percent) is extended by `extend_by` percent of its size.
    pub extend_at: u8,
    pub extend_by: u8,
    /// Space pressure: when a thin pool holding the policy's volumes is this full (percent), or
    /// its volume group has less than this free, the policy's oldest snapshots there are removed
    /// before anything else, until it is not. Off when `None`.
    pub pool_data_emergency: Option<u8>,
    pub pool_metadata_emergency: Option<u8>,
    pub vg_free_emergency: Option<FreeSpace>,
    /// Space pressure may remove a group's newest snapshot too, as the very last resort.
    pub emergency_removes_newest: bool,
    /// Thick snapshots an origin may have (all of them, lvsnap's or not).
    pub max_thick_per_origin: u32,
    /// Thin snapshots a pool may hold (all of them, lvsnap's or not).
    pub max_per_pool: u32,
    /// Command (argv) run before each snapshot; a failure skips the snapshot.
    pub pre: Option<Vec<String>>,
    /// Command (argv) run after each snapshot whose `pre` ran.
    pub post: Option<Vec<String>>,
    pub hook_timeout: std::time::Duration,
    /// The policy's volumes form one snapshot set: taken together between one `pre` and one
    /// `post` hook, kept and removed together.
    pub set: bool,
    /// A set's mounted filesystems are frozen (FIFREEZE) while its snapshots are created.
    pub freeze: bool,
    /// The longest a set's filesystems stay frozen: past it they are thawed whatever LVM is
    /// doing, and the set is given up.
    pub freeze_timeout: std::time::Duration,
    /// The SELinux label of the files of its snapshots when lvsnap mounts them (`context=`).
    pub mount_context: Option<MountContext>,
    /// The `[policy.NAME.backup]` table, if the policy backs its snapshots up.
    pub backup: Option<BackupPolicy>,
    /// The `[policy.NAME.replicate]` table, if the policy's thin snapshots are replicated.
    pub replicate: Option<ReplicatePolicy>,
    pub file: PathBuf,
    pub line: usize,
}

/// Space to keep free in a volume group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeSpace {
    Bytes(u64),
    Percent(u8),
}

impl FreeSpace {
    /// The bytes this means in a volume group of `vg_size` bytes.
    pub fn bytes(self, vg_size: u64) -> u64 {
        match self {
            FreeSpace::Bytes(b) => b,
            // Multiplied first: a percentage of an exact size stays exact.
            FreeSpace::Percent(p) => (u128::from(vg_size) * u128::from(p) / 100) as u64,
        }
    }
}

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeSpace::Bytes(b) => write!(f, "{}", types::format_bytes(*b)),
            FreeSpace::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// All errors found in the policy files, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses one policy file's text; `origin` names it in errors. Time zones left unset are UTC.
///
/// # Errors
/// Every problem in the text, each with its location.
pub fn parse_str(src: &str, origin: &Path) -> Result<Config, ConfigErrors> {
    parse_sources(vec![(origin.to_owned(), src.to_owned())], Tz::UTC)
}

/// Parses several files as one configuration: policies from all, `[settings]` from at most one.
///
/// # Errors
/// Every problem in every file, each with its location.
pub fn parse_sources(
    sources: Vec<(PathBuf, String)>,
    system_tz: Tz,
) -> Result<Config, ConfigErrors> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut origins = Vec::new();
    for (file, text) in sources {
        let (raw, mut d) = diag::parse_collecting::<RawFile>(&text, &file);
        diags.append(&mut d);
        origins.push(Origin {
            file,
            text,
            raw: raw.unwrap_or_default(),
        });
    }
    let settings_origin = origins.iter().find(|o| o.raw.settings.is_some());
    let settings = match settings_origin {
        Some(o) => {
            let mut v = FileValidator::new(&o.file, &o.text);
            let s = v.settings(
                o.raw.settings.as_ref().expect("found above").get_ref(),
                system_tz,
            );
            diags.append(&mut v.diags);
            s
        }
        None => Settings::defaults(system_tz),
    };
    let mut policies = Vec::new();
    for o in &origins {
        let mut v = FileValidator::new(&o.file, &o.text);
        // A key blanked for a structural error is already reported; do not call it missing too.
        v.reported = diags
            .iter()
            .filter(|d| d.file == o.file)
            .map(|d| d.key.clone())
            .collect();
        for (name, raw) in o.raw.policies_in_order() {
            policies.extend(v.policy(name, raw, &settings));
        }
        diags.append(&mut v.diags);
    }
    diags.extend(check_across_files(&origins));
    if !diags.is_empty() {
        diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(ConfigErrors(diags));
    }
    let files: Vec<PathBuf> = origins.into_iter().map(|o| o.file).collect();
    Ok(Config {
        settings,
        policies,
        source: files.first().cloned().unwrap_or_default(),
        files,
    })
}

/// The files a configuration path stands for: a directory means its `*.toml` files; a file
/// means itself plus `policy.d/*.toml` beside it, when that directory exists.
///
/// # Errors
/// The path or its directory cannot be read.
pub fn config_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let toml_in = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        Ok(files)
    };
    if path.is_dir() {
        return toml_in(path);
    }
    let mut files = vec![path.to_owned()];
    let drop_in = path.parent().unwrap_or(Path::new(".")).join("policy.d");
    if drop_in.is_dir() {
        files.extend(toml_in(&drop_in)?);
    }
    Ok(files)
}

/// Whether `n` can name a policy: it goes into the LVM tag `lvsnap-policy=NAME`.
pub fn usable_policy_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}{}", hint_for(.source))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("{0}: no *.toml policy files in this directory")]
    Empty(PathBuf),
}

fn hint_for(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            "\n    hint: write a policy file there (see config/ in lvsnap's sources), or pass --config PATH / set LVSNAP_CONFIG"
        }
        std::io::ErrorKind::PermissionDenied => "\n    hint: run as root",
        _ => "",
    }
}

/// Reads and validates the configuration at `path` (a file or a directory).
///
/// # Errors
/// The files cannot be read, or any of them is invalid.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    fn read_err(p: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
        move |source| LoadError::Read {
            path: p.to_owned(),
            source,
        }
    }
    let files = config_files(path).map_err(read_err(path))?;
    if files.is_empty() {
        return Err(LoadError::Empty(path.to_owned()));
    }
    let mut sources = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(read_err(&f))?;
        sources.push((f, text));
    }
    let mut config = parse_sources(sources, system_timezone()).map_err(LoadError::Invalid)?;
    config.source = path.to_owned();
    Ok(config)
}

/// The host's time zone, as the system reports it; UTC when it cannot be told.
pub fn system_timezone() -> Tz {
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(Tz::UTC)
}
