//! A task: one instance of a sub-topology for one input partition, with its processors, its
//! stores and its clocks. A task lives on one thread; the runtime and the test driver feed it
//! records and punctuate it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use rill_log::{ConsumedRecord, Header};

use crate::collector::{OutputRecord, RecordCollector};
use crate::error::{ErrorClass, Result, StreamsError};
use crate::processor::{InitContext, Processor, ProcessorContext, PunctuationType, PunctuatorId};
use crate::record::{Record, RecordContext};
use crate::store::{CachingKeyValueStore, ChangelogTarget, KeyValueBytesStore};

/// Identifies a task: its sub-topology and the partition of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Sub-topology number.
    pub subtopology: usize,
    /// Input partition.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What to do with an input record that cannot be deserialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeserializationPolicy {
    /// Send it, unchanged, to this topic with the error in its headers, and go on.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
    /// Stop processing with the error.
    Fail,
}

/// What to do when processing a record fails in a way that concerns only that record: a
/// processor returned an error, or an output or store value could not be serialized, or its
/// event time is invalid (Kafka Streams' processing and production exception handlers).
/// Failures of the log or of a store's disk always stop the thread: going on could lose data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProcessingErrorPolicy {
    /// Stop processing with the error (the default: nothing is skipped unless asked).
    #[default]
    Fail,
    /// Log the error, count it, and go on with the next record.
    Skip,
    /// Send the input record, unchanged, to this topic with the error in its headers, and go
    /// on. Outputs the record produced before it failed are kept, as with Kafka Streams.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
}

/// A store as registered in a task.
pub(crate) struct TaskStore {
    /// The store's engine, behind its record cache if it has one.
    pub engine: Arc<dyn KeyValueBytesStore>,
    /// The record cache (the same object as `engine`), flushed before each commit.
    pub cache: Option<Arc<CachingKeyValueStore>>,
    /// `SharedSerde<K>` behind `Any`, checked when a processor asks for the store.
    pub key_serde: Arc<dyn Any + Send + Sync>,
    pub value_serde: Arc<dyn Any + Send + Sync>,
    pub changelog_topic: Option<String>,
}

/// A punctuator's schedule.
pub(crate) struct Schedule {
    pub node: usize,
    pub id: PunctuatorId,
    pub interval_ms: i64,
    pub kind: PunctuationType,
    pub next_due: i64,
}

/// Counters of a task.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records taken from input topics.
    pub records_in: u64,
    /// Records sent to a dead-letter topic (undecodable, or failed in processing).
    pub dead_letters: u64,
    /// Records whose processing failed and that were skipped or dead-lettered, per the
    /// [`ProcessingErrorPolicy`].
    pub processing_errors: u64,
    /// Records dropped by windowed operations because every window they belonged to had
    /// closed (stream time past the window's end plus its grace period).
    pub late_records_dropped: u64,
}

/// Everything of a task that processors reach through their contexts.
pub(crate) struct TaskState {
    pub application_id: Arc<str>,
    pub task_id: TaskId,
    pub stores: HashMap<String, TaskStore>,
    pub collector: Rc<RefCell<dyn RecordCollector>>,
    pub record_context: Option<RecordContext>,
    /// Timestamp of the record being processed, shared with store handles for changelog records.
    pub current_timestamp: Rc<RefCell<i64>>,
    pub stream_time: i64,
    pub wall_clock: i64,
    pub schedules: Vec<Schedule>,
    pub deserialization: DeserializationPolicy,
    pub processing: ProcessingErrorPolicy,
    pub metrics: TaskMetrics,
}

impl TaskState {
    /// A record with this event time enters the task: stream time is the largest seen.
    pub fn advance_stream_time(&mut self, timestamp: i64) {
        self.stream_time = self.stream_time.max(timestamp);
        *self.current_timestamp.borrow_mut() = timestamp;
    }
}

/// A node as its parents see it: something that takes records of `K`/`V`.
pub(crate) trait Node<K, V> {
    fn process(&mut self, task: &mut TaskState, record: Record<K, V>) -> Result<()>;
}

