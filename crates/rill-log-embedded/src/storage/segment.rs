//! Segment files and sequential batch scanning over them with positional reads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rill_log::{LogError, Offset, Result};

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::index::{self, IndexEntry};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// Suffix of the files compaction writes before renaming them into place.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

pub(crate) fn log_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{base:020}{LOG_SUFFIX}"))
}

pub(crate) fn index_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{base:020}{INDEX_SUFFIX}"))
}

/// Parses a segment file name (`{base:020}.log`) into its base offset.
pub(crate) fn parse_log_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(LOG_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An open segment's log file. Immutable once shared: readers hold an `Arc` of it, so a segment
/// replaced by compaction or deleted by retention stays readable through its descriptor until
/// the last reader lets go.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub base: Offset,
    pub path: PathBuf,
    pub file: File,
    /// Bytes known durable (fsynced); test support, to simulate a power loss.
    pub synced_len: std::sync::atomic::AtomicU64,
}

impl SegmentFile {
    pub fn open(path: PathBuf, base: Offset) -> Result<SegmentFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("open segment", &path, e))?;
        // What an open finds is taken as durable: recovery fsyncs what it keeps.
        let len = file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| LogError::io("stat segment", &path, e))?;
        Ok(SegmentFile {
            base,
            path,
            file,
            synced_len: std::sync::atomic::AtomicU64::new(len),
        })
    }

    pub fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| LogError::io("stat segment", &self.path, e))
    }

    pub fn corrupt(&self, pos: u64, reason: &str) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            reason: format!("{reason} (batch at byte {pos})"),
        }
    }
}

/// A segment as the partition tracks it: the file plus what is known of its contents.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub file: Arc<SegmentFile>,
    /// Bytes of complete batches; readers never look past it.
    pub size: u64,
    pub index: Vec<IndexEntry>,
    /// Largest record timestamp, `i64::MIN` when empty.
    pub max_ts: i64,
    /// Offset after the segment's last record (its base when empty).
    pub next_offset: Offset,
}

impl Segment {
    pub fn base(&self) -> Offset {
        self.file.base
    }
}

/// One batch found by a [`Scanner`]; `bytes` is exactly the batch (length field included).
pub(crate) struct ScannedBatch {
    pub pos: u64,
    pub header: BatchHeader,
    pub bytes: Bytes,
}

pub(crate) enum Step {
    Batch(ScannedBatch),
    End,
    /// The bytes at `pos` are not a whole batch with a plausible header.
    Torn {
        pos: u64,
        reason: &'static str,
    },
}

/// Walks the batches of a segment between two positions, reading large chunks with `read_at`
/// and handing out zero-copy slices of them. Checks headers and lengths only; callers verify
/// checksums of the batches they use.
pub(crate) struct Scanner<'a> {
    seg: &'a SegmentFile,
    pos: u64,
    end: u64,
    chunk: usize,
    buf: Bytes,
    buf_start: u64,
}

impl<'a> Scanner<'a> {
    pub fn new(seg: &'a SegmentFile, start: u64, end: u64, chunk: usize) -> Scanner<'a> {
        Scanner {
            seg,
            pos: start,
            end,
            chunk: chunk.max(HEADER_LEN),
            buf: Bytes::new(),
            buf_start: start,
        }
    }

    pub fn next_batch(&mut self) -> Result<Step> {
        if self.pos >= self.end {
            return Ok(Step::End);
        }
        let avail = self.end - self.pos;
        if avail < HEADER_LEN as u64 {
            return Ok(self.torn("partial batch header"));
        }
        self.fill(HEADER_LEN as u64)?;
        let at = (self.pos - self.buf_start) as usize;
        let Some(header) = BatchHeader::parse(&self.buf[at..]) else {
            return Ok(self.torn("partial batch header"));
        };
        if let Err(reason) = batch::check_header(&header) {
            return Ok(self.torn(reason));
        }
        let total = header.total_len() as u64;
        if total > avail {
            return Ok(self.torn("batch extends past the end of the segment"));
        }
        self.fill(total)?;
        let at = (self.pos - self.buf_start) as usize;
        let bytes = self.buf.slice(at..at + total as usize);
        let pos = self.pos;
        self.pos += total;
        Ok(Step::Batch(ScannedBatch { pos, header, bytes }))
    }

    fn torn(&self, reason: &'static str) -> Step {
        Step::Torn {
            pos: self.pos,
            reason,
        }
    }

    /// Makes `need` bytes from the current position available in the buffer.
    fn fill(&mut self, need: u64) -> Result<()> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos >= self.buf_start && self.pos + need <= buf_end {
            return Ok(());
        }
        let len = need.max(self.chunk as u64).min(self.end - self.pos);
        let len =
            usize::try_from(len).map_err(|_| self.seg.corrupt(self.pos, "batch too large"))?;
        let mut v = vec![0u8; len];
        self.seg
            .file
            .read_exact_at(&mut v, self.pos)
            .map_err(|e| LogError::io("read segment", &self.seg.path, e))?;
        self.buf = Bytes::from(v);
        self.buf_start = self.pos;
        Ok(())
    }
}

