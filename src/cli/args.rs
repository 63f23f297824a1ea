//! The command line as clap reads it: the top-level options and one variant per command, each
//! carrying the arguments struct its command function takes (defined beside that function in
//! [`crate::commands`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{
    backup, catalog, config, cycle, replicate, replication, restore, rollback, setup, snapshots,
};
use crate::config::DEFAULT_CONFIG;

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
    Run(cycle::RunArgs),

    /// Run as a service: each policy's snapshots at its scheduled times, until SIGTERM/SIGINT.
    ///
    /// The alternative to the systemd timer (lvsnap-daemon.service). Each scheduled job is
    /// `lvsnap run --policy P`, through the same lock, so timer and daemon never take two
    /// snapshots for one scheduled time. At start it catches up (one snapshot per due group).
    /// SIGHUP re-reads the policy files; an invalid file keeps the running policies and logs
    /// every error. SIGTERM finishes the LVM command in flight, records it, and exits 0.
    Daemon,

    /// Take a snapshot of a policy's volumes now, whether due or not.
    Snapshot(snapshots::SnapshotArgs),

    /// Remove what the keep rules no longer keep (no new snapshots).
    Prune(cycle::PruneArgs),

    /// Show the plan for the live system: each snapshot, keep or remove, with every reason.
    ///
    /// Changes nothing and never waits for a running lvsnap.
    Plan(cycle::PlanArgs),

    /// List the snapshots lvsnap manages: origin, age, kind, size, fill, state, pin, why kept.
    List(snapshots::ListArgs),

    /// Back up a policy's volumes now, due or not: mount the newest snapshot (or a fresh
    /// temporary one) read-only, copy it with the policy's engine, write its manifest.
    ///
    /// Needs a [policy.NAME.backup] table. Generations the backup's keep rules no longer keep
    /// are pruned afterwards. SIGTERM or Ctrl-C stops the copy, unmounts, removes a temporary
    /// snapshot and any partial files, and records the backup as failed. `lvsnap run` runs
    /// backups by their own schedule.
    Backup(backup::BackupArgs),

    /// List backups: volume, generation, engine, state, files, size, duration, last verify.
    Backups(backup::BackupsArgs),

    /// Re-read a backup and compare every file with its manifest (missing, extra, changed).
    ///
    /// BACKUP is VG/LV@GENERATION as `lvsnap backups` shows it. Exit status 1 when any backup
    /// differs from its manifest; the result is recorded and shown by `lvsnap backups`.
    Verify(backup::VerifyArgs),

    /// Mount one of lvsnap's snapshots read-only to look around (default: /run/lvsnap/mnt/VG/NAME).
    ///
    /// ext4 is mounted `ro,noload`, xfs `ro,nouuid,norecovery`; a thin snapshot is activated
    /// first. Pruning leaves a mounted snapshot alone. Undo with `lvsnap umount`.
    Mount(restore::MountArgs),

    /// Unmount a snapshot `lvsnap mount` mounted (and deactivate it if lvsnap activated it).
    Umount(restore::UmountArgs),

    /// Copy files out of a snapshot or a backup: `lvsnap restore home-lvsnap-… etc/passwd --to /tmp/r`.
    ///
    /// SOURCE is a snapshot (NAME or VG/NAME) or a backup (VG/LV@GENERATION, see `lvsnap
    /// backups`). PATHs are relative to the volume's root (a leading / or the origin's mount
    /// point is dropped). Owners, modes, times, ACLs, xattrs, hard links and sparse files are
    /// kept. An existing file is never overwritten without --force; --dry-run lists what would
    /// be copied and what is in the way. --in-place restores into the origin's own mount point
    /// after confirmation and a pinned guard snapshot of the current state.
    Restore(restore::RestoreArgs),

    /// Files added (+), removed (-) and changed (c) between a snapshot and the live origin, or
    /// between two snapshots.
    Diff(restore::DiffArgs),

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
    Rollback(rollback::RollbackArgs),

    /// Write a thin snapshot as a replication stream to standard output: whole, or (with
    /// --base) only the blocks that changed since an earlier thin snapshot of the same volume.
    ///
    /// The changed blocks are found in the thin pool's metadata (a reserved metadata
    /// snapshot, released at once), not by reading the volume. The stream is versioned and
    /// carries a SHA-256 per record and of the whole; `lvsnap receive` makes a replica of it,
    /// here or on another host:
    ///
    ///   lvsnap send db-lvsnap-20261204T030000Z | lvsnap receive --pool vgbackup/replicas
    ///
    ///   lvsnap send vg0/db-lvsnap-20261205T030000Z --base db-lvsnap-20261204T030000Z \
    ///     | ssh backup01 lvsnap receive --pool vgbackup/replicas
    Send(replicate::SendArgs),

    /// Make a replica in a thin pool from a stream `lvsnap send` writes, read on standard input.
    ///
    /// The stream goes into a scratch volume that becomes the replica (read-only, named like
    /// its source snapshot, tagged lvsnap-replica) only when the whole stream arrived and
    /// checked out; anything less removes it. A stream of changed blocks is refused unless the
    /// pool's newest replica of that volume is exactly the stream's base, still read-only and
    /// not open.
    ///
    /// On a target host reached by ssh, confine the sending host's key to receiving into its
    /// pool (root's ~/.ssh/authorized_keys, with `PermitRootLogin forced-commands-only`):
    ///
    ///   command="/usr/sbin/lvsnap receive --allow-pool vgbackup/replicas",restrict ssh-ed25519 AAAA…
    ///
    /// The request is served only if it is receive's own arguments for one of those pools
    /// (no --as, no --config after receive); one stream at a time is received into a pool.
    Receive(replicate::ReceiveArgs),

    /// Replicate each policy's newest thin snapshot into its target pool, then prune replicas.
    ///
    /// For policies with a [policy.NAME.replicate] table (pool = "VG/POOL", an optional
    /// transport argv such as ["ssh", "backup01", "lvsnap", "receive"], an optional schedule,
    /// keep rules). The first replica of a volume is sent whole, later ones as the blocks
    /// changed since the newest replica on the target, whose source snapshot is kept here
    /// (reason replica-base) until a newer one is replicated. `run` does this when due.
    ///
    ///   lvsnap replicate --dry-run     what would be sent and removed
    ///   lvsnap replicate db            replicate policy db now
    ///   lvsnap replicate --full db     send whole (after the base was changed or removed)
    Replicate(replication::ReplicateArgs),

    /// Per replicated volume: the replicas on the target, the base of the next increment,
    /// the lag, and the last sends with their bytes and duration.
    Replicas(replication::ReplicasArgs),

    /// Restore a whole volume from a replica into a new thin volume on this host.
    ///
    /// The replica is streamed back from its target (the reverse send, checked like every
    /// stream) into a new volume NAME in VG/POOL, which is made only when the whole stream
    /// arrived and is never an existing one. Writable, activated, not managed by any policy.
    ///
    ///   lvsnap restore-replica db-lvsnap-20261204T030000Z --pool vg0/pool --as db-restored
    RestoreReplica(replication::RestoreReplicaArgs),

    /// Propose a starting policy file from this host's volumes, with the reason for each choice.
    ///
    /// One policy per mounted filesystem LV (ext2/3/4, xfs): thin volumes get thin snapshots
    /// with a day of hours, a week of days and a month of weeks; thick ones snapshots sized from
    /// their volume group's free space, leaving 10% of it free (keep-free), with as few kept as
    /// that space allows. Swap, snapshots, pools, unmounted volumes and volumes already in a
    /// policy are left out, each with why. Prints the file; --write saves it (as the policy file
    /// when there is none, else as policy.d/init.toml beside it, init-2.toml the next time),
    /// never over an existing file.
    ///
    ///   lvsnap init                   see the proposal
    ///   lvsnap init --write           save it, then: lvsnap plan; lvsnap run --dry-run
    ///   lvsnap init --volumes vg0/home,vg0/srv --write
    Init(setup::InitArgs),

    /// Check the host for what lvsnap needs: one line per item, OK, WARN or FAIL with the fix.
    ///
    /// lvm2's version and device-mapper, the snapshot and thin-pool targets, the thin tools,
    /// udev, whether the timer or the daemon is enabled, the policies, the catalog's privacy,
    /// each volume group's and thin pool's room, each backup target's owner, mode and room,
    /// and the programs of the backup engines in use. Changes nothing. Exit status 0 all OK,
    /// 1 a warning, 2 a failure.
    Doctor(setup::DoctorArgs),

    /// Per group: the newest snapshot and its age, the next scheduled time, count and space,
    /// the last error; the fill of volume groups and thin pools.
    Status(snapshots::StatusArgs),

    /// A Nagios/Icinga check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one line with perfdata.
    ///
    /// Warns when a group's newest snapshot is late by --warning periods of its schedule (critical
    /// at --critical), when invalid snapshots exist, when a thin pool or a snapshot is filling,
    /// and when a group's last run failed (critical).
    Check(snapshots::CheckArgs),

    /// Pin a snapshot so that pruning always keeps it.
    Pin(snapshots::PinArgs),

    /// Unpin a snapshot: its keep rules decide again.
    Unpin(snapshots::PinArgs),

    /// The catalog: rebuild it from LVM tags, show the commands lvsnap ran, or the restores.
    #[command(subcommand)]
    Catalog(CatalogCommand),

    /// Check policy files and show what they mean.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Print a shell completion script: lvsnap completions bash > /etc/bash_completion.d/lvsnap
    Completions(config::CompletionsArgs),

    /// Print the man page (roff, section 8): lvsnap man > /usr/local/share/man/man8/lvsnap.8
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
    Simulate(config::SimulateArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate policy files: print every policy in normal form, or every error with its location.
    ///
    /// Exits 0 when the files are valid, 2 with all errors otherwise.
    Check(config::ConfigCheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Re-create catalog records of snapshots that carry lvsnap's tags (after the catalog was
    /// lost, or to adopt tagged snapshots lvsnap reported as unmanaged).
    Rebuild(catalog::RebuildArgs),
    /// The LVM commands lvsnap ran, with exit status, duration and error output; newest last.
    Events(catalog::EventsArgs),
    /// Restores and rollbacks: what, from where, to where, when; newest first.
    History(catalog::HistoryArgs),
}
