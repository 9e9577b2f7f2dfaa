//! The one error type of the log layer, shared by every backend.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::TopicPartition;

/// How a caller should react to a [`LogError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request was wrong (unknown topic, bad partition, record too large): fix the input.
    InvalidInput,
    /// A transient condition (timeout, broker unavailable): the same call may succeed later.
    Retriable,
    /// This client lost ownership (fenced producer, stale group generation, partitions moved):
    /// drop the work in hand, rejoin, and continue from the last commit.
    TaskMigrated,
    /// Stored data failed its checksum or is unreadable.
    Corrupted,
    /// Anything else: the client cannot go on.
    Fatal,
}

/// An error from a log operation. Variants are named after what failed and carry the facts
/// needed to act on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The topic does not exist.
    #[error("unknown topic '{topic}'")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },
    /// The partition number is outside the topic's partitions.
    #[error("topic '{topic}' has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },
    /// A topic of that name exists already.
    #[error("topic '{topic}' already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },
    /// The topic name or configuration is not acceptable.
    #[error("invalid configuration for topic '{topic}': {reason}")]
    InvalidTopicConfig {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The encoded record exceeds the largest record the log accepts.
    #[error("record of {size} bytes for topic '{topic}' exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// Encoded size of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The operation needs a partition this consumer is not assigned.
    #[error("partition {partition} is not assigned to this consumer")]
    NotAssigned {
        /// The partition.
        partition: TopicPartition,
    },
    /// No consumer group of that id exists (it has neither members nor committed offsets).
    #[error("unknown consumer group '{group}'")]
    UnknownGroup {
        /// The group asked for.
        group: String,
    },
    /// The operation needs a consumer group, and the consumer has none.
    #[error("{operation} needs a consumer group; configure a group id")]
    NoGroup {
        /// What was attempted.
        operation: &'static str,
    },
    /// Offsets could not be committed because the group moved on (a rebalance gave the
    /// partitions to another member, or this member was removed).
    #[error("commit for group '{group}' rejected: {reason}")]
    CommitRejected {
        /// The group.
        group: String,
        /// Why the coordinator refused.
        reason: String,
    },
    /// A newer producer with the same transactional id exists; this one must stop.
    #[error("producer with transactional id '{transactional_id}' was fenced by a newer instance")]
    ProducerFenced {
        /// The transactional id.
        transactional_id: String,
    },
    /// The cluster cannot run transactions, so exactly-once is not available on it.
    #[error(
        "transactions are not supported by this cluster ({reason}); \
         use the at-least-once processing guarantee with it"
    )]
    TransactionsUnsupported {
        /// What the cluster said.
        reason: String,
    },
    /// A transactional call made in the wrong state (commit without begin, ...).
    #[error("cannot {operation}: {state}")]
    TransactionState {
        /// What was attempted.
        operation: &'static str,
        /// The state that forbids it.
        state: &'static str,
    },
    /// The offset is outside the partition's records and no reset policy applies.
    #[error("offset {offset} is out of range for {partition} (valid {low}..{high})")]
    OffsetOutOfRange {
        /// The partition.
        partition: TopicPartition,
        /// The offset asked for.
        offset: i64,
        /// First available offset.
        low: i64,
        /// Offset after the last record.
        high: i64,
    },
    /// Stored data failed its checksum and cannot be repaired by truncating a torn tail.
    #[error("corrupt data in {path}: {reason}", path = path.display())]
    Corrupt {
        /// File holding it.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A partition ends before records the log had made durable and acknowledged (its journal
    /// holds them from offset `journaled`): its files lost data behind the log's back (a disk
    /// that does not honour fsync, or files truncated by hand). Opening stops rather than
    /// re-number what follows.
    #[error(
        "{partition} ends at offset {end} but records from offset {journaled} were acknowledged: \
         records {end}..{journaled} are lost"
    )]
    DataLoss {
        /// The partition.
        partition: TopicPartition,
        /// Where its files end after recovery.
        end: i64,
        /// The first offset of the journaled batch that cannot be re-appended.
        journaled: i64,
    },
    /// An I/O operation failed.
    #[error("{operation} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Another process holds the data directory.
    #[error("data directory {path} is locked by {holder}", path = path.display())]
    DirectoryLocked {
        /// The directory.
        path: PathBuf,
        /// Who holds it (e.g. "pid 1234").
        holder: String,
    },
    /// The operation did not finish in time.
    #[error("{operation} timed out after {} ms", after.as_millis())]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// How long it was given.
        after: Duration,
    },
    /// The client or log was closed.
    #[error("{what} is closed")]
    Closed {
        /// What was closed.
        what: &'static str,
    },
    /// A backend-specific failure, with the backend's own error code when it has one.
    #[error("{operation} failed: {message}")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// The backend's code (e.g. a Kafka error code name).
        code: Option<String>,
        /// The backend's message.
        message: String,
        /// How to react.
        class: ErrorClass,
    },
}

impl LogError {
    /// How a caller should react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            LogError::UnknownTopic { .. }
            | LogError::UnknownPartition { .. }
            | LogError::TopicExists { .. }
            | LogError::InvalidTopicConfig { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::NotAssigned { .. }
            | LogError::NoGroup { .. }
            | LogError::UnknownGroup { .. }
            | LogError::TransactionState { .. }
            | LogError::OffsetOutOfRange { .. } => ErrorClass::InvalidInput,
            LogError::Timeout { .. } => ErrorClass::Retriable,
            LogError::CommitRejected { .. } | LogError::ProducerFenced { .. } => {
                ErrorClass::TaskMigrated
            }
            LogError::Corrupt { .. } | LogError::DataLoss { .. } => ErrorClass::Corrupted,
            LogError::TransactionsUnsupported { .. }
            | LogError::Io { .. }
            | LogError::DirectoryLocked { .. }
            | LogError::Closed { .. } => ErrorClass::Fatal,
            LogError::Backend { class, .. } => *class,
        }
    }

    /// Wraps an I/O error with what was being done and where.
    pub fn io(operation: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            operation,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
