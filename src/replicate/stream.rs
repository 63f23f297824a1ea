//! The replication stream: what `lvsnap send` writes and `lvsnap receive` reads.
//!
//! Versioned and self-checking, so that a receiver never makes a replica of a stream that was
//! cut short, damaged, reordered or meant for another base:
//!
//! ```text
//! "LVSNAPRS"  u32 version  u32 header length  header (JSON)  digest of all before it
//! records, each: u8 kind, u64 offset, u64 length, [data], digest of the record before it
//!   kind 1: `length` bytes of data follow;  kind 2: the range reads as zeros (discard)
//! end: u8 0xFF, u64 records, u64 data bytes, digest of the whole stream before it
//! ```
//!
//! The whole stream's digest covers the header and every record's head and digest (which
//! covers the record's data), so each byte of data is hashed once on each side.
//!
//! The digests are XXH3-128 (version 2; version 1 used SHA-256). They catch a stream that was
//! damaged, cut or spliced on its way, which is what they are for: they cannot keep a sender
//! from sending what it likes, whatever the hash, and the transport (ssh) authenticates the
//! stream. SHA-256 cost the sender and the receiver as much time as the copy itself
//! (BENCHMARKS.md, "Replication"); `lvsnap verify --replica` still compares SHA-256 of both
//! volumes.
//!
//! All integers little-endian; offsets and lengths in bytes, multiples of 512, ranges in
//! increasing order, none overlapping, within the volume; data records at most
//! [`MAX_DATA_RECORD`] long. Nothing may follow the end.

use std::io::{self, Read, Write};

use aligned_vec::{AVec, ConstAlign};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

pub const MAGIC: &[u8; 8] = b"LVSNAPRS";
pub const VERSION: u32 = 2;
/// The bytes of each digest.
const DIGEST: usize = 16;
/// A sender splits longer ranges; a receiver holds at most one record in memory.
pub const MAX_DATA_RECORD: u64 = 1 << 20;
const MAX_HEADER: u32 = 64 * 1024;
const SECTOR: u64 = 512;
const DATA: u8 = 1;
const DISCARD: u8 = 2;
const END: u8 = 0xFF;

/// A snapshot as both sides name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotId {
    pub name: String,
    pub uuid: String,
    /// The snapshot's time (RFC 3339, UTC): what retention ranks it by on both sides.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The source volume, `VG/LV`, and its LVM UUID.
    pub volume: String,
    pub volume_uuid: String,
    /// The volume's size when `new` was taken, in bytes.
    pub volume_size: u64,
    /// The replica this stream applies to; `None` for a full copy.
    pub base: Option<SnapshotId>,
    /// The snapshot this stream makes a replica of.
    pub new: SnapshotId,
    /// The source pool's block size in bytes: data and discards come in whole blocks of it
    /// (but at the volume's end).
    pub block_size: u64,
    /// The bytes of data the stream carries, declared up front so that a receiver can refuse
    /// one its pool has no room for before writing anything.
    pub data_bytes: u64,
    /// The stream's sender, for messages: `lvsnap VERSION on HOST`.
    pub sender: String,
}

/// A data record's bytes, in memory aligned for direct I/O (`O_DIRECT` writes take them
/// without a copy into the page cache).
pub type Block = AVec<u8, ConstAlign<4096>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Data { offset: u64, data: Block },
    Discard { offset: u64, len: u64 },
}

