//! Storage of one partition: segment files of checksummed batches, a sparse offset index, crash
//! recovery, retention and compaction. See `docs/embedded-log.md` for the formats.
//!
//! A [`PartitionLog`] is internally synchronized: one appender at a time (the broker serializes
//! appends per partition), any number of concurrent readers.
//!
//! Layout of the implementation: `batch` (the on-disk batch format), `index` (the sparse
//! offset/time index), `segment` (segment files and scanning), `partition` (open and recovery,
//! append, read), `clean` (retention and compaction).

mod batch;
mod clean;
mod index;
mod partition;
mod segment;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rill_log::{ConsumedRecord, Header, LogError, Offset, Result, TopicPartition};

/// A record as the storage layer writes it (the partition is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Storage settings of one partition.
#[derive(Debug, Clone)]
pub(crate) struct PartitionConfig {
    /// Topic name, used to fill `ConsumedRecord::topic` and in error messages.
    pub topic: std::sync::Arc<str>,
    /// Partition number.
    pub partition: i32,
    /// Roll to a new segment once the active one reaches this size.
    pub segment_bytes: u64,
    /// Write an index entry every this many bytes of segment.
    pub index_interval_bytes: u32,
}

/// Records returned by [`PartitionLog::read`].
#[derive(Debug, Default)]
pub(crate) struct ReadBatch {
    pub records: Vec<ConsumedRecord>,
    /// Offset to read from next (after the last returned record, or after a gap).
    pub next_offset: Offset,
}

/// What [`PartitionLog::open`] found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// Bytes cut from the tail because a batch was torn or failed its checksum.
    pub truncated_bytes: u64,
    /// Transactional batches cut because their transaction never committed.
    pub uncommitted_batches: u32,
    /// Whether the partition was closed cleanly (no scan was needed).
    pub clean: bool,
}

/// Outcome of a retention or compaction pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CleanStats {
    /// Segment files deleted (by retention, or emptied by compaction).
    pub segments_deleted: u32,
    /// Records removed by compaction; for retention, how far the start offset moved.
    pub records_removed: u64,
    /// Segment bytes freed.
    pub bytes_reclaimed: u64,
}

/// One partition's durable log.
pub(crate) struct PartitionLog {
    inner: partition::Inner,
}

impl PartitionLog {
    /// Opens (creating if absent) the partition in `dir`, recovering after a crash: torn or
    /// corrupt tail batches are truncated, trailing transactional batches whose id fails
    /// `txn_committed` are truncated, the last segment's index is rebuilt.
    pub fn open(
        dir: &Path,
        config: PartitionConfig,
        txn_committed: &dyn Fn(u64) -> bool,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        let (inner, report) = partition::Inner::open(dir, config, txn_committed)?;
        Ok((PartitionLog { inner }, report))
    }

    /// Appends `records` with consecutive offsets, as batches of at most about 256 KiB
    /// (transactional when `txn_id` is non-zero); returns the base offset. Written to the OS,
    /// not yet fsynced.
    #[cfg(test)]
    pub fn append(&self, records: &[StoredRecord], txn_id: u64) -> Result<Offset> {
        self.inner.append(records, txn_id, None)
    }

    /// Like [`append`](Self::append), also adding the encoded batches, exactly as written, to
    /// `copy` (for the journal).
    pub fn append_copy(
        &self,
        records: &[StoredRecord],
        txn_id: u64,
        copy: &mut Vec<u8>,
    ) -> Result<Offset> {
        self.inner.append(records, txn_id, Some(copy))
    }

