//! Aggregating several grouped streams into one table (Kafka Streams' `cogroup`): each input
//! folds its records into the same aggregate per key with an aggregator of its own, in one
//! store, with no intermediate tables and joins.

use std::sync::Arc;

use crate::error::Result;
use crate::graph::StoreDef;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::DefaultSerde;
use crate::store::KeyValueStore;

use super::KStream;
use super::builder::StoreOptions;
use super::grouped::KGroupedStream;
use super::table::{Change, KTable};

/// One record, ready to fold into its key's aggregate. It lives only inside a task, on one
/// thread, from the map that makes it to the processor that applies it.
type Update<K, A> = std::rc::Rc<dyn Fn(&K, A) -> A>;

/// Makes an input's stream of updates, given the aggregation's store name (which names its
/// repartition topic, so that names stay stable).
type Input<K, A> = Box<dyn FnOnce(&str, usize) -> KStream<K, Update<K, A>>>;

/// Grouped streams aggregated together; see [`KGroupedStream::cogroup`].
pub struct CogroupedKStream<K, A> {
    inputs: Vec<Input<K, A>>,
}

fn input<K, V, A>(
    grouped: &KGroupedStream<K, V>,
    aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
) -> Input<K, A>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
    A: 'static,
{
    let stream = grouped.stream.clone();
    let aggregator = Arc::new(aggregator);
    Box::new(move |store: &str, index: usize| {
        let stream = if stream.key_changed {
            stream.repartition(&format!("{store}-cogroup-{index}"))
        } else {
            stream
        };
        stream.map_values(move |value: V| {
            let aggregator = aggregator.clone();
            let update: Update<K, A> =
                std::rc::Rc::new(move |key, aggregate| aggregator(key, &value, aggregate));
            update
        })
    })
}

impl<K, V> KGroupedStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Starts aggregating this stream together with others into one table: `aggregator`
    /// folds this stream's records in; add more streams with
    /// [`CogroupedKStream::cogroup`], then [`aggregate`](CogroupedKStream::aggregate).
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder};
    /// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
    /// struct Activity { clicks: i64, purchases: i64 }
    /// rill_streams::json_serde!(Activity);
    ///
    /// let builder = StreamsBuilder::new();
    /// let clicks = builder.stream::<String, String>("clicks").group_by_key();
    /// let purchases = builder.stream::<String, i64>("purchases").group_by_key();
    /// let activity = clicks
    ///     .cogroup(|_, _, mut a: Activity| { a.clicks += 1; a })
    ///     .cogroup(&purchases, |_, _, mut a: Activity| { a.purchases += 1; a })
    ///     .aggregate(StoreOptions::persistent("activity"), Activity::default);
    /// activity.to_stream().to("activity");
    /// ```
    pub fn cogroup<A: 'static>(
        &self,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> CogroupedKStream<K, A> {
        CogroupedKStream {
            inputs: vec![input(self, aggregator)],
        }
    }
}

impl<K, A> CogroupedKStream<K, A>
where
    K: DefaultSerde + Clone,
    A: DefaultSerde + Clone,
{
    /// Adds another grouped stream (same key type, any value type) with its aggregator.
    pub fn cogroup<V: DefaultSerde + Clone>(
        mut self,
        other: &KGroupedStream<K, V>,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> Self {
        self.inputs.push(input(other, aggregator));
        self
    }

    /// The table of aggregates, starting from `initializer()` for each key, kept in `store`.
    pub fn aggregate(
        self,
        store: StoreOptions,
        initializer: impl Fn() -> A + Send + Sync + 'static,
    ) -> KTable<K, A> {
        let mut streams = self
            .inputs
            .into_iter()
            .enumerate()
            .map(|(index, make)| make(&store.name, index));
        // `cogroup` always starts with one input.
        let Some(first) = streams.next() else {
            unreachable!("a cogrouped stream has at least one input")
        };
        let updates = streams.fold(first, |all, next| all.merge(&next));
        updates.graph.borrow_mut().add_dsl_store(StoreDef {
            name: store.name.clone(),
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(K::default_serde()),
            value_serde: Arc::new(A::default_serde()),
        });
        let initializer = Arc::new(initializer);
        let store_name = store.name.clone();
        let node: KStream<K, Change<A>> = updates.add_built(
            "KSTREAM-COGROUP",
            vec![store.name.clone()],
            false,
            move |ctx| {
                Ok(Cogroup {
                    store: ctx.key_value_store(&store_name)?,
                    initializer: initializer.clone(),
                })
            },
        );
        KTable::new(updates.graph.clone(), node.node, Some(store.name))
    }
}

/// Applies each update to its key's aggregate and forwards the change.
struct Cogroup<K, A> {
    store: KeyValueStore<K, A>,
    initializer: Arc<dyn Fn() -> A + Send + Sync>,
}

impl<K, A> Processor<K, Update<K, A>, K, Change<A>> for Cogroup<K, A>
where
    K: Clone + 'static,
    A: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: Record<K, Update<K, A>>,
    ) -> Result<()> {
        let store = &self.store;
        let old = store.get(&record.key)?;
        let start = old.clone().unwrap_or_else(|| (self.initializer)());
        let new = (record.value)(&record.key, start);
        store.put(&record.key, &new)?;
        ctx.forward(record.with_value(Change {
            new: Some(new),
            old,
        }))
    }
}
