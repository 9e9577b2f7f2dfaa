use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rill_log::TopicPartition;

use crate::task::{DeserializationPolicy, ProcessingErrorPolicy};

/// What a crash may do to outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Outputs, store changes and input offsets commit together in one log transaction: a
    /// crash neither loses nor duplicates an effect. Needs a log with transactions.
    #[default]
    ExactlyOnce,
    /// Outputs are flushed before input offsets are committed: a crash may repeat the work
    /// since the last commit, never lose it.
    AtLeastOnce,
}

/// What happens when a stream thread fails with an error that is not a single record's
/// (Kafka Streams' uncaught exception handler): a lost connection, a fenced producer, a
/// store that cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThreadFailurePolicy {
    /// The thread stops and the application goes to [`AppState::Error`](super::AppState::Error)
    /// (its other threads go on until it is closed).
    #[default]
    ShutdownApplication,
    /// A new thread takes the failed one's place (after a short wait, growing while failures
    /// repeat): its tasks are rebuilt from their changelogs and committed offsets, so under
    /// exactly-once nothing the failed thread had not committed is lost or doubled.
    ReplaceThread,
}

/// Settings of a [`StreamsApp`](super::StreamsApp).
///
/// ```
/// use std::time::Duration;
/// use rill_streams::{ProcessingGuarantee, StreamsConfig};
/// let mut config = StreamsConfig::new("word-count", "/var/lib/rill/state");
/// config.threads = 2;
/// config.commit_interval = Duration::from_millis(50);
/// assert_eq!(config.guarantee, ProcessingGuarantee::ExactlyOnce);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct StreamsConfig {
    /// The application id: the consumer group, and the prefix of internal topics.
    pub application_id: String,
    /// Directory for persistent stores and checkpoints.
    pub state_dir: PathBuf,
    /// Stream threads in this instance.
    pub threads: usize,
    /// Exactly-once (default) or at-least-once.
    pub guarantee: ProcessingGuarantee,
    /// How often tasks commit.
    pub commit_interval: Duration,
    /// What to do with records that cannot be deserialized (default: the dead-letter topic
    /// `<application>-dlq`).
    pub deserialization: DeserializationPolicy,
    /// What to do with a record whose processing fails (default: stop with the error).
    pub processing_errors: ProcessingErrorPolicy,
    /// Warm copies kept of each task's persistent stores on other instances (default 0):
    /// a task that moves to an instance holding a copy restores only the changelog's tail.
    /// See the `standby` module of the runtime for placement and handover.
    pub standby_replicas: usize,
    /// What to do when a stream thread fails (default: the application stops in
    /// [`AppState::Error`](super::AppState::Error)).
    pub thread_failure: ThreadFailurePolicy,
    /// `host:port` where this instance serves interactive queries, published to the others.
    pub application_server: Option<String>,
    /// Longest wait for records in one poll.
    pub poll_timeout: Duration,
    /// Also commit as soon as a poll finds no more input waiting, not only every
    /// `commit_interval`: the lowest latency when lightly loaded, larger transactions under
    /// load (default on).
    pub commit_when_caught_up: bool,
    /// How long a task with several input partitions (a join or merge of co-partitioned
    /// topics) waits for every input to have a record before it processes what it has, so
    /// that records are taken in timestamp order across inputs (Kafka Streams'
    /// `max.task.idle.ms`). Default zero: never wait. An empty input the consumer knows to be
    /// read to its end is not waited for ([`Consumer::known_lag`](rill_log::Consumer::known_lag),
    /// as in Kafka Streams since KIP-695): on the embedded log that is always known, so a long
    /// wait costs nothing when an input is merely quiet. The Kafka backend does not know its
    /// fetch lag, so there every empty input is waited for, up to this long.
    pub max_task_idle: Duration,
    /// Most records one poll hands to a thread (Kafka's `max.poll.records`).
    pub max_poll_records: usize,
    /// Records a task may hold buffered from one input partition (Kafka Streams'
    /// `buffered.records.per.partition`, default 1,000): past it the partition is paused
    /// until its buffer drains to half, so a task waiting on one input (a join, or
    /// [`max_task_idle`](Self::max_task_idle)) does not read the other one's whole backlog
    /// into memory. (In the order system a partition of `orders` held 65,000 records of a
    /// 300,000-order run.) At least 1.
    pub buffered_records_per_partition: usize,
    /// Bytes the record caches in front of the instance's key-value stores may hold, split
    /// evenly over its threads (Kafka Streams' `statestore.cache.max.bytes`); 0 turns caching
    /// off. A cache holds a task's writes until it commits, so a key written many times
    /// within a commit interval costs one store write and one changelog record; past its share,
    /// a thread's store writes its least recently written entries through early. Default: 0,
    /// off: in the order system (`rill bench orders`) it cost about a tenth more CPU and gained
    /// no throughput, since persistent stores already merge a key's writes before they reach
    /// the engine and its keys are mostly written once per commit (BENCHMARKS.md). For hot
    /// keys, [`default_cache_max_bytes`](crate::default_cache_max_bytes) (a sixty-fourth of the
    /// process's memory budget, 4 MiB of the default 256 MiB) is a good size. Stores opt out
    /// with [`StoreOptions::with_caching`](crate::StoreOptions::with_caching).
    pub cache_max_bytes: usize,
    /// Told how the restores of stores from their changelogs progress (none by default).
    pub restore_listener: Option<Arc<dyn RestoreListener>>,
    /// Told of every change of the application's state (none by default).
    pub state_listener: Option<super::lifecycle::StateListener>,
    /// Test hook: asked at each [`FaultPoint`]; answering `true` stops the thread there as if
    /// the process died (no commit, no clean shutdown).
    #[doc(hidden)]
    pub fault_injector: Option<FaultInjector>,
}

