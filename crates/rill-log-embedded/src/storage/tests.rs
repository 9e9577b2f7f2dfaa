//! Behaviour of `PartitionLog` through its API, including crash recovery on damaged files.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_log::{ConsumedRecord, Header, LogError, Offset};

use super::{PartitionConfig, PartitionLog, RecoveryReport, StoredRecord};

mod bench;

fn config(segment_bytes: u64, index_interval_bytes: u32) -> PartitionConfig {
    PartitionConfig {
        topic: Arc::from("orders"),
        partition: 2,
        segment_bytes,
        index_interval_bytes,
    }
}

fn open_with(
    dir: &Path,
    cfg: &PartitionConfig,
    committed: &dyn Fn(u64) -> bool,
) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(dir, cfg.clone(), committed).expect("open")
}

fn open(dir: &Path, cfg: &PartitionConfig) -> (PartitionLog, RecoveryReport) {
    open_with(dir, cfg, &|_| true)
}

fn rec(ts: i64, key: Option<&str>, value: Option<&str>) -> StoredRecord {
    StoredRecord {
        timestamp: ts,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        headers: Vec::new(),
    }
}

/// A record whose value names its offset, so reads can be checked against it.
fn numbered(offset: Offset) -> StoredRecord {
    rec(
        1_000 + offset,
        Some(&format!("k{offset}")),
        Some(&format!("value-{offset}")),
    )
}

fn append_numbered(log: &PartitionLog, batches: usize, per_batch: usize) {
    for _ in 0..batches {
        let base = log.end_offset();
        let records: Vec<_> = (0..per_batch as i64).map(|i| numbered(base + i)).collect();
        assert_eq!(log.append(&records, 0).expect("append"), base);
    }
}

/// Every record from `from` to the end, reading in small steps.
fn read_all_from(log: &PartitionLog, from: Offset, max_bytes: usize) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut next = from;
    let end = log.end_offset();
    while next < end {
        let batch = log.read(next, end, max_bytes).expect("read");
        assert!(
            batch.next_offset > next,
            "read from {next} made no progress"
        );
        out.extend(batch.records);
        next = batch.next_offset;
    }
    out
}

fn read_all(log: &PartitionLog) -> Vec<ConsumedRecord> {
    read_all_from(log, 0, 1024)
}

fn assert_numbered(records: &[ConsumedRecord], offsets: impl IntoIterator<Item = Offset>) {
    let got: Vec<Offset> = records.iter().map(|r| r.offset).collect();
    let want: Vec<Offset> = offsets.into_iter().collect();
    assert_eq!(got, want);
    for r in records {
        assert_eq!(
            r.value.as_deref(),
            Some(format!("value-{}", r.offset).as_bytes())
        );
        assert_eq!(r.timestamp, 1_000 + r.offset);
    }
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_paths(dir).pop().expect("a segment")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

#[test]
fn partition_log_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PartitionLog>();
}

#[test]
fn round_trips_every_field_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20, 4096);
    let records = vec![
        StoredRecord {
            timestamp: 1_700_000_000_123,
            key: Some(Bytes::from_static(b"key")),
            value: Some(Bytes::from_static(b"value")),
            headers: vec![
                Header::new("trace", "abc"),
                Header {
                    key: "empty".into(),
                    value: None,
                },
                Header::new("", ""),
            ],
        },
        rec(-5, None, None),
        rec(i64::MAX, Some(""), None),
        rec(i64::MIN, None, Some("")),
    ];
    let (log, report) = open(dir.path(), &cfg);
    assert!(!report.clean);
    assert_eq!((log.start_offset(), log.end_offset()), (0, 0));
    assert_eq!(log.append(&records, 0).expect("append"), 0);
    assert_eq!(log.append(&records[..1], 0).expect("append"), 4);
    assert_eq!(log.end_offset(), 5);
    let check = |log: &PartitionLog| {
        let got = log.read(0, i64::MAX, 1 << 20).expect("read");
        assert_eq!(got.next_offset, 5);
        assert_eq!(got.records.len(), 5);
        for (i, (r, want)) in got
            .records
            .iter()
            .zip(records.iter().chain(&records[..1]))
            .enumerate()
        {
            assert_eq!(r.offset, i as i64);
            assert_eq!(&*r.topic, "orders");
            assert_eq!(r.partition, 2);
            assert_eq!(r.timestamp, want.timestamp);
            assert_eq!(r.key, want.key);
            assert_eq!(r.value, want.value);
            assert_eq!(r.headers, want.headers);
        }
    };
    check(&log);
    log.close().expect("close");
    let (log, report) = open(dir.path(), &cfg);
    assert!(report.clean);
    check(&log);
    drop(log);
    let (log, report) = open(dir.path(), &cfg);
    assert_eq!(
        report,
        RecoveryReport::default(),
        "nothing to repair after a crash"
    );
    check(&log);
}

