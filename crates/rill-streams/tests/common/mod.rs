//! Helpers shared by the tests that run applications on the embedded log.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_log::{ConsumedRecord, ConsumerConfig, IsolationLevel, Log, SeekTo, TopicPartition};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};

/// Opens (creating) an embedded log in `dir`.
pub fn open_log(dir: &Path, fsync: FsyncPolicy) -> Arc<EmbeddedLog> {
    Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir).fsync(fsync)).expect("open log"))
}

/// Every committed record of `topic`, read from the beginning of all its partitions: waits
/// (up to 60 s) until `expected` arrived, then keeps reading for three quiet polls so that a
/// record too many is seen too.
pub fn committed_records(log: &dyn Log, topic: &str, expected: usize) -> Vec<ConsumedRecord> {
    let partitions = log
        .admin()
        .describe_topic(topic)
        .expect("describe")
        .config
        .partitions;
    let parts: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let config = ConsumerConfig {
        isolation: IsolationLevel::ReadCommitted,
        ..Default::default()
    };
    let consumer = log.consumer(&config, None).expect("consumer");
    consumer.assign(&parts).expect("assign");
    for p in &parts {
        consumer.seek(p, SeekTo::Beginning).expect("seek");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    let mut quiet_polls = 0;
    while Instant::now() < deadline && (out.len() < expected || quiet_polls < 3) {
        let records = consumer.poll(Duration::from_millis(100)).expect("poll");
        if out.len() >= expected && records.is_empty() {
            quiet_polls += 1;
        }
        out.extend(records);
    }
    out
}

/// A record's key as UTF-8 and its value as a big-endian i64 (a count or a sum).
pub fn key_and_count(record: &ConsumedRecord) -> (String, i64) {
    let key = String::from_utf8(record.key.clone().expect("key").to_vec()).expect("utf-8 key");
    let value = record.value.clone().expect("value");
    (
        key,
        i64::from_be_bytes(value.as_ref().try_into().expect("8-byte value")),
    )
}
