//! Group commit: producers queue records per partition; one flusher thread per log takes
//! everything queued, writes each partition's records as one batch (not fsynced), journals
//! those batches as one entry, waits per the policy for the journal to be durable, then
//! advances the partitions' visible ends and completes the deliveries. Records sent while a
//! group is being written and synced form the next group, so under `FsyncPolicy::Always` many
//! concurrent producers share each fsync, and a group costs one fsync whatever its partitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rill_log::{DeliverySender, LogError, RecordMetadata, Result};

use super::config::FsyncPolicy;
use super::journal::{Entry, JournalBatch};
use super::state::Inner;
use super::topics::Partition;
use crate::storage::StoredRecord;

/// A record waiting for the flusher, with the delivery it completes.
pub(crate) struct PendingRecord {
    pub record: StoredRecord,
    pub sender: DeliverySender,
}

#[derive(Default)]
struct FlushState {
    /// Queued records per partition uid.
    pending: HashMap<u64, (Arc<Partition>, Vec<PendingRecord>)>,
    /// Records ever queued; a producer's ticket is this count after its send.
    enqueued: u64,
    /// Every ticket up to this is completed.
    completed: u64,
    /// Refuse new records; the flusher drains what is queued and exits.
    stopping: bool,
    /// Exit at once, dropping what is queued (a simulated crash).
    abandon: bool,
}

/// The queue between producers and the flusher thread.
#[derive(Default)]
pub(crate) struct FlushQueue {
    state: Mutex<FlushState>,
    /// Wakes the flusher.
    work: Condvar,
    /// Wakes producers waiting in `flush`.
    done: Condvar,
}

impl FlushQueue {
    /// Queues a record; returns its ticket for [`wait_completed`](Self::wait_completed).
    pub(crate) fn enqueue(&self, partition: &Arc<Partition>, record: PendingRecord) -> Result<u64> {
        let mut state = self.state.lock();
        // Checked under the queue lock: the flusher exits only once `stopping` is set and the
        // queue is empty, so nothing queued here can be stranded.
        if state.stopping {
            return Err(LogError::Closed { what: "log" });
        }
        state
            .pending
            .entry(partition.uid)
            .or_insert_with(|| (partition.clone(), Vec::new()))
            .1
            .push(record);
        state.enqueued += 1;
        let ticket = state.enqueued;
        drop(state);
        self.work.notify_one();
        Ok(ticket)
    }

    /// Waits until every record up to `ticket` is completed (written or failed).
    pub(crate) fn wait_completed(&self, ticket: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.completed < ticket {
            if state.abandon {
                return Err(LogError::Closed { what: "log" });
            }
            if self.done.wait_until(&mut state, deadline).timed_out() && state.completed < ticket {
                return Err(LogError::Timeout {
                    operation: "flush",
                    after: timeout,
                });
            }
        }
        Ok(())
    }

    /// Asks the flusher to drain the queue and exit.
    pub(crate) fn stop(&self) {
        self.state.lock().stopping = true;
        self.work.notify_all();
    }

    /// Asks the flusher to exit at once, dropping queued records (their deliveries fail with
    /// `Closed`).
    pub(crate) fn abandon(&self) {
        let mut state = self.state.lock();
        state.stopping = true;
        state.abandon = true;
        drop(state);
        self.work.notify_all();
        self.done.notify_all();
    }
}

/// The flusher thread's body.
pub(crate) fn run(inner: Arc<Inner>) {
    let interval = match inner.config.fsync {
        FsyncPolicy::Interval(d) => Some(d.max(Duration::from_millis(1))),
        _ => None,
    };
    let mut next_sync = interval.map(|d| Instant::now() + d);
    loop {
        let (group, upto) = {
            let queue = &inner.flush;
            let mut state = queue.state.lock();
            loop {
                if state.abandon {
                    return;
                }
                if !state.pending.is_empty() || state.stopping {
                    break;
                }
                match next_sync {
                    Some(at) => {
                        if queue.work.wait_until(&mut state, at).timed_out() {
                            break;
                        }
                    }
                    None => queue.work.wait(&mut state),
                }
            }
            if state.pending.is_empty() && state.stopping {
                drop(state);
                sync_journal(&inner);
                return;
            }
            (std::mem::take(&mut state.pending), state.enqueued)
        };

        if !group.is_empty() {
            write_group(&inner, group);
            let mut state = inner.flush.state.lock();
            state.completed = upto;
            drop(state);
            inner.flush.done.notify_all();
        }

        if let (Some(at), Some(d)) = (next_sync, interval)
            && Instant::now() >= at
        {
            sync_journal(&inner);
            next_sync = Some(Instant::now() + d);
        }
    }
}

