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
#[derive(Debug, Clone)]
pub enum BackupEngine {
    /// Dated generation directories; unchanged files hard-linked to the previous generation.
    Rsync,
    /// One tar stream compressed with zstd per backup.
    Archive,
    /// An argv with `{mount}` and `{snapshot}` placeholders (restic, borg, …).
    Command(Vec<String>),
    /// One restic snapshot per backup, in a repository that may be off the host and shared.
    Restic(Box<ResticRepo>),
}

/// A restic repository and how lvsnap opens it.
#[derive(Debug, Clone)]
pub struct ResticRepo {
    /// Any restic repository string: a local path, `sftp:…`, `rest:…`, `s3:…`, `rclone:…`.
    pub repository: String,
    /// The repository's password (root's, readable by no one else).
    pub password_file: PathBuf,
    /// `NAME=VALUE` lines for the backend (S3 keys, a REST server's credentials), root's and
    /// readable by no one else.
    pub env_file: Option<PathBuf>,
    /// The host the snapshots are filed under; the machine's name when `None`.
    pub host: Option<String>,
    /// When the repository is pruned (removing the data of forgotten snapshots is expensive
    /// and locks out every other client).
    pub prune_schedule: Schedule,
}

/// Weekly, Sunday 04:00: after a night's backups, before Monday's.
pub const DEFAULT_PRUNE_SCHEDULE: &str = "0 4 * * 0";

