//! Two instances of one application on one log: partitions are split between them, each
//! answers queries for its keys and names the owner of the others, and when one leaves the
//! other takes its tasks over with their state restored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use rill_streams::{
    StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig, StreamsError, Topology,
};

fn counts_by_key() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("events")
        .group_by_key()
        .count(StoreOptions::in_memory("counts"));
    builder.build().expect("topology")
}

fn instance(log: &Arc<EmbeddedLog>, state: &std::path::Path, host: &str) -> StreamsApp {
    let mut config = StreamsConfig::new("shared-app", state);
    config.application_server = Some(host.to_string());
    let mut app = StreamsApp::new(counts_by_key(), log.clone(), config);
    app.start().expect("start");
    app
}

/// Polls `check` until it holds or 30 s pass.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

#[test]
fn two_instances_split_the_keys_answer_for_their_own_and_take_over_on_leave() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(
        EmbeddedLog::open(EmbeddedConfig::new(data.path()).fsync(FsyncPolicy::Never)).expect("log"),
    );
    log.admin()
        .create_topic("events", &TopicConfig::with_partitions(4))
        .expect("topic");
    let keys: Vec<String> = (0..16).map(|i| format!("key-{i}")).collect();
    let producer = log.producer(&Default::default()).expect("producer");
    for key in &keys {
        drop(
            producer
                .send(ProducerRecord::new("events").key(key.clone()).value("x"))
                .expect("send"),
        );
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let (state_a, state_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = instance(&log, state_a.path(), "a:1");
    let mut b = instance(&log, state_b.path(), "b:2");
    let store_a = a.store::<String, i64>("counts").expect("store a");
    let store_b = b.store::<String, i64>("counts").expect("store b");

    // Once both own tasks and every key is counted, each key is local to exactly one of them
    // and the other names it as the owner.
    eventually(
        "both instances own partitions and all keys are counted",
        || {
            keys.iter().all(|key| {
                let (ma, mb) = (
                    store_a.metadata_for_key(key).expect("meta"),
                    store_b.metadata_for_key(key).expect("meta"),
                );
                let counted = match (ma.local, mb.local) {
                    (true, false) => store_a.get(key).ok().flatten() == Some(1),
                    (false, true) => store_b.get(key).ok().flatten() == Some(1),
                    _ => false,
                };
                counted && ma.owner == mb.owner && ma.owner.is_some()
            }) && keys
                .iter()
                .any(|k| store_a.metadata_for_key(k).expect("meta").local)
                && keys
                    .iter()
                    .any(|k| store_b.metadata_for_key(k).expect("meta").local)
        },
    );
    let remote = keys
        .iter()
        .find(|k| !store_a.metadata_for_key(k).expect("meta").local)
        .expect("a key held by b");
    match store_a.get(remote) {
        Err(StreamsError::KeyNotLocal { owner, .. }) => assert_eq!(owner.as_deref(), Some("b:2")),
        other => panic!("expected KeyNotLocal naming b, got {other:?}"),
    }

    // b leaves: a restores b's partitions from the changelog and answers for every key.
    b.close().expect("close b");
    eventually("a holds every key after b left", || {
        keys.iter()
            .all(|key| store_a.get(key).ok().flatten() == Some(1))
    });
    let metadata = store_a.metadata_for_key(remote).expect("meta");
    assert!(metadata.local);
    // The owner comes from the registry topic, which a reads back on its own schedule.
    eventually("a names itself as the owner of b's keys", || {
        store_a
            .metadata_for_key(remote)
            .expect("meta")
            .owner
            .as_deref()
            == Some("a:1")
    });
}

/// Counts per key in a persistent store, each instance keeping a standby copy of the other's.
fn standby_instance(log: &Arc<EmbeddedLog>, state: &std::path::Path, host: &str) -> StreamsApp {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("events")
        .group_by_key()
        .count(StoreOptions::persistent("counts"));
    let mut config = StreamsConfig::new("standby-app", state);
    config.application_server = Some(host.to_string());
    config.standby_replicas = 1;
    let mut app = StreamsApp::new(builder.build().expect("topology"), log.clone(), config);
    app.start().expect("start");
    app
}

/// Whether the store's committed changelog, over its four partitions, ends at `count` for
/// every one of `keys` (the record cache logs a key once per commit, so the number of
/// records depends on how the commits fell).
fn changelog_at(log: &EmbeddedLog, keys: &[String], count: i64) -> bool {
    let config = rill_log::ConsumerConfig {
        isolation: rill_log::IsolationLevel::ReadCommitted,
        ..Default::default()
    };
    let consumer = log.consumer(&config, None).expect("consumer");
    let partitions: Vec<rill_log::TopicPartition> = (0..4)
        .map(|p| rill_log::TopicPartition::new("standby-app-counts-changelog", p))
        .collect();
    consumer.assign(&partitions).expect("assign");
    for partition in &partitions {
        consumer
            .seek(partition, rill_log::SeekTo::Beginning)
            .expect("seek");
    }
    let mut latest = std::collections::BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(20)).expect("poll");
        if records.is_empty() {
            break;
        }
        for record in records {
            let (Some(key), Some(value)) = (record.key, record.value) else {
                continue;
            };
            let value = <[u8; 8]>::try_from(value.as_ref())
                .ok()
                .map(i64::from_be_bytes);
            latest.insert(String::from_utf8_lossy(&key).into_owned(), value);
        }
    }
    keys.iter()
        .all(|key| latest.get(key.as_str()) == Some(&Some(count)))
}

