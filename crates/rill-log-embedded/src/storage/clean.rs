//! Retention (deleting old closed segments) and compaction (rewriting closed segments to the
//! latest record per key). Both leave the active segment alone and run under the cleaner lock.
//!
//! Compaction is crash-safe: a cleaned segment is written to `.log.cleaned`/`.index.cleaned` and
//! fsynced, then the old index is removed, the cleaned log renamed over the old one and the
//! cleaned index renamed into place. After a crash at any step `open` finds either the old or the
//! new segment (leftover `.cleaned` files are removed, a missing index is rebuilt).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_log::{LogError, Offset, Result};

use super::batch::{self, BatchHeader};
use super::index::IndexEntry;
use super::partition::{Inner, closed_error};
use super::segment::{self, CLEANED_SUFFIX, IndexBuilder, Segment, SegmentFile, Step};
use super::{CleanStats, StoredRecord};

const CHUNK: usize = 4 << 20;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Inner {
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        retention: Option<Duration>,
        retention_bytes: Option<u64>,
    ) -> Result<CleanStats> {
        let _cleaner = self.cleaner.lock();
        let (victims, new_first) = {
            let st = self.state.read();
            if st.closed {
                return Err(closed_error());
            }
            let closed = &st.segments[..st.segments.len().saturating_sub(1)];
            let mut n = 0;
            if let Some(r) = retention {
                let cutoff = now_ms.saturating_sub(millis(r));
                while n < closed.len() && closed[n].max_ts < cutoff {
                    n += 1;
                }
            }
            if let Some(limit) = retention_bytes {
                let mut total: u64 = st.segments[n..].iter().map(|s| s.size).sum();
                while n < closed.len() && total > limit {
                    total -= closed[n].size;
                    n += 1;
                }
            }
            if n == 0 {
                return Ok(CleanStats::default());
            }
            (st.segments[..n].to_vec(), st.segments[n].clone())
        };
        let start = segment::first_offset(&new_first.file, new_first.size)?;
        let old_start = {
            let mut st = self.state.write();
            if st.closed {
                return Err(closed_error());
            }
            // Only the cleaner removes segments, and we hold its lock: the front is unchanged.
            st.segments.drain(..victims.len());
            let old = st.start_offset;
            st.start_offset = old.max(start);
            old
        };
        let mut stats = CleanStats {
            segments_deleted: victims.len() as u32,
            records_removed: (start - old_start).max(0) as u64,
            bytes_reclaimed: 0,
        };
        for v in &victims {
            delete_segment_files(&self.dir, v)?;
            stats.bytes_reclaimed += v.size;
        }
        segment::sync_dir(&self.dir)?;
        Ok(stats)
    }

    pub fn compact(&self, now_ms: i64, delete_retention: Duration) -> Result<CleanStats> {
        let _cleaner = self.cleaner.lock();
        let closed: Vec<Segment> = {
            let st = self.state.read();
            if st.closed {
                return Err(closed_error());
            }
            st.segments[..st.segments.len().saturating_sub(1)].to_vec()
        };
        let mut stats = CleanStats::default();
        if closed.is_empty() {
            return Ok(stats);
        }
        // Only closed segments feed the key map: the active one may end in a transaction that
        // has not committed yet, and must not make older values of its keys disappear.
        let latest = latest_offsets(&closed)?;
        let tombstone_cutoff = now_ms.saturating_sub(millis(delete_retention));
        let mut first_changed = false;
        for (i, seg) in closed.iter().enumerate() {
            let Some(cleaned) = self.clean_segment(seg, &latest, tombstone_cutoff)? else {
                continue;
            };
            first_changed |= i == 0;
            stats.records_removed += cleaned.removed;
            stats.bytes_reclaimed += seg.size - cleaned.segment.as_ref().map_or(0, |s| s.size);
            let mut st = self.state.write();
            if st.closed {
                return Err(closed_error());
            }
            let Some(at) = st
                .segments
                .iter()
                .position(|s| Arc::ptr_eq(&s.file, &seg.file))
            else {
                continue;
            };
            match cleaned.segment {
                Some(new) => st.segments[at] = new,
                None => {
                    st.segments.remove(at);
                    drop(st);
                    delete_segment_files(&self.dir, seg)?;
                    segment::sync_dir(&self.dir)?;
                    stats.segments_deleted += 1;
                }
            }
        }
        if first_changed {
            let first = self.state.read().segments.first().cloned();
            if let Some(first) = first {
                let start = segment::first_offset(&first.file, first.size)?;
                let mut st = self.state.write();
                st.start_offset = st.start_offset.max(start);
            }
        }
        Ok(stats)
    }

    /// Rewrites one closed segment; `None` when it has nothing to remove. A returned segment of
    /// `None` means every record went and the segment is to be deleted.
    fn clean_segment(
        &self,
        seg: &Segment,
        latest: &HashMap<Bytes, Offset>,
        tombstone_cutoff: i64,
    ) -> Result<Option<Cleaned>> {
        let base = seg.base();
        let log_tmp = tmp_path(&seg.file.path);
        let index_final = segment::index_path(&self.dir, base);
        let index_tmp = tmp_path(&index_final);
        let mut out =
            CleanedWriter::create(log_tmp.clone(), base, self.config.index_interval_bytes)?;
        let mut removed = 0u64;
        let mut scanner = segment::Scanner::new(&seg.file, 0, seg.size, CHUNK);
        let mut kept: Vec<StoredRecord> = Vec::new();
        let mut deltas: Vec<u32> = Vec::new();
        let mut offsets: Vec<Offset> = Vec::new();
        loop {
            let b = match scanner.next_batch()? {
                Step::End => break,
                Step::Torn { pos, reason } => return Err(seg.file.corrupt(pos, reason)),
                Step::Batch(b) => b,
            };
            let corrupt = |r: &str| seg.file.corrupt(b.pos, r);
            batch::verify_crc(&b.header, &b.bytes).map_err(corrupt)?;
            kept.clear();
            offsets.clear();
            for raw in batch::RawRecords::new(&b.header, &b.bytes) {
                let raw = raw.map_err(corrupt)?;
                let keep = raw.key.as_ref().is_some_and(|k| {
                    latest.get(&b.bytes[k.clone()]) == Some(&raw.offset)
                        && (raw.value.is_some() || raw.timestamp >= tombstone_cutoff)
                });
                if !keep {
                    removed += 1;
                    continue;
                }
                let headers = if raw.header_count == 0 {
                    Vec::new()
                } else {
                    batch::decode_headers(&b.bytes, &raw).map_err(corrupt)?
                };
                offsets.push(raw.offset);
                kept.push(StoredRecord {
                    timestamp: raw.timestamp,
                    key: raw.key.map(|r| b.bytes.slice(r)),
                    value: raw.value.map(|r| b.bytes.slice(r)),
                    headers,
                });
            }
            if kept.len() == b.header.count as usize {
                out.push(&b.header, &b.bytes)?;
            } else if let Some(&first) = offsets.first() {
                deltas.clear();
                deltas.extend(offsets.iter().map(|o| (o - first) as u32));
                let mut buf = Vec::new();
                let h = batch::encode_batch(&mut buf, first, b.header.txn_id, &kept, Some(&deltas));
                out.push(&h, &buf)?;
            }
        }
        if removed == 0 {
            drop(out);
            segment::remove_file(&log_tmp)?;
            return Ok(None);
        }
        if out.size == 0 {
            drop(out);
            segment::remove_file(&log_tmp)?;
            return Ok(Some(Cleaned {
                removed,
                segment: None,
            }));
        }
        let new = out.finish(seg.file.path.clone())?;
        segment::write_index(&index_tmp, &new.index, true)?;
        segment::remove_file(&index_final)?;
        rename(&log_tmp, &seg.file.path)?;
        rename(&index_tmp, &index_final)?;
        segment::sync_dir(&self.dir)?;
        Ok(Some(Cleaned {
            removed,
            segment: Some(new),
        }))
    }
}

