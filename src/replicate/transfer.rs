//! Moving blocks: what a sender reads from a snapshot's device into a stream, and what a
//! receiver does with a verified stream's records.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::map::{Change, Extent};
use super::stream::{Record, StreamError, StreamReader, StreamWriter, Summary, MAX_DATA_RECORD};

/// Writes the `extents` (in blocks of `block_bytes`) of `device` into `out`: data read from the
/// device for writes, discards as such; nothing past `volume_size`. Data goes in records of at
/// most [`MAX_DATA_RECORD`]; `progress` hears the bytes read so far.
///
/// # Errors
/// The device could not be read, or the stream written.
pub fn send_extents<W: Write>(
    out: &mut StreamWriter<W>,
    device: &File,
    block_bytes: u64,
    extents: &[Extent],
    volume_size: u64,
    cancel: &AtomicBool,
    mut progress: impl FnMut(u64),
) -> Result<(), StreamError> {
    let mut buf = vec![0u8; MAX_DATA_RECORD as usize];
    let mut read = 0;
    for e in extents {
        let start = e.begin.saturating_mul(block_bytes).min(volume_size);
        let end = (e.begin.saturating_add(e.len))
            .saturating_mul(block_bytes)
            .min(volume_size);
        match e.change {
            Change::Discard if end > start => out.discard(start, end - start)?,
            Change::Discard => {}
            Change::Write => {
                let mut at = start;
                while at < end {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(StreamError::Interrupted);
                    }
                    let len = (end - at).min(MAX_DATA_RECORD) as usize;
                    device.read_exact_at(&mut buf[..len], at)?;
                    out.data(at, &buf[..len])?;
                    at += len as u64;
                    read += len as u64;
                    progress(read);
                }
            }
        }
    }
    Ok(())
}

/// The bytes of data [`send_extents`] sends for `extents`: what a stream's header declares.
pub fn data_bytes(extents: &[Extent], block_bytes: u64, volume_size: u64) -> u64 {
    extents
        .iter()
        .filter(|e| e.change == Change::Write)
        .map(|e| {
            let start = e.begin.saturating_mul(block_bytes).min(volume_size);
            let end = e
                .begin
                .saturating_add(e.len)
                .saturating_mul(block_bytes)
                .min(volume_size);
            end - start
        })
        .sum()
}

/// A pipe end read or written through `inner` that is given up on when it stays idle: each
/// read or write first waits for the descriptor to be ready, at most `idle`, and stops early on
/// `cancel` (a signal), where a plain read of a silent pipe would wait forever.
pub struct Patient<'a, T, F: AsFd> {
    pub inner: T,
    pub fd: F,
    pub idle: Duration,
    pub cancel: &'a AtomicBool,
}

impl<T, F: AsFd> Patient<'_, T, F> {
    fn wait(&self, ready: PollFlags) -> io::Result<()> {
        let start = Instant::now();
        let tick = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(io::Error::other("interrupted by a signal"));
            }
            let mut fds = [PollFd::new(&self.fd, ready)];
            match poll(&mut fds, Some(&tick)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            if start.elapsed() >= self.idle {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the other end moved no byte for {} s", self.idle.as_secs()),
                ));
            }
        }
    }
}

impl<T: Read, F: AsFd> Read for Patient<'_, T, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(PollFlags::IN)?;
        self.inner.read(buf)
    }
}

impl<T: Write, F: AsFd> Write for Patient<'_, T, F> {
    /// On a non-blocking descriptor (see [`NonBlocking`]): a blocking write of more than a
    /// pipe holds would wait for the reader whatever the poll said.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            self.wait(PollFlags::OUT)?;
            match self.inner.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A descriptor made non-blocking while this lives, blocking again after (the flag belongs
/// to the open file, which other processes may share).
pub struct NonBlocking<'a>(&'a File);

impl<'a> NonBlocking<'a> {
    /// # Errors
    /// The flag could not be set.
    pub fn set(file: &'a File) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(file, true)?;
        Ok(NonBlocking(file))
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        let _ = rustix::io::ioctl_fionbio(self.0, false);
    }
}

/// Where a receiver puts what a stream holds.
pub trait Sink {
    /// Writes `data` at `offset`.
    ///
    /// # Errors
    /// The write failed.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes `len` bytes from `offset` read as zeros.
    ///
    /// # Errors
    /// The range could not be cleared.
    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()>;