#[test]
fn empty_append_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(1 << 20, 4096));
    append_numbered(&log, 1, 3);
    assert_eq!(log.append(&[], 0).expect("append"), 3);
    assert_eq!(log.end_offset(), 3);
    assert_eq!(log.read(3, 10, 100).expect("read").records.len(), 0);
}

#[test]
fn offsets_stay_dense_across_batches_and_segment_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(2048, 256);
    let (log, _) = open(dir.path(), &cfg);
    for i in 0..120 {
        append_numbered(&log, 1, 1 + i % 7);
    }
    let end = log.end_offset();
    assert_eq!(end, (0..120).map(|i| 1 + i % 7).sum::<usize>() as i64);
    let segments = segment_paths(dir.path());
    assert!(
        segments.len() > 5,
        "expected rolls, got {} segments",
        segments.len()
    );
    assert!(segments.iter().all(|p| file_len(p) <= 2048));
    assert_eq!(
        log.size_bytes(),
        segments.iter().map(|p| file_len(p)).sum::<u64>()
    );
    assert_numbered(&read_all(&log), 0..end);
    // Every starting point lands on exactly that offset, through the index.
    for from in 0..end {
        let got = log.read(from, end, 1).expect("read");
        assert_eq!(got.records.first().map(|r| r.offset), Some(from));
        assert!(got.next_offset > from);
    }
    // `upto` is exclusive and a read below the start reads from the start.
    let got = log.read(-10, 7, 1 << 20).expect("read");
    assert_numbered(&got.records, 0..7);
    assert_eq!(got.next_offset, 7);
    let got = log.read(end, end + 5, 1 << 20).expect("read");
    assert!(got.records.is_empty());
    assert_eq!(got.next_offset, end);

    drop(log);
    let (log, report) = open(dir.path(), &cfg);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.end_offset(), end);
    append_numbered(&log, 3, 4);
    assert_numbered(&read_all(&log), 0..end + 12);
}

#[test]
fn max_bytes_bounds_a_read_but_returns_at_least_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(1 << 20, 4096));
    append_numbered(&log, 10, 50);
    let one = log.read(0, 500, 1).expect("read");
    assert_numbered(&one.records, 0..50);
    assert_eq!(one.next_offset, 50);
    let batch_bytes = log.size_bytes() as usize / 10;
    let three = log.read(0, 500, batch_bytes * 3 + 10).expect("read");
    assert_numbered(&three.records, 0..150);
    // A read starting inside a batch returns that batch's remaining records.
    let mid = log.read(120, 500, 1).expect("read");
    assert_numbered(&mid.records, 120..150);
}

/// Writes 4 good batches, then damages the file after the good prefix; recovery must keep
/// exactly the prefix and appends must continue at its end.
fn check_torn_tail(damage: impl FnOnce(&Path, u64, u64)) -> RecoveryReport {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20, 128);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 4, 10);
    let good = log.size_bytes();
    append_numbered(&log, 1, 10);
    let full = log.size_bytes();
    drop(log);
    damage(&last_segment(dir.path()), good, full);
    let damaged_len = file_len(&last_segment(dir.path()));
    let (log, report) = open(dir.path(), &cfg);
    assert!(!report.clean);
    assert_eq!(report.truncated_bytes, damaged_len - good);
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.end_offset(), 40);
    assert_eq!(log.size_bytes(), good);
    assert_eq!(file_len(&last_segment(dir.path())), good);
    assert_numbered(&read_all(&log), 0..40);
    append_numbered(&log, 2, 5);
    assert_numbered(&read_all(&log), 0..50);
    drop(log);
    let (log, again) = open(dir.path(), &cfg);
    assert_eq!(again.truncated_bytes, 0);
    assert_numbered(&read_all(&log), 0..50);
    report
}

