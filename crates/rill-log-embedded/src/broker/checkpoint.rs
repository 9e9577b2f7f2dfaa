//! Checkpoints: the journal holds every batch written since the last one, so that a commit costs
//! one journal fsync whatever the partitions it wrote. Once it holds `checkpoint_bytes` of them,
//! the cleaner thread fsyncs every partition written since, then rewrites the journal as a
//! snapshot of the metadata followed by the entries appended meanwhile.
//!
//! Commits go on during a checkpoint. The cut is the journal's length when the set of written
//! partitions is taken (both under the `meta` lock): every batch journaled before the cut is in
//! the page cache of a partition in that set, so once those are fsynced the entries before the
//! cut may go; entries after it are copied into the new journal, after the snapshot. Replaying
//! the snapshot then those entries gives the state of the old journal (offsets and epochs are
//! overwritten by later entries, topics created or deleted since appear after the snapshot).

use std::sync::Arc;

use rill_log::Result;

use super::journal;
use super::state::Inner;
use super::topics::Partition;

/// What one checkpoint did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointStats {
    /// Partitions fsynced.
    pub partitions: usize,
    /// Journal bytes before and after.
    pub journal_before: u64,
    pub journal_after: u64,
}

/// One writeback between checkpoints: fsyncs each written partition holding at least
/// `writeback_bytes` not yet fsynced, and more (the fullest first) while all of them together
/// hold more than [`TOTAL_UNSYNCED`] times that. Returns how many were synced.
///
/// Without it the page cache keeps a checkpoint's worth of partition data (64 MiB) dirty and
/// the checkpoint writes it back at once, while commits' journal fsyncs queue behind those
/// writes in the filesystem. Written back as each partition fills, the fsyncs are spread out
/// and the checkpoint finds little left. A partition synced here stays in the checkpoint's set
/// (its `sync` is free if nothing came since): the journal still holds its batches, which
/// recovery skips since the partition has them.
pub(crate) fn write_back(inner: &Inner) -> Result<usize> {
    let bytes = inner.config.writeback_bytes.max(1);
    write_back_from(inner, bytes, bytes.saturating_mul(TOTAL_UNSYNCED))
}

/// Between checkpoints the partitions together hold at most this many times `writeback_bytes`
/// unsynced after a writeback: many partitions each short of `writeback_bytes` would otherwise
/// leave the checkpoint most of its 64 MiB to sync.
const TOTAL_UNSYNCED: u64 = 8;

/// Fsyncs every written partition holding at least `min_bytes` not yet fsynced, then others,
/// those with the most first, until at most `keep` bytes are left unsynced in all. One after
/// the other: each is a short burst of writes.
pub(crate) fn write_back_from(inner: &Inner, min_bytes: u64, keep: u64) -> Result<usize> {
    let dirty: Vec<Arc<Partition>> = inner.meta.lock().dirty.values().cloned().collect();
    let mut unsynced: Vec<(u64, Arc<Partition>)> = dirty
        .into_iter()
        .map(|p| (p.log.unsynced_bytes(), p))
        .filter(|(bytes, _)| *bytes > 0)
        .collect();
    unsynced.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    let mut total: u64 = unsynced.iter().map(|(bytes, _)| bytes).sum();
    let mut synced = 0;
    for (bytes, partition) in unsynced {
        if bytes < min_bytes && total <= keep {
            break;
        }
        if sync(&partition)? {
            synced += 1;
        }
        total -= bytes;
    }
    Ok(synced)
}

