//! Topic administration beyond creating topics: deleting them, and reading back the
//! configuration a topic was created with.

use std::time::Duration;

use rill_log::{CleanupPolicy, LogError, TopicConfig};

use crate::support::{Deadline, create_topic, unique, wait_limit};
use crate::{Feature, Harness};

/// Feature group these cases need: [`Feature::TopicAdmin`].
pub const FEATURE: Option<Feature> = Some(Feature::TopicAdmin);

fn wait_until_unknown(h: &dyn Harness, topic: &str) {
    let deadline = Deadline::start();
    loop {
        let listed = h
            .log()
            .admin()
            .list_topics()
            .expect("listing topics")
            .contains(&topic.to_string());
        let described = h.log().admin().describe_topic(topic);
        match (listed, described) {
            (false, Err(LogError::UnknownTopic { .. })) => return,
            (listed, described) => {
                assert!(
                    !deadline.passed(),
                    "topic {topic} was deleted but after {:?} it is still listed ({listed}) or \
                     described ({described:?})",
                    wait_limit()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Created topics are listed (sorted) and described with their partitions; a deleted topic
/// disappears from the list and from describe, and other topics stay.
pub fn topics_can_be_created_listed_described_and_deleted(h: &mut dyn Harness) {
    let first = unique("admin-a");
    let second = unique("admin-b");
    create_topic(h, &first, TopicConfig::with_partitions(3));
    create_topic(h, &second, TopicConfig::with_partitions(1));

    let listed = h.log().admin().list_topics().expect("listing topics");
    assert!(
        listed.contains(&first) && listed.contains(&second),
        "list_topics misses a created topic: {listed:?}"
    );
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "list_topics is not sorted");

    let described = h
        .log()
        .admin()
        .describe_topic(&first)
        .expect("describing the first topic");
    assert_eq!(described.name, first, "described name");
    assert_eq!(described.config.partitions, 3, "described partitions");

    h.log()
        .admin()
        .delete_topic(&first)
        .expect("deleting the first topic");
    wait_until_unknown(h, &first);

    let listed = h.log().admin().list_topics().expect("listing topics");
    assert!(
        listed.contains(&second),
        "deleting {first} removed {second} too: {listed:?}"
    );
    assert_eq!(
        h.log()
            .admin()
            .describe_topic(&second)
            .expect("describing the second topic")
            .config
            .partitions,
        1
    );
}

/// Describe reports the partition count and the cleanup policy (delete, compact, both) a topic
/// was created with.
pub fn describe_reports_partitions_and_cleanup_policy(h: &mut dyn Harness) {
    for (policy, partitions) in [
        (CleanupPolicy::Compact, 4),
        (CleanupPolicy::Delete, 2),
        (CleanupPolicy::CompactDelete, 1),
    ] {
        let topic = unique("policy");
        create_topic(
            h,
            &topic,
            TopicConfig::with_partitions(partitions).cleanup_policy(policy),
        );
        let described = h
            .log()
            .admin()
            .describe_topic(&topic)
            .expect("describing the topic");
        assert_eq!(described.name, topic);
        assert_eq!(
            described.config.partitions, partitions,
            "partitions of the {policy:?} topic"
        );
        assert_eq!(
            described.config.cleanup_policy, policy,
            "cleanup policy reported for a topic created with {policy:?}"
        );
    }
}
