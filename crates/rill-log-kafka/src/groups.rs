//! Consumer groups for [`rill_log::Admin`]: groups, states and members through ListGroups and
//! DescribeGroups (librdkafka's `rd_kafka_list_groups`), committed offsets through OffsetFetch
//! from a consumer that carries the group's id but never joins it.
//!
//! Both use Kafka's classic group requests, the protocol librdkafka's consumers (and so rill's)
//! use by default. A group the broker describes as `Dead` (being removed, or not there for the
//! classic DescribeGroups) is left out.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::groups::GroupInfo;
use rdkafka::metadata::Metadata;
use rdkafka::{ClientConfig, Offset as KafkaOffset, TopicPartitionList};
use rill_log::{GroupDescription, GroupMember, GroupState, Offset, Result, TopicPartition};

use crate::error::{self, Ctx};

/// The protocol type of groups formed by consumers: their member assignments are encoded as
/// Kafka's ConsumerProtocolAssignment.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Every group the cluster's brokers list, or only `group`, described; sorted by id.
pub(crate) fn describe<C: ClientContext>(
    client: &Client<C>,
    group: Option<&str>,
    timeout: Duration,
) -> Result<Vec<GroupDescription>> {
    let list = client
        .fetch_group_list(group, timeout)
        .map_err(|e| error::map("list groups", e, &Ctx::timeout(timeout)))?;
    // A group moving between coordinators may be listed by two brokers: keep one.
    let mut found: BTreeMap<String, GroupDescription> = BTreeMap::new();
    for info in list.groups() {
        if let Some(state) = state_of(info.state()) {
            found
                .entry(info.name().to_string())
                .or_insert_with(|| description(info, state));
        }
    }
    Ok(found.into_values().collect())
}

/// The rill state for a classic group state; `None` for `Dead` (see the module's note).
fn state_of(state: &str) -> Option<GroupState> {
    Some(match state {
        "Empty" => GroupState::Empty,
        "Stable" => GroupState::Stable,
        "PreparingRebalance" | "CompletingRebalance" => GroupState::Rebalancing,
        "Dead" => return None,
        other => GroupState::Other(other.to_string()),
    })
}

fn description(info: &GroupInfo, state: GroupState) -> GroupDescription {
    let consumers = info.protocol_type() == CONSUMER_PROTOCOL_TYPE;
    let mut members: Vec<GroupMember> = info
        .members()
        .iter()
        .map(|member| GroupMember {
            member_id: member.id().to_string(),
            client_id: member.client_id().to_string(),
            host: Some(member.client_host().to_string()).filter(|host| !host.is_empty()),
            // librdkafka hands an empty assignment (a member not yet synced) over as none.
            assignment: consumers
                .then(|| {
                    member
                        .assignment()
                        .map_or(Some(Vec::new()), decode_assignment)
                })
                .flatten(),
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    GroupDescription {
        group_id: info.name().to_string(),
        state,
        members,
    }
}

/// Reads a ConsumerProtocolAssignment (every version starts the same: version int16, then
/// an array of topics, each a string and an array of int32 partitions; the user data after
/// them is not needed). `None` when the bytes do not hold one.
fn decode_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    let mut reader = Reader(bytes);
    let _version = reader.i16()?;
    let mut partitions = Vec::new();
    // A negative count is a null array: nothing assigned.
    for _ in 0..reader.i32()?.max(0) {
        let length = usize::try_from(reader.i16()?).ok()?;
        let topic = std::str::from_utf8(reader.take(length)?).ok()?.to_string();
        for _ in 0..reader.i32()?.max(0) {
            partitions.push(TopicPartition::new(topic.clone(), reader.i32()?));
        }
    }
    partitions.sort();
    Some(partitions)
}

/// Big-endian reads from a byte slice, failing (with `None`) past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The committed offsets of `group` among the partitions of every topic in `metadata`.
///
/// OffsetFetch through librdkafka needs the partitions named, so all of them are asked for in
/// one request. The consumer that asks carries the group's id but never subscribes, so it
/// neither joins the group nor disturbs its members, and it commits nothing.
pub(crate) fn committed(
    base: &ClientConfig,
    metadata: &Metadata,
    group: &str,
    timeout: Duration,
) -> Result<Vec<(TopicPartition, Offset)>> {
    let mut asked = TopicPartitionList::new();
    for topic in metadata.topics() {
        if topic.error().is_some() || topic.name().starts_with("__") {
            continue;
        }
        for partition in topic.partitions() {
            asked.add_partition(topic.name(), partition.id());
        }
    }
    if asked.count() == 0 {
        return Ok(Vec::new());
    }
    let mut config = base.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Read-committed consumers ask for stable offsets only, and the broker then makes them
        // wait out a transaction that is committing offsets for the group: a look must not.
        .set("isolation.level", "read_uncommitted");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| crate::create_error("create consumer for committed offsets", e))?;
    let found = consumer
        .committed_offsets(asked, timeout)
        .map_err(|e| error::map("group offsets", e, &Ctx::timeout(timeout)))?;
    let mut offsets: Vec<(TopicPartition, Offset)> = found
        .elements()
        .iter()
        .filter(|element| element.error().is_ok())
        .filter_map(|element| match element.offset() {
            KafkaOffset::Offset(offset) => Some((
                TopicPartition::new(element.topic(), element.partition()),
                offset,
            )),
            _ => None,
        })
        .collect();
    offsets.sort();
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ConsumerProtocolAssignment as Kafka's clients write it.
    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend((topic.len() as i16).to_be_bytes());
            out.extend(topic.as_bytes());
            out.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend(p.to_be_bytes());
            }
        }
        out.extend((user_data.len() as i32).to_be_bytes());
        out.extend(user_data);
        out
    }

    #[test]
    fn assignments_decode_sorted_with_user_data_ignored() {
        let bytes = encode(3, &[("orders", &[2, 0]), ("audit", &[1])], b"sticky");
        assert_eq!(
            decode_assignment(&bytes),
            Some(vec![
                TopicPartition::new("audit", 1),
                TopicPartition::new("orders", 0),
                TopicPartition::new("orders", 2),
            ])
        );
        assert_eq!(decode_assignment(&encode(0, &[], &[])), Some(Vec::new()));
    }

    #[test]
    fn truncated_assignments_are_refused() {
        let bytes = encode(1, &[("orders", &[0, 1])], &[]);
        // Cut inside the last partition number.
        assert_eq!(decode_assignment(&bytes[..bytes.len() - 6]), None);
        assert_eq!(decode_assignment(&[0]), None);
    }

    #[test]
    fn classic_states_map_and_dead_groups_are_left_out() {
        assert_eq!(state_of("Stable"), Some(GroupState::Stable));
        assert_eq!(state_of("Empty"), Some(GroupState::Empty));
        assert_eq!(
            state_of("CompletingRebalance"),
            Some(GroupState::Rebalancing)
        );
        assert_eq!(state_of("Dead"), None);
        assert_eq!(
            state_of("Assigning"),
            Some(GroupState::Other("Assigning".into()))
        );
    }
}
