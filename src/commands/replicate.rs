//! `lvsnap send` and `lvsnap receive`: one thin snapshot, whole or as the blocks that changed
//! since an earlier one, as a self-checking stream from one thin pool into another — on this
//! host through a pipe, or on another through any transport (`ssh HOST lvsnap receive …`).
//!
//! The receiving side never holds half a replica: the stream goes into a scratch volume
//! (tagged `lvsnap-receiving`) that becomes the replica only once the whole stream was
//! verified, and is removed otherwise — also by the next `receive` after a crash.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use clap::Args;

use super::Ctx;
use crate::error::Error;
use crate::exit;
use crate::lvm::{self, commands, Inventory, Invocation, Lv, LvKind, Tool};
use crate::replicate::map::diff;
use crate::replicate::pool::{read_map, MetadataSnap};
use crate::replicate::stream::{Header, SnapshotId, StreamReader, StreamWriter};
use crate::replicate::target::{Listing, Replica};
use crate::replicate::transfer::{apply, data_bytes, send_extents, DeviceSink};
use crate::run::RunError;

/// Marks a replica: the thin volume `receive` made from a complete stream.
pub const REPLICA_TAG: &str = "lvsnap-replica";
/// A scratch volume a stream is being received into; removed unless it becomes a replica.
pub const RECEIVING_TAG: &str = "lvsnap-receiving";
/// The LVM UUID of the source volume a replica is a copy of.
pub const REPLICA_OF_TAG: &str = "lvsnap-replica-of";
/// The LVM UUID of the source snapshot a replica equals.
pub const REPLICA_SNAPSHOT_TAG: &str = "lvsnap-replica-snapshot";
/// The source snapshot's time, `YYYYmmddTHHMMSSZ`: the newest replica is the next base.
pub const REPLICA_TIME_TAG: &str = "lvsnap-replica-time";
/// The source volume's size in bytes (the replica may be larger: LVM rounds up to its extents).
pub const REPLICA_SIZE_TAG: &str = "lvsnap-replica-size";

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The thin snapshot to send (`NAME` or `VG/NAME`, one of lvsnap's).
    pub snapshot: String,
    /// Send only what changed since this earlier thin snapshot of the same volume; the
    /// receiver's newest replica of the volume must be of exactly this snapshot.
    #[arg(long, value_name = "SNAPSHOT")]
    pub base: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// The thin pool that holds the replicas, `VG/POOL`.
    #[arg(long, value_name = "VG/POOL", required_unless_present = "allow_pool")]
    pub pool: Option<String>,
    /// Print the replicas the pool holds, as JSON, and read no stream.
    #[arg(long, conflicts_with = "remove")]
    pub list: bool,
    /// Remove these replicas (never the newest of a volume: the next increment's base), and
    /// read no stream.
    #[arg(long, value_name = "REPLICA", num_args = 1..)]
    pub remove: Vec<String>,
    /// Print the SHA-256 of each 16 MiB range of this replica (up to its source volume's
    /// size), as JSON, and read no stream: what `lvsnap verify --replica` compares.
    #[arg(long, value_name = "REPLICA", conflicts_with_all = ["list", "remove"])]
    pub digest: Option<String>,
    /// Write this replica as a whole stream on standard output (the reverse send, for a
    /// restore), and read none.
    #[arg(long, value_name = "REPLICA", conflicts_with_all = ["list", "remove", "digest"])]
    pub send: Option<String>,
    /// Make the stream a new writable thin volume NAME in the pool instead of a replica (a
    /// restore); refused if NAME exists.
    #[arg(long = "as", value_name = "NAME", conflicts_with_all = ["list", "remove", "digest", "send"])]
    pub as_name: Option<String>,
    /// Serve the one request in `SSH_ORIGINAL_COMMAND`, and only if it is a `receive` for one
    /// of these pools: the forced command of a sending host's key in the target's
    /// `authorized_keys`, so that key can do nothing else on the target (see the README).
    #[arg(
        long,
        value_name = "VG/POOL",
        conflicts_with_all = ["pool", "list", "remove", "digest", "send", "as_name"]
    )]
    pub allow_pool: Vec<String>,
}

/// What a sending host may ask of `receive --allow-pool`: `receive`'s own arguments, nothing
/// before or beside them (no `--config`, no other command).
#[derive(Debug, clap::Parser)]
#[command(
    name = "receive",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Request {
    #[command(flatten)]
    args: ReceiveArgs,
}

/// The request an ssh forced command serves: `original` is `SSH_ORIGINAL_COMMAND`, what the
/// sending host asked to run (`lvsnap receive --pool VG/POOL …`, the transport's program and
/// whatever came before `receive` being the sender's business). Refused unless it parses as
/// `receive`'s arguments and names one of the `allowed` pools.
///
/// # Errors
/// No request, a request that is not `receive`'s, or one for a pool not allowed.
pub fn forced_request(allowed: &[String], original: Option<&str>) -> Result<ReceiveArgs, Error> {
    let pools = allowed.join(", ");
    let Some(original) = original else {
        return Err(Error::Usage(format!(
            "--allow-pool serves an ssh forced command and reads the request from SSH_ORIGINAL_COMMAND, which is not set; \
             in the target's authorized_keys: command=\"lvsnap receive --allow-pool {pools}\",restrict ssh-ed25519 …"
        )));
    };
    let cut: String = original.chars().take(200).collect();
    let shown = crate::names::printable(&cut);
    if original.contains('#') {
        // shlex would read the rest as a comment: what is served must be all that was asked.
        return Err(refused(format!(
            "the request `{shown}` holds a `#`; this key may only use lvsnap receive for {pools}"
        )));
    }
    let words = shlex::split(original)
        .ok_or_else(|| refused(format!("the request `{shown}` is not plain words; this key may only use lvsnap receive for {pools}")))?;
    let Some(at) = words.iter().position(|w| w == "receive") else {
        return Err(refused(format!(
            "the request `{shown}` is not lvsnap receive; this key may only use lvsnap receive for {pools}"
        )));
    };
    let request = <Request as clap::Parser>::try_parse_from(&words[at..])
        .map_err(|e| {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let why = crate::names::printable(first.strip_prefix("error: ").unwrap_or(first));
            refused(format!(
                "the request `{shown}`: {why}; this key may only use lvsnap receive for {pools}"
            ))
        })?
        .args;
    match &request.pool {
        _ if !request.allow_pool.is_empty() => Err(refused(format!(
            "the request `{shown}` asks for --allow-pool; this key may only use lvsnap receive for {pools}"
        ))),
        // A new writable volume from a stream is a restore on the host that asks for it, never
        // something a sending host makes on the target.
        _ if request.as_name.is_some() => Err(refused(format!(
            "the request `{shown}` asks for a new volume (--as); this key may only use lvsnap receive for {pools}"
        ))),
        Some(p) if allowed.contains(p) => Ok(request),
        _ => Err(refused(format!(
            "the request `{shown}` is for another pool; this key may only use lvsnap receive for {pools}"
        ))),
    }
}

