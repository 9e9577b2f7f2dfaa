//! Runs a topology deterministically in the calling thread, without a log: pipe records into
//! input topics, read what it writes, inspect its stores, move its wall clock.
//!
//! Like Kafka Streams' `TopologyTestDriver`, every topic has one partition, so every
//! sub-topology has one task; records written to a topic that another sub-topology reads
//! (repartition topics included) are processed at once, before `pipe` returns. Also like it,
//! the driver commits after every record: the stores' record caches are flushed then, so a
//! changelog holds one record per key and input record, whatever the cache settings.
//!
//! ```
//! use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("in").filter(|_, v| v.len() > 2).to("out");
//! let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
//! driver.pipe("in", &"k".to_string(), &"hello".to_string(), 1).unwrap();
//! driver.pipe("in", &"k".to_string(), &"hi".to_string(), 2).unwrap();
//! let out = driver.read_output::<String, String>("out").unwrap();
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].value, "hello");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_log::ConsumedRecord;

use crate::collector::{OutputRecord, RecordCollector};
use crate::error::{Result, StreamsError};
use crate::graph::{InMemoryStores, TaskStateTemplate, Topology};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde};
use crate::store::{
    CacheBudget, InMemoryKeyValueStore, KeyValueBytesStore, Layout, ReadOnlyKeyValueStore,
    ReadOnlyWindowStore, default_cache_max_bytes,
};
use crate::task::{DeserializationPolicy, ProcessingErrorPolicy, Task, TaskId, TaskMetrics};

#[derive(Default)]
struct Capture {
    records: Vec<OutputRecord>,
}

impl RecordCollector for Capture {
    fn send(&mut self, record: OutputRecord) -> Result<()> {
        self.records.push(record);
        Ok(())
    }

    /// The driver's topics have one partition each, as its tasks do.
    fn partitions(&mut self, _topic: &str) -> Result<i32> {
        Ok(1)
    }
}

/// Runs a topology in one thread without a log.
pub struct TopologyTestDriver {
    topology: Topology,
    application_id: Arc<str>,
    tasks: BTreeMap<TaskId, Task>,
    capture: Rc<RefCell<Capture>>,
    outputs: HashMap<String, VecDeque<OutputRecord>>,
    offsets: HashMap<String, i64>,
    globals: HashMap<String, Arc<dyn KeyValueBytesStore>>,
    wall_clock: i64,
}

impl TopologyTestDriver {
    /// Instantiates every task of the topology, with undecodable records sent to the
    /// dead-letter topic `<application>-dlq`.
    pub fn new(topology: Topology, application_id: &str) -> Result<Self> {
        let policy = DeserializationPolicy::DeadLetter {
            topic: format!("{application_id}-dlq"),
        };
        Self::with_policy(topology, application_id, policy)
    }

    /// Instantiates every task with the given deserialization-error policy (processing errors
    /// fail).
    pub fn with_policy(
        topology: Topology,
        application_id: &str,
        deserialization: DeserializationPolicy,
    ) -> Result<Self> {
        Self::with_policies(
            topology,
            application_id,
            deserialization,
            ProcessingErrorPolicy::Fail,
        )
    }

    /// Instantiates every task with the given deserialization- and processing-error policies.
    pub fn with_policies(
        topology: Topology,
        application_id: &str,
        deserialization: DeserializationPolicy,
        processing: ProcessingErrorPolicy,
    ) -> Result<Self> {
        let application_id: Arc<str> = Arc::from(application_id);
        let capture = Rc::new(RefCell::new(Capture::default()));
        let globals: HashMap<String, Arc<dyn KeyValueBytesStore>> = topology
            .global_stores
            .iter()
            .map(|g| {
                let engine: Arc<dyn KeyValueBytesStore> =
                    Arc::new(InMemoryKeyValueStore::new(g.name.clone()));
                (g.name.clone(), engine)
            })
            .collect();
        let mut tasks = BTreeMap::new();
        let cache = CacheBudget::new(default_cache_max_bytes());
        for sub in topology.subtopologies() {
            let id = TaskId {
                subtopology: sub.id,
                partition: 0,
            };
            let template = TaskStateTemplate {
                application_id: application_id.clone(),
                collector: capture.clone(),
                deserialization: deserialization.clone(),
                processing: processing.clone(),
                wall_clock: 0,
                cache: Some(cache.clone()),
            };
            tasks.insert(
                id,
                topology.instantiate(template, id, &mut InMemoryStores, &globals)?,
            );
        }
        let mut driver = TopologyTestDriver {
            topology,
            application_id,
            tasks,
            capture,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            globals,
            wall_clock: 0,
        };
        driver.route_outputs()?;
        Ok(driver)
    }

