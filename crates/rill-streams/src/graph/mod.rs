//! The topology graph: what the DSL records, how it splits into sub-topologies, and how a
//! sub-topology is instantiated into a task. DSL calls only add nodes here; nothing runs until
//! a task is built from the finished [`Topology`].

mod describe;
mod source_sink;

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) use source_sink::{SinkNode, SourceNode, TopicChoice};

use crate::error::{Result, StreamsError};
use crate::processor::Processor;
use crate::store::{
    CacheBudget, CachingKeyValueStore, InMemoryKeyValueStore, KeyValueBytesStore,
    PersistentKeyValueStore, SegmentedStore, default_segment_interval,
};
use crate::task::{Child, Lifecycle, ProcessorNode, RawSource, Task, TaskId, TaskState, TaskStore};

pub(crate) type NodeId = usize;

/// A topic named by the user, or an internal topic named after the application.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TopicName {
    External(String),
    /// `<application>-<suffix>`, e.g. suffix `counts-changelog`.
    Internal(String),
}

impl TopicName {
    pub fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicName::External(name) => name.clone(),
            TopicName::Internal(suffix) => format!("{application_id}-{suffix}"),
        }
    }
}

/// Facts a node factory needs when instantiating for a task.
pub(crate) struct BuildContext {
    pub application_id: Arc<str>,
}

/// What instantiating a node gives.
pub(crate) struct Instantiated {
    /// `Child<KIn, VIn>` behind `Any`; `None` for sources (they have no parents).
    pub input: Option<Box<dyn Any>>,
    pub lifecycle: Option<Rc<RefCell<dyn Lifecycle>>>,
    pub source: Option<Rc<RefCell<dyn RawSource>>>,
}

type Factory = Box<dyn Fn(&BuildContext, &[&dyn Any]) -> Result<Instantiated> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source { topics: Vec<TopicName> },
    Processor,
    Sink { topic: Option<TopicName> },
}

pub(crate) struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<NodeId>,
    pub stores: Vec<String>,
    pub factory: Factory,
}

/// Which engine backs a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// In memory, restored from the changelog on start.
    InMemory,
    /// On disk in the state directory, restored from a local checkpoint plus the changelog tail.
    Persistent,
}

pub(crate) struct StoreDef {
    pub name: String,
    pub kind: StoreKind,
    pub logged: bool,
    /// Window and session stores: how long (ms) entries are kept behind stream time; their
    /// engine keeps them in time segments ([`SegmentedStore`](crate::store::SegmentedStore)).
    pub window_retention: Option<i64>,
    /// Whether a record cache goes in front, when the application has one and the store a
    /// changelog (see `StoreOptions::with_caching`).
    pub caching: bool,
    pub key_serde: Arc<dyn Any + Send + Sync>,
    pub value_serde: Arc<dyn Any + Send + Sync>,
}

/// The kind of an internal topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTopicKind {
    /// Carries re-keyed records between sub-topologies.
    Repartition,
    /// Backs a state store (compacted).
    Changelog,
}

/// A group of nodes connected through parent edges or shared stores; one task per partition.
#[derive(Debug, Clone)]
pub struct Subtopology {
    /// Its number.
    pub id: usize,
    pub(crate) nodes: Vec<NodeId>,
    pub(crate) source_topics: Vec<TopicName>,
    pub(crate) stores: Vec<String>,
}

/// Records DSL and processor-API additions.
#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub nodes: Vec<NodeDef>,
    pub stores: Vec<StoreDef>,
    /// Suffixes of repartition topics, with the partition count asked for (default: that of
    /// the application's largest input).
    pub repartition_topics: BTreeMap<String, Option<i32>>,
    pub global_stores: Vec<GlobalStoreDef>,
    /// Mistakes found while building (e.g. a duplicate store name), reported by `build`.
    pub errors: Vec<StreamsError>,
    /// Windowed tables by node: how long after its end a window closes (`None`: the node
    /// emits only closed windows), for suppression.
    pub window_close_after: HashMap<NodeId, Option<i64>>,
    /// Versioned tables: store -> its history store, for as-of joins.
    pub versioned: HashMap<String, String>,
    /// Table nodes that leave `Change::old` out unless asked (see [`OldValues`]).
    pub old_values: HashMap<NodeId, OldValues>,
    counter: usize,
}

