//! The partition log: opening with crash recovery, appends and rolls, reads, timestamp lookup,
//! sync and close. Retention and compaction are in `clean.rs`.
//!
//! Locking: `writer` serializes appends, rolls and close; `state` (a read-write lock held only
//! briefly, never across I/O except the rare roll bookkeeping) publishes what readers may see;
//! `cleaner` serializes retention and compaction. Order: cleaner, writer, state.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, RwLock};
use rill_log::{ErrorClass, LogError, Offset, Result};
use tracing::warn;

/// Largest batch an append writes (about; one record may exceed it alone).
const MAX_BATCH_BYTES: usize = 256 << 10;

use super::batch::{self, Select};
use super::index::{self, ENTRY_LEN, IndexEntry};
use super::segment::{
    self, CLEANED_SUFFIX, INDEX_SUFFIX, IndexBuilder, ScanSummary, Segment, SegmentFile, Step,
};
use super::{PartitionConfig, ReadBatch, RecoveryReport, StoredRecord};

pub(crate) const CLEAN_SHUTDOWN: &str = "clean-shutdown";

/// Segments never exceed this (bar a single larger batch), so positions fit the index's `u32`.
const MAX_SEGMENT_BYTES: u64 = 1 << 31;

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub config: PartitionConfig,
    pub state: RwLock<State>,
    writer: Mutex<Writer>,
    pub cleaner: Mutex<()>,
}

pub(crate) struct State {
    /// Oldest first; the last one is the active segment.
    pub segments: Vec<Segment>,
    pub start_offset: Offset,
    pub end_offset: Offset,
    pub closed: bool,
    /// Size when closed (the segments are dropped then).
    pub closed_size: u64,
}

struct Active {
    file: Arc<SegmentFile>,
    index_file: File,
    index_path: PathBuf,
}

struct Writer {
    /// `None` once closed.
    active: Option<Active>,
    size: u64,
    next_offset: Offset,
    max_ts: i64,
    index_len: u64,
    index: IndexBuilder,
    buf: Vec<u8>,
}

pub(crate) fn closed_error() -> LogError {
    LogError::Closed {
        what: "partition log",
    }
}

