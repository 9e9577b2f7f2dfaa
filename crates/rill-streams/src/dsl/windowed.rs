//! Windowed grouped streams: [`KGroupedStream::windowed_by`] with a window specification
//! gives a stream whose count / reduce / aggregate produce a table keyed by
//! [`Windowed`] keys. The operators live in their own files (`window_aggregate`,
//! `session_aggregate`, `event_windows`) and fold values with `folder::Folder`; this
//! file holds the DSL types and the shared "add an aggregation node" step.

use std::any::Any;
use std::sync::Arc;

use crate::error::Result;
use crate::graph::StoreDef;
use crate::processor::{InitContext, Processor};
use crate::serde::{DefaultSerde, SharedSerde};
use crate::store::Windowed;

use super::KStream;
use super::builder::StoreOptions;
use super::event_windows::{EventKind, EventWindowAggregate, EventWindowsSerde};
use super::folder::{Folder, Merger};
use super::grouped::KGroupedStream;
use super::session_aggregate::{SessionAggregate, session_retention};
use super::table::{Change, KTable};
use super::window_aggregate::{
    SlidingWindowAggregate, TimeWindowAggregate, sliding_windows_retention, time_windows_retention,
};
use super::windows::{
    CountWindows, EventIntervalWindows, SessionWindows, SlidingWindows, TimeWindows,
};

/// A window specification that can window a grouped stream: [`TimeWindows`],
/// [`SlidingWindows`], [`SessionWindows`], [`CountWindows`] and [`EventIntervalWindows`].
pub trait WindowSpec<K, V> {
    /// The windowed stream it gives.
    type Stream;
    /// Windows `grouped`.
    fn window(self, grouped: &KGroupedStream<K, V>) -> Self::Stream;
}

impl<K, V> KGroupedStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Windows the grouped stream for windowed count / reduce / aggregate.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder, TimeWindows, TopologyTestDriver, Windowed};
    /// use std::time::Duration;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("payments")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of(Duration::from_secs(60)))
    ///     .reduce(StoreOptions::in_memory("per-minute"), |a, b| a + b)
    ///     .to_stream()
    ///     .to("totals");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    /// driver.pipe("payments", &"ann".to_string(), &5i64, 1_000).unwrap();
    /// driver.pipe("payments", &"ann".to_string(), &7i64, 59_000).unwrap();
    /// let out = driver.read_output::<Windowed<String>, i64>("totals").unwrap();
    /// assert_eq!(out.last().unwrap().value, 12);
    /// assert_eq!(out.last().unwrap().key.window.end, 60_000);
    /// ```
    pub fn windowed_by<W: WindowSpec<K, V>>(&self, windows: W) -> W::Stream {
        windows.window(self)
    }
}

/// Reports an invalid window specification when the topology is built.
fn invalid<K, V>(stream: &KStream<K, V>, reason: String) {
    stream
        .graph
        .borrow_mut()
        .errors
        .push(crate::StreamsError::InvalidWindows { reason });
}

/// A stream windowed by time ([`TimeWindows`] or [`SlidingWindows`]).
pub struct TimeWindowedKStream<K, V> {
    stream: KStream<K, V>,
    kind: TimeKind,
}

#[derive(Clone, Copy)]
enum TimeKind {
    Fixed(TimeWindows),
    Sliding(SlidingWindows),
}

impl<K, V> WindowSpec<K, V> for TimeWindows {
    type Stream = TimeWindowedKStream<K, V>;
    fn window(self, grouped: &KGroupedStream<K, V>) -> Self::Stream {
        if let Err(reason) = self.validate() {
            invalid(&grouped.stream, reason);
        }
        TimeWindowedKStream {
            stream: grouped.stream.clone(),
            kind: TimeKind::Fixed(self),
        }
    }
}

impl<K, V> WindowSpec<K, V> for SlidingWindows {
    type Stream = TimeWindowedKStream<K, V>;
    fn window(self, grouped: &KGroupedStream<K, V>) -> Self::Stream {
        if self.difference <= 0 {
            invalid(
                &grouped.stream,
                "sliding windows need a positive time difference".into(),
            );
        }
        TimeWindowedKStream {
            stream: grouped.stream.clone(),
            kind: TimeKind::Sliding(self),
        }
    }
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Counts records per key and window.
    pub fn count(&self, store: StoreOptions) -> KTable<Windowed<K>, i64> {
        self.aggregate(store, || 0, |_, _, count| count + 1)
    }

