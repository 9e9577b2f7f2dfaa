use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use rill_log::ConsumedRecord;

use crate::error::Result;
use crate::graph::StoreDef;
use crate::graph::{GraphBuilder, NodeId};
use crate::processor::{InitContext, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde};
use crate::store::KeyValueStore;
use crate::task::{Child, RawSource, TaskState, undecodable};

use super::KStream;
use super::builder::StoreOptions;

/// An update of a table row: its new value (`None`: deleted) and the value it replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    /// The value after the update.
    pub new: Option<V>,
    /// The value before it.
    pub old: Option<V>,
}

/// A changelog stream seen as a table: the latest value per key.
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    /// Node forwarding `Change<V>` records.
    pub(crate) node: NodeId,
    /// Store holding the table, when it is materialized.
    pub(crate) store: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable::new(self.graph.clone(), self.node, self.store.clone())
    }
}

impl<K, V> KTable<K, V> {
    pub(crate) fn new(
        graph: Rc<RefCell<GraphBuilder>>,
        node: NodeId,
        store: Option<String>,
    ) -> Self {
        KTable {
            graph,
            node,
            store,
            _types: PhantomData,
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    fn changes(&self) -> KStream<K, Change<V>> {
        KStream::new(self.graph.clone(), self.node, false)
    }

    /// The name of the store holding this table, if it is materialized.
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The stream of updates: each new value (deletions are left out; see
    /// [`to_change_stream`](Self::to_change_stream)).
    pub fn to_stream(&self) -> KStream<K, V> {
        self.changes()
            .flat_map_values(|change: Change<V>| change.new.into_iter().collect())
    }

    /// The stream of updates with deletions as `None`.
    pub fn to_change_stream(&self) -> KStream<K, Option<V>> {
        self.changes().map_values(|change: Change<V>| change.new)
    }

    /// The rows the predicate accepts (a row that stops matching is deleted downstream).
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let predicate = Arc::new(predicate);
        let node: KStream<K, Change<V>> =
            self.changes()
                .add("KTABLE-FILTER", vec![], false, move || TableMap {
                    mapper: {
                        let predicate = predicate.clone();
                        Arc::new(move |key: &K, value: V| predicate(key, &value).then_some(value))
                    },
                });
        KTable::new(self.graph.clone(), node.node, None)
    }

    /// Rows with their values transformed.
    pub fn map_values<V2: Clone + 'static>(
        &self,
        mapper: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let mapper = Arc::new(mapper);
        let node: KStream<K, Change<V2>> =
            self.changes()
                .add("KTABLE-MAPVALUES", vec![], false, move || TableMap {
                    mapper: {
                        let mapper = mapper.clone();
                        Arc::new(move |_: &K, value: V| Some(mapper(&value)))
                    },
                });
        KTable::new(self.graph.clone(), node.node, None)
    }
}

impl<K, V> KTable<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// This table kept in a store of its own (Kafka Streams' `Materialized` on `filter`,
    /// `mapValues` or a join): a derived table can then be joined, re-grouped and queried
    /// like a source table. A table that already has a store gets a second one.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let big_spenders = builder
    ///     .table::<String, i64>("spend", StoreOptions::persistent("spend"))
    ///     .filter(|_, total| *total > 1_000)
    ///     .materialize(StoreOptions::persistent("big-spenders"));
    /// assert_eq!(big_spenders.store_name(), Some("big-spenders"));
    /// ```
    pub fn materialize(&self, store: StoreOptions) -> KTable<K, V> {
        materialize_updates(&self.to_change_stream(), store)
    }
}

impl<K, V> KStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// The stream read as a table (Kafka Streams' `toTable`): each record is the new value of
    /// its key, kept in `store`. Repartitions first when the key may have changed.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let last_seen = builder
    ///     .stream::<String, i64>("logins")
    ///     .to_table(StoreOptions::persistent("last-login"));
    /// # let _ = last_seen;
    /// ```
    pub fn to_table(&self, store: StoreOptions) -> KTable<K, V> {
        self.map_values(Some).to_table_with_tombstones(store)
    }
}

