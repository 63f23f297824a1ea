//! The daemon against the fake LVM with per-second schedules: it snapshots on time and prunes,
//! reloads good and bad policy files, and stops cleanly on a shutdown signal mid-run.

use std::sync::Arc;
use std::time::Duration;

use lvsnap::catalog::Catalog;
use lvsnap::cli::daemon::run_daemon;
use lvsnap::lvm::fake::FakeLvm;
use tokio::sync::{mpsc, oneshot};

const GIB: u64 = 1 << 30;

fn settings(dir: &std::path::Path) -> String {
    format!("[settings]\ncatalog = \"{0}/catalog.db\"\nruntime-dir = \"{0}/run\"\ntimezone = \"UTC\"\ntool-path = [\"{1}\"]\n\n", dir.display(), crate::common::fake_tools().display())
}

fn policy(name: &str, volume: &str, extra: &str) -> String {
    format!("[policy.{name}]\nvolumes = [\"vg0/{volume}\"]\nschedule = \"* * * * * *\"\nsize = \"8M\"\nkeep = {{ last = 2 }}\n{extra}\n\n")
}

fn snapshots(lvm: &FakeLvm, origin: &str) -> Vec<String> {
    lvm.names("vg0")
        .into_iter()
        .filter(|n| n.starts_with(&format!("{origin}-lvsnap-")))
        .collect()
}

fn start(
    dir: &std::path::Path,
    lvm: Arc<FakeLvm>,
) -> (
    mpsc::Sender<()>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), lvsnap::Error>>,
) {
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let path = dir.join("lvsnap.toml");
    let handle = tokio::spawn(async move {
        run_daemon(path, lvm, reload_rx, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    (reload_tx, stop_tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_snapshots_on_time_prunes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let lvm = Arc::new(FakeLvm::new());
    lvm.add_vg("vg0", 8 * GIB)
        .add_lv("vg0", "home", GIB)
        .add_lv("vg0", "var", GIB);
    std::fs::write(
        dir.path().join("lvsnap.toml"),
        settings(dir.path()) + &policy("home", "home", ""),
    )
    .unwrap();
    let (reload, stop, handle) = start(dir.path(), lvm.clone());

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let created = lvm
        .invocations()
        .iter()
        .filter(|c| c.starts_with("lvcreate") && c.ends_with("vg0/home"))
        .count();
    assert!(
        created >= 3,
        "one snapshot a second, catch-up included: {created}"
    );
    assert_eq!(
        snapshots(&lvm, "home").len(),
        2,
        "pruned to keep = {{ last = 2 }}"
    );

    // A broken file is refused; the running policy goes on.
    std::fs::write(
        dir.path().join("lvsnap.toml"),
        settings(dir.path()) + "[policy.home]\nvolumes = [\"vg0/home\"]\nschedule = \"bad\"\n",
    )
    .unwrap();
    reload.send(()).await.unwrap();
    let before = lvm.invocations().len();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        lvm.invocations()[before..]
            .iter()
            .any(|c| c.starts_with("lvcreate") && c.ends_with("vg0/home")),
        "old policy still runs"
    );

    // A good file adds a policy.
    std::fs::write(
        dir.path().join("lvsnap.toml"),
        settings(dir.path()) + &policy("home", "home", "") + &policy("var", "var", ""),
    )
    .unwrap();
    reload.send(()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!snapshots(&lvm, "var").is_empty(), "reloaded policy runs");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(Catalog::open(&dir.path().join("catalog.db"))
        .unwrap()
        .open_intents()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_run_finishes_the_command_in_flight_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let lvm = Arc::new(FakeLvm::new());
    lvm.add_vg("vg0", 8 * GIB).add_lv("vg0", "home", GIB);
    // A slow pre hook holds the run in the middle of the snapshot when the signal comes.
    let extra = "pre = [\"sleep\", \"2\"]";
    std::fs::write(
        dir.path().join("lvsnap.toml"),
        settings(dir.path()) + &policy("home", "home", extra),
    )
    .unwrap();
    let (_reload, stop, handle) = start(dir.path(), lvm.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "waited for the run in flight"
    );
    assert_eq!(
        snapshots(&lvm, "home").len(),
        1,
        "the snapshot in flight was completed"
    );
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    assert!(cat.open_intents().unwrap().is_empty(), "no stray intent");
    assert_eq!(cat.live_snapshots().unwrap().len(), 1, "and recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_relieves_space_pressure_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let lvm = Arc::new(FakeLvm::new());
    lvm.add_vg("vg0", 8 * GIB)
        .add_thin_pool("vg0", "pool", 2 * GIB)
        .add_thin_lv("vg0", "pool", "data", GIB);
    // Scheduled once a year: only the catch-up at start snapshots; the poll does the rest.
    std::fs::write(
        dir.path().join("lvsnap.toml"),
        settings(dir.path()).replace("[settings]\n", "[settings]\nspace-poll = \"1s\"\n")
            + "[policy.db]\nvolumes = [\"vg0/data\"]\nschedule = \"0 0 1 1 *\"\nkeep = { last = 2 }\npool-data-emergency = 90\nemergency-removes-newest = true\n",
    )
    .unwrap();
    let (_reload, stop, handle) = start(dir.path(), lvm.clone());
    let mut taken = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        taken = snapshots(&lvm, "data");
        if !taken.is_empty() {
            break;
        }
    }
    assert_eq!(taken.len(), 1, "the catch-up snapshot");
    // A writer fills the pool past 90%; the snapshot alone holds 10% of it.
    lvm.set_fill("vg0", &taken[0], 10.0, 0.0);
    lvm.set_fill("vg0", "pool", 95.0, 10.0);
    let mut left = taken.clone();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = snapshots(&lvm, "data");
        if left.is_empty() {
            break;
        }
    }
    assert!(left.is_empty(), "removed within two polls: {left:?}");
    let creates = lvm
        .invocations()
        .iter()
        .filter(|c| c.starts_with("lvcreate"))
        .count();
    assert_eq!(creates, 1, "no run came between: {:?}", lvm.invocations());
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let gone = catalog
        .all_snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.name == taken[0])
        .unwrap();
    assert!(
        gone.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("space: thin pool vg0/pool data is 95.0% full")),
        "{gone:?}"
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
