//! The transactional producer. Records and offsets are buffered in memory between `begin` and
//! `commit`; `commit` locks the touched partitions (sorted), appends one batch per partition
//! stamped with a fresh transaction id (not fsynced), appends one `TxnCommit` entry carrying
//! those batches and the offsets to the journal, releases the locks and waits for the journal
//! to be durable (the commit point: one fsync, shared with concurrent commits, whatever the
//! partitions), then applies the offsets and advances the visible ends. Until the commit point
//! nothing is visible; a crash before it leaves the batches at the partitions' tails, where
//! recovery truncates them, and a power loss after it is repaired from the journal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rill_log::{
    DeliveryFuture, DeliverySender, GroupMetadata, LogError, Offset, Producer, ProducerRecord,
    RecordMetadata, Result, TopicPartition, TransactionalProducer,
};

use super::journal::{Entry, JournalBatch};
use super::producer::route;
use super::state::{Inner, PendingOffset, TxnIdState};
use super::topics::Partition;
use crate::storage::StoredRecord;

/// A partition's records of the open transaction, and the deliveries of those not sent
/// detached (by index), kept apart so the records go to the log as they are.
type Buffered = (
    Arc<Partition>,
    Vec<StoredRecord>,
    Vec<(usize, DeliverySender)>,
);

#[derive(Default)]
struct OpenTxn {
    /// Sorted by partition: the order commit locks them in.
    records: BTreeMap<TopicPartition, Buffered>,
    offsets: BTreeMap<(String, TopicPartition), Offset>,
    /// One per entry of `offsets`: makes `committed` wait until this transaction ends.
    pending: Vec<PendingOffset>,
}

enum TxnState {
    Ready,
    Open(OpenTxn),
    /// The last commit failed (nothing of it is visible); `abort` or `begin` moves on.
    Failed,
    Fenced,
}

/// A producer writing in transactions, with an epoch that fences older producers of the same
/// transactional id.
pub(crate) struct EmbeddedTxnProducer {
    inner: Arc<Inner>,
    transactional_id: String,
    id_state: Arc<TxnIdState>,
    epoch: i32,
    round_robin: AtomicU32,
    state: Mutex<TxnState>,
}

impl EmbeddedTxnProducer {
    /// Registers a producer for `transactional_id`, bumping its epoch in the journal: from
    /// then on, older producers with this id are fenced.
    pub(crate) fn new(inner: Arc<Inner>, transactional_id: &str) -> Result<Self> {
        inner.check_open()?;
        if transactional_id.is_empty() {
            return Err(LogError::TransactionState {
                operation: "create a transactional producer",
                state: "the transactional id is empty",
            });
        }
        let id_state = inner.txn_id_state(transactional_id);
        // Waits for an in-flight commit of the old producer, which then lands before the fence.
        let id_guard = id_state.lock.lock();
        let epoch = {
            let mut meta = inner.meta.lock();
            let epoch = meta.epochs.get(transactional_id).map_or(0, |e| e + 1);
            meta.journal.append_synced(&Entry::ProducerEpoch {
                transactional_id: transactional_id.to_string(),
                epoch,
            })?;
            meta.epochs.insert(transactional_id.to_string(), epoch);
            id_state.epoch.store(epoch, Ordering::Release);
            epoch
        };
        drop(id_guard);
        Ok(Self {
            inner,
            transactional_id: transactional_id.to_string(),
            id_state,
            epoch,
            round_robin: AtomicU32::new(0),
            state: Mutex::new(TxnState::Ready),
        })
    }

    fn fenced(&self) -> LogError {
        LogError::ProducerFenced {
            transactional_id: self.transactional_id.clone(),
        }
    }

    /// Fails with `ProducerFenced` when a newer producer took the id (and remembers it).
    fn check_epoch(&self, state: &mut TxnState) -> Result<()> {
        if matches!(state, TxnState::Fenced) {
            return Err(self.fenced());
        }
        if self.id_state.epoch.load(Ordering::Acquire) == self.epoch {
            return Ok(());
        }
        if let TxnState::Open(txn) = std::mem::replace(state, TxnState::Fenced) {
            fail_txn(txn, &self.fenced());
        }
        Err(self.fenced())
    }

