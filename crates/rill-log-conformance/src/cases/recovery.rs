//! Crash recovery: after a stop without clean shutdown, and after a torn write at the tail,
//! every acknowledged record is there, nothing else is, and writing continues.
//!
//! The backend under test must acknowledge only durable records (the embedded log with
//! `FsyncPolicy::Always`), since the suite checks every acknowledged record survives.

use std::collections::BTreeMap;

use rill_log::{
    ConsumedRecord, Header, ProducerRecord, RecordMetadata, TopicConfig, TopicPartition,
};

use crate::support::{
    ConsumerSpec, consumer, create_topic, now_ms, partitions, poll_until, producer, reader,
    send_all, summary, text, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: crash and torn-write simulation.
pub const FEATURE: Option<Feature> = Some(Feature::TornWrites);

/// Writes 30 varied records over two partitions of a new topic and returns the topic and each
/// acknowledged record by (partition, offset).
fn write_acknowledged(
    h: &dyn Harness,
    prefix: &str,
) -> (String, BTreeMap<(i32, i64), ProducerRecord>) {
    let topic = unique(prefix);
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let producer = producer(h);
    let base = now_ms() - 10_000;
    let records: Vec<ProducerRecord> = (0..30)
        .map(|i| {
            let mut record = ProducerRecord::new(&topic)
                .partition(i % 2)
                .value(format!("acked-{i}"))
                .timestamp(base + i64::from(i))
                .header(Header::new("seq", i.to_string()));
            if i % 3 != 0 {
                record = record.key(format!("key-{i}"));
            }
            record
        })
        .collect();
    let metadata = send_all(&*producer, records.clone());
    let acked = metadata
        .iter()
        .zip(records)
        .map(|(meta, record)| ((meta.partition, meta.offset), record))
        .collect();
    (topic, acked)
}

/// Writes one record per partition after recovery and reads until they arrive; checks that
/// they come after every acknowledged record, and that everything before them is exactly the
/// acknowledged records.
fn check_recovered(h: &dyn Harness, topic: &str, acked: &BTreeMap<(i32, i64), ProducerRecord>) {
    let producer = producer(h);
    let after: Vec<RecordMetadata> = send_all(
        &*producer,
        (0..2)
            .map(|p| {
                ProducerRecord::new(topic)
                    .partition(p)
                    .value(format!("after-{p}"))
            })
            .collect(),
    );
    let dense = h.capabilities().supports(Feature::DenseOffsets);
    for meta in &after {
        let last = acked
            .keys()
            .filter(|(p, _)| *p == meta.partition)
            .map(|(_, o)| *o)
            .max()
            .unwrap_or(-1);
        assert!(
            meta.offset > last,
            "a record written after recovery got offset {} in partition {}, not after the \
             last acknowledged offset {last}",
            meta.offset,
            meta.partition
        );
        if dense {
            assert_eq!(
                meta.offset,
                last + 1,
                "offsets are not dense after recovery in partition {}",
                meta.partition
            );
        }
    }

    let consumer = reader(h, &partitions(topic, 2));
    let got = poll_until(&*consumer, "the records written after recovery", |r| {
        (0..2).all(|p| r.iter().any(|rec| text(rec) == format!("after-{p}")))
    });
    let before_after: Vec<&ConsumedRecord> = got
        .iter()
        .filter(|r| !text(r).starts_with("after-"))
        .collect();
    let read: BTreeMap<(i32, i64), &ConsumedRecord> = before_after
        .iter()
        .map(|r| ((r.partition, r.offset), *r))
        .collect();
    assert_eq!(
        read.len(),
        before_after.len(),
        "a record was read twice: {}",
        summary(&got)
    );
    for (position, sent) in acked {
        let found = read.get(position).unwrap_or_else(|| {
            panic!(
                "acknowledged record {:?} at {position:?} was lost: read {}",
                sent.value,
                summary(&got)
            )
        });
        assert_eq!(
            (
                &found.key,
                &found.value,
                Some(found.timestamp),
                &found.headers
            ),
            (&sent.key, &sent.value, sent.timestamp, &sent.headers),
            "acknowledged record at {position:?} came back different"
        );
    }
    let unexpected: Vec<ConsumedRecord> = before_after
        .iter()
        .filter(|r| !acked.contains_key(&(r.partition, r.offset)))
        .map(|r| (*r).clone())
        .collect();
    assert!(
        unexpected.is_empty(),
        "records that were never acknowledged appeared after recovery: {}",
        summary(&unexpected)
    );
    for meta in &after {
        let marks = consumer
            .watermarks(&TopicPartition::new(topic, meta.partition))
            .expect("watermarks after recovery");
        assert_eq!(marks.high, meta.offset + 1, "high watermark after recovery");
    }
}

/// After a stop without clean shutdown, topics, every acknowledged record and committed
/// offsets are there, nothing unacknowledged appears, and writing continues after them.
pub fn a_crash_loses_no_acknowledged_record_or_committed_offset(h: &mut dyn Harness) {
    let (topic, acked) = write_acknowledged(h, "crash");
    let group = unique("crash");
    let tp = TopicPartition::new(&topic, 0);
    {
        let member = consumer(h, &ConsumerSpec::in_group(&group), None);
        member
            .assign(std::slice::from_ref(&tp))
            .expect("assigning the partition");
        member
            .commit(&[(tp.clone(), 3)])
            .expect("committing offset 3");
        member.close().expect("closing the member");
    }
    h.crash_and_restart()
        .expect("crashing and restarting the log");

    let described = h
        .log()
        .admin()
        .describe_topic(&topic)
        .expect("the topic after a crash");
    assert_eq!(described.config.partitions, 2, "partitions after a crash");
    let member = consumer(h, &ConsumerSpec::in_group(&group), None);
    assert_eq!(
        member
            .committed(std::slice::from_ref(&tp))
            .expect("committed offsets"),
        vec![Some(3)],
        "the committed offset was lost in the crash"
    );
    drop(member);
    check_recovered(h, &topic, &acked);
}

/// When a crash tears the write at the tail of a partition, recovery cuts the torn bytes: every
/// acknowledged record is read back intact, no corrupt or partial record is returned, and new
/// records are appended after the acknowledged ones.
pub fn recovery_after_a_torn_tail_keeps_every_acknowledged_record_and_appends_continue(
    h: &mut dyn Harness,
) {
    let (topic, acked) = write_acknowledged(h, "torn");
    h.corrupt_tail(&TopicPartition::new(&topic, 0))
        .expect("tearing the tail of partition 0");
    h.crash_and_restart()
        .expect("crashing and restarting the log");
    check_recovered(h, &topic, &acked);

    // A second crash after recovery finds a clean tail again.
    h.corrupt_tail(&TopicPartition::new(&topic, 1))
        .expect("tearing the tail of partition 1");
    h.crash_and_restart()
        .expect("crashing and restarting the log again");
    let consumer = reader(h, &partitions(&topic, 2));
    let got = poll_until(&*consumer, "every record after the second crash", |r| {
        r.len() >= acked.len() + 2
    });
    assert_eq!(
        got.len(),
        acked.len() + 2,
        "after a second torn tail: {}",
        summary(&got)
    );
    assert!(
        got.iter()
            .all(|r| text(r).starts_with("acked-") || text(r).starts_with("after-")),
        "a record that was never written appeared after the second torn tail: {}",
        summary(&got)
    );
}
