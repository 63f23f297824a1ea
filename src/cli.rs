//! The command line: clap definitions and dispatch. Reads the clock and the environment here, at
//! the edge, and hands plain values to the library.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Span, DEFAULT_CONFIG};
use crate::error::{exit, Error};
use crate::report;
use crate::simulate;

const AFTER_HELP: &str = "\
Policy files:
  lvsnap reads /etc/lvsnap/lvsnap.toml and every /etc/lvsnap/policy.d/*.toml beside it, or the
  file or directory given with --config (or LVSNAP_CONFIG). Start with `lvsnap config check`.

Exit status:
  0  everything asked for was done
  1  an operation failed; the message says which and why
  2  bad input (invalid policy file, unknown policy, wrong arguments); nothing was changed";

/// Scheduled copy-on-write LVM snapshots with retention policies.
///
/// lvsnap takes snapshots of logical volumes on a schedule, prunes them by the keep rules of
/// TOML policy files, and never touches a snapshot it did not create.
#[derive(Debug, Parser)]
#[command(name = "lvsnap", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Policy file, or a directory of *.toml policy files.
    #[arg(long, short = 'c', global = true, env = "LVSNAP_CONFIG", value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policy files and show what they mean.
    #[command(subcommand)]
    Config(ConfigCommand),

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

/// Parses arguments, runs the command, prints errors, returns the exit status.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
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
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lvsnap: {e}");
            if let Error::Config(config::LoadError::Invalid(errs)) = &e {
                eprintln!(
                    "lvsnap: {} error(s) in the policy files; nothing was changed",
                    errs.0.len()
                );
            }
            e.exit_code()
        }
    }
}

fn dispatch(cli: &Cli) -> Result<i32, Error> {
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Config(ConfigCommand::Check { path, json, now }) => {
            let path = path.as_ref().unwrap_or(&cli.config);
            let now = now.unwrap_or_else(Utc::now);
            match config::load(path) {
                Ok(cfg) => {
                    if *json {
                        writeln!(out, "{}", report::config_json(&cfg, now))?;
                    } else {
                        report::config_summary(&mut out, &cfg, now)?;
                    }
                    Ok(exit::OK)
                }
                Err(config::LoadError::Invalid(errs)) if *json => {
                    writeln!(out, "{}", report::config_errors_json(&errs))?;
                    Ok(exit::USAGE)
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Simulate(args) => {
            let cfg = config::load(&cli.config)?;
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
                report::simulate_text(&mut out, policy, &req, &outcome)?;
            }
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
