//! The application: starts stream threads and the global reader, stops them, and answers
//! interactive queries from local stores plus "who owns this key" from the instance registry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use rill_log::{Log, Producer, ProducerConfig, ProducerRecord, partition_for_key};

use crate::error::{Result, StreamsError};
use crate::graph::Topology;
use crate::serde::{DefaultSerde, SharedSerde};
use crate::store::{KeyValueBytesStore, Layout};

use super::window_query::QueryableWindowStore;
use crate::task::TaskId;

use super::config::{StreamsConfig, ThreadFailurePolicy};
use super::global::{self, GlobalReader};
use super::instances::InstanceInfo;
use super::thread::{self, ThreadSetup};
use super::topics::{self, TopicLayout, instances_topic};

/// Lifecycle of an application (Kafka Streams' `KafkaStreams.State`), reported to a
/// [`StateListener`] on every change:
///
/// ```text
/// Created -> Rebalancing <-> Running -> PendingShutdown -> NotRunning
///                  \            |
///                   +-> Error <-+   (a stream thread failed and is not replaced)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Built, not started.
    Created,
    /// Started; a stream thread is joining the group, taking or giving up tasks, or restoring
    /// their stores. Queries of the moving tasks' stores may be refused meanwhile.
    Rebalancing,
    /// Every stream thread has its tasks and is processing.
    Running,
    /// A thread stopped with an error (see [`StreamsApp::close`]'s result).
    Error,
    /// [`StreamsApp::close`] is stopping the threads.
    PendingShutdown,
    /// Closed.
    NotRunning,
}

/// Told of every change of an application's [`AppState`], as `(old, new)`: for readiness
/// probes, or to log what an instance is doing. Called on the thread that caused the change
/// (a stream thread or the caller of `start` / `close`), one change at a time, so it must be
/// quick and must not call back into the application.
///
/// ```
/// use std::sync::Arc;
/// use rill_streams::{AppState, StreamsConfig};
/// let mut config = StreamsConfig::new("word-count", "/tmp/state");
/// config.state_listener = Some(Arc::new(|old: AppState, new: AppState| {
///     eprintln!("word-count: {old:?} -> {new:?}");
/// }));
/// ```
pub type StateListener = Arc<dyn Fn(AppState, AppState) + Send + Sync>;

/// The application's state as the threads see it, and who is told of changes.
pub(crate) struct Lifecycle {
    state: Mutex<AppState>,
    /// Stream threads not yet settled: joining, in a rebalance, or restoring.
    rebalancing: Mutex<usize>,
    listener: Option<StateListener>,
}

impl Lifecycle {
    fn new(listener: Option<StateListener>) -> Self {
        Lifecycle {
            state: Mutex::new(AppState::Created),
            rebalancing: Mutex::new(0),
            listener,
        }
    }

    pub fn get(&self) -> AppState {
        *self.state.lock()
    }

    /// Moves to `new` unless the application is already past it (a closing or failed
    /// application does not go back to rebalancing).
    pub fn set(&self, new: AppState) {
        let mut state = self.state.lock();
        let old = *state;
        let allowed = match old {
            AppState::NotRunning => false,
            AppState::PendingShutdown => new == AppState::NotRunning,
            AppState::Error => matches!(new, AppState::PendingShutdown | AppState::NotRunning),
            _ => true,
        };
        if old == new || !allowed {
            return;
        }
        *state = new;
        if let Some(listener) = &self.listener {
            listener(old, new);
        }
    }

    /// A stream thread starts rebalancing (it starts, or its assignment changes).
    pub fn thread_rebalancing(&self) {
        let mut count = self.rebalancing.lock();
        *count += 1;
        self.set(AppState::Rebalancing);
        drop(count);
    }

    /// A stream thread has its tasks (or stopped while rebalancing).
    pub fn thread_settled(&self) {
        let mut count = self.rebalancing.lock();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.set(AppState::Running);
        }
        drop(count);
    }
}

/// One stream thread's part in the [`Lifecycle`]: counted as rebalancing at most once, from
/// its start (counted by whoever starts it) until its first assignment, and again from each
/// revocation until the next assignment.
pub(crate) struct ThreadSettling {
    shared: Arc<Shared>,
    rebalancing: AtomicBool,
}

