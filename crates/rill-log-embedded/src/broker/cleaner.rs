//! The cleaner: retention for delete-policy topics and compaction for compact-policy topics,
//! run by a background thread every `cleaner_interval` and on demand. The same thread runs the
//! journal's checkpoints when they fall due (see `checkpoint`).

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

/// The cleaner thread's body: a pass every interval, and a checkpoint whenever one is due,
/// until stopped.
pub(crate) fn run(inner: Arc<Inner>) {
    let interval = inner.config.cleaner_interval;
    let next_after = |now: Instant| {
        now.checked_add(interval)
            .unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 24 * 3600))
    };
    let mut next_clean = next_after(Instant::now());
    loop {
        let checkpoint_due = {
            let mut stop = inner.cleaner_stop.lock();
            loop {
                if *stop {
                    return;
                }
                if inner.checkpoint_due.load(Ordering::Acquire) {
                    break true;
                }
                if inner
                    .cleaner_cv
                    .wait_until(&mut stop, next_clean)
                    .timed_out()
                {
                    break false;
                }
            }
        };
        if checkpoint_due {
            // Cleared first: batches journaled during this checkpoint ask for the next one.
            inner.checkpoint_due.store(false, Ordering::Release);
            if let Err(err) = checkpoint::run(&inner) {
                tracing::warn!(error = %err, "checkpoint failed; the journal keeps the batches");
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