/// Hears how stores are filled from their changelogs before their tasks run (Kafka Streams'
/// `StateRestoreListener`): for a progress bar, or to tell an operator why a start is slow.
/// Called on the stream threads, so implementations must be quick. Only restores with
/// something to restore are reported.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use rill_log::TopicPartition;
/// use rill_streams::RestoreListener;
///
/// struct Count(AtomicU64);
///
/// impl RestoreListener for Count {
///     fn on_batch_restored(&self, _store: &str, _changelog: &TopicPartition, records: u64) {
///         self.0.fetch_add(records, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait RestoreListener: Send + Sync {
    /// A restore starts with about `to_restore` records to apply (offsets to the end).
    fn on_restore_start(&self, store: &str, changelog: &TopicPartition, to_restore: u64) {
        let _ = (store, changelog, to_restore);
    }

    /// `records` more were applied.
    fn on_batch_restored(&self, store: &str, changelog: &TopicPartition, records: u64) {
        let _ = (store, changelog, records);
    }

    /// The store is up to date after `restored` records.
    fn on_restore_end(&self, store: &str, changelog: &TopicPartition, restored: u64) {
        let _ = (store, changelog, restored);
    }
}

/// Where a stream thread asks the fault injector whether to die.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Records were processed; nothing of them is committed.
    AfterProcess,
    /// Stores are flushed; the commit is next.
    BeforeCommit,
    /// The commit finished.
    AfterCommit,
}

/// Decides whether a thread dies at a fault point.
#[doc(hidden)]
pub type FaultInjector = std::sync::Arc<dyn Fn(FaultPoint) -> bool + Send + Sync>;

impl std::fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsConfig")
            .field("application_id", &self.application_id)
            .field("state_dir", &self.state_dir)
            .field("threads", &self.threads)
            .field("guarantee", &self.guarantee)
            .field("commit_interval", &self.commit_interval)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("deserialization", &self.deserialization)
            .field("application_server", &self.application_server)
            .finish_non_exhaustive()
    }
}

impl StreamsConfig {
    /// Defaults: one thread, exactly-once, 100 ms commit interval, dead-letter topic.
    pub fn new(application_id: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        let application_id = application_id.into();
        Self {
            deserialization: DeserializationPolicy::DeadLetter {
                topic: format!("{application_id}-dlq"),
            },
            processing_errors: ProcessingErrorPolicy::Fail,
            thread_failure: ThreadFailurePolicy::ShutdownApplication,
            standby_replicas: 0,
            application_id,
            state_dir: state_dir.into(),
            threads: 1,
            guarantee: ProcessingGuarantee::ExactlyOnce,
            commit_interval: Duration::from_millis(100),
            application_server: None,
            poll_timeout: Duration::from_millis(50),
            max_poll_records: 2_000,
            buffered_records_per_partition: 1_000,
            cache_max_bytes: 0,
            max_task_idle: Duration::ZERO,
            commit_when_caught_up: true,
            restore_listener: None,
            state_listener: None,
            fault_injector: None,
        }
    }
}
