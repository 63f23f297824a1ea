//! The command line: clap definitions and dispatch. Reads the clock and the environment here, at
//! the edge, and hands plain values to the library.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::backup::commands as backup_commands;
use crate::commands::{self, Ctx};
use crate::config::{self, Span, DEFAULT_CONFIG};
use crate::error::{exit, Error};
use crate::lvm::real::SystemRunner;
use crate::lvm::Runner;
use crate::report;
use crate::restore::commands as restore_commands;
use crate::run::Options;
use crate::simulate;

const AFTER_HELP: &str = "\
Policy files:
  lvsnap reads /etc/lvsnap/lvsnap.toml and every /etc/lvsnap/policy.d/*.toml beside it, or the
  file or directory given with --config (or LVSNAP_CONFIG). Start with `lvsnap config check`.

Getting started:
  lvsnap config check          validate the policy files
  lvsnap plan                  what a run would do now, with every reason
  lvsnap run --dry-run         the same, as a run
  lvsnap run                   take due snapshots, prune, extend (from a timer)
  lvsnap list                  the snapshots lvsnap manages

Exit status:
  0  everything asked for was done
  1  an operation failed; the message says which and why
  2  bad input (invalid policy file, unknown policy, wrong arguments); nothing was changed
  3  done, but a guard held pruning back (too many removals at once, a merge pending);
     `prune --force` overrides the first";

/// Scheduled copy-on-write LVM snapshots with retention policies, backups and restores.
///
/// lvsnap takes snapshots of logical volumes on a schedule, prunes them by the keep rules of
/// TOML policy files, backs them up, restores from them, and never touches a snapshot it did
/// not create.
#[derive(Debug, Parser)]
#[command(name = "lvsnap", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Policy file, or a directory of *.toml policy files.
    #[arg(long, short = 'c', global = true, env = "LVSNAP_CONFIG", value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// More log lines on stderr (-v: every action, -vv: debugging); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take a snapshot of every due group, then prune every group, then extend filling snapshots.
    ///
    /// This is the main job, meant for a systemd timer. A group is due when its schedule's most
    /// recent time is later than its newest snapshot, so after downtime it takes one catch-up
    /// snapshot. One group's failure never stops the others; the exit status says whether all
    /// succeeded (0), some failed (1), or a guard held pruning back (3).
    Run(RunArgs),

    /// Run as a service: each policy's snapshots at its scheduled times, until SIGTERM/SIGINT.
    ///
    /// The alternative to the systemd timer (lvsnap-daemon.service). Each scheduled job is
    /// `lvsnap run --policy P`, through the same lock, so timer and daemon never take two
    /// snapshots for one scheduled time. At start it catches up (one snapshot per due group).
    /// SIGHUP re-reads the policy files; an invalid file keeps the running policies and logs
    /// every error. SIGTERM finishes the LVM command in flight, records it, and exits 0.
    Daemon,

    /// Take a snapshot of a policy's volumes now, whether due or not.
    Snapshot {
        /// The policy whose volumes to snapshot.
        policy: String,
        /// Only this volume (VG/LV or LV) of the policy.
        #[arg(long, value_name = "VOLUME")]
        volume: Option<String>,
        /// Pin the snapshot: pruning keeps it until `lvsnap unpin`.
        #[arg(long)]
        pin: bool,
        /// A note shown by `lvsnap list`, such as "before the upgrade".
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },

    /// Remove what the keep rules no longer keep (no new snapshots).
    Prune {
        /// Only these policies (repeatable; default: all).
        #[arg(long, short = 'p', value_name = "NAME")]
        policy: Vec<String>,
        /// Show what would be removed; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Remove even when more than max-remove-percent of a group would go at once.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Show the plan for the live system: each snapshot, keep or remove, with every reason.
    ///
    /// Changes nothing and never waits for a running lvsnap.
    Plan {
        /// Only these policies (repeatable; default: all).
        #[arg(long, short = 'p', value_name = "NAME")]
        policy: Vec<String>,
        /// Plan as if the clock said TIME (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// List the snapshots lvsnap manages: origin, age, kind, size, fill, state, pin, why kept.
    List {
        /// Only this policy's volumes.
        #[arg(long, short = 'p', value_name = "NAME")]
        policy: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Back up a policy's volumes now, due or not: mount the newest snapshot (or a fresh
    /// temporary one) read-only, copy it with the policy's engine, write its manifest.
    ///
    /// Needs a [policy.NAME.backup] table. Generations the backup's keep rules no longer keep
    /// are pruned afterwards. SIGTERM or Ctrl-C stops the copy, unmounts, removes a temporary
    /// snapshot and any partial files, and records the backup as failed. `lvsnap run` runs
    /// backups by their own schedule.
    Backup {
        /// The policy whose volumes to back up.
        policy: String,
        /// Only this volume (VG/LV or LV) of the policy.
        #[arg(long, value_name = "VOLUME")]
        volume: Option<String>,
        /// Show what would be backed up and pruned; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// List backups: volume, generation, engine, state, files, size, duration, last verify.
    Backups {
        /// Only this policy's backups.
        #[arg(long, short = 'p', value_name = "NAME")]
        policy: Option<String>,
        /// Include failed and pruned backups (with why).
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Re-read a backup and compare every file with its manifest (missing, extra, changed).
    ///
    /// BACKUP is VG/LV@GENERATION as `lvsnap backups` shows it. Exit status 1 when any backup
    /// differs from its manifest; the result is recorded and shown by `lvsnap backups`.
    Verify {
        /// The backup to verify.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        backup: Option<String>,
        /// Verify every complete backup (of --policy, if given).
        #[arg(long)]
        all: bool,
        /// With --all: only this policy's backups.
        #[arg(long, short = 'p', value_name = "NAME", requires = "all")]
        policy: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Mount one of lvsnap's snapshots read-only to look around (default: /run/lvsnap/mnt/VG/NAME).
    ///
    /// ext4 is mounted `ro,noload`, xfs `ro,nouuid,norecovery`; a thin snapshot is activated
    /// first. Pruning leaves a mounted snapshot alone. Undo with `lvsnap umount`.
    Mount {
        /// The snapshot (NAME or VG/NAME, as `lvsnap list` shows it).
        snapshot: String,
        /// An empty directory to mount on.
        dir: Option<PathBuf>,
    },

    /// Unmount a snapshot `lvsnap mount` mounted (and deactivate it if lvsnap activated it).
    Umount {
        /// The snapshot, or the directory it is mounted on.
        target: String,
    },

    /// Copy files out of a snapshot or a backup: `lvsnap restore home-lvsnap-… etc/passwd --to /tmp/r`.
    ///
    /// SOURCE is a snapshot (NAME or VG/NAME) or a backup (VG/LV@GENERATION, see `lvsnap
    /// backups`). PATHs are relative to the volume's root (a leading / or the origin's mount
    /// point is dropped). Owners, modes, times, ACLs, xattrs, hard links and sparse files are
    /// kept. An existing file is never overwritten without --force; --dry-run lists what would
    /// be copied and what is in the way. --in-place restores into the origin's own mount point
    /// after confirmation and a pinned guard snapshot of the current state.
    Restore {
        /// A snapshot or a backup generation.
        source: String,
        /// Files or directories to restore (any bytes: a name that is not UTF-8 is given as it
        /// is, for example bash's $'bad\xffname', the form lvsnap prints it in).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The directory to restore into (created if missing).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "in_place",
            conflicts_with = "in_place"
        )]
        to: Option<PathBuf>,
        /// Restore into the live origin, where the files came from.
        #[arg(long)]
        in_place: bool,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Show what would be restored; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Answer yes to --in-place's question.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Files added (+), removed (-) and changed (c) between a snapshot and the live origin, or
    /// between two snapshots.
    Diff {
        /// The older state.
        snapshot: String,
        /// The newer state (default: the origin as it is now, where it is mounted).
        snapshot2: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Merge a snapshot back into its origin (lvconvert --merge), after a guard snapshot.
    ///
    /// Shows what will happen and asks (or --yes). A pinned guard snapshot of the current
    /// state is taken first, so the rollback can itself be rolled back. If the origin is in
    /// use, LVM defers the merge until its next activation; lvsnap says so and shows the
    /// rollback as pending in `list` and `status`, and holds pruning and backups meanwhile.
    ///
    /// A thin snapshot an earlier rollback detached is swapped in by renaming, in steps recorded
    /// in a journal first: if lvsnap is killed or the machine stops in between, the next `run`
    /// or `lvsnap rollback --resume` finishes the swap and says what VG/LV holds.
    Rollback {
        /// The snapshot to go back to.
        #[arg(required_unless_present = "resume")]
        snapshot: Option<String>,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Finish a rollback that was interrupted (a killed lvsnap, a power cut).
        #[arg(long, conflicts_with_all = ["snapshot", "yes"])]
        resume: bool,
        /// With --resume: forget an interrupted rollback that cannot go on (after putting LVM
        /// right by hand).
        #[arg(long, requires = "resume")]
        abandon: bool,
    },

    /// Per group: the newest snapshot and its age, the next scheduled time, count and space,
    /// the last error; the fill of volume groups and thin pools.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// A Nagios/Icinga check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one line with perfdata.
    ///
    /// Warns when a group's newest snapshot is late by --warning periods of its schedule (critical
    /// at --critical), when invalid snapshots exist, when a thin pool or a snapshot is filling,
    /// and when a group's last run failed (critical).
    Check {
        /// Schedule periods a snapshot may be late before WARNING.
        #[arg(long, default_value_t = 1, value_name = "PERIODS")]
        warning: u32,
        /// Schedule periods a snapshot may be late before CRITICAL.
        #[arg(long, default_value_t = 3, value_name = "PERIODS")]
        critical: u32,
    },

    /// Pin a snapshot so that pruning always keeps it.
    Pin {
        /// NAME or VG/NAME, as `lvsnap list` shows.
        snapshot: String,
    },

    /// Unpin a snapshot: its keep rules decide again.
    Unpin {
        /// NAME or VG/NAME.
        snapshot: String,
    },

    /// The catalog: rebuild it from LVM tags, show the commands lvsnap ran, or the restores.
    #[command(subcommand)]
    Catalog(CatalogCommand),

    /// Check policy files and show what they mean.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Print a shell completion script: lvsnap completions bash > /etc/bash_completion.d/lvsnap
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff): lvsnap man > /usr/local/share/man/man1/lvsnap.1
    Man,

    /// Replay a policy over a span of time and show which snapshots it would keep.
    ///
    /// The simulated host follows the policy's schedule (or --every) from --from up to, not
    /// including, --to. After each snapshot it prunes with the clock at that instant, as
    /// `lvsnap run` does. During a --down window it takes nothing; when the window ends it takes
    /// one catch-up snapshot if one is due. At --to it prunes once more and prints the kept
    /// snapshots, oldest first, with their reasons.
    ///
    /// Example: a year of hourly snapshots:
    ///
    ///   lvsnap simulate --config lvsnap.toml --policy home --from 2026-01-01T00:00:00Z --to 2027-01-01T00:00:00Z
    Simulate(SimulateArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate policy files: print every policy in normal form, or every error with its location.
    ///
    /// Exits 0 when the files are valid, 2 with all errors otherwise.
    Check {
        /// File or directory to check (default: --config).
        path: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Compute the next scheduled times from this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Re-create catalog records of snapshots that carry lvsnap's tags (after the catalog was
    /// lost, or to adopt tagged snapshots lvsnap reported as unmanaged).
    Rebuild {
        /// Show what would be adopted; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// The LVM commands lvsnap ran, with exit status, duration and error output; newest last.
    Events {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restores and rollbacks: what, from where, to where, when; newest first.
    History {
        /// How many of each.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these policies (repeatable; default: all).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: Vec<String>,
    /// Show what would be done; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Act as if the clock said TIME (RFC 3339): "what would happen at T".
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Prune even when more than max-remove-percent of a group would go at once.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The policy to simulate.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub policy: String,
    /// Start of the simulated span (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: DateTime<Utc>,
    /// End of the simulated span, not included (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: DateTime<Utc>,
    /// Take a snapshot at this fixed interval (e.g. 15min, 1h) instead of the policy's schedule.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub every: Option<Duration>,
    /// A window START..END (RFC 3339) in which the host is down; repeatable.
    #[arg(long, value_name = "START..END", value_parser = parse_window)]
    pub down: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Print JSON: {"kept":[{"time":…,"reasons":[…]}],"taken":N,"removed":N}.
    #[arg(long)]
    pub json: bool,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; write an RFC 3339 time such as 2026-03-01T00:00:00Z"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let span: Span = s.parse()?;
    match span.fixed() {
        Some(d) if d > Duration::zero() => Ok(d),
        Some(_) => Err("the interval must be longer than zero".to_owned()),
        None => Err("use a fixed interval (s, min, h), such as 15min or 1h".to_owned()),
    }
}

fn parse_window(s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let (a, b) = s.split_once("..").ok_or("write the window as START..END")?;
    let (a, b) = (parse_time(a)?, parse_time(b)?);
    if b <= a {
        return Err(format!("the window ends ({b}) before it starts ({a})"));
    }
    Ok((a, b))
}

/// Parses arguments, runs the command with the system's LVM tools, prints errors, returns the
/// exit status.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    crate::private::set_umask();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    init_logging(
        cli.verbose
            .max(u8::from(matches!(cli.command, Command::Daemon))),
    );
    if matches!(cli.command, Command::Daemon) {
        return daemon_main(&cli, std::sync::Arc::new(SystemRunner::discover()));
    }
    let runner = SystemRunner::discover();
    let mut out = std::io::stdout().lock();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if matches!(
        cli.command,
        Command::Run(_) | Command::Prune { .. } | Command::Backup { .. } | Command::Rollback { .. }
    ) {
        catch_signals(&cancel);
    }
    // Whole seconds: snapshot times, names and the catalog all count in seconds.
    execute_with(
        &cli,
        &runner,
        Utc::now().trunc_subsecs(0),
        &mut out,
        &mut std::io::stderr(),
        cancel,
    )
}

/// SIGTERM and SIGINT set `cancel`: the command finishes the LVM command in flight, stops a
/// backup and cleans up after it, records everything, and exits. A second signal exits at once.
fn catch_signals(cancel: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGTERM, SIGINT] {
        let installed = signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.clone())
            .and_then(|_| signal_hook::flag::register(sig, cancel.clone()));
        if let Err(e) = installed {
            tracing::warn!(
                "cannot catch signal {sig}: {e}; a signal will stop lvsnap without cleaning up"
            );
        }
    }
}

/// `lvsnap daemon`: a small runtime, signals wired to shutdown and reload.
fn daemon_main(cli: &Cli, runner: std::sync::Arc<dyn Runner>) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    if let Err(e) = runner.check_tools() {
        eprintln!("lvsnap: {e}");
        return exit::FAILED;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lvsnap: cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    let result = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return Err(Error::Daemon("cannot install signal handlers".to_owned()));
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        crate::daemon::run_daemon(cli.config.clone(), runner, rx, shutdown).await
    });
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("lvsnap: {e}");
            e.exit_code()
        }
    }
}

/// Logs on stderr: plain text under systemd (the journal adds time and colour is noise), with
/// colour on a terminal.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let tty = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(tty)
        .with_target(false);
    let _ = if tty {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}

/// Runs a parsed command against `runner` with the clock at `now`, printing to `out` and error
/// messages to `err`; returns the exit status.
pub fn execute(
    cli: &Cli,
    runner: &dyn Runner,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    execute_with(cli, runner, now, out, err, Default::default())
}

/// [`execute`] with a cancel flag that signals set.
pub fn execute_with(
    cli: &Cli,
    runner: &dyn Runner,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> i32 {
    crate::private::set_umask();
    match dispatch(cli, runner, now, out, cancel) {
        Ok(code) => code,
        // `lvsnap list | head`: the reader has what it wanted.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            let _ = writeln!(err, "lvsnap: {e}");
            if let Error::Config(config::LoadError::Invalid(errs)) = &e {
                let _ = writeln!(
                    err,
                    "lvsnap: {} error(s) in the policy files; nothing was changed",
                    errs.0.len()
                );
            }
            e.exit_code()
        }
    }
}

fn dispatch(
    cli: &Cli,
    runner: &dyn Runner,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<i32, Error> {
    // Commands that need no policy files, or read them their own way.
    match &cli.command {
        Command::Config(ConfigCommand::Check {
            path,
            json,
            now: at,
        }) => {
            return config_check(
                path.as_ref().unwrap_or(&cli.config),
                *json,
                at.unwrap_or(now),
                out,
            )
        }
        Command::Daemon => {
            return Err(Error::Daemon(
                "runs from the lvsnap binary's main, not from execute()".to_owned(),
            ))
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "lvsnap", out);
            return Ok(exit::OK);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(out)?;
            return Ok(exit::OK);
        }
        Command::Check { warning, critical } => {
            // A monitoring check reports a broken configuration as UNKNOWN, not as exit 2.
            let cfg = match config::load(&cli.config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    writeln!(
                        out,
                        "LVSNAP UNKNOWN - {}",
                        e.to_string()
                            .lines()
                            .next()
                            .unwrap_or("invalid configuration")
                    )?;
                    return Ok(crate::status::Level::Unknown as i32);
                }
            };
            crate::tools::set_tool_path(&cfg.settings.tool_path);
            let t = crate::status::Thresholds {
                warning_periods: *warning,
                critical_periods: (*critical).max(*warning),
            };
            return Ok(commands::check(
                &mut Ctx {
                    config: &cfg,
                    runner,
                    now,
                    out,
                    cancel,
                },
                t,
            ));
        }
        _ => {}
    }
    let cfg = config::load(&cli.config)?;
    crate::tools::set_tool_path(&cfg.settings.tool_path);
    if let Command::Run(a) = &cli.command {
        // Snapshots taken "in the future" would hold off every scheduled one until that date.
        if let Some(at) = a
            .now
            .filter(|at| *at > now + Duration::seconds(60) && !a.dry_run)
        {
            return Err(Error::Usage(format!(
                "--now {} is ahead of the clock ({}): the snapshots would be dated in the future; use --now with --dry-run to see the plan for that time",
                report::utc(at),
                report::utc(now)
            )));
        }
    }
    let at = match &cli.command {
        Command::Run(a) => a.now,
        Command::Plan { now, .. } => *now,
        _ => None,
    };
    let mut ctx = Ctx {
        config: &cfg,
        runner,
        now: at.unwrap_or(now),
        out,
        cancel: cancel.clone(),
    };
    let cycle = |policies: &[String], dry_run: bool, force: bool, snapshot: bool| Options {
        policies: policies.to_vec(),
        dry_run,
        force,
        snapshot,
        prune: true,
        cancel: Some(cancel.clone()),
    };
    match &cli.command {
        Command::Simulate(args) => simulate_cmd(&cfg, args, ctx.out),
        Command::Run(a) => commands::cycle(
            &mut ctx,
            &cycle(&a.policy, a.dry_run, a.force, true),
            a.json,
            a.dry_run,
        ),
        Command::Prune {
            policy,
            dry_run,
            force,
            json,
        } => commands::cycle(
            &mut ctx,
            &cycle(policy, *dry_run, *force, false),
            *json,
            *dry_run,
        ),
        Command::Plan { policy, json, .. } => {
            commands::cycle(&mut ctx, &cycle(policy, true, false, true), *json, true)
        }
        Command::Snapshot {
            policy,
            volume,
            pin,
            note,
        } => commands::snapshot(&mut ctx, policy, volume.as_deref(), *pin, note.as_deref()),
        Command::List { policy, json } => commands::list(&mut ctx, policy.as_deref(), *json),
        Command::Status { json } => commands::status(&mut ctx, *json),
        Command::Pin { snapshot } => commands::pin(&mut ctx, snapshot, true),
        Command::Unpin { snapshot } => commands::pin(&mut ctx, snapshot, false),
        Command::Catalog(CatalogCommand::Rebuild { dry_run }) => {
            commands::rebuild(&mut ctx, *dry_run)
        }
        Command::Catalog(CatalogCommand::Events { limit, json }) => {
            commands::events(&mut ctx, *limit, *json)
        }
        Command::Backup {
            policy,
            volume,
            dry_run,
            json,
        } => backup_commands::backup(&mut ctx, policy, volume.as_deref(), *dry_run, *json),
        Command::Mount { snapshot, dir } => {
            restore_commands::mount_cmd(&mut ctx, snapshot, dir.as_deref())
        }
        Command::Umount { target } => restore_commands::umount_cmd(&mut ctx, target),
        Command::Restore {
            source,
            paths,
            to,
            in_place,
            force,
            dry_run,
            yes,
            json,
        } => restore_commands::restore_cmd(
            &mut ctx,
            &restore_commands::RestoreArgs {
                source,
                paths,
                to: to.as_deref(),
                in_place: *in_place,
                force: *force,
                dry_run: *dry_run,
                yes: *yes,
                json: *json,
            },
        ),
        Command::Diff {
            snapshot,
            snapshot2,
            json,
        } => restore_commands::diff_cmd(&mut ctx, snapshot, snapshot2.as_deref(), *json),
        Command::Rollback {
            snapshot,
            yes,
            resume,
            abandon,
        } => match (snapshot, resume) {
            (Some(s), false) => crate::restore::rollback::rollback_cmd(&mut ctx, s, *yes),
            _ => crate::restore::rollback::resume_cmd(&mut ctx, *abandon),
        },
        Command::Catalog(CatalogCommand::History { limit, json }) => {
            restore_commands::history_cmd(&mut ctx, *limit, *json)
        }
        Command::Backups { policy, all, json } => {
            backup_commands::backups(&mut ctx, policy.as_deref(), *all, *json)
        }
        Command::Verify {
            backup,
            all,
            policy,
            json,
        } => {
            backup_commands::verify_cmd(&mut ctx, backup.as_deref(), *all, policy.as_deref(), *json)
        }
        Command::Config(_)
        | Command::Daemon
        | Command::Completions { .. }
        | Command::Man
        | Command::Check { .. } => {
            unreachable!("answered above without loading the policy files")
        }
    }
}

fn config_check(
    path: &std::path::Path,
    json: bool,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<i32, Error> {
    match config::load(path) {
        Ok(cfg) => {
            if json {
                writeln!(out, "{}", report::config_json(&cfg, now))?;
            } else {
                report::config_summary(out, &cfg, now)?;
            }
            Ok(exit::OK)
        }
        Err(config::LoadError::Invalid(errs)) if json => {
            writeln!(out, "{}", report::config_errors_json(&errs))?;
            Ok(exit::USAGE)
        }
        Err(e) => Err(e.into()),
    }
}

fn simulate_cmd(
    cfg: &config::Config,
    args: &SimulateArgs,
    out: &mut dyn Write,
) -> Result<i32, Error> {
    let policy = cfg.require_policy(&args.policy).map_err(Error::Usage)?;
    if args.to <= args.from {
        return Err(Error::Usage(format!(
            "--to ({}) must be after --from ({})",
            args.to, args.from
        )));
    }
    let req = simulate::Request {
        from: args.from,
        to: args.to,
        every: args.every,
        down: args.down.clone(),
    };
    let outcome = simulate::simulate(policy, &req);
    if args.json {
        writeln!(out, "{}", report::simulate_json(&outcome))?;
    } else {
        report::simulate_text(out, policy, &req, &outcome)?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn down_windows_must_run_forward() {
        assert!(parse_window("2026-01-02T00:00:00Z..2026-01-01T00:00:00Z")
            .unwrap_err()
            .contains("before it starts"));
        assert!(parse_window("2026-01-01T00:00:00Z..2026-01-02T00:00:00Z").is_ok());
    }
}
