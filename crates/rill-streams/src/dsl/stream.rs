use crate::functions::{
    Action, FlatMapper, KeyValueMapper, Predicate, StreamPartitioner, TopicExtractor,
};
use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::Result;
use crate::graph::{
    GraphBuilder, Instantiated, NodeDef, NodeId, NodeKind, SinkNode, TopicChoice, TopicName,
};
use crate::processor::{BuiltInInit, InitContext, Processor};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde};
use crate::task::Child;

use super::builder::add_source;
use super::grouped::KGroupedStream;
use super::ops::{Branch, Filter, FlatMap, Map, Peek};

/// How [`KStream::repartition_as`] writes its internal topic
/// `<application>-<name>-repartition`: serdes and partition count.
pub struct Repartitioned<K, V> {
    name: String,
    partitions: Option<i32>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: DefaultSerde, V: DefaultSerde> Repartitioned<K, V> {
    /// The types' default serdes; as many partitions as the application's largest input.
    pub fn named(name: impl Into<String>) -> Self {
        Self::with_serdes(name, K::default_serde(), V::default_serde())
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Explicit serdes; as many partitions as the application's largest input.
    pub fn with_serdes(
        name: impl Into<String>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self {
        Repartitioned {
            name: name.into(),
            partitions: None,
            key_serde,
            value_serde,
        }
    }

    /// The topic's partition count (at least 1; an existing topic keeps its own).
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// A stream being split into named branches; see [`KStream::split`].
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    branches: Vec<(String, BoxedPredicate<K, V>)>,
}

impl<K: Clone + 'static, V: Clone + 'static> BranchedKStream<K, V> {
    /// Adds a branch taking the records its predicate accepts (and no earlier one did).
    pub fn branch(
        mut self,
        name: impl Into<String>,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.branches.push((name.into(), Box::new(predicate)));
        self
    }

    /// Ends the split with a branch taking every record no other branch took.
    pub fn default_branch(
        self,
        name: impl Into<String>,
    ) -> std::collections::BTreeMap<String, KStream<K, V>> {
        self.branch(name, |_, _| true).no_default_branch()
    }

    /// Ends the split; records no branch takes are dropped.
    pub fn no_default_branch(self) -> std::collections::BTreeMap<String, KStream<K, V>> {
        let (names, predicates): (Vec<String>, Vec<BoxedPredicate<K, V>>) =
            self.branches.into_iter().unzip();
        let mut seen = std::collections::BTreeSet::new();
        for name in &names {
            if !seen.insert(name) {
                self.stream.graph.borrow_mut().errors.push(
                    crate::error::StreamsError::DuplicateName {
                        kind: "split branch",
                        name: name.clone(),
                    },
                );
            }
        }
        names
            .into_iter()
            .zip(self.stream.branch(predicates))
            .collect()
    }
}

/// A predicate given to [`KStream::branch`].
pub type BoxedPredicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// An unbounded stream of key-value records.
pub struct KStream<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: NodeId,
    /// Set after an operation that may have changed the key: grouping must repartition.
    pub(crate) key_changed: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream::new(self.graph.clone(), self.node, self.key_changed)
    }
}

impl<K, V> KStream<K, V> {
    pub(crate) fn new(graph: Rc<RefCell<GraphBuilder>>, node: NodeId, key_changed: bool) -> Self {
        KStream {
            graph,
            node,
            key_changed,
            _types: PhantomData,
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Adds a processor node below this stream.
    pub(crate) fn add<K2, V2, P>(
        &self,
        prefix: &str,
        stores: Vec<String>,
        key_changed: bool,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name(prefix);
        let node = graph.add_processor(name, vec![self.node], stores, supplier);
        drop(graph);
        KStream::new(self.graph.clone(), node, self.key_changed || key_changed)
    }

    /// Like [`add`](Self::add) for a processor that needs stores: `build` makes it in `init`
    /// with `stores` at hand (see `BuiltInInit`).
    pub(crate) fn add_built<K2, V2, P>(
        &self,
        prefix: &str,
        stores: Vec<String>,
        key_changed: bool,
        build: impl Fn(&mut InitContext<'_>) -> Result<P> + Clone + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name(prefix);
        let supplier = BuiltInInit::supplier(name.clone(), build);
        let node = graph.add_processor(name, vec![self.node], stores, supplier);
        drop(graph);
        KStream::new(self.graph.clone(), node, self.key_changed || key_changed)
    }

    /// Keeps the records the predicate accepts.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let predicate: Predicate<K, V> = Arc::new(predicate);
        self.add("KSTREAM-FILTER", vec![], false, move || Filter {
            predicate: predicate.clone(),
            keep: true,
        })
    }

    /// Drops the records the predicate accepts.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let predicate: Predicate<K, V> = Arc::new(predicate);
        self.add("KSTREAM-FILTER", vec![], false, move || Filter {
            predicate: predicate.clone(),
            keep: false,
        })
    }

    /// Replaces each record's key and value.
    pub fn map<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        mapper: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let mapper: KeyValueMapper<K, V, K2, V2> = Arc::new(mapper);
        self.add("KSTREAM-MAP", vec![], true, move || Map {
            mapper: mapper.clone(),
        })
    }

