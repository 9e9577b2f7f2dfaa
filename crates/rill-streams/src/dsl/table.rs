use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
///
/// Old values are sent only when an operator downstream needs them, as in Kafka Streams
/// (`sendOldValues`): table-table joins, foreign-key joins and [`KTable::group_by`] ask for
/// them when the topology is built, and [`KTable::filter`] and [`KTable::map_values`] pass the
/// request on to the table they derive from. Otherwise `old` is `None` and a table's store is
/// not read before each write. A filter that is not asked for old values cannot tell whether
/// a row it rejects passed before, so it forwards a deletion for it regardless (as Kafka
/// Streams does); a deletion of a key that was never there goes nowhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    /// The value after the update.
    pub new: Option<V>,
    /// The value before it, when an operator downstream asked for old values (see above).
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
        self.map_rows(
            "KTABLE-FILTER",
            Arc::new(move |key: &K, value: V| predicate(key, &value).then_some(value)),
        )
    }

    /// Rows with their values transformed.
    pub fn map_values<V2: Clone + 'static>(
        &self,
        mapper: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        self.map_rows(
            "KTABLE-MAPVALUES",
            Arc::new(move |_: &K, value: V| Some(mapper(&value))),
        )
    }

    /// A table derived row by row; it sends old values when asked, and then asks this one.
    fn map_rows<V2: Clone + 'static>(
        &self,
        prefix: &str,
        mapper: RowMapper<K, V, V2>,
    ) -> KTable<K, V2> {
        let wanted = Arc::new(AtomicBool::new(false));
        let node: KStream<K, Change<V2>> = self.changes().add(prefix, vec![], false, {
            let wanted = wanted.clone();
            move || TableMap {
                mapper: mapper.clone(),
                send_old: wanted.load(Ordering::Relaxed),
            }
        });
        self.graph
            .borrow_mut()
            .track_old_values(node.node, wanted, vec![self.node]);
        KTable::new(self.graph.clone(), node.node, None)
    }

    /// Asks this table to send old values in its changes (for an operator that needs them).
    pub(crate) fn want_old_values(&self) {
        self.graph.borrow_mut().request_old_values(self.node);
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
    let wanted = Arc::new(AtomicBool::new(false));
    let send_old = wanted.clone();
    let node: KStream<K, Change<V>> = updates.add_built(
        "KTABLE-MATERIALIZE",
        vec![store.name.clone()],
        false,
        move |ctx| Materialize::<K, V>::new(ctx, &store_name, send_old.load(Ordering::Relaxed)),
    );
    // Old values come from this table's own store, so the request stops here.
    updates
        .graph
        .borrow_mut()
        .track_old_values(node.node, wanted, vec![]);
    KTable::new(updates.graph.clone(), node.node, Some(store.name))
}

/// Maps a row's value, or drops the row (`None`).
type RowMapper<K, V, V2> = Arc<dyn Fn(&K, V) -> Option<V2> + Send + Sync>;

/// Applies a value function to both sides of a change (`None` result: the row is absent).
struct TableMap<K, V, V2> {
    mapper: RowMapper<K, V, V2>,
    /// Whether downstream asked for old values (then the input carries them too).
    send_old: bool,
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
        let old = if self.send_old {
            let old = record.value.old.and_then(|v| (self.mapper)(&record.key, v));
            if new.is_none() && old.is_none() {
                return Ok(());
            }
            old
        } else {
            // A row without a value here may have had one before: its deletion goes on
            // (as in Kafka Streams), unless the input says the old value had none either
            // (aggregations send their old values anyway).
            if new.is_none()
                && record
                    .value
                    .old
                    .is_some_and(|v| (self.mapper)(&record.key, v).is_none())
            {
                return Ok(());
            }
            None
        };
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
    /// Whether downstream asked for old values: reading a row before writing it costs a
    /// lookup and a decode per update, for nothing when no one looks at `old`.
    send_old: bool,
}

impl<K: 'static, V: 'static> Materialize<K, V> {
    /// Called in `init` (through `add_built`), when the store can be handed over.
    pub fn new(ctx: &mut InitContext<'_>, store_name: &str, send_old: bool) -> Result<Self> {
        Ok(Self {
            store: ctx.key_value_store(store_name)?,
            send_old,
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
                let old = if self.send_old {
                    store.get(&record.key)?
                } else {
                    None
                };
                store.put(&record.key, value)?;
                old
            }
            // Deleting what is not there changes nothing downstream.
            None => match store.delete(&record.key)? {
                None => return Ok(()),
                Some(old) => self.send_old.then_some(old),
            },
        };
        ctx.forward(Record {
            key: record.key,
            value: Change {
                new: record.value,
                old,
            },
            timestamp: record.timestamp,
            headers: record.headers,
        })
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;

    use super::*;
    use crate::serde::{Serde, SerdeError};
    use crate::{StreamsBuilder, TopologyTestDriver};

    /// `i64` as 8 big-endian bytes (as its default serde), counting the values it decodes:
    /// one per record at the table's source, one more for each read of the store.
    struct CountingI64(Arc<AtomicUsize>);

    impl Serde<i64> for CountingI64 {
        fn serialize(&self, _topic: &str, value: &i64) -> std::result::Result<Bytes, SerdeError> {
            Ok(Bytes::copy_from_slice(&value.to_be_bytes()))
        }

        fn deserialize(&self, _topic: &str, bytes: &[u8]) -> std::result::Result<i64, SerdeError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            let bytes = <[u8; 8]>::try_from(bytes).map_err(|_| SerdeError {
                format: "i64",
                reason: format!("{} bytes, not 8", bytes.len()),
            })?;
            Ok(i64::from_be_bytes(bytes))
        }
    }