impl Inner {
    pub fn open(
        dir: &Path,
        config: PartitionConfig,
        txn_committed: &dyn Fn(u64) -> bool,
    ) -> Result<(Inner, RecoveryReport)> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io("create directory", dir, e))?;
        let bases = list_segments(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        let mut report = RecoveryReport {
            clean,
            ..RecoveryReport::default()
        };
        let mut segments = Vec::with_capacity(bases.len().max(1));
        if bases.is_empty() {
            let path = segment::log_path(dir, 0);
            create_segment_file(&path)?;
            segment::sync_dir(dir)?;
            segments.push(Segment {
                file: Arc::new(SegmentFile::open(path, 0)?),
                size: 0,
                index: Vec::new(),
                max_ts: i64::MIN,
                next_offset: 0,
            });
        }
        for (i, &base) in bases.iter().enumerate() {
            let file = SegmentFile::open(segment::log_path(dir, base), base)?;
            let last = i + 1 == bases.len();
            let seg = if !last {
                load_closed(dir, file, config.index_interval_bytes)?
            } else {
                let trusted = if clean {
                    load_trusted(dir, &file, txn_committed)?
                } else {
                    None
                };
                match trusted {
                    Some((size, index, s)) => Segment {
                        file: Arc::new(file),
                        size,
                        index,
                        max_ts: s.max_ts,
                        next_offset: s.next_offset,
                    },
                    None => {
                        if clean {
                            warn!(path = %file.path.display(), "clean-shutdown marker present but the last segment needs recovery");
                            report.clean = false;
                        }
                        recover_last(dir, file, &config, txn_committed, &mut report)?
                    }
                }
            };
            if let Some(prev) = segments.last()
                && prev.next_offset > seg.base()
            {
                return Err(prev.file.corrupt(
                    prev.size,
                    "segment holds offsets beyond the next segment's base",
                ));
            }
            segments.push(seg);
        }
        if clean {
            segment::remove_file(&marker)?;
            segment::sync_dir(dir)?;
        }
        let first = &segments[0];
        let start_offset = segment::first_offset(&first.file, first.size)?;
        let active_seg = segments.last().cloned().ok_or_else(|| LogError::Corrupt {
            path: dir.to_path_buf(),
            reason: "no segments".into(),
        })?;
        let index_path = segment::index_path(dir, active_seg.base());
        let index_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&index_path)
            .map_err(|e| LogError::io("open index", &index_path, e))?;
        let mut index = IndexBuilder::new(config.index_interval_bytes);
        index.bytes_since =
            active_seg.size - active_seg.index.last().map_or(0, |e| u64::from(e.position));
        let writer = Writer {
            active: Some(Active {
                file: Arc::clone(&active_seg.file),
                index_file,
                index_path,
            }),
            size: active_seg.size,
            next_offset: active_seg.next_offset,
            max_ts: active_seg.max_ts,
            index_len: (active_seg.index.len() * ENTRY_LEN) as u64,
            index,
            buf: Vec::new(),
        };
        if !report.clean {
            tracing::debug!(
                dir = %dir.display(),
                truncated_bytes = report.truncated_bytes,
                uncommitted_batches = report.uncommitted_batches,
                "recovered partition"
            );
        }
        let state = State {
            end_offset: active_seg.next_offset,
            start_offset,
            segments,
            closed: false,
            closed_size: 0,
        };
        Ok((
            Inner {
                dir: dir.to_path_buf(),
                config,
                state: RwLock::new(state),
                writer: Mutex::new(writer),
                cleaner: Mutex::new(()),
            },
            report,
        ))
    }

    pub fn append(
        &self,
        records: &[StoredRecord],
        txn_id: u64,
        mut copy: Option<&mut Vec<u8>>,
    ) -> Result<Offset> {
        // Bounded batches keep a reader that starts mid-batch from decoding (and checksumming)
        // megabytes to return a few records.
        let mut base = None;
        let mut start = 0;
        let mut bytes = 0usize;
        for (i, record) in records.iter().enumerate() {
            let size = record.key.as_ref().map_or(0, |k| k.len())
                + record.value.as_ref().map_or(0, |v| v.len())
                + record
                    .headers
                    .iter()
                    .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 8)
                    .sum::<usize>()
                + 16;
            if i > start && bytes + size > MAX_BATCH_BYTES {
                let first = self.append_batch(&records[start..i], txn_id, copy.as_deref_mut())?;
                base.get_or_insert(first);
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        let last = self.append_batch(&records[start..], txn_id, copy)?;
        Ok(base.unwrap_or(last))
    }

    /// Appends `records` as exactly one batch; its bytes are also added to `copy` if given.
    fn append_batch(
        &self,
        records: &[StoredRecord],
        txn_id: u64,
        copy: Option<&mut Vec<u8>>,
    ) -> Result<Offset> {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        if w.active.is_none() {
            return Err(closed_error());
        }
        let base = w.next_offset;
        if records.is_empty() {
            return Ok(base);
        }
        let count = u32::try_from(records.len()).map_err(|_| LogError::Backend {
            operation: "append",
            code: None,
            message: format!("{} records do not fit one batch", records.len()),
            class: ErrorClass::InvalidInput,
        })?;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        let h = batch::encode_batch(&mut buf, base, txn_id, records, None);
        let len = buf.len() as u64;
        let result = if h.length as usize != buf.len() - 4 {
            Err(LogError::Backend {
                operation: "append",
                code: None,
                message: format!("batch of {len} bytes exceeds the format's limit"),
                class: ErrorClass::InvalidInput,
            })
        } else {
            debug_assert_eq!(h.count, count);
            self.write_encoded(w, &buf, &h)
        };
        if result.is_ok()
            && let Some(copy) = copy
        {
            copy.extend_from_slice(&buf);
        }
        w.buf = buf;
        result.map(|()| base)
    }

    /// Appends one batch already encoded (replayed from the journal): its base offset must be
    /// the partition's end.
    pub fn append_encoded(&self, bytes: &[u8]) -> Result<()> {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        if w.active.is_none() {
            return Err(closed_error());
        }
        let invalid = |reason: String| LogError::Corrupt {
            path: self.dir.clone(),
            reason,
        };
        let h = batch::BatchHeader::parse(bytes)
            .ok_or_else(|| invalid("a journaled batch is shorter than a batch header".into()))?;
        if h.total_len() != bytes.len() {
            return Err(invalid(format!(
                "a journaled batch's length field says {} bytes, it has {}",
                h.total_len(),
                bytes.len()
            )));
        }
        batch::validate(&h, bytes)
            .map_err(|reason| invalid(format!("a journaled batch is invalid: {reason}")))?;
        if h.base_offset != w.next_offset {
            return Err(invalid(format!(
                "a journaled batch starts at offset {} but the partition ends at {}",
                h.base_offset, w.next_offset
            )));
        }
        self.write_encoded(w, bytes, &h)
    }

    /// Writes an encoded batch at the end of the active segment (rolling first if it would
    /// overflow) and publishes it to readers of the storage layer.
    fn write_encoded(&self, w: &mut Writer, buf: &[u8], h: &batch::BatchHeader) -> Result<()> {
        let len = buf.len() as u64;
        let base = h.base_offset;
        let limit = self.config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
        let active_base = w.active.as_ref().map_or(base, |a| a.file.base);
        let rel_last = h.last_offset() - active_base;
        if w.size > 0 && (w.size + len > limit || rel_last > i64::from(u32::MAX)) {
            self.roll(w)?;
        }
        let Some(active) = w.active.as_ref() else {
            return Err(closed_error());
        };
        let pos = w.size;
        if let Err(e) = active.file.file.write_all_at(buf, pos) {
            // Cut whatever part was written so the next append starts at a batch boundary.
            let _ = active.file.file.set_len(pos);
            return Err(LogError::io("append to segment", &active.file.path, e));
        }
        let index_before = w.index.clone();
        let entry = w.index.on_batch(active.file.base, h, pos, w.max_ts);
        if let Some(entry) = entry
            && let Err(e) = active.index_file.write_all_at(&entry.encode(), w.index_len)
        {
            let _ = active.file.file.set_len(pos);
            w.index = index_before;
            return Err(LogError::io("append to index", &active.index_path, e));
        }
        w.size += len;
        w.next_offset = h.last_offset() + 1;
        w.max_ts = w.max_ts.max(h.max_ts);
        if entry.is_some() {
            w.index_len += ENTRY_LEN as u64;
        }
        let mut st = self.state.write();
        st.end_offset = w.next_offset;
        if let Some(seg) = st.segments.last_mut() {
            seg.size = w.size;
            seg.next_offset = w.next_offset;
            seg.max_ts = w.max_ts;
            if let Some(entry) = entry {
                seg.index.push(entry);
            }
        }
        Ok(())
    }

    /// Closes the active segment (fsyncing it, so recovery never has to scan it) and starts a
    /// new one at the next offset.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let Some(active) = w.active.as_ref() else {
            return Err(closed_error());
        };
        active
            .file
            .file
            .sync_data()
            .map_err(|e| LogError::io("fsync segment", &active.file.path, e))?;
        active
            .index_file
            .sync_data()
            .map_err(|e| LogError::io("fsync index", &active.index_path, e))?;
        active.file.synced_len.store(w.size, Ordering::Release);
        let base = w.next_offset;
        let path = segment::log_path(&self.dir, base);
        create_segment_file(&path)?;
        let index_path = segment::index_path(&self.dir, base);
        let index_file = segment::write_index(&index_path, &[], false)?;
        segment::sync_dir(&self.dir)?;
        let file = Arc::new(SegmentFile::open(path, base)?);
        self.state.write().segments.push(Segment {
            file: Arc::clone(&file),
            size: 0,
            index: Vec::new(),
            max_ts: i64::MIN,
            next_offset: base,
        });
        w.active = Some(Active {
            file,
            index_file,
            index_path,
        });
        w.size = 0;
        w.max_ts = i64::MIN;
        w.index_len = 0;
        w.index = IndexBuilder::new(self.config.index_interval_bytes);
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        let (file, size) = {
            let w = self.writer.lock();
            match &w.active {
                Some(a) => (Arc::clone(&a.file), w.size),
                None => return Err(closed_error()),
            }
        };
        if file.synced_len.load(Ordering::Acquire) >= size {
            // Durable already (synced by the writeback pacer, a roll or recovery): an fdatasync
            // of a clean file would still flush the disk's cache.
            return Ok(());
        }
        // Outside the writer lock so appends continue during the fsync; segments rolled since
        // were fsynced by the roll.
        file.file
            .sync_data()
            .map_err(|e| LogError::io("fsync segment", &file.path, e))?;
        file.synced_len.fetch_max(size, Ordering::AcqRel);
        Ok(())
    }

    /// Bytes of the active segment written but not yet fsynced (segments before it were
    /// fsynced when they rolled).
    pub fn unsynced_bytes(&self) -> u64 {
        let st = self.state.read();
        st.segments.last().map_or(0, |s| {
            s.size
                .saturating_sub(s.file.synced_len.load(Ordering::Acquire))
        })
    }

    /// Test support: the active segment's path and how many of its bytes are durable.
    pub fn durable_len(&self) -> Option<(PathBuf, u64)> {
        let st = self.state.read();
        st.segments.last().map(|s| {
            (
                s.file.path.clone(),
                s.file.synced_len.load(Ordering::Acquire),
            )
        })
    }

    pub fn read(
        &self,
        from: Offset,
        upto: Offset,
        max_bytes: usize,
        max_records: usize,
    ) -> Result<ReadBatch> {
        let (start, end) = {
            let st = self.state.read();
            if st.closed {
                return Err(closed_error());
            }
            (st.start_offset, st.end_offset)
        };
        let from = from.max(start);
        let upto = upto.min(end);
        let mut out = ReadBatch {
            records: Vec::new(),
            next_offset: from,
        };
        if from >= upto {
            return Ok(out);
        }
        let chunk = max_bytes
            .saturating_add(self.config.index_interval_bytes as usize)
            .clamp(64 << 10, 64 << 20);
        let sel_base = Select {
            topic: &self.config.topic,
            partition: self.config.partition,
            from,
            upto,
        };
        let mut bytes = 0usize;
        let mut next = from;
        'segments: loop {
            let Some(view) = self.locate(next)? else {
                break;
            };
            let mut scanner = segment::Scanner::new(&view.file, view.pos, view.size, chunk);
            loop {
                let b = match scanner.next_batch()? {
                    Step::End => break,
                    Step::Torn { pos, reason } => return Err(view.file.corrupt(pos, reason)),
                    Step::Batch(b) => b,
                };
                let h = &b.header;
                if h.last_offset() < next {
                    continue;
                }
                if h.base_offset >= upto {
                    next = upto;
                    break 'segments;
                }
                let total = h.total_len();
                if !out.records.is_empty() && bytes + total > max_bytes {
                    break 'segments;
                }
                batch::verify_crc(h, &b.bytes).map_err(|r| view.file.corrupt(b.pos, r))?;
                if out.records.capacity() == 0 {
                    let hint = (max_bytes / total.max(1)).clamp(1, 64) * h.count as usize;
                    out.records.reserve(hint.min(1 << 16));
                }
                let sel = Select {
                    from: next,
                    ..sel_base
                };
                batch::decode_into(h, &b.bytes, &sel, &mut out.records, max_records)
                    .map_err(|r| view.file.corrupt(b.pos, r))?;
                bytes += total;
                if out.records.len() >= max_records {
                    next = out.records.last().map_or(next, |r| r.offset + 1);
                    break 'segments;
                }
                next = (h.last_offset() + 1).min(upto);
                if next >= upto {
                    break 'segments;
                }
            }
            match view.next_base {
                // Offsets between this segment's last record and the next base are gone.
                Some(nb) => next = next.max(nb).min(upto),
                None => {
                    next = next.max(end).min(upto);
                    break;
                }
            }
            if next >= upto {
                break;
            }
        }
        out.next_offset = next;
        Ok(out)
    }

    /// The segment holding `offset` (or the first one after it), with the position to start
    /// scanning from and its visible size.
    fn locate(&self, offset: Offset) -> Result<Option<SegView>> {
        let st = self.state.read();
        if st.closed {
            return Err(closed_error());
        }
        let i = st
            .segments
            .partition_point(|s| s.base() <= offset)
            .saturating_sub(1);
        let Some(seg) = st.segments.get(i) else {
            return Ok(None);
        };
        let rel = (offset - seg.base()).clamp(0, i64::from(u32::MAX)) as u32;
        Ok(Some(SegView {
            file: Arc::clone(&seg.file),
            pos: u64::from(index::position_for_offset(&seg.index, rel)),
            size: seg.size,
            next_base: st.segments.get(i + 1).map(|s| s.base()),
        }))
    }

    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        let candidates: Vec<SegView> = {
            let st = self.state.read();
            if st.closed {
                return Err(closed_error());
            }
            st.segments
                .iter()
                .filter(|s| s.max_ts >= timestamp)
                .map(|s| SegView {
                    file: Arc::clone(&s.file),
                    pos: u64::from(index::position_for_timestamp(&s.index, timestamp)),
                    size: s.size,
                    next_base: None,
                })
                .collect()
        };
        for view in candidates {
            let mut scanner = segment::Scanner::new(&view.file, view.pos, view.size, 1 << 20);
            loop {
                let b = match scanner.next_batch()? {
                    Step::End => break,
                    Step::Torn { pos, reason } => return Err(view.file.corrupt(pos, reason)),
                    Step::Batch(b) => b,
                };
                if b.header.max_ts < timestamp {
                    continue;
                }
                batch::verify_crc(&b.header, &b.bytes).map_err(|r| view.file.corrupt(b.pos, r))?;
                for raw in batch::RawRecords::new(&b.header, &b.bytes) {
                    let raw = raw.map_err(|r| view.file.corrupt(b.pos, r))?;
                    if raw.timestamp >= timestamp {
                        return Ok(Some(raw.offset));
                    }
                }
            }
        }
        Ok(None)
    }

    pub fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        let Some(active) = w.active.as_ref() else {
            return Err(closed_error());
        };
        active
            .file
            .file
            .sync_data()
            .map_err(|e| LogError::io("fsync segment", &active.file.path, e))?;
        active
            .index_file
            .sync_data()
            .map_err(|e| LogError::io("fsync index", &active.index_path, e))?;
        let marker = self.dir.join(CLEAN_SHUTDOWN);
        let mut f = File::create(&marker).map_err(|e| LogError::io("create", &marker, e))?;
        writeln!(f, "{}", w.next_offset)
            .and_then(|()| f.sync_all())
            .map_err(|e| LogError::io("write", &marker, e))?;
        segment::sync_dir(&self.dir)?;
        w.active = None;
        let mut st = self.state.write();
        st.closed_size = st.segments.iter().map(|s| s.size).sum();
        st.segments.clear();
        st.closed = true;
        Ok(())
    }
}