    /// Pipes a record with the types' default serdes into `topic`.
    pub fn pipe<K: DefaultSerde, V: DefaultSerde>(
        &mut self,
        topic: &str,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<()> {
        let key = serialize(&K::default_serde(), topic, key, "key")?;
        // `None` of an `Option` value type is piped as a tombstone.
        let value = V::default_serde()
            .serialize_nullable(topic, value)
            .map_err(|source| StreamsError::Serde {
                topic: topic.into(),
                what: "value",
                source,
            })?;
        self.pipe_raw(topic, Some(key), value, timestamp)
    }

    /// Pipes raw bytes (for tombstones and undecodable records).
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<()> {
        self.deliver(OutputRecord {
            topic: topic.to_string(),
            partition: Some(0),
            key,
            value,
            timestamp,
            headers: Vec::new(),
        })?;
        self.route_outputs()
    }

    /// Hands a record to whatever reads its topic: global stores, then tasks.
    fn deliver(&mut self, record: OutputRecord) -> Result<()> {
        let offset = self.offsets.entry(record.topic.clone()).or_insert(0);
        let consumed = ConsumedRecord {
            topic: Arc::from(record.topic.as_str()),
            partition: 0,
            offset: *offset,
            timestamp: record.timestamp,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
        };
        *offset += 1;
        for global in self
            .topology
            .global_stores
            .iter()
            .filter(|g| g.topic == record.topic)
        {
            if let (Some(engine), Some(key)) = (self.globals.get(&global.name), &record.key) {
                match &record.value {
                    Some(value) => engine.put(key.clone(), value.clone())?,
                    None => {
                        engine.delete(key)?;
                    }
                }
            }
        }
        let app = self.application_id.clone();
        let readers: Vec<TaskId> = self
            .tasks
            .keys()
            .copied()
            .filter(|id| {
                self.topology
                    .source_topics(id.subtopology, &app)
                    .contains(&record.topic)
            })
            .collect();
        for id in readers {
            if let Some(task) = self.tasks.get_mut(&id) {
                task.process(&consumed)?;
                task.flush_caches()?;
            }
        }
        Ok(())
    }

    /// Processes captured records whose topic is read by a task, and keeps all of them as
    /// outputs, until nothing new was written.
    fn route_outputs(&mut self) -> Result<()> {
        loop {
            let written = std::mem::take(&mut self.capture.borrow_mut().records);
            if written.is_empty() {
                return Ok(());
            }
            for record in written {
                self.outputs
                    .entry(record.topic.clone())
                    .or_default()
                    .push_back(record.clone());
                let read_internally = self.tasks.keys().any(|id| {
                    self.topology
                        .source_topics(id.subtopology, &self.application_id)
                        .contains(&record.topic)
                }) || self
                    .topology
                    .global_stores
                    .iter()
                    .any(|g| g.topic == record.topic);
                if read_internally {
                    self.deliver(record)?;
                }
            }
        }
    }

    /// Takes the records written to `topic` so far, decoded with the default serdes.
    pub fn read_output<K: DefaultSerde, V: DefaultSerde>(
        &mut self,
        topic: &str,
    ) -> Result<Vec<Record<K, V>>> {
        self.read_output_with(topic, K::default_serde(), V::default_serde())
    }

    /// Takes the records written to `topic` so far, decoded with the given serdes.
    pub fn read_output_with<K: 'static, V: 'static>(
        &mut self,
        topic: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Result<Vec<Record<K, V>>> {
        self.read_raw(topic)
            .into_iter()
            .map(|record| {
                Record::decode_parts(
                    topic,
                    (record.key.as_deref(), record.value.as_deref()),
                    record.timestamp,
                    record.headers,
                    (&*key_serde, &*value_serde),
                )
            })
            .collect()
    }

    /// Takes the raw records written to `topic` so far (changelog and dead-letter topics too).
    pub fn read_raw(&mut self, topic: &str) -> Vec<OutputRecord> {
        self.outputs
            .remove(topic)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// A read-only view of a store (of the single task holding it, or a global store).
    pub fn key_value_store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
    ) -> Option<ReadOnlyKeyValueStore<K, V>> {
        let engine = self
            .tasks
            .values()
            .find_map(|task| task.state.stores.get(name).map(|s| s.engine.clone()))?;
        Some(ReadOnlyKeyValueStore::new(
            engine,
            K::default_serde(),
            V::default_serde(),
        ))
    }

    /// A read-only view of a window store (of a windowed aggregation over time windows, or
    /// a store added for processors).
    pub fn window_store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
    ) -> Option<ReadOnlyWindowStore<K, V>> {
        self.windowed_store(name, Layout::Window)
    }

    /// A read-only view of a session store (of a session-windowed aggregation).
    pub fn session_store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
    ) -> Option<ReadOnlyWindowStore<K, V>> {
        self.windowed_store(name, Layout::Session)
    }

    fn windowed_store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
        layout: Layout,
    ) -> Option<ReadOnlyWindowStore<K, V>> {
        let engine = self
            .tasks
            .values()
            .find_map(|task| task.state.stores.get(name).map(|s| s.engine.clone()))?;
        Some(ReadOnlyWindowStore::new(
            engine,
            K::default_serde(),
            V::default_serde(),
            layout,
        ))
    }

    /// Moves wall-clock time forward, firing wall-clock punctuators that become due.
    pub fn advance_wall_clock(&mut self, by: Duration) -> Result<()> {
        self.wall_clock = self
            .wall_clock
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        for task in self.tasks.values_mut() {
            task.advance_wall_clock(self.wall_clock)?;
            task.flush_caches()?;
        }
        self.route_outputs()
    }

    /// Counters summed over all tasks.
    pub fn metrics(&self) -> TaskMetrics {
        self.tasks
            .values()
            .fold(TaskMetrics::default(), |sum, task| TaskMetrics {
                records_in: sum.records_in + task.state.metrics.records_in,
                dead_letters: sum.dead_letters + task.state.metrics.dead_letters,
                late_records_dropped: sum.late_records_dropped
                    + task.state.metrics.late_records_dropped,
                processing_errors: sum.processing_errors + task.state.metrics.processing_errors,
            })
    }
}

impl Drop for TopologyTestDriver {
    fn drop(&mut self) {
        for task in self.tasks.values_mut() {
            task.close();
        }
    }
}

fn serialize<T: 'static>(
    serde: &SharedSerde<T>,
    topic: &str,
    value: &T,
    what: &'static str,
) -> Result<Bytes> {
    serde
        .serialize(topic, value)
        .map_err(|source| StreamsError::Serde {
            topic: topic.into(),
            what,
            source,
        })
}