/// Whether every changelog partition `app` copies is copied up to its end.
fn copies_caught_up(log: &EmbeddedLog, app: &StreamsApp) -> bool {
    let consumer = log.consumer(&Default::default(), None).expect("consumer");
    let positions = app.standby_positions();
    !positions.is_empty()
        && positions.iter().all(|(partition, position)| {
            consumer.watermarks(partition).expect("watermarks").high == *position
        })
}

#[test]
fn a_standby_copy_takes_over_without_restoring_the_changelog() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(
        EmbeddedLog::open(EmbeddedConfig::new(data.path()).fsync(FsyncPolicy::Never)).expect("log"),
    );
    log.admin()
        .create_topic("events", &TopicConfig::with_partitions(4))
        .expect("topic");
    let keys: Vec<String> = (0..16).map(|i| format!("key-{i}")).collect();
    let producer = log.producer(&Default::default()).expect("producer");
    let send_all = |times: usize| {
        for _ in 0..times {
            for key in &keys {
                drop(
                    producer
                        .send(ProducerRecord::new("events").key(key.clone()).value("x"))
                        .expect("send"),
                );
            }
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    };
    send_all(3);

    let (state_a, state_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let mut a = standby_instance(&log, state_a.path(), "a:1");
    let mut b = standby_instance(&log, state_b.path(), "b:2");
    let (store_a, store_b) = (
        a.store::<String, i64>("counts").expect("store"),
        b.store::<String, i64>("counts").expect("store"),
    );
    eventually("both instances own tasks and every key is counted", || {
        keys.iter().all(|key| {
            [&store_a, &store_b]
                .iter()
                .any(|store| store.get(key).ok().flatten() == Some(3))
        }) && !a.standby_tasks().is_empty()
            && !b.standby_tasks().is_empty()
    });
    // Written while b owns its tasks: only b, and a's copies of them, see these counts.
    send_all(2);
    eventually("the counts and the copies caught up", || {
        keys.iter().all(|key| {
            [&store_a, &store_b]
                .iter()
                .any(|store| store.get(key).ok().flatten() == Some(5))
        }) && changelog_at(&log, &keys, 5)
            && copies_caught_up(&log, &a)
    });
    let copied = a.standby_tasks();
    assert!(a.standby_records_applied() > 0);
    // a answers every key: its own from its tasks, b's (stale-allowed) from its copies.
    for key in &keys {
        assert_eq!(store_a.get_stale(key).expect("get"), Some(5), "{key}");
    }
    assert!(
        keys.iter().any(|key| store_a.get(key).is_err()),
        "b owns some keys"
    );

    // b leaves: a takes its tasks over from its copies, reading nothing of the changelogs.
    let restored_before = a.records_restored();
    b.close().expect("close b");
    eventually("a holds every key after b left", || {
        keys.iter()
            .all(|key| store_a.get(key).ok().flatten() == Some(5))
    });
    assert_eq!(
        a.records_restored() - restored_before,
        0,
        "the copies of {copied:?} were complete"
    );
    assert!(a.standby_tasks().is_empty(), "no copies of its own tasks");
    // And the counts go on from there.
    send_all(1);
    eventually("the counts went on", || {
        keys.iter()
            .all(|key| store_a.get(key).ok().flatten() == Some(6))
    });
    a.close().expect("close a");
}
