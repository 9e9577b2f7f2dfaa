//! The journal, `DATA/meta/journal`: an append-only file of checksummed entries recording topic
//! creation and deletion, committed offsets, producer epochs, and every batch written to a
//! partition (with the transaction commit it belongs to, if any). It is the log's write-ahead
//! log: a commit writes its batches to the partition files without fsyncing them, appends one
//! entry carrying those batches, and fsyncs only the journal. Replaying it rebuilds the broker's
//! metadata and re-appends batches a power loss took from the partitions; a torn tail (a crash
//! mid-append) fails its length or checksum and is truncated.
//!
//! Entry framing (little-endian): `length u32` (of the payload), `crc32c u32` (of the payload),
//! payload: a tag byte then the fields, strings as `u32` length + UTF-8, byte strings as `u32`
//! length + bytes.
//!
//! Group commit: [`Journal::append`] returns the entry's end as a position in the journal's
//! history (its *lsn*, which a rewrite does not reset); [`Durability::wait`] returns once that
//! position is fsynced. One waiter fsyncs for everyone appended so far while the others wait, so
//! concurrent commits share one `fdatasync`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use rill_log::{ErrorClass, LogError, Offset, Result, TopicPartition};

/// Entries larger than this are refused when written, so a larger length read back is a torn or
/// corrupt header, not an entry.
const MAX_ENTRY: usize = 1 << 30;

/// Batches written to one partition, exactly as appended (one or more encoded batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalBatch {
    pub tp: TopicPartition,
    /// Offset of the first record of `bytes`.
    pub base: Offset,
    pub bytes: Bytes,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A topic was created (its config is in its `topic.json`).
    TopicCreated { name: String },
    /// A topic was deleted; its directory may still exist if the crash came before removal.
    TopicDeleted { name: String },
    /// A group committed offsets outside a transaction.
    OffsetCommit {
        group: String,
        offsets: Vec<(TopicPartition, Offset)>,
    },
    /// A transaction committed: its batches (stamped `txn_id`) and these group offsets. Its
    /// durability is the transaction's commit point.
    TxnCommit {
        txn_id: u64,
        offsets: Vec<(String, TopicPartition, Offset)>,
        /// Empty in journals written before batches were journaled.
        batches: Vec<JournalBatch>,
    },
    /// Batches of non-transactional records, one flusher group.
    Appended { batches: Vec<JournalBatch> },
    /// A transactional producer registered, fencing those with a lower epoch.
    ProducerEpoch {
        transactional_id: String,
        epoch: i32,
    },
    /// Every transaction id at or below `txn_id` committed or is gone from the partitions,
    /// except those in `open` (not committed when this was written; a later `TxnCommit` may
    /// still commit them). Written by a rewrite, which drops the individual `TxnCommit`s.
    TxnIdFloor { txn_id: u64, open: Vec<u64> },
}

impl Entry {
    /// Bytes of partition data the entry carries.
    pub(crate) fn data_bytes(&self) -> u64 {
        match self {
            Entry::TxnCommit { batches, .. } | Entry::Appended { batches } => {
                batches.iter().map(|b| b.bytes.len() as u64).sum()
            }
            _ => 0,
        }
    }
}

const TAG_TOPIC_CREATED: u8 = 1;
const TAG_TOPIC_DELETED: u8 = 2;
const TAG_OFFSET_COMMIT: u8 = 3;
/// A transaction commit without batches (journals of earlier versions); read, never written.
const TAG_TXN_COMMIT_V1: u8 = 4;
const TAG_PRODUCER_EPOCH: u8 = 5;
const TAG_TXN_ID_FLOOR: u8 = 6;
const TAG_TXN_COMMIT: u8 = 7;
const TAG_APPENDED: u8 = 8;

/// The journal file currently appended to. Shared with the thread fsyncing it, which does so
/// without holding the `meta` lock.
#[derive(Debug)]
pub(crate) struct JournalFile {
    path: PathBuf,
    file: File,
    /// Bytes of the file known durable (test support: what a power loss keeps).
    synced_len: AtomicU64,
}

