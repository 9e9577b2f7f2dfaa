//! Standby replicas: warm copies of other instances' persistent stores, so that a task moving
//! here after a failure or a rebalance restores only the tail of its changelog.
//!
//! **Placement.** Instances publish the tasks they own in the registry topic. Sorting the
//! registered instance ids, the standby of a task goes to the instances that follow its owner
//! (as many as [`StreamsConfig::standby_replicas`](super::StreamsConfig), never the owner).
//! Every instance computes this from the same registry, so no extra protocol is needed, and a
//! placement that is briefly stale during a rebalance only costs a copy that is not used.
//!
//! **Maintenance.** One thread per application reads the changelog partitions of its standby
//! tasks (read-committed, so a copy never holds aborted writes) into the same store directories
//! the task would use here, and checkpoints them about once a second.
//!
//! **Handover.** Before a stream thread opens a task's stores, it
//! [claims](super::standby_copies::Standbys::claim) the task: the copy is checkpointed at the
//! offset it reached and closed (releasing fjall's directory lock), and the task's restore
//! starts from that checkpoint. A claimed task gets no standby here until its active copy is
//! closed again.
//!
//! Only persistent, changelogged stores get standbys: an in-memory copy would cost the memory
//! of every store twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_log::{ConsumerConfig, IsolationLevel, Log, SeekTo, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::graph::{PersistentStores, StoreKind, Topology, changelog_topic};
use crate::task::TaskId;

use super::shared::Shared;
use super::standby_copies::{StandbyStore, close_stores};

