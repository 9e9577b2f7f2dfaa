//! The runtime's error handling on Apache Kafka: a record whose processing panics goes to the
//! dead-letter topic while the rest is counted, and a stream thread that dies before a commit
//! is replaced without losing or doubling a count (exactly-once, Kafka transactions).
//!
//! NEEDS A BROKER at `RILL_KAFKA_BOOTSTRAP` (scripts/test.sh starts one); without it these
//! tests fail with instructions rather than pass silently.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{committed_records, key_and_count};
use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_kafka::{KafkaConfig, KafkaLog};
use rill_streams::{
    AppState, FaultPoint, ProcessingErrorPolicy, StoreOptions, StreamsApp, StreamsBuilder,
    StreamsConfig, ThreadFailurePolicy,
};

fn broker() -> Arc<KafkaLog> {
    let bootstrap = std::env::var("RILL_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "RILL_KAFKA_BOOTSTRAP is not set: these tests need a Kafka broker. Start one with \
             `scripts/kafka.sh install && scripts/kafka.sh start` and run with \
             RILL_KAFKA_BOOTSTRAP set to the list it prints"
        )
    });
    Arc::new(
        KafkaLog::new(KafkaConfig::new(bootstrap).request_timeout(Duration::from_secs(20)))
            .expect("kafka log"),
    )
}

/// A name no earlier run used.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Word count from `input` to `output`; a line holding "boom" panics.
fn word_count(input: &str, output: &str) -> rill_streams::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .flat_map_values(|line| {
            assert!(!line.contains("boom"), "cannot split '{line}'");
            line.split_whitespace().map(str::to_string).collect()
        })
        .group_by(|_, word| word.clone())
        .count(StoreOptions::in_memory("counts"))
        .to_stream()
        .to(output);
    builder.build().expect("topology")
}

fn produce(log: &dyn Log, topic: &str, lines: &[&str]) {
    let producer = log.producer(&Default::default()).expect("producer");
    for (i, line) in lines.iter().enumerate() {
        producer
            .send(
                ProducerRecord::new(topic)
                    .key(format!("k{i}"))
                    .value(line.to_string()),
            )
            .expect("send")
            .wait()
            .expect("written");
    }
}

fn topics(log: &dyn Log) -> (String, String) {
    let (input, output) = (unique("lines"), unique("counts"));
    for topic in [&input, &output] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(3))
            .expect("topic");
    }
    (input, output)
}

#[test]
fn on_kafka_a_panicking_record_is_dead_lettered_and_a_failed_thread_replaced() {
    let log = broker();
    let (input, output) = topics(log.as_ref());
    produce(log.as_ref(), &input, &["a b", "boom", "b c", "c c"]);
    let state = tempfile::tempdir().expect("tempdir");
    let application = unique("eh");
    let dead_letters = format!("{application}-failed");
    let mut config = StreamsConfig::new(application.clone(), state.path());
    config.processing_errors = ProcessingErrorPolicy::DeadLetter {
        topic: dead_letters.clone(),
    };
    config.thread_failure = ThreadFailurePolicy::ReplaceThread;
    let failures = Arc::new(AtomicU32::new(0));
    config.fault_injector = Some(Arc::new({
        let failures = failures.clone();
        move |point| {
            point == FaultPoint::BeforeCommit
                && failures
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < 1).then_some(n + 1)
                    })
                    .is_ok()
        }
    }));
    let mut app = StreamsApp::new(word_count(&input, &output), log.clone(), config);
    app.start().expect("start");

    let counts: Vec<(String, i64)> = committed_records(log.as_ref(), &output, 6)
        .iter()
        .map(key_and_count)
        .collect();
    assert_eq!(counts.len(), 6, "each count once: {counts:?}");
    let latest: BTreeMap<String, i64> = counts.into_iter().collect();
    assert_eq!(
        latest,
        BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 3)
        ])
    );
    let failed = committed_records(log.as_ref(), &dead_letters, 1);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].value.as_deref(), Some(&b"boom"[..]));
    assert_eq!(app.threads_replaced(), 1);
    assert_eq!(app.state(), AppState::Running);
    app.close().expect("close");
}