    /// Replays batches from the journal (as [`append_copy`](Self::append_copy) produced them):
    /// each batch the partition already holds is skipped, each that starts at its end is
    /// appended (a power loss took it from the page cache). Fails with `DataLoss` when a batch
    /// starts past the end: records the log acknowledged are gone. Returns the batches appended.
    pub fn replay_journaled(&self, mut bytes: &[u8]) -> Result<u32> {
        let mut appended = 0;
        while !bytes.is_empty() {
            let corrupt = |reason: &str| LogError::Corrupt {
                path: self.inner.dir.clone(),
                reason: format!("journaled batch: {reason}"),
            };
            let h =
                batch::BatchHeader::parse(bytes).ok_or_else(|| corrupt("shorter than a header"))?;
            let Some(one) = bytes.get(..h.total_len()) else {
                return Err(corrupt("shorter than its length field says"));
            };
            let end = self.end_offset();
            if h.last_offset() < end {
                // Already there (and durable or recovered).
            } else if h.base_offset == end {
                self.inner.append_encoded(one)?;
                appended += 1;
            } else if h.base_offset > end {
                return Err(LogError::DataLoss {
                    partition: TopicPartition::new(
                        self.inner.config.topic.to_string(),
                        self.inner.config.partition,
                    ),
                    end,
                    journaled: h.base_offset,
                });
            } else {
                return Err(corrupt(&format!(
                    "offsets {}..={} straddle the partition's end {end}",
                    h.base_offset,
                    h.last_offset()
                )));
            }
            bytes = &bytes[one.len()..];
        }
        Ok(appended)
    }

    /// Test support: the active segment's path and the bytes of it known durable.
    pub fn durable_len(&self) -> Option<(std::path::PathBuf, u64)> {
        self.inner.durable_len()
    }

    /// Encoded size a record will take in a batch, to enforce the maximum record size: the
    /// size of a batch holding only this record (header included).
    pub fn encoded_len(record: &StoredRecord) -> usize {
        batch::HEADER_LEN + batch::record_encoded_len(record)
    }

    /// Fsyncs everything appended so far (nothing when all of it is durable already).
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Bytes appended but not yet fsynced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.inner.unsynced_bytes()
    }

    /// Reads records with offsets in `from..upto`, stopping after about `max_bytes` of batches
    /// (at least one batch when any record is in range). An offset below the log start reads from
    /// the log start; the caller checks ranges first when it must report `OffsetOutOfRange`.
    #[cfg(test)]
    pub fn read(&self, from: Offset, upto: Offset, max_bytes: usize) -> Result<ReadBatch> {
        self.inner.read(from, upto, max_bytes, usize::MAX)
    }

    /// Like [`read`](Self::read), stopping after `max_records` records.
    pub fn read_records(
        &self,
        from: Offset,
        upto: Offset,
        max_bytes: usize,
        max_records: usize,
    ) -> Result<ReadBatch> {
        self.inner.read(from, upto, max_bytes, max_records)
    }

    /// First offset still stored.
    pub fn start_offset(&self) -> Offset {
        self.inner.state.read().start_offset
    }

    /// Offset the next appended record gets.
    pub fn end_offset(&self) -> Offset {
        self.inner.state.read().end_offset
    }

    /// Bytes on disk (all segments).
    pub fn size_bytes(&self) -> u64 {
        let st = self.inner.state.read();
        if st.closed {
            st.closed_size
        } else {
            st.segments.iter().map(|s| s.size).sum()
        }
    }

    /// First offset whose record has a timestamp at or after `timestamp`; `None` if none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        self.inner.offset_for_timestamp(timestamp)
    }

    /// Deletes closed segments whose newest record is older than `now_ms - retention`, then the
    /// oldest closed segments while the partition exceeds `retention_bytes`.
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        retention: Option<Duration>,
        retention_bytes: Option<u64>,
    ) -> Result<CleanStats> {
        self.inner
            .enforce_retention(now_ms, retention, retention_bytes)
    }

    /// Rewrites closed segments keeping only the latest record per key; tombstones whose
    /// timestamp is older than `now_ms - delete_retention` are dropped too. Records without a key
    /// are dropped (Kafka refuses them on compacted topics).
    pub fn compact(&self, now_ms: i64, delete_retention: Duration) -> Result<CleanStats> {
        self.inner.compact(now_ms, delete_retention)
    }

    /// Syncs, writes the clean-shutdown marker and closes files. Further calls fail.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}
