//! Positions: committed offsets, watermarks, the reset policy, and pausing partitions. Seeking (to offsets, the
//! beginning, the end and timestamps) is in [`timestamps`](super::timestamps).

use rill_log::{
    ErrorClass, OffsetReset, ProducerRecord, RecordMetadata, TopicConfig, TopicPartition,
};

use crate::support::{
    ConsumerSpec, Deadline, POLL_STEP, assert_class, consumer, create_topic, expect_err,
    partitions, poll_count, poll_until_value, producer, reader, send_all, summary, text, unique,
    wait_limit,
};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

/// A one-partition topic holding `count` records valued `v0`, `v1`, ...; returns the topic and
/// their metadata.
fn topic_with_records(
    h: &dyn Harness,
    prefix: &str,
    count: usize,
) -> (String, Vec<RecordMetadata>) {
    let topic = unique(prefix);
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let producer = producer(h);
    let metadata = send_all(
        &*producer,
        (0..count)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(format!("v{i}"))
            })
            .collect(),
    );
    (topic, metadata)
}

/// Consumes the first five of ten records as a group member, commits after the fifth, and
/// closes. Returns the topic partition, the group and the committed offset.
fn consume_five_and_commit(
    h: &dyn Harness,
    prefix: &str,
) -> (TopicPartition, String, i64, Vec<RecordMetadata>) {
    let (topic, metadata) = topic_with_records(h, prefix, 10);
    let tp = TopicPartition::new(&topic, 0);
    let group = unique(prefix);
    let first = consumer(h, &ConsumerSpec::in_group(&group), None);
    first
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribing the first member");
    let got = poll_count(&*first, 5, "the first five records");
    assert_eq!(text(&got[4]), "v4", "fifth record read: {}", summary(&got));
    assert_eq!(
        first
            .committed(std::slice::from_ref(&tp))
            .expect("reading committed offsets"),
        vec![None],
        "a new group already has a committed offset"
    );
    let next = got[4].offset + 1;
    first
        .commit(&[(tp.clone(), next)])
        .expect("committing after the fifth record");
    assert_eq!(
        first
            .committed(std::slice::from_ref(&tp))
            .expect("reading committed offsets"),
        vec![Some(next)],
        "committed() right after commit"
    );
    first.close().expect("closing the first member");
    (tp, group, next, metadata)
}

/// A group's committed offset is where the next member of the group starts reading.
pub fn committed_offsets_resume_a_new_member_of_the_group(h: &mut dyn Harness) {
    let (tp, group, next, metadata) = consume_five_and_commit(h, "resume");
    assert_eq!(next, metadata[5].offset, "the offset after v4 is v5's");

    let second = consumer(h, &ConsumerSpec::in_group(&group), None);
    assert_eq!(
        second
            .committed(std::slice::from_ref(&tp))
            .expect("reading committed offsets"),
        vec![Some(next)],
        "another member of the group sees a different committed offset"
    );
    second
        .subscribe(std::slice::from_ref(&tp.topic))
        .expect("subscribing the second member");
    let got = poll_count(&*second, 5, "the last five records");
    assert_eq!(
        (got[0].offset, text(&got[0])),
        (next, "v5".to_string()),
        "the second member did not resume at the committed offset: {}",
        summary(&got)
    );
}

/// Committed offsets are still there after the log restarts, and a member assigned the
/// partition directly starts from them.
pub fn committed_offsets_survive_a_restart_of_the_log(h: &mut dyn Harness) {
    let (tp, group, next, _) = consume_five_and_commit(h, "restart-commit");
    h.restart().expect("restarting the log");

    let member = consumer(h, &ConsumerSpec::in_group(&group), None);
    assert_eq!(
        member
            .committed(std::slice::from_ref(&tp))
            .expect("reading committed offsets"),
        vec![Some(next)],
        "the committed offset changed across a restart"
    );
    member
        .assign(std::slice::from_ref(&tp))
        .expect("assigning the partition");
    let got = poll_count(&*member, 5, "the last five records after the restart");
    assert_eq!(
        (got[0].offset, text(&got[0])),
        (next, "v5".to_string()),
        "reading did not resume at the committed offset after a restart: {}",
        summary(&got)
    );
}

/// Watermarks of an empty partition are equal; after writing, `high` is the offset after the
/// last record and `low` is at most the first record's offset.
pub fn watermarks_report_the_first_and_the_next_offset(h: &mut dyn Harness) {
    let topic = unique("watermarks");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let tp = TopicPartition::new(&topic, 0);
    let consumer = reader(h, &[tp.clone(), TopicPartition::new(&topic, 1)]);
    let empty = consumer
        .watermarks(&tp)
        .expect("watermarks of an empty partition");
    assert_eq!(empty.low, empty.high, "an empty partition: {empty:?}");

    let producer = producer(h);
    let metadata = send_all(
        &*producer,
        (0..5)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(format!("v{i}"))
            })
            .collect(),
    );
    let marks = consumer.watermarks(&tp).expect("watermarks after writing");
    assert_eq!(
        marks.high,
        metadata[4].offset + 1,
        "high after five records: {marks:?}"
    );
    assert!(
        marks.low <= metadata[0].offset && marks.low >= empty.low,
        "low after five records: {marks:?}, first offset {}",
        metadata[0].offset
    );
    assert!(
        marks.high - marks.low >= 5,
        "five records between {marks:?}"
    );
    let other = consumer
        .watermarks(&TopicPartition::new(&topic, 1))
        .expect("watermarks of the other partition");
    assert_eq!(
        other.low, other.high,
        "writing partition 0 moved partition 1: {other:?}"
    );
}

