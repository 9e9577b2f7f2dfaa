//! Broker-layer tests of the embedded log: directory lock, fsync policies, group commit,
//! transactions, fencing, durable offsets, crash recovery and rebalancing.
//!
//! Waiting is always on a condition with a generous deadline, never a fixed sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rill_log::{
    ConsumedRecord, Consumer, ConsumerConfig, ErrorClass, IsolationLevel, Log, LogError,
    OffsetReset, ProducerRecord, RebalanceListener, TopicConfig, TopicPartition,
};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};

const DEADLINE: Duration = Duration::from_secs(30);
const CHILD_ENV: &str = "RILL_LOCK_PROBE_DIR";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

fn open(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("open the log")
}

fn create(log: &EmbeddedLog, topic: &str, partitions: i32) {
    log.admin()
        .create_topic(topic, &TopicConfig::with_partitions(partitions))
        .expect("create topic");
}

fn reader(log: &EmbeddedLog, partitions: &[TopicPartition]) -> Box<dyn Consumer> {
    let consumer = log
        .consumer(&ConsumerConfig::default(), None)
        .expect("consumer");
    consumer.assign(partitions).expect("assign");
    consumer
}

/// Polls until `want` records arrived or the deadline passed.
fn poll_n(consumer: &dyn Consumer, want: usize) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "waited for {want} records, got {}",
            got.len()
        );
        got.extend(consumer.poll(Duration::from_millis(200)).expect("poll"));
    }
    got
}

fn values(records: &[ConsumedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[test]
fn a_second_open_in_the_same_process_is_refused_naming_the_holder() {
    let dir = tempdir();
    let log = open(dir.path());
    let err = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).expect_err("second open");
    match err {
        LogError::DirectoryLocked { path, holder } => {
            assert_eq!(path, dir.path());
            assert_eq!(holder, format!("pid {}", std::process::id()));
        }
        other => panic!("expected DirectoryLocked, got {other:?}"),
    }
    log.close().expect("close");
    // Closing released the lock.
    open(dir.path()).close().expect("reopen and close");
}

/// Run by `a_second_open_from_another_process_is_refused` in a child process.
#[test]
fn lock_probe_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    match EmbeddedLog::open(EmbeddedConfig::new(dir)) {
        Err(LogError::DirectoryLocked { holder, .. }) => println!("PROBE-LOCKED by {holder}"),
        Err(other) => println!("PROBE-ERROR {other}"),
        Ok(_) => println!("PROBE-OPENED"),
    }
}

#[test]
fn a_second_open_from_another_process_is_refused() {
    let dir = tempdir();
    let log = open(dir.path());
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "lock_probe_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("PROBE-LOCKED by pid {}", std::process::id());
    assert!(stdout.contains(&expected), "child said: {stdout}");
    log.close().expect("close");
}

#[test]
fn every_fsync_policy_acknowledges_and_shows_the_records() {
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempdir();
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path()).fsync(policy)).expect("open");
        create(&log, "t", 1);
        let producer = log.producer(&Default::default()).expect("producer");
        let deliveries: Vec<_> = (0..10)
            .map(|i| {
                producer
                    .send(ProducerRecord::new("t").value(format!("v{i}")))
                    .expect("send")
            })
            .collect();
        let offsets: Vec<i64> = deliveries
            .into_iter()
            .map(|d| d.wait().expect("delivery").offset)
            .collect();
        assert_eq!(offsets, (0..10).collect::<Vec<_>>(), "{policy:?}");
        let consumer = reader(&log, &[TopicPartition::new("t", 0)]);
        assert_eq!(poll_n(&*consumer, 10).len(), 10, "{policy:?}");
        drop(consumer);
        log.close().expect("close");
        // Everything acknowledged is there after a clean reopen.
        let log = open(dir.path());
        let consumer = reader(&log, &[TopicPartition::new("t", 0)]);
        assert_eq!(poll_n(&*consumer, 10).len(), 10, "{policy:?} after reopen");
    }
}

