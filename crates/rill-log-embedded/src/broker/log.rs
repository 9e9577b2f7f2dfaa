//! [`EmbeddedLog`]: opening (lock, journal replay, partition recovery, threads) and closing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};
use rill_log::{
    Admin, Consumer, ConsumerConfig, Log, LogError, Producer, ProducerConfig, RebalanceListener,
    Result, TransactionalProducer,
};

use super::checkpoint;
use super::cleaner;
use super::config::EmbeddedConfig;
use super::consumer::EmbeddedConsumer;
use super::flusher::{self, FlushQueue};
use super::journal::{self, Entry, Journal, JournalBatch};
use super::lock::DirLock;
use super::producer::EmbeddedProducer;
use super::state::{Inner, Meta, Notifier};
use super::topics::{Partition, Topic, read_topic_file, remove_topic_dir, topics_dir};
use super::txn::EmbeddedTxnProducer;

/// A journal longer than this is rewritten as a snapshot at open.
const JOURNAL_REWRITE_BYTES: u64 = 4 << 20;

/// The embedded durable log: topics in one data directory, used in process.
///
/// Open it once per directory (a second open, from this process or another, fails with
/// [`LogError::DirectoryLocked`]), hand out clients through [`Log`], and [`close`](Self::close)
/// it (dropping it closes it too, best-effort).
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// What replaying the journal yields.
#[derive(Default)]
struct Replayed {
    live: BTreeSet<String>,
    offsets: HashMap<String, HashMap<rill_log::TopicPartition, rill_log::Offset>>,
    epochs: HashMap<String, i32>,
    committed_txns: HashSet<u64>,
    /// Every transaction id at or below this is committed or gone from the partitions...
    txn_floor: u64,
    /// ...except these, which had not committed when the floor was written.
    txn_open: HashSet<u64>,
    max_txn_id: u64,
    /// Journaled batches of live topics, in journal order (those of a deleted topic, or of an
    /// earlier topic of the same name, are left out).
    batches: Vec<JournalBatch>,
}

impl Replayed {
    fn txn_committed(&self, id: u64) -> bool {
        self.committed_txns.contains(&id) || (id <= self.txn_floor && !self.txn_open.contains(&id))
    }
}

fn replay(entries: Vec<Entry>) -> Replayed {
    let mut r = Replayed::default();
    // Each creation of a name starts a new topic; batches belong to the one they followed.
    let mut incarnation: HashMap<String, u64> = HashMap::new();
    let mut batches: Vec<(u64, JournalBatch)> = Vec::new();
    let mut keep = |incarnation: &HashMap<String, u64>, list: Vec<JournalBatch>| {
        for batch in list {
            let of = incarnation.get(&batch.tp.topic).copied().unwrap_or(0);
            batches.push((of, batch));
        }
    };
    for entry in entries {
        match entry {
            Entry::TopicCreated { name } => {
                *incarnation.entry(name.clone()).or_default() += 1;
                r.live.insert(name);
            }
            Entry::TopicDeleted { name } => {
                r.live.remove(&name);
                for offsets in r.offsets.values_mut() {
                    offsets.retain(|tp, _| tp.topic != name);
                }
            }
            Entry::OffsetCommit { group, offsets } => {
                let committed = r.offsets.entry(group).or_default();
                committed.extend(offsets);
            }
            Entry::TxnCommit {
                txn_id,
                offsets,
                batches,
            } => {
                r.committed_txns.insert(txn_id);
                r.max_txn_id = r.max_txn_id.max(txn_id);
                for (group, tp, offset) in offsets {
                    r.offsets.entry(group).or_default().insert(tp, offset);
                }
                keep(&incarnation, batches);
            }
            Entry::Appended { batches } => keep(&incarnation, batches),
            Entry::ProducerEpoch {
                transactional_id,
                epoch,
            } => {
                r.epochs.insert(transactional_id, epoch);
            }
            Entry::TxnIdFloor { txn_id, open } => {
                r.txn_floor = r.txn_floor.max(txn_id);
                r.max_txn_id = r.max_txn_id.max(txn_id);
                // A later floor knows better which ids are still open.
                r.txn_open = open.into_iter().collect();
            }
        }
    }
    r.batches = batches
        .into_iter()
        .filter(|(of, batch)| {
            r.live.contains(&batch.tp.topic)
                && incarnation.get(&batch.tp.topic).copied().unwrap_or(0) == *of
        })
        .map(|(_, batch)| batch)
        .collect();
    r
}

