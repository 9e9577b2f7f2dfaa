//! rill's embedded durable log: the `rill-log` traits in one process, on files in one data
//! directory, with no server to run.
//!
//! **Owns:** segment storage, crash recovery, retention and compaction (`storage`), and the
//! broker side: topics, the directory lock, producers with group-commit fsync, transactions,
//! consumer groups and committed offsets (`broker`). Design: `docs/embedded-log.md`.
//!
//! **May depend on:** `rill-log` only among rill's crates.

mod storage;
