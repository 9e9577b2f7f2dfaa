//! rill's embedded durable log: the `rill-log` traits in one process, on files in one data
//! directory, with no server to run.
//!
//! **Owns:** segment storage, crash recovery, retention and compaction (`storage`), and the
//! broker side: topics, the directory lock, the journal (the write-ahead log of metadata and
//! batches: a commit costs one shared journal fsync, whatever the partitions it wrote) and its
//! checkpoints, producers with group commit, transactions, consumer groups and committed offsets
//! (`broker`). Design: `docs/embedded-log.md`.
//!
//! **May depend on:** `rill-log` only among rill's crates.
//!
//! ```no_run
//! use rill_log::{Log, ProducerRecord, TopicConfig};
//! use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
//! # fn demo() -> rill_log::Result<()> {
//! let log = EmbeddedLog::open(EmbeddedConfig::new("/tmp/rill-data").fsync(FsyncPolicy::Always))?;
//! log.admin().create_topic("greetings", &TopicConfig::with_partitions(3))?;
//! let producer = log.producer(&Default::default())?;
//! producer.send(ProducerRecord::new("greetings").key("alice").value("hello"))?.wait()?;
//! log.close()?;
//! # Ok(()) }
//! ```

mod broker;
mod storage;

pub use broker::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
