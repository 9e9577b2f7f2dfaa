//! Creates the internal topics an application needs and checks co-partitioning.

use std::collections::HashMap;

use rill_log::{CleanupPolicy, Log, LogError, TopicConfig};

use crate::error::{Result, StreamsError};
use crate::graph::{TopicName, Topology, changelog_topic};
use crate::task::{DeserializationPolicy, ProcessingErrorPolicy};

/// Partition counts the application runs with.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopicLayout {
    /// Partitions (= tasks) per sub-topology.
    pub subtopology_partitions: HashMap<usize, i32>,
    /// Partitions per store (= of its sub-topology), for interactive queries.
    pub store_partitions: HashMap<String, i32>,
    /// Sub-topology of each store.
    pub store_subtopology: HashMap<String, usize>,
}

/// The topic where instances publish their host and tasks.
pub(crate) fn instances_topic(application_id: &str) -> String {
    format!("{application_id}-instances")
}

fn create(log: &dyn Log, name: &str, config: TopicConfig) -> Result<()> {
    match log.admin().create_topic(name, &config) {
        Ok(()) | Err(LogError::TopicExists { .. }) => Ok(()),
        Err(error) => Err(StreamsError::log("creating an internal topic", error)),
    }
}

fn partitions_of(log: &dyn Log, topic: &str) -> Result<i32> {
    log.admin()
        .describe_topic(topic)
        .map(|d| d.config.partitions)
        .map_err(|error| StreamsError::log("describing a source topic", error))
}

/// Creates repartition, changelog, dead-letter and instances topics (keeping existing ones)
/// and checks that the inputs of each sub-topology have the same partition count.
pub(crate) fn prepare(
    log: &dyn Log,
    topology: &Topology,
    application_id: &str,
    deserialization: &DeserializationPolicy,
    processing: &ProcessingErrorPolicy,
) -> Result<TopicLayout> {
    let mut external_max = 1;
    for sub in topology.subtopologies() {
        for topic in &sub.source_topics {
            if let TopicName::External(name) = topic {
                external_max = external_max.max(partitions_of(log, name)?);
            }
        }
    }
    for global in &topology.global_stores {
        partitions_of(log, &global.topic)?;
    }
    for (suffix, partitions) in &topology.repartition_topics {
        create(
            log,
            &format!("{application_id}-{suffix}"),
            TopicConfig::with_partitions(partitions.unwrap_or(external_max)),
        )?;
    }
    let mut layout = TopicLayout::default();
    for sub in topology.subtopologies() {
        let mut count = None;
        for topic in &sub.source_topics {
            let name = topic.resolve(application_id);
            let partitions = partitions_of(log, &name)?;
            match count {
                None => count = Some(partitions),
                Some(c) if c != partitions => {
                    return Err(StreamsError::NotCopartitioned {
                        subtopology: sub.id,
                        topic: name.to_string(),
                        partitions,
                        others: c,
                    });
                }
                Some(_) => {}
            }
        }
        let partitions = count.unwrap_or(1);
        layout.subtopology_partitions.insert(sub.id, partitions);
        for store in &sub.stores {
            layout.store_partitions.insert(store.clone(), partitions);
            layout.store_subtopology.insert(store.clone(), sub.id);
            let logged = topology.stores.iter().any(|s| &s.name == store && s.logged);
            if logged {
                create(
                    log,
                    &changelog_topic(application_id, store),
                    TopicConfig::with_partitions(partitions).cleanup_policy(CleanupPolicy::Compact),
                )?;
            }
        }
    }
    if let DeserializationPolicy::DeadLetter { topic } = deserialization {
        create(log, topic, TopicConfig::with_partitions(external_max))?;
    }
    if let ProcessingErrorPolicy::DeadLetter { topic } = processing {
        create(log, topic, TopicConfig::with_partitions(external_max))?;
    }
    create(
        log,
        &instances_topic(application_id),
        TopicConfig::with_partitions(1).cleanup_policy(CleanupPolicy::Compact),
    )?;
    Ok(layout)
}