#[test]
fn group_commit_completes_many_concurrent_sends_with_dense_offsets() {
    let dir = tempdir();
    let log = Arc::new(open(dir.path()));
    create(&log, "busy", 3);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let producer = log.producer(&Default::default()).expect("producer");
                let deliveries: Vec<_> = (0..200)
                    .map(|i| {
                        producer
                            .send(
                                ProducerRecord::new("busy")
                                    .key(format!("k{t}-{i}"))
                                    .value("x"),
                            )
                            .expect("send")
                    })
                    .collect();
                producer.flush(DEADLINE).expect("flush");
                deliveries
                    .into_iter()
                    .map(|d| d.wait().expect("delivery"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for thread in threads {
        for meta in thread.join().expect("producer thread") {
            per_partition
                .entry(meta.partition)
                .or_default()
                .push(meta.offset);
        }
    }
    let mut total = 0;
    for (partition, mut offsets) in per_partition {
        offsets.sort_unstable();
        total += offsets.len();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {partition}: offsets are dense and unique"
        );
    }
    assert_eq!(total, 1600);
    let all: Vec<_> = (0..3).map(|p| TopicPartition::new("busy", p)).collect();
    let consumer = reader(&log, &all);
    assert_eq!(poll_n(&*consumer, 1600).len(), 1600);
}

#[test]
fn keyed_records_follow_murmur2_and_send_time_errors_are_typed() {
    let dir = tempdir();
    let log =
        EmbeddedLog::open(EmbeddedConfig::new(dir.path()).max_record_bytes(1000)).expect("open");
    create(&log, "k", 5);
    let producer = log.producer(&Default::default()).expect("producer");
    for key in ["a", "order-1", "foobar"] {
        let meta = producer
            .send(ProducerRecord::new("k").key(key).value("v"))
            .expect("send")
            .wait()
            .expect("delivery");
        assert_eq!(
            meta.partition,
            rill_log::partition_for_key(key.as_bytes(), 5)
        );
    }
    let err = producer
        .send(ProducerRecord::new("nope"))
        .expect_err("unknown topic");
    assert!(matches!(err, LogError::UnknownTopic { .. }), "{err:?}");
    let err = producer
        .send(ProducerRecord::new("k").partition(5))
        .expect_err("bad partition");
    assert!(
        matches!(err, LogError::UnknownPartition { partitions: 5, .. }),
        "{err:?}"
    );
    let err = producer
        .send(ProducerRecord::new("k").value(vec![0u8; 2000]))
        .expect_err("too large");
    assert!(
        matches!(err, LogError::RecordTooLarge { max: 1000, .. }),
        "{err:?}"
    );
    for bad in ["", "a/b", "..", &"x".repeat(250)] {
        let err = log
            .admin()
            .create_topic(bad, &TopicConfig::with_partitions(1))
            .expect_err("bad name");
        assert!(
            matches!(err, LogError::InvalidTopicConfig { .. }),
            "{bad}: {err:?}"
        );
    }
    let err = log
        .admin()
        .create_topic("zero", &TopicConfig::with_partitions(0))
        .expect_err("zero partitions");
    assert!(matches!(err, LogError::InvalidTopicConfig { .. }));
    let err = log
        .admin()
        .create_topic("k", &TopicConfig::with_partitions(1))
        .expect_err("exists");
    assert!(matches!(err, LogError::TopicExists { .. }));
}

#[test]
fn a_waiting_poll_returns_when_records_become_visible() {
    let dir = tempdir();
    let log = Arc::new(open(dir.path()));
    create(&log, "wake", 1);
    let waiter = {
        let log = log.clone();
        std::thread::spawn(move || {
            let consumer = reader(&log, &[TopicPartition::new("wake", 0)]);
            // One long poll: it must return with the record, not run out its timeout.
            consumer.poll(Duration::from_secs(600)).expect("poll")
        })
    };
    let producer = log.producer(&Default::default()).expect("producer");
    producer
        .send(ProducerRecord::new("wake").value("hello"))
        .expect("send")
        .wait()
        .expect("delivery");
    let got = waiter.join().expect("waiter");
    assert_eq!(values(&got), vec!["hello"]);
}

#[test]
fn transactions_commit_atomically_and_aborts_leave_nothing() {
    let dir = tempdir();
    let log = open(dir.path());
    create(&log, "in", 1);
    create(&log, "out", 2);
    let parts: Vec<_> = (0..2).map(|p| TopicPartition::new("out", p)).collect();
    let committed_reader = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                ..Default::default()
            },
            None,
        )
        .expect("consumer");
    committed_reader.assign(&parts).expect("assign");

    let producer = log
        .transactional_producer(&Default::default(), "tx")
        .expect("txn producer");
    producer.begin().expect("begin");
    let deliveries: Vec<_> = (0..4)
        .map(|i| {
            producer
                .send(
                    ProducerRecord::new("out")
                        .partition(i % 2)
                        .value(format!("c{i}")),
                )
                .expect("send")
        })
        .collect();
    let group = rill_log::GroupMetadata {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        backend: None,
    };
    producer
        .send_offsets(&[(TopicPartition::new("in", 0), 7)], &group)
        .expect("send offsets");
    // Open: nothing visible, no offsets.
    assert!(
        committed_reader
            .poll(Duration::from_millis(20))
            .expect("poll")
            .is_empty()
    );
    for p in &parts {
        assert_eq!(committed_reader.watermarks(p).expect("watermarks").high, 0);
    }
    // (A read of the group's committed offsets now would wait for the commit: the
    // conformance suite checks that.)
    let offsets_reader = log
        .consumer(&ConsumerConfig::group("g"), None)
        .expect("consumer");
    producer.commit().expect("commit");
    for d in deliveries {
        d.wait().expect("delivery after commit");
    }
    assert_eq!(
        offsets_reader
            .committed(&[TopicPartition::new("in", 0)])
            .expect("committed"),
        vec![Some(7)]
    );
    let mut got = values(&poll_n(&*committed_reader, 4));
    got.sort();
    assert_eq!(got, vec!["c0", "c1", "c2", "c3"]);

    // An aborted transaction: its deliveries fail, nothing is written.
    producer.begin().expect("begin");
    let aborted = producer
        .send(ProducerRecord::new("out").partition(0).value("aborted"))
        .expect("send");
    producer.abort().expect("abort");
    let err = aborted.wait().expect_err("aborted delivery");
    assert_eq!(err.class(), ErrorClass::InvalidInput);
    // Offsets stay dense: the next committed record takes the next offset.
    producer.begin().expect("begin");
    let next = producer
        .send(ProducerRecord::new("out").partition(0).value("after"))
        .expect("send");
    producer.commit().expect("commit");
    assert_eq!(next.wait().expect("delivery").offset, 2);
    assert_eq!(values(&poll_n(&*committed_reader, 1)), vec!["after"]);

    // Wrong-state calls.
    for err in [
        producer.commit().expect_err("commit without begin"),
        producer.abort().expect_err("abort without begin"),
        producer
            .send(ProducerRecord::new("out"))
            .expect_err("send outside a transaction"),
    ] {
        assert!(matches!(err, LogError::TransactionState { .. }), "{err:?}");
    }
    producer.begin().expect("begin");
    let err = producer.begin().expect_err("begin twice");
    assert!(matches!(err, LogError::TransactionState { .. }), "{err:?}");
}

