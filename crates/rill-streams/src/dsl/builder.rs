use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::Result;
use crate::functions::TimestampExtractor;
use crate::graph::{
    GlobalStoreDef, GraphBuilder, Instantiated, NodeDef, NodeId, NodeKind, SourceNode, StoreDef,
    StoreKind, TopicName, Topology, downcast_children,
};
use crate::processor::{BuiltInInit, InitContext};
use crate::serde::{DefaultSerde, SharedSerde};
use crate::task::RawSource;

use super::KStream;
use super::table::{GlobalKTable, KTable, Materialize, TableSource};

/// How a stream reads its topics: the serdes, and where each record's event time comes from.
///
/// By default the event time is the log timestamp (set by the producer or the broker). With
/// [`with_timestamp`](Self::with_timestamp) it comes from the payload instead, as with Kafka
/// Streams' `TimestampExtractor`: windows, joins, grace periods and stream-time punctuators
/// then follow the time the event happened, and records written on carry that time.
///
/// ```
/// use rill_streams::{Consumed, StreamsBuilder};
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Reading { taken_at: i64, celsius: f64 }
/// rill_streams::json_serde!(Reading);
///
/// let builder = StreamsBuilder::new();
/// let readings = builder.stream_from::<String, Reading>(
///     &["readings"],
///     Consumed::new().with_timestamp(|_, reading: &Reading, _log_time| Some(reading.taken_at)),
/// );
/// # let _ = readings;
/// ```
pub struct Consumed<K, V> {
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    timestamp: Option<TimestampExtractor<K, V>>,
}

impl<K: DefaultSerde, V: DefaultSerde> Consumed<K, V> {
    /// The types' default serdes, event time from the log.
    pub fn new() -> Self {
        Self::with_serdes(K::default_serde(), V::default_serde())
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Consumed<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Consumed<K, V> {
    /// Explicit serdes, event time from the log.
    pub fn with_serdes(key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) -> Self {
        Consumed {
            key_serde,
            value_serde,
            timestamp: None,
        }
    }

    /// Takes each record's event time from its key, value and log timestamp (ms since the
    /// epoch). A record for which it answers `None` or a negative time is handled like an
    /// undecodable one: sent to the dead-letter topic, or failing the application, as the
    /// [`DeserializationPolicy`](crate::DeserializationPolicy) says.
    pub fn with_timestamp(
        mut self,
        extractor: impl Fn(&K, &V, i64) -> Option<i64> + Send + Sync + 'static,
    ) -> Self {
        self.timestamp = Some(Arc::new(extractor));
        self
    }
}

/// Names a state store and says how it is kept.
///
/// A key-value store with a changelog has a record cache in front by default (Kafka Streams'
/// caching layer): a task's writes wait in memory until it commits, so a key written many times
/// within a commit interval costs one store write and one changelog record, with its last
/// value. Reads, ranges and interactive queries see cached writes at once; records forwarded
/// downstream are not held back. The application's [`StreamsConfig::cache_max_bytes`]
/// bounds the caches (0 turns them off); [`with_caching`](Self::with_caching) turns one off.
///
/// ```
/// use rill_streams::StoreOptions;
/// let counts = StoreOptions::persistent("word-counts");
/// let scratch = StoreOptions::in_memory("scratch").without_changelog();
/// let audited = StoreOptions::persistent("balances").with_caching(false);
/// # let _ = (counts, scratch, audited);
/// ```
///
/// [`StreamsConfig::cache_max_bytes`]: crate::StreamsConfig::cache_max_bytes
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) logged: bool,
    pub(crate) caching: bool,
}

