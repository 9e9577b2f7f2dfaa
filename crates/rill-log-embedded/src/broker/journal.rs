//! The metadata journal, `DATA/meta/journal`: an append-only file of checksummed entries
//! recording topic creation and deletion, committed offsets, transaction commits and producer
//! epochs. Replaying it rebuilds the broker's metadata; a torn tail (a crash mid-append) fails
//! its length or checksum and is truncated.
//!
//! Entry framing (little-endian): `length u32` (of the payload), `crc32c u32` (of the payload),
//! payload: a tag byte then the fields, strings as `u32` length + UTF-8.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rill_log::{LogError, Offset, Result, TopicPartition};

/// Entries larger than this are not written by us, so a larger length is a torn or corrupt
/// header, not an entry to allocate for.
const MAX_ENTRY: u32 = 64 << 20;

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
    /// A transaction committed: its batches (stamped `txn_id`) and these group offsets.
    TxnCommit {
        txn_id: u64,
        offsets: Vec<(String, TopicPartition, Offset)>,
    },
    /// A transactional producer registered, fencing those with a lower epoch.
    ProducerEpoch {
        transactional_id: String,
        epoch: i32,
    },
    /// Transaction ids at or below this were used (kept when a rewrite drops old `TxnCommit`s).
    TxnIdFloor { txn_id: u64 },
}

const TAG_TOPIC_CREATED: u8 = 1;
const TAG_TOPIC_DELETED: u8 = 2;
const TAG_OFFSET_COMMIT: u8 = 3;
const TAG_TXN_COMMIT: u8 = 4;
const TAG_PRODUCER_EPOCH: u8 = 5;
const TAG_TXN_ID_FLOOR: u8 = 6;

/// The open journal file, positioned at its end.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes in the file (all valid entries).
    len: u64,
    /// Entries written since the last fsync.
    dirty: bool,
}

impl Journal {
    /// Opens (creating) the journal at `path` and returns its valid entries, truncating a torn
    /// or corrupt tail.
    pub(crate) fn open(path: &Path) -> Result<(Journal, Vec<Entry>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LogError::io("create journal directory", parent, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| LogError::io("open journal", path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| LogError::io("read journal", path, e))?;
        let (entries, valid) = decode_all(&bytes, path)?;
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = bytes.len() - valid,
                "truncating torn journal tail"
            );
            file.set_len(valid as u64)
                .map_err(|e| LogError::io("truncate journal", path, e))?;
            file.sync_all()
                .map_err(|e| LogError::io("sync journal", path, e))?;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                len: valid as u64,
                dirty: false,
            },
            entries,
        ))
    }

    /// Appends one entry, fsyncing it when `sync` is set.
    pub(crate) fn append(&mut self, entry: &Entry, sync: bool) -> Result<()> {
        let framed = frame(entry);
        self.file
            .write_all(&framed)
            .map_err(|e| LogError::io("append to journal", &self.path, e))?;
        self.len += framed.len() as u64;
        self.dirty = true;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Fsyncs entries written so far (a no-op when none are pending).
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.dirty {
            let started = std::time::Instant::now();
            self.file
                .sync_data()
                .map_err(|e| LogError::io("sync journal", &self.path, e))?;
            metrics::histogram!("rill_log_fsync_duration_seconds", "file" => "journal")
                .record(started.elapsed().as_secs_f64());
            self.dirty = false;
        }
        Ok(())
    }

    /// Bytes in the journal.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Replaces the journal with `entries` (a snapshot of the current state), atomically:
    /// written to a temporary file, fsynced, renamed over the journal.
    pub(crate) fn rewrite(&mut self, entries: &[Entry]) -> Result<()> {
        let tmp = self.path.with_extension("rewrite");
        let mut bytes = Vec::new();
        for entry in entries {
            bytes.extend_from_slice(&frame(entry));
        }
        {
            let mut file =
                File::create(&tmp).map_err(|e| LogError::io("create journal rewrite", &tmp, e))?;
            file.write_all(&bytes)
                .map_err(|e| LogError::io("write journal rewrite", &tmp, e))?;
            file.sync_all()
                .map_err(|e| LogError::io("sync journal rewrite", &tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| LogError::io("replace journal", &self.path, e))?;
        if let Some(parent) = self.path.parent() {
            sync_dir(parent)?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| LogError::io("open journal", &self.path, e))?;
        self.len = bytes.len() as u64;
        self.dirty = false;
        Ok(())
    }
}

/// Fsyncs a directory so a rename or creation in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("sync directory", dir, e))
}

fn frame(entry: &Entry) -> Vec<u8> {
    let payload = encode(entry);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes entries until the bytes end or an entry is torn; returns them and how many bytes
/// were valid. An entry whose checksum matches but which does not decode was written by a
/// different format, not torn: that is `Corrupt`, since truncating it would lose metadata.
fn decode_all(bytes: &[u8], path: &Path) -> Result<(Vec<Entry>, usize)> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        if len > MAX_ENTRY || bytes.len() - pos - 8 < len as usize {
            break;
        }
        let payload = &bytes[pos + 8..pos + 8 + len as usize];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let entry = decode(payload).ok_or_else(|| LogError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("journal entry at byte {pos} has a valid checksum but does not decode"),
        })?;
        entries.push(entry);
        pos += 8 + len as usize;
    }
    Ok((entries, pos))
}