    /// Replaces each record's value; the key (and so the partitioning) stays.
    pub fn map_values<V2: Clone + 'static>(
        &self,
        mapper: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let mapper: KeyValueMapper<K, V, K, V2> = Arc::new(move |key, value| (key, mapper(value)));
        self.add("KSTREAM-MAPVALUES", vec![], false, move || Map {
            mapper: mapper.clone(),
        })
    }

    /// Replaces each record's key, keeping the value.
    pub fn select_key<K2: Clone + 'static>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let mapper: KeyValueMapper<K, V, K2, V> =
            Arc::new(move |key, value| (selector(&key, &value), value));
        self.add("KSTREAM-KEY-SELECT", vec![], true, move || Map {
            mapper: mapper.clone(),
        })
    }

    /// Turns each record into any number of records.
    pub fn flat_map<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        mapper: impl Fn(K, V) -> Vec<(K2, V2)> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let mapper: FlatMapper<K, V, K2, V2> = Arc::new(mapper);
        self.add("KSTREAM-FLATMAP", vec![], true, move || FlatMap {
            mapper: mapper.clone(),
        })
    }

    /// Turns each value into any number of values under the same key.
    pub fn flat_map_values<V2: Clone + 'static>(
        &self,
        mapper: impl Fn(V) -> Vec<V2> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let mapper: FlatMapper<K, V, K, V2> = Arc::new(move |key: K, value| {
            mapper(value)
                .into_iter()
                .map(|v| (key.clone(), v))
                .collect()
        });
        self.add("KSTREAM-FLATMAPVALUES", vec![], false, move || FlatMap {
            mapper: mapper.clone(),
        })
    }

    /// Calls `action` on each record and passes it on.
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let action: Action<K, V> = Arc::new(action);
        self.add("KSTREAM-PEEK", vec![], false, move || Peek {
            action: action.clone(),
        })
    }

    /// Calls `action` on each record; the end of this branch.
    pub fn for_each(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) {
        let action: Action<K, V> = Arc::new(action);
        let _: KStream<K, V> = self.add("KSTREAM-FOREACH", vec![], false, move || Peek {
            action: action.clone(),
        });
    }

    /// Records of both streams, in the order they arrive.
    pub fn merge(&self, other: &KStream<K, V>) -> Self {
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KSTREAM-MERGE");
        let node = graph.add_processor(name, vec![self.node, other.node], vec![], || Map::<
            K,
            V,
            K,
            V,
        > {
            mapper: Arc::new(|key, value| (key, value)),
        });
        drop(graph);
        KStream::new(
            self.graph.clone(),
            node,
            self.key_changed || other.key_changed,
        )
    }

    /// Splits the stream: each record goes to the first branch whose predicate accepts it
    /// (records no predicate accepts are dropped; end with `|_, _| true` for a default branch).
    pub fn branch(&self, predicates: Vec<BoxedPredicate<K, V>>) -> Vec<Self> {
        let count = predicates.len();
        let predicates: Vec<Predicate<K, V>> = predicates.into_iter().map(Arc::from).collect();
        let splitter: KStream<K, V> = self.add("KSTREAM-BRANCH", vec![], false, move || Branch {
            predicates: predicates.clone(),
        });
        (0..count)
            .map(|_| {
                splitter.add("KSTREAM-BRANCHCHILD", vec![], false, || Map::<K, V, K, V> {
                    mapper: Arc::new(|key, value| (key, value)),
                })
            })
            .collect()
    }

    /// Splits the stream into named branches (Kafka Streams' `split`): each record goes to the
    /// first branch whose predicate accepts it, and to the default branch, if there is one,
    /// when none does.
    ///
    /// ```
    /// use rill_streams::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// let mut branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch("refunds", |_, amount| *amount < 0)
    ///     .branch("large", |_, amount| *amount >= 1_000)
    ///     .default_branch("other");
    /// branches.remove("refunds").unwrap().to("refunds");
    /// branches.remove("large").unwrap().to("large-payments");
    /// branches.remove("other").unwrap().to("payments");
    /// ```
    pub fn split(&self) -> BranchedKStream<K, V> {
        BranchedKStream {
            stream: self.clone(),
            branches: Vec::new(),
        }
    }

    /// Runs a user processor with access to the named stores (added with
    /// [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)).
    pub fn process<K2, V2, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let stores = stores.iter().map(|s| s.to_string()).collect();
        self.add("KSTREAM-PROCESSOR", stores, true, supplier)
    }

    /// Like [`process`](Self::process) for a processor that holds its stores as plain fields:
    /// `build` makes each task's instance when the task initialises it, with the named stores
    /// at hand (the processor's own `init` runs next, for punctuators).
    ///
    /// ```
    /// use rill_streams::{
    ///     KeyValueStore, Processor, ProcessorContext, Record, Result, StoreOptions, StreamsBuilder,
    /// };
    ///
    /// /// Forwards each key's running count.
    /// struct Counter {
    ///     counts: KeyValueStore<String, i64>,
    /// }
    ///
    /// impl Processor<String, String, String, i64> for Counter {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<()> {
    ///         let count = self.counts.get(&r.key)?.unwrap_or(0) + 1;
    ///         self.counts.put(&r.key, &count)?;
    ///         ctx.forward(r.with_value(count))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store::<String, i64>(StoreOptions::in_memory("counts")).unwrap();
    /// builder
    ///     .stream::<String, String>("words")
    ///     .process_built(|ctx| Ok(Counter { counts: ctx.key_value_store("counts")? }), &["counts"])
    ///     .to("word-counts");
    /// builder.build().unwrap();
    /// ```
    pub fn process_built<K2, V2, P>(
        &self,
        build: impl Fn(&mut InitContext<'_>) -> Result<P> + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let stores = stores.iter().map(|s| s.to_string()).collect();
        // Shared, so that `build` need not be `Clone`.
        let build = Arc::new(build);
        self.add_built("KSTREAM-PROCESSOR", stores, true, move |ctx| build(ctx))
    }

    /// Writes the records to `topic` with the types' default serdes.
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_with(topic, K::default_serde(), V::default_serde());
    }

    /// Writes the records to `topic` with explicit serdes.
    pub fn to_with(&self, topic: &str, key_serde: SharedSerde<K>, value_serde: SharedSerde<V>) {
        self.add_sink(
            TopicName::External(topic.to_string()),
            key_serde,
            value_serde,
            None,
        );
    }

    /// Writes the records to `topic`, each to the partition `partitioner` picks from the
    /// record and the topic's partition count (`None`: by the key's hash, as `to` does).
    /// A partition outside the topic fails the record, as a processing error.
    ///
    /// ```
    /// use rill_streams::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("readings")
    ///     // Keys of the form "region/sensor": one region's sensors share a partition.
    ///     .to_with_partitioner("readings-by-region", |key: &String, _, partitions| {
    ///         let region = key.split('/').next().unwrap_or_default();
    ///         Some((region.bytes().map(i32::from).sum::<i32>()) % partitions)
    ///     });
    /// ```
    pub fn to_with_partitioner(
        &self,
        topic: &str,
        partitioner: impl Fn(&K, &V, i32) -> Option<i32> + Send + Sync + 'static,
    ) where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.add_sink(
            TopicName::External(topic.to_string()),
            K::default_serde(),
            V::default_serde(),
            Some(Arc::new(partitioner)),
        );
    }

    /// Writes each record to the topic `extractor` names for it.
    pub fn to_dynamic(&self, extractor: impl Fn(&Record<K, V>) -> String + Send + Sync + 'static)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_dynamic_with(extractor, K::default_serde(), V::default_serde());
    }

    /// [`to_dynamic`](Self::to_dynamic) with explicit serdes.
    pub fn to_dynamic_with(
        &self,
        extractor: impl Fn(&Record<K, V>) -> String + Send + Sync + 'static,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) {
        let extractor: TopicExtractor<K, V> = Arc::new(extractor);
        let partitioner: Option<StreamPartitioner<K, V>> = None;
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KSTREAM-SINK");
        let factory = Box::new(move |_: &_, _: &[&dyn Any]| {
            let sink = SinkNode {
                topic: TopicChoice::Dynamic(extractor.clone()),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                partitioner: partitioner.clone(),
            };
            let input: Child<K, V> = Rc::new(RefCell::new(sink));
            Ok(Instantiated {
                input: Some(Box::new(input)),
                lifecycle: None,
                source: None,
            })
        });
        graph.add(NodeDef {
            name,
            kind: NodeKind::Sink { topic: None },
            parents: vec![self.node],
            stores: vec![],
            factory,
        });
    }

    fn add_sink(
        &self,
        topic: TopicName,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        partitioner: Option<StreamPartitioner<K, V>>,
    ) {
        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KSTREAM-SINK");
        let sink_topic = topic.clone();
        let factory = Box::new(move |build: &crate::graph::BuildContext, _: &[&dyn Any]| {
            let sink = SinkNode {
                topic: TopicChoice::Fixed(sink_topic.resolve(&build.application_id)),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                partitioner: partitioner.clone(),
            };
            let input: Child<K, V> = Rc::new(RefCell::new(sink));
            Ok(Instantiated {
                input: Some(Box::new(input)),
                lifecycle: None,
                source: None,
            })
        });
        graph.add(NodeDef {
            name,
            kind: NodeKind::Sink { topic: Some(topic) },
            parents: vec![self.node],
            stores: vec![],
            factory,
        });
    }

    /// Sends the records through the internal topic `<application>-<name>-repartition`, so
    /// that records are partitioned by their current key downstream.
    pub fn repartition(&self, name: &str) -> Self
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.repartition_with(name, K::default_serde(), V::default_serde())
    }

    /// [`repartition`](Self::repartition) as `options` say: serdes, and a partition count of
    /// its own (e.g. more partitions than the input, to spread an expensive step over more
    /// tasks).
    ///
    /// ```
    /// use rill_streams::{Repartitioned, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .select_key(|_, page| page.clone())
    ///     .repartition_as(Repartitioned::named("by-page").partitions(12))
    ///     .to("clicks-by-page");
    /// ```
    pub fn repartition_as(&self, options: Repartitioned<K, V>) -> Self {
        if let Some(partitions) = options.partitions.filter(|&n| n < 1) {
            self.graph
                .borrow_mut()
                .errors
                .push(crate::error::StreamsError::InvalidPartitions {
                    topic: options.name.clone(),
                    partitions,
                });
        }
        self.repartition_into(
            &options.name,
            options.key_serde,
            options.value_serde,
            options.partitions,
        )
    }

    /// [`repartition`](Self::repartition) with explicit serdes.
    pub(crate) fn repartition_with(
        &self,
        name: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self {
        self.repartition_into(name, key_serde, value_serde, None)
    }

    fn repartition_into(
        &self,
        name: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        partitions: Option<i32>,
    ) -> Self {
        let suffix = format!("{name}-repartition");
        self.graph
            .borrow_mut()
            .repartition_topics
            .insert(suffix.clone(), partitions);
        let topic = TopicName::Internal(suffix);
        self.add_sink(topic.clone(), key_serde.clone(), value_serde.clone(), None);
        let node = add_source(
            &mut self.graph.borrow_mut(),
            vec![topic],
            key_serde,
            value_serde,
        );
        KStream::new(self.graph.clone(), node, false)
    }

    /// Groups records by their key, for aggregation. Repartitions first when an earlier
    /// operation may have changed the key.
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
        }
    }

    /// Groups records by a new key, for aggregation (always repartitions).
    pub fn group_by<K2: Clone + 'static>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V> {
        KGroupedStream {
            stream: self.select_key(selector),
        }
    }

    /// [`group_by_key`](Self::group_by_key), repartitioning (when an earlier operation may
    /// have changed the key) as `options` say: the topic's name, serdes and partition count
    /// (Kafka Streams' `groupByKey(Grouped)`). Every aggregation of the grouped stream,
    /// windowed or not, reads that topic.
    ///
    /// ```
    /// use rill_streams::{Repartitioned, StoreOptions, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .select_key(|_, page| page.clone())
    ///     .group_by_key_as(Repartitioned::named("clicks-by-page").partitions(6))
    ///     .count(StoreOptions::persistent("clicks-per-page"));
    /// ```
    pub fn group_by_key_as(&self, options: Repartitioned<K, V>) -> KGroupedStream<K, V> {
        let stream = if self.key_changed {
            self.repartition_as(options)
        } else {
            self.clone()
        };
        KGroupedStream { stream }
    }

    /// [`group_by`](Self::group_by), its repartition topic named and written as `options`
    /// say (Kafka Streams' `groupBy(selector, Grouped)`).
    pub fn group_by_as<K2: Clone + 'static>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        options: Repartitioned<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(selector).group_by_key_as(options)
    }
}