    /// Makes what was written durable.
    ///
    /// # Errors
    /// The flush failed.
    fn sync(&mut self) -> io::Result<()>;
}

/// A regular file (tests, and a stream kept as an image): zeros are holes punched in it.
pub struct FileSink<'a>(pub &'a File);

impl Sink for FileSink<'_> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }

    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        rustix::fs::fallocate(
            self.0,
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            offset,
            len,
        )
        .map_err(io::Error::from)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// A thin volume's block device. Zeros are discards where they cover whole blocks of the pool
/// (the blocks are unmapped and read as zeros, taking no space) and written zeros elsewhere:
/// dm-thin leaves a partly discarded block as it was.
pub struct DeviceSink<'a> {
    pub device: &'a File,
    /// The pool's block size in bytes.
    pub discard_block: u64,
    /// The most the writes may provision in the pool, in bytes: a write provisions (or
    /// unshares) every pool block it touches, however little of it the stream covers.
    pub budget: u64,
    /// What the writes so far may have provisioned.
    pub provisioned: u64,
}

const BLKDISCARD: libc::c_ulong = 0x1277;
const BLKSSZGET: libc::c_ulong = 0x1268;

/// Makes the writes to `device` direct (`O_DIRECT`) when its logical blocks are sectors: every
/// record is whole sectors at a sector's offset and its data aligned in memory ([`Block`]), so
/// the data goes to the device without a copy into the page cache and no write-back after —
/// in the test VM a buffered copy took 2.5-3.5 times as long as a direct one. With larger
/// logical blocks the writes stay buffered (a record of one sector could not be written direct,
/// and mixing both on one device could write back stale neighbours). Returns whether they are
/// direct.
///
/// [`Block`]: super::stream::Block
pub fn write_direct(device: &File) -> bool {
    use std::os::fd::AsRawFd;
    let fd = device.as_raw_fd();
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, valid for the call; F_GETFL and
    // F_SETFL take and return plain flags.
    unsafe {
        if libc::ioctl(fd, BLKSSZGET as _, &mut size) != 0 || size != 512 {
            return false;
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) == 0
    }
}

/// Widens the pipe `fd` is an end of, if it is one, to 1 MiB (from 64 KiB): a record then
/// passes in one write instead of sixteen, each a switch between sender and receiver. Best
/// effort: a pipe that stays narrow only costs time.
pub fn widen_pipe(fd: impl AsFd) {
    let is_pipe = rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    });
    if is_pipe {
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, MAX_DATA_RECORD as usize);
    }
}
const BLKZEROOUT: libc::c_ulong = 0x127f;

fn range_ioctl(device: &File, request: libc::c_ulong, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let range = [offset, len];
    // SAFETY: both requests read two u64s (start, length) from the pointer, which is valid
    // for the call.
    let r = unsafe { libc::ioctl(device.as_raw_fd(), request as _, range.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl DeviceSink<'_> {
    fn provision(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let b = self.discard_block.max(1);
        let span = ((offset + len).div_ceil(b) - offset / b) * b;
        self.provisioned = self.provisioned.saturating_add(span);
        if self.provisioned > self.budget {
            return Err(io::Error::other(format!(
                "the stream's writes would take more than the {} free in the pool",
                crate::units::format_size(self.budget)
            )));
        }
        Ok(())
    }

    fn zero_out(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.provision(offset, len)?;
        range_ioctl(self.device, BLKZEROOUT, offset, len)
    }
}

impl Sink for DeviceSink<'_> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.provision(offset, data.len() as u64)?;
        self.device.write_all_at(data, offset)
    }

    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let end = offset + len;
        let b = self.discard_block.max(1);
        let (inner_start, inner_end) = (offset.div_ceil(b) * b, end / b * b);
        if inner_start < inner_end {
            self.zero_out(offset, inner_start - offset)?;
            range_ioctl(
                self.device,
                BLKDISCARD,
                inner_start,
                inner_end - inner_start,
            )?;
            self.zero_out(inner_end, end - inner_end)
        } else {
            self.zero_out(offset, len)
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.device.sync_all()
    }
}

