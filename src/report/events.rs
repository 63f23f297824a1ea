//! `catalog events`: the LVM commands lvsnap ran, newest last.

use std::io::{self, Write};

use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::catalog::Event;
use crate::units::{local, utc};

/// `catalog events --json`.
pub fn json(events: &[Event]) -> Value {
    events
        .iter()
        .map(|e| json!({"at": utc(e.at), "argv": e.argv, "status": e.status, "duration_ms": e.duration_ms, "stderr": e.stderr}))
        .collect()
}

/// `catalog events`: one line each, with the first line of its error output.
///
/// # Errors
/// The output cannot be written.
pub fn text(out: &mut dyn Write, events: &[Event], tz: Tz) -> io::Result<()> {
    for e in events {
        let err = e
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        writeln!(
            out,
            "{}  exit {:<3} {:>6} ms  {}  {err}",
            local(e.at, tz),
            e.status,
            e.duration_ms,
            e.argv
        )?;
    }
    Ok(())
}