/// Totals of a complete stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub data_bytes: u64,
    /// The stream's own digest: recorded with the replica, it names the content it received.
    pub digest: [u8; DIGEST],
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the stream could not be read or written: {0}")]
    Io(#[from] io::Error),
    #[error("the stream ends early ({0}): the sender stopped or the transport broke; nothing was made of it")]
    Truncated(&'static str),
    #[error("this is not an lvsnap replication stream (it does not start with {MAGIC:?})")]
    NotAStream,
    #[error("the stream is version {0}; this lvsnap reads version {VERSION}: use the same lvsnap release on both sides")]
    Version(u32),
    #[error("the stream's header is damaged: {0}")]
    Header(String),
    #[error("the stream is damaged at {0}: its digest does not match")]
    Digest(String),
    #[error("the stream is malformed at {0}")]
    Malformed(String),
    #[error("interrupted by a signal")]
    Interrupted,
}

/// Writes a stream; [`StreamWriter::finish`] writes its end. A writer dropped unfinished
/// leaves a stream every reader refuses.
pub struct StreamWriter<W: Write> {
    out: W,
    whole: Xxh3,
    declared: u64,
    volume_size: u64,
    next: u64,
    records: u64,
    data_bytes: u64,
}

impl<W: Write> StreamWriter<W> {
    /// Writes the header.
    ///
    /// # Errors
    /// The header does not fit, or writing failed.
    pub fn new(mut out: W, header: &Header) -> Result<Self, StreamError> {
        let json = serde_json::to_vec(header).map_err(|e| StreamError::Header(e.to_string()))?;
        let len = u32::try_from(json.len())
            .ok()
            .filter(|l| *l <= MAX_HEADER)
            .ok_or_else(|| StreamError::Header(format!("{} bytes is too long", json.len())))?;
        let mut head = Vec::with_capacity(16 + json.len() + DIGEST);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&len.to_le_bytes());
        head.extend_from_slice(&json);
        let digest = xxh3_128(&head).to_le_bytes();
        head.extend_from_slice(&digest);
        out.write_all(&head)?;
        let mut whole = Xxh3::new();
        whole.update(&head);
        Ok(StreamWriter {
            out,
            whole,
            declared: header.data_bytes,
            volume_size: header.volume_size,
            next: 0,
            records: 0,
            data_bytes: 0,
        })
    }

    fn record(&mut self, kind: u8, offset: u64, len: u64, data: &[u8]) -> Result<(), StreamError> {
        check_range(offset, len, self.next, self.volume_size, kind == DATA)
            .map_err(StreamError::Malformed)?;
        if kind == DATA && self.data_bytes + len > self.declared {
            return Err(StreamError::Malformed(format!(
                "the record at byte {offset} of the volume: more data than the {} bytes declared",
                self.declared
            )));
        }
        let mut head = [0u8; 17];
        head[0] = kind;
        head[1..9].copy_from_slice(&offset.to_le_bytes());
        head[9..17].copy_from_slice(&len.to_le_bytes());
        let digest = record_digest(&head, data);
        for part in [&head[..], data, &digest[..]] {
            self.out.write_all(part)?;
        }
        // The record's digest stands for its data: each byte is hashed once on each side.
        self.whole.update(&head);
        self.whole.update(&digest);
        self.next = offset + len;
        self.records += 1;
        Ok(())
    }

    /// Writes `data` at `offset`.
    ///
    /// # Errors
    /// The range is out of order, unaligned, too long or past the volume; or writing failed.
    pub fn data(&mut self, offset: u64, data: &[u8]) -> Result<(), StreamError> {
        self.record(DATA, offset, data.len() as u64, data)?;
        self.data_bytes += data.len() as u64;
        Ok(())
    }

    /// Writes that `len` bytes from `offset` read as zeros.
    ///
    /// # Errors
    /// As for [`StreamWriter::data`].
    pub fn discard(&mut self, offset: u64, len: u64) -> Result<(), StreamError> {
        self.record(DISCARD, offset, len, &[])
    }

    /// Writes the end and flushes.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> Result<(W, Summary), StreamError> {
        if self.data_bytes != self.declared {
            return Err(StreamError::Malformed(format!(
                "the end: {} bytes of data written, {} declared",
                self.data_bytes, self.declared
            )));
        }
        let mut end = [0u8; 17];
        end[0] = END;
        end[1..9].copy_from_slice(&self.records.to_le_bytes());
        end[9..17].copy_from_slice(&self.data_bytes.to_le_bytes());
        self.whole.update(&end);
        let digest = self.whole.digest128().to_le_bytes();
        self.out.write_all(&end)?;
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok((
            self.out,
            Summary {
                records: self.records,
                data_bytes: self.data_bytes,
                digest,
            },
        ))
    }
}

fn record_digest(head: &[u8; 17], data: &[u8]) -> [u8; DIGEST] {
    let mut own = Xxh3::new();
    own.update(head);
    own.update(data);
    own.digest128().to_le_bytes()
}

fn check_range(offset: u64, len: u64, next: u64, size: u64, data: bool) -> Result<(), String> {
    let at = || format!("the record at byte {offset} of the volume");
    if !offset.is_multiple_of(SECTOR) || !len.is_multiple_of(SECTOR) || len == 0 {
        return Err(format!("{}: {len} bytes, not whole sectors", at()));
    }
    if offset < next {
        return Err(format!(
            "{}: it overlaps or precedes the one before (which ends at {next})",
            at()
        ));
    }
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(format!("{}: it ends past the volume's {size} bytes", at()));
    }
    if data && len > MAX_DATA_RECORD {
        return Err(format!(
            "{}: {len} bytes of data, more than {MAX_DATA_RECORD}",
            at()
        ));
    }
    Ok(())
}

/// Reads a stream, checking each record as it comes: [`StreamReader::next_record`] gives
/// nothing it has not verified, and the end only after the whole stream's digest matched.
pub struct StreamReader<R: Read> {
    input: R,
    whole: Xxh3,
    /// A data record's buffer given back by [`StreamReader::recycle`], for the next one.
    spare: Block,
    header: Header,
    next: u64,
    records: u64,
    data_bytes: u64,
    summary: Option<Summary>,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), StreamError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => StreamError::Truncated(what),
        _ => StreamError::Io(e),
    })
}