impl JournalFile {
    /// Fsyncs the file; `len` is its length when the caller looked (all of it is durable after).
    fn sync(&self, len: u64) -> Result<()> {
        let started = std::time::Instant::now();
        self.file
            .sync_data()
            .map_err(|e| LogError::io("sync journal", &self.path, e))?;
        metrics::histogram!("rill_log_fsync_duration_seconds", "file" => "journal")
            .record(started.elapsed().as_secs_f64());
        self.synced_len.fetch_max(len, Ordering::AcqRel);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct DurableState {
    /// Every lsn up to this is durable.
    synced: u64,
    /// A waiter is fsyncing now; the others wait for it.
    syncing: bool,
    /// A failed fsync: the journal's state on disk is unknown, so nothing is durable any more.
    failed: Option<LogError>,
}

/// How far the journal is durable, and the group commit that moves it.
#[derive(Debug, Default)]
pub(crate) struct Durability {
    state: Mutex<DurableState>,
    cv: Condvar,
}

/// What a sync must cover: the file, its length and the lsn it ends at.
pub(crate) type SyncTarget = (Arc<JournalFile>, u64, u64);

impl Durability {
    /// Fails once an fsync of the journal has failed.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.state.lock().failed {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    fn advance(&self, lsn: u64) {
        let mut state = self.state.lock();
        state.synced = state.synced.max(lsn);
        drop(state);
        self.cv.notify_all();
    }

    fn fail(&self, err: &LogError) {
        let mut state = self.state.lock();
        state.failed.get_or_insert_with(|| err.clone());
        drop(state);
        self.cv.notify_all();
    }

    fn synced(&self) -> u64 {
        self.state.lock().synced
    }

    /// Returns once the journal is durable up to `lsn`. If no fsync is under way this thread
    /// does one, covering everything appended so far (`target` says what that is; it is called
    /// with no lock of ours held); otherwise it waits for the one under way and looks again.
    pub(crate) fn wait(&self, lsn: u64, target: impl Fn() -> SyncTarget) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            if let Some(err) = &state.failed {
                return Err(err.clone());
            }
            if state.synced >= lsn {
                return Ok(());
            }
            if state.syncing {
                self.cv.wait(&mut state);
                continue;
            }
            state.syncing = true;
            drop(state);
            let (file, len, upto) = target();
            let result = file.sync(len);
            state = self.state.lock();
            state.syncing = false;
            match result {
                Ok(()) => state.synced = state.synced.max(upto),
                Err(err) => {
                    state.failed.get_or_insert(err);
                }
            }
            self.cv.notify_all();
        }
    }
}

/// The open journal, positioned at its end. Lives in the broker's `meta` lock.
#[derive(Debug)]
pub(crate) struct Journal {
    current: Arc<JournalFile>,
    /// Bytes in the current file (all valid entries).
    len: u64,
    /// Bytes ever appended since open (the lsn of the last entry's end); a rewrite keeps it.
    written: u64,
    durability: Arc<Durability>,
    /// Reused to frame entries.
    buf: Vec<u8>,
}

