//! State shared by an [`EmbeddedLog`](crate::EmbeddedLog) and every client it hands out.
//!
//! Lock order (outer first), so no two paths can deadlock: a transactional id's commit lock,
//! then partition append locks (sorted by topic-partition), then a group's state, then the
//! topic map, then `meta`. The flush queue, the notifier, the pending offsets and the journal's
//! group-commit state are leaves. Nothing holds a partition append lock or `meta` across a
//! journal fsync shared with other commits ([`Inner::wait_durable`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};
use rill_log::{LogError, Offset, Result, TopicPartition};

use super::config::{EmbeddedConfig, FsyncPolicy};
use super::flusher::FlushQueue;
use super::group::Group;
use super::journal::{Durability, Entry, Journal};
use super::lock::DirLock;
use super::topics::{Partition, Topic};

/// Metadata rebuilt from the journal, guarded together with it so an entry and the state it
/// describes change as one.
pub(crate) struct Meta {
    pub journal: Journal,
    /// Committed offsets per group.
    pub offsets: HashMap<String, HashMap<TopicPartition, Offset>>,
    /// The lsn of the journal entry that set each committed offset in this run. Commits apply
    /// their offsets once their entry is durable, which may be after a later commit's: an
    /// older entry never overwrites a newer one.
    pub offset_lsns: HashMap<(String, TopicPartition), u64>,
    /// Current epoch per transactional id.
    pub epochs: HashMap<String, i32>,
    /// The next transaction id to hand out (ids start at 1; 0 means "not transactional").
    pub next_txn_id: u64,
    /// Transaction ids handed out whose `TxnCommit` was not appended: open, or failed with
    /// batches left at partition tails. A rewrite's `TxnIdFloor` lists them as not committed.
    pub open_txns: BTreeSet<u64>,
    /// Partitions with batches journaled since the last checkpoint: what it must fsync.
    pub dirty: HashMap<u64, Arc<Partition>>,
    /// Bytes of batches journaled since the last checkpoint.
    pub data_bytes: u64,
    /// Bytes of batches journaled since the cleaner thread was last asked to write back.
    pub writeback_bytes: u64,
}

impl Meta {
    /// Sets a committed offset from the entry at `lsn`, unless a later entry set it already.
    pub(crate) fn apply_offset(
        &mut self,
        group: &str,
        tp: &TopicPartition,
        offset: Offset,
        lsn: u64,
    ) {
        let key = (group.to_string(), tp.clone());
        let newest = self.offset_lsns.entry(key).or_default();
        if *newest > lsn {
            return;
        }
        *newest = lsn;
        self.offsets
            .entry(group.to_string())
            .or_default()
            .insert(tp.clone(), offset);
    }

    /// The journal's state as a minimal list of entries: the live topics (`topics`), epochs,
    /// offsets and a transaction id floor. Replayed before entries appended after it, it gives
    /// the same state as the entries it replaces.
    pub(crate) fn snapshot<'a>(&self, topics: impl Iterator<Item = &'a String>) -> Vec<Entry> {
        let mut entries: Vec<Entry> = topics
            .map(|name| Entry::TopicCreated { name: name.clone() })
            .collect();
        let mut epochs: Vec<_> = self.epochs.iter().collect();
        epochs.sort();
        entries.extend(epochs.into_iter().map(|(id, epoch)| Entry::ProducerEpoch {
            transactional_id: id.clone(),
            epoch: *epoch,
        }));
        let mut groups: Vec<_> = self.offsets.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        for (group, offsets) in groups {
            let mut offsets: Vec<_> = offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
            offsets.sort();
            entries.push(Entry::OffsetCommit {
                group: group.clone(),
                offsets,
            });
        }
        entries.push(Entry::TxnIdFloor {
            txn_id: self.next_txn_id - 1,
            open: self.open_txns.iter().copied().collect(),
        });
        entries
    }
}

/// One consumer's wake-up: a sequence bumped by the [`Notifier`] and a condvar to wait on.
#[derive(Default)]
pub(crate) struct Wake {
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Wake {
    fn bump(&self) {
        *self.seq.lock() += 1;
        self.cv.notify_all();
    }

    /// The current sequence; read it before checking for work, then wait past it, so a change
    /// between the check and the wait is not missed.
    pub(crate) fn current(&self) -> u64 {
        *self.seq.lock()
    }

    /// Blocks until the sequence moves past `seen` or `deadline` passes.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Instant) {
        let mut seq = self.seq.lock();
        while *seq == seen {
            if self.cv.wait_until(&mut seq, deadline).timed_out() {
                return;
            }
        }
    }
}

/// A registered consumer: its wake-up and the topics whose records it reads.
struct Watcher {
    wake: Weak<Wake>,
    topics: Vec<String>,
}

