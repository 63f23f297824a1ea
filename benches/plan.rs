//! Planning one group of 10k, 100k and 1M snapshots (one a minute) under a full policy.
//! Results are recorded in BENCHMARKS.md.

use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lvsnap::config::parse_str;
use lvsnap::plan::{plan_retention, Rules, SnapshotView};

const POLICY: &str = r#"
[policy.full]
volumes = ["vg0/home"]
schedule = "* * * * *"
timezone = "Europe/Berlin"
keep = { last = 10, hourly = 48, daily = 14, weekly = 8, monthly = 24, yearly = 5 }
max-remove-percent = 100
"#;

fn bench_plan(c: &mut Criterion) {
    let rules = Rules::from(&parse_str(POLICY, Path::new("bench.toml")).unwrap().policies[0]);
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut group = c.benchmark_group("plan_retention");
    group.sample_size(10);
    for n in [10_000usize, 100_000, 1_000_000] {
        let snapshots: Vec<SnapshotView> = (0..n)
            .map(|i| {
                SnapshotView::new(
                    format!("home-lvsnap-{i:08}"),
                    start + Duration::minutes(i as i64),
                )
            })
            .collect();
        let now = start + Duration::minutes(n as i64);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &snapshots, |b, s| {
            b.iter(|| plan_retention(now, &rules, s))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
