//! The runtime on the embedded log: exactly-once word count, restart with restore, crash
//! without duplicates or losses, interactive queries, dead letters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::FsyncPolicy;
mod common;

use common::{committed_records, key_and_count, open_log};
use rill_streams::{AppState, StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig, Topology};

/// Counts the words of `sentences` into `store`, writing each new count to `counts`.
fn word_count(store: StoreOptions) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect())
        .group_by(|_, word| word.clone())
        .count(store)
        .to_stream()
        .to("counts");
    builder.build().expect("topology")
}

fn produce(log: &dyn Log, topic: &str, lines: &[&str]) {
    let producer = log.producer(&Default::default()).expect("producer");
    for (i, line) in lines.iter().enumerate() {
        let record = ProducerRecord::new(topic)
            .key(format!("k{i}"))
            .value(line.to_string());
        producer
            .send(record)
            .expect("send")
            .wait()
            .expect("written");
    }
}

/// The committed (key, count) records of `topic`, once `expected` arrived; no more may follow.
fn read_committed(log: &dyn Log, topic: &str, expected: usize) -> Vec<(String, i64)> {
    let out: Vec<(String, i64)> = committed_records(log, topic, expected)
        .iter()
        .map(key_and_count)
        .collect();
    assert_eq!(out.len(), expected, "records of {topic}: {out:?}");
    out
}

fn latest(counts: &[(String, i64)]) -> BTreeMap<String, i64> {
    counts.iter().cloned().collect()
}

fn setup(log: &dyn Log) {
    log.admin()
        .create_topic("sentences", &TopicConfig::with_partitions(3))
        .expect("topic");
    log.admin()
        .create_topic("counts", &TopicConfig::with_partitions(3))
        .expect("topic");
}

#[test]
fn exactly_once_word_count_survives_a_restart_and_restores_its_store() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "b c", "c c"]);

    let mut app = StreamsApp::new(
        word_count(StoreOptions::in_memory("counts")),
        log.clone(),
        StreamsConfig::new("wc", state.path()),
    );
    app.start().expect("start");
    let first = read_committed(log.as_ref(), "counts", 6);
    assert_eq!(
        latest(&first),
        BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)])
    );
    let store = app.store::<String, i64>("counts").expect("store");
    assert_eq!(store.get(&"c".to_string()).expect("local"), Some(3));
    app.close().expect("close");
    assert_eq!(app.state(), AppState::NotRunning);

    // A new instance restores the counts from the changelog and continues from the commit.
    produce(log.as_ref(), "sentences", &["a"]);
    let mut again = StreamsApp::new(
        word_count(StoreOptions::in_memory("counts")),
        log.clone(),
        StreamsConfig::new("wc", state.path()),
    );
    again.start().expect("restart");
    let all = read_committed(log.as_ref(), "counts", 7);
    assert_eq!(all.last(), Some(&("a".to_string(), 2)));
    again.close().expect("close");
}

#[test]
fn a_persistent_store_resumes_from_its_checkpoint_and_rebuilds_after_a_crash() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "b c", "c c"]);

    let mut app = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        StreamsConfig::new("pwc", state.path()),
    );
    app.start().expect("start");
    read_committed(log.as_ref(), "counts", 6);
    app.close().expect("close");

    // Clean restart: the checkpoint written at close leaves nothing to restore.
    produce(log.as_ref(), "sentences", &["a"]);
    let mut clean = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        StreamsConfig::new("pwc", state.path()),
    );
    clean.start().expect("restart");
    let all = read_committed(log.as_ref(), "counts", 7);
    assert_eq!(
        all.last(),
        Some(&("a".to_string(), 2)),
        "the count continued from disk"
    );
    assert_eq!(
        clean.records_restored(),
        0,
        "a clean restart reads nothing from the changelogs"
    );

    // A crash leaves no checkpoint: the next start rebuilds the store from its changelog.
    let mut dying_config = StreamsConfig::new("pwc", state.path());
    dying_config.fault_injector = Some(Arc::new(|point| {
        point == rill_streams::FaultPoint::AfterProcess
    }));
    clean.close().expect("close");
    let mut dying = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        dying_config,
    );
    produce(log.as_ref(), "sentences", &["b"]);
    dying.start().expect("start");
    assert!(
        dying.wait_for_error(Duration::from_secs(30)),
        "the injected crash happened"
    );
    assert!(dying.close().is_err());
    let mut rebuilt = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        StreamsConfig::new("pwc", state.path()),
    );
    rebuilt.start().expect("start after crash");
    let all = read_committed(log.as_ref(), "counts", 8);
    assert_eq!(all.last(), Some(&("b".to_string(), 3)));
    // The record cache logs a key once per commit: at least a, b, c from the first run and
    // a from the second, however the commits fell.
    assert!(
        rebuilt.records_restored() >= 4,
        "the store was rebuilt from its changelog"
    );
    rebuilt.close().expect("close");
}