impl Journal {
    /// Opens (creating) the journal at `path` and returns its valid entries, truncating a torn
    /// or corrupt tail. The file is fsynced, so what recovery acts on stays.
    pub(crate) fn open(path: &Path) -> Result<(Journal, Vec<Entry>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LogError::io("create journal directory", parent, e))?;
        }
        let mut file = open_file(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| LogError::io("read journal", path, e))?;
        let bytes = Bytes::from(bytes);
        let (entries, valid) = decode_all(&bytes, path)?;
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = bytes.len() - valid,
                "truncating torn journal tail"
            );
            file.set_len(valid as u64)
                .map_err(|e| LogError::io("truncate journal", path, e))?;
        }
        file.sync_all()
            .map_err(|e| LogError::io("sync journal", path, e))?;
        Ok((
            Journal {
                current: Arc::new(JournalFile {
                    path: path.to_path_buf(),
                    file,
                    synced_len: AtomicU64::new(valid as u64),
                }),
                len: valid as u64,
                written: 0,
                durability: Arc::new(Durability::default()),
                buf: Vec::new(),
            },
            entries,
        ))
    }

    /// Appends one entry (written to the OS, not fsynced) and returns its lsn: once
    /// [`Durability::wait`] for it returns, the entry is durable.
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<u64> {
        self.durability.check()?;
        self.buf.clear();
        frame_into(&mut self.buf, entry)?;
        // Positional, at the known end: a failed write leaves nothing the next one misreads,
        // since it overwrites whatever part landed.
        self.current
            .file
            .write_all_at(&self.buf, self.len)
            .map_err(|e| LogError::io("append to journal", &self.current.path, e))?;
        self.len += self.buf.len() as u64;
        self.written += self.buf.len() as u64;
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        Ok(self.written)
    }

    /// Appends one entry and fsyncs it before returning (metadata changes).
    pub(crate) fn append_synced(&mut self, entry: &Entry) -> Result<u64> {
        let lsn = self.append(entry)?;
        self.sync()?;
        Ok(lsn)
    }

    /// Fsyncs entries appended so far, here and now (a no-op when all are durable).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.durability.check()?;
        if self.durability.synced() >= self.written {
            return Ok(());
        }
        match self.current.sync(self.len) {
            Ok(()) => {
                self.durability.advance(self.written);
                Ok(())
            }
            Err(err) => {
                self.durability.fail(&err);
                Err(err)
            }
        }
    }

    /// What an fsync covering every entry appended so far must sync.
    pub(crate) fn sync_target(&self) -> SyncTarget {
        (Arc::clone(&self.current), self.len, self.written)
    }

    /// The group commit of this journal.
    pub(crate) fn durability(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// The lsn of the last entry's end.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Bytes in the journal file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Test support: the journal's path and how many of its bytes are durable.
    pub(crate) fn durable_len(&self) -> (PathBuf, u64) {
        (
            self.current.path.clone(),
            self.current.synced_len.load(Ordering::Acquire),
        )
    }

    /// Replaces the journal with `entries` (a snapshot of the current state) followed by the
    /// entries from byte `keep_from` of the current file to its end, atomically: written to a
    /// temporary file, fsynced, renamed over the journal. Everything appended so far is durable
    /// afterwards. Returns the replaced file, for [`retire`] outside the `meta` lock.
    pub(crate) fn rewrite(&mut self, entries: &[Entry], keep_from: u64) -> Result<Retired> {
        self.durability.check()?;
        let path = self.current.path.clone();
        let tmp = path.with_extension("rewrite");
        let mut bytes = Vec::new();
        for entry in entries {
            frame_into(&mut bytes, entry)?;
        }
        let keep_from = keep_from.min(self.len);
        let snapshot_len = bytes.len();
        bytes.resize(snapshot_len + (self.len - keep_from) as usize, 0);
        self.current
            .file
            .read_exact_at(&mut bytes[snapshot_len..], keep_from)
            .map_err(|e| LogError::io("read journal", &path, e))?;
        {
            let mut file =
                File::create(&tmp).map_err(|e| LogError::io("create journal rewrite", &tmp, e))?;
            file.write_all(&bytes)
                .map_err(|e| LogError::io("write journal rewrite", &tmp, e))?;
            file.sync_all()
                .map_err(|e| LogError::io("sync journal rewrite", &tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| LogError::io("replace journal", &path, e))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        let file = open_file(&path)?;
        let old = std::mem::replace(
            &mut self.current,
            Arc::new(JournalFile {
                path,
                file,
                synced_len: AtomicU64::new(bytes.len() as u64),
            }),
        );
        self.len = bytes.len() as u64;
        self.durability.advance(self.written);
        Ok(Retired(old))
    }
}

/// A journal file a rewrite replaced: unlinked, still open. Dropping it frees its blocks,
/// which for a checkpoint's 64 MiB takes 25-90 ms (measured on ext4): commits would wait that
/// long for the `meta` lock, so it is dropped after, through [`retire`].
#[must_use = "retire it outside the meta lock"]
pub(crate) struct Retired(Arc<JournalFile>);

/// Drops a replaced journal file (called without the `meta` lock).
pub(crate) fn retire(retired: Retired) {
    drop(retired.0);
}

fn open_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LogError::io("open journal", path, e))
}