/// Without a committed offset, `Earliest` starts at the first record and `Latest` at the end,
/// so it reads only records written after it started.
pub fn offset_reset_decides_where_a_group_without_commits_starts(h: &mut dyn Harness) {
    let (topic, metadata) = topic_with_records(h, "reset", 5);
    let tp = TopicPartition::new(&topic, 0);

    let earliest = consumer(
        h,
        &ConsumerSpec::in_group(&unique("earliest")).reset(OffsetReset::Earliest),
        None,
    );
    earliest
        .assign(std::slice::from_ref(&tp))
        .expect("assigning the earliest consumer");
    let got = poll_count(&*earliest, 5, "the five records from the beginning");
    let values: Vec<String> = got.iter().map(text).collect();
    assert_eq!(values, ["v0", "v1", "v2", "v3", "v4"], "Earliest read");

    let latest = consumer(
        h,
        &ConsumerSpec::in_group(&unique("latest")).reset(OffsetReset::Latest),
        None,
    );
    latest
        .assign(std::slice::from_ref(&tp))
        .expect("assigning the latest consumer");
    let end = metadata[4].offset + 1;
    let deadline = Deadline::start();
    loop {
        let early = latest.poll(POLL_STEP).expect("polling the latest consumer");
        assert!(
            early.is_empty(),
            "a Latest consumer read records written before it started: {}",
            summary(&early)
        );
        match latest.position(&tp) {
            Ok(position) if position >= 0 => {
                assert_eq!(position, end, "Latest must start at the end");
                break;
            }
            other => assert!(
                !deadline.passed(),
                "the Latest consumer's position is still unknown after {:?}: {other:?}",
                wait_limit()
            ),
        }
    }
    let producer = producer(h);
    send_all(
        &*producer,
        (0..3)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(format!("new{i}"))
            })
            .collect(),
    );
    let got = poll_count(&*latest, 3, "the three records written after it started");
    let values: Vec<String> = got.iter().map(text).collect();
    assert_eq!(values, ["new0", "new1", "new2"], "Latest read");
}

/// With reset policy `None` and no committed offset, reading fails with an invalid-input
/// error (`OffsetOutOfRange`) instead of picking a position.
pub fn offset_reset_none_without_a_commit_fails_with_offset_out_of_range(h: &mut dyn Harness) {
    let (topic, _) = topic_with_records(h, "reset-none", 3);
    let tp = TopicPartition::new(&topic, 0);
    let consumer = consumer(
        h,
        &ConsumerSpec::in_group(&unique("reset-none")).reset(OffsetReset::None),
        None,
    );
    let deadline = Deadline::start();
    let error = match consumer.assign(std::slice::from_ref(&tp)) {
        Err(e) => e,
        Ok(()) => loop {
            match consumer.poll(POLL_STEP) {
                Err(e) if e.class() != ErrorClass::Retriable => break e,
                Ok(records) if !records.is_empty() => panic!(
                    "a consumer with reset None and no commit read {}",
                    summary(&records)
                ),
                _ => {}
            }
            if let Err(e) = consumer.position(&tp)
                && e.class() == ErrorClass::InvalidInput
            {
                break e;
            }
            assert!(
                !deadline.passed(),
                "reset None without a commit did not fail within {:?}",
                wait_limit()
            );
        },
    };
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        "reset None without a commit",
    );
}

/// A paused partition returns nothing until resumed, while the others go on; it then resumes
/// from its position, skipping and repeating nothing. Pausing an unassigned partition fails as
/// invalid input.
pub fn paused_partitions_return_nothing_until_resumed(h: &mut dyn Harness) {
    let topic = unique("pause");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let producer = producer(h);
    let to = |partition: i32, value: String| {
        ProducerRecord::new(&topic)
            .partition(partition)
            .value(value)
    };
    send_all(
        &*producer,
        (0..5)
            .map(|i| to(0, format!("a{i}")))
            .chain((0..5).map(|i| to(1, format!("b{i}"))))
            .collect(),
    );
    let consumer = reader(h, &partitions(&topic, 2));
    let paused = TopicPartition::new(&topic, 0);
    consumer
        .pause(std::slice::from_ref(&paused))
        .expect("pausing partition 0");
    let mut got = poll_until_value(&*consumer, "b4", "partition 1 while 0 is paused");
    // Another record to wait for, so that partition 0's records, there all along, had every
    // chance to come.
    send_all(&*producer, vec![to(1, "b5".to_string())]);
    got.extend(poll_until_value(&*consumer, "b5", "more of partition 1"));
    assert!(
        got.iter().all(|r| r.partition == 1),
        "records of a paused partition were returned: {}",
        summary(&got)
    );
    consumer
        .resume(std::slice::from_ref(&paused))
        .expect("resuming partition 0");
    let resumed = poll_count(&*consumer, 5, "partition 0 after resume");
    let values: Vec<String> = resumed.iter().map(text).collect();
    assert_eq!(
        values,
        ["a0", "a1", "a2", "a3", "a4"],
        "after resume: {}",
        summary(&resumed)
    );
    let error = expect_err(
        consumer.pause(&[TopicPartition::new(&topic, 2)]),
        "pausing an unassigned partition",
    );
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        "pausing an unassigned partition",
    );
}
