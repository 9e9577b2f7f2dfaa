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

/// Nanoseconds this thread has run on a CPU: other builds share the machine, so wall-clock
/// rates understate what the code does.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Timer(Instant, u64);

impl Timer {
    fn start() -> Timer {
        Timer(Instant::now(), cpu_ns())
    }

    fn rate(&self, n: u64) -> String {
        let wall = self.0.elapsed().as_secs_f64();
        let cpu = (cpu_ns() - self.1) as f64 / 1e9;
        format!(
            "{:.2} M records/s wall ({wall:.3} s), {:.2} M records/s on-CPU ({cpu:.3} s)",
            n as f64 / wall / 1e6,
            n as f64 / cpu / 1e6
        )
    }
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
    let t = Timer::start();
    for _ in 0..batches {
        log.append(&records, 0).expect("append");
    }
    let n = (per_batch * batches) as u64;
    println!(
        "append {n} records of {VALUE_LEN} B in batches of {per_batch}: {}",
        t.rate(n)
    );

    let end = log.end_offset();
    for max_bytes in [1 << 20, 4 << 20, 1 << 20, 256 << 10] {
        let t = Timer::start();
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
        assert_eq!(count, n);
        assert_eq!(sum, n as usize * VALUE_LEN);
        println!("read from start, max_bytes {max_bytes}: {}", t.rate(count));
    }
}

#[test]
#[ignore = "measurement; run in release"]
fn recovery_time_of_a_large_partition() {
    // About 1 GiB in one partition; recovery after a crash scans only the last segment, so the
    // worst case is a single 1 GiB segment.
    for segment_bytes in [256u64 << 20, 1 << 30] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(segment_bytes, 4096);
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
        println!(
            "open {size} bytes, segment_bytes {segment_bytes}: after a crash {unclean:?}, \
             after a clean close {clean:?}"
        );
    }
}
