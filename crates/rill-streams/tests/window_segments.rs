//! Window and session stores in time segments, through the test driver and on the embedded
//! log: expiry drops whole segments without logging a tombstone, fetches, joins and sessions
//! work across segment boundaries, and a persistent store keeps its segments across a
//! restart while a restore from scratch skips what had expired. (The segments themselves are
//! tested in `store::segmented`.)

use std::time::{Duration, Instant};

use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::FsyncPolicy;
use rill_streams::{
    JoinWindows, Record, SessionWindows, StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig,
    TimeWindows, TopologyTestDriver, Window, default_segment_interval,
};

mod common;

use common::{committed_records, open_log};

fn s(text: &str) -> String {
    text.to_string()
}

fn driver(builder: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(builder.build().expect("topology"), "seg").expect("driver")
}

#[test]
fn expired_windows_go_with_their_segment_and_no_tombstone_is_logged() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_secs(60)))
        .count(StoreOptions::in_memory("counts"));
    let mut driver = driver(builder);
    // Retention 60 s (size + no grace): segments of a minute. Ten minutes of records, two
    // a minute.
    assert_eq!(default_segment_interval(60_000), 60_000);
    let times: Vec<i64> = (0..=20).map(|i| i * 30_000).collect();
    for &time in &times {
        driver.pipe("in", &s("a"), &1i64, time).unwrap();
    }
    // One changelog update per record; none deletes an expired window.
    let changelog = driver.read_raw("seg-counts-changelog");
    assert_eq!(changelog.len(), times.len());
    assert!(changelog.iter().all(|record| record.value.is_some()));
    // Stream time 600 s, cutoff 540 s: the windows from 540 s on are kept, the older ones
    // went with their segments.
    let store = driver.window_store::<String, i64>("counts").unwrap();
    assert_eq!(
        store.fetch(&s("a"), 0, i64::MAX).unwrap(),
        vec![(540_000, 2), (600_000, 1)]
    );
    assert_eq!(store.all().unwrap().len(), 2);
}

#[test]
fn a_join_pairs_records_in_neighbouring_segments() {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>("left");
    let right = builder.stream::<String, String>("right");
    // Retention 2 * 90 s + 1 ms: segments of 90 s, so 80 s and 100 s fall in two.
    left.join_stream(
        &right,
        JoinWindows::of(Duration::from_secs(90)),
        |l: &String, r: &String| format!("{l}+{r}"),
    )
    .to("joined");
    let mut driver = driver(builder);
    driver.pipe("left", &s("k"), &s("l1"), 80_000).unwrap();
    driver.pipe("right", &s("k"), &s("r1"), 100_000).unwrap();
    driver.pipe("right", &s("k"), &s("r2"), 169_000).unwrap();
    let out: Vec<Record<String, String>> = driver.read_output("joined").unwrap();
    let joined: Vec<(String, i64)> = out.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(joined, vec![(s("l1+r1"), 100_000), (s("l1+r2"), 169_000)]);
}

#[test]
fn a_session_longer_than_a_segment_is_found_by_either_end() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(
            SessionWindows::with_inactivity_gap(Duration::from_secs(50))
                .grace(Duration::from_secs(60)),
        )
        .reduce(StoreOptions::in_memory("sums"), |a, b| a + b);
    let mut driver = driver(builder);
    // Retention 110 s + 1 ms: segments of a minute. One session grows from 0 s to 200 s
    // over four segments, merging as it goes.
    for time in (0..=200_000).step_by(40_000) {
        driver.pipe("in", &s("a"), &1i64, time).unwrap();
    }
    let store = driver.session_store::<String, i64>("sums").unwrap();
    assert_eq!(
        store.fetch_windows(&s("a"), 0, 10_000).unwrap(),
        vec![(Window::new(0, 200_000), 6)]
    );
    assert_eq!(store.all().unwrap().len(), 1);
}

/// Sums per key and session (10 s gap, a minute of grace): retention 70 s + 1 ms, segments
/// of a minute.
fn persistent_session_sums() -> rill_streams::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .group_by_key()
        .windowed_by(
            SessionWindows::with_inactivity_gap(Duration::from_secs(10))
                .grace(Duration::from_secs(60)),
        )
        .reduce(StoreOptions::persistent("sums"), |a, b| a + b)
        .to_stream()
        .to("sums");
    builder.build().expect("topology")
}

/// Waits until the query of `key`'s sessions answers `expected` (the store is queryable once
/// its task has started).
fn await_sessions(app: &StreamsApp, key: &str, expected: &[(i64, i64)]) {
    let sessions = app.session_store::<String, i64>("sums").expect("store");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sessions.fetch(&s(key), 0, i64::MAX) {
            Ok(found) if found == expected => return,
            other => assert!(Instant::now() < deadline, "query answered {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn persistent_sessions_keep_their_segments_across_a_restart_and_a_restore_skips_expired_ones() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    for topic in ["amounts", "sums"] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(1))
            .expect("topic");
    }
    let producer = log.producer(&Default::default()).expect("producer");
    // Two sessions of ann five minutes apart: by the second, the first has expired.
    for (amount, time) in [(1i64, 0i64), (2, 300_000), (3, 305_000)] {
        let record = ProducerRecord::new("amounts")
            .key("ann")
            .value(amount.to_be_bytes().to_vec())
            .timestamp(time);
        producer
            .send(record)
            .expect("send")
            .wait()
            .expect("written");
    }
    let config = |state: &std::path::Path| {
        let mut config = StreamsConfig::new("sessions", state);
        config.commit_interval = Duration::ZERO;
        config
    };
    let state = tempfile::tempdir().expect("tempdir");
    let mut first = StreamsApp::new(persistent_session_sums(), log.clone(), config(state.path()));
    first.start().expect("start");
    // Updates: [0,0]=1; [300,300]=2; [300,305]=5 (the merged-away session's retraction
    // stays inside the table).
    assert_eq!(committed_records(log.as_ref(), "sums", 3).len(), 3);
    await_sessions(&first, "ann", &[(300_000, 5)]);
    first.close().expect("close");
    // On disk: only the live segment (300 s..360 s) is left.
    let store_dir = state.path().join("sessions").join("0_0").join("sums");
    let mut segments: Vec<String> = std::fs::read_dir(&store_dir)
        .expect("store directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with("seg."))
        .collect();
    segments.sort();
    assert_eq!(segments, vec![s("seg.5")]);

    // The same state directory: the segment is reopened at the checkpoint.
    let mut again = StreamsApp::new(persistent_session_sums(), log.clone(), config(state.path()));
    again.start().expect("restart");
    await_sessions(&again, "ann", &[(300_000, 5)]);
    again.close().expect("close");

    // A fresh state directory: the whole changelog is restored, and the session of 0 s
    // (logged, never deleted) is skipped once the restore reaches 300 s.
    let fresh = tempfile::tempdir().expect("tempdir");
    let mut restored =
        StreamsApp::new(persistent_session_sums(), log.clone(), config(fresh.path()));
    restored.start().expect("start on a fresh state directory");
    await_sessions(&restored, "ann", &[(300_000, 5)]);
    restored.close().expect("close");
}
