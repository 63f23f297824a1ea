//! An instant, stateful stand-in for LVM, for benchmarking lvsnap at scale on a machine
//! without device-mapper (`benches/scale.sh`). Never a test of what LVM does: the real-LVM
//! suite is that.
//!
//! Installed as `lvs`, `lvcreate`, `lvremove`, `lvextend`, `lvchange`, `lvconvert` and
//! `lvrename` (links to one binary
//! in a root-owned directory lvsnap's `tool-path` names), it keeps every logical volume as one
//! line of `lvs` JSON in `state.jsonl` next to the binary and answers:
//! - `lvs …`: the report of every line, whatever fields are asked for (lvsnap asks for all);
//! - `lvcreate --snapshot [--extents N] --name NAME [--addtag T]… VG/ORIGIN`;
//! - `lvremove --yes VG/NAME…`;
//! - `lvchange --addtag T / --deltag T VG/NAME`, anything else accepted and ignored;
//! - `lvextend`, `lvconvert`, `lvrename`: accepted (lvsnap finds every LVM tool at start).
//!
//! Each call appends `TOOL MICROSECONDS` (its own time from `main`) to `calls.log`, so a
//! benchmark can take the stand-in's time out of lvsnap's. Run as `lvm-standin seed …` it
//! writes a state and a policy file (see [`seed`]); as `lvm-standin noop` it does nothing (the
//! benchmark times it for the cost of starting a process).

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

const EXTENT: u64 = 4 << 20;
const VG_SIZE: u64 = 1 << 50;

fn main() {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    let tool = Path::new(&args[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = std::env::current_exe()
        .expect("own path")
        .parent()
        .expect("own directory")
        .to_owned();
    let state = dir.join("state.jsonl");
    let mut took = None;
    let code = match tool.as_str() {
        "lvs" => {
            let (code, ready) = lvs(&state, start);
            took = Some(ready);
            code
        }
        "lvcreate" => lvcreate(&state, &args[1..]),
        "lvremove" => lvremove(&state, &args[1..]),
        "lvchange" => lvchange(&state, &args[1..]),
        "lvextend" | "lvconvert" | "lvrename" => 0,
        _ => match args.get(1).map(String::as_str) {
            Some("seed") => seed(&dir, &args[2..]),
            Some("noop") => 0,
            _ => {
                eprintln!("usage: lvm-standin seed POLICIES SNAPSHOTS END [THIN-PERCENT] | noop");
                2
            }
        },
    };
    if matches!(
        tool.as_str(),
        "lvs" | "lvcreate" | "lvremove" | "lvchange" | "lvextend" | "lvconvert" | "lvrename"
    ) {
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("calls.log"))
            .expect("calls.log");
        let took = took.unwrap_or_else(|| start.elapsed().as_micros());
        writeln!(log, "{tool} {took}").expect("calls.log");
    }
    std::process::exit(code);
}

fn read_lines(state: &Path) -> Vec<String> {
    fs::read_to_string(state)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(state: &Path, lines: &[String]) {
    let tmp = state.with_extension("tmp");
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    fs::write(&tmp, text).expect("write state");
    fs::rename(&tmp, state).expect("rename state");
}

/// The key a line is found by: lvs prints name then VG group, in that order.
fn key(vg: &str, name: &str) -> String {
    format!("\"lv_name\":\"{name}\", \"vg_name\":\"{vg}\"")
}

/// The report, written once it is ready. The time logged stops before the write: waiting for
/// lvsnap to read the pipe is lvsnap's time, not the stand-in's.
fn lvs(state: &Path, start: Instant) -> (i32, u128) {
    let text = fs::read_to_string(state).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str("{\"report\":[{\"lv\":[\n");
    for (i, l) in text.lines().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(l);
    }
    out.push_str("\n]}]}\n");
    let ready = start.elapsed().as_micros();
    (
        std::io::stdout()
            .write_all(out.as_bytes())
            .map_or(1, |()| 0),
        ready,
    )
}

fn split_target(t: &str) -> (&str, &str) {
    t.split_once('/').unwrap_or(("", t))
}

/// One line in lvs's own layout (`", "` between fields), the fields in lvsnap's order.
fn line(fields: &[(&str, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "\"{k}\":{}", Value::String(v.clone()));
    }
    s.push('}');
    s
}

#[allow(clippy::too_many_arguments)]
fn lv_line(
    name: &str,
    vg: &str,
    origin: &str,
    pool: &str,
    time: i64,
    attr: &str,
    size: u64,
    tags: &str,
    role: &str,
) -> String {
    let thin_snap = attr.starts_with('V') && !origin.is_empty();
    line(&[
        ("lv_uuid", uuid()),
        ("lv_name", name.to_owned()),
        ("vg_name", vg.to_owned()),
        ("origin", origin.to_owned()),
        ("pool_lv", pool.to_owned()),
        ("lv_time", time.to_string()),
        ("lv_attr", attr.to_owned()),
        ("lv_size", size.to_string()),
        (
            "data_percent",
            if thin_snap { "" } else { "1.00" }.to_owned(),
        ),
        (
            "snap_percent",
            if thin_snap { "" } else { "1.00" }.to_owned(),
        ),
        (
            "metadata_percent",
            if attr.starts_with('t') { "2.00" } else { "" }.to_owned(),
        ),
        ("lv_tags", tags.to_owned()),
        ("lv_merging", String::new()),
        (
            "lv_skip_activation",
            if thin_snap { "skip activation" } else { "" }.to_owned(),
        ),
        ("lv_snapshot_invalid", String::new()),
        ("lv_device_open", String::new()),
        (
            "lv_active",
            if thin_snap { "" } else { "active" }.to_owned(),
        ),
        ("lv_layout", "linear".to_owned()),
        ("lv_role", role.to_owned()),
        ("vg_free", (VG_SIZE / 2).to_string()),
        ("vg_extent_size", EXTENT.to_string()),
        ("vg_size", VG_SIZE.to_string()),
    ])
}

fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 40)
        ^ N.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut x = seed;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % 62) as usize] as char
        })
        .collect()
}

