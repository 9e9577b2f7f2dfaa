//! The state an application's stream threads, global reader, standby keeper and queries
//! share. It depends on nothing that uses it: the application creates it and hands it on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Condvar, Mutex, RwLock};
use rill_log::{Producer, ProducerRecord};

use crate::error::StreamsError;
use crate::store::KeyValueBytesStore;
use crate::task::TaskId;

use super::instances::InstanceInfo;
use super::lifecycle::Lifecycle;
use super::standby_copies::Standbys;
use super::topics::{TopicLayout, instances_topic};

/// Engines of local tasks: store -> partition -> engine.
pub(crate) type StoreRegistry = HashMap<String, BTreeMap<i32, Arc<dyn KeyValueBytesStore>>>;

/// State shared by the threads of an application and its query side.
pub(crate) struct Shared {
    pub application_id: String,
    pub instance_id: String,
    pub application_server: Option<String>,
    pub layout: TopicLayout,
    pub running: AtomicBool,
    /// Set (and announced) when a stream thread stops with an error.
    pub failed: Mutex<bool>,
    pub failed_changed: Condvar,
    pub records_processed: AtomicU64,
    pub records_restored: AtomicU64,
    /// Most records a task held buffered from one input partition, since the start.
    pub most_buffered: AtomicU64,
    /// Records windowed operations dropped as late, summed over all tasks.
    pub late_records_dropped: AtomicU64,
    pub listener_errors: Mutex<Vec<StreamsError>>,
    /// Stream threads that failed and were started again.
    pub threads_replaced: AtomicU64,
    /// Warm copies of other instances' tasks kept here.
    pub standbys: Standbys,
    /// Engines of local tasks: store -> partition -> engine.
    pub local_stores: RwLock<StoreRegistry>,
    /// (thread index, task) of every local task.
    pub local_tasks: RwLock<BTreeSet<(usize, TaskId)>>,
    /// Every instance's registry entry, read from the registry topic.
    pub instances: RwLock<HashMap<String, InstanceInfo>>,
    /// The registry's reader when no global-table thread follows it (see `refresh_registry`).
    pub registry: Mutex<Option<Box<dyn RegistryReader>>>,
    pub publisher: Mutex<Option<Box<dyn Producer>>>,
    pub lifecycle: Lifecycle,
}

/// Brings [`Shared::instances`] up to date with the registry topic on demand (the global
/// reader implements it for applications without global tables, which run no reader thread).
pub(crate) trait RegistryReader: Send {
    /// Applies what the registry gained since the last read.
    fn refresh(&mut self, shared: &Shared);
    /// Releases the reader's consumer.
    fn close(self: Box<Self>);
}

impl Shared {
    /// Brings `instances` up to date with the registry topic, when no background reader does.
    /// Skipped if another thread is at it: its read is as fresh.
    pub fn refresh_registry(&self) {
        if let Some(mut registry) = self.registry.try_lock()
            && let Some(follower) = registry.as_mut()
        {
            follower.refresh(self);
        }
    }

    /// Publishes this instance's tasks to the registry topic.
    pub fn tasks_changed(&self) {
        let info = InstanceInfo {
            host: self.application_server.clone(),
            tasks: self
                .local_tasks
                .read()
                .iter()
                .map(|(_, t)| (t.subtopology, t.partition))
                .collect(),
        };
        self.instances
            .write()
            .insert(self.instance_id.clone(), info.clone());
        if let Some(publisher) = self.publisher.lock().as_ref() {
            let record = ProducerRecord::new(instances_topic(&self.application_id))
                .key(self.instance_id.clone().into_bytes())
                .value(info.encode());
            if let Err(error) = publisher.send(record) {
                tracing::warn!(%error, "could not publish this instance's tasks");
            }
        }
    }
}