struct Cleaned {
    removed: u64,
    segment: Option<Segment>,
}

/// Offset of the latest record of every key in `segments`.
fn latest_offsets(segments: &[Segment]) -> Result<HashMap<Bytes, Offset>> {
    let mut latest: HashMap<Bytes, Offset> = HashMap::new();
    for seg in segments {
        let mut scanner = segment::Scanner::new(&seg.file, 0, seg.size, CHUNK);
        loop {
            let b = match scanner.next_batch()? {
                Step::End => break,
                Step::Torn { pos, reason } => return Err(seg.file.corrupt(pos, reason)),
                Step::Batch(b) => b,
            };
            let corrupt = |r: &str| seg.file.corrupt(b.pos, r);
            batch::verify_crc(&b.header, &b.bytes).map_err(corrupt)?;
            for raw in batch::RawRecords::new(&b.header, &b.bytes) {
                let raw = raw.map_err(corrupt)?;
                let Some(k) = raw.key else { continue };
                let key = &b.bytes[k];
                match latest.get_mut(key) {
                    Some(o) => *o = raw.offset,
                    // Copied so the map does not pin whole read buffers.
                    None => {
                        latest.insert(Bytes::copy_from_slice(key), raw.offset);
                    }
                }
            }
        }
    }
    Ok(latest)
}