#[test]
fn a_new_transactional_producer_fences_the_old_one() {
    let dir = tempdir();
    let log = open(dir.path());
    create(&log, "out", 1);
    let old = log
        .transactional_producer(&Default::default(), "id")
        .expect("old");
    old.begin().expect("begin");
    let zombie = old
        .send(ProducerRecord::new("out").value("zombie"))
        .expect("send");
    let new = log
        .transactional_producer(&Default::default(), "id")
        .expect("new");
    for err in [
        old.commit().expect_err("fenced commit"),
        old.begin().expect_err("fenced begin"),
    ] {
        assert!(
            matches!(&err, LogError::ProducerFenced { transactional_id } if transactional_id == "id"),
            "{err:?}"
        );
    }
    assert!(zombie.wait().is_err(), "the zombie's record was delivered");
    new.begin().expect("begin");
    let fresh = new
        .send(ProducerRecord::new("out").value("fresh"))
        .expect("send");
    new.commit().expect("commit");
    assert_eq!(fresh.wait().expect("delivery").offset, 0);
    drop((old, new));
    log.close().expect("close");
    // The epoch is durable: a producer from before the restart stays fenced by later ones.
    let log = open(dir.path());
    let a = log
        .transactional_producer(&Default::default(), "id")
        .expect("a");
    let _b = log
        .transactional_producer(&Default::default(), "id")
        .expect("b");
    assert!(matches!(a.begin(), Err(LogError::ProducerFenced { .. })));
}

#[test]
fn committed_offsets_survive_close_and_reopen() {
    let dir = tempdir();
    {
        let log = open(dir.path());
        create(&log, "t", 2);
        let consumer = log
            .consumer(&ConsumerConfig::group("g"), None)
            .expect("consumer");
        consumer
            .commit(&[
                (TopicPartition::new("t", 0), 3),
                (TopicPartition::new("t", 1), 5),
            ])
            .expect("commit");
        drop(consumer);
        log.close().expect("close");
    }
    let log = open(dir.path());
    let consumer = log
        .consumer(&ConsumerConfig::group("g"), None)
        .expect("consumer");
    assert_eq!(
        consumer
            .committed(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)])
            .expect("committed"),
        vec![Some(3), Some(5)]
    );
    let err = log
        .consumer(&ConsumerConfig::default(), None)
        .expect("consumer")
        .commit(&[(TopicPartition::new("t", 0), 1)])
        .expect_err("commit without a group");
    assert!(matches!(err, LogError::NoGroup { .. }));
}

