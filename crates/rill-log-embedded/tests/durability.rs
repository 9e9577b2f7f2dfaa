//! Durability of the embedded log under a simulated power loss: commits write their batches to
//! the partitions without fsyncing them and make them durable through the journal alone, so
//! after a power loss (`EmbeddedLog::power_loss_for_test` cuts every file back to what was
//! fsynced) recovery must bring back every acknowledged record and offset from the journal.
//!
//! Waiting is always on a condition with a generous deadline, never a fixed sleep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rill_log::{
    ConsumedRecord, ConsumerConfig, GroupMetadata, IsolationLevel, Log, LogError, ProducerRecord,
    TopicConfig, TopicPartition,
};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};

const DEADLINE: Duration = Duration::from_secs(30);

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

/// Every record of `partitions` up to their high watermarks, read committed, per partition.
fn read_everything(log: &EmbeddedLog, partitions: &[TopicPartition]) -> BTreeMap<i32, Vec<String>> {
    let consumer = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                ..Default::default()
            },
            None,
        )
        .expect("consumer");
    consumer.assign(partitions).expect("assign");
    let want: i64 = partitions
        .iter()
        .map(|tp| consumer.watermarks(tp).expect("watermarks").high)
        .sum();
    let deadline = Instant::now() + DEADLINE;
    let mut got: Vec<ConsumedRecord> = Vec::new();
    while (got.len() as i64) < want {
        assert!(Instant::now() < deadline, "read {} of {want}", got.len());
        got.extend(consumer.poll(Duration::from_millis(200)).expect("poll"));
    }
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for r in got {
        out.entry(r.partition)
            .or_default()
            .push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
    }
    out
}

fn segment_files(dir: &Path, topic: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for part in std::fs::read_dir(dir.join("topics").join(topic)).expect("list topic") {
        let part = part.expect("entry").path();
        if !part.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&part).expect("list partition") {
            let f = f.expect("entry").path();
            if f.extension().is_some_and(|e| e == "log") {
                files.push(f);
            }
        }
    }
    files
}

fn bytes_of(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).expect("stat").len())
        .sum()
}

/// Commits `txns` transactions writing `txn{i}-p{p}` to every partition of `out`, each with
/// the offset `i + 1` of `in`/0 for group `g`.
fn commit_transactions(log: &EmbeddedLog, id: &str, out: &str, partitions: i32, txns: usize) {
    let producer = log
        .transactional_producer(&Default::default(), id)
        .expect("producer");
    let group = GroupMetadata {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        backend: None,
    };
    for i in 0..txns {
        producer.begin().expect("begin");
        for p in 0..partitions {
            producer
                .send_detached(
                    ProducerRecord::new(out)
                        .partition(p)
                        .value(format!("{id}-txn{i}-p{p}")),
                )
                .expect("send");
        }
        producer
            .send_offsets(&[(TopicPartition::new("in", 0), i as i64 + 1)], &group)
            .expect("send offsets");
        producer.commit().expect("commit");
    }
}

#[test]
fn a_power_loss_after_commits_loses_no_committed_record_or_offset() {
    let dir = tempdir();
    {
        let log = open(dir.path());
        create(&log, "in", 1);
        create(&log, "out", 6);
        commit_transactions(&log, "tx", "out", 6, 20);
        let plain = log.producer(&Default::default()).expect("producer");
        for i in 0..10 {
            plain
                .send(
                    ProducerRecord::new("out")
                        .partition(i % 6)
                        .value(format!("plain{i}")),
                )
                .expect("send")
                .wait()
                .expect("delivered");
        }
        let before = bytes_of(&segment_files(dir.path(), "out"));
        assert!(before > 0);
        log.power_loss_for_test().expect("power loss");
        // No commit fsynced a partition: the power loss took all of their records, and only
        // the journal can bring them back.
        assert_eq!(bytes_of(&segment_files(dir.path(), "out")), 0);
    }
    let log = open(dir.path());
    let parts: Vec<_> = (0..6).map(|p| TopicPartition::new("out", p)).collect();
    let got = read_everything(&log, &parts);
    for p in 0..6i32 {
        let mut want: Vec<String> = (0..20).map(|i| format!("tx-txn{i}-p{p}")).collect();
        want.extend((0..10).filter(|i| i % 6 == p).map(|i| format!("plain{i}")));
        assert_eq!(got.get(&p), Some(&want), "partition {p}");
    }
    assert_eq!(
        log.admin().group_offsets("g").expect("offsets"),
        vec![(TopicPartition::new("in", 0), 20)]
    );
    // The journal has been checkpointed at open: a second power loss now loses nothing either.
    log.power_loss_for_test().expect("power loss");
    drop(log);
    let log = open(dir.path());
    assert_eq!(read_everything(&log, &parts), got);
    // Offsets stay dense: the next record goes right after the recovered ones.
    let meta = log
        .producer(&Default::default())
        .expect("producer")
        .send(ProducerRecord::new("out").partition(0).value("next"))
        .expect("send")
        .wait()
        .expect("delivered");
    assert_eq!(meta.offset, 22);
}