/// Fsyncs a directory so a rename or creation in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("sync directory", dir, e))
}

/// Appends the framed entry to `out`: encoded in place after a header filled in last, so an
/// entry carrying megabytes of batches is copied once.
fn frame_into(out: &mut Vec<u8>, entry: &Entry) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    encode(out, entry);
    let payload_len = out.len() - start - 8;
    if payload_len > MAX_ENTRY {
        out.truncate(start);
        return Err(LogError::Backend {
            operation: "append to journal",
            code: None,
            message: format!(
                "a commit of {payload_len} bytes exceeds the journal's limit of {MAX_ENTRY} bytes per entry"
            ),
            class: ErrorClass::InvalidInput,
        });
    }
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes entries until the bytes end or an entry is torn; returns them and how many bytes
/// were valid. An entry whose checksum matches but which does not decode was written by a
/// different format, not torn: that is `Corrupt`, since truncating it would lose metadata.
fn decode_all(bytes: &Bytes, path: &Path) -> Result<(Vec<Entry>, usize)> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        // No entry is empty: a zero length is a tail a crash left zeroed, not an entry.
        if len == 0 || len > MAX_ENTRY || bytes.len() - pos - 8 < len {
            break;
        }
        let payload = bytes.slice(pos + 8..pos + 8 + len);
        if crc32c::crc32c(&payload) != crc {
            break;
        }
        let entry = decode(payload).ok_or_else(|| LogError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("journal entry at byte {pos} has a valid checksum but does not decode"),
        })?;
        entries.push(entry);
        pos += 8 + len;
    }
    Ok((entries, pos))
}

