//! SHA-256 of a block device range by range, the ranges hashed side by side: how a replica is
//! proven equal to its source snapshot, each side hashing its own device, and which ranges
//! differ when it is not.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The bytes one digest covers.
pub const RANGE_BYTES: u64 = 16 << 20;

/// A device's digests, as both sides of a verification report them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// The bytes hashed: the source volume's size.
    pub size: u64,
    pub range_bytes: u64,
    /// SHA-256 of each range, in order, hex.
    pub sha256: Vec<String>,
}

impl Digests {
    /// The byte ranges where `other` differs, `(offset, length)`; all of it if the sizes or
    /// range lengths differ.
    pub fn differences(&self, other: &Digests) -> Vec<(u64, u64)> {
        if self.size != other.size
            || self.range_bytes != other.range_bytes
            || self.sha256.len() != other.sha256.len()
        {
            return vec![(0, self.size.max(other.size))];
        }
        self.sha256
            .iter()
            .zip(&other.sha256)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| {
                let at = i as u64 * self.range_bytes;
                (at, self.range_bytes.min(self.size - at))
            })
            .collect()
    }
}

/// Hashes the first `size` bytes of `device` in ranges of [`RANGE_BYTES`], `threads` ranges at
/// a time.
///
/// # Errors
/// The device could not be read to `size`, or `cancel` was set.
pub fn digests(
    device: &File,
    size: u64,
    threads: usize,
    cancel: &AtomicBool,
) -> std::io::Result<Digests> {
    let count = size.div_ceil(RANGE_BYTES) as usize;
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<String>> = vec![None; count];
    let results: Vec<std::io::Result<Vec<(usize, String)>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, 8))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(mine);
                        }
                        if cancel.load(Ordering::Relaxed) {
                            return Err(std::io::Error::other("interrupted"));
                        }
                        let start = i as u64 * RANGE_BYTES;
                        let end = (start + RANGE_BYTES).min(size);
                        let mut h = Sha256::new();
                        let mut at = start;
                        while at < end {
                            let n = ((end - at) as usize).min(buf.len());
                            device.read_exact_at(&mut buf[..n], at)?;
                            h.update(&buf[..n]);
                            at += n as u64;
                        }
                        mine.push((i, hex(&h.finalize())));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for r in results {
        for (i, d) in r? {
            out[i] = Some(d);
        }
    }
    Ok(Digests {
        size,
        range_bytes: RANGE_BYTES,
        sha256: out.into_iter().map(Option::unwrap_or_default).collect(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How many ranges to hash at once: the machine's cores, at most 4 (more only queue on the
/// device).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_is_found_in_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev");
        let size = RANGE_BYTES * 2 + 4096;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let never = AtomicBool::new(false);
        let a = digests(&File::open(&p).unwrap(), size, 3, &never).unwrap();
        assert_eq!(a.sha256.len(), 3);
        let mut changed = data.clone();
        changed[(RANGE_BYTES * 2 + 10) as usize] ^= 1;
        std::fs::write(&p, &changed).unwrap();
        let b = digests(&File::open(&p).unwrap(), size, 2, &never).unwrap();
        assert_eq!(a.differences(&b), vec![(RANGE_BYTES * 2, 4096)]);
        assert_eq!(a.differences(&a), vec![]);
        let short = Digests {
            size: size - 512,
            ..b.clone()
        };
        assert_eq!(a.differences(&short), vec![(0, size)]);
    }
}
