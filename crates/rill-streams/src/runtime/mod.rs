//! Running a topology on a log: an application ([`StreamsApp`]) runs stream threads; each
//! thread is one member of the application's consumer group, owns the tasks of the partitions
//! it is assigned, processes their records, and commits on an interval, atomically under
//! exactly-once (outputs, changelog updates and input offsets in one log transaction).
//!
//! Roles: `app` starts and stops, answers interactive queries; `thread` runs the loop (poll,
//! process, punctuate, commit); `tasks` creates, commits and closes the tasks of a thread;
//! `restore` fills stores from their changelogs; `collector` hands outputs to the producer;
//! `global` keeps global tables up to date; `topics` creates and checks internal topics;
//! `instances` publishes which instance owns which tasks, for query forwarding; `standby`
//! keeps warm copies of other instances' stores (`standby_copies`); `query` and
//! `window_query` answer interactive queries.
//!
//! Dependencies point one way: `lifecycle` and `shared` (the state every part shares) name
//! none of the parts that use them; `app` names every part and nothing names it.

mod app;
mod collector;
mod config;
mod global;
mod instances;
mod lifecycle;
pub(crate) mod metrics;
mod query;
mod restore;
mod shared;
mod standby;
mod standby_copies;
mod tasks;
mod thread;
mod topics;
mod window_query;

pub(crate) use app::INSTANCE_ID_FILE;
pub use app::StreamsApp;
pub use config::{
    FaultInjector, FaultPoint, ProcessingGuarantee, RestoreListener, StreamsConfig,
    ThreadFailurePolicy,
};
pub use lifecycle::{AppState, StateListener};
pub use query::{KeyQueryMetadata, QueryableStore};
pub use window_query::QueryableWindowStore;
