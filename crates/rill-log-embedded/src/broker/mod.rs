//! The broker layer: everything above one partition's storage. One role per file:
//!
//! - `config`: [`EmbeddedConfig`] and [`FsyncPolicy`];
//! - `lock`: the exclusive lock on the data directory;
//! - `journal`: the checksummed journal, the write-ahead log of metadata (topics, offsets,
//!   transactions, epochs) and of every batch written, with its group commit;
//! - `checkpoint`: fsyncs the partitions written since the last checkpoint and drops their
//!   batches from the journal;
//! - `state`: the state shared by the log and its clients, and the wake-up notifier;
//! - `topics`: topics and their partitions, `topic.json`, the `Admin` implementation (topics,
//!   and groups as `group` and the committed offsets describe them);
//! - `flusher`: the group-commit thread that writes and journals produced records;
//! - `producer`: the non-transactional producer and record routing;
//! - `txn`: the transactional producer;
//! - `group`: the in-process consumer-group coordinator and its sticky assignor;
//! - `consumer`: the consumer;
//! - `cleaner`: the retention / compaction thread, which also runs checkpoints;
//! - `log`: [`EmbeddedLog`], opening (journal replay, recovery) and closing.

mod checkpoint;
mod cleaner;
mod config;
mod consumer;
mod flusher;
mod group;
mod journal;
mod lock;
mod log;
mod producer;
mod state;
mod topics;
mod txn;

pub use config::{EmbeddedConfig, FsyncPolicy};
pub use log::EmbeddedLog;
