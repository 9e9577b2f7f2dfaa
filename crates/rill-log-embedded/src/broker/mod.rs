//! The broker layer: everything above one partition's storage. One role per file:
//!
//! - `config`: [`EmbeddedConfig`] and [`FsyncPolicy`];
//! - `lock`: the exclusive lock on the data directory;
//! - `journal`: the checksummed metadata journal (topics, offsets, transactions, epochs);
//! - `state`: the state shared by the log and its clients, and the wake-up notifier;
//! - `topics`: topics and their partitions, `topic.json`, the `Admin` implementation (topics,
//!   and groups as `group` and the committed offsets describe them);
//! - `flusher`: the group-commit thread that writes and fsyncs produced records;
//! - `syncer`: fsyncs of several partitions at once, on a small pool of threads;
//! - `producer`: the non-transactional producer and record routing;
//! - `txn`: the transactional producer;
//! - `group`: the in-process consumer-group coordinator and its sticky assignor;
//! - `consumer`: the consumer;
//! - `cleaner`: the retention / compaction thread;
//! - `log`: [`EmbeddedLog`], opening (journal replay, recovery) and closing.

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
mod syncer;
mod topics;
mod txn;

pub use config::{EmbeddedConfig, FsyncPolicy};
pub use log::EmbeddedLog;
