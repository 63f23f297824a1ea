//! The commands about configuration and what it means: `config check`, `simulate` and
//! `completions`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use clap::Args;

use super::{parse_interval, parse_time, parse_window, Ctx};
use crate::config;
use crate::error::{exit, Error};
use crate::report;
use crate::simulate;

/// `lvsnap config check [PATH] [--json] [--now T]`: the policy files in normal form, or every
/// error with its file, line and fix. Needs no valid configuration (that is what it checks).
///
/// # Errors
/// The files cannot be read, or (as text) they are invalid: exit 2.
pub fn check(
    a: &ConfigCheckArgs,
    default: &Path,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<i32, Error> {
    let (json, now) = (a.json, a.now.unwrap_or(now));
    match config::load(a.path.as_deref().unwrap_or(default)) {
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

/// `lvsnap simulate --policy P --from T --to T [--every D] [--down A..B]`: a policy replayed
/// over a span of time.
///
/// # Errors
/// Unknown policy, or a span that runs backwards.
pub fn simulate(ctx: &mut Ctx<'_>, args: &SimulateArgs) -> Result<i32, Error> {
    let (cfg, out) = (ctx.config, &mut *ctx.out);
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
        pool: match (args.pool_start, args.fill_rate) {
            (_, None) => None,
            (start, Some(rate)) => Some(simulate::PoolModel {
                start: start.unwrap_or(0.0),
                per_snapshot: rate,
            }),
        },
    };
    if args.pool_start.is_some() && args.fill_rate.is_none() {
        return Err(Error::Usage(
            "--pool-start needs --fill-rate (the share of the pool each snapshot comes to hold)"
                .to_owned(),
        ));
    }
    let outcome = simulate::simulate(policy, &req);
    if args.json {
        writeln!(out, "{}", report::simulate_json(&outcome))?;
    } else {
        report::simulate_text(out, policy, &req, &outcome)?;
    }
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// File or directory to check (default: --config).
    pub path: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compute the next scheduled times from this instant (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
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
    /// Model a thin pool too: each snapshot comes to hold this share of it alone (percent;
    /// what the volume rewrites between two snapshots), and the policy's pool-data-emergency
    /// removes the oldest as `run` would.
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    pub fill_rate: Option<f64>,
    /// With --fill-rate: how full the pool is without snapshots (percent; default 0).
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    pub pool_start: Option<f64>,
    /// Print JSON: {"kept":[{"time":…,"reasons":[…]}],"taken":N,"removed":N,"pool":…}.
    #[arg(long)]
    pub json: bool,
}

fn percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}