/// Fsyncs the journal (Interval policy ticks and shutdown): the batches of acknowledged groups
/// are in it.
fn sync_journal(inner: &Inner) {
    if let Err(err) = inner.sync_journal() {
        // The records were acknowledged already; the failure is sticky, so every later write
        // fails with it.
        tracing::error!(error = %err, "journal fsync failed");
    }
}

struct Written {
    partition: Arc<Partition>,
    base: i64,
    records: Vec<PendingRecord>,
}

/// Writes one group: one batch per partition, one journal entry for them all, then (Always)
/// waits for it to be durable, then visibility and acknowledgements.
fn write_group(inner: &Inner, group: HashMap<u64, (Arc<Partition>, Vec<PendingRecord>)>) {
    let always = matches!(inner.config.fsync, FsyncPolicy::Always);
    let mut group: Vec<(Arc<Partition>, Vec<PendingRecord>)> = group.into_values().collect();
    // The order transaction commits lock partitions in, so the two cannot deadlock.
    group.sort_by(|a, b| a.0.tp.cmp(&b.0.tp));
    let locked: Vec<Arc<Partition>> = group.iter().map(|(p, _)| Arc::clone(p)).collect();
    // Held until the journal entry is appended: a partition's batches must be journaled in the
    // order they were written, or recovery could not re-append them.
    let guards: Vec<_> = locked.iter().map(|p| p.append_lock.lock()).collect();
    let mut written = Vec::with_capacity(group.len());
    let mut batches = Vec::with_capacity(group.len());
    for (partition, records) in group {
        let mut bytes = Vec::new();
        let result = partition.check_writable().and_then(|()| {
            let batch: Vec<StoredRecord> = records.iter().map(|r| r.record.clone()).collect();
            partition
                .log
                .append_copy(&batch, 0, &mut bytes)
                .inspect_err(|err| {
                    partition.poison(err);
                })
        });
        match result {
            Ok(base) => {
                batches.push(JournalBatch {
                    tp: partition.tp.clone(),
                    base,
                    bytes: bytes.into(),
                });
                written.push(Written {
                    partition,
                    base,
                    records,
                });
            }
            Err(err) => fail_all(records, &err),
        }
    }
    if written.is_empty() {
        return;
    }
    let partitions: Vec<&Arc<Partition>> = written.iter().map(|w| &w.partition).collect();
    let journaled = inner.journal_batches(&Entry::Appended { batches }, &partitions, 0);
    if let Err(err) = &journaled {
        // Batches past the visible end that the journal does not hold: nothing may follow them.
        for w in &written {
            w.partition.poison(err);
        }
    }
    drop(guards);
    // Not under the append locks: commits on these partitions go on while the journal syncs,
    // and their entries, appended after this one, are covered by the same or a later fsync.
    let durable = journaled.and_then(|lsn| {
        if always {
            inner.wait_durable(lsn)
        } else {
            Ok(())
        }
    });
    if let Err(err) = durable {
        for w in written {
            w.partition.poison(&err);
            fail_all(w.records, &err);
        }
        return;
    }
    for w in &written {
        w.partition.advance_visible(w.base + w.records.len() as i64);
    }
    inner
        .notifier
        .bump_topics(written.iter().map(|w| w.partition.tp.topic.as_str()));
    for w in written {
        let topic = w.partition.tp.topic.clone();
        for (i, pending) in w.records.into_iter().enumerate() {
            pending.sender.complete(Ok(RecordMetadata {
                topic: topic.clone(),
                partition: w.partition.tp.partition,
                offset: w.base + i as i64,
                timestamp: pending.record.timestamp,
            }));
        }
    }
}

fn fail_all(records: Vec<PendingRecord>, err: &LogError) {
    for pending in records {
        pending.sender.complete(Err(err.clone()));
    }
}