    fn commit_open(&self, txn: OpenTxn) -> Result<()> {
        let inner = &self.inner;
        if txn.records.is_empty() && txn.offsets.is_empty() {
            return Ok(());
        }
        if let Err(err) = inner.check_open() {
            fail_txn(txn, &err);
            return Err(err);
        }
        let txn_id = if txn.records.is_empty() {
            0
        } else {
            let mut meta = inner.meta.lock();
            let id = meta.next_txn_id;
            meta.next_txn_id += 1;
            // Until its commit entry is appended: a journal rewrite meanwhile must not count it
            // as committed.
            meta.open_txns.insert(id);
            id
        };

        // Lock every touched partition, in sorted order (the BTreeMap's), so two commits
        // cannot deadlock, and so that each partition's batches are journaled in the order they
        // were written (recovery re-appends them in journal order).
        let guards: Vec<_> = txn
            .records
            .values()
            .map(|(partition, _, _)| partition.append_lock.lock())
            .collect();
        if let Some(err) = txn
            .records
            .values()
            .find_map(|(partition, _, _)| partition.check_writable().err())
        {
            drop(guards);
            // Nothing was written under this id.
            inner.meta.lock().open_txns.remove(&txn_id);
            fail_txn(txn, &err);
            return Err(err);
        }

        let mut bases = Vec::with_capacity(txn.records.len());
        let mut batches = Vec::with_capacity(txn.records.len());
        let mut outcome: Result<u64> = Ok(0);
        for (tp, (partition, records, _)) in &txn.records {
            let mut bytes = Vec::new();
            match partition.log.append_copy(records, txn_id, &mut bytes) {
                Ok(base) => {
                    bases.push(base);
                    batches.push(JournalBatch {
                        tp: tp.clone(),
                        base,
                        bytes: bytes.into(),
                    });
                }
                Err(err) => {
                    // This partition may hold part of the batch: it is poisoned below too.
                    bases.push(-1);
                    outcome = Err(err);
                    break;
                }
            }
        }
        if outcome.is_ok() && inner.fail_before_commit_point.swap(false, Ordering::AcqRel) {
            outcome = Err(LogError::Closed {
                what: "log (simulated crash before the transaction's commit point)",
            });
        }
        let partitions: Vec<&Arc<Partition>> = txn
            .records
            .values()
            .map(|(partition, _, _)| partition)
            .collect();
        if outcome.is_ok() {
            let offsets: Vec<(String, TopicPartition, Offset)> = txn
                .offsets
                .iter()
                .map(|((group, tp), offset)| (group.clone(), tp.clone(), *offset))
                .collect();
            let entry = Entry::TxnCommit {
                txn_id,
                offsets,
                batches,
            };
            outcome = inner.journal_batches(&entry, &partitions, txn_id);
        }
        if let Err(err) = &outcome {
            // Batches written past the visible end must never become visible, and offsets are
            // dense, so these partitions take no more writes until reopen truncates them.
            // Poisoned before the locks go, so nothing is written after them.
            for partition in partitions.iter().take(bases.len()) {
                partition.poison(err);
            }
        }
        drop(guards);
        // The commit point, outside the locks: other commits append (and share the fsync)
        // meanwhile; their entries come after this one, so none is durable before it.
        let outcome = outcome.and_then(|lsn| inner.wait_durable(lsn).map(|()| lsn));
        let lsn = match outcome {
            Ok(lsn) => lsn,
            Err(err) => {
                for partition in partitions.iter().take(bases.len()) {
                    partition.poison(&err);
                }
                fail_txn(txn, &err);
                return Err(err);
            }
        };
        if !txn.offsets.is_empty() {
            let mut meta = inner.meta.lock();
            for ((group, tp), offset) in &txn.offsets {
                meta.apply_offset(group, tp, *offset, lsn);
            }
        }
        for ((partition, records, _), base) in txn.records.values().zip(&bases) {
            partition.advance_visible(base + records.len() as i64);
        }
        inner
            .notifier
            .bump_topics(txn.records.keys().map(|tp| tp.topic.as_str()));
        for ((partition, records, senders), base) in txn.records.into_values().zip(bases) {
            for (i, sender) in senders {
                let Some(record) = records.get(i) else {
                    continue;
                };
                sender.complete(Ok(RecordMetadata {
                    topic: partition.tp.topic.clone(),
                    partition: partition.tp.partition,
                    offset: base + i as i64,
                    timestamp: record.timestamp,
                }));
            }
        }
        Ok(())
    }
}

fn fail_txn(txn: OpenTxn, err: &LogError) {
    for (_, _, senders) in txn.records.into_values() {
        for (_, sender) in senders {
            sender.complete(Err(err.clone()));
        }
    }
}