#[test]
fn a_torn_journal_tail_loses_only_the_commit_it_was_writing() {
    let dir = tempdir();
    {
        let log = open(dir.path());
        create(&log, "in", 1);
        create(&log, "out", 3);
        commit_transactions(&log, "tx", "out", 3, 2);
        log.power_loss_for_test().expect("power loss");
    }
    // The last entry is the second commit: tear it, as a crash in the middle of its write
    // would.
    let journal = dir.path().join("meta").join("journal");
    let len = std::fs::metadata(&journal).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .and_then(|f| f.set_len(len - 7))
        .expect("tear the journal");
    let log = open(dir.path());
    let parts: Vec<_> = (0..3).map(|p| TopicPartition::new("out", p)).collect();
    let got = read_everything(&log, &parts);
    for p in 0..3 {
        assert_eq!(got.get(&p), Some(&vec![format!("tx-txn0-p{p}")]));
    }
    assert_eq!(
        log.admin().group_offsets("g").expect("offsets"),
        vec![(TopicPartition::new("in", 0), 1)]
    );
}

#[test]
fn a_partition_missing_acknowledged_records_fails_to_open_with_data_loss() {
    let dir = tempdir();
    {
        let log = open(dir.path());
        create(&log, "in", 1);
        create(&log, "out", 1);
        commit_transactions(&log, "a", "out", 1, 3);
        // Now durable in the partition file; the journal drops those batches.
        log.checkpoint_now().expect("checkpoint");
        commit_transactions(&log, "b", "out", 1, 2);
        log.power_loss_for_test().expect("power loss");
    }
    // The disk loses records it had acknowledged as durable (a lying disk, a hand edit).
    for file in segment_files(dir.path(), "out") {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
    }
    let err = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).expect_err("data loss");
    match err {
        LogError::DataLoss {
            partition,
            end,
            journaled,
        } => {
            assert_eq!(partition, TopicPartition::new("out", 0));
            assert_eq!((end, journaled), (0, 3));
        }
        other => panic!("expected DataLoss, got {other:?}"),
    }
}

/// Commits transactions as [`commit_transactions`] does, one at a time, until `stop` is set
/// and then `extra` more; returns how many.
fn commit_until(
    log: &EmbeddedLog,
    id: &str,
    partitions: i32,
    stop: &AtomicBool,
    extra: usize,
) -> usize {
    let mut committed = 0;
    let mut after_stop = 0;
    while after_stop < extra {
        if stop.load(Ordering::Acquire) {
            after_stop += 1;
        }
        let producer = log
            .transactional_producer(&Default::default(), id)
            .expect("producer");
        producer.begin().expect("begin");
        for p in 0..partitions {
            producer
                .send_detached(
                    ProducerRecord::new("out")
                        .partition(p)
                        .value(format!("{id}-txn{committed}-p{p}")),
                )
                .expect("send");
        }
        producer.commit().expect("commit");
        committed += 1;
    }
    committed
}