#[test]
fn recovery_truncates_a_batch_cut_short() {
    let report = check_torn_tail(|path, good, full| {
        let f = OpenOptions::new().write(true).open(path).expect("open");
        f.set_len(good + (full - good) / 2).expect("truncate");
    });
    assert!(report.truncated_bytes > 0);
}

#[test]
fn recovery_truncates_a_partial_header() {
    let report = check_torn_tail(|path, good, _| {
        let f = OpenOptions::new().write(true).open(path).expect("open");
        f.set_len(good + 7).expect("truncate");
    });
    assert_eq!(report.truncated_bytes, 7);
}

#[test]
fn recovery_truncates_appended_garbage() {
    let report = check_torn_tail(|path, good, full| {
        let f = OpenOptions::new().write(true).open(path).expect("open");
        f.set_len(good).expect("truncate");
        drop(f);
        let mut f = OpenOptions::new().append(true).open(path).expect("open");
        f.write_all(&vec![0xA5; (full - good) as usize + 3])
            .expect("write");
    });
    assert!(report.truncated_bytes > 0);
}

#[test]
fn recovery_truncates_a_batch_with_a_flipped_byte() {
    for at in [4u64, 9, 20, 60] {
        let report = check_torn_tail(|path, good, full| {
            let mut bytes = std::fs::read(path).expect("read");
            let i = (good + at.min(full - good - 1)) as usize;
            bytes[i] ^= 0x10;
            std::fs::write(path, bytes).expect("write");
        });
        assert!(report.truncated_bytes > 0, "flip at {at} went unnoticed");
    }
}

#[test]
fn recovery_truncates_zeroed_tail_after_a_power_loss() {
    // Filesystems may extend a file with zeros that were never written.
    let report = check_torn_tail(|path, good, full| {
        let mut bytes = std::fs::read(path).expect("read");
        for b in &mut bytes[good as usize..full as usize] {
            *b = 0;
        }
        std::fs::write(path, bytes).expect("write");
    });
    assert!(report.truncated_bytes > 0);
}

#[test]
fn recovery_only_touches_the_last_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1024, 128);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 40, 3);
    let end = log.end_offset();
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 3);
    let last = last_segment(dir.path());
    let last_base: Offset = last
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("numeric name");
    drop(log);
    // Tear the very first batch of the last segment: everything in it goes, nothing before.
    let f = OpenOptions::new().write(true).open(&last).expect("open");
    f.set_len(20).expect("truncate");
    let (log, report) = open(dir.path(), &cfg);
    assert_eq!(report.truncated_bytes, 20);
    assert_eq!(log.end_offset(), last_base);
    assert!(last_base < end);
    assert_numbered(&read_all(&log), 0..last_base);
    append_numbered(&log, 1, 3);
    assert_numbered(&read_all(&log), 0..last_base + 3);
}

#[test]
fn recovery_drops_trailing_uncommitted_transactions_and_keeps_committed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20, 4096);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 2, 5); // 0..10 plain
    let txn = |log: &PartitionLog, id: u64| {
        let base = log.end_offset();
        let recs: Vec<_> = (0..4).map(|i| numbered(base + i)).collect();
        log.append(&recs, id).expect("append txn");
    };
    txn(&log, 11); // 10..14 committed
    append_numbered(&log, 1, 2); // 14..16 plain
    txn(&log, 12); // 16..20 committed
    txn(&log, 13); // 20..24 not committed
    txn(&log, 14); // 24..28 not committed
    drop(log);
    let committed = |id: u64| id == 11 || id == 12;
    let (log, report) = open_with(dir.path(), &cfg, &committed);
    assert_eq!(report.uncommitted_batches, 2);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.end_offset(), 20);
    assert_numbered(&read_all(&log), 0..20);
    append_numbered(&log, 1, 3);
    assert_numbered(&read_all(&log), 0..23);

    // An uncommitted transaction before a plain batch is not at the tail: it stays (it is the
    // broker's job to filter it).
    txn(&log, 15);
    append_numbered(&log, 1, 1);
    drop(log);
    let (log, report) = open_with(dir.path(), &cfg, &committed);
    assert_eq!(report.uncommitted_batches, 0);
    assert_eq!(log.end_offset(), 28);
}