impl EmbeddedTxnProducer {
    /// Buffers the record in the open transaction, with `sender` to complete at its end.
    fn buffer(&self, record: ProducerRecord, sender: Option<DeliverySender>) -> Result<()> {
        let mut state = self.state.lock();
        self.check_epoch(&mut state)?;
        let TxnState::Open(txn) = &mut *state else {
            return Err(LogError::TransactionState {
                operation: "send",
                state: "no transaction is open; call begin first",
            });
        };
        let (partition, record) = route(&self.inner, record, &self.round_robin)?;
        // Looked up before inserting, so that only a partition's first record of the
        // transaction pays for a copy of its name.
        let (_, records, senders) = match txn.records.get_mut(&partition.tp) {
            Some(buffered) => buffered,
            None => txn
                .records
                .entry(partition.tp.clone())
                .or_insert_with(|| (partition, Vec::new(), Vec::new())),
        };
        if let Some(sender) = sender {
            senders.push((records.len(), sender));
        }
        records.push(record);
        Ok(())
    }
}

impl Producer for EmbeddedTxnProducer {
    /// Buffers the record in the open transaction; its delivery completes when the
    /// transaction commits (or fails when it aborts).
    fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (sender, future) = DeliveryFuture::pending();
        self.buffer(record, Some(sender))?;
        Ok(future)
    }

    /// Buffers the record without a delivery: the commit's result is its result.
    fn send_detached(&self, record: ProducerRecord) -> Result<()> {
        self.buffer(record, None)
    }

    /// Records of a transaction are written by `commit`, so there is nothing to wait for.
    fn flush(&self, _timeout: Duration) -> Result<()> {
        self.inner.check_open()
    }
}

impl TransactionalProducer for EmbeddedTxnProducer {
    fn begin(&self) -> Result<()> {
        let mut state = self.state.lock();
        self.check_epoch(&mut state)?;
        self.inner.check_open()?;
        match &*state {
            TxnState::Open(_) => Err(LogError::TransactionState {
                operation: "begin",
                state: "a transaction is already open",
            }),
            _ => {
                *state = TxnState::Open(OpenTxn::default());
                Ok(())
            }
        }
    }

    fn send_offsets(
        &self,
        offsets: &[(TopicPartition, Offset)],
        group: &GroupMetadata,
    ) -> Result<()> {
        let mut state = self.state.lock();
        self.check_epoch(&mut state)?;
        let TxnState::Open(txn) = &mut *state else {
            return Err(LogError::TransactionState {
                operation: "send offsets",
                state: "no transaction is open; call begin first",
            });
        };
        // A negative generation is a consumer outside group management (manual assignment):
        // like Kafka, its offsets are not checked against membership.
        if group.generation >= 0 {
            let coordinator = self.inner.existing_group(&group.group_id);
            let current = coordinator
                .as_ref()
                .map(|g| g.generation_of(&group.member_id));
            match current {
                Some(Some(generation)) if generation == group.generation => {}
                Some(Some(generation)) => {
                    return Err(LogError::CommitRejected {
                        group: group.group_id.clone(),
                        reason: format!(
                            "member {} is at generation {} but the group is at generation {generation}; \
                             the group rebalanced",
                            group.member_id, group.generation
                        ),
                    });
                }
                _ => {
                    return Err(LogError::CommitRejected {
                        group: group.group_id.clone(),
                        reason: format!("member {} is not in the group", group.member_id),
                    });
                }
            }
        }
        for (tp, offset) in offsets {
            self.inner.partition(tp)?;
            let previous = txn
                .offsets
                .insert((group.group_id.clone(), tp.clone()), *offset);
            if previous.is_none() {
                txn.pending
                    .push(PendingOffset::new(&self.inner, &group.group_id, tp));
            }
        }
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        // Held to the commit point, so a new producer for this id fences us either before we
        // start (we fail) or after we commit (we won), never in between.
        let _id_guard = self.id_state.lock.lock();
        let mut state = self.state.lock();
        self.check_epoch(&mut state)?;
        match std::mem::replace(&mut *state, TxnState::Ready) {
            TxnState::Open(txn) => {
                let result = self.commit_open(txn);
                if result.is_err() {
                    *state = TxnState::Failed;
                }
                result
            }
            other => {
                *state = other;
                Err(LogError::TransactionState {
                    operation: "commit",
                    state: "no transaction is open",
                })
            }
        }
    }

    fn abort(&self) -> Result<()> {
        let mut state = self.state.lock();
        self.check_epoch(&mut state)?;
        match std::mem::replace(&mut *state, TxnState::Ready) {
            TxnState::Open(txn) => {
                fail_txn(
                    txn,
                    &LogError::TransactionState {
                        operation: "deliver",
                        state: "the transaction was aborted",
                    },
                );
                Ok(())
            }
            TxnState::Failed => Ok(()),
            other => {
                *state = other;
                Err(LogError::TransactionState {
                    operation: "abort",
                    state: "no transaction is open",
                })
            }
        }
    }

    fn transactional_id(&self) -> &str {
        &self.transactional_id
    }
}
