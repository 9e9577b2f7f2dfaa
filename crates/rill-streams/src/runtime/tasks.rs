//! The tasks of one stream thread: created when their partitions are assigned (stores restored
//! first), fed records in timestamp order, committed together, closed when revoked.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rill_log::{ConsumedRecord, Consumer, ErrorClass, Log, Offset, SeekTo, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::graph::{PersistentStores, TaskStateTemplate, Topology};
use crate::store::{CacheBudget, KeyValueBytesStore};
use crate::task::{Task, TaskId};

use super::collector::ProducerCollector;
use super::config::{ProcessingGuarantee, StreamsConfig};
use super::restore::{STALL_LIMIT, restore};
use super::shared::Shared;

/// A task with its input buffered per partition.
struct RunningTask {
    task: Task,
    queues: BTreeMap<TopicPartition, VecDeque<ConsumedRecord>>,
    /// The task's input partitions.
    inputs: Vec<TopicPartition>,
    idle: IdleGate,
}

/// Whether a task with several input partitions may process while some of them have nothing
/// buffered (Kafka Streams' `max.task.idle.ms`). Records are taken in timestamp order across
/// the partitions that have some; a partition that is merely slow to deliver may hold earlier
/// ones, which a join or a merge would then see out of order. So the task waits up to
/// `max_idle` for every input to have a record, then processes what it has ("enforced
/// processing") until its buffers run dry. An empty input the consumer knows to be read to
/// its end (a table's topic that is loaded, say) is not waited for: nothing earlier can come
/// from it.
#[derive(Debug, Default)]
pub(crate) struct IdleGate {
    /// Input partitions of the task.
    inputs: usize,
    /// When some inputs had records and others none, since.
    waiting_since: Option<Instant>,
}

impl IdleGate {
    pub(crate) fn new(inputs: usize) -> Self {
        IdleGate {
            inputs,
            waiting_since: None,
        }
    }

    /// Whether the task may take its next record now, with `filled` inputs holding records;
    /// `empty_caught_up` answers whether every empty input is known to be read to its end.
    pub(crate) fn may_process(
        &mut self,
        filled: usize,
        now: Instant,
        max_idle: Duration,
        empty_caught_up: impl FnOnce() -> bool,
    ) -> bool {
        if filled == 0 || filled >= self.inputs {
            self.waiting_since = None;
            return filled > 0;
        }
        if max_idle.is_zero() {
            return true;
        }
        if empty_caught_up() {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert(now);
        now.saturating_duration_since(since) >= max_idle
    }
}

impl RunningTask {
    /// The next record to process, unless the task waits for an empty input (see
    /// [`IdleGate`]).
    fn next_ready_record(
        &mut self,
        now: Instant,
        max_idle: Duration,
        consumer: &dyn Consumer,
    ) -> Option<ConsumedRecord> {
        let filled = self.queues.values().filter(|q| !q.is_empty()).count();
        let (queues, inputs) = (&self.queues, &self.inputs);
        let empty_caught_up = || {
            inputs
                .iter()
                .filter(|p| queues.get(*p).is_none_or(VecDeque::is_empty))
                .all(|p| consumer.known_lag(p) == Some(0))
        };
        if self
            .idle
            .may_process(filled, now, max_idle, empty_caught_up)
        {
            self.next_record()
        } else {
            None
        }
    }

