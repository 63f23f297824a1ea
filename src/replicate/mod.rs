//! Block-level replication of thin volumes (issue 16): what changed between two thin snapshots,
//! read from the pool's metadata, and the stream that carries it to another pool.

pub mod digest;
pub mod map;
pub mod pool;
pub mod stream;
pub mod target;
pub mod transfer;
