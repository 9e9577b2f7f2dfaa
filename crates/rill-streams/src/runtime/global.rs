//! The background reader of an application: keeps global tables complete (every partition of
//! their topics) and the registry of instances (who owns which tasks, at which address) up to
//! date. Both are read to their end before the application starts processing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_log::{ConsumedRecord, Consumer, ConsumerConfig, Log, SeekTo, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::graph::Topology;
use crate::store::{InMemoryKeyValueStore, KeyValueBytesStore};

use super::instances::InstanceInfo;
use super::shared::Shared;
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
pub(crate) fn start(
    log: &dyn Log,
    topology: &Topology,
    shared: Arc<Shared>,
) -> Result<(GlobalStores, GlobalReader)> {
    let failed = |e| StreamsError::log("reading global tables", e);
    let mut stores: HashMap<String, Arc<dyn KeyValueBytesStore>> = HashMap::new();
    let mut by_topic: HashMap<String, Vec<Arc<dyn KeyValueBytesStore>>> = HashMap::new();
    for global in &topology.global_stores {
        let engine: Arc<dyn KeyValueBytesStore> =
            Arc::new(InMemoryKeyValueStore::new(global.name.clone()));
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
        shared,
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
        apply.apply(consumer.poll(Duration::from_millis(100)).map_err(failed)?)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("rill-global".into())
        .spawn(move || follow(consumer, apply, thread_stop))
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

fn follow(consumer: Box<dyn Consumer>, apply: Applier, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        let result = consumer
            .poll(Duration::from_millis(100))
            .map_err(|e| StreamsError::log("reading global tables", e))
            .and_then(|records| apply.apply(records));
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
    shared: Arc<Shared>,
}

impl Applier {
    fn apply(&self, records: Vec<ConsumedRecord>) -> Result<()> {
        for record in records {
            let Some(key) = record.key else { continue };
            if *record.topic == *self.registry_topic {
                let instance = String::from_utf8_lossy(&key).into_owned();
                // This instance knows its own tasks; its old entry (from before a restart,
                // perhaps at another address) must not stand in for them.
                if instance == self.shared.instance_id {
                    continue;
                }
                let info = record.value.as_deref().and_then(InstanceInfo::decode);
                let mut instances = self.shared.instances.write();
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