/// Runs one checkpoint.
pub(crate) fn run(inner: &Inner) -> Result<CheckpointStats> {
    let started = std::time::Instant::now();
    let (dirty, cut, data_bytes) = {
        let mut meta = inner.meta.lock();
        let data_bytes = std::mem::take(&mut meta.data_bytes);
        (
            std::mem::take(&mut meta.dirty),
            meta.journal.len(),
            data_bytes,
        )
    };
    let partitions: Vec<&Arc<Partition>> = dirty.values().collect();
    let unsynced: u64 = partitions.iter().map(|p| p.log.unsynced_bytes()).sum();
    let (synced, failure) = sync_all(&partitions);
    let synced_at = started.elapsed();
    if let Some(err) = failure {
        // The journal keeps everything; the next checkpoint tries these partitions again.
        let mut meta = inner.meta.lock();
        meta.data_bytes += data_bytes;
        for (uid, partition) in dirty {
            meta.dirty.entry(uid).or_insert(partition);
        }
        return Err(err);
    }
    // Names first, without `meta`: a topic created or deleted from here on has its entry after
    // the cut, which the new journal keeps after the snapshot.
    let topics: Vec<String> = inner.topics.read().keys().cloned().collect();
    let mut meta = inner.meta.lock();
    let locked = std::time::Instant::now();
    let before = meta.journal.len();
    let snapshot = meta.snapshot(topics.iter());
    let retired = meta.journal.rewrite(&snapshot, cut)?;
    let stats = CheckpointStats {
        partitions: synced,
        journal_before: before,
        journal_after: meta.journal.len(),
    };
    drop(meta);
    let rewrite_ms = locked.elapsed().as_secs_f64() * 1e3;
    journal::retire(retired);
    tracing::debug!(
        partitions = stats.partitions,
        journal_before = stats.journal_before,
        journal_after = stats.journal_after,
        unsynced,
        sync_ms = synced_at.as_secs_f64() * 1e3,
        rewrite_ms,
        retire_ms = locked.elapsed().as_secs_f64() * 1e3 - rewrite_ms,
        "checkpoint"
    );
    Ok(stats)
}

/// Threads fsyncing partitions during a checkpoint, the caller included. Issued together, the
/// fsyncs share the filesystem's journal commits (ext4 folds concurrent ones), so the burst of
/// writes a checkpoint is, during which commits' journal fsyncs wait longer, is shorter. The
/// helpers live only as long as the checkpoint.
const SYNC_THREADS: usize = 4;

/// Fsyncs every partition, on up to [`SYNC_THREADS`] threads; returns how many were synced and
/// the first failure.
fn sync_all(partitions: &[&Arc<Partition>]) -> (usize, Option<rill_log::LogError>) {
    let chunk = partitions.len().div_ceil(SYNC_THREADS).max(1);
    let one = |part: &[&Arc<Partition>]| {
        let mut synced = 0;
        for partition in part {
            match sync(partition) {
                Ok(true) => synced += 1,
                Ok(false) => {}
                Err(err) => return (synced, Some(err)),
            }
        }
        (synced, None)
    };
    std::thread::scope(|scope| {
        let mut chunks = partitions.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let helpers: Vec<_> = chunks
            .map(|part| {
                std::thread::Builder::new()
                    .name("rill-log-checkpoint".into())
                    .spawn_scoped(scope, move || one(part))
                    // Without a thread, this part is synced here after the first.
                    .map_err(|_| part)
            })
            .collect();
        let mut total = one(first);
        for helper in helpers {
            let (synced, failure) = match helper {
                Ok(handle) => handle.join().unwrap_or((
                    0,
                    Some(rill_log::LogError::Closed {
                        what: "checkpoint sync thread (it panicked)",
                    }),
                )),
                Err(part) => one(part),
            };
            total.0 += synced;
            if total.1.is_none() {
                total.1 = failure;
            }
        }
        total
    })
}

/// Fsyncs a partition; `false` when its topic was deleted meanwhile (nothing to keep).
fn sync(partition: &Arc<Partition>) -> Result<bool> {
    if partition.is_deleted() {
        return Ok(false);
    }
    match partition.log.sync() {
        Ok(()) => Ok(true),
        Err(_) if partition.is_deleted() => Ok(false),
        Err(err) => Err(err),
    }
}
