//! Creating, deleting, listing and describing topics.

use crate::{Result, TopicConfig};

/// A topic as the log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its configuration (what the backend reports; fields it cannot report keep defaults).
    pub config: TopicConfig,
}

/// Topic administration.
pub trait Admin: Send + Sync {
    /// Creates a topic. Fails with [`LogError::TopicExists`](crate::LogError::TopicExists)
    /// when it exists.
    fn create_topic(&self, name: &str, config: &TopicConfig) -> Result<()>;

    /// Deletes a topic and its records.
    fn delete_topic(&self, name: &str) -> Result<()>;

    /// Names of all topics, sorted.
    fn list_topics(&self) -> Result<Vec<String>>;

    /// Describes one topic.
    fn describe_topic(&self, name: &str) -> Result<TopicDescription>;
}
