//! Stream-table, stream-global-table and table-table joins.

use crate::functions::KeySelector;
use bytes::Bytes;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde, decode_present};
use crate::store::KeyValueStore;

use super::KStream;
use super::table::{Change, GlobalKTable, KTable};

type Joiner<L, R, O> = Arc<dyn Fn(Option<&L>, Option<&R>) -> Option<O> + Send + Sync>;

impl<K, V> KStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Joins each record with the table's row of the same key; records without a row are
    /// dropped. The stream is repartitioned first if its key may have changed.
    pub fn join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VT, VR> = Arc::new(move |v, t| Some(joiner(v?, t?)));
        self.join_table(table, joiner)
    }

    /// Joins each record with the table's row of the same key, or `None` when there is none.
    pub fn left_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VT, VR> = Arc::new(move |v, t| Some(joiner(v?, t)));
        self.join_table(table, joiner)
    }

    fn join_table<VT, VR>(&self, table: &KTable<K, VT>, joiner: Joiner<V, VT, VR>) -> KStream<K, VR>
    where
        VT: Clone + 'static,
        VR: Clone + 'static,
    {
        let Some(store) = table.store.clone() else {
            self.graph
                .borrow_mut()
                .errors
                .push(StreamsError::NotMaterialized {
                    operation: "a stream-table join",
                });
            return KStream::new(self.graph.clone(), self.node, self.key_changed);
        };
        let stream = if self.key_changed {
            self.repartition(&format!("{store}-join"))
        } else {
            self.clone()
        };
        let history = self.graph.borrow().versioned.get(&store).cloned();
        if let Some(history) = history {
            // The table's value serde, as it registered its store.
            let value_serde = self
                .graph
                .borrow()
                .stores
                .iter()
                .find(|def| def.name == store)
                .and_then(|def| def.value_serde.downcast_ref::<SharedSerde<VT>>().cloned());
            let Some(value_serde) = value_serde else {
                self.graph
                    .borrow_mut()
                    .errors
                    .push(StreamsError::StoreType {
                        store: store.clone(),
                        what: "value",
                        expected: std::any::type_name::<VT>(),
                    });
                return KStream::new(self.graph.clone(), self.node, self.key_changed);
            };
            return stream.add_built(
                "KSTREAM-JOIN-ASOF",
                vec![history.clone()],
                false,
                move |ctx| {
                    Ok(VersionedLookupJoin {
                        history: ctx.key_value_store(&history)?,
                        history_name: history.clone(),
                        key_serde: K::default_serde(),
                        value_serde: value_serde.clone(),
                        joiner: joiner.clone(),
                    })
                },
            );
        }
        stream.add_built("KSTREAM-JOIN", vec![store.clone()], false, move |ctx| {
            Ok(StreamLookupJoin {
                store: ctx.key_value_store(&store)?,
                key: Arc::new(|key: &K, _: &V| key.clone()),
                joiner: joiner.clone(),
            })
        })
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Joins each record with the global table's row under the key `key` takes from it;
    /// records without a row are dropped. No repartitioning is needed.
    pub fn join_global<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VG, VR> = Arc::new(move |v, g| Some(joiner(v?, g?)));
        self.join_global_with(global, Arc::new(key), joiner)
    }

    /// Like [`join_global`](Self::join_global), keeping records without a row (`None`).
    pub fn left_join_global<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VG, VR> = Arc::new(move |v, g| Some(joiner(v?, g)));
        self.join_global_with(global, Arc::new(key), joiner)
    }

    fn join_global_with<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key: KeySelector<K, V, KG>,
        joiner: Joiner<V, VG, VR>,
    ) -> KStream<K, VR>
    where
        KG: 'static,
        VG: 'static,
        VR: Clone + 'static,
    {
        let store = global.store.clone();
        self.add_built(
            "KSTREAM-GLOBALJOIN",
            vec![store.clone()],
            false,
            move |ctx| {
                Ok(StreamLookupJoin {
                    store: ctx.key_value_store(&store)?,
                    key: key.clone(),
                    joiner: joiner.clone(),
                })
            },
        )
    }
}

/// Looks each record's join key up in a store and forwards the joined value.
/// Joins each record with the table's row as of the record's timestamp, from a versioned
/// table's history.
struct VersionedLookupJoin<K, V, VT, VR> {
    /// The history store's name, for serde calls and their errors.
    history_name: String,
    history: KeyValueStore<Bytes, Bytes>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<VT>,
    joiner: Joiner<V, VT, VR>,
}

