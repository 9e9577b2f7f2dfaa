//! Bad input: partitions that do not exist, records too large, group operations without a
//! group, operations on partitions not assigned.

use rill_log::{ErrorClass, LogError, ProducerRecord, SeekTo, TopicConfig, TopicPartition};

use crate::support::{
    ConsumerSpec, assert_class, consumer, create_topic, expect_err, poll_count, producer, reader,
    send_all, send_expecting_error, summary, text, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

/// Producing to partition N of an N-partition topic fails with `UnknownPartition` naming the
/// topic, the partition and the partition count.
pub fn producing_to_a_partition_out_of_range_fails_with_unknown_partition(h: &mut dyn Harness) {
    let topic = unique("bad-partition");
    create_topic(h, &topic, TopicConfig::with_partitions(3));
    let producer = producer(h);
    let error = send_expecting_error(
        &*producer,
        ProducerRecord::new(&topic).partition(3).value("nowhere"),
    );
    match &error {
        LogError::UnknownPartition {
            topic: t,
            partition,
            partitions,
        } => {
            assert_eq!(t, &topic, "topic named by UnknownPartition");
            assert_eq!(*partition, 3, "partition named by UnknownPartition");
            assert_eq!(*partitions, 3, "partition count named by UnknownPartition");
        }
        other => panic!("expected UnknownPartition for {topic}-3, got {other:?}"),
    }
    assert_class(&error, ErrorClass::InvalidInput, "UnknownPartition");
    // The producer still works for valid partitions.
    send_all(
        &*producer,
        vec![ProducerRecord::new(&topic).partition(2).value("fine")],
    );
}

/// A record larger than the backend's limit is refused as invalid input (`RecordTooLarge`, or
/// a backend error of that class), nothing of it is written, and the producer keeps working.
pub fn an_oversized_record_is_refused_as_invalid_input(h: &mut dyn Harness) {
    let topic = unique("too-large");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let producer = producer(h);
    let size = h.oversized_value_bytes();
    let error = send_expecting_error(
        &*producer,
        ProducerRecord::new(&topic)
            .partition(0)
            .value(vec![b'x'; size]),
    );
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        &format!("a record of {size} bytes"),
    );
    if let LogError::RecordTooLarge {
        topic: t,
        size: reported,
        max,
    } = &error
    {
        assert_eq!(t, &topic, "topic named by RecordTooLarge");
        assert!(
            reported > max && *reported >= size,
            "RecordTooLarge reports size {reported} and max {max} for a {size}-byte value"
        );
    }
    send_all(
        &*producer,
        vec![ProducerRecord::new(&topic).partition(0).value("small")],
    );
    let consumer = reader(h, &[TopicPartition::new(&topic, 0)]);
    let got = poll_count(&*consumer, 1, "the small record");
    assert_eq!(
        got.iter().map(text).collect::<Vec<_>>(),
        ["small"],
        "the partition holds more than the small record: {}",
        summary(&got)
    );
}

/// A consumer without a group id cannot commit or subscribe (`NoGroup`) and has no group
/// metadata, but can still read assigned partitions.
pub fn committing_or_subscribing_without_a_group_fails_with_no_group(h: &mut dyn Harness) {
    let topic = unique("no-group");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let tp = TopicPartition::new(&topic, 0);
    let consumer = consumer(h, &ConsumerSpec::standalone(), None);
    consumer
        .assign(std::slice::from_ref(&tp))
        .expect("assigning without a group");
    let error = expect_err(
        consumer.commit(&[(tp.clone(), 0)]),
        "commit without a group",
    );
    assert!(
        matches!(error, LogError::NoGroup { .. }),
        "commit without a group: expected NoGroup, got {error:?}"
    );
    let error = expect_err(
        consumer.subscribe(std::slice::from_ref(&topic)),
        "subscribe without a group",
    );
    assert!(
        matches!(error, LogError::NoGroup { .. }),
        "subscribe without a group: expected NoGroup, got {error:?}"
    );
    assert!(
        consumer.group_metadata().is_none(),
        "a consumer without a group has group metadata"
    );
}

/// Seeking a partition the consumer is not assigned fails as invalid input (`NotAssigned`).
pub fn seeking_a_partition_that_is_not_assigned_fails_as_invalid_input(h: &mut dyn Harness) {
    let topic = unique("not-assigned");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let consumer = reader(h, &[TopicPartition::new(&topic, 0)]);
    let error = expect_err(
        consumer.seek(&TopicPartition::new(&topic, 1), SeekTo::Beginning),
        "seeking an unassigned partition",
    );
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        "seeking an unassigned partition",
    );
}
