//! Settings of an [`EmbeddedLog`](crate::EmbeddedLog).

use std::path::PathBuf;
use std::time::Duration;

/// When appended records are fsynced before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Make every group of appended records durable before acknowledging them and making them
    /// visible: one journal fsync per group, shared with concurrent commits.
    #[default]
    Always,
    /// Acknowledge after the write to the OS; fsync the journal this often. A power loss
    /// may lose up to this much acknowledged data (a process crash loses none).
    Interval(Duration),
    /// Acknowledge after the write to the OS; fsync only at checkpoints and close.
    Never,
}

/// Settings of an embedded log.
///
/// ```
/// use std::time::Duration;
/// use rill_log_embedded::{EmbeddedConfig, FsyncPolicy};
/// let config = EmbeddedConfig::new("/var/lib/rill")
///     .fsync(FsyncPolicy::Interval(Duration::from_millis(50)))
///     .segment_bytes(16 << 20);
/// assert_eq!(config.max_record_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbeddedConfig {
    /// The data directory (created when absent); one `EmbeddedLog` holds it at a time.
    pub data_dir: PathBuf,
    /// Fsync policy for produced records.
    pub fsync: FsyncPolicy,
    /// Segment size of topics that do not set `TopicConfig::segment_bytes`.
    pub segment_bytes: u64,
    /// Largest encoded record accepted by `send`.
    pub max_record_bytes: usize,
    /// How often the cleaner thread applies retention and compaction.
    pub cleaner_interval: Duration,
    /// How long compaction keeps tombstones (Kafka's `delete.retention.ms`).
    pub delete_retention: Duration,
    /// An offset index entry is written every this many bytes of segment.
    pub index_interval_bytes: u32,
    /// Once the journal holds this many bytes of batches, a checkpoint fsyncs the partitions
    /// they went to and drops them from the journal (see `docs/embedded-log.md`).
    pub checkpoint_bytes: u64,
    /// Between checkpoints, the cleaner thread fsyncs each partition once it holds this many
    /// bytes not yet fsynced (and the fullest others while all together hold more than 8 times
    /// this), so that writeback is spread out and a checkpoint finds little left to sync (0:
    /// only checkpoints sync partitions).
    pub writeback_bytes: u64,
}

impl EmbeddedConfig {
    /// Defaults for a log in `data_dir`: fsync always, 64 MiB segments, 1 MiB records, cleaner
    /// every 30 s, tombstones kept 24 h, a checkpoint every 64 MiB of journaled batches, and
    /// between checkpoints a partition fsynced once it holds 1 MiB not yet fsynced.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 20,
            cleaner_interval: Duration::from_secs(30),
            delete_retention: Duration::from_secs(24 * 3600),
            index_interval_bytes: 4096,
            checkpoint_bytes: 64 << 20,
            writeback_bytes: 1 << 20,
        }
    }

    /// Sets the fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Sets the default segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets the largest accepted record.
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Sets how often the cleaner runs.
    pub fn cleaner_interval(mut self, interval: Duration) -> Self {
        self.cleaner_interval = interval;
        self
    }

    /// Sets how long compaction keeps tombstones.
    pub fn delete_retention(mut self, retention: Duration) -> Self {
        self.delete_retention = retention;
        self
    }

    /// Sets how many bytes of batches the journal holds before a checkpoint.
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Sets how many bytes not yet fsynced a partition may hold before the cleaner thread
    /// fsyncs it (0: only checkpoints do).
    pub fn writeback_bytes(mut self, bytes: u64) -> Self {
        self.writeback_bytes = bytes;
        self
    }
}