pub(crate) struct SegView {
    pub file: Arc<SegmentFile>,
    pub pos: u64,
    pub size: u64,
    pub next_base: Option<Offset>,
}

fn create_segment_file(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
        .map_err(|e| LogError::io("create segment", path, e))
}

/// Base offsets of the directory's segments, sorted; removes compaction leftovers and indexes
/// without a segment.
fn list_segments(dir: &Path) -> Result<Vec<Offset>> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("list directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            // A compaction that did not finish; the segment it was replacing is intact.
            segment::remove_file(&entry.path())?;
        } else if let Some(base) = segment::parse_log_name(name) {
            bases.push(base);
        } else if let Some(stem) = name.strip_suffix(INDEX_SUFFIX) {
            indexes.push(stem.to_owned());
        }
    }
    bases.sort_unstable();
    for stem in indexes {
        if segment::parse_log_name(&format!("{stem}.log"))
            .is_none_or(|b| bases.binary_search(&b).is_err())
        {
            segment::remove_file(&dir.join(format!("{stem}{INDEX_SUFFIX}")))?;
        }
    }
    Ok(bases)
}

/// Loads a closed segment: trusts its index (fsynced at roll), validating it, and scans only the
/// batches after its last entry for the segment's last offset and newest timestamp. A segment
/// without a plausible index (a crash during compaction or retention) gets it rebuilt.
fn load_closed(dir: &Path, file: SegmentFile, interval: u32) -> Result<Segment> {
    let size = file.len()?;
    let index_path = segment::index_path(dir, file.base);
    let (index, summary) = match segment::load_index(&index_path, size)? {
        Some(index) => {
            let (start, max_ts, next) = match index.last() {
                Some(e) => (
                    u64::from(e.position),
                    e.max_ts_before,
                    file.base + i64::from(e.rel_offset),
                ),
                None => (0, i64::MIN, file.base),
            };
            let s = segment::scan_valid(&file, start, size, max_ts, next, |_, _| {})?;
            (index, s)
        }
        None => {
            warn!(path = %index_path.display(), "rebuilding missing or invalid index");
            let (index, s) = rebuild(&file, size, interval)?;
            segment::write_index(&index_path, &index, true)?;
            (index, s)
        }
    };
    if let Some((pos, reason)) = summary.torn {
        return Err(file.corrupt(pos, reason));
    }
    Ok(Segment {
        file: Arc::new(file),
        size,
        index,
        max_ts: summary.max_ts,
        next_offset: summary.next_offset,
    })
}

