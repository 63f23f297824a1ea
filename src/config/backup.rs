//! The `[policy.NAME.backup]` table: when a policy's snapshots are copied elsewhere, by which
//! engine, where to, and how many generations stay. Validated here like the rest of a policy.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::raw::RawBackup;
use super::types::{Keep, Schedule};
use super::validate::FileValidator;
use super::Settings;

/// How a backup is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupEngine {
    /// Dated generation directories; unchanged files hard-linked to the previous generation.
    Rsync,
    /// One tar stream compressed with zstd per backup.
    Archive,
    /// An argv with `{mount}` and `{snapshot}` placeholders (restic, borg, …).
    Command(Vec<String>),
}

impl BackupEngine {
    pub fn name(&self) -> &'static str {
        match self {
            BackupEngine::Rsync => "rsync",
            BackupEngine::Archive => "archive",
            BackupEngine::Command(_) => "command",
        }
    }
}

impl fmt::Display for BackupEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which snapshot a backup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupSource {
    /// The newest valid snapshot the policy keeps.
    Newest,
    /// A snapshot taken for the backup and removed after it.
    Fresh,
}

/// One validated backup table.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    pub schedule: Schedule,
    pub engine: BackupEngine,
    /// Directory that holds one subdirectory per volume (`VG-LV`) with its generations.
    pub target: PathBuf,
    pub keep: Keep,
    pub source: BackupSource,
    /// Paths relative to the volume's root that are not backed up (whole subtrees).
    pub exclude: Vec<PathBuf>,
}

impl FileValidator<'_> {
    /// Validates `[policy.NAME.backup]`; `None` when it has errors (all recorded).
    pub(super) fn backup(
        &mut self,
        name: &Spanned<String>,
        table: &Spanned<RawBackup>,
        _settings: &Settings,
    ) -> Option<BackupPolicy> {
        let before = self.diags.len();
        let owner = format!("policy.{}.backup", name.get_ref());
        let k = |key: &str| format!("{owner}.{key}");
        let raw = table.get_ref();
        let schedule = match &raw.schedule {
            Some(s) => self.value(
                s,
                &k("schedule"),
                "cron fields are minute hour day-of-month month day-of-week, e.g. \"30 2 * * *\" for nightly",
                Schedule::parse,
            ),
            None => {
                self.error(
                    table.span(),
                    &k("schedule"),
                    "missing".to_owned(),
                    Some("add for example schedule = \"30 2 * * *\" (nightly at 02:30)".to_owned()),
                );
                None
            }
        };
        let command = self.hook(raw.command.as_ref(), &k("command"));
        let engine = match &raw.engine {
            Some(e) => self.value(
                e,
                &k("engine"),
                "write \"rsync\", \"archive\" or \"command\"",
                |s| match s {
                    "rsync" => Ok(BackupEngine::Rsync),
                    "archive" => Ok(BackupEngine::Archive),
                    "command" => Ok(BackupEngine::Command(Vec::new())),
                    other => Err(format!("{other:?} is not an engine")),
                },
            ),
            None => Some(BackupEngine::Rsync),
        };
        let engine = match (engine, command) {
            (Some(BackupEngine::Command(_)), Some(Some(argv))) => {
                if !argv
                    .iter()
                    .any(|a| a.contains("{mount}") || a.contains("{snapshot}"))
                {
                    self.error(
                        raw.command.as_ref().expect("argv came from it").span(),
                        &k("command"),
                        "the command is never told what to back up".to_owned(),
                        Some("put {mount} (the snapshot's read-only mount point) in an argument, for example [\"restic\", \"backup\", \"{mount}\"]".to_owned()),
                    );
                }
                Some(BackupEngine::Command(argv))
            }
            (Some(BackupEngine::Command(_)), Some(None)) => {
                self.error(
                    raw.engine
                        .as_ref()
                        .expect("engine = command was written")
                        .span(),
                    &k("command"),
                    "engine \"command\" needs a command".to_owned(),
                    Some(
                        "add for example command = [\"restic\", \"backup\", \"{mount}\"]"
                            .to_owned(),
                    ),
                );
                None
            }
            (Some(e), Some(Some(_))) => {
                self.error(
                    raw.command.as_ref().expect("argv came from it").span(),
                    &k("command"),
                    format!("a command is only run by engine = \"command\", not {e}"),
                    Some("remove command, or set engine = \"command\"".to_owned()),
                );
                None
            }
            (e, _) => e,
        };
        let target = match &raw.target {
            Some(t) if Path::new(t.get_ref()).is_absolute() => Some(PathBuf::from(t.get_ref())),
            Some(t) => {
                self.error(
                    t.span(),
                    &k("target"),
                    format!("{:?} is not an absolute path", t.get_ref()),
                    Some(
                        "write the directory backups go to, for example \"/srv/backup/lvsnap\""
                            .to_owned(),
                    ),
                );
                None
            }
            None => {
                self.error(
                    table.span(),
                    &k("target"),
                    "missing".to_owned(),
                    Some("add target = \"/srv/backup/lvsnap\" (a directory on other disks than the volume group)".to_owned()),
                );
                None
            }
        };
        let source = match &raw.source {
            Some(s) => self.value(
                s,
                &k("source"),
                "write \"newest\" (the newest snapshot, the default) or \"fresh\" (a temporary snapshot taken for the backup)",
                |s| match s {
                    "newest" => Ok(BackupSource::Newest),
                    "fresh" => Ok(BackupSource::Fresh),
                    other => Err(format!("{other:?} is not a choice")),
                },
            ),
            None => Some(BackupSource::Newest),
        };
        let exclude = self.excludes(raw, &k("exclude"));
        let keep = self.keep(&owner, table.span(), raw.keep.as_ref());
        if self.diags.len() > before {
            return None;
        }
        Some(BackupPolicy {
            schedule: schedule?,
            engine: engine?,
            target: target?,
            keep: keep?,
            source: source?,
            exclude,
        })
    }

    fn excludes(&mut self, raw: &RawBackup, key: &str) -> Vec<PathBuf> {
        let Some(list) = &raw.exclude else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in list.get_ref() {
            let rel: PathBuf = Path::new(e.get_ref())
                .components()
                .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
                .collect();
            let escapes = rel.components().any(|c| matches!(c, Component::ParentDir));
            if rel.as_os_str().is_empty() || escapes {
                self.error(
                    e.span(),
                    key,
                    format!("{:?} is not a path inside the volume", e.get_ref()),
                    Some("write paths relative to the volume's root, such as \"tmp\" or \"var/cache\"; each excludes that whole subtree, matched literally (no wildcards)".to_owned()),
                );
                continue;
            }
            out.push(rel);
        }
        out
    }
}
