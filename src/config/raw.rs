//! The policy file exactly as written: serde structs that mirror the TOML, with spans kept on
//! every value so that semantic errors can point at `file:line:column`. Nothing here judges a
//! value; `validate` does. Required keys are `Option` so that a missing one is reported together
//! with every other error rather than stopping the parse.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawFile {
    pub settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    pub policy: BTreeMap<Spanned<String>, RawPolicy>,
}

impl RawFile {
    /// Policies in the order they are written in the file.
    pub fn policies_in_order(&self) -> Vec<(&Spanned<String>, &RawPolicy)> {
        let mut v: Vec<_> = self.policy.iter().collect();
        v.sort_by_key(|(name, _)| name.span().start);
        v
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawSettings {
    pub catalog: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub runtime_dir: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub metrics_file: Option<Spanned<String>>,
    pub tool_path: Option<Spanned<Vec<Spanned<String>>>>,
    pub space_poll: Option<Spanned<String>>,
    pub history_days: Option<Spanned<i64>>,
    pub failure_history_days: Option<Spanned<i64>>,
    pub history_rows: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawPolicy {
    pub volumes: Option<Spanned<Vec<Spanned<String>>>>,
    pub schedule: Option<Spanned<String>>,
    pub size: Option<Spanned<String>>,
    pub keep: Option<RawKeep>,
    pub min_age: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub max_remove_percent: Option<Spanned<i64>>,
    pub future_skew: Option<Spanned<String>>,
    pub invalid: Option<Spanned<String>>,
    pub keep_free: Option<Spanned<String>>,
    pub pool_data_max: Option<Spanned<i64>>,
    pub pool_metadata_max: Option<Spanned<i64>>,
    pub extend_at: Option<Spanned<i64>>,
    pub extend_by: Option<Spanned<i64>>,
    pub pool_data_emergency: Option<Spanned<i64>>,
    pub pool_metadata_emergency: Option<Spanned<i64>>,
    pub vg_free_emergency: Option<Spanned<String>>,
    pub emergency_removes_newest: Option<Spanned<bool>>,
    pub max_thick_per_origin: Option<Spanned<i64>>,
    pub max_per_pool: Option<Spanned<i64>>,
    pub pre: Option<Spanned<Vec<Spanned<String>>>>,
    pub post: Option<Spanned<Vec<Spanned<String>>>>,
    pub hook_timeout: Option<Spanned<String>>,
    pub set: Option<Spanned<bool>>,
    pub freeze: Option<Spanned<bool>>,
    pub freeze_timeout: Option<Spanned<String>>,
    pub mount_context: Option<Spanned<String>>,
    pub backup: Option<Spanned<RawBackup>>,
    pub replicate: Option<Spanned<RawReplicate>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawReplicate {
    pub pool: Option<Spanned<String>>,
    pub transport: Option<Spanned<Vec<Spanned<String>>>>,
    pub schedule: Option<Spanned<String>>,
    pub keep: Option<RawKeep>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawBackup {
    pub schedule: Option<Spanned<String>>,
    pub engine: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub keep: Option<RawKeep>,
    pub source: Option<Spanned<String>>,
    pub exclude: Option<Spanned<Vec<Spanned<String>>>>,
    pub repository: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub env_file: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub prune_schedule: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawKeep {
    pub last: Option<Spanned<RawCount>>,
    pub within: Option<Spanned<String>>,
    pub hourly: Option<Spanned<RawCount>>,
    pub daily: Option<Spanned<RawCount>>,
    pub weekly: Option<Spanned<RawCount>>,
    pub monthly: Option<Spanned<RawCount>>,
    pub quarterly: Option<Spanned<RawCount>>,
    pub yearly: Option<Spanned<RawCount>>,
}

/// A keep count as written: an integer or a word (only `"all"` is valid; `validate` says so).
#[derive(Debug, Clone, PartialEq)]
pub enum RawCount {
    Number(i64),
    Word(String),
}

impl<'de> Deserialize<'de> for RawCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = RawCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of snapshots or \"all\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawCount, E> {
                Ok(RawCount::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawCount, E> {
                Ok(RawCount::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCount, E> {
                Ok(RawCount::Word(v.to_owned()))
            }
        }
        d.deserialize_any(CountVisitor)
    }
}
