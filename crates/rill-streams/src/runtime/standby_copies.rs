//! The standby copies an instance keeps (see [`standby`](super::standby) for how they are
//! placed and maintained): shared by the keeper thread that fills them, the stream threads
//! that claim them, and queries that read them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use rill_log::{Offset, TopicPartition};

use crate::error::Result;
use crate::store::KeyValueBytesStore;
use crate::task::TaskId;

/// One store of a standby task.
pub(super) struct StandbyStore {
    pub engine: Arc<dyn KeyValueBytesStore>,
    pub changelog: TopicPartition,
    /// Next changelog offset to apply.
    pub position: Offset,
    /// Whether records were applied since the last checkpoint.
    pub dirty: bool,
    /// Opened since the consumer last moved to `position`.
    pub seek_pending: bool,
}

impl StandbyStore {
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.dirty {
            self.engine.write_checkpoint(self.position)?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct State {
    /// Standby tasks kept here, with their stores.
    pub tasks: BTreeMap<TaskId, Vec<StandbyStore>>,
    /// Tasks active (or being made active) here: no standby for them.
    pub claimed: BTreeSet<TaskId>,
}

/// The standby copies of an application instance.
#[derive(Default)]
pub(crate) struct Standbys {
    pub(super) state: Mutex<State>,
    /// Records applied to standby copies so far.
    pub records_applied: AtomicU64,
}

impl Standbys {
    /// A stream thread is about to open `task`'s stores: the standby copy, if any, is
    /// checkpointed and closed, and none is kept while the task is active here.
    pub fn claim(&self, task: TaskId) {
        let mut state = self.state.lock();
        state.claimed.insert(task);
        if let Some(stores) = state.tasks.remove(&task) {
            close_stores(task, stores);
        }
    }

    /// `task` is no longer active here (its stores are closed): it may get a standby again.
    pub fn release(&self, task: TaskId) {
        self.state.lock().claimed.remove(&task);
    }

    /// The standby tasks kept here.
    pub fn tasks(&self) -> Vec<TaskId> {
        self.state.lock().tasks.keys().copied().collect()
    }

    /// The value of `key` in the standby copy of `task`'s store whose changelog partition is
    /// `changelog`: `None` when no such copy is kept here.
    pub fn get(
        &self,
        task: TaskId,
        changelog: &TopicPartition,
        key: &[u8],
    ) -> Result<Option<Option<bytes::Bytes>>> {
        let state = self.state.lock();
        let Some(store) = state
            .tasks
            .get(&task)
            .and_then(|stores| stores.iter().find(|s| &s.changelog == changelog))
        else {
            return Ok(None);
        };
        store.engine.get(key).map(Some)
    }

    /// Each copied changelog partition with the next offset its copy will apply.
    pub fn positions(&self) -> Vec<(TopicPartition, Offset)> {
        self.state
            .lock()
            .tasks
            .values()
            .flatten()
            .map(|store| (store.changelog.clone(), store.position))
            .collect()
    }

    pub(super) fn close_all(&self) {
        let tasks = std::mem::take(&mut self.state.lock().tasks);
        for (task, stores) in tasks {
            close_stores(task, stores);
        }
    }
}

pub(super) fn close_stores(task: TaskId, stores: Vec<StandbyStore>) {
    for mut store in stores {
        if let Err(error) = store.checkpoint() {
            // Only costs a longer restore.
            tracing::warn!(%task, changelog = %store.changelog, %error, "standby copy not checkpointed");
        }
    }
}