/// A reset to earliest makes a stopped application count everything again from scratch: its
/// input offsets go back, its changelog and repartition topics and its local stores go, and
/// the restarted application's counts equal the first run's (not doubled by stale state). A
/// running application is not reset.
#[test]
fn a_reset_application_processes_its_input_again_from_scratch() {
    use rill_streams::StreamsError;
    use rill_streams::reset::{ResetOptions, ResetTo, reset_application};

    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "b c", "c c"]);
    let start = || {
        let mut app = StreamsApp::new(
            word_count(StoreOptions::persistent("counts")),
            log.clone(),
            StreamsConfig::new("rwc", state.path()),
        );
        app.start().expect("start");
        app
    };
    let mut app = start();
    let first = read_committed(log.as_ref(), "counts", 6);
    let options = ResetOptions {
        to: ResetTo::Earliest,
        state_dir: Some(state.path().to_path_buf()),
        dry_run: false,
    };
    let refused = reset_application(log.as_ref(), "rwc", &options);
    assert!(
        matches!(refused, Err(StreamsError::ApplicationRunning { .. })),
        "{refused:?}"
    );
    app.close().expect("close");
    let instance_id = std::fs::read_to_string(state.path().join("rwc/instance-id")).expect("id");

    let report = reset_application(log.as_ref(), "rwc", &options).expect("reset");
    let sentences: Vec<_> = report
        .offsets
        .iter()
        .filter(|m| m.partition.topic == "sentences")
        .collect();
    assert_eq!(
        sentences.iter().map(|m| m.from).sum::<i64>(),
        3,
        "{report:?}"
    );
    assert!(sentences.iter().all(|m| m.to == 0), "{report:?}");
    assert!(
        report
            .deleted_topics
            .contains(&"rwc-counts-changelog".to_string()),
        "{report:?}"
    );
    assert!(
        report
            .deleted_topics
            .iter()
            .any(|t| t.ends_with("-repartition")),
        "{report:?}"
    );
    let topics = log.admin().list_topics().expect("topics");
    // The dead-letter topic is the application's output for people, not its state: it stays.
    assert!(
        !topics
            .iter()
            .any(|t| t.ends_with("-changelog") || t.ends_with("-repartition")),
        "{topics:?}"
    );
    assert!(topics.contains(&"rwc-dlq".to_string()), "{topics:?}");
    let left: Vec<_> = std::fs::read_dir(state.path().join("rwc"))
        .expect("app dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("instance-id")]);
    assert_eq!(
        std::fs::read_to_string(state.path().join("rwc/instance-id")).expect("id"),
        instance_id
    );

    let mut again = start();
    let all = read_committed(log.as_ref(), "counts", 12);
    assert_eq!(latest(&all[6..]), latest(&first));
    assert_eq!(
        latest(&all[6..]),
        BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)])
    );
    again.close().expect("close");
}