impl StoreOptions {
    /// A persistent store (on disk, changelogged).
    pub fn persistent(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: StoreKind::Persistent,
            logged: true,
            caching: true,
        }
    }

    /// An in-memory store (changelogged, rebuilt from the changelog on start).
    pub fn in_memory(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: StoreKind::InMemory,
            logged: true,
            caching: true,
        }
    }

    /// Keeps no changelog: the store is lost with its instance.
    pub fn without_changelog(mut self) -> Self {
        self.logged = false;
        self
    }

    /// Whether the store has a record cache in front (default: yes). Without one, every write
    /// goes to the store and its changelog at once, as a changelog consumer watching each
    /// intermediate value needs. Stores without a changelog and window stores are never
    /// cached.
    pub fn with_caching(mut self, caching: bool) -> Self {
        self.caching = caching;
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Builds a topology with the DSL.
///
/// A word count:
/// ```
/// use rill_streams::{StoreOptions, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("sentences")
///     .flat_map_values(|line| line.split_whitespace().map(str::to_lowercase).collect())
///     .group_by(|_, word| word.clone())
///     .count(StoreOptions::persistent("word-counts"))
///     .to_stream()
///     .to("word-counts");
/// let topology = builder.build().expect("valid topology");
/// assert!(topology.describe().contains("word-counts"));
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`, with the types' default serdes.
    pub fn stream<K, V>(&self, topic: &str) -> KStream<K, V>
    where
        K: DefaultSerde + Clone,
        V: DefaultSerde + Clone,
    {
        self.stream_with(&[topic], K::default_serde(), V::default_serde())
    }

    /// A stream of the records of several topics, with explicit serdes.
    pub fn stream_with<K, V>(
        &self,
        topics: &[&str],
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        self.stream_from(topics, Consumed::with_serdes(key_serde, value_serde))
    }

    /// A stream of the records of several topics, read as `consumed` says (serdes, event
    /// time).
    pub fn stream_from<K, V>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let topics = topics
            .iter()
            .map(|t| TopicName::External(t.to_string()))
            .collect();
        let node = add_source_with_time(
            &mut self.graph.borrow_mut(),
            topics,
            consumed.key_serde,
            consumed.value_serde,
            consumed.timestamp,
        );
        KStream::new(self.graph.clone(), node, false)
    }

    /// A table of the latest value per key of `topic`, materialized in `store`. A record
    /// without a value deletes its key.
    pub fn table<K, V>(&self, topic: &str, store: StoreOptions) -> KTable<K, V>
    where
        K: DefaultSerde + Clone,
        V: DefaultSerde + Clone,
    {
        self.table_with(topic, store, K::default_serde(), V::default_serde())
    }

    /// Like [`table`](Self::table), with explicit serdes (for types without a
    /// [`DefaultSerde`], or a topic in another format).
    pub fn table_with<K, V>(
        &self,
        topic: &str,
        store: StoreOptions,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> KTable<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        graph.add_dsl_store(StoreDef {
            name: store.name.clone(),
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(key_serde.clone()),
            value_serde: Arc::new(value_serde.clone()),
        });
        let name = graph.next_name("KTABLE-SOURCE");
        let topic_name = TopicName::External(topic.to_string());
        let source_name = name.clone();
        let factory = Box::new(move |_: &_, children: &[&dyn Any]| {
            let node = Rc::new(RefCell::new(TableSource::<K, V> {
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                children: downcast_children(&source_name, children)?,
            }));
            let source: Rc<RefCell<dyn RawSource>> = node;
            Ok(Instantiated {
                input: None,
                lifecycle: None,
                source: Some(source),
            })
        });
        let source = graph.add(NodeDef {
            name,
            kind: NodeKind::Source {
                topics: vec![topic_name],
            },
            parents: vec![],
            stores: vec![],
            factory,
        });
        let materialize = graph.next_name("KTABLE-MATERIALIZE");
        let store_name = store.name.clone();
        let wanted = Arc::new(AtomicBool::new(false));
        let send_old = wanted.clone();
        let build = move |ctx: &mut InitContext<'_>| {
            Materialize::<K, V>::new(ctx, &store_name, send_old.load(Ordering::Relaxed))
        };
        let supplier = BuiltInInit::supplier(materialize.clone(), build);
        let node = graph.add_processor(
            materialize,
            vec![source],
            vec![store.name.clone()],
            supplier,
        );
        // Old values come from the table's store: read only when an operator asks for them.
        graph.track_old_values(node, wanted, vec![]);
        drop(graph);
        KTable::new(self.graph.clone(), node, Some(store.name))
    }

    /// A table of every partition of `topic`, replicated in full to every task, for joins by
    /// a key taken from a stream's value.
    pub fn global_table<K, V>(&self, topic: &str, store: &str) -> GlobalKTable<K, V>
    where
        K: DefaultSerde + Clone,
        V: DefaultSerde + Clone,
    {
        self.global_table_with(topic, store, K::default_serde(), V::default_serde())
    }

    /// [`global_table`](Self::global_table) with explicit serdes.
    pub fn global_table_with<K, V>(
        &self,
        topic: &str,
        store: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> GlobalKTable<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        self.graph.borrow_mut().global_stores.push(GlobalStoreDef {
            name: store.to_string(),
            topic: topic.to_string(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        });
        GlobalKTable {
            store: store.to_string(),
            _types: PhantomData,
        }
    }

    /// Adds a key-value store for processors added with [`KStream::process`].
    pub fn add_state_store<K, V>(&self, store: StoreOptions) -> Result<()>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.graph.borrow_mut().add_store(StoreDef {
            name: store.name,
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(K::default_serde()),
            value_serde: Arc::new(V::default_serde()),
        })
    }

    /// Adds a window or session store for processors added with [`KStream::process`] (open
    /// it with [`InitContext::window_store`] or [`InitContext::session_store`]), keeping
    /// entries for `retention` behind stream time in time segments: expiry drops whole
    /// segments rather than deleting entries one by one.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder};
    /// use std::time::Duration;
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .add_window_store::<String, String>(StoreOptions::persistent("kept"), Duration::from_secs(3600))
    ///     .unwrap();
    /// ```
    pub fn add_window_store<K, V>(&self, store: StoreOptions, retention: Duration) -> Result<()>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.graph.borrow_mut().add_store(StoreDef {
            name: store.name,
            kind: store.kind,
            logged: store.logged,
            window_retention: Some(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)),
            // Window and session stores: their handles write past the cache.
            caching: false,
            key_serde: Arc::new(K::default_serde()),
            value_serde: Arc::new(V::default_serde()),
        })
    }

    /// Finishes the topology.
    pub fn build(self) -> Result<Topology> {
        let graph = Rc::try_unwrap(self.graph)
            .map(RefCell::into_inner)
            .unwrap_or_else(|shared| std::mem::take(&mut *shared.borrow_mut()));
        graph.build()
    }
}

