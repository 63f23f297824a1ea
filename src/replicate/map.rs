//! A thin volume's block map, as the pool's metadata holds it, and what changed between two.
//!
//! `thin_dump` (thin-provisioning-tools) prints a device's mappings from a reserved metadata
//! snapshot. Two thin snapshots of one origin share a data block exactly where their content
//! is the same: a write to a shared block goes to a new one, and a block one of them still
//! references is never handed out again. So comparing data block numbers, virtual block by
//! virtual block, finds every block that changed — without reading either volume. lvsnap reads
//! the maps with `thin_dump` and compares them itself rather than running `thin_delta`, whose
//! 0.9 comparison stops at the end of the shorter map and drops the ranges left over there.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// `len` blocks mapped from virtual block `virt` onwards to data blocks from `data` onwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub virt: u64,
    pub data: u64,
    pub len: u64,
}

impl Run {
    fn end(&self) -> u64 {
        self.virt + self.len
    }
}

/// One thin device's mappings, sorted by virtual block, none overlapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMap {
    /// The pool's block size in bytes.
    pub block_bytes: u64,
    pub runs: Vec<Run>,
}

impl BlockMap {
    /// Only the blocks of a volume of `size` bytes: the pool may still map blocks past the end
    /// of a volume that was shrunk, which are not its content.
    #[must_use]
    pub fn clip(mut self, size: u64) -> Self {
        let blocks = size.div_ceil(self.block_bytes.max(1));
        self.runs.retain(|r| r.virt < blocks);
        if let Some(last) = self.runs.last_mut() {
            last.len = last.len.min(blocks - last.virt);
        }
        self
    }
}

/// What a range of blocks needs on the side that holds the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New content: read it from the new snapshot and write it.
    Write,
    /// Mapped in the base, unmapped now: reads as zeros.
    Discard,
}

/// `len` blocks from block `begin` that need `change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub begin: u64,
    pub len: u64,
    pub change: Change,
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("thin_dump's output is not the XML lvsnap reads: {0}")]
    Xml(String),
    #[error("thin_dump's output has no device {0}: the thin volume is not in this pool's metadata snapshot")]
    NoDevice(u64),
    #[error("thin_dump's output maps virtual block {0} twice")]
    Overlap(u64),
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<u64, MapError> {
    let a = e
        .try_get_attribute(name)
        .map_err(|err| MapError::Xml(err.to_string()))?
        .ok_or_else(|| {
            MapError::Xml(format!(
                "<{}> has no {name}",
                String::from_utf8_lossy(e.name().as_ref())
            ))
        })?;
    let v = a
        .unescape_value()
        .map_err(|err| MapError::Xml(err.to_string()))?;
    v.parse()
        .map_err(|_| MapError::Xml(format!("{name}=\"{v}\" is not a number")))
}

/// Reads device `dev_id`'s map from `thin_dump` XML.
///
/// # Errors
/// The XML is malformed, lacks the device, or maps a block twice.
pub fn parse_dump(xml: &str, dev_id: u64) -> Result<BlockMap, MapError> {
    let mut reader = Reader::from_str(xml);
    let mut block_bytes = None;
    let mut inside = false;
    let mut found = false;
    let mut runs = Vec::new();
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| MapError::Xml(format!("at byte {}: {e}", reader.error_position())))?;
        match ev {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                // In 512-byte sectors.
                b"superblock" => {
                    block_bytes = Some(
                        attr(&e, "data_block_size")?
                            .checked_mul(512)
                            .filter(|b| *b > 0)
                            .ok_or_else(|| {
                                MapError::Xml("data_block_size is 0 or too large".into())
                            })?,
                    );
                }
                b"device" => {
                    inside = attr(&e, "dev_id")? == dev_id;
                    found |= inside;
                }
                b"range_mapping" if inside => {
                    let run = Run {
                        virt: attr(&e, "origin_begin")?,
                        data: attr(&e, "data_begin")?,
                        len: attr(&e, "length")?,
                    };
                    if run.len == 0
                        || run.virt.checked_add(run.len).is_none()
                        || run.data.checked_add(run.len).is_none()
                    {
                        return Err(MapError::Xml(format!(
                            "a mapping of {} blocks at block {}",
                            run.len, run.virt
                        )));
                    }
                    runs.push(run);
                }
                b"single_mapping" if inside => runs.push(Run {
                    virt: attr(&e, "origin_block")?,
                    data: attr(&e, "data_block")?,
                    len: 1,
                }),
                b"range_mapping" | b"single_mapping" => {}
                // Anything else (thin-provisioning-tools 1.x's shared `def`/`ref` leaves, say)
                // could hold mappings lvsnap would miss: refused rather than a short map.
                other => {
                    return Err(MapError::Xml(format!(
                        "unexpected <{}>",
                        String::from_utf8_lossy(other)
                    )))
                }
            },
            Event::End(e) if e.name().as_ref() == b"device" => inside = false,
            Event::Eof => break,
            _ => {}
        }
    }
    if !found {
        return Err(MapError::NoDevice(dev_id));
    }
    let block_bytes =
        block_bytes.ok_or_else(|| MapError::Xml("no <superblock> with data_block_size".into()))?;
    runs.sort_by_key(|r| r.virt);
    for w in runs.windows(2) {
        if w[0].end() > w[1].virt {
            return Err(MapError::Overlap(w[1].virt));
        }
    }
    Ok(BlockMap { block_bytes, runs })
}