/// Applies every record of `stream` to `sink`, then syncs it. Records are applied as they
/// arrive, before the stream is known to be whole: the sink must be a scratch copy that is
/// kept only when this returns `Ok` (see `lvsnap receive`).
///
/// # Errors
/// The stream is cut short, damaged or malformed, or the sink failed.
pub fn apply<R: Read>(
    stream: &mut StreamReader<R>,
    sink: &mut dyn Sink,
    cancel: &AtomicBool,
) -> Result<Summary, StreamError> {
    while let Some(record) = stream.next_record()? {
        if cancel.load(Ordering::Relaxed) {
            return Err(StreamError::Interrupted);
        }
        match record {
            Record::Data { offset, data } => {
                sink.write_at(offset, &data)?;
                stream.recycle(data);
            }
            Record::Discard { offset, len } => sink.zero(offset, len)?,
        }
    }
    sink.sync()?;
    Ok(stream.summary().expect("the end was read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_pipe_is_given_up_on_and_a_signal_stops_the_wait() {
        let (r, mut w) = std::io::pipe().unwrap();
        let quiet = AtomicBool::new(false);
        let mut patient = Patient {
            inner: &r,
            fd: &r,
            idle: Duration::from_secs(1),
            cancel: &quiet,
        };
        w.write_all(b"abc").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(patient.read(&mut buf).unwrap(), 3);
        let start = Instant::now();
        let e = patient.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("moved no byte for 1 s"), "{e}");
        assert!(start.elapsed() >= Duration::from_secs(1));
        let signalled = AtomicBool::new(true);
        let mut stopped = Patient {
            inner: &r,
            fd: &r,
            idle: Duration::from_secs(60),
            cancel: &signalled,
        };
        let e = stopped.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("interrupted by a signal"), "{e}");
        drop(w);
        assert_eq!(patient.read(&mut buf).unwrap(), 0, "the end of the pipe");
    }

    #[test]
    fn a_reader_that_stops_midway_through_a_write_is_given_up_on() {
        let (r, w) = std::io::pipe().unwrap();
        let w = File::from(std::os::fd::OwnedFd::from(w));
        let quiet = AtomicBool::new(false);
        let start = Instant::now();
        {
            let _nonblocking = NonBlocking::set(&w).unwrap();
            let mut patient = Patient {
                inner: &w,
                fd: &w,
                idle: Duration::from_secs(1),
                cancel: &quiet,
            };
            // More than the pipe holds, and nobody reads.
            let e = patient.write_all(&vec![1u8; 4 << 20]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        }
        assert!(start.elapsed() < Duration::from_secs(30));
        // Blocking again afterwards: the flag is the open file's, shared with others.
        let flags = rustix::fs::fcntl_getfl(&w).unwrap();
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
        drop(r);
    }
    use crate::replicate::map::{diff, Run};
    use crate::replicate::stream::{Header, SnapshotId};

    const BLOCK: u64 = 64 * 1024;

    fn header(size: u64, base: bool) -> Header {
        let id = |n: &str| SnapshotId {
            name: n.into(),
            uuid: format!("uuid-{n}"),
            time: "2026-12-04T00:00:00Z".into(),
        };
        Header {
            volume: "vg0/raw".into(),
            volume_uuid: "v".into(),
            volume_size: size,
            base: base.then(|| id("base")),
            new: id("new"),
            block_size: BLOCK,
            data_bytes: 0,
            sender: "test".into(),
        }
    }

    fn image(dir: &std::path::Path, name: &str, size: u64, fill: impl Fn(u64) -> u8) -> File {
        let path = dir.join(name);
        let bytes: Vec<u8> = (0..size).map(&fill).collect();
        std::fs::write(&path, bytes).unwrap();
        File::options().read(true).write(true).open(path).unwrap()
    }

    fn contents(f: &File, size: u64) -> Vec<u8> {
        let mut v = vec![0u8; size as usize];
        f.read_exact_at(&mut v, 0).unwrap();
        v
    }

    #[test]
    fn an_increment_turns_a_copy_of_the_base_into_a_copy_of_the_new_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        // 40 blocks, the last one short: the volume's end is not a block boundary.
        let size = 39 * BLOCK + 4096;
        let base_of = |i: u64| (i / 4096 % 251) as u8 + 1;
        // The new snapshot: blocks 3-4 rewritten, 10-12 discarded (zeros), 20 newly written, and
        // the short last block rewritten.
        let changed = |i: u64| {
            let b = i / BLOCK;
            match b {
                3 | 4 | 20 | 39 => 0xAB,
                10..=12 => 0,
                _ => base_of(i),
            }
        };
        let new = image(dir.path(), "new", size, changed);
        let replica = image(dir.path(), "replica", size, base_of);
        let base_runs = [
            Run {
                virt: 0,
                data: 0,
                len: 20,
            },
            Run {
                virt: 21,
                data: 21,
                len: 19,
            },
        ];
        let new_runs = [
            Run {
                virt: 0,
                data: 0,
                len: 3,
            },
            Run {
                virt: 3,
                data: 100,
                len: 2,
            },
            Run {
                virt: 5,
                data: 5,
                len: 5,
            },
            Run {
                virt: 13,
                data: 13,
                len: 7,
            },
            Run {
                virt: 20,
                data: 120,
                len: 1,
            },
            Run {
                virt: 21,
                data: 21,
                len: 18,
            },
            Run {
                virt: 39,
                data: 139,
                len: 1,
            },
        ];
        let extents = diff(Some(&base_runs), &new_runs);
        let mut h = header(size, true);
        h.data_bytes = data_bytes(&extents, BLOCK, size);
        let mut w = StreamWriter::new(Vec::new(), &h).unwrap();
        let mut seen = 0;
        send_extents(
            &mut w,
            &new,
            BLOCK,
            &extents,
            size,
            &AtomicBool::new(false),
            |n| seen = n,
        )
        .unwrap();
        let (bytes, sent) = w.finish().unwrap();
        assert_eq!(seen, 3 * BLOCK + 4096, "only the written blocks are read");
        assert_eq!(sent.data_bytes, 3 * BLOCK + 4096);
        let mut reader = StreamReader::new(&bytes[..]).unwrap();
        let got = apply(
            &mut reader,
            &mut FileSink(&replica),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(got, sent);
        assert!(
            contents(&replica, size) == contents(&new, size),
            "the replica differs from the snapshot"
        );
    }

    #[test]
    fn writes_stop_before_they_provision_more_than_the_pool_has_free() {
        let dir = tempfile::tempdir().unwrap();
        let file = image(dir.path(), "target", 4 * BLOCK, |_| 0);
        let mut sink = DeviceSink {
            device: &file,
            discard_block: BLOCK,
            budget: 2 * BLOCK,
            provisioned: 0,
        };
        // 512 bytes provision a whole pool block: two such writes take the budget.
        sink.write_at(0, &[1; 512]).unwrap();
        sink.write_at(BLOCK + 512, &[1; 512]).unwrap();
        let err = sink.write_at(2 * BLOCK, &[1; 512]).unwrap_err().to_string();
        assert!(
            err.contains("would take more than the 128 KiB free"),
            "{err}"
        );
    }

    #[test]
    fn a_whole_stream_with_a_discard_is_refused() {
        let mut h = header(8 * BLOCK, false);
        h.data_bytes = 0;
        // Written as an increment would be, then given a whole stream's header.
        let mut inc = h.clone();
        inc.base = header(8 * BLOCK, true).base;
        let mut w = StreamWriter::new(Vec::new(), &inc).unwrap();
        w.discard(0, BLOCK).unwrap();
        let (bytes, _) = w.finish().unwrap();
        let mut w = StreamWriter::new(Vec::new(), &h).unwrap();
        w.discard(0, BLOCK).unwrap();
        let (whole, _) = w.finish().unwrap();
        let mut ok = StreamReader::new(&bytes[..]).unwrap();
        assert!(ok.next_record().unwrap().is_some());
        let mut bad = StreamReader::new(&whole[..]).unwrap();
        let err = bad.next_record().unwrap_err().to_string();
        assert!(err.contains("a discard in a whole stream"), "{err}");
    }

    #[test]
    fn a_stream_cut_short_fails_before_its_end_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let size = 8 * BLOCK;
        let new = image(dir.path(), "new", size, |i| (i % 7) as u8);
        let runs = [Run {
            virt: 0,
            data: 0,
            len: 8,
        }];
        let mut h = header(size, false);
        h.data_bytes = size;
        let mut w = StreamWriter::new(Vec::new(), &h).unwrap();
        send_extents(
            &mut w,
            &new,
            BLOCK,
            &diff(None, &runs),
            size,
            &AtomicBool::new(false),
            |_| (),
        )
        .unwrap();
        let (bytes, _) = w.finish().unwrap();
        let target = image(dir.path(), "target", size, |_| 0);
        let mut reader = StreamReader::new(&bytes[..bytes.len() - 1]).unwrap();
        let err = apply(&mut reader, &mut FileSink(&target), &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(err, StreamError::Truncated(_)), "{err}");
    }
}
