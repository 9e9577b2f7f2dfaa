//! The application: starts stream threads, the global reader and the standby keeper, stops
//! them, and hands out interactive queries (answered by `query` and `window_query`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use rill_log::{Log, ProducerConfig};

use crate::error::{Result, StreamsError};
use crate::graph::Topology;
use crate::serde::{DefaultSerde, SharedSerde};
use crate::store::Layout;
use crate::task::TaskId;

use super::config::{StreamsConfig, ThreadFailurePolicy};
use super::global::{self, GlobalReader};
use super::lifecycle::{AppState, Lifecycle};
use super::query::QueryableStore;
use super::shared::Shared;
use super::standby::StandbyKeeper;
use super::thread::{self, ThreadSettling, ThreadSetup};
use super::topics;
use super::window_query::QueryableWindowStore;

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
    standby: Option<StandbyKeeper>,
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
            most_buffered: AtomicU64::new(0),
            records_restored: AtomicU64::new(0),
            late_records_dropped: AtomicU64::new(0),
            threads_replaced: AtomicU64::new(0),
            standbys: Default::default(),
            listener_errors: Mutex::new(Vec::new()),
            local_stores: RwLock::new(HashMap::new()),
            local_tasks: RwLock::new(BTreeSet::new()),
            instances: RwLock::new(HashMap::new()),
            registry: Mutex::new(None),
            publisher: Mutex::new(Some(publisher)),
            lifecycle: Lifecycle::new(config.state_listener.clone()),
        });
        // Replace what an earlier run of this instance published (its address may differ),
        // so other instances stop forwarding to it before its tasks are back.
        shared.tasks_changed();
        let (globals, reader) = global::start(
            self.log.as_ref(),
            &self.topology,
            &config.state_dir,
            shared.clone(),
        )?;
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
            self.standby = Some(StandbyKeeper::start(
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

    /// The most records any task held buffered from one input partition since the start:
    /// about `buffered_records_per_partition` plus one poll's worth at most (see
    /// [`StreamsConfig::buffered_records_per_partition`](crate::StreamsConfig)).
    pub fn most_buffered_records(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.most_buffered.load(Ordering::Relaxed))
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
        if let Some(follower) = self.shared.as_ref().and_then(|s| s.registry.lock().take()) {
            follower.close();
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
        Ok(QueryableStore::new(
            shared,
            name.to_string(),
            partitions,
            key_serde,
            value_serde,
        ))
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