/// Adds a source node for `topics` decoding with the given serdes.
pub(crate) fn add_source<K, V>(
    graph: &mut GraphBuilder,
    topics: Vec<TopicName>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
) -> NodeId
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    add_source_with_time(graph, topics, key_serde, value_serde, None)
}

/// Adds a source node for `topics`, its event time from `timestamp` (or the log).
fn add_source_with_time<K, V>(
    graph: &mut GraphBuilder,
    topics: Vec<TopicName>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    timestamp: Option<TimestampExtractor<K, V>>,
) -> NodeId
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    let name = graph.next_name("KSTREAM-SOURCE");
    let source_name = name.clone();
    let factory = Box::new(move |_: &_, children: &[&dyn Any]| {
        let node = Rc::new(RefCell::new(SourceNode::<K, V> {
            key_serde: key_serde.clone(),
            value_serde: value_serde.clone(),
            timestamp: timestamp.clone(),
            children: downcast_children(&source_name, children)?,
        }));
        let source: Rc<RefCell<dyn RawSource>> = node;
        Ok(Instantiated {
            input: None,
            lifecycle: None,
            source: Some(source),
        })
    });
    graph.add(NodeDef {
        name,
        kind: NodeKind::Source { topics },
        parents: vec![],
        stores: vec![],
        factory,
    })
}
