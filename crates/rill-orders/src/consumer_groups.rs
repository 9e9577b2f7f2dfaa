//! Consumer groups as the tools show them (`rill groups`, and `GET /v1/groups` of the topic
//! proxy): every group with its state, or one group with its members and, per partition, the
//! committed offset, the end offset and the lag between them.
//!
//! Everything is read through the log's traits ([`rill_log::Admin`] and a group-less
//! consumer's watermarks), so the answer has the same shape on every backend, and reading it
//! neither joins a group nor moves its offsets.

use std::collections::BTreeMap;

use rill_log::{ConsumerConfig, IsolationLevel, Log, LogError, TopicPartition};
use serde::{Deserialize, Serialize};

/// A group in the list of groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// Group id.
    pub group: String,
    /// Its state (`Empty`, `Stable`, `Rebalancing`, or the backend's own name).
    pub state: String,
}

/// One group: its state, members, and progress per partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupReport {
    /// Group id.
    pub group: String,
    /// Its state (`Empty`, `Stable`, `Rebalancing`, or the backend's own name).
    pub state: String,
    /// Its members, by member id.
    pub members: Vec<MemberReport>,
    /// Every partition the group committed an offset for or a member holds, sorted.
    pub partitions: Vec<PartitionLag>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberReport {
    /// The id the group gave the member.
    pub member_id: String,
    /// Its consumer's client id.
    pub client_id: String,
    /// Where it connects from, when the log knows.
    pub host: Option<String>,
    /// The partitions it holds, when the log knows.
    pub assignment: Option<Vec<PartitionRef>>,
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRef {
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

/// A group's progress in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// The committed offset (the next one to read), if the group committed one.
    pub committed: Option<i64>,
    /// The end offset (high watermark: the offset the next record will get); absent when the
    /// topic no longer exists.
    pub end: Option<i64>,
    /// Records between the committed offset and the end, when both are known.
    pub lag: Option<i64>,
    /// The member holding the partition, if one does.
    pub member: Option<String>,
}

/// Every group the log knows, by id.
pub fn list(log: &dyn Log) -> Result<Vec<GroupSummary>, LogError> {
    Ok(log
        .admin()
        .list_groups()?
        .into_iter()
        .map(|listed| GroupSummary {
            group: listed.group_id,
            state: listed.state.to_string(),
        })
        .collect())
}

/// One group with its members and its lag per partition. Fails with
/// [`LogError::UnknownGroup`] when the log knows no such group.
pub fn report(log: &dyn Log, group: &str) -> Result<GroupReport, LogError> {
    let described = log.admin().describe_group(group)?;
    let committed = log.admin().group_offsets(group)?;
    let mut partitions: BTreeMap<TopicPartition, (Option<i64>, Option<String>)> = committed
        .into_iter()
        .map(|(tp, offset)| (tp, (Some(offset), None)))
        .collect();
    for member in &described.members {
        for tp in member.assignment.iter().flatten() {
            partitions.entry(tp.clone()).or_default().1 = Some(member.member_id.clone());
        }
    }
    // The end is the high watermark, as Kafka's own tools count lag, whatever the isolation
    // level of the group's members.
    let reader = log.consumer(
        &ConsumerConfig {
            isolation: IsolationLevel::ReadUncommitted,
            ..ConsumerConfig::default()
        },
        None,
    )?;
    let mut lags = Vec::with_capacity(partitions.len());
    for (tp, (committed, member)) in partitions {
        let end = match reader.watermarks(&tp) {
            Ok(marks) => Some(marks.high),
            Err(LogError::UnknownTopic { .. } | LogError::UnknownPartition { .. }) => None,
            Err(other) => return Err(other),
        };
        lags.push(PartitionLag {
            lag: committed
                .zip(end)
                .map(|(committed, end)| (end - committed).max(0)),
            topic: tp.topic,
            partition: tp.partition,
            committed,
            end,
            member,
        });
    }
    // Closing only releases the reader; the report is complete.
    let _ = reader.close();
    Ok(GroupReport {
        group: described.group_id,
        state: described.state.to_string(),
        members: described
            .members
            .into_iter()
            .map(|member| MemberReport {
                member_id: member.member_id,
                client_id: member.client_id,
                host: member.host,
                assignment: member.assignment.map(|partitions| {
                    partitions
                        .into_iter()
                        .map(|tp| PartitionRef {
                            topic: tp.topic,
                            partition: tp.partition,
                        })
                        .collect()
                }),
            })
            .collect(),
        partitions: lags,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rill_log::{ProducerRecord, TopicConfig};
    use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};

    use super::*;

    #[test]
    fn a_member_and_its_lag_are_reported_per_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).expect("open");
        log.admin()
            .create_topic("t", &TopicConfig::with_partitions(2))
            .expect("create");
        let producer = log.producer(&Default::default()).expect("producer");
        for p in [0, 0, 0, 1] {
            producer
                .send(ProducerRecord::new("t").partition(p).value("v"))
                .expect("send")
                .wait()
                .expect("written");
        }
        let member = log
            .consumer(
                &ConsumerConfig {
                    client_id: Some("reader".into()),
                    ..ConsumerConfig::group("g")
                },
                None,
            )
            .expect("consumer");
        member.subscribe(&["t".to_string()]).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(10);
        while member.assignment().expect("assignment").len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the member never got both partitions"
            );
            member.poll(Duration::from_millis(50)).expect("poll");
        }
        member
            .commit(&[(TopicPartition::new("t", 0), 1)])
            .expect("commit");

        assert_eq!(
            list(&log).expect("list"),
            vec![GroupSummary {
                group: "g".into(),
                state: "Stable".into()
            }]
        );
        let report = report(&log, "g").expect("report");
        assert_eq!(report.state, "Stable");
        assert_eq!(report.members.len(), 1);
        let holder = report.members[0].member_id.clone();
        assert_eq!(report.members[0].client_id, "reader");
        assert_eq!(
            report.partitions,
            vec![
                PartitionLag {
                    topic: "t".into(),
                    partition: 0,
                    committed: Some(1),
                    end: Some(3),
                    lag: Some(2),
                    member: Some(holder.clone()),
                },
                PartitionLag {
                    topic: "t".into(),
                    partition: 1,
                    committed: None,
                    end: Some(1),
                    lag: None,
                    member: Some(holder),
                },
            ]
        );
        assert!(matches!(
            super::report(&log, "nobody"),
            Err(LogError::UnknownGroup { .. })
        ));
    }
}