fn refused(why: String) -> Error {
    Error::Run(RunError::Refused(why))
}

pub(super) fn inventory(ctx: &Ctx<'_>) -> Result<Inventory, Error> {
    inventory_of(ctx.runner)
}

/// One `lvs` report, parsed.
pub(super) fn inventory_of(runner: &dyn lvm::Runner) -> Result<Inventory, Error> {
    let inv = Invocation::new(Tool::Lvs, lvm::report::lvs_args());
    let done = runner.run(&inv)?;
    lvm::check(&inv, &done)?;
    lvm::report::parse_lvs(&done.stdout).map_err(|e| refused(format!("lvs: {e}")))
}

fn thin_id(ctx: &Ctx<'_>, lv: &Lv) -> Result<u64, Error> {
    let inv = Invocation::new(
        Tool::Lvs,
        [
            "--noheadings".to_owned(),
            "-o".to_owned(),
            "thin_id".to_owned(),
            lv.path(),
        ],
    );
    let done = ctx.runner.run(&inv)?;
    lvm::check(&inv, &done)?;
    done.stdout
        .trim()
        .parse()
        .map_err(|_| refused(format!("{}: LVM reports no thin device id", lv.path())))
}

pub(super) fn exec(ctx: &Ctx<'_>, inv: &Invocation) -> Result<(), Error> {
    lvm::check(inv, &ctx.runner.run(inv)?)?;
    Ok(())
}