/// A restore listener hears each restore with something to restore: its start with the
/// records to apply, the batches, and the end, adding up to what the application restored.
#[test]
fn a_restore_listener_hears_the_restore_of_a_store() {
    use parking_lot::Mutex;
    use rill_log::TopicPartition;
    use rill_streams::RestoreListener;

    #[derive(Default)]
    struct Heard(Mutex<(u64, u64, u64)>);

    impl RestoreListener for Heard {
        fn on_restore_start(&self, _: &str, _: &TopicPartition, to_restore: u64) {
            self.0.lock().0 += to_restore;
        }
        fn on_batch_restored(&self, _: &str, _: &TopicPartition, records: u64) {
            self.0.lock().1 += records;
        }
        fn on_restore_end(&self, _: &str, _: &TopicPartition, restored: u64) {
            self.0.lock().2 += restored;
        }
    }

    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "b c", "c c"]);
    let mut first = StreamsApp::new(
        word_count(StoreOptions::in_memory("counts")),
        log.clone(),
        StreamsConfig::new("lwc", state.path()),
    );
    first.start().expect("start");
    read_committed(log.as_ref(), "counts", 6);
    first.close().expect("close");

    let heard = Arc::new(Heard::default());
    let mut config = StreamsConfig::new("lwc", state.path());
    config.restore_listener = Some(heard.clone());
    let mut again = StreamsApp::new(
        word_count(StoreOptions::in_memory("counts")),
        log.clone(),
        config,
    );
    again.start().expect("restart");
    // A record processed after the restart means the restore before it is over.
    produce(log.as_ref(), "sentences", &["a"]);
    let all = read_committed(log.as_ref(), "counts", 7);
    assert_eq!(all.last(), Some(&("a".to_string(), 2)));
    let (to_restore, batches, ended) = *heard.0.lock();
    let restored = again.records_restored();
    again.close().expect("close");
    assert!(
        restored > 0,
        "an in-memory store is restored at every start"
    );
    assert_eq!((batches, ended), (restored, restored));
    assert!(to_restore >= restored, "{to_restore} < {restored}");
}

#[test]
fn a_record_whose_processing_panics_is_dead_lettered_and_the_application_goes_on() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "boom", "b"]);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line| {
            assert!(!line.contains("boom"), "cannot split '{line}'");
            line.split_whitespace().map(str::to_string).collect()
        })
        .group_by(|_, word| word.clone())
        .count(StoreOptions::in_memory("counts"))
        .to_stream()
        .to("counts");
    let mut config = StreamsConfig::new("pwc", state.path());
    config.processing_errors = rill_streams::ProcessingErrorPolicy::DeadLetter {
        topic: "pwc-failed".into(),
    };
    let mut app = StreamsApp::new(builder.build().expect("topology"), log.clone(), config);
    app.start().expect("start");
    let counts = read_committed(log.as_ref(), "counts", 3);
    assert_eq!(
        latest(&counts),
        BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)])
    );
    let failed = committed_records(log.as_ref(), "pwc-failed", 1);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].value.as_deref(), Some(&b"boom"[..]));
    let error = failed[0]
        .headers
        .iter()
        .find(|h| h.key == "rill.error")
        .and_then(|h| h.value.clone())
        .expect("error header");
    assert!(
        String::from_utf8_lossy(&error).contains("cannot split 'boom'"),
        "{error:?}"
    );
    assert_eq!(app.state(), AppState::Running);
    app.close().expect("close");
}

#[test]
fn a_repartition_topic_gets_the_partition_count_asked_for() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "c"]);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map(|_, line| {
            line.split_whitespace()
                .map(|word| (word.to_string(), 1i64))
                .collect()
        })
        .repartition_as(rill_streams::Repartitioned::named("words").partitions(5))
        .to("counts");
    let mut app = StreamsApp::new(
        builder.build().expect("topology"),
        log.clone(),
        StreamsConfig::new("rp", state.path()),
    );
    app.start().expect("start");
    let words = read_committed(log.as_ref(), "counts", 3);
    app.close().expect("close");
    assert_eq!(
        latest(&words),
        BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("c".to_string(), 1)
        ])
    );
    let described = log
        .admin()
        .describe_topic("rp-words-repartition")
        .expect("repartition topic");
    assert_eq!(described.config.partitions, 5);
}

