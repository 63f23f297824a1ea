//! The `[policy.NAME.replicate]` table: into which thin pool a policy's thin snapshots are
//! replicated block by block, on this host or through a transport to another, when, and how
//! many replicas stay there.

use toml::Spanned;

use super::raw::RawReplicate;
use super::types::{check_lvm_name, Keep, Schedule};
use super::validate::FileValidator;

/// One validated replicate table.
#[derive(Debug, Clone)]
pub struct ReplicatePolicy {
    /// The volume group of the thin pool that holds the replicas.
    pub vg: String,
    /// The thin pool that holds the replicas.
    pub pool: String,
    /// The argv that starts `lvsnap receive` on the target host (`["ssh", "backup01",
    /// "lvsnap", "receive"]`), to which lvsnap appends its own arguments; `None`: this host.
    pub transport: Option<Vec<String>>,
    /// When replicas are made; `None`: whenever the policy has a snapshot newer than its
    /// newest replica.
    pub schedule: Option<Schedule>,
    /// How many replicas stay in the target pool.
    pub keep: Keep,
}

impl ReplicatePolicy {
    /// `VG/POOL`, as `lvsnap receive --pool` takes it.
    pub fn pool_ref(&self) -> String {
        format!("{}/{}", self.vg, self.pool)
    }

    /// How the target is named in messages, records and metrics: the pool, and for another
    /// host the transport's program — not its arguments, which may hold secrets, and whose
    /// edits (an ssh option) must not make the replicas a new target's.
    pub fn target(&self) -> String {
        match &self.transport {
            None => self.pool_ref(),
            Some(argv) => {
                let program = argv
                    .first()
                    .map(|p| p.rsplit('/').next().unwrap_or(p))
                    .unwrap_or_default();
                format!("{} via {program}", self.pool_ref())
            }
        }
    }
}

impl FileValidator<'_> {
    /// Validates `[policy.NAME.replicate]`; `None` when it has errors (all recorded).
    pub(super) fn replicate(
        &mut self,
        name: &Spanned<String>,
        table: &Spanned<RawReplicate>,
    ) -> Option<ReplicatePolicy> {
        let before = self.diags.len();
        let owner = format!("policy.{}.replicate", name.get_ref());
        let k = |key: &str| format!("{owner}.{key}");
        let raw = table.get_ref();
        let pool = match &raw.pool {
            Some(p) => self.value(
                p,
                &k("pool"),
                "write the thin pool that holds the replicas as \"VG/POOL\", for example \"vgbackup/replicas\"",
                |s| {
                    let (vg, pool) = s
                        .split_once('/')
                        .ok_or_else(|| format!("{s:?} is not VG/POOL"))?;
                    check_lvm_name(vg, "the volume group's")?;
                    check_lvm_name(pool, "the pool's")?;
                    Ok((vg.to_owned(), pool.to_owned()))
                },
            ),
            None => {
                self.error(
                    table.span(),
                    &k("pool"),
                    "missing".to_owned(),
                    Some("add pool = \"VG/POOL\", the thin pool the replicas go to (create it with lvcreate --type thin-pool)".to_owned()),
                );
                None
            }
        };
        let transport = match &raw.transport {
            Some(list)
                if list
                    .get_ref()
                    .first()
                    .is_none_or(|p| p.get_ref().trim().is_empty()) =>
            {
                self.error(
                    list.span(),
                    &k("transport"),
                    "the transport is empty".to_owned(),
                    Some("write the command that starts lvsnap receive on the target host, for example [\"ssh\", \"backup01\", \"lvsnap\", \"receive\"], or remove transport for a pool on this host".to_owned()),
                );
                None
            }
            other => self.hook(other.as_ref(), &k("transport")),
        };
        if let Some(Some(argv)) = &transport {
            if argv.iter().any(|a| a.starts_with("--pool")) {
                self.error(
                    raw.transport.as_ref().expect("argv came from it").span(),
                    &k("transport"),
                    "the transport names the pool itself".to_owned(),
                    Some(
                        "end the transport with \"receive\"; lvsnap appends --pool from pool = …"
                            .to_owned(),
                    ),
                );
            }
        }
        let schedule = raw.schedule.as_ref().and_then(|s| {
            self.value(
                s,
                &k("schedule"),
                "cron fields are minute hour day-of-month month day-of-week, e.g. \"30 1 * * *\"; leave it out to replicate every snapshot",
                Schedule::parse,
            )
        });
        let keep = self.keep(&owner, table.span(), raw.keep.as_ref());
        if self.diags.len() > before {
            return None;
        }
        let (vg, pool) = pool?;
        Some(ReplicatePolicy {
            vg,
            pool,
            transport: transport?,
            schedule,
            keep: keep?,
        })
    }
}