fn snapshot_id(lv: &Lv, time: chrono::DateTime<chrono::Utc>) -> SnapshotId {
    SnapshotId {
        name: lv.name.clone(),
        uuid: lv.uuid.clone(),
        time: time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// A snapshot ready to be sent: the stream's header, the ranges to send, and its device,
/// opened exclusively (nothing mounts it while it is read) and activated if it was not.
pub(super) struct Outgoing {
    pub header: Header,
    extents: Vec<crate::replicate::map::Extent>,
    block_bytes: u64,
    device: File,
    activated: bool,
    pub lv: Lv,
}

impl Outgoing {
    /// Writes the whole stream into `out`.
    ///
    /// # Errors
    /// The device could not be read, `out` could not be written, or `cancel` was set.
    pub fn stream(
        &self,
        out: impl std::io::Write,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<crate::replicate::stream::Summary, Error> {
        let out = BufWriter::with_capacity(1 << 20, out);
        let mut w = StreamWriter::new(out, &self.header).map_err(|e| refused(e.to_string()))?;
        send_extents(
            &mut w,
            &self.device,
            self.block_bytes,
            &self.extents,
            self.header.volume_size,
            cancel,
            |_| (),
        )
        .map_err(|e| refused(e.to_string()))?;
        let (mut out, summary) = w.finish().map_err(|e| refused(e.to_string()))?;
        std::io::Write::flush(&mut out).map_err(|e| refused(e.to_string()))?;
        Ok(summary)
    }

    /// Closes the device and deactivates the snapshot if it was activated for the send.
    pub fn close(self, ctx: &Ctx<'_>) {
        drop(self.device);
        if self.activated {
            let _ = exec(ctx, &commands::deactivate(&self.lv.vg, &self.lv.name));
        }
    }
}

/// Under the lock: checks `new` (and `base`) and reads what to send from the pool's metadata.
/// The stream itself may run without the lock: the snapshot is open meanwhile, and LVM
/// removes no open volume.
///
/// # Errors
/// A snapshot that is not thin, not of the base's volume, or open; or the pool's metadata could
/// not be read.
pub(super) fn outgoing(
    ctx: &Ctx<'_>,
    inv: &Inventory,
    new: &crate::reconcile::Managed,
    base: Option<&crate::reconcile::Managed>,
) -> Result<Outgoing, Error> {
    let lv_of = |m: &crate::reconcile::Managed| -> Result<Lv, Error> {
        let lv = m
            .lv
            .clone()
            .ok_or_else(|| refused(format!("{}/{} is not in LVM", m.record.vg, m.record.name)))?;
        if lv.kind != LvKind::ThinSnapshot {
            return Err(refused(format!(
                "{} is a thick snapshot: only thin snapshots can be sent (their pool records which blocks changed)",
                lv.path()
            )));
        }
        // Its map would be read now and its blocks later: nothing may write it between.
        if lv.open && std::ptr::eq(m, new) {
            return Err(refused(format!(
                "{} is open or mounted: unmount it (lvsnap umount) and send again",
                lv.path()
            )));
        }
        Ok(lv)
    };
    let new_lv = lv_of(new)?;
    let base_lv = base.map(lv_of).transpose()?;
    if let (Some(b), Some(blv)) = (base, &base_lv) {
        if b.record.vg != new.record.vg
            || b.record.origin != new.record.origin
            || blv.origin != new_lv.origin
            || blv.pool != new_lv.pool
        {
            return Err(Error::Usage(format!(
                "--base {} is not a snapshot of {}/{}, the volume {} is of",
                blv.path(),
                new.record.vg,
                new.record.origin,
                new_lv.path()
            )));
        }
        if b.record.time >= new.record.time {
            return Err(Error::Usage(format!(
                "--base {} is not older than {}",
                blv.path(),
                new_lv.path()
            )));
        }
    }
    // The origin LVM links the snapshot to (one recreated under the same name is not it).
    let origin = new_lv
        .origin
        .as_deref()
        .and_then(|o| inv.find(&new_lv.vg, o))
        .ok_or_else(|| {
            refused(format!(
                "the origin {}/{} of {} is gone: a replica names its source volume by its UUID",
                new.record.vg,
                new.record.origin,
                new_lv.path()
            ))
        })?;
    // Blocks a thin volume with an external origin has not written read from that origin,
    // which the pool's map does not show.
    if origin.kind != LvKind::ThinVolume || origin.pool != new_lv.pool {
        return Err(refused(format!(
            "{} is not a thin volume of pool {}: only snapshots of thin volumes without an external origin can be sent",
            origin.path(),
            new_lv.pool.as_deref().unwrap_or("?")
        )));
    }
    let size = new_lv.size;
    let base = base
        .zip(base_lv.as_ref())
        .map(|(b, l)| (l, snapshot_id(l, b.record.time)));
    let id = snapshot_id(&new_lv, new.record.time);
    outgoing_lv(
        ctx,
        new_lv,
        size,
        base,
        id,
        format!("{}/{}", origin.vg, origin.name),
        origin.uuid.clone(),
    )
}

/// What [`outgoing`] checked, read from the pool's metadata: a thin volume `new_lv` (its
/// first `size` bytes), whole or as the blocks changed since `base`.
fn outgoing_lv(
    ctx: &Ctx<'_>,
    new_lv: Lv,
    size: u64,
    base: Option<(&Lv, SnapshotId)>,
    identity: SnapshotId,
    volume: String,
    volume_uuid: String,
) -> Result<Outgoing, Error> {
    let pool = new_lv.pool.clone().unwrap_or_default();
    let state_dir = ctx.config.settings.catalog.parent().ok_or_else(|| {
        refused(format!(
            "the catalog {} has no directory for the pool's metadata marker",
            ctx.config.settings.catalog.display()
        ))
    })?;
    let new_id = thin_id(ctx, &new_lv)?;
    let base_id = base.as_ref().map(|(l, _)| thin_id(ctx, l)).transpose()?;
    let held = MetadataSnap::reserve(ctx.runner, &new_lv.vg, &pool, state_dir)?;
    let new_map = read_map(ctx.runner, &held, &new_lv.vg, &pool, new_id)?.clip(size);
    // Mappings past the base's end (a volume shrunk, then grown) are not its content.
    let base_map = base_id
        .zip(base.as_ref())
        .map(|(id, (l, _))| {
            read_map(ctx.runner, &held, &new_lv.vg, &pool, id).map(|m| {
                // Grown since: the block the base's end falls in holds more now than the
                // replica has, so it is not the base's (it is sent whole if mapped).
                let end = if size > l.size {
                    l.size / m.block_bytes * m.block_bytes
                } else {
                    l.size
                };
                m.clip(end)
            })
        })
        .transpose()?;
    held.release()?;
    let extents = diff(base_map.as_ref().map(|m| &m.runs[..]), &new_map.runs);
    let header = Header {
        block_size: new_map.block_bytes,
        data_bytes: data_bytes(&extents, new_map.block_bytes, size),
        volume,
        volume_uuid,
        volume_size: size,
        base: base.map(|(_, id)| id),
        new: identity,
        sender: format!(
            "lvsnap {} on {}",
            env!("CARGO_PKG_VERSION"),
            rustix::system::uname().nodename().to_string_lossy()
        ),
    };
    let (device, activated) = open_exclusive(ctx, &new_lv)?;
    Ok(Outgoing {
        header,
        extents,
        block_bytes: new_map.block_bytes,
        device,
        activated,
        lv: new_lv,
    })
}

/// `lvsnap send SNAPSHOT [--base SNAPSHOT]`.
///
/// # Errors
/// A snapshot that is not lvsnap's, not thin, or not of the base's volume; the pool's metadata
/// could not be read; or the stream could not be written.
pub fn send(ctx: &mut Ctx<'_>, a: &SendArgs) -> Result<i32, Error> {
    if std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "lvsnap send writes a binary stream: pipe it into `lvsnap receive --pool VG/POOL` (here or through ssh), or into a file".into(),
        ));
    }
    ctx.tools()?;
    let o = {
        let _lock = ctx.lock()?;
        let mut catalog = ctx.catalog(true)?;
        let mut engine = ctx.engine(&mut catalog, false);
        let (inv, fleet) = engine.survey()?;
        let new = crate::resolve::readable_snapshot(&fleet, &inv, &a.snapshot)?;
        let base = match &a.base {
            Some(b) => Some(crate::resolve::readable_snapshot(&fleet, &inv, b)?),
            None => None,
        };
        outgoing(ctx, &inv, new, base)?
    };
    crate::replicate::transfer::widen_pipe(std::io::stdout());
    let result = o.stream(&mut *ctx.out, &ctx.cancel);
    let (lv, base) = (o.lv.path(), o.header.base.clone());
    o.close(ctx);
    let summary = result?;
    eprintln!(
        "sent {lv}{}: {} record(s), {} of data ({} bytes)",
        base.map(|b| format!(" (the blocks changed since {})", b.name))
            .unwrap_or_default(),
        summary.records,
        crate::units::format_size(summary.data_bytes),
        summary.data_bytes
    );
    Ok(exit::OK)
}

