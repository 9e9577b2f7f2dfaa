use std::path::PathBuf;
use std::time::Duration;

use crate::task::DeserializationPolicy;

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
#[derive(Debug, Clone)]
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
    /// `host:port` where this instance serves interactive queries, published to the others.
    pub application_server: Option<String>,
    /// Longest wait for records in one poll.
    pub poll_timeout: Duration,
}

impl StreamsConfig {
    /// Defaults: one thread, exactly-once, 100 ms commit interval, dead-letter topic.
    pub fn new(application_id: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        let application_id = application_id.into();
        Self {
            deserialization: DeserializationPolicy::DeadLetter {
                topic: format!("{application_id}-dlq"),
            },
            application_id,
            state_dir: state_dir.into(),
            threads: 1,
            guarantee: ProcessingGuarantee::ExactlyOnce,
            commit_interval: Duration::from_millis(100),
            application_server: None,
            poll_timeout: Duration::from_millis(50),
        }
    }
}