    /// Combines the values of each key and window with `reducer`.
    pub fn reduce(
        &self,
        store: StoreOptions,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_with(store, Folder::reduce(reducer))
    }

    /// Folds the values of each key and window into an aggregate, from `initializer()`.
    pub fn aggregate<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A> {
        self.aggregate_with(store, Folder::aggregate(initializer, aggregator))
    }

    fn aggregate_with<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        folder: Folder<K, V, A>,
    ) -> KTable<Windowed<K>, A> {
        let name = store.name.clone();
        match self.kind {
            TimeKind::Fixed(windows) => {
                let retention = Some(time_windows_retention(&windows));
                let stores = vec![typed_store::<K, A>(&store, &name, retention)];
                add_aggregate(
                    &self.stream,
                    &store,
                    stores,
                    Some(windows.grace),
                    move |ctx| TimeWindowAggregate::new(ctx, &name, windows, folder.clone()),
                )
            }
            TimeKind::Sliding(windows) => {
                let records = format!("{name}-records");
                let retention = Some(sliding_windows_retention(&windows));
                let stores = vec![
                    typed_store::<K, A>(&store, &name, retention),
                    typed_store::<K, V>(&store, &records, retention),
                ];
                // Sliding windows include their end: they close one ms after end + grace.
                let close = windows.grace.saturating_add(1);
                add_aggregate(&self.stream, &store, stores, Some(close), move |ctx| {
                    SlidingWindowAggregate::new(ctx, &name, &records, windows, folder.clone())
                })
            }
        }
    }
}

/// A stream windowed into sessions ([`SessionWindows`]).
pub struct SessionWindowedKStream<K, V> {
    stream: KStream<K, V>,
    windows: SessionWindows,
}

impl<K, V> WindowSpec<K, V> for SessionWindows {
    type Stream = SessionWindowedKStream<K, V>;
    fn window(self, grouped: &KGroupedStream<K, V>) -> Self::Stream {
        if self.gap < 0 {
            invalid(
                &grouped.stream,
                "session windows need a non-negative gap".into(),
            );
        }
        SessionWindowedKStream {
            stream: grouped.stream.clone(),
            windows: self,
        }
    }
}

impl<K, V> SessionWindowedKStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Counts records per session.
    pub fn count(&self, store: StoreOptions) -> KTable<Windowed<K>, i64> {
        self.aggregate(store, || 0, |_, _, count| count + 1, |_, a, b| a + b)
    }

    /// Combines the values of each session with `reducer` (which also merges sessions).
    pub fn reduce(
        &self,
        store: StoreOptions,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        let merge = reducer.clone();
        self.aggregate_with(
            store,
            Folder::reduce(move |a, b| reducer(a, b)),
            Arc::new(move |_: &K, a: V, b: V| merge(&a, &b)),
        )
    }

    /// Folds the values of each session into an aggregate; `merger` combines the aggregates
    /// of two sessions that a record joins together.
    pub fn aggregate<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        merger: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A> {
        self.aggregate_with(
            store,
            Folder::aggregate(initializer, aggregator),
            Arc::new(merger),
        )
    }

    fn aggregate_with<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        folder: Folder<K, V, A>,
        merger: Merger<K, A>,
    ) -> KTable<Windowed<K>, A> {
        let name = store.name.clone();
        let windows = self.windows;
        let retention = Some(session_retention(&windows));
        let stores = vec![typed_store::<K, A>(&store, &name, retention)];
        // Sessions include their end: they close one ms after end + grace.
        let close = windows.grace.saturating_add(1);
        add_aggregate(&self.stream, &store, stores, Some(close), move |ctx| {
            SessionAggregate::new(ctx, &name, windows, folder.clone(), merger.clone())
        })
    }
}

/// A stream windowed by event counts ([`CountWindows`]) or marker events
/// ([`EventIntervalWindows`]). Its windows are emitted once, when they close.
pub struct EventWindowedKStream<K, V> {
    stream: KStream<K, V>,
    kind: EventKind<K, V>,
}