impl ThreadSettling {
    /// For a thread already counted as rebalancing.
    pub fn new(shared: Arc<Shared>) -> Self {
        ThreadSettling {
            shared,
            rebalancing: AtomicBool::new(true),
        }
    }

    pub fn rebalancing(&self) {
        if !self.rebalancing.swap(true, Ordering::AcqRel) {
            self.shared.lifecycle.thread_rebalancing();
        }
    }

    pub fn settled(&self) {
        if self.rebalancing.swap(false, Ordering::AcqRel) {
            self.shared.lifecycle.thread_settled();
        }
    }
}

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
    /// Records windowed operations dropped as late, summed over all tasks.
    pub late_records_dropped: AtomicU64,
    pub listener_errors: Mutex<Vec<StreamsError>>,
    /// Stream threads that failed and were started again.
    pub threads_replaced: AtomicU64,
    /// Warm copies of other instances' tasks kept here.
    pub standbys: super::standby::Standbys,
    /// Engines of local tasks: store -> partition -> engine.
    pub local_stores: RwLock<StoreRegistry>,
    /// (thread index, task) of every local task.
    pub local_tasks: RwLock<BTreeSet<(usize, TaskId)>>,
    /// Every instance's registry entry, read from the registry topic.
    pub instances: RwLock<HashMap<String, InstanceInfo>>,
    pub publisher: Mutex<Option<Box<dyn Producer>>>,
    pub lifecycle: Lifecycle,
}

impl Shared {
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

/// A topology running on a log: Kafka Streams' `KafkaStreams`.
///
/// ```no_run
/// use std::sync::Arc;
/// use rill_streams::{StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig};
/// # fn demo(log: Arc<dyn rill_log::Log>) -> rill_streams::Result<()> {
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("words").group_by_key().count(StoreOptions::in_memory("counts"));
/// let mut app = StreamsApp::new(builder.build()?, log, StreamsConfig::new("counter", "/tmp/state"));
/// app.start()?;
/// let counts = app.store::<String, i64>("counts")?;
/// let _ = counts.get(&"hello".to_string());
/// app.close()?;
/// # Ok(()) }
/// ```
pub struct StreamsApp {
    topology: Arc<Topology>,
    log: Arc<dyn Log>,
    config: Arc<StreamsConfig>,
    state: AppState,
    shared: Option<Arc<Shared>>,
    threads: Vec<JoinHandle<Result<()>>>,
    global: Option<GlobalReader>,
    standby: Option<super::standby::StandbyKeeper>,
}

impl StreamsApp {
    /// An application of `topology` on `log`; nothing runs until [`start`](Self::start).
    pub fn new(topology: Topology, log: Arc<dyn Log>, config: StreamsConfig) -> Self {
        StreamsApp {
            topology: Arc::new(topology),
            log,
            config: Arc::new(config),
            state: AppState::Created,
            shared: None,
            threads: Vec::new(),
            global: None,
            standby: None,
        }
    }