#[test]
fn a_repartition_with_no_partitions_is_refused_at_build() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .repartition_as(rill_streams::Repartitioned::named("none").partitions(0))
        .to("out");
    let error = builder.build().err().expect("refused");
    assert!(
        matches!(
            &error,
            rill_streams::StreamsError::InvalidPartitions { topic, partitions: 0 } if topic == "none"
        ),
        "{error:?}"
    );
}

#[test]
fn a_sink_with_a_partitioner_writes_where_it_says() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a", "bb", "ccc", "dddd"]);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        // By length: 1 -> 1, 2 -> 2, 3 -> 0, and 4 falls back to the key's hash.
        .to_with_partitioner("counts", |_, line: &String, partitions| {
            (line.len() < 4).then(|| line.len() as i32 % partitions)
        });
    let mut app = StreamsApp::new(
        builder.build().expect("topology"),
        log.clone(),
        StreamsConfig::new("part", state.path()),
    );
    app.start().expect("start");
    let written = committed_records(log.as_ref(), "counts", 4);
    app.close().expect("close");
    let mut placed: Vec<(String, i32)> = written
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
                r.partition,
            )
        })
        .collect();
    placed.sort();
    assert_eq!(
        &placed[..3],
        &[
            ("a".to_string(), 1),
            ("bb".to_string(), 2),
            ("ccc".to_string(), 0)
        ]
    );
    assert_eq!(placed[3].0, "dddd");
}

#[test]
fn interactive_queries_scan_ranges_and_prefixes_over_the_local_partitions_in_key_order() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(
        log.as_ref(),
        "sentences",
        &["apple apricot", "banana blueberry", "cherry apple"],
    );
    let mut app = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        StreamsConfig::new("scan", state.path()),
    );
    app.start().expect("start");
    read_committed(log.as_ref(), "counts", 6);
    let counts = app.store::<String, i64>("counts").expect("store");
    let range = counts
        .range_local(&"apricot".to_string(), &"blueberry".to_string())
        .expect("range");
    assert_eq!(
        range,
        vec![
            ("apricot".to_string(), 1),
            ("banana".to_string(), 1),
            ("blueberry".to_string(), 1)
        ]
    );
    let prefixed = counts.prefix_scan_local(b"ap").expect("prefix");
    assert_eq!(
        prefixed,
        vec![("apple".to_string(), 2), ("apricot".to_string(), 1)]
    );
    assert_eq!(counts.all_local().expect("all").len(), 5);
    // A store the topology does not have is named in a typed error.
    match app.store::<String, i64>("count") {
        Err(rill_streams::StreamsError::UnknownStore {
            store,
            used_by: None,
        }) => assert_eq!(store, "count"),
        other => panic!("expected UnknownStore, got {:?}", other.err()),
    }
    app.close().expect("close");
}

