//! The non-transactional producer, and the routing shared with the transactional one: which
//! partition a record goes to and the checks that can fail at send time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rill_log::{DeliveryFuture, LogError, Producer, ProducerRecord, Result, partition_for_key};

use super::flusher::PendingRecord;
use super::state::{Inner, now_ms};
use super::topics::Partition;
use crate::storage::{PartitionLog, StoredRecord};

/// Resolves a record's partition and checks what can be known at send time: the topic and
/// partition exist and the record is not too large.
pub(crate) fn route(
    inner: &Inner,
    record: ProducerRecord,
    round_robin: &AtomicU32,
) -> Result<(Arc<Partition>, StoredRecord)> {
    inner.check_open()?;
    let topic = inner.topic(&record.topic)?;
    let partitions = topic.config.partitions;
    let partition = match (record.partition, &record.key) {
        (Some(p), _) => p,
        // Kafka's default partitioner, so keys land where a Kafka client would put them.
        (None, Some(key)) => partition_for_key(key, partitions),
        // Keyless records spread round-robin per producer.
        (None, None) => {
            (round_robin.fetch_add(1, Ordering::Relaxed) % partitions.max(1) as u32) as i32
        }
    };
    let partition = topic.partition(partition)?;
    let stored = StoredRecord {
        timestamp: record.timestamp.unwrap_or_else(now_ms),
        key: record.key,
        value: record.value,
        headers: record.headers,
    };
    let size = PartitionLog::encoded_len(&stored);
    if size > inner.config.max_record_bytes {
        return Err(LogError::RecordTooLarge {
            topic: record.topic,
            size,
            max: inner.config.max_record_bytes,
        });
    }
    Ok((partition, stored))
}

/// A producer whose records go through the group-commit flusher.
pub(crate) struct EmbeddedProducer {
    inner: Arc<Inner>,
    round_robin: AtomicU32,
    /// Flush ticket of the last record this producer queued.
    last_ticket: AtomicU64,
}

impl EmbeddedProducer {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            round_robin: AtomicU32::new(0),
            last_ticket: AtomicU64::new(0),
        }
    }
}

impl Producer for EmbeddedProducer {
    fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (partition, record) = route(&self.inner, record, &self.round_robin)?;
        let (sender, future) = DeliveryFuture::pending();
        let ticket = self
            .inner
            .flush
            .enqueue(&partition, PendingRecord { record, sender })?;
        self.last_ticket.fetch_max(ticket, Ordering::AcqRel);
        Ok(future)
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        let ticket = self.last_ticket.load(Ordering::Acquire);
        if ticket == 0 {
            return Ok(());
        }
        self.inner.flush.wait_completed(ticket, timeout)
    }
}
