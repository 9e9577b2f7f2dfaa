//! The runtime on Apache Kafka: a record whose processing panics goes to the
//! dead-letter topic while the rest is counted, and a stream thread that dies before a commit
//! is replaced without losing or doubling a count (exactly-once, Kafka transactions); a
//! standby copy takes over the tasks of an instance that died before its commit, restoring
//! nothing, and the work that instance lost is counted once.
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

/// Polls `check` until it holds or 60 s pass.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts per key of `input` in a persistent store, with a standby copy of the other
/// instance's tasks; a thread that dies once `crash` is set, before its next commit.
fn standby_instance(
    log: &Arc<KafkaLog>,
    input: &str,
    application: &str,
    state: &std::path::Path,
    host: &str,
    crash: Arc<std::sync::atomic::AtomicBool>,
) -> StreamsApp {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .count(StoreOptions::persistent("counts"));
    let mut config = StreamsConfig::new(application, state);
    config.application_server = Some(host.to_string());
    config.standby_replicas = 1;
    config.fault_injector = Some(Arc::new(move |point| {
        point == FaultPoint::BeforeCommit && crash.load(Ordering::Acquire)
    }));
    let mut app = StreamsApp::new(builder.build().expect("topology"), log.clone(), config);
    app.start().expect("start");
    app
}

#[test]
fn on_kafka_a_standby_copy_takes_over_from_an_instance_that_died_before_its_commit() {
    let log = broker();
    let input = unique("events");
    log.admin()
        .create_topic(&input, &TopicConfig::with_partitions(4))
        .expect("topic");
    let application = unique("standby");
    let changelog = format!("{application}-counts-changelog");
    let keys: Vec<String> = (0..16).map(|i| format!("key-{i}")).collect();
    let producer = log.producer(&Default::default()).expect("producer");
    let send_all = |times: usize| {
        for _ in 0..times {
            for key in &keys {
                drop(
                    producer
                        .send(ProducerRecord::new(&input).key(key.clone()).value("x"))
                        .expect("send"),
                );
            }
        }
        producer.flush(Duration::from_secs(20)).expect("flush");
    };
    send_all(3);

    let (state_a, state_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let crash_b = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut a = standby_instance(&log, &input, &application, state_a.path(), "a:1", never);
    let mut b = standby_instance(
        &log,
        &input,
        &application,
        state_b.path(),
        "b:2",
        crash_b.clone(),
    );
    let (store_a, store_b) = (
        a.store::<String, i64>("counts").expect("store"),
        b.store::<String, i64>("counts").expect("store"),
    );
    let count_is = |n: i64| {
        keys.iter().all(|key| {
            [&store_a, &store_b]
                .iter()
                .any(|store| store.get(key).ok().flatten() == Some(n))
        })
    };
    eventually(
        "both instances own tasks, keep copies and counted every key",
        || count_is(3) && !a.standby_tasks().is_empty() && !b.standby_tasks().is_empty(),
    );
    // Written while b owns its tasks: only b, and a's copies of them, see these counts.
    send_all(2);
    eventually("every key counted to 5", || count_is(5));
    // b's store counts before its transaction commits: wait for a to answer 5 for every key
    // from its own tasks or its copies of b's (read-committed), so the copies hold b's commit.
    eventually("a's copies hold b's committed counts", || {
        keys.iter()
            .all(|key| store_a.get_stale(key).ok().flatten() == Some(5))
    });
    let reader = log.consumer(&Default::default(), None).expect("consumer");
    eventually("a's copies of b's tasks caught up", || {
        let positions = a.standby_positions();
        !positions.is_empty()
            && positions.iter().all(|(partition, position)| {
                partition.topic == changelog
                    && reader.watermarks(partition).expect("watermarks").high == *position
            })
    });
    let copied = a.standby_tasks();
    assert!(a.standby_records_applied() > 0);

    // b dies between processing the next round and committing it: its transaction is
    // aborted and a takes its tasks over from the copies, then counts the round once.
    crash_b.store(true, Ordering::Release);
    let restored_before = a.records_restored();
    send_all(1);
    assert!(b.wait_for_error(Duration::from_secs(60)), "b's thread died");
    eventually("a counted the round for every key, once", || {
        keys.iter()
            .all(|key| store_a.get(key).ok().flatten() == Some(6))
    });
    assert_eq!(
        a.records_restored() - restored_before,
        0,
        "the copies of {copied:?} were complete"
    );
    let _ = b.close();
    a.close().expect("close a");
}