#[test]
fn an_uncommitted_tail_is_dropped_even_after_a_clean_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20, 4096);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 1, 5);
    log.append(&[numbered(5)], 99).expect("append");
    log.close().expect("close");
    let (log, report) = open_with(dir.path(), &cfg, &|_| false);
    assert_eq!(report.uncommitted_batches, 1);
    assert!(!report.clean);
    assert_eq!(log.end_offset(), 5);
}

#[test]
fn close_writes_the_marker_and_later_calls_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20, 4096);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 1, 3);
    log.sync().expect("sync");
    log.close().expect("close");
    let marker = dir.path().join("clean-shutdown");
    assert!(marker.exists());
    assert!(matches!(
        log.append(&[numbered(3)], 0),
        Err(LogError::Closed { .. })
    ));
    assert!(matches!(log.read(0, 3, 100), Err(LogError::Closed { .. })));
    assert!(matches!(log.sync(), Err(LogError::Closed { .. })));
    assert!(matches!(log.close(), Err(LogError::Closed { .. })));
    assert_eq!(log.end_offset(), 3);
    drop(log);
    let (log, report) = open(dir.path(), &cfg);
    assert!(report.clean);
    assert!(
        !marker.exists(),
        "the marker must go so that a later crash is detected"
    );
    assert_numbered(&read_all(&log), 0..3);
}

#[test]
fn a_corrupt_closed_segment_is_reported_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1024, 128);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 30, 3);
    drop(log);
    let first = segment_paths(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[60] ^= 0xff; // inside the first batch's records
    std::fs::write(&first, bytes).expect("write");
    let (log, _) = open(dir.path(), &cfg);
    match log.read(0, 10, 1 << 20) {
        Err(LogError::Corrupt { path, reason }) => {
            assert_eq!(path, first);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected a corrupt error, got {other:?}"),
    }
}

#[test]
fn concurrent_readers_see_a_consistent_prefix_while_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(16 << 10, 512));
    let log = Arc::new(log);
    let total = 4000;
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut next = 0;
                while next < total {
                    let batch = log.read(next, i64::MAX, 4096).expect("read");
                    for r in &batch.records {
                        assert_eq!(r.offset, next);
                        assert_eq!(r.value.as_deref(), Some(format!("value-{next}").as_bytes()));
                        next += 1;
                    }
                    assert_eq!(batch.next_offset, next);
                    std::thread::yield_now();
                }
                next
            })
        })
        .collect();
    append_numbered(&log, (total / 8) as usize, 8);
    for r in readers {
        assert_eq!(r.join().expect("reader"), total);
    }
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(1024, 100));
    // Timestamps mostly rise, with some out of order.
    let mut all = Vec::new();
    for b in 0..60i64 {
        let recs: Vec<_> = (0..3i64)
            .map(|i| {
                let ts = b * 10 + i * 3 + if (b + i) % 5 == 0 { -25 } else { 0 };
                rec(ts, Some("k"), Some("v"))
            })
            .collect();
        let base = log.append(&recs, 0).expect("append");
        all.extend(
            recs.iter()
                .enumerate()
                .map(|(i, r)| (base + i as i64, r.timestamp)),
        );
    }
    assert!(segment_paths(dir.path()).len() > 3);
    for target in -40..640 {
        let want = all.iter().find(|(_, ts)| *ts >= target).map(|(o, _)| *o);
        assert_eq!(
            log.offset_for_timestamp(target).expect("lookup"),
            want,
            "ts {target}"
        );
    }
    assert_eq!(log.offset_for_timestamp(i64::MAX).expect("lookup"), None);
}