    /// The buffered record with the smallest timestamp, so that records of several input
    /// partitions are processed in event-time order.
    fn next_record(&mut self) -> Option<ConsumedRecord> {
        let (_, queue) = self
            .queues
            .iter_mut()
            .filter(|(_, q)| !q.is_empty())
            .min_by_key(|(_, q)| q.front().map_or(i64::MAX, |r| r.timestamp))?;
        queue.pop_front()
    }
}

/// Reads the group's committed offsets of `partitions` until the log answers them as stable,
/// which it does once no open transaction holds offsets for them (see
/// [`Consumer::committed`]). A transaction of a crashed process can hold them until the
/// broker times it out, hence the retries.
fn await_stable_offsets(consumer: &dyn Consumer, partitions: &[TopicPartition]) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        match consumer.committed(partitions) {
            Ok(_) => return Ok(()),
            Err(error)
                if error.class() == ErrorClass::Retriable && started.elapsed() < STALL_LIMIT =>
            {
                tracing::warn!(
                    %error,
                    waited_s = started.elapsed().as_secs(),
                    "waiting for an open transaction (of a previous owner) that holds the new \
                     tasks' committed offsets"
                );
            }
            Err(error) => {
                return Err(StreamsError::log(
                    "reading the new tasks' committed offsets",
                    error,
                ));
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) struct ThreadTasks {
    pub thread_index: usize,
    pub log: Arc<dyn Log>,
    pub topology: Arc<Topology>,
    pub config: Arc<StreamsConfig>,
    pub shared: Arc<Shared>,
    pub globals: HashMap<String, Arc<dyn KeyValueBytesStore>>,
    pub collector: Rc<RefCell<ProducerCollector>>,
    tasks: BTreeMap<TaskId, RunningTask>,
    /// Next input offset per partition, processed but not yet committed.
    uncommitted: BTreeMap<TopicPartition, Offset>,
    /// Source topic -> sub-topology.
    topic_owner: HashMap<String, usize>,
    /// The bound shared by the record caches of this thread's tasks: the application's
    /// `cache_max_bytes` split over its threads, as Kafka Streams does.
    cache: Arc<CacheBudget>,
    /// Input partitions this thread paused because their task holds too many of their
    /// records (see [`ThreadTasks::bound_buffers`]).
    paused: BTreeSet<TopicPartition>,
}

impl ThreadTasks {
    pub fn new(
        thread_index: usize,
        log: Arc<dyn Log>,
        topology: Arc<Topology>,
        config: Arc<StreamsConfig>,
        shared: Arc<Shared>,
        globals: HashMap<String, Arc<dyn KeyValueBytesStore>>,
        collector: Rc<RefCell<ProducerCollector>>,
    ) -> Self {
        let mut topic_owner = HashMap::new();
        for sub in topology.subtopologies() {
            for topic in topology.source_topics(sub.id, &config.application_id) {
                topic_owner.insert(topic, sub.id);
            }
        }
        let cache = CacheBudget::new(config.cache_max_bytes / config.threads.max(1));
        ThreadTasks {
            cache,
            thread_index,
            log,
            topology,
            config,
            shared,
            globals,
            collector,
            tasks: BTreeMap::new(),
            uncommitted: BTreeMap::new(),
            topic_owner,
            paused: BTreeSet::new(),
        }
    }

    fn task_id(&self, partition: &TopicPartition) -> Option<TaskId> {
        self.topic_owner
            .get(&partition.topic)
            .map(|&subtopology| TaskId {
                subtopology,
                partition: partition.partition,
            })
    }

    /// Creates the tasks of newly assigned partitions, restoring their stores.
    ///
    /// Under exactly-once, the group's committed offsets of the new tasks' inputs are read
    /// first, and only once they are stable: a previous owner that was dropped from the group
    /// mid-commit (a "zombie") may still end a transaction whose offsets the broker accepted
    /// before the rebalance. Its changelog records lie past the changelog's last stable offset
    /// until it ends, so a restore started earlier would stop short of them while this
    /// thread resumes after the inputs that produced them: its stores would miss updates that
    /// are committed. Reading the offsets waits for that transaction (Kafka's KIP-447), and the
    /// restore that follows then sees its records. This is the order Kafka Streams keeps too.
    pub fn assigned(
        &mut self,
        consumer: &dyn Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let ids: BTreeSet<TaskId> = partitions.iter().filter_map(|p| self.task_id(p)).collect();
        let new_inputs: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| {
                self.task_id(p)
                    .is_some_and(|id| !self.tasks.contains_key(&id))
            })
            .cloned()
            .collect();
        if self.config.guarantee == ProcessingGuarantee::ExactlyOnce && !new_inputs.is_empty() {
            await_stable_offsets(consumer, &new_inputs)?;
        }
        for id in ids {
            if !self.tasks.contains_key(&id) {
                let task = self.create_task(id)?;
                let inputs: Vec<TopicPartition> = self
                    .topic_owner
                    .iter()
                    .filter(|&(_, &sub)| sub == id.subtopology)
                    .map(|(topic, _)| TopicPartition::new(topic.clone(), id.partition))
                    .collect();
                self.tasks.insert(
                    id,
                    RunningTask {
                        task,
                        queues: BTreeMap::new(),
                        idle: IdleGate::new(inputs.len()),
                        inputs,
                    },
                );
            }
        }
        self.publish_local_tasks();
        Ok(())
    }

    fn create_task(&mut self, id: TaskId) -> Result<Task> {
        // A standby copy here hands its stores (and checkpoint) over.
        self.shared.standbys.claim(id);
        let template = TaskStateTemplate {
            application_id: Arc::from(self.config.application_id.as_str()),
            collector: self.collector.clone(),
            deserialization: self.config.deserialization.clone(),
            processing: self.config.processing_errors.clone(),
            wall_clock: now_ms(),
            cache: Some(self.cache.clone()),
        };
        let mut provider = PersistentStores {
            state_dir: self.config.state_dir.clone(),
            application_id: self.config.application_id.clone(),
        };
        let task = self
            .topology
            .instantiate(template, id, &mut provider, &self.globals)?;
        for (name, store) in &task.state.stores {
            let Some(changelog) = &store.changelog_topic else {
                continue;
            };
            let partition = TopicPartition::new(changelog.clone(), id.partition);
            // A checkpoint says the local contents are valid up to that changelog offset;
            // without one (first start, or a crash) the store is rebuilt from scratch.
            let checkpoint = store.engine.read_checkpoint();
            if checkpoint.is_none() {
                store.engine.clear()?;
            }
            let started = std::time::Instant::now();
            let (applied, _) = restore(
                self.log.as_ref(),
                store.engine.as_ref(),
                &partition,
                checkpoint,
                &self.shared.records_restored,
                self.config.restore_listener.as_deref(),
            )?;
            // From here on the store runs ahead of the checkpoint: drop it until a clean close.
            store.engine.remove_checkpoint()?;
            // An empty catch-up (the usual start) is not worth a line per store and task.
            if applied > 0 {
                tracing::info!(
                    task = %id,
                    store = %name,
                    from = ?checkpoint,
                    records = applied,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "restored store"
                );
            } else {
                tracing::debug!(task = %id, store = %name, from = ?checkpoint, "store up to date");
            }
        }
        let mut local = self.shared.local_stores.write();
        for (name, store) in &task.state.stores {
            if !self.globals.contains_key(name) {
                local
                    .entry(name.clone())
                    .or_default()
                    .insert(id.partition, store.engine.clone());
            }
        }
        Ok(task)
    }

    fn publish_local_tasks(&self) {
        let mut local = self.shared.local_tasks.write();
        local.retain(|(thread, _)| *thread != self.thread_index);
        for id in self.tasks.keys() {
            local.insert((self.thread_index, *id));
        }
        drop(local);
        self.shared.tasks_changed();
    }

    /// Commits, then closes the tasks of revoked partitions.
    pub fn revoked(
        &mut self,
        consumer: &dyn Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        self.commit(consumer)?;
        let ids: BTreeSet<TaskId> = partitions.iter().filter_map(|p| self.task_id(p)).collect();
        for id in ids {
            self.close_task(id, Some(consumer));
        }
        self.uncommitted.retain(|p, _| !partitions.contains(p));
        self.publish_local_tasks();
        Ok(())
    }

    /// Closes a task. A clean close follows a commit: persistent stores are then flushed and
    /// checkpointed at their changelog's end, so a restart restores only what came after.
    fn close_task(&mut self, id: TaskId, clean: Option<&dyn Consumer>) {
        if let Some(mut running) = self.tasks.remove(&id) {
            running.task.close();
            if let Some(consumer) = clean {
                for (name, store) in &running.task.state.stores {
                    let Some(changelog) = &store.changelog_topic else {
                        continue;
                    };
                    if !store.engine.persistent() {
                        continue;
                    }
                    let partition = TopicPartition::new(changelog.clone(), id.partition);
                    let checkpointed = store.engine.flush().and_then(|()| {
                        let end = consumer
                            .watermarks(&partition)
                            .map_err(|e| StreamsError::log("reading a changelog's end", e))?
                            .high;
                        store.engine.write_checkpoint(end)
                    });
                    if let Err(error) = checkpointed {
                        // Only costs a full restore next time.
                        tracing::warn!(task = %id, store = %name, %error, "no checkpoint written");
                    }
                }
            }
            let mut local = self.shared.local_stores.write();
            for name in running.task.state.stores.keys() {
                if let Some(partitions) = local.get_mut(name) {
                    partitions.remove(&id.partition);
                }
            }
        }
        // Its stores are closed: a standby copy may open them.
        self.shared.standbys.release(id);
    }

    /// Buffers polled records in their tasks' queues.
    pub fn add_records(&mut self, records: Vec<ConsumedRecord>) {
        for record in records {
            let partition = TopicPartition::new(record.topic.to_string(), record.partition);
            let Some(id) = self.task_id(&partition) else {
                continue;
            };
            if let Some(task) = self.tasks.get_mut(&id) {
                task.queues.entry(partition).or_default().push_back(record);
            }
        }
    }

    /// Processes every buffered record; answers how many.
    pub fn process(&mut self, consumer: &dyn Consumer) -> Result<u64> {
        let mut processed = 0;
        for running in self.tasks.values_mut() {
            let late_before = running.task.state.metrics.late_records_dropped;
            let dead_before = running.task.state.metrics.dead_letters;
            let errors_before = running.task.state.metrics.processing_errors;
            let now = Instant::now();
            while let Some(record) =
                running.next_ready_record(now, self.config.max_task_idle, consumer)
            {
                running.task.process(&record)?;
                self.uncommitted.insert(
                    TopicPartition::new(record.topic.to_string(), record.partition),
                    record.offset + 1,
                );
                processed += 1;
            }
            let late = running.task.state.metrics.late_records_dropped - late_before;
            let dead = running.task.state.metrics.dead_letters - dead_before;
            let errors = running.task.state.metrics.processing_errors - errors_before;
            crate::runtime::metrics::dropped(&self.shared.application_id, late, dead, errors);
            self.shared
                .late_records_dropped
                .fetch_add(late, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(processed)
    }

    /// Pauses the input partitions whose task holds more than `buffered_records_per_partition`
    /// of their records, and resumes those drained to half of it (or whose task is gone), so
    /// a task waiting on one input does not read another's whole backlog into memory.
    pub fn bound_buffers(&mut self, consumer: &dyn Consumer) -> Result<()> {
        let limit = self.config.buffered_records_per_partition.max(1);
        let most = self
            .tasks
            .values()
            .flat_map(|running| running.queues.values().map(VecDeque::len))
            .max()
            .unwrap_or(0);
        self.shared
            .most_buffered
            .fetch_max(most as u64, std::sync::atomic::Ordering::Relaxed);
        let buffered = |tasks: &BTreeMap<TaskId, RunningTask>, partition: &TopicPartition| {
            tasks
                .values()
                .find_map(|running| running.queues.get(partition).map(VecDeque::len))
        };
        let resume: Vec<TopicPartition> = self
            .paused
            .iter()
            .filter(|partition| buffered(&self.tasks, partition).is_none_or(|n| n <= limit / 2))
            .cloned()
            .collect();
        for partition in &resume {
            self.paused.remove(partition);
            match consumer.resume(std::slice::from_ref(partition)) {
                // No longer assigned: nothing left to resume.
                Err(rill_log::LogError::NotAssigned { .. }) | Ok(()) => {}
                Err(e) => return Err(StreamsError::log("resuming an input partition", e)),
            }
        }
        let pause: Vec<TopicPartition> = self
            .tasks
            .values()
            .flat_map(|running| &running.queues)
            .filter(|(partition, queue)| queue.len() > limit && !self.paused.contains(*partition))
            .map(|(partition, _)| partition.clone())
            .collect();
        if !pause.is_empty() {
            consumer
                .pause(&pause)
                .map_err(|e| StreamsError::log("pausing an input partition", e))?;
            self.paused.extend(pause);
        }
        Ok(())
    }

    /// Fires due wall-clock punctuators.
    pub fn punctuate(&mut self) -> Result<()> {
        let now = now_ms();
        self.tasks
            .values_mut()
            .try_for_each(|running| running.task.advance_wall_clock(now))
    }

    /// Whether anything processed or produced awaits a commit.
    pub fn has_pending_work(&self) -> bool {
        !self.uncommitted.is_empty() || self.collector.borrow().producer.has_uncommitted()
    }

    /// Writes the record caches of every task to their stores and changelogs (sent inside
    /// the open transaction under exactly-once). A commit does it first anyway.
    pub fn flush_caches(&mut self) -> Result<()> {
        self.tasks
            .values_mut()
            .try_for_each(|running| running.task.flush_caches())
    }

    /// Commits outputs, store changes and input offsets of every task of the thread, the
    /// changes still in record caches first.
    pub fn commit(&mut self, consumer: &dyn Consumer) -> Result<()> {
        self.flush_caches()?;
        // Stores are not made durable here: their changelog is, inside this commit. A local
        // store is trusted only with a checkpoint, written (after a flush) at a clean close;
        // after a crash it is rebuilt from the changelog. Fsyncing every store on every commit
        // would buy nothing and cost an fsync per store.
        let offsets: Vec<(TopicPartition, Offset)> = self
            .uncommitted
            .iter()
            .map(|(p, o)| (p.clone(), *o))
            .collect();
        let group = consumer.group_metadata();
        let committed = self
            .collector
            .borrow_mut()
            .producer
            .commit(&offsets, group.as_ref())?;
        if !committed && !offsets.is_empty() {
            consumer
                .commit(&offsets)
                .map_err(|e| StreamsError::log("committing offsets", e))?;
        }
        self.uncommitted.clear();
        let sent: Vec<(String, u64)> = self.collector.borrow_mut().sent.drain().collect();
        crate::runtime::metrics::produced(&self.shared.application_id, sent);
        Ok(())
    }

    /// After a failed commit or lost partitions: drops all uncommitted work and rebuilds the
    /// tasks of the current assignment, but for the `lost` partitions, from their changelogs and
    /// committed offsets.
    ///
    /// The lost partitions are still in the assignment while the listener hears of them (the
    /// backend unassigns them afterwards, without a revocation): a task rebuilt for them would
    /// never see a record again, and its stale stores would stay registered for queries and be
    /// taken up, unrestored, if the partition came back.
    pub fn reset(&mut self, consumer: &dyn Consumer, lost: &[TopicPartition]) -> Result<()> {
        self.collector.borrow_mut().producer.abort();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.close_task(id, None);
        }
        self.uncommitted.clear();
        let mut assignment = consumer
            .assignment()
            .map_err(|e| StreamsError::log("reading the assignment", e))?;
        assignment.retain(|partition| !lost.contains(partition));
        let committed = consumer
            .committed(&assignment)
            .map_err(|e| StreamsError::log("reading committed offsets", e))?;
        for (partition, offset) in assignment.iter().zip(committed) {
            let to = offset.map_or(SeekTo::Beginning, SeekTo::Offset);
            consumer
                .seek(partition, to)
                .map_err(|e| StreamsError::log("rewinding an input", e))?;
        }
        self.assigned(consumer, &assignment)
    }

    /// Commits (when `clean`) and closes every task.
    pub fn close(&mut self, consumer: &dyn Consumer, clean: bool) -> Result<()> {
        let result = if clean { self.commit(consumer) } else { Ok(()) };
        if result.is_err() || !clean {
            // What was processed since the last commit is given up with the transaction;
            // its offsets must not be committed later (e.g. by a revocation on leaving).
            self.collector.borrow_mut().producer.abort();
            self.uncommitted.clear();
        }
        let committed = (clean && result.is_ok()).then_some(consumer);
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.close_task(id, committed);
        }
        self.publish_local_tasks();
        result
    }

    /// Whether an error lets this thread rebuild its tasks from their last commit and go on
    /// (it lost ownership, or something transient failed) rather than stop.
    pub fn is_recoverable(error: &StreamsError) -> bool {
        matches!(
            error.class(),
            crate::ErrorClass::TaskMigrated | crate::ErrorClass::Retriable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_gate_waits_for_every_input_up_to_the_limit_then_lets_records_through() {
        let limit = Duration::from_millis(100);
        let start = Instant::now();
        let mut gate = IdleGate::new(2);
        assert!(
            !gate.may_process(0, start, limit, || false),
            "nothing buffered"
        );
        assert!(
            gate.may_process(2, start, limit, || false),
            "every input has a record"
        );
        assert!(
            !gate.may_process(1, start, limit, || false),
            "one input empty: wait"
        );
        let later = start + Duration::from_millis(99);
        assert!(
            !gate.may_process(1, later, limit, || false),
            "still within the limit"
        );
        let due = start + limit;
        assert!(
            gate.may_process(1, due, limit, || false),
            "enforced once the limit is reached"
        );
        assert!(gate.may_process(2, due, limit, || false), "both again");
        assert!(
            !gate.may_process(1, due + Duration::from_millis(1), limit, || false),
            "a new wait starts after both inputs had records"
        );
        // One input, or no limit: never waits.
        assert!(IdleGate::new(1).may_process(1, start, limit, || false));
        assert!(IdleGate::new(2).may_process(1, start, Duration::ZERO, || false));
        assert!(
            IdleGate::new(2).may_process(1, start, limit, || true),
            "an empty input known to be read to its end is not waited for"
        );
    }
}
