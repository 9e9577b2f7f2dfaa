//! Consuming records, alone or as a member of a consumer group.
//!
//! A consumer either [`subscribe`](Consumer::subscribe)s to topics as a member of its group,
//! and then owns the partitions the group assigns it, or is given partitions directly with
//! [`assign`](Consumer::assign). Rebalance notifications are delivered by
//! [`poll`](Consumer::poll), on the polling thread, through the [`RebalanceListener`] given at
//! creation: partitions are revoked before another member receives them, so a listener can
//! commit what it processed.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::{ConsumedRecord, Offset, Result, TopicPartition};

/// Which records a consumer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Only records of committed transactions (and non-transactional records).
    #[default]
    ReadCommitted,
    /// Every record written, including those of open or aborted transactions where the backend
    /// exposes them.
    ReadUncommitted,
}

/// Where to start when a group has no committed offset for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// From the first record.
    #[default]
    Earliest,
    /// From the end (only new records).
    Latest,
    /// Fail with [`LogError::OffsetOutOfRange`](crate::LogError::OffsetOutOfRange).
    None,
}

/// How a group divides the partitions of its topics among members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignmentStrategy {
    /// Even spread, moving as few partitions as possible when members come and go (Kafka's
    /// `cooperative-sticky`).
    #[default]
    Balanced,
    /// Partition `p` of every subscribed topic with the same partition count goes to the same
    /// member (Kafka's `range`), so co-partitioned topics can be joined by one member.
    CoPartitioned,
}

/// Settings for a consumer. Offsets are committed only by explicit calls (no auto-commit), so
/// processing code decides what "done" means.
#[derive(Debug, Clone, Default)]
pub struct ConsumerConfig {
    /// Consumer group id; required for `subscribe` and `commit`.
    pub group_id: Option<String>,
    /// Client id shown in logs and metrics.
    pub client_id: Option<String>,
    /// Isolation level (read-committed by default).
    pub isolation: IsolationLevel,
    /// Start position without a committed offset.
    pub offset_reset: OffsetReset,
    /// Most records one `poll` returns.
    pub max_poll_records: Option<usize>,
    /// A member that does not poll for this long is removed from its group.
    pub session_timeout: Option<Duration>,
    /// How the group assigns partitions (every member of a group must use the same).
    pub assignment: AssignmentStrategy,
    /// Backend settings passed through untouched (e.g. librdkafka properties).
    pub extra: Vec<(String, String)>,
}

impl ConsumerConfig {
    /// A consumer in group `group_id` with default settings.
    pub fn group(group_id: impl Into<String>) -> Self {
        Self {
            group_id: Some(group_id.into()),
            ..Self::default()
        }
    }
}

/// Where to move a consumer's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The first available record.
    Beginning,
    /// After the last record.
    End,
    /// A given offset.
    Offset(Offset),
    /// The first record with a timestamp at or after this time (ms since the Unix epoch), or
    /// the end when there is none.
    Timestamp(i64),
}

/// First available offset and the offset after the last record of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// First available offset.
    pub low: Offset,
    /// Offset the next record will get (for read-committed readers: the last stable offset).
    pub high: Offset,
}

/// Identity of a group member at a point in time, given to
/// [`TransactionalProducer::send_offsets`](crate::TransactionalProducer::send_offsets) so the
/// log can refuse offsets from a member that the group has already replaced.
///
/// To callers, `generation` and `member_id` are informational (for logs and debugging): pass
/// the value from [`Consumer::group_metadata`] along unchanged rather than build, compare or
/// edit it. The Kafka backend cannot read them from librdkafka and reports generation `-1` and
/// an empty member id; the real identity travels in `backend` (librdkafka's own group
/// metadata). The embedded backend fills them in and leaves `backend` empty.
#[derive(Clone)]
pub struct GroupMetadata {
    /// Group id.
    pub group_id: String,
    /// Generation of the group when taken. Informational: `-1` on the Kafka backend.
    pub generation: i32,
    /// Member id within the group. Informational: empty on the Kafka backend.
    pub member_id: String,
    /// Backend-specific form, carrying the real identity where the fields above cannot (the
    /// Kafka backend: librdkafka's group metadata handle).
    pub backend: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for GroupMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMetadata")
            .field("group_id", &self.group_id)
            .field("generation", &self.generation)
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

/// Told about partitions given to or taken from a consumer. Called on the thread that polls,
/// from inside [`Consumer::poll`]; the consumer passed in may be used (e.g. to commit).
pub trait RebalanceListener: Send {
    /// These partitions were added to the consumer's assignment. Called at the end of every
    /// rebalance the consumer takes part in, with an empty list when nothing was added, so
    /// that the member knows it has joined and the rebalance is over.
    fn on_assigned(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]);
    /// These partitions are being taken away; they are still owned until this returns, so
    /// this is the place to commit their progress.
    fn on_revoked(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]);
    /// These partitions were lost without an orderly revocation (e.g. the member was removed
    /// after missing its session timeout): their progress can no longer be committed.
    fn on_lost(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.on_revoked(consumer, partitions);
    }
}

