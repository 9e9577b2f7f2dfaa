//! Records as processors see them.

use std::sync::Arc;

use rill_log::{ConsumedRecord, Header};

use crate::error::{Result, StreamsError};
use crate::serde::{Serde, SerdeError};

/// A typed record flowing through a topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time, ms since the Unix epoch.
    pub timestamp: i64,
    /// Headers carried along from the input record.
    pub headers: Vec<Header>,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Self {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another key and value.
    pub fn with_key_value<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record {
            key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}

/// Where the record being processed was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordContext {
    /// Input topic.
    pub topic: Arc<str>,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
}

impl<K: 'static, V: 'static> Record<K, V> {
    /// Decodes a record read from the log with `key_serde` and `value_serde`: the one decode
    /// path of stream sources, table sources (through [`decode_row`](Record::decode_row)) and
    /// the test driver.
    pub(crate) fn decode(
        raw: &ConsumedRecord,
        key_serde: &dyn Serde<K>,
        value_serde: &dyn Serde<V>,
    ) -> Result<Self> {
        Self::decode_parts(
            &raw.topic,
            (raw.key.as_deref(), raw.value.as_deref()),
            raw.timestamp,
            raw.headers.clone(),
            (key_serde, value_serde),
        )
    }

    /// [`decode`](Self::decode) from a record's parts. A record without a value is what the
    /// value serde's [`deserialize_null`](Serde::deserialize_null) makes of it (a tombstone for
    /// `Option` values, an error for others).
    pub(crate) fn decode_parts(
        topic: &str,
        (key, value): (Option<&[u8]>, Option<&[u8]>),
        timestamp: i64,
        headers: Vec<Header>,
        (key_serde, value_serde): (&dyn Serde<K>, &dyn Serde<V>),
    ) -> Result<Self> {
        decode_with(topic, key, timestamp, headers, key_serde, || match value {
            Some(bytes) => value_serde.deserialize(topic, bytes),
            None => value_serde.deserialize_null(topic),
        })
    }
}

impl<K: 'static, V: 'static> Record<K, Option<V>> {
    /// Decodes a record of a table's topic: a record without a value deletes its key, so it
    /// decodes to `None` whatever the value serde makes of a null; other values go through
    /// `value_serde`. Errors are those of [`decode`](Record::decode).
    pub(crate) fn decode_row(
        raw: &ConsumedRecord,
        key_serde: &dyn Serde<K>,
        value_serde: &dyn Serde<V>,
    ) -> Result<Self> {
        let topic = &*raw.topic;
        decode_with(
            topic,
            raw.key.as_deref(),
            raw.timestamp,
            raw.headers.clone(),
            key_serde,
            || {
                raw.value
                    .as_deref()
                    .map(|bytes| value_serde.deserialize(topic, bytes))
                    .transpose()
            },
        )
    }
}

/// Decodes the key with `key_serde` and the value with `value`, naming the topic and the
/// part that failed in the error.
fn decode_with<K: 'static, V>(
    topic: &str,
    key: Option<&[u8]>,
    timestamp: i64,
    headers: Vec<Header>,
    key_serde: &dyn Serde<K>,
    value: impl FnOnce() -> std::result::Result<V, SerdeError>,
) -> Result<Record<K, V>> {
    let failed = |what| {
        move |source| StreamsError::Serde {
            topic: topic.into(),
            what,
            source,
        }
    };
    let key = key_serde
        .deserialize(topic, key.unwrap_or_default())
        .map_err(failed("key"))?;
    let value = value().map_err(failed("value"))?;
    Ok(Record {
        key,
        value,
        timestamp,
        headers,
    })
}