/// Scans a whole segment, validating every batch and computing its index.
fn rebuild(file: &SegmentFile, size: u64, interval: u32) -> Result<(Vec<IndexEntry>, ScanSummary)> {
    let mut builder = IndexBuilder::new(interval);
    let mut index = Vec::new();
    let base = file.base;
    let s = segment::scan_valid(file, 0, size, i64::MIN, base, |b, max_before| {
        if let Some(e) = builder.on_batch(base, &b.header, b.pos, max_before) {
            index.push(e);
        }
    })?;
    Ok((index, s))
}

/// Loads the last segment after a clean shutdown; `None` when it turns out to need recovery
/// (bad index, a bad batch after the last index entry, or an uncommitted transaction at the
/// tail).
fn load_trusted(
    dir: &Path,
    file: &SegmentFile,
    txn_committed: &dyn Fn(u64) -> bool,
) -> Result<Option<(u64, Vec<IndexEntry>, ScanSummary)>> {
    let size = file.len()?;
    let Some(index) = segment::load_index(&segment::index_path(dir, file.base), size)? else {
        return Ok(None);
    };
    let (start, max_ts, next) = match index.last() {
        Some(e) => (
            u64::from(e.position),
            e.max_ts_before,
            file.base + i64::from(e.rel_offset),
        ),
        None => (0, i64::MIN, file.base),
    };
    let mut last_txn = None;
    let s = segment::scan_valid(file, start, size, max_ts, next, |b, _| {
        last_txn = b.header.is_transactional().then_some(b.header.txn_id);
    })?;
    if s.torn.is_some() || last_txn.is_some_and(|id| !txn_committed(id)) {
        return Ok(None);
    }
    Ok(Some((size, index, s)))
}

