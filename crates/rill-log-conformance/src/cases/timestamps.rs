//! Record timestamps: the create time a producer sets is the one acknowledged and consumed, a
//! record sent without one gets the time of sending, and seeking to a timestamp finds the
//! first record at or after it.
//!
//! These cases check more alongside (acknowledged partitions and offsets, headers and null
//! fields coming back as sent, seeking to an offset, the beginning and the end); they are in
//! this group because each also asserts on timestamps.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_log::{Header, ProducerRecord, SeekTo, TopicConfig, TopicPartition, partition_for_key};

use crate::support::{
    create_topic, now_ms, partitions, poll_count, poll_until, producer, reader, send_all, summary,
    text, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: [`Feature::Timestamps`].
pub const FEATURE: Option<Feature> = Some(Feature::Timestamps);

/// The metadata of each acknowledged record (topic, partition, offset, timestamp) is where the
/// consumer finds it, and offsets acknowledged within a partition increase.
pub fn acknowledged_offsets_increase_and_match_consumed_offsets(h: &mut dyn Harness) {
    let topic = unique("offsets");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let producer = producer(h);
    let base = now_ms() - 60_000;
    let records = (0..60)
        .map(|i| {
            ProducerRecord::new(&topic)
                .key(format!("k{}", i % 7))
                .value(format!("v{i}"))
                .timestamp(base + i)
        })
        .collect();
    let metadata = send_all(&*producer, records);

    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut by_position: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for (i, meta) in metadata.iter().enumerate() {
        assert_eq!(meta.topic, topic, "metadata names another topic");
        assert_eq!(
            meta.partition,
            partition_for_key(format!("k{}", i % 7).as_bytes(), 2),
            "metadata partition of v{i}"
        );
        assert_eq!(
            meta.timestamp,
            base + i as i64,
            "metadata timestamp of v{i}"
        );
        assert!(meta.offset >= 0, "negative offset {} for v{i}", meta.offset);
        if let Some(previous) = last.insert(meta.partition, meta.offset) {
            assert!(
                meta.offset > previous,
                "v{i} got offset {} after {previous} in partition {}",
                meta.offset,
                meta.partition
            );
        }
        by_position.insert((meta.partition, meta.offset), format!("v{i}"));
    }

    let consumer = reader(h, &partitions(&topic, 2));
    let got = poll_count(&*consumer, 60, "every record");
    let consumed: BTreeMap<(i32, i64), String> = got
        .iter()
        .map(|r| ((r.partition, r.offset), text(r)))
        .collect();
    assert_eq!(
        consumed, by_position,
        "records were not found at the partition and offset their metadata gave"
    );
}

/// Timestamps, headers (in order, repeated names, a null value), null keys, null values,
/// empty (non-null) keys and values, and binary bytes come back exactly as sent.
pub fn timestamps_headers_and_null_fields_round_trip(h: &mut dyn Harness) {
    let topic = unique("fields");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let producer = producer(h);
    let t = 1_700_000_000_123_i64;
    let binary: Vec<u8> = (0..=255).collect();
    let records = vec![
        ProducerRecord::new(&topic)
            .partition(0)
            .key("k1")
            .value("v1")
            .timestamp(t)
            .header(Header::new("h1", "a"))
            .header(Header {
                key: "null-valued".to_string(),
                value: None,
            })
            .header(Header::new("h1", "b"))
            .header(Header::new("empty", Bytes::new())),
        ProducerRecord::new(&topic)
            .partition(0)
            .value("no key")
            .timestamp(t + 1),
        ProducerRecord::new(&topic)
            .partition(0)
            .key("no value")
            .timestamp(t + 2),
        ProducerRecord::new(&topic).partition(0).timestamp(t + 3),
        ProducerRecord::new(&topic)
            .partition(0)
            .key(Bytes::new())
            .value(Bytes::new())
            .timestamp(t + 4),
        ProducerRecord::new(&topic)
            .partition(0)
            .key(binary.clone())
            .value(binary)
            .timestamp(t + 5)
            .header(Header::new("bin", vec![0_u8, 255, 0])),
    ];
    let metadata = send_all(&*producer, records.clone());
    for (sent, meta) in records.iter().zip(&metadata) {
        assert_eq!(
            Some(meta.timestamp),
            sent.timestamp,
            "acknowledged timestamp"
        );
    }

    let consumer = reader(h, &[TopicPartition::new(&topic, 0)]);
    let got = poll_count(&*consumer, records.len(), "every record");
    assert_eq!(got.len(), records.len(), "extra records: {}", summary(&got));
    for (i, (sent, read)) in records.iter().zip(&got).enumerate() {
        assert_eq!(read.key, sent.key, "key of record {i}");
        assert_eq!(read.value, sent.value, "value of record {i}");
        assert_eq!(
            Some(read.timestamp),
            sent.timestamp,
            "timestamp of record {i}"
        );
        assert_eq!(read.headers, sent.headers, "headers of record {i}");
        assert_eq!(&*read.topic, topic.as_str(), "topic of record {i}");
        assert_eq!(read.offset, metadata[i].offset, "offset of record {i}");
    }
}

/// A record sent without a timestamp gets the time it was sent (create time).
pub fn records_without_a_timestamp_get_the_time_of_sending(h: &mut dyn Harness) {
    let topic = unique("send-time");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let producer = producer(h);
    // A generous margin for clock granularity: this checks the meaning of the timestamp,
    // not how fast anything is.
    let before = now_ms() - 5_000;
    let metadata = send_all(&*producer, vec![ProducerRecord::new(&topic).value("now")]);
    let after = now_ms() + 5_000;
    assert!(
        (before..=after).contains(&metadata[0].timestamp),
        "acknowledged timestamp {} is not the time of sending (~{})",
        metadata[0].timestamp,
        now_ms()
    );
    let consumer = reader(h, &[TopicPartition::new(&topic, 0)]);
    let got = poll_count(&*consumer, 1, "the record");
    assert_eq!(
        got[0].timestamp, metadata[0].timestamp,
        "consumed timestamp differs from the acknowledged one"
    );
}

/// Seeking to an offset, the beginning, the end and a timestamp moves the position there, and
/// the next poll returns the record at that position.
pub fn seek_moves_to_the_beginning_the_end_an_offset_or_a_timestamp(h: &mut dyn Harness) {
    let topic = unique("seek");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let producer = producer(h);
    let base = now_ms() - 3_600_000;
    let metadata = send_all(
        &*producer,
        (0..10)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(format!("v{i}"))
                    .timestamp(base + 1_000 * i)
            })
            .collect(),
    );
    let tp = TopicPartition::new(&topic, 0);
    let consumer = reader(h, std::slice::from_ref(&tp));
    let got = poll_count(&*consumer, 10, "all ten records");
    assert_eq!(text(&got[9]), "v9");
    assert_eq!(
        consumer.position(&tp).expect("position after reading all"),
        metadata[9].offset + 1,
        "position after reading the last record"
    );

    let first_after_seek = |to: SeekTo, expected: &str| {
        consumer
            .seek(&tp, to)
            .unwrap_or_else(|e| panic!("seek to {to:?} failed: {e}"));
        let got = poll_until(
            &*consumer,
            &format!("a record after seeking to {to:?}"),
            |r| !r.is_empty(),
        );
        assert_eq!(
            text(&got[0]),
            expected,
            "first record after seeking to {to:?}: {}",
            summary(&got)
        );
    };

    consumer
        .seek(&tp, SeekTo::Offset(metadata[4].offset))
        .expect("seeking to v4's offset");
    assert_eq!(
        consumer.position(&tp).expect("position after seek"),
        metadata[4].offset,
        "position after seeking to an offset"
    );
    first_after_seek(SeekTo::Offset(metadata[4].offset), "v4");
    first_after_seek(SeekTo::Beginning, "v0");
    first_after_seek(SeekTo::Timestamp(base + 5_500), "v6");
    first_after_seek(SeekTo::Timestamp(base + 6_000), "v6");

    consumer.seek(&tp, SeekTo::End).expect("seeking to the end");
    let high = consumer.watermarks(&tp).expect("watermarks").high;
    assert_eq!(high, metadata[9].offset + 1, "high watermark");
    assert_eq!(
        consumer
            .position(&tp)
            .expect("position after seeking to the end"),
        high,
        "position after seeking to the end"
    );
    consumer
        .seek(&tp, SeekTo::Timestamp(base + 1_000_000))
        .expect("seeking past every timestamp");
    assert_eq!(
        consumer
            .position(&tp)
            .expect("position after seeking past every timestamp"),
        high,
        "seeking to a timestamp after every record must go to the end"
    );
    send_all(
        &*producer,
        vec![ProducerRecord::new(&topic).partition(0).value("v10")],
    );
    let got = poll_until(
        &*consumer,
        "the record written after seeking to the end",
        |r| !r.is_empty(),
    );
    assert_eq!(
        text(&got[0]),
        "v10",
        "after seeking to the end: {}",
        summary(&got)
    );
}
