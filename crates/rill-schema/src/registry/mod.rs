//! Schema registries: the one `rill run` keeps in the log ([`LogSchemaRegistry`]), a client of
//! an external one ([`HttpSchemaRegistry`]), the REST API serving the former ([`router`]),
//! and the [`SchemaRegistry`] trait the serdes use with either.

mod client;
mod log_registry;
mod rest;
mod state;

pub use client::HttpSchemaRegistry;
pub use log_registry::{LogSchemaRegistry, SCHEMAS_TOPIC};
pub use rest::{CONTENT_TYPE, router};
pub use state::{RegisteredSchema, SubjectVersion, VersionSelector};

use crate::error::Result;

/// What a serde needs of a registry: ids for its schemas, schemas for the ids it reads.
/// Both calls block (serdes run on stream threads); callers cache the answers (see
/// [`SchemaCache`](crate::SchemaCache)).
pub trait SchemaRegistry: Send + Sync + 'static {
    /// Registers `schema` (Avro JSON text) under `subject`, or finds it there: its id.
    fn register(&self, subject: &str, schema: &str) -> Result<i32>;

    /// The text of the schema with this id.
    fn schema_text(&self, id: i32) -> Result<String>;

    /// Where the registry is, for logs (`log topic _schemas`, a URL).
    fn describe(&self) -> String;
}