#[test]
fn retention_by_time_deletes_old_closed_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1024, 128);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 60, 3); // timestamps 1000 + offset
    let end = log.end_offset();
    let before = segment_paths(dir.path());
    // Nothing is old enough.
    let none = log
        .enforce_retention(1_000, Some(Duration::from_millis(10)), None)
        .expect("retention");
    assert_eq!(none.segments_deleted, 0);
    // Records with ts < 1000 + 90 are expired: segments entirely below offset 90 go.
    let stats = log
        .enforce_retention(1_090 + 500, Some(Duration::from_millis(500)), None)
        .expect("retention");
    assert!(stats.segments_deleted > 0);
    let start = log.start_offset();
    assert!(start > 0 && start <= 90, "start {start}");
    assert_eq!(stats.records_removed, start as u64);
    let after = segment_paths(dir.path());
    assert_eq!(after.len(), before.len() - stats.segments_deleted as usize);
    assert_numbered(&read_all(&log), start..end);
    // A read below the start reads from the start.
    assert_eq!(log.read(0, end, 1).expect("read").records[0].offset, start);
    // Everything expired: all closed segments go, the active one stays.
    let stats = log
        .enforce_retention(i64::MAX, Some(Duration::from_millis(1)), None)
        .expect("retention");
    assert!(stats.segments_deleted > 0);
    assert_eq!(segment_paths(dir.path()).len(), 1);
    assert_eq!(log.end_offset(), end);
    let remaining = read_all(&log);
    assert_numbered(&remaining, log.start_offset()..end);
    assert!(!remaining.is_empty());
    drop(log);
    let (log, _) = open(dir.path(), &cfg);
    assert_numbered(&read_all(&log), remaining[0].offset..end);
}

#[test]
fn retention_by_size_deletes_oldest_segments_until_under_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(1024, 128));
    append_numbered(&log, 60, 3);
    let total = log.size_bytes();
    let limit = total / 2;
    let stats = log
        .enforce_retention(0, None, Some(limit))
        .expect("retention");
    assert!(stats.segments_deleted > 0);
    assert_eq!(stats.bytes_reclaimed, total - log.size_bytes());
    assert!(log.size_bytes() <= limit);
    // It stopped as soon as the limit was met: one segment fewer would not be enough.
    assert!(log.size_bytes() + 1024 > limit);
    assert_numbered(&read_all(&log), log.start_offset()..log.end_offset());
    let again = log
        .enforce_retention(0, None, Some(limit))
        .expect("retention");
    assert_eq!(again, super::CleanStats::default());
}

/// Writes `rounds` values for each of `keys` keys plus some keyless records and tombstones,
/// rolling many segments; returns the expected survivors of a compaction.
fn write_compactable(log: &PartitionLog) -> Vec<(Offset, String, Option<String>)> {
    let mut latest: std::collections::BTreeMap<String, (Offset, Option<String>, i64)> =
        Default::default();
    for round in 0..10 {
        for k in 0..8 {
            let key = format!("key-{k}");
            let ts = round * 100 + k;
            let (value, ts) = match (round, k) {
                // Key 1's last write is an old tombstone, key 2's a recent one.
                (9, 1) => (None, 5),
                (9, 2) => (None, 1_000_000),
                _ => (Some(format!("{key}@{round}")), ts),
            };
            let o = log
                .append(&[rec(ts, Some(&key), value.as_deref())], 0)
                .expect("append");
            latest.insert(key, (o, value, ts));
        }
        log.append(&[rec(round, None, Some("no key"))], 0)
            .expect("append");
    }
    let mut want: Vec<_> = latest
        .into_iter()
        .filter(|(_, (_, v, ts))| v.is_some() || *ts >= 1_000)
        .map(|(k, (o, v, _))| (o, k, v))
        .collect();
    want.sort();
    want
}

fn as_triples(records: &[ConsumedRecord]) -> Vec<(Offset, String, Option<String>)> {
    records
        .iter()
        .map(|r| {
            let s = |b: &Bytes| String::from_utf8(b.to_vec()).expect("utf-8");
            (
                r.offset,
                r.key.as_ref().map(s).expect("compacted records have keys"),
                r.value.as_ref().map(s),
            )
        })
        .collect()
}

#[test]
fn compaction_keeps_the_latest_per_key_and_drops_old_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(400, 64);
    let (log, _) = open(dir.path(), &cfg);
    let want = write_compactable(&log);
    // Close the last segment so that everything written is compactable.
    log.append(&[rec(0, Some("tail"), Some("t"))], 0)
        .expect("append");
    let tail_offset = log.end_offset() - 1;
    let end = log.end_offset();
    let size_before = log.size_bytes();
    let stats = log
        .compact(1_000_000 + 10, Duration::from_millis(1_000))
        .expect("compact");
    assert!(stats.records_removed > 0);
    assert!(stats.bytes_reclaimed > 0);
    assert_eq!(log.size_bytes(), size_before - stats.bytes_reclaimed);
    assert_eq!(log.end_offset(), end);
    let mut want_all = want.clone();
    want_all.push((tail_offset, "tail".into(), Some("t".into())));
    let check = |log: &PartitionLog| {
        let got = as_triples(&read_all(log));
        assert_eq!(got, want_all);
        assert_eq!(log.start_offset(), want[0].0);
    };
    check(&log);
    // Offsets are kept: a read at a survivor's offset starts with it.
    for (o, _, _) in &want {
        assert_eq!(log.read(*o, end, 1).expect("read").records[0].offset, *o);
    }
    // A second pass finds nothing more to do.
    let again = log
        .compact(1_000_000 + 10, Duration::from_millis(1_000))
        .expect("compact");
    assert_eq!(again.records_removed, 0);
    drop(log);
    let (log, _) = open(dir.path(), &cfg);
    check(&log);
    log.close().expect("close");
    let (log, _) = open(dir.path(), &cfg);
    check(&log);
}