impl<K, V, VT, VR> Processor<K, V, K, VR> for VersionedLookupJoin<K, V, VT, VR>
where
    K: Clone + 'static,
    V: 'static,
    VT: 'static,
    VR: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<()> {
        let history = &self.history;
        let serde_error = |what, source| StreamsError::Serde {
            topic: self.history_name.clone(),
            what,
            source,
        };
        let key = self
            .key_serde
            .serialize(&self.history_name, &record.key)
            .map_err(|e| serde_error("key", e))?;
        let row = match super::versioned::version_as_of(history, &key, record.timestamp)? {
            Some(version) => decode_present(&self.value_serde, &self.history_name, &version)
                .map_err(|e| serde_error("value", e))?,
            None => None,
        };
        match (self.joiner)(Some(&record.value), row.as_ref()) {
            Some(joined) => ctx.forward(record.with_value(joined)),
            None => Ok(()),
        }
    }
}

struct StreamLookupJoin<K, V, KT, VT, VR> {
    store: KeyValueStore<KT, VT>,
    key: KeySelector<K, V, KT>,
    joiner: Joiner<V, VT, VR>,
}

impl<K, V, KT, VT, VR> Processor<K, V, K, VR> for StreamLookupJoin<K, V, KT, VT, VR>
where
    K: Clone + 'static,
    V: 'static,
    KT: 'static,
    VT: 'static,
    VR: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<()> {
        let row = self.store.get(&(self.key)(&record.key, &record.value))?;
        match (self.joiner)(Some(&record.value), row.as_ref()) {
            Some(joined) => ctx.forward(record.with_value(joined)),
            None => Ok(()),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    /// Rows present in both tables, combined.
    pub fn join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.join_tables(other, Arc::new(move |l, r| Some(joiner(l?, r?))))
    }

    /// Every row of this table, combined with the other's row when there is one.
    pub fn left_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.join_tables(other, Arc::new(move |l, r| Some(joiner(l?, r))))
    }

    /// Every row of either table, combined with the other's when there is one.
    pub fn outer_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.join_tables(
            other,
            Arc::new(move |l, r| (l.is_some() || r.is_some()).then(|| joiner(l, r))),
        )
    }

    fn join_tables<VO, VR>(&self, other: &KTable<K, VO>, joiner: Joiner<V, VO, VR>) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let (Some(left_store), Some(right_store)) = (self.store.clone(), other.store.clone())
        else {
            self.graph
                .borrow_mut()
                .errors
                .push(StreamsError::NotMaterialized {
                    operation: "a table-table join",
                });
            return KTable::new(self.graph.clone(), self.node, None);
        };
        // A change of one side retracts what its old value joined with.
        self.want_old_values();
        other.want_old_values();
        let stores = vec![left_store.clone(), right_store.clone()];
        let left_joiner = joiner.clone();
        let left_changes: KStream<K, Change<V>> =
            KStream::new(self.graph.clone(), self.node, false);
        let from_left: KStream<K, Change<VR>> =
            left_changes.add_built("KTABLE-JOINTHIS", stores.clone(), false, move |ctx| {
                Ok(TableSideJoin {
                    other: ctx.key_value_store(&right_store)?,
                    joiner: {
                        let joiner = left_joiner.clone();
                        Arc::new(move |mine: Option<&V>, theirs: Option<&VO>| joiner(mine, theirs))
                    },
                })
            });
        let right_changes: KStream<K, Change<VO>> =
            KStream::new(other.graph.clone(), other.node, false);
        let from_right: KStream<K, Change<VR>> =
            right_changes.add_built("KTABLE-JOINOTHER", stores, false, move |ctx| {
                Ok(TableSideJoin {
                    other: ctx.key_value_store(&left_store)?,
                    joiner: {
                        let joiner = joiner.clone();
                        Arc::new(move |mine: Option<&VO>, theirs: Option<&V>| joiner(theirs, mine))
                    },
                })
            });
        let merged = from_left.merge(&from_right);
        KTable::new(self.graph.clone(), merged.node, None)
    }
}

/// One side of a table-table join: a change of this side joined with the other side's row.
struct TableSideJoin<K, VM, VT, VR> {
    other: KeyValueStore<K, VT>,
    joiner: Joiner<VM, VT, VR>,
}

impl<K, VM, VT, VR> Processor<K, Change<VM>, K, Change<VR>> for TableSideJoin<K, VM, VT, VR>
where
    K: Clone + 'static,
    VM: 'static,
    VT: 'static,
    VR: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<VM>>,
    ) -> Result<()> {
        let theirs = self.other.get(&record.key)?;
        let new = (self.joiner)(record.value.new.as_ref(), theirs.as_ref());
        let old = (self.joiner)(record.value.old.as_ref(), theirs.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(record.with_value(Change { new, old }))
    }
}