/// Recovers the last segment after a crash: keeps the longest prefix of valid batches, then drops
/// trailing transactional batches that never committed, truncates the file and rewrites the
/// index.
fn recover_last(
    dir: &Path,
    file: SegmentFile,
    config: &PartitionConfig,
    txn_committed: &dyn Fn(u64) -> bool,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    struct TxnBatch {
        pos: u64,
        txn_id: u64,
        max_ts_before: i64,
        next_before: Offset,
        index_len_before: usize,
    }
    let file_len = file.len()?;
    let base = file.base;
    let mut builder = IndexBuilder::new(config.index_interval_bytes);
    let mut index = Vec::new();
    let mut trailing: Vec<TxnBatch> = Vec::new();
    let mut next_before = base;
    let s = segment::scan_valid(&file, 0, file_len, i64::MIN, base, |b, max_before| {
        if b.header.is_transactional() {
            trailing.push(TxnBatch {
                pos: b.pos,
                txn_id: b.header.txn_id,
                max_ts_before: max_before,
                next_before,
                index_len_before: index.len(),
            });
        } else {
            trailing.clear();
        }
        if let Some(e) = builder.on_batch(base, &b.header, b.pos, max_before) {
            index.push(e);
        }
        next_before = b.header.last_offset() + 1;
    })?;
    if let Some((pos, reason)) = s.torn {
        warn!(path = %file.path.display(), pos, reason, "truncating torn tail");
    }
    report.truncated_bytes = file_len - s.end;
    let (mut end, mut max_ts, mut next_offset) = (s.end, s.max_ts, s.next_offset);
    while let Some(t) = trailing.pop() {
        if txn_committed(t.txn_id) {
            break;
        }
        report.uncommitted_batches += 1;
        end = t.pos;
        max_ts = t.max_ts_before;
        next_offset = t.next_before;
        index.truncate(t.index_len_before);
    }
    if end < file_len {
        file.file
            .set_len(end)
            .map_err(|e| LogError::io("truncate segment", &file.path, e))?;
    }
    // What a crash left in the page cache becomes durable before anything is read from it or
    // appended after it: a later power loss must not take back what recovery kept.
    file.file
        .sync_data()
        .map_err(|e| LogError::io("fsync segment", &file.path, e))?;
    file.synced_len.store(end, Ordering::Release);
    segment::write_index(&segment::index_path(dir, base), &index, false)?;
    Ok(Segment {
        file: Arc::new(file),
        size: end,
        index,
        max_ts,
        next_offset,
    })
}
