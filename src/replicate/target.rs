//! The receiving end of a policy's replication: `lvsnap receive --pool VG/POOL` started as a
//! child process — this binary for a pool on this host, the policy's transport argv (`ssh
//! backup01 lvsnap receive`) for one on another — for its three requests: the replicas the
//! pool holds (`--list`), a stream to receive, replicas to remove (`--remove`), a replica's
//! digests (`--digest`) and a replica sent back (`--send`).
//!
//! What the other end prints is not trusted: it is read up to a bound, a request that does not
//! end in time is killed, a stream that stops moving is given up, names in a listing must be
//! plain LVM names, and control characters never reach a message.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ReplicatePolicy};

/// One replica in the target pool, as `lvsnap receive --list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Its LV name: the name of the source snapshot it equals.
    pub name: String,
    /// The LVM UUID of the source volume.
    pub volume_uuid: String,
    /// The LVM UUID of the source snapshot.
    pub snapshot_uuid: String,
    /// The source snapshot's time, `YYYYmmddTHHMMSSZ`.
    pub time: String,
    /// Bytes, as LVM reports the replica's size.
    pub size: u64,
    /// Open or mounted on the target.
    pub open: bool,
    /// Made writable since it was received: it may no longer equal its source.
    pub writable: bool,
}

/// What `lvsnap receive --list` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    pub pool: String,
    pub replicas: Vec<Replica>,
}

/// The longest a request (a listing, a removal) may take before the target is taken for hung.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest the receiving end may take to make the replica once the whole stream is
/// written (a sync of what it wrote, its lock, a few LVM commands).
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(3600);
/// A stream that moves no byte for this long is given up: the other end hangs.
pub const STALL: Duration = Duration::from_secs(300);
/// The most of a listing or a digest list read from the other end.
const ANSWER_BYTES: usize = 16 << 20;
/// The most of the other end's messages kept.
const MESSAGE_BYTES: usize = 64 << 10;

