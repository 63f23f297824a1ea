//! What `init` and `doctor` print.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::doctor::{Finding, Level};
use crate::init::Proposal;

pub fn init_text(
    out: &mut dyn Write,
    p: &Proposal,
    file: &Path,
    asked_to_write: bool,
    written: bool,
    text: &str,
) -> io::Result<()> {
    if p.policies.is_empty() {
        writeln!(out, "lvsnap init: no volume to propose a policy for.")?;
        for (v, why) in &p.skipped {
            writeln!(out, "  {v}: {why}")?;
        }
        if asked_to_write {
            writeln!(out, "nothing written.")?;
        }
        return Ok(());
    }
    write!(out, "{text}")?;
    writeln!(out)?;
    if written {
        writeln!(
            out,
            "wrote {} ({} polic{}). Next: `lvsnap plan`, then `lvsnap run --dry-run`; `systemctl enable --now lvsnap.timer` takes snapshots from then on.",
            file.display(),
            p.policies.len(),
            if p.policies.len() == 1 { "y" } else { "ies" }
        )
    } else {
        writeln!(
            out,
            "not written: `lvsnap init --write` saves this as {} (it passed `config check`).",
            file.display()
        )
    }
}

pub fn init_json(p: &Proposal, file: &Path, written: bool, text: &str) -> Value {
    json!({
        "file": file,
        "written": written,
        "policies": p.policies.iter().map(|pol| json!({
            "name": pol.name,
            "volume": pol.volume,
            "mount_point": pol.mount_point,
            "filesystem": pol.fs,
            "kind": if pol.thin { "thin" } else { "thick" },
            "size": pol.size,
            "schedule": pol.schedule,
            "keep": {"hourly": pol.keep.hourly, "daily": pol.keep.daily, "weekly": pol.keep.weekly},
            "keep_free": pol.keep_free,
            "reasons": pol.reasons,
        })).collect::<Vec<_>>(),
        "skipped": p.skipped.iter().map(|(v, why)| json!({"volume": v, "reason": why})).collect::<Vec<_>>(),
        "text": text,
    })
}

pub fn doctor_text(out: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
    let width = findings.iter().map(|f| f.subject.len()).max().unwrap_or(0);
    for f in findings {
        writeln!(
            out,
            "{:<4}  {:<width$}  {}",
            f.level.word(),
            f.subject,
            f.detail
        )?;
        if let Some(fix) = &f.fix {
            writeln!(out, "      {:<width$}  fix: {fix}", "")?;
        }
    }
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    writeln!(
        out,
        "{} OK, {} WARN, {} FAIL",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail)
    )
}

pub fn doctor_json(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                json!({
                    "level": f.level.word(),
                    "subject": f.subject,
                    "detail": f.detail,
                    "fix": f.fix,
                })
            })
            .collect(),
    )
}