/// The time in a snapshot's name (`…-lvsnap-YYYYmmddTHHMMSSZ`), as LVM would have recorded
/// it had the snapshot been taken then; the clock otherwise.
fn time_of(name: &str) -> i64 {
    name.rsplit_once("-lvsnap-")
        .and_then(|(_, s)| NaiveDateTime::parse_from_str(s.get(..16)?, "%Y%m%dT%H%M%S").ok())
        .map_or_else(|| Utc::now().timestamp(), |t| t.and_utc().timestamp())
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let pat = format!("\"{name}\":\"");
    line.find(&pat)
        .map(|i| &line[i + pat.len()..])
        .and_then(|r| r.split_once('"').map(|(v, _)| v))
        .unwrap_or("")
}

fn lvcreate(state: &Path, args: &[String]) -> i32 {
    let mut name = String::new();
    let mut tags = Vec::new();
    let mut extents = None;
    let mut target = String::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--name" | "-n" => name = it.next().cloned().unwrap_or_default(),
            "--addtag" => tags.extend(it.next().cloned()),
            "--extents" | "-l" => extents = it.next().and_then(|e| e.parse::<u64>().ok()),
            "--snapshot" | "-s" | "--yes" | "-y" | "-q" => {}
            other if other.starts_with('-') => {}
            other => target = other.to_owned(),
        }
    }
    let (vg, origin) = split_target(&target);
    let mut lines = read_lines(state);
    let Some(o) = lines.iter().find(|l| l.contains(&key(vg, origin))) else {
        eprintln!("  Failed to find logical volume \"{target}\"");
        return 5;
    };
    if lines.iter().any(|l| l.contains(&key(vg, &name))) {
        eprintln!("  Logical Volume \"{name}\" already exists in volume group \"{vg}\"");
        return 5;
    }
    let pool = field(o, "pool_lv").to_owned();
    let size: u64 = field(o, "lv_size").parse().unwrap_or(0);
    let new = if pool.is_empty() {
        lv_line(
            &name,
            vg,
            origin,
            "",
            time_of(&name),
            "swi-a-s---",
            extents.unwrap_or(1) * EXTENT,
            &tags.join(","),
            "public,snapshot,thicksnapshot",
        )
    } else {
        lv_line(
            &name,
            vg,
            origin,
            &pool,
            time_of(&name),
            "Vwi---tz-k",
            size,
            &tags.join(","),
            "public,snapshot,thinsnapshot",
        )
    };
    lines.push(new);
    write_lines(state, &lines);
    println!("  Logical volume \"{name}\" created.");
    0
}

fn lvremove(state: &Path, args: &[String]) -> i32 {
    let targets: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(|t| {
            let (vg, name) = split_target(t);
            key(vg, name)
        })
        .collect();
    let lines = read_lines(state);
    let before = lines.len();
    let kept: Vec<String> = lines
        .into_iter()
        .filter(|l| !targets.iter().any(|k| l.contains(k.as_str())))
        .collect();
    let removed = before - kept.len();
    write_lines(state, &kept);
    if removed < targets.len() {
        eprintln!("  Failed to find logical volume");
        return 5;
    }
    0
}

