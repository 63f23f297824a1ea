//! Planning: pure functions from `now`, policies and the group's snapshots to decisions.
//! Nothing here reads a clock, a file or runs a command.

pub mod due;
pub mod retention;

pub use due::{is_due, CronTicks, EveryTicks, Ticks};
pub use retention::{
    is_future, plan_retention, Busy, Decision, Guard, Reasons, RetentionPlan, Rules, SnapshotView,
};