/// A child of a node.
pub(crate) type Child<K, V> = Rc<RefCell<dyn Node<K, V>>>;

/// A node as the task sees it: initialized, punctuated and closed.
pub(crate) trait Lifecycle {
    fn init(&mut self, task: &mut TaskState, node: usize) -> Result<()>;
    fn punctuate(&mut self, task: &mut TaskState, id: PunctuatorId, timestamp: i64) -> Result<()>;
    fn close(&mut self);
}

/// A source as the task sees it: takes raw records of its topics.
pub(crate) trait RawSource {
    fn process_raw(&mut self, task: &mut TaskState, record: &ConsumedRecord) -> Result<()>;
}

/// A [`Processor`] wired to its children.
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub name: String,
    pub stores: Vec<String>,
    pub processor: P,
    pub children: Vec<Child<KOut, VOut>>,
    pub _input: PhantomData<fn(KIn, VIn)>,
}

impl<P, KIn, VIn, KOut, VOut> Node<KIn, VIn> for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn process(&mut self, task: &mut TaskState, record: Record<KIn, VIn>) -> Result<()> {
        *task.current_timestamp.borrow_mut() = record.timestamp;
        let mut ctx = ProcessorContext {
            task,
            children: &self.children,
        };
        self.processor.process(&mut ctx, record)
    }
}

impl<P, KIn, VIn, KOut, VOut> Lifecycle for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn init(&mut self, task: &mut TaskState, node: usize) -> Result<()> {
        let mut ctx = InitContext {
            task,
            node,
            node_name: &self.name,
            stores: &self.stores,
        };
        self.processor.init(&mut ctx)
    }

    fn punctuate(&mut self, task: &mut TaskState, id: PunctuatorId, timestamp: i64) -> Result<()> {
        *task.current_timestamp.borrow_mut() = timestamp;
        let mut ctx = ProcessorContext {
            task,
            children: &self.children,
        };
        self.processor.punctuate(&mut ctx, id, timestamp)
    }

    fn close(&mut self) {
        self.processor.close();
    }
}

/// A sub-topology instantiated for one partition.
pub(crate) struct Task {
    pub state: TaskState,
    /// Source per input topic.
    pub sources: HashMap<String, Rc<RefCell<dyn RawSource>>>,
    /// Every processor node, by node index, for init / punctuate / close.
    pub nodes: Vec<(usize, Rc<RefCell<dyn Lifecycle>>)>,
}

impl Task {
    /// Initializes every processor (in topology order).
    pub fn init(&mut self) -> Result<()> {
        for (index, node) in &self.nodes {
            node.borrow_mut().init(&mut self.state, *index)?;
        }
        Ok(())
    }

