//! Example systems on rill's streams runtime: the smaller event-driven systems of SPEC
//! section 7, each a pattern people come to a streams library for.
//!
//! **Owns:** one module per example, holding its event types, its topology (one function), a
//! small generated input and how to print its output for people; [`run`], which runs an
//! example on a log and collects what it wrote.
//!
//! **Is not:** a log backend or a binary. It depends on `rill-streams` and `rill-log`, and on
//! `rill-orders` for the order system's topic and types that the shop's shipping service reads
//! (with `axum`, `tokio` and `reqwest` for the shop's basket API); `rill example NAME` picks
//! the log (the embedded one in a temporary directory) and prints.
//!
//! Every example is tested on the test driver with hand-computed expectations
//! (`crates/rill-examples/tests/`).

#![deny(missing_docs)]

pub mod abandoned_carts;
pub mod coffee_coupons;
pub mod flight_contexts;
mod runner;
pub mod shop;
pub mod trucks;

use bytes::Bytes;
use std::sync::Arc;

use rill_log::Log;
use rill_streams::{StreamsApp, StreamsError, Topology};

pub use runner::{ExampleError, OutputLine, RunOptions, run};

/// The names an example's topology writes to: its output topics as they are, or each with a
/// suffix, for running the same code again into new topics (reprocessing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    suffix: String,
}

impl Outputs {
    /// Output topics named `<topic><suffix>`.
    pub fn suffixed(suffix: impl Into<String>) -> Self {
        Outputs {
            suffix: suffix.into(),
        }
    }

    /// The name to write `topic`'s records to.
    pub fn name(&self, topic: &str) -> String {
        format!("{topic}{}", self.suffix)
    }
}

/// A record of an example's sample input.
#[derive(Debug, Clone)]
pub struct SampleRecord {
    /// Input topic.
    pub topic: &'static str,
    /// Key bytes.
    pub key: Bytes,
    /// Value bytes (JSON).
    pub value: Bytes,
    /// Timestamp of the record in the log, ms since the epoch.
    pub timestamp: i64,
}

/// One example: what it is, how it is built, what it reads and writes.
pub struct Example {
    /// Its name on the command line (`rill example NAME`).
    pub name: &'static str,
    /// One line on what it shows.
    pub summary: &'static str,
    /// Builds its topology, writing to the output topics `outputs` names.
    pub topology: fn(&Outputs) -> Result<Topology, StreamsError>,
    /// Topics it reads.
    pub inputs: &'static [&'static str],
    /// Topics it writes, shown when it runs.
    pub outputs: &'static [&'static str],
    /// Those of `outputs` that are a table's updates: only the latest per key is shown.
    pub tables: &'static [&'static str],
    /// A small input, timestamped relative to `now` (ms since the epoch).
    pub sample: fn(now: i64) -> Vec<SampleRecord>,
    /// One output record as a line for people.
    pub render: fn(topic: &str, key: &[u8], value: Option<&[u8]>) -> String,
    /// Asks the running application questions once its outputs are quiet (the shop: its
    /// basket API over HTTP), the answers as lines for people.
    pub query: Option<QueryFn>,
}

/// How an example asks its running application questions; see [`Example::query`].
pub type QueryFn = fn(&StreamsApp, Arc<dyn Log>) -> Result<Vec<OutputLine>, ExampleError>;

/// Every example, in the order the README shows them.
pub fn all() -> Vec<Example> {
    vec![
        coffee_coupons::example(),
        abandoned_carts::example(),
        trucks::example(),
        flight_contexts::example(),
        shop::example(),
    ]
}

/// The example called `name`.
pub fn find(name: &str) -> Option<Example> {
    all().into_iter().find(|example| example.name == name)
}

/// A JSON sample record.
pub(crate) fn json_record<T: serde::Serialize>(
    topic: &'static str,
    key: &str,
    value: &T,
    timestamp: i64,
) -> SampleRecord {
    SampleRecord {
        topic,
        key: Bytes::copy_from_slice(key.as_bytes()),
        // Serializing a plain struct of strings and numbers cannot fail.
        value: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        timestamp,
    }
}

/// A value of an output record decoded for printing, or why it could not be.
pub(crate) fn decoded<T: serde::de::DeserializeOwned>(value: Option<&[u8]>) -> Result<T, String> {
    let bytes = value.ok_or_else(|| "(tombstone)".to_string())?;
    serde_json::from_slice(bytes).map_err(|e| format!("(undecodable: {e})"))
}
