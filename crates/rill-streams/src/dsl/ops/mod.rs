//! The DSL's stateless operators, each a small [`Processor`](crate::Processor).

mod branch;
mod filter;
mod flat_map;
mod map;
mod peek;

pub(crate) use branch::Branch;
pub(crate) use filter::Filter;
pub(crate) use flat_map::FlatMap;
pub(crate) use map::Map;
pub(crate) use peek::Peek;
