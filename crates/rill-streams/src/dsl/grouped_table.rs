//! Re-aggregating a table by another key: [`KTable::group_by`] and [`KGroupedTable`].
//!
//! A table row that changes must leave the group it was counted in and join its new one, so
//! every update travels as two halves through a repartition topic keyed by the new group: the
//! old value (subtracted from its group) and the new value (added to its group). The halves of
//! one update go out old first, so when both land in the same group the aggregate never counts
//! the row twice.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::graph::StoreDef;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{DefaultSerde, Serde, SerdeError, SharedSerde};
use crate::store::KeyValueStore;

use super::KStream;
use super::builder::StoreOptions;
use super::table::{Change, KTable};

/// Folds a row's value into (adder) or out of (subtractor) its group's aggregate.
type TableAggregator<K, V, A> = Arc<dyn Fn(&K, &V, A) -> A + Send + Sync>;

/// Derives a row's group and the value that counts in it.
type GroupSelector<K, V, K2, V2> = Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync>;

/// A table's rows grouped by a new key, ready to re-aggregate; see [`KTable::group_by`].
pub struct KGroupedTable<K, V> {
    /// Halves of row updates, partitioned by group.
    changes: KStream<K, Change<V>>,
}

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Groups the rows by a key (and value) derived from each row, to aggregate them per
    /// group: when a row changes, its old value leaves its old group and its new value joins
    /// its new group. Repartitions through `<application>-<store>-repartition`, named after the
    /// store of the aggregation that follows.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// // customer id -> level; count customers per level.
    /// let per_level = builder
    ///     .table::<i64, String>("customer-levels", StoreOptions::persistent("levels"))
    ///     .group_by(|_, level| (level.clone(), ()))
    ///     .count(StoreOptions::persistent("customers-per-level"));
    /// # let _ = per_level;
    /// ```
    pub fn group_by<K2, V2>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        // A row's old value must leave the group it was counted in.
        self.want_old_values();
        let selector: GroupSelector<K, V, K2, V2> = Arc::new(selector);
        let changes = KStream::<K, Change<V>>::new(self.graph.clone(), self.node, false).add(
            "KTABLE-SELECT",
            vec![],
            true,
            move || SplitChange {
                selector: selector.clone(),
            },
        );
        KGroupedTable { changes }
    }
}

impl<K, V> KGroupedTable<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Rows per group.
    pub fn count(&self, store: StoreOptions) -> KTable<K, i64> {
        self.aggregate(store, || 0, |_, _, n| n + 1, |_, _, n| n - 1)
    }

    /// Combines the values of each group: `adder` folds in a row's new value, `subtractor`
    /// takes out its old one (e.g. `+` and `-` for a sum). The first value starts the result.
    pub fn reduce(
        &self,
        store: StoreOptions,
        adder: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let initial: Arc<dyn Fn() -> Option<V> + Send + Sync> = Arc::new(|| None);
        let add: TableAggregator<K, V, Option<V>> = Arc::new(move |_, value, current| {
            Some(match current {
                Some(current) => adder(&current, value),
                None => value.clone(),
            })
        });
        let subtract: TableAggregator<K, V, Option<V>> =
            Arc::new(move |_, value, current| current.map(|current| subtractor(&current, value)));
        self.aggregate_into(store, initial, add, subtract)
    }

    /// Folds each group's rows into an aggregate starting at `initializer()`: `adder` takes
    /// a row's new value in, `subtractor` its old value out.
    pub fn aggregate<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> KTable<K, A> {
        let initial: Arc<dyn Fn() -> Option<A> + Send + Sync> =
            Arc::new(move || Some(initializer()));
        let add: TableAggregator<K, V, Option<A>> =
            Arc::new(move |key, value, current| current.map(|current| adder(key, value, current)));
        let subtract: TableAggregator<K, V, Option<A>> = Arc::new(move |key, value, current| {
            current.map(|current| subtractor(key, value, current))
        });
        self.aggregate_into(store, initial, add, subtract)
    }

    /// The shared body: `A` is stored, `Option<A>` folded so that reduce can start empty.
    fn aggregate_into<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        initial: Arc<dyn Fn() -> Option<A> + Send + Sync>,
        add: TableAggregator<K, V, Option<A>>,
        subtract: TableAggregator<K, V, Option<A>>,
    ) -> KTable<K, A> {
        let changes = self.changes.repartition_with(
            &store.name,
            K::default_serde(),
            Arc::new(ChangeSerde::new(V::default_serde())),
        );
        let mut graph = changes.graph.borrow_mut();
        graph.add_dsl_store(StoreDef {
            name: store.name.clone(),
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(K::default_serde()),
            value_serde: Arc::new(A::default_serde()),
        });
        drop(graph);
        let store_name = store.name.clone();
        let node: KStream<K, Change<A>> = changes.add_built(
            "KTABLE-AGGREGATE",
            vec![store.name.clone()],
            false,
            move |ctx| {
                Ok(TableAggregate {
                    store: ctx.key_value_store(&store_name)?,
                    initial: initial.clone(),
                    add: add.clone(),
                    subtract: subtract.clone(),
                })
            },
        );
        KTable::new(changes.graph.clone(), node.node, Some(store.name))
    }
}