#[test]
fn a_foreign_key_join_runs_across_partitions_on_the_embedded_log() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    for topic in ["orders", "customers", "orders-named"] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(3))
            .expect("topic");
    }
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, i64>("orders", StoreOptions::persistent("orders"));
    let customers =
        builder.table::<i64, String>("customers", StoreOptions::persistent("customers"));
    orders
        .join_foreign(
            &customers,
            |customer: &i64| Some(*customer),
            |_, name: &String| name.clone(),
            StoreOptions::persistent("orders-named"),
        )
        .to_stream()
        .to("orders-named");
    let producer = log.producer(&Default::default()).expect("producer");
    let send = |topic: &str, key: Vec<u8>, value: Vec<u8>| {
        producer
            .send(ProducerRecord::new(topic).key(key).value(value))
            .expect("send")
            .wait()
            .expect("written");
    };
    for (id, name) in [(1i64, "ann"), (2, "bob"), (3, "cy")] {
        send(
            "customers",
            id.to_be_bytes().to_vec(),
            name.as_bytes().to_vec(),
        );
    }
    for i in 0..9i64 {
        let customer = i % 3 + 1;
        send(
            "orders",
            format!("o{i}").into_bytes(),
            customer.to_be_bytes().to_vec(),
        );
    }
    let mut app = StreamsApp::new(
        builder.build().expect("topology"),
        log.clone(),
        StreamsConfig::new("fk", state.path()),
    );
    app.start().expect("start");
    let joined = committed_records(log.as_ref(), "orders-named", 9);
    let named = app
        .store::<String, String>("orders-named")
        .expect("store")
        .all_local()
        .expect("all");
    app.close().expect("close");
    let latest: BTreeMap<String, String> = joined
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = (0..9)
        .map(|i| (format!("o{i}"), ["ann", "bob", "cy"][i % 3].to_string()))
        .collect();
    assert_eq!(latest, expected);
    assert_eq!(named.into_iter().collect::<BTreeMap<_, _>>(), expected);
}

#[test]
fn a_failed_stream_thread_is_replaced_and_nothing_is_lost_or_counted_twice() {
    use std::sync::atomic::{AtomicU32, Ordering};

    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["a b", "b c", "c c"]);
    let mut config = StreamsConfig::new("rwc", state.path());
    config.thread_failure = rill_streams::ThreadFailurePolicy::ReplaceThread;
    // The first two commits die before they happen: their work is done again by the
    // replacements.
    let failures = Arc::new(AtomicU32::new(0));
    config.fault_injector = Some(Arc::new({
        let failures = failures.clone();
        move |point| {
            point == rill_streams::FaultPoint::BeforeCommit
                && failures
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < 2).then_some(n + 1)
                    })
                    .is_ok()
        }
    }));
    let mut app = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        config,
    );
    app.start().expect("start");
    let counts = read_committed(log.as_ref(), "counts", 6);
    assert_eq!(
        latest(&counts),
        BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 3)
        ])
    );
    assert_eq!(app.threads_replaced(), 2);
    assert_eq!(app.state(), AppState::Running);
    produce(log.as_ref(), "sentences", &["a"]);
    let counts = read_committed(log.as_ref(), "counts", 7);
    assert_eq!(counts.last(), Some(&("a".to_string(), 2)));
    app.close().expect("close");
}

/// Records every state change of an application, in order, for a test to await.
fn state_changes() -> (
    rill_streams::StateListener,
    std::sync::mpsc::Receiver<(AppState, AppState)>,
) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let sender = parking_lot::Mutex::new(sender);
    let listener: rill_streams::StateListener = Arc::new(move |old, new| {
        let _ = sender.lock().send((old, new));
    });
    (listener, receiver)
}

/// The changes up to and including the first that reaches `until`.
fn changes_until(
    receiver: &std::sync::mpsc::Receiver<(AppState, AppState)>,
    until: AppState,
) -> Vec<(AppState, AppState)> {
    let mut seen = Vec::new();
    loop {
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(change) => {
                seen.push(change);
                if change.1 == until {
                    return seen;
                }
            }
            Err(_) => panic!("no change to {until:?} within 30 s; changes seen: {seen:?}"),
        }
    }
}