impl BackupEngine {
    pub fn name(&self) -> &'static str {
        match self {
            BackupEngine::Rsync => "rsync",
            BackupEngine::Archive => "archive",
            BackupEngine::Command(_) => "command",
            BackupEngine::Restic(_) => "restic",
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
        settings: &Settings,
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
                "write \"rsync\", \"archive\", \"restic\" or \"command\"",
                |s| match s {
                    "rsync" => Ok(BackupEngine::Rsync),
                    "archive" => Ok(BackupEngine::Archive),
                    "command" => Ok(BackupEngine::Command(Vec::new())),
                    "restic" => Ok(BackupEngine::Restic(Box::new(ResticRepo {
                        repository: String::new(),
                        password_file: PathBuf::new(),
                        env_file: None,
                        host: None,
                        prune_schedule: Schedule::parse(DEFAULT_PRUNE_SCHEDULE)
                            .expect("the default is valid"),
                    }))),
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
        let restic = matches!(engine, Some(BackupEngine::Restic(_)));
        let engine = match engine {
            Some(BackupEngine::Restic(_)) => self
                .restic(table, &owner)
                .map(|r| BackupEngine::Restic(Box::new(r))),
            other => {
                self.restic_keys_unused(raw, &owner, other.as_ref());
                other
            }
        };
        let target = match &raw.target {
            // restic keeps the data in its repository; lvsnap keeps each backup's manifest in
            // its state directory, beside the catalog.
            None if restic => Some(settings.state_dir().join("restic").join(name.get_ref())),
            Some(t) if restic => {
                self.error(
                    t.span(),
                    &k("target"),
                    "engine \"restic\" writes to its repository, not to a target directory"
                        .to_owned(),
                    Some("remove target; set repository = \"…\" instead".to_owned()),
                );
                None
            }
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

    /// The repository keys of `engine = "restic"`.
    fn restic(&mut self, table: &Spanned<RawBackup>, owner: &str) -> Option<ResticRepo> {
        let before = self.diags.len();
        let raw = table.get_ref();
        let k = |key: &str| format!("{owner}.{key}");
        let repository = match &raw.repository {
            Some(r) if r.get_ref().trim().is_empty() || r.get_ref().starts_with('-') => {
                self.error(
                    r.span(),
                    &k("repository"),
                    format!("{:?} is not a repository", r.get_ref()),
                    Some("write a restic repository: a path, or \"sftp:host:/path\", \"rest:https://host:8000/\", \"s3:…\", \"rclone:…\"".to_owned()),
                );
                None
            }
            Some(r) => {
                // restic 0.14 takes a REST server's password only in the URL: the policy file
                // holding it is then a credential file, readable by root alone.
                if url_password(r.get_ref()).is_some() {
                    if let Some(why) = readable_by_others(self.map.file) {
                        self.error(
                            r.span(),
                            &k("repository"),
                            format!(
                                "the URL holds a password, but {} {why}",
                                self.map.file.display()
                            ),
                            Some(format!(
                                "make the file root's alone: chown root:root {0} && chmod 600 {0}",
                                self.map.file.display()
                            )),
                        );
                    }
                }
                Some(r.get_ref().clone())
            }
            None => {
                self.error(
                    table.span(),
                    &k("repository"),
                    "missing (engine \"restic\" needs one)".to_owned(),
                    Some("add for example repository = \"rest:https://backup01:8000/\" or a local path".to_owned()),
                );
                None
            }
        };
        let mut file = |v: &Option<Spanned<String>>, key: &str, required: bool| match v {
            Some(p) if Path::new(p.get_ref()).is_absolute() => {
                Some(Some(PathBuf::from(p.get_ref())))
            }
            Some(p) => {
                self.error(
                    p.span(),
                    &k(key),
                    format!("{:?} is not an absolute path", p.get_ref()),
                    Some(format!(
                        "write the file's full path, for example \"/etc/lvsnap/restic.{}\"",
                        if key == "env-file" { "env" } else { "pass" }
                    )),
                );
                None
            }
            None if required => {
                self.error(
                    table.span(),
                    &k(key),
                    "missing (engine \"restic\" needs the repository's password)".to_owned(),
                    Some("add password-file = \"/etc/lvsnap/restic.pass\" (owned by root, mode 0600)".to_owned()),
                );
                None
            }
            None => Some(None),
        };
        let password_file = file(&raw.password_file, "password-file", true).flatten();
        let env_file = file(&raw.env_file, "env-file", false);
        let host = match &raw.host {
            Some(h) if !valid_host(h.get_ref()) => {
                self.error(
                    h.span(),
                    &k("host"),
                    format!("{:?} is not a host name restic can file snapshots under", h.get_ref()),
                    Some("write a name without spaces or commas, such as \"web01\" (the default is this machine's name)".to_owned()),
                );
                None
            }
            Some(h) => Some(Some(h.get_ref().clone())),
            None => Some(None),
        };
        let prune_schedule = match &raw.prune_schedule {
            Some(s) => self.value(
                s,
                &k("prune-schedule"),
                "cron fields are minute hour day-of-month month day-of-week, e.g. \"0 4 * * 0\" for Sundays at 04:00",
                Schedule::parse,
            ),
            None => Schedule::parse(DEFAULT_PRUNE_SCHEDULE).ok(),
        };
        if self.diags.len() > before {
            return None;
        }
        Some(ResticRepo {
            repository: repository?,
            password_file: password_file?,
            env_file: env_file?,
            host: host?,
            prune_schedule: prune_schedule?,
        })
    }

    /// Repository keys written for another engine are errors, not silently ignored.
    fn restic_keys_unused(&mut self, raw: &RawBackup, owner: &str, engine: Option<&BackupEngine>) {
        let keys = [
            ("repository", &raw.repository),
            ("password-file", &raw.password_file),
            ("env-file", &raw.env_file),
            ("host", &raw.host),
            ("prune-schedule", &raw.prune_schedule),
        ];
        let engine = engine.map_or("rsync", BackupEngine::name);
        for (key, v) in keys {
            if let Some(v) = v {
                self.error(
                    v.span(),
                    &format!("{owner}.{key}"),
                    format!("{key} is only read by engine = \"restic\", not {engine}"),
                    Some(format!("remove {key}, or set engine = \"restic\"")),
                );
            }
        }
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

/// A host name restic can store and lvsnap can match: printable, no spaces, no commas (restic
/// splits filters on commas).
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.chars().all(|c| c.is_ascii_graphic() && c != ',')
}

/// Why a policy file that holds a secret is not private (owned by lvsnap's user, readable by no
/// one else), if it is not.
fn readable_by_others(file: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot be checked: {e}")),
    };
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me {
        Some(format!("is owned by uid {}", m.uid()))
    } else if m.mode() & 0o077 != 0 {
        Some(format!(
            "can be read by others (mode {:04o})",
            m.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// The password in a repository URL's user part (`scheme://user:PASSWORD@host/…`). The user
/// part ends at the last `@` (a password may hold `/`, `#` or `?`, unescaped).
pub fn url_password(repo: &str) -> Option<&str> {
    let scheme = repo.find("://")?;
    let rest = &repo[scheme + 3..];
    let at = rest.rfind('@')?;
    let (_, pw) = rest[..at].split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}
