//! Where a task's output records go: to the log's producer (inside the task's transaction under
//! exactly-once) or, in the test driver, to in-memory topics.

use bytes::Bytes;
use rill_log::Header;

use crate::error::Result;

/// A serialized record on its way to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Destination topic.
    pub topic: String,
    /// Explicit partition; `None` partitions by murmur2 of the key.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Bytes>,
    /// Value bytes (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Timestamp, ms since the Unix epoch.
    pub timestamp: i64,
    /// Headers.
    pub headers: Vec<Header>,
}

/// Receives a task's output records.
pub trait RecordCollector {
    /// Sends one record. Delivery is confirmed at the task's next commit.
    fn send(&mut self, record: OutputRecord) -> Result<()>;

    /// The partition count of `topic`, for sinks that choose partitions themselves.
    fn partitions(&mut self, topic: &str) -> Result<i32>;
}
