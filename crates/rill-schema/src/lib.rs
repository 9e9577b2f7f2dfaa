//! rill's schemas: Avro in Confluent's wire format, and a schema registry.
//!
//! **Owns:** the [`AvroSerde`] (a [`rill_streams::Serde`] writing the magic byte 0, the
//! schema id as 4 bytes big-endian and the Avro binary body; reading by the writer's schema,
//! resolved to the reader's), Confluent's [`wire`] format, the [`SchemaCache`] the serdes
//! share, [`Compatibility`] levels, and schema registries: [`LogSchemaRegistry`] keeps its
//! schemas in the compacted topic `_schemas` of any rill log (so they survive restarts and
//! every instance of a cluster sees them), [`router`] serves it with the common subset of
//! Confluent Schema Registry's REST API, and [`HttpSchemaRegistry`] is a client of an
//! external registry by URL.
//!
//! **Is not:** a domain: the order system's schemas live with its types in `rill-orders`.
//!
//! **May depend on:** `rill-streams` (the `Serde` trait) and `rill-log` (the `_schemas`
//! topic), never on a backend. It is a crate of its own because the registry needs an HTTP
//! server and client and the Avro library, which the runtime's users who stay on JSON should
//! not build; the runtime keeps only the format-neutral `Serde` trait.
//!
//! ```no_run
//! # fn demo(log: std::sync::Arc<dyn rill_log::Log>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rill_schema::{AvroSerde, LogSchemaRegistry, SchemaCache};
//! use rill_streams::Serde;
//!
//! let registry = Arc::new(LogSchemaRegistry::open(log.as_ref())?);
//! let cache = SchemaCache::new(registry.clone());
//! let serde = AvroSerde::<i64>::new(cache.clone(), r#""long""#)?;
//! let bytes = serde.serialize("counts", &42)?; // registers "long" under counts-value
//! assert_eq!(serde.deserialize("counts", &bytes)?, 42);
//! assert_eq!(cache.to_json(&bytes).transpose()?, Some(serde_json::json!(42)));
//! // Serve the registry's REST API (Confluent's paths) with axum:
//! let routes: axum::Router = rill_schema::router(registry);
//! # let _ = routes; Ok(()) }
//! ```

#![deny(missing_docs)]

mod avro;
mod compatibility;
mod error;
mod registry;
pub mod wire;

pub use avro::{AvroSerde, SchemaCache};
pub use compatibility::Compatibility;
pub use error::{RegistryError, Result};
pub use registry::{
    CONTENT_TYPE, HttpSchemaRegistry, LogSchemaRegistry, RegisteredSchema, SCHEMAS_TOPIC,
    SchemaRegistry, SubjectVersion, VersionSelector, router,
};