impl<K, V> WindowSpec<K, V> for CountWindows {
    type Stream = EventWindowedKStream<K, V>;
    fn window(self, grouped: &KGroupedStream<K, V>) -> Self::Stream {
        if let Err(reason) = self.validate() {
            invalid(&grouped.stream, reason);
        }
        EventWindowedKStream {
            stream: grouped.stream.clone(),
            kind: EventKind::Count(self),
        }
    }
}

impl<K, V> WindowSpec<K, V> for EventIntervalWindows<K, V> {
    type Stream = EventWindowedKStream<K, V>;
    fn window(self, grouped: &KGroupedStream<K, V>) -> Self::Stream {
        EventWindowedKStream {
            stream: grouped.stream.clone(),
            kind: EventKind::Interval(self),
        }
    }
}

impl<K, V> EventWindowedKStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Counts the records of each window.
    pub fn count(&self, store: StoreOptions) -> KTable<Windowed<K>, i64> {
        self.aggregate(store, || 0, |_, _, count| count + 1)
    }

    /// Combines the values of each window with `reducer`.
    pub fn reduce(
        &self,
        store: StoreOptions,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_with(store, Folder::reduce(reducer))
    }

    /// Folds the values of each window into an aggregate, from `initializer()`.
    pub fn aggregate<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A> {
        self.aggregate_with(store, Folder::aggregate(initializer, aggregator))
    }

    fn aggregate_with<A: DefaultSerde + Clone>(
        &self,
        store: StoreOptions,
        folder: Folder<K, V, A>,
    ) -> KTable<Windowed<K>, A> {
        let name = store.name.clone();
        let state_serde: SharedSerde<_> = Arc::new(EventWindowsSerde::new(A::default_serde()));
        let stores = vec![store_def(
            &store,
            &name,
            None,
            Arc::new(K::default_serde()),
            Arc::new(state_serde),
        )];
        let kind = self.kind.clone();
        add_aggregate(&self.stream, &store, stores, None, move |ctx| {
            EventWindowAggregate::new(ctx, &name, kind.clone(), folder.clone())
        })
    }
}

fn store_def(
    options: &StoreOptions,
    name: &str,
    window_retention: Option<i64>,
    key_serde: Arc<dyn Any + Send + Sync>,
    value_serde: Arc<dyn Any + Send + Sync>,
) -> StoreDef {
    StoreDef {
        name: name.to_string(),
        kind: options.kind,
        logged: options.logged,
        window_retention,
        // Window and session stores: their handles write past the cache.
        caching: false,
        key_serde,
        value_serde,
    }
}

/// A store of `K` keys and `A` values, kept as `options` says (in time segments for
/// `window_retention` when given).
fn typed_store<K: DefaultSerde, A: DefaultSerde>(
    options: &StoreOptions,
    name: &str,
    window_retention: Option<i64>,
) -> StoreDef {
    store_def(
        options,
        name,
        window_retention,
        Arc::new(K::default_serde()),
        Arc::new(A::default_serde()),
    )
}

/// Repartitions when the key may have changed, registers the stores, adds the aggregation
/// node and records when its windows close (`None`: it emits only closed windows already).
fn add_aggregate<K, V, A, P>(
    stream: &KStream<K, V>,
    options: &StoreOptions,
    stores: Vec<StoreDef>,
    close_after_end: Option<i64>,
    build: impl Fn(&mut InitContext<'_>) -> Result<P> + Clone + Send + Sync + 'static,
) -> KTable<Windowed<K>, A>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
    A: Clone + 'static,
    P: Processor<K, V, Windowed<K>, Change<A>>,
{
    let stream = if stream.key_changed {
        stream.repartition(&options.name)
    } else {
        stream.clone()
    };
    let names: Vec<String> = stores.iter().map(|s| s.name.clone()).collect();
    for def in stores {
        stream.graph.borrow_mut().add_dsl_store(def);
    }
    let node: KStream<Windowed<K>, Change<A>> =
        stream.add_built("KSTREAM-WINDOWAGGREGATE", names, false, build);
    stream
        .graph
        .borrow_mut()
        .window_close_after
        .insert(node.node, close_after_end);
    // Not offered as a key-value store to joins: its entries are keyed by window.
    KTable::new(stream.graph.clone(), node.node, None)
}