/// Re-appends the journaled batches a power loss took from the partitions (see
/// [`PartitionLog::replay_journaled`](crate::storage::PartitionLog::replay_journaled)) and
/// returns the partitions the journal names, which must be fsynced before it drops them.
fn replay_batches(
    topics: &BTreeMap<String, Arc<Topic>>,
    batches: &[JournalBatch],
) -> Result<Vec<Arc<Partition>>> {
    let mut named: BTreeMap<rill_log::TopicPartition, Arc<Partition>> = BTreeMap::new();
    let mut appended = 0u64;
    for batch in batches {
        let partition = match named.get(&batch.tp) {
            Some(p) => Arc::clone(p),
            None => {
                // Only batches of live topics are replayed, and every live topic is open.
                let topic = topics
                    .get(&batch.tp.topic)
                    .ok_or_else(|| LogError::UnknownTopic {
                        topic: batch.tp.topic.clone(),
                    })?;
                let p = topic.partition(batch.tp.partition)?;
                named.insert(batch.tp.clone(), Arc::clone(&p));
                p
            }
        };
        appended += u64::from(partition.log.replay_journaled(&batch.bytes)?);
    }
    for partition in named.values() {
        partition.advance_visible(partition.log.end_offset());
    }
    if appended > 0 {
        tracing::info!(
            batches = appended,
            partitions = named.len(),
            "re-appended batches from the journal"
        );
    }
    Ok(named.into_values().collect())
}

impl EmbeddedLog {
    /// Opens (creating) the log in `config.data_dir`: locks the directory, replays the
    /// journal, recovers every partition (truncating torn tails and uncommitted transactions)
    /// and starts the flusher and cleaner threads.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedLog> {
        let data_dir = config.data_dir.clone();
        let dir_lock = DirLock::acquire(&data_dir)?;
        let (journal, entries) = Journal::open(&data_dir.join("meta").join("journal"))?;
        let entry_count = entries.len();
        let replayed = replay(entries);

        let next_uid = AtomicU64::new(1);
        let uid = || next_uid.fetch_add(1, Ordering::Relaxed);
        let tdir = topics_dir(&data_dir);
        std::fs::create_dir_all(&tdir)
            .map_err(|e| LogError::io("create topics directory", &tdir, e))?;
        let txn_committed = |id: u64| replayed.txn_committed(id);
        let mut topics = BTreeMap::new();
        let listing =
            std::fs::read_dir(&tdir).map_err(|e| LogError::io("list topics", &tdir, e))?;
        for dirent in listing {
            let dirent = dirent.map_err(|e| LogError::io("list topics", &tdir, e))?;
            let name = dirent.file_name().to_string_lossy().into_owned();
            let path = dirent.path();
            if !replayed.live.contains(&name) {
                // Deleted (the journal says so) or never committed: nothing to keep.
                tracing::info!(topic = name, "removing leftover topic directory");
                remove_topic_dir(&path)?;
                continue;
            }
            let topic_config = read_topic_file(&path)?;
            let topic = Topic::open(
                &uid,
                &path,
                &name,
                topic_config,
                config.segment_bytes,
                config.index_interval_bytes,
                &txn_committed,
            )?;
            topics.insert(name, Arc::new(topic));
        }
        if let Some(missing) = replayed.live.iter().find(|t| !topics.contains_key(*t)) {
            return Err(LogError::Corrupt {
                path: tdir.join(missing),
                reason: "the journal lists this topic but its directory is missing".into(),
            });
        }

        // Partitions hold what survived; the journal puts back what a power loss took.
        let journaled = replay_batches(&topics, &replayed.batches)?;

