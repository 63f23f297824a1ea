//! `lvsnap daemon`: the alternative to the systemd timer. One tokio-cron-scheduler job per
//! policy, armed for the policy's next scheduled instant (computed by the same schedule code as
//! the due rule, in the policy's zone, so daylight-saving changes and cron semantics agree with
//! `run`). Each job body is `run --policy P` — the same code path, through the same lock — so
//! daemon and timer never double-snapshot. LVM work runs on blocking threads, never on the
//! runtime. Shutdown and reload arrive as a future and a channel (signals in the binary).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{SubsecRound, Utc};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{error, info, warn};

use crate::commands::{self, Ctx};
use crate::config::{self, Config};
use crate::cycle::Options;
use crate::error::Error;
use crate::lvm::Runner;

/// What every job shares.
struct Shared {
    path: PathBuf,
    config: RwLock<Arc<Config>>,
    runner: Arc<dyn Runner>,
    /// Held (shared) by every job while it runs; shutdown takes it whole, so it waits for all.
    /// Jobs do not wait for each other here: they take turns on the run lock, which a backup
    /// lets go of while it copies, so one policy's long copy never holds another's snapshots.
    busy: tokio::sync::RwLock<()>,
    /// Set at shutdown: a running job stops after the LVM command in flight.
    cancel: Arc<AtomicBool>,
    /// Bumped at each reload; jobs armed for an older configuration do nothing.
    generation: AtomicU64,
}

/// Runs the daemon until `shutdown` resolves. Each message on `reload` re-reads the policy
/// files; an invalid file keeps the running policies and logs every error.
///
/// # Errors
/// The policy files are invalid at start, or the scheduler cannot start.
pub async fn run_daemon(
    path: PathBuf,
    runner: Arc<dyn Runner>,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let config = Arc::new(config::load(&path)?);
    crate::tools::set_tool_path(&config.settings.tool_path);
    let shared = Arc::new(Shared {
        path,
        config: RwLock::new(config),
        runner,
        busy: tokio::sync::RwLock::new(()),
        cancel: Arc::new(AtomicBool::new(false)),
        generation: AtomicU64::new(0),
    });
    let sched = JobScheduler::new().await.map_err(scheduler_error)?;
    arm_all(&shared, &sched).await;
    sched.start().await.map_err(scheduler_error)?;
    info!(policies = %policy_names(&shared), "daemon started");
    // Catch up beside the armed jobs (one snapshot for each due group, as `run` does at boot):
    // a long backup in it must not hold the other policies' scheduled snapshots. Shutdown
    // waits for it like for any job.
    tokio::spawn({
        let shared = shared.clone();
        async move { run_policies(&shared, None).await }
    });
    tokio::spawn({
        let shared = shared.clone();
        async move { watch_space(&shared).await }
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = reload.recv() => reload_config(&shared, &sched).await,
        }
    }
    info!("shutting down: finishing the LVM command in flight");
    shared.cancel.store(true, Ordering::SeqCst);
    let _idle = shared.busy.write().await;
    let mut sched = sched;
    let _ = sched.shutdown().await;
    info!("daemon stopped");
    Ok(())
}

fn scheduler_error(e: tokio_cron_scheduler::JobSchedulerError) -> Error {
    Error::Daemon(format!("the scheduler failed: {e}"))
}

async fn reload_config(shared: &Arc<Shared>, sched: &JobScheduler) {
    match config::load(&shared.path) {
        Ok(new) => {
            crate::tools::set_tool_path(&new.settings.tool_path);
            *shared.config.write().expect("config lock") = Arc::new(new);
            shared.generation.fetch_add(1, Ordering::SeqCst);
            arm_all(shared, sched).await;
            info!(path = %shared.path.display(), policies = %policy_names(shared), "policy files reloaded");
        }
        Err(e) => {
            for line in e.to_string().lines() {
                error!("reload refused, the running policies stay: {line}");
            }
        }
    }
}

/// The policies the daemon runs, for its log; on a fresh install, what to do about none.
fn policy_names(shared: &Shared) -> String {
    let cfg = shared.config.read().expect("config lock");
    if cfg.policies.is_empty() {
        return crate::commands::setup::no_policy_yet(&shared.path);
    }
    let names: Vec<&str> = cfg.policies.iter().map(|p| p.name.as_str()).collect();
    names.join(", ")
}

async fn arm_all(shared: &Arc<Shared>, sched: &JobScheduler) {
    let names: Vec<String> = shared
        .config
        .read()
        .expect("config lock")
        .policies
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let generation = shared.generation.load(Ordering::SeqCst);
    for name in names {
        arm(shared.clone(), sched.clone(), name, generation).await;
    }
}

/// Arms a one-shot job at the policy's next scheduled instant; the job re-arms itself (hence
/// the boxed, `Send` future: the recursion needs a named type).
fn arm(
    shared: Arc<Shared>,
    sched: JobScheduler,
    policy: String,
    generation: u64,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(arm_once(shared, sched, policy, generation))
}