/// Whether a table node sends old values (Kafka Streams' `sendOldValues`). Operators that need
/// them ask while the topology is built; the node's processors read the flag when they are
/// made, after the build, so a request that comes after the node was added still counts.
pub(crate) struct OldValues {
    pub wanted: Arc<AtomicBool>,
    /// Table nodes this one derives its old values from: asked in turn.
    pub upstream: Vec<NodeId>,
}

/// A global table's store: every partition of `topic`, shared read-only by all tasks.
pub(crate) struct GlobalStoreDef {
    pub name: String,
    pub topic: String,
    pub key_serde: Arc<dyn Any + Send + Sync>,
    pub value_serde: Arc<dyn Any + Send + Sync>,
}

impl GraphBuilder {
    /// A Kafka-Streams-style unique node name, e.g. `KSTREAM-FILTER-0000000003`.
    pub fn next_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.counter);
        self.counter += 1;
        name
    }

    /// Registers table node `node` as one that sends old values only when asked, deriving
    /// them from `upstream`; `wanted` is the flag its processors read.
    pub fn track_old_values(
        &mut self,
        node: NodeId,
        wanted: Arc<AtomicBool>,
        upstream: Vec<NodeId>,
    ) {
        self.old_values.insert(node, OldValues { wanted, upstream });
    }

    /// Asks table node `node`, and the nodes it derives from, to send old values. Nodes not
    /// tracked (aggregations, joins) send theirs anyway.
    pub fn request_old_values(&mut self, node: NodeId) {
        let mut pending = vec![node];
        while let Some(node) = pending.pop() {
            if let Some(entry) = self.old_values.get(&node)
                && !entry.wanted.swap(true, Ordering::Relaxed)
            {
                pending.extend(entry.upstream.iter().copied());
            }
        }
    }

    pub fn add(&mut self, node: NodeDef) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Adds a processor node of input `KIn`/`VIn` and output `KOut`/`VOut`.
    pub fn add_processor<KIn, VIn, KOut, VOut, P>(
        &mut self,
        name: String,
        parents: Vec<NodeId>,
        stores: Vec<String>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> NodeId
    where
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
        P: Processor<KIn, VIn, KOut, VOut>,
    {
        let node_name = name.clone();
        let node_stores = stores.clone();
        let factory: Factory = Box::new(move |_build, children| {
            let node = Rc::new(RefCell::new(ProcessorNode {
                name: node_name.clone(),
                stores: node_stores.clone(),
                processor: supplier(),
                children: downcast_children::<KOut, VOut>(&node_name, children)?,
                _input: PhantomData::<fn(KIn, VIn)>,
            }));
            let input: Child<KIn, VIn> = node.clone();
            Ok(Instantiated {
                input: Some(Box::new(input)),
                lifecycle: Some(node),
                source: None,
            })
        });
        self.add(NodeDef {
            name,
            kind: NodeKind::Processor,
            parents,
            stores,
            factory,
        })
    }

    pub fn add_store(&mut self, store: StoreDef) -> Result<()> {
        if self
            .stores
            .iter()
            .any(|existing| existing.name == store.name)
        {
            return Err(StreamsError::DuplicateName {
                kind: "store",
                name: store.name,
            });
        }
        self.stores.push(store);
        Ok(())
    }

    /// Registers a store for a DSL call: a duplicate name is kept as an error for
    /// [`build`](Self::build), so that DSL calls need not be fallible.
    pub fn add_dsl_store(&mut self, store: StoreDef) {
        if let Err(error) = self.add_store(store) {
            self.errors.push(error);
        }
    }

    /// Finishes the graph: checks store references and splits it into sub-topologies.
    pub fn build(mut self) -> Result<Topology> {
        if !self.errors.is_empty() {
            return Err(self.errors.remove(0));
        }
        for node in &self.nodes {
            for store in &node.stores {
                let known = self.stores.iter().any(|s| &s.name == store)
                    || self.global_stores.iter().any(|s| &s.name == store);
                if !known {
                    return Err(StreamsError::UnknownStore {
                        store: store.clone(),
                        used_by: Some(node.name.clone()),
                    });
                }
            }
        }
        let count = self.nodes.len();
        let mut union = UnionFind::new(count);
        for (id, node) in self.nodes.iter().enumerate() {
            for parent in &node.parents {
                union.join(id, *parent);
            }
        }
        let mut store_owner: HashMap<&str, NodeId> = HashMap::new();
        for (id, node) in self.nodes.iter().enumerate() {
            // Global stores are replicated to every task: they do not tie nodes together.
            for store in node
                .stores
                .iter()
                .filter(|s| !self.global_stores.iter().any(|g| &g.name == *s))
            {
                match store_owner.get(store.as_str()) {
                    Some(other) => union.join(id, *other),
                    None => {
                        store_owner.insert(store, id);
                    }
                }
            }
        }
        let mut by_root: Vec<(NodeId, Vec<NodeId>)> = Vec::new();
        for id in 0..count {
            let root = union.find(id);
            match by_root.iter_mut().find(|(r, _)| *r == root) {
                Some((_, members)) => members.push(id),
                None => by_root.push((root, vec![id])),
            }
        }
        let subtopologies = by_root
            .into_iter()
            .enumerate()
            .map(|(number, (_, nodes))| {
                let mut source_topics = Vec::new();
                let mut stores = Vec::new();
                for id in &nodes {
                    if let NodeKind::Source { topics } = &self.nodes[*id].kind {
                        source_topics.extend(topics.iter().cloned());
                    }
                    for store in &self.nodes[*id].stores {
                        let global = self.global_stores.iter().any(|g| &g.name == store);
                        if !global && !stores.contains(store) {
                            stores.push(store.clone());
                        }
                    }
                }
                Subtopology {
                    id: number,
                    nodes,
                    source_topics,
                    stores,
                }
            })
            .collect();
        Ok(Topology {
            nodes: self.nodes,
            stores: self.stores,
            subtopologies,
            repartition_topics: self.repartition_topics,
            global_stores: self.global_stores,
        })
    }
}