impl<K, V> KStream<K, Option<V>>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Like [`to_table`](KStream::to_table) for a stream whose `None` values are tombstones:
    /// `Some` sets the key's value, `None` deletes the key.
    pub fn to_table_with_tombstones(&self, store: StoreOptions) -> KTable<K, V> {
        let updates = if self.key_changed {
            self.repartition_with(
                &store.name,
                K::default_serde(),
                <Option<V>>::default_serde(),
            )
        } else {
            self.clone()
        };
        materialize_updates(&updates, store)
    }
}

/// Keeps a stream of row updates (`None`: delete) in `store`, as a table.
pub(crate) fn materialize_updates<K, V>(
    updates: &KStream<K, Option<V>>,
    store: StoreOptions,
) -> KTable<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    let mut graph = updates.graph.borrow_mut();
    graph.add_dsl_store(StoreDef {
        name: store.name.clone(),
        kind: store.kind,
        logged: store.logged,
        window_retention: None,
        caching: store.caching,
        key_serde: Arc::new(K::default_serde()),
        value_serde: Arc::new(V::default_serde()),
    });
    drop(graph);
    let store_name = store.name.clone();
    let node: KStream<K, Change<V>> = updates.add_built(
        "KTABLE-MATERIALIZE",
        vec![store.name.clone()],
        false,
        move |ctx| Materialize::<K, V>::new(ctx, &store_name),
    );
    KTable::new(updates.graph.clone(), node.node, Some(store.name))
}

/// Maps a row's value, or drops the row (`None`).
type RowMapper<K, V, V2> = Arc<dyn Fn(&K, V) -> Option<V2> + Send + Sync>;

/// Applies a value function to both sides of a change (`None` result: the row is absent).
struct TableMap<K, V, V2> {
    mapper: RowMapper<K, V, V2>,
}

impl<K, V, V2> Processor<K, Change<V>, K, Change<V2>> for TableMap<K, V, V2>
where
    K: Clone + 'static,
    V: 'static,
    V2: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let new = record.value.new.and_then(|v| (self.mapper)(&record.key, v));
        let old = record.value.old.and_then(|v| (self.mapper)(&record.key, v));
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        let change = Change { new, old };
        ctx.forward(Record {
            key: record.key,
            value: change,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// Source of a table topic: a record without a value deletes its key.
pub(crate) struct TableSource<K, V> {
    pub key_serde: SharedSerde<K>,
    pub value_serde: SharedSerde<V>,
    pub children: Vec<Child<K, Option<V>>>,
}

impl<K: Clone + 'static, V: Clone + 'static> RawSource for TableSource<K, V> {
    fn process_raw(&mut self, task: &mut TaskState, record: &ConsumedRecord) -> Result<()> {
        match Record::decode_row(record, &*self.key_serde, &*self.value_serde) {
            Ok(typed) => {
                task.advance_stream_time(typed.timestamp);
                for child in &self.children {
                    child.borrow_mut().process(task, typed.clone())?;
                }
                Ok(())
            }
            Err(error) => undecodable(task, record, error),
        }
    }
}

/// Writes table updates into the table's store and forwards them as changes.
pub(crate) struct Materialize<K, V> {
    store: KeyValueStore<K, V>,
}

impl<K: 'static, V: 'static> Materialize<K, V> {
    /// Called in `init` (through `add_built`), when the store can be handed over.
    pub fn new(ctx: &mut InitContext<'_>, store_name: &str) -> Result<Self> {
        Ok(Self {
            store: ctx.key_value_store(store_name)?,
        })
    }
}

impl<K, V> Processor<K, Option<V>, K, Change<V>> for Materialize<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<()> {
        let store = &self.store;
        let old = match &record.value {
            Some(value) => {
                let old = store.get(&record.key)?;
                store.put(&record.key, value)?;
                old
            }
            None => store.delete(&record.key)?,
        };
        let new = record.value.clone();
        if new.is_none() && old.is_none() {
            // Deleting what is not there changes nothing downstream.
            return Ok(());
        }
        ctx.forward(record.with_value(Change { new, old }))
    }
}

/// A table replicated in full to every task, joined by a key taken from a stream's records.
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the store holding it.
    pub fn store_name(&self) -> &str {
        &self.store
    }
}
