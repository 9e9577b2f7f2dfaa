//! The streams runtime's error type.

use rill_log::LogError;

use crate::serde::SerdeError;

/// An error of the streams runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// A log operation failed.
    #[error("{operation}: {source}")]
    Log {
        /// What the runtime was doing.
        operation: &'static str,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// A key or value could not be (de)serialized.
    #[error("{what} of a record of topic '{topic}': {source}")]
    Serde {
        /// Topic (or store changelog) of the record.
        topic: String,
        /// "key" or "value".
        what: &'static str,
        /// The serde's error.
        #[source]
        source: SerdeError,
    },
    /// A source's timestamp extractor found no valid event time in a record.
    #[error(
        "record of topic '{topic}' (partition {partition}, offset {offset}) has no valid event time{}",
        extracted.map(|t| format!(" (extracted {t})")).unwrap_or_default()
    )]
    InvalidTimestamp {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Input offset.
        offset: i64,
        /// What the extractor answered, when it answered a negative time.
        extracted: Option<i64>,
    },
    /// A store's storage engine failed (I/O, a corrupt file, a lock held by another process).
    #[error("state store '{store}': {operation}: {source}")]
    StoreEngine {
        /// Store name.
        store: String,
        /// What the runtime asked of the engine.
        operation: String,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A thread of the runtime could not be started.
    #[error("starting the {what} thread: {source}")]
    ThreadStart {
        /// Which thread.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Something the runtime waits for did not happen in time.
    #[error("{what}: nothing after {waited:?}")]
    TimedOut {
        /// What was awaited.
        what: String,
        /// How long.
        waited: std::time::Duration,
    },
    /// A store is open already in this process (by another task, or a standby copy that was
    /// not handed over).
    #[error("state store '{store}': {} is already open in this process", path.display())]
    StoreInUse {
        /// Store name.
        store: String,
        /// Its directory.
        path: std::path::PathBuf,
    },
    /// The topology names a store it does not have.
    #[error(
        "no store named '{store}' in this topology{}",
        used_by.as_ref().map(|node| format!(" (used by '{node}')")).unwrap_or_default()
    )]
    UnknownStore {
        /// The name asked for.
        store: String,
        /// The node that asked for it, when a node did (a query has none).
        used_by: Option<String>,
    },
    /// A processor asked for a store the topology did not connect to it.
    #[error(
        "processor '{processor}' is not connected to store '{store}': name the store when \
         adding the processor"
    )]
    StoreNotConnected {
        /// The processor's node name.
        processor: String,
        /// The store it asked for.
        store: String,
    },
    /// A store was asked for with a key or value type other than the one it holds.
    #[error("store '{store}' holds {what}s of another type than {expected}")]
    StoreType {
        /// Store name.
        store: String,
        /// "key" or "value".
        what: &'static str,
        /// The type asked for.
        expected: &'static str,
    },
    /// Two things of one kind got the same name.
    #[error("a {kind} named '{name}' exists already")]
    DuplicateName {
        /// What was named ("store", "split branch").
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A name that cannot be used for what it names.
    #[error("{kind} name '{name}' cannot be used: {reason}")]
    InvalidName {
        /// What was named ("store").
        kind: &'static str,
        /// The name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A store entry (read back, or restored from its changelog) that the store's own layout
    /// cannot hold, such as a window key without its time suffix.
    #[error("state store '{store}': corrupt entry: {reason}")]
    CorruptEntry {
        /// Store name.
        store: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Window parameters that describe no windows (a zero size, a negative gap...).
    #[error("invalid windows: {reason}")]
    InvalidWindows {
        /// What is wrong with them.
        reason: String,
    },
    /// A repartition topic asked for with fewer than one partition.
    #[error("repartition '{topic}' asks for {partitions} partitions; at least 1 is needed")]
    InvalidPartitions {
        /// The repartition's name.
        topic: String,
        /// The partitions asked for.
        partitions: i32,
    },
    /// The inputs of a sub-topology, which are processed together, have different partition
    /// counts.
    #[error(
        "the inputs of sub-topology {subtopology} are not co-partitioned: '{topic}' has \
         {partitions} partitions, others {others}"
    )]
    NotCopartitioned {
        /// The sub-topology.
        subtopology: usize,
        /// The input that differs.
        topic: String,
        /// Its partitions.
        partitions: i32,
        /// The partitions of the inputs before it.
        others: i32,
    },
    /// An operation that reads a table's store was given a table without one.
    #[error("{operation} needs materialized tables: call `materialize` on a derived table")]
    NotMaterialized {
        /// The operation ("a stream-table join", ...).
        operation: &'static str,
    },
    /// An operation that needs the table of a windowed aggregation was given another table.
    #[error("{operation} needs the table of a windowed aggregation")]
    NotWindowed {
        /// The operation.
        operation: &'static str,
    },
    /// A node's child takes records of other types than the node forwards.
    #[error("a child of '{node}' does not take ({key}, {value}) records")]
    ChildType {
        /// The parent node.
        node: String,
        /// The key type it forwards.
        key: &'static str,
        /// The value type it forwards.
        value: &'static str,
    },
    /// A task was asked for a sub-topology the topology does not have.
    #[error("no sub-topology {subtopology} in this topology")]
    UnknownSubtopology {
        /// The sub-topology asked for.
        subtopology: usize,
    },
    /// A task got a record of a topic it has no source for.
    #[error("task {task} has no source for topic '{topic}'")]
    UnknownSource {
        /// The task.
        task: crate::task::TaskId,
        /// The record's topic.
        topic: String,
    },
    /// A processor got a record before the task initialised it.
    #[error("processor '{node}' got a record before it was initialised")]
    NotInitialised {
        /// Node name.
        node: String,
    },
    /// A user processor failed.
    #[error("processor '{node}' failed: {source}")]
    Processor {
        /// Node name.
        node: String,
        /// The processor's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// User code panicked while processing a record (caught only when the
    /// [`ProcessingErrorPolicy`](crate::ProcessingErrorPolicy) skips or dead-letters records).
    #[error("processing panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// An interactive query for a key held by another instance.
    #[error("key of store '{store}' (partition {partition}) is held by {}", owner.as_deref().unwrap_or("an unknown instance"))]
    KeyNotLocal {
        /// Store name.
        store: String,
        /// The key's partition.
        partition: i32,
        /// `host:port` of the owner, when known.
        owner: Option<String>,
    },
    /// The application is not running (not started yet, or closed).
    #[error("the application is {state}")]
    NotRunning {
        /// Its state.
        state: &'static str,
    },
    /// An application cannot be reset while instances of it run.
    #[error(
        "application '{application}' is running ({members} members in its group): stop every instance before resetting it"
    )]
    ApplicationRunning {
        /// The application id.
        application: String,
        /// Members of its group.
        members: usize,
    },
    /// A state directory could not be read or changed.
    #[error("state directory {}: {source}", path.display())]
    StateDir {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How a caller should react to a [`StreamsError`]: the streams counterpart of the log's
/// [`ErrorClass`](rill_log::ErrorClass), which a [`StreamsError::Log`] passes on.
///
/// ```
/// use rill_streams::{ErrorClass, StreamsError};
/// let error = StreamsError::UnknownStore { store: "counts".into(), used_by: None };
/// assert_eq!(error.class(), ErrorClass::InvalidInput);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The topology, its configuration or the call is wrong (an unknown store, a store of
    /// another type, a duplicate name, an unknown topic): fix it; trying again cannot help.
    InvalidInput,
    /// Only the record being processed failed (its bytes, its event time, the user code that
    /// processed it): skipping the record loses nothing else, so a
    /// [`ProcessingErrorPolicy`](crate::ProcessingErrorPolicy) may skip or dead-letter it.
    Record,
    /// A transient condition (a timeout): the same work may succeed later. A stream thread
    /// rebuilds its tasks from their last commit and goes on.
    Retriable,
    /// This instance lost its tasks (fenced, or the group moved on): drop the work in hand,
    /// rejoin and continue from the last commit. A stream thread does so by itself.
    TaskMigrated,
    /// The key asked for is held by another instance: ask it (see
    /// [`StreamsError::KeyNotLocal`]'s owner).
    NotLocal,
    /// Stored data failed its checksum or is unreadable.
    Corrupted,
    /// Anything else (an engine or file system failure, a thread that cannot start, an
    /// application that is not running): the caller cannot go on with it.
    Fatal,
}