#[test]
fn compaction_leaves_the_active_segment_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(1 << 20, 4096));
    for i in 0..5 {
        log.append(&[rec(i, Some("same"), Some("v"))], 0)
            .expect("append");
    }
    let stats = log.compact(i64::MAX, Duration::ZERO).expect("compact");
    assert_eq!(stats, super::CleanStats::default());
    assert_eq!(read_all(&log).len(), 5);
}

#[test]
fn reads_move_past_compaction_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(300, 64);
    let (log, _) = open(dir.path(), &cfg);
    // Offsets 0..40 over keys a, b, c, d cycling; then one key "z" so the rest can close.
    for i in 0..40i64 {
        let key = ["a", "b", "c", "d"][(i % 4) as usize];
        log.append(&[rec(i, Some(key), Some(&i.to_string()))], 0)
            .expect("append");
    }
    for i in 0..20i64 {
        log.append(&[rec(i, Some("z"), Some("z"))], 0)
            .expect("append");
    }
    log.compact(0, Duration::ZERO).expect("compact");
    let survivors: Vec<Offset> = read_all(&log).iter().map(|r| r.offset).collect();
    assert_eq!(&survivors[..4], &[36, 37, 38, 39]);
    assert_eq!(log.start_offset(), 36);
    // A read starting in a gap gets the next survivor.
    let end = log.end_offset();
    // A read starting in a gap gets the next survivor; one whose whole range is a gap returns
    // nothing but moves past it.
    let got = log.read(10, end, 1).expect("read");
    assert_eq!(got.records[0].offset, 36);
    let gap = log.read(0, 36, 1 << 20).expect("read");
    assert!(gap.records.is_empty());
    assert_eq!(gap.next_offset, 36);
    let mut gaps = 0;
    for pair in survivors.windows(2) {
        let (x, y) = (pair[0], pair[1]);
        if y > x + 1 {
            gaps += 1;
            let inside = log.read(x + 1, y, 1 << 20).expect("read");
            assert!(inside.records.is_empty(), "gap {x}..{y} returned records");
            assert_eq!(inside.next_offset, y);
            let after = log.read(x + 1, end, 1).expect("read");
            assert_eq!(after.records[0].offset, y);
        }
    }
    // 39 -> 54 spans segments deleted whole and part of a rewritten one.
    assert_eq!(survivors[4..], [54, 55, 56, 57, 58, 59]);
    assert_eq!(gaps, 1);
}

#[test]
fn crash_during_compaction_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(400, 64);
    let (log, _) = open(dir.path(), &cfg);
    append_numbered(&log, 40, 2);
    let end = log.end_offset();
    drop(log);
    let segments = segment_paths(dir.path());
    let victim = &segments[1];
    // A half-written cleaned file and a missing index, as a crash mid-swap leaves them.
    let mut cleaned = victim.as_os_str().to_owned();
    cleaned.push(".cleaned");
    std::fs::write(&cleaned, b"partial garbage").expect("write");
    std::fs::remove_file(victim.with_extension("index")).expect("remove index");
    let (log, _) = open(dir.path(), &cfg);
    assert!(!Path::new(&cleaned).exists());
    assert!(victim.with_extension("index").exists(), "index rebuilt");
    assert_numbered(&read_all(&log), 0..end);
    for from in 0..end {
        assert_eq!(
            log.read(from, end, 1).expect("read").records[0].offset,
            from
        );
    }
}

