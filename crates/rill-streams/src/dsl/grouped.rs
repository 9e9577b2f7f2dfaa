use std::sync::Arc;

use crate::error::Result;
use crate::graph::StoreDef;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde};
use crate::store::KeyValueStore;

use super::KStream;
use super::builder::StoreOptions;
use super::table::{Change, KTable};

/// A stream grouped by key, ready to aggregate into a table.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
}

type Aggregator<K, V, A> = Arc<dyn Fn(&K, &V, A) -> A + Send + Sync>;

impl<K, V> KGroupedStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Counts records per key.
    pub fn count(&self, store: StoreOptions) -> KTable<K, i64> {
        self.aggregate(store, || 0, |_, _, count| count + 1)
    }

    /// Combines the values of each key with `reducer` (the first value starts the result).
    pub fn reduce(
        &self,
        store: StoreOptions,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let initial: Arc<dyn Fn() -> Option<V> + Send + Sync> = Arc::new(|| None);
        let aggregator: Aggregator<K, V, Option<V>> = Arc::new(move |_, value, current| {
            Some(match current {
                Some(current) => reducer(&current, value),
                None => value.clone(),
            })
        });
        self.aggregate_into(store, V::default_serde(), initial, aggregator)
    }

    /// Folds the values of each key into an aggregate, starting from `initializer()`.
    pub fn aggregate<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> KTable<K, A> {
        self.aggregate_with(store, A::default_serde(), initializer, aggregator)
    }

    /// Like [`aggregate`](Self::aggregate), the aggregate kept (and changelogged) with
    /// `aggregate_serde` (Kafka Streams' `Materialized.withValueSerde`): for an aggregate type
    /// without a [`DefaultSerde`], or in another format.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rill_streams::{I64Serde, StoreOptions, StreamsBuilder};
    ///
    /// /// Not a serde type: kept as its big-endian total.
    /// #[derive(Clone)]
    /// struct Total(i64);
    /// struct TotalSerde;
    /// impl rill_streams::Serde<Total> for TotalSerde {
    ///     fn serialize(&self, t: &str, v: &Total) -> Result<bytes::Bytes, rill_streams::SerdeError> {
    ///         rill_streams::Serde::serialize(&I64Serde, t, &v.0)
    ///     }
    ///     fn deserialize(&self, t: &str, b: &[u8]) -> Result<Total, rill_streams::SerdeError> {
    ///         rill_streams::Serde::deserialize(&I64Serde, t, b).map(Total)
    ///     }
    /// }
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("payments")
    ///     .group_by_key()
    ///     .aggregate_with(StoreOptions::persistent("totals"), Arc::new(TotalSerde),
    ///         || Total(0), |_, amount, total| Total(total.0 + amount));
    /// ```
    pub fn aggregate_with<A: Clone + 'static>(
        &self,
        store: StoreOptions,
        aggregate_serde: SharedSerde<A>,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> KTable<K, A> {
        let initial: Arc<dyn Fn() -> Option<A> + Send + Sync> =
            Arc::new(move || Some(initializer()));
        let aggregator: Aggregator<K, V, Option<A>> =
            Arc::new(move |key, value, current: Option<A>| {
                current.map(|current| aggregator(key, value, current))
            });
        self.aggregate_into(store, aggregate_serde, initial, aggregator)
    }

    /// The shared body of count / reduce / aggregate: `A` is stored, `Option<A>` is folded so
    /// that reduce can start from "no value yet".
    fn aggregate_into<A: Clone + 'static>(
        &self,
        store: StoreOptions,
        aggregate_serde: SharedSerde<A>,
        initial: Arc<dyn Fn() -> Option<A> + Send + Sync>,
        aggregator: Aggregator<K, V, Option<A>>,
    ) -> KTable<K, A> {
        let stream = if self.stream.key_changed {
            self.stream.repartition(&store.name)
        } else {
            self.stream.clone()
        };
        stream.graph.borrow_mut().add_dsl_store(StoreDef {
            name: store.name.clone(),
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(K::default_serde()),
            value_serde: Arc::new(aggregate_serde),
        });
        let store_name = store.name.clone();
        let node: KStream<K, Change<A>> = stream.add_built(
            "KSTREAM-AGGREGATE",
            vec![store.name.clone()],
            false,
            move |ctx| {
                Ok(Aggregate {
                    store: ctx.key_value_store(&store_name)?,
                    initial: initial.clone(),
                    aggregator: aggregator.clone(),
                })
            },
        );
        KTable::new(stream.graph.clone(), node.node, Some(store.name))
    }
}

/// Folds each record into its key's aggregate in a store and forwards the change.
struct Aggregate<K, V, A> {
    store: KeyValueStore<K, A>,
    initial: Arc<dyn Fn() -> Option<A> + Send + Sync>,
    aggregator: Aggregator<K, V, Option<A>>,
}

impl<K, V, A> Processor<K, V, K, Change<A>> for Aggregate<K, V, A>
where
    K: Clone + 'static,
    V: 'static,
    A: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let store = &self.store;
        let old = store.get(&record.key)?;
        let start = old.clone().or_else(|| (self.initial)());
        let Some(new) = (self.aggregator)(&record.key, &record.value, start) else {
            return Ok(());
        };
        store.put(&record.key, &new)?;
        ctx.forward(record.with_value(Change {
            new: Some(new),
            old,
        }))
    }
}
