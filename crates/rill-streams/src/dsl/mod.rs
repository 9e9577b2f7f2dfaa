//! The typed topology DSL: [`StreamsBuilder`], [`KStream`], [`KTable`], [`KGroupedStream`] and
//! [`GlobalKTable`]. Each call records a node in the graph; [`StreamsBuilder::build`] turns it
//! into a [`Topology`](crate::Topology).

mod builder;
mod grouped;
mod join;
mod ops;
mod stream;
mod table;

pub use builder::{StoreOptions, StreamsBuilder};
pub use grouped::KGroupedStream;
pub use stream::KStream;
pub use table::{Change, GlobalKTable, KTable};