fn encode(entry: &Entry) -> Vec<u8> {
    let mut w = Vec::new();
    match entry {
        Entry::TopicCreated { name } => {
            w.push(TAG_TOPIC_CREATED);
            put_str(&mut w, name);
        }
        Entry::TopicDeleted { name } => {
            w.push(TAG_TOPIC_DELETED);
            put_str(&mut w, name);
        }
        Entry::OffsetCommit { group, offsets } => {
            w.push(TAG_OFFSET_COMMIT);
            put_str(&mut w, group);
            w.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
            for (tp, offset) in offsets {
                put_tp(&mut w, tp);
                w.extend_from_slice(&offset.to_le_bytes());
            }
        }
        Entry::TxnCommit { txn_id, offsets } => {
            w.push(TAG_TXN_COMMIT);
            w.extend_from_slice(&txn_id.to_le_bytes());
            w.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
            for (group, tp, offset) in offsets {
                put_str(&mut w, group);
                put_tp(&mut w, tp);
                w.extend_from_slice(&offset.to_le_bytes());
            }
        }
        Entry::ProducerEpoch {
            transactional_id,
            epoch,
        } => {
            w.push(TAG_PRODUCER_EPOCH);
            put_str(&mut w, transactional_id);
            w.extend_from_slice(&epoch.to_le_bytes());
        }
        Entry::TxnIdFloor { txn_id } => {
            w.push(TAG_TXN_ID_FLOOR);
            w.extend_from_slice(&txn_id.to_le_bytes());
        }
    }
    w
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u32).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_tp(w: &mut Vec<u8>, tp: &TopicPartition) {
    put_str(w, &tp.topic);
    w.extend_from_slice(&tp.partition.to_le_bytes());
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn tp(&mut self) -> Option<TopicPartition> {
        let topic = self.string()?;
        Some(TopicPartition::new(topic, self.i32()?))
    }
}

fn decode(payload: &[u8]) -> Option<Entry> {
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
        TAG_TXN_COMMIT => {
            let txn_id = r.u64()?;
            let n = r.u32()?;
            let mut offsets = Vec::new();
            for _ in 0..n {
                let group = r.string()?;
                let tp = r.tp()?;
                offsets.push((group, tp, r.i64()?));
            }
            Entry::TxnCommit { txn_id, offsets }
        }
        TAG_PRODUCER_EPOCH => Entry::ProducerEpoch {
            transactional_id: r.string()?,
            epoch: r.i32()?,
        },
        TAG_TXN_ID_FLOOR => Entry::TxnIdFloor { txn_id: r.u64()? },
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
            },
            Entry::ProducerEpoch {
                transactional_id: "t".into(),
                epoch: 3,
            },
            Entry::TxnIdFloor { txn_id: 7 },
            Entry::TopicDeleted { name: "a".into() },
        ]
    }

    #[test]
    fn entries_round_trip_and_torn_tail_is_truncated() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("meta/journal");
        {
            let (mut journal, entries) = Journal::open(&path)?;
            assert!(entries.is_empty());
            for entry in sample() {
                journal.append(&entry, true)?;
            }
        }
        let good_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // A torn append: a header promising more bytes than follow.
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        file.write_all(&[50, 0, 0, 0, 1, 2, 3, 4, 9])
            .map_err(|e| LogError::io("write", &path, e))?;
        drop(file);
        let (journal, entries) = Journal::open(&path)?;
        assert_eq!(entries, sample());
        assert_eq!(journal.len(), good_len);
        Ok(())
    }

    #[test]
    fn bad_checksum_stops_replay() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("journal");
        {
            let (mut journal, _) = Journal::open(&path)?;
            for entry in sample() {
                journal.append(&entry, false)?;
            }
            journal.sync()?;
        }
        let mut bytes = std::fs::read(&path).map_err(|e| LogError::io("read", &path, e))?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).map_err(|e| LogError::io("write", &path, e))?;
        let (_, entries) = Journal::open(&path)?;
        assert_eq!(entries, sample()[..sample().len() - 1].to_vec());
        Ok(())
    }

    #[test]
    fn rewrite_replaces_contents() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LogError::io("tempdir", "/tmp", e))?;
        let path = dir.path().join("journal");
        let (mut journal, _) = Journal::open(&path)?;
        for entry in sample() {
            journal.append(&entry, false)?;
        }
        journal.rewrite(&sample()[..2])?;
        journal.append(&sample()[3], true)?;
        drop(journal);
        let (_, entries) = Journal::open(&path)?;
        assert_eq!(
            entries,
            vec![
                sample()[0].clone(),
                sample()[1].clone(),
                sample()[3].clone()
            ]
        );
        Ok(())
    }
}