    /// Creates internal topics, loads global tables and starts the stream threads.
    pub fn start(&mut self) -> Result<()> {
        if self.state != AppState::Created {
            return Err(StreamsError::NotRunning {
                state: "already started",
            });
        }
        let config = self.config.clone();
        let layout = topics::prepare(
            self.log.as_ref(),
            &self.topology,
            &config.application_id,
            &config.deserialization,
            &config.processing_errors,
        )?;
        let publisher = self
            .log
            .producer(&ProducerConfig::default())
            .map_err(|e| StreamsError::log("creating the registry producer", e))?;
        let shared = Arc::new(Shared {
            application_id: config.application_id.clone(),
            instance_id: instance_id(&config.state_dir.join(&config.application_id))?,
            application_server: config.application_server.clone(),
            layout,
            running: AtomicBool::new(true),
            failed: Mutex::new(false),
            failed_changed: Condvar::new(),
            records_processed: AtomicU64::new(0),
            records_restored: AtomicU64::new(0),
            late_records_dropped: AtomicU64::new(0),
            threads_replaced: AtomicU64::new(0),
            standbys: Default::default(),
            listener_errors: Mutex::new(Vec::new()),
            local_stores: RwLock::new(HashMap::new()),
            local_tasks: RwLock::new(BTreeSet::new()),
            instances: RwLock::new(HashMap::new()),
            publisher: Mutex::new(Some(publisher)),
            lifecycle: Lifecycle::new(config.state_listener.clone()),
        });
        // Replace what an earlier run of this instance published (its address may differ),
        // so other instances stop forwarding to it before its tasks are back.
        shared.tasks_changed();
        let (globals, reader) = global::start(self.log.as_ref(), &self.topology, shared.clone())?;
        self.global = Some(reader);
        for index in 0..config.threads.max(1) {
            // Rebalancing until the thread's first assignment is in place.
            shared.lifecycle.thread_rebalancing();
            let setup = ThreadSetup {
                index,
                log: self.log.clone(),
                topology: self.topology.clone(),
                config: config.clone(),
                shared: shared.clone(),
                globals: globals.clone(),
            };
            let settling = Arc::new(ThreadSettling::new(shared.clone()));
            let handle = std::thread::Builder::new()
                .name(format!("rill-stream-{index}"))
                .spawn(move || supervise(setup, &settling))
                .map_err(|source| StreamsError::ThreadStart {
                    what: "stream",
                    source,
                })?;
            self.threads.push(handle);
        }
        let keeps_copies = self
            .topology
            .stores
            .iter()
            .any(|store| store.logged && store.kind == crate::graph::StoreKind::Persistent);
        if config.standby_replicas > 0 && keeps_copies {
            self.standby = Some(super::standby::StandbyKeeper::start(
                self.log.clone(),
                self.topology.clone(),
                shared.clone(),
                config.state_dir.clone(),
                config.standby_replicas,
            )?);
        }
        self.shared = Some(shared);
        // Started: from here on `state()` is the lifecycle's.
        self.state = AppState::Rebalancing;
        Ok(())
    }

    /// The application's state (see [`AppState`]; [`StreamsConfig::state_listener`] hears
    /// every change).
    pub fn state(&self) -> AppState {
        match &self.shared {
            Some(shared) => shared.lifecycle.get(),
            None => self.state,
        }
    }

    /// Waits up to `timeout` for a stream thread to stop with an error; answers whether one did.
    pub fn wait_for_error(&self, timeout: std::time::Duration) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let mut failed = shared.failed.lock();
        if !*failed {
            let _ = shared.failed_changed.wait_for(&mut failed, timeout);
        }
        *failed
    }