/// Reads records from partitions.
pub trait Consumer: Send + Sync {
    /// Joins the group for these topics (replacing an earlier subscription).
    fn subscribe(&self, topics: &[String]) -> Result<()>;

    /// Reads exactly these partitions, outside group management (replacing an earlier
    /// assignment). Positions start at the committed offset when the consumer has a group and
    /// one exists, else per the reset policy.
    fn assign(&self, partitions: &[TopicPartition]) -> Result<()>;

    /// Partitions currently assigned.
    fn assignment(&self) -> Result<Vec<TopicPartition>>;

    /// Waits up to `timeout` for records; returns those available (possibly none). Rebalance
    /// notifications are delivered from inside this call.
    fn poll(&self, timeout: Duration) -> Result<Vec<ConsumedRecord>>;

    /// Stops `poll` from returning records of these assigned partitions until [`resume`]d
    /// (Kafka's `pause`): a reader holding more of a partition than it can use yet bounds its
    /// memory this way, while it goes on reading the others. Positions are kept; a partition
    /// that leaves the assignment is no longer paused if it comes back.
    ///
    /// [`resume`]: Consumer::resume
    fn pause(&self, partitions: &[TopicPartition]) -> Result<()>;

    /// Lets `poll` return records of these paused partitions again, from their position.
    fn resume(&self, partitions: &[TopicPartition]) -> Result<()>;

    /// Moves the position of an assigned partition.
    fn seek(&self, partition: &TopicPartition, to: SeekTo) -> Result<()>;

    /// The offset of the next record `poll` will return for an assigned partition.
    fn position(&self, partition: &TopicPartition) -> Result<Offset>;

    /// Commits offsets (the next offset to read) for the consumer's group, synchronously.
    fn commit(&self, offsets: &[(TopicPartition, Offset)]) -> Result<()>;

    /// The group's committed offsets for these partitions (`None` where none is committed).
    ///
    /// While a transaction that holds offsets for these partitions is open, the answer waits
    /// for it to end (on Kafka for read-committed consumers, KIP-447; always on the embedded
    /// log) rather than answer the offsets from before it, which a new owner of the partitions
    /// would otherwise resume from, then repeat the transaction's work if it commits. Fails
    /// with [`LogError::Timeout`](crate::LogError::Timeout) when it does not end in time.
    fn committed(&self, partitions: &[TopicPartition]) -> Result<Vec<Option<Offset>>>;

    /// First and next offsets of a partition, as this consumer's isolation level sees them.
    fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks>;

    /// How many records of an assigned `partition` this consumer has yet to read, as far as
    /// it knows without asking the log; `None` when it does not know. Lets a reader of
    /// several partitions tell an input that is caught up from one slow to deliver. The
    /// default knows nothing.
    fn known_lag(&self, partition: &TopicPartition) -> Option<i64> {
        let _ = partition;
        None
    }

    /// This member's identity for transactional offset commits; `None` without a group.
    fn group_metadata(&self) -> Option<GroupMetadata>;

    /// Leaves the group (revoking its partitions through the listener) and stops. Dropping a
    /// consumer closes it too.
    ///
    /// Commit the progress you mean to keep *before* closing. A commit made from
    /// [`RebalanceListener::on_revoked`] while the consumer closes may be refused by a Kafka
    /// broker (the member is leaving the group), and those offsets are then not committed.
    fn close(&self) -> Result<()>;
}