#[test]
fn checkpoints_during_concurrent_commits_lose_nothing() {
    let dir = tempdir();
    let partitions = 4;
    let committed: Vec<(String, usize)> = {
        let log = Arc::new(open(dir.path()));
        create(&log, "out", partitions);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let id = format!("w{w}");
                    let n = commit_until(&log, &id, partitions, &stop, 5);
                    (id, n)
                })
            })
            .collect();
        let plain = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                let producer = log.producer(&Default::default()).expect("producer");
                let (mut sent, mut after_stop) = (0, 0);
                while after_stop < 5 {
                    if stop.load(Ordering::Acquire) {
                        after_stop += 1;
                    }
                    producer
                        .send(
                            ProducerRecord::new("out")
                                .partition(sent % partitions)
                                .value(format!(
                                    "plain-txn{}-p{}",
                                    sent / partitions,
                                    sent % partitions
                                )),
                        )
                        .expect("send")
                        .wait()
                        .expect("delivered");
                    sent += 1;
                }
                ("plain".to_string(), sent as usize)
            })
        };
        // Every checkpoint runs while the writers commit; they go on after the last one, so
        // the power loss below takes records that only the journal holds.
        for _ in 0..20 {
            log.checkpoint_now().expect("checkpoint");
        }
        stop.store(true, Ordering::Release);
        let mut committed: Vec<_> = writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect();
        committed.push(plain.join().expect("plain producer"));
        log.power_loss_for_test().expect("power loss");
        committed
    };
    let log = open(dir.path());
    let parts: Vec<_> = (0..partitions)
        .map(|p| TopicPartition::new("out", p))
        .collect();
    let got = read_everything(&log, &parts);
    let mut total = 0;
    for (id, n) in &committed {
        let per_partition = |p: i32| -> Vec<String> {
            if id == "plain" {
                (0..*n as i32)
                    .filter(|i| i % partitions == p)
                    .map(|i| format!("plain-txn{}-p{p}", i / partitions))
                    .collect()
            } else {
                (0..*n).map(|i| format!("{id}-txn{i}-p{p}")).collect()
            }
        };
        for p in 0..partitions {
            let mine: Vec<String> = got
                .get(&p)
                .into_iter()
                .flatten()
                .filter(|v| v.starts_with(&format!("{id}-")))
                .cloned()
                .collect();
            let want = per_partition(p);
            total += want.len();
            assert_eq!(mine, want, "{id} on partition {p}");
        }
    }
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), total);
}

#[test]
fn the_journal_shrinks_after_a_checkpoint_and_grows_again_until_the_next() {
    let dir = tempdir();
    {
        // The cleaner thread checkpoints every 64 KiB of batches.
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path()).checkpoint_bytes(64 << 10))
            .expect("open");
        create(&log, "in", 1);
        create(&log, "out", 4);
        commit_transactions(&log, "a", "out", 4, 10);
        let before = log.journal_bytes();
        let after = log.checkpoint_now().expect("checkpoint");
        assert_eq!(after, log.journal_bytes());
        assert!(
            after < before / 4,
            "a journal of {before} bytes became {after} after a checkpoint"
        );
        // Past the threshold, the cleaner thread checkpoints on its own.
        // About 400 KiB of journal without a checkpoint; with one, under 64 KiB of batches (and
        // their entries' framing) since the last.
        commit_transactions(&log, "b", "out", 4, 1000);
        let deadline = Instant::now() + DEADLINE;
        while log.journal_bytes() > 128 << 10 {
            assert!(Instant::now() < deadline, "no checkpoint came");
            std::thread::sleep(Duration::from_millis(10));
        }
        // And what came after the last checkpoint is in the journal only.
        commit_transactions(&log, "c", "out", 4, 3);
        log.power_loss_for_test().expect("power loss");
    }
    let log = open(dir.path());
    let parts: Vec<_> = (0..4).map(|p| TopicPartition::new("out", p)).collect();
    let got = read_everything(&log, &parts);
    for p in 0..4 {
        let mut want: Vec<String> = (0..10).map(|i| format!("a-txn{i}-p{p}")).collect();
        want.extend((0..1000).map(|i| format!("b-txn{i}-p{p}")));
        want.extend((0..3).map(|i| format!("c-txn{i}-p{p}")));
        assert_eq!(got.get(&p), Some(&want), "partition {p}");
    }
}

