//! Consumer groups as an administrator sees them: which groups exist, their state, their
//! members and what each member is assigned. Committed offsets are read with
//! [`Admin::group_offsets`](crate::Admin::group_offsets).

use std::fmt;

use crate::TopicPartition;

/// Where a consumer group stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Members hold their assignments and no rebalance is under way.
    Stable,
    /// Members are joining, leaving or moving partitions (Kafka's `PreparingRebalance` and
    /// `CompletingRebalance`).
    Rebalancing,
    /// A state this crate has no name for, as the backend reported it.
    Other(String),
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupState::Empty => "Empty",
            GroupState::Stable => "Stable",
            GroupState::Rebalancing => "Rebalancing",
            GroupState::Other(name) => name,
        })
    }
}

/// A group as [`Admin::list_groups`](crate::Admin::list_groups) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Its state when listed.
    pub state: GroupState,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The id the group gave the member.
    pub member_id: String,
    /// The client id the member's consumer was configured with.
    pub client_id: String,
    /// Where the member connects from, when the backend knows (Kafka: the address the broker
    /// saw, e.g. `/127.0.0.1`); `None` on the embedded log, whose members are in process.
    pub host: Option<String>,
    /// Partitions the member holds, sorted; `None` when the backend cannot tell (a Kafka
    /// group whose protocol type is not `consumer`).
    pub assignment: Option<Vec<TopicPartition>>,
}

/// A group as [`Admin::describe_group`](crate::Admin::describe_group) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// Its members, sorted by member id.
    pub members: Vec<GroupMember>,
}