/// `lvsnap receive --pool VG/POOL`: reads a stream on standard input.
///
/// # Errors
/// A stream that is not whole, or not for the replicas this pool holds; or LVM failed.
pub fn receive(ctx: &mut Ctx<'_>, a: &ReceiveArgs) -> Result<i32, Error> {
    let named = a.pool.as_deref().unwrap_or_default();
    let Some((vg, pool)) = named.split_once('/') else {
        return Err(Error::Usage(format!("--pool {named}: write VG/POOL")));
    };
    if !crate::replicate::target::plain(vg) || !crate::replicate::target::plain(pool) {
        return Err(Error::Usage(format!(
            "--pool {named}: write VG/POOL, two LVM names"
        )));
    }
    if a.list {
        return list(ctx, vg, pool);
    }
    if !a.remove.is_empty() {
        return remove(ctx, vg, pool, &a.remove);
    }
    if let Some(name) = &a.digest {
        return digest(ctx, vg, pool, name);
    }
    if let Some(name) = &a.send {
        return send_replica(ctx, vg, pool, name);
    }
    if let Some(name) = &a.as_name {
        crate::config::types::check_lvm_name(name, "the new volume's")
            .map_err(|e| Error::Usage(format!("--as {name}: {e}")))?;
    }
    if std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "lvsnap receive reads a stream on standard input: `lvsnap send SNAPSHOT | lvsnap receive --pool VG/POOL`".into(),
        ));
    }
    ctx.tools()?;
    crate::replicate::transfer::widen_pipe(std::io::stdin());
    let cancel = ctx.cancel.clone();
    // Standard input as a file of its own: no buffer of std's between the poll and the read.
    let input = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let stdin = crate::replicate::transfer::Patient {
        inner: &input,
        fd: &input,
        idle: crate::replicate::target::STALL,
        cancel: &cancel,
    };
    let mut stream = StreamReader::new(BufReader::with_capacity(1 << 20, stdin))
        .map_err(|e| refused(e.to_string()))?;
    let h = stream.header().clone();
    let time = check_header(&h)
        .map_err(|e| refused(format!("the stream's header: {e}; nothing was received")))?;
    let made = a.as_name.as_deref();
    if made.is_some() && h.base.is_some() {
        return Err(refused(format!(
            "the stream is the blocks changed since {}: a new volume (--as) is made only from a whole stream",
            h.base.as_ref().map(|b| b.name.as_str()).unwrap_or_default()
        )));
    }
    // One stream at a time into a pool: each measures the room left for it. (`@` is in no
    // LVM name, so no two pools share a lock.)
    let _receiving = crate::lock::acquire_named(
        &ctx.config.settings.runtime_dir,
        &format!("receive-{vg}@{pool}.lock"),
        std::time::Duration::ZERO,
    )
    .map_err(|e| match e {
        crate::lock::LockError::Busy { pid, .. } => refused(format!(
            "another stream is being received into {vg}/{pool} (pid {pid}); send again when it is done"
        )),
        other => Error::from(other),
    })?;
    let (scratch, target) = prepare(ctx, vg, pool, &h, made)?;
    let path = format!("/dev/{vg}/{scratch}");
    // Exclusive, and held until the scratch volume is renamed: nothing else mounts it, and no
    // other receive takes it for one a crash left behind.
    let opened = File::options()
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(&path)
        .map_err(|e| refused(format!("cannot open {path}: {e}")));
    let outcome = opened.and_then(|device| {
        let direct = crate::replicate::transfer::write_direct(&device);
        tracing::debug!(
            "writing {path} {}",
            if direct {
                "direct"
            } else {
                "through the page cache"
            }
        );
        let mut sink = DeviceSink {
            device: &device,
            discard_block: target.discard_block,
            budget: target.budget,
            provisioned: 0,
        };
        apply(&mut stream, &mut sink, &cancel)
            .map(|s| (s, device))
            .map_err(|e| refused(e.to_string()))
    });
    let gone = |ctx: &mut Ctx<'_>, e: Error| -> Error {
        let removed = ctx
            .lock()
            .and_then(|_lock| exec(ctx, &commands::remove(vg, &scratch)));
        match removed {
            Ok(()) => refused(format!("{e}; the partial copy {vg}/{scratch} was removed")),
            Err(r) => refused(format!(
                "{e}; the partial copy {vg}/{scratch} could not be removed ({r}): the next receive into {vg}/{pool} removes it"
            )),
        }
    };
    let (summary, device) = match outcome {
        Ok(done) => done,
        Err(e) => return Err(gone(ctx, e)),
    };
    let finished = (|| -> Result<(), Error> {
        // A whole verified stream is not thrown away because a long command holds the lock:
        // the open device and the owner's tag keep the copy meanwhile.
        let _lock = loop {
            match ctx.lock() {
                Err(Error::Lock(e)) if !cancel.load(std::sync::atomic::Ordering::Relaxed) => {
                    tracing::warn!("waiting for the lock to finish the replica: {e}");
                }
                other => break other?,
            }
        };
        drop(device);
        exec(ctx, &commands::deactivate(vg, &scratch))?;
        if let Some(name) = made {
            exec(ctx, &commands::rename(vg, &scratch, name))?;
            // A plain volume of the administrator's: writable, no tag of lvsnap's (nothing
            // prunes it). Not activated at boot: its filesystem has the UUID of the volume it
            // was copied from, which a boot could mount in that one's place.
            exec(
                ctx,
                &Invocation::new(
                    Tool::Lvchange,
                    [
                        "--setactivationskip".to_owned(),
                        "y".to_owned(),
                        "--deltag".to_owned(),
                        receiving_tag(),
                        format!("{vg}/{name}"),
                    ],
                ),
            )?;
            return exec(ctx, &commands::activate(vg, name));
        }
        exec(ctx, &commands::rename(vg, &scratch, &h.new.name))?;
        // One metadata update: the volume is a replica, read-only, and no longer a scratch
        // copy, or none of these.
        let mut args: Vec<String> = [
            "--permission",
            "r",
            "--setactivationskip",
            "y",
            "--deltag",
            &receiving_tag(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for tag in [
            REPLICA_TAG.to_owned(),
            format!("{REPLICA_OF_TAG}={}", h.volume_uuid),
            format!("{REPLICA_SNAPSHOT_TAG}={}", h.new.uuid),
            format!("{REPLICA_TIME_TAG}={time}"),
            format!("{REPLICA_SIZE_TAG}={}", h.volume_size),
        ] {
            args.extend(["--addtag".to_owned(), tag]);
        }
        args.push(format!("{vg}/{}", h.new.name));
        exec(ctx, &Invocation::new(Tool::Lvchange, args))
    })();
    if let Err(e) = finished {
        return Err(refused(format!(
            "the whole stream was received and checked, but the {} could not be finished: {e}; the copy is {vg}/{scratch} or {vg}/{}, tagged {RECEIVING_TAG}: the next receive into {vg}/{pool} removes it — send again",
            if made.is_some() { "new volume" } else { "replica" },
            made.unwrap_or(&h.new.name)
        )));
    }
    if let Some(name) = made {
        writeln!(
            ctx.out,
            "restored {} of {} as {vg}/{name}: {} record(s), {} of data. It is active now but not at boot (`lvchange --setactivationskip n {vg}/{name}`); a filesystem on it has the UUID of the volume it was copied from: give it a new one (tune2fs -U random, xfs_admin -U generate) before mounting it beside that volume",
            h.new.name,
            h.volume,
            summary.records,
            crate::units::format_size(summary.data_bytes)
        )?;
        return Ok(exit::OK);
    }
    writeln!(
        ctx.out,
        "received {} of {} into {vg}/{}{}: {} record(s), {} of data",
        h.new.name,
        h.volume,
        h.new.name,
        h.base
            .as_ref()
            .map(|b| format!(" (on {vg}/{})", b.name))
            .unwrap_or_else(|| " (whole)".to_owned()),
        summary.records,
        crate::units::format_size(summary.data_bytes)
    )?;
    Ok(exit::OK)
}

/// The replicas in `vg/pool`, as lvsnap's replication reads them from a receiving end.
fn replicas_in(inv: &Inventory, vg: &str, pool: &str) -> Vec<Replica> {
    inv.lvs()
        .iter()
        .filter(|l| l.vg == vg && l.pool.as_deref() == Some(pool) && l.has_tag(REPLICA_TAG))
        .filter_map(|l| {
            Some(Replica {
                name: l.name.clone(),
                volume_uuid: l.tag_value(REPLICA_OF_TAG)?.to_owned(),
                snapshot_uuid: l.tag_value(REPLICA_SNAPSHOT_TAG)?.to_owned(),
                time: l.tag_value(REPLICA_TIME_TAG)?.to_owned(),
                size: l.size,
                open: l.open,
                writable: l.attr.as_bytes().get(1) != Some(&b'r'),
            })
        })
        .collect()
}

fn pool_inventory(ctx: &Ctx<'_>, vg: &str, pool: &str) -> Result<Inventory, Error> {
    let inv = inventory(ctx)?;
    if inv
        .find(vg, pool)
        .is_none_or(|l| l.kind != LvKind::ThinPool)
    {
        return Err(Error::Usage(format!("{vg}/{pool} is not a thin pool")));
    }
    Ok(inv)
}

/// `lvsnap receive --pool VG/POOL --list`.
fn list(ctx: &mut Ctx<'_>, vg: &str, pool: &str) -> Result<i32, Error> {
    ctx.tools()?;
    let inv = pool_inventory(ctx, vg, pool)?;
    let listing = Listing {
        pool: format!("{vg}/{pool}"),
        replicas: replicas_in(&inv, vg, pool),
    };
    writeln!(
        ctx.out,
        "{}",
        serde_json::to_string(&listing).map_err(|e| refused(e.to_string()))?
    )?;
    Ok(exit::OK)
}

/// `lvsnap receive --pool VG/POOL --remove REPLICA…`: only replicas in this pool, never the
/// newest of a volume (the base the next increment is sent against), never an open one.
fn remove(ctx: &mut Ctx<'_>, vg: &str, pool: &str, names: &[String]) -> Result<i32, Error> {
    ctx.tools()?;
    let _lock = ctx.lock()?;
    let inv = pool_inventory(ctx, vg, pool)?;
    let replicas = replicas_in(&inv, vg, pool);
    let listing = Listing {
        pool: format!("{vg}/{pool}"),
        replicas: replicas.clone(),
    };
    let mut refusals = Vec::new();
    for name in names {
        let Some(r) = replicas.iter().find(|r| &r.name == name) else {
            refusals.push(format!("{vg}/{name} is not a replica in {vg}/{pool}"));
            continue;
        };
        let chain = listing.of_volume(&r.volume_uuid);
        if chain.last().is_some_and(|n| n.name == r.name) {
            refusals.push(format!(
                "{vg}/{name} is the newest replica of its volume, the base of the next increment: it stays"
            ));
            continue;
        }
        if r.open {
            refusals.push(format!("{vg}/{name} is open or mounted: unmount it first"));
            continue;
        }
        match exec(ctx, &commands::remove(vg, name)) {
            Ok(()) => writeln!(ctx.out, "removed {vg}/{name}")?,
            Err(e) => refusals.push(format!("{vg}/{name}: {e}")),
        }
    }
    if refusals.is_empty() {
        Ok(exit::OK)
    } else {
        Err(refused(refusals.join("; ")))
    }
}

/// Opens a thin volume for reading, exclusively (nothing mounts it meanwhile), activating it
/// first if it is not active; gives the device and whether it was activated.
pub(super) fn open_exclusive(ctx: &Ctx<'_>, lv: &Lv) -> Result<(File, bool), Error> {
    let activated = !lv.active;
    if activated {
        exec(ctx, &commands::activate(&lv.vg, &lv.name))?;
    }
    let path = format!("/dev/{}/{}", lv.vg, lv.name);
    match File::options()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&path)
    {
        Ok(d) => Ok((d, activated)),
        Err(e) => {
            if activated {
                let _ = exec(ctx, &commands::deactivate(&lv.vg, &lv.name));
            }
            Err(refused(format!(
                "cannot open {path}: {e}{}",
                if e.raw_os_error() == Some(libc::EBUSY) {
                    " (open or mounted: unmount it first)"
                } else {
                    ""
                }
            )))
        }
    }
}