#[test]
fn the_state_listener_hears_start_rebalances_and_close() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    let (listener, changes) = state_changes();
    let mut config = StreamsConfig::new("states", state.path().join("first"));
    config.threads = 2;
    config.state_listener = Some(listener);
    let mut first = StreamsApp::new(
        word_count(StoreOptions::in_memory("counts")),
        log.clone(),
        config,
    );
    assert_eq!(first.state(), AppState::Created);
    first.start().expect("start");
    assert_eq!(
        changes_until(&changes, AppState::Running),
        vec![
            (AppState::Created, AppState::Rebalancing),
            (AppState::Rebalancing, AppState::Running),
        ],
        "both threads must have their tasks before the application is running"
    );

    // A second instance joins: the first gives up tasks, so it rebalances and runs again.
    let mut second = StreamsApp::new(
        word_count(StoreOptions::in_memory("counts")),
        log.clone(),
        StreamsConfig::new("states", state.path().join("second")),
    );
    second.start().expect("start");
    assert_eq!(
        changes_until(&changes, AppState::Running),
        vec![
            (AppState::Running, AppState::Rebalancing),
            (AppState::Rebalancing, AppState::Running),
        ]
    );
    produce(log.as_ref(), "sentences", &["a b", "b c", "c c"]);
    read_committed(log.as_ref(), "counts", 6);

    // The second one leaving hands its tasks back (the first may still be taking them when
    // it is closed itself).
    second.close().expect("close");
    first.close().expect("close");
    let closing = changes_until(&changes, AppState::NotRunning);
    let tail = &closing[closing.len() - 2..];
    assert!(
        matches!(
            tail,
            [
                (
                    AppState::Running | AppState::Rebalancing,
                    AppState::PendingShutdown
                ),
                (AppState::PendingShutdown, AppState::NotRunning),
            ]
        ),
        "changes while closing: {closing:?}"
    );
    assert!(
        changes.try_recv().is_err(),
        "no change may follow NotRunning"
    );
    assert_eq!(first.state(), AppState::NotRunning);
}

/// Merges two co-partitioned inputs into `out`, in the order the task takes their records.
fn merged_inputs(left: &str, right: &str, out: &str) -> Topology {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>(left);
    let right = builder.stream::<String, String>(right);
    left.merge(&right).to(out);
    builder.build().expect("topology")
}

fn produce_at(log: &dyn Log, topic: &str, value: &str, timestamp: i64) {
    let producer = log.producer(&Default::default()).expect("producer");
    producer
        .send(
            ProducerRecord::new(topic)
                .key("k")
                .value(value.to_string())
                .timestamp(timestamp),
        )
        .expect("send")
        .wait()
        .expect("written");
}

fn values_of(log: &dyn Log, topic: &str, expected: usize) -> Vec<String> {
    committed_records(log, topic, expected)
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[test]
fn a_task_waits_for_an_input_with_records_to_read_then_takes_them_in_timestamp_order() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    for topic in ["left", "right", "merged", "left-2", "right-2", "merged-2"] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(1))
            .expect("topic");
    }
    // A backlog on both inputs, each holding records earlier than the other's.
    produce_at(log.as_ref(), "left", "left@2000", 2_000);
    produce_at(log.as_ref(), "left", "left@4000", 4_000);
    produce_at(log.as_ref(), "right", "right@1000", 1_000);
    produce_at(log.as_ref(), "right", "right@3000", 3_000);
    let mut config = StreamsConfig::new("idle", state.path());
    // One record per poll: whichever input is read first, the other still has records to
    // read, and the task waits for them (far longer than the test would run).
    config.max_poll_records = 1;
    config.max_task_idle = Duration::from_secs(3600);
    let mut app = StreamsApp::new(
        merged_inputs("left", "right", "merged"),
        log.clone(),
        config,
    );
    app.start().expect("start");
    assert_eq!(
        values_of(log.as_ref(), "merged", 4),
        ["right@1000", "left@2000", "right@3000", "left@4000"]
    );
    app.close().expect("close");

    // An empty input with nothing to read does not hold the task: nothing earlier can come.
    let mut config = StreamsConfig::new("idle-caught-up", state.path());
    config.max_task_idle = Duration::from_secs(3600);
    let mut app = StreamsApp::new(
        merged_inputs("left-2", "right-2", "merged-2"),
        log.clone(),
        config,
    );
    app.start().expect("start");
    produce_at(log.as_ref(), "left-2", "alone", 1_000);
    assert_eq!(values_of(log.as_ref(), "merged-2", 1), ["alone"]);
    app.close().expect("close");
}