    /// A `prices` table whose values are decoded by a [`CountingI64`], and the changes it sends.
    #[allow(clippy::type_complexity)]
    fn prices(
        builder: &StreamsBuilder,
    ) -> (
        KTable<String, i64>,
        Arc<AtomicUsize>,
        Arc<Mutex<Vec<Change<i64>>>>,
    ) {
        let decoded = Arc::new(AtomicUsize::new(0));
        let table = builder.table_with::<String, i64>(
            "prices",
            StoreOptions::in_memory("prices"),
            String::default_serde(),
            Arc::new(CountingI64(decoded.clone())),
        );
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        table.changes().for_each(move |_, change| {
            seen.lock().expect("changes").push(change.clone());
        });
        (table, decoded, changes)
    }

    fn change(new: Option<i64>, old: Option<i64>) -> Change<i64> {
        Change { new, old }
    }

    #[test]
    fn a_table_read_only_as_a_stream_does_not_read_its_store_before_writing() {
        let builder = StreamsBuilder::new();
        let (table, decoded, changes) = prices(&builder);
        table.to_stream().to("updates");
        let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
        for (price, time) in [(5i64, 1), (6, 2), (7, 3)] {
            driver
                .pipe("prices", &"tea".to_string(), &price, time)
                .unwrap();
        }
        driver
            .pipe_raw("prices", Some(Bytes::from("tea")), None, 4)
            .unwrap();
        // A delete of a missing key still reads (to forward nothing).
        driver
            .pipe_raw("prices", Some(Bytes::from("jam")), None, 5)
            .unwrap();

        // Three values decoded at the source, one by the delete's read: no update read.
        assert_eq!(decoded.load(Ordering::Relaxed), 4);
        assert_eq!(
            *changes.lock().unwrap(),
            vec![
                change(Some(5), None),
                change(Some(6), None),
                change(Some(7), None),
                change(None, None),
            ]
        );
        let out = driver.read_output::<String, i64>("updates").unwrap();
        assert_eq!(
            out.iter().map(|r| r.value).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
    }

    #[test]
    fn a_group_by_behind_a_filter_and_map_values_gets_old_values_from_the_source() {
        let builder = StreamsBuilder::new();
        let (table, decoded, changes) = prices(&builder);
        table
            .filter(|_, price| *price < 100)
            .map_values(|price| if price % 2 == 0 { "even" } else { "odd" }.to_string())
            .group_by(|_, parity| (parity.clone(), ()))
            .count(StoreOptions::in_memory("per-parity"));
        let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
        for (price, time) in [(5i64, 1), (6, 2), (7, 3)] {
            driver
                .pipe("prices", &"tea".to_string(), &price, time)
                .unwrap();
        }

        // Three at the source, two reads of the row before it is overwritten.
        assert_eq!(decoded.load(Ordering::Relaxed), 5);
        assert_eq!(
            *changes.lock().unwrap(),
            vec![
                change(Some(5), None),
                change(Some(6), Some(5)),
                change(Some(7), Some(6)),
            ]
        );
        // Each move subtracted the row from the group it left.
        let counts = driver.key_value_store::<String, i64>("per-parity").unwrap();
        assert_eq!(counts.get(&"odd".to_string()).unwrap(), Some(1));
        assert_eq!(counts.get(&"even".to_string()).unwrap(), Some(0));
    }

    #[test]
    fn a_table_table_join_retracts_a_deleted_row_with_its_old_value() {
        let builder = StreamsBuilder::new();
        let (table, _, changes) = prices(&builder);
        let stock = builder.table::<String, i64>("stock", StoreOptions::in_memory("stock"));
        table
            .join(&stock, |price, count| price * count)
            .to_change_stream()
            .to("worth");
        let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
        driver.pipe("stock", &"tea".to_string(), &3i64, 1).unwrap();
        driver.pipe("prices", &"tea".to_string(), &5i64, 2).unwrap();
        driver
            .pipe_raw("prices", Some(Bytes::from("tea")), None, 3)
            .unwrap();

        assert_eq!(changes.lock().unwrap()[1], change(None, Some(5)));
        let worth = driver.read_output::<String, Option<i64>>("worth").unwrap();
        assert_eq!(
            worth.iter().map(|r| r.value).collect::<Vec<_>>(),
            vec![Some(15), None]
        );
    }

    #[test]
    fn a_filter_not_asked_for_old_values_deletes_every_row_it_rejects() {
        let builder = StreamsBuilder::new();
        let (table, _, _) = prices(&builder);
        let cheap = table.filter(|_, price| *price < 100);
        cheap.to_change_stream().to("cheap");
        cheap.materialize(StoreOptions::in_memory("cheap"));
        let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
        driver
            .pipe("prices", &"tea".to_string(), &500i64, 1)
            .unwrap();
        driver.pipe("prices", &"jam".to_string(), &7i64, 2).unwrap();
        driver
            .pipe("prices", &"jam".to_string(), &700i64, 3)
            .unwrap();

        // Tea never passed, yet its rejection goes downstream as a deletion (as in Kafka
        // Streams): without the old value the filter cannot know.
        let out = driver.read_output::<String, Option<i64>>("cheap").unwrap();
        assert_eq!(
            out.iter()
                .map(|r| (r.key.as_str(), r.value))
                .collect::<Vec<_>>(),
            vec![("tea", None), ("jam", Some(7)), ("jam", None)]
        );
        // A materialized copy is still exact.
        let store = driver.key_value_store::<String, i64>("cheap").unwrap();
        assert_eq!(store.get(&"tea".to_string()).unwrap(), None);
        assert_eq!(store.get(&"jam".to_string()).unwrap(), None);
    }
}
