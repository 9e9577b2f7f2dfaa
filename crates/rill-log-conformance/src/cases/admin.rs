//! Topic administration every backend offers: a topic's partitions are known, and creating
//! an existing topic, using a missing one or creating an invalid one fails with a typed error.
//! Deleting topics and reading a topic's configuration back are in
//! [`topic_admin`](super::topic_admin).

use rill_log::{ErrorClass, LogError, ProducerRecord, TopicConfig};

use crate::support::{
    assert_class, create_topic, expect_err, producer, send_expecting_error, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

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
