//! Group commit: producers queue records per partition; one flusher thread per log takes
//! everything queued, writes each partition's records as one batch, fsyncs per the policy, then
//! advances the partitions' visible ends and completes the deliveries. Records sent while a
//! group is being written and fsynced form the next group, so under `FsyncPolicy::Always` many
//! concurrent producers share each fsync.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rill_log::{DeliverySender, LogError, RecordMetadata, Result};

use super::config::FsyncPolicy;
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
    // Partitions written but not yet fsynced (Interval and Never policies).
    let mut dirty: HashMap<u64, Arc<Partition>> = HashMap::new();
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
                sync_dirty(&inner, &mut dirty);
                return;
            }
            (std::mem::take(&mut state.pending), state.enqueued)
        };

        if !group.is_empty() {
            write_group(&inner, group, &mut dirty);
            let mut state = inner.flush.state.lock();
            state.completed = upto;
            drop(state);
            inner.flush.done.notify_all();
        }

        if let (Some(at), Some(d)) = (next_sync, interval)
            && Instant::now() >= at
        {
            sync_dirty(&inner, &mut dirty);
            next_sync = Some(Instant::now() + d);
        }
    }
}

/// Fsyncs written partitions and the journal (Interval policy ticks and shutdown).
fn sync_dirty(inner: &Inner, dirty: &mut HashMap<u64, Arc<Partition>>) {
    for (_, partition) in dirty.drain() {
        let _guard = partition.append_lock.lock();
        if partition.is_deleted() {
            continue;
        }
        if let Err(err) = partition.log.sync() {
            // The records were acknowledged already; all we can do is refuse further writes so
            // the failure is seen.
            partition.poison(&err);
        }
    }
    if let Err(err) = inner.meta.lock().journal.sync() {
        tracing::error!(error = %err, "journal fsync failed");
    }
}

struct Written {
    partition: Arc<Partition>,
    base: i64,
    records: Vec<PendingRecord>,
}

/// Writes one group: one batch per partition, then fsync (Always), then visibility and
/// acknowledgements.
fn write_group(
    inner: &Inner,
    group: HashMap<u64, (Arc<Partition>, Vec<PendingRecord>)>,
    dirty: &mut HashMap<u64, Arc<Partition>>,
) {
    let always = matches!(inner.config.fsync, FsyncPolicy::Always);
    let mut written = Vec::with_capacity(group.len());
    for (uid, (partition, records)) in group {
        let result = {
            let _guard = partition.append_lock.lock();
            partition.check_writable().and_then(|()| {
                let batch: Vec<StoredRecord> = records.iter().map(|r| r.record.clone()).collect();
                partition.log.append(&batch, 0).inspect_err(|err| {
                    partition.poison(err);
                })
            })
        };
        match result {
            Ok(base) => {
                if !always {
                    dirty.insert(uid, partition.clone());
                }
                written.push(Written {
                    partition,
                    base,
                    records,
                });
            }
            Err(err) => fail_all(records, &err),
        }
    }
    // Not under the append locks: a sync covers whatever was appended before it, and holding
    // a lock would stall a transaction commit on that partition for nothing. Together rather
    // than one after another, so the filesystem shares its journal commits between them.
    let synced = if always {
        let partitions: Vec<&Arc<Partition>> = written.iter().map(|w| &w.partition).collect();
        inner.syncer.sync_all(&partitions)
    } else {
        written.iter().map(|_| Ok(())).collect()
    };
    let mut acknowledged = Vec::with_capacity(written.len());
    for (w, synced) in written.into_iter().zip(synced) {
        if let Err(err) = synced {
            w.partition.poison(&err);
            fail_all(w.records, &err);
            continue;
        }
        let end = w.base + w.records.len() as i64;
        w.partition.advance_visible(end);
        acknowledged.push(w);
    }
    if !acknowledged.is_empty() {
        inner
            .notifier
            .bump_topics(acknowledged.iter().map(|w| w.partition.tp.topic.as_str()));
    }
    for w in acknowledged {
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