/// Wakes consumers blocked in `poll` when something they may care about changed. Records
/// becoming visible wake only the consumers assigned a partition of their topic
/// ([`bump_topics`](Self::bump_topics)): with every service of a process on one log, waking
/// all consumers on every commit cost more CPU (in the kernel) than the processing itself.
/// Everything else (a group rebalanced, a partition was released, a topic came or went, the
/// log closed) wakes them all ([`bump`](Self::bump)).
#[derive(Default)]
pub(crate) struct Notifier {
    watchers: Mutex<Vec<Watcher>>,
}

impl Notifier {
    /// Registers a consumer, interested in no topic yet (global changes still wake it).
    pub(crate) fn register(&self) -> Arc<Wake> {
        let wake = Arc::new(Wake::default());
        let mut watchers = self.watchers.lock();
        watchers.retain(|w| w.wake.strong_count() > 0);
        watchers.push(Watcher {
            wake: Arc::downgrade(&wake),
            topics: Vec::new(),
        });
        wake
    }

    /// Sets the topics whose records wake `wake` (sorted, without duplicates). Call before
    /// reading those topics, so that no record made visible after the read goes unnoticed.
    pub(crate) fn set_topics(&self, wake: &Arc<Wake>, topics: Vec<String>) {
        let target = Arc::downgrade(wake);
        if let Some(watcher) = self
            .watchers
            .lock()
            .iter_mut()
            .find(|w| w.wake.ptr_eq(&target))
        {
            watcher.topics = topics;
        }
    }

    /// Wakes every consumer.
    pub(crate) fn bump(&self) {
        for watcher in self.watchers.lock().iter() {
            if let Some(wake) = watcher.wake.upgrade() {
                wake.bump();
            }
        }
    }

    /// Records of `topics` became visible: wakes the consumers reading any of them.
    pub(crate) fn bump_topics<'a>(&self, topics: impl Iterator<Item = &'a str> + Clone) {
        for watcher in self.watchers.lock().iter() {
            let wanted = topics.clone().any(|topic| {
                watcher
                    .topics
                    .binary_search_by(|t| t.as_str().cmp(topic))
                    .is_ok()
            });
            if wanted && let Some(wake) = watcher.wake.upgrade() {
                wake.bump();
            }
        }
    }
}

/// What the log keeps per transactional id besides the journal's epochs.
#[derive(Default)]
pub(crate) struct TxnIdState {
    /// Held by the id across its commit and by the creation of a producer with the same id, so
    /// fencing cannot slip between a commit's epoch check and its commit point.
    pub lock: Mutex<()>,
    /// The epoch of the newest producer with this id (a copy of `Meta::epochs`' entry, set
    /// under `lock`), so that a send checks for fencing without taking the `meta` lock, which
    /// every commit takes to append to the journal.
    pub epoch: AtomicI32,
}

/// Everything an open log shares with its threads and clients.
pub(crate) struct Inner {
    pub config: EmbeddedConfig,
    pub topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    pub meta: Mutex<Meta>,
    /// Per transactional id: the lock and current epoch (see [`TxnIdState`]).
    pub txn_locks: Mutex<HashMap<String, Arc<TxnIdState>>>,
    pub groups: Mutex<HashMap<String, Arc<Group>>>,
    pub flush: FlushQueue,
    /// The journal's group commit (shared with `meta.journal`, waited on without its lock).
    pub durability: Arc<Durability>,
    /// Set when the journal holds `checkpoint_bytes` of batches; the cleaner thread then runs
    /// a checkpoint.
    pub checkpoint_due: AtomicBool,
    /// Set when enough batches were journaled since the last writeback; the cleaner thread
    /// then fsyncs the partitions holding `writeback_bytes` unsynced (`checkpoint::write_back`).
    pub writeback_due: AtomicBool,
    pub notifier: Notifier,
    pub closed: AtomicBool,
    /// Distinguishes partitions of a topic deleted and re-created under the same name.
    pub next_uid: AtomicU64,
    pub dir_lock: Mutex<Option<DirLock>>,
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// Set to stop the cleaner; its condvar wakes it early.
    pub cleaner_stop: Mutex<bool>,
    pub cleaner_cv: Condvar,
    /// Test hook: the next transaction commit stops just before its commit point.
    pub fail_before_commit_point: AtomicBool,
    /// Offsets sent in transactions still open, counted per group and partition (see
    /// [`PendingOffset`]); `committed` waits for them to end, as Kafka's read-committed
    /// consumers do (KIP-447).
    pub pending_offsets: Mutex<HashMap<(String, TopicPartition), usize>>,
    /// Signalled whenever a pending offset ends.
    pub offsets_settled: Condvar,
}

/// How long `committed` waits for open transactions holding the asked offsets.
pub(crate) const STABLE_OFFSETS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An offset of an open transaction, counted in [`Inner::pending_offsets`] until the
/// transaction ends in any way (commit, abort, fencing, a dropped producer), when this is
/// dropped. A commit drops it only after the offset is applied.
pub(crate) struct PendingOffset {
    inner: Arc<Inner>,
    key: (String, TopicPartition),
}