        let next_txn_id = replayed.max_txn_id + 1;
        let durability = Arc::clone(journal.durability());
        let mut meta = Meta {
            journal,
            offsets: replayed.offsets,
            offset_lsns: HashMap::new(),
            epochs: replayed.epochs,
            next_txn_id,
            open_txns: BTreeSet::new(),
            dirty: HashMap::new(),
            data_bytes: 0,
            writeback_bytes: 0,
        };
        // Partitions are recovered now, so every transaction id up to here is committed or was
        // truncated: a snapshot can drop the individual commits and keep a floor. Batches go
        // too once the partitions they went to are fsynced (a checkpoint).
        if !journaled.is_empty() || meta.journal.len() > JOURNAL_REWRITE_BYTES {
            for partition in &journaled {
                partition.log.sync()?;
            }
            let snapshot = meta.snapshot(topics.keys());
            if journaled.is_empty() && snapshot.len() >= entry_count {
                // Nothing to gain.
            } else {
                let len = meta.journal.len();
                journal::retire(meta.journal.rewrite(&snapshot, len)?);
            }
        }

        let inner = Arc::new(Inner {
            config,
            topics: RwLock::new(topics),
            meta: Mutex::new(meta),
            txn_locks: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            flush: FlushQueue::default(),
            durability,
            checkpoint_due: AtomicBool::new(false),
            writeback_due: AtomicBool::new(false),
            notifier: Notifier::default(),
            closed: AtomicBool::new(false),
            next_uid: AtomicU64::new(next_uid.load(Ordering::Relaxed)),
            dir_lock: Mutex::new(Some(dir_lock)),
            threads: Mutex::new(Vec::new()),
            cleaner_stop: Mutex::new(false),
            cleaner_cv: Condvar::new(),
            fail_before_commit_point: AtomicBool::new(false),
            pending_offsets: Mutex::new(HashMap::new()),
            offsets_settled: Condvar::new(),
        });
        let log = EmbeddedLog { inner };
        log.spawn("rill-log-flusher", flusher::run)?;
        log.spawn("rill-log-cleaner", cleaner::run)?;
        tracing::info!(data_dir = %data_dir.display(), "opened embedded log");
        Ok(log)
    }

    fn spawn(&self, name: &str, body: fn(Arc<Inner>)) -> Result<()> {
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(inner))
            .map_err(|e| LogError::io("spawn thread", &self.inner.config.data_dir, e))?;
        self.inner.threads.lock().push(handle);
        Ok(())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.config.data_dir
    }

    /// Bytes on disk of every partition of every topic.
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.log.size_bytes())
            .sum()
    }

    /// Closes the log: stops the threads (queued records are written and acknowledged
    /// first), fsyncs and closes every partition with a clean-shutdown marker, and releases the
    /// directory. Clients fail with `LogError::Closed` afterwards. Calling it again is a no-op.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_threads(false);
        let mut first_err = None;
        for topic in self.inner.topics.read().values() {
            if let Err(err) = topic.close() {
                first_err.get_or_insert(err);
            }
        }
        if let Err(err) = self.inner.meta.lock().journal.sync() {
            first_err.get_or_insert(err);
        }
        self.inner.dir_lock.lock().take();
        tracing::info!(data_dir = %self.inner.config.data_dir.display(), "closed embedded log");
        first_err.map_or(Ok(()), Err)
    }

    fn stop_threads(&self, abandon: bool) {
        if abandon {
            self.inner.flush.abandon();
        } else {
            self.inner.flush.stop();
        }
        *self.inner.cleaner_stop.lock() = true;
        self.inner.cleaner_cv.notify_all();
        let threads = std::mem::take(&mut *self.inner.threads.lock());
        for handle in threads {
            if handle.join().is_err() {
                tracing::error!("a log thread panicked");
            }
        }
        // Consumers blocked in poll see the log closed.
        self.inner.notifier.bump();
    }

    /// Runs one retention and compaction pass over every partition now (the cleaner thread
    /// does this every `cleaner_interval`).
    pub fn run_cleaner_now(&self) -> Result<()> {
        self.inner.check_open()?;
        cleaner::clean_once(&self.inner).map(|_| ())
    }

    /// Test support: stops as a crash would. Threads stop without draining their queues,
    /// partitions are dropped without clean-shutdown markers, the journal is not synced beyond
    /// what was, and the directory lock is released so the same process can reopen and recover.
    #[doc(hidden)]
    pub fn crash_for_test(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop_threads(true);
        self.inner.topics.write().clear();
        self.inner.dir_lock.lock().take();
    }

    /// Test support: stops as a power loss would. Like [`crash_for_test`](Self::crash_for_test),
    /// then every partition's active segment and the journal are cut back to the bytes known
    /// durable (fsynced): what the page cache held is gone. Call it with no commit in flight.
    #[doc(hidden)]
    pub fn power_loss_for_test(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.inner.topics.read().values().cloned().collect();
        self.crash_for_test();
        let mut files: Vec<_> = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.log.durable_len())
            .collect();
        files.push(self.inner.meta.lock().journal.durable_len());
        drop(topics);
        for (path, durable) in files {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| LogError::io("open", &path, e))?;
            let len = file
                .metadata()
                .map_err(|e| LogError::io("stat", &path, e))?
                .len();
            if len > durable {
                file.set_len(durable)
                    .map_err(|e| LogError::io("truncate", &path, e))?;
            }
        }
        Ok(())
    }

    /// Runs a checkpoint now (the cleaner thread runs one whenever the journal holds
    /// `checkpoint_bytes` of batches): fsyncs every partition written since the last one and
    /// rewrites the journal without their batches. Returns the journal's size in bytes after.
    pub fn checkpoint_now(&self) -> Result<u64> {
        self.inner.check_open()?;
        checkpoint::run(&self.inner).map(|stats| stats.journal_after)
    }

    /// Test support: fsyncs every partition written since the last checkpoint, as the cleaner
    /// thread's writebacks do between checkpoints, without checkpointing (the journal keeps
    /// their batches). Returns how many partitions were synced.
    #[doc(hidden)]
    pub fn write_back_for_test(&self) -> Result<usize> {
        self.inner.check_open()?;
        checkpoint::write_back_from(&self.inner, 1, 0)
    }

    /// Test support: bytes written to the partitions since the last checkpoint and not yet
    /// fsynced (what the cleaner thread's writebacks keep under `writeback_bytes`).
    #[doc(hidden)]
    pub fn unsynced_bytes_for_test(&self) -> u64 {
        let dirty: Vec<_> = self.inner.meta.lock().dirty.values().cloned().collect();
        dirty.iter().map(|p| p.log.unsynced_bytes()).sum()
    }

    /// Bytes of entries in the journal (`meta/journal`): it shrinks at each checkpoint.
    pub fn journal_bytes(&self) -> u64 {
        self.inner.meta.lock().journal.len()
    }

    /// Test support: the next transaction commit writes its batches, then fails just before
    /// its commit point (the journal entry), as if the process died there.
    #[doc(hidden)]
    pub fn fail_next_txn_commit_for_test(&self) {
        self.inner
            .fail_before_commit_point
            .store(true, Ordering::Release);
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            tracing::warn!(error = %err, "closing the embedded log on drop failed");
        }
    }
}

