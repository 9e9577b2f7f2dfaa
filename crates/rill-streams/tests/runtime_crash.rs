//! Exactly-once under crashes: a stream thread dies at each step of its loop (after
//! processing, before the commit, after the commit), the log itself is then crashed and
//! reopened, and a new instance finishes the work. The output must hold every count exactly
//! once: per word, 1, 2, ... n with nothing missing and nothing repeated.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::FsyncPolicy;
use rill_streams::{FaultPoint, StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig, Topology};

mod common;

use common::{committed_records, key_and_count, open_log};

const SENTENCES: usize = 60;
const WORDS: usize = 5;

fn word_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect())
        .group_by(|_, word| word.clone())
        .count(StoreOptions::in_memory("counts"))
        .to_stream()
        .to("counts");
    builder.build().expect("topology")
}

fn config(state: &Path) -> StreamsConfig {
    let mut config = StreamsConfig::new("crashy", state);
    config.commit_interval = Duration::ZERO;
    config.max_poll_records = 7;
    config
}

/// Two words per sentence, cycling through `WORDS` words: the final counts are known.
fn expected_counts() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in 0..SENTENCES {
        for word in [format!("w{}", i % WORDS), format!("w{}", (i + 1) % WORDS)] {
            *counts.entry(word).or_insert(0) += 1;
        }
    }
    counts
}

fn produce_sentences(log: &dyn Log) {
    log.admin()
        .create_topic("sentences", &TopicConfig::with_partitions(3))
        .expect("topic");
    log.admin()
        .create_topic("counts", &TopicConfig::with_partitions(3))
        .expect("topic");
    let producer = log.producer(&Default::default()).expect("producer");
    for i in 0..SENTENCES {
        let line = format!("w{} w{}", i % WORDS, (i + 1) % WORDS);
        // Acknowledgements are awaited all at once by the flush below.
        drop(
            producer
                .send(
                    ProducerRecord::new("sentences")
                        .key(format!("s{i}"))
                        .value(line),
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
    produce_sentences(log.as_ref());

    let seen = Arc::new(AtomicUsize::new(0));
    let mut dying = config(state.path());
    let counter = seen.clone();
    dying.fault_injector = Some(Arc::new(move |at| {
        at == point && counter.fetch_add(1, Ordering::SeqCst) + 1 == occurrence
    }));
    let mut first = StreamsApp::new(word_count(), log.clone(), dying);
    first.start().expect("start");
    assert!(
        first.wait_for_error(Duration::from_secs(60)),
        "the fault at {point:?} #{occurrence} never fired"
    );
    assert!(first.close().is_err(), "a thread that died reports it");
    drop(first);

    // The process dies with it: the log loses everything not committed.
    log.crash_for_test();
    drop(log);
    let log = open_log(data.path(), FsyncPolicy::Always);
    let mut second = StreamsApp::new(word_count(), log.clone(), config(state.path()));
    second.start().expect("restart");
    let expected = expected_counts();
    let total: i64 = expected.values().sum();
    let output: Vec<(String, i64)> = committed_records(log.as_ref(), "counts", total as usize)
        .iter()
        .map(key_and_count)
        .collect();
    second.close().expect("close");

    let mut per_word: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (word, count) in &output {
        per_word.entry(word.clone()).or_default().push(*count);
    }
    for (word, final_count) in &expected {
        let counts = per_word.get(word).cloned().unwrap_or_default();
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=*final_count).collect::<Vec<_>>(),
            "counts of {word} after a crash at {point:?} #{occurrence}: {counts:?}"
        );
    }
    assert_eq!(
        output.len(),
        total as usize,
        "no output beyond the expected counts"
    );
}

#[test]
fn crash_after_processing_before_commit_loses_and_repeats_nothing() {
    crash_at(FaultPoint::AfterProcess, 3);
}

#[test]
fn crash_just_before_a_commit_loses_and_repeats_nothing() {
    crash_at(FaultPoint::BeforeCommit, 4);
}

#[test]
fn crash_just_after_a_commit_loses_and_repeats_nothing() {
    crash_at(FaultPoint::AfterCommit, 2);
}