/// The replica `name` in `vg/pool`.
fn replica_named<'i>(
    inv: &'i Inventory,
    vg: &str,
    pool: &str,
    name: &str,
) -> Result<&'i Lv, Error> {
    inv.find(vg, name)
        .filter(|l| l.pool.as_deref() == Some(pool) && l.has_tag(REPLICA_TAG))
        .ok_or_else(|| refused(format!("{vg}/{name} is not a replica in {vg}/{pool}")))
}

/// The bytes of a replica that are its source's: LVM may have rounded the volume up.
fn replica_size(lv: &Lv) -> u64 {
    lv.tag_value(REPLICA_SIZE_TAG)
        .and_then(|v| v.parse().ok())
        .unwrap_or(lv.size)
        .min(lv.size)
}

/// `lvsnap receive --pool VG/POOL --send REPLICA`: the replica as a whole stream, for a
/// restore on the sending host (`lvsnap restore-replica`).
fn send_replica(ctx: &mut Ctx<'_>, vg: &str, pool: &str, name: &str) -> Result<i32, Error> {
    if std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "lvsnap receive --send writes a binary stream: pipe it into `lvsnap receive --pool VG/POOL --as NAME`".into(),
        ));
    }
    ctx.tools()?;
    let o = {
        let _lock = ctx.lock()?;
        let inv = pool_inventory(ctx, vg, pool)?;
        let lv = replica_named(&inv, vg, pool, name)?;
        if lv.attr.as_bytes().get(1) != Some(&b'r') {
            return Err(refused(format!(
                "{} was made writable, so it may no longer equal its source: restore from another replica",
                lv.path()
            )));
        }
        let size = replica_size(lv);
        let time = lv
            .tag_value(REPLICA_TIME_TAG)
            .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok())
            .map(|t| t.and_utc())
            .ok_or_else(|| refused(format!("{}: its time tag is unreadable", lv.path())))?;
        let identity = SnapshotId {
            name: lv.name.clone(),
            uuid: lv
                .tag_value(REPLICA_SNAPSHOT_TAG)
                .unwrap_or_default()
                .to_owned(),
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let volume_uuid = lv.tag_value(REPLICA_OF_TAG).unwrap_or_default().to_owned();
        outgoing_lv(
            ctx,
            lv.clone(),
            size,
            None,
            identity,
            format!("{vg}/{name}"),
            volume_uuid,
        )?
    };
    crate::replicate::transfer::widen_pipe(std::io::stdout());
    let cancel = ctx.cancel.clone();
    // Standard output as a non-blocking file of its own: a write then never waits past the
    // poll for a reader that stopped, and no buffer of std's sits between them. Blocking again
    // before anything else (LVM) may inherit it.
    let output = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let result = crate::replicate::transfer::NonBlocking::set(&output)
        .map_err(Error::from)
        .and_then(|_nonblocking| {
            let out = crate::replicate::transfer::Patient {
                inner: &output,
                fd: &output,
                idle: crate::replicate::target::STALL,
                cancel: &cancel,
            };
            o.stream(out, &cancel)
        });
    o.close(ctx);
    let summary = result?;
    eprintln!(
        "sent {vg}/{name} whole: {} record(s), {} of data",
        summary.records,
        crate::units::format_size(summary.data_bytes)
    );
    Ok(exit::OK)
}