#[test]
fn encoded_len_is_what_a_single_record_append_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), &config(1 << 20, 4096));
    let mut r = rec(123_456, Some("key"), Some(&"v".repeat(1000)));
    r.headers.push(Header::new("h", "x"));
    let before = log.size_bytes();
    log.append(std::slice::from_ref(&r), 0).expect("append");
    assert_eq!(
        PartitionLog::encoded_len(&r) as u64,
        log.size_bytes() - before
    );
    assert!(PartitionLog::encoded_len(&r) > 1000);
}

#[test]
fn recovery_of_random_bytes_keeps_nothing_and_does_not_panic() {
    let cfg = config(1 << 20, 4096);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), &cfg);
        drop(log);
        let len = 1 + round * 97;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        std::fs::write(last_segment(dir.path()), &bytes).expect("write");
        let (log, report) = open(dir.path(), &cfg);
        assert_eq!(report.truncated_bytes, len as u64);
        assert_eq!((log.start_offset(), log.end_offset()), (0, 0));
        assert_eq!(log.append(&[numbered(0)], 0).expect("append"), 0);
        assert_numbered(&read_all(&log), 0..1);
    }
}

#[test]
fn journaled_copies_replay_byte_for_byte_across_segment_rolls() {
    // The journal keeps what `append_copy` gives; replaying it into an empty partition must
    // rebuild the same files, transaction ids and all.
    let written = tempfile::tempdir().expect("tempdir");
    let replayed = tempfile::tempdir().expect("tempdir");
    let cfg = config(300, 128);
    let (log, _) = open(written.path(), &cfg);
    let mut copies = Vec::new();
    for (i, txn_id) in [0u64, 7, 0, 9, 9].into_iter().enumerate() {
        let base = log.end_offset();
        let records: Vec<_> = (0..4).map(|j| numbered(base + j)).collect();
        let mut copy = Vec::new();
        assert_eq!(
            log.append_copy(&records, txn_id, &mut copy)
                .expect("append"),
            base,
            "append {i}"
        );
        copies.push(copy);
    }
    let (again, _) = open(replayed.path(), &cfg);
    for copy in &copies {
        assert_eq!(again.replay_journaled(copy).expect("replay"), 1);
    }
    assert_eq!(again.end_offset(), 20);
    assert_numbered(&read_all(&again), 0..20);
    let original: Vec<Vec<u8>> = segment_paths(written.path())
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let rebuilt: Vec<Vec<u8>> = segment_paths(replayed.path())
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert!(original.len() > 1, "the test should roll segments");
    assert_eq!(rebuilt, original);
}

#[test]
fn replay_skips_what_is_there_appends_at_the_end_and_reports_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20, 4096);
    let (log, _) = open(dir.path(), &cfg);
    let mut copies = Vec::new();
    for _ in 0..3 {
        let base = log.end_offset();
        let records: Vec<_> = (0..5).map(|j| numbered(base + j)).collect();
        let mut copy = Vec::new();
        log.append_copy(&records, 0, &mut copy).expect("append");
        copies.push(copy);
    }
    drop(log);
    // Keep the first batch only, as a power loss might.
    let segment = last_segment(dir.path());
    let first_len = copies[0].len() as u64;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(first_len))
        .expect("truncate");
    let (log, _) = open(dir.path(), &cfg);
    assert_eq!(log.end_offset(), 5);
    // The first is there, the second goes at the end; the third cannot skip the second.
    assert_eq!(log.replay_journaled(&copies[0]).expect("skip"), 0);
    let err = log.replay_journaled(&copies[2]).expect_err("a gap");
    match err {
        LogError::DataLoss {
            partition,
            end,
            journaled,
        } => {
            assert_eq!(partition, rill_log::TopicPartition::new("orders", 2));
            assert_eq!((end, journaled), (5, 10));
        }
        other => panic!("expected DataLoss, got {other:?}"),
    }
    assert_eq!(log.replay_journaled(&copies[1]).expect("append"), 1);
    assert_eq!(log.replay_journaled(&copies[2]).expect("append"), 1);
    assert_numbered(&read_all(&log), 0..15);
    // Bytes that are not a batch are corruption, not data to append.
    let mut bad = copies[0].clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    bad[10..18].copy_from_slice(&15i64.to_le_bytes());
    assert!(matches!(
        log.replay_journaled(&bad),
        Err(LogError::Corrupt { .. })
    ));
}