/// Runs `merged_inputs` over `left` (records at times 0..n) and `right` (n records far later):
/// the task takes all of left first and holds right's records meanwhile. Answers the most
/// records it held from one partition.
fn most_held_while_merging(bound: usize, name: &str) -> u64 {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    let (left, right, merged) = (
        format!("{name}-l"),
        format!("{name}-r"),
        format!("{name}-m"),
    );
    for topic in [&left, &right, &merged] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(1))
            .expect("topic");
    }
    let n = 2_000;
    let producer = log.producer(&Default::default()).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..n {
        for (topic, time) in [(&left, i), (&right, 1_000_000 + i)] {
            let record = ProducerRecord::new(topic.as_str())
                .key("k")
                .value("v")
                .timestamp(time);
            deliveries.push(producer.send(record).expect("send"));
        }
    }
    for delivery in deliveries {
        delivery.wait().expect("written");
    }
    let mut config = StreamsConfig::new(name, state.path());
    // One partition per poll (100 records fill it), and right is held until left, whose
    // records come first in time, is read to its end.
    config.max_poll_records = 100;
    config.max_task_idle = Duration::from_secs(3600);
    config.buffered_records_per_partition = bound;
    let mut app = StreamsApp::new(merged_inputs(&left, &right, &merged), log.clone(), config);
    app.start().expect("start");
    assert_eq!(
        committed_records(log.as_ref(), &merged, 2 * n as usize).len(),
        2 * n as usize
    );
    let most = app.most_buffered_records();
    app.close().expect("close");
    most
}

#[test]
fn a_task_holding_one_inputs_records_pauses_it_past_the_bound() {
    // Unbounded, right's records pile up while left is read.
    let unbounded = most_held_while_merging(usize::MAX, "unbounded");
    assert!(unbounded > 500, "held at most {unbounded} without a bound");
    // Bounded at 10: right is paused past it, so it holds at most one poll more.
    let bounded = most_held_while_merging(10, "bounded");
    assert!(bounded <= 10 + 100, "held {bounded} with a bound of 10");
}

/// Writes a string reversed, and reads it back: a format no default serde would produce.
struct ReversedSerde;

impl rill_streams::Serde<String> for ReversedSerde {
    fn serialize(&self, _: &str, value: &String) -> Result<bytes::Bytes, rill_streams::SerdeError> {
        Ok(bytes::Bytes::from(value.chars().rev().collect::<String>()))
    }

    fn deserialize(&self, _: &str, bytes: &[u8]) -> Result<String, rill_streams::SerdeError> {
        Ok(String::from_utf8_lossy(bytes).chars().rev().collect())
    }
}

#[test]
fn a_grouping_repartitions_through_the_topic_and_serdes_it_is_given() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    setup(log.as_ref());
    produce(log.as_ref(), "sentences", &["ab cd", "ab"]);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect())
        .group_by_as(
            |_, word| word.clone(),
            rill_streams::Repartitioned::with_serdes(
                "by-word",
                Arc::new(rill_streams::StringSerde),
                Arc::new(ReversedSerde),
            )
            .partitions(2),
        )
        .count(StoreOptions::in_memory("word-counts"))
        .to_stream()
        .to("counts");
    let mut app = StreamsApp::new(
        builder.build().expect("topology"),
        log.clone(),
        StreamsConfig::new("grouped", state.path()),
    );
    app.start().expect("start");
    let counts = read_committed(log.as_ref(), "counts", 3);
    app.close().expect("close");
    assert_eq!(
        latest(&counts),
        BTreeMap::from([("ab".to_string(), 2), ("cd".to_string(), 1)])
    );
    let topic = "grouped-by-word-repartition";
    let described = log
        .admin()
        .describe_topic(topic)
        .expect("repartition topic");
    assert_eq!(described.config.partitions, 2);
    let mut written: Vec<String> = committed_records(log.as_ref(), topic, 3)
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["ba", "ba", "dc"],
        "values in the given serde's format"
    );
}