/// `lvsnap receive --pool VG/POOL --digest REPLICA`.
fn digest(ctx: &mut Ctx<'_>, vg: &str, pool: &str, name: &str) -> Result<i32, Error> {
    ctx.tools()?;
    let inv = pool_inventory(ctx, vg, pool)?;
    let lv = replica_named(&inv, vg, pool, name)?;
    let size = replica_size(lv);
    let (device, activated) = open_exclusive(ctx, lv)?;
    let hashed = crate::replicate::digest::digests(
        &device,
        size,
        crate::replicate::digest::threads(),
        &ctx.cancel,
    );
    drop(device);
    if activated {
        let _ = exec(ctx, &commands::deactivate(vg, name));
    }
    let d = hashed.map_err(|e| refused(format!("reading {}: {e}", lv.path())))?;
    writeln!(
        ctx.out,
        "{}",
        serde_json::to_string(&d).map_err(|e| refused(e.to_string()))?
    )?;
    Ok(exit::OK)
}

/// This process's mark on the scratch volume it receives into: `lvsnap-receiving=PID.BOOT`.
fn receiving_tag() -> String {
    format!("{RECEIVING_TAG}={}", holder())
}

fn holder() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    format!("{}.{}", std::process::id(), boot.trim())
}

/// Whether the receive that tagged a scratch volume `owner` still runs (and is not this one:
/// a scratch volume with this process's mark, before it made its own, is an earlier process's
/// with the same pid).
fn receiving_elsewhere(owner: &str) -> bool {
    let Some((pid, boot)) = owner.split_once('.') else {
        return false;
    };
    let this = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    owner != holder()
        && boot == this.trim()
        && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What a receiver uses of a header it did not write — from another host, perhaps a hostile
/// one — as LVM names, tags and messages: only plain LVM names and UUIDs. Gives the snapshot's
/// time as the replica's time tag.
fn check_header(h: &Header) -> Result<String, String> {
    use crate::replicate::target::{plain, plain_uuid};
    let lv_name = |what: &str, n: &str| {
        if plain(n) {
            Ok(())
        } else {
            Err(format!(
                "{what} {n:?} is not a name lvsnap gives a snapshot"
            ))
        }
    };
    let uuid = |what: &str, u: &str| {
        if plain_uuid(u) {
            Ok(())
        } else {
            Err(format!("{what} {u:?} is not an LVM UUID"))
        }
    };
    lv_name("the snapshot", &h.new.name)?;
    uuid("the snapshot's UUID", &h.new.uuid)?;
    uuid("the volume's UUID", &h.volume_uuid)?;
    if !h
        .volume
        .split_once('/')
        .is_some_and(|(v, l)| plain(v) && plain(l))
    {
        return Err(format!("the volume {:?} is not VG/LV", h.volume));
    }
    if let Some(b) = &h.base {
        lv_name("the base", &b.name)?;
        uuid("the base's UUID", &b.uuid)?;
    }
    if h.volume_size == 0 || !h.volume_size.is_multiple_of(512) {
        return Err(format!("a volume of {} bytes", h.volume_size));
    }
    if h.data_bytes > h.volume_size {
        return Err(format!(
            "{} bytes of data for a volume of {}",
            h.data_bytes, h.volume_size
        ));
    }
    if h.block_size == 0 || !h.block_size.is_multiple_of(512) {
        return Err(format!("a pool block of {} bytes", h.block_size));
    }
    chrono::DateTime::parse_from_rfc3339(&h.new.time)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y%m%dT%H%M%SZ")
                .to_string()
        })
        .map_err(|e| format!("the snapshot's time {:?}: {e}", h.new.time))
}

struct Target {
    discard_block: u64,
    /// The pool's free space: what the stream's writes may provision at most.
    budget: u64,
}

