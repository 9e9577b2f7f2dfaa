//! What a processor can reach: forwarding, the current record's origin, time, stores and
//! punctuation.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, StreamsError};
use crate::record::{Record, RecordContext};
use crate::serde::SharedSerde;
use crate::store::{ChangelogTarget, KeyValueStore};
use crate::task::{Child, Schedule, TaskState};

/// Identifies a punctuator scheduled by a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PunctuatorId(pub(crate) usize);

/// Which clock drives a punctuator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. Fires only as records
    /// advance it.
    StreamTime,
    /// Wall-clock time: fires as real time (or the test driver's clock) passes.
    WallClockTime,
}

/// Given to [`Processor::init`](crate::Processor::init).
pub struct InitContext<'a> {
    pub(crate) task: &'a mut TaskState,
    pub(crate) node: usize,
    pub(crate) node_name: &'a str,
    pub(crate) stores: &'a [String],
}

impl InitContext<'_> {
    /// The key-value store `name`, which the topology must have connected to this processor.
    pub fn key_value_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>> {
        if !self.stores.iter().any(|store| store == name) {
            return Err(StreamsError::StoreNotConnected {
                processor: self.node_name.to_string(),
                store: name.to_string(),
            });
        }
        let store = self
            .task
            .stores
            .get(name)
            .ok_or_else(|| StreamsError::UnknownStore {
                store: name.to_string(),
                used_by: Some(self.node_name.to_string()),
            })?;
        let key_serde = downcast_serde::<K>(&store.key_serde, name, "key")?;
        let value_serde = downcast_serde::<V>(&store.value_serde, name, "value")?;
        let changelog = store.changelog_topic.as_ref().map(|topic| ChangelogTarget {
            topic: topic.clone(),
            partition: self.task.task_id.partition,
            collector: self.task.collector.clone(),
        });
        Ok(KeyValueStore::new(
            store.engine.clone(),
            key_serde,
            value_serde,
            changelog,
            self.task.current_timestamp.clone(),
        )
        .with_cache(store.cache.clone()))
    }

    /// Calls [`Processor::punctuate`](crate::Processor::punctuate) every `interval` of the
    /// given clock.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuatorId {
        let id = PunctuatorId(self.task.schedules.len());
        let interval_ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let now = match kind {
            PunctuationType::StreamTime => self.task.stream_time,
            PunctuationType::WallClockTime => self.task.wall_clock,
        };
        self.task.schedules.push(Schedule {
            node: self.node,
            id,
            interval_ms,
            kind,
            // Unknown time (no record yet): the first record starts the grid.
            next_due: if now == i64::MIN {
                i64::MIN
            } else {
                now.saturating_add(interval_ms)
            },
        });
        id
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.task.application_id
    }

    /// The partition of the task's input this processor runs for.
    pub fn partition(&self) -> i32 {
        self.task.task_id.partition
    }
}

fn downcast_serde<T: 'static>(
    serde: &Arc<dyn Any + Send + Sync>,
    store: &str,
    what: &'static str,
) -> Result<SharedSerde<T>> {
    serde
        .downcast_ref::<SharedSerde<T>>()
        .cloned()
        .ok_or_else(|| StreamsError::StoreType {
            store: store.to_string(),
            what,
            expected: std::any::type_name::<T>(),
        })
}

/// Given to [`Processor::process`](crate::Processor::process) and
/// [`Processor::punctuate`](crate::Processor::punctuate): forwards records of `K`/`V` to the
/// processor's children.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskState,
    pub(crate) children: &'a [Child<K, V>],
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Forwards a record to every child (cloned for all but the last).
    pub fn forward(&mut self, record: Record<K, V>) -> Result<()> {
        if let Some((last, others)) = self.children.split_last() {
            for child in others {
                child.borrow_mut().process(self.task, record.clone())?;
            }
            last.borrow_mut().process(self.task, record)?;
        }
        Ok(())
    }
}

impl<K: 'static, V: 'static> ProcessorContext<'_, K, V> {
    /// Forwards a record to one child, by its position among the children (the order in
    /// which they were attached).
    pub fn forward_to(&mut self, child: usize, record: Record<K, V>) -> Result<()> {
        match self.children.get(child) {
            Some(child) => child.borrow_mut().process(self.task, record),
            None => Ok(()),
        }
    }

    /// Number of children.
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Topic, partition and offset of the input record being processed; `None` during
    /// punctuation.
    pub fn record_context(&self) -> Option<&RecordContext> {
        self.task.record_context.as_ref()
    }

    /// The task's stream time (largest record timestamp seen).
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The task's wall-clock time (real, or the test driver's).
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock
    }

    /// The partition of the task's input.
    pub fn partition(&self) -> i32 {
        self.task.task_id.partition
    }
}