/// How often the copies are checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The thread keeping an instance's standby copies.
pub(crate) struct StandbyKeeper {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl StandbyKeeper {
    /// Starts the keeper of `replicas` standby copies per task.
    pub fn start(
        log: Arc<dyn Log>,
        topology: Arc<Topology>,
        shared: Arc<Shared>,
        state_dir: std::path::PathBuf,
        replicas: usize,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let application_id = shared.application_id.clone();
        let keeper = Keeper {
            log,
            topology,
            shared,
            stores: PersistentStores {
                state_dir,
                application_id,
            },
            replicas,
            stop: stop.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("rill-standby".into())
            .spawn(move || keeper.run())
            .map_err(|source| StreamsError::ThreadStart {
                what: "standby",
                source,
            })?;
        Ok(StandbyKeeper {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread, checkpointing and closing every copy.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for StandbyKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Keeper {
    log: Arc<dyn Log>,
    topology: Arc<Topology>,
    shared: Arc<Shared>,
    stores: PersistentStores,
    replicas: usize,
    stop: Arc<AtomicBool>,
}

impl Keeper {
    fn run(self) {
        let mut last_error = None;
        while !self.stop.load(Ordering::Acquire) {
            match self.keep() {
                Ok(()) => break,
                Err(error) => {
                    // A log that is down, say: the copies wait; the application goes on.
                    if last_error.as_ref() != Some(&error.to_string()) {
                        tracing::warn!(%error, "standby copies paused");
                        last_error = Some(error.to_string());
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        self.shared.standbys.close_all();
    }

    /// Keeps the copies until stopped.
    fn keep(&self) -> Result<()> {
        let consumer = self
            .log
            .consumer(
                &ConsumerConfig {
                    isolation: IsolationLevel::ReadCommitted,
                    client_id: Some(format!("{}-standby", self.shared.application_id)),
                    ..ConsumerConfig::default()
                },
                None,
            )
            .map_err(|e| StreamsError::log("creating the standby consumer", e))?;
        let failed = |e| StreamsError::log("reading changelogs for standby copies", e);
        let mut assigned: Vec<TopicPartition> = Vec::new();
        let mut last_checkpoint = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let wanted = self.wanted();
            let partitions = self.reconcile(&wanted);
            if partitions != assigned {
                consumer.assign(&partitions).map_err(failed)?;
                assigned = partitions;
            }
            // A copy (re)opened reads on from its own position, whatever the consumer read
            // before for that partition.
            for store in self
                .shared
                .standbys
                .state
                .lock()
                .tasks
                .values_mut()
                .flatten()
            {
                if store.seek_pending {
                    consumer
                        .seek(&store.changelog, SeekTo::Offset(store.position))
                        .map_err(failed)?;
                    store.seek_pending = false;
                }
            }
            if assigned.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let records = consumer.poll(Duration::from_millis(100)).map_err(failed)?;
            let mut state = self.shared.standbys.state.lock();
            let mut by_partition: HashMap<TopicPartition, Vec<_>> = HashMap::new();
            for record in records {
                by_partition
                    .entry(TopicPartition::new(
                        record.topic.to_string(),
                        record.partition,
                    ))
                    .or_default()
                    .push(record);
            }
            for stores in state.tasks.values_mut() {
                for store in stores.iter_mut() {
                    let Some(records) = by_partition.remove(&store.changelog) else {
                        continue;
                    };
                    // Records of a copy closed and opened again since the poll began are
                    // older than its position: skip them.
                    let fresh: Vec<_> = records
                        .into_iter()
                        .filter(|r| r.offset >= store.position)
                        .collect();
                    let Some(last) = fresh.last().map(|r| r.offset) else {
                        continue;
                    };
                    let count = fresh.len() as u64;
                    store.engine.put_batch(
                        fresh
                            .into_iter()
                            .filter_map(|r| Some((r.key?, r.value)))
                            .collect(),
                    )?;
                    store.position = last + 1;
                    store.dirty = true;
                    self.shared
                        .standbys
                        .records_applied
                        .fetch_add(count, Ordering::Relaxed);
                }
            }
            // The consumer's position also moves past what never reaches a reader (a
            // transaction's commit marker on Kafka, aborted records): a copy that read all
            // there is stands at the changelog's end, as a restore from it would.
            for store in state.tasks.values_mut().flatten() {
                if store.seek_pending {
                    continue;
                }
                if let Ok(read_to) = consumer.position(&store.changelog)
                    && read_to > store.position
                {
                    store.position = read_to;
                    store.dirty = true;
                }
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                for (task, stores) in state.tasks.iter_mut() {
                    for store in stores.iter_mut() {
                        if let Err(error) = store.checkpoint() {
                            tracing::warn!(%task, changelog = %store.changelog, %error, "standby copy not checkpointed");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The tasks this instance should keep copies of, from the registry.
    fn wanted(&self) -> BTreeSet<TaskId> {
        self.shared.refresh_registry();
        let instances = self.shared.instances.read();
        let mut ids: Vec<&String> = instances.keys().collect();
        ids.sort();
        if ids.len() < 2 {
            return BTreeSet::new();
        }
        let Some(me) = ids.iter().position(|id| **id == self.shared.instance_id) else {
            return BTreeSet::new();
        };
        let mut wanted = BTreeSet::new();
        for (index, id) in ids.iter().enumerate() {
            if index == me {
                continue;
            }
            // Instances after the owner, wrapping round: is this one among the first `replicas`?
            let distance = (me + ids.len() - index) % ids.len();
            if distance == 0 || distance > self.replicas.min(ids.len() - 1) {
                continue;
            }
            if let Some(info) = instances.get(*id) {
                for &(subtopology, partition) in &info.tasks {
                    wanted.insert(TaskId {
                        subtopology,
                        partition,
                    });
                }
            }
        }
        wanted
    }

    /// Opens copies newly wanted and closes those no longer wanted; answers the changelog
    /// partitions to read.
    fn reconcile(&self, wanted: &BTreeSet<TaskId>) -> Vec<TopicPartition> {
        let mut state = self.shared.standbys.state.lock();
        let unwanted: Vec<TaskId> = state
            .tasks
            .keys()
            .filter(|task| !wanted.contains(task))
            .copied()
            .collect();
        for task in unwanted {
            if let Some(stores) = state.tasks.remove(&task) {
                close_stores(task, stores);
            }
        }
        for task in wanted {
            if state.tasks.contains_key(task) || state.claimed.contains(task) {
                continue;
            }
            match self.open(*task) {
                Ok(stores) if !stores.is_empty() => {
                    tracing::debug!(%task, "keeping a standby copy");
                    state.tasks.insert(*task, stores);
                }
                Ok(_) => {}
                // Most often the active copy here has not closed yet: try again next round.
                Err(error) => tracing::debug!(%task, %error, "standby copy not opened yet"),
            }
        }
        let mut partitions: Vec<TopicPartition> = state
            .tasks
            .values()
            .flatten()
            .map(|store| store.changelog.clone())
            .collect();
        partitions.sort();
        partitions
    }

    /// Opens the persistent, changelogged stores of `task`, each at its checkpoint (or empty).
    fn open(&self, task: TaskId) -> Result<Vec<StandbyStore>> {
        let Some(subtopology) = self.topology.subtopologies().get(task.subtopology) else {
            return Ok(Vec::new());
        };
        let mut stores = Vec::new();
        for name in &subtopology.stores {
            let Some(def) = self.topology.stores.iter().find(|s| &s.name == name) else {
                continue;
            };
            if def.kind != StoreKind::Persistent || !def.logged {
                continue;
            }
            // As the task would open it: window and session stores in time segments.
            let engine = self.stores.open_def(task, def)?;
            let position = match engine.read_checkpoint() {
                Some(offset) => offset,
                None => {
                    engine.clear()?;
                    0
                }
            };
            stores.push(StandbyStore {
                engine,
                changelog: TopicPartition::new(
                    changelog_topic(&self.shared.application_id, name),
                    task.partition,
                ),
                position,
                dirty: false,
                seek_pending: true,
            });
        }
        Ok(stores)
    }
}
