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

/// Runs one checkpoint.
pub(crate) fn run(inner: &Inner) -> Result<CheckpointStats> {
    let (dirty, cut, data_bytes) = {
        let mut meta = inner.meta.lock();
        let data_bytes = std::mem::take(&mut meta.data_bytes);
        (
            std::mem::take(&mut meta.dirty),
            meta.journal.len(),
            data_bytes,
        )
    };
    let mut synced = 0;
    let mut failure = None;
    for partition in dirty.values() {
        match sync(partition) {
            Ok(true) => synced += 1,
            Ok(false) => {}
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
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
    let before = meta.journal.len();
    let snapshot = meta.snapshot(topics.iter());
    meta.journal.rewrite(&snapshot, cut)?;
    let stats = CheckpointStats {
        partitions: synced,
        journal_before: before,
        journal_after: meta.journal.len(),
    };
    drop(meta);
    tracing::debug!(
        partitions = stats.partitions,
        journal_before = stats.journal_before,
        journal_after = stats.journal_after,
        "checkpoint"
    );
    Ok(stats)
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