fn encode(w: &mut Vec<u8>, entry: &Entry) {
    match entry {
        Entry::TopicCreated { name } => {
            w.push(TAG_TOPIC_CREATED);
            put_str(w, name);
        }
        Entry::TopicDeleted { name } => {
            w.push(TAG_TOPIC_DELETED);
            put_str(w, name);
        }
        Entry::OffsetCommit { group, offsets } => {
            w.push(TAG_OFFSET_COMMIT);
            put_str(w, group);
            w.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
            for (tp, offset) in offsets {
                put_tp(w, tp);
                w.extend_from_slice(&offset.to_le_bytes());
            }
        }
        Entry::TxnCommit {
            txn_id,
            offsets,
            batches,
        } => {
            w.push(TAG_TXN_COMMIT);
            w.extend_from_slice(&txn_id.to_le_bytes());
            w.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
            for (group, tp, offset) in offsets {
                put_str(w, group);
                put_tp(w, tp);
                w.extend_from_slice(&offset.to_le_bytes());
            }
            put_batches(w, batches);
        }
        Entry::Appended { batches } => {
            w.push(TAG_APPENDED);
            put_batches(w, batches);
        }
        Entry::ProducerEpoch {
            transactional_id,
            epoch,
        } => {
            w.push(TAG_PRODUCER_EPOCH);
            put_str(w, transactional_id);
            w.extend_from_slice(&epoch.to_le_bytes());
        }
        Entry::TxnIdFloor { txn_id, open } => {
            w.push(TAG_TXN_ID_FLOOR);
            w.extend_from_slice(&txn_id.to_le_bytes());
            w.extend_from_slice(&(open.len() as u32).to_le_bytes());
            for id in open {
                w.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u32).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_tp(w: &mut Vec<u8>, tp: &TopicPartition) {
    put_str(w, &tp.topic);
    w.extend_from_slice(&tp.partition.to_le_bytes());
}

fn put_batches(w: &mut Vec<u8>, batches: &[JournalBatch]) {
    w.extend_from_slice(&(batches.len() as u32).to_le_bytes());
    for batch in batches {
        put_tp(w, &batch.tp);
        w.extend_from_slice(&batch.base.to_le_bytes());
        w.extend_from_slice(&(batch.bytes.len() as u32).to_le_bytes());
        w.extend_from_slice(&batch.bytes);
    }
}

/// Reads a payload; batch bytes are slices of it, not copies.
struct Cursor {
    buf: Bytes,
}

impl Cursor {
    fn take(&mut self, n: usize) -> Option<Bytes> {
        if self.buf.len() < n {
            return None;
        }
        Some(self.buf.split_to(n))
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.as_ref().try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn tp(&mut self) -> Option<TopicPartition> {
        let topic = self.string()?;
        Some(TopicPartition::new(topic, self.i32()?))
    }
    fn batches(&mut self) -> Option<Vec<JournalBatch>> {
        let n = self.u32()?;
        let mut batches = Vec::new();
        for _ in 0..n {
            let tp = self.tp()?;
            let base = self.i64()?;
            let len = self.u32()? as usize;
            batches.push(JournalBatch {
                tp,
                base,
                bytes: self.take(len)?,
            });
        }
        Some(batches)
    }
    fn txn_offsets(&mut self) -> Option<Vec<(String, TopicPartition, Offset)>> {
        let n = self.u32()?;
        let mut offsets = Vec::new();
        for _ in 0..n {
            let group = self.string()?;
            let tp = self.tp()?;
            offsets.push((group, tp, self.i64()?));
        }
        Some(offsets)
    }
}

fn decode(payload: Bytes) -> Option<Entry> {
    let mut r = Cursor { buf: payload };
    let entry = match r.u8()? {
        TAG_TOPIC_CREATED => Entry::TopicCreated { name: r.string()? },
        TAG_TOPIC_DELETED => Entry::TopicDeleted { name: r.string()? },
        TAG_OFFSET_COMMIT => {
            let group = r.string()?;
            let n = r.u32()?;
            let mut offsets = Vec::new();
            for _ in 0..n {
                let tp = r.tp()?;
                offsets.push((tp, r.i64()?));
            }
            Entry::OffsetCommit { group, offsets }
        }
        TAG_TXN_COMMIT_V1 => Entry::TxnCommit {
            txn_id: r.u64()?,
            offsets: r.txn_offsets()?,
            batches: Vec::new(),
        },
        TAG_TXN_COMMIT => Entry::TxnCommit {
            txn_id: r.u64()?,
            offsets: r.txn_offsets()?,
            batches: r.batches()?,
        },
        TAG_APPENDED => Entry::Appended {
            batches: r.batches()?,
        },
        TAG_PRODUCER_EPOCH => Entry::ProducerEpoch {
            transactional_id: r.string()?,
            epoch: r.i32()?,
        },
        TAG_TXN_ID_FLOOR => {
            let txn_id = r.u64()?;
            // Journals of earlier versions end here.
            let mut open = Vec::new();
            if !r.buf.is_empty() {
                for _ in 0..r.u32()? {
                    open.push(r.u64()?);
                }
            }
            Entry::TxnIdFloor { txn_id, open }
        }
        _ => return None,
    };
    // Trailing bytes mean the entry is not what we think it is.
    r.buf.is_empty().then_some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::TopicCreated { name: "a".into() },
            Entry::OffsetCommit {
                group: "g".into(),
                offsets: vec![(TopicPartition::new("a", 0), 5)],
            },
            Entry::TxnCommit {
                txn_id: 7,
                offsets: vec![("g".into(), TopicPartition::new("a", 1), 9)],
                batches: vec![JournalBatch {
                    tp: TopicPartition::new("a", 1),
                    base: 3,
                    bytes: Bytes::from_static(b"batch bytes"),
                }],
            },
            Entry::Appended {
                batches: vec![
                    JournalBatch {
                        tp: TopicPartition::new("a", 0),
                        base: 0,
                        bytes: Bytes::from_static(b"x"),
                    },
                    JournalBatch {
                        tp: TopicPartition::new("a", 1),
                        base: 4,
                        bytes: Bytes::from_static(b"yz"),
                    },
                ],
            },
            Entry::ProducerEpoch {
                transactional_id: "t".into(),
                epoch: 3,
            },
            Entry::TxnIdFloor {
                txn_id: 7,
                open: vec![5, 6],
            },
            Entry::TopicDeleted { name: "a".into() },
        ]
    }

    fn tempdir() -> Result<tempfile::TempDir> {
        tempfile::tempdir().map_err(|e| LogError::io("tempdir", "/tmp", e))
    }

    #[test]
    fn entries_round_trip_and_torn_tail_is_truncated() -> Result<()> {
        let dir = tempdir()?;
        let path = dir.path().join("meta/journal");
        let good_len = {
            let (mut journal, entries) = Journal::open(&path)?;
            assert!(entries.is_empty());
            for entry in sample() {
                journal.append_synced(&entry)?;
            }
            journal.len()
        };
        // A torn append: a header promising more bytes than follow.
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        file.write_all_at(&[50, 0, 0, 0, 1, 2, 3, 4, 9], good_len)
            .map_err(|e| LogError::io("write", &path, e))?;
        drop(file);
        let (journal, entries) = Journal::open(&path)?;
        assert_eq!(entries, sample());
        assert_eq!(journal.len(), good_len);
        assert_eq!(
            std::fs::metadata(&path).map(|m| m.len()).ok(),
            Some(good_len)
        );
        Ok(())
    }

    #[test]
    fn a_floor_without_open_ids_from_an_earlier_version_still_reads() {
        let mut payload = vec![TAG_TXN_ID_FLOOR];
        payload.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(
            decode(Bytes::from(payload)),
            Some(Entry::TxnIdFloor {
                txn_id: 9,
                open: vec![]
            })
        );
    }

    #[test]
    fn bad_checksum_stops_replay() -> Result<()> {
        let dir = tempdir()?;
        let path = dir.path().join("journal");
        let len = {
            let (mut journal, _) = Journal::open(&path)?;
            for entry in sample() {
                journal.append(&entry)?;
            }
            journal.sync()?;
            journal.len()
        };
        let mut bytes = std::fs::read(&path).map_err(|e| LogError::io("read", &path, e))?;
        let last = len as usize - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).map_err(|e| LogError::io("write", &path, e))?;
        let (_, entries) = Journal::open(&path)?;
        assert_eq!(entries, sample()[..sample().len() - 1].to_vec());
        Ok(())
    }

    #[test]
    fn rewrite_puts_the_snapshot_before_the_kept_tail() -> Result<()> {
        let dir = tempdir()?;
        let path = dir.path().join("journal");
        let (mut journal, _) = Journal::open(&path)?;
        for entry in &sample()[..3] {
            journal.append(entry)?;
        }
        let cut = journal.len();
        journal.append(&sample()[3])?;
        let lsn = journal.append(&sample()[4])?;
        retire(journal.rewrite(&sample()[..1], cut)?);
        assert_eq!(journal.durable_len().1, journal.len());
        // Everything appended before the rewrite is durable now: waiting syncs nothing.
        journal
            .durability()
            .wait(lsn, || panic!("nothing left to sync"))?;
        journal.append_synced(&sample()[6])?;
        drop(journal);
        let (_, entries) = Journal::open(&path)?;
        assert_eq!(
            entries,
            vec![
                sample()[0].clone(),
                sample()[3].clone(),
                sample()[4].clone(),
                sample()[6].clone()
            ]
        );
        Ok(())
    }

    #[test]
    fn concurrent_waiters_all_return_once_their_entry_is_durable() -> Result<()> {
        let dir = tempdir()?;
        let path = dir.path().join("journal");
        let (journal, _) = Journal::open(&path)?;
        let journal = Arc::new(Mutex::new(journal));
        let durability = Arc::clone(journal.lock().durability());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (journal, durability) = (Arc::clone(&journal), Arc::clone(&durability));
                std::thread::spawn(move || -> Result<()> {
                    for _ in 0..50 {
                        let lsn = journal
                            .lock()
                            .append(&Entry::TopicCreated { name: "x".into() })?;
                        durability.wait(lsn, || journal.lock().sync_target())?;
                        let (_, durable) = journal.lock().durable_len();
                        assert!(durable >= lsn, "entry at {lsn} returned before durable");
                    }
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| LogError::Closed { what: "thread" })??;
        }
        let (_, entries) = Journal::open(&path)?;
        assert_eq!(entries.len(), 400);
        Ok(())
    }
}
