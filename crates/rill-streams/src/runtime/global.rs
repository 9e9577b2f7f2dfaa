//! The background reader of an application: keeps global tables complete (every partition of
//! their topics) and the registry of instances (who owns which tasks, at which address) up to
//! date. Both are read to their end before the application starts processing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_log::{ConsumedRecord, Consumer, ConsumerConfig, Log, SeekTo, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::graph::Topology;
use crate::store::{
    Engine, KeyValueBytesStore, PersistentKeyValueStore, default_record_cache_bytes,
};

use super::instances::InstanceInfo;
use super::shared::{RegistryReader, Shared};
use super::topics::instances_topic;

/// Global store engines by store name.
pub(crate) type GlobalStores = HashMap<String, Arc<dyn KeyValueBytesStore>>;

/// The running background reader.
pub(crate) struct GlobalReader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl GlobalReader {
    /// Stops the reader and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for GlobalReader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates the global stores, reads global topics and the instance registry to their end, then
/// keeps reading in a background thread.
///
/// Global stores are keyspaces of the process's storage engine (`<state dir>/<application>/
/// global/<store>`), not maps in memory: a global table holds its whole topic. They are
/// emptied and read again from the topic's start at every start, so they need no checkpoint.
pub(crate) fn start(
    log: &dyn Log,
    topology: &Topology,
    state_dir: &Path,
    shared: Arc<Shared>,
) -> Result<(GlobalStores, GlobalReader)> {
    let failed = |e| StreamsError::log("reading global tables", e);
    let mut stores: HashMap<String, Arc<dyn KeyValueBytesStore>> = HashMap::new();
    let mut by_topic: HashMap<String, Vec<Arc<dyn KeyValueBytesStore>>> = HashMap::new();
    let global_dir = state_dir.join(&shared.application_id).join("global");
    for global in &topology.global_stores {
        let store = PersistentKeyValueStore::open_in(
            &Engine::of(state_dir)?,
            &global_dir,
            &global.name,
            default_record_cache_bytes(),
        )?;
        store.clear()?;
        let engine: Arc<dyn KeyValueBytesStore> = Arc::new(store);
        stores.insert(global.name.clone(), engine.clone());
        by_topic
            .entry(global.topic.clone())
            .or_default()
            .push(engine);
    }
    let registry_topic = instances_topic(&shared.application_id);
    let mut partitions = vec![TopicPartition::new(registry_topic.clone(), 0)];
    for topic in by_topic.keys() {
        let count = log
            .admin()
            .describe_topic(topic)
            .map_err(failed)?
            .config
            .partitions;
        partitions.extend((0..count).map(|p| TopicPartition::new(topic.clone(), p)));
    }
    let consumer = log
        .consumer(
            &ConsumerConfig {
                max_poll_records: Some(10_000),
                ..ConsumerConfig::default()
            },
            None,
        )
        .map_err(failed)?;
    consumer.assign(&partitions).map_err(failed)?;
    let mut ends = Vec::with_capacity(partitions.len());
    for partition in &partitions {
        consumer
            .seek(partition, SeekTo::Beginning)
            .map_err(failed)?;
        ends.push(consumer.watermarks(partition).map_err(failed)?.high);
    }
    let apply = Applier {
        by_topic,
        registry_topic,
    };
    let started = Instant::now();
    loop {
        let mut caught_up = true;
        for (partition, end) in partitions.iter().zip(&ends) {
            caught_up &= consumer.position(partition).map_err(failed)? >= *end;
        }
        if caught_up {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(StreamsError::TimedOut {
                what: "loading the global tables".into(),
                waited: started.elapsed(),
            });
        }
        apply.apply(
            &shared,
            consumer.poll(Duration::from_millis(100)).map_err(failed)?,
        )?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    if topology.global_stores.is_empty() {
        // Only the registry to follow: it changes when instances come and go, and is read only
        // by interactive queries and standby keeping, so they catch it up when they need it
        // (`Shared::refresh_registry`) and the application runs no thread for it.
        *shared.registry.lock() = Some(Box::new(RegistryFollower {
            consumer,
            apply,
            last_read: Instant::now(),
        }));
        return Ok((stores, GlobalReader { stop, handle: None }));
    }
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("rill-global".into())
        .spawn(move || follow(consumer, apply, shared, thread_stop))
        .map_err(|source| StreamsError::ThreadStart {
            what: "global table",
            source,
        })?;
    Ok((
        stores,
        GlobalReader {
            stop,
            handle: Some(handle),
        },
    ))
}

/// The registry reader of an application without global tables, read on demand.
struct RegistryFollower {
    consumer: Box<dyn Consumer>,
    apply: Applier,
    last_read: Instant,
}

/// How stale the registry may be when a query or the standby keeper reads it: reading it on
/// every query would cost a poll per `GET`.
const REGISTRY_REFRESH: Duration = Duration::from_millis(100);

impl RegistryReader for RegistryFollower {
    /// Applies what the registry topic has gained since the last read, unless that read was
    /// less than [`REGISTRY_REFRESH`] ago.
    fn refresh(&mut self, shared: &Shared) {
        if self.last_read.elapsed() < REGISTRY_REFRESH {
            return;
        }
        self.last_read = Instant::now();
        loop {
            let read = self
                .consumer
                .poll(Duration::ZERO)
                .map_err(|e| StreamsError::log("reading the instance registry", e))
                .and_then(|records| {
                    let more = !records.is_empty();
                    self.apply.apply(shared, records).map(|()| more)
                });
            match read {
                Ok(true) => continue,
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, "instance registry not read");
                    return;
                }
            }
        }
    }

    fn close(self: Box<Self>) {
        let _ = self.consumer.close();
    }
}

fn follow(consumer: Box<dyn Consumer>, apply: Applier, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        let result = consumer
            .poll(Duration::from_millis(100))
            .map_err(|e| StreamsError::log("reading global tables", e))
            .and_then(|records| apply.apply(&shared, records));
        if let Err(error) = result {
            tracing::error!(%error, "global table reader stopped");
            return;
        }
    }
    let _ = consumer.close();
}

struct Applier {
    by_topic: HashMap<String, Vec<Arc<dyn KeyValueBytesStore>>>,
    registry_topic: String,
}

impl Applier {
    fn apply(&self, shared: &Shared, records: Vec<ConsumedRecord>) -> Result<()> {
        for record in records {
            let Some(key) = record.key else { continue };
            if *record.topic == *self.registry_topic {
                let instance = String::from_utf8_lossy(&key).into_owned();
                // This instance knows its own tasks; its old entry (from before a restart,
                // perhaps at another address) must not stand in for them.
                if instance == shared.instance_id {
                    continue;
                }
                let info = record.value.as_deref().and_then(InstanceInfo::decode);
                let mut instances = shared.instances.write();
                match info {
                    Some(info) => instances.insert(instance, info),
                    None => instances.remove(&instance),
                };
                continue;
            }
            for engine in self.by_topic.get(&*record.topic).into_iter().flatten() {
                match &record.value {
                    Some(value) => engine.put(key.clone(), value.clone())?,
                    None => {
                        engine.delete(&key)?;
                    }
                }
            }
        }
        Ok(())
    }
}
