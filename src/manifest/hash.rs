//! Reading files' content: SHA-256 on every core with progress, and the byte-for-byte
//! comparison the backup proof uses while rsync copies.

use super::*;

/// Bytes hashed so far of a total known once the tree is walked.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

pub(crate) type Hashed = (PathBuf, u64, String);

/// Hashes the files on `workers` threads, taking the next file from a shared counter so that a
/// few large files do not leave a thread idle. Returns what was hashed and what failed.
pub(crate) fn hash_all(
    root: &Path,
    files: &[PathBuf],
    workers: usize,
    progress: Option<&Progress>,
) -> (Vec<Hashed>, Vec<(PathBuf, io::Error)>) {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Hashed>> = Mutex::new(Vec::with_capacity(files.len()));
    let failures: Mutex<Vec<(PathBuf, io::Error)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(rel) = files.get(i) else {
                        break;
                    };
                    match hash_file(&root.join(rel), &mut buf, progress) {
                        Ok((size, digest)) => {
                            results
                                .lock()
                                .expect("results")
                                .push((rel.clone(), size, digest));
                        }
                        Err(e) => failures.lock().expect("failures").push((rel.clone(), e)),
                    }
                }
            });
        }
    });
    let mut failed = failures.into_inner().expect("failures");
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    (results.into_inner().expect("results"), failed)
}

/// Opens a walked file for reading: never through a link put in its place since (a live origin
/// that `diff` compares with can change under it), never blocking on a fifo swapped in.
pub(crate) fn open_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Whether `written` holds exactly the bytes of `original`, both regular files (never a link,
/// a device or a fifo put in their place: those are not opened): `written`'s metadata as it
/// was before the comparison if so, `None` if they differ, `original` is missing, or either is
/// not a regular file. Writeback of `written` is started.
///
/// Comparing with the snapshot costs far less than hashing what was written (no digest to
/// compute) and proves as much, as long as the snapshot reads the same each time: it is
/// mounted read-only, and the manifest's digest is of it.
///
/// # Errors
/// `written` is not there (yet), or either file cannot be read.
pub fn same_content(
    written: &Path,
    original: &Path,
    bufs: (&mut [u8], &mut [u8]),
) -> io::Result<Option<fs::Metadata>> {
    let regular = |p: &Path| -> io::Result<Option<(fs::File, fs::Metadata)>> {
        if !fs::symlink_metadata(p)?.is_file() {
            return Ok(None);
        }
        let f = open_file(p)?;
        let m = f.metadata()?;
        Ok(m.is_file().then_some((f, m)))
    };
    let mut b = match regular(original) {
        Ok(Some((f, _))) => f,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some((mut a, before)) = regular(written)? else {
        return Ok(None);
    };
    if before.len() != b.metadata()?.len() {
        return Ok(None);
    }
    let (x, y) = bufs;
    loop {
        let n = a.read(x)?;
        if n == 0 {
            // The original must end here too.
            if b.read(&mut y[..1])? != 0 {
                return Ok(None);
            }
            break;
        }
        match b.read_exact(&mut y[..n]) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            r => r?,
        }
        if x[..n] != y[..n] {
            return Ok(None);
        }
    }
    // Its data starts for the disk now, not all at once at the final sync before the commit.
    // SAFETY: a plain syscall on a descriptor this function owns.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::sync_file_range(a.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
    Ok(Some(before))
}

pub(crate) fn hash_file(
    path: &Path,
    buf: &mut [u8],
    progress: Option<&Progress>,
) -> io::Result<(u64, String)> {
    hash_reader(&mut open_file(path)?, buf, progress)
}

/// Size and SHA-256 (hex) of everything `r` yields, read through `buf`.
///
/// # Errors
/// Reading failed.
pub fn hash_reader(
    r: &mut impl Read,
    buf: &mut [u8],
    progress: Option<&Progress>,
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = r.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Some(p) = progress {
            p.done.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    Ok((size, hex(&hasher.finalize())))
}

/// The SHA-256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
