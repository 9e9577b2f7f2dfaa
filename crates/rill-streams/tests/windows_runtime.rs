//! Windows on the embedded log: a session survives a restart mid-window (its state restored
//! from the changelog, then queried), and a session-windowed sum is exactly-once when a
//! stream thread dies at each step of its loop and the log crashes with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::FsyncPolicy;
use rill_streams::{
    DefaultSerde, FaultPoint, SessionWindows, StoreOptions, StreamsApp, StreamsBuilder,
    StreamsConfig, Topology, Windowed,
};

mod common;

use common::{committed_records, open_log};

const PARTITIONS: i32 = 3;

/// Sums amounts per key and session (10 s of inactivity closes a session).
fn session_sums() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .group_by_key()
        .windowed_by(
            SessionWindows::with_inactivity_gap(Duration::from_secs(10))
                .grace(Duration::from_secs(3600)),
        )
        .reduce(StoreOptions::in_memory("session-sums"), |a, b| a + b)
        .to_stream()
        .to("session-sums");
    builder.build().expect("topology")
}

fn create_topics(log: &dyn Log) {
    for topic in ["amounts", "session-sums"] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(PARTITIONS))
            .expect("topic");
    }
}

fn produce(log: &dyn Log, records: &[(&str, i64, i64)]) {
    let producer = log.producer(&Default::default()).expect("producer");
    for (key, amount, time) in records {
        let record = ProducerRecord::new("amounts")
            .key(key.to_string())
            .value(amount.to_be_bytes().to_vec())
            .timestamp(*time);
        producer
            .send(record)
            .expect("send")
            .wait()
            .expect("written");
    }
}

/// Committed outputs as (key, session start, session end, sum), once `expected` arrived.
fn committed(log: &dyn Log, expected: usize) -> Vec<(String, i64, i64, i64)> {
    let serde = Windowed::<String>::default_serde();
    committed_records(log, "session-sums", expected)
        .into_iter()
        .map(|record| {
            let key = serde
                .deserialize("session-sums", &record.key.expect("key"))
                .expect("windowed key");
            let value = record.value.expect("value");
            let sum = i64::from_be_bytes(value.as_ref().try_into().expect("8 bytes"));
            (key.key, key.window.start, key.window.end, sum)
        })
        .collect()
}

fn config(state: &Path) -> StreamsConfig {
    let mut config = StreamsConfig::new("sessions", state);
    config.commit_interval = Duration::ZERO;
    config
}

#[test]
fn a_session_open_across_a_restart_is_restored_from_its_changelog_and_queryable() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    create_topics(log.as_ref());
    produce(log.as_ref(), &[("ann", 1, 0), ("ann", 2, 5_000)]);

    let mut app = StreamsApp::new(session_sums(), log.clone(), config(state.path()));
    app.start().expect("start");
    let mut first = committed(log.as_ref(), 2);
    // Each update has another windowed key, so updates may come from several partitions.
    first.sort_by_key(|(_, _, _, sum)| *sum);
    assert_eq!(first, vec![(s("ann"), 0, 0, 1), (s("ann"), 0, 5_000, 3)]);
    app.close().expect("close");

    // The record at 8 s extends the session that was open when the instance stopped: the
    // new instance knows it only from the store's changelog.
    produce(log.as_ref(), &[("ann", 4, 8_000)]);
    let mut again = StreamsApp::new(session_sums(), log.clone(), config(state.path()));
    again.start().expect("restart");
    let all = committed(log.as_ref(), 3);
    assert_eq!(all.last(), Some(&(s("ann"), 0, 8_000, 7)), "{all:?}");
    let sessions = again
        .session_store::<String, i64>("session-sums")
        .expect("store");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sessions.fetch(&s("ann"), 0, 10_000) {
            Ok(found) if found == vec![(0, 7)] => break,
            other => assert!(Instant::now() < deadline, "query answered {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(again.late_records_dropped(), 0);
    again.close().expect("close");
}

fn s(text: &str) -> String {
    text.to_string()
}

const KEYS: usize = 6;
const PER_KEY: usize = 12;

/// Each key gets `PER_KEY` amounts of 1, one second apart: one session per key whose sum
/// goes 1, 2, ... `PER_KEY`.
fn produce_amounts(log: &dyn Log) {
    let mut records = Vec::new();
    for i in 0..PER_KEY {
        for k in 0..KEYS {
            records.push((format!("k{k}"), 1i64, (i as i64) * 1_000));
        }
    }
    let producer = log.producer(&Default::default()).expect("producer");
    for (key, amount, time) in &records {
        // Acknowledgements are awaited all at once by the flush below.
        drop(
            producer
                .send(
                    ProducerRecord::new("amounts")
                        .key(key.clone())
                        .value(amount.to_be_bytes().to_vec())
                        .timestamp(*time),
                )
                .expect("send"),
        );
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn crash_at(point: FaultPoint, occurrence: usize) {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Always);
    create_topics(log.as_ref());
    produce_amounts(log.as_ref());

    let seen = Arc::new(AtomicUsize::new(0));
    let mut dying = config(state.path());
    dying.max_poll_records = 7;
    let counter = seen.clone();
    dying.fault_injector = Some(Arc::new(move |at| {
        at == point && counter.fetch_add(1, Ordering::SeqCst) + 1 == occurrence
    }));
    let mut first = StreamsApp::new(session_sums(), log.clone(), dying);
    first.start().expect("start");
    assert!(
        first.wait_for_error(Duration::from_secs(60)),
        "the fault at {point:?} #{occurrence} never fired"
    );
    assert!(first.close().is_err(), "a thread that died reports it");
    drop(first);

    log.crash_for_test();
    drop(log);
    let log = open_log(data.path(), FsyncPolicy::Always);
    let mut second = StreamsApp::new(session_sums(), log.clone(), config(state.path()));
    second.start().expect("restart");
    let output = committed(log.as_ref(), KEYS * PER_KEY);
    second.close().expect("close");

    let mut per_key: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for (key, start, end, sum) in output {
        per_key.entry(key).or_default().push((start, end, sum));
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, sessions) in &mut per_key {
        // Each update has another windowed key, so updates spread over output partitions.
        sessions.sort_by_key(|(_, _, sum)| *sum);
        let expected: Vec<(i64, i64, i64)> = (1..=PER_KEY as i64)
            .map(|n| (0, (n - 1) * 1_000, n))
            .collect();
        assert_eq!(
            *sessions, expected,
            "sessions of {key} after a crash at {point:?} #{occurrence}"
        );
    }
}

#[test]
fn session_sums_are_exactly_once_when_a_thread_dies_before_a_commit() {
    crash_at(FaultPoint::BeforeCommit, 4);
}

#[test]
fn session_sums_are_exactly_once_when_a_thread_dies_after_a_commit() {
    crash_at(FaultPoint::AfterCommit, 2);
}
