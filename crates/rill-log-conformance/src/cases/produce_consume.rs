//! Producing and consuming: ordering, partitioning, keyless records, poll limits, restarts.
//! Acknowledged metadata and record fields, which carry timestamps, are checked in
//! [`timestamps`](super::timestamps).

use std::collections::{BTreeMap, BTreeSet};

use rill_log::{ConsumedRecord, ProducerRecord, TopicConfig, partition_for_key};

use crate::support::{
    ConsumerSpec, consumer, create_topic, partitions, poll_count, poll_until, producer, reader,
    send_all, summary, text, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

/// Records sent to one partition (explicitly, or by a shared key) are read back in the order
/// they were sent, at strictly increasing offsets.
pub fn records_keep_order_within_a_partition(h: &mut dyn Harness) {
    let topic = unique("order");
    create_topic(h, &topic, TopicConfig::with_partitions(3));
    let producer = producer(h);

    let mut records = Vec::new();
    for i in 0..300 {
        let p = i % 3;
        records.push(
            ProducerRecord::new(&topic)
                .partition(p)
                .value(format!("p{p}-{}", i / 3)),
        );
    }
    for i in 0..50 {
        records.push(
            ProducerRecord::new(&topic)
                .key("same-key")
                .value(format!("keyed-{i}")),
        );
    }
    send_all(&*producer, records);

    let consumer = reader(h, &partitions(&topic, 3));
    let got = poll_count(&*consumer, 350, "every record of the topic");
    assert_eq!(
        got.len(),
        350,
        "read more records than were sent: {}",
        summary(&got)
    );

    let keyed_partition = partition_for_key(b"same-key", 3);
    for p in 0..3 {
        let in_partition: Vec<&ConsumedRecord> = got.iter().filter(|r| r.partition == p).collect();
        let values: Vec<String> = in_partition.iter().map(|r| text(r)).collect();
        let mut expected: Vec<String> = (0..100).map(|n| format!("p{p}-{n}")).collect();
        if p == keyed_partition {
            expected.extend((0..50).map(|n| format!("keyed-{n}")));
        }
        assert_eq!(
            values, expected,
            "partition {p} returned records out of order"
        );
        for pair in in_partition.windows(2) {
            assert!(
                pair[0].offset < pair[1].offset,
                "offsets in partition {p} do not increase: {} then {}",
                pair[0].offset,
                pair[1].offset
            );
        }
    }
}

/// A keyed record goes to `toPositive(murmur2(key)) % partitions`, as Kafka's default
/// partitioner puts it, including Kafka's own known values.
pub fn keyed_records_land_on_the_murmur2_partition(h: &mut dyn Harness) {
    // Known values from Kafka's partitioner tests: toPositive(murmur2("foobar")) = 1357151166,
    // toPositive(murmur2("21")) = 1173551340, toPositive(murmur2("a-little-bit-longer-string"))
    // = 661178819.
    assert_eq!(partition_for_key(b"foobar", 12), 6);
    assert_eq!(partition_for_key(b"21", 7), 3);
    assert_eq!(partition_for_key(b"a-little-bit-longer-string", 7), 0);

    let twelve = unique("murmur12");
    let seven = unique("murmur7");
    create_topic(h, &twelve, TopicConfig::with_partitions(12));
    create_topic(h, &seven, TopicConfig::with_partitions(7));
    let producer = producer(h);

    let literal = send_all(
        &*producer,
        vec![
            ProducerRecord::new(&twelve).key("foobar").value("foobar"),
            ProducerRecord::new(&seven).key("21").value("21"),
            ProducerRecord::new(&seven)
                .key("a-little-bit-longer-string")
                .value("a-little-bit-longer-string"),
        ],
    );
    assert_eq!(literal[0].partition, 6, "key \"foobar\" on 12 partitions");
    assert_eq!(literal[1].partition, 3, "key \"21\" on 7 partitions");
    assert_eq!(
        literal[2].partition, 0,
        "key \"a-little-bit-longer-string\" on 7 partitions"
    );

    let keys: Vec<String> = (0..120).map(|i| format!("customer-{i}")).collect();
    let records = keys
        .iter()
        .map(|k| ProducerRecord::new(&twelve).key(k.clone()).value(k.clone()))
        .collect();
    let metadata = send_all(&*producer, records);
    let mut expected: BTreeMap<String, i32> = BTreeMap::new();
    expected.insert("foobar".to_string(), 6);
    for (key, meta) in keys.iter().zip(&metadata) {
        let want = partition_for_key(key.as_bytes(), 12);
        assert_eq!(
            meta.partition, want,
            "key {key:?} was written to partition {} instead of murmur2's {want}",
            meta.partition
        );
        expected.insert(key.clone(), want);
    }

    let consumer = reader(h, &partitions(&twelve, 12));
    let got = poll_count(&*consumer, keys.len() + 1, "every keyed record");
    for record in &got {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        assert_eq!(
            expected.get(&key),
            Some(&record.partition),
            "key {key:?} was read from partition {}",
            record.partition
        );
    }
}

/// Records without a key are accepted, land on existing partitions, and each is read exactly
/// once.
pub fn keyless_records_are_accepted_and_each_is_read_once(h: &mut dyn Harness) {
    let topic = unique("keyless");
    create_topic(h, &topic, TopicConfig::with_partitions(4));
    let producer = producer(h);
    let records = (0..80)
        .map(|i| ProducerRecord::new(&topic).value(format!("keyless-{i}")))
        .collect();
    let metadata = send_all(&*producer, records);
    for meta in &metadata {
        assert!(
            (0..4).contains(&meta.partition),
            "a keyless record went to partition {} of a 4-partition topic",
            meta.partition
        );
    }

    let consumer = reader(h, &partitions(&topic, 4));
    let got = poll_count(&*consumer, 80, "every keyless record");
    let mut seen = BTreeSet::new();
    for record in &got {
        assert_eq!(record.key, None, "a keyless record came back with a key");
        assert!(
            seen.insert(text(record)),
            "record {:?} was read twice",
            text(record)
        );
    }
    let expected: BTreeSet<String> = (0..80).map(|i| format!("keyless-{i}")).collect();
    assert_eq!(
        seen, expected,
        "keyless records read back differ from those sent"
    );
}

/// No poll returns more records than `max_poll_records`, and all records still arrive.
pub fn poll_returns_at_most_max_poll_records(h: &mut dyn Harness) {
    let topic = unique("max-poll");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let producer = producer(h);
    let records = (0..50)
        .map(|i| {
            ProducerRecord::new(&topic)
                .partition(i % 2)
                .value(format!("r{i}"))
        })
        .collect();
    send_all(&*producer, records);

    let mut spec = ConsumerSpec::standalone();
    spec.max_poll_records = Some(7);
    let consumer = consumer(h, &spec, None);
    consumer
        .assign(&partitions(&topic, 2))
        .expect("assigning both partitions");
    let deadline = crate::support::Deadline::start();
    let mut total = 0;
    while total < 50 {
        assert!(!deadline.passed(), "only {total} of 50 records arrived");
        let batch = consumer
            .poll(crate::support::POLL_STEP)
            .expect("polling with max_poll_records");
        assert!(
            batch.len() <= 7,
            "a poll returned {} records with max_poll_records = 7",
            batch.len()
        );
        total += batch.len();
    }
    assert_eq!(total, 50, "read more records than were sent");
}

/// After a clean restart of the log, topics keep their configuration, every record is still
/// there, and new records get offsets after the old ones.
pub fn records_and_topics_survive_a_restart(h: &mut dyn Harness) {
    let topic = unique("restart");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let before = h
        .log()
        .admin()
        .describe_topic(&topic)
        .expect("describing the topic before the restart");
    let sent = {
        let producer = producer(h);
        let records = (0..20)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(i % 2)
                    .value(format!("before-{i}"))
            })
            .collect();
        send_all(&*producer, records)
    };
    h.restart().expect("restarting the log");

    let after = h
        .log()
        .admin()
        .describe_topic(&topic)
        .expect("describing the topic after the restart");
    assert_eq!(
        after, before,
        "the topic's description changed across a restart"
    );

    let producer = producer(h);
    let more = send_all(
        &*producer,
        (0..4)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(i % 2)
                    .value(format!("after-{i}"))
            })
            .collect(),
    );
    for meta in &more {
        let old_max = sent
            .iter()
            .filter(|m| m.partition == meta.partition)
            .map(|m| m.offset)
            .max()
            .unwrap_or(-1);
        assert!(
            meta.offset > old_max,
            "a record written after the restart got offset {} in partition {}, not after {old_max}",
            meta.offset,
            meta.partition
        );
    }

    let consumer = reader(h, &partitions(&topic, 2));
    let got = poll_until(&*consumer, "all 24 records after the restart", |r| {
        r.len() >= 24
    });
    let values: BTreeSet<String> = got.iter().map(text).collect();
    let expected: BTreeSet<String> = (0..20)
        .map(|i| format!("before-{i}"))
        .chain((0..4).map(|i| format!("after-{i}")))
        .collect();
    assert_eq!(
        values,
        expected,
        "records after the restart: {}",
        summary(&got)
    );
}