/// Splits a row update into its old half (to the old group) and its new half (to the new
/// group), in that order.
struct SplitChange<K, V, K2, V2> {
    selector: GroupSelector<K, V, K2, V2>,
}

impl<K, V, K2, V2> Processor<K, Change<V>, K2, Change<V2>> for SplitChange<K, V, K2, V2>
where
    K: 'static,
    V: 'static,
    K2: Clone + 'static,
    V2: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let Record {
            key,
            value: change,
            timestamp,
            headers,
        } = record;
        if let Some(old) = &change.old {
            let (group, value) = (self.selector)(&key, old);
            let half = Change {
                new: None,
                old: Some(value),
            };
            ctx.forward(Record {
                key: group,
                value: half,
                timestamp,
                headers: headers.clone(),
            })?;
        }
        if let Some(new) = &change.new {
            let (group, value) = (self.selector)(&key, new);
            let half = Change {
                new: Some(value),
                old: None,
            };
            ctx.forward(Record {
                key: group,
                value: half,
                timestamp,
                headers,
            })?;
        }
        Ok(())
    }
}

/// Applies halves of row updates to their group's aggregate and forwards its change.
struct TableAggregate<K, V, A> {
    store: KeyValueStore<K, A>,
    initial: Arc<dyn Fn() -> Option<A> + Send + Sync>,
    add: TableAggregator<K, V, Option<A>>,
    subtract: TableAggregator<K, V, Option<A>>,
}

impl<K, V, A> Processor<K, Change<V>, K, Change<A>> for TableAggregate<K, V, A>
where
    K: Clone + 'static,
    V: 'static,
    A: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let store = &self.store;
        let old = store.get(&record.key)?;
        let mut aggregate = old.clone().or_else(|| (self.initial)());
        if let Some(value) = &record.value.old {
            aggregate = (self.subtract)(&record.key, value, aggregate);
        }
        if let Some(value) = &record.value.new {
            aggregate = (self.add)(&record.key, value, aggregate);
        }
        let Some(new) = aggregate else {
            return Ok(());
        };
        store.put(&record.key, &new)?;
        ctx.forward(record.with_value(Change {
            new: Some(new),
            old,
        }))
    }
}

/// A half of a row update in the repartition topic: a flags byte (1: old value present, 2:
/// new value present), then the old value's length (u32, big-endian) and bytes, then the new
/// value's bytes.
struct ChangeSerde<V> {
    inner: SharedSerde<V>,
}

impl<V> ChangeSerde<V> {
    fn new(inner: SharedSerde<V>) -> Self {
        ChangeSerde { inner }
    }
}

const HAS_OLD: u8 = 1;
const HAS_NEW: u8 = 2;

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, topic: &str, change: &Change<V>) -> Result<Bytes, SerdeError> {
        let old = change
            .old
            .as_ref()
            .map(|v| self.inner.serialize(topic, v))
            .transpose()?;
        let new = change
            .new
            .as_ref()
            .map(|v| self.inner.serialize(topic, v))
            .transpose()?;
        let flags =
            if old.is_some() { HAS_OLD } else { 0 } | if new.is_some() { HAS_NEW } else { 0 };
        let mut out = BytesMut::new();
        out.put_u8(flags);
        if let Some(old) = old {
            let len = u32::try_from(old.len()).map_err(|_| SerdeError {
                format: "table change",
                reason: format!("old value of {} bytes is too large", old.len()),
            })?;
            out.put_u32(len);
            out.put_slice(&old);
        }
        if let Some(new) = new {
            out.put_slice(&new);
        }
        Ok(out.freeze())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Change<V>, SerdeError> {
        let bad = |reason: &str| SerdeError {
            format: "table change",
            reason: reason.to_string(),
        };
        let (&flags, mut rest) = bytes.split_first().ok_or_else(|| bad("empty record"))?;
        if flags & !(HAS_OLD | HAS_NEW) != 0 {
            return Err(bad("unknown flags"));
        }
        let old = if flags & HAS_OLD != 0 {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| bad("truncated old value length"))?;
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(bad("truncated old value"));
            }
            let (old, tail) = tail.split_at(len);
            rest = tail;
            Some(self.inner.deserialize(topic, old)?)
        } else {
            None
        };
        let new = if flags & HAS_NEW != 0 {
            Some(self.inner.deserialize(topic, rest)?)
        } else if rest.is_empty() {
            None
        } else {
            return Err(bad("bytes after the last value"));
        };
        Ok(Change { new, old })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;

    #[test]
    fn changes_round_trip_through_the_repartition_format() {
        let serde = ChangeSerde::new(Arc::new(StringSerde));
        for change in [
            Change {
                new: Some("n".to_string()),
                old: Some("old".to_string()),
            },
            Change {
                new: None,
                old: Some(String::new()),
            },
            Change {
                new: Some(String::new()),
                old: None,
            },
        ] {
            let bytes = serde.serialize("t", &change).expect("serialize");
            assert_eq!(serde.deserialize("t", &bytes).expect("deserialize"), change);
        }
        assert!(
            serde
                .deserialize("t", &[HAS_OLD, 0, 0, 0, 9, b'x'])
                .is_err()
        );
        assert!(serde.deserialize("t", &[8]).is_err());
        assert!(serde.deserialize("t", &[]).is_err());
    }
}
