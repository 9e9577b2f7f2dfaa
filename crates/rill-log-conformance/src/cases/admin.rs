//! Topic administration: create, list, describe, delete, and their errors.

use std::time::Duration;

use rill_log::{CleanupPolicy, ErrorClass, LogError, ProducerRecord, TopicConfig};

use crate::support::{
    Deadline, assert_class, create_topic, expect_err, producer, send_expecting_error, unique,
    wait_limit,
};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

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

/// Creating a topic that exists fails with `TopicExists` and leaves the topic as it was.
pub fn creating_an_existing_topic_fails_with_topic_exists(h: &mut dyn Harness) {
    let topic = unique("exists");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let mut again = TopicConfig::with_partitions(5);
    h.tune_topic(&mut again);
    let error = expect_err(
        h.log().admin().create_topic(&topic, &again),
        "creating an existing topic",
    );
    assert!(
        matches!(&error, LogError::TopicExists { topic: t } if *t == topic),
        "expected TopicExists for {topic}, got {error:?}"
    );
    assert_class(&error, ErrorClass::InvalidInput, "TopicExists");
    let described = h
        .log()
        .admin()
        .describe_topic(&topic)
        .expect("describing the topic");
    assert_eq!(
        described.config.partitions, 2,
        "the failed create changed the topic"
    );
}

/// A topic that does not exist is `UnknownTopic` to describe, delete and produce.
pub fn a_missing_topic_is_unknown_to_describe_produce_and_delete(h: &mut dyn Harness) {
    let topic = unique("missing");
    let error = expect_err(
        h.log().admin().describe_topic(&topic),
        "describing a missing topic",
    );
    assert!(
        matches!(&error, LogError::UnknownTopic { topic: t } if *t == topic),
        "describe: expected UnknownTopic for {topic}, got {error:?}"
    );
    let error = expect_err(
        h.log().admin().delete_topic(&topic),
        "deleting a missing topic",
    );
    assert!(
        matches!(&error, LogError::UnknownTopic { topic: t } if *t == topic),
        "delete: expected UnknownTopic for {topic}, got {error:?}"
    );
    let producer = producer(h);
    let error = send_expecting_error(&*producer, ProducerRecord::new(&topic).value("lost"));
    assert!(
        matches!(&error, LogError::UnknownTopic { topic: t } if *t == topic),
        "produce: expected UnknownTopic for {topic}, got {error:?}"
    );
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        "producing to a missing topic",
    );
    assert!(
        !h.log()
            .admin()
            .list_topics()
            .expect("listing topics")
            .contains(&topic),
        "producing to a missing topic created it"
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

/// Topic configurations no backend can honour (no partitions, a name that is empty or a path)
/// are refused as invalid input, and no topic is created.
pub fn invalid_topic_configs_are_refused(h: &mut dyn Harness) {
    let topic = unique("zero-partitions");
    let mut config = TopicConfig::with_partitions(0);
    h.tune_topic(&mut config);
    let error = expect_err(
        h.log().admin().create_topic(&topic, &config),
        "creating a topic with 0 partitions",
    );
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        "a topic with 0 partitions",
    );

    let mut config = TopicConfig::with_partitions(1);
    h.tune_topic(&mut config);
    for name in [String::new(), format!("{topic}/nested"), "..".to_string()] {
        let error = expect_err(
            h.log().admin().create_topic(&name, &config),
            &format!("creating a topic named {name:?}"),
        );
        assert_class(
            &error,
            ErrorClass::InvalidInput,
            &format!("a topic named {name:?}"),
        );
    }
    let listed = h.log().admin().list_topics().expect("listing topics");
    assert!(
        !listed
            .iter()
            .any(|t| t.starts_with(&topic) || t.is_empty() || t == ".."),
        "a refused topic was created: {listed:?}"
    );
}