/// Decides where index entries go, the same way for appends and for rebuilds: an entry for a
/// batch once at least `interval` bytes were written since the previous entry.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    pub interval: u64,
    pub bytes_since: u64,
}

impl IndexBuilder {
    pub fn new(interval: u32) -> IndexBuilder {
        IndexBuilder {
            interval: u64::from(interval.max(1)),
            bytes_since: 0,
        }
    }

    /// Called for each batch in order; returns the entry to add for it, if any.
    pub fn on_batch(
        &mut self,
        seg_base: Offset,
        h: &BatchHeader,
        pos: u64,
        max_ts_before: i64,
    ) -> Option<IndexEntry> {
        let entry = (self.bytes_since >= self.interval).then(|| {
            self.bytes_since = 0;
            IndexEntry {
                rel_offset: (h.base_offset - seg_base) as u32,
                position: pos as u32,
                max_ts_before,
            }
        });
        self.bytes_since += h.total_len() as u64;
        entry
    }
}

/// Summary of a scan over a range of batches.
#[derive(Debug, Clone)]
pub(crate) struct ScanSummary {
    /// Position after the last good batch.
    pub end: u64,
    pub max_ts: i64,
    /// Offset after the last good batch (or the starting expectation if none).
    pub next_offset: Offset,
    /// Why the scan stopped before the end of the range, if it did.
    pub torn: Option<(u64, &'static str)>,
}

/// Scans `start..end` validating each batch fully (checksum and record structure) and checking
/// that offsets increase from `next_offset`; calls `on_batch` for each good batch.
pub(crate) fn scan_valid(
    seg: &SegmentFile,
    start: u64,
    end: u64,
    mut max_ts: i64,
    mut next_offset: Offset,
    mut on_batch: impl FnMut(&ScannedBatch, i64),
) -> Result<ScanSummary> {
    const CHUNK: usize = 4 << 20;
    let mut scanner = Scanner::new(seg, start, end, CHUNK);
    let mut good_end = start;
    let torn = loop {
        match scanner.next_batch()? {
            Step::End => break None,
            Step::Torn { pos, reason } => break Some((pos, reason)),
            Step::Batch(b) => {
                if b.header.base_offset < next_offset {
                    break Some((b.pos, "batch offsets not increasing"));
                }
                if b.header.last_offset() - seg.base > i64::from(u32::MAX) {
                    break Some((b.pos, "batch offset too far from the segment base"));
                }
                if let Err(reason) = batch::validate(&b.header, &b.bytes) {
                    break Some((b.pos, reason));
                }
                on_batch(&b, max_ts);
                max_ts = max_ts.max(b.header.max_ts);
                next_offset = b.header.last_offset() + 1;
                good_end = b.pos + b.header.total_len() as u64;
            }
        }
    };
    Ok(ScanSummary {
        end: good_end,
        max_ts,
        next_offset,
        torn,
    })
}

/// Reads and validates a segment's index file; `None` if it is missing or implausible.
pub(crate) fn load_index(path: &Path, segment_len: u64) -> Result<Option<Vec<IndexEntry>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(index::decode_entries(&bytes, segment_len)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("read index", path, e)),
    }
}

/// Writes a whole index file (replacing any previous one) and returns its handle.
pub(crate) fn write_index(path: &Path, entries: &[IndexEntry], sync: bool) -> Result<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| LogError::io("create index", path, e))?;
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
    f.write_all(&bytes)
        .map_err(|e| LogError::io("write index", path, e))?;
    if sync {
        f.sync_data()
            .map_err(|e| LogError::io("fsync index", path, e))?;
    }
    Ok(f)
}

/// Fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// Removes a file, ignoring that it is already gone.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("remove", path, e)),
    }
}

/// Offset of the first record in a segment of `size` bytes (its base when empty).
pub(crate) fn first_offset(seg: &SegmentFile, size: u64) -> Result<Offset> {
    if size == 0 {
        return Ok(seg.base);
    }
    let mut scanner = Scanner::new(seg, 0, size, HEADER_LEN);
    match scanner.next_batch()? {
        Step::Batch(b) => Ok(b.header.base_offset),
        Step::End => Ok(seg.base),
        Step::Torn { pos, reason } => Err(seg.corrupt(pos, reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let p = log_path(Path::new("/x"), 1234);
        assert_eq!(p, Path::new("/x/00000000000000001234.log"));
        let name = p.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        assert_eq!(parse_log_name(name), Some(1234));
        assert_eq!(parse_log_name("00000000000000001234.index"), None);
        assert_eq!(parse_log_name("1234.log"), None);
        assert_eq!(parse_log_name("0000000000000000123x.log"), None);
        assert_eq!(parse_log_name("00000000000000001234.log.cleaned"), None);
    }
}
