//! Producing records, alone or in transactions.
//!
//! [`Producer::send`] hands a record to the backend and returns at once with a
//! [`DeliveryFuture`]; the backend batches records and acknowledges each one when it is durable
//! per its policy (the embedded log's fsync policy, Kafka's `acks`). The future can be awaited in
//! async code or waited on with [`DeliveryFuture::wait`] from a thread. [`Producer::flush`]
//! waits for everything sent so far.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::oneshot;

use crate::{GroupMetadata, LogError, Offset, ProducerRecord, Result, TopicPartition};

/// Where an acknowledged record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition the record went to.
    pub partition: i32,
    /// Its offset there.
    pub offset: Offset,
    /// Its timestamp (ms since the Unix epoch).
    pub timestamp: i64,
}

/// Completion of one [`Producer::send`]: the record's metadata once it is durable, or why it
/// was not written.
#[derive(Debug)]
#[must_use = "a delivery says whether the record was written"]
pub struct DeliveryFuture {
    state: DeliveryState,
}

#[derive(Debug)]
enum DeliveryState {
    Ready(Option<Result<RecordMetadata>>),
    Pending(oneshot::Receiver<Result<RecordMetadata>>),
}

/// The completing side of a [`DeliveryFuture`], held by the backend.
#[derive(Debug)]
pub struct DeliverySender(oneshot::Sender<Result<RecordMetadata>>);

impl DeliverySender {
    /// Completes the delivery. A dropped receiver (the caller did not wait) is not an error.
    pub fn complete(self, result: Result<RecordMetadata>) {
        let _ = self.0.send(result);
    }
}

impl DeliveryFuture {
    /// A pending delivery and the sender that completes it.
    pub fn pending() -> (DeliverySender, DeliveryFuture) {
        let (tx, rx) = oneshot::channel();
        (
            DeliverySender(tx),
            DeliveryFuture {
                state: DeliveryState::Pending(rx),
            },
        )
    }

    /// A delivery that is already complete.
    pub fn ready(result: Result<RecordMetadata>) -> Self {
        DeliveryFuture {
            state: DeliveryState::Ready(Some(result)),
        }
    }

    /// Blocks the current thread until the record is acknowledged or fails.
    pub fn wait(self) -> Result<RecordMetadata> {
        futures_executor::block_on(self)
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            DeliveryState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(LogError::Closed {
                    what: "delivery (already awaited)",
                })))
            }
            DeliveryState::Pending(rx) => Pin::new(rx)
                .poll(cx)
                .map(|outcome| outcome.unwrap_or(Err(LogError::Closed { what: "producer" }))),
        }
    }
}

/// Settings for a producer. Backends read what applies to them and pass `extra` through.
#[derive(Debug, Clone, Default)]
pub struct ProducerConfig {
    /// Client id shown in logs and metrics.
    pub client_id: Option<String>,
    /// How long a record may wait to join a batch before it is written (Kafka `linger.ms`).
    pub linger: Option<Duration>,
    /// Backend settings passed through untouched (e.g. librdkafka properties).
    pub extra: Vec<(String, String)>,
}

/// Writes records to topics.
pub trait Producer: Send + Sync {
    /// Queues a record and returns its pending delivery. Errors that can be known at once
    /// (unknown topic, bad partition, record too large, closed producer) are returned here.
    fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture>;

    /// Queues a record whose delivery the caller does not wait for: write errors surface
    /// later, at [`flush`](Self::flush) or when the transaction commits. Backends may skip
    /// the per-record delivery this saves (the default sends and drops it).
    fn send_detached(&self, record: ProducerRecord) -> Result<()> {
        self.send(record).map(drop)
    }

    /// Waits until every record sent so far is acknowledged or failed.
    fn flush(&self, timeout: Duration) -> Result<()>;
}

/// A producer that writes in transactions: records sent between [`begin`](Self::begin) and
/// [`commit`](Self::commit), on any partitions, become visible to read-committed consumers
/// together with the consumer offsets given to [`send_offsets`](Self::send_offsets), or not at
/// all. Creating a producer with the same transactional id fences this one: its next
/// transactional call fails with [`LogError::ProducerFenced`].
pub trait TransactionalProducer: Producer {
    /// Starts a transaction.
    fn begin(&self) -> Result<()>;

    /// Adds consumer offsets (the next offset to read per partition) to the transaction, to be
    /// committed for the group described by `group` when the transaction commits.
    fn send_offsets(
        &self,
        offsets: &[(TopicPartition, Offset)],
        group: &GroupMetadata,
    ) -> Result<()>;

    /// Commits the transaction: all its records and offsets become visible at once.
    fn commit(&self) -> Result<()>;

    /// Aborts the transaction: none of its records or offsets become visible.
    fn abort(&self) -> Result<()>;

    /// The transactional id this producer was created with.
    fn transactional_id(&self) -> &str;
}
