//! Running a topology on a log: an application ([`StreamsApp`]) runs stream threads; each
//! thread is one member of the application's consumer group, owns the tasks of the partitions
//! it is assigned, processes their records, and commits on an interval, atomically under
//! exactly-once (outputs, changelog updates and input offsets in one log transaction).
//!
//! Roles: `app` starts and stops, answers interactive queries; `thread` runs the loop (poll,
//! process, punctuate, commit); `tasks` creates, commits and closes the tasks of a thread;
//! `restore` fills stores from their changelogs; `collector` hands outputs to the producer;
//! `global` keeps global tables up to date; `topics` creates and checks internal topics;
//! `instances` publishes which instance owns which tasks, for query forwarding.

mod app;
mod collector;
mod config;
mod global;
mod instances;
pub(crate) mod metrics;
mod restore;
mod standby;
mod tasks;
mod thread;
mod topics;
mod window_query;

pub(crate) use app::INSTANCE_ID_FILE;
pub use app::{AppState, KeyQueryMetadata, QueryableStore, StateListener, StreamsApp};
pub use config::{
    FaultInjector, FaultPoint, ProcessingGuarantee, RestoreListener, StreamsConfig,
    ThreadFailurePolicy,
};
pub use window_query::QueryableWindowStore;
