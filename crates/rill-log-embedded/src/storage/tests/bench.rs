//! Throughput measurements, ignored by default. Run with:
//! `cargo test --release -p rill-log-embedded storage::tests::bench -- --ignored --nocapture`

use std::time::Instant;

use bytes::Bytes;

use super::super::{PartitionLog, StoredRecord};
use super::config;

const VALUE_LEN: usize = 100;

fn batch(n: usize, ts: i64) -> Vec<StoredRecord> {
    (0..n)
        .map(|i| StoredRecord {
            timestamp: ts + i as i64,
            key: Some(Bytes::from(format!("key-{i:08}"))),
            value: Some(Bytes::from(vec![b'x'; VALUE_LEN])),
            headers: Vec::new(),
        })
        .collect()
}

fn rate(n: u64, t: std::time::Duration) -> String {
    format!("{:.2} M records/s", n as f64 / t.as_secs_f64() / 1e6)
}

#[test]
#[ignore = "measurement; run in release"]
fn append_and_read_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) =
        PartitionLog::open(dir.path(), config(256 << 20, 4096), &|_| true).expect("open");
    let per_batch = 1000;
    let batches = 3000;
    let records = batch(per_batch, 1_700_000_000_000);
    let t = Instant::now();
    for _ in 0..batches {
        log.append(&records, 0).expect("append");
    }
    let n = (per_batch * batches) as u64;
    let append = t.elapsed();
    println!(
        "append: {n} records of {VALUE_LEN} B in batches of {per_batch}: {:?} = {}",
        append,
        rate(n, append)
    );

    let end = log.end_offset();
    for max_bytes in [1 << 20, 4 << 20] {
        let t = Instant::now();
        let mut next = 0;
        let mut count = 0u64;
        let mut sum = 0usize;
        while next < end {
            let b = log.read(next, end, max_bytes).expect("read");
            count += b.records.len() as u64;
            sum += b
                .records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
            next = b.next_offset;
        }
        let read = t.elapsed();
        assert_eq!(count, n);
        assert_eq!(sum, n as usize * VALUE_LEN);
        println!(
            "read from start, max_bytes {max_bytes}: {read:?} = {}",
            rate(count, read)
        );
    }
}

#[test]
#[ignore = "measurement; run in release"]
fn recovery_time_of_a_large_partition() {
    // About 1 GiB in one partition, the last segment 256 MiB: recovery scans only that one.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(256 << 20, 4096);
    let (log, _) = PartitionLog::open(dir.path(), cfg.clone(), &|_| true).expect("open");
    let records = batch(1000, 0);
    while log.size_bytes() < (1 << 30) - (1 << 20) {
        log.append(&records, 0).expect("append");
    }
    let size = log.size_bytes();
    let end = log.end_offset();
    drop(log); // no close: no clean-shutdown marker, as after kill -9
    let t = Instant::now();
    let (log, report) = PartitionLog::open(dir.path(), cfg.clone(), &|_| true).expect("open");
    let unclean = t.elapsed();
    assert!(!report.clean);
    assert_eq!(log.end_offset(), end);
    log.close().expect("close");
    drop(log);
    let t = Instant::now();
    let (log, report) = PartitionLog::open(dir.path(), cfg, &|_| true).expect("open");
    let clean = t.elapsed();
    assert!(report.clean);
    assert_eq!(log.end_offset(), end);
    println!("open {size} bytes: after a crash {unclean:?}, after a clean close {clean:?}");
}