pub(crate) fn downcast_children<K: 'static, V: 'static>(
    node: &str,
    children: &[&dyn Any],
) -> Result<Vec<Child<K, V>>> {
    children
        .iter()
        .map(|child| {
            child
                .downcast_ref::<Child<K, V>>()
                .cloned()
                .ok_or_else(|| StreamsError::ChildType {
                    node: node.to_string(),
                    key: std::any::type_name::<K>(),
                    value: std::any::type_name::<V>(),
                })
        })
        .collect()
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(size: usize) -> Self {
        UnionFind((0..size).collect())
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// A finished topology: nodes, stores, and their sub-topologies. Shareable between threads;
/// each task instantiates its own processors from it.
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: Vec<StoreDef>,
    pub(crate) subtopologies: Vec<Subtopology>,
    pub(crate) repartition_topics: BTreeMap<String, Option<i32>>,
    pub(crate) global_stores: Vec<GlobalStoreDef>,
}

/// How a task gets the engine of each store.
pub(crate) trait StoreProvider {
    fn engine(&mut self, task: TaskId, store: &StoreDef) -> Result<Arc<dyn KeyValueBytesStore>>;
}

/// Gives every store an in-memory engine (the test driver, and `StoreKind::InMemory`).
pub(crate) struct InMemoryStores;

impl StoreProvider for InMemoryStores {
    fn engine(&mut self, _task: TaskId, store: &StoreDef) -> Result<Arc<dyn KeyValueBytesStore>> {
        Ok(match store.window_retention {
            Some(retention) => Arc::new(SegmentedStore::in_memory(
                store.name.clone(),
                retention,
                default_segment_interval(retention),
            )),
            None => Arc::new(InMemoryKeyValueStore::new(store.name.clone())),
        })
    }
}

/// Gives `StoreKind::Persistent` stores an on-disk engine in
/// `<state_dir>/<application_id>/<task_id>/<store>` and `StoreKind::InMemory` stores an
/// in-memory one (the streams runtime).
#[derive(Debug, Clone)]
pub struct PersistentStores {
    /// The instance's state directory.
    pub state_dir: PathBuf,
    /// The application: one directory per application, so several can share a state directory.
    pub application_id: String,
}

impl PersistentStores {
    /// The directory holding a task's persistent stores.
    pub fn task_dir(&self, task: TaskId) -> PathBuf {
        self.state_dir
            .join(&self.application_id)
            .join(task.to_string())
    }

    /// Opens a task's persistent store by name, for callers that need the checkpoint API.
    pub fn open(&self, task: TaskId, store: &str) -> Result<Arc<PersistentKeyValueStore>> {
        let engine = crate::store::Engine::of(&self.state_dir)?;
        Ok(Arc::new(PersistentKeyValueStore::open_in(
            &engine,
            &self.task_dir(task),
            store,
            crate::store::default_record_cache_bytes(),
        )?))
    }
}

impl PersistentStores {
    /// Opens a task's store as its definition says (window and session stores in time
    /// segments); [`StoreKind::InMemory`] ones in memory.
    pub(crate) fn open_def(
        &self,
        task: TaskId,
        store: &StoreDef,
    ) -> Result<Arc<dyn KeyValueBytesStore>> {
        match (store.kind, store.window_retention) {
            (StoreKind::InMemory, _) => InMemoryStores.engine(task, store),
            (StoreKind::Persistent, None) => Ok(self.open(task, &store.name)?),
            (StoreKind::Persistent, Some(retention)) => Ok(Arc::new(SegmentedStore::persistent(
                &crate::store::Engine::of(&self.state_dir)?,
                &self.task_dir(task),
                &store.name,
                retention,
                default_segment_interval(retention),
                crate::store::default_record_cache_bytes(),
            )?)),
        }
    }
}

impl StoreProvider for PersistentStores {
    fn engine(&mut self, task: TaskId, store: &StoreDef) -> Result<Arc<dyn KeyValueBytesStore>> {
        self.open_def(task, store)
    }
}

impl Topology {
    /// The sub-topologies.
    pub fn subtopologies(&self) -> &[Subtopology] {
        &self.subtopologies
    }

    /// Input topics of a sub-topology, resolved for an application.
    pub fn source_topics(&self, subtopology: usize, application_id: &str) -> Vec<String> {
        self.subtopologies
            .get(subtopology)
            .map(|sub| {
                sub.source_topics
                    .iter()
                    .map(|t| t.resolve(application_id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Internal topics this topology needs, resolved for an application, with their kind.
    pub fn internal_topics(&self, application_id: &str) -> Vec<(String, InternalTopicKind)> {
        let mut topics: Vec<(String, InternalTopicKind)> = self
            .repartition_topics
            .keys()
            .map(|suffix| {
                (
                    format!("{application_id}-{suffix}"),
                    InternalTopicKind::Repartition,
                )
            })
            .collect();
        for store in self.stores.iter().filter(|store| store.logged) {
            topics.push((
                changelog_topic(application_id, &store.name),
                InternalTopicKind::Changelog,
            ));
        }
        topics
    }

    /// Builds the task for `subtopology` and `partition`.
    pub(crate) fn instantiate(
        &self,
        state_template: TaskStateTemplate,
        id: TaskId,
        stores: &mut dyn StoreProvider,
        globals: &HashMap<String, Arc<dyn KeyValueBytesStore>>,
    ) -> Result<Task> {
        let subtopology =
            self.subtopologies
                .get(id.subtopology)
                .ok_or(StreamsError::UnknownSubtopology {
                    subtopology: id.subtopology,
                })?;
        let mut task_stores = HashMap::new();
        for name in &subtopology.stores {
            let def = self
                .stores
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| StreamsError::UnknownStore {
                    store: name.clone(),
                    used_by: None,
                })?;
            let mut engine = stores.engine(id, def)?;
            // Only a changelog's records are worth holding back: without one, the persistent
            // engine already keeps a key's writes since its last flush as one.
            let cache = match &state_template.cache {
                Some(budget) if budget.enabled() && def.caching && def.logged => {
                    let cache = Arc::new(CachingKeyValueStore::new(engine, budget.clone()));
                    engine = cache.clone();
                    Some(cache)
                }
                _ => None,
            };
            task_stores.insert(
                name.clone(),
                TaskStore {
                    engine,
                    cache,
                    key_serde: def.key_serde.clone(),
                    value_serde: def.value_serde.clone(),
                    changelog_topic: def
                        .logged
                        .then(|| changelog_topic(&state_template.application_id, name)),
                },
            );
        }
        for global in &self.global_stores {
            if let Some(engine) = globals.get(&global.name) {
                task_stores.insert(
                    global.name.clone(),
                    TaskStore {
                        engine: engine.clone(),
                        cache: None,
                        key_serde: global.key_serde.clone(),
                        value_serde: global.value_serde.clone(),
                        changelog_topic: None,
                    },
                );
            }
        }
        let build = BuildContext {
            application_id: state_template.application_id.clone(),
        };
        let members: BTreeSet<NodeId> = subtopology.nodes.iter().copied().collect();
        let mut built: HashMap<NodeId, Instantiated> = HashMap::new();
        for &node_id in subtopology.nodes.iter().rev() {
            let node = &self.nodes[node_id];
            let children: Vec<NodeId> = members
                .iter()
                .copied()
                .filter(|child| self.nodes[*child].parents.contains(&node_id))
                .collect();
            let inputs: Vec<&dyn Any> = children
                .iter()
                .filter_map(|child| built.get(child).and_then(|b| b.input.as_deref()))
                .collect();
            let instance = (node.factory)(&build, &inputs)?;
            built.insert(node_id, instance);
        }
        let mut sources = HashMap::new();
        let mut nodes = Vec::new();
        for &node_id in &subtopology.nodes {
            let Some(instance) = built.remove(&node_id) else {
                continue;
            };
            if let (NodeKind::Source { topics }, Some(source)) =
                (&self.nodes[node_id].kind, instance.source)
            {
                for topic in topics {
                    sources.insert(
                        topic.resolve(&state_template.application_id),
                        source.clone(),
                    );
                }
            }
            if let Some(lifecycle) = instance.lifecycle {
                nodes.push((node_id, lifecycle));
            }
        }
        let state = state_template.into_state(id, task_stores);
        let mut task = Task {
            state,
            sources,
            nodes,
        };
        task.init()?;
        Ok(task)
    }
}

/// The name of a store's changelog topic.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// The parts of a task's state that come from the application rather than the topology.
pub(crate) struct TaskStateTemplate {
    pub application_id: Arc<str>,
    pub collector: Rc<RefCell<dyn crate::collector::RecordCollector>>,
    pub deserialization: crate::task::DeserializationPolicy,
    pub processing: crate::task::ProcessingErrorPolicy,
    pub wall_clock: i64,
    /// The byte bound the record caches of the task's stores share (`None`: no caches).
    pub cache: Option<Arc<CacheBudget>>,
}

impl TaskStateTemplate {
    fn into_state(self, task_id: TaskId, stores: HashMap<String, TaskStore>) -> TaskState {
        TaskState {
            application_id: self.application_id,
            task_id,
            stores,
            collector: self.collector,
            record_context: None,
            current_timestamp: Rc::new(RefCell::new(0)),
            stream_time: i64::MIN,
            wall_clock: self.wall_clock,
            schedules: Vec::new(),
            deserialization: self.deserialization,
            processing: self.processing,
            metrics: Default::default(),
        }
    }
}
