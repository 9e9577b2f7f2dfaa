//! The streams runtime's error type.

use rill_log::{ErrorClass, LogError};

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
    /// A state store operation failed.
    #[error("state store '{store}': {reason}")]
    Store {
        /// Store name.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// The topology is not valid (unknown store, store of another type, bad name...).
    #[error("invalid topology: {reason}")]
    Topology {
        /// What is wrong.
        reason: String,
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

impl StreamsError {
    /// Whether the error concerns only the record being processed (a processor's own error,
    /// a value that cannot be serialized, an invalid event time), so that skipping the record
    /// loses nothing else. Log, store and topology errors concern the whole task.
    pub fn concerns_one_record(&self) -> bool {
        matches!(
            self,
            StreamsError::Processor { .. }
                | StreamsError::Panicked { .. }
                | StreamsError::Serde { .. }
                | StreamsError::InvalidTimestamp { .. }
        )
    }

    /// Wraps a log error with what the runtime was doing.
    pub fn log(operation: &'static str, source: LogError) -> Self {
        StreamsError::Log { operation, source }
    }

    /// Whether the error means this instance lost its tasks (rejoin and continue) rather than
    /// a failure of the application.
    pub fn is_task_migrated(&self) -> bool {
        matches!(self, StreamsError::Log { source, .. } if source.class() == ErrorClass::TaskMigrated)
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