    /// Processes one input record, then fires stream-time punctuators it made due.
    pub fn process(&mut self, record: &ConsumedRecord) -> Result<()> {
        let source = self.sources.get(&*record.topic).cloned().ok_or_else(|| {
            StreamsError::UnknownSource {
                task: self.state.task_id,
                topic: record.topic.to_string(),
            }
        })?;
        self.state.metrics.records_in += 1;
        self.state.record_context = Some(RecordContext {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        });
        // The source advances stream time: it knows the record's event time.
        let processed = if self.state.processing == ProcessingErrorPolicy::Fail {
            source.borrow_mut().process_raw(&mut self.state, record)
        } else {
            // A panic in user code is a failure of this record like an error it returns. The
            // nodes' borrows are released by the unwinding, so the task can go on.
            let state = &mut self.state;
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                source.borrow_mut().process_raw(state, record)
            }))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string());
                Err(StreamsError::Panicked { message })
            })
        };
        if let Err(error) = processed {
            self.handle_processing_error(record, error)?;
        }
        self.state.record_context = None;
        self.punctuate(PunctuationType::StreamTime, self.state.stream_time)
    }

    /// Applies the processing-error policy to a record whose processing failed.
    fn handle_processing_error(
        &mut self,
        record: &ConsumedRecord,
        error: StreamsError,
    ) -> Result<()> {
        if error.class() != ErrorClass::Record {
            return Err(error);
        }
        match self.state.processing.clone() {
            ProcessingErrorPolicy::Fail => Err(error),
            ProcessingErrorPolicy::Skip => {
                self.state.metrics.processing_errors += 1;
                tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, %error, "record skipped after a processing error");
                Ok(())
            }
            ProcessingErrorPolicy::DeadLetter { topic } => {
                self.state.metrics.processing_errors += 1;
                send_dead_letter(&mut self.state, &topic, record, &error)
            }
        }
    }

    /// Advances wall-clock time and fires the wall-clock punctuators now due.
    pub fn advance_wall_clock(&mut self, now_ms: i64) -> Result<()> {
        self.state.wall_clock = self.state.wall_clock.max(now_ms);
        self.punctuate(PunctuationType::WallClockTime, self.state.wall_clock)
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        for index in 0..self.state.schedules.len() {
            let schedule = &mut self.state.schedules[index];
            if schedule.kind != kind {
                continue;
            }
            if schedule.next_due == i64::MIN {
                schedule.next_due = now.saturating_add(schedule.interval_ms);
                continue;
            }
            if schedule.next_due > now {
                continue;
            }
            // Fire once for the time reached, then realign on the interval grid.
            let (node, id) = (schedule.node, schedule.id);
            let missed = (now - schedule.next_due) / schedule.interval_ms;
            schedule.next_due += (missed + 1) * schedule.interval_ms;
            let target = self
                .nodes
                .iter()
                .find(|(i, _)| *i == node)
                .map(|(_, n)| n.clone());
            if let Some(target) = target {
                target.borrow_mut().punctuate(&mut self.state, id, now)?;
            }
        }
        Ok(())
    }

    /// Writes what the stores' record caches hold to the stores and their changelogs; called
    /// before every commit, so that the commit (under exactly-once, its transaction) covers
    /// every change the task's processed records made.
    pub fn flush_caches(&mut self) -> Result<()> {
        let mut changes = Vec::new();
        for store in self.state.stores.values() {
            let Some(cache) = &store.cache else {
                continue;
            };
            cache.flush_into(&mut changes)?;
            if let Some(topic) = &store.changelog_topic {
                ChangelogTarget {
                    topic: topic.clone(),
                    partition: self.state.task_id.partition,
                    collector: self.state.collector.clone(),
                }
                .send_all(std::mem::take(&mut changes))?;
            }
            changes.clear();
        }
        Ok(())
    }

    /// Closes every processor.
    pub fn close(&mut self) {
        for (_, node) in &self.nodes {
            node.borrow_mut().close();
        }
    }
}

/// Applies the deserialization policy to a record a source could not decode: fails the
/// task, or sends the record to the dead-letter topic with the reason in its headers.
pub(crate) fn undecodable(
    task: &mut TaskState,
    record: &ConsumedRecord,
    error: StreamsError,
) -> Result<()> {
    match task.deserialization.clone() {
        DeserializationPolicy::Fail => Err(error),
        DeserializationPolicy::DeadLetter { topic } => {
            send_dead_letter(task, &topic, record, &error)
        }
    }
}

/// Sends `record`, unchanged, to `topic` with `error` and its origin in the headers.
fn send_dead_letter(
    task: &mut TaskState,
    topic: &str,
    record: &ConsumedRecord,
    error: &StreamsError,
) -> Result<()> {
    let mut headers = record.headers.clone();
    headers.push(Header::new("rill.error", error.to_string()));
    headers.push(Header::new("rill.source.topic", record.topic.to_string()));
    headers.push(Header::new(
        "rill.source.partition",
        record.partition.to_string(),
    ));
    headers.push(Header::new("rill.source.offset", record.offset.to_string()));
    task.metrics.dead_letters += 1;
    tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, %error, "record sent to the dead-letter topic");
    task.collector.borrow_mut().send(OutputRecord {
        topic: topic.to_string(),
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        timestamp: record.timestamp,
        headers,
    })
}