/// Sends `count` records of about 1 KiB to `topic`/`partition`, each acknowledged.
fn send_plain(log: &EmbeddedLog, topic: &str, partition: i32, from: usize, count: usize) {
    let producer = log.producer(&Default::default()).expect("producer");
    let pad = "x".repeat(1000);
    let deliveries: Vec<_> = (from..from + count)
        .map(|i| {
            producer
                .send(
                    ProducerRecord::new(topic)
                        .partition(partition)
                        .value(format!("r{i}-{pad}")),
                )
                .expect("send")
        })
        .collect();
    for delivery in deliveries {
        delivery.wait().expect("delivered");
    }
}

fn plain_values(range: std::ops::Range<usize>) -> Vec<String> {
    let pad = "x".repeat(1000);
    range.map(|i| format!("r{i}-{pad}")).collect()
}

#[test]
fn a_power_loss_after_a_writeback_keeps_each_record_once() {
    let dir = tempdir();
    // Neither a checkpoint nor a writeback on its own: this test runs the writeback itself.
    let config = || {
        EmbeddedConfig::new(dir.path())
            .checkpoint_bytes(1 << 40)
            .writeback_bytes(0)
    };
    {
        let log = EmbeddedLog::open(config()).expect("open");
        create(&log, "out", 2);
        send_plain(&log, "out", 0, 0, 100);
        send_plain(&log, "out", 1, 0, 50);
        assert_eq!(log.write_back_for_test().expect("writeback"), 2);
        assert_eq!(log.unsynced_bytes_for_test(), 0);
        // Partition 0 goes on past what was synced; partition 1 has all its records synced
        // and journaled both.
        send_plain(&log, "out", 0, 100, 30);
        let journal = log.journal_bytes();
        assert!(journal > 150 * 1000, "the journal keeps the synced batches");
        log.power_loss_for_test().expect("power loss");
        // What the writeback synced survived in the partition files.
        assert!(bytes_of(&segment_files(dir.path(), "out")) > 150 * 1000);
    }
    // Recovery skips the journaled batches the partitions have and re-appends the rest.
    let log = EmbeddedLog::open(config()).expect("reopen");
    let parts = [TopicPartition::new("out", 0), TopicPartition::new("out", 1)];
    let got = read_everything(&log, &parts);
    assert_eq!(got.get(&0), Some(&plain_values(0..130)));
    assert_eq!(got.get(&1), Some(&plain_values(0..50)));
    let next = log
        .producer(&Default::default())
        .expect("producer")
        .send(ProducerRecord::new("out").partition(0).value("next"))
        .expect("send")
        .wait()
        .expect("delivered");
    assert_eq!(next.offset, 130, "offsets stay dense");
}

#[test]
fn the_cleaner_writes_partitions_back_between_checkpoints() {
    let dir = tempdir();
    let config = || {
        EmbeddedConfig::new(dir.path())
            .checkpoint_bytes(1 << 40)
            .writeback_bytes(128 << 10)
    };
    {
        let log = EmbeddedLog::open(config()).expect("open");
        create(&log, "out", 3);
        for p in 0..3 {
            send_plain(&log, "out", p, 0, 400);
        }
        // About 1.2 MiB written. A writeback runs after every 128 KiB journaled and syncs
        // each partition holding 128 KiB unsynced, so once the last one is done each holds
        // less, plus what came during that pass (under 128 KiB in all): under 512 KiB.
        let deadline = Instant::now() + DEADLINE;
        while log.unsynced_bytes_for_test() >= 512 << 10 {
            assert!(Instant::now() < deadline, "no writeback came");
            std::thread::sleep(Duration::from_millis(5));
        }
        log.power_loss_for_test().expect("power loss");
        assert!(bytes_of(&segment_files(dir.path(), "out")) > 1000 * 1000);
    }
    let log = EmbeddedLog::open(config()).expect("reopen");
    let parts: Vec<_> = (0..3).map(|p| TopicPartition::new("out", p)).collect();
    let got = read_everything(&log, &parts);
    for p in 0..3 {
        assert_eq!(got.get(&p), Some(&plain_values(0..400)), "partition {p}");
    }
}
