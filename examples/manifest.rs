//! Hashes a tree into a manifest and prints the time taken: the manifest half of
//! benches/manifest-vs-sha256sum.sh.
//!
//!     cargo run --release --example manifest -- DIR WORKERS

use std::path::Path;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: manifest DIR WORKERS");
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let start = Instant::now();
    let m = lvsnap::manifest::Manifest::of_tree(Path::new(&dir), workers).expect("readable tree");
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = m
        .entries
        .values()
        .map(|e| match e.content {
            lvsnap::manifest::Content::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    println!(
        "{workers} worker(s): {} entries, {:.0} MiB in {secs:.2} s = {:.0} MiB/s",
        m.entries.len(),
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / secs
    );
}
