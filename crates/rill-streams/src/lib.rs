//! rill's streams runtime: the Rust counterpart of Kafka Streams that rill's services are
//! written in.
//!
//! **Owns:** the typed topology DSL ([`StreamsBuilder`], [`KStream`], [`KTable`],
//! [`GlobalKTable`]), the processor API ([`Processor`]), serdes, state stores, tasks, and the
//! [`TopologyTestDriver`].
//!
//! **May depend on:** `rill-log` (the log traits) and never on a backend: applications are
//! given an `Arc<dyn rill_log::Log>`.
//!
//! A stream-table join, tested without a log:
//! ```
//! use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};
//!
//! let builder = StreamsBuilder::new();
//! let levels = builder.table::<String, String>("customer-levels", StoreOptions::in_memory("levels"));
//! builder
//!     .stream::<String, String>("purchases")
//!     .join(&levels, |item, level| format!("{item} for a {level} customer"))
//!     .to("enriched");
//! let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "shop").unwrap();
//! driver.pipe("customer-levels", &"ann".to_string(), &"gold".to_string(), 1).unwrap();
//! driver.pipe("purchases", &"ann".to_string(), &"jumper".to_string(), 2).unwrap();
//! let out = driver.read_output::<String, String>("enriched").unwrap();
//! assert_eq!(out[0].value, "jumper for a gold customer");
//! ```

mod collector;
mod dsl;
mod error;
mod functions;
mod graph;
mod processor;
mod record;
pub mod reset;
mod runtime;
mod serde;
mod store;
mod task;
mod test_driver;

pub use collector::{OutputRecord, RecordCollector};
pub use dsl::{
    BoxedPredicate, BranchedKStream, Change, CogroupedKStream, Consumed, GlobalKTable,
    KGroupedStream, KGroupedTable, KStream, KTable, Repartitioned, StoreOptions, StreamsBuilder,
};
pub use dsl::{
    CountWindows, EventIntervalWindows, EventWindowedKStream, JoinWindows, SessionWindowedKStream,
    SessionWindows, SlidingWindows, TimeWindowedKStream, TimeWindows, WindowSpec,
};
pub use error::{ErrorClass, Result, StreamsError};
pub use graph::{
    InternalTopicKind, PersistentStores, StoreKind, Subtopology, Topology, changelog_topic,
};
pub use processor::{InitContext, Processor, ProcessorContext, PunctuationType, PunctuatorId};
pub use record::{Record, RecordContext};
pub use runtime::{
    AppState, FaultInjector, FaultPoint, KeyQueryMetadata, ProcessingGuarantee, QueryableStore,
    QueryableWindowStore, RestoreListener, StateListener, StreamsApp, StreamsConfig,
    ThreadFailurePolicy,
};
pub use serde::{
    BytesSerde, DefaultSerde, I32Serde, I64Serde, JsonSerde, NullableSerde, Serde, SerdeError,
    SharedSerde, StringSerde, UnitSerde,
};
pub use store::{
    DEFAULT_MEMORY_BUDGET, InMemoryKeyValueStore, KeyValueBytesStore, KeyValueStore, KeyValues,
    PersistentKeyValueStore, ReadOnlyKeyValueStore, default_cache_max_bytes, set_memory_budget,
};
pub use store::{MIN_SEGMENT_INTERVAL, SegmentedStore, default_segment_interval};
pub use store::{ReadOnlyWindowStore, SessionStore, Window, WindowStore, Windowed, WindowedSerde};
pub use task::{DeserializationPolicy, ProcessingErrorPolicy, TaskId, TaskMetrics};
pub use test_driver::TopologyTestDriver;