/// The data block `virt` maps to in `runs` at or after index `*at` (which it advances), and
/// how many blocks from `virt` on share that answer (mapped on, or unmapped until the next
/// run; `u64::MAX` past the last run).
fn lookup(runs: &[Run], at: &mut usize, virt: u64) -> (Option<u64>, u64) {
    while *at < runs.len() && runs[*at].end() <= virt {
        *at += 1;
    }
    match runs.get(*at) {
        Some(r) if r.virt <= virt => (Some(r.data + (virt - r.virt)), r.end() - virt),
        Some(r) => (None, r.virt - virt),
        None => (None, u64::MAX),
    }
}

/// What turns a copy of `base` into a copy of `new`: the blocks whose content differs (or
/// that `new` maps and `base` does not), and the blocks `base` maps and `new` no longer
/// does. Without a base, every block `new` maps. Adjacent extents of one kind are merged.
pub fn diff(base: Option<&[Run]>, new: &[Run]) -> Vec<Extent> {
    let base = base.unwrap_or(&[]);
    let end = base
        .last()
        .map_or(0, Run::end)
        .max(new.last().map_or(0, Run::end));
    let mut out: Vec<Extent> = Vec::new();
    let (mut bi, mut ni) = (0, 0);
    let mut virt = 0;
    while virt < end {
        let (b, blen) = lookup(base, &mut bi, virt);
        let (n, nlen) = lookup(new, &mut ni, virt);
        let len = blen.min(nlen).min(end - virt);
        let change = match (b, n) {
            (_, Some(n)) if b != Some(n) => Some(Change::Write),
            (Some(_), None) => Some(Change::Discard),
            _ => None,
        };
        if let Some(change) = change {
            match out.last_mut() {
                Some(last) if last.change == change && last.begin + last.len == virt => {
                    last.len += len;
                }
                _ => out.push(Extent {
                    begin: virt,
                    len,
                    change,
                }),
            }
        }
        virt += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DUMP: &str = r#"<superblock uuid="" time="3" transaction="5" flags="0" version="2" data_block_size="128" nr_data_blocks="4096">
  <device dev_id="1" mapped_blocks="20" transaction="0" creation_time="0" snap_time="2">
    <range_mapping origin_begin="0" data_begin="0" length="16" time="0"/>
    <single_mapping origin_block="20" data_block="40" time="1"/>
  </device>
  <device dev_id="2" mapped_blocks="3" transaction="1" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="2" time="0"/>
    <single_mapping origin_block="7" data_block="30" time="1"/>
  </device>
</superblock>
"#;

    #[test]
    fn a_device_is_read_from_thin_dump_with_the_pool_block_size() {
        let map = parse_dump(DUMP, 2).unwrap();
        assert_eq!(map.block_bytes, 64 * 1024);
        assert_eq!(
            map.runs,
            vec![
                Run {
                    virt: 0,
                    data: 0,
                    len: 2
                },
                Run {
                    virt: 7,
                    data: 30,
                    len: 1
                },
            ]
        );
        assert_eq!(parse_dump(DUMP, 1).unwrap().runs.len(), 2);
        assert!(matches!(parse_dump(DUMP, 9), Err(MapError::NoDevice(9))));
    }

    #[test]
    fn malformed_dumps_are_refused_with_what_is_wrong() {
        let bad = DUMP.replace(r#"data_begin="30""#, r#"data_begin="x""#);
        let bad = bad.replace(r#"data_block="30""#, r#"data_block="x""#);
        let err = parse_dump(&bad, 2).unwrap_err().to_string();
        assert!(err.contains(r#"data_block="x" is not a number"#), "{err}");
        let shared = DUMP.replace(
            "<single_mapping origin_block=\"7\"",
            "<ref name=\"x\"/><single_mapping origin_block=\"7\"",
        );
        let err = parse_dump(&shared, 2).unwrap_err().to_string();
        assert!(err.contains("unexpected <ref>"), "{err}");
        let twice = DUMP.replace(r#"origin_block="7""#, r#"origin_block="1""#);
        assert!(matches!(parse_dump(&twice, 2), Err(MapError::Overlap(1))));
        assert!(parse_dump("<superblock", 1).is_err());
    }

    #[test]
    fn a_map_clipped_to_its_volume_drops_blocks_past_the_end() {
        let map = BlockMap {
            block_bytes: 65536,
            runs: vec![
                Run {
                    virt: 0,
                    data: 0,
                    len: 4,
                },
                Run {
                    virt: 6,
                    data: 50,
                    len: 10,
                },
                Run {
                    virt: 20,
                    data: 90,
                    len: 1,
                },
            ],
        };
        // 8 blocks and a half: block 8 still holds the volume's last bytes.
        let clipped = map.clip(8 * 65536 + 4096);
        assert_eq!(
            clipped.runs,
            vec![
                Run {
                    virt: 0,
                    data: 0,
                    len: 4
                },
                Run {
                    virt: 6,
                    data: 50,
                    len: 3
                }
            ]
        );
    }

    #[test]
    fn the_difference_names_writes_and_discards_by_block() {
        let base = [
            Run {
                virt: 0,
                data: 100,
                len: 10,
            },
            Run {
                virt: 20,
                data: 200,
                len: 5,
            },
        ];
        let new = [
            Run {
                virt: 0,
                data: 100,
                len: 4,
            },
            Run {
                virt: 4,
                data: 300,
                len: 2,
            },
            Run {
                virt: 6,
                data: 106,
                len: 4,
            },
            Run {
                virt: 30,
                data: 400,
                len: 1,
            },
        ];
        let w = |begin, len| Extent {
            begin,
            len,
            change: Change::Write,
        };
        let d = |begin, len| Extent {
            begin,
            len,
            change: Change::Discard,
        };
        assert_eq!(diff(Some(&base), &new), vec![w(4, 2), d(20, 5), w(30, 1)]);
        assert_eq!(diff(None, &new), vec![w(0, 10), w(30, 1)]);
        assert_eq!(diff(Some(&base), &base), vec![]);
    }

    /// Block-level images: `None` is unmapped (reads as zeros), `Some(d)` the content of data
    /// block `d`.
    fn runs_of(image: &[Option<u64>]) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for (v, d) in image.iter().enumerate() {
            let Some(d) = *d else { continue };
            let v = v as u64;
            match runs.last_mut() {
                Some(r) if r.end() == v && r.data + r.len == d => r.len += 1,
                _ => runs.push(Run {
                    virt: v,
                    data: d,
                    len: 1,
                }),
            }
        }
        runs
    }

    proptest! {
        #[test]
        fn applying_the_difference_to_the_base_gives_the_new_image(
            base in prop::collection::vec(prop::option::of(0u64..40), 0..60),
            ops in prop::collection::vec((0usize..80, 0u8..3), 0..40),
        ) {
            // Data blocks a snapshot of an origin could have: shared ones keep their number,
            // a rewrite gets a fresh one, a discard unmaps.
            let mut base = base;
            for (i, d) in base.iter_mut().enumerate() {
                *d = d.map(|x| x * 100 + i as u64);
            }
            let mut new = base.clone();
            let mut fresh = 10_000;
            for (at, op) in ops {
                if new.len() <= at { new.resize(at + 1, None); }
                match op {
                    0 => { new[at] = Some(fresh); fresh += 1; }
                    1 => new[at] = None,
                    _ => {}
                }
            }
            let extents = diff(Some(&runs_of(&base)), &runs_of(&new));
            let mut copy = base.clone();
            copy.resize(copy.len().max(new.len()), None);
            for e in &extents {
                for v in e.begin..e.begin + e.len {
                    let v = v as usize;
                    match e.change {
                        Change::Write => {
                            prop_assert!(new[v].is_some() && new[v] != base.get(v).copied().flatten());
                            copy[v] = new[v];
                        }
                        Change::Discard => {
                            prop_assert!(new.get(v).copied().flatten().is_none());
                            copy[v] = None;
                        }
                    }
                }
            }
            let mut want = new.clone();
            want.resize(copy.len(), None);
            prop_assert_eq!(copy, want);
            for w in extents.windows(2) {
                prop_assert!(w[0].begin + w[0].len <= w[1].begin);
            }
        }
    }
}