#[test]
fn a_crash_before_the_commit_point_loses_the_transaction_and_nothing_else() {
    let dir = tempdir();
    {
        let log = open(dir.path());
        create(&log, "out", 2);
        let producer = log
            .transactional_producer(&Default::default(), "tx")
            .expect("producer");
        producer.begin().expect("begin");
        for p in 0..2 {
            drop(
                producer
                    .send(ProducerRecord::new("out").partition(p).value("committed"))
                    .expect("send"),
            );
        }
        producer.commit().expect("commit");
        let plain = log.producer(&Default::default()).expect("producer");
        plain
            .send(ProducerRecord::new("out").partition(0).value("plain"))
            .expect("send")
            .wait()
            .expect("delivery");

        producer.begin().expect("begin");
        for p in 0..2 {
            drop(
                producer
                    .send(ProducerRecord::new("out").partition(p).value("lost"))
                    .expect("send"),
            );
        }
        log.fail_next_txn_commit_for_test();
        producer
            .commit()
            .expect_err("commit dies before its commit point");
        log.crash_for_test();
    }
    let log = open(dir.path());
    let parts: Vec<_> = (0..2).map(|p| TopicPartition::new("out", p)).collect();
    let consumer = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadUncommitted,
                ..Default::default()
            },
            None,
        )
        .expect("consumer");
    consumer.assign(&parts).expect("assign");
    let mut got = values(&poll_n(&*consumer, 3));
    got.sort();
    assert_eq!(got, vec!["committed", "committed", "plain"]);
    assert!(
        consumer
            .poll(Duration::from_millis(20))
            .expect("poll")
            .is_empty()
    );
    assert_eq!(consumer.watermarks(&parts[0]).expect("watermarks").high, 2);
    assert_eq!(consumer.watermarks(&parts[1]).expect("watermarks").high, 1);
    // The truncated transaction's offsets are reused: offsets stay dense.
    let producer = log.producer(&Default::default()).expect("producer");
    let meta = producer
        .send(ProducerRecord::new("out").partition(1).value("next"))
        .expect("send")
        .wait()
        .expect("delivery");
    assert_eq!(meta.offset, 1);
}

#[test]
fn acknowledged_records_and_offsets_survive_a_crash() {
    let dir = tempdir();
    {
        let log = open(dir.path());
        create(&log, "t", 1);
        let producer = log.producer(&Default::default()).expect("producer");
        for i in 0..5 {
            producer
                .send(ProducerRecord::new("t").value(format!("v{i}")))
                .expect("send")
                .wait()
                .expect("delivery");
        }
        let consumer = log
            .consumer(&ConsumerConfig::group("g"), None)
            .expect("consumer");
        consumer
            .commit(&[(TopicPartition::new("t", 0), 2)])
            .expect("commit");
        drop(consumer);
        log.crash_for_test();
    }
    let log = open(dir.path());
    let consumer = log
        .consumer(&ConsumerConfig::group("g"), None)
        .expect("consumer");
    consumer
        .assign(&[TopicPartition::new("t", 0)])
        .expect("assign");
    assert_eq!(values(&poll_n(&*consumer, 3)), vec!["v2", "v3", "v4"]);
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(usize, Vec<TopicPartition>),
    Revoked(usize, Vec<TopicPartition>),
    Lost(usize, Vec<TopicPartition>),
}

struct Recorder {
    member: usize,
    events: Arc<Mutex<Vec<Event>>>,
}

impl RebalanceListener for Recorder {
    fn on_assigned(&mut self, _: &dyn Consumer, partitions: &[TopicPartition]) {
        self.events
            .lock()
            .push(Event::Assigned(self.member, partitions.to_vec()));
    }
    fn on_revoked(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        // Revoked partitions are still owned here, so committing them must work.
        let offsets: Vec<_> = partitions.iter().map(|tp| (tp.clone(), 0)).collect();
        consumer.commit(&offsets).expect("commit inside on_revoked");
        self.events
            .lock()
            .push(Event::Revoked(self.member, partitions.to_vec()));
    }
    fn on_lost(&mut self, _: &dyn Consumer, partitions: &[TopicPartition]) {
        self.events
            .lock()
            .push(Event::Lost(self.member, partitions.to_vec()));
    }
}