fn lvchange(state: &Path, args: &[String]) -> i32 {
    let mut add = Vec::new();
    let mut del = Vec::new();
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--addtag" => add.extend(it.next().cloned()),
            "--deltag" => del.extend(it.next().cloned()),
            "-a" | "--activate" | "-k" | "--setactivationskip" | "-p" | "--permission" => {
                it.next();
            }
            other if other.starts_with('-') => {}
            other => targets.push(other.to_owned()),
        }
    }
    if add.is_empty() && del.is_empty() {
        return 0;
    }
    let mut lines = read_lines(state);
    for t in &targets {
        let (vg, name) = split_target(t);
        let Some(l) = lines.iter_mut().find(|l| l.contains(&key(vg, name))) else {
            eprintln!("  Failed to find logical volume \"{t}\"");
            return 5;
        };
        let mut v: Map<String, Value> = serde_json::from_str(l).expect("state line");
        let mut tags: Vec<String> = v["lv_tags"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty() && !del.iter().any(|d| d == s))
            .map(str::to_owned)
            .collect();
        tags.extend(add.iter().cloned());
        v.insert("lv_tags".to_owned(), json!(tags.join(",")));
        let fields: Vec<(&str, String)> = v
            .iter()
            .map(|(k, x)| (k.as_str(), x.as_str().unwrap_or("").to_owned()))
            .collect();
        *l = line(&fields);
    }
    write_lines(state, &lines);
    0
}

/// `seed POLICIES SNAPSHOTS END [THIN-PERCENT]`: one origin per policy (`vg0/vN`, thick, or
/// thin in `vg0/pool` for THIN-PERCENT of them, default 50), SNAPSHOTS lvsnap snapshots spread
/// evenly over them one an hour ending at END (`YYYY-mm-ddTHH:MM:SSZ`), and `policies.toml`
/// beside the state: each policy hourly, keeping exactly the snapshots it has.
fn seed(dir: &Path, args: &[String]) -> i32 {
    let (Some(p), Some(n), Some(end)) = (
        args.first().and_then(|a| a.parse::<usize>().ok()),
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2)
            .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
            .map(|t| t.with_timezone(&Utc)),
    ) else {
        eprintln!("usage: lvm-standin seed POLICIES SNAPSHOTS END [THIN-PERCENT]");
        return 2;
    };
    let thin_pct = args
        .get(3)
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(50);
    let per = n / p;
    let mut lines = vec![lv_line(
        "pool",
        "vg0",
        "",
        "",
        0,
        "twi-aotz--",
        VG_SIZE / 4,
        "",
        "private",
    )];
    let mut policies = String::from("[settings]\ntimezone = \"UTC\"\n");
    // The catalog and runtime directory beside the state: a benchmark never touches the host's.
    for (k, v) in [
        (
            "tool-path",
            format!("[{}]", Value::String(dir.display().to_string())),
        ),
        (
            "catalog",
            Value::String(dir.join("catalog.db").display().to_string()).to_string(),
        ),
        (
            "runtime-dir",
            Value::String(dir.join("run").display().to_string()).to_string(),
        ),
    ] {
        let _ = writeln!(policies, "{k} = {v}");
    }
    policies.push('\n');
    for i in 0..p {
        let origin = format!("v{i:03}");
        let thin = i * 100 < p * thin_pct;
        let size = 1u64 << 30;
        lines.push(if thin {
            lv_line(
                &origin,
                "vg0",
                "",
                "pool",
                0,
                "Vwi-aotz--",
                size,
                "",
                "public,origin,thinorigin",
            )
        } else {
            lv_line(
                &origin,
                "vg0",
                "",
                "",
                0,
                "owi-aos---",
                size,
                "",
                "public,origin,thickorigin",
            )
        });
        let _ = writeln!(
            policies,
            "[policy.p{i:03}]\nvolumes = [\"vg0/{origin}\"]\nschedule = \"0 * * * *\"\nkeep = {{ hourly = {per} }}"
        );
        // Limits above the seeded counts: the benchmark measures lvsnap, not its refusals.
        if thin {
            let _ = writeln!(policies, "max-per-pool = {}", n + p);
        } else {
            let _ = writeln!(
                policies,
                "size = \"4M\"\nmax-thick-per-origin = {}",
                per + 1
            );
        }
        policies.push('\n');
        for h in 0..per {
            let t = end - chrono::Duration::hours(h as i64);
            let name = format!("{origin}-lvsnap-{}", t.format("%Y%m%dT%H%M%SZ"));
            let tags = format!("lvsnap,lvsnap-policy=p{i:03},lvsnap-time={}", t.timestamp());
            lines.push(if thin {
                lv_line(
                    &name,
                    "vg0",
                    &origin,
                    "pool",
                    t.timestamp(),
                    "Vwi---tz-k",
                    size,
                    &tags,
                    "public,snapshot,thinsnapshot",
                )
            } else {
                lv_line(
                    &name,
                    "vg0",
                    &origin,
                    "",
                    t.timestamp(),
                    "swi-a-s---",
                    EXTENT,
                    &tags,
                    "public,snapshot,thicksnapshot",
                )
            });
        }
    }
    write_lines(&dir.join("state.jsonl"), &lines);
    let path: PathBuf = dir.join("policies.toml");
    fs::write(&path, policies).expect("policies.toml");
    0
}
