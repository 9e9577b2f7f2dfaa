//! [`EmbeddedLog`]: opening (lock, journal replay, partition recovery, threads) and closing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};
use rill_log::{
    Admin, Consumer, ConsumerConfig, Log, LogError, Producer, ProducerConfig, RebalanceListener,
    Result, TransactionalProducer,
};

use super::cleaner;
use super::config::EmbeddedConfig;
use super::consumer::EmbeddedConsumer;
use super::flusher::{self, FlushQueue};
use super::journal::{Entry, Journal};
use super::lock::DirLock;
use super::producer::EmbeddedProducer;
use super::state::{Inner, Meta, Notifier};
use super::syncer::SyncPool;
use super::topics::{Topic, read_topic_file, remove_topic_dir, topics_dir};
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
    /// Every transaction id at or below this is committed or gone from the partitions.
    txn_floor: u64,
    max_txn_id: u64,
}

fn replay(entries: Vec<Entry>) -> Replayed {
    let mut r = Replayed::default();
    for entry in entries {
        match entry {
            Entry::TopicCreated { name } => {
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
            Entry::TxnCommit { txn_id, offsets } => {
                r.committed_txns.insert(txn_id);
                r.max_txn_id = r.max_txn_id.max(txn_id);
                for (group, tp, offset) in offsets {
                    r.offsets.entry(group).or_default().insert(tp, offset);
                }
            }
            Entry::ProducerEpoch {
                transactional_id,
                epoch,
            } => {
                r.epochs.insert(transactional_id, epoch);
            }
            Entry::TxnIdFloor { txn_id } => {
                r.txn_floor = r.txn_floor.max(txn_id);
                r.max_txn_id = r.max_txn_id.max(txn_id);
            }
        }
    }
    r
}

impl EmbeddedLog {
    /// Opens (creating) the log in `config.data_dir`: locks the directory, replays the
    /// journal, recovers every partition (truncating torn tails and uncommitted transactions)
    /// and starts the flusher and cleaner threads.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedLog> {
        let data_dir = config.data_dir.clone();
        let dir_lock = DirLock::acquire(&data_dir)?;
        let (mut journal, entries) = Journal::open(&data_dir.join("meta").join("journal"))?;
        let entry_count = entries.len();
        let replayed = replay(entries);

        let next_uid = AtomicU64::new(1);
        let uid = || next_uid.fetch_add(1, Ordering::Relaxed);
        let tdir = topics_dir(&data_dir);
        std::fs::create_dir_all(&tdir)
            .map_err(|e| LogError::io("create topics directory", &tdir, e))?;
        let txn_committed =
            |id: u64| id <= replayed.txn_floor || replayed.committed_txns.contains(&id);
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

        let next_txn_id = replayed.max_txn_id + 1;
        // Partitions are recovered now, so every transaction id up to here is committed or was
        // truncated: a snapshot can drop the individual commits and keep a floor.
        if journal.len() > JOURNAL_REWRITE_BYTES {
            let snapshot = snapshot(&replayed, next_txn_id - 1);
            if snapshot.len() < entry_count {
                journal.rewrite(&snapshot)?;
            }
        }

        let inner = Arc::new(Inner {
            config,
            topics: RwLock::new(topics),
            meta: Mutex::new(Meta {
                journal,
                offsets: replayed.offsets,
                epochs: replayed.epochs,
                next_txn_id,
            }),
            txn_locks: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            flush: FlushQueue::default(),
            syncer: SyncPool::default(),
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

    /// Test support: the next transaction commit writes and fsyncs its batches, then fails
    /// just before its commit point (the journal entry), as if the process died there.
    #[doc(hidden)]
    pub fn fail_next_txn_commit_for_test(&self) {
        self.inner
            .fail_before_commit_point
            .store(true, Ordering::Release);
    }
}

/// The journal's state as a minimal list of entries.
fn snapshot(r: &Replayed, txn_floor: u64) -> Vec<Entry> {
    let mut entries: Vec<Entry> = r
        .live
        .iter()
        .map(|name| Entry::TopicCreated { name: name.clone() })
        .collect();
    entries.extend(r.epochs.iter().map(|(id, epoch)| Entry::ProducerEpoch {
        transactional_id: id.clone(),
        epoch: *epoch,
    }));
    for (group, offsets) in &r.offsets {
        let mut offsets: Vec<_> = offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        offsets.sort();
        entries.push(Entry::OffsetCommit {
            group: group.clone(),
            offsets,
        });
    }
    entries.push(Entry::TxnIdFloor { txn_id: txn_floor });
    entries
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
    use rill_log::TopicPartition;

    use super::*;

    #[test]
    fn a_snapshot_replays_to_the_same_state() {
        let tp = |t: &str, p| TopicPartition::new(t, p);
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
            },
            Entry::ProducerEpoch {
                transactional_id: "t".into(),
                epoch: 2,
            },
            Entry::TopicDeleted { name: "b".into() },
            Entry::TxnCommit {
                txn_id: 7,
                offsets: vec![],
            },
        ];
        let before = replay(entries);
        assert_eq!(before.max_txn_id, 7);
        let after = replay(snapshot(&before, before.max_txn_id));
        assert_eq!(after.live, before.live);
        assert_eq!(after.offsets, before.offsets);
        assert_eq!(after.epochs, before.epochs);
        assert_eq!(after.max_txn_id, 7);
        assert_eq!(after.txn_floor, 7);
        assert!(after.committed_txns.is_empty());
        // The deleted topic's offsets went with it.
        assert_eq!(
            after.offsets.get("g").map(|o| o.len()),
            Some(1),
            "{:?}",
            after.offsets
        );
    }
}