/// Under the lock: removes what interrupted receives left, checks the stream's base against
/// the newest replica and the pool's room, and creates and activates the scratch volume the
/// stream goes into.
fn prepare(
    ctx: &mut Ctx<'_>,
    vg: &str,
    pool: &str,
    h: &Header,
    made: Option<&str>,
) -> Result<(String, Target), Error> {
    let _lock = ctx.lock()?;
    let first = inventory(ctx)?;
    if first
        .find(vg, pool)
        .is_none_or(|l| l.kind != LvKind::ThinPool)
    {
        return Err(Error::Usage(format!("{vg}/{pool} is not a thin pool")));
    }
    let settings = pool_settings(ctx, vg, pool)?;
    let mut removed = false;
    for left in first.lvs().iter().filter(|l| {
        l.vg == vg && l.pool.as_deref() == Some(pool) && !l.open && !l.has_tag(REPLICA_TAG)
    }) {
        let Some(owner) = left.tag_value(RECEIVING_TAG) else {
            continue;
        };
        if receiving_elsewhere(owner) {
            continue;
        }
        match exec(ctx, &commands::remove(vg, &left.name)) {
            Ok(()) => {
                removed = true;
                tracing::warn!(volume = %left.path(), "removed the partial copy an interrupted receive left");
            }
            Err(e) => {
                tracing::warn!(volume = %left.path(), "could not remove the partial copy an interrupted receive left: {e}");
            }
        }
    }
    let inv = if removed { inventory(ctx)? } else { first };
    let replicas: Vec<&Lv> = inv
        .lvs()
        .iter()
        .filter(|l| l.vg == vg && l.pool.as_deref() == Some(pool) && l.has_tag(REPLICA_TAG))
        .collect();
    if let Some(name) = made {
        // A restore never goes over an existing volume.
        if let Some(taken) = inv.find(vg, name) {
            return Err(refused(format!(
                "{} exists: a restore makes a new volume and never writes over one; choose another name with --as",
                taken.path()
            )));
        }
    } else if let Some(same) = replicas
        .iter()
        .find(|l| l.tag_value(REPLICA_SNAPSHOT_TAG) == Some(h.new.uuid.as_str()))
    {
        return Err(refused(format!(
            "{} is already a replica of {} (snapshot UUID {}): nothing to receive",
            same.path(),
            h.new.name,
            h.new.uuid
        )));
    }
    if let Some(taken) = inv.find(vg, &h.new.name).filter(|_| made.is_none()) {
        return Err(refused(format!(
            "{} exists already and is not a replica of this snapshot: rename or remove it, then send again",
            taken.path()
        )));
    }
    let mut chain: Vec<&Lv> = replicas
        .into_iter()
        .filter(|l| l.tag_value(REPLICA_OF_TAG) == Some(h.volume_uuid.as_str()))
        .collect();
    chain.sort_by_key(|l| l.tag_value(REPLICA_TIME_TAG).unwrap_or_default().to_owned());
    let scratch = format!("lvsnap-receiving-{}", std::process::id());
    let mut create = match &h.base {
        None => Invocation::new(
            Tool::Lvcreate,
            [
                "--thin".to_owned(),
                "--virtualsize".to_owned(),
                format!("{}b", h.volume_size),
                "--name".to_owned(),
                scratch.clone(),
                format!("{vg}/{pool}"),
            ],
        ),
        Some(base) => {
            let Some(newest) = chain.last() else {
                return Err(refused(format!(
                    "the stream is the blocks changed since {} of {}, but {vg}/{pool} holds no replica of {}: send it whole (without --base)",
                    base.name, h.volume, h.volume
                )));
            };
            if newest.tag_value(REPLICA_SNAPSHOT_TAG) != Some(base.uuid.as_str()) {
                return Err(refused(format!(
                    "the stream's base is {} of {}, but the newest replica in {vg}/{pool} is {}: send the blocks changed since that one, or send whole",
                    base.name, h.volume, newest.name
                )));
            }
            if newest.attr.as_bytes().get(1) != Some(&b'r') {
                return Err(refused(format!(
                    "the base replica {} was made writable, so it may no longer equal {}: send whole (without --base)",
                    newest.path(),
                    base.name
                )));
            }
            if newest.open {
                return Err(refused(format!(
                    "the base replica {} is open or mounted: unmount it first",
                    newest.path()
                )));
            }
            let base_size: u64 = newest
                .tag_value(REPLICA_SIZE_TAG)
                .and_then(|v| v.parse().ok())
                .unwrap_or(newest.size);
            if h.volume_size < base_size {
                return Err(refused(format!(
                    "{} shrank since {}: send whole (without --base)",
                    h.volume, base.name
                )));
            }
            Invocation::new(
                Tool::Lvcreate,
                [
                    "--snapshot".to_owned(),
                    "--permission".to_owned(),
                    "rw".to_owned(),
                    "--name".to_owned(),
                    scratch.clone(),
                    newest.path(),
                ],
            )
        }
    };
    create
        .args
        .splice(0..0, ["--addtag".to_owned(), receiving_tag()]);
    exec(ctx, &create)?;
    let grow_from = h.base.as_ref().and(chain.last()).map(|l| l.size);
    let readied =
        ready(ctx, vg, &scratch, h.volume_size, grow_from).and_then(|()| room(ctx, vg, pool, h));
    match readied {
        Ok(free) => Ok((
            scratch,
            Target {
                discard_block: settings.chunk,
                budget: free,
            },
        )),
        Err(e) => {
            let _ = exec(ctx, &commands::remove(vg, &scratch));
            Err(e)
        }
    }
}

/// The pool's free data space, measured once it is active (an inactive pool reports no fill),
/// which must hold the stream's data.
fn room(ctx: &Ctx<'_>, vg: &str, pool: &str, h: &Header) -> Result<u64, Error> {
    let inv = Invocation::new(
        Tool::Lvs,
        [
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ",",
            "-o",
            "lv_size,data_percent",
            &format!("{vg}/{pool}"),
        ],
    );
    let done = ctx.runner.run(&inv)?;
    lvm::check(&inv, &done)?;
    let line = done.stdout.trim();
    let free = line.split_once(',').and_then(|(size, pct)| {
        let size: f64 = size.trim().parse().ok()?;
        let pct: f64 = pct.trim().parse().ok()?;
        Some((size * (1.0 - pct / 100.0)) as u64)
    });
    let Some(free) = free else {
        return Err(refused(format!(
            "thin pool {vg}/{pool}: LVM reports no fill ({line:?}), so lvsnap cannot tell whether the stream fits"
        )));
    };
    if h.data_bytes > free {
        return Err(refused(format!(
            "thin pool {vg}/{pool} has {} free, too little for the {} of data the stream carries: extend the pool (lvextend) or remove replicas, then send again",
            crate::units::format_size(free),
            crate::units::format_size(h.data_bytes)
        )));
    }
    Ok(free)
}

/// Grows the scratch volume to the stream's size if the volume grew, and activates it.
fn ready(
    ctx: &Ctx<'_>,
    vg: &str,
    scratch: &str,
    size: u64,
    grow_from: Option<u64>,
) -> Result<(), Error> {
    if grow_from.is_some_and(|s| size > s) {
        exec(
            ctx,
            &Invocation::new(
                Tool::Lvextend,
                [
                    "--size".to_owned(),
                    format!("{size}b"),
                    format!("{vg}/{scratch}"),
                ],
            ),
        )?;
    }
    exec(ctx, &commands::activate(vg, scratch))
}

struct PoolSettings {
    /// The pool's block size in bytes.
    chunk: u64,
}

