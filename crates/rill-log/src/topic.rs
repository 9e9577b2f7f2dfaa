//! Topics, partitions, offsets and per-topic configuration.

use std::fmt;
use std::time::Duration;

/// Position of a record within a partition. The embedded log numbers records densely; Kafka
/// leaves gaps (compaction, transaction markers), so callers must only rely on offsets growing.
pub type Offset = i64;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What happens to old records of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Whole segments past the retention time or size are deleted.
    #[default]
    Delete,
    /// Only the latest record per key is kept; a tombstone (absent value) removes the key.
    Compact,
    /// Both: compaction, and deletion of segments past retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy` for this policy.
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Parses Kafka's `cleanup.policy` value (`delete`, `compact`, `compact,delete`).
    pub fn from_kafka_str(value: &str) -> Option<Self> {
        let mut compact = false;
        let mut delete = false;
        for part in value.split(',').map(str::trim) {
            match part {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (true, false) => Some(CleanupPolicy::Compact),
            (false, true) => Some(CleanupPolicy::Delete),
            (false, false) => None,
        }
    }

    /// Whether compaction applies.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Whether retention by time or size applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

/// Configuration of a topic at creation.
///
/// ```
/// use rill_log::{CleanupPolicy, TopicConfig};
/// let changelog = TopicConfig::with_partitions(6).cleanup_policy(CleanupPolicy::Compact);
/// assert_eq!(changelog.partitions, 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions, at least 1.
    pub partitions: i32,
    /// Records older than this may be deleted (`retention.ms`); `None` keeps them forever.
    pub retention: Option<Duration>,
    /// A partition larger than this many bytes may lose its oldest segments (`retention.bytes`).
    pub retention_bytes: Option<u64>,
    /// Deletion, compaction or both.
    pub cleanup_policy: CleanupPolicy,
    /// Size at which a partition starts a new segment (`segment.bytes`); `None` for the
    /// backend's default. Retention and compaction work on whole closed segments.
    pub segment_bytes: Option<u64>,
    /// Further backend settings passed through as they are (e.g. Kafka topic configs).
    pub extra: Vec<(String, String)>,
}

impl TopicConfig {
    /// A topic with `partitions` partitions, delete policy and no retention limit.
    pub fn with_partitions(partitions: i32) -> Self {
        Self {
            partitions,
            retention: None,
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            segment_bytes: None,
            extra: Vec::new(),
        }
    }

    /// Sets the cleanup policy.
    pub fn cleanup_policy(mut self, policy: CleanupPolicy) -> Self {
        self.cleanup_policy = policy;
        self
    }

    /// Sets retention by time.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Sets retention by size per partition.
    pub fn retention_bytes(mut self, bytes: u64) -> Self {
        self.retention_bytes = Some(bytes);
        self
    }

    /// Sets the segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = Some(bytes);
        self
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self::with_partitions(1)
    }
}