/// Writes the batches of a cleaned segment, buffering, and builds its index on the way.
struct CleanedWriter {
    path: PathBuf,
    base: Offset,
    file: File,
    buf: Vec<u8>,
    size: u64,
    builder: IndexBuilder,
    index: Vec<IndexEntry>,
    max_ts: i64,
    next_offset: Offset,
}

impl CleanedWriter {
    fn create(path: PathBuf, base: Offset, interval: u32) -> Result<CleanedWriter> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| LogError::io("create cleaned segment", &path, e))?;
        Ok(CleanedWriter {
            path,
            base,
            file,
            buf: Vec::with_capacity(CHUNK),
            size: 0,
            builder: IndexBuilder::new(interval),
            index: Vec::new(),
            max_ts: i64::MIN,
            next_offset: base,
        })
    }

    fn push(&mut self, h: &BatchHeader, bytes: &[u8]) -> Result<()> {
        if let Some(e) = self.builder.on_batch(self.base, h, self.size, self.max_ts) {
            self.index.push(e);
        }
        self.buf.extend_from_slice(bytes);
        self.size += bytes.len() as u64;
        self.max_ts = self.max_ts.max(h.max_ts);
        self.next_offset = h.last_offset() + 1;
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all(&self.buf)
            .map_err(|e| LogError::io("write cleaned segment", &self.path, e))?;
        self.buf.clear();
        Ok(())
    }

    /// Flushes and fsyncs; returns the segment as it will be once renamed to `final_path`.
    fn finish(mut self, final_path: PathBuf) -> Result<Segment> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| LogError::io("fsync cleaned segment", &self.path, e))?;
        Ok(Segment {
            file: Arc::new(SegmentFile {
                base: self.base,
                path: final_path,
                file: self.file,
                synced_len: std::sync::atomic::AtomicU64::new(self.size),
            }),
            size: self.size,
            index: self.index,
            max_ts: self.max_ts,
            next_offset: self.next_offset,
        })
    }
}

fn tmp_path(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(CLEANED_SUFFIX);
    PathBuf::from(s)
}

fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| LogError::io("rename", from, e))
}

/// Removes a segment's index, then its log: a crash in between leaves a segment whose index is
/// rebuilt at open.
fn delete_segment_files(dir: &std::path::Path, seg: &Segment) -> Result<()> {
    segment::remove_file(&segment::index_path(dir, seg.base()))?;
    segment::remove_file(&seg.file.path)
}
