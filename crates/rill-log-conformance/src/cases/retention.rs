//! Retention by time and size, and compaction, applied by [`Harness::run_cleaner`].
//!
//! Topics use small segments and each record is written (and acknowledged) on its own, so
//! older records end up in closed segments, the only ones retention and compaction touch.

use std::collections::BTreeMap;
use std::time::Duration;

use rill_log::{CleanupPolicy, ConsumedRecord, ProducerRecord, TopicConfig, TopicPartition};

use crate::support::{
    create_topic, now_ms, padded, poll_until, producer, reader, send_one, summary, text, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: the cleaner on demand.
pub const FEATURE: Option<Feature> = Some(Feature::Cleaner);

const SEGMENT_BYTES: u64 = 1024;
const VALUE_BYTES: usize = 200;

/// Reads partition 0 of `topic` from the beginning up to and including `last_offset`.
fn read_all(h: &dyn Harness, topic: &str, last_offset: i64) -> (Vec<ConsumedRecord>, i64) {
    let tp = TopicPartition::new(topic, 0);
    let consumer = reader(h, std::slice::from_ref(&tp));
    let low = consumer.watermarks(&tp).expect("watermarks").low;
    let got = poll_until(
        &*consumer,
        &format!("records up to offset {last_offset}"),
        |r| r.iter().any(|rec| rec.offset >= last_offset),
    );
    for pair in got.windows(2) {
        assert!(
            pair[0].offset < pair[1].offset,
            "offsets do not increase after cleaning: {}",
            summary(&got)
        );
    }
    (got, low)
}

/// After the cleaner runs, records older than the topic's retention time are gone from closed
/// segments: the low watermark moves past them, reading from the beginning starts there, and
/// every recent record is still read.
pub fn time_retention_removes_expired_records_when_the_cleaner_runs(h: &mut dyn Harness) {
    let topic = unique("retention-time");
    create_topic(
        h,
        &topic,
        TopicConfig::with_partitions(1)
            .retention(Duration::from_secs(3600))
            .segment_bytes(SEGMENT_BYTES),
    );
    let producer = producer(h);
    let old_ts = now_ms() - 48 * 3_600_000;
    let old: Vec<_> = (0..20)
        .map(|i| {
            send_one(
                &*producer,
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(padded(&format!("old-{i}"), VALUE_BYTES))
                    .timestamp(old_ts + i),
            )
        })
        .collect();
    let recent: Vec<_> = (0..20)
        .map(|i| {
            send_one(
                &*producer,
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(padded(&format!("new-{i}"), VALUE_BYTES)),
            )
        })
        .collect();
    let last = recent.last().expect("twenty recent records").offset;

    h.run_cleaner().expect("running the cleaner");

    let (got, low) = read_all(h, &topic, last);
    assert!(
        low > old[0].offset,
        "the low watermark stayed at {low} although records 48 h old were in closed segments"
    );
    assert!(
        low <= recent[0].offset,
        "time retention removed recent records: low watermark {low}, first recent offset {}",
        recent[0].offset
    );
    assert_eq!(
        got.first().map(|r| r.offset),
        Some(low),
        "reading from the beginning did not start at the low watermark {low}: {}",
        summary(&got)
    );
    let read_recent: Vec<String> = got
        .iter()
        .map(text)
        .filter(|v| v.starts_with("new-"))
        .collect();
    assert_eq!(
        read_recent.len(),
        20,
        "recent records lost: {}",
        summary(&got)
    );
    assert!(
        got.len() < 40,
        "no record was removed by time retention: {}",
        summary(&got)
    );
}

/// After the cleaner runs, a partition larger than the topic's retention size loses its
/// oldest closed segments: the low watermark moves, and what remains is the newest records,
/// unchanged and ending at the last one written.
pub fn size_retention_removes_the_oldest_records_when_the_cleaner_runs(h: &mut dyn Harness) {
    let topic = unique("retention-size");
    create_topic(
        h,
        &topic,
        TopicConfig::with_partitions(1)
            .retention_bytes(4 * SEGMENT_BYTES)
            .segment_bytes(SEGMENT_BYTES),
    );
    let producer = producer(h);
    let sent: Vec<_> = (0..40)
        .map(|i| {
            send_one(
                &*producer,
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(padded(&format!("r{i}"), VALUE_BYTES)),
            )
        })
        .collect();
    let last = sent.last().expect("forty records").offset;

    h.run_cleaner().expect("running the cleaner");

    let (got, low) = read_all(h, &topic, last);
    assert!(
        low > sent[0].offset,
        "the low watermark stayed at {low} with ~8 KiB in a partition limited to 4 KiB"
    );
    assert_eq!(
        got.first().map(|r| r.offset),
        Some(low),
        "reading did not start at the low watermark {low}: {}",
        summary(&got)
    );
    let by_offset: BTreeMap<i64, String> = sent
        .iter()
        .enumerate()
        .map(|(i, m)| (m.offset, padded(&format!("r{i}"), VALUE_BYTES)))
        .collect();
    for record in &got {
        assert_eq!(
            by_offset.get(&record.offset),
            Some(&text(record)),
            "record at offset {} changed",
            record.offset
        );
    }
    let kept: Vec<i64> = got.iter().map(|r| r.offset).collect();
    let expected: Vec<i64> = sent
        .iter()
        .map(|m| m.offset)
        .filter(|o| *o >= low)
        .collect();
    assert_eq!(
        kept, expected,
        "size retention must remove only the oldest records"
    );
    assert!(got.len() < 40, "no record was removed by size retention");
}

/// After the cleaner runs on a compacted topic, each key keeps only its latest value (at its
/// original offset), a key whose latest record is a tombstone has no value left, and records
/// of other keys are untouched.
pub fn compaction_keeps_the_latest_value_per_key_and_removes_deleted_keys(h: &mut dyn Harness) {
    let topic = unique("compact");
    create_topic(
        h,
        &topic,
        TopicConfig::with_partitions(1)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(SEGMENT_BYTES),
    );
    let producer = producer(h);
    let keys: Vec<String> = (0..6).map(|k| format!("key{k}")).collect();
    let deleted = ["key1", "key4"];
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for round in 0..4 {
        for key in &keys {
            let value = padded(&format!("{key}-round{round}"), 100);
            let meta = send_one(
                &*producer,
                ProducerRecord::new(&topic)
                    .partition(0)
                    .key(key.clone())
                    .value(value.clone()),
            );
            latest.insert(key.clone(), (meta.offset, Some(value)));
        }
    }
    for key in deleted {
        let meta = send_one(
            &*producer,
            ProducerRecord::new(&topic).partition(0).key(key),
        );
        latest.insert(key.to_string(), (meta.offset, None));
    }
    // Unique keys after them push every record above into closed segments.
    for i in 0..30 {
        let key = format!("filler{i}");
        let value = padded(&key, VALUE_BYTES);
        let meta = send_one(
            &*producer,
            ProducerRecord::new(&topic)
                .partition(0)
                .key(key.clone())
                .value(value.clone()),
        );
        latest.insert(key, (meta.offset, Some(value)));
    }
    let last = latest.values().map(|(o, _)| *o).max().unwrap_or(0);

    h.run_cleaner().expect("running the cleaner");

    let (got, _) = read_all(h, &topic, last);
    let mut per_key: BTreeMap<String, Vec<&ConsumedRecord>> = BTreeMap::new();
    for record in &got {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        per_key.entry(key).or_default().push(record);
    }
    let removed_any = got.len() < 6 * 4 + deleted.len() + 30;
    assert!(removed_any, "compaction removed nothing: {}", summary(&got));
    for (key, (offset, value)) in &latest {
        let records = per_key.get(key).map(Vec::as_slice).unwrap_or_default();
        match value {
            Some(value) => {
                assert_eq!(
                    records.len(),
                    1,
                    "key {key} should keep only its latest value, found {}",
                    summary(&records.iter().map(|r| (*r).clone()).collect::<Vec<_>>())
                );
                assert_eq!(
                    (records[0].offset, text(records[0])),
                    (*offset, value.clone()),
                    "key {key} kept the wrong record"
                );
            }
            None => {
                let with_value: Vec<ConsumedRecord> = records
                    .iter()
                    .filter(|r| r.value.is_some())
                    .map(|r| (*r).clone())
                    .collect();
                assert!(
                    with_value.is_empty(),
                    "deleted key {key} still has values: {}",
                    summary(&with_value)
                );
                assert!(
                    records.iter().all(|r| r.offset == *offset),
                    "deleted key {key} keeps a tombstone at an offset other than {offset}"
                );
            }
        }
    }
}