impl<R: Read> StreamReader<R> {
    /// Reads and checks the header.
    ///
    /// # Errors
    /// Not a stream, another version, or a damaged header.
    pub fn new(mut input: R) -> Result<Self, StreamError> {
        let mut fixed = [0u8; 16];
        read_exact(&mut input, &mut fixed, "in the header")?;
        if &fixed[..8] != MAGIC {
            return Err(StreamError::NotAStream);
        }
        let version = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(StreamError::Version(version));
        }
        let len = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes"));
        if len > MAX_HEADER {
            return Err(StreamError::Header(format!("{len} bytes is too long")));
        }
        let mut json = vec![0u8; len as usize];
        read_exact(&mut input, &mut json, "in the header")?;
        let mut digest = [0u8; DIGEST];
        read_exact(&mut input, &mut digest, "in the header")?;
        let mut whole = Xxh3::new();
        whole.update(&fixed);
        whole.update(&json);
        if whole.digest128().to_le_bytes() != digest {
            return Err(StreamError::Digest("the header".into()));
        }
        whole.update(&digest);
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| StreamError::Header(e.to_string()))?;
        Ok(StreamReader {
            input,
            whole,
            spare: Block::new(0),
            header,
            next: 0,
            records: 0,
            data_bytes: 0,
            summary: None,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next verified record, or `None` once the end was read and the stream proved whole
    /// (then [`StreamReader::summary`] has its totals).
    ///
    /// # Errors
    /// The stream is cut short, damaged, malformed, or has bytes after its end.
    pub fn next_record(&mut self) -> Result<Option<Record>, StreamError> {
        if self.summary.is_some() {
            return Ok(None);
        }
        let mut head = [0u8; 17];
        read_exact(
            &mut self.input,
            &mut head,
            "between records: no end was sent",
        )?;
        let a = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(head[9..17].try_into().expect("8 bytes"));
        match head[0] {
            END => {
                self.whole.update(&head);
                let want = self.whole.digest128().to_le_bytes();
                let mut digest = [0u8; DIGEST];
                read_exact(&mut self.input, &mut digest, "in the end record")?;
                if digest != want {
                    return Err(StreamError::Digest("the end: the whole stream".into()));
                }
                if (a, b) != (self.records, self.data_bytes) || b != self.header.data_bytes {
                    return Err(StreamError::Malformed(format!(
                        "the end: it counts {a} records and {b} bytes of data, the stream held {} and {}",
                        self.records, self.data_bytes
                    )));
                }
                let mut extra = [0u8; 1];
                let more = loop {
                    match self.input.read(&mut extra) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => break other?,
                    }
                };
                if more != 0 {
                    return Err(StreamError::Malformed("the end: bytes follow it".into()));
                }
                self.summary = Some(Summary {
                    records: a,
                    data_bytes: b,
                    digest,
                });
                Ok(None)
            }
            DISCARD if self.header.base.is_none() => Err(StreamError::Malformed(format!(
                "record {}: a discard in a whole stream (a new volume reads as zeros already)",
                self.records + 1
            ))),
            kind @ (DATA | DISCARD) => {
                let (offset, len) = (a, b);
                check_range(
                    offset,
                    len,
                    self.next,
                    self.header.volume_size,
                    kind == DATA,
                )
                .map_err(StreamError::Malformed)?;
                if kind == DATA && self.data_bytes + len > self.header.data_bytes {
                    return Err(StreamError::Malformed(format!(
                        "the record at byte {offset} of the volume: more data than the {} bytes the header declared",
                        self.header.data_bytes
                    )));
                }
                let mut data = Block::new(0);
                if kind == DATA {
                    // The last record's buffer: zeroed only where it grows.
                    data = std::mem::replace(&mut self.spare, Block::new(0));
                    data.resize(len as usize, 0);
                    read_exact(&mut self.input, &mut data, "in a data record")?;
                }
                let mut digest = [0u8; DIGEST];
                read_exact(&mut self.input, &mut digest, "in a record's digest")?;
                if record_digest(&head, &data) != digest {
                    return Err(StreamError::Digest(format!(
                        "the record at byte {offset} of the volume"
                    )));
                }
                self.whole.update(&head);
                self.whole.update(&digest);
                self.next = offset + len;
                self.records += 1;
                Ok(Some(if kind == DATA {
                    self.data_bytes += len;
                    Record::Data { offset, data }
                } else {
                    Record::Discard { offset, len }
                }))
            }
            other => Err(StreamError::Malformed(format!(
                "record {}: unknown kind {other:#04x}",
                self.records + 1
            ))),
        }
    }

    /// Gives a data record's buffer back, to be filled by the next one.
    pub fn recycle(&mut self, buf: Block) {
        self.spare = buf;
    }

    /// The totals, once the end was read.
    pub fn summary(&self) -> Option<Summary> {
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            volume: "vg0/db".into(),
            volume_uuid: "abc".into(),
            volume_size: 1 << 20,
            // An increment: it may hold discards.
            base: Some(SnapshotId {
                name: "db-lvsnap-20261203T000000Z".into(),
                uuid: "cba".into(),
                time: "2026-12-03T00:00:00Z".into(),
            }),
            new: SnapshotId {
                name: "db-lvsnap-20261204T000000Z".into(),
                uuid: "def".into(),
                time: "2026-12-04T00:00:00Z".into(),
            },
            block_size: 65536,
            data_bytes: 1536,
            sender: "lvsnap test".into(),
        }
    }

    fn sample() -> (Vec<u8>, Summary) {
        let mut w = StreamWriter::new(Vec::new(), &header()).unwrap();
        w.data(0, &[7u8; 1024]).unwrap();
        w.discard(4096, 8192).unwrap();
        w.data(65536, &[9u8; 512]).unwrap();
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, Summary), StreamError> {
        let mut r = StreamReader::new(bytes)?;
        let mut records = Vec::new();
        while let Some(rec) = r.next_record()? {
            records.push(rec);
        }
        Ok((records, r.summary().unwrap()))
    }

    #[test]
    fn a_stream_reads_back_as_written_with_its_totals_and_digest() {
        let (bytes, sent) = sample();
        let (records, got) = read_all(&bytes).unwrap();
        assert_eq!(
            records,
            vec![
                Record::Data {
                    offset: 0,
                    data: Block::from_slice(0, &[7; 1024])
                },
                Record::Discard {
                    offset: 4096,
                    len: 8192
                },
                Record::Data {
                    offset: 65536,
                    data: Block::from_slice(0, &[9; 512])
                },
            ]
        );
        assert_eq!(got, sent);
        assert_eq!((got.records, got.data_bytes), (3, 1536));
        assert_eq!(StreamReader::new(&bytes[..]).unwrap().header(), &header());
    }

    #[test]
    fn a_stream_cut_anywhere_is_refused() {
        let (bytes, _) = sample();
        for cut in 0..bytes.len() {
            let err = read_all(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, StreamError::Truncated(_)),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn any_changed_byte_is_found() {
        let (bytes, _) = sample();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(
                read_all(&bad).is_err(),
                "a flipped bit at byte {at} went unnoticed"
            );
        }
    }

    #[test]
    fn bytes_after_the_end_are_refused() {
        let (mut bytes, _) = sample();
        bytes.push(0);
        let err = read_all(&bytes).unwrap_err().to_string();
        assert!(err.contains("bytes follow it"), "{err}");
    }

    #[test]
    fn data_beyond_what_the_header_declared_is_refused() {
        let mut w = StreamWriter::new(Vec::new(), &header()).unwrap();
        w.data(0, &[1; 1536]).unwrap();
        let err = w.data(4096, &[1; 512]).unwrap_err().to_string();
        assert!(
            err.contains("more data than the 1536 bytes declared"),
            "{err}"
        );
        let mut short = StreamWriter::new(Vec::new(), &header()).unwrap();
        short.data(0, &[1; 512]).unwrap();
        let err = short.finish().unwrap_err().to_string();
        assert!(
            err.contains("512 bytes of data written, 1536 declared"),
            "{err}"
        );
    }

    #[test]
    fn a_writer_refuses_ranges_out_of_order_unaligned_or_past_the_volume() {
        let mut h = header();
        h.data_bytes = 1 << 30;
        let mut w = StreamWriter::new(Vec::new(), &h).unwrap();
        w.data(4096, &[1; 512]).unwrap();
        let err = w.data(0, &[1; 512]).unwrap_err().to_string();
        assert!(err.contains("overlaps or precedes"), "{err}");
        assert!(w.data(8192, &[1; 100]).is_err());
        let err = w.discard(1 << 20, 512).unwrap_err().to_string();
        assert!(err.contains("past the volume"), "{err}");
        assert!(w
            .data(8192, &vec![1; MAX_DATA_RECORD as usize + 512])
            .is_err());
    }

    #[test]
    fn another_version_or_format_is_named() {
        let (mut bytes, _) = sample();
        assert!(matches!(
            read_all(b"GIF89a and more bytes than a header"),
            Err(StreamError::NotAStream)
        ));
        // A stream of the first version (SHA-256 digests) from an older lvsnap.
        bytes[8] = 1;
        let err = read_all(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("version 1; this lvsnap reads version 2"),
            "{err}"
        );
    }
}
