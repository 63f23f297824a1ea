//! The command line: the binary's main, signals, logging, and the dispatch of each parsed
//! command to its function in [`crate::commands`]. Reads the clock and the environment here,
//! at the edge, and hands plain values to the library.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};

use chrono::{DateTime, SubsecRound, Utc};
use clap::{CommandFactory, Parser};

use crate::commands::{self, backup, catalog, cycle, restore, rollback, snapshots, Ctx};
use crate::config;
use crate::error::{exit, Error};
use crate::lvm::real::SystemRunner;
use crate::lvm::Runner;

mod args;
pub mod daemon;

pub use args::{CatalogCommand, Cli, Command, ConfigCommand};

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
        Command::Run(_)
            | Command::Prune(_)
            | Command::Backup(_)
            | Command::Rollback(_)
            | Command::Restore(_)
            | Command::Send(_)
            | Command::Receive(_)
            | Command::Replicate(_)
            | Command::RestoreReplica(_)
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
        daemon::run_daemon(cli.config.clone(), runner, rx, shutdown).await
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
    use Command as C;
    // Commands that need no policy files, or read them their own way.
    match &cli.command {
        C::Config(ConfigCommand::Check(a)) => {
            return commands::config::check(a, &cli.config, now, out)
        }
        C::Daemon => {
            return Err(Error::Daemon(
                "runs from the lvsnap binary's main, not from execute()".to_owned(),
            ))
        }
        C::Completions(a) => {
            clap_complete::generate(a.shell, &mut Cli::command(), "lvsnap", out);
            return Ok(exit::OK);
        }
        C::Man => {
            // Section 8: a system administration command, installed in /usr/sbin.
            clap_mangen::Man::new(Cli::command())
                .section("8")
                .render(out)?;
            return Ok(exit::OK);
        }
        C::Init(a) => return commands::setup::init(a, &cli.config, runner, out),
        C::Doctor(a) => return commands::setup::doctor(a, &cli.config, runner, out),
        C::Check(a) => {
            // A monitoring check reports a broken configuration as UNKNOWN, not as exit 2.
            let cfg = match config::load(&cli.config) {
                Ok(cfg) => cfg,
                Err(e) => return commands::snapshots::check_unconfigured(out, &e),
            };
            crate::tools::set_tool_path(&cfg.settings.tool_path);
            let mut ctx = Ctx {
                config: &cfg,
                runner,
                now,
                out,
                cancel,
            };
            return Ok(commands::snapshots::check(&mut ctx, a));
        }
        _ => {}
    }
    let cfg = config::load(&cli.config)?;
    crate::tools::set_tool_path(&cfg.settings.tool_path);
    let ctx = &mut Ctx {
        config: &cfg,
        runner,
        now,
        out,
        cancel,
    };
    match &cli.command {
        C::Run(a) => cycle::run(ctx, a),
        C::Prune(a) => cycle::prune(ctx, a),
        C::Plan(a) => cycle::plan(ctx, a),
        C::Simulate(a) => commands::config::simulate(ctx, a),
        C::Snapshot(a) => snapshots::snapshot(ctx, a),
        C::List(a) => snapshots::list(ctx, a),
        C::Status(a) => snapshots::status(ctx, a),
        C::Pin(a) => snapshots::pin(ctx, a, true),
        C::Unpin(a) => snapshots::pin(ctx, a, false),
        C::Catalog(CatalogCommand::Rebuild(a)) => catalog::rebuild(ctx, a),
        C::Catalog(CatalogCommand::Events(a)) => catalog::events(ctx, a),
        C::Catalog(CatalogCommand::History(a)) => catalog::history(ctx, a),
        C::Backup(a) => backup::backup(ctx, a),
        C::Backups(a) => backup::backups(ctx, a),
        C::Verify(a) => backup::verify(ctx, a),
        C::Mount(a) => restore::mount(ctx, a),
        C::Umount(a) => restore::umount(ctx, a),
        C::Restore(a) => restore::restore(ctx, a),
        C::Diff(a) => restore::diff(ctx, a),
        C::Rollback(a) => rollback::rollback(ctx, a),
        C::Send(a) => commands::replicate::send(ctx, a),
        C::Receive(a) if !a.allow_pool.is_empty() => {
            let original =
                std::env::var_os("SSH_ORIGINAL_COMMAND").map(|v| v.to_string_lossy().into_owned());
            let request = commands::replicate::forced_request(&a.allow_pool, original.as_deref())?;
            commands::replicate::receive(ctx, &request)
        }
        C::Receive(a) => commands::replicate::receive(ctx, a),
        C::Replicate(a) => commands::replication::replicate(ctx, a),
        C::Replicas(a) => commands::replication::replicas(ctx, a),
        C::RestoreReplica(a) => commands::replication::restore_replica(ctx, a),
        C::Config(_)
        | C::Daemon
        | C::Completions(_)
        | C::Man
        | C::Check(_)
        | C::Init(_)
        | C::Doctor(_) => {
            unreachable!("answered above without loading the policy files")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