/// Whether a name from the other end (a listing, a stream's header) is a plain LVM name: not
/// an option, no separators, nothing a tag or a message would read otherwise.
pub fn plain(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 127
        && !n.starts_with('-')
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

/// Whether a UUID from the other end is one as LVM writes them.
pub fn plain_uuid(u: &str) -> bool {
    !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Replica {
    /// Whether every field the sender uses as a name, tag or time is plain.
    fn is_plain(&self) -> bool {
        plain(&self.name)
            && plain_uuid(&self.volume_uuid)
            && plain_uuid(&self.snapshot_uuid)
            && self.time.len() == 16
            && self.time.bytes().all(|b| b.is_ascii_alphanumeric())
    }
}

impl Listing {
    /// The replicas of one source volume, oldest first.
    pub fn of_volume(&self, volume_uuid: &str) -> Vec<&Replica> {
        let mut v: Vec<&Replica> = self
            .replicas
            .iter()
            .filter(|r| r.volume_uuid == volume_uuid)
            .collect();
        v.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

/// How to reach the receiving end.
#[derive(Debug, Clone)]
pub struct Target {
    /// The program and its arguments up to `receive`, then `--pool VG/POOL`.
    argv: Vec<String>,
    /// How the target is named in messages.
    pub name: String,
}

impl Target {
    /// The receive command for `policy`'s target. A transport's program is found like every
    /// other program lvsnap runs (trusted system directories, root's, writable by no one
    /// else); the local one is this binary, with this configuration.
    ///
    /// # Errors
    /// The transport's program is missing or not trusted.
    pub fn new(policy: &ReplicatePolicy, config: &Config) -> Result<Self, String> {
        let mut argv = match &policy.transport {
            Some(t) => {
                let (program, args) = t.split_first().ok_or("the transport is empty")?;
                let found = crate::tools::program(program)
                    .map_err(|e| format!("the transport's program: {e}"))?;
                std::iter::once(found.to_string_lossy().into_owned())
                    .chain(args.iter().cloned())
                    .collect()
            }
            None => {
                let me: PathBuf = std::env::current_exe()
                    .map_err(|e| format!("cannot tell where this lvsnap is: {e}"))?;
                vec![
                    me.to_string_lossy().into_owned(),
                    "--config".to_owned(),
                    config.source.to_string_lossy().into_owned(),
                    "receive".to_owned(),
                ]
            }
        };
        argv.extend(["--pool".to_owned(), policy.pool_ref()]);
        Ok(Target {
            argv,
            name: policy.target(),
        })
    }

    /// `lvsnap receive --pool VG/POOL` on this host, with this configuration.
    ///
    /// # Errors
    /// This binary cannot be found.
    pub fn local(config: &Config, pool: &str) -> Result<Self, String> {
        let me: PathBuf = std::env::current_exe()
            .map_err(|e| format!("cannot tell where this lvsnap is: {e}"))?;
        Ok(Target {
            argv: vec![
                me.to_string_lossy().into_owned(),
                "--config".to_owned(),
                config.source.to_string_lossy().into_owned(),
                "receive".to_owned(),
                "--pool".to_owned(),
                pool.to_owned(),
            ],
            name: pool.to_owned(),
        })
    }

    /// Streams `replica` from this target (`--send`) into `into` (`receive --as NAME` here):
    /// the two ends run as two processes joined by a pipe. Gives what the receiving end said.
    ///
    /// # Errors
    /// Either end failed; with what each said.
    pub fn send_into(
        &self,
        replica: &str,
        into: &Target,
        name: &str,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<String, String> {
        let mut from = self
            .command(&["--send".to_owned(), replica.to_owned()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: cannot start its transport: {e}", self.name))?;
        let from_err = drain(from.stderr.take(), MESSAGE_BYTES);
        let pipe = from.stdout.take().ok_or("no pipe from the sending end")?;
        crate::replicate::transfer::widen_pipe(&pipe);
        let receiving = into
            .command(&["--as".to_owned(), name.to_owned()])
            .stdin(Stdio::from(pipe))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut receiving = match receiving {
            Ok(c) => c,
            Err(e) => {
                kill_group(&mut from);
                let _ = from.wait();
                return Err(format!("cannot start `{}`: {e}", into.argv[0]));
            }
        };
        let into_out = drain(receiving.stdout.take(), MESSAGE_BYTES);
        let into_err = drain(receiving.stderr.take(), MESSAGE_BYTES);
        // Both ends run in groups of their own (no terminal's Ctrl-C reaches them): a signal
        // to lvsnap stops them, and the receiving end removes what it began.
        let got = loop {
            match receiving.try_wait() {
                Ok(Some(s)) => break s.success(),
                Err(_) => break false,
                Ok(None) if cancel.load(Ordering::Relaxed) => {
                    kill_group(&mut from);
                    let _ = receiving.wait();
                    return Err(format!(
                        "interrupted; the new volume {name} was not made (the next receive into its pool removes what was begun)"
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let sent = from.wait().is_ok_and(|s| s.success());
        let said = |d: Drained| d.join().map(|(t, _)| last_lines(&t)).unwrap_or_default();
        let from_said = said(from_err);
        let into_said = [said(into_out), said(into_err)]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        match (sent, got) {
            (true, true) => Ok(into_said),
            (false, _) => Err(format!(
                "{} could not send {replica}: {from_said}{}",
                self.name,
                if into_said.is_empty() {
                    String::new()
                } else {
                    format!("; here: {into_said}")
                }
            )),
            (true, false) => Err(into_said),
        }
    }

    fn command(&self, extra: &[String]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..])
            .args(extra)
            .env_clear()
            .envs(crate::tools::child_env())
            // A group of its own: a transport that forks (sudo, sh -c, timeout) is stopped
            // whole, so no child of it keeps a pipe open after lvsnap gave up.
            .process_group(0);
        c
    }

    /// Runs a request that reads nothing, for at most `limit`; gives its standard output.
    fn request_within(&self, extra: &[String], limit: Option<Duration>) -> Result<String, String> {
        let mut child = self
            .command(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: cannot start its transport: {e}", self.name))?;
        let out = drain(child.stdout.take(), ANSWER_BYTES);
        let err = drain(child.stderr.take(), MESSAGE_BYTES);
        let status = wait_within(&mut child, limit);
        let (out, too_long) = out.join().unwrap_or_default();
        let (err, _) = err.join().unwrap_or_default();
        let what = extra.first().map_or("", String::as_str);
        match status {
            None => Err(format!(
                "{}: `receive {what}` did not answer within {} s, and was stopped",
                self.name,
                limit.unwrap_or_default().as_secs()
            )),
            Some(_) if too_long => Err(format!(
                "{}: `receive {what}` answered more than {} MiB",
                self.name,
                ANSWER_BYTES >> 20
            )),
            Some(s) if s.success() => Ok(String::from_utf8_lossy(&out).into_owned()),
            Some(s) => Err(format!(
                "{}: `receive {what}` failed ({s}): {}",
                self.name,
                last_lines(&err)
            )),
        }
    }

    fn request(&self, extra: &[String]) -> Result<String, String> {
        self.request_within(extra, Some(REQUEST_TIMEOUT))
    }

    /// The replicas the target pool holds.
    ///
    /// # Errors
    /// The target could not be reached or answered something unreadable.
    pub fn list(&self) -> Result<Listing, String> {
        let text = self.request(&["--list".to_owned()])?;
        let mut listing: Listing = serde_json::from_str(text.trim())
            .map_err(|e| format!("{}: its list of replicas is unreadable: {e}", self.name))?;
        let before = listing.replicas.len();
        listing.replicas.retain(Replica::is_plain);
        if listing.replicas.len() < before {
            tracing::warn!(target = %self.name, "{} replica(s) in the target's list have names or tags lvsnap does not give; left out", before - listing.replicas.len());
        }
        Ok(listing)
    }

    /// Removes replicas by name; the receiving end refuses its newest replica of each volume
    /// and anything that is not a replica.
    ///
    /// # Errors
    /// The target could not be reached, or refused one.
    pub fn remove(&self, names: &[String]) -> Result<String, String> {
        let mut extra = vec!["--remove".to_owned()];
        extra.extend(names.iter().cloned());
        self.request(&extra)
    }

    /// The SHA-256 of each range of a replica, hashed on the target.
    ///
    /// # Errors
    /// The target could not be reached, or refused.
    pub fn digests(&self, replica: &str) -> Result<crate::replicate::digest::Digests, String> {
        // As long as the hashing takes: a replica of a TiB reads for many minutes.
        let text = self.request_within(&["--digest".to_owned(), replica.to_owned()], None)?;
        serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "{}: its digests of {replica} are unreadable: {e}",
                self.name
            )
        })
    }

    /// Starts a receive: write the stream into [`Receiving::watch`] of the child's standard
    /// input, then [`Receiving::finish`]. A stream that moves no byte for [`STALL`] is given up.
    ///
    /// # Errors
    /// The receive command could not start.
    pub fn receive(&self) -> Result<Receiving, String> {
        let mut child = self
            .command(&[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: cannot start its transport: {e}", self.name))?;
        let out = drain(child.stdout.take(), MESSAGE_BYTES);
        let err = drain(child.stderr.take(), MESSAGE_BYTES);
        let progress = Arc::new(AtomicU64::new(0));
        let pid = child.id();
        let child = Arc::new(Mutex::new(Some(child)));
        let watchdog = {
            let (progress, child) = (progress.clone(), child.clone());
            std::thread::spawn(move || {
                let mut seen = (0, Instant::now());
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let mut held = child.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(c) = held.as_mut() else { return false };
                    if !matches!(c.try_wait(), Ok(None)) {
                        return false;
                    }
                    let now = progress.load(Ordering::Relaxed);
                    if now != seen.0 {
                        seen = (now, Instant::now());
                    } else if seen.1.elapsed() >= STALL {
                        kill_group(c);
                        return true;
                    }
                }
            })
        };
        Ok(Receiving {
            child,
            pid,
            progress,
            watchdog: Some(watchdog),
            out: Some(out),
            err: Some(err),
        })
    }
}

/// Stops a child lvsnap started and everything in its process group.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads (it
        // was started with a group of its own); no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// The kept bytes of a pipe and whether there was more, once it ended.
struct Drained(std::sync::mpsc::Receiver<(Vec<u8>, bool)>);

impl Drained {
    /// What the pipe carried; empty if it is still open a few seconds after its process ended
    /// (something that escaped the process group holds it).
    fn join(self) -> Result<(Vec<u8>, bool), ()> {
        self.0.recv_timeout(Duration::from_secs(5)).map_err(|_| ())
    }
}

/// Reads a pipe to its end in a thread, keeping at most `cap` bytes (and whether there was
/// more): the other end never blocks on a full pipe, and never fills memory.
fn drain<R: Read + Send + 'static>(pipe: Option<R>, cap: usize) -> Drained {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_capped(pipe, cap));
    });
    Drained(rx)
}

fn read_capped<R: Read>(pipe: Option<R>, cap: usize) -> (Vec<u8>, bool) {
    {
        let Some(mut pipe) = pipe else {
            return (Vec::new(), false);
        };
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut more = false;
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return (kept, more),
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    more |= n > room;
                }
            }
        }
    }
}

/// Waits for `child` for at most `limit` (forever without one); kills it past the limit.
fn wait_within(child: &mut Child, limit: Option<Duration>) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Err(_) => return None,
            Ok(None) => {}
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            kill_group(child);
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A receive in progress.
pub struct Receiving {
    child: Arc<Mutex<Option<Child>>>,
    pid: u32,
    progress: Arc<AtomicU64>,
    watchdog: Option<std::thread::JoinHandle<bool>>,
    out: Option<Drained>,
    err: Option<Drained>,
}

/// The stream's way into a receive: counts what moves, for the watchdog.
pub struct Watched<W> {
    inner: W,
    progress: Arc<AtomicU64>,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Receiving {
    /// The child's standard input, counted.
    ///
    /// # Errors
    /// The pipe was taken already.
    pub fn stdin(&self) -> Result<Watched<std::process::ChildStdin>, String> {
        let stdin = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|c| c.stdin.take())
            .ok_or("no pipe to the receiving end")?;
        crate::replicate::transfer::widen_pipe(&stdin);
        Ok(Watched {
            inner: stdin,
            progress: self.progress.clone(),
        })
    }

    /// Waits for the receive to end (for at most [`FINISH_TIMEOUT`] once the stream is
    /// written: the receiving end syncs, may wait for its lock, and makes the replica); gives
    /// what it said, and whether it succeeded.
    pub fn finish(mut self) -> (bool, String) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let stalled = self
            .watchdog
            .take()
            .is_some_and(|w| w.join().unwrap_or(false));
        let ok = child.is_some_and(|mut c| {
            drop(c.stdin.take());
            wait_within(&mut c, Some(FINISH_TIMEOUT)).is_some_and(|s| s.success())
        });
        let text = |d: Option<Drained>| {
            d.and_then(|d| d.join().ok())
                .map(|(t, _)| last_lines(&t))
                .unwrap_or_default()
        };
        let (out, err) = (text(self.out.take()), text(self.err.take()));
        let mut said = [out, err]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        if stalled {
            said =
                format!(
                "the stream moved no byte for {} s, so the receiving end (pid {}) was stopped{}",
                STALL.as_secs(),
                self.pid,
                if said.is_empty() { String::new() } else { format!("; it said: {said}") }
            );
        }
        (ok, said)
    }
}

/// The end of a program's messages, enough to say why it failed, without control characters
/// (the other end's words reach terminals, logs and the catalog).
fn last_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<String> = text.trim().lines().map(crate::names::printable).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}
