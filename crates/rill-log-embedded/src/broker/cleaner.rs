//! The cleaner: retention for delete-policy topics and compaction for compact-policy topics,
//! run by a background thread every `cleaner_interval` and on demand.

use std::sync::Arc;
use std::time::Instant;

use rill_log::Result;

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

/// The cleaner thread's body: a pass every interval until stopped.
pub(crate) fn run(inner: Arc<Inner>) {
    let interval = inner.config.cleaner_interval;
    loop {
        {
            let now = Instant::now();
            let deadline = now
                .checked_add(interval)
                .unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 24 * 3600));
            let mut stop = inner.cleaner_stop.lock();
            while !*stop {
                if inner.cleaner_cv.wait_until(&mut stop, deadline).timed_out() {
                    break;
                }
            }
            if *stop {
                return;
            }
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
    }
}