    /// Stream threads that failed and were replaced (see
    /// [`ThreadFailurePolicy::ReplaceThread`]).
    pub fn threads_replaced(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.threads_replaced.load(Ordering::Relaxed))
    }

    /// The tasks of other instances this one keeps warm copies of (see
    /// [`StreamsConfig::standby_replicas`]).
    pub fn standby_tasks(&self) -> Vec<TaskId> {
        self.shared
            .as_ref()
            .map_or_else(Vec::new, |s| s.standbys.tasks())
    }

    /// Each changelog partition copied here with the next offset its copy will apply: the
    /// copy's lag is the partition's end minus it.
    pub fn standby_positions(&self) -> Vec<(rill_log::TopicPartition, rill_log::Offset)> {
        self.shared
            .as_ref()
            .map_or_else(Vec::new, |s| s.standbys.positions())
    }

    /// Changelog records applied to standby copies so far.
    pub fn standby_records_applied(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.standbys.records_applied.load(Ordering::Relaxed))
    }

    /// Records processed by all threads so far.
    pub fn records_processed(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.records_processed.load(Ordering::Relaxed))
    }

    /// Changelog records applied to stores while restoring them so far.
    pub fn records_restored(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.records_restored.load(Ordering::Relaxed))
    }

    /// Records windowed operations dropped because their windows had closed (stream time
    /// past the window end plus the grace period).
    pub fn late_records_dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.late_records_dropped.load(Ordering::Relaxed))
    }

    /// The stores this instance holds: per store and partition, about how many entries it
    /// has (the engines' cheap estimate, not a count). Empty when the application is not
    /// running.
    pub fn local_store_sizes(&self) -> Vec<(String, i32, u64)> {
        let Some(shared) = self.shared.as_ref() else {
            return Vec::new();
        };
        let stores = shared.local_stores.read();
        let mut sizes: Vec<(String, i32, u64)> = stores
            .iter()
            .flat_map(|(name, partitions)| {
                partitions.iter().map(move |(partition, engine)| {
                    (name.clone(), *partition, engine.approximate_len())
                })
            })
            .collect();
        sizes.sort();
        sizes
    }

    /// Read access to the local instances of a window store (a time-windowed aggregation's
    /// store), with the types' default serdes.
    pub fn window_store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
    ) -> Result<QueryableWindowStore<K, V>> {
        Ok(QueryableWindowStore::new(self.store(name)?, Layout::Window))
    }

    /// Read access to the local instances of a session store (a session-windowed
    /// aggregation's store), with the types' default serdes.
    pub fn session_store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
    ) -> Result<QueryableWindowStore<K, V>> {
        Ok(QueryableWindowStore::new(
            self.store(name)?,
            Layout::Session,
        ))
    }

    /// Stops the threads (committing their work) and the global reader; answers the first
    /// error a thread stopped with.
    pub fn close(&mut self) -> Result<()> {
        if let Some(mut keeper) = self.standby.take() {
            keeper.stop();
        }
        if let Some(shared) = &self.shared {
            shared.lifecycle.set(AppState::PendingShutdown);
            shared.running.store(false, Ordering::Release);
        }
        let mut first_error = None;
        for handle in self.threads.drain(..) {
            let outcome = handle.join().unwrap_or_else(|_| {
                Err(StreamsError::NotRunning {
                    state: "stopped by a panicking thread",
                })
            });
            if let Err(error) = outcome {
                first_error.get_or_insert(error);
            }
        }
        if let Some(mut reader) = self.global.take() {
            reader.stop();
        }
        if let Some(shared) = &self.shared {
            shared.tasks_changed();
            if let Some(publisher) = shared.publisher.lock().take() {
                let _ = publisher.flush(std::time::Duration::from_secs(5));
            }
        }
        self.state = AppState::NotRunning;
        if let Some(shared) = &self.shared {
            shared.lifecycle.set(AppState::NotRunning);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn shared(&self) -> Result<&Arc<Shared>> {
        self.shared.as_ref().ok_or(StreamsError::NotRunning {
            state: "not started",
        })
    }

    /// Read access to the local instances of a key-value store, with the types' default serdes.
    pub fn store<K: DefaultSerde, V: DefaultSerde>(
        &self,
        name: &str,
    ) -> Result<QueryableStore<K, V>> {
        self.store_with(name, K::default_serde(), V::default_serde())
    }

    /// Read access to the local instances of a key-value store whose serdes are not the
    /// types' defaults (they must be those the topology gave the store).
    pub fn store_with<K: 'static, V: 'static>(
        &self,
        name: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Result<QueryableStore<K, V>> {
        let shared = self.shared()?.clone();
        let partitions = *shared.layout.store_partitions.get(name).ok_or_else(|| {
            StreamsError::UnknownStore {
                store: name.to_string(),
                used_by: None,
            }
        })?;
        Ok(QueryableStore {
            shared,
            name: name.to_string(),
            partitions,
            key_serde,
            value_serde,
            _types: PhantomData,
        })
    }
}

impl Drop for StreamsApp {
    fn drop(&mut self) {
        if self.state == AppState::Running {
            let _ = self.close();
        }
    }
}

/// Runs a stream thread, and again after it fails when the configuration says to replace
/// failed threads; answers the error that ended it for good.
fn supervise(setup: ThreadSetup, settling: &Arc<ThreadSettling>) -> Result<()> {
    let shared = &settling.shared;
    let replace = setup.config.thread_failure == ThreadFailurePolicy::ReplaceThread;
    // Doubles after each failure in a row, so that a thread failing at once (a broker that
    // is down, say) does not spin; a thread that ran for a while starts again from the first.
    let mut backoff = REPLACE_BACKOFF_FIRST;
    loop {
        let started = std::time::Instant::now();
        let result = thread::run(setup.clone(), settling.clone());
        let Err(error) = result else {
            settling.settled();
            return Ok(());
        };
        if replace && shared.running.load(Ordering::Acquire) {
            shared.threads_replaced.fetch_add(1, Ordering::Relaxed);
            crate::runtime::metrics::thread_replaced(&shared.application_id);
            if started.elapsed() > REPLACE_BACKOFF_MAX {
                backoff = REPLACE_BACKOFF_FIRST;
            }
            tracing::error!(%error, thread = setup.index, retry_in_ms = backoff.as_millis() as u64, "stream thread failed; replacing it");
            settling.rebalancing();
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(REPLACE_BACKOFF_MAX);
            continue;
        }
        tracing::error!(%error, "stream thread stopped");
        shared.lifecycle.set(AppState::Error);
        settling.settled();
        *shared.failed.lock() = true;
        shared.failed_changed.notify_all();
        return Err(error);
    }
}

/// First wait before a failed stream thread is replaced.
const REPLACE_BACKOFF_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest wait before a failed stream thread is replaced.
const REPLACE_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a key of a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The partition of the key.
    pub partition: i32,
    /// Whether this instance holds it.
    pub local: bool,
    /// The `host:port` of the instance holding it, when known.
    pub owner: Option<String>,
}

/// Read-only access to a store across the local tasks, and the owner of any key.
pub struct QueryableStore<K, V> {
    shared: Arc<Shared>,
    name: String,
    partitions: i32,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> QueryableStore<K, V> {
    fn key_bytes(&self, key: &K) -> Result<bytes::Bytes> {
        self.key_serde
            .serialize(&self.name, key)
            .map_err(|source| StreamsError::Serde {
                topic: self.name.clone(),
                what: "key",
                source,
            })
    }

    /// The engine holding `key_bytes` on this instance, with the key's partition.
    pub(crate) fn local_engine(
        &self,
        key_bytes: &[u8],
    ) -> (i32, Option<Arc<dyn KeyValueBytesStore>>) {
        let partition = partition_for_key(key_bytes, self.partitions);
        let engine = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .and_then(|p| p.get(&partition).cloned());
        (partition, engine)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key_serde(&self) -> &SharedSerde<K> {
        &self.key_serde
    }

    pub(crate) fn value_serde(&self) -> &SharedSerde<V> {
        &self.value_serde
    }

    /// Which partition and instance hold `key`.
    pub fn metadata_for_key(&self, key: &K) -> Result<KeyQueryMetadata> {
        let partition = partition_for_key(&self.key_bytes(key)?, self.partitions);
        let local = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .is_some_and(|parts| parts.contains_key(&partition));
        let task = self
            .shared
            .layout
            .store_subtopology
            .get(&self.name)
            .map(|&subtopology| TaskId {
                subtopology,
                partition,
            });
        let owner = task.and_then(|task| {
            self.shared
                .instances
                .read()
                .values()
                .find(|info| info.owns(task))
                .and_then(|info| info.host.clone())
        });
        Ok(KeyQueryMetadata {
            partition,
            local,
            owner,
        })
    }

    /// The value of `key` from this instance's active copy of its partition or, failing that,
    /// from a standby copy kept here (see `StreamsConfig::standby_replicas`), which may lag the
    /// active copy by what it has not read yet: a stale read, as Kafka Streams' stale stores.
    /// With neither, [`StreamsError::KeyNotLocal`] naming the owner.
    pub fn get_stale(&self, key: &K) -> Result<Option<V>> {
        let not_local = match self.get(key) {
            Err(error @ StreamsError::KeyNotLocal { .. }) => error,
            answer => return answer,
        };
        let key_bytes = self.key_bytes(key)?;
        let partition = partition_for_key(&key_bytes, self.partitions);
        let Some(&subtopology) = self.shared.layout.store_subtopology.get(&self.name) else {
            return Err(not_local);
        };
        let task = TaskId {
            subtopology,
            partition,
        };
        let changelog = rill_log::TopicPartition::new(
            crate::graph::changelog_topic(&self.shared.application_id, &self.name),
            partition,
        );
        match self.shared.standbys.get(task, &changelog, &key_bytes)? {
            None => Err(not_local),
            Some(None) => Ok(None),
            Some(Some(bytes)) => self
                .value_serde
                .deserialize(&self.name, &bytes)
                .map(Some)
                .map_err(|source| StreamsError::Serde {
                    topic: self.name.clone(),
                    what: "value",
                    source,
                }),
        }
    }

    /// The value of `key` if this instance holds its partition; otherwise
    /// [`StreamsError::KeyNotLocal`] naming the owner to forward to.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key_bytes = self.key_bytes(key)?;
        let partition = partition_for_key(&key_bytes, self.partitions);
        let engine = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .and_then(|p| p.get(&partition).cloned());
        let Some(engine) = engine else {
            let owner = self.metadata_for_key(key)?.owner;
            return Err(StreamsError::KeyNotLocal {
                store: self.name.clone(),
                partition,
                owner,
            });
        };
        match engine.get(&key_bytes)? {
            None => Ok(None),
            Some(bytes) => self
                .value_serde
                .deserialize(&self.name, &bytes)
                .map(Some)
                .map_err(|source| StreamsError::Serde {
                    topic: self.name.clone(),
                    what: "value",
                    source,
                }),
        }
    }

    /// Every pair held by this instance (all its partitions of the store), in serialized
    /// key order.
    pub fn all_local(&self) -> Result<Vec<(K, V)>> {
        self.scan_local(|engine| engine.range(Bound::Unbounded, Bound::Unbounded))
    }

    /// The pairs held by this instance with keys in `from..=to`, in serialized key order
    /// (strings: byte order; integers: big-endian, so negative numbers after positive ones).
    /// A range over a whole store needs every instance's answer: keys are spread over
    /// partitions by hash, so each instance holds some of any range.
    pub fn range_local(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (from, to) = (self.key_bytes(from)?, self.key_bytes(to)?);
        self.scan_local(|engine| engine.range(Bound::Included(&from), Bound::Included(&to)))
    }

    /// The pairs held by this instance whose serialized key starts with `prefix`, in key
    /// order.
    ///
    /// ```no_run
    /// # fn demo(app: &rill_streams::StreamsApp) -> rill_streams::Result<()> {
    /// let orders = app.store::<String, String>("orders-by-customer")?;
    /// let of_customer_7 = orders.prefix_scan_local(b"7/")?;
    /// # let _ = of_customer_7; Ok(()) }
    /// ```
    pub fn prefix_scan_local(&self, prefix: &[u8]) -> Result<Vec<(K, V)>> {
        self.scan_local(|engine| crate::store::prefix_range(engine, prefix))
    }

    /// Runs `scan` on every local partition of the store and decodes the pairs, merged in
    /// key order.
    fn scan_local(
        &self,
        scan: impl Fn(&dyn KeyValueBytesStore) -> Result<crate::store::KeyValues>,
    ) -> Result<Vec<(K, V)>> {
        let engines: Vec<Arc<dyn KeyValueBytesStore>> = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        let mut pairs = Vec::new();
        for engine in engines {
            pairs.extend(scan(engine.as_ref())?);
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let decode = |what, source| StreamsError::Serde {
            topic: self.name.clone(),
            what,
            source,
        };
        pairs
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    self.key_serde
                        .deserialize(&self.name, &key)
                        .map_err(|e| decode("key", e))?,
                    self.value_serde
                        .deserialize(&self.name, &value)
                        .map_err(|e| decode("value", e))?,
                ))
            })
            .collect()
    }
}

/// This instance's id, kept in the state directory so a restarted instance reuses its
/// transactional ids and so fences a zombie predecessor.
/// The file in an application's state directory that keeps the instance's id across restarts.
pub(crate) const INSTANCE_ID_FILE: &str = "instance-id";

fn instance_id(dir: &Path) -> Result<String> {
    let file = dir.join(INSTANCE_ID_FILE);
    let io_error = |source: std::io::Error| StreamsError::StateDir {
        path: file.clone(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(&file) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.to_string());
        }
    }
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{:x}", nanos ^ u128::from(std::process::id()));
    std::fs::write(&file, &id).map_err(io_error)?;
    Ok(id)
}
