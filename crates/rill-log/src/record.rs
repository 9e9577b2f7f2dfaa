//! Records as written by producers and as read by consumers.

use std::sync::Arc;

use bytes::Bytes;

/// A record header: a name and an optional value, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is a header with a null value.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// A record to produce.
///
/// ```
/// use rill_log::ProducerRecord;
/// let record = ProducerRecord::new("orders").key("order-1").value(r#"{"id":"order-1"}"#);
/// assert_eq!(record.partition, None); // chosen by murmur2 of the key
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic to write to.
    pub topic: String,
    /// Explicit partition; `None` lets the partitioner choose (murmur2 of the key, or any
    /// partition for a record without a key).
    pub partition: Option<i32>,
    /// Key bytes, or none.
    pub key: Option<Bytes>,
    /// Value bytes, or none (a tombstone on a compacted topic).
    pub value: Option<Bytes>,
    /// Create time in milliseconds since the Unix epoch; `None` for the time of sending.
    pub timestamp: Option<i64>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl ProducerRecord {
    /// A record for `topic` with no key, value or headers yet.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets an explicit partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create time (ms since the Unix epoch).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Adds a header.
    pub fn header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic it was read from (shared between the records of one poll).
    pub topic: Arc<str>,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Create time, ms since the Unix epoch.
    pub timestamp: i64,
    /// Key bytes, or none.
    pub key: Option<Bytes>,
    /// Value bytes, or none (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}