/// The pool's block size. A pool that ignores discards is refused (a stream's discards would be
/// written as zeros, unsharing and filling what the source had freed), and so is one that does
/// not zero the blocks it provisions.
fn pool_settings(ctx: &Ctx<'_>, vg: &str, pool: &str) -> Result<PoolSettings, Error> {
    let inv = Invocation::new(
        Tool::Lvs,
        [
            "--noheadings",
            "--binary",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ",",
            "-o",
            "discards,chunk_size,zero",
            &format!("{vg}/{pool}"),
        ],
    );
    let done = ctx.runner.run(&inv)?;
    lvm::check(&inv, &done)?;
    let fields: Vec<&str> = done.stdout.trim().split(',').map(str::trim).collect();
    let [discards, chunk, zero] = fields[..] else {
        return Err(refused(format!(
            "thin pool {vg}/{pool}: lvs reported {:?} for its discards, block size and zeroing",
            done.stdout.trim()
        )));
    };
    if discards == "ignore" {
        return Err(refused(format!(
            "thin pool {vg}/{pool} ignores discards, so blocks a stream frees would be written as zeros and take space: `lvchange --discards nopassdown {vg}/{pool}`"
        )));
    }
    // Blocks a stream writes only in part would show what the pool held there before.
    if zero != "1" {
        return Err(refused(format!(
            "thin pool {vg}/{pool} does not zero the blocks it provisions, so a replica could show other volumes' old data where the stream writes a block only in part: `lvchange --zero y {vg}/{pool}`"
        )));
    }
    let chunk: u64 = chunk
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| refused(format!("thin pool {vg}/{pool}: block size {chunk:?}")))?;
    Ok(PoolSettings { chunk })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forced(original: &str) -> Result<ReceiveArgs, String> {
        forced_request(&["vgb/replicas".to_owned()], Some(original)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_forced_command_serves_receive_requests_for_the_allowed_pool() {
        let list = forced("lvsnap receive --pool vgb/replicas --list").unwrap();
        assert!(list.list);
        assert_eq!(list.pool.as_deref(), Some("vgb/replicas"));
        // The transport's program and what precedes `receive` are the sender's business.
        let remove =
            forced("sudo /usr/sbin/lvsnap receive --pool 'vgb/replicas' --remove a-1 b-2").unwrap();
        assert_eq!(remove.remove, ["a-1", "b-2"]);
        let prefixed =
            forced("lvsnap --config /tmp/other.toml receive --pool vgb/replicas --list").unwrap();
        assert!(prefixed.list, "words before `receive` are ignored");
        let stream = forced("lvsnap receive --pool vgb/replicas").unwrap();
        assert!(!stream.list && stream.remove.is_empty() && stream.send.is_none());
    }

    #[test]
    fn a_forced_command_refuses_everything_else() {
        for (request, why) in [
            ("lvsnap receive --pool vg0/pool --list", "another pool"),
            ("lvsnap receive --pool vgb/replicas2 --list", "another pool"),
            ("rm -rf /", "is not lvsnap receive"),
            ("lvsnap send vg0/x", "is not lvsnap receive"),
            (
                "lvsnap receive --pool vgb/replicas --list; reboot",
                "unexpected argument '--list;'",
            ),
            (
                "lvsnap receive --pool vgb/replicas --config /tmp/evil.toml --list",
                "unexpected argument '--config'",
            ),
            (
                "lvsnap receive --allow-pool vg0/pool",
                "asks for --allow-pool",
            ),
            (
                "lvsnap receive --pool vgb/replicas --allow-pool vg0/pool",
                "cannot be used with",
            ),
            ("lvsnap receive --help", "unexpected argument '--help'"),
            (
                "lvsnap receive --pool 'vgb/replicas --list",
                "not plain words",
            ),
            (
                "lvsnap receive --list",
                "required arguments were not provided",
            ),
            (
                "lvsnap receive --pool=vg0/pool --list",
                "is for another pool",
            ),
            (
                "lvsnap receive --pool vgb/replicas --pool vg0/pool --list",
                "cannot be used multiple times",
            ),
            (
                "lvsnap receive --pool vgb/replicas --as x",
                "asks for a new volume (--as)",
            ),
            (
                "lvsnap receive --pool vgb/replicas --list # x",
                "holds a `#`",
            ),
            (
                "lvsnap receive --pool vgb/replicas -- --list",
                "unexpected argument",
            ),
        ] {
            let e = forced(request).unwrap_err();
            assert!(e.contains(why), "{request}: {e}");
            assert!(
                e.contains("may only use lvsnap receive for vgb/replicas"),
                "{e}"
            );
        }
        let e = forced("lvsnap receive\x1b[2J --pool vgb/replicas\n--list").unwrap_err();
        assert!(!e.contains('\x1b') && !e.contains('\n'), "{e}");
        let e = forced_request(&["vgb/replicas".to_owned()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SSH_ORIGINAL_COMMAND"), "{e}");
    }

    fn header() -> Header {
        let id = |n: &str| SnapshotId {
            name: n.into(),
            uuid: "aoLlSf-ToOF-taFg-Vykw-Ptc7-6zFT-fqjTjJ".into(),
            time: "2026-12-04T16:44:27Z".into(),
        };
        Header {
            volume: "vg0/fs".into(),
            volume_uuid: "M0bOpS-cVsa-khrO-CM4o-ybGS-gViQ-1TgJBp".into(),
            volume_size: 256 << 20,
            base: Some(id("fs-lvsnap-20261204T164427Z")),
            new: id("fs-lvsnap-20261204T164528Z"),
            block_size: 65536,
            data_bytes: 14_090_240,
            sender: "lvsnap 0.1.0 on db01".into(),
        }
    }

    #[test]
    fn a_header_from_another_host_names_only_plain_lvm_names_and_tags() {
        assert_eq!(check_header(&header()), Ok("20261204T164427Z".to_owned()));
        let hostile = |f: &dyn Fn(&mut Header)| {
            let mut h = header();
            f(&mut h);
            check_header(&h).unwrap_err()
        };
        // Read by lvrename as an option, not a name.
        let e = hostile(&|h| h.new.name = "--select=lv_name=~.*".into());
        assert!(e.contains("is not a name lvsnap gives a snapshot"), "{e}");
        assert!(!hostile(&|h| h.new.name = "../../dev/sda".into()).is_empty());
        assert!(!hostile(&|h| h.base.as_mut().unwrap().name = "a b".into()).is_empty());
        // A tag value with a comma would be two tags.
        let e = hostile(&|h| h.volume_uuid = "x,lvsnap".into());
        assert!(e.contains("is not an LVM UUID"), "{e}");
        assert!(!hostile(&|h| h.new.uuid = String::new()).is_empty());
        let e = hostile(&|h| h.volume_size = 1000);
        assert!(e.contains("a volume of 1000 bytes"), "{e}");
        let e = hostile(&|h| h.data_bytes = h.volume_size + 512);
        assert!(e.contains("bytes of data for a volume of"), "{e}");
        let e = hostile(&|h| h.volume = "vg0/fs\u{1b}[2J".into());
        assert!(e.contains("is not VG/LV"), "{e}");
        let e = hostile(&|h| h.new.time = "yesterday".into());
        assert!(e.contains("the snapshot's time \"yesterday\""), "{e}");
    }
}