fn member(
    log: &EmbeddedLog,
    n: usize,
    events: &Arc<Mutex<Vec<Event>>>,
    session: Duration,
) -> Box<dyn Consumer> {
    let consumer = log
        .consumer(
            &ConsumerConfig {
                session_timeout: Some(session),
                offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::group("g")
            },
            Some(Box::new(Recorder {
                member: n,
                events: events.clone(),
            })),
        )
        .expect("consumer");
    consumer.subscribe(&["t".to_string()]).expect("subscribe");
    consumer
}

/// Polls every member in turn until `done` holds for their assignments.
fn poll_until(
    members: &[&dyn Consumer],
    what: &str,
    done: impl Fn(&[BTreeSet<TopicPartition>]) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let assignments: Vec<BTreeSet<TopicPartition>> = members
            .iter()
            .map(|m| {
                m.poll(Duration::from_millis(10)).expect("poll");
                m.assignment().expect("assignment").into_iter().collect()
            })
            .collect();
        if done(&assignments) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what}; assignments: {assignments:?}"
        );
    }
}

/// Every assignment of a partition previously assigned to another member comes after that
/// member's revocation (or loss) of it.
fn assert_revoke_before_assign(events: &[Event]) {
    let mut owner: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for event in events {
        match event {
            Event::Assigned(m, parts) => {
                for tp in parts {
                    if let Some(prev) = owner.insert(tp.clone(), *m) {
                        panic!("{tp} assigned to {m} while {prev} still owned it: {events:?}");
                    }
                }
            }
            Event::Revoked(m, parts) | Event::Lost(m, parts) => {
                for tp in parts {
                    assert_eq!(
                        owner.remove(tp),
                        Some(*m),
                        "{tp} revoked from a non-owner: {events:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn three_members_rebalance_with_revocation_before_assignment() {
    let dir = tempdir();
    let log = open(dir.path());
    create(&log, "t", 6);
    let events = Arc::new(Mutex::new(Vec::new()));
    let session = Duration::from_secs(60);
    let a = member(&log, 0, &events, session);
    poll_until(&[&*a], "a to own all six", |s| s[0].len() == 6);
    let gen_one = a.group_metadata().expect("metadata").generation;
    let b = member(&log, 1, &events, session);
    poll_until(&[&*a, &*b], "a and b to own three each", |s| {
        s[0].len() == 3 && s[1].len() == 3
    });
    let c = member(&log, 2, &events, session);
    poll_until(&[&*a, &*b, &*c], "two each", |s| {
        s.iter().all(|p| p.len() == 2)
    });
    assert!(a.group_metadata().expect("metadata").generation > gen_one);
    // A member that no longer owns a partition cannot commit it.
    let not_owned = b.assignment().expect("assignment")[0].clone();
    let err = a
        .commit(&[(not_owned, 1)])
        .expect_err("commit of a partition a does not own");
    assert_eq!(err.class(), ErrorClass::TaskMigrated);

    c.close().expect("close c");
    poll_until(&[&*a, &*b], "a and b to own three each again", |s| {
        s[0].len() == 3 && s[1].len() == 3
    });
    let events = events.lock().clone();
    assert_revoke_before_assign(&events);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Revoked(2, p) if p.len() == 2)),
        "{events:?}"
    );
}

#[test]
fn a_silent_member_is_removed_and_told_it_lost_its_partitions() {
    let dir = tempdir();
    let log = open(dir.path());
    create(&log, "t", 2);
    let events = Arc::new(Mutex::new(Vec::new()));
    let quiet = member(&log, 0, &events, Duration::from_millis(100));
    poll_until(&[&*quiet], "the first member to own both", |s| {
        s[0].len() == 2
    });
    let busy = member(&log, 1, &events, Duration::from_secs(60));
    // Only `busy` polls: `quiet` misses its session timeout and `busy` gets everything.
    poll_until(&[&*busy], "the live member to own both", |s| {
        s[0].len() == 2
    });
    let err = quiet
        .commit(&[(TopicPartition::new("t", 0), 1)])
        .expect_err("commit from a removed member");
    assert_eq!(err.class(), ErrorClass::TaskMigrated);
    quiet.poll(Duration::from_millis(10)).expect("poll");
    let events = events.lock().clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Lost(0, p) if p.len() == 2)),
        "{events:?}"
    );
}
