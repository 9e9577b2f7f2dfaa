//! Creating, deleting, listing and describing topics; listing and describing consumer groups
//! and reading their committed offsets.

use crate::{GroupDescription, GroupListing, Offset, Result, TopicConfig, TopicPartition};

/// A topic as the log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its configuration (what the backend reports; fields it cannot report keep defaults).
    pub config: TopicConfig,
}

/// Topic and consumer-group administration.
///
/// The group calls only look: they neither join a group nor change its offsets, so they are
/// safe to call while the group's members run.
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

    /// Consumer groups the log knows, sorted by id: those with members and those holding
    /// committed offsets.
    fn list_groups(&self) -> Result<Vec<GroupListing>>;

    /// Describes one group: its state and its members with what they are assigned. Fails with
    /// [`LogError::UnknownGroup`](crate::LogError::UnknownGroup) when the group has neither
    /// members nor committed offsets.
    fn describe_group(&self, group: &str) -> Result<GroupDescription>;

    /// The group's committed offsets (the next offset to read), sorted by partition; empty for
    /// a group that has committed nothing, or does not exist.
    fn group_offsets(&self, group: &str) -> Result<Vec<(TopicPartition, Offset)>>;
}