impl Log for EmbeddedLog {
    fn admin(&self) -> &dyn Admin {
        &*self.inner
    }

    fn producer(&self, _config: &ProducerConfig) -> Result<Box<dyn Producer>> {
        self.inner.check_open()?;
        Ok(Box::new(EmbeddedProducer::new(self.inner.clone())))
    }

    fn transactional_producer(
        &self,
        _config: &ProducerConfig,
        transactional_id: &str,
    ) -> Result<Box<dyn TransactionalProducer>> {
        Ok(Box::new(EmbeddedTxnProducer::new(
            self.inner.clone(),
            transactional_id,
        )?))
    }

    fn consumer(
        &self,
        config: &ConsumerConfig,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(EmbeddedConsumer::new(
            self.inner.clone(),
            config,
            listener,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rill_log::TopicPartition;

    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn batch(t: &str, base: i64) -> JournalBatch {
        JournalBatch {
            tp: tp(t, 0),
            base,
            bytes: Bytes::from(format!("{t}@{base}")),
        }
    }

    #[test]
    fn a_snapshot_replays_to_the_same_state() -> Result<()> {
        let entries = vec![
            Entry::TopicCreated { name: "a".into() },
            Entry::TopicCreated { name: "b".into() },
            Entry::OffsetCommit {
                group: "g".into(),
                offsets: vec![(tp("a", 0), 1), (tp("b", 0), 2)],
            },
            Entry::TxnCommit {
                txn_id: 4,
                offsets: vec![("g".into(), tp("a", 0), 9)],
                batches: vec![],
            },
            Entry::ProducerEpoch {
                transactional_id: "t".into(),
                epoch: 2,
            },
            Entry::TopicDeleted { name: "b".into() },
            Entry::TxnCommit {
                txn_id: 7,
                offsets: vec![],
                batches: vec![],
            },
        ];
        let before = replay(entries);
        assert_eq!(before.max_txn_id, 7);
        let dir = tempfile::tempdir().map_err(|e| LogError::io("tempdir", "/tmp", e))?;
        let (journal, _) = Journal::open(&dir.path().join("journal"))?;
        let meta = Meta {
            journal,
            offsets: before.offsets.clone(),
            offset_lsns: HashMap::new(),
            epochs: before.epochs.clone(),
            next_txn_id: before.max_txn_id + 1,
            // 5 never committed: a rewrite must not make it look committed.
            open_txns: [5].into_iter().collect(),
            dirty: HashMap::new(),
            data_bytes: 0,
            writeback_bytes: 0,
        };
        let after = replay(meta.snapshot(before.live.iter()));
        assert_eq!(after.live, before.live);
        assert_eq!(after.offsets, before.offsets);
        assert_eq!(after.epochs, before.epochs);
        assert_eq!(after.max_txn_id, 7);
        assert_eq!(after.txn_floor, 7);
        assert!(after.committed_txns.is_empty());
        assert!(after.txn_committed(4) && after.txn_committed(7));
        assert!(!after.txn_committed(5) && !after.txn_committed(8));
        // The deleted topic's offsets went with it.
        assert_eq!(
            after.offsets.get("g").map(|o| o.len()),
            Some(1),
            "{:?}",
            after.offsets
        );
        Ok(())
    }

    #[test]
    fn batches_of_deleted_topics_and_of_earlier_topics_of_the_same_name_are_not_replayed() {
        let r = replay(vec![
            Entry::TopicCreated { name: "a".into() },
            Entry::TopicCreated {
                name: "gone".into(),
            },
            Entry::Appended {
                batches: vec![batch("a", 0), batch("gone", 0)],
            },
            Entry::TopicDeleted { name: "a".into() },
            Entry::TopicDeleted {
                name: "gone".into(),
            },
            Entry::TopicCreated { name: "a".into() },
            Entry::TxnCommit {
                txn_id: 1,
                offsets: vec![],
                batches: vec![batch("a", 0)],
            },
            Entry::Appended {
                batches: vec![batch("a", 1)],
            },
        ]);
        let kept: Vec<_> = r.batches.iter().map(|b| b.bytes.clone()).collect();
        assert_eq!(kept, vec![Bytes::from("a@0"), Bytes::from("a@1")]);
    }

    #[test]
    fn a_later_commit_of_an_id_the_floor_lists_as_open_counts() {
        let r = replay(vec![
            Entry::TxnIdFloor {
                txn_id: 10,
                open: vec![8, 9],
            },
            Entry::TxnCommit {
                txn_id: 9,
                offsets: vec![],
                batches: vec![],
            },
        ]);
        assert!(r.txn_committed(7) && r.txn_committed(9) && r.txn_committed(10));
        assert!(!r.txn_committed(8));
        assert_eq!(r.max_txn_id, 10);
    }
}