impl StreamsError {
    /// How a caller should react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            StreamsError::Log { source, .. } => match source.class() {
                rill_log::ErrorClass::InvalidInput => ErrorClass::InvalidInput,
                rill_log::ErrorClass::Retriable => ErrorClass::Retriable,
                rill_log::ErrorClass::TaskMigrated => ErrorClass::TaskMigrated,
                rill_log::ErrorClass::Corrupted => ErrorClass::Corrupted,
                rill_log::ErrorClass::Fatal => ErrorClass::Fatal,
            },
            StreamsError::Serde { .. }
            | StreamsError::InvalidTimestamp { .. }
            | StreamsError::Processor { .. }
            | StreamsError::Panicked { .. } => ErrorClass::Record,
            StreamsError::TimedOut { .. } => ErrorClass::Retriable,
            StreamsError::KeyNotLocal { .. } => ErrorClass::NotLocal,
            StreamsError::UnknownStore { .. }
            | StreamsError::StoreNotConnected { .. }
            | StreamsError::StoreType { .. }
            | StreamsError::DuplicateName { .. }
            | StreamsError::InvalidName { .. }
            | StreamsError::InvalidWindows { .. }
            | StreamsError::InvalidPartitions { .. }
            | StreamsError::NotCopartitioned { .. }
            | StreamsError::NotMaterialized { .. }
            | StreamsError::NotWindowed { .. }
            | StreamsError::ChildType { .. }
            | StreamsError::UnknownSubtopology { .. }
            | StreamsError::UnknownSource { .. }
            | StreamsError::ApplicationRunning { .. } => ErrorClass::InvalidInput,
            StreamsError::CorruptEntry { .. } => ErrorClass::Corrupted,
            StreamsError::StoreEngine { .. }
            | StreamsError::StoreInUse { .. }
            | StreamsError::ThreadStart { .. }
            | StreamsError::NotInitialised { .. }
            | StreamsError::NotRunning { .. }
            | StreamsError::StateDir { .. } => ErrorClass::Fatal,
        }
    }

    /// Wraps a log error with what the runtime was doing.
    pub fn log(operation: &'static str, source: LogError) -> Self {
        StreamsError::Log { operation, source }
    }

    /// Wraps a user error raised in a processor.
    pub fn processor(
        node: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StreamsError::Processor {
            node: node.into(),
            source: source.into(),
        }
    }
}

/// Result of a streams operation.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