impl PendingOffset {
    pub(crate) fn new(inner: &Arc<Inner>, group: &str, partition: &TopicPartition) -> Self {
        let key = (group.to_string(), partition.clone());
        *inner.pending_offsets.lock().entry(key.clone()).or_default() += 1;
        PendingOffset {
            inner: inner.clone(),
            key,
        }
    }
}

impl Drop for PendingOffset {
    fn drop(&mut self) {
        let mut pending = self.inner.pending_offsets.lock();
        if let Some(count) = pending.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                pending.remove(&self.key);
            }
        }
        drop(pending);
        self.inner.offsets_settled.notify_all();
    }
}

impl Inner {
    /// Waits until no open transaction holds offsets of `group` for `partitions`, so that
    /// the offsets read next are the ones a new owner must resume from.
    pub(crate) fn await_stable_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        timeout: std::time::Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending = self.pending_offsets.lock();
        while partitions
            .iter()
            .any(|tp| pending.contains_key(&(group.to_string(), tp.clone())))
        {
            if self
                .offsets_settled
                .wait_until(&mut pending, deadline)
                .timed_out()
            {
                return Err(LogError::Timeout {
                    operation: "committed (offsets held by an open transaction)",
                    after: timeout,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(LogError::Closed { what: "log" })
        } else {
            Ok(())
        }
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    pub(crate) fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>> {
        self.topic(&tp.topic)?.partition(tp.partition)
    }

    /// The group's coordinator, created on first use.
    pub(crate) fn group(&self, id: &str) -> Arc<Group> {
        self.groups
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Group::new(id)))
            .clone()
    }

    /// The group's coordinator if it exists.
    pub(crate) fn existing_group(&self, id: &str) -> Option<Arc<Group>> {
        self.groups.lock().get(id).cloned()
    }

    pub(crate) fn txn_id_state(&self, transactional_id: &str) -> Arc<TxnIdState> {
        self.txn_locks
            .lock()
            .entry(transactional_id.to_string())
            .or_default()
            .clone()
    }

    /// Whether metadata writes that are not commit points are fsynced at once.
    pub(crate) fn sync_metadata_now(&self) -> bool {
        matches!(self.config.fsync, FsyncPolicy::Always)
    }

    /// Records committed offsets for `group` in the journal and, once durable per the fsync
    /// policy, in memory.
    pub(crate) fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let lsn = self.meta.lock().journal.append(&Entry::OffsetCommit {
            group: group.to_string(),
            offsets: offsets.to_vec(),
        })?;
        if self.sync_metadata_now() {
            self.wait_durable(lsn)?;
        }
        let mut meta = self.meta.lock();
        for (tp, offset) in offsets {
            meta.apply_offset(group, tp, *offset, lsn);
        }
        Ok(())
    }

    /// Returns once the journal is durable up to `lsn`, sharing one fsync with every commit
    /// waiting at the same time (see [`Durability::wait`]).
    pub(crate) fn wait_durable(&self, lsn: u64) -> Result<()> {
        self.durability
            .wait(lsn, || self.meta.lock().journal.sync_target())
    }

    /// Fsyncs every journal entry appended so far (the `Interval` policy's tick).
    pub(crate) fn sync_journal(&self) -> Result<()> {
        let lsn = self.meta.lock().journal.written();
        self.wait_durable(lsn)
    }

    /// Appends an entry carrying batches just written to `partitions` (under their append
    /// locks, so each partition's batches are journaled in the order they were written) and
    /// returns its lsn. `txn_id`, when not 0, is the transaction this entry commits. Asks for a
    /// checkpoint once enough batches are journaled.
    pub(crate) fn journal_batches(
        &self,
        entry: &Entry,
        partitions: &[&Arc<Partition>],
        txn_id: u64,
    ) -> Result<u64> {
        let mut meta = self.meta.lock();
        let lsn = meta.journal.append(entry)?;
        meta.open_txns.remove(&txn_id);
        meta.data_bytes += entry.data_bytes();
        for partition in partitions {
            meta.dirty
                .entry(partition.uid)
                .or_insert_with(|| Arc::clone(partition));
        }
        let due = meta.data_bytes >= self.config.checkpoint_bytes;
        // A partition cannot reach `writeback_bytes` unsynced before this many are journaled.
        meta.writeback_bytes += entry.data_bytes();
        let write_back =
            self.config.writeback_bytes > 0 && meta.writeback_bytes >= self.config.writeback_bytes;
        if write_back {
            meta.writeback_bytes = 0;
        }
        drop(meta);
        let wake = (due && !self.checkpoint_due.swap(true, Ordering::AcqRel))
            | (write_back && !self.writeback_due.swap(true, Ordering::AcqRel));
        if wake {
            // Under the cleaner's lock, so the wake-up cannot slip between its check and wait.
            let _stop = self.cleaner_stop.lock();
            self.cleaner_cv.notify_all();
        }
        Ok(lsn)
    }

    pub(crate) fn committed_offset(&self, group: &str, tp: &TopicPartition) -> Option<Offset> {
        self.meta
            .lock()
            .offsets
            .get(group)
            .and_then(|offsets| offsets.get(tp))
            .copied()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
