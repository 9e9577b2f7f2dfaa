//! The cleaner: retention for delete-policy topics and compaction for compact-policy topics,
//! run by a background thread every `cleaner_interval` and on demand. The same thread runs the
//! journal's checkpoints when they fall due, and the writebacks that spread the partitions'
//! fsyncs between them (see `checkpoint`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rill_log::Result;

use super::checkpoint;
use super::state::{Inner, now_ms};
use crate::storage::CleanStats;

/// One pass over every partition. A partition whose topic is deleted meanwhile is skipped.
pub(crate) fn clean_once(inner: &Inner) -> Result<CleanStats> {
    let topics: Vec<_> = inner.topics.read().values().cloned().collect();
    let mut total = CleanStats::default();
    let now = now_ms();
    for topic in topics {
        let policy = topic.config.cleanup_policy;
        let retains = topic.config.retention.is_some() || topic.config.retention_bytes.is_some();
        for partition in &topic.partitions {
            let mut pass = || -> Result<()> {
                if policy.deletes() && retains {
                    add(
                        &mut total,
                        partition.log.enforce_retention(
                            now,
                            topic.config.retention,
                            topic.config.retention_bytes,
                        )?,
                    );
                }
                if policy.compacts() {
                    add(
                        &mut total,
                        partition.log.compact(now, inner.config.delete_retention)?,
                    );
                }
                Ok(())
            };
            match pass() {
                Ok(()) => {}
                Err(_) if partition.is_deleted() => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(total)
}

fn add(total: &mut CleanStats, stats: CleanStats) {
    total.segments_deleted += stats.segments_deleted;
    total.records_removed += stats.records_removed;
    total.bytes_reclaimed += stats.bytes_reclaimed;
}

/// The cleaner thread's body: a pass every interval, and a checkpoint or a writeback whenever
/// one is due, until stopped.
pub(crate) fn run(inner: Arc<Inner>) {
    let interval = inner.config.cleaner_interval;
    let next_after = |now: Instant| {
        now.checked_add(interval)
            .unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 24 * 3600))
    };
    let mut next_clean = next_after(Instant::now());
    loop {
        let (checkpoint_due, writeback_due) = {
            let mut stop = inner.cleaner_stop.lock();
            loop {
                if *stop {
                    return;
                }
                let checkpoint = inner.checkpoint_due.load(Ordering::Acquire);
                let writeback = inner.writeback_due.load(Ordering::Acquire);
                if checkpoint || writeback {
                    break (checkpoint, writeback);
                }
                if inner
                    .cleaner_cv
                    .wait_until(&mut stop, next_clean)
                    .timed_out()
                {
                    break (false, false);
                }
            }
        };
        if checkpoint_due {
            // Cleared first: batches journaled during this checkpoint ask for the next one.
            // It syncs every written partition, which covers a writeback asked for meanwhile.
            inner.checkpoint_due.store(false, Ordering::Release);
            inner.writeback_due.store(false, Ordering::Release);
            if let Err(err) = checkpoint::run(&inner) {
                tracing::warn!(error = %err, "checkpoint failed; the journal keeps the batches");
            }
        } else if writeback_due {
            inner.writeback_due.store(false, Ordering::Release);
            let started = Instant::now();
            match checkpoint::write_back(&inner) {
                Ok(partitions) => tracing::trace!(
                    partitions,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "writeback"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "writeback failed; the next checkpoint retries");
                }
            }
        }
        if Instant::now() < next_clean {
            continue;
        }
        match clean_once(&inner) {
            Ok(stats) if stats != CleanStats::default() => {
                tracing::debug!(
                    segments_deleted = stats.segments_deleted,
                    records_removed = stats.records_removed,
                    bytes_reclaimed = stats.bytes_reclaimed,
                    "cleaner pass"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cleaner pass failed"),
        }
        next_clean = next_after(Instant::now());
    }
}
