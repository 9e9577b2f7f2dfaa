//! The typed topology DSL: [`StreamsBuilder`], [`KStream`], [`KTable`], [`KGroupedStream`] and
//! [`GlobalKTable`]. Each call records a node in the graph; [`StreamsBuilder::build`] turns it
//! into a [`Topology`](crate::Topology).

mod builder;
mod cogroup;
mod event_windows;
mod fk_join;
mod folder;
mod grouped;
mod grouped_table;
mod join;
mod ops;
mod session_aggregate;
mod stream;
mod stream_join;
mod suppress;
mod table;
mod versioned;
mod window_aggregate;
mod windowed;
mod windows;

pub use builder::{Consumed, StoreOptions, StreamsBuilder};
pub use cogroup::CogroupedKStream;
pub use grouped::KGroupedStream;
pub use grouped_table::KGroupedTable;
pub use stream::{BoxedPredicate, BranchedKStream, KStream, Repartitioned};
pub use table::{Change, GlobalKTable, KTable};
pub use windowed::{EventWindowedKStream, SessionWindowedKStream, TimeWindowedKStream, WindowSpec};
pub use windows::{
    CountWindows, EventIntervalWindows, JoinWindows, SessionWindows, SlidingWindows, TimeWindows,
};