async fn arm_once(shared: Arc<Shared>, sched: JobScheduler, policy: String, generation: u64) {
    let next = {
        let cfg = shared.config.read().expect("config lock");
        cfg.policy(&policy).and_then(|p| {
            let snap = p.schedule.next(Utc::now(), p.timezone);
            let backup = p
                .backup
                .as_ref()
                .and_then(|b| b.schedule.next(Utc::now(), p.timezone));
            let replicate = p
                .replicate
                .as_ref()
                .and_then(|r| r.schedule.as_ref())
                .and_then(|s| s.next(Utc::now(), p.timezone));
            snap.into_iter().chain(backup).chain(replicate).min()
        })
    };
    let Some(next) = next else { return };
    let wait = (next - Utc::now()).to_std().unwrap_or_default();
    let instant = std::time::Instant::now() + wait;
    let name = policy.clone();
    let job = Job::new_one_shot_at_instant_async(instant, move |_, sched| {
        let (shared, policy) = (shared.clone(), policy.clone());
        Box::pin(async move {
            if shared.generation.load(Ordering::SeqCst) != generation
                || shared.cancel.load(Ordering::SeqCst)
            {
                return;
            }
            run_policies(&shared, Some(policy.clone())).await;
            arm(shared, sched, policy, generation).await;
        })
    });
    match job {
        Ok(job) => {
            if let Err(e) = sched.add(job).await {
                error!(policy = %name, "cannot schedule: {e}");
            }
        }
        Err(e) => error!(policy = %name, "cannot schedule: {e}"),
    }
}

/// Space pressure between runs: every `space-poll`, when a policy sets an emergency threshold,
/// the pools and volume groups are measured and relieved as a run would first.
async fn watch_space(shared: &Arc<Shared>) {
    // Pressure that is left is told when a place comes under it or leaves it, not at every
    // poll (its fill changes every time).
    let mut told: Vec<String> = Vec::new();
    loop {
        let poll = {
            let cfg = shared.config.read().expect("config lock");
            cfg.settings
                .space_poll
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(60))
        };
        tokio::time::sleep(poll).await;
        let _running = shared.busy.read().await;
        if shared.cancel.load(Ordering::SeqCst) {
            return;
        }
        if !crate::pressure::watched(&shared.config.read().expect("config lock")) {
            continue;
        }
        let result = with_ctx(shared, commands::cycle::relieve).await;
        match result {
            Ok((Ok(r), _)) => {
                if !r.removed.is_empty() {
                    info!(
                        removed = r.removed.len(),
                        "space poll: removed snapshots for space"
                    );
                }
                for e in &r.errors {
                    error!(policy = %e.policy, volume = %e.volume, snapshot = %e.name, "space poll: {}", e.why);
                }
                let places: Vec<String> = r.left.iter().map(|l| l.place.clone()).collect();
                for l in r.left.iter().filter(|l| !told.contains(&l.place)) {
                    warn!("space poll: {}", l.text);
                }
                for place in told.iter().filter(|p| !places.contains(p)) {
                    info!(place = %place, "space poll: no space pressure left there");
                }
                told = places;
            }
            Ok((Err(e), _)) => error!("space poll failed: {e}"),
            Err(e) => error!("space poll panicked: {e}"),
        }
    }
}

/// Runs `f` on a blocking thread (LVM work never stalls the runtime) with a command context
/// of the current configuration; returns its result and what it printed.
async fn with_ctx<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut Ctx<'_>) -> T + Send + 'static,
) -> Result<(T, String), tokio::task::JoinError> {
    let config = shared.config.read().expect("config lock").clone();
    let runner = shared.runner.clone();
    let cancel = shared.cancel.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            cancel,
            config: &config,
            runner: runner.as_ref(),
            // Whole seconds, as the CLI: snapshot times and the catalog count in seconds.
            now: Utc::now().trunc_subsecs(0),
            out: &mut out,
        };
        let result = f(&mut ctx);
        (result, String::from_utf8_lossy(&out).into_owned())
    })
    .await
}

/// `run` for one policy (or all), on a blocking thread; jobs take turns on the run lock.
async fn run_policies(shared: &Arc<Shared>, policy: Option<String>) {
    let _running = shared.busy.read().await;
    if shared.cancel.load(Ordering::SeqCst) {
        return;
    }
    let opts = Options {
        policies: policy.into_iter().collect(),
        snapshot: true,
        prune: true,
        cancel: Some(shared.cancel.clone()),
        ..Options::default()
    };
    let result = with_ctx(shared, move |ctx| {
        commands::cycle::cycle(ctx, &opts, false, false)
    })
    .await;
    match result {
        Ok((status, out)) => {
            for line in out.lines() {
                info!("{line}");
            }
            match status {
                Ok(0) => {}
                Ok(code) => warn!(status = code, "run finished with problems (see above)"),
                Err(e) => error!("run failed: {e}"),
            }
        }
        Err(e) => error!("run panicked: {e}"),
    }
}
